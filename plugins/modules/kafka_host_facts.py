#!/usr/bin/python
# Copyright: kafka-metal contributors
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kafka_host_facts
short_description: Read what a Kafka host can do (memory, limits, kernel settings, huge pages)
version_added: 0.1.0
description:
  - Reads memory, the hard limits systemd (PID 1) can grant, whether kernel settings can be changed
    (C(/proc/sys) is read-only in containers), the transparent huge page modes and active swap.
  - Never changes anything; the tuning role and the JVM sizing decide from these facts.
  - Also says which of the given O(paths) exist, so a role can look for several tools in the same
    module run (each module run costs seconds on a slow or emulated host).
options:
  paths:
    description: Paths to look for (tools, daemons); the ones that exist come back in RV(paths_present).
    type: list
    elements: path
    default: []
extends_documentation_fragment:
  - metal.kafka.read_only
"""

EXAMPLES = r"""
- name: Read the host's capabilities, and which NTP daemon is installed
  metal.kafka.kafka_host_facts:
    paths: [/usr/sbin/chronyd, /usr/sbin/ntpd, /lib/systemd/systemd-timesyncd]
  register: __host
"""

RETURN = r"""
mem_total:
  description: Memory in bytes (MemTotal).
  returned: always
  type: int
pid1_limits:
  description: Soft and hard limits of PID 1, by the names of /proc/1/limits.
  returned: always
  type: dict
kernel_writable:
  description: Whether kernel settings under /proc/sys and /sys can be written here.
  returned: always
  type: bool
container:
  description: The container technology the host runs in, or an empty string.
  returned: always
  type: str
thp_enabled:
  description: Transparent huge pages mode (always, madvise, never), empty when the kernel has none.
  returned: always
  type: str
thp_defrag:
  description: Transparent huge pages defrag mode, empty when the kernel has none.
  returned: always
  type: str
swaps:
  description: Active swap devices or files.
  returned: always
  type: list
  elements: str
paths_present:
  description: The given O(paths) that exist, in the given order.
  returned: always
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.metal.kafka.plugins.module_utils.tuning import parse_limits, thp_mode

THP = "/sys/kernel/mm/transparent_hugepage"


def _read(path, default=""):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def main():
    module = AnsibleModule(
        argument_spec={"paths": {"type": "list", "elements": "path", "default": []}}, supports_check_mode=True
    )
    mem_total = 0
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            mem_total = int(line.split()[1]) * 1024
    container = _read("/run/systemd/container").strip()
    writable = os.access("/proc/sys/vm/swappiness", os.W_OK) and not container
    if writable:
        # a read-only mount (as in containers) still passes access(); statvfs says so
        writable = not (os.statvfs("/proc/sys").f_flag & os.ST_RDONLY)
    swaps = [line.split()[0] for line in _read("/proc/swaps").splitlines()[1:] if line.strip()]
    module.exit_json(
        changed=False,
        mem_total=mem_total,
        pid1_limits={k: list(v) for k, v in parse_limits(_read("/proc/1/limits")).items()},
        kernel_writable=bool(writable),
        container=container,
        thp_enabled=thp_mode(_read(f"{THP}/enabled")),
        thp_defrag=thp_mode(_read(f"{THP}/defrag")),
        swaps=swaps,
        paths_present=[p for p in module.params["paths"] if os.path.exists(p)],
    )


if __name__ == "__main__":
    main()
