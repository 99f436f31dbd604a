"""LUKS2 data-disk decisions: parameters, inventory entries, what happens to a device in each state,
cryptsetup command lines, crypttab, luksDump, and the steps of a key rotation."""

import base64
import json
import os

import pytest
from ansible_collections.metal.kafka.plugins.module_utils import luks
from ansible_collections.metal.kafka.plugins.module_utils.luks import LuksError

# --- parameters -----------------------------------------------------------------------------------


def test_defaults_are_valid_and_overrides_merge():
    assert luks.luks_params() == luks.LUKS_DEFAULTS
    p = luks.luks_params({"pbkdf_memory": "65536", "iter_time": 500, "sector_size": None})
    assert (p["pbkdf_memory"], p["iter_time"], p["sector_size"]) == (65536, 500, 4096)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"cipher": "aes-ecb"}, r"cipher 'aes-ecb' is not one kafka-metal supports: aes-xts-plain64"),
        ({"key_size": 256, "cipher": "aes-cbc-essiv:sha256"}, None),
        ({"key_size": 384}, r"key_size 384 does not fit aes-xts-plain64: use 256 or 512 \(bits\)"),
        ({"key_size": True}, r"key_size must be a whole number, got True"),
        ({"sector_size": 3000}, r"sector_size must be one of 512, 1024, 2048, 4096, got 3000"),
        ({"sector_size": 8192}, r"sector_size must be 512-4096, got 8192"),
        ({"pbkdf": "scrypt"}, r"pbkdf must be one of argon2id, argon2i, pbkdf2, got 'scrypt'"),
        ({"pbkdf_memory": 8}, r"pbkdf_memory \(KiB\) must be 32-4194304, got 8"),
        ({"pbkdf_parallel": 8}, r"pbkdf_parallel must be 1-4, got 8"),
        ({"iter_time": "2s"}, r"iter_time \(ms\) must be a whole number, got '2s'"),
        ({"hash": "sha1"}, r"unknown key\(s\) hash \(known: cipher, key_size"),
    ],
)
def test_parameters_are_checked_with_the_fix(overrides, message):
    if message is None:
        assert luks.luks_params(overrides)["key_size"] == 256
        return
    with pytest.raises(LuksError, match=message):
        luks.luks_params(overrides)


def test_pbkdf_arguments_follow_the_function():
    assert luks.pbkdf_args(luks.LUKS_DEFAULTS) == [
        "--pbkdf",
        "argon2id",
        "--iter-time",
        "2000",
        "--pbkdf-memory",
        "262144",
        "--pbkdf-parallel",
        "2",
    ]
    assert luks.pbkdf_args(luks.luks_params({"pbkdf": "pbkdf2"})) == ["--pbkdf", "pbkdf2", "--iter-time", "2000"]


def test_a_forced_iteration_count_replaces_the_benchmark():
    p = luks.luks_params({"pbkdf_iterations": 4, "pbkdf_memory": 32768, "pbkdf_parallel": 1})
    assert luks.pbkdf_args(p) == [
        "--pbkdf", "argon2id", "--pbkdf-force-iterations", "4", "--pbkdf-memory", "32768", "--pbkdf-parallel", "1",
    ]  # fmt: skip
    p = luks.luks_params({"pbkdf": "pbkdf2", "pbkdf_iterations": "100000"})
    assert luks.pbkdf_args(p) == ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "100000"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"pbkdf_iterations": 3}, r"pbkdf_iterations must be 0 \(benchmark for iter_time\) or at least 4 for argon2id"),
        ({"pbkdf": "pbkdf2", "pbkdf_iterations": 999}, r"at least 1000 for pbkdf2, got 999"),
        ({"pbkdf_iterations": -1}, r"pbkdf_iterations must be a whole number, got -1"),
        ({"pbkdf_iterations": True}, r"pbkdf_iterations must be a whole number, got True"),
    ],
)
def test_bad_iteration_counts_are_refused(overrides, message):
    with pytest.raises(LuksError, match=message):
        luks.luks_params(overrides)


def test_a_key_test_can_name_its_slot_and_reports_the_one_it_opened():
    assert luks.test_key_argv("cryptsetup", "/dev/vdb", "-", 2) == [
        "cryptsetup", "open", "--test-passphrase", "--verbose", "--type", "luks2", "--key-file", "-",
        "--key-slot", "2", "/dev/vdb",
    ]  # fmt: skip
    assert "--key-slot" not in luks.test_key_argv("cryptsetup", "/dev/vdb", "/k")
    assert luks.unlocked_slot("Key slot 2 unlocked.\nCommand successful.\n") == 2
    assert luks.unlocked_slot("No key available with this passphrase.\n") is None
    assert luks.unlocked_slot("") is None


# --- inventory entries ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("disks", "problems"),
    [
        ([{"device": "/dev/vdb", "path": "/var/lib/kafka/data1", "encrypt": True}], []),
        ([{"device": "/dev/vdb", "path": "/d1"}, {"device": "/dev/vdc", "path": "/d2", "encrypt": False}], []),
        (
            [{"device": "/dev/vdb", "path": "/d1", "encrypt": "yes"}],
            ["tuning_data_disks[0].encrypt must be true or false, got 'yes'"],
        ),
        (
            [{"device": "/dev/vdb", "path": "/d1", "luks_name": "x"}],
            ["tuning_data_disks[0].luks_name is set but encrypt is not true: set encrypt: true or drop luks_name"],
        ),
        (
            [{"device": "/dev/vdb", "path": "/d1", "encrypt": True, "luks_name": "bad name"}],
            ["tuning_data_disks[0].luks_name must be 1-64 letters, digits, '.', '-' or '_', got 'bad name'"],
        ),
        (
            [
                {"device": "/dev/vdb", "path": "/a/data", "encrypt": True},
                {"device": "/dev/vdc", "path": "/b/data", "encrypt": True},
            ],
            ["tuning_data_disks[1]: the LUKS name kafka-data is also used by tuning_data_disks[0]; set luks_name"],
        ),
        ("not a list", []),
    ],
)
def test_encryption_entries(disks, problems):
    assert luks.encryption_problems(disks) == problems


def test_mapper_names():
    assert luks.default_mapper_name("/var/lib/kafka/data1/") == "kafka-data1"
    assert luks.default_mapper_name("/srv/kafka data") == "kafka-kafka-data"
    assert luks.mapper_name({"path": "/x/d2", "luks_name": "secret-d2"}) == "secret-d2"


# --- keys -----------------------------------------------------------------------------------------


def test_new_keys_are_64_random_bytes_and_differ():
    a, b = luks.new_key(), luks.new_key()
    assert a != b and len(base64.b64decode(a)) == 64 and luks.normalize_key(a) == a


def test_keys_lose_surrounding_whitespace_and_short_ones_are_refused():
    key = "k" * 40
    assert luks.normalize_key(key + "\n") == key
    with pytest.raises(LuksError, match="too short: a volume key needs at least 32 characters"):
        luks.normalize_key("secret\n")
    with pytest.raises(LuksError, match="must be a string"):
        luks.normalize_key(12345)


# --- the device's starting state decides ---------------------------------------------------------

REAL = "/dev/vdb"


def plan(**kw):
    args = dict(
        device="/dev/disk/by-id/virtio-kmdata1",
        exists=True,
        probe={},
        partitions=[],
        device_mounts=[],
        holders=[],
        name="kafka-data1",
        mapping_backing=None,
        real=REAL,
        key_opens=None,
        force_format=False,
    )
    args.update(kw)
    return luks.plan_volume(**args)


FORMAT = {"format": True, "wipe": False, "open": True}
WIPE = {"format": True, "wipe": True, "open": True}
KEEP_OPEN = {"format": False, "wipe": False, "open": True}
NOTHING = {"format": False, "wipe": False, "open": False}
LUKS = {"TYPE": "crypto_LUKS", "UUID": "u-1"}


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("empty", FORMAT),
        ("ours, closed", KEEP_OPEN),
        ("ours, open", NOTHING),
        ("foreign luks, forced", WIPE),
        ("ext4, forced", WIPE),
        ("partition table, forced", WIPE),
    ],
)
def test_what_is_done_for_each_starting_state(state, expected):
    kw = {
        "empty": {},
        "ours, closed": {"probe": LUKS, "key_opens": True},
        "ours, open": {"probe": LUKS, "key_opens": True, "holders": ["kafka-data1"], "mapping_backing": REAL},
        "foreign luks, forced": {"probe": LUKS, "key_opens": False, "force_format": True},
        "ext4, forced": {"probe": {"TYPE": "ext4"}, "force_format": True},
        "partition table, forced": {"probe": {"PTTYPE": "gpt"}, "force_format": True},
    }[state]
    assert plan(**kw) == expected


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"exists": False}, r"virtio-kmdata1 does not exist on this host: check the device path"),
        ({"probe": {"TYPE": "ext4"}}, r"already holds a file system or signature \(ext4\); .*set force_format: true"),
        ({"probe": {"TYPE": "xfs"}}, r"already holds a file system or signature \(xfs\)"),
        ({"probe": {"TYPE": "swap"}}, r"\(swap\)"),
        ({"probe": {"PTTYPE": "dos"}}, r"already holds a dos partition table"),
        ({"partitions": ["vdb1"], "probe": LUKS, "key_opens": True}, r"already holds partitions \(vdb1\)"),
        ({"probe": LUKS, "key_opens": False}, r"a LUKS header that the volume's key does not open .*force_format"),
        (
            {"probe": {"TYPE": "ext4"}, "device_mounts": ["/mnt"], "force_format": True},
            r"is mounted at /mnt; unmount it first \(nothing was changed\)",
        ),
        (
            {"probe": LUKS, "key_opens": True, "holders": ["other-vol"], "force_format": True},
            r"is in use by other-vol \(a device-mapper volume or RAID\)",
        ),
        ({"mapping_backing": "/dev/vdc"}, r"the device-mapper name kafka-data1 is already in use for /dev/vdc"),
        (
            {
                "probe": LUKS,
                "key_opens": False,
                "holders": ["kafka-data1"],
                "mapping_backing": REAL,
                "force_format": True,
            },
            r"is open as kafka-data1 but the key kafka-metal holds for it does not open",
        ),
    ],
)
def test_refusals_name_the_problem_and_the_fix(kw, message):
    with pytest.raises(LuksError, match=message):
        plan(**kw)


def test_every_refusal_says_nothing_was_changed():
    for kw in ({"probe": {"TYPE": "ext4"}}, {"probe": LUKS, "key_opens": False}, {"device_mounts": ["/x"]}):
        with pytest.raises(LuksError, match=r"nothing was changed"):
            plan(**kw)


# --- command lines --------------------------------------------------------------------------------


def test_format_command_carries_every_parameter_and_no_key():
    argv = luks.format_argv(
        "/sbin/cryptsetup", "/dev/vdb", "/etc/kafka-metal/luks/kafka-data1.key", luks.LUKS_DEFAULTS, label="kafka-data1"
    )
    assert argv[:5] == ["/sbin/cryptsetup", "luksFormat", "--batch-mode", "--type", "luks2"]
    pairs = dict(zip(argv[5::2], argv[6::2], strict=False))
    assert pairs["--cipher"] == "aes-xts-plain64" and pairs["--key-size"] == "512"
    assert pairs["--sector-size"] == "4096" and pairs["--pbkdf"] == "argon2id" and pairs["--label"] == "kafka-data1"
    assert argv[-3:] == ["--key-file", "/etc/kafka-metal/luks/kafka-data1.key", "/dev/vdb"]


def test_key_commands():
    assert luks.open_argv("cs", "/dev/vdb", "n", "/k") == [
        "cs",
        "open",
        "--type",
        "luks2",
        "--key-file",
        "/k",
        "/dev/vdb",
        "n",
    ]
    assert luks.test_key_argv("cs", "/dev/vdb", "-")[-4:] == ["luks2", "--key-file", "-", "/dev/vdb"]
    add = luks.add_key_argv("cs", "/dev/vdb", "/old", "/new", luks.LUKS_DEFAULTS)
    assert add[:3] == ["cs", "luksAddKey", "--batch-mode"] and add[-4:] == ["--key-file", "/old", "/dev/vdb", "/new"]
    assert luks.remove_key_argv("cs", "/dev/vdb", "/old") == ["cs", "luksRemoveKey", "--batch-mode", "/dev/vdb", "/old"]


# --- crypttab -------------------------------------------------------------------------------------


def test_crypttab_entry_by_uuid_replaces_only_ours():
    line = luks.crypttab_line("kafka-data1", "u-1", "/etc/kafka-metal/luks/kafka-data1.key")
    assert line == "kafka-data1 UUID=u-1 /etc/kafka-metal/luks/kafka-data1.key luks,nofail"
    before = "# <target name> <source device> <key file> <options>\nswap /dev/vda3 /dev/urandom swap\n"
    after = luks.update_crypttab(before, "kafka-data1", line)
    assert after == before + line + "\n"
    assert luks.update_crypttab(after, "kafka-data1", line) == after
    moved = luks.update_crypttab(after.replace("u-1", "u-0"), "kafka-data1", line)
    assert moved == after


def test_crypttab_refuses_a_second_name_for_the_same_volume():
    with pytest.raises(LuksError, match=r"already unlocks UUID=u-1 as old-name; remove that entry or set luks_name"):
        luks.update_crypttab("old-name UUID=u-1 none luks\n", "kafka-data1", "kafka-data1 UUID=u-1 /k luks")


# --- luksDump -------------------------------------------------------------------------------------

DUMP = {
    "keyslots": {
        "1": {"type": "luks2", "key_size": 64, "kdf": {"type": "argon2id", "time": 4, "memory": 262144, "cpus": 2}},
        "0": {"type": "luks2", "key_size": 64, "kdf": {"type": "pbkdf2", "hash": "sha256", "iterations": 1000}},
    },
    "segments": {"0": {"type": "crypt", "offset": "16777216", "encryption": "aes-xts-plain64", "sector_size": 4096}},
}


def test_dump_is_read_into_the_parameter_names():
    dump = luks.parse_dump(json.dumps(DUMP))
    assert (dump["cipher"], dump["key_size"], dump["sector_size"]) == ("aes-xts-plain64", 512, 4096)
    assert list(dump["keyslots"]) == [0, 1]
    assert dump["keyslots"][1] == {"pbkdf": "argon2id", "memory": 262144, "parallel": 2, "iterations": 4}
    assert luks.parameter_drift(dump, luks.LUKS_DEFAULTS) == []
    drift = luks.parameter_drift(dump, luks.luks_params({"sector_size": 512}))
    assert drift == ["sector_size is 4096 on the volume, 512 asked (set at format time; re-encrypt to change it)"]


@pytest.mark.parametrize("text", ["", "{}", "not json", '{"segments": {}}'])
def test_unreadable_dump_is_an_error(text):
    with pytest.raises(LuksError, match="cannot read the LUKS2 metadata"):
        luks.parse_dump(text)


# --- key rotation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current_opens", "new_opens", "installed", "steps"),
    [
        (True, False, "current", ["add_new", "install_new", "remove_current"]),  # start
        (True, True, "current", ["install_new", "remove_current"]),  # stopped after adding
        (True, True, "new", ["remove_current"]),  # stopped after installing
        (True, True, "missing", ["install_new", "remove_current"]),  # stopped mid-install
        (False, True, "new", []),  # done
        (False, True, "current", ["install_new"]),  # slot removed, file not (cannot happen in order; repaired)
        (True, False, "other", ["add_new", "install_new", "remove_current"]),
    ],
)
def test_rotation_resumes_from_any_point(current_opens, new_opens, installed, steps):
    assert luks.plan_rotation(current_opens=current_opens, new_opens=new_opens, installed=installed) == steps


def test_rotation_never_removes_the_current_key_before_the_new_one_is_in_place():
    for current_opens in (True, False):
        for new_opens in (True, False):
            for installed in ("current", "new", "other", "missing"):
                if not (current_opens or new_opens):
                    continue
                steps = luks.plan_rotation(current_opens=current_opens, new_opens=new_opens, installed=installed)
                assert steps == [s for s in luks.ROTATION_STEPS if s in steps]  # always in this order
                if "remove_current" in steps:
                    assert new_opens or "add_new" in steps
                    assert installed == "new" or "install_new" in steps


def test_rotation_with_no_working_key_stops_and_says_so():
    with pytest.raises(LuksError, match="neither the current nor the new key opens the volume: do not reboot"):
        luks.plan_rotation(current_opens=False, new_opens=False, installed="current")


# --- the role's view: filters and the command line's table --------------------------------------


def test_role_filters_split_encrypted_disks_and_point_the_file_system_at_the_volume():
    from ansible_collections.metal.kafka.plugins.filter.kafka import tuning_disk_devices, tuning_luks_disks

    disks = [
        {"device": "/dev/vdb", "path": "/var/lib/kafka/data1", "encrypt": True, "force_format": True},
        {"device": "/dev/vdc", "path": "/var/lib/kafka/data2", "encrypt": True, "luks_name": "d2"},
        {"device": "/dev/vdd", "path": "/var/lib/kafka/data3"},
    ]
    enc = tuning_luks_disks(disks, {"iter_time": 500}, {"d2": "vault key " * 4})
    assert [(e["name"], e["mapped"], e["params"]["iter_time"]) for e in enc] == [
        ("kafka-data1", "/dev/mapper/kafka-data1", 500),
        ("d2", "/dev/mapper/d2", 500),
    ]
    assert "key" not in enc[0] and enc[1]["key"].startswith("vault key")
    devices = tuning_disk_devices(disks)
    assert [d["device"] for d in devices] == ["/dev/mapper/kafka-data1", "/dev/mapper/d2", "/dev/vdd"]
    # forcing is for the raw device (LUKS format); the opened volume is never forced
    assert devices[0]["force_format"] is False


def test_role_validation_reports_luks_problems_before_any_host_changes():
    from ansible_collections.metal.kafka.plugins.filter.kafka import tuning_problems

    disks = [{"device": "/dev/vdb", "path": "/var/lib/kafka/data1", "encrypt": "yes"}]
    problems = tuning_problems(disks, {"vm.swappiness": 1}, {}, "madvise", "madvise", {"key_size": 100})
    assert problems == [
        "tuning_data_disks[0].encrypt must be true or false, got 'yes'",
        "tuning_luks.key_size must be 128-512, got 100",
    ]


def test_status_table_and_problems():
    from kafka_metal.luks import status_rows

    results = {
        "node2": {"unreachable": True, "msg": "ssh: connect refused"},
        "node1": {
            "volumes": [
                {"name": "kafka-data1", "device": "/dev/vdb", "open": True, "mounted_at": ["/var/lib/kafka/data1"],
                 "cipher": "aes-xts-plain64", "key_size": 512, "sector_size": 4096, "keyslots": {"0": {}, "1": {}},
                 "problems": []},
                {"name": "kafka-data2", "device": "/dev/vdc", "open": False, "mounted_at": [], "cipher": None,
                 "keyslots": {}, "problems": ["/etc/kafka-metal/luks/kafka-data2.key is missing"]},
            ]
        },
        "node3": {"volumes": []},
    }  # fmt: skip
    rows, problems = status_rows(results)
    assert rows[0] == ("node1", "kafka-data1", "/dev/vdb", "open", "/var/lib/kafka/data1",
                       "aes-xts-plain64 512b 4096B", "0,1", "ok")  # fmt: skip
    assert rows[1][3] == "closed" and rows[1][-1].endswith("kafka-data2.key is missing")
    assert rows[2][:2] == ("node2", "-") and rows[3] == ("node3", "(none)", "", "", "", "", "", "")
    assert problems == [
        "node1 kafka-data2: /etc/kafka-metal/luks/kafka-data2.key is missing",
        "node2: ssh: connect refused",
    ]


def _luks2_head(seqid: int, uuid: str = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9", csum: bytes = b"\x01" * 64) -> bytes:
    head = bytearray(4096)
    head[0:6] = b"LUKS\xba\xbe"
    head[6:8] = (2).to_bytes(2, "big")
    head[8:16] = (16384).to_bytes(8, "big")
    head[16:24] = seqid.to_bytes(8, "big")
    head[168 : 168 + len(uuid)] = uuid.encode()
    head[448:512] = csum
    return bytes(head) + b"\0" * 512


def test_header_identity_reads_uuid_and_sequence_id():
    uuid, seqid, head = luks.header_identity(_luks2_head(7))
    assert (uuid, seqid, len(head)) == ("0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9", 7, 4096)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"LUKS\xba\xbe",  # truncated
        b"\0" * 8192,  # no header
        b"SKUL\xba\xbe" + b"\0" * 4090,  # a secondary header is not where a backup starts
        b"LUKS\xba\xbe\x00\x01" + b"\0" * 4088,  # LUKS1
    ],
)
def test_header_identity_refuses_what_is_not_a_luks2_primary_header(data):
    assert luks.header_identity(data) is None


def test_header_backup_is_current_only_while_the_header_is_unchanged():
    on_device = _luks2_head(5)
    assert luks.header_current(on_device, _luks2_head(5))
    # a key added or removed raises the sequence id (and changes the checksum over the metadata)
    assert not luks.header_current(_luks2_head(6), on_device)
    assert not luks.header_current(_luks2_head(5, csum=b"\x02" * 64), on_device)
    # another volume's backup, a missing backup, a device without LUKS2
    assert not luks.header_current(on_device, _luks2_head(5, uuid="ffffffff-4f50-4617-8293-a4b5c6d7e8f9"))
    assert not luks.header_current(on_device, b"")
    assert not luks.header_current(b"\0" * 4096, b"\0" * 4096)


# --- the action plugin's copy of the header backup ------------------------------------------------


def _action(slurp_results, become=False, remote_user="root", files=None):
    """The action plugin with its module runs and its connection's file transfer recorded: ``files``
    maps remote paths to the bytes a transfer reads (a path missing from it refuses the transfer)."""
    from types import SimpleNamespace

    from ansible.errors import AnsibleError
    from ansible_collections.metal.kafka.plugins.action import luks_volume as A

    action = object.__new__(A.ActionModule)
    calls = []

    def execute_module(module_name, module_args, task_vars):
        calls.append((module_name, module_args))
        return slurp_results.pop(0)

    def fetch_file(remote, local):
        calls.append(("fetch_file", remote))
        if remote not in (files or {}):
            raise AnsibleError(f"failed to transfer {remote}")
        with open(local, "wb") as f:
            f.write(files[remote])

    action._execute_module = execute_module
    action._play_context = SimpleNamespace(become=become, remote_user=remote_user)
    action._connection = SimpleNamespace(fetch_file=fetch_file, get_option=lambda name: remote_user)
    return action, calls


def test_the_header_backup_is_copied_only_when_its_digest_differs(tmp_path):
    import hashlib

    header = b"LUKS\xba\xbe" + bytes(4090) + b"keyslots" * 100
    digest = hashlib.sha256(header).hexdigest()
    local = tmp_path / "store" / "node1" / "kafka-data1.header"
    action, calls = _action([{"content": base64.b64encode(header).decode()}], become=True, remote_user="ops")
    result = {"header_backup": "/etc/kafka-metal/luks/kafka-data1.header", "header_sha256": digest, "changed": False}
    action._copy_header(result, str(local), check=False, task_vars={})
    assert local.read_bytes() == header and oct(local.stat().st_mode & 0o777) == "0o600"
    assert oct(local.parent.stat().st_mode & 0o777) == "0o700"
    assert result["changed"] and calls == [("ansible.legacy.slurp", {"src": result["header_backup"]})]
    # the same digest again: nothing read, nothing changed
    again = {**result, "changed": False, "actions": []}
    action._copy_header(again, str(local), check=False, task_vars={})
    assert again["changed"] is False and len(calls) == 1


def test_the_header_copy_in_check_mode_and_when_it_changes_in_flight(tmp_path):
    local = tmp_path / "kafka-data1.header"
    action, calls = _action([{"content": base64.b64encode(b"other bytes").decode()}])
    result = {"header_backup": "/h", "header_sha256": "0" * 64}
    action._copy_header(result, str(local), check=True, task_vars={})
    assert result["changed"] and not calls and not local.exists()
    action._copy_header(result, str(local), check=False, task_vars={})
    assert result["failed"] and "changed while it was copied" in result["msg"] and not local.exists()


def test_the_header_backup_travels_by_file_transfer_when_the_login_reads_it(tmp_path):
    import hashlib

    header = b"LUKS\xba\xbe" + os.urandom(8192)
    remote = "/etc/kafka-metal/luks/kafka-data1.header"
    result = {"header_backup": remote, "header_sha256": hashlib.sha256(header).hexdigest()}
    # root login (become or not), or no escalation at all: the connection's transfer, no module run
    for become, user in ((True, "root"), (False, "ops")):
        local = tmp_path / f"{become}-{user}" / "kafka-data1.header"
        action, calls = _action([], become=become, remote_user=user, files={remote: header})
        action._copy_header(dict(result), str(local), check=False, task_vars={})
        assert local.read_bytes() == header and calls == [("fetch_file", remote)]
        assert oct(local.stat().st_mode & 0o777) == "0o600"
        assert [p.name for p in local.parent.iterdir()] == ["kafka-data1.header"]  # no temporary left
    # a refused transfer falls back to slurp
    local = tmp_path / "fallback" / "kafka-data1.header"
    action, calls = _action([{"content": base64.b64encode(header).decode()}], files={})
    action._copy_header(dict(result), str(local), check=False, task_vars={})
    assert local.read_bytes() == header
    assert calls == [("fetch_file", remote), ("ansible.legacy.slurp", {"src": remote})]
    assert [p.name for p in local.parent.iterdir()] == ["kafka-data1.header"]
