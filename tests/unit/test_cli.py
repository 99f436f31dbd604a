import pytest
from kafka_metal import REPO_ROOT, main


def test_every_command_is_wired():
    parser = main.build_parser()
    for argv in (["lab", "up", "--hosts", "3"], ["lab", "down"], ["lab", "status"], ["lab", "ssh", "node1"],
                 ["dist", "build", "--version", "4.1.1"], ["demo"], ["smoke", "--bootstrap-server", "h:9092"]):
        args = parser.parse_args(argv)
        assert callable(args.func), argv


def test_version_flag(capsys):
    with pytest.raises(SystemExit):
        main.main(["--version"])
    assert "kafka-metal" in capsys.readouterr().out


@pytest.mark.parametrize(("topology", "version"), [("split", None), ("combined", None), ("zookeeper", "3.9.1")])
def test_demo_topologies_exist_and_pick_their_version(topology, version):
    path = REPO_ROOT / "inventories" / "lab" / f"{topology}.yml"
    assert path.exists()
    assert main._topology_version(path) == (version or main._default_kafka_version())
    assert len(main._topology_brokers(path)) == 3


def test_roll_and_upgrade_are_wired_and_refuse_a_bad_version(tmp_path):
    parser = main.build_parser()
    args = parser.parse_args(["roll", "-i", "inv.yml", "--all", "--force", "--batch-size", "3", "--limit", "node4"])
    assert callable(args.func) and args.all and args.force_unsafe and args.batch_size == 3 and args.limit == ["node4"]
    args = parser.parse_args(["upgrade", "--to", "4.1", "-i", "inv.yml"])
    with pytest.raises(SystemExit, match="not a Kafka version like 4.1.1"):
        args.func(args)
    args = parser.parse_args(["upgrade", "--to", "4.1.1", "--finalize", "--feature", "group.version=1", "--feature",
                              "transaction.version=2", "--dynamic-quorum", "--check", "-i", "inv.yml"])
    assert args.feature == ["group.version=1", "transaction.version=2"] and args.dynamic_quorum and args.check
    # features are raised by a finalize only, never by the roll to the new version
    for extra in (["--feature", "group.version=1"], ["--dynamic-quorum"]):
        args = parser.parse_args(["upgrade", "--to", "4.1.1", *extra, "-i", "inv.yml"])
        with pytest.raises(SystemExit, match="go with --finalize"):
            args.func(args)


def test_roll_reads_hosts_groups_and_known_hosts_from_the_inventory(tmp_path):
    from kafka_metal import rolling

    inv = tmp_path / "hosts.yml"
    inv.write_text("""
all:
  vars:
    ansible_user: root
    ansible_ssh_common_args: -o UserKnownHostsFile=/lab/known_hosts -o StrictHostKeyChecking=yes
    kafka_cluster_name: prod-eu
kafka_controllers:
  hosts:
    c1: {ansible_host: 10.0.0.1}
kafka_brokers:
  hosts:
    b1: {ansible_host: 10.0.0.4, ansible_port: 2222, ansible_ssh_private_key_file: /keys/id}
other:
  hosts:
    unrelated: {}
""")
    hosts, known, cluster = rolling.inventory_hosts([inv])
    assert known == "/lab/known_hosts" and cluster == "prod-eu"
    assert [(h.name, h.address, h.groups, h.port, h.key_file) for h in hosts] == [
        ("c1", "10.0.0.1", ["kafka_controllers"], 22, None), ("b1", "10.0.0.4", ["kafka_brokers"], 2222, "/keys/id")]
    with pytest.raises(SystemExit, match="not in the inventory's cluster groups"):
        rolling.inventory_hosts([inv], limit=["unrelated"])


def test_smoke_takes_the_client_settings_of_kafkas_tools(tmp_path, monkeypatch):
    from kafka_metal import smoke

    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    config = tmp_path / "client.properties"
    config.write_text("security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
                      'sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required '
                      'username="ops" password="s3cret";\n'
                      f"ssl.truststore.type=PEM\nssl.truststore.location={ca}\n")
    seen = {}

    class Result:
        ok, topic, produced, consumed, problems = True, "t", 1, 1, []

    def fake_run(bootstrap, messages, extra):
        seen.update(bootstrap=bootstrap, extra=extra)
        return Result()

    monkeypatch.setattr(smoke, "run", fake_run)
    assert main.main(["smoke", "--bootstrap-server", "h:9092", "--messages", "1", "--command-config",
                      str(config)]) == 0
    assert seen["extra"] == {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                             "sasl.username": "ops", "sasl.password": "s3cret", "ssl.ca.location": str(ca)}
