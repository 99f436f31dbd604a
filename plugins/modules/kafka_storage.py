#!/usr/bin/python
# Copyright: kafka-metal contributors
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kafka_storage
short_description: Format a KRaft node's storage directories, safely
version_added: 0.1.0
description:
  - Reads C(meta.properties) in every log directory and the metadata directory of a KRaft node.
  - Formats only directories that are missing or empty, with C(kafka-storage.sh format --ignore-formatted).
  - Does nothing when every directory already carries this cluster id and node id.
  - Fails, changing nothing, when a directory belongs to another cluster or node, or is not empty
    and has no C(meta.properties).
options:
  cluster_id:
    description: The cluster id (22 characters of base64url).
    type: str
    required: true
  node_id:
    description: This node's C(node.id); checked against existing C(meta.properties).
    type: int
    required: true
  dirs:
    description: Every directory Kafka keeps data in on this node (C(log.dirs) and C(metadata.log.dir)).
    type: list
    elements: path
    required: true
  config:
    description: The node's C(server.properties), passed to C(kafka-storage.sh format -c).
    type: path
    required: true
  kafka_home:
    description: The Kafka installation directory (holds C(bin/kafka-storage.sh)).
    type: path
    required: true
  owner:
    description: User that owns the directories after formatting.
    type: str
    default: kafka
  group:
    description: Group that owns the directories after formatting.
    type: str
    default: kafka
  java_home:
    description: C(JAVA_HOME) for the storage tool.
    type: path
  release_version:
    description: Metadata version to format with (C(--release-version)); the tool's default when unset.
    type: str
  scram_credentials:
    description:
      - SCRAM credentials written into the new cluster's bootstrap metadata (KRaft), so SASL works from
        the first start and no unauthenticated window is ever open. Only used when a directory is formatted.
      - The tool receives a random salt and the salted password, never the password, through an argument
        file readable only by root, so nothing secret appears in the process list.
    type: list
    elements: dict
    default: []
    suboptions:
      mechanism:
        description: SCRAM mechanism.
        type: str
        choices: [SCRAM-SHA-512, SCRAM-SHA-256]
        default: SCRAM-SHA-512
      name:
        description: User name.
        type: str
        required: true
      password:
        description: Password; never logged.
        type: str
        required: true
      iterations:
        description: PBKDF2 iterations (at least 4096).
        type: int
        default: 8192
extends_documentation_fragment:
  - metal.kafka.changes
"""

EXAMPLES = r"""
- name: Format storage for this node (only when empty)
  metal.kafka.kafka_storage:
    cluster_id: "{{ kafka_cluster_id_resolved }}"
    node_id: "{{ kafka_node_id }}"
    dirs: [/var/lib/kafka/data, /var/lib/kafka/metadata]
    config: /etc/kafka/server.properties
    kafka_home: /opt/kafka/current
"""

RETURN = r"""
formatted:
  description: Directories formatted by this run.
  returned: always
  type: list
  elements: str
already_formatted:
  description: Directories that already carried this cluster's id.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.metal.kafka.plugins.module_utils.storage import StorageError, format_dirs


def build_module():
    return AnsibleModule(
        argument_spec=dict(
            cluster_id=dict(type="str", required=True),
            node_id=dict(type="int", required=True),
            dirs=dict(type="list", elements="path", required=True),
            config=dict(type="path", required=True),
            kafka_home=dict(type="path", required=True),
            owner=dict(type="str", default="kafka"),
            group=dict(type="str", default="kafka"),
            java_home=dict(type="path"),
            release_version=dict(type="str"),
            scram_credentials=dict(type="list", elements="dict", no_log=True, default=[], options=dict(
                mechanism=dict(type="str", default="SCRAM-SHA-512", choices=["SCRAM-SHA-512", "SCRAM-SHA-256"]),
                name=dict(type="str", required=True),
                password=dict(type="str", required=True, no_log=True),
                iterations=dict(type="int", default=8192),
            )),
        ),
        supports_check_mode=True,
    )


def run(module):
    p = module.params
    try:
        decision, out = format_dirs(module.run_command, p["dirs"], p["cluster_id"], p["node_id"], p["config"],
                                    p["kafka_home"], p["owner"], p["group"], p["java_home"], p["release_version"],
                                    p["scram_credentials"], check=module.check_mode)
    except StorageError as exc:
        module.fail_json(msg=f"storage check failed, nothing changed:\n{exc}")
    result = dict(changed=bool(decision["format"]), formatted=decision["format"],
                  already_formatted=decision["formatted"])
    if decision["format"]:
        result["diff"] = dict(
            before="".join(f"{d}: unformatted\n" for d in decision["format"]),
            after="".join(f"{d}: cluster.id={p['cluster_id']} node.id={p['node_id']}\n"
                          for d in decision["format"]),
        )
        result["stdout"] = out
    module.exit_json(**result)


def main():
    run(build_module())


if __name__ == "__main__":
    main()
