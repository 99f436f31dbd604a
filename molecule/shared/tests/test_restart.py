"""A configuration change on a live cluster restarts one node at a time.

Runs site.yml again with changed settings for brokers and controllers while a watcher polls
every node over the Kafka protocol. Afterwards: every node was restarted (its process is new),
at no moment was more than one broker or more than one controller down, and the cluster still
takes and returns messages.
"""

import os
import subprocess
import threading
import time

from ansible_collections.metal.kafka.plugins.module_utils import wire
from kafka_metal import smoke


class Watcher(threading.Thread):
    def __init__(self, brokers, controllers):
        super().__init__(daemon=True)
        self.brokers, self.controllers = brokers, controllers
        self.min_brokers, self.min_controllers = len(brokers), len(controllers)
        self.samples = 0
        self.stop = threading.Event()

    @staticmethod
    def _up(probe, address, port):
        try:
            probe(address, port, timeout=1.0)
            return True
        except Exception:
            return False

    def run(self):
        while not self.stop.is_set():
            b = sum(self._up(wire.metadata, a, 9092) for a in self.brokers)
            c = sum(self._up(wire.api_versions, a, 9093) for a in self.controllers)
            self.min_brokers = min(self.min_brokers, b)
            self.min_controllers = min(self.min_controllers, c)
            self.samples += 1
            time.sleep(0.2)


def main_pids(cluster):
    return {h: cluster["testinfra"][h].check_output("systemctl show -p MainPID --value kafka")
            for h in cluster["hosts"]}


def test_config_change_restarts_one_node_at_a_time(cluster, inventory, bootstrap):
    before = main_pids(cluster)
    watcher = Watcher([cluster["address"][b] for b in cluster["brokers"]],
                      [cluster["address"][c] for c in cluster["controllers"]])
    watcher.start()
    extra = ('{"broker_properties": {"log.retention.hours": "100"},'
             ' "controller_properties": {"controller.quorum.fetch.timeout.ms": "2500"}}')
    project = os.environ["MOLECULE_PROJECT_DIRECTORY"]
    try:
        proc = subprocess.run(["ansible-playbook", "-i", inventory, f"{project}/site.yml", "-e", extra],
                              capture_output=True, text=True, timeout=1800)
    finally:
        watcher.stop.set()
        watcher.join()
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    after = main_pids(cluster)
    assert all(before[h] != after[h] for h in cluster["hosts"]), (before, after)
    assert watcher.samples > 20
    assert watcher.min_brokers >= len(cluster["brokers"]) - 1, "more than one broker was down at once"
    assert watcher.min_controllers >= len(cluster["controllers"]) - 1, "more than one controller was down at once"
    for h in cluster["brokers"]:
        conf = cluster["testinfra"][h].file("/etc/kafka/server.properties").content_string
        assert "log.retention.hours=100" in conf
    result = smoke.run(bootstrap, messages=2000)
    assert result.ok, result.problems
