"""The demo's settings and client files (kafka_metal/demo.py), without a cluster."""

import stat
import tarfile

from kafka_metal.demo import Demo


def test_secured_by_default_with_a_user_a_topic_and_its_acls(tmp_path):
    d = Demo(tmp_path / "demo", brokers=3)
    v = d.variables()
    assert v["kafka_security_protocol"] == "SASL_SSL" and len(v["kafka_admin_password"]) >= 24
    assert v["kafka_users"][0]["name"] == "demo-client" and v["kafka_users"][0]["password"]
    assert v["kafka_topics"] == [{"name": "demo", "partitions": 6, "replication_factor": 3,
                                  "configs": {"min.insync.replicas": "2"}}]
    ops = sorted(a["operation"] for a in v["kafka_acls"] if a["resource_type"] == "topic")
    assert ops == ["describe", "read", "write"]
    assert any(a["resource_type"] == "group" and a["pattern_type"] == "prefixed" for a in v["kafka_acls"])


def test_passwords_are_made_once_and_kept_private(tmp_path):
    first = Demo(tmp_path / "demo").variables()["kafka_admin_password"]
    again = Demo(tmp_path / "demo").variables()["kafka_admin_password"]
    assert first == again
    path = Demo(tmp_path / "demo").write_vars()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "demo" / "passwords.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "demo").stat().st_mode) == 0o700


def test_plaintext_has_no_secrets(tmp_path):
    d = Demo(tmp_path / "demo", secured=False, brokers=1)
    v = d.variables()
    assert v["kafka_security_protocol"] == "PLAINTEXT" and "kafka_admin_password" not in v
    assert v["kafka_topics"][0]["replication_factor"] == 1
    assert v["kafka_topics"][0]["configs"]["min.insync.replicas"] == "1"
    assert d.admin_client_settings() == {}
    assert not (tmp_path / "demo" / "passwords.json").exists()


def test_client_configuration_and_instructions_name_files_never_passwords(tmp_path):
    stage = tmp_path / "stage" / "kafka_2.13-4.1.1" / "bin"
    stage.mkdir(parents=True)
    for tool in ("kafka-console-producer.sh", "kafka-console-consumer.sh"):
        (stage / tool).write_text("#!/bin/sh\n")
    archive = tmp_path / "kafka_2.13-4.1.1.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "stage" / "kafka_2.13-4.1.1", arcname="kafka_2.13-4.1.1")
    d = Demo(tmp_path / "demo")
    text = d.client_instructions("10.0.0.1:9092,10.0.0.2:9092", archive)
    password = d.variables()["kafka_users"][0]["password"]
    assert password not in text and d.variables()["kafka_admin_password"] not in text
    assert "kafka-console-producer.sh --bootstrap-server 10.0.0.1:9092,10.0.0.2:9092 --topic demo" in text
    assert "--group demo-console --from-beginning --consumer.config" in text
    props = (tmp_path / "demo" / "client.properties").read_text()
    assert "security.protocol=SASL_SSL" in props and f'password="{password}";' in props
    assert f"ssl.truststore.location={tmp_path / 'demo' / 'pki' / 'ca.crt'}" in props
    assert stat.S_IMODE((tmp_path / "demo" / "client.properties").stat().st_mode) == 0o600
    assert (tmp_path / "demo" / "kafka_2.13-4.1.1" / "bin" / "kafka-console-producer.sh").exists()
