"""The container lab's system helpers: commands (argument lists, ``LC_ALL=C``), files, mounts, cgroups and
processes of this machine, and the apt sources the hosts' mirrors come from. Used by :mod:`lab` and
:mod:`vmlab`."""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from .lab_plan import (
    REQUIRED_TOOLS,
    LabError,
    is_lab_nspawn,
    missing_tools_message,
    mounts_under,
    parse_mountpoints,
)

ENV = {**os.environ, "LC_ALL": "C"}

IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")

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
