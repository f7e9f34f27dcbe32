"""Every page of the cabinet keeps to its tenant: the proof walks the cabinet's own routes.

An owner of tenant ``shop`` asks for every route with tenant ``other``'s ids in its path (its
receipt, register and product): each answers 404, exactly as a missing id does, and changes
nothing. Every route without ids is read, and none shows anything of ``other``'s. A route
added to the cabinet without a place here fails the test, so no new page escapes the proof.
"""

from __future__ import annotations

import json
from pathlib import Path

from starlette.routing import Mount, Route

from engine.cabinet.catalogue import PRODUCT
from engine.journal import TenantRecord
from tests.cabinet.conftest import cabinet, csrf_of, login, sell

#: What ``other`` has that ``shop``'s owner must never see.
THEIR_MARKS = ("their-order", "5555,00", "other-0", "Их товар", "theirs")
#: Routes that take no tenant's data in their path, read as ``shop``'s owner (GET) or known
#: to act only on the session's tenant (POST: each page's own test covers it).
WITHOUT_IDS = {
    ("GET", "/"),
    ("GET", "/favicon.svg"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/logout"),
    ("GET", "/dashboard"),
    ("GET", "/receipts"),
    ("GET", "/registers"),
    ("GET", "/reports"),
    ("GET", "/exports"),
    ("POST", "/exports"),
    ("GET", "/branding"),
    ("POST", "/branding"),
    ("POST", "/branding/reset"),
    ("GET", "/branding/preview.png"),
    ("GET", "/catalogue"),
    ("POST", "/catalogue"),
    ("POST", "/catalogue/seller"),
    ("GET", "/cashier"),
    ("POST", "/cashier"),
    ("GET", "/credentials"),
    ("POST", "/credentials"),
    ("POST", "/credentials/revoke"),
}
THEIR_PRODUCT = "00000000000fe001"


def cabinet_routes(served: object) -> set[tuple[str, str]]:
    """(method, path) of every route under /cabinet, as the door serves them."""
    (mount,) = [r for r in served.door.cabinet.routes() if isinstance(r, Mount)]  # type: ignore[attr-defined]
    found = set()
    for route in mount.routes:
        assert isinstance(route, Route)
        for method in route.methods or ():
            if method != "HEAD":
                found.add((method, route.path))
    return found


async def test_no_page_shows_or_touches_another_tenant_s_data(tmp_path: Path) -> None:
    async with cabinet(tmp_path) as served:
        engine = served.engine
        mine = await sell(engine, "shop", "my-order")
        theirs = await sell(engine, "other", "their-order", 555_500, group="theirs")
        product = {"name": "Их товар", "price": 100, "vat": 11, "measure": 0, "subject": 1}
        await engine.put_tenant_record(
            TenantRecord("other", PRODUCT, THEIR_PRODUCT, json.dumps(product))
        )
        their_ids = {"job_id": theirs.id, "register_id": "other-0", "product_id": THEIR_PRODUCT}
        their_shift = engine.registers["other-0"].shift
        assert their_shift is not None  # their sale opened it; a close by hand would end it
        routes = cabinet_routes(served)
        with_ids = {r for r in routes if "{" in r[1]}
        assert routes - with_ids == WITHOUT_IDS, "a new page: say here how it keeps to its tenant"
        assert {p for _, p in with_ids} == {
            "/receipts/{job_id}",
            "/receipts/{job_id}/refund",
            "/receipts/{job_id}/correction",
            "/registers/{register_id}/shift",
            "/catalogue/{product_id}",
            "/catalogue/{product_id}/remove",
            "/cashier/{job_id}",
            "/cashier/{job_id}/email",
        }

        async with login(served, "anna") as client:
            for method, path in sorted(with_ids):
                url = "/cabinet" + path.format(**their_ids)
                if method == "GET":
                    answer = await client.get(url)
                else:
                    token = csrf_of(await client.get("/cabinet/dashboard"))
                    answer = await client.post(url, data={"csrf": token, "email": "a@b.ru"})
                assert answer.status_code == 404, (method, path, answer.status_code)
                missing = "/cabinet" + path.format(
                    job_id="0" * 32, register_id="nowhere", product_id="0" * 16
                )
                if method == "GET":
                    assert (await client.get(missing)).status_code == 404, path
            for method, path in sorted(WITHOUT_IDS):
                if method != "GET" or path == "/login":
                    continue
                page = await client.get("/cabinet" + path, follow_redirects=True)
                assert page.status_code in (200, 404), (path, page.status_code)
                shown = page.content.decode("utf-8", "replace")
                leaked = [mark for mark in THEIR_MARKS if mark in shown]
                assert leaked == [], (path, leaked)
            assert "my-order" in (await client.get("/cabinet/receipts")).text

        # Nothing of theirs changed: no refund, correction or e-mail was made for their job,
        # their product is there, and their register's shift is as it was.
        assert [j.external_id for j in await engine.journal.jobs_of("other")] == ["their-order"]
        assert await engine.journal.deliveries(theirs.id) == []
        assert [r.key for r in await engine.tenant_records("other", PRODUCT)] == [THEIR_PRODUCT]
        assert engine.registers["other-0"].shift == their_shift
        assert mine.tenant == "shop"
