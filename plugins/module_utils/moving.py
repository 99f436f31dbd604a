# Copyright: kafka-metal contributors
# Apache License 2.0
"""The engine that moves replicas between brokers: drain, rebalance, abort (the plans are in :mod:`moves`).

Every run starts from what the cluster says (its assignment, the reassignments in flight, the replica sizes)
and from a small state file written before anything changes (the original replica sets and the throttle
settings found), so a run killed at any point is resumed by running it again, and ``abort`` restores the
original sets.

A move goes in two reassignments (:func:`moves.stages`): *add* puts the new replicas beside the old ones, and
only when every moving partition has them in sync does *settle* drop the leaving replicas. Until then an
abort cancels what is in flight and drops the added replicas: nothing has to be copied back. Preferred
leadership is taken off leaving brokers before any copy starts. Only the moving replicas are throttled
(``leader.replication.throttled.replicas`` on their current replicas, ``follower.replication.throttled.replicas``
on the new ones, and the rates on the brokers involved); the throttle settings found before are put back at
the end, also after an abort.

The I/O is behind :class:`Cluster` (confluent-kafka's admin client for metadata, configs and elections; the
project's wire client for reassignments and log directories, which confluent-kafka does not offer); tests
give a fake with the same methods.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter

from . import files, moves

LEADER_RATE, FOLLOWER_RATE = "leader.replication.throttled.rate", "follower.replication.throttled.rate"
LEADER_REPLICAS, FOLLOWER_REPLICAS = "leader.replication.throttled.replicas", "follower.replication.throttled.replicas"
BROKER_THROTTLES = (LEADER_RATE, FOLLOWER_RATE)
TOPIC_THROTTLES = (LEADER_REPLICAS, FOLLOWER_REPLICAS)


class MoveError(Exception):
    """The operation cannot go on; the message names the partition or broker and the fix."""


class NothingToDo(MoveError):
    """The operation has nothing to do (a healthy broker asked to be rebuilt)."""


class Stopped(Exception):
    """The run was asked to stop (the moves in flight go on in Kafka; run the command again to resume)."""


_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2, "mib": 1024**2,
          "g": 1000**3, "gb": 1000**3, "gib": 1024**3}


def parse_rate(text):
    """``2MB``, ``1.5MiB``, ``500k`` or a number of bytes (per second) -> bytes per second."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*?)(?:/s)?\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"throttle {text!r}: give bytes per second, such as 2MB, 1.5MiB or 500000")
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if value < 1024:
        raise ValueError(f"throttle {text!r} is below 1 KiB/s: replication could not keep up with any writes")
    return int(value)


# --- the state kept between runs -------------------------------------------------------------------


def state_path(state_dir, cluster_id):
    return os.path.join(os.path.expanduser(state_dir), f"{cluster_id}.json")


def read_state(path):
    try:
        with open(path) as fh:
            return json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise MoveError(f"the state file {path} cannot be read ({exc}): move it away only if no operation is "
                        "under way (kafka-metal broker status shows the reassignments in flight)") from None


def write_state(path, state):
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    files.write_file(path, json.dumps(state, indent=1, sort_keys=True).encode(), 0o600)


def _key(tp):
    return f"{tp[0]}\t{tp[1]}"


def _tp(key):
    topic, _, partition = key.rpartition("\t")
    return topic, int(partition)


# --- throttles -------------------------------------------------------------------------------------


def throttle_settings(move_list, rate):
    """The throttle settings for these moves: per topic, the leader side (every current replica of a moving
    partition, since any of them may lead while it moves) and the follower side (the new replicas); per broker
    taking part, both rates."""
    topics, brokers = {}, set()
    for m in move_list:
        if not m.adding:
            continue
        entry = topics.setdefault(m.topic, {LEADER_REPLICAS: set(), FOLLOWER_REPLICAS: set()})
        entry[LEADER_REPLICAS].update((m.partition, b) for b in m.before)
        entry[FOLLOWER_REPLICAS].update((m.partition, b) for b in m.adding)
        brokers.update(m.before)
        brokers.update(m.adding)
    topic_configs = {t: {k: ",".join(f"{p}:{b}" for p, b in sorted(v)) for k, v in e.items()}
                     for t, e in topics.items()}
    broker_configs = {b: {LEADER_RATE: str(int(rate)), FOLLOWER_RATE: str(int(rate))} for b in sorted(brokers)}
    return topic_configs, broker_configs


def rebuild_leader_rates(plan, leaders, broker, rate):
    """Leader-side rates for the brokers a rebuilt broker fetches from, adding up to ``rate``: each leader's share
    in proportion to the bytes it sends, so that all finish together and the refetch runs at ``rate`` from its
    first second (the broker's own follower throttle can only be set once it is up). A replica that leads
    nothing now gets an even share, in case leadership moves to it."""
    sends = Counter()
    sources = set()
    for m in plan:
        sources.update(b for b in m.before if b != broker)
        leader = leaders.get((m.topic, m.partition))
        if leader is not None and leader != broker:
            sends[leader] += m.bytes
    total = sum(sends.values())
    floor = max(1024, rate // (4 * max(1, len(sources))))
    return {b: max(floor, int(rate * sends[b] / total)) if total and b in sends else max(floor, rate // len(sources))
            for b in sorted(sources)}


# --- progress ---------------------------------------------------------------------------------------


class Progress:
    """Bytes copied so far (the sizes of the new replicas on their brokers), the rate over the last minute and
    an estimate of the time left."""

    def __init__(self, total, clock=time.monotonic):
        self.total, self.clock = total, clock
        self.samples = []

    def add(self, copied):
        now = self.clock()
        self.samples.append((now, copied))
        self.samples = [(t, c) for t, c in self.samples if now - t <= 60] or [(now, copied)]

    @property
    def copied(self):
        return self.samples[-1][1] if self.samples else 0

    @property
    def rate(self):
        if len(self.samples) < 2:
            return 0.0
        (t0, c0), (t1, c1) = self.samples[0], self.samples[-1]
        return max(0.0, (c1 - c0) / (t1 - t0)) if t1 > t0 else 0.0

    def line(self):
        left = max(0, self.total - self.copied)
        eta = f", about {_duration(left / self.rate)} left" if self.rate > 0 and left else ""
        pct = 100.0 * min(self.copied, self.total) / self.total if self.total else 100.0
        return (f"{moves._human(min(self.copied, self.total))} of {moves._human(self.total)} copied ({pct:.0f} %), "
                f"{moves._human(self.rate)}/s{eta}")


def _duration(seconds):
    seconds = int(seconds)
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


# --- the engine -------------------------------------------------------------------------------------


def usual_replication(assignment):
    """Each topic's replication factor: the replica count most of its partitions have."""
    per_topic = {}
    for (topic, _), replicas in assignment.items():
        per_topic.setdefault(topic, Counter())[len(replicas)] += 1
    return {t: c.most_common(1)[0][0] for t, c in per_topic.items()}


def health_problems(view):
    """What must be fixed before data is moved: partitions with a replica out of sync (a move needs every copy
    in sync, or it would rest on fewer copies than the topic asks for)."""
    out = []
    for tp, replicas in sorted(view["assignment"].items()):
        isr = view["isr"].get(tp, replicas)
        missing = [b for b in replicas if b not in isr]
        if missing:
            out.append(f"partition {moves.tp_name(tp)} is under-replicated (replicas {replicas}, in sync {isr})")
    if out:
        more = f" and {len(out) - 5} more" if len(out) > 5 else ""
        return [f"{'; '.join(out[:5])}{more}: wait until every replica is in sync (or bring back the broker "
                "that is behind) before moving data"]
    return []


class Engine:
    """One operation (drain, rebalance, abort) against one cluster. ``cluster`` is a :class:`Cluster` (or a fake),
    ``say`` prints a line, ``stop()`` says whether to stop (a signal)."""

    def __init__(self, cluster, state_dir, say=print, throttle=None, poll=2.0, max_moves=50,
                 replica_skew=0.10, byte_skew=0.15, sleep=time.sleep, clock=time.monotonic, stop=lambda: False,
                 rate_window=5.0):
        self.cluster, self.state_dir, self.say = cluster, state_dir, say
        self.rate_window = rate_window
        self.throttle, self.poll, self.max_moves = throttle, poll, max_moves
        self.replica_skew, self.byte_skew = replica_skew, byte_skew
        self.sleep, self.clock, self.stop = sleep, clock, stop
        self.path = state_path(state_dir, cluster.cluster_id())
        self.state = read_state(self.path)

    # planning

    def plan(self, kind, brokers=(), measure=True):
        """The moves this operation makes now, and the view of the cluster they were made from. A resumed run
        keeps every target chosen before (from the state file, or from the reassignments in flight), so that no
        partition is copied twice. ``measure``: the write rates too (a few seconds), which a drain's moves do
        not depend on."""
        view = self.measured_view() if measure else dict(self.cluster.view(), growth={})
        in_flight = self.cluster.in_flight()
        saved = {_tp(k): v for k, v in (self.state or {}).get("targets", {}).items()}
        if kind == "rebalance" and self.state:
            plan = [moves.Move(tp[0], tp[1], view["assignment"][tp], target, view["sizes"].get(tp, 0))
                    for tp, target in sorted(saved.items())
                    if tp in view["assignment"] and (view["assignment"][tp] != target or tp in in_flight)]
            return plan, view, in_flight
        snapshot = moves.Snapshot(view["brokers"], view["assignment"], view["sizes"], view["free"])
        if kind == "rebalance":
            return self._rebalance(snapshot, view), view, in_flight
        if kind != "drain":
            raise ValueError(kind)
        leaving = set(brokers)
        rf = usual_replication(view["assignment"])
        fixed = {tp: t for tp, t in saved.items() if tp in view["assignment"] and not set(t) & leaving}
        for tp, r in in_flight.items():
            target = [b for b in r["replicas"] if b not in r["removing"]]
            if tp not in fixed:
                # an add stage in flight (more replicas than before it) still holds the leaving replica: the
                # target drops it
                grows = len(target) > len(r["replicas"]) - len(r["adding"])
                fixed[tp] = [b for b in target if b not in leaving] if grows else target
        for tp, replicas in view["assignment"].items():
            # replicas added beside the old ones by an earlier run (more than the topic has): keep them
            if tp not in fixed and set(replicas) & leaving and len(replicas) > rf.get(tp[0], len(replicas)):
                fixed[tp] = [b for b in replicas if b not in leaving]
        return moves.drain(snapshot, leaving, fixed=fixed), view, in_flight

    def measured_view(self):
        """The cluster's view with sizes, and each partition's write rate in bytes per second (``growth``)
        measured over ``rate_window`` seconds: the lower bound on time counts the writes that the new replicas
        must keep up with, and a rebalance plans for the sizes at its end."""
        first = self.cluster.view()
        if not self.rate_window:
            first["growth"] = {}
            return first
        started = self.clock()
        self.sleep(self.rate_window)
        view = self.cluster.view()
        took = self.clock() - started
        view["growth"] = {tp: (size - first["sizes"].get(tp, size)) / took for tp, size in view["sizes"].items()
                          if size > first["sizes"].get(tp, size)} if took > 0 else {}
        return view

    def _rebalance(self, snapshot, view):
        """The rebalance's moves. Under writes, the partitions grow while they move: the plan is made for the
        sizes they will have when the copy ends (at the throttle), a little inside the byte skew, so that the
        cluster is still within the skews when the moves are done. The moves report today's sizes."""
        plan = moves.rebalance(snapshot, self.replica_skew, self.byte_skew)
        growth = view.get("growth") or {}
        if not growth or not self.throttle or not plan:
            return plan
        seconds = moves.lower_bound_seconds(plan, view["leaders"], self.throttle, growth)
        if seconds == float("inf"):
            return plan
        later = {tp: size + growth.get(tp, 0.0) * seconds for tp, size in view["sizes"].items()}
        ahead = moves.Snapshot(snapshot.brokers, snapshot.assignment, later, snapshot.free)
        planned = moves.rebalance(ahead, self.replica_skew, self.byte_skew * 0.95)
        return [moves.Move(m.topic, m.partition, m.before, m.after, view["sizes"].get((m.topic, m.partition), 0))
                for m in planned]

    def dry_run(self, kind, brokers=()):
        plan, view, _ = self.plan(kind, brokers)
        return self.describe(plan, view)

    def describe(self, plan, view):
        rate = self.throttle
        growth = view.get("growth") or {}
        bound = moves.lower_bound_seconds(plan, view["leaders"], rate, growth) if rate else None
        moving = {(m.topic, m.partition) for m in plan if m.adding}
        return {"moves": [m.as_dict() for m in plan], "bytes": moves.total_bytes(plan), "partitions": len(plan),
                "throttle": rate, "lower_bound_seconds": bound,
                "write_rate": round(sum(r for tp, r in growth.items() if tp in moving), 1)}

    # running

    def run(self, kind, brokers=()):
        """Drain ``brokers`` (kind ``drain``) or even out the cluster (``rebalance``), to the end."""
        if self.state and (self.state.get("kind") != kind or sorted(self.state.get("brokers", [])) != sorted(brokers)):
            raise MoveError(f"another operation is under way ({self.state.get('kind')} of brokers "
                            f"{self.state.get('brokers')}, state in {self.path}): finish it by running it again, or "
                            "abort it (--abort) first")
        resumed = self.state is not None
        in_flight = self.cluster.in_flight()
        if in_flight and not resumed:
            names = ", ".join(moves.tp_name(tp) for tp in sorted(in_flight)[:5])
            raise MoveError(f"reassignments not started by kafka-metal are in flight ({names}"
                            f"{' ...' if len(in_flight) > 5 else ''}): let them finish or cancel them first")
        rounds = 0
        while True:
            plan, view, in_flight = self.plan(kind, brokers, measure=kind == "rebalance")
            if not resumed and rounds == 0:
                problems = health_problems(view)
                if problems:
                    raise MoveError(problems[0])
            if not plan:
                break
            rounds += 1
            self._begin(kind, brokers, plan, view)
            if kind == "drain":
                self._leadership_first(plan, brokers, in_flight)
            self._execute(plan, view)
            if kind != "drain":
                break  # a rebalance plans once; a drain scans again for partitions created meanwhile
        self._finish(kind, brokers)

    def _begin(self, kind, brokers, plan, view):
        state = self.state or {"kind": kind, "brokers": sorted(brokers), "original": {}, "targets": {},
                               "throttles": None, "started": time.time()}
        for m in plan:
            state["original"].setdefault(_key((m.topic, m.partition)), list(m.before))
            state["targets"][_key((m.topic, m.partition))] = list(m.after)
        if state["throttles"] is None:
            state["throttles"] = self.cluster.throttles()  # what was set before: put back at the end
        self.state = state
        write_state(self.path, state)

    def _leadership_first(self, plan, leaving, in_flight):
        reorder = {tp: r for tp, r in moves.leadership_first(plan, leaving).items() if tp not in in_flight}
        if not reorder:
            return
        self.say(f"moving preferred leadership off broker {', '.join(map(str, sorted(leaving)))} "
                 f"({len(reorder)} partitions)")
        self._submit(reorder)
        self._wait(lambda view, flight: all(view["assignment"].get(tp) == r for tp, r in reorder.items())
                   and not set(reorder) & set(flight), "the new replica order")
        self.cluster.elect_preferred(sorted(reorder))
        self._wait(lambda view, flight: all(view["leaders"].get(tp) not in set(leaving) for tp in reorder),
                   "leaders off the leaving brokers")

    def _execute(self, plan, view):
        copying = [m for m in plan if m.adding]
        total = moves.total_bytes(copying)
        if self.throttle:
            self._set_throttles(copying)
        progress = Progress(total, self.clock)
        self.say(f"{len(plan)} partitions to move, {moves._human(total)} to copy"
                 + (f", throttled to {moves._human(self.throttle)}/s" if self.throttle else ""))
        pending = {(m.topic, m.partition): m for m in plan}
        added = {}
        last_line = 0.0
        while True:
            view = self.cluster.view(sizes=False)
            flight = self.cluster.in_flight()
            for tp, m in pending.items():
                current = view["assignment"].get(tp)
                add, settle = moves.stages(m)
                if current is None or tp in flight:
                    continue
                in_sync = set(view["isr"].get(tp, [])) >= set(m.after)
                if current == settle or (set(current) >= set(m.after) and in_sync):
                    added[tp] = m
            waiting = [tp for tp in pending if tp not in added and tp not in flight]
            room = self.max_moves - len([tp for tp in flight if tp in pending])
            submit = {}
            for tp in waiting[:max(0, room)]:
                add, _ = moves.stages(pending[tp])
                if view["assignment"].get(tp) != add:
                    submit[tp] = add
            if submit:
                self._submit(submit)
            copied = self.cluster.copied({tp: m.adding for tp, m in pending.items()})
            progress.add(copied)
            if self.clock() - last_line >= 10:
                self.say(progress.line())
                last_line = self.clock()
            if len(added) == len(pending):
                break
            if self.stop():
                raise Stopped("stopped; the moves in flight go on in Kafka: run the same command again to resume, "
                              "or with --abort to undo")
            self.sleep(self.poll)
        self.say(progress.line())
        # every new replica is in sync: now drop the old ones (nothing is copied)
        settle = {}
        for tp, m in pending.items():
            _, final = moves.stages(m)
            if view["assignment"].get(tp) != final:
                settle[tp] = final
        if settle:
            self.say(f"removing the old replicas of {len(settle)} partitions")
            self._submit(settle)
            self._wait(lambda v, f: all(v["assignment"].get(tp) == r for tp, r in settle.items())
                       and not set(settle) & set(f), "the old replicas to be removed")

    def _finish(self, kind, brokers):
        state = self.state
        if state is None:
            self.say("nothing to move")
            return
        moved = [_tp(k) for k in state.get("targets", {})]
        if moved:
            self.cluster.elect_preferred(moved)
        if kind == "drain":
            self._wait(lambda v, f: not self.cluster.holds(brokers), "the leaving brokers to delete their replicas",
                       timeout=600)
        self._wait(lambda v, f: not health_problems(v), "every partition to have all its replicas in sync",
                   timeout=600)
        self._restore_throttles()
        os.unlink(self.path)
        self.state = None
        self.say("done: every replica is in sync and the throttles are removed")

    def abort(self):
        """Cancel the moves in flight and put every partition back on its original replicas."""
        if not self.state:
            flight = self.cluster.in_flight()
            if flight:
                raise MoveError(f"{len(flight)} reassignments are in flight but none was started from here (no state "
                                f"in {self.path}): cancel them with Kafka's own tools")
            self.say("nothing to abort")
            return
        kind = self.state.get("kind")
        original = {_tp(k): v for k, v in self.state.get("original", {}).items()}
        flight = self.cluster.in_flight()
        cancel = {tp: None for tp in flight if tp in original}
        if cancel:
            self.say(f"cancelling {len(cancel)} moves in flight")
            self._submit(cancel)
            self._wait(lambda v, f: not set(cancel) & set(f), "the cancelled moves to stop")
        view = self.cluster.view()
        back = {tp: r for tp, r in original.items() if tp in view["assignment"] and view["assignment"][tp] != r}
        copying = [moves.Move(tp[0], tp[1], view["assignment"][tp], r, view["sizes"].get(tp, 0))
                   for tp, r in back.items()]
        if any(m.adding for m in copying):
            # partitions already settled: their old replicas must be copied back
            if self.throttle:
                self._set_throttles(copying)
            self.say(f"copying back {sum(1 for m in copying if m.adding)} partitions")
        if back:
            self.say(f"restoring the original replicas of {len(back)} partitions")
            self._submit(back)
            self._wait(lambda v, f: all(v["assignment"].get(tp) == r for tp, r in back.items())
                       and not set(back) & set(f), "the original replicas", timeout=None)
        self.cluster.elect_preferred(sorted(original))
        self._restore_throttles()
        os.unlink(self.path)
        self.state = None
        if kind == "rebuild":
            self.say("aborted: the throttles are removed (the broker goes on fetching its replicas, unthrottled)")
        else:
            self.say("aborted: every partition has its original replicas, and the throttles are removed")

    # rebuilding a broker whose disks were replaced

    def rebuild_plan(self, broker, view=None):
        """The replicas broker ``broker`` must fetch back: one move per partition it is a replica of (from the
        others to the others and itself), with the partition's size, and the view it was made from."""
        view = view or self.cluster.view()
        plan = [moves.Move(tp[0], tp[1], [b for b in r if b != broker], list(r), view["sizes"].get(tp, 0))
                for tp, r in sorted(view["assignment"].items()) if broker in r]
        return plan, view

    def rebuild_dry_run(self, broker):
        plan, view = self.rebuild_plan(broker, self.measured_view())
        return self.describe(plan, view)

    def rebuild_needed(self, broker, planned=None):
        """Whether ``broker`` is missing replicas: not registered, or out of the in-sync set of a partition."""
        plan, view = planned or self.rebuild_plan(broker)
        return broker not in view["brokers"] or any(
            broker not in view["isr"].get((m.topic, m.partition), []) for m in plan)

    def rebuild_prepare(self, broker):
        """Checks, then the throttles on every replica broker ``broker`` fetches back, set before it starts.
        Returns whether the broker still has to be started (it is not registered)."""
        if self.state and (self.state.get("kind") != "rebuild" or self.state.get("brokers") != [broker]):
            raise MoveError(f"another operation is under way ({self.state.get('kind')} of brokers "
                            f"{self.state.get('brokers')}, state in {self.path}): finish it by running it again, or "
                            "abort it (--abort) first")
        plan, view = self.rebuild_plan(broker)
        if not plan:
            raise MoveError(f"no partition has a replica on broker {broker}: nothing to rebuild (check the node id)")
        registered = broker in view["brokers"]
        if not self.state:
            flight = self.cluster.in_flight()
            if flight:
                names = ", ".join(moves.tp_name(tp) for tp in sorted(flight)[:5])
                raise MoveError(f"reassignments are in flight ({names}{' ...' if len(flight) > 5 else ''}): let "
                                "them finish or cancel them before rebuilding a broker")
            only = [moves.tp_name((m.topic, m.partition)) for m in plan
                    if not set(view["isr"].get((m.topic, m.partition), [])) - {broker}]
            if only:
                raise MoveError(f"broker {broker} is the only in-sync replica of {', '.join(only[:5])}"
                                f"{' ...' if len(only) > 5 else ''}: that data exists nowhere else, and a rebuilt "
                                "broker starts empty. Bring the broker's old disks back, or bring another replica "
                                "in sync first")
            others = {"assignment": {tp: r for tp, r in view["assignment"].items() if broker not in r},
                      "isr": view["isr"]}
            problems = health_problems(others)
            if problems:
                raise MoveError(problems[0])
            if not self.rebuild_needed(broker, (plan, view)):
                raise NothingToDo(f"broker {broker} is running and every replica it has is in sync: nothing to "
                                  "rebuild (a broker is rebuilt after its data disks were replaced)")
            self.state = {"kind": "rebuild", "brokers": [broker], "original": {}, "targets": {},
                          "throttles": self.cluster.throttles(), "started": time.time()}
            write_state(self.path, self.state)
        if self.throttle:
            self._set_throttles(plan, skip=set() if registered else {broker},
                                leader_rates=rebuild_leader_rates(plan, view["leaders"], broker, self.throttle))
        return not registered

    def rebuild_finish(self, broker):
        """After the broker started on its new disks: its follower throttle, progress until every replica it has
        is in sync, then the throttles removed and its preferred leadership given back."""
        if not self.state or self.state.get("kind") != "rebuild" or self.state.get("brokers") != [broker]:
            raise MoveError(f"no rebuild of broker {broker} is under way (no state in {self.path}): start it with "
                            "rebuild")
        self._wait(lambda v, f: broker in v["brokers"], f"broker {broker} to register", timeout=600)
        plan, view = self.rebuild_plan(broker)
        if self.throttle:  # the rebuilt broker's own rates, now that it answers
            self._set_throttles(plan, leader_rates=rebuild_leader_rates(plan, view["leaders"], broker, self.throttle))
        pending = {(m.topic, m.partition) for m in plan}
        progress = Progress(moves.total_bytes(plan), self.clock)
        self.say(f"broker {broker} fetches back {len(plan)} replicas, {moves._human(progress.total)}"
                 + (f", throttled to {moves._human(self.throttle)}/s" if self.throttle else ""))
        last_line = 0.0
        while True:
            view = self.cluster.view(sizes=False)
            progress.add(self.cluster.copied({tp: [broker] for tp in pending}))
            if self.clock() - last_line >= 10:
                self.say(progress.line())
                last_line = self.clock()
            if all(broker in view["isr"].get(tp, []) for tp in pending if tp in view["assignment"]):
                break
            if self.stop():
                raise Stopped("stopped; the broker goes on fetching under the throttle: run the same command again "
                              "to resume, or with --abort to remove the throttles")
            self.sleep(self.poll)
        self.say(progress.line())
        self._restore_throttles()
        preferred = sorted(tp for tp in pending if view["assignment"].get(tp, [None])[0] == broker)
        self.cluster.elect_preferred(preferred)
        self._wait(lambda v, f: all(v["leaders"].get(tp) == broker for tp in preferred),
                   f"broker {broker} to lead its preferred partitions again")
        os.unlink(self.path)
        self.state = None
        self.say(f"done: broker {broker} has every replica in sync and leads its preferred partitions; the "
                 "throttles are removed")

    # helpers

    def _set_throttles(self, copying, skip=(), leader_rates=None):
        topics, brokers = throttle_settings(copying, self.throttle)
        for b, rate in (leader_rates or {}).items():
            brokers[b][LEADER_RATE] = str(rate)
        brokers = {b: c for b, c in brokers.items() if b not in skip}  # a broker that is down is set when it is up
        touched = self.state.setdefault("touched", {"topics": [], "brokers": []})
        touched["topics"] = sorted(set(touched["topics"]) | set(topics))
        touched["brokers"] = sorted(set(touched["brokers"]) | set(brokers))
        write_state(self.path, self.state)  # before the change: an interrupted run still removes them
        self.cluster.set_throttles(topics, brokers)

    def _restore_throttles(self):
        saved = self.state.get("throttles") or {}
        self.cluster.restore_throttles(saved, self.state.get("touched"))

        def same(now, before):
            return {str(k): v for k, v in now.items()} == {str(k): v for k, v in (before or {}).items()}

        self._wait(lambda v, f: all(same(self.cluster.throttles()[k], saved.get(k)) for k in ("topics", "brokers")),
                   "the throttle settings to be removed", timeout=60)

    def _submit(self, targets):
        refused = self.cluster.reassign(targets)
        if refused:
            first = sorted(refused.items())[:5]
            raise MoveError("Kafka refused the reassignment of " + "; ".join(
                f"{moves.tp_name(tp)} ({why})" for tp, why in first) + ": see the broker's log; the moves accepted "
                "go on (run the command again to resume, or --abort)")

    def _wait(self, done, what, timeout=300):
        deadline = None if timeout is None else self.clock() + timeout
        while True:
            view, flight = self.cluster.view(sizes=False), self.cluster.in_flight()
            if done(view, flight):
                return
            if deadline is not None and self.clock() > deadline:
                raise MoveError(f"waited {timeout} s for {what}: check the brokers' logs; run the command again to "
                                "resume")
            if self.stop():
                raise Stopped("stopped; run the same command again to resume")
            self.sleep(self.poll)
