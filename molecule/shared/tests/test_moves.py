"""Moving data between brokers under load, on lab hosts (scenario `moves`).

One controller (node1) and brokers node2..node5 run Kafka 4.x; node6 joins during the checks. About 80 MB of
records (three replicas each) lie in a data topic, and `kafka_metal.load` produces and consumes all the time
(acks=all, idempotent, RF 3, min.insync.replicas=2). Every move runs through the `kafka-metal` command line
under a 1 MB/s replication throttle. A sampler reads the cluster every second: no partition may be under
min ISR, no leader may be outside its in-sync set, and every replica being added is recorded, so the bytes
moved are counted from what Kafka did (a partition copied twice would be counted twice), not from the tool's
report. The checks run in order, each from the state the last one left:

1. a drain of node5 stopped half way, then ``--abort``: every replica set as before, throttles gone, in 60 s;
2. a drain of node5 killed (SIGKILL) half way and run again: it finishes; bytes moved <= 1.05 x what node5
   held (Kafka's ``kafka-reassign-partitions --generate`` on the same state is recorded beside it);
3. node6 added by site.yml with a larger inventory, then ``rebalance``: replica counts within 10 % and bytes
   within 15 %, bytes moved <= 1.1 x the least any plan could move to reach that;
4. ``broker remove 5``: a topic created meanwhile ends with no replica on it; time <= 1.2 x T* + 30 s; node5
   stopped, unregistered and holding nothing;
5. the data and metadata directories of the broker holding the most wiped (its disks replaced), and
   ``broker rebuild``: full ISR within 0.8-1.2 x bytes / (throttle - write rate) + 30 s of its start, leadership
   given back; the rebuild playbook run again changes nothing.
Afterwards no throttle is left and every acknowledged record was read back exactly once. The figures go to
$KAFKA_METAL_FIGURES_DIR (default /tmp/kafka-metal-figures) for the notes.
"""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import testinfra
import yaml
from ansible_collections.metal.kafka.plugins.module_utils import moves, moving_kafka
from kafka_metal import REPO_ROOT, load

SCENARIO = os.environ.get("MOLECULE_SCENARIO_NAME", "")
pytestmark = pytest.mark.skipif(SCENARIO != "moves", reason="data moves are proven in the `moves` scenario")

KAFKA_METAL = str(Path(sys.executable).parent / "kafka-metal")
FIGURES = Path(os.environ.get("KAFKA_METAL_FIGURES_DIR", "/tmp/kafka-metal-figures"))
THROTTLE = 1_000_000
DATA_TOPIC, DATA_PARTITIONS, DATA_RECORDS, RECORD_BYTES = "moves-data", 12, 80_000, 1000
LOAD_TOPIC, LOAD_PARTITIONS, LOAD_RATE = "moves-load", 6, 100  # records/s of RECORD_BYTES
FRESH_TOPIC = "moves-fresh"
MIN_ISR = 2


def record(name, data):
    FIGURES.mkdir(parents=True, exist_ok=True)
    (FIGURES / f"moves-{name}.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    print(f"{name}: {json.dumps(data, sort_keys=True)}")


class Sampler:
    """Two threads reading the cluster every second: partitions under min ISR or led from outside their ISR
    (from the metadata, the lighter read, so that the samples keep their pace), and the replicas being added
    (from the reassignments in flight)."""

    def __init__(self, conf):
        from confluent_kafka.admin import AdminClient

        self.admin = AdminClient(conf)
        self.cluster = moving_kafka.Cluster(conf, timeout=10)
        self.lock = threading.Lock()
        self.samples = []  # monotonic time of every metadata sample read
        self.flight_samples = []  # and of every read of the reassignments in flight
        self.violations = []
        self.added = []  # (time, topic, partition, broker): a replica seen being added
        self.isr_full_at = {}  # broker -> first time (monotonic) every partition it has a replica of had it in sync
        self.watch_isr = None
        self.errors = []
        self.halt = threading.Event()
        self.threads = [threading.Thread(target=self._every_second, args=(f,), daemon=True)
                        for f in (self._metadata, self._reassignments)]

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self.halt.set()
        for t in self.threads:
            t.join(15)

    def _every_second(self, sample):
        while not self.halt.is_set():
            started = time.monotonic()
            try:
                sample()
            except Exception as exc:  # noqa: BLE001 - a broker restarting: recorded; the gaps are checked
                self.errors.append(f"{sample.__name__}: {exc}")
            self.halt.wait(max(0.0, 1.0 - (time.monotonic() - started)))

    def _metadata(self):
        md = self.admin.list_topics(timeout=5)
        now = time.monotonic()
        with self.lock:
            self.samples.append(now)
            holding = {}
            for topic in md.topics.values():
                if topic.error is not None:
                    continue
                for p in topic.partitions.values():
                    for b in p.replicas:
                        holding.setdefault(b, []).append(b in p.isrs)
                    if topic.topic.startswith("__"):
                        continue  # Kafka's own topics keep their own settings
                    name = f"{topic.topic}-{p.id}"
                    if len(p.isrs) < MIN_ISR:
                        self.violations.append((now, f"{name} in sync {p.isrs} (replicas {p.replicas})"))
                    if p.leader >= 0 and p.leader not in p.isrs:
                        self.violations.append((now, f"{name} led by {p.leader}, outside its ISR {p.isrs}"))
            broker = self.watch_isr
            if broker is not None and broker not in self.isr_full_at and holding.get(broker) and \
                    all(holding[broker]):
                self.isr_full_at[broker] = now

    def _reassignments(self):
        flight = self.cluster.in_flight()
        now = time.monotonic()
        with self.lock:
            self.flight_samples.append(now)
            for tp, r in flight.items():
                self.added.extend((now, tp[0], tp[1], b) for b in r["adding"])

    def added_since(self, start):
        """Every replica (topic, partition, broker) seen being added since ``start`` (monotonic)."""
        with self.lock:
            return {(t, p, b) for when, t, p, b in self.added if when >= start}

    def longest_gap(self, which="samples"):
        with self.lock:
            times = getattr(self, which)
            return max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)


@pytest.fixture(scope="module")
def moving_cluster(cluster, client_conf):
    """The cluster with its data written, the load running and the sampler sampling; at the end, the load's
    records all read back and no sample out of bounds."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    brokers = [f"{cluster['address'][h]}:9092" for h in cluster["brokers"]]
    conf = {**client_conf, "bootstrap.servers": ",".join(brokers)}
    admin = AdminClient(conf)
    admin.create_topics([NewTopic(DATA_TOPIC, DATA_PARTITIONS, 3, config={"min.insync.replicas": str(MIN_ISR)})]
                        )[DATA_TOPIC].result(60)
    producer = Producer({**conf, "acks": "all", "enable.idempotence": True, "linger.ms": 50,
                         "batch.size": 1_000_000, "compression.type": "none"})
    payload = os.urandom(RECORD_BYTES)  # incompressible: the bytes on disk are the bytes written
    started = time.monotonic()
    for i in range(DATA_RECORDS):
        while True:
            try:
                producer.produce(DATA_TOPIC, key=str(i).encode(), value=payload)
                break
            except BufferError:
                producer.poll(0.1)
        if i % 1000 == 0:
            producer.poll(0)
    assert producer.flush(300) == 0
    print(f"{DATA_RECORDS * RECORD_BYTES / 1e6:.0f} MB written in {time.monotonic() - started:.0f} s")
    work = load.Load(",".join(brokers), topic=LOAD_TOPIC, extra=client_conf, rate=LOAD_RATE,
                     partitions=LOAD_PARTITIONS, replication_factor=3, min_isr=MIN_ISR,
                     payload_bytes=RECORD_BYTES).start()
    sampler = Sampler(conf)
    sampler.start()
    time.sleep(5)
    yield {"conf": conf, "bootstrap": ",".join(brokers), "sampler": sampler, "load": work,
           "cluster": moving_kafka.Cluster(conf)}
    sampler.stop()
    report = work.stop(drain_timeout=300)
    print(report.summary())
    record("load", {"summary": report.summary(), "samples": len(sampler.samples),
                    "longest_gap_between_samples": round(sampler.longest_gap(), 1),
                    "longest_gap_between_reassignment_reads": round(sampler.longest_gap("flight_samples"), 1),
                    "sampler_errors": sampler.errors[:20]})
    assert report.acked > 5_000 and report.ok, "; ".join(report.problems())
    assert not sampler.violations, sampler.violations[:10]
    # a sample every second, give or take a slow answer while a broker stops
    assert len(sampler.samples) > 100 and sampler.longest_gap() <= 6, (len(sampler.samples), sampler.longest_gap())
    # an added replica stays "adding" until it is in sync, which takes longer than these gaps: none is missed
    assert sampler.longest_gap("flight_samples") <= 15, sampler.longest_gap("flight_samples")


def kafka_metal(ctx, *args, tmp, inventory=None, timeout=1800, background=False):
    argv = [KAFKA_METAL, *args, "--bootstrap-server", ctx["bootstrap"], "--state-dir", str(tmp / "state")]
    if inventory:
        argv += ["-i", str(inventory)]
    env = dict(os.environ)
    env.pop("ANSIBLE_VERBOSITY", None)
    if background:
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
    print(proc.stdout[-8000:])
    print(proc.stderr[-4000:], file=sys.stderr)
    return proc


def dry_run(ctx, tmp, *args):
    proc = kafka_metal(ctx, *args, "--throttle", str(THROTTLE), "--dry-run", "--json", tmp=tmp)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    info["plan"] = [moves.Move(m["topic"], m["partition"], m["before"], m["after"], m["size"])
                    for m in info["moves"]]
    return info


def load_write_rate(partitions):
    """Bytes per second the load writes into these partitions."""
    return sum(LOAD_RATE * RECORD_BYTES / LOAD_PARTITIONS for tp in partitions if tp[0] == LOAD_TOPIC)


def t_star(plan, leaders, leaving=()):
    """The largest, over brokers, of the bytes each must receive or send, over the throttle less the rate at
    which the load writes into the partitions it receives or sends."""
    during = {}
    for m in plan:
        tp = (m.topic, m.partition)
        during[tp] = leaders.get(tp) if leaders.get(tp) not in set(leaving) else m.after[0]
    recv, send = moves.traffic(plan, during)
    worst = 0.0
    for b in set(recv) | set(send):
        parts = [(m.topic, m.partition) for m in plan if b in m.adding or (during[(m.topic, m.partition)] == b
                                                                          and m.adding)]
        worst = max(worst, max(recv.get(b, 0), send.get(b, 0)) / (THROTTLE - load_write_rate(parts)))
    return worst


def held_bytes(ctx, broker):
    dirs = ctx["cluster"].log_dirs([broker]).get(broker, [])
    return {tp: info["size"] for d in dirs for tp, info in d["partitions"].items()
            if not tp[0].startswith("__") and not info["future"]}


def moved_bytes(added, sizes):
    return sum(sizes.get((t, p), 0) for t, p, _ in added)


def assignment(ctx):
    return ctx["cluster"].view(sizes=False)["assignment"]


def no_throttles(ctx):
    return ctx["cluster"].throttles() == {"topics": {}, "brokers": {}}


def wait_copying(ctx, timeout=120):
    """Until reassignments are in flight (the copy has started)."""
    deadline = time.monotonic() + timeout
    while not ctx["cluster"].in_flight():
        assert time.monotonic() < deadline, "no reassignment started"
        time.sleep(0.5)
    return time.monotonic()


def inventory_with(cluster, inventory, name, brokers):
    """A copy of the scenario's inventory whose kafka_brokers group is ``brokers`` (the scenario's group_vars
    linked beside it), as an operator's inventory after adding or removing a broker."""
    source = Path(inventory)
    if source.is_dir():  # Molecule's inventory directory
        source = source / "ansible_inventory.yml"
    data = yaml.safe_load(source.read_text())

    def fix(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "kafka_brokers" and isinstance(value, dict):
                    value["hosts"] = {h: {} for h in brokers}
                else:
                    fix(value)
    fix(data)
    target = source.parent.parent / f"inventory-{name}"
    target.mkdir(exist_ok=True)
    (target / "hosts.yml").write_text(yaml.safe_dump(data))
    link = target / "group_vars"
    if not link.exists():
        link.symlink_to((source.parent / "group_vars").resolve())
    return target / "hosts.yml"


def test_drain_aborted_half_way_puts_every_replica_back(moving_cluster, tmp_path):
    ctx = moving_cluster
    before = assignment(ctx)
    info = dry_run(ctx, tmp_path, "broker", "drain", "5")
    bound = info["lower_bound_seconds"]
    proc = kafka_metal(ctx, "broker", "drain", "5", "--throttle", str(THROTTLE), tmp=tmp_path, background=True)
    wait_copying(ctx)
    time.sleep(bound / 2)
    proc.send_signal(signal.SIGINT)  # Ctrl-C: the command stops, the moves go on in Kafka
    out, _ = proc.communicate(timeout=120)
    print(out)
    assert proc.returncode == 130, out
    assert ctx["cluster"].in_flight(), "nothing was in flight when the command stopped"
    started = time.monotonic()
    aborted = kafka_metal(ctx, "broker", "drain", "5", "--abort", "--throttle", str(THROTTLE), tmp=tmp_path)
    took = time.monotonic() - started
    assert aborted.returncode == 0, aborted.stderr
    assert assignment(ctx) == before
    assert not ctx["cluster"].in_flight()
    assert no_throttles(ctx)
    record("abort", {"seconds": round(took, 1), "stopped_after_seconds": round(bound / 2, 1)})
    assert took <= 60


def test_drain_killed_half_way_resumes_copying_each_partition_once(moving_cluster, cluster, tmp_path):
    ctx = moving_cluster
    sampler = ctx["sampler"]
    held = held_bytes(ctx, 5)
    view = ctx["cluster"].view()
    info = dry_run(ctx, tmp_path, "broker", "drain", "5")
    mark = time.monotonic()
    proc = kafka_metal(ctx, "broker", "drain", "5", "--throttle", str(THROTTLE), tmp=tmp_path, background=True)
    wait_copying(ctx)
    time.sleep(info["lower_bound_seconds"] / 2)
    proc.kill()
    out, _ = proc.communicate(timeout=30)
    print(out)
    assert ctx["cluster"].in_flight(), "nothing was in flight when the command was killed"
    again = kafka_metal(ctx, "broker", "drain", "5", "--throttle", str(THROTTLE), tmp=tmp_path)
    assert again.returncode == 0, again.stderr
    time.sleep(2)
    added = sampler.added_since(mark)
    after = assignment(ctx)
    assert not any(5 in r for r in after.values())
    assert not held_bytes(ctx, 5)
    assert all(b != 5 for _, _, b in added)
    # a partition whose replica moved twice (to one broker, then another) would show both
    per_partition = {}
    for t, p, b in added:
        per_partition.setdefault((t, p), set()).add(b)
    twice = {tp: bs for tp, bs in per_partition.items() if len(bs) > 1}
    assert not twice, twice
    ratio = moved_bytes(added, view["sizes"]) / sum(held.values())
    record("drain-killed", {"bytes_held": sum(held.values()), "bytes_moved": moved_bytes(added, view["sizes"]),
                            "ratio": round(ratio, 4), "partitions_moved": len(per_partition),
                            "killed_after_seconds": round(info["lower_bound_seconds"] / 2, 1)})
    assert 0.95 <= ratio <= 1.05  # every replica the broker held was copied, once
    assert no_throttles(ctx)


def generate_ratio(cluster, view, held, staying):
    """Bytes Kafka's own `kafka-reassign-partitions --generate` would move to take node5 out (its plan for the
    brokers ``staying``), over the bytes node5 holds (run on a broker host, on the same state)."""
    topics = sorted({t for t, _ in view["assignment"] if not t.startswith("__")})
    host = cluster["testinfra"]["node2"]
    topics_json = json.dumps({"version": 1, "topics": [{"topic": t} for t in topics]})
    host.check_output(f"echo {shlex.quote(topics_json)} > /tmp/topics.json")
    out = host.check_output(
        "KAFKA_HEAP_OPTS=-Xmx128m /opt/kafka/current/bin/kafka-reassign-partitions.sh --bootstrap-server "
        "localhost:9092 --topics-to-move-json-file /tmp/topics.json --broker-list "
        f"{','.join(map(str, sorted(staying)))} --generate")
    proposed = json.loads(out.strip().splitlines()[-1])
    moved = 0
    for p in proposed["partitions"]:
        tp = (p["topic"], p["partition"])
        moved += view["sizes"].get(tp, 0) * len(set(p["replicas"]) - set(view["assignment"][tp]))
    return round(moved / sum(held.values()), 3)


def test_rebalance_after_a_broker_joins(moving_cluster, cluster, inventory, tmp_path):
    ctx = moving_cluster
    sampler = ctx["sampler"]
    grown = inventory_with(cluster, inventory, "grown", ["node2", "node3", "node4", "node5", "node6"])
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), str(REPO_ROOT / "site.yml"),
                           "-i", str(grown), "--limit", "node6"], capture_output=True, text=True,
                          cwd=REPO_ROOT, env={**os.environ, "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg")},
                          timeout=1200)
    print(proc.stdout[-4000:])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    deadline = time.monotonic() + 120
    while 6 not in ctx["cluster"].view(sizes=False)["brokers"]:
        assert time.monotonic() < deadline, "node6 did not register"
        time.sleep(1)
    view = ctx["cluster"].view()
    snapshot = moves.Snapshot(view["brokers"], view["assignment"], view["sizes"], view["free"])
    least = moves.rebalance_lower_bound(snapshot, 0.10, 0.15)
    info = dry_run(ctx, tmp_path, "rebalance")
    record("rebalance-input", {"brokers": sorted(view["brokers"]),
                               "partitions": [[t, p, r, view["sizes"].get((t, p), 0)]
                                              for (t, p), r in sorted(view["assignment"].items())],
                               "planned_bytes": info["bytes"]})
    mark = started = time.monotonic()
    run = kafka_metal(ctx, "rebalance", "--throttle", str(THROTTLE), tmp=tmp_path)
    took = time.monotonic() - started
    assert run.returncode == 0, run.stderr
    time.sleep(2)
    added = sampler.added_since(mark)
    after = ctx["cluster"].view()
    counts, nbytes = moves.Snapshot(after["brokers"], after["assignment"], after["sizes"]).load()
    moved = moved_bytes(added, view["sizes"])
    record("rebalance", {"bytes_moved": moved, "least_bytes": least, "ratio_to_least": round(moved / least, 4),
                         "replicas": counts, "bytes": nbytes, "spread_replicas": round(moves.spread(counts), 3),
                         "spread_bytes": round(moves.spread(nbytes), 3), "seconds": round(took, 1),
                         "lower_bound_seconds": info["lower_bound_seconds"]})
    assert moves.within(counts, nbytes, 0.10, 0.15), (counts, nbytes)
    assert moved <= 1.1 * least
    assert no_throttles(ctx)


def test_remove_keeps_a_new_topic_off_the_broker_and_unregisters_it(moving_cluster, cluster, inventory, tmp_path):
    from confluent_kafka.admin import AdminClient, NewTopic

    ctx = moving_cluster
    sampler = ctx["sampler"]
    held = held_bytes(ctx, 5)
    view = ctx["cluster"].view()
    info = dry_run(ctx, tmp_path, "broker", "drain", "5")  # the plan of the drain that remove starts with
    bound = t_star(info["plan"], view["leaders"], leaving=[5])
    generate = generate_ratio(cluster, view, held, [b for b in view["brokers"] if b != 5])
    mark = started = time.monotonic()
    grown = inventory_with(cluster, inventory, "grown", ["node2", "node3", "node4", "node5", "node6"])
    proc = kafka_metal(ctx, "broker", "remove", "5", "--throttle", str(THROTTLE), tmp=tmp_path, inventory=grown,
                       background=True)
    wait_copying(ctx)
    # a topic created while the broker drains: Kafka may place it on broker 5; the drain scans again
    admin = AdminClient(ctx["conf"])
    admin.create_topics([NewTopic(FRESH_TOPIC, 8, 3, config={"min.insync.replicas": "2"})])[FRESH_TOPIC].result(60)
    placed = assignment(ctx)
    out, _ = proc.communicate(timeout=1800)
    print(out)
    assert proc.returncode == 0, out
    assert "stopped and disabled on node5" in out and "registration removed" in out, out
    # the drain's own time, from the command's clock (its start to its "done" line; the stop and the
    # unregistration follow)
    took = float(re.search(r"^\[\s*([\d.]+)s\] done:", out, re.M).group(1))
    whole = time.monotonic() - started
    added = sampler.added_since(mark)
    after = assignment(ctx)
    fresh_on_5 = [p for (t, p), r in placed.items() if t == FRESH_TOPIC and 5 in r]
    record("remove", {"bytes_held": sum(held.values()), "bytes_moved": moved_bytes(added, view["sizes"]),
                      "ratio": round(moved_bytes(added, view["sizes"]) / sum(held.values()), 4),
                      "generate_ratio": generate,
                      "seconds": round(took, 1), "seconds_with_stop_and_unregister": round(whole, 1),
                      "t_star": round(bound, 1), "limit": round(1.2 * bound + 30, 1),
                      "fresh_partitions_placed_on_5": len(fresh_on_5)})
    assert not any(5 in r for r in after.values())
    assert not any(5 in r for (t, _), r in after.items() if t == FRESH_TOPIC)
    listed = cluster["testinfra"]["node2"].check_output(
        "KAFKA_HEAP_OPTS=-Xmx128m /opt/kafka/current/bin/kafka-cluster.sh list-endpoints --bootstrap-server "
        "localhost:9092 --include-fenced-brokers")
    ids = {int(m) for m in re.findall(r"^(\d+)\s", listed, re.M)}
    assert 5 not in ids and {2, 3, 4, 6} <= ids, listed
    node5 = cluster["testinfra"]["node5"]
    assert not node5.service("kafka").is_running and not node5.service("kafka").is_enabled
    left = node5.check_output("ls /var/lib/kafka/data")
    assert not [d for d in left.split() if re.match(r".+-\d+$", d) and not d.startswith("__")], left
    assert no_throttles(ctx)
    assert took <= 1.2 * bound + 30


def test_rebuild_of_a_broker_whose_disks_were_replaced(moving_cluster, cluster, inventory, tmp_path):
    ctx = moving_cluster
    sampler = ctx["sampler"]
    shrunk = inventory_with(cluster, inventory, "shrunk", ["node2", "node3", "node4", "node6"])
    before = assignment(ctx)
    # the broker holding the most (Kafka lets a throttle start with a burst of some seconds' worth of bytes;
    # the more there is to fetch, the less that burst weighs)
    broker = max((2, 3, 4, 6), key=lambda b: sum(held_bytes(ctx, b).values()))
    name = f"node{broker}"
    preferred = sorted(tp for tp, r in before.items() if r[0] == broker)
    held = held_bytes(ctx, broker)
    host = testinfra.get_host(f"ansible://{name}", ansible_inventory=str(shrunk))
    host.check_output("systemctl stop kafka && rm -rf /var/lib/kafka/data /var/lib/kafka/metadata")
    sampler.watch_isr = broker
    run = kafka_metal(ctx, "broker", "rebuild", str(broker), "--throttle", str(THROTTLE), tmp=tmp_path,
                      inventory=shrunk)
    finished = time.monotonic()
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr
    # the unit's start on the kernel's monotonic clock, which the lab hosts share with this machine
    started = float(host.check_output("systemctl show -p ActiveEnterTimestampMonotonic --value kafka")) / 1e6
    full = sampler.isr_full_at.get(broker, finished)
    took = full - started
    write = load_write_rate(list(held))
    expected = sum(held.values()) / (THROTTLE - write)
    record("rebuild", {"broker": broker, "bytes": sum(held.values()), "seconds_to_full_isr": round(took, 1),
                       "expected_seconds": round(expected, 1), "ratio": round(took / expected, 3),
                       "write_rate": write})
    after = ctx["cluster"].view(sizes=False)
    assert after["assignment"] == before
    assert all(set(after["isr"][tp]) == set(r) for tp, r in after["assignment"].items())
    assert all(after["leaders"][tp] == broker for tp in preferred)
    assert no_throttles(ctx)
    assert 0.8 * expected <= took <= 1.2 * expected + 30
    # no unclean election: the sampler saw no leader outside its ISR (checked at the end) and the controller
    # logged none
    log = cluster["testinfra"]["node1"].run("grep -ril 'unclean leader election' /var/log/kafka || true").stdout
    assert not log.strip(), log
    # the playbook on the rebuilt broker: a healthy broker is left alone, and nothing changes on its host
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"),
                           str(REPO_ROOT / "playbooks" / "broker_rebuild.yml"), "-i", str(shrunk),
                           "-e", json.dumps({"kafka_move_brokers": [broker]}), "-e", f"kafka_move_throttle={THROTTLE}"],
                          capture_output=True, text=True, cwd=REPO_ROOT,
                          env={**os.environ, "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg")}, timeout=1200)
    print(proc.stdout[-4000:])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    recap = proc.stdout[proc.stdout.rindex("PLAY RECAP"):]
    assert name in recap and not re.search(r"changed=[1-9]", recap), recap
    assert no_throttles(ctx)
