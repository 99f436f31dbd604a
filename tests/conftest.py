"""Make the collection importable as ``ansible_collections.metal.kafka`` for every test."""

import kafka_metal  # noqa: F401  (sets up the collection path)
