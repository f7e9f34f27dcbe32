"""One fuzzing process: ``python -m fuzz.worker TARGET [libFuzzer flags…] CORPUS``.

atheris runs libFuzzer in this process and instruments Python bytecode for coverage, so every
campaign is its own process; :mod:`fuzz.runner` starts them, reads their output and keeps the
findings. A worker prints ``kassa-fuzz executions N`` to stderr about once a second, because
libFuzzer's own status lines come only at powers of two once coverage stops growing.

Without atheris (no wheel for this platform) the worker mutates the corpus at random instead and
says so; it then saves a failing input itself, the way libFuzzer would.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

#: The rooms whose bytecode atheris instruments: what the targets exercise.
INSTRUMENTED = ["protocols", "engine", "emulator", "benchmarks", "fuzz"]
PROGRESS = "kassa-fuzz executions"


def _counting(check: Callable[[bytes], None]) -> Callable[[bytes], None]:
    count = 0
    last = time.monotonic()

    def one_input(data: bytes) -> None:
        nonlocal count, last
        count += 1
        if count & 0xFF == 0 and time.monotonic() - last >= 1.0:
            last = time.monotonic()
            print(f"{PROGRESS} {count}", file=sys.stderr, flush=True)
        check(data)

    return one_input


def _load(name: str) -> Callable[[bytes], None]:
    from fuzz.targets import targets

    target = targets()[name]
    for seed in target.seeds():  # the lazy imports happen here, inside the instrumenting hook
        target.check(seed)
    return target.check


def fuzz_with_atheris(name: str, flags: list[str]) -> None:
    import atheris  # type: ignore[import-untyped, import-not-found, unused-ignore]

    with atheris.instrument_imports(include=INSTRUMENTED):
        check = _load(name)
    atheris.Setup([sys.argv[0], *flags], _counting(check))
    atheris.Fuzz()


def fuzz_at_random(name: str, flags: list[str]) -> None:
    """The fallback: random mutations of the corpus, with libFuzzer's flags and outputs."""
    check = _load(name)
    options = dict(flag[1:].split("=", 1) for flag in flags if flag.startswith("-"))
    dirs = [Path(flag) for flag in flags if not flag.startswith("-")]
    pool = [p.read_bytes() for d in dirs for p in sorted(d.rglob("*")) if p.is_file()]
    seconds = float(options.get("max_total_time", "0")) or None
    count, failing = mutate(
        _counting(check),
        pool,
        int(options.get("runs", "-1")),
        seconds,
        int(options.get("seed", "0")),
    )
    if failing is not None:
        prefix = options.get("artifact_prefix", "./")
        path = f"{prefix}crash-{hashlib.sha1(failing).hexdigest()}"
        Path(path).write_bytes(failing)
        print(f"Test unit written to {path}", file=sys.stderr, flush=True)
    print(f"stat::number_of_executed_units: {count}", file=sys.stderr, flush=True)
    if failing is not None:
        sys.exit(1)


def mutate(
    check: Callable[[bytes], None], pool: list[bytes], runs: int, seconds: float | None, seed: int
) -> tuple[int, bytes | None]:
    """(inputs run, the first that failed or None): seeds first, then random edits of them."""
    rng = random.Random(seed)
    deadline = time.monotonic() + (seconds if seconds is not None else float("inf"))
    pool = list(pool) or [b""]
    queue = list(pool)
    count = 0
    while count != runs and time.monotonic() < deadline:
        if queue:
            data = bytearray(queue.pop())
        else:
            data = bytearray(rng.choice(pool))
            for _ in range(rng.randint(1, 8)):
                _edit(data, rng, pool)
        count += 1
        try:
            check(bytes(data))
        except Exception:
            traceback.print_exc()
            return count, bytes(data)
        if len(pool) < 4096 and count % 97 == 0:
            pool.append(bytes(data))
    return count, None


def _edit(data: bytearray, rng: random.Random, pool: list[bytes]) -> None:
    at = rng.randint(0, len(data))
    edit = rng.randint(0, 3)
    if edit == 0 and data:
        del data[min(at, len(data) - 1)]
    elif edit == 1:
        data[at:at] = bytes([rng.randint(0, 255)])
    elif edit == 2 and data:
        data[min(at, len(data) - 1)] = rng.randint(0, 255)
    else:
        data[at:at] = rng.choice(pool)[: rng.randint(0, 16)]


def main() -> None:
    name, flags = sys.argv[1], sys.argv[2:]
    if os.environ.get("KASSA_FUZZ_ENGINE") == "random":
        fuzz_at_random(name, flags)
        return
    try:
        import atheris  # type: ignore[import-untyped, import-not-found, unused-ignore]  # noqa: F401
    except ImportError:
        print("kassa-fuzz engine random (atheris is not installed)", file=sys.stderr, flush=True)
        fuzz_at_random(name, flags)
        return
    fuzz_with_atheris(name, flags)


if __name__ == "__main__":
    main()
