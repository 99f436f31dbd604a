# Copyright: kafka-metal contributors
# Apache License 2.0
"""Planning data movement between brokers, without I/O: which replicas move where, in which steps, and how
long it must take at least. The engine (:mod:`moving`) reads the cluster, asks here, and applies.

The cluster is a :class:`Snapshot`: the registered brokers with their racks, each partition's replicas
(preferred leader first), each partition's size in bytes, and optionally each broker's free bytes.

- :func:`drain` moves every replica off the leaving brokers, and nothing else: each partition that has a
  replica there gets one new replica per leaving broker, in the leaving broker's place in the list (so it
  inherits preferred leadership), chosen so that racks stay distinct and the brokers' bytes stay even. The
  bytes it moves are exactly the bytes the leaving brokers hold, the least any drain can move.
- :func:`rebalance` evens out replica counts and bytes after brokers join: it moves one replica at a time
  from the fullest broker to the emptiest that can take it, choosing the partition whose size best closes
  the gap, and stops as soon as both spreads are within the skew asked for. A partition moved twice is one
  move (its replica goes straight to where it ends).
- :func:`stages` splits moves into the two reassignments the engine submits: first *add* (the new replicas
  join while every old one stays; cancelling this restores the old set instantly, with nothing to copy
  back), then *settle* (the final list; only removals, nothing copied).

Refusals (:class:`PlanError`) name the partition or broker and the fix.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field


class PlanError(Exception):
    """The move cannot be planned safely; the message names what and how to fix it."""


@dataclass
class Snapshot:
    brokers: dict  # broker id -> rack (None when the cluster has no racks)
    assignment: dict  # (topic, partition) -> [replica ids], preferred leader first
    sizes: dict = field(default_factory=dict)  # (topic, partition) -> bytes
    free: dict = field(default_factory=dict)  # broker id -> usable bytes of its log directories

    def size(self, tp):
        return int(self.sizes.get(tp, 0))

    def load(self, assignment=None):
        """Replica count and bytes per registered broker under ``assignment`` (default: the current one)."""
        counts = {b: 0 for b in self.brokers}
        nbytes = {b: 0 for b in self.brokers}
        for tp, replicas in (assignment or self.assignment).items():
            for b in replicas:
                if b in counts:
                    counts[b] += 1
                    nbytes[b] += self.size(tp)
        return counts, nbytes


@dataclass
class Move:
    topic: str
    partition: int
    before: list
    after: list
    size: int

    @property
    def adding(self):
        return [b for b in self.after if b not in self.before]

    @property
    def removing(self):
        return [b for b in self.before if b not in self.after]

    @property
    def bytes(self):
        """Bytes this move copies: one copy of the partition per new replica."""
        return self.size * len(self.adding)

    def as_dict(self):
        return {"topic": self.topic, "partition": self.partition, "before": list(self.before),
                "after": list(self.after), "size": self.size}


def tp_name(tp):
    return f"{tp[0]}-{tp[1]}"


def _racks_used(snapshot, replicas):
    return [snapshot.brokers.get(b) for b in replicas]


def _rack_diverse(snapshot, replicas):
    """Whether the replicas sit on distinct racks (vacuously true for a cluster without racks)."""
    racks = _racks_used(snapshot, replicas)
    if all(r is None for r in racks):
        return True
    return len(set(racks)) == len(racks)


def _has_racks(snapshot):
    return any(r is not None for r in snapshot.brokers.values())


def _rack_ok(snapshot, candidate, others, keep_diverse):
    if not keep_diverse or not _has_racks(snapshot):
        return True
    return snapshot.brokers.get(candidate) not in _racks_used(snapshot, others)


# --- drain --------------------------------------------------------------------------------------------


def drain_checks(snapshot, leaving, fixed=()):
    """Refusals that do not depend on the choice of destinations (partitions in ``fixed`` have theirs)."""
    unknown = sorted(set(leaving) - set(snapshot.brokers))
    if unknown:
        raise PlanError(f"broker {', '.join(map(str, unknown))} is not registered in the cluster (registered: "
                        f"{', '.join(map(str, sorted(snapshot.brokers)))}): give the node id of a running broker")
    remaining = sorted(set(snapshot.brokers) - set(leaving))
    if not remaining:
        raise PlanError("no broker would remain: a drain needs brokers to move the replicas to")
    too_wide = {}
    for tp, replicas in snapshot.assignment.items():
        if tp not in fixed and set(replicas) & set(leaving) and len(replicas) > len(remaining):
            too_wide.setdefault(tp[0], len(replicas))
    if too_wide:
        worst = ", ".join(f"{t} (replication factor {rf})" for t, rf in sorted(too_wide.items())[:5])
        raise PlanError(f"only {len(remaining)} brokers would remain, fewer than the replicas of {worst}: add a "
                        "broker first, or lower those topics' replication factor")


def drain(snapshot, leaving, fixed=None, reserve=0.10):
    """Moves that take every replica off ``leaving``. ``fixed`` maps partitions whose move is already under way
    (a resumed run) to their target, which is kept so that nothing is copied twice. A destination keeps
    ``reserve`` of its free bytes unused."""
    leaving = set(leaving)
    fixed = fixed or {}
    drain_checks(snapshot, leaving, {tp for tp, t in fixed.items() if not set(t) & leaving})
    counts, nbytes = snapshot.load()
    incoming = {b: 0 for b in snapshot.brokers}
    moves = []
    todo = sorted((tp for tp, r in snapshot.assignment.items() if set(r) & leaving),
                  key=lambda tp: (-snapshot.size(tp), tp))
    for tp in todo:
        before = list(snapshot.assignment[tp])
        if tp in fixed and not set(fixed[tp]) & leaving:
            after = list(fixed[tp])
        else:
            after = _replace(snapshot, tp, before, leaving, counts, nbytes, incoming, reserve)
        move = Move(tp[0], tp[1], before, after, snapshot.size(tp))
        for b in move.adding:
            incoming[b] += move.size
            counts[b] += 1
            nbytes[b] += move.size
        for b in move.removing:
            counts[b] -= 1
            nbytes[b] -= move.size
        moves.append(move)
    return moves


def _replace(snapshot, tp, before, leaving, counts, nbytes, incoming, reserve):
    size = snapshot.size(tp)
    keep_diverse = _rack_diverse(snapshot, before)
    after = list(before)
    for i, b in enumerate(before):
        if b not in leaving:
            continue
        others = [x for x in after if x != b and x not in leaving]
        candidates = [c for c in snapshot.brokers if c not in leaving and c not in after]
        fits = [c for c in candidates if _fits(snapshot, c, size, incoming, reserve)]
        if not fits:
            raise PlanError(f"partition {tp_name(tp)} ({_human(size)}) fits on none of brokers "
                            f"{', '.join(map(str, sorted(candidates)))} (free space less the {int(reserve * 100)} % "
                            "kept free): free disk space or add a broker first")
        racked = [c for c in fits if _rack_ok(snapshot, c, others, keep_diverse)]
        if not racked:
            used = sorted({str(r) for r in _racks_used(snapshot, others)})
            raise PlanError(f"partition {tp_name(tp)}: every broker that could take its replica from broker {b} is "
                            f"in a rack it already uses ({', '.join(used)}): add a broker in another rack, or drain "
                            "fewer brokers of one rack at a time")
        # the same rack as the leaving broker first (the partition's rack layout stays as it was), then the
        # broker that ends with the fewest bytes, then the fewest replicas
        same_rack = [c for c in racked if snapshot.brokers.get(c) == snapshot.brokers.get(b)] \
            if _has_racks(snapshot) else racked
        pool = same_rack or racked
        choice = min(pool, key=lambda c: (nbytes[c] + size, counts[c], c))
        after[i] = choice
    return after


def _fits(snapshot, broker, size, incoming, reserve):
    if broker not in snapshot.free:
        return True
    return incoming[broker] + size <= snapshot.free[broker] * (1 - reserve)


def _human(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


# --- rebalance ----------------------------------------------------------------------------------------


def spread(values):
    """(max - min) / mean of a broker -> figure mapping; 0 for an empty or all-zero one."""
    vals = list(values.values())
    if not vals:
        return 0.0
    mean = sum(vals) / len(vals)
    return (max(vals) - min(vals)) / mean if mean else 0.0


def within(counts, nbytes, replica_skew, byte_skew):
    """Whether replica counts and bytes are even enough: max - min at most the skew times the mean (a replica
    count may always differ by one)."""
    cvals = list(counts.values())
    mean = sum(cvals) / len(cvals) if cvals else 0
    counts_ok = not cvals or max(cvals) - min(cvals) <= max(1, math.floor(replica_skew * mean))
    return counts_ok and spread(nbytes) <= byte_skew


def rebalance(snapshot, replica_skew=0.10, byte_skew=0.15, exclude=(), max_steps=None):
    """The fewest moves (greedily) that bring every broker's replica count and bytes within the skews.
    Brokers in ``exclude`` neither give nor take replicas."""
    state = _Balance(snapshot, [b for b in snapshot.brokers if b not in set(exclude)])
    if len(state.brokers) < 2:
        return []
    limit = max_steps if max_steps is not None else sum(state.counts.values()) + 1
    steps = 0
    last = None
    while not within(state.counts, state.nbytes, replica_skew, byte_skew) and steps < limit:
        step = state.best_step(byte_skew)
        if step is None or (last is not None and step == (last[0], last[2], last[1])):
            break  # nothing to move, or the step would undo the last one: the skews cannot both be met
        state.apply(*step)
        last = step
        steps += 1
    if within(state.counts, state.nbytes, replica_skew, byte_skew):
        state.trim(replica_skew, byte_skew)
    return [Move(tp[0], tp[1], state.original[tp], state.assignment[tp], snapshot.size(tp))
            for tp in sorted(state.assignment) if state.assignment[tp] != state.original[tp]]


class _Balance:
    """The working state of :func:`rebalance`: loads, who holds what, and per broker and rack how many of its
    partitions could go to a broker in that rack (so that a broker with none is skipped at once)."""

    def __init__(self, snapshot, brokers):
        self.s = snapshot
        self.brokers = brokers
        self.original = {tp: list(r) for tp, r in snapshot.assignment.items()}
        self.assignment = {tp: list(r) for tp, r in snapshot.assignment.items()}
        counts, nbytes = snapshot.load(self.assignment)
        self.counts = {b: counts[b] for b in brokers}
        self.nbytes = {b: nbytes[b] for b in brokers}
        self.mean_count = sum(self.counts.values()) / len(brokers)
        self.mean_bytes = sum(self.nbytes.values()) / len(brokers)
        self.racks = sorted({snapshot.brokers.get(b) for b in brokers}, key=str)
        self.diverse = {tp: _rack_diverse(snapshot, r) for tp, r in self.original.items()}
        self.use_racks = _has_racks(snapshot)
        self.rack_count = {}
        for tp, replicas in self.assignment.items():
            counter = self.rack_count[tp] = {}
            for b in replicas:
                counter[snapshot.brokers.get(b)] = counter.get(snapshot.brokers.get(b), 0) + 1
        self.on = {b: set() for b in brokers}
        self.eligible = {b: dict.fromkeys(self.racks, 0) for b in brokers}
        for tp, replicas in self.assignment.items():
            for b in replicas:
                if b in self.on:
                    self.on[b].add(tp)
                    self._count(tp, b, 1)
        self.sorted_on = {b: sorted((snapshot.size(tp), tp) for tp in self.on[b]) for b in brokers}

    def _rack_targets(self, tp, holder):
        """Racks a replica of ``tp`` on ``holder`` could move to."""
        return [r for r in self.racks if self._rack_fits(tp, holder, r)]

    def _rack_fits(self, tp, holder, rack):
        """Whether the replica of ``tp`` on ``holder`` may move to a broker in ``rack``: a partition whose
        replicas were on distinct racks keeps them so."""
        if not self.diverse[tp] or not self.use_racks:
            return True
        n = self.rack_count[tp].get(rack, 0)
        return n == 0 or (n == 1 and self.s.brokers.get(holder) == rack)

    def _count(self, tp, holder, sign):
        for rack in self._rack_targets(tp, holder):
            self.eligible[holder][rack] += sign

    def best_step(self, byte_skew):
        """One replica from a full broker to the emptiest one that can take something: by bytes, or by replica
        counts when bytes are already even; the partition whose size comes closest to half the gap."""
        bytes_even = spread(self.nbytes) <= byte_skew
        key = (lambda b: (self.counts[b], self.nbytes[b])) if bytes_even else \
            (lambda b: (self.nbytes[b], self.counts[b]))
        sources = sorted(self.brokers, key=key, reverse=True)
        for dst in sorted(self.brokers, key=key):
            rack = self.s.brokers.get(dst)
            for src in sources:
                if key(src) <= key(dst):
                    break
                if self.eligible[src][rack] == 0:
                    continue
                tp = self._choose(src, dst, bytes_even, byte_skew)
                if tp is not None:
                    return tp, src, dst
        return None

    def _choose(self, src, dst, bytes_even, byte_skew):
        gap = (self.nbytes[src] - self.nbytes[dst]) / 2
        rack = self.s.brokers.get(dst)
        held = self.sorted_on[src]  # (size, partition), smallest first

        def usable(i):
            tp = held[i][1]
            return tp not in self.on[dst] and self._rack_fits(tp, src, rack)

        best = None
        if bytes_even:
            # only counts are uneven: the smallest partition it can take, so that bytes stay even
            best = next((held[i][1] for i in range(len(held)) if usable(i)), None)
            if best is not None:
                trial = dict(self.nbytes)
                trial[src] -= self.s.size(best)
                trial[dst] += self.s.size(best)
                if spread(trial) > byte_skew:
                    return None
            return best
        # the size that closes the byte gap in as many moves as the replica counts need, and never more than
        # the whole gap (which would leave the pair further apart than before)
        ideal = gap / max(1, (self.counts[src] - self.counts[dst]) // 2)
        short = self.mean_count - self.counts[dst]
        floor = self.mean_bytes * (1 - byte_skew / 2)
        if short >= 1 and self.nbytes[dst] < floor:
            # a broker short of replicas and bytes: the average size that brings it near the mean in as many
            # moves as it lacks replicas
            ideal = min(ideal, (floor - self.nbytes[dst]) / round(short))
        hi = bisect.bisect_right(held, (2 * gap, (chr(0x10FFFF), 0)))
        right = bisect.bisect_left(held, (ideal,), 0, hi)
        left = right - 1
        while left >= 0 or right < hi:
            # the nearer of the two candidates around the ideal size
            if right < hi and (left < 0 or held[right][0] - ideal <= ideal - held[left][0]):
                if usable(right):
                    return held[right][1]
                right += 1
            else:
                if usable(left):
                    return held[left][1]
                left -= 1
        return None

    def trim(self, replica_skew, byte_skew):
        """Take back what the greedy steps moved beyond the need: largest first, each replica move that the
        cluster can do without (still within the skews) is undone, or else replaced by the smallest partition on
        the same source that the destination can take and that keeps the skews. Greedy steps overshoot at the end
        (a broker filled by a partition larger than its last gap); this brings the bytes moved near the least."""
        moved = sorted(((self.s.size(tp), tp, self.original[tp][i], b)
                        for tp in self.assignment for i, b in enumerate(self.assignment[tp])
                        if b != self.original[tp][i]), reverse=True)
        for size, tp, src, dst in moved:
            if src not in self.on or dst not in self.on or dst not in self.assignment[tp] or \
                    src in self.assignment[tp]:
                continue
            self.apply(tp, dst, src)  # undo
            if within(self.counts, self.nbytes, replica_skew, byte_skew):
                continue
            if not self._smaller_instead(tp, size, src, dst, replica_skew, byte_skew):
                self.apply(tp, src, dst)  # nothing smaller will do: the move stays

    def _smaller_instead(self, tp, size, src, dst, replica_skew, byte_skew):
        """Move the smallest partition on ``src`` (smaller than ``tp``, one of its original replicas) that
        ``dst`` can take and that keeps the skews; whether one was found. The sizes that keep the byte skew form
        an interval (from the loads of ``src``, ``dst`` and the extremes of the other brokers), found by
        bisection; the replica counts do not change (one replica from ``src`` to ``dst``, as before)."""
        allowed = byte_skew * self.mean_bytes
        others = [v for b, v in self.nbytes.items() if b not in (src, dst)]
        top, bottom = (max(others), min(others)) if others else (-math.inf, math.inf)
        a, b = self.nbytes[src], self.nbytes[dst]
        lo = max((a - b - allowed) / 2, a - bottom - allowed, top - allowed - b, 0)
        hi = min((allowed + a - b) / 2, a - top + allowed, bottom + allowed - b, size - 1)
        if lo > hi:
            return False
        rack = self.s.brokers.get(dst)
        held = self.sorted_on[src]
        for i in range(bisect.bisect_left(held, (lo,)), len(held)):
            other_size, other = held[i]
            if other_size > hi:
                return False
            if other == tp or other in self.on[dst] or src not in self.original[other] or \
                    not self._rack_fits(other, src, rack):
                continue
            self.apply(other, src, dst)
            return True
        return False

    def apply(self, tp, src, dst):
        replicas = self.assignment[tp]
        for b in replicas:
            if b in self.on:
                self._count(tp, b, -1)
        replicas[replicas.index(src)] = dst
        counter = self.rack_count[tp]
        counter[self.s.brokers.get(src)] -= 1
        counter[self.s.brokers.get(dst)] = counter.get(self.s.brokers.get(dst), 0) + 1
        for b in replicas:
            if b in self.on:
                self._count(tp, b, 1)
        size = self.s.size(tp)
        self.counts[src] -= 1
        self.counts[dst] += 1
        self.nbytes[src] -= size
        self.nbytes[dst] += size
        self.on[src].discard(tp)
        self.on[dst].add(tp)
        self.sorted_on[src].remove((size, tp))
        bisect.insort(self.sorted_on[dst], (size, tp))


# --- stages and bounds ------------------------------------------------------------------------------


def stages(move):
    """The two reassignments of a move: ``add`` (old replicas, then the new ones, so the old preferred leader
    keeps leading and every old replica stays in sync) and ``settle`` (the final list: removals only). A move
    that adds nothing (only reorders or removes) has its final list as both."""
    if not move.adding:
        return list(move.after), list(move.after)
    leaving = [b for b in move.before if b in move.removing]
    staying = [b for b in move.before if b not in move.removing]
    return staying + move.adding + leaving, list(move.after)


def leadership_first(moves, leaving):
    """Reorderings (no data) that take preferred leadership off the leaving brokers before anything is copied:
    each partition whose first replica is leaving gets that replica moved to the end of its list."""
    leaving = set(leaving)
    out = {}
    for m in moves:
        if m.before and m.before[0] in leaving:
            staying = [b for b in m.before if b not in leaving]
            if staying:
                out[(m.topic, m.partition)] = staying + [b for b in m.before if b in leaving]
    return out


def traffic(moves, leaders):
    """Bytes each broker must receive (new replicas) and send (as the partition's leader, which new replicas
    fetch from) for these moves. ``leaders``: (topic, partition) -> leader id during the move."""
    recv, send = {}, {}
    for m in moves:
        tp = (m.topic, m.partition)
        for b in m.adding:
            recv[b] = recv.get(b, 0) + m.size
            leader = leaders.get(tp, m.before[0] if m.before else None)
            if leader is not None:
                send[leader] = send.get(leader, 0) + m.size
    return recv, send


def lower_bound_seconds(moves, leaders, throttle, write_rate=0.0):
    """T*: the largest, over brokers, of the bytes each must receive or send, over the throttle less the rate at
    which producers write into the moving partitions it receives or sends (their new replicas must keep up with
    that too). ``write_rate``: bytes per second, one figure for every broker, or per partition (a mapping
    (topic, partition) -> bytes per second)."""
    per_partition = write_rate if isinstance(write_rate, dict) else None
    recv, send = traffic(moves, leaders)
    writes = {}
    if per_partition is not None:
        for m in moves:
            tp = (m.topic, m.partition)
            if not m.adding:
                continue
            involved = set(m.adding)
            leader = leaders.get(tp, m.before[0] if m.before else None)
            if leader is not None:
                involved.add(leader)
            for b in involved:
                writes[b] = writes.get(b, 0.0) + per_partition.get(tp, 0.0)
    worst = 0.0
    for b in set(recv) | set(send):
        need = max(recv.get(b, 0), send.get(b, 0))
        if not need:
            continue
        usable = throttle - (writes.get(b, 0.0) if per_partition is not None else write_rate)
        if usable <= 0:
            return math.inf
        worst = max(worst, need / usable)
    return worst


def total_bytes(moves):
    return sum(m.bytes for m in moves)


def rebalance_lower_bound(snapshot, replica_skew=0.10, byte_skew=0.15, exclude=()):
    """Bytes any rebalance must move at least to bring the spreads within the skews (for reporting how close a
    plan is to the least possible). For bytes: whatever the final maximum M (never below the mean), the brokers
    above M must give up their excess and those below M - skew x mean must be filled; for replica counts the
    same gives a number of replicas, which move at least the bytes of that many of the smallest partitions."""
    counts, nbytes = snapshot.load()
    brokers = [b for b in snapshot.brokers if b not in set(exclude)]
    if len(brokers) < 2:
        return 0

    def least(values, skew, integer=False):
        vals = [values[b] for b in brokers]
        mean = sum(vals) / len(vals)
        allowed = max(1, math.floor(skew * mean)) if integer else skew * mean

        def need(top):
            return max(sum(max(0, v - top) for v in vals), sum(max(0, top - allowed - v) for v in vals))

        if integer:
            return min(need(top) for top in range(math.ceil(mean), max(max(vals), math.ceil(mean)) + 1))
        # what must leave the brokers above the final maximum falls as it rises, what must reach the brokers
        # below its floor grows: the least of the larger of the two is where they cross
        low, high = mean, max(max(vals), mean)
        for _ in range(100):
            mid = (low + high) / 2
            if sum(max(0, v - mid) for v in vals) > sum(max(0, mid - allowed - v) for v in vals):
                low = mid
            else:
                high = mid
        return min(need(low), need(high))

    byte_bound = least(nbytes, byte_skew)
    replicas = math.ceil(least(counts, replica_skew, integer=True))
    smallest = sorted(snapshot.size(tp) for tp in snapshot.assignment)[:replicas]
    return max(byte_bound, sum(smallest))
