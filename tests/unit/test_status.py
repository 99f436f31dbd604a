"""`kafka-metal status` on data (module_utils/status.py): the rules and their levels, the exit codes, the
renderings (text, JSON, Prometheus text format), the metric names alert rules rely on, the HTTP endpoint and
that no secret leaves in any output. No cluster here: tests/integration/test_status_local.py reads a real one."""

from __future__ import annotations

import copy
import json
import re
import threading
import urllib.request

import pytest
from ansible_collections.metal.kafka.plugins.module_utils import lag, status, status_kafka
from kafka_metal import main as cli_main
from kafka_metal import status as status_cli

NOW = 1_800_000_000.0
DAY = 86400.0
CONTRACT = {
    "kafka_metal_status_up", "kafka_metal_status_duration_seconds", "kafka_metal_status_level", "kafka_metal_brokers",
    "kafka_metal_status_age_seconds",
    "kafka_metal_broker_fenced", "kafka_metal_partitions", "kafka_metal_partitions_total",
    "kafka_metal_quorum_leader_id", "kafka_metal_quorum_voter_lag_records", "kafka_metal_reassignments_in_progress",
    "kafka_metal_replication_throttle_rate_bytes", "kafka_metal_throttled_replicas_topics",
    "kafka_metal_replication_throttles_set", "kafka_metal_log_dir_total_bytes", "kafka_metal_log_dir_usable_bytes",
    "kafka_metal_log_dir_offline", "kafka_metal_certificate_not_after_timestamp_seconds",
    "kafka_metal_consumergroup_lag_records", "kafka_metal_consumergroup_lag_seconds",
    "kafka_metal_consumergroup_verdict", "kafka_metal_consumergroup_members", "kafka_metal_consumergroups_total",
    "kafka_metal_consumergroup_lag_seconds_threshold", "kafka_metal_consumergroup_lag_records_threshold",
}


def voter(node, leo, caught=NOW * 1000):
    return {"id": node, "log_end_offset": leo, "last_fetch_timestamp": caught, "last_caught_up_timestamp": caught}


def part(topic, partition, replicas, isr, leader=None, min_isr=2):
    return {"topic": topic, "partition": partition, "replicas": replicas, "isr": isr,
            "leader": isr[0] if leader is None and isr else (-1 if leader is None else leader), "min_isr": min_isr}


def group(name, verdict="OK", lag_records=0, seconds=0.0, members=1):
    return {"group": name, "verdict": verdict, "lag": lag_records, "seconds": seconds, "members": members,
            "partitions": []}


def healthy():
    return {
        "bootstrap": "k1:9093", "read_at": NOW, "duration_seconds": 1.25, "error": None, "problems": {},
        "cluster_id": "cid", "controller_id": 1, "mode": "kraft",
        "quorum": {"leader_id": 1, "leader_epoch": 4, "high_watermark": 500,
                   "voters": [voter(1, 500), voter(2, 500), voter(3, 499)], "observers": [voter(4, 500)]},
        "brokers_source": "DescribeCluster v2", "expected_brokers": [4, 5, 6],
        "brokers": [{"id": b, "host": f"k{b}", "port": 9093, "rack": None, "fenced": False} for b in (4, 5, 6)],
        "partitions": [part("orders", p, [4, 5, 6], [4, 5, 6]) for p in range(3)],
        "reassignments": [], "throttles": {"brokers": {}, "topics": {}},
        "certificates": [{"endpoint": "k4:9093", "kind": "node", "not_after": NOW + 200 * DAY, "subject": "CN=k4",
                          "error": None},
                         {"endpoint": "/etc/kafka/ca.pem", "kind": "ca", "not_after": NOW + 3000 * DAY,
                          "subject": "CN=ca", "error": None}],
        "log_dirs": [{"broker": b, "path": "/var/lib/kafka/data", "total_bytes": 1000, "usable_bytes": 600,
                      "error": None} for b in (4, 5, 6)],
        "groups": [group("billing"), group("audit", members=0)],
    }


def judged(snap, **limits):
    found = status.findings(snap, status.Limits(**limits) if limits else None)
    return found, status.worst(found)


def messages(found, level):
    return [f"{f.area}: {f.message}" for f in found if f.level == level]


def changed(**updates):
    snap = healthy()
    for key, value in updates.items():
        snap[key] = value
    return snap


# --- rules ------------------------------------------------------------------------------------------------------


def test_a_healthy_cluster_is_ok_in_every_area():
    found, level = judged(healthy())
    assert level == status.OK and status.level_code(level) == 0
    assert {f.area for f in found} == set(status.AREAS)
    assert all(f.level == status.OK for f in found)
    text = {f.area: f.message for f in found}
    assert text["quorum"] == "leader 1 (epoch 4), voters 1 (lag 0), 2 (lag 0), 3 (lag 1), observers [4]"
    assert text["partitions"] == "3 partitions: each has a leader and every replica in sync"
    assert text["log_dirs"] == "3 log directories online; the fullest: broker 4 /var/lib/kafka/data at 40%"


def test_an_unreadable_cluster_is_unknown_and_judges_nothing_else():
    found, level = judged({"bootstrap": "k1:9093", "error": "no bootstrap server answered: k1:9093: refused"})
    assert level == status.UNKNOWN and status.level_code(level) == 3
    assert messages(found, status.UNKNOWN) == [
        "cluster: the cluster could not be read: no bootstrap server answered: k1:9093: refused"]


def test_zookeeper_mode_has_no_quorum_and_that_is_not_an_error():
    found, level = judged(changed(mode="zookeeper", quorum=None))
    assert level == status.OK
    assert "quorum: ZooKeeper mode: there is no KRaft quorum to check" in messages(found, status.OK)


def test_a_quorum_without_leader_is_critical():
    snap = healthy()
    snap["quorum"]["leader_id"] = -1
    found, level = judged(snap)
    assert level == status.CRITICAL
    assert messages(found, status.CRITICAL) == [
        "quorum: the KRaft quorum has no leader (leader id -1, 3 voters): no active controller, so no metadata "
        "change is possible; check the controllers' logs and network"]


def test_one_lagging_voter_is_a_warning_and_a_lost_majority_is_critical():
    snap = healthy()
    snap["quorum"]["voters"] = [voter(1, 2000), voter(2, 2000), voter(3, 100)]
    found, level = judged(snap)
    assert level == status.WARNING
    assert messages(found, status.WARNING) == [
        "quorum: KRaft voters behind the leader: voter 3 (lag 1900 offsets, last caught up 0 ms ago); check their "
        "disks and network (they do not count for the majority now)"]
    snap["quorum"]["voters"][1] = voter(2, 2000, caught=(NOW - 120) * 1000)
    found, level = judged(snap)
    assert level == status.CRITICAL
    assert messages(found, status.CRITICAL)[0].startswith(
        "quorum: only 1 of 3 KRaft voters are caught up [1], a majority needs 2")
    assert "voter 2 (lag 0 offsets, last caught up 120000 ms ago)" in messages(found, status.CRITICAL)[0]


def test_a_fenced_broker_and_a_missing_one_are_critical():
    snap = healthy()
    snap["brokers"][1]["fenced"] = True
    snap["brokers"].pop(2)
    found, level = judged(snap)
    assert level == status.CRITICAL
    assert messages(found, status.CRITICAL) == [
        "brokers: broker 5 (k5:9093) is fenced: it is registered but lost its session with the controller and "
        "leads no partition; check its log, disks and network",
        "brokers: 1 broker expected but not registered: [6]; start them or check why they cannot reach the "
        "controllers"]


def test_brokers_from_the_metadata_say_that_fencing_is_not_known():
    found, _ = judged(changed(brokers_source="metadata", expected_brokers=None))
    assert any("report no fenced brokers before Kafka 4.0" in m for m in messages(found, status.OK))


@pytest.mark.parametrize("partitions, level, expected", [
    ([part("orders", 0, [4, 5, 6], [], leader=-1)], status.CRITICAL,
     "partitions: 1 partition offline (no leader: nothing can be read or written): orders-0 (replicas [4, 5, 6])"),
    ([part("orders", 0, [4, 5, 6], [4])], status.CRITICAL,
     "partitions: 1 partition under min.insync.replicas (writes with acks=all fail): orders-0 (in sync [4], "
     "min.insync.replicas 2)"),
    ([part("single", 0, [4], [4])], status.CRITICAL,
     "partitions: 1 partition under min.insync.replicas (writes with acks=all fail): single-0 (in sync [4], "
     "min.insync.replicas 2, only 1 replica: raise the replication factor or lower min.insync.replicas)"),
    ([part("orders", 0, [4, 5, 6], [4, 5])], status.WARNING,
     "partitions: 1 partition under-replicated (a replica out of sync): orders-0 (in sync [4, 5] of [4, 5, 6])"),
])
def test_partition_problems_name_the_partition(partitions, level, expected):
    found, worst = judged(changed(partitions=partitions))
    assert worst == level
    assert messages(found, level) == [expected]


def test_each_partition_counts_once_in_its_worst_state_and_long_lists_are_cut():
    parts = [part("t", p, [4, 5, 6], [], leader=-1) for p in range(12)] + [part("t", 12, [4, 5, 6], [4])]
    parts += [part("t", 13, [4, 5, 6], [4, 5]), part("t", 14, [4, 5], [4, 5], min_isr=None)]
    kinds = status.classify_partitions(parts)
    assert {k: len(v) for k, v in kinds.items()} == {"offline": 12, "under_min_isr": 1, "under_replicated": 1}
    found, _ = judged(changed(partitions=parts))
    assert messages(found, status.CRITICAL)[0].endswith("t-9 (replicas [4, 5, 6]) and 2 more")


def test_reassignments_and_throttles_are_warnings():
    snap = changed(reassignments=[{"topic": "orders", "partition": 1, "replicas": [4, 5, 6, 7], "adding": [7],
                                   "removing": [4]}],
                   throttles={"brokers": {"4": {"leader.replication.throttled.rate": "10485760"}},
                              "topics": {"orders": {"leader.replication.throttled.replicas": "1:4"}}})
    found, level = judged(snap)
    assert level == status.WARNING
    assert messages(found, status.WARNING) == [
        "reassignments: 1 partition being reassigned: orders-1 (adding [7], removing [4]); a restart or another move "
        "now makes it longer",
        "throttles: 2 replication throttles set: broker 4 leader.replication.throttled.rate=10485760; topic orders "
        "leader.replication.throttled.replicas=1:4; remove them once no move is under way (a forgotten throttle "
        "slows every later catch-up)"]


@pytest.mark.parametrize("days, error, level, text", [
    (-2, None, status.CRITICAL, "the broker certificate of k4:9093 (CN=k4) expired 2.0 days ago: renew it now"),
    (5, None, status.CRITICAL, "the broker certificate of k4:9093 (CN=k4) expires in 5.0 days: renew it now"),
    (20, None, status.WARNING, "the broker certificate of k4:9093 (CN=k4) expires in 20.0 days: renew it soon"),
    (200, "certificate verify failed: unable to get local issuer certificate", status.CRITICAL,
     "the broker certificate of k4:9093 (CN=k4) does not verify: certificate verify failed: unable to get local "
     "issuer certificate"),
])
def test_certificates_near_expiry_or_untrusted(days, error, level, text):
    snap = healthy()
    snap["certificates"][0].update(not_after=NOW + days * DAY, error=error)
    found, worst = judged(snap)
    assert worst == level
    assert messages(found, level) == [f"certificates: {text}"]


def test_certificate_limits_are_options_and_a_plain_connection_has_none():
    snap = healthy()
    snap["certificates"][0]["not_after"] = NOW + 20 * DAY
    assert judged(snap, cert_warning_days=10, cert_critical_days=3)[1] == status.OK
    snap = changed(certificates=None, quorum=None, mode="zookeeper")
    found, level = judged(snap)
    assert level == status.OK
    m = parse_prometheus(status.render_prometheus(snap, found))
    assert set(m) == CONTRACT  # every family is there, empty when nothing is known
    assert m["kafka_metal_certificate_not_after_timestamp_seconds"] == {} and m["kafka_metal_quorum_leader_id"] == {}
    assert "certificates: the connection is not TLS: no certificate to check" in messages(found, status.OK)


@pytest.mark.parametrize("usable, error, level, text", [
    (140, None, status.WARNING, "broker 4 /var/lib/kafka/data is 86% full (0.0 GiB free of 0.0 GiB): free space or "
                                "move replicas away soon"),
    (40, None, status.CRITICAL, "broker 4 /var/lib/kafka/data is 96% full (0.0 GiB free of 0.0 GiB): free space "
                                "or move replicas away now"),
    (-1, "KAFKA_STORAGE_ERROR", status.CRITICAL, "broker 4 /var/lib/kafka/data is offline (KAFKA_STORAGE_ERROR): its "
                                                 "replicas are unavailable on this broker; replace the disk and "
                                                 "restart it"),
])
def test_log_directories_filling_up_or_offline(usable, error, level, text):
    snap = healthy()
    snap["log_dirs"][0].update(usable_bytes=usable, error=error, total_bytes=-1 if error else 1000)
    found, worst = judged(snap)
    assert worst == level
    assert messages(found, level) == [f"log_dirs: {text}"]


def test_disk_limits_are_options():
    snap = healthy()
    snap["log_dirs"][0]["usable_bytes"] = 140
    assert judged(snap, disk_warning=0.9, disk_critical=0.97)[1] == status.OK


def test_a_group_behind_is_a_warning_never_critical():
    snap = changed(groups=[group("billing", "stopped", 120, 42.5, 0), group("audit", "lagging", 9, 3.0),
                           group("idle")])
    found, level = judged(snap)
    assert level == status.WARNING
    assert messages(found, status.WARNING) == ["groups: group billing is stopped: lag 120 records, 42.5 s, 0 members",
                                               "groups: group audit is lagging: lag 9 records, 3.0 s, 1 member"]


def test_a_group_past_the_lag_thresholds_is_a_warning_and_the_thresholds_are_exported():
    snap = healthy()
    snap["groups"] = [group("slow-but-steady", "OK", 10, 45.0, 3), group("fresh", "OK", 5, 2.0, 1)]
    found, level = judged(snap, lag_seconds=30.0, lag_records=1_000)
    assert level == status.WARNING
    assert messages(found, status.WARNING) == [
        "groups: group slow-but-steady is OK: lag 10 records, 45.0 s (over the 30 s threshold), 3 members"]
    found, level = judged(snap, lag_seconds=300.0, lag_records=8)
    assert messages(found, status.WARNING) == [
        "groups: group slow-but-steady is OK: lag 10 records, 45.0 s (over the 8 records threshold), 3 members"]
    m = parse_prometheus(status.render_prometheus(snap, found, status.Limits(lag_seconds=30.0, lag_records=8)))
    assert m["kafka_metal_consumergroup_lag_seconds_threshold"] == {"": 30.0}
    assert m["kafka_metal_consumergroup_lag_records_threshold"] == {"": 8.0}


def test_skipped_groups_are_said_and_parts_not_read_are_warnings():
    found, level = judged(changed(groups=None, groups_skipped=True,
                                  problems={"log_dirs": ["DescribeLogDirs: no answer from broker(s) [6]"]}))
    assert level == status.WARNING
    assert "groups: not read (--no-groups)" in messages(found, status.OK)
    assert messages(found, status.WARNING) == ["log_dirs: could not read: DescribeLogDirs: no answer from broker(s) "
                                               "[6]"]


def test_the_worst_level_wins():
    f = status.Finding
    assert status.worst([]) == status.OK
    assert status.worst([f("a", status.WARNING, ""), f("b", status.CRITICAL, ""), f("c", status.OK, "")]) == \
        status.CRITICAL
    assert [status.level_code(x) for x in status.LEVELS] == [0, 1, 2, 3]


def test_voter_lag_is_never_negative_and_unknown_without_offsets():
    q = healthy()["quorum"]
    assert status.voter_lag(q, voter(9, 600)) == 0
    assert status.voter_lag(q, voter(9, -1)) is None
    assert status.voter_lag({**q, "leader_id": -1}, voter(2, 10)) is None


# --- renderings -------------------------------------------------------------------------------------------------

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*)\})? '
                    r'(-?[0-9.e+]+|NaN|[+-]Inf)$')


def parse_prometheus(text):
    """{name: {labels text: value}}; fails on anything the text exposition format (0.0.4) does not allow: a
    sample without its HELP and TYPE first, a family split in two, a sample twice."""
    assert text.endswith("\n")
    families, typed, helped, current = {}, set(), set(), None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert name not in helped, f"HELP twice for {name}"
            helped.add(name)
            current = name
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert kind == "gauge" and name == current and name not in typed, line
            typed.add(name)
            families[name] = {}
        else:
            m = SAMPLE.match(line)
            assert m, f"not a sample line: {line!r}"
            name, labels, value = m.group(1), m.group(3) or "", m.group(4)
            assert name == current and name in typed, f"{name} without its HELP/TYPE right before"
            assert labels not in families[name], f"{name}{{{labels}}} twice"
            families[name][labels] = float(value)
    return families


def test_the_prometheus_text_has_every_contract_metric_and_parses():
    snap = healthy()
    snap["throttles"] = {"brokers": {"4": {"leader.replication.throttled.rate": "1000",
                                           "follower.replication.throttled.rate": "2000"}},
                         "topics": {"orders": {"leader.replication.throttled.replicas": "*",
                                               "follower.replication.throttled.replicas": "*"}}}
    snap["groups"] = [group("billing", "stalled", 7, 12.5, 2), group("idle")]
    found = status.findings(snap)
    m = parse_prometheus(status.render_prometheus(snap, found))
    assert set(m) == CONTRACT
    assert m["kafka_metal_status_up"] == {"": 1} and m["kafka_metal_status_level"] == {"": 1}
    assert m["kafka_metal_brokers"] == {'state="registered"': 3, 'state="fenced"': 0, 'state="missing"': 0}
    assert m["kafka_metal_broker_fenced"]['broker="5"'] == 0
    assert m["kafka_metal_partitions"] == {'state="offline"': 0, 'state="under_min_isr"': 0,
                                           'state="under_replicated"': 0}
    assert m["kafka_metal_partitions_total"] == {"": 3}
    assert m["kafka_metal_quorum_leader_id"] == {"": 1}
    assert m["kafka_metal_quorum_voter_lag_records"] == {'voter="1"': 0, 'voter="2"': 0, 'voter="3"': 1}
    assert m["kafka_metal_replication_throttle_rate_bytes"] == {'broker="4",direction="leader"': 1000,
                                                                'broker="4",direction="follower"': 2000}
    assert m["kafka_metal_throttled_replicas_topics"] == {"": 1}
    assert m["kafka_metal_replication_throttles_set"] == {"": 4}
    assert m["kafka_metal_log_dir_usable_bytes"]['broker="4",log_dir="/var/lib/kafka/data"'] == 600
    assert m["kafka_metal_log_dir_offline"]['broker="6",log_dir="/var/lib/kafka/data"'] == 0
    assert m["kafka_metal_certificate_not_after_timestamp_seconds"] == {
        'endpoint="/etc/kafka/ca.pem",kind="ca"': NOW + 3000 * DAY, 'endpoint="k4:9093",kind="node"': NOW + 200 * DAY}
    assert m["kafka_metal_consumergroup_verdict"] == {'group="billing"': 2, 'group="idle"': 0}
    assert m["kafka_metal_consumergroup_lag_records"]['group="billing"'] == 7
    assert m["kafka_metal_consumergroup_lag_seconds"] == {'group="billing"': 12.5, 'group="idle"': 0.0}
    assert m["kafka_metal_consumergroup_members"]['group="billing"'] == 2
    assert m["kafka_metal_consumergroups_total"] == {"": 2}


def test_problem_counts_always_include_zero_states_and_labels_are_escaped():
    snap = changed(partitions=[part("t", 0, [4], [], leader=-1)], groups=[group('we"ird\\name\n')])
    m = parse_prometheus(status.render_prometheus(snap, status.findings(snap)))
    assert m["kafka_metal_partitions"] == {'state="offline"': 1, 'state="under_min_isr"': 0,
                                           'state="under_replicated"': 0}
    assert m["kafka_metal_status_level"] == {"": 2}
    assert list(m["kafka_metal_consumergroup_verdict"]) == ['group="we\\"ird\\\\name\\n"']


def test_an_unreadable_cluster_exports_up_0_and_level_3_only():
    snap = {"bootstrap": "k1:9093", "error": "refused", "duration_seconds": 0.5}
    m = parse_prometheus(status.render_prometheus(snap, status.findings(snap)))
    assert m == {"kafka_metal_status_up": {"": 0}, "kafka_metal_status_duration_seconds": {"": 0.5},
                 "kafka_metal_status_age_seconds": {"": 0.0}, "kafka_metal_status_level": {"": 3}}


def test_text_has_a_section_per_area_with_levels_and_json_has_everything():
    snap = changed(partitions=[part("single", 0, [4], [4])])
    found = status.findings(snap)
    text = status.render_text(snap, found)
    assert text.startswith("kafka-metal status: CRITICAL (k1:9093, read in 1.2 s)\n")
    assert "\npartitions:\n  CRITICAL 1 partition under min.insync.replicas" in text
    assert "\nKRaft quorum:\n  OK       leader 1" in text
    data = json.loads(status.render_json(snap, found))
    assert data["level"] == "CRITICAL" and data["exit_code"] == 2
    assert data["snapshot"]["partitions"][0]["topic"] == "single"
    assert {"area": "partitions", "level": "CRITICAL", "message": found[3].message} in data["findings"]


# --- the command line and the endpoint ---------------------------------------------------------------------------

SECRET = "s3cr3t-Pa55"


class FakeReader:
    def __init__(self, snap):
        self.snap, self.reads, self.bootstrap = snap, 0, snap.get("bootstrap")

    def read(self):
        self.reads += 1
        return copy.deepcopy(self.snap)


@pytest.fixture
def command_config(tmp_path):
    path = tmp_path / "client.properties"
    path.write_text("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\nsasl.jaas.config="
                    "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" "
                    f"password=\"{SECRET}\";\n")
    return path


def run_cli(monkeypatch, snap, *args):
    reader = FakeReader(snap)
    seen = {}

    def fake(conf, **kwargs):
        seen.update(conf=conf, **kwargs)
        return reader

    monkeypatch.setattr(status_kafka, "Reader", fake)
    return cli_main.main(["status", "--bootstrap-server", "k1:9093", *args]), seen


@pytest.mark.parametrize("snap, code", [
    (healthy(), 0),
    (changed(groups=[group("g", "stopped", 5, 1.0, 0)]), 1),
    (changed(partitions=[part("single", 0, [4], [4])]), 2),
    ({"bootstrap": "k1:9093", "error": "refused"}, 3),
])
def test_the_exit_code_is_the_worst_level(monkeypatch, capsys, tmp_path, snap, code):
    prom = tmp_path / "kafka.prom"
    rc, _ = run_cli(monkeypatch, snap, "--prometheus-file", str(prom))
    assert rc == code
    assert parse_prometheus(prom.read_text())["kafka_metal_status_level"] == {"": code}
    assert capsys.readouterr().out.startswith(f"kafka-metal status: {status.LEVELS[code]}")


def test_no_secret_in_text_json_or_metrics(monkeypatch, capsys, tmp_path, command_config):
    snap = {"bootstrap": "k1:9093", "error": f"authentication failed for admin with {SECRET}"}
    prom = tmp_path / "kafka.prom"
    for fmt in ([], ["--json"]):
        rc, seen = run_cli(monkeypatch, snap, "--command-config", str(command_config), "--prometheus-file",
                           str(prom), *fmt)
        out = capsys.readouterr()
        assert rc == 3 and seen["conf"]["sasl.password"] == SECRET
        assert SECRET not in out.out + out.err + prom.read_text()
        assert "********" in out.out
    scraper = status_kafka.Scraper(FakeReader(changed(error=f"bad {SECRET}")))
    assert SECRET not in status_cli.metrics_text(scraper, status.Limits(), status_kafka.secrets_of(seen["conf"]))


def test_options_reach_the_reader_and_bad_ones_say_how_to_fix_them(monkeypatch, capsys):
    _, seen = run_cli(monkeypatch, healthy(), "--expect-brokers", "6,4,5", "--no-groups", "--samples", "3",
                      "--interval", "0.5", "--timeout", "4")
    assert seen["expected_brokers"] == [4, 5, 6] and seen["groups"] is False and seen["samples"] == 3
    assert seen["interval"] == 0.5 and seen["timeout"] == 4 and seen["history"] is False
    with pytest.raises(SystemExit, match=r"--expect-brokers '4,x': give node ids separated by commas, such as 1,2,3"):
        run_cli(monkeypatch, healthy(), "--expect-brokers", "4,x")
    with pytest.raises(SystemExit, match="--disk-warning 97.0 and --disk-critical 95.0 must be percentages"):
        run_cli(monkeypatch, healthy(), "--disk-warning", "97")


def test_settings_that_cannot_be_read_are_unknown(capsys, tmp_path):
    rc = cli_main.main(["status", "--bootstrap-server", "k1:9093", "--command-config", str(tmp_path / "none")])
    assert rc == 3
    assert f"--command-config {tmp_path / 'none'}" in capsys.readouterr().err


def test_the_scraper_reads_at_most_once_per_cache_period():
    now = [100.0]
    reader = FakeReader(healthy())
    scraper = status_kafka.Scraper(reader, cache=5.0, clock=lambda: now[0])
    scraper.snapshot()
    now[0] += 4.0
    scraper.snapshot()
    assert reader.reads == 1
    now[0] += 2.0
    scraper.snapshot()
    assert reader.reads == 2


class SlowReader:
    """Its first read is quick; the next ones block until released (a broker that went away)."""
    bootstrap = "k1:9093"

    def __init__(self):
        import threading

        self.reads, self.release = 0, threading.Event()

    def read(self):
        self.reads += 1
        if self.reads > 1:
            self.release.wait(30)
        return dict(healthy(), duration_seconds=float(self.reads))


def test_in_the_background_a_slow_read_never_holds_up_a_scrape():
    import time as _time

    reader = SlowReader()
    scraper = status_kafka.Scraper(reader, cache=0.05).start()
    try:
        first = scraper.snapshot()
        assert first["duration_seconds"] == 1.0
        deadline = _time.monotonic() + 5
        while reader.reads < 2 and _time.monotonic() < deadline:
            _time.sleep(0.01)
        t0 = _time.monotonic()
        held = scraper.snapshot()  # the second read is stuck: the first one answers, older
        assert _time.monotonic() - t0 < 0.5
        assert held["duration_seconds"] == 1.0 and held["age_seconds"] >= 0.0
        m = parse_prometheus(status.render_prometheus(held, status.findings(held)))
        assert m["kafka_metal_status_up"] == {"": 1} and m["kafka_metal_status_age_seconds"][""] >= 0.0
        reader.release.set()
        deadline = _time.monotonic() + 5
        while scraper.snapshot()["duration_seconds"] == 1.0 and _time.monotonic() < deadline:
            _time.sleep(0.01)
        assert scraper.snapshot()["duration_seconds"] >= 2.0
    finally:
        scraper.stop()
        reader.release.set()


class BrokenReader:
    bootstrap = "k1:9093"

    def read(self):
        raise RuntimeError("librdkafka fell over")


def test_the_endpoint_serves_metrics_and_survives_a_failing_read():
    for reader, up in ((FakeReader(healthy()), 1), (BrokenReader(), 0)):
        server = status_cli.make_server("127.0.0.1:0", status_kafka.Scraper(reader), status.Limits(), [])
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            base = f"http://127.0.0.1:{server.server_address[1]}"
            with urllib.request.urlopen(f"{base}/metrics", timeout=10) as answer:
                assert answer.status == 200 and answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                m = parse_prometheus(answer.read().decode())
            assert m["kafka_metal_status_up"] == {"": up}
            with pytest.raises(urllib.error.HTTPError, match="404"):
                urllib.request.urlopen(f"{base}/other", timeout=10)
        finally:
            server.shutdown()
            server.server_close()


def test_groups_verdict_severity_is_the_metric_value():
    assert {v: lag.SEVERITY[v] for v in (lag.OK, lag.LAGGING, lag.STALLED, lag.STOPPED)} == {
        "OK": 0, "lagging": 1, "stalled": 2, "stopped": 3}


# --- certificates read over TLS ----------------------------------------------------------------------------------


@pytest.fixture
def tls_listener(tmp_path):
    """A TLS listener on 127.0.0.1 with a certificate from a new CA (valid 20 days): (port, CA file, not_after)."""
    import socket
    import ssl

    from ansible_collections.metal.kafka.plugins.module_utils import pki
    from cryptography.hazmat.primitives import serialization

    ca = pki.create_ca("status test CA")
    key, cert = pki.issue(ca, "localhost", dns_names=["localhost"], ip_addresses=["127.0.0.1"], valid_days=20)
    (tmp_path / "ca.pem").write_bytes(pki.cert_pem(ca.cert))
    (tmp_path / "node.pem").write_bytes(pki.cert_pem(cert))
    (tmp_path / "node.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "node.pem", tmp_path / "node.key")
    server = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1], tmp_path / "ca.pem", cert.not_valid_after_utc.timestamp()
    server.close()


def test_the_certificate_of_a_listener_is_read_and_verified(tls_listener, tmp_path):
    from ansible_collections.metal.kafka.plugins.module_utils import pki, wire

    port, ca_file, not_after = tls_listener
    good = status_kafka.peer_certificate("127.0.0.1", port, wire.Security("SSL", str(ca_file)), 10)
    assert good == {"not_after": not_after, "subject": "CN=localhost", "error": None}
    (tmp_path / "other.pem").write_bytes(pki.cert_pem(pki.create_ca("another CA").cert))
    other = status_kafka.peer_certificate("127.0.0.1", port, wire.Security("SSL", str(tmp_path / "other.pem")), 10)
    assert other["not_after"] == not_after and "unable to get local issuer certificate" in other["error"]
    ca = status_kafka.ca_certificate(ca_file)
    assert ca["subject"] == "CN=status test CA,O=metal.kafka" and ca["not_after"] > not_after and ca["error"] is None
    snap = changed(read_at=not_after - 20 * DAY + 60, certificates=[{"endpoint": f"127.0.0.1:{port}", "kind": "node",
                                                                     **good}])
    found, level = judged(snap)
    assert level == status.WARNING and "expires in 20.0 days" in messages(found, status.WARNING)[0]


# --- the groups of a long-running reader while a broker is away ----------------------------------------------------

class AwayGroups:
    """Groups as Kafka answers them: ``away`` groups are left out of the list (their coordinator's broker does not
    answer) and cannot be read; the record at each offset was written at ``written`` (seconds)."""

    def __init__(self, committed, ends, written):
        self.committed, self.ends, self.written = committed, ends, written
        self.away, self.stamp_reads = set(), []

    def listing(self):
        listed = [{"group": g, "state": "STABLE", "simple": False} for g in sorted(self.committed)
                  if g not in self.away]
        return listed, (["broker 6: KafkaError{code=_TRANSPORT}"] if self.away else [])

    def sample_each(self, names):
        samples = {g: lag.Sample(0.0, dict(self.committed[g]), dict(self.ends), 1) for g in names
                   if g in self.committed and g not in self.away}
        return samples, {g: "COORDINATOR_NOT_AVAILABLE" for g in names if g in self.away}

    def stamps(self, positions, timeout):
        self.stamp_reads.append(sorted(positions))
        return {pos: self.written + pos[1] for pos in positions}  # a record a second newer per offset


def history_reader(groups):
    reader = status_kafka.Reader.__new__(status_kafka.Reader)
    reader.groups, reader.history, reader.samples, reader.timeout = groups, True, 2, 10.0
    reader._start_history()
    return reader


@pytest.fixture
def clock(monkeypatch):
    """The reader's wall and monotonic clocks, one value the test moves on (``clock[0]``)."""
    now = [1000.0]
    monkeypatch.setattr(status_kafka.time, "time", lambda: now[0])
    monkeypatch.setattr(status_kafka.time, "monotonic", lambda: now[0])
    return now


def test_a_group_whose_coordinator_is_away_keeps_its_figures_and_says_so(clock):
    now = clock
    tp = ("orders", 0)
    groups = AwayGroups({"app": {tp: 10}, "other": {tp: 40}}, {tp: 40}, written=930.0)
    reader = history_reader(groups)
    first, problems = reader._group_lags(None)
    assert [(g["group"], g["seconds"]) for g in first] == [("app", 60.0), ("other", 0.0)] and not problems
    groups.away = {"app"}
    now[0] += 5
    second, problems = reader._group_lags(None)
    assert [(g["group"], g["seconds"]) for g in second] == [("app", 60.0), ("other", 0.0)]
    assert any("incomplete" in p and "_TRANSPORT" in p for p in problems), problems
    assert any("earlier read for app (5 s old)" in p for p in problems), problems
    assert any(p.startswith("not read: app (COORDINATOR_NOT_AVAILABLE)") for p in problems), problems
    # back: read again, the record's timestamp from the first read (it never changes)
    groups.away = set()
    now[0] += 5
    third, problems = reader._group_lags(None)
    assert [(g["group"], g["seconds"]) for g in third] == [("app", 70.0), ("other", 0.0)] and not problems
    assert groups.stamp_reads == [[(tp, 10)]]


def test_groups_at_different_offsets_of_one_partition_each_get_their_own_age(clock):
    tp = ("orders", 0)
    groups = AwayGroups({"early": {tp: 10}, "late": {tp: 30}, "done": {tp: 40}}, {tp: 40}, written=950.0)
    figures, _ = history_reader(groups)._group_lags(None)
    assert [(g["group"], g["seconds"]) for g in figures] == [("done", 0.0), ("early", 40.0), ("late", 20.0)]


def test_a_group_away_for_longer_than_the_limit_is_dropped_and_a_deleted_one_goes(clock):
    now = clock
    tp = ("orders", 0)
    groups = AwayGroups({"app": {tp: 10}, "gone": {tp: 40}}, {tp: 40}, written=980.0)
    reader = history_reader(groups)
    reader._group_lags(None)
    groups.away = {"app"}
    now[0] += status_kafka.STALE_SECONDS + 1
    figures, problems = reader._group_lags(None)
    assert [g["group"] for g in figures] == ["gone"]
    assert not any("earlier read" in p for p in problems)
    # a complete list without a group: it was deleted, and is no longer asked for
    groups.away = set()
    del groups.committed["gone"]
    figures, problems = reader._group_lags(None)
    assert [g["group"] for g in figures] == ["app"] and set(reader.series) == {"app"}


def test_a_long_running_reader_carries_parts_a_broker_away_did_not_answer():
    reader = history_reader(None)
    brokers = [{"id": 4}, {"id": 5}, {"id": 6}]

    def snap(throttles, dirs):
        return {"problems": {}, "brokers": brokers, "throttles": throttles, "reassignments": [],
                "certificates": None, "log_dirs": [{"broker": b, "path": "/data", "total_bytes": 100,
                                                    "usable_bytes": 50, "error": None} for b in dirs]}

    first = snap({"brokers": {"4": {"leader.replication.throttled.rate": "10485760"}}, "topics": {}}, [4, 5, 6])
    reader.throttles_asked = {4, 5, 6}
    reader._carry(first, 100.0)
    assert first["problems"] == {}
    # broker 4 restarts: its throttle and broker 6's directories are not answered
    second = snap(None, [4, 5])
    reader._carry(second, 130.0)
    assert second["throttles"] == {"brokers": {"4": {"leader.replication.throttled.rate": "10485760"}}, "topics": {}}
    assert [d["broker"] for d in second["log_dirs"]] == [4, 5, 6]
    assert second["problems"] == {"throttles": ["figures of an earlier read (30 s old)"],
                                  "log_dirs": ["broker 6: figures of an earlier read (30 s old)"]}
    # past the limit they are gone, and a broker no longer registered is not carried at all
    third = snap(None, [4, 5])
    reader._carry(third, 100.0 + status_kafka.STALE_SECONDS + 1)
    assert third["problems"] == {}
    assert third["throttles"] is None and [d["broker"] for d in third["log_dirs"]] == [4, 5]
    brokers.pop()
    reader.broker_dirs[6] = ([{"broker": 6, "path": "/data"}], 300.0)
    fourth = snap({}, [4, 5])
    reader._carry(fourth, 301.0)
    assert [d["broker"] for d in fourth["log_dirs"]] == [4, 5]


def test_a_broker_restarting_keeps_its_throttle_while_the_others_are_read_again():
    reader = history_reader(None)
    brokers = [{"id": 4}, {"id": 5}]
    rate = {"leader.replication.throttled.rate": "10485760"}

    def snap(throttles):
        return {"problems": {}, "brokers": brokers, "throttles": throttles, "reassignments": [],
                "certificates": None, "log_dirs": None}

    reader.throttles_asked = {4, 5}
    reader._carry(snap({"brokers": {"4": rate}, "topics": {}}), 10.0)
    # broker 4 restarts: the cluster answers, but broker 4 is not asked for its own settings
    reader.throttles_asked = {5}
    restarting = snap({"brokers": {}, "topics": {}})
    reader._carry(restarting, 20.0)
    assert restarting["throttles"]["brokers"] == {"4": rate}
    assert restarting["problems"] == {"throttles": ["broker 4: figures of an earlier read (10 s old)"]}
    # back, and the throttle removed meanwhile: gone
    reader.throttles_asked = {4, 5}
    back = snap({"brokers": {}, "topics": {}})
    reader._carry(back, 30.0)
    assert back["throttles"]["brokers"] == {} and back["problems"] == {}


def test_before_4_0_a_stopped_broker_left_the_broker_list_but_still_holds_replicas():
    reader = history_reader(None)
    rate = {"leader.replication.throttled.rate": "10485760"}
    reader.throttles_asked = {4, 5}
    reader._carry({"problems": {}, "brokers": [{"id": 4}, {"id": 5}], "throttles": {"brokers": {"4": rate}},
                   "partitions": [], "log_dirs": None}, 10.0)
    reader.throttles_asked = {5}
    away = {"problems": {}, "brokers": [{"id": 5}], "throttles": {"brokers": {}},
            "partitions": [{"topic": "t", "partition": 0, "replicas": [4, 5]}], "log_dirs": None}
    reader._carry(away, 20.0)
    assert away["throttles"]["brokers"] == {"4": rate}
    # a broker neither listed nor holding a replica has left the cluster: nothing of it is kept
    reader.throttles_asked = {5}
    gone = dict(away, problems={}, throttles={"brokers": {}}, partitions=[])
    reader._carry(gone, 30.0)
    assert gone["throttles"]["brokers"] == {}
