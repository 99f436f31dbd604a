import itertools
import math
import random

import pytest
from ansible_collections.metal.kafka.plugins.module_utils import roll

NOW = 1_700_000_000_000


def part(topic, n, replicas, isr=None, leader=None, min_isr=2):
    isr = list(replicas) if isr is None else list(isr)
    if leader is None:
        leader = isr[0] if isr else -1
    return {"topic": topic, "partition": n, "replicas": list(replicas), "isr": isr, "leader": leader,
            "min_isr": min_isr}


def voter(node, leo=1000, age_ms=100):
    return {"id": node, "log_end_offset": leo, "last_caught_up_timestamp": NOW - age_ms}


def quorum(voters, leader=1):
    return {"leader_id": leader, "voters": voters, "observers": [voter(100), voter(101)], "now_ms": NOW,
            "max_lag_ms": 5000, "max_lag_offsets": 100}


def zk(*modes, controller_id=1):
    return {"members": [{"host": f"zk{i}", "mode": m} for i, m in enumerate(modes, 1)],
            "controller_id": controller_id}


# --------------------------------------------------------------------------- clusters


def rack_aware_cluster(brokers=100, racks=3, partitions=1200, seed=7):
    """Every partition has one replica in each rack (RF 3, min ISR 2)."""
    rack_of = {b: f"rack-{(b - 1) % racks}" for b in range(1, brokers + 1)}
    members = {r: sorted(b for b in rack_of if rack_of[b] == r) for r in sorted(set(rack_of.values()))}
    rng = random.Random(seed)
    parts = []
    for i in range(partitions):
        replicas = [rng.choice(members[r]) for r in sorted(members)]
        rng.shuffle(replicas)
        parts.append(part(f"topic-{i % 40}", i // 40, replicas))
    brokers = {b: {"host": f"kafka{b}.example", "rack": rack_of[b]} for b in rack_of}
    return brokers, parts, members


def rack_blind_cluster(brokers=12, racks=3, partitions=400, seed=11):
    """Replicas placed at random without regard to racks (RF 3, min ISR 2)."""
    rng = random.Random(seed)
    parts = [part("orders", i, rng.sample(range(1, brokers + 1), 3)) for i in range(partitions)]
    infos = {b: {"host": f"kafka{b}.example", "rack": f"rack-{(b - 1) % racks}"} for b in range(1, brokers + 1)}
    return infos, parts


def test_rack_aware_cluster_is_three_batches():
    brokers, parts, members = rack_aware_cluster()
    assert len(brokers) == 100 and len(parts) == 1200
    plan = roll.plan_batches(parts, brokers)
    assert plan.batches == [members["rack-0"], members["rack-1"], members["rack-2"]]
    assert sorted(itertools.chain.from_iterable(plan.batches)) == list(range(1, 101))
    assert all(r.startswith("rack rack-") for r in plan.reasons) and plan.rejected == [] and plan.reported == []
    for batch in plan.batches:
        ok, blocking, _ = roll.batch_gate(parts, batch)
        assert ok and blocking == []


def test_rack_batches_are_split_by_max_batch_size():
    brokers, parts, members = rack_aware_cluster()
    plan = roll.plan_batches(parts, brokers, max_batch_size=10)
    assert [len(b) for b in plan.batches] == [10, 10, 10, 4, 10, 10, 10, 3, 10, 10, 10, 3]
    assert plan.batches[0] == members["rack-0"][:10]
    assert "part 1 of 4, max_batch_size 10" in plan.reasons[0]
    assert sorted(itertools.chain.from_iterable(plan.batches)) == list(range(1, 101))


def test_rack_blind_cluster_is_one_by_one():
    brokers, parts = rack_blind_cluster()
    shared = {pair for p in parts for pair in itertools.combinations(sorted(p["replicas"]), 2)}
    assert shared == set(itertools.combinations(range(1, 13), 2))  # any two brokers share a partition
    plan = roll.plan_batches(parts, brokers)
    assert plan.batches == [[b] for b in (1, 4, 7, 10, 2, 5, 8, 11, 3, 6, 9, 12)]
    assert len(plan.rejected) == 3 and all("may not be down together" in r for r in plan.rejected)
    assert all(r.startswith("one by one: broker ") for r in plan.reasons)
    assert "cannot be batched with any broker left" in plan.reasons[0] and "partition orders-" in plan.reasons[0]


def test_unsafe_rack_falls_back_to_greedy():
    brokers = {b: {"host": f"h{b}", "rack": "a" if b <= 3 else "b" if b <= 6 else "c"} for b in range(1, 10)}
    parts = [part("t", 0, [1, 4, 7]), part("t", 1, [2, 5, 8]), part("t", 2, [3, 6, 9]),
             part("t", 3, [1, 2, 9])]  # brokers 1 and 2 (rack a) share a partition with min ISR 2
    plan = roll.plan_batches(parts, brokers)
    assert plan.batches == [[4, 5, 6], [7, 8, 9], [1, 3], [2]]
    assert plan.reasons[2].startswith("greedy: brokers [1, 3]")
    assert "one by one: broker 2" in plan.reasons[3]
    assert plan.rejected[0].startswith("rack a: brokers [1, 2, 3] may not be down together: partition t-3")


def test_plan_ignores_but_reports_unsatisfiable_partitions():
    brokers, parts, members = rack_aware_cluster(brokers=9, partitions=30)
    parts.append(part("legacy", 0, [members["rack-0"][0], members["rack-1"][0]], min_isr=3))
    plan = roll.plan_batches(parts, brokers)
    assert plan.batches == [members["rack-0"], members["rack-1"], members["rack-2"]]
    assert len(plan.reported) == 1 and "partition legacy-0: replication factor 2" in plan.reported[0]


def test_plan_without_racks_and_with_batch_size_one():
    parts = [part("t", 0, [1, 2, 3])]
    plan = roll.plan_batches(parts, [1, 2, 3, 4])
    assert plan.batches == [[1, 4], [2], [3]]
    assert roll.plan_batches(parts, {"1": {"host": "a", "rack": "x"}, "2": {"host": "b", "rack": "x"}},
                             max_batch_size=1).batches == [[1], [2]]
    with pytest.raises(ValueError, match="max_batch_size"):
        roll.plan_batches(parts, [1], max_batch_size=0)


# --------------------------------------------------------------------------- broker gate


def test_broker_gate_ok():
    parts = [part("t", 0, [1, 2, 3]), part("t", 1, [4, 5, 6])]
    assert roll.broker_gate(parts, 1) == (True, [], [])
    assert roll.broker_gate(parts, 9) == (True, [], [])


def test_broker_gate_blocks_when_isr_already_at_min():
    parts = [part("orders", 3, [1, 2, 3], isr=[1, 2])]
    ok, blocking, reported = roll.broker_gate(parts, 2)
    assert not ok and reported == []
    assert blocking == ["partition orders-3: without broker 2 it keeps 1 in-sync replica(s) [1], below "
                        "min.insync.replicas 2; wait until replicas [3] are back in sync"]
    assert roll.broker_gate(parts, 3)[0]  # broker 3 is not in sync: taking it down changes nothing


def test_broker_gate_reports_rf_below_min_isr():
    parts = [part("small", 0, [1, 2], min_isr=3)]
    ok, blocking, reported = roll.broker_gate(parts, 1)
    assert ok and blocking == []
    assert reported == ["partition small-0: replication factor 2 is below its min.insync.replicas 3, so it can never "
                        "satisfy it and is not waited for; raise its replication factor or lower its "
                        "min.insync.replicas"]


def test_broker_gate_blocks_sole_isr_member():
    ok, blocking, _ = roll.broker_gate([part("t", 0, [1, 2, 3], isr=[2], min_isr=1)], 2)
    assert not ok and blocking[0].startswith("partition t-0: broker 2 holds every in-sync replica [2]")
    assert "wait until replicas [1, 3] are back in sync" in blocking[0]
    # even when the partition can never meet its min ISR, going offline blocks
    ok, blocking, reported = roll.broker_gate([part("t", 1, [2, 4], isr=[2], min_isr=3)], 2)
    assert not ok and reported == [] and "would go offline" in blocking[0]
    ok, blocking, _ = roll.broker_gate([part("t", 2, [5], min_isr=1)], 5)
    assert not ok and "replication factor 1" in blocking[0]


def test_broker_gate_when_rf_equals_min_isr():
    ok, blocking, _ = roll.broker_gate([part("t", 0, [1, 2, 3], min_isr=3)], 1)
    assert not ok and "lower min.insync.replicas to 2" in blocking[0]


def test_batch_gate():
    parts = [part("t", 0, [1, 2, 3]), part("t", 1, [3, 4, 5])]
    assert roll.batch_gate(parts, [1, 4])[0]
    ok, blocking, _ = roll.batch_gate(parts, [3, 5])
    assert not ok and blocking[0].startswith("partition t-1: without brokers [3, 5] it keeps 1")


# --------------------------------------------------------------------------- controller gate


def test_controller_gate_three_caught_up_voters():
    q = quorum([voter(1), voter(2), voter(3)])
    for node in (1, 2, 3):
        assert roll.controller_gate(q, node) == (True, [])


def test_controller_gate_refuses_second_voter_down():
    q = quorum([voter(1), voter(2), voter(3, leo=500, age_ms=60_000)])
    ok, problems = roll.controller_gate(q, 2)
    assert not ok
    assert problems == ["controller 2 may not go down: without it 1 of 3 voters are caught up [1], a majority "
                        "needs 2; lagging: voter 3 (lag 500 offsets, last caught up 60000 ms ago); wait for them to "
                        "catch up or repair them first"]
    assert not roll.controller_gate(q, 1)[0]
    assert roll.controller_gate(q, 3) == (True, [])  # the lagging one itself may restart


def test_controller_gate_five_voters():
    q = quorum([voter(1), voter(2), voter(3), voter(4), voter(5, age_ms=9_000)])
    assert all(roll.controller_gate(q, n)[0] for n in (1, 2, 3, 4, 5))
    q = quorum([voter(1), voter(2), voter(3), voter(4, age_ms=9_000), voter(5, leo=10)])
    assert not roll.controller_gate(q, 2)[0] and not roll.controller_gate(q, 1)[0]
    assert roll.controller_gate(q, 4)[0] and roll.controller_gate(q, 5)[0]


def test_controller_gate_limits_and_lag_field():
    q = {"leader_id": 1, "voters": [{"id": 1, "lag": 0}, {"id": 2, "lag": 50}, {"id": 3, "lag": 5000}]}
    assert not roll.controller_gate(q, 2)[0]
    assert roll.controller_gate(q, 2, max_lag_offsets=10_000)[0]
    q = {"leader_id": 1, "voters": [voter(1), voter(2, age_ms=20_000), voter(3)]}
    assert roll.controller_gate(q, 3, now_ms=NOW)[1][0].startswith("controller 3 may not go down")
    assert roll.controller_gate(q, 3, now_ms=NOW, max_lag_ms=30_000) == (True, [])
    # unknown offsets count as not caught up
    q = quorum([voter(1), voter(2, leo=-1), voter(3)])
    ok, problems = roll.controller_gate(q, 3)
    assert not ok and "voter 2 (log end offset unknown" in problems[0]


def test_controller_gate_without_leader_and_for_non_voters():
    q = quorum([voter(1), voter(2), voter(3)], leader=-1)
    ok, problems = roll.controller_gate(q, 2)
    assert not ok and "no leader" in problems[0]
    assert roll.controller_gate(quorum([voter(1), voter(2), voter(3)]), 100) == (True, [])
    assert not roll.controller_gate(quorum([voter(1)]), 1)[0]


def test_zookeeper_gate():
    assert roll.zookeeper_gate(zk("follower", "leader", "follower"), "zk1") == (True, [])
    ok, problems = roll.zookeeper_gate(zk("down", "leader", "follower"), "zk3")
    assert not ok and problems == ["ZooKeeper member zk3 may not go down: without it 1 of 3 members serve, a "
                                   "majority needs 2; start zk1 first"]
    assert roll.zookeeper_gate(zk("down", "leader", "follower"), "zk1")[0]


# --------------------------------------------------------------------------- preflight


def test_preflight_clean_cluster():
    parts = [part("t", i, [1, 2, 3]) for i in range(6)] + [part("odd", 0, [1, 2], min_isr=3)]
    q = quorum([voter(1), voter(2), voter(3, age_ms=60_000)])  # one lagging voter still leaves a majority
    assert roll.preflight(parts, quorum=q) == []
    assert roll.preflight(parts, zookeeper=zk("follower", "leader", "down")) == []


def test_preflight_offline():
    problems = roll.preflight([part("t", 0, [1, 2, 3], isr=[], leader=-1), part("t", 1, [1, 2, 3], isr=[3], leader=-1)])
    assert len(problems) == 2
    assert problems[0] == ("partition t-0 is offline (leader -1, in sync [], replicas [1, 2, 3]): start or repair "
                           "brokers [1, 2, 3] until it has a leader again; do not roll a cluster with offline "
                           "partitions")
    assert problems[1].startswith("partition t-1 is offline (leader -1, in sync [3]")


def test_preflight_under_replicated():
    assert roll.preflight([part("t", 0, [1, 2, 3], isr=[1, 2])]) == [
        "partition t-0 is under-replicated (in sync [1, 2] of replicas [1, 2, 3]): wait until brokers [3] catch up "
        "(kafka-topics.sh --describe --under-replicated-partitions) before rolling"]


def test_preflight_under_min_isr():
    assert roll.preflight([part("t", 4, [1, 2, 3], isr=[2])]) == [
        "partition t-4 has 1 in-sync replica(s) [2], below its min.insync.replicas 2 (acks=all writes already fail): "
        "bring brokers [1, 3] back in sync before rolling"]


def test_preflight_quorum_without_leader():
    problems = roll.preflight([], quorum=quorum([voter(1), voter(2), voter(3)], leader=-1))
    assert len(problems) == 1 and problems[0].startswith("the KRaft quorum has no leader (leader_id -1)")
    assert roll.preflight([], quorum={"leader_id": -1, "voters": []})[0].startswith("the KRaft quorum reports no")


def test_preflight_lagging_majority():
    q = quorum([voter(1), voter(2, age_ms=60_000), voter(3, leo=10)])
    assert roll.preflight([], quorum=q) == [
        "the KRaft quorum has 1 caught-up voter(s) [1] of 3, a majority needs 2; lagging: voter 2 (lag 0 offsets, "
        "last caught up 60000 ms ago), voter 3 (lag 990 offsets, last caught up 100 ms ago); wait for them to catch "
        "up or repair them before rolling"]


def test_preflight_zookeeper():
    problems = roll.preflight([], zookeeper=zk("follower", "down", "follower"))
    assert problems == ["the ZooKeeper ensemble has no leader (zk1=follower, zk2=down, zk3=follower): repair it (srvr "
                        "on each member, their logs) before rolling"]
    problems = roll.preflight([], zookeeper=zk("down", "leader", None))
    assert len(problems) == 1 and problems[0].startswith("the ZooKeeper ensemble has no quorum: 1 of 3 members serve")
    problems = roll.preflight([], zookeeper=zk("leader", "follower", "follower", controller_id=-1))
    assert problems[0].startswith("no broker is the active controller")


# --------------------------------------------------------------------------- order


def test_restart_order_kraft_active_controller_last():
    order = roll.restart_order("kraft", controllers=[3003, 3001, 3002], brokers=[2, 1, 3], active_controller_id=3002)
    assert order == [("controller", 3001), ("controller", 3003), ("controller", 3002),
                     ("broker", 1), ("broker", 2), ("broker", 3)]
    assert order[0].key == "controller:3001"
    combined = roll.restart_order("kraft", controllers=["1", "2", "3"], brokers=[1, 2, 3, 4], active_controller_id=1)
    assert combined == [("combined", 2), ("combined", 3), ("combined", 1), ("broker", 4)]


def test_restart_order_zookeeper_mode():
    order = roll.restart_order("zookeeper", brokers=[1, 2, 3], zk_members=["zk3", "zk1", "zk2"], zk_leader="zk2",
                               controller_broker_id=2)
    assert order == [("zookeeper", "zk1"), ("zookeeper", "zk3"), ("zookeeper", "zk2"),
                     ("broker", 1), ("broker", 3), ("broker", 2)]


def test_restart_order_rejects_bad_input():
    with pytest.raises(ValueError, match="mode"):
        roll.restart_order("kraf")
    with pytest.raises(ValueError, match="no KRaft controllers"):
        roll.restart_order("zookeeper", controllers=[1])
    with pytest.raises(ValueError, match="no ZooKeeper"):
        roll.restart_order("kraft", zk_members=["zk1"])


def test_next_node_follows_the_moving_active_controller():
    remaining = roll.restart_order("kraft", controllers=[1, 2, 3], brokers=[4, 5], active_controller_id=1)
    assert roll.next_node(remaining, "kraft", active_controller_id=1) == ("controller", 2)
    remaining.remove(("controller", 2))
    # leadership moved to 3 meanwhile: 1 goes first now, the active controller last
    assert roll.next_node(remaining, "kraft", active_controller_id=3) == ("controller", 1)
    remaining = [("controller", 3), ("broker", 4), ("broker", 5)]
    assert roll.next_node(remaining, "kraft", active_controller_id=3) == ("controller", 3)
    assert roll.next_node([("broker", 5), ("broker", 4)], "kraft") == ("broker", 4)
    assert roll.next_node([], "kraft") is None
    assert roll.next_node([("broker", 1), ("broker", 2)], "zookeeper", controller_broker_id=1) == ("broker", 2)
    with pytest.raises(ValueError, match="unknown restart roles"):
        roll.next_node([("kafka", 1)], "kraft")


# --------------------------------------------------------------------------- waiting and resuming


def test_backoff_delays_sum_and_cap():
    delays = list(roll.backoff_delays())
    assert delays[:6] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0]
    assert max(delays) == 30.0 and math.isclose(math.fsum(delays), 600.0)
    assert math.fsum(delays) <= 600.0 + 1e-9
    assert list(roll.backoff_delays(total=10)) == [1.0, 2.0, 4.0, 3.0]
    assert list(roll.backoff_delays(initial=5, factor=1, maximum=3, total=7)) == [3.0, 3.0, 1.0]
    assert list(roll.backoff_delays(total=0)) == []
    for bad in ({"initial": 0}, {"factor": 0.5}, {"maximum": 0}, {"total": -1}):
        with pytest.raises(ValueError):
            list(roll.backoff_delays(**bad))


def test_wait_for_gate():
    slept = []
    answers = iter([(False, ["not yet"], []), (False, ["not yet"], []), (True, [], [])])
    assert roll.wait_for_gate(lambda: next(answers), slept.append, roll.backoff_delays(total=10)) == 3.0
    assert slept == [1.0, 2.0]
    slept.clear()
    with pytest.raises(roll.RollGateError, match="broker 2: still not safe after waiting 10 s") as err:
        roll.wait_for_gate(lambda: (False, ["partition t-0: wait"]), slept.append, roll.backoff_delays(total=10),
                           what="broker 2")
    assert slept == [1.0, 2.0, 4.0, 3.0] and err.value.problems == ["partition t-0: wait"]
    assert "- partition t-0: wait" in str(err.value)


def test_resume_filter():
    nodes = [1, 2, 3, 4]
    assert roll.resume_filter(nodes, {2, 4}) == [1, 3]
    assert roll.resume_filter(nodes, []) == nodes
    # a mapping read back from JSON: node -> change id it was restarted for
    assert roll.resume_filter(nodes, {"1": "change-7", "2": "change-6", "3": None}, marker="change-7") == [2, 3, 4]
    # or node -> version it runs, with the target version as marker
    assert roll.resume_filter(nodes, {1: "3.9.1", 2: "4.1.0"}, marker="4.1.0") == [1, 3, 4]
    steps = roll.restart_order("kraft", controllers=[1, 2, 3], brokers=[4, 5], active_controller_id=1)
    left = roll.resume_filter(steps, {"controller:2": "c1", "broker:5": "c1", "broker:2": "c1"}, marker="c1")
    assert left == [("controller", 3), ("controller", 1), ("broker", 4)]
    assert roll.resume_filter(steps, [roll.Step("controller", 3), ["broker", 4]]) == [
        ("controller", 2), ("controller", 1), ("broker", 5)]
    with pytest.raises(ValueError, match="marker"):
        roll.resume_filter(nodes, {1: "x"})
