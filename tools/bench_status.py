#!/usr/bin/env python3
"""How long ``kafka-metal status`` takes on a cluster with many partitions and consumer groups.

    python tools/bench_status.py --bootstrap-server HOST:PORT [--partitions 2000] [--topics 4] [--groups 200]
                                 [--per-group 20] [--behind 0.1] [--runs 5] [--keep]

Creates ``--topics`` topics holding ``--partitions`` partitions in all (replication factor 1 unless
``--replication-factor``), writes a few records to every partition, and gives each of ``--groups`` consumer groups
committed offsets on ``--per-group`` partitions (through the admin API; no consumer runs): at the log end, or a few
records behind it for the fraction ``--behind`` of the groups (so their lag in seconds is read too). Then runs
``kafka-metal status`` (its defaults: groups included, 2 samples 1 s apart) ``--runs`` times and prints the
median and the longest wall-clock time, with the level each run gave. Deletes its topics and groups at the end
unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from confluent_kafka import ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

KAFKA_METAL = Path(sys.executable).parent / "kafka-metal"
RECORDS_PER_PARTITION = 10


def _wait_all(futures, what):
    for key, future in futures.items():
        try:
            future.result(timeout=120)
        except Exception as exc:  # noqa: BLE001 - a benchmark stops on the first failure
            raise SystemExit(f"{what} {key}: {exc}") from None


def create(admin, conf, prefix, args):
    per_topic = [args.partitions // args.topics + (1 if i < args.partitions % args.topics else 0)
                 for i in range(args.topics)]
    topics = {f"{prefix}-{i}": n for i, n in enumerate(per_topic) if n}
    _wait_all(admin.create_topics([NewTopic(t, n, args.replication_factor) for t, n in topics.items()],
                                  request_timeout=120), "creating topic")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the metadata of every new partition, before writing to it
        md = admin.list_topics(timeout=30)
        if all(t in md.topics and len(md.topics[t].partitions) == n for t, n in topics.items()):
            break
        time.sleep(0.5)
    producer = Producer({**conf, "linger.ms": 20})
    partitions = [(t, p) for t, n in topics.items() for p in range(n)]
    for t, p in partitions:
        for i in range(RECORDS_PER_PARTITION):
            producer.produce(t, value=b"x" * 100, partition=p, key=str(i).encode())
        producer.poll(0)
    if producer.flush(120):
        raise SystemExit("records still unacknowledged after 120 s")
    ends = {(tp.topic, tp.partition): f.result(timeout=60).offset for tp, f in admin.list_offsets(
        {TopicPartition(t, p): OffsetSpec.latest() for t, p in partitions}, request_timeout=60).items()}
    groups = [f"{prefix}-g{i}" for i in range(args.groups)]
    behind = int(round(args.groups * args.behind))
    requests = {}
    for i, group in enumerate(groups):
        chosen = [partitions[(i * args.per_group + k) % len(partitions)] for k in range(args.per_group)]
        lag = 3 if i < behind else 0
        requests[group] = ConsumerGroupTopicPartitions(group, [TopicPartition(t, p, ends[(t, p)] - lag)
                                                               for t, p in chosen])
    commit(admin, requests)
    return list(topics), groups


def commit(admin, requests):
    """Commit each group's offsets, again for those refused while the group coordinator loads (the first
    commits of a cluster create __consumer_offsets)."""
    deadline = time.monotonic() + 60
    while requests:
        futures = {}
        for request in requests.values():
            futures.update(admin.alter_consumer_group_offsets([request], request_timeout=60))
        refused = {}
        for group, future in futures.items():
            try:
                errors = [tp.error for tp in future.result(timeout=60).topic_partitions if tp.error]
            except Exception as exc:  # noqa: BLE001 - tried again until the deadline
                errors = [exc]
            if errors:
                refused[group] = requests[group]
        if refused and time.monotonic() > deadline:
            raise SystemExit(f"offsets of {len(refused)} groups refused: {errors[0]}")
        if refused:
            time.sleep(1)
        requests = refused


def run_status(bootstrap, timeout):
    start = time.perf_counter()
    out = subprocess.run([str(KAFKA_METAL), "status", "--bootstrap-server", bootstrap, "--json"],
                         capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - start
    if out.returncode == 3:
        raise SystemExit(f"kafka-metal status could not read the cluster:\n{out.stdout}{out.stderr}")
    report = json.loads(out.stdout)
    snap = report["snapshot"]
    return seconds, report["level"], len(snap.get("partitions") or ()), len(snap.get("groups") or ())


def cleanup(admin, topics, groups):
    if groups:
        futures = admin.delete_consumer_groups(groups, request_timeout=60)
        for group, future in futures.items():
            try:
                future.result(timeout=60)
            except Exception as exc:  # noqa: BLE001 - reported, the rest still deleted
                print(f"group {group} not deleted: {exc}", file=sys.stderr)
    if topics:
        _wait_all(admin.delete_topics(topics, request_timeout=60), "deleting topic")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bootstrap-server", required=True)
    p.add_argument("--partitions", type=int, default=2000)
    p.add_argument("--topics", type=int, default=4)
    p.add_argument("--replication-factor", type=int, default=1)
    p.add_argument("--groups", type=int, default=200)
    p.add_argument("--per-group", type=int, default=20, help="partitions each group has committed offsets on")
    p.add_argument("--behind", type=float, default=0.1, help="fraction of the groups a few records behind")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--keep", action="store_true", help="keep the topics and groups")
    args = p.parse_args(argv)
    conf = {"bootstrap.servers": args.bootstrap_server}
    admin = AdminClient(conf)
    prefix = f"bench-status-{uuid.uuid4().hex[:8]}"
    topics, groups = [], []
    try:
        t0 = time.monotonic()
        topics, groups = create(admin, conf, prefix, args)
        print(f"created {args.partitions} partitions in {len(topics)} topics and {len(groups)} groups "
              f"({prefix}-*) in {time.monotonic() - t0:.1f} s", flush=True)
        times = []
        for i in range(args.runs):
            seconds, level, partitions, judged = run_status(args.bootstrap_server, 120)
            times.append(seconds)
            print(f"run {i + 1}: {seconds:.2f} s, {level}, {partitions} partitions, {judged} groups", flush=True)
        print(f"kafka-metal status: median {statistics.median(times):.2f} s, max {max(times):.2f} s over {len(times)} "
              f"runs ({args.partitions} partitions, {args.groups} groups)")
    finally:
        if args.keep:
            print(f"kept: topics and groups {prefix}-*")
        else:
            cleanup(admin, topics, groups)
    return 0


if __name__ == "__main__":
    sys.exit(main())
