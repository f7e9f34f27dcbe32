"""The garbage collector's schedule for Kassa's long-running processes.

A cloud register keeps many objects alive for every receipt in flight: the task and its
frames, the plan, the link's state, for about half a second while its register works. With
CPython's default schedule (a young collection every 700 new containers, a full one after ten
of the middle generation), the collector walks those live objects again and again, and its
full collections walk everything. Measured with ``kassa bench e2e`` at 1,000 registers on a
quiet 2-core machine, the fleet's process spent 9.9 to 11.4 of its 30 to 34 CPU seconds in
the collector (54 full collections of up to 240 ms), and the engine's went through full
collections of up to 131 ms, each a stall of its event loop. That, not the engine's
scheduling, made throughput fall past saturation (507 receipts/s at 500 registers, 280 at
1,000).

The objects that live longest are also the ones that never become garbage: modules,
functions, classes and settings made at start-up. Freezing them (:func:`gc.freeze`) takes
them out of every later collection. Garbage without cycles is freed by reference counting
whatever the schedule; a higher young threshold only lets cyclic garbage (a caught
exception's traceback, say) wait longer, at most about YOUNG_THRESHOLD containers of it.
"""

from __future__ import annotations

import gc

#: New containers (allocations less deallocations) between young collections; CPython's
#: default is 700. At 100,000 the collector ran 6 times in a 1,000-register e2e run instead
#: of about 7,000, for 0.66 s of CPU instead of about 10 s (benchmarks, not tests, say so).
YOUNG_THRESHOLD = 100_000


def tune_collector() -> None:
    """Collect rarely, and never walk what start-up built: call once, before serving."""
    gc.collect()  # what start-up left as garbage is freed now, not frozen for good
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
