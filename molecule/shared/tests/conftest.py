"""Shared fixtures for the lab scenarios' verify step (testinfra, run by Molecule)."""

import json
import os
import subprocess

import kafka_metal  # noqa: F401  (collection path)
import pytest
import testinfra


@pytest.fixture(scope="session")
def inventory(pytestconfig):
    return pytestconfig.option.ansible_inventory or os.environ["MOLECULE_INVENTORY_FILE"]


@pytest.fixture(scope="session")
def cluster(inventory):
    """Hosts by role, their node ids and addresses, from Molecule's inventory."""
    out = subprocess.run(["ansible-inventory", "-i", inventory, "--list"], check=True,
                         capture_output=True, text=True).stdout
    inv = json.loads(out)
    hostvars = inv["_meta"]["hostvars"]

    def members(group):
        return sorted(inv.get(group, {}).get("hosts", []))

    controllers, brokers = members("kafka_controllers"), members("kafka_brokers")
    hosts = sorted(set(controllers) | set(brokers))
    return {
        "controllers": controllers,
        "brokers": brokers,
        "hosts": hosts,
        "node_id": _templated(inventory, "kafka_node_id", hosts, int),
        "address": {h: hostvars[h]["ansible_host"] for h in hosts},
        "testinfra": {h: testinfra.get_host(f"ansible://{h}", ansible_inventory=inventory) for h in hosts},
    }


def _templated(inventory, var, hosts, cast):
    """The value of ``var`` per host as Ansible templates it (ansible-inventory shows it raw)."""
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
    out = subprocess.run(["ansible", "-i", inventory, ",".join(hosts), "-m", "ansible.builtin.debug",
                          "-a", f"var={var}"], check=True, capture_output=True, text=True, env=env).stdout
    results = json.loads(out)["plays"][0]["tasks"][0]["hosts"]
    return {h: cast(results[h][var]) for h in hosts}


@pytest.fixture(scope="session")
def bootstrap(cluster):
    return ",".join(f"{cluster['address'][b]}:9092" for b in cluster["brokers"])
