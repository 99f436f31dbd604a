#!/usr/bin/python
# Copyright: kafka-metal contributors
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kafka_features
short_description: Finalize a KRaft upgrade by raising only the feature levels asked for
version_added: 0.3.0
description:
  - Runs on a broker host once every node runs the new release (C(run_once)), with that release's own
    C(kafka-features.sh), through the admin client settings in O(command_config).
  - Reads the cluster's finalized feature levels (C(describe)) and Kafka's version mapping for the target
    release (C(version-mapping)), then raises C(metadata.version) to the release's level and the features
    named in O(features); nothing else. Features the release maps higher but that were not named keep their
    level, and the returned plan says so.
  - C(kraft.version) is raised only with O(dynamic_quorum), never through O(features) and never implicitly;
    raising it turns a static controller quorum dynamic and cannot be undone.
  - Nothing is ever lowered. A second run changes nothing.
  - In check mode Kafka validates the planned change (C(kafka-features upgrade --dry-run)) and nothing changes.
  - After the change the levels are read again, and the run fails if any feature is not where the plan put it.
  - ZooKeeper-mode clusters have no C(metadata.version); their level is C(inter.broker.protocol.version).
options:
  version:
    description: Target Kafka version (C(4.1.1)) or release (C(4.1)); every node must already run it.
    type: str
    required: true
  features:
    description:
      - "Further features to raise, as C(name -> level) (C(group.version: 1)); each must be within the range
        every node supports and not below its current level."
      - C(metadata.version) follows O(version), and C(kraft.version) is raised only by O(dynamic_quorum).
    type: dict
    default: {}
  dynamic_quorum:
    description:
      - Raise C(kraft.version) to the release's level, which makes the controller quorum dynamic, for good.
      - The run warns, and the returned plan says, that the controllers' C(controller.quorum.voters) no longer
        decides the voters afterwards.
    type: bool
    default: false
  bootstrap_server:
    description: A broker listener (C(host:port)) the admin client reaches.
    type: str
    required: true
  command_config:
    description: Admin client settings (security) for Kafka's tools on this host; root-only.
    type: path
  kafka_home:
    description: The Kafka installation whose tools are used (the release every node runs).
    type: path
    default: /opt/kafka/current
  config:
    description: This node's C(server.properties); tells whether the quorum is configured with static voters.
    type: path
    default: /etc/kafka/server.properties
  java_home:
    description: Java for Kafka's tools (the default Java when unset).
    type: path
extends_documentation_fragment:
  - metal.kafka.changes
"""

EXAMPLES = r"""
- name: Raise metadata.version to 4.1 (and nothing else)
  metal.kafka.kafka_features:
    version: "4.1.1"
    bootstrap_server: "{{ ansible_host }}:9092"
    command_config: /etc/kafka/admin.properties
  run_once: true

- name: Also raise group.version
  metal.kafka.kafka_features:
    version: "4.1.1"
    features:
      group.version: 1
    bootstrap_server: "{{ ansible_host }}:9092"
    command_config: /etc/kafka/admin.properties
  run_once: true
"""

RETURN = r"""
plan:
  description: What moves and what does not, with the reason, one line each (warnings last).
  returned: always
  type: list
  elements: str
changes:
  description: The features raised (or, in check mode, that would be), with their levels before and after.
  returned: always
  type: list
  elements: dict
features_before:
  description: Finalized level of every feature before the run (metadata.version by number).
  returned: success
  type: dict
features_after:
  description: Finalized level of every feature after the run, read back from the cluster.
  returned: success
  type: dict
kafka_said:
  description: What C(kafka-features upgrade) (or its C(--dry-run) in check mode) answered.
  returned: when changed
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.metal.kafka.plugins.module_utils import features, properties
from ansible_collections.metal.kafka.plugins.module_utils.tools import tool_env


def build_module():
    return AnsibleModule(
        argument_spec=dict(
            version=dict(type="str", required=True),
            features=dict(type="dict", default={}),
            dynamic_quorum=dict(type="bool", default=False),
            bootstrap_server=dict(type="str", required=True),
            command_config=dict(type="path"),
            kafka_home=dict(type="path", default="/opt/kafka/current"),
            config=dict(type="path", default="/etc/kafka/server.properties"),
            java_home=dict(type="path"),
        ),
        supports_check_mode=True,
    )


def run(module):
    p = module.params
    try:
        with open(p["config"]) as fh:
            static = features.static_voters(properties.parse(fh.read()))
    except OSError as exc:
        module.fail_json(msg=f"cannot read {p['config']} ({exc.strerror}): run this on a Kafka node")
    env = tool_env(p["java_home"])

    def call(argv):
        return module.run_command(argv, environ_update=env)

    tools = features.Tools(call, p["kafka_home"], p["bootstrap_server"], p["command_config"])
    try:
        result = features.finalize(tools, p["version"], p["features"], p["dynamic_quorum"], static,
                                   check=module.check_mode)
    except features.FeatureError as exc:
        module.fail_json(msg=str(exc))
    out = result.as_dict()
    for warning in result.plan.warnings:
        module.warn(warning)
    if result.changed:
        out["diff"] = dict(
            before="".join(f"{c.name}: {c.before_text}\n" for c in result.plan.changes),
            after="".join(f"{c.name}: {c.after_text}\n" for c in result.plan.changes),
        )
    module.exit_json(**out)


def main():
    run(build_module())


if __name__ == "__main__":
    main()
