"""The ``kafka-metal`` command line."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import yaml

from . import REPO_ROOT, __version__
from .runner import run_playbook

TOPOLOGIES = {"split": 6, "combined": 3, "zookeeper": 6}


def _topology_brokers(topology_file):
    data = yaml.safe_load(Path(topology_file).read_text())
    return sorted((data.get("kafka_brokers") or {}).get("hosts") or {})


def _topology_version(topology_file):
    """The Kafka version a lab topology asks for (ZooKeeper mode pins 3.9.x), else the role default."""
    data = yaml.safe_load(Path(topology_file).read_text())
    return ((data.get("all") or {}).get("vars") or {}).get("kafka_version") or _default_kafka_version()


def cmd_demo(args):
    """Lab hosts up, site.yml (secured as shipped unless --plaintext), a smoke check, then a client
    configuration and the commands to produce and consume with it."""
    from . import demo, dist, lab, smoke

    t0 = time.monotonic()
    topology = REPO_ROOT / "inventories" / "lab" / f"{args.topology}.yml"
    version = args.kafka_version or _topology_version(topology)
    archive, sha = dist.build(version)
    print(f"kafka-metal: distribution {archive} (sha512 {sha[:16]}...)")
    from .dist_agent import fetch_agent

    agent, _ = fetch_agent()
    print(f"kafka-metal: JMX exporter agent {agent}")
    the_lab = lab.Lab()
    accesses = the_lab.up(TOPOLOGIES[args.topology])
    brokers = _topology_brokers(topology)
    state = demo.Demo(the_lab.state_dir.parent / "demo", secured=not args.plaintext, brokers=len(brokers))
    rc = run_playbook(REPO_ROOT / "site.yml", [the_lab.inventory_file, topology], extra_vars={"kafka_version": version},
                      extra_vars_file=state.write_vars())
    if rc != 0:
        print(f"kafka-metal: site.yml failed (exit {rc}); the lab is still up: `kafka-metal lab status`",
              file=sys.stderr)
        return rc
    address = {a.name: a.address for a in accesses}
    bootstrap = ",".join(f"{address[b]}:9092" for b in brokers)
    print(f"\nbootstrap servers: {bootstrap} ({state.protocol})")
    result = smoke.run(bootstrap, messages=args.messages, extra=state.admin_client_settings())
    print(f"smoke check: topic {result.topic} (RF {result.replication_factor}): produced {result.produced}, "
          f"consumed {result.consumed} in {result.produce_seconds:.1f}s + {result.consume_seconds:.1f}s")
    for problem in result.problems:
        print(f"  problem: {problem}", file=sys.stderr)
    print(state.client_instructions(bootstrap, archive))
    print(f"done in {time.monotonic() - t0:.0f}s; tear down with `kafka-metal lab down`")
    return 0 if result.ok else 1


def cmd_smoke(args):
    from . import load, smoke

    extra = load.read_command_config(args.command_config) if args.command_config else {}
    result = smoke.run(args.bootstrap_server, messages=args.messages, extra=extra)
    print(f"topic {result.topic}: produced {result.produced}, consumed {result.consumed}")
    for problem in result.problems:
        print(f"problem: {problem}", file=sys.stderr)
    return 0 if result.ok else 1


def cmd_load(args):
    """Continuous produce/consume load, verified at the end (run it across a rolling restart)."""
    import json

    from . import load

    extra = load.read_command_config(args.command_config) if args.command_config else {}
    if extra:
        print(f"client settings from {args.command_config}: {load.describe_settings(extra)}")
    report = load.run(args.bootstrap_server, args.duration, topic=args.topic, rate=args.rate, extra=extra,
                      partitions=args.partitions, replication_factor=args.replication_factor, min_isr=args.min_isr,
                      message_timeout_ms=args.message_timeout_ms, drain_timeout=args.drain_timeout,
                      progress=lambda line: print(line, flush=True))
    for note in report.notes():
        print(f"note: {note}")
    for problem in report.problems():
        print(f"problem: {problem}", file=sys.stderr)
    print(report.summary())
    if args.report:
        Path(args.report).write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    return 0 if report.ok else 1


def build_parser():
    from . import backup, dist, groups, lab_cli, luks, migrate, moving, quorum, rolling, status

    parser = argparse.ArgumentParser(
        prog="kafka-metal",
        description="Provision and operate Apache Kafka on bare-metal and VM hosts.",
    )
    parser.add_argument("--version", action="version", version=f"kafka-metal {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    lab_cli.add_subparser(sub)
    dist.add_subparser(sub)
    rolling.add_subparsers(sub)
    luks.add_subparsers(sub)
    backup.add_subparsers(sub)
    moving.add_subparsers(sub)
    migrate.add_subparsers(sub)
    quorum.add_subparsers(sub)
    groups.add_subparsers(sub)
    status.add_subparsers(sub)

    demo = sub.add_parser("demo", help="lab hosts up, site.yml, then a produce/consume smoke check")
    demo.add_argument("--topology", choices=sorted(TOPOLOGIES), default="split",
                      help="split: 3 controllers + 3 brokers (default); combined: 3 combined nodes; "
                           "zookeeper: 3 ZooKeeper + 3 brokers on Kafka 3.9.x")
    demo.add_argument("--kafka-version", dest="kafka_version", default=None,
                      help=f"Kafka version to build and install (default: {_default_kafka_version()}, "
                           "or what the topology asks for)")
    demo.add_argument("--messages", type=int, default=1000, help="messages in the smoke check")
    demo.add_argument("--plaintext", action="store_true",
                      help="no TLS, SASL or ACLs (the default is the secured cluster kafka-metal builds: TLS from "
                           "the cluster's CA, SCRAM-SHA-512, ACLs)")
    demo.set_defaults(func=cmd_demo)

    smoke_p = sub.add_parser("smoke", help="produce to a cluster and consume everything back")
    smoke_p.add_argument("--bootstrap-server", required=True)
    smoke_p.add_argument("--messages", type=int, default=10_000)
    smoke_p.add_argument("--command-config", default=None,
                         help="Java client properties, as for Kafka's tools (TLS, SASL); the user needs to create "
                              "topics: the check makes a fresh one")
    smoke_p.set_defaults(func=cmd_smoke)

    load_p = sub.add_parser("load", help="produce and consume continuously, then verify that nothing was lost")
    load_p.add_argument("--bootstrap-server", required=True)
    load_p.add_argument("--topic", default=None, help="created when missing (default: a new kafka-metal-load-* topic)")
    load_p.add_argument("--rate", type=float, default=200.0, help="records per second (default: 200)")
    load_p.add_argument("--duration", type=float, default=60.0, help="seconds of load (default: 60)")
    load_p.add_argument("--partitions", type=int, default=6, help="partitions of a created topic (default: 6)")
    load_p.add_argument("--replication-factor", type=int, default=None,
                        help="of a created topic (default: 3, or the broker count when smaller)")
    load_p.add_argument("--min-isr", type=int, default=2, help="min.insync.replicas of a created topic (default: 2)")
    load_p.add_argument("--message-timeout-ms", type=int, default=300_000,
                        help="how long the producer retries a record before giving up (default: 300000)")
    load_p.add_argument("--drain-timeout", type=float, default=120.0,
                        help="seconds to wait for acks and for the consumer after the load (default: 120)")
    load_p.add_argument("--command-config", default=None,
                        help="Java client properties (as for Kafka's tools): security.protocol, sasl.mechanism, "
                             "sasl.jaas.config, a PEM ssl.truststore.location")
    load_p.add_argument("--report", default=None, help="write the report as JSON to this file")
    load_p.set_defaults(func=cmd_load)
    return parser


def _default_kafka_version():
    defaults = yaml.safe_load((REPO_ROOT / "roles" / "kafka" / "defaults" / "main.yml").read_text())
    return defaults["kafka_version"]


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
