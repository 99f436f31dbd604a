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
  - A problem found on several hosts is reported once, with the hosts it concerns.
options:
  hosts:
    description:
      - The hosts to check, usually V({{ ansible_play_hosts_all }}). The cluster's shape is always checked
        over the whole inventory.
      - Default is every host in the three groups.
    type: list
    elements: str
extends_documentation_fragment:
  - metal.kafka.read_only
"""

EXAMPLES = r"""
- name: Validate every host of the play and the cluster's shape
  metal.kafka.kafka_validate:
    hosts: "{{ ansible_play_hosts_all }}"
  run_once: true
"""

RETURN = r"""
hosts:
  description: The hosts that were checked.
  returned: success
  type: list
  elements: str
errors:
  description: Every problem found.
  returned: failure
  type: list
  elements: str
"""
