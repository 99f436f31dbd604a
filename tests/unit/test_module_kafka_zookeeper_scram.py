"""kafka_zookeeper_scram, run as Ansible runs it, against a stand-in kafka-configs.sh.

The stand-in keeps "ZooKeeper" in a directory: describe prints what --alter stored. The real tool
and ZooKeeper are exercised by the Molecule scenario `zookeeper`.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "plugins" / "modules" / "kafka_zookeeper_scram.py"
SECRET = "Zk-Admin-Secret-Password-9"

FAKE_CONFIGS = """#!/bin/bash
store="$(dirname "$0")/../zk"
mkdir -p "$store"
echo "argv: $*" >> "$(dirname "$0")/argv.log"
entity=""; file=""; action=""
while [ $# -gt 0 ]; do
  case "$1" in
    --entity-name) entity=$2; shift 2 ;;
    --add-config-file) file=$2; shift 2 ;;
    --describe) action=describe; shift ;;
    --alter) action=alter; shift ;;
    *) shift ;;
  esac
done
if [ "$action" = describe ]; then
  if [ -f "$store/$entity" ]; then
    echo "Configs for user-principal '$entity' are $(cut -d= -f1 "$store/$entity")=salt=abc,iterations=8192"
  else
    echo "Configs for user-principal '$entity' are "
  fi
else
  stat -c '%a' "$file" >> "$(dirname "$0")/argv.log"
  cp "$file" "$store/$entity"
  echo "$file" >> "$(dirname "$0")/argv.log"
fi
"""


@pytest.fixture
def kafka_home(tmp_path):
    home = tmp_path / "kafka"
    (home / "bin").mkdir(parents=True)
    (home / "libs").mkdir()
    tool = home / "bin" / "kafka-configs.sh"
    tool.write_text(FAKE_CONFIGS)
    tool.chmod(0o755)
    return home


def run_module(tmp_path, kafka_home, check=False, password=SECRET, connect="zk1:2181"):
    args = {"zookeeper_connect": connect, "kafka_home": str(kafka_home), "name": "admin", "password": password,
            "_ansible_check_mode": check}
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = dict(os.environ, PYTHONPATH=str(REPO / ".collections"))
    proc = subprocess.run([sys.executable, str(MODULE), str(args_file)], capture_output=True, text=True, env=env)
    return json.loads(proc.stdout)


def test_creates_once_through_a_private_file(tmp_path, kafka_home):
    dry = run_module(tmp_path, kafka_home, check=True)
    assert dry["changed"] is True and not (kafka_home / "zk").exists() or not any((kafka_home / "zk").iterdir())
    first = run_module(tmp_path, kafka_home)
    assert first["changed"] is True and first["created"] is True, first
    stored = (kafka_home / "zk" / "admin").read_text()
    assert stored == f"SCRAM-SHA-512=iterations=8192,password={SECRET}\n"
    log = (kafka_home / "bin" / "argv.log").read_text()
    assert SECRET not in "".join(line for line in log.splitlines() if line.startswith("argv:"))
    mode, path = [line for line in log.splitlines() if not line.startswith("argv:")]
    assert mode == "600" and not os.path.exists(path)
    second = run_module(tmp_path, kafka_home)
    assert second["changed"] is False
    assert SECRET not in json.dumps(first) + json.dumps(second)


def test_refuses_passwords_the_tool_cannot_carry(tmp_path, kafka_home):
    result = run_module(tmp_path, kafka_home, password="has,comma-and-more")
    assert result.get("failed") and "commas" in result["msg"]
    assert not (kafka_home / "zk").exists() or not any((kafka_home / "zk").iterdir())


def test_dry_run_before_kafka_is_installed_reports_the_creation(tmp_path):
    result = run_module(tmp_path, tmp_path / "not-installed", check=True)
    assert result["changed"] is True and "assumed" in result["msg"], result
    real = run_module(tmp_path, tmp_path / "not-installed")
    assert real.get("failed") and "install Kafka" in real["msg"]
