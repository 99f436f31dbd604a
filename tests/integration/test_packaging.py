"""kafka-metal installed the ways Python and Ansible users install things, run outside the checkout.

- the wheel (``pip install kafka-metal``): the command line and the collection it carries, found without the
  checkout, its modules and roles documented by ansible-doc, its playbooks run by their collection names;
- the collection alone (``ansible-galaxy collection build`` then ``install`` into a clean path).

Building and installing needs PyPI (or the machine's pip mirror) for the run-time dependencies.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.wheelenv import REPO, build_and_install, clean_env

MODULES = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py"))
ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if (p / "meta" / "argument_specs.yml").exists())


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    return build_and_install(tmp_path_factory.mktemp("installed"))


@pytest.fixture
def outside(tmp_path):
    """A working directory with nothing of the checkout in it."""
    return tmp_path


def run(argv, env, cwd, timeout=300):
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


def test_the_command_line_runs_outside_the_checkout(venv, outside):
    env = clean_env(venv)
    rc, out = run(["kafka-metal", "--help"], env, outside)
    assert rc == 0 and "rolling restart" in out, out
    rc, out = run(["kafka-metal", "--version"], env, outside)
    assert rc == 0 and "0.1.0" in out, out
    # it found the collection the wheel installed, not the checkout
    rc, out = run([str(venv / "bin" / "python"), "-c", "import kafka_metal; print(kafka_metal.COLLECTION_ROOT)"],
                  env, outside)
    assert rc == 0 and out.strip() == str(
        next((venv / "lib").glob("python3*/site-packages/ansible_collections/metal/kafka")).resolve()), out
    assert not list((venv / "lib").glob("python3*/site-packages/**/.collections")), "a link was made in the venv"
    # the distribution builder's script templates came along
    rc, out = run([str(venv / "bin" / "python"), "-c", "from kafka_metal import dist; "
                   "print(dist.render_run_class('4.1.1').splitlines()[0])"], env, outside)
    assert rc == 0 and out.strip() == "#!/usr/bin/env bash", out


def test_ansible_doc_shows_every_module_and_role_of_the_installed_wheel(venv, outside):
    env = clean_env(venv)
    rc, out = run(["ansible-doc", "-l", "metal.kafka"], env, outside)
    assert rc == 0, out
    listed = set(re.findall(r"^metal\.kafka\.(\w+)", out, re.M))
    assert listed == set(MODULES), (set(MODULES) ^ listed)
    # every module's documentation renders (one ansible-doc run for all of them)
    proc = subprocess.run(["ansible-doc", "--json", *(f"metal.kafka.{m}" for m in MODULES)], env=env, cwd=outside,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "ERROR" not in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-2000:]
    docs = json.loads(proc.stdout)  # a library's warning on stderr (cryptography's, under Ansible) is not JSON
    assert sorted(docs) == [f"metal.kafka.{m}" for m in MODULES]
    assert all(d["doc"].get("short_description") and d["doc"].get("options") is not None for d in docs.values())
    rc, out = run(["ansible-doc", "-t", "role", "-l", "metal.kafka"], env, outside)
    assert rc == 0, out
    for role in ROLES:
        entry_points = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())
        assert f"metal.kafka.{role}:" in out, (role, out)
        block = out.split(f"metal.kafka.{role}:", 1)[1].split("metal.kafka.", 1)[0]
        for entry in entry_points["argument_specs"]:
            assert re.search(rf"^\s+{entry}\s*:", block, re.M), (role, entry, block)


def test_the_installed_playbooks_refuse_a_bad_inventory_by_their_collection_names(venv, outside):
    inventory = outside / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {
        "kafka_controllers": {"hosts": {"c1": {"kafka_node_id": 1, "ansible_host": "127.0.0.1", "ansible_port": 1}}},
        "kafka_brokers": {"hosts": {"c1": None}}}}}))
    rc, out = run(["ansible-playbook", "metal.kafka.site", "-i", str(inventory)], clean_env(venv), outside)
    assert rc != 0
    assert "The inventory is not valid; nothing was changed" in out and "kafka_archive_checksum is missing" in out
    assert "UNREACHABLE" not in out


def test_the_collection_builds_and_installs_into_a_clean_path(outside):
    bin_dir = Path(sys.executable).parent
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(outside), "ANSIBLE_NOCOLOR": "1"}
    rc, out = run([str(bin_dir / "ansible-galaxy"), "collection", "build", "--output-path", str(outside), str(REPO)],
                  env, outside)
    assert rc == 0, out
    tarball = next(outside.glob("metal-kafka-*.tar.gz"))
    names = subprocess.run(["tar", "tzf", str(tarball)], capture_output=True, text=True, check=True).stdout.split()
    # what an operator's collection holds, and nothing of the development tree
    assert "MANIFEST.json" in names and "playbooks/site.yml" in names and "roles/kafka/tasks/main.yml" in names
    for unwanted in (".venv", ".ci/", "tests/", "molecule/", "plugins/cli/", ".collections", ".egg-info"):
        assert not any(unwanted in n for n in names), (unwanted, [n for n in names if unwanted in n][:5])
    colls = outside / "collections"
    rc, out = run([str(bin_dir / "ansible-galaxy"), "collection", "install", "-p", str(colls), str(tarball)], env,
                  outside)
    assert rc == 0 and "installed successfully" in out, out
    env.update(ANSIBLE_COLLECTIONS_PATH=str(colls), ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="False")
    rc, out = run([str(bin_dir / "ansible-doc"), "-l", "metal.kafka"], env, outside)
    assert rc == 0 and set(re.findall(r"^metal\.kafka\.(\w+)", out, re.M)) == set(MODULES), out
    rc, out = run([str(bin_dir / "ansible-doc"), "metal.kafka.kafka_roll"], env, outside)
    assert rc == 0 and str(colls) in out, out[:500]
