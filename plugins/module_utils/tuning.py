"""Host tuning decisions, pure and unit-tested: kernel settings, JVM heap sizing, resource limits,
transparent huge pages, and what to do with a data disk in each state it can be found in.

The modules (kafka_sysctl, kafka_data_disk, kafka_host_facts) and the filters only gather facts and
act on what these functions decide.
"""

from __future__ import annotations

import re
import shlex

# Kernel settings for a Kafka host, after Kafka's operations guidance ("Hardware and OS"): keep the
# page cache, avoid swapping the JVM, flush dirty pages early and steadily instead of in bursts, room
# for the memory maps of many log segments, larger socket buffers and backlogs for many clients.
DEFAULT_SYSCTLS = {
    "vm.swappiness": "1",
    "vm.dirty_background_ratio": "5",
    "vm.dirty_ratio": "60",
    "vm.max_map_count": "262144",
    "net.core.rmem_default": "131072",
    "net.core.wmem_default": "131072",
    "net.core.rmem_max": "2097152",
    "net.core.wmem_max": "2097152",
    "net.ipv4.tcp_rmem": "4096 65536 2097152",
    "net.ipv4.tcp_wmem": "4096 65536 2097152",
    "net.core.netdev_max_backlog": "50000",
    "net.core.somaxconn": "4096",
    "net.ipv4.tcp_max_syn_backlog": "4096",
    "fs.file-max": "2097152",
}

SYSCTL_KEY = re.compile(r"[a-z0-9_]+(\.[a-z0-9_-]+)+")
SYSCTL_VALUE = re.compile(r"-?[0-9]+( -?[0-9]+)*")
THP_MODES = ("always", "madvise", "never")
THP_DEFRAG_MODES = ("always", "defer", "defer+madvise", "madvise", "never")
FORBIDDEN_MOUNT_OPTIONS = ("nobarrier", "barrier=0")



class TuningError(ValueError):
    """Bad input: the message names the setting and the fix."""


# --- kernel settings ------------------------------------------------------------------------------


def sysctl_values(defaults: dict | None, overrides: dict | None = None, name: str = "tuning_sysctls") -> dict:
    """Merge ``overrides`` over ``defaults`` (a null value drops a key) and validate every value.

    Values are whole numbers or strings of whole numbers separated by single spaces; YAML booleans
    (``yes``/``on`` read as true) and fractions are refused, because the kernel would take them
    as something else or not at all.
    """
    merged = {}
    override_name = f"{name}_overrides" if name == "tuning_sysctls" else name
    for source, values in ((name, defaults), (override_name, overrides)):
        if values is None:
            continue
        if not isinstance(values, dict):
            raise TuningError(f"{source} must be a mapping of kernel setting to value, got {type(values).__name__}")
        for key, value in values.items():
            if not isinstance(key, str) or not SYSCTL_KEY.fullmatch(key):
                raise TuningError(
                    f"{source}: {key!r} is not a kernel setting name (dotted, like vm.swappiness; "
                    "use dots, not slashes)"
                )
            if value is None:
                merged.pop(key, None)
                continue
            merged[key] = sysctl_value(key, value, source)
    return dict(sorted(merged.items()))


def sysctl_value(key: str, value: object, source: str = "tuning_sysctls") -> str:
    if isinstance(value, bool):
        raise TuningError(
            f"{source}: {key} is the boolean {value} (YAML reads yes/no/on/off/true/false as booleans); "
            f"write the number the kernel expects, e.g. {key}: {int(value)}"
        )
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        text = " ".join(value.split())
        if SYSCTL_VALUE.fullmatch(text):
            return text
    raise TuningError(
        f"{source}: {key} has the value {value!r}; write a whole number, or whole numbers separated by "
        'spaces (like "4096 65536 2097152")'
    )


def render_sysctl_conf(values: dict, header: str = "") -> str:
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    lines += [f"{key} = {value}" for key, value in sorted(values.items())]
    return "\n".join(lines) + "\n"


def sysctl_path(key: str) -> str:
    return "/proc/sys/" + key.replace(".", "/")


def same_sysctl(live: str, want: str) -> bool:
    return live.split() == want.split()


# --- sizes and the JVM heap -----------------------------------------------------------------------

# --- limits and transparent huge pages ------------------------------------------------------------


def parse_limits(text: str) -> dict[str, tuple[str, str]]:
    """``/proc/PID/limits`` -> {'Max open files': (soft, hard), ...}."""
    out = {}
    for line in text.splitlines()[1:]:
        m = re.match(r"(Max [a-z ]+?)\s{2,}(\S+)\s+(\S+)", line)
        if m:
            out[m.group(1)] = (m.group(2), m.group(3))
    return out


def limit_problems(pid1_limits: dict, nofile: int, nproc: int) -> list[str]:
    """Why a unit asking for these limits would not start on this host (systemd cannot raise a limit
    above its own hard limit)."""
    out = []
    for label, want, var in (
        ("Max open files", nofile, "kafka_limit_nofile"),
        ("Max processes", nproc, "kafka_limit_nproc"),
    ):
        hard = pid1_limits.get(label, ("unlimited", "unlimited"))[1]
        if hard != "unlimited" and int(hard) < int(want):
            out.append(
                f"{var} is {want} but this host grants at most {hard} ({label.lower()}, the hard limit of PID 1), "
                f"so the unit would not start: lower {var} to {hard} or raise the host's limit first"
            )
    return out


def thp_mode(text: str) -> str:
    """``always [madvise] never`` -> ``madvise``."""
    m = re.search(r"\[([a-z+]+)\]", text)
    return m.group(1) if m else text.strip()


# --- data disks ---------------------------------------------------------------------------------


def parse_blkid_export(text: str) -> dict[str, str]:
    """``blkid -p -o export DEV`` -> {'TYPE': 'xfs', 'UUID': ..., 'PTTYPE': ...}."""
    out = {}
    for line in text.splitlines():
        if "=" in line:
            key, _, value = line.partition("=")
            out[key.strip()] = " ".join(shlex.split(value)) if value else ""
    return out


def validate_mount_options(options: object) -> str:
    if isinstance(options, list):
        options = ",".join(str(o) for o in options)
    if not isinstance(options, str) or not options.strip():
        raise TuningError("mount options must be a comma-separated string like noatime")
    parts = [o.strip() for o in options.split(",") if o.strip()]
    bad = [o for o in parts if o in FORBIDDEN_MOUNT_OPTIONS]
    if bad:
        raise TuningError(
            f"mount option {bad[0]} turns off write barriers: a power loss can then corrupt the file system "
            "and lose acknowledged messages; remove it"
        )
    if "noatime" not in parts:
        raise TuningError("data disks are mounted with noatime (no write per read); add noatime to the options")
    return ",".join(parts)


def disk_problems(disks: object, name: str = "tuning_data_disks") -> list[str]:
    """Check the inventory's data disks before any host is touched."""
    if disks in (None, ""):
        return []
    if not isinstance(disks, list):
        return [f"{name} must be a list of {{device, path}} entries"]
    out = []
    seen_dev, seen_path = set(), set()
    for i, disk in enumerate(disks):
        where = f"{name}[{i}]"
        if not isinstance(disk, dict):
            out.append(f"{where} must be a mapping with device and path")
            continue
        known_keys = ("device", "path", "force_format", "label", "mount_options", "encrypt", "luks_name")
        unknown = sorted(set(disk) - set(known_keys))
        if unknown:
            known = ", ".join(known_keys)
            out.append(f"{where} has unknown key(s) {', '.join(unknown)} (known: {known})")
        dev, path = disk.get("device"), disk.get("path")
        if not isinstance(dev, str) or not dev.startswith("/dev/"):
            out.append(f"{where}.device must be a block device under /dev (best /dev/disk/by-id/...), got {dev!r}")
        shared = ("", "/var", "/var/lib", "/opt", "/srv", "/home", "/tmp")
        if not isinstance(path, str) or not path.startswith("/") or path.rstrip("/") in shared:
            out.append(f"{where}.path must be a directory of its own (like /var/lib/kafka/data1), got {path!r}")
        if "force_format" in disk and not isinstance(disk["force_format"], bool):
            out.append(f"{where}.force_format must be true or false, got {disk['force_format']!r}")
        label = disk.get("label")
        if label is not None and (not isinstance(label, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,12}", label)):
            out.append(f"{where}.label must be 1-12 letters, digits, '-' or '_' (an XFS label), got {label!r}")
        if "mount_options" in disk:
            try:
                validate_mount_options(disk["mount_options"])
            except TuningError as exc:
                out.append(f"{where}: {exc}")
        if isinstance(dev, str):
            if dev in seen_dev:
                out.append(f"{where}.device {dev} is listed twice")
            seen_dev.add(dev)
        if isinstance(path, str):
            if path.rstrip("/") in seen_path:
                out.append(f"{where}.path {path} is listed twice")
            seen_path.add(path.rstrip("/"))
    return out


def plan_disk(
    *,
    device: str,
    exists: bool,
    probe: dict[str, str],
    partitions: list[str],
    device_mounts: list[str],
    path: str,
    path_source: str | None,
    path_source_is_device: bool,
    path_entries: list[str],
    force_format: bool,
) -> dict:
    """What to do with one data disk: ``{'format': bool, 'mount': bool}``, or a TuningError saying
    why nothing may be done.

    - A device with no signature at all is given an XFS file system.
    - A device that already holds XFS is used as it is (never formatted again: re-runs keep data).
    - Anything else (another file system, a partition table, partitions, a LUKS header, swap, RAID
      members) is refused unless the inventory sets ``force_format: true`` for that device.
    - A device that is mounted somewhere else, or a path where another device is mounted, is refused
      even when forced; so is a path that already holds files (a mount would hide them).
    """
    if not exists:
        raise TuningError(f"{device} does not exist on this host: check the device path in tuning_data_disks")
    fstype = probe.get("TYPE", "")
    pttype = probe.get("PTTYPE", "")
    foreign = None
    if partitions:
        foreign = f"partitions ({', '.join(partitions)})"
    elif pttype:
        foreign = f"a {pttype} partition table"
    elif fstype == "crypto_LUKS":
        foreign = "a LUKS header (an encrypted volume)"
    elif fstype and fstype != "xfs":
        foreign = f"a file system ({fstype})"
    others = [m for m in device_mounts if m.rstrip("/") != path.rstrip("/")]
    if others:
        raise TuningError(f"{device} is mounted at {', '.join(others)}; unmount it first (nothing was changed)")
    if path_source and not path_source_is_device:
        raise TuningError(
            f"{path} already has {path_source} mounted on it, not {device}; fix tuning_data_disks (nothing was changed)"
        )
    if foreign:
        if not force_format:
            raise TuningError(
                f"{device} already holds {foreign}; kafka-metal formats only empty disks. If its contents may be "
                f"destroyed, set force_format: true for this device in tuning_data_disks (nothing was changed)"
            )
    mounted = bool(path_source) and path_source_is_device
    if not mounted and path_entries:
        raise TuningError(
            f"{path} is not a mount point yet but holds files ({', '.join(sorted(path_entries)[:5])}); mounting "
            f"{device} there would hide them: move them away first (nothing was changed)"
        )
    return {"format": bool(foreign) or not fstype, "wipe": bool(foreign), "mount": not mounted}


def fstab_line(uuid: str, path: str, options: str) -> str:
    return f"UUID={uuid} {path} xfs {options} 0 0"


def update_fstab(text: str, path: str, line: str) -> str:
    """fstab with exactly one entry for ``path`` (ours), others kept as they are."""
    out, placed = [], False
    for raw in text.splitlines():
        fields = raw.split()
        if fields and not fields[0].startswith("#") and len(fields) >= 2 and fields[1].rstrip("/") == path.rstrip("/"):
            if not placed:
                out.append(line)
                placed = True
            continue
        out.append(raw)
    if not placed:
        out.append(line)
    return "\n".join(out) + "\n"
