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
