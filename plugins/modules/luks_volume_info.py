#!/usr/bin/python
# Copyright: kafka-metal contributors
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: luks_volume_info
short_description: The state of the LUKS volumes kafka-metal manages on a host
version_added: 0.1.0
description:
  - Reads C(/etc/crypttab) and reports every entry whose key file is in O(key_dir) (the volumes
    M(metal.kafka.luks_volume) made), with the device, whether it is open and mounted, its cipher, key
    size, sector size and key slots, whether the installed key file opens it and is root-only, and
    whether the header backup matches the header.
  - Reads only; never prints a key.
options:
  key_dir:
    description: Where kafka-metal keeps the key files and header backups on the host.
    type: path
    default: /etc/kafka-metal/luks
  crypttab:
    description: The crypttab file.
    type: path
    default: /etc/crypttab
extends_documentation_fragment:
  - metal.kafka.read_only
"""

EXAMPLES = r"""
- name: Encrypted data disks
  metal.kafka.luks_volume_info:
  register: luks_info
"""

RETURN = r"""
volumes:
  description: One entry per volume, in crypttab order.
  returned: always
  type: list
  elements: dict
  sample:
    - name: kafka-data1
      uuid: 0577efa9-c500-4b74-b017-0c448a9ec5c7
      device: /dev/vdb
      open: true
      mounted_at: [/var/lib/kafka/data1]
      cipher: aes-xts-plain64
      key_size: 512
      sector_size: 4096
      keyslots: {"0": {"pbkdf": "argon2id", "memory": 262144, "parallel": 2, "iterations": 4}}
      key_file: /etc/kafka-metal/luks/kafka-data1.key
      key_file_mode: "0400"
      key_opens: true
      header_backup_current: true
      problems: []
"""

import hashlib
import os
import stat

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.metal.kafka.plugins.module_utils import luks
from ansible_collections.metal.kafka.plugins.module_utils.blockdev import mapping_backing, mounts_of, read_mounts


def crypttab_entries(text, key_dir):
    out = []
    for raw in text.splitlines():
        fields = raw.split()
        if len(fields) >= 3 and not fields[0].startswith("#") and fields[2].startswith(key_dir.rstrip("/") + "/"):
            out.append((fields[0], fields[1], fields[2]))
    return out


def volume_state(module, cryptsetup, name, source, key_file):
    entry = {"name": name, "uuid": source.removeprefix("UUID="), "key_file": key_file, "problems": []}
    device = os.path.realpath(f"/dev/disk/by-uuid/{entry['uuid']}") if source.startswith("UUID=") else source
    entry["device"] = device if os.path.exists(device) else None
    backing = mapping_backing(name)
    entry["open"] = backing is not None
    mounts = read_mounts()
    entry["mounted_at"] = mounts_of(os.path.realpath(f"/dev/mapper/{name}"), mounts) if backing else []
    try:
        st = os.stat(key_file)
        entry["key_file_mode"] = f"{stat.S_IMODE(st.st_mode):04o}"
        if stat.S_IMODE(st.st_mode) & 0o077 or st.st_uid != 0:
            entry["problems"].append(f"{key_file} is not root-only (mode {entry['key_file_mode']})")
    except FileNotFoundError:
        entry["key_file_mode"] = None
        entry["problems"].append(f"{key_file} is missing: the volume will not unlock at boot")
    if not entry["device"]:
        entry["problems"].append(f"no device with {source}")
        return entry
    env = {"LC_ALL": "C"}
    rc, out, err = module.run_command([cryptsetup, "luksDump", "--dump-json-metadata", device], environ_update=env)
    if rc != 0:
        entry["problems"].append(f"luksDump failed: {(err or out).strip()}")
        return entry
    dump = luks.parse_dump(out)
    entry.update({k: dump[k] for k in ("cipher", "key_size", "sector_size")})
    entry["keyslots"] = {str(k): v for k, v in dump["keyslots"].items()}
    if entry["key_file_mode"] is not None:
        rc, _o, _e = module.run_command(luks.test_key_argv(cryptsetup, device, key_file), environ_update=env)
        entry["key_opens"] = rc == 0
        if rc != 0:
            entry["problems"].append(f"{key_file} does not open the volume: it will not unlock at boot")
    else:
        entry["key_opens"] = False
    backup = luks.key_path(name, "header", os.path.dirname(key_file))
    tmp = os.path.join(module.tmpdir, f"{name}.header")
    rc, _o, err = module.run_command(luks.header_backup_argv(cryptsetup, device, tmp), environ_update=env)
    current = None
    if rc == 0:
        with open(tmp, "rb") as f:
            fresh = hashlib.sha256(f.read()).hexdigest()
        os.unlink(tmp)
        try:
            with open(backup, "rb") as f:
                current = hashlib.sha256(f.read()).hexdigest() == fresh
        except FileNotFoundError:
            current = False
    entry["header_backup_current"] = current
    if current is False:
        entry["problems"].append(f"the header backup {backup} is missing or older than the header")
    return entry


def main():
    module = AnsibleModule(
        argument_spec=dict(
            key_dir=dict(type="path", default=luks.KEY_DIR),
            crypttab=dict(type="path", default="/etc/crypttab"),
        ),
        supports_check_mode=True,
    )
    try:
        with open(module.params["crypttab"]) as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    entries = crypttab_entries(text, module.params["key_dir"])
    cryptsetup = module.get_bin_path("cryptsetup", required=bool(entries))
    volumes = [volume_state(module, cryptsetup, *entry) for entry in entries]
    module.exit_json(changed=False, volumes=volumes)


if __name__ == "__main__":
    main()
