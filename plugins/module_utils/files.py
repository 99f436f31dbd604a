# Copyright: kafka-metal contributors
# Apache License 2.0
"""Files written safely: atomic replacement with owner and mode, an exclusive lock, and what a path holds now.

Shared by the modules that write on hosts (``kafka_node``) and by the controller-side writers (the CA, the
backup's chunks and manifests, a node's stored files). Standard library only: hosts need nothing else.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class PathState:
    """What is at a path: ``kind`` is ``file``, ``dir``, ``link``, ``other`` or ``absent``."""

    kind: str
    mode: int = 0
    uid: int = -1
    gid: int = -1
    target: str | None = None  # a link's target


def path_state(path):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return PathState("absent")
    if stat.S_ISLNK(st.st_mode):
        return PathState("link", stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, os.readlink(path))
    kind = "file" if stat.S_ISREG(st.st_mode) else "dir" if stat.S_ISDIR(st.st_mode) else "other"
    return PathState(kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)


def read_bytes(path):
    """A file's content, or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def write_file(path, data, mode, uid=-1, gid=-1):
    """Write ``data`` to ``path`` atomically with ``mode`` (and owner ``uid``/``gid`` unless -1); True when the
    file, its mode or its owner changed. The new content is complete on disk before it replaces the old."""
    current = read_bytes(path)
    if current == data:
        st = os.stat(path)
        changed = False
        if stat.S_IMODE(st.st_mode) != mode:
            os.chmod(path, mode)
            changed = True
        if (uid != -1 and st.st_uid != uid) or (gid != -1 and st.st_gid != gid):
            os.chown(path, uid, gid)
            changed = True
        return changed
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".")
    try:
        os.fchmod(fd, mode)
        if uid != -1 or gid != -1:
            os.fchown(fd, uid, gid)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return True


class LockTimeout(OSError):
    """Another process held the lock for longer than the caller would wait."""


@contextlib.contextmanager
def locked(path, timeout=300.0):
    """Hold an exclusive ``fcntl`` lock on ``path`` (created 0600 if missing) for the ``with`` block; raise
    :class:`LockTimeout` after ``timeout`` seconds of waiting."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() > deadline:
                    raise LockTimeout(f"could not lock {path} within {timeout} s: another run holds it; wait for it "
                                      "to finish") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)
