"""site.yml refuses a bad inventory before touching any host, with a message that says the fix.

The hosts here point at a closed port on the loopback address: were validation to let a bad
inventory through, the next play would fail as UNREACHABLE (and nothing leaves this machine),
so the test can tell "refused by validation" from "got as far as connecting".
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHECKSUM = "ab" * 64


def inventory(controllers=3, brokers=3, ids=None, zookeepers=0, zk_ids=None, advertised=None, **group_vars):
    """Hosts that all point at 127.0.0.1:1; each advertises a name of its own (``advertised``: one for all)."""
    ids, zk_ids = ids or {}, zk_ids or {}
    hosts = {}
    c = {f"c{i}": {"kafka_node_id": ids.get(f"c{i}", i)} for i in range(1, controllers + 1)}
    b = {f"b{i}": {"kafka_node_id": ids.get(f"b{i}", 100 + i)} for i in range(1, brokers + 1)}
    z = {f"z{i}": {"zookeeper_id": zk_ids.get(f"z{i}", i)} for i in range(1, zookeepers + 1)}
    for name in list(c) + list(b) + list(z):
        hosts[name] = {"ansible_host": "127.0.0.1", "ansible_port": 1,
                       "kafka_advertised_host": advertised or f"{name}.example.net",
                       "zookeeper_advertised_host": advertised or f"{name}.example.net"}
    all_vars = {"kafka_archive_checksum": CHECKSUM, "kafka_admin_password": "a-long-enough-admin-secret",
                **group_vars}
    return {"all": {"vars": all_vars, "hosts": hosts,
                    "children": {"kafka_controllers": {"hosts": c}, "kafka_brokers": {"hosts": b},
                                 "zookeeper": {"hosts": z}}}}


def zk_inventory(zookeepers=3, **kw):
    kw.setdefault("kafka_version", "3.9.1")
    return inventory(controllers=0, zookeepers=zookeepers, kafka_metadata_mode="zookeeper", **kw)


def run_text(tmp_path, text, name="hosts.yml", playbook="site.yml"):
    """A playbook (site.yml) against an inventory written as ``text`` (YAML that a dump could not produce, too)."""
    path = tmp_path / name
    path.write_text(text)
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"))
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), playbook, "-i", str(path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def run_site(tmp_path, inv):
    return run_text(tmp_path, yaml.safe_dump(inv))


CASES = {
    "become method": (inventory(ansible_user="ops", ansible_become_method="su"),
                      "ansible_become_method=su: the rolling engine becomes root with sudo only"),
    "malformed jump host": (inventory(ansible_ssh_common_args="-J ops@bastion:ssh"),
                            "the jump host 'ops@bastion:ssh' is not [user@]host[:port]"),
    "even controllers": (inventory(controllers=2), "kafka_controllers has 2 hosts: a KRaft quorum needs an odd"),
    "zero controllers": (inventory(controllers=0), "group kafka_controllers is empty: KRaft needs controllers"),
    "duplicate node ids": (inventory(ids={"b2": 101}), "kafka_node_id 101 is used by b1, b2"),
    "log.dirs is /": (inventory(broker_log_dirs=["/"]), "broker_log_dirs entry '/' is a system directory"),
    "log.dirs empty": (inventory(broker_log_dirs=[]), "broker_log_dirs is empty"),
    # the role's argument spec (choices) catches this one before the validator does
    "unknown mode": (inventory(kafka_metadata_mode="etcd"),
                     "kafka_metadata_mode must be one of kraft, zookeeper, got etcd"),
    "malformed version": (inventory(kafka_version="4.1"), "kafka_version '4.1' is malformed"),
    "YAML boolean": (inventory(broker_properties={"auto.create.topics.enable": True}),
                     "broker_properties.auto.create.topics.enable is the YAML boolean True"),
    "checksum missing": (inventory(kafka_archive_checksum=""),
                         "kafka_archive_checksum is missing for a URL install"),
    "zookeeper mode on kafka 4": (zk_inventory(kafka_version="4.1.1"),
                                  "kafka_version 4.1.1 has no ZooKeeper support"),
    "admin password missing": (inventory(kafka_admin_password=""),
                               "kafka_admin_password is empty but SASL is enabled"),
    "internal listener SSL only": (inventory(kafka_listener_protocols={"internal": "SSL"}),
                                   "the internal listener cannot use SSL without SASL"),
    "unknown listener": (zk_inventory(kafka_listener_protocols={"controller": "SASL_SSL"}),
                         "kafka_listener_protocols has unknown listener 'controller'"),
    "even ensemble": (zk_inventory(zookeepers=2), "the zookeeper group has 2 hosts: an ensemble needs an odd"),
    "duplicate myid": (zk_inventory(zk_ids={"z3": 1}), "zookeeper_id 1 is used by z1, z3"),
    "brokers without zookeeper": (zk_inventory(zookeepers=0), "the zookeeper group is empty: brokers need an"),
    "setting of an older layout": (inventory(zookeeper_java_home="/opt/jdk-17"),
                                   "zookeeper_java_home is set (b1, b2, b3, c1, c2, c3), but no role reads it: set "
                                   "java_home instead"),
    "group renamed": (inventory(kafka_brokers_group="brokers_east"),
                      "kafka_brokers_group is set (b1, b2, b3, c1, c2, c3), but the inventory groups have fixed names"),
    "expression that cannot resolve": (inventory(kafka_cluster_name="{{ no_such_variable }}"),
                                       "kafka_cluster_name uses no_such_variable, which is not defined: define "
                                       "no_such_variable in the inventory"),
    "one problem on every broker, reported once": (inventory(broker_heap_size="lots"),
                                                   "hosts b1, b2, b3: broker_heap_size must be a size like 512m"),
    "wrong type, in one line": (inventory(broker_client_port="abc"),
                                "hosts b1, b2, b3: broker_client_port must be a whole number, got 'abc'\n"),
    "controllers in zookeeper mode": (inventory(controllers=3, zookeepers=3, kafka_metadata_mode="zookeeper",
                                                kafka_version="3.9.1"),
                                      "in ZooKeeper mode the controller is one of the brokers"),
}


# One mistake of every kind the rules know, several to a run (each rule alone is unit-tested on its message in
# tests/unit/test_inventory_rules.py): every one is reported, before any host is touched.
def _with_hosts(inv, **host_vars):
    for name, values in host_vars.items():
        inv["all"]["hosts"][name].update(values)
    return inv


MISTAKES_AT_ONCE = {
    "listeners, versions, ids and sizes, storage": (
        _with_hosts(inventory(kafka_version="4.1.1 ", broker_heap_size="64m",
                              broker_log_dirs=["/data", "/data/kafka", "/data/kafka/"]),
                    c1={"kafka_controller_port": 70000}, c2={"kafka_jmx_port": 9093},
                    b1={"broker_internal_port": 9092}, b2={"kafka_advertised_host": "kafka.example.net:9092"},
                    b3={"kafka_node_id": 2**31}, c3={"kafka_advertised_host": "c2.example.net"}),
        ["host c1: kafka_controller_port must be a port number from 1 to 65535, got 70000",
         "host c2: kafka_controller_port and kafka_jmx_port are all 9093",
         "host b1: broker_client_port and broker_internal_port are all 9092",
         "host b2: kafka_advertised_host 'kafka.example.net:9092' carries a port",
         "c2, c3 all advertise c2.example.net:9093",
         "every host (6): kafka_version '4.1.1 ' has spaces around it",
         "kafka_node_id 2147483648 is beyond Kafka's range",
         "hosts b1, b2, b3: broker_heap_size 64m is below the 128m",
         "broker_log_dirs lists /data/kafka twice",
         "broker_log_dirs entry /data/kafka is inside /data"]),
    "replication, owned settings, controller files, declarative state": (
        inventory(broker_properties={"default.replication.factor": "2", "min.insync.replicas": "3", "node.id": "7"},
                  controller_properties={"listeners": "CONTROLLER://:9093"},
                  kafka_archive_src="/nonexistent/kafka_2.13-4.1.1.tgz",
                  kafka_tls_byo={"certificate": "/nonexistent/b1.pem"},
                  kafka_topics=[{"name": "orders", "partitions": 0}, {"name": "audit", "replication_factor": 4}],
                  kafka_acls=[{"principal": "User:a", "operation": "push", "resource_type": "topic",
                               "resource_name": "t"},
                              {"principal": "alice", "operation": "read", "resource_type": "topic",
                               "resource_name": "t"}],
                  kafka_users=[{"name": "billing"}]),
        ["broker_properties.min.insync.replicas is 3, above default.replication.factor (2)",
         "broker_properties sets node.id, which kafka-metal writes itself",
         "controller_properties sets listeners, which kafka-metal writes itself",
         "kafka_archive_src /nonexistent/kafka_2.13-4.1.1.tgz does not exist on the controller",
         "kafka_tls_byo.certificate /nonexistent/b1.pem does not exist",
         "kafka_topics entry orders: partitions must be a whole number of at least 1",
         "kafka_topics entry audit: replication_factor 4 is more than the 3 brokers",
         "kafka_acls[0]: ACL operation must be one of",
         "kafka_acls[1]: ACL principal must look like User:alice",
         "kafka_users entry billing has no password"]),
    "groups, versions, secrets": (
        inventory(zookeepers=3, kafka_version="5.0.0", kafka_admin_password="{{ vault_kafka_admin_password }}",
                  broker_properties={"default.replication.factor": "5"}),
        ["z1, z2, z3 are in the zookeeper group, but kafka_metadata_mode is kraft",
         "kafka_version 5.0.0 is not a release kafka-metal knows",
         "kafka_admin_password uses vault_kafka_admin_password, which is not defined: put vault_kafka_admin_password "
         "in an encrypted vault file",
         "default.replication.factor is 5 but the cluster has 3 brokers"]),
}


@pytest.mark.parametrize("case", sorted(MISTAKES_AT_ONCE))
def test_every_kind_of_mistake_refused_before_any_host_changes(tmp_path, case):
    inv, expected = MISTAKES_AT_ONCE[case]
    rc, out = run_site(tmp_path, inv)
    assert rc != 0 and "The inventory is not valid; nothing was changed" in out
    missing = [e for e in expected if e not in out]
    assert not missing, (missing, out[-4000:])
    assert "UNREACHABLE" not in out, "validation let a bad inventory through to a host play"


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_inventory_refused_before_any_host_changes(tmp_path, case):
    inv, expected = CASES[case]
    rc, out = run_site(tmp_path, inv)
    assert rc != 0
    assert ("The inventory is not valid; nothing was changed" in out
            or "Validation of arguments failed" in out)
    assert expected in out, out[-3000:]
    assert "UNREACHABLE" not in out, "validation let a bad inventory through to a host play"


NOTHING_TO_DO = {
    "empty inventory": ("all: {}\n", "has no host in kafka_controllers, kafka_brokers or zookeeper"),
    "misspelt groups": ("all:\n  children:\n    kafka_broker:\n      hosts:\n        b1: {ansible_port: 1}\n",
                        "the group kafka_broker (did you mean kafka_brokers?) is not kafka-metal's"),
    "unparsable inventory": ("all:\n  children: [kafka_brokers\n", "Unable to parse"),
    "duplicate key": ("all:\n  hosts:\n    b1: {kafka_node_id: 1}\n  hosts:\n    b2: {kafka_node_id: 2}\n",
                      "Found duplicate mapping key 'hosts'"),
}


@pytest.mark.parametrize("case", sorted(NOTHING_TO_DO))
def test_an_inventory_with_nothing_to_do_fails(tmp_path, case):
    text, expected = NOTHING_TO_DO[case]
    rc, out = run_text(tmp_path, text)
    assert rc != 0, out[-3000:]
    assert expected in out, out[-3000:]
    assert "UNREACHABLE" not in out


def test_the_state_playbook_alone_validates_first(tmp_path):
    """playbooks/kafka_state.yml run by itself refuses a topic Kafka would refuse before any connection,
    and an inventory with nothing to do."""
    inv = inventory(kafka_topics=[{"name": "orders", "partitions": 0}])
    rc, out = run_text(tmp_path, yaml.safe_dump(inv), playbook="playbooks/kafka_state.yml")
    assert rc != 0 and "UNREACHABLE" not in out, out[-3000:]
    assert "partitions" in out and "orders" in out, out[-3000:]
    rc, out = run_text(tmp_path, "all:\n  hosts: {}\n", playbook="playbooks/kafka_state.yml")
    assert rc != 0 and "UNREACHABLE" not in out, out[-3000:]


def test_a_misspelt_setting_is_warned_about(tmp_path):
    rc, out = run_site(tmp_path, inventory(kafka_admin_pasword="x"))
    assert "kafka_admin_pasword is not a kafka-metal setting, and nothing reads it: did you mean " \
           "kafka_admin_password?" in out, out[-3000:]
    assert "UNREACHABLE" in out  # a warning, not a refusal


def test_every_problem_reported_at_once(tmp_path):
    rc, out = run_site(tmp_path, inventory(controllers=2, kafka_version="4.1", broker_log_dirs=["/"],
                                           tuning_thp_enabled="sometimes"))
    assert rc != 0 and "UNREACHABLE" not in out
    for expected in ("kafka_controllers has 2 hosts", "kafka_version '4.1' is malformed",
                     "hosts b1, b2, b3: broker_log_dirs entry '/' is a system directory",
                     "tuning_thp_enabled must be one of always, madvise, never"):
        assert expected in out, (expected, out[-3000:])


def test_brokers_without_controllers_refused(tmp_path):
    inv = inventory(controllers=0)
    del inv["all"]["children"]["kafka_controllers"]
    rc, out = run_site(tmp_path, inv)
    assert rc != 0 and "group kafka_controllers is empty" in out and "UNREACHABLE" not in out


@pytest.mark.parametrize("inv", [inventory(), zk_inventory()], ids=["kraft", "zookeeper"])
def test_valid_inventory_gets_past_validation(tmp_path, inv):
    rc, out = run_site(tmp_path, inv)
    assert rc != 0  # nobody listens on port 1
    assert "The inventory is not valid" not in out
    assert "UNREACHABLE" in out


# One part of the tuning runs alone with its tag: the role is imported (a dynamic include with no
# tag of its own would be skipped with every task in it), and the facts every part reads carry
# every part's tag.
PART_TASKS = {
    "thp": ["Transparent huge pages at every boot", "Apply the huge pages modes now"],
    "sysctl": ["Kernel settings"],
    "luks": ["tuning : Data disks"],  # the include of disks.yml, whose LUKS tasks carry the tag
    "disks": ["tuning : Data disks"],
}


@pytest.mark.parametrize("playbook", ["site.yml", "playbooks/tuning.yml"])
@pytest.mark.parametrize("tag", sorted(PART_TASKS))
def test_one_tuning_part_runs_alone_by_its_tag(tmp_path, playbook, tag):
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(inventory()))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"))
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), playbook, "-i", str(path),
                           "--list-tasks", "--tags", tag], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    tasks = [line.strip() for line in proc.stdout.splitlines() if "TAGS:" in line]
    assert any("Read the host's capabilities" in t for t in tasks), tasks
    for name in PART_TASKS[tag]:
        assert any(name in t for t in tasks), f"{name!r} not listed for --tags {tag}: {tasks}"
    # and nothing of the other parts, or of the other roles
    assert not any(t.startswith("metal.kafka.java : Install OpenJDK\t") for t in tasks), tasks
    others = {n for part, names in PART_TASKS.items() if part != tag for n in names} - set(PART_TASKS[tag])
    assert not any(n in t for n in others for t in tasks), tasks


# Every tag the roles use selects the tasks that do its work, in site.yml: the node roles import the
# node's tasks (a dynamic include would pass no tag to them), and the facts those tasks need run always.
TAG_TASKS = {
    "kafka": ["kafka : Unpack the verified archive", "kafka : Configure the node, format its storage and start it"],
    "install": ["kafka : Unpack the verified archive"],
    "config": ["kafka : Configure the node, format its storage and start it",
               "kafka : Restart changed nodes one at a time"],
    "tls": ["kafka : Issue, renew or check this node's certificate",
            "kafka : Configure the node, format its storage and start it"],
    "broker": ["kafka : Configure the node, format its storage and start it"],
    "controller": ["kafka : Configure the node, format its storage and start it"],
    "java": ["java : Install OpenJDK"],
    "tuning": ["tuning : Kernel settings"],
    "zookeeper": ["zookeeper : Configure the member and start it"],
}


@pytest.mark.parametrize("tag", sorted(TAG_TASKS))
def test_every_tag_selects_its_tasks(tmp_path, tag):
    inv = zk_inventory() if tag == "zookeeper" else inventory()
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(inv))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"))
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "site.yml", "-i", str(path),
                           "--list-tasks", "--tags", tag], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    tasks = [line.strip() for line in proc.stdout.splitlines() if "TAGS:" in line]
    for name in TAG_TASKS[tag]:
        assert any(name in t for t in tasks), f"{name!r} not listed for --tags {tag}: {tasks}"
    # the facts every node task decides from come along
    assert any("Read the host (what is installed" in t for t in tasks), tasks
