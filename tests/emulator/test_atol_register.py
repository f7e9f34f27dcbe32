"""The ATOL personality driven by Kassa's HostConnection over in-memory streams, in mock time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import attrs
import trio
import trio.testing

from emulator.atol import (
    ATOL_30F,
    ATOL_42FA,
    AtolErrorCode,
    AtolRegister,
    AtolTiming,
    serve_connection,
)
from emulator.serve import START, make_register
from emulator.timing import RegisterModel
from protocols.atol import (
    NEED_DATA,
    AckTask,
    AddTask,
    BufferErrorCode,
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
    GetShiftState,
    HostConnection,
    Mode,
    OfdExchangeFlags,
    OfdExchangeStatus,
    OpenReceipt,
    OpenShift,
    Payment,
    PaymentAnswer,
    PaymentType,
    ReadDocumentData,
    ReceiptType,
    RegisterItem,
    ReqTask,
    Request,
    ShiftState,
    Status,
    StatusFlags,
    TaskFinished,
    TaskFlags,
    TaskQueued,
    TaskRefused,
    decode_answer,
    encode_packet,
)
from protocols.atol.taskbuffer import HostMessage, TaskState
from protocols.documents.ffd import decode_receipt
from protocols.fiscal_sign import EmulatorSignVerifier
from protocols.fn import ResultCode

Trace = list[tuple[float, str, bytes]]


class Host:
    """A minimal ATOL driver: HostConnection over a trio stream, polling tasks with Req."""

    def __init__(self, stream: trio.abc.Stream, trace: Trace | None = None, tid: int = 1) -> None:
        self.stream = stream
        self.link = HostConnection()
        self.trace: Trace = [] if trace is None else trace
        self.tid = tid

    async def write(self, data: bytes) -> None:
        if data:
            self.trace.append((trio.current_time(), ">", data))
            await self.stream.send_all(data)

    async def exchange(self, message: HostMessage) -> list[object]:
        """Send one task-buffer command and wait for its answer; the events it brought."""
        await self.write(self.link.send(message))
        events: list[object] = []
        while True:
            while (event := self.link.next_event()) is not NEED_DATA:
                events.append(event)
            await self.write(self.link.data_to_send())
            if not self.link.awaiting_answer:
                return events
            with trio.move_on_after(0.5) as scope:
                data = await self.stream.receive_some()
            if scope.cancelled_caught:
                await self.write(self.link.retransmit())
                continue
            assert data, "the register closed the connection"
            self.trace.append((trio.current_time(), "<", bytes(data)))
            self.link.receive_data(bytes(data))

    async def result(self, tid: int, events: list[object]) -> TaskFinished:
        """Poll the task with Req until its result arrives."""
        while True:
            for event in events:
                if isinstance(event, TaskFinished) and event.tid == tid:
                    return event
            await trio.sleep(0.01)
            events = await self.exchange(ReqTask(tid=tid))

    async def add(self, request: Request) -> int:
        tid = self.tid
        self.tid += 1
        await self.exchange(AddTask(tid=tid, request=request.encode()))
        return tid

    async def call(self, request: Request) -> Any:
        """Add the request as a task, wait for its result, acknowledge it, decode the answer."""
        tid = self.tid
        self.tid += 1
        events = await self.exchange(AddTask(tid=tid, request=request.encode()))
        finished = await self.result(tid, events)
        await self.exchange(AckTask(tid=tid))
        return decode_answer(request, finished.answer)

    async def status(self) -> DeviceStatus:
        answer = await self.call(GetDeviceStatus())
        assert isinstance(answer, DeviceStatus)
        return answer


@attrs.frozen
class Fleet:
    register: AtolRegister
    nursery: trio.Nursery

    async def connect(self, trace: Trace | None = None, tid: int = 1) -> Host:
        host_end, device_end = trio.testing.memory_stream_pair()
        self.nursery.start_soon(serve_connection, device_end, self.register)
        return Host(host_end, trace, tid)


@asynccontextmanager
async def open_fleet(seed: int = 0, model: RegisterModel = ATOL_42FA) -> AsyncIterator[Fleet]:
    fn = make_register(0, seed=seed).fn  # a registered ФН, as the fleet makes them
    timing = AtolTiming(model, seed=seed, index=0)
    register = AtolRegister(fn, timing, start=START, kkt_serial=12345678)
    async with trio.open_nursery() as nursery:
        yield Fleet(register, nursery)
        nursery.cancel_scope.cancel()


def error_of(answer: object) -> int:
    return answer.error if isinstance(answer, CommandAnswer) else 0


def item(name: str, price: int, qty: str = "1", tax: int = 1) -> RegisterItem:
    return RegisterItem(name=name, price=price, quantity=Decimal(qty), tax=tax)


async def ok(host: Host, *requests: Request) -> None:
    for request in requests:
        answer = await host.call(request)
        assert error_of(answer) == 0, (request, answer)


async def read_document(host: Host, number: int) -> bytes:
    info = await host.call(GetDocumentInfo(number=number))
    assert isinstance(info, DocumentInfo)
    data = await host.call(ReadDocumentData())
    assert isinstance(data, DocumentData) and len(data.tlv) == info.size
    assert info.document_type == int.from_bytes(data.tlv[:2], "little")
    return data.tlv


async def last_fd(host: Host) -> int:
    """The FD number of the newest document: the end of the ФН's unsent queue."""
    ofd = await host.call(GetOfdExchangeStatus())
    assert isinstance(ofd, OfdExchangeStatus) and ofd.flags & OfdExchangeFlags.UNSENT_DOCUMENTS
    return ofd.first_unsent_number + ofd.unsent_count - 1


async def test_fiscal_life(autojump_clock: trio.testing.MockClock) -> None:
    async with open_fleet() as fleet:
        register = fleet.register
        host = await fleet.connect()
        status = await host.status()
        assert (status.mode, status.shift_number, status.model) == (Mode.SELECT, 0, 70)
        assert status.flags & StatusFlags.FISCALIZED and not status.flags & StatusFlags.SHIFT_OPEN
        await ok(host, EnterMode(mode=Mode.REGISTRATION, mode_password=1), OpenShift())
        status = await host.status()
        assert (status.mode, status.shift_number, status.cashier) == (Mode.REGISTRATION, 1, 1)
        assert status.flags & StatusFlags.SHIFT_OPEN

        await ok(host, OpenReceipt(receipt_type=ReceiptType.SALE))
        await ok(host, item("Хлеб", 12_345, "2", tax=2), item("Молоко", 5_000, "1.5", tax=1))
        status = await host.status()
        assert (status.receipt_state, status.receipt_total) == (1, 24_690 + 7_500)
        paid = await host.call(Payment(payment_type=PaymentType.ELECTRONIC, amount=30_000))
        assert isinstance(paid, PaymentAnswer) and (paid.remainder, paid.change) == (2_190, 0)
        await ok(host, CloseReceipt(payment_type=PaymentType.ELECTRONIC))
        fd = await last_fd(host)
        assert fd == register.fn.last_fd_number == 3  # registration, shift opening, receipt
        shift = await host.call(GetShiftState())
        assert shift == ShiftState(shift_open=True, shift_number=1, receipt_number=1)

        document = await read_document(host, fd)
        assert document == register.fn.archive[fd]
        assert EmulatorSignVerifier({register.fn.number: register.fn.key}).verify(document)
        fiscalized = decode_receipt(document)
        assert fiscalized.fiscal is not None and fiscalized.fiscal.fd_number == fd
        assert register.last_result is not None
        assert fiscalized.fiscal.fiscal_sign == register.last_result.fiscal_sign
        receipt = fiscalized.receipt
        assert (receipt.operation, receipt.total) == (1, 32_190)
        assert receipt.payments.electronic == 32_190 and receipt.payments.cash == 0
        names = [(i.name, i.price, i.quantity, i.sum, i.vat) for i in receipt.items]
        assert names == [
            ("Хлеб", 12_345, Decimal("2"), 24_690, 2),
            ("Молоко", 5_000, Decimal("1.5"), 7_500, 1),
        ]

        # A refund (возврат прихода) paid in cash with change.
        await ok(host, OpenReceipt(receipt_type=ReceiptType.SALE_RETURN), item("Хлеб", 12_345))
        paid = await host.call(Payment(payment_type=PaymentType.CASH, amount=20_000))
        assert isinstance(paid, PaymentAnswer) and (paid.remainder, paid.change) == (0, 7_655)
        await ok(host, CloseReceipt(payment_type=PaymentType.CASH))
        refund = decode_receipt(await read_document(host, await last_fd(host))).receipt
        assert (refund.operation, refund.total, refund.payments.cash) == (2, 12_345, 12_345)

        await ok(host, ExitMode(), EnterMode(mode=Mode.Z_REPORTS, mode_password=30), CloseShift())
        status = await host.status()
        assert (status.mode, status.shift_number) == (Mode.Z_REPORTS, 1)
        assert not status.flags & StatusFlags.SHIFT_OPEN
        ofd = await host.call(GetOfdExchangeStatus())
        assert isinstance(ofd, OfdExchangeStatus)
        assert (ofd.unsent_count, ofd.first_unsent_number) == (5, 1)
        assert ofd.first_unsent_time == START
        shift = await host.call(GetShiftState())
        assert shift == ShiftState(shift_open=False, shift_number=1, receipt_number=0)


async def test_wrong_mode_errors(autojump_clock: trio.testing.MockClock) -> None:
    async with open_fleet() as fleet:
        host = await fleet.connect()
        sale = OpenReceipt(receipt_type=ReceiptType.SALE)
        assert error_of(await host.call(OpenShift())) == ErrorCode.WRONG_MODE
        assert error_of(await host.call(sale)) == ErrorCode.WRONG_MODE
        wrong_pw = EnterMode(mode=Mode.Z_REPORTS, mode_password=5)
        assert error_of(await host.call(wrong_pw)) == ErrorCode.WRONG_PASSWORD
        assert error_of(await host.call(EnterMode(mode=7))) == ErrorCode.WRONG_MODE
        await ok(host, EnterMode(mode=Mode.REGISTRATION, mode_password=1))
        assert error_of(await host.call(EnterMode(mode=Mode.X_REPORTS))) == ErrorCode.WRONG_MODE
        assert error_of(await host.call(sale)) == ErrorCode.WRONG_MODE  # shift closed
        await ok(host, OpenShift())
        assert error_of(await host.call(OpenShift())) == ErrorCode.SHIFT_OPEN
        assert error_of(await host.call(item("Хлеб", 100))) == AtolErrorCode.RECEIPT_CLOSED
        pay = Payment(payment_type=PaymentType.CASH, amount=100)
        assert error_of(await host.call(pay)) == AtolErrorCode.RECEIPT_CLOSED
        assert error_of(await host.call(CloseShift())) == ErrorCode.WRONG_MODE
        assert error_of(await host.call(CancelReceipt())) == AtolErrorCode.RECEIPT_CLOSED

        await ok(host, sale)
        assert error_of(await host.call(sale)) == ErrorCode.RECEIPT_OPEN
        assert error_of(await host.call(ExitMode())) == ErrorCode.RECEIPT_OPEN
        cash = CloseReceipt(payment_type=PaymentType.CASH)
        assert error_of(await host.call(cash)) == ErrorCode.ITEM_NOT_FOUND
        assert error_of(await host.call(item("Хлеб", 100, "0"))) == ErrorCode.WRONG_QUANTITY
        assert error_of(await host.call(item("Хлеб", 100, tax=13))) == ErrorCode.WRONG_FORMAT
        await ok(host, item("Хлеб", 10_000))
        short = CloseReceipt(payment_type=PaymentType.ELECTRONIC, amount=9_999)
        assert error_of(await host.call(short)) == AtolErrorCode.PAYMENTS_BELOW_TOTAL
        over = CloseReceipt(payment_type=PaymentType.ELECTRONIC, amount=10_001)
        assert error_of(await host.call(over)) == AtolErrorCode.NON_CASH_OVER_TOTAL
        await ok(host, CancelReceipt())
        assert fleet.register.fn.open_document is None and fleet.register.receipt is None

        missing = await host.call(GetDocumentInfo(number=99))
        assert isinstance(missing, CommandAnswer)
        assert (missing.error, missing.extended) == (AtolErrorCode.FN_ERROR, ResultCode.NO_DATA)
        assert error_of(await host.call(ReadDocumentData())) == ErrorCode.NO_MORE_DATA
        unknown = await host.exchange(AddTask(tid=0x50, request=b"\x00\x00\x50"))
        finished = await host.result(0x50, unknown)
        assert finished.error and CommandAnswer.decode(finished.answer).error == 0x13


async def test_shift_over_24_hours(autojump_clock: trio.testing.MockClock) -> None:
    async with open_fleet() as fleet:
        host = await fleet.connect()
        sale = OpenReceipt(receipt_type=ReceiptType.SALE)
        await ok(host, EnterMode(mode=Mode.REGISTRATION, mode_password=1), OpenShift())
        await trio.sleep(23 * 3600)
        await ok(host, sale, item("Хлеб", 100))
        await trio.sleep(3600 + 60)
        assert fleet.register.shift_expired()
        assert error_of(await host.call(item("Хлеб", 100))) == ErrorCode.SHIFT_OVER_24_HOURS
        cash = CloseReceipt(payment_type=PaymentType.CASH)
        assert error_of(await host.call(cash)) == ErrorCode.SHIFT_OVER_24_HOURS
        await ok(host, CancelReceipt())
        assert error_of(await host.call(sale)) == ErrorCode.SHIFT_OVER_24_HOURS
        await ok(host, ExitMode(), EnterMode(mode=Mode.Z_REPORTS, mode_password=30), CloseShift())
        await ok(host, ExitMode(), EnterMode(mode=Mode.REGISTRATION, mode_password=1))
        await ok(host, OpenShift(), sale, item("Хлеб", 100), cash)
        assert (await host.status()).shift_number == 2


async def test_reconnect_mid_receipt(autojump_clock: trio.testing.MockClock) -> None:
    async with open_fleet() as fleet:
        first = await fleet.connect()
        await ok(first, EnterMode(mode=Mode.REGISTRATION, mode_password=1), OpenShift())
        await ok(first, OpenReceipt(receipt_type=ReceiptType.SALE), item("Хлеб", 10_000))
        await first.stream.aclose()
        second = await fleet.connect()
        status = await second.status()
        assert (status.mode, status.receipt_state, status.receipt_total) == (1, 1, 10_000)
        await ok(second, item("Соль", 2_000), CloseReceipt(payment_type=PaymentType.CASH))
        receipt = decode_receipt(fleet.register.fn.archive[3]).receipt
        assert [i.name for i in receipt.items] == ["Хлеб", "Соль"] and receipt.total == 12_000


async def test_task_answered_from_the_buffer(autojump_clock: trio.testing.MockClock) -> None:
    """A close receipt whose host vanished is answered again from the buffer, never rerun."""
    async with open_fleet() as fleet:
        register = fleet.register
        first = await fleet.connect()
        await ok(first, EnterMode(mode=Mode.REGISTRATION, mode_password=1), OpenShift())
        await ok(first, OpenReceipt(receipt_type=ReceiptType.SALE), item("Хлеб", 10_000))
        close = CloseReceipt(payment_type=PaymentType.CASH).encode()
        # The Add's answer is late, so the host repeats the packet byte for byte: the register
        # answers the repeat from the link (A1 twice), not with B2 and not as a second task.
        frame = first.link.send(AddTask(tid=0x40, request=close))
        await first.write(frame)
        await first.write(first.link.retransmit())
        await trio.sleep(0.01)
        answers = bytes(await first.stream.receive_some())
        half = len(answers) // 2
        assert answers[:half] == answers[half:] == encode_packet(frame[3], b"\xa1")
        first.link.receive_data(answers)
        assert first.link.next_event() == TaskQueued(tid=0x40, status=Status.PENDING)
        assert first.link.next_event() is NEED_DATA  # the late copy is dropped
        await first.stream.aclose()  # the host vanishes while the ФН signs
        assert register.tasks.state(0x40) in (TaskState.PENDING, TaskState.IN_PROGRESS)
        await trio.sleep(2)
        assert register.tasks.state(0x40) is TaskState.RESULT
        assert register.fn.last_fd_number == 3

        # Another host adding the same TID is refused (B2): the task is never run again.
        other = await fleet.connect(tid=0x40)
        refused = await other.exchange(AddTask(tid=0x40, request=close))
        assert refused == [
            TaskRefused(tid=0x40, code=BufferErrorCode.ALREADY_EXISTS, param_index=None)
        ]
        await other.stream.aclose()
        # The driver reconnects with its task table and asks for the result it missed.
        second = await fleet.connect()
        second.link = first.link
        finished = await second.result(0x40, [])
        assert not finished.error and CommandAnswer.decode(finished.answer).ok
        await second.exchange(AckTask(tid=0x40))
        assert register.tasks.state(0x40) is TaskState.ABSENT
        assert register.fn.last_fd_number == 3  # one fiscalization only
        assert len(register.fn.unsent()) == 3


async def _scripted_run(seed: int) -> tuple[Trace, list[float]]:
    trace: Trace = []
    stamps: list[float] = []
    async with open_fleet(seed) as fleet:
        host = await fleet.connect(trace)
        for request in (
            EnterMode(mode=Mode.REGISTRATION, mode_password=1),
            OpenShift(),
            OpenReceipt(receipt_type=ReceiptType.SALE),
            item("Хлеб", 10_000),
            item("Соль", 777),
            CloseReceipt(payment_type=PaymentType.CASH, amount=20_000),
            GetOfdExchangeStatus(),
        ):
            await host.call(request)
            stamps.append(trio.current_time())
    return trace, stamps


def _run_in_mock_time(seed: int) -> tuple[Trace, list[float]]:
    return trio.run(_scripted_run, seed, clock=trio.testing.MockClock(autojump_threshold=0))


def test_determinism() -> None:
    trace_a, stamps_a = _run_in_mock_time(7)
    trace_b, stamps_b = _run_in_mock_time(7)
    _, stamps_c = _run_in_mock_time(8)
    assert trace_a == trace_b and stamps_a == stamps_b
    assert stamps_a != stamps_c


async def test_async_result_test_receipt_and_printing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """WaitAsyncData brings the result unasked (0xF0); a test receipt never reaches the ФН."""
    async with open_fleet(model=ATOL_30F) as fleet:
        fn = fleet.register.fn
        host = await fleet.connect()
        await ok(host, EnterMode(mode=Mode.REGISTRATION, mode_password=1), OpenShift())
        await ok(host, OpenReceipt(flags=1, receipt_type=ReceiptType.SALE), item("Проба", 100))
        assert fn.open_document is None
        await ok(host, CloseReceipt(payment_type=PaymentType.CASH))
        assert fn.last_fd_number == 2

        await ok(host, OpenReceipt(receipt_type=ReceiptType.SALE), item("Хлеб", 100))
        flags = TaskFlags.NEED_RESULT | TaskFlags.WAIT_ASYNC_DATA
        close = CloseReceipt(payment_type=PaymentType.CASH).encode()
        started = trio.current_time()
        events = await host.exchange(AddTask(tid=0x30, request=close, flags=flags))
        assert events == [TaskQueued(tid=0x30, status=Status.PENDING)]
        data = await host.stream.receive_some()  # no Req: the 0xF0 packet comes by itself
        elapsed = trio.current_time() - started
        host.link.receive_data(bytes(data))
        finished = host.link.next_event()
        assert isinstance(finished, TaskFinished) and CommandAnswer.decode(finished.answer).ok
        # 0.4 s to sign, then 8 + 2 + 18 printed lines at 25 ms, each within ±10 %
        assert 0.9 * (0.4 + 28 * 0.025) < elapsed < 1.1 * (0.4 + 28 * 0.025) + 0.01
        await host.exchange(AckTask(tid=0x30))
        assert fn.last_fd_number == 3


async def _async_result_after(work: float) -> float:
    """How long a signed receipt's result takes to come by itself when each command costs the
    emulator ``work`` seconds of its own."""
    clock = trio.lowlevel.current_clock()
    assert isinstance(clock, trio.testing.MockClock)
    async with open_fleet(model=ATOL_30F) as fleet:
        register, execute = fleet.register, fleet.register.execute

        def working(payload: bytes) -> tuple[bytes, float]:
            clock.jump(work)
            return execute(payload)

        register.execute = working  # type: ignore[method-assign]
        host = await fleet.connect()
        await ok(host, EnterMode(mode=Mode.REGISTRATION, mode_password=1), OpenShift())
        await ok(host, OpenReceipt(receipt_type=ReceiptType.SALE), item("Хлеб", 100))
        flags = TaskFlags.NEED_RESULT | TaskFlags.WAIT_ASYNC_DATA
        close = CloseReceipt(payment_type=PaymentType.CASH).encode()
        started = trio.current_time()
        await host.exchange(AddTask(tid=0x30, request=close, flags=flags))
        await host.stream.receive_some()  # the 0xF0 packet with the result
        return trio.current_time() - started


def test_the_emulator_s_own_work_is_part_of_a_command_s_modelled_time() -> None:
    def run(work: float) -> float:
        clock = trio.testing.MockClock(autojump_threshold=0)
        return trio.run(_async_result_after, work, clock=clock)

    # Signing takes 0.4 s and printing more: 50 ms of the emulator's work fits inside it.
    assert run(0.05) == run(0.0) > 0.4
