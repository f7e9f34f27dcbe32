"""The pacer: waits aimed early by the lateness it has seen, so durations average the model's."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from emulator.pace import MOST_EARLY, Pacer


async def test_under_mockclock_nothing_is_late_and_waits_are_exact(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pacer = Pacer()
    start = trio.current_time()
    for _ in range(10):
        await pacer.sleep(0.007)
    assert trio.current_time() - start == pytest.approx(0.07)
    assert pacer.lateness == 0.0


def test_late_wakes_make_it_aim_early_by_their_average_and_no_more_than_the_cap() -> None:
    clock = trio.testing.MockClock()

    async def wakes(late: float, count: int) -> None:
        for _ in range(count):
            target = trio.current_time() + 0.005
            wake = pacer.aim(target) + late  # the timer set for the aim fires ``late``
            clock.jump(max(wake - trio.current_time(), 0.0))
            pacer.woke(target)

    pacer = Pacer()
    trio.run(wakes, 0.0008, 200, clock=clock)
    assert pacer.lateness == pytest.approx(0.0008, rel=1e-3)
    assert pacer.aim(10.0) == pytest.approx(10.0 - 0.0008)
    trio.run(wakes, 0.5, 50, clock=clock)  # a stall is not timer granularity
    assert pacer.lateness == MOST_EARLY
    trio.run(wakes, 0.0, 500, clock=clock)  # timers on time again: it stops aiming early
    assert pacer.lateness == pytest.approx(0.0, abs=1e-6)
