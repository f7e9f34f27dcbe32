"""Fault injection on ATOL registers, observed by Kassa's HostConnection in mock time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing

from emulator.atol import AtolRegister
from emulator.faults import (
    FaultLog,
    FaultyAtolRegister,
    RegisterFaults,
    parse_faults,
    run_schedule,
    serve_faulty_connection,
)
from emulator.fn import FiscalStorage
from emulator.ofd import OfdServer, WallClock
from emulator.serve import START, make_register, open_memory_fleet
from protocols.atol import (
    NEED_DATA,
    AbortTasks,
    AckTask,
    AddTask,
    AtolError,
    CancelReceipt,
    CloseReceipt,
    CloseShift,
    CommandAnswer,
    DeviceStatus,
    DocumentData,
    DocumentInfo,
    EnterMode,
    ErrorCode,
    ExitMode,
    GetDeviceStatus,
    GetDocumentInfo,
    GetOfdExchangeStatus,
    HostConnection,
    Mode,
    OfdExchangeStatus,
    OpenReceipt,
    OpenShift,
    PaymentType,
    ReadDocumentData,
    ReceiptType,
    RegisterItem,
    ReqTask,
    Request,
    TaskFinished,
    TaskLost,
    TaskRefused,
    TaskStopped,
    decode_answer,
)
from protocols.atol.taskbuffer import HostMessage
from protocols.tlv import decode_document

LIMIT = 6 * 3600.0  # simulated seconds: a hang shows up as a timeout, never as a stuck test
MAX_TID = 0xDF
RETRIES = 40  # reconnections a bench allows one step before it calls the line dead


class Host:
    """HostConnection over a stream; a lost line or task becomes AtolError, as a driver's."""

    def __init__(self, stream: trio.abc.Stream, tids: list[int]) -> None:
        self.stream = stream
        self.link = HostConnection()
        self._tids = tids  # shared by a bench's connections: a reconnect takes fresh IDs

    def _next_tid(self) -> int:
        self._tids[0] = (self._tids[0] + 1) % (MAX_TID + 1)
        return self._tids[0]

    async def _write(self, data: bytes) -> None:
        if data:
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise AtolError(f"line lost: {exc!r}", "link") from exc

    async def exchange(self, message: HostMessage) -> list[object]:
        await self._write(self.link.send(message))
        events: list[object] = []
        while True:
            while (event := self.link.next_event()) is not NEED_DATA:
                events.append(event)
            await self._write(self.link.data_to_send())
            if not self.link.awaiting_answer:
                return events
            with trio.move_on_after(0.5) as scope:
                try:
                    data = await self.stream.receive_some()
                except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    raise AtolError(f"line lost: {exc!r}", "link") from exc
            if scope.cancelled_caught:
                await self._write(self.link.retransmit())
                continue
            if not data:
                raise AtolError("the register closed the connection", "link")
            self.link.receive_data(bytes(data))

    async def call(self, request: Request) -> Any:
        tid = self._next_tid()
        events = await self.exchange(AddTask(tid=tid, request=request.encode()))
        while True:
            for event in events:
                if isinstance(event, TaskFinished) and event.tid == tid:
                    await self.exchange(AckTask(tid=tid))
                    return decode_answer(request, event.answer)
                if isinstance(event, TaskRefused | TaskLost | TaskStopped) and event.tid == tid:
                    raise AtolError(f"task {tid}: {event!r}", "task")
            await trio.sleep(0.01)
            events = await self.exchange(ReqTask(tid=tid))


def error_of(answer: object) -> int:
    return answer.error if isinstance(answer, CommandAnswer) else 0


def item(price: int) -> RegisterItem:
    return RegisterItem(name="Товар", price=price, quantity=Decimal(1), tax=1)


class Bench:
    """One faulty ATOL register over in-memory streams; ``host()`` (re)connects."""

    def __init__(
        self, register: FaultyAtolRegister, connect: Callable[[], Awaitable[trio.abc.Stream]]
    ) -> None:
        self.register = register
        self._connect = connect
        self.current: Host | None = None
        self.tids = [0]
        self.known_fd = 0  # the newest FD the host has seen: a newer one is its receipt

    @property
    def log(self) -> FaultLog:
        return self.register.faults.log

    async def host(self) -> Host:
        if self.current is None:
            host = Host(await self._connect(), self.tids)
            self.current = host
            await host.exchange(AbortTasks())  # a clean buffer, as a driver starts
        return self.current

    async def hang_up(self) -> None:
        if self.current is not None:
            await self.current.stream.aclose()
            self.current = None

    async def call(self, request: Request) -> Any:
        """One call on a clean retry: reconnect after an AtolError, up to RETRIES times."""
        for _ in range(RETRIES):
            try:
                return await (await self.host()).call(request)
            except AtolError:
                await self.hang_up()
        raise AssertionError("the line never recovered")

    async def enter(self, mode: Mode, password: int) -> None:
        """Be in ``mode`` whatever the register's mode (a receipt left open is cancelled)."""
        host = await self.host()
        status = await host.call(GetDeviceStatus())
        assert isinstance(status, DeviceStatus)
        if status.receipt_state:
            assert error_of(await host.call(CancelReceipt())) == 0
        if status.mode == mode:
            return
        await host.call(ExitMode())
        assert error_of(await host.call(EnterMode(mode=mode, mode_password=password))) == 0

    async def last_fd(self) -> int:
        ofd = await (await self.host()).call(GetOfdExchangeStatus())
        assert isinstance(ofd, OfdExchangeStatus)
        return ofd.first_unsent_number + ofd.unsent_count - 1

    async def total_of(self, fd: int) -> int | None:
        host = await self.host()
        info = await host.call(GetDocumentInfo(number=fd))
        if not isinstance(info, DocumentInfo):
            return None
        data = await host.call(ReadDocumentData())
        assert isinstance(data, DocumentData)
        document = decode_document(data.tlv)
        total = document.fields.get(1020) if document.code == 3 else None
        return total if isinstance(total, int) else None

    async def open_shift(self) -> None:
        for _ in range(RETRIES):
            try:
                await self.enter(Mode.REGISTRATION, 1)
                answer = await (await self.host()).call(OpenShift())
                assert error_of(answer) in (0, ErrorCode.SHIFT_OPEN)
                self.known_fd = await self.last_fd()
                return
            except AtolError:
                await self.hang_up()
        raise AssertionError("the shift never opened")

    async def sell(self, price: int, *, recovering: bool = False) -> int:
        """Fiscalize one receipt of ``price`` exactly once; its FD number.

        Before each try, and after a broken link, recovery asks the ФН for its last FD: one
        newer than the last the host knows is this receipt (nobody else sells on the line).
        """
        for _ in range(RETRIES):
            try:
                await self.enter(Mode.REGISTRATION, 1)
                fd = await self.last_fd()
                if fd > self.known_fd:
                    assert recovering or fd == self.known_fd + 1
                    self.known_fd = fd
                    return fd
                host = await self.host()
                for request in (OpenReceipt(receipt_type=ReceiptType.SALE), item(price)):
                    assert error_of(await host.call(request)) == 0, request
                closed = await host.call(CloseReceipt(payment_type=PaymentType.CASH))
                assert error_of(closed) == 0
                self.known_fd = await self.last_fd()
                return self.known_fd
            except AtolError:
                await self.hang_up()
        raise AssertionError(f"receipt {price} never went through")


@asynccontextmanager
async def bench(spec: str, seed: int = 1, ofd: OfdServer | None = None) -> AsyncIterator[Bench]:
    register = make_register(0, protocol="atol", seed=seed)
    assert isinstance(register, AtolRegister)
    faults = RegisterFaults(parse_faults(spec), register=0, seed=seed)
    faulty = FaultyAtolRegister.wrap(register, faults)
    async with trio.open_nursery() as nursery:

        async def connect() -> trio.abc.Stream:
            host_end, device_end = trio.testing.memory_stream_pair()
            nursery.start_soon(serve_faulty_connection, device_end, faulty)
            return host_end

        nursery.start_soon(run_schedule, faulty, faults, ofd)
        yield Bench(faulty, connect)
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


# --- the link -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    # An ATOL call is four writes or more (Add, Req, Ack): a lower disconnect rate than Shtrih's.
    "spec",
    ["drop:0.02", "corrupt:0.02", "delay:0.3@2s", "disconnect:0.03", "disconnect@30s"],
)
async def test_link_faults_never_duplicate_a_receipt(
    spec: str, autojump_clock: trio.testing.MockClock
) -> None:
    prices = [10_000 + i for i in range(6)]
    with trio.fail_after(LIMIT):
        async with bench(spec) as b:
            await b.open_shift()
            await trio.sleep(30)  # disconnect@30s falls due here
            fds = [await b.sell(price) for price in prices]
            assert receipt_totals(b.register.fn) == prices
            assert fds == list(range(3, 3 + len(prices)))
    kind = spec.split(":")[0].split("@")[0]
    events = b.log.of_kind(kind)
    assert events, f"no {kind} fault was injected"
    assert all(0 <= event.at <= LIMIT and event.register == 0 for event in events)
    assert [event.at for event in b.log] == sorted(event.at for event in b.log)


@pytest.mark.parametrize("seed", [1, 2])
async def test_every_fault_at_once_fiscalizes_each_receipt_once(
    seed: int, autojump_clock: trio.testing.MockClock
) -> None:
    spec = "drop:0.01,corrupt:0.01,disconnect:0.02,delay:0.05@1s,power-before:0.2,power-after:0.2"
    prices = [30_000 + i for i in range(8)]
    with trio.fail_after(LIMIT):
        async with bench(spec, seed=seed) as b:
            await b.open_shift()
            for price in prices:
                await b.sell(price, recovering=True)
            assert receipt_totals(b.register.fn) == prices
    assert {"power-before", "power-after"} & {event.kind for event in b.log}


# --- power ----------------------------------------------------------------------------------


async def test_power_lost_before_commit(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(LIMIT):
        async with bench("power-before@1m") as b:
            await b.open_shift()
            fn = b.register.fn
            assert fn.last_fd_number == 2
            await trio.sleep(60)
            host = await b.host()
            for request in (OpenReceipt(receipt_type=ReceiptType.SALE), item(5_000)):
                assert error_of(await host.call(request)) == 0
            assert fn.open_document is not None
            with pytest.raises(AtolError):
                await host.call(CloseReceipt(payment_type=PaymentType.CASH))
            await b.hang_up()
            assert fn.last_fd_number == 2 and fn.open_document is None
            assert b.register.receipt is None and fn.shift is not None
            assert b.register.mode == Mode.SELECT

            status = await (await b.host()).call(GetDeviceStatus())
            assert isinstance(status, DeviceStatus)
            assert (status.mode, status.receipt_state) == (Mode.SELECT, 0)
            assert await b.last_fd() == 2
            assert await b.sell(5_000) == 3
            assert receipt_totals(fn) == [5_000]
    (event,) = b.log
    assert (event.kind, event.register) == ("power-before", 0) and 60 <= event.at < 61
    assert "4A" in event.detail


async def test_power_lost_after_commit(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(LIMIT):
        async with bench("power-after@1m") as b:
            await b.open_shift()
            await trio.sleep(60)
            host = await b.host()
            for request in (OpenReceipt(receipt_type=ReceiptType.SALE), item(7_000)):
                assert error_of(await host.call(request)) == 0
            with pytest.raises(AtolError):
                await host.call(CloseReceipt(payment_type=PaymentType.CASH))
            await b.hang_up()
            fn = b.register.fn
            assert fn.last_fd_number == 3 and fn.open_document is None
            assert b.register.receipt is None

            assert await b.last_fd() == 3 and await b.total_of(3) == 7_000
            # The task is in doubt: recovery finds the receipt and does not sell it again.
            assert await b.sell(7_000, recovering=True) == 3
            assert await b.sell(8_000, recovering=True) == 4
            assert receipt_totals(fn) == [7_000, 8_000]
    (event,) = b.log
    assert event.kind == "power-after" and "FD 3" in event.detail and 60 <= event.at < 61


async def test_power_lost_around_shift_commits(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(LIMIT):
        async with bench("power-before@0,power-after@1m") as b:
            fn = b.register.fn
            await b.enter(Mode.REGISTRATION, 1)
            with pytest.raises(AtolError):
                await (await b.host()).call(OpenShift())  # 9Ah: power lost before
            await b.hang_up()
            assert fn.shift is None and fn.last_fd_number == 1
            await b.open_shift()
            assert fn.last_fd_number == 2
            await trio.sleep(60)
            await b.enter(Mode.Z_REPORTS, 30)
            with pytest.raises(AtolError):
                await (await b.host()).call(CloseShift())  # 5Ah: archived, answer lost
            await b.hang_up()
            assert fn.shift is None and fn.last_fd_number == 3
            assert receipt_totals(fn) == []
    assert [(e.kind, e.detail) for e in b.log] == [
        ("power-before", "command 9Ah not committed"),
        ("power-after", "FD 3 archived, answer lost"),
    ]


# --- device states --------------------------------------------------------------------------


async def test_fn_full_refuses_new_work(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(LIMIT):
        async with bench("fn-full@1h") as b:
            await b.open_shift()
            assert await b.sell(1_000) == 3
            await trio.sleep(3600)
            answer = await b.call(OpenReceipt(receipt_type=ReceiptType.SALE))
            assert error_of(answer) != 0
            assert b.register.fn.last_fd_number == 3
    (event,) = b.log
    assert (event.kind, event.at) == ("fn-full", 3600.0)


async def test_shift_expired_answers_88h(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(LIMIT):
        async with bench("shift-expired@1h") as b:
            await b.open_shift()
            await trio.sleep(3600)
            assert b.register.shift_expired()
            answer = await b.call(OpenReceipt(receipt_type=ReceiptType.SALE))
            assert error_of(answer) == ErrorCode.SHIFT_OVER_24_HOURS
            await b.enter(Mode.Z_REPORTS, 30)
            assert error_of(await b.call(CloseShift())) == 0
            await b.open_shift()
            assert await b.sell(1_000) == 5
    (event,) = b.log
    assert (event.kind, event.at) == ("shift-expired", 3600.0)


async def test_ofd_down_and_slow_device(autojump_clock: trio.testing.MockClock) -> None:
    ofd = OfdServer(WallClock(START))
    with trio.fail_after(LIMIT):
        async with bench("ofd-down@10s+20s,slow:4x@0-1m", ofd=ofd) as b:
            plain = make_register(0, protocol="atol", seed=1)
            request = GetDeviceStatus().encode()
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


# --- the fleet ------------------------------------------------------------------------------


async def test_a_memory_fleet_of_atol_registers_with_faults(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(LIMIT):
        async with open_memory_fleet(
            1, protocol="atol", faults="power-after@1m,disconnect:0.02", seed=4
        ) as fleet:
            (register,) = fleet.registers
            assert isinstance(register, FaultyAtolRegister)
            b = Bench(register, partial(fleet.connect, 0))
            await b.open_shift()
            await trio.sleep(60)
            prices = [50_000 + i for i in range(4)]
            for price in prices:
                await b.sell(price, recovering=True)
            assert receipt_totals(register.fn) == prices
    assert fleet.faults is register.faults.log
    assert fleet.faults.of_kind("power-after")
