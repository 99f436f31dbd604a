"""The load verifier (kafka_metal.load.verify) and the report, with synthetic runs; --command-config translation."""

import json

import pytest
from ansible_collections.metal.kafka.plugins.module_utils import properties, security
from kafka_metal import load, main


def clean_run(n=30, partitions=3):
    """``n`` records spread over ``partitions``, each acked and read back once, in offset order."""
    acked, next_offset = [], dict.fromkeys(range(partitions), 0)
    for seq in range(n):
        p = seq % partitions
        acked.append((seq, p, next_offset[p]))
        next_offset[p] += 1
    consumed = sorted(acked, key=lambda r: (r[1], r[2]))  # a consumer reads partition by partition
    return acked, consumed


def report(v, **kwargs):
    return load.LoadReport.from_verification(v, topic="t", seconds=1.0, sent=kwargs.pop("sent", v.acked), **kwargs)


def test_clean_run_passes():
    acked, consumed = clean_run()
    v = load.verify(acked, consumed, [], [], sent=30)
    assert v.ok
    assert (v.acked, v.consumed) == (30, 30)
    r = report(v)
    assert r.ok and r.problems() == [] and r.summary().startswith("OK")


def test_extra_items_of_acked_records_are_ignored():
    acked, consumed = clean_run()
    assert load.verify([(*a, 123.4) for a in acked], consumed).ok


def test_missing_acked_record():
    acked, consumed = clean_run()
    consumed = [c for c in consumed if c[0] != 7]
    v = load.verify(acked, consumed)
    assert not v.ok
    assert v.missing == [7]
    at = dict((seq, (p, o)) for seq, p, o in acked)[7]
    assert any(f"not read back (missing): seq 7; acknowledged: 7 at partition {at[0]} offset {at[1]}" in p
               for p in report(v).problems())


def test_duplicate():
    acked, consumed = clean_run()
    p, o = acked[4][1], acked[4][2]
    last = max(c[2] for c in consumed if c[1] == p)
    consumed.append((4, p, last + 1))  # written twice: the second copy further on
    v = load.verify(acked, consumed)
    assert not v.ok
    assert v.duplicates == [4]
    assert v.missing == [] and v.out_of_order == [] and v.misplaced == []
    assert o >= 0


def test_duplicate_by_rereading():
    acked, consumed = clean_run()
    consumed.append(consumed[0])  # the consumer went back
    v = load.verify(acked, consumed)
    assert v.duplicates == [consumed[0][0]]
    assert v.out_of_order == [consumed[0][1]]


def test_out_of_order_offsets_in_a_partition():
    acked, consumed = clean_run()
    i = next(i for i, c in enumerate(consumed) if c[1] == 1 and c[2] == 3)
    consumed[i], consumed[i + 1] = consumed[i + 1], consumed[i]
    v = load.verify(acked, consumed)
    assert not v.ok
    assert v.out_of_order == [1]
    assert v.missing == [] and v.duplicates == []
    assert any("partitions 1" in p for p in report(v).problems())


def test_records_out_of_produce_order_in_a_partition():
    acked, consumed = clean_run()
    # seqs 1 and 4 (both partition 1) swapped places in the log: offsets fine, order not
    acked = [(4, 1, 0) if a[0] == 1 else (1, 1, 1) if a[0] == 4 else a for a in acked]
    consumed = sorted(acked, key=lambda r: (r[1], r[2]))
    v = load.verify(acked, consumed)
    assert v.reordered == [1] and v.out_of_order == [] and not v.ok


def test_read_back_at_another_offset_than_acked():
    acked, consumed = clean_run()
    acked = [(s, p, o + 100) if s == 5 else (s, p, o) for s, p, o in acked]
    v = load.verify(acked, consumed)
    assert v.misplaced == [5] and not v.ok
    # an offset the broker did not report (-1) is not compared
    acked = [(s, p, -1) if s == 5 else (s, p, o) for s, p, o in clean_run()[0]]
    assert load.verify(acked, consumed).ok


def test_non_retriable_failure():
    acked, consumed = clean_run()
    acked = [a for a in acked if a[0] != 9]
    consumed = [c for c in consumed if c[0] != 9]
    v = load.verify(acked, consumed, failed=[(9, "_MSG_TIMED_OUT: Local: Message timed out")], sent=30)
    assert not v.ok
    assert v.failed == [(9, "_MSG_TIMED_OUT: Local: Message timed out")]
    assert v.missing == [] and v.unresolved == []
    assert any("1 records failed" in p and "seq 9" in p for p in report(v, sent=30).problems())


def test_fatal_error():
    acked, consumed = clean_run()
    v = load.verify(acked, consumed, fatal_errors=["producer: _FATAL: Fatal error: idempotence"])
    assert not v.ok
    r = report(v)
    assert not r.ok and r.fatal_errors and "fatal client error" in r.problems()[0]


def test_nothing_acked_is_not_ok():
    v = load.verify([], [])
    assert not v.ok
    assert "no record was acknowledged" in report(v).problems()


def test_consumed_but_never_acked_is_information():
    acked, consumed = clean_run()
    acked = [a for a in acked if a[0] not in (28, 29)]  # their delivery reports never came
    v = load.verify(acked, consumed, sent=30)
    assert v.ok
    assert v.unacked_consumed == [28, 29]
    assert v.unresolved == []  # read back, so not lost
    r = report(v, sent=30)
    assert r.ok and r.problems() == []
    assert any("without an acknowledgement" in n for n in r.notes())


def test_sent_but_neither_acked_failed_nor_consumed_is_unresolved():
    acked, consumed = clean_run()
    v = load.verify(acked, consumed, sent=32)  # 30 and 31 still in flight when the drain gave up
    assert v.unresolved == [30, 31] and not v.ok


def test_transient_errors_are_information():
    acked, consumed = clean_run()
    r = report(load.verify(acked, consumed), transient_errors=12,
               transient_examples=["producer: _TRANSPORT: broker down", "producer: _ALL_BROKERS_DOWN: all down"])
    assert r.ok
    assert "12 transient client errors" in r.notes()[0]


def test_long_lists_are_capped_in_text_but_not_in_json():
    acked, _ = clean_run(200)
    v = load.verify(acked, [])
    r = report(v)
    text = r.problems()[0]
    assert "200 acknowledged records not read back" in text and "(180 more)" in text
    d = json.loads(json.dumps(r.as_dict()))
    assert len(d["missing"]) == 200 and d["ok"] is False and d["problems"]


def test_as_dict_round_trips_through_json():
    acked, consumed = clean_run()
    d = json.loads(json.dumps(report(load.verify(acked, consumed, failed=[(99, "x")])).as_dict()))
    assert d["failed"] == [[99, "x"]] and d["ok"] is False
    assert {"topic", "seconds", "sent", "acked", "consumed", "missing", "duplicates", "out_of_order",
            "longest_ack_gap_seconds", "transient_errors", "fatal_errors"} <= set(d)


def test_longest_gap():
    assert load.longest_gap([1.0, 1.1, 4.0, 4.2], 0.5, 5.0) == pytest.approx(2.9)
    assert load.longest_gap([], 0.0, 3.0) == 3.0
    assert load.longest_gap([0.1, 0.2], 0.0, 0.2) == pytest.approx(0.1)


def test_load_refuses_min_isr_above_replication_factor():
    with pytest.raises(ValueError, match="min_isr"):
        load.Load("h:9092", replication_factor=1, min_isr=2)


# --------------------------------------------------------------------------------------------------
# --command-config
# --------------------------------------------------------------------------------------------------


def test_command_config_sasl_ssl(tmp_path):
    ca = tmp_path / "truststore.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    cfg = tmp_path / "admin.properties"
    password = 'p\\"w=rd;x \'y'  # a backslash, quotes, '=', ';' and a space survive both quotings
    # rendered the way roles/kafka/templates/etc/kafka/admin.properties.j2 renders it
    cfg.write_text("# Ansible managed\n" + properties.render({
        "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.jaas.config": security.jaas("SCRAM-SHA-512", "admin", password),
        "ssl.truststore.type": "PEM", "ssl.truststore.location": str(ca)}))
    conf = load.read_command_config(cfg)
    assert conf == {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "admin",
                    "sasl.password": password, "ssl.ca.location": str(ca)}
    shown = load.describe_settings(conf)
    assert "rd;x" not in shown and "sasl.password=***" in shown


def test_command_config_continuation_lines_and_plain(tmp_path):
    cfg = tmp_path / "c.properties"
    cfg.write_text("security.protocol = SASL_PLAINTEXT\nsasl.mechanism: PLAIN\n"
                   "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required \\\n"
                   '    username="alice" \\\n    password="secret";\n'
                   "ssl.endpoint.identification.algorithm=\n")
    assert load.read_command_config(cfg) == {
        "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN", "sasl.username": "alice",
        "sasl.password": "secret", "ssl.endpoint.identification.algorithm": "none"}


def test_command_config_refuses_a_jks_truststore(tmp_path):
    jks = tmp_path / "truststore.jks"
    jks.write_bytes(b"\xfe\xed\xfe\xed\x00\x00\x00\x02")
    with pytest.raises(load.LoadError, match="PEM"):
        load.librdkafka_settings({"security.protocol": "SSL", "ssl.truststore.location": str(jks)})
    with pytest.raises(load.LoadError, match="PKCS12"):
        load.librdkafka_settings({"ssl.truststore.location": str(jks), "ssl.truststore.type": "PKCS12"})


def test_command_config_without_sasl_credentials_is_refused_with_the_fix():
    base = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512"}
    with pytest.raises(load.LoadError, match=r"needs a username and a password, and sasl.jaas.config gives none"):
        load.librdkafka_settings(base)
    empty = 'org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="";'
    with pytest.raises(load.LoadError, match=r"needs a password.*empty or no password.*password=\"PASSWORD\""):
        load.librdkafka_settings(dict(base, **{"sasl.jaas.config": empty}))
    # other mechanisms bring their own credentials
    assert load.librdkafka_settings({"security.protocol": "SASL_SSL", "sasl.mechanism": "OAUTHBEARER"})


def test_load_command_is_wired():
    args = main.build_parser().parse_args(["load", "--bootstrap-server", "h:9092", "--topic", "t", "--rate", "50",
                                           "--duration", "10", "--command-config", "c.properties",
                                           "--report", "r.json"])
    assert args.func is main.cmd_load
    assert (args.rate, args.duration, args.replication_factor, args.min_isr) == (50.0, 10.0, None, 2)


def test_an_acknowledgement_without_offset_is_still_checked_for_loss_and_duplicates():
    # a retried batch the broker already had is acknowledged without an offset (None)
    acked = [(0, 0, 0), (1, 0, None), (2, 0, 2)]
    assert load.verify(acked, [(0, 0, 0), (1, 0, 1), (2, 0, 2)]).ok
    lost = load.verify(acked, [(0, 0, 0), (2, 0, 2)])
    assert not lost.ok and lost.missing == [1]
