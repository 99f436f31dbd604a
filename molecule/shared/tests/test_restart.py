"""A configuration change on a live cluster restarts one node at a time.

Runs site.yml again with changed settings for brokers (on a secured cluster: only their renewed
certificates), controllers and ZooKeeper while a
watcher polls every node over its own protocol. Afterwards: every node was restarted (its
process is new), at no moment was more than one broker, controller or ZooKeeper process down,
the ZooKeeper members were restarted by the rolling engine and the leader of before the change last
of the ensemble, and the cluster
still takes and returns messages.
"""

import hashlib
import json
import os
import re
import ssl
import subprocess
import threading
import time

from ansible_collections.metal.kafka.plugins.module_utils import wire, zookeeper
from kafka_metal import smoke


def _kafka_up(address, port, security):
    try:
        if port == 9092:
            wire.metadata(address, port, timeout=1.0, security=security)
        else:
            wire.api_versions(address, port, timeout=1.0, security=security)
        return True
    except Exception:
        return False


def _zk_up(address):
    # "up" is a running ZooKeeper process ("ruok" answers even while the ensemble elects a new
    # leader, which a leader restart always causes for a moment; "serving" would count that).
    # A member counts as down only if it fails twice in a row, 0.3 s apart: on this 2-core machine a
    # running member can miss one 1-second answer while other JVMs start (a restart is down for
    # seconds, so it is still seen).
    for attempt in range(2):
        try:
            if zookeeper.four_letter_word(address, 2181, "ruok", timeout=1.0).strip() == "imok":
                return True
        except (OSError, zookeeper.ZooKeeperError):
            pass
        if attempt == 0:
            time.sleep(0.3)
    return False


class Watcher(threading.Thread):
    def __init__(self, brokers, controllers, zookeepers, security):
        super().__init__(daemon=True)
        self.security = security
        self.groups = {"brokers": [(a, 9092) for a in brokers], "controllers": [(a, 9093) for a in controllers],
                       "zookeepers": [(a, 2181) for a in zookeepers]}
        self.minimum = {k: len(v) for k, v in self.groups.items()}
        self.samples = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            for group, members in self.groups.items():
                probe = (lambda a, p: _zk_up(a)) if group == "zookeepers" else (
                    lambda a, p: _kafka_up(a, p, self.security(a)))
                self.minimum[group] = min(self.minimum[group], sum(probe(a, p) for a, p in members))
            self.samples += 1
            time.sleep(0.2)


def unit_state(cluster, host, unit):
    out = cluster["testinfra"][host].check_output(
        f"systemctl show -p MainPID -p ExecMainStartTimestampMonotonic {unit}")
    fields = dict(line.split("=", 1) for line in out.splitlines())
    return fields["MainPID"], int(fields["ExecMainStartTimestampMonotonic"])


def snapshot(cluster):
    state = {(h, "kafka"): unit_state(cluster, h, "kafka") for h in cluster["kafka_hosts"]}
    state.update({(h, "zookeeper"): unit_state(cluster, h, "zookeeper") for h in cluster["zookeepers"]})
    return state


def certificate_fingerprints(cluster):
    """SHA-256 of the certificate each Kafka node presents (empty when plaintext)."""
    if not cluster["security"]["secure"]:
        return {}
    out = {}
    for h in cluster["kafka_hosts"]:
        port = 9092 if h in cluster["brokers"] else 9093
        pem = ssl.get_server_certificate((cluster["address"][h], port))
        out[h] = hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()
    return out


SQUATTER = ("import socket, time; s = socket.socket(); s.bind(('0.0.0.0', {port})); s.listen(); "
            "time.sleep(900)")


def test_a_port_in_use_or_a_missing_disk_stops_every_host_before_any_change(cluster, inventory):
    """Mistakes only the host can show are found by the first read of the hosts, before anything changes:
    a new client port that another program already listens on (on one broker), and a data disk that no
    host has. The run fails naming both; no task changed anything; the nodes run on as before."""
    project = os.environ["MOLECULE_PROJECT_DIRECTORY"]
    broker = cluster["brokers"][0]
    port = 9192
    files = {h: f"{cluster['config_dir'][h]}/server.properties" for h in cluster["kafka_hosts"]}
    before = {h: cluster["testinfra"][h].check_output(f"sha256sum {f}") for h, f in files.items()}
    units = snapshot(cluster)
    squatter = cluster["testinfra"][broker]
    squatter.check_output("systemd-run --unit kafka-metal-squatter --property=Type=exec "
                          f"/usr/bin/python3 -c \"{SQUATTER.format(port=port)}\"")
    try:
        for _ in range(50):
            if squatter.socket(f"tcp://0.0.0.0:{port}").is_listening:
                break
            time.sleep(0.1)
        extra = json.dumps({"broker_client_port": port,
                            "tuning_data_disks": [{"device": "/dev/disk/by-id/kafka-metal-absent",
                                                   "path": "/data/absent"}]})
        proc = subprocess.run(["ansible-playbook", "-i", inventory, f"{project}/site.yml", "-e", extra],
                              capture_output=True, text=True, timeout=600,
                              env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
                                       ANSIBLE_CALLBACK_RESULT_FORMAT="json"))
    finally:
        squatter.run("systemctl stop kafka-metal-squatter")
    out = proc.stdout + proc.stderr  # failures go to stderr
    assert proc.returncode != 0, out[-4000:]
    assert f"{broker} cannot run its node; nothing was changed on the hosts" in out, out[-4000:]
    assert f"broker_client_port is {port}, but python3 (pid " in out, out[-4000:]
    assert f"already listens on 0.0.0.0:{port} on this host" in out, out[-4000:]
    # one failure line per host ("fatal: [HOST]: FAILED! => {... "msg": "HOST cannot run its node ..."}")
    port_named = {m.group(1) for m in re.finditer(r"\[([^\]]+)\]: FAILED! => (.*)", out)
                  if f"broker_client_port is {port}, but" in m.group(2)}
    assert port_named == {broker}, out[-4000:]
    assert "tuning_data_disks names /dev/disk/by-id/kafka-metal-absent (for /data/absent)" in out
    recap = dict(re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", out, re.M))
    assert set(recap) >= set(cluster["hosts"]), out[-2000:]
    assert all(recap[h] == "0" for h in cluster["hosts"]), recap
    assert {h: cluster["testinfra"][h].check_output(f"sha256sum {f}") for h, f in files.items()} == before
    assert snapshot(cluster) == units


def test_config_change_restarts_one_node_at_a_time(cluster, inventory, bootstrap, client_conf, wire_security):
    """Settings change everywhere; on a secured cluster every certificate is renewed in the same roll."""
    before = snapshot(cluster)
    fingerprints = certificate_fingerprints(cluster)
    zk_leader = None
    if cluster["zookeepers"]:
        states = [zookeeper.member_state(cluster["address"][z], 2181) for z in cluster["zookeepers"]]
        leader_address = zookeeper.ensemble_status(states)["leader"]
        zk_leader = next(z for z in cluster["zookeepers"] if cluster["address"][z] == leader_address)
    watcher = Watcher([cluster["address"][b] for b in cluster["brokers"]],
                      [cluster["address"][c] for c in cluster["controllers"]],
                      [cluster["address"][z] for z in cluster["zookeepers"]], wire_security)
    watcher.start()
    extra = {"broker_properties": {"log.retention.hours": "100"},
             "controller_properties": {"controller.quorum.fetch.timeout.ms": "2500"},
             "zookeeper_properties": {"maxClientCnxns": "100"}}
    if fingerprints:
        extra["kafka_tls_extra_names"] = ["kafka.lab.example"]  # every certificate must be re-issued
        # On a secured cluster the brokers' only change is the renewed certificate: their restart proves
        # that the engine watches the key store where the inventory put it (kafka_tls_dir).
        del extra["broker_properties"]
    extra = json.dumps(extra)
    project = os.environ["MOLECULE_PROJECT_DIRECTORY"]
    try:
        proc = subprocess.run(["ansible-playbook", "-i", inventory, f"{project}/site.yml", "-e", extra],
                              capture_output=True, text=True, timeout=1800)
    finally:
        watcher.stop.set()
        watcher.join()
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    after = snapshot(cluster)
    assert all(before[k][0] != after[k][0] for k in before), (before, after)
    assert watcher.samples > 20
    for group, members in watcher.groups.items():
        assert watcher.minimum[group] >= len(members) - 1, f"more than one of the {group} was down at once"
    if zk_leader:
        # the members went through the rolling engine (its gates and order), not a loop of their own
        block = proc.stdout.split("Restart changed members one at a time, through the rolling gates", 1)
        assert len(block) == 2 and "changed: [" in block[1].split("TASK [", 1)[0], proc.stdout[-4000:]
        started = {z: after[(z, "zookeeper")][1] for z in cluster["zookeepers"]}
        assert max(started, key=started.get) == zk_leader, f"leader {zk_leader} was not restarted last: {started}"
    for h in cluster["brokers"]:
        conf = cluster["testinfra"][h].file(f"{cluster['config_dir'][h]}/server.properties").content_string
        assert ("log.retention.hours=100" in conf) == ("broker_properties" in extra)
    renewed = certificate_fingerprints(cluster)
    assert all(renewed[h] != fingerprints[h] for h in fingerprints), "certificates were not renewed"
    if fingerprints:
        for h in cluster["kafka_hosts"]:
            port = 9092 if h in cluster["brokers"] else 9093
            pem = ssl.get_server_certificate((cluster["address"][h], port))
            assert b"kafka.lab.example" in ssl.PEM_cert_to_DER_cert(pem), f"{h} does not carry the new name"
    result = smoke.run(bootstrap, messages=2000, extra=client_conf)
    assert result.ok, result.problems
