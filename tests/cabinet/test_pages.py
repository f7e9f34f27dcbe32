"""The cabinet's pages with data, and tenant isolation on each: a user of tenant ``shop`` never
sees tenant ``other``'s receipts or registers, not even by typing their ids (404)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.journal import JobState
from tests.cabinet.conftest import cabinet, csrf_of, login, sell
from tests.http.conftest import Served


async def _shop_and_other(served: Served) -> tuple[list[str], str]:
    """Three sales of ``shop`` (1 299,00, 2 000,00, 3 000,00 + delivery) and one of ``other``."""
    engine = served.engine
    jobs = [
        await sell(engine, "shop", f"order-{i}", price)
        for i, price in enumerate((129_900, 200_000, 300_000))
    ]
    theirs = await sell(engine, "other", "their-order", 555_500, group="theirs")
    assert all(j.state is JobState.FISCALIZED for j in [*jobs, theirs])
    return [j.id for j in jobs], theirs.id


def _ids(page: str) -> set[str]:
    return set(re.findall(r'class="receipt" data-id="([0-9a-f]+)"', page))


async def test_the_dashboard_counts_todays_receipts_and_shows_own_registers(
    tmp_path: Path,
) -> None:
    async with cabinet(tmp_path) as served:
        await _shop_and_other(served)
        async with login(served, "anna") as client:
            page = (await client.get("/cabinet/dashboard")).text
        assert '<strong id="today-count">3</strong>' in page
        # 1 299,00 + 2 000,00 + 3 000,00 and 300,00 of delivery on each, all by card
        assert "7199,00" in page
        assert 'data-id="kkt-0"' in page
        assert "other-0" not in page and "5855,00" not in page
        async with login(served, "oleg") as client:
            page = (await client.get("/cabinet/dashboard")).text
        assert '<strong id="today-count">1</strong>' in page
        assert 'data-id="other-0"' in page and "kkt-0" not in page


async def test_the_receipts_list_filters_and_keeps_to_its_tenant(tmp_path: Path) -> None:
    async with cabinet(tmp_path) as served:
        mine, theirs = await _shop_and_other(served)
        async with login(served, "kira") as client:
            page = (await client.get("/cabinet/receipts")).text
            assert _ids(page) == set(mine)
            assert "their-order" not in page
            by_sum = (await client.get("/cabinet/receipts", params={"sum": "2300,00"})).text
            assert _ids(by_sum) == {mine[1]}
            by_id = await client.get("/cabinet/receipts", params={"external_id": "order-2"})
            assert _ids(by_id.text) == {mine[2]}
            guessed = await client.get("/cabinet/receipts", params={"external_id": "their-order"})
            assert _ids(guessed.text) == set()
            assert theirs not in page and theirs not in guessed.text
            fd = re.search(r'<td class="num">(\d+)</td>\s*</tr>', by_id.text)
            assert fd is not None
            by_fd = (await client.get("/cabinet/receipts", params={"fd": fd[1]})).text
            assert mine[2] in _ids(by_fd)
            failed = (await client.get("/cabinet/receipts", params={"status": "failed"})).text
            assert _ids(failed) == set()
            today = served.engine.today("shop").isoformat()
            dated = await client.get("/cabinet/receipts", params={"from": today, "to": today})
            assert _ids(dated.text) == set(mine)
            earlier = await client.get("/cabinet/receipts", params={"to": "2020-01-01"})
            assert _ids(earlier.text) == set()
            bad = await client.get("/cabinet/receipts", params={"from": "вчера", "sum": "x"})
            assert bad.status_code == 200
            assert "ожидалась дата" in bad.text and "ожидалась сумма" in bad.text


async def test_the_receipts_list_pages_newest_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("engine.cabinet.app.PAGE_SIZE", 2)
    async with cabinet(tmp_path) as served:
        mine, _ = await _shop_and_other(served)
        async with login(served, "anna") as client:
            first = (await client.get("/cabinet/receipts")).text
            assert _ids(first) == {mine[2], mine[1]}
            link = re.search(r'id="next-page" href="([^"]+)"', first)
            assert link is not None
            second = (await client.get(link[1].replace("&amp;", "&"))).text
            assert _ids(second) == {mine[0]}
            assert 'id="next-page"' not in second


async def test_a_receipt_page_shows_its_lines_and_fiscal_data(tmp_path: Path) -> None:
    async with cabinet(tmp_path) as served:
        mine, theirs = await _shop_and_other(served)
        async with login(served, "anna") as client:
            page = await client.get(f"/cabinet/receipts/{mine[0]}")
            assert page.status_code == 200
            text = page.text
            assert "Наушники беспроводные" in text and "Доставка" in text
            assert text.count('class="line"') == 2
            assert '<th class="num" id="total">1599,00</th>' in text
            assert "безналичными" in text
            assert 'id="fd">' in text and "ФП" in text and "t=" in text  # the FNS QR string
            assert "фискализирован" in text
            # the buyer's branded receipt, by its public link, in each form
            links = re.findall(r'href="(/r/[^"]+)"', text)
            assert len(links) == 3, links
            for link in links:
                shown = await served.client.get(link)
                assert shown.status_code == 200, link
            assert "Наушники беспроводные" in (await served.client.get(links[0])).text
            for guessed in (theirs, "0" * 32, "not-an-id"):  # another tenant's is as absent
                answer = await client.get(f"/cabinet/receipts/{guessed}")
                assert answer.status_code == 404
                assert "Чек не найден" in answer.text
        async with login(served, "oleg") as client:
            assert (await client.get(f"/cabinet/receipts/{theirs}")).status_code == 200
            assert (await client.get(f"/cabinet/receipts/{mine[0]}")).status_code == 404


async def test_a_refund_in_one_action_repeats_the_lines_under_a_new_external_id(
    tmp_path: Path,
) -> None:
    async with cabinet(tmp_path) as served:
        mine, theirs = await _shop_and_other(served)
        async with login(served, "kira") as client:
            page = await client.get(f"/cabinet/receipts/{mine[0]}")
            token = csrf_of(page)
            refused = await client.post(f"/cabinet/receipts/{mine[0]}/refund", data={})
            assert refused.status_code == 403
            other = await client.post(f"/cabinet/receipts/{theirs}/refund", data={"csrf": token})
            assert other.status_code == 404
            answer = await client.post(f"/cabinet/receipts/{mine[0]}/refund", data={"csrf": token})
            assert answer.status_code == 303
            new_id = answer.headers["location"].rsplit("/", 1)[1]
            job = await served.engine.wait("shop", new_id)
            assert job.external_id == f"refund-of-{mine[0]}"
            assert job.state is JobState.FISCALIZED
            view = await served.engine.receipt_view("shop", new_id)
            assert view is not None and view.operation == 2 and view.total == 159_900
            again = await client.post(f"/cabinet/receipts/{mine[0]}/refund", data={"csrf": token})
            assert again.headers["location"].endswith(new_id)  # a repeat is the same job
            refund_page = (await client.get(f"/cabinet/receipts/{new_id}")).text
            assert "Возврат прихода" in refund_page or "возврат прихода" in refund_page
            assert 'id="refund"' not in refund_page  # a refund is not refunded again
