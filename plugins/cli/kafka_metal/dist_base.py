"""The distribution builder's common ground: supported versions, names of archives, where they are kept, the
commands it runs, and its one error."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

SCALA_BINARY = "2.13"

KAFKA_GROUP = "org.apache.kafka"

# The repository comes from this machine's Maven configuration (see default_repo) unless given.
REPO_ENV = "KAFKA_METAL_MAVEN_REPO"

DEFAULT_CACHE_DIR = "/var/cache/kafka-metal"

CACHE_ENV = "KAFKA_METAL_CACHE_DIR"

SUPPORTED_VERSION_RE = re.compile(r"^(3\.9|4\.\d+)\.\d+$")

SUPPORTED_RANGE = "3.9.x and 4.x (for example 3.9.1 or 4.1.1)"

# Maven plugin used for resolution; pinned so that the result does not depend on Maven's default binding.
DEPENDENCY_PLUGIN_VERSION = "3.8.1"

MIRROR_ID = "kafka-metal-repo"

# Bumped whenever the archive's layout or generated files change, so that cached archives are rebuilt.
DIST_FORMAT = 1

# Fixed timestamp of every archive entry (1980-01-01T00:00:00Z), as reproducible builds commonly use.
ARCHIVE_MTIME = 315532800

# apt-get packages that provide the commands a build needs (Debian 12).
APT_PACKAGES = {"mvn": "maven", "java": "openjdk-17-jre-headless"}

Progress = Callable[[str], None]

class DistError(Exception):
    """A build that cannot go on; the message is meant for the user, as is."""

# --------------------------------------------------------------------------------------------------
# Input validation and naming
# --------------------------------------------------------------------------------------------------


def validate_version(version: str) -> str:
    """Return ``version`` stripped if it is a supported Kafka version, else raise DistError."""
    v = (version or "").strip()
    if not SUPPORTED_VERSION_RE.match(v):
        raise DistError(
            f"unsupported Kafka version {version!r}: kafka-metal builds {SUPPORTED_RANGE}; "
            f"the version must match {SUPPORTED_VERSION_RE.pattern}"
        )
    return v

def series(version: str) -> str:
    """'3.9' for 3.9.x, '4' for any 4.x (the two layouts this module knows)."""
    v = validate_version(version)
    return "3.9" if v.startswith("3.9.") else "4"

def dist_name(version: str) -> str:
    return f"kafka_{SCALA_BINARY}-{version}"

def archive_name(version: str) -> str:
    return f"{dist_name(version)}.tgz"

def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get(CACHE_ENV) or DEFAULT_CACHE_DIR)

def default_out_dir(environ: Mapping[str, str] | None = None) -> Path:
    return default_cache_dir(environ) / "dist"

def make_out_dir(out_dir: str | os.PathLike | None) -> Path:
    """``out_dir`` (default :func:`default_out_dir`), created when missing; DistError when it cannot be."""
    out = Path(out_dir) if out_dir is not None else default_out_dir()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DistError(f"cannot create the output directory {out}: {exc}") from exc
    return out

def find_command(name: str, environ: Mapping[str, str] | None = None) -> str:
    """Path of ``mvn`` or ``java`` (JAVA_HOME first for java), or DistError naming the apt package."""
    env = os.environ if environ is None else environ
    if name == "java" and env.get("JAVA_HOME"):
        candidate = Path(env["JAVA_HOME"]) / "bin" / "java"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name, path=env.get("PATH"))
    if not found:
        pkg = APT_PACKAGES.get(name, name)
        raise DistError(
            f"'{name}' was not found on PATH (needed to build the Kafka distribution on this controller); "
            f"install it with: apt-get install -y {pkg}"
        )
    return found
