"""Every check the suite ran, from the check records of a run (figures for notes; not a test).

    .venv/bin/python tools/list_checks.py [.ci/logs/checks.jsonl] [--all] > tests/checks.txt

`.ci/test` loads the pytest plugin ``kafka_metal.checklist`` into every pytest run (unit and integration
tests, each Molecule scenario's verify step), which appends one record per check to
`.ci/logs/checks.jsonl`. This prints one line per check that passed, ``<suite>  <test id>``, sorted, so
two runs' lists compare with ``diff``: a check that disappears shows as a removed line. ``--all`` adds the
checks that were skipped or failed, with their outcome.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("records", nargs="?", default=".ci/logs/checks.jsonl")
    ap.add_argument("--all", action="store_true", help="also list skipped and failed checks")
    args = ap.parse_args(argv)
    path = Path(args.records)
    if not path.exists():
        raise SystemExit(f"{path} does not exist: run .ci/test first")
    outcomes = {}
    for line in path.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            key = (rec["suite"], rec["id"])
            # a check that failed anywhere in the run counts as failed; else passed beats skipped
            rank = {"failed": 2, "passed": 1, "skipped": 0}
            if rank[rec["outcome"]] >= rank[outcomes.get(key, "skipped")]:
                outcomes[key] = rec["outcome"]
    lines = [f"{suite}  {test_id}" + ("" if outcome == "passed" else f"  {outcome}")
             for (suite, test_id), outcome in sorted(outcomes.items()) if outcome == "passed" or args.all]
    sys.stdout.write("".join(f"{line}\n" for line in lines))


if __name__ == "__main__":
    main()
