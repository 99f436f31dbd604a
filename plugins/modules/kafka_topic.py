#!/usr/bin/python
# Copyright: kafka-metal contributors
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kafka_topic
short_description: Create, grow, configure or delete a Kafka topic through the admin API
version_added: 0.1.0
description:
  - Makes a topic match the desired state, talking to the cluster with the Kafka admin API.
  - Creates the topic when it is missing, with O(partitions), O(replication_factor) and O(configs)
    (the broker's defaults for what is unset).
  - On an existing topic, adds partitions when O(partitions) is higher, and sets the keys of O(configs)
    whose value differs (an incremental change; other topic configs are left as they are).
  - Refuses, changing nothing, to reduce partitions (Kafka cannot) or to change the replication factor
    (that is a partition reassignment, out of this module's scope).
  - With O(state=absent), deletes the topic if it exists.
options:
  name:
    description: The topic.
    type: str
    required: true
  state:
    description: Whether the topic should exist.
    type: str
    choices: [present, absent]
    default: present
  partitions:
    description:
      - Number of partitions. Unset, a new topic gets the broker's C(num.partitions) and an existing
        one keeps its count.
      - Can only grow. Adding partitions changes which partition a key goes to.
    type: int
  replication_factor:
    description:
      - Replicas per partition for a new topic (unset, the broker's C(default.replication.factor)).
      - On an existing topic it is only checked; a different value fails.
    type: int
  configs:
    description:
      - Topic configs to manage, for example C(retention.ms) or C(cleanup.policy). Values are strings
        (numbers and booleans are turned into Kafka's spelling, lists are joined with commas).
      - Only the keys listed are managed; a key whose value is null is not touched, and configs not
        listed keep their value.
    type: dict
    default: {}
extends_documentation_fragment:
  - metal.kafka.changes
  - metal.kafka.kafka_admin
"""

EXAMPLES = r"""
- name: Orders topic with 12 partitions, 3 replicas and a week of retention
  metal.kafka.kafka_topic:
    name: orders
    partitions: 12
    replication_factor: 3
    configs:
      retention.ms: "604800000"
      min.insync.replicas: "2"
    bootstrap_servers: "kafka1.example.com:9093,kafka2.example.com:9093"
    sasl_username: admin
    sasl_password: "{{ vault_kafka_admin_password }}"
    ssl_ca_location: /etc/pki/kafka/ca.pem
  delegate_to: localhost
  run_once: true

- name: Remove the scratch topic
  metal.kafka.kafka_topic:
    name: scratch
    state: absent
    bootstrap_servers: "kafka1.example.com:9093"
    sasl_username: admin
    sasl_password: "{{ vault_kafka_admin_password }}"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
topic:
  description:
    - The topic after the run (predicted in check mode). C(partitions) and C(replication_factor) are null
      for a new topic that takes the broker's default; C(configs) holds the managed keys only.
  returned: always
  type: dict
  sample: {"name": "orders", "state": "present", "partitions": 12, "replication_factor": 3,
           "configs": {"retention.ms": "604800000"}}
actions:
  description: What was done (or would be, in check mode), in order.
  returned: always
  type: list
  elements: dict
  sample: [{"action": "create_partitions", "name": "orders", "partitions": 12}]
diff:
  description: The topic before and after (partitions, replication factor, managed configs).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.metal.kafka.plugins.module_utils.kafka_admin import (
    argument_spec,
    execute,
    module_kwargs,
    run_topic,
)


def build_module():
    return AnsibleModule(
        argument_spec=argument_spec(
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            partitions=dict(type="int"),
            replication_factor=dict(type="int"),
            configs=dict(type="dict", default={}),
        ),
        **module_kwargs(),
    )


def main(backend_factory=None):
    execute(build_module(), run_topic, backend_factory)


if __name__ == "__main__":
    main()
