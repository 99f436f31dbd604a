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
def roles_of(cluster):
    """Roles of an inventory host: controller, broker, zookeeper."""
    def roles(name):
        return {r for r, group in (("controller", "controllers"), ("broker", "brokers"), ("zookeeper", "zookeepers"))
                if name in cluster[group]}
    return roles


@pytest.fixture
def kraft_only(cluster):
    if cluster["mode"] != "kraft":
        pytest.skip("KRaft check; this scenario runs ZooKeeper mode")


@pytest.fixture
def zookeeper_only(cluster):
    if cluster["mode"] != "zookeeper":
        pytest.skip("ZooKeeper-mode check; this scenario runs KRaft")


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
    zookeepers = sorted(groups.get("zookeeper", []))
    kafka_hosts = sorted(set(controllers) | set(brokers))
    hosts = sorted(set(kafka_hosts) | set(zookeepers))

    def var(host, name, default=None):
        hv = variables.get_vars(host=inv.get_host(host))
        if name not in hv and default is not None:
            return default
        return Templar(loader=loader, variables=hv).template(hv[name])

    return {
        # the role default is kraft; ZooKeeper scenarios set it in their group_vars
        "mode": var(hosts[0], "kafka_metadata_mode", "kraft"),
        "controllers": controllers,
        "brokers": brokers,
        "zookeepers": zookeepers,
        "kafka_hosts": kafka_hosts,
        "hosts": hosts,
        "node_id": {h: int(var(h, "kafka_node_id")) for h in kafka_hosts},
        "address": {h: var(h, "ansible_host") for h in hosts},
        "testinfra": {h: testinfra.get_host(f"ansible://{h}", ansible_inventory=inventory) for h in hosts},
    }


@pytest.fixture(scope="session")
def bootstrap(cluster):
    return ",".join(f"{cluster['address'][b]}:9092" for b in cluster["brokers"])
