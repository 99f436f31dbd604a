"""kafka-metal's own security settings, run by a real Kafka: mutual TLS for clients, SCRAM between brokers.

A single combined node on 127.0.0.1 gets exactly the settings the roles write: ``kraft_properties``
merged with ``node_security`` (client listener SSL with client certificates required and a
principal mapping rule; internal and controller listeners SASL_SSL), secrets in a credentials file
read by Kafka's FileConfigProvider, certificates from ``pki.ensure_host``, and the admin SCRAM
credential bootstrapped through an argument file with the salted password, as ``kafka_storage``
does. Readiness is the roles' own probe (``wire`` over TLS with SCRAM). Then: a client certificate
maps to its principal, which is denied until an ACL allows it; a client without a certificate is
refused; a certificate from another CA is refused.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tarfile
import time
import uuid
from pathlib import Path

import pytest
from ansible_collections.metal.kafka.plugins.module_utils import cluster, pki, security, wire
from ansible_collections.metal.kafka.plugins.module_utils.properties import render
from kafka_metal import dist

confluent_kafka = pytest.importorskip("confluent_kafka")

VERSION = "4.1.1"
JAVA_HOME = os.environ.get("KAFKA_METAL_JAVA_HOME", "/usr/lib/jvm/java-17-openjdk-amd64")
ADMIN_PW = "admin-" + uuid.uuid4().hex
# a real Kafka from the distribution `kafka-metal dist build` assembles from Maven Central
pytestmark = [pytest.mark.skipif(not (Path(JAVA_HOME) / "bin" / "java").exists(), reason=f"no Java in {JAVA_HOME}"),
              pytest.mark.maven]


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def archive():
    path = dist.default_out_dir() / f"{dist.dist_name(VERSION)}.tgz"
    if not path.is_file():
        if not shutil.which("mvn"):
            pytest.skip(f"{path} is missing and Maven is not installed to build it")
        dist.build(VERSION, out_dir=dist.default_out_dir())
    return path


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    work = tmp_path_factory.mktemp("secure-node")
    with tarfile.open(archive()) as tar:
        tar.extractall(work, filter="data")
    home = work / dist.dist_name(VERSION)
    pki_dir = work / "pki"
    server = pki.ensure_host(str(pki_dir), "node1", ["localhost"], ["127.0.0.1"])
    client_port, internal_port, controller_port = free_ports(3)
    roles = ["broker", "controller"]
    protocols = {"client": "SSL", "internal": "SASL_SSL", "controller": "SASL_SSL"}
    credentials_file = str(work / "credentials.properties")
    tls_dir = work / "tls"
    tls_dir.mkdir()
    shutil.copy(server.keystore, tls_dir / "keystore.pem")
    shutil.copy(server.truststore, tls_dir / "truststore.pem")
    settings = cluster.kraft_properties(
        roles=roles, node_id=1, voters=f"1@localhost:{controller_port}", advertised_host="localhost",
        ports={"client": client_port, "internal": internal_port, "controller": controller_port},
        log_dirs=[str(work / "data")], metadata_dir=str(work / "meta"), broker_count=1, bind_address="127.0.0.1")
    extra, credentials = security.node_security(
        roles=roles, mode="kraft", protocols=protocols, sasl_mechanism="SCRAM-SHA-512",
        client_mechanisms=["SCRAM-SHA-512"], admin_user="admin", admin_password=ADMIN_PW, super_users=[],
        tls_dir=str(tls_dir), credentials_file=credentials_file, keystore_password=server.key_password,
        client_auth="required", principal_mapping_rules="RULE:^CN=([^,]+).*$/$1/L,DEFAULT")
    settings.update(extra)
    settings["group.initial.rebalance.delay.ms"] = "0"
    settings["share.coordinator.state.topic.replication.factor"] = "1"
    settings["share.coordinator.state.topic.min.isr"] = "1"
    config = work / "server.properties"
    config.write_text(render(settings))
    fd = os.open(credentials_file, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(render(credentials))
    assert ADMIN_PW not in config.read_text()

    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    env.update(LC_ALL="C", JAVA_HOME=JAVA_HOME, LOG_DIR=str(work / "logs"), KAFKA_HEAP_OPTS="-Xmx512m")
    argfile = work / "format.args"
    scram = security.storage_scram_argument("SCRAM-SHA-512", "admin", ADMIN_PW, 8192, os.urandom(32))
    argfile.write_text("".join(f"{a}\n" for a in ["format", "-t", cluster.generate_cluster_id(), "-c", str(config),
                                                   "--add-scram", scram]))
    subprocess.run([str(home / "bin" / "kafka-storage.sh"), f"@{argfile}"], check=True, env=env,
                   capture_output=True, timeout=120)
    with open(work / "server.out", "w") as out:
        proc = subprocess.Popen([str(home / "bin" / "kafka-server-start.sh"), str(config)], stdout=out,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
    probe = wire.Security("SASL_SSL", server.truststore, "localhost", "SCRAM-SHA-512", "admin", ADMIN_PW)
    deadline = time.monotonic() + 120
    try:
        while True:
            try:
                if 1 in [b["node_id"] for b in wire.metadata("127.0.0.1", internal_port, security=probe)["brokers"]]:
                    break
            except (OSError, wire.ProbeError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("Kafka did not become ready:\n" + (work / "server.out").read_text()[-3000:])
            time.sleep(1)
        yield {"work": work, "pki": pki_dir, "ca": server.truststore, "client": f"localhost:{client_port}",
               "internal": f"localhost:{internal_port}", "internal_port": internal_port, "probe": probe}
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def admin_conf(node):
    return {"bootstrap.servers": node["internal"], "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "admin", "sasl.password": ADMIN_PW, "ssl.ca.location": node["ca"]}


def cert_conf(node, name, pki_dir=None):
    issued = pki.ensure_host(str(pki_dir or node["pki"]), name, [name], [])
    return {"bootstrap.servers": node["client"], "security.protocol": "SSL", "ssl.ca.location": node["ca"],
            "ssl.certificate.location": issued.keystore, "ssl.key.location": issued.keystore,
            "ssl.key.password": issued.key_password, "ssl.endpoint.identification.algorithm": "https"}


def try_produce(conf, topic, timeout=15):
    errors, acked = [], []
    producer = confluent_kafka.Producer({**conf, "message.timeout.ms": timeout * 1000,
                                         "error_cb": lambda e: errors.append(e.str())})
    producer.produce(topic, b"v", on_delivery=lambda err, msg: (errors if err else acked).append(str(err or "ok")))
    producer.flush(timeout + 5)
    return acked, errors


def test_client_certificate_principal_needs_an_acl(node):
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        AdminClient,
        NewTopic,
        ResourcePatternType,
        ResourceType,
    )

    admin = AdminClient(admin_conf(node))
    admin.create_topics([NewTopic("payments", 1, 1)])["payments"].result(30)
    app = cert_conf(node, "billing-app")
    acked, errors = try_produce(app, "payments")
    assert not acked and any("authoriz" in e.lower() for e in errors), errors
    # the mapping rule turned CN=billing-app into the principal User:billing-app
    binding = AclBinding(ResourceType.TOPIC, "payments", ResourcePatternType.LITERAL, "User:billing-app", "*",
                         AclOperation.WRITE, AclPermissionType.ALLOW)
    admin.create_acls([binding])[binding].result(30)
    deadline = time.monotonic() + 30
    while True:
        acked, errors = try_produce(app, "payments")
        if acked or time.monotonic() > deadline:
            break
    assert acked, errors


def test_client_without_certificate_is_refused(node):
    conf = {"bootstrap.servers": node["client"], "security.protocol": "SSL", "ssl.ca.location": node["ca"]}
    acked, errors = try_produce(conf, "payments", timeout=10)
    assert not acked and errors


def test_certificate_from_another_ca_is_refused(node, tmp_path):
    conf = cert_conf(node, "billing-app", pki_dir=tmp_path / "other-ca")
    acked, errors = try_produce(conf, "payments", timeout=10)
    assert not acked and errors


def test_admin_password_reaches_kafka_only_through_the_credentials_file(node):
    work = node["work"]
    assert ADMIN_PW not in (work / "server.properties").read_text()
    assert ADMIN_PW in (work / "credentials.properties").read_text()
    assert (work / "credentials.properties").stat().st_mode & 0o777 == 0o600


def test_describe_quorum_through_a_broker_over_tls_and_scram(node):
    """The probe's DescribeQuorum (forwarded by the broker to the active controller) on a secured listener."""
    quorum = wire.describe_quorum("127.0.0.1", node["internal_port"], security=node["probe"])
    assert quorum["leader_id"] == 1 and quorum["leader_epoch"] >= 1
    assert [v["id"] for v in quorum["voters"]] == [1]
    assert quorum["voters"][0]["log_end_offset"] >= quorum["high_watermark"] > 0
