"""The HTTP door while the journal cannot commit: every route that needs the journal answers 503
with Retry-After in its API's own error shape, never a 500, and answers again once it is back.

The journal's commits, reads included, fail through its ``before_commit`` fault hook with the
error a failing disk gives SQLite (as in tests/engine/test_journal_outage.py).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import trio

from engine.engine import JournalBehind
from engine.journal import SqliteJournal
from tests.http.conftest import Served, corpus, serving
from tests.http.test_komtet import SHOPS, call, sale
from tests.http.test_payments import HOOK, hooks, tbank


def refuse_every_commit(changes: int) -> None:  # in the journal's writer thread
    raise sqlite3.OperationalError("disk I/O error (injected)")


@contextmanager
def journal_down(served: Served) -> Iterator[None]:
    """Every commit of the journal fails (a group of reads too) until the block ends."""
    journal = served.engine.journal
    assert isinstance(journal, SqliteJournal)
    journal.before_commit = refuse_every_commit
    try:
        yield
    finally:
        journal.before_commit = None


async def back(served: Served) -> None:
    """Wait (bounded) until the engine commits again by itself."""
    with trio.fail_after(30):
        while served.engine.health.degraded:
            await trio.sleep(0.05)


def unavailable(answer: httpx.Response) -> Any:
    """The answer is 503 with a Retry-After of at least a second; its JSON body."""
    assert answer.status_code == 503, answer.text
    assert int(answer.headers["Retry-After"]) >= 1, answer.headers
    return answer.json()


async def test_atol_sell_and_report_answer_503_in_atol_shape(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        token = await served.token()
        first = await served.sell(corpus("atol-sell-prepayment.json", external_id="o-1"), token)
        assert first.status_code == 200, first.text
        uuid = first.json()["uuid"]
        with journal_down(served):
            refused = unavailable(
                await served.sell(corpus("atol-sell-prepayment.json", external_id="o-2"), token)
            )
            assert refused["status"] == "fail" and refused["error"]["text"], refused
            assert served.engine.health.degraded
            report = unavailable(await served.report(uuid, token))
            assert report["status"] == "fail" and report["uuid"] is None, report
            assert set(report["error"]) == {"error_id", "code", "text", "type"}, report
            assert served.door.internal_errors == 0
        await back(served)
        assert (await served.report(uuid, token)).status_code == 200


async def test_komtet_task_multi_tasks_and_task_info_answer_503_in_komtet_shape(
    tmp_path: Path,
) -> None:
    async with serving(tmp_path, komtet_shops=SHOPS) as served:
        task = await call(served, "POST", "api/shop/v2/queues/main/task", sale("k-1"))
        assert task.status_code == 200, task.text
        info_path = f"api/shop/v2/tasks/{task.json()['id']}"
        with journal_down(served):
            refused = unavailable(
                await call(served, "POST", "api/shop/v2/queues/main/task", sale("k-2"))
            )
            assert refused["code"] == "unavailable" and refused["title"], refused
            assert served.engine.health.degraded
            many = await call(
                served, "POST", "api/shop/v2/queues/main/multi-tasks", [sale("k-3"), sale("k-4")]
            )
            assert unavailable(many)["code"] == "unavailable"
            info = unavailable(await call(served, "GET", info_path))
            assert info["code"] == "unavailable" and info["description"].startswith("$: ")
            # The queue's state is the registers', not the journal's: it still answers.
            queue = await call(served, "GET", "api/shop/v2/queues/main")
            assert queue.status_code == 200, queue.text
            assert served.door.internal_errors == 0
        await back(served)
        assert (await call(served, "GET", info_path)).status_code == 200
        for external_id in ("k-2", "k-3", "k-4"):
            assert await served.engine.job_by_external_id("shop", external_id) is None


async def test_payment_notification_and_shipped_answer_503(tmp_path: Path) -> None:
    url = f"/notifications/{HOOK}/tbank"
    async with serving(tmp_path, **hooks()) as served:
        paid = await served.client.post(url, json=tbank(DATA={"Source": "sbp"}))
        assert paid.status_code == 200, paid.text
        token = await served.token()
        with journal_down(served):
            again = tbank(OrderId="201710", PaymentId=8742592, DATA={"Source": "sbp"})
            refused = unavailable(await served.client.post(url, json=again))
            assert refused["error"], refused
            assert served.engine.health.degraded
            shipped = "/payments/tbank/8742591/shipped"
            assert unavailable(await served.client.post(shipped, headers={"Token": token}))
            repeat = await served.client.post(url, json=tbank(DATA={"Source": "sbp"}))
            assert unavailable(repeat)["error"]
            assert served.door.internal_errors == 0
        await back(served)
        done = await served.client.post(url, json=tbank(DATA={"Source": "sbp"}))
        assert done.headers["X-Kassa-Job"] == paid.headers["X-Kassa-Job"]


async def test_a_tenant_held_for_a_journal_behind_its_registers_gets_503_on_every_api(
    tmp_path: Path,
) -> None:
    # The engine refuses a held tenant's submits (tests/engine/test_journal_behind.py); each
    # API says 503, without Retry-After since only an operator ends the hold, not 4xx, which
    # a payment system would take for a final refusal.
    async def held(*args: Any, **kwargs: Any) -> Any:
        raise JournalBehind("a register of the tenant holds receipts the journal does not know")

    async with serving(tmp_path, komtet_shops=SHOPS, **hooks()) as served:
        token = await served.token()
        served.engine.submit = held  # type: ignore[method-assign]
        answers = {
            "atol": await served.sell(
                corpus("atol-sell-prepayment.json", external_id="h-1"), token
            ),
            "komtet": await call(served, "POST", "api/shop/v2/queues/main/task", sale("h-2")),
            "tbank": await served.client.post(
                f"/notifications/{HOOK}/tbank", json=tbank(DATA={"Source": "sbp"})
            ),
        }
        for api, answer in answers.items():
            assert answer.status_code == 503, (api, answer.text)
            assert "Retry-After" not in answer.headers, api
        assert answers["komtet"].json()["code"] == "unavailable"
        assert served.door.internal_errors == 0
