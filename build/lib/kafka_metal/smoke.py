"""Produce to a cluster and consume everything back, checking that nothing was lost.

Used by ``kafka-metal demo``, by Molecule's verify steps and by the integration tests, so
"the cluster works" always means the same thing: a topic with replication factor 3 (or the
broker count) and ``min.insync.replicas=2`` takes keyed messages with ``acks=all``, and a
consumer reads every one back, with keys and per-partition order intact.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field


class SmokeError(RuntimeError):
    pass


@dataclass
class SmokeResult:
    topic: str
    produced: int
    consumed: int
    partitions: int
    replication_factor: int
    produce_seconds: float
    consume_seconds: float
    problems: list = field(default_factory=list)

    @property
    def ok(self):
        return not self.problems and self.produced == self.consumed


def _admin(bootstrap, extra=None):
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap, **(extra or {})})


def broker_count(bootstrap, timeout=30.0, extra=None):
    md = _admin(bootstrap, extra).list_topics(timeout=timeout)
    return len(md.brokers)


def create_topic(bootstrap, topic, partitions, replication_factor, min_isr, timeout=60.0, extra=None):
    from confluent_kafka.admin import NewTopic

    admin = _admin(bootstrap, extra)
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=replication_factor,
                  config={"min.insync.replicas": str(min_isr)})],
        operation_timeout=timeout, request_timeout=timeout,
    )
    futures[topic].result(timeout=timeout)
    # Wait until every partition has a leader and a full ISR.
    deadline = time.monotonic() + timeout
    while True:
        md = admin.list_topics(topic=topic, timeout=timeout).topics[topic]
        parts = md.partitions or {}
        if (md.error is None and len(parts) == partitions
                and all(p.leader >= 0 and len(p.isrs) == replication_factor for p in parts.values())):
            return
        if time.monotonic() > deadline:
            raise SmokeError(f"topic {topic} did not get leaders and full ISRs within {timeout}s")
        time.sleep(0.5)


def run(bootstrap, messages=10_000, partitions=6, replication_factor=None, min_isr=2, topic=None,
        timeout=120.0, extra=None):
    """Create a fresh topic, produce ``messages`` keyed records with acks=all, consume them all."""
    from confluent_kafka import Consumer, KafkaException, Producer

    extra = dict(extra or {})
    if replication_factor is None:
        replication_factor = min(3, broker_count(bootstrap, extra=extra))
    min_isr = min(min_isr, replication_factor)
    topic = topic or f"kafka-metal-smoke-{uuid.uuid4().hex[:10]}"
    create_topic(bootstrap, topic, partitions, replication_factor, min_isr, extra=extra)

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                         "linger.ms": 5, "message.timeout.ms": int(timeout * 1000), **extra})
    errors, acked = [], {}

    def on_delivery(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            acked.setdefault(msg.partition(), []).append((msg.offset(), msg.key(), msg.value()))

    keys = 97  # spread over partitions; each key's messages must come back in order
    start = time.monotonic()
    for i in range(messages):
        key = f"key-{i % keys}".encode()
        value = f"{i}".encode()
        while True:
            try:
                producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(timeout)
    produce_seconds = time.monotonic() - start
    problems = []
    if remaining:
        problems.append(f"{remaining} messages still unacknowledged after {timeout}s")
    if errors:
        problems.append(f"{len(errors)} delivery errors, first: {errors[0]}")
    produced = sum(len(v) for v in acked.values())

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-check",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False, **extra})
    consumed = {}
    count = 0
    start = time.monotonic()
    try:
        consumer.subscribe([topic])
        while count < produced and time.monotonic() - start < timeout:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            consumed.setdefault(msg.partition(), []).append((msg.offset(), msg.key(), msg.value()))
            count += 1
        # Anything beyond what was produced would be a duplicate; give it a moment to show up.
        extra_deadline = time.monotonic() + 2.0
        while time.monotonic() < extra_deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                consumed.setdefault(msg.partition(), []).append((msg.offset(), msg.key(), msg.value()))
                count += 1
    finally:
        consumer.close()
    consume_seconds = time.monotonic() - start

    for part in sorted(set(acked) | set(consumed)):
        sent = sorted(acked.get(part, []))
        got = consumed.get(part, [])
        if got != sent:
            problems.append(f"partition {part}: produced {len(sent)} records, consumed {len(got)}; "
                            "offsets, keys or values differ")
        # per key order: values of a key increase along the partition
        last = {}
        for _off, key, value in got:
            v = int(value)
            if key in last and v <= last[key]:
                problems.append(f"partition {part}: key {key!r} out of order ({v} after {last[key]})")
                break
            last[key] = v
    if produced != messages:
        problems.append(f"asked to produce {messages}, {produced} were acknowledged")
    return SmokeResult(topic, produced, count, partitions, replication_factor, produce_seconds,
                       consume_seconds, problems)
