# Copyright: kafka-metal contributors
# Apache License 2.0
"""Where a play's time goes: the slowest tasks, summed over hosts and loop items, at the end."""

from __future__ import annotations

DOCUMENTATION = r"""
name: task_timer
type: aggregate
short_description: The slowest tasks of a run, printed at its end
description:
  - Measures each task from its start to the start of the next one (all hosts, all loop items) and
    prints the slowest ones, with the run's total, when the playbook ends.
  - Enable it with C(ANSIBLE_CALLBACKS_ENABLED=metal.kafka.task_timer).
requirements:
  - enabled in the configuration or the environment
options:
  top:
    description: How many tasks to list.
    type: int
    default: 15
    env:
      - name: KAFKA_METAL_TASK_TIMER_TOP
"""

import time

from ansible.plugins.callback import CallbackBase


def slowest(durations: dict[str, float], top: int) -> list[tuple[str, float]]:
    return sorted(durations.items(), key=lambda kv: (-kv[1], kv[0]))[:top]


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "metal.kafka.task_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._durations: dict[str, float] = {}
        self._current: tuple[str, float] | None = None
        self._start = time.monotonic()

    def _close(self):
        if self._current:
            name, started = self._current
            self._durations[name] = self._durations.get(name, 0.0) + time.monotonic() - started
            self._current = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._close()
        self._current = (task.get_name(), time.monotonic())

    def v2_playbook_on_handler_task_start(self, task):
        self.v2_playbook_on_task_start(task, False)

    def v2_playbook_on_stats(self, stats):
        self._close()
        total = time.monotonic() - self._start
        top = self.get_option("top")
        # on standard error: a run whose standard output is data (a JSON callback) stays parseable
        self._display.display(f"slowest tasks (of {len(self._durations)}, run {total:.0f} s):", stderr=True)
        for name, seconds in slowest(self._durations, top):
            self._display.display(f"  {seconds:7.1f} s  {name}", stderr=True)
