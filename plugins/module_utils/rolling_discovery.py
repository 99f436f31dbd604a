# Copyright: kafka-metal contributors
# Apache License 2.0
"""The rolling engine's discovery: each node as it runs, read from its own files over the transport
(``server.properties``, ``admin.properties``, the trust store, ``zoo.cfg``), never from the inventory. See
:mod:`rolling` for the engine."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ansible_collections.metal.kafka.plugins.module_utils import roll, wire
from ansible_collections.metal.kafka.plugins.module_utils.rolling_transport import Host, RollError

# Runs on each host with its own python3 (Ansible's requirement too): the unit's state, what
# changed since the process started, which Kafka distribution the process runs, clean-shutdown
# markers. One JSON object on stdout.
HOST_PROBE = r"""
import json, os, subprocess, sys, time
a = json.loads(sys.argv[1])
keys = ("ActiveState,SubState,MainPID,Result,ExecMainStatus,NRestarts,ExecMainStartTimestampMonotonic,"
        "NeedDaemonReload,LoadState")
out = subprocess.run(["systemctl", "show", a["unit"], "-p", keys], capture_output=True, text=True).stdout
unit = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
pid = int(unit.get("MainPID") or 0)
mono = int(unit.get("ExecMainStartTimestampMonotonic") or 0)
started = time.time() - (time.clock_gettime(time.CLOCK_MONOTONIC) - mono / 1e6) if pid and mono else None
changed = []
for f in a["watch"]:
    try:
        m = os.lstat(f).st_mtime
    except OSError:
        continue
    if started is not None and m > started:
        changed.append(f)
dists = set()
if pid:
    try:
        fds = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        fds = []
    root = a["install_root"].rstrip("/") + "/"
    for fd in fds:
        try:
            t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if t.startswith(root) and "/libs/" in t:
            dists.add(t[len(root):].split("/", 1)[0])
cur = a.get("current")
print(json.dumps({
    "unit": unit, "started": started, "changed": changed, "running": sorted(dists),
    "current": os.path.basename(os.path.realpath(cur)) if cur and os.path.exists(cur) else None,
    "clean": {d: os.path.exists(os.path.join(d, ".kafka_cleanshutdown")) for d in a["log_dirs"]},
    "installed": {d: os.path.exists(os.path.join(a["install_root"], d, ".kafka-metal-installed"))
                  for d in a.get("dists", [])},
}))
"""


# ---------------------------------------------------------------------------
# Nodes, discovered from the hosts
# ---------------------------------------------------------------------------


@dataclass
class Node:
    """A Kafka or ZooKeeper process on a host, as its own configuration describes it."""

    host: Host
    kind: str  # "kafka" or "zookeeper"
    roles: tuple = ()  # ("broker",), ("controller",), ("broker", "controller"); ("zookeeper",)
    node_id: int | None = None
    log_dirs: list = field(default_factory=list)
    rack: str | None = None
    client: tuple | None = None  # (host, port) the admin reaches: a broker's client listener, else None
    probe: tuple | None = None  # (host, port, wire.Security) the readiness probe uses
    unit: str = "kafka.service"
    watch: list = field(default_factory=list)
    zookeeper_mode: bool = False

    @property
    def name(self):
        return self.host.name

    @property
    def step(self):
        if self.kind == "zookeeper":
            return roll.Step("zookeeper", self.name)
        if set(self.roles) == {"broker", "controller"}:
            return roll.Step("combined", self.node_id)
        return roll.Step("controller" if "controller" in self.roles else "broker", self.node_id)

    @property
    def label(self):
        if self.kind == "zookeeper":
            return f"zookeeper {self.name}"
        return f"{self.step.role} {self.node_id} ({self.name})"


_JAAS_RE = re.compile(r'(username|password)\s*=\s*"((?:[^"\\]|\\.)*)"')


def jaas_credentials(jaas):
    """``(username, password)`` from a ``sasl.jaas.config`` value."""
    found = dict(_JAAS_RE.findall(jaas or ""))
    return found.get("username"), found.get("password")


def listeners(value):
    """``{NAME: (host, port)}`` from a ``listeners`` / ``advertised.listeners`` value."""
    out = {}
    for item in (value or "").split(","):
        item = item.strip()
        if not item:
            continue
        name, _, rest = item.partition("://")
        host, _, port = rest.rpartition(":")
        out[name.upper()] = (host.strip("[]"), int(port))
    return out


def protocol_map(value):
    out = {}
    for item in (value or "").split(","):
        if ":" in item:
            name, proto = item.split(":", 1)
            out[name.strip().upper()] = proto.strip().upper()
    return out


def kafka_node(host, server, admin, ca_file, config_dir="/etc/kafka", install_root="/opt/kafka"):
    """A :class:`Node` from a host's ``server.properties`` and ``admin.properties`` (parsed dicts)."""
    zk_mode = "zookeeper.connect" in server and "process.roles" not in server
    roles = ("broker",) if zk_mode else tuple(sorted(r.strip() for r in server.get("process.roles", "").split(",")
                                                     if r.strip()))
    if not roles:
        raise RollError(host.name, "discover", f"{config_dir}/server.properties has neither process.roles nor "
                                               "zookeeper.connect; is this host a Kafka node set up by kafka-metal?")
    node_id = server.get("node.id", server.get("broker.id"))
    if node_id is None:
        raise RollError(host.name, "discover", f"{config_dir}/server.properties has no node.id or broker.id")
    log_dirs = [d.strip() for d in server.get("log.dirs", server.get("log.dir", "")).split(",") if d.strip()] \
        if "broker" in roles else []
    protos = protocol_map(server.get("listener.security.protocol.map"))
    advertised = listeners(server.get("advertised.listeners"))
    bound = listeners(server.get("listeners"))
    controller_names = [n.strip().upper() for n in server.get("controller.listener.names", "").split(",") if n.strip()]
    user, password = jaas_credentials(admin.get("sasl.jaas.config"))
    admin_protocol = admin.get("security.protocol", "PLAINTEXT").upper()
    client = probe = None
    if "broker" in roles:
        internal = server.get("inter.broker.listener.name", "").upper()
        names = [n for n in advertised if n != internal and n not in controller_names] or list(advertised)
        if not names:
            raise RollError(host.name, "discover", "server.properties advertises no listener")
        client = advertised[names[0]]
        security = wire.Security(admin_protocol, ca_file, client[0], admin.get("sasl.mechanism", "PLAIN"), user,
                                 password)
        probe = (client[0], client[1], security)
    else:
        name = controller_names[0] if controller_names else "CONTROLLER"
        if name not in bound:
            raise RollError(host.name, "discover", f"server.properties has no {name} listener")
        port = bound[name][1]
        security = wire.Security(protos.get(name, admin_protocol), ca_file, host.address,
                                 server.get("sasl.mechanism.controller.protocol", admin.get("sasl.mechanism", "PLAIN")),
                                 user, password)
        probe = (host.address, port, security)
    watch = [f"{config_dir}/server.properties", f"{config_dir}/log4j.properties", f"{config_dir}/log4j2.properties",
             f"{config_dir}/credentials.properties", f"{config_dir}/jaas.conf", f"{config_dir}/tls/keystore.pem",
             f"{config_dir}/tls/truststore.pem", "/etc/systemd/system/kafka.service", f"{install_root}/current"]
    return Node(host=host, kind="kafka", roles=roles, node_id=int(node_id), log_dirs=log_dirs,
                rack=server.get("broker.rack"), client=client, probe=probe, watch=watch, zookeeper_mode=zk_mode)


def zookeeper_node(host, zoo_cfg, config_dir="/etc/zookeeper", install_root="/opt/kafka"):
    port = int(zoo_cfg.get("clientPort", 2181))
    watch = [f"{config_dir}/zoo.cfg", f"{config_dir}/log4j.properties", "/etc/systemd/system/zookeeper.service",
             f"{install_root}/current"]
    data_dir = zoo_cfg.get("dataDir")
    if data_dir:
        watch.append(f"{data_dir}/myid")
    return Node(host=host, kind="zookeeper", roles=("zookeeper",), probe=(host.address, port, None),
                unit="zookeeper.service", watch=watch)
