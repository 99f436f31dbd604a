"""The controller quorum's decisions (module_utils/quorum.py) on the text Kafka 4.1's kafka-metadata-quorum prints,
and the settings and formatting of a dynamic quorum (module_utils/cluster.py, storage.py)."""

import base64

import pytest
from ansible_collections.metal.kafka.plugins.module_utils import cluster, quorum, roll, storage

# kafka-metadata-quorum 4.1.1 describe --status / --replication: three voters, one controller observer (node 4,
# formatted without initial voters) and a broker (node 10)
STATUS = """ClusterId:              abcdefghijklmnopqrstuv
LeaderId:               1
LeaderEpoch:            7
HighWatermark:          1500
MaxFollowerLag:         0
MaxFollowerLagTimeMs:   0
CurrentVoters:          [{"id": 1, "directoryId": "ckdwzJZ4T6qnXWAlePgdMg", "endpoints": ["CONTROLLER://c1:9093"]}, \
{"id": 2, "directoryId": "13b3sYFw_uJXBHbeuSO8-w", "endpoints": ["CONTROLLER://c2:9093"]}, \
{"id": 3, "directoryId": "pbvuBlaTTwKRxS5NLJwRFQ", "endpoints": ["CONTROLLER://c3:9093"]}]
CurrentObservers:       [{"id": 4, "directoryId": "Qx0vW8d6S1m1Y0n8k2o3Zw"}, \
{"id": 10, "directoryId": "AbCdEfGhIjKlMnOpQrStUv"}]
"""
NOW = 1796531909451


def replication(lag3=0, seen3=NOW, seen4=NOW, seen2=NOW):
    rows = [("1", "ckdwzJZ4T6qnXWAlePgdMg", 1500, 0, NOW, NOW, "Leader"),
            ("2", "13b3sYFw_uJXBHbeuSO8-w", 1500, 0, seen2, seen2, "Follower"),
            ("3", "pbvuBlaTTwKRxS5NLJwRFQ", 1500 - lag3, lag3, seen3, seen3, "Follower"),
            ("4", "Qx0vW8d6S1m1Y0n8k2o3Zw", 1500, 0, seen4, seen4, "Observer"),
            ("10", "AbCdEfGhIjKlMnOpQrStUv", 1500, 0, NOW, NOW, "Observer")]
    head = "NodeId\tDirectoryId           \tLogEndOffset\tLag\tLastFetchTimestamp\tLastCaughtUpTimestamp\tStatus  \t"
    return "\n".join([head] + ["\t".join(str(c) for c in r) + "\t" for r in rows]) + "\n"


def read(**kw):
    return quorum.parse_replication(replication(**kw), quorum.parse_status(STATUS))


def test_parse_reads_voters_observers_and_figures():
    q = read(lag3=40)
    assert (q.leader, q.epoch, q.high_watermark) == (1, 7, 1500)
    assert [m.node_id for m in q.voters] == [1, 2, 3]
    assert [m.node_id for m in q.observers] == [4, 10]
    three = q.find(3)[0]
    assert (three.lag, three.status, three.endpoints) == (40, "Follower", ["CONTROLLER://c3:9093"])
    assert q.now() == NOW


def test_unreadable_output_is_an_error_that_quotes_it():
    with pytest.raises(quorum.QuorumError, match="cannot read the quorum's status"):
        quorum.parse_status("Error: connection refused")
    with pytest.raises(quorum.QuorumError, match="replication table"):
        quorum.parse_replication("nothing", quorum.parse_status(STATUS))


def test_caught_up_is_judged_by_the_leaders_clock():
    q = read(seen3=NOW - 60_000)
    assert quorum.caught_up(q, q.find(1)[0])  # the leader
    assert quorum.caught_up(q, q.find(2)[0])
    assert not quorum.caught_up(q, q.find(3)[0])
    edge = read(seen3=NOW - roll.DEFAULT_MAX_LAG_MS)
    assert quorum.caught_up(edge, edge.find(3)[0])
    past = read(seen3=NOW - roll.DEFAULT_MAX_LAG_MS - 1)
    assert not quorum.caught_up(past, past.find(3)[0])


def test_removal_keeps_a_caught_up_majority_of_the_remaining_voters():
    q = read()
    assert quorum.removal_problems(q, 3, "pbvuBlaTTwKRxS5NLJwRFQ") == []  # 2 remain, both caught up
    assert quorum.removal_problems(q, 1, "ckdwzJZ4T6qnXWAlePgdMg") == []  # the leader too
    # node 2 is behind: removing 3 leaves {1, 2} with one caught up, not a majority of two
    behind = read(seen2=NOW - 60_000)
    problems = quorum.removal_problems(behind, 3, "pbvuBlaTTwKRxS5NLJwRFQ")
    assert len(problems) == 1 and "only 1 caught up" in problems[0] and "behind or unreachable: 2" in problems[0]
    # removing the one that is behind is fine: {1, 3} both caught up
    assert quorum.removal_problems(behind, 2, "13b3sYFw_uJXBHbeuSO8-w") == []


def test_removal_of_something_that_is_not_a_voter_or_the_last_voter_is_refused():
    q = read()
    assert "is not a voter" in quorum.removal_problems(q, 4, "Qx0vW8d6S1m1Y0n8k2o3Zw")[0]
    assert "is not a voter" in quorum.removal_problems(q, 3, "wrongwrongwrongwrongww")[0]
    single = quorum.parse_status(STATUS.replace(STATUS[STATUS.index('{"id": 2'):STATUS.index("]\nCurrentObservers")],
                                                '{"id": 2, "directoryId": "x"}').replace(
        '{"id": 1, "directoryId": "ckdwzJZ4T6qnXWAlePgdMg", "endpoints": ["CONTROLLER://c1:9093"]}, ', ""))
    assert [m.node_id for m in single.voters] == [2]
    assert "only voter" in quorum.removal_problems(single, 2, "x")[0]


def test_a_controller_is_added_only_as_a_caught_up_observer():
    q = read()
    assert quorum.add_problems(q, 4, "Qx0vW8d6S1m1Y0n8k2o3Zw") == []
    assert "voter already" in quorum.add_problems(q, 2, "13b3sYFw_uJXBHbeuSO8-w")[0]
    assert "not fetching" in quorum.add_problems(q, 5, "Qx0vW8d6S1m1Y0n8k2o3Zw")[0]
    slow = read(seen4=NOW - 60_000)
    assert "not caught up" in quorum.add_problems(slow, 4, "Qx0vW8d6S1m1Y0n8k2o3Zw")[0]


def test_a_wiped_controller_leaves_a_stale_voter():
    q = quorum.parse_replication(replication().replace("4\tQx0vW8d6S1m1Y0n8k2o3Zw", "3\tQx0vW8d6S1m1Y0n8k2o3Zw"),
                                 quorum.parse_status(STATUS.replace('{"id": 4,', '{"id": 3,')))
    stale = quorum.stale_voters(q, 3, "Qx0vW8d6S1m1Y0n8k2o3Zw")
    assert [m.key for m in stale] == [(3, "pbvuBlaTTwKRxS5NLJwRFQ")]
    assert quorum.stale_voters(q, 2, "13b3sYFw_uJXBHbeuSO8-w") == []


def test_table_lists_voters_and_controller_observers_not_brokers():
    lines = quorum.table(read(), {1: "c1", 2: "c2", 3: "c3", 4: "c4"})
    assert lines[0].startswith("leader 1 (c1), epoch 7")
    assert [ln.split()[0] for ln in lines[2:]] == ["1", "2", "3", "4"]


def test_tools_pass_kafkas_words_on_failure():
    calls = []

    def run(argv):
        calls.append(argv)
        return 1, "", "org.apache.kafka.common.errors.InvalidRequestException: not caught up\n WARN noise"

    tools = quorum.Tools(run, "/opt/kafka/current", "b1:9092", "/etc/kafka/admin.properties")
    with pytest.raises(quorum.QuorumError, match="remove-controller failed .*not caught up"):
        tools.remove(3, "pbvuBlaTTwKRxS5NLJwRFQ")
    assert calls[0] == ["/opt/kafka/current/bin/kafka-metadata-quorum.sh", "--bootstrap-server", "b1:9092",
                        "--command-config", "/etc/kafka/admin.properties", "remove-controller", "--controller-id",
                        "3", "--controller-directory-id", "pbvuBlaTTwKRxS5NLJwRFQ"]


# --- the nodes' settings and formatting of a dynamic quorum -------------------------------------------------------

PORTS = {"client": 9092, "internal": 9094, "controller": 9093}


def props(roles, quorum_kind):
    return cluster.kraft_properties(roles=roles, node_id=1, voters="1@c1:9093", advertised_host="c1", ports=PORTS,
                                    log_dirs=["/d"], metadata_dir="/m", broker_count=3, quorum=quorum_kind,
                                    bootstrap_servers="c1:9093,c2:9093")


def test_dynamic_nodes_list_bootstrap_servers_and_controllers_advertise_their_listener():
    static = props(["controller"], "static")
    assert static["controller.quorum.voters"] == "1@c1:9093" and "advertised.listeners" not in static
    dyn = props(["controller"], "dynamic")
    assert "controller.quorum.voters" not in dyn
    assert dyn["controller.quorum.bootstrap.servers"] == "c1:9093,c2:9093"
    assert dyn["advertised.listeners"] == "CONTROLLER://c1:9093"
    combined = props(["broker", "controller"], "dynamic")
    assert combined["advertised.listeners"] == "CLIENT://c1:9092,INTERNAL://c1:9094,CONTROLLER://c1:9093"
    broker = props(["broker"], "dynamic")
    assert "CONTROLLER" not in broker["advertised.listeners"]
    with pytest.raises(ValueError, match="static or dynamic"):
        props(["broker"], "other")


def test_initial_controllers_and_directory_ids():
    ids = {h: cluster.new_directory_id() for h in ("c1", "c2")}
    text = cluster.initial_controllers({"c2": (2, "10.0.0.2"), "c1": (1, "10.0.0.1")}, 9093, ids)
    assert text == f"1@10.0.0.1:9093:{ids['c1']},2@10.0.0.2:9093:{ids['c2']}"
    for _ in range(200):
        d = cluster.new_directory_id()
        raw = base64.urlsafe_b64decode(d + "==")
        assert len(d) == 22 and len(raw) == 16 and not d.startswith("-")
        assert int.from_bytes(raw[:8], "big") >= 100
    assert cluster.quorum_bootstrap({"c2": (2, "h2"), "c1": (1, "h1")}, 9093) == "h1:9093,h2:9093"


def test_a_converge_never_changes_the_kind_of_quorum():
    static = {"process.roles": "controller", "controller.quorum.voters": "1@c1:9093"}
    dynamic = {"process.roles": "controller", "controller.quorum.bootstrap.servers": "c1:9093"}
    assert cluster.quorum_config_problems({"c1": static}, "static") == []
    assert cluster.quorum_config_problems({"c1": dynamic}, "dynamic") == []
    assert cluster.quorum_config_problems({}, "dynamic") == []  # a new cluster
    assert "cannot become static again" in cluster.quorum_config_problems({"c1": dynamic}, "static")[0]
    assert "kafka-metal quorum dynamic" in cluster.quorum_config_problems({"c1": static}, "dynamic")[0]
    assert cluster.quorum_config_problems({"c1": static}, "dynamic-confirmed") == []
    # ZooKeeper-mode brokers have no process.roles: not part of the question
    assert cluster.quorum_config_problems({"b1": {"zookeeper.connect": "z:2181"}}, "dynamic") == []


@pytest.mark.parametrize("initial, no_initial, expect", [
    ("1@c1:9093:ckdwzJZ4T6qnXWAlePgdMg", False, ["--initial-controllers", "1@c1:9093:ckdwzJZ4T6qnXWAlePgdMg"]),
    ("", True, ["--no-initial-controllers"]),
    ("", False, []),
])
def test_format_passes_the_quorum_flags(tmp_path, monkeypatch, initial, no_initial, expect):
    import grp
    import os
    import pwd

    home = tmp_path / "kafka"
    (home / "bin").mkdir(parents=True)
    tool = home / "bin" / "kafka-storage.sh"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    meta = tmp_path / "meta"
    seen = []

    def run(argv, environ_update=None):
        with open(argv[1][1:]) as fh:
            seen.extend(fh.read().split("\n"))
        meta.mkdir()
        (meta / "meta.properties").write_text("cluster.id=abc\nnode.id=1\n")
        return 0, "ok", ""

    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    storage.format_dirs(run, [str(meta)], "abc", 1, "/c", str(home), user, group,
                        initial_controllers=initial, no_initial_controllers=no_initial)
    flags = [a for a in seen if a.startswith("--") and a != "--ignore-formatted"]
    assert flags == [f for f in expect if f.startswith("--")]
    if initial:
        assert seen[seen.index("--initial-controllers") + 1] == initial


def test_the_first_voters_are_listed_only_while_no_controller_is_formatted():
    from ansible_collections.metal.kafka.plugins.filter import kafka as filters

    hostvars = {"c1": {"kafka_node_id": 1, "ansible_host": "10.0.0.1"}, "c2": {"kafka_node_id": 2}}
    first = filters.kafka_initial_controllers(["c1", "c2"], hostvars, 9093, {"c1": [], "c2": []})
    assert first.startswith("1@10.0.0.1:9093:") and ",2@c2:9093:" in first
    # one controller holds the cluster id: the quorum exists, a controller formatted now joins as an observer
    assert filters.kafka_initial_controllers(["c1", "c2"], hostvars, 9093, {"c1": ["abc"], "c2": []}) == ""
    assert filters.kafka_initial_controllers([], hostvars, 9093, {}) == ""
