"""Consumer groups against a real single-node Kafka (the session's plaintext node): lag in records and in
seconds, the verdicts (an idle group that read everything is OK, a stopped group with records waiting is
stopped, members that commit nothing are stalled), and resets (dry run by default, refused while the group has
members, committed with --execute)."""

from __future__ import annotations

import subprocess
import time
import uuid

import pytest

pytest.importorskip("confluent_kafka")
from ansible_collections.metal.kafka.plugins.module_utils import groups_kafka, lag  # noqa: E402
from confluent_kafka import Consumer, Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from local_kafka import NEEDS_JAVA, VENV_BIN  # noqa: E402

pytestmark = [NEEDS_JAVA, pytest.mark.maven]
RECORDS = 600
WRITTEN = {}


def topic_written():
    return WRITTEN["at"]


@pytest.fixture(scope="module")
def topic(kafka):
    name = f"groups-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    admin.create_topics([NewTopic(name, 3, 1)])[name].result(30)
    producer = Producer({"bootstrap.servers": kafka.bootstrap, "linger.ms": 5})
    for i in range(RECORDS):
        producer.produce(name, key=str(i).encode(), value=b"v" * 100)
    assert producer.flush(30) == 0
    WRITTEN["at"] = time.time()  # the records' ages grow from here
    return name


def consume(kafka, topic, group, count, close=True):
    """Read ``count`` records in ``group`` and commit them; the consumer is returned when kept open."""
    consumer = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe([topic])
    got, deadline = 0, time.monotonic() + 60
    while got < count and time.monotonic() < deadline:
        for msg in consumer.consume(min(100, count - got), timeout=1):
            if msg.error() is None:
                got += 1
    consumer.commit(asynchronous=False)
    assert got == count
    if close:
        consumer.close()
        return None
    return consumer


def test_lag_verdicts_and_seconds(kafka, topic):
    idle = f"idle-{uuid.uuid4().hex[:6]}"
    halted = f"halted-{uuid.uuid4().hex[:6]}"
    consume(kafka, topic, idle, RECORDS)
    consume(kafka, topic, halted, RECORDS // 2)
    time.sleep(4)
    groups = groups_kafka.Groups({"bootstrap.servers": kafka.bootstrap})
    listed = {g["group"]: g["state"] for g in groups.list()}
    assert listed[idle] == "EMPTY" and listed[halted] == "EMPTY"
    judged = groups.lag([idle, halted], samples=2, interval=1.0)
    assert judged[idle].verdict == lag.OK and judged[idle].lag == 0 and judged[idle].seconds == 0.0
    h = judged[halted]
    # it read (and committed) RECORDS // 2 records; a partition it never committed on has no lag to give
    assert h.verdict == lag.STOPPED and h.lag == sum(p.end for p in h.partitions) - RECORDS // 2 > 0
    assert all(p.lag >= 0 for p in h.partitions)
    age = time.time() - topic_written()
    # the age of the next record to read: written just before the time recorded (a second at most)
    assert age - 0.5 <= h.seconds <= age + 1.5, (h.seconds, age)


def test_members_that_commit_nothing_are_stalled_and_a_reset_is_refused(kafka, topic):
    group = f"stuck-{uuid.uuid4().hex[:6]}"
    consumer = consume(kafka, topic, group, 100, close=False)
    try:
        consumer.pause(consumer.assignment())
        groups = groups_kafka.Groups({"bootstrap.servers": kafka.bootstrap})
        judged = groups.lag([group], samples=3, interval=1.0)[group]
        assert judged.verdict == lag.STALLED and judged.members == 1, judged.as_dict()
        out = subprocess.run([str(VENV_BIN / "kafka-metal"), "groups", "reset", group, "--to-earliest", "--execute",
                              "--bootstrap-server", kafka.bootstrap], capture_output=True, text=True, timeout=120)
        assert out.returncode == 2 and f"group {group} has 1 active members" in out.stderr, out.stderr
    finally:
        consumer.close()


def test_reset_is_a_dry_run_unless_executed(kafka, topic):
    group = f"reset-{uuid.uuid4().hex[:6]}"
    consume(kafka, topic, group, RECORDS)
    groups = groups_kafka.Groups({"bootstrap.servers": kafka.bootstrap})
    before = groups.committed([group])[group]
    cmd = [str(VENV_BIN / "kafka-metal"), "groups", "reset", group, "--shift-by", "-10", "--bootstrap-server",
           kafka.bootstrap]
    dry = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0 and "dry run: nothing changed" in dry.stdout, dry.stdout + dry.stderr
    assert groups.committed([group])[group] == before
    done = subprocess.run([*cmd, "--execute"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    after = groups.committed([group])[group]
    assert after == {tp: max(0, o - 10) for tp, o in before.items()}
    judged = groups.lag([group], samples=1)[group]
    assert judged.lag == 10 * len(before) and judged.verdict == lag.STOPPED
    listing = subprocess.run([str(VENV_BIN / "kafka-metal"), "groups", "list", "--bootstrap-server",
                              kafka.bootstrap], capture_output=True, text=True, timeout=120)
    assert f"{group}  EMPTY" in listing.stdout, listing.stdout


def test_groups_at_different_offsets_of_one_partition_have_their_own_age(kafka):
    from confluent_kafka import KafkaException, TopicPartition

    name = f"ages-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(30)
    producer = Producer({"bootstrap.servers": kafka.bootstrap})
    written = []
    for batch in range(2):  # offsets 0-9 written 4 s before offsets 10-19
        if batch:
            time.sleep(4)
        for _ in range(10):
            producer.produce(name, value=b"v")
        assert producer.flush(30) == 0
        written.append(time.time())
    early, late = f"early-{uuid.uuid4().hex[:6]}", f"late-{uuid.uuid4().hex[:6]}"
    for group, offset in ((early, 5), (late, 15)):  # consumers that commit where they stopped, and leave
        consumer = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": group, "enable.auto.commit": False})
        deadline = time.monotonic() + 60
        while True:  # a node that just started may still be loading its group coordinators
            try:
                consumer.commit(offsets=[TopicPartition(name, 0, offset)], asynchronous=False)
                break
            except KafkaException:
                assert time.monotonic() < deadline
                time.sleep(1)
        consumer.close()
    judged = groups_kafka.Groups({"bootstrap.servers": kafka.bootstrap}).lag([early, late], samples=1)
    now = time.time()
    assert judged[early].lag == 15 and judged[late].lag == 5
    assert now - written[0] - 0.5 <= judged[early].seconds <= now - written[0] + 1.5, (judged[early], written)
    assert now - written[1] - 0.5 <= judged[late].seconds <= now - written[1] + 1.5, (judged[late], written)


def test_both_clients_read_the_same_committed_offsets(kafka, topic):
    """The project's own client (FindCoordinator and OffsetFetch) and librdkafka's, kept for settings the former
    cannot follow, read the same committed offsets."""
    group = f"both-{uuid.uuid4().hex[:6]}"
    consume(kafka, topic, group, RECORDS // 3)
    own = groups_kafka.Groups({"bootstrap.servers": kafka.bootstrap})
    fallback = groups_kafka.Groups({"bootstrap.servers": kafka.bootstrap})
    fallback.security = None
    failed = {}
    assert own.committed([group], failed) == fallback.committed([group], failed) and not failed
    assert sum(own.committed([group])[group].values()) == RECORDS // 3
