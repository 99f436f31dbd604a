"""Verify a cluster built by site.yml on lab hosts (any mode), with testinfra and a real client."""

import pytest
from kafka_metal import smoke

testinfra_hosts = ["all"]
# the metrics endpoint of each kind of node, and a series its JMX exporter configuration must yield
METRICS = {"broker": (9404, "kafka_server_replicamanager_partitioncount"),
           "controller": (9404, "kafka_controller_kafkacontroller_activecontrollercount"),
           "zookeeper": (9405, "zookeeper_")}


def _name(host):
    return host.backend.get_hostname()


@pytest.fixture(autouse=True)
def _kafka_or_zookeeper_node(request, roles_of):
    """The per-host checks concern the cluster's nodes, not a scenario's other hosts (such as its monitoring)."""
    if "host" not in request.fixturenames:
        return
    host = request.getfixturevalue("host")
    if not roles_of(_name(host)):
        pytest.skip(f"{_name(host)} is not a Kafka or ZooKeeper node")


def test_units_active_and_enabled(host, cluster, roles_of):
    roles = roles_of(_name(host))
    units = (["kafka"] if roles & {"broker", "controller"} else []) + (["zookeeper"] if "zookeeper" in roles else [])
    assert units
    for name in units:
        unit = host.service(name)
        assert unit.is_running, host.run(f"journalctl -u {name} --no-pager -n 50").stdout
        assert unit.is_enabled


def test_each_service_runs_as_its_own_user_with_an_explicit_heap(host, cluster, roles_of):
    roles = roles_of(_name(host))
    expected = {("kafka", "kafka.Kafka")} if roles & {"broker", "controller"} else set()
    if "zookeeper" in roles:
        expected.add(("zookeeper", "QuorumPeerMain"))
    for user, main_class in expected:
        procs = host.process.filter(user=user, comm="java")
        assert len(procs) == 1, f"{user}: {len(procs)} java processes"
        assert main_class in procs[0].args and "-Xmx" in procs[0].args


def test_ports_listening(host, cluster, roles_of):
    roles = roles_of(_name(host))
    ports = {"broker": [9092, 9091], "controller": [9093], "zookeeper": [2181]}
    for role in roles:
        for port in ports[role]:
            assert host.socket(f"tcp://0.0.0.0:{port}").is_listening or \
                host.socket(f"tcp://:::{port}").is_listening, f"{role} port {port}"


def test_metrics_endpoints_answer(host, cluster, roles_of):
    """The JMX exporter agent in each JVM (its configuration's series included) and node exporter."""
    for role in sorted(roles_of(_name(host))):
        port, series = METRICS[role]
        text = host.check_output(f"python3 -c \"import urllib.request; print(urllib.request.urlopen("
                                 f"'http://127.0.0.1:{port}/metrics', timeout=30).read().decode())\"")
        assert series in text, f"{role}: no {series} on :{port}"
    node = host.check_output("python3 -c \"import urllib.request; print(urllib.request.urlopen("
                             "'http://127.0.0.1:9100/metrics', timeout=30).read().decode())\"")
    assert "node_cpu_seconds_total" in node


def test_config_files_are_not_world_readable(host, cluster, roles_of):
    roles = roles_of(_name(host))
    files = []
    if roles & {"broker", "controller"}:
        files.append((f"{cluster['config_dir'][_name(host)]}/server.properties", "kafka"))
    if "zookeeper" in roles:
        files.append((f"{cluster['zookeeper_config_dir'][_name(host)]}/zoo.cfg", "zookeeper"))
    for path, group in files:
        f = host.file(path)
        assert f.user == "root" and f.group == group and f.mode == 0o640, path


def test_every_broker_registered(cluster, bootstrap, client_conf):
    assert smoke.broker_count(bootstrap, extra=client_conf) == len(cluster["brokers"])


def test_produce_10000_acks_all_and_consume_every_one(cluster, bootstrap, client_conf):
    result = smoke.run(bootstrap, messages=10_000, partitions=6, replication_factor=3, min_isr=2, extra=client_conf)
    assert result.replication_factor == 3
    assert result.produced == 10_000, result.problems
    assert result.consumed == 10_000, result.problems
    assert result.ok, result.problems
