# Copyright: kafka-metal contributors
# Apache License 2.0
"""A minimal Kafka protocol client for readiness probes, with no dependency on the host.

It speaks requests that every supported version answers (3.9.x and 4.x): ApiVersions v0 (is
the listener serving requests?), Metadata v4 (which brokers are alive, i.e. registered and
unfenced, and who the cluster is), DescribeQuorum v1, and DescribeClientQuotas v0 and
AlterClientQuotas v0 (client quotas, which confluent-kafka has no API for), over plaintext or
TLS (optionally with a client certificate), after SASL authentication (SCRAM-SHA-256/512 per
RFC 5802, or PLAIN) where the listener asks for it.
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
    """How to reach a listener: protocol, CA file and expected name (TLS), SASL credentials.

    ``cert_file``/``key_file`` (PEM; the key may be in ``cert_file``), with ``key_password`` for an
    encrypted key, give a client certificate for mutual TLS. ``check_hostname=False`` accepts a
    server certificate issued for another name (still verified against the CA);
    ``verify_certificates=False`` accepts any server certificate."""

    def __init__(self, protocol="PLAINTEXT", ca_file=None, server_hostname=None, mechanism="SCRAM-SHA-512",
                 username=None, password=None, cert_file=None, key_file=None, key_password=None,
                 check_hostname=None, verify_certificates=None):
        self.protocol = (protocol or "PLAINTEXT").upper()
        if self.protocol not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
            raise ValueError(f"unknown security protocol {protocol!r}")
        self.ca_file = ca_file
        self.server_hostname = server_hostname
        self.mechanism = mechanism
        self.username = username
        self.password = password
        self.cert_file = cert_file
        self.key_file = key_file
        self.key_password = key_password
        self.check_hostname = check_hostname is not False
        self.verify_certificates = verify_certificates is not False

    @property
    def tls(self):
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self):
        return self.protocol.startswith("SASL_")

    def ssl_context(self):
        """The client-side TLS context: CA file or directory, client certificate, name checking."""
        ca = self.ca_file
        capath = ca if ca and os.path.isdir(ca) else None
        context = ssl.create_default_context(cafile=None if capath else ca, capath=capath)
        # Python 3.13 adds X.509 strict checking to the default context, which refuses certificates
        # the brokers' Java and librdkafka clients accept (a CA without an Authority Key Identifier,
        # as some bring-your-own CAs are): the same certificates work from every Python version.
        context.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)
        if not self.verify_certificates:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif not self.check_hostname:
            context.check_hostname = False
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file, self.key_password)
        return context

    def __repr__(self):  # never shows the password or the key password
        cert = f", cert={self.cert_file}" if self.cert_file else ""
        return f"Security({self.protocol}, mechanism={self.mechanism}, user={self.username}{cert})"


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
            context = security.ssl_context()
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


# --------------------------------------------------------------------------------------------------
# Client quotas: DescribeClientQuotas v0 and AlterClientQuotas v0 (non-flexible, Kafka 2.6+)
# --------------------------------------------------------------------------------------------------

DESCRIBE_CLIENT_QUOTAS = 48
ALTER_CLIENT_QUOTAS = 49
QUOTA_ENTITY_TYPES = ("user", "client-id", "ip")

# Kafka error codes (org.apache.kafka.common.protocol.Errors) that quota requests answer with.
ERROR_NAMES = {
    -1: "UNKNOWN_SERVER_ERROR",
    7: "REQUEST_TIMED_OUT",
    13: "NETWORK_EXCEPTION",
    31: "CLUSTER_AUTHORIZATION_FAILED",
    35: "UNSUPPORTED_VERSION",
    40: "INVALID_CONFIG",
    41: "NOT_CONTROLLER",
    42: "INVALID_REQUEST",
    44: "POLICY_VIOLATION",
    58: "SASL_AUTHENTICATION_FAILED",
    89: "THROTTLING_QUOTA_EXCEEDED",
}


class QuotaError(ProbeError):
    """The broker answered a client-quota request with an error (asking another broker will not help)."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


def error_name(code):
    return ERROR_NAMES.get(code, f"error code {code}")


def _nullable_string(value):
    return struct.pack(">h", -1) if value is None else _string(value)


def _entity_order(entity_type):
    return (QUOTA_ENTITY_TYPES.index(entity_type) if entity_type in QUOTA_ENTITY_TYPES else len(QUOTA_ENTITY_TYPES),
            entity_type)


def _entity(pairs):
    """{entity_type: name or None} in a stable order (user, client-id, ip, then others by name)."""
    out = {}
    for entity_type, name in sorted(pairs, key=lambda pair: _entity_order(pair[0])):
        if entity_type in out:
            raise ProbeError(f"the quota entity names {entity_type} twice")
        out[entity_type] = name
    return out


def _entity_sort_key(entity):
    # The default entity (None) sorts before named ones of the same type.
    return tuple((_entity_order(t), name is not None, name or "") for t, name in entity.items())


def format_entity(entity):
    """``user=alice, client-id=<default>``: a quota entity as people read it."""
    return ", ".join(f"{t}={'<default>' if name is None else name}" for t, name in _entity(entity.items()).items())


def _encode_entity(entity):
    if not entity:
        raise ValueError("a quota entity needs at least one of the types user, client-id, ip")
    for entity_type, name in entity.items():
        if not isinstance(entity_type, str) or not entity_type:
            raise ValueError(f"quota entity type {entity_type!r} is not a non-empty string")
        if name is not None and not isinstance(name, str):
            raise ValueError(f"quota entity name {name!r} ({entity_type}) is neither a string nor None")
    out = struct.pack(">i", len(entity))
    for entity_type, name in _entity(entity.items()).items():
        out += _string(entity_type) + _nullable_string(name)
    return out


def _read_entity(r):
    return _entity([(r.string(), r.string()) for _ in range(r.int32())])


def describe_client_quotas_request_v0():
    """DescribeClientQuotas v0 body: a filter of no components, strict=false, which matches every entity."""
    return struct.pack(">i", 0) + b"\x00"


def parse_describe_client_quotas_v0(data):
    """Every quota entity with its values, sorted: [{"entity": {type: name or None}, "values": {key: float}}]."""
    r = _Reader(data)
    r.int32()  # throttle_time_ms
    error, message = r.int16(), r.string()
    if error:
        raise QuotaError(f"DescribeClientQuotas failed: {error_name(error)}: {message or 'no detail'}", error)
    entries = []
    for _ in range(max(r.int32(), 0)):  # a null array (-1) is no entries
        entity = _read_entity(r)
        values = {}
        for _ in range(r.int32()):
            key = r.string()
            values[key] = r._take(">d")
        entries.append({"entity": entity, "values": dict(sorted(values.items()))})
    entries.sort(key=lambda e: _entity_sort_key(e["entity"]))
    return entries


def alter_client_quotas_request_v0(entries, validate_only=False):
    """AlterClientQuotas v0 body. ``entries``: [{"entity": {type: name or None}, "values": {key: number},
    "remove": [key, ...]}] ("values" and "remove" optional, a key in neither is left as it is)."""
    out = struct.pack(">i", len(entries))
    for entry in entries:
        values = entry.get("values") or {}
        remove = entry.get("remove") or ()
        remove = [remove] if isinstance(remove, str) else list(remove)
        both = sorted(set(values) & set(remove))
        if both:
            raise ValueError(f"quota {', '.join(both)} of {format_entity(entry['entity'])} is both set and removed")
        out += _encode_entity(entry["entity"])
        ops = [(key, float(value), False) for key, value in sorted(values.items())]
        ops += [(key, 0.0, True) for key in sorted(set(remove))]
        out += struct.pack(">i", len(ops))
        for key, value, removed in ops:
            out += _string(key) + struct.pack(">d?", value, removed)
    return out + struct.pack(">?", bool(validate_only))


def parse_alter_client_quotas_v0(data):
    """The entities the broker altered (as it names them, sorted as described); QuotaError naming every entity
    that failed. (The broker does not answer in the order of the request.)"""
    r = _Reader(data)
    r.int32()  # throttle_time_ms
    done, failed = [], []
    for _ in range(r.int32()):
        error, message = r.int16(), r.string()
        entity = _read_entity(r)
        if error:
            failed.append((error, f"{format_entity(entity)}: {error_name(error)}: {message or 'no detail'}"))
        else:
            done.append(entity)
    if failed:
        raise QuotaError("AlterClientQuotas failed for " + "; ".join(text for _, text in failed), failed[0][0])
    return sorted(done, key=_entity_sort_key)


def describe_client_quotas(host, port, timeout=5.0, security=PLAINTEXT):
    """Every client quota the cluster holds, sorted by entity:
    ``[{"entity": {"user": "alice", "client-id": None}, "values": {"producer_byte_rate": 1024.0}}]``.

    Entity types are "user", "client-id" and "ip"; a name of None is the default entity of that type."""
    return parse_describe_client_quotas_v0(_roundtrip(host, port, DESCRIBE_CLIENT_QUOTAS, 0,
                                                      describe_client_quotas_request_v0(), timeout, security))


def alter_client_quotas(host, port, entries, timeout=5.0, security=PLAINTEXT, validate_only=False):
    """Set ("values") and remove ("remove") quotas of each entity in ``entries`` (see
    :func:`alter_client_quotas_request_v0`); returns the entities altered, raises QuotaError on any failure."""
    body = alter_client_quotas_request_v0(entries, validate_only)
    return parse_alter_client_quotas_v0(_roundtrip(host, port, ALTER_CLIENT_QUOTAS, 0, body, timeout, security))


def bootstrap_pairs(bootstrap):
    """[(host, port)] of a bootstrap list: "h1:9092,h2:9093", "[::1]:9092", "SSL://h:9093", or a list of these.

    A server without a port gets 9092, as librdkafka gives it."""
    items = bootstrap.split(",") if isinstance(bootstrap, str) else list(bootstrap)
    pairs = []
    for item in items:
        spec = item.strip()
        if "://" in spec:
            spec = spec.split("://", 1)[1]
        if not spec:
            continue
        if spec.startswith("["):
            host, _, rest = spec[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else ""
        elif spec.count(":") == 1:
            host, port = spec.split(":")
        else:
            host, port = spec, ""
        if not host or (port and not port.isdigit()) or not 0 < int(port or 9092) < 65536:
            raise ValueError(f"bad bootstrap server {item.strip()!r} (host:port expected)")
        pairs.append((host, int(port or 9092)))
    if not pairs:
        raise ValueError(f"no bootstrap server in {bootstrap!r}")
    return pairs


def _first_answer(bootstrap, call):
    """call(host, port) on each bootstrap server in turn until one answers; the last error when none does.

    A broker that answers with an error (QuotaError) is the answer: the next broker would say the same."""
    last = None
    for host, port in bootstrap_pairs(bootstrap):
        try:
            return call(host, port)
        except QuotaError:
            raise
        except (OSError, ProbeError) as exc:
            if last is not None:
                exc.add_note(f"before: {last}")
            last = exc
    raise last


def describe_client_quotas_any(bootstrap, timeout=5.0, security=PLAINTEXT):
    """:func:`describe_client_quotas` from the first bootstrap server that answers (any broker can)."""
    return _first_answer(bootstrap, lambda host, port: describe_client_quotas(host, port, timeout, security))


def alter_client_quotas_any(bootstrap, entries, timeout=5.0, security=PLAINTEXT, validate_only=False):
    """:func:`alter_client_quotas` through the first bootstrap server that answers (brokers forward it)."""
    return _first_answer(bootstrap, lambda host, port: alter_client_quotas(host, port, entries, timeout, security,
                                                                           validate_only))


_SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
# librdkafka settings this client cannot honour: refused rather than ignored (the handshake would fail obscurely).
_UNSUPPORTED_TLS_SETTINGS = ("ssl.ca.pem", "ssl.certificate.pem", "ssl.key.pem", "ssl.keystore.location",
                             "ssl_certificate", "ssl_key", "ssl.engine.location", "ssl.providers")


def _false(value):
    return str(value).strip().lower() in ("false", "0", "no", "off")


def security_from_client_config(config):
    """A :class:`Security` for a confluent-kafka / librdkafka client configuration (a dict of its settings).

    Reads security.protocol, sasl.mechanism (or sasl.mechanisms), sasl.username, sasl.password,
    ssl.ca.location, ssl.certificate.location, ssl.key.location, ssl.key.password,
    ssl.endpoint.identification.algorithm ("none" turns off the host name check) and
    enable.ssl.certificate.verification; raises ValueError for settings it cannot follow."""
    protocol = str(config.get("security.protocol") or "PLAINTEXT").upper()
    kwargs = {}
    if protocol.startswith("SASL_"):
        mechanism = config.get("sasl.mechanism") or config.get("sasl.mechanisms")
        if not mechanism:
            raise ValueError(f"security.protocol {protocol} without sasl.mechanism (librdkafka would use GSSAPI, "
                             f"which this client does not speak; it speaks {', '.join(_SASL_MECHANISMS)})")
        mechanism = str(mechanism).strip().upper()
        if mechanism not in _SASL_MECHANISMS:
            raise ValueError(f"sasl.mechanism {mechanism} is not one of {', '.join(_SASL_MECHANISMS)}")
        if config.get("sasl.username") is None or config.get("sasl.password") is None:
            raise ValueError(f"sasl.mechanism {mechanism} needs sasl.username and sasl.password")
        kwargs.update(mechanism=mechanism, username=str(config["sasl.username"]),
                      password=str(config["sasl.password"]))
    if protocol in ("SSL", "SASL_SSL"):
        unsupported = [key for key in _UNSUPPORTED_TLS_SETTINGS if config.get(key)]
        if unsupported:
            raise ValueError(f"{', '.join(unsupported)} not supported: give PEM files with ssl.ca.location, "
                             "ssl.certificate.location and ssl.key.location")
        ca = config.get("ssl.ca.location")
        algorithm = str(config.get("ssl.endpoint.identification.algorithm", "https")).strip().lower()
        if algorithm not in ("none", "https"):
            raise ValueError(f"ssl.endpoint.identification.algorithm {algorithm!r} is neither none nor https")
        key, cert = config.get("ssl.key.location"), config.get("ssl.certificate.location")
        if key and not cert:
            raise ValueError("ssl.key.location without ssl.certificate.location")
        kwargs.update(ca_file=None if ca in (None, "", "probe") else ca, cert_file=cert or None,
                      key_file=key or None, key_password=config.get("ssl.key.password") or None,
                      check_hostname=algorithm != "none",
                      verify_certificates=not _false(config.get("enable.ssl.certificate.verification", True)))
    return Security(protocol, **kwargs)


# --------------------------------------------------------------------------------------------------
# Moving replicas: AlterPartitionReassignments v0, ListPartitionReassignments v0, DescribeLogDirs v4 and
# UnregisterBroker v0 (all flexible; confluent-kafka has no API for them). Kafka 3.9.x and 4.x answer each.
# --------------------------------------------------------------------------------------------------

DESCRIBE_LOG_DIRS = 35
ALTER_PARTITION_REASSIGNMENTS = 45
LIST_PARTITION_REASSIGNMENTS = 46
UNREGISTER_BROKER = 64
ERROR_NAMES.update({
    3: "UNKNOWN_TOPIC_OR_PART",
    38: "INVALID_REPLICATION_FACTOR",
    39: "INVALID_REPLICA_ASSIGNMENT",
    56: "KAFKA_STORAGE_ERROR",
    60: "REASSIGNMENT_IN_PROGRESS",
    85: "NO_REASSIGNMENT_IN_PROGRESS",
    94: "BROKER_ID_NOT_REGISTERED",
})


class ReassignmentError(ProbeError):
    """Kafka refused (part of) a reassignment; ``errors`` maps (topic, partition) to "NAME: message"."""

    def __init__(self, message, errors=None):
        super().__init__(message)
        self.errors = errors or {}


def _int32_array(values):
    return _uvarint(len(values) + 1) + b"".join(struct.pack(">i", v) for v in values)


def _read_int32_array(r):
    return [r.int32() for _ in range(r.compact_array_length())]


def _by_topic(items):
    """{(topic, partition): value} -> [(topic, [(partition, value)])], sorted."""
    topics = {}
    for (topic, partition), value in sorted(items.items()):
        topics.setdefault(topic, []).append((partition, value))
    return sorted(topics.items())


def _flexible_answer(data):
    """A flexible response's reader after its header, throttle time, error code and error message."""
    r = _Reader(data)
    r.skip_tagged_fields()  # response header v1
    r.int32()  # throttle_time_ms
    return r, r.int16(), r.compact_string()


def alter_partition_reassignments_request_v0(targets, timeout_ms=60000):
    """``targets``: {(topic, partition): [replica ids] to move to, or None to cancel the move in flight}."""
    body = struct.pack(">i", timeout_ms)
    topics = _by_topic(targets)
    body += _uvarint(len(topics) + 1)
    for topic, partitions in topics:
        body += _compact_string(topic) + _uvarint(len(partitions) + 1)
        for partition, replicas in partitions:
            body += struct.pack(">i", partition)
            body += b"\x00" if replicas is None else _int32_array(list(replicas))
            body += b"\x00"
        body += b"\x00"
    return body + b"\x00"


def parse_alter_partition_reassignments_v0(data):
    """{(topic, partition): "ERROR_NAME: message"} of the partitions Kafka refused (empty: all accepted)."""
    r, error, message = _flexible_answer(data)
    if error:
        raise ReassignmentError(f"{error_name(error)}: {message or 'the reassignment was refused'}")
    refused = {}
    for _ in range(r.compact_array_length()):
        topic = r.compact_string()
        for _ in range(r.compact_array_length()):
            partition, perror, pmessage = r.int32(), r.int16(), r.compact_string()
            r.skip_tagged_fields()
            if perror:
                refused[(topic, partition)] = f"{error_name(perror)}: {pmessage or ''}".rstrip(": ")
        r.skip_tagged_fields()
    return refused


def list_partition_reassignments_request_v0(timeout_ms=60000):
    return struct.pack(">i", timeout_ms) + b"\x00" + b"\x00"  # every topic (null array), no tagged fields


def parse_list_partition_reassignments_v0(data):
    """{(topic, partition): {"replicas", "adding", "removing"}} of the reassignments in flight."""
    r, error, message = _flexible_answer(data)
    if error:
        raise ReassignmentError(f"{error_name(error)}: {message or 'listing reassignments failed'}")
    out = {}
    for _ in range(r.compact_array_length()):
        topic = r.compact_string()
        for _ in range(r.compact_array_length()):
            partition = r.int32()
            replicas, adding, removing = _read_int32_array(r), _read_int32_array(r), _read_int32_array(r)
            r.skip_tagged_fields()
            out[(topic, partition)] = {"replicas": replicas, "adding": adding, "removing": removing}
        r.skip_tagged_fields()
    return out


def describe_log_dirs_request_v4():
    return b"\x00" + b"\x00"  # every topic (null array), no tagged fields


def parse_describe_log_dirs_v4(data):
    """The answering broker's log directories: [{"path", "error", "total_bytes", "usable_bytes",
    "partitions": {(topic, partition): {"size", "offset_lag", "future"}}}]."""
    r = _Reader(data)
    r.skip_tagged_fields()
    r.int32()
    error = r.int16()
    if error:
        raise ProbeError(f"DescribeLogDirs: {error_name(error)}")
    dirs = []
    for _ in range(r.compact_array_length()):
        derror, path = r.int16(), r.compact_string()
        partitions = {}
        for _ in range(r.compact_array_length()):
            topic = r.compact_string()
            for _ in range(r.compact_array_length()):
                partition, size, lag = r.int32(), r.int64(), r.int64()
                future = r.data[r.pos] != 0
                r.pos += 1
                r.skip_tagged_fields()
                partitions[(topic, partition)] = {"size": size, "offset_lag": lag, "future": future}
            r.skip_tagged_fields()
        total, usable = r.int64(), r.int64()
        r.skip_tagged_fields()
        dirs.append({"path": path, "error": error_name(derror) if derror else None, "total_bytes": total,
                     "usable_bytes": usable, "partitions": partitions})
    return dirs


def unregister_broker_request_v0(broker_id):
    return struct.pack(">i", broker_id) + b"\x00"


def parse_unregister_broker_v0(data):
    r, error, message = _flexible_answer(data)
    if error:
        raise ProbeError(f"UnregisterBroker: {error_name(error)}{': ' + message if message else ''}")


def alter_partition_reassignments(host, port, targets, timeout=30.0, security=PLAINTEXT):
    """Submit reassignments (a list of replicas per partition, or None to cancel one in flight) to the broker
    at host:port: the controller in ZooKeeper mode; any broker in KRaft mode (it forwards the request).
    Returns the partitions Kafka refused, with why."""
    body = alter_partition_reassignments_request_v0(targets, int(timeout * 1000))
    return parse_alter_partition_reassignments_v0(_roundtrip(host, port, ALTER_PARTITION_REASSIGNMENTS, 0, body,
                                                             timeout + 5, security, flexible=True))


def list_partition_reassignments(host, port, timeout=30.0, security=PLAINTEXT):
    """The reassignments in flight, from the broker at host:port (as for :func:`alter_partition_reassignments`)."""
    body = list_partition_reassignments_request_v0(int(timeout * 1000))
    return parse_list_partition_reassignments_v0(_roundtrip(host, port, LIST_PARTITION_REASSIGNMENTS, 0, body,
                                                            timeout + 5, security, flexible=True))


def describe_log_dirs(host, port, timeout=30.0, security=PLAINTEXT):
    """The log directories of the broker at host:port, with each replica's size and the directory's free bytes."""
    return parse_describe_log_dirs_v4(_roundtrip(host, port, DESCRIBE_LOG_DIRS, 4, describe_log_dirs_request_v4(),
                                                 timeout, security, flexible=True))


def unregister_broker(host, port, broker_id, timeout=30.0, security=PLAINTEXT):
    """Remove a stopped broker's registration from a KRaft cluster (through any broker, which forwards it)."""
    parse_unregister_broker_v0(_roundtrip(host, port, UNREGISTER_BROKER, 0, unregister_broker_request_v0(broker_id),
                                          timeout, security, flexible=True))


# --------------------------------------------------------------------------------------------------
# Brokers with their fencing: DescribeCluster v2 (flexible, Kafka 4.0+), which confluent-kafka does not ask
# for. Older brokers answer v0/v1 only, without fenced brokers: callers check ApiVersions first.
# --------------------------------------------------------------------------------------------------

DESCRIBE_CLUSTER = 60
ENDPOINT_TYPE_BROKERS = 1


def describe_cluster_request_v2(include_fenced=True):
    """DescribeCluster v2 body: no authorized operations, the brokers' endpoints, fenced brokers too."""
    return struct.pack(">?b?", False, ENDPOINT_TYPE_BROKERS, bool(include_fenced)) + b"\x00"


def parse_describe_cluster_v2(data):
    """{"cluster_id", "controller_id", "brokers": [{"id", "host", "port", "rack", "fenced"}]} sorted by id."""
    r, error, message = _flexible_answer(data)
    if error:
        raise ProbeError(f"DescribeCluster: {error_name(error)}{': ' + message if message else ''}")
    r.pos += 1  # endpoint_type
    cluster_id, controller_id = r.compact_string(), r.int32()
    brokers = []
    for _ in range(r.compact_array_length()):
        broker_id, host, port, rack = r.int32(), r.compact_string(), r.int32(), r.compact_string()
        fenced = r.data[r.pos] != 0
        r.pos += 1
        r.skip_tagged_fields()
        brokers.append({"id": broker_id, "host": host, "port": port, "rack": rack, "fenced": fenced})
    r.int32()  # cluster_authorized_operations
    r.skip_tagged_fields()
    return {"cluster_id": cluster_id, "controller_id": controller_id,
            "brokers": sorted(brokers, key=lambda b: b["id"])}


def describe_cluster_v2(host, port, timeout=30.0, security=PLAINTEXT):
    """Every registered broker, fenced or not, as the broker at host:port knows them (Kafka 4.0+)."""
    return parse_describe_cluster_v2(_roundtrip(host, port, DESCRIBE_CLUSTER, 2, describe_cluster_request_v2(),
                                                timeout, security, flexible=True))


# --------------------------------------------------------------------------------------------------
# Committed offsets of consumer groups: FindCoordinator v4 and OffsetFetch v8 (flexible, Kafka 3.0+, many
# groups per request). librdkafka's ListConsumerGroupOffsets can crash the whole process when a coordinator
# answers NOT_COORDINATOR (a broker down, its coordinators moving): here that is an error of one group.
# --------------------------------------------------------------------------------------------------

FIND_COORDINATOR = 10
OFFSET_FETCH = 9
COORDINATOR_KEY_GROUP = 0
ERROR_NAMES.update({14: "COORDINATOR_LOAD_IN_PROGRESS", 15: "COORDINATOR_NOT_AVAILABLE", 16: "NOT_COORDINATOR",
                    30: "GROUP_AUTHORIZATION_FAILED", 69: "GROUP_ID_NOT_FOUND"})


def find_coordinators_request_v4(groups):
    body = struct.pack(">b", COORDINATOR_KEY_GROUP) + _uvarint(len(groups) + 1)
    body += b"".join(_compact_string(g) for g in groups)
    return body + b"\x00"


def parse_find_coordinators_v4(data):
    """{group: {"node_id", "host", "port", "error"}} (``error``: None, or the error's name and message)."""
    r = _Reader(data)
    r.skip_tagged_fields()
    r.int32()  # throttle_time_ms
    out = {}
    for _ in range(r.compact_array_length()):
        key, node_id, host, port = r.compact_string(), r.int32(), r.compact_string(), r.int32()
        error, message = r.int16(), r.compact_string()
        r.skip_tagged_fields()
        out[key] = {"node_id": node_id, "host": host, "port": port,
                    "error": f"{error_name(error)}{': ' + message if message else ''}" if error else None}
    return out


def offset_fetch_request_v8(groups):
    """Every committed offset (null topic array) of each group; require_stable false."""
    body = _uvarint(len(groups) + 1)
    for group in groups:
        body += _compact_string(group) + b"\x00" + b"\x00"  # all topics, no tagged fields
    return body + b"\x00" + b"\x00"  # require_stable, tagged fields


def parse_offset_fetch_v8(data, metadata=False):
    """{group: {"offsets": {(topic, partition): offset}, "error": None or a name}}: partitions without a commit
    (offset -1) or with an error are left out. With ``metadata``, each offset is ``(offset, metadata)``, the
    commit's metadata string ("" when none)."""
    r = _Reader(data)
    r.skip_tagged_fields()
    r.int32()  # throttle_time_ms
    out = {}
    for _ in range(r.compact_array_length()):
        group, offsets = r.compact_string(), {}
        for _ in range(r.compact_array_length()):
            topic = r.compact_string()
            for _ in range(r.compact_array_length()):
                partition, offset = r.int32(), r.int64()
                r.int32()  # committed_leader_epoch
                meta = r.compact_string()
                perror = r.int16()
                r.skip_tagged_fields()
                if not perror and offset >= 0:
                    offsets[(topic, partition)] = (offset, meta or "") if metadata else offset
            r.skip_tagged_fields()
        error = r.int16()
        r.skip_tagged_fields()
        out[group] = {"offsets": offsets, "error": error_name(error) if error else None}
    return out


def find_coordinators(host, port, groups, timeout=10.0, security=PLAINTEXT):
    return parse_find_coordinators_v4(_roundtrip(host, port, FIND_COORDINATOR, 4, find_coordinators_request_v4(groups),
                                                 timeout, security, flexible=True))


def offset_fetch(host, port, groups, timeout=10.0, security=PLAINTEXT, metadata=False):
    return parse_offset_fetch_v8(_roundtrip(host, port, OFFSET_FETCH, 8, offset_fetch_request_v8(groups), timeout,
                                            security, flexible=True), metadata)


def committed_offsets(bootstrap, groups, timeout=10.0, security=PLAINTEXT, metadata=False):
    """({group: {(topic, partition): offset}}, {group: why it could not be read}): each group asked of its
    coordinator, the groups of one coordinator in one request. A group whose coordinator is moving or down is
    in the second dict; the others are still read. ``metadata``: offsets as ``(offset, metadata)``."""
    groups = sorted(set(groups))
    if not groups:
        return {}, {}
    found = _first_answer(bootstrap, lambda h, p: find_coordinators(h, p, groups, timeout, security))
    failed, by_node = {}, {}
    for group in groups:
        c = found.get(group)
        if c is None or c["error"]:
            failed[group] = f"FindCoordinator: {c['error'] if c else 'no answer for the group'}"
        else:
            by_node.setdefault((c["host"], c["port"]), []).append(group)
    out = {}
    for (host, port), members in sorted(by_node.items()):
        try:
            answer = offset_fetch(host, port, members, timeout, security, metadata)
        except (OSError, ProbeError) as exc:
            failed.update({g: f"OffsetFetch from {host}:{port}: {exc}" for g in members})
            continue
        for group in members:
            a = answer.get(group)
            if a is None or a["error"]:
                failed[group] = f"OffsetFetch: {a['error'] if a else 'no answer for the group'}"
            else:
                out[group] = a["offsets"]
    return out, failed
