"""What a host's block devices are doing right now, read from /proc and /sys: mounts, partitions,
device-mapper holders and mappings. Shared by the data-disk and LUKS modules; reads only."""

from __future__ import annotations

import os
import re


def _unescape(path: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def read_mounts(mountinfo: str = "/proc/self/mountinfo") -> list[tuple[str, str]]:
    """[(source, mount point)] from mountinfo."""
    out = []
    with open(mountinfo) as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, rfields = left.split(), right.split()
            if len(fields) >= 5 and len(rfields) >= 2:
                out.append((_unescape(rfields[1]), _unescape(fields[4])))
    return out


def same_device(source: str, real: str) -> bool:
    if not source.startswith("/dev/"):
        return False
    try:
        return os.path.realpath(source) == real
    except OSError:
        return False


def mounts_of(real: str, mounts: list[tuple[str, str]]) -> list[str]:
    return [mp for src, mp in mounts if same_device(src, real)]


def partitions_of(real: str, sys_block: str = "/sys/class/block") -> list[str]:
    name = os.path.basename(real)
    base = f"{sys_block}/{name}"
    try:
        return sorted(p for p in os.listdir(base) if os.path.exists(f"{base}/{p}/partition"))
    except OSError:
        return []


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def holders_of(real: str, sys_block: str = "/sys/class/block") -> list[str]:
    """Names of what holds the device: device-mapper names (``kafka-data1``) or kernel names (``md0``)."""
    base = f"{sys_block}/{os.path.basename(real)}/holders"
    try:
        entries = sorted(os.listdir(base))
    except OSError:
        return []
    return [_read(f"{sys_block}/{h}/dm/name") or h for h in entries]


def mapping_backing(name: str, sys_block: str = "/sys/class/block") -> str | None:
    """The device behind the device-mapper volume ``name`` (``/dev/vdb``), or None when there is none."""
    try:
        entries = sorted(os.listdir(sys_block))
    except OSError:
        return None
    for entry in entries:
        if entry.startswith("dm-") and _read(f"{sys_block}/{entry}/dm/name") == name:
            try:
                slaves = sorted(os.listdir(f"{sys_block}/{entry}/slaves"))
            except OSError:
                slaves = []
            return f"/dev/{slaves[0]}" if slaves else f"/dev/{entry}"
    return None


def blkid_probe(module, real: str) -> dict[str, str]:
    """The signatures on a device (``{'TYPE': 'xfs', 'UUID': ...}``; empty when it has none), read with
    ``blkid -p`` (low-level: the device itself, not the cache)."""
    from ansible_collections.metal.kafka.plugins.module_utils.tuning import parse_blkid_export

    rc, out, err = module.run_command(["blkid", "-p", "-o", "export", real])
    if rc not in (0, 2):  # 2: no signature found
        module.fail_json(msg=f"blkid could not read {real}: {err.strip() or out.strip()}")
    return parse_blkid_export(out) if rc == 0 else {}
