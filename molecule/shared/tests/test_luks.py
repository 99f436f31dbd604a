"""Encrypted data disks (LUKS2) on a virtual machine with its own kernel (scenario `tuning`).

Read from the running system: the volumes' metadata (``cryptsetup luksDump``), the device-mapper
volumes the kernel has, crypttab, the key files and header backups on the host and on the controller.
A key rotation runs from the command line (``kafka-metal luks rotate``) while a producer writes to the
broker on those disks and, on the host, a loop keeps proving that the installed key file opens each
volume; nothing may be lost and no key may appear in the output. The reboot check (test_tuning.py)
then shows the volumes unlocked by themselves with the rotated keys.
"""

import hashlib
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ansible_collections.metal.kafka.plugins.module_utils import luks
from kafka_metal import REPO_ROOT, load

SCENARIO = os.environ.get("MOLECULE_SCENARIO_NAME", "")
FIGURES = Path(os.environ.get("KAFKA_METAL_FIGURES_DIR", "/tmp/kafka-metal-figures"))
BIN = Path(sys.executable).parent
SPARE = "/dev/disk/by-id/virtio-kmdata4"

pytestmark = pytest.mark.skipif(SCENARIO != "tuning", reason="disk encryption checks run in the `tuning` scenario (VM)")


def _env():
    env = dict(os.environ)
    env.pop("ANSIBLE_VERBOSITY", None)
    env["ANSIBLE_CONFIG"] = str(REPO_ROOT / "ansible.cfg")
    return env


@pytest.fixture(scope="module")
def node(cluster):
    name = cluster["brokers"][0]
    return name, cluster["testinfra"][name]


@pytest.fixture(scope="module")
def encrypted(cluster, node):
    disks = [d for d in cluster["var"](node[0], "tuning_data_disks") if d.get("encrypt")]
    assert len(disks) == 2, disks
    return [{**d, "name": luks.mapper_name(d)} for d in disks]


@pytest.fixture(scope="module")
def key_store(cluster, node):
    return Path(os.path.expanduser(cluster["var"](node[0], "tuning_luks_key_store"))) / node[0]


def secrets_of(cluster, name, key_store, encrypted):
    """Every secret the run knows: the volume keys (current and pending) and the passphrase."""
    out = [cluster["var"](name, "tuning_luks_passphrase")]
    for d in encrypted:
        for suffix in ("key", "key.new"):
            path = key_store / f"{d['name']}.{suffix}"
            if path.exists():
                out.append(path.read_text().strip())
    return [s for s in out if s]


def dump(host, device):
    return json.loads(host.check_output(f"cryptsetup luksDump --dump-json-metadata {device}"))


def ansible(inventory, name, module, args, timeout=900):
    return subprocess.run(
        [str(BIN / "ansible"), name, "-i", inventory, "-m", module, "-a", json.dumps(args)],
        capture_output=True, text=True, env=_env(), cwd=REPO_ROOT, timeout=timeout,
    )  # fmt: skip


def test_luks_volumes_have_the_configured_parameters(cluster, node, encrypted, key_store, inventory):
    name, host = node
    want = luks.luks_params(cluster["var"](name, "tuning_luks"))
    crypttab = host.file("/etc/crypttab").content_string
    key_dir = host.file(luks.KEY_DIR)
    assert (key_dir.user, key_dir.mode) == ("root", 0o700)
    for d in encrypted:
        meta = dump(host, d["device"])
        parsed = luks.parse_dump(json.dumps(meta))
        assert (parsed["cipher"], parsed["key_size"], parsed["sector_size"]) == (
            want["cipher"],
            want["key_size"],
            want["sector_size"],
        ), parsed
        # two slots: the key file and the passphrase, both with the asked key derivation
        assert len(parsed["keyslots"]) == 2, parsed["keyslots"]
        for slot in parsed["keyslots"].values():
            assert (slot["pbkdf"], slot["memory"], slot["parallel"], slot["iterations"]) == (
                want["pbkdf"],
                want["pbkdf_memory"],
                want["pbkdf_parallel"],
                want["pbkdf_iterations"],
            ), slot
        assert host.check_output(f"blkid -p -s LABEL -o value {d['device']}") == d["label"]
        # opened by the kernel under its name, with the file system on it mounted at the log dir
        assert " crypt" in host.check_output(f"dmsetup status {d['name']}")
        assert host.check_output(f"findmnt -n -o SOURCE --mountpoint {d['path']}") == f"/dev/mapper/{d['name']}"
        # unlocked at boot: crypttab by UUID with the root-only key file
        uuid = host.check_output(f"cryptsetup luksUUID {d['device']}")
        key_file = luks.key_path(d["name"])
        assert f"{d['name']} UUID={uuid} {key_file} luks,nofail" in crypttab.splitlines()
        kf = host.file(key_file)
        assert (kf.user, kf.group, kf.mode) == ("root", "root", 0o400)
        # the host's key file is the controller's key (0600 in a 0700 store)
        store_key = key_store / f"{d['name']}.key"
        assert oct(store_key.stat().st_mode & 0o777) == "0o600" and oct(key_store.stat().st_mode & 0o777) == "0o700"
        assert (
            hashlib.sha256(store_key.read_text().strip().encode()).hexdigest()
            == host.check_output(f"sha256sum {key_file}").split()[0]
        )
        # the header backup: on the host, and fetched to the controller, equal to the live header
        backup = luks.key_path(d["name"], "header")
        host_digest = host.check_output(f"sha256sum {backup}").split()[0]
        fresh = host.check_output(
            f"rm -f /root/h.tmp && cryptsetup luksHeaderBackup {d['device']} --header-backup-file /root/h.tmp "
            "&& sha256sum /root/h.tmp && rm -f /root/h.tmp"
        ).split()[0]
        assert host_digest == fresh
        assert hashlib.sha256((key_store / f"{d['name']}.header").read_bytes()).hexdigest() == fresh

    # the command line's view agrees, and says every volume is healthy
    proc = subprocess.run(
        [str(BIN / "kafka-metal"), "luks", "status", "-i", inventory, "--json"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    volumes = {v["name"]: v for v in json.loads(proc.stdout)[name]["volumes"]}
    for d in encrypted:
        v = volumes[d["name"]]
        assert v["open"] and v["key_opens"] and v["header_backup_current"] and v["problems"] == [], v
        assert v["mounted_at"] == [d["path"]]


PROVER = "kafka-metal-luks-prove"


def start_prover(host, encrypted):
    """On the host, until told to stop: prove over and over that the installed key file opens each
    volume, one line per round (``ok`` or the error)."""
    script = " && ".join(
        f"cryptsetup open --test-passphrase --key-file {luks.key_path(d['name'])} {d['device']}" for d in encrypted
    )
    loop = (
        f"rm -f /root/prove.stop; while [ ! -e /root/prove.stop ]; do if {script} 2>/root/prove.err; "
        "then echo ok; else echo FAIL $(cat /root/prove.err); fi; sleep 3; done > /root/prove.log"
    )
    host.check_output(
        f"systemctl reset-failed {PROVER} 2>/dev/null; systemd-run --unit={PROVER} /bin/sh -c " + shlex.quote(loop)
    )


def stop_prover(host):
    host.check_output("touch /root/prove.stop")
    deadline = time.monotonic() + 300
    while host.run(f"systemctl is-active --quiet {PROVER}").rc == 0:
        assert time.monotonic() < deadline, "the key-file prover did not stop"
        time.sleep(2)
    return host.file("/root/prove.log").content_string.splitlines()


def test_luks_key_rotation_under_a_running_broker_loses_nothing(
    cluster, node, encrypted, key_store, inventory, bootstrap
):
    name, host = node
    before = {d["name"]: (key_store / f"{d['name']}.key").read_text().strip() for d in encrypted}
    slots_before = {d["name"]: sorted(dump(host, d["device"])["keyslots"]) for d in encrypted}
    secrets = secrets_of(cluster, name, key_store, encrypted)

    # a steady producer, light enough that the rotation is not starved on the emulated CPU (at 50/s,
    # with the prover resting 1 s, the broker and the prover took the VM whole and the rotation took
    # 412-576 s instead of ~65 s idle)
    work = load.Load(bootstrap, topic="luks-rotation", rate=20, partitions=6, replication_factor=1, min_isr=1).start()
    start_prover(host, encrypted)
    time.sleep(10)  # records are flowing and the prover is proving before the keys change
    t0 = time.monotonic()
    proc = subprocess.run(
        [str(BIN / "kafka-metal"), "luks", "rotate", "-i", inventory],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=1800,
    )
    rotate_s = time.monotonic() - t0
    time.sleep(10)
    rounds = stop_prover(host)
    report = work.stop(drain_timeout=300)
    output = proc.stdout + proc.stderr
    print(output[-6000:])
    print(report.summary())
    assert proc.returncode == 0, output[-4000:]

    # nothing lost, nothing duplicated, while the keys changed under the broker
    assert report.acked > 200 and report.ok, "; ".join(report.problems())
    # the installed key file opened every volume at every moment of the rotation
    failures = [r for r in rounds if r != "ok"]
    assert not failures, failures[:3]
    assert len(rounds) >= 5, f"only {len(rounds)} rounds of proof ran during the rotation"
    # new keys: different, installed, in the controller's store; the old slot gone (same slot count)
    after = {d["name"]: (key_store / f"{d['name']}.key").read_text().strip() for d in encrypted}
    for d in encrypted:
        assert after[d["name"]] != before[d["name"]]
        assert not (key_store / f"{d['name']}.key.new").exists()
        assert (
            hashlib.sha256(after[d["name"]].encode()).hexdigest()
            == host.check_output(f"sha256sum {luks.key_path(d['name'])}").split()[0]
        )
        assert len(dump(host, d["device"])["keyslots"]) == len(slots_before[d["name"]])
        assert not host.file(luks.key_path(d["name"], "key.new")).exists
        assert not host.file(luks.key_path(d["name"], "key.old")).exists
    # no key, old or new, and not the passphrase, in what the operator saw
    for secret in secrets + list(after.values()):
        assert secret not in output, "a secret appears in the rotation's output"

    # a second rotation of one volume from the command line, in check mode, changes nothing
    proc = subprocess.run(
        [str(BIN / "kafka-metal"), "luks", "rotate", "-i", inventory, "--check", "--volume", encrypted[0]["name"]],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (key_store / f"{encrypted[0]['name']}.key").read_text().strip() == after[encrypted[0]["name"]]

    FIGURES.mkdir(parents=True, exist_ok=True)
    (FIGURES / "luks-rotation.json").write_text(
        json.dumps(
            {
                "rotate_two_volumes_s": round(rotate_s, 1),
                "records_acked": report.acked,
                "key_file_checks_during_rotation": len(rounds),
            },
            indent=2,
        )
        + "\n"
    )


def test_luks_refuses_disks_that_hold_data(cluster, node, inventory, key_store):
    name, host = node
    # a file system with somebody's file
    host.check_output(
        f"wipefs -a -q {SPARE} && mkfs.ext4 -q -F -L precious {SPARE} && mkdir -p /mnt/precious && "
        f"mount {SPARE} /mnt/precious && echo 'not Kafka data' > /mnt/precious/keep.txt && umount /mnt/precious"
    )
    cases = [("ext4", "already holds a file system or signature (ext4)")]
    # a LUKS volume made with another key
    cases.append(("foreign LUKS", "a LUKS header that the volume's key does not open"))
    crypttab = host.file("/etc/crypttab").content_string
    for label, message in cases:
        if label == "foreign LUKS":
            host.check_output(
                f"head -c 64 /dev/urandom > /root/other.key && wipefs -a -q {SPARE} && cryptsetup luksFormat "
                f"--batch-mode --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file /root/other.key "
                f"{SPARE} && rm -f /root/other.key"
            )
        digest = host.check_output(f"dd if={SPARE} bs=1M count=64 status=none | sha256sum")
        proc = ansible(
            inventory,
            name,
            "metal.kafka.luks_volume",
            {"device": SPARE, "name": "kafka-spare", "key_store": str(key_store.parent), "iter_time": 500},
        )
        print(proc.stdout[-3000:])
        assert proc.returncode != 0, label
        assert message in proc.stdout and "force_format: true" in proc.stdout and "nothing was changed" in proc.stdout
        # untouched: same bytes, no crypttab entry, no mapping, no key file on the host
        assert host.check_output(f"dd if={SPARE} bs=1M count=64 status=none | sha256sum") == digest, label
        assert host.file("/etc/crypttab").content_string == crypttab
        assert host.run("dmsetup info kafka-spare").rc != 0
        assert not host.file(luks.key_path("kafka-spare")).exists
