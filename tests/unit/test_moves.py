"""Planning data movement: drain, rebalance, the two stages of a move, the bounds (module_utils/moves.py)."""

import itertools
import sys
from pathlib import Path

import pytest
from ansible_collections.metal.kafka.plugins.module_utils import moves

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import bench_moves  # noqa: E402

MB = 1 << 20


def snapshot(rf=3, brokers=4, partitions=12, racks=None, size=10 * MB, free=None):
    ids = list(range(1, brokers + 1))
    assignment = {("t", p): [ids[(p + k) % brokers] for k in range(rf)] for p in range(partitions)}
    return moves.Snapshot({b: (racks[b - 1] if racks else None) for b in ids}, assignment,
                          {tp: size + p * MB for p, tp in enumerate(sorted(assignment))}, free or {})


def applied(snap, plan):
    return bench_moves.applied(snap, plan)


def test_drain_moves_only_the_leaving_brokers_replicas_each_in_its_place():
    snap = snapshot()
    plan = moves.drain(snap, {4})
    held = [tp for tp, r in snap.assignment.items() if 4 in r]
    assert sorted((m.topic, m.partition) for m in plan) == sorted(held)
    for m in plan:
        i = m.before.index(4)
        assert m.removing == [4] and len(m.adding) == 1 and m.after[i] == m.adding[0]
        assert [b for b in m.after if b != m.after[i]] == [b for b in m.before if b != 4]
    assert moves.total_bytes(plan) == sum(snap.size(tp) for tp in held)
    after = applied(snap, plan)
    assert not any(4 in r for r in after.values())
    counts, _ = snap.load(after)
    assert counts[4] == 0 and max(counts[b] for b in (1, 2, 3)) - min(counts[b] for b in (1, 2, 3)) <= 1


def test_drain_keeps_racks_distinct_and_prefers_the_leaving_brokers_rack():
    snap = snapshot(brokers=6, partitions=30, racks=["a", "b", "c", "a", "b", "c"])
    # make every partition rack-diverse: replicas on consecutive ids cover racks a, b, c
    plan = moves.drain(snap, {1})
    for m in plan:
        assert len({snap.brokers[b] for b in m.after}) == 3
        assert snap.brokers[m.adding[0]] == "a"


def test_drain_refusals_name_the_problem_and_the_fix():
    with pytest.raises(moves.PlanError, match=r"broker 9 is not registered in the cluster \(registered: 1, 2, 3, 4\)"):
        moves.drain(snapshot(), {9})
    with pytest.raises(moves.PlanError, match=r"only 2 brokers would remain, fewer than the replicas of t "
                                              r"\(replication factor 3\): add a broker first"):
        moves.drain(snapshot(), {3, 4})
    racks = snapshot(brokers=4, partitions=8, racks=["a", "b", "c", "c"])
    racks.assignment = {("t", p): [1, 2, 3] for p in range(8)}
    with pytest.raises(moves.PlanError, match=r"partition t-\d+: every broker that could take its replica from "
                                              r"broker 1 is in a rack it already uses \(b, c\)"):
        moves.drain(racks, {1})
    full = snapshot(free={1: 5 * MB, 2: 5 * MB, 3: 5 * MB})
    with pytest.raises(moves.PlanError, match=r"partition t-\d+ \(\d+\.\d MiB\) fits on none of brokers"):
        moves.drain(full, {4})


def test_drain_spreads_by_free_space_and_keeps_a_reserve():
    snap = snapshot(free={1: 1000 * MB, 2: 1000 * MB, 3: 60 * MB})
    plan = moves.drain(snap, {4})
    to3 = sum(m.size for m in plan if 3 in m.adding)
    assert to3 <= 60 * MB * 0.9


def test_a_resumed_drain_keeps_the_targets_already_under_way():
    snap = snapshot(brokers=5)
    first = moves.drain(snap, {4})
    # pretend one move is under way to a broker the planner would not choose now
    m = first[0]
    other = next(b for b in (1, 2, 3, 5) if b not in m.after)
    forced = [other if b == m.adding[0] else b for b in m.after]
    again = moves.drain(snap, {4}, fixed={(m.topic, m.partition): forced})
    assert next(x for x in again if (x.topic, x.partition) == (m.topic, m.partition)).after == forced


def test_rebalance_after_a_broker_joins_reaches_the_skew_with_near_the_least_bytes():
    snap = snapshot(brokers=3, partitions=40, rf=2)
    snap.brokers[4] = None
    plan = moves.rebalance(snap, replica_skew=0.10, byte_skew=0.15)
    counts, nbytes = snap.load(applied(snap, plan))
    assert moves.within(counts, nbytes, 0.10, 0.15), (counts, nbytes)
    assert all(m.adding == [4] for m in plan)  # only the new broker receives
    assert moves.total_bytes(plan) <= 1.1 * moves.rebalance_lower_bound(snap)


def test_rebalance_of_an_even_cluster_moves_nothing():
    snap = snapshot(brokers=4, partitions=40, rf=2, size=MB)
    snap.sizes = dict.fromkeys(snap.assignment, MB)
    assert moves.rebalance(snap) == []


def test_rebalance_lower_bound_is_a_bound():
    """On a small cluster every set of up to four single-replica moves is tried: none that reaches the skew moves
    fewer bytes than the bound, and the planner is within 1.1 of the best."""
    snap = snapshot(brokers=3, partitions=12, rf=1, size=10 * MB)
    snap.brokers[4] = None
    best = None
    for k in range(0, 5):
        for chosen in itertools.combinations(sorted(snap.assignment), k):
            for targets in itertools.product(snap.brokers, repeat=k):
                if any(snap.assignment[tp] == [t] for tp, t in zip(chosen, targets, strict=True)):
                    continue
                assignment = dict(snap.assignment)
                assignment.update({tp: [t] for tp, t in zip(chosen, targets, strict=True)})
                counts, nbytes = snap.load(assignment)
                if moves.within(counts, nbytes, 0.10, 0.3):
                    cost = sum(snap.size(tp) for tp in chosen)
                    best = cost if best is None else min(best, cost)
    bound = moves.rebalance_lower_bound(snap, 0.10, 0.3)
    assert best is not None and 0 < bound <= best
    plan = moves.rebalance(snap, 0.10, 0.3)
    assert moves.total_bytes(plan) <= 1.1 * best, (plan, best)


def test_stages_add_first_then_settle():
    m = moves.Move("t", 0, [4, 1, 2], [5, 1, 2], 10)
    add, settle = moves.stages(m)
    assert add == [1, 2, 5, 4] and settle == [5, 1, 2]
    assert moves.stages(moves.Move("t", 0, [1, 2], [2, 1], 1)) == ([2, 1], [2, 1])


def test_leadership_first_moves_the_leaving_broker_to_the_end():
    plan = [moves.Move("t", 0, [4, 1, 2], [5, 1, 2], 1), moves.Move("t", 1, [1, 4, 2], [1, 5, 2], 1)]
    assert moves.leadership_first(plan, {4}) == {("t", 0): [1, 2, 4]}


def test_lower_bound_seconds_is_the_busiest_broker_over_the_usable_throttle():
    plan = [moves.Move("t", 0, [1, 2], [1, 3], 100 * MB), moves.Move("t", 1, [1, 2], [1, 4], 50 * MB),
            moves.Move("t", 2, [2, 1], [2, 3], 30 * MB)]
    leaders = {("t", 0): 1, ("t", 1): 1, ("t", 2): 2}
    # broker 1 sends 150 MB, broker 3 receives 130 MB: 150 MB over (2 - 0.5) MB/s
    assert moves.lower_bound_seconds(plan, leaders, 2 * MB, 0.5 * MB) == pytest.approx(100)
    assert moves.lower_bound_seconds(plan, leaders, MB, MB) == float("inf")
    assert moves.lower_bound_seconds([], leaders, MB) == 0


def test_at_scale_the_plans_keep_racks_and_stay_near_the_least_bytes():
    """The modelled cluster of tools/bench_moves.py: 100 brokers in 3 racks, 50,000 replicas (the planning time
    is the benchmark's figure, not asserted here)."""
    snap = bench_moves.model(brokers=100, racks=3, replicas=50000)
    plan = moves.drain(snap, {51})
    held = sum(snap.size(tp) for tp, r in snap.assignment.items() if 51 in r)
    assert moves.total_bytes(plan) <= 1.05 * held
    assert bench_moves.rack_clashes(snap, applied(snap, plan)) == 0
    bench_moves.grow(snap, 10, 3)
    plan = moves.rebalance(snap)
    after = applied(snap, plan)
    counts, nbytes = snap.load(after)
    assert moves.within(counts, nbytes, 0.10, 0.15)
    assert moves.total_bytes(plan) <= 1.05 * moves.rebalance_lower_bound(snap)
    assert bench_moves.rack_clashes(snap, after) == 0
