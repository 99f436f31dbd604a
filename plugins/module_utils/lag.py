# Copyright: kafka-metal contributors
# Apache License 2.0
"""Consumer lag and a verdict on each consumer group, from a short series of samples (no I/O here).

A sample holds, for each partition a group consumes, the committed offset and the log end offset, read in that
order (so the end is never older than the commit and the lag is never negative), and the number of active
members. The lag of a partition is the records between its committed offset and its end; its lag in seconds is
the age of the record at the committed offset (read by the caller).

The verdict on a partition, over the samples (in the spirit of Burrow's rules, for a window of seconds rather
than of commits):

* ``OK``: the lag was zero in some sample (an idle group that has read everything is OK however long it has
  not committed), or the consumer commits and the lag does not keep growing;
* ``lagging``: the consumer commits, but the lag grew from every sample to the next;
* ``stalled``: the group has members, records wait, and the committed offset did not move;
* ``stopped``: records wait and the group has no active member.

A group's verdict is its worst partition's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

OK, LAGGING, STALLED, STOPPED = "OK", "lagging", "stalled", "stopped"
SEVERITY = {OK: 0, LAGGING: 1, STALLED: 2, STOPPED: 3}


@dataclass
class Sample:
    """One read of a group: ``committed`` and ``ends`` map (topic, partition) to offsets (``None``: no commit
    yet), read in that order; ``members``: active members then."""

    at: float
    committed: dict
    ends: dict
    members: int = 0


@dataclass
class PartitionLag:
    topic: str
    partition: int
    committed: int | None
    end: int | None
    lag: int | None
    seconds: float | None = None
    verdict: str = OK

    def as_dict(self):
        return {"topic": self.topic, "partition": self.partition, "committed": self.committed, "end": self.end,
                "lag": self.lag, "seconds": self.seconds, "verdict": self.verdict}


@dataclass
class GroupLag:
    group: str
    verdict: str
    partitions: list = field(default_factory=list)
    members: int = 0

    @property
    def lag(self):
        return sum(p.lag or 0 for p in self.partitions)

    @property
    def seconds(self):
        known = [p.seconds for p in self.partitions if p.seconds is not None]
        return max(known) if known else 0.0

    def as_dict(self):
        return {"group": self.group, "verdict": self.verdict, "lag": self.lag, "seconds": round(self.seconds, 3),
                "members": self.members, "partitions": [p.as_dict() for p in self.partitions]}


def lag(committed, end):
    """Records between the committed offset and the log end; ``None`` without a commit. Never negative (a
    commit read after the end it is compared with may pass it)."""
    if committed is None or end is None or committed < 0:
        return None
    return max(0, end - committed)


def partition_verdict(series):
    """The verdict on one partition from ``series``: (committed, end, members) per sample, oldest first."""
    lags = [lag(c, e) for c, e, _ in series]
    known = [x for x in lags if x is not None]
    if not known or 0 in known:
        return OK
    if series[-1][2] == 0:
        return STOPPED
    commits = [c for c, _, _ in series if c is not None]
    if len(commits) < 2 or commits[-1] <= commits[0]:
        return STALLED
    growing = len(known) >= 2 and all(known[i + 1] > known[i] for i in range(len(known) - 1))
    return LAGGING if growing else OK


def waiting(lasts):
    """The positions ``((topic, partition), offset)`` that groups with a lag will read next, from each group's
    last :class:`Sample` (``{group: Sample}``)."""
    return {(tp, c) for s in lasts.values() for tp, c in s.committed.items() if lag(c, s.ends.get(tp))}


def group_ages(lasts, stamps, now):
    """{group: {(topic, partition): seconds}}: the age of the record each group reads next, from ``stamps``
    (``{((topic, partition), offset): timestamp in seconds}``; groups on one partition may be at different offsets)."""
    return {g: {tp: max(0.0, now - stamps[(tp, c)]) for tp, c in s.committed.items() if (tp, c) in stamps}
            for g, s in lasts.items()}


def judge(group, samples, ages=None):
    """A :class:`GroupLag` from the samples of one group (oldest first). ``ages`` maps a partition to the age
    in seconds of the record at its last committed offset (for partitions with a lag)."""
    if not samples:
        raise ValueError("no sample of the group")
    ages = ages or {}
    last = samples[-1]
    partitions = []
    for tp in sorted(set(last.committed) | set(last.ends)):
        series = [(s.committed.get(tp), s.ends.get(tp), s.members) for s in samples]
        current = lag(last.committed.get(tp), last.ends.get(tp))
        seconds = 0.0 if current == 0 else ages.get(tp)
        partitions.append(PartitionLag(tp[0], tp[1], last.committed.get(tp), last.ends.get(tp), current,
                                       seconds, partition_verdict(series)))
    verdict = max((p.verdict for p in partitions), key=SEVERITY.__getitem__, default=OK)
    return GroupLag(group, verdict, partitions, last.members)
