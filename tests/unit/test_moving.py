"""Pieces of the move engine that need no cluster (module_utils/moving.py); the engine itself runs against a
real four-broker Kafka in tests/integration/test_moves_local.py and on lab hosts."""

from ansible_collections.metal.kafka.plugins.module_utils import moves, moving


def test_throttle_settings_cover_only_the_moving_replicas():
    plan = [moves.Move("a", 0, [1, 2, 4], [1, 2, 3], 10), moves.Move("a", 3, [4, 1, 2], [3, 1, 2], 10),
            moves.Move("b", 1, [1, 2], [2, 1], 10)]  # a reorder copies nothing: not throttled
    topics, brokers = moving.throttle_settings(plan, 1_500_000)
    assert topics == {"a": {moving.LEADER_REPLICAS: "0:1,0:2,0:4,3:1,3:2,3:4",
                            moving.FOLLOWER_REPLICAS: "0:3,3:3"}}
    assert brokers == {b: {moving.LEADER_RATE: "1500000", moving.FOLLOWER_RATE: "1500000"} for b in (1, 2, 3, 4)}


def test_progress_reports_bytes_rate_and_time_left():
    now = [0.0]
    p = moving.Progress(100 * 2**20, clock=lambda: now[0])
    p.add(0)
    now[0] = 10.0
    p.add(20 * 2**20)
    assert p.rate == 2 * 2**20
    assert p.line() == "20.0 MiB of 100.0 MiB copied (20 %), 2.0 MiB/s, about 40 s left"


def test_usual_replication_is_what_most_partitions_have():
    assert moving.usual_replication({("a", 0): [1, 2, 3], ("a", 1): [1, 2, 3, 4], ("a", 2): [2, 3, 4],
                                     ("b", 0): [1]}) == {"a": 3, "b": 1}


def test_health_problems_name_the_partitions_out_of_sync():
    view = {"assignment": {("a", 0): [1, 2, 3], ("a", 1): [2, 3, 4]}, "isr": {("a", 0): [1, 2], ("a", 1): [2, 3, 4]}}
    [problem] = moving.health_problems(view)
    assert problem.startswith("partition a-0 is under-replicated (replicas [1, 2, 3], in sync [1, 2]): wait until")


def test_throttle_rates_read_as_operators_write_them():
    import pytest

    cli = moving
    assert cli.parse_rate("2MB") == 2_000_000
    assert cli.parse_rate("1.5MiB") == 1_572_864
    assert cli.parse_rate("500000") == 500_000
    assert cli.parse_rate("800k/s") == 800_000
    with pytest.raises(ValueError, match="give bytes per second, such as 2MB"):
        cli.parse_rate("fast")
    with pytest.raises(ValueError, match="below 1 KiB/s"):
        cli.parse_rate("100")


class _Cluster:
    """Just enough of moving_kafka.Cluster for the rebuild's checks (nothing is changed before they pass)."""

    def __init__(self, brokers, assignment, isr, flight=None):
        self.brokers, self.assignment, self.isr, self.flight = brokers, assignment, isr, flight or {}
        self.changed = []

    def cluster_id(self):
        return "c1"

    def view(self, sizes=True):
        return {"brokers": {b: None for b in self.brokers}, "assignment": self.assignment, "isr": self.isr,
                "leaders": {tp: r[0] for tp, r in self.isr.items()}, "sizes": {tp: 100 for tp in self.assignment},
                "free": {}}

    def in_flight(self):
        return self.flight

    def throttles(self):
        return {"topics": {}, "brokers": {}}

    def set_throttles(self, topics, brokers):
        self.changed.append((topics, brokers))


def test_rebuild_refuses_to_empty_the_only_copy_and_leaves_a_healthy_broker_alone(tmp_path):
    import pytest

    assignment = {("a", 0): [3, 1, 2], ("a", 1): [1, 2, 3], ("b", 0): [3, 2]}
    # b-0's only in-sync replica is broker 3 (the one with new disks): its data exists nowhere else
    lonely = _Cluster([1, 2], assignment, {("a", 0): [1, 2], ("a", 1): [1, 2], ("b", 0): [3]})
    engine = moving.Engine(lonely, str(tmp_path), say=lambda line: None, throttle=1_000_000)
    with pytest.raises(moving.MoveError, match=r"broker 3 is the only in-sync replica of b-0: that data exists "):
        engine.rebuild_prepare(3)
    assert lonely.changed == [] and engine.state is None
    healthy = _Cluster([1, 2, 3], assignment, {tp: list(r) for tp, r in assignment.items()})
    engine = moving.Engine(healthy, str(tmp_path), say=lambda line: None, throttle=1_000_000)
    assert not engine.rebuild_needed(3)
    with pytest.raises(moving.NothingToDo, match="broker 3 is running and every replica it has is in sync"):
        engine.rebuild_prepare(3)
    with pytest.raises(moving.MoveError, match="no partition has a replica on broker 9"):
        engine.rebuild_prepare(9)
    assert healthy.changed == []


def test_rebuild_throttles_only_the_refetch_and_waits_for_the_broker_to_set_its_own(tmp_path):
    import pytest

    assignment = {("a", 0): [3, 1, 2], ("a", 1): [1, 2, 4]}
    down = _Cluster([1, 2, 4], assignment, {("a", 0): [1, 2], ("a", 1): [1, 2, 4]})
    engine = moving.Engine(down, str(tmp_path), say=lambda line: None, throttle=2_000_000)
    assert engine.rebuild_prepare(3) is True  # to be started
    [(topics, brokers)] = down.changed
    assert topics == {"a": {moving.LEADER_REPLICAS: "0:1,0:2", moving.FOLLOWER_REPLICAS: "0:3"}}
    assert sorted(brokers) == [1, 2]  # broker 3 is down: its own rates are set once it answers
    assert engine.state["kind"] == "rebuild" and engine.state["touched"]["brokers"] == [1, 2]
    # run again (resumed): the same checks pass, nothing else is planned
    again = moving.Engine(down, str(tmp_path), say=lambda line: None, throttle=2_000_000)
    assert again.rebuild_prepare(3) is True
    with pytest.raises(moving.MoveError, match="another operation is under way"):
        again.run("drain", [4])


def test_rebuild_leader_rates_add_up_to_the_throttle_in_proportion_to_what_each_leader_sends():
    plan = [moves.Move("a", 0, [1, 2], [1, 2, 3], 300), moves.Move("a", 1, [2, 4], [2, 4, 3], 100),
            moves.Move("a", 2, [4, 1], [4, 1, 3], 0)]
    rates = moving.rebuild_leader_rates(plan, {("a", 0): 1, ("a", 1): 2, ("a", 2): 4}, 3, 1_000_000)
    assert rates[1] == 750_000 and rates[2] == 250_000  # broker 1 sends three times what broker 2 sends
    assert rates[4] == 83_333  # leads only an empty partition: a floor, so a new leader is not stalled


def test_write_rates_are_measured_and_counted_in_the_lower_bound(tmp_path):
    now = [0.0]
    cluster = _Cluster([1, 2, 3, 4], {("a", 0): [1, 2, 3], ("a", 1): [2, 3, 4]},
                       {("a", 0): [1, 2, 3], ("a", 1): [2, 3, 4]})
    views = iter([{("a", 0): 10_000_000, ("a", 1): 5_000_000}, {("a", 0): 10_500_000, ("a", 1): 5_000_000}])
    plain = cluster.view

    def view(sizes=True):
        out = plain(sizes)
        out["sizes"] = next(views)
        return out

    cluster.view = view
    engine = moving.Engine(cluster, str(tmp_path), say=lambda line: None, throttle=1_000_000, rate_window=5.0,
                           sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0])
    measured = engine.measured_view()
    assert measured["growth"] == {("a", 0): 100_000.0}  # 500 kB in 5 s; a-1 took no writes
    plan = [moves.Move("a", 0, [1, 2, 3], [4, 2, 3], 10_500_000)]
    # broker 4 receives 10.5 MB while 100 kB/s more arrive: 10.5 MB / (1 MB/s - 0.1 MB/s)
    info = engine.describe(plan, measured)
    assert round(info["lower_bound_seconds"], 2) == round(10_500_000 / 900_000, 2)
    assert info["write_rate"] == 100_000.0


def test_rebalance_under_writes_plans_for_the_sizes_at_its_end():
    # two brokers hold everything, a third is empty; eight partitions take writes. A plan made for today's
    # sizes is out of balance by the time its copy ends; the engine's plan (for the sizes at the end) is not.
    brokers = {1: None, 2: None, 3: None}
    assignment = {("t", p): [1, 2] for p in range(60)}
    sizes = {("t", p): 4_000_000 for p in range(60)}
    growth = {("t", p): 50_000.0 for p in range(8)}

    class Fixed:
        def cluster_id(self):
            return "c"

    engine = moving.Engine(Fixed(), "/nonexistent-state-dir", throttle=1_000_000, rate_window=0)
    view = {"sizes": sizes, "leaders": {tp: 1 for tp in assignment}, "growth": growth}
    snapshot = moves.Snapshot(brokers, assignment, sizes)

    def at_the_end(plan):
        seconds = moves.lower_bound_seconds(plan, view["leaders"], 1_000_000, growth)
        later = {tp: s + growth.get(tp, 0) * seconds for tp, s in sizes.items()}
        final = dict(assignment)
        for m in plan:
            final[(m.topic, m.partition)] = m.after
        return moves.Snapshot(brokers, final, later).load()

    assert not moves.within(*at_the_end(moves.rebalance(snapshot)), 0.10, 0.15)
    plan = engine._rebalance(snapshot, view)
    assert moves.within(*at_the_end(plan), 0.10, 0.15)
    assert all(m.size == 4_000_000 for m in plan)  # reported at today's sizes
