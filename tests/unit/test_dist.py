"""Unit tests of kafka_metal.dist: no Maven, no network, no Kafka.

The generated shell scripts run against a fake `java` that records its arguments; build() runs end to
end against a fake `mvn` that answers like maven-dependency-plugin (a list file and small jars).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest
from kafka_metal import dist, dist_layout, dist_maven

POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}
REPO = "https://maven.example/maven2"


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["3.9.0", "3.9.1", "4.0.0", "4.1.1", "4.4.0", "4.10.2", " 4.1.1 "])
def test_supported_versions(version):
    assert dist.validate_version(version) == version.strip()


@pytest.mark.parametrize("version", ["3.8.1", "3.9", "4.1", "5.0.0", "2.8.2", "4.1.1-rc1", "latest", "", "v4.1.1",
                                     "2.13-4.1.1", "4.1.1.1"])
def test_unsupported_versions_name_the_supported_range(version):
    with pytest.raises(dist.DistError) as exc:
        dist.validate_version(version)
    msg = str(exc.value)
    assert repr(version) in msg
    assert "3.9.x and 4.x" in msg
    assert dist.SUPPORTED_VERSION_RE.pattern in msg


def test_series():
    assert dist.series("3.9.1") == "3.9"
    assert dist.series("4.0.0") == "4"
    assert dist.series("4.12.3") == "4"


def test_repo_urls():
    assert dist.validate_repo("https://maven.example/maven2/") == "https://maven.example/maven2"
    assert dist.validate_repo("http://nexus.internal:8081/repository/maven-central") == (
        "http://nexus.internal:8081/repository/maven-central")
    assert dist.validate_repo("file:///srv/m2") == "file:///srv/m2"
    for bad in ["", "maven.example", "ftp://x/y", "https://a b"]:
        with pytest.raises(dist.DistError, match="invalid Maven repository URL"):
            dist.validate_repo(bad)


def test_default_out_dir_follows_the_cache_env():
    assert dist.default_out_dir({}) == Path("/var/cache/kafka-metal/dist")
    assert dist.default_out_dir({"KAFKA_METAL_CACHE_DIR": "/srv/km"}) == Path("/srv/km/dist")
    assert dist.archive_name("4.1.1") == "kafka_2.13-4.1.1.tgz"


@pytest.mark.parametrize(("cmd", "pkg"), [("mvn", "maven"), ("java", "openjdk-17-jre-headless")])
def test_missing_command_names_the_apt_package(cmd, pkg, tmp_path):
    with pytest.raises(dist.DistError) as exc:
        dist.find_command(cmd, {"PATH": str(tmp_path)})
    assert f"'{cmd}' was not found" in str(exc.value)
    assert f"apt-get install -y {pkg}" in str(exc.value)


def test_java_is_taken_from_java_home(tmp_path):
    java = tmp_path / "jdk" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text("#!/bin/sh\n")
    java.chmod(0o755)
    assert dist.find_command("java", {"JAVA_HOME": str(tmp_path / "jdk"), "PATH": ""}) == str(java)


# --------------------------------------------------------------------------------------------------
# POM, settings, dependency list
# --------------------------------------------------------------------------------------------------


def test_pom_lists_the_artifacts_and_pins_the_plugin():
    arts = dist.base_artifacts("4.1.1") + [dist.Artifact("org.apache.logging.log4j", "log4j-slf4j-impl", "2.24.3")]
    root = ET.fromstring(dist.render_pom("4.1.1", arts))
    assert root.findtext("m:packaging", namespaces=POM_NS) == "pom"
    deps = [(d.findtext("m:groupId", namespaces=POM_NS), d.findtext("m:artifactId", namespaces=POM_NS),
             d.findtext("m:version", namespaces=POM_NS))
            for d in root.findall("m:dependencies/m:dependency", POM_NS)]
    assert deps == [
        ("org.apache.kafka", "kafka_2.13", "4.1.1"),
        ("org.apache.kafka", "kafka-tools", "4.1.1"),
        ("org.apache.kafka", "kafka-storage", "4.1.1"),
        ("org.apache.logging.log4j", "log4j-slf4j-impl", "2.24.3"),
    ]
    plugin = root.find("m:build/m:plugins/m:plugin", POM_NS)
    assert plugin.findtext("m:artifactId", namespaces=POM_NS) == "maven-dependency-plugin"
    assert plugin.findtext("m:version", namespaces=POM_NS) == dist.DEPENDENCY_PLUGIN_VERSION


def test_settings_mirror_replaces_every_repository():
    root = ET.fromstring(dist.render_settings("https://nexus.example/repo?a=1&b=2/"))
    ns = {"s": "http://maven.apache.org/SETTINGS/1.0.0"}
    mirror = root.find("s:mirrors/s:mirror", ns)
    assert mirror.findtext("s:mirrorOf", namespaces=ns) == "*"
    assert mirror.findtext("s:url", namespaces=ns) == "https://nexus.example/repo?a=1&b=2"
    assert mirror.findtext("s:id", namespaces=ns) == dist.MIRROR_ID


LIST_OUTPUT = """
The following files have been resolved:
   org.apache.kafka:kafka-clients:jar:4.1.1:compile -- module kafka.clients
   org.apache.kafka:kafka_2.13:jar:4.1.1:compile -- module kafka.core (auto)
   org.slf4j:slf4j-api:jar:1.7.36:runtime -- module org.slf4j [auto]
   io.netty:netty-transport-native-epoll:jar:linux-x86_64:4.1.105.Final:runtime
   org.example:only-for-tests:jar:1.0:test
   org.apache.kafka:kafka-clients:jar:4.1.1:compile -- module kafka.clients
"""


def test_parse_dependency_list():
    arts = dist.parse_dependency_list(LIST_OUTPUT)
    assert [a.gav for a in arts] == [
        "io.netty:netty-transport-native-epoll:linux-x86_64:4.1.105.Final",
        "org.apache.kafka:kafka-clients:4.1.1",
        "org.apache.kafka:kafka_2.13:4.1.1",
        "org.example:only-for-tests:1.0",
        "org.slf4j:slf4j-api:1.7.36",
    ]
    jars = dist.runtime_jars(arts)
    assert [a.file_name for a in jars] == [
        "netty-transport-native-epoll-4.1.105.Final-linux-x86_64.jar",
        "kafka-clients-4.1.1.jar",
        "kafka_2.13-4.1.1.jar",
        "slf4j-api-1.7.36.jar",
    ]


def test_two_artifacts_with_one_file_name_are_refused():
    arts = [dist.Artifact("a", "metrics-core", "1.0", scope="runtime"),
            dist.Artifact("b", "metrics-core", "1.0", scope="runtime")]
    with pytest.raises(dist.DistError, match="share libs/metrics-core-1.0.jar"):
        dist.runtime_jars(arts)


def _resolved(**versions):
    ga = {"slf4j": ("org.slf4j", "slf4j-api"), "log4j": ("org.apache.logging.log4j", "log4j-core")}
    return [dist.Artifact(*ga[k], v) for k, v in versions.items()]


def test_logging_binding_3_9_is_reload4j():
    assert [a.gav for a in dist.logging_artifacts("3.9.1", _resolved(slf4j="1.7.36"))] == [
        "org.slf4j:slf4j-reload4j:1.7.36"]


def test_logging_binding_4_x_follows_slf4j_and_log4j_versions():
    assert [a.gav for a in dist.logging_artifacts("4.1.1", _resolved(slf4j="1.7.36", log4j="2.24.3"))] == [
        "org.apache.logging.log4j:log4j-slf4j-impl:2.24.3",
        "org.apache.logging.log4j:log4j-core:2.24.3",
        "org.apache.logging.log4j:log4j-1.2-api:2.24.3",
    ]
    assert dist.logging_artifacts("4.9.0", _resolved(slf4j="2.0.17", log4j="2.25.1"))[0].gav == (
        "org.apache.logging.log4j:log4j-slf4j2-impl:2.25.1")


def test_logging_binding_needs_slf4j_and_log4j():
    with pytest.raises(dist.DistError, match="slf4j-api"):
        dist.logging_artifacts("4.1.1", _resolved(log4j="2.24.3"))
    with pytest.raises(dist.DistError, match="log4j-core"):
        dist.logging_artifacts("4.1.1", _resolved(slf4j="1.7.36"))


# --------------------------------------------------------------------------------------------------
# Tool classes
# --------------------------------------------------------------------------------------------------

# Main classes as found in the jars of each version (unzip -l / javap): what the fake jars below hold.
CLASSES_4_1 = {
    "kafka.Kafka", "kafka.tools.StorageTool", "kafka.tools.DumpLogSegments", "kafka.admin.ConfigCommand",
    "org.apache.kafka.tools.TopicCommand", "org.apache.kafka.tools.ConsoleProducer",
    "org.apache.kafka.tools.consumer.ConsoleConsumer", "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "org.apache.kafka.tools.AclCommand", "org.apache.kafka.tools.MetadataQuorumCommand",
    "org.apache.kafka.tools.FeatureCommand", "org.apache.kafka.tools.ProducerPerformance",
    "org.apache.kafka.tools.ConsumerPerformance", "org.apache.kafka.tools.LeaderElectionCommand",
    "org.apache.kafka.tools.reassign.ReassignPartitionsCommand", "org.apache.kafka.tools.LogDirsCommand",
    "org.apache.kafka.tools.GetOffsetShell", "org.apache.kafka.tools.BrokerApiVersionsCommand",
    "org.apache.kafka.tools.ClusterTool",
}
CLASSES_3_9 = {
    "kafka.Kafka", "kafka.tools.StorageTool", "kafka.tools.DumpLogSegments", "kafka.admin.ConfigCommand",
    "kafka.tools.ConsoleProducer", "kafka.admin.AclCommand", "kafka.admin.FeatureCommand",
    "kafka.admin.BrokerApiVersionsCommand", "kafka.tools.ClusterTool",
    "org.apache.zookeeper.ZooKeeperMainWithTlsSupportForKafka",
    "org.apache.kafka.tools.TopicCommand", "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand", "org.apache.kafka.tools.MetadataQuorumCommand",
    "org.apache.kafka.tools.FeatureCommand", "org.apache.kafka.tools.ProducerPerformance",
    "org.apache.kafka.tools.ConsumerPerformance", "org.apache.kafka.tools.LeaderElectionCommand",
    "org.apache.kafka.tools.reassign.ReassignPartitionsCommand", "org.apache.kafka.tools.LogDirsCommand",
    "org.apache.kafka.tools.GetOffsetShell", "org.apache.kafka.tools.ClusterTool",
    "org.apache.zookeeper.server.quorum.QuorumPeerMain",
}
CLASSES_4_4 = (CLASSES_4_1 - {"kafka.tools.DumpLogSegments", "kafka.admin.ConfigCommand"}) | {
    "org.apache.kafka.tools.DumpLogSegments", "org.apache.kafka.tools.ConfigCommand"}


def test_tool_classes_4_1():
    t = dist.resolve_tool_classes("4.1.1", CLASSES_4_1)
    assert t["kafka-server-start.sh"] == "kafka.Kafka"
    assert t["kafka-console-producer.sh"] == "org.apache.kafka.tools.ConsoleProducer"
    assert t["kafka-acls.sh"] == "org.apache.kafka.tools.AclCommand"
    assert t["kafka-configs.sh"] == "kafka.admin.ConfigCommand"
    assert t["kafka-dump-log.sh"] == "kafka.tools.DumpLogSegments"
    assert t["kafka-cluster.sh"] == "org.apache.kafka.tools.ClusterTool"
    assert "zookeeper-server-start.sh" not in t and "zookeeper-shell.sh" not in t
    assert "kafka-transactions.sh" not in t  # optional, its class is not in this fake set
    assert list(t) == sorted(t)


def test_tool_classes_3_9_prefer_the_tools_module():
    t = dist.resolve_tool_classes("3.9.1", CLASSES_3_9)
    assert t["kafka-console-producer.sh"] == "kafka.tools.ConsoleProducer"
    assert t["kafka-acls.sh"] == "kafka.admin.AclCommand"
    assert t["kafka-features.sh"] == "org.apache.kafka.tools.FeatureCommand"
    assert t["kafka-broker-api-versions.sh"] == "kafka.admin.BrokerApiVersionsCommand"
    assert t["kafka-cluster.sh"] == "org.apache.kafka.tools.ClusterTool"
    assert t["zookeeper-server-start.sh"] == "org.apache.zookeeper.server.quorum.QuorumPeerMain"
    assert t["zookeeper-shell.sh"] == "org.apache.zookeeper.ZooKeeperMainWithTlsSupportForKafka"


def test_tool_classes_4_4_moved_to_the_tools_module():
    t = dist.resolve_tool_classes("4.4.0", CLASSES_4_4)
    assert t["kafka-configs.sh"] == "org.apache.kafka.tools.ConfigCommand"
    assert t["kafka-dump-log.sh"] == "org.apache.kafka.tools.DumpLogSegments"


def test_missing_required_class_fails_with_the_script_name():
    with pytest.raises(dist.DistError) as exc:
        dist.resolve_tool_classes("4.1.1", CLASSES_4_1 - {"kafka.admin.ConfigCommand", "kafka.Kafka"})
    assert "kafka-configs.sh (org.apache.kafka.tools.ConfigCommand or kafka.admin.ConfigCommand)" in str(exc.value)
    assert "kafka-server-start.sh (kafka.Kafka)" in str(exc.value)
    with pytest.raises(dist.DistError, match="zookeeper-server-start.sh"):
        dist.resolve_tool_classes("3.9.1", CLASSES_3_9 - {"org.apache.zookeeper.server.quorum.QuorumPeerMain"})


def test_jar_classes_lists_top_level_classes(tmp_path):
    jar = tmp_path / "x.jar"
    with zipfile.ZipFile(jar, "w") as z:
        for n in ["kafka/Kafka.class", "kafka/Kafka$.class", "META-INF/versions/9/module-info.class",
                  "kafka/admin/ConfigCommand.class", "README.txt"]:
            z.writestr(n, b"")
    assert dist.jar_classes([jar]) == {"kafka.Kafka", "kafka.admin.ConfigCommand"}


# --------------------------------------------------------------------------------------------------
# bin/ scripts, run against a fake java
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["3.9.1", "4.1.1"])
def test_every_script_is_valid_bash(version, tmp_path):
    classes = CLASSES_3_9 if version.startswith("3.9") else CLASSES_4_1
    scripts = dist.render_bin(version, dist.resolve_tool_classes(version, classes))
    for name, text in scripts.items():
        assert text.startswith("#!/usr/bin/env bash\n"), name
        assert "Written for kafka-metal" in text, name
        path = tmp_path / name
        path.write_text(text)
        cp = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, check=False)
        assert cp.returncode == 0, (name, cp.stderr)
    assert {"kafka-run-class.sh", "kafka-server-start.sh", "kafka-server-stop.sh"} <= set(scripts)
    zk = {"zookeeper-server-start.sh", "zookeeper-server-stop.sh", "zookeeper-shell.sh"}
    assert zk <= set(scripts) if version.startswith("3.9") else not zk & set(scripts)


def test_tool_script_execs_its_class():
    text = dist.render_tool_script("4.1.1", "kafka-topics.sh", "org.apache.kafka.tools.TopicCommand")
    assert text.rstrip().endswith(
        'exec "$(dirname -- "$0")/kafka-run-class.sh" org.apache.kafka.tools.TopicCommand "$@"')
    zk = dist.render_tool_script("3.9.1", "zookeeper-shell.sh",
                                 "org.apache.zookeeper.ZooKeeperMainWithTlsSupportForKafka", args=("-server",))
    assert 'ZooKeeperMainWithTlsSupportForKafka -server "$@"' in zk


def test_log4j_options_per_version():
    assert dist.log4j_opts("3.9.1", "server") == "-Dlog4j.configuration=file:$base_dir/config/log4j.properties"
    assert dist.log4j_opts("3.9.1", "tools") == "-Dlog4j.configuration=file:$base_dir/config/tools-log4j.properties"
    assert dist.log4j_opts("4.1.1", "server") == "-Dlog4j2.configurationFile=$base_dir/config/log4j2.yaml"
    assert dist.log4j_opts("4.1.1", "tools") == "-Dlog4j2.configurationFile=$base_dir/config/tools-log4j2.yaml"


def make_fake_dist(root: Path, version: str, classes: set[str], java_body: str | None = None) -> Path:
    """A dist tree with our scripts and config, empty libs/, and a JAVA_HOME whose java logs its argv."""
    home = root / f"kafka_2.13-{version}"
    for name, text in dist.render_bin(version, dist.resolve_tool_classes(version, classes)).items():
        p = home / "bin" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        p.chmod(0o755)
    for name, text in dist.render_config(version).items():
        (home / "config").mkdir(parents=True, exist_ok=True)
        (home / "config" / name).write_text(text)
    (home / "libs").mkdir(parents=True, exist_ok=True)
    java = root / "jdk" / "bin" / "java"
    java.parent.mkdir(parents=True, exist_ok=True)
    java.write_text(java_body or textwrap.dedent(f"""\
        #!{sys.executable}
        import json, os, sys
        with open(os.environ["FAKE_JAVA_LOG"], "a") as fh:
            fh.write(json.dumps(sys.argv[1:]) + "\\n")
        """))
    java.chmod(0o755)
    return home


def run_script(home: Path, tmp_path: Path, *args: str, **env: str) -> list[list[str]]:
    log = tmp_path / "java.log"
    log.unlink(missing_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "JMX_", "LOG_DIR", "CLASSPATH"))}
    base.update(JAVA_HOME=str(tmp_path / "jdk"), FAKE_JAVA_LOG=str(log), LOG_DIR=str(tmp_path / "logs"))
    base.update(env)
    subprocess.run([str(home / "bin" / args[0]), *args[1:]], env=base, check=True, timeout=30)
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_tool_wrapper_command_line(tmp_path):
    home = make_fake_dist(tmp_path, "4.1.1", CLASSES_4_1)
    [argv] = run_script(home, tmp_path, "kafka-topics.sh", "--bootstrap-server", "h:9092", "--list")
    assert argv[0] == "-Xmx256M"
    assert argv[1:7] == dist.JVM_PERFORMANCE_OPTS.split()
    assert f"-Dkafka.logs.dir={tmp_path / 'logs'}" in argv
    assert f"-Dlog4j2.configurationFile={home}/config/tools-log4j2.yaml" in argv
    cp = argv.index("-cp")
    assert argv[cp + 1] == f"{home}/libs/*"
    assert argv[cp + 2:] == ["org.apache.kafka.tools.TopicCommand", "--bootstrap-server", "h:9092", "--list"]
    assert (tmp_path / "logs").is_dir()


def test_environment_conventions(tmp_path):
    home = make_fake_dist(tmp_path, "4.1.1", CLASSES_4_1)
    [argv] = run_script(
        home, tmp_path, "kafka-console-producer.sh", "--topic", "t",
        KAFKA_HEAP_OPTS="-Xmx64m -Xms64m", KAFKA_JVM_PERFORMANCE_OPTS="-XX:+UseSerialGC",
        KAFKA_OPTS="-Dfoo=bar -javaagent:/x.jar", KAFKA_LOG4J_OPTS="-Dlog4j2.configurationFile=/etc/kafka/l.yaml",
        JMX_PORT="9999", CLASSPATH="/opt/extra/*",
    )
    assert argv[:3] == ["-Xmx64m", "-Xms64m", "-XX:+UseSerialGC"]
    assert "-Dcom.sun.management.jmxremote.port=9999" in argv
    assert "-Dlog4j2.configurationFile=/etc/kafka/l.yaml" in argv
    cp = argv.index("-cp")
    assert argv[cp + 1] == f"/opt/extra/*:{home}/libs/*"
    # KAFKA_OPTS come right before the main class, as in the upstream scripts; globs are not expanded.
    assert argv[cp + 2:] == ["-Dfoo=bar", "-javaagent:/x.jar", "org.apache.kafka.tools.ConsoleProducer", "--topic", "t"]


def test_console_tools_default_heap(tmp_path):
    home = make_fake_dist(tmp_path, "3.9.1", CLASSES_3_9)
    [argv] = run_script(home, tmp_path, "kafka-console-consumer.sh", "--topic", "t")
    assert argv[0] == "-Xmx512M"
    assert f"-Dlog4j.configuration=file:{home}/config/tools-log4j.properties" in argv


@pytest.mark.parametrize(("version", "classes", "log4j"), [
    ("4.1.1", CLASSES_4_1, "-Dlog4j2.configurationFile={home}/config/log4j2.yaml"),
    ("3.9.1", CLASSES_3_9, "-Dlog4j.configuration=file:{home}/config/log4j.properties"),
])
def test_server_start_command_line(version, classes, log4j, tmp_path):
    home = make_fake_dist(tmp_path, version, classes)
    [argv] = run_script(home, tmp_path, "kafka-server-start.sh", "/etc/kafka/server.properties",
                        "--override", "node.id=3")
    assert argv[:2] == ["-Xmx1G", "-Xms1G"]
    assert log4j.format(home=home) in argv
    gc = [a for a in argv if a.startswith("-Xlog:gc*:file=")]
    assert gc == [f"-Xlog:gc*:file={tmp_path / 'logs'}/kafkaServer-gc.log:time,tags:filecount=10,filesize=100M"]
    assert argv[-4:] == ["kafka.Kafka", "/etc/kafka/server.properties", "--override", "node.id=3"]


def test_server_start_daemon_writes_console_output_to_log_dir(tmp_path):
    home = make_fake_dist(tmp_path, "4.1.1", CLASSES_4_1)
    log = tmp_path / "java.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    env.update(JAVA_HOME=str(tmp_path / "jdk"), FAKE_JAVA_LOG=str(log), LOG_DIR=str(tmp_path / "logs"))
    subprocess.run([str(home / "bin" / "kafka-server-start.sh"), "-daemon", "s.properties"], env=env, check=True,
                   timeout=30)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not log.exists():
        time.sleep(0.1)
    assert json.loads(log.read_text().splitlines()[0])[-2:] == ["kafka.Kafka", "s.properties"]
    assert (tmp_path / "logs" / "kafkaServer.out").exists()


def test_zookeeper_scripts(tmp_path):
    home = make_fake_dist(tmp_path, "3.9.1", CLASSES_3_9)
    [argv] = run_script(home, tmp_path, "zookeeper-server-start.sh", "zk.properties")
    assert argv[:2] == ["-Xmx512M", "-Xms512M"]
    assert argv[-2:] == ["org.apache.zookeeper.server.quorum.QuorumPeerMain", "zk.properties"]
    [argv] = run_script(home, tmp_path, "zookeeper-shell.sh", "127.0.0.1:2181", "ls", "/")
    assert argv[-5:] == ["org.apache.zookeeper.ZooKeeperMainWithTlsSupportForKafka", "-server", "127.0.0.1:2181",
                         "ls", "/"]


SLEEPING_JAVA = f"""#!{sys.executable}
import time
time.sleep(60)
"""


def test_stop_script_stops_only_its_own_installation(tmp_path):
    mine = make_fake_dist(tmp_path / "a", "4.1.1", CLASSES_4_1, java_body=SLEEPING_JAVA)
    other = make_fake_dist(tmp_path / "b", "4.1.1", CLASSES_4_1, java_body=SLEEPING_JAVA)
    procs = []
    try:
        for home in (mine, other):
            env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
            env.update(JAVA_HOME=str(home.parent / "jdk"), LOG_DIR=str(home.parent / "logs"))
            procs.append(subprocess.Popen([str(home / "bin" / "kafka-server-start.sh"), "s.properties"], env=env,
                                          start_new_session=True))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ps = subprocess.run(["ps", "-ww", "-eo", "args="], capture_output=True, text=True, check=True).stdout
            if all(f"{h}/libs/* kafka.Kafka" in ps for h in (mine, other)):
                break
            time.sleep(0.2)
        cp = subprocess.run([str(mine / "bin" / "kafka-server-stop.sh"), "--wait", "20"], capture_output=True,
                            text=True, timeout=60, check=False)
        assert cp.returncode == 0, cp.stderr
        assert procs[0].wait(timeout=20) == -signal.SIGTERM
        assert procs[1].poll() is None
        cp = subprocess.run([str(mine / "bin" / "kafka-server-stop.sh")], capture_output=True, text=True, timeout=60,
                            check=False)
        assert cp.returncode == 1 and "No kafka server to stop" in cp.stderr
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=20)


# --------------------------------------------------------------------------------------------------
# config/
# --------------------------------------------------------------------------------------------------


def test_config_files_per_version():
    assert set(dist.render_config("3.9.1")) == {"server.properties", "log4j.properties", "tools-log4j.properties",
                                                 "zookeeper.properties"}
    assert set(dist.render_config("4.1.1")) == {"server.properties", "log4j2.yaml", "tools-log4j2.yaml"}
    props = dict(line.split("=", 1) for line in dist.render_server_properties("4.1.1").splitlines()
                 if line and not line.startswith("#"))
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@localhost:9093"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert "share.coordinator.state.topic.replication.factor" in props
    assert "share.coordinator.state.topic.replication.factor" not in dist.render_server_properties("3.9.1")


def test_log4j2_yaml_structure():
    yaml = pytest.importorskip("yaml")
    doc = yaml.safe_load(dist.LOG4J2_YAML)["Configuration"]
    files = {a["name"]: a["fileName"] for a in doc["Appenders"]["RollingFile"]}
    assert files["ServerAppender"] == "${sys:kafka.logs.dir:-logs}/server.log"
    assert {r["ref"] for r in doc["Loggers"]["Root"]["AppenderRef"]} == {"STDOUT", "ServerAppender"}
    refs = {lg["AppenderRef"]["ref"] for lg in doc["Loggers"]["Logger"]}
    assert refs <= set(files)
    tools = yaml.safe_load(dist.TOOLS_LOG4J2_YAML)["Configuration"]
    assert tools["Appenders"]["Console"]["target"] == "SYSTEM_ERR"


def test_log4j_properties_reference_defined_appenders():
    props = dict(line.split("=", 1) for line in dist.LOG4J_PROPERTIES.splitlines() if line and line[0] != "#")
    defined = {k.split(".")[2] for k in props if k.startswith("log4j.appender.")}
    used = set()
    for k, v in props.items():
        if k == "log4j.rootLogger" or k.startswith("log4j.logger."):
            used |= {x.strip() for x in v.split(",")[1:]}
    assert used and used <= defined


def test_manifest_records_inputs_without_timestamps():
    arts = [dist.Artifact("org.slf4j", "slf4j-api", "1.7.36", scope="runtime"),
            dist.Artifact("org.apache.kafka", "kafka_2.13", "4.1.1", scope="compile")]
    text = dist.render_manifest("4.1.1", REPO, arts, "Apache Maven 3.8.7",
                                {"kafka-topics.sh": "org.apache.kafka.tools.TopicCommand"})
    doc = json.loads(text)
    assert doc["name"] == "kafka_2.13-4.1.1"
    assert doc["kafka_version"] == "4.1.1"
    assert doc["repo"] == REPO
    assert doc["build_tool"] == "Apache Maven 3.8.7"
    assert doc["artifacts"] == ["org.apache.kafka:kafka_2.13:4.1.1", "org.slf4j:slf4j-api:1.7.36"]
    assert doc["requested"] == [a.gav for a in dist.base_artifacts("4.1.1")]
    assert doc["main_classes"] == {"kafka-topics.sh": "org.apache.kafka.tools.TopicCommand"}
    assert doc["log4j_opts"]["server"] == "-Dlog4j2.configurationFile=<dist>/config/log4j2.yaml"
    assert text == dist.render_manifest("4.1.1", REPO, reversed(arts), "Apache Maven 3.8.7",
                                        {"kafka-topics.sh": "org.apache.kafka.tools.TopicCommand"})


# --------------------------------------------------------------------------------------------------
# Reproducible archive, checksum, cache
# --------------------------------------------------------------------------------------------------


def _tree(root: Path, mtime: int, mode: int) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "libs" / "sub").mkdir(parents=True)
    (root / "bin" / "kafka-topics.sh").write_text("#!/bin/sh\n")
    (root / "libs" / "b.jar").write_bytes(b"jar-b" * 1000)
    (root / "libs" / "a.jar").write_bytes(b"jar-a")
    (root / "libs" / "sub" / "x").write_text("x")
    (root / "kafka-metal-dist.json").write_text("{}\n")
    (root / ("z" * 120)).write_text("long name")
    for p in [root, *root.rglob("*")]:
        os.utime(p, (mtime, mtime))
        if p.is_file():
            p.chmod(mode)
    return root


def test_tar_writer_is_reproducible(tmp_path):
    a = _tree(tmp_path / "t1", 1_000_000_000, 0o600)
    b = _tree(tmp_path / "t2", 1_700_000_000, 0o777)
    dist.write_reproducible_tgz(a, tmp_path / "a.tgz", "kafka_2.13-4.1.1")
    dist.write_reproducible_tgz(b, tmp_path / "b.tgz", "kafka_2.13-4.1.1")
    assert (tmp_path / "a.tgz").read_bytes() == (tmp_path / "b.tgz").read_bytes()

    raw = (tmp_path / "a.tgz").read_bytes()
    assert raw[:3] == b"\x1f\x8b\x08"
    assert raw[3] == 0  # no FNAME/FEXTRA/...: no file name in the header
    assert raw[4:8] == b"\0\0\0\0"  # gzip mtime 0

    with tarfile.open(tmp_path / "a.tgz") as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == [
            "kafka_2.13-4.1.1",
            "kafka_2.13-4.1.1/bin",
            "kafka_2.13-4.1.1/bin/kafka-topics.sh",
            "kafka_2.13-4.1.1/kafka-metal-dist.json",
            "kafka_2.13-4.1.1/libs",
            "kafka_2.13-4.1.1/libs/a.jar",
            "kafka_2.13-4.1.1/libs/b.jar",
            "kafka_2.13-4.1.1/libs/sub",
            "kafka_2.13-4.1.1/libs/sub/x",
            "kafka_2.13-4.1.1/" + "z" * 120,
        ]
        modes = {m.name.split("/", 1)[-1]: m.mode for m in members}
        assert modes["bin/kafka-topics.sh"] == 0o755
        assert modes["libs/a.jar"] == 0o644
        assert modes["libs"] == 0o755
        for m in members:
            assert (m.uid, m.gid, m.uname, m.gname, m.mtime) == (0, 0, "", "", dist.ARCHIVE_MTIME)
        assert tar.extractfile("kafka_2.13-4.1.1/libs/b.jar").read() == b"jar-b" * 1000

    # Same contents under another mtime: only the timestamps differ.
    dist.write_reproducible_tgz(a, tmp_path / "c.tgz", "kafka_2.13-4.1.1", mtime=0)
    assert (tmp_path / "c.tgz").read_bytes() != raw


def test_tar_writer_refuses_symlinks(tmp_path):
    root = tmp_path / "t"
    root.mkdir()
    (root / "link").symlink_to("/etc/passwd")
    with pytest.raises(dist.DistError, match="refusing to archive"):
        dist.write_reproducible_tgz(root, tmp_path / "x.tgz", "x")


def test_checksum_file_is_sha512sum_compatible(tmp_path):
    f = tmp_path / "kafka_2.13-4.1.1.tgz"
    f.write_bytes(b"hello")
    digest = dist.sha512_file(f)
    (tmp_path / "kafka_2.13-4.1.1.tgz.sha512").write_text(dist.checksum_line(digest, f.name))
    if shutil.which("sha512sum"):
        subprocess.run(["sha512sum", "-c", "kafka_2.13-4.1.1.tgz.sha512"], cwd=tmp_path, check=True,
                       capture_output=True)
    assert dist.read_checksum_file(tmp_path / "kafka_2.13-4.1.1.tgz.sha512") == (digest, f.name)
    (tmp_path / "bad.sha512").write_text("nope\n")
    assert dist.read_checksum_file(tmp_path / "bad.sha512") is None
    assert dist.read_checksum_file(tmp_path / "missing.sha512") is None


def _fake_archive(out: Path, version: str, repo: str = REPO, **manifest) -> Path:
    stage = out / "stage"
    (stage / "libs").mkdir(parents=True)
    (stage / "libs" / "x.jar").write_bytes(b"x")
    doc = {"format": dist.DIST_FORMAT, "generator": dist.generator_fingerprint(version), "repo": repo, **manifest}
    (stage / "kafka-metal-dist.json").write_text(json.dumps(doc))
    archive = out / dist.archive_name(version)
    dist.write_reproducible_tgz(stage, archive, dist.dist_name(version))
    shutil.rmtree(stage)
    (out / (archive.name + ".sha512")).write_text(dist.checksum_line(dist.sha512_file(archive), archive.name))
    return archive


def test_default_repo_comes_from_the_machines_maven(tmp_path, monkeypatch):
    monkeypatch.delenv(dist.REPO_ENV, raising=False)
    home, maven = tmp_path / "home", tmp_path / "maven"
    (maven / "lib").mkdir(parents=True)
    with zipfile.ZipFile(maven / "lib" / "maven-model-builder-3.x.jar", "w") as z:
        z.writestr("org/apache/maven/model/pom-4.0.0.xml",
                   "<project><repositories><repository><id>central</id><name>Central</name>"
                   "<url>https://central.example/maven2</url></repository></repositories></project>")
    assert dist.default_repo(home, maven) == "https://central.example/maven2"
    (maven / "conf").mkdir()
    (maven / "conf" / "settings.xml").write_text(
        "<settings><mirrors><!-- <mirror><mirrorOf>*</mirrorOf><url>http://commented.example</url></mirror> -->"
        "<mirror><id>other</id><mirrorOf>!central,*</mirrorOf><url>http://skip.example/m2</url></mirror>"
        "<mirror><id>site</id><mirrorOf>central</mirrorOf><url>http://site.example/m2/</url></mirror>"
        "</mirrors></settings>")
    assert dist.default_repo(home, maven) == "http://site.example/m2"
    (home / ".m2").mkdir(parents=True)
    (home / ".m2" / "settings.xml").write_text(
        "<settings><mirrors><mirror><mirrorOf>*</mirrorOf><url>http://mine.example/m2</url></mirror></mirrors>"
        "</settings>")
    assert dist.default_repo(home, maven) == "http://mine.example/m2"
    monkeypatch.setenv(dist.REPO_ENV, "file:///srv/m2")
    assert dist.default_repo(home, maven) == "file:///srv/m2"
    monkeypatch.delenv(dist.REPO_ENV)
    with pytest.raises(dist.DistError, match="no Maven repository configured here"):
        dist.default_repo(tmp_path / "nobody", tmp_path / "no-maven")


def test_cache_hit_and_misses(tmp_path):
    archive = _fake_archive(tmp_path, "4.1.1")
    hit, reason = dist.cached_archive(tmp_path, "4.1.1", REPO)
    assert hit == (archive, dist.sha512_file(archive)) and "already built" in reason

    hit, reason = dist.cached_archive(tmp_path, "4.1.1", "https://mirror.example/maven2")
    assert hit is None and "built from https://maven.example/maven2" in reason

    assert dist.cached_archive(tmp_path, "3.9.1", REPO)[0] is None

    with open(archive, "ab") as fh:
        fh.write(b"\0")
    hit, reason = dist.cached_archive(tmp_path, "4.1.1", REPO)
    assert hit is None and "does not match" in reason


def test_cache_miss_for_another_generator(tmp_path):
    _fake_archive(tmp_path, "4.1.1", generator="0" * 64)
    hit, reason = dist.cached_archive(tmp_path, "4.1.1", REPO)
    assert hit is None and "another version of kafka-metal" in reason


def test_generator_fingerprint_depends_on_version_and_templates(monkeypatch):
    a = dist.generator_fingerprint("4.1.1")
    assert a == dist.generator_fingerprint("4.1.1")
    assert a != dist.generator_fingerprint("4.1.2")
    monkeypatch.setattr(dist_layout, "TOOLS_LOG4J2_YAML", dist.TOOLS_LOG4J2_YAML + "# changed\n")
    assert a != dist.generator_fingerprint("4.1.1")


# --------------------------------------------------------------------------------------------------
# Maven output
# --------------------------------------------------------------------------------------------------

MISSING = ("[ERROR] Failed to execute goal on project kafka_2.13-4.99.0: Could not resolve dependencies for project "
           "io.kafka-metal.dist:kafka_2.13-4.99.0:pom:0: The following artifacts could not be resolved: "
           "org.apache.kafka:kafka_2.13:jar:4.99.0, org.apache.kafka:kafka-tools:jar:4.99.0: Could not find "
           "artifact org.apache.kafka:kafka_2.13:jar:4.99.0 in kafka-metal-repo (https://maven.example/"
           "maven2) -> [Help 1]")
CACHED = ("[ERROR] ... The following artifacts could not be resolved: org.apache.kafka:kafka_2.13:jar:4.99.0, "
          "org.apache.kafka:kafka-tools:jar:4.99.0: org.apache.kafka:kafka_2.13:jar:4.99.0 was not found in "
          "https://maven.example/maven2 during a previous attempt. This failure was cached")


@pytest.mark.parametrize("text", [MISSING, CACHED, "\x1b[0m" + MISSING,
                                  "[ERROR] Failed to read artifact descriptor for org.apache.kafka:kafka_2.13:jar:"
                                  "4.99.0: Could not transfer artifact"])
def test_failed_artifact_is_named(text):
    assert dist.failed_artifact(text) == "org.apache.kafka:kafka_2.13:jar:4.99.0"


def test_maven_log_tail_drops_boilerplate():
    log = "\n".join(["$ mvn -B", "\x1b[0m" + MISSING, "[ERROR] ",
                     "[ERROR] To see the full stack trace of the errors, re-run Maven with the -e switch.",
                     "[ERROR] Re-run Maven using the -X switch to enable full debug logging.",
                     "[ERROR] [Help 1] http://cwiki.apache.org/confluence/display/MAVEN/DependencyResolutionException",
                     "# exit code: 1"])
    tail = dist_maven._tail(log)
    assert tail.splitlines() == ["    " + MISSING]


def test_maven_command():
    cmd = dist.maven_command("/usr/bin/mvn", Path("/t/settings.xml"), Path("/t/pom.xml"),
                             ["dependency:copy-dependencies", "dependency:list"],
                             {"outputDirectory": "/t/libs", "includeScope": "runtime"})
    assert cmd == ["/usr/bin/mvn", "-B", "-q", "-Dstyle.color=never", "-s", "/t/settings.xml", "-f", "/t/pom.xml",
                   "-DoutputDirectory=/t/libs", "-DincludeScope=runtime",
                   "dependency:copy-dependencies", "dependency:list"]
    assert dist.maven_env({"LANG": "de_DE.UTF-8", "PATH": "/bin"}) == {"LC_ALL": "C", "PATH": "/bin"}


# --------------------------------------------------------------------------------------------------
# build() end to end against a fake mvn
# --------------------------------------------------------------------------------------------------

FAKE_MVN = r'''#!{python}
"""Answers like `mvn dependency:list` / `dependency:copy-dependencies` on kafka-metal's POM."""
import json, os, re, sys, zipfile
args = sys.argv[1:]
calls = os.environ.get("FAKE_MVN_CALLS")
if calls:
    with open(calls, "a") as fh:
        fh.write(json.dumps(args) + "\n")
if "-v" in args:
    print("Apache Maven 3.8.7 (fake)")
    sys.exit(0)
if os.environ.get("FAKE_MVN_FAIL"):
    print("[ERROR] Failed to execute goal on project x: Could not resolve dependencies for project x:x:pom:0: "
          "Could not find artifact org.apache.kafka:kafka_2.13:jar:9.9.9 in kafka-metal-repo (" +
          os.environ["FAKE_MVN_FAIL"] + ")")
    print("[ERROR] ")
    print("[ERROR] For more information about the errors and possible solutions, please read the following articles:")
    sys.exit(1)
props = dict(a[2:].split("=", 1) for a in args if a.startswith("-D") and "=" in a)
pom = open(args[args.index("-f") + 1]).read()
deps = re.findall(r"<groupId>(.*?)</groupId>\s*<artifactId>(.*?)</artifactId>\s*<version>(.*?)</version>", pom)
deps = [d for d in deps if d[1] != "maven-dependency-plugin"]
version = next(v for g, a, v in deps if a == "kafka_2.13")
classes = json.loads(os.environ["FAKE_CLASSES"])
resolved = {{(g, a): v for g, a, v in deps}}
resolved[("org.apache.kafka", "kafka-clients")] = version
resolved[("org.slf4j", "slf4j-api")] = "1.7.36"
if version.startswith("3.9."):
    resolved[("org.apache.zookeeper", "zookeeper")] = "3.8.4"
    resolved[("ch.qos.reload4j", "reload4j")] = "1.2.25"
else:
    resolved[("org.apache.logging.log4j", "log4j-api")] = "2.24.3"
    resolved.setdefault(("org.apache.logging.log4j", "log4j-core"), "2.24.3")
lines = ["", "The following files have been resolved:"]
for (g, a), v in sorted(resolved.items()):
    lines.append(f"   {{g}}:{{a}}:jar:{{v}}:{{'compile' if a.startswith('kafka') else 'runtime'}} -- module x")
with open(props["outputFile"], "w") as fh:
    fh.write("\n".join(lines) + "\n")
if "dependency:copy-dependencies" in args:
    out = props["outputDirectory"]
    os.makedirs(out, exist_ok=True)
    for (g, a), v in sorted(resolved.items()):
        with zipfile.ZipFile(os.path.join(out, f"{{a}}-{{v}}.jar"), "w") as z:
            for c in classes.get(a, []):
                z.writestr(zipfile.ZipInfo(c.replace(".", "/") + ".class", (1980, 1, 1, 0, 0, 0)), b"\xca\xfe")
            z.writestr(zipfile.ZipInfo("META-INF/MANIFEST.MF", (1980, 1, 1, 0, 0, 0)), f"{{g}}:{{a}}:{{v}}\n")
'''


def jar_class_map(version: str) -> dict[str, list[str]]:
    classes = CLASSES_3_9 if version.startswith("3.9") else CLASSES_4_1
    out: dict[str, list[str]] = {"kafka_2.13": [], "kafka-tools": [], "zookeeper": []}
    for c in sorted(classes):
        if c.startswith("org.apache.kafka.tools."):
            out["kafka-tools"].append(c)
        elif c.startswith("org.apache.zookeeper.server."):
            out["zookeeper"].append(c)
        else:
            out["kafka_2.13"].append(c)
    return out


@pytest.fixture
def fake_maven(tmp_path, monkeypatch):
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    (bindir / "mvn").write_text(FAKE_MVN.replace("{python}", sys.executable).replace("{{", "{").replace("}}", "}"))
    (bindir / "java").write_text("#!/bin/sh\necho 'openjdk version \"17\"' >&2\n")
    for f in bindir.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("FAKE_MVN_CALLS", str(tmp_path / "mvn-calls.jsonl"))
    monkeypatch.setenv(dist.REPO_ENV, REPO)  # the fake Maven has no settings or super POM to read it from

    def configure(version):
        monkeypatch.setenv("FAKE_CLASSES", json.dumps(jar_class_map(version)))

    return configure


@pytest.mark.parametrize("version", ["4.1.1", "3.9.1"])
def test_build_end_to_end_with_fake_maven(version, fake_maven, tmp_path):
    fake_maven(version)
    messages: list[str] = []
    archive, digest = dist.build(version, out_dir=tmp_path / "out", progress=messages.append)
    assert archive == tmp_path / "out" / f"kafka_2.13-{version}.tgz"
    assert (tmp_path / "out" / f"kafka_2.13-{version}.tgz.sha512").read_text() == f"{digest}  {archive.name}\n"
    assert digest == dist.sha512_file(archive)

    calls = [json.loads(line) for line in (tmp_path / "mvn-calls.jsonl").read_text().splitlines()]
    goals = [c[-2:] for c in calls if "-v" not in c]
    assert goals == [["-Dsort=true", "dependency:list"], ["dependency:copy-dependencies", "dependency:list"]]
    for c in calls:
        if "-v" not in c:
            assert c[:3] == ["-B", "-q", "-Dstyle.color=never"] and "-s" in c

    root = f"kafka_2.13-{version}"
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile(f"{root}/kafka-metal-dist.json").read())
    assert f"{root}/bin/kafka-server-start.sh" in names
    assert f"{root}/config/server.properties" in names
    assert manifest["kafka_version"] == version
    assert manifest["build_tool"] == "Apache Maven 3.8.7"
    assert manifest["repo"] == REPO
    if version.startswith("3.9"):
        assert "org.slf4j:slf4j-reload4j:1.7.36" in manifest["artifacts"]
        assert f"{root}/bin/zookeeper-server-start.sh" in names
        assert f"{root}/config/log4j.properties" in names
    else:
        assert "org.apache.logging.log4j:log4j-slf4j-impl:2.24.3" in manifest["artifacts"]
        assert f"{root}/config/log4j2.yaml" in names
    jars = sorted(n.rsplit("/", 1)[1] for n in names if n.endswith(".jar"))
    assert len(jars) == len(manifest["artifacts"])

    assert not list((tmp_path / "out").glob(".*.partial"))
    assert manifest["logging_binding"] == (["org.slf4j:slf4j-reload4j:1.7.36"] if version.startswith("3.9") else [
        "org.apache.logging.log4j:log4j-slf4j-impl:2.24.3", "org.apache.logging.log4j:log4j-core:2.24.3",
        "org.apache.logging.log4j:log4j-1.2-api:2.24.3"])

    # Second call: taken from the cache, Maven not run.
    n_calls = len(calls)
    messages.clear()
    assert dist.build(version, out_dir=tmp_path / "out", progress=messages.append) == (archive, digest)
    assert any("skipping the build" in m for m in messages)
    assert len((tmp_path / "mvn-calls.jsonl").read_text().splitlines()) == n_calls

    # Forced: built again, byte for byte the same.
    assert dist.build(version, out_dir=tmp_path / "out", force=True, progress=messages.append) == (archive, digest)
    assert len((tmp_path / "mvn-calls.jsonl").read_text().splitlines()) > n_calls


def test_build_from_a_mirror_records_it(fake_maven, tmp_path):
    fake_maven("4.1.1")
    archive, _ = dist.build("4.1.1", repo="https://nexus.example/maven2/", out_dir=tmp_path, progress=lambda m: None)
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("kafka_2.13-4.1.1/kafka-metal-dist.json").read())
    assert manifest["repo"] == "https://nexus.example/maven2"
    calls = [json.loads(line) for line in (tmp_path / "mvn-calls.jsonl").read_text().splitlines()]
    settings = [c[c.index("-s") + 1] for c in calls if "-s" in c]
    assert settings  # the settings file lives in a temp dir that is gone; its content is tested above


def test_build_failure_names_artifact_and_repo_and_keeps_the_log(fake_maven, tmp_path, monkeypatch):
    fake_maven("4.1.1")
    monkeypatch.setenv("FAKE_MVN_FAIL", "https://nexus.example/maven2")
    with pytest.raises(dist.DistError) as exc:
        dist.build("4.1.1", repo="https://nexus.example/maven2", out_dir=tmp_path / "out", progress=lambda m: None)
    msg = str(exc.value)
    assert msg.startswith("Maven could not resolve org.apache.kafka:kafka_2.13:jar:9.9.9 from repository "
                          "https://nexus.example/maven2")
    log = tmp_path / "out" / "kafka_2.13-4.1.1.build.log"
    assert f"full log: {log}" in msg
    assert "For more information" not in msg
    assert "Could not find artifact" in log.read_text()
    assert not (tmp_path / "out" / "kafka_2.13-4.1.1.tgz").exists()
    assert not list((tmp_path / "out").glob("*.partial"))


def test_build_without_maven_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(dist.DistError, match="apt-get install -y maven"):
        dist.build("4.1.1", out_dir=tmp_path / "out", progress=lambda m: None)


def test_build_validates_before_anything_else(tmp_path):
    with pytest.raises(dist.DistError, match="unsupported Kafka version '3.7.0'"):
        dist.build("3.7.0", out_dir=tmp_path / "never")
    with pytest.raises(dist.DistError, match="invalid Maven repository URL"):
        dist.build("4.1.1", repo="nexus", out_dir=tmp_path / "never")
    assert not (tmp_path / "never").exists()


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def _parser():
    import argparse

    p = argparse.ArgumentParser(prog="kafka-metal")
    sub = p.add_subparsers(dest="command")
    dist.add_subparser(sub)
    return p


def test_cli_arguments():
    args = _parser().parse_args(["dist", "build", "--version", "4.1.1", "--repo", "https://m/x", "--out", "/o",
                                 "--force"])
    assert (args.version, args.repo, args.out, args.force) == ("4.1.1", "https://m/x", "/o", True)
    assert args.func is dist._cmd_build
    args = _parser().parse_args(["dist", "build", "--version", "3.9.1"])
    assert (args.repo, args.out, args.force) == (None, None, False)


def test_cli_requires_a_subcommand_and_a_version(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["dist"])
    with pytest.raises(SystemExit):
        _parser().parse_args(["dist", "build"])
    assert "--version" in capsys.readouterr().err


def test_cli_reports_errors_without_a_traceback(capsys, tmp_path):
    assert dist.main(["dist", "build", "--version", "4.1", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("kafka-metal dist build: error: unsupported Kafka version '4.1'")
    assert "Traceback" not in err


def test_cli_prints_path_and_digest(fake_maven, tmp_path, capsys):
    fake_maven("4.1.1")
    assert dist.main(["dist", "build", "--version", "4.1.1", "--out", str(tmp_path)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    path, digest = last.split("\t")
    assert path == str(tmp_path / "kafka_2.13-4.1.1.tgz") and len(digest) == 128


def test_gzip_helper_roundtrip_is_plain_gzip(tmp_path):
    # The archive is ordinary gzip+tar: Python's gzip module and tar both read it.
    root = _tree(tmp_path / "t", 0, 0o644)
    dist.write_reproducible_tgz(root, tmp_path / "a.tgz", "r")
    data = gzip.decompress((tmp_path / "a.tgz").read_bytes())
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert "r/libs/a.jar" in tar.getnames()
    if shutil.which("tar"):
        out = subprocess.run(["tar", "-tzf", str(tmp_path / "a.tgz")], capture_output=True, text=True, check=True)
        assert "r/libs/a.jar" in out.stdout.split()
