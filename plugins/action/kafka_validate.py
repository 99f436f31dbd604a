# Copyright: kafka-metal contributors
# Apache License 2.0
"""Validate the inventory for one host, on the controller, before anything is changed."""

from __future__ import annotations

from ansible.plugins.action import ActionBase
from ansible_collections.metal.kafka.plugins.module_utils.cluster import node_errors, topology_errors
from ansible_collections.metal.kafka.plugins.module_utils.zookeeper import ensemble_errors


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("node", "topology", "metadata_mode", "controllers_group", "brokers_group",
                             "zookeeper_group", "ensemble"))

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        args = self._task.args
        unknown = set(args) - self._VALID_ARGS
        if unknown:
            return dict(failed=True, msg=f"kafka_validate: unknown argument(s) {', '.join(sorted(unknown))}")
        host = task_vars.get("inventory_hostname", "?")
        errors = node_errors(host, args.get("node") or {})
        if args.get("topology", True):
            groups = task_vars.get("groups", {})
            hostvars = task_vars.get("hostvars", {})
            cgroup = args.get("controllers_group", "kafka_controllers")
            bgroup = args.get("brokers_group", "kafka_brokers")

            zgroup = args.get("zookeeper_group", "zookeeper")

            def ids(group, var="kafka_node_id"):
                return {h: hostvars.get(h, {}).get(var) for h in groups.get(group, [])}

            errors += [f"inventory: {e}" for e in topology_errors(
                ids(cgroup), ids(bgroup), args.get("metadata_mode", "kraft"), ids(zgroup, "zookeeper_id"))]
        if args.get("ensemble", False):
            groups = task_vars.get("groups", {})
            hostvars = task_vars.get("hostvars", {})
            zgroup = args.get("zookeeper_group", "zookeeper")
            errors += [f"inventory: {e}" for e in ensemble_errors(
                {h: hostvars.get(h, {}).get("zookeeper_id") for h in groups.get(zgroup, [])})]
        if errors:
            result.update(failed=True, errors=errors,
                          msg="The inventory is not valid; nothing was changed:\n- " + "\n- ".join(errors))
        else:
            result.update(changed=False, msg="inventory valid")
        return result
