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
