"""Shared test helpers of this directory (such as local_kafka) import by name."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


import pytest  # noqa: E402


def _plaintext_properties(data, client_port, controller_port):
    from local_kafka import single_node

    return "\n".join(single_node(data, controller_port) + [
        f"listeners=PLAINTEXT://127.0.0.1:{client_port},CONTROLLER://127.0.0.1:{controller_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{client_port}",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name=PLAINTEXT",
    ]) + "\n"


@pytest.fixture(scope="session")
def kafka(tmp_path_factory):
    """One plaintext Kafka node (combined broker and controller) on 127.0.0.1 for the tests that need a plain
    cluster: unpacked from kafka_2.13-4.1.1.tgz of the dist cache (built when missing and Maven is there),
    formatted and started; killed as a process group at the end of the session."""
    pytest.importorskip("confluent_kafka")
    from confluent_kafka import admin as ck_admin
    from local_kafka import LocalKafka

    node = LocalKafka(tmp_path_factory.mktemp("kafka-plain"), _plaintext_properties)
    try:
        node.start()
        node.wait_ready(ck_admin.AdminClient({"bootstrap.servers": node.bootstrap}))
        yield node
    finally:
        node.stop()
