"""The ATOL Online v5 API as a shop's unchanged ATOL client meets it, over TCP on 127.0.0.1.

Bodies are the corpus's, exactly as ATOL documents them (cloud-apis.md §2.1); every answer is
checked against the shapes, statuses and codes of the reference's table (§2.4, [AT4]).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import trio

from engine.http.atol import TEXTS
from engine.journal import JobState
from engine.limits import SizeLimits
from tests.engine.fleet import assert_exactly_once
from tests.http.conftest import JSON, LOGINS, PASSWORD, corpus, serving

STAMP = re.compile(r"\A\d\d\.\d\d\.\d{4} \d\d:\d\d:\d\d\Z")


def assert_error(answer: Any, http: int, code: int, *, status: str | None = "fail") -> str:
    """An ATOL error answer: its HTTP status, its error object; returns the error's text."""
    assert answer.status_code == http, answer.text
    body = answer.json()
    error = body["error"]
    assert set(error) == {"error_id", "code", "text", "type"}, error
    assert error["code"] == code and error["type"] == "system", error
    assert uuid.UUID(error["error_id"])
    assert STAMP.match(body["timestamp"]), body
    if status is not None:
        assert body["status"] == status, body
    text: str = error["text"]
    assert text.startswith(TEXTS[code]) or code == 33, text
    return text


async def test_a_documented_sale_is_journaled_reported_and_fiscalized_once(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        answer = await served.client.post(
            "/possystem/v5/getToken",
            json={"login": "shop-atol", "pass": PASSWORD, "source": "cms"},
            headers=JSON,
        )
        assert answer.status_code == 200
        got = answer.json()
        assert set(got) == {"error", "token", "timestamp"} and got["error"] is None
        assert STAMP.match(got["timestamp"])
        token = got["token"]

        body = corpus("atol-sell-prepayment.json")
        sold = await served.sell(body, token)
        assert sold.status_code == 200, sold.text
        first = sold.json()
        assert set(first) == {"uuid", "status", "error", "timestamp"}
        assert first["status"] == "wait" and first["error"] is None
        job_id = uuid.UUID(first["uuid"]).hex
        job = await served.engine.job("shop", job_id)
        assert job is not None and job.external_id == "order-1003-prepay"

        # A resend after a lost answer: ATOL's 33 with the first uuid, nothing new.
        again = await served.sell(body, token)
        text = assert_error(again, 400, 33, status="wait")
        assert again.json()["uuid"] == first["uuid"]
        assert "order-1003-prepay" in text and "main" in text

        report = await served.until_done(first["uuid"], token)
        assert report["status"] == "done" and report["error"] is None
        assert report["uuid"] == first["uuid"]
        assert report["group_code"] == "main" and report["external_id"] == "order-1003-prepay"
        assert report["device_code"] == "kkt-0" and report["callback_url"] == ""
        assert STAMP.match(report["timestamp"]) and "callback" not in report
        payload = report["payload"]
        result = await served.engine.result("shop", job_id)
        assert result is not None
        assert (
            payload["total"] == 3490.00
            and '"total":3490.00' in (await served.report(first["uuid"], token)).text
        )
        assert payload["fn_number"] == result.fn_number
        assert payload["fiscal_document_number"] == result.fd_number
        assert payload["fiscal_document_attribute"] == result.printed_sign
        assert isinstance(payload["shift_number"], int)
        assert isinstance(payload["fiscal_receipt_number"], int)
        assert re.fullmatch(r"\d{16}", payload["ecr_registration_number"])
        assert STAMP.match(payload["receipt_datetime"]) and payload["fns_site"]

        # Resent once the job is done: still 33, the same uuid, and one receipt in the ФН.
        assert_error(await served.sell(body, token), 400, 33, status="wait")
        assert (await served.sell(body, token)).json()["uuid"] == first["uuid"]
        await assert_exactly_once(served.engine, served.fleet, [job_id])


async def test_every_operation_of_the_api_goes_through(tmp_path: Path) -> None:
    operations = {
        "sell_refund": "atol-sell_refund-marked.json",
        "buy": "atol-buy-scrap.json",
        "buy_refund": "atol-buy_refund-plain.json",
        "sell_correction": "atol-sell_correction-self.json",
        "buy_correction": "atol-buy_correction-by-order.json",
    }
    async with serving(tmp_path, registers=2) as served:
        token = await served.token()
        uuids = []
        for operation, name in operations.items():
            answer = await served.sell(corpus(name), token, operation=operation)
            assert answer.status_code == 200, (operation, answer.text)
            uuids.append(answer.json()["uuid"])
        for operation, uid in zip(operations, uuids, strict=True):
            report = await served.until_done(uid, token)
            assert report["status"] == "done", (operation, report)
        await assert_exactly_once(served.engine, served.fleet, [uuid.UUID(u).hex for u in uuids])


async def test_token_errors_are_atol_s(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        post = served.client.post
        url = "/possystem/v5/getToken"
        wrong = await post(url, json={"login": "shop-atol", "pass": "nope"}, headers=JSON)
        assert_error(wrong, 401, 12, status=None)
        assert wrong.json()["token"] is None
        unknown = await post(url, json={"login": "nobody", "pass": PASSWORD}, headers=JSON)
        assert_error(unknown, 401, 12, status=None)
        missing = await post(url, json={"login": "shop-atol"}, headers=JSON)
        assert "pass" in assert_error(missing, 400, 13, status=None)
        # Older clients ask with GET and query parameters.
        query = {"login": "shop-atol", "pass": PASSWORD}
        assert (await served.client.get(url, params=query)).json()["error"] is None

        body = corpus("atol-sell-prepayment.json")
        assert_error(await served.sell(body, ""), 401, 10)
        assert_error(await served.sell(body, "not-a-token"), 401, 10)
        login = LOGINS["shop-atol"]
        expired = served.door.tokens.issue(login, time.time() - 25 * 3600)
        assert_error(await served.sell(body, expired), 401, 11)
        forged = served.door.tokens.issue(login, time.time())[:-2] + "AA"
        assert_error(await served.sell(body, forged), 401, 10)

        token = await served.token()
        assert_error(await served.sell(body, token, group="theirs"), 401, 20)
        assert_error(await served.sell(body, token, group="nowhere"), 401, 20)
        theirs = await served.token("other-atol", "other-pass")
        assert_error(await served.sell(body, theirs, group="main"), 401, 20)
        # The token in the query, as third-party clients send it, is taken too.
        answer = await served.client.post(
            "/possystem/v5/main/sell",
            params={"token": token},
            content=json.dumps(body).encode(),
            headers=JSON,
        )
        assert answer.status_code == 200, answer.text
        assert await served.engine.journal.jobs_of("other") == []


async def test_request_and_receipt_errors_name_their_fields(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        token = await served.token()
        body = corpus("atol-sell-prepayment.json")

        bad_price = json.loads(json.dumps(body))
        bad_price["receipt"]["items"][0]["price"] = "3490.00"
        text = assert_error(await served.sell(bad_price, token), 400, 13)
        assert "receipt.items[0].price" in text, text

        short = json.loads(json.dumps(body))
        short["receipt"]["total"] = 3000.00
        short["receipt"]["payments"][0]["sum"] = 3000.00
        answer = await served.sell(short, token)
        text = assert_error(answer, 400, 32)
        assert "receipt.total" in text and answer.json()["uuid"] is None, text

        # The engine's own check (a correction's basis after today) is named in ATOL's terms.
        future = corpus("atol-sell_correction-self.json")
        future["correction"]["correction_info"]["base_date"] = "01.01.2099"
        text = assert_error(await served.sell(future, token, operation="sell_correction"), 400, 32)
        assert "correction.correction_info.base_date" in text, text

        assert_error(await served.sell(body, token, operation="sell_everything"), 400, 31)
        syntax = await served.client.post(
            "/possystem/v5/main/sell", content=b"{not json", headers={**JSON, "Token": token}
        )
        assert_error(syntax, 400, 40)
        for content_type in ("text/plain", "application/json; charset=windows-1251"):
            wrong = await served.client.post(
                "/possystem/v5/main/sell",
                content=json.dumps(body).encode(),
                headers={"Content-Type": content_type, "Token": token},
            )
            assert_error(wrong, 415, 41)
        assert await served.engine.journal.jobs_of("shop") == []  # none of them was journaled

        answer = await served.report("not-a-uuid", token)
        assert_error(answer, 400, 30)
        assert answer.json()["uuid"] == "not-a-uuid"
        assert_error(await served.report(str(uuid.uuid4()), token), 400, 30)


async def test_a_tenant_sees_only_its_own_reports(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        theirs = await served.token("other-atol", "other-pass")
        body = corpus("atol-sell-prepayment.json")
        answer = await served.sell(body, theirs, group="theirs")
        assert answer.status_code == 200, answer.text
        uid = answer.json()["uuid"]
        assert (await served.report(uid, theirs, group="theirs")).status_code == 200
        mine = await served.token()
        assert_error(await served.report(uid, mine, group="main"), 400, 30)
        assert_error(await served.report(uid, mine, group="theirs"), 401, 20)
        # The same external_id is the other tenant's own: a new job, not a duplicate.
        assert (await served.sell(body, mine)).status_code == 200


async def test_bodies_over_the_limit_are_refused_unread(tmp_path: Path) -> None:
    sizes = SizeLimits(request_bytes=8192, receipt_bytes=4096)
    async with serving(tmp_path, sizes=sizes) as served:
        token = await served.token()
        body = corpus("atol-sell-prepayment.json")
        body["receipt"]["cashier"] = "Кассир " * 1000
        answer = await served.sell(body, token)
        text = assert_error(answer, 413, 40)
        assert "4096" in text, text

        # A Content-Length of 100 MB, and no body at all: answered at once from the header.
        host, port = served.url.removeprefix("http://").rsplit(":", 1)
        stream = await trio.open_tcp_stream(host, int(port))
        head = (
            "POST /possystem/v5/main/sell HTTP/1.1\r\n"
            f"Host: {host}\r\nToken: {token}\r\n"
            "Content-Type: application/json; charset=utf-8\r\n"
            "Content-Length: 100000000\r\n\r\n"
        )
        await stream.send_all(head.encode())
        received = b""
        with trio.fail_after(10):
            while b"\r\n\r\n" not in received:
                received += await stream.receive_some(4096)
        assert received.startswith(b"HTTP/1.1 413"), received
        await stream.aclose()
        assert await served.engine.journal.jobs_of("shop") == []


async def test_over_the_rate_is_429_with_retry_after(tmp_path: Path) -> None:
    async with serving(tmp_path, rate=0.5, burst=2) as served:
        token = await served.token()  # the first of two
        body = corpus("atol-sell-prepayment.json")
        assert (await served.sell(body, token)).status_code == 200
        answer = await served.sell(body, token)
        assert_error(answer, 429, 0)
        assert int(answer.headers["Retry-After"]) >= 1
        # Guessing at logins no tenant has is bounded too, each guess costing a hash.
        guess = {"login": "nobody", "pass": "guess"}
        url = "/possystem/v5/getToken"
        for _ in range(2):
            assert_error(
                await served.client.post(url, json=guess, headers=JSON), 401, 12, status=None
            )
        limited = await served.client.post(url, json=guess, headers=JSON)
        assert_error(limited, 429, 0, status=None)
        assert limited.json()["token"] is None and int(limited.headers["Retry-After"]) >= 1


async def test_a_full_queue_is_429_with_retry_after(tmp_path: Path) -> None:
    async with serving(tmp_path, queue=1) as served:
        token = await served.token()
        first = await served.sell(corpus("atol-sell-prepayment.json"), token)
        assert first.status_code == 200
        second = await served.sell(corpus("atol-buy-scrap.json"), token, operation="buy")
        assert_error(second, 429, 0)
        assert int(second.headers["Retry-After"]) >= 1
        job = await served.engine.job("shop", uuid.UUID(first.json()["uuid"]).hex)
        assert job is not None and job.state is not JobState.FAILED


async def test_the_openapi_document_is_served_as_docs_keeps_it(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        answer = await served.client.get("/openapi.json")
    assert answer.status_code == 200
    served_spec = answer.json()
    kept = json.loads((Path(__file__).parents[2] / "docs" / "openapi.json").read_text())
    assert served_spec == kept, "run: python -m engine.http.openapi > docs/openapi.json"
    assert served_spec["openapi"] == "3.1.0"
    paths = served_spec["paths"]
    assert {"/possystem/v5/getToken", "/possystem/v5/{group_code}/{operation}"} <= set(paths)
