# Copyright: kafka-metal contributors
# Apache License 2.0
"""A minimal Kafka protocol client for readiness probes, with no dependency on the host.

It speaks two requests that every supported version answers (3.9.x and 4.x):
ApiVersions v0 (is the listener serving requests?) and Metadata v4 (which brokers are
alive, i.e. registered and unfenced, and who the cluster is).
"""

from __future__ import annotations

import socket
import struct

API_VERSIONS = 18
METADATA = 3


class ProbeError(RuntimeError):
    pass


def _request(api_key, api_version, correlation_id, body, client_id="kafka-metal-probe"):
    cid = client_id.encode()
    header = struct.pack(">hhih", api_key, api_version, correlation_id, len(cid)) + cid
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


def _roundtrip(host, port, api_key, api_version, body, timeout):
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(_request(api_key, api_version, 1, body))
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        data = _recv_exact(sock, size)
    (corr,) = struct.unpack_from(">i", data, 0)
    if corr != 1:
        raise ProbeError(f"unexpected correlation id {corr}")
    return data[4:]


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

    def string(self):
        n = self.int16()
        if n < 0:
            return None
        value = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return value


def api_versions(host, port, timeout=5.0):
    """Return {api_key: (min, max)}; raises OSError/ProbeError when not serving."""
    r = _Reader(_roundtrip(host, port, API_VERSIONS, 0, b"", timeout))
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


def metadata(host, port, timeout=5.0):
    """Brokers alive (registered, unfenced), cluster id and controller id, as a broker sees them."""
    body = struct.pack(">i", 0) + b"\x00"  # no topics, allow_auto_topic_creation=false
    return parse_metadata_v4(_roundtrip(host, port, METADATA, 4, body, timeout))


def active_controller(brokers, timeout=5.0):
    """The controller id as the first answering broker reports it, with who answered.

    ``brokers``: list of "host:port" of PLAINTEXT listeners. In ZooKeeper mode this is the broker
    that acts as controller; in KRaft mode brokers report a controller-facing id as well.
    Returns ``(controller_id, "host:port")`` or raises ProbeError when no broker answers.
    """
    errors = []
    for spec in brokers:
        host, _, port = spec.rpartition(":")
        try:
            return metadata(host, int(port), timeout)["controller_id"], spec
        except (OSError, ProbeError, ValueError) as exc:
            errors.append(f"{spec}: {exc}")
    raise ProbeError("no broker answered: " + "; ".join(errors))
