"""Monitoring proven on a running cluster (scenario `secure`, the last stage: Kafka 4.x, TLS and SCRAM).

The monitoring role's Prometheus and Alertmanager run on node7 and scrape every node's JMX exporter agent and
node exporter; `kafka-metal status --serve` runs on this machine (the lab's gateway) and is added as a target
with playbooks/monitoring.yml, as an operator would. The scenario's inventory shortens the scrape interval to
5 s and the `for` of the alerts below, so the checks take seconds, not the minutes production values would.

1. every target is up, every rule loaded, and every query of every dashboard panel returns data;
2. `kafka-metal status` exits 0 ten runs in a row on the healthy cluster;
3. faults, each timed from its start: a log directory filled to 90 % (node5's data directory is a 256 MiB
   filesystem of its own), a consumer paused (lag in seconds), a replication throttle left set, a node issued a
   certificate that expires in a day (site.yml on node4 with a one-day validity), then a broker stopped (node6,
   with a topic of min.insync.replicas=3). Each alert must fire within scrape interval + for + 30 s (plus, for
   the lag, its threshold); while the broker is down `kafka-metal status` exits non-zero naming the fenced
   broker and the partitions under min ISR; the paused consumer's lag reads 60 s +- 10 % after 60 s;
4. every alert goes on firing while its fault is there (a broker stopped elsewhere blinds none of them); every
   fault undone: each alert resolves within the same bound;
5. scale: 2,000 partitions (replication factor 3) and 200 consumer groups: a broker's scrape at the 95th
   percentile and `kafka-metal status` timed.
Figures go to $KAFKA_METAL_FIGURES_DIR (default /tmp/kafka-metal-figures), monitoring-*.json.
"""

import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import testinfra
import yaml

# imported before the cluster fixture's plugin loader takes over the ansible_collections namespace
from ansible_collections.metal.kafka.plugins.module_utils import groups_kafka
from kafka_metal import REPO_ROOT

MONITOR_GROUP = "monitoring"
STATUS_PORT = 9309
KAFKA_METAL = str(Path(sys.executable).parent / "kafka-metal")
FIGURES = Path(os.environ.get("KAFKA_METAL_FIGURES_DIR", "/tmp/kafka-metal-figures"))
DASHBOARDS = Path(REPO_ROOT) / "roles" / "monitoring" / "files" / "dashboards"
LAG_TOPIC, LAG_GROUP, LAG_RATE = "monitoring-lag", "monitoring-app", 5  # records/s
MIN_ISR_TOPIC = "monitoring-min-isr"
SCALE_TOPIC, SCALE_PARTITIONS, SCALE_GROUPS = "monitoring-scale", 2000, 200
LAG_THRESHOLD = 30  # seconds: the status exporter's lag threshold in this scenario


def record(name, data):
    FIGURES.mkdir(parents=True, exist_ok=True)
    (FIGURES / f"monitoring-{name}.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    print(f"{name}: {json.dumps(data, sort_keys=True)}")


def _duration(text):
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for unit in ("ms", "s", "m", "h"):
        if str(text).endswith(unit):
            return float(str(text)[: -len(unit)]) * units[unit]
    raise ValueError(text)


class Prometheus:
    def __init__(self, address, port=9090):
        self.base = f"http://{address}:{port}"

    def get(self, path, **params):
        url = f"{self.base}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        with urllib.request.urlopen(url, timeout=15) as resp:
            return json.loads(resp.read())

    def query(self, expr):
        return self.get("/api/v1/query", query=expr)

    def firing(self):
        """{(alertname, instance-ish label): labels} of the alerts firing now."""
        out = {}
        for alert in self.get("/api/v1/alerts")["data"]["alerts"]:
            if alert["state"] == "firing":
                out.setdefault(alert["labels"]["alertname"], []).append(alert["labels"])
        return out


@pytest.fixture(scope="module")
def monitor(cluster):
    hosts = subprocess.run(["ansible", "-i", os.environ["MOLECULE_INVENTORY_FILE"], MONITOR_GROUP, "--list-hosts"],
                           capture_output=True, text=True, check=False).stdout.split()[2:]
    if not hosts:
        pytest.skip("this scenario has no monitoring host")
    name = hosts[0]
    return {"name": name, "address": cluster["var"](name, "ansible_host"),
            "host": testinfra.get_host(f"ansible://{name}", ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"]),
            "interval": _duration(cluster["var"](name, "monitoring_scrape_interval", "15s")),
            "for": cluster["var"](name, "monitoring_alert_for", {})}


@pytest.fixture(scope="module")
def status_server(cluster, monitor, bootstrap, tmp_path_factory):
    """`kafka-metal status --serve` on this machine, scraped by the lab's Prometheus."""
    sec = cluster["security"]
    conf = tmp_path_factory.mktemp("status") / "admin.properties"
    conf.touch(mode=0o600)
    lines = [f"security.protocol={sec['protocol']}"]
    if sec["secure"]:
        lines += [f"sasl.mechanism={sec['mechanism']}",
                  "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
                  f"username=\"{sec['user']}\" password=\"{sec['password']}\";",
                  f"ssl.truststore.location={sec['ca_file']}", "ssl.truststore.type=PEM"]
    conf.write_text("\n".join(lines) + "\n")
    log = open(tmp_path_factory.mktemp("status-log") / "serve.log", "w")
    proc = subprocess.Popen([KAFKA_METAL, "status", "--bootstrap-server", bootstrap, "--command-config", str(conf),
                             "--serve", f"0.0.0.0:{STATUS_PORT}", "--lag-seconds", str(LAG_THRESHOLD)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{STATUS_PORT}/metrics", timeout=20) as resp:
                    if b"kafka_metal_status_up 1" in resp.read():
                        break
            except OSError:
                pass
            assert proc.poll() is None, Path(log.name).read_text()[-3000:]
            assert time.time() < deadline, Path(log.name).read_text()[-3000:]
            time.sleep(1)
        gateway = monitor["host"].check_output("ip route show default").split()[2]
        project = os.environ["MOLECULE_PROJECT_DIRECTORY"]
        extra = json.dumps({"monitoring_status_targets": [f"{gateway}:{STATUS_PORT}"]})
        run = subprocess.run(["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
                              f"{project}/playbooks/monitoring.yml", "-e", extra],
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
        yield {"command_config": str(conf), "target": f"{gateway}:{STATUS_PORT}", "proc": proc, "log": log.name}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def prometheus(monitor, status_server, cluster):
    prom = Prometheus(monitor["address"])
    expected = {"kafka": len(cluster["kafka_hosts"]), "node": len(cluster["hosts"]), "kafka_metal_status": 1,
                "prometheus": 1, "zookeeper": len(cluster["zookeepers"])}
    deadline = time.time() + 90
    while True:
        targets = prom.get("/api/v1/targets")["data"]["activeTargets"]
        up = {}
        for t in targets:
            if t["health"] == "up":
                up[t["labels"]["job"]] = up.get(t["labels"]["job"], 0) + 1
        if all(up.get(job, 0) == n for job, n in expected.items()):
            break
        assert time.time() < deadline, f"targets not all up: {up} (expected {expected}): " + json.dumps(
            [(t["labels"], t["health"], t.get("lastError")) for t in targets if t["health"] != "up"])
        time.sleep(2)
    return prom


def test_targets_rules_and_alertmanager(prometheus, monitor):
    rules = prometheus.get("/api/v1/rules")["data"]["groups"]
    loaded = {r["name"] for g in rules for r in g["rules"] if r["type"] == "alerting"}
    shipped = set()
    for path in (Path(REPO_ROOT) / "roles" / "monitoring" / "files" / "rules").glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            shipped |= {r["alert"] for r in group["rules"] if "alert" in r}
    assert loaded == shipped
    assert all(r["health"] == "ok" for g in rules for r in g["rules"]), [
        (r["name"], r.get("lastError")) for g in rules for r in g["rules"] if r["health"] != "ok"]
    with urllib.request.urlopen(f"http://{monitor['address']}:9093/api/v2/status", timeout=10) as resp:
        assert json.loads(resp.read())["cluster"]["status"] in ("disabled", "ready")
    am = prometheus.get("/api/v1/alertmanagers")["data"]["activeAlertmanagers"]
    assert len(am) == 1


def _panel_queries(dashboard):
    def walk(panels):
        for panel in panels:
            yield from walk(panel.get("panels", []))
            for target in panel.get("targets", []):
                if target.get("expr"):
                    yield panel.get("title", "?"), target["expr"]
    return list(walk(dashboard.get("panels", [])))


def _instant(expr, cluster_name, interval):
    # the dashboard variables as Grafana fills them: the cluster chosen, "All" for the others (regex matchers)
    for var, value in (("$__rate_interval", f"{max(4 * int(interval), 60)}s"), ("${__rate_interval}", "60s"),
                       ("$__interval", f"{int(interval)}s"), ("$__range", "5m"),
                       ("${cluster}", cluster_name), ("$cluster", cluster_name),
                       ("${instance}", ".*"), ("$instance", ".*"), ("${group}", ".*"), ("$group", ".*")):
        expr = expr.replace(var, value)
    return expr


def test_every_dashboard_query_returns_data(prometheus, monitor, cluster):
    cluster_name = cluster["var"](cluster["kafka_hosts"][0], "kafka_cluster_name")
    files = sorted(DASHBOARDS.glob("*.json"))
    assert files
    empty, failed, count = [], [], 0
    for path in files:
        for title, expr in _panel_queries(json.loads(path.read_text())):
            count += 1
            query = _instant(expr, cluster_name, monitor["interval"])
            try:
                answer = prometheus.query(query)
            except urllib.error.HTTPError as exc:
                failed.append((path.name, title, query, exc.read()[:300]))
                continue
            if answer["status"] != "success":
                failed.append((path.name, title, query, answer))
            elif not answer["data"]["result"]:
                empty.append((path.name, title, query))
    # a recording rule over a target that was just added has data after its first evaluations
    evaluation = _duration(cluster["var"](monitor["name"], "monitoring_evaluation_interval", "15s"))
    deadline = time.time() + 2 * evaluation + 2 * monitor["interval"] + 10
    while empty and time.time() < deadline:
        time.sleep(2)
        empty = [e for e in empty if not prometheus.query(e[2])["data"]["result"]]
    record("dashboards", {"queries": count, "files": [p.name for p in files], "failed": len(failed),
                          "empty": len(empty)})
    assert not failed, failed
    assert not empty, empty


def _status(status_server, bootstrap, *args, timeout=120):
    start = time.monotonic()
    proc = subprocess.run([KAFKA_METAL, "status", "--bootstrap-server", bootstrap, "--command-config",
                           status_server["command_config"], *args], capture_output=True, text=True, timeout=timeout)
    return proc, time.monotonic() - start


def test_status_is_zero_on_the_healthy_cluster_ten_runs_in_a_row(status_server, bootstrap, client_conf):
    from confluent_kafka import ConsumerGroupState
    from confluent_kafka import admin as ck_admin

    # Groups the earlier stages left without members, behind on their topics, are rightly a WARNING ("stopped");
    # they are the stages' leftovers, not this cluster's health: deleted first.
    admin = ck_admin.AdminClient(dict(client_conf, **{"bootstrap.servers": bootstrap}))
    listed = admin.list_consumer_groups(request_timeout=30).result(60)
    empty = [g.group_id for g in listed.valid if g.state == ConsumerGroupState.EMPTY]
    for future in (admin.delete_consumer_groups(empty, request_timeout=30).values() if empty else ()):
        future.result(60)
    codes, seconds = [], []
    for _ in range(10):
        proc, took = _status(status_server, bootstrap)
        codes.append(proc.returncode)
        seconds.append(round(took, 2))
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    record("healthy", {"exit_codes": codes, "seconds": seconds})


class Lag:
    """A producer at LAG_RATE records/s and a consumer of LAG_GROUP that commits each record, until paused."""

    def __init__(self, conf):
        from confluent_kafka import Consumer, Producer

        self.producer = Producer(dict(conf, **{"acks": "all", "linger.ms": 0}))
        self.consumer = Consumer(dict(conf, **{"group.id": LAG_GROUP, "auto.offset.reset": "earliest",
                                               "enable.auto.commit": False}))
        self.stop = threading.Event()
        self.paused = threading.Event()
        self.paused_at = None
        self.errors = []
        self.produced = 0
        self.threads = [threading.Thread(target=self._guarded, args=(self._produce,), daemon=True),
                        threading.Thread(target=self._guarded, args=(self._consume,), daemon=True)]

    def _guarded(self, work):
        try:
            work()
        except Exception as exc:  # noqa: BLE001 (recorded, the checks read them)
            self.errors.append(f"{work.__name__}: {exc!r}")

    def start(self):
        self.consumer.subscribe([LAG_TOPIC])
        for t in self.threads:
            t.start()

    def _produce(self):
        n = 0
        while not self.stop.is_set():
            self.producer.produce(LAG_TOPIC, str(n).encode())
            self.producer.poll(0)
            n += 1
            self.produced = n
            self.stop.wait(1 / LAG_RATE)
        self.producer.flush(30)

    def _consume(self):
        while not self.stop.is_set():
            if self.paused.is_set():
                if self.paused_at is None:
                    self.consumer.pause(self.consumer.assignment())
                    self.paused_at = time.time()
                self.consumer.poll(0.2)  # keeps the membership; nothing is returned while paused
                continue
            if self.paused_at is not None:
                self.consumer.resume(self.consumer.assignment())
                self.paused_at = None
            msg = self.consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            try:
                self.consumer.commit(message=msg, asynchronous=False)
            except Exception as exc:  # noqa: BLE001 (recorded, the check reads them)
                self.errors.append(str(exc))

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)
        self.consumer.close()


def _alert_for(monitor):
    """Each alert's `for` in seconds: the rule files' own, under the inventory's overrides."""
    out = {}
    for path in (Path(REPO_ROOT) / "roles" / "monitoring" / "files" / "rules").glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    out[rule["alert"]] = _duration(monitor["for"].get(rule["alert"], rule.get("for", "0s")))
    return out


def _matches(labels, hints):
    return not hints or any(str(labels.get(k)) == str(v) for k, v in hints.items())


class Watch(threading.Thread):
    """Polls Prometheus's alerts every second from before the first fault: when each expected alert first
    fired, and when it stopped firing once its fault was undone (``undone[alert]`` set by the check)."""

    def __init__(self, prometheus, expected, faults):
        super().__init__(daemon=True)
        self.prometheus, self.expected = prometheus, expected  # {alert: label hints}
        self.faults = faults  # {alert: when its fault began}, filled in by the check
        self.fired, self.resolved, self.undone, self.dropped = {}, {}, {}, {}
        self.undoing = None  # when the check began to undo the faults
        self.errors = 0
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            now = time.time()
            try:
                firing = self.prometheus.firing()
            except OSError:
                self.errors += 1
                self.halt.wait(1)
                continue
            for alert, hints in self.expected.items():
                on = any(_matches(labels, hints) for labels in firing.get(alert, []))
                if on and alert not in self.fired and alert in self.faults:  # not for an earlier cause
                    self.fired[alert] = now
                if not on and alert in self.fired and self.undoing is None and alert not in self.dropped:
                    self.dropped[alert] = now  # stopped firing while its fault was still there
                if not on and alert in self.fired and alert in self.undone and alert not in self.resolved \
                        and now >= self.undone[alert]:
                    self.resolved[alert] = now
            self.halt.wait(1)

    def wait(self, alerts, book, deadline):
        while time.time() < deadline and not all(a in book for a in alerts):
            time.sleep(0.5)


def _df(host, path):
    size, used = host.check_output(f"df -B1 --output=size,used {path} | tail -1").split()
    return int(size), int(used)


def _running_version(host):
    """The Kafka version a node runs (its `current` link): an earlier stage may have upgraded the cluster past
    the inventory's kafka_version, and site.yml must not take the node back."""
    target = host.check_output("readlink -f /opt/kafka/current")
    match = re.search(r"kafka_[0-9.]+-([0-9]+\.[0-9]+\.[0-9]+)$", target)
    assert match, target
    return match.group(1)


def _site(inventory, limit, extra, version):
    project = os.environ["MOLECULE_PROJECT_DIRECTORY"]
    argv = ["ansible-playbook", "-i", inventory, f"{project}/site.yml", "--limit", limit,
            "-e", json.dumps(dict(extra or {}, kafka_version=version))]
    return subprocess.run(argv, capture_output=True, text=True, timeout=1200)


def _create_topic(admin, name, partitions, rf, configs=None):
    from confluent_kafka import admin as ck_admin

    futures = admin.create_topics([ck_admin.NewTopic(name, partitions, rf, config=configs or {})])
    futures[name].result(120)


def _wait_isr_full(admin, topics, timeout=240):
    deadline = time.time() + timeout
    while True:
        md = admin.list_topics(timeout=30)
        short = [(t, p) for t in topics if t in md.topics
                 for p, part in md.topics[t].partitions.items() if len(part.isrs) < len(part.replicas)]
        if not short and all(t in md.topics for t in topics):
            return
        assert time.time() < deadline, f"ISR not full: {short[:10]}"
        time.sleep(1)


def test_faults_fire_and_resolve(prometheus, monitor, cluster, status_server, bootstrap, client_conf, inventory):
    from confluent_kafka import admin as ck_admin

    client_conf = dict(client_conf, **{"bootstrap.servers": bootstrap})
    admin = ck_admin.AdminClient(client_conf)
    interval = monitor["interval"]
    alert_for = _alert_for(monitor)
    filled, stopped, expiring = "node5", "node6", "node4"
    ids = cluster["node_id"]
    ti = cluster["testinfra"]
    data_dir = "/var/lib/kafka/data"
    expected = {"KafkaLogDirectoryFilling": {"broker": ids[filled]},
                "NodeFilesystemFilling": {"instance": filled},
                "KafkaConsumerGroupLagSeconds": {"group": LAG_GROUP},
                "KafkaReplicationThrottleLeftSet": {},
                "KafkaCertificateExpiring": {"instance": expiring},
                "KafkaBrokerDown": {"instance": stopped},
                "KafkaBrokerFenced": {},
                "KafkaUnderReplicatedPartitions": {},
                "KafkaUnderMinIsrPartitions": {}}
    # the bound of each alert: a scrape, its `for`, 30 s; the lag alert also waits for its threshold
    bound = {a: interval + alert_for[a] + 30 + (LAG_THRESHOLD if a == "KafkaConsumerGroupLagSeconds" else 0)
             for a in expected}
    _create_topic(admin, LAG_TOPIC, 1, 3)
    lag = Lag(client_conf)
    lag.start()
    faults = {}
    watch = Watch(prometheus, expected, faults)
    try:
        deadline = time.time() + 60
        while not _committed(client_conf, LAG_GROUP):
            assert time.time() < deadline, f"the consumer committed nothing ({lag.produced} produced): {lag.errors}"
            time.sleep(1)
        already = prometheus.firing()
        assert not any(a in already for a in expected), f"firing before any fault: {sorted(already)}"
        watch.start()

        # 1. faults that need no restart, and a certificate that expires in a day (node4 rolled by site.yml)
        size, used = _df(ti[filled], data_dir)
        filler = max(0, int(size * 0.905) - used)
        ti[filled].run_expect([0], f"fallocate -l {filler} {data_dir}/kafka-metal-filler")
        faults["KafkaLogDirectoryFilling"] = faults["NodeFilesystemFilling"] = time.time()
        lag.paused.set()
        faults["KafkaConsumerGroupLagSeconds"] = time.time()
        _alter_broker(admin, ids[expiring], {"leader.replication.throttled.rate": "10485760"})
        faults["KafkaReplicationThrottleLeftSet"] = time.time()
        cert_run = {}
        version = _running_version(ti[expiring])
        cert_thread = threading.Thread(target=lambda: cert_run.update(proc=_site(inventory, expiring, {
            "kafka_tls_cert_days": 1, "kafka_tls_renew_before_days": 0,
            "kafka_tls_extra_names": ["expiring.lab.example"]}, version), end=time.time()))
        cert_thread.start()
        # the paused consumer's lag in seconds, 60 s after the pause
        while lag.paused_at is None:
            time.sleep(0.1)
        time.sleep(max(0.0, lag.paused_at + 60 - time.time()))
        proc, _ = _status(status_server, bootstrap, "--json")
        paused_for = time.time() - lag.paused_at
        lag_seconds = _group_lag_seconds(json.loads(proc.stdout), LAG_GROUP)
        record("paused-consumer", {"paused_for_s": round(paused_for, 1), "lag_seconds": lag_seconds,
                                   "ratio": round(lag_seconds / paused_for, 3)})
        assert abs(lag_seconds - paused_for) <= 0.1 * paused_for, (lag_seconds, paused_for)
        cert_thread.join()
        assert cert_run["proc"].returncode == 0, cert_run["proc"].stdout[-4000:]
        faults["KafkaCertificateExpiring"] = cert_run["end"]
        not_after = ti[expiring].check_output(
            "grep 'kind=\"node\"' /var/lib/prometheus/node-exporter/kafka_metal_tls.prom | awk '{print $2}'")
        assert 0 < float(not_after) - time.time() <= 86400 + 60, not_after

        # 2. a broker stopped, with a topic that then has partitions under min ISR
        _create_topic(admin, MIN_ISR_TOPIC, 3, 3, {"min.insync.replicas": "3"})
        _wait_isr_full(admin, [MIN_ISR_TOPIC])
        ti[stopped].run_expect([0], "systemctl stop kafka")
        stopped_at = time.time()
        for alert in ("KafkaBrokerDown", "KafkaUnderReplicatedPartitions", "KafkaUnderMinIsrPartitions",
                      "KafkaBrokerFenced"):
            faults[alert] = stopped_at
        watch.wait(expected, watch.fired, max(faults[a] + bound[a] for a in expected) + 5)
        # while the broker is down: status says so and exits non-zero
        proc, _ = _status(status_server, bootstrap, "--json", "--expect-brokers",
                          ",".join(str(ids[b]) for b in cluster["brokers"]))
        down_report = proc.stdout
        assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-1000:]
        # fenced (Kafka 4.0 and later say so), or missing from the brokers the operator expects (before 4.0)
        named = [f["message"] for f in json.loads(down_report)["findings"]
                 if f["area"] == "brokers" and f["level"] == "CRITICAL"]
        assert any(re.search(rf"\b{ids[stopped]}\b", m) for m in named), named
        assert MIN_ISR_TOPIC in down_report

        # 3. everything undone
        watch.undoing = time.time()
        ti[stopped].run_expect([0], "systemctl start kafka")
        started = time.time()
        ti[filled].run_expect([0], f"rm -f {data_dir}/kafka-metal-filler")
        watch.undone["KafkaLogDirectoryFilling"] = watch.undone["NodeFilesystemFilling"] = time.time()
        lag.paused.clear()
        watch.undone["KafkaConsumerGroupLagSeconds"] = time.time()
        _alter_broker(admin, ids[expiring], {"leader.replication.throttled.rate": None})
        watch.undone["KafkaReplicationThrottleLeftSet"] = time.time()
        serving = _wait_serving(cluster, stopped, started)
        for alert in ("KafkaBrokerDown", "KafkaUnderReplicatedPartitions", "KafkaUnderMinIsrPartitions",
                      "KafkaBrokerFenced"):
            watch.undone[alert] = serving
        _wait_isr_full(admin, [LAG_TOPIC, MIN_ISR_TOPIC])
        admin.delete_topics([MIN_ISR_TOPIC])[MIN_ISR_TOPIC].result(60)  # or the rolling gate refuses node4
        restore = _site(inventory, expiring, None, version)
        assert _running_version(ti[expiring]) == version
        assert restore.returncode == 0, restore.stdout[-4000:]
        watch.undone["KafkaCertificateExpiring"] = time.time()
        watch.wait(expected, watch.resolved, max(watch.undone[a] + bound[a] for a in expected) + 5)
    finally:  # nothing of this check is left behind, whatever failed
        watch.halt.set()
        lag.close()
        ti[filled].run(f"rm -f {data_dir}/kafka-metal-filler")
        ti[stopped].run("systemctl start kafka")
        for future in admin.delete_topics([LAG_TOPIC, MIN_ISR_TOPIC], operation_timeout=30).values():
            try:
                future.result(60)
            except Exception:  # noqa: BLE001 (deleted already)
                pass
        try:
            _alter_broker(admin, ids[expiring], {"leader.replication.throttled.rate": None})
        except Exception:  # noqa: BLE001 (removed already)
            pass
    # an alert already firing when its fault's clock starts (the certificate's file is written during the
    # run, which is timed from its end) counts 0 s
    figures = {a: {"bound_s": round(bound[a], 1),
                   "fired_after_s": None if a not in watch.fired else round(max(0.0, watch.fired[a] - faults[a]), 1),
                   "resolved_after_s": None if a not in watch.resolved
                   else round(max(0.0, watch.resolved[a] - watch.undone[a]), 1)}
               for a in expected}
    for a in figures:
        figures[a]["dropped_while_fault_on_after_s"] = None if a not in watch.dropped \
            else round(watch.dropped[a] - watch.fired[a], 1)
    figures["_broker_serving_after_start_s"] = round(serving - started, 1)
    figures["_prometheus_poll_errors"] = watch.errors
    record("alerts", figures)
    late = {a: f for a, f in figures.items() if not a.startswith("_") and (
        f["fired_after_s"] is None or f["fired_after_s"] > f["bound_s"]
        or f["resolved_after_s"] is None or f["resolved_after_s"] > f["bound_s"])}
    assert not late, late
    # an alert goes on firing while its fault is there (a broker down elsewhere does not blind the others)
    assert not watch.dropped, {a: figures[a] for a in watch.dropped}
    assert not lag.errors, lag.errors[:5]


def _committed(client_conf, group):
    """Whether the group committed an offset yet, read as kafka-metal reads it (librdkafka's own call can crash
    the process on a group it does not know yet or whose coordinator moves)."""
    failed = {}
    offsets = groups_kafka.Groups(client_conf, timeout=10).committed([group], failed)
    return any(o > 0 for o in offsets.get(group, {}).values())


def _alter_broker(admin, broker, settings):
    from confluent_kafka import admin as ck_admin

    ops = [ck_admin.ConfigEntry(k, v, incremental_operation=ck_admin.AlterConfigOpType.SET if v is not None
                                else ck_admin.AlterConfigOpType.DELETE) for k, v in settings.items()]
    resource = ck_admin.ConfigResource(ck_admin.ResourceType.BROKER, str(broker), incremental_configs=ops)
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)


def _wait_serving(cluster, host, since, timeout=180):
    import socket

    deadline = since + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection((cluster["address"][host], 9092), timeout=2):
                return time.time()
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{host} does not serve {timeout} s after its start")


def _groups(report):
    return {g["group"]: g for g in report["snapshot"].get("groups") or []}


def _group_lag_seconds(report, group):
    groups = _groups(report)
    assert group in groups, f"group {group} not in the status report: {sorted(groups)[:20]}"
    return float(groups[group]["seconds"] or 0.0)


def _has_group(report, group):
    return group in _groups(report)


def _negative_lags(report):
    return [(g["group"], p) for g in _groups(report).values() for p in g["partitions"]
            if p.get("lag") is not None and p["lag"] < 0]


def test_scrape_and_status_at_2000_partitions_and_200_groups(prometheus, monitor, cluster, status_server, bootstrap,
                                                              client_conf):
    from confluent_kafka import ConsumerGroupTopicPartitions, Producer, TopicPartition
    from confluent_kafka import admin as ck_admin

    client_conf = dict(client_conf, **{"bootstrap.servers": bootstrap})
    admin = ck_admin.AdminClient(client_conf)
    groups = [f"monitoring-scale-{i:03d}" for i in range(SCALE_GROUPS)]
    broker = cluster["brokers"][0]
    try:
        deadline = time.time() + 120
        while SCALE_TOPIC in admin.list_topics(timeout=30).topics:  # an earlier run's, still being deleted
            assert time.time() < deadline, f"{SCALE_TOPIC} is left from an earlier run and is not deleted"
            admin.delete_topics([SCALE_TOPIC], operation_timeout=60)
            time.sleep(3)
        start = time.monotonic()
        futures = admin.create_topics([ck_admin.NewTopic(SCALE_TOPIC, SCALE_PARTITIONS, 3)], operation_timeout=300)
        futures[SCALE_TOPIC].result(330)
        _wait_isr_full(admin, [SCALE_TOPIC], timeout=600)
        created_s = time.monotonic() - start
        # one record in every partition, and each group committed before it on ten partitions: real lags and ages
        producer = Producer(dict(client_conf, **{"acks": "all", "linger.ms": 50}))
        for p in range(SCALE_PARTITIONS):
            producer.produce(SCALE_TOPIC, b"x" * 100, partition=p)
        assert producer.flush(120) == 0
        per_group = SCALE_PARTITIONS // SCALE_GROUPS
        for i, group in enumerate(groups):
            request = ConsumerGroupTopicPartitions(
                group, [TopicPartition(SCALE_TOPIC, p, 0) for p in range(i * per_group, (i + 1) * per_group)])
            admin.alter_consumer_group_offsets([request])[group].result(60)
        # the broker's agent, scraped from here as Prometheus does
        url = f"http://{cluster['address'][broker]}:9404/metrics"
        seconds, series = [], 0
        for _ in range(20):
            t0 = time.monotonic()
            with urllib.request.urlopen(url, timeout=30) as resp:
                body = resp.read().decode()
            seconds.append(time.monotonic() - t0)
            series = sum(1 for line in body.splitlines() if line and not line.startswith("#"))
        p95 = statistics.quantiles(seconds, n=20, method="inclusive")[18]
        in_prometheus = prometheus.query(
            f'max_over_time(scrape_duration_seconds{{job="kafka",instance="{broker}"}}[1m])')
        prom_max = float(in_prometheus["data"]["result"][0]["value"][1])
        runs = []
        for _ in range(3):
            proc, took = _status(status_server, bootstrap, "--json", timeout=300)
            assert proc.returncode in (0, 1), proc.stdout[-2000:] + proc.stderr[-2000:]
            runs.append(round(took, 2))
        report = json.loads(proc.stdout)
        seen = [g for g in groups if _has_group(report, g)]
        negative = _negative_lags(report)
        record("scale", {"partitions": SCALE_PARTITIONS, "replication_factor": 3, "groups": SCALE_GROUPS,
                         "topic_created_and_in_sync_s": round(created_s, 1), "broker": broker, "series": series,
                         "scrape_s_p95": round(p95, 3), "scrape_s_max": round(max(seconds), 3),
                         "scrape_s_median": round(statistics.median(seconds), 3),
                         "prometheus_scrape_duration_max_1m_s": round(prom_max, 3),
                         "status_s": runs, "status_s_median": statistics.median(runs),
                         "groups_reported": len(seen)})
        assert len(seen) == SCALE_GROUPS
        assert not negative, negative[:5]
        assert p95 <= 1.0, seconds
        assert statistics.median(runs) <= 5.0, runs
    finally:
        admin.delete_consumer_groups(groups, request_timeout=60)
        admin.delete_topics([SCALE_TOPIC], operation_timeout=60)
