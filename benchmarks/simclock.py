"""Simulated time that does not run ahead of the journal (trio's MockClock, autojump 0).

MockClock jumps to the next timer whenever every task waits, and a task waiting for the
journal's writer thread (an fsync) looks like waiting: hours of simulated time could pass
during one commit. This clock holds the jump while any journal request waits for its commit.
"""

from __future__ import annotations

import time

import trio.testing

from engine.journal import SqliteJournal


def journal_aware_clock() -> trio.testing.MockClock:
    clock = trio.testing.MockClock(autojump_threshold=0)
    jump = clock._autojump  # MockClock is final: wrap the bound method on the instance

    def autojump_unless_journal_busy() -> None:
        if SqliteJournal.waiting:
            time.sleep(0.0002)  # the writer thread is working: let it, then look again
            return
        jump()

    clock._autojump = autojump_unless_journal_busy  # type: ignore[method-assign]
    return clock
