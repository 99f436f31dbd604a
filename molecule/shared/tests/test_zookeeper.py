"""ZooKeeper mode: one leader and two followers, brokers registered under the chroot, a controller."""

import json
import re
import time

import pytest
from ansible_collections.metal.kafka.plugins.module_utils import wire, zookeeper

pytestmark = pytest.mark.usefixtures("zookeeper_only")


def zk_shell(cluster, command):
    zk = cluster["testinfra"][cluster["zookeepers"][0]]
    shell = "KAFKA_HEAP_OPTS=-Xmx128m /opt/kafka/current/bin/zookeeper-shell.sh localhost:2181"
    out = zk.check_output(f"{shell} {command}")
    return out.strip().splitlines()[-1]


def test_exactly_one_leader_and_two_followers(cluster):
    states = [zookeeper.member_state(cluster["address"][z], 2181) for z in cluster["zookeepers"]]
    status = zookeeper.ensemble_status(states)
    assert len(status["leaders"]) == 1, states
    assert len(status["followers"]) == len(cluster["zookeepers"]) - 1, states
    assert status["healthy"] and status["quorum"]


def test_brokers_registered_under_the_chroot(cluster):
    """Every broker's ephemeral node is there. The stages before this one restart brokers and ZooKeeper
    members: a broker whose session a member's restart ended registers again within seconds, so the
    check reads again for up to a minute before it fails."""
    want = sorted(cluster["node_id"][b] for b in cluster["brokers"])
    deadline = time.monotonic() + 60
    while True:
        out = cluster["testinfra"][cluster["zookeepers"][0]].check_output(
            "KAFKA_HEAP_OPTS=-Xmx128m /opt/kafka/current/bin/zookeeper-shell.sh localhost:2181 ls /kafka/brokers/ids")
        # the answer is the line that is a list, e.g. [4, 5, 6] (the shell's own messages are other lines)
        lists = [line.strip() for line in out.splitlines() if re.fullmatch(r"\[[\d, ]*\]", line.strip())]
        ids = sorted(int(i) for i in re.findall(r"\d+", lists[-1])) if lists else None
        if ids == want or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert ids == want, out[-2000:]


def test_controller_is_a_broker_and_known_to_all(cluster, wire_security):
    controller = json.loads(zk_shell(cluster, "get /kafka/controller"))["brokerid"]
    assert controller in [cluster["node_id"][b] for b in cluster["brokers"]]
    for b in cluster["brokers"]:
        address = cluster["address"][b]
        assert wire.metadata(address, 9092, security=wire_security(address))["controller_id"] == controller


def test_no_kraft_settings_on_brokers(cluster):
    for b in cluster["brokers"]:
        conf = cluster["testinfra"][b].file(f"{cluster['config_dir'][b]}/server.properties").content_string
        assert f"broker.id={cluster['node_id'][b]}" in conf
        assert "zookeeper.connect=" in conf and conf.count("/kafka\n") == 1
        for key in ("process.roles", "controller.quorum.voters", "node.id=", "controller.listener.names"):
            assert key not in conf, key


def test_health_module_reports_leader_quorum_and_controller(cluster):
    # run where the trust store is (a broker host) so a secured cluster is probed with TLS and SCRAM
    host = cluster["testinfra"][cluster["brokers"][0]]
    members = ",".join(cluster["address"][z] for z in cluster["zookeepers"])
    brokers = ",".join(f"{cluster['address'][b]}:9092" for b in cluster["brokers"])
    args = f"members={members} brokers={brokers} wait_for=healthy"
    sec = cluster["security"]
    if sec["secure"]:
        trust = f"{cluster['tls_dir'][cluster['brokers'][0]]}/truststore.pem"
        args += (f" security_protocol={sec['protocol']} ca_file={trust}"
                 f" sasl_mechanism={sec['mechanism']} sasl_username={sec['user']} sasl_password={sec['password']}")
    out = host.ansible("metal.kafka.zookeeper_info", args, check=False)
    assert out["quorum"] and out["healthy"], out
    assert out["leader"] in [cluster["address"][z] for z in cluster["zookeepers"]]
    assert out["controller_id"] in [cluster["node_id"][b] for b in cluster["brokers"]]
