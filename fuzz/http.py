"""The HTTP door's fuzz target: schemathesis against a live ``kassa serve --demo``.

The suite's contract test (tests/http/test_contract.py) already starts the demo server, signs
in and points schemathesis at docs/openapi.json with every check on; this runs that same test
with more examples and fresh random data (KASSA_FUZZ_HTTP_EXAMPLES), so there is one harness.
Executions are the test cases schemathesis reports; coverage is not measured here (the server
is another process), so it is reported as 0. A failure is a finding: its report is saved.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

DOC = "the HTTP API (ATOL Online, KOMTET, payments) by schemathesis against a live server"
TEST = (
    "tests/http/test_contract.py::test_schemathesis_finds_no_5xx_and_no_answer_outside_the_document"
)
#: Examples per operation for each second asked for: 40 examples took 66 s (1,620 test cases
#: over 13 operations and four phases) on 2 shared cores, so a run lasts roughly what was asked.
EXAMPLES_PER_SECOND = 0.6


def run_http(
    seconds: float | None, runs: int | None, findings: Path
) -> tuple[int, list[str], float]:
    """(executions, saved findings, seconds taken) of one schemathesis run."""
    root = Path(__file__).resolve().parents[1]
    if not (root / TEST.split("::")[0]).exists():
        raise RuntimeError("the http target needs a source checkout (tests/http is not installed)")
    # --runs is examples per operation here; --time, when given, decides (make fuzz gives both)
    examples = max(30, round(seconds * EXAMPLES_PER_SECOND)) if seconds else (runs or 30)
    env = {**os.environ, "KASSA_FUZZ_HTTP_EXAMPLES": str(examples)}
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", TEST],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
    )
    elapsed = time.monotonic() - started
    # the summary is printed once by the test and again in pytest's report of a failure
    executions = max((int(n) for n in re.findall(r"(\d+) generated", run.stdout)), default=0)
    saved: list[str] = []
    if run.returncode != 0:
        findings.mkdir(parents=True, exist_ok=True)
        report = findings / f"schemathesis-{int(time.time())}.txt"
        report.write_text(f"target: http\nexamples: {examples}\n\n{run.stdout}\n{run.stderr}")
        saved.append(str(report))
    return executions, saved, elapsed
