"""The check of a host before anything on it changes: ports, limits, data disks, kernel settings."""

import os
import socket

from ansible_collections.metal.kafka.plugins.module_utils import inventory, preflight

# /proc/net/tcp and tcp6 as Linux writes them (header, then one socket per line)
TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0
   1: 00000000:2384 00000000:0000 0A 00000000:00000000 00:00000000 00000000   998        0 4343 1 0 100 0 0 10 0
   2: 0A00000A:2384 0A00000B:C350 01 00000000:00000000 00:00000000 00000000   998        0 4444 1 0 20 4 30 10 -1
"""
TCP6 = """  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0885 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   105        0 4545 1 0 100 0 0 10 0
   1: 00000000000000000000000001000000:0FA1 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4646 1 0 100 0 0 10 0
"""  # noqa: E501


def test_listening_sockets_parses_both_tables_and_skips_connections():
    found = preflight.listening_sockets([TCP, TCP6])
    assert found == [
        {"address": "127.0.0.1", "port": 3306, "uid": 0, "inode": 4242},
        {"address": "0.0.0.0", "port": 9092, "uid": 998, "inode": 4343},
        {"address": "::", "port": 2181, "uid": 105, "inode": 4545},
        {"address": "::1", "port": 4001, "uid": 0, "inode": 4646},
    ]


def test_listening_sockets_reads_this_machines_own_table():
    """A socket this test opens shows up in the kernel's own table, with our uid and its inode."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with open("/proc/net/tcp") as fh:
            found = [x for x in preflight.listening_sockets([fh.read()]) if x["port"] == port]
        assert [(x["address"], x["uid"]) for x in found] == [("127.0.0.1", os.getuid())]
        inode = os.fstat(s.fileno()).st_ino
        assert found[0]["inode"] == inode
        assert preflight.socket_inode(os.readlink(f"/proc/self/fd/{s.fileno()}")) == inode


def test_socket_inode_ignores_other_descriptors():
    assert preflight.socket_inode("socket:[77]") == 77
    assert preflight.socket_inode("pipe:[77]") is None
    assert preflight.socket_inode("/var/log/kafka/server.log") is None
    assert preflight.socket_inode("socket:[x]") is None


def plan(**changes):
    base = preflight.host_plan({"broker_client_port": 9092, "kafka_controller_port": "9093",
                                "zookeeper_client_port": 2181}, "kafka", "zookeeper", 100000, 8192, [], "auto")
    base.update(changes)
    return base


def facts(**changes):
    base = {"listeners": [], "pid1_limits": {"Max open files": ["1024", "524288"], "Max processes": ["1", "unlimited"]},
            "paths_present": [], "kernel_writable": True, "container": ""}
    base.update(changes)
    return base


def test_plan_names_each_port_and_its_owner():
    p = plan()
    assert p["ports"] == {"2181": {"variable": "zookeeper_client_port", "user": "zookeeper"},
                          "9092": {"variable": "broker_client_port", "user": "kafka"},
                          "9093": {"variable": "kafka_controller_port", "user": "kafka"}}
    assert preflight.host_plan({}, "k", "z", 1, 1, [], True)["kernel_apply"] == "true"
    assert preflight.host_plan({}, "k", "z", 1, 1, [], "yes")["kernel_apply"] == "true"
    assert preflight.host_plan({}, "k", "z", 1, 1, [], "auto")["kernel_apply"] == "auto"


def test_a_fine_host_has_no_problems():
    own = [{"port": 9092, "address": "0.0.0.0", "user": "kafka", "pid": 10, "process": "java"},
           {"port": 2181, "address": "::", "user": "zookeeper", "pid": 11, "process": "java"}]
    assert preflight.host_problems(facts(listeners=own), plan()) == []
    assert preflight.host_problems(facts(), {}) == []


def test_a_port_held_by_another_program_names_the_variable_the_program_and_the_fix():
    other = [{"port": 9093, "address": "127.0.0.1", "user": "root", "pid": 321, "process": "nginx"},
             {"port": 9093, "address": "::1", "user": "root", "pid": 321, "process": "nginx"}]
    problems = preflight.host_problems(facts(listeners=other), plan())
    assert problems == ["kafka_controller_port is 9093, but nginx (pid 321, user root) already listens on "
                        "127.0.0.1:9093 on this host, so the node could not start: stop that program or choose a "
                        "free port for kafka_controller_port"]


def test_the_kafka_user_holding_a_zookeeper_port_is_not_zookeeper():
    """Each port may be held by its own service's user only (a broker left on a member's port is in the way)."""
    stray = [{"port": 2181, "address": "0.0.0.0", "user": "kafka", "pid": 5, "process": "java"}]
    [problem] = preflight.host_problems(facts(listeners=stray), plan())
    assert problem.startswith("zookeeper_client_port is 2181, but java (pid 5, user kafka)")


def test_limits_pid1_cannot_grant():
    [problem] = preflight.host_problems(facts(pid1_limits={"Max open files": ["1024", "20000"]}), plan())
    assert "kafka_limit_nofile is 100000 but this host grants at most 20000" in problem


def test_missing_data_disk_devices():
    p = plan(devices={"/dev/vdb": "/data/1", "/dev/vdc": "/data/2"})
    assert preflight.host_problems(facts(paths_present=["/dev/vdb"]), p) == [
        "tuning_data_disks names /dev/vdc (for /data/2), which does not exist on this host: correct the device "
        "(lsblk and /dev/disk/by-id list the host's disks) or remove the entry"]


def test_kernel_apply_forced_on_a_read_only_kernel():
    p = plan(kernel_apply="true")
    [problem] = preflight.host_problems(facts(kernel_writable=False, container="systemd-nspawn"), p)
    assert problem.startswith("tuning_kernel_apply is true, but this host's kernel settings are read-only "
                              "(it runs in a systemd-nspawn container): set tuning_kernel_apply to auto")
    assert preflight.host_problems(facts(kernel_writable=False), plan()) == []


def test_inventory_plan_follows_the_hosts_roles():
    groups = {"kafka_brokers": ["b1"], "kafka_controllers": ["c1"], "zookeeper": []}
    v = {"broker_client_port": 9092, "broker_internal_port": 9091, "kafka_controller_port": 9093,
         "kafka_jmx_port": 0, "kafka_user": "kafka", "zookeeper_user": "zookeeper", "kafka_limit_nofile": 100000,
         "kafka_limit_nproc": 8192, "tuning_data_disks": [{"device": "/dev/vdb", "path": "/data/1"}],
         "tuning_kernel_apply": "auto"}
    broker = inventory.preflight_plan("b1", v, groups)
    # the metrics endpoints are on by default: the agent in the Kafka JVM, node exporter as its own user
    assert broker["ports"] == {"9091": {"variable": "broker_internal_port", "user": "kafka"},
                               "9092": {"variable": "broker_client_port", "user": "kafka"},
                               "9100": {"variable": "kafka_node_exporter_port", "user": "prometheus"},
                               "9404": {"variable": "kafka_jmx_exporter_port", "user": "kafka"}}
    assert broker["devices"] == {"/dev/vdb": "/data/1"}
    off = dict(v, kafka_jmx_port=9999, kafka_metrics_enabled=False, kafka_node_exporter_enabled="no")
    controller = inventory.preflight_plan("c1", off, groups)
    assert controller["ports"] == {"9093": {"variable": "kafka_controller_port", "user": "kafka"},
                                   "9999": {"variable": "kafka_jmx_port", "user": "kafka"}}


def test_running_release_reads_the_link_kafka_metal_unpacked():
    assert preflight.running_release("/opt/kafka/kafka_2.13-4.1.1") == "4.1.1"
    assert preflight.running_release("/srv/kafka/kafka_2.13-3.9.1/") == "3.9.1"
    assert preflight.running_release(None) is None
    assert preflight.running_release("/opt/confluent-7.6") is None
    assert preflight.running_release("/opt/kafka/kafka_2.13-trunk") is None


def test_site_does_not_take_a_node_back_to_an_older_release():
    (problem,) = preflight.version_problems("/opt/kafka/kafka_2.13-4.1.1", "3.9.1")
    assert "runs Kafka 4.1.1, newer than kafka_version 3.9.1" in problem
    assert "set kafka_version to 4.1.1" in problem and "rolling_upgrade.yml" in problem
    # release order, not text order
    assert preflight.version_problems("/opt/kafka/kafka_2.13-3.10.0", "3.9.1")
    assert not preflight.version_problems("/opt/kafka/kafka_2.13-3.9.1", "3.10.0")


def test_same_newer_unknown_or_unswitched_versions_pass():
    assert not preflight.version_problems("/opt/kafka/kafka_2.13-3.9.1", "3.9.1")
    assert not preflight.version_problems("/opt/kafka/kafka_2.13-3.9.1", "4.1.1")
    assert not preflight.version_problems(None, "3.9.1")  # a fresh host
    # playbooks/install_version.yml unpacks an older release for a roll back without switching
    assert not preflight.version_problems("/opt/kafka/kafka_2.13-4.1.1", "3.9.1", switch=False)
