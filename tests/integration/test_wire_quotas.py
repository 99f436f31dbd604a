"""Client quotas through module_utils/wire.py (DescribeClientQuotas v0, AlterClientQuotas v0) against a real Kafka.

The fixture unpacks kafka_2.13-4.1.1.tgz from the dist cache (as test_kafka_admin_modules.py does,
building it when it is missing and Maven is there), formats one combined broker+controller on
127.0.0.1 with a PLAINTEXT client listener and starts it once; it is killed as a process group at
the end. Nothing but wire.py talks to it.

The broker forwards AlterClientQuotas to the controller and answers once the change is committed,
but it serves DescribeClientQuotas from its own copy of the metadata, which can lag that answer by
a few milliseconds: reads after a write wait until they see it.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from ansible_collections.metal.kafka.plugins.module_utils import wire
from local_kafka import NEEDS_JAVA, LocalKafka, free_port, single_node

pytestmark = NEEDS_JAVA

ALICE = {"user": "alice"}
APP = {"client-id": "app-1"}
ALICE_APP = {"user": "alice", "client-id": "app-1"}
DEFAULT_USER = {"user": None}
OFFICE = {"ip": "10.0.0.1"}


def server_properties(data: Path, client_port: int, controller_port: int) -> str:
    return "\n".join(single_node(data, controller_port) + [
        f"listeners=PLAINTEXT://127.0.0.1:{client_port},CONTROLLER://127.0.0.1:{controller_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{client_port}",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name=PLAINTEXT",
    ]) + "\n"


@pytest.fixture(scope="module")
def kafka(tmp_path_factory):
    node = LocalKafka(tmp_path_factory.mktemp("kafka-quotas"), server_properties)
    try:
        node.start()
        deadline = time.monotonic() + 90
        while True:  # ready when the broker answers a quota request
            if node.proc.poll() is not None:
                raise AssertionError(f"Kafka exited ({node.proc.returncode}):\n{node.console.read_text()[-4000:]}")
            try:
                wire.describe_client_quotas("127.0.0.1", node.port, timeout=2)
                break
            except (OSError, wire.ProbeError):
                if time.monotonic() > deadline:
                    raise AssertionError(f"Kafka not ready after 90s:\n{node.console.read_text()[-4000:]}") from None
                time.sleep(0.3)
        yield node
    finally:
        node.stop()


def described_eventually(bootstrap: str, expect: list, timeout: float = 15) -> list:
    deadline = time.monotonic() + timeout
    while True:
        got = wire.describe_client_quotas_any(bootstrap, timeout=5)
        if got == expect or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def test_quotas_are_altered_described_and_removed(kafka):
    # a dead server first: the *_any helpers go on to the next one
    bootstrap = f"127.0.0.1:{free_port()},{kafka.bootstrap}"
    assert wire.describe_client_quotas_any(bootstrap) == []

    entries = [
        {"entity": ALICE, "values": {"producer_byte_rate": 1048576, "consumer_byte_rate": 2097152.0}},
        {"entity": APP, "values": {"request_percentage": 50.5}},
        {"entity": ALICE_APP, "values": {"producer_byte_rate": 524288}},
        {"entity": DEFAULT_USER, "values": {"producer_byte_rate": 1024, "consumer_byte_rate": 4096}},
        {"entity": OFFICE, "values": {"connection_creation_rate": 5}},
    ]
    altered = [DEFAULT_USER, ALICE, ALICE_APP, APP, OFFICE]  # sorted as described, whatever the broker's order
    # validate_only checks and changes nothing
    assert wire.alter_client_quotas_any(bootstrap, entries, validate_only=True) == altered
    time.sleep(0.5)
    assert wire.describe_client_quotas("127.0.0.1", kafka.port) == []

    assert wire.alter_client_quotas_any(bootstrap, entries) == altered
    expect = [
        {"entity": DEFAULT_USER, "values": {"consumer_byte_rate": 4096.0, "producer_byte_rate": 1024.0}},
        {"entity": ALICE, "values": {"consumer_byte_rate": 2097152.0, "producer_byte_rate": 1048576.0}},
        {"entity": ALICE_APP, "values": {"producer_byte_rate": 524288.0}},
        {"entity": APP, "values": {"request_percentage": 50.5}},
        {"entity": OFFICE, "values": {"connection_creation_rate": 5.0}},
    ]
    assert described_eventually(bootstrap, expect) == expect
    assert wire.describe_client_quotas("127.0.0.1", kafka.port) == expect  # the plain call, same answer

    # remove one value of alice and the (user, client-id) pair's only value, which removes that entity
    wire.alter_client_quotas("127.0.0.1", kafka.port, [
        {"entity": ALICE, "remove": ["consumer_byte_rate"]},
        {"entity": ALICE_APP, "values": {}, "remove": ["producer_byte_rate"]},
    ])
    expect_after = [
        {"entity": DEFAULT_USER, "values": {"consumer_byte_rate": 4096.0, "producer_byte_rate": 1024.0}},
        {"entity": ALICE, "values": {"producer_byte_rate": 1048576.0}},
        {"entity": APP, "values": {"request_percentage": 50.5}},
        {"entity": OFFICE, "values": {"connection_creation_rate": 5.0}},
    ]
    assert described_eventually(bootstrap, expect_after) == expect_after


def test_the_broker_refusal_names_the_entity(kafka):
    bad = [{"entity": {"user": "bob"}, "values": {"bogus_rate": 1}},
           {"entity": {"user": "carol", "ip": "10.0.0.2"}, "values": {"connection_creation_rate": 1}}]
    with pytest.raises(wire.QuotaError) as info:
        wire.alter_client_quotas_any(kafka.bootstrap, bad)
    text = str(info.value)
    assert "user=bob: INVALID_REQUEST: Invalid configuration key bogus_rate" in text
    assert "user=carol, ip=10.0.0.2: INVALID_REQUEST:" in text
    assert info.value.code == 42
