# Copyright: kafka-metal contributors
# Apache License 2.0
"""Filters: render properties, derive the quorum and a node's settings, choose the cluster id."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.metal.kafka.plugins.module_utils import (
    cluster,
    heap,
    luks,
    metrics,
    migration,
    node,
    preflight,
    properties,
    security,
    tuning,
    zookeeper,
)


def _address(hostvars, host, var):
    """The address others use for ``host``: ``var`` if the inventory sets it, else ansible_host, else the name."""
    hv = hostvars[host]
    return hv.get(var) or hv.get("ansible_host") or host


def to_properties(value):
    """Render a dict of strings as sorted ``key=value`` lines; refuse non-strings."""
    try:
        return properties.render(dict(value))
    except properties.PropertiesError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def kafka_quorum_voters(hosts, hostvars, port):
    """``controller.quorum.voters`` for the given controller hosts."""
    controllers = {h: (hostvars[h]["kafka_node_id"], _address(hostvars, h, "kafka_advertised_host")) for h in hosts}
    return cluster.quorum_voters(controllers, port)


def kafka_quorum_bootstrap(hosts, hostvars, port):
    """``controller.quorum.bootstrap.servers`` (a dynamic quorum) for the given controller hosts."""
    controllers = {h: (hostvars[h]["kafka_node_id"], _address(hostvars, h, "kafka_advertised_host")) for h in hosts}
    return cluster.quorum_bootstrap(controllers, port)


def kafka_initial_controllers(hosts, hostvars, port, cluster_ids):
    """The first voters of a new dynamic quorum (``kafka-storage format --initial-controllers``), each with a new
    directory id; empty when any controller already holds a cluster id on disk (the quorum exists, and a controller
    formatted now joins it as an observer). ``cluster_ids``: host -> the cluster ids found on its disk."""
    if not hosts or any(cluster_ids.get(h) for h in hosts):
        return ""
    controllers = {h: (hostvars[h]["kafka_node_id"], _address(hostvars, h, "kafka_advertised_host")) for h in hosts}
    return cluster.initial_controllers(controllers, port, {h: cluster.new_directory_id() for h in hosts})


def kafka_quorum_problems(hosts, hostvars, quorum):
    """Why the inventory's ``kafka_controller_quorum`` disagrees with the nodes (cluster.quorum_config_problems)."""
    configs = {h: (hostvars[h].get("__kafka_host") or {}).get("properties") for h in hosts}
    return cluster.quorum_config_problems({h: c for h, c in configs.items() if c}, quorum)


def kafka_kraft_properties(roles, **kwargs):
    try:
        return cluster.kraft_properties(roles=list(roles), **kwargs)
    except (KeyError, ValueError, TypeError) as exc:
        raise AnsibleFilterError(f"cannot compute node settings: {exc}") from exc


def kafka_migration_stages(hosts, hostvars, groups):
    """``{brokers: {host: stage}, controllers: {host: stage}}`` of the given hosts, from what each host's
    read (``__kafka_host``: its server.properties keys and the cluster ids in its metadata directory) says."""
    out = {"brokers": {}, "controllers": {}}
    for group, key in (("kafka_brokers", "brokers"), ("kafka_controllers", "controllers")):
        for h in groups.get(group, []):
            if h not in hosts:
                continue
            facts = hostvars[h].get("__kafka_host") or {}
            if "properties" not in facts:
                continue
            stage = migration.node_stage(facts.get("properties"), bool(facts.get("cluster_ids")))
            # written but not yet running: the node is between two stages (a step that was cut short)
            out[key][h] = stage + "*" if facts.get("properties_stale") and stage != "absent" else stage
    return out


def kafka_migration_problems(hosts, hostvars, groups, phase, mode):
    """site.yml's check that the inventory names the migration phase the hosts are configured in."""
    stages = kafka_migration_stages(hosts, hostvars, groups)
    return migration.inventory_problems(str(phase), mode, stages["brokers"], stages["controllers"])


def kafka_migration_phase(stages, migration_znode=None, rollback=False):
    """The cluster's phase (:func:`migration.cluster_phase`) with the next step and the inventory lines."""
    try:
        state = migration.cluster_phase(stages["brokers"], stages["controllers"], migration_znode or None)
        step = migration.next_step(state, rollback=bool(rollback))
    except migration.MigrationError as exc:
        raise AnsibleFilterError(str(exc)) from None
    target = migration.step_target(step) if step else state["phase"]
    return {**state, "step": step, "target": target, "step_text": migration.STEP_TEXT.get(step or "", ""),
            "inventory": migration.inventory_changes(target),
            "inventory_now": migration.inventory_changes(state["phase"]),
            "complete": migration.migration_complete(migration_znode)}


def kafka_migration_properties(kraft, **kwargs):
    """kafka-metal's settings of a node in a phase of the migration to KRaft."""
    try:
        return migration.node_properties(kraft=dict(kraft), **kwargs)
    except (KeyError, ValueError, TypeError) as exc:
        raise AnsibleFilterError(f"cannot compute node settings: {exc}") from None


def kafka_migration_precheck(version, **kwargs):
    return migration.precheck_problems(version=version, **kwargs)


def kafka_choose_cluster_id(found, configured=""):
    """``found``: mapping host -> list of cluster ids already on disk."""
    try:
        return cluster.choose_cluster_id(configured, dict(found))[0]
    except cluster.ValidationError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def kafka_zookeeper_broker_properties(log_dirs, **kwargs):
    try:
        return cluster.zookeeper_broker_properties(log_dirs=list(log_dirs), **kwargs)
    except (KeyError, ValueError, TypeError) as exc:
        raise AnsibleFilterError(f"cannot compute broker settings: {exc}") from exc


def kafka_zookeeper_connect(hosts, hostvars, chroot=""):
    """``zookeeper.connect`` for the ensemble hosts (their address and client port)."""
    members = host_addresses(hosts, hostvars, "zookeeper_advertised_host")
    ports = {int(hostvars[h].get("zookeeper_client_port") or 2181) for h in hosts}
    if len(ports) > 1:
        raise AnsibleFilterError("zookeeper_client_port differs between ensemble hosts; use one port")
    return zookeeper.connect_string(members, ports.pop() if ports else 2181, chroot)


def zookeeper_cfg(hosts, hostvars, **kwargs):
    """zoo.cfg settings for the ensemble hosts (myid -> address from the inventory)."""
    members = {int(hostvars[h]["zookeeper_id"]): _address(hostvars, h, "zookeeper_advertised_host") for h in hosts}
    return zookeeper.zoo_cfg(members=members, **kwargs)


def host_addresses(hosts, hostvars, var="kafka_advertised_host"):
    """Mapping host -> the address others use for it (``var``, else ansible_host, else the name)."""
    return {h: _address(hostvars, h, var) for h in hosts}


def kafka_bootstrap_servers(hosts, hostvars, default_port=9092):
    """``host:port,...`` of the brokers' client listeners, as clients reach them."""
    return ",".join(f"{_address(hostvars, h, 'kafka_advertised_host')}:"
                    f"{int(hostvars[h].get('broker_client_port') or default_port)}" for h in hosts)


def kafka_checksum(value):
    """An archive checksum as 128 lower-case hex digits (an optional ``sha512:`` prefix dropped)."""
    return cluster.normalize_checksum(value)


def kafka_listener_protocols(default, overrides=None, mode="kraft"):
    """Security protocol of each listener (client, internal, controller)."""
    return security.listener_protocols(default, overrides or {}, mode)


def kafka_node_security(roles, **kwargs):
    """``{settings, credentials}`` of a node; ``settings`` name no secret (they reference the credentials file)."""
    try:
        settings, credentials = security.node_security(roles=list(roles), **kwargs)
    except (KeyError, ValueError, TypeError) as exc:
        raise AnsibleFilterError(f"cannot compute security settings: {exc}") from None
    return {"settings": settings, "credentials": credentials}


def kafka_jaas(mechanism, username, password):
    """A client JAAS line (sasl.jaas.config) with Kafka's quoting."""
    return security.jaas(mechanism, username, password)


def kafka_scram_bootstrap(mechanisms, user, password, iterations):
    """SCRAM credentials to bootstrap for the admin user: one per SCRAM mechanism in use."""
    return [{"mechanism": m, "name": user, "password": password, "iterations": int(iterations)}
            for m in dict.fromkeys(mechanisms) if m in security.SCRAM_MECHANISMS]


def kafka_roll_hosts(names, hostvars):
    """The ``hosts`` option of ``kafka_roll`` from inventory names: address, SSH port, user, key, jump hosts,
    passwords (masked by the module), cluster groups; stops naming each setting the engine cannot honour."""
    from dataclasses import asdict

    from ansible_collections.metal.kafka.plugins.module_utils.rolling import host_from_vars

    out, problems = [], []
    for name in names:
        hv = hostvars[name]
        host, found = host_from_vars(name, hv, hv.get("group_names", []))
        problems += found
        out.append({k: v for k, v in asdict(host).items() if v not in (None, [])})
    if problems:
        raise AnsibleFilterError("the rolling engine cannot reach these hosts the way Ansible does; nothing was "
                                 "restarted:\n- " + "\n- ".join(problems))
    return out


def kafka_known_hosts(ssh_args, default="~/.ssh/known_hosts"):
    """The ``UserKnownHostsFile`` named in ``ansible_ssh_common_args`` (else ``default``)."""
    import re

    m = re.search(r"UserKnownHostsFile=(\S+)", str(ssh_args or ""))
    return m.group(1) if m else default


def _tuning(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except tuning.TuningError as exc:
        raise AnsibleFilterError(str(exc)) from None


def tuning_sysctl_values(defaults, overrides=None):
    """``tuning_sysctls`` with ``tuning_sysctl_overrides`` merged over it, validated (errors name the key)."""
    return _tuning(tuning.sysctl_values, defaults, overrides)


def tuning_problems(disks, sysctls=None, sysctl_overrides=None, thp_enabled="madvise", thp_defrag="madvise",
                    luks_params=None):
    """Everything wrong with the tuning inventory, as messages (empty when it is fine)."""
    from ansible_collections.metal.kafka.plugins.module_utils.inventory import tuning_problems as problems

    return problems(disks, sysctls, sysctl_overrides, thp_enabled, thp_defrag, luks_params)


def tuning_luks_disks(disks, luks_params=None, keys=None):
    """The encrypted entries of ``tuning_data_disks``, each with its device-mapper ``name``, the LUKS
    parameters (``tuning_luks`` merged over the defaults) and ``key`` when a vault supplies it."""
    try:
        params = luks.luks_params(luks_params, "tuning_luks")
    except luks.LuksError as exc:
        raise AnsibleFilterError(str(exc)) from None
    out = []
    for disk in disks or []:
        if isinstance(disk, dict) and disk.get("encrypt") is True:
            name = luks.mapper_name(disk)
            entry = {**disk, "name": name, "mapped": f"/dev/mapper/{name}", "params": params}
            if keys and name in keys:
                entry["key"] = keys[name]
            out.append(entry)
    return out


def tuning_disk_devices(disks):
    """``tuning_data_disks`` with each encrypted entry's device replaced by its opened volume (the file
    system goes on ``/dev/mapper/NAME``)."""
    out = []
    for disk in disks or []:
        if isinstance(disk, dict) and disk.get("encrypt") is True:
            disk = {**disk, "device": f"/dev/mapper/{luks.mapper_name(disk)}", "force_format": False}
        out.append(disk)
    return out


def kafka_heap_size(setting, mem_total, kind, name="heap size"):
    """The JVM heap of one Kafka process (module_utils/heap.py): explicit, or by rule from the host's memory."""
    try:
        return heap.heap_size(setting, int(mem_total), kind, name)
    except heap.HeapError as exc:
        raise AnsibleFilterError(str(exc)) from None


def kafka_limit_problems(pid1_limits, nofile, nproc):
    """Why a unit with these limits would not start on the host (from kafka_host_facts' pid1_limits)."""
    limits = {k: tuple(v) for k, v in (pid1_limits or {}).items()}
    return tuning.limit_problems(limits, int(nofile), int(nproc))


def kafka_host_problems(host_facts, plan):
    """Why this host cannot run its node (ports taken, limits, data disks, kernel), from kafka_host_facts'
    result and the host's entry in kafka_validate's ``preflight``."""
    return preflight.host_problems(dict(host_facts or {}), dict(plan or {}))


def kafka_version_problems(host_facts, home, version, switch=True):
    """Why the node must not switch to ``version`` (it runs a newer release), from kafka_host_facts' links."""
    target = (dict(host_facts or {}).get("links") or {}).get(home)
    return preflight.version_problems(target, str(version), bool(switch))


def kafka_path_specs(paths, **attributes):
    """``[path, ...]`` -> ``[{"path": path, **attributes}, ...]`` (directories for the kafka_node module)."""
    return [dict(attributes, path=p) for p in paths or [] if p]


def kafka_node_manifest(reads, kind, unit, roles, node_id, log_dirs=(), listeners=None, config_dir=None,
                        install_root=None):
    """The node's manifest (module_utils/node.py): what it is and every file its process reads."""
    return node.manifest(kind, unit, roles, int(node_id), [r for r in reads if r], log_dirs, listeners, config_dir,
                         install_root)


def kafka_tls_expiry_metrics(certificate, host, ca_name=None):
    """Node exporter textfile with the node's certificate expiry and its CA's, from kafka_certificate's result."""
    certificate = dict(certificate or {})
    try:
        return metrics.tls_expiry_textfile(host, certificate.get("not_after"), ca_name, certificate.get("ca_not_after"))
    except ValueError as exc:
        raise AnsibleFilterError(f"kafka_tls_expiry_metrics: {exc}") from None


def kafka_scrape_targets(groups, hostvars, cluster, status_targets=()):
    """Prometheus targets per job for the inventory's hosts (module_utils/metrics.py)."""
    try:
        return metrics.scrape_targets(dict(groups), hostvars, str(cluster), list(status_targets or []))
    except metrics.MetricsError as exc:
        raise AnsibleFilterError(str(exc)) from None


def monitoring_rules(text, overrides=None, known_elsewhere=()):
    """A rule file with the ``for`` of the named alerts overridden (module_utils/metrics.py rules_with_for)."""
    try:
        rendered, _known = metrics.rules_with_for(text, overrides)
    except (metrics.MetricsError, ValueError) as exc:
        raise AnsibleFilterError(str(exc)) from None
    return rendered


def monitoring_alert_names(texts):
    """The alert names defined in rule files (YAML texts)."""
    names = set()
    for text in texts or []:
        names |= metrics.rules_with_for(text, {})[1]
    return sorted(names)


def kafka_port_problems(ports):
    """Ports out of range and ports used twice, from ``{variable: port}`` (module_utils/inventory_rules.py)."""
    from ansible_collections.metal.kafka.plugins.module_utils import inventory_rules

    return inventory_rules.port_problems(dict(ports or {}))


class FilterModule:
    def filters(self):
        return {
            "kafka_node_manifest": kafka_node_manifest,
            "kafka_path_specs": kafka_path_specs,
            "kafka_roll_hosts": kafka_roll_hosts,
            "kafka_known_hosts": kafka_known_hosts,
            "to_properties": to_properties,
            "kafka_listener_protocols": kafka_listener_protocols,
            "kafka_node_security": kafka_node_security,
            "kafka_scram_bootstrap": kafka_scram_bootstrap,
            "kafka_jaas": kafka_jaas,
            "kafka_quorum_voters": kafka_quorum_voters,
            "kafka_quorum_bootstrap": kafka_quorum_bootstrap,
            "kafka_initial_controllers": kafka_initial_controllers,
            "kafka_quorum_problems": kafka_quorum_problems,
            "kafka_kraft_properties": kafka_kraft_properties,
            "kafka_migration_stages": kafka_migration_stages,
            "kafka_migration_problems": kafka_migration_problems,
            "kafka_migration_phase": kafka_migration_phase,
            "kafka_migration_properties": kafka_migration_properties,
            "kafka_migration_precheck": kafka_migration_precheck,
            "kafka_choose_cluster_id": kafka_choose_cluster_id,
            "kafka_zookeeper_broker_properties": kafka_zookeeper_broker_properties,
            "kafka_zookeeper_connect": kafka_zookeeper_connect,
            "zookeeper_cfg": zookeeper_cfg,
            "host_addresses": host_addresses,
            "kafka_bootstrap_servers": kafka_bootstrap_servers,
            "kafka_checksum": kafka_checksum,
            "tuning_sysctl_values": tuning_sysctl_values,
            "tuning_problems": tuning_problems,
            "tuning_luks_disks": tuning_luks_disks,
            "tuning_disk_devices": tuning_disk_devices,
            "kafka_heap_size": kafka_heap_size,
            "kafka_limit_problems": kafka_limit_problems,
            "kafka_host_problems": kafka_host_problems,
            "kafka_version_problems": kafka_version_problems,
            "kafka_tls_expiry_metrics": kafka_tls_expiry_metrics,
            "kafka_scrape_targets": kafka_scrape_targets,
            "monitoring_rules": monitoring_rules,
            "kafka_port_problems": kafka_port_problems,
            "monitoring_alert_names": monitoring_alert_names,
        }
