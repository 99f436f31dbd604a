"""``kafka-metal lab``: the command line of the container lab and the VM lab."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence

from . import lab_plan as plan
from . import vmlab
from .lab import Lab, LabError
from .tables import render_table

# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def _lab_from_args(args: argparse.Namespace) -> Lab:
    common = {
        "state_dir": args.state_dir,
        "cache_dir": getattr(args, "cache_dir", None),
        "bridge": getattr(args, "bridge", None),
        "subnet": getattr(args, "subnet", None),
        "netns_prefix": getattr(args, "netns_prefix", None),
    }
    boot_timeout = getattr(args, "boot_timeout", None)
    if getattr(args, "vm", False):
        spec = vmlab.VmSpec(
            memory_mib=getattr(args, "memory", vmlab.DEFAULT_MEMORY_MIB),
            cpus=getattr(args, "cpus", vmlab.DEFAULT_CPUS),
            disks=getattr(args, "disks", vmlab.DEFAULT_DISKS),
            disk_size=getattr(args, "disk_size", vmlab.DEFAULT_DISK_SIZE),
            accel=getattr(args, "accel", "auto"),
        )
        if args.lab_command != "up":  # down, status, ssh: the lab as it was made
            spec = vmlab.VmSpec(**{**vmlab.VmLab.recorded_spec(args.state_dir), "accel": "auto"})
        return vmlab.VmLab(**common, boot_timeout=boot_timeout or 600.0, spec=spec)
    return Lab(**common, boot_timeout=boot_timeout or 90.0)


def _err(msg: str) -> int:
    print(f"kafka-metal lab: error: {msg}", file=sys.stderr)
    return 1


def _cmd_up(args: argparse.Namespace) -> int:
    def progress(msg: str) -> None:
        print(msg, file=sys.stderr if args.json else sys.stdout, flush=True)

    try:
        lab = _lab_from_args(args)
        accesses = lab.up(args.hosts, progress=progress)
    except LabError as exc:
        return _err(str(exc))
    if args.json:
        print(json.dumps([a.as_dict() for a in accesses], indent=2))
    else:
        print()
        print(render_table([(a.name, a.address) for a in accesses], ("HOST", "ADDRESS")))
        print(f"\ninventory: {lab.inventory_file}")
        vm = " --vm" if getattr(args, "vm", False) else ""
        print(f"ssh:       kafka-metal lab ssh{vm} {accesses[0].name}")
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    try:
        _lab_from_args(args).down()
    except LabError as exc:
        return _err(str(exc))
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    lab = _lab_from_args(args)
    statuses = lab.status()
    if args.json:
        print(json.dumps([s.as_dict() for s in statuses], indent=2))
        return 0
    if not statuses:
        print("no lab hosts (run 'kafka-metal lab up')")
        return 0
    print(
        render_table(
            [(s.name, s.address, "running" if s.running else "stopped", "yes" if s.ssh else "no") for s in statuses],
            ("HOST", "ADDRESS", "STATE", "SSH"),
        )
    )
    print(f"\ninventory: {lab.inventory_file}")
    return 0 if all(s.running and s.ssh for s in statuses) else 3


def _cmd_ssh(args: argparse.Namespace) -> int:
    try:
        argv = _lab_from_args(args).ssh_argv(args.host, args.command)
    except LabError as exc:
        return _err(str(exc))
    sys.stdout.flush()
    return subprocess.run(argv).returncode  # ssh owns the terminal; its exit code is ours


def add_subparser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``lab up|down|status|ssh``; each sets ``func(args) -> exit code``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--state-dir",
        metavar="DIR",
        help=f"lab state (default $KAFKA_METAL_LAB_DIR or {plan.DEFAULT_STATE_DIR}; "
        "with --vm $KAFKA_METAL_VM_LAB_DIR or /var/lib/kafka-metal/vmlab)",
    )
    common.add_argument(
        "--vm",
        action="store_true",
        help="the VM lab: QEMU virtual machines with their own kernel and data disks (KVM where it "
        "boots, software emulation otherwise) instead of containers",
    )
    lab = subparsers.add_parser(
        "lab",
        help="Debian 12 test hosts as systemd-nspawn containers on this machine",
        description="Debian 12 hosts as systemd-nspawn containers with real systemd, "
        "sshd and NAT to Debian's mirror, plus an Ansible inventory.",
    )
    sub = lab.add_subparsers(dest="lab_command", metavar="{up,down,status,ssh}", required=True)

    up = sub.add_parser("up", parents=[common], help="create/start N hosts and write the inventory")
    up.add_argument(
        "--hosts",
        type=int,
        metavar="N",
        help=f"number of hosts node1..nodeN ({plan.MIN_HOSTS}-{plan.MAX_HOSTS}; default: the lab's "
        f"current size, or {plan.DEFAULT_HOSTS} containers / 1 VM)",
    )
    up.add_argument("--json", action="store_true", help="print the hosts as JSON (progress goes to stderr)")
    up.add_argument(
        "--cache-dir",
        metavar="DIR",
        help=f"base root file system cache (default $KAFKA_METAL_CACHE_DIR or {plan.DEFAULT_CACHE_DIR})",
    )
    up.add_argument("--bridge", help=f"bridge name (default {plan.DEFAULT_BRIDGE})")
    up.add_argument("--subnet", help=f"lab subnet (default {plan.DEFAULT_SUBNET})")
    up.add_argument("--netns-prefix", help=f"network namespace prefix (default {plan.DEFAULT_NETNS_PREFIX})")
    up.add_argument(
        "--boot-timeout",
        type=float,
        metavar="SECONDS",
        help="how long a host may take to boot (default 90, VMs 600)",
    )
    vm = up.add_argument_group("VM lab (with --vm)")
    vm.add_argument("--memory", type=int, default=3072, metavar="MIB", help="memory per VM (default 3072)")
    vm.add_argument("--cpus", type=int, default=2, metavar="N", help="virtual CPUs per VM (default 2)")
    vm.add_argument("--disks", type=int, default=2, metavar="N", help="empty data disks per VM (default 2)")
    vm.add_argument("--disk-size", default="4G", metavar="SIZE", help="size of each data disk (default 4G, sparse)")
    vm.add_argument(
        "--accel",
        choices=("auto", "kvm", "tcg"),
        default="auto",
        help="auto (default): KVM when /dev/kvm boots a guest, else software emulation",
    )
    up.set_defaults(func=_cmd_up)

    down = sub.add_parser(
        "down",
        parents=[common],
        help="stop and remove every host, the network and the NAT rules (keeps the base)",
    )
    down.set_defaults(func=_cmd_down)

    status = sub.add_parser("status", parents=[common], help="each host: address, running, ssh reachable")
    status.add_argument("--json", action="store_true", help="print the hosts as JSON")
    status.set_defaults(func=_cmd_status)

    ssh = sub.add_parser("ssh", parents=[common], help="ssh into a host (interactive without a command)")
    ssh.add_argument("host", help="host name (node1) or address")
    ssh.add_argument("command", nargs=argparse.REMAINDER, help="command to run instead of a shell")
    ssh.set_defaults(func=_cmd_ssh)
    return lab


def main(argv: Sequence[str] | None = None) -> int:
    """``kafka-metal lab ...`` on its own (``python -m kafka_metal.lab_cli up --hosts 2``), as the tests call it."""
    parser = argparse.ArgumentParser(prog="kafka-metal")
    add_subparser(parser.add_subparsers(dest="command", required=True))
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["lab"]:
        argv = ["lab", *argv]
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
