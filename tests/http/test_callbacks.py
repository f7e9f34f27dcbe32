"""Callbacks: journaled before they are tried, retried with backoff, dead when they never land,
and delivered after a restart; the receiver is a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import uuid
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

from emulator.serve import open_memory_fleet
from engine.http.callbacks import retry_wait
from engine.journal import DeliveryState
from tests.http.conftest import Served, corpus, moscow_now, serving


@attrs.define
class Receiver:
    """Answers each callback with the next of ``statuses`` (the last one thereafter)."""

    statuses: list[int]
    url: str = ""
    bodies: list[dict[str, Any]] = attrs.Factory(list)
    content_types: list[str] = attrs.Factory(list)
    arrived: trio.Event = attrs.Factory(trio.Event)

    async def endpoint(self, request: Request) -> Response:
        self.bodies.append(json.loads(await request.body()))
        self.content_types.append(request.headers.get("content-type", ""))
        status = self.statuses[min(len(self.bodies), len(self.statuses)) - 1]
        if status == 200:
            self.arrived.set()
        return Response(status_code=status)


@asynccontextmanager
async def receiving(*statuses: int, port: int = 0) -> AsyncIterator[Receiver]:
    receiver = Receiver(list(statuses))
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    app: Any = Starlette(routes=[Route("/atol", receiver.endpoint, methods=["POST"])])
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(serve, app, config)
        receiver.url = f"{binds[0]}/atol"
        yield receiver
        nursery.cancel_scope.cancel()


async def deliveries_of(served: Served, uid: str) -> Any:
    (delivery,) = await served.engine.journal.deliveries(uuid.UUID(uid).hex)
    return delivery


async def test_a_callback_that_fails_first_is_retried_and_then_delivered(tmp_path: Path) -> None:
    async with receiving(500, 200) as receiver, serving(tmp_path, attempts=5) as served:
        token = await served.token()
        body = corpus("atol-sell-prepayment.json", service={"callback_url": receiver.url})
        answer = await served.sell(body, token)
        assert answer.status_code == 200, answer.text
        uid = answer.json()["uuid"]
        with trio.fail_after(30):
            await receiver.arrived.wait()
        delivery = await deliveries_of(served, uid)
        while delivery.state is DeliveryState.PENDING:  # the 200's outcome is being journaled
            await trio.sleep(0.01)
            delivery = await deliveries_of(served, uid)
        assert delivery.state is DeliveryState.DELIVERED and delivery.attempts == 2
        report = (await served.report(uid, token)).json()
        assert report["callback"] == {"state": "delivered", "attempts": 2, "last_error": None}
        assert report["callback_url"] == receiver.url
        # What arrived is the report, as ATOL posts it: done, with the fiscal payload.
        first, second = receiver.bodies
        assert first == second and first["uuid"] == uid and first["status"] == "done"
        del report["callback"]
        assert first == report
        assert receiver.content_types == ["application/json; charset=utf-8"] * 2


async def test_a_callback_that_never_lands_is_dead_and_shows_in_the_report(
    tmp_path: Path,
) -> None:
    async with receiving(503) as receiver, serving(tmp_path, attempts=3) as served:
        token = await served.token()
        body = corpus("atol-sell-prepayment.json", service={"callback_url": receiver.url})
        uid = (await served.sell(body, token)).json()["uuid"]
        with trio.fail_after(30):
            while (await deliveries_of(served, uid)).state is not DeliveryState.DEAD:
                await trio.sleep(0.05)
        assert len(receiver.bodies) == 3
        report = (await served.report(uid, token)).json()
        assert report["status"] == "done"
        assert report["callback"] == {"state": "dead", "attempts": 3, "last_error": "HTTP 503"}
        (alert,) = await served.engine.journal.events("alert.callback_dead")
        assert alert.job_id == uuid.UUID(uid).hex and alert.tenant == "shop"


async def test_a_repeated_submit_journals_its_callback_once(tmp_path: Path) -> None:
    async with receiving(200) as receiver, serving(tmp_path) as served:
        token = await served.token()
        body = corpus("atol-sell-prepayment.json", service={"callback_url": receiver.url})
        uid = (await served.sell(body, token)).json()["uuid"]
        assert (await served.sell(body, token)).json()["error"]["code"] == 33
        with trio.fail_after(30):
            await receiver.arrived.wait()
        await trio.sleep(0.2)  # time enough for a second, wrong delivery to arrive
        assert len(receiver.bodies) == 1
        assert (await deliveries_of(served, uid)).url == receiver.url


async def test_a_callback_left_pending_is_delivered_after_a_restart(tmp_path: Path) -> None:
    """The receiver is down while the job ends and the service stops; a new service on the
    same journal delivers the callback once the receiver is up."""
    async with receiving(200) as probe:
        port = int(probe.url.rsplit(":", 1)[1].split("/")[0])  # a free port, released below
    url = f"http://127.0.0.1:{port}/atol"
    async with open_memory_fleet(2, start=moscow_now()) as fleet:
        async with serving(tmp_path, fleet=fleet, attempts=50, backoff=0.05) as served:
            token = await served.token()
            body = corpus("atol-sell-prepayment.json", service={"callback_url": url})
            uid = (await served.sell(body, token)).json()["uuid"]
            with trio.fail_after(30):
                while (await deliveries_of(served, uid)).attempts < 1:
                    await trio.sleep(0.05)
            delivery = await deliveries_of(served, uid)
            assert delivery.state is DeliveryState.PENDING
            assert "ConnectError" in delivery.last_error, delivery
        async with (
            receiving(200, port=port) as receiver,
            serving(tmp_path, fleet=fleet, attempts=50, backoff=0.05) as served,
        ):
            with trio.fail_after(30):
                await receiver.arrived.wait()
            assert receiver.bodies[0]["uuid"] == uid and receiver.bodies[0]["status"] == "done"


def test_the_wait_doubles_from_the_backoff_and_stops_growing() -> None:
    assert [retry_wait(n, 5.0) for n in (1, 2, 3, 4)] == [5.0, 10.0, 20.0, 40.0]
    assert retry_wait(40, 5.0) == 3600.0
