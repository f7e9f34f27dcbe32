"""The ZeroMQ service over real sockets: CURVE, ZAP tenants, every operation, abuse, restarts.

The service runs in its own thread with its own trio run (the real clock: real sockets), on an
in-memory emulated fleet; the tests talk to it as any client would, through plain blocking
pyzmq DEALER and SUB sockets with receive timeouts.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import attrs
import msgpack
import pytest
import trio
import zmq
import zmq.utils.z85
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine.engine as engine_module
import engine.service as service_module
from emulator.serve import MemoryFleet, open_memory_fleet
from engine import samples
from engine.cli import main as kassa
from engine.config import TenantConfig
from engine.engine import Engine, JobEvent
from engine.journal import Job, JobState
from engine.limits import SizeLimits
from engine.service import SOCKET_CAP, Service, open_service, tenant_of_user, zap_reply
from engine.service_config import (
    ConfigError,
    ServiceSettings,
    load_config,
    write_certificate,
)
from engine.tenancy import TokenBucket
from engine.wire import OPERATIONS
from protocols.atol import taxes as atol_taxes
from protocols.documents.json_format import receipt_to_json
from protocols.ingress import dump_json, to_atol_v5, to_komtet_task
from protocols.ingress.atol_v5 import AtolRequest
from protocols.ingress.komtet import KomtetTask
from protocols.shtrih import taxes as shtrih_taxes
from tests.engine.fleet import assert_exactly_once, fleet_config

T = TypeVar("T")
CORPUS = Path(__file__).parents[1] / "protocols" / "corpus"
FINAL = {"fiscalized", "failed", "resolved"}
NOTHING = 0.7  # seconds to wait for an answer that must not come


@attrs.frozen
class Keys:
    public: bytes  # Z85
    secret: bytes

    @classmethod
    def new(cls) -> Keys:
        public, secret = zmq.curve_keypair()
        return cls(public, secret)

    @property
    def raw(self) -> bytes:
        return bytes(zmq.utils.z85.decode(self.public))


SERVER = Keys.new()
A1, A2, B1, STRANGER = Keys.new(), Keys.new(), Keys.new(), Keys.new()


def kassa_receipt(price: int = 129_900) -> dict[str, Any]:
    return {"format": "kassa", "body": receipt_to_json(samples.card_sale(price))}


# --- the service in a thread --------------------------------------------------------------------


class Running:
    """A service on an emulated fleet, in a thread of its own; ``restart`` keeps the fleet."""

    def __init__(
        self,
        folder: Path,
        *,
        owners: tuple[str, ...] = ("a", "b"),
        queue: int = 10_000,
        rate: float = 1e6,
        burst: int = 1_000_000,
        listen: str = "tcp://127.0.0.1:*",
        events_host: str = "127.0.0.1",
    ) -> None:
        self.owners = owners
        self.journal = folder / "journal.db"
        self.settings = ServiceSettings(
            listen=listen,
            server_public=SERVER.public,
            server_secret=SERVER.secret,
            clients={A1.raw: "a", A2.raw: "a", B1.raw: "b"},
            events_host=events_host,
            rate=rate,
            burst=burst,
        )
        self.tenants = tuple(TenantConfig(t, queue_limit=queue) for t in dict.fromkeys(owners))
        self.service: Service | None = None
        self.fleet: MemoryFleet | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._next: trio.Event | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._thread_main, daemon=True)
        self._thread.start()
        self._wait_ready()

    @property
    def endpoint(self) -> str:
        assert self.service is not None
        return self.service.endpoint

    @property
    def engine(self) -> Engine:
        assert self.service is not None and self.service.engine is not None
        return self.service.engine

    def _thread_main(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:
            self._failure = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        now = dt.datetime.now(ZoneInfo("Europe/Moscow")).replace(tzinfo=None, microsecond=0)
        async with open_memory_fleet(len(self.owners), start=now) as fleet:
            self.fleet = fleet
            config = fleet_config(
                fleet, self.journal, tenants=self.tenants, owners=self.owners, wall_clock=time.time
            )
            while not self._stopping:
                self._next = trio.Event()
                async with open_service(self.settings, config) as service:
                    self.service = service
                    self._ready.set()
                    await self._next.wait()
                self.service = None

    def _wait_ready(self) -> None:
        assert self._ready.wait(20), "the service did not start"
        if self._failure is not None:
            raise self._failure

    def run(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn`` in the service's trio run (to look at the engine or the fleet)."""
        return trio.from_thread.run(fn, trio_token=self._token)

    def _wake(self) -> None:
        assert self._next is not None
        self._next.set()

    def restart(self) -> None:
        """Stop the engine and the service (the journal and the fleet stay), start them again."""
        self._ready.clear()
        trio.from_thread.run_sync(self._wake, trio_token=self._token)
        self._wait_ready()

    def stop(self) -> None:
        self._stopping = True
        if self._thread.is_alive():
            trio.from_thread.run_sync(self._wake, trio_token=self._token)
        self._thread.join(20)
        assert not self._thread.is_alive()
        if self._failure is not None:
            raise self._failure


class Client:
    """A blocking DEALER with CURVE keys (or none), as any program could write one."""

    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        endpoint: str,
        keys: Keys | None,
        *,
        server: bytes = SERVER.public,
        delimiter: bool = True,
    ) -> None:
        self.socket = context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        if keys is not None:
            self.socket.curve_serverkey = server
            self.socket.curve_publickey = keys.public
            self.socket.curve_secretkey = keys.secret
        self.socket.connect(endpoint)
        self.delimiter = delimiter
        self.ids = 0

    def send_frame(self, frame: bytes) -> None:
        self.socket.send_multipart([b"", frame] if self.delimiter else [frame])

    def send(self, op: str, request_id: Any = None, **args: Any) -> Any:
        if request_id is None:
            self.ids += 1
            request_id = self.ids
        self.send_frame(msgpack.packb({"v": 1, "id": request_id, "op": op, **args}))
        return request_id

    def recv(self, timeout: float = 10.0) -> dict[str, Any] | None:
        if not self.socket.poll(int(timeout * 1000)):
            return None
        frames = self.socket.recv_multipart()
        assert frames[:-1] == ([b""] if self.delimiter else []), frames
        answer: dict[str, Any] = msgpack.unpackb(frames[-1])
        return answer

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        request_id = self.send(op, **args)
        while True:
            answer = self.recv()
            assert answer is not None, f"no answer to {op}"
            if answer["id"] == request_id:
                return answer

    def ok(self, op: str, **args: Any) -> dict[str, Any]:
        answer = self.call(op, **args)
        assert answer["ok"], answer
        result: dict[str, Any] = answer["result"]
        return result

    def error(self, op: str, **args: Any) -> dict[str, Any]:
        answer = self.call(op, **args)
        assert not answer["ok"], answer
        error: dict[str, Any] = answer["error"]
        return error

    def wait_final(self, job_id: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job: dict[str, Any] = self.ok("status", job_id=job_id)["job"]
            if job["state"] in FINAL:
                return job
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} is not final after {timeout} s")

    def close(self) -> None:
        self.socket.close(linger=0)


def subscriber(
    context: zmq.Context[zmq.Socket[bytes]], endpoint: str, keys: Keys | None
) -> zmq.Socket[bytes]:
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    if keys is not None:
        sub.curve_serverkey = SERVER.public
        sub.curve_publickey = keys.public
        sub.curve_secretkey = keys.secret
    sub.setsockopt(zmq.SUBSCRIBE, b"job")
    sub.connect(endpoint)
    return sub


def events_of(sub: zmq.Socket[bytes], job_id: str, until: str, timeout: float) -> list[str]:
    """The states of ``job_id``'s events until ``until`` arrives (or the time is up)."""
    states: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not sub.poll(50):
            continue
        topic, body = sub.recv_multipart()
        assert topic == b"job"
        event = msgpack.unpackb(body)
        assert event["v"] == 1 and event["event"] == "job"
        if event["job"]["id"] == job_id:
            states.append(event["job"]["state"])
            if event["job"]["state"] == until:
                assert event["fiscal"] is not None or until != "fiscalized"
                break
    return states


@pytest.fixture(scope="module")
def context() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    yield ctx
    ctx.term()


@pytest.fixture(scope="module")
def kassa_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """Tenants a (kkt-0) and b (kkt-1), shared by the tests that do not need a service alone."""
    running = Running(tmp_path_factory.mktemp("kassa"))
    yield running
    running.stop()


@pytest.fixture
def clients(
    context: zmq.Context[zmq.Socket[bytes]],
) -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def make(endpoint: str, keys: Keys | None, **options: Any) -> Client:
        client = Client(context, endpoint, keys, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


# --- every operation ----------------------------------------------------------------------------


def test_every_operation_of_the_protocol(
    kassa_service: Running, clients: Callable[..., Client]
) -> None:
    a = clients(kassa_service.endpoint, A1)
    pong = a.ok("ping")
    assert pong["pong"] is True and pong["tenant"] == "a"
    assert abs(pong["time"] - time.time()) < 5
    assert pong["time_zone"] == "Europe/Moscow"  # the tenant's, as every job says too
    registers = a.ok("registers")["registers"]
    assert [r["id"] for r in registers] == ["kkt-0"]
    assert set(registers[0]) == {
        *("id", "group", "protocol", "state", "fn_number", "fn_expires", "fn_days_left"),
        *("ofd_unsent", "ofd_oldest", "ofd_oldest_days"),
    }
    assert a.ok("events")["endpoint"].startswith("tcp://127.0.0.1:")

    first = a.ok("submit", external_id="every-1", receipt=kassa_receipt())
    assert first["duplicate"] is False and first["job"]["state"] == "queued"
    assert first["job"]["time_zone"] == "Europe/Moscow"
    job_id = first["job"]["id"]
    again = a.ok("submit", external_id="every-1", receipt=kassa_receipt())
    assert again["duplicate"] is True and again["job"]["id"] == job_id

    atol = to_atol_v5(AtolRequest("x", dt.datetime(2026, 3, 2), samples.card_sale(99_00)))[1]
    sale = samples.card_sale(55_00)
    sale = attrs.evolve(sale, company=attrs.evolve(sale.company, email=None))
    komtet = to_komtet_task(KomtetTask("y", sale))
    batch = a.ok(
        "submit_batch",
        jobs=[
            {"external_id": "every-2", "receipt": {"format": "atol_v5", "body": dump_json(atol)}},
            {"external_id": "every-3", "receipt": {"format": "komtet", "body": dump_json(komtet)}},
            {"external_id": "every-4", "receipt": {"format": "kassa", "body": {"kind": "?"}}},
            {"external_id": "every-1", "receipt": kassa_receipt()},
            {"external_id": "every-5", "receipt": kassa_receipt(1_00)},
        ],
    )["results"]
    assert [r.get("duplicate") for r in batch] == [False, False, None, True, False]
    assert batch[2]["error"]["code"] == "bad_request"
    assert batch[2]["error"]["path"] == "jobs[2].receipt.body.kind"
    assert batch[3]["job"]["id"] == job_id
    # The register serves one job at a time: the last of the batch is still waiting.
    cancelled = a.ok("cancel", job_id=batch[4]["job"]["id"])["job"]
    assert (cancelled["state"], cancelled["error"]) == ("failed", "cancelled")

    ids = [job_id, batch[0]["job"]["id"], batch[1]["job"]["id"]]
    for each in ids:
        assert a.wait_final(each)["state"] == "fiscalized"
    by_external = a.ok("status", external_id="every-2")["job"]
    assert by_external["id"] == ids[1] and by_external["register"] == "kkt-0"
    assert a.error("cancel", job_id=job_id)["code"] == "not_cancellable"

    receipt = a.ok("receipt", job_id=job_id)
    fiscal = receipt["fiscal"]
    assert isinstance(fiscal["fiscal_sign"], bytes) and len(fiscal["fiscal_sign"]) == 6
    assert isinstance(fiscal["document"], bytes) and fiscal["fd_number"] > 0
    assert fiscal["qr"].startswith("t=") and f"fp={fiscal['printed_sign']}" in fiscal["qr"]
    assert [(line["n"], line["quantity"], line["price"]) for line in receipt["lines"]] == [
        (1, "1", 129_900),
        (2, "1", 30_000),
    ]
    assert "Наушники беспроводные" in receipt["text"]
    assert a.ok("receipt", external_id="every-5")["fiscal"] is None  # cancelled: never signed

    page = a.ok("list_jobs", limit=2)
    assert len(page["jobs"]) == 2 and page["next"] == page["jobs"][1]["id"]
    rest = a.ok("list_jobs", after=page["next"], limit=1000)
    listed = {j["id"] for j in page["jobs"] + rest["jobs"]}
    assert set(ids) <= listed and rest["next"] is None

    report = a.ok("report", start=0, end=time.time() + 60)
    assert report["report"]["tenant"] == "a" and report["report"]["totals"]["receipts"] >= 3
    assert "kkt-0" in report["text"]
    assert a.ok("report", start=0, end=time.time() + 60, register="kkt-0")["report"]

    a.send("export", request_id="exp", form="csv")
    chunks = []
    while True:
        answer = a.recv()
        assert answer is not None and answer["id"] == "exp" and answer["ok"], answer
        chunks.append(answer["result"])
        if not answer["result"]["more"]:
            break
    assert [c["seq"] for c in chunks] == list(range(len(chunks)))
    exported = "".join(c["chunk"] for c in chunks)
    assert all(each in exported for each in ids)

    assert a.ok("shift", register="kkt-0", action="close")["changed"] is True
    assert a.ok("shift", register="kkt-0", action="close")["changed"] is False
    assert a.ok("shift", register="kkt-0", action="open")["changed"] is True
    assert a.error("status", job_id="no-such-job")["code"] == "not_found"
    assert a.error("shift", register="kkt-9", action="open")["code"] == "not_found"


def test_strict_types_and_the_engine_s_refusals(
    kassa_service: Running, clients: Callable[..., Client]
) -> None:
    a = clients(kassa_service.endpoint, A2)  # the tenant's second key
    assert a.ok("ping")["tenant"] == "a"
    for price in ("1.9", 1.9):
        receipt = kassa_receipt()
        receipt["body"]["items"][0]["price"] = price
        error = a.error("submit", external_id="money", receipt=receipt)
        assert (error["code"], error["path"]) == ("bad_request", "receipt.body.items[0].price")
    receipt = kassa_receipt()
    receipt["body"]["items"][0]["sum"] = 1  # the checks run all at once, with body paths
    error = a.error("submit", external_id="money", receipt=receipt)
    assert error["code"] == "validation"
    assert "receipt.body.items[0].sum" in [p["path"] for p in error["problems"]]
    assert a.error("status", external_id="money")["code"] == "not_found"  # nothing journaled

    a.ok("submit", external_id="strict-1", receipt=kassa_receipt())
    error = a.error("submit", external_id="strict-1", receipt=kassa_receipt(1_00))
    assert (error["code"], error["path"]) == ("conflict", "external_id")
    error = a.error("submit", external_id="strict-2", receipt=kassa_receipt(), group="night")
    assert (error["code"], error["path"]) == ("bad_request", "group")
    assert a.error("list_jobs", limit=True)["path"] == "limit"
    assert a.error("submit", external_id=5, receipt=kassa_receipt())["path"] == "external_id"


# --- tenants ------------------------------------------------------------------------------------


def test_a_tenant_sees_and_touches_only_its_own(
    kassa_service: Running,
    clients: Callable[..., Client],
    context: zmq.Context[zmq.Socket[bytes]],
) -> None:
    a, b = clients(kassa_service.endpoint, A1), clients(kassa_service.endpoint, B1)
    b_events = b.ok("events")["endpoint"]
    assert b_events != a.ok("events")["endpoint"]
    own = subscriber(context, b_events, B1)
    intruder = subscriber(context, b_events, A1)
    stranger = subscriber(context, b_events, STRANGER)
    try:
        time.sleep(0.3)  # let the subscriptions arrive
        job = b.ok("submit", external_id="b-1", receipt=kassa_receipt())["job"]
        states = events_of(own, job["id"], "fiscalized", timeout=20)
        assert states[-1:] == ["fiscalized"], states
        assert not intruder.poll(100) and not stranger.poll(100)
    finally:
        for sub in (own, intruder, stranger):
            sub.close(linger=0)
    b_job = job["id"]
    assert b.ok("status", job_id=b_job)["job"]["state"] == "fiscalized"
    for op, args in [
        ("status", {"job_id": b_job}),
        ("status", {"external_id": "b-1"}),
        ("receipt", {"job_id": b_job}),
        ("receipt", {"external_id": "b-1"}),
        ("cancel", {"job_id": b_job}),
        ("shift", {"register": "kkt-1", "action": "close"}),
        ("report", {"start": 0, "end": time.time() + 60, "register": "kkt-1"}),
    ]:
        error = a.error(op, **args)
        assert error["code"] == "not_found", (op, error)
    assert all(r["id"] != "kkt-1" for r in a.ok("registers")["registers"])
    assert b_job not in {j["id"] for j in a.ok("list_jobs", limit=1000)["jobs"]}
    assert a.ok("report", start=0, end=time.time() + 60)["report"]["tenant"] == "a"
    a.send("export", request_id="e", form="jsonl")
    exported = ""
    while (answer := a.recv()) is not None:
        exported += answer["result"]["chunk"]
        if not answer["result"]["more"]:
            break
    assert b_job not in exported
    # A's own submit of B's external id is A's own job, not B's.
    mine = a.ok("submit", external_id="b-1", receipt=kassa_receipt())
    assert mine["duplicate"] is False and mine["job"]["id"] != b_job


def test_unauthenticated_and_wrong_key_clients_get_nothing(
    kassa_service: Running, clients: Callable[..., Client]
) -> None:
    endpoint = kassa_service.endpoint
    plain = clients(endpoint, None)  # no CURVE at all
    stranger = clients(endpoint, STRANGER)  # a key no tenant has
    wrong_server = clients(endpoint, A1, server=Keys.new().public)  # not Kassa's key
    for client in (plain, stranger, wrong_server):
        client.send("ping")
    time.sleep(NOTHING)
    for client in (plain, stranger, wrong_server):
        assert client.recv(timeout=0.01) is None
    assert clients(endpoint, A1).ok("ping")["tenant"] == "a"
    assert kassa_service.service is not None and kassa_service.service.unauthenticated == 0


def test_zap_answers_by_domain_and_key() -> None:
    keys = {A1.raw: "a", B1.raw: "b"}

    def ask(domain: bytes, key: bytes, mechanism: bytes = b"CURVE") -> list[bytes] | None:
        return zap_reply([b"1.0", b"7", domain, b"127.0.0.1", b"", mechanism, key], keys)

    user = A1.raw.hex().encode()  # the key: each request looks its tenant up again
    assert ask(b"requests", A1.raw) == [b"1.0", b"7", b"200", b"OK", user, b""]
    assert ask(b"events:a", A1.raw) == [b"1.0", b"7", b"200", b"OK", user, b""]
    assert tenant_of_user(user, keys) == "a"
    assert tenant_of_user(b"", keys) is None
    assert tenant_of_user(b"not hex", keys) is None
    assert tenant_of_user(STRANGER.raw.hex().encode(), keys) is None
    for refused in (
        ask(b"events:b", A1.raw),
        ask(b"requests", STRANGER.raw),
        ask(b"other", A1.raw),
        ask(b"requests", A1.raw, b"PLAIN"),
        zap_reply([b"2.0", b"7", b"requests", b"", b"", b"CURVE", A1.raw], keys),
    ):
        assert refused is not None and refused[2] == b"400"
    assert zap_reply([b"1.0"], keys) is None


# --- malformed input ----------------------------------------------------------------------------


def test_malformed_frames_are_answered(
    kassa_service: Running, clients: Callable[..., Client]
) -> None:
    endpoint = kassa_service.endpoint
    a = clients(endpoint, A1)
    a.send_frame(b"\xc1not msgpack")
    answer = a.recv()
    assert answer is not None and answer["id"] is None
    assert answer["error"]["code"] == "bad_request"
    a.send_frame(msgpack.packb([1, 2, 3]))
    assert (answer := a.recv()) is not None and answer["error"]["code"] == "bad_request"
    deep: Any = 0
    for _ in range(40):
        deep = [deep]
    a.send("ping", request_id=99, junk=deep)
    answer = a.recv()
    assert answer is not None and (answer["id"], answer["error"]["code"]) == (99, "too_deep")
    a.socket.send_multipart([b"", b"x", b"y"])  # more frames than one request
    assert a.socket.poll(10_000)
    *envelope, last = a.socket.recv_multipart()
    assert envelope == [b"", b"x"]  # the envelope as it came
    assert msgpack.unpackb(last)["error"]["code"] == "bad_request"
    bare = clients(endpoint, A1, delimiter=False)  # no empty delimiter: none comes back either
    assert bare.ok("ping")["tenant"] == "a"


# --- oversized input ----------------------------------------------------------------------------


def big_komtet(size: int) -> dict[str, Any]:
    """A KOMTET receipt of about ``size`` bytes: a good one with a long unknown field."""
    body = json.loads((CORPUS / "komtet-buy.json").read_text(encoding="utf-8"))
    body["x"] = "a" * size
    return {"format": "komtet", "body": dump_json(body)}


def test_a_10_mb_submit_is_answered_too_large_at_once_and_only_absurd_frames_dropped(
    kassa_service: Running, clients: Callable[..., Client]
) -> None:
    a = clients(kassa_service.endpoint, A1)
    frame = msgpack.packb(
        {"v": 1, "id": "big", "op": "submit", "external_id": "big-1", "receipt": big_komtet(10**7)}
    )
    a.send_frame(frame)
    answer = a.recv(timeout=60)  # a deadline only: the answer comes at once
    assert answer == {
        "v": 1,
        "id": "big",
        "ok": False,
        "error": {
            "code": "too_large",
            "message": f"a request of {len(frame)} bytes is over this service's limit "
            "of 4194304 bytes (4 MiB)",
            "path": "",
            "limit": 4 << 20,
            "size": len(frame),
        },
    }
    assert a.ok("ping")["tenant"] == "a"  # the same connection goes on
    assert clients(kassa_service.endpoint, B1).ok("ping")["tenant"] == "b"
    assert a.error("status", external_id="big-1")["code"] == "not_found"  # nothing journaled

    # Above SOCKET_CAP, more than any service may take, libzmq drops the frame and the
    # connection: no answer, by design; the DEALER reconnects by itself.
    absurd = clients(kassa_service.endpoint, B1)
    absurd.send("ping", request_id="absurd", junk=b"x" * SOCKET_CAP)
    assert absurd.recv(timeout=NOTHING) is None
    assert absurd.ok("ping")["tenant"] == "b"
    assert a.ok("ping")["tenant"] == "a"


def test_a_receipt_over_its_limit_is_too_large_at_its_path_and_in_a_batch_per_entry(
    kassa_service: Running, clients: Callable[..., Client]
) -> None:
    a = clients(kassa_service.endpoint, A1)
    big = big_komtet(300_000)  # over the 256 KiB of one receipt, well under a request
    size = len(msgpack.packb(big))
    error = a.error("submit", external_id="big-2", receipt=big)
    assert error == {
        "code": "too_large",
        "message": f"a receipt of {size} bytes is over this service's limit "
        "of 262144 bytes (256 KiB)",
        "path": "receipt",
        "limit": 256 << 10,
        "size": size,
    }
    entry = {"external_id": "big-3", "receipt": big}
    jobs = [{"external_id": f"fit-{i}", "receipt": kassa_receipt(1000 + i)} for i in range(2)]
    results = a.ok("submit_batch", jobs=[jobs[0], entry, jobs[1]])["results"]
    assert [r.get("job", {}).get("external_id") for r in results] == ["fit-0", None, "fit-1"]
    assert results[1]["error"]["code"] == "too_large"
    assert results[1]["error"]["path"] == "jobs[1]"
    assert results[1]["error"]["size"] == len(msgpack.packb(entry))
    assert a.error("status", external_id="big-3")["code"] == "not_found"


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(),
    st.text(max_size=12),
    st.binary(max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
ARGUMENTS = ("external_id", "receipt", "jobs", "job_id", "limit", "start", "end", "form",
             "register", "action", "after", "group")  # fmt: skip
fuzzed = st.fixed_dictionaries(
    {"v": st.one_of(st.just(1), values), "op": st.one_of(st.sampled_from(OPERATIONS), values)},
    optional={key: values for key in ARGUMENTS},
)


@pytest.fixture(scope="module")
def fuzz_client(
    kassa_service: Running, context: zmq.Context[zmq.Socket[bytes]]
) -> Iterator[Client]:
    """One client for every example (a function's fixture is made once per test, not example)."""
    client = Client(context, kassa_service.endpoint, B1)
    yield client
    client.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=fuzzed)
def test_random_requests_are_answered_and_the_service_keeps_going(
    fuzz_client: Client, request: dict[str, Any]
) -> None:
    client = fuzz_client
    client.ids += 1
    request_id = f"fuzz-{client.ids}"
    client.send_frame(msgpack.packb({**request, "id": request_id}, use_bin_type=True))
    while True:
        answer = client.recv()
        assert answer is not None, request
        assert answer["id"] == request_id, answer
        if not answer["ok"]:
            assert answer["error"]["code"] != "internal", answer
            break
        if not answer["result"].get("more"):  # an export streams until more is false
            break
    assert client.ok("ping")["pong"] is True


# --- load, rate and overload ----------------------------------------------------------------------


def test_pipelined_pings_each_come_back_once(
    kassa_service: Running, clients: Callable[..., Client]
) -> None:
    client = clients(kassa_service.endpoint, A1)
    total, window = 3_000, 64
    sent = 0
    seen: set[int] = set()
    started = time.perf_counter()
    while len(seen) < total:
        while sent < total and sent - len(seen) < window:
            client.send("ping", request_id=sent)
            sent += 1
        answer = client.recv()
        assert answer is not None and answer["ok"] and answer["id"] not in seen
        seen.add(answer["id"])
    elapsed = time.perf_counter() - started
    assert seen == set(range(total)) and elapsed < 20
    print(f"{total / elapsed:.0f} pings/s, 64 in flight, one process")


def test_ten_reports_of_one_tenant_hold_up_nothing_of_another(
    kassa_service: Running, clients: Callable[..., Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tenant a's reports are held in the report's computation, a seam that waits to be let
    go: meanwhile tenant b is answered, a ping, a status, a report of its own."""
    entered, release = threading.Event(), threading.Event()
    compute = engine_module.operations_report

    def held(*args: Any, **kwargs: Any) -> Any:
        if kwargs["tenant"] == "a":
            entered.set()
            release.wait(30)
        return compute(*args, **kwargs)

    monkeypatch.setattr(engine_module, "operations_report", held)
    a, b = clients(kassa_service.endpoint, A1), clients(kassa_service.endpoint, B1)
    reports = [a.send("report", start=0, end=4e9) for _ in range(10)]
    try:
        assert entered.wait(10), "tenant a's report never started"
        b.send("ping")
        pong = b.recv(timeout=5)
        assert pong is not None and pong["result"]["tenant"] == "b", pong
        assert b.error("status", job_id="no-such-job")["code"] == "not_found"
        assert "text" in b.ok("report", start=0, end=4e9)
        assert not release.is_set() and a.recv(timeout=0.1) is None  # a's are still held
    finally:
        release.set()
    answers = [a.recv() for _ in reports]
    assert sorted(answer["id"] for answer in answers if answer and answer["ok"]) == reports


def test_a_big_request_is_decoded_in_its_tenant_s_turn_off_the_loop(
    kassa_service: Running, clients: Callable[..., Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request over INLINE_BYTES is decoded by a worker thread: held there, b goes on."""
    entered, release = threading.Event(), threading.Event()
    decode = service_module.decode_request

    def held(frame: bytes, *args: Any) -> Any:
        if len(frame) > service_module.INLINE_BYTES:
            entered.set()
            release.wait(30)
        return decode(frame, *args)

    monkeypatch.setattr(service_module, "decode_request", held)
    a, b = clients(kassa_service.endpoint, A1), clients(kassa_service.endpoint, B1)
    big = a.send("ping", pad="x" * (service_module.INLINE_BYTES + 1))
    try:
        assert entered.wait(10), "the big request was never decoded"
        b.send("ping")
        pong = b.recv(timeout=5)
        assert pong is not None and pong["ok"], pong
    finally:
        release.set()
    answer = a.recv()
    assert answer is not None and answer["id"] == big
    assert (answer["error"]["code"], answer["error"]["path"]) == ("bad_request", "pad")


def test_answers_left_unread_past_the_high_water_marks_are_dropped_and_told(
    kassa_service: Running, clients: Callable[..., Client]
) -> None:
    """3,000 answers of 7 KB each, none read until all are sent: about 2,000 fit (the
    service's and the client's high-water marks), and the client is told of the rest."""
    assert kassa_service.service is not None
    service = kassa_service.service
    client = clients(kassa_service.endpoint, A1)
    total, name = 3_000, "x" * 7_000  # a bad_request quotes the unknown argument as its path
    before = service.answers_sent + service.answers_dropped
    for n in range(total):
        client.send("ping", request_id=n, **{name: 1})
    deadline = time.monotonic() + 30
    while service.answers_sent + service.answers_dropped - before < total:
        assert time.monotonic() < deadline, "the service did not answer in time"
        time.sleep(0.05)
    answered: set[int] = set()
    notices: list[dict[str, Any]] = []
    while (answer := client.recv(timeout=2)) is not None:
        if answer["id"] is None:
            notices.append(answer["error"])
        else:
            assert answer["error"]["path"] == name, answer["error"]["code"]
            answered.add(answer["id"])
    assert notices, f"{total - len(answered)} answers dropped without a word"
    assert {notice["code"] for notice in notices} == {"dropped"}
    assert len(answered) + sum(notice["dropped"] for notice in notices) == total
    assert client.ok("ping")["pong"] is True  # and the connection goes on


def test_rate_limiting_answers_with_retry_after(
    tmp_path: Path, clients: Callable[..., Client]
) -> None:
    running = Running(tmp_path, owners=("a",), rate=5.0, burst=5)
    try:
        client = clients(running.endpoint, A1)
        for n in range(20):
            client.send("ping", request_id=n)
        answers = [client.recv() for _ in range(20)]
        assert all(a is not None for a in answers)
        passed = [a for a in answers if a is not None and a["ok"]]
        limited = [a["error"] for a in answers if a is not None and not a["ok"]]
        assert 5 <= len(passed) <= 7, answers
        assert {e["code"] for e in limited} == {"rate_limited"}
        assert all(0 < e["retry_after"] <= 1.0 for e in limited)
        time.sleep(max(e["retry_after"] for e in limited))
        assert client.ok("ping")["pong"] is True
    finally:
        running.stop()


def test_busy_under_overload_and_nothing_accepted_is_lost(
    tmp_path: Path, clients: Callable[..., Client]
) -> None:
    running = Running(tmp_path, owners=("a", "a"), queue=3)
    try:
        client = clients(running.endpoint, A1)
        for n in range(30):  # ten times the queue, all in flight at once
            client.send("submit", request_id=n, external_id=f"load-{n}", receipt=kassa_receipt())
        answers = [client.recv() for _ in range(30)]
        assert all(a is not None for a in answers)
        accepted = [a["result"]["job"]["id"] for a in answers if a is not None and a["ok"]]
        busy = [a["error"] for a in answers if a is not None and not a["ok"]]
        assert {e["code"] for e in busy} <= {"busy"} and all(e["retry_after"] > 0 for e in busy)
        assert 3 <= len(accepted) < 30 and len(accepted) + len(busy) == 30
        for job_id in accepted:
            assert client.wait_final(job_id)["state"] == "fiscalized"

        async def exactly_once() -> None:
            assert running.fleet is not None
            await assert_exactly_once(running.engine, running.fleet, accepted)

        running.run(exactly_once)
    finally:
        running.stop()


def test_a_restart_on_the_same_journal_makes_no_duplicates(
    tmp_path: Path, clients: Callable[..., Client]
) -> None:
    running = Running(tmp_path, owners=("a", "a"))
    try:
        batch = [{"external_id": f"r-{n}", "receipt": kassa_receipt(10_000 + n)} for n in range(6)]
        first = clients(running.endpoint, A1).ok("submit_batch", jobs=batch)["results"]
        ids = [r["job"]["id"] for r in first]
        running.restart()  # mid-flight: some jobs are signed, some are not yet
        client = clients(running.endpoint, A1)
        again = client.ok("submit_batch", jobs=batch)["results"]
        assert [r["job"]["id"] for r in again] == ids
        assert all(r["duplicate"] for r in again)
        for job_id in ids:
            assert client.wait_final(job_id)["state"] in ("fiscalized", "resolved")

        async def exactly_once() -> None:
            assert running.fleet is not None
            await assert_exactly_once(running.engine, running.fleet, ids)

        running.run(exactly_once)
    finally:
        running.stop()


def test_requests_and_events_over_ipc(
    tmp_path: Path,
    clients: Callable[..., Client],
    context: zmq.Context[zmq.Socket[bytes]],
) -> None:
    running = Running(
        tmp_path,
        owners=("a",),
        listen=f"ipc://{tmp_path}/kassa.sock",
        events_host=f"ipc://{tmp_path}",
    )
    try:
        client = clients(running.endpoint, A1)
        assert client.ok("ping")["tenant"] == "a"
        endpoint = client.ok("events")["endpoint"]
        assert endpoint == f"ipc://{tmp_path}/a.events"
        sub = subscriber(context, endpoint, A2)
        try:
            time.sleep(0.3)
            job = client.ok("submit", external_id="ipc-1", receipt=kassa_receipt())["job"]
            assert events_of(sub, job["id"], "fiscalized", timeout=20)[-1:] == ["fiscalized"]
        finally:
            sub.close(linger=0)
    finally:
        running.stop()


def test_the_token_bucket_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=2)
    assert [bucket.take(0.0), bucket.take(0.0)] == [0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)
    assert bucket.take(0.5) == 0.0
    assert bucket.take(10.0) == 0.0 and bucket.tokens == pytest.approx(1.0)  # capped at burst


# --- kassa.toml and the command line --------------------------------------------------------------


def write_config(folder: Path, text: str) -> Path:
    base = folder / "server"
    write_certificate(base, SERVER.public, SERVER.secret)
    write_certificate(folder / "web", A2.public, A2.secret)
    path = folder / "kassa.toml"
    path.write_text(text)
    return path


GOOD = """
[service]
listen = "tcp://127.0.0.1:0"
events_host = "127.0.0.1"
secret_key_file = "server.key_secret"
journal = "journal.db"

[limits]
rate = 50
burst = 100
queue = 500
request_bytes = 2097152

[[tenants]]
id = "a"
name = "Магазин А"
timezone = "Asia/Yekaterinburg"
daily_close = "23:30"
sell_failed_marking = true
keys = ["{a1}", "web.key"]

[[tenants]]
id = "b"
keys = ["{b1}"]

[[registers]]
id = "kkt-1"
tenant = "a"
protocol = "shtrih"
address = "tcp://10.0.0.5:7778"

[[registers]]
id = "kkt-2"
tenant = "b"
group = "night"
protocol = "atol"
address = "serial:/dev/ttyS0?baud=57600"
tax_table = "legacy"
"""


def good_config() -> str:
    return GOOD.replace("{a1}", A1.public.decode()).replace("{b1}", B1.public.decode())


def test_kassa_toml_becomes_the_engine_s_and_the_service_s_config(tmp_path: Path) -> None:
    loaded = load_config(write_config(tmp_path, good_config()))
    engine, service = loaded.engine, loaded.service
    assert engine.journal == tmp_path / "journal.db"
    a, _ = engine.tenants
    assert (a.id, a.name, a.timezone, a.daily_close, a.queue_limit) == (
        "a",
        "Магазин А",
        "Asia/Yekaterinburg",
        dt.time(23, 30),
        500,
    )
    assert [(r.id, r.tenant, r.group, r.protocol, r.taxes) for r in engine.registers] == [
        ("kkt-1", "a", "main", "shtrih", shtrih_taxes.FIRMWARE_2026),  # the default
        ("kkt-2", "b", "night", "atol", atol_taxes.LEGACY),
    ]
    assert [t.sell_failed_marking for t in engine.tenants] == [True, False]
    assert service.clients == {A1.raw: "a", A2.raw: "a", B1.raw: "b"}
    assert (service.server_public, service.server_secret) == (SERVER.public, SERVER.secret)
    assert (service.rate, service.burst) == (50.0, 100)
    assert service.sizes == SizeLimits(request_bytes=2 << 20, receipt_bytes=256 << 10)
    assert "secret" not in repr(service).lower() or SERVER.secret.decode() not in repr(service)
    assert engine.admission_tolerance == math.inf  # the default: off
    on = good_config().replace("[limits]", "[limits]\nadmission_tolerance = 1.5", 1)
    assert load_config(write_config(tmp_path, on)).engine.admission_tolerance == 1.5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("address = \"tcp://10.0.0.5:7778\"", 'address = "tcp://10.0.0.5"'),
         "registers[0].address: expected tcp://HOST:PORT"),
        (("address = \"serial:/dev/ttyS0?baud=57600\"", 'address = "serial:/dev/ttyS0?baud=x"'),
         "registers[1].address: baud"),
        (('protocol = "atol"', 'protocol = "epson"'), "registers[1].protocol: expected one of"),
        (('tax_table = "legacy"', 'tax_table = "nano-2026"'),
         "registers[1].tax_table: the tax tables of atol registers are 2026, 2025, legacy"),
        (('sell_failed_marking = true', 'sell_failed_marking = "yes"'),
         "tenants[0].sell_failed_marking: expected true or false, got str"),
        (('tenant = "b"', 'tenant = "c"'), "registers[1].tenant: no [[tenants]] table"),
        (('daily_close = "23:30"', 'daily_close = "25:00"'),
         "tenants[0].daily_close: expected HH:MM"),
        (('timezone = "Asia/Yekaterinburg"', 'timezone = "Mars/Olympus"'), "tenants[0].timezone"),
        (('"web.key"', '"missing.key"'), "tenants[0].keys[1]: "),
        (('"web.key"', '"web.key_secret"'), "tenants[0].keys[1]: give the client's public"),
        (('"web.key"', '"short"'), "tenants[0].keys[1]: expected a Z85 public key"),
        (('rate = 50', 'rate = "fast"'), "limits.rate: expected an integer or a number"),
        (('queue = 500', 'queue = 0'), "limits.queue: expected at least 1"),
        (('request_bytes = 2097152', 'request_bytes = 100'),
         "limits.request_bytes: 100 is out of range 1024 to 67108864"),
        (('request_bytes = 2097152', 'request_bytes = 2097152\nreceipt_bytes = 4194304'),
         "limits.receipt_bytes: 4194304 is out of range 1024 to 1048576"),
        (('request_bytes = 2097152', 'request_bytes = 2048\nreceipt_bytes = 4096'),
         "limits.receipt_bytes: 4096 is more than request_bytes 2048"),
        (('request_bytes = 2097152', 'request_bytes = "2 MiB"'),
         "limits.request_bytes: expected an integer, got str"),
        (('journal = "journal.db"', 'journal = "journal.db"\nmax_message = 1048576'),
         "service.max_message: moved: it is limits.request_bytes now"),
        (('journal = "journal.db"', 'journal = 5'), "service.journal: expected a string"),
        (('secret_key_file = "server.key_secret"', 'secret_key_file = "web.key"'),
         "service.secret_key_file: "),
        (('listen = "tcp://127.0.0.1:0"', 'listen = "http://x"'), "service.listen: expected tcp://"),
        (('[limits]', '[limits]\nspeed = 1'), "limits.speed: unknown key"),
        (('[limits]', '[limits]\nadmission_tolerance = 0.5'),
         "limits.admission_tolerance: expected at least 1 (or inf), got 0.5"),
        (('[limits]', '[limits]\nadmission_tolerance = nan'),
         "limits.admission_tolerance: expected at least 1 (or inf), got nan"),
        (('id = "b"', 'id = "a"'), "tenants[1].id: 'a' is listed twice"),
        (('id = "b"', 'id = "b b"'), "tenants[1].id: 'b b': use 1 to 64"),
        (('[service]', '[servise]'), "servise: unknown key"),
    ],
)  # fmt: skip
def test_every_config_mistake_names_file_key_and_problem(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    old, new = change
    text = good_config()
    assert old in text
    path = write_config(tmp_path, text.replace(old, new, 1))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: "), caught.value
    assert message in str(caught.value), caught.value


def test_a_key_of_two_tenants_and_broken_toml_are_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path, good_config().replace(B1.public.decode(), A1.public.decode()))
    with pytest.raises(ConfigError, match=r"tenants\[1\]\.keys: a key of tenant 'a' too"):
        load_config(path)
    path.write_text("[service\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"nowhere\.toml"):
        load_config(tmp_path / "nowhere.toml")


def test_kassa_serve_with_a_bad_config_says_one_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, good_config().replace("queue = 500", "queue = -1"))
    assert kassa(["serve", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "limits.queue: expected at least 1" in err
    assert "Traceback" not in err


def test_kassa_serve_demo_answers_its_own_client_and_stops_on_sigint(
    tmp_path: Path, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine.cli",
            "serve",
            "--demo",
            "--listen",
            "tcp://127.0.0.1:*",
            "--http-listen",
            "127.0.0.1:0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        lines: dict[str, str] = {}
        deadline = time.monotonic() + 30
        while "try" not in lines and time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line, process.stderr.read() if process.stderr else "no output"
            name, _, value = line.partition(":")
            lines[name.strip()] = value.strip()
        server_key = lines["server key"].split()[0].encode()
        secret_file = Path(lines["client key"].split()[0])
        public, secret = zmq.auth.load_certificate(secret_file)
        assert secret is not None and oct(secret_file.stat().st_mode & 0o777) == "0o600"
        client = Client(context, lines["requests"], Keys(public, secret), server=server_key)
        try:
            assert client.ok("ping")["tenant"] == "demo-shop"
            job = client.ok("submit", external_id="demo-1", receipt=kassa_receipt())["job"]
            assert client.wait_final(job["id"])["state"] == "fiscalized"
        finally:
            client.close()
        assert "kassa submit" in lines["try"] and "--server-key" in lines["try"]
        process.send_signal(signal.SIGINT)
        assert process.wait(20) == 0
        assert not secret_file.exists()  # the demo's folder is gone
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_fault_is_an_internal_answer_logged_without_its_message(
    kassa_service: Running, clients: Callable[..., Client], caplog: pytest.LogCaptureFixture
) -> None:
    engine = kassa_service.engine

    secret = "buyer@" + "example.com"  # not in any source line the stack shows

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"receipt body: {secret}")

    client = clients(kassa_service.endpoint, A1)
    engine.report = broken  # type: ignore[method-assign]
    try:
        error = client.error("report", start=0, end=1)
    finally:
        del engine.report
    assert error == {
        "code": "internal",
        "message": "an internal error; it has been logged",
        "path": "",
    }
    assert client.ok("ping")["pong"] is True
    logged = [r.getMessage() for r in caplog.records if r.name == "kassa.service"]
    assert any("internal error in report (tenant a): RuntimeError" in m for m in logged)
    assert not any(secret in m for m in logged)


def test_the_event_buffer_drops_the_oldest_and_counts() -> None:
    settings = ServiceSettings("tcp://127.0.0.1:*", SERVER.public, SERVER.secret, {})
    service = Service(settings, ["a", "b"], event_buffer=2)
    jobs = [
        Job(f"j{n}", "a", f"o{n}", b"", JobState.QUEUED, None, None, 0.0, 0.0) for n in range(5)
    ]
    for job in jobs:
        service.on_event(JobEvent(job))
    service.on_event(JobEvent(attrs.evolve(jobs[0], tenant="nobody")))  # not served: ignored
    assert service.events_dropped == {"a": 3, "b": 0}


CONFIG_FOR_SERVE = """
[service]
listen = "tcp://127.0.0.1:0"
secret_key_file = "server.key_secret"
journal = "journal.db"

[[tenants]]
id = "a"
keys = ["web.key"]

[[registers]]
id = "kkt-1"
tenant = "a"
address = "tcp://127.0.0.1:1"
"""


def test_kassa_serve_with_a_config_serves_until_sigterm(
    tmp_path: Path, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    path = write_config(tmp_path, CONFIG_FOR_SERVE)
    process = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "serve", "--config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("kassa: serving on tcp://127.0.0.1:"), line
        client = Client(context, line.split()[-1], A2)  # web.key is A2's public key
        try:
            assert client.ok("ping")["tenant"] == "a"
            assert client.ok("registers")["registers"][0]["id"] == "kkt-1"
        finally:
            client.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
        assert (tmp_path / "journal.db").exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
