"""Exactly once through real processes: ``kassa serve`` on a file journal against a
``kassa emulator serve`` fleet takes an ATOL sell, a KOMTET task and one notification of each
payment system, is SIGKILLed right after answering, restarts on the same journal, and every
resubmit answers the first job; each external_id ends on a ФН exactly once (read back from the
archives over the Shtrih protocol, by the job marker each signed receipt carries), and the ATOL
callback left pending by the kill is delivered by the restarted service."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import trio

from benchmarks.crash import ON_FN, read_archives, read_journal, settle
from benchmarks.processes import (
    HttpDoorSetup,
    emulator_fleet,
    service_folder,
    start_service,
    stop_child,
)
from engine.http.credentials import hash_password, komtet_signature
from engine.recovery import MARKER_LENGTH
from protocols.notifications.cloudpayments import signature
from protocols.notifications.tbank import token

ROOT = Path(__file__).parents[2]
LOGIN, PASSWORD = "shop-web", "a-password-of-the-shop"
SHOP, SECRET = "1001", "komtet-secret-of-the-shop"
HOOK = "hook-0123456789abcdef"
PAYMENTS = {
    "hook": HOOK,
    "settlement": "prepayment",
    "yookassa_secret": "yk-secret-1",
    "cloudpayments_secret": "cp-secret-1",
    "tbank_password": "tb-password-1",
}


class Receiver:
    """A callback receiver on 127.0.0.1: 503 until ``accept`` is set, then 200."""

    def __init__(self) -> None:
        self.accept = threading.Event()
        self.delivered: list[dict[str, Any]] = []
        self.refused = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if receiver.accept.is_set():
                    receiver.delivered.append(json.loads(body))
                    self.send_response(200)
                else:
                    receiver.refused += 1
                    self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/atol"


@contextmanager
def receiving() -> Iterator[Receiver]:
    receiver = Receiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
        thread.join()


def atol_sell(callback_url: str) -> bytes:
    body = json.loads((ROOT / "samples" / "atol-sell-card.json").read_text())
    body["service"] = {"callback_url": callback_url}
    return json.dumps(body, ensure_ascii=False).encode()


def yookassa() -> bytes:
    return json.dumps(
        {
            "type": "notification",
            "event": "payment.succeeded",
            "object": {
                "id": "2ecf1a3c-000f-5000-8000-1f0a8b3c7d10",
                "status": "succeeded",
                "paid": True,
                "amount": {"value": "15.00", "currency": "RUB"},
                "payment_method": {"type": "bank_card"},
            },
        }
    ).encode()


def cloudpayments() -> bytes:
    fields = {
        "TransactionId": "1211506522",
        "Amount": "25.00",
        "Currency": "RUB",
        "OperationType": "Payment",
        "Status": "Completed",
        "Email": "buyer@example.com",
    }
    return urllib.parse.urlencode(fields).encode()


def tbank() -> bytes:
    note: dict[str, Any] = {
        "TerminalKey": "DEMO",
        "OrderId": "order-3",
        "Success": True,
        "Status": "CONFIRMED",
        "PaymentId": 8742591,
        "ErrorCode": "0",
        "Amount": 3500,
    }
    note["Token"] = token(note, PAYMENTS["tbank_password"])
    return json.dumps(note).encode()


class Shop:
    """Every request of the run, each one sent as its client sends it, the first time and again."""

    def __init__(self, base: str, callback_url: str) -> None:
        self.base = base
        self.client = httpx.Client(base_url=base, timeout=30)
        self.callback_url = callback_url
        self.token = ""

    def atol(self) -> httpx.Response:
        if not self.token:
            got = self.client.post(
                "/possystem/v5/getToken", json={"login": LOGIN, "pass": PASSWORD}
            )
            self.token = got.json()["token"]
        return self.client.post(
            "/possystem/v5/main/sell",
            content=atol_sell(self.callback_url),
            headers={"Token": self.token, "Content-Type": "application/json; charset=utf-8"},
        )

    def komtet(self) -> httpx.Response:
        body = (ROOT / "samples" / "komtet-sell-card.json").read_bytes()
        url = f"{self.base}/api/shop/v2/queues/main/task"
        signed = komtet_signature(SECRET, "POST", url, body)
        headers = {"Authorization": SHOP, "X-HMAC-Signature": signed}
        return self.client.post(
            url, content=body, headers={**headers, "Content-Type": "application/json"}
        )

    def notify(self, provider: str) -> httpx.Response:
        url = f"/notifications/{HOOK}/{provider}"
        if provider == "yookassa":
            return self.client.post(f"{url}?secret=yk-secret-1", content=yookassa())
        if provider == "cloudpayments":
            body = cloudpayments()
            hmac = signature(body, PAYMENTS["cloudpayments_secret"].encode())
            form = "application/x-www-form-urlencoded"
            return self.client.post(
                url, content=body, headers={"Content-HMAC": hmac, "Content-Type": form}
            )
        return self.client.post(url, content=tbank(), headers={"Content-Type": "application/json"})

    def every_one(self) -> dict[str, str]:
        """Send each request once; the job (uuid, task id, X-Kassa-Job) each answered."""
        jobs: dict[str, str] = {}
        sold = self.atol()
        assert sold.status_code == 200, sold.text
        jobs["atol-sell-card"] = sold.json()["uuid"].replace("-", "")
        task = self.komtet()
        assert task.status_code == 200, task.text
        jobs["komtet-sell-card"] = task.json()["id"]
        for provider, payment in (
            ("yookassa", "2ecf1a3c-000f-5000-8000-1f0a8b3c7d10"),
            ("cloudpayments", "1211506522"),
            ("tbank", "8742591"),
        ):
            answer = self.notify(provider)
            assert answer.status_code == 200, (provider, answer.text)
            jobs[f"{provider}:{payment}:payment"] = answer.headers["X-Kassa-Job"]
        return jobs

    def again(self) -> dict[str, str]:
        """Send each request again; the job each repeat names."""
        jobs: dict[str, str] = {}
        sold = self.atol()
        assert sold.status_code == 400 and sold.json()["error"]["code"] == 33, sold.text
        jobs["atol-sell-card"] = sold.json()["uuid"].replace("-", "")
        task = self.komtet()
        assert task.status_code == 422, task.text
        assert task.json()["code"] == "external_id.duplicate", task.text
        jobs["komtet-sell-card"] = task.json()["task"]["id"]
        for provider, payment in (
            ("yookassa", "2ecf1a3c-000f-5000-8000-1f0a8b3c7d10"),
            ("cloudpayments", "1211506522"),
            ("tbank", "8742591"),
        ):
            answer = self.notify(provider)
            assert answer.status_code == 200, (provider, answer.text)
            jobs[f"{provider}:{payment}:payment"] = answer.headers["X-Kassa-Job"]
        return jobs


def test_every_front_door_fiscalizes_once_across_a_kill_and_resubmits() -> None:
    door = HttpDoorSetup(
        options={"callback_backoff": 0.1, "callback_attempts": 50},
        komtet=(SHOP, SECRET),
        payments=PAYMENTS,
    )
    login = (LOGIN, hash_password(PASSWORD))
    with (
        receiving() as receiver,
        emulator_fleet(2) as fleet,
        service_folder(
            [f"tcp://127.0.0.1:{port}" for port in fleet.ports], http=login, door=door
        ) as setup,
    ):
        process = start_service(setup)
        try:
            shop = Shop(setup.http, receiver.url)
            first = shop.every_one()
            process.kill()  # SIGKILL, right after the answers: no goodbye
            process.wait()
            assert receiver.delivered == []
            receiver.accept.set()
            process = start_service(setup)
            shop.client = httpx.Client(base_url=setup.http, timeout=30)
            assert shop.again() == first  # the first job, each of them
            states = settle(setup, set(first), 60)
            uid = first["atol-sell-card"]
            for _ in range(300):  # the callback the kill left pending
                if receiver.delivered:
                    break
                trio.run(trio.sleep, 0.05)
        finally:
            stop_child(process)
        journal = read_journal(setup)
        signed, _ = trio.run(read_archives, fleet.ports)

    assert all(states.get(e) in ON_FN for e in first), states
    by_external_id = Counter(job.external_id for job in journal.jobs.values())
    assert all(by_external_id[e] == 1 for e in first), by_external_id
    on_fn = Counter(receipt.marker for receipt in signed)
    assert {e: on_fn[job[:MARKER_LENGTH]] for e, job in first.items()} == dict.fromkeys(first, 1)
    known = {job_id[:MARKER_LENGTH] for job_id in journal.jobs}
    assert set(on_fn) <= known, on_fn  # nothing stray either
    assert [(d["uuid"].replace("-", ""), d["status"]) for d in receiver.delivered] == [
        (uid, "done")
    ]
