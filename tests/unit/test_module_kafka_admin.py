"""kafka_topic, kafka_acl and kafka_scram_user run as Ansible runs them.

In process, through AnsibleModule (argument spec, check mode, result), with the in-memory backend of
kafka_admin_fake.py; and as a subprocess with the real confluent-kafka backend against a closed port,
where the failure must name the problem and hold no secret.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from ansible.module_utils import basic
from kafka_admin_fake import FakeBackend

REPO = Path(__file__).resolve().parents[2]
SASL_PW = "sasl-Secret-1"
KEY_PW = "key-Secret-2"
USER_PW = "user-Secret-3"
CONN = {"bootstrap_servers": "k1:9093", "sasl_username": "admin", "sasl_password": SASL_PW,
        "ssl_key_password": KEY_PW}


def run(monkeypatch, capsys, module_name, args, backend=None, check=False, diff=True):
    args = {**args, "_ansible_check_mode": check, "_ansible_diff": diff}
    monkeypatch.setattr(basic, "_ANSIBLE_ARGS", json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode())
    monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy")
    module = importlib.import_module(f"ansible_collections.metal.kafka.plugins.modules.{module_name}")
    backend = backend if backend is not None else FakeBackend()
    with pytest.raises(SystemExit):
        module.main(backend_factory=lambda params: backend)
    out = capsys.readouterr().out
    for secret in (SASL_PW, KEY_PW, USER_PW):
        assert secret not in out
    return json.loads(out)


def test_topic_module_creates_then_no_op(monkeypatch, capsys):
    be = FakeBackend()
    args = {**CONN, "name": "orders", "partitions": 3, "configs": {"retention.ms": 60000, "segment.bytes": None}}
    first = run(monkeypatch, capsys, "kafka_topic", args, be)
    assert first["changed"] is True and first["topic"]["configs"] == {"retention.ms": "60000"}
    second = run(monkeypatch, capsys, "kafka_topic", args, be)
    assert second["changed"] is False


def test_topic_module_check_mode_and_refusal(monkeypatch, capsys):
    be = FakeBackend(topics={"orders": {"partitions": 6, "replication_factor": 1}})
    dry = run(monkeypatch, capsys, "kafka_topic", {**CONN, "name": "orders", "partitions": 9}, be, check=True)
    assert dry["changed"] is True and be.mutations == [] and dry["diff"]["after"]["partitions"] == 9
    refused = run(monkeypatch, capsys, "kafka_topic", {**CONN, "name": "orders", "partitions": 2}, be)
    assert refused["failed"] is True and "Kafka cannot reduce partitions" in refused["msg"]


def test_sasl_needs_username_and_password(monkeypatch, capsys):
    res = run(monkeypatch, capsys, "kafka_topic", {"bootstrap_servers": "k1:9093", "name": "t"})
    assert res["failed"] is True and "sasl_username" in res["msg"]
    ok = run(monkeypatch, capsys, "kafka_topic", {"bootstrap_servers": "k1:9093", "name": "t",
                                                  "security_protocol": "PLAINTEXT"})
    assert ok["changed"] is True


def test_acl_module_single_and_list(monkeypatch, capsys):
    be = FakeBackend()
    single = {**CONN, "principal": "User:alice", "operation": "write", "resource_type": "topic",
              "resource_name": "orders"}
    assert run(monkeypatch, capsys, "kafka_acl", single, be)["changed"] is True
    listed = {**CONN, "acls": [{"principal": "User:alice", "operation": "write", "resource_type": "topic",
                                "resource_name": "orders"},
                               {"principal": "User:alice", "operation": "describe", "resource_type": "cluster"}]}
    res = run(monkeypatch, capsys, "kafka_acl", listed, be)
    assert res["changed"] is True and [b["operation"] for b in res["created"]] == ["describe"]
    assert run(monkeypatch, capsys, "kafka_acl", listed, be)["changed"] is False


@pytest.mark.parametrize("args,msg", [
    ({"acls": [{"principal": "User:a", "operation": "read", "resource_type": "topic"}], "principal": "User:b"},
     "mutually exclusive"),
    ({"host": "*"}, "one of the following is required"),
    ({"principal": "User:a"}, "missing parameter(s) required by 'principal'"),
    ({"acls": [{"principal": "User:a", "operation": "READ", "resource_type": "topic"}]}, "value of operation"),
])
def test_acl_module_argument_errors(monkeypatch, capsys, args, msg):
    res = run(monkeypatch, capsys, "kafka_acl", {**CONN, **args})
    assert res["failed"] is True and msg in res["msg"], res["msg"]


def test_scram_module_create_on_create_always_delete(monkeypatch, capsys):
    be = FakeBackend()
    args = {**CONN, "name": "alice", "password": USER_PW}
    created = run(monkeypatch, capsys, "kafka_scram_user", args, be)
    assert created["changed"] is True and created["mechanisms"] == {"SCRAM-SHA-512": 8192}
    assert not created.get("warnings"), created.get("warnings")  # e.g. "did not set no_log for update_password"
    assert be.passwords == {("alice", "SCRAM-SHA-512"): USER_PW}
    assert run(monkeypatch, capsys, "kafka_scram_user", args, be)["changed"] is False
    always = run(monkeypatch, capsys, "kafka_scram_user", {**args, "update_password": "always"}, be)
    assert always["changed"] is True and "password" not in json.dumps(always["diff"])
    deleted = run(monkeypatch, capsys, "kafka_scram_user", {**CONN, "user": "alice", "state": "absent"}, be)
    assert deleted["changed"] is True and be.scram == {}


def test_scram_module_backend_error_with_password_is_masked(monkeypatch, capsys):
    be = FakeBackend(fail_on="upsert_scram", fail_msg=f"rejected {USER_PW} via {SASL_PW}")
    res = run(monkeypatch, capsys, "kafka_scram_user", {**CONN, "name": "alice", "password": USER_PW}, be)
    assert res["failed"] is True and "upsert_scram failed" in res["msg"]


# --------------------------------------------------------------------------------------------------
# The real backend, no Kafka: a closed port
# --------------------------------------------------------------------------------------------------


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


MODULE_ARGS = {
    "kafka_topic": {"name": "orders", "partitions": 3},
    "kafka_acl": {"principal": "User:alice", "operation": "read", "resource_type": "topic", "resource_name": "t"},
    "kafka_scram_user": {"name": "alice", "password": USER_PW},
}


@pytest.mark.parametrize("module_name", sorted(MODULE_ARGS))
def test_unreachable_cluster_fails_clearly_without_secrets(tmp_path, module_name):
    pytest.importorskip("confluent_kafka")
    args = {**CONN, **MODULE_ARGS[module_name], "bootstrap_servers": f"127.0.0.1:{closed_port()}",
            "security_protocol": "SASL_PLAINTEXT", "timeout": 1}
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = dict(os.environ, PYTHONPATH=str(REPO / ".collections"))
    proc = subprocess.run([sys.executable, str(REPO / "plugins" / "modules" / f"{module_name}.py"), str(args_file)],
                          capture_output=True, text=True, env=env, timeout=60)
    result = json.loads(proc.stdout)
    assert result["failed"] is True
    assert "no answer within 1s" in result["msg"] or "Timed out" in result["msg"], result["msg"]
    assert "Connection refused" in result["msg"], result["msg"]
    for secret in (SASL_PW, KEY_PW, USER_PW):
        assert secret not in proc.stdout + proc.stderr
