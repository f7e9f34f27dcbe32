"""The Shtrih-M personality driven by Kassa's own host link roles, in simulated time."""

from __future__ import annotations

import math
import struct
from decimal import Decimal
from typing import Any

import pytest
import trio
import trio.testing

from emulator.serve import open_memory_fleet
from emulator.shtrih import ShtrihRegister
from emulator.timing import RegisterTiming
from protocols.fiscal_sign import EmulatorSignVerifier, printed_fiscal_sign
from protocols.shtrih import (
    NEED_DATA,
    REGISTRY,
    AnswerFrame,
    CommandFrame,
    ErrorAnswer,
    LinkV1Host,
    LinkV2Host,
    Timer,
)
from protocols.shtrih import commands as c
from protocols.shtrih.codes import ErrorCode, Mode, Submode
from protocols.tlv import decode_document, encode

PW = 30
Trace = list[tuple[float, str, bytes]]


class Host:
    """A minimal driver: one of Kassa's host link roles over a trio stream, with a trace."""

    def __init__(self, stream: trio.abc.Stream, version: int, trace: Trace | None = None) -> None:
        self.stream = stream
        self.link: LinkV1Host | LinkV2Host = LinkV1Host() if version == 1 else LinkV2Host()
        self.trace: Trace = [] if trace is None else trace

    async def _write(self, data: bytes) -> None:
        if data:
            self.trace.append((trio.current_time(), ">", data))
            await self.stream.send_all(data)

    async def raw(self, payload: bytes, timeout: float = 30.0) -> bytes:
        """The answer payload to a request payload."""
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
            assert data, "the register closed the connection"
            self.trace.append((trio.current_time(), "<", bytes(data)))
            self.link.receive_data(bytes(data))

    async def call(self, request: c.Request) -> Any:
        spec = REGISTRY[request.CODE]
        payload = await self.raw(request.encode(), spec.timeout_ms / 1000)
        return c.decode_answer(payload)

    async def status(self) -> c.ShortStatusAnswer:
        answer = await self.call(c.ShortStatus(password=PW))
        assert isinstance(answer, c.ShortStatusAnswer)
        return answer


def sale(operation: int = 1, price: int = 10_000, qty: str = "1", name: str = "Хлеб") -> c.Request:
    return c.OperationV2(
        password=PW,
        operation=operation,
        quantity=Decimal(qty),
        price=price,
        tax_rate=1 << 1,
        department=1,
        payment_method=4,
        payment_object=1,
        name=name,
    )


def close(cash: int = 0, card: int = 0, taxation: int = 1) -> c.Request:
    payments = (cash, card, *([0] * 14))
    return c.CloseReceiptV2(
        password=PW, payments=payments, rounding=0, tax_sums=(0,) * 6, taxation=taxation
    )


def error_of(answer: object) -> int:
    return answer.error if isinstance(answer, ErrorAnswer) else 0


async def read_back(host: Host, fd: int) -> bytes:
    info = await host.call(c.DocumentTlvInfo(password=PW, fd_number=fd))
    assert isinstance(info, c.DocumentTlvInfoAnswer)
    body = b""
    while True:
        chunk = await host.call(c.ReadTlv(password=PW))
        if isinstance(chunk, ErrorAnswer):
            assert chunk.error == ErrorCode.FN_NO_DATA
            break
        body += chunk.tlv
    assert len(body) == info.length
    return struct.pack("<HH", info.document_tag, info.length) + body


@pytest.mark.parametrize("version", [1, 2])
async def test_fiscal_life(version: int, autojump_clock: trio.testing.MockClock) -> None:
    async with open_memory_fleet(1) as fleet:
        register = fleet.registers[0]
        host = Host(await fleet.connect(0), version)
        assert (await host.status()).mode == Mode.SHIFT_CLOSED
        assert error_of(await host.call(c.OpenShift(password=PW))) == 0
        assert (await host.status()).mode == Mode.SHIFT_OPEN

        assert error_of(await host.call(sale(price=12_345, qty="2"))) == 0
        tlv = encode({1191: "доп. реквизит"})
        assert error_of(await host.call(c.SendItemTlv(password=PW, tlv=tlv))) == 0
        assert error_of(await host.call(sale(price=5_000, name="//Молоко"))) == 0
        status = await host.status()
        assert status.mode == Mode.DOCUMENT_OPEN and status.receipt_operations == 2
        closed = await host.call(close(cash=30_000, card=2_000))
        assert isinstance(closed, c.CloseReceiptV2Answer)
        assert closed.change == 30_000 + 2_000 - 29_690
        assert closed.fd_number == register.fn.last_fd_number == 3

        document = await read_back(host, closed.fd_number)
        assert document == register.fn.archive[closed.fd_number]
        verifier = EmulatorSignVerifier({register.fn.number: register.fn.key})
        assert verifier.verify(document) is True
        fields = decode_document(document).fields
        sign = fields[1077]
        assert isinstance(sign, bytes) and printed_fiscal_sign(sign) == closed.fiscal_sign
        assert fields[1020] == 29_690 and fields[1031] == 30_000 - 2_310
        items = fields[1059]
        assert isinstance(items, list) and len(items) == 2
        first, second = items
        assert isinstance(first, dict) and first[1191] == "доп. реквизит"
        assert isinstance(second, dict) and second[1030] == "Молоко"

        found = await host.call(c.FindDocument(password=PW, fd_number=closed.fd_number))
        assert isinstance(found, c.FindDocumentAnswer)
        assert (found.operation, found.total, found.fiscal_sign) == (1, 29_690, closed.fiscal_sign)

        # A refund (возврат прихода, 1054 = 2).
        assert error_of(await host.call(sale(operation=2, price=5_000))) == 0
        assert (await host.status()).mode == Mode.DOCUMENT_OPEN | 2 << 4
        refund = await host.call(close(cash=5_000))
        assert isinstance(refund, c.CloseReceiptV2Answer) and refund.fd_number == 4
        found = await host.call(c.FindDocument(password=PW, fd_number=4))
        assert isinstance(found, c.FindDocumentAnswer) and found.operation == 2

        fn_status = await host.call(c.FnStatus(password=PW))
        assert isinstance(fn_status, c.FnStatusAnswer)
        assert (fn_status.fn_serial, fn_status.last_fd, fn_status.shift_open) == (
            register.fn.number,
            4,
            1,
        )
        ofd = await host.call(c.OfdStatus(password=PW))
        assert isinstance(ofd, c.OfdStatusAnswer) and (ofd.queued, ofd.first_fd) == (4, 1)
        unconfirmed = await host.call(c.UnconfirmedCount(password=PW))
        assert isinstance(unconfirmed, c.UnconfirmedCountAnswer) and unconfirmed.count == 4

        assert error_of(await host.call(c.ZReport(password=PW))) == 0
        assert (await host.status()).mode == Mode.SHIFT_CLOSED
        assert register.fn.last_fd_number == 5
        full = await host.call(c.FullStatus(password=PW))
        assert isinstance(full, c.FullStatusAnswer) and full.inn == 7707083893
        serial = await host.call(c.FnSerial(password=PW))
        assert isinstance(serial, c.FnSerialAnswer) and serial.fn_serial == register.fn.number
        expiry = await host.call(c.FnExpiry(password=PW))
        assert isinstance(expiry, c.FnExpiryAnswer)
        device = await host.call(c.DeviceType())
        assert isinstance(device, c.DeviceTypeAnswer) and device.name == "ШТРИХ-ON-LINE"


async def test_wrong_mode_errors(autojump_clock: trio.testing.MockClock) -> None:
    async with open_memory_fleet(1) as fleet:
        host = Host(await fleet.connect(0), 1)
        assert error_of(await host.call(sale())) == ErrorCode.NOT_IN_THIS_MODE
        assert error_of(await host.call(c.ZReport(password=PW))) == ErrorCode.NOT_IN_THIS_MODE
        assert error_of(await host.call(close(cash=1))) == ErrorCode.NOT_IN_THIS_MODE
        assert error_of(await host.call(c.CancelReceipt(password=PW))) == 0x73
        assert error_of(await host.call(c.ShortStatus(password=99))) == ErrorCode.WRONG_PASSWORD
        assert error_of(await host.call(c.FnStatus(password=1))) == ErrorCode.WRONG_PASSWORD
        unknown = ErrorAnswer.decode(await host.raw(bytes((0x50, PW, 0, 0, 0))))
        assert unknown.error == ErrorCode.NOT_SUPPORTED
        bad = ErrorAnswer.decode(await host.raw(bytes((0x10, PW))))
        assert bad.error == ErrorCode.BAD_PARAMETERS
        missing = await host.call(c.FindDocument(password=PW, fd_number=99))
        assert error_of(missing) == ErrorCode.FN_NO_DATA

        assert error_of(await host.call(c.OpenShift(password=PW))) == 0
        assert error_of(await host.call(c.OpenShift(password=PW))) == ErrorCode.NOT_IN_THIS_MODE
        assert error_of(await host.call(sale())) == 0
        assert error_of(await host.call(c.ZReport(password=PW))) == ErrorCode.RECEIPT_OPEN
        assert error_of(await host.call(sale(operation=3))) == ErrorCode.WRONG_OPERATION
        below = await host.call(close(cash=9_999))
        assert error_of(below) == ErrorCode.PAYMENTS_BELOW_TOTAL
        too_much_card = await host.call(close(card=20_000))
        assert error_of(too_much_card) == ErrorCode.NOT_ENOUGH_CASH
        assert error_of(await host.call(close(cash=10_000, taxation=1 << 5))) == 0x33
        assert error_of(await host.call(c.CancelReceipt(password=PW))) == 0
        assert (await host.status()).mode == Mode.SHIFT_OPEN
        assert fleet.registers[0].fn.open_document is None
        code = b"0104601234567893215Ab7Cd9ExY\x1d91EE07\x1d92" + b"A" * 44
        check = await host.call(
            c.CheckMarking(password=PW, planned_status=1, mode=0, marking_code=code)
        )
        assert isinstance(check, c.CheckMarkingAnswer) and check.check_result == 0x0F


async def test_printing_submode(autojump_clock: trio.testing.MockClock) -> None:
    for model, prints in (("shtrih-m-01f", True), ("shtrih-m-online", False)):
        async with open_memory_fleet(1, model=model) as fleet:
            host = Host(await fleet.connect(0), 1)
            assert error_of(await host.call(c.OpenShift(password=PW))) == 0
            seen = []
            while (await host.status()).submode == Submode.PRINTING:
                seen.append(trio.current_time())
                await trio.sleep(0.1)
            for _ in range(3):
                assert error_of(await host.call(sale())) == 0
            assert isinstance(await host.call(close(cash=30_000)), c.CloseReceiptV2Answer)
            started = trio.current_time()
            status = await host.status()
            assert (status.submode == Submode.PRINTING) is prints
            if prints:
                assert error_of(await host.call(sale())) == ErrorCode.PRINTING_PREVIOUS
                while (await host.status()).submode == Submode.PRINTING:
                    await trio.sleep(0.05)
                # 8 + 2 × 3 + 18 lines at about 25 ms each
                assert 0.6 < trio.current_time() - started < 1.0
                assert seen, "the shift opening report printed too"
            assert error_of(await host.call(sale())) == 0
            line = c.PrintLine(password=PW, flags=2, text="строка")
            assert error_of(await host.call(line)) == 0


async def test_shift_expires_after_24_hours(autojump_clock: trio.testing.MockClock) -> None:
    async with open_memory_fleet(1) as fleet:
        host = Host(await fleet.connect(0), 2)
        assert error_of(await host.call(c.OpenShift(password=PW))) == 0
        await trio.sleep(23 * 3600)
        assert (await host.status()).mode == Mode.SHIFT_OPEN
        await trio.sleep(3600 + 60)
        assert (await host.status()).mode == Mode.SHIFT_EXPIRED
        assert error_of(await host.call(sale())) == ErrorCode.SHIFT_OVER_24H
        assert error_of(await host.call(c.ZReport(password=PW))) == 0
        assert error_of(await host.call(c.OpenShift(password=PW))) == 0
        assert error_of(await host.call(sale())) == 0


async def test_reconnect_mid_receipt(autojump_clock: trio.testing.MockClock) -> None:
    async with open_memory_fleet(1) as fleet:
        first = Host(await fleet.connect(0), 1)
        assert error_of(await first.call(c.OpenShift(password=PW))) == 0
        assert error_of(await first.call(sale())) == 0
        await first.stream.aclose()
        second = Host(await fleet.connect(0), 2)
        status = await second.status()
        assert status.mode == Mode.DOCUMENT_OPEN and status.receipt_operations == 1
        fn_status = await second.call(c.FnStatus(password=PW))
        assert isinstance(fn_status, c.FnStatusAnswer) and fn_status.current_document == 4
        closed = await second.call(close(cash=10_000))
        assert isinstance(closed, c.CloseReceiptV2Answer) and closed.fd_number == 3


async def _scripted_run(seed: int) -> tuple[Trace, list[float]]:
    trace: Trace = []
    stamps: list[float] = []
    async with open_memory_fleet(1, seed=seed, model="shtrih-m-01f") as fleet:
        for version in (1, 2):
            host = Host(await fleet.connect(0), version, trace)
            for request in (c.OpenShift(password=PW), sale(), sale(price=777), close(cash=20_000)):
                await host.call(request)
                stamps.append(trio.current_time())
            while (await host.status()).submode == Submode.PRINTING:
                await trio.sleep(0.01)
            await host.call(c.ZReport(password=PW))
            stamps.append(trio.current_time())
            await host.stream.aclose()
    return trace, stamps


def _run_in_mock_time(seed: int) -> tuple[Trace, list[float]]:
    return trio.run(_scripted_run, seed, clock=trio.testing.MockClock(autojump_threshold=0))


def test_determinism() -> None:
    trace_a, stamps_a = _run_in_mock_time(7)
    trace_b, stamps_b = _run_in_mock_time(7)
    _, stamps_c = _run_in_mock_time(8)
    assert trace_a == trace_b and stamps_a == stamps_b
    assert stamps_a != stamps_c


async def test_enq_while_executing_gets_ack(autojump_clock: trio.testing.MockClock) -> None:
    """A v1 host that probes during a long command hears "preparing" (ACK), then the answer."""
    async with open_memory_fleet(1) as fleet:
        stream = await fleet.connect(0)
        await stream.send_all(b"\x05")
        assert await stream.receive_some() == b"\x15"
        await stream.send_all(bytes.fromhex("02 05 E0 1E 00 00 00 FB"))  # E0h, §1.10 R13
        assert await stream.receive_some() == b"\x06"
        await trio.sleep(0.3)  # the shift opening takes about 0.8 s on this model
        await stream.send_all(b"\x05")
        assert await stream.receive_some() == b"\x06"
        answer = await stream.receive_some()
        assert answer == bytes.fromhex("02 03 E0 00 1E FD")
        await stream.send_all(b"\x06")
        assert await stream.receive_some() == b"\xff"  # the TCP line's filler after ACK


async def test_the_fleet_delivers_documents_to_its_ofd(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A served fleet's registers send every document to the emulated OFD and get acks."""
    async with open_memory_fleet(2, ofd=True) as fleet:
        assert fleet.ofd is not None
        host = Host(await fleet.connect(1), 2)
        assert error_of(await host.call(c.OpenShift(password=PW))) == 0
        assert error_of(await host.call(sale())) == 0
        assert isinstance(await host.call(close(cash=10_000)), c.CloseReceiptV2Answer)
        with trio.fail_after(600):
            while any(register.fn.unsent() for register in fleet.registers):
                await trio.sleep(1)
        delivered = {(d.fn_number, d.fd_number) for d in fleet.ofd.deliveries}
        for register in fleet.registers:
            archived = {(register.fn.number, fd) for fd in register.fn.archive}
            assert archived <= delivered
        assert all(d.response_code == 0 for d in fleet.ofd.deliveries)
        receipt = fleet.registers[1].fn.last_fd_number
        sent = next(
            d
            for d in fleet.ofd.deliveries
            if d.fd_number == receipt and d.fn_number == fleet.registers[1].fn.number
        )
        assert sent.document == fleet.registers[1].fn.archive[receipt]  # byte for byte


async def test_a_fleet_injects_its_fault_plan_and_logs_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    began = trio.current_time()
    async with open_memory_fleet(2, faults="shift-expired@1h#1", ofd=True) as fleet:
        hosts = [Host(await fleet.connect(i), 2) for i in (0, 1)]
        for host in hosts:
            assert error_of(await host.call(c.OpenShift(password=PW))) == 0
        await trio.sleep(3601)
        assert (await hosts[0].status()).mode == Mode.SHIFT_OPEN
        assert (await hosts[1].status()).mode == Mode.SHIFT_EXPIRED
        (event,) = fleet.faults
        assert (event.register, event.kind) == (1, "shift-expired")
        assert event.at - began == 3600  # at its scheduled simulated time


@pytest.mark.parametrize("work", [0.0, 0.05])
@pytest.mark.parametrize("version", [1, 2])
async def test_an_answer_leaves_after_its_command_and_its_own_time_on_the_line(
    version: int, work: float, autojump_clock: trio.testing.MockClock
) -> None:
    """On a serial line an answer takes the command's time, then 10 bits a byte at the baud.

    The emulator's own work on a command (``work`` seconds of it) is part of the command's
    modelled time, not added to it.
    """
    async with open_memory_fleet(1, line="serial") as fleet:
        register = fleet.registers[0]
        assert isinstance(register, ShtrihRegister)
        execute = register.execute

        def working(payload: bytes) -> tuple[bytes, float]:
            autojump_clock.jump(work)
            return execute(payload)

        register.execute = working  # type: ignore[method-assign]
        # The same seed and index draw the same jitter: the twin times each command as it does.
        twin = RegisterTiming(register.model, seed=0, index=0, line="serial")
        trace: Trace = []
        host = Host(await fleet.connect(0), version, trace)
        await host.status()
        begin = len(trace)
        opened = await host.call(c.OpenShift(password=PW))
        assert error_of(opened) == 0
        stx = 0x02 if version == 1 else 0x8F
        sent, received = (
            [(t, d) for t, way, d in trace[begin:] if way == arrow and d[0] == stx]
            for arrow in (">", "<")
        )
        (command_sent, _), (answer_time, answer) = sent[0], received[0]
        twin.command(0x10)  # the status before
        ack = twin.wire(1) if version == 1 else 0.0  # v1 acknowledges the frame first
        modelled = ack + twin.command(0xE0) + twin.wire(len(answer))
        assert answer_time - command_sent == pytest.approx(modelled, abs=1e-9)
