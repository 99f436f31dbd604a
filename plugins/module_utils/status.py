# Copyright: kafka-metal contributors
# Apache License 2.0
"""Is the cluster safe right now? Findings, a level each, and their renderings (no I/O here).

The caller (:mod:`status_kafka`) reads the cluster into a *snapshot*, a plain dict that JSON can carry:

``read_at`` / ``duration_seconds``
    When the read started (seconds since the epoch) and how long it took.
``error``
    Why the cluster could not be read at all (then the level is UNKNOWN and nothing else is judged).
``bootstrap``, ``cluster_id``, ``controller_id``, ``mode``
    Who answered; ``mode`` is ``kraft`` or ``zookeeper``.
``quorum``
    KRaft only: DescribeQuorum's answer (:func:`wire.parse_describe_quorum_v1`); ``None`` in ZooKeeper mode.
``brokers``, ``brokers_source``, ``expected_brokers``
    ``[{"id", "host", "port", "rack", "fenced"}]``; the source says whether fencing is known (DescribeCluster v2,
    Kafka 4.0+) or only unfenced brokers are seen (metadata); the ids that should be registered, or ``None``.
``partitions``
    ``[{"topic", "partition", "replicas", "isr", "leader", "min_isr"}]``; ``min_isr`` is the topic's effective
    min.insync.replicas (``None`` when it could not be read).
``reassignments``
    ``[{"topic", "partition", "replicas", "adding", "removing"}]``, the moves in flight.
``throttles``
    ``{"brokers": {id: {key: value}}, "topics": {topic: {key: value}}}``, the replication throttles set.
``certificates``
    ``None`` when the connection is not TLS, else ``[{"endpoint", "kind" ("node" or "ca"), "not_after" (seconds
    since the epoch or None), "subject", "error" (why it does not verify, or None)}]``.
``log_dirs``
    ``[{"broker", "path", "total_bytes", "usable_bytes", "error"}]`` (bytes -1 when the broker does not say).
``groups``
    ``None`` when not read, else ``[lag.GroupLag.as_dict()]``.
``problems``
    ``{area: [text]}``: the parts that could not be read (a WARNING each: nothing is known about them).

:func:`findings` judges a snapshot; :func:`worst` gives the level of the whole (its exit code is
:data:`LEVELS`'s index); :func:`render_text`, :func:`render_json` and :func:`render_prometheus` render it. The
metric names are a contract with alert rules: change them only with a note to the people who use them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from . import lag as lag_rules
from . import roll

OK, WARNING, CRITICAL, UNKNOWN = "OK", "WARNING", "CRITICAL", "UNKNOWN"
LEVELS = (OK, WARNING, CRITICAL, UNKNOWN)  # the index is the exit code and kafka_metal_status_level
AREAS = ("cluster", "quorum", "brokers", "partitions", "reassignments", "throttles", "certificates", "log_dirs",
         "groups")
TITLES = {"cluster": "cluster", "quorum": "KRaft quorum", "brokers": "brokers", "partitions": "partitions",
          "reassignments": "reassignments", "throttles": "replication throttles", "certificates": "certificates",
          "log_dirs": "log directories", "groups": "consumer groups"}
LISTED = 10  # partitions named in one finding; the rest are counted
DAY = 86400.0
BROKER_RATES = {"leader.replication.throttled.rate": "leader", "follower.replication.throttled.rate": "follower"}


@dataclass(frozen=True)
class Limits:
    """Where a value turns into a WARNING or a CRITICAL."""

    cert_warning_days: float = 30.0
    cert_critical_days: float = 7.0
    disk_warning: float = 0.85  # fraction of a log directory used
    disk_critical: float = 0.95
    quorum_max_lag_offsets: int = roll.DEFAULT_MAX_LAG_OFFSETS
    quorum_max_lag_ms: int = 30_000  # the controller's clock against this host's: some slack
    lag_seconds: float = 300.0  # a group further behind than this (the age of its next record) is a WARNING
    lag_records: int = 100_000  # and one with more records than this to read


@dataclass(frozen=True)
class Finding:
    area: str
    level: str
    message: str

    def as_dict(self):
        return {"area": self.area, "level": self.level, "message": self.message}


def level_code(level):
    return LEVELS.index(level)


def worst(found):
    """The worst level of ``found`` (OK when empty)."""
    return max((f.level for f in found), key=level_code, default=OK)


def listed(items, name, limit=LISTED):
    shown = [name(i) for i in items[:limit]]
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(shown) + more


def ids_text(ids):
    return "[" + ", ".join(str(i) for i in ids) + "]"


def _plural(n, word, many=None):
    return f"{n} {word if n == 1 else (many or word + 's')}"


# --------------------------------------------------------------------------------------------------
# Rules, one function per area; each returns its findings (an OK one when nothing is wrong)
# --------------------------------------------------------------------------------------------------


def voter_lag(quorum, voter):
    """Records ``voter`` is behind the quorum leader (leader's log end offset minus its own), never negative;
    None when either is unknown."""
    leader = next((v for v in quorum.get("voters") or () if v["id"] == quorum.get("leader_id")), None)
    if leader is None or voter.get("log_end_offset") is None or voter["log_end_offset"] < 0:
        return None
    return max(0, leader["log_end_offset"] - voter["log_end_offset"])


def quorum_findings(snap, limits):
    if snap.get("mode") == "zookeeper":
        return [Finding("quorum", OK, "ZooKeeper mode: there is no KRaft quorum to check")]
    quorum = snap.get("quorum")
    if not quorum:
        return []  # not read: the problem says why
    now_ms = int(snap["read_at"] * 1000)
    voters = quorum.get("voters") or []
    leader = quorum.get("leader_id")
    if leader is None or leader < 0 or not voters:
        return [Finding("quorum", CRITICAL, f"the KRaft quorum has no leader (leader id {leader}, "
                                            f"{_plural(len(voters), 'voter')}): no active controller, so no metadata "
                                            "change is possible; check the controllers' logs and network")]
    out = []
    caught = roll.caught_up_voters(quorum, now_ms, limits.quorum_max_lag_ms, limits.quorum_max_lag_offsets)
    majority = len(voters) // 2 + 1
    lagging = [roll.voter_state(quorum, v, now_ms, limits.quorum_max_lag_ms, limits.quorum_max_lag_offsets)[1]
               for v in voters if v["id"] not in caught]
    if len(caught) < majority:
        out.append(Finding("quorum", CRITICAL, f"only {len(caught)} of {len(voters)} KRaft voters are caught up "
                                               f"{ids_text(caught)}, a majority needs {majority}: one more controller "
                                               f"lost stops metadata changes; lagging: {', '.join(lagging)}"))
    elif lagging:
        out.append(Finding("quorum", WARNING, f"KRaft voters behind the leader: {', '.join(lagging)}; check their "
                                              "disks and network (they do not count for the majority now)"))
    if not out:
        lags = ", ".join(f"{v['id']} (lag {voter_lag(quorum, v)})" for v in voters)
        observers = ids_text(sorted(o["id"] for o in quorum.get("observers") or ()))
        out.append(Finding("quorum", OK, f"leader {leader} (epoch {quorum.get('leader_epoch')}), voters {lags}, "
                                         f"observers {observers}"))
    return out


def broker_findings(snap):
    brokers = snap.get("brokers")
    if brokers is None:
        return []
    out = []
    for b in brokers:
        if b.get("fenced"):
            out.append(Finding("brokers", CRITICAL, f"broker {b['id']} ({b['host']}:{b['port']}) is fenced: it is "
                                                    "registered but lost its session with the controller and leads "
                                                    "no partition; check its log, disks and network"))
    known = {b["id"] for b in brokers}
    missing = sorted(set(snap.get("expected_brokers") or ()) - known)
    if missing:
        out.append(Finding("brokers", CRITICAL, f"{_plural(len(missing), 'broker')} expected but not registered: "
                                                f"{ids_text(missing)}; start them or check why they cannot reach the "
                                                "controllers"))
    if not brokers:
        out.append(Finding("brokers", CRITICAL, "no broker is registered"))
    if not out:
        how = "" if snap.get("brokers_source") == "DescribeCluster v2" else \
            " (these brokers report no fenced brokers before Kafka 4.0: a fenced broker shows as missing)"
        out.append(Finding("brokers", OK, f"{_plural(len(brokers), 'broker')} registered {ids_text(sorted(known))}, "
                                          f"none fenced{how}"))
    return out


def _tp(p):
    return f"{p['topic']}-{p['partition']}"


def classify_partitions(partitions):
    """{"offline": [...], "under_min_isr": [...], "under_replicated": [...]}: each partition in its worst kind.

    Offline: no leader. Under min ISR: fewer in-sync replicas than the topic's effective min.insync.replicas
    (acks=all writes fail), a replication factor below it included. Under-replicated: a replica out of sync."""
    out = {"offline": [], "under_min_isr": [], "under_replicated": []}
    for p in partitions:
        isr, replicas = p.get("isr") or [], p.get("replicas") or []
        if p.get("leader") is None or p["leader"] < 0 or not isr:
            out["offline"].append(p)
        elif p.get("min_isr") is not None and len(isr) < p["min_isr"]:
            out["under_min_isr"].append(p)
        elif any(r not in isr for r in replicas):
            out["under_replicated"].append(p)
    return out


def _short_of_min_isr(p):
    text = f"{_tp(p)} (in sync {ids_text(p['isr'])}, min.insync.replicas {p['min_isr']}"
    if len(p.get("replicas") or []) < p["min_isr"]:
        text += f", only {_plural(len(p['replicas']), 'replica')}: raise the replication factor or lower " \
                "min.insync.replicas"
    return text + ")"


def partition_findings(snap):
    partitions = snap.get("partitions")
    if partitions is None:
        return []
    kinds = classify_partitions(partitions)
    out = []
    if kinds["offline"]:
        out.append(Finding("partitions", CRITICAL, f"{_plural(len(kinds['offline']), 'partition')} offline (no "
                                                   "leader: nothing can be read or written): " + listed(
                                                       kinds["offline"], lambda p: f"{_tp(p)} (replicas "
                                                                                   f"{ids_text(p['replicas'])})")))
    if kinds["under_min_isr"]:
        out.append(Finding("partitions", CRITICAL, f"{_plural(len(kinds['under_min_isr']), 'partition')} under "
                                                   "min.insync.replicas (writes with acks=all fail): "
                                                   + listed(kinds["under_min_isr"], _short_of_min_isr)))
    if kinds["under_replicated"]:
        out.append(Finding("partitions", WARNING, f"{_plural(len(kinds['under_replicated']), 'partition')} under-"
                                                  "replicated (a replica out of sync): " + listed(
                                                      kinds["under_replicated"], lambda p: f"{_tp(p)} (in sync "
                                                      f"{ids_text(p['isr'])} of {ids_text(p['replicas'])})")))
    if not out:
        out.append(Finding("partitions", OK, f"{_plural(len(partitions), 'partition')}: each has a leader and "
                                             "every replica in sync"))
    return out


def reassignment_findings(snap):
    moving = snap.get("reassignments")
    if moving is None:
        return []
    if not moving:
        return [Finding("reassignments", OK, "no reassignment in flight")]
    return [Finding("reassignments", WARNING, f"{_plural(len(moving), 'partition')} being reassigned: " + listed(
        moving, lambda m: f"{_tp(m)} (adding {ids_text(m['adding'])}, removing {ids_text(m['removing'])})")
                    + "; a restart or another move now makes it longer")]


def throttle_findings(snap):
    throttles = snap.get("throttles")
    if throttles is None:
        return []
    found = [f"broker {b} {k}={v}" for b, c in sorted(throttles.get("brokers", {}).items(), key=lambda i: str(i[0]))
             for k, v in sorted(c.items())]
    found += [f"topic {t} {k}={v}" for t, c in sorted(throttles.get("topics", {}).items())
              for k, v in sorted(c.items())]
    if not found:
        return [Finding("throttles", OK, "no replication throttle set")]
    return [Finding("throttles", WARNING, f"{_plural(len(found), 'replication throttle')} set: {'; '.join(found)}; "
                                          "remove them once no move is under way (a forgotten throttle slows every "
                                          "later catch-up)")]


def _days(seconds):
    return f"{seconds / DAY:.1f} days"


def certificate_findings(snap, limits):
    certs = snap.get("certificates")
    if certs is None:
        return [Finding("certificates", OK, "the connection is not TLS: no certificate to check")]
    out, now = [], snap["read_at"]
    for c in certs:
        what = f"the {'CA' if c['kind'] == 'ca' else 'broker'} certificate of {c['endpoint']}"
        if c.get("subject"):
            what += f" ({c['subject']})"
        if c.get("error"):
            out.append(Finding("certificates", CRITICAL, f"{what} does not verify: {c['error']}"))
            continue
        if c.get("not_after") is None:
            continue
        left = c["not_after"] - now
        if left <= 0:
            out.append(Finding("certificates", CRITICAL, f"{what} expired {_days(-left)} ago: renew it now"))
        elif left < limits.cert_critical_days * DAY:
            out.append(Finding("certificates", CRITICAL, f"{what} expires in {_days(left)}: renew it now"))
        elif left < limits.cert_warning_days * DAY:
            out.append(Finding("certificates", WARNING, f"{what} expires in {_days(left)}: renew it soon"))
    if not out:
        dated = sorted((c for c in certs if c.get("not_after") is not None), key=lambda c: c["not_after"])
        first = f"; the first to expire: {dated[0]['endpoint']} in {_days(dated[0]['not_after'] - now)}" \
            if dated else ""
        out.append(Finding("certificates", OK, f"{_plural(len(certs), 'certificate')} checked{first}"))
    return out


def log_dir_findings(snap, limits):
    dirs = snap.get("log_dirs")
    if dirs is None:
        return []
    out = []
    for d in dirs:
        where = f"broker {d['broker']} {d['path']}"
        if d.get("error"):
            out.append(Finding("log_dirs", CRITICAL, f"{where} is offline ({d['error']}): its replicas are "
                                                     "unavailable on this broker; replace the disk and restart it"))
            continue
        total, usable = d.get("total_bytes", -1), d.get("usable_bytes", -1)
        if total is None or usable is None or total <= 0 or usable < 0:
            continue
        used = 1.0 - usable / total
        text = f"{where} is {used:.0%} full ({usable / 2**30:.1f} GiB free of {total / 2**30:.1f} GiB)"
        if used >= limits.disk_critical:
            out.append(Finding("log_dirs", CRITICAL, f"{text}: free space or move replicas away now"))
        elif used >= limits.disk_warning:
            out.append(Finding("log_dirs", WARNING, f"{text}: free space or move replicas away soon"))
    if not out:
        fullest = max(((1.0 - d["usable_bytes"] / d["total_bytes"], d) for d in dirs
                       if (d.get("total_bytes") or 0) > 0 and (d.get("usable_bytes") or -1) >= 0),
                      key=lambda x: x[0], default=None)
        most = f"; the fullest: broker {fullest[1]['broker']} {fullest[1]['path']} at {fullest[0]:.0%}" \
            if fullest else ""
        out.append(Finding("log_dirs", OK, f"{_plural(len(dirs), 'log directory', 'log directories')} online{most}"))
    return out


def group_findings(snap, limits):
    groups = snap.get("groups")
    if groups is None:
        return [Finding("groups", OK, "not read (--no-groups)")] if snap.get("groups_skipped") else []
    out = []
    for g in groups:
        behind = []
        if (g["seconds"] or 0.0) > limits.lag_seconds:
            behind.append(f"over the {limits.lag_seconds:g} s threshold")
        if (g["lag"] or 0) > limits.lag_records:
            behind.append(f"over the {limits.lag_records} records threshold")
        if g["verdict"] != lag_rules.OK or behind:
            over = f" ({', '.join(behind)})" if behind else ""
            out.append(Finding("groups", WARNING, f"group {g['group']} is {g['verdict']}: lag {g['lag']} records, "
                                                  f"{g['seconds']:.1f} s{over}, {_plural(g['members'], 'member')}"))
    if not out:
        out.append(Finding("groups", OK, f"{_plural(len(groups), 'consumer group')}, "
                                         f"{'all OK' if groups else 'nothing to judge'}"))
    return out


def findings(snap, limits=None):
    """Every finding on ``snap``, in the order of :data:`AREAS`."""
    limits = limits or Limits()
    if snap.get("error"):
        return [Finding("cluster", UNKNOWN, f"the cluster could not be read: {snap['error']}")]
    out = [Finding("cluster", OK, f"cluster {snap.get('cluster_id')} ({snap.get('mode')}), controller "
                                  f"{snap.get('controller_id')}, read through {snap.get('bootstrap')}")]
    out += quorum_findings(snap, limits)
    out += broker_findings(snap)
    out += partition_findings(snap)
    out += reassignment_findings(snap)
    out += throttle_findings(snap)
    out += certificate_findings(snap, limits)
    out += log_dir_findings(snap, limits)
    out += group_findings(snap, limits)
    for area, problems in (snap.get("problems") or {}).items():
        out += [Finding(area, WARNING, f"could not read: {p}") for p in problems]
    return sorted(out, key=lambda f: AREAS.index(f.area) if f.area in AREAS else len(AREAS))


# --------------------------------------------------------------------------------------------------
# Renderings
# --------------------------------------------------------------------------------------------------


def render_text(snap, found):
    level = worst(found)
    lines = [f"kafka-metal status: {level} ({snap.get('bootstrap')}, read in "
             f"{snap.get('duration_seconds', 0.0):.1f} s)"]
    for area in AREAS:
        mine = [f for f in found if f.area == area]
        if not mine:
            continue
        lines.append(f"{TITLES[area]}:")
        lines += [f"  {f.level:<8} {f.message}" for f in mine]
    return "\n".join(lines) + "\n"


def render_json(snap, found):
    level = worst(found)
    return json.dumps({"level": level, "exit_code": level_code(level), "findings": [f.as_dict() for f in found],
                       "snapshot": snap}, indent=1, sort_keys=True, default=str) + "\n"


HELP = {
    "kafka_metal_status_up": "1 if the cluster was read, 0 if not",
    "kafka_metal_status_duration_seconds": "seconds the read of the cluster took",
    "kafka_metal_status_age_seconds": "seconds since the read of these figures ended (--serve reads in the background)",
    "kafka_metal_status_level": "worst finding: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (the exit code)",
    "kafka_metal_brokers": "brokers by state: registered (fenced ones included), fenced, missing (expected, not "
                           "registered)",
    "kafka_metal_broker_fenced": "1 if the broker is fenced",
    "kafka_metal_partitions": "partitions by problem: offline, under_min_isr, under_replicated (each in its worst)",
    "kafka_metal_partitions_total": "partitions in the cluster",
    "kafka_metal_quorum_leader_id": "node id of the KRaft quorum leader (-1: none)",
    "kafka_metal_quorum_voter_lag_records": "records a KRaft voter is behind the leader",
    "kafka_metal_reassignments_in_progress": "partitions being reassigned",
    "kafka_metal_replication_throttle_rate_bytes": "replication throttle rate set on a broker (bytes per second)",
    "kafka_metal_throttled_replicas_topics": "topics with a *.replication.throttled.replicas config set",
    "kafka_metal_replication_throttles_set": "replication throttle settings found on brokers and topics",
    "kafka_metal_log_dir_total_bytes": "size of the log directory's volume",
    "kafka_metal_log_dir_usable_bytes": "free bytes of the log directory's volume",
    "kafka_metal_log_dir_offline": "1 if the log directory is offline",
    "kafka_metal_certificate_not_after_timestamp_seconds": "when the certificate expires (seconds since the epoch)",
    "kafka_metal_consumergroup_lag_records": "records the group has yet to read (sum over its partitions)",
    "kafka_metal_consumergroup_lag_seconds": "age of the oldest record the group has yet to read (0: caught up)",
    "kafka_metal_consumergroup_verdict": "0 OK, 1 lagging, 2 stalled, 3 stopped",
    "kafka_metal_consumergroup_members": "active members of the group",
    "kafka_metal_consumergroups_total": "consumer groups judged",
    "kafka_metal_consumergroup_lag_seconds_threshold": "lag in seconds over which a group is reported (--lag-seconds)",
    "kafka_metal_consumergroup_lag_records_threshold": "lag in records over which a group is reported (--lag-records)",
}


def _escape(value):
    return str(value).replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def _number(value):
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _rate(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def metrics(snap, found, limits=None):
    """{name: [(labels dict, value)]} in a stable order: what :func:`render_prometheus` writes."""
    up = not snap.get("error")
    out = {"kafka_metal_status_up": [({}, 1 if up else 0)],
           "kafka_metal_status_duration_seconds": [({}, round(float(snap.get("duration_seconds") or 0.0), 3))],
           "kafka_metal_status_age_seconds": [({}, float(snap.get("age_seconds") or 0.0))],
           "kafka_metal_status_level": [({}, level_code(worst(found)))]}
    if not up:
        return out
    out.update({name: [] for name in HELP if name not in out})  # every family, empty when not known
    brokers = snap.get("brokers")
    if brokers is not None:
        known = {b["id"] for b in brokers}
        missing = set(snap.get("expected_brokers") or ()) - known
        out["kafka_metal_brokers"] = [({"state": "registered"}, len(brokers)),
                                      ({"state": "fenced"}, sum(1 for b in brokers if b.get("fenced"))),
                                      ({"state": "missing"}, len(missing))]
        out["kafka_metal_broker_fenced"] = [({"broker": b["id"]}, 1 if b.get("fenced") else 0) for b in brokers]
    if snap.get("partitions") is not None:
        kinds = classify_partitions(snap["partitions"])
        out["kafka_metal_partitions"] = [({"state": k}, len(v)) for k, v in kinds.items()]
        out["kafka_metal_partitions_total"] = [({}, len(snap["partitions"]))]
    quorum = snap.get("quorum")
    if quorum:
        out["kafka_metal_quorum_leader_id"] = [({}, quorum.get("leader_id", -1))]
        out["kafka_metal_quorum_voter_lag_records"] = [({"voter": v["id"]}, voter_lag(quorum, v))
                                                       for v in quorum.get("voters") or ()
                                                       if voter_lag(quorum, v) is not None]
    if snap.get("reassignments") is not None:
        out["kafka_metal_reassignments_in_progress"] = [({}, len(snap["reassignments"]))]
    throttles = snap.get("throttles")
    if throttles is not None:
        rates = []
        for broker, conf in sorted(throttles.get("brokers", {}).items(), key=lambda i: str(i[0])):
            for key, direction in BROKER_RATES.items():
                if _rate(conf.get(key)) is not None:
                    rates.append(({"broker": broker, "direction": direction}, _rate(conf[key])))
        out["kafka_metal_replication_throttle_rate_bytes"] = rates
        out["kafka_metal_throttled_replicas_topics"] = [({}, len([t for t, c in throttles.get("topics", {}).items()
                                                                  if c]))]
        out["kafka_metal_replication_throttles_set"] = [({}, sum(len(c) for kind in ("brokers", "topics")
                                                                 for c in throttles.get(kind, {}).values()))]
    if snap.get("log_dirs") is not None:
        for name, key in (("kafka_metal_log_dir_total_bytes", "total_bytes"),
                          ("kafka_metal_log_dir_usable_bytes", "usable_bytes")):
            out[name] = [({"broker": d["broker"], "log_dir": d["path"]}, d[key]) for d in snap["log_dirs"]
                         if d.get(key) is not None and d[key] >= 0]
        out["kafka_metal_log_dir_offline"] = [({"broker": d["broker"], "log_dir": d["path"]}, 1 if d.get("error")
                                               else 0) for d in snap["log_dirs"]]
    if snap.get("certificates") is not None:
        out["kafka_metal_certificate_not_after_timestamp_seconds"] = [
            ({"endpoint": c["endpoint"], "kind": c["kind"]}, c["not_after"]) for c in snap["certificates"]
            if c.get("not_after") is not None]
    groups = snap.get("groups")
    if groups is not None:
        out["kafka_metal_consumergroup_lag_records"] = [({"group": g["group"]}, g["lag"]) for g in groups]
        out["kafka_metal_consumergroup_lag_seconds"] = [({"group": g["group"]}, float(g["seconds"] or 0.0))
                                                        for g in groups]
        out["kafka_metal_consumergroup_verdict"] = [({"group": g["group"]}, lag_rules.SEVERITY[g["verdict"]])
                                                    for g in groups]
        out["kafka_metal_consumergroup_members"] = [({"group": g["group"]}, g["members"]) for g in groups]
        out["kafka_metal_consumergroups_total"] = [({}, len(groups))]
        limits = limits or Limits()
        out["kafka_metal_consumergroup_lag_seconds_threshold"] = [({}, float(limits.lag_seconds))]
        out["kafka_metal_consumergroup_lag_records_threshold"] = [({}, int(limits.lag_records))]
    return out


def render_prometheus(snap, found, limits=None):
    """The Prometheus text exposition format (version 0.0.4): every metric a gauge, with HELP and TYPE."""
    lines = []
    for name, samples in metrics(snap, found, limits).items():
        lines += [f"# HELP {name} {HELP[name]}", f"# TYPE {name} gauge"]
        for labels, value in samples:
            text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            lines.append(f"{name}{{{text}}} {_number(value)}" if text else f"{name} {_number(value)}")
    return "\n".join(lines) + "\n"
