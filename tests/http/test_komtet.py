"""The KOMTET Kassa v2 API as a shop's unchanged KOMTET client meets it, over TCP on 127.0.0.1.

Bodies are the corpus's, exactly as KOMTET documents them (cloud-apis.md §2.2); requests are
signed as KOMTET's SDKs sign them: hex HMAC-MD5, keyed by the secret, over method + the full
URL (``host + "/" + path``) + the body as sent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.http.credentials import KomtetShop
from engine.journal import JobState
from engine.limits import SizeLimits
from tests.engine.fleet import assert_exactly_once
from tests.http.conftest import Served, corpus, serving

SECRET = "shop-secret-0123456789"
SHOPS = {
    "3141": KomtetShop("shop", "3141", SECRET),
    "2718": KomtetShop("other", "2718", "other-secret-0123456789"),
}


def sdk_signature(secret: str, method: str, url: str, data: bytes = b"") -> str:
    """What the SDKs send: ``hash_hmac('md5', $method . $url . $data, $secret)``."""
    return hmac.new(secret.encode(), method.encode() + url.encode() + data, hashlib.md5).hexdigest()


async def call(
    served: Served,
    method: str,
    path: str,
    body: Any = None,
    *,
    shop: str = "3141",
    secret: str | None = None,
    signed: bytes | None = None,
) -> Any:
    """One request as the SDK makes it; ``signed`` signs other bytes than those sent."""
    url = f"{served.url}/{path.strip('/')}"
    data = b"" if body is None else json.dumps(body, ensure_ascii=False).encode()
    secret = SHOPS[shop].secret if secret is None and shop in SHOPS else secret or "x"
    headers = {
        "Authorization": shop,
        "Accept": "application/json",
        "X-HMAC-Signature": sdk_signature(secret, method, url, data if signed is None else signed),
    }
    if body is not None:
        headers["Content-Type"] = "application/json"
    return await served.client.request(method, url, content=data, headers=headers)


def sale(external_id: str = "k-1003-prepay", **changes: Any) -> dict[str, Any]:
    return corpus("komtet-sell-prepayment.json", external_id=external_id, **changes)


def komtet(tmp_path: Path, **options: Any) -> Any:
    return serving(tmp_path, komtet_shops=SHOPS, **options)


async def until_final(served: Served, task_id: str, shop: str = "3141") -> dict[str, Any]:
    for _ in range(600):
        info = (await call(served, "GET", f"api/shop/v2/tasks/{task_id}", shop=shop)).json()
        if info["state"] != "new":
            return dict(info)
        await trio.sleep(0.05)
    raise AssertionError(f"{task_id} is still new: {info}")


async def once(served: Served, *external_ids: str) -> None:
    """Each of the shop's jobs fiscalized, and in the ФН archives exactly once."""
    ids = []
    for external_id in external_ids:
        job = await served.engine.job_by_external_id("shop", external_id)
        assert job is not None, external_id
        ids.append(job.id)
    await assert_exactly_once(served.engine, served.fleet, ids)


def assert_error(answer: Any, http: int, code: str, path: str) -> dict[str, Any]:
    assert answer.status_code == http, answer.text
    body: dict[str, Any] = answer.json()
    assert {"title", "code", "description"} <= set(body), body
    assert body["code"] == code, body
    assert body["description"].startswith(f"{path}: "), body
    return body


async def test_every_route_with_a_documented_check_signed_as_the_sdk_signs(
    tmp_path: Path,
) -> None:
    async with komtet(tmp_path) as served:
        queue = await call(served, "GET", "api/shop/v2/queues/main")
        assert queue.status_code == 200, queue.text
        assert queue.json()["id"] == "main" and queue.json()["state"] in ("active", "passive")

        answer = await call(served, "POST", "api/shop/v2/queues/main/task", sale())
        assert answer.status_code == 200, answer.text
        task = answer.json()
        assert set(task) == {"id", "external_id", "print_queue_id", "state"}
        assert task["external_id"] == "k-1003-prepay" and task["print_queue_id"] == "main"
        assert task["state"] == "new"
        job = await served.engine.job("shop", task["id"])
        assert job is not None and job.external_id == "k-1003-prepay"

        info = await until_final(served, task["id"])
        assert info["state"] == "done" and info["error_description"] is None, info
        fiscal = info["fiscal_data"]
        assert set(fiscal) == {"i", "fn", "t", "n", "fp", "s"}
        view = await served.engine.receipt_view("shop", task["id"])
        assert view is not None
        assert fiscal["fn"] == view.fn_number and fiscal["i"] == str(view.fd_number)
        assert fiscal["n"] == 1 and fiscal["s"] == "3490.00"
        assert fiscal["fp"] == str(view.printed_sign)

        for _ in range(200):  # the register that signed it is ready: the queue is active
            queue = await call(served, "GET", "api/shop/v2/queues/main")
            if queue.json()["state"] == "active":
                break
            await trio.sleep(0.05)
        assert queue.json() == {"id": "main", "state": "active"}
        await once(served, "k-1003-prepay")


async def test_a_bad_signature_is_refused_and_nothing_is_journaled(tmp_path: Path) -> None:
    async with komtet(tmp_path) as served:
        path = "api/shop/v2/queues/main/task"
        tampered = json.dumps(sale(), ensure_ascii=False).encode().replace(b"3490", b"3491")
        refusals = [
            await call(served, "POST", path, sale(), secret="not-the-secret-at-all"),
            await call(served, "POST", path, sale(), signed=tampered),
            await call(served, "POST", path, sale(), shop="9999"),
            await call(served, "POST", path, sale(), shop="2718", secret=SECRET),
        ]
        codes = [
            assert_error(r, 401, r.json()["code"], r.json()["description"].split(":")[0])["code"]
            for r in refusals
        ]
        assert codes == ["auth.signature", "auth.signature", "auth.unknown_shop", "auth.signature"]
        assert refusals[0].json()["description"].startswith("X-HMAC-Signature: ")
        unsigned = await served.client.post(
            f"/{path}", content=b"{}", headers={"Authorization": "3141"}
        )
        assert_error(unsigned, 401, "auth.signature", "X-HMAC-Signature")
        assert await served.engine.job_by_external_id("shop", "k-1003-prepay") is None
        assert await served.engine.jobs_of("shop") == []


async def test_a_repeat_answers_the_first_task_and_fiscalizes_nothing_new(tmp_path: Path) -> None:
    async with komtet(tmp_path) as served:
        path = "api/shop/v2/queues/main/task"
        first = (await call(served, "POST", path, sale())).json()
        again = assert_error(
            await call(served, "POST", path, sale()), 422, "external_id.duplicate", "external_id"
        )
        assert again["task"]["id"] == first["id"] and first["id"] in again["description"]
        other_receipt = sale(positions=[{**sale()["positions"][0], "name": "Другое"}])
        conflict = assert_error(
            await call(served, "POST", path, other_receipt),
            422,
            "external_id.duplicate",
            "external_id",
        )
        assert conflict["task"]["id"] == first["id"]
        assert (await until_final(served, first["id"]))["state"] == "done"
        await once(served, "k-1003-prepay")


async def test_tenants_see_only_their_own_queues_and_tasks(tmp_path: Path) -> None:
    async with komtet(tmp_path) as served:
        task = (await call(served, "POST", "api/shop/v2/queues/main/task", sale())).json()
        theirs = await call(served, "GET", f"api/shop/v2/tasks/{task['id']}", shop="2718")
        assert_error(theirs, 404, "task.not_found", "task_id")
        into = await call(served, "POST", "api/shop/v2/queues/main/task", sale("x"), shop="2718")
        assert_error(into, 404, "queue.not_found", "queue_id")
        queue = await call(served, "GET", "api/shop/v2/queues/main", shop="2718")
        assert_error(queue, 404, "queue.not_found", "queue_id")
        assert (await call(served, "GET", "api/shop/v2/queues/theirs", shop="2718")).is_success
        assert await served.engine.jobs_of("other") == []


async def test_the_signature_is_over_the_url_as_sent_percent_encoding_and_all(
    tmp_path: Path,
) -> None:
    """A path the client percent-encoded (here ü and a space) and a query string are signed as
    they are sent: the signature holds, and the answer is the route's, not 401."""
    async with komtet(tmp_path) as served:
        unknown = await call(served, "GET", "api/shop/v2/tasks/%C3%BC%20x")
        assert_error(unknown, 404, "task.not_found", "task_id")
        assert "'ü x'" in unknown.json()["description"], unknown.text
        queue = await call(served, "GET", "api/shop/v2/queues/main?fields=state%20id")
        assert queue.status_code == 200, queue.text


async def test_multi_tasks_answers_each_entry_alone(tmp_path: Path) -> None:
    async with komtet(tmp_path) as served:
        path = "api/shop/v2/queues/main/multi-tasks"
        first = (await call(served, "POST", "api/shop/v2/queues/main/task", sale("k-0"))).json()
        broken = sale("k-2")
        broken["positions"][0]["price"] = "много"
        wrong_total = sale("k-3", payments=[{"type": "card", "sum": 1.0}])
        entries = [sale("k-1"), broken, sale("k-0"), wrong_total, sale("k-4")]
        answer = await call(served, "POST", path, entries)
        assert answer.status_code == 200, answer.text
        got = answer.json()
        assert list(got) == ["0", "1", "2", "3", "4"]
        assert got["0"]["state"] == "new" and got["0"]["external_id"] == "k-1"
        assert got["4"]["state"] == "new" and got["4"]["external_id"] == "k-4"
        assert got["1"]["description"].startswith("[1].positions[0].price: "), got["1"]
        assert got["2"]["code"] == "external_id.duplicate"
        assert got["2"]["task"]["id"] == first["id"]
        assert got["3"]["description"].startswith("[3]."), got["3"]
        assert got["3"]["code"] != "external_id.duplicate"
        for key in ("0", "4"):
            assert (await until_final(served, got[key]["id"]))["state"] == "done"
        await once(served, "k-0", "k-1", "k-4")
        assert await served.engine.job_by_external_id("shop", "k-2") is None
        assert await served.engine.job_by_external_id("shop", "k-3") is None


async def test_errors_name_the_field_and_limits_answer_413_and_429(tmp_path: Path) -> None:
    async with komtet(tmp_path, sizes=SizeLimits(4096, 2048)) as served:
        path = "api/shop/v2/queues/main/task"
        missing = sale()
        del missing["positions"]
        assert_error(await call(served, "POST", path, missing), 422, "field.missing", "positions")
        huge = sale(additional_check_props="я" * 3000)
        assert_error(await call(served, "POST", path, huge), 413, "request.too_large", "$")
        unknown = await call(served, "GET", "api/shop/v2/tasks/nope")
        assert_error(unknown, 404, "task.not_found", "task_id")
    (tmp_path / "rate").mkdir()
    async with komtet(tmp_path / "rate", rate=0.001, burst=1) as served:
        assert (await call(served, "GET", "api/shop/v2/queues/main")).status_code == 200
        limited = await call(served, "GET", "api/shop/v2/queues/main")
        assert_error(limited, 429, "rate.limited", "$")
        assert int(limited.headers["Retry-After"]) >= 1


@attrs.define
class Receiver:
    url: str = ""
    calls: list[tuple[str, bytes, str]] = attrs.Factory(list)
    arrived: trio.Event = attrs.Factory(trio.Event)

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        self.calls.append((str(request.url), body, request.headers.get("x-hmac-signature", "")))
        self.arrived.set()
        return Response(status_code=200)


@asynccontextmanager
async def receiving() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    app: Any = Starlette(routes=[Route("/komtet/done", receiver.endpoint, methods=["POST"])])
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(serve, app, config)
        receiver.url = f"{binds[0]}/komtet/done"
        yield receiver
        nursery.cancel_scope.cancel()


async def test_the_callback_is_journaled_signed_and_verifiable(tmp_path: Path) -> None:
    # The tenant has a second shop, first by shop id: the callback is still signed by the
    # shop that sent the task, whose secret its receiver holds.
    first = KomtetShop("shop", "1618", "first-shop-secret-0123456")
    shops = {**SHOPS, first.shop_id: first}
    async with receiving() as receiver, serving(tmp_path, komtet_shops=shops) as served:
        body = sale(callback_url=receiver.url)
        task = (await call(served, "POST", "api/shop/v2/queues/main/task", body)).json()
        (delivery,) = await served.engine.journal.deliveries(task["id"])
        assert delivery.kind == "komtet:3141" and delivery.url == receiver.url
        with trio.fail_after(30):
            await receiver.arrived.wait()
        url, sent, signature = receiver.calls[0]
        assert signature == sdk_signature(SECRET, "POST", url, sent)
        for other in (first, SHOPS["2718"]):
            assert signature != sdk_signature(other.secret, "POST", url, sent)
        got = json.loads(sent)
        assert got["id"] == task["id"] and got["external_id"] == "k-1003-prepay"
        assert got["state"] == "done" and set(got["fiscal_data"]) == {
            "i",
            "fn",
            "t",
            "n",
            "fp",
            "s",
        }
        info = await call(served, "GET", f"api/shop/v2/tasks/{task['id']}")
        assert json.loads(sent) == info.json()
        job = await served.engine.job("shop", task["id"])
        assert job is not None and job.state in (JobState.FISCALIZED, JobState.RESOLVED)
