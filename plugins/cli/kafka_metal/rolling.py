"""``kafka-metal roll`` and ``kafka-metal upgrade``: the rolling engine of the collection, from a shell.

Hosts come from the Ansible inventory (groups ``kafka_controllers``, ``kafka_brokers``,
``zookeeper``) with their connection settings as Ansible's ssh connection takes them (address, port,
user, key, jump hosts, a sudo password; a ``UserKnownHostsFile`` in ``ansible_ssh_common_args``); the engine
(``plugins/module_utils/rolling.py``, also behind the ``kafka_roll`` module) reaches them over SSH
and the cluster through the admin API. Progress is printed as it happens, a summary at the end.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import sys
import time
from pathlib import Path

from . import REPO_ROOT, ensure_collection_path

GROUPS = ("zookeeper", "kafka_controllers", "kafka_brokers")
CONNECTION_VARS = ("ansible_host", "ansible_port", "ansible_ssh_port", "ansible_user", "ansible_ssh_user",
                   "ansible_remote_user", "ansible_ssh_private_key_file",
                   "ansible_private_key_file", "ansible_ssh_common_args", "ansible_ssh_extra_args", "ansible_ssh_args",
                   "ansible_connection", "ansible_become_method", "ansible_become_user", "ansible_become_password",
                   "ansible_become_pass", "ansible_sudo_pass", "ansible_sudo_password", "ansible_password",
                   "ansible_ssh_pass", "ansible_ssh_password", "kafka_cluster_name")


def _engine():
    ensure_collection_path()
    from ansible_collections.metal.kafka.plugins.module_utils import rolling

    return rolling


def inventory_hosts(inventories, vault_password_file=None, limit=None):
    """``(hosts, known_hosts, cluster_name)`` from Ansible inventories, through Ansible's own loader."""
    rolling = _engine()
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar
    from ansible.vars.manager import VariableManager

    loader = DataLoader()
    vault_file = vault_password_file or os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE")
    if vault_file:
        from ansible.cli import CLI

        CLI.setup_vault_secrets(loader, vault_ids=[], vault_password_files=[vault_file])
    inventory = InventoryManager(loader=loader, sources=[str(i) for i in inventories])
    manager = VariableManager(loader=loader, inventory=inventory)
    names, seen = [], set()
    for group in GROUPS:
        for host in inventory.get_hosts(pattern=group) if group in inventory.groups else []:
            if host.name not in seen:
                seen.add(host.name)
                names.append(host.name)
    if not names:
        raise SystemExit(f"no host in the groups {', '.join(GROUPS)} of {', '.join(map(str, inventories))}")
    hosts, known, cluster, problems = [], None, None, []
    for name in names:
        host = inventory.get_host(name)
        allvars = manager.get_vars(host=host)
        templar = Templar(loader=loader, variables=allvars)
        v = {}
        for key in CONNECTION_VARS:
            if key in allvars:
                try:
                    v[key] = templar.template(allvars[key])
                except Exception:  # an unrelated variable that cannot be templated here is not needed
                    v[key] = None
        entry, found = rolling.host_from_vars(name, v, [g.name for g in host.get_groups()])
        problems += found
        args = v.get("ansible_ssh_common_args") or ""
        m = re.search(r"UserKnownHostsFile=(\S+)", args)
        if m and not known:
            known = m.group(1)
        cluster = cluster or v.get("kafka_cluster_name")
        hosts.append(entry)
    if problems:
        raise SystemExit("the rolling engine cannot reach these hosts the way Ansible does; nothing was "
                         "restarted:\n- " + "\n- ".join(problems))
    if limit:
        unknown = sorted(set(limit) - set(names))
        if unknown:
            raise SystemExit(f"--limit names hosts that are not in the inventory's cluster groups: {unknown}")
    return hosts, known, cluster or "kafka"


def _printer(start):
    def report(event, text="", **_fields):
        print(f"[{time.monotonic() - start:7.1f}s] {event:<10} {text}", flush=True)

    return report


def _state_file(cluster, kind):
    return str(Path.home() / ".kafka-metal" / "rolls" / f"{cluster}-{kind}.json")


def _options(args, rolling, cluster, to_version=None):
    return rolling.Options(
        force=args.all, ignore_preflight=args.force_unsafe, to_version=to_version, batch_size=args.batch_size,
        elect_leaders=not args.no_elect, gate_timeout=args.gate_timeout, ready_timeout=args.ready_timeout,
        isr_timeout=args.isr_timeout, limit=args.limit or [], check_mode=args.check,
        state_file=_state_file(cluster, "upgrade" if to_version else "restart"))


def run_roll(args, to_version=None):
    rolling = _engine()
    hosts, known, cluster = inventory_hosts(args.inventory, args.vault_password_file, args.limit)
    known = args.known_hosts or known or os.path.expanduser("~/.ssh/known_hosts")
    start = time.monotonic()
    report = _printer(start)
    if args.force_unsafe:
        print("WARNING: --force: the roll starts even if the preflight finds the cluster unhealthy; the per-node "
              "gates still hold", file=sys.stderr)
    roller = rolling.Roller(hosts, _options(args, rolling, cluster, to_version),
                            rolling.FabricRemote(known if os.path.exists(known) else None), report)
    def on_interrupt(signum, frame):
        if roller.stop_requested:
            raise KeyboardInterrupt
        roller.stop_requested = True
        print("\nCtrl-C: stopping after the current node, which is finished first (Ctrl-C again to abort now, "
              "which can leave it down)", file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        summary = roller.run()
    except rolling.RollInterrupted as exc:
        print(roller.summary.text())
        print(f"\ninterrupted: {exc.reason} (state in {roller.o.state_file})", file=sys.stderr)
        print("interrupted; run the same command again to resume")
        return 130
    except KeyboardInterrupt:
        print(roller.summary.text())
        print(f"\ninterrupted; run the same command again to resume (state in {roller.o.state_file})", file=sys.stderr)
        return 130
    except rolling.RollError as exc:
        print(roller.summary.text())
        print(f"\nkafka-metal {'upgrade' if to_version else 'roll'} stopped on {exc.host or 'the cluster'} at step "
              f"'{exc.step}': {exc.reason}", file=sys.stderr)
        if args.summary_json:
            Path(args.summary_json).write_text(json.dumps(roller.summary.as_dict(), indent=2) + "\n")
        return 2
    finally:
        signal.signal(signal.SIGINT, previous)
    print(summary.text())
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(summary.as_dict(), indent=2) + "\n")
    return 0


def cmd_roll(args):
    return run_roll(args)


def cmd_upgrade(args):
    from .runner import run_playbook

    rolling = _engine()
    if not rolling.VERSION_RE.match(args.to):
        raise SystemExit(f"--to {args.to!r} is not a Kafka version like 4.1.1")
    if args.finalize:
        return finalize(args, rolling)
    if args.feature or args.dynamic_quorum:
        raise SystemExit("--feature and --dynamic-quorum go with --finalize, once every node runs the new version")
    if not args.check:
        # unpack the new version beside the running one on every host (verified archive, no restart)
        extra = {"kafka_version": args.to, "kafka_switch_version": "false"}
        print(f"installing Kafka {args.to} beside the running version (playbooks/install_version.yml)", flush=True)
        if args.vault_password_file:
            os.environ["ANSIBLE_VAULT_PASSWORD_FILE"] = os.path.abspath(args.vault_password_file)
        rc = run_playbook(REPO_ROOT / "playbooks" / "install_version.yml", list(args.inventory), extra)
        if rc != 0:
            print(f"installing {args.to} failed (ansible-playbook exit {rc}); nothing was restarted", file=sys.stderr)
            return rc
    rc = run_roll(args, to_version=args.to)
    if rc == 0 and not args.check:
        print(f"every node runs {args.to}. The feature level is unchanged, so a downgrade is still possible; when "
              f"satisfied, raise it (cannot be undone): kafka-metal upgrade --to {args.to} --finalize -i ...")
    return rc


def client_address(props):
    """(host, port) of a broker's client listener, from its server.properties: the first advertised listener that
    is not the inter-broker one (Kafka's tools run against it with admin.properties)."""
    advertised = _engine().listeners(props.get("advertised.listeners"))
    internal = props.get("inter.broker.listener.name", "").upper()
    name = next((n for n in advertised if n != internal), next(iter(advertised)))
    return advertised[name]


def finalize(args, rolling):
    """Raise metadata.version to the release every node runs, plus only what the operator names
    (module_utils/features.py, the same code as the kafka_features module), from a broker host."""
    from ansible_collections.metal.kafka.plugins.module_utils import features, properties
    from ansible_collections.metal.kafka.plugins.module_utils import node as node_state

    hosts, known, _cluster = inventory_hosts(args.inventory, args.vault_password_file)
    known = args.known_hosts or known or os.path.expanduser("~/.ssh/known_hosts")
    remote = rolling.FabricRemote(known if os.path.exists(known) else None)
    broker = next((h for h in hosts if "kafka_brokers" in h.groups), None)
    if broker is None:
        raise SystemExit("no host in kafka_brokers")
    try:
        # where the broker's files are: its manifest says (the inventory may have moved them), as for the roll
        rc, text, _ = remote.run(broker, f"cat {node_state.manifest_path('kafka')}")
        manifest = node_state.read_manifest(text if rc == 0 else None) or {}
        config_dir = manifest.get("config_dir") or "/etc/kafka"
        install_root = manifest.get("install_root") or "/opt/kafka"
        rc, server, _ = remote.run(broker, f"cat {config_dir}/server.properties")
        if rc != 0:
            raise SystemExit(f"{broker.name}: cannot read {config_dir}/server.properties")
        props = properties.parse(server)
        if "zookeeper.connect" in props and "process.roles" not in props:
            raise SystemExit("ZooKeeper mode: the feature level is inter.broker.protocol.version; set it in "
                             "broker_properties and run kafka-metal roll")
        host, port = client_address(props)

        def run(argv):
            return remote.run(broker, "LC_ALL=C KAFKA_HEAP_OPTS=-Xmx256m " + shlex.join(argv), timeout=300)

        tools = features.Tools(run, f"{install_root}/current", f"{host}:{port}", f"{config_dir}/admin.properties")
        print(f"{broker.name}: reading the feature levels and Kafka's version mapping for {args.to}", flush=True)
        try:
            result = features.finalize(tools, args.to, args.feature, args.dynamic_quorum,
                                       features.static_voters(props), check=args.check)
        except features.FeatureError as exc:
            print(f"kafka-metal upgrade --finalize: {exc}", file=sys.stderr)
            return 2
        print("\n".join(result.plan.lines()))
        if not result.changed:
            return 0
        if args.check:
            print(f"check: Kafka accepts the change ({result.kafka_said}); nothing was changed")
            return 0
        print(f"done: {result.kafka_said}")
        print("finalized levels now: " + ", ".join(f"{n}={lv.show()}" for n, lv in sorted(result.after.items())))
        return 0
    finally:
        remote.close()


def _common(p):
    p.add_argument("-i", "--inventory", action="append", required=True,
                   help="Ansible inventory (repeatable), as for ansible-playbook")
    p.add_argument("--limit", action="append", help="restart only this host (repeatable); all hosts still gate")
    p.add_argument("--all", action="store_true",
                   help="restart every node, changed or not (an interrupted run resumes where it stopped)")
    p.add_argument("--force", "--force-unsafe", dest="force_unsafe", action="store_true",
                   help="start even if the preflight finds the cluster unhealthy (loud; gates still apply)")
    p.add_argument("--batch-size", type=int, default=1,
                   help="restart up to N brokers at once, only where the planner proves it safe (default 1)")
    p.add_argument("--no-elect", action="store_true", help="do not elect preferred leaders after each broker")
    p.add_argument("--check", action="store_true", help="preflight and plan only; restart nothing")
    p.add_argument("--gate-timeout", type=float, default=600.0)
    p.add_argument("--ready-timeout", type=float, default=1800.0)
    p.add_argument("--isr-timeout", type=float, default=1800.0)
    p.add_argument("--known-hosts", help="known_hosts file (default: from ansible_ssh_common_args, else ~/.ssh)")
    p.add_argument("--vault-password-file", help="to read vaulted inventory variables")
    p.add_argument("--summary-json", help="write the summary as JSON to this file")


def add_subparsers(sub):
    roll_p = sub.add_parser("roll", help="safe rolling restart of the nodes that need it (or --all)")
    _common(roll_p)
    roll_p.set_defaults(func=cmd_roll)
    up = sub.add_parser("upgrade", help="rolling upgrade to another Kafka version (then --finalize)")
    up.add_argument("--to", required=True, help="target Kafka version, e.g. 4.1.1")
    up.add_argument("--finalize", action="store_true",
                    help="after every node runs --to: raise metadata.version to the release's level, and only the "
                         "features named with --feature; prints what moves and what does not first; cannot be "
                         "undone (with --check: Kafka validates it, nothing changes)")
    up.add_argument("--feature", action="append", default=[], metavar="NAME=LEVEL",
                    help="with --finalize: also raise this feature (repeatable), e.g. group.version=1")
    up.add_argument("--dynamic-quorum", action="store_true",
                    help="with --finalize: also raise kraft.version, which makes a static controller quorum "
                         "dynamic, for good (never done otherwise)")
    _common(up)
    up.set_defaults(func=cmd_upgrade)
