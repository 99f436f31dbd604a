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

from . import luks, tuning
from .cluster import node_errors, topology_errors
from .rolling import connection_problems
from .zookeeper import ensemble_errors

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


def heap_problem(setting, name):
    """A message when an explicit heap size is malformed (``auto`` is fine)."""
    if setting in (None, "", "auto"):
        return ""
    try:
        tuning.parse_size(setting, name)
    except tuning.TuningError as exc:
        return str(exc)
    return ""


def host_problems(host, v, groups):
    """Problems of one host. ``v`` maps variable name to its resolved value (role defaults included);
    ``groups`` maps group name to its hosts."""
    out = []
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
        out.append(heap_problem(get("controller_heap_size"), "controller_heap_size"))
    if host in groups.get(BROKERS, []):
        disks = get("tuning_data_disks") or []
        node["log_dirs"] = ([d.get("path") for d in disks if isinstance(d, dict)] if disks
                            else get("broker_log_dirs"))
        node["properties"]["broker_properties"] = get("broker_properties") or {}
        out.append(heap_problem(get("broker_heap_size"), "broker_heap_size"))
    if host in groups.get(ZOOKEEPER, []):
        node["properties"]["zookeeper_properties"] = get("zookeeper_properties") or {}
    prefix = f"host {host}: "
    out += [e[len(prefix):] if e.startswith(prefix) else e for e in node_errors(host, node)]
    out += [e[len(host) + 2:] if e.startswith(host + ": ") else e for e in connection_problems(host, v)]
    return [p for p in out if p]


def inventory_errors(hosts, groups, resolved, spec_problems=None):
    """Every problem of the inventory, each naming the hosts or group it concerns and the fix.

    ``hosts``: the hosts to check (those of the run); ``groups``: group name to hosts (the whole inventory);
    ``resolved``: host name to its resolved variables (a mapping with ``get`` and ``in``), for every host in
    ``hosts`` and in the three groups;
    ``spec_problems``: host name to problems found by the roles' argument specs (types, choices). A mapping
    in ``resolved`` may list, as ``problems``, the values it could not resolve; they are reported first.
    """
    by_problem = {}
    for host in hosts:
        found_here = host_problems(host, resolved[host], groups)
        # values that could not be templated (recorded by the caller's mapping as it was read) come first
        found_here = list(getattr(resolved[host], "problems", ())) + list((spec_problems or {}).get(host, [])) \
            + found_here
        for problem in found_here:
            found = by_problem.setdefault(problem, [])
            if host not in found:
                found.append(host)
    errors = [(f"host {found[0]}: " if len(found) == 1 else f"hosts {', '.join(found)}: ") + problem
              for problem, found in by_problem.items()]

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
    for setting in GROUP_NAME_SETTINGS:
        named = sorted({h for h in everyone if setting in resolved[h]})
        if named:
            errors.append(f"inventory: {setting} is set ({', '.join(named)}), but the inventory groups have fixed "
                          "names (kafka_controllers, kafka_brokers, zookeeper): remove the setting and make your "
                          "own groups children of those groups")
    if mode is not None:
        def ids(group, var):
            return {h: resolved[h].get(var) for h in members[group]}

        errors += [f"inventory: {e}" for e in topology_errors(
            ids(CONTROLLERS, "kafka_node_id"), ids(BROKERS, "kafka_node_id"), mode, ids(ZOOKEEPER, "zookeeper_id"))]
        if mode == "kraft" and members[ZOOKEEPER]:
            errors += [f"inventory: {e}" for e in ensemble_errors(ids(ZOOKEEPER, "zookeeper_id"))]
    return errors
