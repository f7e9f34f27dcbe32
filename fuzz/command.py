"""What ``kassa fuzz`` does with its options; engine/cli.py parses them and calls :func:`main`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fuzz.runner import FuzzError, Outcome, dumps, listing, replay, run, target


def main(
    name: str | None,
    *,
    show_list: bool,
    seconds: float | None,
    runs: int | None,
    jobs: int,
    corpus: Path,
    as_json: bool,
    replay_file: Path | None,
) -> int:
    """0 when the run ends with no finding (or the replayed input holds), 1 otherwise."""
    if show_list or name is None:
        width = max(len(n) for n, _ in listing())
        for found, doc in listing():
            print(f"{found:<{width}}  {doc}")
        return 0
    if jobs < 1:
        raise FuzzError("--jobs: at least 1")
    if replay_file is not None:
        return _replay(name, replay_file)
    if name == "http":
        return _http(seconds, runs, corpus, as_json)
    target(name)  # an unknown name is refused before any process starts
    if seconds is None and runs is None:
        seconds = 60.0

    def progress(line: str) -> None:
        print(f"\r{line}" if sys.stderr.isatty() else line, file=sys.stderr, flush=True)

    outcome = run(name, seconds=seconds, runs=runs, jobs=jobs, root=corpus, progress=progress)
    for finding in outcome.findings:
        print(f"finding: {finding} (with {Path(finding).with_suffix('.txt').name})")
    if as_json:
        print(dumps(outcome))
    else:
        print(
            f"{outcome.target}: {outcome.executions} executions in {outcome.seconds} s, "
            f"coverage {outcome.coverage} (ft {outcome.features}), corpus {outcome.corpus}, "
            f"findings {len(outcome.findings)} [{outcome.engine}]"
        )
    return 1 if outcome.findings else 0


def _replay(name: str, path: Path) -> int:
    if name == "http":
        raise FuzzError("an http finding is a schemathesis report: rerun its curl command")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FuzzError(f"--replay: cannot read {path}: {exc.strerror}") from None
    problem = replay(name, data)
    if problem is None:
        print(f"{name}: {path} ({len(data)} bytes) holds")
        return 0
    print(f"{name}: {path} ({len(data)} bytes) fails\n{problem}", end="")
    return 1


def _http(seconds: float | None, runs: int | None, corpus: Path, as_json: bool) -> int:
    from fuzz.http import run_http

    try:
        executions, findings, elapsed = run_http(seconds, runs, corpus / "findings" / "http")
    except RuntimeError as exc:
        raise FuzzError(str(exc)) from None
    outcome = Outcome("http", "schemathesis", executions, round(elapsed, 1), 0, 0, 0, findings)
    with (corpus / "runs.jsonl").open("a") as ledger:
        ledger.write(dumps(outcome) + "\n")
    print(dumps(outcome) if as_json else json.dumps(outcome.as_json(), ensure_ascii=False))
    return 1 if findings else 0
