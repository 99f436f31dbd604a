# Copyright: kafka-metal contributors
# Apache License 2.0
"""Action plugin of ``kafka_node_files``: runs the module on the node and, with ``dest``, stores the
sanitized files on the controller in one step (0600 files in 0700 directories, written only when their
content changed), instead of a copy task per file and host."""

from __future__ import annotations

import base64
import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.metal.kafka.plugins.module_utils import backup
from ansible_collections.metal.kafka.plugins.module_utils.files import write_file


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        dest = args.pop("dest", None)
        module_result = self._execute_module(module_name="metal.kafka.kafka_node_files", module_args=args,
                                             task_vars=task_vars)
        result.update(module_result)
        if module_result.get("failed") or not dest:
            return result
        dest = os.path.expanduser(str(dest))
        if not os.path.isabs(dest):
            raise AnsibleActionFail(f"dest must be an absolute directory on the controller, got {dest!r}")
        stored = []
        for entry in result.get("files") or []:
            encoded = entry.pop("content_b64", None)
            if encoded is None:
                continue
            data = base64.b64decode(encoded)
            local = os.path.join(dest, entry["path"].lstrip("/"))
            if os.path.normpath(local) != local or not local.startswith(dest.rstrip("/") + "/"):
                raise AnsibleActionFail(f"{entry['path']}: not a plain absolute path on the node")
            if self._play_context.check_mode:
                if not _holds(local, data):
                    stored.append(local)
                continue
            backup.makedirs(os.path.dirname(local))
            if write_file(local, data, 0o600):
                stored.append(local)
        result["stored"] = stored
        result["changed"] = bool(stored)
        return result


def _holds(path, data):
    """Whether ``path`` already holds ``data`` at mode 0600 (what check mode reports as no change)."""
    try:
        with open(path, "rb") as f:
            return f.read() == data and os.stat(path).st_mode & 0o7777 == 0o600
    except FileNotFoundError:
        return False
