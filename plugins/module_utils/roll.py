# Copyright: kafka-metal contributors
# Apache License 2.0
"""Safe rolling restarts: the pure planning and gating decisions (no I/O).

Everything here works on plain data (dicts, lists, ints, strings) that the caller reads from
the cluster (admin API, ``kafka-metadata-quorum.sh``, ZooKeeper four-letter words), so the
same code runs on the Ansible controller and inside modules, and is unit-tested without hosts.
Every problem string names the partition or node and says what to do about it.

Data model
----------
``brokers``
    Mapping ``broker id -> {"host": str, "rack": str or None}`` (keys may be ints or numeric
    strings, as they come back from JSON). A plain iterable of ids is accepted too (no racks).
``partitions``
    List of ``{"topic": str, "partition": int, "replicas": [id, ...], "isr": [id, ...],
    "leader": id or -1, "min_isr": int}``; ``min_isr`` is the topic's *effective*
    ``min.insync.replicas`` (topic config, else broker default) and is required.
``quorum`` (KRaft, as DescribeQuorum reports it)
    ``{"leader_id": id or -1, "voters": [voter, ...], "observers": [voter, ...],
    "now_ms": int, "max_lag_ms": int, "max_lag_offsets": int}`` where a voter is
    ``{"id": id, "log_end_offset": int, "last_caught_up_timestamp": ms}`` or
    ``{"id": id, "lag": offsets}``. ``now_ms`` and the ``max_lag_*`` limits are optional
    (function arguments win; the limits default to :data:`DEFAULT_MAX_LAG_MS` and
    :data:`DEFAULT_MAX_LAG_OFFSETS`). Observers never count for the quorum.
``zookeeper`` (ZooKeeper mode)
    ``{"members": [{"host": str, "mode": "leader" | "follower" | "down" | None}, ...],
    "controller_id": broker id or -1}`` -- the member dicts of ``zookeeper.member_state``
    fit as they are.
``Step``
    One restart: ``Step(role, node)`` with role ``"zookeeper"`` (node = member host),
    ``"controller"``, ``"broker"`` or ``"combined"`` (a KRaft node that is both; it needs
    :func:`controller_gate` *and* :func:`broker_gate`). ``Step.key`` is ``"role:node"``.

How a caller rolls
------------------
1. ``preflight(...)``: any problem stops the run before the first restart.
2. ``remaining = resume_filter(restart_order(...), done, marker)`` skips nodes already
   restarted for this change (or already on the target version).
3. Loop: re-read the cluster, ``step = next_node(remaining, mode, <fresh leader ids>)``; wait for
   its gate with ``wait_for_gate(gate, time.sleep, backoff_delays())`` (a gate that never opens
   raises :class:`RollGateError`: it is never bypassed silently); restart the node, wait until it
   is back, record it as done, remove ``step`` from ``remaining``; stop when ``next_node`` is None.
   Brokers can instead be restarted in the batches of :func:`plan_batches`, each batch gated by
   :func:`batch_gate` right before it goes down.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

# "migration": a ZooKeeper-mode cluster on its way to KRaft (ZooKeeper members, KRaft controllers and brokers
# of either mode at once)
MODES = ("kraft", "zookeeper", "migration")
ROLES = ("zookeeper", "controller", "combined", "broker")
DEFAULT_MAX_LAG_MS = 10_000
DEFAULT_MAX_LAG_OFFSETS = 1_000


class RollGateError(RuntimeError):
    """A gate stayed closed for the whole back-off budget: the roll must stop here."""

    def __init__(self, what, problems, waited):
        self.what = what
        self.problems = list(problems)
        self.waited = waited
        detail = "\n".join(f"- {p}" for p in self.problems) or "- (the gate gave no reason)"
        super().__init__(f"{what}: still not safe after waiting {waited:g} s; stopping the roll here "
                         f"(fix the problems below and run again, finished nodes are skipped):\n{detail}")


# ---------------------------------------------------------------------------
# Partitions
# ---------------------------------------------------------------------------


class _Part(NamedTuple):
    """A partition normalised once: ``pos`` keeps the caller's order for stable messages."""

    pos: int
    name: str
    replicas: tuple
    isr: tuple
    leader: int
    min_isr: int


def partition_name(p):
    """``topic-partition``, the way Kafka prints a TopicPartition."""
    return f"{p['topic']}-{p['partition']}"


def _part(pos, p):
    leader = p.get("leader")
    return _Part(
        pos=pos,
        name=partition_name(p),
        replicas=tuple(int(r) for r in p.get("replicas") or ()),
        isr=tuple(int(r) for r in p.get("isr") or ()),
        leader=-1 if leader is None else int(leader),
        min_isr=int(p["min_isr"]),
    )


def _ids(ids):
    return "[" + ", ".join(str(i) for i in ids) + "]"


def _who(down):
    down = sorted(down)
    return f"broker {down[0]}" if len(down) == 1 else f"brokers {_ids(down)}"


def partition_problems(p):
    """Health of one partition before a roll: at most one problem, the most severe.

    Offline (leader -1 or empty ISR), then below its min ISR, then under-replicated. A partition whose
    replication factor is below its min ISR can never reach it and is not reported as "below min ISR"
    here (see :func:`batch_gate` which reports it); it is still reported if offline or under-replicated.
    """
    part = p if isinstance(p, _Part) else _part(0, p)
    out_of_sync = [r for r in part.replicas if r not in part.isr]
    if part.leader < 0 or not part.isr:
        return [f"partition {part.name} is offline (leader {part.leader}, in sync {_ids(part.isr)}, replicas "
                f"{_ids(part.replicas)}): start or repair brokers {_ids(part.replicas)} until it has a leader "
                "again; do not roll a cluster with offline partitions"]
    if len(part.replicas) >= part.min_isr and len(part.isr) < part.min_isr:
        return [f"partition {part.name} has {len(part.isr)} in-sync replica(s) {_ids(part.isr)}, below its "
                f"min.insync.replicas {part.min_isr} (acks=all writes already fail): bring brokers "
                f"{_ids(out_of_sync)} back in sync before rolling"]
    if out_of_sync:
        return [f"partition {part.name} is under-replicated (in sync {_ids(part.isr)} of replicas "
                f"{_ids(part.replicas)}): wait until brokers {_ids(out_of_sync)} catch up "
                "(kafka-topics.sh --describe --under-replicated-partitions) before rolling"]
    return []


def _unsatisfiable(part):
    return (f"partition {part.name}: replication factor {len(part.replicas)} is below its min.insync.replicas "
            f"{part.min_isr}, so it can never satisfy it and is not waited for; raise its replication factor or "
            "lower its min.insync.replicas")


def _assess(parts, down):
    """What taking the brokers ``down`` (a set) does to ``parts``: (blocking, reported)."""
    blocking, reported = [], []
    who = _who(down)
    for part in parts:
        if down.isdisjoint(part.replicas) and down.isdisjoint(part.isr):
            continue
        remaining = [r for r in part.isr if r not in down]
        rf = len(part.replicas)
        if part.isr and not remaining:
            hint = " (replication factor 1: it cannot be restarted without downtime; raise its replication factor)" \
                if rf == 1 else ""
            others = [r for r in part.replicas if r not in down]
            holds = "holds" if len(down) == 1 else "hold"
            blocking.append(f"partition {part.name}: {who} {holds} every in-sync replica {_ids(part.isr)}, so it would "
                            f"go offline; wait until replicas {_ids(others)} are back in sync{hint}")
            continue
        if rf < part.min_isr:
            reported.append(_unsatisfiable(part))
            continue
        if len(remaining) < part.min_isr:
            lagging = [r for r in part.replicas if r not in part.isr and r not in down]
            if lagging:
                todo = f"wait until replicas {_ids(lagging)} are back in sync"
            else:
                todo = (f"no restart of these brokers can keep it at its min ISR: restart fewer brokers at once, raise "
                        f"its replication factor or lower min.insync.replicas to {max(1, len(remaining))}")
            blocking.append(f"partition {part.name}: without {who} it keeps {len(remaining)} in-sync replica(s) "
                            f"{_ids(remaining)}, below min.insync.replicas {part.min_isr}; {todo}")
    return blocking, reported


def batch_gate(partitions, batch):
    """May all brokers of ``batch`` be down at the same time?

    Returns ``(ok, blocking, reported)``. For every partition hosted by the batch, the in-sync
    replicas outside the batch must number at least its min ISR. A partition whose whole ISR is
    in the batch blocks (it would go offline), whatever its settings. A partition whose replication
    factor is below its own min ISR can never satisfy it: it is only *reported* (otherwise the roll
    would wait forever). Call it right before the batch goes down, with freshly read partitions.
    """
    parts = [_part(i, p) for i, p in enumerate(partitions)]
    blocking, reported = _assess(parts, {int(b) for b in batch})
    return not blocking, blocking, reported


def broker_gate(partitions, broker_id):
    """May broker ``broker_id`` go down now? ``(ok, blocking, reported)``; see :func:`batch_gate`."""
    return batch_gate(partitions, [broker_id])


# ---------------------------------------------------------------------------
# KRaft quorum
# ---------------------------------------------------------------------------


def _leader_id(quorum):
    leader = quorum.get("leader_id")
    return None if leader is None or int(leader) < 0 else int(leader)


def _limits(quorum, now_ms, max_lag_ms, max_lag_offsets):
    now = now_ms if now_ms is not None else quorum.get("now_ms")
    lag_ms = max_lag_ms if max_lag_ms is not None else quorum.get("max_lag_ms", DEFAULT_MAX_LAG_MS)
    lag_offsets = max_lag_offsets if max_lag_offsets is not None \
        else quorum.get("max_lag_offsets", DEFAULT_MAX_LAG_OFFSETS)
    return now, lag_ms, lag_offsets


def voter_state(quorum, voter, now_ms=None, max_lag_ms=None, max_lag_offsets=None):
    """``(caught_up, detail)`` for one voter of ``quorum``.

    The leader is caught up by definition. Otherwise every criterion the voter has data for must hold:
    offset lag (``lag``, else the leader's ``log_end_offset`` minus the voter's) at most ``max_lag_offsets``,
    and ``now_ms - last_caught_up_timestamp`` at most ``max_lag_ms`` (needs ``now_ms``). Negative offsets or
    timestamps (Kafka's "unknown") fail; a voter with no usable data is not caught up.
    """
    now, lag_ms, lag_offsets = _limits(quorum, now_ms, max_lag_ms, max_lag_offsets)
    node = int(voter["id"])
    if node == _leader_id(quorum):
        return True, f"voter {node} (leader)"
    checks, facts = [], []
    lag = voter.get("lag")
    if lag is None and voter.get("log_end_offset") is not None:
        leo = int(voter["log_end_offset"])
        leader = next((v for v in quorum.get("voters") or () if int(v["id"]) == _leader_id(quorum)), None)
        if leo < 0:
            lag = -1
        elif leader is not None and leader.get("log_end_offset") is not None:
            lag = max(0, int(leader["log_end_offset"]) - leo)
    if lag is not None:
        lag = int(lag)
        checks.append(0 <= lag <= lag_offsets)
        facts.append("log end offset unknown" if lag < 0 else f"lag {lag} offsets")
    stamp = voter.get("last_caught_up_timestamp")
    if stamp is not None and now is not None:
        stamp = int(stamp)
        age = int(now) - stamp
        checks.append(stamp >= 0 and age <= lag_ms)
        facts.append("never caught up" if stamp < 0 else f"last caught up {age} ms ago")
    if not checks:
        return False, f"voter {node} (no lag or timestamp reported)"
    return all(checks), f"voter {node} ({', '.join(facts)})"


def caught_up_voters(quorum, now_ms=None, max_lag_ms=None, max_lag_offsets=None):
    """Sorted ids of the voters that are caught up (see :func:`voter_state`)."""
    return sorted(int(v["id"]) for v in quorum.get("voters") or ()
                  if voter_state(quorum, v, now_ms, max_lag_ms, max_lag_offsets)[0])


def _lagging_text(quorum, exclude, now_ms, max_lag_ms, max_lag_offsets):
    states = [voter_state(quorum, v, now_ms, max_lag_ms, max_lag_offsets) for v in quorum.get("voters") or ()
              if int(v["id"]) not in exclude]
    lagging = [detail for ok, detail in states if not ok]
    return ", ".join(lagging) if lagging else "none"


def quorum_problems(quorum, now_ms=None, max_lag_ms=None, max_lag_offsets=None):
    """Problems of a KRaft quorum that must stop a roll: no voters, no leader, no caught-up majority."""
    voters = quorum.get("voters") or []
    if not voters:
        return ["the KRaft quorum reports no voters: check controller.quorum.voters / "
                "controller.quorum.bootstrap.servers and the controllers' logs before rolling"]
    problems = []
    if _leader_id(quorum) is None:
        problems.append(f"the KRaft quorum has no leader (leader_id {quorum.get('leader_id')}): there is no active "
                        "controller; check the controllers' logs and network before rolling")
    caught = caught_up_voters(quorum, now_ms, max_lag_ms, max_lag_offsets)
    majority = len(voters) // 2 + 1
    if len(caught) < majority:
        lagging = _lagging_text(quorum, set(), now_ms, max_lag_ms, max_lag_offsets)
        problems.append(f"the KRaft quorum has {len(caught)} caught-up voter(s) {_ids(caught)} of {len(voters)}, a "
                        f"majority needs {majority}; lagging: {lagging}; wait for them to catch up or repair them "
                        "before rolling")
    return problems


def controller_gate(quorum, node_id, now_ms=None, max_lag_ms=None, max_lag_offsets=None):
    """May controller ``node_id`` go down now? ``(ok, problems)``.

    Only when the quorum has a leader and, without ``node_id``, a majority of the *whole* voter set is
    still caught up (so a new leader can be elected and commits continue). A node that is not a voter
    does not change the quorum, but the quorum must still be healthy. A single-voter quorum never passes
    (restarting its only controller is an outage).
    """
    node = int(node_id)
    voters = quorum.get("voters") or []
    problems = []
    if _leader_id(quorum) is None:
        problems.append(f"controller {node} may not go down: the KRaft quorum has no leader; check the controllers' "
                        "logs and wait for an election")
    caught = [v for v in caught_up_voters(quorum, now_ms, max_lag_ms, max_lag_offsets) if v != node]
    majority = len(voters) // 2 + 1
    if len(caught) < majority:
        lagging = _lagging_text(quorum, {node}, now_ms, max_lag_ms, max_lag_offsets)
        problems.append(f"controller {node} may not go down: without it {len(caught)} of {len(voters)} voters are "
                        f"caught up {_ids(caught)}, a majority needs {majority}; lagging: {lagging}; wait for them "
                        "to catch up or repair them first")
    return not problems, problems


# ---------------------------------------------------------------------------
# ZooKeeper ensemble
# ---------------------------------------------------------------------------


def _members(zookeeper):
    members = []
    for m in zookeeper.get("members") or ():
        mode = (m.get("mode") or "down").lower()
        members.append((str(m.get("host", m.get("id"))), mode))
    return members


def _modes_text(members):
    return ", ".join(f"{host}={mode}" for host, mode in members)


def zookeeper_problems(zookeeper):
    """Problems of a ZooKeeper ensemble that must stop a roll: no single leader, no serving majority,
    no active controller broker (``controller_id`` present and -1/None)."""
    members = _members(zookeeper)
    problems = []
    leaders = [h for h, mode in members if mode == "leader"]
    serving = [h for h, mode in members if mode in ("leader", "follower")]
    majority = len(members) // 2 + 1
    if len(leaders) != 1:
        what = "no leader" if not leaders else f"{len(leaders)} leaders {leaders}"
        problems.append(f"the ZooKeeper ensemble has {what} ({_modes_text(members)}): repair it (srvr on each member, "
                        "their logs) before rolling")
    if len(serving) < majority:
        problems.append(f"the ZooKeeper ensemble has no quorum: {len(serving)} of {len(members)} members serve, a "
                        f"majority needs {majority} ({_modes_text(members)}); start the down members before rolling")
    if "controller_id" in zookeeper:
        controller = zookeeper["controller_id"]
        if controller is None or int(controller) < 0:
            problems.append("no broker is the active controller (/controller in ZooKeeper is empty): check the "
                            "brokers' ZooKeeper sessions and logs before rolling")
    return problems


def zookeeper_gate(zookeeper, member):
    """May ZooKeeper member ``member`` (host) go down now? ``(ok, problems)``: only with a single leader
    and a serving majority of the ensemble left without it."""
    members = _members(zookeeper)
    member = str(member)
    problems = []
    leaders = [h for h, mode in members if mode == "leader"]
    if len(leaders) != 1:
        problems.append(f"ZooKeeper member {member} may not go down: the ensemble has no single leader "
                        f"({_modes_text(members)}); repair it first")
    serving = [h for h, mode in members if mode in ("leader", "follower") and h != member]
    majority = len(members) // 2 + 1
    if len(serving) < majority:
        down = [h for h, mode in members if mode not in ("leader", "follower") and h != member]
        problems.append(f"ZooKeeper member {member} may not go down: without it {len(serving)} of {len(members)} "
                        f"members serve, a majority needs {majority}; start {', '.join(down) or 'the down members'} "
                        "first")
    return not problems, problems


# ---------------------------------------------------------------------------
# Preflight
# ---------------------------------------------------------------------------


def preflight(partitions, quorum=None, zookeeper=None):
    """Problems that must stop a roll before it starts (empty list: the roll may start).

    Offline, below-min-ISR and under-replicated partitions (:func:`partition_problems`), a KRaft
    ``quorum`` without leader or caught-up majority (:func:`quorum_problems`, using the quorum's own
    ``now_ms``/``max_lag_*``), a ``zookeeper`` ensemble without leader or quorum, or without an active
    controller broker (:func:`zookeeper_problems`). A single lagging voter or down ZooKeeper member that
    leaves a majority does not stop the roll here; the per-node gates wait for it.
    """
    problems = []
    for i, p in enumerate(partitions):
        problems.extend(partition_problems(_part(i, p)))
    if quorum is not None:
        problems.extend(quorum_problems(quorum))
    if zookeeper is not None:
        problems.extend(zookeeper_problems(zookeeper))
    return problems


# ---------------------------------------------------------------------------
# Batches of brokers
# ---------------------------------------------------------------------------


@dataclass
class BatchPlan:
    """Brokers to restart together, in order.

    ``batches[i]`` (sorted ids) goes down at once for the reason ``reasons[i]``; ``rejected`` says which
    rack batches were unsafe and why; ``reported`` lists partitions that can never satisfy their min ISR
    (ignored for blocking).
    """

    batches: list = field(default_factory=list)
    reasons: list = field(default_factory=list)
    rejected: list = field(default_factory=list)
    reported: list = field(default_factory=list)

    def as_dict(self):
        return {"batches": [list(b) for b in self.batches], "reasons": list(self.reasons),
                "rejected": list(self.rejected), "reported": list(self.reported)}


def _racks(brokers):
    if isinstance(brokers, Mapping):
        return {int(b): (info or {}).get("rack") for b, info in brokers.items()}
    return {int(b): None for b in brokers}


def plan_batches(partitions, brokers, max_batch_size=None):
    """Group ``brokers`` into batches that may each be down at once; a :class:`BatchPlan`.

    A batch of several brokers is only planned when it is proven that every partition keeps at least its
    min ISR of in-sync replicas outside the batch (the rule of :func:`batch_gate`, on these partitions).
    1. Racks (sorted by name): all brokers of a rack, split in chunks of ``max_batch_size``; each chunk is
       checked and kept if safe. Brokers without a rack skip this step.
    2. Brokers of unsafe chunks, then those without a rack, are grouped greedily: take the first, add the
       next ones (by rack, then id) one at a time while the batch stays safe and under ``max_batch_size``.
    3. What is left alone is restarted one by one (a single broker is always planned; its live gate
       decides when it may go).
    The plan is a snapshot: gate every batch with :func:`batch_gate` again right before it goes down.
    """
    if max_batch_size is not None and int(max_batch_size) < 1:
        raise ValueError(f"max_batch_size must be at least 1 (or None for no limit), not {max_batch_size!r}")
    size = int(max_batch_size) if max_batch_size is not None else None
    racks = _racks(brokers)
    parts = [_part(i, p) for i, p in enumerate(partitions)]
    index = {}
    for part in parts:
        for b in set(part.replicas) | set(part.isr):
            index.setdefault(b, []).append(part)

    def relevant(batch):
        seen = {part.pos: part for b in batch for part in index.get(b, ())}
        return [seen[pos] for pos in sorted(seen)]

    plan = BatchPlan()
    plan.reported = [_unsatisfiable(part) for part in relevant(racks) if len(part.replicas) < part.min_isr]
    by_rack = {}
    for b in sorted(racks):
        if racks[b] is not None:
            by_rack.setdefault(str(racks[b]), []).append(b)
    pool = []
    for rack in sorted(by_rack):
        members = by_rack[rack]
        step = size or len(members)
        chunks = [members[i:i + step] for i in range(0, len(members), step)]
        for n, chunk in enumerate(chunks, 1):
            blocking, _ = _assess(relevant(chunk), set(chunk))
            part_of = f" (part {n} of {len(chunks)}, max_batch_size {size})" if len(chunks) > 1 else ""
            if blocking:
                plan.rejected.append(f"rack {rack}: brokers {_ids(chunk)}{part_of} may not be down together: "
                                     f"{blocking[0]}")
                pool.extend(chunk)
            else:
                plan.batches.append(chunk)
                plan.reasons.append(f"rack {rack}: brokers {_ids(chunk)}{part_of}; every partition keeps its min "
                                    "ISR with them down")
    pool.extend(b for b in sorted(racks) if racks[b] is None)

    while pool:
        first = pool.pop(0)
        batch, down, refused = [first], {first}, None
        for candidate in list(pool):
            if size is not None and len(batch) >= size:
                break
            blocking, _ = _assess(index.get(candidate, ()), down | {candidate})
            if blocking:
                refused = refused or f"not with broker {candidate}: {blocking[0]}"
                continue
            batch.append(candidate)
            down.add(candidate)
            pool.remove(candidate)
        batch.sort()
        plan.batches.append(batch)
        if len(batch) > 1:
            plan.reasons.append(f"greedy: brokers {_ids(batch)}; every partition keeps its min ISR with them down")
        elif size == 1:
            plan.reasons.append(f"one by one: broker {first} (max_batch_size 1)")
        elif refused:
            plan.reasons.append(f"one by one: broker {first} cannot be batched with any broker left, e.g. {refused}")
        else:
            plan.reasons.append(f"one by one: broker {first} (no other broker left to batch with)")
    return plan


# ---------------------------------------------------------------------------
# Restart order
# ---------------------------------------------------------------------------


class Step(NamedTuple):
    """One node to restart: ``role`` is one of :data:`ROLES`; ``node`` a node id or ZooKeeper host."""

    role: str
    node: object

    @property
    def key(self):
        return f"{self.role}:{self.node}"


def _natural(node):
    return (0, int(node), "") if isinstance(node, int) or str(node).isdigit() else (1, 0, str(node))


def _norm_id(node):
    return int(node) if isinstance(node, int) or str(node).isdigit() else node


def restart_order(mode, controllers=(), brokers=(), active_controller_id=None, zk_members=(), zk_leader=None,
                  controller_broker_id=None):
    """The order of restarts as a list of :class:`Step`, cheap to recompute with fresh leader ids.

    KRaft: controllers other than the active one (by id), the active controller, then brokers (by id);
    a node in both lists restarts once, as a ``"combined"`` step among the controllers. ZooKeeper mode:
    ZooKeeper followers, the ZooKeeper leader, then brokers with the controller broker last. Leaders that
    are unknown (None) or not in the lists change nothing.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    broker_ids = sorted({_norm_id(b) for b in brokers}, key=_natural)
    if mode == "kraft":
        if zk_members:
            raise ValueError("KRaft mode has no ZooKeeper members to restart")
        ctrl = sorted({_norm_id(c) for c in controllers}, key=_natural)
        active = _norm_id(active_controller_id) if active_controller_id is not None else None
        ordered = [c for c in ctrl if c != active] + [c for c in ctrl if c == active]
        steps = [Step("combined" if c in broker_ids else "controller", c) for c in ordered]
        return steps + [Step("broker", b) for b in broker_ids if b not in ctrl]
    if controllers and mode == "zookeeper":
        raise ValueError("ZooKeeper mode has no KRaft controllers to restart")
    ctrl = sorted({_norm_id(c) for c in controllers}, key=_natural)
    active = _norm_id(active_controller_id) if active_controller_id is not None else None
    kraft_steps = [Step("controller", c) for c in ctrl if c != active] + [Step("controller", c) for c in ctrl
                                                                          if c == active]
    zk = sorted({str(m) for m in zk_members}, key=_natural)
    leader = str(zk_leader) if zk_leader is not None else None
    steps = [Step("zookeeper", m) for m in zk if m != leader] + [Step("zookeeper", m) for m in zk if m == leader]
    controller = _norm_id(controller_broker_id) if controller_broker_id is not None else None
    ordered = [b for b in broker_ids if b != controller] + [b for b in broker_ids if b == controller]
    return steps + kraft_steps + [Step("broker", b) for b in ordered]


def next_node(remaining, mode, active_controller_id=None, zk_leader=None, controller_broker_id=None):
    """The step to restart now among ``remaining`` (Steps or ``(role, node)`` pairs), or None when done.

    Call it before every restart with the leader ids just read from the cluster: the active controller
    (or ZooKeeper leader, or controller broker) may have moved since the last step.
    """
    steps = [Step(*s) for s in remaining]
    unknown = sorted({s.role for s in steps} - set(ROLES))
    if unknown:
        raise ValueError(f"unknown restart roles {unknown}: use {', '.join(ROLES)}")
    order = restart_order(
        mode,
        controllers=[s.node for s in steps if s.role in ("controller", "combined")],
        brokers=[s.node for s in steps if s.role in ("broker", "combined")],
        active_controller_id=active_controller_id,
        zk_members=[s.node for s in steps if s.role == "zookeeper"],
        zk_leader=zk_leader,
        controller_broker_id=controller_broker_id,
    )
    return order[0] if order else None


# ---------------------------------------------------------------------------
# Waiting and resuming
# ---------------------------------------------------------------------------


def backoff_delays(initial=1.0, factor=2.0, maximum=30.0, total=600.0):
    """Sleep durations: ``initial``, times ``factor`` each time, capped at ``maximum``; their sum never
    exceeds ``total`` (the last one is shortened to fit). Finite: when it ends, the wait has failed."""
    if initial <= 0 or maximum <= 0 or factor < 1 or total < 0:
        raise ValueError("backoff_delays needs initial > 0, maximum > 0, factor >= 1 and total >= 0")
    spent, delay = 0.0, float(initial)
    while True:
        step = min(delay, float(maximum), total - spent)
        if step <= 1e-9:
            return
        yield step
        spent = math.fsum((spent, step))
        delay = min(delay * factor, float(maximum))


def wait_for_gate(check, sleep, delays=None, what="gate"):
    """Call ``check()`` (returns ``(ok, problems, ...)``, re-reading the cluster each time) until it is ok,
    sleeping ``delays`` (default :func:`backoff_delays`) in between; returns the seconds waited.

    When the delays run out the gate is still closed: :class:`RollGateError` is raised with the last
    problems -- a gate is never bypassed. ``sleep`` is injected (``time.sleep`` in real use).
    """
    waited = 0.0
    delays = iter(backoff_delays() if delays is None else delays)
    while True:
        result = check()
        if result[0]:
            return waited
        delay = next(delays, None)
        if delay is None:
            raise RollGateError(what, result[1], waited)
        sleep(delay)
        waited += delay


def node_key(node):
    """How nodes are compared when resuming: ``"role:node"`` for a Step or ``(role, node)`` pair, else
    ``str(node)`` (so keys read back from JSON, like ``"3"``, match broker 3)."""
    if isinstance(node, tuple | list) and len(node) == 2:
        return f"{node[0]}:{node[1]}"
    return str(node)


def resume_filter(nodes, done, marker=None):
    """``nodes`` (in order) without those already done.

    ``done`` is either a collection of nodes restarted for this change, or a mapping node -> marker
    (the change id the node was restarted for, or the version it runs); with a mapping a node is done
    only when its marker equals ``marker`` (the current change id / target version), compared as strings.
    Nodes match by :func:`node_key`.
    """
    if isinstance(done, Mapping):
        if marker is None:
            raise ValueError("done is a mapping node -> marker: pass the marker of this change (change id or "
                             "target version)")
        finished = {node_key(k) for k, v in done.items() if v is not None and str(v) == str(marker)}
    else:
        finished = {node_key(k) for k in done or ()}
    return [n for n in nodes if node_key(n) not in finished]
