"""The engine watches срок действия ФН and the OFD backlog: read off the receipt path (on
connecting, shift open and close, and while idle), kept in RegisterView, reported by
``register_states``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from emulator.serve import START, FnSetup, MemoryFleet, open_memory_fleet
from engine import samples
from engine.connectors import driver_for
from engine.drivers.base import RegisterDriver
from engine.engine import Engine
from engine.journal import JobState
from tests.engine.fleet import fleet_config

#: Keys that end ten days after the emulator's start: registered 15 months before that.
EXPIRES = (START + dt.timedelta(days=10)).date()
NEAR_END = FnSetup(
    registered_ago=START - START.replace(year=2024, month=12, day=12), registration_sent=True
)


class CountingDriver:
    """The real driver, counting how often the engine asks for the ФН's expiry."""

    def __init__(self, driver: RegisterDriver, calls: list[str]) -> None:
        self._driver = driver
        self._calls = calls

    async def fn_expiry(self) -> dt.date:
        self._calls.append("fn_expiry")
        return await self._driver.fn_expiry()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._driver, name)


def counting(fleet: MemoryFleet, protocol: str, calls: list[str]) -> Any:
    async def connect() -> RegisterDriver:
        return CountingDriver(driver_for(protocol, await fleet.connect(0)), calls)  # type: ignore[return-value]

    return connect


@pytest.mark.parametrize("protocol", ["shtrih", "atol"])
async def test_expiry_and_backlog_are_read_off_the_receipt_path(
    protocol: str, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    calls: list[str] = []
    async with open_memory_fleet(1, protocol=protocol, fn_setup=NEAR_END) as fleet:
        config = fleet_config(fleet, tmp_path / "j.db", protocol=protocol)
        (register,) = config.registers
        spied = attrs.evolve(register, connect=counting(fleet, protocol, calls))
        config = attrs.evolve(config, registers=(spied,))
        async with Engine.open(config) as engine:
            view = engine.registers["kkt-0"]
            jobs = [await engine.submit("shop", f"o-{i}", samples.card_sale()) for i in range(5)]
            for job in jobs:
                assert (await engine.wait("shop", job.id)).state is JobState.FISCALIZED
            # On connecting and on opening the shift; none for the five receipts.
            assert calls == ["fn_expiry", "fn_expiry"]
            assert view.fn_expiry() == EXPIRES
            assert view.fn_days_left() == 10
            await trio.sleep(config.maintenance_interval + 1)  # an idle look: the queue
            assert calls == ["fn_expiry", "fn_expiry"]  # read within fn_expiry_interval
            assert view.ofd_unsent == 6  # the opening report and five receipts; FD 1 was sent
            assert view.ofd_oldest is not None and view.ofd_oldest.date() == START.date()
            (state,) = engine.register_states("shop")
            assert state["fn_expires"] == EXPIRES.isoformat()
            assert state["fn_days_left"] == 10
            assert state["ofd_unsent"] == 6
            assert state["ofd_oldest"] == view.ofd_oldest.isoformat()
            assert 0 <= state["ofd_oldest_days"] < 1
            await trio.sleep(config.fn_expiry_interval)  # idle long enough: read again
            assert len(calls) == 3
            await engine.close_shift("shop", "kkt-0")  # and on closing the shift
            assert len(calls) == 4
