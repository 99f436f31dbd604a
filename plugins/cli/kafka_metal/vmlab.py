"""The VM lab: ``kafka-metal lab up --vm`` (and ``down|status|ssh --vm``).

QEMU virtual machines with Debian 12's cloud kernel, systemd, sshd and extra virtual data disks, for
what a container cannot prove: kernel settings, resource limits, transparent huge pages, XFS and
device-mapper, reboots. Each VM sits on its own tap device on a private bridge with NAT to Debian's
mirror, exactly like a container host, and the lab writes the same inventory (plus ``lab_data_disks``).

Layout (STATE is ``/var/lib/kafka-metal/vmlab`` or ``$KAFKA_METAL_VM_LAB_DIR``)::

    CACHE/vm-bookworm-<key>/root/          base root (debootstrap + kernel + Java), built once, shared
    CACHE/vm-bookworm-<key>/{vmlinuz,initrd.img}
    STATE/lab.json, id_ed25519, known_hosts, inventory.yml    as in the container lab
    STATE/hosts/nodeI/upper/               the VM's own files (host keys, hostname, network, machine id)
    STATE/hosts/nodeI/root.img             its root disk (ext4 made from base + upper, kept across restarts)
    STATE/hosts/nodeI/dataJ.img            its data disks (sparse, empty), /dev/disk/by-id/virtio-kmdataJ
    STATE/hosts/nodeI/{console.log,pid,qemu.log}

Hardware acceleration: ``--accel auto`` (the default) uses KVM only when ``/dev/kvm`` boots the lab's
kernel within a few seconds, and software emulation (TCG) otherwise; the choice is printed and recorded.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import lab as L

DEFAULT_VM_STATE_DIR = "/var/lib/kafka-metal/vmlab"
DEFAULT_VM_BRIDGE = "kmvm0"
DEFAULT_VM_SUBNET = "10.241.0.0/24"
DEFAULT_VM_NETNS_PREFIX = "kmvm-"  # no namespaces are made; keeps the container lab's names apart
DEFAULT_VM_HOSTS = 1
DEFAULT_MEMORY_MIB = 3072
DEFAULT_CPUS = 2
DEFAULT_DISKS = 2
DEFAULT_DISK_SIZE = "4G"
ROOT_SIZE = "6G"
ROOT_LABEL = "kmroot"  # the root disk is found by label: PCI order decides the vdX names
MAX_DISKS = 8
DISK_SERIAL = "kmdata{}"  # the guest sees /dev/disk/by-id/virtio-kmdataJ
ACCELS = ("auto", "kvm", "tcg")

VM_INCLUDE = (
    *L.INCLUDE,
    "udev",  # /dev/disk/by-id and by-uuid: data disks are named by them
    "dbus",  # systemctl reboot, timedatectl and logind talk over it, as on any server
    "kmod",
    "linux-image-cloud-amd64",
    "initramfs-tools",
    # Baked in because apt inside a software-emulated VM costs minutes per run (ca-certificates-java
    # alone runs Java): Java, and what the tuning role would install. The roles find them present
    # and change nothing. Their install tasks are not skipped by that: Java's and timesyncd's run
    # in every container scenario (xfsprogs' and cryptsetup-bin's are one apt task, run where a host
    # lacks them).
    "openjdk-17-jre-headless",
    "systemd-timesyncd",
    "xfsprogs",
    "cryptsetup-bin",
)
VM_RECIPE = 1

# The container lab's tools without nspawn, plus QEMU and what makes the disk images.
VM_TOOLS = {
    **{cmd: pkg for cmd, pkg in L.REQUIRED_TOOLS.items() if cmd != "systemd-nspawn"},
    "qemu-system-x86_64": "qemu-system-x86",
    "mkfs.ext4": "e2fsprogs",
    "truncate": "coreutils",
}

SIZE_RE = re.compile(r"([1-9][0-9]*)([MG])")


# ---------------------------------------------------------------------------------------------
# Pure planning logic
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VmSpec:
    memory_mib: int = DEFAULT_MEMORY_MIB
    cpus: int = DEFAULT_CPUS
    disks: int = DEFAULT_DISKS
    disk_size: str = DEFAULT_DISK_SIZE
    accel: str = "auto"

    def as_dict(self) -> dict:
        return {
            "memory_mib": self.memory_mib,
            "cpus": self.cpus,
            "disks": self.disks,
            "disk_size": self.disk_size,
        }


def validate_spec(spec: VmSpec) -> VmSpec:
    if not 1024 <= spec.memory_mib <= 16384:
        raise L.LabError(f"--memory must be 1024-16384 MiB, got {spec.memory_mib}")
    if not 1 <= spec.cpus <= 8:
        raise L.LabError(f"--cpus must be 1-8, got {spec.cpus}")
    if not 0 <= spec.disks <= MAX_DISKS:
        raise L.LabError(f"--disks must be 0-{MAX_DISKS}, got {spec.disks}")
    m = SIZE_RE.fullmatch(spec.disk_size)
    if not m or (m.group(2) == "M" and int(m.group(1)) < 300) or (m.group(2) == "G" and int(m.group(1)) > 512):
        raise L.LabError(f"--disk-size must look like 300M..512G (e.g. 4G), got {spec.disk_size!r}")
    if spec.accel not in ACCELS:
        raise L.LabError(f"--accel must be one of {', '.join(ACCELS)}, got {spec.accel!r}")
    return spec


def check_recorded_spec(recorded: dict | None, spec: VmSpec) -> None:
    """A running VM lab keeps its machine shape: asking for another one needs ``down`` first."""
    if not recorded or not recorded.get("hosts") or "vm" not in recorded:
        return
    have = recorded["vm"]
    diffs = [f"{k} {have.get(k)} (asked: {v})" for k, v in spec.as_dict().items() if have.get(k) != v]
    if diffs:
        raise L.LabError("the VM lab is up with " + ", ".join(diffs) + ": run 'kafka-metal lab down --vm' first")


def disk_ids(count: int) -> list[str]:
    """The data disks' stable device paths inside the guest."""
    return [f"/dev/disk/by-id/virtio-{DISK_SERIAL.format(j)}" for j in range(1, count + 1)]


def mac_address(index: int) -> str:
    return f"52:54:00:6b:6d:{index:02x}"


def kernel_cmdline() -> str:
    # net.ifnames=0: the one NIC is eth0, which the network file matches by MAC anyway.
    return f"root=LABEL={ROOT_LABEL} rw console=ttyS0 net.ifnames=0 panic=-1"


def qemu_argv(
    *,
    accel: str,
    spec: VmSpec,
    kernel: str,
    initrd: str,
    root_img: str,
    data_imgs: Sequence[str],
    tap: str,
    index: int,
    console_log: str,
    pid_file: str,
    name: str,
) -> list[str]:
    # One emulation thread for all virtual CPUs: with a thread per CPU (thread=multi) the JVM crashed
    # here now and then (SIGSEGV in JIT-compiled code, with -cpu max and with a plain qemu64 model
    # alike; code patched on one CPU while another runs it). One thread also leaves the host's
    # other core to the container lab.
    accel_opt = "kvm" if accel == "kvm" else "tcg,thread=single"
    argv = [
        "qemu-system-x86_64",
        "-name",
        f"kafka-metal-{name}",
        "-accel",
        accel_opt,
        "-cpu",
        "host" if accel == "kvm" else "max",
        "-m",
        str(spec.memory_mib),
        "-smp",
        str(spec.cpus),
        "-kernel",
        kernel,
        "-initrd",
        initrd,
        "-append",
        kernel_cmdline(),
        # cache=unsafe: the root disk is the lab's scratch copy, thrown away by down.
        "-drive",
        f"file={root_img},format=raw,if=none,id=root,cache=unsafe",
        "-device",
        "virtio-blk-pci,drive=root,serial=kmroot",
    ]
    for j, img in enumerate(data_imgs, start=1):
        # cache=none: the guest's flushes reach the image file, as they would reach a disk.
        argv += [
            "-drive",
            f"file={img},format=raw,if=none,id=data{j},cache=none,aio=threads",
            "-device",
            f"virtio-blk-pci,drive=data{j},serial={DISK_SERIAL.format(j)}",
        ]
    argv += [
        "-netdev",
        f"tap,id=n0,ifname={tap},script=no,downscript=no",
        "-device",
        f"virtio-net-pci,netdev=n0,mac={mac_address(index)}",
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        f"file:{console_log}",
        "-pidfile",
        pid_file,
    ]
    return argv


def network_file(address: str, prefixlen: int, gateway: str, index: int) -> str:
    return (
        "# Written by kafka-metal lab\n"
        "[Match]\n"
        f"MACAddress={mac_address(index)}\n\n"
        "[Network]\n"
        f"Address={address}/{prefixlen}\n"
        f"Gateway={gateway}\n"
        "LinkLocalAddressing=no\n"
        "IPv6AcceptRA=no\n"
    )


def is_lab_qemu(argv: Sequence[str], host_dir: str) -> bool:
    return (
        bool(argv)
        and os.path.basename(argv[0]).startswith("qemu-system")
        and any(a.startswith(f"file={host_dir}/root.img") for a in argv)
    )


# ---------------------------------------------------------------------------------------------
# The side-effecting part
# ---------------------------------------------------------------------------------------------


class VmLab(L.Lab):
    """The VM lab: the container lab's network, keys, inventory and teardown, with QEMU hosts."""

    kind = "vm"
    down_command = "kafka-metal lab down --vm"

    @staticmethod
    def recorded_spec(state_dir: str | None = None) -> dict:
        """The machine shape a VM lab that is up was made with (defaults when none is)."""
        state_dir = state_dir or os.environ.get("KAFKA_METAL_VM_LAB_DIR") or DEFAULT_VM_STATE_DIR
        have = L.Lab.recorded_at(Path(state_dir)).get("vm") or {}
        return {k: have.get(k, v) for k, v in VmSpec().as_dict().items()}

    def __init__(
        self,
        state_dir=None,
        cache_dir=None,
        bridge=None,
        subnet=None,
        netns_prefix=None,
        boot_timeout: float = 300.0,
        stop_timeout: float = 20.0,
        spec: VmSpec | None = None,
    ):
        state_dir = state_dir or os.environ.get("KAFKA_METAL_VM_LAB_DIR") or DEFAULT_VM_STATE_DIR
        recorded = L.Lab.recorded_at(Path(state_dir))
        super().__init__(
            state_dir=state_dir,
            cache_dir=cache_dir,
            bridge=bridge or recorded.get("bridge") or DEFAULT_VM_BRIDGE,
            subnet=subnet or recorded.get("subnet") or DEFAULT_VM_SUBNET,
            netns_prefix=netns_prefix or recorded.get("netns_prefix") or DEFAULT_VM_NETNS_PREFIX,
            boot_timeout=boot_timeout,
            stop_timeout=stop_timeout,
        )
        self.spec = validate_spec(spec or VmSpec())
        self.accel = recorded.get("accel")
        self.default_hosts = DEFAULT_VM_HOSTS

    # --- paths -------------------------------------------------------------------------------
    @property
    def base_dir(self) -> Path:
        return self.cache_dir / ("vm-" + L.base_key(include=VM_INCLUDE, recipe=VM_RECIPE))

    @property
    def base_root(self) -> Path:
        return self.base_dir / "root"

    def data_images(self, h: L.HostPlan) -> list[Path]:
        return [self.host_dir(h.name) / f"data{j}.img" for j in range(1, self.spec.disks + 1)]

    # --- hooks of Lab --------------------------------------------------------------------------
    def required_tools(self) -> dict[str, str]:
        return VM_TOOLS

    def record_extra(self) -> dict:
        return {"kind": "vm", "vm": self.spec.as_dict(), "accel": self.accel}

    def check_extra(self) -> None:
        check_recorded_spec(self._recorded(), self.spec)

    def host_vars(self, h: L.HostPlan) -> dict:
        return {"lab_data_disks": disk_ids(self.spec.disks)}

    def _running(self) -> dict[str, int]:
        out = {}
        for h in self._known_hosts():
            pid = self._qemu_pid(h)
            if pid:
                out[h.name] = pid
        return out

    def _qemu_pid(self, h: L.HostPlan) -> int | None:
        try:
            pid = int((self.host_dir(h.name) / "pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        if L.pid_alive(pid) and is_lab_qemu(L.read_cmdline(pid), str(self.host_dir(h.name))):
            return pid
        return None

    def _host_pubkeys(self, h: L.HostPlan) -> list[str]:
        return [
            p.read_text() for p in sorted((self.host_dir(h.name) / "upper" / "etc" / "ssh").glob("ssh_host_*_key.pub"))
        ]

    def _ensure_base(self, progress: Callable[[str], None]) -> None:
        base = self.base_dir
        if (base / "initrd.img").exists():
            self._ensure_accel(progress)
            return
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with open(self.cache_dir / f".{base.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (base / "initrd.img").exists():
                self._build_base(progress)
        self._ensure_accel(progress)

    def _build_base(self, progress: Callable[[str], None]) -> None:
        base = self.base_dir
        for stale in self.cache_dir.glob(f".build-{base.name}-*"):
            L.unmount_under(stale)
            L.remove_tree(stale)
        tmp = self.cache_dir / f".build-{base.name}-{os.getpid()}"
        root = tmp / "root"
        root.mkdir(parents=True)
        os.chmod(root, 0o755)  # noqa: S103 - the guest's / (world-readable, as every root directory)
        log = self.cache_dir / f"{base.name}.debootstrap.log"
        self._say(progress, f"building the VM base (debootstrap with kernel and Java, a few minutes): {base}")
        t = time.monotonic()
        with open(log, "w") as logf:
            rc = subprocess.run(
                L.debootstrap_argv(str(root), include=VM_INCLUDE),
                env=L.ENV,
                stdout=logf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        L.unmount_under(root)
        if rc.returncode != 0:
            L.remove_tree(tmp)
            raise L.LabError(
                f"debootstrap failed (exit {rc.returncode}); last lines of {log}:\n{L.log_tail(log.read_text())}"
            )
        L.Lab.prepare_base(root)
        etc = root / "etc"
        # systemd-networkd configures the NIC from the per-VM file; wait-online stays on (real boot order).
        for wants, unit in (
            ("multi-user.target.wants", "systemd-networkd.service"),
            ("sockets.target.wants", "systemd-networkd.socket"),
            ("network-online.target.wants", "systemd-networkd-wait-online.service"),
        ):
            link = etc / "systemd" / "system" / wants / unit
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.is_symlink():
                link.symlink_to(f"/lib/systemd/system/{unit}")
        L.write_file(
            etc / "fstab", f"# Written by kafka-metal lab\nLABEL={ROOT_LABEL} / ext4 rw,errors=remount-ro 0 1\n"
        )
        kernels = sorted((root / "boot").glob("vmlinuz-*"))
        initrds = sorted((root / "boot").glob("initrd.img-*"))
        if not kernels or not initrds:
            L.remove_tree(tmp)
            raise L.LabError(f"the VM base has no kernel or initrd in /boot (see {log})")
        shutil.copy2(kernels[-1], tmp / "vmlinuz")
        shutil.copy2(initrds[-1], tmp / "initrd.img")
        os.rename(tmp, base)
        self._say(progress, f"VM base built in {time.monotonic() - t:.0f} s")

    def _ensure_accel(self, progress: Callable[[str], None]) -> None:
        if self.accel and self._recorded() and (self._recorded() or {}).get("hosts"):
            return  # a lab that is up keeps its choice
        want = self.spec.accel
        if want == "auto":
            want = "kvm" if self._kvm_boots() else "tcg"
        self.accel = want
        what = "KVM" if want == "kvm" else "software emulation (TCG, one thread; much slower than the host)"
        self._say(progress, f"VMs run with {what}")

    def _kvm_boots(self, wait: float = 12.0) -> bool:
        """Does /dev/kvm boot the lab kernel? (It opens on hosts where guests then hang.)"""
        if not os.access("/dev/kvm", os.R_OK | os.W_OK):
            return False
        argv = [
            "qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-m", "256", "-display", "none",
            "-monitor", "none", "-serial", "stdio", "-no-reboot",
            "-kernel", str(self.base_dir / "vmlinuz"), "-append", "console=ttyS0 panic=-1",
        ]  # fmt: skip
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        seen = b""
        deadline = time.monotonic() + wait
        try:
            os.set_blocking(proc.stdout.fileno(), False)
            while time.monotonic() < deadline and proc.poll() is None:
                chunk = proc.stdout.read() or b""
                seen += chunk
                if b"Linux version" in seen:
                    return True
                time.sleep(0.2)
            return False
        finally:
            proc.kill()
            proc.wait()

    def _prepare_host(self, h: L.HostPlan, all_hosts: Sequence[L.HostPlan]) -> None:
        d = self.host_dir(h.name)
        upper = d / "upper"
        etc = upper / "etc"
        (etc / "ssh").mkdir(parents=True, exist_ok=True)
        if not (etc / "ssh" / "ssh_host_ed25519_key").exists():
            L.run(["ssh-keygen", "-q", "-A", "-f", str(upper)])
        L.write_file(etc / "ssh" / "sshd_config.d" / "kafka-metal-lab.conf", L.SSHD_DROPIN)
        L.write_file(etc / "apt" / "sources.list", L.apt_sources(*L.apt_mirrors()))
        for unit in L.MASKED_UNITS[1:]:  # the apt timers; wait-online works in a VM
            link = etc / "systemd" / "system" / unit
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.is_symlink():
                link.symlink_to("/dev/null")
        L.write_file(etc / "hostname", h.name + "\n")
        L.write_file(etc / "hosts", L.hosts_file(all_hosts))
        L.write_file(etc / "resolv.conf", Path("/etc/resolv.conf").read_text())
        L.write_file(
            etc / "systemd" / "network" / "10-kafka-metal-lab.network",
            network_file(h.address, self.net.network.prefixlen, self.net.gateway, h.index),
        )
        if not (etc / "machine-id").exists():
            L.write_file(etc / "machine-id", uuid.uuid4().hex + "\n", 0o444)
        ssh_dir = upper / "root" / ".ssh"
        ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        L.write_file(ssh_dir / "authorized_keys", self.key_file.with_suffix(".pub").read_text(), 0o600)
        self._ensure_tap(h)

    def _ensure_tap(self, h: L.HostPlan) -> None:
        if h.veth not in L.parse_ip_links(L.run(["ip", "-j", "link", "show"]).stdout):
            L.run(["ip", "tuntap", "add", "dev", h.veth, "mode", "tap"])
        L.run(["ip", "link", "set", h.veth, "master", self.net.bridge, "up"])

    def _make_root_image(self, h: L.HostPlan) -> None:
        """root.img: an ext4 image of the base with the VM's own files over it (made once per VM)."""
        d = self.host_dir(h.name)
        img = d / "root.img"
        if img.exists():
            return
        work, merged = d / "work", d / "merged"
        for p in (work, merged):
            p.mkdir(parents=True, exist_ok=True)
        options = f"lowerdir={self.base_root},upperdir={d / 'upper'},workdir={work}"
        tmp = d / "root.img.tmp"
        L.run(["mount", "-t", "overlay", "overlay", "-o", options, str(merged)])
        try:
            L.run(["mkfs.ext4", "-q", "-F", "-L", ROOT_LABEL, "-d", str(merged), str(tmp), ROOT_SIZE], timeout=600)
        finally:
            L.run(["umount", str(merged)])
        os.rename(tmp, img)
        for data in self.data_images(h):
            if not data.exists():
                L.run(["truncate", "-s", self.spec.disk_size, str(data)])

    def _kill_leftovers(self, h: L.HostPlan) -> None:
        pid = self._qemu_pid(h)
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            for _ in range(100):
                if not L.pid_alive(pid):
                    break
                time.sleep(0.1)

    def _start_host(self, h: L.HostPlan) -> None:
        d = self.host_dir(h.name)
        self._make_root_image(h)
        with contextlib.suppress(FileNotFoundError):
            (d / "pid").unlink()
        argv = qemu_argv(
            accel=self.accel or "tcg",
            spec=self.spec,
            kernel=str(self.base_dir / "vmlinuz"),
            initrd=str(self.base_dir / "initrd.img"),
            root_img=str(d / "root.img"),
            data_imgs=[str(p) for p in self.data_images(h)],
            tap=h.veth,
            index=h.index,
            console_log=str(d / "console.log"),
            pid_file=str(d / "pid"),
            name=h.name,
        )
        log = open(d / "qemu.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            proc = subprocess.Popen(
                argv, env=L.ENV, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        finally:
            log.close()
        self._procs[h.name] = proc

    def _stop_host(self, h: L.HostPlan, pid: int | None) -> None:
        # Teardown throws the VM's disks away, so the VM is simply stopped (QEMU exits on SIGTERM).
        pid = pid or self._qemu_pid(h)
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + self.stop_timeout
            while L.pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            self._kill_leftovers(h)
        proc = self._procs.pop(h.name, None)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        L.unmount_under(self.host_dir(h.name))
        L.run(["ip", "link", "del", h.veth], check=False)
        L.remove_tree(self.host_dir(h.name))
