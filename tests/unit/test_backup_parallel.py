"""How a backup's or a restore's partitions are shared among processes."""

from __future__ import annotations

from kafka_metal import ensure_collection_path

ensure_collection_path()
from ansible_collections.metal.kafka.plugins.module_utils import backup_parallel as bp  # noqa: E402


def test_balance_spreads_by_size_and_keeps_every_key_once():
    sizes = {"a/0": 900, "a/1": 500, "a/2": 400, "b/0": 300, "b/1": 100, "c/0": 0}
    bins = bp.balance(sizes, 2)
    assert sorted(k for b in bins for k in b) == sorted(sizes)
    loads = [sum(sizes[k] for k in b) for b in bins]
    assert sorted(loads) == [1000, 1200], (bins, loads)
    assert max(loads) - min(loads) <= 300


def test_balance_never_makes_empty_bins_or_more_than_asked():
    assert bp.balance({"a/0": 5}, 4) == [["a/0"]]
    assert bp.balance({}, 3) == []
    assert len(bp.balance({f"t/{i}": 10 for i in range(10)}, 3)) == 3
    # empty partitions still count, so many of them do not all land on one process
    assert [len(b) for b in bp.balance({f"t/{i}": 0 for i in range(4)}, 2)] == [2, 2]


def test_a_pool_without_children_runs_jobs_here_and_reports_their_messages(monkeypatch):
    seen = []

    def job(send, value):
        send({"kind": "progress", "value": value})
        return value * 2

    monkeypatch.setattr(bp, "_run_job", lambda name, kwargs, send: job(send, **kwargs))
    with bp.Pool(0) as pool:
        assert pool.run([("store", {"value": 3})], lambda i, m: seen.append((i, m))) == [6]
    assert seen == [(0, {"kind": "progress", "value": 3})]
