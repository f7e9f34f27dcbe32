"""Exactly once through kills, power losses and ФН limits; shifts kept across 24 hours.

Each test runs the engine on an emulated fleet in simulated time and ends by reading every
ФН archive: each job's receipt is there exactly once, and the journal says so.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing

from emulator.serve import MemoryFleet, open_memory_fleet
from engine import samples
from engine.config import EngineConfig, TenantConfig
from engine.engine import Engine
from engine.journal import JobState
from protocols.documents.model import Receipt
from tests.engine.fleet import WALL_START, assert_exactly_once, fleet_config

#: Where a job can be killed. Alone on its journal, a submit journals its job straight into
#: its queue, so there is no step between "accepted" and "queued" to be killed at.
STEPS = ["queued", "taken", "sending", "signed", "journaled"]


def batch(n: int) -> list[tuple[str, Receipt]]:
    kinds = [samples.card_sale(), samples.marked_sale(), samples.correction(), samples.prepayment()]
    return [(f"order-{i}", attrs.evolve(kinds[i % len(kinds)])) for i in range(n)]


async def submit_all(engine: Engine, jobs: list[tuple[str, Receipt]]) -> list[str]:
    return [(await engine.submit("shop", external_id, r)).id for external_id, r in jobs]


async def finish(config: EngineConfig, fleet: MemoryFleet, jobs: list[tuple[str, Receipt]]) -> None:
    """Restart on the same journal, resubmit everything (as clients do), check exactly once."""
    async with Engine.open(config) as engine:
        ids = await submit_all(engine, jobs)
        for job_id in ids:
            await engine.wait("shop", job_id)
        await assert_exactly_once(engine, fleet, ids)


@pytest.mark.parametrize("protocol", ["shtrih", "atol"])
@pytest.mark.parametrize("step", STEPS)
async def test_killed_at_every_step_then_restarted(
    protocol: str, step: str, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    jobs = batch(4)
    async with open_memory_fleet(1, protocol=protocol) as fleet:
        config = fleet_config(fleet, tmp_path / "j.db", protocol=protocol)
        seen: list[str] = []
        with trio.CancelScope() as killed:

            async def checkpoint(at: str, job_id: str) -> None:
                seen.append(at)
                if at == step and seen.count(at) == 3:  # the third job, mid-run
                    killed.cancel()
                    await trio.sleep(0)

            async with Engine.open(config, checkpoint=checkpoint) as engine:
                await submit_all(engine, jobs)
                await trio.sleep_forever()
        assert killed.cancelled_caught
        await finish(config, fleet, jobs)


@pytest.mark.parametrize("protocol", ["shtrih", "atol"])
@pytest.mark.parametrize("after", [0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2])
async def test_killed_while_the_register_works(
    protocol: str, after: float, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Killed ``after`` seconds into sending: mid-receipt, mid-close, or after the ФН signed."""
    jobs = batch(3)
    async with open_memory_fleet(1, protocol=protocol) as fleet:
        config = fleet_config(fleet, tmp_path / "j.db", protocol=protocol)
        with trio.CancelScope() as killed:
            sending = 0

            async def checkpoint(at: str, job_id: str) -> None:
                nonlocal sending
                if at == "sending":
                    sending += 1
                    if sending == 2:
                        killed.deadline = trio.current_time() + after

            async with Engine.open(config, checkpoint=checkpoint) as engine:
                await submit_all(engine, jobs)
                await trio.sleep_forever()
        await finish(config, fleet, jobs)


@pytest.mark.parametrize("protocol", ["shtrih", "atol"])
async def test_power_losses_lose_and_double_nothing(
    protocol: str, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    jobs = batch(40)
    faults = "power-before:0.1,power-after:0.1"
    async with open_memory_fleet(2, protocol=protocol, faults=faults, seed=7) as fleet:
        config = fleet_config(fleet, tmp_path / "j.db", protocol=protocol, probe_interval=0.5)
        await finish(config, fleet, jobs)
        kinds = {event.kind for event in fleet.faults}
        assert {"power-before", "power-after"} <= kinds, kinds


async def test_link_faults_lose_and_double_nothing(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    jobs = batch(30)
    faults = "drop:0.0005,corrupt:0.0005,disconnect:0.002"
    async with open_memory_fleet(2, faults=faults, seed=3) as fleet:
        config = fleet_config(fleet, tmp_path / "j.db", probe_interval=0.5)
        await finish(config, fleet, jobs)
        assert fleet.faults


async def test_shifts_are_kept_across_24_hours(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A receipt every 2 hours for 50 hours: none fails, every shift closes before 24 h."""
    async with open_memory_fleet(1) as fleet:
        config = fleet_config(fleet, tmp_path / "j.db", maintenance_interval=600.0)
        async with Engine.open(config) as engine:
            ids = []
            for i in range(26):
                ids.append((await engine.submit("shop", f"o-{i}", samples.card_sale())).id)
                await trio.sleep(2 * 3600)
            for job_id in ids:
                assert (await engine.wait("shop", job_id)).state is JobState.FISCALIZED
            await assert_exactly_once(engine, fleet, ids)
            shifts = await engine.journal.shifts("shop")
            assert len(shifts) >= 3
            limit = (dt.timedelta(hours=24) - config.shift_margin).total_seconds()
            for shift in shifts[:-1]:
                assert shift.closed_at is not None
                # The deadline is read on the register's clock (whole seconds) and the Z report
                # itself takes over a second: a few seconds past the margin, never near 24 h.
                assert shift.closed_at - shift.opened_at <= limit + 5
            assert not engine.alerts


async def test_an_expired_shift_never_fails_a_receipt(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The ФН says the shift is over 24 h (a shift the engine could not foresee)."""
    async with open_memory_fleet(1, faults="shift-expired@1h") as fleet:
        config = fleet_config(fleet, tmp_path / "j.db")
        async with Engine.open(config) as engine:
            first = await engine.submit("shop", "o-1", samples.card_sale())
            await engine.wait("shop", first.id)
            await trio.sleep(2 * 3600)
            second = await engine.submit("shop", "o-2", samples.card_sale())
            assert (await engine.wait("shop", second.id)).state is JobState.FISCALIZED
            await assert_exactly_once(engine, fleet, [first.id, second.id])
            shifts = await engine.journal.shifts("shop")
            assert len(shifts) == 2, (shifts, await engine.journal.events(), fleet.faults)


async def test_a_full_fn_takes_its_register_out_and_the_group_carries_on(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_memory_fleet(2, faults="fn-full@30m#0") as fleet:
        config = fleet_config(fleet, tmp_path / "j.db")
        async with Engine.open(config) as engine:
            ids = []
            for i in range(12):
                ids.append((await engine.submit("shop", f"o-{i}", samples.card_sale())).id)
                await trio.sleep(300)
            for job_id in ids:
                assert (await engine.wait("shop", job_id)).state is JobState.FISCALIZED
            await assert_exactly_once(engine, fleet, ids)
            assert engine.registers["kkt-0"].state == "exhausted"
            assert "alert.register_exhausted" in [a.kind for a in engine.alerts]
            late = [(await engine.result("shop", j)) for j in ids[-4:]]
            assert {r.register_id for r in late if r is not None} == {"kkt-1"}


async def test_the_ofd_down_for_31_days_is_alerted_well_before_the_fn_blocks(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_memory_fleet(1, ofd=True, faults="ofd-down@0s+40d") as fleet:
        tenants = (TenantConfig("shop"),)
        config = fleet_config(fleet, tmp_path / "j.db", tenants=tenants, maintenance_interval=3600)
        async with Engine.open(config) as engine:
            job = await engine.submit("shop", "o-1", samples.card_sale())
            await engine.wait("shop", job.id)
            await trio.sleep(31 * 86400)
            ofd = [a for a in engine.alerts if a.kind == "alert.ofd_unsent"]
            assert ofd, engine.alerts
            first_day = (ofd[0].ts - WALL_START) / 86400
            assert 7 <= first_day < 8  # config.ofd_alert_after, three weeks before the block
            assert len(ofd) >= 20  # repeated daily while it lasts
