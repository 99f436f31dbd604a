"""The move engine against a real four-broker Kafka on this machine (no lab): the wire requests it needs, the
command line's dry run and refusals, and the drain and rebalance playbooks (check mode, a run, a second run that
changes nothing).

The lab scenario `moves` proves the operations under load on lab hosts (drains stopped, killed and resumed,
aborted; a rebalance; a removal; a rebuild); this one runs in about a minute and catches protocol and engine
mistakes early.
"""

import os
import time

import pytest
from ansible_collections.metal.kafka.plugins.module_utils import moves, moving_kafka, wire
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from local_kafka import NEEDS_JAVA, LocalCluster

pytestmark = [NEEDS_JAVA, pytest.mark.maven]

TOPIC, PARTITIONS, RECORDS = "moving", 8, 4000
PAYLOAD = b"x" * 1000


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = LocalCluster(tmp_path_factory.mktemp("moves"), nodes=4)
    c.start()
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    try:
        c.wait_ready(admin, 4)
        admin.create_topics([NewTopic(TOPIC, PARTITIONS, 3, config={"min.insync.replicas": "2"})])[TOPIC].result(30)
        producer = Producer({"bootstrap.servers": c.bootstrap, "acks": "all", "enable.idempotence": True,
                             "linger.ms": 20})
        for i in range(RECORDS):
            producer.produce(TOPIC, key=str(i).encode(), value=PAYLOAD)
            if i % 500 == 0:
                producer.poll(0)
        assert producer.flush(60) == 0
        yield c
    finally:
        c.stop()


def conf(c):
    return {"bootstrap.servers": c.bootstrap}


def all_records(c):
    consumer = Consumer({"bootstrap.servers": c.bootstrap, "group.id": f"check-{time.time()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([TOPIC])
    keys, deadline = set(), time.monotonic() + 60
    while len(keys) < RECORDS and time.monotonic() < deadline:
        for msg in consumer.consume(500, timeout=1):
            if msg.error() is None:
                keys.add(msg.key())
    consumer.close()
    return len(keys)


def assignment(c):
    return moving_kafka.Cluster(conf(c)).view(sizes=False)["assignment"]


def assert_balanced(cluster):
    """Replica counts and bytes within the rebalance's default skews (spread over the mean: 0.10 and 0.15), and
    the broker that was emptied holds its share again."""
    view = moving_kafka.Cluster(conf(cluster)).view()
    snap = moves.Snapshot(view["brokers"], view["assignment"], view["sizes"])
    counts, nbytes = snap.load()
    assert moves.within(counts, nbytes, 0.10, 0.15), (counts, nbytes)
    assert min(counts.values()) > 0, counts


def test_wire_requests_the_engine_needs(cluster):
    host, port = "127.0.0.1", cluster.ports[1]
    assert wire.list_partition_reassignments(host, port) == {}
    dirs = wire.describe_log_dirs(host, port)
    sizes = {tp: info["size"] for d in dirs for tp, info in d["partitions"].items() if tp[0] == TOPIC}
    assert sizes and sum(sizes.values()) > 0 and all(d["usable_bytes"] > 0 for d in dirs)
    refused = wire.alter_partition_reassignments(host, port, {(TOPIC, 0): [1, 2, 99]})
    assert list(refused) == [(TOPIC, 0)] and "INVALID_REPLICA_ASSIGNMENT" in refused[(TOPIC, 0)] or \
        "UNKNOWN" in refused[(TOPIC, 0)], refused
    refused = wire.alter_partition_reassignments(host, port, {(TOPIC, 1): None})
    assert "NO_REASSIGNMENT_IN_PROGRESS" in refused[(TOPIC, 1)]


def test_command_line_dry_run_and_refusal(cluster):
    import subprocess
    import sys
    from pathlib import Path

    exe = str(Path(sys.executable).parent / "kafka-metal")
    out = subprocess.run([exe, "broker", "drain", "3", "--bootstrap-server", cluster.bootstrap, "--dry-run",
                          "--throttle", "1MB"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "-> " in out.stdout and "to copy; at 976.6 KiB/s at least" in out.stdout, out.stdout
    before = assignment(cluster)
    bad = subprocess.run([exe, "broker", "drain", "9", "--bootstrap-server", cluster.bootstrap],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "broker 9 is not registered in the cluster" in bad.stderr, bad.stderr
    assert assignment(cluster) == before


def run_playbook(cluster, tmp_path, playbook, *args):
    """A playbook of the collection against an inventory of the local brokers (node 1 the controller); the move
    task runs on the controller, so no host is contacted."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    repo = Path(__file__).resolve().parents[2]
    # the hosts are never contacted (port 1); each advertises the local broker's port, and an internal port of
    # its own
    brokers = {f"b{n}": {"kafka_node_id": n, "kafka_advertised_host": "127.0.0.1", "broker_client_port": port,
                         "broker_internal_port": 20000 + n, "ansible_host": "127.0.0.1", "ansible_port": 1}
               for n, port in cluster.ports.items()}
    inv = {"all": {"vars": {"kafka_security_protocol": "PLAINTEXT", "kafka_archive_checksum": "0" * 128},
                   "children": {"kafka_controllers": {"hosts": {"b1": {}}}, "kafka_brokers": {"hosts": brokers}}}}
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(inv))
    env = dict(os.environ, ANSIBLE_CONFIG=str(repo / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_COLLECTIONS_PATH=str(repo / ".collections"), HOME=str(tmp_path))
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), playbook, "-i", str(path), *args],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout + proc.stderr, json


def test_playbooks_check_mode_plans_and_the_run_moves(cluster, tmp_path):
    before = assignment(cluster)
    rc, out, json = run_playbook(cluster, tmp_path, "playbooks/broker_drain.yml", "--check",
                                 "-e", '{"kafka_move_brokers": [3]}', "-e", "kafka_move_throttle=1MB")
    assert rc == 0, out[-3000:]
    assert "bytes to copy, at least" in out and "changed=1" in out, out[-3000:]
    assert assignment(cluster) == before
    rc, out, _ = run_playbook(cluster, tmp_path, "playbooks/broker_drain.yml", "-e", '{"kafka_move_brokers": [3]}',
                              "-e", "kafka_move_throttle=2MB")
    assert rc == 0, out[-3000:]
    assert not any(3 in r for r in assignment(cluster).values())
    rc, out, _ = run_playbook(cluster, tmp_path, "playbooks/broker_drain.yml", "-e", '{"kafka_move_brokers": [3]}')
    assert rc == 0 and "changed=0" in out, out[-3000:]  # a second run changes nothing
    rc, out, _ = run_playbook(cluster, tmp_path, "playbooks/rebalance.yml", "-e", "kafka_move_throttle=2MB")
    assert rc == 0, out[-3000:]
    assert_balanced(cluster)
    assert all_records(cluster) == RECORDS
