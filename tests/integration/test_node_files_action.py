"""The action plugin of kafka_node_files through ansible-playbook on localhost: the node's files stored on
the controller (0600 in 0700 directories), sanitized, only when changed; check mode writes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from local_kafka import VENV_BIN

REPO = Path(__file__).resolve().parents[2]
SECRET = "Key-Password-0b7e41"
KEY_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7"


def run(tmp_path, node, dest, check=False):
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [{
        "name": "files", "register": "r",
        "metal.kafka.kafka_node_files": {
            "paths": [str(node / "etc/server.properties"), str(node / "tls/keystore.pem"),
                      str(node / "data/meta.properties"), str(node / "missing.properties")],
            "never_read": [str(node / "etc/credentials.properties")],
            "dest": str(dest)}},
        {"name": "out", "ansible.builtin.copy": {"content": "{{ r | to_json }}", "dest": str(tmp_path / "r.json")},
         "check_mode": False}]}]
    pb = tmp_path / "play.yml"
    pb.write_text(yaml.safe_dump(play))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"))
    proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", "-e",
                           f"ansible_python_interpreter={sys.executable}", str(pb), *(["--check"] if check else [])],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert SECRET not in proc.stdout + proc.stderr and KEY_BODY not in proc.stdout + proc.stderr
    return json.loads((tmp_path / "r.json").read_text())


def test_files_are_stored_sanitized_once_and_check_mode_writes_nothing(tmp_path):
    node = tmp_path / "node"
    for d in ("etc", "tls", "data"):
        (node / d).mkdir(parents=True)
    (node / "etc/server.properties").write_text(f"node.id=1\nssl.key.password={SECRET}\n")
    (node / "etc/credentials.properties").write_text(f"secret={SECRET}\n")
    (node / "tls/keystore.pem").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
                                           f"-----BEGIN PRIVATE KEY-----\n{KEY_BODY}\n-----END PRIVATE KEY-----\n")
    (node / "data/meta.properties").write_text("cluster.id=abc\nnode.id=1\n")
    dest = tmp_path / "backup" / "nodes" / "node1"

    first = run(tmp_path, node, dest, check=True)  # check mode: reported, nothing written
    assert first["changed"] and len(first["stored"]) == 3 and not dest.exists()

    second = run(tmp_path, node, dest)
    assert second["changed"] and len(second["stored"]) == 3
    assert all("content_b64" not in f for f in second["files"])
    kinds = {Path(f["path"]).name: f["kind"] for f in second["files"]}
    assert kinds == {"server.properties": "properties", "keystore.pem": "pem", "meta.properties": "properties",
                     "missing.properties": "missing"}
    stored = dest / str(node).lstrip("/")
    server = (stored / "etc/server.properties").read_text()
    assert "node.id=1" in server and SECRET not in server
    keystore = (stored / "tls/keystore.pem").read_text()
    assert "BEGIN CERTIFICATE" in keystore and KEY_BODY not in keystore
    assert not (stored / "etc/credentials.properties").exists()
    for path in [dest, *dest.rglob("*")]:
        mode = path.stat().st_mode & 0o777
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))

    third = run(tmp_path, node, dest)  # nothing changed on the node: nothing written
    assert not third["changed"] and third["stored"] == []
    assert not run(tmp_path, node, dest, check=True)["changed"]
