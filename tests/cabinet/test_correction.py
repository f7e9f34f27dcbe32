"""The correction form of a receipt's page over real sockets: a чек коррекции submitted from it is
fiscalized on the emulator with 1173/1178/1179 as entered; bad fields are refused naming them;
another tenant's receipt is 404; a cashier may not issue one."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import httpx

from engine.journal import JobState
from tests.cabinet.conftest import cabinet, csrf_of, login, sell

FIELD = re.compile(r'<input type="(?:text|date|hidden)" name="([a-z_0-9]+)" value="([^"]*)"')


async def form_of(client: httpx.AsyncClient, job_id: str) -> dict[str, str]:
    """The correction form's fields as the receipt's page prefills them."""
    page = await client.get(f"/cabinet/receipts/{job_id}")
    assert page.status_code == 200
    start = page.text.index('id="correction"')
    fields = dict(FIELD.findall(page.text[start:]))
    fields["csrf"] = csrf_of(page)
    fields["correction_type"] = "0"
    fields["operation"] = "1"
    return fields


async def test_a_correction_from_the_form_is_fiscalized_with_its_basis(tmp_path: Path) -> None:
    async with cabinet(tmp_path) as served:
        engine = served.engine
        sale = await sell(engine, "shop", "order-1")
        async with login(served, "lena") as client:  # an accountant
            form = await form_of(client, sale.id)
            # prefilled from the receipt: its sums by rate and by payment kind, its date
            assert form["electronic"] == "1599,00" and form["cash"] == "0,00"
            assert [v for k, v in form.items() if k.startswith("vat_")] == ["1599,00"]
            assert form["basis_date"] == engine.today("shop").isoformat()
            day = engine.today("shop") - dt.timedelta(days=3)
            form.update(
                correction_type="1",
                basis_date=day.isoformat(),
                basis_number="12-34/5",
                electronic="1000,00",
                cash="599,00",
            )
            answer = await client.post(f"/cabinet/receipts/{sale.id}/correction", data=form)
            assert answer.status_code == 303, answer.text
            new_id = answer.headers["location"].rsplit("/", 1)[1]
            job = await engine.wait("shop", new_id)
            assert job.state is JobState.FISCALIZED, job.error
            assert job.external_id == f"correction-of-{sale.id}-{form['nonce']}"
            view = await engine.receipt_view("shop", new_id)  # read from the signed document
            assert view is not None and view.document_code == 31
            assert view.correction_type == 1
            assert view.correction_basis is not None
            assert view.correction_basis.date.date() == day
            assert view.correction_basis.number == "12-34/5"
            assert view.total == 159_900 and view.operation == 1
            assert (view.payments.cash, view.payments.electronic) == (59_900, 100_000)
            again = await client.post(f"/cabinet/receipts/{sale.id}/correction", data=form)
            assert again.headers["location"].endswith(new_id)  # a double click is one receipt
            page = (await client.get(f"/cabinet/receipts/{new_id}")).text
            assert "коррекция: приход" in page


async def test_bad_correction_fields_are_refused_naming_each(tmp_path: Path) -> None:
    async with cabinet(tmp_path) as served:
        engine = served.engine
        sale = await sell(engine, "shop", "order-1")
        tomorrow = engine.today("shop") + dt.timedelta(days=1)
        async with login(served, "anna") as client:
            base = await form_of(client, sale.id)
            cases = {
                "basis_date: дата исправляемого расчёта (1178)": {"basis_date": "вчера"},
                "позже сегодняшней": {"basis_date": tomorrow.isoformat()},
                "basis_number: для коррекции по предписанию": {"correction_type": "1"},
                "correction_type: тип коррекции (1173)": {"correction_type": "7"},
                "operation: признак расчёта (1054)": {"operation": "9"},
                "electronic: оплата — ожидалась сумма": {"electronic": "12,345"},
                "cash: сумма оплат 1699,00 ₽ не равна": {"cash": "100,00"},
                "name: наименование предмета расчёта (1030)": {"name": ""},
            }
            for message, change in cases.items():
                answer = await client.post(
                    f"/cabinet/receipts/{sale.id}/correction", data={**base, **change}
                )
                assert answer.status_code == 422, message
                assert message in answer.text, (message, answer.text[-1500:])
                assert 'id="correction"' in answer.text  # the form again, with what was typed
            rows = await engine.jobs_of("shop")
            assert [j.id for j in rows] == [sale.id]  # nothing was submitted


async def test_the_correction_keeps_to_its_tenant_and_roles(tmp_path: Path) -> None:
    async with cabinet(tmp_path) as served:
        engine = served.engine
        sale = await sell(engine, "shop", "order-1")
        theirs = await sell(engine, "other", "their-order", group="theirs")
        async with login(served, "anna") as client:
            form = await form_of(client, sale.id)
            for guessed in (theirs.id, "0" * 32):  # another tenant's is as absent as none
                answer = await client.post(f"/cabinet/receipts/{guessed}/correction", data=form)
                assert answer.status_code == 404 and "Чек не найден" in answer.text
            no_csrf = {k: v for k, v in form.items() if k != "csrf"}
            answer = await client.post(f"/cabinet/receipts/{sale.id}/correction", data=no_csrf)
            assert answer.status_code == 403
        async with login(served, "kira") as client:  # a cashier
            page = await client.get(f"/cabinet/receipts/{sale.id}")
            assert 'id="correction"' not in page.text
            form["csrf"] = csrf_of(page)
            answer = await client.post(f"/cabinet/receipts/{sale.id}/correction", data=form)
            assert answer.status_code == 403
        assert [j.id for j in await engine.jobs_of("shop")] == [sale.id]
