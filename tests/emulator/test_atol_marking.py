"""Marking codes on the ATOL personality: D1h → D2h (polled) → D3h/D4h, the item's КМ through
E8h, the ФН's 2106 in the archived document, the ОИСМ's verdicts and timing, and misuse."""

from __future__ import annotations

import struct
from decimal import Decimal
from typing import Any

import attrs
import trio
import trio.testing

from emulator.marking import HostResults, MarkingPolicy
from protocols.atol import (
    AcceptMarkingCode,
    BeginMarkingCheck,
    CancelReceipt,
    CloseReceipt,
    CommandAnswer,
    DeclineMarkingCode,
    EnterMode,
    ErrorCode,
    GetMarkingCheckStatus,
    MarkingCheckPending,
    MarkingCheckResult,
    MarkingDecision,
    Mode,
    OpenReceipt,
    OpenShift,
    PaymentType,
    ReceiptType,
    RegisterItem,
    Request,
)
from protocols.atol.commands import FLAG_ITEM_REQUISITE, WriteRequisite
from protocols.documents.ffd import decode_receipt
from protocols.documents.model import Item
from protocols.fn import MarkingRefusal, OnlineCheckCode
from protocols.tlv import decode, encode
from tests.emulator.test_atol_register import Host, error_of, last_fd, ok, open_fleet, read_document

GTIN = "04601234567893"
TAIL_44 = "\x1d91EE07\x1d92" + "A" * 44


def km(serial: str = "5Ab7Cd9ExY", tail: str = TAIL_44) -> str:
    """A GS1 DataMatrix marking code (КМ, 2000) as the scanner reads it."""
    return f"01{GTIN}21{serial}{tail}"


def product(serial: str = "5Ab7Cd9ExY") -> dict[int, str]:
    return {1305: f"01{GTIN}21{serial}"}


def begin(code: str, planned: int = 1, mode: int = 0) -> BeginMarkingCheck:
    return BeginMarkingCheck(
        planned_status=planned, processing_mode=mode, marking_code=code.encode("cp866")
    )


def shoes(price: int = 549_000) -> RegisterItem:
    return RegisterItem(name="Кроссовки", price=price, quantity=Decimal(1), tax=1)


def item_tags(tags: dict[int, Any]) -> WriteRequisite:
    """E8h for the last item; a КМ (2000) goes as its raw bytes, GS and all."""
    scanned = tags.pop(2000, None)
    data = encode(tags)
    if scanned is not None:
        raw = scanned.encode("cp866")
        data += struct.pack("<HH", 2000, len(raw)) + raw
    return WriteRequisite(flags=FLAG_ITEM_REQUISITE, data=data)


async def registration(host: Host) -> None:
    await ok(host, EnterMode(mode=Mode.REGISTRATION, mode_password=1), OpenShift())


async def checked(host: Host, code: str) -> tuple[MarkingCheckResult, float, int]:
    """Begin the check, poll D2h until it is done: the result, its time and the polls."""
    began = trio.current_time()
    await ok(host, begin(code))
    polls = 0
    while True:
        status = await host.call(GetMarkingCheckStatus())
        polls += 1
        if not isinstance(status, MarkingCheckPending):
            break
        await trio.sleep(0.1)
    assert isinstance(status, MarkingCheckResult), status
    return status, trio.current_time() - began, polls


async def decided(host: Host, request: Request) -> int:
    answer = await host.call(request)
    assert isinstance(answer, MarkingDecision), answer
    return answer.check_result


async def sell(host: Host, tags: dict[int, Any], price: int = 549_000) -> Item:
    """A sale of one item with its E8h tags, closed in cash; the archived item."""
    await ok(host, OpenReceipt(receipt_type=ReceiptType.SALE), shoes(price))
    await ok(host, item_tags({1212: 33, 2003: 1, **tags}))
    await ok(host, CloseReceipt(payment_type=PaymentType.CASH))
    receipt = decode_receipt(await read_document(host, await last_fd(host))).receipt
    (item,) = receipt.items
    return item


async def test_a_code_that_passes(autojump_clock: trio.testing.MockClock) -> None:
    async with open_fleet() as fleet:
        fn = fleet.register.fn
        host = await fleet.connect()
        await registration(host)
        result, took, polls = await checked(host, km())
        assert polls > 1 and 0.4 < took < 1.5  # D1h answers at once; the check runs on
        assert (result.local_status, result.local_reason, result.code_type) == (3, 0, 4)
        assert (result.check_result, result.online_code) == (0x0F, OnlineCheckCode.ANSWERED)
        assert decode(result.server_tlv).fields == {2105: 0, 2005: 0x0F, 2109: 1}
        assert await decided(host, AcceptMarkingCode()) == 0x0F
        assert len(fn.marking_accepted) == 1

        item = await sell(host, {2000: km()})
        assert fn.marking_accepted == ()
        assert item.payment_subject == 33 and item.marking is not None
        assert (item.marking.kind, item.marking.code) == ("gs1m", f"01{GTIN}215Ab7Cd9ExY")
        assert (item.marking.check_result, item.marking.processing_mode) == (0x0F, 0)
        # A 1163 alone binds the accepted code of the same product code.
        await checked(host, km("Other01"))
        assert await decided(host, AcceptMarkingCode()) == 0x0F
        item = await sell(host, {1163: product("Other01")})
        assert item.marking is not None and item.marking.check_result == 0x0F


async def test_codes_that_fail_or_go_unanswered(autojump_clock: trio.testing.MockClock) -> None:
    async with open_fleet() as fleet:
        register = fleet.register
        host = await fleet.connect()
        await registration(host)
        for serial, local, online, result in (
            ("FORGED00001", 1, b"\x00", 0x05),
            ("REJECT00001", 3, b"\x00", 0x07),
            ("SILENT00001", 3, b"\xff", 0x13),
        ):
            status, took, _ = await checked(host, km(serial))
            assert (status.local_status, status.online[:1], status.check_result) == (
                local,
                online,
                result,
            )
            if serial.startswith("SILENT"):
                assert status.server_tlv == b"" and took >= register.model.oism_timeout
            else:
                assert decode(status.server_tlv).fields[2109] == 2
            assert await decided(host, AcceptMarkingCode()) == result
            item = await sell(host, {2000: km(serial)})
            assert item.marking is not None and item.marking.check_result == result

        register.fn.marking_policy = MarkingPolicy(online=False)
        status, took, _ = await checked(host, km())
        assert status.online == b"" and status.check_result == 0x13 and took < 0.3


async def test_decline_keeps_nothing(autojump_clock: trio.testing.MockClock) -> None:
    async with open_fleet() as fleet:
        fn = fleet.register.fn
        host = await fleet.connect()
        await registration(host)
        await checked(host, km())
        assert await decided(host, DeclineMarkingCode()) == 0x0F
        assert fn.marking_pending is None and fn.marking_accepted == ()
        again = await host.call(AcceptMarkingCode())
        assert again == CommandAnswer(error=ErrorCode.FN_ERROR, extended=0xA1)
        item = await sell(host, {2000: km()})  # bound to nothing: "not checked"
        assert item.marking is not None and item.marking.check_result == 0


async def test_misuse_is_refused(autojump_clock: trio.testing.MockClock) -> None:
    async with open_fleet() as fleet:
        fn = fleet.register.fn
        host = await fleet.connect()
        sequence = CommandAnswer(error=ErrorCode.FN_ERROR, extended=MarkingRefusal.WRONG_SEQUENCE)

        assert error_of(await host.call(begin(km()))) == ErrorCode.WRONG_MODE
        await registration(host)
        assert await host.call(GetMarkingCheckStatus()) == sequence
        assert await host.call(AcceptMarkingCode()) == sequence
        for bad in (begin(""), begin("КМ"), begin(km(), planned=0), begin(km(), mode=1)):
            assert error_of(await host.call(bad)) == ErrorCode.WRONG_FORMAT
        bad_tlv = attrs.evolve(begin(km()), tlv=b"\x01")
        assert error_of(await host.call(bad_tlv)) == ErrorCode.WRONG_FORMAT

        await ok(host, begin(km("A1")))
        assert await host.call(AcceptMarkingCode()) == sequence  # the check still runs
        assert await host.call(begin(km("A2"))) == sequence
        await trio.sleep(1)
        await ok(host, OpenReceipt(receipt_type=ReceiptType.SALE), shoes())
        assert await host.call(CloseReceipt(payment_type=PaymentType.CASH)) == sequence
        assert await decided(host, AcceptMarkingCode()) == 0x0F
        await ok(host, item_tags({1212: 33, 2000: km("A1")}))
        twice = item_tags({2000: km("A1")})
        assert error_of(await host.call(twice)) == ErrorCode.WRONG_FORMAT  # the item is bound
        other = item_tags({1163: product("OTHER")})
        assert error_of(await host.call(other)) == ErrorCode.WRONG_FORMAT
        await ok(host, item_tags({1163: product("A1"), 2102: 0}))  # the same tags may repeat
        await ok(host, shoes())
        unreadable = item_tags({2000: "КМ\x00"})
        assert error_of(await host.call(unreadable)) == ErrorCode.WRONG_FORMAT
        await ok(host, CloseReceipt(payment_type=PaymentType.CASH))

        await checked(host, km("B1"))
        assert await decided(host, AcceptMarkingCode()) == 0x0F
        await ok(host, OpenReceipt(receipt_type=ReceiptType.SALE), shoes())
        wrong = item_tags({1163: product("B2"), 2000: km("B1")})
        assert error_of(await host.call(wrong)) == ErrorCode.WRONG_FORMAT  # 1163 differs
        assert len(fn.marking_accepted) == 1  # the refusal took nothing from the ФН
        await ok(host, CancelReceipt())
        assert fn.marking_accepted == ()

        await ok(host, OpenReceipt(receipt_type=ReceiptType.PURCHASE), shoes())
        purchase = item_tags({2000: km()})
        assert error_of(await host.call(purchase)) == ErrorCode.WRONG_FORMAT
        await ok(host, CancelReceipt())

        fn.limits = attrs.evolve(fn.limits, marking_codes=1)
        await checked(host, km("C1"))
        assert await decided(host, AcceptMarkingCode()) == 0x0F
        full = await host.call(begin(km("C2")))
        assert full == CommandAnswer(error=ErrorCode.FN_ERROR, extended=MarkingRefusal.TABLE_FULL)


async def test_the_fn_s_rule_for_the_host_s_2106(autojump_clock: trio.testing.MockClock) -> None:
    async with open_fleet() as fleet:
        fn = fleet.register.fn
        assert fn.marking_policy.host_results is HostResults.REFUSE  # the ФН-М's, by default
        fn.marking_policy = MarkingPolicy(host_results=HostResults.KEEP)
        host = await fleet.connect()
        await registration(host)
        item = await sell(host, {1163: product(), 2106: 15})  # KEEP: as the host sent it
        assert item.marking is not None and item.marking.check_result == 15
        await checked(host, km("REJECT1"))
        await decided(host, AcceptMarkingCode())
        item = await sell(host, {2000: km("REJECT1"), 2106: 15})  # a bound code's 2106 wins
        assert item.marking is not None and item.marking.check_result == 0x07

        fn.marking_policy = MarkingPolicy()  # REFUSE
        await ok(host, OpenReceipt(receipt_type=ReceiptType.SALE), shoes())
        own = item_tags({1212: 33, 1163: product(), 2106: 15})
        assert error_of(await host.call(own)) == ErrorCode.WRONG_FORMAT
        await ok(host, CancelReceipt())
        item = await sell(host, {1163: product()})  # never checked: "not checked"
        assert item.marking is not None and item.marking.check_result == 0
