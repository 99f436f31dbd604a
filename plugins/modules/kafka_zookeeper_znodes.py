#!/usr/bin/python
# Copyright: kafka-metal contributors
# Apache License 2.0
from __future__ import annotations

DOCUMENTATION = r"""
---
module: kafka_zookeeper_znodes
short_description: Read or delete single znodes of a Kafka cluster in ZooKeeper
version_added: 0.9.0
description:
  - Reads the data of O(read) and deletes O(delete), each path under the chroot of O(zookeeper_connect),
    over ZooKeeper's own protocol from the host it runs on (no ZooKeeper tools needed).
  - The migration to KRaft reads C(/cluster/id), C(/controller) and C(/migration) with it, and a rollback of
    the migration deletes C(/controller) and C(/migration) (the data of a deleted node is returned first).
  - Tries the ensemble's members in order until one answers.
options:
  zookeeper_connect:
    description: The brokers' C(zookeeper.connect) (C(host:port,...) with an optional chroot).
    type: str
    required: true
  read:
    description: Paths whose data to return (relative to the chroot).
    type: list
    elements: str
    default: []
  delete:
    description: Paths to delete (relative to the chroot); a missing node is no change.
    type: list
    elements: str
    default: []
  timeout:
    description: Seconds to wait for each member.
    type: float
    default: 10
attributes:
  check_mode:
    support: full
    description: Reports what would be deleted; deletes nothing.
  diff_mode:
    support: none
    description: Nothing to compare; deleted nodes are listed in RV(deleted).
author:
  - kafka-metal maintainers (@kafka-metal)
"""

EXAMPLES = r"""
- name: Read the cluster id and the migration state
  metal.kafka.kafka_zookeeper_znodes:
    zookeeper_connect: zk1:2181,zk2:2181,zk3:2181/kafka
    read: [/cluster/id, /migration]
  register: __znodes
"""

RETURN = r"""
data:
  description: Each path of O(read) and O(delete) -> its data (parsed when it is JSON), or null when absent.
  returned: always
  type: dict
deleted:
  description: The paths of O(delete) that existed and were (or, in check mode, would be) deleted.
  returned: always
  type: list
  elements: str
server:
  description: The member that answered (C(host:port)).
  returned: always
  type: str
"""

import json

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.metal.kafka.plugins.module_utils.zookeeper import (
    ZnodeClient,
    ZooKeeperError,
    connect_members,
)


def _value(raw):
    if raw is None:
        return None
    text = raw.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def run(params, check_mode):
    members, chroot = connect_members(params["zookeeper_connect"])
    errors = []
    for host, port in members:
        try:
            with ZnodeClient(host, port, params["timeout"]) as zk:
                data, deleted = {}, []
                for path in params["read"] + params["delete"]:
                    data[path] = _value(zk.get(chroot + path))
                for path in params["delete"]:
                    if data[path] is None:
                        continue
                    if check_mode or zk.delete(chroot + path):
                        deleted.append(path)
                return {"changed": bool(deleted), "data": data, "deleted": deleted, "server": f"{host}:{port}"}
        except (OSError, ZooKeeperError) as exc:
            errors.append(f"{host}:{port}: {exc}")
    raise ZooKeeperError("no ZooKeeper member answered: " + "; ".join(errors))


def main():
    module = AnsibleModule(
        argument_spec={
            "zookeeper_connect": {"type": "str", "required": True},
            "read": {"type": "list", "elements": "str", "default": []},
            "delete": {"type": "list", "elements": "str", "default": []},
            "timeout": {"type": "float", "default": 10},
        },
        supports_check_mode=True,
    )
    try:
        module.exit_json(**run(module.params, module.check_mode))
    except ZooKeeperError as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
