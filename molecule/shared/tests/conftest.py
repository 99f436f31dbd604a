"""Shared fixtures for the lab scenarios' verify step (testinfra, run by Molecule)."""

import os

# The secure scenario runs its playbooks at -vvv through ANSIBLE_VERBOSITY; the checks here read
# testinfra's and their own ansible output at normal verbosity.
os.environ.pop("ANSIBLE_VERBOSITY", None)

import kafka_metal  # noqa: F401  (collection path)
import pytest
import testinfra
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.parsing.vault import VaultSecret, VaultSecretsContext
from ansible.template import Templar
from ansible.vars.manager import VariableManager

# imported before the plugin loader takes over the ansible_collections namespace (cluster fixture)
from ansible_collections.metal.kafka.plugins.module_utils import security, wire

# The stages of a scenario's verify step (pytest runs the test files in name order):
# KAFKA_METAL_STAGE=NAME[,NAME] runs only those stages (for daily work on one of them; a later stage then
# starts from the converged cluster instead of the state the stages before it leave).
STAGES = {
    "cluster": ("test_cluster.py", "test_kraft.py", "test_zookeeper.py"),
    "restart": ("test_restart.py",),
    "rolling": ("test_rolling.py",),
    "security": ("test_security.py",),
    "luks": ("test_luks.py",),
    "tuning": ("test_tuning.py",),
    "moves": ("test_moves.py",),
    "monitoring": ("test_monitoring.py",),
    "migration": ("test_migration.py",),
}
# Stages that run after all the others whatever their file's name (pytest takes files in name order):
# monitoring stops a broker and rolls one at its end of the scenario, with the state the others left; the
# migration leaves the ZooKeeper-mode cluster a KRaft cluster on 4.1.1.
LAST = ("test_migration.py", "test_monitoring.py")


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.path.name in LAST)  # stable: the others keep their order
    wanted = [s.strip() for s in os.environ.get("KAFKA_METAL_STAGE", "").split(",") if s.strip()]
    if not wanted:
        return
    unknown = sorted(set(wanted) - set(STAGES))
    if unknown:
        raise pytest.UsageError(f"KAFKA_METAL_STAGE: unknown stage(s) {', '.join(unknown)}; the stages are "
                                f"{', '.join(STAGES)}")
    files = {f for name in wanted for f in STAGES[name]}
    keep = [item for item in items if item.path.name in files]
    config.hook.pytest_deselected(items=[item for item in items if item.path.name not in files])
    items[:] = keep


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
    from ansible.plugins.loader import init_plugin_loader

    # lookups in the inventory (env, file) need Ansible's plugin loader, as ansible-playbook sets it up
    init_plugin_loader([str(kafka_metal.ensure_collection_path())])
    loader = DataLoader()
    vault_file = os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE")
    if vault_file:
        with open(vault_file, "rb") as fh:
            secrets = [("default", VaultSecret(fh.read().strip()))]
        loader.set_vault_secrets(secrets)
        if not VaultSecretsContext.current(optional=True):
            VaultSecretsContext.initialize(VaultSecretsContext(secrets))
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

    first = kafka_hosts[0]
    protocol = (var(first, "kafka_listener_protocols", {}) or {}).get(
        "client", var(first, "kafka_security_protocol", "SASL_SSL"))
    secure = protocol != "PLAINTEXT"
    return {
        # the role default is kraft; ZooKeeper scenarios set it in their group_vars
        "mode": var(hosts[0], "kafka_metadata_mode", "kraft"),
        "security": {
            "protocol": protocol,
            "secure": secure,
            "mechanism": var(first, "kafka_sasl_mechanism", "SCRAM-SHA-512") if secure else None,
            "user": var(first, "kafka_admin_user", "admin") if secure else None,
            "password": var(first, "kafka_admin_password", "") if secure else None,
            "ca_file": os.path.join(os.path.expanduser(var(first, "kafka_tls_ca_dir", "~")), "ca.crt")
            if secure else None,
            "ca_dir": os.path.expanduser(var(first, "kafka_tls_ca_dir", "~")) if secure else None,
        },
        "controllers": controllers,
        "brokers": brokers,
        "zookeepers": zookeepers,
        "kafka_hosts": kafka_hosts,
        "hosts": hosts,
        "node_id": {h: int(var(h, "kafka_node_id")) for h in kafka_hosts},
        # where the inventory put each node's files (a scenario may choose non-default places)
        "config_dir": {h: var(h, "kafka_config_dir", "/etc/kafka") for h in kafka_hosts},
        "tls_dir": {h: var(h, "kafka_tls_dir", var(h, "kafka_config_dir", "/etc/kafka") + "/tls")
                    for h in kafka_hosts},
        "zookeeper_config_dir": {h: var(h, "zookeeper_config_dir", "/etc/zookeeper") for h in zookeepers},
        "address": {h: var(h, "ansible_host") for h in hosts},
        "var": var,
        "testinfra": {h: testinfra.get_host(f"ansible://{h}", ansible_inventory=inventory) for h in hosts},
    }


@pytest.fixture(scope="session")
def client_conf(cluster):
    """confluent-kafka settings that reach the client listener as the admin user."""
    sec = cluster["security"]
    return security.client_config(protocol=sec["protocol"], sasl_mechanism=sec["mechanism"], username=sec["user"],
                                  password=sec["password"], ca_file=sec["ca_file"])


@pytest.fixture(scope="session")
def wire_security(cluster):
    """wire.Security for a broker listener at ``address`` (its certificate carries the address)."""
    sec = cluster["security"]

    def make(address):
        if not sec["secure"]:
            return wire.PLAINTEXT
        return wire.Security(sec["protocol"], sec["ca_file"], address, sec["mechanism"], sec["user"],
                             sec["password"])
    return make


@pytest.fixture
def secure_only(cluster):
    if not cluster["security"]["secure"]:
        pytest.skip("security check; this scenario runs plaintext")


@pytest.fixture(scope="session")
def command_config(cluster):
    """``--command-config`` argument for Kafka's tools on a cluster host (empty when plaintext)."""
    config_dir = cluster["config_dir"][cluster["brokers"][0]]
    return f"--command-config {config_dir}/admin.properties" if cluster["security"]["secure"] else ""


@pytest.fixture(scope="session")
def bootstrap(cluster):
    return ",".join(f"{cluster['address'][b]}:9092" for b in cluster["brokers"])
