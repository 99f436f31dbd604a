"""Backups on disk without Kafka: the record format, digests, chunks and manifests, verification,
the plans of a backup and a restore, the list of backups and their chains, and the CLI's pure parts."""

import datetime
import functools
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import stat
import struct

import kafka_metal
import pytest

kafka_metal.ensure_collection_path()

from ansible_collections.metal.kafka.plugins.module_utils import backup as bk  # noqa: E402
from kafka_metal import backup as cli  # noqa: E402
from kafka_metal import main  # noqa: E402

Z = bk.ZERO_DIGEST
T0 = 1_700_000_000_000
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC = b"\x1f\x8b"
FORMAT1 = os.path.join(os.path.dirname(__file__), os.pardir, "fixtures", "backup-format1")


def rec(offset, value=b"v", key=None, ts=T0, ts_type=bk.TIMESTAMP_CREATE, headers=()):
    return bk.Record(offset, ts, ts_type, key, value, headers)


def records(offsets, size=8):
    return [rec(o, value=(f"value-{o}-".encode() * size)[: size * 4], key=f"k{o}".encode(),
                headers=[("trace", f"t{o}".encode())]) for o in offsets]


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


# --- record format --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "record",
    [
        rec(0, key=None, value=b"plain"),
        rec(1, key=b"k", value=None),  # a tombstone
        rec(2, key=b"", value=b""),
        rec(3, key=None, value=None),
        rec(4, headers=[("h-none", None), ("h-empty", b""), ("h", b"\x00\xff")]),
        rec(5, headers=[("ünïcödé-✓", b"x"), ("日本", None)]),
        rec(6, key=b"\x00" * 3, value=os.urandom(5 * 1024 * 1024)),
        rec(2**62, ts=-1, ts_type=0, value=b"no timestamp"),
        rec(7, ts=T0, ts_type=bk.TIMESTAMP_LOG_APPEND, headers=[("dup", b"1"), ("dup", b"2")]),
    ],
    ids=["null-key", "tombstone", "empty-bytes", "all-null", "header-values", "unicode-names", "large", "big-offset",
         "log-append-dup-headers"],
)
def test_encode_decode_round_trip(record):
    assert bk.decode_all(bk.encode(record)) == [record]


def test_decode_all_keeps_order_and_distinguishes_null_from_empty():
    recs = [rec(0, key=None, value=b""), rec(1, key=b"", value=None), rec(2, headers=[("a", None), ("b", b"")])]
    out = bk.decode_all(b"".join(bk.encode(r) for r in recs))
    assert out == recs
    assert (out[0].key, out[0].value, out[1].key, out[1].value) == (None, b"", b"", None)
    assert out[2].headers == [("a", None), ("b", b"")]
    assert bk.decode_all(b"") == []


def test_header_names_come_back_as_text_and_text_values_as_bytes():
    out = bk.decode_all(bk.encode(rec(0, headers=[(b"raw-name", "text value"), ("é", b"x")])))
    assert out[0].headers == [("raw-name", b"text value"), ("é", b"x")]


def test_record_equality_covers_every_field():
    base = rec(1, key=b"k", headers=[("h", b"1")])
    assert base == rec(1, key=b"k", headers=[("h", b"1")])
    for other in (rec(2, key=b"k", headers=[("h", b"1")]), rec(1, key=b"k", ts=T0 + 1, headers=[("h", b"1")]),
                  rec(1, key=b"k", ts_type=2, headers=[("h", b"1")]), rec(1, key=None, headers=[("h", b"1")]),
                  rec(1, key=b"k", value=b"w", headers=[("h", b"1")]), rec(1, key=b"k", headers=[("h", None)])):
        assert base != other
    assert base != "not a record"


def _cuts():
    recs = [rec(5, key=b"k", value=b"value" * 10, headers=[("h", b"x"), ("n", None)]),
            rec(6, key=None, value=None, ts_type=bk.TIMESTAMP_LOG_APPEND),
            rec(7, key=b"", value=b"", headers=[("é✓", b"v")]),
            rec(8, key=b"kk", value=b"vv", headers=[("a", b"xyz")])]
    data = b"".join(bk.encode(r) for r in recs)
    bounds, pos = {0}, 0
    for r in recs:
        pos += len(bk.encode(r))
        bounds.add(pos)
    return recs, data, bounds


def test_decode_all_never_returns_a_wrong_record_from_a_truncated_buffer():
    """A cut at a record boundary gives the records before it; a cut inside a record raises (a BackupError,
    see the next test) and never yields a short record."""
    recs, data, bounds = _cuts()
    raised = set()
    for cut in range(len(data)):
        if cut in bounds:
            out = bk.decode_all(data[:cut])
            assert out == recs[: len(out)] and len(out) == sorted(bounds).index(cut), cut
            continue
        with pytest.raises((bk.BackupError, struct.error, UnicodeDecodeError)) as exc:
            bk.decode_all(data[:cut])
        raised.add(exc.type)
    assert bk.BackupError in raised  # a cut inside the last header value is caught by the end check


def test_decode_all_reports_every_truncation_as_backup_error():
    recs, data, bounds = _cuts()
    for cut in range(len(data)):
        if cut not in bounds:
            with pytest.raises(bk.BackupError, match="ends inside a record"):
                bk.decode_all(data[:cut])


# --- digests --------------------------------------------------------------------------------------


def test_offsets_do_not_change_the_digest():
    a = rec(0, key=b"k", headers=[("h", b"1")])
    b = rec(12345, key=b"k", headers=[("h", b"1")])
    assert bk.content_bytes(a) == bk.content_bytes(b)
    assert bk.chain(Z, a) == bk.chain(Z, b)
    same = [rec(o, value=b"same", key=b"k") for o in range(5)]
    moved = [rec(o, value=b"same", key=b"k") for o in (100, 101, 105, 200, 10**12)]
    assert bk.chain_all(Z, same) == bk.chain_all(Z, moved)


def test_log_append_time_is_ignored_create_time_is_not():
    la1 = rec(0, ts=T0, ts_type=bk.TIMESTAMP_LOG_APPEND)
    la2 = rec(0, ts=T0 + 999, ts_type=bk.TIMESTAMP_LOG_APPEND)
    assert bk.content_bytes(la1) == bk.content_bytes(la2)
    assert bk.chain(Z, la1) == bk.chain(Z, la2)
    ct1 = rec(0, ts=T0, ts_type=bk.TIMESTAMP_CREATE)
    ct2 = rec(0, ts=T0 + 1, ts_type=bk.TIMESTAMP_CREATE)
    assert bk.chain(Z, ct1) != bk.chain(Z, ct2)
    assert bk.chain(Z, ct1) != bk.chain(Z, la1)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (rec(0, key=None), rec(0, key=b"")),
        (rec(0, value=None), rec(0, value=b"")),
        (rec(0, key=b"ab", value=b"c"), rec(0, key=b"a", value=b"bc")),
        (rec(0, headers=[("h", None)]), rec(0, headers=[("h", b"")])),
        (rec(0, headers=[("h", b"1")]), rec(0, headers=[])),
        (rec(0, headers=[("a", b"1"), ("b", b"2")]), rec(0, headers=[("b", b"2"), ("a", b"1")])),
        (rec(0, headers=[("ab", b"c")]), rec(0, headers=[("a", b"bc")])),
    ],
    ids=["null-vs-empty-key", "null-vs-empty-value", "key-value-boundary", "null-vs-empty-header", "header-gone",
         "header-order", "header-name-value-boundary"],
)
def test_content_tells_apart(a, b):
    assert bk.chain(Z, a) != bk.chain(Z, b)


def test_order_matters_and_chain_all_equals_repeated_chain():
    recs = records(range(6))
    assert bk.chain_all(Z, recs) != bk.chain_all(Z, list(reversed(recs)))
    assert bk.chain_all(Z, recs) == functools.reduce(bk.chain, recs, Z)
    base = bk.chain(Z, rec(0, b"parent"))
    assert bk.chain_all(base, recs) == functools.reduce(bk.chain, recs, base)
    assert bk.chain_all(base, recs) != bk.chain_all(Z, recs)
    assert bk.chain_all(base, []) == base
    assert bk.chain(Z, recs[0]) == hashlib.sha256(bytes(32) + bk.content_bytes(recs[0])).hexdigest()


# --- PartitionWriter ------------------------------------------------------------------------------


def write_all(bdir, recs, start, end, **kw):
    w = bk.PartitionWriter(str(bdir), "orders", 0, start, end, **kw)
    for r in recs:
        w.add(r)
    w.flush(complete=True)
    return w


def test_writer_chunks_by_record_count(tmp_path):
    recs = records(range(7))
    w = write_all(tmp_path, recs, 0, 7, chunk_records=3)
    m = bk.read_manifest(str(tmp_path), "orders", 0)
    assert m == w.manifest
    assert [(c["first"], c["last"], c["records"]) for c in m["chunks"]] == [(0, 2, 3), (3, 5, 3), (6, 6, 1)]
    assert m["chunks"][0]["file"] == f"{0:020d}-{2:020d}.rec.zst" and m["chunks"][0]["codec"] == "zstd"
    assert (m["topic"], m["partition"], m["start"], m["end"]) == ("orders", 0, 0, 7)
    assert (m["next"], m["records"], m["complete"], m["gap"]) == (7, 7, True, None)
    assert m["bytes"] == sum(len(bk.encode(r)) for r in recs)
    assert (m["base_digest"], m["base_records"]) == (Z, 0)
    assert m["digest"] == bk.chain_all(Z, recs)
    assert [c["digest_after"] for c in m["chunks"]] == [bk.chain_all(Z, recs[:3]), bk.chain_all(Z, recs[:6]),
                                                        bk.chain_all(Z, recs)]
    for c in m["chunks"]:
        path = os.path.join(w.dir, c["file"])
        assert c["sha256"] == bk.file_sha256(path)
        data = open(path, "rb").read()
        assert data.startswith(ZSTD_MAGIC)
        assert bk.decode_all(bk.decompress(data, "zstd")) == recs[c["first"]:c["last"] + 1]
    assert sorted(os.listdir(w.dir)) == sorted([c["file"] for c in m["chunks"]] + ["manifest.json"])
    assert [r for _, rs in bk.iter_chunks(str(tmp_path), m) for r in rs] == recs
    assert bk.verify_partition(str(tmp_path), m) == []


def test_writer_chunks_by_bytes(tmp_path):
    recs = [rec(o, key=None, value=b"x" * 60) for o in range(8)]
    assert len(bk.encode(recs[0])) == 89  # 25 head + 60 value + 4 header count
    w = write_all(tmp_path, recs, 0, 8, chunk_bytes=200)
    assert [c["records"] for c in w.manifest["chunks"]] == [3, 3, 2]  # 267 >= 200 ends a chunk
    assert w.manifest["digest"] == bk.chain_all(Z, recs)


def test_chunking_does_not_change_the_digest(tmp_path):
    recs = records(range(20))
    digests = {write_all(tmp_path / str(n), recs, 0, 20, chunk_records=n).manifest["digest"] for n in (1, 3, 7, 1000)}
    assert digests == {bk.chain_all(Z, recs)}


def test_writer_ignores_records_outside_the_range_and_already_stored(tmp_path):
    w = bk.PartitionWriter(str(tmp_path), "orders", 0, 10, 20, chunk_records=1000)
    for o in (5, 9, 20, 25):
        w.add(rec(o))
    w.flush()
    assert w.manifest["records"] == 0 and w.manifest["chunks"] == [] and w.next_offset == 10
    kept = records(range(10, 13))
    for r in kept:
        w.add(r)
    w.flush()
    assert w.next_offset == 13
    w.add(rec(12, b"again"))  # already stored
    w.add(rec(11, b"again"))
    for r in records(range(13, 22)):
        w.add(r)
    w.flush()
    m = w.manifest
    assert (m["records"], m["next"], m["complete"]) == (10, 20, False)
    stored = [r for _, rs in bk.iter_chunks(str(tmp_path), m) for r in rs]
    assert [r.offset for r in stored] == list(range(10, 20))
    assert m["digest"] == bk.chain_all(Z, kept + records(range(13, 20)))


def test_flush_next_offset_skips_gaps_but_never_passes_end_or_goes_back(tmp_path):
    w = bk.PartitionWriter(str(tmp_path), "orders", 0, 0, 100)
    for r in records(range(5)):
        w.add(r)
    w.flush(next_offset=10)  # 5..9 aborted: never delivered
    assert (w.next_offset, w.manifest["records"], w.complete) == (10, 5, False)
    w.add(rec(7))
    w.flush()
    assert w.manifest["records"] == 5
    w.flush(next_offset=3)
    assert w.next_offset == 10
    w.add(rec(10))
    w.flush(next_offset=50)
    assert (w.next_offset, w.manifest["records"]) == (50, 6)
    w.flush(next_offset=500)
    assert (w.next_offset, w.complete) == (100, False)
    assert bk.read_manifest(str(tmp_path), "orders", 0)["next"] == 100
    w.flush(complete=True)
    assert (w.next_offset, w.complete) == (100, True)
    assert bk.verify_partition(str(tmp_path), w.manifest) == []


def test_flush_complete_moves_next_to_end(tmp_path):
    w = bk.PartitionWriter(str(tmp_path), "orders", 0, 0, 10)
    w.add(rec(0))
    w.flush(complete=True)
    m = bk.read_manifest(str(tmp_path), "orders", 0)
    assert (m["next"], m["complete"], m["records"]) == (10, True, 1)


def test_empty_range_is_complete_at_once_and_keeps_base_and_gap(tmp_path):
    gap = {"from": 3, "to": 9}
    w = bk.PartitionWriter(str(tmp_path), "orders", 2, 9, 9, base_digest="ab" * 32, base_records=4, gap=gap)
    m = bk.read_manifest(str(tmp_path), "orders", 2)
    assert w.complete and m["complete"] and m["next"] == 9
    assert (m["digest"], m["base_digest"], m["base_records"], m["gap"]) == ("ab" * 32, "ab" * 32, 4, gap)
    w.add(rec(9))
    w.flush()
    assert w.manifest["records"] == 0


def test_writer_chains_from_its_base_digest(tmp_path):
    parent = records(range(5))
    base = bk.chain_all(Z, parent)
    w = write_all(tmp_path, records(range(5, 9)), 5, 9, base_digest=base, base_records=5)
    assert w.manifest["digest"] == bk.chain_all(Z, records(range(9)))
    assert w.manifest["records"] == 4
    assert bk.verify_partition(str(tmp_path), w.manifest) == []


def test_resume_after_a_crash_drops_orphans_and_gives_the_same_digest(tmp_path):
    recs = records(range(10))
    whole = write_all(tmp_path / "whole", recs, 0, 10, chunk_records=2).manifest

    bdir = tmp_path / "crashed"
    w = bk.PartitionWriter(str(bdir), "orders", 0, 0, 10, chunk_records=2)
    for r in recs[:2]:
        w.add(r)  # chunk 0-1 and the manifest written
    saved = open(w.path, "rb").read()
    for r in recs[2:5]:
        w.add(r)  # chunk 2-3 written, 4 buffered
    orphan = f"{2:020d}-{3:020d}.rec.zst"
    assert os.path.exists(os.path.join(w.dir, orphan))
    with open(w.path, "wb") as f:  # as if the process died between the chunk's rename and the manifest's
        f.write(saved)
    open(os.path.join(w.dir, f"{4:020d}-{5:020d}.rec.zst.tmp-12345"), "wb").close()
    del w

    w = bk.PartitionWriter(str(bdir), "orders", 0, 0, 10, chunk_records=2)
    assert sorted(os.listdir(w.dir)) == sorted(["manifest.json", f"{0:020d}-{1:020d}.rec.zst"])
    assert (w.next_offset, w.manifest["records"]) == (2, 2)
    assert w.manifest["digest"] == bk.chain_all(Z, recs[:2])
    for r in recs:  # the reader starts again at next; earlier offsets are ignored anyway
        w.add(r)
    w.flush(complete=True)
    m = w.manifest
    assert (m["records"], m["digest"], m["next"]) == (10, whole["digest"], 10)
    assert [c["file"] for c in m["chunks"]] == [c["file"] for c in whole["chunks"]]
    assert [c["digest_after"] for c in m["chunks"]] == [c["digest_after"] for c in whole["chunks"]]
    assert bk.verify_partition(str(bdir), m) == []


def test_reopened_writer_keeps_its_manifest_not_the_new_arguments(tmp_path):
    w = bk.PartitionWriter(str(tmp_path), "orders", 0, 0, 10)
    w.add(rec(0))
    w.flush()
    again = bk.PartitionWriter(str(tmp_path), "orders", 0, 5, 50, base_digest="cd" * 32)
    assert (again.manifest["start"], again.manifest["end"], again.next_offset) == (0, 10, 1)
    assert again.manifest["base_digest"] == Z


def test_files_are_0600_and_the_partition_dir_0700(tmp_path, umask_022):
    w = write_all(tmp_path, records(range(4)), 0, 4, chunk_records=2)
    assert mode(w.dir) == 0o700
    for name in os.listdir(w.dir):
        assert mode(os.path.join(w.dir, name)) == 0o600, name
    bk.write_json(str(tmp_path / "backup.json"), {"a": 1})
    assert mode(tmp_path / "backup.json") == 0o600


def test_every_directory_a_writer_creates_is_0700(tmp_path, umask_022):
    bdir = tmp_path / "20261129T153000Z"
    w = write_all(bdir, records(range(2)), 0, 2)
    for d in (bdir, bdir / "data", bdir / "data" / "orders", w.dir):
        assert mode(d) == 0o700, d


def test_makedirs_leaves_existing_directories_alone(tmp_path, umask_022):
    os.chmod(tmp_path, 0o755)
    bk.makedirs(str(tmp_path / "a" / "b" / "c"))
    bk.makedirs(str(tmp_path / "a" / "b" / "c"))
    bk.makedirs(str(tmp_path / "a" / "b" / "c") + "/")
    assert [mode(tmp_path / p) for p in ("a", "a/b", "a/b/c")] == [0o700] * 3
    assert mode(tmp_path) == 0o755


def test_write_atomic_leaves_no_temporary_file(tmp_path):
    bk.write_atomic(str(tmp_path / "f"), b"one")
    bk.write_atomic(str(tmp_path / "f"), b"two")
    assert os.listdir(tmp_path) == ["f"] and (tmp_path / "f").read_bytes() == b"two"


@pytest.mark.parametrize("topic", ["", "a/b", "x" * 250, "sp ace", "ü", None])
def test_partition_dir_refuses_what_is_not_a_topic_name(tmp_path, topic):
    with pytest.raises(bk.BackupError, match="is not a Kafka topic name"):
        bk.partition_dir(str(tmp_path), topic, 0)


def test_partition_dir_takes_topic_names():
    assert bk.partition_dir("B", "a.b_c-D9", "3") == os.path.join("B", "data", "a.b_c-D9", "3")
    assert bk.partition_dir("B", "x" * 249, 0).endswith("x" * 249 + os.sep + "0")


@pytest.mark.parametrize("topic", [".", ".."])
def test_partition_dir_refuses_dot_names(tmp_path, topic):
    with pytest.raises(bk.BackupError, match="is not a Kafka topic name"):
        bk.partition_dir(str(tmp_path), topic, 0)


# --- reading back and verifying -------------------------------------------------------------------


@pytest.fixture
def stored(tmp_path):
    w = write_all(tmp_path, records(range(9)), 0, 9, chunk_records=3)
    return str(tmp_path), w


def rewrite_chunk(w, index, recs, fix_sha=True):
    """Replaces a chunk's records, compressed with the chunk's codec (``fix_sha``: and its sha256 in the manifest)."""
    chunk = w.manifest["chunks"][index]
    data = bk.compress(b"".join(bk.encode(r) for r in recs), chunk.get("codec", "gzip"))
    with open(os.path.join(w.dir, chunk["file"]), "wb") as f:
        f.write(data)
    if fix_sha:
        chunk["sha256"] = hashlib.sha256(data).hexdigest()
    return w.manifest


def test_iter_chunks_detects_a_changed_chunk(stored):
    bdir, w = stored
    m = rewrite_chunk(w, 1, [rec(3, b"evil"), rec(4), rec(5)], fix_sha=False)
    it = bk.iter_chunks(bdir, m)
    next(it)
    with pytest.raises(bk.BackupError, match=r"00000000000000000003-00000000000000000005\.rec\.zst: sha256 differs"):
        next(it)
    assert len(list(bk.iter_chunks(bdir, m, check=False))) == 3


def test_iter_chunks_refuses_a_truncated_file(stored):
    bdir, w = stored
    path = os.path.join(w.dir, w.manifest["chunks"][0]["file"])
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(bk.BackupError, match="sha256 differs"):
        list(bk.iter_chunks(bdir, w.manifest))
    problems = bk.verify_partition(bdir, w.manifest)
    assert len(problems) == 1 and "sha256 differs" in problems[0]


def test_verify_good_partition(stored):
    bdir, w = stored
    assert bk.verify_partition(bdir, w.manifest) == []
    assert bk.verify_partition(bdir, bk.read_manifest(bdir, "orders", 0)) == []


def test_verify_reports_a_corrupted_chunk(stored):
    bdir, w = stored
    path = os.path.join(w.dir, w.manifest["chunks"][2]["file"])
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    with open(path, "wb") as f:
        f.write(bytes(data))
    problems = bk.verify_partition(bdir, w.manifest)
    assert len(problems) == 1 and problems[0].startswith("orders/0: ") and "sha256 differs" in problems[0]


def test_verify_reports_a_missing_chunk(stored):
    bdir, w = stored
    os.unlink(os.path.join(w.dir, w.manifest["chunks"][0]["file"]))
    problems = bk.verify_partition(bdir, w.manifest)
    assert len(problems) == 1 and "No such file" in problems[0]


def test_verify_reports_changed_records_even_with_a_matching_sha256(stored):
    bdir, w = stored
    m = rewrite_chunk(w, 1, [rec(3, b"evil"), rec(4), rec(5)])
    problems = bk.verify_partition(bdir, m)
    assert any("00000000000000000003-00000000000000000005.rec.zst: digest after the chunk differs" in p
               for p in problems)
    assert any(p.startswith("orders/0: digest ") and "differs from the manifest's" in p for p in problems)


def test_verify_reports_a_chunk_with_missing_records(stored):
    bdir, w = stored
    m = rewrite_chunk(w, 0, records(range(2)))
    problems = bk.verify_partition(bdir, m)
    assert any("2 records, manifest says 3" in p for p in problems)
    assert any("8 records stored, manifest says 9" in p for p in problems)


def test_verify_reports_offsets_out_of_order_or_range(stored):
    bdir, w = stored
    m = rewrite_chunk(w, 1, records([3, 3, 5]))
    assert any("offset 3 out of order or outside [0, 9)" in p for p in bk.verify_partition(bdir, m))
    m = rewrite_chunk(w, 1, records([3, 4, 5]))
    m = rewrite_chunk(w, 2, records([6, 7, 9]))
    assert any("offset 9 out of order or outside [0, 9)" in p for p in bk.verify_partition(bdir, m))


def test_verify_reports_a_decoding_failure_as_a_problem(stored):
    bdir, w = stored
    chunk = w.manifest["chunks"][0]
    raw = b"".join(bk.encode(r) for r in records(range(3)))
    data = bk.compress(raw[:-5], chunk["codec"])
    with open(os.path.join(w.dir, chunk["file"]), "wb") as f:
        f.write(data)
    chunk["sha256"] = hashlib.sha256(data).hexdigest()
    problems = bk.verify_partition(bdir, w.manifest)
    assert len(problems) == 1 and problems[0].startswith("orders/0: ") and "ends inside a record" in problems[0]


def test_verify_reports_a_wrong_manifest_digest(stored):
    bdir, w = stored
    m = dict(w.manifest, digest="0" * 63 + "1")
    assert bk.verify_partition(bdir, m) == [f"orders/0: digest {w.manifest['digest'][:16]} differs from the "
                                            f"manifest's {'0' * 16}"]


def test_verify_reports_a_wrong_base_digest(stored):
    bdir, w = stored
    m = dict(w.manifest, base_digest="ff" * 32)
    problems = bk.verify_partition(bdir, m)
    assert len(problems) == 4  # every chunk's digest_after, and the final digest


def test_verify_reports_a_wrong_record_count(stored):
    bdir, w = stored
    m = dict(w.manifest, records=10)
    assert bk.verify_partition(bdir, m) == ["orders/0: 9 records stored, manifest says 10"]


def test_verify_reports_an_incomplete_manifest(tmp_path):
    w = bk.PartitionWriter(str(tmp_path), "orders", 0, 0, 9)
    for r in records(range(4)):
        w.add(r)
    w.flush()
    assert bk.verify_partition(str(tmp_path), w.manifest) == ["orders/0: not complete (next offset 4 of 9)"]


# --- codecs, raw records, format 1 ----------------------------------------------------------------

# (offset, timestamp, timestamp type, key, value, headers) as a consumer gives them
RAW = [
    (0, T0, bk.TIMESTAMP_CREATE, b"k", b"v", [("h", b"1")]),
    (1, T0 + 5, bk.TIMESTAMP_CREATE, None, b"no key", None),
    (2, T0 + 6, bk.TIMESTAMP_CREATE, b"tomb", None, []),
    (3, T0 + 7, bk.TIMESTAMP_LOG_APPEND, b"k", b"", [("none", None), ("empty", b"")]),
    (4, -1, 0, None, None, None),
    (5, T0 + 9, bk.TIMESTAMP_LOG_APPEND, b"", b"x" * 300, [("dup", b"1"), ("dup", b"2")]),
    (7, T0 + 10, bk.TIMESTAMP_CREATE, b"k7", b"after a gap", [("ünï-✓", b"\x00\xff")]),
]


def fields(r):
    return (r.offset, r.timestamp, r.timestamp_type, r.key, r.value, r.headers)


def raw_records():
    return [bk.Record(*t) for t in RAW]


def test_compress_round_trips_with_both_codecs_and_refuses_others():
    raw = b"".join(bk.encode(r) for r in raw_records())
    assert bk.compress(raw).startswith(ZSTD_MAGIC) and bk.compress(raw, "zstd") == bk.compress(raw)
    assert bk.compress(raw, "gzip").startswith(GZIP_MAGIC)
    for codec in ("zstd", "gzip"):
        assert bk.decompress(bk.compress(raw, codec), codec) == raw
        assert bk.decompress(bk.compress(b"", codec), codec) == b""
    with pytest.raises(bk.BackupError, match="unknown chunk codec 'lz4'"):
        bk.compress(raw, "lz4")
    with pytest.raises(bk.BackupError, match="unknown chunk codec 'lz4': written by a newer kafka-metal"):
        bk.decompress(raw, "lz4")


def test_add_raw_and_add_write_the_same_chunks_and_digest_as_chain(tmp_path):
    recs = raw_records()
    base = bk.chain(Z, rec(0, b"parent"))
    by_add = bk.PartitionWriter(str(tmp_path / "add"), "orders", 0, 0, 8, base_digest=base, chunk_records=3)
    by_raw = bk.PartitionWriter(str(tmp_path / "raw"), "orders", 0, 0, 8, base_digest=base, chunk_records=3)
    for r, t in zip(recs, RAW, strict=True):
        by_add.add(r)
        by_raw.add_raw(*t)
    by_raw.add_raw(9, T0, bk.TIMESTAMP_CREATE, b"k", b"outside the range", None)  # ignored, as add does
    by_raw.add_raw(3, T0, bk.TIMESTAMP_CREATE, b"k", b"already stored", None)
    by_add.flush(complete=True)
    by_raw.flush(complete=True)
    m = by_raw.manifest
    assert m == by_add.manifest
    assert [(c["first"], c["last"]) for c in m["chunks"]] == [(0, 2), (3, 5), (7, 7)]
    assert m["digest"] == bk.chain_all(base, recs) == functools.reduce(bk.chain, recs, base)
    assert [c["digest_after"] for c in m["chunks"]] == [bk.chain_all(base, recs[:3]), bk.chain_all(base, recs[:6]),
                                                        bk.chain_all(base, recs)]
    assert m["bytes"] == sum(len(bk.encode(r)) for r in recs)
    for c in m["chunks"]:
        data = open(os.path.join(by_raw.dir, c["file"]), "rb").read()
        assert data == open(os.path.join(by_add.dir, c["file"]), "rb").read()
        chunk_recs = [r for r in recs if c["first"] <= r.offset <= c["last"]]
        assert bk.decompress(data, "zstd") == b"".join(bk.encode(r) for r in chunk_recs)
    assert [r for _, rs in bk.iter_chunks(str(tmp_path / "raw"), m) for r in rs] == recs
    assert bk.verify_partition(str(tmp_path / "raw"), m) == []


def test_chain_raw_equals_chain():
    d = bk.chain(Z, rec(0, b"parent"))
    for r, t in zip(raw_records(), RAW, strict=True):
        nxt = bk.chain_raw(bytes.fromhex(d), *t[1:])
        assert isinstance(nxt, bytes) and nxt.hex() == bk.chain(d, r)
        assert nxt == hashlib.sha256(bytes.fromhex(d) + bk.content_bytes(r)).digest()
        d = nxt.hex()
    assert d == bk.chain_all(bk.chain(Z, rec(0, b"parent")), raw_records())
    assert bk.chain_raw(bytes(32), T0, 1, b"k", b"v", None) == bk.chain_raw(bytes(32), T0, 1, b"k", b"v", [])
    assert bk.chain_raw(bytes(32), T0, 2, b"k", b"v", None) == bk.chain_raw(bytes(32), T0 + 1, 2, b"k", b"v", None)
    assert bk.chain_raw(bytes(32), T0, 1, b"k", b"v", None) != bk.chain_raw(bytes(32), T0 + 1, 1, b"k", b"v", None)
    assert bk.chain_raw(bytes(32), T0, 1, None, b"v", None) != bk.chain_raw(bytes(32), T0, 1, b"", b"v", None)
    assert bk.chain_raw(bytes(32), T0, 1, b"k", None, None) != bk.chain_raw(bytes(32), T0, 1, b"k", b"", None)


def test_decode_raw_gives_the_fields_of_decode_all():
    recs = raw_records()
    data = b"".join(bk.encode(r) for r in recs)
    out = bk.decode_raw(data)
    assert out == [fields(r) for r in bk.decode_all(data)]
    assert out == [t[:5] + (list(t[5] or []),) for t in RAW]
    assert all(isinstance(t, tuple) and len(t) == 6 for t in out)
    assert (out[1][3], out[2][4], out[3][4], out[3][5]) == (None, None, b"", [("none", None), ("empty", b"")])
    assert bk.decode_raw(b"") == []
    _, cut_data, bounds = _cuts()
    for cut in range(len(cut_data)):
        if cut in bounds:
            assert bk.decode_raw(cut_data[:cut]) == [fields(r) for r in bk.decode_all(cut_data[:cut])]
        else:
            with pytest.raises(bk.BackupError, match="ends inside a record"):
                bk.decode_raw(cut_data[:cut])


def test_read_chunk_raw_gives_the_fields_of_its_records(stored):
    bdir, w = stored
    for chunk in w.manifest["chunks"]:
        assert bk.read_chunk(bdir, w.manifest, chunk, raw=True) == [fields(r) for r in
                                                                     bk.read_chunk(bdir, w.manifest, chunk)]
    assert [t for _, ts in bk.iter_chunks(bdir, w.manifest, raw=True) for t in ts] == \
        [fields(r) for r in records(range(9))]


@pytest.mark.parametrize(
    "damage",
    [lambda d: d[: len(d) // 2], lambda d: d[:-1], lambda d: b"", lambda d: b"not zstd at all",
     lambda d: gzip.compress(bk.decompress(d, "zstd")), lambda d: d + b"junk", lambda d: d + d],
    ids=["half", "last-byte-gone", "empty", "not-zstd", "gzip-in-a-zstd-entry", "bytes-after-the-frame",
         "two-frames"],
)
def test_verify_reports_a_damaged_zstd_chunk_as_a_problem(stored, damage):
    bdir, w = stored
    chunk = w.manifest["chunks"][1]
    path = os.path.join(w.dir, chunk["file"])
    data = damage(open(path, "rb").read())
    with open(path, "wb") as f:
        f.write(data)
    chunk["sha256"] = hashlib.sha256(data).hexdigest()  # the sha check passes: decompressing must catch it
    with pytest.raises(bk.BackupError, match=rf"{re.escape(chunk['file'])}: not a whole zstd chunk"):
        bk.read_chunk(bdir, w.manifest, chunk)
    problems = bk.verify_partition(bdir, w.manifest)
    assert len(problems) == 1 and problems[0].startswith("orders/0: ") and "not a whole zstd chunk" in problems[0]


def test_verify_reports_a_chunk_under_the_wrong_or_an_unknown_codec(stored):
    bdir, w = stored
    chunk = w.manifest["chunks"][0]
    del chunk["codec"]  # a format-1 entry: read as gzip
    problems = bk.verify_partition(bdir, w.manifest)
    assert len(problems) == 1 and "not a whole gzip chunk" in problems[0]
    chunk["codec"] = "lz4"
    problems = bk.verify_partition(bdir, w.manifest)
    assert len(problems) == 1 and "unknown chunk codec 'lz4'" in problems[0]
    chunk["codec"] = "zstd"
    assert bk.verify_partition(bdir, w.manifest) == []


def test_a_format_1_running_backup_resumed_mixes_gzip_and_zstd_chunks(tmp_path):
    recs = records(range(10))
    bdir = str(tmp_path)
    pdir = bk.partition_dir(bdir, "orders", 0)
    bk.makedirs(pdir)
    raw = b"".join(bk.encode(r) for r in recs[:5])
    data = gzip.compress(raw)
    gz = f"{0:020d}-{4:020d}.rec.gz"
    bk.write_atomic(os.path.join(pdir, gz), data)
    bk.write_json(os.path.join(pdir, "manifest.json"), {  # as format 1 left it: no codec in the chunk's entry
        "topic": "orders", "partition": 0, "start": 0, "end": 10, "next": 5, "records": 5, "bytes": len(raw),
        "base_digest": Z, "base_records": 0, "digest": bk.chain_all(Z, recs[:5]), "complete": False, "gap": None,
        "chunks": [{"file": gz, "first": 0, "last": 4, "records": 5, "sha256": hashlib.sha256(data).hexdigest(),
                    "digest_after": bk.chain_all(Z, recs[:5])}]})
    w = bk.PartitionWriter(bdir, "orders", 0, 0, 10)
    assert w.next_offset == 5
    for r in recs:
        w.add(r)
    w.flush(complete=True)
    m = bk.read_manifest(bdir, "orders", 0)
    zst = f"{5:020d}-{9:020d}.rec.zst"
    assert [(c["file"], c.get("codec")) for c in m["chunks"]] == [(gz, None), (zst, "zstd")]
    assert sorted(os.listdir(pdir)) == sorted([gz, zst, "manifest.json"])
    assert open(os.path.join(pdir, zst), "rb").read().startswith(ZSTD_MAGIC)
    assert (m["records"], m["digest"], m["bytes"]) == (10, bk.chain_all(Z, recs), sum(len(bk.encode(r)) for r in recs))
    assert bk.verify_partition(bdir, m) == []
    assert [r for _, rs in bk.iter_chunks(bdir, m) for r in rs] == recs
    assert [t for _, ts in bk.iter_chunks(bdir, m, raw=True) for t in ts] == [fields(r) for r in recs]
    assert bk.translate_committed([(bdir, m)], 7, 100) == 107


FULL1, INC1 = "20261206T083545Z", "20261206T083546Z"


@pytest.fixture
def format1(tmp_path):
    """A copy of two backups the previous kafka-metal (format 1, gzip chunks) wrote: a full one and its child."""
    root = tmp_path / "backups"
    shutil.copytree(FORMAT1, root)
    return str(root)


def partitions_of(info):
    return [(t, p) for t in sorted(info["topics"]) for p in range(info["topics"][t]["partitions"])]


def test_format_1_backups_still_verify_and_read(format1):
    root = format1
    assert bk.backup_ids(root) == [FULL1, INC1]
    full, inc = bk.load(root, FULL1), bk.load(root, INC1)
    assert (full["format"], inc["format"], inc["parent"]) == (1, 1, FULL1)
    assert [b["id"] for b in bk.chain_of(root, full)] == [FULL1]
    chain = bk.chain_of(root, inc)
    assert [b["id"] for b in chain] == [FULL1, INC1]
    assert bk.resolve(root)["id"] == INC1
    tps = partitions_of(full)
    assert tps == partitions_of(inc) and len(tps) == 5
    seen = []
    for info in chain:
        bdir = os.path.join(root, info["id"])
        count = size = 0
        for topic, partition in tps:
            m = bk.read_manifest(bdir, topic, partition)
            assert bk.verify_partition(bdir, m) == [], (info["id"], topic, partition)
            stored_recs = []
            for chunk, recs in bk.iter_chunks(bdir, m):
                assert "codec" not in chunk and chunk["file"].endswith(".rec.gz")
                assert open(os.path.join(bk.partition_dir(bdir, topic, partition), chunk["file"]), "rb").read() \
                    .startswith(GZIP_MAGIC)
                assert (recs[0].offset, recs[-1].offset, len(recs)) == (chunk["first"], chunk["last"],
                                                                       chunk["records"])
                assert bk.read_chunk(bdir, m, chunk, raw=True) == [fields(r) for r in recs]
                stored_recs += recs
            offsets = [r.offset for r in stored_recs]
            assert offsets == sorted(set(offsets)) and all(m["start"] <= o < m["end"] for o in offsets)
            assert len(stored_recs) == m["records"]
            assert bk.chain_all(m["base_digest"], stored_recs) == m["digest"]
            count, size = count + m["records"], size + m["bytes"]
            seen += stored_recs
        assert (count, size) == (info["totals"]["records"], info["totals"]["bytes"])
    assert len(seen) == 292
    assert {r.timestamp_type for r in seen} == {bk.TIMESTAMP_CREATE, bk.TIMESTAMP_LOG_APPEND}
    assert any(r.key is None for r in seen) and any(r.value is None for r in seen)
    assert any(v is None for r in seen for _, v in r.headers) and any(r.headers for r in seen)


def test_format_1_incremental_digests_continue_from_the_parent(format1):
    root = format1
    chain = bk.chain_of(root, bk.load(root, INC1))
    for topic, partition in partitions_of(chain[0]):
        (pdir, parent), (cdir, child) = bk.partition_manifests(root, chain, topic, partition)
        where = f"{topic}/{partition}"
        assert child["base_digest"] == parent["digest"] != Z, where
        assert chain[1]["targets"][where]["base_digest"] == parent["digest"]
        assert (child["base_records"], child["start"]) == (parent["base_records"] + parent["records"], parent["end"])
        every = [r for d, m in ((pdir, parent), (cdir, child)) for _, rs in bk.iter_chunks(d, m) for r in rs]
        assert bk.chain_all(Z, every) == child["digest"], where
    _, grown = bk.partition_manifests(root, chain, "legacy-orders", 2)[1]
    assert grown["records"] == 2 and grown["digest"] != grown["base_digest"]


def test_a_changed_byte_in_a_format_1_chunk_is_reported(format1):
    bdir = os.path.join(format1, FULL1)
    m = bk.read_manifest(bdir, "legacy-orders", 0)
    chunk = m["chunks"][1]
    path = os.path.join(bk.partition_dir(bdir, "legacy-orders", 0), chunk["file"])
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0x01
    with open(path, "wb") as f:
        f.write(bytes(data))
    problems = bk.verify_partition(bdir, m)
    assert len(problems) == 1 and problems[0].startswith("legacy-orders/0: ")
    assert f"{chunk['file']}: sha256 differs from the manifest" in problems[0]
    chunk["sha256"] = hashlib.sha256(data).hexdigest()  # past the sha check, gzip's own check (CRC) catches it
    problems = bk.verify_partition(bdir, m)
    assert len(problems) == 1 and problems[0].startswith("legacy-orders/0: ")
    assert f"{chunk['file']}: not a whole gzip chunk" in problems[0]
    assert bk.verify_partition(bdir, bk.read_manifest(bdir, "legacy-orders", 1)) == []


# --- backup plan ----------------------------------------------------------------------------------

TP = ("orders", 0)


def test_full_backup_reads_from_the_log_start():
    targets = bk.partition_targets({TP: 90, ("orders", 1): 0}, {TP: 10, ("orders", 1): 0})
    assert targets == {TP: (10, 90, None, False), ("orders", 1): (0, 0, None, False)}


def test_incremental_continues_from_the_parent_end():
    ids = {"orders": "id-1"}
    assert bk.partition_targets({TP: 90}, {TP: 10}, {TP: 50}, ids, ids) == {TP: (50, 90, None, True)}
    assert bk.partition_targets({TP: 90}, {TP: 50}, {TP: 50}, ids, ids) == {TP: (50, 90, None, True)}
    assert bk.partition_targets({TP: 90}, {TP: 10}, {TP: 50}) == {TP: (50, 90, None, True)}  # ids unknown
    assert bk.partition_targets({TP: 50}, {TP: 10}, {TP: 50}, ids, ids) == {TP: (50, 50, None, True)}  # nothing new


def test_incremental_records_a_retention_gap():
    ids = {"orders": "id-1"}
    assert bk.partition_targets({TP: 90}, {TP: 70}, {TP: 50}, ids, ids) == {
        TP: (70, 90, {"from": 50, "to": 70}, True)}


def test_incremental_new_partition_starts_at_its_log_start():
    tp1 = ("orders", 1)
    targets = bk.partition_targets({TP: 90, tp1: 7}, {TP: 0, tp1: 2}, {TP: 50})
    assert targets[tp1] == (2, 7, None, False)


def test_recreated_topic_starts_over():
    targets = bk.partition_targets({TP: 10, ("other", 0): 30}, {TP: 0, ("other", 0): 0}, {TP: 50, ("other", 0): 20},
                                   {"orders": "id-new", "other": "o"}, {"orders": "id-old", "other": "o"})
    assert targets == {TP: (0, 10, None, False), ("other", 0): (20, 30, None, True)}
    assert bk.partition_targets({TP: 10}, {TP: 0}, {TP: 50}, {"orders": "id-new"}, {})[TP] == (0, 10, None, False)


def test_end_below_start_gives_an_empty_range():
    ids = {"orders": "id-1"}
    assert bk.partition_targets({TP: 30}, {TP: 0}, {TP: 50}, ids, ids) == {TP: (50, 50, None, True)}
    assert bk.partition_targets({TP: 5}, {TP: 8}) == {TP: (8, 8, None, False)}


# --- offsets of consumer groups -------------------------------------------------------------------

STORED = [0, 1, 2, 5, 6, 10]  # 3-4 compacted away, 7-9 an aborted transaction and its marker


@pytest.mark.parametrize(
    ("committed", "restored"),
    [(0, 100), (1, 101), (2, 102), (3, 103), (4, 103), (5, 103), (6, 104), (7, 105), (9, 105), (10, 105),
     (11, 106), (1000, 106)],
)
def test_translate_offset_with_gaps(committed, restored):
    assert bk.translate_offset(STORED, committed, 100) == restored


def test_translate_offset_before_the_first_and_empty():
    assert bk.translate_offset([40, 41, 42], 0, 0) == 0
    assert bk.translate_offset([40, 41, 42], 40, 7) == 7
    assert bk.translate_offset([40, 41, 42], 42, 7) == 9
    assert bk.translate_offset([40, 41, 42], 43, 7) == 10
    assert bk.translate_offset([], 5, 3) == 3


# --- restore plan ---------------------------------------------------------------------------------

BACKUP = {"new": {"partitions": 3}, "empty": {"partitions": 3}, "full": {"partitions": 3}}


def test_plan_topics_create_use_and_refuse_data():
    live = {"empty": {"partitions": 3, "records": 0}, "unrelated": {"partitions": 1, "records": 5}}
    assert bk.plan_topics({k: BACKUP[k] for k in ("new", "empty")}, live) == {"new": "create", "empty": "use"}


def test_plan_topics_append_skip_and_resume():
    live = {"empty": {"partitions": 3, "records": 0}, "full": {"partitions": 3, "records": 12}}
    assert bk.plan_topics(BACKUP, live, existing="append") == {"new": "create", "empty": "use", "full": "append"}
    assert bk.plan_topics(BACKUP, live, existing="skip") == {"new": "create", "empty": "skip", "full": "skip"}
    assert bk.plan_topics(BACKUP, live, restored_before={"full"}) == {"new": "create", "empty": "use",
                                                                      "full": "resume"}
    odd = {"full": {"partitions": 7, "records": 12}}
    assert bk.plan_topics({"full": BACKUP["full"]}, odd, existing="skip") == {"full": "skip"}
    assert bk.plan_topics({"full": BACKUP["full"]}, odd, restored_before=["full"]) == {"full": "resume"}


def test_plan_topics_refuses_holding_data():
    live = {"full": {"partitions": 3, "records": 12}}
    with pytest.raises(bk.BackupError, match=r"full: exists and holds 12 records .*--existing append"):
        bk.plan_topics(BACKUP, live)


def test_plan_topics_refuses_another_partition_count_even_when_appending():
    live = {"empty": {"partitions": 4, "records": 0}}
    for existing in ("refuse", "append"):
        with pytest.raises(bk.BackupError, match=r"empty: exists with 4 partitions, the backup has 3"):
            bk.plan_topics(BACKUP, live, existing=existing)


def test_plan_topics_refuses_a_vanished_restored_topic():
    with pytest.raises(bk.BackupError, match=r"new: an earlier run of this restore created it and it is gone"):
        bk.plan_topics(BACKUP, {}, restored_before={"new"})


def test_plan_topics_names_every_conflict_at_once():
    live = {"empty": {"partitions": 1, "records": 0}, "full": {"partitions": 3, "records": 2}}
    with pytest.raises(bk.BackupError) as exc:
        bk.plan_topics(BACKUP, live, restored_before={"new"})
    lines = str(exc.value).splitlines()
    assert lines[0] == "restore refused before any change:"
    assert [line.strip().split(":")[0] for line in lines[1:]] == ["empty", "full", "new"]


@pytest.mark.parametrize("existing", ["bogus", "", None, "Append"])
def test_plan_topics_refuses_a_bad_existing(existing):
    with pytest.raises(bk.BackupError, match=r"use refuse, skip or append"):
        bk.plan_topics({}, {}, existing=existing)


def test_missing_passwords():
    assert bk.missing_passwords(["carol", "alice", "bob"], {"alice": "x"}) == ["bob", "carol"]
    assert bk.missing_passwords(["b", "a"], None) == ["a", "b"]
    assert bk.missing_passwords({"a": {}}, {"a": ""}) == []
    assert bk.missing_passwords([], {}) == []


def test_describe_quota_entity():
    assert bk.describe_quota_entity({"user": None}) == "user=<default>"
    assert bk.describe_quota_entity({"user": "alice", "client-id": "app"}) == "client-id=app,user=alice"
    assert bk.describe_quota_entity({"client-id": "app", "user": "alice"}) == "client-id=app,user=alice"
    assert bk.describe_quota_entity({"user": "alice", "client-id": None}) == "client-id=<default>,user=alice"
    assert bk.describe_quota_entity({}) == ""


def test_plan_quotas_adds_and_corrects_but_never_removes():
    backup = [
        {"entity": {"user": "alice", "client-id": "app"}, "values": {"producer_byte_rate": 1000.0,
                                                                     "consumer_byte_rate": 2000.0}},
        {"entity": {"user": None}, "values": {"request_percentage": 50.0}},
        {"entity": {"user": "same"}, "values": {"producer_byte_rate": 5.0}},
    ]
    live = [
        {"entity": {"client-id": "app", "user": "alice"}, "values": {"producer_byte_rate": 1000.0,
                                                                     "consumer_byte_rate": 10.0,
                                                                     "controller_mutation_rate": 3.0}},
        {"entity": {"user": "same"}, "values": {"producer_byte_rate": 5.0}},
        {"entity": {"user": "bob"}, "values": {"producer_byte_rate": 1.0}},
    ]
    assert bk.plan_quotas(backup, live) == [
        {"entity": {"user": "alice", "client-id": "app"}, "values": {"consumer_byte_rate": 2000.0}},
        {"entity": {"user": None}, "values": {"request_percentage": 50.0}},
    ]
    assert bk.plan_quotas(backup, []) == backup
    assert bk.plan_quotas([], live) == []


def test_plan_quotas_default_entity_is_not_a_named_one():
    backup = [{"entity": {"user": None}, "values": {"producer_byte_rate": 1.0}}]
    live = [{"entity": {"user": "default"}, "values": {"producer_byte_rate": 1.0}}]
    assert bk.plan_quotas(backup, live) == backup


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0 B"), (1, "1 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"), (5 * 2**20, "5.0 MiB"),
     (3 * 2**30 + 2**29, "3.5 GiB"), (2**40, "1.0 TiB"), (2**50, "1024.0 TiB")],
)
def test_human_bytes(n, text):
    assert bk.human_bytes(n) == text


def test_human_bytes_rounds_up_into_the_next_unit():
    assert bk.human_bytes(2**20 - 1) == "1.0 MiB"


# --- backups in a directory -----------------------------------------------------------------------


def put_backup(root, backup_id, status="complete", parent=None, cluster_id="c1", created_epoch=1000, fmt=bk.FORMAT,
               **extra):
    os.makedirs(os.path.join(root, backup_id), exist_ok=True)
    info = {"format": fmt, "id": backup_id, "status": status, "parent": parent, "cluster_id": cluster_id,
            "created_epoch": created_epoch, "kind": "incremental" if parent else "full", "topics": {}, **extra}
    if fmt is None:
        del info["format"]
    bk.write_json(os.path.join(root, backup_id, "backup.json"), info)
    return info


def test_backup_ids_only_names_backups(tmp_path):
    root = str(tmp_path)
    assert bk.backup_ids(str(tmp_path / "missing")) == []
    assert bk.list_backups(str(tmp_path / "missing")) == []
    put_backup(root, "20261129T153000Z")
    put_backup(root, "20261128T010203Z-2")
    put_backup(root, "20261128T010203Z")
    put_backup(root, "latest")
    put_backup(root, "20261129T15300Z")
    os.makedirs(tmp_path / "20261130T000000Z")  # no backup.json (yet)
    (tmp_path / "20261201T000000Z").write_text("a file")
    assert bk.backup_ids(root) == ["20261128T010203Z", "20261128T010203Z-2", "20261129T153000Z"]
    assert [b["id"] for b in bk.list_backups(root)] == bk.backup_ids(root)


def test_latest_skips_incomplete_and_other_clusters(tmp_path):
    root = str(tmp_path)
    assert bk.latest(root) is None
    put_backup(root, "20261101T000000Z", cluster_id="c1")
    put_backup(root, "20261102T000000Z", cluster_id="c2")
    put_backup(root, "20261103T000000Z", status="running", cluster_id="c1")
    put_backup(root, "20261104T000000Z", status="failed", cluster_id="c1")
    assert bk.latest(root)["id"] == "20261102T000000Z"
    assert bk.latest(root, "c1")["id"] == "20261101T000000Z"
    assert bk.latest(root, "c3") is None
    assert bk.latest(root, "c1", status="running")["id"] == "20261103T000000Z"
    assert bk.latest(root, "c2", status="running") is None


def test_latest_orders_same_second_ids_by_number(tmp_path):
    root = str(tmp_path)
    now = datetime.datetime(2026, 11, 29, 15, 30, tzinfo=datetime.UTC)
    for _ in range(10):
        put_backup(root, bk.new_backup_id(root, now))
    assert bk.backup_ids(root)[-1] == "20261129T153000Z-10"
    assert bk.latest(root)["id"] == "20261129T153000Z-10"


def test_recent(tmp_path):
    root = str(tmp_path)
    put_backup(root, "20261101T000000Z", created_epoch=1000)
    put_backup(root, "20261102T000000Z", created_epoch=5000, status="running")
    assert bk.recent(root, "c1", 100, 1050)["id"] == "20261101T000000Z"
    assert bk.recent(root, "c1", 50, 1050) is None
    assert bk.recent(root, "c1", 51, 1050) is not None
    assert bk.recent(root, "c2", 10**9, 1050) is None
    assert bk.recent(str(tmp_path / "none"), "c1", 10**9, 1050) is None


def test_resolve(tmp_path):
    root = str(tmp_path)
    for empty in (None, "", "latest"):
        with pytest.raises(bk.BackupError, match=r"no complete backup in .*`kafka-metal backup create`"):
            bk.resolve(root, empty)
    put_backup(root, "20261101T000000Z", status="running")
    with pytest.raises(bk.BackupError, match=r"`kafka-metal backup create`"):
        bk.resolve(root)
    put_backup(root, "20261031T000000Z")
    for name in (None, "", "latest"):
        assert bk.resolve(root, name)["id"] == "20261031T000000Z"
    assert bk.resolve(root, "20261101T000000Z")["status"] == "running"
    with pytest.raises(bk.BackupError, match=r"no backup '20261231T000000Z' in .*backup list --dir"):
        bk.resolve(root, "20261231T000000Z")


def test_format_is_2_and_reads_1_and_2():
    assert (bk.FORMAT, bk.READABLE_FORMATS, bk.CODEC) == (2, (1, 2), "zstd")


@pytest.mark.parametrize("fmt", [1, 2])
def test_load_reads_the_readable_formats(tmp_path, fmt):
    put_backup(str(tmp_path), "20261101T000000Z", fmt=fmt)
    assert bk.load(str(tmp_path), "20261101T000000Z")["format"] == fmt
    assert bk.resolve(str(tmp_path), "20261101T000000Z")["format"] == fmt
    assert bk.resolve(str(tmp_path))["format"] == fmt


@pytest.mark.parametrize("fmt", [0, 3, "1", "2", 1.5, None])
def test_load_refuses_another_format(tmp_path, fmt):
    put_backup(str(tmp_path), "20261101T000000Z", fmt=fmt)
    with pytest.raises(bk.BackupError, match=rf"format {re.escape(repr(fmt))}, this kafka-metal reads formats 1, 2: "
                                             "use the kafka-metal that wrote it"):
        bk.load(str(tmp_path), "20261101T000000Z")
    with pytest.raises(bk.BackupError, match="this kafka-metal reads formats 1, 2"):
        bk.resolve(str(tmp_path), "20261101T000000Z")


def test_chain_of(tmp_path):
    root = str(tmp_path)
    full = put_backup(root, "20261101T000000Z")
    inc1 = put_backup(root, "20261102T000000Z", parent=full["id"])
    inc2 = put_backup(root, "20261103T000000Z", parent=inc1["id"])
    assert [b["id"] for b in bk.chain_of(root, full)] == [full["id"]]
    assert [b["id"] for b in bk.chain_of(root, inc2)] == [full["id"], inc1["id"], inc2["id"]]


def test_chain_of_missing_parent(tmp_path):
    root = str(tmp_path)
    inc = put_backup(root, "20261102T000000Z", parent="20261101T000000Z")
    with pytest.raises(bk.BackupError, match=r"backup 20261102T000000Z is incremental and its parent "
                                             r"20261101T000000Z is missing from .*the whole chain"):
        bk.chain_of(root, inc)


def test_chain_of_incomplete_parent_or_self(tmp_path):
    root = str(tmp_path)
    put_backup(root, "20261101T000000Z", status="running")
    inc = put_backup(root, "20261102T000000Z", parent="20261101T000000Z")
    with pytest.raises(bk.BackupError, match=r"backup 20261101T000000Z is not complete \(running\).*--resume"):
        bk.chain_of(root, inc)
    put_backup(root, "20261103T000000Z")
    running = put_backup(root, "20261104T000000Z", parent="20261103T000000Z", status="running")
    with pytest.raises(bk.BackupError, match=r"backup 20261104T000000Z is not complete"):
        bk.chain_of(root, running)


def test_chain_of_loop(tmp_path):
    root = str(tmp_path)
    a = put_backup(root, "20261101T000000Z", parent="20261102T000000Z")
    put_backup(root, "20261102T000000Z", parent="20261101T000000Z")
    with pytest.raises(bk.BackupError, match=r"backup 20261101T000000Z: its parents form a loop"):
        bk.chain_of(root, a)
    me = put_backup(root, "20261103T000000Z", parent="20261103T000000Z")
    with pytest.raises(bk.BackupError, match="its parents form a loop"):
        bk.chain_of(root, me)


@pytest.mark.parametrize("fmt", [0, 3])
def test_chain_of_names_a_parent_of_another_format(tmp_path, fmt):
    root = str(tmp_path)
    put_backup(root, "20261101T000000Z", fmt=fmt)
    inc = put_backup(root, "20261102T000000Z", parent="20261101T000000Z")
    with pytest.raises(bk.BackupError, match=rf"20261101T000000Z.*format {fmt}, this kafka-metal reads formats 1, 2"):
        bk.chain_of(root, inc)


def test_chain_of_takes_a_format_1_parent_of_a_format_2_backup(tmp_path):
    root = str(tmp_path)
    put_backup(root, "20261101T000000Z", fmt=1)
    inc = put_backup(root, "20261102T000000Z", parent="20261101T000000Z", fmt=2)
    assert [(b["id"], b["format"]) for b in bk.chain_of(root, inc)] == [("20261101T000000Z", 1),
                                                                         ("20261102T000000Z", 2)]


def test_partition_manifests_leave_out_backups_without_the_partition(tmp_path):
    root = str(tmp_path)
    full = put_backup(root, "20261101T000000Z")
    inc = put_backup(root, "20261102T000000Z", parent=full["id"])
    inc2 = put_backup(root, "20261103T000000Z", parent=inc["id"])
    write_all(tmp_path / full["id"], records(range(3)), 0, 3)
    write_all(tmp_path / inc2["id"], records(range(3, 5)), 3, 5, base_digest=bk.chain_all(Z, records(range(3))))
    found = bk.partition_manifests(root, [full, inc, inc2], "orders", 0)
    assert [(os.path.basename(d), m["start"], m["end"]) for d, m in found] == [(full["id"], 0, 3), (inc2["id"], 3, 5)]
    assert bk.partition_manifests(root, [full, inc, inc2], "orders", 1) == []


def test_new_backup_id_is_unique(tmp_path):
    root = str(tmp_path)
    now = datetime.datetime(2026, 11, 29, 15, 30, 0, tzinfo=datetime.UTC)
    first = bk.new_backup_id(root, now)
    assert first == "20261129T153000Z"
    os.makedirs(tmp_path / first)
    assert bk.new_backup_id(root, now) == "20261129T153000Z-2"
    os.makedirs(tmp_path / "20261129T153000Z-2")
    assert bk.new_backup_id(root, now) == "20261129T153000Z-3"
    assert bk.new_backup_id(root, now + datetime.timedelta(seconds=1)) == "20261129T153001Z"
    assert bk._ID_RE.match(bk.new_backup_id(root))
    assert bk.new_backup_id(str(tmp_path / "missing"), now) == first


# --- CLI ------------------------------------------------------------------------------------------


def test_read_passwords_yaml_and_json(tmp_path):
    path = tmp_path / "pw.yml"
    path.write_text("alice: s3cret\n'bob': \"x: y\"\n")
    assert cli.read_passwords(str(path)) == {"alice": "s3cret", "bob": "x: y"}
    path.write_text(json.dumps({"carol": "pw"}))
    assert cli.read_passwords(str(path)) == {"carol": "pw"}
    path.write_text("{}")
    assert cli.read_passwords(str(path)) == {}


@pytest.mark.parametrize(
    "text",
    ["- alice\n- bob\n", "just a string\n", "", "alice: 1234\n", "alice: yes\n", "alice: null\n",
     "alice:\n  nested: x\n", "123: pw\n"],
    ids=["list", "string", "empty", "int-value", "bool-value", "null-value", "nested", "int-key"],
)
def test_read_passwords_refuses_what_is_not_user_to_password(tmp_path, text):
    path = tmp_path / "pw.yml"
    path.write_text(text)
    with pytest.raises(bk.BackupError, match=rf"^--passwords {path}: expected a mapping of user names to password"):
        cli.read_passwords(str(path))


def test_read_passwords_refuses_bad_yaml_and_a_missing_file(tmp_path):
    path = tmp_path / "pw.yml"
    path.write_text("alice: [unclosed\n")
    with pytest.raises(bk.BackupError, match=rf"^--passwords {path}: not YAML or JSON"):
        cli.read_passwords(str(path))
    missing = tmp_path / "missing.yml"
    with pytest.raises(bk.BackupError, match=rf"^--passwords {missing}: No such file or directory$"):
        cli.read_passwords(str(missing))
    with pytest.raises(bk.BackupError, match=rf"^--passwords {tmp_path}: Is a directory$"):
        cli.read_passwords(str(tmp_path))


def test_read_passwords_refuses_a_binary_file(tmp_path):
    path = tmp_path / "pw.gpg"
    path.write_bytes(b"\x85\x02\x0c\x03\xff\xfe\x00binary")
    with pytest.raises(bk.BackupError, match=r"^--passwords "):
        cli.read_passwords(str(path))


def test_read_passwords_from_stdin(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("alice: from-vault\n"))
    assert cli.read_passwords("-") == {"alice": "from-vault"}
    monkeypatch.setattr("sys.stdin", io.StringIO("[]"))
    with pytest.raises(bk.BackupError, match=r"^--passwords -: expected a mapping"):
        cli.read_passwords("-")


def test_parser_backup_create():
    args = main.build_parser().parse_args(["backup", "create", "--dir", "D", "--bootstrap-server", "B",
                                           "--incremental", "--topic", "a", "--topic", "b"])
    assert (args.command, args.backup_command) == ("backup", "create")
    assert (args.dir, args.bootstrap_server, args.incremental, args.topic) == ("D", "B", True, ["a", "b"])
    assert (args.new, args.skip_quotas, args.json, args.command_config) == (False, False, False, None)
    assert args.chunk_records == bk.CHUNK_RECORDS
    assert callable(args.func)
    args = main.build_parser().parse_args(["backup", "create", "--dir", "D", "--bootstrap-server", "B"])
    assert (args.incremental, args.topic) == (False, None)


def test_parser_backup_restore():
    args = main.build_parser().parse_args(["backup", "restore", "--dir", "D", "--bootstrap-server", "B",
                                           "--existing", "append", "--passwords", "-", "--id", "20261101T000000Z"])
    assert (args.backup_command, args.existing, args.passwords, args.id) == ("restore", "append", "-",
                                                                             "20261101T000000Z")
    assert (args.skip_users, args.skip_acls, args.skip_quotas, args.skip_groups) == (False, False, False, False)
    args = main.build_parser().parse_args(["backup", "restore", "--dir", "D", "--bootstrap-server", "B"])
    assert (args.existing, args.passwords, args.id, args.topic) == ("refuse", None, None, None)


@pytest.mark.parametrize(
    "argv",
    [
        ["backup", "restore", "--dir", "D", "--bootstrap-server", "B", "--existing", "bogus"],
        ["backup", "restore", "--dir", "D"],
        ["backup", "create", "--bootstrap-server", "B"],
        ["backup", "create", "--dir", "D", "--bootstrap-server", "B", "--chunk-records", "many"],
        ["backup"],
        ["backup", "prune", "--dir", "D"],
    ],
    ids=["existing-bogus", "restore-no-server", "create-no-dir", "chunk-records-not-int", "no-action", "bad-action"],
)
def test_parser_refuses(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main.build_parser().parse_args(argv)
    assert exc.value.code == 2
    if "bogus" in argv:
        assert "invalid choice: 'bogus'" in capsys.readouterr().err


def test_parser_verify_and_list_need_no_server():
    args = main.build_parser().parse_args(["backup", "verify", "--dir", "D"])
    assert (args.bootstrap_server, args.id) == (None, None)
    args = main.build_parser().parse_args(["backup", "list", "--dir", "D", "--json"])
    assert args.json is True


def test_main_backup_list(tmp_path, capsys):
    assert main.main(["backup", "list", "--dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"no backups in {tmp_path}\n"
    put_backup(str(tmp_path), "20261101T000000Z", totals={"records": 1234, "bytes": 2048, "stored_bytes": 100})
    assert main.main(["backup", "list", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["ID", "KIND", "STATUS"]
    assert out[1].split() == ["20261101T000000Z", "full", "complete", "-", "0", "1,234", "2.0", "KiB", "100", "B",
                              "c1"]
    assert main.main(["backup", "list", "--dir", str(tmp_path), "--json"]) == 0
    assert [b["id"] for b in json.loads(capsys.readouterr().out)] == ["20261101T000000Z"]


def test_main_backup_errors_are_one_line_and_status_2(tmp_path, capsys):
    put_backup(str(tmp_path), "20261101T000000Z", fmt=9)
    assert main.main(["backup", "list", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kafka-metal backup: ") and "format 9" in err and len(err.splitlines()) == 1
    missing = tmp_path / "pw.yml"
    assert main.main(["backup", "restore", "--dir", str(tmp_path), "--bootstrap-server", "127.0.0.1:1",
                      "--passwords", str(missing)]) == 2
    assert capsys.readouterr().err == f"kafka-metal backup: --passwords {missing}: No such file or directory\n"


def test_translate_committed_reads_only_the_chunk_it_needs_and_equals_the_full_translation(tmp_path, monkeypatch):
    # a chain of two backups of one partition, with gaps (aborted records, compaction) inside and between chunks
    full = write_all(tmp_path / "full", records([0, 1, 2, 5, 6, 9, 10, 11]), 0, 12, chunk_records=3)
    inc = bk.PartitionWriter(str(tmp_path / "inc"), "orders", 0, 12, 30, chunk_records=3)
    for r in records([14, 15, 20, 21, 22, 27]):
        inc.add(r)
    inc.flush(complete=True)
    manifests = [(str(tmp_path / "full"), full.manifest), (str(tmp_path / "inc"), inc.manifest)]
    every = [0, 1, 2, 5, 6, 9, 10, 11, 14, 15, 20, 21, 22, 27]
    reads = []
    real = bk.read_chunk
    monkeypatch.setattr(bk, "read_chunk", lambda *a, **k: reads.append(a[2]["file"]) or real(*a, **k))
    for committed in range(-1, 32):
        reads.clear()
        assert bk.translate_committed(manifests, committed, 100) == bk.translate_offset(every, committed, 100), \
            committed
        assert len(reads) <= 1, (committed, reads)


def test_keep_buffers_under_writes_the_largest_buffers_first(tmp_path):
    big = b"x" * 1000
    writers = []
    for p, n in enumerate((5, 1, 3)):  # 5 KB, 1 KB, 3 KB buffered
        w = bk.PartitionWriter(str(tmp_path), "t", p, 0, 100)
        for i in range(n):
            w.add(rec(i, value=big))
        writers.append(w)
    assert bk.keep_buffers_under(writers, 100_000) == 0 and all(not w.manifest["chunks"] for w in writers)
    assert bk.keep_buffers_under(writers, 4_500) == 1  # the 5 KB one: 4 KB left
    assert [len(w.manifest["chunks"]) for w in writers] == [1, 0, 0] and writers[0].buffered == 0
    assert bk.keep_buffers_under(writers, 0) == 2
    assert all(w.buffered == 0 and len(w.manifest["chunks"]) == 1 for w in writers)
    # what was written early is the same records, the same digest
    for p, n in enumerate((5, 1, 3)):
        assert writers[p].manifest["records"] == n
        assert writers[p].manifest["digest"] == bk.chain_all(bk.ZERO_DIGEST, [rec(i, value=big) for i in range(n)])
