#!/usr/bin/python
# Copyright: kafka-metal contributors
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: zookeeper_info
short_description: Report a ZooKeeper ensemble's health, optionally waiting for it
version_added: 0.1.0
description:
  - Asks every ensemble member C(srvr) (a four-letter word that must be in C(4lw.commands.whitelist))
    and reports each member's mode, the leader, and whether a quorum is serving.
  - With O(wait_for), polls until the condition holds or O(timeout) passes (no fixed sleep).
  - Never changes anything.
options:
  members:
    description: Addresses of every ensemble member.
    type: list
    elements: str
    required: true
  port:
    description: Client port of the members.
    type: int
    default: 2181
  wait_for:
    description:
      - V(none) reports at once. V(quorum) waits for one leader and a serving majority.
        V(healthy) waits for one leader and every member serving.
    type: str
    choices: [none, quorum, healthy]
    default: none
  timeout:
    description: Seconds to wait for O(wait_for).
    type: int
    default: 180
  brokers:
    description:
      - Brokers (C(host:port) of a listener reached with the security options below) to ask which broker
        is the active controller; in ZooKeeper mode the controller is one of the brokers. With TLS, each
        broker's certificate must carry the host given here unless O(server_hostname) is set.
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - metal.kafka.read_only
  - metal.kafka.probe_security
"""

EXAMPLES = r"""
- name: Wait until every ZooKeeper node is back in the ensemble
  metal.kafka.zookeeper_info:
    members: [10.0.0.11, 10.0.0.12, 10.0.0.13]
    wait_for: healthy
  register: __zk
"""

RETURN = r"""
leader:
  description: Address of the leader, or null when there is none.
  returned: always
  type: str
quorum:
  description: Whether one leader and a majority of members are serving.
  returned: always
  type: bool
healthy:
  description: Whether one leader and every member are serving.
  returned: always
  type: bool
members:
  description: Per member, its address, whether it serves, its mode and zxid.
  returned: always
  type: list
  elements: dict
controller_id:
  description: Broker id of the active controller, when O(brokers) is given and one answered.
  returned: when brokers are given
  type: int
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.metal.kafka.plugins.module_utils import wire, zookeeper


def snapshot(members, port):
    states = [zookeeper.member_state(m, port) for m in members]
    return states, zookeeper.ensemble_status(states)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            members=dict(type="list", elements="str", required=True),
            port=dict(type="int", default=2181),
            wait_for=dict(type="str", choices=["none", "quorum", "healthy"], default="none"),
            timeout=dict(type="int", default=180),
            brokers=dict(type="list", elements="str", default=[]),
            **wire.SECURITY_ARGUMENT_SPEC,
        ),
        required_if=wire.SECURITY_REQUIRED_IF,
        supports_check_mode=True,
    )
    p = module.params
    start = time.monotonic()
    while True:
        try:
            states, status = snapshot(p["members"], p["port"])
        except zookeeper.ZooKeeperError as exc:
            module.fail_json(msg=str(exc))
        done = p["wait_for"] == "none" or status[p["wait_for"]]
        if done:
            if p["brokers"]:
                try:
                    status["controller_id"], status["controller_reported_by"] = wire.active_controller(
                        p["brokers"], security=wire.security_from_params(p))
                except wire.ProbeError as exc:
                    module.fail_json(msg=f"cannot tell the active controller: {exc}", members=states, **status)
            module.exit_json(changed=False, members=states, waited=round(time.monotonic() - start, 1), **status)
        if time.monotonic() - start > p["timeout"]:
            module.fail_json(
                msg=f"ZooKeeper ensemble not {p['wait_for']} after {p['timeout']}s: leaders {status['leaders']}, "
                    f"followers {status['followers']}, down {status['down']}; see `journalctl -u zookeeper` there",
                members=states, **status)
        time.sleep(1.0)


if __name__ == "__main__":
    main()
