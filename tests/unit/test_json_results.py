"""The json_results callback, through a real ad-hoc run on this machine (local connection)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from kafka_metal import REPO_ROOT
from kafka_metal.runner import ansible_env

ANSIBLE = Path(sys.executable).parent / "ansible"


def run(tmp_path, module, args):
    inventory = tmp_path / "hosts"
    inventory.write_text("here ansible_connection=local ansible_python_interpreter=" + sys.executable + "\n"
                         "nowhere ansible_host=192.0.2.1 ansible_connection=ssh ansible_ssh_timeout=1\n")
    env = ansible_env()
    env.update({"ANSIBLE_STDOUT_CALLBACK": "metal.kafka.json_results", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
                "ANSIBLE_CALLBACKS_ENABLED": "metal.kafka.task_timer", "ANSIBLE_HOST_KEY_CHECKING": "False"})
    return subprocess.run([str(ANSIBLE), "all", "-i", str(inventory), "-m", module, "-a", args],
                          capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=120)


def test_standard_output_is_one_object_of_every_hosts_result(tmp_path):
    marker = tmp_path / "marker"
    marker.write_text("x")
    proc = run(tmp_path, "ansible.builtin.stat", json.dumps({"path": str(marker)}))
    data = json.loads(proc.stdout)  # nothing else on standard output, even with another callback on
    assert set(data) == {"here", "nowhere"}, proc.stdout
    assert data["here"]["stat"]["exists"] is True and not data["here"].get("failed")
    assert data["nowhere"]["unreachable"] is True and data["nowhere"]["msg"]
    assert "slowest tasks" in proc.stderr


def test_a_failed_host_says_so(tmp_path):
    proc = run(tmp_path, "ansible.builtin.command", "false")
    data = json.loads(proc.stdout)
    assert data["here"]["failed"] is True and data["here"]["rc"] == 1
    assert proc.returncode != 0 and os.environ.get("X") is None
