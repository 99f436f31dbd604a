"""Listener security settings: validation, the settings/credentials split, SCRAM bootstrap values."""

import base64
import hashlib

import pytest
from ansible_collections.metal.kafka.plugins.module_utils import security
from ansible_collections.metal.kafka.plugins.module_utils.properties import render

SECRET = "s3cret-Admin-Passw0rd"
CRED = "/etc/kafka/credentials.properties"


def errors(**over):
    args = dict(default_protocol="SASL_SSL", overrides={}, mode="kraft", sasl_mechanism="SCRAM-SHA-512",
                client_mechanisms=["SCRAM-SHA-512"], admin_user="admin", admin_password_length=len(SECRET),
                client_auth="none", super_users=[])
    args.update(over)
    return security.security_errors(**args)


def node(roles, mode="kraft", protocol="SASL_SSL", **over):
    args = dict(roles=roles, mode=mode, protocols=security.listener_protocols(protocol, {}, mode),
                sasl_mechanism="SCRAM-SHA-512", client_mechanisms=["SCRAM-SHA-512"], admin_user="admin",
                admin_password=SECRET, super_users=["User:ops"], tls_dir="/etc/kafka/tls", credentials_file=CRED,
                keystore_password="ks-pass-123")
    args.update(over)
    return security.node_security(**args)


def test_secure_defaults_are_valid():
    assert errors() == []


@pytest.mark.parametrize("over, fragment", [
    (dict(admin_password_length=0), "kafka_admin_password is empty"),
    (dict(admin_password_length=5), "shorter than 12"),
    (dict(default_protocol="TLS"), "kafka_security_protocol is 'TLS'"),
    (dict(overrides={"clients": "SSL"}), "unknown listener 'clients'"),
    (dict(overrides={"internal": "SSL"}), "internal listener cannot use SSL without SASL"),
    (dict(overrides={"controller": "PLAINTEXT"}), "both use SASL or both not"),
    (dict(client_mechanisms=["GSSAPI"]), "kafka_sasl_client_mechanisms has 'GSSAPI'"),
    (dict(client_auth="required", overrides={"client": "SASL_PLAINTEXT"}), "use SSL or SASL_SSL"),
    (dict(super_users=["ops"]), "kafka_super_users must be a list of principals"),
    (dict(admin_user="ad min"), "kafka_admin_user must be a plain user name"),
])
def test_bad_settings_are_named_with_the_fix(over, fragment):
    found = errors(**over)
    assert any(fragment in e for e in found), found


def test_plaintext_needs_no_password():
    assert errors(default_protocol="PLAINTEXT", admin_password_length=0) == []


def test_zookeeper_mode_has_no_controller_listener():
    assert errors(mode="zookeeper", overrides={"controller": "SASL_SSL"})[0].startswith(
        "kafka_listener_protocols has unknown listener 'controller'")
    settings, _ = node(["broker"], mode="zookeeper")
    assert settings["listener.security.protocol.map"] == "CLIENT:SASL_SSL,INTERNAL:SASL_SSL"
    assert settings["authorizer.class.name"] == security.ZOOKEEPER_AUTHORIZER
    assert "sasl.mechanism.controller.protocol" not in settings


def test_settings_name_no_secret_and_credentials_hold_them():
    for roles in (["broker"], ["controller"], ["broker", "controller"]):
        settings, credentials = node(roles)
        text = render(settings)
        assert SECRET not in text and "ks-pass-123" not in text
        assert "${file:" + CRED + ":" in text
        assert any(SECRET in v for v in credentials.values())
        assert settings["super.users"] == "User:admin;User:ops"
        assert settings["allow.everyone.if.no.acl.found"] == "false"
        assert settings["authorizer.class.name"] == security.KRAFT_AUTHORIZER
        assert settings["sasl.mechanism.controller.protocol"] == "PLAIN"


def test_broker_settings():
    settings, credentials = node(["broker"])
    assert settings["listener.security.protocol.map"] == "CLIENT:SASL_SSL,INTERNAL:SASL_SSL,CONTROLLER:SASL_SSL"
    assert settings["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    assert settings["listener.name.client.scram-sha-512.sasl.jaas.config"].endswith("ScramLoginModule required;")
    assert settings["ssl.keystore.type"] == "PEM" and settings["ssl.truststore.type"] == "PEM"
    assert settings["ssl.endpoint.identification.algorithm"] == "https"
    assert credentials["internal.jaas"] == (
        f'org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="{SECRET}";')
    # a broker only logs in to the controllers; it holds no PLAIN user table
    assert "user_admin" not in credentials["controller.jaas"]


def test_controller_holds_the_plain_user_table():
    settings, credentials = node(["controller"])
    assert settings["listener.security.protocol.map"] == "CONTROLLER:SASL_SSL"
    assert f'user_admin="{SECRET}"' in credentials["controller.jaas"]
    assert "internal.jaas" not in credentials


def test_plaintext_cluster_has_no_security_settings():
    settings, credentials = node(["broker", "controller"], protocol="PLAINTEXT")
    assert credentials == {}
    assert settings == {"listener.security.protocol.map": "CLIENT:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT"}


def test_mutual_tls_for_clients():
    settings, _ = node(["broker"], client_auth="required", principal_mapping_rules="RULE:^CN=(.*?),.*$/$1/L")
    assert settings["listener.name.client.ssl.client.auth"] == "required"
    assert settings["ssl.principal.mapping.rules"] == "RULE:^CN=(.*?),.*$/$1/L"


def test_jaas_quotes_special_characters():
    line = security.jaas("SCRAM-SHA-512", 'ad"min', 'pa\\ss"word')
    assert 'username="ad\\"min"' in line and 'password="pa\\\\ss\\"word"' in line


def test_plain_client_mechanism_only_knows_the_admin():
    settings, credentials = node(["broker"], client_mechanisms=["SCRAM-SHA-512", "PLAIN"])
    assert settings["listener.name.client.sasl.enabled.mechanisms"] == "SCRAM-SHA-512,PLAIN"
    assert settings["listener.name.client.plain.sasl.jaas.config"].startswith("${file:")
    assert f'user_admin="{SECRET}"' in credentials["client.plain.jaas"]


def test_storage_scram_argument_carries_the_salted_password():
    salt = bytes(range(32))
    arg = security.storage_scram_argument("SCRAM-SHA-512", "admin", SECRET, 8192, salt)
    expected = hashlib.pbkdf2_hmac("sha512", SECRET.encode(), salt, 8192)
    assert arg == (f'SCRAM-SHA-512=[name=admin,salt="{base64.b64encode(salt).decode()}",'
                   f'saltedpassword="{base64.b64encode(expected).decode()}",iterations=8192]')
    assert SECRET not in arg
    with pytest.raises(ValueError, match="4096"):
        security.storage_scram_argument("SCRAM-SHA-512", "admin", SECRET, 1000, salt)
    with pytest.raises(ValueError, match="must not contain"):
        security.storage_scram_argument("SCRAM-SHA-512", "a,b", SECRET, 8192, salt)


def test_client_config():
    conf = security.client_config(protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", username="admin",
                                  password=SECRET, ca_file="/ca.crt")
    assert conf == {"security.protocol": "sasl_ssl", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "admin",
                    "sasl.password": SECRET, "ssl.ca.location": "/ca.crt",
                    "ssl.endpoint.identification.algorithm": "https"}
