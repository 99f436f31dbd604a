# Copyright: kafka-metal contributors
# Apache License 2.0
"""Monitoring decisions, pure (no I/O): which endpoints Prometheus scrapes on which host, with which labels
(from the inventory's groups and host variables), and the node exporter textfile that carries a node's
certificate expiries.

Jobs: ``kafka`` (the JMX exporter agent in every Kafka JVM, labelled ``kafka_role`` broker, controller or
combined and ``kafka_node_id``), ``zookeeper`` (the agent in every ZooKeeper member), ``node`` (node exporter
on every host) and ``kafka_metal_status`` (``kafka-metal status --serve`` wherever the operator runs it).
Every target carries ``cluster``; ``instance`` is the inventory host name, so alerts name hosts the way the
inventory does.
"""

from __future__ import annotations

import datetime as dt
import re

# The roles' defaults, for hosts whose variables do not set them (the monitoring play does not see the
# defaults of the roles that install the endpoints).
DEFAULT_PORTS = {"kafka_jmx_exporter_port": 9404, "zookeeper_jmx_exporter_port": 9405, "kafka_node_exporter_port": 9100}
TRUE = {"true", "yes", "on", "1", "y", "t"}
TLS_METRIC = "kafka_metal_tls_certificate_not_after_timestamp_seconds"


class MetricsError(ValueError):
    pass


def _on(value, default=True):
    if value is None:
        return default
    return str(value).strip().lower() in TRUE


def _address(hv, host, var):
    return hv.get(var) or hv.get("ansible_host") or host


def _hostport(address, port):
    address = str(address)
    return f"[{address}]:{port}" if ":" in address and not address.startswith("[") else f"{address}:{port}"


def _port(hv, name):
    value = hv.get(name, DEFAULT_PORTS[name])
    try:
        port = int(value)
    except (TypeError, ValueError):
        port = 0
    if not 1 <= port <= 65535:
        raise MetricsError(f"{name} must be a port number from 1 to 65535, got {value!r}")
    return port


def scrape_targets(groups, hostvars, cluster, status_targets=()):
    """``{job: [{"targets": ["host:port"], "labels": {...}}]}`` for every endpoint the inventory's hosts
    serve: a Kafka node in both ``kafka_controllers`` and ``kafka_brokers`` is ``combined``. A host whose
    toggles are off (``kafka_metrics_enabled``, ``zookeeper_metrics_enabled``, ``kafka_node_exporter_enabled``)
    is not scraped for that endpoint. ``status_targets``: ``host:port`` of ``kafka-metal status --serve``."""
    controllers = list(groups.get("kafka_controllers") or [])
    brokers = list(groups.get("kafka_brokers") or [])
    members = list(groups.get("zookeeper") or [])
    jobs = {"kafka": [], "zookeeper": [], "node": [], "kafka_metal_status": []}
    for host in dict.fromkeys(controllers + brokers):
        hv = hostvars.get(host, {})
        if not _on(hv.get("kafka_metrics_enabled")):
            continue
        role = "combined" if host in controllers and host in brokers else "broker" if host in brokers else "controller"
        labels = {"instance": host, "cluster": cluster, "kafka_role": role}
        if hv.get("kafka_node_id") not in (None, ""):
            labels["kafka_node_id"] = str(hv["kafka_node_id"])
        address = _address(hv, host, "kafka_advertised_host")
        jobs["kafka"].append({"targets": [_hostport(address, _port(hv, "kafka_jmx_exporter_port"))], "labels": labels})
    for host in members:
        hv = hostvars.get(host, {})
        if not _on(hv.get("zookeeper_metrics_enabled")):
            continue
        address = _address(hv, host, "zookeeper_advertised_host")
        jobs["zookeeper"].append({"targets": [_hostport(address, _port(hv, "zookeeper_jmx_exporter_port"))],
                                  "labels": {"instance": host, "cluster": cluster}})
    for host in dict.fromkeys(controllers + brokers + members):
        hv = hostvars.get(host, {})
        if not _on(hv.get("kafka_node_exporter_enabled")):
            continue
        address = (hv.get("ansible_host") or hv.get("kafka_advertised_host") or hv.get("zookeeper_advertised_host")
                   or host)
        jobs["node"].append({"targets": [_hostport(address, _port(hv, "kafka_node_exporter_port"))],
                             "labels": {"instance": host, "cluster": cluster}})
    for target in status_targets or ():
        text = str(target).strip()
        if not text or ":" not in text or not text.rsplit(":", 1)[1].isdigit():
            raise MetricsError(f"monitoring_status_targets: {target!r} is not host:port of `kafka-metal status "
                               "--serve` (for example admin1:9309)")
        jobs["kafka_metal_status"].append({"targets": [text], "labels": {"instance": text, "cluster": cluster}})
    return jobs


def _timestamp(iso):
    when = dt.datetime.fromisoformat(str(iso))
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp())


def _label(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def tls_expiry_textfile(host, not_after, ca_name=None, ca_not_after=None):
    """Node exporter textfile (Prometheus text format) with the expiry of the node's certificate and of the CA
    it trusts, in seconds since the epoch. Empty when the node's expiry is not known (check mode before a first
    certificate)."""
    if not not_after:
        return ""
    lines = [f"# HELP {TLS_METRIC} When a certificate of this node expires (seconds since the epoch).",
             f"# TYPE {TLS_METRIC} gauge",
             f'{TLS_METRIC}{{kind="node",subject="{_label(host)}"}} {_timestamp(not_after)}']
    if ca_not_after:
        lines.append(f'{TLS_METRIC}{{kind="ca",subject="{_label(ca_name or "ca")}"}} {_timestamp(ca_not_after)}')
    return "\n".join(lines) + "\n"


def rules_with_for(text, overrides, source="rules"):
    """A Prometheus rule file (YAML text) with the ``for`` of the alerts named in ``overrides``
    (``{alert: duration}``) replaced; every other line of meaning unchanged. An override naming no alert of
    the file, or a duration Prometheus would not read, is an error that names it."""
    import yaml

    overrides = dict(overrides or {})
    doc = yaml.safe_load(text) or {}
    known = set()
    for group in doc.get("groups") or []:
        for rule in group.get("rules") or []:
            name = rule.get("alert")
            if name is None:
                continue
            known.add(name)
            if name in overrides:
                value = str(overrides[name]).strip()
                if not _DURATION.match(value):
                    raise MetricsError(f"monitoring_alert_for: {name}: {value!r} is not a Prometheus duration "
                                       "(such as 30s, 2m, 1h)")
                rule["for"] = value
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=120), known


def unknown_alerts(overrides, known):
    """The alert names of ``overrides`` that no rule file defines."""
    return sorted(set(dict(overrides or {})) - set(known))


_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
