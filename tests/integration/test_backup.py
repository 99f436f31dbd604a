"""Backup and restore against real Kafka: the "nothing lost" test and its fault cases.

One single-node Kafka 4.1.1 (SCRAM over SASL_PLAINTEXT, StandardAuthorizer, super user `admin`) is
filled with the fixtures the issue names, backed up through the `kafka-metal backup` command line
while a producer keeps writing, then wiped (its storage deleted and formatted again: a new cluster id)
and restored. What the cluster held is read before the wipe and compared record by record after the
restore. The fault cases run on the same clusters: a backup killed with SIGKILL and resumed, an
incremental backup, a restore refused on a mismatched topic (before any change), a restore run twice.

The client-quota requests of wire.py (which the backup uses for quotas) are tested first on the same
cluster, before it holds any quota: one Kafka start less in the suite. The broker forwards
AlterClientQuotas to the controller and answers once the change is committed, but serves
DescribeClientQuotas from its own copy of the metadata, which can lag by a few milliseconds: reads
after a write wait until they see it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

confluent_kafka = pytest.importorskip("confluent_kafka")
from confluent_kafka import admin as ck_admin  # noqa: E402
from kafka_metal import ensure_collection_path  # noqa: E402
from local_kafka import NEEDS_JAVA, VENV_BIN, LocalKafka, free_port, scram_node  # noqa: E402

ensure_collection_path()
from ansible_collections.metal.kafka.plugins.module_utils import backup as bk  # noqa: E402
from ansible_collections.metal.kafka.plugins.module_utils import backup_kafka, backup_parallel, wire  # noqa: E402

# a real Kafka from the distribution `kafka-metal dist build` assembles from Maven Central
pytestmark = [NEEDS_JAVA, pytest.mark.maven]

ADMIN_PW = "admin-" + uuid.uuid4().hex
ALICE_PW = "alice-" + uuid.uuid4().hex
BOB_PW = "bob-" + uuid.uuid4().hex
SECRETS = (ADMIN_PW, ALICE_PW, BOB_PW)
NEAR_LIMIT = 1_000_000  # the broker's default max.message.bytes is 1048588
BLOBS = 32  # records of NEAR_LIMIT bytes: more than the restore's producers have in flight at once (5 requests each)
CODECS = ("gzip", "snappy", "lz4", "zstd")


def server_properties(data: Path, client_port: int, controller_port: int) -> str:
    return "\n".join(scram_node(data, client_port, controller_port, ADMIN_PW, ("SCRAM-SHA-512", "SCRAM-SHA-256"))
                     + ["transaction.state.log.num.partitions=4", "offsets.topic.num.partitions=4"]) + "\n"


def conf(kafka, user="admin", password=ADMIN_PW, mechanism="SCRAM-SHA-512") -> dict:
    return {"bootstrap.servers": kafka.bootstrap, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": mechanism,
            "sasl.username": user, "sasl.password": password}


class Kafka(LocalKafka):
    def __init__(self, workdir: Path):
        super().__init__(workdir, server_properties)
        self._admin = None
        self.command_config = workdir / "admin.properties"
        self.command_config.write_text(
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n"
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="admin" password="{ADMIN_PW}";\n')
        self.command_config.chmod(0o600)

    def admin(self):
        if self._admin is None:
            self._admin = ck_admin.AdminClient(conf(self))
        return self._admin

    def boot(self):
        self._admin = None
        self.start("--add-scram", f"SCRAM-SHA-512=[name=admin,password={ADMIN_PW}]")
        self.wait_ready(self.admin())

    def wipe(self):
        """New storage: the data directory deleted and formatted again (a new cluster id)."""
        self.stop()
        shutil.rmtree(self.workdir / "data")
        self.boot()

    def cluster_id(self):
        return self.admin().describe_cluster(request_timeout=10).result(15).cluster_id


def cli(*args, expect=0, stdin=None, timeout=600):
    proc = subprocess.run([str(VENV_BIN / "kafka-metal"), "backup", *map(str, args)], capture_output=True, text=True,
                          input=stdin, timeout=timeout)
    out = proc.stdout + proc.stderr
    for secret in SECRETS:
        assert secret not in out, "a password appeared in the command's output"
    assert proc.returncode == expect, f"exit {proc.returncode}, expected {expect}:\n{out[-4000:]}"
    if "--json" in args:
        return json.loads(proc.stdout[proc.stdout.index("{\n"):])
    return out


# --------------------------------------------------------------------------------------------------
# fixtures on the source cluster
# --------------------------------------------------------------------------------------------------


def create_topics(kafka, specs):
    futures = kafka.admin().create_topics(
        [ck_admin.NewTopic(n, num_partitions=p, replication_factor=1, config=c) for n, (p, c) in specs.items()],
        request_timeout=30)
    for f in futures.values():
        f.result(30)


def produce(kafka, topic, records, compression="none", partition=None):
    """``records``: (key, value, headers) tuples; keys choose the partition unless ``partition`` is given."""
    p = confluent_kafka.Producer({**conf(kafka), "compression.type": compression, "linger.ms": 5,
                                  "enable.idempotence": True, "message.max.bytes": NEAR_LIMIT + 40_000})
    errors = []
    for key, value, headers in records:
        kw = {"key": key, "value": value, "headers": headers,
              "on_delivery": lambda err, _m: err and errors.append(err)}
        if partition is not None:
            kw["partition"] = partition
        while True:
            try:
                p.produce(topic, **kw)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(60) == 0 and not errors, errors


def fill_source(kafka):
    create_topics(kafka, {
        "orders": (6, {"retention.ms": "-1", "compression.type": "producer"}),
        "profiles": (3, {"cleanup.policy": "compact"}),
        "payments": (2, {}),
        "blobs": (1, {}),
        "trimmed": (1, {"retention.ms": "-1"}),
        "empty": (2, {"retention.bytes": "1073741824"}),
        "tagged": (1, {"message.timestamp.type": "LogAppendTime"}),
    })
    for n, codec in enumerate(CODECS):
        produce(kafka, "orders", [(f"customer-{i % 37}".encode(), f"order-{codec}-{i}-".encode() + os.urandom(60),
                                   [("codec", codec.encode()), ("seq", str(i).encode()), ("empty", None)])
                                  for i in range(n * 10_000, n * 10_000 + 1500)], compression=codec)
    # compacted: keys updated several times, some deleted (tombstones), one deleted and written again
    produce(kafka, "profiles", [(f"user-{i % 50}".encode(), f"v{i}".encode(), []) for i in range(400)])
    produce(kafka, "profiles", [(f"user-{i}".encode(), None, []) for i in range(0, 50, 7)])
    produce(kafka, "profiles", [(b"user-0", b"back", [("after", b"tombstone")])])
    # transactions: committed, aborted, committed
    tx = confluent_kafka.Producer({**conf(kafka), "transactional.id": "payments-tx"})
    tx.init_transactions(30)
    for outcome in ("committed-1", "aborted-1", "committed-2", "aborted-2", "committed-3"):
        tx.begin_transaction()
        for i in range(40):
            tx.produce("payments", key=f"pay-{i}".encode(), value=f"{outcome}-{i}".encode(), partition=i % 2)
        assert tx.flush(30) == 0  # the aborted records reach the log before the abort marker
        if outcome.startswith("aborted"):
            tx.abort_transaction(30)
        else:
            tx.commit_transaction(30)
    produce(kafka, "blobs", [(f"blob-{i}".encode(), os.urandom(NEAR_LIMIT - 200), [("n", str(i).encode())])
                             for i in range(BLOBS)])
    produce(kafka, "trimmed", [(None, f"t{i}".encode(), []) for i in range(120)], partition=0)
    kafka.admin().delete_records([confluent_kafka.TopicPartition("trimmed", 0, 50)],
                                 request_timeout=30)[confluent_kafka.TopicPartition("trimmed", 0, 50)].result(30)
    produce(kafka, "tagged", [(b"k", f"tag-{i}".encode(), []) for i in range(30)], partition=0)

    # consumer groups: lagging, caught up, partly committed, and one past an aborted transaction
    ends = end_offsets(kafka, "orders", 6)
    commit(kafka, "lagging", {("orders", p): ends[p] // 3 for p in range(6)})
    commit(kafka, "caught-up", {("orders", p): ends[p] for p in range(6)})
    commit(kafka, "partial", {("orders", 0): 5, ("orders", 1): ends[1] // 2})
    commit(kafka, "payer", {("payments", 0): 65, ("payments", 1): 21})  # inside and after aborted batches
    commit(kafka, "trimmer", {("trimmed", 0): 60})

    a = kafka.admin()
    for user, mechanism, password, iterations in (("alice", "SCRAM_SHA_512", ALICE_PW, 8192),
                                                  ("bob", "SCRAM_SHA_256", BOB_PW, 4096)):
        info = ck_admin.ScramCredentialInfo(ck_admin.ScramMechanism[mechanism], iterations)
        a.alter_user_scram_credentials([ck_admin.UserScramCredentialUpsertion(user, info, password.encode())],
                                       request_timeout=30)[user].result(30)
    bindings = [
        ck_admin.AclBinding(ck_admin.ResourceType.TOPIC, "orders", ck_admin.ResourcePatternType.LITERAL, "User:alice",
                            "*", ck_admin.AclOperation.READ, ck_admin.AclPermissionType.ALLOW),
        ck_admin.AclBinding(ck_admin.ResourceType.TOPIC, "orders", ck_admin.ResourcePatternType.LITERAL, "User:alice",
                            "*", ck_admin.AclOperation.DESCRIBE, ck_admin.AclPermissionType.ALLOW),
        ck_admin.AclBinding(ck_admin.ResourceType.GROUP, "alice-", ck_admin.ResourcePatternType.PREFIXED, "User:alice",
                            "*", ck_admin.AclOperation.READ, ck_admin.AclPermissionType.ALLOW),
        ck_admin.AclBinding(ck_admin.ResourceType.TOPIC, "pay", ck_admin.ResourcePatternType.PREFIXED, "User:bob",
                            "10.0.0.1", ck_admin.AclOperation.WRITE, ck_admin.AclPermissionType.DENY),
    ]
    for f in a.create_acls(bindings, request_timeout=30).values():
        f.result(30)
    wire.alter_client_quotas_any(kafka.bootstrap, QUOTAS, security=security(kafka))


QUOTAS = [
    {"entity": {"user": "alice"}, "values": {"producer_byte_rate": 1048576.0, "consumer_byte_rate": 2097152.0}},
    {"entity": {"user": None}, "values": {"request_percentage": 200.0}},
    {"entity": {"client-id": "reports"}, "values": {"consumer_byte_rate": 524288.0}},
    {"entity": {"user": "bob", "client-id": "batch"}, "values": {"producer_byte_rate": 65536.0}},
]


def security(kafka):
    return wire.security_from_client_config(conf(kafka))


def quotas_of(kafka):
    return sorted((bk.describe_quota_entity(q["entity"]), sorted(q["values"].items()))
                  for q in wire.describe_client_quotas_any(kafka.bootstrap, security=security(kafka)))


def end_offsets(kafka, topic, partitions):
    c = confluent_kafka.Consumer({**conf(kafka), "group.id": "offsets-probe"})
    try:
        return [c.get_watermark_offsets(confluent_kafka.TopicPartition(topic, p), timeout=10)[1]
                for p in range(partitions)]
    finally:
        c.close()


def commit(kafka, group, offsets):
    tps = [confluent_kafka.TopicPartition(t, p, o) for (t, p), o in offsets.items()]
    deadline = time.monotonic() + 60
    while True:  # a coordinator still loading refuses each partition while the call as a whole succeeds
        result = kafka.admin().alter_consumer_group_offsets(
            [confluent_kafka.ConsumerGroupTopicPartitions(group, tps)], request_timeout=30)[group].result(30)
        errors = [tp.error for tp in result.topic_partitions if tp.error is not None]
        if not errors:
            return
        assert time.monotonic() < deadline, errors
        time.sleep(0.5)


def committed(kafka, group):
    r = kafka.admin().list_consumer_group_offsets([confluent_kafka.ConsumerGroupTopicPartitions(group)],
                                                  request_timeout=30)[group].result(30)
    return {(tp.topic, tp.partition): tp.offset for tp in r.topic_partitions if tp.offset >= 0}


def read_all(kafka, topic, partitions, isolation="read_committed"):
    """``{partition: [(offset, key, value, headers, timestamp_type, timestamp)]}`` up to each partition's end."""
    c = confluent_kafka.Consumer({**conf(kafka), "group.id": f"reader-{uuid.uuid4().hex[:6]}",
                                  "enable.auto.commit": False, "isolation.level": isolation,
                                  "enable.partition.eof": True, "fetch.max.bytes": 16 << 20,
                                  "max.partition.fetch.bytes": 16 << 20})
    out = {p: [] for p in range(partitions)}
    try:
        c.assign([confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING)
                  for p in range(partitions)])
        pending, deadline = set(range(partitions)), time.monotonic() + 120
        while pending and time.monotonic() < deadline:
            for m in c.consume(1000, timeout=0.5):
                if m.error():
                    if m.error().code() == confluent_kafka.KafkaError._PARTITION_EOF:
                        pending.discard(m.partition())
                        continue
                    raise AssertionError(m.error())
                ts_type, ts = m.timestamp()
                out[m.partition()].append((m.offset(), m.key(), m.value(), tuple(m.headers() or ()), ts_type, ts))
        assert not pending, f"{topic}: no end of partition {pending}"
    finally:
        c.close()
    return out


def content(records, with_time=True):
    """Records without their offsets (which a restore does not keep)."""
    return [(k, v, h, ts if (with_time and tt == bk.TIMESTAMP_CREATE) else None) for _, k, v, h, tt, ts in records]


def record_at(records, offset):
    """The record a group committed at ``offset`` resumes at (the first at or after it), or None at the end."""
    return next((content([r])[0] for r in records if r[0] >= offset), None)


class Writer(threading.Thread):
    """Keeps producing to `orders` until stopped; remembers what was acknowledged."""

    def __init__(self, kafka):
        super().__init__(daemon=True)
        self.kafka, self.stop_event, self.acked, self.errors = kafka, threading.Event(), 0, []

    def run(self):
        p = confluent_kafka.Producer({**conf(self.kafka), "linger.ms": 2, "enable.idempotence": True})

        def done(err, _m):
            if err:
                self.errors.append(err)
            else:
                self.acked += 1
        i = 0
        while not self.stop_event.is_set():
            p.produce("orders", key=f"live-{i % 11}".encode(), value=f"live-{i}".encode(), on_delivery=done)
            i += 1
            p.poll(0)
            time.sleep(0.002)
        p.flush(30)


TOPICS = {"orders": 6, "profiles": 3, "payments": 2, "blobs": 1, "trimmed": 1, "empty": 2, "tagged": 1}


def snapshot(kafka):
    return {t: read_all(kafka, t, n) for t, n in TOPICS.items()}


def topic_configs(kafka, names):
    resources = [ck_admin.ConfigResource(ck_admin.ResourceType.TOPIC, n) for n in names]
    out = {}
    for r, f in kafka.admin().describe_configs(resources, request_timeout=30).items():
        out[r.name] = {k: e.value for k, e in f.result(30).items()
                       if e.source == ck_admin.ConfigSource.DYNAMIC_TOPIC_CONFIG.value}
    return out


def acls(kafka):
    f = ck_admin.AclBindingFilter(ck_admin.ResourceType.ANY, None, ck_admin.ResourcePatternType.ANY, None, None,
                                  ck_admin.AclOperation.ANY, ck_admin.AclPermissionType.ANY)
    return sorted((b.restype.name, b.name, b.resource_pattern_type.name, b.principal, b.host, b.operation.name,
                   b.permission_type.name) for b in kafka.admin().describe_acls(f, request_timeout=30).result(30))


def users(kafka):
    d = kafka.admin().describe_user_scram_credentials(request_timeout=30).result(30)
    return {u: sorted((i.mechanism.name, i.iterations) for i in v.scram_credential_infos) for u, v in d.items()}


@pytest.fixture(scope="module")
def kafka(tmp_path_factory):
    node = Kafka(tmp_path_factory.mktemp("kafka-backup"))
    try:
        node.boot()
        yield node
    finally:
        node.stop()


def chunk_count(root):
    return sum(1 for _ in Path(root).glob("*/data/*/*/*.rec.*"))


def workers_alive(parent):
    """Worker processes of the backup or restore ``parent`` still running (a killed command must leave none):
    a worker's command line names its parent's pid."""
    out = subprocess.run(["pgrep", "-f", rf"backup_parallel\.child_main\(\) {parent} "], capture_output=True,
                         text=True).stdout
    return out.split()


# --------------------------------------------------------------------------------------------------
# client quotas through wire.py (run first: they expect a cluster without quotas)
# --------------------------------------------------------------------------------------------------

ALICE = {"user": "alice"}
APP = {"client-id": "app-1"}
ALICE_APP = {"user": "alice", "client-id": "app-1"}
DEFAULT_USER = {"user": None}
OFFICE = {"ip": "10.0.0.1"}


def described_eventually(bootstrap: str, expect: list, sec, timeout: float = 15) -> list:
    deadline = time.monotonic() + timeout
    while True:
        got = wire.describe_client_quotas_any(bootstrap, timeout=5, security=sec)
        if got == expect or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def test_quotas_are_altered_described_and_removed(kafka):
    """wire.py's DescribeClientQuotas and AlterClientQuotas (v0) on the fresh cluster, before the backup test."""
    sec = security(kafka)
    # a dead server first: the *_any helpers go on to the next one
    bootstrap = f"127.0.0.1:{free_port()},{kafka.bootstrap}"
    assert wire.describe_client_quotas_any(bootstrap, security=sec) == []

    entries = [
        {"entity": ALICE, "values": {"producer_byte_rate": 1048576, "consumer_byte_rate": 2097152.0}},
        {"entity": APP, "values": {"request_percentage": 50.5}},
        {"entity": ALICE_APP, "values": {"producer_byte_rate": 524288}},
        {"entity": DEFAULT_USER, "values": {"producer_byte_rate": 1024, "consumer_byte_rate": 4096}},
        {"entity": OFFICE, "values": {"connection_creation_rate": 5}},
    ]
    altered = [DEFAULT_USER, ALICE, ALICE_APP, APP, OFFICE]  # sorted as described, whatever the broker's order
    # validate_only checks and changes nothing
    assert wire.alter_client_quotas_any(bootstrap, entries, security=sec, validate_only=True) == altered
    time.sleep(0.5)
    assert wire.describe_client_quotas("127.0.0.1", kafka.port, security=sec) == []

    assert wire.alter_client_quotas_any(bootstrap, entries, security=sec) == altered
    expect = [
        {"entity": DEFAULT_USER, "values": {"consumer_byte_rate": 4096.0, "producer_byte_rate": 1024.0}},
        {"entity": ALICE, "values": {"consumer_byte_rate": 2097152.0, "producer_byte_rate": 1048576.0}},
        {"entity": ALICE_APP, "values": {"producer_byte_rate": 524288.0}},
        {"entity": APP, "values": {"request_percentage": 50.5}},
        {"entity": OFFICE, "values": {"connection_creation_rate": 5.0}},
    ]
    assert described_eventually(bootstrap, expect, sec) == expect
    assert wire.describe_client_quotas("127.0.0.1", kafka.port, security=sec) == expect  # the plain call, same answer

    # remove one value of alice and the (user, client-id) pair's only value, which removes that entity
    wire.alter_client_quotas("127.0.0.1", kafka.port, security=sec, entries=[
        {"entity": ALICE, "remove": ["consumer_byte_rate"]},
        {"entity": ALICE_APP, "values": {}, "remove": ["producer_byte_rate"]},
    ])
    expect_after = [
        {"entity": DEFAULT_USER, "values": {"consumer_byte_rate": 4096.0, "producer_byte_rate": 1024.0}},
        {"entity": ALICE, "values": {"producer_byte_rate": 1048576.0}},
        {"entity": APP, "values": {"request_percentage": 50.5}},
        {"entity": OFFICE, "values": {"connection_creation_rate": 5.0}},
    ]
    assert described_eventually(bootstrap, expect_after, sec) == expect_after

    # every value removed: no quota is left (the backup test after this one must not be throttled by the
    # default user's 1 KiB/s)
    wire.alter_client_quotas_any(bootstrap, [{"entity": q["entity"], "remove": sorted(q["values"])}
                                             for q in expect_after], security=sec)
    assert described_eventually(bootstrap, [], sec) == []


def test_the_broker_refusal_names_the_entity(kafka):
    bad = [{"entity": {"user": "bob"}, "values": {"bogus_rate": 1}},
           {"entity": {"user": "carol", "ip": "10.0.0.2"}, "values": {"connection_creation_rate": 1}}]
    with pytest.raises(wire.QuotaError) as info:
        wire.alter_client_quotas_any(kafka.bootstrap, bad, security=security(kafka))
    text = str(info.value)
    assert "user=bob: INVALID_REQUEST: Invalid configuration key bogus_rate" in text
    assert "user=carol, ip=10.0.0.2: INVALID_REQUEST:" in text
    assert info.value.code == 42


def test_backup_under_writes_wipe_restore_loses_nothing(kafka, tmp_path):
    fill_source(kafka)
    root = tmp_path / "backups"
    cfg = kafka.command_config

    # -- a full backup while a producer keeps writing
    writer = Writer(kafka)
    writer.start()
    time.sleep(1.0)
    out = cli("create", "--dir", root, "--bootstrap-server", kafka.bootstrap, "--command-config", cfg)
    time.sleep(0.5)
    writer.stop_event.set()
    writer.join(60)
    assert not writer.errors and writer.acked > 100, (writer.acked, writer.errors)
    full = bk.latest(str(root))
    assert full["kind"] == "full" and "complete" in out, out
    # the partitions were shared among one process per core (each partition written by one of them)
    assert full["totals"]["processes"] == min(backup_parallel.cores(), len(full["targets"])), full["totals"]
    orders_end = {int(k.rpartition("/")[2]): t["end"] for k, t in full["targets"].items() if k.startswith("orders/")}
    after = end_offsets(kafka, "orders", 6)
    assert sum(after) > sum(orders_end.values()), "the writer wrote nothing after the backup point"
    cli("verify", "--dir", root, "--bootstrap-server", kafka.bootstrap, "--command-config", cfg)

    # -- a backup killed mid-run, then resumed: the same records and digests as the source holds
    killed_root = tmp_path / "killed"
    proc = subprocess.Popen([str(VENV_BIN / "kafka-metal"), "backup", "create", "--dir", str(killed_root),
                             "--bootstrap-server", kafka.bootstrap, "--command-config", str(cfg), "--topic", "orders",
                             "--topic", "blobs", "--chunk-records", "200"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while chunk_count(killed_root) < 4 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    if backup_parallel.cores() > 1:
        assert workers_alive(proc.pid), "the backup runs no worker process that could outlive it"
    os.kill(proc.pid, signal.SIGKILL)  # the command only: its worker processes must die with it
    proc.wait()
    deadline = time.monotonic() + 10
    while workers_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not workers_alive(proc.pid), "worker processes outlived the killed backup"
    interrupted = bk.list_backups(str(killed_root))
    assert len(interrupted) == 1 and interrupted[0]["status"] == "running", "the kill came too late to test a resume"
    out = cli("create", "--dir", killed_root, "--bootstrap-server", kafka.bootstrap, "--command-config", cfg,
              "--topic", "orders", "--topic", "blobs", "--chunk-records", "200")
    assert "resuming an unfinished backup" in out
    resumed = bk.list_backups(str(killed_root))
    assert len(resumed) == 1 and resumed[0]["status"] == "complete"
    # every chunk re-read, and each partition's digest recomputed from the source over the same offsets
    _, problems, notes = backup_kafka.verify(str(killed_root), conf=conf(kafka))
    assert not problems and not notes, (problems, notes)
    # orders and blobs have no transactions: every offset of the ranges is one stored record, once
    assert resumed[0]["totals"]["records"] == sum(t["end"] - t["start"] for t in resumed[0]["targets"].values())

    # -- an incremental backup stores only what is new
    produce(kafka, "orders", [(b"late", f"late-{i}".encode(), [("late", b"1")]) for i in range(300)])
    commit(kafka, "lagging", {("orders", p): orders_end[p] for p in range(6)})  # the group moved on
    cli("create", "--dir", root, "--bootstrap-server", kafka.bootstrap, "--command-config", cfg, "--incremental")
    inc = bk.latest(str(root))
    assert inc["kind"] == "incremental" and inc["parent"] == full["id"]
    new_orders = sum(end_offsets(kafka, "orders", 6)) - sum(orders_end.values())
    assert inc["totals"]["records"] == new_orders, (inc["totals"], new_orders)
    listing = cli("list", "--dir", root)
    assert full["id"] in listing and inc["id"] in listing
    _, problems, notes = backup_kafka.verify(str(root), conf=conf(kafka))
    assert not problems and not notes, (problems, notes)

    # -- what the source holds, read before the wipe
    before = snapshot(kafka)
    groups_before = {g: committed(kafka, g) for g in ("lagging", "caught-up", "partial", "payer", "trimmer")}
    resume_at = {g: {tp: record_at(before[tp[0]][tp[1]], off) for tp, off in offs.items()}
                 for g, offs in groups_before.items()}
    configs_before, acls_before, users_before = topic_configs(kafka, TOPICS), acls(kafka), users(kafka)
    quotas_before = quotas_of(kafka)
    source_id = kafka.cluster_id()

    kafka.wipe()
    assert kafka.cluster_id() != source_id
    assert "orders" not in kafka.admin().list_topics(timeout=10).topics

    # -- refused on a mismatched topic, before any change
    create_topics(kafka, {"trimmed": (2, {})})
    passwords = tmp_path / "passwords.yml"
    passwords.write_text(f"admin: {ADMIN_PW}\nalice: {ALICE_PW}\nbob: {BOB_PW}\n")
    out = cli("restore", "--dir", root, "--bootstrap-server", kafka.bootstrap, "--command-config", cfg,
              "--passwords", passwords, expect=2)
    assert "trimmed: exists with 2 partitions, the backup has 1" in out, out
    assert set(kafka.admin().list_topics(timeout=10).topics) - {"__consumer_offsets"} == {"trimmed"}
    assert set(users(kafka)) == {"admin"} and acls(kafka) == []
    with pytest.raises(bk.BackupError, match=r"no password for the SCRAM user\(s\) admin, alice, bob"):
        backup_kafka.restore(conf(kafka), str(root))
    kafka.admin().delete_topics(["trimmed"], operation_timeout=30)["trimmed"].result(30)
    deadline = time.monotonic() + 30
    while "trimmed" in kafka.admin().list_topics(timeout=10).topics and time.monotonic() < deadline:
        time.sleep(0.2)

    # -- the restore, killed while it writes records, then run again (passwords from standard input, as
    # from `ansible-vault view`). It is killed as soon as one partition is done: each process writes its smallest
    # partitions first, and the 32 MB of `blobs` are more than all its producers can have in flight, so records
    # are left for the second run.
    proc = subprocess.Popen([str(VENV_BIN / "kafka-metal"), "backup", "restore", "--dir", str(root),
                             "--bootstrap-server", kafka.bootstrap, "--command-config", str(cfg),
                             "--passwords", str(passwords)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    state_file = root / inc["id"] / "restores" / f"{kafka.cluster_id()}.json"
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:  # killed once a partition with records is written
        try:
            parts = json.loads(state_file.read_text())["partitions"].values()
        except (OSError, ValueError):
            parts = []
        if any(p["done"] and p["total"] for p in parts):
            os.kill(proc.pid, signal.SIGKILL)  # the command only: its worker processes must die with it
            break
        time.sleep(0.005)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the restore ended before it could be killed"
    deadline = time.monotonic() + 10
    while workers_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not workers_alive(proc.pid), "worker processes outlived the killed restore"
    parts = json.loads(state_file.read_text())["partitions"].values()
    assert not all(p["done"] for p in parts), "every partition was written before the kill"
    # The killed producers' last requests may still land after the kill; the run below, started at once, waits
    # by itself until the partitions' ends are still, and checks at its end that no partition holds more
    # records than the backup.
    total = full["totals"]["records"] + inc["totals"]["records"]
    summary = cli("restore", "--dir", root, "--bootstrap-server", kafka.bootstrap, "--command-config", cfg,
                  "--passwords", "-", "--json", stdin=passwords.read_text())
    assert 0 < summary["records_written"] < total, (summary["records_written"], total)

    after_restore = snapshot(kafka)
    for topic, parts in before.items():
        for p, records in parts.items():
            restored = after_restore[topic][p]
            with_time = topic != "tagged"  # LogAppendTime: the broker stamps the time again
            assert content(restored, with_time) == content(records, with_time), f"{topic}/{p} differs"
            assert [r[0] for r in restored] == list(range(len(records))), f"{topic}/{p}: offsets not contiguous"
    # the digests of the chain equal the restored partitions' (and `verify` says so against the live cluster)
    for key in inc["targets"]:
        topic, p = key.rsplit("/", 1)
        m = bk.read_manifest(str(root / inc["id"]), topic, p)
        records = after_restore[topic][int(p)]
        assert bk.chain_all(bk.ZERO_DIGEST, [bk.Record(r[0], r[5], r[4], r[1], r[2], list(r[3]))
                                             for r in records]) == m["digest"], key
    cli("verify", "--dir", root, "--bootstrap-server", kafka.bootstrap, "--command-config", cfg)
    # nothing duplicated; compacted topic holds the same latest value per key; no aborted record
    values = [r[2] for p in after_restore["orders"].values() for r in p]
    assert len(values) == len(set(values))
    latest = {}
    for p in after_restore["profiles"].values():
        for _, k, v, *_ in p:
            latest[k] = v
    assert latest[b"user-0"] == b"back" and latest[b"user-7"] is None and latest[b"user-1"] == b"v351"
    uncommitted = read_all(kafka, "payments", 2, isolation="read_uncommitted")
    assert not any(b"aborted" in r[2] for p in uncommitted.values() for r in p)
    assert sum(len(p) for p in uncommitted.values()) == 120
    blobs = after_restore["blobs"][0]
    assert len(blobs) == BLOBS and all(len(r[2]) == NEAR_LIMIT - 200 for r in blobs)
    # every group resumes at the same record
    for group, offs in groups_before.items():
        now = committed(kafka, group)
        assert set(now) == set(offs), group
        for tp, off in now.items():
            assert record_at(after_restore[tp[0]][tp[1]], off) == resume_at[group][tp], (group, tp)
    # users log in with their passwords, and what they may do is as before
    assert users(kafka) == users_before
    for user, pw, mech in (("alice", ALICE_PW, "SCRAM-SHA-512"), ("bob", BOB_PW, "SCRAM-SHA-256")):
        c = ck_admin.AdminClient(conf(kafka, user, pw, mech))
        c.list_topics(timeout=15)
    alice = confluent_kafka.Consumer({**conf(kafka, "alice", ALICE_PW), "group.id": "alice-reader",
                                      "auto.offset.reset": "earliest"})
    alice.subscribe(["orders"])
    got = None
    deadline = time.monotonic() + 60
    while got is None and time.monotonic() < deadline:
        m = alice.poll(1)
        if m is not None and not m.error():
            got = m
    alice.close()
    assert got is not None, "alice cannot read orders after the restore"
    assert acls(kafka) == acls_before
    assert topic_configs(kafka, TOPICS) == configs_before
    assert quotas_of(kafka) == quotas_before

    # -- a second run of the restore changes nothing
    ends = {t: end_offsets(kafka, t, n) for t, n in TOPICS.items()}
    commit(kafka, "caught-up", {("orders", 0): 1})  # consumers moved on since: not rewound
    again = backup_kafka.restore(conf(kafka), str(root), passwords={"admin": ADMIN_PW, "alice": ALICE_PW,
                                                                    "bob": BOB_PW})
    assert again["records_written"] == 0
    assert {t: end_offsets(kafka, t, n) for t, n in TOPICS.items()} == ends
    assert committed(kafka, "caught-up")[("orders", 0)] == 1


FORMAT1 = Path(__file__).resolve().parents[1] / "fixtures" / "backup-format1"


def stored_records(root, chain, topic, partition):
    """The records a chain holds for a partition, as :func:`read_all` gives them (offsets: the source's)."""
    out = []
    for bdir, m in bk.partition_manifests(str(root), chain, topic, partition):
        for _, records in bk.iter_chunks(bdir, m):
            out += [(r.offset, r.key, r.value, tuple(r.headers), r.timestamp_type, r.timestamp) for r in records]
    return out


def test_a_backup_written_before_zstd_chunks_verifies_and_restores(kafka, tmp_path):
    """Backups of format 1 (gzip chunks, written by the previous version: a full one and an incremental one,
    with create-time and log-append-time topics, null keys and values, headers, an aborted transaction and a
    group's offsets) verify and restore with the same digests, and the group resumes at the same records."""
    root = tmp_path / "format1"
    shutil.copytree(FORMAT1, root)
    out = cli("verify", "--dir", root)
    assert "problem" not in out.lower(), out
    info = bk.resolve(str(root))
    chain = bk.chain_of(str(root), info)
    assert [b["format"] for b in chain] == [1, 1] and chain[0]["kind"] == "full"
    assert not any(p.suffix == ".zst" for p in root.rglob("*.rec.*")), "the fixture holds format-1 chunks only"
    topics = bk.read_json(str(root / info["id"] / "metadata" / "topics.json"))
    summary = cli("restore", "--dir", root, "--bootstrap-server", kafka.bootstrap, "--command-config",
                  kafka.command_config, "--json")
    assert summary["records_written"] == sum(t["records"] for t in [chain[0]["totals"], chain[1]["totals"]])
    for topic, d in topics.items():
        restored = read_all(kafka, topic, d["partitions"])
        for p in range(d["partitions"]):
            want = stored_records(root, chain, topic, p)
            with_time = topic != "legacy-stamped"  # LogAppendTime: the broker stamps the time again
            assert content(restored[p], with_time) == content(want, with_time), f"{topic}/{p} differs"
    tx = read_all(kafka, "legacy-tx", 1, isolation="read_uncommitted")[0]
    assert len(tx) == 30 and not any(r[2].startswith(b"a1-") for r in tx), "aborted records restored"
    _, problems, notes = backup_kafka.verify(str(root), conf=conf(kafka))
    assert not problems and not notes, (problems, notes)
    groups = bk.read_json(str(root / info["id"] / "metadata" / "groups.json"))
    now = committed(kafka, "legacy-group")
    for topic, parts in groups["legacy-group"]["offsets"].items():
        restored = read_all(kafka, topic, topics[topic]["partitions"])
        for p, (offset, _meta) in parts.items():
            source = stored_records(root, chain, topic, int(p))
            assert record_at(restored[int(p)], now[(topic, int(p))]) == record_at(source, offset), (topic, p)
