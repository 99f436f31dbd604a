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
output) is pure functions in :mod:`lab_plan`, unit-tested without root; the system helpers are in
:mod:`lab_system`; the class ``Lab`` here is the thin side-effecting part that uses both.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

# The lab's plan and system helpers; their names are this module's too, for its callers.
from .lab_plan import (  # noqa: F401
    BASE_RECIPE,
    CGROUP_EXEC,
    CGROUP_PARENT,
    DEFAULT_BRIDGE,
    DEFAULT_CACHE_DIR,
    DEFAULT_HOSTS,
    DEFAULT_NETNS_PREFIX,
    DEFAULT_STATE_DIR,
    DEFAULT_SUBNET,
    HOST_OFFSET,
    INCLUDE,
    MASKED_UNITS,
    MAX_HOSTS,
    MIN_HOSTS,
    MIRROR_ENV,
    REQUIRED_TOOLS,
    SECURITY_MIRROR_ENV,
    SSHD_DROPIN,
    SUITE,
    VARIANT,
    Access,
    HostPlan,
    LabError,
    NetConfig,
    UpPlan,
    apt_mirrors,
    apt_sources,
    base_key,
    cgroup_mounts,
    check_recorded,
    debootstrap_argv,
    host_address,
    host_cgroups,
    host_index,
    host_name,
    hosts_file,
    is_lab_nspawn,
    known_hosts_lines,
    log_tail,
    missing_tools,
    missing_tools_message,
    mounts_under,
    nat_rules,
    nspawn_argv,
    parse_ip_links,
    parse_mountpoints,
    parse_netns_list,
    plan_host,
    plan_hosts,
    plan_up,
    render_inventory,
    ssh_argv_for,
    ssh_options,
    subnet_conflict,
    tagged_rule_deletions,
    validate_hosts,
    validate_net,
)
from .lab_system import (  # noqa: F401
    ENV,
    IP_FORWARD,
    current_mountpoints,
    lab_nspawn_pids,
    parent_pid,
    pid_alive,
    read_cmdline,
    remove_cgroup,
    remove_tree,
    run,
    ssh_banner,
    unmount_under,
    write_file,
)


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
