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
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import gzip
import hashlib
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from xml.sax.saxutils import escape as _xml_escape

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


def dist_name(version: str) -> str:
    return f"kafka_{SCALA_BINARY}-{version}"


def archive_name(version: str) -> str:
    return f"{dist_name(version)}.tgz"


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get(CACHE_ENV) or DEFAULT_CACHE_DIR)


def default_out_dir(environ: Mapping[str, str] | None = None) -> Path:
    return default_cache_dir(environ) / "dist"


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


def render_pom(version: str, artifacts: Iterable[Artifact]) -> str:
    """A POM of packaging ``pom`` whose only purpose is to list the dependencies to collect."""
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
        f"  <artifactId>{_xml_escape(dist_name(version))}</artifactId>\n"
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
# Tools and their main classes
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tool:
    """A bin/ wrapper: the first of ``classes`` present in libs/ is the main class.

    Class names are the ones found in the Kafka jars by inspection (``unzip -l``/``javap``), newest
    location first. ``required`` names the series (``'3.9'``, ``'4'``) where a missing class fails the
    build; elsewhere the wrapper is just left out.
    """

    script: str
    classes: tuple[str, ...]
    required: tuple[str, ...] = ("3.9", "4")
    heap: str = ""
    args: tuple[str, ...] = ()


TOOLS: tuple[Tool, ...] = (
    Tool("kafka-storage.sh", ("kafka.tools.StorageTool",)),
    Tool("kafka-topics.sh", ("org.apache.kafka.tools.TopicCommand",)),
    Tool(
        "kafka-console-producer.sh",
        ("org.apache.kafka.tools.ConsoleProducer", "kafka.tools.ConsoleProducer"),
        heap="-Xmx512M",
    ),
    Tool(
        "kafka-console-consumer.sh",
        ("org.apache.kafka.tools.consumer.ConsoleConsumer", "kafka.tools.ConsoleConsumer"),
        heap="-Xmx512M",
    ),
    Tool("kafka-consumer-groups.sh", ("org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",)),
    Tool("kafka-configs.sh", ("org.apache.kafka.tools.ConfigCommand", "kafka.admin.ConfigCommand")),
    Tool("kafka-acls.sh", ("org.apache.kafka.tools.AclCommand", "kafka.admin.AclCommand")),
    Tool("kafka-metadata-quorum.sh", ("org.apache.kafka.tools.MetadataQuorumCommand",)),
    Tool("kafka-features.sh", ("org.apache.kafka.tools.FeatureCommand", "kafka.admin.FeatureCommand")),
    Tool("kafka-producer-perf-test.sh", ("org.apache.kafka.tools.ProducerPerformance",), heap="-Xmx512M"),
    Tool("kafka-consumer-perf-test.sh", ("org.apache.kafka.tools.ConsumerPerformance",), heap="-Xmx512M"),
    Tool("kafka-leader-election.sh", ("org.apache.kafka.tools.LeaderElectionCommand",)),
    Tool("kafka-reassign-partitions.sh", ("org.apache.kafka.tools.reassign.ReassignPartitionsCommand",)),
    Tool("kafka-log-dirs.sh", ("org.apache.kafka.tools.LogDirsCommand",)),
    Tool("kafka-get-offsets.sh", ("org.apache.kafka.tools.GetOffsetShell",)),
    Tool("kafka-dump-log.sh", ("org.apache.kafka.tools.DumpLogSegments", "kafka.tools.DumpLogSegments")),
    # Useful extras: generated when their class is there.
    Tool(
        "kafka-broker-api-versions.sh",
        ("org.apache.kafka.tools.BrokerApiVersionsCommand", "kafka.admin.BrokerApiVersionsCommand"),
        required=(),
    ),
    Tool("kafka-cluster.sh", ("org.apache.kafka.tools.ClusterTool", "kafka.tools.ClusterTool"), required=()),
    Tool("kafka-delete-records.sh", ("org.apache.kafka.tools.DeleteRecordsCommand",), required=()),
    Tool("kafka-transactions.sh", ("org.apache.kafka.tools.TransactionsCommand",), required=()),
    Tool("kafka-delegation-tokens.sh", ("org.apache.kafka.tools.DelegationTokenCommand",), required=()),
    Tool("kafka-client-metrics.sh", ("org.apache.kafka.tools.ClientMetricsCommand",), required=()),
    Tool("kafka-groups.sh", ("org.apache.kafka.tools.GroupsCommand",), required=()),
    Tool(
        "kafka-e2e-latency.sh",
        ("org.apache.kafka.tools.EndToEndLatency", "kafka.tools.EndToEndLatency"),
        required=(),
    ),
    # ZooKeeper (3.9.x only; its jars come with kafka_2.13 3.9.x).
    Tool(
        "zookeeper-shell.sh",
        ("org.apache.zookeeper.ZooKeeperMainWithTlsSupportForKafka",),
        required=("3.9",),
        args=("-server",),
    ),
)

KAFKA_MAIN = "kafka.Kafka"
ZOOKEEPER_MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"


def jar_classes(jars: Iterable[Path]) -> set[str]:
    """Fully qualified names of the top-level classes in ``jars``."""
    names: set[str] = set()
    for jar in jars:
        with zipfile.ZipFile(jar) as z:
            for n in z.namelist():
                if n.endswith(".class") and "$" not in n and not n.startswith("META-INF/"):
                    names.add(n[: -len(".class")].replace("/", "."))
    return names


def resolve_tool_classes(version: str, available: set[str]) -> dict[str, str]:
    """Map each bin/ script to its main class, as found in ``available`` (the classes in libs/).

    Includes ``kafka-server-start.sh`` (kafka.Kafka) and, where ZooKeeper is in libs/,
    ``zookeeper-server-start.sh``. Raises DistError when a class that ``version`` needs is missing.
    """
    ser = series(version)
    missing = []
    result: dict[str, str] = {}
    if KAFKA_MAIN not in available:
        missing.append(f"kafka-server-start.sh ({KAFKA_MAIN})")
    else:
        result["kafka-server-start.sh"] = KAFKA_MAIN
    if ZOOKEEPER_MAIN in available:
        result["zookeeper-server-start.sh"] = ZOOKEEPER_MAIN
    elif ser == "3.9":
        missing.append(f"zookeeper-server-start.sh ({ZOOKEEPER_MAIN})")
    for tool in TOOLS:
        found = next((c for c in tool.classes if c in available), None)
        if found:
            result[tool.script] = found
        elif ser in tool.required:
            missing.append(f"{tool.script} ({' or '.join(tool.classes)})")
    if missing:
        raise DistError(
            f"Kafka {version}: no known main class in the resolved jars for: {'; '.join(missing)}. "
            "The class may have moved in this version: inspect the jars (unzip -l / javap) and extend "
            "kafka_metal.dist.TOOLS."
        )
    return dict(sorted(result.items()))


# --------------------------------------------------------------------------------------------------
# bin/ scripts (written for kafka-metal, following the upstream scripts' environment conventions)
# --------------------------------------------------------------------------------------------------

JVM_PERFORMANCE_OPTS = (
    "-server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 "
    "-XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true"
)


def log4j_opts(version: str, which: str) -> str:
    """The JVM flag selecting a logging config; ``which`` is 'server' or 'tools'. Paths from the dist root."""
    if series(version) == "3.9":
        name = "log4j.properties" if which == "server" else "tools-log4j.properties"
        return f"-Dlog4j.configuration=file:$base_dir/config/{name}"
    name = "log4j2.yaml" if which == "server" else "tools-log4j2.yaml"
    return f"-Dlog4j2.configurationFile=$base_dir/config/{name}"


# The scripts are files of this package (dist_bin/*.sh.in, which shellcheck reads once rendered); @NAME@
# marks a value filled in here.
_TOKEN = re.compile(r"@([A-Z0-9_]+)@")


def render_template(name: str, **values: str) -> str:
    """A bin/ script from its template, every ``@NAME@`` replaced; a token left without a value is an error."""
    text = resources.files(__package__).joinpath("dist_bin", name).read_text(encoding="utf-8")

    def fill(match: re.Match) -> str:
        key = match.group(1).lower()
        if key not in values:
            raise DistError(f"template {name}: no value for @{match.group(1)}@")
        return values[key]

    return _TOKEN.sub(fill, text)


def render_run_class(version: str) -> str:
    return render_template("kafka-run-class.sh.in", version=version, jvm_performance_opts=JVM_PERFORMANCE_OPTS,
                           tools_log4j=log4j_opts(version, "tools"))


def render_server_start(version: str) -> str:
    return render_template("kafka-server-start.sh.in", version=version, main_class=KAFKA_MAIN,
                           server_log4j=log4j_opts(version, "server"))


def render_zookeeper_start(version: str) -> str:
    return render_template("zookeeper-server-start.sh.in", version=version, main_class=ZOOKEEPER_MAIN,
                           server_log4j=log4j_opts(version, "server"))


def render_stop_script(version: str, main_class: str, what: str) -> str:
    """A stop script sending SIGTERM to ``main_class`` JVMs started from this distribution's libs/."""
    pattern = " " + re.escape(main_class).replace("/", r"\/") + "( |$)"
    script = f"{'kafka' if main_class == KAFKA_MAIN else 'zookeeper'}-server-stop.sh"
    return render_template("server-stop.sh.in", version=version, main_class=main_class, what=what, script=script,
                           pattern=pattern)


def render_tool_script(
    version: str, script: str, main_class: str, heap: str = "", args: Iterable[str] = ()
) -> str:
    heap_block = f'\nif [ -z "${{KAFKA_HEAP_OPTS:-}}" ]; then\n  export KAFKA_HEAP_OPTS="{heap}"\nfi\n' if heap else ""
    return render_template("tool.sh.in", version=version, script=script, main_class=main_class, heap=heap_block,
                           args="".join(f" {a}" for a in args))


def render_bin(version: str, tool_classes: Mapping[str, str]) -> dict[str, str]:
    """All bin/ scripts, by file name, for the tool classes found in libs/."""
    out = {"kafka-run-class.sh": render_run_class(version)}
    tools = {t.script: t for t in TOOLS}
    for script, cls in tool_classes.items():
        if script == "kafka-server-start.sh":
            out[script] = render_server_start(version)
            out["kafka-server-stop.sh"] = render_stop_script(version, KAFKA_MAIN, "kafka server")
        elif script == "zookeeper-server-start.sh":
            out[script] = render_zookeeper_start(version)
            out["zookeeper-server-stop.sh"] = render_stop_script(version, ZOOKEEPER_MAIN, "zookeeper server")
        else:
            t = tools[script]
            out[script] = render_tool_script(version, script, cls, heap=t.heap, args=t.args)
    return dict(sorted(out.items()))


# --------------------------------------------------------------------------------------------------
# config/
# --------------------------------------------------------------------------------------------------


def render_server_properties(version: str) -> str:
    share = (
        "share.coordinator.state.topic.replication.factor=1\nshare.coordinator.state.topic.min.isr=1\n"
        if series(version) == "4"
        else ""
    )
    return f"""# Sample configuration of a single KRaft node, both broker and controller (Kafka {version}).
# Written by kafka-metal; the Ansible roles template the real one. Format the log dirs first:
#   bin/kafka-storage.sh format -t "$(bin/kafka-storage.sh random-uuid)" -c config/server.properties

process.roles=broker,controller
node.id=1
controller.quorum.voters=1@localhost:9093

listeners=PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093
advertised.listeners=PLAINTEXT://localhost:9092
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT

num.network.threads=3
num.io.threads=8
socket.send.buffer.bytes=102400
socket.receive.buffer.bytes=102400
socket.request.max.bytes=104857600

log.dirs=/tmp/kraft-combined-logs
num.partitions=1
num.recovery.threads.per.data.dir=1

# Internal topics: replication factor 1 only suits a single node.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
{share}
log.retention.hours=168
log.segment.bytes=1073741824
log.retention.check.interval.ms=300000
"""


ZOOKEEPER_PROPERTIES = """# Sample ZooKeeper configuration (Kafka 3.9.x ZooKeeper mode).
# Written by kafka-metal.
dataDir=/tmp/zookeeper
clientPort=2181
maxClientCnxns=0
admin.enableServer=false
tickTime=2000
initLimit=10
syncLimit=5
"""

# log4j 1.x syntax, read by reload4j (3.9.x).
# Rolling file appenders of the server log configuration: (appender, file, backups kept).
_LOG4J_APPENDERS = (
    ("kafkaAppender", "server.log", 10),
    ("stateChangeAppender", "state-change.log", 5),
    ("requestAppender", "kafka-request.log", 5),
    ("cleanerAppender", "log-cleaner.log", 5),
    ("controllerAppender", "controller.log", 5),
    ("authorizerAppender", "kafka-authorizer.log", 5),
)
# Loggers that write to their own appender only: (logger, level, appender).
_LOG4J_ROUTES = (
    ("kafka.request.logger", "WARN", "requestAppender"),
    ("kafka.network.RequestChannel$", "WARN", "requestAppender"),
    ("kafka.controller", "INFO", "controllerAppender"),
    ("org.apache.kafka.controller", "INFO", "controllerAppender"),
    ("kafka.log.LogCleaner", "INFO", "cleanerAppender"),
    ("state.change.logger", "INFO", "stateChangeAppender"),
    ("kafka.authorizer.logger", "INFO", "authorizerAppender"),
)


def _log4j_properties() -> str:
    """log4j 1.x syntax, read by reload4j (3.9.x)."""
    pattern = "[%d] %p %m (%c)%n"
    out = [
        "# Logging of the broker, controller and ZooKeeper (reload4j, log4j 1.x syntax).",
        "# Written by kafka-metal.",
        "# Files go to ${kafka.logs.dir} (-Dkafka.logs.dir, set by kafka-run-class.sh from LOG_DIR).",
        "log4j.rootLogger=INFO, stdout, kafkaAppender",
        "",
        "log4j.appender.stdout=org.apache.log4j.ConsoleAppender",
        "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout",
        f"log4j.appender.stdout.layout.ConversionPattern={pattern}",
        "",
    ]
    for name, file, backups in _LOG4J_APPENDERS:
        out += [
            f"log4j.appender.{name}=org.apache.log4j.RollingFileAppender",
            f"log4j.appender.{name}.File=${{kafka.logs.dir}}/{file}",
            f"log4j.appender.{name}.MaxFileSize=100MB",
            f"log4j.appender.{name}.MaxBackupIndex={backups}",
            f"log4j.appender.{name}.layout=org.apache.log4j.PatternLayout",
            f"log4j.appender.{name}.layout.ConversionPattern={pattern}",
            "",
        ]
    out += ["log4j.logger.org.apache.zookeeper=INFO", "log4j.logger.kafka=INFO", "log4j.logger.org.apache.kafka=INFO"]
    previous = None
    for logger, level, appender in _LOG4J_ROUTES:
        if appender != previous:
            out.append("")
            previous = appender
        out += [f"log4j.logger.{logger}={level}, {appender}", f"log4j.additivity.{logger}=false"]
    return "\n".join(out) + "\n"


LOG4J_PROPERTIES = _log4j_properties()

TOOLS_LOG4J_PROPERTIES = """# Logging of the command-line tools (reload4j, log4j 1.x syntax):
# warnings and errors to stderr.
# Written by kafka-metal.
log4j.rootLogger=WARN, stderr

log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.appender.stderr.Target=System.err
"""


def _log4j2_rolling(name: str, file: str, keep: int) -> str:
    return f"""      - name: {name}
        fileName: "${{sys:kafka.logs.dir:-logs}}/{file}"
        filePattern: "${{sys:kafka.logs.dir:-logs}}/{file}.%i"
        PatternLayout:
          pattern: "${{logPattern}}"
        SizeBasedTriggeringPolicy:
          size: "100MB"
        DefaultRolloverStrategy:
          max: {keep}
"""


def _log4j2_logger(name: str, level: str, appender: str) -> str:
    return f"""      - name: "{name}"
        level: {level}
        additivity: false
        AppenderRef:
          ref: {appender}
"""


# log4j2 YAML (4.x). log4j-core reads YAML through jackson-dataformat-yaml, which kafka_2.13 4.x depends on.
LOG4J2_YAML = (
    """# Logging of the broker and controller (log4j2). Written by kafka-metal.
# Files go to ${sys:kafka.logs.dir} (-Dkafka.logs.dir, set by kafka-run-class.sh from LOG_DIR).
Configuration:
  name: KafkaServer
  Properties:
    Property:
      - name: logPattern
        value: "[%d] %p %m (%c)%n"
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "${logPattern}"
    RollingFile:
"""
    + _log4j2_rolling("ServerAppender", "server.log", 10)
    + _log4j2_rolling("StateChangeAppender", "state-change.log", 5)
    + _log4j2_rolling("RequestAppender", "kafka-request.log", 5)
    + _log4j2_rolling("CleanerAppender", "log-cleaner.log", 5)
    + _log4j2_rolling("ControllerAppender", "controller.log", 5)
    + _log4j2_rolling("AuthorizerAppender", "kafka-authorizer.log", 5)
    + """  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
        - ref: ServerAppender
    Logger:
"""
    + _log4j2_logger("kafka.request.logger", "WARN", "RequestAppender")
    + _log4j2_logger("kafka.network.RequestChannel$", "WARN", "RequestAppender")
    + _log4j2_logger("kafka.controller", "INFO", "ControllerAppender")
    + _log4j2_logger("org.apache.kafka.controller", "INFO", "ControllerAppender")
    + _log4j2_logger("kafka.log.LogCleaner", "INFO", "CleanerAppender")
    + _log4j2_logger("org.apache.kafka.storage.internals.log.LogCleaner", "INFO", "CleanerAppender")
    + _log4j2_logger("state.change.logger", "INFO", "StateChangeAppender")
    + _log4j2_logger("kafka.authorizer.logger", "INFO", "AuthorizerAppender")
)

TOOLS_LOG4J2_YAML = """# Logging of the command-line tools (log4j2): warnings and errors to stderr.
# Written by kafka-metal.
Configuration:
  name: KafkaTools
  Appenders:
    Console:
      name: STDERR
      target: SYSTEM_ERR
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDERR
"""


def render_config(version: str) -> dict[str, str]:
    """All config/ files, by file name."""
    files = {"server.properties": render_server_properties(version)}
    if series(version) == "3.9":
        files["log4j.properties"] = LOG4J_PROPERTIES
        files["tools-log4j.properties"] = TOOLS_LOG4J_PROPERTIES
        files["zookeeper.properties"] = ZOOKEEPER_PROPERTIES
    else:
        files["log4j2.yaml"] = LOG4J2_YAML
        files["tools-log4j2.yaml"] = TOOLS_LOG4J2_YAML
    return dict(sorted(files.items()))


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
    parts += [inspect.getsource(f) for f in (render_manifest, write_reproducible_tgz, _mode_for)]
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


def sha512_file(path: Path) -> str:
    h = hashlib.sha512()
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
    out = Path(out_dir) if out_dir is not None else default_out_dir()
    env = maven_env()

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DistError(f"cannot create the output directory {out}: {exc}") from exc
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
    return dist


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kafka-metal")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    add_subparser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
