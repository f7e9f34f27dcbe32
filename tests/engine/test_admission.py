"""Admission to the registers: the limit falls when receipts take longer than their shortest
time, grows back when they do not, and a receipt waits for a slot in order of arrival."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing

from engine.admission import LEAST, Admission


def test_receipts_at_their_shortest_time_keep_the_limit_at_the_number_of_registers() -> None:
    admission = Admission(100)
    for _ in range(50):
        admission.observe(("kkt-1", 0), 0.48)
    assert admission.limit == 100.0


def test_slow_receipts_lower_the_limit_by_the_gradient_then_fast_ones_raise_it() -> None:
    admission = Admission(100, tolerance=1.5)
    admission.observe("a", 0.5)  # the shortest time: the limit stays
    admission.observe("a", 1.5)  # 3 × the shortest: the gradient is 1.5 × 0.5 / 1.5 = 0.5
    # 100 × 0.5 + √100 = 60 suggested; the limit moves a fifth of the way: 100 - 8 = 92.
    assert admission.limit == pytest.approx(92.0)
    admission.observe("a", 3.0)  # 6 ×: the gradient is at its steepest, 0.5
    assert admission.limit == pytest.approx(0.8 * 92 + 0.2 * (46 + math.sqrt(92)))
    for _ in range(500):
        admission.observe("a", 10.0)
    assert admission.limit == LEAST  # it never falls below the least
    for _ in range(500):
        admission.observe("a", 0.7)  # within the tolerance: it grows by its square root
    assert admission.limit == 100.0


def test_each_key_learns_its_own_shortest_time() -> None:
    admission = Admission(100)
    admission.observe("short", 0.5)
    admission.observe("long", 2.0)  # a longer receipt, not a slow one
    assert admission.limit == 100.0


def test_an_infinite_tolerance_admits_everything() -> None:
    admission = Admission(10, tolerance=math.inf)
    admission.observe("a", 0.1)
    admission.observe("a", 100.0)
    assert admission.limit == 10.0


async def test_past_the_limit_receipts_wait_for_a_slot_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    admission = Admission(20, least=2)
    admission.observe("a", 0.1)
    for _ in range(200):
        admission.observe("a", 10.0)
    # At the steepest gradient the limit settles where L = L / 2 + √L: at 4.
    assert admission.limit == pytest.approx(4.0, abs=0.01)
    order: list[int] = []

    async def receipt(index: int) -> None:
        async with admission.slot():
            order.append(index)
            assert admission.in_flight <= 4
            await trio.sleep(1)

    async with trio.open_nursery() as nursery:
        for index in range(9):
            nursery.start_soon(receipt, index)
            await trio.sleep(0.01)
        await trio.sleep(0.5)
        assert order == [0, 1, 2, 3] and admission.waiting == 5
    assert order == list(range(9))
    assert (admission.admitted, admission.deferred, admission.in_flight) == (9, 5, 0)


async def test_a_slot_goes_on_to_its_queue_s_next_receipt_unless_another_queue_waits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    admission = Admission(1)
    async with admission.slot("shop/main"):
        assert admission.keep("shop/main")  # nobody waits: it goes on
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_wait_for_a_slot, admission, "shop/main")
            await trio.sleep(1)
            assert admission.keep("shop/main")  # only its own queue waits: still alike
            nursery.start_soon(_wait_for_a_slot, admission, "cafe/main")
            await trio.sleep(1)
            assert not admission.keep("shop/main")  # another tenant's group waits: it yields
            nursery.cancel_scope.cancel()
    assert admission.waiting == 0 and admission.keep("shop/main")


async def _wait_for_a_slot(admission: Admission, lane: str) -> None:
    async with admission.slot(lane):
        pass
