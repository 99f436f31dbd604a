import re

import pytest
from ansible_collections.metal.kafka.plugins.module_utils import cluster

CHECKSUM = "ab" * 64


def node(**kw):
    base = {"version": "4.1.1", "metadata_mode": "kraft", "cluster_id": "", "log_dirs": ["/var/lib/kafka/data"],
            "metadata_dir": "/var/lib/kafka/metadata", "archive_url": "https://x/k.tgz",
            "archive_src": "", "archive_checksum": CHECKSUM, "properties": {"broker_properties": {}}}
    base.update(kw)
    return base


def errors_of(**kw):
    return cluster.node_errors("h1", node(**kw))


def test_valid_node_has_no_errors():
    assert errors_of() == []


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"version": 4.1}, 'kafka_version 4.1 must be a quoted string like "4.1.1"'),
        ({"version": "4.1"}, "kafka_version '4.1' is malformed: use MAJOR.MINOR.PATCH"),
        ({"version": "latest"}, "is malformed"),
        ({"version": "3.8.1"}, "kafka-metal supports 3.9.x and 4.x"),
        ({"metadata_mode": "zk"}, "kafka_metadata_mode 'zk' is unknown: use one of kraft, zookeeper"),
        ({"log_dirs": []}, "broker_log_dirs is empty"),
        ({"log_dirs": ["/"]}, "broker_log_dirs entry '/' is a system directory"),
        ({"log_dirs": ["/var//"]}, "is a system directory"),
        ({"log_dirs": [""]}, "broker_log_dirs has an empty entry"),
        ({"log_dirs": ["data"]}, "'data' is not an absolute path"),
        ({"metadata_dir": "/"}, "kafka_metadata_dir entry '/' is a system directory"),
        ({"archive_checksum": ""}, "kafka_archive_checksum is missing for a URL install"),
        ({"archive_checksum": "abc"}, "must be a SHA-512 digest: 128 hex digits"),
        ({"archive_url": "", "archive_checksum": ""}, "neither kafka_archive_url nor kafka_archive_src is set"),
        ({"cluster_id": "short"}, "kafka_cluster_id 'short' is not a Kafka cluster id"),
        ({"properties": {"broker_properties": {"auto.create.topics.enable": True}}},
         'broker_properties.auto.create.topics.enable is the YAML boolean True; Kafka expects a string'),
    ],
)
def test_node_rejections(kw, expected):
    errors = errors_of(**kw)
    assert errors, f"no error for {kw}"
    assert any(expected in e for e in errors), errors
    assert all(e.startswith("host h1: ") for e in errors)


def test_checksum_not_required_for_src_install():
    assert errors_of(archive_src="/tmp/k.tgz", archive_checksum="") == []


def test_checksum_with_prefix_accepted():
    assert errors_of(archive_checksum="sha512:" + "AB" * 64) == []
    assert cluster.normalize_checksum("sha512:" + "AB" * 64) == "ab" * 64


C3 = {"c1": 1, "c2": 2, "c3": 3}
B3 = {"b1": 4, "b2": 5, "b3": 6}


def test_valid_topologies():
    assert cluster.topology_errors(C3, B3) == []
    assert cluster.topology_errors(C3, {"c1": 1, "c2": 2, "c3": 3}) == []  # combined
    assert cluster.topology_errors({"c1": 1}, {"b1": 2}) == []


@pytest.mark.parametrize(
    ("controllers", "brokers", "expected"),
    [
        ({}, B3, "group kafka_controllers is empty: KRaft needs controllers"),
        ({"c1": 1, "c2": 2}, B3, "kafka_controllers has 2 hosts: a KRaft quorum needs an odd number"),
        ({"c1": 1, "c2": 2, "c3": 3, "c4": 7}, B3, "use 3 or 5"),
        (C3, {}, "group kafka_brokers is empty"),
        (C3, {"b1": 4, "b2": 4}, "kafka_node_id 4 is used by b1, b2: node ids must be unique"),
        (C3, {"b1": 1}, "kafka_node_id 1 is used by b1, c1"),
        (C3, {"b1": None}, "host b1: kafka_node_id is not set"),
        (C3, {"b1": "x"}, "host b1: kafka_node_id 'x' must be a non-negative integer"),
        (C3, {"b1": True}, "host b1: kafka_node_id True must be a non-negative integer"),
    ],
)
def test_topology_rejections(controllers, brokers, expected):
    errors = cluster.topology_errors(controllers, brokers)
    assert any(expected in e for e in errors), errors


def test_unknown_mode_rejected():
    assert "kafka_metadata_mode 'raft' is unknown" in cluster.topology_errors(C3, B3, "raft")[0]


def test_every_problem_is_reported_at_once():
    assert len(cluster.node_errors("h1", node(version="x", log_dirs=["/"]))) == 2
    assert len(cluster.topology_errors({"c1": 1, "c2": 2}, {"b1": 1})) == 2


def test_generated_cluster_id_format():
    ids = {cluster.generate_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cid in ids:
        assert re.match(r"^[A-Za-z0-9_][A-Za-z0-9_-]{21}$", cid)
        assert cluster.cluster_id_errors(cid) == []


def test_choose_cluster_id():
    found_none = {"a": [], "b": []}
    cid, generated = cluster.choose_cluster_id("", found_none)
    assert generated and cluster.cluster_id_errors(cid) == []
    existing = cluster.generate_cluster_id()
    assert cluster.choose_cluster_id("", {"a": [existing], "b": []}) == (existing, False)
    assert cluster.choose_cluster_id(existing, {"a": [existing]}) == (existing, False)


def test_choose_cluster_id_refuses_mixed_clusters():
    one, two = cluster.generate_cluster_id(), cluster.generate_cluster_id()
    with pytest.raises(cluster.ValidationError, match="hold data of different clusters"):
        cluster.choose_cluster_id("", {"a": [one], "b": [two]})
    with pytest.raises(cluster.ValidationError, match=f"already hold data of cluster {two}"):
        cluster.choose_cluster_id(one, {"a": [one], "b": [two]})


def test_quorum_voters_sorted_by_id():
    voters = cluster.quorum_voters({"x": (3, "10.0.0.3"), "y": (1, "10.0.0.1")}, 9093)
    assert voters == "1@10.0.0.1:9093,3@10.0.0.3:9093"


PORTS = {"client": 9092, "internal": 9091, "controller": 9093}


def props(roles, brokers=3):
    return cluster.kraft_properties(roles=roles, node_id=4, voters="1@a:9093", advertised_host="10.0.0.4",
                                    ports=PORTS, log_dirs=["/d1", "/d2"], metadata_dir="/m",
                                    broker_count=brokers)


def test_broker_properties():
    p = props(["broker"])
    assert p["process.roles"] == "broker"
    assert p["listeners"] == "CLIENT://0.0.0.0:9092,INTERNAL://0.0.0.0:9091"
    assert p["advertised.listeners"] == "CLIENT://10.0.0.4:9092,INTERNAL://10.0.0.4:9091"
    assert p["log.dirs"] == "/d1,/d2"
    assert p["min.insync.replicas"] == "2" and p["default.replication.factor"] == "3"
    assert all(isinstance(v, str) for v in p.values())


def test_controller_properties():
    p = props(["controller"])
    assert p["process.roles"] == "controller"
    assert p["listeners"] == "CONTROLLER://0.0.0.0:9093"
    assert "advertised.listeners" not in p and p["log.dirs"] == "/m"


def test_combined_properties():
    p = props(["broker", "controller"])
    assert p["process.roles"] == "broker,controller"
    assert p["listeners"].endswith(",CONTROLLER://0.0.0.0:9093")


def test_small_cluster_replication_settings():
    p = props(["broker"], brokers=1)
    assert p["default.replication.factor"] == "1" and p["min.insync.replicas"] == "1"
