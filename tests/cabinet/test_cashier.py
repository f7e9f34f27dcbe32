"""The catalogue and the mobile cashier page on 127.0.0.1: products kept per tenant, a sale
of catalogue lines fiscalized on the emulator, marked goods judged by the engine's checks,
the result page's FNS QR and public link, the e-mail sent afterwards, isolation and roles."""

from __future__ import annotations

import io
import re
from decimal import Decimal
from pathlib import Path

import httpx
import markupsafe
import PIL.Image
import trio
import zxingcpp

from engine.journal import DeliveryState, JobState
from engine.render import qr_code
from tests.cabinet.conftest import cabinet, csrf_of, login
from tests.http.conftest import Served
from tests.http.test_email import smtp, smtp_server

GOOD_TAIL = "\x1d91EE07\x1d92" + "A" * 44
GOOD_CODE = "0104601234567893215GOOD1" + GOOD_TAIL


async def _stock(client: httpx.AsyncClient) -> dict[str, str]:
    """The seller and three products through the catalogue's forms; their ids by name."""
    page = await client.get("/cabinet/catalogue")
    assert page.status_code == 200
    token = csrf_of(page)
    seller = {"csrf": token, "inn": "7707083893", "tax_system": "1", "place": "shop.kassa.example"}
    assert (await client.post("/cabinet/catalogue/seller", data=seller)).status_code == 303
    goods = [
        ("Кофе молотый", "250,00", "11", "0", ""),
        ("Яблоки", "120,50", "2", "11", ""),
        ("Кроссовки", "5490", "11", "0", "1"),
    ]
    for name, price, vat, measure, marked in goods:
        form = {"csrf": token, "name": name, "price": price, "vat": vat}
        form |= {"measure": measure, "subject": "1", "marked": marked}
        answer = await client.post("/cabinet/catalogue", data=form)
        assert answer.status_code == 303, answer.text
    listed = (await client.get("/cabinet/catalogue")).text
    found = re.findall(r'class="product" data-id="([0-9a-f]+)"><td>([^<]+)</td>', listed)
    return {name: pid for pid, name in found}


async def _sell(client: httpx.AsyncClient, **fields: str) -> httpx.Response:
    page = await client.get("/cabinet/cashier")
    return await client.post("/cabinet/cashier", data={"csrf": csrf_of(page), **fields})


async def _fiscalized(served: Served, answer: httpx.Response) -> str:
    assert answer.status_code == 303, answer.text
    job_id = answer.headers["location"].rsplit("/", 1)[1]
    job = await served.engine.wait("shop", job_id)
    assert job.state is JobState.FISCALIZED, job.error
    return job_id


async def test_a_catalogue_product_is_sold_on_the_cashier_page(tmp_path: Path) -> None:
    async with cabinet(tmp_path) as served, login(served, "anna") as client:
        ids = await _stock(client)
        assert set(ids) == {"Кофе молотый", "Яблоки", "Кроссовки"}
        page = await client.get("/cabinet/cashier")
        assert page.status_code == 200
        assert '<meta name="viewport" content="width=device-width' in page.text
        for pid in ids.values():
            assert f'name="qty_{pid}"' in page.text
        assert f'name="marking_{ids["Кроссовки"]}"' in page.text
        assert f'name="marking_{ids["Яблоки"]}"' not in page.text
        answer = await _sell(
            client,
            **{f"qty_{ids['Кофе молотый']}": "2", f"qty_{ids['Яблоки']}": "0,5"},
            payment="cash",
        )
        job_id = await _fiscalized(served, answer)
        view = await served.engine.receipt_view("shop", job_id)
        assert view is not None
        lines = {line.name: line for line in view.lines}
        assert set(lines) == {"Кофе молотый", "Яблоки"}
        assert (lines["Кофе молотый"].quantity, lines["Кофе молотый"].sum) == (Decimal(2), 50_000)
        assert lines["Яблоки"].quantity == Decimal("0.5")
        assert lines["Яблоки"].sum == 6_025  # 120,50 × 0,5
        assert view.total == 56_025 and view.payments.cash == 56_025
        assert view.payments.electronic == 0
        # the result page: the FNS QR as segno draws the journaled string, and the public link
        result = await client.get(f"/cabinet/cashier/{job_id}")
        assert result.status_code == 200 and "фискализирован" in result.text
        assert "Refresh" not in result.headers
        svg = str(markupsafe.Markup(qr_code(view.qr).svg_inline(scale=4, border=2, omitsize=True)))
        assert svg in result.text
        png = io.BytesIO()
        qr_code(view.qr).save(png, kind="png", scale=6, border=4)
        decoded = zxingcpp.read_barcodes(PIL.Image.open(png))
        assert [d.text for d in decoded] == [view.qr] and "s=560.25" in view.qr
        link = re.search(r'id="link" href="(/r/[^"]+)"', result.text)
        assert link is not None
        public = await served.client.get(link[1])
        assert public.status_code == 200 and "Яблоки" in public.text


async def test_marked_goods_need_a_good_code(tmp_path: Path) -> None:
    async with cabinet(tmp_path) as served, login(served, "kira") as client:
        async with login(served, "anna") as owner:
            ids = await _stock(owner)
        shoes = ids["Кроссовки"]
        missing = await _sell(client, **{f"qty_{shoes}": "1"}, payment="card")
        assert missing.status_code == 422
        assert f"marking_{shoes}" in missing.text and "подлежит маркировке" in missing.text
        bad_gtin = "0104601234567890215GOOD1" + GOOD_TAIL  # a wrong check digit
        for bad, check in (
            (bad_gtin, "marking.gtin_check_digit"),
            ("0104601234567893215GOOD1", "marking.crypto_tail_missing"),
        ):
            refused = await _sell(
                client, **{f"qty_{shoes}": "1", f"marking_{shoes}": bad}, payment="card"
            )
            assert refused.status_code == 422, check
            assert f"marking_{shoes}" in refused.text and check in refused.text
        assert await served.engine.jobs_of("shop") == []  # nothing was journaled
        sold = await _sell(
            client, **{f"qty_{shoes}": "1", f"marking_{shoes}": GOOD_CODE}, payment="card"
        )
        job_id = await _fiscalized(served, sold)
        view = await served.engine.receipt_view("shop", job_id)
        assert view is not None and view.payments.electronic == 549_000
        (line,) = view.lines
        assert line.marking is not None and "0104601234567893215GOOD1" in str(line.marking)


async def test_a_link_payment_needs_the_buyer_and_bad_input_names_its_field(
    tmp_path: Path,
) -> None:
    async with cabinet(tmp_path) as served, login(served, "anna") as client:
        ids = await _stock(client)
        coffee = ids["Кофе молотый"]
        page = (await client.get("/cabinet/cashier")).text
        assert "эквайринг" in page  # the page says who makes the link
        no_buyer = await _sell(client, **{f"qty_{coffee}": "1"}, payment="link")
        assert no_buyer.status_code == 422 and "contact, 1008" in no_buyer.text
        fraction = await _sell(client, **{f"qty_{coffee}": "0,5"}, payment="cash")
        assert fraction.status_code == 422 and f"qty_{coffee}" in fraction.text
        words = await _sell(client, **{f"qty_{coffee}": "два"}, payment="cash")
        assert words.status_code == 422 and f"qty_{coffee}" in words.text
        nothing = await _sell(client, payment="cash")
        assert nothing.status_code == 422 and "qty_" in nothing.text
        linked = await _sell(
            client, **{f"qty_{coffee}": "1"}, payment="link", contact="8 (912) 345-67-89"
        )
        job_id = await _fiscalized(served, linked)
        view = await served.engine.receipt_view("shop", job_id)
        assert view is not None and view.payments.electronic == 25_000
        job = await served.engine.job("shop", job_id)
        assert job is not None
        (delivery,) = await served.engine.deliveries(job)
        assert (delivery.kind, delivery.url) == ("sms", "tel:+79123456789")
        # the catalogue's own checks
        token = csrf_of(await client.get("/cabinet/catalogue"))
        for field, value in (("price", "12,345"), ("name", ""), ("name", "я" * 129)):
            form = {"csrf": token, "name": "Чай", "price": "10", "vat": "11", "measure": "0"}
            form |= {"subject": "1", field: value}
            answer = await client.post("/cabinet/catalogue", data=form)
            assert answer.status_code == 422 and f"({field}, " in answer.text
        no_csrf = await client.post("/cabinet/catalogue", data={"name": "Чай", "price": "1"})
        assert no_csrf.status_code == 403


async def test_an_email_sent_afterwards_is_a_journaled_delivery(tmp_path: Path) -> None:
    with smtp_server() as (mailbox, port):
        async with cabinet(tmp_path, smtp=smtp(port)) as served, login(served, "kira") as client:
            async with login(served, "anna") as owner:
                ids = await _stock(owner)
            job_id = await _fiscalized(
                served, await _sell(client, **{f"qty_{ids['Кофе молотый']}": "3"}, payment="card")
            )
            page = await client.get(f"/cabinet/cashier/{job_id}")
            bad = await client.post(
                f"/cabinet/cashier/{job_id}/email", data={"csrf": csrf_of(page), "email": "nope"}
            )
            assert bad.status_code == 422 and "(email)" in bad.text
            sent = await client.post(
                f"/cabinet/cashier/{job_id}/email",
                data={"csrf": csrf_of(page), "email": "buyer@example.ru"},
            )
            assert sent.status_code == 303
            job = await served.engine.job("shop", job_id)
            assert job is not None
            while not mailbox.messages:
                await trio.sleep(0.02)
            (delivery,) = await served.engine.deliveries(job)
            assert (delivery.kind, delivery.url) == ("email", "mailto:buyer@example.ru")
            assert mailbox.recipients == [["buyer@example.ru"]]
            while (await served.engine.deliveries(job))[0].state is not DeliveryState.DELIVERED:
                await trio.sleep(0.02)
            other = await client.post(
                f"/cabinet/cashier/{job_id}/email",
                data={"csrf": csrf_of(page), "email": "second@example.ru"},
            )
            assert other.status_code == 422 and "buyer@example.ru" in other.text


async def test_products_and_sales_keep_to_their_tenant_and_roles(tmp_path: Path) -> None:
    async with cabinet(tmp_path) as served:
        async with login(served, "anna") as owner:
            ids = await _stock(owner)
            coffee = ids["Кофе молотый"]
            job_id = await _fiscalized(
                served, await _sell(owner, **{f"qty_{coffee}": "1"}, payment="cash")
            )
        async with login(served, "oleg") as theirs:
            token = csrf_of(await theirs.get("/cabinet/catalogue"))
            assert "Кофе молотый" not in (await theirs.get("/cabinet/catalogue")).text
            assert "Кофе молотый" not in (await theirs.get("/cabinet/cashier")).text
            for guessed in (coffee, "0" * 16, "not-an-id"):  # another tenant's is as absent
                shown = await theirs.get(f"/cabinet/catalogue/{guessed}")
                assert shown.status_code == 404 and "Товар не найден" in shown.text
                edit = {"csrf": token, "name": "Взлом", "price": "1", "vat": "11"}
                edit |= {"measure": "0", "subject": "1"}
                changed = await theirs.post(f"/cabinet/catalogue/{guessed}", data=edit)
                assert changed.status_code == 404
                removed = await theirs.post(
                    f"/cabinet/catalogue/{guessed}/remove", data={"csrf": token}
                )
                assert removed.status_code == 404
            for guessed in (job_id, "0" * 32):
                assert (await theirs.get(f"/cabinet/cashier/{guessed}")).status_code == 404
                mail = await theirs.post(
                    f"/cabinet/cashier/{guessed}/email", data={"csrf": token, "email": "a@b.ru"}
                )
                assert mail.status_code == 404
            # their sale of a product of shop's is no sale: the id is not in their catalogue
            sold = await _sell(theirs, **{f"qty_{coffee}": "1"}, payment="cash")
            assert sold.status_code == 422
        async with login(served, "anna") as owner:
            assert "Кофе молотый" in (await owner.get(f"/cabinet/catalogue/{coffee}")).text
        async with login(served, "kira") as cashier:  # a cashier sells but keeps no catalogue
            assert (await cashier.get("/cabinet/cashier")).status_code == 200
            assert (await cashier.get(f"/cabinet/cashier/{job_id}")).status_code == 200
            assert (await cashier.get("/cabinet/catalogue")).status_code == 403
            assert (await cashier.get(f"/cabinet/catalogue/{coffee}")).status_code == 403
            dashboard = (await cashier.get("/cabinet/dashboard")).text
            assert 'href="/cabinet/cashier"' in dashboard and "/cabinet/catalogue" not in dashboard
        async with login(served, "lena") as accountant:
            assert (await accountant.get("/cabinet/catalogue")).status_code == 200
            token = csrf_of(await accountant.get("/cabinet/catalogue"))
            gone = await accountant.post(
                f"/cabinet/catalogue/{coffee}/remove", data={"csrf": token}
            )
            assert gone.status_code == 303
            assert (await accountant.get(f"/cabinet/catalogue/{coffee}")).status_code == 404


async def test_a_weighed_marked_item_sells_by_weight_with_its_code(tmp_path: Path) -> None:
    async with cabinet(tmp_path) as served, login(served, "anna") as client:
        await _stock(client)
        token = csrf_of(await client.get("/cabinet/catalogue"))
        form = {"csrf": token, "name": "Сыр маркированный", "price": "1000,00", "vat": "2"}
        form |= {"measure": "11", "subject": "1", "marked": "1"}
        assert (await client.post("/cabinet/catalogue", data=form)).status_code == 303
        listed = (await client.get("/cabinet/catalogue")).text
        (cheese,) = re.findall(r'data-id="([0-9a-f]+)"><td>Сыр маркированный<', listed)
        sold = await _sell(
            client, **{f"qty_{cheese}": "0,5", f"marking_{cheese}": GOOD_CODE}, payment="cash"
        )
        job_id = await _fiscalized(served, sold)
        view = await served.engine.receipt_view("shop", job_id)
        assert view is not None and view.payments.cash == 50_000
        (line,) = view.lines
        assert line.quantity == Decimal("0.5") and line.marking is not None
