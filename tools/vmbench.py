"""Shared parts of the VM benchmarks (tools/bench_*.py): one VM of its own lab, a one-node cluster
on it, ``kafka-producer-perf-test`` runs on the VM, and min / median / max of their results.

The benchmarks use their own VM lab (state /var/lib/kafka-metal/vmbench, bridge kmvb0,
10.242.0.0/24), so a running `tuning` scenario is left alone; run one benchmark at a time.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
STATE = "/var/lib/kafka-metal/vmbench"
LAB = ["--vm", "--state-dir", STATE]
PERF = re.compile(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\)")
TOOLS = "/opt/kafka/current/bin"
BOOTSTRAP = "node1:9092"


def sh(argv, **kw):
    print("+", " ".join(str(a) for a in argv), flush=True)
    return subprocess.run([str(a) for a in argv], check=True, text=True, **kw)


def ssh(cmd: str, capture=False):
    return sh([BIN / "kafka-metal", "lab", "ssh", *LAB, "node1", "--", cmd], capture_output=capture)


def lab_up(disks: int) -> None:
    sh([BIN / "kafka-metal", "dist", "build", "--version", "4.1.1"])
    sh([BIN / "kafka-metal", "lab", "up", *LAB, "--hosts", "1", "--disks", str(disks), "--bridge", "kmvb0",
        "--subnet", "10.242.0.0/24"])  # fmt: skip


def lab_down() -> None:
    subprocess.run([BIN / "kafka-metal", "lab", "down", *LAB], check=False)


def inventory(group_vars: str) -> Path:
    """A temporary inventory: the lab's hosts as one combined node, the `tuning` scenario's settings
    up to its data disks, then ``group_vars``."""
    inv = Path(tempfile.mkdtemp(prefix="kafka-metal-bench-"))
    shutil.copy(f"{STATE}/inventory.yml", inv / "lab.yml")
    (inv / "hosts.yml").write_text(
        "all:\n  children:\n    kafka_controllers: {hosts: {node1: {}}}\n    kafka_brokers: {hosts: {node1: {}}}\n"
    )
    (inv / "group_vars").mkdir()
    scenario = (REPO / "molecule" / "tuning" / "group_vars" / "all" / "scenario.yml").read_text()
    scenario = scenario.split("\ntuning_data_disks:")[0] + "\n"
    (inv / "group_vars" / "all.yml").write_text(scenario + "kafka_ready_timeout: 900\n" + group_vars)
    return inv


def playbook(inv: Path, *extra):
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_PIPELINING": "True"}
    sh([BIN / "ansible-playbook", REPO / "site.yml", "-i", inv, *extra], env=env, cwd=REPO)


def create_topic(topic: str, partitions: int = 6) -> None:
    ssh(f"{TOOLS}/kafka-topics.sh --bootstrap-server {BOOTSTRAP} --create --if-not-exists --topic {topic} "
        f"--partitions {partitions} --replication-factor 1")  # fmt: skip


def perf_run(topic: str, records: int, size: int) -> dict:
    r = ssh(
        f"KAFKA_HEAP_OPTS=-Xmx512m {TOOLS}/kafka-producer-perf-test.sh --topic {topic} --num-records {records} "
        f"--record-size {size} --throughput -1 --producer-props bootstrap.servers={BOOTSTRAP} acks=all "
        "linger.ms=5 batch.size=131072 compression.type=none",
        capture=True,
    )
    m = PERF.findall(r.stdout)
    if not m:
        raise SystemExit(f"no summary in perf output:\n{r.stdout}\n{r.stderr}")
    sent, rps, mbps = m[-1]
    return {"records": int(sent), "records_per_s": float(rps), "mb_per_s": float(mbps)}


def summary(runs: list[dict]) -> dict:
    def stats(key):
        values = [r[key] for r in runs]
        return {"min": min(values), "median": statistics.median(values), "max": max(values)}

    return {"records_per_s": stats("records_per_s"), "mb_per_s": stats("mb_per_s"), "runs": runs}


def line(label: str, s: dict) -> str:
    return (f"{label:9}: records/s min {s['records_per_s']['min']:.0f} median {s['records_per_s']['median']:.0f} "
            f"max {s['records_per_s']['max']:.0f}; MB/s min {s['mb_per_s']['min']:.2f} "
            f"median {s['mb_per_s']['median']:.2f} max {s['mb_per_s']['max']:.2f}")


def figures_dir() -> Path:
    figures = Path(os.environ.get("KAFKA_METAL_FIGURES_DIR", "/tmp/kafka-metal-figures"))
    figures.mkdir(parents=True, exist_ok=True)
    return figures


def arguments(doc: str) -> argparse.Namespace:
    """The options every benchmark takes."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--record-size", type=int, default=1024)
    ap.add_argument("--keep", action="store_true", help="leave the VM lab up afterwards")
    return ap.parse_args()
