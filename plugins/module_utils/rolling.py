# Copyright: kafka-metal contributors
# Apache License 2.0
"""Run a safe rolling restart or rolling upgrade: the I/O around :mod:`roll`'s decisions.

One engine for both entry points: the ``kafka_roll`` module (``playbooks/rolling_restart.yml``,
``playbooks/rolling_upgrade.yml``) and ``kafka-metal roll`` / ``kafka-metal upgrade``.

What it needs from the caller is the inventory's hosts (address, SSH user/port/key, groups).
Everything else is read from the hosts themselves over SSH, so the roll acts on what runs, not on
what an inventory says should run: ``server.properties`` (roles, node id, log dirs, listeners,
rack), ``admin.properties`` (how the admin reaches the cluster; root-only, read into memory, never
printed), the trust store, ``zoo.cfg``, and each unit's state. The cluster is read through the
Kafka admin API (partitions, ISR, ``min.insync.replicas``) and the wire probes of :mod:`wire`
(DescribeQuorum, Metadata) and :mod:`zookeeper` (four-letter words).

Per node: gate (wait with back-off, never bypassed) -> ``systemctl stop`` (a controlled shutdown,
bounded by the unit's TimeoutStopSec) -> clean-shutdown check -> (upgrade: switch the ``current``
link) -> ``systemctl start`` -> wait until it runs and serves (waiting through log recovery; a unit
that fails stops the roll) -> wait until it is back in every ISR (or, for a controller, caught up
with the quorum) -> optionally elect preferred leaders. Any failure stops the run and names host,
step and reason; nodes not yet reached are untouched.

The engine in three parts: :mod:`rolling_transport` (the hosts and SSH), :mod:`rolling_discovery` (each
node as its own files describe it) and this module (options, results, the cluster as the controller sees it,
and the roll itself).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import tempfile
import time
from dataclasses import dataclass, field

from ansible_collections.metal.kafka.plugins.module_utils import node as node_state
from ansible_collections.metal.kafka.plugins.module_utils import properties, roll, wire, zookeeper

# The engine's parts, named here as well so that callers keep one module to import.
from ansible_collections.metal.kafka.plugins.module_utils.rolling_discovery import (  # noqa: F401
    HOST_PROBE,
    Node,
    jaas_credentials,
    kafka_node,
    listeners,
    protocol_map,
    zookeeper_node,
)
from ansible_collections.metal.kafka.plugins.module_utils.rolling_transport import (  # noqa: F401
    FabricRemote,
    Host,
    RollError,
    RollInterrupted,
    connection,
    connection_problems,
    host_from_vars,
)

VERSION_RE = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+$")


# ---------------------------------------------------------------------------
# Options and results
# ---------------------------------------------------------------------------


@dataclass
class Options:
    force: bool = False  # restart every node, even unchanged ones
    ignore_preflight: bool = False  # start despite preflight problems (loud)
    to_version: str | None = None  # rolling upgrade to this Kafka version
    scala_version: str = "2.13"
    batch_size: int = 1  # brokers restarted at once, only when proven safe
    elect_leaders: bool = True
    gate_timeout: float = 600.0
    ready_timeout: float = 1800.0  # log recovery can be long: wait, never restart during it
    isr_timeout: float = 1800.0
    stop_timeout: float = 600.0  # ssh timeout around systemctl stop (the unit's TimeoutStopSec rules)
    max_lag_ms: int = roll.DEFAULT_MAX_LAG_MS
    max_lag_offsets: int = roll.DEFAULT_MAX_LAG_OFFSETS
    limit: list = field(default_factory=list)  # host names: roll only these (others still gate)
    config_dir: str = "/etc/kafka"
    zookeeper_config_dir: str = "/etc/zookeeper"
    install_root: str = "/opt/kafka"
    state_file: str | None = None  # where an unfinished roll is remembered, to resume it
    resume_max_age: float = 12 * 3600.0  # an unfinished roll older than this is not resumed
    check_mode: bool = False  # plan only: preflight and what would be restarted


@dataclass
class NodeResult:
    name: str
    label: str
    action: str  # restarted | skipped | would restart | failed
    reason: str = ""
    gate_s: float = 0.0
    stop_s: float = 0.0
    start_s: float = 0.0
    catchup_s: float = 0.0
    clean_shutdown: bool | None = None
    from_dist: str | None = None
    to_dist: str | None = None
    started_ms: int = 0

    @property
    def work_s(self):
        return self.stop_s + self.start_s + self.catchup_s

    def as_dict(self):
        d = dict(self.__dict__)
        d["work_s"] = round(self.work_s, 2)
        for k in ("gate_s", "stop_s", "start_s", "catchup_s"):
            d[k] = round(d[k], 2)
        return d


@dataclass
class Summary:
    mode: str = ""
    kind: str = "restart"
    nodes: list = field(default_factory=list)
    preflight: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    total_s: float = 0.0
    failed: str | None = None
    resumed: bool = False

    @property
    def restarted(self):
        return [n for n in self.nodes if n.action == "restarted"]

    @property
    def changed(self):
        return bool(self.restarted) or any(n.action == "would restart" for n in self.nodes)

    @property
    def work_s(self):
        return sum(n.work_s for n in self.restarted)

    @property
    def overhead(self):
        """Roll time over the sum of stop + start + catch-up of the restarted nodes, minus one."""
        return (self.total_s / self.work_s - 1.0) if self.work_s > 0 else None

    def as_dict(self):
        return {"mode": self.mode, "kind": self.kind, "nodes": [n.as_dict() for n in self.nodes],
                "preflight": list(self.preflight), "warnings": list(self.warnings), "total_s": round(self.total_s, 2),
                "work_s": round(self.work_s, 2),
                "overhead": None if self.overhead is None else round(self.overhead, 4),
                "restarted": [n.name for n in self.restarted], "failed": self.failed, "resumed": self.resumed}

    def text(self):
        lines = [f"{self.kind} of a {self.mode} cluster: {len(self.restarted)} node(s) restarted in "
                 f"{self.total_s:.1f} s"]
        for n in self.nodes:
            if n.action == "restarted":
                ver = f", {n.from_dist} -> {n.to_dist}" if n.to_dist and n.from_dist != n.to_dist else ""
                lines.append(f"  {n.label}: restarted (gate {n.gate_s:.1f} s, stop {n.stop_s:.1f} s, start "
                             f"{n.start_s:.1f} s, catch-up {n.catchup_s:.1f} s{ver})")
            else:
                lines.append(f"  {n.label}: {n.action}{' - ' + n.reason if n.reason else ''}")
        if self.work_s:
            lines.append(f"  sum of stop+start+catch-up {self.work_s:.1f} s; roll overhead "
                         f"{100 * self.overhead:.1f}%")
        for w in self.warnings:
            lines.append(f"  warning: {w}")
        if self.failed:
            lines.append(f"  STOPPED: {self.failed}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------
# The cluster, as seen from the controller
# ---------------------------------------------------------------------------


class ClusterView:
    """Reads partitions (admin API), the KRaft quorum (DescribeQuorum) and the ZooKeeper ensemble."""

    def __init__(self, nodes, admin_conf, timeout=15.0):
        self.nodes = nodes
        self.brokers = [n for n in nodes if n.kind == "kafka" and "broker" in n.roles]
        self.zk = [n for n in nodes if n.kind == "zookeeper"]
        self.controllers = [n for n in nodes if n.kind == "kafka" and "broker" not in n.roles]
        bootstrap = ",".join(f"{n.client[0]}:{n.client[1]}" for n in self.brokers)
        self.admin_conf = {"bootstrap.servers": bootstrap, **admin_conf}
        self.timeout = timeout
        self._admin = None

    @property
    def admin(self):
        if self._admin is None:
            from confluent_kafka.admin import AdminClient

            self._admin = AdminClient(self.admin_conf)
        return self._admin

    def partitions(self):
        """Every partition with replicas, ISR, leader and its effective ``min.insync.replicas``."""
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import ConfigResource

        md = self.admin.list_topics(timeout=self.timeout)
        topics = [t for t in md.topics if md.topics[t].error is None]
        min_isr, gone = {}, set()
        if topics:
            futures = self.admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, t) for t in topics],
                                                  request_timeout=self.timeout)
            for res, fut in futures.items():
                try:
                    entry = fut.result(timeout=self.timeout).get("min.insync.replicas")
                except KafkaException as exc:
                    if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                        raise
                    gone.add(res.name)  # deleted since the listing: no partitions left to keep in sync
                    continue
                min_isr[res.name] = int(entry.value) if entry is not None and entry.value is not None else 1
        out = []
        for t in sorted(set(topics) - gone):
            for pid, p in sorted(md.topics[t].partitions.items()):
                out.append({"topic": t, "partition": pid, "replicas": list(p.replicas), "isr": list(p.isrs),
                            "leader": p.leader, "min_isr": min_isr.get(t, 1)})
        return out

    def quorum(self):
        errors = []
        # brokers first; in the middle of a migration ZooKeeper-mode brokers cannot answer, the controllers can
        for n in self.brokers + self.controllers:
            host, port, security = n.probe
            try:
                q = wire.describe_quorum(host, port, timeout=5.0, security=security)
                q["now_ms"] = int(time.time() * 1000)
                return q
            except (OSError, wire.ProbeError) as exc:
                errors.append(f"{n.name}: {exc}")
        raise wire.ProbeError("no broker answered DescribeQuorum: " + "; ".join(errors))

    def zookeeper(self):
        members = []
        for n in self.zk:
            host, port, _ = n.probe
            try:
                state = zookeeper.member_state(host, port, timeout=3.0)
                mode = state.get("mode")
            except (OSError, zookeeper.ZooKeeperError):
                mode = "down"
            members.append({"host": n.name, "mode": mode})
        if not self.brokers:  # an ensemble rolled before its brokers exist: no controller to look for
            return {"members": members}
        return {"members": members, "controller_id": self.controller_broker()}

    def controller_broker(self):
        for n in self.brokers:
            host, port, security = n.probe
            try:
                return wire.metadata(host, port, timeout=5.0, security=security)["controller_id"]
            except (OSError, wire.ProbeError):
                continue
        return -1

    def cluster_id(self):
        for n in self.brokers:
            host, port, security = n.probe
            try:
                return wire.metadata(host, port, timeout=5.0, security=security)["cluster_id"]
            except (OSError, wire.ProbeError):
                continue
        return None

    def broker_alive(self, node):
        host, port, security = node.probe
        md = wire.metadata(host, port, timeout=5.0, security=security)
        return node.node_id in {b["node_id"] for b in md["brokers"]}

    def elect_preferred(self, broker_id, partitions):
        from confluent_kafka import ElectionType, TopicPartition

        mine = [TopicPartition(p["topic"], p["partition"]) for p in partitions
                if p["replicas"] and p["replicas"][0] == broker_id and p["leader"] != broker_id]
        if not mine:
            return 0
        # (confluent-kafka 2.16 rejects its documented timeout keywords here; result() bounds the wait)
        result = self.admin.elect_leaders(ElectionType.PREFERRED, mine).result(timeout=self.timeout * 2)
        return sum(1 for err in result.values() if err is None)

    def close(self):
        self._admin = None


# ---------------------------------------------------------------------------
# The roll
# ---------------------------------------------------------------------------


def dist_name(version, scala="2.13"):
    return f"kafka_{scala}-{version}"


class Roller:
    """Discover, preflight, then restart node after node through the gates; see the module docstring.

    ``remote`` runs commands on hosts (:class:`FabricRemote`); ``report(event, **fields)`` receives
    progress (``event`` is a short word, ``fields`` has ``text``); ``sleep``/``clock`` are injectable.
    """

    def __init__(self, hosts, options, remote, report=None, sleep=time.sleep, clock=time.monotonic,
                 view_factory=None):
        self.hosts = list(hosts)
        self.view_factory = view_factory or ClusterView
        self.o = options
        self.remote = remote
        self._report = report or (lambda event, **f: None)
        self.sleep = sleep
        self.clock = clock
        self.nodes = []
        self.view = None
        self.mode = None
        self.summary = Summary(kind="upgrade" if options.to_version else "restart")
        self.state = {}
        self.cluster_id = None
        # set (e.g. by a Ctrl-C handler) to stop between two nodes, never in the middle of one
        self.stop_requested = False
        self._tmp = None

    # -- reporting --------------------------------------------------------
    def say(self, event, text, **fields):
        self._report(event, text=text, **fields)

    # -- remote helpers ---------------------------------------------------
    def _run(self, host, command, step, timeout=120, ok=(0,)):
        rc, out, err = self.remote.run(host, command, timeout=timeout)
        if rc not in ok:
            detail = (err or out or "").strip().splitlines()[-5:]
            raise RollError(host.name, step, f"`{command.splitlines()[0][:80]}` failed (exit {rc}): "
                                             f"{' / '.join(detail) or 'no output'}")
        return out

    def _read(self, host, path, step="discover"):
        rc, out, err = self.remote.run(host, f"cat {shlex.quote(path)}", timeout=60)
        return out if rc == 0 else None

    def probe_host(self, node, dists=()):
        args = {"unit": node.unit, "watch": node.watch, "install_root": self.o.install_root,
                "current": f"{self.o.install_root}/current", "log_dirs": node.log_dirs, "dists": list(dists)}
        # the script goes as an argument: streaming it to stdin is slow with Fabric (no EOF until the end)
        out = self._run(node.host, f"python3 -c {shlex.quote(HOST_PROBE)} {shlex.quote(json.dumps(args))}", "inspect")
        try:
            return json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError) as exc:
            raise RollError(node.name, "inspect", f"unexpected answer from the host probe: {out[:200]!r}") from exc

    # -- discovery --------------------------------------------------------
    def _config(self, host, path, what):
        """The text of ``path`` on ``host``; None for a host that is not set up yet and not in a limited roll
        (a host being added to the cluster is left out, with a warning); else a missing file stops the run."""
        text = self._read(host, path)
        if text is None and self.o.limit and host.name not in self.o.limit:
            self.summary.warnings.append(f"{host.name}: no {path} yet; left out")
            self.say("warning", self.summary.warnings[-1])
            return None
        if text is None:
            raise RollError(host.name, "discover", f"cannot read {path}: is {what} installed by kafka-metal on this "
                                                   "host (run site.yml first)?")
        return text

    def discover(self):
        ca_pem = None
        admin = None
        for host in self.hosts:
            if "zookeeper" in host.groups and not ({"kafka_brokers", "kafka_controllers"} & set(host.groups)):
                manifest = node_state.read_manifest(self._read(host, node_state.manifest_path("zookeeper")))
                zk_dir = (manifest or {}).get("config_dir") or self.o.zookeeper_config_dir
                text = self._config(host, f"{zk_dir}/zoo.cfg", "ZooKeeper")
                if text is not None:
                    node = zookeeper_node(host, properties.parse(text), zk_dir, self.o.install_root)
                    if manifest:
                        node.watch = list(manifest["reads"])
                        node.unit = manifest.get("unit") or node.unit
                    self.nodes.append(node)
                continue
            # The node's manifest (written by the kafka_node module) says where its configuration is and
            # every file its process reads; a node converged before manifests existed gets the fixed list.
            manifest = node_state.read_manifest(self._read(host, node_state.manifest_path("kafka")))
            config_dir = (manifest or {}).get("config_dir") or self.o.config_dir
            server_text = self._config(host, f"{config_dir}/server.properties", "Kafka")
            if server_text is None:
                continue
            admin_text = self._read(host, f"{config_dir}/admin.properties") or ""
            host_admin = properties.parse(admin_text)
            trust = host_admin.get("ssl.truststore.location")
            if trust and ca_pem is None:
                ca_pem = self._read(host, trust)
            server = properties.parse(server_text)
            if self._tmp is None:
                self._tmp = tempfile.mkdtemp(prefix="kafka-metal-roll-")
            ca_file = os.path.join(self._tmp, "ca.pem")
            node = kafka_node(host, server, host_admin, ca_file, config_dir, self.o.install_root)
            if manifest:
                node.watch = list(manifest["reads"])
                node.unit = manifest.get("unit") or node.unit
            if "broker" in node.roles and admin is None:
                admin = host_admin
            self.nodes.append(node)
        if ca_pem:
            fd = os.open(os.path.join(self._tmp, "ca.pem"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(ca_pem)
        brokers = [n for n in self.nodes if n.kind == "kafka" and "broker" in n.roles]
        kafka_nodes = [n for n in self.nodes if n.kind == "kafka"]
        # A ZooKeeper ensemble whose brokers are not set up yet (a first converge stopped before them) rolls
        # alone: only its members' gates apply. Kafka nodes without a broker cannot be rolled safely.
        zookeeper_only = not kafka_nodes and any(n.kind == "zookeeper" for n in self.nodes)
        if not brokers and not zookeeper_only:
            raise RollError(None, "discover", "no broker among the hosts: the roll needs the brokers of the cluster "
                                              "(inventory groups kafka_brokers / kafka_controllers / zookeeper)")
        zk_mode = {n.zookeeper_mode for n in kafka_nodes} or {True}
        if len(zk_mode) != 1 and not any(n.kind == "zookeeper" for n in self.nodes):
            raise RollError(None, "discover", "some hosts run in KRaft mode and others in ZooKeeper mode; a roll "
                                              "covers one cluster: check the inventory")
        # both at once, beside a ZooKeeper ensemble: a cluster in the middle of its migration to KRaft
        self.mode = "migration" if len(zk_mode) != 1 else "zookeeper" if zk_mode.pop() else "kraft"
        self.summary.mode = self.mode
        admin = admin or {}
        conf = {"security.protocol": admin.get("security.protocol", "PLAINTEXT").lower()}
        user, password = jaas_credentials(admin.get("sasl.jaas.config"))
        if conf["security.protocol"].startswith("sasl_"):
            conf.update({"sasl.mechanism": admin.get("sasl.mechanism", "PLAIN"), "sasl.username": user,
                         "sasl.password": password})
        if conf["security.protocol"] in ("ssl", "sasl_ssl"):
            conf["ssl.ca.location"] = os.path.join(self._tmp, "ca.pem")
        self.view = self.view_factory(self.nodes, conf)
        try:
            self.cluster_id = self.view.cluster_id()
        except Exception:  # only used to tell one cluster's unfinished roll from another's
            self.cluster_id = None
        ids = [n.node_id for n in self.nodes if n.kind == "kafka"]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise RollError(None, "discover", f"node ids {dup} appear on several hosts; check server.properties")

    # -- what to restart --------------------------------------------------
    def _target_dist(self):
        return dist_name(self.o.to_version, self.o.scala_version) if self.o.to_version else None

    def _state_key(self):
        return {"kind": self.summary.kind, "to": self.o.to_version, "force": bool(self.o.force),
                "hosts": sorted(n.name for n in self.nodes), "cluster_id": self.cluster_id}

    def _load_state(self):
        """The unfinished run of the same roll (same kind, target, force and hosts), else None."""
        path = self.o.state_file
        if not path or not os.path.exists(path):
            return None
        try:
            with open(path) as fh:
                saved = json.load(fh)
        except (OSError, ValueError):
            return None
        if saved.get("key") != self._state_key():
            return None
        age = time.time() - float(saved.get("saved_at") or 0)
        if age > self.o.resume_max_age:
            self.say("resume", f"ignoring an unfinished roll of {age / 3600:.1f} h ago (older than "
                               f"{self.o.resume_max_age / 3600:g} h): starting afresh")
            return None
        return saved

    def _save_state(self):
        path = self.o.state_file
        if not path or self.o.check_mode:
            return
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self.state["saved_at"] = time.time()
        with os.fdopen(fd, "w") as fh:
            json.dump(self.state, fh)

    def _baseline(self, states):
        """Forced rolls: the process start times when the roll began (kept to resume)."""
        if self.state.get("baseline") is None:
            self.state["baseline"] = {n.name: states[n.name]["started"] for n in self.nodes}
        return self.state["baseline"]

    def needs(self, node, state, baseline=None):
        """Why ``node`` must restart (a reason string) or None."""
        unit = state["unit"]
        if unit.get("LoadState") == "not-found":
            raise RollError(node.name, "inspect", f"{node.unit} does not exist on this host; run site.yml first")
        target = self._target_dist()
        if target and node.kind == "kafka":
            if state["running"] and target not in state["running"]:
                return f"runs {', '.join(state['running'])}, target {target}"
            if not state["running"] and state["current"] != target:
                return f"current link points to {state['current']}, target {target}"
        if baseline is not None:
            before = baseline.get(node.name)
            if before is None or state["started"] is None or abs(state["started"] - before) < 0.5:
                return "forced roll (restart every node)"
            return None
        if unit.get("NeedDaemonReload") == "yes":
            return "its systemd unit changed"
        if state["changed"]:
            return "changed since it started: " + ", ".join(os.path.basename(f) for f in state["changed"])
        if target and node.kind == "zookeeper" and state["current"] not in (None, target):
            return f"current link points to {state['current']}, target {target}"
        return None

    # -- gates ------------------------------------------------------------
    def gate(self, step_nodes):
        """``(ok, problems)`` for taking ``step_nodes`` down now, re-reading the cluster."""
        problems = []
        try:
            if any(n.kind == "zookeeper" for n in step_nodes):
                for n in step_nodes:
                    ok, p = roll.zookeeper_gate(self.view.zookeeper(), n.name)
                    problems += p
                return not problems, problems
            brokers = [n.node_id for n in step_nodes if "broker" in n.roles]
            controllers = [n.node_id for n in step_nodes if "controller" in n.roles]
            if controllers and self.mode in ("kraft", "migration"):
                q = self.view.quorum()
                for c in controllers:
                    ok, p = roll.controller_gate(q, c, max_lag_ms=self.o.max_lag_ms,
                                                 max_lag_offsets=self.o.max_lag_offsets)
                    problems += p
            if brokers:
                ok, blocking, reported = roll.batch_gate(self.view.partitions(), brokers)
                problems += blocking
                for r in reported:
                    if r not in self.summary.warnings:
                        self.summary.warnings.append(r)
                        self.say("warning", r)
        except Exception as exc:  # the cluster does not answer: that is a closed gate, not a crash
            problems.append(f"cannot read the cluster's state ({type(exc).__name__}: {exc})")
        return not problems, problems

    def leaders(self, remaining, first_name):
        """``(active controller, ZooKeeper leader, controller broker)``, read fresh before each step.

        While two or more controllers (or ZooKeeper members) remain, the one that leads must be known
        before any is picked, or the leader could go first: a member that is busy or still syncing a
        restarted follower may not answer, and a roll then waits (like a gate) instead of guessing, and
        stops when no leader shows within the gate's time."""
        roles = {"kraft": ("controller", "combined"), "zookeeper": ("zookeeper",),
                 "migration": ("controller", "zookeeper")}[self.mode]
        need = sum(1 for s in remaining if s.role in roles) > 1
        found = {"active": None, "zk_leader": None, "controller": None}

        def check():
            if self.mode == "migration":
                try:
                    leader = self.view.quorum().get("leader_id")
                except Exception as exc:  # the quorum could not be read at all
                    return not need, [f"the KRaft quorum cannot be read: {exc}"]
                found["active"] = None if leader is None or int(leader) < 0 else leader
                zk = self.view.zookeeper()
                found["zk_leader"] = next((m["host"] for m in zk["members"] if m["mode"] == "leader"), None)
                found["controller"] = zk.get("controller_id")
                return (found["active"] is not None and found["zk_leader"] is not None) or not need, \
                    ["the KRaft quorum or the ZooKeeper ensemble reports no leader"]
            if self.mode == "kraft":
                try:
                    leader = self.view.quorum().get("leader_id")
                except Exception as exc:  # the quorum could not be read at all
                    return not need, [f"the KRaft quorum cannot be read: {exc}"]
                found["active"] = None if leader is None or int(leader) < 0 else leader
                return found["active"] is not None or not need, ["the KRaft quorum reports no leader"]
            zk = self.view.zookeeper()
            found["zk_leader"] = next((m["host"] for m in zk["members"] if m["mode"] == "leader"), None)
            found["controller"] = zk.get("controller_id")
            modes = ", ".join(f"{m['host']} {m['mode'] or 'no answer'}" for m in zk["members"])
            return found["zk_leader"] is not None or not need, [f"no ZooKeeper member answers as leader ({modes})"]

        def waiting():
            ok, problems = check()
            if not ok:
                self.say("gate", f"leader: waiting: {problems[0]}")
            return ok, problems

        try:
            roll.wait_for_gate(waiting, self.sleep, roll.backoff_delays(total=self.o.gate_timeout),
                               what="reading which node leads before the next restart")
        except roll.RollGateError as exc:
            raise RollError(first_name, "gate", str(exc)) from exc
        return found["active"], found["zk_leader"], found["controller"]

    def wait_gate(self, step_nodes):
        what = ", ".join(n.label for n in step_nodes)
        start = self.clock()

        def check():
            ok, problems = self.gate(step_nodes)
            if not ok:
                self.say("gate", f"{what}: waiting: {problems[0]}" + (f" (+{len(problems) - 1} more)"
                                                                       if len(problems) > 1 else ""))
            return ok, problems

        try:
            roll.wait_for_gate(check, self.sleep, roll.backoff_delays(total=self.o.gate_timeout),
                               what=f"gate before restarting {what}")
        except roll.RollGateError as exc:
            raise RollError(step_nodes[0].name, "gate", str(exc)) from exc
        return self.clock() - start

    # -- one node ---------------------------------------------------------
    def stop(self, node, result):
        self.say("stop", f"{node.label}: stopping (controlled shutdown)")
        t = self.clock()
        self._run(node.host, f"systemctl stop {node.unit}", "stop", timeout=self.o.stop_timeout)
        result.stop_s = self.clock() - t
        state = self.probe_host(node)
        unit = state["unit"]
        clean = unit.get("Result") == "success" and all(state["clean"].values())
        result.clean_shutdown = clean
        if not clean:
            missing = [d for d, ok in state["clean"].items() if not ok]
            why = (f"unit result {unit.get('Result')} (exit status {unit.get('ExecMainStatus')})"
                   if unit.get("Result") != "success" else f"no clean-shutdown marker in {', '.join(missing)}")
            self.say("warning", f"{node.label}: shutdown was not clean: {why}")
        else:
            self.say("stopped", f"{node.label}: stopped cleanly in {result.stop_s:.1f} s")
        return clean, state

    def switch(self, node):
        target = self._target_dist()
        path = f"{self.o.install_root}/{target}"
        cmd = (f"test -f {shlex.quote(path)}/.kafka-metal-installed && "
               f"ln -sfn {shlex.quote(path)} {shlex.quote(self.o.install_root)}/.current.new && "
               f"mv -T {shlex.quote(self.o.install_root)}/.current.new {shlex.quote(self.o.install_root)}/current")
        self._run(node.host, cmd, "switch version")
        self.say("switch", f"{node.label}: now points at {target}")

    def _journal(self, node):
        rc, out, _ = self.remote.run(node.host, f"journalctl -u {node.unit} -n 15 --no-pager -o cat", timeout=30)
        lines = [ln for ln in (out or "").splitlines() if ln.strip()][-6:]
        return " | ".join(lines)

    def start(self, node, result):
        self.say("start", f"{node.label}: starting")
        t = self.clock()
        result.started_ms = int(time.time() * 1000)
        self._run(node.host, f"systemctl start {node.unit}", "start")
        last_note = t
        restarts_before = None
        while True:
            state = self.probe_host(node)
            unit = state["unit"]
            restarts = int(unit.get("NRestarts") or 0)
            restarts_before = restarts if restarts_before is None else restarts_before
            if unit.get("ActiveState") == "failed" or unit.get("SubState") == "auto-restart" or \
                    restarts > restarts_before:
                raise RollError(node.name, "start", f"{node.unit} failed to start (result {unit.get('Result')}, "
                                                    f"exit status {unit.get('ExecMainStatus')}); last log lines: "
                                                    f"{self._journal(node)}")
            ready, detail = False, f"unit {unit.get('ActiveState')}/{unit.get('SubState')}"
            if unit.get("ActiveState") == "active":
                ready, detail = self.ready(node)
            if ready:
                result.start_s = self.clock() - t
                self.say("started", f"{node.label}: serving after {result.start_s:.1f} s ({detail})")
                return state
            now = self.clock()
            if now - t > self.o.ready_timeout:
                raise RollError(node.name, "start", f"not serving after {self.o.ready_timeout:g} s ({detail}); it "
                                                    "is left running (it may still be recovering its logs): watch "
                                                    f"`journalctl -u {node.unit}` and run the roll again")
            if now - last_note >= 10:
                self.say("wait", f"{node.label}: still starting after {now - t:.0f} s ({detail})")
                last_note = now
            self.sleep(1.0)

    def ready(self, node):
        """``(ready, detail)``: serving on its own listener, registered (brokers) / answering (controllers)."""
        try:
            if node.kind == "zookeeper":
                host, port, _ = node.probe
                mode = zookeeper.member_state(host, port, timeout=3.0).get("mode")
                return mode in ("leader", "follower"), f"ZooKeeper mode {mode}"
            if "broker" in node.roles:
                if self.view.broker_alive(node):
                    return True, "registered and unfenced"
                return False, "not yet registered/unfenced (loading logs or catching up metadata)"
            host, port, security = node.probe
            wire.api_versions(host, port, timeout=3.0, security=security)
            return True, "controller listener answers"
        except wire.AuthenticationError as exc:
            raise RollError(node.name, "start", f"the node refused the admin's credentials ({exc})") from exc
        except (OSError, wire.ProbeError, zookeeper.ZooKeeperError) as exc:
            return False, f"not answering yet ({type(exc).__name__})"

    def catch_up(self, node, result, started_ms=0):
        """Brokers: back in the ISR of every partition they host. Controllers: caught up with the quorum
        since ``started_ms`` (wall clock, when it was started)."""
        t = self.clock()
        last_note = t
        while True:
            waiting = None
            try:
                if node.kind == "zookeeper":
                    zk = self.view.zookeeper()
                    problems = roll.zookeeper_problems({"members": zk["members"]})
                    waiting = problems[0] if problems else None
                else:
                    if "controller" in node.roles and self.mode in ("kraft", "migration"):
                        q = self.view.quorum()
                        voter = next((v for v in q.get("voters", []) if int(v["id"]) == node.node_id), None)
                        if voter is not None:
                            ok, detail = roll.voter_state(q, voter, max_lag_ms=self.o.max_lag_ms,
                                                          max_lag_offsets=self.o.max_lag_offsets)
                            # caught up *since it restarted*: the leader's last record of it must be
                            # newer than the restart (a stale timestamp from before looks recent)
                            stamp = int(voter.get("last_caught_up_timestamp") or -1)
                            if node.node_id != q.get("leader_id") and stamp < started_ms:
                                ok, detail = False, f"voter {node.node_id} (not caught up since its restart)"
                            if not ok:
                                waiting = f"{detail} not caught up with the quorum"
                    if waiting is None and "broker" in node.roles:
                        parts = self.view.partitions()
                        out = [roll.partition_name(p) for p in parts
                               if node.node_id in p["replicas"] and node.node_id not in p["isr"]]
                        if out:
                            waiting = f"not yet in the ISR of {len(out)} partition(s), e.g. {', '.join(out[:3])}"
            except Exception as exc:  # a cluster that does not answer yet: keep waiting, bounded
                waiting = f"cannot read the cluster ({type(exc).__name__}: {exc})"
            if waiting is None:
                result.catchup_s = self.clock() - t
                self.say("caught-up", f"{node.label}: caught up after {result.catchup_s:.1f} s")
                return
            now = self.clock()
            if now - t > self.o.isr_timeout:
                raise RollError(node.name, "catch-up", f"still {waiting} after {self.o.isr_timeout:g} s")
            if now - last_note >= 10:
                self.say("wait", f"{node.label}: {waiting} ({now - t:.0f} s)")
                last_note = now
            self.sleep(0.5)

    def elect(self, node):
        if not self.o.elect_leaders or "broker" not in node.roles:
            return
        try:
            n = self.view.elect_preferred(node.node_id, self.view.partitions())
            if n:
                self.say("elect", f"{node.label}: preferred leader again of {n} partition(s)")
        except Exception as exc:  # leadership balances itself later too; not a reason to stop
            self.say("warning", f"{node.label}: preferred leader election failed ({exc}); continuing")

    def restart(self, nodes, reasons, states):
        """Restart ``nodes`` (one, or a proven-safe batch of brokers) through the whole sequence."""
        results = {n.name: NodeResult(n.name, n.label, "restarted", reasons[n.name],
                                      from_dist=(states[n.name]["running"] or [None])[0]) for n in nodes}
        gate_s = self.wait_gate(nodes)
        self.state["pending"] = [n.name for n in nodes]
        self._save_state()
        unclean = []
        for n in nodes:
            results[n.name].gate_s = gate_s
            self.say("restart", f"{n.label}: restarting ({reasons[n.name]})")
        for n in nodes:
            clean, _ = self.stop(n, results[n.name])
            if not clean:
                unclean.append(n)
            if self.o.to_version and n.kind == "kafka":
                self.switch(n)
            self.start(n, results[n.name])
        for n in nodes:
            self.catch_up(n, results[n.name], results[n.name].started_ms)
            self.elect(n)
            state = self.probe_host(n)
            results[n.name].to_dist = (state["running"] or [None])[0]
        self.summary.nodes.extend(results.values())
        self.state["pending"] = []
        self._save_state()
        if unclean:
            raise RollError(unclean[0].name, "stop", "the shutdown was not clean (it is running again after log "
                                                     "recovery); raise kafka_stop_timeout / TimeoutStopSec and look "
                                                     "at the server log before rolling on")

    # -- the run ----------------------------------------------------------
    def _validate(self):
        if self.o.to_version:
            if not VERSION_RE.match(str(self.o.to_version)):
                raise RollError(None, "validate", f"--to {self.o.to_version!r} is not a Kafka version like 4.1.1")
            if self.mode == "zookeeper" and int(str(self.o.to_version).split(".")[0]) >= 4:
                raise RollError(None, "validate", f"this cluster runs in ZooKeeper mode and Kafka "
                                                  f"{self.o.to_version} has no ZooKeeper mode (removed in 4.0): "
                                                  "upgrade to the last 3.9.x, migrate to KRaft, then to 4.x")
        if self.o.batch_size < 1:
            raise RollError(None, "validate", "batch size must be at least 1")

    def run(self):
        t0 = self.clock()
        try:
            self.discover()
            self._validate()
            return self._run_roll(t0)
        except RollError as exc:
            self.summary.failed = str(exc)
            raise
        finally:
            if not self.summary.total_s:
                self.summary.total_s = self.clock() - t0
            if self._tmp:
                for f in os.listdir(self._tmp):
                    os.unlink(os.path.join(self._tmp, f))
                os.rmdir(self._tmp)
                self._tmp = None
            self.remote.close()

    def _run_roll(self, t0):
        target = self._target_dist()
        states = {n.name: self.probe_host(n, [target] if target else []) for n in self.nodes}
        if target:
            missing = [n.name for n in self.nodes if n.kind == "kafka" and not states[n.name]["installed"].get(target)]
            if missing:
                raise RollError(None, "validate", f"{target} is not installed on {', '.join(missing)}: install it "
                                                  "beside the running version first (playbooks/rolling_upgrade.yml "
                                                  "does, or site.yml with kafka_switch_version=false)")
        self.say("discover", f"{self.mode} cluster: " + ", ".join(n.label for n in self.nodes))
        saved = self._load_state()
        self.state = saved or {"key": self._state_key(), "baseline": None, "pending": []}
        if saved:
            self.summary.resumed = True
            self.say("resume", "resuming the unfinished roll: nodes already restarted by it are skipped")
            pending = [n for n in self.nodes if n.name in (saved.get("pending") or [])]
            left_down = [n for n in pending if states[n.name]["unit"].get("ActiveState") != "active"]
            # a node the interrupted run restarted may not have caught up yet: its gate is finished first, so
            # that the preflight below does not take the interruption's own traces for an unhealthy cluster
            for n in (n for n in pending if n not in left_down and not self.o.check_mode):
                self.say("resume", f"{n.label}: restarted by the interrupted run; waiting until it has caught up")
                result = NodeResult(n.name, n.label, "restarted", "restarted by the interrupted run")
                self.catch_up(n, result)
                self.summary.nodes.append(result)
            for n in left_down:
                if self.o.check_mode:
                    self.say("resume", f"{n.label}: was left down by the interrupted run; would start it first")
                    continue
                self.say("resume", f"{n.label}: was left down by the interrupted run; starting it first")
                result = NodeResult(n.name, n.label, "restarted", "left down by the interrupted run")
                if self.o.to_version and n.kind == "kafka":
                    self.switch(n)
                self.start(n, result)
                self.catch_up(n, result, result.started_ms)
                self.summary.nodes.append(result)
                states[n.name] = self.probe_host(n, [target] if target else [])
            self.state["pending"] = []
            self._save_state()
        down = [n.name for n in self.nodes if states[n.name]["unit"].get("ActiveState") != "active"]
        baseline = self._baseline(states) if self.o.force else None
        reasons = {}
        for n in self.nodes:
            if self.o.limit and n.name not in self.o.limit:
                continue
            why = self.needs(n, states[n.name], baseline)
            if why:
                reasons[n.name] = why
            else:
                self.summary.nodes.append(NodeResult(n.name, n.label, "skipped",
                                                     "already on target" if target else "unchanged since it started"
                                                     if not baseline else "already restarted by this roll"))
        # preflight: the whole cluster must be healthy before the first restart
        problems = []
        try:
            has_brokers = any(n.kind == "kafka" and "broker" in n.roles for n in self.nodes)
            partitions = self.view.partitions() if has_brokers else []
            quorum = self.view.quorum() if self.mode in ("kraft", "migration") else None
            zk = self.view.zookeeper() if self.mode in ("zookeeper", "migration") else None
            problems = roll.preflight(partitions, quorum, zk)
        except Exception as exc:
            problems = [f"cannot read the cluster's state ({type(exc).__name__}: {exc})"]
            partitions = []
        units = {n.name: n.unit for n in self.nodes}
        # a node that is down comes first: it is usually the cause of the partitions' problems after it
        problems = [f"{name}: {units[name]} is not running; start it (or repair it) before rolling"
                    for name in down] + problems
        self.summary.preflight = problems
        if problems:
            text = "; ".join(problems[:10]) + (f" (+{len(problems) - 10} more)" if len(problems) > 10 else "")
            if not self.o.ignore_preflight:
                raise RollError(None, "preflight", f"the cluster is not healthy, nothing was restarted: {text}. Fix "
                                                   "it and run again, or use --force if you accept the risk")
            self.say("warning", f"PREFLIGHT FAILED AND OVERRIDDEN (--force): {text}")
        else:
            self.say("preflight", f"preflight passed: {len(partitions)} partitions healthy"
                     + (", quorum has a leader and a caught-up majority" if self.mode == "kraft" else
                        ", ZooKeeper ensemble has a leader and quorum"))
        if self.o.check_mode:
            for n in self.nodes:
                if n.name in reasons:
                    self.summary.nodes.append(NodeResult(n.name, n.label, "would restart", reasons[n.name]))
            self.summary.total_s = self.clock() - t0
            return self.summary
        by_step = {n.step.key: n for n in self.nodes if n.name in reasons}
        remaining = [n.step for n in self.nodes if n.name in reasons]
        plan = None
        if self.o.batch_size > 1:
            brokers = {n.node_id: {"rack": n.rack} for n in self.nodes
                       if n.name in reasons and n.step.role == "broker"}
            if brokers:
                plan = roll.plan_batches(partitions, brokers, self.o.batch_size)
                for b, why in zip(plan.batches, plan.reasons, strict=True):
                    self.say("plan", f"brokers {b}: {why}")
        while remaining:
            if self.stop_requested:
                raise RollInterrupted(None, "interrupted", f"stopped on request before {len(remaining)} remaining "
                                                           "node(s); every node is running; run the same command "
                                                           "again to resume")
            active, zk_leader, controller = self.leaders(remaining, by_step[remaining[0].key].name)
            step = roll.next_node(remaining, self.mode, active_controller_id=active, zk_leader=zk_leader,
                                  controller_broker_id=controller)
            group = [step]
            if plan is not None and step.role == "broker":
                batch = next((b for b in plan.batches if step.node in b), [step.node])
                group = [s for s in remaining if s.role == "broker" and s.node in batch]
                if self.mode == "zookeeper" and controller in batch and len(group) > 1:
                    group = [s for s in group if s.node != controller] or group
            nodes = [by_step[s.key] for s in group]
            if step.role in ("controller", "combined") and active is not None and step.node == active:
                self.say("order", f"{nodes[0].label} is the active controller: restarted last of the controllers")
            self.restart(nodes, reasons, states)
            remaining = [s for s in remaining if s not in group]
        self.summary.total_s = self.clock() - t0
        if self.o.state_file and os.path.exists(self.o.state_file):
            os.unlink(self.o.state_file)
        return self.summary


def finalize_command(mode, to_version, config_dir="/etc/kafka", install_root="/opt/kafka", bootstrap=None):
    """The command (run on a broker host) that raises the feature level after an upgrade."""
    major, minor = str(to_version).split(".")[:2]
    tools = f"{install_root}/current/bin"
    if mode == "kraft":
        return (f"{tools}/kafka-features.sh --bootstrap-server {shlex.quote(bootstrap)} --command-config "
                f"{config_dir}/admin.properties upgrade --release-version {major}.{minor}")
    raise ValueError("in ZooKeeper mode raise inter.broker.protocol.version in the inventory (broker_properties) "
                     "and roll again")
