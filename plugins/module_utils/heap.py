# Copyright: kafka-metal contributors
# Apache License 2.0
"""JVM sizes and the heap of each Kafka process: explicit, or by rule from the host's memory.

Pure functions, unit-tested without hosts; the roles reach them through the ``kafka_heap_size`` filter, and
the inventory's validation checks explicit sizes with them before any host is touched.
"""

from __future__ import annotations

import re

MIB = 1024 * 1024
GIB = 1024 * MIB
# Heap rules: (share of RAM, floor, cap). Brokers leave most memory to the page cache, which serves
# consumers and absorbs writes; Kafka's guidance puts a broker's heap at about 6 GiB even on large
# machines. A KRaft controller holds only the metadata log and needs far less.
HEAP_RULES = {
    "broker": (0.25, 256 * MIB, 6 * GIB),
    "controller": (0.125, 256 * MIB, 2 * GIB),
}
HEAP_STEP = 64 * MIB
# The smallest explicit heap a Kafka or ZooKeeper process starts and serves with.
MIN_HEAP = 128 * MIB


class HeapError(ValueError):
    """Bad input: the message names the setting and the fix."""


SIZE = re.compile(r"([0-9]+)([kmgt]?)", re.IGNORECASE)


def parse_size(value: object, name: str = "size") -> int:
    """A JVM-style size (``512m``, ``6g``, ``1048576``) in bytes."""
    if isinstance(value, bool):
        raise HeapError(f"{name} must be a size like 512m or 6g, got {value!r}")
    m = SIZE.fullmatch(str(value).strip())
    if not m or int(m.group(1)) == 0:
        raise HeapError(f"{name} must be a size like 512m or 6g (or 'auto'), got {value!r}")
    factor = {"": 1, "k": 1024, "m": MIB, "g": GIB, "t": 1024 * GIB}[m.group(2).lower()]
    return int(m.group(1)) * factor


def format_size(size: int) -> str:
    """Bytes as the JVM's ``NNNm`` (or ``Ng`` when whole gibibytes)."""
    if size % GIB == 0:
        return f"{size // GIB}g"
    return f"{size // MIB}m"


def heap_size(setting: object, mem_total: int, kind: str, name: str = "heap size") -> str:
    """The heap for one Kafka process: the explicit ``setting``, or by rule when it is ``auto``.

    The rule takes a share of RAM rounded down to 64 MiB, at least the floor (but never more than
    half of RAM on a tiny host) and at most the cap; see HEAP_RULES. An explicit size above 3/4
    of RAM is refused: the page cache (and the OS) would starve.
    """
    if kind not in HEAP_RULES:
        raise HeapError(f"unknown process kind {kind!r} (broker or controller)")
    if not isinstance(mem_total, int) or mem_total <= 0:
        raise HeapError(f"cannot size the heap: the host's memory is unknown ({mem_total!r})")
    if setting in (None, "", "auto"):
        share, floor, cap = HEAP_RULES[kind]
        size = int(mem_total * share) // HEAP_STEP * HEAP_STEP
        size = max(size, min(floor, mem_total // 2 // HEAP_STEP * HEAP_STEP))
        return format_size(min(size, cap))
    size = parse_size(setting, name)
    if size > mem_total * 3 // 4:
        raise HeapError(
            f"{name} is {setting} but the host has {format_size(mem_total // MIB * MIB)} of memory; a heap above "
            "3/4 of RAM leaves nothing to the page cache: lower it or set it to auto"
        )
    if size < MIN_HEAP:
        raise HeapError(f"{name} is {setting}; Kafka needs at least {format_size(MIN_HEAP)}")
    return format_size(size)
