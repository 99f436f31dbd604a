"""``kafka-metal luks status`` and ``kafka-metal luks rotate``: the encrypted data disks, from a shell.

Both run the collection's own code through Ansible, with the operator's inventory: ``status`` the
``luks_volume_info`` module on every Kafka and ZooKeeper host, ``rotate`` the playbook
``playbooks/luks_rotate.yml`` (the ``luks_volume`` module and its controller-side key store), so the
command line and a playbook run are one implementation. Neither prints a key.
"""

from __future__ import annotations

import json
import subprocess
import sys

from . import REPO_ROOT

HOSTS = "zookeeper:kafka_controllers:kafka_brokers"


def _inventory_args(args):
    argv = []
    for inv in args.inventory:
        argv += ["-i", str(inv)]
    if args.limit:
        argv += ["--limit", ",".join(args.limit)]
    if args.vault_password_file:
        argv += ["--vault-password-file", args.vault_password_file]
    return argv


def collect_status(args):
    """``{host: result}`` of ``luks_volume_info`` on every host (through the collection's
    ``metal.kafka.json_results`` callback: standard output is that JSON alone)."""
    from .runner import ansible_env as _ansible_env
    from .runner import tool as _tool

    env = _ansible_env()
    env.update({"ANSIBLE_STDOUT_CALLBACK": "metal.kafka.json_results", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1"})
    env.pop("ANSIBLE_CALLBACKS_ENABLED", None)
    argv = [_tool("ansible"), HOSTS, *_inventory_args(args), "--become", "-m", "metal.kafka.luks_volume_info"]
    proc = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    try:
        data = json.loads(proc.stdout)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        return data
    except ValueError:
        tail = (proc.stderr or proc.stdout).strip()[-2000:]
        raise SystemExit(f"ansible failed (exit {proc.returncode}): {tail}") from None


def status_rows(results):
    """Table rows and the problems found, from ``collect_status``."""
    rows, problems = [], []
    for host in sorted(results):
        result = results[host]
        if result.get("failed") or result.get("unreachable"):
            problems.append(f"{host}: {result.get('msg', 'failed')}")
            rows.append((host, "-", "-", "-", "-", "-", "-", "unreachable or failed"))
            continue
        volumes = result.get("volumes") or []
        if not volumes:
            rows.append((host, "(none)", "", "", "", "", "", ""))
        for v in volumes:
            params = f"{v.get('cipher')} {v.get('key_size')}b {v.get('sector_size')}B" if v.get("cipher") else "-"
            state = "open" if v.get("open") else "closed"
            mounted = ",".join(v.get("mounted_at") or []) or "-"
            slots = ",".join(sorted(v.get("keyslots") or {})) or "-"
            ok = "ok" if not v.get("problems") else "; ".join(v["problems"])
            rows.append((host, v["name"], v.get("device") or "?", state, mounted, params, slots, ok))
            problems += [f"{host} {v['name']}: {p}" for p in v.get("problems") or []]
    return rows, problems


def cmd_status(args):
    from .tables import render_table

    results = collect_status(args)
    rows, problems = status_rows(results)
    if args.json:
        print(json.dumps(results, indent=2, sort_keys=True))
    else:
        print(render_table(rows, ("HOST", "VOLUME", "DEVICE", "STATE", "MOUNTED", "CIPHER", "SLOTS", "HEALTH")))
    return 1 if problems else 0


def cmd_rotate(args):
    from .runner import ansible_env as _ansible_env
    from .runner import tool as _tool

    argv = [_tool("ansible-playbook"), str(REPO_ROOT / "playbooks" / "luks_rotate.yml"), *_inventory_args(args)]
    argv += ["-e", json.dumps({"tuning_luks_rotate": args.volume or []})]
    if args.check:
        argv += ["--check", "--diff"]
    print(f"rotating the LUKS keys of {', '.join(args.volume) if args.volume else 'every encrypted data disk'} on "
          f"{', '.join(args.limit) if args.limit else 'every host'}", flush=True)
    rc = subprocess.run(argv, cwd=REPO_ROOT, env=_ansible_env()).returncode
    if rc != 0:
        print(f"the rotation failed (ansible-playbook exit {rc}). Every volume still opens with the key its host has "
              "installed; run the same command again to finish (it resumes where it stopped)", file=sys.stderr)
        return rc
    if args.check:
        return 0
    return cmd_status(args)


def add_subparsers(sub):
    luks = sub.add_parser("luks", help="encrypted (LUKS2) data disks: status, key rotation")
    luks_sub = luks.add_subparsers(dest="luks_command", required=True, metavar="ACTION")
    for name, func, text in (
        ("status", cmd_status, "each host's encrypted data disks: device, state, parameters, key slots, health"),
        ("rotate", cmd_rotate, "rotate volume keys online (add new, prove it, install it, remove old)"),
    ):
        p = luks_sub.add_parser(name, help=text)
        p.add_argument("-i", "--inventory", action="append", required=True,
                       help="Ansible inventory (repeatable), as for ansible-playbook")
        p.add_argument("--limit", action="append", help="only this host (repeatable)")
        p.add_argument("--vault-password-file", help="to read vaulted inventory variables (keys, passphrase)")
        p.add_argument("--json", action="store_true", help="print the status as JSON")
        if name == "rotate":
            p.add_argument("--volume", action="append", help="only this volume name, e.g. kafka-data1 (repeatable)")
            p.add_argument("--check", action="store_true", help="show what would be done; change nothing")
        p.set_defaults(func=func)
