"""The cabinet reads forms within bounds: anyone may post the login form, so its body must
not make the loop parse megabytes for every tenant (a review found 6.6 s for 1 MB)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cabinet import catalogue
from engine.cabinet.app import FORM_BYTES, FORM_FIELDS
from tests.cabinet.conftest import cabinet, csrf_of, login


async def test_the_login_form_refuses_multipart_and_big_bodies_before_parsing(
    tmp_path: Path,
) -> None:
    async with cabinet(tmp_path) as served:
        client = served.client
        parts = b'--XX\r\nContent-Disposition: form-data; name="a"\r\n\r\nb\r\n' * 20_000
        multipart = await client.post(
            "/cabinet/login",
            content=parts + b"--XX--\r\n",
            headers={"Content-Type": "multipart/form-data; boundary=XX"},
        )
        assert multipart.status_code == 415
        assert "urlencoded" in multipart.text
        big = await client.post(
            "/cabinet/login",
            content=b"a&" * (FORM_BYTES // 2 + 1),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert big.status_code == 413
        many = await client.post(
            "/cabinet/login",
            content=b"&".join(b"f%d=" % i for i in range(FORM_FIELDS + 1)),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert many.status_code == 400 and f"больше {FORM_FIELDS} полей" in many.text


async def test_an_upload_page_takes_a_bigger_form_but_not_too_many_parts(tmp_path: Path) -> None:
    async with cabinet(tmp_path) as served, login(served, "anna") as client:
        token = csrf_of(await client.get("/cabinet/branding"))
        boundary = "XX"
        field = f'--{boundary}\r\nContent-Disposition: form-data; name="f"\r\n\r\nv\r\n'
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n{token}\r\n'
            + field * (FORM_FIELDS + 1)
            + f"--{boundary}--\r\n"
        )
        answer = await client.post(
            "/cabinet/branding",
            content=body.encode(),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert answer.status_code == 400 and f"больше {FORM_FIELDS} полей" in answer.text
        # The same multipart form on a page that takes no upload is refused unread.
        elsewhere = await client.post(
            "/cabinet/catalogue",
            content=body.encode(),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert elsewhere.status_code == 415


async def test_the_catalogue_stops_at_its_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalogue, "MAX_PRODUCTS", 2)
    async with cabinet(tmp_path) as served, login(served, "anna") as client:
        token = csrf_of(await client.get("/cabinet/catalogue"))
        codes = []
        for name in ("Чай", "Кофе", "Какао"):
            form = {"csrf": token, "name": name, "price": "100", "vat": "11", "measure": "0"}
            answer = await client.post("/cabinet/catalogue", data=form | {"subject": "1"})
            codes.append(answer.status_code)
        assert codes == [303, 303, 422]
        assert "уже 2 товаров" in answer.text
        records = await served.engine.tenant_records("shop", catalogue.PRODUCT)
        assert len(records) == 2


async def test_out_of_range_sums_and_dates_are_named_not_500(tmp_path: Path) -> None:
    async with cabinet(tmp_path) as served, login(served, "anna") as client:
        asks = {
            "/cabinet/receipts?sum=99999999999999999999999": "sum:",
            "/cabinet/receipts?sum=%D9%A1%D9%A0%D9%A0": "sum:",  # «١٠٠»: not ASCII digits
            "/cabinet/receipts?to=9999-12-31": "to:",
            "/cabinet/reports?from=9999-12-31&to=9999-12-31": "from:",
        }
        for url, field in asks.items():
            answer = await client.get(url)
            assert answer.status_code in (200, 422), (url, answer.status_code)
            assert field in answer.text, url
