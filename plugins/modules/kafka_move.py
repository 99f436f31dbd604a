#!/usr/bin/python
# Copyright: kafka-metal contributors
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kafka_move
short_description: Drain brokers, rebalance a cluster, rebuild a broker, or abort, through the Kafka protocol
version_added: 0.1.0
description:
  - Moves partition replicas between the brokers of a running cluster, from the controller, with the engine
    behind C(kafka-metal broker drain) and C(kafka-metal rebalance).
  - V(drain) moves every replica off O(brokers) and nothing else (rack-aware, preferred leadership moved
    first, new replicas added beside the old ones before the old ones are dropped). V(rebalance) evens out
    replica counts and bytes within O(replica_skew) and O(byte_skew). V(abort) cancels the moves in flight
    and puts every partition back on its original replicas (for a rebuild, it removes the throttles).
  - V(rebuild) brings back a broker whose data disks were replaced (same node id), in two phases around the
    start of the broker on its new, empty disks, which the kafka role formats with the cluster id before it
    starts the broker. O(phase=prepare) checks that every partition it held has another in-sync replica and
    sets the throttles before the broker starts; O(phase=finish) waits until every replica it holds is in
    sync again, removes the throttles and gives the broker back its preferred leadership. A healthy broker
    holding its replicas is left alone (nothing changes).
  - O(throttle) throttles the moving replicas only; the throttle settings found before are put back at the end.
  - An interrupted run is resumed by running it again (the state is kept in O(state_dir) on the controller).
  - In check mode, the plan (moves, bytes to copy, least time at O(throttle)) is returned and nothing changes.
options:
  operation:
    description: What to do.
    type: str
    choices: [drain, rebalance, rebuild, abort]
    required: true
  brokers:
    description: Node ids of the brokers to drain (O(operation=drain)), or the one broker to rebuild.
    type: list
    elements: int
    default: []
  throttle:
    description: Replication throttle in bytes per second (V(20MB), V(1.5MiB), V(500000)); empty for none.
    type: str
    default: ""
  phase:
    description: The part of a rebuild to run (see V(rebuild)).
    type: str
    choices: [prepare, finish]
    default: prepare
  max_moves:
    description: Partitions moving at once.
    type: int
    default: 50
  replica_skew:
    description: Largest spread of replica counts over the mean that a rebalance leaves.
    type: float
    default: 0.10
  byte_skew:
    description: Largest spread of bytes over the mean that a rebalance leaves.
    type: float
    default: 0.15
  state_dir:
    description: Directory on the controller for the state of an operation under way.
    type: path
    default: ~/.kafka-metal/moves
extends_documentation_fragment:
  - metal.kafka.changes
  - metal.kafka.kafka_admin
"""

EXAMPLES = r"""
- name: Drain broker 104, throttled to 20 MB/s
  metal.kafka.kafka_move:
    operation: drain
    brokers: [104]
    throttle: 20MB
    bootstrap_servers: "kafka1.example.com:9092"
    sasl_username: admin
    sasl_password: "{{ vault_kafka_admin_password }}"
    ssl_ca_location: /etc/pki/kafka/ca.pem
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
moves:
  description: The moves planned (before, after, size in bytes); in check mode, what would move.
  returned: always
  type: list
  elements: dict
bytes:
  description: Bytes to copy.
  returned: always
  type: int
lower_bound_seconds:
  description: The least time the copy can take at O(throttle) (null without a throttle).
  returned: always
  type: float
start:
  description: For O(operation=rebuild) and O(phase=prepare), whether the broker still has to be started.
  returned: always
  type: bool
log:
  description: The engine's progress lines.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.metal.kafka.plugins.module_utils import kafka_admin, moves, moving


def build_module():
    return AnsibleModule(
        argument_spec=kafka_admin.argument_spec(
            operation=dict(type="str", choices=["drain", "rebalance", "rebuild", "abort"], required=True),
            brokers=dict(type="list", elements="int", default=[]),
            phase=dict(type="str", choices=["prepare", "finish"], default="prepare"),
            throttle=dict(type="str", default=""),
            max_moves=dict(type="int", default=50),
            replica_skew=dict(type="float", default=0.10),
            byte_skew=dict(type="float", default=0.15),
            state_dir=dict(type="path", default="~/.kafka-metal/moves"),
        ),
        **kafka_admin.module_kwargs(required_if=[("operation", "drain", ("brokers",)),
                                                 ("operation", "rebuild", ("brokers",))]),
    )


def main(cluster_factory=None):
    module = build_module()
    p = module.params
    secrets = kafka_admin.secret_values(p)
    log = []
    try:
        throttle = moving.parse_rate(p["throttle"]) if p["throttle"] else None
        if cluster_factory is None:
            from ansible_collections.metal.kafka.plugins.module_utils import moving_kafka

            cluster = moving_kafka.Cluster(kafka_admin.client_config(p), timeout=float(p.get("timeout") or 30))
        else:
            cluster = cluster_factory(p)
        engine = moving.Engine(cluster, p["state_dir"], say=log.append, throttle=throttle, max_moves=p["max_moves"],
                               replica_skew=p["replica_skew"], byte_skew=p["byte_skew"])
        if p["operation"] == "abort":
            changed = engine.state is not None
            if changed and not module.check_mode:
                engine.abort()
            module.exit_json(changed=changed, moves=[], bytes=0, lower_bound_seconds=None,
                             log=[kafka_admin.redact(x, secrets) for x in log])
        if p["operation"] == "rebuild":
            rebuild(module, engine, p, log, secrets)
        info = engine.dry_run(p["operation"], p["brokers"])
        changed = bool(info["moves"]) or engine.state is not None
        if changed and not module.check_mode:
            engine.run(p["operation"], p["brokers"])
        module.exit_json(changed=changed, moves=info["moves"], bytes=info["bytes"],
                         lower_bound_seconds=info["lower_bound_seconds"], start=False,
                         log=[kafka_admin.redact(x, secrets) for x in log])
    except (moving.MoveError, moves.PlanError, ValueError) as exc:
        module.fail_json(msg=kafka_admin.redact(str(exc), secrets), log=[kafka_admin.redact(x, secrets) for x in log])


def rebuild(module, engine, p, log, secrets):
    if len(p["brokers"]) != 1:
        module.fail_json(msg=f"rebuild takes one broker, not {p['brokers']}: rebuild them one after the other")
    broker = p["brokers"][0]
    info = engine.rebuild_dry_run(broker)
    start = False
    if p["phase"] == "prepare":
        needed = engine.state is not None or engine.rebuild_needed(broker)
        if needed and not module.check_mode:
            start = engine.rebuild_prepare(broker)
    else:
        needed = engine.state is not None
        if needed and not module.check_mode:
            engine.rebuild_finish(broker)
    module.exit_json(changed=needed, moves=info["moves"], bytes=info["bytes"], start=start,
                     lower_bound_seconds=info["lower_bound_seconds"],
                     log=[kafka_admin.redact(x, secrets) for x in log])


if __name__ == "__main__":
    main()
