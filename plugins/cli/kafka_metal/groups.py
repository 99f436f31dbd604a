"""``kafka-metal groups list|describe|reset``: consumer groups, their lag in records and in seconds with a
verdict (OK, lagging, stalled, stopped), and offset resets (dry run unless ``--execute``, refused while the
group has active members). The rules are in ``module_utils/lag.py``; the reads in ``groups_kafka.py``.
"""

from __future__ import annotations

import datetime
import json
import sys

from . import ensure_collection_path

ensure_collection_path()

from ansible_collections.metal.kafka.plugins.module_utils import groups_kafka  # noqa: E402


def _groups(args):
    from . import load

    try:
        conf = load.client_settings(args.bootstrap_server, args.command_config)
    except load.LoadError as exc:
        raise groups_kafka.GroupError(str(exc)) from None
    return groups_kafka.Groups(conf, timeout=args.timeout)


def _fail(exc):
    print(f"kafka-metal: {exc}", file=sys.stderr)
    return 2


def _incomplete(errors):
    """Warn on stderr when a broker's part of the group list is missing; the exit code then says so too (1)."""
    if errors:
        print("kafka-metal: the group list is incomplete, a broker did not answer (it is down, or its group "
              f"coordinators are moving; run again shortly): {'; '.join(errors[:3])}", file=sys.stderr)
    return 1 if errors else 0


def cmd_list(args):
    try:
        listed, errors = _groups(args).listing()
    except groups_kafka.GroupError as exc:
        return _fail(exc)
    code = _incomplete(errors)
    if args.json:
        print(json.dumps(listed, indent=1))
        return code
    for g in listed:
        print(f"{g['group']}  {g['state']}{'  (simple)' if g['simple'] else ''}")
    return code


def _seconds(value):
    return "-" if value is None else f"{value:.1f}s"


def cmd_describe(args):
    try:
        groups = _groups(args)
        errors = []
        if args.group:
            names = args.group
        else:
            listed, errors = groups.listing()
            names = [g["group"] for g in listed]
        judged = groups.lag(names, samples=args.samples, interval=args.interval)
    except groups_kafka.GroupError as exc:
        return _fail(exc)
    code = _incomplete(errors)
    if args.json:
        print(json.dumps([judged[g].as_dict() for g in names], indent=1))
        return code
    for g in names:
        j = judged[g]
        print(f"{g}: {j.verdict}, lag {j.lag} records, {_seconds(j.seconds)}, {j.members} members")
        for p in j.partitions:
            print(f"  {p.topic}-{p.partition}: committed {p.committed if p.committed is not None else '-'}, end "
                  f"{p.end}, lag {p.lag if p.lag is not None else '-'} ({_seconds(p.seconds)}) {p.verdict}")
    return code


def _parse_time(text):
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise groups_kafka.GroupError(f"--to-datetime {text!r}: give an ISO 8601 time such as "
                                      "2026-12-01T08:00:00+00:00") from None
    if when.tzinfo is None:
        raise groups_kafka.GroupError(f"--to-datetime {text!r} has no time zone: add one (+00:00 for UTC)")
    return int(when.timestamp() * 1000)


def cmd_reset(args):
    try:
        groups = _groups(args)
        described = groups.describe([args.group])[args.group]
        if described["state"] in groups_kafka.ACTIVE_STATES or described["members"]:
            raise groups_kafka.GroupError(
                f"group {args.group} has {len(described['members'])} active members (state {described['state']}): "
                "stop its consumers first, then reset (a running consumer would overwrite the new offsets)")
        committed = groups.committed([args.group]).get(args.group, {})
        partitions = set(committed)
        if args.topic:
            md = groups.admin.list_topics(timeout=args.timeout)
            missing = [t for t in args.topic if t not in md.topics or md.topics[t].error is not None]
            if missing:
                raise groups_kafka.GroupError(f"no topic {', '.join(missing)} in the cluster: check the name")
            partitions = {tp for tp in partitions if tp[0] in args.topic}
            partitions |= {(t, p) for t in args.topic for p in md.topics[t].partitions}
        if not partitions:
            raise groups_kafka.GroupError(f"group {args.group} has no committed offsets: name the topics to reset "
                                          "(--topic)")
        earliest = groups.offsets(partitions, "earliest")
        latest = groups.offsets(partitions, "latest")
        at_time = groups.offsets(partitions, "time", _parse_time(args.to_datetime)) if args.to_datetime else None
        targets = _targets(args, committed, earliest, latest, at_time)
    except (groups_kafka.GroupError, ValueError) as exc:
        return _fail(exc)
    for tp, new in sorted(targets.items()):
        old = committed.get(tp)
        print(f"{tp[0]}-{tp[1]}: {old if old is not None else '-'} -> {new}")
    if not args.execute:
        print(f"dry run: nothing changed; add --execute to commit these offsets for group {args.group}")
        return 0
    try:
        groups.reset(args.group, targets)
    except groups_kafka.GroupError as exc:
        return _fail(exc)
    print(f"group {args.group}: {len(targets)} offsets committed")
    return 0


def _targets(args, committed, earliest, latest, at_time):
    to = "earliest" if args.to_earliest else "latest" if args.to_latest else None
    return groups_kafka.reset_targets(committed, earliest, latest, to=to, shift=args.shift_by, at_time=at_time)


def _connection(p):
    p.add_argument("--bootstrap-server", required=True, help="host:port of brokers, as for Kafka's tools")
    p.add_argument("--command-config", default=None,
                   help="Java client properties (TLS, SASL), as for Kafka's tools")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each answer (default 30)")


def add_subparsers(sub):
    groups = sub.add_parser("groups", help="consumer groups: list, lag and verdicts, offset resets")
    gsub = groups.add_subparsers(dest="groups_command", required=True, metavar="ACTION")
    listing = gsub.add_parser("list", help="every consumer group and its state")
    listing.add_argument("--json", action="store_true")
    _connection(listing)
    listing.set_defaults(func=cmd_list)
    describe = gsub.add_parser("describe", help="lag per partition in records and seconds, and a verdict per "
                                                "group (OK, lagging, stalled, stopped)")
    describe.add_argument("group", nargs="*", help="groups (default: all)")
    describe.add_argument("--samples", type=int, default=3, help="reads of the offsets (default 3)")
    describe.add_argument("--interval", type=float, default=2.0, help="seconds between reads (default 2)")
    describe.add_argument("--json", action="store_true")
    _connection(describe)
    describe.set_defaults(func=cmd_describe)
    reset = gsub.add_parser("reset", help="move a stopped group's offsets (a dry run unless --execute)")
    reset.add_argument("group")
    where = reset.add_mutually_exclusive_group(required=True)
    where.add_argument("--to-earliest", action="store_true", help="the first record kept")
    where.add_argument("--to-latest", action="store_true", help="past the last record")
    where.add_argument("--to-datetime", help="the first record at or after this ISO 8601 time (with its zone)")
    where.add_argument("--shift-by", type=int, help="records forward (or back, negative) from the committed offset")
    reset.add_argument("--topic", action="append", help="only this topic (repeatable); its partitions without a "
                                                         "committed offset too")
    reset.add_argument("--execute", action="store_true", help="commit the new offsets (default: print them only)")
    _connection(reset)
    reset.set_defaults(func=cmd_reset)
