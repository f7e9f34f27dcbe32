"""What every benchmark shares: its command-line options and how it times a call."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable


def bench_arguments(
    prog: str, description: str | None, argv: list[str] | None, default_seconds: float = 1.0
) -> tuple[argparse.Namespace, float]:
    """Parse ``--seconds``, ``--quick`` and ``--json``; returns the options and the time per row.

    ``--quick`` is for the test suite's smoke runs: it measures for 10 ms, which proves the
    benchmark works and says nothing about speed.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--seconds", type=float, default=default_seconds, help="time per measurement"
    )
    parser.add_argument("--quick", action="store_true", help="a tiny run, for smoke tests")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args(argv)
    return args, 0.01 if args.quick else args.seconds


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of ``fn``, timed over doubling batches for at least ``seconds``."""
    batch = 1
    while True:
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return batch / elapsed
        batch *= 2
