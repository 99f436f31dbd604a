"""Backup and restore throughput against a plain consume and a plain produce of the same records, backup
size against the data and the source log, and the backup's memory (figures for notes, not a test).

    .venv/bin/python tools/bench_backup.py [--runs 3] [--records 200000] [--record-size 1024] [--workers N]

Starts two single-node Kafka clusters on 127.0.0.1 (plaintext; the 4.1.1 archive of the dist cache, as the
integration tests do): the source gets topic `bench` (6 partitions) with ``--records`` records of a 16-byte
key, a value of ``--record-size`` bytes (half random bytes, half repeated text, so it compresses about as
much as typical JSON payloads do) and two headers. Then, ``--runs`` times, in turn and on the same data:

- a plain consume: a read-committed confluent-kafka consumer reads every partition to its end and counts;
- ``backup_kafka.create`` into a new directory (the code of ``kafka-metal backup create``);
- a plain produce: the backup's records, decoded into memory beforehand, written by one idempotent
  producer with the restore's producer settings (acks=all, lz4, the same batching) and a delivery callback
  that counts failures, into a new topic `plain` of the target; the records' own partitions, keys, values,
  headers and timestamps;
- ``backup_kafka.restore`` into the target cluster, whose `bench` topic is deleted first (the whole
  restore, its checks and the topic's creation included).

Then one more backup through the command line (``kafka-metal backup create``, a process of its own) for the
backup's peak memory: the resident set of the command and of its worker processes, added up.

Prints min / median / max of records/s for each, the ratios of medians (backup against the plain consume,
restore against the plain produce, and, as before, against the plain consume), the backup's size against
the records' bytes (keys, values, headers) and against the source topic's log on disk, and the peak memory;
writes them as JSON ($KAFKA_METAL_FIGURES_DIR/backup-bench.json, or --out). The clients' own log lines
(a broker not up yet) are dropped: the output is the figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))
sys.path.insert(0, str(REPO / "plugins" / "cli"))

import confluent_kafka  # noqa: E402
from confluent_kafka import admin as ck_admin  # noqa: E402
from kafka_metal import ensure_collection_path  # noqa: E402
from local_kafka import LocalKafka, single_node  # noqa: E402

ensure_collection_path()
from ansible_collections.metal.kafka.plugins.module_utils import backup as bk  # noqa: E402
from ansible_collections.metal.kafka.plugins.module_utils import backup_kafka  # noqa: E402

TOPIC, PARTITIONS = "bench", 6
QUIET = logging.getLogger("bench.clients")
QUIET.addHandler(logging.NullHandler())
QUIET.propagate = False


def client(**conf):
    return {**conf, "logger": QUIET}


def properties(data, port, controller_port):
    return "\n".join(single_node(data, controller_port) + [
        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name=PLAINTEXT"]) + "\n"


def start(workdir):
    node = LocalKafka(workdir, properties)
    node.start()
    node.wait_ready(ck_admin.AdminClient(client(**{"bootstrap.servers": node.bootstrap})))
    return node


def fill(bootstrap, records, size):
    a = ck_admin.AdminClient(client(**{"bootstrap.servers": bootstrap}))
    a.create_topics([ck_admin.NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(30)
    p = confluent_kafka.Producer(client(**{"bootstrap.servers": bootstrap, "linger.ms": 20,
                                           "compression.type": "lz4", "batch.size": 1_000_000}))
    text = (b'{"customer": "c-0001", "status": "shipped", "items": [1, 2, 3]} ' * (size // 64 + 1))[: size // 2]
    for i in range(records):
        value = os.urandom(size - len(text)) + text
        while True:
            try:
                p.produce(TOPIC, key=f"key-{i:012d}".encode(), value=value,
                          headers=[("source", b"bench"), ("seq", str(i).encode())])
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(120) == 0


def plain_consume(bootstrap):
    c = confluent_kafka.Consumer(client(**{"bootstrap.servers": bootstrap, "group.id": "bench-plain",
                                           "enable.auto.commit": False, "isolation.level": "read_committed",
                                           "enable.partition.eof": True, "fetch.max.bytes": 16 << 20,
                                           "max.partition.fetch.bytes": 16 << 20}))
    c.assign([confluent_kafka.TopicPartition(TOPIC, p, confluent_kafka.OFFSET_BEGINNING) for p in range(PARTITIONS)])
    t0, n, pending = time.monotonic(), 0, set(range(PARTITIONS))
    while pending:
        for m in c.consume(10_000, timeout=0.5):
            if m.error():
                pending.discard(m.partition())
                continue
            n += 1
            _ = (m.key(), m.value(), m.headers(), m.timestamp())
    seconds = time.monotonic() - t0
    c.close()
    return n, seconds


def delete_topic(bootstrap, topic=TOPIC):
    a = ck_admin.AdminClient(client(**{"bootstrap.servers": bootstrap}))
    if topic in a.list_topics(timeout=10).topics:
        a.delete_topics([topic])[topic].result(30)
        while topic in a.list_topics(timeout=10).topics:
            time.sleep(0.2)


def backup_records(root):
    """``{partition: [(ts, ts_type, key, value, headers)]}`` of the newest backup in ``root``."""
    info = bk.resolve(str(root))
    bdir = os.path.join(str(root), info["id"])
    out = {}
    for key in info["targets"]:
        topic, _, partition = key.rpartition("/")
        m = bk.read_manifest(bdir, topic, partition)
        out[int(partition)] = [(ts, tt, k, v, h) for _, records in bk.iter_chunks(bdir, m, raw=True)
                               for _o, ts, tt, k, v, h in records]
    return out


def plain_produce(bootstrap, records):
    """Writes ``records`` (of :func:`backup_records`) into a new topic, as an application would: one idempotent
    producer, the restore's producer settings, a delivery callback that counts failures; records/s and s."""
    a = ck_admin.AdminClient(client(**{"bootstrap.servers": bootstrap}))
    delete_topic(bootstrap, "plain")
    a.create_topics([ck_admin.NewTopic("plain", PARTITIONS, 1)])["plain"].result(30)
    while "plain" not in a.list_topics(timeout=10).topics:
        time.sleep(0.1)
    conf = backup_kafka._producer_conf({"bootstrap.servers": bootstrap}, 1048588)
    conf.update(logger=QUIET, **{"client.id": "bench-plain"})
    p = confluent_kafka.Producer(conf)
    failed = []

    def delivered(err, _msg):
        if err is not None:
            failed.append(err)

    n = sum(len(r) for r in records.values())
    t0 = time.monotonic()
    for partition, rows in records.items():
        for ts, tt, key, value, headers in rows:
            while True:
                try:
                    p.produce("plain", value, key, partition, on_delivery=delivered,
                              timestamp=ts if tt == bk.TIMESTAMP_CREATE else 0, headers=headers or None)
                    break
                except BufferError:
                    p.poll(0.05)
            p.poll(0)
    assert p.flush(300) == 0 and not failed, failed
    seconds = time.monotonic() - t0
    return n / seconds, seconds


def cli_backup_memory(bootstrap, root, workers):
    """Peak resident memory (KiB) of ``kafka-metal backup create`` and its worker processes, added up."""
    cmd = [str(REPO / ".venv" / "bin" / "kafka-metal"), "backup", "create", "--dir", str(root), "--bootstrap-server",
           bootstrap, "--json"] + (["--workers", str(workers)] if workers else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    info = json.loads(out[out.index("{\n"):])
    return info["totals"]["peak_rss_kib"], info["totals"]["records"]


def log_bytes(node):
    return sum(f.stat().st_size for d in (node.workdir / "data").glob(f"{TOPIC}-*") for f in d.iterdir()
               if f.suffix == ".log")


def spread(values):
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--record-size", type=int, default=1024)
    ap.add_argument("--workers", type=int, default=None, help="processes for backup and restore (default: cores)")
    ap.add_argument("--out", type=Path, default=None, help="the JSON figures (default: backup-bench.json in "
                    "$KAFKA_METAL_FIGURES_DIR or /tmp/kafka-metal-figures)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kafka-metal-bench-backup-"))
    source = target = None
    rates = {"plain": [], "backup": [], "plain_produce": [], "restore": []}
    try:
        source, target = start(work / "source"), start(work / "target")
        fill(source.bootstrap, args.records, args.record_size)
        src, dst = {"bootstrap.servers": source.bootstrap}, {"bootstrap.servers": target.bootstrap}
        for run in range(args.runs):
            n, s = plain_consume(source.bootstrap)
            assert n == args.records, (n, args.records)
            rates["plain"].append(n / s)
            root = work / f"backups-{run}"
            t0 = time.monotonic()
            info = backup_kafka.create(src, str(root), quotas=True, workers=args.workers)
            s_backup = time.monotonic() - t0
            assert info["totals"]["records"] == args.records
            rates["backup"].append(args.records / s_backup)
            records = backup_records(root)
            rate_produce, s_produce = plain_produce(target.bootstrap, records)
            del records
            delete_topic(target.bootstrap, "plain")
            rates["plain_produce"].append(rate_produce)
            delete_topic(target.bootstrap)
            summary = backup_kafka.restore(dst, str(root), users=False, workers=args.workers)
            assert summary["records_written"] == args.records
            rates["restore"].append(args.records / summary["seconds"])
            s_restore = summary["seconds"]
            print(f"run {run + 1}: plain consume {n / s:,.0f} records/s ({s:.2f} s), backup "
                  f"{args.records / s_backup:,.0f}/s ({s_backup:.2f} s), plain produce {rate_produce:,.0f}/s "
                  f"({s_produce:.2f} s), restore {args.records / s_restore:,.0f}/s ({s_restore:.2f} s, of which "
                  f"writing records {summary['write_seconds']:.2f} s)", flush=True)
            if run < args.runs - 1:
                shutil.rmtree(root, ignore_errors=True)
        totals = info["totals"]
        rss_kib, rss_records = cli_backup_memory(source.bootstrap, work / "backups-memory", args.workers)
        assert rss_records == args.records
        med = {k: statistics.median(v) for k, v in rates.items()}
        figures = {
            "records": args.records, "record_size": args.record_size, "runs": args.runs,
            "processes": totals["processes"],
            "records_per_s": {k: spread(v) for k, v in rates.items()},
            "ratio_backup_to_plain": med["backup"] / med["plain"],
            "ratio_restore_to_plain_produce": med["restore"] / med["plain_produce"],
            "ratio_restore_to_plain": med["restore"] / med["plain"],
            "data_bytes": totals["bytes"], "stored_bytes": totals["stored_bytes"], "log_bytes": log_bytes(source),
            "backup_peak_rss_kib": rss_kib,
        }
        figures["size_to_data"] = figures["stored_bytes"] / figures["data_bytes"]
        figures["size_to_log"] = figures["stored_bytes"] / figures["log_bytes"]
        print(json.dumps(figures, indent=1))
        out = args.out or Path(os.environ.get("KAFKA_METAL_FIGURES_DIR", "/tmp/kafka-metal-figures")) / \
            "backup-bench.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(figures, indent=1) + "\n")
    finally:
        for node in (source, target):
            if node is not None:
                node.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
