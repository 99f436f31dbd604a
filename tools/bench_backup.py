"""Backup and restore throughput against a plain consume of the same data, and backup size against data
size (figures for notes, not a test).

    .venv/bin/python tools/bench_backup.py [--runs 3] [--records 200000] [--record-size 1024]

Starts two single-node Kafka clusters on 127.0.0.1 (plaintext; the 4.1.1 archive of the dist cache, as the
integration tests do): the source gets topic `bench` (6 partitions) with ``--records`` records of a 16-byte
key, a value of ``--record-size`` bytes (half random bytes, half repeated text, so it compresses about as
much as typical JSON payloads do) and two headers. Then, ``--runs`` times, in turn and on the same data:

- a plain consume: a read-committed confluent-kafka consumer reads every partition to its end and counts;
- ``backup_kafka.create`` into a new directory (the code of ``kafka-metal backup create``);
- ``backup_kafka.restore`` into the target cluster, whose `bench` topic is deleted first.

Prints min / median / max of records/s for each, the ratios of medians (backup and restore against the plain
consume), and the backup's size against the records' bytes (keys, values, headers) and against the source
topic's log on disk; writes them as JSON ($KAFKA_METAL_FIGURES_DIR/backup-bench.json).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
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
from ansible_collections.metal.kafka.plugins.module_utils import backup_kafka  # noqa: E402

TOPIC, PARTITIONS = "bench", 6


def properties(data, port, controller_port):
    return "\n".join(single_node(data, controller_port) + [
        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name=PLAINTEXT"]) + "\n"


def start(workdir):
    node = LocalKafka(workdir, properties)
    node.start()
    node.wait_ready(ck_admin.AdminClient({"bootstrap.servers": node.bootstrap}))
    return node


def fill(bootstrap, records, size):
    a = ck_admin.AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([ck_admin.NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(30)
    p = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "lz4",
                                  "batch.size": 1_000_000})
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
    c = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-plain",
                                  "enable.auto.commit": False, "isolation.level": "read_committed",
                                  "enable.partition.eof": True, "fetch.max.bytes": 16 << 20,
                                  "max.partition.fetch.bytes": 16 << 20})
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


def delete_topic(bootstrap):
    a = ck_admin.AdminClient({"bootstrap.servers": bootstrap})
    if TOPIC in a.list_topics(timeout=10).topics:
        a.delete_topics([TOPIC])[TOPIC].result(30)
        while TOPIC in a.list_topics(timeout=10).topics:
            time.sleep(0.2)


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
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kafka-metal-bench-backup-"))
    source = target = None
    rates = {"plain": [], "backup": [], "restore": []}
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
            info = backup_kafka.create(src, str(root), quotas=True)
            s_backup = time.monotonic() - t0
            assert info["totals"]["records"] == args.records
            rates["backup"].append(args.records / s_backup)
            delete_topic(target.bootstrap)
            summary = backup_kafka.restore(dst, str(root), users=False)
            assert summary["records_written"] == args.records
            rates["restore"].append(args.records / summary["seconds"])
            s_restore = summary["seconds"]
            print(f"run {run + 1}: plain consume {n / s:,.0f} records/s ({s:.2f} s), backup "
                  f"{args.records / s_backup:,.0f}/s ({s_backup:.2f} s), restore {args.records / s_restore:,.0f}/s "
                  f"({s_restore:.2f} s, of which writing records {summary['write_seconds']:.2f} s)", flush=True)
        totals = info["totals"]
        figures = {
            "records": args.records, "record_size": args.record_size, "runs": args.runs,
            "records_per_s": {k: spread(v) for k, v in rates.items()},
            "ratio_backup_to_plain": statistics.median(rates["backup"]) / statistics.median(rates["plain"]),
            "ratio_restore_to_plain": statistics.median(rates["restore"]) / statistics.median(rates["plain"]),
            "data_bytes": totals["bytes"], "stored_bytes": totals["stored_bytes"], "log_bytes": log_bytes(source),
        }
        figures["size_to_data"] = figures["stored_bytes"] / figures["data_bytes"]
        figures["size_to_log"] = figures["stored_bytes"] / figures["log_bytes"]
        print(json.dumps(figures, indent=1))
        out = Path(os.environ.get("KAFKA_METAL_FIGURES_DIR", "/tmp/kafka-metal-figures"))
        out.mkdir(parents=True, exist_ok=True)
        (out / "backup-bench.json").write_text(json.dumps(figures, indent=1) + "\n")
    finally:
        for node in (source, target):
            if node is not None:
                node.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
