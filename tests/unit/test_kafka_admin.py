"""Topic, ACL and SCRAM planning and running (module_utils/kafka_admin.py) against an in-memory cluster.

The fake backend (kafka_admin_fake.py) implements the backend protocol; these tests check the decisions,
that check mode never calls a mutating backend method, the diff, and that no secret ever reaches a
result, an error or a warning.
"""

from __future__ import annotations

import json
import sys

import kafka_admin_fake as fake
import pytest
from ansible_collections.metal.kafka.plugins.module_utils import kafka_admin as ka

FakeBackend = fake.FakeBackend

SASL_PW = "sasl-Secret-1"
KEY_PW = "key-Secret-2"
USER_PW = "user-Secret-3"
SECRETS = (SASL_PW, KEY_PW, USER_PW)


def conn(**kw):
    params = {"bootstrap_servers": "k1:9093", "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
              "sasl_username": "admin", "sasl_password": SASL_PW, "ssl_ca_location": None,
              "ssl_check_hostname": True, "ssl_certificate_location": None, "ssl_key_location": None,
              "ssl_key_password": KEY_PW, "timeout": 5}
    params.update(kw)
    return params


def topic_params(**kw):
    p = conn(name="orders", state="present", partitions=None, replication_factor=None, configs={})
    p.update(kw)
    return p


def acl(principal="User:alice", operation="write", resource_type="topic", resource_name="orders", **kw):
    b = {"principal": principal, "host": "*", "operation": operation, "permission": "allow",
         "resource_type": resource_type, "resource_name": resource_name, "pattern_type": "literal"}
    b.update(kw)
    return b


def acl_params(acls=None, **kw):
    p = conn(acls=acls, principal=None, host="*", operation=None, permission="allow", resource_type=None,
             resource_name=None, pattern_type="literal", state="present")
    p.update(kw)
    return p


def scram_params(**kw):
    p = conn(name="alice", mechanism="SCRAM-SHA-512", password=USER_PW, iterations=8192,
             update_password="on_create", state="present")
    p.update(kw)
    return p


def no_secret(obj):
    text = json.dumps(obj, default=str)
    for secret in SECRETS:
        assert secret not in text, f"secret leaked: {text}"


# --------------------------------------------------------------------------------------------------
# Topics
# --------------------------------------------------------------------------------------------------


def test_topic_created_when_missing_with_partitions_rf_and_configs():
    be = FakeBackend()
    res = ka.run_topic(be, topic_params(partitions=6, replication_factor=1,
                                        configs={"retention.ms": 86400000, "cleanup.policy": "compact"}))
    assert res["changed"] is True
    assert be.mutations == [("create_topic", "orders", 6, 1, {"cleanup.policy": "compact",
                                                             "retention.ms": "86400000"})]
    assert res["diff"]["before"] == {"name": "orders", "state": "absent"}
    assert res["diff"]["after"] == {"name": "orders", "state": "present", "partitions": 6, "replication_factor": 1,
                                    "configs": {"cleanup.policy": "compact", "retention.ms": "86400000"}}
    assert res["topic"]["partitions"] == 6


def test_topic_created_with_broker_defaults_reports_what_it_got():
    be = FakeBackend()
    res = ka.run_topic(be, topic_params())
    assert be.mutations == [("create_topic", "orders", None, None, {})]
    assert res["diff"]["after"]["partitions"] is None  # the plan cannot know the broker's default
    assert res["topic"]["partitions"] == fake.BROKER_DEFAULT_PARTITIONS
    assert res["topic"]["replication_factor"] == fake.BROKER_DEFAULT_RF


def test_topic_matching_is_a_no_op():
    be = FakeBackend(topics={"orders": {"partitions": 6, "replication_factor": 3, "configs": {"retention.ms": "1000"}}})
    res = ka.run_topic(be, topic_params(partitions=6, replication_factor=3, configs={"retention.ms": 1000}))
    assert res["changed"] is False and res["actions"] == [] and be.mutations == []
    assert res["diff"]["before"] == res["diff"]["after"]


def test_second_run_after_create_is_a_no_op():
    be = FakeBackend()
    params = topic_params(partitions=3, configs={"retention.ms": "5000", "min.insync.replicas": None})
    assert ka.run_topic(be, params)["changed"] is True
    again = ka.run_topic(be, params)
    assert again["changed"] is False and len(be.mutations) == 1


def test_topic_partitions_increase():
    be = FakeBackend(topics={"orders": {"partitions": 3, "replication_factor": 1}})
    res = ka.run_topic(be, topic_params(partitions=8))
    assert be.mutations == [("create_partitions", "orders", 8)]
    assert res["diff"]["before"]["partitions"] == 3 and res["diff"]["after"]["partitions"] == 8
    assert be.topics["orders"]["partitions"] == 8


def test_topic_partitions_decrease_refused_before_anything_changes():
    be = FakeBackend(topics={"orders": {"partitions": 6, "replication_factor": 1}})
    with pytest.raises(ka.PlanError) as exc:
        ka.run_topic(be, topic_params(partitions=3, configs={"retention.ms": "1"}))
    expected = "topic orders has 6 partitions; Kafka cannot reduce partitions; recreate the topic or keep 6"
    assert expected in str(exc.value)
    assert be.mutations == []


def test_topic_replication_factor_change_refused():
    be = FakeBackend(topics={"orders": {"partitions": 6, "replication_factor": 3}})
    with pytest.raises(ka.PlanError) as exc:
        ka.run_topic(be, topic_params(partitions=12, replication_factor=2, configs={"retention.ms": "1"}))
    msg = str(exc.value)
    assert "topic orders has replication factor 3" in msg and "reassignment" in msg and "nothing was changed" in msg
    assert be.mutations == []


def test_topic_config_drift_alters_only_differing_keys():
    be = FakeBackend(topics={"orders": {"partitions": 3, "replication_factor": 1,
                                        "configs": {"retention.ms": "1000", "max.message.bytes": "2000000"}}})
    res = ka.run_topic(be, topic_params(configs={"retention.ms": "2000", "cleanup.policy": "delete",
                                                 "max.message.bytes": None}))
    assert be.mutations == [("alter_topic_configs", "orders", {"retention.ms": "2000"})]
    assert res["diff"]["before"]["configs"] == {"cleanup.policy": "delete", "retention.ms": "1000"}
    assert res["diff"]["after"]["configs"] == {"cleanup.policy": "delete", "retention.ms": "2000"}
    assert be.configs["orders"]["max.message.bytes"] == "2000000", "a null key is not managed"


def test_topic_partitions_and_configs_in_one_run():
    be = FakeBackend(topics={"orders": {"partitions": 3, "replication_factor": 1}})
    res = ka.run_topic(be, topic_params(partitions=4, configs={"retention.ms": "1"}))
    assert [a["action"] for a in res["actions"]] == ["create_partitions", "alter_topic_configs"]


def test_topic_unknown_config_key_refused():
    be = FakeBackend(topics={"orders": {"partitions": 3, "replication_factor": 1}})
    with pytest.raises(ka.PlanError, match="retention.msx not topic config"):
        ka.run_topic(be, topic_params(configs={"retention.msx": "1"}))
    assert be.mutations == []


def test_topic_absent_deletes_only_if_it_exists():
    be = FakeBackend(topics={"orders": {"partitions": 3, "replication_factor": 1}})
    res = ka.run_topic(be, topic_params(state="absent", partitions=1))
    assert res["changed"] is True and be.mutations == [("delete_topic", "orders")]
    assert res["diff"] == {"before": {"name": "orders", "state": "present", "partitions": 3, "replication_factor": 1},
                           "after": {"name": "orders", "state": "absent"}}
    again = ka.run_topic(be, topic_params(state="absent"))
    assert again["changed"] is False and len(be.mutations) == 1


@pytest.mark.parametrize("params,existing", [
    (topic_params(partitions=3, configs={"retention.ms": "1"}), None),
    (topic_params(partitions=9, configs={"retention.ms": "1"}), {"partitions": 3, "replication_factor": 1}),
    (topic_params(state="absent"), {"partitions": 3, "replication_factor": 1}),
], ids=["create", "grow-and-alter", "delete"])
def test_topic_check_mode_changes_nothing_and_predicts_the_real_run(params, existing):
    topics = {"orders": existing} if existing else {}
    dry_be, real_be = FakeBackend(topics=topics), FakeBackend(topics=topics)
    dry = ka.run_topic(dry_be, params, check_mode=True)
    assert dry_be.mutations == [] and dry["changed"] is True
    real = ka.run_topic(real_be, params)
    assert dry["actions"] == real["actions"] and dry["diff"] == real["diff"]


@pytest.mark.parametrize("value,expected", [(True, "true"), (False, "false"), (86400000, "86400000"),
                                            (["compact", "delete"], "compact,delete"), ("x", "x"), (None, None)])
def test_config_values_spelled_like_kafka(value, expected):
    assert ka.config_value(value) == expected


@pytest.mark.parametrize("kw,msg", [({"partitions": 0}, "partitions must be at least 1"),
                                    ({"replication_factor": 0}, "replication_factor must be at least 1")])
def test_topic_invalid_numbers(kw, msg):
    with pytest.raises(ka.PlanError, match=msg):
        ka.run_topic(FakeBackend(), topic_params(**kw))


# --------------------------------------------------------------------------------------------------
# ACLs
# --------------------------------------------------------------------------------------------------


def test_acl_single_binding_added_then_no_op():
    be = FakeBackend()
    params = acl_params(principal="User:alice", operation="write", resource_type="topic", resource_name="orders")
    res = ka.run_acls(be, params)
    assert res["changed"] is True and be.mutations == [("create_acls", [acl()])]
    assert res["created"] == [acl()] and res["deleted"] == []
    assert res["diff"] == {"before": {"acls": []},
                           "after": {"acls": ["User:alice allow write on topic orders (literal) from host *"]}}
    assert res["acls"][0]["changed"] is True and res["acls"][0]["state"] == "present"
    again = ka.run_acls(be, params)
    assert again["changed"] is False and len(be.mutations) == 1 and again["acls"][0]["changed"] is False


def test_acl_removed_and_absent_is_a_no_op():
    other = acl(principal="User:bob")
    be = FakeBackend(acls=[acl(), other])
    params = acl_params(principal="User:alice", operation="write", resource_type="topic", resource_name="orders",
                        state="absent")
    res = ka.run_acls(be, params)
    assert res["changed"] is True and be.mutations == [("delete_acls", [acl()])]
    assert be.acls == [other], "bindings not named are left alone"
    assert res["diff"]["before"]["acls"] and res["diff"]["after"] == {"acls": []}
    assert ka.run_acls(be, params)["changed"] is False


def test_acl_list_mixed_states_with_inherited_defaults_and_one_describe_per_resource():
    be = FakeBackend(acls=[acl(operation="read")])
    entries = [
        {"principal": "User:alice", "operation": "write", "resource_type": "topic", "resource_name": "orders"},
        {"principal": "User:alice", "operation": "describe", "resource_type": "topic", "resource_name": "orders"},
        {"principal": "User:alice", "operation": "read", "resource_type": "topic", "resource_name": "orders",
         "state": "absent", "host": "*"},
        {"principal": "User:alice", "operation": "read", "resource_type": "group", "resource_name": "app.",
         "pattern_type": "prefixed"},
        {"principal": "User:alice", "operation": "idempotent_write", "resource_type": "cluster"},
    ]
    res = ka.run_acls(be, acl_params(entries, host="10.0.0.1"))
    created = res["created"]
    assert {(b["operation"], b["resource_type"]) for b in created} == {
        ("write", "topic"), ("describe", "topic"), ("read", "group"), ("idempotent_write", "cluster")}
    assert all(b["host"] == "10.0.0.1" for b in created), "entries take host from the top level"
    assert res["deleted"] == [acl(operation="read")], "an entry's own state and host win"
    cluster = next(b for b in created if b["resource_type"] == "cluster")
    assert cluster["resource_name"] == "kafka-cluster"
    assert next(b for b in created if b["resource_type"] == "group")["pattern_type"] == "prefixed"
    describes = [c for c in be.calls if c[0] == "describe_acls"]
    assert len(describes) == 3  # topic orders, group app. (prefixed), cluster
    assert ka.run_acls(be, acl_params(entries, host="10.0.0.1"))["changed"] is False


def test_acl_entry_host_overrides_top_level():
    entry = ka.normalize_acl({"principal": "User:a", "operation": "read", "resource_type": "topic",
                              "resource_name": "t", "host": "*"}, {"host": "10.0.0.1", "state": None})
    assert entry["host"] == "*" and entry["state"] == "present"


def test_acl_check_mode_changes_nothing():
    be = FakeBackend(acls=[acl(operation="read")])
    entries = [{"principal": "User:alice", "operation": "write", "resource_type": "topic", "resource_name": "orders"},
               {"principal": "User:alice", "operation": "read", "resource_type": "topic", "resource_name": "orders",
                "state": "absent"}]
    res = ka.run_acls(be, acl_params(entries), check_mode=True)
    assert res["changed"] is True and be.mutations == []
    assert [a["action"] for a in res["actions"]] == ["create_acls", "delete_acls"]
    assert res["diff"]["before"]["acls"] == ["User:alice allow read on topic orders (literal) from host *"]
    assert res["diff"]["after"]["acls"] == ["User:alice allow write on topic orders (literal) from host *"]


@pytest.mark.parametrize("entry,msg", [
    ({"principal": "alice", "operation": "read", "resource_type": "topic", "resource_name": "t"}, "type:name"),
    ({"principal": "User:a", "operation": "read", "resource_type": "topic"}, "resource_name is required"),
    ({"principal": "User:a", "operation": "alter", "resource_type": "cluster", "resource_name": "c"},
     "kafka-cluster"),
    ({"principal": "User:a", "operation": "fly", "resource_type": "topic", "resource_name": "t"},
     "operation must be one of"),
])
def test_acl_invalid_entries_refused(entry, msg):
    with pytest.raises(ka.PlanError, match=msg):
        ka.run_acls(FakeBackend(), acl_params([entry]))


def test_acl_same_binding_present_and_absent_refused():
    entry = {"principal": "User:a", "operation": "read", "resource_type": "topic", "resource_name": "t"}
    be = FakeBackend()
    with pytest.raises(ka.PlanError, match="both present and absent"):
        ka.run_acls(be, acl_params([entry, {**entry, "state": "absent"}]))
    assert be.mutations == []


def test_acl_single_binding_needs_principal_operation_and_resource_type():
    with pytest.raises(ka.PlanError, match="operation is required"):
        ka.run_acls(FakeBackend(), acl_params(principal="User:a", resource_type="topic", resource_name="t"))


def test_acl_upper_case_values_normalized():
    entry = ka.normalize_acl({"principal": "User:a", "operation": "WRITE", "permission": "DENY",
                              "resource_type": "Topic", "resource_name": "t"})
    assert (entry["operation"], entry["permission"], entry["resource_type"]) == ("write", "deny", "topic")


# --------------------------------------------------------------------------------------------------
# SCRAM users
# --------------------------------------------------------------------------------------------------


def test_scram_created_with_password():
    be = FakeBackend()
    res = ka.run_scram_user(be, scram_params())
    assert res["changed"] is True and be.mutations == [("upsert_scram", "alice", "SCRAM-SHA-512", 8192)]
    assert be.passwords[("alice", "SCRAM-SHA-512")] == USER_PW
    assert res["diff"] == {"before": {"user": "alice", "mechanism": "SCRAM-SHA-512", "state": "absent"},
                           "after": {"user": "alice", "mechanism": "SCRAM-SHA-512", "state": "present",
                                     "iterations": 8192, "credential": "new"}}
    assert res["mechanisms"] == {"SCRAM-SHA-512": 8192} and res["iterations"] == 8192
    no_secret(res)


def test_scram_on_create_existing_is_a_no_op():
    be = FakeBackend(scram={"alice": {"SCRAM-SHA-512": 8192}})
    res = ka.run_scram_user(be, scram_params(password="a-different-one"))
    assert res["changed"] is False and be.mutations == []
    assert "on_create" in res["note"]
    assert res["diff"]["before"] == res["diff"]["after"]


def test_scram_always_sets_again_and_reports_changed():
    be = FakeBackend(scram={"alice": {"SCRAM-SHA-512": 8192}})
    res = ka.run_scram_user(be, scram_params(update_password="always"))
    assert res["changed"] is True and be.mutations == [("upsert_scram", "alice", "SCRAM-SHA-512", 8192)]
    assert res["actions"][0]["reason"] == "update_password"
    assert res["diff"]["after"]["credential"] == "replaced"
    assert ka.run_scram_user(be, scram_params(update_password="always"))["changed"] is True
    no_secret(res)


def test_scram_other_iterations_set_again_with_the_password():
    be = FakeBackend(scram={"alice": {"SCRAM-SHA-512": 4096}})
    res = ka.run_scram_user(be, scram_params(iterations=8192))
    assert be.mutations == [("upsert_scram", "alice", "SCRAM-SHA-512", 8192)]
    assert res["diff"]["before"]["iterations"] == 4096 and res["diff"]["after"]["iterations"] == 8192


@pytest.mark.parametrize("existing,kw,msg", [
    ({}, {"password": None}, "has no SCRAM-SHA-512 credential yet"),
    ({"alice": {"SCRAM-SHA-512": 4096}}, {"password": None}, "has 4096 iterations, not 8192"),
    ({"alice": {"SCRAM-SHA-512": 8192}}, {"password": "", "update_password": "always"}, "update_password is always"),
])
def test_scram_password_required_when_it_must_be_set(existing, kw, msg):
    be = FakeBackend(scram=existing)
    with pytest.raises(ka.PlanError) as exc:
        ka.run_scram_user(be, scram_params(**kw))
    assert "a password is required" in str(exc.value) and msg in str(exc.value)
    assert be.mutations == []


def test_scram_existing_without_password_is_fine():
    be = FakeBackend(scram={"alice": {"SCRAM-SHA-512": 8192}})
    res = ka.run_scram_user(be, scram_params(password=None))
    assert res["changed"] is False and "note" not in res


def test_scram_delete_only_the_mechanism_then_absent_is_a_no_op():
    be = FakeBackend(scram={"alice": {"SCRAM-SHA-512": 8192, "SCRAM-SHA-256": 4096}})
    res = ka.run_scram_user(be, scram_params(state="absent", mechanism="SCRAM-SHA-256", password=None))
    assert res["changed"] is True and be.mutations == [("delete_scram", "alice", "SCRAM-SHA-256")]
    assert res["mechanisms"] == {"SCRAM-SHA-512": 8192} and res["iterations"] is None
    assert res["diff"]["after"] == {"user": "alice", "mechanism": "SCRAM-SHA-256", "state": "absent"}
    again = ka.run_scram_user(be, scram_params(state="absent", mechanism="SCRAM-SHA-256"))
    assert again["changed"] is False and len(be.mutations) == 1


def test_scram_absent_for_unknown_user_is_a_no_op():
    be = FakeBackend()
    res = ka.run_scram_user(be, scram_params(state="absent"))
    assert res["changed"] is False and be.mutations == []


@pytest.mark.parametrize("iterations", [4095, 16385, 1])
def test_scram_iterations_out_of_bounds(iterations):
    with pytest.raises(ka.PlanError, match="iterations must be between 4096 and 16384"):
        ka.run_scram_user(FakeBackend(), scram_params(iterations=iterations))


@pytest.mark.parametrize("kw,existing", [({}, {}), ({"update_password": "always"}, {"alice": {"SCRAM-SHA-512": 8192}}),
                                         ({"state": "absent"}, {"alice": {"SCRAM-SHA-512": 8192}})],
                         ids=["create", "always", "delete"])
def test_scram_check_mode_changes_nothing(kw, existing):
    be = FakeBackend(scram=existing)
    res = ka.run_scram_user(be, scram_params(**kw), check_mode=True)
    assert res["changed"] is True and be.mutations == [] and be.passwords == {}
    no_secret(res)


def test_scram_plan_never_sees_the_password():
    plan = ka.plan_scram_user({"name": "alice", "mechanism": "SCRAM-SHA-512", "iterations": 8192,
                               "state": "present", "update_password": "on_create", "password_given": True}, {})
    assert plan["actions"] == [{"action": "upsert_scram", "user": "alice", "mechanism": "SCRAM-SHA-512",
                                "iterations": 8192, "reason": "create"}]


# --------------------------------------------------------------------------------------------------
# apply: partial failures say what was done
# --------------------------------------------------------------------------------------------------


def test_apply_failure_after_a_step_reports_what_was_done():
    be = FakeBackend(topics={"orders": {"partitions": 3, "replication_factor": 1}}, fail_on="alter_topic_configs")
    with pytest.raises(ka.KafkaAdminError) as exc:
        ka.run_topic(be, topic_params(partitions=4, configs={"retention.ms": "1"}))
    assert "already done: create_partitions" in str(exc.value)
    assert exc.value.result["changed"] is True
    assert [a["action"] for a in exc.value.result["actions"]] == ["create_partitions"]


def test_apply_failure_on_first_step_says_nothing_changed():
    be = FakeBackend(fail_on="create_topic")
    with pytest.raises(ka.KafkaAdminError, match="nothing was changed") as exc:
        ka.run_topic(be, topic_params())
    assert exc.value.result["changed"] is False


# --------------------------------------------------------------------------------------------------
# Connection options
# --------------------------------------------------------------------------------------------------


def test_client_config_sasl_ssl():
    conf = ka.client_config(conn(ssl_ca_location="/ca.pem", ssl_certificate_location="/c.pem",
                                 ssl_key_location="/k.pem"))
    assert conf == {"bootstrap.servers": "k1:9093", "security.protocol": "SASL_SSL", "client.id": "ansible-metal.kafka",
                    "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "admin", "sasl.password": SASL_PW,
                    "ssl.endpoint.identification.algorithm": "https", "ssl.ca.location": "/ca.pem",
                    "ssl.certificate.location": "/c.pem", "ssl.key.location": "/k.pem", "ssl.key.password": KEY_PW}


def test_client_config_no_hostname_check_and_plaintext():
    assert ka.client_config(conn(security_protocol="SSL", ssl_check_hostname=False))[
        "ssl.endpoint.identification.algorithm"] == "none"
    plain = ka.client_config(conn(security_protocol="PLAINTEXT"))
    assert not any(k.startswith(("sasl.", "ssl.")) for k in plain)
    warnings = ka.connection_warnings(conn(security_protocol="PLAINTEXT"))
    assert any("ignored" in w for w in warnings)
    no_secret(warnings)


def test_argument_spec_is_one_source_and_copied():
    spec = ka.argument_spec(name=dict(type="str"))
    assert set(ka.CONNECTION_ARGUMENT_SPEC) <= set(spec)
    assert spec["sasl_password"]["no_log"] and spec["ssl_key_password"]["no_log"]
    spec["timeout"]["default"] = 1
    assert ka.CONNECTION_ARGUMENT_SPEC["timeout"]["default"] == ka.DEFAULT_TIMEOUT


def test_doc_fragment_matches_the_argument_spec():
    import yaml
    from ansible_collections.metal.kafka.plugins.doc_fragments.kafka_admin import ModuleDocFragment

    options = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    assert set(options) == set(ka.CONNECTION_ARGUMENT_SPEC)
    for name, spec in ka.CONNECTION_ARGUMENT_SPEC.items():
        assert options[name]["type"] == spec["type"], name
        assert options[name].get("default") == spec.get("default"), name
        assert options[name].get("choices") == spec.get("choices"), name
        assert bool(options[name].get("required")) == bool(spec.get("required")), name


def test_missing_confluent_kafka_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "confluent_kafka", None)
    with pytest.raises(ka.KafkaAdminError, match="confluent-kafka") as exc:
        ka.ConfluentBackend(conn())
    no_secret(str(exc.value))


# --------------------------------------------------------------------------------------------------
# execute(): what reaches Ansible never holds a secret
# --------------------------------------------------------------------------------------------------


class Exited(Exception):
    pass


class StubModule:
    """Records what a module would report, without Ansible's own masking of no_log values."""

    def __init__(self, params, check_mode=False):
        self.params = params
        self.check_mode = check_mode
        self.warnings = []
        self.result = None
        self.failed = None

    def warn(self, msg):
        self.warnings.append(msg)

    def exit_json(self, **kw):
        self.result = kw
        raise Exited

    def fail_json(self, **kw):
        self.failed = kw
        raise Exited


RUNNERS = {"topic": (ka.run_topic, topic_params), "acl": (ka.run_acls, lambda: acl_params(
    principal="User:alice", operation="write", resource_type="topic", resource_name="orders")),
    "scram": (ka.run_scram_user, scram_params)}


def _execute(runner, params, factory, check_mode=False):
    module = StubModule(params, check_mode)
    with pytest.raises(Exited):
        ka.execute(module, runner, factory, secrets=[params.get("password")])
    return module


@pytest.mark.parametrize("which", sorted(RUNNERS))
def test_execute_success_has_no_secret(which):
    runner, make = RUNNERS[which]
    be = FakeBackend()
    module = _execute(runner, make(), lambda p: be)
    assert module.result["changed"] is True and module.failed is None and be.closed
    no_secret(module.result)


@pytest.mark.parametrize("which", sorted(RUNNERS))
def test_execute_backend_error_holding_the_config_is_masked(which):
    runner, make = RUNNERS[which]
    params = make()
    leaky = f"conf={ka.client_config(params)} password={params.get('password')}"

    def factory(p):
        return FakeBackend(fail_on={"topic": "create_topic", "acl": "create_acls", "scram": "upsert_scram"}[which],
                           fail_msg=leaky)

    module = _execute(runner, params, factory)
    assert module.failed and "failed" in module.failed["msg"] and ka.MASK in module.failed["msg"]
    no_secret(module.failed)
    no_secret(module.warnings)


@pytest.mark.parametrize("which", sorted(RUNNERS))
def test_execute_backend_construction_error_and_unexpected_exception_are_masked(which):
    runner, make = RUNNERS[which]
    params = make()

    def broken_factory(p):
        raise ka.KafkaAdminError(f"cannot create the Kafka admin client: {ka.client_config(p)}")

    module = _execute(runner, params, broken_factory)
    assert module.failed["msg"].startswith("cannot create the Kafka admin client")
    no_secret(module.failed)

    class Exploding(FakeBackend):
        def describe_topics(self, names):
            raise RuntimeError(f"unexpected with {SASL_PW} {KEY_PW} {params.get('password')}")

        describe_acls = scram_users = describe_topics

    module = _execute(runner, params, lambda p: Exploding())
    assert module.failed["msg"].startswith("unexpected RuntimeError")
    no_secret(module.failed)


def test_execute_warnings_are_masked():
    params = topic_params(security_protocol="PLAINTEXT", ssl_key_password=KEY_PW)
    module = _execute(ka.run_topic, params, lambda p: FakeBackend())
    assert module.warnings and module.result
    no_secret(module.warnings)


def test_execute_check_mode_passes_through():
    be = FakeBackend()
    module = _execute(ka.run_scram_user, scram_params(), lambda p: be, check_mode=True)
    assert module.result["changed"] is True and be.mutations == []


def test_redact_masks_longest_secret_first():
    assert ka.redact("ab abc", ka.secret_values({"sasl_password": "ab"}, ["abc"])) == f"{ka.MASK} {ka.MASK}"
    assert ka.scrub({"k": ["x abc", 1, None]}, ["abc"]) == {"k": [f"x {ka.MASK}", 1, None]}
