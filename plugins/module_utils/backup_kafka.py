# Copyright: kafka-metal contributors
# Apache License 2.0
"""Backup, verify and restore against a live cluster, through confluent-kafka; the on-disk format and the
decisions are in ``backup.py``. The command line (``kafka-metal backup``) and the module ``kafka_backup``
both call these functions.

Connection settings are a librdkafka configuration dict (it may hold a password: never print it).

A backup reads, in this order: consumer group offsets, then each partition's log start and its
last stable offset (read-committed end), which together are the backup point. Records are read with
``isolation.level=read_committed`` from the log start (or where the parent backup stopped) up to the
backup point, so aborted transactions are not kept and records written after the backup point are
left for the next backup, while a producer goes on writing.

A restore checks everything it can before it changes anything (topics that conflict, SCRAM users
without a password), then writes users, ACLs, quotas, topics, records (in order, one idempotent
producer, the records' own timestamps) and finally each group's offsets, translated so the group
resumes at the same record. Its progress is kept in ``BACKUP/restores/CLUSTER_ID.json``; a second run
goes on where the first stopped, and a finished one changes nothing.
"""

from __future__ import annotations

import datetime
import logging
import os
import resource as _resource
import time

from ansible_collections.metal.kafka.plugins.module_utils import backup as bk
from ansible_collections.metal.kafka.plugins.module_utils import backup_parallel
from ansible_collections.metal.kafka.plugins.module_utils.kafka_admin import ConfluentBackend, KafkaAdminError

IDLE_TIMEOUT = 120.0
FETCH_BYTES = 16 * 1024 * 1024
QUEUED_KIB = 64 * 1024
READ_BATCH = 2_000
# Records a backup process holds for its partitions' next chunks, at most (above it the largest is written).
BUFFER_BYTES = 64 * 1024 * 1024
FLUSH_TIMEOUT = 300.0
# librdkafka's own log lines (a broker not up yet, a coordinator still loading) go here, not to standard
# error: what stops a backup or a restore reaches the operator as its error, with the fix.
_CLIENT_LOG = logging.getLogger("kafka_metal.backup.client")
_CLIENT_LOG.addHandler(logging.NullHandler())
_CLIENT_LOG.propagate = False


class Progress:
    """Calls ``out(line)`` at most every ``every`` seconds (and when forced)."""

    def __init__(self, out=None, every=5.0):
        self.out, self.every, self._last = out, every, 0.0

    def __call__(self, line, force=False):
        now = time.monotonic()
        if self.out and (force or now - self._last >= self.every):
            self._last = now
            self.out(line)


def _ck():
    try:
        import confluent_kafka
        from confluent_kafka import admin
    except ImportError as exc:
        raise bk.BackupError(f"the Python package confluent-kafka is missing ({exc}): pip install confluent-kafka") \
            from None
    return confluent_kafka, admin


def open_admin(conf):
    try:
        return ConfluentBackend({"timeout": conf.get("kafka-metal.timeout", 30)},
                                conf={**_client(conf), "logger": _CLIENT_LOG})
    except KafkaAdminError as exc:
        raise bk.BackupError(str(exc)) from None


def _client(conf):
    return {k: v for k, v in conf.items() if not k.startswith("kafka-metal.")}


def _wait(backend, future, what):
    try:
        return backend._wait(future, what)
    except KafkaAdminError as exc:
        raise bk.BackupError(str(exc)) from None


def cluster_info(backend):
    md = backend._admin.list_topics(timeout=backend.timeout)
    return {"cluster_id": md.cluster_id, "controller": md.controller_id,
            "brokers": sorted(({"id": b.id, "host": b.host, "port": b.port} for b in md.brokers.values()),
                              key=lambda b: b["id"]),
            "topics": {name: len(t.partitions) for name, t in md.topics.items() if not t.error}}


def cluster_id_of(conf):
    backend = open_admin(conf)
    try:
        return cluster_info(backend)["cluster_id"]
    finally:
        backend.close()


def select_topics(live_topics, only=None):
    names = sorted(n for n in live_topics if not n.startswith(bk.INTERNAL_PREFIX))
    if only:
        missing = sorted(set(only) - set(names))
        if missing:
            raise bk.BackupError(f"no topic {', '.join(missing)} in the cluster (topics: {', '.join(names) or 'none'})")
        names = sorted(set(only))
    return names


def topic_details(backend, names):
    ck, admin = _ck()
    out = {}
    if not names:
        return out
    futures = backend._admin.describe_topics(ck.TopicCollection(list(names)), request_timeout=backend.timeout)
    for name, future in futures.items():
        desc = _wait(backend, future, f"describe topic {name}")
        out[name] = {"partitions": len(desc.partitions),
                     "replication_factor": max((len(p.replicas) for p in desc.partitions), default=1),
                     "topic_id": str(desc.topic_id), "configs": {}}
    resources = [admin.ConfigResource(admin.ResourceType.TOPIC, n) for n in names]
    for resource, future in backend._admin.describe_configs(resources, request_timeout=backend.timeout).items():
        entries = _wait(backend, future, f"describe configs of topic {resource.name}")
        out[resource.name]["configs"] = {
            k: e.value for k, e in sorted(entries.items())
            if e.source == admin.ConfigSource.DYNAMIC_TOPIC_CONFIG.value and not e.is_sensitive}
    return out


# Errors of a partition whose leader is moving or not elected yet (a topic just created): asked again.
_RETRIABLE_OFFSET_ERRORS = ("NOT_LEADER_FOR_PARTITION", "LEADER_NOT_AVAILABLE", "UNKNOWN_TOPIC_OR_PART",
                            "NOT_LEADER_OR_FOLLOWER", "OFFSET_NOT_AVAILABLE", "REPLICA_NOT_AVAILABLE")


def list_offsets(backend, tps, which, committed=True, timeout=60):
    """``{(topic, partition): offset}``: ``which`` is ``earliest`` or ``latest`` (the read-committed end, or
    with ``committed=False`` the log end); asked again while a partition's leader is not there yet."""
    ck, admin = _ck()
    if not tps:
        return {}
    spec = admin.OffsetSpec.earliest() if which == "earliest" else admin.OffsetSpec.latest()
    level = ck.IsolationLevel.READ_COMMITTED if committed else ck.IsolationLevel.READ_UNCOMMITTED
    out, todo = {}, list(tps)
    deadline = time.monotonic() + timeout
    while todo:
        futures = backend._admin.list_offsets({ck.TopicPartition(t, p): spec for t, p in todo}, isolation_level=level,
                                              request_timeout=backend.timeout)
        again = []
        for tp, f in futures.items():
            try:
                out[(tp.topic, tp.partition)] = _wait(backend, f, f"list {which} offset of {tp.topic}/{tp.partition}") \
                    .offset
            except bk.BackupError as exc:
                if not any(code in str(exc) for code in _RETRIABLE_OFFSET_ERRORS) or time.monotonic() > deadline:
                    raise
                again.append((tp.topic, tp.partition))
        todo = again
        if todo:
            time.sleep(0.02)  # a topic just created: its leaders come within milliseconds
    return out


def consumer_groups(backend, topics, conf, timeout=60):
    """``{group: {"state": ..., "offsets": {topic: {partition: [offset, metadata]}}}}`` for the topics.

    The offsets are read through kafka-metal's own client (each group from its coordinator, asked again
    while a coordinator moves) when it speaks the connection's security settings; librdkafka's
    ListConsumerGroupOffsets, which it falls back to, can bring the whole process down while a coordinator
    moves (a rolling restart during a scheduled backup)."""
    ck, admin = _ck()
    listed = _wait(backend, backend._admin.list_consumer_groups(request_timeout=backend.timeout),
                   "list consumer groups")
    wanted = set(topics)
    states = {g.group_id: str(getattr(g.state, "name", g.state)) for g in listed.valid}
    committed = _committed_offsets(conf, sorted(states), timeout)
    if committed is not None:
        out = {}
        for group in sorted(committed):
            offsets = {}
            for (topic, partition), (offset, metadata) in sorted(committed[group].items()):
                if topic in wanted:
                    offsets.setdefault(topic, {})[str(partition)] = [offset, metadata]
            if offsets:
                out[group] = {"state": states[group], "offsets": offsets}
        return out
    out = {}
    for g in sorted(listed.valid, key=lambda g: g.group_id):
        futures = backend._admin.list_consumer_group_offsets([ck.ConsumerGroupTopicPartitions(g.group_id)],
                                                             request_timeout=backend.timeout)
        result = _wait(backend, futures[g.group_id], f"list offsets of group {g.group_id}")
        offsets = {}
        for tp in result.topic_partitions or []:
            if tp.topic in wanted and tp.offset >= 0:
                offsets.setdefault(tp.topic, {})[str(tp.partition)] = [tp.offset, tp.metadata or ""]
        if offsets:
            out[g.group_id] = {"state": str(getattr(g.state, "name", g.state)), "offsets": offsets}
    return out


def _committed_offsets(conf, groups, timeout):
    """``{group: {(topic, partition): (offset, metadata)}}`` through wire.py, or None when it cannot follow the
    connection's security settings (then librdkafka reads them)."""
    try:
        wire, security = _wire(conf)
    except ValueError:
        return None
    out, todo = {}, list(groups)
    deadline = time.monotonic() + timeout
    while todo:
        try:
            got, missed = wire.committed_offsets(conf["bootstrap.servers"], todo, security=security, metadata=True)
        except (OSError, wire.ProbeError) as exc:
            raise bk.BackupError(f"read the consumer groups' offsets: no broker answered ({exc}); is the cluster "
                                 "reachable? Run the command again") from None
        out.update(got)
        gone = {g for g, why in missed.items() if "GROUP_ID_NOT_FOUND" in why}  # deleted since it was listed
        final = {g: why for g, why in missed.items() if g not in gone and not _transient_group_error(why)}
        if final:
            raise bk.BackupError("read the consumer groups' offsets: " + "; ".join(
                f"group {g}: {why}" for g, why in sorted(final.items())[:5]))
        todo = sorted(set(missed) - gone)
        if todo and time.monotonic() > deadline:
            raise bk.BackupError("read the consumer groups' offsets: " + "; ".join(
                f"group {g}: {missed[g]}" for g in todo[:5]) + f" (for {timeout}s); run the command again once "
                "the groups' coordinators are up")
        if todo:
            time.sleep(0.5)
    return out


def _transient_group_error(why):
    """Whether a reason of wire.committed_offsets is a coordinator moving, loading or not answering."""
    return why.startswith("OffsetFetch from ") or any(code in why for code in _RETRIABLE_GROUP_ERRORS)


def _wire(conf):
    """kafka-metal's own client and its security settings for ``conf``; ValueError for settings it cannot
    follow."""
    from ansible_collections.metal.kafka.plugins.module_utils import wire

    return wire, wire.security_from_client_config(_client(conf))


def _security(conf):
    try:
        return _wire(conf)
    except ValueError as exc:
        raise bk.BackupError(f"client quotas: {exc} (or leave quotas out: --skip-quotas, quotas: false)") from None


def read_quotas(conf):
    wire, security = _security(conf)
    try:
        return wire.describe_client_quotas_any(conf["bootstrap.servers"], security=security)
    except (OSError, wire.ProbeError) as exc:
        raise bk.BackupError(f"read client quotas: {exc} (or leave quotas out: --skip-quotas)") from None


def write_quotas(conf, entries):
    if entries:
        wire, security = _security(conf)
        try:
            wire.alter_client_quotas_any(conf["bootstrap.servers"], entries, security=security)
        except (OSError, wire.ProbeError) as exc:
            raise bk.BackupError(f"restore client quotas: {exc} (or leave them out: --skip-quotas)") from None


# --------------------------------------------------------------------------------------------------
# reading partitions
# --------------------------------------------------------------------------------------------------


def _consumer(conf, name):
    ck, _ = _ck()
    c = dict(_client(conf))
    c.update({"logger": _CLIENT_LOG, "group.id": f"kafka-metal-{name}", "enable.auto.commit": False,
              "enable.auto.offset.store": False,
              "isolation.level": "read_committed", "enable.partition.eof": True, "auto.offset.reset": "earliest",
              "fetch.max.bytes": FETCH_BYTES, "max.partition.fetch.bytes": FETCH_BYTES,
              # what the client fetches ahead of the reader, at most (one queue for all assigned partitions)
              "queued.max.messages.kbytes": QUEUED_KIB,
              "receive.message.max.bytes": FETCH_BYTES + 1024 * 1024, "client.id": f"kafka-metal-{name}"})
    return ck.Consumer(c)


def read_partitions(conf, ranges, sinks, on_done, progress=None, name="backup", idle_timeout=IDLE_TIMEOUT):
    """Reads every ``(topic, partition)`` of ``ranges`` (``{tp: (next, end)}``, ``end`` exclusive) in order,
    calling ``sinks[tp](offset, timestamp, timestamp_type, key, value, headers)`` for offsets in range and
    ``on_done(tp, position)`` once per partition.

    A partition is done at its last offset, at a record beyond its end, or when the consumer's
    end-of-partition or position passes the end (aborted records and transaction markers are never
    delivered to a read-committed consumer)."""
    ck, _ = _ck()
    pending = {tp: r for tp, r in ranges.items() if r[0] < r[1]}
    for tp in [tp for tp, r in ranges.items() if r[0] >= r[1]]:
        on_done(tp, ranges[tp][0])
    if not pending:
        return 0
    consumer = _consumer(conf, name)
    count, last_progress, last_check = 0, time.monotonic(), time.monotonic()
    partition_eof = ck.KafkaError._PARTITION_EOF
    try:
        consumer.assign([ck.TopicPartition(t, p, r[0]) for (t, p), r in pending.items()])
        while pending:
            messages = consumer.consume(num_messages=READ_BATCH, timeout=0.5)
            now = time.monotonic()
            for m in messages:
                tp = (m.topic(), m.partition())
                r = pending.get(tp)
                if r is None:
                    continue
                end = r[1]
                err = m.error()
                if err is not None:
                    if err.code() == partition_eof:
                        if m.offset() >= end:
                            del pending[tp]
                            on_done(tp, end)
                        continue
                    raise bk.BackupError(f"reading {tp[0]}/{tp[1]}: {err.name()}: {err.str()}")
                off = m.offset()
                if off >= end:
                    del pending[tp]
                    on_done(tp, end)
                    continue
                ts_type, ts = m.timestamp()
                sinks[tp](off, ts, ts_type, m.key(), m.value(), m.headers())
                count += 1
                if off == end - 1:
                    del pending[tp]
                    on_done(tp, end)
            if pending and (now - last_check > 2 or not messages):
                last_check = now
                for tp_pos in consumer.position([ck.TopicPartition(t, p) for t, p in pending]):
                    tp = (tp_pos.topic, tp_pos.partition)
                    if tp in pending and tp_pos.offset >= pending[tp][1]:
                        end = pending.pop(tp)[1]
                        on_done(tp, end)
            if messages:
                last_progress = now
            elif now - last_progress > idle_timeout:
                stuck = ", ".join(f"{t}/{p} (before {r[1]})" for (t, p), r in sorted(pending.items()))
                raise bk.BackupError(f"no records for {idle_timeout:.0f}s while reading {stuck}: is the cluster "
                                     "reachable and are the partitions' leaders up? Run the command again to go on")
            if progress:
                progress(count)
    finally:
        consumer.close()
    return count


def _run_jobs(pool, jobs, on_progress, handlers=None):
    """Runs ``jobs`` in ``pool``: ``on_progress(total)`` with the sum of the jobs' ``progress`` counts, ``handlers``
    (``{kind: function(message)}``) for their other messages; a job's failure is a BackupError."""
    counts = [0] * len(jobs)

    def on_message(i, message):
        kind = message.get("kind")
        if kind == "progress":
            counts[i] = message["count"]
            on_progress(sum(counts))
        elif kind in (handlers or {}):
            handlers[kind](message)

    try:
        return pool.run(jobs, on_message)
    except backup_parallel.JobError as exc:
        raise bk.BackupError(str(exc)) from None


def _peak_rss_kib():
    """This process's peak resident memory (KiB) since it started its program: Linux's VmHWM, which, unlike
    ``ru_maxrss``, does not carry over the memory of the process it was forked from."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return _resource.getrusage(_resource.RUSAGE_SELF).ru_maxrss


def store_job(send, conf, bdir, targets, chunk_records, name):
    """A worker's part of a backup: reads its partitions (``{"topic/partition": target}``) and stores them,
    each in its own chunks and manifest; a resume point every 10 s. Sends ``{"kind": "progress", "count": n}``
    about every second; returns what it read and its peak memory."""
    writers, ranges = {}, {}
    for key, t in sorted(targets.items()):
        tp = _tp_of(key)
        w = bk.PartitionWriter(bdir, tp[0], tp[1], t["start"], t["end"], t["base_digest"], t["base_records"],
                               t.get("gap"), chunk_records=chunk_records)
        writers[tp] = w
        if not w.complete:
            ranges[tp] = (w.next_offset, t["end"])
    state = {"flush": time.monotonic(), "sent": 0.0}

    def on_done(tp, end):
        writers[tp].flush(next_offset=end, complete=True)

    def progress(count):
        if len(writers) * bk.CHUNK_BYTES > BUFFER_BYTES:  # many partitions: chunks end early to stay in bounds
            bk.keep_buffers_under(writers.values(), BUFFER_BYTES)
        now = time.monotonic()
        if now - state["flush"] > 10:
            state["flush"] = now
            for w in writers.values():
                if not w.complete:
                    w.flush()
        if now - state["sent"] >= 1:
            state["sent"] = now
            send({"kind": "progress", "count": count})

    sinks = {tp: w.add_raw for tp, w in writers.items()}
    count = read_partitions(conf, ranges, sinks, on_done, progress, name=name)
    return {"read": count, "peak_rss_kib": _peak_rss_kib()}


# --------------------------------------------------------------------------------------------------
# create
# --------------------------------------------------------------------------------------------------


def _tp_key(tp):
    return f"{tp[0]}/{tp[1]}"


def _tp_of(key):
    topic, _, partition = key.rpartition("/")
    return topic, int(partition)


def create(conf, root, topics=None, incremental=False, resume=True, quotas=True, out=None, now=None,
           chunk_records=bk.CHUNK_RECORDS, workers=None):
    """Takes (or, with ``resume``, finishes an unfinished) backup of the cluster into ``root``; returns its
    ``backup.json``. ``workers``: processes that read partitions side by side (default: one per core; 1
    reads in this process)."""
    progress = Progress(out)
    say = out or (lambda line: None)
    workers = backup_parallel.cores() if workers is None else max(int(workers), 1)
    t0 = time.monotonic()
    # the children start now and import while this process reads the cluster's metadata
    with backup_parallel.Pool(workers if workers > 1 else 0) as pool:
        backend = open_admin(conf)
        try:
            cluster = cluster_info(backend)
            cid = cluster["cluster_id"]
            bk.makedirs(root)
            info = bk.latest(root, cid, status="running") if resume else None
            if info:
                say(f"backup {info['id']}: resuming an unfinished backup of cluster {cid}")
                info["format"] = bk.FORMAT  # chunks written from now on are of this format
            else:
                info = _begin(backend, conf, root, cluster, topics, incremental, quotas, now, say)
        finally:
            backend.close()
        bdir = os.path.join(root, info["id"])
        targets = info["targets"]
        total = sum(t["end"] - t["start"] for t in targets.values())
        parts = backup_parallel.balance({k: t["end"] - t["start"] for k, t in targets.items()}, workers)
        jobs = [("store", {"conf": conf, "bdir": bdir, "targets": {k: targets[k] for k in keys},
                           "chunk_records": chunk_records, "name": f"backup-{info['id']}"}) for keys in parts]
        t_read = time.monotonic()

        def on_progress(count):
            rate = count / max(time.monotonic() - t_read, 1e-6)
            progress(f"backup {info['id']}: {count:,} records read ({rate:,.0f}/s) by {len(jobs)} process(es), "
                     f"up to {total:,} offsets in all")

        results = _run_jobs(pool, jobs, on_progress)
    seconds = time.monotonic() - t_read
    manifests = [bk.read_manifest(bdir, *_tp_of(k)) for k in sorted(targets)]
    incomplete = [f"{m['topic']}/{m['partition']}" for m in manifests if not m["complete"]]
    if incomplete:
        raise bk.BackupError(f"partitions not finished: {', '.join(incomplete)}; run the command again to go on")
    records = sum(m["records"] for m in manifests)
    data_bytes = sum(m["bytes"] for m in manifests)
    stored = sum(os.path.getsize(os.path.join(d, f)) for d in
                 {bk.partition_dir(bdir, m["topic"], m["partition"]) for m in manifests} for f in os.listdir(d))
    count = sum(r["read"] for r in results)
    rss = [_peak_rss_kib()] + ([r["peak_rss_kib"] for r in results] if len(jobs) > 1 else [])
    info.update(status="complete", completed=_now_iso(),
                totals={"records": records, "bytes": data_bytes, "stored_bytes": stored,
                        "partitions": len(manifests), "read_this_run": count, "read_seconds": round(seconds, 3),
                        "seconds": round(time.monotonic() - t0, 3), "processes": len(jobs),
                        "peak_rss_kib": sum(rss), "peak_rss_kib_by_process": rss})
    bk.write_json(os.path.join(bdir, "backup.json"), info)
    progress(f"backup {info['id']}: complete: {records:,} records, {bk.human_bytes(data_bytes)} of keys, values and "
             f"headers in {bk.human_bytes(stored)}, {len(manifests)} partitions", force=True)
    return info


def _now_iso(now=None):
    return (now or datetime.datetime.now(datetime.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _begin(backend, conf, root, cluster, only, incremental, quotas, now, say):
    cid = cluster["cluster_id"]
    now = now or datetime.datetime.now(datetime.UTC)
    parent = bk.latest(root, cid) if incremental else None
    if incremental and parent is None:
        say(f"no complete backup of cluster {cid} in {root}: taking a full backup")
    names = select_topics(cluster["topics"], only)
    details = topic_details(backend, names)
    tps = [(n, p) for n in names for p in range(details[n]["partitions"])]
    groups = consumer_groups(backend, names, conf)  # before the end offsets: committed offsets are in the backup
    starts = list_offsets(backend, tps, "earliest")
    ends = list_offsets(backend, tps, "latest")
    parent_ends = parent_ids = None
    parent_targets = {}
    if parent:
        parent_targets = parent["targets"]
        parent_ends = {_tp_of(k): v["end"] for k, v in parent_targets.items()}
        parent_ids = {n: t.get("topic_id") for n, t in parent["topics"].items()}
    targets = bk.partition_targets(ends, starts, parent_ends, {n: d["topic_id"] for n, d in details.items()},
                                   parent_ids)
    backup_id = bk.new_backup_id(root, now)
    bdir = os.path.join(root, backup_id)
    bk.makedirs(os.path.join(bdir, "metadata"))
    bk.write_json(os.path.join(bdir, "metadata", "cluster.json"), {k: v for k, v in cluster.items() if k != "topics"})
    bk.write_json(os.path.join(bdir, "metadata", "topics.json"), details)
    bk.write_json(os.path.join(bdir, "metadata", "groups.json"), groups)
    try:
        acls = backend.describe_acls({})
    except KafkaAdminError as exc:
        if exc.code != "SECURITY_DISABLED":
            raise bk.BackupError(f"describe ACLs: {exc}") from None
        acls = []  # the cluster has no authorizer
        say("the cluster has no authorizer: no ACLs to keep")
    bk.write_json(os.path.join(bdir, "metadata", "acls.json"), sorted(acls, key=lambda a: sorted(a.items())))
    try:
        users = backend.scram_users()
    except KafkaAdminError as exc:
        raise bk.BackupError(f"describe SCRAM users: {exc}") from None
    bk.write_json(os.path.join(bdir, "metadata", "users.json"), users)
    if quotas:
        bk.write_json(os.path.join(bdir, "metadata", "quotas.json"), read_quotas(conf))
    out_targets = {}
    for tp, (start, end, gap, continues) in sorted(targets.items()):
        key = _tp_key(tp)
        base_digest, base_records = bk.ZERO_DIGEST, 0
        if continues:
            pm = bk.read_manifest(os.path.join(root, parent["id"]), *tp)
            base_digest, base_records = pm["digest"], pm["base_records"] + pm["records"]
        if gap:
            say(f"{key}: retention deleted offsets {gap['from']}..{gap['to'] - 1} since backup {parent['id']}: "
                "they are missing from this chain")
        out_targets[key] = {"start": start, "end": end, "log_start": starts[tp], "gap": gap,
                            "base_digest": base_digest, "base_records": base_records}
    info = {"format": bk.FORMAT, "id": backup_id, "created": _now_iso(now), "created_epoch": int(now.timestamp()),
            "status": "running", "cluster_id": cid, "kind": "incremental" if parent else "full",
            "parent": parent["id"] if parent else None, "topics": details, "targets": out_targets,
            "groups": len(groups), "acls": len(acls), "users": sorted(users), "quotas": bool(quotas)}
    bk.write_json(os.path.join(bdir, "backup.json"), info)
    say(f"backup {backup_id} of cluster {cid}: {len(names)} topics, {len(tps)} partitions, "
        f"{len(groups)} groups, {len(acls)} ACLs, {len(users)} SCRAM users"
        + (f", incremental after {parent['id']}" if parent else ""))
    return info


# --------------------------------------------------------------------------------------------------
# verify
# --------------------------------------------------------------------------------------------------


def verify(root, backup_id=None, conf=None, out=None):
    """``(info, problems, notes)``: chunks re-read and digests recomputed for the backup and its chain, and,
    with ``conf``, compared against the live cluster (the source by offsets; a cluster this backup was
    restored into by its restore state)."""
    say = out or (lambda line: None)
    info = bk.resolve(root, backup_id)
    problems, notes = [], []
    try:
        chain = bk.chain_of(root, info)
    except bk.BackupError as exc:
        return info, [str(exc)], notes
    for b in chain:
        bdir = os.path.join(root, b["id"])
        records = 0
        for key in sorted(b["targets"]):
            m = bk.read_manifest(bdir, *_tp_of(key))
            problems += bk.verify_partition(bdir, m)
            records += m["records"]
        say(f"backup {b['id']}: {len(b['targets'])} partitions, {records:,} records re-read")
    if conf is not None:
        problems_live, notes_live = _verify_live(root, chain, conf, say)
        problems += problems_live
        notes += notes_live
    return info, problems, notes


def _verify_live(root, chain, conf, say):
    info = chain[-1]
    bdir = os.path.join(root, info["id"])
    live_id = cluster_id_of(conf)
    problems, notes = [], []
    ranges, expect = {}, {}
    if live_id == info["cluster_id"]:
        backend = open_admin(conf)
        try:
            tps = [_tp_of(k) for k in info["targets"]]
            live_topics = cluster_info(backend)["topics"]
            tps = [tp for tp in tps if tp[0] in live_topics and tp[1] < live_topics[tp[0]]]
            starts = list_offsets(backend, tps, "earliest")
        finally:
            backend.close()
        for key, t in info["targets"].items():
            tp = _tp_of(key)
            if tp not in starts:
                notes.append(f"{key}: not in the live cluster any more")
            elif starts[tp] > t["start"] and t["end"] > t["start"]:
                notes.append(f"{key}: retention deleted offsets before {starts[tp]} on the live cluster; "
                             "not compared")
            else:
                m = bk.read_manifest(bdir, *tp)
                ranges[tp] = (t["start"], t["end"])
                expect[tp] = (m["base_digest"], m["records"], m["digest"])
        mode = "the source cluster, by offsets"
    else:
        state_path = os.path.join(bdir, "restores", f"{live_id}.json")
        if not os.path.isfile(state_path):
            return [f"the live cluster {live_id} is neither this backup's source ({info['cluster_id']}) nor a cluster "
                    "it was restored into"], notes
        state = bk.read_json(state_path)
        for key, p in state["partitions"].items():
            tp = _tp_of(key)
            if not p.get("done"):
                problems.append(f"{key}: the restore into {live_id} has not finished")
                continue
            last = bk.partition_manifests(root, chain, *tp)[-1][1]
            ranges[tp] = (p["base"], p["base"] + p["total"])
            expect[tp] = (bk.ZERO_DIGEST, p["total"], last["digest"])
        mode = f"the restored cluster {live_id}, from where the restore began"
    got = {tp: [bytes.fromhex(e[0]), 0] for tp, e in expect.items()}

    def sink(tp):
        g = got[tp]

        def add(_offset, ts, ts_type, key, value, headers):
            g[0] = bk.chain_raw(g[0], ts, ts_type, key, value, headers)
            g[1] += 1
        return add

    read_partitions(conf, ranges, {tp: sink(tp) for tp in got}, lambda tp, end: None, name="verify")
    for tp in sorted(expect):
        _, want_count, want_digest = expect[tp]
        digest, count = got[tp][0].hex(), got[tp][1]
        if (digest, count) != (want_digest, want_count):
            problems.append(f"{_tp_key(tp)}: live {count} records, digest {digest[:16]}; backup {want_count} records, "
                            f"digest {want_digest[:16]}")
    say(f"compared {len(expect)} partitions with {mode}")
    return problems, notes


# --------------------------------------------------------------------------------------------------
# restore
# --------------------------------------------------------------------------------------------------


def _records_held(backend, tps):
    lo = list_offsets(backend, tps, "earliest")
    hi = _high_watermarks(backend, tps)
    return lo, hi


def _high_watermarks(backend, tps):
    """Log end offsets (``latest`` with read-uncommitted)."""
    return list_offsets(backend, tps, "latest", committed=False)


def restore(conf, root, backup_id=None, topics=None, existing="refuse", passwords=None, users=True, acls=True,
            quotas=True, groups=True, out=None, workers=None):
    """Restores a backup (and its chain) into the cluster of ``conf``; returns a summary dict. ``workers``:
    processes that write partitions side by side (default: one per core; 1 writes from this process)."""
    say = out or (lambda line: None)
    progress = Progress(out)
    info = bk.resolve(root, backup_id)
    chain = bk.chain_of(root, info)
    bdir = os.path.join(root, info["id"])
    meta = bk.read_json(os.path.join(bdir, "metadata", "topics.json"))
    if topics:
        unknown = sorted(set(topics) - set(meta))
        if unknown:
            raise bk.BackupError(f"backup {info['id']} holds no topic {', '.join(unknown)} "
                                 f"(it holds {', '.join(sorted(meta)) or 'none'})")
        meta = {n: meta[n] for n in sorted(set(topics))}
    backup_users = bk.read_json(os.path.join(bdir, "metadata", "users.json")) if users else {}
    missing = bk.missing_passwords(backup_users, passwords)
    if missing:
        raise bk.BackupError(f"no password for the SCRAM user(s) {', '.join(missing)}: Kafka never gives passwords "
                             "back, so a restore takes them from the vault (--passwords FILE, YAML 'user: password'), "
                             "or pass --skip-users to restore without users")
    workers = backup_parallel.cores() if workers is None else max(int(workers), 1)
    t0 = time.monotonic()
    pool = backup_parallel.Pool(workers if workers > 1 else 0)  # they start while the checks run
    backend = open_admin(conf)
    try:
        cluster = cluster_info(backend)
        target = cluster["cluster_id"]
        state_dir = os.path.join(bdir, "restores")
        state_path = os.path.join(state_dir, f"{target}.json")
        state = bk.read_json(state_path) if os.path.isfile(state_path) else {
            "target": target, "backup": info["id"], "topics": {}, "partitions": {}, "groups_done": [],
            "complete": False}
        live_names = [n for n in meta if n in cluster["topics"]]
        live_tps = [(n, p) for n in live_names for p in range(cluster["topics"][n])]
        lo, hi = _records_held(backend, live_tps) if live_tps else ({}, {})
        live = {n: {"partitions": cluster["topics"][n],
                    "records": sum(hi[(n, p)] - lo[(n, p)] for p in range(cluster["topics"][n]))}
                for n in live_names}
        plan = bk.plan_topics(meta, live, existing, restored_before=set(state["topics"]))
        # ---- checks done: changes from here on
        bk.makedirs(state_dir)
        summary = {"backup": info["id"], "target": target, "topics": plan, "records_written": 0}
        if users:
            for user, mechanisms in sorted(backup_users.items()):
                for mechanism, iterations in sorted(mechanisms.items()):
                    backend.upsert_scram(user, mechanism, iterations, passwords[user])
            summary["users"] = sorted(backup_users)
        if acls:
            entries = bk.read_json(os.path.join(bdir, "metadata", "acls.json"))
            backend.create_acls(entries)
            summary["acls"] = len(entries)
        if quotas and os.path.isfile(os.path.join(bdir, "metadata", "quotas.json")):
            wanted = bk.read_json(os.path.join(bdir, "metadata", "quotas.json"))
            changes = bk.plan_quotas(wanted, read_quotas(conf))
            write_quotas(conf, changes)
            summary["quotas_written"] = len(changes)
        brokers = max(len(cluster["brokers"]), 1)
        for name, action in plan.items():
            if action == "create":
                d = meta[name]
                backend.create_topic(name, d["partitions"], min(d["replication_factor"], brokers), d["configs"])
                if d["replication_factor"] > brokers:
                    say(f"{name}: replication factor {brokers} (the backup's {d['replication_factor']} needs more "
                        "brokers than this cluster has)")
            if action != "skip" and name not in state["topics"]:
                state["topics"][name] = action
        _wait_for_topics(backend, {n: meta[n]["partitions"] for n, a in plan.items() if a != "skip"})
        tps = [(n, p) for n, a in plan.items() if a != "skip" for p in range(meta[n]["partitions"])]
        ends = _high_watermarks(backend, tps)
        if any(not p["done"] for p in state["partitions"].values()):  # an earlier run stopped while writing
            ends = _settled_ends(backend, tps, ends, say)
        for tp in tps:
            key = _tp_key(tp)
            if key not in state["partitions"]:
                total = sum(m["records"] for _, m in bk.partition_manifests(root, chain, *tp))
                state["partitions"][key] = {"base": ends[tp], "total": total, "done": False}
        bk.write_json(state_path, state)
        t_write = time.monotonic()
        summary["records_written"] = _write_records(pool, workers, conf, root, chain, meta, tps, state, ends,
                                                    state_path, progress)
        summary["write_seconds"] = round(time.monotonic() - t_write, 3)
        _check_counts(backend, tps, state)
        if groups:
            summary["groups"] = _restore_groups(backend, root, chain, bdir, state, state_path, plan, say)
        state["complete"] = True
        bk.write_json(state_path, state)
    finally:
        pool.close()
        backend.close()
    summary["seconds"] = round(time.monotonic() - t0, 3)
    progress(f"restore of {info['id']} into {target}: {summary['records_written']:,} records written, "
             f"{len(tps)} partitions", force=True)
    return summary


RESUME_SETTLE = 5.0


def _settled_ends(backend, tps, ends, say, still=RESUME_SETTLE, timeout=120):
    """The partitions' ends once they have not moved for ``still`` seconds. A run that was stopped while it
    wrote may have produce requests that the broker has not read yet (held back by a quota's throttle) and
    appends later; resuming before they land would write those records twice."""
    say(f"resuming a restore that stopped while writing: waiting until its partitions' ends are still for "
        f"{still:.0f}s")
    since, deadline = time.monotonic(), time.monotonic() + timeout
    while time.monotonic() - since < still:
        if time.monotonic() > deadline:
            raise bk.BackupError(f"the partitions' ends still move after {timeout}s: is something else writing to "
                                 "them? Stop it and run the restore again")
        time.sleep(0.5)
        now = _high_watermarks(backend, tps)
        if now != ends:
            ends, since = now, time.monotonic()
    return ends


def _overfull(tps, state, ends):
    """Partitions that hold more records since the restore began than the backup has, as text."""
    return [f"{_tp_key(tp)} ({ends[tp] - p['base']} > {p['total']})" for tp in tps
            for p in [state["partitions"][_tp_key(tp)]] if ends[tp] - p["base"] > p["total"]]


def _check_counts(backend, tps, state):
    """After the records are written: a partition that holds more records than the backup (since the restore
    began) got records from elsewhere, or from an earlier run of this restore after this one read its end."""
    over = _overfull(tps, state, _high_watermarks(backend, tps))
    if over:
        raise bk.BackupError("partitions hold more records than the backup: " + ", ".join(over[:10]) +
                             "; records were written twice (an earlier run's writes landed late, or another "
                             "producer wrote to them): delete these topics and restore them again")


def _wait_for_topics(backend, want, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        topics = cluster_info(backend)["topics"]
        if all(topics.get(n) == p for n, p in want.items()):
            return
        if time.monotonic() > deadline:
            raise bk.BackupError(f"topics not visible after {timeout}s: "
                                 f"{', '.join(n for n, p in want.items() if topics.get(n) != p)}")
        time.sleep(0.1)


def _write_records(pool, workers, conf, root, chain, meta, tps, state, ends, state_path, progress):
    """Writes what each partition of ``tps`` still lacks, the partitions shared among ``workers`` processes
    (one producer each); a partition is marked done in the state file once every record is acknowledged."""
    over = _overfull(tps, state, ends)
    if over:
        raise bk.BackupError("partitions hold more records since the restore began than the backup has: "
                             f"{', '.join(over[:10])}: something else wrote to them; restore into empty topics")
    todo = {}
    for tp in tps:
        key = _tp_key(tp)
        p = state["partitions"][key]
        written = ends[tp] - p["base"]
        if written == p["total"]:
            p["done"] = True
        else:
            todo[key] = (written, p["total"])
    bk.write_json(state_path, state)
    if not todo:
        return 0
    limit = max(int(meta[_tp_of(k)[0]]["configs"].get("max.message.bytes", 1048588)) for k in todo)
    bins = backup_parallel.balance({k: total - skip for k, (skip, total) in todo.items()}, workers)
    # each process's smallest partitions first: they are marked done early, so a restore that stops is resumed
    # with fewer partitions to check again
    jobs = [("write", {"conf": conf, "root": root, "chain": chain, "limit": limit,
                       "parts": [(k, todo[k][0], todo[k][1])
                                 for k in sorted(keys, key=lambda k: (todo[k][1] - todo[k][0], k))]})
            for keys in bins]
    t0 = time.monotonic()

    def on_progress(n):
        progress(f"restore: {n:,} records written ({n / max(time.monotonic() - t0, 1e-6):,.0f}/s) by "
                 f"{len(jobs)} process(es)")

    def on_partition_done(message):
        state["partitions"][message["partition"]]["done"] = True
        bk.write_json(state_path, state)

    results = _run_jobs(pool, jobs, on_progress, {"partition_done": on_partition_done})
    bk.write_json(state_path, state)
    return sum(r["written"] for r in results)


def _producer_conf(conf, limit):
    c = dict(_client(conf))
    c.update({"logger": _CLIENT_LOG, "enable.idempotence": True, "acks": "all", "linger.ms": 20,
              "compression.type": "lz4", "message.max.bytes": max(limit, 1_000_000) + 64 * 1024,
              "batch.size": 1_000_000, "queue.buffering.max.kbytes": 262_144, "client.id": "kafka-metal-restore"})
    return c


def write_job(send, conf, root, chain, parts, limit):
    """A worker's part of a restore: ``parts`` are ``[("topic/partition", records already written, records in
    the backup)]``; one idempotent producer writes them in order, chunk by chunk, without waiting between
    partitions. Sends ``{"kind": "partition_done", "partition": ...}`` when every record of a partition is
    acknowledged and ``{"kind": "progress", "count": n}`` about every second."""
    ck, _ = _ck()
    producer = ck.Producer(_producer_conf(conf, limit))
    produce, poll = producer.produce, producer.poll
    failures, finished = [], []  # finished: [(partition, [records to acknowledge, acknowledged])]
    written, sent = 0, [time.monotonic()]

    def report(force=False):
        for item in [f for f in finished if f[1][1] >= f[1][0]]:
            finished.remove(item)
            send({"kind": "partition_done", "partition": item[0]})
        if force or time.monotonic() - sent[0] >= 1:
            sent[0] = time.monotonic()
            send({"kind": "progress", "count": written})

    for key, skip, total in parts:
        topic, partition = _tp_of(key)
        count = [total - skip, 0]

        def delivered(err, _msg, count=count, key=key):
            if err is None:
                count[1] += 1
            else:
                failures.append((key, err))

        for bdir, manifest in bk.partition_manifests(root, chain, topic, partition):
            for chunk in manifest["chunks"]:
                if skip >= chunk["records"]:
                    skip -= chunk["records"]
                    continue
                records = bk.read_chunk(bdir, manifest, chunk, raw=True)
                if skip:
                    records, skip = records[skip:], 0
                for _offset, ts, ts_type, k, v, headers in records:
                    ts = ts if ts_type == bk.TIMESTAMP_CREATE and ts > 0 else 0
                    while True:
                        try:
                            produce(topic, v, k, partition, on_delivery=delivered, timestamp=ts,
                                    headers=headers or None)
                            break
                        except BufferError:
                            poll(0.05)
                written += len(records)
                poll(0)
                if failures:
                    break
                report()
            if failures:
                break
        finished.append((key, count))
        if failures:
            break
    # wait for the acknowledgements, marking partitions done as they come (a process enqueues its records
    # much faster than the cluster takes them, so most partitions finish here)
    deadline = time.monotonic() + FLUSH_TIMEOUT
    while len(producer) and not failures and time.monotonic() < deadline:
        poll(0.05)
        report()
    remaining = producer.flush(0 if failures else 1)
    if failures or remaining:
        where, err = failures[0] if failures else (None, None)
        detail = f"{where}: {err.name()}: {err.str()}" if err is not None else f"{remaining} records not acknowledged"
        raise bk.BackupError(f"writing records failed ({detail}); run the restore again to go on from the last "
                             "acknowledged record")
    report(force=True)
    return {"written": written, "peak_rss_kib": _peak_rss_kib()}


_RETRIABLE_GROUP_ERRORS = {"COORDINATOR_LOAD_IN_PROGRESS", "NOT_COORDINATOR", "COORDINATOR_NOT_AVAILABLE",
                           "REQUEST_TIMED_OUT", "_TIMED_OUT", "_TRANSPORT"}


def _set_group_offsets(backend, group, tps, timeout=60):
    """Commits ``tps`` for ``group``; every partition's own error is checked (the call succeeds as a whole
    while a coordinator that is still loading refuses each partition), and retried while it is transient."""
    ck, _ = _ck()
    deadline = time.monotonic() + timeout
    while True:
        futures = backend._admin.alter_consumer_group_offsets([ck.ConsumerGroupTopicPartitions(group, tps)],
                                                              request_timeout=backend.timeout)
        try:
            result = _wait(backend, futures[group], f"set the offsets of group {group}")
            errors = [(tp, tp.error) for tp in result.topic_partitions or [] if tp.error is not None]
        except bk.BackupError as exc:
            if not any(code in str(exc) for code in _RETRIABLE_GROUP_ERRORS):
                raise bk.BackupError(f"{exc} (a group with members cannot be moved: stop its consumers and run "
                                     "the restore again)") from None
            errors = [(None, exc)]
        if not errors:
            return
        names = {e.name() if hasattr(e, "name") else str(e) for _, e in errors}
        if not names <= _RETRIABLE_GROUP_ERRORS or time.monotonic() > deadline:
            tp, err = errors[0]
            where = f"{tp.topic}/{tp.partition}" if tp is not None else "the group"
            text = err.str() if hasattr(err, "str") else str(err)
            raise bk.BackupError(f"set the offsets of group {group}: {where}: {text} (a group with members cannot "
                                 "be moved: stop its consumers and run the restore again)")
        time.sleep(0.5)


def _restore_groups(backend, root, chain, bdir, state, state_path, plan, say):
    ck, admin = _ck()
    groups = bk.read_json(os.path.join(bdir, "metadata", "groups.json"))
    done = []
    for group, g in sorted(groups.items()):
        if group in state["groups_done"]:
            continue
        tps = []
        for topic, parts in sorted(g["offsets"].items()):
            if plan.get(topic, "skip") == "skip":
                continue
            for partition, (committed, metadata) in sorted(parts.items(), key=lambda kv: int(kv[0])):
                tp = (topic, int(partition))
                base = state["partitions"][_tp_key(tp)]["base"]
                new = bk.translate_committed(bk.partition_manifests(root, chain, *tp), committed, base)
                tps.append(ck.TopicPartition(topic, tp[1], new, metadata=metadata) if metadata
                           else ck.TopicPartition(topic, tp[1], new))
        if not tps:
            continue
        _set_group_offsets(backend, group, tps)
        state["groups_done"].append(group)
        bk.write_json(state_path, state)
        done.append(group)
    if done:
        say(f"consumer groups set: {', '.join(done)}")
    return done
