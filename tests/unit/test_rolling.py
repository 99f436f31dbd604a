"""The rolling engine (plugins/module_utils/rolling.py) against a simulated cluster.

The simulation answers the engine's SSH commands (cat, the host probe, systemctl, the version
switch) and its cluster reads (partitions with ISR, DescribeQuorum, ZooKeeper modes) from one
model: a node that is stopped leaves every ISR and the quorum, a started node rejoins, the active
controller moves when it is restarted. What the engine may do to a node is recorded, so the tests
check the order, the gates and what is never touched.
"""

from __future__ import annotations

import json
import shlex
import time

import pytest
from ansible_collections.metal.kafka.plugins.module_utils import node as node_state
from ansible_collections.metal.kafka.plugins.module_utils import rolling


class SimNode:
    def __init__(self, name, roles, node_id, zk=False):
        self.name, self.roles, self.node_id = name, roles, node_id
        self.running = True
        self.started = 1000.0
        self.changed = []
        self.dist = "kafka_2.13-3.9.1"
        self.current = "kafka_2.13-3.9.1"
        self.installed = {"kafka_2.13-3.9.1"}
        self.fail_start = False
        self.failed = False
        self.zk = zk
        self.zk_mode = "follower"
        self.manifest = None  # text of /etc/kafka-metal/kafka.json (zookeeper.json), when the node has one
        self.set_up = True  # False: nothing of Kafka on it yet (a first converge stopped before it)
        self.watched = []  # what the engine asked the host probe to watch
        self.lagging_reads = 0  # running, but out of every ISR for this many more reads of the partitions


class SimCluster:
    """3 controllers (ids 1-3) + 3 brokers (4-6) in KRaft, or 3 ZooKeeper + 3 brokers."""

    def __init__(self, mode="kraft", partitions=None, rack=None):
        self.mode = mode
        self.clock = 2000.0
        self.events = []
        if mode == "kraft":
            self.nodes = {f"node{i}": SimNode(f"node{i}", ("controller",), i) for i in (1, 2, 3)}
        else:
            self.nodes = {f"node{i}": SimNode(f"node{i}", ("zookeeper",), None, zk=True) for i in (1, 2, 3)}
            self.nodes["node2"].zk_mode = "leader"
        for i in (4, 5, 6):
            self.nodes[f"node{i}"] = SimNode(f"node{i}", ("broker",), i)
        self.rack = rack or {}
        self.leader = 2  # active controller (KRaft) / controller broker (ZooKeeper mode: 5)
        self.controller_broker = 5
        self.parts = partitions if partitions is not None else [
            {"topic": "t", "partition": p, "replicas": [4 + (p + k) % 3 for k in range(3)], "min_isr": 2}
            for p in range(6)]

    # -- model ----------------------------------------------------------------
    def by_id(self, node_id):
        return next(n for n in self.nodes.values() if n.node_id == node_id)

    def partitions(self):
        out = []
        lagging = {n.node_id for n in self.nodes.values() if n.lagging_reads > 0}
        for n in self.nodes.values():
            n.lagging_reads = max(0, n.lagging_reads - 1)
        for p in self.parts:
            isr = [r for r in p["replicas"] if self.by_id(r).running and r not in lagging]
            out.append({**p, "isr": isr, "leader": isr[0] if isr else -1})
        return out

    def quorum(self):
        now = int(time.time() * 1000)
        voters = []
        for i in (1, 2, 3):
            n = self.by_id(i)
            voters.append({"id": i, "log_end_offset": 100 if n.running else 50,
                           "last_caught_up_timestamp": now + 1 if n.running else 0})
        return {"leader_id": self.leader if self.by_id(self.leader).running else -1, "voters": voters,
                "now_ms": now + 1}

    def hosts(self):
        out = []
        for name, n in self.nodes.items():
            group = "kafka_controllers" if "controller" in n.roles else "kafka_brokers"
            groups = ["zookeeper"] if n.zk else [group]
            out.append(rolling.Host(name=name, address=f"10.0.0.{name[-1]}", groups=groups))
        return out

    # -- SSH ------------------------------------------------------------------
    def server_properties(self, n):
        if self.mode == "zookeeper":
            props = {"broker.id": str(n.node_id), "zookeeper.connect": "node1:2181/kafka",
                     "log.dirs": "/var/lib/kafka/data", "listeners": "CLIENT://:9092,INTERNAL://:9091",
                     "advertised.listeners": f"CLIENT://10.0.0.{n.name[-1]}:9092,INTERNAL://10.0.0.{n.name[-1]}:9091",
                     "inter.broker.listener.name": "INTERNAL"}
        else:
            props = {"process.roles": ",".join(n.roles), "node.id": str(n.node_id),
                     "controller.listener.names": "CONTROLLER",
                     "listener.security.protocol.map": "CLIENT:SASL_SSL,INTERNAL:SASL_SSL,CONTROLLER:SASL_SSL"}
            if "broker" in n.roles:
                props.update({"log.dirs": "/var/lib/kafka/data", "listeners": "CLIENT://:9092,INTERNAL://:9091",
                              "advertised.listeners": f"CLIENT://10.0.0.{n.name[-1]}:9092,"
                                                      f"INTERNAL://10.0.0.{n.name[-1]}:9091",
                              "inter.broker.listener.name": "INTERNAL"})
            else:
                props.update({"listeners": "CONTROLLER://:9093"})
        if n.node_id in self.rack:
            props["broker.rack"] = self.rack[n.node_id]
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def run(self, host, command, timeout=120):
        n = self.nodes[host.name]
        if command.startswith("cat "):
            path = shlex.split(command)[1]
            if path == f"/etc/kafka-metal/{'zookeeper' if n.zk else 'kafka'}.json":
                return (0, n.manifest, "") if n.manifest else (1, "", "No such file")
            if not n.set_up:
                return 1, "", "No such file"
            if path.endswith("server.properties") and not n.zk:
                return 0, self.server_properties(n), ""
            if path.endswith("admin.properties") and not n.zk:
                return 0, ('security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n'
                           'sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required '
                           'username="admin" password="s3cret-pass-word";\n'
                           'ssl.truststore.location=/etc/kafka/tls/truststore.pem\n'), ""
            if path.endswith("truststore.pem"):
                return 0, "-----BEGIN CERTIFICATE-----\n", ""
            if path.endswith("zoo.cfg") and n.zk and path.startswith(getattr(n, "config_dir", "/etc/zookeeper")):
                return 0, "clientPort=2181\ndataDir=/var/lib/zookeeper/data\n", ""
            return 1, "", "No such file"
        if command.startswith("python3 -c "):
            args = json.loads(shlex.split(command)[3])
            n.watched = args["watch"]
            unit = {"ActiveState": "active" if n.running else ("failed" if n.failed else "inactive"),
                    "SubState": "running" if n.running else "dead", "Result": "success", "NRestarts": "0",
                    "LoadState": "loaded", "NeedDaemonReload": "no"}
            return 0, json.dumps({
                "unit": unit, "started": n.started if n.running else None,
                "changed": [f for f in n.changed if f in args["watch"]] if n.running else [],
                "running": [n.dist] if n.running and not n.zk else [],
                "current": n.current, "clean": {d: True for d in args["log_dirs"]},
                "installed": {d: d in n.installed for d in args["dists"]}}), ""
        if command.startswith("systemctl stop"):
            self.events.append(("stop", host.name))
            n.running = False
            if not n.zk and "controller" in n.roles and self.leader == n.node_id:
                self.leader = next(i for i in (1, 2, 3) if i != n.node_id and self.by_id(i).running)
            if n.zk and n.zk_mode == "leader":
                n.zk_mode = "follower"
                next(m for m in self.nodes.values() if m.zk and m.running).zk_mode = "leader"
            return 0, "", ""
        if command.startswith("systemctl start"):
            self.events.append(("start", host.name))
            if n.fail_start:
                n.failed = True
                return 0, "", ""
            n.running = True
            n.failed = False
            self.clock += 10
            n.started = self.clock
            n.changed = []
            n.dist = n.current
            return 0, "", ""
        if command.startswith("test -f"):
            target = shlex.split(command)[2].rsplit("/", 2)[-2]
            if target not in n.installed:
                return 1, "", ""
            n.current = target
            self.events.append(("switch", host.name))
            return 0, "", ""
        if command.startswith("journalctl"):
            return 0, "ERROR invalid value for num.network.threads\n", ""
        raise AssertionError(f"unexpected command {command!r}")

    def close(self):
        pass


class SimView:
    def __init__(self, sim):
        self.sim = sim

    def __call__(self, nodes, admin_conf):
        self.admin_conf = admin_conf
        self.has_brokers = any(n.kind == "kafka" and "broker" in n.roles for n in nodes)
        return self

    def partitions(self):
        return self.sim.partitions()

    def quorum(self):
        return self.sim.quorum()

    def zookeeper(self):
        members = [{"host": n.name, "mode": n.zk_mode if n.running else "down"} for n in self.sim.nodes.values()
                   if n.zk]
        if not getattr(self, "has_brokers", True):
            return {"members": members}
        return {"members": members, "controller_id": self.sim.controller_broker}

    def broker_alive(self, node):
        return self.sim.nodes[node.name].running

    def cluster_id(self):
        return "sim-cluster"

    def elect_preferred(self, broker_id, partitions):
        return 0


def roller(sim, **opts):
    events = []
    r = rolling.Roller(sim.hosts(), rolling.Options(gate_timeout=5, **opts), sim,
                       report=lambda e, text="", **f: events.append((e, text)), sleep=lambda s: None,
                       view_factory=SimView(sim))
    r.progress = events
    r.ready = lambda node: (sim.nodes[node.name].running, "sim")
    return r


def test_a_restarted_controller_is_caught_up_only_once_the_leader_saw_it_since_its_restart():
    sim = SimCluster()
    r = roller(sim)
    node = next(n for n in [rolling.kafka_node(h, {"process.roles": "controller", "node.id": "1",
                                                   "controller.listener.names": "CONTROLLER",
                                                   "listeners": "CONTROLLER://:9093"}, {}, None)
                            for h in sim.hosts() if h.name == "node1"])
    r.view = SimView(sim)
    r.mode = "kraft"
    r.o.isr_timeout = 3
    stale = int(time.time() * 1000) - 5000  # caught up 5 s ago: recent, but from before the restart
    sim.quorum = lambda: {"leader_id": 2, "now_ms": stale + 5000, "voters": [
        {"id": i, "log_end_offset": 100, "last_caught_up_timestamp": stale} for i in (1, 2, 3)]}
    clock = iter(range(0, 100))
    r.clock = lambda: next(clock)
    with pytest.raises(rolling.RollError) as err:
        r.catch_up(node, rolling.NodeResult("node1", "controller 1", "restarted"), started_ms=stale + 1000)
    assert "not caught up since its restart" in str(err.value)


def restarted(sim):
    return [name for ev, name in sim.events if ev == "stop"]


def test_forced_roll_restarts_standby_controllers_then_active_then_brokers():
    sim = SimCluster()
    summary = roller(sim, force=True).run()
    assert restarted(sim) == ["node1", "node3", "node2", "node4", "node5", "node6"]
    assert [n.action for n in summary.nodes] == ["restarted"] * 6
    assert summary.failed is None


def test_active_controller_is_reread_before_every_step():
    sim = SimCluster()
    sim.leader = 1
    r = roller(sim, force=True)
    original = sim.run

    def run(host, command, **kw):
        # leadership moves to node3 while node2 restarts: node3 must now go last
        if command.startswith("systemctl start") and host.name == "node2":
            sim.leader = 3
        return original(host, command, **kw)

    sim.run = run
    r.remote = sim
    r.run()
    assert restarted(sim)[:3] == ["node2", "node1", "node3"]


def test_only_changed_nodes_are_restarted_and_a_second_run_restarts_nothing():
    sim = SimCluster()
    sim.nodes["node5"].changed = ["/etc/kafka/server.properties"]
    summary = roller(sim).run()
    assert restarted(sim) == ["node5"]
    assert {n.name: n.action for n in summary.nodes}["node1"] == "skipped"
    sim.events.clear()
    assert roller(sim).run().restarted == []
    assert restarted(sim) == []


def test_check_mode_reports_and_restarts_nothing():
    sim = SimCluster()
    sim.nodes["node4"].changed = ["/etc/kafka/tls/keystore.pem"]
    summary = roller(sim, check_mode=True).run()
    assert sim.events == []
    assert [(n.name, n.action) for n in summary.nodes if n.action != "skipped"] == [("node4", "would restart")]
    assert "keystore.pem" in summary.nodes[-1].reason


def test_preflight_refuses_when_a_broker_is_down_and_touches_nothing():
    sim = SimCluster()
    sim.nodes["node6"].running = False
    with pytest.raises(rolling.RollError) as err:
        roller(sim, force=True).run()
    assert err.value.step == "preflight"
    assert "node6" in str(err.value) and "under-replicated" in str(err.value)
    assert sim.events == []


def test_preflight_names_a_down_node_before_the_partitions_it_leaves_short():
    """Many partitions (the offsets topic has 50): the message shows ten problems, the down node first."""
    sim = SimCluster(partitions=[{"topic": "t", "partition": p, "replicas": [4 + (p + k) % 3 for k in range(3)],
                                  "min_isr": 2} for p in range(60)])
    sim.nodes["node6"].running = False
    with pytest.raises(rolling.RollError) as err:
        roller(sim, force=True).run()
    text = str(err.value)
    assert "more)" in text and text.index("node6: kafka.service is not running") < text.index("under-replicated")


def test_force_unsafe_starts_despite_preflight_but_gates_still_hold():
    sim = SimCluster()
    sim.nodes["node6"].running = False
    r = roller(sim, force=True, ignore_preflight=True)
    with pytest.raises(rolling.RollError) as err:
        r.run()
    # controllers roll; broker 4 may not go down while 6 is down (partitions would drop to 1 in sync)
    assert err.value.step == "gate" and err.value.host == "node4"
    assert restarted(sim) == ["node1", "node3", "node2"]
    assert any("PREFLIGHT FAILED AND OVERRIDDEN" in text for _, text in r.progress)


def test_failed_start_stops_the_roll_names_host_and_step_and_resume_starts_it_first(tmp_path):
    sim = SimCluster()
    state = str(tmp_path / "roll.json")
    for name in ("node4", "node5", "node6"):
        sim.nodes[name].changed = ["/etc/kafka/server.properties"]
    sim.nodes["node5"].fail_start = True
    with pytest.raises(rolling.RollError) as err:
        roller(sim, state_file=state).run()
    assert (err.value.host, err.value.step) == ("node5", "start")
    assert "num.network.threads" in str(err.value)
    assert restarted(sim) == ["node4", "node5"]  # node6 untouched
    assert json.loads(open(state).read())["pending"] == ["node5"]
    # the operator repairs node5's configuration and runs the roll again
    sim.nodes["node5"].fail_start = False
    sim.events.clear()
    summary = roller(sim, state_file=state).run()
    assert sim.events[0] == ("start", "node5")  # left down: started first, without a gate
    assert restarted(sim) == ["node6"]
    assert summary.resumed
    assert not (tmp_path / "roll.json").exists()


def test_resume_waits_for_the_node_the_interrupted_run_restarted_before_its_preflight(tmp_path):
    """Killed right after it started node4 (node4 runs but has not caught up): the run again first waits for node4,
    then its preflight passes and the roll goes on, instead of refusing on the traces of its own interruption."""
    sim = SimCluster()
    state = tmp_path / "roll.json"
    key = {"kind": "restart", "to": None, "force": False, "hosts": sorted(sim.nodes), "cluster_id": "sim-cluster"}
    state.write_text(json.dumps({"key": key, "baseline": None, "pending": ["node4"], "saved_at": time.time()}))
    for name in ("node5", "node6"):
        sim.nodes[name].changed = ["/etc/kafka/server.properties"]
    sim.nodes["node4"].lagging_reads = 3
    r = roller(sim, state_file=str(state))
    summary = r.run()
    assert summary.resumed and not summary.preflight
    assert restarted(sim) == ["node5", "node6"]
    assert any("node4" in text and "waiting until it has caught up" in text for _, text in r.progress)
    assert sim.nodes["node4"].lagging_reads == 0


def test_interrupted_forced_roll_resumes_without_restarting_finished_nodes(tmp_path):
    sim = SimCluster()
    state = str(tmp_path / "roll.json")
    r = roller(sim, force=True, state_file=state)
    original = sim.run

    def run(host, command, **kw):
        if command.startswith("systemctl stop") and host.name == "node4":
            raise KeyboardInterrupt
        return original(host, command, **kw)

    sim.run = run
    r.remote = sim
    with pytest.raises(KeyboardInterrupt):
        r.run()
    assert restarted(sim) == ["node1", "node3", "node2"]
    sim.run = original
    sim.events.clear()
    summary = roller(sim, force=True, state_file=state).run()
    assert restarted(sim) == ["node4", "node5", "node6"]
    assert summary.resumed
    assert sorted(n.name for n in summary.nodes if n.action == "skipped") == ["node1", "node2", "node3"]


def test_an_old_or_foreign_unfinished_roll_is_not_resumed(tmp_path):
    sim = SimCluster()
    state = tmp_path / "roll.json"
    for age, cluster_id in ((13 * 3600, "sim-cluster"), (0, "another-cluster")):
        key = {"kind": "restart", "to": None, "force": True, "hosts": sorted(sim.nodes), "cluster_id": cluster_id}
        # a baseline that would make every node look restarted already
        state.write_text(json.dumps({"key": key, "baseline": {n: 1.0 for n in sim.nodes}, "pending": [],
                                     "saved_at": time.time() - age}))
        sim.events.clear()
        summary = roller(sim, force=True, state_file=str(state)).run()
        assert not summary.resumed
        assert len(restarted(sim)) == 6


def test_a_requested_stop_finishes_the_current_node_then_stops_and_resumes(tmp_path):
    sim = SimCluster()
    state = str(tmp_path / "roll.json")
    r = roller(sim, force=True, state_file=state)
    original = sim.run

    def run(host, command, **kw):
        if command.startswith("systemctl stop") and host.name == "node3":
            r.stop_requested = True  # Ctrl-C while node3 restarts
        return original(host, command, **kw)

    sim.run = run
    r.remote = sim
    with pytest.raises(rolling.RollInterrupted):
        r.run()
    assert restarted(sim) == ["node1", "node3"]
    assert all(n.running for n in sim.nodes.values())  # node3 was finished, not left down
    sim.run = original
    sim.events.clear()
    assert roller(sim, force=True, state_file=state).run().resumed
    assert restarted(sim) == ["node2", "node4", "node5", "node6"]


def test_upgrade_switches_each_node_after_its_stop_and_skips_nodes_on_target():
    sim = SimCluster()
    for n in sim.nodes.values():
        n.installed.add("kafka_2.13-4.1.1")
    sim.nodes["node1"].current = sim.nodes["node1"].dist = "kafka_2.13-4.1.1"
    summary = roller(sim, to_version="4.1.1").run()
    assert restarted(sim) == ["node3", "node2", "node4", "node5", "node6"]
    for name in ("node2", "node5"):
        i = sim.events.index(("stop", name))
        assert sim.events[i:i + 3] == [("stop", name), ("switch", name), ("start", name)]
    assert all(n.dist == "kafka_2.13-4.1.1" for n in sim.nodes.values())
    assert summary.kind == "upgrade"
    assert roller(sim, to_version="4.1.1").run().restarted == []


def test_upgrade_refuses_a_version_that_is_not_installed_everywhere():
    sim = SimCluster()
    sim.nodes["node4"].installed.add("kafka_2.13-4.1.1")
    with pytest.raises(rolling.RollError) as err:
        roller(sim, to_version="4.1.1").run()
    assert "not installed on node1, node2, node3, node5, node6" in str(err.value)
    assert sim.events == []


def test_zookeeper_mode_refuses_kafka_4_and_rolls_leader_and_controller_broker_last():
    sim = SimCluster(mode="zookeeper")
    with pytest.raises(rolling.RollError) as err:
        roller(sim, to_version="4.1.1").run()
    assert "ZooKeeper mode" in str(err.value) and "4.1.1" in str(err.value)
    assert sim.events == []
    roller(sim, force=True).run()
    assert restarted(sim) == ["node1", "node3", "node2", "node4", "node6", "node5"]


def test_an_ensemble_whose_brokers_are_not_set_up_yet_rolls_alone_leader_last():
    """A first converge that stopped before the brokers, run again with a changed zoo.cfg: the changed
    members restart through the engine's ZooKeeper gates, followers first and the leader last."""
    sim = SimCluster(mode="zookeeper")
    for name in ("node4", "node5", "node6"):
        sim.nodes[name].set_up = False
    for name in ("node1", "node2", "node3"):
        sim.nodes[name].changed = ["/etc/zookeeper/zoo.cfg"]
    summary = roller(sim, limit=["node1", "node2", "node3"]).run()
    assert restarted(sim) == ["node1", "node3", "node2"]
    assert summary.mode == "zookeeper"
    # Kafka nodes without any broker are still refused
    sim = SimCluster()
    for name in ("node4", "node5", "node6"):
        sim.nodes[name].set_up = False
    with pytest.raises(rolling.RollError, match="no broker among the hosts"):
        roller(sim, limit=["node1"]).run()


def test_a_zookeeper_member_is_read_where_its_manifest_says():
    sim = SimCluster(mode="zookeeper")
    zk = sim.nodes["node1"]
    zk.config_dir = "/srv/zk/conf"
    zk.manifest = node_state.manifest("zookeeper", "zookeeper.service", ["zookeeper"], 1,
                                      ["/srv/zk/conf/zoo.cfg", "/srv/zk/data/myid"], config_dir="/srv/zk/conf")
    zk.changed = ["/srv/zk/conf/zoo.cfg"]
    roller(sim, limit=["node1"]).run()
    assert restarted(sim) == ["node1"]
    assert zk.watched == ["/srv/zk/conf/zoo.cfg", "/srv/zk/data/myid"]


def forced_roller_noting_catch_ups(sim, view, caught_up):
    """A forced roll over ``view`` that appends to ``caught_up`` each time a restarted node caught up."""
    def report(event, text="", **_f):
        if event == "caught-up":
            caught_up.append(text)
    r = rolling.Roller(sim.hosts(), rolling.Options(gate_timeout=5, force=True), sim, report=report,
                       sleep=lambda s: None, view_factory=view)
    r.ready = lambda node: (sim.nodes[node.name].running, "sim")
    return r


@pytest.mark.parametrize("mode", ["zookeeper", "kraft"])
def test_an_unanswered_leader_read_waits_instead_of_guessing_the_order(mode):
    """The ZooKeeper leader (or the KRaft quorum) silent for one read right after a follower's restart:
    the roll reads again instead of taking the name order, and the leader still goes last."""
    sim = SimCluster(mode=mode)
    view = SimView(sim)
    caught_up, silenced = [], []
    if mode == "zookeeper":
        real_zk = view.zookeeper

        def flaky_zk():
            got = real_zk()
            if caught_up and not silenced:
                silenced.append(True)
                got = {**got, "members": [{**m, "mode": None if m["mode"] == "leader" else m["mode"]}
                                          for m in got["members"]]}
            return got
        view.zookeeper = flaky_zk
    else:
        real_quorum = view.quorum

        def flaky_quorum():
            if caught_up and not silenced:
                silenced.append(True)
                raise OSError("timed out")
            return real_quorum()
        view.quorum = flaky_quorum

    r = forced_roller_noting_catch_ups(sim, view, caught_up)
    r.run()
    order = restarted(sim)
    assert silenced, mode
    assert order[:3] == ["node1", "node3", "node2"], (mode, order)


def test_a_leader_that_never_answers_stops_the_roll_before_another_restart():
    sim = SimCluster(mode="zookeeper")
    view = SimView(sim)
    real = view.zookeeper
    silent = []

    def leader_silent_after_the_first_restart():
        got = real()
        if silent:  # the leader stops answering (the others still do)
            got = {**got, "members": [{**m, "mode": None if m["mode"] == "leader" else m["mode"]}
                                      for m in got["members"]]}
        return got
    view.zookeeper = leader_silent_after_the_first_restart

    r = forced_roller_noting_catch_ups(sim, view, silent)
    with pytest.raises(rolling.RollError) as err:
        r.run()
    assert "reading which node leads" in str(err.value) and "no ZooKeeper member answers as leader" in str(err.value)
    assert restarted(sim) == ["node1"]


def test_batches_by_rack_restart_a_rack_at_a_time_when_proven_safe():
    # 6 brokers in 3 racks, every partition has one replica per rack: a rack may go down at once
    sim = SimCluster()
    for i in (1, 2, 3):
        sim.nodes[f"node{i}"].roles = ("controller",)
    for i in (7, 8, 9):
        sim.nodes[f"node{i}"] = SimNode(f"node{i}", ("broker",), i)
    sim.rack = {4: "a", 7: "a", 5: "b", 8: "b", 6: "c", 9: "c"}
    sim.parts = [{"topic": "t", "partition": p, "replicas": [(4, 7)[p % 2], (5, 8)[p % 2], (6, 9)[p % 2]],
                  "min_isr": 2} for p in range(8)]
    r = roller(sim, force=True, batch_size=3)
    r.run()
    stops = restarted(sim)
    assert stops[:3] == ["node1", "node3", "node2"]
    assert [set(stops[3:5]), set(stops[5:7]), set(stops[7:9])] == [{"node4", "node7"}, {"node5", "node8"},
                                                                   {"node6", "node9"}]
    assert any(e == "plan" and "rack a" in t for e, t in r.progress)


def test_summary_figures_and_secrets_stay_out_of_the_output():
    sim = SimCluster()
    r = roller(sim, force=True)
    summary = r.run()
    text = summary.text() + json.dumps(summary.as_dict()) + json.dumps(r.progress)
    assert "s3cret-pass-word" not in text
    d = summary.as_dict()
    assert d["restarted"] == [f"node{i}" for i in (1, 3, 2, 4, 5, 6)]
    assert d["work_s"] >= 0 and "overhead" in d


def test_jaas_and_listener_parsing():
    assert rolling.jaas_credentials('x required username="a\\"b" password="p w";') == ('a\\"b', "p w")
    assert rolling.listeners("CLIENT://h1:9092, INTERNAL://[::1]:9091") == {"CLIENT": ("h1", 9092),
                                                                             "INTERNAL": ("::1", 9091)}


def test_roll_hosts_filter_takes_connection_and_cluster_groups_from_hostvars():
    from ansible_collections.metal.kafka.plugins.filter.kafka import kafka_known_hosts, kafka_roll_hosts

    hostvars = {
        "node1": {"ansible_host": "10.0.0.1", "ansible_private_key_file": "/k", "ansible_user": "ops",
                  "group_names": ["kafka_controllers", "dc1"]},
        "node4": {"group_names": ["kafka_brokers"], "ansible_port": "2222"},
    }
    assert kafka_roll_hosts(["node1", "node4"], hostvars) == [
        {"name": "node1", "address": "10.0.0.1", "groups": ["kafka_controllers"], "port": 22, "user": "ops",
         "key_file": "/k"},
        {"name": "node4", "address": "node4", "groups": ["kafka_brokers"], "port": 2222, "user": "root"}]
    assert kafka_known_hosts("-o UserKnownHostsFile=/lab/known_hosts -o StrictHostKeyChecking=yes") == \
        "/lab/known_hosts"
    assert kafka_known_hosts("") == "~/.ssh/known_hosts"


@pytest.mark.parametrize("setting, named", [
    ({"ansible_become_method": "su"}, "ansible_become_method=su: the rolling engine becomes root with sudo only"),
    ({"ansible_become_user": "kafka"}, "ansible_become_user=kafka: the rolling engine must run as root"),
    ({"ansible_connection": "local"}, "ansible_connection=local: the rolling engine reaches hosts over SSH only"),
    ({"ansible_ssh_common_args": "-J ops@bastion:ssh"}, "the jump host 'ops@bastion:ssh' is not [user@]host[:port]"),
    ({"ansible_port": "twenty-two"}, "ansible_port='twenty-two' is not a port number"),
])
def test_connection_settings_the_engine_cannot_honour_are_refused_by_name(setting, named):
    from ansible.errors import AnsibleFilterError
    from ansible_collections.metal.kafka.plugins.filter.kafka import kafka_roll_hosts

    (problem,) = rolling.connection_problems("node4", setting)
    assert problem.startswith("node4: ") and named in problem
    with pytest.raises(AnsibleFilterError, match="nothing was restarted"):
        kafka_roll_hosts(["node4"], {"node4": dict(setting, group_names=["kafka_brokers"])})


@pytest.mark.parametrize("setting, expected", [
    ({}, {"address": "node1", "port": 22, "user": "root", "jump": [], "proxy_command": None}),
    ({"ansible_host": "10.0.0.1", "ansible_ssh_port": "2222", "ansible_ssh_user": "ops"},
     {"address": "10.0.0.1", "port": 2222, "user": "ops"}),
    ({"ansible_ssh_common_args": "-o ProxyJump=ops@bastion:2200 -o UserKnownHostsFile=/k"},
     {"jump": [{"address": "bastion", "port": 2200, "user": "ops"}]}),
    ({"ansible_ssh_common_args": "-J a,root@[fd00::1]:22"},
     {"jump": [{"address": "a", "port": 22, "user": None}, {"address": "fd00::1", "port": 22, "user": "root"}]}),
    ({"ansible_ssh_extra_args": "-oProxyJump=ssh://b"}, {"jump": [{"address": "b", "port": 22, "user": None}]}),
    ({"ansible_ssh_common_args": "-J first", "ansible_ssh_extra_args": "-J second"},
     {"jump": [{"address": "first", "port": 22, "user": None}]}),
    ({"ansible_ssh_common_args": "-o 'ProxyCommand=ssh -W %h:%p bastion'"},
     {"proxy_command": "ssh -W %h:%p bastion", "jump": []}),
    ({"ansible_ssh_common_args": "-o ProxyJump=none"}, {"jump": [], "proxy_command": None}),
    ({"ansible_user": "ops", "ansible_become_password": "s3cret", "ansible_password": "login"},
     {"user": "ops", "become_password": "s3cret", "password": "login"}),
    ({"ansible_sudo_pass": "s3cret"}, {"become_password": "s3cret"}),
])
def test_connection_settings_as_ansible_takes_them(setting, expected):
    settings, problems = rolling.connection("node1", setting)
    assert problems == []
    assert {k: settings[k] for k in expected} == expected


def test_passwords_never_show_in_a_host_repr():
    host, _ = rolling.host_from_vars("node1", {"ansible_user": "ops", "ansible_become_password": "s3cret",
                                               "ansible_password": "login"}, ["kafka_brokers", "other"])
    assert "s3cret" not in repr(host) and "login" not in repr(host)
    assert host.groups == ["kafka_brokers"] and host.become_password == "s3cret"


def test_connection_settings_the_engine_honours():
    for ok in ({}, {"ansible_user": "ops", "ansible_become_method": "sudo", "ansible_become_user": "root",
                    "ansible_ssh_common_args": "-o UserKnownHostsFile=/k -o StrictHostKeyChecking=yes -J ops@b",
                    "ansible_become_password": "x", "ansible_password": "y", "ansible_connection": "ssh"}):
        assert rolling.connection_problems("node1", ok) == []


def test_a_host_being_added_is_left_out_only_when_the_roll_is_limited_to_others():
    sim = SimCluster()
    original = sim.run

    def run(host, command, **kw):
        if host.name == "node6" and command.startswith("cat "):
            return 1, "", "No such file"
        return original(host, command, **kw)

    sim.run = run
    sim.nodes["node6"].running = False
    sim.parts = [{"topic": "t", "partition": 0, "replicas": [4, 5], "min_isr": 1}]
    sim.nodes["node4"].changed = ["/etc/kafka/server.properties"]
    summary = roller(sim, limit=["node4"]).run()
    assert summary.restarted[0].name == "node4"
    assert any("node6" in w for w in summary.warnings)
    with pytest.raises(rolling.RollError) as err:
        roller(sim).run()
    assert err.value.host == "node6" and "server.properties" in str(err.value)


def test_the_node_manifest_tells_the_engine_what_the_process_reads():
    """A node converged with non-default paths (configuration and TLS elsewhere): without its manifest the
    engine's fixed list misses a renewed certificate; with it, the certificate's change restarts the node."""
    from ansible_collections.metal.kafka.plugins.module_utils import node as node_state

    sim = SimCluster()
    sim.nodes["node4"].changed = ["/srv/kafka/tls/keystore.pem"]
    assert restarted_after(sim) == []
    sim = SimCluster()
    sim.nodes["node4"].changed = ["/srv/kafka/tls/keystore.pem"]
    reads = ["/srv/kafka/etc/server.properties", "/srv/kafka/tls/keystore.pem", "/etc/systemd/system/kafka.service"]
    sim.nodes["node4"].manifest = node_state.manifest("kafka", "kafka.service", ["broker"], 4, reads,
                                                      config_dir="/srv/kafka/etc", install_root="/opt/kafka")
    assert restarted_after(sim) == ["node4"]
    assert sorted(sim.nodes["node4"].watched) == sorted(reads)
    assert "/etc/kafka/tls/keystore.pem" in sim.nodes["node5"].watched  # no manifest: the fixed list


def restarted_after(sim):
    roller(sim).run()
    return [h for kind, h in sim.events if kind == "stop"]


def test_partitions_leave_out_a_topic_deleted_while_they_are_read():
    """A topic deleted between the listing and the read of its settings (a client deleting topics during a roll)
    has no partitions left to keep in sync: it is left out, not a failure of the whole read."""
    from types import SimpleNamespace

    from confluent_kafka import KafkaError, KafkaException

    class Done:
        def __init__(self, value=None, error=None):
            self.value, self.error = value, error

        def result(self, timeout=None):
            if self.error:
                raise KafkaException(KafkaError(self.error))
            return self.value

    part = SimpleNamespace(replicas=[1, 2, 3], isrs=[1, 2, 3], leader=1)
    md = SimpleNamespace(topics={"kept": SimpleNamespace(error=None, partitions={0: part}),
                                 "gone": SimpleNamespace(error=None, partitions={0: part})})

    class Admin:
        def __init__(self, error):
            self.error = error

        def list_topics(self, timeout=None):
            return md

        def describe_configs(self, resources, request_timeout=None):
            out = {}
            for r in resources:
                if r.name == "gone":
                    out[r] = Done(error=self.error)
                else:
                    out[r] = Done({"min.insync.replicas": SimpleNamespace(value="2")})
            return out

    view = rolling.ClusterView([], {})
    view._admin = Admin(KafkaError.UNKNOWN_TOPIC_OR_PART)
    assert view.partitions() == [{"topic": "kept", "partition": 0, "replicas": [1, 2, 3], "isr": [1, 2, 3],
                                  "leader": 1, "min_isr": 2}]
    view._admin = Admin(KafkaError.TOPIC_AUTHORIZATION_FAILED)  # any other error still stops the read
    with pytest.raises(KafkaException):
        view.partitions()
