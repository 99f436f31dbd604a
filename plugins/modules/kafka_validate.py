#!/usr/bin/python
# Copyright: kafka-metal contributors
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kafka_validate
short_description: Check a whole Kafka inventory once, before any host is changed
version_added: 0.1.0
description:
  - An action that runs on the controller only (it never connects to a host). Run it once per run
    (C(run_once)); it checks every host it is given and the cluster's shape, and fails with every
    problem found, each naming the hosts or the variable and the fix.
  - Each host's settings are resolved as the roles would see them, every role's defaults under the
    inventory, the play and extra vars, and checked against the roles' argument specs (types and
    choices) and the rules a spec cannot express, for the host's groups.
  - Per host, the install and cluster settings (version, metadata mode, cluster id, archive source
    and checksum, security), host tuning and data disks, Kafka settings given as strings, heap sizes,
    data directories, and the connection settings the rolling engine cannot honour.
  - Once, the cluster's shape (an odd, non-zero controller count, brokers present, unique node ids, an odd
    ZooKeeper ensemble with unique ids), one metadata mode for every host, and no setting that tries to
    rename the inventory groups (their names are fixed, C(kafka_controllers), C(kafka_brokers) and
    C(zookeeper); an inventory's own groups go under them as children).
  - Per host also the rules of a sound cluster that no type can say, namely listener ports in range and
    distinct on each host, an advertised host without scheme or port, explicit heaps large enough to
    start, log and data-disk directories neither repeated nor nested, no setting kafka-metal writes
    itself (node id, roles, listeners, quorum, log directories) overridden through C(broker_properties),
    C(controller_properties) or C(zookeeper_properties), replication settings the brokers can meet,
    the files the inventory names on the controller, and the C(kafka_topics), C(kafka_users) and
    C(kafka_acls) entries Kafka would refuse. Once, two nodes advertising the same host and port, and
    ZooKeeper hosts in a KRaft cluster.
  - A value whose expression uses an undefined variable names that variable (and, for a C(vault_)
    variable, where a vault file goes). A variable that looks like a kafka-metal setting but is none
    (a misspelt name) is warned about, with the setting it resembles.
  - A problem found on several hosts is reported once, with the hosts it concerns.
options:
  require_hosts:
    description:
      - Only check that the inventory has hosts in kafka-metal's groups, and fail when it has none
        (an inventory Ansible could not read, an empty one, or one whose groups are misspelt, which
        would otherwise end in success having done nothing). Run it from C(localhost) before the
        validation of the hosts.
    type: bool
    default: false
  hosts:
    description:
      - The hosts to check, usually V({{ ansible_play_hosts_all }}). The cluster's shape is always checked
        over the whole inventory.
      - Default is every host in the three groups.
    type: list
    elements: str
  earlier:
    description:
      - The registered result of an earlier run of this action in the same playbook run. When it passed
        and checked every one of O(hosts), it is returned as it is instead of checking again, so each role
        can ask for the validation and a playbook pays for it once.
    type: dict
extends_documentation_fragment:
  - metal.kafka.read_only
"""

EXAMPLES = r"""
- name: Validate every host of the play and the cluster's shape
  metal.kafka.kafka_validate:
    hosts: "{{ ansible_play_hosts_all }}"
  run_once: true
  register: __kafka_metal_inventory

- name: The same in a later role of the same run (returns the result above)
  metal.kafka.kafka_validate:
    hosts: "{{ ansible_play_hosts_all }}"
    earlier: "{{ __kafka_metal_inventory | default(omit) }}"
  run_once: true
  register: __kafka_metal_inventory
"""

RETURN = r"""
hosts:
  description: The hosts that were checked.
  returned: success
  type: list
  elements: str
preflight:
  description:
    - What each checked host must offer before its node is set up (the ports of its roles and the service
      user that may hold each, the limits of the Kafka unit, the data disks' devices, whether the running
      kernel must be tunable); the kafka role checks the host against it before changing anything.
  returned: success
  type: dict
errors:
  description: Every problem found.
  returned: failure
  type: list
  elements: str
"""
