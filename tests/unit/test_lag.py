"""Consumer lag and the verdicts on groups (module_utils/lag.py): pure rules, no cluster."""

import pytest
from ansible_collections.metal.kafka.plugins.module_utils import lag

TP = ("orders", 0)


def samples(*rows, members=1):
    """(committed, end) per sample, one second apart."""
    return [lag.Sample(float(i), {TP: c}, {TP: e}, members) for i, (c, e) in enumerate(rows)]


def test_lag_is_never_negative_and_unknown_without_a_commit():
    assert lag.lag(100, 120) == 20
    assert lag.lag(130, 120) == 0  # a commit read after the end passed it
    assert lag.lag(None, 120) is None
    assert lag.lag(-1, 120) is None  # Kafka's "no offset"


def test_an_idle_group_that_read_everything_is_ok_however_long_since_its_last_commit():
    assert lag.judge("g", samples((500, 500), (500, 500), (500, 500))).verdict == lag.OK
    # and with nobody in it
    assert lag.judge("g", samples((500, 500), (500, 500), members=0)).verdict == lag.OK


def test_a_consumer_that_keeps_up_is_ok_even_with_some_lag():
    assert lag.judge("g", samples((100, 130), (140, 160), (170, 195))).verdict == lag.OK


def test_a_consumer_falling_behind_is_lagging():
    assert lag.judge("g", samples((100, 130), (110, 160), (120, 200))).verdict == lag.LAGGING


def test_members_that_commit_nothing_while_records_wait_are_stalled():
    assert lag.judge("g", samples((100, 130), (100, 140), (100, 150))).verdict == lag.STALLED
    # the lag need not grow: nothing is written, and still nothing is read
    assert lag.judge("g", samples((100, 130), (100, 130), (100, 130))).verdict == lag.STALLED


def test_a_group_without_members_and_with_records_waiting_is_stopped():
    assert lag.judge("g", samples((100, 130), (100, 140), members=0)).verdict == lag.STOPPED


def test_the_group_takes_its_worst_partition_and_reports_seconds_of_lag():
    other = ("orders", 1)
    rows = [lag.Sample(0.0, {TP: 10, other: 50}, {TP: 10, other: 80}, 2),
            lag.Sample(1.0, {TP: 10, other: 50}, {TP: 10, other: 90}, 2)]
    group = lag.judge("g", rows, ages={other: 61.5})
    assert group.verdict == lag.STALLED
    assert [(p.partition, p.lag, p.seconds, p.verdict) for p in group.partitions] == [
        (0, 0, 0.0, lag.OK), (1, 40, 61.5, lag.STALLED)]
    assert group.lag == 40 and group.seconds == 61.5
    assert group.as_dict()["partitions"][1]["verdict"] == "stalled"
    with pytest.raises(ValueError):
        lag.judge("g", [])


def test_reset_targets_stay_inside_the_log():
    from ansible_collections.metal.kafka.plugins.module_utils import groups_kafka

    a, b = ("t", 0), ("t", 1)
    committed, earliest, latest = {a: 50}, {a: 10, b: 0}, {a: 100, b: 40}
    assert groups_kafka.reset_targets(committed, earliest, latest, to="earliest") == {a: 10, b: 0}
    assert groups_kafka.reset_targets(committed, earliest, latest, to="latest") == {a: 100, b: 40}
    # a shift moves the committed offset; a partition without a commit shifts from its start (or end, backwards)
    assert groups_kafka.reset_targets(committed, earliest, latest, shift=-45) == {a: 10, b: 0}
    assert groups_kafka.reset_targets(committed, earliest, latest, shift=20) == {a: 70, b: 20}
    assert groups_kafka.reset_targets(committed, earliest, latest, shift=-5) == {a: 45, b: 35}
    # a time past the last record gives the log end
    assert groups_kafka.reset_targets(committed, earliest, latest, at_time={a: 30, b: -1}) == {a: 30, b: 40}
    with pytest.raises(ValueError, match="say where to reset to"):
        groups_kafka.reset_targets(committed, earliest, latest)
