"""The container lab's plan: names, addresses and network of the hosts, what a lab run must refuse, the base
root file system's recipe, SSH access and the inventory, and the parsers of ``ip``, ``iptables`` and
mountinfo output. Pure functions and data, unit-tested without root; :mod:`lab` acts on them."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import shlex
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
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
