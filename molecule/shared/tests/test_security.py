"""Secured clusters: TLS with hostname verification, SCRAM, ACLs, file modes, and no secret in any output.

Runs in every scenario whose client listener is not PLAINTEXT (`secure`, `zookeeper`); the users
and ACL checks need the users the `secure` scenario declares, the output check needs its -vvv log.
"""

import json
import os
import pathlib
import re
import socket
import ssl
import subprocess
import tempfile
import uuid

import pytest
from ansible_collections.metal.kafka.plugins.module_utils import backup as bk
from ansible_collections.metal.kafka.plugins.module_utils import backup_kafka, wire

pytestmark = pytest.mark.usefixtures("secure_only")


def users(cluster):
    return {u["name"]: u["password"] for u in cluster["var"](cluster["brokers"][0], "kafka_users", []) or []}


@pytest.fixture
def with_users(cluster):
    if not {"app", "outsider"} <= set(users(cluster)):
        pytest.skip("this scenario declares no application users")


def conf_for(cluster, user, password):
    sec = cluster["security"]
    return {"security.protocol": sec["protocol"].lower(), "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": user, "sasl.password": password, "ssl.ca.location": sec["ca_file"],
            "ssl.endpoint.identification.algorithm": "https"}


def produce(bootstrap, conf, topic, count=50, timeout=30):
    """Return (acknowledged, errors)."""
    from confluent_kafka import Producer

    errors, acked = [], []
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "message.timeout.ms": timeout * 1000,
                         "error_cb": lambda e: errors.append(e), **conf})

    def done(err, msg):
        (errors if err else acked).append(err or msg.offset())
    run = uuid.uuid4().hex
    for i in range(count):
        producer.produce(topic, key=f"{run}-{i}".encode(), value=f"value-{i}".encode(), on_delivery=done)
    producer.flush(timeout + 5)
    return acked, errors, run


def consume(bootstrap, conf, topic, group, run, want, timeout=30):
    """Return (values of this run, errors)."""
    import time

    from confluent_kafka import Consumer

    errors, got = [], []
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                         "error_cb": lambda e: errors.append(e), **conf})
    consumer.subscribe([topic])
    deadline = time.monotonic() + timeout
    try:
        while len(got) < want and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                errors.append(msg.error())
                if not msg.error().retriable():
                    break
                continue
            if msg.key().decode().startswith(run):
                got.append(msg.value())
    finally:
        consumer.close()
    return got, errors


def test_authorized_user_produces_and_consumes_with_hostname_verification(cluster, bootstrap, with_users):
    conf = conf_for(cluster, "app", users(cluster)["app"])
    acked, errors, run = produce(bootstrap, conf, "orders", count=200)
    assert len(acked) == 200 and not errors, errors[:3]
    got, errors = consume(bootstrap, conf, "orders", f"app-{run}", run, 200)
    assert len(got) == 200, errors[:3]


def test_wrong_password_is_rejected(cluster, bootstrap, client_conf):
    from confluent_kafka.admin import AdminClient

    errors = []
    admin = AdminClient({"bootstrap.servers": bootstrap, **client_conf, "sasl.password": "not-the-password-at-all",
                         "error_cb": lambda e: errors.append(e)})
    from confluent_kafka import KafkaException

    with pytest.raises(KafkaException) as refused:
        admin.list_topics(timeout=10)
    admin.poll(1)  # serve the error callback
    reported = [e.str() for e in errors] + [str(refused.value)]
    assert any("Authentication failed" in r or "AUTHENTICATION" in r for r in reported), reported
    address = cluster["address"][cluster["brokers"][0]]
    sec = cluster["security"]
    with pytest.raises(wire.AuthenticationError):
        wire.metadata(address, 9092, security=wire.Security(sec["protocol"], sec["ca_file"], address,
                                                             sec["mechanism"], sec["user"], "wrong-password-123"))


@pytest.mark.parametrize("role, port", [("broker", 9092), ("broker", 9091), ("controller", 9093)])
def test_plaintext_connection_is_refused(cluster, role, port):
    hosts = cluster["brokers"] if role == "broker" else (cluster["controllers"] if cluster["mode"] == "kraft" else [])
    if not hosts:
        pytest.skip("no such listener in this mode")
    address = cluster["address"][hosts[0]]
    with pytest.raises((OSError, wire.ProbeError)):
        wire.api_versions(address, port, timeout=5.0)


def test_certificates_carry_the_host_names_and_are_verified(cluster):
    """Each node presents a certificate from the cluster CA naming it; another name fails verification."""
    ca = cluster["security"]["ca_file"]
    for h in cluster["kafka_hosts"]:
        port = 9092 if h in cluster["brokers"] else 9093
        address = cluster["address"][h]
        context = ssl.create_default_context(cafile=ca)
        with socket.create_connection((address, port), timeout=5) as raw, \
                context.wrap_socket(raw, server_hostname=address) as tls:
            cert = tls.getpeercert()
        sans = {v for _k, v in cert["subjectAltName"]}
        assert h in sans and address in sans, (h, sans)
        with socket.create_connection((address, port), timeout=5) as raw, pytest.raises(ssl.SSLCertVerificationError):
            context.wrap_socket(raw, server_hostname="not-this-host.example")


def test_secret_files_are_private_and_server_properties_holds_no_secret(cluster):
    password = cluster["security"]["password"]
    for h in cluster["kafka_hosts"]:
        host = cluster["testinfra"][h]
        conf_dir, tls_dir = cluster["config_dir"][h], cluster["tls_dir"][h]
        for path, owner, mode in ((f"{tls_dir}/truststore.pem", "kafka", 0o600),
                                  (f"{conf_dir}/credentials.properties", "kafka", 0o600),
                                  (f"{conf_dir}/admin.properties", "root", 0o600),
                                  (tls_dir, "root", 0o750)):
            f = host.file(path)
            assert f.exists and f.user == owner and f.mode == mode, (h, path, f.user, oct(f.mode))
        f = host.file(f"{tls_dir}/keystore.pem")
        assert f.exists and f.user == "kafka" and f.mode == 0o600
        conf = host.file(f"{conf_dir}/server.properties").content_string
        assert password not in conf and f"${{file:{conf_dir}/credentials.properties:" in conf
        assert "allow.everyone.if.no.acl.found=false" in conf
        assert host.file(f"{conf_dir}/credentials.properties").contains("password")


def _apply_acls(inventory, acls):
    """Run the inventory's state play with only these ACL bindings (the module never touches others)."""
    project = os.environ["MOLECULE_PROJECT_DIRECTORY"]
    extra = json.dumps({"kafka_acls": acls, "kafka_users": [], "kafka_topics": []})
    proc = subprocess.run(["ansible-playbook", "-i", inventory, f"{project}/playbooks/kafka_state.yml", "-e", extra],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return proc.stdout


def test_user_without_acl_is_denied_until_kafka_acl_grants_it(cluster, bootstrap, inventory, with_users):
    conf = conf_for(cluster, "outsider", users(cluster)["outsider"])
    acked, errors, run = produce(bootstrap, conf, "orders", count=5, timeout=15)
    assert not acked and any("authoriz" in str(e).lower() for e in errors), errors[:3]
    got, errors = consume(bootstrap, conf, "orders", f"outsider-{run}", run, 1, timeout=15)
    assert not got and any("authoriz" in str(e).lower() for e in errors), errors[:3]

    grant = [{"principal": "User:outsider", "operation": op, "resource_type": "topic", "resource_name": "orders"}
             for op in ("write", "describe")]
    _apply_acls(inventory, grant)
    acked, errors, run = produce(bootstrap, conf, "orders", count=5)
    assert len(acked) == 5, errors[:3]
    _apply_acls(inventory, [dict(b, state="absent") for b in grant])
    acked, errors, run = produce(bootstrap, conf, "orders", count=5, timeout=15)
    assert not acked, "revoking the ACL must deny again"


def _secrets(cluster):
    """Every secret the playbooks handled: vault values, generated key passwords, private key material."""
    var, first = cluster["var"], cluster["brokers"][0]
    found = {"admin password": cluster["security"]["password"]}
    passphrase = var(first, "kafka_tls_ca_passphrase", "")
    if passphrase:
        found["CA passphrase"] = passphrase
    for name, pw in users(cluster).items():
        found[f"password of {name}"] = pw
    pki = pathlib.Path(cluster["security"]["ca_dir"])
    for path in [pki / "ca.key", *pki.glob("hosts/*/keystore.pem"), *pki.glob("hosts/*/key-password")]:
        text = path.read_text()
        if path.name == "key-password":
            found[str(path)] = text.strip()
            continue
        body = re.search(r"-----BEGIN [A-Z ]*PRIVATE KEY-----\n(.*?)-----END", text, re.S).group(1)
        for i, line in enumerate(body.split()):
            if len(line) >= 24:
                found[f"{path} key line {i}"] = line
    return {k: v for k, v in found.items() if v}


def _assert_clean(text, secrets):
    leaks = [name for name, value in secrets.items() if value in text]
    assert not leaks, f"secrets in playbook output: {leaks}"


def test_no_secret_in_verbose_diff_output_of_the_converge(cluster):
    """Molecule ran create, check, converge and idempotence at -vvv with --diff into this log."""
    if os.environ.get("MOLECULE_SCENARIO_NAME") != "secure":
        pytest.skip("the secure scenario logs its playbooks at -vvv")
    log = pathlib.Path(os.environ["ANSIBLE_LOG_PATH"])
    text = log.read_text(errors="replace")
    # the log really is verbose and with diffs, and covers the converge of secret-bearing tasks
    assert "ESTABLISH SSH CONNECTION" in text and "--- before" in text
    # the node's files, secrets among them, were written by the kafka_node module in this log: its arguments
    # carried the key store and the credentials file (masked), and its result names them
    assert "Configure the node, format its storage and start it" in text
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in text
    assert re.search(r"path\W+/etc/kafka/tls/keystore\.pem", text) and re.search(
        r"path\W+/etc/kafka/credentials\.properties", text)
    assert "SCRAM users" in text
    _assert_clean(text, _secrets(cluster))


def test_no_secret_in_failure_output(cluster, inventory):
    """A failing run at -vvv (the admin API refuses a wrong password) prints no secret either."""
    project = os.environ["MOLECULE_PROJECT_DIRECTORY"]
    wrong = "Wrong-Admin-Password-" + uuid.uuid4().hex
    with tempfile.NamedTemporaryFile("w", suffix=".json") as extra:
        json.dump({"kafka_admin_password": wrong, "kafka_topics": [{"name": "orders", "partitions": 6}],
                   "kafka_users": [], "kafka_acls": []}, extra)
        extra.flush()
        proc = subprocess.run(["ansible-playbook", "-vvv", "--diff", "-i", inventory,
                               f"{project}/playbooks/kafka_state.yml", "-e", f"@{extra.name}"],
                              capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Authentication failed" in out, out[-3000:]
    secrets = dict(_secrets(cluster), **{"wrong admin password": wrong})
    _assert_clean(out, secrets)


def test_backup_playbook_keeps_each_node_without_a_secret_and_a_second_run_changes_nothing(cluster, inventory):
    """playbooks/backup.yml: records and metadata, then each node's files with keys dropped and secrets
    redacted; a second run within kafka_backup_max_age changes nothing; the backup verifies."""
    if os.environ.get("MOLECULE_SCENARIO_NAME") != "secure":
        pytest.skip("the secure scenario declares the users and topics this backup is checked against")
    project = os.environ["MOLECULE_PROJECT_DIRECTORY"]
    secrets = _secrets(cluster)
    with tempfile.TemporaryDirectory() as root:
        runs = []
        for _ in range(2):
            proc = subprocess.run(["ansible-playbook", "-vvv", "--diff", "-i", inventory,
                                   f"{project}/playbooks/backup.yml", "-e", f"kafka_backup_dir={root}"],
                                  capture_output=True, text=True, timeout=900)
            out = proc.stdout + proc.stderr
            assert proc.returncode == 0, out[-4000:]
            _assert_clean(out, secrets)
            runs.append(out)
        recap = runs[1][runs[1].rindex("PLAY RECAP"):]
        changed = re.findall(r"(\S+)\s*:.*?changed=(\d+)", recap)
        assert changed and all(n == "0" for _, n in changed), recap

        backups = bk.list_backups(root)
        assert len(backups) == 1 and backups[0]["status"] == "complete", backups
        info = backups[0]
        assert "orders" in info["topics"] and set(info["users"]) >= {"admin", "app", "outsider"}
        _, problems, _ = backup_kafka.verify(root, info["id"])
        assert not problems, problems

        nodes = pathlib.Path(root, info["id"], "nodes")
        assert sorted(p.name for p in nodes.iterdir()) == sorted(cluster["kafka_hosts"])
        for host in cluster["kafka_hosts"]:
            base = nodes / host
            conf_dir = cluster["config_dir"][host].lstrip("/")
            tls_dir = cluster["tls_dir"][host].lstrip("/")
            server = (base / conf_dir / "server.properties").read_text()
            assert "process.roles=" in server and f"${{file:/{conf_dir}/credentials.properties:" in server
            assert not (base / conf_dir / "credentials.properties").exists()
            assert not (base / conf_dir / "admin.properties").exists()
            keystore = (base / tls_dir / "keystore.pem").read_text()
            assert "BEGIN CERTIFICATE" in keystore and "PRIVATE KEY-----\n" not in keystore
            assert "BEGIN CERTIFICATE" in (base / tls_dir / "truststore.pem").read_text()
            metas = [p.read_text() for p in base.rglob("meta.properties")]
            assert metas and all("cluster.id=" in m for m in metas)
        for path in pathlib.Path(root).rglob("*"):
            mode = path.stat().st_mode & 0o777
            assert mode == (0o700 if path.is_dir() else 0o600), f"{path} has mode {oct(mode)}"
            if path.is_file() and not path.name.endswith(".gz"):
                _assert_clean(path.read_text(errors="replace"), secrets)
