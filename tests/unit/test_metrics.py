"""Monitoring decisions (module_utils/metrics.py): scrape targets from the inventory, the TLS expiry textfile,
alert `for` overrides; and the inventory rules for the metrics endpoints."""

import pytest
import yaml
from ansible_collections.metal.kafka.plugins.module_utils import inventory_rules, metrics

GROUPS = {"kafka_controllers": ["c1", "cb"], "kafka_brokers": ["b1", "cb"], "zookeeper": [],
          "monitoring": ["mon"]}
HOSTVARS = {"c1": {"ansible_host": "10.0.0.1", "kafka_node_id": 1},
            "cb": {"ansible_host": "10.0.0.2", "kafka_node_id": 2, "kafka_jmx_exporter_port": 9500},
            "b1": {"kafka_advertised_host": "b1.example.net", "ansible_host": "10.0.0.3", "kafka_node_id": 3},
            "mon": {"ansible_host": "10.0.0.9"}}


def test_targets_follow_the_inventory_roles_ports_and_addresses():
    jobs = metrics.scrape_targets(GROUPS, HOSTVARS, "prod", ["admin1:9309"])
    assert jobs["kafka"] == [
        {"targets": ["10.0.0.1:9404"], "labels": {"instance": "c1", "cluster": "prod", "kafka_role": "controller",
                                                  "kafka_node_id": "1"}},
        {"targets": ["10.0.0.2:9500"], "labels": {"instance": "cb", "cluster": "prod", "kafka_role": "combined",
                                                  "kafka_node_id": "2"}},
        # the agent listens where the node is advertised
        {"targets": ["b1.example.net:9404"], "labels": {"instance": "b1", "cluster": "prod", "kafka_role": "broker",
                                                        "kafka_node_id": "3"}},
    ]
    # node exporter on every Kafka host, once each; the monitoring host itself is not a Kafka node
    assert [t["targets"] for t in jobs["node"]] == [["10.0.0.1:9100"], ["10.0.0.2:9100"], ["10.0.0.3:9100"]]
    assert jobs["kafka_metal_status"] == [{"targets": ["admin1:9309"],
                                           "labels": {"instance": "admin1:9309", "cluster": "prod"}}]
    assert jobs["zookeeper"] == []


def test_toggles_and_zookeeper_members():
    groups = {"zookeeper": ["z1"], "kafka_brokers": ["b1"], "kafka_controllers": []}
    hv = {"z1": {"ansible_host": "fe80::1", "zookeeper_metrics_enabled": False},
          "b1": {"ansible_host": "10.0.0.3", "kafka_metrics_enabled": "no", "kafka_node_exporter_enabled": True}}
    jobs = metrics.scrape_targets(groups, hv, "c")
    assert jobs["kafka"] == [] and jobs["zookeeper"] == []
    # an IPv6 address is bracketed
    assert [t["targets"] for t in jobs["node"]] == [["10.0.0.3:9100"], ["[fe80::1]:9100"]]
    hv["z1"]["zookeeper_metrics_enabled"] = True
    assert metrics.scrape_targets(groups, hv, "c")["zookeeper"][0]["targets"] == ["[fe80::1]:9405"]


@pytest.mark.parametrize("bad, message", [
    ({"kafka_jmx_exporter_port": "http"}, "kafka_jmx_exporter_port must be a port number from 1 to 65535, got 'http'"),
    ({"kafka_node_exporter_port": 70000}, "kafka_node_exporter_port must be a port number"),
])
def test_bad_ports_are_named(bad, message):
    hv = dict(HOSTVARS, c1=dict(HOSTVARS["c1"], **bad))
    with pytest.raises(metrics.MetricsError, match=message):
        metrics.scrape_targets(GROUPS, hv, "prod")


def test_a_status_target_must_be_host_and_port():
    with pytest.raises(metrics.MetricsError, match="monitoring_status_targets: 'admin1' is not host:port"):
        metrics.scrape_targets(GROUPS, HOSTVARS, "prod", ["admin1"])


def test_tls_expiry_textfile():
    text = metrics.tls_expiry_textfile("kb1", "2027-01-02T03:04:05+00:00", 'CA "x"', "2035-01-01T00:00:00+00:00")
    lines = text.splitlines()
    assert lines[0].startswith("# HELP kafka_metal_tls_certificate_not_after_timestamp_seconds ")
    assert lines[1] == "# TYPE kafka_metal_tls_certificate_not_after_timestamp_seconds gauge"
    metric = "kafka_metal_tls_certificate_not_after_timestamp_seconds"
    assert lines[2] == metric + '{kind="node",subject="kb1"} 1798859045'
    assert lines[3] == metric + '{kind="ca",subject="CA \\"x\\""} 2051222400'
    # check mode before a first certificate: nothing to say
    assert metrics.tls_expiry_textfile("kb1", None) == ""


RULES = """
groups:
  - name: kafka
    rules:
      - alert: KafkaBrokerDown
        expr: up{job="kafka"} == 0
        for: 2m
        labels: {severity: critical}
      - record: cluster:x:sum
        expr: sum(up)
      - alert: KafkaOther
        expr: vector(1)
"""


def test_alert_for_overrides():
    text, known = metrics.rules_with_for(RULES, {"KafkaBrokerDown": "15s", "KafkaOther": "1m30s"})
    doc = yaml.safe_load(text)
    rules = doc["groups"][0]["rules"]
    assert rules[0]["for"] == "15s" and rules[2]["for"] == "1m30s"
    assert rules[1] == {"record": "cluster:x:sum", "expr": "sum(up)"}
    assert rules[0]["labels"] == {"severity": "critical"} and rules[0]["expr"] == 'up{job="kafka"} == 0'
    assert known == {"KafkaBrokerDown", "KafkaOther"}
    assert metrics.unknown_alerts({"KafkaBrokerDwn": "1m"}, known) == ["KafkaBrokerDwn"]
    with pytest.raises(metrics.MetricsError, match=r"KafkaBrokerDown: '2 minutes' is not a Prometheus duration"):
        metrics.rules_with_for(RULES, {"KafkaBrokerDown": "2 minutes"})


def test_metrics_ports_are_checked_with_the_node_ports():
    v = {"broker_client_port": 9092, "broker_internal_port": 9091, "kafka_jmx_exporter_port": 9092}
    problems = inventory_rules.port_problems(inventory_rules.node_ports(v, ["broker"]))
    assert problems == ["broker_client_port and kafka_jmx_exporter_port are all 9092: each listener of a host "
                        "needs a port of its own; change one of them"]


def test_the_agent_must_be_on_the_controller():
    v = {"kafka_jmx_exporter_src": "/cache/dist/jmx_prometheus_javaagent-1.0.1.jar",
         "kafka_jmx_exporter_version": "1.0.1", "kafka_jmx_exporter_checksum": "ab" * 32}
    [problem] = inventory_rules.controller_file_problems(v, lambda path: False)
    assert problem == ("kafka_jmx_exporter_src /cache/dist/jmx_prometheus_javaagent-1.0.1.jar does not exist on the "
                       "controller: fetch the JMX exporter agent with `kafka-metal dist agent --version 1.0.1`, fix "
                       "the path, or set kafka_metrics_enabled: false")
    assert inventory_rules.controller_file_problems(dict(v, kafka_metrics_enabled=False), lambda path: False) == []
    assert inventory_rules.controller_file_problems(dict(v, kafka_jmx_exporter_checksum="abc"), lambda p: True) == [
        "kafka_jmx_exporter_checksum must be the agent jar's SHA-256 (64 hex digits), got 'abc'"]
