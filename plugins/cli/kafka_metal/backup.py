"""``kafka-metal backup create | list | verify | restore``: the collection's backup code from a shell.

The same functions run in the module ``metal.kafka.kafka_backup`` (scheduled backups from a playbook).
Connection settings come from ``--bootstrap-server`` and a Java-style ``--command-config`` file, as for
Kafka's own tools; passwords are never printed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from . import ensure_collection_path

ensure_collection_path()

from ansible_collections.metal.kafka.plugins.module_utils import backup as bk  # noqa: E402
from ansible_collections.metal.kafka.plugins.module_utils import backup_kafka  # noqa: E402


def _conf(args):
    from . import load

    try:
        return load.client_settings(args.bootstrap_server, args.command_config)
    except load.LoadError as exc:
        raise bk.BackupError(str(exc)) from None


def _say(line):
    print(line, flush=True)


def read_passwords(path):
    """``{user: password}`` from a YAML or JSON mapping (``-``: standard input, e.g. from ``ansible-vault view``)."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise bk.BackupError(f"--passwords {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise bk.BackupError(f"--passwords {path}: not text (decrypt a vault file first: ansible-vault view FILE | "
                             "... --passwords -)") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        raise bk.BackupError(f"--passwords {path}: not YAML or JSON (expected 'user: password' lines)") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise bk.BackupError(f"--passwords {path}: expected a mapping of user names to password strings")
    return data


def _workers(text):
    n = int(text)
    if n < 1:
        raise ValueError(text)
    return n


def _workers_option(p, verb):
    p.add_argument("--workers", type=_workers, default=None, metavar="N",
                   help=f"processes that {verb} partitions side by side, each with its own Kafka client "
                        "(default: one per core of this machine; 1: this process alone)")


def cmd_create(args):
    info = backup_kafka.create(_conf(args), args.dir, topics=args.topic, incremental=args.incremental,
                               resume=not args.new, quotas=not args.skip_quotas, out=_say,
                               chunk_records=args.chunk_records, workers=args.workers)
    if args.json:
        print(json.dumps(info, indent=1, sort_keys=True))
    return 0


def cmd_list(args):
    rows = bk.list_backups(args.dir)
    if args.json:
        print(json.dumps(rows, indent=1, sort_keys=True))
        return 0
    if not rows:
        print(f"no backups in {args.dir}")
        return 0
    print(f"{'ID':<22} {'KIND':<12} {'STATUS':<9} {'PARENT':<22} {'TOPICS':>6} {'RECORDS':>12} {'DATA':>10} "
          f"{'STORED':>10}  CLUSTER")
    for b in rows:
        t = b.get("totals") or {}
        print(f"{b['id']:<22} {b['kind']:<12} {b['status']:<9} {b.get('parent') or '-':<22} {len(b['topics']):>6} "
              f"{t.get('records', 0):>12,} {bk.human_bytes(t.get('bytes', 0)):>10} "
              f"{bk.human_bytes(t.get('stored_bytes', 0)):>10}  {b['cluster_id']}")
    return 0


def cmd_verify(args):
    conf = _conf(args) if args.bootstrap_server else None
    info, problems, notes = backup_kafka.verify(args.dir, args.id, conf=conf, out=_say)
    for note in notes:
        print(f"note: {note}")
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    print(f"backup {info['id']}: " + ("verified" if not problems else f"{len(problems)} problem(s)"))
    return 0 if not problems else 1


def cmd_restore(args):
    passwords = read_passwords(args.passwords) if args.passwords else {}
    summary = backup_kafka.restore(_conf(args), args.dir, args.id, topics=args.topic, existing=args.existing,
                                   passwords=passwords, users=not args.skip_users, acls=not args.skip_acls,
                                   quotas=not args.skip_quotas, groups=not args.skip_groups, out=_say,
                                   workers=args.workers)
    if args.json:
        print(json.dumps(summary, indent=1, sort_keys=True))
    return 0


def _guarded(func):
    """The action; a BackupError becomes one line on standard error and exit status 2."""

    def run(args):
        try:
            return func(args)
        except bk.BackupError as exc:
            print(f"kafka-metal backup: {exc}", file=sys.stderr)
            return 2

    return run


def _connection(p, required):
    p.add_argument("--bootstrap-server", required=required, help="host:port[,host:port...]")
    p.add_argument("--command-config", help="Java client properties (as for Kafka's tools): security.protocol, "
                                            "sasl.mechanism, sasl.jaas.config, a PEM ssl.truststore.location")


def add_subparsers(sub):
    backup = sub.add_parser("backup", help="back up topics' records and the cluster's metadata; verify; restore")
    b_sub = backup.add_subparsers(dest="backup_command", required=True, metavar="ACTION")

    p = b_sub.add_parser("create", help="take a backup (or finish an interrupted one)")
    p.add_argument("--dir", required=True, help="backup root directory (local or mounted)")
    _connection(p, True)
    p.add_argument("--topic", action="append", help="only this topic (repeatable; default: every non-internal topic)")
    p.add_argument("--incremental", action="store_true",
                   help="store only what is new since the latest complete backup of this cluster in --dir")
    p.add_argument("--new", action="store_true", help="start a new backup even if an unfinished one is in --dir")
    p.add_argument("--skip-quotas", action="store_true", help="do not read client quotas")
    p.add_argument("--chunk-records", type=int, default=bk.CHUNK_RECORDS,
                   help=f"records per chunk file at most (default: {bk.CHUNK_RECORDS}; chunks also end at 8 MiB)")
    _workers_option(p, "read")
    p.add_argument("--json", action="store_true", help="print the backup's record (backup.json) at the end")
    p.set_defaults(func=_guarded(cmd_create))

    p = b_sub.add_parser("list", help="the backups in a directory")
    p.add_argument("--dir", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_guarded(cmd_list))

    p = b_sub.add_parser("verify", help="re-read every chunk and recompute the digests; optionally compare with "
                                        "a live cluster (the source, or one it was restored into)")
    p.add_argument("--dir", required=True)
    p.add_argument("--id", default=None, help="backup id (default: the latest complete one)")
    _connection(p, False)
    p.set_defaults(func=_guarded(cmd_verify))

    p = b_sub.add_parser("restore", help="restore a backup (and its incremental chain) into a cluster")
    p.add_argument("--dir", required=True)
    p.add_argument("--id", default=None, help="backup id (default: the latest complete one)")
    _connection(p, True)
    p.add_argument("--topic", action="append", help="only this topic (repeatable)")
    p.add_argument("--existing", choices=["refuse", "skip", "append"], default="refuse",
                   help="a topic that already exists: refuse the restore (default) if it holds records or has "
                        "another partition count; skip it; or append after its records")
    p.add_argument("--passwords", help="YAML 'user: password' for the SCRAM users (- reads standard input, "
                                       "e.g. ansible-vault view FILE | kafka-metal backup restore ... --passwords -)")
    p.add_argument("--skip-users", action="store_true")
    p.add_argument("--skip-acls", action="store_true")
    p.add_argument("--skip-quotas", action="store_true")
    p.add_argument("--skip-groups", action="store_true", help="do not set consumer group offsets")
    _workers_option(p, "write")
    p.add_argument("--json", action="store_true", help="print a summary as JSON at the end")
    p.set_defaults(func=_guarded(cmd_restore))
