#!/usr/bin/python
# Copyright: kafka-metal contributors
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kafka_scram_user
short_description: Create, re-set or delete a Kafka SCRAM credential through the admin API
version_added: 0.1.0
description:
  - Manages one user's SCRAM credential for one mechanism, talking to the cluster with the Kafka admin API
    (KRaft, or ZooKeeper mode from Kafka 2.7 on).
  - Creates the credential when the user has none for O(mechanism).
  - Kafka stores only a salted hash and cannot tell whether it matches a given password, so an existing
    credential is left alone with O(update_password=on_create) (the default; the run reports no change),
    and set again, reporting a change every run, with O(update_password=always).
  - When the stored credential has other O(iterations), it is set again with O(password) (Kafka
    cannot change the iterations otherwise).
  - With O(state=absent), deletes the credential of O(mechanism) if there is one.
options:
  name:
    description: The user (the principal is C(User:<name>)).
    type: str
    required: true
    aliases: [user]
  mechanism:
    description: The SCRAM mechanism of the credential.
    type: str
    choices: [SCRAM-SHA-512, SCRAM-SHA-256]
    default: SCRAM-SHA-512
  password:
    description:
      - The password. Needed to create the credential, with O(update_password=always), and when the
        iterations change. Never reported, not even in the diff.
    type: str
  iterations:
    description: SCRAM iterations (Kafka accepts 4096 to 16384).
    type: int
    default: 8192
  update_password:
    description:
      - V(on_create) sets the password only when the credential is created (Kafka cannot compare a stored
        credential with a password, so this is the only idempotent choice).
      - V(always) sets it on every run and reports a change every time.
    type: str
    choices: [always, on_create]
    default: on_create
  state:
    description: Whether the credential should exist.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - metal.kafka.kafka_admin
attributes:
  check_mode:
    support: full
    description: Reports what would change without changing anything.
  diff_mode:
    support: full
    description: Shows the credential's mechanism and iterations before and after (never the password).
    details: The diff shows the user, mechanism and iterations, never the password.
author:
  - kafka-metal maintainers (@kafka-metal)
"""

EXAMPLES = r"""
- name: SCRAM credential for the billing application
  metal.kafka.kafka_scram_user:
    name: billing
    password: "{{ vault_billing_kafka_password }}"
    bootstrap_servers: "kafka1.example.com:9093"
    sasl_username: admin
    sasl_password: "{{ vault_kafka_admin_password }}"
    ssl_ca_location: /etc/pki/kafka/ca.pem
  delegate_to: localhost
  run_once: true

- name: Rotate the password (reports a change every run)
  metal.kafka.kafka_scram_user:
    name: billing
    password: "{{ vault_billing_kafka_password_new }}"
    update_password: always
    bootstrap_servers: "kafka1.example.com:9093"
    sasl_username: admin
    sasl_password: "{{ vault_kafka_admin_password }}"
  delegate_to: localhost
  run_once: true

- name: Remove the old SHA-256 credential
  metal.kafka.kafka_scram_user:
    name: billing
    mechanism: SCRAM-SHA-256
    state: absent
    bootstrap_servers: "kafka1.example.com:9093"
    sasl_username: admin
    sasl_password: "{{ vault_kafka_admin_password }}"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
user:
  description: The user.
  returned: always
  type: str
mechanism:
  description: The mechanism managed.
  returned: always
  type: str
iterations:
  description: Iterations of that mechanism's credential after the run (null when there is none).
  returned: always
  type: int
mechanisms:
  description: Every SCRAM mechanism the user has after the run, with its iterations.
  returned: always
  type: dict
  sample: {"SCRAM-SHA-512": 8192}
actions:
  description: What was done (or would be, in check mode); never holds the password.
  returned: always
  type: list
  elements: dict
note:
  description: Why an existing credential was left alone although a password was given.
  returned: when update_password is on_create and the credential exists
  type: str
diff:
  description: User, mechanism, iterations before and after; never the password.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.metal.kafka.plugins.module_utils.kafka_admin import (
    SCRAM_MECHANISMS,
    argument_spec,
    execute,
    module_kwargs,
    run_scram_user,
)


def build_module():
    return AnsibleModule(
        argument_spec=argument_spec(
            name=dict(type="str", required=True, aliases=["user"]),
            mechanism=dict(type="str", choices=SCRAM_MECHANISMS, default="SCRAM-SHA-512"),
            password=dict(type="str", no_log=True),
            iterations=dict(type="int", default=8192),
            update_password=dict(type="str", choices=["always", "on_create"], default="on_create", no_log=False),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        **module_kwargs(),
    )


def main(backend_factory=None):
    module = build_module()
    execute(module, run_scram_user, backend_factory, secrets=[module.params.get("password")])


if __name__ == "__main__":
    main()
