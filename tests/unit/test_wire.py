import socket
import struct
import threading

import pytest
from ansible_collections.metal.kafka.plugins.module_utils import wire


def _string(s):
    if s is None:
        return struct.pack(">h", -1)
    return struct.pack(">h", len(s)) + s.encode()


def metadata_v4_body(brokers, cluster_id="cid", controller=1):
    out = struct.pack(">i", 0) + struct.pack(">i", len(brokers))
    for node_id, host, port, rack in brokers:
        out += struct.pack(">i", node_id) + _string(host) + struct.pack(">i", port) + _string(rack)
    return out + _string(cluster_id) + struct.pack(">i", controller) + struct.pack(">i", 0)


def test_parse_metadata():
    md = wire.parse_metadata_v4(metadata_v4_body([(4, "10.0.0.4", 9092, None), (5, "h5", 9092, "r1")]))
    assert [b["node_id"] for b in md["brokers"]] == [4, 5]
    assert md["brokers"][1]["rack"] == "r1" and md["cluster_id"] == "cid" and md["controller_id"] == 1


@pytest.fixture
def fake_broker():
    """A one-shot TCP server that checks the request header and answers like a broker."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    seen = {}

    def serve(body):
        conn, _ = srv.accept()
        with conn:
            size = struct.unpack(">i", conn.recv(4))[0]
            req = b""
            while len(req) < size:
                req += conn.recv(size - len(req))
            seen["api_key"], seen["api_version"], corr = struct.unpack_from(">hhi", req)
            payload = struct.pack(">i", corr) + body
            conn.sendall(struct.pack(">i", len(payload)) + payload)

    def start(body):
        t = threading.Thread(target=serve, args=(body,), daemon=True)
        t.start()
        return srv.getsockname()[1]

    yield start, seen
    srv.close()


def test_metadata_roundtrip(fake_broker):
    start, seen = fake_broker
    port = start(metadata_v4_body([(1, "a", 9092, None)]))
    md = wire.metadata("127.0.0.1", port)
    assert seen == {"api_key": 3, "api_version": 4}
    assert md["brokers"][0]["node_id"] == 1


def test_api_versions_roundtrip(fake_broker):
    start, seen = fake_broker
    body = struct.pack(">h", 0) + struct.pack(">i", 1) + struct.pack(">hhh", 18, 0, 3)
    port = start(body)
    assert wire.api_versions("127.0.0.1", port) == {18: (0, 3)}
    assert seen == {"api_key": 18, "api_version": 0}


def test_connection_refused():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(OSError):
        wire.api_versions("127.0.0.1", port, timeout=1)


def test_active_controller_skips_brokers_that_do_not_answer(fake_broker):
    start, _seen = fake_broker
    port = start(metadata_v4_body([(4, "a", 9092, None)], controller=5))
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    dead.close()
    assert wire.active_controller([f"127.0.0.1:{dead_port}", f"127.0.0.1:{port}"], timeout=1) == \
        (5, f"127.0.0.1:{port}")


def test_active_controller_none_answer():
    with pytest.raises(wire.ProbeError, match="no broker answered"):
        wire.active_controller(["127.0.0.1:1"], timeout=1)


def test_scram_sha256_matches_rfc7677_example():
    bare = wire.scram_client_first("user", "rOprNGfwEbeRWgbNEkqO")
    assert bare == "n=user,r=rOprNGfwEbeRWgbNEkqO"
    server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    final, server_signature = wire.scram_client_final("SCRAM-SHA-256", "pencil", bare, server_first)
    assert final == ("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                     "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    import base64
    assert base64.b64encode(server_signature).decode() == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_scram_refuses_a_server_nonce_that_does_not_extend_ours():
    with pytest.raises(wire.AuthenticationError, match="nonce"):
        wire.scram_client_final("SCRAM-SHA-512", "pw", "n=u,r=abc", "r=xyz123,s=AAAA,i=4096")


def test_user_names_are_escaped_in_scram():
    assert wire.scram_client_first("a=b,c", "n") == "n=a=3Db=2Cc,r=n"


def test_security_repr_never_shows_the_password():
    sec = wire.Security("SASL_SSL", "/ca", "host", "SCRAM-SHA-512", "admin", "topsecret")
    assert "topsecret" not in repr(sec)


def _describe_quorum_response_v1(leader=2, voters=((1, 100, 5, 5), (2, 120, 6, 6), (3, 90, 7, 4))):
    def state(node, leo, fetch, caught):
        return struct.pack(">iqqq", node, leo, fetch, caught) + b"\x00"
    body = b"\x00"  # response header tagged fields
    body += struct.pack(">h", 0) + wire._uvarint(2) + wire._compact_string("__cluster_metadata") + wire._uvarint(2)
    body += struct.pack(">ihiiq", 0, 0, leader, 7, 120)
    body += wire._uvarint(len(voters) + 1) + b"".join(state(*v) for v in voters)
    body += wire._uvarint(2) + state(4, 120, 8, 8)  # one observer (a broker)
    body += b"\x00" + b"\x00" + b"\x00"
    return body


def test_describe_quorum_request_v1_encoding():
    body = wire.describe_quorum_request_v1()
    assert body == b"\x02\x13__cluster_metadata\x02\x00\x00\x00\x00\x00\x00\x00"


def test_parse_describe_quorum_v1():
    q = wire.parse_describe_quorum_v1(_describe_quorum_response_v1())
    assert q["leader_id"] == 2 and q["leader_epoch"] == 7 and q["high_watermark"] == 120
    assert [v["id"] for v in q["voters"]] == [1, 2, 3]
    assert q["voters"][2] == {"id": 3, "log_end_offset": 90, "last_fetch_timestamp": 7, "last_caught_up_timestamp": 4}
    assert [o["id"] for o in q["observers"]] == [4]


def test_uvarint_round_trip():
    for value in (0, 1, 127, 128, 300, 2**21 + 5):
        assert wire._Reader(wire._uvarint(value)).uvarint() == value


def test_flexible_request_header_has_empty_tagged_fields():
    raw = wire._request(55, 1, 9, b"BODY", client_id="c", flexible=True)
    assert raw[4:] == struct.pack(">hhih", 55, 1, 9, 1) + b"c" + b"\x00" + b"BODY"


# --- client quotas ---------------------------------------------------------------------------------


def _entity_bytes(*pairs):
    return struct.pack(">i", len(pairs)) + b"".join(_string(t) + _string(n) for t, n in pairs)


def _describe_client_quotas_response_v0(entries, error=0, message=None):
    body = struct.pack(">ih", 0, error) + _string(message)
    if entries is None:
        return body + struct.pack(">i", -1)
    body += struct.pack(">i", len(entries))
    for pairs, values in entries:
        body += _entity_bytes(*pairs) + struct.pack(">i", len(values))
        body += b"".join(_string(k) + struct.pack(">d", v) for k, v in values)
    return body


def _alter_client_quotas_response_v0(results):
    body = struct.pack(">ii", 0, len(results))
    for error, message, pairs in results:
        body += struct.pack(">h", error) + _string(message) + _entity_bytes(*pairs)
    return body


def test_describe_client_quotas_request_v0_matches_every_entity():
    # no filter components (int32 0), strict=false (int8 0)
    assert wire.describe_client_quotas_request_v0() == b"\x00\x00\x00\x00\x00"


def test_alter_client_quotas_request_v0_encoding():
    body = wire.alter_client_quotas_request_v0(
        [{"entity": {"client-id": None, "user": "alice"}, "values": {"producer_byte_rate": 1024},
          "remove": ["consumer_byte_rate"]}], validate_only=True)
    assert body == (b"\x00\x00\x00\x01"                                      # one entry
                    b"\x00\x00\x00\x02"                                      # its entity: two components
                    b"\x00\x04user\x00\x05alice"                             # user=alice
                    b"\x00\x09client-id\xff\xff"                             # client-id=<default> (null)
                    b"\x00\x00\x00\x02"                                      # two ops
                    b"\x00\x12producer_byte_rate\x40\x90\x00\x00\x00\x00\x00\x00\x00"  # set 1024.0
                    b"\x00\x12consumer_byte_rate\x00\x00\x00\x00\x00\x00\x00\x00\x01"  # remove
                    b"\x01")                                                 # validate_only


def test_alter_client_quotas_request_v0_without_remove_and_not_validate_only():
    entries = [{"entity": {"ip": "10.0.0.1"}, "values": {"connection_creation_rate": 2.5}}]
    body = wire.alter_client_quotas_request_v0(entries)
    assert body == (b"\x00\x00\x00\x01" b"\x00\x00\x00\x01" b"\x00\x02ip\x00\x0810.0.0.1" b"\x00\x00\x00\x01"
                    b"\x00\x18connection_creation_rate" + struct.pack(">d", 2.5) + b"\x00" b"\x00")


def test_alter_client_quotas_refuses_a_key_both_set_and_removed_and_an_empty_entity():
    with pytest.raises(ValueError, match="producer_byte_rate of user=alice is both set and removed"):
        wire.alter_client_quotas_request_v0([{"entity": {"user": "alice"}, "values": {"producer_byte_rate": 1},
                                              "remove": ["producer_byte_rate"]}])
    with pytest.raises(ValueError, match="at least one"):
        wire.alter_client_quotas_request_v0([{"entity": {}, "values": {"producer_byte_rate": 1}}])
    with pytest.raises(ValueError, match="neither a string nor None"):
        wire.alter_client_quotas_request_v0([{"entity": {"user": 5}, "values": {"producer_byte_rate": 1}}])


def test_parse_describe_client_quotas_v0_sorts_and_keeps_default_entities():
    data = _describe_client_quotas_response_v0([
        ((("client-id", "app"),), (("producer_byte_rate", 2048.0),)),
        ((("user", "alice"),), (("request_percentage", 25.5), ("consumer_byte_rate", 4096.0),
                                ("producer_byte_rate", 1024.0))),
        ((("client-id", None), ("user", "alice")), (("producer_byte_rate", 512.0),)),
        ((("user", None),), (("producer_byte_rate", 100.0),)),
        ((("ip", "10.0.0.1"),), (("connection_creation_rate", 3.0),)),
    ])
    assert wire.parse_describe_client_quotas_v0(data) == [
        {"entity": {"user": None}, "values": {"producer_byte_rate": 100.0}},
        {"entity": {"user": "alice"},
         "values": {"consumer_byte_rate": 4096.0, "producer_byte_rate": 1024.0, "request_percentage": 25.5}},
        {"entity": {"user": "alice", "client-id": None}, "values": {"producer_byte_rate": 512.0}},
        {"entity": {"client-id": "app"}, "values": {"producer_byte_rate": 2048.0}},
        {"entity": {"ip": "10.0.0.1"}, "values": {"connection_creation_rate": 3.0}},
    ]
    # entity keys in a stable order (user, client-id, ip) whatever order the broker sent them in
    assert list(wire.parse_describe_client_quotas_v0(data)[2]["entity"]) == ["user", "client-id"]


def test_parse_describe_client_quotas_v0_null_or_empty_entries():
    assert wire.parse_describe_client_quotas_v0(_describe_client_quotas_response_v0(None)) == []
    assert wire.parse_describe_client_quotas_v0(_describe_client_quotas_response_v0([])) == []


def test_parse_describe_client_quotas_v0_error_code_raises():
    data = _describe_client_quotas_response_v0(None, error=31, message="Not authorized")
    with pytest.raises(wire.ProbeError, match="CLUSTER_AUTHORIZATION_FAILED: Not authorized") as info:
        wire.parse_describe_client_quotas_v0(data)
    assert info.value.code == 31
    with pytest.raises(wire.ProbeError, match="error code 999: no detail"):
        wire.parse_describe_client_quotas_v0(_describe_client_quotas_response_v0(None, error=999))


def test_parse_alter_client_quotas_v0_sorts_the_entities():
    data = _alter_client_quotas_response_v0([(0, None, (("client-id", "app"),)),
                                             (0, None, (("client-id", None), ("user", "alice"))),
                                             (0, None, (("user", None),))])
    assert wire.parse_alter_client_quotas_v0(data) == [{"user": None}, {"user": "alice", "client-id": None},
                                                       {"client-id": "app"}]


def test_parse_alter_client_quotas_v0_names_each_failed_entity():
    data = _alter_client_quotas_response_v0([
        (0, None, (("user", "bob"),)),
        (42, "Invalid quota key", (("client-id", None), ("user", "alice"))),
        (31, None, (("ip", "10.0.0.1"),)),
    ])
    with pytest.raises(wire.ProbeError) as info:
        wire.parse_alter_client_quotas_v0(data)
    assert str(info.value) == ("AlterClientQuotas failed for user=alice, client-id=<default>: INVALID_REQUEST: "
                               "Invalid quota key; ip=10.0.0.1: CLUSTER_AUTHORIZATION_FAILED: no detail")
    assert "bob" not in str(info.value)


def test_describe_client_quotas_roundtrip(fake_broker):
    start, seen = fake_broker
    port = start(_describe_client_quotas_response_v0([((("user", "alice"),), (("producer_byte_rate", 1.0),))]))
    assert wire.describe_client_quotas("127.0.0.1", port) == [{"entity": {"user": "alice"},
                                                               "values": {"producer_byte_rate": 1.0}}]
    assert seen == {"api_key": 48, "api_version": 0}


def test_alter_client_quotas_roundtrip(fake_broker):
    start, seen = fake_broker
    port = start(_alter_client_quotas_response_v0([(0, None, (("user", None),))]))
    entries = [{"entity": {"user": None}, "values": {"producer_byte_rate": 1.0}}]
    assert wire.alter_client_quotas("127.0.0.1", port, entries) == [{"user": None}]
    assert seen == {"api_key": 49, "api_version": 0}


def _dead_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_describe_client_quotas_any_skips_servers_that_do_not_answer(fake_broker):
    start, _seen = fake_broker
    port = start(_describe_client_quotas_response_v0([]))
    assert wire.describe_client_quotas_any(f"127.0.0.1:{_dead_port()}, 127.0.0.1:{port}", timeout=1) == []


def test_alter_client_quotas_any_raises_the_last_error_when_none_answers():
    with pytest.raises(ConnectionRefusedError):
        wire.alter_client_quotas_any([f"127.0.0.1:{_dead_port()}", f"127.0.0.1:{_dead_port()}"],
                                     [{"entity": {"user": "a"}, "values": {"producer_byte_rate": 1}}], timeout=1)


def test_a_broker_error_is_the_answer_and_the_next_server_is_not_asked(fake_broker):
    start, _seen = fake_broker
    port = start(_describe_client_quotas_response_v0(None, error=31))
    # the second server is dead: asking it would turn the error into ConnectionRefusedError
    with pytest.raises(wire.QuotaError, match="CLUSTER_AUTHORIZATION_FAILED"):
        wire.describe_client_quotas_any(f"127.0.0.1:{port},127.0.0.1:{_dead_port()}", timeout=1)


def test_bootstrap_pairs():
    assert wire.bootstrap_pairs("h1:9092,h2:9093") == [("h1", 9092), ("h2", 9093)]
    assert wire.bootstrap_pairs(" h1:9092 , ,SASL_SSL://h2:9094,h3,[::1]:9095") == \
        [("h1", 9092), ("h2", 9094), ("h3", 9092), ("::1", 9095)]
    assert wire.bootstrap_pairs(["a:1", "b:2"]) == [("a", 1), ("b", 2)]
    for bad in ("h1:port", ":9092", "h1:0", " , "):
        with pytest.raises(ValueError):
            wire.bootstrap_pairs(bad)


# --- Security from a librdkafka client configuration ------------------------------------------------


def test_security_from_client_config_sasl_ssl_with_client_certificate():
    sec = wire.security_from_client_config({
        "bootstrap.servers": "h1:9093", "security.protocol": "sasl_ssl", "sasl.mechanisms": "SCRAM-SHA-256",
        "sasl.username": "admin", "sasl.password": "topsecret", "ssl.ca.location": "/etc/kafka/ca.pem",
        "ssl.certificate.location": "/etc/kafka/client.pem", "ssl.key.location": "/etc/kafka/client.key",
        "ssl.key.password": "keysecret", "ssl.endpoint.identification.algorithm": "none"})
    assert (sec.protocol, sec.tls, sec.sasl) == ("SASL_SSL", True, True)
    assert (sec.mechanism, sec.username, sec.password) == ("SCRAM-SHA-256", "admin", "topsecret")
    assert (sec.ca_file, sec.cert_file, sec.key_file, sec.key_password) == \
        ("/etc/kafka/ca.pem", "/etc/kafka/client.pem", "/etc/kafka/client.key", "keysecret")
    assert sec.check_hostname is False and sec.verify_certificates is True and sec.server_hostname is None
    assert "topsecret" not in repr(sec) and "keysecret" not in repr(sec)
    assert repr(sec) == "Security(SASL_SSL, mechanism=SCRAM-SHA-256, user=admin, cert=/etc/kafka/client.pem)"


def test_security_from_client_config_defaults():
    sec = wire.security_from_client_config({"bootstrap.servers": "h1:9092"})
    assert (sec.protocol, sec.tls, sec.sasl, sec.ca_file, sec.cert_file) == ("PLAINTEXT", False, False, None, None)
    ssl_only = wire.security_from_client_config({"security.protocol": "SSL", "ssl.ca.location": "probe"})
    assert ssl_only.ca_file is None and ssl_only.check_hostname is True and ssl_only.verify_certificates is True
    assert ssl_only.username is None and ssl_only.cert_file is None
    plain = wire.security_from_client_config({"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
                                              "sasl.username": "u", "sasl.password": "p",
                                              "ssl.ca.location": "/ignored"})
    assert (plain.mechanism, plain.tls, plain.ca_file) == ("PLAIN", False, None)
    unverified = wire.security_from_client_config({"security.protocol": "SSL",
                                                   "enable.ssl.certificate.verification": "false"})
    assert unverified.verify_certificates is False


@pytest.mark.parametrize("config, match", [
    ({"security.protocol": "SASL_SSL", "sasl.username": "u", "sasl.password": "p"}, "GSSAPI"),
    ({"security.protocol": "SASL_SSL", "sasl.mechanism": "OAUTHBEARER"}, "not one of"),
    ({"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN", "sasl.username": "u"}, "sasl.password"),
    ({"security.protocol": "SSL", "ssl.keystore.location": "/ks.p12"}, "ssl.keystore.location not supported"),
    ({"security.protocol": "SSL", "ssl.key.location": "/k.pem"}, "without ssl.certificate.location"),
    ({"security.protocol": "BOGUS"}, "unknown security protocol"),
])
def test_security_from_client_config_refuses_what_it_cannot_follow(config, match):
    with pytest.raises(ValueError, match=match):
        wire.security_from_client_config(config)


def test_security_keeps_its_positional_arguments():
    sec = wire.Security("SSL", "/ca", "host", "PLAIN", "u", "p")
    assert (sec.ca_file, sec.server_hostname, sec.mechanism, sec.username, sec.password) == \
        ("/ca", "host", "PLAIN", "u", "p")
    assert sec.cert_file is None and sec.check_hostname is True and sec.verify_certificates is True
    assert repr(sec) == "Security(SSL, mechanism=PLAIN, user=u)"


# --- mutual TLS against a fake broker ----------------------------------------------------------------


@pytest.fixture(scope="module")
def pki_files(tmp_path_factory):
    """A CA, a server certificate for kafka1.example.com and 127.0.0.1 or only for the name, and a client
    certificate whose key is encrypted with "keysecret"."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    d = tmp_path_factory.mktemp("pki")
    now = dt.datetime.now(dt.UTC)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def cert(subject, key, issuer, issuer_key, ca=False, sans=()):
        builder = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    def write(path, *items):
        path.write_bytes(b"".join(items))
        return str(path)

    def key_pem(key, password=None):
        enc = (serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption())
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)

    pem = serialization.Encoding.PEM
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = cert("test-ca", ca_key, "test-ca", ca_key, ca=True)
    files = {"ca": write(d / "ca.pem", ca.public_bytes(pem))}
    for label, sans in (("server", (x509.DNSName("kafka1.example.com"),
                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")))),
                        ("server_name_only", (x509.DNSName("kafka1.example.com"),))):
        key = ec.generate_private_key(ec.SECP256R1())
        files[label] = write(d / f"{label}.pem", cert("kafka1", key, "test-ca", ca_key, sans=sans).public_bytes(pem),
                             key_pem(key))
    client_key = ec.generate_private_key(ec.SECP256R1())
    files["client_cert"] = write(d / "client.pem", cert("alice", client_key, "test-ca", ca_key).public_bytes(pem))
    files["client_key"] = write(d / "client.key", key_pem(client_key, b"keysecret"))
    return files


def _tls_broker(pki_files, server_cert, body):
    """A one-shot TLS server that requires a client certificate from the test CA and answers ``body``;
    returns (port, seen) where seen gets the client certificate's common name."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki_files[server_cert])
    context.load_verify_locations(pki_files["ca"])
    context.verify_mode = ssl.CERT_REQUIRED
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    seen = {}

    def serve():
        try:
            raw, _ = srv.accept()
            with context.wrap_socket(raw, server_side=True) as conn:
                seen["client"] = dict(x[0] for x in conn.getpeercert()["subject"])["commonName"]
                size = struct.unpack(">i", wire._recv_exact(conn, 4))[0]
                req = wire._recv_exact(conn, size)
                seen["api_key"] = struct.unpack_from(">h", req)[0]
                payload = req[4:8] + body
                conn.sendall(struct.pack(">i", len(payload)) + payload)
        except (OSError, wire.ProbeError) as exc:
            seen["error"] = exc
        finally:
            srv.close()

    threading.Thread(target=serve, daemon=True).start()
    return srv.getsockname()[1], seen


def test_mutual_tls_with_an_encrypted_client_key(pki_files):
    port, seen = _tls_broker(pki_files, "server", _describe_client_quotas_response_v0([]))
    sec = wire.security_from_client_config({
        "security.protocol": "SSL", "ssl.ca.location": pki_files["ca"],
        "ssl.certificate.location": pki_files["client_cert"], "ssl.key.location": pki_files["client_key"],
        "ssl.key.password": "keysecret"})
    assert wire.describe_client_quotas("127.0.0.1", port, timeout=5, security=sec) == []
    assert seen == {"client": "alice", "api_key": 48}


def test_tls_without_the_client_certificate_is_refused(pki_files):
    port, seen = _tls_broker(pki_files, "server", _describe_client_quotas_response_v0([]))
    sec = wire.Security("SSL", pki_files["ca"])
    with pytest.raises((OSError, wire.ProbeError)):
        wire.describe_client_quotas("127.0.0.1", port, timeout=5, security=sec)


def test_endpoint_identification_none_accepts_a_certificate_for_another_name(pki_files):
    config = {"security.protocol": "SSL", "ssl.ca.location": pki_files["ca"],
              "ssl.certificate.location": pki_files["client_cert"], "ssl.key.location": pki_files["client_key"],
              "ssl.key.password": "keysecret"}
    port, _seen = _tls_broker(pki_files, "server_name_only", _describe_client_quotas_response_v0([]))
    with pytest.raises(OSError, match="IP address mismatch|certificate verify failed"):
        wire.describe_client_quotas("127.0.0.1", port, timeout=5, security=wire.security_from_client_config(config))
    port, seen = _tls_broker(pki_files, "server_name_only", _describe_client_quotas_response_v0([]))
    sec = wire.security_from_client_config({**config, "ssl.endpoint.identification.algorithm": "none"})
    assert wire.describe_client_quotas("127.0.0.1", port, timeout=5, security=sec) == []
    assert seen["client"] == "alice"


# --- DescribeCluster v2 (brokers with their fencing) ------------------------------------------------


def _describe_cluster_response_v2(brokers, error=0, message=None):
    body = b"\x00" + struct.pack(">ih", 0, error)  # header tags, throttle, error
    body += b"\x00" if message is None else wire._compact_string(message)
    body += struct.pack(">b", 1) + wire._compact_string("cid-1") + struct.pack(">i", 3)
    body += wire._uvarint(len(brokers) + 1)
    for node, host, port, rack, fenced in brokers:
        body += struct.pack(">i", node) + wire._compact_string(host) + struct.pack(">i", port)
        body += (b"\x00" if rack is None else wire._compact_string(rack)) + struct.pack(">?", fenced) + b"\x00"
    return body + struct.pack(">i", -2147483648) + b"\x00"


def test_describe_cluster_request_v2_asks_for_fenced_brokers():
    assert wire.describe_cluster_request_v2() == b"\x00\x01\x01\x00"
    assert wire.describe_cluster_request_v2(include_fenced=False) == b"\x00\x01\x00\x00"


def test_parse_describe_cluster_v2():
    answer = wire.parse_describe_cluster_v2(_describe_cluster_response_v2(
        [(5, "h5", 9093, "r2", True), (4, "h4", 9092, None, False)]))
    assert answer == {"cluster_id": "cid-1", "controller_id": 3, "brokers": [
        {"id": 4, "host": "h4", "port": 9092, "rack": None, "fenced": False},
        {"id": 5, "host": "h5", "port": 9093, "rack": "r2", "fenced": True}]}


def test_parse_describe_cluster_v2_error_names_the_code():
    with pytest.raises(wire.ProbeError, match="DescribeCluster: CLUSTER_AUTHORIZATION_FAILED: denied"):
        wire.parse_describe_cluster_v2(_describe_cluster_response_v2([], error=31, message="denied"))


def _cstr(text):
    return wire._compact_string(text)


def test_find_coordinators_v4_request_and_answer():
    assert wire.find_coordinators_request_v4(["a", "bc"]) == b"\x00\x03\x02a\x03bc\x00"
    answer = (b"\x00" + struct.pack(">i", 0) + b"\x03"
              + _cstr("a") + struct.pack(">i", 4) + _cstr("k4") + struct.pack(">ih", 9092, 0) + b"\x00" + b"\x00"
              + _cstr("bc") + struct.pack(">i", -1) + _cstr("") + struct.pack(">ih", -1, 15) + _cstr("moving") + b"\x00"
              + b"\x00")
    assert wire.parse_find_coordinators_v4(answer) == {
        "a": {"node_id": 4, "host": "k4", "port": 9092, "error": None},
        "bc": {"node_id": -1, "host": "", "port": -1, "error": "COORDINATOR_NOT_AVAILABLE: moving"}}


def test_offset_fetch_v8_request_and_answer():
    assert wire.offset_fetch_request_v8(["g"]) == b"\x02" + _cstr("g") + b"\x00\x00" + b"\x00\x00"

    def partition(index, offset, error=0):
        return struct.pack(">iqi", index, offset, -1) + b"\x00" + struct.pack(">h", error) + b"\x00"

    answer = (b"\x00" + struct.pack(">i", 0) + b"\x03"
              + _cstr("g") + b"\x02" + _cstr("t") + b"\x04" + partition(0, 42) + partition(1, -1) + partition(2, 7, 3)
              + b"\x00" + struct.pack(">h", 0) + b"\x00"
              + _cstr("h") + b"\x01" + struct.pack(">h", 16) + b"\x00"
              + b"\x00")
    assert wire.parse_offset_fetch_v8(answer) == {"g": {"offsets": {("t", 0): 42}, "error": None},
                                                  "h": {"offsets": {}, "error": "NOT_COORDINATOR"}}
    # with the commits' metadata: null reads as "", a string as itself
    with_meta = (b"\x00" + struct.pack(">i", 0) + b"\x02"
                 + _cstr("g") + b"\x02" + _cstr("t") + b"\x03" + partition(0, 42)
                 + struct.pack(">iqi", 1, 9, -1) + _cstr("app=1") + struct.pack(">h", 0) + b"\x00"
                 + b"\x00" + struct.pack(">h", 0) + b"\x00" + b"\x00")
    assert wire.parse_offset_fetch_v8(with_meta, metadata=True) == {
        "g": {"offsets": {("t", 0): (42, ""), ("t", 1): (9, "app=1")}, "error": None}}
