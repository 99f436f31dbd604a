"""The metric names that the alert rules, recording rules and dashboards read from job `kafka` exist: one local
Kafka 4.1.1 node (combined broker and controller) runs with the Prometheus JMX exporter agent and
roles/kafka/files/jmx_exporter/combined.yml, and its /metrics must hold every such name.

The agent jar (io.prometheus.jmx:jmx_prometheus_javaagent 1.0.1) is taken from the dist cache, or fetched there
with Maven (whose settings choose the repository); the test is skipped only when it is missing and Maven is not
installed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from kafka_metal import dist
from local_kafka import NEEDS_JAVA, LocalKafka, free_port, plaintext_node

pytestmark = [pytest.mark.maven, NEEDS_JAVA]

ROOT = Path(__file__).resolve().parents[2]
JMX_VERSION = "1.0.1"
RULES = ROOT / "roles" / "monitoring" / "files" / "rules"
DASHBOARDS = ROOT / "roles" / "monitoring" / "files" / "dashboards"
# series names of job kafka: Kafka's own (kafka_*, but not the status exporter's kafka_metal_*) and the agent's JVM
# collectors; label names that look like metric names are not series
KAFKA_NAME = re.compile(r"(?<![\w:])((?:kafka|jvm|process)_[a-z0-9_]+)(?![\w:])")
LABEL_NAMES = {"kafka_role", "kafka_node_id"}


def agent_jar() -> Path:
    out = dist.default_out_dir()
    jar = out / f"jmx_prometheus_javaagent-{JMX_VERSION}.jar"
    if jar.is_file():
        return jar
    if not shutil.which("mvn"):
        pytest.skip(f"{jar} is missing and Maven is not installed to fetch it")
    out.mkdir(parents=True, exist_ok=True)
    artifact = f"io.prometheus.jmx:jmx_prometheus_javaagent:{JMX_VERSION}"
    subprocess.run(["mvn", "-q", "dependency:copy", f"-Dartifact={artifact}", f"-DoutputDirectory={out}"], check=True,
                   timeout=600, capture_output=True)
    return jar


def _exprs() -> list[str]:
    exprs = []
    for path in RULES.glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            exprs += [rule["expr"] for rule in group["rules"]]
    for path in DASHBOARDS.glob("*.json"):
        board = json.loads(path.read_text())
        exprs += [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    return exprs


def names_used_from_job_kafka() -> set[str]:
    names = set()
    for expr in _exprs():
        names |= {n for n in KAFKA_NAME.findall(expr) if not n.startswith("kafka_metal_")}
    return names - LABEL_NAMES


@pytest.fixture(scope="module")
def metrics(tmp_path_factory):
    """The metric names on /metrics of a combined node with combined.yml, once it has led the quorum for a while."""
    pytest.importorskip("confluent_kafka")
    from confluent_kafka import admin as ck_admin

    jar = agent_jar()
    port = free_port()
    node = LocalKafka(tmp_path_factory.mktemp("kafka-jmx"), plaintext_node)
    node.env["KAFKA_OPTS"] = f"-javaagent:{jar}=127.0.0.1:{port}:{ROOT / 'roles/kafka/files/jmx_exporter/combined.yml'}"
    try:
        node.start()
        client = ck_admin.AdminClient({"bootstrap.servers": node.bootstrap})
        node.wait_ready(client)
        text = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()
            if "kafka_server_raft_metrics_current_state" in text:
                break
            time.sleep(1)
        yield text
    finally:
        node.stop()


def test_every_name_the_rules_and_dashboards_read_from_job_kafka_is_exported(metrics):
    exported = {line.split("{")[0].split(" ")[0] for line in metrics.splitlines() if line and not line.startswith("#")}
    used = names_used_from_job_kafka()
    assert len(used) > 20, sorted(used)
    assert sorted(used - exported) == [], "names that the combined node's JMX exporter does not export"


def test_nothing_per_topic_or_per_partition_is_exported(metrics):
    assert 'topic="' not in metrics and 'partition="' not in metrics
    assert "jmx_scrape_error 0.0" in metrics
    assert 'kafka_server_raft_metrics_current_state{state="leader"} 1.0' in metrics
