"""Rolling restarts and the rolling upgrade, under load (scenario `secure`'s rolling stage; ZooKeeper mode in
`zookeeper`).

Every roll here runs while kafka_metal.load produces (acks=all, idempotent) and consumes on a
topic with replication factor 3 and min.insync.replicas=2; afterwards every acknowledged record
must have been consumed exactly once and the producer must have seen no non-retriable error.
Which processes were restarted is read from systemd (MainPID), not from the tool's own report.
The figures of each roll (total time, sum of stop + start + catch-up, overhead) are written to
$KAFKA_METAL_FIGURES_DIR (default /tmp/kafka-metal-figures) for the closing note.
"""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from kafka_metal import REPO_ROOT, load, smoke

SCENARIO = os.environ.get("MOLECULE_SCENARIO_NAME", "")
KAFKA_METAL = str(Path(sys.executable).parent / "kafka-metal")
FIGURES = Path(os.environ.get("KAFKA_METAL_FIGURES_DIR", "/tmp/kafka-metal-figures"))


@pytest.fixture
def rolling_scenario():
    if SCENARIO != "secure":
        pytest.skip("the KRaft rolling checks run in the `secure` scenario")


@pytest.fixture
def zookeeper_scenario():
    if SCENARIO != "zookeeper":
        pytest.skip("ZooKeeper-mode rolling checks run in the `zookeeper` scenario")


def kafka_metal(*args, inventory, timeout=1800):
    env = dict(os.environ)
    env.pop("ANSIBLE_VERBOSITY", None)
    proc = subprocess.run([KAFKA_METAL, *args, "-i", inventory], capture_output=True, text=True, env=env,
                          timeout=timeout)
    print(proc.stdout)
    print(proc.stderr, file=sys.stderr)
    return proc


def playbook(name, inventory, *extra, timeout=1800):
    env = dict(os.environ)
    env.pop("ANSIBLE_VERBOSITY", None)
    env["ANSIBLE_CONFIG"] = str(REPO_ROOT / "ansible.cfg")
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), str(REPO_ROOT / "playbooks" / name),
                           "-i", inventory, *extra], capture_output=True, text=True, env=env, cwd=REPO_ROOT,
                          timeout=timeout)
    print(proc.stdout[-6000:])
    print(proc.stderr[-3000:], file=sys.stderr)
    return proc


def main_pids(cluster):
    """MainPID of every Kafka and ZooKeeper unit (a new PID is a restart)."""
    out = {}
    for h in cluster["hosts"]:
        unit = "zookeeper" if h in cluster["zookeepers"] else "kafka"
        out[h] = cluster["testinfra"][h].check_output(f"systemctl show -p MainPID --value {unit}").strip()
    return out


def wait_healthy(bootstrap, client_conf, timeout=300):
    """Every partition has its full replica set in sync (after a test stopped a broker)."""
    admin = smoke._admin(bootstrap, client_conf)
    deadline = time.monotonic() + timeout
    while True:
        md = admin.list_topics(timeout=30)
        lagging = [f"{t}-{p}" for t, tm in md.topics.items() for p, pm in tm.partitions.items()
                   if len(pm.isrs) < len(pm.replicas)]
        if not lagging and len(md.brokers) == 3:
            return
        assert time.monotonic() < deadline, f"cluster not healthy after {timeout}s: {lagging[:5]}"
        time.sleep(2)


def start_load(bootstrap, client_conf, name):
    work = load.Load(bootstrap, topic=f"rolling-{name}", extra=client_conf, rate=250, partitions=6,
                     replication_factor=3, min_isr=2).start()
    time.sleep(5)  # the load is flowing before anything restarts
    return work


def check_load(work):
    report = work.stop(drain_timeout=180)
    print(report.summary())
    assert report.acked > 1000, report.summary()
    assert report.ok, "; ".join(report.problems())
    return report


def record(name, summary, report=None):
    FIGURES.mkdir(parents=True, exist_ok=True)
    data = {"summary": summary}
    if report is not None:
        data["load"] = report.as_dict()
    (FIGURES / f"{SCENARIO}-{name}.json").write_text(json.dumps(data, indent=2) + "\n")


def set_property_line(cluster, host, line, present=True):
    """Add or remove one line of server.properties (a change the roll must notice, or a broken setting)."""
    path = "/etc/kafka/server.properties"
    h = cluster["testinfra"][host]
    if present:
        h.check_output(f"echo {line!r} >> {path}")
    else:
        h.check_output(f"grep -vxF {line!r} {path} > {path}.tmp && cat {path}.tmp > {path} && rm {path}.tmp")


# ---------------------------------------------------------------------------------------------
# KRaft (scenario `secure`, Kafka 3.9.1, secured; the last check upgrades it to 4.1.1)
# ---------------------------------------------------------------------------------------------


def test_check_mode_plans_nothing_on_an_unchanged_cluster(rolling_scenario, cluster, inventory):
    before = main_pids(cluster)
    proc = kafka_metal("roll", "--check", inventory=inventory)
    assert proc.returncode == 0
    assert "preflight passed" in proc.stdout
    assert proc.stdout.count("unchanged since it started") == 6
    assert main_pids(cluster) == before


def test_the_installed_wheel_plans_the_same_roll_outside_the_checkout(rolling_scenario, cluster, inventory,
                                                                     tmp_path_factory):
    """The command line as an operator installs it (the wheel, in a venv of its own, run from a directory
    that is not the checkout and with no collection path set) reads the same cluster and plans the same."""
    sys.path.insert(0, str(REPO_ROOT))
    from tests.wheelenv import build_and_install, clean_env

    where = tmp_path_factory.mktemp("installed")
    venv = build_and_install(where)
    # the lab's connection settings and the scenario's vault password, nothing of the checkout
    env = clean_env(venv, keep=[k for k in os.environ if k.startswith(("ANSIBLE_VAULT", "KAFKA_METAL_"))]
                    + ["SSH_AUTH_SOCK"])
    before = main_pids(cluster)
    proc = subprocess.run(["kafka-metal", "roll", "--check", "-i", inventory], env=env, cwd=where,
                          capture_output=True, text=True, timeout=900)
    print(proc.stdout[-3000:], proc.stderr[-3000:])
    assert proc.returncode == 0
    assert "preflight passed" in proc.stdout and proc.stdout.count("unchanged since it started") == 6
    assert main_pids(cluster) == before


def test_preflight_refuses_when_a_broker_is_already_down(rolling_scenario, cluster, inventory, bootstrap,
                                                         client_conf):
    smoke.create_topic(bootstrap, "rolling-preflight", 6, 3, 2, extra=client_conf)
    down = cluster["brokers"][-1]
    cluster["testinfra"][down].check_output("systemctl stop kafka")
    try:
        before = main_pids(cluster)
        proc = kafka_metal("roll", "--all", inventory=inventory)
        assert proc.returncode == 2
        assert "preflight" in proc.stderr and f"{down}: kafka.service is not running" in proc.stderr
        assert "under-replicated" in proc.stderr
        assert main_pids(cluster) == before, "a node was restarted although the preflight failed"
    finally:
        cluster["testinfra"][down].check_output("systemctl start kafka")
        wait_healthy(bootstrap, client_conf)


class LeaderWatch(threading.Thread):
    """Samples the KRaft quorum's leader every 0.3 s, through a broker (independent of the roll tool)."""

    def __init__(self, cluster, wire_security):
        super().__init__(daemon=True)
        self.address = [cluster["address"][b] for b in cluster["brokers"]]
        self.security = wire_security
        self.leader = None
        self.done = threading.Event()

    def run(self):
        from ansible_collections.metal.kafka.plugins.module_utils import wire

        while not self.done.is_set():
            for a in self.address:
                try:
                    self.leader = wire.describe_quorum(a, 9092, timeout=2.0, security=self.security(a))["leader_id"]
                    break
                except Exception:
                    continue
            time.sleep(0.3)


def _roll_streaming(args, inventory, cluster, watch, interrupt_after=None):
    """Run `kafka-metal roll ARGS`, noting which node the watcher saw as leader when each one was stopped;
    with ``interrupt_after=N``, send SIGINT (Ctrl-C) once N nodes have caught up."""
    env = dict(os.environ)
    env.pop("ANSIBLE_VERBOSITY", None)
    proc = subprocess.Popen([KAFKA_METAL, "roll", *args, "-i", inventory], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    by_id = {cluster["node_id"][h]: h for h in cluster["kafka_hosts"]}
    stops, output, caught_up = [], [], 0
    for line in proc.stdout:
        output.append(line)
        if "] stop " in line and ": stopping" in line:
            host = line.split("(")[1].split(")")[0]
            stops.append((host, by_id.get(watch.leader)))
        caught_up += "] caught-up " in line
        if interrupt_after and caught_up == interrupt_after:
            proc.send_signal(signal.SIGINT)
            interrupt_after = None
    proc.wait(timeout=600)
    print("".join(output))
    return proc.returncode, "".join(output), stops


def test_roll_of_every_node_under_load_interrupted_and_resumed(rolling_scenario, cluster, inventory, bootstrap,
                                                               client_conf, wire_security, tmp_path):
    """`kafka-metal roll --all` under load, interrupted (Ctrl-C) after two nodes, then run again: it
    resumes, every node is restarted once, controllers first with the active one last, then brokers."""
    before = main_pids(cluster)
    watch = LeaderWatch(cluster, wire_security)
    watch.start()
    work = start_load(bootstrap, client_conf, "all")
    rc, out1, stops1 = _roll_streaming(["--all"], inventory, cluster, watch, interrupt_after=2)
    assert rc == 130 and "run the same command again to resume" in out1
    middle = main_pids(cluster)
    first = [h for h in cluster["hosts"] if middle[h] != before[h]]
    assert 2 <= len(first) < len(cluster["hosts"])
    summary_file = tmp_path / "summary.json"
    rc, out2, stops2 = _roll_streaming(["--all", "--summary-json", str(summary_file)], inventory, cluster, watch)
    watch.done.set()
    report = check_load(work)
    assert rc == 0, out2[-3000:]
    assert "resuming" in out2
    final = main_pids(cluster)
    assert all(final[h] != before[h] for h in cluster["hosts"]), "a node was never restarted"
    # a node the interrupt caught mid-restart is started first; those the first run finished are skipped
    left = {ln.split("(")[-1].split(")")[0] for ln in out2.splitlines()
            if "left down by the interrupted run; starting" in ln}
    assert all(final[h] == middle[h] for h in first if h not in left), \
        "a node restarted by the interrupted run was restarted again"
    stops = stops1 + stops2
    order = [h for h, _ in stops]
    assert len(order) == len(set(order)) == len(cluster["kafka_hosts"]), order
    assert set(order[:3]) == set(cluster["controllers"]) and set(order[3:]) == set(cluster["brokers"]), order
    # the leader the watcher saw when each controller went down: never one of the first two, so the
    # active controller always went after the others. (The last one need not be the leader then:
    # leadership often moves to a controller already restarted; the tool re-reads it before each step.)
    assert all(leader != host for host, leader in stops[:2]), stops
    assert all(n["clean_shutdown"] for n in json.loads(summary_file.read_text())["nodes"]
               if n["action"] == "restarted")
    record("roll-all-resumed", json.loads(summary_file.read_text()), report)


def test_second_roll_restarts_nothing(rolling_scenario, cluster, inventory):
    before = main_pids(cluster)
    proc = kafka_metal("roll", inventory=inventory)
    assert proc.returncode == 0
    assert "0 node(s) restarted" in proc.stdout
    assert main_pids(cluster) == before


def test_engine_logs_in_as_a_sudo_user_through_a_bastion(rolling_scenario, cluster, inventory, tmp_path):
    """The engine connects the way Ansible does: every host through the first controller as a jump host,
    as a user other than root whose sudo asks for a password. The playbook restarts one broker that way,
    the command line reads every node that way; the hosts' logs say who logged in from where and what sudo
    ran, and the password shows nowhere."""
    import secrets

    import yaml

    bastion, target = cluster["controllers"][0], cluster["brokers"][-1]
    password = "sudo-" + secrets.token_urlsafe(12)
    var = cluster["var"]
    hosts = {}
    for h in cluster["hosts"]:
        ti = cluster["testinfra"][h]
        ti.run_expect([0], "id kmops >/dev/null 2>&1 || useradd -m -s /bin/bash kmops")
        ti.run_expect([0], f"echo kmops:{password} | chpasswd")
        ti.run_expect([0], "install -d -m 0700 -o kmops -g kmops ~kmops/.ssh && install -m 0600 -o kmops -g kmops "
                           "/root/.ssh/authorized_keys ~kmops/.ssh/authorized_keys")
        ti.run_expect([0], "echo 'kmops ALL=(ALL:ALL) ALL' > /etc/sudoers.d/kmops && chmod 0440 "
                           "/etc/sudoers.d/kmops && visudo -cf /etc/sudoers.d/kmops")
        hosts[h] = {"ansible_host": cluster["address"][h], "ansible_port": int(var(h, "ansible_port", 22)),
                    "ansible_user": "kmops", "ansible_become_password": password,
                    "ansible_ssh_private_key_file": var(h, "ansible_ssh_private_key_file", "")
                    or var(h, "ansible_private_key_file", ""),
                    "ansible_ssh_common_args": f"{var(h, 'ansible_ssh_common_args', '')} "
                                               f"-o ProxyJump=root@{cluster['address'][bastion]}"}
    groups = {"kafka_controllers": cluster["controllers"], "kafka_brokers": cluster["brokers"]}
    inv = {"all": {"vars": {"kafka_cluster_name": "bastion-check"},
                   "children": {g: {"hosts": {h: hosts[h] for h in members}} for g, members in groups.items()}}}
    path = tmp_path / "through-bastion.yml"
    path.write_text(yaml.safe_dump(json.loads(json.dumps(inv))))  # plain strings (Ansible tags its own)
    since = cluster["testinfra"][target].check_output("date +%s").strip()
    try:
        # a wrong sudo password stops the engine before anything is restarted, and says which setting
        wrong = tmp_path / "wrong-password.yml"
        wrong.write_text(path.read_text().replace(password, "not-" + password))
        before = main_pids(cluster)
        refused = kafka_metal("roll", "--all", inventory=str(wrong))
        assert refused.returncode != 0 and "sudo refused the become password of kmops" in refused.stdout + \
            refused.stderr, refused.stdout[-2000:] + refused.stderr[-2000:]
        assert main_pids(cluster) == before
        proc = playbook("rolling_restart.yml", str(path), "-e", "kafka_roll_all=true", "--limit", target)
        assert proc.returncode == 0
        after = main_pids(cluster)
        assert [h for h in cluster["hosts"] if after[h] != before[h]] == [target]
        again = kafka_metal("roll", inventory=str(path))
        assert again.returncode == 0 and "0 node(s) restarted" in again.stdout, again.stdout[-3000:]
        for out in (proc.stdout, proc.stderr, again.stdout, again.stderr):
            assert password not in out
        logs = cluster["testinfra"][target].check_output(f"journalctl --since @{since} --no-pager -o cat")
        assert re.search(rf"Accepted publickey for kmops from {re.escape(cluster['address'][bastion])} ", logs), \
            logs[-3000:]
        assert not re.search(r"Accepted \S+ for kmops from (?!" + re.escape(cluster["address"][bastion]) + " )",
                             logs), "a login of the engine's user did not come through the bastion"
        assert re.search(r"kmops : .*USER=root ; COMMAND=/(usr/)?bin/sh -c '?systemctl stop kafka", logs), logs[-3000:]
        assert password not in logs
    finally:
        for h in cluster["hosts"]:
            cluster["testinfra"][h].run("rm -f /etc/sudoers.d/kmops; userdel -r kmops")


def test_playbook_rolls_only_the_changed_node_and_is_idempotent(rolling_scenario, cluster, inventory, bootstrap,
                                                               client_conf):
    changed = cluster["brokers"][1]
    set_property_line(cluster, changed, "# rolling test: a changed configuration")
    before = main_pids(cluster)
    work = start_load(bootstrap, client_conf, "playbook")
    proc = playbook("rolling_restart.yml", inventory)
    check_load(work)
    assert proc.returncode == 0
    after = main_pids(cluster)
    assert [h for h in cluster["hosts"] if after[h] != before[h]] == [changed]
    again = playbook("rolling_restart.yml", inventory)
    assert again.returncode == 0
    recap = again.stdout[again.stdout.rindex("PLAY RECAP"):]
    assert "changed=1" not in recap and "changed=0" in recap
    assert main_pids(cluster) == after


def test_broker_that_fails_to_start_stops_the_roll_and_nothing_else_is_touched(rolling_scenario, cluster, inventory,
                                                                              bootstrap, client_conf):
    broken, later = cluster["brokers"][1], cluster["brokers"][2]
    bad = "num.network.threads=not-a-number"
    set_property_line(cluster, broken, bad)
    set_property_line(cluster, later, "# rolling test: restart me after the broken one")
    before = main_pids(cluster)
    try:
        proc = kafka_metal("roll", "--ready-timeout", "300", inventory=inventory)
        assert proc.returncode == 2
        assert f"stopped on {broken} at step 'start'" in proc.stderr
        after = main_pids(cluster)
        untouched = [h for h in cluster["hosts"] if h != broken]
        assert {h: after[h] for h in untouched} == {h: before[h] for h in untouched}
    finally:
        set_property_line(cluster, broken, bad, present=False)
    # repaired: the same command resumes, starts the broken node first, then restarts the one left
    proc = kafka_metal("roll", inventory=inventory)
    assert proc.returncode == 0, proc.stderr
    assert "resuming" in proc.stdout
    final = main_pids(cluster)
    assert final[later] != before[later]
    wait_healthy(bootstrap, client_conf)


def test_upgrade_to_4_under_load_then_finalize(rolling_scenario, cluster, inventory, bootstrap, client_conf,
                                               command_config, tmp_path):
    target = "4.1.1"
    subprocess.run([KAFKA_METAL, "dist", "build", "--version", target], check=True, capture_output=True)
    work = start_load(bootstrap, client_conf, "upgrade")
    proc = kafka_metal("upgrade", "--to", target, "--summary-json", str(tmp_path / "summary.json"),
                       inventory=inventory, timeout=3000)
    report = check_load(work)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert sorted(summary["restarted"]) == sorted(cluster["kafka_hosts"])
    for h in cluster["kafka_hosts"]:
        t = cluster["testinfra"][h]
        assert t.check_output("readlink -f /opt/kafka/current") == f"/opt/kafka/kafka_2.13-{target}"
        pid = t.check_output("systemctl show -p MainPID --value kafka")
        jars = t.check_output(f"ls -l /proc/{pid}/fd | grep -o '/opt/kafka/kafka_[^/]*' | sort -u")
        assert jars.split() == [f"/opt/kafka/kafka_2.13-{target}"], jars
        assert t.file("/opt/kafka/kafka_2.13-3.9.1/libs").is_directory  # the old version stays for a way back
    record("upgrade", summary, report)
    # the inventory still says 3.9.1: site.yml refuses to take a node back, before anything on it changes
    node = cluster["kafka_hosts"][-1]
    pid = cluster["testinfra"][node].check_output("systemctl show -p MainPID --value kafka")
    back = playbook("site.yml", inventory, "--limit", node)
    assert back.returncode != 0
    assert f"runs Kafka {target}, newer than kafka_version 3.9.1" in back.stdout, back.stdout[-3000:]
    assert not re.search(r"changed=[1-9]", back.stdout), back.stdout[-3000:]
    assert cluster["testinfra"][node].check_output("readlink -f /opt/kafka/current") == \
        f"/opt/kafka/kafka_2.13-{target}"
    assert cluster["testinfra"][node].check_output("systemctl show -p MainPID --value kafka") == pid
    # nothing left to do for this version
    assert "0 node(s) restarted" in kafka_metal("upgrade", "--to", target, "--check", inventory=inventory).stdout
    broker = cluster["testinfra"][cluster["brokers"][0]]
    describe = (f"/opt/kafka/current/bin/kafka-features.sh --bootstrap-server "
                f"{cluster['address'][cluster['brokers'][0]]}:9092 {command_config} describe")

    def levels():
        """Finalized level of every feature, as Kafka's own tool prints it."""
        return dict(re.findall(r"Feature: (\S+)\s.*FinalizedVersionLevel: (\S+)", broker.check_output(describe)))

    before = levels()
    assert before["metadata.version"] == "3.9-IV0" and before["kraft.version"] == "0", before
    # --check: the plan (what moves and what does not), Kafka's validation, nothing changed
    check = kafka_metal("upgrade", "--to", target, "--finalize", "--check", inventory=inventory)
    assert check.returncode == 0, check.stderr
    assert re.search(r"raise metadata\.version +3\.9-IV0 \(21\) -> 4\.1-IV1 \(27\)", check.stdout)
    assert re.search(r"keep  kraft\.version +0 +\(release 4\.1 maps it to 1; not raised", check.stdout)
    assert "Kafka accepts the change (metadata.version can be upgraded to 27.)" in check.stdout
    assert levels() == before
    # kraft.version is not a --feature: refused before anything changes
    refused = kafka_metal("upgrade", "--to", target, "--finalize", "--feature", "kraft.version=1", inventory=inventory)
    assert refused.returncode == 2 and "kraft.version is not raised with --feature" in refused.stderr
    assert levels() == before
    fin = kafka_metal("upgrade", "--to", target, "--finalize", inventory=inventory)
    assert fin.returncode == 0, fin.stderr
    after = levels()
    assert after == {**before, "metadata.version": "4.1-IV1"}, after  # kraft.version and the rest unchanged
    # a second finalize, through the command line and through the playbook (the same code): nothing to do
    again = kafka_metal("upgrade", "--to", target, "--finalize", inventory=inventory)
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout
    play = playbook("rolling_upgrade.yml", inventory, "-e", f"kafka_version={target}", "-e",
                    "kafka_upgrade_finalize=true")
    assert play.returncode == 0, play.stdout[-3000:]
    assert "nothing to do: every feature is where this finalize would put it" in play.stdout
    assert re.search(r"changed=0 ", play.stdout) and not re.search(r"changed=[1-9]", play.stdout)
    assert levels() == after
    result = smoke.run(bootstrap, messages=2000, extra=client_conf)
    assert result.ok, result.problems


# ---------------------------------------------------------------------------------------------
# ZooKeeper mode (scenario `zookeeper`, Kafka 3.9.1, secured)
# ---------------------------------------------------------------------------------------------


def test_zookeeper_mode_roll_under_load_through_the_playbook(zookeeper_scenario, cluster, inventory, bootstrap,
                                                            client_conf, wire_security, tmp_path):
    from ansible_collections.metal.kafka.plugins.module_utils import wire, zookeeper

    leader = next(h for h in cluster["zookeepers"]
                  if zookeeper.member_state(cluster["address"][h], 2181).get("mode") == "leader")
    first = cluster["address"][cluster["brokers"][0]]
    controller = wire.metadata(first, 9092, security=wire_security(first))["controller_id"]
    before = main_pids(cluster)
    work = start_load(bootstrap, client_conf, "zookeeper")
    progress = tmp_path / "progress.jsonl"
    proc = playbook("rolling_restart.yml", inventory, "-e", "kafka_roll_all=true", "-e",
                    f"kafka_roll_progress_file={progress}")
    report = check_load(work)
    assert proc.returncode == 0
    after = main_pids(cluster)
    assert all(after[h] != before[h] for h in cluster["hosts"])
    stops = [json.loads(line)["text"].split(":")[0] for line in progress.read_text().splitlines()
             if json.loads(line)["event"] == "stop"]
    zk = [s for s in stops if s.startswith("zookeeper ")]
    assert stops[:3] == zk and zk[-1] == f"zookeeper {leader}", stops
    by_id = {cluster["node_id"][h]: h for h in cluster["brokers"]}
    assert stops[-1] == f"broker {controller} ({by_id[controller]})", stops
    summary = json.loads(next(line for line in progress.read_text().splitlines()
                              if json.loads(line)["event"] == "done"))["text"]
    record("zookeeper-roll-all", {"text": summary}, report)


def test_zookeeper_mode_refuses_an_upgrade_to_4(zookeeper_scenario, cluster, inventory):
    before = main_pids(cluster)
    proc = playbook("rolling_upgrade.yml", inventory, "-e", "kafka_version=4.1.1")
    assert proc.returncode != 0
    assert "ZooKeeper" in proc.stdout and "3.9" in proc.stdout
    cli = kafka_metal("upgrade", "--to", "4.1.1", inventory=inventory)
    assert cli.returncode != 0 and "nothing was restarted" in cli.stderr
    assert main_pids(cluster) == before
    for h in cluster["kafka_hosts"]:
        assert not cluster["testinfra"][h].file("/opt/kafka/kafka_2.13-4.1.1").exists
