"""The container lab: ``kafka-metal lab up|down|status|ssh``.

N Debian 12 hosts as systemd-nspawn containers on this machine, each with real systemd as PID 1,
its own network namespace and address on a private bridge, sshd with its own host keys and root
login by a lab key pair, NAT to Debian's mirror through the builder, and an Ansible inventory.

Layout (STATE is ``/var/lib/kafka-metal/lab`` or ``$KAFKA_METAL_LAB_DIR``, CACHE is
``/var/cache/kafka-metal`` or ``$KAFKA_METAL_CACHE_DIR``)::

    CACHE/bookworm-minbase-<key>/       read-only base root (debootstrap, built once, shared)
    STATE/lab.json                      what the lab is: bridge, subnet, netns prefix, base, hosts
    STATE/id_ed25519[.pub]              lab key pair (kept by ``down``)
    STATE/known_hosts                   each host's real host keys under its address and name
    STATE/inventory.yml                 group ``lab``
    STATE/hosts/nodeI/{upper,work,merged,console.log,pid}
    <cgroup mounts>/kafka-metal-lab/<netns>/   each host's own cgroup (see ``host_cgroups``)

Builder packages: debootstrap systemd-container iptables iproute2 openssh-client (and python3).

The planning logic (names, addresses, inventory, refusals, parsing of ``ip``/``iptables``/mountinfo
output) is pure functions at the top of the module and unit-tested without root; the class ``Lab``
below is the thin side-effecting part. Commands run as argument lists with ``LC_ALL=C``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_STATE_DIR = "/var/lib/kafka-metal/lab"
DEFAULT_CACHE_DIR = "/var/cache/kafka-metal"
DEFAULT_BRIDGE = "kmlab0"
DEFAULT_SUBNET = "10.231.0.0/24"
DEFAULT_NETNS_PREFIX = "kmlab-"
DEFAULT_HOSTS = 3
MIN_HOSTS, MAX_HOSTS = 1, 50
HOST_OFFSET = 10  # node i gets the subnet's address number 10 + i

SUITE = "bookworm"
VARIANT = "minbase"
INCLUDE = ("systemd-sysv", "openssh-server", "python3", "iproute2", "sudo", "procps", "ca-certificates")
# Bump when the preparation of the base (Lab.prepare_base) changes, so an older cached base is not reused.
BASE_RECIPE = 2
# Written into each host (not the base), so changing them needs no rebuild.
MASKED_UNITS = (
    "systemd-networkd-wait-online.service",  # nothing manages links inside; the lab configures them
    "apt-daily.timer",  # background apt runs would hold the dpkg lock under Ansible
    "apt-daily-upgrade.timer",
)
# The Debian mirrors come from this machine's own apt configuration (or these variables): the lab's hosts
# and its base image use what the machine itself is set up to reach.
MIRROR_ENV = "KAFKA_METAL_APT_MIRROR"
SECURITY_MIRROR_ENV = "KAFKA_METAL_APT_SECURITY_MIRROR"


def _apt_entries(etc: Path):
    """``(uri, suites)`` of every ``deb`` entry in apt's sources (one-line and deb822 formats)."""
    files = [etc / "apt" / "sources.list"] + sorted((etc / "apt" / "sources.list.d").glob("*.list")) + \
        sorted((etc / "apt" / "sources.list.d").glob("*.sources"))
    for f in files:
        try:
            text = f.read_text()
        except OSError:
            continue
        if f.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = {}
                for line in stanza.splitlines():
                    if line.strip() and not line.lstrip().startswith("#") and ":" in line:
                        key, _, value = line.partition(":")
                        fields[key.strip().lower()] = value.split()
                if "deb" in fields.get("types", []) and fields.get("enabled", ["yes"])[0] != "no":
                    for uri in fields.get("uris", []):
                        yield uri, fields.get("suites", [])
        else:
            for line in text.splitlines():
                words = [w for w in line.split("#", 1)[0].split() if not w.startswith("[")]
                if len(words) >= 3 and words[0] == "deb":
                    yield words[1], [words[2]]


def apt_mirrors(suite: str = SUITE, etc: Path = Path("/etc")) -> tuple[str, str]:
    """``(archive, security)`` mirror URIs for ``suite`` from the environment, else apt's sources."""
    archive, security = os.environ.get(MIRROR_ENV), os.environ.get(SECURITY_MIRROR_ENV)
    for uri, suites in _apt_entries(etc):
        if archive is None and suite in suites:
            archive = uri
        if security is None and f"{suite}-security" in suites:
            security = uri
    if not archive:
        raise LabError(f"no Debian {suite} mirror in this machine's apt sources ({etc}/apt): add one there, or "
                       f"set {MIRROR_ENV} to the mirror's URL")
    return archive.rstrip("/"), (security or archive).rstrip("/")


def apt_sources(archive: str, security: str, suite: str = SUITE) -> str:
    """The hosts' sources.list: the same mirrors as this machine."""
    return (f"deb {archive} {suite} main\n"
            f"deb {archive} {suite}-updates main\n"
            f"deb {security} {suite}-security main\n")


SSHD_DROPIN = (
    "# kafka-metal lab\n"
    "UseDNS no\n"
    "PermitRootLogin prohibit-password\n"
    "PasswordAuthentication no\n"
    "KbdInteractiveAuthentication no\n"
)

# command -> Debian package that provides it
REQUIRED_TOOLS = {
    "debootstrap": "debootstrap",
    "systemd-nspawn": "systemd-container",
    "iptables": "iptables",
    "ip": "iproute2",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "mount": "mount",
    "umount": "mount",
}

ENV = {**os.environ, "LC_ALL": "C"}
CGROUP_PARENT = "kafka-metal-lab"
# Run as ``python -c CGROUP_EXEC N PROCS_FILE... ARGV...``: join the N cgroups, then exec ARGV (same pid),
# so nspawn starts inside the host's own cgroup; no shell, no preexec_fn in a threaded process.
CGROUP_EXEC = (
    "import os, sys\n"
    "n = int(sys.argv[1])\n"
    "for procs in sys.argv[2 : 2 + n]:\n"
    "    with open(procs, 'w') as f:\n"
    "        f.write(str(os.getpid()))\n"
    "os.execvp(sys.argv[2 + n], sys.argv[2 + n :])\n"
)
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


class LabError(RuntimeError):
    """A problem the operator has to act on; the message is one clear line (plus any log tail)."""


# ---------------------------------------------------------------------------------------------
# Pure planning logic
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NetConfig:
    bridge: str = DEFAULT_BRIDGE
    subnet: str = DEFAULT_SUBNET
    netns_prefix: str = DEFAULT_NETNS_PREFIX

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet, strict=True)

    @property
    def gateway(self) -> str:
        return str(self.network.network_address + 1)

    @property
    def tag(self) -> str:
        """Comment on every iptables rule the lab adds, so ``down`` finds exactly its own rules."""
        return f"kafka-metal-lab:{self.bridge}"


@dataclass(frozen=True)
class HostPlan:
    index: int
    name: str
    address: str
    netns: str
    veth: str
    machine: str


def validate_net(net: NetConfig) -> None:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,11}", net.bridge):
        raise LabError(f"bridge name {net.bridge!r} must be 1-12 letters, digits, '-' or '_'")
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,30}", net.netns_prefix):
        raise LabError(f"netns prefix {net.netns_prefix!r} must be lower-case letters, digits and '-'")
    try:
        network = ipaddress.IPv4Network(net.subnet, strict=True)
    except ValueError as exc:
        raise LabError(f"subnet {net.subnet!r} is not an IPv4 network like 10.231.0.0/24: {exc}") from None
    if not network.is_private:
        raise LabError(f"subnet {net.subnet} is not a private range")
    if network.num_addresses < HOST_OFFSET + MAX_HOSTS + 2:
        raise LabError(f"subnet {net.subnet} is too small: use a /26 or larger")


def validate_hosts(hosts: object) -> int:
    if isinstance(hosts, bool) or not isinstance(hosts, int):
        raise LabError(f"--hosts must be a whole number, got {hosts!r}")
    if not MIN_HOSTS <= hosts <= MAX_HOSTS:
        raise LabError(f"--hosts must be between {MIN_HOSTS} and {MAX_HOSTS}, got {hosts}")
    return hosts


def host_name(index: int) -> str:
    return f"node{index}"


def host_index(name: str) -> int | None:
    m = re.fullmatch(r"node([1-9][0-9]*)", name)
    return int(m.group(1)) if m else None


def host_address(net: NetConfig, index: int) -> str:
    network = net.network
    addr = network.network_address + HOST_OFFSET + index
    if addr not in network or addr == network.broadcast_address:
        raise LabError(f"host {index} does not fit in subnet {net.subnet}")
    return str(addr)


def plan_host(net: NetConfig, index: int) -> HostPlan:
    name = host_name(index)
    netns = f"{net.netns_prefix}{name}"
    veth = f"{net.bridge}-{index}"
    assert len(veth) <= 15, veth
    return HostPlan(index=index, name=name, address=host_address(net, index), netns=netns, veth=veth, machine=netns)


def plan_hosts(net: NetConfig, count: int) -> list[HostPlan]:
    return [plan_host(net, i) for i in range(1, count + 1)]


@dataclass(frozen=True)
class UpPlan:
    hosts: list[HostPlan]
    start: list[str]  # names to (re)start
    running: list[str]  # names already running, left alone


def plan_up(
    net: NetConfig,
    requested: int | None,
    existing: Iterable[str],
    running: Iterable[str],
    default: int = DEFAULT_HOSTS,
    down_command: str = "kafka-metal lab down",
) -> UpPlan:
    """Decide which hosts to start. ``existing``: host names the lab has; ``running``: those up.

    Refuses (LabError) when the lab already has more hosts than asked for.
    """
    existing_idx = sorted(i for i in (host_index(n) for n in existing) if i is not None)
    have = existing_idx[-1] if existing_idx else 0
    count = validate_hosts(requested if requested is not None else (have or default))
    if have > count:
        raise LabError(
            f"the lab already has {have} hosts (node1..node{have}) but --hosts {count} was asked for: "
            f"run '{down_command}' first, or ask for --hosts {have} or more"
        )
    hosts = plan_hosts(net, count)
    running_set = set(running)
    return UpPlan(
        hosts=hosts,
        start=[h.name for h in hosts if h.name not in running_set],
        running=[h.name for h in hosts if h.name in running_set],
    )


def check_recorded(
    recorded: dict | None, net: NetConfig, base: str, down_command: str = "kafka-metal lab down"
) -> None:
    """Refuse to extend a lab that was made with another network or base."""
    if not recorded or not recorded.get("hosts"):
        return
    diffs = [
        f"{key} {recorded.get(key)} (asked: {want})"
        for key, want in (
            ("bridge", net.bridge),
            ("subnet", net.subnet),
            ("netns_prefix", net.netns_prefix),
            ("base", base),
        )
        if recorded.get(key) != want
    ]
    if diffs:
        raise LabError("the lab is up with " + ", ".join(diffs) + f": run '{down_command}' first")


def missing_tools(which: Callable[[str], str | None] | None = None, tools: dict[str, str] | None = None) -> list[str]:
    which = which or shutil.which
    return [t for t in (tools or REQUIRED_TOOLS) if which(t) is None]


def missing_tools_message(missing: Sequence[str], tools: dict[str, str] | None = None) -> str:
    tools = tools or REQUIRED_TOOLS
    packages = sorted({tools[t] for t in missing})
    return f"missing command(s): {', '.join(missing)}; install them with: apt-get install -y {' '.join(packages)}"


def base_key(
    suite: str = SUITE,
    variant: str = VARIANT,
    include: Iterable[str] = INCLUDE,
    mirror: str = "",
    recipe: int = BASE_RECIPE,
) -> str:
    """Cache directory name of the base root: changes with anything that changes its content."""
    spec = json.dumps(
        {
            "suite": suite,
            "variant": variant,
            "include": sorted(set(include)),
            "mirror": mirror,
            "recipe": recipe,
        },
        sort_keys=True,
    )
    return f"{suite}-{variant}-{hashlib.sha256(spec.encode()).hexdigest()[:12]}"


def debootstrap_argv(
    target: str,
    suite: str = SUITE,
    variant: str = VARIANT,
    include: Iterable[str] = INCLUDE,
    mirror: str = "",
) -> list[str]:
    return ["debootstrap", f"--variant={variant}", "--include=" + ",".join(include), suite, target,
            mirror or apt_mirrors(suite)[0]]


def hosts_file(hosts: Sequence[HostPlan]) -> str:
    """/etc/hosts for every lab host: all lab hosts by name (own name on its lab address, not 127.0.1.1)."""
    lines = [
        "# Written by kafka-metal lab",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
        "",
    ]
    lines += [f"{h.address}\t{h.name}" for h in hosts]
    return "\n".join(lines) + "\n"


def known_hosts_lines(host: HostPlan, pubkeys: Iterable[str]) -> list[str]:
    """known_hosts lines for a host from its ``ssh_host_*_key.pub`` contents (address first, then name)."""
    out = []
    for pub in pubkeys:
        parts = pub.split()
        if len(parts) >= 2:
            out.append(f"{host.address},{host.name} {parts[0]} {parts[1]}")
    return out


@dataclass(frozen=True)
class Access:
    """How to reach a host: the JSON shape ``up --json`` and ``status --json`` print."""

    name: str
    address: str
    identity_file: str
    known_hosts_file: str
    user: str = "root"
    port: int = 22

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "address": self.address,
            "user": self.user,
            "port": self.port,
            "identity_file": self.identity_file,
            "known_hosts_file": self.known_hosts_file,
        }


def ssh_options(identity_file: str, known_hosts_file: str) -> list[str]:
    options = (
        "IdentitiesOnly=yes",
        f"UserKnownHostsFile={known_hosts_file}",
        "GlobalKnownHostsFile=/dev/null",
        "StrictHostKeyChecking=yes",
    )
    return ["-i", identity_file, *(word for o in options for word in ("-o", o))]


def ssh_argv_for(access: Access, command: Sequence[str] = (), batch: bool = False) -> list[str]:
    """``ssh`` argument list; ``command`` words are passed to ssh as ssh does (joined by the remote shell)."""
    argv = ["ssh", *ssh_options(access.identity_file, access.known_hosts_file)]
    if batch:
        argv += ["-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR"]
    if access.port != 22:
        argv += ["-p", str(access.port)]
    argv += [f"{access.user}@{access.address}"]
    if command:
        argv += ["--", *command]
    return argv


def _yaml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid YAML double-quoted scalar


def render_inventory(accesses: Sequence[Access], host_vars: dict[str, dict] | None = None) -> str:
    lines = [
        "# Written by 'kafka-metal lab up'; rewritten on every run. Group 'lab' holds every lab host.",
        "all:",
        "  children:",
        "    lab:",
        "      hosts:" + ("" if accesses else " {}"),
    ]
    for a in accesses:
        common = (
            f"-o UserKnownHostsFile={shlex.quote(a.known_hosts_file)} -o StrictHostKeyChecking=yes "
            "-o IdentitiesOnly=yes"
        )
        lines += [
            f"        {a.name}:",
            f"          ansible_host: {_yaml_str(a.address)}",
            f"          ansible_port: {a.port}",
            f"          ansible_user: {_yaml_str(a.user)}",
            f"          ansible_ssh_private_key_file: {_yaml_str(a.identity_file)}",
            f"          ansible_ssh_common_args: {_yaml_str(common)}",
            f"          ansible_python_interpreter: {_yaml_str('/usr/bin/python3')}",
        ]
        for key, value in sorted((host_vars or {}).get(a.name, {}).items()):
            lines.append(f"          {key}: {json.dumps(value)}")
    return "\n".join(lines) + "\n"


# --- parsers of system state ------------------------------------------------------------------


def _unescape_mountinfo(path: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def parse_mountpoints(mountinfo: str) -> list[str]:
    """Mount points from /proc/self/mountinfo text, in mount order."""
    points = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4:
            points.append(_unescape_mountinfo(fields[4]))
    return points


def mounts_under(mountpoints: Iterable[str], directory: str) -> list[str]:
    """Mount points at or below ``directory``, deepest (last mounted) first: the order to unmount."""
    d = os.path.normpath(directory)
    hits = [m for m in mountpoints if m == d or m.startswith(d + "/")]
    return list(reversed(hits))


def parse_netns_list(text: str) -> list[str]:
    """Names from ``ip netns list`` (lines like ``kmlab-node1 (id: 0)``)."""
    return [line.split()[0] for line in text.splitlines() if line.strip()]


def parse_ip_links(json_text: str) -> list[str]:
    """Interface names from ``ip -j link show``."""
    return [link["ifname"] for link in json.loads(json_text or "[]")]


def tagged_rule_deletions(rules_text: str, tag: str) -> list[list[str]]:
    """From ``iptables -t T -S`` output, the argument lists (after ``-t T``) that delete our tagged rules."""
    out = []
    for line in rules_text.splitlines():
        if not line.startswith("-A "):
            continue
        words = shlex.split(line)
        if any(words[i] == "--comment" and words[i + 1] == tag for i in range(len(words) - 1)):
            out.append(["-D", *words[1:]])
    return out


def nat_rules(net: NetConfig) -> list[tuple[str, list[str]]]:
    """(table, rule spec) the lab adds: NAT for the lab subnet, and forwarding to and from the bridge."""
    c = ["-m", "comment", "--comment", net.tag]
    return [
        ("nat", ["POSTROUTING", "-s", net.subnet, "!", "-o", net.bridge, *c, "-j", "MASQUERADE"]),
        ("filter", ["FORWARD", "-i", net.bridge, *c, "-j", "ACCEPT"]),
        ("filter", ["FORWARD", "-o", net.bridge, *c, "-j", "ACCEPT"]),
    ]


def subnet_conflict(ip_addr_json: str, net: NetConfig) -> str | None:
    """From ``ip -j -4 addr show``: why the lab subnet cannot be used here (an interface other than the
    lab bridge already has an address in an overlapping network), or None."""
    for link in json.loads(ip_addr_json or "[]"):
        for a in link.get("addr_info", []):
            if link["ifname"] == net.bridge or a.get("family", "inet") != "inet":
                continue
            iface = ipaddress.IPv4Interface(f"{a['local']}/{a['prefixlen']}")
            if iface.network.overlaps(net.network):
                return (
                    f"the lab subnet {net.subnet} overlaps {iface} on {link['ifname']}: "
                    "choose another subnet (--subnet)"
                )
    return None


def cgroup_mounts(mountinfo: str) -> list[str]:
    """Mount points of the cgroup hierarchies systemd-nspawn places a container in: the cgroup2 one and,
    on cgroup v1 (legacy or hybrid), the ``name=systemd`` one."""
    points = []
    for line in mountinfo.splitlines():
        before, sep, after = line.partition(" - ")
        fields, rest = before.split(), after.split()
        if not sep or len(fields) < 5 or len(rest) < 3:
            continue
        fstype, super_options = rest[0], rest[2].split(",")
        if fstype == "cgroup2" or (fstype == "cgroup" and "name=systemd" in super_options):
            points.append(_unescape_mountinfo(fields[4]))
    return points


def host_cgroups(mountinfo: str, machine: str) -> list[str]:
    """The host's own cgroup in each hierarchy. nspawn without a service manager to register with puts the
    container below the cgroup it was started in: started in one shared cgroup, the containers' systemds
    create and remove the same unit cgroups there, and units fail at random ("Failed to attach to cgroup")."""
    return [f"{mp}/{CGROUP_PARENT}/{machine}" for mp in cgroup_mounts(mountinfo)]


def is_lab_nspawn(argv: Sequence[str], netns_prefix: str) -> str | None:
    """If ``argv`` is a lab host's systemd-nspawn, the netns name it runs in, else None."""
    if not argv or os.path.basename(argv[0]) != "systemd-nspawn":
        return None
    for a in argv[1:]:
        if a.startswith("--network-namespace-path=/run/netns/"):
            ns = a.split("/run/netns/", 1)[1]
            return ns if ns.startswith(netns_prefix) else None
    return None


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\r")


def log_tail(text: str, lines: int = 25) -> str:
    clean = _ANSI.sub("", text)
    return "\n".join([line for line in clean.splitlines() if line.strip()][-lines:])


def nspawn_argv(merged: str, host: HostPlan) -> list[str]:
    return [
        "systemd-nspawn",
        "-q",
        "-D",
        merged,
        "-b",
        "--register=no",
        "--keep-unit",
        f"--machine={host.machine}",  # also names nspawn's runtime dirs: unique across labs
        f"--hostname={host.name}",
        f"--network-namespace-path=/run/netns/{host.netns}",
        "--console=read-only",
        "--link-journal=no",
        "--resolv-conf=off",  # the lab writes the builder's resolv.conf into each host
        "--timezone=off",
    ]


# ---------------------------------------------------------------------------------------------
# Side effects
# ---------------------------------------------------------------------------------------------


def run(argv: Sequence[str], check: bool = True, timeout: float | None = 120, **kw) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(list(argv), env=ENV, capture_output=True, text=True, timeout=timeout, **kw)
    except FileNotFoundError:
        raise LabError(missing_tools_message([argv[0]], {argv[0]: REQUIRED_TOOLS.get(argv[0], argv[0])})) from None
    if check and proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        raise LabError(f"{shlex.join(argv)} failed (exit {proc.returncode}): {msg[-1] if msg else ''}")
    return proc


def write_file(path: Path, text: str, mode: int = 0o644) -> None:
    """Write atomically (temp file + rename); a symlink at ``path`` is replaced, never followed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def remove_tree(path: Path) -> None:
    """rm -rf that never crosses into another file system (a mount left below ``path``)."""
    if path.exists() or path.is_symlink():
        run(["rm", "-rf", "--one-file-system", "--", str(path)])


def current_mountpoints() -> list[str]:
    return parse_mountpoints(Path("/proc/self/mountinfo").read_text())


def unmount_under(directory: Path) -> None:
    for mp in mounts_under(current_mountpoints(), str(directory)):
        if run(["umount", mp], check=False).returncode != 0:
            time.sleep(0.5)
            if run(["umount", mp], check=False).returncode != 0:
                run(["umount", "-l", mp])


def remove_cgroup(path: Path) -> None:
    """Remove a cgroup and the ones below it (cgroupfs directories go with rmdir, deepest first)."""
    if not path.is_dir():
        return
    for dirpath, _dirs, _files in os.walk(path, topdown=False):
        with contextlib.suppress(OSError):
            os.rmdir(dirpath)


def read_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def pid_alive(pid: int) -> bool:
    """True if ``pid`` runs and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def lab_nspawn_pids(netns_prefix: str) -> dict[str, int]:
    """netns name -> pid of every running lab systemd-nspawn with that netns prefix."""
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            pid = int(entry)
            ns = is_lab_nspawn(read_cmdline(pid), netns_prefix)
            if ns and pid_alive(pid):
                found[pid] = ns
    # nspawn forks helpers with the same command line: keep the one whose parent is not one of them.
    return {ns: pid for pid, ns in found.items() if parent_pid(pid) not in found}


def parent_pid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def ssh_banner(address: str, port: int = 22, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(64).startswith(b"SSH-")
    except OSError:
        return False


@dataclass
class HostStatus:
    name: str
    address: str
    running: bool
    ssh: bool
    access: Access = field(repr=False)

    def as_dict(self) -> dict:
        return {**self.access.as_dict(), "running": self.running, "ssh": self.ssh}


class Lab:
    """The container lab. All methods but ``status`` and ``ssh_argv`` need root."""

    def __init__(
        self,
        state_dir: str | os.PathLike | None = None,
        cache_dir: str | os.PathLike | None = None,
        bridge: str | None = None,
        subnet: str | None = None,
        netns_prefix: str | None = None,
        boot_timeout: float = 90.0,
        stop_timeout: float = 20.0,
    ):
        self.state_dir = Path(state_dir or os.environ.get("KAFKA_METAL_LAB_DIR") or DEFAULT_STATE_DIR).absolute()
        self.cache_dir = Path(cache_dir or os.environ.get("KAFKA_METAL_CACHE_DIR") or DEFAULT_CACHE_DIR).absolute()
        recorded = self.recorded_at(self.state_dir)
        # A lab that is up is described by its lab.json; explicit arguments must agree (checked by up).
        self.net = NetConfig(
            bridge or recorded.get("bridge") or DEFAULT_BRIDGE,
            subnet or recorded.get("subnet") or DEFAULT_SUBNET,
            netns_prefix or recorded.get("netns_prefix") or DEFAULT_NETNS_PREFIX,
        )
        self.boot_timeout = boot_timeout
        self.stop_timeout = stop_timeout
        self._procs: dict[str, subprocess.Popen] = {}
        self._print_lock = threading.Lock()

    # --- paths -------------------------------------------------------------------------------
    @property
    def key_file(self) -> Path:
        return self.state_dir / "id_ed25519"

    @property
    def known_hosts_file(self) -> Path:
        return self.state_dir / "known_hosts"

    @property
    def inventory_file(self) -> Path:
        return self.state_dir / "inventory.yml"

    @property
    def lab_file(self) -> Path:
        return self.state_dir / "lab.json"

    @property
    def base_dir(self) -> Path:
        return self.cache_dir / base_key()

    def host_dir(self, name: str) -> Path:
        return self.state_dir / "hosts" / name

    def access(self, host: HostPlan) -> Access:
        return Access(
            name=host.name,
            address=host.address,
            identity_file=str(self.key_file),
            known_hosts_file=str(self.known_hosts_file),
        )

    # --- recorded state ----------------------------------------------------------------------
    @staticmethod
    def recorded_at(state_dir: Path) -> dict:
        try:
            return json.loads((Path(state_dir) / "lab.json").read_text())
        except (OSError, ValueError):
            return {}

    def _recorded(self) -> dict | None:
        return self.recorded_at(self.state_dir) or None

    # --- what the VM lab (vmlab.VmLab) changes -------------------------------------------------
    kind = "container"
    default_hosts = DEFAULT_HOSTS
    down_command = "kafka-metal lab down"

    def required_tools(self) -> dict[str, str]:
        return REQUIRED_TOOLS

    def record_extra(self) -> dict:
        return {}

    def check_extra(self) -> None:
        return None

    def host_vars(self, h: HostPlan) -> dict:
        return {}

    def _host_pubkeys(self, h: HostPlan) -> list[str]:
        return [
            p.read_text() for p in sorted((self.host_dir(h.name) / "merged" / "etc" / "ssh").glob("ssh_host_*_key.pub"))
        ]

    def _existing_names(self) -> list[str]:
        names = set((self._recorded() or {}).get("hosts", []))
        hosts_dir = self.state_dir / "hosts"
        if hosts_dir.is_dir():
            names |= {p.name for p in hosts_dir.iterdir() if host_index(p.name)}
        return sorted(names, key=lambda n: host_index(n) or 0)

    def _known_hosts(self) -> list[HostPlan]:
        return [plan_host(self.net, host_index(n)) for n in self._existing_names()]

    def _running(self) -> dict[str, int]:
        """host name -> nspawn pid for this lab's running hosts."""
        by_ns = lab_nspawn_pids(self.net.netns_prefix)
        out = {}
        for h in self._known_hosts():
            if h.netns in by_ns:
                out[h.name] = by_ns[h.netns]
        return out

    @contextlib.contextmanager
    def _locked(self):
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / ".lock", "w") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LabError(f"another 'kafka-metal lab' command is working on {self.state_dir}") from None
            yield

    def _say(self, progress: Callable[[str], None], msg: str) -> None:
        with self._print_lock:
            progress(msg)

    # --- preflight ---------------------------------------------------------------------------
    def preflight(self) -> None:
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces, mounts, iptables): run it with sudo")
        missing = missing_tools(tools=self.required_tools())
        if missing:
            raise LabError(missing_tools_message(missing, self.required_tools()))
        validate_net(self.net)
        for p in (self.state_dir, self.cache_dir):
            if re.search(r"[,:\s]", str(p)):
                raise LabError(f"{p}: lab directories cannot contain ',', ':' or white space (overlayfs options)")

    # --- up ----------------------------------------------------------------------------------
    def up(self, hosts: int | None = None, progress: Callable[[str], None] = print) -> list[Access]:
        if hosts is not None:
            validate_hosts(hosts)
        self.preflight()
        with self._locked():
            check_recorded(self._recorded(), self.net, str(self.base_dir), self.down_command)
            self.check_extra()
            running = self._running()
            plan = plan_up(self.net, hosts, self._existing_names(), running, self.default_hosts, self.down_command)
            self._check_subnet_free()
            t0 = time.monotonic()
            self._ensure_base(progress)
            self._ensure_key()
            self._record(plan.hosts)
            self._ensure_network(progress)
            for name in plan.running:
                self._say(progress, f"{name}: already running, left alone")

            errors: dict[str, str] = {}

            def bring_up(h: HostPlan) -> None:
                try:
                    t = time.monotonic()
                    if h.name not in plan.start:
                        self._prepare_host(h, plan.hosts)  # refresh /etc/hosts etc. of a running host
                        return
                    self._kill_leftovers(h)  # of a host whose nspawn died
                    self._prepare_host(h, plan.hosts)
                    self._start_host(h)
                    state = self._wait_host(h)
                    self._say(progress, f"{h.name}: up at {h.address} in {time.monotonic() - t:.1f} s ({state})")
                except LabError as exc:
                    errors[h.name] = str(exc)
                    self._say(progress, f"{h.name}: FAILED")

            if plan.start:
                self._say(progress, f"starting {', '.join(plan.start)}")
            with ThreadPoolExecutor(max_workers=len(plan.hosts)) as pool:
                list(pool.map(bring_up, plan.hosts))
            self._write_known_hosts(plan.hosts)
            accesses = [self.access(h) for h in plan.hosts]
            write_file(self.inventory_file, render_inventory(accesses, {h.name: self.host_vars(h) for h in plan.hosts}))
            if errors:
                raise LabError(
                    "\n".join(f"{n}: {e}" for n, e in sorted(errors.items()))
                    + f"\n(run '{self.down_command}' to clean up)"
                )
            self._say(progress, f"lab up: {len(plan.hosts)} host(s) in {time.monotonic() - t0:.1f} s")
            return accesses

    def _check_subnet_free(self) -> None:
        conflict = subnet_conflict(run(["ip", "-j", "-4", "addr", "show"]).stdout, self.net)
        if conflict:
            raise LabError(conflict)

    def _record(self, hosts: Sequence[HostPlan]) -> None:
        """Write lab.json: what ``down``, ``status`` and the next ``up`` go by."""
        forward = (self._recorded() or {}).get("ip_forward_before") or IP_FORWARD.read_text().strip()
        record = {
            "bridge": self.net.bridge,
            "subnet": self.net.subnet,
            "netns_prefix": self.net.netns_prefix,
            "base": str(self.base_dir),
            "hosts": [h.name for h in hosts],
            "ip_forward_before": forward,  # restored by down when no other lab needs forwarding
            **self.record_extra(),
        }
        write_file(self.lab_file, json.dumps(record, indent=2) + "\n")

    def _ensure_base(self, progress: Callable[[str], None]) -> None:
        base = self.base_dir
        if (base / "etc" / "os-release").exists():
            return
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with open(self.cache_dir / f".{base.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another lab building the same base: wait for it
            if (base / "etc" / "os-release").exists():
                return
            for stale in self.cache_dir.glob(f".build-{base.name}-*"):
                unmount_under(stale)  # an interrupted debootstrap can leave /proc, /sys mounted
                remove_tree(stale)
            tmp = self.cache_dir / f".build-{base.name}-{os.getpid()}"
            os.mkdir(tmp, 0o755)  # the root directory of the hosts
            log = self.cache_dir / f"{base.name}.debootstrap.log"
            self._say(progress, f"building the base root file system with debootstrap (about a minute): {base}")
            t = time.monotonic()
            with open(log, "w") as logf:
                argv = debootstrap_argv(str(tmp))
                rc = subprocess.run(argv, env=ENV, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            unmount_under(tmp)
            if rc.returncode != 0:
                remove_tree(tmp)
                raise LabError(
                    f"debootstrap failed (exit {rc.returncode}); last lines of {log}:\n{log_tail(log.read_text())}"
                )
            self.prepare_base(tmp)
            os.rename(tmp, base)  # atomic: a base dir exists only once complete
            self._say(progress, f"base built in {time.monotonic() - t:.0f} s")

    @staticmethod
    def prepare_base(root: Path) -> None:
        for key in (root / "etc" / "ssh").glob("ssh_host_*"):
            key.unlink()  # every host gets its own
        write_file(root / "etc" / "machine-id", "", 0o444)  # every host gets its own
        write_file(root / "etc" / "hostname", "localhost\n")
        write_file(root / "etc" / "kafka-metal-lab-base", base_key() + "\n")

    def _ensure_key(self) -> None:
        if not self.key_file.exists():
            with contextlib.suppress(FileNotFoundError):
                self.key_file.with_suffix(".pub").unlink()
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kafka-metal-lab", "-f", str(self.key_file)])
        os.chmod(self.key_file, 0o600)

    def _ensure_network(self, progress: Callable[[str], None]) -> None:
        net = self.net
        prefix = net.network.prefixlen
        if net.bridge not in parse_ip_links(run(["ip", "-j", "link", "show"]).stdout):
            run(["ip", "link", "add", net.bridge, "type", "bridge"])
        run(["ip", "addr", "replace", f"{net.gateway}/{prefix}", "dev", net.bridge])
        run(["ip", "link", "set", net.bridge, "up"])
        if IP_FORWARD.read_text().strip() != "1":
            IP_FORWARD.write_text("1\n")
        for table, rule in nat_rules(net):
            if run(["iptables", "-w", "-t", table, "-C", *rule], check=False).returncode != 0:
                op = "-A" if table == "nat" else "-I"
                run(["iptables", "-w", "-t", table, op, *rule])
        self._say(progress, f"network: bridge {net.bridge} {net.gateway}/{prefix}, NAT for {net.subnet}")

    def _prepare_host(self, h: HostPlan, all_hosts: Sequence[HostPlan]) -> None:
        d = self.host_dir(h.name)
        upper, work, merged = d / "upper", d / "work", d / "merged"
        for p in (upper, work, merged):
            p.mkdir(parents=True, exist_ok=True)
        if str(merged) not in current_mountpoints():
            options = f"lowerdir={self.base_dir},upperdir={upper},workdir={work}"
            run(["mount", "-t", "overlay", "overlay", "-o", options, str(merged)])
        etc = merged / "etc"
        write_file(etc / "ssh" / "sshd_config.d" / "kafka-metal-lab.conf", SSHD_DROPIN)
        write_file(etc / "apt" / "sources.list", apt_sources(*apt_mirrors()))
        for unit in MASKED_UNITS:
            link = etc / "systemd" / "system" / unit
            if not link.is_symlink():
                link.parent.mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(FileNotFoundError):
                    link.unlink()
                link.symlink_to("/dev/null")
        write_file(etc / "hostname", h.name + "\n")
        write_file(etc / "hosts", hosts_file(all_hosts))
        write_file(etc / "resolv.conf", Path("/etc/resolv.conf").read_text())
        if not (etc / "machine-id").read_text().strip():
            write_file(etc / "machine-id", uuid.uuid4().hex + "\n", 0o444)
        if not (etc / "ssh" / "ssh_host_ed25519_key").exists():
            run(["ssh-keygen", "-q", "-A", "-f", str(merged)])
        ssh_dir = merged / "root" / ".ssh"
        ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_file(ssh_dir / "authorized_keys", self.key_file.with_suffix(".pub").read_text(), 0o600)
        self._ensure_host_network(h)

    def _ensure_host_network(self, h: HostPlan) -> None:
        net = self.net
        if h.netns not in parse_netns_list(run(["ip", "netns", "list"]).stdout):
            run(["ip", "netns", "add", h.netns])
        if h.veth not in parse_ip_links(run(["ip", "-j", "link", "show"]).stdout):
            run(["ip", "link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.netns])
        run(["ip", "link", "set", h.veth, "master", net.bridge, "up"])
        ns = ["ip", "-n", h.netns]
        run([*ns, "link", "set", "lo", "up"])
        run([*ns, "addr", "replace", f"{h.address}/{net.network.prefixlen}", "dev", "eth0"])
        run([*ns, "link", "set", "eth0", "up"])
        run([*ns, "route", "replace", "default", "via", net.gateway])

    def _start_host(self, h: HostPlan) -> None:
        d = self.host_dir(h.name)
        procs = []
        for cg in map(Path, host_cgroups(Path("/proc/self/mountinfo").read_text(), h.machine)):
            remove_cgroup(cg)  # of an earlier run of this host
            cg.mkdir(parents=True, exist_ok=True)
            procs.append(str(cg / "cgroup.procs"))
        log = open(d / "console.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            argv = [
                sys.executable,
                "-I",
                "-S",
                "-c",
                CGROUP_EXEC,
                str(len(procs)),
                *procs,
                *nspawn_argv(str(d / "merged"), h),
            ]
            proc = subprocess.Popen(
                argv, env=ENV, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        finally:
            log.close()
        self._procs[h.name] = proc
        write_file(d / "pid", f"{proc.pid}\n")

    def _wait_host(self, h: HostPlan) -> str:
        """Wait until sshd lets the lab key in and boot has finished; return systemd's state."""
        deadline = time.monotonic() + self.boot_timeout
        access = self.access(h)
        proc = self._procs[h.name]
        reason = f"sshd did not answer within {self.boot_timeout:g} s"
        self._write_known_hosts([h], append_only=True)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                reason = f"systemd-nspawn exited with code {proc.returncode}"
                break
            if not ssh_banner(h.address):
                time.sleep(0.3)
                continue
            left = max(5, int(deadline - time.monotonic()))
            try:
                r = run(
                    ssh_argv_for(
                        access, ["timeout", str(left), "systemctl", "is-system-running", "--wait"], batch=True
                    ),
                    check=False,
                    timeout=left + 10,
                )
            except subprocess.TimeoutExpired:
                continue
            state = r.stdout.strip()
            if r.returncode == 255:  # ssh itself failed (not yet ready): retry
                reason = f"ssh failed: {r.stderr.strip()}"
                time.sleep(0.5)
                continue
            if state == "running":
                return state
            if state == "degraded":
                failed = run(
                    ssh_argv_for(access, ["systemctl", "--failed", "--plain", "--no-legend"], batch=True),
                    check=False,
                ).stdout.split("\n")
                units = [line.split()[0] for line in failed if line.strip()]
                return f"degraded: failed units {', '.join(units)}"
            reason = f"systemd says {state or 'nothing'} ({r.stderr.strip()})"
            break
        log = self.host_dir(h.name) / "console.log"
        tail = log_tail(log.read_text(errors="replace")) if log.exists() else ""
        raise LabError(f"failed to boot: {reason}; last lines of {log}:\n{tail}")

    def _write_known_hosts(self, hosts: Sequence[HostPlan], append_only: bool = False) -> None:
        with self._print_lock:
            lines = []
            if append_only and self.known_hosts_file.exists():
                names = {h.name for h in hosts}
                lines = [
                    line
                    for line in self.known_hosts_file.read_text().splitlines()
                    if line.split(" ", 1)[0].split(",")[-1] not in names
                ]
            for h in hosts:
                lines += known_hosts_lines(h, self._host_pubkeys(h))
            write_file(self.known_hosts_file, "\n".join(lines) + "\n")

    # --- down --------------------------------------------------------------------------------
    def down(self, progress: Callable[[str], None] = print) -> None:
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces, mounts, iptables): run it with sudo")
        net = self.net
        with self._locked():
            t0 = time.monotonic()
            hosts = {h.name: h for h in self._known_hosts()}
            by_ns = lab_nspawn_pids(net.netns_prefix)
            netns = [
                n
                for n in parse_netns_list(run(["ip", "netns", "list"], check=False).stdout)
                if n.startswith(net.netns_prefix)
            ]
            # Anything of ours, even without a host dir (an interrupted up): stop and remove too.
            for ns in set(by_ns) | set(netns):
                idx = host_index(ns[len(net.netns_prefix) :])
                if idx and host_name(idx) not in hosts:
                    hosts[host_name(idx)] = plan_host(net, idx)
            if hosts:
                self._say(progress, f"stopping {', '.join(sorted(hosts, key=host_index))}")

            def stop(h: HostPlan) -> None:
                self._stop_host(h, by_ns.get(h.netns))
                self._say(progress, f"{h.name}: stopped and removed")

            with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
                list(pool.map(stop, hosts.values()))
            unmount_under(self.state_dir)
            links = parse_ip_links(run(["ip", "-j", "link", "show"], check=False).stdout)
            for link in links:
                if re.fullmatch(re.escape(net.bridge) + r"-[0-9]+", link):
                    run(["ip", "link", "del", link], check=False)
            if net.bridge in links:
                run(["ip", "link", "del", net.bridge])
            for table in ("nat", "filter"):
                rules = run(["iptables", "-w", "-t", table, "-S"]).stdout
                for deletion in tagged_rule_deletions(rules, net.tag):
                    run(["iptables", "-w", "-t", table, *deletion])
            before = (self._recorded() or {}).get("ip_forward_before")
            if before == "0" and not self._other_labs_nat():
                IP_FORWARD.write_text("0\n")
            remove_tree(self.state_dir / "hosts")
            for f in (self.inventory_file, self.known_hosts_file, self.lab_file):
                with contextlib.suppress(FileNotFoundError):
                    f.unlink()
            self._say(
                progress,
                f"lab down in {time.monotonic() - t0:.1f} s" if hosts else "lab down (nothing was up)",
            )

    @staticmethod
    def _other_labs_nat() -> bool:
        rules = run(["iptables", "-w", "-t", "nat", "-S"], check=False).stdout
        return "kafka-metal-lab:" in rules

    def _stop_host(self, h: HostPlan, pid: int | None) -> None:
        if pid and pid_alive(pid):
            os.kill(pid, signal.SIGTERM)  # nspawn turns this into SIGRTMIN+3 for systemd: orderly halt
            deadline = time.monotonic() + self.stop_timeout
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if pid_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
        self._kill_leftovers(h)
        proc = self._procs.pop(h.name, None)
        if proc is not None:
            proc.wait(timeout=10)
        unmount_under(self.host_dir(h.name))
        run(["ip", "netns", "del", h.netns], check=False)
        run(["ip", "link", "del", h.veth], check=False)
        with contextlib.suppress(OSError):
            Path(f"/run/systemd/nspawn/propagate/{h.machine}").rmdir()
        for cg in map(Path, host_cgroups(Path("/proc/self/mountinfo").read_text(), h.machine)):
            remove_cgroup(cg)
            with contextlib.suppress(OSError):
                cg.parent.rmdir()  # kafka-metal-lab/, if no other lab host uses it
        remove_tree(self.host_dir(h.name))

    @staticmethod
    def _kill_leftovers(h: HostPlan) -> None:
        """Kill what still runs in the host's network namespace (a killed nspawn leaves its container)."""
        for _ in range(50):
            pids = [int(p) for p in run(["ip", "netns", "pids", h.netns], check=False).stdout.split()]
            pids = [p for p in pids if pid_alive(p)]
            if not pids:
                return
            for p in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)
            time.sleep(0.1)
        raise LabError(f"{h.name}: processes in network namespace {h.netns} survive SIGKILL")

    # --- status / ssh ------------------------------------------------------------------------
    def status(self) -> list[HostStatus]:
        hosts = self._known_hosts()
        running = self._running()

        def check(h: HostPlan) -> HostStatus:
            up = h.name in running
            ok = False
            if up and ssh_banner(h.address):
                with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                    ok = (
                        run(ssh_argv_for(self.access(h), ["true"], batch=True), check=False, timeout=15).returncode == 0
                    )
            return HostStatus(h.name, h.address, up, ok, self.access(h))

        with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
            return list(pool.map(check, hosts))

    def ssh_argv(self, host: str, command: Sequence[str] = (), batch: bool = False) -> list[str]:
        for h in self._known_hosts():
            if host in (h.name, h.address):
                return ssh_argv_for(self.access(h), command, batch=batch)
        names = ", ".join(h.name for h in self._known_hosts()) or "none: run 'kafka-metal lab up'"
        raise LabError(f"no lab host {host!r} (lab hosts: {names})")
