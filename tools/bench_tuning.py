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

import json
import shutil
import sys
import time

from vmbench import (
    arguments,
    create_topic,
    figures_dir,
    inventory,
    lab_down,
    lab_up,
    line,
    perf_run,
    playbook,
    ssh,
    summary,
)

TOPIC = "bench"


def host_state(log_dir: str) -> str:
    """What the benchmark compares: kernel settings, huge pages, the log dir's file system and options."""
    return ssh(
        "sysctl -n vm.swappiness vm.dirty_ratio vm.max_map_count; cat /sys/kernel/mm/transparent_hugepage/enabled;"
        f" findmnt -n -o FSTYPE,OPTIONS {log_dir}",
        capture=True,
    ).stdout


def perf_runs(runs: int, records: int, size: int) -> list[dict]:
    create_topic(TOPIC)
    out = []
    for i in range(runs):
        r = perf_run(TOPIC, records, size)
        out.append({"run": i + 1, **r})
        print(f"  run {i + 1}: {r['records_per_s']} records/s, {r['mb_per_s']} MB/s", flush=True)
    return out


def main() -> int:
    args = arguments(__doc__)

    t0 = time.monotonic()
    lab_up(disks=2)
    boot_s = time.monotonic() - t0
    inv = inventory("")
    try:
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
            lab_down()
        shutil.rmtree(inv, ignore_errors=True)

    result = {
        "settings": {"records": args.records, "record_size": args.record_size, "runs": args.runs, "acks": "all"},
        "vm_up_s": round(boot_s, 1),
        "before": {"state": before_state.split("\n"), **summary(before)},
        "after": {"state": after_state.split("\n"), **summary(after)},
        "total_s": round(time.monotonic() - t0, 1),
    }
    (figures_dir() / "tuning-bench.json").write_text(json.dumps(result, indent=2) + "\n")
    for phase in ("before", "after"):
        print(line(phase, result[phase]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
