#!/usr/bin/python
# Copyright: kafka-metal contributors
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kafka_roll
short_description: Safe rolling restart or rolling upgrade of a Kafka cluster
version_added: 0.2.0
description:
  - Restarts the nodes of a KRaft or ZooKeeper-mode cluster one at a time (or brokers in batches proven
    safe), each only when its gate allows it, and waits until it serves and has caught up before the next.
  - Runs on the Ansible controller (C(delegate_to=localhost), C(run_once)). It reaches the hosts over SSH
    itself (Fabric on Paramiko, the same engine as C(kafka-metal roll)) and the cluster through the Kafka
    admin API, with the admin settings it reads from each host's C(admin.properties).
  - "Order: KRaft controllers that are not the active one, the active controller (re-read before every
    step), then brokers; in ZooKeeper mode the ZooKeeper followers, the leader, then brokers with the
    controller broker last."
  - "Gates: a broker goes down only if every partition it hosts keeps C(min.insync.replicas) in sync
    without it; a controller only if a caught-up majority remains; a ZooKeeper member only if a serving
    majority remains. A closed gate is waited for with back-off, then fails the run."
  - Only nodes that need it are restarted (a configuration, certificate, unit or binary changed after
    the process started, or the node is not on O(to_version)), unless O(force).
  - Fail-stop; a run after a failure skips nodes already done.
options:
  hosts:
    description: The hosts of the cluster (Kafka nodes and ZooKeeper members) and how to reach them.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Inventory name.
        type: str
        required: true
      address:
        description: Address to connect to (C(ansible_host)).
        type: str
        required: true
      groups:
        description: Inventory groups of the host (C(kafka_controllers), C(kafka_brokers), C(zookeeper)).
        type: list
        elements: str
        default: []
      port:
        description: SSH port.
        type: int
        default: 22
      user:
        description: SSH user; other than root, commands run through C(sudo).
        type: str
        default: root
      key_file:
        description: SSH private key.
        type: path
      jump:
        description:
          - Jump hosts, first hop first (as C(ssh -J)); each with C(address), C(port) and C(user) (SSH's own
            default user when missing). Their keys must be in O(known_hosts).
        type: list
        elements: dict
        default: []
        suboptions:
          address:
            description: The jump host's name or address.
            type: str
            required: true
          port:
            description: Its SSH port.
            type: int
            default: 22
          user:
            description: The user to log in as there (SSH's own default when missing).
            type: str
      proxy_command:
        description: A C(ProxyCommand) to reach the host through (C(%h), C(%p) are the host and port).
        type: str
      password:
        description: SSH login password (keys are tried first).
        type: str
      become_password:
        description: The password C(sudo) asks of O(hosts[].user) (other than root); without it C(sudo -n) is used.
        type: str
  known_hosts:
    description: known_hosts file with the hosts' keys (unknown host keys are refused).
    type: path
    default: ~/.ssh/known_hosts
  force:
    description: Restart every node, changed or not. An interrupted forced roll resumes where it stopped.
    type: bool
    default: false
  force_unsafe:
    description: Start even when the preflight finds the cluster unhealthy. Loud; the per-node gates still apply.
    type: bool
    default: false
  to_version:
    description:
      - Rolling upgrade to this Kafka version, which must already be unpacked beside the running one.
      - Refused for 4.x on a ZooKeeper-mode cluster (4.x has no ZooKeeper mode).
    type: str
  scala_version:
    description: Scala version of the distribution (its directory is C(kafka_<scala>-<version>)).
    type: str
    default: "2.13"
  batch_size:
    description: Most brokers restarted at once; a batch is only formed when no partition would drop below its minimum.
    type: int
    default: 1
  elect_leaders:
    description: Elect preferred leaders of a broker's partitions after it is back.
    type: bool
    default: true
  gate_timeout:
    description: Seconds a closed gate is waited for (with back-off) before the run fails.
    type: int
    default: 600
  ready_timeout:
    description: Seconds to wait for a started node to serve (log recovery included; it is never restarted meanwhile).
    type: int
    default: 1800
  isr_timeout:
    description: Seconds to wait for a restarted broker to rejoin every ISR (a controller to catch up).
    type: int
    default: 1800
  limit:
    description: Restart only these hosts (the others still count in every gate).
    type: list
    elements: str
    default: []
  config_dir:
    description: Kafka's configuration directory on the hosts.
    type: path
    default: /etc/kafka
  zookeeper_config_dir:
    description: ZooKeeper's configuration directory on the hosts.
    type: path
    default: /etc/zookeeper
  install_root:
    description: Where Kafka versions are unpacked on the hosts (with the C(current) link).
    type: path
    default: /opt/kafka
  state_file:
    description: File on the controller that remembers a forced roll's starting point, to resume it.
    type: path
  progress_file:
    description: File on the controller that receives one JSON line per progress event (C(tail -f) it).
    type: path
attributes:
  check_mode:
    support: full
    description: Runs the preflight and reports which nodes would be restarted, and why; restarts nothing.
  diff_mode:
    support: none
    description: Restarts have no diff; the result lists every node with the reason.
author:
  - kafka-metal maintainers (@kafka-metal)
requirements:
  - fabric, paramiko and confluent-kafka on the controller
"""

EXAMPLES = r"""
- name: Roll the nodes whose configuration changed
  metal.kafka.kafka_roll:
    hosts:
      - { name: node1, address: 10.0.0.1, groups: [kafka_controllers] }
      - { name: node4, address: 10.0.0.4, groups: [kafka_brokers] }
  delegate_to: localhost
  run_once: true

- name: Upgrade to 4.1.1, two brokers at a time where that is proven safe
  metal.kafka.kafka_roll:
    hosts: "{{ kafka_roll_hosts }}"
    to_version: 4.1.1
    batch_size: 2
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
summary:
  description: What happened to every node, with timings in seconds.
  returned: always
  type: dict
  contains:
    mode: {description: kraft or zookeeper, type: str}
    nodes:
      description: "Per node: name, label, action (restarted, skipped, would restart), reason, gate_s, stop_s,
        start_s, catchup_s"
      type: list
    total_s: {description: Wall time of the roll, type: float}
    work_s: {description: Sum of stop + start + catch-up over restarted nodes, type: float}
    overhead: {description: "total_s / work_s - 1 (time spent gating, planning and checking)", type: float}
    restarted: {description: Names of the restarted hosts, type: list}
    failed: {description: "Where and why the roll stopped, or null", type: str}
text:
  description: The summary as the command line prints it.
  returned: always
  type: str
"""

import json  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule, missing_required_lib  # noqa: E402
from ansible_collections.metal.kafka.plugins.module_utils import rolling  # noqa: E402

try:
    import fabric  # noqa: F401

    HAS_FABRIC = True
except ImportError:
    HAS_FABRIC = False


def options_from_params(p, check_mode=False):
    return rolling.Options(
        force=p["force"], ignore_preflight=p["force_unsafe"], to_version=p["to_version"],
        scala_version=p["scala_version"], batch_size=p["batch_size"], elect_leaders=p["elect_leaders"],
        gate_timeout=float(p["gate_timeout"]), ready_timeout=float(p["ready_timeout"]),
        isr_timeout=float(p["isr_timeout"]), limit=list(p["limit"]), config_dir=p["config_dir"],
        zookeeper_config_dir=p["zookeeper_config_dir"], install_root=p["install_root"],
        state_file=p["state_file"], check_mode=check_mode)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            hosts=dict(type="list", elements="dict", required=True, options=dict(
                name=dict(type="str", required=True), address=dict(type="str", required=True),
                groups=dict(type="list", elements="str", default=[]), port=dict(type="int", default=22),
                user=dict(type="str", default="root"), key_file=dict(type="path"),
                jump=dict(type="list", elements="dict", default=[], options=dict(
                    address=dict(type="str", required=True), port=dict(type="int", default=22),
                    user=dict(type="str"))),
                proxy_command=dict(type="str"), password=dict(type="str", no_log=True),
                become_password=dict(type="str", no_log=True))),
            known_hosts=dict(type="path", default="~/.ssh/known_hosts"),
            force=dict(type="bool", default=False),
            force_unsafe=dict(type="bool", default=False),
            to_version=dict(type="str"),
            scala_version=dict(type="str", default="2.13"),
            batch_size=dict(type="int", default=1),
            elect_leaders=dict(type="bool", default=True),
            gate_timeout=dict(type="int", default=600),
            ready_timeout=dict(type="int", default=1800),
            isr_timeout=dict(type="int", default=1800),
            limit=dict(type="list", elements="str", default=[]),
            config_dir=dict(type="path", default="/etc/kafka"),
            zookeeper_config_dir=dict(type="path", default="/etc/zookeeper"),
            install_root=dict(type="path", default="/opt/kafka"),
            state_file=dict(type="path"),
            progress_file=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    if not HAS_FABRIC:
        module.fail_json(msg=missing_required_lib("fabric"))
    p = module.params
    progress = open(p["progress_file"], "a") if p["progress_file"] else None  # noqa: SIM115

    def report(event, **fields):
        if progress:
            progress.write(json.dumps({"time": round(time.time(), 3), "event": event, **fields}) + "\n")
            progress.flush()

    hosts = [rolling.Host(name=h["name"], address=h["address"], groups=h["groups"], port=h["port"], user=h["user"],
                          key_file=h["key_file"], jump=h["jump"], proxy_command=h["proxy_command"],
                          password=h["password"], become_password=h["become_password"]) for h in p["hosts"]]
    known = p["known_hosts"]  # a path option: already expanded
    roller = rolling.Roller(hosts, options_from_params(p, module.check_mode),
                            rolling.FabricRemote(known if os.path.exists(known) else None), report)
    try:
        summary = roller.run()
    except rolling.RollError as exc:
        report("failed", text=str(exc))
        if progress:
            progress.close()
        module.fail_json(msg=f"roll stopped: {exc}", summary=roller.summary.as_dict(), text=roller.summary.text(),
                         host=exc.host, step=exc.step)
    report("done", text=summary.text())
    if progress:
        progress.close()
    module.exit_json(changed=summary.changed, summary=summary.as_dict(), text=summary.text())


if __name__ == "__main__":
    main()
