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
import os
import time

from ansible_collections.metal.kafka.plugins.module_utils import backup as bk
from ansible_collections.metal.kafka.plugins.module_utils.kafka_admin import ConfluentBackend, KafkaAdminError

IDLE_TIMEOUT = 120.0
FETCH_BYTES = 16 * 1024 * 1024


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
        return ConfluentBackend({"timeout": conf.get("kafka-metal.timeout", 30)}, conf=_client(conf))
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
            time.sleep(0.3)
    return out


def consumer_groups(backend, topics):
    """``{group: {"state": ..., "offsets": {topic: {partition: [offset, metadata]}}}}`` for the topics."""
    ck, admin = _ck()
    listed = _wait(backend, backend._admin.list_consumer_groups(request_timeout=backend.timeout),
                   "list consumer groups")
    wanted = set(topics)
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


def _security(conf):
    from ansible_collections.metal.kafka.plugins.module_utils import wire

    try:
        return wire, wire.security_from_client_config(_client(conf))
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
    c.update({"group.id": f"kafka-metal-{name}", "enable.auto.commit": False, "enable.auto.offset.store": False,
              "isolation.level": "read_committed", "enable.partition.eof": True, "auto.offset.reset": "earliest",
              "fetch.max.bytes": FETCH_BYTES, "max.partition.fetch.bytes": FETCH_BYTES,
              "receive.message.max.bytes": FETCH_BYTES + 1024 * 1024, "client.id": f"kafka-metal-{name}"})
    return ck.Consumer(c)


def read_partitions(conf, ranges, on_record, on_done, progress=None, name="backup", idle_timeout=IDLE_TIMEOUT):
    """Reads every ``(topic, partition)`` of ``ranges`` (``{tp: (next, end)}``, ``end`` exclusive) in order,
    calling ``on_record(tp, record)`` for offsets in range and ``on_done(tp, position)`` once per partition.

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
    try:
        consumer.assign([ck.TopicPartition(t, p, r[0]) for (t, p), r in pending.items()])
        while pending:
            messages = consumer.consume(num_messages=10_000, timeout=0.5)
            now = time.monotonic()
            for m in messages:
                tp = (m.topic(), m.partition())
                if tp not in pending:
                    continue
                end = pending[tp][1]
                err = m.error()
                if err is not None:
                    if err.code() == ck.KafkaError._PARTITION_EOF:
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
                on_record(tp, bk.Record(off, ts, ts_type, m.key(), m.value(), m.headers() or []))
                count += 1
                last_progress = now
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


# --------------------------------------------------------------------------------------------------
# create
# --------------------------------------------------------------------------------------------------


def _tp_key(tp):
    return f"{tp[0]}/{tp[1]}"


def _tp_of(key):
    topic, _, partition = key.rpartition("/")
    return topic, int(partition)


def create(conf, root, topics=None, incremental=False, resume=True, quotas=True, out=None, now=None,
           chunk_records=bk.CHUNK_RECORDS):
    """Takes (or, with ``resume``, finishes an unfinished) backup of the cluster into ``root``; returns its
    ``backup.json``."""
    progress = Progress(out)
    say = out or (lambda line: None)
    backend = open_admin(conf)
    t0 = time.monotonic()
    try:
        cluster = cluster_info(backend)
        cid = cluster["cluster_id"]
        bk.makedirs(root)
        info = bk.latest(root, cid, status="running") if resume else None
        if info:
            say(f"backup {info['id']}: resuming an unfinished backup of cluster {cid}")
        else:
            info = _begin(backend, conf, root, cluster, topics, incremental, quotas, now, say)
    finally:
        backend.close()
    bdir = os.path.join(root, info["id"])
    writers, ranges = {}, {}
    for key, t in sorted(info["targets"].items()):
        tp = _tp_of(key)
        w = bk.PartitionWriter(bdir, tp[0], tp[1], t["start"], t["end"], t["base_digest"], t["base_records"],
                               t.get("gap"), chunk_records=chunk_records)
        writers[tp] = w
        if not w.complete:
            ranges[tp] = (w.next_offset, t["end"])
    total = sum(t["end"] - t["start"] for t in info["targets"].values())
    state = {"last_flush": time.monotonic()}
    t_read = time.monotonic()

    def on_record(tp, record):
        writers[tp].add(record)

    def on_done(tp, end):
        writers[tp].flush(next_offset=end, complete=True)

    def report(count):
        now_m = time.monotonic()
        if now_m - state["last_flush"] > 10:  # a resume point every 10 s
            state["last_flush"] = now_m
            for tp in ranges:
                if not writers[tp].complete:
                    writers[tp].flush()
        done = sum(1 for w in writers.values() if w.complete)
        rate = count / max(now_m - t_read, 1e-6)
        progress(f"backup {info['id']}: {count:,} records read ({rate:,.0f}/s), {done}/{len(writers)} partitions "
                 f"done, up to {total:,} offsets in all")

    count = read_partitions(conf, ranges, on_record, on_done, report, name=f"backup-{info['id']}")
    seconds = time.monotonic() - t_read
    records = sum(w.manifest["records"] for w in writers.values())
    data_bytes = sum(w.manifest["bytes"] for w in writers.values())
    stored = sum(os.path.getsize(os.path.join(w.dir, f)) for w in writers.values() for f in os.listdir(w.dir))
    info.update(status="complete", completed=_now_iso(),
                totals={"records": records, "bytes": data_bytes, "stored_bytes": stored,
                        "partitions": len(writers), "read_this_run": count, "read_seconds": round(seconds, 3),
                        "seconds": round(time.monotonic() - t0, 3)})
    bk.write_json(os.path.join(bdir, "backup.json"), info)
    progress(f"backup {info['id']}: complete: {records:,} records, {bk.human_bytes(data_bytes)} of keys, values and "
             f"headers in {bk.human_bytes(stored)}, {len(writers)} partitions", force=True)
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
    groups = consumer_groups(backend, names)  # before the end offsets: committed offsets are within the backup
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
    got = {tp: [e[0], 0] for tp, e in expect.items()}

    def on_record(tp, record):
        got[tp][0] = bk.chain(got[tp][0], record)
        got[tp][1] += 1

    read_partitions(conf, ranges, on_record, lambda tp, end: None, name="verify")
    for tp in sorted(expect):
        _, want_count, want_digest = expect[tp]
        digest, count = got[tp]
        if (digest, count) != (want_digest, want_count):
            problems.append(f"{_tp_key(tp)}: live {count} records, digest {digest[:16]}; backup {want_count} records, "
                            f"digest {want_digest[:16]}")
    say(f"compared {len(expect)} partitions with {mode}")
    return problems, notes


# --------------------------------------------------------------------------------------------------
# restore
# --------------------------------------------------------------------------------------------------


def _partition_records(root, chain, topic, partition):
    for bdir, m in bk.partition_manifests(root, chain, topic, partition):
        for _, records in bk.iter_chunks(bdir, m):
            yield from records


def _records_held(backend, tps):
    lo = list_offsets(backend, tps, "earliest")
    hi = _high_watermarks(backend, tps)
    return lo, hi


def _high_watermarks(backend, tps):
    """Log end offsets (``latest`` with read-uncommitted)."""
    return list_offsets(backend, tps, "latest", committed=False)


def restore(conf, root, backup_id=None, topics=None, existing="refuse", passwords=None, users=True, acls=True,
            quotas=True, groups=True, out=None):
    """Restores a backup (and its chain) into the cluster of ``conf``; returns a summary dict."""
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
    backend = open_admin(conf)
    t0 = time.monotonic()
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
        for tp in tps:
            key = _tp_key(tp)
            if key not in state["partitions"]:
                total = sum(m["records"] for _, m in bk.partition_manifests(root, chain, *tp))
                state["partitions"][key] = {"base": ends[tp], "total": total, "done": False}
        bk.write_json(state_path, state)
        t_write = time.monotonic()
        summary["records_written"] = _write_records(conf, root, chain, meta, tps, state, ends, state_path, progress)
        summary["write_seconds"] = round(time.monotonic() - t_write, 3)
        if groups:
            summary["groups"] = _restore_groups(backend, root, chain, bdir, state, state_path, plan, say)
        state["complete"] = True
        bk.write_json(state_path, state)
    finally:
        backend.close()
    summary["seconds"] = round(time.monotonic() - t0, 3)
    progress(f"restore of {info['id']} into {target}: {summary['records_written']:,} records written, "
             f"{len(tps)} partitions", force=True)
    return summary


def _wait_for_topics(backend, want, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        topics = cluster_info(backend)["topics"]
        if all(topics.get(n) == p for n, p in want.items()):
            return
        if time.monotonic() > deadline:
            raise bk.BackupError(f"topics not visible after {timeout}s: "
                                 f"{', '.join(n for n, p in want.items() if topics.get(n) != p)}")
        time.sleep(0.5)


def _write_records(conf, root, chain, meta, tps, state, ends, state_path, progress):
    ck, _ = _ck()
    todo = []
    for tp in tps:
        p = state["partitions"][_tp_key(tp)]
        written = ends[tp] - p["base"]
        if written > p["total"]:
            raise bk.BackupError(f"{_tp_key(tp)} holds {written} records since the restore began, the backup has "
                                 f"{p['total']}: something else wrote to it; restore into an empty topic")
        if written == p["total"]:
            p["done"] = True
        else:
            todo.append((tp, written))
    if not todo:
        bk.write_json(state_path, state)
        return 0
    limit = max(int(meta[t]["configs"].get("max.message.bytes", 1048588)) for (t, _), _ in todo)
    c = dict(_client(conf))
    c.update({"enable.idempotence": True, "acks": "all", "linger.ms": 20, "compression.type": "lz4",
              "message.max.bytes": max(limit, 1_000_000) + 64 * 1024, "batch.size": 1_000_000,
              "queue.buffering.max.kbytes": 262_144, "client.id": "kafka-metal-restore"})
    producer = ck.Producer(c)
    failures = []

    def delivered(err, _msg):
        if err is not None:
            failures.append(err)

    written_total, t0 = 0, time.monotonic()
    for tp, skip in todo:
        n = 0
        for record in _partition_records(root, chain, *tp):
            n += 1
            if n <= skip:
                continue
            kwargs = {"partition": tp[1], "key": record.key, "value": record.value, "on_delivery": delivered}
            if record.headers:
                kwargs["headers"] = record.headers
            if record.timestamp_type == bk.TIMESTAMP_CREATE and record.timestamp > 0:
                kwargs["timestamp"] = record.timestamp
            while True:
                try:
                    producer.produce(tp[0], **kwargs)
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
            written_total += 1
            if failures:
                break
            progress(f"restore: {written_total:,} records written "
                     f"({written_total / max(time.monotonic() - t0, 1e-6):,.0f}/s), now {_tp_key(tp)}")
        remaining = producer.flush(300)
        if failures or remaining:
            err = failures[0] if failures else None
            detail = f"{err.name()}: {err.str()}" if err is not None else f"{remaining} records not acknowledged"
            raise bk.BackupError(f"writing {_tp_key(tp)} failed ({detail}); run the restore again to go on from "
                                 "the last acknowledged record")
        state["partitions"][_tp_key(tp)]["done"] = True
        bk.write_json(state_path, state)
    return written_total


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
