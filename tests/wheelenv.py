"""kafka-metal as a user installs it: the wheel built from this checkout, installed with its run-time
dependencies into a new virtual environment outside the checkout, and an environment for running it that
knows nothing of the checkout (no PYTHONPATH, no collection path, no Ansible configuration).

Used by tests/integration/test_packaging.py and by the lab check that rolls a cluster with the installed
command line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def build_and_install(where: Path) -> Path:
    """Build the wheel into ``where/wheel`` and install it into the venv ``where/venv``; return the venv."""
    wheel_dir, venv = where / "wheel", where / "venv"
    pip = [sys.executable, "-m", "pip"]
    had_build = (REPO / "build").exists()
    try:
        subprocess.run([*pip, "wheel", "-q", "--no-deps", "-w", str(wheel_dir), str(REPO)], check=True,
                       capture_output=True, text=True, timeout=600)
    finally:
        if not had_build:  # setuptools stages the wheel in the tree; leave the checkout as found
            shutil.rmtree(REPO / "build", ignore_errors=True)
    wheels = sorted(wheel_dir.glob("kafka_metal-*.whl"))
    assert len(wheels) == 1, wheels
    base = getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheels[0])], check=True, capture_output=True,
                   text=True, timeout=900)
    return venv


def clean_env(venv: Path, keep=()) -> dict:
    """The environment of an operator's shell with the venv first on PATH: nothing of the checkout. ``keep``
    names variables to pass through (the lab's SSH and vault settings, for example)."""
    env = {"PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"),
           "LANG": "C.UTF-8", "ANSIBLE_NOCOLOR": "1"}
    env.update({k: os.environ[k] for k in keep if k in os.environ})
    return env
