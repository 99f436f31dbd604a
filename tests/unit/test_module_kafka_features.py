"""The kafka_features module, run as Ansible runs it, against a stand-in kafka-features.sh.

The stand-in answers from the real outputs of Kafka's tool (data/features/, through test_features.FakeFeatureTool)
and keeps the cluster's finalized levels in a file between calls; the real tool runs in the `secure` scenario.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "plugins" / "modules" / "kafka_features.py"

STAND_IN = """#!{python}
import json, sys
sys.path.insert(0, {tests!r})
from test_features import FakeFeatureTool

state_file = {state!r}
with open(state_file) as fh:
    state = json.load(fh)
tool = FakeFeatureTool(state["version"], state["finalized"])
rc, out, err = tool.run([sys.argv[0], *sys.argv[1:]])
state["finalized"] = tool.finalized
state["calls"].append(sys.argv[1:])
with open(state_file, "w") as fh:
    json.dump(state, fh)
sys.stdout.write(out)
sys.stderr.write(err)
sys.exit(rc)
"""


@pytest.fixture
def cluster(tmp_path):
    home = tmp_path / "kafka"
    (home / "bin").mkdir(parents=True)
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"version": "4.1.1", "finalized": {"metadata.version": 21, "kraft.version": 0},
                                 "calls": []}))
    tool = home / "bin" / "kafka-features.sh"
    tool.write_text(STAND_IN.format(python=sys.executable, tests=str(Path(__file__).parent), state=str(state)))
    tool.chmod(0o755)
    config = tmp_path / "server.properties"
    config.write_text("process.roles=broker\nnode.id=4\ncontroller.quorum.voters=1@c1:9093,2@c2:9093,3@c3:9093\n")
    return {"home": home, "state": state, "config": config}


def run_module(tmp_path, cluster, check=False, **args):
    args = {"version": "4.1.1", "bootstrap_server": "b1:9092", "command_config": "/etc/kafka/admin.properties",
            "kafka_home": str(cluster["home"]), "config": str(cluster["config"]), "_ansible_check_mode": check,
            "_ansible_diff": True, **args}
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = dict(os.environ, PYTHONPATH=str(REPO / ".collections"))
    proc = subprocess.run([sys.executable, str(MODULE), str(args_file)], capture_output=True, text=True, env=env)
    return json.loads(proc.stdout)


def state(cluster):
    return json.loads(cluster["state"].read_text())


def upgrades(cluster):
    return [c for c in state(cluster)["calls"] if "upgrade" in c]


def test_raises_metadata_version_only_then_does_nothing(tmp_path, cluster):
    out = run_module(tmp_path, cluster)
    assert not out.get("failed"), out
    assert out["changed"]
    assert out["features_before"]["metadata.version"] == 21 and out["features_after"]["metadata.version"] == 27
    assert out["features_after"]["kraft.version"] == 0
    assert out["changes"] == [{"feature": "metadata.version", "before": 21, "after": 27}]
    assert out["diff"] == {"before": "metadata.version: 3.9-IV0 (21)\n", "after": "metadata.version: 4.1-IV1 (27)\n"}
    assert any("keep  kraft.version" in line and "not raised" in line for line in out["plan"])
    assert [c[c.index("upgrade"):] for c in upgrades(cluster)] == [["upgrade", "--feature", "metadata.version=27"]]
    # the admin settings reach the tool
    assert all(c[2:4] == ["--command-config", "/etc/kafka/admin.properties"] for c in state(cluster)["calls"])

    again = run_module(tmp_path, cluster)
    assert not again["changed"] and "diff" not in again
    assert len(upgrades(cluster)) == 1


def test_check_mode_lets_kafka_validate_and_changes_nothing(tmp_path, cluster):
    out = run_module(tmp_path, cluster, check=True)
    assert out["changed"]
    assert out["kafka_said"] == "metadata.version can be upgraded to 27."
    assert upgrades(cluster)[0][-1] == "--dry-run"
    assert state(cluster)["finalized"] == {"metadata.version": 21, "kraft.version": 0}


def test_kraft_version_through_features_is_refused_before_any_change(tmp_path, cluster):
    out = run_module(tmp_path, cluster, features={"kraft.version": 1})
    assert out["failed"]
    assert "kraft.version is not raised with --feature" in out["msg"] and "nothing changed" in out["msg"]
    assert not upgrades(cluster)


def test_dynamic_quorum_warns_about_the_static_voters(tmp_path, cluster):
    out = run_module(tmp_path, cluster, dynamic_quorum=True, features={"group.version": 1})
    assert not out.get("failed"), out
    assert out["features_after"] == {**out["features_before"], "metadata.version": 27, "kraft.version": 1,
                                     "group.version": 1}
    assert any(line.startswith("WARNING: kraft.version 0 -> 1") and "still lists controller.quorum.voters" in line
               for line in out["plan"])
    assert "still lists controller.quorum.voters" in json.dumps(out["warnings"])  # Ansible shows it as a warning


def test_a_node_without_its_configuration(tmp_path, cluster):
    out = run_module(tmp_path, cluster, config=str(tmp_path / "missing.properties"))
    assert out["failed"] and "cannot read" in out["msg"] and "run this on a Kafka node" in out["msg"]
