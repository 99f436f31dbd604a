"""``kafka-metal broker drain|remove|rebuild N`` and ``kafka-metal rebalance``: moving replicas between brokers.

The engine is ``plugins/module_utils/moving.py`` (planning in ``moves.py``); the same code runs behind the
``metal.kafka.kafka_move`` module. Connection settings come from ``--bootstrap-server`` and a Java-style
``--command-config`` file, as for Kafka's own tools. ``remove`` also needs the inventory, to stop the broker on
its host; ``rebuild`` runs ``playbooks/broker_rebuild.yml`` for the host's part (its new disks formatted, the
broker started) between the engine's checks and throttles and its wait.
"""

from __future__ import annotations

import json
import signal
import sys
import time

from . import ensure_collection_path

ensure_collection_path()

from ansible_collections.metal.kafka.plugins.module_utils import moves, moving  # noqa: E402


def _conf(args):
    from . import load

    try:
        return load.client_settings(args.bootstrap_server, args.command_config)
    except load.LoadError as exc:
        raise moving.MoveError(str(exc)) from None


def _engine(args, stop):
    from ansible_collections.metal.kafka.plugins.module_utils import moving_kafka

    start = time.monotonic()

    def say(line):
        print(f"[{time.monotonic() - start:7.1f}s] {line}", flush=True)

    return moving.Engine(moving_kafka.Cluster(_conf(args)), args.state_dir, say=say,
                         throttle=moving.parse_rate(args.throttle) if args.throttle else None, max_moves=args.max_moves,
                         replica_skew=getattr(args, "replica_skew", 0.10), byte_skew=getattr(args, "byte_skew", 0.15),
                         stop=stop)


def _print_plan(info, as_json):
    if as_json:
        print(json.dumps(info, indent=1, sort_keys=True))
        return
    for m in info["moves"]:
        print(f"{m['topic']}-{m['partition']}: {m['before']} -> {m['after']} ({moves._human(m['size'])})")
    bound = info["lower_bound_seconds"]
    writes = f" (less {moves._human(info['write_rate'])}/s of writes into them)" if info.get("write_rate") else ""
    print(f"{info['partitions']} partitions, {moves._human(info['bytes'])} to copy"
          + (f"; at {moves._human(info['throttle'])}/s{writes} at least {bound:.0f} s" if bound is not None else
             "; no throttle given (--throttle), so no lower bound on the time"))


def _run(args, kind, brokers=()):
    stopping = {"asked": False}

    def on_interrupt(signum, frame):
        if stopping["asked"]:
            raise KeyboardInterrupt
        stopping["asked"] = True
        print("\nCtrl-C: stopping; the moves in flight go on in Kafka (run the command again to resume, or with "
              "--abort to undo)", file=sys.stderr, flush=True)

    try:
        engine = _engine(args, lambda: stopping["asked"])
        if args.abort:
            engine.abort()
            return 0
        if args.dry_run:
            _print_plan(engine.dry_run(kind, brokers), args.json)
            return 0
        previous = signal.signal(signal.SIGINT, on_interrupt)
        try:
            engine.run(kind, brokers)
        finally:
            signal.signal(signal.SIGINT, previous)
    except moving.Stopped as exc:
        print(str(exc), file=sys.stderr)
        return 130
    except (moving.MoveError, moves.PlanError, ValueError) as exc:
        print(f"kafka-metal: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_drain(args):
    return _run(args, "drain", args.broker)


def cmd_rebalance(args):
    return _run(args, "rebalance")


def cmd_remove(args):
    """Drain, then stop the broker on its host, unregister it (KRaft) and say what to change in the inventory."""
    from . import rolling as rolling_cli

    ensure_collection_path()
    from ansible_collections.metal.kafka.plugins.module_utils import node as node_state
    from ansible_collections.metal.kafka.plugins.module_utils import rolling

    hosts, known, _ = rolling_cli.inventory_hosts(args.inventory, args.vault_password_file)
    remote = rolling.FabricRemote(known if known else None)
    try:
        found = {}
        for host in hosts:
            if "kafka_brokers" not in host.groups:
                continue
            rc, out, _ = remote.run(host, f"cat {node_state.manifest_path('kafka')}", timeout=60)
            manifest = node_state.read_manifest(out) if rc == 0 else None
            if manifest and manifest.get("node_id") in args.broker:
                found[manifest["node_id"]] = (host, manifest)
        missing = sorted(set(args.broker) - set(found))
        if missing:
            print(f"kafka-metal: no host of the inventory's kafka_brokers group runs broker {missing} (read from each "
                  "host's /etc/kafka-metal/kafka.json): check the node id and the inventory", file=sys.stderr)
            return 2
        combined = sorted(n for n, (_, m) in found.items() if "controller" in m.get("roles", []))
        if combined:
            print(f"kafka-metal: node {combined} is also a controller: removing it would shrink the controller "
                  "quorum; move the controller role off it first (a dedicated controller), then remove the broker",
                  file=sys.stderr)
            return 2
        if not args.dry_run and not args.abort:
            rc = _run(args, "drain", args.broker)
            if rc:
                return rc
        else:
            return _run(args, "drain", args.broker)
        for node_id, (host, manifest) in sorted(found.items()):
            unit = manifest.get("unit") or "kafka"
            rc, _, err = remote.run(host, f"systemctl disable --now {unit}", timeout=300)
            if rc != 0:
                print(f"kafka-metal: stopping {unit} on {host.name} failed: {err.strip()}", file=sys.stderr)
                return 2
            print(f"broker {node_id}: {unit} stopped and disabled on {host.name} (its data directories are left as "
                  "they are)")
            _unregister(args, node_id)
        print("\nchange the inventory before the next run of site.yml, or it brings the broker back:")
        for node_id, (host, _) in sorted(found.items()):
            print(f"  - remove {host.name} from the kafka_brokers group (and its host_vars: kafka_node_id {node_id})")
    finally:
        remote.close()
    return 0


def cmd_rebuild(args):
    """Checks and throttles, the host's part through the playbook (format the new disks, start the broker),
    then progress until every replica is in sync, the throttles removed and leadership given back."""
    import tempfile

    import yaml

    from . import runner

    if args.dry_run:
        try:
            _print_plan(_engine(args, lambda: False).rebuild_dry_run(args.broker), args.json)
        except moving.MoveError as exc:
            print(f"kafka-metal: {exc}", file=sys.stderr)
            return 2
        return 0
    stopping = {"asked": False}
    try:
        engine = _engine(args, lambda: stopping["asked"])
        if args.abort:
            engine.abort()
            return 0
        if engine.rebuild_prepare(args.broker):
            engine.say(f"starting broker {args.broker} on its new disks (playbooks/broker_rebuild.yml, its host "
                       "only)")
            with tempfile.NamedTemporaryFile("w", suffix=".yml") as extra:
                yaml.safe_dump({"kafka_move_brokers": [args.broker], "kafka_move_host_only": True}, extra)
                extra.flush()
                env_vault = {"ANSIBLE_VAULT_PASSWORD_FILE": args.vault_password_file} if args.vault_password_file \
                    else {}
                rc = runner.run_playbook(runner.REPO_ROOT / "playbooks" / "broker_rebuild.yml", args.inventory,
                                         extra_vars_file=extra.name, env=env_vault)
            if rc != 0:
                print(f"kafka-metal: the playbook that starts broker {args.broker} failed (exit {rc}); the throttles "
                      "stay set: fix what it says and run the same command again (or --abort)", file=sys.stderr)
                return 2
        previous = signal.signal(signal.SIGINT, lambda s, f: stopping.update(asked=True))
        try:
            engine.rebuild_finish(args.broker)
        finally:
            signal.signal(signal.SIGINT, previous)
    except moving.NothingToDo as exc:
        print(str(exc))
        return 0
    except moving.Stopped as exc:
        print(str(exc), file=sys.stderr)
        return 130
    except (moving.MoveError, ValueError) as exc:
        print(f"kafka-metal: {exc}", file=sys.stderr)
        return 2
    return 0


def _unregister(args, node_id):
    from ansible_collections.metal.kafka.plugins.module_utils import moving_kafka, wire

    cluster = moving_kafka.Cluster(_conf(args))
    for _ in range(60):
        try:
            cluster.unregister(node_id)
            print(f"broker {node_id}: registration removed from the cluster")
            return
        except (moving.MoveError, wire.ProbeError) as exc:
            text = str(exc)
            if "UNSUPPORTED_VERSION" in text or "error code 35" in text:
                print(f"broker {node_id}: the cluster runs ZooKeeper mode, where a stopped broker's registration "
                      "goes by itself")
                return
            if "BROKER_ID_NOT_REGISTERED" in text:
                print(f"broker {node_id}: not registered any more")
                return
            last = text
        time.sleep(2)
    raise moving.MoveError(f"broker {node_id} could not be unregistered: {last}")


def _connection(p):
    p.add_argument("--bootstrap-server", required=True, help="host:port of brokers, as for Kafka's tools")
    p.add_argument("--command-config", default=None,
                   help="Java client properties (TLS, SASL), as for Kafka's tools; the user must be a super user")
    p.add_argument("--throttle", default=None,
                   help="replication throttle in bytes per second (2MB, 1.5MiB, 500000) on the moving replicas only; "
                        "removed at the end")
    p.add_argument("--max-moves", type=int, default=50, help="partitions moving at once (default 50)")
    p.add_argument("--dry-run", action="store_true", help="print the plan, the bytes to copy and the least time it "
                                                          "can take; change nothing")
    p.add_argument("--json", action="store_true", help="with --dry-run: the plan as JSON")
    p.add_argument("--abort", action="store_true",
                   help="cancel the moves in flight and put every partition back on its original replicas")
    p.add_argument("--state-dir", default="~/.kafka-metal/moves",
                   help="where the state of an operation under way is kept (default ~/.kafka-metal/moves)")


def add_subparsers(sub):
    broker = sub.add_parser("broker", help="drain or remove brokers (move their replicas to the others)")
    bsub = broker.add_subparsers(dest="broker_command", required=True, metavar="ACTION")
    drain = bsub.add_parser("drain", help="move every replica off these brokers (they keep running)")
    drain.add_argument("broker", type=int, nargs="+", help="node id")
    _connection(drain)
    drain.set_defaults(func=cmd_drain)
    remove = bsub.add_parser("remove", help="drain, then stop and unregister these brokers")
    remove.add_argument("broker", type=int, nargs="+", help="node id")
    remove.add_argument("-i", "--inventory", action="append", required=True,
                        help="Ansible inventory (repeatable): to reach the broker's host")
    remove.add_argument("--vault-password-file", help="to read vaulted inventory variables")
    _connection(remove)
    remove.set_defaults(func=cmd_remove)
    rebuild = bsub.add_parser("rebuild", help="bring back a broker whose data disks were replaced (same node id), "
                                              "its replicas fetched back under the throttle")
    rebuild.add_argument("broker", type=int, help="node id")
    rebuild.add_argument("-i", "--inventory", action="append", required=True,
                         help="Ansible inventory (repeatable): the broker's host is prepared and started from it")
    rebuild.add_argument("--vault-password-file", help="to read vaulted inventory variables")
    _connection(rebuild)
    rebuild.set_defaults(func=cmd_rebuild)
    rebalance = sub.add_parser("rebalance", help="even out replicas and bytes across brokers (after brokers join)")
    rebalance.add_argument("--replica-skew", type=float, default=0.10,
                           help="largest spread of replica counts, over the mean (default 0.10)")
    rebalance.add_argument("--byte-skew", type=float, default=0.15,
                           help="largest spread of bytes, over the mean (default 0.15)")
    _connection(rebalance)
    rebalance.set_defaults(func=cmd_rebalance)
