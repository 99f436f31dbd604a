#!/usr/bin/env python3
"""Planning at scale, on a modelled cluster (no lab): a drain of one broker and a rebalance after brokers join.

    python tools/bench_moves.py [--brokers 100] [--racks 3] [--replicas 50000] [--add 10] [--runs 3]

The model places partitions as Kafka's rack-aware assignor does (round robin over racks, then over each rack's
brokers) with log-normal sizes. Prints the planning time (median of the runs), the bytes moved against the
least possible (for a drain: the bytes the broker holds; for a rebalance: moves.rebalance_lower_bound), the
spreads reached, and whether any partition ended with two replicas in one rack.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins" / "cli"))
import kafka_metal  # noqa: E402,F401  (collection path)
from ansible_collections.metal.kafka.plugins.module_utils import moves  # noqa: E402


def model(brokers=100, racks=3, replicas=50000, rf=3, seed=1, sigma=0.5):
    rnd = random.Random(seed)  # noqa: S311  (a model, not a secret)
    rack_of = {b: f"rack{b % racks}" for b in range(1, brokers + 1)}
    by_rack = {}
    for b, r in sorted(rack_of.items()):
        by_rack.setdefault(r, []).append(b)
    names = sorted(by_rack)
    pointer = dict.fromkeys(names, 0)
    assignment, sizes = {}, {}
    for i in range(replicas // rf):
        tp = (f"topic{i % 200}", i // 200)
        chosen = []
        for k in range(rf):
            rack = names[(i + k) % len(names)]
            pool = by_rack[rack]
            chosen.append(pool[pointer[rack] % len(pool)])
            pointer[rack] += 1
        assignment[tp] = chosen
        sizes[tp] = int(rnd.lognormvariate(17, sigma))  # about 24 MiB, most between 9 and 66 MiB
    return moves.Snapshot(rack_of, assignment, sizes)


def grow(snapshot, add, racks):
    first = max(snapshot.brokers) + 1
    for b in range(first, first + add):
        snapshot.brokers[b] = f"rack{b % racks}"
    return snapshot


def applied(snapshot, plan):
    out = dict(snapshot.assignment)
    for m in plan:
        out[(m.topic, m.partition)] = list(m.after)
    return out


def rack_clashes(snapshot, assignment):
    return sum(1 for r in assignment.values() if len({snapshot.brokers[b] for b in r}) < len(r))


def timed(runs, fn):
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--brokers", type=int, default=100)
    p.add_argument("--racks", type=int, default=3)
    p.add_argument("--replicas", type=int, default=50000)
    p.add_argument("--add", type=int, default=10)
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args(argv)
    snap = model(a.brokers, a.racks, a.replicas)
    leaving = sorted(snap.brokers)[len(snap.brokers) // 2]
    seconds, plan = timed(a.runs, lambda: moves.drain(snap, {leaving}))
    held = sum(snap.size(tp) for tp, r in snap.assignment.items() if leaving in r)
    after = applied(snap, plan)
    print(f"drain of broker {leaving} ({a.brokers} brokers, {a.racks} racks, {a.replicas} replicas): "
          f"planned in {seconds:.2f} s; {len(plan)} moves, {moves.total_bytes(plan) / held:.3f} x the bytes it held; "
          f"partitions with two replicas in one rack: {rack_clashes(snap, after)}")
    grow(snap, a.add, a.racks)
    seconds, plan = timed(a.runs, lambda: moves.rebalance(snap))
    after = applied(snap, plan)
    counts, nbytes = snap.load(after)
    bound = moves.rebalance_lower_bound(snap)
    print(f"rebalance after adding {a.add} brokers: planned in {seconds:.2f} s; {len(plan)} moves, "
          f"{moves.total_bytes(plan) / bound:.3f} x the least possible bytes; spreads (max - min over mean): "
          f"replicas {moves.spread(counts):.3f}, bytes {moves.spread(nbytes):.3f}; partitions with two replicas "
          f"in one rack: {rack_clashes(snap, after)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
