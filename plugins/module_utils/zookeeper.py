# Copyright: kafka-metal contributors
# Apache License 2.0
"""ZooKeeper ensemble health over the four-letter words (``srvr``, ``ruok``, ``mntr``).

Pure parsing and decisions are separate from the socket calls so they are unit-tested:
who leads, whether a quorum is serving, in which order nodes may be restarted.
"""

from __future__ import annotations

import socket
import struct


class ZooKeeperError(RuntimeError):
    pass


def four_letter_word(host, port, word, timeout=3.0):
    """Send a four-letter word and return the whole answer (text)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(word.encode())
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    text = b"".join(chunks).decode(errors="replace")
    if "is not executed because it is not in the whitelist" in text:
        raise ZooKeeperError(f"{host}:{port} refuses '{word}': add it to 4lw.commands.whitelist")
    return text


def parse_srvr(text):
    """``srvr`` output -> dict with mode, zxid, version, node_count, latency fields."""
    out = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        key, value = line.split(":", 1)
        key, value = key.strip().lower(), value.strip()
        if key == "mode":
            out["mode"] = value
        elif key == "zookeeper version":
            out["version"] = value.split(",")[0].split("-")[0]
        elif key == "zxid":
            out["zxid"] = int(value, 16) if value.startswith("0x") else int(value)
        elif key == "node count":
            out["node_count"] = int(value)
        elif key == "connections":
            out["connections"] = int(value)
    return out


def member_state(host, port, timeout=3.0):
    """One member's state: {"host", "serving", "mode", ...}; never raises for a down node."""
    try:
        info = parse_srvr(four_letter_word(host, port, "srvr", timeout))
    except ZooKeeperError:
        raise
    except OSError as exc:
        return {"host": host, "serving": False, "mode": None, "error": str(exc)}
    if not info.get("mode"):
        # "This ZooKeeper instance is not currently serving requests": no quorum from its side.
        return {"host": host, "serving": False, "mode": None, "error": "not serving requests"}
    return {"host": host, "serving": True, **info}


def ensemble_status(states):
    """Summarise member states (from :func:`member_state`, one per ensemble member)."""
    leaders = [s["host"] for s in states if s.get("mode") == "leader"]
    followers = [s["host"] for s in states if s.get("mode") == "follower"]
    standalone = [s["host"] for s in states if s.get("mode") == "standalone"]
    size = len(states)
    serving = len(leaders) + len(followers)
    majority = size // 2 + 1
    return {
        "size": size,
        "leader": leaders[0] if len(leaders) == 1 else None,
        "leaders": leaders,
        "followers": followers,
        "standalone": standalone,
        "down": [s["host"] for s in states if not s.get("serving")],
        "serving": serving,
        "quorum": len(leaders) == 1 and serving >= majority,
        "healthy": len(leaders) == 1 and serving == size,
    }


def ensemble_errors(members):
    """Checks of the inventory's ensemble: ``members`` maps host -> myid."""
    errors = []
    size = len(members)
    if size == 0:
        return ["group zookeeper is empty: ZooKeeper mode needs an ensemble of 3 or 5 hosts in the zookeeper group"]
    if size % 2 == 0:
        errors.append(
            f"the zookeeper group has {size} hosts: an ensemble needs an odd number (3 or 5) so that a majority "
            f"survives a failure; use {size - 1} or {size + 1}"
        )
    ids = {}
    for host, myid in sorted(members.items()):
        if myid is None or myid == "" or isinstance(myid, bool) or not str(myid).isdigit() \
                or not 1 <= int(myid) <= 255:
            errors.append(f"host {host}: zookeeper_id {myid!r} must be an integer from 1 to 255, unique in the "
                          "ensemble (it becomes the node's myid)")
            continue
        ids.setdefault(int(myid), []).append(host)
    for myid, hosts in sorted(ids.items()):
        if len(hosts) > 1:
            errors.append(f"zookeeper_id {myid} is used by {', '.join(hosts)}: every ZooKeeper node needs its own "
                          "myid")
    return errors


def connect_string(members, port, chroot=""):
    """``zookeeper.connect`` for brokers: members maps host -> address."""
    hosts = ",".join(f"{addr}:{int(port)}" for _h, addr in sorted(members.items()))
    return hosts + (chroot or "")


ZOO_CFG_DEFAULTS = {
    "tickTime": "2000",
    "initLimit": "10",
    "syncLimit": "5",
    "maxClientCnxns": "60",
    "autopurge.snapRetainCount": "5",
    "autopurge.purgeInterval": "24",
    "4lw.commands.whitelist": "srvr,stat,ruok,mntr",
    "admin.enableServer": "false",
    "standaloneEnabled": "false",
    "reconfigEnabled": "false",
}


def zoo_cfg(*, members, data_dir, data_log_dir, client_port, peer_port, election_port, overrides=None):
    """zoo.cfg as a dict of strings: ``members`` maps myid -> address."""
    cfg = dict(ZOO_CFG_DEFAULTS)
    cfg.update({
        "dataDir": data_dir,
        "dataLogDir": data_log_dir,
        "clientPort": str(int(client_port)),
    })
    for myid, address in sorted(members.items(), key=lambda kv: int(kv[0])):
        cfg[f"server.{int(myid)}"] = f"{address}:{int(peer_port)}:{int(election_port)};{int(client_port)}"
    cfg.update(overrides or {})
    return cfg


# ---------------------------------------------------------------------------
# A minimal ZooKeeper client: read and delete single znodes (the migration's /cluster/id, /controller,
# /migration), over ZooKeeper's own binary protocol (jute), without a session kept beyond one call.
# ---------------------------------------------------------------------------

_OP_DELETE, _OP_GET_DATA, _OP_CLOSE = 2, 4, -11
_NO_NODE = -101
_ERRORS = {-101: "no such node", -102: "no permission (the node has ACLs)", -111: "the node has children",
           -103: "version mismatch", -4: "connection lost", -112: "session expired"}


def _recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ZooKeeperError("ZooKeeper closed the connection")
        buf += chunk
    return buf


def _frame(sock):
    (length,) = struct.unpack(">i", _recv_exact(sock, 4))
    return _recv_exact(sock, length)


def _string(value):
    data = value.encode()
    return struct.pack(">i", len(data)) + data


class ZnodeClient:
    """One connection to one ZooKeeper server; ``with ZnodeClient(host, port) as zk: zk.get('/x')``."""

    def __init__(self, host, port, timeout=10.0):
        self.host, self.port, self.timeout = host, int(port), timeout
        self.sock = None
        self.xid = 0

    def __enter__(self):
        self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        self.sock.settimeout(self.timeout)
        # ConnectRequest: protocolVersion, lastZxidSeen, timeOut, sessionId, passwd (16 zero bytes), readOnly
        body = struct.pack(">iqiqi", 0, 0, int(self.timeout * 1000), 0, 16) + b"\0" * 16 + b"\0"
        self.sock.sendall(struct.pack(">i", len(body)) + body)
        reply = _frame(self.sock)
        if len(reply) < 16:
            raise ZooKeeperError(f"{self.host}:{self.port} refused the session (is it serving a quorum?)")
        return self

    def __exit__(self, *exc):
        try:
            self._call(_OP_CLOSE, b"")
        except (OSError, ZooKeeperError):
            pass
        finally:
            self.sock.close()

    def _call(self, op, payload):
        self.xid += 1
        body = struct.pack(">ii", self.xid, op) + payload
        self.sock.sendall(struct.pack(">i", len(body)) + body)
        while True:
            reply = _frame(self.sock)
            xid, _zxid, err = struct.unpack(">iqi", reply[:16])
            if xid == self.xid:
                return err, reply[16:]
            # watch events (xid -1) and pings (-2) are not ours

    def get(self, path):
        """The data of ``path`` as bytes, or None when the node does not exist."""
        err, rest = self._call(_OP_GET_DATA, _string(path) + b"\0")
        if err == _NO_NODE:
            return None
        if err:
            raise ZooKeeperError(f"reading {path}: {_ERRORS.get(err, f'error {err}')}")
        (length,) = struct.unpack(">i", rest[:4])
        return b"" if length < 0 else rest[4:4 + length]

    def delete(self, path):
        """Delete ``path`` (any version); False when it did not exist."""
        err, _ = self._call(_OP_DELETE, _string(path) + struct.pack(">i", -1))
        if err == _NO_NODE:
            return False
        if err:
            raise ZooKeeperError(f"deleting {path}: {_ERRORS.get(err, f'error {err}')}")
        return True


def connect_members(connect):
    """``[(host, port), ...]`` and the chroot of a ``zookeeper.connect`` string."""
    hosts, _, chroot = connect.partition("/")
    members = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        members.append((host or item.strip(), int(port or 2181)))
    return members, ("/" + chroot).rstrip("/") if chroot else ""
