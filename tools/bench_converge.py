"""What a converge costs on lab hosts, against the cost of reaching them at all (figures for notes, not a test).

    .venv/bin/python tools/bench_converge.py [--topology split] [--plaintext] [--noops 3] [--keep]

On fresh lab hosts (`kafka-metal lab down` then `lab up`, the topology's host count), in one go:

- the floor: `ansible all -m ansible.builtin.ping` over the same hosts (median of 3);
- a fresh converge of `site.yml` (secured by default: SASL_SSL, SCRAM, TLS from the cluster's CA), with the
  time of the Java package install read from the run's task timings;
- ``--noops`` converges that must change nothing (each checked for changed=0), and their median;
- `site.yml --check --diff` on the converged hosts.

Prints each figure with its ratio to the floor and the machine's load average at the start and the end, and
writes them as JSON ($KAFKA_METAL_FIGURES_DIR/converge-bench.json). The lab is torn down afterwards unless
``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins" / "cli"))

from kafka_metal import lab as lab_mod  # noqa: E402
from kafka_metal.main import TOPOLOGIES, _topology_version  # noqa: E402
from kafka_metal.runner import ansible_env, tool  # noqa: E402

RECAP_RE = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
TIMER_RE = re.compile(r"^\s+([0-9.]+) s\s+(.+)$", re.M)


def run(argv, what):
    env = ansible_env()
    env["ANSIBLE_CALLBACKS_ENABLED"] = "metal.kafka.task_timer"
    env["KAFKA_METAL_TASK_TIMER_TOP"] = "500"
    t0 = time.monotonic()
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-6000:] + proc.stderr[-3000:])
        raise SystemExit(f"{what} failed (exit {proc.returncode})")
    recap = {m[1]: {"ok": int(m[2]), "changed": int(m[3])} for m in RECAP_RE.finditer(proc.stdout)}
    tasks = {m[2].strip(): float(m[1]) for m in TIMER_RE.finditer(proc.stderr)}
    print(f"  {what}: {seconds:.1f} s", flush=True)
    return seconds, recap, tasks


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--topology", default="split", choices=sorted(TOPOLOGIES))
    ap.add_argument("--plaintext", action="store_true", help="the lab's plaintext settings instead of SASL_SSL")
    ap.add_argument("--noops", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    args = ap.parse_args()

    topology = REPO / "inventories" / "lab" / f"{args.topology}.yml"
    version = _topology_version(topology)
    the_lab = lab_mod.Lab()
    load_start = os.getloadavg()
    print(f"fresh lab hosts ({TOPOLOGIES[args.topology]}, topology {args.topology}, Kafka {version})", flush=True)
    the_lab.down(progress=lambda _line: None)
    the_lab.up(TOPOLOGIES[args.topology], progress=lambda _line: None)
    work = Path(tempfile.mkdtemp(prefix="kafka-metal-bench-"))
    settings = {"kafka_version": version}
    if not args.plaintext:
        settings.update(kafka_security_protocol="SASL_SSL", kafka_cluster_name="bench",
                        kafka_admin_password=secrets.token_urlsafe(18), kafka_tls_ca_dir=str(work / "pki"))
    extra = work / "bench.json"
    extra.write_text(json.dumps(settings))
    extra.chmod(0o600)
    inventories = ["-i", str(the_lab.inventory_file), "-i", str(topology)]
    playbook = [tool("ansible-playbook"), "site.yml", *inventories, "-e", f"@{extra}"]
    try:
        floor = []
        for _ in range(3):
            floor.append(run([tool("ansible"), "all", *inventories, "-m", "ansible.builtin.ping"], "ping")[0])
        fresh, _, fresh_tasks = run(playbook, "fresh converge")
        java = sum(s for name, s in fresh_tasks.items() if name.startswith("metal.kafka.java :"))
        noops = []
        for i in range(args.noops):
            seconds, recap, _ = run(playbook, f"no-op converge {i + 1}")
            changed = {h: r["changed"] for h, r in recap.items() if r["changed"]}
            if changed:
                raise SystemExit(f"no-op converge {i + 1} changed something: {changed}")
            noops.append(seconds)
        check, _, _ = run([*playbook, "--check", "--diff"], "--check --diff")
    finally:
        if not args.keep:
            the_lab.down(progress=lambda _line: None)
    floor_s, noop_s = statistics.median(floor), statistics.median(noops)
    figures = {
        "topology": args.topology, "hosts": TOPOLOGIES[args.topology], "secured": not args.plaintext,
        "kafka_version": version, "floor_ping_s": round(floor_s, 2), "fresh_s": round(fresh, 1),
        "fresh_java_install_s": round(java, 1), "noop_s": [round(s, 1) for s in noops],
        "noop_median_s": round(noop_s, 1), "check_diff_s": round(check, 1),
        "loadavg_start": [round(x, 2) for x in load_start], "loadavg_end": [round(x, 2) for x in os.getloadavg()],
    }
    print(f"\nfloor (ping)        {floor_s:6.1f} s")
    print(f"fresh converge      {fresh:6.1f} s  ({fresh / floor_s:5.1f} x floor; Java package install {java:.1f} s)")
    print(f"no-op converge      {noop_s:6.1f} s  ({noop_s / floor_s:5.1f} x floor; runs {figures['noop_s']})")
    print(f"--check --diff      {check:6.1f} s  ({check / noop_s:5.2f} x no-op)")
    print(f"load average        start {figures['loadavg_start']}, end {figures['loadavg_end']}")
    out = Path(os.environ.get("KAFKA_METAL_FIGURES_DIR", "/tmp/kafka-metal-figures"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "converge-bench.json").write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
