"""The migration to KRaft: what each node runs, which phase that makes the cluster, the next step, each phase's
settings, the prechecks and site.yml's check that the inventory names the phase the cluster is in."""

import pytest
from ansible_collections.metal.kafka.plugins.module_utils import cluster
from ansible_collections.metal.kafka.plugins.module_utils import migration as m

ZK = {"zookeeper.connect": "zk1:2181/kafka", "broker.id": "4"}
MIGRATING = {**ZK, m.MIGRATION_FLAG: "true"}
KRAFT_BROKER = {"process.roles": "broker", "node.id": "4"}
MIGRATION_CONTROLLER = {"process.roles": "controller", "node.id": "1", m.MIGRATION_FLAG: "true"}
KRAFT_CONTROLLER = {"process.roles": "controller", "node.id": "1"}


@pytest.mark.parametrize("settings, formatted, stage", [
    (ZK, False, "zookeeper"),
    (MIGRATING, True, "migrating"),
    (KRAFT_BROKER, True, "kraft"),
    (MIGRATION_CONTROLLER, True, "migration"),
    (MIGRATION_CONTROLLER, False, "absent"),  # never formatted, or moved aside by a rollback
    (KRAFT_CONTROLLER, True, "kraft"),
    (None, False, "absent"),
    ({"log.dirs": "/data"}, False, "unknown"),
])
def test_node_stage(settings, formatted, stage):
    assert m.node_stage(settings, formatted) == stage


def _b(*stages):
    return {f"b{i}": s for i, s in enumerate(stages)}


def _c(*stages):
    return {f"c{i}": s for i, s in enumerate(stages)}


COPIED = {"kraft_metadata_offset": 120}
NOT_COPIED = {"kraft_metadata_offset": -1}


@pytest.mark.parametrize("brokers, controllers, znode, phase, settled, forward, back", [
    # plain ZooKeeper mode, controllers listed in the inventory but never started
    (_b("zookeeper", "zookeeper"), _c("absent", "absent"), None, "none", True, "controllers", None),
    # a rollback that stopped after the controllers were moved aside but before /migration was deleted
    (_b("zookeeper", "zookeeper"), _c("absent"), NOT_COPIED, "none", False, "back:none", "back:none"),
    (_b("zookeeper", "zookeeper"), _c("migration", "migration"), None, "controllers", True, "dual_write",
     "back:none"),
    # one controller formatted, another not yet: the step that starts them runs again
    (_b("zookeeper"), _c("migration", "absent"), None, "controllers", True, "dual_write", "back:none"),
    # brokers half rolled into migration mode
    (_b("migrating", "zookeeper"), _c("migration"), NOT_COPIED, "dual_write", False, "dual_write", "back:none"),
    # all rolled, metadata not yet copied: dual write is not settled until the copy is recorded
    (_b("migrating", "migrating"), _c("migration"), NOT_COPIED, "dual_write", False, "dual_write", "back:none"),
    (_b("migrating", "migrating"), _c("migration"), COPIED, "dual_write", True, "kraft_brokers", "back:none"),
    (_b("kraft", "migrating"), _c("migration"), COPIED, "kraft_brokers", False, "kraft_brokers",
     "back:dual_write"),
    (_b("kraft", "kraft"), _c("migration"), COPIED, "kraft_brokers", True, "finalized", "back:dual_write"),
    (_b("kraft", "kraft"), _c("kraft", "migration"), COPIED, "finalized", False, "finalized", "error"),
    (_b("kraft", "kraft"), _c("kraft", "kraft"), None, "finalized", True, None, "error"),
    # controllers gone while brokers still point at them: a rollback half done
    (_b("migrating", "zookeeper"), _c("absent"), COPIED, "none", False, "back:none", "back:none"),
    # configured, not yet restarted: the configured phase, unsettled, so the step completes
    (_b("migrating*", "zookeeper"), _c("migration"), None, "dual_write", False, "dual_write", "back:none"),
    (_b("kraft*", "migrating"), _c("migration"), COPIED, "kraft_brokers", False, "kraft_brokers",
     "back:dual_write"),
])
def test_phase_and_next_step(brokers, controllers, znode, phase, settled, forward, back):
    state = m.cluster_phase(brokers, controllers, znode)
    assert (state["phase"], state["settled"]) == (phase, settled)
    assert m.next_step(state) == forward
    if back == "error":
        with pytest.raises(m.MigrationError, match="no way back"):
            m.next_step(state, rollback=True)
    else:
        assert m.next_step(state, rollback=True) == back


@pytest.mark.parametrize("brokers, controllers, message", [
    (_b("kraft", "zookeeper"), _c("migration"), "roll the plain ZooKeeper brokers into migration mode"),
    (_b("migrating", "migrating"), _c("kraft", "migration"), "put zookeeper.metadata.migration.enable=true back"),
    (_b("zookeeper"), _c("migration"), None),
    ({"b0": "unknown"}, _c("migration"), "names neither ZooKeeper nor KRaft"),
])
def test_states_no_step_leaves_behind_are_refused(brokers, controllers, message):
    if message is None:
        m.cluster_phase(brokers, controllers)
        return
    with pytest.raises(m.MigrationError, match=message):
        m.cluster_phase(brokers, controllers)


KRAFT = {"process.roles": "broker", "node.id": "4", "controller.quorum.voters": "1@c1:9093",
         "controller.listener.names": "CONTROLLER", "metadata.log.dir": "/meta"}
ZK_SETTINGS = {"broker.id": "4", "zookeeper.connect": "zk:2181/kafka", "log.dirs": "/data"}


def _props(phase, roles=("broker",)):
    return m.node_properties(phase=phase, roles=list(roles), kraft=KRAFT if "broker" in roles else
                             {"process.roles": "controller", "node.id": "1"},
                             zookeeper=ZK_SETTINGS if "broker" in roles else {},
                             zookeeper_connect="zk:2181/kafka", metadata_dir="/meta")


def test_broker_settings_follow_the_phase():
    assert _props("none") == ZK_SETTINGS
    assert _props("controllers") == {**ZK_SETTINGS, "inter.broker.protocol.version": "3.9"}
    dual = _props("dual_write")
    assert dual[m.MIGRATION_FLAG] == "true" and dual["zookeeper.connect"] == "zk:2181/kafka"
    assert dual["controller.quorum.voters"] == "1@c1:9093" and dual["broker.id"] == "4"
    assert dual["metadata.log.dir"] == "/meta" and "process.roles" not in dual
    assert _props("kraft_brokers") == KRAFT


def test_controllers_run_in_migration_mode_in_every_phase_before_finalize():
    for phase in ("none", "controllers", "dual_write", "kraft_brokers"):
        props = _props(phase, roles=("controller",))
        assert props[m.MIGRATION_FLAG] == "true"
        assert props["zookeeper.connect"] == "zk:2181/kafka"
        assert props["inter.broker.listener.name"] == "INTERNAL"


def test_combined_nodes_and_unknown_phases_are_refused():
    with pytest.raises(ValueError, match="combined node"):
        _props("controllers", roles=("broker", "controller"))
    with pytest.raises(ValueError, match="unknown migration phase"):
        _props("finalized")


def _precheck(**over):
    args = {"version": "3.9.1", "broker_settings": {}, "controller_settings": {}, "cluster_id": "abc"}
    args.update(over)
    return m.precheck_problems(**args)


@pytest.mark.parametrize("over, message", [
    ({"version": "3.8.1"}, "needs Kafka 3.9.x"),
    ({"broker_settings": {"control.plane.listener.name": "CP"}}, "broker_properties sets control.plane"),
    ({"controller_settings": {"zookeeper.set.acl": "true"}}, "controller_properties sets zookeeper.set.acl"),
    ({"broker_settings": {"inter.broker.protocol.version": "3.8"}}, "needs 3.9"),
    ({"cluster_id": None}, "no cluster id"),
])
def test_precheck_names_the_problem_and_the_fix(over, message):
    problems = _precheck(**over)
    assert any(message in p for p in problems), problems


def test_precheck_passes_a_ready_cluster():
    assert _precheck() == []
    assert _precheck(broker_settings={"inter.broker.protocol.version": "3.9"}) == []


BROKERS = {"b1": 4, "b2": 5, "b3": 6}
CONTROLLERS = {"c1": 1, "c2": 2, "c3": 3}
ENSEMBLE = {"z1": 1, "z2": 2, "z3": 3}


def _shape(migration="controllers", controllers=CONTROLLERS, brokers=BROKERS, zookeepers=ENSEMBLE):
    return cluster.topology_errors(controllers, brokers, "zookeeper", zookeepers, migration=migration)


@pytest.mark.parametrize("over, message", [
    ({"controllers": {}}, "group kafka_controllers is empty"),
    ({"controllers": {"c1": 1, "c2": 2}}, "odd number"),
    ({"controllers": {"c1": 4, "c2": 2, "c3": 3}}, "kafka_node_id 4 is used by b1, c1"),
    ({"controllers": {"b1": 4, "c2": 2, "c3": 3}}, "b1 is in kafka_controllers and the kafka_brokers group"),
    ({"zookeepers": {"c1": 1, "z2": 2, "z3": 3}}, "c1 is in kafka_controllers and the zookeeper group"),
    ({"migration": "dualwrite"}, "kafka_zookeeper_migration is 'dualwrite'"),
])
def test_the_shape_of_a_migrating_cluster_is_validated(over, message):
    errors = _shape(**over)
    assert any(message in e for e in errors), errors


def test_a_migrating_cluster_may_list_its_controllers():
    assert _shape() == []
    # without a migration, controllers in a ZooKeeper-mode inventory are still refused, with the way to migrate
    assert any("kafka-metal migrate kraft" in e for e in _shape(migration="none"))
    assert any("belongs to a ZooKeeper-mode cluster" in e for e in cluster.topology_errors(
        CONTROLLERS, BROKERS, "kraft", migration="dual_write"))


@pytest.mark.parametrize("inventory, mode, brokers, controllers, problem", [
    ("none", "zookeeper", _b("zookeeper"), {}, None),
    ("controllers", "zookeeper", _b("zookeeper"), _c("migration"), None),
    # a converge with the inventory behind the cluster would undo the migration
    ("none", "zookeeper", _b("migrating"), _c("migration"), "undo"),
    # ahead of it would skip a phase
    ("kraft_brokers", "zookeeper", _b("zookeeper"), _c("migration"), "skip"),
    # KRaft in the inventory while the brokers still run with ZooKeeper: finalized too early
    ("none", "kraft", _b("migrating"), _c("migration"), "kafka_zookeeper_migration: dual_write"),
    ("none", "kraft", _b("zookeeper"), {}, "only through the migration"),
    ("none", "kraft", _b("kraft"), _c("kraft"), None),
    ("none", "kraft", {}, {}, None),  # new hosts
    ("none", "kraft", _b("kraft"), _c("absent"), None),  # a KRaft cluster being built
])
def test_site_yml_agrees_with_the_cluster(inventory, mode, brokers, controllers, problem):
    problems = m.inventory_problems(inventory, mode, brokers, controllers)
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problem in problems[0], problems


def test_inventory_lines_per_phase():
    assert "kafka_zookeeper_migration: dual_write" in m.inventory_changes("dual_write")
    assert "kafka_metadata_mode: kraft" in m.inventory_changes("finalized")


@pytest.mark.parametrize("znode, done", [(None, False), ({}, False), (NOT_COPIED, False), (COPIED, True),
                                         ({"kraft_metadata_offset": "x"}, False)])
def test_migration_complete(znode, done):
    assert m.migration_complete(znode) is done
