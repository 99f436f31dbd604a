"""A pytest plugin that records every check a run made, for tools/list_checks.py.

Load it with ``-p kafka_metal.checklist`` and name the file in ``KAFKA_METAL_CHECKS_FILE``: each test
appends one JSON line ``{"suite", "id", "outcome"}`` (``passed``, ``skipped`` or ``failed``), the suite
being ``KAFKA_METAL_CHECKS_SUITE`` (the Molecule scenario's name when it is unset, else ``pytest``).
"""

from __future__ import annotations

import json
import os


def pytest_runtest_logreport(report):
    path = os.environ.get("KAFKA_METAL_CHECKS_FILE")
    if not path:
        return
    # one outcome per test: the call's, or the setup's when it failed or skipped there
    if report.when == "call" or (report.when == "setup" and not report.passed):
        outcome = "passed" if report.passed else "skipped" if report.skipped else "failed"
    elif report.when == "teardown" and report.failed:
        outcome = "failed"
    else:
        return
    suite = os.environ.get("KAFKA_METAL_CHECKS_SUITE") or os.environ.get("MOLECULE_SCENARIO_NAME") or "pytest"
    # a Molecule verify step runs from the scenario's directory: name tests from the shared tests folder
    test_id = report.nodeid.split("shared/tests/", 1)[-1]
    with open(path, "a") as fh:
        fh.write(json.dumps({"suite": suite, "id": test_id, "outcome": outcome}) + "\n")
