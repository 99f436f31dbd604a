"""`kafka-metal dist build` against Maven Central, and a single-node KRaft smoke test of the result.

Builds kafka_2.13-4.1.1.tgz and kafka_2.13-3.9.1.tgz into the dist cache ($KAFKA_METAL_CACHE_DIR/dist,
default /var/cache/kafka-metal/dist; reused when already built), checks the layout, the checksum file and
that a forced rebuild gives the same SHA-512, then unpacks each archive and runs a combined
broker+controller on 127.0.0.1: storage format, start, topic, console and confluent-kafka produce/consume,
metadata quorum status, clean stop. 3.9.1 also runs ZooKeeper from the same libs/.
Every process is started in its own session and killed in `finally`; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tarfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from kafka_metal import dist

pytestmark = pytest.mark.maven

# The project defaults; KAFKA_METAL_DIST_VERSIONS=4.4.0,... tries others (e.g. the newest on Maven Central).
VERSIONS = os.environ.get("KAFKA_METAL_DIST_VERSIONS", "4.1.1,3.9.1").split(",")

REQUIRED_BIN = [
    "kafka-run-class.sh", "kafka-server-start.sh", "kafka-server-stop.sh", "kafka-storage.sh", "kafka-topics.sh",
    "kafka-console-producer.sh", "kafka-console-consumer.sh", "kafka-consumer-groups.sh", "kafka-configs.sh",
    "kafka-acls.sh", "kafka-metadata-quorum.sh", "kafka-features.sh", "kafka-producer-perf-test.sh",
    "kafka-consumer-perf-test.sh", "kafka-leader-election.sh", "kafka-reassign-partitions.sh",
    "kafka-log-dirs.sh", "kafka-get-offsets.sh", "kafka-dump-log.sh",
]
ZK_BIN = ["zookeeper-server-start.sh", "zookeeper-server-stop.sh", "zookeeper-shell.sh"]

# Messages that mean logging is not wired up (SLF4J without a provider, log4j/log4j2 without a config).
LOGGING_PROBLEMS = re.compile(
    r"SLF4J: (No SLF4J providers|Failed to load class|Defaulting to no-operation|Class path contains multiple)"
    r"|No Log4j 2 configuration|StatusLogger|log4j:WARN|ERROR StatusConsoleListener"
)

# The main classes found by inspecting the jars (unzip -l, javap) of each version.
EXPECTED_CLASSES = {
    "4.4.0": {
        "kafka-configs.sh": "org.apache.kafka.tools.ConfigCommand",
        "kafka-dump-log.sh": "org.apache.kafka.tools.DumpLogSegments",
    },
    "4.1.1": {
        "kafka-server-start.sh": "kafka.Kafka",
        "kafka-storage.sh": "kafka.tools.StorageTool",
        "kafka-topics.sh": "org.apache.kafka.tools.TopicCommand",
        "kafka-console-producer.sh": "org.apache.kafka.tools.ConsoleProducer",
        "kafka-console-consumer.sh": "org.apache.kafka.tools.consumer.ConsoleConsumer",
        "kafka-consumer-groups.sh": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
        "kafka-configs.sh": "kafka.admin.ConfigCommand",
        "kafka-acls.sh": "org.apache.kafka.tools.AclCommand",
        "kafka-metadata-quorum.sh": "org.apache.kafka.tools.MetadataQuorumCommand",
        "kafka-features.sh": "org.apache.kafka.tools.FeatureCommand",
        "kafka-dump-log.sh": "kafka.tools.DumpLogSegments",
    },
    "3.9.1": {
        "kafka-server-start.sh": "kafka.Kafka",
        "kafka-storage.sh": "kafka.tools.StorageTool",
        "kafka-topics.sh": "org.apache.kafka.tools.TopicCommand",
        "kafka-console-producer.sh": "kafka.tools.ConsoleProducer",
        "kafka-console-consumer.sh": "org.apache.kafka.tools.consumer.ConsoleConsumer",
        "kafka-consumer-groups.sh": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
        "kafka-configs.sh": "kafka.admin.ConfigCommand",
        "kafka-acls.sh": "kafka.admin.AclCommand",
        "kafka-metadata-quorum.sh": "org.apache.kafka.tools.MetadataQuorumCommand",
        "kafka-features.sh": "org.apache.kafka.tools.FeatureCommand",
        "kafka-dump-log.sh": "kafka.tools.DumpLogSegments",
        "zookeeper-server-start.sh": "org.apache.zookeeper.server.quorum.QuorumPeerMain",
        "zookeeper-shell.sh": "org.apache.zookeeper.ZooKeeperMainWithTlsSupportForKafka",
    },
}


def _cache_out_dir(tmp_path_factory) -> Path:
    out = dist.default_out_dir()
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".probe-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
        return out
    except OSError:
        return tmp_path_factory.mktemp("dist")


@pytest.fixture(scope="session")
def out_dir(tmp_path_factory):
    if not (shutil.which("mvn") and shutil.which("java")):
        pytest.skip("mvn and java are needed (apt-get install maven openjdk-17-jre-headless)")
    return _cache_out_dir(tmp_path_factory)


_built: dict[str, tuple[Path, str]] = {}


def built(version: str, out_dir: Path) -> tuple[Path, str]:
    if version not in _built:
        _built[version] = dist.build(version, out_dir=out_dir, progress=lambda m: print(f"[dist] {m}"))
    return _built[version]


# --------------------------------------------------------------------------------------------------
# Build: layout, checksum, cache, determinism, errors
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_archive_layout_and_checksum(version, out_dir):
    archive, digest = built(version, out_dir)
    assert archive == out_dir / f"kafka_2.13-{version}.tgz"
    sumfile = archive.with_name(archive.name + ".sha512")
    assert sumfile.read_text() == f"{digest}  {archive.name}\n"
    subprocess.run(["sha512sum", "-c", sumfile.name], cwd=out_dir, check=True, capture_output=True, timeout=120)

    root = f"kafka_2.13-{version}"
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        manifest = json.loads(tar.extractfile(f"{root}/kafka-metal-dist.json").read())
    assert names[0] == root and all(n.startswith(root + "/") for n in names[1:])
    assert names == sorted(names, key=lambda n: n.rstrip("/").split("/"))
    for m in members:
        assert (m.uid, m.gid, m.uname, m.gname, m.mtime) == (0, 0, "", "", dist.ARCHIVE_MTIME)
        assert m.isdir() or m.isfile()
        expected_mode = 0o755 if m.isdir() or "/bin/" in m.name else 0o644
        assert m.mode == expected_mode, m.name

    bins = {n.split("/")[-1] for n in names if n.startswith(f"{root}/bin/") and not n.endswith("/")}
    need = REQUIRED_BIN + (ZK_BIN if version.startswith("3.9.") else [])
    assert set(need) <= bins
    if not version.startswith("3.9."):
        assert not bins & set(ZK_BIN)

    configs = {n.split("/")[-1] for n in names if n.startswith(f"{root}/config/") and not n.endswith("/")}
    if version.startswith("3.9."):
        assert {"server.properties", "log4j.properties", "tools-log4j.properties", "zookeeper.properties"} <= configs
    else:
        assert {"server.properties", "log4j2.yaml", "tools-log4j2.yaml"} <= configs

    jars = {n.split("/")[-1] for n in names if n.startswith(f"{root}/libs/") and n.endswith(".jar")}
    assert manifest["kafka_version"] == version
    assert manifest["repo"] == dist.default_repo()
    assert manifest["build_tool"].startswith("Apache Maven ")
    gavs = manifest["artifacts"]
    assert len(jars) == len(gavs)
    for gav in gavs:
        a, v = gav.split(":")[1], gav.split(":")[-1]
        assert f"{a}-{v}.jar" in jars, gav
    for ga in ("org.apache.kafka:kafka_2.13", "org.apache.kafka:kafka-tools", "org.apache.kafka:kafka-storage",
               "org.apache.kafka:kafka-clients", "org.slf4j:slf4j-api"):
        assert f"{ga}:{version}" in gavs or any(x.startswith(ga + ":") for x in gavs), ga
    if version.startswith("3.9."):
        assert any(x.startswith("ch.qos.reload4j:reload4j:") for x in gavs)
        assert any(x.startswith("org.slf4j:slf4j-reload4j:") for x in gavs)
        assert any(x.startswith("org.apache.zookeeper:zookeeper:") for x in gavs)
        assert not any(x.startswith("org.apache.logging.log4j:log4j-core:") for x in gavs)
    else:
        assert any(x.startswith("org.apache.logging.log4j:log4j-slf4j") for x in gavs)
        assert any(x.startswith("org.apache.logging.log4j:log4j-core:") for x in gavs)
        assert not any(":reload4j:" in x or ":slf4j-reload4j:" in x for x in gavs)
    for script, cls in EXPECTED_CLASSES.get(version, {}).items():
        assert manifest["main_classes"][script] == cls, script


@pytest.mark.parametrize("version", VERSIONS)
def test_second_build_reuses_the_archive(version, out_dir):
    archive, digest = built(version, out_dir)
    msgs: list[str] = []
    t0 = time.monotonic()
    assert dist.build(version, out_dir=out_dir, progress=msgs.append) == (archive, digest)
    assert time.monotonic() - t0 < 30
    assert any("skipping the build" in m for m in msgs)


@pytest.mark.parametrize("version", VERSIONS)
def test_forced_rebuild_is_byte_identical(version, out_dir, tmp_path):
    _, digest = built(version, out_dir)
    again, digest2 = dist.build(version, out_dir=tmp_path, force=True, progress=lambda m: None)
    assert digest2 == digest
    assert dist.sha512_file(again) == digest


def test_version_maven_cannot_resolve_is_named(tmp_path):
    with pytest.raises(dist.DistError) as exc:
        dist.build("4.99.0", out_dir=tmp_path, progress=lambda m: None)
    msg = str(exc.value)
    assert "org.apache.kafka:kafka_2.13:jar:4.99.0" in msg or "org.apache.kafka:kafka_2.13:4.99.0" in msg
    assert dist.default_repo() in msg
    assert "full log:" in msg
    assert len(msg.splitlines()) < 25
    assert not (tmp_path / "kafka_2.13-4.99.0.tgz").exists()


def test_cli_refuses_unsupported_version(tmp_path, capsys):
    assert dist.main(["dist", "build", "--version", "3.8.1", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "unsupported Kafka version '3.8.1'" in err and "3.9.x and 4.x" in err


# --------------------------------------------------------------------------------------------------
# Smoke test: a single KRaft node from the unpacked archive
# --------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """An unpacked distribution plus the processes started from it (always cleaned up)."""

    def __init__(self, archive: Path, version: str, workdir: Path):
        subprocess.run(["tar", "-xzf", str(archive), "-C", str(workdir)], check=True, timeout=120)
        self.home = workdir / f"kafka_2.13-{version}"
        self.version = version
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
        self.env.update(LC_ALL="C", LOG_DIR=str(self.logs))
        self.procs: list[subprocess.Popen] = []

    def bin(self, name: str) -> str:
        return str(self.home / "bin" / name)

    def run(self, *args: str, input: str | None = None, timeout: int = 120, check: bool = True,
            env: dict | None = None) -> subprocess.CompletedProcess:
        cp = subprocess.run([self.bin(args[0]), *args[1:]], input=input, capture_output=True, text=True,
                            timeout=timeout, env={**self.env, **(env or {})}, start_new_session=True)
        if check and cp.returncode != 0:
            raise AssertionError(f"{args} exited {cp.returncode}\nstdout:\n{cp.stdout[-3000:]}\n"
                                 f"stderr:\n{cp.stderr[-3000:]}")
        assert not LOGGING_PROBLEMS.search(cp.stdout + cp.stderr), (args, cp.stderr[-3000:])
        return cp

    def start(self, *args: str, out: Path, env: dict | None = None) -> subprocess.Popen:
        fh = open(out, "w")  # noqa: SIM115 - closed with the process
        p = subprocess.Popen([self.bin(args[0]), *args[1:]], stdout=fh, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, env={**self.env, **(env or {})}, start_new_session=True)
        p._log = fh  # type: ignore[attr-defined]
        self.procs.append(p)
        return p

    def cleanup(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(p.pid, signal.SIGKILL)
                    p.wait(timeout=30)
            p._log.close()  # type: ignore[attr-defined]


def wait_for(cond, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-4000:] if log and log.exists() else ""
            raise AssertionError(f"process exited ({proc.returncode}) while waiting for {what}\n{tail}")
        time.sleep(0.5)
    tail = log.read_text()[-4000:] if log and log.exists() else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{tail}")


def server_properties(version: str, data: Path, broker_port: int, controller_port: int) -> str:
    props = [
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
        f"listeners=PLAINTEXT://127.0.0.1:{broker_port},CONTROLLER://127.0.0.1:{controller_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{broker_port}",
        "inter.broker.listener.name=PLAINTEXT",
        "controller.listener.names=CONTROLLER",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        f"log.dirs={data}",
        "num.partitions=1",
        "offsets.topic.replication.factor=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
    ]
    if not version.startswith("3.9."):
        props.append("share.coordinator.state.topic.replication.factor=1")
        props.append("share.coordinator.state.topic.min.isr=1")
    return "\n".join(props) + "\n"


def confluent_roundtrip(bootstrap: str, topic: str, values: list[str], expect: list[str]) -> None:
    confluent_kafka = pytest.importorskip("confluent_kafka")
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for v in values:
        producer.produce(topic, v.encode())
    assert producer.flush(30) == 0, "confluent-kafka producer could not deliver within 30s"
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"smoke-{uuid.uuid4().hex[:8]}",
        "auto.offset.reset": "earliest", "enable.auto.commit": False,
    })
    got: list[str] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(got) < len(expect):
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            got.append(msg.value().decode())
    finally:
        consumer.close()
    assert got == expect


@pytest.mark.parametrize("version", VERSIONS)
def test_single_node_kraft_smoke(version, out_dir, tmp_path):
    archive, _ = built(version, out_dir)
    node = Node(archive, version, tmp_path)
    try:
        # Every tool's main class loads (its --help answers without "Could not find or load main class").
        skip = {"kafka-run-class.sh", "kafka-server-start.sh", "kafka-server-stop.sh", *ZK_BIN}
        tools = sorted(p.name for p in (node.home / "bin").iterdir() if p.name not in skip)

        def help_of(tool):
            cp = node.run(tool, "--help", timeout=90, check=False)
            return tool, cp.returncode, cp.stdout + cp.stderr

        with ThreadPoolExecutor(max_workers=2) as pool:
            for tool, rc, text in pool.map(help_of, tools):
                assert "Could not find or load main class" not in text, tool
                assert "ClassNotFoundException" not in text and "NoClassDefFoundError" not in text, tool
                assert rc in (0, 1), (tool, rc, text[-2000:])

        bport, cport = free_port(), free_port()
        while cport == bport:
            cport = free_port()
        bootstrap = f"127.0.0.1:{bport}"
        config = tmp_path / "server.properties"
        config.write_text(server_properties(version, tmp_path / "data", bport, cport))

        cluster_id = node.run("kafka-storage.sh", "random-uuid").stdout.strip()
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id), cluster_id
        fmt = node.run("kafka-storage.sh", "format", "-t", cluster_id, "-c", str(config))
        assert "Formatting" in fmt.stdout + fmt.stderr
        assert (tmp_path / "data" / "meta.properties").is_file()

        console = tmp_path / "server.out"
        server = node.start("kafka-server-start.sh", str(config), out=console,
                            env={"KAFKA_HEAP_OPTS": "-Xmx512m -Xms256m"})
        server_log = node.logs / "server.log"
        wait_for(lambda: server_log.exists() and "Kafka Server started" in server_log.read_text(),
                 180, "Kafka Server started", server, console)

        node.run("kafka-topics.sh", "--bootstrap-server", bootstrap, "--create", "--topic", "smoke",
                 "--partitions", "1", "--replication-factor", "1")
        described = node.run("kafka-topics.sh", "--bootstrap-server", bootstrap, "--describe", "--topic", "smoke")
        assert "PartitionCount: 1" in described.stdout

        node.run("kafka-console-producer.sh", "--bootstrap-server", bootstrap, "--topic", "smoke",
                 input="one\ntwo\nthree\n")
        consumed = node.run("kafka-console-consumer.sh", "--bootstrap-server", bootstrap, "--topic", "smoke",
                            "--from-beginning", "--max-messages", "3", "--timeout-ms", "60000")
        assert consumed.stdout.split() == ["one", "two", "three"]

        py = [f"py-{i}" for i in range(5)]
        confluent_roundtrip(bootstrap, "smoke", py, ["one", "two", "three", *py])

        status = node.run("kafka-metadata-quorum.sh", "--bootstrap-server", bootstrap, "describe", "--status")
        assert re.search(r"ClusterId:\s+" + re.escape(cluster_id), status.stdout), status.stdout
        assert re.search(r"LeaderId:\s+1\b", status.stdout), status.stdout

        offsets = node.run("kafka-get-offsets.sh", "--bootstrap-server", bootstrap, "--topic", "smoke")
        assert offsets.stdout.strip() == "smoke:0:8"
        features = node.run("kafka-features.sh", "--bootstrap-server", bootstrap, "describe")
        assert "metadata.version" in features.stdout
        configs = node.run("kafka-configs.sh", "--bootstrap-server", bootstrap, "--describe",
                           "--entity-type", "topics", "--entity-name", "smoke")
        assert "smoke" in configs.stdout
        groups = node.run("kafka-consumer-groups.sh", "--bootstrap-server", bootstrap, "--list")
        assert "smoke-" in groups.stdout

        stop = node.run("kafka-server-stop.sh", "--wait", "90", timeout=120)
        assert stop.returncode == 0
        rc = server.wait(timeout=30)
        assert rc in (0, 143), rc
        log_text = server_log.read_text()
        assert "[BrokerServer id=1] shut down completed" in log_text, log_text[-3000:]
        assert "[ControllerServer id=1] shutting down" in log_text, log_text[-3000:]
        assert re.search(r"exit controlled shutdown|controlled shutdown (succeeded|completed)", log_text, re.I)
        assert not LOGGING_PROBLEMS.search(console.read_text()), console.read_text()[-3000:]
        # No second stop target: the script says so and exits 1.
        assert node.run("kafka-server-stop.sh", check=False).returncode == 1
    finally:
        node.cleanup()


def test_zookeeper_runs_from_the_3_9_libs(out_dir, tmp_path):
    archive, _ = built("3.9.1", out_dir)
    node = Node(archive, "3.9.1", tmp_path)
    try:
        port = free_port()
        config = tmp_path / "zookeeper.properties"
        config.write_text(f"dataDir={tmp_path / 'zk'}\nclientPort={port}\nclientPortAddress=127.0.0.1\n"
                          "maxClientCnxns=0\nadmin.enableServer=false\n")
        console = tmp_path / "zookeeper.out"
        zk = node.start("zookeeper-server-start.sh", str(config), out=console,
                        env={"KAFKA_HEAP_OPTS": "-Xmx128m"})

        def listening():
            with socket.socket() as s:
                s.settimeout(1)
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_for(listening, 90, f"ZooKeeper on port {port}", zk, console)
        out = node.run("zookeeper-shell.sh", f"127.0.0.1:{port}", "ls", "/", timeout=90)
        assert "[zookeeper]" in out.stdout, out.stdout + out.stderr
        assert node.run("zookeeper-server-stop.sh", "--wait", "60", timeout=90).returncode == 0
        assert zk.wait(timeout=30) in (0, 143)
        assert not LOGGING_PROBLEMS.search(console.read_text()), console.read_text()[-3000:]
    finally:
        node.cleanup()
