"""kafka_metal.load (Load and ``kafka-metal load``) against a real single-node Kafka.

The Kafka is the session's plaintext single node (``kafka`` in conftest.py, shared with the consumer group
checks).
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

pytest.importorskip("confluent_kafka")
from kafka_metal import load  # noqa: E402
from local_kafka import NEEDS_JAVA, VENV_BIN  # noqa: E402

# a real Kafka from the distribution `kafka-metal dist build` assembles from Maven Central
pytestmark = [NEEDS_JAVA, pytest.mark.maven]


def test_load_loses_nothing(kafka):
    with load.Load(kafka.bootstrap, rate=300, partitions=3, replication_factor=1, min_isr=1) as run:
        # the first acknowledgement waits for the topic's leaders: seconds on a busy machine
        deadline = time.monotonic() + 60
        while run.progress()["acked"] == 0:
            assert time.monotonic() < deadline, "no record acknowledged within 60 s"
            time.sleep(0.2)
        time.sleep(5)
    report = run.report
    assert report.ok, report.problems()
    assert report.topic_created
    assert report.acked > 0 and report.consumed == report.acked == report.sent
    # paced at 300/s: at least 5 s of it, and no faster than the pace over the time it produced
    assert 1000 <= report.sent <= 300 * report.seconds + 50, (report.sent, report.seconds)
    # acknowledgements keep coming (a broker on a busy CPU still pauses for seconds: JIT, GC)
    assert report.longest_ack_gap_seconds < 15.0 and report.first_ack_seconds is not None
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
