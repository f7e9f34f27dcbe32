"""Admission to the registers (допуск чеков к ККТ): how many receipts are on registers at once.

Past saturation, more receipts in flight make no more receipts/s. Each exchange waits longer
for a busy event loop (the engine's, or the process that drives the registers), each receipt
holds its register longer, and the timers and wake-ups of the extra exchanges take CPU that
the others needed: throughput falls and latency piles up. The limiter keeps the receipts in
flight near the knee instead.

It learns the shortest time a receipt takes on each register (for each size of journaled
body: a longer receipt has more commands), which is the register's own time with nothing
waiting. When receipts take longer than ``tolerance`` times that, the limit falls in
proportion; while they do not, it grows by its square root, up to the number of registers.
This is the gradient of TCP Vegas and of Netflix's concurrency-limits. A receipt is admitted
only before its first byte, and a job waiting for admission is still queued in the journal,
so admission changes when a receipt goes out, never whether it does.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager

import trio

#: Receipts may take this many times their shortest time before the limit falls.
TOLERANCE = 1.5
#: The least the limit falls to: a few registers always work, whatever the samples say.
LEAST = 8
#: How far one sample moves the limit towards what it suggests (a moving average's weight).
SMOOTHING = 0.2
#: The limit falls by at most half on one sample: one stalled receipt is not a trend.
STEEPEST = 0.5
#: Bytes of journaled body a size bucket spans.
BUCKET_BYTES = 512


class Admission:
    """Receipts on registers at once, at most :attr:`limit`; see the module docstring."""

    def __init__(self, most: int, *, tolerance: float = TOLERANCE, least: int = LEAST) -> None:
        self.most = max(most, 1)
        self.least = min(least, self.most)
        self.tolerance = tolerance
        self.limit = float(self.most)
        self.in_flight = 0
        self.waiting = 0  # receipts that wait for admission now
        self.admitted = 0
        self.deferred = 0  # receipts that had to wait
        self._shortest: dict[Hashable, float] = {}
        self._waiting_in: dict[Hashable, int] = {}  # receipts waiting, by their queue
        self._lot = trio.lowlevel.ParkingLot()

    @staticmethod
    def key(register: str, body: bytes) -> tuple[str, int]:
        """What a receipt's shortest time is learnt for: its register and its body's size."""
        return register, len(body) // BUCKET_BYTES

    @asynccontextmanager
    async def slot(self, lane: Hashable = None) -> AsyncIterator[Slot]:
        """Wait for admission (in order of arrival); the slot is given back when the block ends.

        ``lane`` is the queue the receipt comes from (a tenant's group): see :meth:`keep`.
        """
        if self.in_flight >= int(self.limit):
            self.deferred += 1
            self.waiting += 1
            self._waiting_in[lane] = self._waiting_in.get(lane, 0) + 1
            try:
                while self.in_flight >= int(self.limit):
                    await self._lot.park()
            finally:
                self.waiting -= 1
                self._waiting_in[lane] -= 1
                if not self._waiting_in[lane]:
                    del self._waiting_in[lane]
        self.in_flight += 1
        self.admitted += 1
        try:
            yield Slot(self)
        finally:
            self.in_flight -= 1
            self._wake()

    def keep(self, lane: Hashable = None) -> bool:
        """Whether a slot of ``lane`` may go on to its queue's next receipt without giving the
        slot back: only while the limit still allows it and no other queue waits for one.

        Receipts of one queue are alike to it, so one register going on is as fair as another
        taking over; and going on lets its next job's intent share a commit with the result.
        """
        if self.in_flight > int(self.limit):
            return False
        return self.waiting == self._waiting_in.get(lane, 0)

    def observe(self, key: Hashable, seconds: float) -> None:
        """Learn from a receipt that took ``seconds`` on its register, from admission to its
        journaled result."""
        shortest = self._shortest.get(key)
        if shortest is None or seconds < shortest:
            self._shortest[key] = shortest = seconds
        if seconds <= 0 or shortest <= 0 or math.isinf(self.tolerance):
            return
        gradient = min(max(self.tolerance * shortest / seconds, STEEPEST), 1.0)
        suggested = self.limit * gradient + math.sqrt(self.limit)
        limit = (1 - SMOOTHING) * self.limit + SMOOTHING * suggested
        self.limit = min(max(limit, float(self.least)), float(self.most))
        self._wake()

    def _wake(self) -> None:
        free = int(self.limit) - self.in_flight
        if free > 0:
            self._lot.unpark(count=free)


class Slot:
    """One admitted receipt's place; :meth:`observe` reports how long a receipt took in it."""

    def __init__(self, admission: Admission) -> None:
        self._admission = admission

    def observe(self, key: Hashable, seconds: float) -> None:
        self._admission.observe(key, seconds)
