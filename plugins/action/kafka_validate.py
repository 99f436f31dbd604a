# Copyright: kafka-metal contributors
# Apache License 2.0
"""Validate the inventory for one host, on the controller, before anything is changed."""

from __future__ import annotations

from ansible.plugins.action import ActionBase
from ansible_collections.metal.kafka.plugins.module_utils.cluster import node_errors, topology_errors


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("node", "topology", "metadata_mode", "controllers_group", "brokers_group"))

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

            def ids(group):
                return {h: hostvars.get(h, {}).get("kafka_node_id") for h in groups.get(group, [])}

            errors += [f"inventory: {e}" for e in topology_errors(
                ids(cgroup), ids(bgroup), args.get("metadata_mode", "kraft"))]
        if errors:
            result.update(failed=True, errors=errors,
                          msg="The inventory is not valid; nothing was changed:\n- " + "\n- ".join(errors))
        else:
            result.update(changed=False, msg="inventory valid")
        return result
