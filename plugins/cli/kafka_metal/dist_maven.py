"""The distribution builder's Maven side: the repository (from --repo, the environment or Maven's own settings),
the artifacts of a Kafka release and its logging binding, the generated POM and settings, and Maven's runs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape as _xml_escape

from .dist_base import (
    DEPENDENCY_PLUGIN_VERSION,
    KAFKA_GROUP,
    MIRROR_ID,
    REPO_ENV,
    SCALA_BINARY,
    DistError,
    dist_name,
    find_command,
    series,
    validate_version,
)


def validate_repo(repo: str) -> str:
    """Return the repository URL without a trailing slash, or raise DistError."""
    r = (repo or "").strip()
    if not re.match(r"^(https?|file)://\S+$", r):
        raise DistError(
            f"invalid Maven repository URL {repo!r}: expected an http://, https:// or file:// URL "
            "(default: the mirror in Maven's settings, else Maven's own central repository)"
        )
    return r.rstrip("/")

def _maven_home() -> Path | None:
    home = os.environ.get("MAVEN_HOME") or os.environ.get("M2_HOME")
    if home:
        return Path(home)
    mvn = shutil.which("mvn")
    return Path(os.path.realpath(mvn)).parent.parent if mvn else None

def default_repo(user_home: Path | None = None, maven_home: Path | None = None) -> str:
    """The repository this machine's Maven would download from: ``$KAFKA_METAL_MAVEN_REPO``, else the mirror of
    Central (``mirrorOf`` ``*`` or ``central``) in the user's or Maven's ``settings.xml``, else the central
    repository built into Maven itself (its super POM). Raises DistError when there is none."""
    if os.environ.get(REPO_ENV):
        return validate_repo(os.environ[REPO_ENV])
    maven_home = maven_home if maven_home is not None else _maven_home()
    settings = [(user_home or Path.home()) / ".m2" / "settings.xml"]
    if maven_home is not None:
        settings.append(maven_home / "conf" / "settings.xml")
    for path in settings:
        try:
            text = re.sub(r"<!--.*?-->", "", path.read_text(), flags=re.S)
        except OSError:
            continue
        for block in re.findall(r"<mirror>(.*?)</mirror>", text, flags=re.S):
            of = re.search(r"<mirrorOf>(.*?)</mirrorOf>", block, flags=re.S)
            url = re.search(r"<url>(.*?)</url>", block, flags=re.S)
            targets = [t.strip() for t in (of.group(1) if of else "").split(",")]
            if url and ("*" in targets or "central" in targets) and "!central" not in targets:
                return validate_repo(url.group(1).strip())
    for jar in sorted((maven_home / "lib").glob("maven-model-builder-*.jar")) if maven_home else []:
        try:
            with zipfile.ZipFile(jar) as z:
                pom = z.read("org/apache/maven/model/pom-4.0.0.xml").decode()
        except (OSError, KeyError, zipfile.BadZipFile):
            continue
        m = re.search(r"<id>central</id>.*?<url>(.*?)</url>", pom, flags=re.S)
        if m:
            return validate_repo(m.group(1).strip())
    if maven_home is None:
        find_command("mvn")  # not installed: the error names the package
    raise DistError(f"no Maven repository configured here: install Maven, give a mirror in ~/.m2/settings.xml, "
                    f"set {REPO_ENV}, or pass --repo URL")

# --------------------------------------------------------------------------------------------------
# Artifacts, POM and settings
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Artifact:
    group: str
    artifact: str
    version: str
    classifier: str = ""
    type: str = "jar"
    scope: str = ""

    @property
    def gav(self) -> str:
        parts = [self.group, self.artifact, self.version]
        if self.classifier:
            parts.insert(2, self.classifier)
        return ":".join(parts)

    @property
    def file_name(self) -> str:
        cls = f"-{self.classifier}" if self.classifier else ""
        return f"{self.artifact}-{self.version}{cls}.{self.type}"

def base_artifacts(version: str) -> list[Artifact]:
    """What the broker, the KRaft controller and the command-line tools need, before logging."""
    v = validate_version(version)
    return [
        Artifact(KAFKA_GROUP, f"kafka_{SCALA_BINARY}", v),
        Artifact(KAFKA_GROUP, "kafka-tools", v),
        Artifact(KAFKA_GROUP, "kafka-storage", v),
    ]

def logging_artifacts(version: str, resolved: Iterable[Artifact]) -> list[Artifact]:
    """The logging binding the official archive adds, matched to the versions Kafka resolved to.

    3.9.x logs through SLF4J 1.7 to reload4j (``config/log4j.properties``); 4.x logs to log4j2
    (``config/log4j2.yaml``), bound to SLF4J 1.x by ``log4j-slf4j-impl`` or to 2.x by ``log4j-slf4j2-impl``;
    the official 4.x archive also carries ``log4j-1.2-api``.
    """
    by_ga = {(a.group, a.artifact): a.version for a in resolved}
    slf4j = by_ga.get(("org.slf4j", "slf4j-api"))
    if not slf4j:
        raise DistError(f"Kafka {version}: org.slf4j:slf4j-api is not among the resolved dependencies")
    if series(version) == "3.9":
        return [Artifact("org.slf4j", "slf4j-reload4j", slf4j)]
    log4j = by_ga.get(("org.apache.logging.log4j", "log4j-core")) or by_ga.get(
        ("org.apache.logging.log4j", "log4j-api")
    )
    if not log4j:
        raise DistError(f"Kafka {version}: log4j-core is not among the resolved dependencies (4.x needs it)")
    binding = "log4j-slf4j-impl" if slf4j.startswith("1.") else "log4j-slf4j2-impl"
    return [
        Artifact("org.apache.logging.log4j", binding, log4j),
        Artifact("org.apache.logging.log4j", "log4j-core", log4j),
        Artifact("org.apache.logging.log4j", "log4j-1.2-api", log4j),
    ]

def render_pom(version: str, artifacts: Iterable[Artifact], name: str | None = None) -> str:
    """A POM of packaging ``pom`` whose only purpose is to list the dependencies to collect (its artifact id is
    ``name``, else the distribution's name for Kafka ``version``)."""
    deps = []
    for a in artifacts:
        cls = f"\n      <classifier>{_xml_escape(a.classifier)}</classifier>" if a.classifier else ""
        deps.append(
            "    <dependency>\n"
            f"      <groupId>{_xml_escape(a.group)}</groupId>\n"
            f"      <artifactId>{_xml_escape(a.artifact)}</artifactId>\n"
            f"      <version>{_xml_escape(a.version)}</version>{cls}\n"
            "    </dependency>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<project xmlns="http://maven.apache.org/POM/4.0.0"\n'
        '         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"\n'
        '         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 '
        'https://maven.apache.org/xsd/maven-4.0.0.xsd">\n'
        "  <modelVersion>4.0.0</modelVersion>\n"
        "  <groupId>io.kafka-metal.dist</groupId>\n"
        f"  <artifactId>{_xml_escape(name or dist_name(version))}</artifactId>\n"
        "  <version>0</version>\n"
        "  <packaging>pom</packaging>\n"
        "  <properties>\n"
        "    <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding>\n"
        "  </properties>\n"
        "  <dependencies>\n" + "\n".join(deps) + "\n  </dependencies>\n"
        "  <build>\n"
        "    <plugins>\n"
        "      <plugin>\n"
        "        <groupId>org.apache.maven.plugins</groupId>\n"
        "        <artifactId>maven-dependency-plugin</artifactId>\n"
        f"        <version>{DEPENDENCY_PLUGIN_VERSION}</version>\n"
        "      </plugin>\n"
        "    </plugins>\n"
        "  </build>\n"
        "</project>\n"
    )

def render_settings(repo: str) -> str:
    """Maven settings whose mirror sends every request (Central's included) to ``repo``."""
    r = _xml_escape(validate_repo(repo))
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<settings xmlns="http://maven.apache.org/SETTINGS/1.0.0">\n'
        "  <interactiveMode>false</interactiveMode>\n"
        "  <mirrors>\n"
        "    <mirror>\n"
        f"      <id>{MIRROR_ID}</id>\n"
        "      <name>kafka-metal dist build repository</name>\n"
        f"      <url>{r}</url>\n"
        "      <mirrorOf>*</mirrorOf>\n"
        "    </mirror>\n"
        "  </mirrors>\n"
        "</settings>\n"
    )

_LIST_LINE = re.compile(
    r"^\s*(?P<g>[^:\s]+):(?P<a>[^:\s]+):(?P<t>[^:\s]+)(?::(?P<c>[^:\s]+))?:(?P<v>[^:\s]+)"
    r":(?P<s>compile|runtime|provided|system|test)\b"
)

def parse_dependency_list(text: str) -> list[Artifact]:
    """Artifacts from ``mvn dependency:list -DoutputFile=...`` output, sorted, duplicates removed."""
    seen = set()
    for line in text.splitlines():
        m = _LIST_LINE.match(line)
        if m:
            seen.add(Artifact(m["g"], m["a"], m["v"], m["c"] or "", m["t"], m["s"]))
    return sorted(seen)

def runtime_jars(artifacts: Iterable[Artifact]) -> list[Artifact]:
    """The jars that go into libs/ (compile and runtime scope), checking their file names are unique."""
    jars = [a for a in artifacts if a.type == "jar" and a.scope in ("compile", "runtime")]
    names: dict[str, Artifact] = {}
    for a in jars:
        if a.file_name in names:
            other = names[a.file_name].gav
            raise DistError(f"two artifacts would share libs/{a.file_name}: {other} and {a.gav}")
        names[a.file_name] = a
    return jars

# --------------------------------------------------------------------------------------------------
# Maven
# --------------------------------------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;]*m")

_MAVEN_FAILURE_PATTERNS = (
    re.compile(r"Could not find artifact (\S+)"),
    re.compile(r"Failure to find (\S+)"),
    re.compile(r"(\S+) was not found in \S+ during a previous attempt"),
    re.compile(r"Failed to read artifact descriptor for (\S+)"),
    re.compile(r"Could not transfer artifact (\S+)"),
    re.compile(r"The following artifacts could not be resolved: ([^\s,]+?)(?=,|: |\s|$)"),
    re.compile(r"Plugin (\S+) or one of its dependencies could not be resolved"),
)

def maven_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if environ is None else environ)
    env["LC_ALL"] = "C"
    env.pop("LANG", None)
    env.pop("LANGUAGE", None)
    return env

def maven_command(
    mvn: str, settings: Path, pom: Path, goals: Iterable[str], props: Mapping[str, str]
) -> list[str]:
    cmd = [mvn, "-B", "-q", "-Dstyle.color=never", "-s", str(settings), "-f", str(pom)]
    cmd += [f"-D{k}={v}" for k, v in props.items()]
    cmd += list(goals)
    return cmd

def failed_artifact(log_text: str) -> str | None:
    text = _ANSI.sub("", log_text)
    for pat in _MAVEN_FAILURE_PATTERNS:
        m = pat.search(text)
        if m:
            return m.group(1).rstrip(".,:")
    return None

_MAVEN_BOILERPLATE = re.compile(
    r"^\[ERROR\]\s*$|^\[ERROR\] (To see the full stack trace|Re-run Maven|For more information about the errors"
    r"|\[Help \d+\])|^\$ |^# exit code"
)

def _tail(text: str, lines: int = 12) -> str:
    """The last meaningful lines of a Maven log (no ANSI codes, no help boilerplate), indented."""
    body = [ln for ln in _ANSI.sub("", text).splitlines() if ln.strip() and not _MAVEN_BOILERPLATE.search(ln)]
    return "\n".join("    " + (ln if len(ln) <= 600 else ln[:600] + " ...") for ln in body[-lines:])

def run_maven(
    cmd: list[str], log_path: Path, what: str, repo: str, env: Mapping[str, str], timeout: int = 1800
) -> None:
    """Run Maven with its output appended to ``log_path``; on failure raise DistError naming the artifact.

    Maven remembers for a day that an artifact was not found; when that is the cause, run once more
    with ``-U`` so that an artifact published (or mirrored) since is picked up.
    """
    rc, text = _run_logged(cmd, log_path, env, timeout)
    if rc not in (0, None) and "during a previous attempt" in text:
        rc, text = _run_logged([cmd[0], "-U", *cmd[1:]], log_path, env, timeout)
    if rc == 0:
        return
    if rc is None:
        raise DistError(f"Maven did not finish {what} within {timeout}s (repository {repo}); log: {log_path}")
    artifact = failed_artifact(text)
    if artifact:
        head = f"Maven could not resolve {artifact} from repository {repo} (while {what})."
    else:
        head = f"Maven failed (exit code {rc}) while {what} from repository {repo}."
    raise DistError(f"{head}\nLast lines of the Maven log (full log: {log_path}):\n{_tail(text)}")

def _run_logged(cmd: list[str], log_path: Path, env: Mapping[str, str], timeout: int) -> tuple[int | None, str]:
    """Run ``cmd`` appending its output to ``log_path``; return (exit code or None on timeout, that output)."""
    with open(log_path, "a") as log:
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        start = log.tell()
        try:
            rc: int | None = subprocess.run(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=dict(env),
                timeout=timeout, check=False,
            ).returncode
        except subprocess.TimeoutExpired:
            rc = None
        log.flush()
    with open(log_path, errors="replace") as fh:
        fh.seek(start)
        text = fh.read()
    with open(log_path, "a") as log:
        log.write(f"# exit code: {rc}\n")
    return rc, text

def maven_version(mvn: str, env: Mapping[str, str]) -> str:
    try:
        out = subprocess.run([mvn, "-v", "-B"], capture_output=True, text=True, env=dict(env), timeout=120,
                             check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "Apache Maven (unknown version)"
    m = re.search(r"Apache Maven \S+", _ANSI.sub("", out))
    return m.group(0) if m else "Apache Maven (unknown version)"
