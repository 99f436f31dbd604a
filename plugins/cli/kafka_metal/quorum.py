"""``kafka-metal quorum status|add|remove|replace|dynamic``: the KRaft controller quorum's membership (Kafka 4.1 and
later), with Kafka's own ``kafka-metadata-quorum`` run over SSH and the decisions of module_utils/quorum.py.

Describing and removing go through a broker (its client listener and admin.properties, as ``upgrade --finalize``);
adding runs on the new controller's host, because Kafka's tool reads the controller's node id, metadata directory
id and controller endpoint from its configuration there. A controller that is not formatted yet is set up by
site.yml limited to its host (a controller formatted for an existing dynamic quorum joins as an observer)."""

from __future__ import annotations

import json
import os
import shlex
import sys
import time

from . import ensure_collection_path, runner
from .rolling import client_address, inventory_hosts

SITE = runner.REPO_ROOT / "site.yml"
# The keys of a controller's server.properties that Kafka's add-controller reads (identity and endpoint).
CONTROLLER_KEYS = ("process.roles", "node.id", "metadata.log.dir", "log.dirs", "listeners", "advertised.listeners",
                   "controller.listener.names", "listener.security.protocol.map")


def _mods():
    ensure_collection_path()
    from ansible_collections.metal.kafka.plugins.module_utils import features, properties, quorum
    from ansible_collections.metal.kafka.plugins.module_utils import node as node_state

    return features, properties, quorum, node_state


class Cluster:
    """The inventory's cluster as the quorum commands reach it."""

    def __init__(self, args):
        ensure_collection_path()
        from ansible_collections.metal.kafka.plugins.module_utils import rolling

        self.args = args
        self.hosts, known, self.name = inventory_hosts(args.inventory, args.vault_password_file)
        known = args.known_hosts or known or os.path.expanduser("~/.ssh/known_hosts")
        self.remote = rolling.FabricRemote(known if os.path.exists(known) else None)
        self.rolling = rolling
        self.controllers = [h for h in self.hosts if "kafka_controllers" in h.groups]
        self.brokers = [h for h in self.hosts if "kafka_brokers" in h.groups]
        self._nodes = {}
        self._tools = None

    def close(self):
        self.remote.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def host(self, name):
        found = [h for h in self.hosts if h.name == name]
        if not found:
            raise SystemExit(f"{name} is not a host of the inventory's cluster groups")
        return found[0]

    def node(self, host, fresh=False):
        """What ``host`` runs: its configuration (from its manifest's paths), its metadata directory id, whether
        the service runs."""
        _f, properties, _q, node_state = _mods()
        if fresh or host.name not in self._nodes:
            script = (f"cat {node_state.manifest_path('kafka')} 2>/dev/null; echo; echo '@@'; "
                      "c=$(sed -n 's/.*\"config_dir\": *\"\\([^\"]*\\)\".*/\\1/p' "
                      f"{node_state.manifest_path('kafka')} 2>/dev/null); c=${{c:-/etc/kafka}}; "
                      "cat $c/server.properties 2>/dev/null; echo '@@'; "
                      "m=$(sed -n 's/^metadata\\.log\\.dir=//p' $c/server.properties 2>/dev/null); "
                      "cat $m/meta.properties 2>/dev/null; echo '@@'; systemctl is-active kafka.service")
            try:
                rc, out, _err = self.remote.run(host, script)
            except self.rolling.RollError as exc:  # a host that is down: its node is unknown, the others go on
                self._nodes[host.name] = {"config_dir": None, "install_root": None, "props": {}, "node_id": None,
                                          "directory_id": None, "active": False, "unreachable": str(exc)}
                return self._nodes[host.name]
            parts = (out or "").split("@@")
            if len(parts) < 4:
                raise SystemExit(f"{host.name}: cannot read the node ({rc})")
            manifest = node_state.read_manifest(parts[0].strip() or None) or {}
            props = properties.parse(parts[1])
            meta = properties.parse(parts[2])
            self._nodes[host.name] = {
                "config_dir": manifest.get("config_dir") or "/etc/kafka",
                "install_root": manifest.get("install_root") or "/opt/kafka",
                "props": props, "node_id": int(props["node.id"]) if props.get("node.id", "").isdigit() else None,
                "directory_id": meta.get("directory.id") or None, "active": parts[3].strip() == "active"}
        return self._nodes[host.name]

    def names(self):
        out = {}
        for h in self.controllers + self.brokers:
            n = self.node(h)["node_id"]
            if n is not None:
                out[n] = h.name
        return out

    def broker(self):
        for b in self.brokers:
            if self.node(b)["active"] and self.node(b)["props"]:
                return b
        raise SystemExit("no broker of the inventory runs: the quorum is read through a broker")

    def run_on(self, host, argv, timeout=300):
        return self.remote.run(host, "LC_ALL=C KAFKA_HEAP_OPTS=-Xmx256m " + shlex.join(argv), timeout=timeout)

    def tools(self):
        features, _p, quorum, _n = _mods()
        if self._tools is None:
            b = self.broker()
            node = self.node(b)
            address, port = client_address(node["props"])
            home = f"{node['install_root']}/current"
            config = f"{node['config_dir']}/admin.properties"
            rc, _o, _e = self.remote.run(b, f"test -f {shlex.quote(config)}")
            config = config if rc == 0 else None
            self._tools = (quorum.Tools(lambda argv: self.run_on(b, argv), home, f"{address}:{port}", config),
                           features.Tools(lambda argv: self.run_on(b, argv), home, f"{address}:{port}", config),
                           f"{address}:{port}", config)
        return self._tools

    def describe(self):
        return self.tools()[0].describe()

    def kraft_version(self):
        features = _mods()[0]
        level = self.tools()[1].describe().get(features.KRAFT)
        return int(level.finalized) if level is not None and level.finalized.isdigit() else 0

    def converge(self, limit=None, extra=None):
        env = {"ANSIBLE_VAULT_PASSWORD_FILE": os.path.abspath(self.args.vault_password_file)} \
            if self.args.vault_password_file else {}
        print(f"running site.yml{' on ' + limit if limit else ''}", flush=True)
        rc = runner.run_playbook(SITE, self.args.inventory, extra_vars=extra, env=env, limit=limit)
        if rc != 0:
            raise SystemExit(f"site.yml failed (exit {rc}); nothing more was changed in the quorum")
        self._nodes.clear()


def _wait(what, probe, timeout, every=2.0):
    """Call ``probe()`` until it returns a true value (returned) or ``timeout`` passes (SystemExit naming ``what``)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            result, last = probe()
        except Exception as exc:  # noqa: BLE001 - a tool failing while nodes restart: retried until the deadline
            result, last = None, str(exc)
        if result:
            return result
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}: {last}")
        time.sleep(every)


def _print_status(cluster, q):
    quorum = _mods()[2]
    controllers = {cluster.node(h)["node_id"]: h.name for h in cluster.controllers}
    print("\n".join(quorum.table(q, {n: h for n, h in controllers.items() if n is not None})), flush=True)


def _voter_of(cluster, host, node_id=None, directory_id=None):
    """The voter to remove: the one with ``node_id`` (and ``directory_id``) when given, else the host's: the voter
    with its node id and directory id, or the only voter with its node id."""
    q = cluster.describe()
    if node_id is None:
        node = cluster.node(host, fresh=True)
        if node.get("unreachable"):
            raise SystemExit(f"{host.name} cannot be reached ({node['unreachable']}). To remove its voter anyway, "
                             "name it: kafka-metal quorum remove --node-id N --directory-id D (kafka-metal quorum "
                             "status lists the voters)")
        if node["node_id"] is None:
            raise SystemExit(f"{host.name}: no node.id in its server.properties; is it a Kafka node of this cluster?")
        node_id, own = node["node_id"], node["directory_id"]
    else:
        own = directory_id
    mine = [m for m in q.voters if m.node_id == int(node_id)]
    exact = [m for m in mine if m.directory_id == own]
    if exact:
        return q, exact[0]
    if len(mine) == 1 and directory_id is None:
        return q, mine[0]
    if not mine:
        raise SystemExit(f"node {node_id} is not a voter; nothing to remove")
    if directory_id is not None:
        raise SystemExit(f"node {node_id} has no voter with directory id {directory_id} (its voters: "
                         f"{', '.join(m.directory_id for m in mine)})")
    raise SystemExit(f"node {node_id} has {len(mine)} voters and none with the host's directory id: name the one to "
                     "remove with --directory-id, or use kafka-metal quorum replace")


def _need_dynamic(cluster):
    if cluster.kraft_version() < 1:
        raise SystemExit("the controller quorum is static (kraft.version 0): its members are fixed by "
                         "controller.quorum.voters. Move it to a dynamic quorum first (cannot be undone): set "
                         "kafka_controller_quorum: dynamic in the inventory and run kafka-metal quorum dynamic")


def _start(cluster, host):
    """Format (site.yml on the host) when the controller has no metadata yet, else start it when it is stopped;
    returns its node."""
    node = cluster.node(host, fresh=True)
    if node["directory_id"] is None or not node["props"]:
        cluster.converge(limit=host.name)
        node = cluster.node(host, fresh=True)
    elif not node["active"]:
        print(f"{host.name}: starting kafka.service", flush=True)
        rc, _o, err = cluster.remote.run(host, "systemctl start kafka.service")
        if rc != 0:
            raise SystemExit(f"{host.name}: systemctl start kafka.service failed: {err.strip()}")
        node = cluster.node(host, fresh=True)
    if node["directory_id"] is None:
        raise SystemExit(f"{host.name}: its metadata directory has no directory.id after site.yml")
    return node


def _caught_up_observer(cluster, host, timeout):
    """Wait until ``host``'s node has caught up as an observer (or votes already with its directory); the quorum."""
    quorum = _mods()[2]
    node = cluster.node(host)
    node_id, directory_id = node["node_id"], node["directory_id"]

    def ready():
        q = cluster.describe()
        if any(m.voter for m in q.find(node_id, directory_id)):
            return q, ""
        problems = quorum.add_problems(q, node_id, directory_id)
        return (q if not problems else None), "; ".join(problems)

    print(f"{host.name}: waiting until node {node_id} ({directory_id}) has caught up", flush=True)
    return _wait(f"{host.name} to catch up", ready, timeout)


def _add(cluster, host, timeout, q=None):
    """Wait until ``host`` has caught up as an observer (unless ``q``, a fresh reading, shows it has), add it, wait
    until it is a voter that has caught up."""
    quorum = _mods()[2]
    node = cluster.node(host)
    node_id, directory_id = node["node_id"], node["directory_id"]
    if q is None or quorum.add_problems(q, node_id, directory_id):
        q = _caught_up_observer(cluster, host, timeout)
    if any(m.voter for m in q.find(node_id, directory_id)):
        return
    props = node["props"]
    endpoints = cluster.rolling.listeners(props.get("advertised.listeners") or props.get("listeners"))
    names = [n.strip().upper() for n in str(props.get("controller.listener.names", "")).split(",") if n.strip()]
    for name in names:
        address = endpoints.get(name, ("", 0))[0]
        if address in ("", "0.0.0.0", "::"):  # noqa: S104 (a check, not a bind)
            raise SystemExit(f"{host.name}: its controller listener {name} advertises no address it can be reached "
                             "at (the voter's endpoint); converge it with kafka_controller_quorum: dynamic first")
    # Kafka's add-controller reads the controller's identity from its configuration on its host. It talks to the
    # voters on the controller listener, with the node's own admin.properties (written for that listener) when the
    # cluster has one; both go into one private file, removed right after.
    bootstrap = str(props.get("controller.quorum.bootstrap.servers") or "").strip()
    if not bootstrap:
        raise SystemExit(f"{host.name}: no controller.quorum.bootstrap.servers in its configuration; converge it "
                         "with kafka_controller_quorum: dynamic first")
    admin = f"{node['config_dir']}/admin.properties"
    keys = "|".join(k.replace(".", "\\.") for k in CONTROLLER_KEYS)
    conf = f"{node['config_dir']}/server.properties"
    tool = f"{node['install_root']}/current/bin/{quorum.TOOL}"
    script = (f"set -e; umask 077; f=$(mktemp); trap 'rm -f \"$f\"' EXIT; "
              f"{{ if [ -f {shlex.quote(admin)} ]; then cat {shlex.quote(admin)}; fi; "
              f"grep -E '^({keys})=' {shlex.quote(conf)}; }} > \"$f\"; "
              f"LC_ALL=C KAFKA_HEAP_OPTS=-Xmx256m {shlex.quote(tool)} --bootstrap-controller {shlex.quote(bootstrap)} "
              "--command-config \"$f\" add-controller")
    print(f"{host.name}: adding node {node_id} ({directory_id}) to the voters", flush=True)
    rc, out, err = cluster.remote.run(host, script, timeout=300)
    if rc != 0:
        raise SystemExit(f"{host.name}: kafka-metadata-quorum add-controller failed (exit {rc}): "
                         f"{quorum.kafka_words(out, err)}")

    def voter_ready():
        q = cluster.describe()
        mine = [m for m in q.find(node_id, directory_id) if m.voter]
        return (q if mine and quorum.caught_up(q, mine[0]) else None), f"voters {[m.key for m in q.voters]}"

    _wait(f"{host.name} to vote and catch up", voter_ready, timeout)


def _remove(cluster, q, member):
    quorum = _mods()[2]
    problems = quorum.removal_problems(q, member.node_id, member.directory_id)
    if problems:
        _print_status(cluster, q)
        print("kafka-metal quorum: refused, nothing was changed: " + "; ".join(problems), file=sys.stderr)
        return False
    print(f"removing node {member.node_id} ({member.directory_id}) from the voters", flush=True)
    cluster.tools()[0].remove(member.node_id, member.directory_id)

    def gone():
        q = cluster.describe()
        return (q if not any(m.voter for m in q.find(member.node_id, member.directory_id)) else None), "still a voter"

    return _wait(f"node {member.node_id} to leave the voters", gone, 120)


def _guarded(func):
    """A Kafka tool's failure ends the command with Kafka's own words (exit 1), not a traceback."""
    def run(args):
        features, _p, quorum, _n = _mods()
        try:
            return func(args)
        except (quorum.QuorumError, features.FeatureError) as exc:
            print(f"kafka-metal quorum {args.quorum}: {exc}", file=sys.stderr)
            return 1

    return run


def cmd_status(args):
    with Cluster(args) as cluster:
        q = cluster.describe()
        kv = cluster.kraft_version()
        quorum = _mods()[2]
        if args.json:
            print(json.dumps({"kraft_version": kv, "dynamic": kv >= 1, "leader": q.leader, "epoch": q.epoch,
                              "high_watermark": q.high_watermark,
                              "members": [{**m.__dict__, "caught_up": quorum.caught_up(q, m),
                                           "host": cluster.names().get(m.node_id)} for m in q.members]}, indent=2))
            return 0
        print(f"controller quorum: {'dynamic' if kv >= 1 else 'static'} (kraft.version {kv})")
        _print_status(cluster, q)
        in_quorum = {m.node_id for m in q.voters}
        missing = [h.name for h in cluster.controllers if cluster.node(h)["node_id"] not in in_quorum]
        if missing:
            print(f"controllers of the inventory that do not vote: {', '.join(missing)}")
        return 0


def cmd_add(args):
    with Cluster(args) as cluster:
        host = cluster.host(args.host)
        if host not in cluster.controllers:
            raise SystemExit(f"{host.name} is not in kafka_controllers: add it to the group first (site.yml then "
                             "sets it up as a controller that joins the quorum)")
        _need_dynamic(cluster)
        started = time.monotonic()
        _start(cluster, host)
        _add(cluster, host, args.timeout)
        _print_status(cluster, cluster.describe())
        print(f"{host.name} is a voter ({time.monotonic() - started:.0f} s)")
        return 0


def cmd_remove(args):
    with Cluster(args) as cluster:
        if args.host is None and args.node_id is None:
            raise SystemExit("name the controller to remove: its host, or --node-id (with --directory-id when the "
                             "node has several voters)")
        host = cluster.host(args.host) if args.host else None
        _need_dynamic(cluster)
        q, member = _voter_of(cluster, host, args.node_id, args.directory_id)
        if not _remove(cluster, q, member):
            return 2
        stopped = False
        if host is not None and not args.keep_running and not cluster.node(host).get("unreachable"):
            print(f"{host.name}: stopping kafka.service", flush=True)
            cluster.remote.run(host, "systemctl stop kafka.service")
            stopped = True
        _print_status(cluster, cluster.describe())
        name = host.name if host is not None else f"node {member.node_id}"
        print(f"{name} no longer votes{' and is stopped' if stopped else ''}. Take it out of kafka_controllers in "
              f"the inventory, or bring it back with kafka-metal quorum add HOST")
        return 0


def cmd_replace(args):
    quorum = _mods()[2]
    with Cluster(args) as cluster:
        host = cluster.host(args.host)
        if host not in cluster.controllers:
            raise SystemExit(f"{host.name} is not in kafka_controllers")
        _need_dynamic(cluster)
        started = time.monotonic()
        node = _start(cluster, host)
        q = cluster.describe()
        stale = quorum.stale_voters(q, node["node_id"], node["directory_id"])
        if not stale and any(m.voter for m in q.find(node["node_id"], node["directory_id"])):
            print(f"{host.name} votes with its own metadata directory ({node['directory_id']}): nothing to replace")
            return 0
        # the new directory catches up as an observer first, so that the quorum is whole again right after
        q = _caught_up_observer(cluster, host, args.timeout)
        for member in stale:
            q = _remove(cluster, q, member)
            if not q:
                return 2
        _add(cluster, host, args.timeout, q)

        def whole():
            q = cluster.describe()
            behind = [m.node_id for m in q.voters if not quorum.caught_up(q, m)]
            return (q if not behind else None), f"voters behind: {behind}"

        # done when every voter has caught up: the quorum is as whole as before the directory was lost
        q = _wait("every voter to catch up", whole, args.timeout)
        _print_status(cluster, q)
        print(f"{host.name} replaced: node {node['node_id']} votes with directory {node['directory_id']}; all voters "
              f"caught up ({time.monotonic() - started:.0f} s)")
        return 0


def cmd_dynamic(args):
    features = _mods()[0]
    with Cluster(args) as cluster:
        missing = [h.name for h in cluster.controllers if not cluster.node(h)["directory_id"]]
        if missing:
            raise SystemExit(f"controllers without a metadata directory id: {', '.join(missing)}; a dynamic quorum "
                             "records each voter's directory id (formatted by Kafka 3.9 or later)")
        kv = cluster.kraft_version()
        if args.check:
            if kv < 1:
                cluster.tools()[1].call("upgrade", "--feature", f"{features.KRAFT}=1", "--dry-run",
                                        what="kafka-features upgrade --dry-run")
                print("check: Kafka accepts raising kraft.version to 1; nothing was changed")
            print("check: a converge would then move every node to controller.quorum.bootstrap.servers (a roll)")
            return 0
        if kv < 1:
            print("raising kraft.version to 1: the controller quorum becomes dynamic, for good", flush=True)
            cluster.tools()[1].call("upgrade", "--feature", f"{features.KRAFT}=1", what="kafka-features upgrade")
            _wait("kraft.version 1", lambda: (cluster.kraft_version() >= 1, "kraft.version 0"), 60)
        else:
            print(f"kraft.version is {kv} already: the quorum is dynamic")
        # the nodes move from controller.quorum.voters to controller.quorum.bootstrap.servers (a roll)
        cluster.converge(extra={"kafka_controller_quorum": "dynamic", "kafka_quorum_dynamic_confirmed": "true"})
        _print_status(cluster, cluster.describe())
        print("the controller quorum is dynamic; keep kafka_controller_quorum: dynamic in the inventory")
        return 0


def add_subparsers(sub):
    q = sub.add_parser("quorum", help="the KRaft controller quorum: status, add, remove, replace, dynamic (4.1+)",
                       description="Membership of a dynamic controller quorum (Kafka 4.1 and later), through Kafka's "
                                   "own kafka-metadata-quorum, with the checks Kafka leaves to the operator.")
    qsub = q.add_subparsers(dest="quorum", required=True, metavar="ACTION")

    actions = [
        ("status", cmd_status, "voters, controller observers, lag and whether each has caught up"),
        ("add", cmd_add, "make a controller of kafka_controllers a voter: set it up (formatted without initial "
                         "voters) or start it, wait until it has caught up, add it"),
        ("remove", cmd_remove, "remove a controller from the voters (refused when the remaining voters would not "
                               "keep a caught-up majority), then stop it"),
        ("replace", cmd_replace, "a controller whose metadata directory was lost: set it up again (new directory "
                                 "id), remove its stale voter, add the new one"),
        ("dynamic", cmd_dynamic, "move a static quorum to a dynamic one: raise kraft.version (cannot be undone), "
                                 "then converge the nodes to controller.quorum.bootstrap.servers"),
    ]
    for name, func, text in actions:
        p = qsub.add_parser(name, help=text)
        p.add_argument("-i", "--inventory", action="append", required=True, help="inventory (repeatable)")
        p.add_argument("--known-hosts", help="known_hosts file (default: from ansible_ssh_common_args, else ~/.ssh)")
        p.add_argument("--vault-password-file", help="to read vaulted inventory variables")
        if name in ("add", "replace"):
            p.add_argument("host")
        if name == "remove":
            p.add_argument("host", nargs="?", help="the controller's host (omit for one that cannot be reached)")
            p.add_argument("--node-id", type=int, help="the voter's node id, for a host that cannot be reached")
            p.add_argument("--directory-id", help="the voter's directory id, when its node id has several voters")
        if name in ("add", "replace"):
            p.add_argument("--timeout", type=float, default=300.0,
                           help="seconds to wait for it to catch up (default 300)")
        p.set_defaults(func=_guarded(func))
        if name == "status":
            p.add_argument("--json", action="store_true", help="print JSON")
        elif name == "remove":
            p.add_argument("--keep-running", action="store_true", help="do not stop it (it goes on as an observer)")
        elif name == "dynamic":
            p.add_argument("--check", action="store_true", help="let Kafka validate the change; change nothing")
