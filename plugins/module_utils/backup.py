# Copyright: kafka-metal contributors
# Apache License 2.0
"""Kafka backups on disk: the record format, chunks and manifests, digests, plans. No Kafka I/O here.

A backup is a directory ``ROOT/ID`` (``ID`` is its UTC start time, ``20261129T153000Z``)::

    backup.json                      what was asked, the backup point, the status, the parent (incremental)
    metadata/cluster.json            cluster id, brokers, controller
    metadata/topics.json             partitions, replication factor, non-default configs, topic ids
    metadata/acls.json  users.json  groups.json  quotas.json
    data/TOPIC/PARTITION/manifest.json
    data/TOPIC/PARTITION/FIRST-LAST.rec.zst

Records are stored in their log order, with their source offset, timestamp and type, key, value and
headers, compressed in chunks: zstd (``.rec.zst``); backups of format 1 have gzip chunks (``.rec.gz``),
which are still read, and each chunk's manifest entry names its codec. Every chunk is written to a
temporary name and renamed, and only then named in the partition's manifest (also written atomically):
after a crash, the manifest names only whole chunks, and ``next`` says where to go on.

The digest is a chain over the records' content: ``d = sha256(d_prev || content)``, where the content
is the key, value, headers and (for create-time timestamps) the timestamp, each length-prefixed. Offsets
are not part of it, so a restored topic (whose offsets start again at 0, without control records or
aborted transactions) has the same digest as its backup, and chunk sizes, resumes and incremental
backups do not change it. An incremental backup's chain starts from its parent's final digest.
"""

from __future__ import annotations

import bisect
import datetime
import gzip
import hashlib
import json
import os
import re
import struct

from ansible_collections.metal.kafka.plugins.module_utils.files import write_file

FORMAT = 2
# Format 1 is format 2 with gzip chunks only (and no ``codec`` in the chunks' entries).
READABLE_FORMATS = (1, 2)
CODEC = "zstd"
ZSTD_LEVEL = 3
_SUFFIX = {"zstd": ".rec.zst", "gzip": ".rec.gz"}
ZERO_DIGEST = "0" * 64
CHUNK_BYTES = 8 * 1024 * 1024
CHUNK_RECORDS = 50_000
TIMESTAMP_CREATE = 1
TIMESTAMP_LOG_APPEND = 2
# Topics that belong to Kafka itself (offsets, transactions, share groups): never backed up or restored.
INTERNAL_PREFIX = "__"
_HEAD = struct.Struct(">qqbii")
_CONTENT_HEAD = struct.Struct(">qi")
_LEN = struct.Struct(">i")
_NO_HEADERS = _LEN.pack(0)
_ID_RE = re.compile(r"^\d{8}T\d{6}Z(-\d+)?$")
_TOPIC_RE = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")


class BackupError(RuntimeError):
    """A backup or restore that cannot go on; the message names the problem and the fix."""


def _zstd():
    try:
        import zstandard
    except ImportError as exc:
        raise BackupError(f"the Python package zstandard is missing ({exc}): pip install zstandard") from None
    return zstandard


def compress(raw, codec=CODEC):
    if codec == "zstd":
        return _zstd().ZstdCompressor(level=ZSTD_LEVEL).compress(raw)
    if codec == "gzip":
        return gzip.compress(raw, compresslevel=1)
    raise BackupError(f"unknown chunk codec {codec!r}")


def decompress(data, codec):
    """A chunk's bytes; ``codec`` from its manifest entry (``gzip`` when the entry names none: format 1)."""
    if codec == "zstd":
        stream = _zstd().ZstdDecompressor().decompressobj()
        out = stream.decompress(data)
        if not stream.eof or stream.unused_data:  # cut short, or bytes after the one frame a chunk is
            raise ValueError("the zstd frame is cut short or followed by other bytes")
        return out
    if codec == "gzip":
        return gzip.decompress(data)
    raise BackupError(f"unknown chunk codec {codec!r}: written by a newer kafka-metal?")


# --------------------------------------------------------------------------------------------------
# records
# --------------------------------------------------------------------------------------------------


class Record:
    __slots__ = ("offset", "timestamp", "timestamp_type", "key", "value", "headers")

    def __init__(self, offset, timestamp, timestamp_type, key, value, headers=None):
        self.offset = offset
        self.timestamp = timestamp
        self.timestamp_type = timestamp_type
        self.key = key
        self.value = value
        self.headers = list(headers or [])

    def __eq__(self, other):
        return isinstance(other, Record) and all(getattr(self, s) == getattr(other, s) for s in self.__slots__)

    def __repr__(self):
        return f"Record(offset={self.offset}, key={self.key!r}, value_len={len(self.value or b'')})"


def _opt(data):
    if data is None:
        return b"\xff\xff\xff\xff"
    return struct.pack(">i", len(data)) + data


def _headers_bytes(headers):
    if not headers:
        return _NO_HEADERS
    out = [struct.pack(">i", len(headers))]
    for name, value in headers:
        raw = name.encode() if isinstance(name, str) else name
        out.append(struct.pack(">i", len(raw)) + raw)
        out.append(_opt(value if not isinstance(value, str) else value.encode()))
    return b"".join(out)


def content_bytes(record):
    """What the digest covers: key, value, headers, and the timestamp when the producer set it."""
    ts = record.timestamp if record.timestamp_type == TIMESTAMP_CREATE else -1
    return struct.pack(">q", ts) + _opt(record.key) + _opt(record.value) + _headers_bytes(record.headers)


def chain(digest_hex, record):
    return hashlib.sha256(bytes.fromhex(digest_hex) + content_bytes(record)).hexdigest()


def chain_raw(digest, ts, ts_type, key, value, headers):
    """The next digest (bytes) of a chain at ``digest`` (bytes), from a record's fields: what
    :func:`chain` computes, without a :class:`Record`."""
    return _next_digest(digest, ts, ts_type, -1 if key is None else len(key), key or b"",
                        -1 if value is None else len(value), value or b"", _headers_bytes(headers))


def _next_digest(digest, ts, ts_type, klen, key, vlen, value, hb):
    """:func:`content_bytes` hashed after ``digest``, from parts a caller has at hand (lengths -1 for null,
    ``key``/``value`` then empty, ``hb`` the encoded headers): the fast paths' one copy of the content."""
    return hashlib.sha256(b"".join((digest, _CONTENT_HEAD.pack(ts if ts_type == TIMESTAMP_CREATE else -1, klen),
                                    key, _LEN.pack(vlen), value, hb))).digest()


def chain_all(digest_hex, records):
    d = bytes.fromhex(digest_hex)
    for r in records:
        d = hashlib.sha256(d + content_bytes(r)).digest()
    return d.hex()


def encode(record):
    key, value = record.key, record.value
    head = _HEAD.pack(record.offset, record.timestamp, record.timestamp_type,
                      -1 if key is None else len(key), -1 if value is None else len(value))
    return head + (key or b"") + (value or b"") + _headers_bytes(record.headers)


def decode_all(data, raw=False):
    """Records of a chunk's uncompressed bytes, in order (``raw``: as tuples, see :func:`decode_raw`); a
    BackupError when the bytes end inside a record."""
    try:
        return _decode_all(data, raw)
    except (struct.error, UnicodeDecodeError) as exc:
        raise BackupError(f"a chunk ends inside a record or is corrupt ({exc})") from None


def decode_raw(data):
    """``[(offset, timestamp, timestamp_type, key, value, headers)]``: what :func:`decode_all` reads, as tuples
    (``headers`` a list of ``(name, value)``, empty when none)."""
    return decode_all(data, raw=True)


def _decode_all(data, raw=False):
    out = []
    pos, end = 0, len(data)
    unpack = _HEAD.unpack_from
    while pos < end:
        offset, ts, ts_type, klen, vlen = unpack(data, pos)
        pos += _HEAD.size
        key = None if klen < 0 else data[pos:pos + klen]
        pos += max(klen, 0)
        value = None if vlen < 0 else data[pos:pos + vlen]
        pos += max(vlen, 0)
        if pos > end:
            raise BackupError("a chunk ends inside a record: the file is truncated or corrupt")
        (count,) = struct.unpack_from(">i", data, pos)
        pos += 4
        headers = []
        for _ in range(count):
            (nlen,) = struct.unpack_from(">i", data, pos)
            pos += 4
            if pos + nlen > end:
                raise BackupError("a chunk ends inside a record: the file is truncated or corrupt")
            name = data[pos:pos + nlen].decode()
            pos += nlen
            (hlen,) = struct.unpack_from(">i", data, pos)
            pos += 4
            hval = None if hlen < 0 else data[pos:pos + hlen]
            pos += max(hlen, 0)
            headers.append((name, hval))
        if pos > end:
            raise BackupError("a chunk ends inside a record: the file is truncated or corrupt")
        if not raw:
            out.append(Record(offset, ts, ts_type, key, value, headers))
        else:
            out.append((offset, ts, ts_type, key, value, headers))
    return out


# --------------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------------


def write_atomic(path, data, mode=0o600):
    """Writes ``data`` to ``path`` through a temporary file and a rename, at ``mode`` (0600 by default)."""
    write_file(path, data, mode)


def write_json(path, obj):
    write_atomic(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def makedirs(path):
    """Creates ``path`` and its missing parents at 0700 (os.makedirs gives only the last one the mode)."""
    missing = []
    while path and not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path.rstrip("/"))
    for p in reversed(missing):
        try:
            os.mkdir(p, 0o700)
        except FileExistsError:
            pass
        os.chmod(p, 0o700)


def new_backup_id(root, now=None):
    now = now or datetime.datetime.now(datetime.UTC)
    base = now.strftime("%Y%m%dT%H%M%SZ")
    candidate, n = base, 1
    while os.path.exists(os.path.join(root, candidate)):
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def check_topic_name(name):
    if not _TOPIC_RE.match(name or "") or name in (".", ".."):
        raise BackupError(f"{name!r} is not a Kafka topic name (letters, digits, '.', '_', '-', at most 249)")
    return name


def partition_dir(backup_dir, topic, partition):
    return os.path.join(backup_dir, "data", check_topic_name(topic), str(int(partition)))


class PartitionWriter:
    """Appends records of one partition to a backup, in chunks, resumably.

    The manifest says what is stored: ``start``/``end`` (the range asked for, ``end`` exclusive),
    ``next`` (the first offset not yet read), ``records``, ``digest`` and the chunks.
    """

    def __init__(self, backup_dir, topic, partition, start, end, base_digest=ZERO_DIGEST, base_records=0,
                 gap=None, chunk_bytes=CHUNK_BYTES, chunk_records=CHUNK_RECORDS):
        self.dir = partition_dir(backup_dir, topic, partition)
        self.path = os.path.join(self.dir, "manifest.json")
        self.chunk_bytes, self.chunk_records = chunk_bytes, chunk_records
        if os.path.exists(self.path):
            self.manifest = read_json(self.path)
            self._drop_orphans()
        else:
            makedirs(self.dir)
            self.manifest = {"topic": topic, "partition": int(partition), "start": start, "end": end,
                             "next": start, "records": 0, "bytes": 0, "base_digest": base_digest,
                             "base_records": base_records, "digest": base_digest, "chunks": [],
                             "complete": end <= start, "gap": gap}
            write_json(self.path, self.manifest)
        self._buf, self._count, self._digest = bytearray(), 0, bytes.fromhex(self.manifest["digest"])
        self._next, self._end = self.manifest["next"], self.manifest["end"]

    def _drop_orphans(self):
        named = {c["file"] for c in self.manifest["chunks"]} | {"manifest.json"}
        for name in os.listdir(self.dir):
            if name not in named:
                os.unlink(os.path.join(self.dir, name))

    @property
    def buffered(self):
        """Bytes of records taken and not yet written as a chunk."""
        return len(self._buf)

    @property
    def complete(self):
        return self.manifest["complete"]

    @property
    def next_offset(self):
        return self.manifest["next"]

    def add(self, record):
        """Takes a record read at ``record.offset`` (ignored when outside the range or already stored)."""
        self.add_raw(record.offset, record.timestamp, record.timestamp_type, record.key, record.value, record.headers)

    def add_raw(self, offset, ts, ts_type, key, value, headers):
        """:meth:`add` from a record's fields (``headers``: ``[(name, value)]`` or None), as a consumer gives
        them: the encoding and the digest share the length-prefixed parts, and no object is built."""
        if offset < self._next or offset >= self._end:
            return
        if not self._count:
            self._first = offset
        hb = _headers_bytes(headers)
        klen = -1 if key is None else len(key)
        vlen = -1 if value is None else len(value)
        key = key or b""
        value = value or b""
        buf = self._buf
        buf += _HEAD.pack(offset, ts, ts_type, klen, vlen)
        buf += key
        buf += value
        buf += hb
        self._digest = _next_digest(self._digest, ts, ts_type, klen, key, vlen, value, hb)
        self._last = offset
        self._next = offset + 1
        self._count += 1
        if len(buf) >= self.chunk_bytes or self._count >= self.chunk_records:
            self.flush()

    def flush(self, next_offset=None, complete=False):
        """Writes the buffered records as a chunk, then the manifest. ``next_offset`` moves the resume
        point past records that will never be read (aborted transactions, control records)."""
        m = self.manifest
        if self._count:
            first = self._first
            name = f"{first:020d}-{self._last:020d}{_SUFFIX[CODEC]}"
            data = compress(self._buf)
            write_atomic(os.path.join(self.dir, name), data)
            m["chunks"].append({"file": name, "first": first, "last": self._last, "records": self._count,
                                "codec": CODEC, "sha256": hashlib.sha256(data).hexdigest(),
                                "digest_after": self._digest.hex()})
            m["records"] += self._count
            m["bytes"] += len(self._buf)
            m["digest"] = self._digest.hex()
            m["next"] = self._last + 1
            self._buf, self._count = bytearray(), 0
        if next_offset is not None:
            m["next"] = max(m["next"], min(next_offset, m["end"]))
        if complete:
            m["next"] = m["end"]
            m["complete"] = True
        self._next = m["next"]
        write_json(self.path, m)


def keep_buffers_under(writers, budget):
    """Writes the largest buffers of ``writers`` (:class:`PartitionWriter`) as chunks until they hold ``budget``
    bytes at most together: a process that reads many partitions holds a bounded amount of memory, at the
    price of smaller chunks. Returns how many chunks it wrote."""
    buffered = sorted((w for w in writers if w.buffered), key=lambda w: w.buffered, reverse=True)
    total, written = sum(w.buffered for w in buffered), 0
    for w in buffered:
        if total <= budget:
            break
        total -= w.buffered
        w.flush()
        written += 1
    return written


def read_manifest(backup_dir, topic, partition):
    return read_json(os.path.join(partition_dir(backup_dir, topic, partition), "manifest.json"))


def read_chunk(backup_dir, manifest, chunk, check=True, raw=False):
    """One stored chunk's records, in order, after checking the chunk's sha256 (``raw``: as the tuples of
    :func:`decode_raw`)."""
    path = os.path.join(partition_dir(backup_dir, manifest["topic"], manifest["partition"]), chunk["file"])
    with open(path, "rb") as f:
        data = f.read()
    if check and hashlib.sha256(data).hexdigest() != chunk["sha256"]:
        raise BackupError(f"{path}: sha256 differs from the manifest: the chunk was changed or damaged")
    codec = chunk.get("codec", "gzip")
    try:
        data = decompress(data, codec)
    except BackupError:
        raise
    except Exception as exc:  # the codecs' own errors (zlib.error, zstandard.ZstdError, EOFError) share no base
        raise BackupError(f"{path}: not a whole {codec} chunk ({exc})") from None
    return decode_all(data, raw)


def iter_chunks(backup_dir, manifest, check=True, raw=False):
    """Each stored chunk with its records, in order."""
    for chunk in manifest["chunks"]:
        yield chunk, read_chunk(backup_dir, manifest, chunk, check, raw)


# --------------------------------------------------------------------------------------------------
# backups: listing, chains, verification
# --------------------------------------------------------------------------------------------------


def _id_order(backup_id):
    base, _, n = backup_id.partition("-")
    return base, int(n or 1)


def backup_ids(root):
    """Backup ids in ``root``, oldest first (ids of the same second by their number)."""
    if not os.path.isdir(root):
        return []
    return sorted((n for n in os.listdir(root)
                   if _ID_RE.match(n) and os.path.isfile(os.path.join(root, n, "backup.json"))), key=_id_order)


def load(root, backup_id):
    path = os.path.join(root, backup_id, "backup.json")
    if not os.path.isfile(path):
        raise BackupError(f"no backup {backup_id!r} in {root} (`kafka-metal backup list --dir {root}` shows them)")
    info = read_json(path)
    if info.get("format") not in READABLE_FORMATS:
        raise BackupError(f"{path}: format {info.get('format')!r}, this kafka-metal reads formats "
                          f"{', '.join(map(str, READABLE_FORMATS))}: use the kafka-metal that wrote it")
    return info


def list_backups(root):
    return [load(root, i) for i in backup_ids(root)]


def latest(root, cluster_id=None, status="complete"):
    for info in reversed(list_backups(root)):
        if info["status"] == status and (cluster_id is None or info["cluster_id"] == cluster_id):
            return info
    return None


def recent(root, cluster_id, max_age, now):
    """The newest complete backup of the cluster taken less than ``max_age`` seconds before ``now``."""
    info = latest(root, cluster_id)
    if info and now - info["created_epoch"] < max_age:
        return info
    return None


def resolve(root, backup_id=None):
    if backup_id in (None, "", "latest"):
        info = latest(root)
        if info is None:
            raise BackupError(f"no complete backup in {root}: create one with `kafka-metal backup create`")
        return info
    return load(root, backup_id)


def chain_of(root, info):
    """The backups a restore of ``info`` reads, oldest (the full one) first."""
    out = [info]
    while out[0].get("parent"):
        parent = out[0]["parent"]
        if parent in {b["id"] for b in out}:
            raise BackupError(f"backup {info['id']}: its parents form a loop")
        if not os.path.isfile(os.path.join(root, parent, "backup.json")):
            raise BackupError(f"backup {info['id']} is incremental and its parent {parent} is missing from "
                              f"{root}: restore needs the whole chain")
        out.insert(0, load(root, parent))
    for b in out:
        if b["status"] != "complete":
            raise BackupError(f"backup {b['id']} is not complete ({b['status']}): finish it with "
                              "`kafka-metal backup create --resume` first")
    return out


def partition_manifests(root, chain, topic, partition):
    """The manifests of one partition along a chain (backups that do not hold it are left out)."""
    out = []
    for b in chain:
        path = os.path.join(partition_dir(os.path.join(root, b["id"]), topic, partition), "manifest.json")
        if os.path.isfile(path):
            out.append((os.path.join(root, b["id"]), read_json(path)))
    return out


def verify_partition(backup_dir, manifest):
    """Problems found by re-reading one partition's chunks (an empty list when all is well)."""
    problems = []
    where = f"{manifest['topic']}/{manifest['partition']}"
    digest = bytes.fromhex(manifest["base_digest"])
    count, previous = 0, manifest["start"] - 1
    try:
        for chunk, records in iter_chunks(backup_dir, manifest):
            if len(records) != chunk["records"]:
                problems.append(f"{where} {chunk['file']}: {len(records)} records, manifest says {chunk['records']}")
            for r in records:
                if r.offset <= previous or r.offset >= manifest["end"]:
                    problems.append(f"{where}: offset {r.offset} out of order or outside "
                                    f"[{manifest['start']}, {manifest['end']})")
                    break
                previous = r.offset
                digest = hashlib.sha256(digest + content_bytes(r)).digest()
            count += len(records)
            if digest.hex() != chunk["digest_after"]:
                problems.append(f"{where} {chunk['file']}: digest after the chunk differs from the manifest")
    except (BackupError, OSError, EOFError, struct.error, ValueError) as exc:
        problems.append(f"{where}: {exc}")
        return problems
    if count != manifest["records"]:
        problems.append(f"{where}: {count} records stored, manifest says {manifest['records']}")
    if digest.hex() != manifest["digest"]:
        problems.append(f"{where}: digest {digest.hex()[:16]} differs from the manifest's {manifest['digest'][:16]}")
    if not manifest["complete"]:
        problems.append(f"{where}: not complete (next offset {manifest['next']} of {manifest['end']})")
    return problems


# --------------------------------------------------------------------------------------------------
# plans
# --------------------------------------------------------------------------------------------------


def partition_targets(end_offsets, start_offsets, parent_ends=None, topic_ids=None, parent_topic_ids=None):
    """``{(topic, partition): (start, end, gap, continues)}`` for a backup (``continues``: the partition's
    digest chain goes on from the parent's).

    A full backup reads each partition from its log start. An incremental one reads from where the
    parent stopped; if retention already deleted some of that (log start beyond the parent's end), it
    starts at the log start and records the gap. A topic deleted and created again (new topic id)
    starts over from its log start.
    """
    targets = {}
    for tp, end in end_offsets.items():
        log_start = start_offsets[tp]
        start, gap, continues = log_start, None, False
        if parent_ends is not None and tp in parent_ends:
            same_topic = (topic_ids or {}).get(tp[0]) == (parent_topic_ids or {}).get(tp[0])
            if same_topic:
                continues = True
                previous = parent_ends[tp]
                if previous >= log_start:
                    start = previous
                else:
                    gap = {"from": previous, "to": log_start}
        targets[tp] = (start, max(end, start), gap, continues)
    return targets


def translate_offset(source_offsets, committed, base):
    """The restored offset of a committed offset: the group resumes at the first record whose source
    offset is at or after ``committed``; ``source_offsets`` are the stored records' offsets, in order,
    and ``base`` is the restored partition's end before the restore wrote to it."""
    return base + bisect.bisect_left(source_offsets, committed)


def translate_committed(manifests, committed, base):
    """:func:`translate_offset` over a partition's chain (``[(backup_dir, manifest)]``, oldest first) from the
    manifests' chunk ranges: only the chunk that holds ``committed`` is read."""
    before = 0
    for backup_dir, manifest in manifests:
        for chunk in manifest["chunks"]:
            if chunk["last"] < committed:
                before += chunk["records"]
            elif chunk["first"] >= committed:
                return base + before
            else:
                offsets = [r.offset for r in read_chunk(backup_dir, manifest, chunk)]
                return translate_offset(offsets, committed, base + before)
    return base + before


def plan_topics(backup_topics, live_topics, existing="refuse", restored_before=()):
    """What a restore does with each topic, or a BackupError naming every conflict.

    ``backup_topics``: ``{name: {"partitions": n, ...}}``; ``live_topics``: ``{name: {"partitions": n,
    "records": number of records held}}``; ``restored_before``: topics this restore created or took
    on an earlier run (its state file), which it resumes. ``existing``: ``refuse`` (default), ``skip``
    (leave existing topics alone) or ``append`` (write after the data a topic holds; the partition
    counts must match).
    """
    if existing not in ("refuse", "skip", "append"):
        raise BackupError(f"existing={existing!r}: use refuse, skip or append")
    plan, conflicts = {}, []
    for name in sorted(backup_topics):
        want = backup_topics[name]["partitions"]
        live = live_topics.get(name)
        if name in restored_before:
            if live is None:
                conflicts.append(f"{name}: an earlier run of this restore created it and it is gone; delete the "
                                 "restore state file to start over")
            else:
                plan[name] = "resume"
            continue
        if live is None:
            plan[name] = "create"
        elif existing == "skip":
            plan[name] = "skip"
        elif live["partitions"] != want:
            conflicts.append(f"{name}: exists with {live['partitions']} partitions, the backup has {want} "
                             "(restore it under another cluster, delete the topic, or pass --existing skip)")
        elif live["records"] > 0 and existing != "append":
            conflicts.append(f"{name}: exists and holds {live['records']} records (delete it, or pass --existing "
                             "append to write after them, or --existing skip)")
        else:
            plan[name] = "append" if live["records"] > 0 else "use"
    if conflicts:
        raise BackupError("restore refused before any change:\n  " + "\n  ".join(conflicts))
    return plan


def missing_passwords(users, passwords):
    """SCRAM users of the backup without a password in ``passwords`` (Kafka never gives them back)."""
    return sorted(u for u in users if u not in (passwords or {}))


def describe_quota_entity(entity):
    parts = []
    for kind in sorted(entity):
        name = entity[kind]
        parts.append(f"{kind}={'<default>' if name is None else name}")
    return ",".join(parts)


def plan_quotas(backup_quotas, live_quotas):
    """Quota entries to write so every backed-up quota holds on the target (never removes one)."""
    live = {describe_quota_entity(q["entity"]): q["values"] for q in live_quotas}
    out = []
    for q in backup_quotas:
        have = live.get(describe_quota_entity(q["entity"]), {})
        change = {k: v for k, v in q["values"].items() if have.get(k) != v}
        if change:
            out.append({"entity": q["entity"], "values": change})
    return out


def human_bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        shown = f"{n:.0f}" if unit == "B" else f"{n:.1f}"
        if float(shown) < 1024 or unit == "TiB":
            return f"{shown} {unit}"
        n /= 1024
