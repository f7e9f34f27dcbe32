"""Waits that average the timing model's durations on the real clock (темп эмулятора).

A trio timer wakes late: epoll takes whole milliseconds and the kernel schedules when it can,
so a modelled 7 ms command took 8 to 9 on the real clock, and a 12-command receipt about 25 ms
more than its model. A :class:`Pacer` measures how late its own wakes are (a moving average)
and aims each wait that much early, so that the durations average the model's. Under trio's
MockClock nothing wakes late and the pacer changes nothing.
"""

from __future__ import annotations

import trio

#: How fast the lateness estimate follows what is measured (a moving average's weight).
WEIGHT = 0.1
#: The most a wait is aimed early: a wake later than this is a stall, not timer granularity.
MOST_EARLY = 0.002


class Pacer:
    """One register connection's waits; see the module docstring."""

    def __init__(self) -> None:
        self.lateness = 0.0  # the estimated lateness of a wake, in seconds

    def aim(self, target: float) -> float:
        """When to wake so as to be, on average, on time for ``target`` (trio time)."""
        return target - self.lateness

    def woke(self, target: float) -> None:
        """Learn from a wake meant for ``target``: how late it came (or how early)."""
        error = trio.current_time() - target
        self.lateness = min(max(self.lateness + WEIGHT * error, 0.0), MOST_EARLY)

    async def sleep(self, seconds: float) -> None:
        """``trio.sleep(seconds)``, on time on average."""
        if seconds <= 0:
            await trio.sleep(0)
            return
        target = trio.current_time() + seconds
        await trio.sleep_until(self.aim(target))
        self.woke(target)
