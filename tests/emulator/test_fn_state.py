"""The emulated ФН's life as registers report it: срок действия ФН (FF03h, A4 32) and the OFD
backlog (FF39h, A4 20), for a ФН set up by :class:`emulator.serve.FnSetup`."""

from __future__ import annotations

import datetime as dt

import pytest
import trio
import trio.testing

from emulator.serve import START, FleetError, FnSetup, make_register, open_memory_fleet
from protocols.atol import commands as a
from protocols.shtrih import commands as c
from protocols.shtrih.codes import OfdExchangeStatus
from tests.emulator.test_atol_register import Host as AtolHost
from tests.emulator.test_shtrih_register import PW
from tests.emulator.test_shtrih_register import Host as ShtrihHost


async def test_shtrih_reports_the_expiry_and_a_week_old_backlog(
    autojump_clock: trio.testing.MockClock,
) -> None:
    setup = FnSetup(registered_ago=dt.timedelta(days=7, hours=2))
    async with open_memory_fleet(1, fn_setup=setup) as fleet:
        host = ShtrihHost(await fleet.connect(0), 1)
        registered = START - dt.timedelta(days=7, hours=2)
        expiry = await host.call(c.FnExpiry(password=PW))
        assert isinstance(expiry, c.FnExpiryAnswer)
        assert registered == dt.datetime(2026, 2, 23, 6, 0)
        assert expiry.expires == dt.date(2027, 5, 23)  # + 15 months
        ofd = await host.call(c.OfdStatus(password=PW))
        assert isinstance(ofd, c.OfdStatusAnswer)
        assert (ofd.queued, ofd.first_fd, ofd.first_date_time) == (1, 1, registered)
        assert OfdExchangeStatus(ofd.status) & OfdExchangeStatus.MESSAGE_PENDING


async def test_atol_reports_a_36_month_fn_and_an_empty_queue(
    autojump_clock: trio.testing.MockClock,
) -> None:
    setup = FnSetup(
        registered_ago=dt.timedelta(days=400), key_validity_months=36, registration_sent=True
    )
    async with open_memory_fleet(1, protocol="atol", fn_setup=setup) as fleet:
        host = AtolHost(await fleet.connect(0))
        expiry = await host.call(a.GetFnExpiry())
        assert expiry == a.FnExpiry(
            expires=dt.date(2028, 1, 26),  # 2025-01-26 + 36 months
            registrations_left=29,
            registrations_done=0,
        )
        assert (START - dt.timedelta(days=400)).date() == dt.date(2025, 1, 26)
        ofd = await host.call(a.GetOfdExchangeStatus())
        assert isinstance(ofd, a.OfdExchangeStatus)
        assert (ofd.unsent_count, ofd.first_unsent_time) == (0, None)
        # The ФН still works: a shift opens (the keys have 36 months).
        assert await host.call(a.EnterMode(mode=a.Mode.REGISTRATION, mode_password=1)) == (
            a.CommandAnswer(error=0, extended=0)
        )
        assert await host.call(a.OpenShift()) == a.CommandAnswer(error=0, extended=0)


async def test_a_backlog_past_30_days_blocks_the_fn(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The ФН's 30-day rule (registers.md §3.4 code 15h) holds for a set-up backlog too."""
    setup = FnSetup(registered_ago=dt.timedelta(days=31))
    async with open_memory_fleet(1, fn_setup=setup) as fleet:
        host = ShtrihHost(await fleet.connect(0), 1)
        answer = await host.call(c.OpenShift(password=PW))
        assert isinstance(answer, c.ErrorAnswer) and answer.error == 0x15


def test_a_fn_cannot_be_registered_after_the_start() -> None:
    with pytest.raises(FleetError, match="registered_ago"):
        FnSetup(registered_ago=dt.timedelta(seconds=-1))


async def test_the_default_setup_is_registered_at_the_start() -> None:
    register = make_register(0)
    assert register.fn.registered_at == START
    assert register.fn.unsent() == (1,)
    assert register.fn.key_expires == dt.datetime(2027, 6, 2, 8, 0)
