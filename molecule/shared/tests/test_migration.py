"""The migration of a ZooKeeper-mode cluster to KRaft (scenario `zookeeper`'s last stage, Kafka 3.9.1 with TLS,
SCRAM and ACLs; the three lab hosts of the group `kraft_controllers` become its KRaft controllers).

Under `kafka_metal.load` (acks=all, idempotent; every acknowledged record must be consumed) and a probe that
creates and deletes a topic every second, `kafka-metal migrate kraft` takes the cluster to dual write, rolls it
back to ZooKeeper mode, migrates it again (its run killed in the middle of the brokers' roll and run again),
finalizes it, and the rolling upgrade takes it to 4.1.1. Topics, their configs and partition assignments, ACLs,
SCRAM users, client quotas and a group's committed offsets are compared with their state before the first step
after each of these; a user created in ZooKeeper mode still reads its topic with its own password and ACLs at
the end. site.yml agrees with the cluster in the middle (no change with the phase the tool printed, a refusal
with an older one) and after the finalize (no change with a KRaft inventory).
Figures go to $KAFKA_METAL_FIGURES_DIR (default /tmp/kafka-metal-figures), migration-*.json.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import testinfra
import yaml

# imported before the plugin loader takes over the ansible_collections namespace (cluster fixture)
from ansible_collections.metal.kafka.plugins.module_utils import backup_kafka, groups_kafka, wire, zookeeper
from kafka_metal import REPO_ROOT, load, smoke

SCENARIO = os.environ.get("MOLECULE_SCENARIO_NAME", "")
BIN = Path(sys.executable).parent
FIGURES = Path(os.environ.get("KAFKA_METAL_FIGURES_DIR", "/tmp/kafka-metal-figures"))
CONTROLLER_GROUP = "kraft_controllers"  # the scenario's spare lab hosts
TOPICS = {"mig-orders": (6, {"retention.ms": "7200000", "max.message.bytes": "2000000"}),
          "mig-ledger": (3, {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"})}
GROUP = "mig-fingerprint"
USER, USER_PASSWORD = "mig-alice", "mig-alice-" + uuid.uuid4().hex
QUOTAS = [{"entity": {"user": USER}, "values": {"producer_byte_rate": 1048576.0}},
          {"entity": {"client-id": "mig-reports"}, "values": {"consumer_byte_rate": 524288.0}}]
STATE = {}  # carried from one check to the next (the checks run in order, each after the one before)


@pytest.fixture(scope="module", autouse=True)
def migration_scenario():
    if SCENARIO != "zookeeper":
        pytest.skip("the migration to KRaft runs in the `zookeeper` scenario")


@pytest.fixture(scope="module")
def conf(bootstrap, client_conf):
    return {"bootstrap.servers": bootstrap, **client_conf}


@pytest.fixture(scope="module")
def controllers_inventory(tmp_path_factory):
    """The operator's addition before the first step: the controllers' hosts in kafka_controllers."""
    path = tmp_path_factory.mktemp("migration") / "controllers.yml"
    path.write_text(yaml.safe_dump({"kafka_controllers": {"children": {CONTROLLER_GROUP: {}}}}))
    return str(path)


def _env():
    env = dict(os.environ)
    env.pop("ANSIBLE_VERBOSITY", None)
    env["ANSIBLE_CONFIG"] = str(REPO_ROOT / "ansible.cfg")
    return env


def migrate(inventory, controllers_inventory, *args, timeout=1800):
    proc = subprocess.run([str(BIN / "kafka-metal"), "migrate", "kraft", "-i", inventory, "-i", controllers_inventory,
                           *args], capture_output=True, text=True, env=_env(), timeout=timeout)
    print(proc.stdout[-8000:])
    print(proc.stderr[-3000:], file=sys.stderr)
    return proc


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def plain(proc):
    """The playbook's output without colours (Molecule asks Ansible for them)."""
    return ANSI.sub("", proc.stdout)


def said(proc):
    """The playbook's output with Ansible's line wrapping and YAML quoting undone (for substring checks)."""
    return " ".join(plain(proc).replace("''", "'").split())


def phase_of(proc):
    """(phase, settled) from the tool's report of where the migration stands."""
    m = re.search(r"'phase: (\w+)( \(half done\))?'", plain(proc))
    assert m, proc.stdout[-3000:]
    return m.group(1), not m.group(2)


def site(*inventories, extra=()):
    argv = [str(BIN / "ansible-playbook"), str(REPO_ROOT / "site.yml")]
    for inv in inventories:
        argv += ["-i", inv]
    proc = subprocess.run(argv + list(extra), capture_output=True, text=True, env=_env(), cwd=REPO_ROOT,
                          timeout=1800)
    print(proc.stdout[-6000:])
    print(proc.stderr[-3000:], file=sys.stderr)
    return proc


def changed_counts(proc):
    counts = {h: int(n) for h, n in re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", plain(proc), re.M)}
    assert counts, "no PLAY RECAP in the output"
    return counts


@pytest.fixture(scope="module")
def controllers(inventory):
    """The controllers' hosts, for testinfra (they are in none of the cluster fixture's groups)."""
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader

    names = InventoryManager(loader=DataLoader(), sources=[inventory]).get_groups_dict()[CONTROLLER_GROUP]
    return {h: testinfra.get_host(f"ansible://{h}", ansible_inventory=inventory) for h in sorted(names)}


def main_pids(hosts):
    """MainPID of kafka.service on each of ``hosts`` ({name: testinfra host}); a new PID is a restart."""
    return {h: t.check_output("systemctl show -p MainPID --value kafka").strip() for h, t in hosts.items()}


def brokers_and(cluster, controllers):
    return {**{h: cluster["testinfra"][h] for h in cluster["brokers"]}, **controllers}


def fingerprint(conf):
    """What the migration must keep: the test's topics with their configs, ids and partition assignments, every
    ACL, SCRAM user and client quota, and the test group's committed offsets (read the way the backup reads them)."""
    backend = backup_kafka.open_admin(conf)
    try:
        details = backup_kafka.topic_details(backend, sorted(TOPICS))
        md = backend._admin.list_topics(timeout=30)
        for name in TOPICS:
            parts = sorted(md.topics[name].partitions.items())
            details[name]["assignment"] = {p: sorted(pm.replicas) for p, pm in parts}
        acls = sorted(json.dumps(a, sort_keys=True) for a in backend.describe_acls({}))
        users = backend.scram_users()
    finally:
        backend.close()
    offsets = groups_kafka.Groups(conf).committed([GROUP])
    return {"topics": details, "acls": acls, "users": users, "quotas": backup_kafka.read_quotas(conf),
            "offsets": {f"{t}-{p}": o for (t, p), o in sorted(offsets[GROUP].items())}}


def record(name, data):
    FIGURES.mkdir(parents=True, exist_ok=True)
    (FIGURES / f"migration-{name}.json").write_text(json.dumps(data, indent=2, default=str) + "\n")


def alice_reads(bootstrap, cluster):
    """mig-alice, a SCRAM user made in ZooKeeper mode, reads mig-orders with her own password and ACLs."""
    from confluent_kafka import Consumer

    sec = cluster["security"]
    c = Consumer({"bootstrap.servers": bootstrap, "security.protocol": sec["protocol"],
                  "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": USER, "sasl.password": USER_PASSWORD,
                  "ssl.ca.location": sec["ca_file"], "group.id": f"{USER}-{uuid.uuid4().hex[:6]}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        c.subscribe(["mig-orders"])
        got, deadline = 0, time.monotonic() + 60
        while got < 100 and time.monotonic() < deadline:
            m = c.poll(1.0)
            if m is not None:
                assert m.error() is None, m.error()
                got += 1
        return got
    finally:
        c.close()


def test_setup_the_metadata_the_migration_must_keep(cluster, inventory, bootstrap, client_conf, conf):
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka import admin as ck_admin

    # the migration starts from a cluster that matches its inventory (earlier stages converged with extra
    # settings: a ZooKeeper setting, more certificate names); later converges must then change nothing
    converge = site(inventory)
    assert converge.returncode == 0
    a = smoke._admin(bootstrap, client_conf)
    new = [ck_admin.NewTopic(name, parts, 3, config=configs) for name, (parts, configs) in TOPICS.items()]
    for f in a.create_topics(new, request_timeout=30).values():
        f.result(60)
    info = ck_admin.ScramCredentialInfo(ck_admin.ScramMechanism.SCRAM_SHA_512, 8192)
    a.alter_user_scram_credentials([ck_admin.UserScramCredentialUpsertion(USER, info, USER_PASSWORD.encode())],
                                   request_timeout=30)[USER].result(30)
    bindings = [ck_admin.AclBinding(ck_admin.ResourceType.TOPIC, "mig-orders", ck_admin.ResourcePatternType.LITERAL,
                                    f"User:{USER}", "*", op, ck_admin.AclPermissionType.ALLOW)
                for op in (ck_admin.AclOperation.READ, ck_admin.AclOperation.DESCRIBE)]
    bindings.append(ck_admin.AclBinding(ck_admin.ResourceType.GROUP, f"{USER}-", ck_admin.ResourcePatternType.PREFIXED,
                                        f"User:{USER}", "*", ck_admin.AclOperation.READ,
                                        ck_admin.AclPermissionType.ALLOW))
    for f in a.create_acls(bindings, request_timeout=30).values():
        f.result(30)
    wire.alter_client_quotas_any(bootstrap, QUOTAS, security=wire.security_from_client_config(conf))
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", **client_conf})
    for i in range(300):
        p.produce("mig-orders", key=str(i).encode(), value=b"order-%d" % i)
    assert p.flush(60) == 0
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, **client_conf})
    c.assign([TopicPartition("mig-orders", p, 0) for p in range(6)])
    got, deadline = 0, time.monotonic() + 60
    while got < 150 and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is not None and m.error() is None:
            got += 1
    c.commit(asynchronous=False)
    c.close()
    STATE["before"] = fingerprint(conf)
    assert STATE["before"]["offsets"] and USER in STATE["before"]["users"], STATE["before"]
    assert len(STATE["before"]["acls"]) >= 3 and len(STATE["before"]["quotas"]) >= 2
    assert alice_reads(bootstrap, cluster) == 100


def test_to_dual_write_then_back_to_zookeeper_mode(cluster, inventory, controllers_inventory, controllers, bootstrap,
                                                   client_conf, conf, tmp_path, under_load):
    status = migrate(inventory, controllers_inventory, "--status")
    assert status.returncode == 0 and phase_of(status) == ("none", True)
    work, probe = under_load.start("migration-rollback")
    steps = {}
    for expected in ("controllers", "dual_write"):
        t = time.monotonic()
        proc = migrate(inventory, controllers_inventory)
        steps[expected] = round(time.monotonic() - t, 1)
        assert proc.returncode == 0, proc.stdout[-3000:]
        assert f"The cluster is now in phase {expected}" in said(proc)
    now = migrate(inventory, controllers_inventory, "--status")
    assert phase_of(now) == ("dual_write", True) and "metadata copied to KRaft: True" in said(now)
    assert fingerprint(conf) == STATE["before"]

    # site.yml in the middle: with the phase the tool printed it changes nothing; with the old one it refuses
    phase_file = tmp_path / "phase.yml"
    phase_file.write_text(yaml.safe_dump({"all": {"vars": {"kafka_zookeeper_migration": "dual_write"}}}))
    pids = main_pids(brokers_and(cluster, controllers))
    agreed = site(inventory, controllers_inventory, str(phase_file))
    assert agreed.returncode == 0
    assert set(changed_counts(agreed).values()) == {0}, changed_counts(agreed)
    phase_file.write_text(yaml.safe_dump({"all": {"vars": {"kafka_zookeeper_migration": "controllers"}}}))
    behind = site(inventory, controllers_inventory, str(phase_file))
    assert behind.returncode != 0
    assert "the cluster is in migration phase 'dual_write' but the inventory says 'controllers'" in said(behind)
    assert "would undo part of the migration" in said(behind)
    assert "kafka_zookeeper_migration: dual_write" in said(behind)
    # an inventory that never heard of the migration is refused by the validation, before any host is read
    unaware = site(inventory, controllers_inventory)
    assert unaware.returncode != 0 and "start the migration with kafka-metal migrate kraft" in said(unaware)
    assert main_pids(brokers_and(cluster, controllers)) == pids

    t = time.monotonic()
    back = migrate(inventory, controllers_inventory, "--rollback")
    steps["rollback"] = round(time.monotonic() - t, 1)
    assert back.returncode == 0 and "The cluster is now in phase none" in said(back)
    assert phase_of(migrate(inventory, controllers_inventory, "--status")) == ("none", True)
    report, figures = under_load.stop(work, probe)
    assert fingerprint(conf) == STATE["before"]
    # a working ZooKeeper-mode cluster: a broker is ZooKeeper's controller again, no KRaft controller runs
    first = cluster["address"][cluster["brokers"][0]]
    sec = wire.Security(cluster["security"]["protocol"], cluster["security"]["ca_file"], first,
                        cluster["security"]["mechanism"], cluster["security"]["user"], cluster["security"]["password"])
    assert wire.metadata(first, 9092, security=sec)["controller_id"] in cluster["node_id"].values()
    zk = cluster["address"][cluster["zookeepers"][0]]
    with zookeeper.ZnodeClient(zk, 2181) as z:
        assert z.get("/kafka/migration") is None
    for h, t in controllers.items():
        assert not t.service("kafka").is_running, h
    result = smoke.run(bootstrap, messages=500, extra=client_conf)
    assert result.ok, result.problems
    record("rollback", {"steps_s": steps, "load": report.as_dict(), "probe": figures})


def test_second_migration_killed_in_the_brokers_roll_resumes_and_finalizes(cluster, inventory, controllers_inventory,
                                                                           controllers, bootstrap, client_conf, conf,
                                                                           under_load):
    brokers = {h: cluster["testinfra"][h] for h in cluster["brokers"]}
    work, probe = under_load.start("migration-second")
    assert migrate(inventory, controllers_inventory).returncode == 0  # controllers, from a fresh metadata copy
    before = main_pids(brokers)
    proc = subprocess.Popen([str(BIN / "kafka-metal"), "migrate", "kraft", "-i", inventory, "-i",
                             controllers_inventory], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=_env(), start_new_session=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        now = main_pids(brokers)
        if any(now[h] != before[h] and now[h] != "0" for h in now):
            break  # the first broker runs in migration mode: stop everything here
        time.sleep(1)
    assert proc.poll() is None, "the step ended before a broker was restarted"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    half = migrate(inventory, controllers_inventory, "--status")
    assert phase_of(half) == ("dual_write", False), half.stdout[-2000:]
    assert migrate(inventory, controllers_inventory).returncode == 0
    assert phase_of(migrate(inventory, controllers_inventory, "--status")) == ("dual_write", True)

    assert migrate(inventory, controllers_inventory).returncode == 0  # brokers to KRaft
    refused = migrate(inventory, controllers_inventory)
    assert refused.returncode != 0 and "run again with --finalize" in said(refused)
    assert phase_of(migrate(inventory, controllers_inventory, "--status")) == ("kraft_brokers", True)
    final = migrate(inventory, controllers_inventory, "--finalize")
    assert final.returncode == 0 and "The cluster is now in phase finalized" in said(final)
    assert "kafka_metadata_mode: kraft" in said(final)
    report, figures = under_load.stop(work, probe)
    for h in cluster["zookeepers"]:
        assert not cluster["testinfra"][h].service("zookeeper").is_running
        assert cluster["testinfra"][h].file("/var/lib/zookeeper/data/version-2").is_directory  # left on disk
    config_dir = cluster["config_dir"][cluster["brokers"][0]]
    for h, t in controllers.items():
        assert "zookeeper" not in t.file(f"{config_dir}/server.properties").content_string, h
    assert fingerprint(conf) == STATE["before"]
    assert alice_reads(bootstrap, cluster) == 100
    record("second", {"load": report.as_dict(), "probe": figures})


def kraft_inventory(inventory, brokers, controllers, tmp_path):
    """The inventory as the finalize printed it: kafka_metadata_mode kraft, the controllers in kafka_controllers,
    the zookeeper group empty (the same hosts and connection settings, the scenario's group_vars otherwise)."""
    src = Path(inventory)
    base, src = (src, src / "ansible_inventory.yml") if src.is_dir() else (src.parent, src)
    hosts = yaml.safe_load(src.read_text())["all"]["hosts"]
    out = tmp_path / "kraft"
    shutil.copytree(base / "group_vars", out / "group_vars")
    for f in (out / "group_vars").rglob("*.yml"):
        f.write_text(f.read_text().replace("kafka_metadata_mode: zookeeper", "kafka_metadata_mode: kraft"))
    groups = {"kafka_controllers": sorted(map(str, controllers)), "kafka_brokers": sorted(map(str, brokers))}
    (out / "hosts.yml").write_text(yaml.safe_dump({"all": {
        "hosts": {h: hosts[h] for names in groups.values() for h in names},
        "children": {g: {"hosts": {h: None for h in names}} for g, names in groups.items()}}}))
    return str(out / "hosts.yml")


def test_kraft_inventory_agrees_and_the_cluster_upgrades_to_4(cluster, inventory, controllers, bootstrap, client_conf,
                                                              tmp_path):
    kraft = kraft_inventory(inventory, cluster["brokers"], controllers, tmp_path)
    everyone = brokers_and(cluster, controllers)
    pids = main_pids(everyone)
    converge = site(kraft)
    assert converge.returncode == 0
    assert set(changed_counts(converge).values()) == {0}, changed_counts(converge)
    assert main_pids(everyone) == pids
    work = load.Load(bootstrap, topic="migration-upgrade", extra=client_conf, rate=200, partitions=6,
                     replication_factor=3, min_isr=2).start()
    time.sleep(5)
    up = subprocess.run([str(BIN / "kafka-metal"), "upgrade", "--to", "4.1.1", "-i", kraft], capture_output=True,
                        text=True, env=_env(), timeout=1800)
    print(up.stdout[-4000:], up.stderr[-2000:])
    report = work.stop(drain_timeout=180)
    assert up.returncode == 0 and "every node runs 4.1.1" in up.stdout
    assert report.acked > 1000 and report.ok, "; ".join(report.problems())
    fin = subprocess.run([str(BIN / "kafka-metal"), "upgrade", "--to", "4.1.1", "--finalize", "-i", kraft],
                         capture_output=True, text=True, env=_env(), timeout=900)
    print(fin.stdout[-3000:], fin.stderr[-2000:])
    assert fin.returncode == 0
    for h, t in everyone.items():
        assert t.file("/opt/kafka/current").linked_to.endswith("kafka_2.13-4.1.1"), h
    assert alice_reads(bootstrap, cluster) == 100
    record("upgrade", {"load": report.as_dict()})
