"""Producer throughput on encrypted (LUKS2) and plain data disks of the same VM and broker (figures
for notes, not a test).

    sudo .venv/bin/python tools/bench_luks.py [--runs 5] [--records 20000] [--record-size 1024]

Brings up one VM of the benchmark lab (tools/vmbench.py) with two data disks and runs site.yml with
data disk 1 encrypted (LUKS2, the role's default parameters) and data disk 2 plain, both XFS, both
log.dirs of one combined node. Topic `enc` has its 6 partitions moved to the encrypted disk and
topic `plain` its 6 to the plain one (kafka-reassign-partitions with log_dirs), so the two differ
only in the disk under them. Then ``kafka-producer-perf-test`` alternates between the two topics,
``--runs`` times each, same settings. Prints min / median / max of records/s and MB/s for both and
the ratio of medians, writes them as JSON ($KAFKA_METAL_FIGURES_DIR/luks-bench.json), and tears the
VM lab down.
"""

from __future__ import annotations

import json
import shutil
import sys
import time

from vmbench import (
    BOOTSTRAP,
    TOOLS,
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

DIRS = {"enc": "/var/lib/kafka/data1", "plain": "/var/lib/kafka/data2"}


def place(topic: str, log_dir: str, partitions: int = 6) -> None:
    """Move every partition of ``topic`` to ``log_dir`` of broker 1 and wait until it is there."""
    plan = {"version": 1, "partitions": [
        {"topic": topic, "partition": p, "replicas": [1], "log_dirs": [log_dir]} for p in range(partitions)]}
    ssh(f"echo '{json.dumps(plan)}' > /root/place-{topic}.json && {TOOLS}/kafka-reassign-partitions.sh "
        f"--bootstrap-server {BOOTSTRAP} --reassignment-json-file /root/place-{topic}.json --execute")
    deadline = time.monotonic() + 600
    while True:
        out = ssh(f"ls -d {log_dir}/{topic}-* 2>/dev/null | wc -l", capture=True).stdout.strip()
        if out == str(partitions):
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"{topic}: partitions not on {log_dir} after 600 s")
        time.sleep(3)


def main() -> int:
    args = arguments(__doc__)

    t0 = time.monotonic()
    lab_up(disks=2)
    inv = inventory(
        "tuning_luks_key_store: '{{ inventory_dir }}/luks-keys'\n"  # removed with the inventory
        "tuning_data_disks:\n"
        f"  - {{device: /dev/disk/by-id/virtio-kmdata1, path: {DIRS['enc']}, encrypt: true}}\n"
        f"  - {{device: /dev/disk/by-id/virtio-kmdata2, path: {DIRS['plain']}}}\n"
    )
    runs = {"enc": [], "plain": []}
    try:
        t1 = time.monotonic()
        playbook(inv)
        converge_s = time.monotonic() - t1
        state = ssh("cryptsetup status kafka-data1 | sed -n '1,8p'; findmnt -n -o SOURCE,FSTYPE,OPTIONS "
                    f"{DIRS['enc']}; findmnt -n -o SOURCE,FSTYPE,OPTIONS {DIRS['plain']}", capture=True).stdout
        print(state)
        for topic, log_dir in DIRS.items():
            create_topic(topic)
            place(topic, log_dir)
        for i in range(args.runs):
            for topic in ("enc", "plain"):
                r = perf_run(topic, args.records, args.record_size)
                runs[topic].append({"run": i + 1, **r})
                print(f"  {topic} run {i + 1}: {r['records_per_s']} records/s, {r['mb_per_s']} MB/s", flush=True)
    finally:
        if not args.keep:
            lab_down()
        shutil.rmtree(inv, ignore_errors=True)

    enc, plain = summary(runs["enc"]), summary(runs["plain"])
    result = {
        "settings": {"records": args.records, "record_size": args.record_size, "runs": args.runs, "acks": "all"},
        "converge_s": round(converge_s, 1),
        "state": state.split("\n"),
        "encrypted": enc,
        "plain": plain,
        "median_ratio_encrypted_to_plain": round(enc["records_per_s"]["median"] / plain["records_per_s"]["median"], 3),
        "total_s": round(time.monotonic() - t0, 1),
    }
    (figures_dir() / "luks-bench.json").write_text(json.dumps(result, indent=2) + "\n")
    print(line("encrypted", enc))
    print(line("plain", plain))
    print(f"ratio of medians (encrypted / plain): {result['median_ratio_encrypted_to_plain']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
