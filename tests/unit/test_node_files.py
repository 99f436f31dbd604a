"""node_files and the kafka_node_files module: a node's files come back for a backup with no secret left.

Every rule has a case here (secret names, continued values, JAAS options, PEM private keys, binary
keystores, never_read refusal, missing and too-large files), and the module runs twice as Ansible runs
it: in process (check mode, arguments, and a spy proving a refused file is never opened) and as a
subprocess with its JSON on stdout searched for every secret of the fixture.
"""

from __future__ import annotations

import base64
import builtins
import datetime
import hashlib
import importlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ansible.module_utils import basic
from ansible_collections.metal.kafka.plugins.module_utils import node_files
from ansible_collections.metal.kafka.plugins.module_utils.node_files import (
    REDACTED,
    NodeFilesError,
    is_secret_key,
    read_node_file,
    read_node_files,
    refused_paths,
    sanitize,
    sanitize_pem,
    sanitize_properties,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "plugins" / "modules" / "kafka_node_files.py"
KEY_PASSWORD = "Key-Store-Secret-7f3a"
ADMIN_PASSWORD = "Admin-Secret-Password-91c2"
TOKEN_SECRET = "Delegation-Token-Secret-55e1"
CREDENTIALS = f"ssl.key.password={KEY_PASSWORD}\ninternal.jaas=x password=\"{ADMIN_PASSWORD}\";\n"

SERVER_PROPERTIES = (
    "# Ansible managed: do not edit\r\n"
    "! a bang comment, with password=not-a-value-but-kept\n"
    "node.id=1\n"
    "process.roles = broker,controller\n"
    "ssl.keystore.type=PEM\n"
    "ssl.keystore.location=/etc/kafka/tls/keystore.pem\n"
    "ssl.truststore.type: PEM\n"
    "ssl.truststore.location /etc/kafka/tls/truststore.pem\n"
    "ssl.endpoint.identification.algorithm=https\n"
    f"ssl.key.password={KEY_PASSWORD}\n"
    "listener.name.internal.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule \\\n"
    "    required \\\n"
    "    username=\"admin\" \\\n"
    f"    password=\"{ADMIN_PASSWORD}\";\n"
    f"delegation.token.secret.key    {TOKEN_SECRET}\n"
    "\n"
    "log.dirs=/var/lib/kafka/data\n"
)


def decoded(entry):
    return base64.b64decode(entry["content_b64"]).decode()


# --- names -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [
    "password", "ssl.key.password", "ssl.keystore.password", "SSL.TRUSTSTORE.PASSWORD",
    "zookeeper.ssl.keystore.password", "sasl.jaas.config", "listener.name.internal.scram-sha-512.sasl.jaas.config",
    "KafkaClient.jaas.config",
    "ssl.keystore.key", "delegation.token.secret.key", "delegation.token.master.key", "password.encoder.secret",
    "password.encoder.old.secret", "sasl.oauthbearer.client.credentials.client.secret", "client.credential",
    "access.token", "keyStorePassword", "ssl.keystore.pass", "API_KEY", "apikey", "user_admin",
])
def test_secret_names(name):
    assert is_secret_key(name)


@pytest.mark.parametrize("name", [
    "ssl.keystore.location", "ssl.truststore.location", "ssl.keystore.type", "ssl.truststore.type",
    "ssl.endpoint.identification.algorithm", "ssl.keymanager.algorithm", "key.serializer", "key.deserializer",
    "password.encoder.keyfactory.algorithm", "password.encoder.key.length", "password.encoder.iterations",
    "delegation.token.expiry.time.ms", "config.providers.secrets.class", "ssl.keystore.certificate.chain",
    "ssl.truststore.certificates", "node.id", "cluster.id", "log.dirs", "keystore", "username", "super.users",
])
def test_harmless_names(name):
    assert not is_secret_key(name)


# --- properties --------------------------------------------------------------------------------------------


def test_properties_secret_values_redacted_other_lines_byte_for_byte():
    text, redacted, dropped = sanitize_properties(SERVER_PROPERTIES)
    assert redacted == ["ssl.key.password", "listener.name.internal.scram-sha-512.sasl.jaas.config",
                        "delegation.token.secret.key"]
    assert dropped == 0
    for secret in (KEY_PASSWORD, ADMIN_PASSWORD, TOKEN_SECRET, "username=", "required"):
        assert secret not in text
    assert text == (
        "# Ansible managed: do not edit\r\n"
        "! a bang comment, with password=not-a-value-but-kept\n"
        "node.id=1\n"
        "process.roles = broker,controller\n"
        "ssl.keystore.type=PEM\n"
        "ssl.keystore.location=/etc/kafka/tls/keystore.pem\n"
        "ssl.truststore.type: PEM\n"
        "ssl.truststore.location /etc/kafka/tls/truststore.pem\n"
        "ssl.endpoint.identification.algorithm=https\n"
        f"ssl.key.password={REDACTED}\n"
        f"listener.name.internal.scram-sha-512.sasl.jaas.config={REDACTED}\n"
        f"delegation.token.secret.key    {REDACTED}\n"
        "\n"
        "log.dirs=/var/lib/kafka/data\n"
    )


def test_text_without_secrets_is_unchanged():
    text = "#\n#Tue Nov 28 10:00:00 UTC 2026\nnode.id=4\ndirectory.id=abc\nversion=1\ncluster.id=Ab_cd-EF"
    assert sanitize_properties(text) == (text, [], 0)


def test_continued_secret_loses_every_continuation_line():
    text = (
        "a=1\n"
        "ssl.keystore.key=-----BEGIN ENCRYPTED PRIVATE KEY----- \\\n"
        "  MIIFHzBJBgkqhkiG9w0BBQ0wPDAbBgkqhkiG9w0BBQwwDgQI \\\r\n"
        "# not a comment: still the value \\\n"
        "  -----END ENCRYPTED PRIVATE KEY-----\n"
        "b=2 \\\n"
        "  3\n"
    )
    out, redacted, _ = sanitize_properties(text)
    assert out == f"a=1\nssl.keystore.key={REDACTED}\nb=2 \\\n  3\n"
    assert redacted == ["ssl.keystore.key"]


def test_continued_secret_at_end_of_file_and_split_name():
    out, redacted, _ = sanitize_properties("ssl.key.\\\n  password = first \\\n  second \\")
    assert out == f"ssl.key.password = {REDACTED}" and redacted == ["ssl.key.password"]


def test_even_backslashes_do_not_continue():
    out, redacted, _ = sanitize_properties("dir=C:\\\\kafka\\\\\nsasl.jaas.config=x password=\"p\";\n")
    assert out == f"dir=C:\\\\kafka\\\\\nsasl.jaas.config={REDACTED}\n" and redacted == ["sasl.jaas.config"]


def test_comment_ending_in_backslash_does_not_swallow_the_next_entry():
    out, redacted, _ = sanitize_properties(f"# note \\\nssl.key.password={KEY_PASSWORD}\n")
    assert out == f"# note \\\nssl.key.password={REDACTED}\n" and redacted == ["ssl.key.password"]


@pytest.mark.parametrize("line", [
    # a JAAS secret under a name that does not look secret
    f'KAFKA_OPTS="-Djavax.net.ssl.keyStorePassword={KEY_PASSWORD}"',
    f'my.login=org.apache.kafka.common.security.plain.PlainLoginModule required user_admin="{ADMIN_PASSWORD}";',
    f"client.config=ScramLoginModule required password={ADMIN_PASSWORD};",
])
def test_secret_inside_a_harmless_value(line):
    out, redacted, _ = sanitize_properties(line + "\n")
    assert KEY_PASSWORD not in out and ADMIN_PASSWORD not in out
    assert out.endswith(f"={REDACTED}\n") and len(redacted) == 1


def test_jaas_conf_file():
    text = (
        "KafkaServer {\n"
        "  org.apache.kafka.common.security.plain.PlainLoginModule required\n"
        '  username="admin"\n'
        f'  password="{ADMIN_PASSWORD}"\n'
        f'  user_admin="{ADMIN_PASSWORD}";\n'
        "};\n"
    )
    kind, out, redacted, _ = sanitize("/etc/kafka/kafka_server_jaas.conf", text.encode())
    assert kind == "properties" and ADMIN_PASSWORD.encode() not in out
    assert out.decode() == (
        "KafkaServer {\n"
        "  org.apache.kafka.common.security.plain.PlainLoginModule required\n"
        '  username="admin"\n'
        f"  password={REDACTED}\n"
        f"  user_admin={REDACTED}\n"
        "};\n"
    )
    assert redacted == ["password", "user_admin"]


def test_config_provider_references_are_kept():
    text = (
        "ssl.key.password=${file:/etc/kafka/credentials.properties:ssl.key.password}\n"
        "listener.name.controller.plain.sasl.jaas.config=${file:/etc/kafka/credentials.properties:controller.jaas}\n"
        "ssl.keystore.password=${file:/x:k} and more\n"
    )
    out, redacted, _ = sanitize_properties(text)
    assert out.splitlines()[:2] == text.splitlines()[:2]
    assert out.splitlines()[2] == f"ssl.keystore.password={REDACTED}" and redacted == ["ssl.keystore.password"]


def test_empty_secret_value_is_left_alone():
    assert sanitize_properties("ssl.key.password=\n") == ("ssl.key.password=\n", [], 0)


def test_commented_out_private_key_in_properties_is_dropped():
    text = "a=1\n#-----BEGIN PRIVATE KEY-----\n#MIIEvQIBADANBgkqhkiG9w0B\n#-----END PRIVATE KEY-----\nb=2\n"
    out, redacted, dropped = sanitize_properties(text)
    assert "MIIEvQ" not in out and dropped == 1 and redacted == []
    assert out.startswith("a=1\n#") and out.endswith("b=2\n")


# --- PEM --------------------------------------------------------------------------------------------------


def _cert_and_keys():
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kafka1.example")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    encrypted = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.BestAvailableEncryption(KEY_PASSWORD.encode())).decode()
    ec_plain = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                 serialization.NoEncryption()).decode()
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_plain = rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                      serialization.NoEncryption()).decode()
    pkcs8 = rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()).decode()
    return cert_pem, encrypted, ec_plain, rsa_plain, pkcs8


@pytest.fixture(scope="module")
def pems():
    return _cert_and_keys()


def _key_body(pem):
    return pem.splitlines()[1]


def test_pem_keystore_keeps_certificate_drops_encrypted_key(pems):
    cert, encrypted, *_ = pems
    kind, out, redacted, dropped = sanitize("/etc/kafka/tls/keystore.pem", (encrypted + cert).encode())
    assert kind == "pem" and dropped == 1 and redacted == []
    assert out.decode() == "# ENCRYPTED PRIVATE KEY dropped by metal.kafka.kafka_node_files\n" + cert
    assert x509.load_pem_x509_certificate(out).subject.rfc4514_string() == "CN=kafka1.example"


def test_pem_every_kind_of_private_key_dropped(pems):
    cert, encrypted, ec_plain, rsa_plain, pkcs8 = pems
    text = "Bag Attributes: friendly\n" + rsa_plain + cert + ec_plain + "\n" + pkcs8 + encrypted
    out, dropped = sanitize_pem(text)
    assert dropped == 4
    for key in (encrypted, ec_plain, rsa_plain, pkcs8):
        assert _key_body(key) not in out
    assert "PRIVATE KEY-----" not in out and cert in out and out.startswith("Bag Attributes: friendly\n")
    for label in ("RSA PRIVATE KEY", "EC PRIVATE KEY", "PRIVATE KEY", "ENCRYPTED PRIVATE KEY"):
        assert f"# {label} dropped by metal.kafka.kafka_node_files\n" in out


def test_pem_unterminated_private_key_dropped_to_the_end(pems):
    cert, _enc, _ec, rsa_plain, _p8 = pems
    truncated = "\n".join(rsa_plain.splitlines()[:5])
    out, dropped = sanitize_pem(cert + truncated)
    assert dropped == 1 and _key_body(rsa_plain) not in out and out.startswith(cert)


def test_certificate_only_pem_unchanged(pems):
    cert = pems[0]
    assert sanitize("/etc/kafka/tls/truststore.pem", cert.encode()) == ("pem", cert.encode(), [], 0)


# --- binary ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "data"), [
    ("/etc/kafka/tls/keystore.p12", b"0\x82\x0a\x1f\x02\x01\x030\x82"),   # PKCS#12 (DER) by its bytes
    ("/etc/kafka/tls/kafka.keystore.jks", b"\xfe\xed\xfe\xed\x00\x00\x00\x02"),
    ("/etc/kafka/tls/store", b"\xfe\xed\xfe\xed\x00\x00\x00\x02"),        # JKS magic, no telling name
    ("/etc/kafka/tls/store.bin", b"text with a NUL\x00 inside"),
    ("/etc/kafka/tls/client.jks", b"even=valid text\n"),                 # the name alone is enough
    ("/etc/kafka/tls/client.PFX", b"even=valid text\n"),
    ("/etc/kafka/tls/kafka.keystore", b"even=valid text\n"),
])
def test_binary_never_returned(path, data):
    assert sanitize(path, data) == ("binary-skipped", None, [], 0)


# --- reading files ----------------------------------------------------------------------------------------


@pytest.fixture
def node(tmp_path, pems):
    cert, encrypted, *_ = pems
    (tmp_path / "server.properties").write_text(SERVER_PROPERTIES)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "meta.properties").write_text("#\nversion=1\nnode.id=1\ncluster.id=MkU3OEVBNTcwNTJENDM2Qk\n")
    (tmp_path / "keystore.pem").write_text(encrypted + cert)
    (tmp_path / "truststore.jks").write_bytes(b"\xfe\xed\xfe\xed\x00\x00\x00\x02")
    (tmp_path / "credentials.properties").write_text(CREDENTIALS)
    (tmp_path / "credentials.properties").chmod(0o000)
    (tmp_path / "server.properties").chmod(0o640)
    return tmp_path


class OpenSpy:
    """Records every path opened through os.open, open and io.open (the module reads with os.open)."""

    def __init__(self, monkeypatch):
        self.paths = []
        real_os_open, real_open = os.open, builtins.open

        def spy_os_open(path, *args, **kwargs):
            self.paths.append(os.path.realpath(path))
            return real_os_open(path, *args, **kwargs)

        def spy_open(file, *args, **kwargs):
            if isinstance(file, (str, bytes, os.PathLike)):
                self.paths.append(os.path.realpath(file))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(os, "open", spy_os_open)
        monkeypatch.setattr(builtins, "open", spy_open)
        monkeypatch.setattr(io, "open", spy_open)


def test_read_node_files_every_kind(node, monkeypatch):
    spy = OpenSpy(monkeypatch)
    link = node / "creds-link"
    link.symlink_to(node / "credentials.properties")
    paths = [str(node / "server.properties"), str(node / "data" / "meta.properties"), str(node / "keystore.pem"),
             str(node / "truststore.jks"), str(node / "credentials.properties"), str(link),
             str(node / "data" / ".." / "credentials.properties"), str(node / "metadata" / "meta.properties"),
             str(node / "server.properties")]
    files = read_node_files(paths, never_read=[str(node / "credentials.properties")])
    assert [f["kind"] for f in files] == ["properties", "properties", "pem", "binary-skipped", "refused", "refused",
                                          "refused", "missing"], "one entry per distinct path, in order"
    assert os.path.realpath(node / "server.properties") in spy.paths, "the spy sees what is opened"
    assert os.path.realpath(node / "credentials.properties") not in spy.paths, "a refused file is never opened"
    server, meta, keystore, jks, refused, *_rest, missing = files
    assert server["mode"] == "0640" and server["size"] == len(SERVER_PROPERTIES.encode())
    assert server["owner"] and server["group"]
    assert server["redacted"] == ["ssl.key.password", "listener.name.internal.scram-sha-512.sasl.jaas.config",
                                  "delegation.token.secret.key"]
    content = base64.b64decode(server["content_b64"])
    assert server["sha256"] == hashlib.sha256(content).hexdigest()
    assert "cluster.id=MkU3OEVBNTcwNTJENDM2Qk" in decoded(meta) and meta["redacted"] == []
    assert keystore["dropped"] == 1 and "-----BEGIN CERTIFICATE-----" in decoded(keystore)
    assert jks["content_b64"] is None and jks["sha256"] is None and jks["size"] == 8
    assert refused == {"path": str(node / "credentials.properties"), "kind": "refused", "mode": None,
                       "owner": None, "group": None, "size": None, "sha256": None, "content_b64": None,
                       "redacted": [], "dropped": 0}
    assert missing["kind"] == "missing" and missing["mode"] is None
    dump = json.dumps(files)
    for secret in (KEY_PASSWORD, ADMIN_PASSWORD, TOKEN_SECRET):
        assert secret not in dump and secret not in content.decode() + decoded(keystore)


def test_too_large_is_reported_not_read(node, monkeypatch):
    spy = OpenSpy(monkeypatch)
    reads = []
    real_read = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: reads.append(n) or real_read(fd, n))
    entry = read_node_file(str(node / "server.properties"), max_size=100)
    assert entry["kind"] == "too-large" and entry["size"] == len(SERVER_PROPERTIES.encode())
    assert entry["content_b64"] is None and entry["sha256"] is None and reads == [] and len(spy.paths) == 1
    fits = read_node_file(str(node / "server.properties"), max_size=len(SERVER_PROPERTIES.encode()))
    assert fits["kind"] == "properties" and reads


def test_not_a_file_fails_with_the_path(tmp_path):
    with pytest.raises(NodeFilesError, match=f"{tmp_path} is a directory, not a file"):
        read_node_files([str(tmp_path)])
    fifo = tmp_path / "fifo.properties"
    os.mkfifo(fifo)
    with pytest.raises(NodeFilesError, match="fifo.properties is not a regular file"):
        read_node_files([str(fifo)])


def test_negative_max_size_refused():
    with pytest.raises(NodeFilesError, match="max_size is -1"):
        read_node_files(["/etc/hostname"], max_size=-1)


def test_refused_paths_cover_spellings_and_links(tmp_path):
    target = tmp_path / "admin.properties"
    target.write_text("x=1\n")
    (tmp_path / "alias").symlink_to(target)
    refused = refused_paths([str(tmp_path / "alias")])
    assert str(target) in refused and str(tmp_path / "alias") in refused
    assert read_node_file(str(target), refused)["kind"] == "refused"


# --- the module -----------------------------------------------------------------------------------------


def run_in_process(monkeypatch, capsys, args, check=False):
    args = {**args, "_ansible_check_mode": check}
    monkeypatch.setattr(basic, "_ANSIBLE_ARGS", json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode())
    monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy")
    module = importlib.import_module("ansible_collections.metal.kafka.plugins.modules.kafka_node_files")
    with pytest.raises(SystemExit):
        module.main()
    out = capsys.readouterr().out
    for secret in (KEY_PASSWORD, ADMIN_PASSWORD, TOKEN_SECRET):
        assert secret not in out
    return json.loads(out)


def test_module_in_check_mode_reads_and_refuses(node, monkeypatch, capsys):
    spy = OpenSpy(monkeypatch)
    creds = str(node / "credentials.properties")
    result = run_in_process(monkeypatch, capsys, {
        "paths": [str(node / "server.properties"), str(node / "keystore.pem"), creds],
        "never_read": [creds, str(node / "admin.properties")],
    }, check=True)
    assert result["changed"] is False and "failed" not in result
    assert [f["kind"] for f in result["files"]] == ["properties", "pem", "refused"]
    assert os.path.realpath(node / "keystore.pem") in spy.paths and os.path.realpath(creds) not in spy.paths
    assert REDACTED in decoded(result["files"][0]) and result["files"][1]["dropped"] == 1


def test_module_failure_names_the_path_only(tmp_path, monkeypatch, capsys):
    result = run_in_process(monkeypatch, capsys, {"paths": [str(tmp_path)]})
    assert result["failed"] is True and result["msg"] == f"{tmp_path} is a directory, not a file: list the files in it"


def test_module_unexpected_error_keeps_its_text_out(node, monkeypatch, capsys):
    def boom(*_args, **_kwargs):
        raise ValueError(f"cannot handle {ADMIN_PASSWORD}")

    monkeypatch.setattr(node_files, "sanitize", boom)
    result = run_in_process(monkeypatch, capsys, {"paths": [str(node / "server.properties")]})
    assert result["failed"] is True and result["msg"] == "reading the node's files failed unexpectedly (ValueError)"


def test_module_as_ansible_runs_it(node, tmp_path):
    creds = str(node / "credentials.properties")
    args = {"paths": [str(node / "server.properties"), str(node / "data" / "meta.properties"),
                      str(node / "keystore.pem"), str(node / "truststore.jks"), creds,
                      str(node / "missing.properties")],
            "never_read": [creds], "max_size": 4096}
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = dict(os.environ, PYTHONPATH=str(REPO / ".collections"))
    proc = subprocess.run([sys.executable, str(MODULE), str(args_file)], capture_output=True, text=True, env=env)
    for secret in (KEY_PASSWORD, ADMIN_PASSWORD, TOKEN_SECRET):
        assert secret not in proc.stdout and secret not in proc.stderr
    result = json.loads(proc.stdout)
    assert result["changed"] is False
    assert [f["kind"] for f in result["files"]] == ["properties", "properties", "pem", "binary-skipped", "refused",
                                                    "missing"]
    decoded_all = "".join(decoded(f) for f in result["files"] if f["content_b64"])
    assert "PRIVATE KEY-----" not in decoded_all and "-----BEGIN CERTIFICATE-----" in decoded_all


def test_file_grown_past_max_size_while_read_is_too_large(node, monkeypatch):
    real_fstat, calls = os.fstat, []

    def shrinking_fstat(fd):  # the first look says small, the file then turns out bigger
        st = real_fstat(fd)
        calls.append(st.st_size)
        return os.stat_result(st[:6] + (10,) + st[7:]) if len(calls) == 1 else st

    monkeypatch.setattr(os, "fstat", shrinking_fstat)
    entry = read_node_file(str(node / "server.properties"), max_size=100)
    assert entry["kind"] == "too-large" and entry["content_b64"] is None
    assert entry["size"] == len(SERVER_PROPERTIES.encode()) and len(calls) == 2
