"""Key rotation of ``luks_volume`` with the real cryptsetup, on a loop device of this machine.

Key slots need no device-mapper (the host kernel has none; opening a volume is proved on VMs in the
`tuning` scenario): the module's rotation code runs here against a real LUKS2 header, from the start
and from every point where an earlier run could have stopped, and must end with the new key installed
and opening the volume, the old key gone, and the same number of slots. The refusals and check mode of
the whole module run here too (they stop before anything would be opened).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.metal.kafka.plugins.module_utils import luks
from ansible_collections.metal.kafka.plugins.modules import luks_volume as M

REPO = Path(__file__).resolve().parents[2]
FAST = {**luks.LUKS_DEFAULTS, "pbkdf": "pbkdf2", "iter_time": 100}

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("cryptsetup") or not shutil.which("losetup"),
    reason="needs root, cryptsetup and losetup (.ci/install provides them)",
)


class Failed(Exception):
    pass


class HostModule:
    """What the module's code uses of AnsibleModule, running commands on this machine."""

    check_mode = False

    def __init__(self, tmpdir):
        self.tmpdir = tmpdir

    def get_bin_path(self, name, required=False):
        return shutil.which(name) or shutil.which(name, path="/sbin:/usr/sbin")

    def run_command(self, argv, data=None, binary_data=False, environ_update=None, check_rc=False):
        proc = subprocess.run(argv, input=data, capture_output=True, text=True,
                              env={**os.environ, **(environ_update or {})})  # fmt: skip
        if check_rc and proc.returncode != 0:
            raise Failed(proc.stderr)
        return proc.returncode, proc.stdout, proc.stderr

    def fail_json(self, msg, **_kw):
        raise Failed(msg)


@pytest.fixture
def device(tmp_path):
    image = tmp_path / "disk.img"
    with open(image, "wb") as f:
        f.truncate(32 * 1024 * 1024)
    loop = subprocess.run(["losetup", "-f", "--show", str(image)], capture_output=True, text=True, check=True)
    dev = loop.stdout.strip()
    yield dev
    subprocess.run(["losetup", "-d", dev], check=False)


@pytest.fixture
def volume(device, tmp_path):
    """A LUKS2 volume with key A installed in a key dir, as the module leaves it after a first run."""
    key_dir = tmp_path / "keys"
    key_dir.mkdir(mode=0o700)
    key_a, key_b = luks.new_key(), luks.new_key()
    key_file = luks.key_path("kmtest", "key", str(key_dir))
    M.write_secret(key_file, key_a)
    module = HostModule(str(tmp_path))
    vol = M.Volume(module, device, "kmtest", str(key_dir))
    vol.run(luks.format_argv(vol.cryptsetup, device, key_file, FAST), what="luksFormat")
    return vol, key_file, key_a, key_b


def slots(vol):
    return sorted(vol.dump()["keyslots"])


def finished(vol, key_file, key_a, key_b):
    assert Path(key_file).read_text() == key_b
    assert os.stat(key_file).st_mode & 0o777 == 0o400
    assert vol.opens(key=key_b) and vol.opens(key_file=key_file)
    assert not vol.opens(key=key_a)
    assert not any(p.name.startswith(("kmtest.key.", ".tmp-")) for p in Path(key_file).parent.iterdir())


def test_rotation_from_the_start(volume):
    vol, key_file, key_a, key_b = volume
    before = slots(vol)
    actions = []
    M.rotate(vol, key_a, key_b, FAST, key_file, actions, check=False)
    finished(vol, key_file, key_a, key_b)
    assert len(slots(vol)) == len(before)
    assert actions == [
        f"add the new key to a free slot of {vol.real}, then prove it opens",
        f"install the new key as {key_file}",
        f"remove the old key's slot from {vol.real}",
    ]
    # a second run has nothing left to do
    again = []
    M.rotate(vol, key_a, key_b, FAST, key_file, again, check=False)
    assert again == []


@pytest.mark.parametrize("stopped_after", ["add_new", "install_new"])
def test_rotation_resumes_where_an_earlier_run_stopped(volume, stopped_after):
    vol, key_file, key_a, key_b = volume
    # what the run that stopped had done
    new_file = luks.key_path("kmtest", "key.new", vol.key_dir)
    M.write_secret(new_file, key_b)
    vol.run(luks.add_key_argv(vol.cryptsetup, vol.real, key_file, new_file, FAST), what="luksAddKey")
    if stopped_after == "install_new":
        os.replace(new_file, key_file)
    assert vol.opens(key=key_a) and vol.opens(key=key_b)
    actions = []
    M.rotate(vol, key_a, key_b, FAST, key_file, actions, check=False)
    finished(vol, key_file, key_a, key_b)
    assert not any(a.startswith("add the new key") for a in actions)
    assert len(slots(vol)) == 1


def test_check_mode_changes_nothing(volume):
    vol, key_file, key_a, key_b = volume
    header = subprocess.run(["sha256sum", vol.real], capture_output=True, text=True).stdout
    actions = []
    M.rotate(vol, key_a, key_b, FAST, key_file, actions, check=True)
    assert len(actions) == 3
    assert Path(key_file).read_text() == key_a and vol.opens(key=key_a) and not vol.opens(key=key_b)
    assert subprocess.run(["sha256sum", vol.real], capture_output=True, text=True).stdout == header


def test_rotation_with_no_working_key_stops_before_touching_anything(volume):
    vol, key_file, _key_a, _key_b = volume
    with pytest.raises(Failed, match="neither the current nor the new key opens the volume"):
        M.rotate(vol, luks.new_key(), luks.new_key(), FAST, key_file, [], check=False)


def test_header_backup_is_written_once_and_refreshed_when_the_header_changes(volume):
    vol, key_file, key_a, key_b = volume
    backup = luks.key_path("kmtest", "header", vol.key_dir)
    actions = []
    M.header_backup(vol, backup, actions, check=False)
    assert actions == [f"LUKS header backup {backup}"] and os.stat(backup).st_mode & 0o777 == 0o400
    M.header_backup(vol, backup, (again := []), check=False)
    assert again == []
    M.rotate(vol, key_a, key_b, FAST, key_file, [], check=False)
    M.header_backup(vol, backup, (after := []), check=False)
    assert after == [f"LUKS header backup {backup}"]
    # the backup restores a header that opens with the key it was taken with
    restored = subprocess.run(["cryptsetup", "open", "--test-passphrase", "--key-file", key_file,
                               "--header", backup, vol.real], capture_output=True, text=True)  # fmt: skip
    assert restored.returncode == 0, restored.stderr


def _adhoc(args, check=False):
    """The whole module through Ansible, on this machine (its action plugin keeps the key store)."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
    argv = [str(Path(sys.executable).parent / "ansible"), "localhost", "-c", "local", "-i", "localhost,",
            "-e", f"ansible_python_interpreter={sys.executable}", "-m", "metal.kafka.luks_volume",
            "-a", json.dumps(args)] + (["--check", "--diff"] if check else [])  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


def test_module_refuses_a_device_with_a_file_system_and_leaves_it_untouched(device, tmp_path):
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "precious", device], check=True)
    before = subprocess.run(["sha256sum", device], capture_output=True, text=True).stdout
    args = {"device": device, "name": "kmtest", "key_store": str(tmp_path / "store"),
            "key_dir": str(tmp_path / "kd"), "crypttab": str(tmp_path / "crypttab"), "iter_time": 100}
    proc = _adhoc(args)
    assert proc.returncode != 0
    assert "already holds a file system or signature (ext4)" in proc.stdout
    assert "set force_format: true" in proc.stdout and "nothing was changed" in proc.stdout
    assert subprocess.run(["sha256sum", device], capture_output=True, text=True).stdout == before
    assert not (tmp_path / "kd").exists() and not (tmp_path / "crypttab").exists()


def test_module_check_mode_on_an_empty_device_reports_and_changes_nothing(device, tmp_path):
    args = {"device": device, "name": "kmtest", "key_store": str(tmp_path / "store"),
            "key_dir": str(tmp_path / "kd"), "crypttab": str(tmp_path / "crypttab"), "iter_time": 100,
            "passphrase": "a passphrase that must never be printed"}
    proc = _adhoc(args, check=True)
    assert proc.returncode == 0, proc.stdout
    assert "format " + os.path.realpath(device) + " as LUKS2" in proc.stdout
    assert "+kmtest UUID=<new> " in proc.stdout  # the crypttab diff
    assert "a passphrase that must never be printed" not in proc.stdout + proc.stderr
    assert not (tmp_path / "kd").exists() and not (tmp_path / "crypttab").exists()
    assert not (tmp_path / "store").exists(), "check mode wrote a key to the store"
    assert subprocess.run(["blkid", "-p", device], capture_output=True).returncode == 2


def test_a_forced_cost_is_exactly_what_the_slot_gets_and_keys_are_found_by_slot(device, tmp_path):
    """argon2id with a forced iteration count: no benchmark, so the slot has exactly the asked memory
    and iterations; a key test names the slot it opened, and a test limited to another slot fails."""
    key_dir = tmp_path / "keys"
    key_dir.mkdir(mode=0o700)
    key = luks.new_key()
    key_file = luks.key_path("kmtest", "key", str(key_dir))
    M.write_secret(key_file, key)
    vol = M.Volume(HostModule(str(tmp_path)), device, "kmtest", str(key_dir))
    params = luks.luks_params({"pbkdf_iterations": 4, "pbkdf_memory": 32768, "pbkdf_parallel": 1})
    vol.run(luks.format_argv(vol.cryptsetup, device, key_file, params), what="luksFormat")
    assert vol.dump()["keyslots"] == {0: {"pbkdf": "argon2id", "memory": 32768, "parallel": 1, "iterations": 4}}
    assert vol.slot_of(key=key) == 0 and vol.slot_of(key_file=key_file, slot=0) == 0
    assert vol.slot_of(key=luks.new_key()) is None
    assert vol.slot_of(key=key, slot=1) is None


def test_rotation_with_a_store_that_lacks_the_key_is_refused_and_creates_nothing(device, tmp_path):
    """A rotation pointed at the wrong key store must not invent a key for a volume it cannot open."""
    args = {"device": device, "name": "kmtest", "key_store": str(tmp_path / "store"), "rotate": True,
            "key_dir": str(tmp_path / "kd"), "crypttab": str(tmp_path / "crypttab")}
    proc = _adhoc(args)
    assert proc.returncode != 0
    assert "a rotation needs the key that opens the volume now" in proc.stdout
    assert "tuning_luks_key_store" in proc.stdout and "nothing was changed" in proc.stdout
    assert not (tmp_path / "store").exists() and not (tmp_path / "kd").exists()
