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
        "node_id": {h: int(hostvars[h]["kafka_node_id"]) for h in hosts},
        "address": {h: hostvars[h]["ansible_host"] for h in hosts},
        "testinfra": {h: testinfra.get_host(f"ansible://{h}", ansible_inventory=inventory) for h in hosts},
    }


@pytest.fixture(scope="session")
def bootstrap(cluster):
    return ",".join(f"{cluster['address'][b]}:9092" for b in cluster["brokers"])
