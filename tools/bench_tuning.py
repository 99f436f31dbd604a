"""Producer throughput on one VM before and after host tuning (figures for notes, not a test).

    sudo .venv/bin/python tools/bench_tuning.py [--runs 5] [--records 20000] [--record-size 1024]

Brings up its own VM lab (state /var/lib/kafka-metal/vmbench, bridge kmvb0, 10.242.0.0/24, so a
running `tuning` scenario is left alone) with two data disks, then on the same VM:

1. before: site.yml without the tuning role (``--skip-tags tuning``): kernel defaults, huge pages
   as the kernel boots them, and the broker's log dir on data disk 1 formatted ext4 with default
   options, as an untuned host would have it;
2. ``kafka-producer-perf-test`` on the VM, ``--runs`` times, same settings each time;
3. after: the topic deleted, site.yml in full: tuned kernel, limits, huge pages, and data disk 2
   as XFS with noatime as the log dir (the broker is stopped first: a single node is its cluster's
   only controller, which the rolling engine does not restart);
4. the same perf runs again.

Prints min / median / max of records/s and MB/s for both, writes them as JSON
($KAFKA_METAL_FIGURES_DIR/tuning-bench.json), and tears the VM lab down.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
STATE = "/var/lib/kafka-metal/vmbench"
LAB = ["--vm", "--state-dir", STATE]
PERF = re.compile(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\)")
TOPIC = "bench"


def sh(argv, **kw):
    print("+", " ".join(str(a) for a in argv), flush=True)
    return subprocess.run([str(a) for a in argv], check=True, text=True, **kw)


def ssh(cmd: str, capture=False):
    return sh([BIN / "kafka-metal", "lab", "ssh", *LAB, "node1", "--", cmd], capture_output=capture)


def playbook(inv: Path, *extra):
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_PIPELINING": "True"}
    sh([BIN / "ansible-playbook", REPO / "site.yml", "-i", inv, *extra], env=env, cwd=REPO)


def host_state(log_dir: str) -> str:
    """What the benchmark compares: kernel settings, huge pages, the log dir's file system and options."""
    return ssh(
        "sysctl -n vm.swappiness vm.dirty_ratio vm.max_map_count; cat /sys/kernel/mm/transparent_hugepage/enabled;"
        f" findmnt -n -o FSTYPE,OPTIONS {log_dir}",
        capture=True,
    ).stdout


def perf_runs(runs: int, records: int, size: int) -> list[dict]:
    bootstrap = "node1:9092"
    tools = "/opt/kafka/current/bin"
    ssh(f"{tools}/kafka-topics.sh --bootstrap-server {bootstrap} --create --if-not-exists --topic {TOPIC} "
        "--partitions 6 --replication-factor 1")  # fmt: skip
    out = []
    for i in range(runs):
        r = ssh(
            f"KAFKA_HEAP_OPTS=-Xmx512m {tools}/kafka-producer-perf-test.sh --topic {TOPIC} --num-records {records} "
            f"--record-size {size} --throughput -1 --producer-props bootstrap.servers={bootstrap} acks=all "
            "linger.ms=5 batch.size=131072 compression.type=none",
            capture=True,
        )
        m = PERF.findall(r.stdout)
        if not m:
            raise SystemExit(f"no summary in perf output:\n{r.stdout}\n{r.stderr}")
        sent, rps, mbps = m[-1]
        out.append({"run": i + 1, "records": int(sent), "records_per_s": float(rps), "mb_per_s": float(mbps)})
        print(f"  run {i + 1}: {rps} records/s, {mbps} MB/s", flush=True)
    return out


def summary(runs: list[dict]) -> dict:
    def stats(key):
        values = [r[key] for r in runs]
        return {"min": min(values), "median": statistics.median(values), "max": max(values)}

    return {"records_per_s": stats("records_per_s"), "mb_per_s": stats("mb_per_s"), "runs": runs}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--record-size", type=int, default=1024)
    ap.add_argument("--keep", action="store_true", help="leave the VM lab up afterwards")
    args = ap.parse_args()

    t0 = time.monotonic()
    sh([BIN / "kafka-metal", "dist", "build", "--version", "4.1.1"])
    sh([BIN / "kafka-metal", "lab", "up", *LAB, "--hosts", "1", "--disks", "2", "--bridge", "kmvb0",
        "--subnet", "10.242.0.0/24"])  # fmt: skip
    boot_s = time.monotonic() - t0
    inv = Path(tempfile.mkdtemp(prefix="kafka-metal-bench-"))
    try:
        shutil.copy(f"{STATE}/inventory.yml", inv / "lab.yml")
        (inv / "hosts.yml").write_text(
            "all:\n  children:\n    kafka_controllers: {hosts: {node1: {}}}\n    kafka_brokers: {hosts: {node1: {}}}\n"
        )
        (inv / "group_vars").mkdir()
        scenario = (REPO / "molecule" / "tuning" / "group_vars" / "all" / "scenario.yml").read_text()
        scenario = scenario.split("\ntuning_data_disks:")[0] + "\n"
        (inv / "group_vars" / "all.yml").write_text(scenario)
        before_vars = inv / "before.yml"
        before_vars.write_text("broker_log_dirs: [/var/lib/kafka/data]\ntuning_data_disks: []\n")
        after_vars = inv / "after.yml"
        after_vars.write_text(
            "tuning_data_disks:\n  - {device: /dev/disk/by-id/virtio-kmdata2, path: /var/lib/kafka/data2}\n"
        )

        # before: an untuned host, data on an ext4 disk with default options
        disk1 = "/dev/disk/by-id/virtio-kmdata1"
        ssh(f"mkfs.ext4 -q -F {disk1} && mkdir -p /var/lib/kafka/data && mount {disk1} /var/lib/kafka/data && "
            "rmdir /var/lib/kafka/data/lost+found")  # fmt: skip
        playbook(inv, "-e", f"@{before_vars}", "--skip-tags", "tuning")
        before_state = host_state("/var/lib/kafka/data")
        print("before:", before_state)
        before = perf_runs(args.runs, args.records, args.record_size)

        # after: tuned, log dir on an XFS data disk
        ssh(f"/opt/kafka/current/bin/kafka-topics.sh --bootstrap-server node1:9092 --delete --topic {TOPIC}")
        time.sleep(10)
        # One node is also the only controller: the rolling engine refuses to restart it (an outage),
        # so the benchmark takes the downtime itself; site.yml then starts it on the new log dir.
        ssh("systemctl stop kafka.service")
        playbook(inv, "-e", f"@{after_vars}")
        after_state = host_state("/var/lib/kafka/data2")
        print("after:", after_state)
        after = perf_runs(args.runs, args.records, args.record_size)
    finally:
        if not args.keep:
            subprocess.run([BIN / "kafka-metal", "lab", "down", *LAB], check=False)
        shutil.rmtree(inv, ignore_errors=True)

    result = {
        "settings": {"records": args.records, "record_size": args.record_size, "runs": args.runs, "acks": "all"},
        "vm_up_s": round(boot_s, 1),
        "before": {"state": before_state.split("\n"), **summary(before)},
        "after": {"state": after_state.split("\n"), **summary(after)},
        "total_s": round(time.monotonic() - t0, 1),
    }
    figures = Path(os.environ.get("KAFKA_METAL_FIGURES_DIR", "/tmp/kafka-metal-figures"))
    figures.mkdir(parents=True, exist_ok=True)
    (figures / "tuning-bench.json").write_text(json.dumps(result, indent=2) + "\n")
    for phase in ("before", "after"):
        s = result[phase]
        print(
            f"{phase:6}: records/s min {s['records_per_s']['min']:.0f} median {s['records_per_s']['median']:.0f} "
            f"max {s['records_per_s']['max']:.0f}; MB/s min {s['mb_per_s']['min']:.2f} "
            f"median {s['mb_per_s']['median']:.2f} max {s['mb_per_s']['max']:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
