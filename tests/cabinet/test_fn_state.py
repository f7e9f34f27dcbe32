"""The dashboard shows срок действия ФН and the OFD backlog of each register, with warnings:
a ФН near its end or past it, documents unsent to the OFD for days or near the 30-day block."""

from __future__ import annotations

import datetime as dt
import html
from pathlib import Path

import pytest
import trio

from emulator.serve import FnSetup, open_memory_fleet
from tests.cabinet.conftest import cabinet, login
from tests.http.conftest import Served, moscow_now


async def _looked_at(served: Served) -> None:
    """Until the engine has connected to kkt-0 and read its ФН (a guard, not a timing)."""
    view = served.engine.registers["kkt-0"]
    with trio.fail_after(20):
        while view.fn_expiry() is None or view.ofd_unsent is None:
            await trio.sleep(0.01)


async def _dashboard(tmp_path: Path, setup: FnSetup, user: str = "anna") -> tuple[str, Served]:
    async with (
        open_memory_fleet(2, start=moscow_now(), fn_setup=setup) as fleet,
        cabinet(tmp_path, fleet=fleet) as served,
    ):
        await _looked_at(served)
        async with login(served, user) as client:
            answer = await client.get("/cabinet/dashboard")
        assert answer.status_code == 200
        return html.unescape(answer.text), served


def _row(page: str, register: str) -> str:
    start = page.index(f'data-id="{register}"')
    return page[start : page.index("</tr>", start)]


async def test_a_fn_near_its_end_is_shown_with_its_date_and_a_warning(tmp_path: Path) -> None:
    setup = FnSetup(registered_ago=dt.timedelta(days=448), registration_sent=True)
    async with (
        open_memory_fleet(2, start=moscow_now(), fn_setup=setup) as fleet,
        cabinet(tmp_path, fleet=fleet) as served,
    ):
        await _looked_at(served)
        register = fleet.registers[0]
        expires = register.fn.key_expires
        assert expires is not None
        days = (expires.date() - register.now().date()).days
        assert 0 < days < 30
        async with login(served, "kira") as client:  # a cashier sees the dashboard too
            page = html.unescape((await client.get("/cabinet/dashboard")).text)
        row = _row(page, "kkt-0")
        assert f'<td class="fn-expiry">{expires:%d.%m.%Y} (осталось {days} дн.)</td>' in row
        assert (
            f'<div class="warning">срок действия ФН истекает через {days} дн.: '
            "закажите замену ФН</div>" in row
        )
        assert '<td class="ofd-backlog">0</td>' in row  # FD 1 reached the OFD
        assert 'class="error"' not in row
        async with login(served, "oleg") as client:  # the other tenant: its own only
            theirs = html.unescape((await client.get("/cabinet/dashboard")).text)
        assert "kkt-0" not in theirs and 'data-id="other-0"' in theirs


async def test_an_expired_fn_is_an_error(tmp_path: Path) -> None:
    setup = FnSetup(registered_ago=dt.timedelta(days=470), registration_sent=True)
    page, _ = await _dashboard(tmp_path, setup)
    row = _row(page, "kkt-0")
    assert "(истёк)</td>" in row
    assert '<div class="error">срок действия ФН истёк' in row


@pytest.mark.parametrize(
    "days,level,text",
    [
        (5, "warning", "документы не переданы в ОФД 5 дн.: проверьте связь с ОФД"),
        (27, "error", "документы не переданы в ОФД 27 дн.: через 3 дн. ФН перестанет"),
        (31, "error", "документы не переданы в ОФД 31 дн.: ФН не формирует новые документы"),
    ],
)
async def test_an_old_ofd_backlog_warns_and_near_30_days_is_an_error(
    tmp_path: Path, days: int, level: str, text: str
) -> None:
    setup = FnSetup(registered_ago=dt.timedelta(days=days))  # FD 1 unsent since then
    page, served = await _dashboard(tmp_path, setup)
    row = _row(page, "kkt-0")
    oldest = served.engine.registers["kkt-0"].ofd_oldest
    assert oldest is not None
    assert (
        f'<td class="ofd-backlog">1 док., первый от {oldest:%d.%m.%Y %H:%M} ({days} дн.)</td>'
        in row
    )
    assert f'<div class="{level}">{text}' in row
    assert "осталось" in row  # the expiry is shown alongside, far away: no warning for it
    assert "срок действия ФН" not in row
