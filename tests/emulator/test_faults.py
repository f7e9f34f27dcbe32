"""Fault injection, observed by Kassa's own v2 host link over in-memory streams in mock time."""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import pytest
import trio
import trio.testing

from emulator.faults import (
    FaultLog,
    FaultPlan,
    FaultRule,
    FaultyRegister,
    FaultyStream,
    PowerLost,
    RegisterFaults,
    fiscalize_with_power_loss,
    parse_faults,
    run_schedule,
    serve_faulty_connection,
)
from emulator.fn import FiscalStorage
from emulator.ofd import OfdServer, WallClock
from emulator.serve import START, make_register
from protocols.documents.model import Company, Item, Payments, Receipt
from protocols.shtrih import (
    NEED_DATA,
    REGISTRY,
    AnswerFrame,
    CommandFrame,
    ErrorAnswer,
    LinkV2Host,
    Timer,
)
from protocols.shtrih import commands as c
from protocols.shtrih.codes import ErrorCode, Mode
from protocols.shtrih.errors import ShtrihError
from protocols.tlv import decode_document

PW = 30
LIMIT = 6 * 3600.0  # simulated seconds: a hang shows up as a timeout, never as a stuck test


# --- a minimal host over a faulty line ------------------------------------------------------


class Host:
    """LinkV2Host over a stream; a lost line becomes ShtrihError, as a driver would report."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.link = LinkV2Host()

    async def _write(self, data: bytes) -> None:
        if data:
            await self.stream.send_all(data)

    async def _raw(self, payload: bytes, timeout: float) -> bytes:
        await self._write(self.link.send(CommandFrame(payload=payload)))
        waits = {Timer.BYTE: 0.1, Timer.LINK: 0.5, Timer.ANSWER: timeout, Timer.NONE: math.inf}
        while True:
            event = self.link.next_event()
            await self._write(self.link.data_to_send())
            if isinstance(event, AnswerFrame):
                return event.payload
            if event is not NEED_DATA:
                continue
            with trio.move_on_after(waits[self.link.timer]) as scope:
                data = await self.stream.receive_some()
            if scope.cancelled_caught:
                self.link.timeout()
                await self._write(self.link.data_to_send())
                continue
            if not data:
                raise ShtrihError("the register closed the connection", "link")
            self.link.receive_data(bytes(data))

    async def call(self, request: c.Request) -> Any:
        spec = REGISTRY[request.CODE]
        try:
            payload = await self._raw(request.encode(), spec.timeout_ms / 1000)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ShtrihError(f"line lost: {exc!r}", "link") from exc
        return c.decode_answer(payload)


def sale(price: int) -> c.Request:
    return c.OperationV2(
        password=PW,
        operation=1,
        quantity=Decimal(1),
        price=price,
        tax_rate=1 << 1,
        department=1,
        payment_method=4,
        payment_object=1,
        name="Товар",
    )


def close(cash: int) -> c.Request:
    return c.CloseReceiptV2(
        password=PW,
        payments=(cash, *([0] * 15)),
        rounding=0,
        tax_sums=(0,) * 6,
        taxation=1,
    )


def error_of(answer: object) -> int:
    return answer.error if isinstance(answer, ErrorAnswer) else 0


class Bench:
    """One faulty register, served over in-memory streams; ``host()`` (re)connects."""

    def __init__(self, register: FaultyRegister, nursery: trio.Nursery) -> None:
        self.register = register
        self.nursery = nursery
        self.current: Host | None = None
        self.connections = 0

    @property
    def log(self) -> FaultLog:
        return self.register.faults.log

    async def host(self) -> Host:
        if self.current is None:
            host_end, device_end = trio.testing.memory_stream_pair()
            self.nursery.start_soon(serve_faulty_connection, device_end, self.register)
            self.current = Host(host_end)
            self.connections += 1
        return self.current

    async def hang_up(self) -> None:
        if self.current is not None:
            await self.current.stream.aclose()
            self.current = None

    async def call(self, request: c.Request) -> Any:
        """One call on a clean retry: reconnect after a ShtrihError, up to 20 times."""
        for _ in range(20):
            try:
                return await (await self.host()).call(request)
            except ShtrihError:
                await self.hang_up()
        raise AssertionError("the line never recovered")

    async def sell(self, price: int, *, recovering: bool = False) -> int:
        """Fiscalize one receipt of ``price`` exactly once; its FD number.

        After a broken link, recovery reads the last document before selling again.
        """
        for attempt in range(20):
            try:
                host = await self.host()
                if attempt or recovering:
                    status = await host.call(c.FnStatus(password=PW))
                    assert isinstance(status, c.FnStatusAnswer)
                    found = await host.call(c.FindDocument(password=PW, fd_number=status.last_fd))
                    if isinstance(found, c.FindDocumentAnswer) and found.total == price:
                        return status.last_fd
                    await host.call(c.CancelReceipt(password=PW))  # blind, as drivers do
                assert error_of(await host.call(sale(price))) == 0
                closed = await host.call(close(price))
                assert isinstance(closed, c.CloseReceiptV2Answer), closed
                return closed.fd_number
            except ShtrihError:
                await self.hang_up()
        raise AssertionError(f"receipt {price} never went through")


@asynccontextmanager
async def bench(spec: str, seed: int = 1) -> AsyncIterator[Bench]:
    plan = parse_faults(spec)
    register = FaultyRegister.wrap(
        make_register(0, seed=seed), RegisterFaults(plan, register=0, seed=seed)
    )
    async with trio.open_nursery() as nursery:
        yield Bench(register, nursery)
        nursery.cancel_scope.cancel()


def receipt_totals(fn: FiscalStorage) -> list[int]:
    """1020 of every receipt in the archive, in FD order; FD numbers checked contiguous."""
    assert sorted(fn.archive) == list(range(1, fn.last_fd_number + 1))
    totals = []
    for number in sorted(fn.archive):
        document = decode_document(fn.archive[number])
        if document.code == 3:
            total = document.fields[1020]
            assert isinstance(total, int)
            totals.append(total)
    return totals


# --- the spec -------------------------------------------------------------------------------


def test_parse_the_full_language() -> None:
    plan = parse_faults(
        "drop:0.01, corrupt:0.005,delay:0.02@50ms,disconnect:0.001,power-before:0.002,"
        "power-after:0.002,slow:2x,fn-full@3h,shift-expired@1h,ofd-down@2h+6h,"
        "ofd-down@1d-2d,power-after@90s#2,slow:1.5x@10m+5m#1"
    )
    kinds = [rule.kind for rule in plan.rules]
    assert kinds[:10] == [
        "drop",
        "corrupt",
        "delay",
        "disconnect",
        "power-before",
        "power-after",
        "slow",
        "fn-full",
        "shift-expired",
        "ofd-down",
    ]
    assert plan.rules[2] == FaultRule("delay", 0.02, value=0.05)
    assert plan.rules[9] == FaultRule("ofd-down", at=7200.0, until=7200.0 + 6 * 3600)
    assert plan.rules[10] == FaultRule("ofd-down", at=86400.0, until=2 * 86400.0)
    assert plan.rules[11] == FaultRule("power-after", at=90.0, register=2)
    assert plan.probability("drop") == pytest.approx(0.01)
    assert plan.slow_factor(0) == 2.0
    assert plan.for_register(1).slow_factor(600) == 3.0
    assert plan.for_register(0).slow_factor(600) == 2.0
    assert plan.for_register(1).slow_factor(900) == 2.0
    assert [r.register for r in plan.for_register(0).rules if r.register is not None] == []
    assert parse_faults("") == FaultPlan() == parse_faults("  ")


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("drop", "'drop'"),
        ("drop:2", "'drop:2'"),
        ("drop:x", "'drop:x'"),
        ("drop:nan", "'drop:nan'"),
        ("bogus:0.1", "unknown kind 'bogus'"),
        ("drop:0.1,delay:0.1", "'delay:0.1'"),
        ("delay:0.1@soon", "'soon'"),
        ("slow:0x", "'slow:0x'"),
        ("slow", "'slow'"),
        ("fn-full", "'fn-full'"),
        ("fn-full:1@1h", "'fn-full:1@1h'"),
        ("fn-full@1h+2h", "'fn-full@1h+2h'"),
        ("ofd-down@2h-1h", "'ofd-down@2h-1h'"),
        ("drop:0.1#a", "#a"),
        ("drop:0.1,,corrupt:0.1", "empty item"),
        ("power-before@1y", "'1y'"),
        ("corrupt@1h", "'corrupt@1h'"),
        ("Drop:0.1", "'Drop:0.1'"),
    ],
)
def test_bad_specs_name_the_bad_part(spec: str, named: str) -> None:
    with pytest.raises(ValueError, match=None) as info:
        parse_faults(spec)
    assert named in str(info.value)


# --- the link -------------------------------------------------------------------------------


async def _through(seed: int) -> tuple[bytes, list[tuple[float, str, str]]]:
    log = FaultLog()
    plan = parse_faults("drop:0.05,corrupt:0.05,delay:0.2@10ms")
    sender, receiver = trio.testing.memory_stream_pair()
    faulty = FaultyStream(sender, plan, rng=random.Random(seed), log=log)
    got = b""
    payload = bytes(range(200))
    for offset in range(0, 200, 20):
        await faulty.send_all(payload[offset : offset + 20])
        got += await receiver.receive_some()
    return got, [(event.at, event.kind, event.detail) for event in log]


def test_faulty_stream_is_deterministic_for_a_seed() -> None:
    def run(seed: int) -> tuple[bytes, list[tuple[float, str, str]]]:
        clock = trio.testing.MockClock(autojump_threshold=0)
        return trio.run(_through, seed, clock=clock)

    first, again, other = run(5), run(5), run(6)
    assert first == again
    assert first != other
    data, events = first
    assert data != bytes(range(200))
    assert {kind for _, kind, _ in events} == {"drop", "corrupt", "delay"}
    assert len(data) == 200 - sum(kind == "drop" for _, kind, _ in events)


async def test_faulty_stream_hangs_up_mid_write(autojump_clock: trio.testing.MockClock) -> None:
    log = FaultLog()
    sender, receiver = trio.testing.memory_stream_pair()
    faulty = FaultyStream(sender, parse_faults("disconnect:1"), rng=random.Random(1), log=log)
    with pytest.raises(trio.BrokenResourceError):
        await faulty.send_all(b"0123456789")
    (event,) = log
    keep = int(event.detail.split()[1])
    assert keep < 10
    received = b""
    while chunk := await receiver.receive_some():
        received += chunk
    assert received == b"0123456789"[:keep]
    with pytest.raises(trio.ClosedResourceError):
        await faulty.receive_some()


@pytest.mark.parametrize(
    "spec", ["drop:0.02", "corrupt:0.02", "delay:0.3@2s", "disconnect:0.08", "disconnect@30s"]
)
async def test_link_faults_never_duplicate_a_receipt(
    spec: str, autojump_clock: trio.testing.MockClock
) -> None:
    prices = [10_000 + i for i in range(8)]
    with trio.fail_after(LIMIT):
        async with bench(spec) as b:
            assert error_of(await b.call(c.OpenShift(password=PW))) == 0
            await trio.sleep(30)  # disconnect@30s falls due here
            fds = [await b.sell(price) for price in prices]
            fn = b.register.fn
            assert receipt_totals(fn) == prices
            assert fds == sorted(fds) and len(set(fds)) == len(fds)
            for fd, price in zip(fds, prices, strict=True):
                found = await b.call(c.FindDocument(password=PW, fd_number=fd))
                assert isinstance(found, c.FindDocumentAnswer) and found.total == price
    kind = spec.split(":")[0].split("@")[0]
    events = b.log.of_kind(kind)
    assert events, f"no {kind} fault was injected"
    assert all(0 <= event.at <= LIMIT and event.register == 0 for event in events)
    assert [event.at for event in b.log] == sorted(event.at for event in b.log)


def test_a_faulty_run_reproduces() -> None:
    async def scenario() -> tuple[list[int], list[tuple[float, str, str]]]:
        async with bench("drop:0.01,corrupt:0.01,disconnect:0.03", seed=3) as b:
            assert error_of(await b.call(c.OpenShift(password=PW))) == 0
            fds = [await b.sell(20_000 + i) for i in range(4)]
        return fds, [(e.at, e.kind, e.detail) for e in b.log]

    def run() -> tuple[list[int], list[tuple[float, str, str]]]:
        return trio.run(scenario, clock=trio.testing.MockClock(autojump_threshold=0))

    first = run()
    assert first == run() and first[1]


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_every_fault_at_once_fiscalizes_each_receipt_once(
    seed: int, autojump_clock: trio.testing.MockClock
) -> None:
    spec = "drop:0.01,corrupt:0.01,disconnect:0.02,delay:0.05@1s,power-before:0.1,power-after:0.1"
    prices = [30_000 + i for i in range(10)]
    with trio.fail_after(LIMIT):
        async with bench(spec, seed=seed) as b:
            assert error_of(await b.call(c.OpenShift(password=PW))) in (
                0,
                ErrorCode.NOT_IN_THIS_MODE,
            )
            for price in prices:
                await b.sell(price, recovering=True)
            assert receipt_totals(b.register.fn) == prices
    assert {"power-before", "power-after"} & {event.kind for event in b.log}


# --- power ----------------------------------------------------------------------------------


async def test_power_lost_before_commit(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(LIMIT):
        async with bench("power-before@1m") as b:
            host = await b.host()
            assert error_of(await host.call(c.OpenShift(password=PW))) == 0
            fn = b.register.fn
            assert fn.last_fd_number == 2
            await trio.sleep(60)
            assert error_of(await host.call(sale(5_000))) == 0
            assert fn.open_document is not None
            with pytest.raises(ShtrihError):
                await host.call(close(5_000))
            await b.hang_up()
            assert fn.last_fd_number == 2 and fn.open_document is None
            assert b.register.receipt is None and fn.shift is not None

            host = await b.host()
            status = await host.call(c.FnStatus(password=PW))
            assert isinstance(status, c.FnStatusAnswer)
            assert (status.last_fd, status.current_document) == (2, 0)
            assert (await host.call(c.ShortStatus(password=PW))).mode == Mode.SHIFT_OPEN
            assert await b.sell(5_000) == 3
            assert receipt_totals(fn) == [5_000]
    (event,) = b.log
    assert (event.kind, event.register) == ("power-before", 0) and 60 <= event.at < 61


async def test_power_lost_after_commit(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(LIMIT):
        async with bench("power-after@1m") as b:
            host = await b.host()
            assert error_of(await host.call(c.OpenShift(password=PW))) == 0
            await trio.sleep(60)
            assert error_of(await host.call(sale(7_000))) == 0
            with pytest.raises(ShtrihError):
                await host.call(close(7_000))
            await b.hang_up()
            fn = b.register.fn
            assert fn.last_fd_number == 3 and fn.open_document is None

            host = await b.host()
            status = await host.call(c.FnStatus(password=PW))
            assert isinstance(status, c.FnStatusAnswer) and status.last_fd == 3
            found = await host.call(c.FindDocument(password=PW, fd_number=3))
            assert isinstance(found, c.FindDocumentAnswer) and found.total == 7_000
            # The job is in doubt: recovery finds the receipt and does not sell it again.
            assert await b.sell(7_000, recovering=True) == 3
            assert await b.sell(8_000, recovering=True) == 4
            assert receipt_totals(fn) == [7_000, 8_000]
    (event,) = b.log
    assert event.kind == "power-after" and "FD 3" in event.detail and 60 <= event.at < 61


def _receipt() -> Receipt:
    item = Item(
        name="Хлеб",
        price=5_000,
        quantity=Decimal(1),
        sum=5_000,
        vat=2,
        payment_method=4,
        payment_subject=1,
    )
    return Receipt(
        operation=1,
        items=(item,),
        payments=Payments(cash=5_000),
        company=Company(inn="7707083893", tax_system=1, place="emulator.kassa.example"),
        total=5_000,
    )


async def test_fiscalize_with_power_loss_on_the_fn(autojump_clock: trio.testing.MockClock) -> None:
    fn = make_register(0).fn
    fn.open_shift(START, timer=0.0)
    with pytest.raises(PowerLost) as before:
        fiscalize_with_power_loss(fn, START, _receipt(), "before", timer=0.0)
    assert before.value.fd_number is None
    assert fn.last_fd_number == 2 and fn.open_document is None
    with pytest.raises(PowerLost) as after:
        fiscalize_with_power_loss(fn, START, _receipt(), "after", timer=0.0)
    assert after.value.fd_number == 3 == fn.last_fd_number and fn.open_document is None
    assert decode_document(fn.read_document(3)).fields[1020] == 5_000
    assert fn.fiscalize(START, _receipt(), timer=0.0).fd_number == 4


# --- device states --------------------------------------------------------------------------


@asynccontextmanager
async def scheduled(spec: str, ofd: OfdServer | None = None) -> AsyncIterator[Bench]:
    async with bench(spec) as b:
        b.nursery.start_soon(run_schedule, b.register, b.register.faults, ofd)
        yield b


async def test_fn_full_answers_06h(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(LIMIT):
        async with scheduled("fn-full@1h") as b:
            assert error_of(await b.call(c.OpenShift(password=PW))) == 0
            assert await b.sell(1_000) == 3
            await trio.sleep(3600)
            assert error_of(await b.call(sale(1_000))) == ErrorCode.FN_ARCHIVE_FULL
            assert error_of(await b.call(c.ZReport(password=PW))) == 0  # closing still works
            assert error_of(await b.call(c.OpenShift(password=PW))) == ErrorCode.FN_ARCHIVE_FULL
    (event,) = b.log
    assert (event.kind, event.at) == ("fn-full", 3600.0)


async def test_shift_expired_answers_4eh(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(LIMIT):
        async with scheduled("shift-expired@1h") as b:
            assert error_of(await b.call(c.OpenShift(password=PW))) == 0
            await trio.sleep(3600)
            assert (await b.call(c.ShortStatus(password=PW))).mode == Mode.SHIFT_EXPIRED
            assert error_of(await b.call(sale(1_000))) == ErrorCode.SHIFT_OVER_24H
            assert error_of(await b.call(c.ZReport(password=PW))) == 0
            assert error_of(await b.call(c.OpenShift(password=PW))) == 0
            assert await b.sell(1_000) == 5
    (event,) = b.log
    assert (event.kind, event.at) == ("shift-expired", 3600.0)


async def test_ofd_down_and_slow_device(autojump_clock: trio.testing.MockClock) -> None:
    ofd = OfdServer(WallClock(START))
    with trio.fail_after(LIMIT):
        async with scheduled("ofd-down@10s+20s,slow:4x@0-1m", ofd) as b:
            plain = make_register(0, seed=1)
            request = c.ShortStatus(password=PW).encode()
            _, slow = b.register.execute(request)
            _, normal = plain.execute(request)
            assert slow == pytest.approx(4 * normal)
            await trio.sleep(15)
            assert ofd.down()
            await trio.sleep(20)
            assert not ofd.down()
            await trio.sleep(30)
            assert b.register.execute(request)[1] == pytest.approx(plain.execute(request)[1])
    assert [(e.kind, e.at) for e in b.log] == [
        ("slow", 0.0),
        ("ofd-down", 10.0),
        ("ofd-up", 30.0),
        ("slow-end", 60.0),
    ]
