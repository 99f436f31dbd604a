#!/usr/bin/python
# Copyright: kafka-metal contributors
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kafka_backup
short_description: Take a backup of a Kafka cluster's records and metadata (scheduled backups)
version_added: 0.1.0
description:
  - Backs up every non-internal topic (or O(topics)) of the cluster into O(dir), through the Kafka
    protocol, the same code as C(kafka-metal backup create). Records are read with read-committed
    isolation from each partition's log start (or, with O(incremental), from where the previous
    backup stopped) to the backup point, and stored compressed in chunks with a manifest and a digest
    per partition. Topics (partitions, replication factor, non-default configs), ACLs, SCRAM user names
    and mechanisms (never passwords, which Kafka cannot give), client quotas, consumer group offsets and
    the cluster's identity are stored beside them.
  - An unfinished backup in O(dir) (interrupted run) is finished first.
  - Idempotent by age. When a complete backup of this cluster younger than O(max_age) seconds is in
    O(dir), nothing is done and C(changed) is false; a schedule (a timer, cron) runs the play as often as
    it likes and a backup is taken at most every O(max_age) seconds.
  - Restore, verification and listing are C(kafka-metal backup restore|verify|list) on the controller.
options:
  dir:
    description:
      - The backup root directory on the machine the module runs on (usually the controller, by delegating
        to C(localhost)); a local disk or a mounted one. Created (mode 0700) when missing.
    type: path
    required: true
  topics:
    description: Only these topics (default, an empty list, every topic not starting with C(__)).
    type: list
    elements: str
    default: []
  incremental:
    description:
      - Store only the records written since the latest complete backup of this cluster in O(dir) (the first
        backup is a full one). A restore reads the whole chain.
    type: bool
    default: false
  max_age:
    description:
      - Seconds a complete backup stays fresh; 0 takes a new backup every run.
    type: int
    default: 3600
  quotas:
    description: Also store client quotas (needs DescribeClientQuotas on the cluster).
    type: bool
    default: true
extends_documentation_fragment:
  - metal.kafka.kafka_admin
attributes:
  check_mode:
    support: full
    description: Can run in check mode and return changed status prediction without modifying target.
    details: Reports whether a backup would be taken; reads nothing else and writes nothing.
  diff_mode:
    support: none
    description: Returns no diff (a backup is new data, not a change to compare).
author:
  - kafka-metal maintainers (@kafka-metal)
"""

EXAMPLES = r"""
- name: Nightly backup, at most one a day
  metal.kafka.kafka_backup:
    dir: /srv/kafka-backups/prod
    max_age: 86400
    bootstrap_servers: "kafka1.example.com:9093"
    sasl_username: admin
    sasl_password: "{{ vault_kafka_admin_password }}"
    ssl_ca_location: /etc/pki/kafka/ca.pem
  delegate_to: localhost
  run_once: true

- name: Hourly incremental backup of two topics
  metal.kafka.kafka_backup:
    dir: /mnt/backup/kafka
    incremental: true
    topics: [orders, payments]
    bootstrap_servers: "kafka1.example.com:9093"
    sasl_username: admin
    sasl_password: "{{ vault_kafka_admin_password }}"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
backup:
  description: The backup taken, or the fresh one that made the run change nothing.
  returned: always
  type: dict
  contains:
    id:
      description: The backup's id (its directory name in O(dir)).
      type: str
    kind:
      description: V(full) or V(incremental).
      type: str
    parent:
      description: The backup an incremental one follows.
      type: str
    cluster_id:
      description: The cluster backed up.
      type: str
    totals:
      description: Records, bytes of keys, values and headers, bytes stored, partitions, seconds.
      type: dict
    topics:
      description: The topics in the backup.
      type: list
      elements: str
  sample:
    id: 20261129T030000Z
    kind: full
    parent: null
    cluster_id: q1Sh-9_ISia_zwGINzRvyQ
    totals: {records: 120384, bytes: 40318221, stored_bytes: 10238112, partitions: 24, seconds: 9.1}
    topics: [orders, payments]
path:
  description: The backup's directory.
  returned: always
  type: str
msg:
  description: What was done.
  returned: always
  type: str
log:
  description: The backup's progress lines (the last 20).
  returned: when a backup was taken
  type: list
  elements: str
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.metal.kafka.plugins.module_utils import backup as bk
from ansible_collections.metal.kafka.plugins.module_utils import backup_kafka
from ansible_collections.metal.kafka.plugins.module_utils.kafka_admin import (
    KafkaAdminError,
    argument_spec,
    client_config,
    module_kwargs,
    redact,
    scrub,
    secret_values,
)


def build_module():
    return AnsibleModule(
        argument_spec=argument_spec(
            dir=dict(type="path", required=True),
            topics=dict(type="list", elements="str", default=[]),
            incremental=dict(type="bool", default=False),
            max_age=dict(type="int", default=3600),
            quotas=dict(type="bool", default=True),
        ),
        **module_kwargs(),
    )


def summary(info):
    return {"id": info["id"], "kind": info["kind"], "parent": info.get("parent"), "cluster_id": info["cluster_id"],
            "totals": info.get("totals") or {}, "topics": sorted(info["topics"])}


def run(module, now=None):
    p = module.params
    if p["max_age"] < 0:
        module.fail_json(msg=f"max_age must be 0 or more seconds, got {p['max_age']}")
    conf = client_config(p)
    conf["kafka-metal.timeout"] = p["timeout"]
    root = p["dir"]
    now = time.time() if now is None else now
    cluster_id = backup_kafka.cluster_id_of(conf)
    unfinished = bk.latest(root, cluster_id, status="running")
    fresh = bk.recent(root, cluster_id, p["max_age"], now) if p["max_age"] else None
    if fresh and not unfinished:
        return dict(changed=False, backup=summary(fresh), path=os.path.join(root, fresh["id"]),
                    msg=f"backup {fresh['id']} is {now - fresh['created_epoch']:.0f}s old (max_age {p['max_age']}s)")
    if module.check_mode:
        what = f"finish backup {unfinished['id']}" if unfinished else "take a backup"
        return dict(changed=True, backup={}, path=root, msg=f"would {what} of cluster {cluster_id}")
    lines = []
    info = backup_kafka.create(conf, root, topics=p["topics"] or None, incremental=p["incremental"], resume=True,
                               quotas=p["quotas"], out=lines.append)
    return dict(changed=True, backup=summary(info), path=os.path.join(root, info["id"]),
                msg=f"backup {info['id']}: {info['totals']['records']} records", log=lines[-20:])


def main():
    module = build_module()
    secrets = secret_values(module.params)
    try:
        result = run(module)
    except (bk.BackupError, KafkaAdminError, OSError) as exc:
        module.fail_json(msg=redact(str(exc), secrets))
    module.exit_json(**scrub(result, secrets))


if __name__ == "__main__":
    main()
