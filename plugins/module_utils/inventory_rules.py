# Copyright: kafka-metal contributors
# Apache License 2.0
"""Rules of a sound inventory that an argument spec cannot express, one function per kind of mistake.

Each function takes plain, resolved values and returns messages that name the variable as the operator
writes it and say the fix. They hold no Ansible and no I/O (a file check is handed a function that says
whether a controller path exists), so every rule is unit-tested on its message. ``inventory.py`` calls them
for each host and once for the cluster, and reports every problem at once.
"""

from __future__ import annotations

import difflib
import posixpath
import re

from . import kafka_admin
from .cluster import SYSTEM_DIRS
from .heap import MIB, MIN_HEAP, HeapError, parse_size

# In ZooKeeper mode Kafka refuses a configured broker.id above reserved.broker.max.id (while broker id
# generation is on, its default).
ZOOKEEPER_MODE_MAX_BROKER_ID = 1000
HEAP_SETTINGS = ("broker_heap_size", "controller_heap_size", "zookeeper_heap_size")
TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
TOPIC_KEYS = ("name", "partitions", "replication_factor", "configs", "state")
USER_KEYS = ("name", "password", "mechanism", "iterations", "update_password", "state")
ACL_KEYS = kafka_admin.ACL_FIELDS + ("state",)
# Prefixes of kafka-metal's settings; kafka_metal_* is left to the operator's own variables.
SETTING_PREFIXES = ("kafka_", "broker_", "controller_", "zookeeper_", "tuning_", "java_")
OWN_PREFIXES = ("kafka_metal_", "vault_")

# Settings that no role reads any more, each with the one setting for its concept.
REPLACED_SETTINGS = {
    "kafka_java_home": "java_home", "zookeeper_java_home": "java_home",
    "tuning_limit_nofile": "kafka_limit_nofile", "tuning_limit_nproc": "kafka_limit_nproc",
    "tuning_kafka_user": "kafka_user", "tuning_kafka_group": "kafka_group",
}

# Settings kafka-metal writes itself, with the inventory variable that sets each.
OWNED_KAFKA_SETTINGS = {
    "node.id": "kafka_node_id",
    "broker.id": "kafka_node_id",
    "process.roles": "the host's groups (kafka_controllers, kafka_brokers; both for a combined node)",
    "listeners": "broker_client_port, broker_internal_port and kafka_controller_port",
    "advertised.listeners": "kafka_advertised_host and the port variables",
    "listener.security.protocol.map": "kafka_security_protocol and kafka_listener_protocols",
    "security.inter.broker.protocol": "kafka_listener_protocols.internal",
    "inter.broker.listener.name": "nothing: brokers always talk over the INTERNAL listener",
    "controller.listener.names": "nothing: controllers always listen on the CONTROLLER listener",
    "controller.quorum.voters": "the kafka_controllers group (with kafka_controller_port and kafka_controller_quorum)",
    "controller.quorum.bootstrap.servers": "the kafka_controllers group (with kafka_controller_port and "
                                           "kafka_controller_quorum)",
    "log.dirs": "broker_log_dirs (or tuning_data_disks)",
    "log.dir": "broker_log_dirs (or tuning_data_disks)",
    "metadata.log.dir": "kafka_metadata_dir",
    "zookeeper.connect": "the zookeeper group (with zookeeper_client_port and kafka_zookeeper_chroot)",
    "config.providers": "nothing: kafka-metal reads the node's secrets through its own file provider",
}
OWNED_ZOOKEEPER_SETTINGS = {
    "dataDir": "zookeeper_data_dir",
    "dataLogDir": "zookeeper_data_log_dir",
    "clientPort": "zookeeper_client_port",
}


# ---------------------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------------------

def _int(value):
    """The whole number a setting holds, or None (booleans are not numbers)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    return int(text) if re.fullmatch(r"-?\d+", text) else None


def _norm(path):
    return posixpath.normpath(path.strip()) if isinstance(path, str) and path.strip().startswith("/") else None


# ---------------------------------------------------------------------------------------------------------
# versions, ids, sizes
# ---------------------------------------------------------------------------------------------------------

def zookeeper_broker_id_problems(node_id, broker_settings=None):
    """A broker id that a broker in ZooKeeper mode refuses (the format and Kafka's range are checked with the
    cluster's shape)."""
    n = _int(node_id)
    if n is None or n < 0:
        return []
    settings = broker_settings or {}
    if str(settings.get("broker.id.generation.enable", "true")).strip().lower() == "false":
        return []
    limit = _int(settings.get("reserved.broker.max.id"))
    limit = ZOOKEEPER_MODE_MAX_BROKER_ID if limit is None else limit
    if n > limit:
        return [f"kafka_node_id {n} is above reserved.broker.max.id ({limit}), which a broker in ZooKeeper mode "
                f"refuses to start with: use an id from 0 to {limit}"]
    return []


def heap_problems(name, setting):
    """An explicit heap that is malformed, or below what the process starts with (``auto`` is fine)."""
    if setting in (None, "", "auto") or name not in HEAP_SETTINGS:
        return []
    try:
        size = parse_size(setting, name)
    except HeapError as exc:
        return [str(exc)]
    floor = MIN_HEAP
    if size < floor:
        return [f"{name} {setting} is below the {floor // MIB}m the process needs to start and serve: "
                f"use at least {floor // MIB}m (or auto)"]
    return []


# ---------------------------------------------------------------------------------------------------------
# listeners and ports
# ---------------------------------------------------------------------------------------------------------

def node_ports(v, roles, mode="kraft"):
    """The ports a host listens on, as variable name -> value, for its roles (``broker``, ``controller``,
    ``zookeeper``). The JMX port counts when it is on."""
    names = []
    if "broker" in roles:
        names += ["broker_client_port", "broker_internal_port"]
    if "controller" in roles and mode == "kraft":
        names.append("kafka_controller_port")
    if "zookeeper" in roles:
        names += ["zookeeper_client_port", "zookeeper_peer_port", "zookeeper_election_port"]
    ports = {n: v.get(n) for n in names}
    kafka = "broker" in roles or "controller" in roles
    if kafka and _int(v.get("kafka_jmx_port")) not in (None, 0):
        ports["kafka_jmx_port"] = v.get("kafka_jmx_port")
    # the metrics endpoints: the JMX exporter agent in each JVM, and the host's node exporter
    if kafka and _on(v.get("kafka_metrics_enabled", True)):
        ports["kafka_jmx_exporter_port"] = v.get("kafka_jmx_exporter_port", 9404)
    if "zookeeper" in roles and _on(v.get("zookeeper_metrics_enabled", True)):
        ports["zookeeper_jmx_exporter_port"] = v.get("zookeeper_jmx_exporter_port", 9405)
    if (kafka or "zookeeper" in roles) and _on(v.get("kafka_node_exporter_enabled", True)):
        ports["kafka_node_exporter_port"] = v.get("kafka_node_exporter_port", 9100)
    return ports


def _on(value):
    """An inventory toggle as Ansible's bool filter reads it."""
    return str(value).strip().lower() in ("true", "yes", "on", "1", "y", "t")


# Ports of the metrics endpoints: only scraped, never advertised to clients or other nodes.
METRICS_PORTS = ("kafka_jmx_exporter_port", "zookeeper_jmx_exporter_port", "kafka_node_exporter_port")


def port_problems(ports):
    """Ports out of range, and two listeners of one host on the same port."""
    out, by_port = [], {}
    for name, value in ports.items():
        n = _int(value)
        if n is None or not 1 <= n <= 65535:
            out.append(f"{name} must be a port number from 1 to 65535, got {value!r}")
            continue
        by_port.setdefault(n, []).append(name)
    for port, names in sorted(by_port.items()):
        if len(names) > 1:
            out.append(f"{' and '.join(names)} are all {port}: each listener of a host needs a port of its own; "
                       "change one of them")
    return out


def advertised_host_problems(name, value):
    """An advertised host must be a bare host name or address: no scheme, no port, no list."""
    if not isinstance(value, str) or not value.strip():
        return [f"{name} is empty: give the host name or address clients reach this node at"]
    text = value.strip()
    if "://" in text:
        return [f"{name} {value!r} is a URL: give the host name or address alone (the ports are their own "
                "variables)"]
    if re.search(r"[\s,]", text):
        return [f"{name} {value!r} holds spaces or commas: give one host name or address"]
    if text.startswith("["):
        if not re.fullmatch(r"\[[0-9A-Fa-f:.]+\]", text):
            return [f"{name} {value!r} carries a port: give the host alone (the ports are their own variables)"]
        return []
    if text.count(":") == 1:
        return [f"{name} {value!r} carries a port: give the host alone (the ports are their own variables, "
                "such as broker_client_port)"]
    return []


def endpoint_clashes(endpoints):
    """Two nodes that advertise the same host and port. ``endpoints`` maps host -> list of
    (variable of the port, advertised host, port)."""
    seen = {}
    for host, items in endpoints.items():
        for var, adv, port in items:
            if not isinstance(adv, str) or _int(port) is None:
                continue
            key = (adv.strip().lower(), _int(port))
            seen.setdefault(key, {}).setdefault(host, var)
    out = []
    for (adv, port), hosts in sorted(seen.items()):
        if len(hosts) > 1:
            names = ", ".join(sorted(hosts))
            out.append(f"{names} all advertise {adv}:{port}: clients and other nodes could not tell them apart; "
                       "give each node its own kafka_advertised_host (or its own port)")
    return out


# ---------------------------------------------------------------------------------------------------------
# storage
# ---------------------------------------------------------------------------------------------------------

def storage_problems(log_dirs, log_dirs_var, metadata_dir=None, report_twice=True):
    """The same log dir twice, and directories nested inside each other (the metadata dir may be one of the
    log dirs, as Kafka's own default is, but not inside one)."""
    out = []
    # a system directory is refused on its own (cluster.node_errors); everything would be "inside" it
    dirs = [d for d in (log_dirs or []) if _norm(d) and _norm(d) not in SYSTEM_DIRS]
    seen = {}
    for d in dirs:
        key = _norm(d)
        if key in seen and report_twice:
            out.append(f"{log_dirs_var} lists {key} twice: give each data directory once")
        seen.setdefault(key, d)
    paths = [(k, log_dirs_var) for k in seen]
    meta = _norm(metadata_dir)
    if meta and meta not in seen and meta not in SYSTEM_DIRS:
        paths.append((meta, "kafka_metadata_dir"))
    for a, a_var in paths:
        for b, b_var in paths:
            if a != b and b.startswith(a.rstrip("/") + "/"):
                where = f"{b_var} entry {b}" if b_var == log_dirs_var else f"{b_var} {b}"
                out.append(f"{where} is inside {a} ({a_var}): Kafka would read it as a broken partition "
                           "directory; give every data and metadata directory a path of its own, side by side")
    return out


# ---------------------------------------------------------------------------------------------------------
# Kafka settings
# ---------------------------------------------------------------------------------------------------------

def owned_setting_problems(variable, props, owned=None):
    """Settings that kafka-metal writes itself, set in broker_properties / controller_properties /
    zookeeper_properties, where they would silently fight the node's own."""
    if not isinstance(props, dict):
        return []
    owned = OWNED_KAFKA_SETTINGS if owned is None else owned
    out = []
    for key in sorted(k for k in props if isinstance(k, str)):
        fix = owned.get(key.strip())
        if fix is None and variable == "zookeeper_properties" and re.fullmatch(r"server\.\d+", key.strip()):
            fix = "the zookeeper group (each member's zookeeper_id and ports)"
        if fix is None:
            continue
        head = f"{variable} sets {key.strip()}, which kafka-metal writes itself: remove it"
        if fix.startswith("nothing: "):
            out.append(f"{head} ({fix[len('nothing: '):]})")
        else:
            out.append(f"{head} and set {fix} instead")
    return out


def replication_problems(settings, brokers):
    """Replication settings the cluster cannot meet. ``settings``: the broker's effective settings (kafka-metal's
    defaults for this cluster with broker_properties over them); ``brokers``: how many brokers there are."""
    out, values = [], {}
    for key in ("default.replication.factor", "min.insync.replicas", "offsets.topic.replication.factor",
                "transaction.state.log.replication.factor", "transaction.state.log.min.isr"):
        if key in settings:
            n = _int(settings[key])
            if n is None or n < 1:
                out.append(f"broker_properties.{key} must be a whole number of at least 1, got {settings[key]!r}")
            else:
                values[key] = n
    for key in ("default.replication.factor", "offsets.topic.replication.factor",
                "transaction.state.log.replication.factor"):
        if brokers and values.get(key, 0) > brokers:
            out.append(f"broker_properties.{key} is {values[key]} but the cluster has {brokers} broker"
                       f"{'s' if brokers != 1 else ''}: Kafka could not place the replicas; use at most {brokers}, "
                       "or add brokers")
    for isr, rf in (("min.insync.replicas", "default.replication.factor"),
                    ("transaction.state.log.min.isr", "transaction.state.log.replication.factor")):
        if isr in values and rf in values and values[isr] > values[rf]:
            out.append(f"broker_properties.{isr} is {values[isr]}, above {rf} ({values[rf]}): no write with acks=all "
                       f"could ever succeed; keep {isr} below the replication factor (usually factor - 1)")
    return out


# ---------------------------------------------------------------------------------------------------------
# files on the controller
# ---------------------------------------------------------------------------------------------------------

def controller_file_problems(v, exists):
    """Files the inventory names on the controller that are not there. ``exists(path)`` says whether one is."""
    out = []
    src = v.get("kafka_archive_src")
    if isinstance(src, str) and src.strip() and not exists(src.strip()):
        out.append(f"kafka_archive_src {src.strip()} does not exist on the controller: fix the path, or leave "
                   "kafka_archive_src empty to download kafka_archive_url")
    agent = v.get("kafka_jmx_exporter_src")
    if _on(v.get("kafka_metrics_enabled", True)) and isinstance(agent, str) and agent.strip() \
            and not exists(agent.strip()):
        version = v.get("kafka_jmx_exporter_version", "")
        out.append(f"kafka_jmx_exporter_src {agent.strip()} does not exist on the controller: fetch the JMX exporter "
                   f"agent with `kafka-metal dist agent{' --version ' + str(version) if version else ''}`, fix the "
                   "path, or set kafka_metrics_enabled: false")
    checksum = v.get("kafka_jmx_exporter_checksum")
    if _on(v.get("kafka_metrics_enabled", True)) and checksum is not None \
            and not re.fullmatch(r"[0-9a-fA-F]{64}", str(checksum).strip()):
        out.append(f"kafka_jmx_exporter_checksum must be the agent jar's SHA-256 (64 hex digits), got {checksum!r}")
    byo = v.get("kafka_tls_byo")
    if isinstance(byo, dict):
        for key in ("ca_bundle", "certificate", "key", "chain"):
            path = byo.get(key)
            if isinstance(path, str) and path.strip() and not exists(path.strip()):
                out.append(f"kafka_tls_byo.{key} {path.strip()} does not exist on the controller: give the path "
                           "of the PEM file on the machine that runs the playbook")
    return out


# ---------------------------------------------------------------------------------------------------------
# declarative state: topics, users, ACLs
# ---------------------------------------------------------------------------------------------------------

def _unknown_keys(where, entry, known):
    unknown = sorted(str(k) for k in entry if k not in known)
    out = []
    for key in unknown:
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else f" (known: {', '.join(known)})"
        out.append(f"{where} has the unknown key {key}{hint}")
    return out


def _named_entries(value, var, shape, known, out):
    """Each mapping entry of the list ``var`` as ``(index, entry, name, where)``; what is not a list or not a
    mapping, a missing name and unknown keys go to ``out``."""
    if value in (None, ""):
        return
    if not isinstance(value, list):
        out.append(f"{var} must be a list of {shape}")
        return
    for i, entry in enumerate(value):
        if not isinstance(entry, dict):
            out.append(f"{var}[{i}] must be a mapping with a name")
            continue
        name = entry.get("name")
        named = isinstance(name, str) and name.strip()
        where = f"{var} entry {name}" if named else f"{var}[{i}]"
        out += _unknown_keys(where, entry, known)
        if not named:
            out.append(f"{var}[{i}] has no name")
        yield i, entry, name, where


def topic_problems(topics, brokers, default_min_isr=None):
    """``kafka_topics`` entries Kafka would refuse, or that could never take a write with acks=all."""
    out, names, collide = [], {}, {}
    for i, t, name, where in _named_entries(topics, "kafka_topics", "{name, partitions, replication_factor, "
                                            "configs}", TOPIC_KEYS, out):
        if not isinstance(name, str) or not name.strip():
            pass  # reported as having no name
        elif name in (".", "..") or not TOPIC_NAME.match(name):
            out.append(f"kafka_topics: {name!r} is not a name Kafka accepts: use 1-249 letters, digits, '.', '_' "
                       "or '-' (not . or ..)")
        else:
            if name in names:
                out.append(f"kafka_topics lists {name} twice: keep one entry")
            names[name] = i
            collide.setdefault(name.replace(".", "_"), set()).add(name)
        if t.get("state", "present") not in ("present", "absent"):
            out.append(f"{where}: state must be present or absent, got {t.get('state')!r}")
        parts = t.get("partitions")
        if parts is not None and (_int(parts) is None or _int(parts) < 1):
            out.append(f"{where}: partitions must be a whole number of at least 1, got {parts!r}")
        rf = t.get("replication_factor")
        if rf is not None:
            n = _int(rf)
            if n is None or n < 1:
                out.append(f"{where}: replication_factor must be a whole number of at least 1, got {rf!r}")
            elif brokers and n > brokers:
                out.append(f"{where}: replication_factor {n} is more than the {brokers} broker"
                           f"{'s' if brokers != 1 else ''} of the cluster: use at most {brokers}")
        configs = t.get("configs")
        if configs is not None and not isinstance(configs, dict):
            out.append(f"{where}: configs must be a mapping of topic setting to value")
        elif configs:
            isr = _int(configs.get("min.insync.replicas", default_min_isr))
            n = _int(rf)
            if isr is not None and n is not None and isr > n:
                out.append(f"{where}: min.insync.replicas {isr} is above its replication_factor {n}: no write with "
                           "acks=all could succeed; lower min.insync.replicas or raise the replication factor")
    for group in collide.values():
        if len(group) > 1:
            out.append(f"kafka_topics: {' and '.join(sorted(group))} collide (Kafka treats '.' and '_' alike in "
                       "metric names and refuses the second): rename one")
    return out


def user_problems(users):
    """``kafka_users`` entries that cannot be applied (each present user needs its password)."""
    out, seen = [], set()
    for _i, u, name, where in _named_entries(users, "kafka_users", "{name, password} entries", USER_KEYS, out):
        mech = u.get("mechanism", "SCRAM-SHA-512")
        if mech not in kafka_admin.SCRAM_MECHANISMS:
            out.append(f"{where}: mechanism must be one of {', '.join(kafka_admin.SCRAM_MECHANISMS)}, got {mech!r}")
        elif isinstance(name, str):
            if (name, mech) in seen:
                out.append(f"kafka_users lists {name} ({mech}) twice: keep one entry")
            seen.add((name, mech))
        state = u.get("state", "present")
        if state not in ("present", "absent"):
            out.append(f"{where}: state must be present or absent, got {state!r}")
        if u.get("update_password", "on_create") not in ("on_create", "always"):
            out.append(f"{where}: update_password must be on_create or always, got {u.get('update_password')!r}")
        it = u.get("iterations")
        if it is not None and (_int(it) is None or not kafka_admin.SCRAM_MIN_ITERATIONS <= _int(it)
                               <= kafka_admin.SCRAM_MAX_ITERATIONS):
            out.append(f"{where}: iterations must be from {kafka_admin.SCRAM_MIN_ITERATIONS} to "
                       f"{kafka_admin.SCRAM_MAX_ITERATIONS}, got {it!r}")
        if state == "present" and not (isinstance(u.get("password"), str) and u["password"]):
            out.append(f"{where} has no password: give it one from the vault (password: \"{{{{ vault_..._password "
                       "}}\"), or state: absent to remove the user")
    return out


def acl_problems(acls):
    """``kafka_acls`` entries Kafka would refuse: unknown operations or types, principals without a type, an
    entry both present and absent."""
    if acls in (None, ""):
        return []
    if not isinstance(acls, list):
        return ["kafka_acls must be a list of ACL entries (principal, operation, resource_type, resource_name)"]
    out, normalized = [], []
    for i, entry in enumerate(acls):
        if not isinstance(entry, dict):
            out.append(f"kafka_acls[{i}] must be a mapping (principal, operation, resource_type, resource_name)")
            continue
        bad = _unknown_keys(f"kafka_acls[{i}]", entry, ACL_KEYS)
        out += bad
        try:
            normalized.append(kafka_admin.normalize_acl(entry))
        except kafka_admin.PlanError as exc:
            out.append(f"kafka_acls[{i}]: {exc}")
    if not out:
        try:
            kafka_admin.plan_acls(normalized, [])
        except kafka_admin.PlanError as exc:
            out.append(f"kafka_acls: {exc}")
    return out


# ---------------------------------------------------------------------------------------------------------
# names
# ---------------------------------------------------------------------------------------------------------

def misspelt_setting_warnings(names, known):
    """Variables that look like kafka-metal settings but are none, with the setting they resemble."""
    known = sorted(set(known))
    out = []
    for name in sorted(set(names) - set(known)):
        if not name.startswith(SETTING_PREFIXES) or name.startswith(OWN_PREFIXES):
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.85)
        if close:
            out.append(f"{name} is not a kafka-metal setting, and nothing reads it: did you mean {close[0]}?")
    return out


def undefined_problem(setting, undefined):
    """The message for a setting (or settings joined by "and") whose expression uses a variable that is not
    defined."""
    uses = "use" if " and " in setting else "uses"
    if undefined.startswith("vault_"):
        return (f"{setting} {uses} {undefined}, which is not defined: put {undefined} in an encrypted vault file "
                "(for example group_vars/all/vault.yml, made with `ansible-vault create`) and run with "
                "--ask-vault-pass or --vault-password-file")
    return (f"{setting} {uses} {undefined}, which is not defined: define {undefined} in the inventory, or fix the "
            f"expression of {setting}")


def no_hosts_problem(groups, sources=()):
    """An inventory without any host in the three groups: nothing would be done, and that is an error.
    ``groups`` maps every group of the inventory to its hosts."""
    wanted = ("kafka_controllers", "kafka_brokers", "zookeeper")
    hints = []
    for g in sorted(groups):
        if g in wanted or g in ("all", "ungrouped"):
            continue
        close = difflib.get_close_matches(g, wanted, n=1, cutoff=0.6)
        if close:
            hints.append(f"{g} (did you mean {close[0]}?)")
    where = f" ({', '.join(sources)})" if sources else ""
    text = (f"the inventory{where} has no host in kafka_controllers, kafka_brokers or zookeeper, so there is "
            "nothing to do")
    if hints:
        one_group = len(hints) == 1
        text += (f": {'the group' if one_group else 'the groups'} " + ", ".join(hints)
                 + (" is not kafka-metal's: rename it, or make it a child" if one_group
                    else " are not kafka-metal's: rename them, or make them children")
                 + " of kafka-metal's groups")
    elif not any(hosts for g, hosts in groups.items() if g not in ("all",)) and not groups.get("all"):
        text += ": it holds no host at all; check that -i names an inventory Ansible could read (see its warnings "
        text += "above)"
    else:
        text += ": put the hosts in those groups (see the example inventory and docs/inventory.md)"
    return text


def shadowed_vars_files(listing):
    """Variable files Ansible never reads: beside a ``group_vars/NAME/`` (or ``host_vars/NAME/``) directory,
    ``NAME.yml`` is ignored. ``listing`` maps a group_vars or host_vars directory to the entries in it, each
    ``(name, is_directory)``."""
    out = []
    for where, entries in sorted(listing.items()):
        dirs = {name for name, is_dir in entries if is_dir}
        for name, is_dir in sorted(entries):
            stem, ext = posixpath.splitext(name)
            if not is_dir and ext in (".yml", ".yaml", ".json") and stem in dirs:
                out.append(f"{posixpath.join(where, name)} is never read, because {posixpath.join(where, stem)}/ "
                           f"exists (Ansible then reads only the directory): move it to "
                           f"{posixpath.join(where, stem, 'main' + ext)}")
    return out


_TYPE_WORDS = {"int": "a whole number", "bool": "true or false", "list": "a list", "dict": "a mapping",
               "str": "a string", "path": "a path", "float": "a number", "raw": "a value"}
_SPEC_TYPE = re.compile(r"^argument '(?P<name>[^']+)' is of type \S+ and we were unable to convert to (?P<type>\w+)")
_SPEC_CHOICES = re.compile(r"^value of (?P<name>\S+) must be one of: (?P<choices>.*), got: (?P<got>.*)$")


def spec_message(message, params):
    """An argument-spec failure in one line, in the words of the other messages: the setting, what it must be,
    what it is."""
    m = _SPEC_TYPE.match(message)
    if m:
        name = m.group("name")
        return f"{name} must be {_TYPE_WORDS.get(m.group('type'), 'a ' + m.group('type'))}, got {params.get(name)!r}"
    m = _SPEC_CHOICES.match(message)
    if m:
        return f"{m.group('name')} must be one of {m.group('choices')}, got {m.group('got')}"
    return message


def spec_names(message):
    """The setting an argument-spec failure (as :func:`spec_message` words it) is about, or None."""
    m = re.match(r"^([a-z][a-z0-9_]*) must be ", message)
    return m.group(1) if m else None


def replaced_setting_problems(set_by_host):
    """Settings of an older layout that nothing reads now. ``set_by_host`` maps each such setting the inventory
    sets to the hosts it is set for."""
    return [f"{name} is set ({', '.join(hosts)}), but no role reads it: set {REPLACED_SETTINGS[name]} instead, the "
            "one setting for it" for name, hosts in sorted(set_by_host.items()) if name in REPLACED_SETTINGS]
