# Copyright: kafka-metal contributors
# Apache License 2.0
"""Consumer groups read and reset through Kafka's admin API (confluent-kafka): their states and members, their
committed offsets, the log end offsets they are compared with, the age of the record a group has reached, and
offset resets. The rules (lag, verdicts, reset targets) are pure, in :mod:`lag` and :func:`reset_targets`.
"""

from __future__ import annotations

import time
import uuid

from . import kafka_admin, wire
from . import lag as lag_rules

ACTIVE_STATES = ("STABLE", "PREPARING_REBALANCING", "COMPLETING_REBALANCING")


class GroupError(Exception):
    """The groups cannot be read or changed; the message says why and what to do."""


def reset_targets(committed, earliest, latest, to=None, shift=None, at_time=None):
    """The new offset of each partition for a reset: ``to`` is ``earliest`` or ``latest``, or ``shift`` moves
    each committed offset by that many records (clamped to the log), or ``at_time`` gives each partition's
    offset for a time (``None``: past the last record, so the log end). ``committed``/``earliest``/``latest``
    map (topic, partition) to offsets."""
    out = {}
    for tp in sorted(set(earliest) & set(latest)):
        lo, hi = earliest[tp], latest[tp]
        if to == "earliest":
            new = lo
        elif to == "latest":
            new = hi
        elif shift is not None:
            base = committed.get(tp)
            if base is None or base < 0:
                base = hi if shift < 0 else lo
            new = base + shift
        elif at_time is not None:
            new = at_time.get(tp)
            new = hi if new is None or new < 0 else new
        else:
            raise ValueError("say where to reset to: earliest, latest, a time, or a shift")
        out[tp] = min(max(new, lo), hi)
    return out


class Groups:
    def __init__(self, conf, timeout=30.0):
        self.conf = dict(conf)
        try:
            self._admin_mod, self.quiet, self.admin = kafka_admin.quiet_admin_client(self.conf, "metal.kafka.groups")
        except ImportError as exc:
            raise GroupError(str(exc)) from None
        self.timeout = timeout
        # committed offsets are read with the project's own client where it can follow the settings
        # (wire.committed_offsets: librdkafka's can crash the process while a coordinator moves)
        try:
            self.security = wire.security_from_client_config(self.conf)
            self.bootstrap = self.conf.get("bootstrap.servers", "")
            wire.bootstrap_pairs(self.bootstrap)
        except ValueError:
            self.security = self.bootstrap = None

    def _wait(self, future, what):
        try:
            return future.result(timeout=self.timeout + 5)
        except Exception as exc:  # noqa: BLE001 - reported with what was asked
            raise GroupError(f"{what}: {exc}") from None

    def _each(self, futures, what, failed):
        """(key, result) of each future; with a dict as ``failed``, a key whose future fails goes there with the
        reason instead of failing the others."""
        for key, future in futures.items():
            try:
                yield key, self._wait(future, what(key))
            except GroupError as exc:
                if failed is None:
                    raise
                failed[key] = str(exc)

    def list(self):
        """[{"group", "state", "simple"}], sorted by name (consumer groups; share and stream groups aside)."""
        return self.listing()[0]

    def listing(self):
        """(groups as :meth:`list` gives them, [why a broker's part of the list is missing]): Kafka lists the
        groups broker by broker, and a broker that is down or moving its coordinators leaves its groups out."""
        result = self._wait(self.admin.list_consumer_groups(request_timeout=self.timeout), "listing the groups")
        groups = sorted(({"group": g.group_id, "state": g.state.name if g.state is not None else "UNKNOWN",
                          "simple": bool(g.is_simple_consumer_group)} for g in result.valid),
                        key=lambda g: g["group"])
        return groups, [str(e) for e in (result.errors or [])]

    def describe(self, groups, failed=None):
        """{group: {"state", "members": [{"member", "client", "host", "partitions": [(topic, partition)]}]}}.
        With a dict as ``failed``, a group that cannot be described goes there instead of failing the others."""
        if not groups:
            return {}
        futures = self.admin.describe_consumer_groups(list(groups), request_timeout=self.timeout)
        out = {}
        for group, d in self._each(futures, lambda g: f"describing group {g}", failed):
            out[group] = {"state": d.state.name if d.state is not None else "UNKNOWN", "members": [
                {"member": m.member_id, "client": m.client_id, "host": m.host,
                 "partitions": sorted((tp.topic, tp.partition) for tp in
                                      (m.assignment.topic_partitions if m.assignment else []))}
                for m in d.members]}
        return out

    def committed(self, groups, failed=None):
        """{group: {(topic, partition): offset}}; all groups asked at once (one request each). With a dict as
        ``failed``, a group that cannot be read goes there with the reason instead of failing the others."""
        from confluent_kafka import ConsumerGroupTopicPartitions

        if self.security is not None:
            try:
                out, missed = wire.committed_offsets(self.bootstrap, groups, self.timeout, self.security)
            except (OSError, wire.ProbeError) as exc:
                raise GroupError(f"reading the committed offsets: no broker answered ({exc})") from None
            if missed and failed is None:
                raise GroupError("reading the committed offsets of " + "; ".join(
                    f"group {g}: {why}" for g, why in sorted(missed.items())[:5]))
            if failed is not None:
                failed.update(missed)
            return out
        futures = {}
        for group in groups:
            futures.update(self.admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)],
                                                                  request_timeout=self.timeout))
        out = {}
        for group, result in self._each(futures, lambda g: f"reading the committed offsets of group {g}", failed):
            out[group] = {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions
                          if tp.error is None and tp.offset >= 0}
        return out

    def offsets(self, partitions, spec="latest", timestamp_ms=None, unanswered=None):
        """{(topic, partition): offset} at the log end (``latest``), start (``earliest``) or for a time. With a
        set as ``unanswered``, a partition whose leader does not answer goes there instead of failing the rest."""
        from confluent_kafka import TopicPartition

        a = self._admin_mod
        if not partitions:
            return {}
        if spec == "latest":
            what = a.OffsetSpec.latest()
        elif spec == "earliest":
            what = a.OffsetSpec.earliest()
        else:
            what = a.OffsetSpec.for_timestamp(int(timestamp_ms))
        futures = self.admin.list_offsets({TopicPartition(t, p): what for t, p in sorted(partitions)},
                                          request_timeout=self.timeout)
        out = {}
        missed = None if unanswered is None else {}
        for tp, result in self._each(futures, lambda t: f"reading the offsets of {t.topic}-{t.partition}", missed):
            out[(tp.topic, tp.partition)] = result.offset
        if missed:
            unanswered.update((tp.topic, tp.partition) for tp in missed)
        return out

    def sample(self, groups):
        """One :class:`lag.Sample` per group: committed offsets first, then the log ends they are compared
        with, then the members (so that a lag is never negative)."""
        return self.sample_each(groups, tolerate=False)[0]

    def sample_each(self, groups, tolerate=True):
        """(:meth:`sample`'s samples, {group: why it was not read}): a group whose coordinator does not answer
        (a broker down, its coordinators moving), or whose partitions' leaders do not give their log end, is left
        out with the reason; the others are still read."""
        at = time.monotonic()
        failed = {} if tolerate else None
        committed = self.committed(groups, failed)
        unanswered = set() if tolerate else None
        ends = self.offsets({tp for c in committed.values() for tp in c}, unanswered=unanswered)
        for group, offsets in sorted(committed.items()):  # a lag without its log end would read as none
            missing = sorted(tp for tp in offsets if tp in (unanswered or ()))
            if missing:
                failed[group] = "no log end offset from the leader of " + ", ".join(
                    f"{t}-{p}" for t, p in missing[:3])
        committed = {g: c for g, c in committed.items() if g not in (failed or {})}
        described = self.describe(list(committed), failed)
        return ({g: lag_rules.Sample(at, committed[g], {tp: ends[tp] for tp in committed[g] if tp in ends},
                                     len(described[g].get("members", [])))
                 for g in committed if g in described}, failed or {})

    def stamps(self, positions, timeout=10.0):
        """{((topic, partition), offset): the timestamp in seconds of the record there}, for each position of
        ``positions`` (the records groups will read next), read with a consumer of its own that commits nothing.
        Groups at different offsets of one partition are read one offset per partition at a time."""
        from confluent_kafka import Consumer, TopicPartition

        todo = sorted(set(positions))
        if not todo:
            return {}
        consumer = Consumer({**self.conf, "group.id": f"kafka-metal-lag-{uuid.uuid4()}", "enable.auto.commit": False,
                             "enable.partition.eof": False, "logger": self.quiet,
                             "fetch.max.bytes": 1048576, "max.partition.fetch.bytes": 65536})
        out, deadline = {}, time.monotonic() + timeout
        try:
            while todo and time.monotonic() < deadline:
                layer = {}
                for tp, offset in todo:  # one offset of each partition
                    layer.setdefault(tp, offset)
                assigned = [TopicPartition(t, p, o) for (t, p), o in sorted(layer.items())]
                consumer.assign(assigned)
                consumer.resume(assigned)  # paused by the layer before, and a pause outlives an assign
                found = {}
                while len(found) < len(layer) and time.monotonic() < deadline:
                    for msg in consumer.consume(500, timeout=0.5):
                        tp = (msg.topic(), msg.partition())
                        if msg.error() is not None or tp in found or tp not in layer or msg.offset() < layer[tp]:
                            continue
                        kind, stamp = msg.timestamp()
                        found[tp] = stamp / 1000.0 if stamp > 0 else None
                        consumer.pause([TopicPartition(*tp)])
                out.update({(tp, layer[tp]): stamp for tp, stamp in found.items() if stamp is not None})
                todo = [(tp, o) for tp, o in todo if layer.get(tp) != o]
            return out
        finally:
            consumer.close()

    def lag(self, groups, samples=3, interval=2.0, sleep=time.sleep):
        """{group: lag.GroupLag} from ``samples`` reads ``interval`` seconds apart."""
        series = {g: [] for g in groups}
        for i in range(max(1, samples)):
            if i:
                sleep(interval)
            for g, s in self.sample(groups).items():
                series[g].append(s)
        last = {g: s[-1] for g, s in series.items()}
        ages = lag_rules.group_ages(last, self.stamps(lag_rules.waiting(last)), time.time())
        return {g: lag_rules.judge(g, series[g], ages[g]) for g in groups}

    def reset(self, group, offsets):
        """Commit ``offsets`` ({(topic, partition): offset}) for ``group``, which must have no active member."""
        from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

        request = ConsumerGroupTopicPartitions(group, [TopicPartition(t, p, o)
                                                       for (t, p), o in sorted(offsets.items())])
        futures = self.admin.alter_consumer_group_offsets([request], request_timeout=self.timeout)
        for _, future in futures.items():
            result = self._wait(future, f"resetting the offsets of group {group}")
            failed = [f"{tp.topic}-{tp.partition}: {tp.error}" for tp in result.topic_partitions if tp.error]
            if failed:
                raise GroupError(f"Kafka refused the new offsets of group {group}: {'; '.join(failed[:5])}")
