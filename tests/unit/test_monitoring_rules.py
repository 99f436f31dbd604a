"""The monitoring content is valid and tested: the Prometheus rule files load (`promtool check rules`), their unit
tests pass (`promtool test rules tests/promtool/*.yml`), every alert has a case where it fires and one where it
does not, every dashboard query is valid PromQL, and the JMX exporter configuration of a combined node is the
union of the broker's and the controller's.

promtool comes from Debian's prometheus package (.ci/install copies it into .venv/bin). Without it these tests
are skipped on a workstation and fail in CI (CI set).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "roles" / "monitoring" / "files" / "rules"
RULE_FILES = [RULES / "kafka-metal-alerts.yml", RULES / "kafka-metal-recording.yml"]
TESTS = sorted((ROOT / "tests" / "promtool").glob("*.yml"))
DASHBOARDS = sorted((ROOT / "roles" / "monitoring" / "files" / "dashboards").glob("*.json"))
JMX = ROOT / "roles" / "kafka" / "files" / "jmx_exporter"
ZOOKEEPER_JMX = ROOT / "roles" / "zookeeper" / "files" / "jmx_exporter"


def _promtool() -> str:
    for candidate in (Path(sys.executable).parent / "promtool", shutil.which("promtool")):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    if os.environ.get("CI"):
        pytest.fail("promtool is missing: .ci/install extracts it from Debian's prometheus package into .venv/bin")
    pytest.skip("promtool is not installed (run .ci/install, or install Debian's prometheus package)")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([_promtool(), *args], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env=dict(os.environ, LC_ALL="C"))


def _alerts() -> list[dict]:
    groups = yaml.safe_load((RULES / "kafka-metal-alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_rule_files_load():
    cp = _run("check", "rules", *map(str, RULE_FILES))
    assert cp.returncode == 0, cp.stdout + cp.stderr


def test_rule_unit_tests_pass():
    assert TESTS, "no promtool tests in tests/promtool"
    cp = _run("test", "rules", *map(str, TESTS))
    assert cp.returncode == 0, cp.stdout + cp.stderr


def test_every_alert_has_a_firing_and_a_quiet_case():
    firing, quiet = set(), set()
    for path in TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test") or []:
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in _alerts()}
    assert names - firing == set(), f"alerts without a case where they fire: {sorted(names - firing)}"
    assert names - quiet == set(), f"alerts without a case where they stay quiet: {sorted(names - quiet)}"
    assert (firing | quiet) - names == set(), f"tests of alerts that do not exist: {sorted((firing | quiet) - names)}"


def test_every_recording_rule_is_tested():
    groups = yaml.safe_load((RULES / "kafka-metal-recording.yml").read_text())["groups"]
    recorded = {rule["record"] for group in groups for rule in group["rules"]}
    tested = set()
    for path in TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("promql_expr_test") or []:
                tested |= set(re.findall(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", check["expr"]))
    # the rules that only rename or sum an exporter's gauge per cluster are covered by their siblings
    untested = recorded - tested - {"cluster:kafka_replication_bytes_in:rate5m", "instance:kafka_bytes_out:rate5m",
                                    "cluster:kafka_bytes_out:rate5m", "cluster:kafka_isr_shrinks:rate5m",
                                    "cluster:kafka_isr_expands:rate5m", "cluster:kafka_replica_fetcher_max_lag:max"}
    assert not untested, f"recording rules without a promql_expr_test: {sorted(untested)}"


def test_alerts_are_labelled_and_explained():
    for rule in _alerts():
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert {"summary", "description"} <= set(rule["annotations"]), name
        assert re.fullmatch(r"\d+[smh]", str(rule.get("for", ""))), f"{name}: `for` must be a plain duration"


def test_each_for_is_on_its_own_line():
    """The monitoring role overrides an alert's `for` by name with a line edit: one plain `for:` per alert."""
    text = (RULES / "kafka-metal-alerts.yml").read_text()
    blocks = re.split(r"\n\s+- alert: ", text)[1:]
    assert len(blocks) == len(_alerts())
    for block in blocks:
        assert len(re.findall(r"^\s+for: \d+[smh]$", block, flags=re.M)) == 1, block.splitlines()[0]


def _dashboard_queries(path: Path) -> list[tuple[str, str]]:
    board = json.loads(path.read_text())
    out = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            out.append((f"{panel['title']} ({target['refId']})", target["expr"]))
    for var in board["templating"]["list"]:
        query = var.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        m = re.fullmatch(r"label_values\((.*),\s*\w+\)", query or "")
        if m:
            out.append((f"variable {var['name']}", m.group(1)))
    return out


def _grafana_to_promql(expr: str) -> str:
    """Replace Grafana's variables by values Prometheus accepts."""
    expr = re.sub(r"\$__(?:rate_)?interval|\$__range", "5m", expr)
    return re.sub(r"\$\{?(\w+)\}?", "x", expr)


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def test_dashboard_queries_are_valid_promql(path, tmp_path):
    queries = _dashboard_queries(path)
    assert queries, f"{path.name} has no query"
    records = [{"record": f"dashboard:query_{i}:check", "expr": _grafana_to_promql(expr)}
               for i, (_, expr) in enumerate(queries)]
    rules = {"groups": [{"name": path.stem, "rules": records}]}
    rules_file = tmp_path / "dashboard-queries.yml"
    rules_file.write_text(yaml.safe_dump(rules, sort_keys=False))
    cp = _run("check", "rules", str(rules_file))
    assert cp.returncode == 0, "\n".join(f"{i}: {title}: {expr}" for i, (title, expr) in enumerate(queries)) + "\n" + \
        cp.stdout + cp.stderr


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def test_dashboards_take_the_datasource_and_cluster_as_variables(path):
    board = json.loads(path.read_text())
    assert [i["name"] for i in board["__inputs"]] == ["DS_PROMETHEUS"]
    assert "cluster" in [v["name"] for v in board["templating"]["list"]]
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])


def test_combined_jmx_config_is_the_union_of_broker_and_controller():
    broker, controller, combined = (yaml.safe_load((JMX / f"{n}.yml").read_text())
                                    for n in ("broker", "controller", "combined"))
    for key in ("lowercaseOutputName", "lowercaseOutputLabelNames"):
        assert broker[key] == controller[key] == combined[key] is True
    includes = set(broker["includeObjectNames"]) | set(controller["includeObjectNames"])
    assert set(combined["includeObjectNames"]) == includes
    assert combined["excludeObjectNames"] == broker["excludeObjectNames"]
    key = lambda rule: json.dumps(rule, sort_keys=True)  # noqa: E731
    rules = {key(r) for r in broker["rules"]} | {key(r) for r in controller["rules"]}
    assert {key(r) for r in combined["rules"]} == rules


@pytest.mark.parametrize("name", ["broker", "controller", "combined", "zookeeper"])
def test_jmx_configs_never_query_per_topic_or_per_partition_mbeans(name):
    config = yaml.safe_load(((ZOOKEEPER_JMX if name == "zookeeper" else JMX) / f"{name}.yml").read_text())
    assert config["includeObjectNames"], "without includeObjectNames the agent reads every MBean"
    for pattern in config["includeObjectNames"]:
        assert not re.search(r"\b(topic|partition)=", pattern), pattern
        assert not pattern.startswith(("kafka.log:type=Log,", "kafka.cluster:")), pattern
        assert pattern != "*:*"
