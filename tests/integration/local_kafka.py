"""One real Kafka node on 127.0.0.1 for integration tests: unpacked from the dist cache, formatted, started
as its own process group and killed with it.

The archive is kafka_2.13-<VERSION>.tgz from `kafka-metal dist build` (built here when it is missing and
Maven is installed). Tests give the listener and security settings; :data:`SINGLE_NODE` holds the ones every
one-node cluster needs.
"""

from __future__ import annotations

import contextlib
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

VENV_BIN = Path(sys.executable).parent
VERSION = os.environ.get("KAFKA_METAL_ADMIN_TEST_VERSION", "4.1.1")
JAVA_HOME = os.environ.get("KAFKA_METAL_JAVA_HOME", "/usr/lib/jvm/java-17-openjdk-amd64")
NEEDS_JAVA = pytest.mark.skipif(not (Path(JAVA_HOME) / "bin" / "java").exists(), reason=f"no Java in {JAVA_HOME}")


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


def single_node(data: Path, controller_port: int) -> list:
    """Settings of a one-node combined cluster (replication factors of 1), without listeners and security."""
    props = [
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
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
    return props


def plaintext_node(data: Path, client_port: int, controller_port: int) -> str:
    """server.properties of a single plaintext node (combined broker and controller) on 127.0.0.1."""
    return "\n".join(single_node(data, controller_port) + [
        f"listeners=PLAINTEXT://127.0.0.1:{client_port},CONTROLLER://127.0.0.1:{controller_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{client_port}",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name=PLAINTEXT",
    ]) + "\n"


def scram_node(data: Path, client_port: int, controller_port: int, admin_password: str,
               mechanisms=("SCRAM-SHA-512",)) -> list:
    """A one-node cluster whose client listener takes SCRAM (``mechanisms``) over SASL_PLAINTEXT, the
    controller listener PLAIN, with the KRaft authorizer and `admin` as the only super user (no access
    unless an ACL allows it). Its storage is formatted with `admin`'s SCRAM-SHA-512 credential."""
    scram = ("org.apache.kafka.common.security.scram.ScramLoginModule required "
             f'username="admin" password="{admin_password}";')
    plain = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
             f'username="admin" password="{admin_password}" user_admin="{admin_password}";')
    enabled = ",".join(mechanisms)
    return single_node(data, controller_port) + [
        f"listeners=CLIENT://127.0.0.1:{client_port},CONTROLLER://127.0.0.1:{controller_port}",
        f"advertised.listeners=CLIENT://127.0.0.1:{client_port}",
        "listener.security.protocol.map=CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
        "inter.broker.listener.name=CLIENT",
        f"sasl.enabled.mechanisms={enabled}",
        "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
        "sasl.mechanism.controller.protocol=PLAIN",
        f"listener.name.client.sasl.enabled.mechanisms={enabled}",
        *(f"listener.name.client.{m.lower()}.sasl.jaas.config={scram}" for m in mechanisms),
        "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
        f"listener.name.controller.plain.sasl.jaas.config={plain}",
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users=User:admin",
        "allow.everyone.if.no.acl.found=false",
    ]


class LocalKafka:
    """``properties(data_dir, client_port, controller_port) -> str`` gives server.properties."""

    def __init__(self, workdir: Path, properties):
        self.workdir = workdir
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
        self.config.write_text(properties(workdir / "data", self.port, self.controller_port))
        self.console = workdir / "server.out"
        self.proc: subprocess.Popen | None = None

    def tool(self, name: str, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
        cp = subprocess.run([str(self.home / "bin" / name), *args], capture_output=True, text=True, env=self.env,
                            timeout=timeout, start_new_session=True)
        assert cp.returncode == 0, f"{name} exited {cp.returncode}:\n{cp.stdout[-2000:]}\n{cp.stderr[-2000:]}"
        return cp

    def start(self, *format_args: str) -> None:
        cluster_id = self.tool("kafka-storage.sh", "random-uuid").stdout.strip()
        self.tool("kafka-storage.sh", "format", "-t", cluster_id, "-c", str(self.config), *format_args)
        with open(self.console, "w") as out:
            self.proc = subprocess.Popen([str(self.home / "bin" / "kafka-server-start.sh"), str(self.config)],
                                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env,
                                         start_new_session=True)

    def wait_ready(self, client, timeout: float = 90) -> None:
        """Until ``client`` (an AdminClient) can describe the cluster; fails early if Kafka exits."""
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


class LocalCluster:
    """Several Kafka nodes on 127.0.0.1 sharing one unpacked archive: node 1 is a combined controller and
    broker, the others brokers, each with its own port and log directory (and ``racks`` when given). Plaintext;
    ``extra`` settings go to every node."""

    def __init__(self, workdir: Path, nodes: int = 4, racks=None, extra=()):
        self.workdir = workdir
        with tarfile.open(archive_path()) as tar:
            tar.extractall(workdir, filter="data")
        self.home = workdir / dist.dist_name(VERSION)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
        self.env.update(LC_ALL="C", JAVA_HOME=JAVA_HOME, KAFKA_HEAP_OPTS="-Xmx384m -Xms128m")
        ports = set()
        while len(ports) < nodes + 1:
            ports.add(free_port())
        ports = sorted(ports)
        self.controller_port, self.ports = ports[0], {n: ports[n] for n in range(1, nodes + 1)}
        self.bootstrap = ",".join(f"127.0.0.1:{p}" for p in self.ports.values())
        self.racks = racks or {}
        self.extra = list(extra)
        self.procs: dict[int, subprocess.Popen] = {}

    def data_dir(self, node: int) -> Path:
        return self.workdir / f"data{node}"

    def properties(self, node: int) -> str:
        roles = "broker,controller" if node == 1 else "broker"
        listeners = f"PLAINTEXT://127.0.0.1:{self.ports[node]}"
        if node == 1:
            listeners += f",CONTROLLER://127.0.0.1:{self.controller_port}"
        props = [
            f"process.roles={roles}", f"node.id={node}",
            f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
            "controller.listener.names=CONTROLLER", f"listeners={listeners}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.ports[node]}",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT", f"log.dirs={self.data_dir(node)}",
            "auto.create.topics.enable=false", "offsets.topic.replication.factor=3",
            "transaction.state.log.replication.factor=3", "transaction.state.log.min.isr=2",
            "group.initial.rebalance.delay.ms=0", "log.segment.bytes=1048576",
            "log.retention.check.interval.ms=5000", "log.initial.task.delay.ms=1000",
            "file.delete.delay.ms=1000",
        ]
        if node in self.racks:
            props.append(f"broker.rack={self.racks[node]}")
        return "\n".join(props + self.extra) + "\n"

    def tool(self, name: str, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
        cp = subprocess.run([str(self.home / "bin" / name), *args], capture_output=True, text=True,
                            env=dict(self.env, LOG_DIR=str(self.workdir / "logs-tools")), timeout=timeout,
                            start_new_session=True)
        assert cp.returncode == 0, f"{name} exited {cp.returncode}:\n{cp.stdout[-2000:]}\n{cp.stderr[-2000:]}"
        return cp

    def start(self, nodes=None) -> None:
        cluster_id = getattr(self, "cluster_id", None) or self.tool("kafka-storage.sh", "random-uuid").stdout.strip()
        self.cluster_id = cluster_id
        for node in nodes or self.ports:
            config = self.workdir / f"server{node}.properties"
            config.write_text(self.properties(node))
            if not (self.data_dir(node) / "meta.properties").exists():
                self.tool("kafka-storage.sh", "format", "-t", cluster_id, "-c", str(config))
            console = open(self.workdir / f"server{node}.out", "a")  # noqa: SIM115 - kept open for the process
            self.procs[node] = subprocess.Popen(
                [str(self.home / "bin" / "kafka-server-start.sh"), str(config)], stdout=console,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                env=dict(self.env, LOG_DIR=str(self.workdir / f"logs{node}")))

    def wait_ready(self, client, brokers: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for node, proc in self.procs.items():
                if proc.poll() is not None:
                    out = (self.workdir / f"server{node}.out").read_text()[-3000:]
                    raise AssertionError(f"node {node} exited ({proc.returncode}):\n{out}")
            try:
                if len(client.describe_cluster(request_timeout=2).result(timeout=5).nodes) >= brokers:
                    return
            except Exception:  # noqa: BLE001 - not ready yet
                pass
            time.sleep(0.5)
        raise AssertionError(f"{brokers} brokers not registered after {timeout}s")

    def stop(self, nodes=None) -> None:
        """Stop the nodes together (SIGTERM, then SIGKILL after 30 s)."""
        procs = [p for n, p in self.procs.items() if (nodes is None or n in nodes) and p.poll() is None]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for proc in procs:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and any(p.poll() is None for p in procs):
                time.sleep(0.2)
            procs = [p for p in procs if p.poll() is None]
            if not procs:
                return
