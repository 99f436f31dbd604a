"""``kafka-metal status``: is the cluster safe right now? One read of the quorum, brokers, partitions, moves,
throttles, certificates, log directories and consumer groups, a finding with a level on each, and an exit code
for the worst (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN). ``--prometheus-file`` writes the metrics for node
exporter's textfile collector; ``--serve`` answers Prometheus scrapes. The rules are in
``module_utils/status.py``; the reads in ``status_kafka.py``.
"""

from __future__ import annotations

import http.server
import sys

from . import ensure_collection_path

ensure_collection_path()

from ansible_collections.metal.kafka.plugins.module_utils import (  # noqa: E402
    files,
    kafka_admin,
    status,
    status_kafka,
)

PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _broker_ids(text):
    try:
        ids = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise SystemExit(f"kafka-metal: --expect-brokers {text!r}: give node ids separated by commas, such as "
                         "1,2,3") from None
    if not ids:
        raise SystemExit("kafka-metal: --expect-brokers is empty: give node ids separated by commas, such as 1,2,3")
    return ids


def _limits(args):
    if not 0 < args.disk_warning <= args.disk_critical <= 100:
        raise SystemExit(f"kafka-metal: --disk-warning {args.disk_warning} and --disk-critical {args.disk_critical} "
                         "must be percentages with the warning at most the critical one")
    if not 0 <= args.cert_critical_days <= args.cert_warning_days:
        raise SystemExit(f"kafka-metal: --cert-critical-days {args.cert_critical_days} must be at most "
                         f"--cert-warning-days {args.cert_warning_days}")
    if args.lag_seconds <= 0 or args.lag_records <= 0:
        raise SystemExit(f"kafka-metal: --lag-seconds {args.lag_seconds} and --lag-records {args.lag_records} "
                         "must be more than 0")
    return status.Limits(cert_warning_days=args.cert_warning_days, cert_critical_days=args.cert_critical_days,
                         disk_warning=args.disk_warning / 100.0, disk_critical=args.disk_critical / 100.0,
                         lag_seconds=args.lag_seconds, lag_records=args.lag_records)


def _reader_options(args, history):
    return {"timeout": args.timeout,
            "expected_brokers": _broker_ids(args.expect_brokers) if args.expect_brokers else None,
            "groups": not args.no_groups, "samples": args.samples, "interval": args.interval, "history": history}


def _reader(args, conf, history):
    return status_kafka.Reader(conf, **_reader_options(args, history))


def _unknown(message, args):
    """What to say and return when nothing could be read (bad settings)."""
    snap = {"bootstrap": args.bootstrap_server, "error": message, "duration_seconds": 0.0}
    found = status.findings(snap)
    print(f"kafka-metal: {message}", file=sys.stderr)
    if args.prometheus_file:
        files.write_file(args.prometheus_file, status.render_prometheus(snap, found).encode(), 0o644)
    return status.level_code(status.UNKNOWN)


def cmd_status(args):
    from . import load

    limits = _limits(args)
    try:
        conf = load.client_settings(args.bootstrap_server, args.command_config)
        secrets = status_kafka.secrets_of(conf)
        if args.serve:
            # a long-running exporter reads in a child process, which a librdkafka abort cannot take down with
            # the exporter (status_kafka.IsolatedReader)
            reader = status_kafka.IsolatedReader(conf, limit=max(60.0, 6 * args.timeout),
                                                 **_reader_options(args, True))
            reader.start()
        else:
            reader = _reader(args, conf, history=False)
    except (load.LoadError, status_kafka.StatusError) as exc:
        return _unknown(str(exc), args)
    if args.serve:
        try:
            return serve(args.serve, status_kafka.Scraper(reader, cache=args.cache).start(), limits, secrets)
        finally:
            reader.close()
    snap = reader.read()
    found = status.findings(snap, limits)
    render = status.render_json if args.json else status.render_text
    sys.stdout.write(kafka_admin.redact(render(snap, found), secrets))
    if args.prometheus_file:
        text = kafka_admin.redact(status.render_prometheus(snap, found, limits), secrets)
        files.write_file(args.prometheus_file, text.encode(), 0o644)
    return status.level_code(status.worst(found))


def _address(text):
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise SystemExit(f"kafka-metal: --serve {text!r}: give ADDR:PORT, such as 0.0.0.0:9309")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - an exporter listens where it is told


def metrics_text(scraper, limits, secrets):
    """The Prometheus text of a fresh (or cached) snapshot; a failure of the read itself is a scrape with
    kafka_metal_status_up 0, never an error page."""
    try:
        snap = scraper.snapshot()
    except Exception as exc:  # noqa: BLE001 - the exporter must keep answering
        snap = {"bootstrap": scraper.reader.bootstrap, "error": str(exc) or type(exc).__name__,
                "duration_seconds": 0.0}
    return kafka_admin.redact(status.render_prometheus(snap, status.findings(snap, limits), limits), secrets)


def make_server(address, scraper, limits, secrets):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the name http.server calls
            if self.path.split("?", 1)[0] == "/metrics":
                self._answer(200, PROMETHEUS_TYPE, metrics_text(scraper, limits, secrets))
            elif self.path == "/":
                self._answer(200, "text/plain; charset=utf-8", "kafka-metal status: the metrics are at /metrics\n")
            else:
                self._answer(404, "text/plain; charset=utf-8", "not found: the metrics are at /metrics\n")

        def _answer(self, code, kind, text):
            body = text.encode()
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):  # noqa: A002 - http.server's signature; scrapes are not logged
            pass

    server = http.server.ThreadingHTTPServer(_address(address), Handler)
    server.daemon_threads = True
    return server


def serve(address, scraper, limits, secrets):
    server = make_server(address, scraper, limits, secrets)
    host, port = server.server_address[:2]
    print(f"kafka-metal status: serving http://{host}:{port}/metrics", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def add_subparsers(sub):
    p = sub.add_parser("status", help="is the cluster safe right now? findings with levels, exit code 0 OK, "
                                      "1 WARNING, 2 CRITICAL, 3 UNKNOWN; Prometheus metrics")
    p.add_argument("--bootstrap-server", required=True, help="host:port of brokers, as for Kafka's tools")
    p.add_argument("--command-config", default=None, help="Java client properties (TLS, SASL), as for Kafka's tools")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each answer (default 10)")
    p.add_argument("--json", action="store_true", help="everything read, with the findings, as JSON")
    p.add_argument("--expect-brokers", default=None, metavar="ID,ID,...",
                   help="node ids of the brokers that should be registered (a missing one is CRITICAL)")
    p.add_argument("--no-groups", action="store_true", help="skip the consumer groups")
    p.add_argument("--samples", type=int, default=2,
                   help="reads of the groups' offsets for their verdicts (default 2; with --serve: scrapes)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between those reads (default 1)")
    p.add_argument("--cert-warning-days", type=float, default=30.0, help="WARNING under this (default 30)")
    p.add_argument("--cert-critical-days", type=float, default=7.0, help="CRITICAL under this (default 7)")
    p.add_argument("--disk-warning", type=float, default=85.0, help="percent of a log directory used for a "
                                                                    "WARNING (default 85)")
    p.add_argument("--disk-critical", type=float, default=95.0, help="and for a CRITICAL (default 95)")
    p.add_argument("--lag-seconds", type=float, default=300.0, metavar="SECONDS",
                   help="a group whose next record is older than this is a WARNING, and the threshold of the lag "
                        "alert (kafka_metal_consumergroup_lag_seconds_threshold; default 300)")
    p.add_argument("--lag-records", type=int, default=100_000, metavar="RECORDS",
                   help="a group with more records than this to read is a WARNING, and the threshold of the "
                        "records alert (default 100000)")
    p.add_argument("--prometheus-file", default=None, metavar="PATH",
                   help="also write the metrics there, atomically (node exporter's textfile collector: *.prom)")
    p.add_argument("--serve", default=None, metavar="ADDR:PORT",
                   help="answer Prometheus scrapes at http://ADDR:PORT/metrics instead (each scrape reads the "
                        "cluster)")
    p.add_argument("--cache", type=float, default=5.0,
                   help="with --serve: seconds a read answers scrapes before the next one (default 5)")
    p.set_defaults(func=cmd_status)
