"""LUKS2 data-disk decisions, pure and unit-tested: the encryption parameters and their validation,
what to do with a device in each state it can be found in, the cryptsetup command lines, the
``/etc/crypttab`` entry, what ``luksDump`` says, and the steps of a key rotation that never leaves
the volume without a key that opens it.

The ``luks_volume`` and ``luks_volume_info`` modules and the ``kafka-metal luks`` command only gather
facts and act on what these functions decide. Keys never appear in a command line: cryptsetup reads
them from root-only files or from its standard input.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import tempfile

# The parameters of a new volume. AES-XTS with a 512-bit key (two AES-256 keys) is cryptsetup's
# default and runs on the CPU's AES instructions; 4096-byte sectors match XFS's block size and cost
# an eighth of the per-sector work of 512; argon2id resists GPU guessing of a passphrase slot.
# Key files are 64 random bytes, so the key derivation protects them little; its cost matters for
# the optional passphrase slot and for the boot-time unlock, which pays it once per volume.
LUKS_DEFAULTS = {
    "cipher": "aes-xts-plain64",
    "key_size": 512,
    "sector_size": 4096,
    "pbkdf": "argon2id",
    "pbkdf_memory": 262144,
    "pbkdf_parallel": 2,
    "iter_time": 2000,
    # 0: cryptsetup benchmarks the host for iter_time; N: exactly N iterations (and, for argon2, exactly
    # pbkdf_memory), the same cost on every host whatever its load when the disk is formatted
    "pbkdf_iterations": 0,
}
# cryptsetup's lower bounds for a forced iteration count
MIN_ITERATIONS = {"argon2id": 4, "argon2i": 4, "pbkdf2": 1000}
CIPHER_KEY_SIZES = {
    "aes-xts-plain64": (256, 512),
    "serpent-xts-plain64": (256, 512),
    "twofish-xts-plain64": (256, 512),
    "aes-cbc-essiv:sha256": (128, 192, 256),
    "xchacha20,aes-adiantum-plain64": (256,),
}
SECTOR_SIZES = (512, 1024, 2048, 4096)
PBKDFS = ("argon2id", "argon2i", "pbkdf2")
MAPPER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
KEY_DIR = "/etc/kafka-metal/luks"
MIN_KEY_CHARS = 32
CRYPTTAB_OPTIONS = "luks,nofail"


class LuksError(ValueError):
    """Bad input or a state that may not be touched: the message names the problem and the fix."""


# --- parameters and inventory ---------------------------------------------------------------------


def _int(value: object, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit():
        raise LuksError(f"{name} must be a whole number, got {value!r}")
    number = int(value)
    if not low <= number <= high:
        raise LuksError(f"{name} must be {low}-{high}, got {number}")
    return number


def luks_params(overrides: dict | None = None, name: str = "tuning_luks") -> dict:
    """``LUKS_DEFAULTS`` with ``overrides`` merged over them, every value checked."""
    overrides = overrides or {}
    if not isinstance(overrides, dict):
        raise LuksError(f"{name} must be a mapping of LUKS parameters")
    unknown = sorted(set(overrides) - set(LUKS_DEFAULTS))
    if unknown:
        raise LuksError(f"{name} has unknown key(s) {', '.join(unknown)} (known: {', '.join(LUKS_DEFAULTS)})")
    p = {**LUKS_DEFAULTS, **{k: v for k, v in overrides.items() if v is not None}}
    cipher = p["cipher"]
    if cipher not in CIPHER_KEY_SIZES:
        raise LuksError(f"{name}.cipher {cipher!r} is not one kafka-metal supports: {', '.join(CIPHER_KEY_SIZES)}")
    p["key_size"] = _int(p["key_size"], f"{name}.key_size", 128, 512)
    if p["key_size"] not in CIPHER_KEY_SIZES[cipher]:
        sizes = " or ".join(str(s) for s in CIPHER_KEY_SIZES[cipher])
        raise LuksError(f"{name}.key_size {p['key_size']} does not fit {cipher}: use {sizes} (bits)")
    p["sector_size"] = _int(p["sector_size"], f"{name}.sector_size", 512, 4096)
    if p["sector_size"] not in SECTOR_SIZES:
        sizes = ", ".join(map(str, SECTOR_SIZES))
        raise LuksError(f"{name}.sector_size must be one of {sizes}, got {p['sector_size']}")
    if p["pbkdf"] not in PBKDFS:
        raise LuksError(f"{name}.pbkdf must be one of {', '.join(PBKDFS)}, got {p['pbkdf']!r}")
    # cryptsetup's own bounds: argon2 memory 32 KiB to 4 GiB, up to 4 threads
    p["pbkdf_memory"] = _int(p["pbkdf_memory"], f"{name}.pbkdf_memory (KiB)", 32, 4194304)
    p["pbkdf_parallel"] = _int(p["pbkdf_parallel"], f"{name}.pbkdf_parallel", 1, 4)
    p["iter_time"] = _int(p["iter_time"], f"{name}.iter_time (ms)", 100, 60000)
    p["pbkdf_iterations"] = _int(p["pbkdf_iterations"], f"{name}.pbkdf_iterations", 0, 4294967295)
    low = MIN_ITERATIONS[p["pbkdf"]]
    if 0 < p["pbkdf_iterations"] < low:
        raise LuksError(
            f"{name}.pbkdf_iterations must be 0 (benchmark for iter_time) or at least {low} for {p['pbkdf']}, "
            f"got {p['pbkdf_iterations']}"
        )
    return p


def pbkdf_args(params: dict) -> list[str]:
    iterations = params.get("pbkdf_iterations") or 0
    if iterations:
        args = ["--pbkdf", params["pbkdf"], "--pbkdf-force-iterations", str(iterations)]
    else:
        args = ["--pbkdf", params["pbkdf"], "--iter-time", str(params["iter_time"])]
    if params["pbkdf"].startswith("argon2"):
        args += ["--pbkdf-memory", str(params["pbkdf_memory"]), "--pbkdf-parallel", str(params["pbkdf_parallel"])]
    return args


def default_mapper_name(path: str) -> str:
    """``/var/lib/kafka/data1`` -> ``kafka-data1``."""
    base = re.sub(r"[^A-Za-z0-9_.-]", "-", os.path.basename(path.rstrip("/")) or "data")
    return f"kafka-{base}"[:64]


def mapper_name(disk: dict) -> str:
    return str(disk.get("luks_name") or default_mapper_name(str(disk.get("path", ""))))


def encryption_problems(disks: object, name: str = "tuning_data_disks") -> list[str]:
    """The LUKS part of the data-disk entries (``encrypt``, ``luks_name``), checked before any host is
    touched. The rest of each entry is checked by the data-disk rules."""
    if not isinstance(disks, list):
        return []
    out, names = [], {}
    for i, disk in enumerate(disks):
        if not isinstance(disk, dict):
            continue
        where = f"{name}[{i}]"
        encrypt = disk.get("encrypt", False)
        if not isinstance(encrypt, bool):
            out.append(f"{where}.encrypt must be true or false, got {encrypt!r}")
            continue
        if "luks_name" in disk and not encrypt:
            out.append(f"{where}.luks_name is set but encrypt is not true: set encrypt: true or drop luks_name")
        if not encrypt:
            continue
        mapped = mapper_name(disk)
        if not MAPPER_NAME.fullmatch(mapped) or mapped in ("control",):
            out.append(f"{where}.luks_name must be 1-64 letters, digits, '.', '-' or '_', got {mapped!r}")
        elif mapped in names:
            out.append(f"{where}: the LUKS name {mapped} is also used by {name}[{names[mapped]}]; set luks_name")
        else:
            names[mapped] = i
    return out


# --- keys -----------------------------------------------------------------------------------------


def new_key() -> str:
    """A fresh volume key file's content: 64 random bytes, base64 (so it can live in a vault too)."""
    return base64.b64encode(os.urandom(64)).decode("ascii")


def normalize_key(key: object, name: str = "key") -> str:
    """A key as stored in a file: the text without surrounding whitespace (a vault block scalar ends in
    a newline that must not become part of the key)."""
    if not isinstance(key, str):
        raise LuksError(f"{name} must be a string (a key file's text); a vault value works")
    text = key.strip()
    if len(text) < MIN_KEY_CHARS:
        raise LuksError(
            f"{name} is too short: a volume key needs at least {MIN_KEY_CHARS} characters "
            "(leave it unset and kafka-metal generates 64 random bytes)"
        )
    return text


def file_sha256(path: str) -> str | None:
    """The sha256 of a file's bytes, or None when it does not exist (header backups, host and controller)."""
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except FileNotFoundError:
        return None


def write_secret(path: str, data: str | bytes, mode: int = 0o400) -> None:
    """Write ``data`` to ``path`` atomically, readable by its owner only from the first byte on."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".tmp-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def key_path(mapped: str, suffix: str = "key", key_dir: str = KEY_DIR) -> str:
    return f"{key_dir}/{mapped}.{suffix}"


# --- what a device holds and what to do with it ----------------------------------------------------


def plan_volume(
    *,
    device: str,
    exists: bool,
    probe: dict[str, str],
    partitions: list[str],
    device_mounts: list[str],
    holders: list[str],
    name: str,
    mapping_backing: str | None,
    real: str,
    key_opens: bool | None,
    force_format: bool,
) -> dict:
    """What to do with one device to be encrypted: ``{'format', 'wipe', 'open'}`` (booleans), or a
    LuksError saying why nothing may be done.

    ``holders`` are the device-mapper names that hold the device now; ``mapping_backing`` is the
    device behind an existing mapping called ``name`` (None when there is none); ``key_opens`` says
    whether the volume's key opens the LUKS header on the device (None when there is no header).

    - No signature at all: format it as LUKS2, open it.
    - A LUKS header the key opens: ours. Never formatted again (re-runs keep the data); opened if closed.
    - A LUKS header the key does not open, a file system, a partition table or partitions, swap: refused
      unless the inventory sets ``force_format: true`` for that device.
    - Refused even when forced: a device that is mounted, held by another mapping or RAID, or open
      under our name with a key we do not have; a name already mapped to another device.
    """
    if not exists:
        raise LuksError(f"{device} does not exist on this host: check the device path in tuning_data_disks")
    if mapping_backing and mapping_backing != real:
        raise LuksError(
            f"the device-mapper name {name} is already in use for {mapping_backing}, not {device}: "
            "choose another luks_name (nothing was changed)"
        )
    if device_mounts:
        raise LuksError(f"{device} is mounted at {', '.join(device_mounts)}; unmount it first (nothing was changed)")
    others = [h for h in holders if h != name]
    if others:
        raise LuksError(
            f"{device} is in use by {', '.join(others)} (a device-mapper volume or RAID); "
            "kafka-metal does not take over a device another layer holds (nothing was changed)"
        )
    fstype, pttype = probe.get("TYPE", ""), probe.get("PTTYPE", "")
    is_open = name in holders
    if fstype == "crypto_LUKS" and not partitions:
        if key_opens:
            return {"format": False, "wipe": False, "open": not is_open}
        if is_open:
            raise LuksError(
                f"{device} is open as {name} but the key kafka-metal holds for it does not open its "
                "header: restore the right key (or rotate it) instead; nothing was changed"
            )
        foreign = "a LUKS header that the volume's key does not open (another key, or another volume)"
    elif partitions:
        foreign = f"partitions ({', '.join(partitions)})"
    elif pttype:
        foreign = f"a {pttype} partition table"
    elif fstype:
        foreign = f"a file system or signature ({fstype})"
    else:
        return {"format": True, "wipe": False, "open": True}
    if not force_format:
        raise LuksError(
            f"{device} already holds {foreign}; kafka-metal encrypts only empty disks. If its contents "
            "may be destroyed, set force_format: true for this device in tuning_data_disks "
            "(nothing was changed)"
        )
    return {"format": True, "wipe": True, "open": True}


# --- command lines (keys only ever in files or on standard input) --------------------------------


def format_argv(cryptsetup: str, device: str, key_file: str, params: dict, label: str | None = None) -> list[str]:
    argv = [
        cryptsetup,
        "luksFormat",
        "--batch-mode",
        "--type",
        "luks2",
        "--cipher",
        params["cipher"],
        "--key-size",
        str(params["key_size"]),
        "--sector-size",
        str(params["sector_size"]),
        *pbkdf_args(params),
    ]
    if label:
        argv += ["--label", label]
    return [*argv, "--key-file", key_file, device]


def open_argv(cryptsetup: str, device: str, name: str, key_file: str) -> list[str]:
    return [cryptsetup, "open", "--type", "luks2", "--key-file", key_file, device, name]


def test_key_argv(cryptsetup: str, device: str, key_file: str, slot: int | None = None) -> list[str]:
    """Exit 0 when the key opens a key slot (``slot`` only, when given; a key that opens none makes
    cryptsetup try every slot, each at the full key derivation cost); 2 when none does. Verbose, so
    the output names the slot (:func:`unlocked_slot`). Needs no device-mapper."""
    argv = [cryptsetup, "open", "--test-passphrase", "--verbose", "--type", "luks2", "--key-file", key_file]
    if slot is not None:
        argv += ["--key-slot", str(slot)]
    return [*argv, device]


def unlocked_slot(output: str) -> int | None:
    """The slot a verbose ``cryptsetup open`` reports it unlocked (``Key slot 2 unlocked.``)."""
    m = re.search(r"^Key slot (\d+) unlocked\.", output or "", re.M)
    return int(m.group(1)) if m else None


def add_key_argv(cryptsetup: str, device: str, auth_key_file: str, new_key_file: str, params: dict) -> list[str]:
    """Add ``new_key_file`` (``-`` for standard input) to a free slot, authorised by ``auth_key_file``."""
    return [
        cryptsetup,
        "luksAddKey",
        "--batch-mode",
        *pbkdf_args(params),
        "--key-file",
        auth_key_file,
        device,
        new_key_file,
    ]


def remove_key_argv(cryptsetup: str, device: str, key_file: str) -> list[str]:
    """Remove the slot ``key_file`` opens. Only ever run after another key was proved to open."""
    return [cryptsetup, "luksRemoveKey", "--batch-mode", device, key_file]


def header_backup_argv(cryptsetup: str, device: str, backup_file: str) -> list[str]:
    return [cryptsetup, "luksHeaderBackup", "--batch-mode", device, "--header-backup-file", backup_file]


LUKS2_MAGIC = b"LUKS\xba\xbe"
LUKS2_BINARY_HEADER = 4096


def header_identity(data: bytes) -> tuple[str, int, bytes] | None:
    """(UUID, sequence id, binary header) of a LUKS2 primary header at the start of ``data``, else None.

    LUKS2 raises the sequence id on every metadata write, and the binary header's checksum covers the
    JSON metadata; a key slot is never added, changed or removed without both. So a backup whose first
    4096 bytes equal the device's is still the device's header, and need not be taken again (taking
    one reads and writes 16 MiB with the default layout)."""
    head = bytes(data[:LUKS2_BINARY_HEADER])
    if len(head) < LUKS2_BINARY_HEADER or head[:6] != LUKS2_MAGIC or int.from_bytes(head[6:8], "big") != 2:
        return None
    seqid = int.from_bytes(head[16:24], "big")
    uuid = head[168:208].split(b"\0", 1)[0].decode("ascii", "replace")
    return uuid, seqid, head


def header_current(device_head: bytes, backup_head: bytes) -> bool:
    """Whether a header backup starting with ``backup_head`` is the header now on the device."""
    device = header_identity(device_head)
    return device is not None and device == header_identity(backup_head)


# --- crypttab -------------------------------------------------------------------------------------


def crypttab_line(name: str, uuid: str, key_file: str, options: str = CRYPTTAB_OPTIONS) -> str:
    return f"{name} UUID={uuid} {key_file} {options}"


def update_crypttab(text: str, name: str, line: str) -> str:
    """crypttab with exactly one entry for ``name`` (ours), every other line kept as it is. An entry
    of another name for the same UUID is an error: two unlocks of one device at boot."""
    uuid = line.split()[1]
    out, placed = [], False
    for raw in text.splitlines():
        fields = raw.split()
        if fields and not fields[0].startswith("#"):
            if fields[0] == name:
                if not placed:
                    out.append(line)
                    placed = True
                continue
            if len(fields) >= 2 and fields[1] == uuid:
                raise LuksError(
                    f"/etc/crypttab already unlocks {uuid} as {fields[0]}; remove that entry or set "
                    f"luks_name: {fields[0]} (nothing was changed)"
                )
        out.append(raw)
    if not placed:
        out.append(line)
    return "\n".join(out) + "\n"


# --- what luksDump says ---------------------------------------------------------------------------


def parse_dump(text: str) -> dict:
    """``cryptsetup luksDump --dump-json-metadata`` -> the parameters that matter, in the same names
    as ``LUKS_DEFAULTS``, plus the key slots (``{slot: {'pbkdf', 'memory', 'parallel', 'key_size'}}``)."""
    try:
        meta = json.loads(text)
        segment = meta["segments"]["0"]
        slots = meta.get("keyslots", {})
    except (ValueError, KeyError, TypeError) as exc:
        raise LuksError(f"cannot read the LUKS2 metadata ({type(exc).__name__}: {exc})") from None
    keyslots = {}
    for slot, info in sorted(slots.items(), key=lambda kv: int(kv[0])):
        kdf = info.get("kdf", {})
        keyslots[int(slot)] = {
            "pbkdf": kdf.get("type"),
            "memory": kdf.get("memory"),
            "parallel": kdf.get("cpus"),
            "iterations": kdf.get("iterations") or kdf.get("time"),
        }
    key_bytes = next((info.get("key_size") for info in slots.values() if info.get("key_size")), None)
    return {
        "cipher": segment.get("encryption"),
        "sector_size": segment.get("sector_size"),
        "key_size": key_bytes * 8 if key_bytes else None,
        "keyslots": keyslots,
    }


def parameter_drift(dump: dict, params: dict) -> list[str]:
    """How a volume differs from the asked parameters. Cipher, key size and sector size are fixed at
    format time (changing them means re-encrypting, which kafka-metal does not do behind an operator's
    back): the differences are reported, not acted on."""
    out = []
    for key in ("cipher", "key_size", "sector_size"):
        if dump.get(key) is not None and dump.get(key) != params[key]:
            out.append(
                f"{key} is {dump[key]} on the volume, {params[key]} asked (set at format time; re-encrypt to change it)"
            )
    return out


# --- key rotation ---------------------------------------------------------------------------------

ROTATION_STEPS = ("add_new", "install_new", "remove_current")


def plan_rotation(*, current_opens: bool, new_opens: bool, installed: str) -> list[str]:
    """The remaining steps of a key rotation on one volume, from what is true now. Safe to resume at
    any point: the key file at the crypttab's path opens the volume before, during and after.

    ``installed`` is which key the host's key file holds: ``current``, ``new``, ``other`` or ``missing``.

    1. ``add_new``: add the new key to a free slot (authorised by the current key); then prove it opens.
    2. ``install_new``: replace the host's key file with the new key (atomic rename).
    3. ``remove_current``: remove the current key's slot, only once the new key opens and is installed.
    """
    if installed not in ("current", "new", "other", "missing"):
        raise ValueError(f"installed must be current, new, other or missing, not {installed!r}")
    if not current_opens and not new_opens:
        raise LuksError(
            "neither the current nor the new key opens the volume: do not reboot this host; restore "
            "the key that opens it (the controller's key store) or the LUKS header backup"
        )
    steps = []
    if not new_opens:
        steps.append("add_new")
    if installed != "new":
        steps.append("install_new")
    if current_opens:
        steps.append("remove_current")
    return steps
