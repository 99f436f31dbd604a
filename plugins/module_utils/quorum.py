# Copyright: kafka-metal contributors
# Apache License 2.0
"""The KRaft controller quorum: who votes, who has caught up, and whether a membership change is safe.

Kafka 4.1 keeps a dynamic quorum's voters in the metadata log (``kraft.version`` 1 and later): each voter is a
node id with the directory id of its metadata directory, so a controller whose disk was wiped comes back as a
new voter candidate (same node id, new directory id) and the stale voter stays until it is removed. The
membership changes go through Kafka's own ``kafka-metadata-quorum`` (``add-controller``,
``remove-controller``); what is decided here, with no I/O:

- :func:`parse_status` and :func:`parse_replication` read ``describe --status`` and ``describe --replication``
  into a :class:`Quorum`;
- :func:`caught_up` says which nodes have caught up with the leader, by the leader's own clock and the rolling
  engine's limits (``roll.voter_state``: the same test gates a roll);
- :func:`removal_problems` refuses a removal that would leave the remaining voters without a caught-up
  majority (counted over the voters that remain, so a majority of the new quorum can elect and commit);
- :func:`add_problems` refuses adding a node that is not an observer that has caught up;
- :func:`stale_voters` finds the voters a replaced controller left behind.

:class:`Tools` is the I/O, through a ``run(argv) -> (rc, stdout, stderr)`` the caller provides (the command
line runs Kafka's tools over SSH on a broker or controller host).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from . import roll

TOOL = "kafka-metadata-quorum.sh"
# A zero directory id: a voter from a static quorum (controller.quorum.voters), which records none.
NO_DIRECTORY = "AAAAAAAAAAAAAAAAAAAAAA"


class QuorumError(RuntimeError):
    """A quorum change that cannot go ahead, or a tool that failed; the message says why and what to do."""


@dataclass
class Member:
    """A node the leader reports: a voter or an observer (brokers are observers too)."""

    node_id: int
    directory_id: str = ""
    voter: bool = False
    endpoints: list = field(default_factory=list)
    log_end: int = -1
    lag: int = -1
    last_fetch: int = -1
    last_caught_up: int = -1
    status: str = ""

    @property
    def key(self):
        return (self.node_id, self.directory_id)


@dataclass
class Quorum:
    cluster_id: str = ""
    leader: int = -1
    epoch: int = -1
    high_watermark: int = -1
    members: list = field(default_factory=list)

    @property
    def voters(self):
        return [m for m in self.members if m.voter]

    @property
    def observers(self):
        return [m for m in self.members if not m.voter]

    def find(self, node_id, directory_id=None):
        return [m for m in self.members
                if m.node_id == int(node_id) and (directory_id is None or m.directory_id == directory_id)]

    def now(self):
        """The leader's clock: its own row of the replication table carries the time of the reading."""
        lead = [m for m in self.members if m.voter and m.node_id == self.leader and m.status.lower() == "leader"]
        return max((m.last_fetch for m in lead), default=-1)


_STATUS_RE = re.compile(r"^(?P<key>[A-Za-z]+):\s*(?P<value>.*)$")


def parse_status(text):
    """``kafka-metadata-quorum describe --status`` -> :class:`Quorum` (voters and observers, no lag figures)."""
    fields = {}
    for line in (text or "").splitlines():
        m = _STATUS_RE.match(line.strip())
        if m:
            fields[m.group("key")] = m.group("value").strip()
    if "LeaderId" not in fields or "CurrentVoters" not in fields:
        raise QuorumError(f"cannot read the quorum's status from: {(text or '').strip()[:300]!r}")
    q = Quorum(cluster_id=fields.get("ClusterId", ""), leader=int(fields["LeaderId"]),
               epoch=int(fields.get("LeaderEpoch", -1)), high_watermark=int(fields.get("HighWatermark", -1)))
    for key, voter in (("CurrentVoters", True), ("CurrentObservers", False)):
        try:
            entries = json.loads(fields.get(key) or "[]")
        except ValueError:
            raise QuorumError(f"cannot read {key} from the quorum's status: {fields.get(key)!r}") from None
        for e in entries:
            q.members.append(Member(node_id=int(e["id"]), directory_id=e.get("directoryId") or NO_DIRECTORY,
                                    voter=voter, endpoints=list(e.get("endpoints") or [])))
    return q


def parse_replication(text, quorum):
    """Add ``describe --replication``'s figures (log end, lag, timestamps, status) to ``quorum``'s members;
    a row for a node the status did not list (a change in between) is added as it says."""
    rows = [ln.split() for ln in (text or "").splitlines() if ln.strip()]
    if not rows or rows[0][:2] != ["NodeId", "DirectoryId"]:
        raise QuorumError(f"cannot read the quorum's replication table from: {(text or '').strip()[:300]!r}")
    for row in rows[1:]:
        if len(row) < 7 or not row[0].lstrip("-").isdigit():
            continue
        node_id, directory_id = int(row[0]), row[1]
        status = row[6]
        found = quorum.find(node_id, directory_id)
        if not found:
            found = [Member(node_id=node_id, directory_id=directory_id, voter=status.lower() in ("leader", "follower"))]
            quorum.members.append(found[0])
        for m in found:
            m.log_end, m.lag = int(row[2]), int(row[3])
            m.last_fetch, m.last_caught_up, m.status = int(row[4]), int(row[5]), status
    return quorum


def caught_up(quorum, member):
    """Whether ``member`` has caught up with the leader: the rolling engine's test (``roll.voter_state``: offset lag
    and time since it last reached the end of the log, by the leader's clock), for voters and observers alike."""
    if member.node_id == quorum.leader and member.status.lower() == "leader":
        return True
    view = {"leader_id": -1, "now_ms": quorum.now(), "voters": []}
    return roll.voter_state(view, {"id": member.node_id, "lag": member.lag,
                                   "last_caught_up_timestamp": member.last_caught_up})[0]


def removal_problems(quorum, node_id, directory_id):
    """Why removing voter (node_id, directory_id) must not happen; empty when it is safe: the voters that
    remain are at least one and a majority of them has caught up."""
    target = quorum.find(node_id, directory_id)
    if not target or not target[0].voter:
        voters = ", ".join(f"{m.node_id} ({m.directory_id})" for m in quorum.voters)
        return [f"node {node_id} with directory id {directory_id} is not a voter (the voters: {voters})"]
    remaining = [m for m in quorum.voters if m.key != (int(node_id), directory_id)]
    if not remaining:
        return [f"node {node_id} is the only voter: a quorum cannot lose its last voter (add another controller "
                "first)"]
    ready = [m for m in remaining if caught_up(quorum, m)]
    if len(ready) * 2 <= len(remaining):
        behind = ", ".join(str(m.node_id) for m in remaining if m not in ready)
        return [f"after removing node {node_id} the quorum would have {len(remaining)} voter(s), of which only "
                f"{len(ready)} caught up (behind or unreachable: {behind}); a majority of the remaining voters must "
                "have caught up. Bring the controllers that are behind back (kafka-metal quorum status shows "
                "their lag) and try again"]
    return []


def add_problems(quorum, node_id, directory_id):
    """Why node (node_id, directory_id) cannot be added as a voter yet; empty when it can."""
    if any(m.voter for m in quorum.find(node_id, directory_id)):
        return [f"node {node_id} with directory id {directory_id} is a voter already"]
    seen = [m for m in quorum.find(node_id, directory_id) if not m.voter]
    if not seen:
        return [f"node {node_id} with directory id {directory_id} is not fetching from the leader: it is not "
                "running, or not formatted for this cluster, or cannot reach the controllers"]
    if not caught_up(quorum, seen[0]):
        return [f"node {node_id} has not caught up with the leader yet (lag {seen[0].lag})"]
    return []


def stale_voters(quorum, node_id, directory_id):
    """The voters with ``node_id`` but another directory id than the node's own: what a wiped or replaced
    metadata directory leaves behind."""
    return [m for m in quorum.voters if m.node_id == int(node_id) and m.directory_id != directory_id]


def table(quorum, names=None):
    """Lines for the operator: one per voter and per controller observer (brokers are left out)."""
    names = names or {}
    lines = [f"leader {quorum.leader} ({names.get(quorum.leader, '?')}), epoch {quorum.epoch}, "
             f"high watermark {quorum.high_watermark}",
             f"{'node':>6}  {'host':<14} {'directory id':<24} {'role':<9} {'lag':>7}  caught up"]
    for m in sorted(quorum.members, key=lambda m: (not m.voter, m.node_id)):
        if not m.voter and m.node_id not in names:
            continue  # a broker (observer)
        role = (m.status or ("voter" if m.voter else "observer")).lower()
        lines.append(f"{m.node_id:>6}  {names.get(m.node_id, '?'):<14} {m.directory_id:<24} {role:<9} "
                     f"{m.lag:>7}  {'yes' if caught_up(quorum, m) else 'no'}")
    return lines


def kafka_words(out, err):
    """What a Kafka tool said on failure: its message lines, without client warnings and Java stack frames."""
    lines = []
    for ln in f"{out or ''}\n{err or ''}".splitlines():
        ln = ln.strip()
        if ln and " WARN " not in ln and not ln.startswith(("at ", "Caused by:", "...")) and ln not in lines:
            lines.append(ln)
    return " ".join(lines)[:1200] or "no output"


class Tools:
    """``kafka-metadata-quorum`` on one host: ``run(argv) -> (rc, stdout, stderr)``."""

    def __init__(self, run, kafka_home, bootstrap, command_config=None):
        self.run = run
        self.tool = f"{kafka_home.rstrip('/')}/bin/{TOOL}"
        self.bootstrap = bootstrap
        self.command_config = command_config

    def call(self, *args, command_config=None, what):
        argv = [self.tool, "--bootstrap-server", self.bootstrap]
        config = command_config or self.command_config
        if config:
            argv += ["--command-config", config]
        rc, out, err = self.run([*argv, *args])
        if rc != 0:
            raise QuorumError(f"{what} failed (exit {rc}): {kafka_words(out, err)}")
        return out

    def describe(self):
        q = parse_status(self.call("describe", "--status", what="kafka-metadata-quorum describe --status"))
        return parse_replication(self.call("describe", "--replication",
                                           what="kafka-metadata-quorum describe --replication"), q)

    def add(self, controller_config):
        return self.call("add-controller", command_config=controller_config,
                         what="kafka-metadata-quorum add-controller")

    def remove(self, node_id, directory_id):
        return self.call("remove-controller", "--controller-id", str(int(node_id)),
                         "--controller-directory-id", directory_id, what="kafka-metadata-quorum remove-controller")
