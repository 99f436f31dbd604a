# Copyright: kafka-metal contributors
# Apache License 2.0
"""What a host must offer before a node is set up on it, checked from one read of the host and before
anything on it changes: its node's ports free (or held by that node's own service), the limits PID 1 can
grant, the data disks' devices present, and a kernel that can be tuned when the inventory insists.

Two halves, both without I/O: :func:`host_plan` says, on the controller, what each host will need (from the
settings the ``kafka_validate`` action resolved); :func:`host_problems` compares that with what
``kafka_host_facts`` read on the host. The parsers for ``/proc/net/tcp`` and the socket owners are here too,
so that the module only reads files.
"""

from __future__ import annotations

import ipaddress

from .cluster import VERSION_RE, dist_version, parse_version
from .tuning import limit_problems

TCP_LISTEN = "0A"
TRUE = {"true", "yes", "on", "1", "y", "t"}
# Debian's prometheus-node-exporter runs as this user
NODE_EXPORTER_USER = "prometheus"


def node_port_owners(ports, kafka_user="kafka", zookeeper_user="zookeeper"):
    """``{variable: port}`` -> ``{port: (variable, user that may hold it)}``: a ZooKeeper port belongs to
    the ZooKeeper service's user, every other port to the Kafka service's."""
    out = {}
    for name, port in ports.items():
        try:
            number = int(port)
        except (TypeError, ValueError):
            continue  # refused by validation already
        if name == "kafka_node_exporter_port":
            user = NODE_EXPORTER_USER
        else:
            user = zookeeper_user if name.startswith("zookeeper_") else kafka_user
        out[number] = (name, user)
    return out


def host_plan(ports, kafka_user, zookeeper_user, limit_nofile, limit_nproc, data_disks, kernel_apply):
    """What one host needs, as plain data for the kafka role (JSON-safe: ports are strings as keys)."""
    owners = node_port_owners(ports, kafka_user, zookeeper_user)
    devices = {}
    for disk in data_disks or []:
        if isinstance(disk, dict) and isinstance(disk.get("device"), str):
            devices[disk["device"]] = str(disk.get("path", ""))
    return {
        "ports": {str(port): {"variable": name, "user": user} for port, (name, user) in sorted(owners.items())},
        "limit_nofile": limit_nofile,
        "limit_nproc": limit_nproc,
        "devices": devices,
        # as Ansible's bool filter reads the setting ("auto" is neither)
        "kernel_apply": "true" if str(kernel_apply).strip().lower() in TRUE else str(kernel_apply).strip().lower(),
    }


def _address(hex_address):
    """``0100007F`` (/proc/net/tcp, host byte order: little-endian 32-bit words) -> ``127.0.0.1``."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words))


def listening_sockets(tables):
    """Sockets in LISTEN state from the text of ``/proc/net/tcp`` and ``/proc/net/tcp6``:
    ``[{"address", "port", "uid", "inode"}]``."""
    out = []
    for text in tables:
        for line in text.splitlines()[1:]:
            fields = line.split()
            if len(fields) < 10 or fields[3] != TCP_LISTEN:
                continue
            hex_address, _, hex_port = fields[1].partition(":")
            try:
                out.append({"address": _address(hex_address), "port": int(hex_port, 16), "uid": int(fields[7]),
                            "inode": int(fields[9])})
            except ValueError:
                continue
    return out


def socket_inode(link):
    """``socket:[12345]`` (the target of a /proc/PID/fd entry) -> 12345, or None."""
    if link.startswith("socket:[") and link.endswith("]"):
        try:
            return int(link[8:-1])
        except ValueError:
            return None
    return None


def port_problems(listeners, ports):
    """Ports the node needs that another program listens on. ``listeners``: what kafka_host_facts found
    on the node's ports (``port``, ``address``, ``user``, ``pid``, ``process``); ``ports``: the plan's
    ``{port: {variable, user}}``."""
    out, seen = [], set()
    for found in sorted(listeners or [], key=lambda f: (int(f.get("port", 0)), str(f.get("address")))):
        port = int(found.get("port", 0))
        want = ports.get(str(port)) or ports.get(port)
        if not want or found.get("user") == want["user"] or port in seen:
            continue
        seen.add(port)
        holder = found.get("process") or "a program"
        details = ", ".join(x for x in (f"pid {found['pid']}" if found.get("pid") else "",
                                        f"user {found.get('user')}" if found.get("user") else "") if x)
        out.append(f"{want['variable']} is {port}, but {holder} ({details}) already listens on "
                   f"{found.get('address')}:{port} on this host, so the node could not start: stop that "
                   f"program or choose a free port for {want['variable']}")
    return out


def host_problems(facts, plan):
    """Why this host cannot run its node, from kafka_host_facts' result and :func:`host_plan`'s entry for
    the host (empty when it can)."""
    if not plan:
        return []
    out = port_problems(facts.get("listeners"), plan.get("ports") or {})
    limits = {k: tuple(v) for k, v in (facts.get("pid1_limits") or {}).items()}
    try:
        out += limit_problems(limits, int(plan["limit_nofile"]), int(plan["limit_nproc"]))
    except (KeyError, TypeError, ValueError):
        pass  # malformed limits are refused by validation
    present = set(facts.get("paths_present") or [])
    for device, path in sorted((plan.get("devices") or {}).items()):
        if device not in present:
            out.append(f"tuning_data_disks names {device} (for {path}), which does not exist on this host: "
                       "correct the device (lsblk and /dev/disk/by-id list the host's disks) or remove the entry")
    if plan.get("kernel_apply") == "true" and not facts.get("kernel_writable", True):
        where = f" (it runs in a {facts['container']} container)" if facts.get("container") else ""
        out.append(f"tuning_kernel_apply is true, but this host's kernel settings are read-only{where}: set "
                   "tuning_kernel_apply to auto, which writes the settings file and applies it where the kernel "
                   "allows")
    return out


def running_release(link_target):
    """The Kafka release a node's current link points at (the directory of the archive, ``...-3.9.1``), or
    None where there is no link or it points somewhere kafka-metal did not unpack."""
    return dist_version(link_target)


def version_problems(link_target, version, switch=True):
    """Why the node must not be switched to ``version``: it runs a newer release. Switching a node's link back
    and restarting it outside the rolling engine would take it back without the gates, and past a finalized
    upgrade the older release cannot read the metadata at all; a roll back goes through the rolling upgrade."""
    running = running_release(link_target)
    if not switch or running is None or not VERSION_RE.match(str(version).strip()):
        return []
    if parse_version(running) <= parse_version(str(version).strip()):
        return []
    return [f"this node runs Kafka {running}, newer than kafka_version {version}, and site.yml does not take a "
            f"running node back to an older release: set kafka_version to {running} in the inventory (an "
            f"upgrade done with playbooks/rolling_upgrade.yml leaves it to you to raise it there), or, to roll "
            f"the cluster back while its upgrade is not finalized, run playbooks/rolling_upgrade.yml with "
            f"-e kafka_version={version}"]
