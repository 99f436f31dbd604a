"""Shared test helpers of this directory (such as local_kafka) import by name."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def kafka(tmp_path_factory):
    """One plaintext Kafka node (combined broker and controller) on 127.0.0.1 for the tests that need a plain
    cluster: unpacked from kafka_2.13-4.1.1.tgz of the dist cache (built when missing and Maven is there),
    formatted and started; killed as a process group at the end of the session."""
    pytest.importorskip("confluent_kafka")
    from confluent_kafka import admin as ck_admin
    from local_kafka import LocalKafka, plaintext_node

    node = LocalKafka(tmp_path_factory.mktemp("kafka-plain"), plaintext_node)
    try:
        node.start()
        node.wait_ready(ck_admin.AdminClient({"bootstrap.servers": node.bootstrap}))
        yield node
    finally:
        node.stop()
