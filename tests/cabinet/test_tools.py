"""The cabinet's tools beyond receipts: export downloads, registers and shifts, reports.

Each is checked through HTTP for the roles that may use it, for CSRF on its POSTs, and for
tenant isolation: tenant ``shop``'s users never reach tenant ``other``'s data or registers.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from engine.journal import JobState
from tests.cabinet.conftest import cabinet, csrf_of, login, sell
from tests.http.conftest import Served


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
