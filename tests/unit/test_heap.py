"""JVM heaps (module_utils/heap.py): by rule from the host's memory, or explicit and checked."""

import pytest
from ansible_collections.metal.kafka.plugins.module_utils import heap
from ansible_collections.metal.kafka.plugins.module_utils.heap import GIB, MIB, HeapError


@pytest.mark.parametrize(
    ("mem", "kind", "expected"),
    [
        (64 * GIB, "broker", "6g"),  # capped
        (16 * GIB, "broker", "4g"),  # a quarter
        (3 * GIB, "broker", "768m"),
        (1 * GIB, "broker", "256m"),  # floor
        (512 * MIB, "broker", "256m"),  # floor, at most half of RAM
        (300 * MIB, "broker", "128m"),
        (64 * GIB, "controller", "2g"),
        (8 * GIB, "controller", "1g"),
        (3 * GIB, "controller", "384m"),
    ],
)
def test_heap_by_rule(mem, kind, expected):
    assert heap.heap_size("auto", mem, kind) == expected


def test_explicit_heap_is_kept_and_normalised():
    assert heap.heap_size("2048m", 16 * GIB, "broker") == "2g"
    assert heap.heap_size("1536M", 16 * GIB, "controller") == "1536m"


def test_explicit_heap_above_three_quarters_of_ram_is_refused():
    with pytest.raises(HeapError, match="broker_heap_size is 12g but the host has 15g.*page cache"):
        heap.heap_size("12g", 15 * GIB, "broker", "broker_heap_size")


@pytest.mark.parametrize("value", ["lots", "0", "-1g", "6gb", True])
def test_malformed_heap_is_refused(value):
    with pytest.raises(HeapError, match="size like 512m"):
        heap.heap_size(value, 16 * GIB, "broker")


def test_heap_needs_the_memory():
    with pytest.raises(HeapError, match="memory is unknown"):
        heap.heap_size("auto", 0, "broker")


def test_an_explicit_heap_below_what_kafka_starts_with_is_refused_here_and_in_the_inventory():
    from ansible_collections.metal.kafka.plugins.module_utils import inventory_rules

    with pytest.raises(HeapError, match="needs at least 128m"):
        heap.heap_size("64m", 16 * GIB, "broker", "broker_heap_size")
    assert inventory_rules.heap_problems("broker_heap_size", "64m")
    assert heap.heap_size("128m", 16 * GIB, "broker") == "128m"
    assert inventory_rules.heap_problems("broker_heap_size", "128m") == []
