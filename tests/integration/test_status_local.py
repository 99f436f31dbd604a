"""`kafka-metal status` against a real single-node Kafka (the session's plaintext node): a healthy cluster is OK
run after run; a topic whose replication factor is below its min.insync.replicas turns the same run CRITICAL and
is named; a group that read everything and stays idle is OK and no lag is ever negative while records are
written; `--prometheus-file` writes metrics that parse; `--serve` answers scrapes with the contract's names.
The session cluster is shared: every topic and group here has a unique name and is deleted at the end."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
import uuid

import pytest

pytest.importorskip("confluent_kafka")
from ansible_collections.metal.kafka.plugins.module_utils import status as status_rules  # noqa: E402
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from local_kafka import NEEDS_JAVA, VENV_BIN, free_port  # noqa: E402

pytestmark = [NEEDS_JAVA, pytest.mark.maven]
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (-?[0-9.e+]+|NaN|[+-]Inf)$')
CONTRACT = set(status_rules.HELP)  # the metric names; tests/unit/test_status.py pins them one by one


def disk_options(kafka):
    """The disk limits, raised past this machine's own fullness (not the cluster's doing) when it is high."""
    usage = shutil.disk_usage(kafka.workdir)
    return [] if usage.used / usage.total < 0.80 else ["--disk-warning", "99.9", "--disk-critical", "100"]


def status(kafka, *args, timeout=60):
    return subprocess.run([str(VENV_BIN / "kafka-metal"), "status", "--bootstrap-server", kafka.bootstrap,
                           *disk_options(kafka), *args], capture_output=True, text=True, timeout=timeout)


def samples(text):
    """{name{labels}: value} of Prometheus text; fails on a line that is neither a HELP/TYPE comment nor a sample,
    or on a sample whose family has no TYPE."""
    typed, out = set(), {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            assert line.split()[3] == "gauge", line
            typed.add(line.split()[2])
            continue
        m = SAMPLE.match(line)
        assert m and m.group(1) in typed, f"bad line {line!r}"
        out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out, typed


@pytest.fixture
def admin(kafka):
    return AdminClient({"bootstrap.servers": kafka.bootstrap})


def test_a_healthy_cluster_is_ok_ten_runs_in_a_row(kafka):
    for run in range(10):
        cp = status(kafka, "--no-groups")
        assert cp.returncode == 0, f"run {run + 1}:\n{cp.stdout}{cp.stderr}"
    report = json.loads(status(kafka, "--no-groups", "--json").stdout)
    snap = report["snapshot"]
    assert report["level"] == "OK" and snap["mode"] == "kraft" and snap["brokers_source"] == "DescribeCluster v2"
    assert snap["brokers"] == [{"id": 1, "host": "127.0.0.1", "port": kafka.port, "rack": None, "fenced": False}]
    assert snap["quorum"]["leader_id"] == 1 and [v["id"] for v in snap["quorum"]["voters"]] == [1]
    assert [(d["broker"], d["error"]) for d in snap["log_dirs"]] == [(1, None)]
    assert snap["log_dirs"][0]["total_bytes"] > snap["log_dirs"][0]["usable_bytes"] > 0
    assert snap["reassignments"] == [] and snap["throttles"] == {"brokers": {}, "topics": {}}


def test_a_partition_below_its_min_isr_is_critical_and_named(kafka, admin, tmp_path):
    topic = f"status-minisr-{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(topic, 1, 1, config={"min.insync.replicas": "2"})])[topic].result(30)
    prom = tmp_path / "kafka.prom"
    try:
        cp = status(kafka, "--no-groups", "--prometheus-file", str(prom))
        assert cp.returncode == 2, cp.stdout + cp.stderr
        assert "partitions:\n  CRITICAL 1 partition under min.insync.replicas" in cp.stdout
        assert f"{topic}-0 (in sync [1], min.insync.replicas 2, only 1 replica" in cp.stdout
        values, typed = samples(prom.read_text())
        assert set(typed) == CONTRACT
        assert values['kafka_metal_partitions{state="under_min_isr"}'] == 1
        assert values["kafka_metal_status_level"] == 2 and values["kafka_metal_status_up"] == 1
    finally:
        admin.delete_topics([topic])[topic].result(30)
    deadline = time.monotonic() + 20
    while (cp := status(kafka, "--no-groups")).returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.5)  # until the deletion reaches the metadata
    assert cp.returncode == 0, cp.stdout


def test_an_idle_group_that_read_everything_is_ok_and_lag_is_never_negative(kafka, admin):
    topic, group = f"status-groups-{uuid.uuid4().hex[:8]}", f"status-idle-{uuid.uuid4().hex[:6]}"
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": kafka.bootstrap, "linger.ms": 5})
    try:
        for i in range(90):
            producer.produce(topic, key=str(i).encode(), value=b"v")
        assert producer.flush(30) == 0
        consumer = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": group,
                             "auto.offset.reset": "earliest", "enable.auto.commit": False})
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(3)])  # no rebalance to wait for
        got, deadline = 0, time.monotonic() + 30
        while got < 90 and time.monotonic() < deadline:
            got += sum(1 for m in consumer.consume(100, timeout=1) if m.error() is None)
        consumer.commit(asynchronous=False)
        consumer.close()
        assert got == 90
        # read everything, no member left, nothing new: OK (not stopped), lag 0 records and 0 s
        report = json.loads(status(kafka, "--json", "--samples", "2", "--interval", "0.5").stdout)
        mine = next(g for g in report["snapshot"]["groups"] if g["group"] == group)
        assert mine["verdict"] == "OK" and mine["lag"] == 0 and mine["seconds"] == 0.0 and mine["members"] == 0
        assert not [f for f in report["findings"] if group in f["message"]]
        # records written during the read: the committed offsets are read before the log ends, never after
        stop = threading.Event()

        def write():
            while not stop.is_set():
                producer.produce(topic, value=b"w")
                producer.poll(0.005)

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        try:
            report = json.loads(status(kafka, "--json", "--samples", "3", "--interval", "0.3").stdout)
        finally:
            stop.set()
            writer.join()
            producer.flush(30)
        groups = report["snapshot"]["groups"]
        assert all(p["lag"] is None or p["lag"] >= 0 for g in groups for p in g["partitions"])
        assert all(g["lag"] >= 0 and g["seconds"] >= 0 for g in groups)
        mine = next(g for g in groups if g["group"] == group)
        assert mine["lag"] > 0 and mine["verdict"] == "stopped", mine  # records wait, nobody reads them
        assert {f["level"] for f in report["findings"] if group in f["message"]} == {"WARNING"}
    finally:
        admin.delete_consumer_groups([group])[group].exception(30)
        admin.delete_topics([topic])[topic].result(30)


def test_the_endpoint_answers_scrapes_with_the_contract_metrics(kafka):
    port = free_port()
    proc = subprocess.Popen([str(VENV_BIN / "kafka-metal"), "status", "--bootstrap-server", kafka.bootstrap,
                             "--serve", f"127.0.0.1:{port}", "--cache", "0"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert "serving http://127.0.0.1:" in proc.stderr.readline()
        for _ in range(2):  # the second scrape judges the groups over the two
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as answer:
                assert answer.status == 200
                values, typed = samples(answer.read().decode())
        assert set(typed) == CONTRACT
        assert values["kafka_metal_status_up"] == 1 and values["kafka_metal_quorum_leader_id"] == 1
        assert values['kafka_metal_brokers{state="registered"}'] == 1
        assert values['kafka_metal_broker_fenced{broker="1"}'] == 0
        assert values["kafka_metal_partitions_total"] > 0
        assert all(v >= 0 for k, v in values.items() if k.startswith("kafka_metal_consumergroup_lag"))
        # the reads run in a child process: when it dies (librdkafka can abort a process), the endpoint says
        # so with up 0, starts a new one, and reads again
        found = subprocess.run(["pgrep", "-P", str(proc.pid), "-f", "spawn_main"], capture_output=True, text=True)
        [child] = [int(pid) for pid in found.stdout.split()]
        os.kill(child, signal.SIGKILL)
        seen, deadline = [], time.monotonic() + 60
        while time.monotonic() < deadline and seen[-1:] != [1] or 0 not in seen:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as answer:
                up = samples(answer.read().decode())[0]["kafka_metal_status_up"]
            if not seen or seen[-1] != up:
                seen.append(up)
            assert time.monotonic() < deadline, seen
            time.sleep(0.2)
        assert seen[-2:] == [0, 1] and proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stderr.close()


def test_an_unreachable_cluster_is_unknown_and_the_endpoint_says_down(tmp_path):
    port = free_port()
    prom = tmp_path / "down.prom"
    cp = subprocess.run([str(VENV_BIN / "kafka-metal"), "status", "--bootstrap-server", f"127.0.0.1:{port}",
                         "--prometheus-file", str(prom)], capture_output=True, text=True, timeout=60)
    assert cp.returncode == 3 and "UNKNOWN  the cluster could not be read: no bootstrap server answered" in cp.stdout
    values, _ = samples(prom.read_text())
    assert values == {"kafka_metal_status_up": 0, "kafka_metal_status_duration_seconds": values[
        "kafka_metal_status_duration_seconds"], "kafka_metal_status_age_seconds": 0, "kafka_metal_status_level": 3}
