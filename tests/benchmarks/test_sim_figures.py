"""The sim benchmark's figures: register time inside a tenant's backlog, worked by hand."""

from __future__ import annotations

import pytest

from benchmarks.sim import _Timeline, efficiency, parse_waves


def test_idle_register_time_during_a_backlog_lowers_the_efficiency() -> None:
    # Two registers of one tenant; three jobs queued at 0. A takes j1 at once and j3 at 1;
    # B idles until 0.5 while j2 and j3 wait: the backlog is [0, 1), 2 register-seconds.
    timeline = _Timeline(
        queued={"j1": 0.0, "j2": 0.0, "j3": 0.0},
        taken={"j1": 0.0, "j2": 0.5, "j3": 1.0},
        register={"j1": "a", "j2": "b", "j3": "a"},
        final={"j1": 1.0, "j2": 1.5, "j3": 2.0},
    )
    figures = efficiency(timeline, {"a": "t", "b": "t"}, {"t": 2}, useful=0.5)
    assert figures["backlog_register_s"] == 2.0
    assert figures["scheduling_efficiency"] == 0.75  # j1's 1 s and half of j2's, over 2
    assert figures["ratio"] == 0.375  # each of those seconds half needed by its receipt


def test_a_tenant_without_a_backlog_counts_for_nothing() -> None:
    timeline = _Timeline(
        queued={"j1": 0.0}, taken={"j1": 0.0}, register={"j1": "a"}, final={"j1": 1.0}
    )
    figures = efficiency(timeline, {"a": "t"}, {"t": 1}, useful=1.0)
    assert figures == {"backlog_register_s": 0.0, "scheduling_efficiency": 0.0, "ratio": 0.0}


def test_waves_before_the_start_of_the_day_are_the_next_morning() -> None:
    waves = parse_waves("06:00=1,09:00=2")
    assert [(w.clock, w.at, w.per_register) for w in waves] == [
        ("09:00", 3600.0, 2),
        ("06:00", 22 * 3600.0, 1),
    ]


def test_a_malformed_wave_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_waves("noon=1")
