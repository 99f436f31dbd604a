#!/usr/bin/python
# Copyright: kafka-metal contributors
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kafka_sysctl
short_description: Kernel settings in one owned drop-in file, applied now and at every boot
version_added: 0.1.0
description:
  - Writes every setting to one file under C(/etc/sysctl.d) that kafka-metal owns (its whole content
    is replaced), which C(systemd-sysctl) applies at boot.
  - With O(apply=true), also sets each live value that differs, and reads it back.
  - Values are whole numbers or space-separated whole numbers; booleans are refused (YAML reads
    C(yes)/C(on) as true).
options:
  path:
    description: The drop-in file.
    type: path
    default: /etc/sysctl.d/60-kafka-metal.conf
  values:
    description: Setting name (dotted, like C(vm.swappiness)) to value.
    type: dict
    required: true
  raise_only:
    description:
      - Settings that are a floor, not a value; where the running kernel's value is already higher,
        the setting is left out of the file and the live value is kept (C(fs.file-max) is
        9223372036854775807 on current kernels; writing a smaller number would lower it).
    type: list
    elements: str
    default: [fs.file-max]
  apply:
    description: Set the live values too (false where C(/proc/sys) is read-only, as in containers).
    type: bool
    default: true
extends_documentation_fragment:
  - metal.kafka.changes
"""

EXAMPLES = r"""
- name: Kernel settings for Kafka
  metal.kafka.kafka_sysctl:
    values:
      vm.swappiness: 1
      vm.max_map_count: 262144
"""

RETURN = r"""
file_changed:
  description: Whether the drop-in file was (or would be) rewritten.
  returned: always
  type: bool
kept:
  description: Floors (O(raise_only)) left out because the kernel's value is already higher, with that value.
  returned: always
  type: dict
applied:
  description: Settings whose live value was (or would be) changed, with the value before.
  returned: always
  type: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.metal.kafka.plugins.module_utils.tuning import (
    TuningError,
    render_sysctl_conf,
    same_sysctl,
    sysctl_path,
    sysctl_values,
)

HEADER = "Written by kafka-metal (role metal.kafka.tuning); changes here are overwritten."


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", default="/etc/sysctl.d/60-kafka-metal.conf"),
            values=dict(type="dict", required=True),
            raise_only=dict(type="list", elements="str", default=["fs.file-max"]),
            apply=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    path = module.params["path"]
    try:
        values = sysctl_values(module.params["values"], name="values")
    except TuningError as exc:
        module.fail_json(msg=str(exc))
    kept = {}
    for key in module.params["raise_only"]:
        if key in values and values[key].lstrip("-").isdigit():
            try:
                with open(sysctl_path(key)) as f:
                    live = f.read().strip()
            except OSError:
                continue
            if live.lstrip("-").isdigit() and int(live) >= int(values[key]):
                kept[key] = live
                del values[key]
    content = render_sysctl_conf(values, HEADER)
    try:
        with open(path) as f:
            before = f.read()
    except FileNotFoundError:
        before = ""
    file_changed = before != content
    applied = {}
    if module.params["apply"]:
        for key, want in values.items():
            try:
                with open(sysctl_path(key)) as f:
                    live = " ".join(f.read().split())
            except FileNotFoundError:
                module.fail_json(msg=f"{key}: this kernel has no such setting ({sysctl_path(key)} is missing)")
            if not same_sysctl(live, want):
                applied[key] = live
    if not module.check_mode:
        if file_changed:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.kafka-metal.tmp"
            with open(tmp, "w") as f:
                f.write(content)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        for key in applied:
            try:
                with open(sysctl_path(key), "w") as f:
                    f.write(values[key])
                with open(sysctl_path(key)) as f:
                    now = " ".join(f.read().split())
            except OSError as exc:
                module.fail_json(msg=f"{key}: setting it to {values[key]} failed: {exc}")
            if not same_sysctl(now, values[key]):
                module.fail_json(msg=f"{key}: set to {values[key]} but the kernel reads back {now}")
    diff = {"before": before, "after": content, "before_header": path, "after_header": path}
    module.exit_json(
        changed=file_changed or bool(applied), file_changed=file_changed, applied=applied, kept=kept, diff=diff
    )


if __name__ == "__main__":
    main()
