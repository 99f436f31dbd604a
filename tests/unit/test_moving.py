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
