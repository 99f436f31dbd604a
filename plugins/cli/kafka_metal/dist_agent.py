"""``kafka-metal dist agent``: fetch the Prometheus JMX exporter's Java agent into the distribution cache.

The agent (``io.prometheus.jmx:jmx_prometheus_javaagent``) is a single shaded jar on Maven Central. It is
fetched with Maven from the same repository as the Kafka distribution (``--repo``, ``$KAFKA_METAL_MAVEN_REPO``
or the mirror in Maven's own settings), with strict checksums (Maven fails when the jar does not match the
checksum the repository publishes beside it), and written with a ``sha256sum``-style file next to it. The
roles copy it from there to every node and check it against ``kafka_jmx_exporter_checksum`` first.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from .dist_archive import sha512_file
from .dist_base import DistError, Progress, find_command, make_out_dir
from .dist_maven import (
    Artifact,
    default_repo,
    maven_command,
    maven_env,
    render_pom,
    render_settings,
    run_maven,
    validate_repo,
)

AGENT_GROUP = "io.prometheus.jmx"
AGENT_ARTIFACT = "jmx_prometheus_javaagent"
DEFAULT_AGENT_VERSION = "1.0.1"
_VERSION_RE = re.compile(r"^\d+\.\d+\.\d+$")


def agent_name(version: str) -> str:
    return f"{AGENT_ARTIFACT}-{version}.jar"


def sha256_file(path: Path) -> str:
    return sha512_file(path, "sha256")


def fetch_agent(version: str = DEFAULT_AGENT_VERSION, repo: str | None = None,
                out_dir: str | os.PathLike | None = None, progress: Progress = print) -> tuple[Path, str]:
    """Fetch (or reuse) ``OUT/jmx_prometheus_javaagent-V.jar`` and its ``.sha256``; return (path, sha256 hex).

    A jar already there whose checksum file matches is reused. Raises DistError with a message for the user.
    """
    if not _VERSION_RE.match(version or ""):
        raise DistError(f"--version must look like 1.0.1, got {version!r}")
    repo = validate_repo(repo) if repo else default_repo()
    out = make_out_dir(out_dir)
    jar = out / agent_name(version)
    sumfile = jar.with_name(jar.name + ".sha256")
    if jar.is_file() and sumfile.is_file():
        recorded = sumfile.read_text().split()[:1]
        digest = sha256_file(jar)
        if recorded == [digest]:
            progress(f"{jar} is there and matches its checksum file")
            return jar, digest
    env = maven_env()
    mvn = find_command("mvn", env)
    log_path = out / f"{AGENT_ARTIFACT}-{version}.fetch.log"
    log_path.write_text("")
    gav = f"{AGENT_GROUP}:{AGENT_ARTIFACT}:{version}"
    progress(f"fetching {gav} from {repo} with Maven (log: {log_path})")
    with tempfile.TemporaryDirectory(prefix="kafka-metal-agent-") as tmp:
        tmp_path = Path(tmp)
        settings = tmp_path / "settings.xml"
        settings.write_text(render_settings(repo))
        pom = tmp_path / "pom.xml"
        pom.write_text(render_pom(version, [Artifact(AGENT_GROUP, AGENT_ARTIFACT, version)],
                                  name=f"{AGENT_ARTIFACT}-fetch"))
        libs = tmp_path / "libs"
        cmd = maven_command(mvn, settings, pom, ["dependency:copy-dependencies"],
                            {"outputDirectory": str(libs), "excludeTransitive": "true"})
        cmd.insert(1, "--strict-checksums")
        run_maven(cmd, log_path, f"fetching {gav}", repo, env)
        fetched = libs / agent_name(version)
        if not fetched.is_file():
            raise DistError(f"Maven finished but {fetched.name} is not among the fetched files; log: {log_path}")
        digest = sha256_file(fetched)
        partial = out / f".{jar.name}.partial"
        shutil.copyfile(fetched, partial)
        sumfile.unlink(missing_ok=True)
        os.replace(partial, jar)
        sumfile.write_text(f"{digest}  {jar.name}\n")
    progress(f"fetched {jar}\nsha256 {digest}")
    return jar, digest
