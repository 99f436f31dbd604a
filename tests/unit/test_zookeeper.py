import socket
import threading

import pytest
from ansible_collections.metal.kafka.plugins.module_utils import cluster, zookeeper

SRVR_LEADER = """Zookeeper version: 3.8.4-9316c2a7a97e1666d8f4593f34dd6fc36ecc436c, built on 2024-02-12 22:16 UTC
Latency min/avg/max: 0/0.5/3
Received: 120
Sent: 119
Connections: 3
Outstanding: 0
Zxid: 0x10000002a
Mode: leader
Node count: 37
Proposal sizes last/min/max: 48/32/403
"""


def test_parse_srvr():
    info = zookeeper.parse_srvr(SRVR_LEADER)
    assert info == {"version": "3.8.4", "connections": 3, "zxid": 0x10000002A, "mode": "leader", "node_count": 37}


def st(host, mode):
    return {"host": host, "serving": mode is not None, "mode": mode}


def test_ensemble_healthy():
    s = zookeeper.ensemble_status([st("a", "follower"), st("b", "leader"), st("c", "follower")])
    assert s["leader"] == "b" and s["quorum"] and s["healthy"] and s["followers"] == ["a", "c"]


def test_ensemble_one_down_keeps_quorum():
    s = zookeeper.ensemble_status([st("a", None), st("b", "leader"), st("c", "follower")])
    assert s["quorum"] and not s["healthy"] and s["down"] == ["a"]


def test_ensemble_without_leader_has_no_quorum():
    s = zookeeper.ensemble_status([st("a", None), st("b", None), st("c", "follower")])
    assert s["leader"] is None and not s["quorum"]


def test_two_leaders_is_not_a_quorum():
    s = zookeeper.ensemble_status([st("a", "leader"), st("b", "leader"), st("c", "follower")])
    assert s["leader"] is None and not s["quorum"]


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        ({}, "group zookeeper is empty"),
        ({"a": 1, "b": 2}, "the zookeeper group has 2 hosts: an ensemble needs an odd number (3 or 5)"),
        ({"a": 1, "b": 1, "c": 3}, "zookeeper_id 1 is used by a, b"),
        ({"a": 0, "b": 2, "c": 3}, "host a: zookeeper_id 0 must be an integer from 1 to 255"),
        ({"a": None, "b": 2, "c": 3}, "host a: zookeeper_id None must be an integer"),
        ({"a": True, "b": 2, "c": 3}, "host a: zookeeper_id True must be an integer"),
    ],
)
def test_ensemble_rejections(members, expected):
    errors = zookeeper.ensemble_errors(members)
    assert any(expected in e for e in errors), errors


def test_valid_ensemble():
    assert zookeeper.ensemble_errors({"a": 1, "b": 2, "c": 3}) == []


def test_zookeeper_mode_topology():
    zk = {"z1": 1, "z2": 2, "z3": 3}
    brokers = {"b1": 1, "b2": 2, "b3": 3}
    assert cluster.topology_errors({}, brokers, "zookeeper", zk) == []
    assert any("the zookeeper group is empty: brokers need an ensemble" in e
               for e in cluster.topology_errors({}, brokers, "zookeeper", {}))
    assert any("in ZooKeeper mode the controller is one of the brokers" in e
               for e in cluster.topology_errors({"c1": 9}, brokers, "zookeeper", zk))
    assert any("an odd number" in e for e in cluster.topology_errors({}, brokers, "zookeeper", {"z1": 1, "z2": 2}))


def test_zookeeper_mode_refused_on_kafka_4():
    errors = cluster.node_errors("h", {"version": "4.1.1", "metadata_mode": "zookeeper"})
    assert any("kafka_version 4.1.1 has no ZooKeeper support" in e and "stay on 3.9.x" in e for e in errors)
    assert cluster.node_errors("h", {"version": "3.9.1", "metadata_mode": "zookeeper"}) == []


def test_zoo_cfg():
    cfg = zookeeper.zoo_cfg(members={2: "10.0.0.2", 1: "10.0.0.1", 3: "10.0.0.3"}, data_dir="/d", data_log_dir="/l",
                            client_port=2181, peer_port=2888, election_port=3888, overrides={"tickTime": "3000"})
    assert cfg["server.1"] == "10.0.0.1:2888:3888;2181" and cfg["server.3"] == "10.0.0.3:2888:3888;2181"
    assert cfg["4lw.commands.whitelist"] == "srvr,stat,ruok,mntr"
    assert cfg["tickTime"] == "3000" and cfg["dataLogDir"] == "/l"
    assert all(isinstance(v, str) for v in cfg.values())


def test_connect_string_with_chroot():
    assert zookeeper.connect_string({"b": "10.0.0.2", "a": "10.0.0.1"}, 2181, "/kafka") == \
        "10.0.0.1:2181,10.0.0.2:2181/kafka"


def test_zookeeper_broker_properties():
    p = cluster.zookeeper_broker_properties(broker_id=4, zookeeper_connect="z:2181/kafka", advertised_host="10.0.0.4",
                                            ports={"client": 9092, "internal": 9091}, log_dirs=["/d"], broker_count=3)
    assert p["broker.id"] == "4" and p["zookeeper.connect"] == "z:2181/kafka"
    for key in ("process.roles", "node.id", "controller.quorum.voters", "controller.listener.names",
                "metadata.log.dir"):
        assert key not in p
    assert "CONTROLLER" not in p["listener.security.protocol.map"]


@pytest.fixture
def fake_zk():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    answers = {}

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                word = conn.recv(4).decode()
                conn.sendall(answers.get(word, "").encode())

    threading.Thread(target=serve, daemon=True).start()
    yield srv.getsockname()[1], answers
    srv.close()


def test_member_state_over_tcp(fake_zk):
    port, answers = fake_zk
    answers["srvr"] = SRVR_LEADER
    assert zookeeper.member_state("127.0.0.1", port)["mode"] == "leader"


def test_member_not_serving(fake_zk):
    port, answers = fake_zk
    answers["srvr"] = "This ZooKeeper instance is not currently serving requests\n"
    assert zookeeper.member_state("127.0.0.1", port) == {"host": "127.0.0.1", "serving": False, "mode": None,
                                                          "error": "not serving requests"}


def test_word_not_whitelisted(fake_zk):
    port, answers = fake_zk
    answers["srvr"] = "srvr is not executed because it is not in the whitelist.\n"
    with pytest.raises(zookeeper.ZooKeeperError, match="add it to 4lw.commands.whitelist"):
        zookeeper.member_state("127.0.0.1", port)


def test_member_down():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    assert zookeeper.member_state("127.0.0.1", port)["serving"] is False
