"""kafka_metal.load (Load and ``kafka-metal load``) against a real single-node Kafka.

The fixture unpacks kafka_2.13-4.1.1.tgz from the dist cache (as test_kafka_admin_modules.py does,
building it when it is missing and Maven is there), formats one combined broker+controller on
127.0.0.1 with a PLAINTEXT client listener and starts it; it is killed as a process group at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from kafka_metal import dist

pytest.importorskip("confluent_kafka")
from confluent_kafka import admin as ck_admin  # noqa: E402
from kafka_metal import load  # noqa: E402

VENV_BIN = Path(sys.executable).parent
VERSION = os.environ.get("KAFKA_METAL_ADMIN_TEST_VERSION", "4.1.1")
JAVA_HOME = os.environ.get("KAFKA_METAL_JAVA_HOME", "/usr/lib/jvm/java-17-openjdk-amd64")

pytestmark = pytest.mark.skipif(not (Path(JAVA_HOME) / "bin" / "java").exists(), reason=f"no Java in {JAVA_HOME}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def archive_path() -> Path:
    archive = dist.default_out_dir() / f"{dist.dist_name(VERSION)}.tgz"
    if archive.is_file():
        return archive
    if not shutil.which("mvn"):
        pytest.skip(f"{archive} is missing and Maven is not installed to build it")
    subprocess.run([str(VENV_BIN / "kafka-metal"), "dist", "build", "--version", VERSION], check=True,
                   timeout=1800, capture_output=True)
    return archive


def server_properties(data: Path, client_port: int, controller_port: int) -> str:
    props = [
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
        f"listeners=PLAINTEXT://127.0.0.1:{client_port},CONTROLLER://127.0.0.1:{controller_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{client_port}",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name=PLAINTEXT",
        "controller.listener.names=CONTROLLER",
        "auto.create.topics.enable=false",
        f"log.dirs={data}",
        "num.partitions=1",
        "default.replication.factor=1",
        "offsets.topic.replication.factor=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
    ]
    if not VERSION.startswith("3."):
        props += ["share.coordinator.state.topic.replication.factor=1", "share.coordinator.state.topic.min.isr=1"]
    return "\n".join(props) + "\n"


class Kafka:
    def __init__(self, workdir: Path):
        with tarfile.open(archive_path()) as tar:
            tar.extractall(workdir, filter="data")
        self.home = workdir / dist.dist_name(VERSION)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
        self.env.update(LC_ALL="C", JAVA_HOME=JAVA_HOME, LOG_DIR=str(workdir / "logs"),
                        KAFKA_HEAP_OPTS="-Xmx512m -Xms128m")
        self.port, self.controller_port = free_port(), free_port()
        while self.controller_port == self.port:
            self.controller_port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.config = workdir / "server.properties"
        self.config.write_text(server_properties(workdir / "data", self.port, self.controller_port))
        self.console = workdir / "server.out"
        self.proc: subprocess.Popen | None = None

    def tool(self, name: str, *args: str) -> str:
        cp = subprocess.run([str(self.home / "bin" / name), *args], capture_output=True, text=True, env=self.env,
                            timeout=120, start_new_session=True)
        assert cp.returncode == 0, f"{name} exited {cp.returncode}:\n{cp.stdout[-2000:]}\n{cp.stderr[-2000:]}"
        return cp.stdout

    def start(self) -> None:
        cluster_id = self.tool("kafka-storage.sh", "random-uuid").strip()
        self.tool("kafka-storage.sh", "format", "-t", cluster_id, "-c", str(self.config))
        with open(self.console, "w") as out:
            self.proc = subprocess.Popen([str(self.home / "bin" / "kafka-server-start.sh"), str(self.config)],
                                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env,
                                         start_new_session=True)

    def wait_ready(self, timeout: float = 90) -> None:
        client = ck_admin.AdminClient({"bootstrap.servers": self.bootstrap})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"Kafka exited ({self.proc.returncode}):\n{self.console.read_text()[-4000:]}")
            try:
                client.describe_cluster(request_timeout=2).result(timeout=5)
                return
            except Exception:  # noqa: BLE001 - not ready yet
                time.sleep(0.5)
        raise AssertionError(f"Kafka not ready after {timeout}s:\n{self.console.read_text()[-4000:]}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 30)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue


@pytest.fixture(scope="module")
def kafka(tmp_path_factory):
    node = Kafka(tmp_path_factory.mktemp("kafka-load"))
    try:
        node.start()
        node.wait_ready()
        yield node
    finally:
        node.stop()


def test_load_loses_nothing(kafka):
    with load.Load(kafka.bootstrap, rate=300, partitions=3, replication_factor=1, min_isr=1) as run:
        time.sleep(5)
        assert run.progress()["acked"] > 0
    report = run.report
    assert report.ok, report.problems()
    assert report.topic_created
    assert report.acked > 0 and report.consumed == report.acked == report.sent
    assert 1000 <= report.sent <= 1700  # paced at 300/s for ~5 s
    assert report.longest_ack_gap_seconds < 2.0 and report.first_ack_seconds is not None
    assert report.summary().startswith("OK")

    # The same topic again: the first run's records are skipped as foreign, not taken for duplicates.
    again = load.Load(kafka.bootstrap, topic=report.topic, rate=200, replication_factor=1, min_isr=1).start()
    time.sleep(1)
    second = again.stop()
    assert second.ok, second.problems()
    assert not second.topic_created and second.partitions == 3
    assert second.foreign == report.consumed


def test_load_command(kafka, tmp_path):
    out = tmp_path / "report.json"
    config = tmp_path / "client.properties"
    config.write_text("# Kafka client settings\nsecurity.protocol=PLAINTEXT\n")
    cp = subprocess.run([str(VENV_BIN / "kafka-metal"), "load", "--bootstrap-server", kafka.bootstrap,
                         "--topic", "load-cli", "--rate", "100", "--duration", "5.5", "--partitions", "2",
                         "--command-config", str(config), "--report", str(out)],
                        capture_output=True, text=True, timeout=120)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "OK: topic load-cli" in cp.stdout
    assert "5s: acked" in cp.stdout  # the progress line every 5 s
    assert "client settings from" in cp.stdout and "security.protocol=PLAINTEXT" in cp.stdout
    report = json.loads(out.read_text())
    assert report["ok"] is True and report["problems"] == []
    assert report["replication_factor"] == 1 and report["partitions"] == 2
    assert report["acked"] > 0 and report["consumed"] == report["acked"]
