"""Continuous load with verification: prove that an operation (a rolling restart) loses nothing.

:class:`Load` produces paced, keyed records with ``acks=all`` and the idempotent producer to one
topic while a consumer reads the topic from the beginning, both in background threads, for as long
as the operation under test runs. :meth:`Load.stop` stops producing, flushes, lets the consumer
catch up and returns a :class:`LoadReport`:

* every record the producer saw acknowledged must be read back exactly once, at the offset it was
  acknowledged at, with offsets strictly increasing per partition and, within a partition, in the
  order it was produced (idempotence keeps that order across retries);
* a delivery error is a failure: with idempotence and a long ``message.timeout.ms`` librdkafka retries
  retriable errors itself and reports a record failed only when it gave up;
* a fatal client error is a failure; transient client errors (``_TRANSPORT``, ``_ALL_BROKERS_DOWN``
  while a broker restarts) are expected during a rolling restart and only counted;
* the longest stretch without any acknowledgement is the availability figure of the run.

The verdict is the pure function :func:`verify`, unit-tested with synthetic data. Each record's value
is ``b"<run id>:<seq>:"`` padded to ``payload_bytes``; records of other runs (a reused topic) are
skipped and counted as foreign.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

from . import smoke

KEYS = 50
TEXT_CAP = 20  # seqs listed in readable text; the JSON report has them all
EXAMPLES = 5  # distinct transient error texts kept

Progress = Callable[[str], None]

# librdkafka's own log lines (every refused connection while a broker restarts) go to this logger rather
# than to stderr; error_cb counts them anyway. Silent unless the application configures logging.
RDKAFKA_LOG = logging.getLogger("kafka_metal.load.rdkafka")
RDKAFKA_LOG.addHandler(logging.NullHandler())


class LoadError(RuntimeError):
    pass


# --------------------------------------------------------------------------------------------------
# The verdict: pure functions
# --------------------------------------------------------------------------------------------------


@dataclass
class Verification:
    acked: int
    consumed: int
    failed: list = field(default_factory=list)  # (seq, error)
    fatal_errors: list = field(default_factory=list)
    missing: list = field(default_factory=list)  # acked, never consumed
    missing_at: dict = field(default_factory=dict)  # seq -> (partition, offset acked; -1 when not reported)
    duplicates: list = field(default_factory=list)  # consumed more than once
    out_of_order: list = field(default_factory=list)  # partitions whose offsets did not strictly increase
    reordered: list = field(default_factory=list)  # partitions whose records are not in produce order
    misplaced: list = field(default_factory=list)  # read back, but never at the offset acknowledged
    unresolved: list = field(default_factory=list)  # sent, neither acked nor failed nor read back
    unacked_consumed: list = field(default_factory=list)  # information: read back without an ack

    @property
    def ok(self):
        return (self.acked > 0 and not self.failed and not self.fatal_errors and not self.missing
                and not self.duplicates and not self.out_of_order and not self.reordered and not self.misplaced
                and not self.unresolved)


def verify(acked: Iterable, consumed: Iterable, failed: Iterable = (), fatal_errors: Iterable = (),
           sent: int | None = None) -> Verification:
    """Check what was read back against what was acknowledged.

    ``acked``: ``(seq, partition, offset)`` per successful delivery report (extra items are ignored;
    an offset below 0 or None means the broker did not tell it). ``consumed``: ``(seq, partition, offset)``
    per record read, in the order read. ``failed``: ``(seq, error)`` per failed delivery.
    ``fatal_errors``: texts of fatal client errors. ``sent``: how many records were handed to the
    producer (seqs ``0..sent-1``); when given, records neither acknowledged, failed nor read back are
    ``unresolved`` (their fate is unknown, which does not prove anything).
    """
    acked_at = {}
    for seq, partition, offset, *_ in acked:
        # librdkafka reports no offset (None) for a retried batch the broker already had
        # (DUPLICATE_SEQUENCE_NUMBER, answered as a success): the record is acknowledged, its offset unknown
        acked_at[seq] = (partition, -1 if offset is None else offset)
    failed = [(seq, str(err)) for seq, err in failed]
    consumed = [(seq, partition, offset) for seq, partition, offset, *_ in consumed]

    seen = Counter(seq for seq, _p, _o in consumed)
    positions = defaultdict(set)
    last_offset, last_seq, bad_offsets, bad_order = {}, {}, set(), set()
    first = set()
    for seq, partition, offset in consumed:
        positions[seq].add((partition, offset))
        if partition in last_offset and offset <= last_offset[partition]:
            bad_offsets.add(partition)
        last_offset[partition] = offset
        if seq in first:
            continue  # a duplicate; reported as such
        first.add(seq)
        if partition in last_seq and seq < last_seq[partition]:
            bad_order.add(partition)
        last_seq[partition] = max(seq, last_seq.get(partition, seq))

    failed_seqs = {seq for seq, _ in failed}
    unresolved = []
    if sent is not None:
        unresolved = sorted(set(range(sent)) - set(acked_at) - failed_seqs - set(seen))
    return Verification(
        acked=len(acked_at),
        consumed=len(consumed),
        failed=failed,
        fatal_errors=[str(e) for e in fatal_errors],
        missing=sorted(set(acked_at) - set(seen)),
        missing_at={seq: acked_at[seq] for seq in sorted(set(acked_at) - set(seen))},
        duplicates=sorted(seq for seq, n in seen.items() if n > 1),
        out_of_order=sorted(bad_offsets),
        reordered=sorted(bad_order),
        misplaced=sorted(seq for seq, at in acked_at.items()
                         if seq in positions and at[1] >= 0 and at not in positions[seq]),
        unresolved=unresolved,
        unacked_consumed=sorted(set(seen) - set(acked_at)),
    )


def longest_gap(times: Iterable[float], start: float, end: float) -> float:
    """Longest interval within ``[start, end]`` that holds none of ``times``."""
    points = sorted(t for t in times if start <= t <= end)
    longest, previous = 0.0, start
    for t in [*points, end]:
        longest = max(longest, t - previous)
        previous = t
    return longest


def _seqs(seqs, cap=TEXT_CAP):
    shown = ", ".join(str(s) for s in seqs[:cap])
    return shown + (f", ... ({len(seqs) - cap} more)" if len(seqs) > cap else "")


# --------------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------------


@dataclass
class LoadReport:
    topic: str
    seconds: float  # producing, from start() to stop()
    sent: int
    acked: int
    consumed: int  # records of this run read back, duplicates included
    failed: list = field(default_factory=list)  # (seq, error): delivery reports with an error
    fatal_errors: list = field(default_factory=list)
    transient_errors: int = 0
    transient_examples: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    missing_at: dict = field(default_factory=dict)
    duplicates: list = field(default_factory=list)
    out_of_order: list = field(default_factory=list)
    reordered: list = field(default_factory=list)
    misplaced: list = field(default_factory=list)
    unresolved: list = field(default_factory=list)
    unacked_consumed: list = field(default_factory=list)
    foreign: int = 0  # records of other runs in the topic, skipped
    longest_ack_gap_seconds: float = 0.0  # from the first ack on: the longest time the cluster took no write
    first_ack_seconds: float | None = None  # from start(): client start-up (metadata, producer id)
    drain_seconds: float = 0.0
    rate: float = 0.0  # asked for, records/s
    partitions: int = 0
    replication_factor: int = 0
    min_isr: int | None = None
    topic_created: bool = False

    @classmethod
    def from_verification(cls, v: Verification, **kwargs) -> LoadReport:
        return cls(acked=v.acked, consumed=v.consumed, failed=v.failed, fatal_errors=v.fatal_errors,
                   missing=v.missing, missing_at=v.missing_at, duplicates=v.duplicates, out_of_order=v.out_of_order,
                   reordered=v.reordered, misplaced=v.misplaced, unresolved=v.unresolved,
                   unacked_consumed=v.unacked_consumed, **kwargs)

    @property
    def ok(self) -> bool:
        return not self.problems()

    def problems(self) -> list[str]:
        out = []
        if self.acked <= 0:
            out.append("no record was acknowledged")
        if self.failed:
            first_seq, first_err = self.failed[0]
            out.append(f"{len(self.failed)} records failed (delivery gave up), first: seq {first_seq}: {first_err}")
        for err in self.fatal_errors:
            out.append(f"fatal client error: {err}")
        if self.missing:
            # where each was acknowledged tells a lost write from a skipped read ("offset ?": a retried batch the
            # broker answered as one it already had, so no offset was reported)
            where = ", ".join(f"{seq} at partition {at[0]} offset {at[1] if at[1] >= 0 else '?'}"
                              for seq, at in list(self.missing_at.items())[:10])
            out.append(f"{len(self.missing)} acknowledged records not read back (missing): seq {_seqs(self.missing)}"
                       + (f"; acknowledged: {where}" if where else ""))
        if self.duplicates:
            out.append(f"{len(self.duplicates)} records read more than once: seq {_seqs(self.duplicates)}")
        if self.out_of_order:
            out.append(f"offsets not strictly increasing in partitions {_seqs(self.out_of_order)}")
        if self.reordered:
            out.append(f"records not in produce order in partitions {_seqs(self.reordered)}")
        if self.misplaced:
            out.append(f"{len(self.misplaced)} records read back at another offset than acknowledged: "
                       f"seq {_seqs(self.misplaced)}")
        if self.unresolved:
            out.append(f"{len(self.unresolved)} records neither acknowledged nor failed when the drain timeout "
                       f"passed, and not read back: seq {_seqs(self.unresolved)}")
        return out

    def notes(self) -> list[str]:
        """Information that is not a failure."""
        out = []
        if self.transient_errors:
            out.append(f"{self.transient_errors} transient client errors (expected while brokers restart), "
                       f"e.g. {'; '.join(self.transient_examples)}")
        if self.unacked_consumed:
            out.append(f"{len(self.unacked_consumed)} records read back without an acknowledgement (delivery "
                       f"reports not received before stop): seq {_seqs(self.unacked_consumed)}")
        if self.foreign:
            out.append(f"{self.foreign} records of other runs in topic {self.topic} skipped")
        return out

    def as_dict(self) -> dict:
        d = asdict(self)
        d["failed"] = [list(f) for f in self.failed]
        d["ok"] = self.ok
        d["problems"] = self.problems()
        d["notes"] = self.notes()
        return d

    def summary(self) -> str:
        return (f"{'OK' if self.ok else 'FAILED'}: topic {self.topic}, {self.seconds:.1f}s at {self.rate:g}/s: "
                f"sent {self.sent}, acked {self.acked}, consumed {self.consumed}, failed {len(self.failed)}, "
                f"missing {len(self.missing)}, duplicates {len(self.duplicates)}, "
                f"out-of-order partitions {len(self.out_of_order)}, fatal errors {len(self.fatal_errors)}, "
                f"transient errors {self.transient_errors}, "
                f"longest ack gap {self.longest_ack_gap_seconds:.2f}s")


# --------------------------------------------------------------------------------------------------
# The load
# --------------------------------------------------------------------------------------------------


class Load:
    """Produce at ``rate`` records/s and consume them back, in background threads, until :meth:`stop`."""

    def __init__(self, bootstrap, topic=None, extra=None, rate=200.0, partitions=6, replication_factor=3, min_isr=2,
                 payload_bytes=100, message_timeout_ms=300_000, keys=KEYS):
        if rate <= 0:
            raise ValueError("rate must be positive")
        if min_isr > replication_factor:
            raise ValueError(f"min_isr {min_isr} is larger than the replication factor {replication_factor}; "
                             "every acks=all write would fail")
        self.bootstrap = bootstrap
        self.topic = topic or f"kafka-metal-load-{uuid.uuid4().hex[:10]}"
        self.extra = dict(extra or {})
        self.rate = float(rate)
        self.partitions = partitions
        self.replication_factor = replication_factor
        self.min_isr = min_isr
        self.payload_bytes = payload_bytes
        self.message_timeout_ms = int(message_timeout_ms)
        self.keys = keys
        self.run_id = uuid.uuid4().hex[:12]
        self.topic_created = False
        self.report: LoadReport | None = None

        self._sent = 0
        self._acked = []  # (seq, partition, offset, monotonic time)
        self._failed = []  # (seq, error)
        self._consumed = []  # (seq, partition, offset)
        self._foreign = 0
        self._fatal = []
        self._transient = 0
        self._transient_examples = []
        self._closing = False
        self._lock = threading.Lock()  # client errors come from both threads
        self._stop_producing = threading.Event()
        self._stop_consuming = threading.Event()
        self._fatal_event = threading.Event()
        self._producer = self._consumer = None
        self._producer_thread = self._consumer_thread = None
        self._started = self._stopped = None

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Load:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

        if self._started is not None:
            raise LoadError("this load was started already")
        admin = smoke._admin(self.bootstrap, self.extra)
        # All topics, not this one by name: a metadata request for one topic may auto-create it.
        if self.topic not in admin.list_topics(timeout=30).topics:
            try:
                smoke.create_topic(self.bootstrap, self.topic, self.partitions, self.replication_factor, self.min_isr,
                                   extra=self.extra)
                self.topic_created = True
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
        # The broker that answers may not know a topic created a moment ago through another one (ZooKeeper
        # mode spreads metadata to the brokers afterwards): ask again until it does.
        deadline = time.monotonic() + 30
        while True:
            md = admin.list_topics(timeout=30).topics.get(self.topic)
            if md is not None or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if md is None:
            raise LoadError(f"topic {self.topic} is not in the cluster's metadata 30 s after it was created")
        if md.error is not None:
            raise LoadError(f"topic {self.topic}: {md.error}")
        self.partitions = len(md.partitions)
        self.replication_factor = len(md.partitions[0].replicas)

        self._consumer = Consumer({
            "log.connection.close": False, "logger": RDKAFKA_LOG, **self.extra,
            "bootstrap.servers": self.bootstrap, "group.id": f"kafka-metal-load-{self.run_id}",
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "error_cb": partial(self._client_error, "consumer"),
        })
        # assign(), not subscribe(): no group, no rebalance, every partition from its first offset.
        self._consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in sorted(md.partitions)])
        # One request in flight per broker: with several, librdkafka's idempotent producer answers an
        # OUT_OF_ORDER_SEQUENCE_NUMBER that follows another request's failure (a leader moving during a
        # restart) by bumping its epoch and sending the in-flight records again, which can write one twice.
        # The load proves that a roll loses and duplicates nothing, so it leaves no room for that.
        self._producer = Producer({
            "linger.ms": 5, "log.connection.close": False, "logger": RDKAFKA_LOG, **self.extra,
            "bootstrap.servers": self.bootstrap, "acks": "all", "enable.idempotence": True,
            "max.in.flight.requests.per.connection": 1,
            "message.timeout.ms": self.message_timeout_ms,
            "error_cb": partial(self._client_error, "producer"),
        })
        self._started = time.monotonic()
        self._consumer_thread = self._thread(self._consume_loop, "consumer")
        self._producer_thread = self._thread(self._produce_loop, "producer")
        return self

    def stop(self, drain_timeout=120.0, grace=2.0) -> LoadReport:
        """Stop producing; wait (at most ``drain_timeout`` s in all) for the acks and for the consumer
        to read every acknowledged record; keep reading ``grace`` s more to catch duplicates."""
        if self.report is not None:
            return self.report
        if self._started is None:
            raise LoadError("this load was not started")
        self._stopped = time.monotonic()
        deadline = self._stopped + drain_timeout
        self._stop_producing.set()
        self._producer_thread.join()
        remaining = self._producer.flush(max(0.0, deadline - time.monotonic()))
        flushed = time.monotonic()
        if remaining:
            self._closing = True  # the purge's delivery reports are not the cluster's verdict
            self._producer.purge()
            self._producer.poll(0)

        acked, consumed = set(), set()
        a_seen = c_seen = 0
        while True:
            a_now, c_now = len(self._acked), len(self._consumed)
            acked.update(seq for seq, *_ in self._acked[a_seen:a_now])
            consumed.update(seq for seq, *_ in self._consumed[c_seen:c_now])
            a_seen, c_seen = a_now, c_now
            if acked <= consumed or time.monotonic() >= deadline or not self._consumer_thread.is_alive():
                break
            time.sleep(0.1)
        time.sleep(grace)
        self._stop_consuming.set()
        self._consumer_thread.join()
        self._consumer.close()
        self._producer = self._consumer = None
        return self._make_report(flushed if remaining else None)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def progress(self) -> dict:
        sent, acked, failed = self._sent, len(self._acked), len(self._failed)
        return {"elapsed": time.monotonic() - self._started if self._started else 0.0, "sent": sent,
                "acked": acked, "failed": failed, "in_flight": sent - acked - failed,
                "consumed": len(self._consumed), "transient_errors": self._transient, "fatal_errors": len(self._fatal)}

    # ---- threads ---------------------------------------------------------------------------------

    def _thread(self, target, name):
        thread = threading.Thread(target=self._guard, args=(target, name), name=f"kafka-metal-load-{name}", daemon=True)
        thread.start()
        return thread

    def _guard(self, target, name):
        try:
            target()
        except Exception as exc:  # noqa: BLE001 - a dead thread must fail the run, not vanish
            self._fatal.append(f"{name} thread: {type(exc).__name__}: {exc}")
            self._fatal_event.set()

    def _value(self, seq):
        return f"{self.run_id}:{seq}:".encode().ljust(self.payload_bytes, b"x")

    def _produce_loop(self):
        interval = 1.0 / self.rate
        producer = self._producer
        next_due = time.monotonic()
        while not self._stop_producing.is_set() and not self._fatal_event.is_set():
            now = time.monotonic()
            if now < next_due:
                producer.poll(min(next_due - now, 0.1))
                continue
            if now - next_due > 1.0:  # fell behind (a full queue): resume the pace, no burst
                next_due = now
            if self._produce(producer, self._sent):
                next_due += interval
            producer.poll(0)

    def _produce(self, producer, seq):
        from confluent_kafka import KafkaException

        key = f"key-{seq % self.keys}".encode()
        while not self._stop_producing.is_set():
            try:
                producer.produce(self.topic, key=key, value=self._value(seq),
                                 on_delivery=partial(self._delivered, seq))
            except BufferError:  # local queue full: the cluster is not taking records; wait
                producer.poll(0.1)
                continue
            except KafkaException as exc:
                err = exc.args[0]
                if err.fatal():
                    self._fatal.append(f"producer: produce(): {err.name()}: {err.str()}")
                    self._fatal_event.set()
                    return False
                self._failed.append((seq, f"produce(): {err.name()}: {err.str()}"))
            self._sent = seq + 1
            return True
        return False

    def _delivered(self, seq, err, msg):
        if self._closing:
            return
        if err is not None:
            self._failed.append((seq, f"{err.name()}: {err.str()}"))
        else:
            self._acked.append((seq, msg.partition(), msg.offset(), time.monotonic()))

    def _client_error(self, source, err):
        text = f"{source}: {err.name()}: {err.str()}"
        if err.fatal():
            self._fatal.append(text)
            self._fatal_event.set()
            return
        with self._lock:
            self._transient += 1
            if len(self._transient_examples) < EXAMPLES and text not in self._transient_examples:
                self._transient_examples.append(text)

    def _consume_loop(self):
        from confluent_kafka import KafkaError

        prefix = f"{self.run_id}:".encode()
        consumer = self._consumer
        while not self._stop_consuming.is_set():
            for msg in consumer.consume(num_messages=500, timeout=0.2):
                err = msg.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        self._client_error("consumer", err)
                    continue
                value = msg.value() or b""
                if not value.startswith(prefix):
                    self._foreign += 1
                    continue
                seq = int(value[len(prefix):].split(b":", 1)[0])
                self._consumed.append((seq, msg.partition(), msg.offset()))

    # ---- report ----------------------------------------------------------------------------------

    def _make_report(self, flush_gave_up_at=None) -> LoadReport:
        v = verify([a[:3] for a in self._acked], list(self._consumed), list(self._failed), list(self._fatal),
                   sent=self._sent)
        ack_times = sorted(a[3] for a in self._acked)
        end = max([self._stopped, *ack_times[-1:], *([flush_gave_up_at] if flush_gave_up_at else [])])
        first = ack_times[0] if ack_times else None
        self.report = LoadReport.from_verification(
            v, topic=self.topic, seconds=round(self._stopped - self._started, 3), sent=self._sent,
            transient_errors=self._transient, transient_examples=list(self._transient_examples),
            foreign=self._foreign,
            longest_ack_gap_seconds=round(longest_gap(ack_times, self._started if first is None else first, end), 3),
            first_ack_seconds=None if first is None else round(first - self._started, 3),
            drain_seconds=round(time.monotonic() - self._stopped, 3), rate=self.rate, partitions=self.partitions,
            replication_factor=self.replication_factor, min_isr=self.min_isr, topic_created=self.topic_created)
        return self.report


def run(bootstrap, duration, topic=None, rate=200.0, extra=None, partitions=6, replication_factor=None, min_isr=2,
        payload_bytes=100, message_timeout_ms=300_000, drain_timeout=120.0, progress: Progress | None = None,
        progress_every=5.0) -> LoadReport:
    """Run a :class:`Load` for ``duration`` seconds, calling ``progress`` with a line every ``progress_every`` s.

    ``replication_factor=None``: three, or the broker count when smaller; ``min_isr`` is capped to it.
    Ctrl-C ends the run early; the records sent so far are still verified.
    """
    if replication_factor is None:
        replication_factor = min(3, smoke.broker_count(bootstrap, extra=extra))
    load = Load(bootstrap, topic=topic, extra=extra, rate=rate, partitions=partitions,
                replication_factor=replication_factor, min_isr=min(min_isr, replication_factor),
                payload_bytes=payload_bytes, message_timeout_ms=message_timeout_ms)
    load.start()
    if progress:
        progress(f"load: topic {load.topic} ({load.partitions} partitions, RF {load.replication_factor}, "
                 f"{'created' if load.topic_created else 'existing'}), {rate:g} records/s for {duration:g}s")
    end = time.monotonic() + duration
    last = load.progress()
    try:
        while (now := time.monotonic()) < end:
            time.sleep(min(progress_every, end - now))
            if progress:
                p = load.progress()
                span = max(p["elapsed"] - last["elapsed"], 1e-9)
                progress(f"  {p['elapsed']:6.0f}s: acked {p['acked']} ({(p['acked'] - last['acked']) / span:.0f}/s), "
                         f"in flight {p['in_flight']}, consumed {p['consumed']}, failed {p['failed']}, "
                         f"transient errors {p['transient_errors']}, fatal {p['fatal_errors']}")
                last = p
    except KeyboardInterrupt:
        if progress:
            progress("load: interrupted; draining and verifying what was sent")
    if progress:
        progress("load: stopping, draining")
    return load.stop(drain_timeout=drain_timeout)


# --------------------------------------------------------------------------------------------------
# Java client properties (--command-config) to librdkafka settings
# --------------------------------------------------------------------------------------------------

_JAAS_OPTION = re.compile(r'\b(username|password)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s;"]+))')


def jaas_credentials(jaas: str) -> dict:
    """``username`` and ``password`` of a JAAS line (Kafka's quoting: backslash escapes in double quotes)."""
    found = {}
    for name, quoted, bare in _JAAS_OPTION.findall(jaas):
        found.setdefault(name, re.sub(r"\\(.)", r"\1", quoted) if quoted or not bare else bare)
    return found


def librdkafka_settings(props: dict) -> dict:
    """librdkafka settings for Kafka Java client properties (those of ``--command-config``).

    Handled: security.protocol, sasl.mechanism, sasl.jaas.config (username/password), a PEM
    ssl.truststore.location (or inline ssl.truststore.certificates), ssl.endpoint.identification.algorithm.
    A JKS or PKCS12 truststore cannot be read by librdkafka: that raises :class:`LoadError`.
    """
    conf = {}
    if props.get("security.protocol"):
        conf["security.protocol"] = props["security.protocol"].strip()
    mechanism = (props.get("sasl.mechanism") or "").strip()
    if mechanism:
        conf["sasl.mechanism"] = mechanism
    if props.get("sasl.jaas.config"):
        creds = jaas_credentials(props["sasl.jaas.config"])
        if "username" in creds:
            conf["sasl.username"] = creds["username"]
        if "password" in creds:
            conf["sasl.password"] = creds["password"]
    if conf.get("security.protocol", "").upper().startswith("SASL") and \
            (mechanism.upper() == "PLAIN" or mechanism.upper().startswith("SCRAM-")):
        missing = [k for k in ("username", "password") if not conf.get(f"sasl.{k}")]
        if missing:
            given = "an empty or no " + " or ".join(missing) if props.get("sasl.jaas.config") else "none"
            raise LoadError(f"sasl.mechanism {mechanism} needs a {' and a '.join(missing)}, and sasl.jaas.config "
                            f'gives {given}: set sasl.jaas.config to ...LoginModule required username="USER" '
                            'password="PASSWORD";')
    store_type = (props.get("ssl.truststore.type") or "").strip().upper()
    if props.get("ssl.truststore.certificates"):
        conf["ssl.ca.pem"] = props["ssl.truststore.certificates"]
    elif props.get("ssl.truststore.location"):
        location = props["ssl.truststore.location"].strip()
        if store_type and store_type != "PEM":
            raise LoadError(f"ssl.truststore.type {store_type}: librdkafka reads PEM truststores only; "
                            "convert it (keytool -exportcert -rfc) and set ssl.truststore.type=PEM")
        if not store_type:
            try:
                head = Path(location).read_bytes()[:4096]
            except OSError as exc:
                raise LoadError(f"ssl.truststore.location {location}: {exc.strerror}") from exc
            if b"-----BEGIN" not in head:
                raise LoadError(f"ssl.truststore.location {location} is not PEM (Java's default type is JKS); "
                                "librdkafka reads PEM truststores only")
        conf["ssl.ca.location"] = location
    if "ssl.endpoint.identification.algorithm" in props:
        algorithm = props["ssl.endpoint.identification.algorithm"].strip().lower()
        conf["ssl.endpoint.identification.algorithm"] = algorithm or "none"
    return conf


def client_settings(bootstrap, command_config=None) -> dict:
    """librdkafka settings for ``--bootstrap-server`` and ``--command-config`` (LoadError names the file)."""
    conf = {"bootstrap.servers": bootstrap}
    if command_config:
        try:
            conf.update(read_command_config(command_config))
        except (OSError, LoadError) as exc:
            raise LoadError(f"--command-config {command_config}: {exc}") from None
    return conf


def read_command_config(path) -> dict:
    """librdkafka settings from a Java-style client properties file (Kafka tools' ``--command-config``)."""
    from ansible_collections.metal.kafka.plugins.module_utils import properties

    return librdkafka_settings(properties.parse(Path(path).read_text()))


def describe_settings(conf: dict) -> str:
    """The settings for display, without secrets."""
    return ", ".join(f"{k}={'***' if 'password' in k or k == 'ssl.ca.pem' else v}" for k, v in sorted(conf.items()))
