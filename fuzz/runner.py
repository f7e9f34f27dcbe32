"""``kassa fuzz``: start worker processes, show their progress, keep and minimise findings.

Layout of a run's state under ``--corpus DIR`` (default ``.fuzz``): ``DIR/corpus/TARGET`` is the
working corpus (seeded from :mod:`fuzz.targets`' seeds, grown by libFuzzer) and
``DIR/findings/TARGET`` holds each finding: the minimised input and a ``.txt`` with its target,
its traceback and the command that replays it. The two are apart because libFuzzer reads a
corpus directory recursively, and a finding inside it would stop every later run at once.

Coverage is libFuzzer's own pair of counters as it prints them: ``cov`` (instrumented Python
bytecode edges, atheris's counters) and ``ft`` (features: edges with hit-count buckets).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import attrs

from fuzz.targets import Target, targets
from fuzz.worker import PROGRESS

#: Seconds one input may take before it counts as a hang (libFuzzer's -timeout).
INPUT_TIMEOUT = 10
#: Longest input libFuzzer makes (the biggest seed, an ATOL Online body, is about 4 KB).
MAX_LEN = 8192
#: Seconds spent minimising one finding.
MINIMISE_SECONDS = 30

_STATUS = re.compile(r"^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/")
_UNIT = re.compile(r"Test unit written to (\S+)")
_DONE = re.compile(r"stat::number_of_executed_units: (\d+)")


class FuzzError(Exception):
    """A fuzz run that cannot start: an unknown target, a missing file."""


@attrs.define
class _Worker:
    """What one worker process has said so far."""

    process: subprocess.Popen[str]
    executions: int = 0
    coverage: int = 0
    features: int = 0
    corpus: int = 0
    crash: Path | None = None
    engine: str = "atheris"
    lines: list[str] = attrs.Factory(list)


@attrs.frozen
class Outcome:
    """The result of ``kassa fuzz TARGET``: the JSON line's fields."""

    target: str
    engine: str
    executions: int
    seconds: float
    coverage: int
    features: int
    corpus: int
    findings: list[str]

    def as_json(self) -> dict[str, Any]:
        rate = round(self.executions / self.seconds) if self.seconds else 0
        return attrs.asdict(self) | {"executions_per_second": rate}


def target(name: str) -> Target:
    found = targets().get(name)
    if found is None:
        raise FuzzError(f"no fuzz target {name!r}; kassa fuzz --list names them")
    return found


def seed_corpus(chosen: Target, corpus: Path) -> None:
    """Write the seeds into the corpus directory, named by SHA-1 as libFuzzer names inputs."""
    corpus.mkdir(parents=True, exist_ok=True)
    for seed in chosen.seeds():
        path = corpus / hashlib.sha1(seed).hexdigest()
        if not path.exists():
            path.write_bytes(seed)


def _root() -> Path:
    return Path(__file__).resolve().parents[1]


def _environment() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(_root()), path) if p)}


def _start(name: str, flags: list[str]) -> _Worker:
    process = subprocess.Popen(
        [sys.executable, "-m", "fuzz.worker", name, *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        env=_environment(),
        start_new_session=True,
    )
    return _Worker(process)


def _read(worker: _Worker, stream: IO[str]) -> None:
    for line in stream:
        worker.lines.append(line)
        del worker.lines[:-400]  # the traceback and the status lines around it are enough
        if line.startswith(PROGRESS):
            worker.executions = max(worker.executions, int(line.split()[-1]))
        elif status := _STATUS.match(line):
            runs, cov, ft, corp = map(int, status.groups())
            worker.executions = max(worker.executions, runs)
            worker.coverage, worker.features, worker.corpus = cov, ft, corp
        elif unit := _UNIT.search(line):
            worker.crash = Path(unit.group(1))
        elif done := _DONE.match(line):
            worker.executions = max(worker.executions, int(done.group(1)))
        elif line.startswith("kassa-fuzz engine"):
            worker.engine = line.split()[2] + " mutation (no atheris)"


def run(
    name: str,
    *,
    seconds: float | None,
    runs: int | None,
    jobs: int,
    root: Path,
    progress: Callable[[str], None],
) -> Outcome:
    """Fuzz ``name`` with ``jobs`` processes until the time or the runs are spent, or a finding."""
    chosen = target(name)
    corpus, findings = root / "corpus" / name, root / "findings" / name
    seed_corpus(chosen, corpus)
    findings.mkdir(parents=True, exist_ok=True)
    flags = [
        f"-timeout={INPUT_TIMEOUT}",
        f"-max_len={MAX_LEN}",
        "-print_final_stats=1",
        f"-artifact_prefix={findings}/",
    ]
    if seconds is not None:
        flags.append(f"-max_total_time={max(1, round(seconds))}")
    if runs is not None:
        flags.append(f"-runs={-(-runs // jobs)}")
    started = time.monotonic()
    workers = [_start(name, [*flags, f"-seed={index + 1}", str(corpus)]) for index in range(jobs)]
    readers = []
    for worker in workers:
        assert worker.process.stderr is not None
        reader = threading.Thread(target=_read, args=(worker, worker.process.stderr), daemon=True)
        reader.start()
        readers.append(reader)
    shown = started
    try:
        while any(w.process.poll() is None for w in workers):
            time.sleep(0.1)
            if time.monotonic() - shown >= 1.0:
                shown = time.monotonic()
                progress(_line(name, workers, shown - started))
            if any(w.crash for w in workers):
                break
    except KeyboardInterrupt:
        pass
    finally:
        for worker in workers:
            if worker.process.poll() is None:
                os.killpg(worker.process.pid, signal.SIGINT)  # libFuzzer prints its stats
        for worker in workers:
            try:
                worker.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(worker.process.pid, signal.SIGKILL)
                worker.process.wait()
        for reader in readers:
            reader.join(timeout=5)
    elapsed = time.monotonic() - started
    progress(_line(name, workers, elapsed))
    saved = [
        str(keep_finding(name, worker.crash, worker.lines, findings))
        for worker in workers
        if worker.crash is not None and worker.crash.exists()
    ]
    outcome = Outcome(
        target=name,
        engine=workers[0].engine,
        executions=sum(w.executions for w in workers),
        seconds=round(elapsed, 1),
        coverage=max(w.coverage for w in workers),
        features=max(w.features for w in workers),
        corpus=sum(1 for p in corpus.iterdir() if p.is_file()),
        findings=saved,
    )
    with (root / "runs.jsonl").open("a") as ledger:  # the campaign's totals add these up
        ledger.write(dumps(outcome) + "\n")
    return outcome


def _line(name: str, workers: list[_Worker], elapsed: float) -> str:
    executions = sum(w.executions for w in workers)
    found = sum(1 for w in workers if w.crash)
    return (
        f"fuzz {name}: {executions} executions, {executions / max(elapsed, 0.001):.0f}/s, "
        f"cov {max(w.coverage for w in workers)} ft {max(w.features for w in workers)}, "
        f"findings {found}, {elapsed:.0f} s"
    )


def keep_finding(name: str, crash: Path, lines: list[str], findings: Path) -> Path:
    """Minimise a crashing input, then save it beside a .txt of its target and traceback."""
    kind = crash.name.split("-", 1)[0]  # crash, timeout, oom, slow-unit
    data = crash.read_bytes()
    if kind == "crash":
        data = minimise(name, data)
    final = findings / f"{kind}-{hashlib.sha1(data).hexdigest()}"
    final.write_bytes(data)
    if crash != final:
        crash.unlink()
    problem = replay(name, data) if kind == "crash" else None
    final.with_suffix(".txt").write_text(
        f"target: {name}\nkind: {kind}\ninput: {final.name} ({len(data)} bytes) {data[:64].hex()}\n"
        f"replay: kassa fuzz {name} --replay {final}\n\n{problem or _excerpt(lines)}"
    )
    return final


def minimise(name: str, data: bytes, seconds: float = MINIMISE_SECONDS) -> bytes:
    """The shortest, then plainest, input found that fails with the same exception type.

    Delta debugging in this process (libFuzzer's -minimize_crash re-executes argv[0], which
    under atheris is a module, not a program): drop halves, quarters … single bytes, then
    zero the bytes that may be zero.
    """
    deadline = time.monotonic() + seconds
    first = replay(name, data)
    if first is None:
        return data
    kind = _exception(first)

    def fails(candidate: bytes) -> bool:
        problem = replay(name, candidate)
        return problem is not None and _exception(problem) == kind

    chunk = max(len(data) // 2, 1)
    while chunk and time.monotonic() < deadline:
        at, shrunk = 0, False
        while at < len(data) and time.monotonic() < deadline:
            candidate = data[:at] + data[at + chunk :]
            if fails(candidate):
                data, shrunk = candidate, True
            else:
                at += chunk
        if not shrunk:
            chunk //= 2
    for at in range(len(data)):
        if time.monotonic() >= deadline:
            break
        if data[at] and fails(data[:at] + b"\0" + data[at + 1 :]):
            data = data[:at] + b"\0" + data[at + 1 :]
    return data


def _exception(problem: str) -> str:
    return problem.rstrip().rsplit("\n", 1)[-1].split(":", 1)[0]


def _excerpt(lines: list[str]) -> str:
    start = max((i for i, line in enumerate(lines) if "Uncaught Python" in line), default=0)
    return "".join(lines[start : start + 60])


def replay(name: str, data: bytes) -> str | None:
    """Run one input through ``name`` in this process: None when it holds, else the traceback."""
    chosen = target(name)

    def alarm(signum: int, frame: object) -> None:
        raise TimeoutError(f"one input ran over {INPUT_TIMEOUT} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(INPUT_TIMEOUT)
    try:
        chosen.check(data)
    except Exception:
        return traceback.format_exc()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return None


def listing() -> list[tuple[str, str]]:
    """(name, what it checks) of every target, ``http`` included."""
    from fuzz.http import DOC

    return [(t.name, t.doc) for t in targets().values()] + [("http", DOC)]


def dumps(outcome: Outcome) -> str:
    return json.dumps(outcome.as_json(), ensure_ascii=False)
