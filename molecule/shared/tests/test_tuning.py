"""Host tuning on a virtual machine with its own kernel (scenario `tuning`).

Everything is read from the running system, not from the files the role wrote: the live kernel
values, the limits and command line of the running broker (/proc/PID), the huge page modes, the
mounts the kernel has, and the mount namespace systemd gave the broker. The same checks run again
after a reboot, with the broker back and every message produced before it read back unchanged.
"""

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import testinfra
import yaml
from ansible_collections.metal.kafka.plugins.module_utils import heap as heap_rules
from ansible_collections.metal.kafka.plugins.module_utils import luks, tuning
from kafka_metal import REPO_ROOT, smoke

SCENARIO = os.environ.get("MOLECULE_SCENARIO_NAME", "")
FIGURES = Path(os.environ.get("KAFKA_METAL_FIGURES_DIR", "/tmp/kafka-metal-figures"))
BIN = Path(sys.executable).parent
KAFKA_DEFAULTS = yaml.safe_load((REPO_ROOT / "roles" / "kafka" / "defaults" / "main.yml").read_text())
TUNING_DEFAULTS = yaml.safe_load((REPO_ROOT / "roles" / "tuning" / "defaults" / "main.yml").read_text())
TOPIC = "tuning-durable"
MESSAGES = 5000

pytestmark = pytest.mark.skipif(SCENARIO != "tuning", reason="host tuning checks run in the `tuning` scenario (VM)")
# module-level figures gathered across the checks (reboot, boot-time unlock)
BOOT_FIGURES = {}


@pytest.fixture(scope="module")
def node(cluster):
    name = cluster["brokers"][0]
    return name, cluster["testinfra"][name]


def _env():
    env = dict(os.environ)
    env.pop("ANSIBLE_VERBOSITY", None)
    env["ANSIBLE_CONFIG"] = str(REPO_ROOT / "ansible.cfg")
    return env


def kafka_pid(host):
    pid = int(host.check_output("systemctl show -p MainPID --value kafka.service"))
    assert pid > 0, host.run("journalctl -u kafka --no-pager -n 40").stdout
    return pid


def expected_sysctls(cluster, name):
    var = cluster["var"]
    return tuning.sysctl_values(
        var(name, "tuning_sysctls", TUNING_DEFAULTS["tuning_sysctls"]), var(name, "tuning_sysctl_overrides", {})
    )


def check_host(cluster, name, host):
    """Every tuning promise, read from the running system."""
    var = cluster["var"]
    # kernel settings, live
    for key, want in expected_sysctls(cluster, name).items():
        live = host.file(tuning.sysctl_path(key)).content_string.split()
        if key == "fs.file-max":  # a floor: the kernel's own value may be higher
            assert int(live[0]) >= int(want), (key, live, want)
        else:
            assert live == want.split(), (key, live, want)
    conf = host.file("/etc/sysctl.d/60-kafka-metal.conf")
    assert conf.user == "root" and conf.mode == 0o644 and "vm.swappiness = 1" in conf.content_string

    # transparent huge pages
    thp = "/sys/kernel/mm/transparent_hugepage"
    assert tuning.thp_mode(host.file(f"{thp}/enabled").content_string) == var(name, "tuning_thp_enabled", "madvise")
    assert tuning.thp_mode(host.file(f"{thp}/defrag").content_string) == var(name, "tuning_thp_defrag", "madvise")

    # the running broker's limits
    pid = kafka_pid(host)
    limits = tuning.parse_limits(host.file(f"/proc/{pid}/limits").content_string)
    nofile, nproc = str(KAFKA_DEFAULTS["kafka_limit_nofile"]), str(KAFKA_DEFAULTS["kafka_limit_nproc"])
    assert int(nofile) >= 100000
    assert limits["Max open files"] == (nofile, nofile)
    assert limits["Max processes"] == (nproc, nproc)

    # data disks: XFS, mounted by UUID with noatime at each log dir, owned by kafka
    disks = var(name, "tuning_data_disks")
    fstab = host.file("/etc/fstab").content_string
    props = dict(
        line.split("=", 1)
        for line in host.check_output("cat /etc/kafka/server.properties").splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert props["log.dirs"].split(",") == [d["path"] for d in disks]
    for d in disks:
        mount = host.check_output(f"findmnt -n -o SOURCE,FSTYPE,OPTIONS --mountpoint {d['path']}")
        source, fstype, options = mount.split()
        assert fstype == "xfs", (d, fstype)
        assert "noatime" in options.split(",") and "nobarrier" not in options, options
        # an encrypted disk's file system is on its opened volume (test_luks checks the volume itself)
        device = f"/dev/mapper/{luks.mapper_name(d)}" if d.get("encrypt") else d["device"]
        assert host.check_output(f"readlink -f {source}") == host.check_output(f"readlink -f {device}")
        uuid = host.check_output(f"blkid -s UUID -o value {device}")
        assert f"UUID={uuid} {d['path']} xfs noatime" in fstab, fstab
        root = host.file(d["path"])
        assert (root.user, root.group, root.mode) == ("kafka", "kafka", 0o750)

    # encrypted disks: unlocked by systemd from crypttab (at boot, or by the role before a reboot)
    for d in disks:
        if d.get("encrypt"):
            mapped = luks.mapper_name(d)
            unit = f"systemd-cryptsetup@{host.check_output(f'systemd-escape {mapped}')}.service"
            assert " crypt" in host.check_output(f"dmsetup status {mapped}")
            assert host.check_output(f"cryptsetup status {mapped} | awk '/ type:/ {{print $2}}'") == "LUKS2"
            BOOT_FIGURES[unit] = host.check_output(
                f"systemctl show {shlex.quote(unit)} -p ActiveState -p InactiveExitTimestampMonotonic "
                "-p ActiveEnterTimestampMonotonic")

    # the unit's hardening, as systemd has it and as the process lives it
    show = dict(
        line.split("=", 1)
        for line in host.check_output(
            "systemctl show kafka.service -p User -p NoNewPrivileges -p ProtectSystem -p ProtectHome "
            "-p PrivateTmp -p ReadWritePaths -p RequiresMountsFor -p TimeoutStopUSec"
        ).splitlines()
    )
    assert show["User"] == "kafka"
    assert (show["NoNewPrivileges"], show["ProtectSystem"], show["ProtectHome"], show["PrivateTmp"]) == (
        "yes",
        "strict",
        "yes",
        "yes",
    ), show
    for d in disks:
        assert d["path"] in show["RequiresMountsFor"].split() and d["path"] in show["ReadWritePaths"].split()
    assert show["TimeoutStopUSec"] == "5min", show
    assert "NoNewPrivs:\t1" in host.file(f"/proc/{pid}/status").content_string
    mounts = {}
    for line in host.file(f"/proc/{pid}/mountinfo").content_string.splitlines():
        fields = line.split()
        mounts[fields[4]] = fields[5].split(",")
    assert "ro" in mounts["/"], "the broker sees / writable"
    assert "ro" in mounts.get("/etc", mounts["/"]) and "ro" in mounts.get("/usr", mounts["/"])
    for d in disks:
        assert "rw" in mounts[d["path"]], (d["path"], mounts.get(d["path"]))
    # a private /tmp of its own, and no view into /root
    assert "/tmp" in mounts

    # heap by rule (Xms = Xmx), G1, GC log rotation, heap dump and exit on OutOfMemoryError
    args = host.file(f"/proc/{pid}/cmdline").content_string.split("\0")
    mem_total = int(host.check_output("awk '/^MemTotal:/ {print $2}' /proc/meminfo")) * 1024
    heap = heap_rules.heap_size(var(name, "broker_heap_size", "auto"), mem_total, "broker")
    assert f"-Xms{heap}" in args and f"-Xmx{heap}" in args, args
    for flag in ("-XX:+UseG1GC", "-XX:+HeapDumpOnOutOfMemoryError", "-XX:+ExitOnOutOfMemoryError"):
        assert flag in args
    assert any(a.startswith("-XX:HeapDumpPath=") for a in args)
    assert any(a.startswith("-Xlog:gc") and "filecount=" in a for a in args)
    return pid


def consume_all(bootstrap, topic, expected, timeout=300):
    """Every record of the topic from the beginning: {partition: [(offset, key, value, headers)]}."""
    from confluent_kafka import Consumer, TopicPartition

    admin_md = smoke._admin(bootstrap).list_topics(topic=topic, timeout=30).topics[topic]
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"tuning-check-{time.time_ns()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    out, count = {}, 0
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in admin_md.partitions])
        deadline = time.monotonic() + timeout
        while count < expected and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            out.setdefault(msg.partition(), []).append((msg.offset(), msg.key(), msg.value()))
            count += 1
    finally:
        consumer.close()
    return out


def wait_topic(bootstrap, topic, timeout=900):
    deadline = time.monotonic() + timeout
    while True:
        try:
            md = smoke._admin(bootstrap).list_topics(topic=topic, timeout=10).topics[topic]
            if md.error is None and md.partitions and all(p.leader >= 0 for p in md.partitions.values()):
                return
        except Exception:  # noqa: BLE001 - the broker is still starting
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{topic} has no leaders {timeout} s after the reboot")
        time.sleep(2)


def test_tuning_holds_on_the_running_host(cluster, node):
    name, host = node
    check_host(cluster, name, host)


def test_tuning_refuses_a_disk_that_holds_a_file_system(cluster, node, inventory):
    name, host = node
    spare = "/dev/disk/by-id/virtio-kmdata4"
    # somebody's data on the third disk
    host.check_output(
        f"mkfs.ext4 -q -F -L precious {spare} && mkdir -p /mnt/precious && mount {spare} /mnt/precious && "
        "echo 'not Kafka data' > /mnt/precious/keep.txt && umount /mnt/precious"
    )
    digest = host.check_output(f"dd if={spare} bs=1M count=64 status=none | sha256sum")
    fstab = host.file("/etc/fstab").content_string
    args = {"device": spare, "path": "/var/lib/kafka/data4", "owner": "kafka", "group": "kafka"}
    proc = subprocess.run(
        [str(BIN / "ansible"), name, "-i", inventory, "-m", "metal.kafka.kafka_data_disk", "-a", json.dumps(args)],
        capture_output=True, text=True, env=_env(), cwd=REPO_ROOT, timeout=600,
    )  # fmt: skip
    print(proc.stdout[-4000:])
    assert proc.returncode != 0
    assert "already holds a file system (ext4)" in proc.stdout and "force_format: true" in proc.stdout
    # untouched: same bytes, same file system, no fstab entry, no mount point
    assert host.check_output(f"dd if={spare} bs=1M count=64 status=none | sha256sum") == digest
    assert host.check_output(f"blkid -s LABEL -o value {spare}") == "precious"
    assert host.file("/etc/fstab").content_string == fstab
    assert not host.file("/var/lib/kafka/data4").exists
    assert host.run("findmnt --source " + spare).rc != 0


def test_tuning_reboot_keeps_tuning_broker_and_data(cluster, node, inventory, bootstrap):
    name, host = node
    result = smoke.run(bootstrap, messages=MESSAGES, partitions=6, replication_factor=1, min_isr=1, topic=TOPIC,
                       timeout=300)
    assert result.ok, result.problems
    # JBOD: the partitions are spread over both data disks
    for d in cluster["var"](name, "tuning_data_disks"):
        assert host.run(f"ls -d {d['path']}/{TOPIC}-*").rc == 0, f"no partition of {TOPIC} on {d['path']}"
    before = consume_all(bootstrap, TOPIC, MESSAGES)
    assert sum(len(v) for v in before.values()) == MESSAGES
    boot_before = host.check_output("cat /proc/sys/kernel/random/boot_id")

    t0 = time.monotonic()
    proc = subprocess.run(
        [str(BIN / "ansible"), name, "-i", inventory, "-m", "ansible.builtin.reboot", "-a",
         "reboot_timeout=900 test_command=true"],
        capture_output=True, text=True, env=_env(), cwd=REPO_ROOT, timeout=1200,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ssh_back = time.monotonic() - t0
    wait_topic(bootstrap, TOPIC)
    ready = time.monotonic() - t0

    # a fresh connection: the old one died with the VM's sshd
    host = testinfra.get_host(f"ansible://{name}", ansible_inventory=inventory)
    assert host.check_output("cat /proc/sys/kernel/random/boot_id") != boot_before, "the VM did not reboot"
    check_host(cluster, name, host)
    after = consume_all(bootstrap, TOPIC, MESSAGES)
    assert after == before, "records differ after the reboot"

    # the encrypted volumes were unlocked at boot by systemd (crypttab), each in its own unit
    unlock = {}
    for unit, text in BOOT_FIGURES.items():
        show = dict(line.split("=", 1) for line in text.splitlines())
        assert show["ActiveState"] == "active", (unit, show)
        unlock[unit] = round((int(show["ActiveEnterTimestampMonotonic"]) - int(show["InactiveExitTimestampMonotonic"]))
                             / 1e6, 2)
    FIGURES.mkdir(parents=True, exist_ok=True)
    (FIGURES / "tuning-reboot.json").write_text(
        json.dumps({"ssh_back_s": round(ssh_back, 1), "broker_serving_s": round(ready, 1), "boot_unlock_s": unlock},
                   indent=2) + "\n"
    )
    print(f"reboot: ssh back after {ssh_back:.1f} s, broker serving the topic after {ready:.1f} s")
