"""Simulated time for the engine tests that does not run ahead of the journal's fsyncs."""

from __future__ import annotations

import pytest
import trio.testing

from benchmarks.simclock import journal_aware_clock


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return journal_aware_clock()
