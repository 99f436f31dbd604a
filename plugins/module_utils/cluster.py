# Copyright: kafka-metal contributors
# Apache License 2.0
"""Cluster-wide decisions: inventory validation, quorum, cluster id, node settings.

Pure functions over plain data so they are unit-tested without hosts. The Ansible action
plugin ``kafka_validate``, the filters and the command line all call these.
"""

from __future__ import annotations

import base64
import re
import uuid

from .properties import check_string_values
from .security import security_errors

METADATA_MODES = ("kraft", "zookeeper")
VERSION_RE = re.compile(r"^(?P<major>\d+)\.(?P<minor>\d+)\.(?P<patch>\d+)$")
# the directory an archive unpacks to: kafka_<scala>-<version>
DIST_RE = re.compile(r"^kafka_(?P<scala>[0-9.]+)-(?P<version>\d+\.\d+\.\d+)$")
CLUSTER_ID_RE = re.compile(r"^[A-Za-z0-9_-]{22}$")
SHA512_RE = re.compile(r"^[0-9a-fA-F]{128}$")
# The major releases kafka-metal knows how to install and configure.
KNOWN_MAJORS = (3, 4)
# Kafka's node ids are Java ints.
MAX_NODE_ID = 2**31 - 1
# Kafka reserves the all-zero and the "one" UUID (Uuid.ZERO_UUID, Uuid.ONE_UUID).
_RESERVED_IDS = {
    base64.urlsafe_b64encode(bytes(16)).decode().rstrip("="),
    base64.urlsafe_b64encode(bytes(15) + b"\x01").decode().rstrip("="),
}
# Directories that must never become Kafka data directories.
SYSTEM_DIRS = {"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/opt", "/proc", "/root",
                   "/run", "/sbin", "/sys", "/tmp", "/usr", "/var", "/var/lib", "/var/log"}


class ValidationError(ValueError):
    """The inventory is wrong; the message says what and how to fix it."""

    def __init__(self, errors):
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


# ---------------------------------------------------------------------------
# versions
# ---------------------------------------------------------------------------

def parse_version(value):
    """Return (major, minor, patch) or raise ValidationError with a fix."""
    if isinstance(value, float) or not isinstance(value, str):
        raise ValidationError([
            f"kafka_version {value!r} must be a quoted string like \"4.1.1\" "
            "(an unquoted 4.1 is read by YAML as a number)"
        ])
    m = VERSION_RE.match(value.strip())
    if not m:
        raise ValidationError([
            f"kafka_version {value!r} is malformed: use MAJOR.MINOR.PATCH, e.g. \"4.1.1\" or \"3.9.1\""
        ])
    return tuple(int(m.group(g)) for g in ("major", "minor", "patch"))


def dist_version(dist):
    """The version in an unpacked archive's directory name (``kafka_<scala>-<version>``, or a path ending in
    it); None for any other name."""
    m = DIST_RE.match(str(dist or "").rstrip("/").rsplit("/", 1)[-1])
    return m.group("version") if m else None


def version_errors(value):
    try:
        major, minor, _ = parse_version(value)
    except ValidationError as exc:
        return exc.errors
    if value != value.strip():
        return [f"kafka_version {value!r} has spaces around it: write it as \"{value.strip()}\""]
    if major < 3 or (major == 3 and minor < 9):
        return [f"kafka_version {value} is not supported: kafka-metal supports 3.9.x and 4.x"]
    if major not in KNOWN_MAJORS:
        return [f"kafka_version {value} is not a release kafka-metal knows: it installs 3.9.x and 4.x"]
    return []


# ---------------------------------------------------------------------------
# cluster id
# ---------------------------------------------------------------------------

def generate_cluster_id():
    """A new random Kafka Uuid in its base64 text form (as ``kafka-storage random-uuid``)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # Kafka re-draws ids that start with '-' (they look like command-line options).
        if not text.startswith("-") and text not in _RESERVED_IDS:
            return text


def cluster_id_errors(value):
    if value in (None, ""):
        return []
    if not isinstance(value, str) or not CLUSTER_ID_RE.match(value) or value in _RESERVED_IDS:
        return [
            f"kafka_cluster_id {value!r} is not a Kafka cluster id: use 22 characters of base64url "
            "(as printed by `kafka-storage.sh random-uuid`), or leave it empty to have one generated"
        ]
    return []


def choose_cluster_id(configured, found):
    """Decide the cluster id.

    ``configured``: the inventory's ``kafka_cluster_id`` (may be empty).
    ``found``: mapping host -> list of cluster ids read from that host's meta.properties files.

    Returns ``(cluster_id, generated)``. Raises ValidationError when hosts disagree.
    """
    seen = {}
    for host in sorted(found):
        for cid in found[host] or []:
            seen.setdefault(cid, []).append(host)
    if configured:
        errors = cluster_id_errors(configured)
        others = {cid: hosts for cid, hosts in seen.items() if cid != configured}
        for cid, hosts in sorted(others.items()):
            errors.append(
                f"host(s) {', '.join(sorted(set(hosts)))} already hold data of cluster {cid}, but "
                f"kafka_cluster_id is {configured}: refusing to mix clusters. Set kafka_cluster_id: {cid} "
                "if these hosts belong to that cluster, or remove the old data yourself"
            )
        if errors:
            raise ValidationError(errors)
        return configured, False
    if len(seen) > 1:
        detail = "; ".join(f"{cid} on {', '.join(sorted(set(h)))}" for cid, h in sorted(seen.items()))
        raise ValidationError([
            f"hosts of this cluster hold data of different clusters ({detail}): set kafka_cluster_id "
            "to the one that is right, and clear the others' data directories by hand"
        ])
    if len(seen) == 1:
        return next(iter(seen)), False
    return generate_cluster_id(), True


# ---------------------------------------------------------------------------
# topology
# ---------------------------------------------------------------------------

def _node_id_errors(host, node_id):
    if node_id is None or node_id == "":
        return [f"host {host}: kafka_node_id is not set; give every Kafka node a unique integer id "
                "in the inventory (host_vars or the host line)"]
    if isinstance(node_id, bool) or not isinstance(node_id, (int, str)) or not str(node_id).isdigit():
        return [f"host {host}: kafka_node_id {node_id!r} must be a non-negative integer"]
    if int(node_id) > MAX_NODE_ID:
        return [f"host {host}: kafka_node_id {node_id} is beyond Kafka's range: use a whole number from 0 to "
                f"{MAX_NODE_ID}"]
    return []


def topology_errors(controllers, brokers, mode="kraft", zookeepers=None, migration="none"):
    """Cross-host checks.

    ``controllers`` / ``brokers``: mapping host -> kafka_node_id (as in the inventory).
    A host in both is a combined node (one process, both roles) and keeps one id.
    ``migration``: the phase of a ZooKeeper-mode cluster's migration to KRaft (kafka_zookeeper_migration).
    """
    errors = []
    controllers = dict(controllers or {})
    brokers = dict(brokers or {})
    if mode not in METADATA_MODES:
        return [f"kafka_metadata_mode {mode!r} is unknown: use one of {', '.join(METADATA_MODES)}"]
    if migration not in ("none", None):
        from .migration import INVENTORY_PHASES

        if mode != "zookeeper":
            errors.append(f"kafka_zookeeper_migration is {migration}, but kafka_metadata_mode is {mode}: the "
                          "migration phase belongs to a ZooKeeper-mode cluster on its way to KRaft; remove "
                          "kafka_zookeeper_migration once the migration is finalized")
        elif migration not in INVENTORY_PHASES:
            errors.append(f"kafka_zookeeper_migration is {migration!r}; use one of {', '.join(INVENTORY_PHASES)}")
        else:
            for group, members in (("kafka_brokers group", brokers), ("zookeeper group", zookeepers or {})):
                shared = sorted(set(controllers) & set(members))
                if shared:
                    errors.append(f"{', '.join(shared)} {'is' if len(shared) == 1 else 'are'} in kafka_controllers "
                                  f"and the {group}: a migration "
                                  "to KRaft runs both side by side and kafka-metal rolls one node per host; give "
                                  "the controllers hosts of their own")
    if mode == "zookeeper":
        errors += _zookeeper_topology_errors({} if migration not in ("none", None) else controllers, zookeepers)
    if mode == "kraft" or (mode == "zookeeper" and migration not in ("none", None)):
        if not controllers:
            errors.append(
                "group kafka_controllers is empty: KRaft needs controllers; put 3 (or 1, 5) hosts in "
                "kafka_controllers, or the same hosts in kafka_controllers and kafka_brokers for combined mode"
            )
        elif len(controllers) % 2 == 0:
            errors.append(
                f"kafka_controllers has {len(controllers)} hosts: a KRaft quorum needs an odd number "
                f"(1, 3 or 5) so that a majority survives a failure; use {len(controllers) - 1} or "
                f"{len(controllers) + 1}"
            )
    if not brokers:
        errors.append("group kafka_brokers is empty: put at least one host in kafka_brokers")
    ids = {}
    for host, node_id in sorted({**controllers, **brokers}.items()):
        problems = _node_id_errors(host, node_id)
        errors.extend(problems)
        if not problems:
            ids.setdefault(int(node_id), []).append(host)
    for node_id, hosts in sorted(ids.items()):
        if len(hosts) > 1:
            errors.append(
                f"kafka_node_id {node_id} is used by {', '.join(hosts)}: node ids must be unique in the "
                "cluster; give each host its own"
            )
    return errors


def _zookeeper_topology_errors(controllers, zookeepers):
    from .zookeeper import ensemble_errors

    errors = []
    if controllers:
        errors.append(
            "kafka_controllers is not empty, but kafka_metadata_mode is zookeeper: in ZooKeeper mode the "
            "controller is one of the brokers; empty the kafka_controllers group, or, to move this cluster to "
            "KRaft, start the migration with kafka-metal migrate kraft (it sets kafka_zookeeper_migration)"
        )
    if not zookeepers:
        errors.append(
            "kafka_metadata_mode is zookeeper but the zookeeper group is empty: brokers need an ensemble; put 3 "
            "(or 5) hosts in the zookeeper group, each with its own zookeeper_id"
        )
    else:
        errors += ensemble_errors(zookeepers)
    return errors


def node_errors(host, node):
    """Checks of one host's resolved settings. ``node`` keys (all optional):
    version, metadata_mode, cluster_id, log_dirs, metadata_dir, archive_src, archive_url,
    archive_checksum, properties (mapping name -> dict of Kafka settings).
    """
    errors = []
    if "version" in node:
        errors += version_errors(node["version"])
    mode = node.get("metadata_mode", "kraft")
    if mode not in METADATA_MODES:
        errors.append(f"kafka_metadata_mode {mode!r} is unknown: use one of {', '.join(METADATA_MODES)}")
    if mode == "zookeeper" and "version" in node and not version_errors(node["version"]):
        if parse_version(node["version"])[0] >= 4:
            errors.append(
                f"kafka_version {node['version']} has no ZooKeeper support (Kafka 4 runs only in KRaft mode): "
                "stay on 3.9.x for ZooKeeper mode, or use kafka_metadata_mode: kraft (migrate first)"
            )
    errors += cluster_id_errors(node.get("cluster_id"))
    if "log_dirs" in node:
        dirs = node["log_dirs"]
        if isinstance(dirs, str):
            dirs = [d for d in dirs.split(",")]
        if not dirs:
            errors.append("broker_log_dirs is empty: list at least one data directory, e.g. [/var/lib/kafka/data]")
        for d in dirs or []:
            errors += _dir_errors("broker_log_dirs", d)
    if "metadata_dir" in node:
        errors += _dir_errors("kafka_metadata_dir", node["metadata_dir"])
    if not node.get("archive_src") and "archive_url" in node:
        url = node.get("archive_url") or ""
        if not url:
            errors.append("neither kafka_archive_url nor kafka_archive_src is set: say where the Kafka archive is")
        checksum = node.get("archive_checksum") or ""
        if not checksum:
            errors.append(
                "kafka_archive_checksum is missing for a URL install: set it to the archive's SHA-512 "
                "(128 hex digits, from the .sha512 file published beside the archive)"
            )
    checksum = node.get("archive_checksum") or ""
    if checksum and not SHA512_RE.match(_strip_algo(checksum)):
        errors.append(
            "kafka_archive_checksum must be a SHA-512 digest: 128 hex digits, optionally prefixed with "
            "'sha512:'"
        )
    for name, props in sorted((node.get("properties") or {}).items()):
        errors += check_string_values(props, where=name)
    if node.get("security"):
        errors += security_errors(mode=mode, **node["security"])
    return [f"host {host}: {e}" for e in errors]


def _strip_algo(checksum):
    checksum = str(checksum).strip()
    if checksum.lower().startswith("sha512:"):
        return checksum[7:]
    return checksum


def normalize_checksum(checksum):
    return _strip_algo(checksum).lower()


def _dir_errors(var, d):
    if not isinstance(d, str) or not d.strip():
        return [f"{var} has an empty entry: every data directory must be an absolute path"]
    path = d.strip()
    if not path.startswith("/"):
        return [f"{var} entry {path!r} is not an absolute path"]
    norm = "/" + "/".join(p for p in path.split("/") if p)
    if norm in SYSTEM_DIRS:
        return [f"{var} entry {path!r} is a system directory: use a dedicated directory such as "
                "/var/lib/kafka/data (or a mounted data disk)"]
    return []


# ---------------------------------------------------------------------------
# node settings
# ---------------------------------------------------------------------------

def quorum_voters(controllers, port):
    """``controller.quorum.voters`` from a mapping host -> (node_id, address)."""
    parts = []
    for _host, (node_id, address) in sorted(controllers.items(), key=lambda kv: int(kv[1][0])):
        parts.append(f"{int(node_id)}@{address}:{int(port)}")
    return ",".join(parts)


def quorum_bootstrap(controllers, port):
    """``controller.quorum.bootstrap.servers`` (a dynamic quorum) from a mapping host -> (node_id, address)."""
    return ",".join(f"{address}:{int(port)}" for _h, (_n, address) in sorted(controllers.items(),
                                                                              key=lambda kv: int(kv[1][0])))


def initial_controllers(controllers, port, directory_ids):
    """``kafka-storage format --initial-controllers`` for a new dynamic quorum: ``id@host:port:directory-id`` of
    every controller, from a mapping host -> (node_id, address) and one new directory id per host."""
    return ",".join(f"{int(n)}@{address}:{int(port)}:{directory_ids[h]}"
                    for h, (n, address) in sorted(controllers.items(), key=lambda kv: int(kv[1][0])))


def new_directory_id():
    """A random directory id as Kafka writes them (16 bytes, URL-safe base64 without padding), never one of the
    ids Kafka reserves (the first 100 values of the high and low words are kept for special meanings)."""
    import base64
    import os

    while True:
        raw = os.urandom(16)
        text = base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")
        if int.from_bytes(raw[:8], "big") >= 100 and not text.startswith("-"):  # "-..." reads as an option
            return text


def quorum_config_problems(configs, quorum):
    """What stops a converge whose ``kafka_controller_quorum`` disagrees with the nodes' configurations.

    ``configs``: host -> the node's current server.properties keys (``process.roles``,
    ``controller.quorum.voters``, ``controller.quorum.bootstrap.servers``); hosts not configured yet are left out.
    A dynamic quorum cannot become static again; a static one becomes dynamic only through
    ``kafka-metal quorum dynamic`` (``quorum`` is then ``dynamic-confirmed``), which raises ``kraft.version`` first:
    a node configured with bootstrap servers on a quorum still static would not start."""
    static = sorted(h for h, c in configs.items() if (c or {}).get("process.roles")
                    and str((c or {}).get("controller.quorum.voters") or "").strip())
    dynamic = sorted(h for h, c in configs.items() if (c or {}).get("process.roles")
                     and not str((c or {}).get("controller.quorum.voters") or "").strip()
                     and str((c or {}).get("controller.quorum.bootstrap.servers") or "").strip())
    if quorum == "static" and dynamic:
        return [f"the controller quorum is dynamic (controller.quorum.bootstrap.servers on {', '.join(dynamic)}) "
                "and a dynamic quorum cannot become static again: set kafka_controller_quorum: dynamic in the "
                "inventory"]
    if quorum == "dynamic" and static:
        return [f"the controller quorum is static (controller.quorum.voters on {', '.join(static)}); moving it to a "
                "dynamic quorum raises kraft.version, which cannot be undone: run kafka-metal quorum dynamic -i "
                "<inventory> (it raises kraft.version, then converges), or keep kafka_controller_quorum: static"]
    return []


def replication_defaults(broker_count):
    """kafka-metal's replication factor and minimum in-sync replicas for a cluster of this many brokers."""
    rf = min(3, max(1, broker_count))
    isr = min(2, max(1, broker_count - 1)) if broker_count > 1 else 1
    return rf, isr


def node_roles(host, controllers, brokers):
    roles = []
    if host in brokers:
        roles.append("broker")
    if host in controllers:
        roles.append("controller")
    return roles


def kraft_properties(*, roles, node_id, voters, advertised_host, ports, log_dirs, metadata_dir,
                     broker_count, bind_address="0.0.0.0",  # noqa: S104 (listen on every interface by default)
                     quorum="static", bootstrap_servers=""):
    """The settings kafka-metal owns for a KRaft node (operators override any of them). A dynamic quorum lists
    ``bootstrap_servers`` (``controller.quorum.bootstrap.servers``) instead of the voters, and its controllers
    advertise their controller listener: that endpoint is what Kafka records for a voter when it is added."""
    if not roles:
        raise ValueError("a node needs at least one of the roles broker, controller")
    props = {
        "process.roles": ",".join(roles),
        "node.id": str(int(node_id)),
        "controller.quorum.voters": voters,
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CLIENT:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "metadata.log.dir": metadata_dir,
    }
    listeners = []
    if "broker" in roles:
        listeners += [f"CLIENT://{bind_address}:{ports['client']}",
                      f"INTERNAL://{bind_address}:{ports['internal']}"]
        rf, isr = (str(n) for n in replication_defaults(broker_count))
        props.update({
            "advertised.listeners": (f"CLIENT://{advertised_host}:{ports['client']},"
                                     f"INTERNAL://{advertised_host}:{ports['internal']}"),
            "inter.broker.listener.name": "INTERNAL",
            "log.dirs": ",".join(log_dirs),
            "default.replication.factor": rf,
            "min.insync.replicas": isr,
            "offsets.topic.replication.factor": rf,
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": isr,
            "auto.create.topics.enable": "false",
            "unclean.leader.election.enable": "false",
            "num.partitions": "3",
        })
    else:
        props["log.dirs"] = metadata_dir
    if "controller" in roles:
        listeners.append(f"CONTROLLER://{bind_address}:{ports['controller']}")
    props["listeners"] = ",".join(listeners)
    if quorum == "dynamic":
        del props["controller.quorum.voters"]
        props["controller.quorum.bootstrap.servers"] = bootstrap_servers
        if "controller" in roles:
            advertised = [a for a in props.get("advertised.listeners", "").split(",") if a]
            props["advertised.listeners"] = ",".join(advertised + [f"CONTROLLER://{advertised_host}:"
                                                                   f"{ports['controller']}"])
    elif quorum != "static":
        raise ValueError(f"quorum {quorum!r}: static or dynamic")
    return props


def zookeeper_broker_properties(*, broker_id, zookeeper_connect, advertised_host, ports, log_dirs, broker_count,
                                bind_address="0.0.0.0"):  # noqa: S104 (listen on every interface by default)
    """The settings kafka-metal owns for a broker in ZooKeeper mode (Kafka 3.9.x)."""
    props = kraft_properties(roles=["broker"], node_id=broker_id, voters="", advertised_host=advertised_host,
                             ports=ports, log_dirs=log_dirs, metadata_dir="", broker_count=broker_count,
                             bind_address=bind_address)
    for key in ("process.roles", "node.id", "controller.quorum.voters", "controller.listener.names",
                "metadata.log.dir"):
        props.pop(key)
    props.update({
        "broker.id": str(int(broker_id)),
        "zookeeper.connect": zookeeper_connect,
        "zookeeper.connection.timeout.ms": "18000",
        "zookeeper.session.timeout.ms": "18000",
        "listener.security.protocol.map": "CLIENT:PLAINTEXT,INTERNAL:PLAINTEXT",
    })
    return props
