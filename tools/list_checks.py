"""Every check the suite ran, from the JUnit reports of a run (figures for notes; not a test).

    .venv/bin/python tools/list_checks.py [.ci/logs] [--all] > tests/checks.txt

`.ci/test` has pytest write a JUnit report for the unit and integration tests and for each Molecule
scenario's verify step (`.ci/logs/checks-<suite>.xml`). This prints one line per check that passed,
``<suite>  <test id>``, sorted, so two runs' lists compare with ``diff``: a check that disappears shows as a
removed line. ``--all`` adds the checks that were skipped (with ``skipped``) and failed (``failed``).
"""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def checks(report):
    """``(test id, outcome)`` of every test case in one JUnit report."""
    for case in ET.parse(report).getroot().iter("testcase"):
        module = (case.get("classname") or "").replace(".", "/")
        test_id = f"{module}.py::{case.get('name')}" if module else case.get("name")
        if case.find("skipped") is not None:
            outcome = "skipped"
        elif case.find("failure") is not None or case.find("error") is not None:
            outcome = "failed"
        else:
            outcome = "passed"
        yield test_id, outcome


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("logs", nargs="?", default=".ci/logs", help="directory with checks-<suite>.xml")
    ap.add_argument("--all", action="store_true", help="also list skipped and failed checks")
    args = ap.parse_args(argv)
    reports = sorted(Path(args.logs).glob("checks-*.xml"))
    if not reports:
        raise SystemExit(f"no checks-*.xml in {args.logs}: run .ci/test first")
    lines = set()
    for report in reports:
        suite = report.stem[len("checks-"):]
        for test_id, outcome in checks(report):
            if outcome == "passed":
                lines.add(f"{suite}  {test_id}")
            elif args.all:
                lines.add(f"{suite}  {test_id}  {outcome}")
    sys.stdout.write("".join(f"{line}\n" for line in sorted(lines)))


if __name__ == "__main__":
    main()
