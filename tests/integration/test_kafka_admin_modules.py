"""kafka_topic, kafka_acl and kafka_scram_user through ansible-playbook against a real single-node Kafka.

The session fixture unpacks kafka_2.13-4.1.1.tgz from the dist cache (building it with
`kafka-metal dist build` when it is missing and Maven is there), formats a combined broker+controller
on 127.0.0.1 with the SCRAM credential of the super user `admin` bootstrapped, and starts it with
the StandardAuthorizer (no ACL, no access). Clients use SASL_PLAINTEXT with SCRAM-SHA-512; the
controller listener uses SASL PLAIN, so `admin` is the only super user. No lab, no containers; the
broker runs in its own session and is killed as a process group at the end.

The playbooks run on localhost (connection local, this venv's Python) with the collection from this
repository; what the modules did is checked with confluent-kafka, as the cluster sees it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

confluent_kafka = pytest.importorskip("confluent_kafka")
from confluent_kafka import admin as ck_admin  # noqa: E402
from local_kafka import NEEDS_JAVA, VENV_BIN, LocalKafka, scram_node  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ADMIN_PW = "admin-" + uuid.uuid4().hex
ALICE_PW = "alice-" + uuid.uuid4().hex
BOB_PW = "bob-" + uuid.uuid4().hex

# a real Kafka from the distribution `kafka-metal dist build` assembles from Maven Central
pytestmark = [NEEDS_JAVA, pytest.mark.maven]


def server_properties(data: Path, client_port: int, controller_port: int) -> str:
    return "\n".join(scram_node(data, client_port, controller_port, ADMIN_PW)) + "\n"



def client_conf(bootstrap: str, user: str, password: str) -> dict:
    return {"bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": user, "sasl.password": password}


class Kafka(LocalKafka):
    def __init__(self, workdir: Path):
        super().__init__(workdir, server_properties)
        self._admin: ck_admin.AdminClient | None = None

    def admin(self) -> ck_admin.AdminClient:
        # One client, kept: a future whose AdminClient is garbage-collected fails with _DESTROY.
        if self._admin is None:
            self._admin = ck_admin.AdminClient(client_conf(self.bootstrap, "admin", ADMIN_PW))
        return self._admin


@pytest.fixture(scope="session")
def kafka(tmp_path_factory):
    node = Kafka(tmp_path_factory.mktemp("kafka-admin"))
    try:
        node.start("--add-scram", f"SCRAM-SHA-512=[name=admin,password={ADMIN_PW}]")
        node.wait_ready(node.admin())
        yield node
    finally:
        node.stop()


# --------------------------------------------------------------------------------------------------
# Running plays and looking at the cluster
# --------------------------------------------------------------------------------------------------


class Play:
    def __init__(self, rc: int, out: str, results: dict):
        self.rc, self.out, self.results = rc, out, results

    def __getitem__(self, name):
        return self.results[name]

    @property
    def changed(self) -> list[str]:
        """The tasks that reported a change (the final collect task is not one of them)."""
        return [name for name, result in self.results.items() if result.get("changed")]


def play(kafka: Kafka, tmp_path: Path, tasks: dict, check: bool = False) -> Play:
    """Run ``tasks`` (name -> {module: args}, optionally with failure expected via ``_fail: true``) as one play."""
    conn = {"bootstrap_servers": kafka.bootstrap, "security_protocol": "SASL_PLAINTEXT", "sasl_username": "admin",
            "sasl_password": ADMIN_PW, "timeout": 20}
    results = tmp_path / f"results-{uuid.uuid4().hex[:8]}.json"
    body = []
    for name, task in tasks.items():
        task = dict(task)
        expect_fail = task.pop("_fail", False)
        body.append({"name": name, **task, "register": name, **({"ignore_errors": True} if expect_fail else {})})
    collected = "{" + ", ".join(f"'{n}': {n}" for n in tasks) + "}"
    body.append({"name": "collect", "ansible.builtin.copy": {"content": f"{{{{ {collected} | to_json }}}}",
                                                            "dest": str(results)}, "check_mode": False})
    modules = ("kafka_topic", "kafka_acl", "kafka_scram_user")
    playbook = [{"hosts": "localhost", "gather_facts": False,
                 "module_defaults": {f"metal.kafka.{m}": conn for m in modules}, "tasks": body}]
    pb = tmp_path / f"play-{uuid.uuid4().hex[:8]}.yml"
    pb.write_text(yaml.safe_dump(playbook, sort_keys=False))
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"))
    cmd = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(pb), "--diff"] + (["--check"] if check else [])
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    for secret in (ADMIN_PW, ALICE_PW, BOB_PW):
        assert secret not in out, "a secret appeared in the playbook output"
    assert results.exists(), out[-4000:]
    text = results.read_text()
    for secret in (ADMIN_PW, ALICE_PW, BOB_PW):
        assert secret not in text, "a secret appeared in a registered result"
    return Play(proc.returncode, out, json.loads(text))


def topic_state(kafka: Kafka, name: str):
    client = kafka.admin()
    try:
        desc = client.describe_topics(confluent_kafka.TopicCollection([name]), request_timeout=10)[name].result(15)
    except confluent_kafka.KafkaException as exc:
        if exc.args[0].code() == confluent_kafka.KafkaError.UNKNOWN_TOPIC_OR_PART:
            return None
        raise
    resource = ck_admin.ConfigResource(ck_admin.ResourceType.TOPIC, name)
    futures = client.describe_configs([resource], request_timeout=10)
    configs = {k: v.value for k, v in futures[resource].result(15).items()}
    return {"partitions": len(desc.partitions), "replication_factor": len(desc.partitions[0].replicas),
            "configs": configs}


def acls_of(kafka: Kafka, principal: str) -> set[tuple]:
    f = ck_admin.AclBindingFilter(ck_admin.ResourceType.ANY, None, ck_admin.ResourcePatternType.ANY, principal, None,
                                  ck_admin.AclOperation.ANY, ck_admin.AclPermissionType.ANY)
    return {(b.restype.name, b.name, b.resource_pattern_type.name, b.operation.name, b.permission_type.name)
            for b in kafka.admin().describe_acls(f, request_timeout=10).result(15)}


def scram_of(kafka: Kafka, user: str) -> dict:
    try:
        desc = kafka.admin().describe_user_scram_credentials([user], request_timeout=10)[user].result(15)
    except confluent_kafka.KafkaException:
        return {}
    return {i.mechanism.name: i.iterations for i in desc.scram_credential_infos}


def produce(kafka: Kafka, user: str, password: str, topic: str, timeout: float = 10):
    """None when the message is delivered, else the error (delivery error or authentication failure)."""
    errors, delivered = [], []
    producer = confluent_kafka.Producer({**client_conf(kafka.bootstrap, user, password),
                                         "message.timeout.ms": int(timeout * 1000), "error_cb": errors.append})
    producer.produce(topic, b"hello", on_delivery=lambda err, msg: delivered.append(err))
    deadline = time.monotonic() + timeout
    auth = confluent_kafka.KafkaError._AUTHENTICATION
    while time.monotonic() < deadline and not delivered:
        producer.poll(0.2)
        if any(e.code() == auth for e in errors):
            break
    producer.purge()
    producer.flush(0)
    if delivered and delivered[0] is None:
        return None
    failure = next((e for e in errors if e.code() == auth), None) or (delivered[0] if delivered else "timed out")
    return str(failure)


def eventually(fn, expect, timeout: float = 15):
    """Metadata (credentials, ACLs) reaches the authorizer asynchronously: retry until ``expect(result)``."""
    deadline = time.monotonic() + timeout
    while True:
        result = fn()
        if expect(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


# --------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------


APPLY = {
    "topic": {"metal.kafka.kafka_topic": {"name": "orders", "partitions": 3, "replication_factor": 1,
                                          "configs": {"retention.ms": 3600000, "cleanup.policy": "delete",
                                                      "max.message.bytes": None}}},
    "alice": {"metal.kafka.kafka_scram_user": {"name": "alice", "password": ALICE_PW}},
    "bob": {"metal.kafka.kafka_scram_user": {"name": "bob", "password": BOB_PW, "mechanism": "SCRAM-SHA-512",
                                             "iterations": 4096}},
    "acls": {"metal.kafka.kafka_acl": {"acls": [
        {"principal": "User:alice", "operation": "write", "resource_type": "topic", "resource_name": "orders"},
        {"principal": "User:alice", "operation": "read", "resource_type": "group", "resource_name": "app.",
         "pattern_type": "prefixed"},
    ]}},
}


@pytest.fixture(scope="module")
def applied(kafka, tmp_path_factory):
    return play(kafka, tmp_path_factory.mktemp("apply"), APPLY)


def test_apply_creates_topic_users_and_acls(kafka, applied):
    assert applied.rc == 0, applied.out[-4000:]
    assert applied["topic"]["changed"] and applied["alice"]["changed"] and applied["acls"]["changed"]
    state = topic_state(kafka, "orders")
    assert (state["partitions"], state["replication_factor"]) == (3, 1)
    assert state["configs"]["retention.ms"] == "3600000" and state["configs"]["cleanup.policy"] == "delete"
    assert applied["topic"]["topic"]["configs"] == {"cleanup.policy": "delete", "retention.ms": "3600000"}
    assert scram_of(kafka, "alice") == {"SCRAM_SHA_512": 8192}
    assert scram_of(kafka, "bob") == {"SCRAM_SHA_512": 4096}
    assert acls_of(kafka, "User:alice") == {("TOPIC", "orders", "LITERAL", "WRITE", "ALLOW"),
                                            ("GROUP", "app.", "PREFIXED", "READ", "ALLOW")}
    assert acls_of(kafka, "User:bob") == set()


def test_second_run_changes_nothing(kafka, applied, tmp_path):
    again = play(kafka, tmp_path, APPLY)
    assert again.rc == 0, again.out[-4000:]
    assert again.changed == [], again.out[-4000:]
    assert "on_create" in again["alice"]["note"]
    assert "[WARNING]" not in again.out, again.out[-4000:]


def test_scram_user_authenticates_and_wrong_password_is_rejected(kafka, applied):
    ok = eventually(lambda: produce(kafka, "alice", ALICE_PW, "orders"), lambda r: r is None)
    assert ok is None, ok
    wrong = produce(kafka, "alice", ALICE_PW + "x", "orders")
    assert wrong is not None and "Authentication failed" in wrong, wrong


def test_user_without_acl_is_denied_until_kafka_acl_grants_write(kafka, applied, tmp_path):
    denied = eventually(lambda: produce(kafka, "bob", BOB_PW, "orders"), lambda r: r and "AUTHORIZATION" in r)
    assert denied and "TOPIC_AUTHORIZATION_FAILED" in denied, denied
    grant = play(kafka, tmp_path, {"grant": {"metal.kafka.kafka_acl": {
        "principal": "User:bob", "operation": "write", "resource_type": "topic", "resource_name": "orders"}}})
    assert grant.rc == 0 and grant["grant"]["changed"], grant.out[-4000:]
    ok = eventually(lambda: produce(kafka, "bob", BOB_PW, "orders"), lambda r: r is None)
    assert ok is None, ok


def test_partitions_grow_and_shrinking_is_refused(kafka, applied, tmp_path):
    result = play(kafka, tmp_path, {
        "grow": {"metal.kafka.kafka_topic": {"name": "orders", "partitions": 6}},
        "shrink": {"metal.kafka.kafka_topic": {"name": "orders", "partitions": 2}, "_fail": True},
        "rf": {"metal.kafka.kafka_topic": {"name": "orders", "replication_factor": 3}, "_fail": True},
    })
    assert result["grow"]["changed"] and result["grow"]["diff"]["before"]["partitions"] == 3
    assert result["shrink"]["failed"]
    assert "topic orders has 6 partitions; Kafka cannot reduce partitions; recreate the topic or keep 6" in \
        result["shrink"]["msg"]
    assert result["rf"]["failed"] and "reassignment" in result["rf"]["msg"]
    assert topic_state(kafka, "orders")["partitions"] == 6


def test_check_mode_changes_nothing(kafka, applied, tmp_path):
    before = (topic_state(kafka, "orders"), acls_of(kafka, "User:alice"), acls_of(kafka, "User:carol"),
              scram_of(kafka, "alice"), scram_of(kafka, "carol"))
    dry = play(kafka, tmp_path, {
        "grow": {"metal.kafka.kafka_topic": {"name": "orders", "partitions": 12, "configs": {"retention.ms": "1000"}}},
        "new_topic": {"metal.kafka.kafka_topic": {"name": "never-created", "partitions": 1}},
        "revoke": {"metal.kafka.kafka_acl": {"principal": "User:alice", "operation": "write", "resource_type": "topic",
                                             "resource_name": "orders", "state": "absent"}},
        "grant": {"metal.kafka.kafka_acl": {"principal": "User:carol", "operation": "all", "resource_type": "cluster"}},
        "carol": {"metal.kafka.kafka_scram_user": {"name": "carol", "password": ALICE_PW}},
        "rotate": {"metal.kafka.kafka_scram_user": {"name": "alice", "password": BOB_PW, "update_password": "always"}},
    }, check=True)
    assert dry.rc == 0, dry.out[-4000:]
    assert all(dry[t]["changed"] for t in ("grow", "new_topic", "revoke", "grant", "carol", "rotate"))
    assert dry["grow"]["diff"]["after"]["configs"] == {"retention.ms": "1000"}
    assert "--- before" in dry.out and "retention.ms" in dry.out  # --diff shows the change
    assert topic_state(kafka, "never-created") is None
    after = (topic_state(kafka, "orders"), acls_of(kafka, "User:alice"), acls_of(kafka, "User:carol"),
             scram_of(kafka, "alice"), scram_of(kafka, "carol"))
    assert after == before
    assert produce(kafka, "alice", ALICE_PW, "orders") is None, "alice's password was not rotated"


def test_absent_removes_and_then_changes_nothing(kafka, applied, tmp_path):
    tasks = {
        "topic": {"metal.kafka.kafka_topic": {"name": "scratch", "partitions": 1}},
        "drop_topic": {"metal.kafka.kafka_topic": {"name": "scratch", "state": "absent"}},
        "drop_acl": {"metal.kafka.kafka_acl": {"principal": "User:alice", "operation": "read", "resource_type": "group",
                                               "resource_name": "app.", "pattern_type": "prefixed",
                                               "state": "absent"}},
        "drop_bob": {"metal.kafka.kafka_scram_user": {"name": "bob", "state": "absent"}},
    }
    first = play(kafka, tmp_path, tasks)
    assert first.rc == 0, first.out[-4000:]
    assert all(first[t]["changed"] for t in tasks)
    assert eventually(lambda: topic_state(kafka, "scratch"), lambda s: s is None) is None
    assert ("GROUP", "app.", "PREFIXED", "READ", "ALLOW") not in acls_of(kafka, "User:alice")
    assert scram_of(kafka, "bob") == {}
    rejected = eventually(lambda: produce(kafka, "bob", BOB_PW, "orders"), lambda r: r and "Authentication" in r)
    assert rejected and "Authentication failed" in rejected, rejected
    second = play(kafka, tmp_path, {k: v for k, v in tasks.items() if k != "topic"})
    assert second.rc == 0 and second.changed == [], second.out[-4000:]
