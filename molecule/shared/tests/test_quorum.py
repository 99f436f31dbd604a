"""The KRaft controller quorum's membership on Kafka 4.1 (scenario `zookeeper`, after its migration stage: three
dedicated controllers, node7-9, with a static quorum, and three brokers, all on 4.1.1 with TLS, SCRAM and ACLs).

Under `kafka_metal.load` (acks=all, idempotent; every acknowledged record must be consumed) and a probe that creates
and deletes a topic every second:
1. the static quorum refuses membership changes and a converge to a dynamic inventory; `kafka-metal quorum dynamic`
   raises kraft.version and rolls the nodes to controller.quorum.bootstrap.servers: 0 lost, the longest gap between
   successful probes at most 10 s; site.yml with the dynamic inventory then changes nothing, and with the static
   one it refuses;
2. a removal that would leave the remaining voters without a caught-up majority (one controller stopped) is refused
   and changes nothing;
3. the active controller is removed (and stopped) and added back, with exactly one leader change;
4. a controller whose metadata directory was wiped is replaced (new directory id, stale voter removed, new voter
   added) and every voter has caught up within 120 s.
Figures go to $KAFKA_METAL_FIGURES_DIR (default /tmp/kafka-metal-figures), quorum-*.json.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import testinfra
import yaml
from kafka_metal import REPO_ROOT

SCENARIO = os.environ.get("MOLECULE_SCENARIO_NAME", "")
BIN = Path(sys.executable).parent
FIGURES = Path(os.environ.get("KAFKA_METAL_FIGURES_DIR", "/tmp/kafka-metal-figures"))
CONTROLLER_GROUP = "kraft_controllers"  # the scenario's controllers since its migration stage
VERSION = "4.1.1"


@pytest.fixture(scope="module", autouse=True)
def quorum_scenario():
    if SCENARIO != "zookeeper":
        pytest.skip("controller membership runs in the `zookeeper` scenario, on the cluster its migration left")


def _env():
    env = dict(os.environ)
    env.pop("ANSIBLE_VERBOSITY", None)
    env["ANSIBLE_CONFIG"] = str(REPO_ROOT / "ansible.cfg")
    return env


def run(argv, timeout=1800):
    proc = subprocess.run(argv, capture_output=True, text=True, env=_env(), cwd=REPO_ROOT, timeout=timeout)
    print(proc.stdout[-6000:])
    print(proc.stderr[-3000:], file=sys.stderr)
    return proc


def quorum_cmd(inv, *args, timeout=900):
    return run([str(BIN / "kafka-metal"), "quorum", *args, "-i", inv], timeout=timeout)


def site(inv, *extra):
    return run([str(BIN / "ansible-playbook"), str(REPO_ROOT / "site.yml"), "-i", inv, *extra])


def status(inv):
    proc = quorum_cmd(inv, "status", "--json", timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def voters(st):
    return sorted((m["node_id"], m["directory_id"]) for m in st["members"] if m["voter"])


def record(name, data):
    FIGURES.mkdir(parents=True, exist_ok=True)
    (FIGURES / f"quorum-{name}.json").write_text(json.dumps(data, indent=2, default=str) + "\n")


@pytest.fixture(scope="module")
def controllers(inventory):
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader

    names = InventoryManager(loader=DataLoader(), sources=[inventory]).get_groups_dict()[CONTROLLER_GROUP]
    return {h: testinfra.get_host(f"ansible://{h}", ansible_inventory=inventory) for h in sorted(names)}


def make_inventory(inventory, brokers, controllers, out, quorum):
    """The cluster as its operator's inventory now says: KRaft, 4.1.1, the controllers in kafka_controllers."""
    src = Path(inventory)
    base, src = (src, src / "ansible_inventory.yml") if src.is_dir() else (src.parent, src)
    hosts = yaml.safe_load(src.read_text())["all"]["hosts"]
    shutil.copytree(base / "group_vars", out / "group_vars")
    for f in (out / "group_vars").rglob("*.yml"):
        text = f.read_text().replace("kafka_metadata_mode: zookeeper", "kafka_metadata_mode: kraft")
        f.write_text(text.replace('kafka_version: "3.9.1"', f'kafka_version: "{VERSION}"'))
    (out / "group_vars" / "all" / "quorum.yml").write_text(f"kafka_controller_quorum: {quorum}\n")
    groups = {"kafka_controllers": sorted(map(str, controllers)), "kafka_brokers": sorted(map(str, brokers))}
    (out / "hosts.yml").write_text(yaml.safe_dump({"all": {
        "hosts": {h: hosts[h] for names in groups.values() for h in names},
        "children": {g: {"hosts": {h: None for h in names}} for g, names in groups.items()}}}))
    return str(out / "hosts.yml")


@pytest.fixture(scope="module")
def inventories(inventory, cluster, controllers, tmp_path_factory):
    base = tmp_path_factory.mktemp("quorum")
    return {q: make_inventory(inventory, cluster["brokers"], controllers, base / q, q) for q in ("static", "dynamic")}


def main_pids(hosts):
    return {h: t.check_output("systemctl show -p MainPID --value kafka").strip() for h, t in hosts.items()}


def changed_counts(proc):
    import re

    plain = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout)
    counts = {h: int(n) for h, n in re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", plain, re.M)}
    assert counts, "no PLAY RECAP in the output"
    return counts


def wait_all_caught_up(inv, timeout=120):
    deadline = time.monotonic() + timeout
    while True:
        st = status(inv)
        if all(m["caught_up"] for m in st["members"] if m["voter"]):
            return st
        assert time.monotonic() < deadline, st
        time.sleep(3)


def test_static_quorum_moves_to_dynamic_under_load(cluster, controllers, inventories, under_load):
    static, dynamic = inventories["static"], inventories["dynamic"]
    before = status(static)
    assert before["dynamic"] is False and before["kraft_version"] == 0, before
    assert len(voters(before)) == 3
    # a static quorum's membership is fixed: refused, with the way forward
    refused = quorum_cmd(static, "add", sorted(controllers)[0])
    assert refused.returncode != 0 and "kafka-metal quorum dynamic" in refused.stderr
    everyone = {**{h: cluster["testinfra"][h] for h in cluster["brokers"]}, **controllers}
    pids = main_pids(everyone)
    # a converge cannot make the quorum dynamic on its own (kraft.version must move first)
    converge = site(dynamic)
    assert converge.returncode != 0 and "kafka-metal quorum dynamic" in converge.stdout
    assert main_pids(everyone) == pids
    # --check: Kafka validates the change, nothing moves
    checked = quorum_cmd(static, "dynamic", "--check")
    assert checked.returncode == 0 and "Kafka accepts raising kraft.version to 1" in checked.stdout
    assert status(static)["kraft_version"] == 0 and main_pids(everyone) == pids
    work, probe = under_load.start("quorum-dynamic")
    started = time.monotonic()
    moved = quorum_cmd(static, "dynamic", timeout=1800)
    took = time.monotonic() - started
    report, figures = under_load.stop(work, probe)
    assert moved.returncode == 0, moved.stderr
    after = wait_all_caught_up(dynamic)
    assert after["dynamic"] is True and after["kraft_version"] >= 1
    assert [n for n, _ in voters(after)] == [n for n, _ in voters(before)]
    assert all(d and d != "AAAAAAAAAAAAAAAAAAAAAA" for _, d in voters(after))
    for h, t in everyone.items():
        conf = t.file("/etc/kafka-cluster/server.properties" if t.file("/etc/kafka-cluster").exists
                      else "/etc/kafka/server.properties").content_string
        assert "controller.quorum.voters" not in conf and "controller.quorum.bootstrap.servers=" in conf, h
    record("dynamic", {"seconds": round(took, 1), "load": report.as_dict(), "probe": figures})
    assert figures["longest_gap_s"] <= 10, figures
    # the inventory that says dynamic now agrees: nothing changes, nothing restarts
    pids = main_pids(everyone)
    again = site(dynamic)
    assert again.returncode == 0 and set(changed_counts(again).values()) == {0}, changed_counts(again)
    assert main_pids(everyone) == pids
    back = site(static)
    assert back.returncode != 0 and "cannot become static again" in back.stdout


def test_removal_that_would_lose_the_caught_up_majority_is_refused(controllers, inventories):
    dynamic = inventories["dynamic"]
    st = wait_all_caught_up(dynamic)
    names = {m["node_id"]: m["host"] for m in st["members"]}
    followers = sorted(names[n] for n, _ in voters(st) if n != st["leader"])
    down, target = followers
    controllers[down].run_test("systemctl stop kafka.service")
    try:
        deadline = time.monotonic() + 60
        while any(m["caught_up"] for m in status(dynamic)["members"] if m["host"] == down and m["voter"]):
            assert time.monotonic() < deadline
            time.sleep(3)
        before = status(dynamic)
        refused = quorum_cmd(dynamic, "remove", target)
        assert refused.returncode == 2, refused.stdout
        assert "refused, nothing was changed" in refused.stderr and "caught up" in refused.stderr
        after = status(dynamic)
        assert voters(after) == voters(before)
        assert controllers[target].service("kafka").is_running
    finally:
        controllers[down].run_test("systemctl start kafka.service")
    wait_all_caught_up(dynamic)
    record("refused", {"stopped": down, "target": target, "said": refused.stderr.strip()[-400:]})


def test_active_controller_removed_and_added_back_with_one_leader_change(controllers, inventories, under_load):
    dynamic = inventories["dynamic"]
    st = wait_all_caught_up(dynamic)
    names = {m["node_id"]: m["host"] for m in st["members"]}
    leader, epoch, members = names[st["leader"]], st["epoch"], voters(st)
    work, probe = under_load.start("quorum-leader")
    started = time.monotonic()
    removed = quorum_cmd(dynamic, "remove", leader)
    assert removed.returncode == 0, removed.stderr
    mid = status(dynamic)
    assert len(voters(mid)) == 2 and st["leader"] not in [n for n, _ in voters(mid)]
    assert not controllers[leader].service("kafka").is_running
    added = quorum_cmd(dynamic, "add", leader)
    took = time.monotonic() - started
    report, figures = under_load.stop(work, probe)
    assert added.returncode == 0, added.stderr
    after = wait_all_caught_up(dynamic)
    assert voters(after) == members
    assert after["leader"] != st["leader"] and after["epoch"] == epoch + 1, (st["leader"], epoch, after)
    record("leader", {"seconds": round(took, 1), "leader_before": leader, "leader_after": names[after["leader"]],
                      "epochs": [epoch, after["epoch"]], "load": report.as_dict(), "probe": figures})


def test_wiped_controller_replaced_and_every_voter_caught_up(controllers, inventories, under_load):
    dynamic = inventories["dynamic"]
    st = wait_all_caught_up(dynamic)
    names = {m["node_id"]: m["host"] for m in st["members"]}
    host = sorted(names[n] for n, _ in voters(st) if n != st["leader"])[0]
    node_id = next(n for n, h in names.items() if h == host)
    old = dict(voters(st))[node_id]
    t = controllers[host]
    conf = t.check_output("cat $(sed -n 's/.*\"config_dir\": *\"\\([^\"]*\\)\".*/\\1/p' "
                          "/etc/kafka-metal/kafka.json)/server.properties")
    metadata = next(ln.split("=", 1)[1] for ln in conf.splitlines() if ln.startswith("metadata.log.dir="))
    work, probe = under_load.start("quorum-replace")
    t.run_test("systemctl stop kafka.service")
    t.run_test(f"find {metadata} -mindepth 1 -delete")  # the disk is lost
    started = time.monotonic()
    replaced = quorum_cmd(dynamic, "replace", host)
    took = time.monotonic() - started  # the command returns once every voter has caught up
    report, figures = under_load.stop(work, probe)
    assert replaced.returncode == 0, replaced.stderr
    assert "all voters caught up" in replaced.stdout
    after = wait_all_caught_up(dynamic, timeout=60)
    now = dict(voters(after))
    assert sorted(now) == sorted(dict(voters(st))) and now[node_id] != old, (old, now)
    assert (node_id, old) not in voters(after)
    record("replace", {"seconds_to_all_caught_up": round(took, 1), "said": replaced.stdout.strip().splitlines()[-1],
                       "node": host, "old_directory": old, "new_directory": now[node_id], "load": report.as_dict(),
                       "probe": figures})
    assert took <= 120, took
