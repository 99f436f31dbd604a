"""The whole inventory checked at once (module_utils/inventory.py), on plain data."""

import pytest
from ansible_collections.metal.kafka.plugins.module_utils import inventory

CHECKSUM = "ab" * 64
BASE = {"kafka_version": "4.1.1", "kafka_metadata_mode": "kraft", "kafka_cluster_id": "",
        "kafka_metadata_dir": "/var/lib/kafka/metadata", "kafka_archive_url": "https://x/k.tgz",
        "kafka_archive_src": "",
        "kafka_archive_checksum": CHECKSUM, "kafka_security_protocol": "PLAINTEXT", "kafka_listener_protocols": {},
        "kafka_sasl_mechanism": "SCRAM-SHA-512", "kafka_sasl_client_mechanisms": ["SCRAM-SHA-512"],
        "kafka_admin_user": "admin", "kafka_admin_password": "", "kafka_tls_client_auth": "none",
        "kafka_super_users": [], "broker_log_dirs": ["/var/lib/kafka/data"], "broker_properties": {},
        "controller_properties": {}, "broker_heap_size": "auto", "controller_heap_size": "auto",
        "tuning_data_disks": [], "tuning_sysctls": {"vm.swappiness": 1}, "tuning_sysctl_overrides": {},
        "tuning_thp_enabled": "madvise", "tuning_thp_defrag": "madvise", "tuning_luks": {},
        "broker_client_port": 9092, "broker_internal_port": 9091, "kafka_controller_port": 9093, "kafka_jmx_port": 0,
        "zookeeper_client_port": 2181, "zookeeper_peer_port": 2888, "zookeeper_election_port": 3888,
        "zookeeper_heap_size": "512m", "zookeeper_properties": {}, "kafka_topics": [], "kafka_users": [],
        "kafka_acls": []}


class Settings(dict):
    """A host's resolved variables; ``problems`` are values that could not be resolved."""

    problems = ()


def cluster(controllers=3, brokers=3, zookeepers=0, common=None, per_host=None):
    groups = {"kafka_controllers": [f"c{i}" for i in range(1, controllers + 1)],
              "kafka_brokers": [f"b{i}" for i in range(1, brokers + 1)],
              "zookeeper": [f"z{i}" for i in range(1, zookeepers + 1)]}
    resolved = {}
    for i, h in enumerate(h for g in groups.values() for h in g):
        v = Settings(BASE, **(common or {}), **(per_host or {}).get(h, {}))
        v.setdefault("kafka_node_id", 100 + i)
        v.setdefault("kafka_advertised_host", f"{h}.example.net")
        v.setdefault("zookeeper_advertised_host", f"{h}.example.net")
        v.setdefault("zookeeper_id", i + 1)
        resolved[h] = v
    return groups, resolved


def errors(**kw):
    groups, resolved = cluster(**kw)
    hosts = [h for g in groups.values() for h in g]
    return inventory.inventory_errors(hosts, groups, resolved)


def test_a_valid_cluster_has_no_errors():
    assert errors() == []


def test_a_problem_on_several_hosts_is_reported_once_with_the_hosts():
    out = errors(common={"broker_heap_size": "lots"})
    assert out == ["hosts b1, b2, b3: broker_heap_size must be a size like 512m or 6g (or 'auto'), got 'lots'"]


def test_a_problem_on_one_host_names_it():
    out = errors(per_host={"c2": {"controller_properties": {"x": True}}})
    assert len(out) == 1 and out[0].startswith("host c2: controller_properties.x is the YAML boolean True")


def test_role_settings_are_checked_only_on_hosts_of_that_role():
    # a broker's data directories do not matter on a dedicated controller
    assert errors(per_host={"c1": {"broker_log_dirs": ["/"]}}) == []
    assert errors(per_host={"b1": {"broker_log_dirs": ["/"]}})[0].startswith("host b1: broker_log_dirs entry '/'")


def test_data_disks_are_the_log_dirs_of_a_broker():
    disks = [{"device": "/dev/vdb", "path": "/"}]
    out = " ".join(errors(per_host={"b1": {"tuning_data_disks": disks}}))
    assert "host b1: broker_log_dirs entry '/'" in out


def test_cluster_shape_and_metadata_mode_are_checked_once():
    out = errors(controllers=2)
    assert len([e for e in out if "kafka_controllers has 2 hosts" in e]) == 1
    out = errors(per_host={"b3": {"kafka_metadata_mode": "zookeeper", "kafka_version": "3.9.1"}})
    assert any(e.startswith("inventory: the hosts disagree on kafka_metadata_mode (kraft: b1, b2, c1, c2, c3; "
                            "zookeeper: b3)") for e in out), out


def test_group_names_are_fixed():
    out = errors(per_host={"b1": {"kafka_brokers_group": "east"}})
    assert out == ["inventory: kafka_brokers_group is set (b1), but the inventory groups have fixed names "
                   "(kafka_controllers, kafka_brokers, zookeeper): remove the setting and make your own groups "
                   "children of those groups"]


def test_connection_settings_the_engine_cannot_honour_name_the_host():
    out = errors(per_host={"b2": {"ansible_become_method": "su"}})
    assert out == ["host b2: ansible_become_method=su: the rolling engine becomes root with sudo only; use sudo "
                   "for this host"]


def test_unresolvable_values_and_spec_problems_come_first():
    groups, resolved = cluster()
    resolved["b1"].problems = ["kafka_cluster_name cannot be resolved"]
    out = inventory.inventory_errors(["b1", "b2"], groups, resolved,
                                     {"b1": ["spec says no"], "b2": ["spec says no"]})
    assert out == ["host b1: kafka_cluster_name cannot be resolved", "hosts b1, b2: spec says no"]


@pytest.mark.parametrize(("zk_ids", "expected"), [
    ({"z2": 1}, "zookeeper_id 1 is used by z1, z2"),
    ({"z3": 0}, "host z3: zookeeper_id 0 must be an integer from 1 to 255"),
])
def test_the_ensemble_is_checked_in_zookeeper_mode(zk_ids, expected):
    common = {"kafka_metadata_mode": "zookeeper", "kafka_version": "3.9.1"}
    ids = {"z1": 1, "z2": 2, "z3": 3, **zk_ids}
    out = errors(controllers=0, zookeepers=3, common=common, per_host={h: {"zookeeper_id": i} for h, i in ids.items()})
    assert any(expected in e for e in out), out


def test_heap_problems_accept_auto_and_sizes():
    assert inventory.rules.heap_problems("broker_heap_size", "auto") == []
    assert inventory.rules.heap_problems("broker_heap_size", "6g") == []
    assert "must be a size" in inventory.rules.heap_problems("broker_heap_size", "6 gigs")[0]


def test_a_dynamic_quorum_is_one_for_the_cluster_on_kraft_4_1_or_later():
    assert errors(common={"kafka_controller_quorum": "dynamic"}) == []
    mixed = errors(per_host={"c2": {"kafka_controller_quorum": "dynamic"}})
    assert mixed == ["inventory: the hosts disagree on kafka_controller_quorum (dynamic, static): a cluster has one "
                     "controller quorum; set it once, in group_vars/all"]
    old = errors(common={"kafka_controller_quorum": "dynamic", "kafka_version": "3.9.1"})
    assert any("kafka_version is 3.9.1" in e and "4.1 and later" in e for e in old), old
    zk = errors(controllers=0, zookeepers=3, common={"kafka_controller_quorum": "dynamic",
                                                     "kafka_metadata_mode": "zookeeper", "kafka_version": "3.9.1"})
    assert any("comes after the migration's finalize" in e for e in zk), zk
