"""Shared fixtures for the lab scenarios' verify step (testinfra, run by Molecule)."""

import os
import threading
import time
from types import SimpleNamespace

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
    "quorum": ("test_quorum.py",),
}
# Stages that run after all the others whatever their file's name (pytest takes files in name order):
# monitoring stops a broker and rolls one at its end of the scenario, with the state the others left; the
# migration leaves the ZooKeeper-mode cluster a KRaft cluster on 4.1.1, whose controller quorum the quorum stage
# then changes. They run in this order.
LAST = ("test_migration.py", "test_quorum.py", "test_monitoring.py")


def pytest_collection_modifyitems(config, items):
    # stable: the others keep their order
    items.sort(key=lambda item: LAST.index(item.path.name) + 1 if item.path.name in LAST else 0)
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


class MetadataProbe(threading.Thread):
    """Creates and deletes a topic every second (a metadata write each way, through whichever controller
    serves); records when each round trip succeeded."""

    def __init__(self, bootstrap, client_conf, prefix):
        super().__init__(daemon=True)
        self.bootstrap, self.client_conf, self.prefix = bootstrap, client_conf, prefix
        self.ok, self.errors, self.stopping = [], [], threading.Event()
        self.started = time.monotonic()

    def run(self):
        from confluent_kafka.admin import NewTopic

        n = 0
        while not self.stopping.wait(1.0):
            n += 1
            name = f"{self.prefix}-probe-{n}"
            try:
                from kafka_metal import smoke

                admin = smoke._admin(self.bootstrap, self.client_conf)  # a fresh client: brokers restart under it
                # two replicas, one enough in sync: the probe needs two brokers up and never closes a roll's gate
                topic = NewTopic(name, 1, 2, config={"min.insync.replicas": "1"})
                admin.create_topics([topic], request_timeout=10)[name].result(15)
                admin.delete_topics([name], request_timeout=10)[name].result(15)
                self.ok.append(time.monotonic())
            except Exception as exc:  # noqa: BLE001 - a failed round trip is a gap, counted below
                self.errors.append(f"{name}: {exc}")

    def stop(self):
        self.stopping.set()
        self.join(60)
        ends = [self.started] + self.ok + [time.monotonic()]
        gaps = [b - a for a, b in zip(ends, ends[1:], strict=False)]
        return {"round_trips": len(self.ok), "failed": len(self.errors), "longest_gap_s": round(max(gaps), 1),
                "errors": self.errors[-5:]}


@pytest.fixture(scope="session")
def under_load(bootstrap, client_conf):
    """A load to watch a cluster change by: ``start(topic)`` starts ``kafka_metal.load`` on ``topic`` (acks=all,
    idempotent, 200 records/s) and a :class:`MetadataProbe`; ``stop(work, probe)`` stops both, checks that every
    acknowledged record was consumed and that the probe worked after the change, and returns (report, figures)."""
    from kafka_metal import load

    def start(topic):
        work = load.Load(bootstrap, topic=topic, extra=client_conf, rate=200, partitions=6, replication_factor=3,
                         min_isr=2).start()
        time.sleep(5)  # flowing before anything changes
        probe = MetadataProbe(bootstrap, client_conf, topic)
        probe.start()
        return work, probe

    def stop(work, probe):
        figures = probe.stop()
        report = work.stop(drain_timeout=180)
        print(report.summary(), figures)
        assert report.acked > 1000, report.summary()
        assert report.ok, "; ".join(report.problems())
        # the probe went on working after every step (the last round trip came after the last step)
        assert figures["round_trips"] > 0 and time.monotonic() - probe.ok[-1] < 30, figures
        return report, figures

    return SimpleNamespace(start=start, stop=stop)
