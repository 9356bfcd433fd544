"""The OpenAPI fuzz run's figures: operations fuzzed, examples per operation, and what they were
answered (status by generation mode), from the same run the test suite makes
(``tests/e2e/test_openapi_fuzz.py``: schemathesis over ``GET /v1/openapi.json`` against a fresh
local stack, over HTTP, with a real workspace and key).

    .venv/bin/python bench/fuzz.py [--examples 12]

``--examples`` bounds the examples per operation (the suite's default is 12); the run fails, and so
does this script, on any 5xx or any response the document does not describe.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=12, help="examples per operation (hypothesis max_examples)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "fuzz.json"
        env = {**os.environ, "FUZZ_EXAMPLES": str(args.examples), "FUZZ_REPORT": str(report)}
        started = time.monotonic()
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "tests/e2e/test_openapi_fuzz.py", "-q", "-p", "no:cacheprovider"],
            cwd=ROOT, env=env, capture_output=True, text=True,
        )
        elapsed = time.monotonic() - started
        if not report.exists():
            print(run.stdout[-4000:], run.stderr[-2000:], sep="\n")
            return run.returncode or 1
        data = json.loads(report.read_text())
    operations: dict[str, int] = data["operations"]
    statuses: dict[str, dict[str, int]] = data["statuses"]
    width = max(len(label) for label in operations)
    print(f"== OpenAPI fuzz run (schemathesis, <= {data['examples_per_operation']} examples per operation, positive and negative) ==")
    print(f"{'operation':<{width}}  examples  answered (mode status: count)")
    for label in sorted(operations, key=lambda k: (k.split(" ", 1)[1], k)):
        answered = ", ".join(f"{k}: {v}" for k, v in sorted(statuses.get(label, {}).items()))
        print(f"{label:<{width}}  {operations[label]:>8}  {answered}")
    by_class: Counter[str] = Counter()
    for per in statuses.values():
        for key, n in per.items():
            by_class[f"{key.split()[1][0]}xx"] += n
    total = sum(operations.values())
    print(f"\noperations fuzzed: {len(operations)}; examples sent: {total}; by status class: {dict(sorted(by_class.items()))}")
    print(f"wall time (stack start included): {elapsed:.0f} s; result: {run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.returncode}")
    return run.returncode


if __name__ == "__main__":
    sys.exit(main())
