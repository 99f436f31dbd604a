"""One run per node (module_utils/node.py and the kafka_node module): what changes, what restarts, what is shown."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.metal.kafka.plugins.module_utils import files as fs
from ansible_collections.metal.kafka.plugins.module_utils import node

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "plugins" / "modules" / "kafka_node.py"
ME, MY_GROUP = os.getuid(), os.getgid()


def observe(path):
    state = fs.path_state(path)
    return state, fs.read_bytes(path) if state.kind == "file" else None


def ids(owner, group):
    return {"me": ME, "nobody-here": None}.get(owner), {"me": MY_GROUP, "nobody-here": None}.get(group)


def f(path, content, mode="0640", restart=True, owner="me", group="me"):
    return {"path": str(path), "content": content, "owner": owner, "group": group, "mode": mode, "restart": restart}


def test_a_fresh_host_gets_everything_and_a_second_look_finds_nothing(tmp_path):
    d = {"path": str(tmp_path / "conf"), "owner": "me", "group": "me", "mode": "0750"}
    files = [f(tmp_path / "conf" / "server.properties", "a=1\n"), f(tmp_path / "conf" / "m.json", "{}", "0644", False)]
    link = {"path": str(tmp_path / "current"), "target": str(tmp_path / "kafka-4.1.1"), "restart": True}
    changes = node.plan([d], files, [link], [], observe, ids)
    assert [(c.kind, c.what) for c in changes] == [("directory", ["created"]), ("file", ["created"]),
                                                   ("file", ["created"]), ("link", ["target"])]
    os.makedirs(d["path"], mode=0o750)
    os.chmod(d["path"], 0o750)
    for spec in files:
        fs.write_file(spec["path"], spec["content"].encode(), int(spec["mode"], 8))
    os.symlink(link["target"], link["path"])
    assert node.plan([d], files, [link], [], observe, ids) == []


def test_content_mode_and_owner_are_each_reported(tmp_path):
    path = tmp_path / "server.properties"
    fs.write_file(str(path), b"a=1\n", 0o600)
    (c,) = node.plan([], [f(path, "a=2\n")], [], [], observe, ids)
    assert c.what == ["content", "mode"] and c.before == "a=1\n" and c.after == "a=2\n"
    (c,) = node.plan([], [f(path, "a=1\n", "0600", owner="nobody-here")], [], [], observe, ids)
    assert c.what == ["owner"]  # a user not created yet (check mode on a fresh host) is a difference


def test_restart_only_for_what_the_running_process_reads(tmp_path):
    path, manifest = tmp_path / "server.properties", tmp_path / "kafka.json"
    changes = node.plan([], [f(manifest, "{}", restart=False)], [], [], observe, ids)
    assert not node.restart_needed(True, changes)
    changes = node.plan([], [f(path, "a=1\n")], [], [], observe, ids)
    assert node.restart_needed(True, changes)
    assert not node.restart_needed(False, changes)  # a node that was not running is started, not restarted


def test_secret_files_are_never_in_a_diff(tmp_path):
    path = tmp_path / "credentials.properties"
    fs.write_file(str(path), b"password=old-secret\n", 0o600)
    spec = dict(f(path, "password=new-secret\n", "0600"), secret=True)
    (c,) = node.plan([], [spec], [], [], observe, ids)
    assert c.before is None and c.after is None
    shown = json.dumps(node.diffs([c]))
    assert "new-secret" not in shown and "old-secret" not in shown and "(content not shown) content" in shown


def test_what_cannot_be_applied_is_named(tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    cases = [
        (dict(files=[f(tmp_path / "dir", "x")]), "should be a file but is a dir"),
        (dict(directories=[{"path": str(tmp_path / "file"), "owner": "me", "group": "me", "mode": "0750"}]),
         "should be a directory but is a file"),
        (dict(files=[f(tmp_path / "a", "x", mode="rw-r")]), "not an octal mode"),
        (dict(files=[f(tmp_path / "a", "x"), f(tmp_path / "a", "y")]), "named twice"),
        (dict(absent=[{"path": str(tmp_path / "dir")}]), "is a directory: remove it yourself"),
    ]
    for kwargs, message in cases:
        args = dict(directories=[], files=[], links=[], absent=[]) | kwargs
        with pytest.raises(node.NodeError, match=message):
            node.plan(args["directories"], args["files"], args["links"], args["absent"], observe, ids)


def test_the_manifest_lists_what_the_process_reads():
    text = node.manifest("kafka", "kafka.service", ["broker"], 4, ["/etc/k/server.properties", "/etc/k/tls/ks.pem",
                                                                   "/etc/k/server.properties"],
                         log_dirs=["/data/1"], listeners={"client": 9092}, config_dir="/etc/k",
                         install_root="/opt/kafka")
    data = node.read_manifest(text)
    assert data["reads"] == ["/etc/k/server.properties", "/etc/k/tls/ks.pem"] and data["unit"] == "kafka.service"
    assert data["config_dir"] == "/etc/k" and data["node_id"] == 4
    assert node.read_manifest("not json") is None and node.read_manifest('{"version": 99, "reads": []}') is None


# ---------------------------------------------------------------------------------------------
# The module, as Ansible runs it, with a stand-in systemctl
# ---------------------------------------------------------------------------------------------

SYSTEMCTL = """#!/bin/sh
echo "$@" >> "$(dirname "$0")/systemctl.log"
state="$(dirname "$0")/active"; enabled="$(dirname "$0")/enabled"
case "$1" in
  show) if [ -f "$state" ]; then echo ActiveState=active; else echo ActiveState=inactive; fi
        if [ -f "$enabled" ]; then echo UnitFileState=enabled; else echo UnitFileState=disabled; fi
        echo LoadState=loaded; echo NeedDaemonReload=no ;;
  start) touch "$state" ;;
  enable) touch "$enabled" ;;
esac
"""


@pytest.fixture
def host(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text(SYSTEMCTL)
    (bin_dir / "systemctl").chmod(0o755)
    return tmp_path


def run_module(host, check=False, **args):
    import getpass
    import grp

    me, group = getpass.getuser(), grp.getgrgid(os.getgid()).gr_name
    conf = host / "etc"
    args = {"service": "kafka.service", "unit_file": str(conf / "kafka.service"),
            "directories": [{"path": str(conf), "owner": me, "group": group, "mode": "0750"}],
            "files": [{"path": str(conf / "server.properties"), "content": "a=1\n", "owner": me, "group": group,
                       "mode": "0640"},
                      {"path": str(conf / "kafka.service"), "content": "[Service]\n", "owner": me, "group": group}],
            "secret_files": [{"path": str(conf / "credentials.properties"), "content": "password=S3cret-value\n",
                              "owner": me, "group": group}],
            "_ansible_check_mode": check, "_ansible_diff": True} | args
    args_file = host / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = dict(os.environ, PYTHONPATH=str(REPO / ".collections"), PATH=f"{host / 'bin'}:{os.environ['PATH']}")
    proc = subprocess.run([sys.executable, str(MODULE), str(args_file)], capture_output=True, text=True, env=env)
    assert "S3cret-value" not in proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def systemctl_calls(host):
    log = host / "bin" / "systemctl.log"
    return [line.split()[0] for line in log.read_text().splitlines()] if log.exists() else []


def test_module_check_mode_on_a_fresh_host_touches_nothing(host):
    out = run_module(host, check=True)
    assert out["changed"] and out["started"] and not out["restart_needed"]
    assert not (host / "etc").exists()
    assert systemctl_calls(host) == ["show"]
    assert any(d["before_header"].endswith("server.properties") and d["after"] == "a=1\n" for d in out["diff"])


def test_module_writes_starts_then_changes_nothing_and_a_change_asks_for_a_restart(host):
    out = run_module(host)
    assert out["changed"] and out["started"] and out["enabled"] and not out["restart_needed"]
    # only the secret's content is masked: its path, owner and mode stay readable in the result
    secret = out["invocation"]["module_args"]["secret_files"][0]
    assert secret["content"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" and secret["mode"] == "0600"
    assert str(host / "etc" / "credentials.properties") in [c["path"] for c in out["changes"]]
    assert (host / "etc" / "credentials.properties").stat().st_mode & 0o777 == 0o600
    assert systemctl_calls(host) == ["show", "daemon-reload", "enable", "start"]
    again = run_module(host)
    assert not again["changed"] and not again["started"] and again["was_active"] and "diff" not in again
    changed = run_module(host, secret_files=[{"path": str(host / "etc" / "credentials.properties"),
                                              "content": "password=Other-S3cret-value\n"}])
    assert changed["changed"] and changed["restart_needed"] and not changed["started"]
    assert "Other-S3cret" not in json.dumps(changed)
