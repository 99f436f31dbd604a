"""``kafka-metal migrate kraft``: move a ZooKeeper-mode cluster to KRaft one phase per run (or roll it back), with
playbooks/migrate_kraft.yml. The phase is read from the cluster on every run; the playbook prints the phase,
the next step and what the inventory must say afterwards."""

from __future__ import annotations

import tempfile

import yaml

from . import runner

PLAYBOOK = runner.REPO_ROOT / "playbooks" / "migrate_kraft.yml"


def cmd_migrate_kraft(args):
    action = "rollback" if args.rollback else ("status" if args.status else "next")
    with tempfile.NamedTemporaryFile("w", suffix=".yml") as extra:
        yaml.safe_dump({"kafka_migration_action": action, "kafka_migration_finalize": bool(args.finalize)}, extra)
        extra.flush()
        env = {"ANSIBLE_VAULT_PASSWORD_FILE": args.vault_password_file} if args.vault_password_file else {}
        rc = runner.run_playbook(PLAYBOOK, args.inventory, extra_vars_file=extra.name, env=env)
    if rc != 0:
        print(f"kafka-metal: the migration step failed (exit {rc}); the cluster is where the output above says. Fix "
              "what it names and run the same command again: the phase is read from the cluster, so the step is "
              "completed, not repeated")
        return 2
    return 0


def add_subparsers(sub):
    migrate = sub.add_parser("migrate", help="metadata migrations: a ZooKeeper-mode cluster to KRaft")
    msub = migrate.add_subparsers(dest="migration", required=True, metavar="MIGRATION")
    kraft = msub.add_parser(
        "kraft", help="move a ZooKeeper-mode cluster to KRaft one phase per run (none, controllers, dual_write, "
                      "kraft_brokers, finalized), or roll it back",
        description="Each run reads the phase from the cluster and takes one step: the KRaft controllers started in "
                    "migration mode; the brokers rolled into migration mode (the controllers copy the metadata and "
                    "then write to both); the brokers rolled to KRaft; finalize (only with --finalize: the "
                    "controllers leave migration mode, ZooKeeper is stopped and left on disk). --rollback returns "
                    "any phase before finalize to ZooKeeper mode. After each run, set kafka_zookeeper_migration in "
                    "the inventory as printed, so that site.yml agrees with the cluster.")
    kraft.add_argument("-i", "--inventory", action="append", required=True,
                       help="inventory (repeatable); it lists the KRaft controllers in kafka_controllers")
    what = kraft.add_mutually_exclusive_group()
    what.add_argument("--status", action="store_true", help="only say where the migration stands and what comes next")
    what.add_argument("--rollback", action="store_true",
                      help="step back towards ZooKeeper mode (from kraft_brokers to dual_write, from any earlier "
                           "phase to none)")
    kraft.add_argument("--finalize", action="store_true",
                       help="allow the last, irreversible step (a run whose next step is finalize refuses "
                            "without it)")
    kraft.add_argument("--vault-password-file", default=None, help="for inventories with vaulted secrets")
    kraft.set_defaults(func=cmd_migrate_kraft)
