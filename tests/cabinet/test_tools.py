"""The cabinet's tools beyond receipts: export downloads, registers and shifts, reports.

Each is checked through HTTP for the roles that may use it, for CSRF on its POSTs, and for
tenant isolation: tenant ``shop``'s users never reach tenant ``other``'s data or registers.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import sqlite3
from pathlib import Path

import attrs
import httpx
import pytest
import trio

from emulator.serve import MemoryFleet, open_memory_fleet
from engine.journal import JobState
from engine.reports import roubles
from engine.samples import card_sale
from engine.times import zone
from tests.cabinet.conftest import cabinet, csrf_of, login, sell
from tests.http.conftest import Served, moscow_now


async def _shop_and_other(served: Served) -> tuple[list[str], str]:
    engine = served.engine
    mine = [await sell(engine, "shop", f"order-{i}", p) for i, p in enumerate((129_900, 200_000))]
    theirs = await sell(engine, "other", "their-order", 555_500, group="theirs")
    assert all(j.state is JobState.FISCALIZED for j in [*mine, theirs])
    return [j.id for j in mine], theirs.id


async def test_an_export_downloads_the_tenants_receipts_as_a_file(tmp_path: Path) -> None:
    async with cabinet(tmp_path) as served:
        mine, theirs = await _shop_and_other(served)
        today = served.engine.today("shop").isoformat()
        async with login(served, "kira") as client:  # a cashier exports nothing
            assert (await client.get("/cabinet/exports")).status_code == 403
            assert "/cabinet/exports" not in (await client.get("/cabinet/dashboard")).text
        async with login(served, "lena") as client:
            page = await client.get("/cabinet/exports")
            assert page.status_code == 200 and 'href="/cabinet/exports"' in page.text
            form = {"from": today, "to": today, "form": "csv"}
            assert (await client.post("/cabinet/exports", data=form)).status_code == 403
            form["csrf"] = csrf_of(page)
            answer = await client.post("/cabinet/exports", data=form)
            assert answer.status_code == 200, answer.text
            disposition = answer.headers["content-disposition"]
            assert disposition == f'attachment; filename="kassa-shop-{today}-{today}.csv"'
            assert answer.headers["content-type"].startswith("text/csv")
            rows = list(csv.DictReader(io.StringIO(answer.text)))
            assert sorted(r["job_id"] for r in rows) == sorted(mine)
            assert theirs not in answer.text and "their-order" not in answer.text
            lines = await client.post("/cabinet/exports", data={**form, "form": "fns"})
            assert lines.status_code == 200 and len(lines.text.splitlines()) == 2
            earlier = {**form, "from": "2020-01-01", "to": "2020-01-31"}
            empty = await client.post("/cabinet/exports", data=earlier)
            assert len(list(csv.DictReader(io.StringIO(empty.text)))) == 0
            bad = await client.post("/cabinet/exports", data={**form, "form": "xls", "to": "x"})
            assert bad.status_code == 422
            assert "ожидался один из" in bad.text and "ожидалась дата" in bad.text
        async with login(served, "oleg") as client:
            page = await client.get("/cabinet/exports")
            form = {"from": today, "to": today, "form": "jsonl", "csrf": csrf_of(page)}
            theirs_only = await client.post("/cabinet/exports", data=form)
            assert theirs in theirs_only.text and all(m not in theirs_only.text for m in mine)


def _shift_cell(page: str, register_id: str) -> str:
    row = re.search(rf'data-id="{register_id}">.*?<td class="shift">([^<]*)</td>', page, re.S)
    assert row is not None, page
    return row[1]


async def test_a_shift_is_closed_and_opened_by_hand_on_the_tenants_register(
    tmp_path: Path,
) -> None:
    async with cabinet(tmp_path) as served:
        await _shop_and_other(served)  # the sales opened a shift on each register
        engine = served.engine
        shift = engine.registers["kkt-0"].shift
        assert shift is not None
        async with login(served, "kira") as client:
            page = await client.get("/cabinet/registers")
            assert page.status_code == 200 and 'href="/cabinet/registers"' in page.text
            assert _shift_cell(page.text, "kkt-0") == f"№ {shift.number}"
            assert "other-0" not in page.text
            token = csrf_of(page)
            url = "/cabinet/registers/kkt-0/shift"
            assert (await client.post(url, data={"action": "close"})).status_code == 403
            closed = await client.post(url, data={"action": "close", "csrf": token})
            assert closed.status_code == 303
            assert engine.registers["kkt-0"].shift is None
            page = await client.get(closed.headers["location"])
            assert "kkt-0: Смена закрыта." in page.text
            assert _shift_cell(page.text, "kkt-0") == "закрыта"
            again = await client.post(
                url, data={"action": "close", "csrf": token}, follow_redirects=True
            )
            assert "Смена уже была закрыта." in again.text
            opened = await client.post(url, data={"action": "open", "csrf": token})
            assert opened.status_code == 303
            page = await client.get(opened.headers["location"])
            assert "kkt-0: Смена открыта." in page.text
            assert _shift_cell(page.text, "kkt-0") == f"№ {shift.number + 1}"
            bad = await client.post(url, data={"action": "reboot", "csrf": token})
            assert bad.status_code == 400
            for guessed in ("other-0", "kkt-9"):  # another tenant's register is as absent
                answer = await client.post(
                    f"/cabinet/registers/{guessed}/shift", data={"action": "close", "csrf": token}
                )
                assert answer.status_code == 404 and "Касса не найдена" in answer.text
        theirs = engine.registers["other-0"].shift
        assert theirs is not None  # untouched by shop's users


@attrs.frozen
class _Unplugged(MemoryFleet):
    """A fleet whose registers' cables are out: every connection is refused."""

    async def connect(self, index: int) -> trio.abc.Stream:
        raise OSError("connection refused: the cable is out")


async def test_a_shift_command_to_a_register_not_connected_says_so(tmp_path: Path) -> None:
    async with open_memory_fleet(2, start=moscow_now()) as fleet:
        unplugged = _Unplugged(fleet.registers, fleet._nursery)
        async with cabinet(tmp_path, fleet=unplugged) as served, login(served, "anna") as client:
            page = await client.get("/cabinet/registers")
            answer = await client.post(
                "/cabinet/registers/kkt-0/shift", data={"action": "open", "csrf": csrf_of(page)}
            )
            assert answer.status_code == 503
            assert "kkt-0: касса сейчас не на связи" in answer.text


def _cells(page: str, row: str) -> list[str]:
    """The cells of the first table row that opens with ``row`` (its tag and attributes)."""
    found = re.search(re.escape(row) + r"(.*?)</tr>", page, re.S)
    assert found is not None, (row, page)
    return re.findall(r"<t[dh][^>]*>([^<]*)", found[1])


async def test_the_report_page_shows_the_engines_report_for_the_period(tmp_path: Path) -> None:
    async with cabinet(tmp_path) as served:
        engine = served.engine
        await _shop_and_other(served)
        refund = await engine.submit(
            "shop", "refund-1", attrs.evolve(card_sale(50_000), operation=2), group="main"
        )
        assert (await engine.wait("shop", refund.id)).state is JobState.FISCALIZED
        assert await engine.close_shift("shop", "kkt-0")
        today = engine.today("shop")
        local = zone(engine.tenants["shop"].timezone)
        start = dt.datetime.combine(today, dt.time(), local).timestamp()
        end = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), local).timestamp()
        report = await engine.report("shop", start=start, end=end)
        assert report.totals.receipts == 3 and len(report.totals.operations) == 2
        async with login(served, "kira") as client:
            assert (await client.get("/cabinet/reports")).status_code == 403
        async with login(served, "lena") as client:
            page = await client.get("/cabinet/reports")  # today by default
            assert page.status_code == 200 and 'href="/cabinet/reports"' in page.text
            text = page.text
            same = await client.get(
                "/cabinet/reports", params={"from": today.isoformat(), "to": today.isoformat()}
            )
            assert _cells(same.text, '<tr id="net">') == _cells(text, '<tr id="net">')
        kinds = ("total", "cash", "electronic", "prepaid", "credit", "provision")
        for line in report.totals.operations:
            cells = _cells(text, f'data-operation="{line.operation}" data-correction="0">')
            assert cells[1:] == [
                str(line.count),
                *(roubles(getattr(line, k)).replace(".", ",") for k in kinds),
            ]
        net = [roubles(report.totals.net(k)).replace(".", ",") for k in kinds]
        assert _cells(text, '<tr id="net">')[1:] == [str(report.totals.receipts), *net]
        assert _cells(text, f'<tr class="day" data-day="{today.isoformat()}">')[1:] == ["3", *net]
        (shift,) = report.registers[0].shifts
        cells = _cells(text, f'data-register="kkt-0" data-number="{shift.shift_number}">')
        assert cells[5:8] == ["3", net[0], net[1]] and "сходится с ФН" in cells[-1]
        assert text.count('<rect class="bar"') == 1
        assert "5855,00" not in text and "other-0" not in text  # the other tenant's sale
        async with login(served, "lena") as client:
            week = await client.get(
                "/cabinet/reports",
                params={
                    "from": (today - dt.timedelta(days=6)).isoformat(),
                    "to": today.isoformat(),
                },
            )
            assert week.text.count('<rect class="bar"') == 7
            assert _cells(week.text, '<tr id="net">') == _cells(text, '<tr id="net">')
            bad = await client.get("/cabinet/reports", params={"from": "2026-02-30"})
            assert bad.status_code == 422 and "ожидалась дата" in bad.text
        async with login(served, "oleg") as client:
            theirs_page = (await client.get("/cabinet/reports")).text
            assert "5855,00" in theirs_page and "kkt-0" not in theirs_page


async def test_an_export_cut_by_a_damaged_document_fails_the_download_not_the_door(
    tmp_path: Path,
) -> None:
    async with cabinet(tmp_path) as served:
        mine, _ = await _shop_and_other(served)
        with sqlite3.connect(tmp_path / "journal.db") as db:  # a damaged journal row
            db.execute("UPDATE results SET document = x'00' WHERE job_id = ?", (mine[1],))
        today = served.engine.today("shop").isoformat()
        async with login(served, "anna") as client:
            page = await client.get("/cabinet/exports")
            form = {"from": today, "to": today, "form": "fns", "csrf": csrf_of(page)}
            with pytest.raises(httpx.HTTPError):  # cut midway, never a file that looks whole
                await client.post("/cabinet/exports", data=form)
            assert (await client.get("/cabinet/exports")).status_code == 200
            rows = await client.post("/cabinet/exports", data={**form, "form": "csv"})
            assert rows.status_code == 200 and mine[1] in rows.text and mine[0] in rows.text
