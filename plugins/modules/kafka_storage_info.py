#!/usr/bin/python
# Copyright: kafka-metal contributors
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kafka_storage_info
short_description: Read the cluster and node ids recorded in a Kafka node's storage directories
version_added: 0.1.0
description:
  - Reads C(meta.properties) from each given directory; never changes anything.
  - Used to keep one cluster id per cluster across runs (see the C(kafka) role).
options:
  dirs:
    description: Directories to inspect (missing ones are reported as such).
    type: list
    elements: path
    required: true
extends_documentation_fragment:
  - metal.kafka.read_only
"""

EXAMPLES = r"""
- name: Read existing cluster ids
  metal.kafka.kafka_storage_info:
    dirs: [/var/lib/kafka/data, /var/lib/kafka/metadata]
  register: __kafka_storage
"""

RETURN = r"""
cluster_ids:
  description: Distinct cluster ids found.
  returned: always
  type: list
  elements: str
dirs:
  description: Per directory, whether it exists, is empty, and its meta.properties content.
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.metal.kafka.plugins.module_utils.storage import cluster_ids, inspect_dir


def main():
    module = AnsibleModule(
        argument_spec=dict(dirs=dict(type="list", elements="path", required=True)),
        supports_check_mode=True,
    )
    states = [inspect_dir(d) for d in dict.fromkeys(module.params["dirs"])]
    module.exit_json(changed=False, cluster_ids=cluster_ids(states), dirs=states)


if __name__ == "__main__":
    main()
