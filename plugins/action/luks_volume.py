# Copyright: kafka-metal contributors
# Apache License 2.0
"""The controller's side of ``luks_volume``: the key store.

Each volume's key lives on the controller in ``KEY_STORE/HOST/NAME.key`` (0600, in 0700 directories),
generated here from 64 random bytes the first time, unless the task gives the key itself (from a
vault). A rotation writes the next key to ``NAME.key.new`` first and promotes it only once the host
reports the rotation finished, so an interrupted rotation resumes with the same new key and the store
always holds a key that opens the volume. Keys travel only as ``no_log`` module arguments; nothing
this plugin returns contains one.

The host's LUKS header backup is copied to ``KEY_STORE/HOST/NAME.header`` (0600) whenever the digest
the module reports differs from the copy's: once after a format or a rotation, not on every run.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import tempfile

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.plugins.action import ActionBase
from ansible_collections.metal.kafka.plugins.module_utils import luks

OWN_ARGS = ("key_store", "host", "rotate")


def store_paths(key_store, host, name):
    base = os.path.join(key_store, host)
    return base, os.path.join(base, f"{name}.key"), os.path.join(base, f"{name}.key.new")


def read_key(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def write_key(path, key):
    """Write a key file 0600 atomically (its directory 0700)."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    luks.write_secret(path, key, 0o600)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        own = {k: args.pop(k) for k in OWN_ARGS if k in args}
        name = args.get("name")
        if not name:
            raise AnsibleActionFail("luks_volume: name is required")
        host = str(own.get("host") or task_vars.get("inventory_hostname"))
        rotate = bool(own.get("rotate", False))
        check = bool(self._play_context.check_mode)
        key_path = new_path = None
        key_store = self._loader.path_dwim(os.path.expanduser(str(own["key_store"]))) if own.get("key_store") else None
        if args.get("key") is None:
            if key_store is None:
                raise AnsibleActionFail(
                    "luks_volume: give key_store (a directory on the controller) or key (from a vault)"
                )
            _base, key_path, new_path = store_paths(key_store, host, name)
            key = read_key(key_path)
            if key is None and rotate:
                raise AnsibleActionFail(
                    f"luks_volume: no key of {name} on {host} in {key_path}: a rotation needs the key that opens "
                    "the volume now; point tuning_luks_key_store at the store of the run that formatted it, or "
                    "give the key from the vault - nothing was changed"
                )
            if key is None:
                key = luks.new_key()
                if not check:
                    write_key(key_path, key)
            args["key"] = key
            pending = read_key(new_path)
            if rotate and args.get("new_key") is None:
                if pending is None:
                    pending = luks.new_key()
                    if not check:
                        write_key(new_path, pending)
                args["new_key"] = pending
            elif pending is not None and not rotate:
                raise AnsibleActionFail(
                    f"luks_volume: an interrupted key rotation of {name} on {host} left {new_path}; finish it "
                    "first (kafka-metal luks rotate, or playbooks/luks_rotate.yml) - nothing was changed"
                )
        elif rotate and args.get("new_key") is None:
            raise AnsibleActionFail("luks_volume: rotate with a key from a vault needs new_key from the vault too")

        module_result = self._execute_module(
            module_name="metal.kafka.luks_volume", module_args=args, task_vars=task_vars
        )
        result.update(module_result)
        if result.get("failed"):
            return result
        if key_store is not None:
            self._copy_header(result, os.path.join(key_store, host, f"{name}.header"), check, task_vars)
        if result.get("failed") or check or not rotate or new_path is None:
            return result
        # the host reports the rotation done: the store's key becomes the new one
        os.replace(new_path, key_path)
        os.chmod(key_path, 0o600)
        result["key_rotated"] = True
        return result

    def _copy_header(self, result, local, check, task_vars):
        """Copy the host's header backup to ``local`` when the copy is missing or differs."""
        remote, digest = result.get("header_backup"), result.get("header_sha256")
        if not remote or not digest or luks.file_sha256(local) == digest:
            return
        result["changed"] = True
        result.setdefault("actions", []).append(f"copy the header backup to the controller: {local}")
        if check:
            return
        data, problem = self._read_remote(remote, os.path.dirname(local), task_vars)
        if data is None:
            result.update(failed=True, msg=f"luks_volume: cannot read the header backup {remote}: {problem}")
            return
        if hashlib.sha256(data).hexdigest() != digest:
            result.update(failed=True, msg=f"luks_volume: the header backup {remote} changed while it was copied")
            return
        write_key(local, data)

    def _direct_transfer(self):
        """Whether the connection's own file transfer reads a root-only file: it logs in as root, or
        no privilege escalation stands between the login and the file."""
        if not self._play_context.become:
            return True
        try:
            user = self._connection.get_option("remote_user")
        except (AttributeError, KeyError):
            user = self._play_context.remote_user
        return user == "root"

    def _read_remote(self, remote, directory, task_vars):
        """``(bytes, None)`` of the remote file, or ``(None, why)``. A header backup is 16 MiB of random
        key-slot area: the connection's file transfer moves it as is (under a second, even to an emulated
        VM), where slurp sends it base64 in JSON (~14 s there). Slurp stays the way when a login that is
        not root must escalate to read it."""
        if self._direct_transfer():
            os.makedirs(directory, mode=0o700, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".fetch-")
            os.close(fd)
            try:
                self._connection.fetch_file(remote, tmp)
                with open(tmp, "rb") as f:
                    return f.read(), None
            except (AnsibleError, OSError):
                pass  # the transfer is refused (permissions, no sftp or scp): slurp instead
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        slurped = self._execute_module(
            module_name="ansible.legacy.slurp", module_args={"src": remote}, task_vars=task_vars
        )
        if slurped.get("failed"):
            return None, slurped.get("msg")
        return base64.b64decode(slurped["content"]), None
