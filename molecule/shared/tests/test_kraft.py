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


def test_quorum_is_the_kind_the_inventory_names(cluster, bootstrap, command_config):
    """kafka_controller_quorum: static gives controller.quorum.voters and kraft.version 0; dynamic gives
    controller.quorum.bootstrap.servers, kraft.version 1, and voters recorded with their metadata directory ids."""
    kind = cluster["var"](cluster["controllers"][0], "kafka_controller_quorum", "static")
    broker = cluster["testinfra"][cluster["brokers"][0]]
    tools = "KAFKA_HEAP_OPTS=-Xmx128m /opt/kafka/current/bin"
    features = broker.check_output(f"{tools}/kafka-features.sh --bootstrap-server {bootstrap} {command_config} "
                                   "describe")
    level = re.search(r"Feature: kraft\.version\s.*FinalizedVersionLevel: (\d+)", features)
    status = broker.check_output(f"{tools}/kafka-metadata-quorum.sh --bootstrap-server {bootstrap} {command_config} "
                                 "describe --status")
    for name in cluster["kafka_hosts"]:
        conf = parse(cluster["testinfra"][name].file(f"{cluster['config_dir'][name]}/server.properties")
                     .content_string)
        assert ("controller.quorum.voters" in conf) == (kind == "static"), name
        assert ("controller.quorum.bootstrap.servers" in conf) == (kind == "dynamic"), name
    if kind == "static":
        assert level is None or level.group(1) == "0", features
        return
    assert level and int(level.group(1)) >= 1, features
    for name in cluster["controllers"]:
        meta = parse(cluster["testinfra"][name].file("/var/lib/kafka/metadata/meta.properties").content_string)
        assert f'"id": {cluster["node_id"][name]}, "directoryId": "{meta["directory.id"]}"' in status, (name, status)
