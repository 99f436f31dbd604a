"""Shared fixtures for the lab scenarios' verify step (testinfra, run by Molecule)."""

import os

import kafka_metal  # noqa: F401  (collection path)
import pytest
import testinfra
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar
from ansible.vars.manager import VariableManager


@pytest.fixture(scope="session")
def inventory(pytestconfig):
    return pytestconfig.option.ansible_inventory or os.environ["MOLECULE_INVENTORY_FILE"]


@pytest.fixture(scope="session")
def cluster(inventory):
    """Hosts by role, their node ids and addresses, as Ansible sees them (templated)."""
    loader = DataLoader()
    inv = InventoryManager(loader=loader, sources=[inventory])
    variables = VariableManager(loader=loader, inventory=inv)
    groups = inv.get_groups_dict()
    controllers = sorted(groups.get("kafka_controllers", []))
    brokers = sorted(groups.get("kafka_brokers", []))
    hosts = sorted(set(controllers) | set(brokers))

    def var(host, name):
        hv = variables.get_vars(host=inv.get_host(host))
        return Templar(loader=loader, variables=hv).template(hv[name])

    return {
        "controllers": controllers,
        "brokers": brokers,
        "hosts": hosts,
        "node_id": {h: int(var(h, "kafka_node_id")) for h in hosts},
        "address": {h: var(h, "ansible_host") for h in hosts},
        "testinfra": {h: testinfra.get_host(f"ansible://{h}", ansible_inventory=inventory) for h in hosts},
    }


@pytest.fixture(scope="session")
def bootstrap(cluster):
    return ",".join(f"{cluster['address'][b]}:9092" for b in cluster["brokers"])
