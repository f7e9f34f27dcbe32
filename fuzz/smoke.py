"""The CI smoke: every target on its seeds and a few thousand random mutations, in one process.

``python -m fuzz.smoke [RUNS]`` prints one line per target and exits 1 on the first input that
breaks a property (its hex and traceback printed). tests/fuzz runs it in a subprocess, so a
hang is stopped by the test's timeout and a crash cannot take pytest down; coverage guidance
is left to ``kassa fuzz`` (one libFuzzer run per process would cost 2 s of start-up per target).
"""

from __future__ import annotations

import sys
import time

from fuzz.targets import targets
from fuzz.worker import mutate


def main(runs: int = 2000) -> int:
    """``runs`` inputs a target (a tenth for the slow ones), the same inputs every time."""
    for name, target in targets().items():
        started = time.monotonic()
        count, failing = mutate(
            target.check, target.seeds(), runs // 10 if target.slow else runs, None, seed=1
        )
        took = time.monotonic() - started
        if failing is not None:
            print(f"{name}: FINDING after {count} inputs: {failing.hex()}", flush=True)
            return 1
        print(f"{name}: {count} inputs hold ({took:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*(int(arg) for arg in sys.argv[1:2])))
