# Copyright: kafka-metal contributors
# Apache License 2.0
"""The whole inventory, checked once per run on the controller before any host is changed.

No I/O and no Ansible: the caller (the ``kafka_validate`` action) resolves each host's variables (role
defaults under the inventory, templated) and hands them over as one mapping per host. Every check the roles
need is here, so one task checks every host and reports every problem at once:

- per host: the install and cluster settings (:func:`cluster.node_errors`), host tuning and data disks
  (:func:`tuning_problems`), the connection settings the rolling engine cannot honour
  (:func:`rolling.connection_problems`), and the settings of the host's roles (controller, broker, ZooKeeper
  member: Kafka settings as strings, heap sizes, data directories);
- once: the cluster's shape (controller quorum, brokers, unique node ids, the ZooKeeper ensemble), one metadata
  mode for every host, and no setting that names the inventory groups (their names are fixed).

A problem found on several hosts is reported once, with the hosts it concerns.
"""

from __future__ import annotations

import re

from . import inventory_rules as rules
from . import luks, preflight, tuning
from .cluster import ValidationError, node_errors, parse_version, replication_defaults, topology_errors
from .rolling import connection_problems

CONTROLLERS, BROKERS, ZOOKEEPER = "kafka_controllers", "kafka_brokers", "zookeeper"
GROUPS = (ZOOKEEPER, CONTROLLERS, BROKERS)
# Settings that other tools use to rename the inventory groups; here the names are fixed.
GROUP_NAME_SETTINGS = ("kafka_controllers_group", "kafka_brokers_group", "kafka_zookeeper_group",
                       "zookeeper_inventory_group")


def tuning_problems(disks, sysctls=None, sysctl_overrides=None, thp_enabled="madvise", thp_defrag="madvise",
                    luks_params=None):
    """Everything wrong with the tuning inventory, as messages (empty when it is fine)."""
    out = tuning.disk_problems(disks) + luks.encryption_problems(disks)
    try:
        luks.luks_params(luks_params, "tuning_luks")
    except luks.LuksError as exc:
        out.append(str(exc))
    try:
        tuning.sysctl_values(sysctls, sysctl_overrides)
    except tuning.TuningError as exc:
        out.append(str(exc))
    if thp_enabled not in tuning.THP_MODES:
        out.append(f"tuning_thp_enabled must be one of {', '.join(tuning.THP_MODES)}, got {thp_enabled!r}")
    if thp_defrag not in tuning.THP_DEFRAG_MODES:
        out.append(f"tuning_thp_defrag must be one of {', '.join(tuning.THP_DEFRAG_MODES)}, got {thp_defrag!r}")
    return out


def host_roles(host, groups):
    """The roles a host has in the inventory: ``broker``, ``controller``, ``zookeeper``."""
    return [role for role, group in (("broker", BROKERS), ("controller", CONTROLLERS), ("zookeeper", ZOOKEEPER))
            if host in groups.get(group, [])]


def broker_settings(v, roles, broker_count, mode):
    """The replication settings a broker runs with: kafka-metal's for this cluster, then the inventory's."""
    rf, isr = replication_defaults(broker_count)
    settings = {"default.replication.factor": rf, "min.insync.replicas": isr,
                "offsets.topic.replication.factor": rf, "transaction.state.log.replication.factor": rf,
                "transaction.state.log.min.isr": isr}
    for name in (["controller_properties"] if "controller" in roles and mode == "kraft" else []) \
            + ["broker_properties"]:
        props = v.get(name)
        if isinstance(props, dict):
            settings.update(props)
    return settings


def effective_mode(v):
    """``kraft`` for a node that runs (or is being moved to) KRaft: a KRaft-mode inventory, or a ZooKeeper-mode
    one in the middle of the migration to KRaft (its controllers, and later its brokers, speak KRaft)."""
    mode = v.get("kafka_metadata_mode", "kraft")
    return "kraft" if mode == "kraft" or str(v.get("kafka_zookeeper_migration", "none")) != "none" else mode


def role_problems(host, v, groups, exists=None):
    """The rules of :mod:`inventory_rules` that concern one host: its ports and advertised host, its storage,
    the settings kafka-metal owns, replication, heap floors, files on the controller."""
    get = v.get
    roles = host_roles(host, groups)
    mode = get("kafka_metadata_mode", "kraft")
    out = rules.port_problems(rules.node_ports(v, roles, effective_mode(v)))
    if "broker" in roles or "controller" in roles:
        out += rules.advertised_host_problems("kafka_advertised_host", get("kafka_advertised_host"))
    if "zookeeper" in roles:
        out += rules.advertised_host_problems("zookeeper_advertised_host", get("zookeeper_advertised_host"))
        out += rules.owned_setting_problems("zookeeper_properties", get("zookeeper_properties"),
                                            rules.OWNED_ZOOKEEPER_SETTINGS)
        out += rules.heap_problems("zookeeper_heap_size", get("zookeeper_heap_size"))
    if "controller" in roles:
        out += rules.owned_setting_problems("controller_properties", get("controller_properties"))
        out += rules.heap_problems("controller_heap_size", get("controller_heap_size"))
    if "broker" in roles:
        brokers = len(groups.get(BROKERS, []))
        disks = get("tuning_data_disks") or []
        if disks and isinstance(disks, list):
            dirs, var = [d.get("path") for d in disks if isinstance(d, dict)], "tuning_data_disks"
        else:
            dirs, var = get("broker_log_dirs"), "broker_log_dirs"
        if isinstance(dirs, str):
            dirs = dirs.split(",")
        out += rules.storage_problems(dirs if isinstance(dirs, list) else [], var,
                                      get("kafka_metadata_dir") if effective_mode(v) == "kraft" else None,
                                      report_twice=var == "broker_log_dirs")
        out += rules.owned_setting_problems("broker_properties", get("broker_properties"))
        out += rules.heap_problems("broker_heap_size", get("broker_heap_size"))
        settings = broker_settings(v, roles, brokers, mode)
        out += rules.replication_problems(settings, brokers)
        if mode == "zookeeper":
            out += rules.zookeeper_broker_id_problems(get("kafka_node_id"), settings)
        out += rules.topic_problems(get("kafka_topics"), brokers, settings.get("min.insync.replicas"))
        out += rules.user_problems(get("kafka_users"))
        out += rules.acl_problems(get("kafka_acls"))
    if exists is not None:
        out += rules.controller_file_problems(v, exists)
    return out


def preflight_plan(host, v, groups):
    """What the host must offer before its node is set up (:func:`preflight.host_plan`): the ports of its
    roles and who may hold them, the limits of the Kafka unit, the data disks' devices, and whether the
    inventory insists on tuning the running kernel."""
    roles = host_roles(host, groups)
    get = v.get
    disks = get("tuning_data_disks")
    return preflight.host_plan(rules.node_ports(v, roles, effective_mode(v)),
                               get("kafka_user", "kafka"), get("zookeeper_user", "zookeeper"),
                               get("kafka_limit_nofile", 100000), get("kafka_limit_nproc", 8192),
                               disks if isinstance(disks, list) else [], get("tuning_kernel_apply", "auto"))


def advertised_endpoints(groups, resolved):
    """What each Kafka node and ZooKeeper member advertises: host -> [(port variable, host, port)]."""
    out = {}
    for host in dict.fromkeys(h for g in GROUPS for h in groups.get(g, [])):
        v = resolved[host]
        roles = host_roles(host, groups)
        adv = v.get("kafka_advertised_host")
        items = [(name, adv, port) for name, port in rules.node_ports(v, roles, effective_mode(v)).items()
                 if name.startswith(("broker_", "kafka_controller"))]
        zk_adv = v.get("zookeeper_advertised_host")
        items += [(name, zk_adv, port) for name, port in rules.node_ports(v, ["zookeeper"], effective_mode(v)).items()
                  if "zookeeper" in roles and name not in rules.METRICS_PORTS]
        out[host] = items
    return out


def host_problems(host, v, groups, exists=None):
    """Problems of one host. ``v`` maps variable name to its resolved value (role defaults included);
    ``groups`` maps group name to its hosts; ``exists(path)`` says whether a file is on the controller."""
    out = role_problems(host, v, groups, exists)
    get = v.get
    out += tuning_problems(get("tuning_data_disks") or [], get("tuning_sysctls"), get("tuning_sysctl_overrides"),
                           get("tuning_thp_enabled", "madvise"), get("tuning_thp_defrag", "madvise"),
                           get("tuning_luks"))
    password = get("kafka_admin_password")
    node = {
        "version": get("kafka_version"), "metadata_mode": get("kafka_metadata_mode", "kraft"),
        "cluster_id": get("kafka_cluster_id"), "metadata_dir": get("kafka_metadata_dir"),
        "archive_url": get("kafka_archive_url"), "archive_src": get("kafka_archive_src"),
        "archive_checksum": get("kafka_archive_checksum"),
        "security": {
            "default_protocol": get("kafka_security_protocol"), "overrides": get("kafka_listener_protocols"),
            "sasl_mechanism": get("kafka_sasl_mechanism"), "client_mechanisms": get("kafka_sasl_client_mechanisms"),
            "admin_user": get("kafka_admin_user"), "admin_password_length": len(str(password or "")),
            "client_auth": get("kafka_tls_client_auth"), "super_users": get("kafka_super_users"),
        },
        "properties": {},
    }
    if host in groups.get(CONTROLLERS, []):
        node["properties"]["controller_properties"] = get("controller_properties") or {}
    if host in groups.get(BROKERS, []):
        disks = get("tuning_data_disks") or []
        node["log_dirs"] = ([d.get("path") for d in disks if isinstance(d, dict)] if disks
                            else get("broker_log_dirs"))
        node["properties"]["broker_properties"] = get("broker_properties") or {}
    if host in groups.get(ZOOKEEPER, []):
        node["properties"]["zookeeper_properties"] = get("zookeeper_properties") or {}
    prefix = f"host {host}: "
    out += [e[len(prefix):] if e.startswith(prefix) else e for e in node_errors(host, node)]
    out += [e[len(host) + 2:] if e.startswith(host + ": ") else e for e in connection_problems(host, v)]
    return [p for p in out if p]


def inventory_errors(hosts, groups, resolved, spec_problems=None, exists=None):
    """Every problem of the inventory, each naming the hosts or group it concerns and the fix.

    ``hosts``: the hosts to check (those of the run); ``groups``: group name to hosts (the whole inventory);
    ``resolved``: host name to its resolved variables (a mapping with ``get`` and ``in``), for every host in
    ``hosts`` and in the three groups;
    ``spec_problems``: host name to problems found by the roles' argument specs (types, choices). A mapping
    in ``resolved`` may list, as ``problems``, the values it could not resolve; they are reported first.
    """
    by_problem = {}
    for host in hosts:
        specs = list((spec_problems or {}).get(host, []))
        found_here = host_problems(host, resolved[host], groups, exists)
        # values that could not be templated (recorded by the caller's mapping as it was read) come first, then
        # what the argument specs say; what follows from either (an empty value, a wrong type, a port that is not
        # a number) is not reported again
        settled = set(getattr(resolved[host], "unresolved", ())) | {n for n in map(rules.spec_names, specs) if n}
        if settled:
            pattern = re.compile(r"(?<![\w.])(" + "|".join(map(re.escape, sorted(settled))) + r")(?![\w])")
            found_here = [p for p in found_here if not pattern.search(p)]
            specs = [p for p in specs if not any(re.search(rf"(?<![\w.]){re.escape(n)}(?![\w])", p)
                                                 for n in getattr(resolved[host], "unresolved", ()))]
        found_here = list(getattr(resolved[host], "problems", ())) + specs + found_here
        for problem in found_here:
            found = by_problem.setdefault(problem, [])
            if host not in found:
                found.append(host)
    def concerned(found):
        if len(found) == 1:
            return f"host {found[0]}: "
        if len(found) == len(hosts) and len(found) > 3:
            return f"every host ({len(found)}): "
        return f"hosts {', '.join(found)}: "

    errors = [concerned(found) + problem for problem, found in by_problem.items()]

    members = {g: list(groups.get(g, [])) for g in GROUPS}
    everyone = [h for g in GROUPS for h in members[g]]
    modes = {}
    for h in everyone:
        modes.setdefault(resolved[h].get("kafka_metadata_mode", "kraft"), []).append(h)
    if len(modes) > 1:
        errors.append("inventory: the hosts disagree on kafka_metadata_mode ("
                      + "; ".join(f"{m}: {', '.join(sorted(set(hs)))}" for m, hs in sorted(modes.items()))
                      + "): a cluster has one metadata mode; set it once, in group_vars/all")
    mode = next(iter(modes), "kraft") if len(modes) == 1 else None
    errors += [f"inventory: {e}" for e in rules.endpoint_clashes(advertised_endpoints(groups, resolved))]
    if mode == "kraft" and members[ZOOKEEPER]:
        errors.append(f"inventory: {', '.join(members[ZOOKEEPER])} "
                      f"{'is' if len(members[ZOOKEEPER]) == 1 else 'are'} in the zookeeper group, but "
                      "kafka_metadata_mode is kraft, where nothing runs ZooKeeper: take them out of the group, or set "
                      "kafka_metadata_mode: zookeeper")
    replaced = {name: sorted({h for h in everyone if name in resolved[h]}) for name in rules.REPLACED_SETTINGS}
    errors += [f"inventory: {e}" for e in rules.replaced_setting_problems({n: h for n, h in replaced.items() if h})]
    for setting in GROUP_NAME_SETTINGS:
        named = sorted({h for h in everyone if setting in resolved[h]})
        if named:
            errors.append(f"inventory: {setting} is set ({', '.join(named)}), but the inventory groups have fixed "
                          "names (kafka_controllers, kafka_brokers, zookeeper): remove the setting and make your "
                          "own groups children of those groups")
    if mode is not None:
        def ids(group, var):
            return {h: resolved[h].get(var) for h in members[group]}

        phases = sorted({str(resolved[h].get("kafka_zookeeper_migration", "none")) for h in everyone})
        if len(phases) > 1:
            errors.append(f"inventory: the hosts disagree on kafka_zookeeper_migration ({', '.join(phases)}): a "
                          "cluster is in one migration phase; set it once, in group_vars/all")
        errors += [f"inventory: {e}" for e in topology_errors(
            ids(CONTROLLERS, "kafka_node_id"), ids(BROKERS, "kafka_node_id"), mode, ids(ZOOKEEPER, "zookeeper_id"),
            migration=phases[0] if len(phases) == 1 else "none")]
        quorums = sorted({str(resolved[h].get("kafka_controller_quorum", "static")) for h in everyone})
        if len(quorums) > 1:
            errors.append(f"inventory: the hosts disagree on kafka_controller_quorum ({', '.join(quorums)}): a "
                          "cluster has one controller quorum; set it once, in group_vars/all")
        elif quorums == ["dynamic"]:
            if mode != "kraft" or phases != ["none"]:
                errors.append("inventory: kafka_controller_quorum is dynamic, but the cluster runs ZooKeeper or is "
                              "migrating to KRaft: a dynamic quorum comes after the migration's finalize; keep "
                              "kafka_controller_quorum: static until then")
            old = sorted({str(resolved[h].get("kafka_version")) for h in everyone
                          if _release(resolved[h].get("kafka_version")) < (4, 1)})
            if old:
                errors.append(f"inventory: kafka_controller_quorum is dynamic, but kafka_version is {', '.join(old)}: "
                              "kafka-metal manages a dynamic quorum on Kafka 4.1 and later; upgrade first, or keep "
                              "kafka_controller_quorum: static")
    return errors


def _release(version):
    """(major, minor) of a Kafka version; (0, 0) when it is not one (the node checks say why)."""
    try:
        return parse_version(version)[:2]
    except ValidationError:
        return (0, 0)


def inventory_warnings(hosts, resolved, known):
    """Variables set for these hosts that look like kafka-metal settings but are none (a misspelt name is read by
    nothing): one warning per name."""
    names = set()
    for host in hosts:
        names |= set(getattr(resolved[host], "set_names", lambda: ())())
    return rules.misspelt_setting_warnings(names, known)
