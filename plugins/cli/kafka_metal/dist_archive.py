"""The distribution archive: written reproducibly (sorted entries, fixed times, owners and modes), its SHA-512 and
checksum file, and its manifest read back."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import tarfile
from pathlib import Path

from .dist_base import (
    ARCHIVE_MTIME,
    DistError,
    dist_name,
)

# --------------------------------------------------------------------------------------------------
# Reproducible archive
# --------------------------------------------------------------------------------------------------


def _mode_for(rel: str, is_dir: bool) -> int:
    if is_dir:
        return 0o755
    if rel.startswith("bin/") or "/bin/" in rel:
        return 0o755
    return 0o644

def write_reproducible_tgz(src_dir: Path, out_path: Path, root: str, mtime: int = ARCHIVE_MTIME) -> None:
    """Write ``src_dir``'s tree as ``root/...`` into a gzip'd tar that depends only on the files' contents.

    Entries are sorted by path (directories before their contents), owned by 0:0 with empty user and
    group names, dated ``mtime``, mode 0755 for directories and bin/ files, 0644 otherwise; the gzip header
    has no file name and mtime 0. Symlinks and special files are refused.
    """
    src_dir = Path(src_dir)
    entries: list[tuple[tuple[str, ...], Path, bool]] = []
    for dirpath, dirnames, filenames in os.walk(src_dir):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            if p.is_symlink() or not (p.is_dir() or p.is_file()):
                raise DistError(f"refusing to archive {p}: only regular files and directories are supported")
            rel = p.relative_to(src_dir)
            entries.append((rel.parts, p, p.is_dir()))
    entries.sort(key=lambda e: e[0])

    def info(name: str, is_dir: bool, size: int = 0, rel: str = "") -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
        ti.mode = _mode_for(rel, is_dir)
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = ""
        ti.mtime = mtime
        ti.size = 0 if is_dir else size
        return ti

    out_path = Path(out_path)
    with open(out_path, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz:
            with tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar:
                tar.addfile(info(root + "/", True))
                for parts, path, is_dir in entries:
                    rel = "/".join(parts)
                    name = f"{root}/{rel}"
                    if is_dir:
                        tar.addfile(info(name + "/", True, rel=rel))
                    else:
                        with open(path, "rb") as fh:
                            tar.addfile(info(name, False, path.stat().st_size, rel), fh)

def sha512_file(path: Path, algorithm: str = "sha512") -> str:
    """Hex digest of a file (SHA-512 unless ``algorithm`` names another hashlib algorithm)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()

def checksum_line(sha512_hex: str, file_name: str) -> str:
    """One line in ``sha512sum`` format (two spaces: text mode), checkable with ``sha512sum -c``."""
    return f"{sha512_hex}  {file_name}\n"

def read_checksum_file(path: Path) -> tuple[str, str] | None:
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    m = re.match(r"^([0-9a-f]{128}) [ *](\S+)\s*$", text)
    return (m[1], m[2]) if m else None

def read_manifest_from_archive(archive: Path, version: str) -> dict | None:
    """kafka-metal-dist.json from an archive (it sorts before libs/, so this reads little), or None."""
    want = f"{dist_name(version)}/kafka-metal-dist.json"
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                if member.name == want:
                    fh = tar.extractfile(member)
                    return json.loads(fh.read().decode()) if fh else None
                if member.name.startswith(f"{dist_name(version)}/libs/"):
                    return None
    except (OSError, tarfile.TarError, ValueError):
        return None
    return None


# The code that decides the archive's layout, part of the builder's fingerprint (dist.generator_fingerprint).
LAYOUT_CODE = (write_reproducible_tgz, _mode_for)
