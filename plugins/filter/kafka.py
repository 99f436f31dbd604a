# Copyright: kafka-metal contributors
# Apache License 2.0
"""Filters: render properties, derive the quorum and a node's settings, choose the cluster id."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.metal.kafka.plugins.module_utils import cluster, properties


def to_properties(value):
    """Render a dict of strings as sorted ``key=value`` lines; refuse non-strings."""
    try:
        return properties.render(dict(value))
    except properties.PropertiesError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def kafka_quorum_voters(hosts, hostvars, port):
    """``controller.quorum.voters`` for the given controller hosts."""
    controllers = {}
    for h in hosts:
        hv = hostvars[h]
        controllers[h] = (hv["kafka_node_id"], hv.get("kafka_advertised_host") or hv.get("ansible_host") or h)
    return cluster.quorum_voters(controllers, port)


def kafka_kraft_properties(roles, **kwargs):
    try:
        return cluster.kraft_properties(roles=list(roles), **kwargs)
    except (KeyError, ValueError, TypeError) as exc:
        raise AnsibleFilterError(f"cannot compute node settings: {exc}") from exc


def kafka_choose_cluster_id(found, configured=""):
    """``found``: mapping host -> list of cluster ids already on disk."""
    try:
        return cluster.choose_cluster_id(configured, dict(found))[0]
    except cluster.ValidationError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule:
    def filters(self):
        return {
            "to_properties": to_properties,
            "kafka_quorum_voters": kafka_quorum_voters,
            "kafka_kraft_properties": kafka_kraft_properties,
            "kafka_choose_cluster_id": kafka_choose_cluster_id,
        }
