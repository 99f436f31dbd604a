#!/usr/bin/python
# Copyright: kafka-metal contributors
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kafka_validate
short_description: Check a Kafka inventory before any host is changed
version_added: 0.1.0
description:
  - An action that runs on the controller only (it never connects to the host).
  - Checks one host's resolved settings (version, metadata mode, data directories, archive source
    and checksum, Kafka settings given as strings) and, unless O(topology=false), the cluster's
    shape (odd, non-zero controller count, brokers present, unique node ids).
  - Fails with every problem found, each naming the host or variable and the fix.
options:
  node:
    description:
      - This host's settings. Keys, all optional, V(version), V(metadata_mode), V(cluster_id),
        V(log_dirs), V(metadata_dir), V(archive_src), V(archive_url), V(archive_checksum),
        V(properties) (a mapping of variable name to a dict of Kafka settings).
    type: dict
    default: {}
  topology:
    description: Also check the cluster's groups and node ids.
    type: bool
    default: true
  metadata_mode:
    description: The cluster's metadata mode, for the topology checks.
    type: str
    default: kraft
  ensemble:
    description: Check the ZooKeeper ensemble (odd size, unique zookeeper_id from 1 to 255).
    type: bool
    default: false
  zookeeper_group:
    description: Inventory group of the ZooKeeper ensemble.
    type: str
    default: zookeeper
  controllers_group:
    description: Inventory group of the KRaft controllers.
    type: str
    default: kafka_controllers
  brokers_group:
    description: Inventory group of the brokers.
    type: str
    default: kafka_brokers
extends_documentation_fragment:
  - metal.kafka.read_only
"""

EXAMPLES = r"""
- name: Validate this host and the cluster
  metal.kafka.kafka_validate:
    metadata_mode: "{{ kafka_metadata_mode }}"
    node:
      version: "{{ kafka_version }}"
      log_dirs: "{{ broker_log_dirs }}"
      properties:
        broker_properties: "{{ broker_properties }}"
"""

RETURN = r"""
errors:
  description: Every problem found.
  returned: failure
  type: list
  elements: str
"""
