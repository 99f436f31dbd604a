# Copyright: kafka-metal contributors
# Apache License 2.0
"""The reads behind ``kafka-metal status``: a snapshot of the cluster for the rules of :mod:`status`.

confluent-kafka's admin client gives the metadata, topic and broker configs and the consumer groups (through
:class:`moving_kafka.Cluster` and :class:`groups_kafka.Groups`, which keep their clients for as long as this
reader lives); the project's wire client gives what confluent-kafka has no API for: ApiVersions, the KRaft
quorum, the brokers with their fencing (DescribeCluster v2, Kafka 4.0+), the reassignments in flight and the
log directories. Certificates are read with a TLS handshake per broker, with the client settings' CA.

Nothing here raises on a cluster that cannot be read: the snapshot says so (``error`` for the whole,
``problems`` for a part), and the rules give UNKNOWN or a WARNING.
"""

from __future__ import annotations

import concurrent.futures
import copy
import socket
import ssl
import threading
import time

from . import groups_kafka, kafka_admin, moving_kafka, status, wire
from . import lag as lag_rules

CONFIG_BATCH = 200  # topics per DescribeConfigs request
AGES_TIMEOUT = 3.0  # seconds to read the age of the records lagging groups have yet to read
STALE_SECONDS = 120.0  # how long --serve keeps figures it could not read again (a broker away)
CARRIED = ("reassignments", "throttles", "certificates")  # parts --serve carries over a read that missed them
MIN_BACKGROUND_PERIOD = 1.0  # seconds between two background reads of an exporter, whatever --cache says


class StatusError(Exception):
    """The reader cannot be set up (settings it cannot follow, a missing package); the message says why."""


def secrets_of(conf):
    """The secret values of a client configuration (to mask in anything shown)."""
    return kafka_admin.secret_values({}, [v for k, v in conf.items() if "password" in k or k == "sasl.jaas.config"])


def _short(exc):
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]


class Reader:
    """Reads snapshots of one cluster. ``groups``: read the consumer groups; ``samples`` reads of their offsets
    ``interval`` seconds apart make a group's verdict (with ``history``, :meth:`read` takes one sample each time
    and judges the last ``samples`` reads instead of sleeping)."""

    def __init__(self, conf, timeout=10.0, expected_brokers=None, groups=True, samples=2, interval=1.0,
                 history=False):
        self.conf = dict(conf)
        self.timeout = timeout
        self.expected = sorted(set(expected_brokers)) if expected_brokers else None
        self.samples, self.interval, self.history = max(1, samples), interval, history
        self._start_history()
        self.want_groups = groups
        try:
            self.security = wire.security_from_client_config(self.conf)
            self._clients()
        except (ValueError, moving_kafka.ClusterError, groups_kafka.GroupError) as exc:
            raise StatusError(str(exc)) from None
        except Exception as exc:
            if type(exc).__name__ != "KafkaException":  # librdkafka refusing the settings
                raise
            raise StatusError("the client settings are refused: " + kafka_admin.redact(
                _short(exc), secrets_of(self.conf))) from None
        self.bootstrap = self.conf.get("bootstrap.servers", "")

    def _start_history(self):
        """What a reader keeps from one read to the next (used with ``history``)."""
        self.series = {}  # group -> [lag.Sample], oldest first
        self.judged = {}  # group -> (its last judged figures, monotonic time)
        self.stamps = {}  # ((topic, partition), offset) -> the record's timestamp in seconds
        self.parts = {}  # area -> (its last figures, monotonic time)
        self.broker_dirs = {}  # broker -> (its log directories when it last answered, monotonic time)
        self.broker_throttles = {}  # broker -> (its throttle settings when it was last asked, monotonic time)
        self.throttles_asked = None  # the brokers the throttles of this read were asked of
        self.renew = False  # new clients before the next read

    def _clients(self):
        self.cluster = moving_kafka.Cluster(self.conf, self.timeout)
        self.groups = groups_kafka.Groups(self.conf, self.timeout) if self.want_groups else None

    # the whole

    def read(self, sleep=time.sleep):
        """A snapshot (see :mod:`status`); never raises for what the cluster answers or does not. A reader that
        keeps its clients (``history``) and cannot read the cluster tries once more with new clients: a client
        that lived through a broker's restart can wait on that broker for its whole timeout, where a new one
        bootstraps from any broker that answers."""
        if self.renew:  # the last read missed parts: a client that lived through a broker's restart can stay
            self.renew = False  # stuck on it (librdkafka), where a new one asks the brokers that answer now
            try:
                self._clients()
            except (moving_kafka.ClusterError, groups_kafka.GroupError):
                pass
        snap = self._read_once(sleep)
        if snap["error"] and self.history:
            try:
                self._clients()
            except (moving_kafka.ClusterError, groups_kafka.GroupError):
                return snap
            again = self._read_once(sleep)
            again["duration_seconds"] = round(again["duration_seconds"] + snap["duration_seconds"], 3)
            snap = again
        if self.history and not snap["error"]:
            self.renew = bool(snap["problems"])
            self._carry(snap, time.monotonic())
        return snap

    def _carry(self, snap, clock):
        """A long-running reader's parts that could not be read this time (a broker down or restarting does not
        answer for its throttles, its log directories) keep the figures of their last read for up to
        STALE_SECONDS, said in a problem: their series, and the alerts on them, must not vanish while one
        broker is away."""
        for area in CARRIED:
            if snap.get(area) is not None:
                self.parts[area] = (copy.deepcopy(snap[area]), clock)
            elif area in self.parts and clock - self.parts[area][1] <= STALE_SECONDS:
                snap[area] = self.parts[area][0]
                self._problem(snap, area, f"figures of an earlier read ({clock - self.parts[area][1]:.0f} s old)")
        throttles = snap.get("throttles")
        # the cluster's brokers, those away included: before 4.0 a stopped broker leaves the broker list, but it
        # still holds its replicas
        registered = {b.get("id") for b in snap.get("brokers") or ()} | {
            r for p in snap.get("partitions") or () for r in p.get("replicas") or ()}
        asked, self.throttles_asked = self.throttles_asked, None
        if throttles is not None and asked is not None:  # a broker away keeps its throttles of its last answer
            brokers = throttles.setdefault("brokers", {})
            held = self._held(snap, "throttles", self.broker_throttles, {b: brokers.get(str(b)) for b in asked},
                              registered, clock)
            brokers.update({str(b): conf for b, conf in held.items()})
        dirs = snap.get("log_dirs")
        if dirs is not None:  # a broker that did not answer keeps its directories of its last answer
            fresh = {}
            for d in dirs:
                fresh.setdefault(d["broker"], []).append(d)
            held = self._held(snap, "log_dirs", self.broker_dirs, fresh, registered, clock)
            snap["log_dirs"] = sorted(dirs + [d for entries in held.values() for d in entries],
                                      key=lambda d: (d["broker"], d["path"]))

    def _held(self, snap, area, store, fresh, registered, clock):
        """Per broker: ``fresh`` ({broker: figures}, from the brokers that answered) goes into ``store``; returns
        the last figures of the registered brokers that did not answer, for up to STALE_SECONDS, each named in a
        problem of ``area``."""
        store.update({b: (figures, clock) for b, figures in fresh.items()})
        held = {}
        for broker, (figures, at) in sorted(store.items()):
            if broker not in fresh and broker in registered and figures and clock - at <= STALE_SECONDS:
                held[broker] = figures
                self._problem(snap, area, f"broker {broker}: figures of an earlier read ({clock - at:.0f} s old)")
        return held

    def _read_once(self, sleep):
        started, t0 = time.time(), time.monotonic()
        snap = {"bootstrap": self.bootstrap, "read_at": started, "error": None, "problems": {},
                "expected_brokers": self.expected, "groups_skipped": self.groups is None}
        try:
            self._read(snap, sleep)
        except Exception as exc:  # noqa: BLE001 - whatever happened, the cluster was not read
            snap["error"] = _short(exc)
        snap["problems"] = {k: v for k, v in snap["problems"].items() if v}
        snap["duration_seconds"] = round(time.monotonic() - t0, 3)
        return snap

    def _problem(self, snap, area, text):
        snap["problems"].setdefault(area, []).append(text)

    def _read(self, snap, sleep):
        versions, (host, port) = self._api_versions()
        view = self.cluster.view(sizes=False)
        snap["cluster_id"] = self.cluster.cluster_id()
        group_result = {}
        worker = None
        if self.groups is not None:  # the slow part (it sleeps between samples) runs beside the others
            worker = threading.Thread(target=self._groups_into, args=(group_result, sleep), daemon=True)
            worker.start()
        try:
            try:
                self._brokers(snap, versions, host, port)
            except (OSError, wire.ProbeError) as exc:
                snap["brokers"] = None
                self._problem(snap, "brokers", f"DescribeCluster: {_short(exc)}")
            self._quorum(snap, versions, host, port)
            self._partitions(snap, view)
            self._part(snap, "reassignments", self._reassignments)
            self._part(snap, "throttles", self._throttles)
            self._log_dirs(snap, view)
            self._certificates(snap)
        finally:
            if worker is not None:
                worker.join()
        if self.groups is not None:
            if "error" in group_result:
                self._problem(snap, "groups", group_result["error"])
            for text in group_result.get("problems") or ():
                self._problem(snap, "groups", text)
            snap["groups"] = group_result.get("groups")

    def _part(self, snap, area, call):
        try:
            snap[area] = call()
        except Exception as exc:  # noqa: BLE001 - one part unread is reported, the rest still judged
            snap[area] = None
            self._problem(snap, area, _short(exc))

    def _api_versions(self):
        """ApiVersions from the first bootstrap server that answers, with who answered."""
        errors = []
        for host, port in wire.bootstrap_pairs(self.bootstrap):
            try:
                return wire.api_versions(host, port, min(self.timeout, 10.0), self.security), (host, port)
            except (OSError, wire.ProbeError) as exc:
                errors.append(f"{host}:{port}: {_short(exc)}")
        raise wire.ProbeError("no bootstrap server answered: " + "; ".join(errors))

    # the areas

    def _brokers(self, snap, versions, host, port):
        if versions.get(wire.DESCRIBE_CLUSTER, (0, -1))[1] >= 2:
            described = wire.describe_cluster_v2(host, port, self.timeout, self.security)
            snap["brokers_source"] = "DescribeCluster v2"
            snap["brokers"] = described["brokers"]
        else:
            described = wire.metadata(host, port, self.timeout, self.security)
            snap["brokers_source"] = "metadata"
            snap["brokers"] = [{"id": b["node_id"], "host": b["host"], "port": b["port"], "rack": b["rack"],
                                "fenced": False} for b in sorted(described["brokers"], key=lambda b: b["node_id"])]
        snap["controller_id"] = described["controller_id"]

    def _quorum(self, snap, versions, host, port):
        if wire.DESCRIBE_QUORUM not in versions:
            snap["mode"], snap["quorum"] = "zookeeper", None
            return
        snap["mode"] = "kraft"
        try:
            quorum = wire.describe_quorum(host, port, self.timeout, self.security)
        except (OSError, wire.ProbeError) as exc:
            snap["quorum"] = None
            self._problem(snap, "quorum", f"DescribeQuorum: {_short(exc)}")
            return
        for voter in quorum["voters"]:
            voter["lag_records"] = status.voter_lag(quorum, voter)
        snap["quorum"] = quorum

    def _partitions(self, snap, view):
        topics = sorted({t for t, _ in view["assignment"]})
        min_isr = self._min_isr(snap, topics)
        snap["partitions"] = [{"topic": t, "partition": p, "replicas": view["assignment"][(t, p)],
                               "isr": view["isr"][(t, p)], "leader": view["leaders"][(t, p)],
                               "min_isr": min_isr.get(t)} for t, p in sorted(view["assignment"])]

    def _min_isr(self, snap, topics):
        """{topic: its effective min.insync.replicas}, the topics asked in batches, all batches at once."""
        from confluent_kafka.admin import ConfigResource, ResourceType

        futures = {}
        for i in range(0, len(topics), CONFIG_BATCH):
            batch = [ConfigResource(ResourceType.TOPIC, t) for t in topics[i:i + CONFIG_BATCH]]
            futures.update(self.cluster.admin.describe_configs(batch, request_timeout=self.timeout))
        out, failed = {}, []
        for resource, future in futures.items():
            try:
                entry = future.result(timeout=self.timeout + 5).get("min.insync.replicas")
                out[resource.name] = int(entry.value) if entry is not None and entry.value else 1
            except Exception as exc:  # noqa: BLE001 - named in the problem
                failed.append(f"{resource.name} ({_short(exc)})")
        if failed:
            self._problem(snap, "partitions", "min.insync.replicas of " + status.listed(failed, str))
        return out

    def _throttles(self):
        self.throttles_asked = None
        out = self.cluster.throttles()
        self.throttles_asked = set(self.cluster.broker_ids())  # a broker away is not asked for its own settings
        return out

    def _reassignments(self):
        moving = self.cluster.in_flight()
        return [{"topic": t, "partition": p, **m} for (t, p), m in sorted(moving.items())]

    def _log_dirs(self, snap, view):
        brokers = [b["id"] for b in snap["brokers"] if not b.get("fenced")] if snap.get("brokers") is not None \
            else sorted(view["brokers"])
        answered = self.cluster.log_dirs(brokers)
        snap["log_dirs"] = [{"broker": b, "path": d["path"], "total_bytes": d["total_bytes"],
                             "usable_bytes": d["usable_bytes"], "error": d["error"]}
                            for b, dirs in sorted(answered.items()) for d in dirs]
        silent = sorted(set(brokers) - set(answered))
        if silent:
            self._problem(snap, "log_dirs", f"DescribeLogDirs: no answer from broker(s) {status.ids_text(silent)}")

    def _certificates(self, snap):
        if not self.security.tls:
            snap["certificates"] = None
            return
        endpoints = sorted({(b["host"], b["port"]) for b in snap.get("brokers") or ()})
        certs = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, max(1, len(endpoints)))) as pool:
            jobs = {pool.submit(peer_certificate, h, p, self.security, self.timeout): (h, p) for h, p in endpoints}
            for job in concurrent.futures.as_completed(jobs):
                host, port = jobs[job]
                try:
                    certs.append({"endpoint": f"{host}:{port}", "kind": "node", **job.result()})
                except (OSError, ValueError) as exc:
                    self._problem(snap, "certificates", f"TLS handshake with {host}:{port}: {_short(exc)}")
        ca = self.security.ca_file
        if ca:
            try:
                certs.append({"endpoint": ca, "kind": "ca", **ca_certificate(ca)})
            except (OSError, ValueError) as exc:
                self._problem(snap, "certificates", f"CA file {ca}: {_short(exc)}")
        snap["certificates"] = sorted(certs, key=lambda c: (c["kind"], c["endpoint"]))

    def _groups_into(self, result, sleep):
        try:
            result["groups"], result["problems"] = self._group_lags(sleep)
        except Exception as exc:  # noqa: BLE001 - reported as a part that could not be read
            result["error"] = _short(exc)

    def _group_lags(self, sleep):
        """(the judged groups, problems). A broker that is down or moving its group coordinators leaves groups
        out of the list or unread; with ``history`` a group seen before is still asked for, and one that cannot
        be read keeps its last figures for up to STALE_SECONDS (said in a problem), so that its series,
        and an alert on them, do not vanish while one broker is away."""
        listed, list_errors = self.groups.listing()
        names = [g["group"] for g in listed]
        problems = []
        if list_errors:
            problems.append("the group list is incomplete (" + "; ".join(_short(e) for e in list_errors[:3]) + ")")
            if self.history:
                names = sorted(set(names) | set(self.series))
        failed = {}
        if self.history:
            now, failed = self.groups.sample_each(names)
            self.series = {g: (self.series.get(g, []) + [now[g]])[-self.samples:] if g in now else self.series[g]
                           for g in names if g in now or g in self.series}
            series = {g: self.series[g] for g in now}
        else:
            series = {g: [] for g in names}
            for i in range(self.samples):
                if i:
                    sleep(self.interval)
                now, missed = self.groups.sample_each([g for g in names if g not in failed])
                failed.update(missed)
                for g, sample in now.items():
                    series[g].append(sample)
            series = {g: s for g, s in series.items() if g not in failed and s}
        lasts = {g: s[-1] for g, s in series.items()}
        ages = lag_rules.group_ages(lasts, self._stamps(lag_rules.waiting(lasts)), time.time())
        judged = {g: lag_rules.judge(g, series[g], ages[g]).as_dict() for g in series}
        clock = time.monotonic()
        if self.history:  # a group not read now keeps its figures of its last read, for a while
            kept = {g: self.judged[g] for g in failed
                    if g in self.judged and clock - self.judged[g][1] <= STALE_SECONDS}
            self.judged = {**kept, **{g: (figures, clock) for g, figures in judged.items()}}
            judged.update({g: figures for g, (figures, _) in kept.items()})
            if kept:
                problems.append("figures of an earlier read for " + status.listed(
                    [f"{g} ({clock - at:.0f} s old)" for g, (_, at) in sorted(kept.items())], str))
        if failed:
            problems.append("not read: " + status.listed([f"{g} ({_short(w)})" for g, w in sorted(failed.items())],
                                                         str))
        return [judged[g] for g in sorted(judged)], problems

    def _stamps(self, positions):
        """{((topic, partition), offset): timestamp} of the records at ``positions``; the timestamp of a record
        never changes, so a reader with ``history`` reads each position's once while a group is held there."""
        known = {pos: self.stamps[pos] for pos in positions if pos in self.stamps}
        unread = [pos for pos in positions if pos not in known]
        read = self.groups.stamps(unread, timeout=min(self.timeout, AGES_TIMEOUT)) if unread else {}
        if self.history:  # kept while a group of the history (read now or not) is still at that offset
            held = {(tp, o) for s in self.series.values() for tp, o in s[-1].committed.items()}
            self.stamps = {pos: stamp for pos, stamp in {**self.stamps, **read}.items() if pos in held}
        return {**known, **read}


def peer_certificate(host, port, security, timeout):
    """{"not_after", "subject", "error"} of the certificate the listener at host:port presents. The handshake
    verifies it with the client's CA (and name); one that does not verify is read again without verification,
    to say when it expires, with ``error`` saying why it does not verify."""
    try:
        der, error = _handshake(host, port, security.ssl_context(), security, timeout), None
    except ssl.SSLCertVerificationError as exc:
        error = exc.verify_message or _short(exc)
        context = security.ssl_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        der = _handshake(host, port, context, security, timeout)
    cert = _x509().load_der_x509_certificate(der)
    return {"not_after": cert.not_valid_after_utc.timestamp(), "subject": cert.subject.rfc4514_string(),
            "error": error}


def _handshake(host, port, context, security, timeout):
    with socket.create_connection((host, port), timeout=timeout) as raw, \
            context.wrap_socket(raw, server_hostname=security.server_hostname or host) as tls:
        return tls.getpeercert(binary_form=True)


def ca_certificate(path):
    """{"not_after", "subject", "error"} of the CA certificate in ``path`` that expires first."""
    with open(path, "rb") as handle:
        certs = _x509().load_pem_x509_certificates(handle.read())
    first = min(certs, key=lambda c: c.not_valid_after_utc)
    return {"not_after": first.not_valid_after_utc.timestamp(), "subject": first.subject.rfc4514_string(),
            "error": None}


def _x509():
    try:
        from cryptography import x509
    except ImportError as exc:  # ansible-core depends on cryptography; a bare Python may lack it
        raise ValueError(f"the Python package cryptography is missing ({exc}): pip install cryptography") from None
    return x509


class Scraper:
    """Serves snapshots to concurrent scrapes: one read at a time (a lock), a snapshot reused for ``cache``
    seconds, and the group verdicts judged over the previous reads (the reader's history).

    After :meth:`start` the reads happen in the background, one every ``cache`` seconds, and a scrape answers at
    once with the latest snapshot: a read held up by a broker that just went away (up to the timeout) then
    makes the figures a little older instead of failing the scrape, which would drop every series and with
    them the alerts that were firing."""

    def __init__(self, reader, cache=5.0, clock=time.monotonic):
        self.reader, self.cache, self.clock = reader, cache, clock
        self.lock = threading.Lock()
        self._last, self._at = None, None
        self._first = threading.Event()
        self._stop = threading.Event()
        self._thread = None

    def _read(self):
        try:
            return self.reader.read()
        except Exception as exc:  # noqa: BLE001 - the exporter keeps answering; up 0 says why
            return {"bootstrap": getattr(self.reader, "bootstrap", None), "error": _short(exc),
                    "duration_seconds": 0.0}

    def start(self):
        def loop():
            while not self._stop.is_set():
                snap = self._read()
                with self.lock:
                    self._last, self._at = snap, self.clock()
                self._first.set()
                self._stop.wait(max(self.cache, MIN_BACKGROUND_PERIOD))

        self._thread = threading.Thread(target=loop, name="kafka-metal-status-reader", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()

    def snapshot(self):
        if self._thread is not None:
            self._first.wait()
            with self.lock:
                snap = dict(self._last)
                snap["age_seconds"] = round(max(0.0, self.clock() - self._at), 3)
                return snap
        with self.lock:
            if self._last is None or self.clock() - self._at > self.cache:
                self._last, self._at = self.reader.read(), self.clock()
            return self._last


def _reader_process(conn, conf, options):
    """The child of :class:`IsolatedReader`: one :class:`Reader` for its life, a snapshot per request."""
    try:
        reader = Reader(conf, **options)
    except StatusError as exc:
        conn.send({"error": str(exc)})
        return
    conn.send({"ready": True})
    while True:
        try:
            if conn.recv() is None:
                return
        except EOFError:
            return
        conn.send(reader.read())


class IsolatedReader:
    """A :class:`Reader` in a child process of its own, for a long-running exporter.

    librdkafka, under confluent-kafka, can abort the whole process on an internal assertion when brokers come
    and go under long-lived admin clients (seen here: ``rd_kafka_enq_once_del_source_return``). The child keeps
    its clients between reads, as a Reader does; when it dies or does not answer within ``limit`` seconds it is
    replaced, the read says why (``error``: a scrape with kafka_metal_status_up 0), and the next read works
    again. The group verdicts start their history afresh in a new child."""

    def __init__(self, conf, limit=120.0, **options):
        import multiprocessing

        self.conf, self.options, self.limit = dict(conf), options, limit
        self.bootstrap = self.conf.get("bootstrap.servers", "")
        self._context = multiprocessing.get_context("spawn")
        self._child, self._conn, self.restarts = None, None, 0

    def start(self):
        """Start the child and wait until its reader is set up (StatusError says why it cannot be)."""
        parent, child = self._context.Pipe()
        process = self._context.Process(target=_reader_process, args=(child, self.conf, self.options),
                                        name="kafka-metal-status-reader", daemon=True)
        process.start()
        child.close()
        if not parent.poll(self.limit):
            self._stop(process, parent)
            raise StatusError(f"the reader process did not start within {self.limit:g} s")
        hello = parent.recv()
        if "error" in hello:
            self._stop(process, parent)
            raise StatusError(hello["error"])
        self._child, self._conn = process, parent

    @staticmethod
    def _stop(process, conn):
        conn.close()
        if process.is_alive():
            process.kill()
        process.join(5)

    def close(self):
        if self._child is not None:
            try:
                self._conn.send(None)
            except (OSError, EOFError):
                pass
            self._stop(self._child, self._conn)
            self._child = None

    def read(self):
        t0 = time.monotonic()
        if self._child is None:
            self.start()
        try:
            self._conn.send(True)
            if self._conn.poll(self.limit):
                return self._conn.recv()
            why = f"the reader process gave no answer within {self.limit:g} s"
        except (OSError, EOFError):
            why = None
        self._child.join(1)
        code = self._child.exitcode
        if why is None:
            why = f"the reader process ended ({f'signal {-code}' if code and code < 0 else f'exit {code}'})"
        self._stop(self._child, self._conn)
        self._child = None
        self.restarts += 1
        return {"bootstrap": self.bootstrap, "error": why + "; a new one reads next time",
                "duration_seconds": round(time.monotonic() - t0, 3)}
