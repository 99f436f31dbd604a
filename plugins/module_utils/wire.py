# Copyright: kafka-metal contributors
# Apache License 2.0
"""A minimal Kafka protocol client for readiness probes, with no dependency on the host.

It speaks two requests that every supported version answers (3.9.x and 4.x):
ApiVersions v0 (is the listener serving requests?) and Metadata v4 (which brokers are
alive, i.e. registered and unfenced, and who the cluster is), over plaintext or TLS, after
SASL authentication (SCRAM-SHA-256/512 per RFC 5802, or PLAIN) where the listener asks for it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import socket
import ssl
import struct

API_VERSIONS = 18
METADATA = 3
SASL_HANDSHAKE = 17
SASL_AUTHENTICATE = 36


class ProbeError(RuntimeError):
    pass


def _request(api_key, api_version, correlation_id, body, client_id="kafka-metal-probe", flexible=False):
    cid = client_id.encode()
    header = struct.pack(">hhih", api_key, api_version, correlation_id, len(cid)) + cid
    if flexible:  # request header v2: no tagged fields
        header += b"\x00"
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def _recv_exact(sock, n):
    chunks = []
    while n:
        chunk = sock.recv(n)
        if not chunk:
            raise ProbeError("connection closed by the server")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


class Security:
    """How to reach a listener: protocol, CA file and expected name (TLS), SASL credentials."""

    def __init__(self, protocol="PLAINTEXT", ca_file=None, server_hostname=None, mechanism="SCRAM-SHA-512",
                 username=None, password=None):
        self.protocol = (protocol or "PLAINTEXT").upper()
        if self.protocol not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
            raise ValueError(f"unknown security protocol {protocol!r}")
        self.ca_file = ca_file
        self.server_hostname = server_hostname
        self.mechanism = mechanism
        self.username = username
        self.password = password

    @property
    def tls(self):
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self):
        return self.protocol.startswith("SASL_")

    def __repr__(self):  # never shows the password
        return f"Security({self.protocol}, mechanism={self.mechanism}, user={self.username})"


PLAINTEXT = Security()

# Module options that describe a Security (documented by the metal.kafka.probe_security fragment).
SECURITY_ARGUMENT_SPEC = dict(
    security_protocol=dict(type="str", default="PLAINTEXT", choices=["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]),
    ca_file=dict(type="path"),
    server_hostname=dict(type="str"),
    sasl_mechanism=dict(type="str", default="SCRAM-SHA-512", choices=["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]),
    sasl_username=dict(type="str"),
    sasl_password=dict(type="str", no_log=True),
)
SECURITY_REQUIRED_IF = [("security_protocol", "SASL_SSL", ("sasl_username", "sasl_password")),
                        ("security_protocol", "SASL_PLAINTEXT", ("sasl_username", "sasl_password"))]


def security_from_params(params):
    return Security(params["security_protocol"], params["ca_file"], params["server_hostname"],
                    params["sasl_mechanism"], params["sasl_username"], params["sasl_password"])


def _send(sock, api_key, api_version, correlation_id, body, flexible=False):
    sock.sendall(_request(api_key, api_version, correlation_id, body, flexible=flexible))
    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
    data = _recv_exact(sock, size)
    (corr,) = struct.unpack_from(">i", data, 0)
    if corr != correlation_id:
        raise ProbeError(f"unexpected correlation id {corr}")
    return data[4:]


def _bytes(value):
    return struct.pack(">i", len(value)) + value


def _string(value):
    raw = value.encode()
    return struct.pack(">h", len(raw)) + raw


def _sasl_handshake(sock, mechanism):
    r = _Reader(_send(sock, SASL_HANDSHAKE, 1, 2, _string(mechanism)))
    error = r.int16()
    offered = [r.string() for _ in range(r.int32())]
    if error:
        raise ProbeError(f"the listener does not offer SASL mechanism {mechanism} (it offers {', '.join(offered)})")


def _sasl_authenticate(sock, correlation_id, payload):
    r = _Reader(_send(sock, SASL_AUTHENTICATE, 0, correlation_id, _bytes(payload)))
    error = r.int16()
    message = r.string()
    n = r.int32()
    data = r.data[r.pos:r.pos + max(n, 0)]
    if error:
        raise AuthenticationError(f"SASL authentication failed (error {error}): {message or 'no detail'}")
    return data


class AuthenticationError(ProbeError):
    pass


def scram_client_first(username, nonce):
    name = username.replace("=", "=3D").replace(",", "=2C")
    return f"n={name},r={nonce}"


def scram_client_final(mechanism, password, client_first_bare, server_first):
    """Return (client_final_message, expected_server_signature) for RFC 5802 SCRAM."""
    digest = {"SCRAM-SHA-512": "sha512", "SCRAM-SHA-256": "sha256"}[mechanism]
    fields = dict(item.split("=", 1) for item in server_first.split(","))
    nonce, salt, iterations = fields["r"], base64.b64decode(fields["s"]), int(fields["i"])
    client_nonce = client_first_bare.split("r=", 1)[1]
    if not nonce.startswith(client_nonce):
        raise AuthenticationError("SCRAM server nonce does not extend the client nonce")
    salted = hashlib.pbkdf2_hmac(digest, password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", digest).digest()
    stored_key = hashlib.new(digest, client_key).digest()
    without_proof = f"c=biws,r={nonce}"
    auth_message = f"{client_first_bare},{server_first},{without_proof}".encode()
    signature = hmac.new(stored_key, auth_message, digest).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    server_key = hmac.new(salted, b"Server Key", digest).digest()
    server_signature = hmac.new(server_key, auth_message, digest).digest()
    return f"{without_proof},p={base64.b64encode(proof).decode()}", server_signature


def _authenticate(sock, security):
    _sasl_handshake(sock, security.mechanism)
    if security.mechanism == "PLAIN":
        _sasl_authenticate(sock, 3, f"\0{security.username}\0{security.password}".encode())
        return
    bare = scram_client_first(security.username, base64.b64encode(os.urandom(24)).decode())
    server_first = _sasl_authenticate(sock, 3, f"n,,{bare}".encode()).decode()
    final, expected = scram_client_final(security.mechanism, security.password, bare, server_first)
    server_final = _sasl_authenticate(sock, 4, final.encode()).decode()
    if not server_final.startswith("v=") or base64.b64decode(server_final[2:]) != expected:
        raise AuthenticationError("SCRAM server signature does not verify: not the expected server")


def _roundtrip(host, port, api_key, api_version, body, timeout, security=PLAINTEXT, flexible=False):
    with socket.create_connection((host, port), timeout=timeout) as raw:
        raw.settimeout(timeout)
        sock = raw
        if security.tls:
            context = ssl.create_default_context(cafile=security.ca_file)
            sock = context.wrap_socket(raw, server_hostname=security.server_hostname or host)
        try:
            if security.sasl and api_key != API_VERSIONS:
                _authenticate(sock, security)
            return _send(sock, api_key, api_version, 1, body, flexible)
        finally:
            if sock is not raw:
                sock.close()


class _Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def _take(self, fmt):
        value = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return value[0]

    def int16(self):
        return self._take(">h")

    def int32(self):
        return self._take(">i")

    def int64(self):
        return self._take(">q")

    def uvarint(self):
        shift = value = 0
        while True:
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7

    def compact_string(self):
        n = self.uvarint() - 1
        if n < 0:
            return None
        value = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return value

    def compact_array_length(self):
        return self.uvarint() - 1

    def skip_tagged_fields(self):
        for _ in range(self.uvarint()):
            self.uvarint()  # tag
            self.pos += self.uvarint()  # size, then skip the data

    def string(self):
        n = self.int16()
        if n < 0:
            return None
        value = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return value


def api_versions(host, port, timeout=5.0, security=PLAINTEXT):
    """Return {api_key: (min, max)}; raises OSError/ProbeError when not serving.

    Kafka answers ApiVersions before authentication, so only TLS applies here."""
    r = _Reader(_roundtrip(host, port, API_VERSIONS, 0, b"", timeout, security))
    error = r.int16()
    if error:
        raise ProbeError(f"ApiVersions error code {error}")
    out = {}
    for _ in range(r.int32()):
        key, lo, hi = r.int16(), r.int16(), r.int16()
        out[key] = (lo, hi)
    return out


def parse_metadata_v4(data):
    r = _Reader(data)
    r.int32()  # throttle_time_ms
    brokers = []
    for _ in range(r.int32()):
        node_id, host, port, rack = r.int32(), r.string(), r.int32(), r.string()
        brokers.append({"node_id": node_id, "host": host, "port": port, "rack": rack})
    cluster_id = r.string()
    controller_id = r.int32()
    return {"brokers": brokers, "cluster_id": cluster_id, "controller_id": controller_id}


def metadata(host, port, timeout=5.0, security=PLAINTEXT):
    """Brokers alive (registered, unfenced), cluster id and controller id, as a broker sees them."""
    body = struct.pack(">i", 0) + b"\x00"  # no topics, allow_auto_topic_creation=false
    return parse_metadata_v4(_roundtrip(host, port, METADATA, 4, body, timeout, security))


def active_controller(brokers, timeout=5.0, security=PLAINTEXT):
    """The controller id as the first answering broker reports it, with who answered.

    ``brokers``: list of "host:port" of PLAINTEXT listeners. In ZooKeeper mode this is the broker
    that acts as controller; in KRaft mode brokers report a controller-facing id as well.
    Returns ``(controller_id, "host:port")`` or raises ProbeError when no broker answers.
    """
    errors = []
    for spec in brokers:
        host, _, port = spec.rpartition(":")
        try:
            return metadata(host, int(port), timeout, security)["controller_id"], spec
        except (OSError, ProbeError, ValueError) as exc:
            errors.append(f"{spec}: {exc}")
    raise ProbeError("no broker answered: " + "; ".join(errors))


DESCRIBE_QUORUM = 55
METADATA_TOPIC = "__cluster_metadata"


def _uvarint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _compact_string(value):
    raw = value.encode()
    return _uvarint(len(raw) + 1) + raw


def describe_quorum_request_v1():
    """DescribeQuorum v1 body for the metadata log (__cluster_metadata, partition 0)."""
    return (_uvarint(2) + _compact_string(METADATA_TOPIC) + _uvarint(2) + struct.pack(">i", 0)
            + b"\x00" + b"\x00" + b"\x00")


def parse_describe_quorum_v1(data):
    """The KRaft quorum as DescribeQuorum v1 reports it (``data`` after the correlation id)."""
    r = _Reader(data)
    r.skip_tagged_fields()  # response header v1
    error = r.int16()
    if error:
        raise ProbeError(f"DescribeQuorum error code {error}")
    quorum = None
    for _ in range(r.compact_array_length()):
        r.compact_string()
        for _ in range(r.compact_array_length()):
            partition, perror = r.int32(), r.int16()
            leader_id, leader_epoch, high_watermark = r.int32(), r.int32(), r.int64()
            groups = {}
            for name in ("voters", "observers"):
                groups[name] = []
                for _ in range(r.compact_array_length()):
                    groups[name].append({"id": r.int32(), "log_end_offset": r.int64(),
                                         "last_fetch_timestamp": r.int64(), "last_caught_up_timestamp": r.int64()})
                    r.skip_tagged_fields()
            r.skip_tagged_fields()
            if partition == 0:
                if perror:
                    raise ProbeError(f"DescribeQuorum partition error code {perror}")
                quorum = {"leader_id": leader_id, "leader_epoch": leader_epoch, "high_watermark": high_watermark,
                          **groups}
        r.skip_tagged_fields()
    if quorum is None:
        raise ProbeError("DescribeQuorum answered without the metadata partition")
    return quorum


def describe_quorum(host, port, timeout=5.0, security=PLAINTEXT):
    """The KRaft quorum: leader id and epoch, high watermark, voters and observers with their log end
    offsets and last caught-up times (ms), as the active controller reports it. Ask a broker (it
    forwards the request) or a controller listener (only the active controller answers)."""
    return parse_describe_quorum_v1(_roundtrip(host, port, DESCRIBE_QUORUM, 1, describe_quorum_request_v1(),
                                               timeout, security, flexible=True))
