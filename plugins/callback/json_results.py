# Copyright: kafka-metal contributors
# Apache License 2.0
"""Every host's result of an ad-hoc command, as one JSON object on standard output."""

from __future__ import annotations

DOCUMENTATION = r"""
name: json_results
type: stdout
short_description: Each host's result of an ad-hoc command as one JSON object
version_added: 0.1.0
description:
  - "Prints an object of every host's result (by host name) as one JSON document when the run ends,
    and nothing else on standard output (warnings and errors go to standard error). A failed host's
    result has C(failed=true), an unreachable one C(unreachable=true)."
  - For programs that run C(ansible) and read its results, such as C(kafka-metal luks status).
    ansible-core ships no JSON callback of its own (C(ansible.posix.json) is another collection),
    and its C(tree) callback is deprecated.
  - Results pass through Ansible's own cleaning, so what a module marks C(no_log) is censored.
"""

import json

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "metal.kafka.json_results"

    def __init__(self):
        super().__init__()
        self._results = {}

    def _record(self, result, **extra):
        raw = getattr(result, "result", None)
        if raw is None:
            raw = result._result
        data = json.loads(self._dump_results(raw))
        data.update(extra)
        self._results[result.host.get_name()] = data

    def v2_runner_on_ok(self, result):
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, failed=True)

    def v2_runner_on_unreachable(self, result):
        self._record(result, unreachable=True)

    def v2_runner_on_skipped(self, result):
        self._record(result, skipped=True)

    def v2_playbook_on_stats(self, stats):
        self._display.display(json.dumps(self._results, sort_keys=True))
