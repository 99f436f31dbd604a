"""The kafka_storage module, run as Ansible runs it, against a stand-in storage tool.

The stand-in writes meta.properties the way ``kafka-storage.sh format --ignore-formatted``
does (only into directories without one), so the module's decisions and its final check
are exercised without a JVM; the real tool is exercised by the Molecule scenarios.
"""

import getpass
import grp
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "plugins" / "modules" / "kafka_storage.py"
CID = "MkU3OEVBNTcwNTJENDM2Qk"

FAKE_TOOL = """#!/bin/bash
# usage: kafka-storage.sh @ARGFILE (one argument per line: format -t ID -c CONFIG --ignore-formatted ...)
echo "argv: $*" >> "$(dirname "$0")/argv.log"
stat -c '%a' "${1#@}" >> "$(dirname "$0")/argv.log"
mapfile -t args < "${1#@}"
set -- "${args[@]}"
echo "$@" >> "$(dirname "$0")/calls.log"
id=$3; config=$5
node=$(sed -n 's/^node.id=//p' "$config")
dirs=$(sed -n 's/^log.dirs=//p; s/^metadata.log.dir=//p' "$config" | tr ',' ' ')
for d in $dirs; do
  mkdir -p "$d"
  [ -f "$d/meta.properties" ] || printf 'version=1\\nnode.id=%s\\ncluster.id=%s\\n' "$node" "$id" > "$d/meta.properties"
done
"""


@pytest.fixture
def kafka_home(tmp_path):
    home = tmp_path / "kafka"
    (home / "bin").mkdir(parents=True)
    tool = home / "bin" / "kafka-storage.sh"
    tool.write_text(FAKE_TOOL)
    tool.chmod(0o755)
    return home


def run_module(tmp_path, kafka_home, dirs, check=False, cluster_id=CID, node_id=1, scram=None):
    config = tmp_path / "server.properties"
    config.write_text(f"node.id={node_id}\nlog.dirs={','.join(dirs[:-1]) or dirs[-1]}\nmetadata.log.dir={dirs[-1]}\n")
    args = {"cluster_id": cluster_id, "node_id": node_id, "dirs": dirs, "config": str(config),
            "kafka_home": str(kafka_home), "owner": getpass.getuser(),
            "group": grp.getgrgid(os.getgid()).gr_name, "_ansible_check_mode": check}
    if scram:
        args["scram_credentials"] = scram
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = dict(os.environ, PYTHONPATH=str(REPO / ".collections"))
    proc = subprocess.run([sys.executable, str(MODULE), str(args_file)], capture_output=True, text=True, env=env)
    return json.loads(proc.stdout)


def calls(kafka_home):
    log = kafka_home / "bin" / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_formats_empty_dirs_then_does_nothing(tmp_path, kafka_home):
    dirs = [str(tmp_path / "data"), str(tmp_path / "meta")]
    first = run_module(tmp_path, kafka_home, dirs)
    assert first["changed"] is True and first["formatted"] == dirs, first
    assert "--ignore-formatted" in calls(kafka_home)[0]
    second = run_module(tmp_path, kafka_home, dirs)
    assert second["changed"] is False and second["already_formatted"] == dirs
    assert len(calls(kafka_home)) == 1, "a second run must not call the storage tool"


def test_check_mode_reports_without_formatting(tmp_path, kafka_home):
    dirs = [str(tmp_path / "data"), str(tmp_path / "meta")]
    result = run_module(tmp_path, kafka_home, dirs, check=True)
    assert result["changed"] is True and "unformatted" in result["diff"]["before"]
    assert calls(kafka_home) == [] and not (tmp_path / "data").exists()


def test_other_cluster_fails_loudly_and_changes_nothing(tmp_path, kafka_home):
    meta = tmp_path / "meta"
    meta.mkdir()
    (meta / "meta.properties").write_text("version=1\nnode.id=1\ncluster.id=AnotherClusterIdAAAAAA\n")
    result = run_module(tmp_path, kafka_home, [str(tmp_path / "data"), str(meta)])
    assert result["failed"] is True
    assert "belongs to cluster AnotherClusterIdAAAAAA, not " + CID in result["msg"]
    assert "nothing changed" in result["msg"]
    assert calls(kafka_home) == [] and not (tmp_path / "data").exists()


def test_non_empty_dir_without_meta_refused(tmp_path, kafka_home):
    data = tmp_path / "data"
    data.mkdir()
    (data / "00000000000000000000.log").write_text("records")
    result = run_module(tmp_path, kafka_home, [str(data), str(tmp_path / "meta")])
    assert result["failed"] is True and "is not empty (00000000000000000000.log)" in result["msg"]
    assert calls(kafka_home) == []


def test_scram_bootstrap_passes_salted_password_through_private_argfile(tmp_path, kafka_home):
    dirs = [str(tmp_path / "data"), str(tmp_path / "meta")]
    secret = "Very-Secret-Admin-Password-1"
    result = run_module(tmp_path, kafka_home, dirs,
                        scram=[{"name": "admin", "password": secret, "mechanism": "SCRAM-SHA-512"}])
    assert result["changed"] is True, result
    call = calls(kafka_home)[0]
    assert "--add-scram SCRAM-SHA-512=[name=admin,salt=" in call and "saltedpassword=" in call
    assert "iterations=8192]" in call
    argv = (kafka_home / "bin" / "argv.log").read_text().splitlines()
    assert argv[0].startswith("argv: @") and secret not in argv[0] and "SCRAM" not in argv[0]
    assert argv[1] == "600", "the argument file must be readable by its owner only"
    assert not os.path.exists(argv[0].split("@", 1)[1]), "the argument file must be removed"
    assert secret not in json.dumps(result) and secret not in call
