"""What the distribution holds besides its jars: each tool's main class (found in the resolved jars), the bin/
scripts (rendered from the templates in ``dist_bin/``) and the config/ files."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .dist_base import (
    DistError,
    series,
)

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
