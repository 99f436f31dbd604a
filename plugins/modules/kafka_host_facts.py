#!/usr/bin/python
# Copyright: kafka-metal contributors
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kafka_host_facts
short_description: Read what a Kafka host can do (memory, limits, kernel settings, huge pages)
version_added: 0.1.0
description:
  - Reads memory, the hard limits systemd (PID 1) can grant, whether kernel settings can be changed
    (C(/proc/sys) is read-only in containers), the transparent huge page modes and active swap.
  - Never changes anything; the tuning role and the JVM sizing decide from these facts.
  - Also says which of the given O(paths) exist, so a role can look for several tools in the same
    module run (each module run costs seconds on a slow or emulated host).
  - One run answers everything the roles decide from, since each module run costs seconds on a slow or
    emulated host. Besides the above, the targets of O(links), which of O(users) and O(groups) exist, the
    cluster ids recorded in O(storage_dirs), the programs listening on O(ports), and with O(names) the
    host's names and IPv4 addresses.
options:
  paths:
    description: Paths to look for (tools, daemons); the ones that exist come back in RV(paths_present).
    type: list
    elements: path
    default: []
  links:
    description: Symbolic links to read; their targets come back in RV(links).
    type: list
    elements: path
    default: []
  users:
    description: User names to look for; the ones that exist come back in RV(users_present).
    type: list
    elements: str
    default: []
  groups:
    description: Group names to look for; the ones that exist come back in RV(groups_present).
    type: list
    elements: str
    default: []
  storage_dirs:
    description: Kafka storage directories whose recorded cluster ids come back in RV(cluster_ids).
    type: list
    elements: path
    default: []
  ports:
    description:
      - TCP ports the host's node will listen on; the programs already listening on any of them come back in
        RV(listeners) (read from C(/proc/net/tcp) and C(/proc/net/tcp6) of the host's network namespace).
    type: list
    elements: int
    default: []
  names:
    description: Also return the host's fully qualified name, short name and IPv4 addresses (for certificates).
    type: bool
    default: false
  properties_file:
    description:
      - A Java properties file (the node's C(server.properties)) whose O(properties_keys) come back in
        RV(properties); what the node is configured to run (the migration to KRaft reads its phase from it).
    type: path
  properties_keys:
    description: The keys of O(properties_file) to return (never a secret).
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - metal.kafka.read_only
"""

EXAMPLES = r"""
- name: Read the host's capabilities, and which NTP daemon is installed
  metal.kafka.kafka_host_facts:
    paths: [/usr/sbin/chronyd, /usr/sbin/ntpd, /lib/systemd/systemd-timesyncd]
  register: __host
"""

RETURN = r"""
mem_total:
  description: Memory in bytes (MemTotal).
  returned: always
  type: int
pid1_limits:
  description: Soft and hard limits of PID 1, by the names of /proc/1/limits.
  returned: always
  type: dict
kernel_writable:
  description: Whether kernel settings under /proc/sys and /sys can be written here.
  returned: always
  type: bool
container:
  description: The container technology the host runs in, or an empty string.
  returned: always
  type: str
thp_enabled:
  description: Transparent huge pages mode (always, madvise, never), empty when the kernel has none.
  returned: always
  type: str
thp_defrag:
  description: Transparent huge pages defrag mode, empty when the kernel has none.
  returned: always
  type: str
swaps:
  description: Active swap devices or files.
  returned: always
  type: list
  elements: str
paths_present:
  description: The given O(paths) that exist, in the given order.
  returned: always
  type: list
  elements: str
links:
  description: Target of each of O(links), or null where there is no link.
  returned: always
  type: dict
users_present:
  description: The given O(users) that exist.
  returned: always
  type: list
  elements: str
groups_present:
  description: The given O(groups) that exist.
  returned: always
  type: list
  elements: str
cluster_ids:
  description: Cluster ids found in the C(meta.properties) of O(storage_dirs).
  returned: always
  type: list
  elements: str
listeners:
  description: Sockets listening on any of O(ports), with the program that holds each.
  returned: always
  type: list
  elements: dict
  contains:
    port:
      description: The port.
      type: int
    address:
      description: The local address it listens on (C(0.0.0.0) or C(::) for every address).
      type: str
    user:
      description: The user owning the socket (its uid where the name is unknown).
      type: str
    pid:
      description: The process holding it (0 when no process could be found).
      type: int
    process:
      description: That process's name (empty when unknown).
      type: str
fqdn:
  description: The host's fully qualified name (with O(names)).
  returned: when O(names)
  type: str
hostname:
  description: The host's short name (with O(names)).
  returned: when O(names)
  type: str
properties:
  description: The O(properties_keys) found in O(properties_file); null when the file does not exist.
  returned: when O(properties_file)
  type: dict
properties_stale:
  description: Whether O(properties_file) changed after C(kafka.service)'s process started (it runs an older one).
  returned: when O(properties_file)
  type: bool
ipv4_addresses:
  description: The host's IPv4 addresses, loopback excluded (with O(names)).
  returned: when O(names)
  type: list
  elements: str
"""

import grp
import os
import platform
import pwd
import socket
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.metal.kafka.plugins.module_utils.preflight import listening_sockets, socket_inode
from ansible_collections.metal.kafka.plugins.module_utils.properties import parse
from ansible_collections.metal.kafka.plugins.module_utils.storage import cluster_ids, inspect_dir
from ansible_collections.metal.kafka.plugins.module_utils.tuning import parse_limits, thp_mode

THP = "/sys/kernel/mm/transparent_hugepage"


def _read(path, default=""):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def main():
    module = AnsibleModule(
        argument_spec={
            "paths": {"type": "list", "elements": "path", "default": []},
            "links": {"type": "list", "elements": "path", "default": []},
            "users": {"type": "list", "elements": "str", "default": []},
            "groups": {"type": "list", "elements": "str", "default": []},
            "storage_dirs": {"type": "list", "elements": "path", "default": []},
            "ports": {"type": "list", "elements": "int", "default": []},
            "names": {"type": "bool", "default": False},
            "properties_file": {"type": "path"},
            "properties_keys": {"type": "list", "elements": "str", "no_log": False, "default": []},
        },
        supports_check_mode=True,
    )
    p = module.params
    mem_total = 0
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            mem_total = int(line.split()[1]) * 1024
    container = _read("/run/systemd/container").strip()
    writable = os.access("/proc/sys/vm/swappiness", os.W_OK) and not container
    if writable:
        # a read-only mount (as in containers) still passes access(); statvfs says so
        writable = not (os.statvfs("/proc/sys").f_flag & os.ST_RDONLY)
    swaps = [line.split()[0] for line in _read("/proc/swaps").splitlines()[1:] if line.strip()]
    module.exit_json(
        changed=False,
        mem_total=mem_total,
        pid1_limits={k: list(v) for k, v in parse_limits(_read("/proc/1/limits")).items()},
        kernel_writable=bool(writable),
        container=container,
        thp_enabled=thp_mode(_read(f"{THP}/enabled")),
        thp_defrag=thp_mode(_read(f"{THP}/defrag")),
        swaps=swaps,
        paths_present=[path for path in p["paths"] if os.path.exists(path)],
        links={path: os.readlink(path) if os.path.islink(path) else None for path in p["links"]},
        users_present=[u for u in p["users"] if _exists(pwd.getpwnam, u)],
        groups_present=[g for g in p["groups"] if _exists(grp.getgrnam, g)],
        listeners=_listeners(p["ports"]),
        cluster_ids=cluster_ids([inspect_dir(d) for d in dict.fromkeys(p["storage_dirs"])]),
        **(_names(module) if p["names"] else {}),
        **({"properties": _properties(p["properties_file"], p["properties_keys"]),
            "properties_stale": _stale(module, p["properties_file"])} if p["properties_file"] else {}),
    )


def _properties(path, keys):
    if not os.path.isfile(path):
        return None
    found = parse(_read(path))
    return {k: found[k] for k in keys if k in found}


def _stale(module, path, unit="kafka.service"):
    """Whether ``path`` changed after ``unit``'s process started (its running configuration is an older one)."""
    systemctl = module.get_bin_path("systemctl")
    if not systemctl or not os.path.isfile(path):
        return False
    rc, out, _ = module.run_command([systemctl, "show", unit, "-p", "MainPID", "-p", "ExecMainStartTimestampMonotonic"],
                                    environ_update={"LC_ALL": "C"})
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line) if rc == 0 else {}
    pid, mono = int(values.get("MainPID") or 0), int(values.get("ExecMainStartTimestampMonotonic") or 0)
    if not pid or not mono:
        return False
    started = time.time() - (time.clock_gettime(time.CLOCK_MONOTONIC) - mono / 1e6)
    return os.stat(path).st_mtime > started


def _exists(lookup, name):
    try:
        lookup(name)
        return True
    except KeyError:
        return False


def _listeners(ports):
    """Who listens on any of ``ports``: the sockets from /proc/net, their owners from /proc/PID/fd."""
    wanted = set(ports)
    if not wanted:
        return []
    found = [s for s in listening_sockets([_read("/proc/net/tcp"), _read("/proc/net/tcp6")]) if s["port"] in wanted]
    if not found:
        return []
    inodes, holders = {s["inode"] for s in found}, {}
    for pid in (d for d in os.listdir("/proc") if d.isdigit()):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                inode = socket_inode(os.readlink(f"/proc/{pid}/fd/{fd}"))
                if inode in inodes and inode not in holders:
                    holders[inode] = int(pid)
        except OSError:
            continue  # the process ended, or is not ours to read
    out = []
    for s in found:
        pid = holders.get(s["inode"], 0)
        try:
            user = pwd.getpwuid(s["uid"]).pw_name
        except KeyError:
            user = str(s["uid"])
        out.append({"port": s["port"], "address": s["address"], "user": user, "pid": pid,
                    "process": _read(f"/proc/{pid}/comm").strip() if pid else ""})
    return out


def _names(module):
    """Names and addresses a certificate for this host must cover (what Ansible's network facts give)."""
    addresses = []
    ip = module.get_bin_path("ip")
    if ip:
        rc, out, _ = module.run_command([ip, "-4", "-o", "addr", "show"], environ_update={"LC_ALL": "C"})
        if rc == 0:
            for line in out.splitlines():
                fields = line.split()
                if "inet" in fields:
                    address = fields[fields.index("inet") + 1].split("/")[0]
                    if not address.startswith("127.") and address not in addresses:
                        addresses.append(address)
    return {"fqdn": socket.getfqdn(), "hostname": platform.node().split(".")[0], "ipv4_addresses": addresses}


if __name__ == "__main__":
    main()
