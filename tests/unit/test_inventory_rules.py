"""The rules of a sound inventory (module_utils/inventory_rules.py and their use in inventory.py), each on
its message: what is wrong, the variable as the operator writes it, and the fix."""

import pytest
from ansible_collections.metal.kafka.plugins.module_utils import cluster, inventory
from ansible_collections.metal.kafka.plugins.module_utils import inventory_rules as rules

from tests.unit.test_inventory import cluster as make_cluster


def errors(exists=None, **kw):
    groups, resolved = make_cluster(**kw)
    hosts = [h for g in groups.values() for h in g]
    return inventory.inventory_errors(hosts, groups, resolved, exists=exists)


def one(out, *fragments):
    """Exactly one message, holding every fragment."""
    assert len(out) == 1, out
    for fragment in fragments:
        assert fragment in out[0], (fragment, out[0])
    return out[0]


# --- listener ports --------------------------------------------------------------------------------------

def test_two_listeners_of_a_broker_on_one_port():
    one(errors(common={"broker_internal_port": 9092}),
        "hosts b1, b2, b3: broker_client_port and broker_internal_port are all 9092",
        "each listener of a host needs a port of its own")


def test_a_combined_node_clashes_its_controller_port_with_a_broker_port():
    groups, resolved = make_cluster(controllers=3, brokers=0)
    groups["kafka_brokers"] = list(groups["kafka_controllers"])
    for v in resolved.values():
        v["kafka_controller_port"] = 9091
    out = inventory.inventory_errors(groups["kafka_controllers"], groups, resolved)
    one(out, "hosts c1, c2, c3: broker_internal_port and kafka_controller_port are all 9091")


def test_a_dedicated_controller_does_not_listen_on_broker_ports():
    assert errors(per_host={"c1": {"broker_client_port": 9093}}) == []


@pytest.mark.parametrize("value", [0, 70000, "http", None, True])
def test_ports_out_of_range(value):
    one(errors(per_host={"b2": {"broker_client_port": value}}),
        f"host b2: broker_client_port must be a port number from 1 to 65535, got {value!r}")


def test_the_jmx_port_counts_when_it_is_on():
    one(errors(per_host={"c1": {"kafka_jmx_port": 9093}}), "host c1: kafka_controller_port and kafka_jmx_port")
    assert errors(common={"kafka_jmx_port": 0}) == []


@pytest.mark.parametrize("value,fragment", [
    ("kafka1.example.net:9092", "carries a port: give the host alone"),
    ("SASL_SSL://kafka1.example.net", "is a URL"),
    ("a.example.net,b.example.net", "holds spaces or commas"),
    ("", "kafka_advertised_host is empty"),
    ("[::1]:9092", "carries a port"),
])
def test_advertised_host_is_a_bare_host(value, fragment):
    one(errors(per_host={"b1": {"kafka_advertised_host": value}}), "host b1: ", fragment)


@pytest.mark.parametrize("value", ["10.0.0.5", "kafka1.example.net", "fe80::1", "[2001:db8::1]"])
def test_advertised_hosts_that_are_fine(value):
    assert errors(per_host={"b1": {"kafka_advertised_host": value}}) == []


def test_two_nodes_advertising_the_same_host_and_port():
    out = errors(per_host={"b1": {"kafka_advertised_host": "kafka.example.net"},
                           "b2": {"kafka_advertised_host": "Kafka.example.net"}})
    assert out == [
        "inventory: b1, b2 all advertise kafka.example.net:9091: clients and other nodes could not tell them apart; "
        "give each node its own kafka_advertised_host (or its own port)",
        "inventory: b1, b2 all advertise kafka.example.net:9092: clients and other nodes could not tell them apart; "
        "give each node its own kafka_advertised_host (or its own port)"]


def test_two_brokers_on_one_address_with_their_own_ports_are_fine():
    assert errors(per_host={"b1": {"kafka_advertised_host": "10.0.0.9"},
                            "b2": {"kafka_advertised_host": "10.0.0.9", "broker_client_port": 19092,
                                   "broker_internal_port": 19091}}) == []


# --- versions, ids, sizes ---------------------------------------------------------------------------------

def test_a_version_with_spaces():
    one(errors(common={"kafka_version": " 4.1.1"}), "every host (6): kafka_version ' 4.1.1' has spaces around it",
        'write it as "4.1.1"')


def test_a_major_version_kafka_metal_does_not_know():
    one(errors(common={"kafka_version": "5.0.0"}), "kafka_version 5.0.0 is not a release kafka-metal knows")
    assert cluster.version_errors("3.9.1") == [] and cluster.version_errors("4.2.0") == []


def test_a_node_id_beyond_kafkas_range():
    one(errors(per_host={"b3": {"kafka_node_id": 2**31}}),
        "inventory: host b3: kafka_node_id 2147483648 is beyond Kafka's range: use a whole number from 0 to "
        "2147483647")


def test_a_broker_id_above_the_reserved_maximum_in_zookeeper_mode():
    common = {"kafka_metadata_mode": "zookeeper", "kafka_version": "3.9.1", "kafka_security_protocol": "SASL_SSL",
              "kafka_admin_password": "a-long-enough-secret"}
    one(errors(controllers=0, zookeepers=3, common=common, per_host={"b1": {"kafka_node_id": 1001}}),
        "host b1: kafka_node_id 1001 is above reserved.broker.max.id (1000)", "use an id from 0 to 1000")
    # raised by the operator, or id generation off: fine
    raised = {**common, "broker_properties": {"reserved.broker.max.id": "5000"}}
    assert errors(controllers=0, zookeepers=3, common=raised, per_host={"b1": {"kafka_node_id": 1001}}) == []
    # KRaft has no such limit
    assert errors(per_host={"b1": {"kafka_node_id": 1001}}) == []


@pytest.mark.parametrize("name,value,floor", [("broker_heap_size", "64m", "128m"),
                                              ("controller_heap_size", "100m", "128m")])
def test_a_heap_below_what_kafka_starts_with(name, value, floor):
    out = errors(common={name: value})
    one(out, f"{name} {value} is below the {floor} the process needs", f"use at least {floor} (or auto)")


def test_zookeeper_heap_floor():
    assert rules.heap_problems("zookeeper_heap_size", "32m") == [
        "zookeeper_heap_size 32m is below the 128m the process needs to start and serve: use at least 128m (or auto)"]
    assert rules.heap_problems("zookeeper_heap_size", "512m") == []


# --- storage ----------------------------------------------------------------------------------------------

def test_the_same_log_dir_twice():
    one(errors(common={"broker_log_dirs": ["/data/kafka", "/data/kafka/"]}),
        "hosts b1, b2, b3: broker_log_dirs lists /data/kafka twice")


def test_log_dirs_nested_inside_each_other():
    one(errors(common={"broker_log_dirs": ["/data", "/data/kafka"]}),
        "broker_log_dirs entry /data/kafka is inside /data (broker_log_dirs)", "side by side")


def test_data_disk_paths_nested():
    disks = [{"device": "/dev/sdb", "path": "/srv/kafka"}, {"device": "/dev/sdc", "path": "/srv/kafka/d2"}]
    one(errors(common={"tuning_data_disks": disks}), "tuning_data_disks entry /srv/kafka/d2 is inside /srv/kafka")


def test_the_metadata_dir_inside_a_log_dir():
    one(errors(common={"kafka_metadata_dir": "/var/lib/kafka/data/meta"}),
        "hosts b1, b2, b3: kafka_metadata_dir /var/lib/kafka/data/meta is inside /var/lib/kafka/data")
    # one of the log dirs itself is Kafka's own default
    assert errors(common={"kafka_metadata_dir": "/var/lib/kafka/data"}) == []


# --- replication ------------------------------------------------------------------------------------------

def test_min_insync_replicas_above_the_replication_factor():
    one(errors(common={"broker_properties": {"default.replication.factor": "2", "min.insync.replicas": "3"}}),
        "broker_properties.min.insync.replicas is 3, above default.replication.factor (2)")


def test_min_insync_replicas_above_the_default_replication_factor_alone():
    # kafka-metal's default factor for 3 brokers is 3
    one(errors(common={"broker_properties": {"min.insync.replicas": "4"}}),
        "min.insync.replicas is 4, above default.replication.factor (3)")


def test_a_default_replication_factor_above_the_broker_count():
    one(errors(common={"broker_properties": {"default.replication.factor": "4"}}),
        "broker_properties.default.replication.factor is 4 but the cluster has 3 brokers", "use at most 3")


def test_internal_topics_replication_above_the_broker_count():
    out = errors(brokers=1, common={"broker_properties": {"offsets.topic.replication.factor": "3"}})
    one(out, "offsets.topic.replication.factor is 3 but the cluster has 1 broker:")


# --- settings kafka-metal owns ----------------------------------------------------------------------------

@pytest.mark.parametrize("var,key,fix", [
    ("broker_properties", "node.id", "set kafka_node_id instead"),
    ("broker_properties", "listeners", "broker_client_port, broker_internal_port and kafka_controller_port"),
    ("broker_properties", "advertised.listeners", "kafka_advertised_host"),
    ("broker_properties", "log.dirs", "broker_log_dirs (or tuning_data_disks)"),
    ("controller_properties", "process.roles", "the host's groups"),
    ("controller_properties", "controller.quorum.voters", "the kafka_controllers group"),
    ("broker_properties", "inter.broker.listener.name", "brokers always talk over the INTERNAL listener"),
])
def test_settings_kafka_metal_owns(var, key, fix):
    out = errors(common={var: {key: "x"}})
    one(out, f"{var} sets {key}, which kafka-metal writes itself: remove it", fix)


def test_zookeeper_settings_kafka_metal_owns():
    assert rules.owned_setting_problems("zookeeper_properties", {"server.1": "a:2888:3888", "dataDir": "/x",
                                                                 "tickTime": "3000"},
                                        rules.OWNED_ZOOKEEPER_SETTINGS) == [
        "zookeeper_properties sets dataDir, which kafka-metal writes itself: remove it and set zookeeper_data_dir "
        "instead",
        "zookeeper_properties sets server.1, which kafka-metal writes itself: remove it and set the zookeeper group "
        "(each member's zookeeper_id and ports) instead"]


def test_other_settings_stay_the_operators():
    assert errors(common={"broker_properties": {"num.partitions": "6", "log.retention.hours": "48"}}) == []


# --- files on the controller ------------------------------------------------------------------------------

def test_files_that_are_not_on_the_controller():
    have = {"/srv/ca.pem"}
    out = errors(exists=have.__contains__,
                 common={"kafka_archive_src": "/srv/kafka.tgz",
                         "kafka_tls_byo": {"ca_bundle": "/srv/ca.pem", "certificate": "/srv/b.pem"}})
    assert out == [
        "every host (6): kafka_archive_src /srv/kafka.tgz does not exist on the controller: fix the path, or leave "
        "kafka_archive_src empty to download kafka_archive_url",
        "every host (6): kafka_tls_byo.certificate /srv/b.pem does not exist on the controller: give the path of the "
        "PEM file on the machine that runs the playbook"]


# --- declarative state ------------------------------------------------------------------------------------

@pytest.mark.parametrize("topic,fragment", [
    ({"name": "orders", "partitions": 0}, "kafka_topics entry orders: partitions must be a whole number of at least 1"),
    ({"name": "orders", "replication_factor": 4}, "replication_factor 4 is more than the 3 brokers"),
    ({"name": "bad name!"}, "'bad name!' is not a name Kafka accepts"),
    ({"name": ".."}, "'..' is not a name Kafka accepts"),
    ({"name": "x" * 250}, "is not a name Kafka accepts"),
    ({"name": "orders", "replicas": 3}, "kafka_topics entry orders has the unknown key replicas (known: name, "
                                        "partitions, replication_factor, configs, state)"),
    ({"name": "orders", "partition": 3}, "has the unknown key partition (did you mean partitions?)"),
    ({"name": "orders", "replication_factor": 2, "configs": {"min.insync.replicas": "3"}},
     "min.insync.replicas 3 is above its replication_factor 2"),
    ({"partitions": 3}, "kafka_topics[0] has no name"),
])
def test_topics_kafka_would_refuse(topic, fragment):
    one(rules.topic_problems([topic], 3, 2), fragment)


def test_topics_that_collide():
    one(rules.topic_problems([{"name": "a.b"}, {"name": "a_b"}], 3), "a.b and a_b collide")
    one(rules.topic_problems([{"name": "a"}, {"name": "a"}], 3), "kafka_topics lists a twice")


@pytest.mark.parametrize("acl,fragment", [
    ({"principal": "User:alice", "operation": "push", "resource_type": "topic", "resource_name": "t"},
     "kafka_acls[0]: ACL operation must be one of"),
    ({"principal": "alice", "operation": "read", "resource_type": "topic", "resource_name": "t"},
     "ACL principal must look like User:alice (type:name), got 'alice'"),
    ({"principal": "User:alice", "operation": "read", "resource_type": "topic"}, "resource_name is required"),
    ({"principal": "User:alice", "operation": "read", "resource_type": "topic", "resource_name": "t",
      "resource": "x"}, "kafka_acls[0] has the unknown key resource"),
])
def test_acls_kafka_would_refuse(acl, fragment):
    one(rules.acl_problems([acl]), fragment)


def test_an_acl_both_present_and_absent():
    acl = {"principal": "User:a", "operation": "read", "resource_type": "topic", "resource_name": "t"}
    one(rules.acl_problems([acl, {**acl, "state": "absent"}]), "is listed both present and absent")


@pytest.mark.parametrize("user,fragment", [
    ({"name": "billing"}, "kafka_users entry billing has no password"),
    ({"name": "billing", "password": ""}, "has no password"),
    ({"name": "billing", "password": "x", "mechanism": "SCRAM-SHA-1"}, "mechanism must be one of SCRAM-SHA-512"),
    ({"name": "billing", "password": "x", "iterations": 100}, "iterations must be from 4096 to 16384"),
    ({"password": "x"}, "kafka_users[0] has no name"),
    ({"name": "billing", "pasword": "x"}, "has the unknown key pasword (did you mean password?)"),
])
def test_users_that_cannot_be_applied(user, fragment):
    out = rules.user_problems([user])
    assert any(fragment in e for e in out), out


def test_an_absent_user_needs_no_password():
    assert rules.user_problems([{"name": "old", "state": "absent"}]) == []


def test_declarative_state_is_checked_for_the_brokers_once():
    out = errors(common={"kafka_topics": [{"name": "t", "partitions": 0}]})
    one(out, "hosts b1, b2, b3: kafka_topics entry t: partitions must be a whole number of at least 1")


# --- groups, names, nothing to do ------------------------------------------------------------------------

def test_zookeeper_hosts_in_a_kraft_cluster():
    out = errors(zookeepers=3)
    one(out, "inventory: z1, z2, z3 are in the zookeeper group, but kafka_metadata_mode is kraft",
        "take them out of the group, or set kafka_metadata_mode: zookeeper")


def test_an_inventory_without_kafka_hosts():
    text = rules.no_hosts_problem({"all": ["b1"], "ungrouped": [], "kafka_broker": ["b1"]}, ["hosts.yml"])
    assert text == ("the inventory (hosts.yml) has no host in kafka_controllers, kafka_brokers or zookeeper, so "
                    "there is nothing to do: the group kafka_broker (did you mean kafka_brokers?) is not "
                    "kafka-metal's: rename it, or make it a child of kafka-metal's groups")
    assert "holds no host at all" in rules.no_hosts_problem({"all": [], "ungrouped": []}, ["/nonexistent"])
    assert "put the hosts in those groups" in rules.no_hosts_problem({"all": ["h"], "ungrouped": ["h"]})


def test_a_misspelt_setting_is_warned_about():
    known = ["kafka_admin_password", "broker_log_dirs", "kafka_cache_dir"]
    assert rules.misspelt_setting_warnings(
        ["kafka_admin_pasword", "broker_log_dir", "kafka_metal_cache_dir", "vault_kafka_admin_password",
         "my_own_variable", "kafka_admin_password"], known) == [
        "broker_log_dir is not a kafka-metal setting, and nothing reads it: did you mean broker_log_dirs?",
        "kafka_admin_pasword is not a kafka-metal setting, and nothing reads it: did you mean kafka_admin_password?"]


def test_an_undefined_vault_variable_says_where_it_goes():
    text = rules.undefined_problem("kafka_admin_password", "vault_kafka_admin_password")
    assert text.startswith("kafka_admin_password uses vault_kafka_admin_password, which is not defined: put "
                           "vault_kafka_admin_password in an encrypted vault file (for example "
                           "group_vars/all/vault.yml")
    assert "define my_var in the inventory" in rules.undefined_problem("kafka_cluster_name", "my_var")


def test_a_vars_file_beside_a_directory_of_the_same_name_is_never_read():
    assert rules.shadowed_vars_files({"/inv/group_vars": [("all.yml", False), ("all", True), ("brokers.yml", False)],
                                      "/inv/host_vars": [("b1.yaml", False)]}) == [
        "/inv/group_vars/all.yml is never read, because /inv/group_vars/all/ exists (Ansible then reads only the "
        "directory): move it to /inv/group_vars/all/main.yml"]


class Unresolved(dict):
    problems = ("kafka_admin_password uses vault_x, which is not defined: ...",)
    unresolved = {"kafka_admin_password"}


def test_what_follows_from_an_unresolved_value_is_not_reported_again():
    groups, resolved = make_cluster(common={"kafka_security_protocol": "SASL_SSL"})
    resolved = {h: Unresolved(v) for h, v in resolved.items()}
    out = inventory.inventory_errors(list(resolved), groups, resolved)
    assert out == ["every host (6): kafka_admin_password uses vault_x, which is not defined: ..."]


def test_argument_spec_failures_in_one_line():
    assert rules.spec_message("argument 'tuning_swap_off' is of type str and we were unable to convert to bool: The "
                              "value 'maybe' is not a valid boolean. Valid booleans include: 0, 1, 'yes'",
                              {"tuning_swap_off": "maybe"}) == "tuning_swap_off must be true or false, got 'maybe'"
    assert rules.spec_message("value of kafka_metadata_mode must be one of: kraft, zookeeper, got: etcd", {}) == \
        "kafka_metadata_mode must be one of kraft, zookeeper, got etcd"
    assert rules.spec_names("broker_client_port must be a whole number, got 'abc'") == "broker_client_port"


def test_a_spec_failure_is_not_reported_again_by_the_rules():
    groups, resolved = make_cluster(common={"broker_client_port": "abc"})
    hosts = list(resolved)
    spec = {h: ["broker_client_port must be a whole number, got 'abc'"] for h in groups["kafka_brokers"]}
    assert inventory.inventory_errors(hosts, groups, resolved, spec) == [
        "hosts b1, b2, b3: broker_client_port must be a whole number, got 'abc'"]


def test_settings_of_an_older_layout_name_the_one_setting_now():
    out = errors(per_host={"b1": {"tuning_limit_nofile": 200000}, "b2": {"kafka_java_home": "/opt/jdk"}})
    assert out == [
        "inventory: kafka_java_home is set (b2), but no role reads it: set java_home instead, the one setting for it",
        "inventory: tuning_limit_nofile is set (b1), but no role reads it: set kafka_limit_nofile instead, the one "
        "setting for it"]


def test_a_malformed_zookeeper_heap_is_reported():
    common = {"kafka_metadata_mode": "zookeeper", "kafka_version": "3.9.1", "kafka_security_protocol": "SASL_SSL",
              "kafka_admin_password": "a-long-enough-secret"}
    one(errors(controllers=0, zookeepers=3, common=common, per_host={"z2": {"zookeeper_heap_size": "lots"}}),
        "host z2: zookeeper_heap_size must be a size like 512m or 6g (or 'auto'), got 'lots'")
