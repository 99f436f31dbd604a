#!/usr/bin/python
# Copyright: kafka-metal contributors
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kafka_acl
short_description: Grant or revoke Kafka ACL bindings through the admin API
version_added: 0.1.0
description:
  - Makes ACL bindings exist (O(state=present)) or not (O(state=absent)), talking to the cluster with
    the Kafka admin API. The cluster needs an authorizer (C(authorizer.class.name)).
  - One binding from the top-level options, or many from O(acls) over a single connection.
  - Only the bindings named are managed; other bindings on the same resources are left alone.
options:
  acls:
    description:
      - Bindings to manage, each with the keys of the single-binding options below.
      - An entry takes O(host), O(permission), O(pattern_type) and O(state) from the top-level options
        when it does not set them.
    type: list
    elements: dict
    suboptions:
      principal:
        description: The principal, C(type:name), for example C(User:alice).
        type: str
        required: true
      host:
        description: Host the principal connects from, or C(*) for any.
        type: str
      operation:
        description: The operation allowed or denied.
        type: str
        required: true
        choices: [all, read, write, create, delete, alter, describe, cluster_action, describe_configs,
                  alter_configs, idempotent_write]
      permission:
        description: Allow or deny.
        type: str
        choices: [allow, deny]
      resource_type:
        description: The kind of resource.
        type: str
        required: true
        choices: [topic, group, cluster, transactional_id]
      resource_name:
        description: The resource (C(*) for all); for V(cluster), C(kafka-cluster) and may be omitted.
        type: str
      pattern_type:
        description: V(literal) matches the name exactly, V(prefixed) every resource starting with it.
        type: str
        choices: [literal, prefixed]
      state:
        description: Whether the binding should exist.
        type: str
        choices: [present, absent]
  principal:
    description: The principal of a single binding, C(type:name), for example C(User:alice).
    type: str
  host:
    description: Host the principal connects from, or C(*) for any.
    type: str
    default: "*"
  operation:
    description: The operation of a single binding.
    type: str
    choices: [all, read, write, create, delete, alter, describe, cluster_action, describe_configs,
              alter_configs, idempotent_write]
  permission:
    description: Allow or deny.
    type: str
    choices: [allow, deny]
    default: allow
  resource_type:
    description: The kind of resource of a single binding.
    type: str
    choices: [topic, group, cluster, transactional_id]
  resource_name:
    description:
      - The resource of a single binding (C(*) for all); for V(cluster), C(kafka-cluster) and may be omitted.
    type: str
  pattern_type:
    description: V(literal) matches the name exactly, V(prefixed) every resource starting with it.
    type: str
    choices: [literal, prefixed]
    default: literal
  state:
    description: Whether the binding(s) should exist.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - metal.kafka.changes
  - metal.kafka.kafka_admin
"""

EXAMPLES = r"""
- name: Let alice write to orders
  metal.kafka.kafka_acl:
    principal: User:alice
    operation: write
    resource_type: topic
    resource_name: orders
    bootstrap_servers: "kafka1.example.com:9093"
    sasl_username: admin
    sasl_password: "{{ vault_kafka_admin_password }}"
  delegate_to: localhost
  run_once: true

- name: A consumer application's ACLs in one go
  metal.kafka.kafka_acl:
    acls:
      - principal: User:billing
        operation: read
        resource_type: topic
        resource_name: orders.
        pattern_type: prefixed
      - principal: User:billing
        operation: read
        resource_type: group
        resource_name: billing
      - principal: User:billing
        operation: write
        resource_type: topic
        resource_name: orders
        state: absent
    bootstrap_servers: "kafka1.example.com:9093"
    sasl_username: admin
    sasl_password: "{{ vault_kafka_admin_password }}"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
acls:
  description: Each binding managed, with its desired C(state) and whether this run changes it.
  returned: always
  type: list
  elements: dict
  sample: [{"principal": "User:alice", "host": "*", "operation": "write", "permission": "allow",
            "resource_type": "topic", "resource_name": "orders", "pattern_type": "literal",
            "state": "present", "changed": true}]
created:
  description: Bindings created (would be, in check mode).
  returned: always
  type: list
  elements: dict
deleted:
  description: Bindings deleted (would be, in check mode).
  returned: always
  type: list
  elements: dict
actions:
  description: What was done (or would be, in check mode), in order.
  returned: always
  type: list
  elements: dict
diff:
  description: The managed bindings that exist before and after, one line each.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.metal.kafka.plugins.module_utils.kafka_admin import (
    ACL_OPERATIONS,
    ACL_PATTERN_TYPES,
    ACL_PERMISSIONS,
    ACL_RESOURCE_TYPES,
    argument_spec,
    execute,
    module_kwargs,
    run_acls,
)

STATES = ["present", "absent"]


def build_module():
    entry = dict(
        principal=dict(type="str", required=True),
        host=dict(type="str"),
        operation=dict(type="str", required=True, choices=ACL_OPERATIONS),
        permission=dict(type="str", choices=ACL_PERMISSIONS),
        resource_type=dict(type="str", required=True, choices=ACL_RESOURCE_TYPES),
        resource_name=dict(type="str"),
        pattern_type=dict(type="str", choices=ACL_PATTERN_TYPES),
        state=dict(type="str", choices=STATES),
    )
    return AnsibleModule(
        argument_spec=argument_spec(
            acls=dict(type="list", elements="dict", options=entry),
            principal=dict(type="str"),
            host=dict(type="str", default="*"),
            operation=dict(type="str", choices=ACL_OPERATIONS),
            permission=dict(type="str", choices=ACL_PERMISSIONS, default="allow"),
            resource_type=dict(type="str", choices=ACL_RESOURCE_TYPES),
            resource_name=dict(type="str"),
            pattern_type=dict(type="str", choices=ACL_PATTERN_TYPES, default="literal"),
            state=dict(type="str", choices=STATES, default="present"),
        ),
        **module_kwargs(
            required_one_of=[("acls", "principal")],
            mutually_exclusive=[("acls", "principal"), ("acls", "operation"), ("acls", "resource_type"),
                                ("acls", "resource_name")],
            required_by={"principal": ("operation", "resource_type")},
        ),
    )


def main(backend_factory=None):
    execute(build_module(), run_acls, backend_factory)


if __name__ == "__main__":
    main()
