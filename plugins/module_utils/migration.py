# Copyright: kafka-metal contributors
# Apache License 2.0
"""Moving a ZooKeeper-mode cluster (Kafka 3.9.x) to KRaft, in phases that are read back from the cluster.

The phases, in order (the inventory names the phase the cluster is in with ``kafka_zookeeper_migration``)::

    none           ZooKeeper mode: brokers run with ZooKeeper, no KRaft controller runs
    controllers    KRaft controllers run in migration mode beside ZooKeeper; brokers unchanged
    dual_write     brokers run in ZooKeeper mode with the migration on: the controllers copied the
                   metadata from ZooKeeper and write every change to both (stay here as long as you like)
    kraft_brokers  brokers run in KRaft mode; the controllers still write to ZooKeeper
    finalized      controllers out of migration mode (kafka_metadata_mode: kraft); ZooKeeper stopped and
                   left on disk. No way back.

Every phase before ``finalized`` can be rolled back to ``none``. Pure decisions over plain data: what each
node runs (from its own ``server.properties`` and unit state), which phase that makes the cluster, what
settings a node gets in a phase, which steps take the cluster from one phase to another, and what the
inventory must say afterwards.
"""

from __future__ import annotations

PHASES = ("none", "controllers", "dual_write", "kraft_brokers", "finalized")
# the values of kafka_zookeeper_migration (finalized is kafka_metadata_mode: kraft)
INVENTORY_PHASES = PHASES[:-1]
MIGRATION_FLAG = "zookeeper.metadata.migration.enable"
# The metadata version the brokers must run before a migration (Kafka 3.9's documented requirement).
INTER_BROKER_PROTOCOL = "3.9"


class MigrationError(ValueError):
    """A request or a cluster state the migration cannot act on; the text says what to do."""


# ---------------------------------------------------------------------------
# What a node runs
# ---------------------------------------------------------------------------


def node_stage(settings, formatted):
    """What one Kafka node runs, from its configuration and whether its metadata directory is formatted.

    Brokers: ``zookeeper`` (plain ZooKeeper mode), ``migrating`` (ZooKeeper mode with the migration on),
    ``kraft``. Controllers: ``migration`` (KRaft controller in migration mode), ``kraft``, or ``absent`` when
    not configured or not formatted (never provisioned, or its metadata moved aside by a rollback). A node
    without a configuration is ``absent``; one whose configuration names neither mode is ``unknown``.
    A stopped node keeps its stage: the phase is what the cluster is configured to run.
    """
    settings = settings or {}
    roles = [r.strip() for r in str(settings.get("process.roles", "")).split(",") if r.strip()]
    migration = str(settings.get(MIGRATION_FLAG, "false")).strip().lower() == "true"
    if "controller" in roles:
        if not formatted:
            return "absent"
        return "migration" if migration else "kraft"
    if roles == ["broker"]:
        return "kraft"
    if settings.get("zookeeper.connect"):
        return "migrating" if migration else "zookeeper"
    return "absent" if not settings else "unknown"


def cluster_phase(brokers, controllers, migration_znode=None):
    """The phase of the cluster from what its nodes run.

    ``brokers`` / ``controllers``: mapping host -> stage (:func:`node_stage`; with a ``*`` when the node was
    configured for that stage but still runs an older configuration); ``migration_znode``: the data
    of ZooKeeper's ``/migration`` node (a dict), None when absent or not read. Returns ``{"phase",
    "settled", "detail"}``: ``settled`` is False while a phase is half done (some brokers rolled, others
    not), in which case ``phase`` is the phase being entered or left; running the step again completes it.
    Raises :class:`MigrationError` for states no step of the migration leaves behind.
    """
    detail = {"brokers": dict(sorted(brokers.items())), "controllers": dict(sorted(controllers.items()))}
    bad = sorted(h for h, s in {**brokers, **controllers}.items() if s == "unknown")
    if bad:
        raise MigrationError(f"cannot tell what {', '.join(bad)} run(s): their server.properties names neither "
                             "ZooKeeper nor KRaft; fix the node's configuration first")
    changing = sorted(h for h, s in {**brokers, **controllers}.items() if s.endswith("*"))
    if changing:
        # configured for a stage but still running an older one: the step that wrote the configuration was cut
        # short; the phase is the configured one, unsettled, so that the step runs again and completes it
        state = cluster_phase({h: s.rstrip("*") for h, s in brokers.items()},
                              {h: s.rstrip("*") for h, s in controllers.items()}, migration_znode)
        return {**state, "settled": False, "detail": detail}
    b = set(brokers.values()) - {"absent"}
    c = set(controllers.values()) - {"absent"}

    def state(phase, settled):
        return {"phase": phase, "settled": settled, "detail": detail}

    if "kraft" in b and "zookeeper" in b:
        raise MigrationError("brokers run in KRaft mode beside brokers in plain ZooKeeper mode (" + _mixed(brokers)
                             + "): roll the plain ZooKeeper brokers into migration mode (kafka_zookeeper_migration:"
                             " dual_write) before anything else")
    if "kraft" in c or (not c and b <= {"kraft"} and b):
        if not b <= {"kraft"}:
            raise MigrationError("controllers left migration mode while brokers still run with ZooKeeper ("
                                 + _mixed(brokers) + "); put zookeeper.metadata.migration.enable=true back on "
                                 "every controller and restart them one at a time")
        return state("finalized", "migration" not in c)
    if not c:
        if "migrating" in b:
            return state("none", False)  # controllers gone while brokers still point at them: a rollback half done
        return state("none", migration_znode is None)
    if b == {"zookeeper"} or not b:
        return state("controllers", True)
    if b == {"migrating"}:
        # settled once the controllers copied ZooKeeper's metadata (they write to both from then on)
        return state("dual_write", migration_complete(migration_znode))
    if b == {"kraft"}:
        return state("kraft_brokers", True)
    if b <= {"zookeeper", "migrating"}:
        return state("dual_write", False)
    return state("kraft_brokers", False)


def _mixed(stages):
    return ", ".join(f"{h}: {s}" for h, s in sorted(stages.items()))


def migration_complete(znode):
    """Whether ZooKeeper's ``/migration`` node says the controllers copied the metadata (dual write runs)."""
    try:
        return int((znode or {}).get("kraft_metadata_offset", -1)) >= 0
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------------------
# Steps between phases
# ---------------------------------------------------------------------------

STEP_TEXT = {
    "controllers": "start the KRaft controllers in migration mode (formatted with ZooKeeper's cluster id)",
    "dual_write": "roll the brokers into migration mode; the controllers copy the metadata from ZooKeeper "
                  "and then write every change to both",
    "kraft_brokers": "roll the brokers to KRaft mode (the controllers keep writing to ZooKeeper)",
    "finalized": "take the controllers out of migration mode, one at a time, and stop ZooKeeper (its data "
                 "stays on disk); there is no way back after this",
    "back:dual_write": "roll the brokers back to ZooKeeper mode, migration still on",
    "back:none": "stop the controllers, clear /controller and /migration in ZooKeeper (a broker becomes the "
                 "controller again), roll the brokers to plain ZooKeeper mode, move the controllers' metadata "
                 "aside",
}


def next_step(state, rollback=False):
    """The phase the next run moves the cluster to (``None``: nothing to do), from :func:`cluster_phase`.

    Forward, a half-done phase is completed before the next one starts. Back, the brokers leave KRaft mode
    first, then everything else returns to ZooKeeper mode in one step.
    """
    phase, settled = state["phase"], state["settled"]
    if rollback:
        if phase == "finalized":
            raise MigrationError("the migration was finalized: the controllers left migration mode and no longer "
                                 "write to ZooKeeper, so ZooKeeper's metadata is out of date; there is no way "
                                 "back to ZooKeeper mode (restore from a backup into a new cluster if you must)")
        if phase == "kraft_brokers":
            return "back:dual_write"
        if phase == "none" and settled:
            return None
        return "back:none"
    if phase == "finalized":
        return None if settled else "finalized"
    if not settled:
        return phase if phase != "none" else "back:none"
    return PHASES[PHASES.index(phase) + 1]


def step_target(step):
    """The phase a step leaves the cluster in."""
    return step.split(":", 1)[1] if step.startswith("back:") else step


def inventory_changes(phase):
    """What the inventory must say for the cluster in ``phase`` (site.yml then agrees with the cluster)."""
    if phase == "finalized":
        return ["kafka_metadata_mode: kraft",
                "remove kafka_zookeeper_migration (or set it to none)",
                "empty the zookeeper group (ZooKeeper is stopped; its data stays on the hosts until you remove it)",
                "kafka_version may now move to 4.x with the rolling upgrade"]
    lines = ["kafka_metadata_mode: zookeeper", f"kafka_zookeeper_migration: {phase}"]
    if phase == "none":
        lines.append("the kafka_controllers group may stay for the next attempt, or be emptied")
    return lines


# ---------------------------------------------------------------------------
# Settings of a node in a phase
# ---------------------------------------------------------------------------


def node_properties(*, phase, roles, kraft, zookeeper, zookeeper_connect, metadata_dir):
    """kafka-metal's own settings of a node in a migration ``phase`` (inventory settings go on top).

    ``kraft``: the node's settings as a KRaft node; ``zookeeper``: a broker's settings in ZooKeeper mode
    (empty for a controller). Controllers run in migration mode in every phase before ``finalized``; brokers
    keep ZooKeeper mode in ``controllers``, add the migration and the controller quorum in ``dual_write``
    and become KRaft brokers in ``kraft_brokers``.
    """
    if phase not in INVENTORY_PHASES:
        raise ValueError(f"unknown migration phase {phase!r}")
    roles = list(roles)
    if "controller" in roles and "broker" in roles:
        raise ValueError("a combined node cannot take part in a migration")
    if "controller" in roles:
        props = dict(kraft)
        props.update({MIGRATION_FLAG: "true", "zookeeper.connect": zookeeper_connect,
                      "inter.broker.listener.name": "INTERNAL"})
        return props
    if phase == "kraft_brokers":
        return dict(kraft)
    props = dict(zookeeper)
    if phase in ("controllers", "dual_write"):
        props["inter.broker.protocol.version"] = INTER_BROKER_PROTOCOL
    if phase == "dual_write":
        props.update({MIGRATION_FLAG: "true",
                      "controller.quorum.voters": kraft["controller.quorum.voters"],
                      "controller.listener.names": "CONTROLLER",
                      "metadata.log.dir": metadata_dir})
    return props


# ---------------------------------------------------------------------------
# Prechecks
# ---------------------------------------------------------------------------

# Settings that stop or break a migration when an operator set them (name -> why, and the fix).
BLOCKING_SETTINGS = {
    "control.plane.listener.name": "KRaft has no separate control plane listener; remove the setting",
    "broker.id.generation.enable": "brokers must keep the ids they have; remove the setting",
    "authorizer.class.name": "kafka-metal sets the authorizer of each phase itself; remove the setting",
    "zookeeper.set.acl": "controllers must be able to write ZooKeeper's nodes during dual write; remove it",
}


def precheck_problems(*, version, broker_settings, controller_settings, cluster_id):
    """Problems that stop a migration from starting, each with its fix (empty list: go ahead). The shape of
    the cluster (dedicated controllers, an odd number of them, ids of their own) is the inventory
    validation's (:func:`cluster.topology_errors` with the migration phase), which runs first.

    ``broker_settings`` / ``controller_settings``: the inventory's extra settings (broker_properties,
    controller_properties); ``cluster_id``: the id ZooKeeper holds (None when it could not be read).
    """
    problems = []
    parts = str(version).split(".")
    if parts[:2] != ["3", "9"]:
        problems.append(f"kafka_version is {version}: a migration to KRaft needs Kafka 3.9.x on every node; "
                        "upgrade the ZooKeeper-mode cluster to 3.9.1 with the rolling upgrade first")
    for source, settings in (("broker_properties", broker_settings), ("controller_properties",
                                                                       controller_settings)):
        for key, why in BLOCKING_SETTINGS.items():
            if key in (settings or {}):
                problems.append(f"{source} sets {key}: {why}")
        ibp = (settings or {}).get("inter.broker.protocol.version")
        if ibp is not None and str(ibp) != INTER_BROKER_PROTOCOL:
            problems.append(f"{source} sets inter.broker.protocol.version={ibp}: the migration needs "
                            f"{INTER_BROKER_PROTOCOL}; remove the setting")
    if cluster_id is None:
        problems.append("ZooKeeper holds no cluster id (/cluster/id under the chroot): start the brokers once in "
                        "ZooKeeper mode, or check kafka_zookeeper_chroot")
    return problems


def inventory_problems(inventory_phase, mode, brokers, controllers):
    """site.yml's check: the inventory must describe the phase the cluster is configured in (a converge in
    the middle of a migration must neither undo it nor jump ahead). ``brokers`` / ``controllers``: mapping
    host -> :func:`node_stage` as read from the hosts. Empty list: they agree."""
    wanted = "finalized" if mode == "kraft" else inventory_phase
    configured = {s.rstrip("*") for s in {**brokers, **controllers}.values()}
    try:
        found = cluster_phase(brokers, controllers)["phase"]
    except MigrationError as exc:
        if mode == "kraft" and not {"zookeeper", "migrating", "migration"} & configured:
            return []  # a KRaft cluster in an odd state is not a migration's business
        return [f"the cluster's nodes are in no migration phase: {exc}"]
    if found == wanted or (mode == "kraft" and found == "none"
                           and not {"zookeeper", "migrating"} & configured):
        return []
    if mode == "kraft" and found == "none":
        return ["the inventory says kafka_metadata_mode: kraft but the brokers run in ZooKeeper mode: a cluster moves "
                "to KRaft only through the migration (kafka-metal migrate kraft); set kafka_metadata_mode: "
                "zookeeper"]
    fix = "; ".join(inventory_changes(found))
    return [f"the cluster is in migration phase {found!r} but the inventory says {wanted!r}: a converge now "
            f"would {'skip' if _before(found, wanted) else 'undo'} part of the migration. Set in the "
            f"inventory: {fix}; or move the cluster with kafka-metal migrate kraft"]


def _before(a, b):
    return PHASES.index(a) < PHASES.index(b)
