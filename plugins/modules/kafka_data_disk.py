#!/usr/bin/python
# Copyright: kafka-metal contributors
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kafka_data_disk
short_description: A Kafka data disk, formatted XFS only when empty, mounted by UUID with noatime
version_added: 0.1.0
description:
  - Safe mode. A device without any signature gets an XFS file system; a device that already holds
    XFS is used as it is (never formatted again, so re-runs keep the data). A device with anything
    else (another file system, a partition table or partitions, a LUKS header, swap) is refused with
    a message and left untouched, unless O(force_format=true) is set for that device.
  - Refused even when forced, and before anything changes, when the device is mounted elsewhere,
    another device is mounted at O(path), or O(path) already holds files that a mount would hide.
  - Writes the C(/etc/fstab) entry by UUID (replacing any other entry for O(path)), mounts it, and
    sets the owner and mode of the file system's root.
options:
  device:
    description: The block device, best a stable name under C(/dev/disk/by-id).
    type: path
    required: true
  path:
    description: Where to mount it (one of the broker's C(log.dirs)).
    type: path
    required: true
  owner:
    description: Owner of the mounted file system's root.
    type: str
    default: kafka
  group:
    description: Group of the mounted file system's root.
    type: str
    default: kafka
  mode:
    description: Mode of the mounted file system's root.
    type: str
    default: "0750"
  label:
    description: XFS label given when formatting (up to 12 characters).
    type: str
  force_format:
    description: Allow destroying whatever the device holds, unless that is already XFS.
    type: bool
    default: false
  mount_options:
    description:
      - Mount options; must include C(noatime) and may not turn off write barriers.
      - C(nofail) keeps the host booting when a disk is missing; Kafka's unit requires the mount,
        so Kafka then does not start on an empty directory.
    type: str
    default: noatime,nofail
  fstab:
    description: The fstab file.
    type: path
    default: /etc/fstab
extends_documentation_fragment:
  - metal.kafka.changes
"""

EXAMPLES = r"""
- name: First data disk
  metal.kafka.kafka_data_disk:
    device: /dev/disk/by-id/virtio-kmdata1
    path: /var/lib/kafka/data1
"""

RETURN = r"""
device:
  description: The device the given path resolves to.
  returned: always
  type: str
uuid:
  description: The file system's UUID (empty in check mode before the first format).
  returned: always
  type: str
actions:
  description: What was (or would be) done, in order.
  returned: always
  type: list
  elements: str
"""

import grp
import os
import pwd
import stat

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.metal.kafka.plugins.module_utils.blockdev import (
    blkid_probe,
    partitions_of,
    read_mounts,
    same_device,
)
from ansible_collections.metal.kafka.plugins.module_utils.tuning import (
    TuningError,
    fstab_line,
    plan_disk,
    update_fstab,
    validate_mount_options,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            device=dict(type="path", required=True),
            path=dict(type="path", required=True),
            owner=dict(type="str", default="kafka"),
            group=dict(type="str", default="kafka"),
            mode=dict(type="str", default="0750"),
            label=dict(type="str"),
            force_format=dict(type="bool", default=False),
            mount_options=dict(type="str", default="noatime,nofail"),
            fstab=dict(type="path", default="/etc/fstab"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    device, path = p["device"], p["path"].rstrip("/") or "/"
    try:
        options = validate_mount_options(p["mount_options"])
    except TuningError as exc:
        module.fail_json(msg=f"{device}: {exc}")
    real = os.path.realpath(device)
    exists = os.path.exists(real) and stat.S_ISBLK(os.stat(real).st_mode)
    mounts = read_mounts()
    path_sources = [src for src, mp in mounts if mp == path]
    path_source = path_sources[-1] if path_sources else None
    entries = []
    if not path_source and os.path.isdir(path):
        entries = os.listdir(path)
    info = blkid_probe(module, real) if exists else {}
    try:
        plan = plan_disk(
            device=device,
            exists=exists,
            probe=info,
            partitions=partitions_of(real) if exists else [],
            device_mounts=[mp for src, mp in mounts if same_device(src, real)],
            path=path,
            path_source=path_source,
            path_source_is_device=bool(path_source) and same_device(path_source, real),
            path_entries=entries,
            force_format=p["force_format"],
        )
    except TuningError as exc:
        module.fail_json(msg=str(exc), device=real)

    actions = []
    check = module.check_mode
    if plan["wipe"]:
        actions.append(f"wipe the signatures on {real} (force_format)")
        if not check:
            module.run_command(["wipefs", "-a", real], check_rc=True)
    if plan["format"]:
        actions.append(f"format {real} as XFS")
        if not check:
            mkfs = module.get_bin_path("mkfs.xfs")
            if not mkfs:
                module.fail_json(msg="mkfs.xfs is missing: install xfsprogs (the tuning role does)")
            argv = [mkfs, "-q"] + (["-L", p["label"]] if p["label"] else []) + [real]
            module.run_command(argv, check_rc=True)
            info = blkid_probe(module, real)
    uuid = info.get("UUID", "")

    try:
        with open(p["fstab"]) as f:
            fstab_before = f.read()
    except FileNotFoundError:
        fstab_before = ""
    line = fstab_line(uuid or "<new>", path, options)
    fstab_after = update_fstab(fstab_before, path, line)
    if fstab_after != fstab_before:
        actions.append(f"fstab: {line}")
        if not check:
            tmp = p["fstab"] + ".kafka-metal.tmp"
            with open(tmp, "w") as f:
                f.write(fstab_after)
            st = os.stat(p["fstab"]) if os.path.exists(p["fstab"]) else None
            os.chmod(tmp, stat.S_IMODE(st.st_mode) if st else 0o644)
            os.replace(tmp, p["fstab"])
            module.run_command(["systemctl", "daemon-reload"], check_rc=True)

    if plan["mount"]:
        actions.append(f"mount {real} at {path}")
        if not check:
            os.makedirs(path, exist_ok=True)
            module.run_command(["mount", path], check_rc=True)

    try:
        uid = pwd.getpwnam(p["owner"]).pw_uid
        gid = grp.getgrnam(p["group"]).gr_gid
    except KeyError as exc:
        module.fail_json(msg=f"unknown owner or group {exc}: the kafka role creates the Kafka user first")
    mode = int(p["mode"], 8)
    if os.path.isdir(path) and not (check and plan["mount"]):
        st = os.stat(path)
        if (st.st_uid, st.st_gid) != (uid, gid) or stat.S_IMODE(st.st_mode) != mode:
            actions.append(f"owner {p['owner']}:{p['group']} mode {p['mode']} on {path}")
            if not check:
                os.chown(path, uid, gid)
                os.chmod(path, mode)
    elif check and plan["mount"]:
        actions.append(f"owner {p['owner']}:{p['group']} mode {p['mode']} on {path}")

    module.exit_json(
        changed=bool(actions),
        device=real,
        uuid=uuid,
        actions=actions,
        diff={"before": fstab_before, "after": fstab_after, "before_header": p["fstab"], "after_header": p["fstab"]},
    )


if __name__ == "__main__":
    main()
