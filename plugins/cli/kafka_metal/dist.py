"""``kafka-metal dist build``: assemble a Kafka binary distribution from Maven artifacts.

No package registry ships Kafka's binary archive (``kafka_2.13-V.tgz``), so this module builds an
equivalent one from the jars that Maven Central (or an internal mirror of it) serves:

* ``libs/``: ``org.apache.kafka:kafka_2.13``, ``kafka-tools`` and ``kafka-storage`` with their runtime
  dependencies (ZooKeeper's jars included on 3.9.x), plus the logging binding the official archive adds
  (3.9.x: reload4j through ``slf4j-reload4j``; 4.x: log4j2 through ``log4j-slf4j-impl`` or
  ``log4j-slf4j2-impl``, whichever matches the SLF4J API that Kafka's POMs resolve to).
  They are collected by ``mvn dependency:copy-dependencies`` on a generated POM, in a temp dir.
* ``bin/``: our own small ``kafka-run-class.sh`` and one wrapper per tool. Each tool's main class is
  picked from a table of known class names by looking at which classes the resolved jars contain.
* ``config/``: a sample KRaft ``server.properties`` and the logging configurations.
* ``kafka-metal-dist.json``: version, repository, resolved artifacts, build tool, tool classes.

The archive is reproducible (sorted entries, fixed mtime/owner/modes, gzip header without time or
name) and gets a ``sha512sum``-style checksum file next to it. Standard library only.

The parts: :mod:`dist_base` (versions, names, paths, the error), :mod:`dist_maven` (repository, artifacts,
Maven's runs), :mod:`dist_layout` (tools, bin/ scripts, config/), :mod:`dist_archive` (the reproducible archive
and its checksum); this module builds with them and is the command line.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import inspect
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

# The builder's parts; their names are this module's too, for its callers.
from .dist_archive import (  # noqa: F401
    LAYOUT_CODE,
    checksum_line,
    read_checksum_file,
    read_manifest_from_archive,
    sha512_file,
    write_reproducible_tgz,
)
from .dist_base import (  # noqa: F401
    APT_PACKAGES,
    ARCHIVE_MTIME,
    CACHE_ENV,
    DEFAULT_CACHE_DIR,
    DEPENDENCY_PLUGIN_VERSION,
    DIST_FORMAT,
    KAFKA_GROUP,
    MIRROR_ID,
    REPO_ENV,
    SCALA_BINARY,
    SUPPORTED_RANGE,
    SUPPORTED_VERSION_RE,
    DistError,
    Progress,
    archive_name,
    default_cache_dir,
    default_out_dir,
    dist_name,
    find_command,
    make_out_dir,
    series,
    validate_version,
)
from .dist_layout import (  # noqa: F401
    JVM_PERFORMANCE_OPTS,
    KAFKA_MAIN,
    LOG4J2_YAML,
    LOG4J_PROPERTIES,
    TOOLS,
    TOOLS_LOG4J2_YAML,
    TOOLS_LOG4J_PROPERTIES,
    ZOOKEEPER_MAIN,
    ZOOKEEPER_PROPERTIES,
    Tool,
    jar_classes,
    log4j_opts,
    render_bin,
    render_config,
    render_run_class,
    render_server_properties,
    render_server_start,
    render_stop_script,
    render_template,
    render_tool_script,
    render_zookeeper_start,
    resolve_tool_classes,
)
from .dist_maven import (  # noqa: F401
    Artifact,
    base_artifacts,
    default_repo,
    failed_artifact,
    logging_artifacts,
    maven_command,
    maven_env,
    maven_version,
    parse_dependency_list,
    render_pom,
    render_settings,
    run_maven,
    runtime_jars,
    validate_repo,
)


def generator_fingerprint(version: str) -> str:
    """SHA-256 over everything this module writes for ``version`` besides the jars.

    Recorded in kafka-metal-dist.json, so that an archive made by a different kafka-metal (other scripts,
    configs or layout) is not taken from the cache.
    """
    h = hashlib.sha256()
    fake_classes = {t.script: t.classes[0] for t in TOOLS}
    fake_classes.update({"kafka-server-start.sh": KAFKA_MAIN, "zookeeper-server-start.sh": ZOOKEEPER_MAIN})
    parts = [str(DIST_FORMAT), DEPENDENCY_PLUGIN_VERSION, repr(base_artifacts(version)), repr(TOOLS)]
    parts += [f"{k}\0{v}" for k, v in render_bin(version, fake_classes).items()]
    parts += [f"{k}\0{v}" for k, v in render_config(version).items()]
    # The code that lays out the manifest and the archive (defined below; looked up when called).
    parts += [inspect.getsource(f) for f in (render_manifest, *LAYOUT_CODE)]
    for part in parts:
        h.update(part.encode())
        h.update(b"\0\0")
    return h.hexdigest()

def render_manifest(
    version: str,
    repo: str,
    artifacts: Iterable[Artifact],
    build_tool: str,
    tool_classes: Mapping[str, str],
    logging: Iterable[Artifact] = (),
) -> str:
    """kafka-metal-dist.json: what the archive was made of (no timestamps: the archive is reproducible)."""
    doc = {
        "name": dist_name(version),
        "kafka_version": version,
        "scala_version": SCALA_BINARY,
        "format": DIST_FORMAT,
        "generator": generator_fingerprint(version),
        "repo": repo,
        "build_tool": build_tool,
        "maven_dependency_plugin": DEPENDENCY_PLUGIN_VERSION,
        "requested": [a.gav for a in base_artifacts(version)],
        "logging_binding": [a.gav for a in logging],
        "artifacts": sorted(a.gav for a in artifacts),
        "main_classes": dict(sorted(tool_classes.items())),
        "log4j_opts": {
            "server": log4j_opts(version, "server").replace("$base_dir", "<dist>"),
            "tools": log4j_opts(version, "tools").replace("$base_dir", "<dist>"),
        },
    }
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"

def cached_archive(out_dir: Path, version: str, repo: str) -> tuple[tuple[Path, str] | None, str]:
    """((archive, sha512), reason) if a usable archive is already in ``out_dir``, else (None, reason)."""
    archive = Path(out_dir) / archive_name(version)
    sumfile = archive.with_name(archive.name + ".sha512")
    if not archive.is_file():
        return None, f"{archive} does not exist"
    recorded = read_checksum_file(sumfile)
    if not recorded or recorded[1].lstrip("*") != archive.name:
        return None, f"{sumfile} is missing or not a sha512sum line for {archive.name}"
    actual = sha512_file(archive)
    if actual != recorded[0]:
        return None, f"{archive.name} does not match {sumfile.name}"
    manifest = read_manifest_from_archive(archive, version)
    if not manifest:
        return None, f"{archive.name} has no kafka-metal-dist.json"
    if manifest.get("repo") != repo:
        return None, f"{archive.name} was built from {manifest.get('repo')}, not {repo}"
    if manifest.get("format") != DIST_FORMAT or manifest.get("generator") != generator_fingerprint(version):
        return None, f"{archive.name} was built by another version of kafka-metal's dist builder"
    return (archive, actual), f"{archive} is already built and matches {sumfile.name}"

# --------------------------------------------------------------------------------------------------
# build()
# --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _lock(path: Path):
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)

def _write_text(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)

def build(
    version: str,
    repo: str | None = None,
    out_dir: str | os.PathLike | None = None,
    force: bool = False,
    progress: Progress = print,
) -> tuple[Path, str]:
    """Build (or reuse) ``OUT/kafka_2.13-V.tgz`` and its ``.sha512``; return (archive path, sha512 hex).

    ``out_dir`` defaults to ``$KAFKA_METAL_CACHE_DIR/dist`` (``/var/cache/kafka-metal/dist``). An archive
    already there whose checksum file matches and that was built from the same repository and layout is
    reused, unless ``force``. Raises DistError with a message for the user.
    """
    version = validate_version(version)
    repo = validate_repo(repo) if repo else default_repo()
    out = make_out_dir(out_dir)
    env = maven_env()
    archive = out / archive_name(version)
    sumfile = archive.with_name(archive.name + ".sha512")

    with _lock(out / f".{archive.name}.lock"):
        if not force:
            hit, reason = cached_archive(out, version, repo)
            if hit:
                progress(f"{reason}: skipping the build (use --force to rebuild)")
                return hit
            if archive.exists():
                progress(f"rebuilding: {reason}")
        mvn = find_command("mvn", env)
        find_command("java", env)
        log_path = out / f"{dist_name(version)}.build.log"
        log_path.write_text("")
        progress(f"building {archive.name} from {repo} with Maven (log: {log_path})")
        with tempfile.TemporaryDirectory(prefix="kafka-metal-dist-") as tmp:
            tmp_path = Path(tmp)
            settings = tmp_path / "settings.xml"
            settings.write_text(render_settings(repo))
            tool = maven_version(mvn, env)

            # Pass 1: resolve what Kafka needs, to learn which SLF4J and log4j versions it uses.
            pom1 = tmp_path / "resolve" / "pom.xml"
            _write_text(pom1, render_pom(version, base_artifacts(version)))
            list1 = tmp_path / "resolve" / "dependencies.txt"
            requested = ", ".join(a.gav for a in base_artifacts(version))
            progress(f"resolving {requested}")
            run_maven(
                maven_command(mvn, settings, pom1, ["dependency:list"],
                              {"outputFile": str(list1), "includeScope": "runtime", "sort": "true"}),
                log_path, f"resolving {requested}", repo, env,
            )
            resolved = parse_dependency_list(list1.read_text())
            if not resolved:
                raise DistError(f"Maven resolved no dependencies for {requested}; log: {log_path}")

            # Pass 2: the same plus the logging binding, copied into libs/.
            logging = logging_artifacts(version, resolved)
            stage = tmp_path / "stage" / dist_name(version)
            libs = stage / "libs"
            pom2 = tmp_path / "collect" / "pom.xml"
            _write_text(pom2, render_pom(version, base_artifacts(version) + logging))
            list2 = tmp_path / "collect" / "dependencies.txt"
            progress(f"collecting jars with {', '.join(a.gav for a in logging)}")
            run_maven(
                maven_command(mvn, settings, pom2, ["dependency:copy-dependencies", "dependency:list"],
                              {"outputDirectory": str(libs), "outputFile": str(list2),
                               "includeScope": "runtime", "sort": "true", "overWriteReleases": "true"}),
                log_path, "copying " + ", ".join(a.gav for a in base_artifacts(version) + logging), repo, env,
            )
            artifacts = runtime_jars(parse_dependency_list(list2.read_text()))
            expected = {a.file_name for a in artifacts}
            present = {p.name for p in libs.iterdir()} if libs.is_dir() else set()
            if expected != present:
                raise DistError(
                    "libs/ does not match Maven's dependency list: "
                    f"missing {sorted(expected - present)}, unexpected {sorted(present - expected)}"
                )

            tool_classes = resolve_tool_classes(version, jar_classes(sorted(libs.iterdir())))
            for name, text in render_bin(version, tool_classes).items():
                _write_text(stage / "bin" / name, text, 0o755)
            for name, text in render_config(version).items():
                _write_text(stage / "config" / name, text)
            _write_text(stage / "kafka-metal-dist.json",
                        render_manifest(version, repo, artifacts, tool, tool_classes, logging))

            progress(f"writing {archive} ({len(artifacts)} jars, {len(tool_classes)} tools)")
            partial = out / f".{archive.name}.partial"
            sum_partial = out / f".{sumfile.name}.partial"
            try:
                write_reproducible_tgz(stage, partial, dist_name(version))
                digest = sha512_file(partial)
                sum_partial.write_text(checksum_line(digest, archive.name))
                # Never an archive next to another archive's checksum: drop the old one first.
                sumfile.unlink(missing_ok=True)
                os.replace(partial, archive)
                os.replace(sum_partial, sumfile)
            finally:
                partial.unlink(missing_ok=True)
                sum_partial.unlink(missing_ok=True)
        progress(f"built {archive}\nsha512 {digest}")
        return archive, digest

# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def _cmd_build(args: argparse.Namespace) -> int:
    try:
        archive, digest = build(args.version, repo=args.repo, out_dir=args.out, force=args.force)
    except DistError as exc:
        print(f"kafka-metal dist build: error: {exc}", file=sys.stderr)
        return 1
    print(f"{archive}\t{digest}")
    return 0

def _cmd_agent(args: argparse.Namespace) -> int:
    from .dist_agent import fetch_agent

    try:
        jar, digest = fetch_agent(args.version, repo=args.repo, out_dir=args.out)
    except DistError as exc:
        print(f"kafka-metal dist agent: error: {exc}", file=sys.stderr)
        return 1
    print(f"{jar}\t{digest}")
    return 0

def add_subparser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``dist`` (and ``dist build``) on ``subparsers``; handler: ``args.func(args) -> int``."""
    dist = subparsers.add_parser(
        "dist",
        help="build Kafka distribution archives from Maven artifacts",
        description="Kafka binary distributions assembled from Maven artifacts (no registry ships them).",
    )
    dist_sub = dist.add_subparsers(dest="dist_command", metavar="COMMAND")
    dist_sub.required = True
    b = dist_sub.add_parser(
        "build",
        help="build OUT/kafka_2.13-VERSION.tgz and its .sha512",
        description=(
            "Collect kafka_2.13, kafka-tools, kafka-storage and their runtime dependencies (plus the logging "
            "binding) with Maven, add bin/ scripts and config/, and write a reproducible "
            "kafka_2.13-VERSION.tgz with a sha512sum file. Needs mvn and java on this machine. "
            f"Supported versions: {SUPPORTED_RANGE}."
        ),
    )
    b.add_argument("--version", required=True, help="Kafka version, 3.9.x or 4.x (e.g. 4.1.1)")
    b.add_argument("--repo", default=None,
                   help="Maven repository that replaces Maven Central for every download (default: "
                   f"${REPO_ENV}, else the mirror of Central in Maven's settings, else Maven's own central "
                   "repository)")
    b.add_argument("--out", default=None,
                   help=f"output directory (default ${CACHE_ENV}/dist, i.e. {DEFAULT_CACHE_DIR}/dist)")
    b.add_argument("--force", action="store_true", help="rebuild even if a matching archive exists")
    b.set_defaults(func=_cmd_build)
    from .dist_agent import DEFAULT_AGENT_VERSION

    a = dist_sub.add_parser(
        "agent",
        help="fetch the Prometheus JMX exporter agent into OUT, with its .sha256",
        description=(
            "Fetch io.prometheus.jmx:jmx_prometheus_javaagent with Maven (strict checksums) into the "
            "distribution cache, where the roles copy it from (kafka_jmx_exporter_src)."
        ),
    )
    a.add_argument("--version", default=DEFAULT_AGENT_VERSION,
                   help=f"agent version (default {DEFAULT_AGENT_VERSION}, the one the roles pin a checksum for)")
    a.add_argument("--repo", default=None, help="Maven repository (default: as for `dist build`)")
    a.add_argument("--out", default=None,
                   help=f"output directory (default ${CACHE_ENV}/dist, i.e. {DEFAULT_CACHE_DIR}/dist)")
    a.set_defaults(func=_cmd_agent)
    return dist

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kafka-metal")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    add_subparser(sub)
    args = parser.parse_args(argv)
    return args.func(args)
