"""Running Ansible for the command line: the environment that finds the collection, the tools installed
beside this interpreter, and playbooks of the collection."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from . import REPO_ROOT, ensure_collection_path


def ansible_env():
    """The environment for ansible-playbook and ansible: the collection's configuration and collection path."""
    env = dict(os.environ)
    env["ANSIBLE_CONFIG"] = str(REPO_ROOT / "ansible.cfg")
    env["ANSIBLE_COLLECTIONS_PATH"] = str(ensure_collection_path())
    env.setdefault("LC_ALL", "C.UTF-8")
    return env


def tool(name):
    """A tool installed beside this interpreter (the project's venv), else on PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else (shutil.which(name) or name)


def run_playbook(playbook, inventories, extra_vars=None, extra_vars_file=None, env=None, limit=None):
    """Run a playbook of the collection. ``extra_vars_file`` (a YAML file) passes values that must not
    appear in the process list, such as passwords; ``env`` adds to the environment."""
    argv = [tool("ansible-playbook"), str(playbook)]
    for inv in inventories:
        argv += ["-i", str(inv)]
    for key, value in (extra_vars or {}).items():
        argv += ["-e", f"{key}={value}"]
    if extra_vars_file:
        argv += ["-e", f"@{extra_vars_file}"]
    if limit:
        argv += ["--limit", limit]
    return subprocess.run(argv, cwd=REPO_ROOT, env={**ansible_env(), **(env or {})}).returncode
