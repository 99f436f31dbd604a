#!/usr/bin/python
# Copyright: kafka-metal contributors
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: luks_volume
short_description: A LUKS2-encrypted Kafka data disk, opened now and unlocked at boot; key rotation
version_added: 0.1.0
description:
  - Safe mode. A device without any signature is formatted as LUKS2 with the given parameters. A device
    whose LUKS header the key opens is kafka-metal's own and is never formatted again (re-runs keep the
    data). Anything else (a LUKS header the key does not open, a file system, a partition table or
    partitions, swap) is refused with a message and left untouched, unless O(force_format=true).
  - Refused even when forced, before anything changes, are a mounted device, a device that another
    device-mapper volume or RAID holds, and a mapping name in use for another device.
  - Installs the key as C(KEY_DIR/NAME.key) (root, 0400), opens the volume as C(/dev/mapper/NAME) and
    writes its C(/etc/crypttab) entry by UUID with that key file, so it unlocks at boot.
  - With O(new_key), rotates the key. It adds the new key to a free slot, proves that it opens, installs it
    as the key file, then removes the old key's slot. Every step is checked before the next, and a run
    stopped at any point resumes where it stopped, so the key file always opens the volume.
  - Keeps a LUKS header backup in C(KEY_DIR/NAME.header) (root, 0400), refreshed when the header changes;
    the C(tuning) role fetches it to the controller.
  - The file system on the mapped device is the data-disk module's job (M(metal.kafka.kafka_data_disk)).
  - Usually called through its action plugin, which keeps the keys in a key store on the controller.
options:
  device:
    description: The block device, best a stable name under C(/dev/disk/by-id).
    type: path
    required: true
  name:
    description: The device-mapper name (the volume appears as C(/dev/mapper/NAME)).
    type: str
    required: true
  key:
    description: The volume's current key (the text of its key file).
    type: str
    required: true
  new_key:
    description: Rotate to this key; afterwards the old key no longer opens the volume.
    type: str
  passphrase:
    description: An extra passphrase slot for unlocking by hand (console, recovery). Added when it does not open yet.
    type: str
  label:
    description: A LUKS2 label given when formatting.
    type: str
  force_format:
    description: Allow destroying whatever the device holds, unless the key already opens it.
    type: bool
    default: false
  cipher:
    description: The cipher of a new volume.
    type: str
    default: aes-xts-plain64
  key_size:
    description: The volume key size in bits (512 for AES-XTS is two AES-256 keys).
    type: int
    default: 512
  sector_size:
    description: The encryption sector size in bytes.
    type: int
    default: 4096
  pbkdf:
    description: The key derivation function of new key slots.
    type: str
    choices: [argon2id, argon2i, pbkdf2]
    default: argon2id
  pbkdf_memory:
    description: Argon2 memory cost in KiB.
    type: int
    default: 262144
  pbkdf_parallel:
    description: Argon2 threads.
    type: int
    default: 2
  iter_time:
    description: Milliseconds a key slot takes to open (the time cost, measured on this host by cryptsetup).
    type: int
    default: 2000
  pbkdf_iterations:
    description:
      - Exactly this many key derivation iterations (and, for argon2, exactly O(pbkdf_memory)) instead of
        a benchmark for O(iter_time); 0 benchmarks. A fixed cost does not depend on how busy the host is
        when a key slot is made.
    type: int
    default: 0
  key_dir:
    description: Where the key file and the header backup live on the host.
    type: path
    default: /etc/kafka-metal/luks
  crypttab:
    description: The crypttab file.
    type: path
    default: /etc/crypttab
  crypttab_options:
    description: Options of the crypttab entry (C(nofail) keeps the host booting when a disk is missing).
    type: str
    default: luks,nofail
extends_documentation_fragment:
  - metal.kafka.changes
"""

EXAMPLES = r"""
- name: First data disk, encrypted (the action plugin supplies the key from the controller's key store)
  metal.kafka.luks_volume:
    device: /dev/disk/by-id/virtio-kmdata1
    name: kafka-data1
    key_store: "{{ playbook_dir }}/luks-keys"
"""

RETURN = r"""
device:
  description: The device the given path resolves to.
  returned: always
  type: str
uuid:
  description: The LUKS UUID (empty in check mode before the first format).
  returned: always
  type: str
mapped:
  description: The opened volume, C(/dev/mapper/NAME).
  returned: always
  type: str
header_backup:
  description: The header backup's path on the host (empty in check mode before the first format).
  returned: always
  type: str
header_sha256:
  description: SHA-256 of the header backup on the host (the action plugin fetches it when its copy differs).
  returned: always
  type: str
keyslots:
  description: Key slots in use, with their key derivation function.
  returned: always
  type: dict
drift:
  description: How the volume differs from the asked cipher, key size or sector size (set at format time).
  returned: always
  type: list
  elements: str
actions:
  description: What was (or would be) done, in order. Never contains a key.
  returned: always
  type: list
  elements: str
"""

import contextlib
import hashlib
import os
import stat

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.metal.kafka.plugins.module_utils import luks
from ansible_collections.metal.kafka.plugins.module_utils.blockdev import (
    blkid_probe,
    holders_of,
    mapping_backing,
    mounts_of,
    partitions_of,
    read_mounts,
)

PARAMS = ("cipher", "key_size", "sector_size", "pbkdf", "pbkdf_memory", "pbkdf_parallel", "iter_time",
          "pbkdf_iterations")


def argument_spec():
    return dict(
        device=dict(type="path", required=True),
        name=dict(type="str", required=True),
        key=dict(type="str", required=True, no_log=True),
        new_key=dict(type="str", no_log=True),
        passphrase=dict(type="str", no_log=True),
        label=dict(type="str"),
        force_format=dict(type="bool", default=False),
        cipher=dict(type="str", default=luks.LUKS_DEFAULTS["cipher"]),
        key_size=dict(type="int", default=luks.LUKS_DEFAULTS["key_size"]),
        sector_size=dict(type="int", default=luks.LUKS_DEFAULTS["sector_size"]),
        pbkdf=dict(type="str", choices=list(luks.PBKDFS), default=luks.LUKS_DEFAULTS["pbkdf"]),
        pbkdf_memory=dict(type="int", default=luks.LUKS_DEFAULTS["pbkdf_memory"]),
        pbkdf_parallel=dict(type="int", default=luks.LUKS_DEFAULTS["pbkdf_parallel"]),
        iter_time=dict(type="int", default=luks.LUKS_DEFAULTS["iter_time"]),
        pbkdf_iterations=dict(type="int", default=luks.LUKS_DEFAULTS["pbkdf_iterations"]),
        key_dir=dict(type="path", default=luks.KEY_DIR),
        crypttab=dict(type="path", default="/etc/crypttab"),
        crypttab_options=dict(type="str", default=luks.CRYPTTAB_OPTIONS),
    )


def build_module():
    return AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)


class Volume:
    """One device and the host's tools; every cryptsetup call takes keys from files or stdin."""

    def __init__(self, module, real, name, key_dir):
        self.module, self.real, self.name, self.key_dir = module, real, name, key_dir
        self.cryptsetup = module.get_bin_path("cryptsetup", required=False)
        if not self.cryptsetup:
            module.fail_json(msg="cryptsetup is missing: install cryptsetup-bin (the tuning role does)")

    def run(self, argv, data=None, what="cryptsetup"):
        rc, out, err = self.module.run_command(argv, data=data, binary_data=True, environ_update={"LC_ALL": "C"})
        if rc != 0:
            # cryptsetup never echoes a key; its message is safe to show
            self.module.fail_json(msg=f"{what} failed on {self.real} (exit {rc}): {(err or out).strip()}")
        return out

    def slot_of(self, key=None, key_file=None, slot=None):
        """The key slot ``key`` (sent on stdin) or ``key_file`` opens (trying only ``slot`` when given),
        else None. Each slot tried costs a full key derivation: callers that know the slot say so."""
        argv = luks.test_key_argv(self.cryptsetup, self.real, key_file or "-", slot)
        rc, out, err = self.module.run_command(argv, data=key, binary_data=True, environ_update={"LC_ALL": "C"})
        if rc != 0:
            return None
        found = luks.unlocked_slot(f"{out}\n{err}")
        return found if found is not None else slot if slot is not None else -1

    def opens(self, key=None, key_file=None, slot=None):
        """Whether ``key`` (sent on stdin) or ``key_file`` opens a key slot (``slot``, when given)."""
        return self.slot_of(key=key, key_file=key_file, slot=slot) is not None

    def uuid(self):
        return self.run([self.cryptsetup, "luksUUID", self.real], what="luksUUID").strip()

    def dump(self):
        return luks.parse_dump(self.run([self.cryptsetup, "luksDump", "--dump-json-metadata", self.real]))


def write_secret(path, data):
    luks.write_secret(path, data, 0o400)


def read_secret(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except FileNotFoundError:
        return None


def ensure_key_dir(module, key_dir, actions, check):
    if os.path.isdir(key_dir):
        st = os.stat(key_dir)
        if stat.S_IMODE(st.st_mode) != 0o700 or st.st_uid != 0:
            actions.append(f"key directory {key_dir}: root, 0700")
            if not check:
                os.chown(key_dir, 0, 0)
                os.chmod(key_dir, 0o700)
        return
    actions.append(f"key directory {key_dir}: root, 0700")
    if not check:
        os.makedirs(key_dir, mode=0o700)
        os.chmod(key_dir, 0o700)


def ensure_key_file(path, key, actions, check, what="key file"):
    current = read_secret(path)
    if current == key:
        st = os.stat(path)
        if stat.S_IMODE(st.st_mode) == 0o400 and st.st_uid == 0:
            return
    actions.append(f"install the {what} {path} (root, 0400)")
    if not check:
        write_secret(path, key)


def installed_state(path, key, new_key):
    content = read_secret(path)
    if content is None:
        return "missing"
    return "current" if content == key else "new" if content == new_key else "other"


def rotate(vol, key, new_key, params, key_file, actions, check, slots=None):
    """Rotate one volume from ``key`` to ``new_key``, resuming whatever an earlier run left.
    ``slots``: (the slot ``key`` opens, the slot ``new_key`` opens), None for a key that opens none;
    read from the volume when not given."""
    current_slot, new_slot = slots if slots is not None else (vol.slot_of(key=key), vol.slot_of(key=new_key))
    try:
        steps = luks.plan_rotation(
            current_opens=current_slot is not None, new_opens=new_slot is not None,
            installed=installed_state(key_file, key, new_key),
        )  # fmt: skip
    except luks.LuksError as exc:
        vol.module.fail_json(msg=f"{vol.real} ({vol.name}): {exc}")
    new_file = luks.key_path(vol.name, "key.new", vol.key_dir)
    old_file = luks.key_path(vol.name, "key.old", vol.key_dir)
    for step in steps:
        if step == "add_new":
            actions.append(f"add the new key to a free slot of {vol.real}, then prove it opens")
        elif step == "install_new":
            actions.append(f"install the new key as {key_file}")
        else:
            actions.append(f"remove the old key's slot from {vol.real}")
        if check:
            continue
        if step == "add_new":
            write_secret(new_file, new_key)
            write_secret(old_file, key)
            slots_before = set(vol.dump()["keyslots"])
            try:
                vol.run(luks.add_key_argv(vol.cryptsetup, vol.real, old_file, new_file, params), what="luksAddKey")
            finally:
                os.unlink(old_file)
            added = sorted(set(vol.dump()["keyslots"]) - slots_before)
            new_slot = added[0] if len(added) == 1 else None
            if new_slot is None or not vol.opens(key_file=new_file, slot=new_slot):
                vol.module.fail_json(msg=f"{vol.real}: the new key was added but does not open the volume; the old "
                                         "key still does and is still installed (nothing else was changed)")
        elif step == "install_new":
            write_secret(new_file, new_key)
            os.replace(new_file, key_file)
        else:
            if not vol.opens(key_file=key_file, slot=new_slot):
                vol.module.fail_json(msg=f"{vol.real}: the installed key file does not open the volume; the old "
                                         "key was not removed")
            write_secret(old_file, key)
            try:
                vol.run(luks.remove_key_argv(vol.cryptsetup, vol.real, old_file), what="luksRemoveKey")
            finally:
                os.unlink(old_file)
    if not check:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(new_file)
        # the old key's slot is gone (read from the metadata: testing a key that opens nothing would
        # make cryptsetup derive every slot's key in turn) and the installed key file opens its own
        slots = vol.dump()["keyslots"]
        old_remains = current_slot is not None and current_slot >= 0 and current_slot in slots
        if old_remains or not vol.opens(key_file=key_file, slot=new_slot if new_slot in slots else None):
            vol.module.fail_json(msg=f"{vol.real}: after the rotation the old key still opens the volume or the "
                                     "installed key does not; look at `cryptsetup luksDump` before rebooting")


def read_head(path):
    try:
        with open(path, "rb") as f:
            return f.read(luks.LUKS2_BINARY_HEADER)
    except FileNotFoundError:
        return b""


def header_backup(vol, path, actions, check):
    """Refresh ``path`` when the header differs from it. A backup whose binary header (sequence id and
    metadata checksum included) equals the device's is current and left alone. Otherwise: cryptsetup
    writes a backup only to a new file, so it goes to the module's private temporary directory first,
    and replaces ``path`` only when it differs."""
    if luks.header_current(read_head(vol.real), read_head(path)):
        return
    tmp = os.path.join(vol.module.tmpdir, f"{vol.name}.header")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    vol.run(luks.header_backup_argv(vol.cryptsetup, vol.real, tmp), what="luksHeaderBackup")
    try:
        with open(tmp, "rb") as f:
            fresh = f.read()
    finally:
        os.unlink(tmp)
    if hashlib.sha256(fresh).hexdigest() == luks.file_sha256(path):
        return
    actions.append(f"LUKS header backup {path}")
    if not check:
        write_secret(path, fresh)


def main():
    module = build_module()
    p = module.params
    device, name, key_dir, check = p["device"], p["name"], p["key_dir"].rstrip("/"), module.check_mode
    try:
        params = luks.luks_params({k: p[k] for k in PARAMS}, name="luks_volume")
        key = luks.normalize_key(p["key"], "key")
        new_key = luks.normalize_key(p["new_key"], "new_key") if p["new_key"] is not None else None
        if not luks.MAPPER_NAME.fullmatch(name):
            raise luks.LuksError(f"name must be 1-64 letters, digits, '.', '-' or '_', got {name!r}")
    except luks.LuksError as exc:
        module.fail_json(msg=str(exc))
    if new_key == key:
        module.fail_json(msg="new_key is the current key: a rotation needs a different key")

    real = os.path.realpath(device)
    exists = os.path.exists(real) and stat.S_ISBLK(os.stat(real).st_mode)
    vol = Volume(module, real, name, key_dir) if exists else None
    info = blkid_probe(module, real) if exists else {}
    is_luks = info.get("TYPE") == "crypto_LUKS"
    key_opens = key_slot = new_slot = None
    if is_luks:
        key_slot = vol.slot_of(key=key)
        if new_key is not None:
            new_slot = vol.slot_of(key=new_key)
        key_opens = key_slot is not None or new_slot is not None
    try:
        plan = luks.plan_volume(
            device=device, exists=exists, probe=info, partitions=partitions_of(real) if exists else [],
            device_mounts=mounts_of(real, read_mounts()) if exists else [],
            holders=holders_of(real) if exists else [], name=name, mapping_backing=mapping_backing(name),
            real=real, key_opens=key_opens, force_format=p["force_format"],
        )  # fmt: skip
    except luks.LuksError as exc:
        module.fail_json(msg=str(exc), device=real)

    actions = []
    key_file = luks.key_path(name, "key", key_dir)
    ensure_key_dir(module, key_dir, actions, check)
    if plan["format"]:
        # a new volume is made with the newest key directly
        key = new_key or key
        new_key = None
    if new_key is None or plan["format"]:
        ensure_key_file(key_file, key, actions, check)
    if plan["wipe"]:
        actions.append(f"wipe the signatures on {real} (force_format)")
        if not check:
            module.run_command(["wipefs", "-a", real], check_rc=True)
    if plan["format"]:
        actions.append(f"format {real} as LUKS2 ({params['cipher']}, {params['key_size']}-bit key, "
                       f"{params['sector_size']}-byte sectors, {params['pbkdf']})")
        if not check:
            vol.run(luks.format_argv(vol.cryptsetup, real, key_file, params, p["label"]), what="luksFormat")
    elif new_key is not None:
        rotate(vol, key, new_key, params, key_file, actions, check, (key_slot, new_slot))
    else:
        # ours already: the installed key file must be the one the controller holds
        pass

    if p["passphrase"] and not (check and plan["format"]):
        if not vol.opens(key=p["passphrase"]):
            actions.append("add the passphrase to a free key slot")
            if not check:
                vol.run(luks.add_key_argv(vol.cryptsetup, real, key_file, "-", params), data=p["passphrase"],
                        what="luksAddKey (passphrase)")
    elif p["passphrase"]:
        actions.append("add the passphrase to a free key slot")

    if plan["open"]:
        actions.append(f"open {real} as /dev/mapper/{name}")
        if not check:
            vol.run(luks.open_argv(vol.cryptsetup, real, name, key_file), what="cryptsetup open")

    uuid = vol.uuid() if exists and not (check and plan["format"]) else ""
    try:
        with open(p["crypttab"]) as f:
            crypttab_before = f.read()
    except FileNotFoundError:
        crypttab_before = ""
    line = luks.crypttab_line(name, uuid or "<new>", key_file, p["crypttab_options"])
    try:
        crypttab_after = luks.update_crypttab(crypttab_before, name, line)
    except luks.LuksError as exc:
        module.fail_json(msg=str(exc))
    if crypttab_after != crypttab_before:
        actions.append(f"crypttab: {line}")
        if not check:
            tmp = p["crypttab"] + ".kafka-metal.tmp"
            with open(tmp, "w") as f:
                f.write(crypttab_after)
            os.chmod(tmp, 0o644)
            os.replace(tmp, p["crypttab"])
            module.run_command(["systemctl", "daemon-reload"], check_rc=True)

    backup = luks.key_path(name, "header", key_dir)
    keyslots, drift = {}, []
    if exists and not (check and plan["format"]):
        if os.path.isdir(key_dir):
            header_backup(vol, backup, actions, check)
        dump = vol.dump()
        keyslots, drift = dump["keyslots"], luks.parameter_drift(dump, params)
    for warning in drift:
        module.warn(f"{device}: {warning}")

    module.exit_json(
        changed=bool(actions), device=real, uuid=uuid, mapped=f"/dev/mapper/{name}",
        header_backup=backup if os.path.exists(backup) else "", header_sha256=luks.file_sha256(backup) or "",
        keyslots={str(k): v for k, v in keyslots.items()},
        drift=drift, actions=actions,
        diff={"before": crypttab_before, "after": crypttab_after, "before_header": p["crypttab"],
              "after_header": p["crypttab"]},
    )  # fmt: skip


if __name__ == "__main__":
    main()
