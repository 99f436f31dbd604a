"""How a backup reads consumer group offsets through kafka-metal's own client: coordinators that move are asked
again, a group deleted since it was listed is left out, other refusals stop the backup with the group named, and
settings that client does not speak fall back to librdkafka."""

from __future__ import annotations

import pytest
from kafka_metal import ensure_collection_path

ensure_collection_path()
from ansible_collections.metal.kafka.plugins.module_utils import backup as bk  # noqa: E402
from ansible_collections.metal.kafka.plugins.module_utils import backup_kafka, wire  # noqa: E402

CONF = {"bootstrap.servers": "k1:9092", "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "admin", "sasl.password": "secret"}


@pytest.fixture
def answers(monkeypatch):
    calls, script = [], []

    def committed_offsets(bootstrap, groups, timeout=10.0, security=None, metadata=False):
        calls.append(list(groups))
        assert metadata and bootstrap == "k1:9092" and security.mechanism == "SCRAM-SHA-512"
        got, missed = script.pop(0)
        return {g: o for g, o in got.items() if g in groups}, {g: w for g, w in missed.items() if g in groups}

    monkeypatch.setattr(wire, "committed_offsets", committed_offsets)
    monkeypatch.setattr(backup_kafka.time, "sleep", lambda s: None)
    return calls, script


def test_a_moving_coordinator_is_asked_again_and_a_deleted_group_left_out(answers):
    calls, script = answers
    script += [({"a": {("t", 0): (5, "")}}, {"b": "FindCoordinator: COORDINATOR_NOT_AVAILABLE: moving",
                                           "c": "OffsetFetch: GROUP_ID_NOT_FOUND"}),
               ({"b": {("t", 1): (7, "m")}}, {})]
    out = backup_kafka._committed_offsets(CONF, ["a", "b", "c"], timeout=60)
    assert out == {"a": {("t", 0): (5, "")}, "b": {("t", 1): (7, "m")}}
    assert calls == [["a", "b", "c"], ["b"]]


def test_a_refusal_that_will_not_pass_names_the_group(answers):
    _, script = answers
    script += [({}, {"g": "OffsetFetch: GROUP_AUTHORIZATION_FAILED"})]
    with pytest.raises(bk.BackupError, match="group g: OffsetFetch: GROUP_AUTHORIZATION_FAILED"):
        backup_kafka._committed_offsets(CONF, ["g"], timeout=60)


def test_a_coordinator_that_stays_away_ends_the_wait(answers, monkeypatch):
    _, script = answers
    script += [({}, {"g": "OffsetFetch: NOT_COORDINATOR"})] * 3
    clock = iter([0.0, 10.0, 100.0, 200.0])
    monkeypatch.setattr(backup_kafka.time, "monotonic", lambda: next(clock))
    with pytest.raises(bk.BackupError, match=r"group g: OffsetFetch: NOT_COORDINATOR \(for 60s\)"):
        backup_kafka._committed_offsets(CONF, ["g"], timeout=60)


def test_settings_the_client_does_not_speak_fall_back_to_librdkafka(answers):
    calls, _ = answers
    assert backup_kafka._committed_offsets({"bootstrap.servers": "k1:9092", "security.protocol": "SASL_SSL",
                                            "sasl.mechanism": "GSSAPI"}, ["g"], timeout=60) is None
    assert calls == []
