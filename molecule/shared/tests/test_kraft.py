"""KRaft scenarios: one cluster id on every node, a quorum with a leader and every voter."""

import re

import pytest
from ansible_collections.metal.kafka.plugins.module_utils.properties import parse

pytestmark = pytest.mark.usefixtures("kraft_only")


def test_same_cluster_id_everywhere(cluster):
    ids = {}
    for name in cluster["kafka_hosts"]:
        meta = parse(cluster["testinfra"][name].file("/var/lib/kafka/metadata/meta.properties").content_string)
        assert meta["node.id"] == str(cluster["node_id"][name])
        ids[name] = meta["cluster.id"]
    assert len(set(ids.values())) == 1, ids
    assert re.match(r"^[A-Za-z0-9_-]{22}$", next(iter(ids.values())))


def test_quorum_has_a_leader_and_all_voters(cluster, bootstrap, command_config):
    broker = cluster["testinfra"][cluster["brokers"][0]]
    out = broker.check_output(
        "KAFKA_HEAP_OPTS=-Xmx128m /opt/kafka/current/bin/kafka-metadata-quorum.sh "
        f"--bootstrap-server {bootstrap} {command_config} describe --status"
    )
    fields = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in out.splitlines() if ":" in line)}
    expected = sorted(cluster["node_id"][c] for c in cluster["controllers"])
    assert int(fields["LeaderId"]) in expected
    voters = sorted(int(v) for v in re.findall(r'"id"\s*:\s*(\d+)', fields["CurrentVoters"])) or \
        sorted(int(v) for v in re.findall(r"\d+", fields["CurrentVoters"]))
    assert voters == expected, fields["CurrentVoters"]
