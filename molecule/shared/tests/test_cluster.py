"""Verify a KRaft cluster built by site.yml on lab hosts, with testinfra and a real client."""

import re

from ansible_collections.metal.kafka.plugins.module_utils.properties import parse
from kafka_metal import smoke

testinfra_hosts = ["all"]


def test_units_active_and_enabled(host):
    unit = host.service("kafka")
    assert unit.is_running, host.run("journalctl -u kafka --no-pager -n 50").stdout
    assert unit.is_enabled


def test_runs_as_kafka_user_with_the_configured_heap(host):
    procs = host.process.filter(user="kafka", comm="java")
    assert len(procs) == 1
    assert "kafka.Kafka" in procs[0].args and "-Xmx" in procs[0].args


def test_ports_listening(host, cluster):
    name = host.backend.get_hostname()
    if name in cluster["brokers"]:
        assert host.socket("tcp://0.0.0.0:9092").is_listening
        assert host.socket("tcp://0.0.0.0:9091").is_listening
    if name in cluster["controllers"]:
        assert host.socket("tcp://0.0.0.0:9093").is_listening


def test_config_files_are_not_world_readable(host):
    f = host.file("/etc/kafka/server.properties")
    assert f.user == "root" and f.group == "kafka" and f.mode == 0o640


def test_same_cluster_id_everywhere(cluster):
    ids = {}
    for name, h in cluster["testinfra"].items():
        meta = parse(h.file("/var/lib/kafka/metadata/meta.properties").content_string)
        assert meta["node.id"] == str(cluster["node_id"][name])
        ids[name] = meta["cluster.id"]
    assert len(set(ids.values())) == 1, ids
    assert re.match(r"^[A-Za-z0-9_-]{22}$", next(iter(ids.values())))


def test_quorum_has_a_leader_and_all_voters(cluster, bootstrap):
    broker = cluster["testinfra"][cluster["brokers"][0]]
    out = broker.check_output(
        "KAFKA_HEAP_OPTS=-Xmx128m /opt/kafka/current/bin/kafka-metadata-quorum.sh "
        f"--bootstrap-server {bootstrap} describe --status"
    )
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    leader = int(fields["LeaderId"])
    expected = sorted(cluster["node_id"][c] for c in cluster["controllers"])
    assert leader in expected
    voters = sorted(int(v) for v in re.findall(r'"?id"?\s*[:=]\s*(\d+)', fields["CurrentVoters"])) or \
        sorted(int(v) for v in re.findall(r"\d+", fields["CurrentVoters"]))
    assert voters == expected, fields["CurrentVoters"]


def test_every_broker_registered(cluster, bootstrap):
    assert smoke.broker_count(bootstrap) == len(cluster["brokers"])


def test_produce_10000_acks_all_and_consume_every_one(cluster, bootstrap):
    result = smoke.run(bootstrap, messages=10_000, partitions=6, replication_factor=3, min_isr=2)
    assert result.replication_factor == 3
    assert result.produced == 10_000, result.problems
    assert result.consumed == 10_000, result.problems
    assert result.ok, result.problems
