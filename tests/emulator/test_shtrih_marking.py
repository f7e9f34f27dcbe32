"""Marking codes on the Shtrih-M personality: FF61h → FF69h → FF46h → FF4Dh → FF67h → FF45h, the
ФН's 2106 in the archived document, the ОИСМ's verdicts and timing, and every misuse refused."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from emulator.marking import HostResults, MarkingPolicy
from emulator.serve import open_memory_fleet
from emulator.shtrih import ShtrihRegister
from protocols.documents.ffd import decode_receipt
from protocols.documents.model import Item
from protocols.fn import OnlineCheckCode
from protocols.shtrih import commands as c
from protocols.shtrih.codes import ErrorCode, MarkingDecision
from protocols.tlv import decode, encode
from tests.emulator.test_shtrih_register import PW, Host, close, error_of, read_back

GTIN = "04601234567893"
TAIL_44 = "\x1d91EE07\x1d92" + "A" * 44


def km(serial: str = "5Ab7Cd9ExY", tail: str = TAIL_44) -> bytes:
    """A GS1 DataMatrix marking code (КМ) as the scanner reads it."""
    return f"01{GTIN}21{serial}{tail}".encode("ascii")


def product(serial: str = "5Ab7Cd9ExY") -> dict[int, str]:
    """The 1163 a bound code gives its line: GS1.M (1305), GTIN and serial."""
    return {1305: f"01{GTIN}21{serial}"}


def check(code: bytes, planned: int = 1, mode: int = 0, tlv: bytes = b"") -> c.CheckMarking:
    return c.CheckMarking(
        password=PW, planned_status=planned, mode=mode, marking_code=code, tlv=tlv
    )


def decide(decision: int) -> c.AcceptMarking:
    return c.AcceptMarking(password=PW, decision=decision)


def bind(code: bytes) -> c.BindMarking:
    return c.BindMarking(password=PW, marking_code=code)


def marked_line(operation: int = 1, price: int = 549_000) -> c.OperationV2:
    return c.OperationV2(
        password=PW,
        operation=operation,
        quantity=Decimal(1),
        price=price,
        tax_rate=1,
        department=1,
        payment_method=4,
        payment_object=33,  # товар, подлежащий маркировке, с КМ
        name="Кроссовки",
    )


async def ok(host: Host, *requests: c.Request) -> list[Any]:
    answers = []
    for request in requests:
        answer = await host.call(request)
        assert error_of(answer) == 0, (request, answer)
        answers.append(answer)
    return answers


async def timed(host: Host, request: c.Request) -> tuple[Any, float]:
    began = trio.current_time()
    answer = await host.call(request)
    return answer, trio.current_time() - began


async def sell(host: Host, code: bytes, *, price: int = 549_000) -> c.CloseReceiptV2Answer:
    """The line, its FF4Dh tags and the code bound, closed in cash."""
    await ok(host, marked_line(price=price), c.SendItemTlv(password=PW, tlv=encode({2003: 1})))
    await ok(host, bind(code))
    closed = await host.call(close(cash=price))
    assert isinstance(closed, c.CloseReceiptV2Answer)
    return closed


async def archived_item(host: Host, fd_number: int) -> Item:
    receipt = decode_receipt(await read_back(host, fd_number)).receipt
    (item,) = receipt.items
    return item


@pytest.mark.parametrize("version", [1, 2])
async def test_a_code_that_passes(version: int, autojump_clock: trio.testing.MockClock) -> None:
    async with open_memory_fleet(1) as fleet:
        fn = fleet.registers[0].fn
        host = Host(await fleet.connect(0), version)
        await ok(host, c.OpenShift(password=PW))
        answer, took = await timed(host, check(km()))
        assert isinstance(answer, c.CheckMarkingAnswer)
        assert (answer.local_status, answer.local_reason, answer.code_type) == (3, 0, 4)
        assert (answer.fn_answer_code, answer.check_result) == (OnlineCheckCode.ANSWERED, 0x0F)
        assert decode(answer.server_tlv).fields == {2105: 0, 2005: 0x0F, 2109: 1}
        assert 0.4 < took < 1.0  # the ФН's check and the ОИСМ's answer (fr_drv_ng #145: 537 ms)
        (accepted,) = await ok(host, decide(MarkingDecision.ACCEPT))
        assert accepted == c.AcceptMarkingAnswer(check_result=0x0F)
        assert len(fn.marking_accepted) == 1

        await ok(host, marked_line(), c.SendItemTlv(password=PW, tlv=encode({2003: 1})))
        (bound,) = await ok(host, bind(km()))
        assert bound == c.BindMarkingAnswer(code_type=1305, datamatrix_type=3)
        assert fn.marking_accepted == ()
        closed = await host.call(close(cash=549_000))
        assert isinstance(closed, c.CloseReceiptV2Answer)
        item = await archived_item(host, closed.fd_number)
        assert item.payment_subject == 33 and item.marking is not None
        marking = item.marking
        assert (marking.kind, marking.code) == ("gs1m", f"01{GTIN}215Ab7Cd9ExY")
        assert (marking.check_result, marking.processing_mode, marking.planned_status) == (
            0x0F,
            0,
            1,
        )


@pytest.mark.parametrize(
    "serial,local,result",
    [
        ("FORGED00001", 1, 0x05),  # the ФН's check of the КП КМ fails
        ("REJECT00001", 3, 0x07),  # the ОИСМ says the planned status is incorrect
    ],
)
async def test_codes_that_fail(
    serial: str, local: int, result: int, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_memory_fleet(1) as fleet:
        host = Host(await fleet.connect(0), 1)
        await ok(host, c.OpenShift(password=PW))
        (answer,) = await ok(host, check(km(serial)))
        assert (answer.local_status, answer.check_result) == (local, result)
        assert decode(answer.server_tlv).fields[2109] == 2  # планируемый статус некорректен
        (accepted,) = await ok(host, decide(MarkingDecision.ACCEPT))
        assert accepted.check_result == result
        closed = await sell(host, km(serial))
        marking = (await archived_item(host, closed.fd_number)).marking
        assert marking is not None and marking.check_result == result


async def test_no_answer_in_time(autojump_clock: trio.testing.MockClock) -> None:
    async with open_memory_fleet(1) as fleet:
        register = fleet.registers[0]
        assert isinstance(register, ShtrihRegister)
        host = Host(await fleet.connect(0), 2)
        await ok(host, c.OpenShift(password=PW))
        answer, took = await timed(host, check(km("SILENT00001")))
        assert isinstance(answer, c.CheckMarkingAnswer)
        assert answer.online == b"\xff" and answer.check_result is None
        wait = register.model.oism_timeout
        assert wait <= took < wait + 1.0 < c.REGISTRY[0xFF61].timeout_ms / 1000
        (accepted,) = await ok(host, decide(MarkingDecision.ACCEPT))
        assert accepted.check_result == 0x13  # checked and valid, formed without the ОИСМ
        closed = await sell(host, km("SILENT00001"))
        marking = (await archived_item(host, closed.fd_number)).marking
        assert marking is not None and marking.check_result == 0x13


async def test_without_the_oism(autojump_clock: trio.testing.MockClock) -> None:
    async with open_memory_fleet(1) as fleet:
        fleet.registers[0].fn.marking_policy = MarkingPolicy(online=False)
        host = Host(await fleet.connect(0), 1)
        answer, took = await timed(host, check(km()))
        assert isinstance(answer, c.CheckMarkingAnswer)
        assert answer.online == b"" and took < 0.2
        (accepted,) = await ok(host, decide(MarkingDecision.ACCEPT))
        assert accepted.check_result == 0x13


async def test_reject_keeps_nothing(autojump_clock: trio.testing.MockClock) -> None:
    async with open_memory_fleet(1) as fleet:
        fn = fleet.registers[0].fn
        host = Host(await fleet.connect(0), 1)
        await ok(host, c.OpenShift(password=PW), check(km()))
        (rejected,) = await ok(host, decide(MarkingDecision.REJECT))
        assert rejected.check_result == 0x0F
        assert fn.marking_pending is None and fn.marking_accepted == ()
        again = await host.call(decide(MarkingDecision.ACCEPT))
        assert error_of(again) == ErrorCode.FN_MARKING_WRONG_SEQUENCE
        # A code not accepted is checked by the register itself when bound (FF67h note 1).
        await ok(host, marked_line())
        bound, took = await timed(host, bind(km("REJECT00001")))
        assert isinstance(bound, c.BindMarkingAnswer) and took > 0.4
        assert (bound.code_type, bound.local_status, bound.recognised_type) == (1305, 3, 4)
        assert (bound.fn_answer_code, bound.check_result) == (0, 0x07)
        assert fn.marking_accepted == ()
        closed = await host.call(close(cash=549_000))
        assert isinstance(closed, c.CloseReceiptV2Answer)
        marking = (await archived_item(host, closed.fd_number)).marking
        assert marking is not None and marking.check_result == 0x07


async def test_misuse_is_refused(autojump_clock: trio.testing.MockClock) -> None:
    async with open_memory_fleet(1) as fleet:
        fn = fleet.registers[0].fn
        host = Host(await fleet.connect(0), 1)

        async def error(request: c.Request) -> int:
            return error_of(await host.call(request))

        assert await error(decide(MarkingDecision.ACCEPT)) == ErrorCode.FN_MARKING_WRONG_SEQUENCE
        assert await error(check(b"")) == ErrorCode.MARKING_CODE_UNREADABLE
        assert await error(check(km() + b"\x00")) == ErrorCode.MARKING_CODE_UNREADABLE
        assert await error(check(km(), planned=0)) == ErrorCode.BAD_PARAMETERS
        assert await error(check(km(), mode=1)) == ErrorCode.BAD_PARAMETERS
        assert await error(check(km(), tlv=b"\x01")) == ErrorCode.BAD_PARAMETERS  # not a TLV
        assert await error(decide(3)) == ErrorCode.BAD_PARAMETERS
        assert await error(bind(km())) == ErrorCode.NOT_IN_THIS_MODE  # no receipt

        await ok(host, c.OpenShift(password=PW), check(km("A1")))
        assert await error(check(km("A2"))) == ErrorCode.FN_MARKING_WRONG_SEQUENCE
        await ok(host, marked_line())
        assert await error(bind(km("A2"))) == ErrorCode.FN_MARKING_WRONG_SEQUENCE  # A1 pending
        assert await error(close(cash=549_000)) == ErrorCode.FN_MARKING_WRONG_SEQUENCE
        await ok(host, decide(MarkingDecision.ACCEPT), bind(km("A1")))
        assert await error(bind(km("A1"))) == ErrorCode.BAD_PARAMETERS  # the line is bound
        other = c.SendItemTlv(password=PW, tlv=encode({1163: product("OTHER")}))
        assert await error(other) == ErrorCode.BAD_PARAMETERS  # 1163 differs from the code's
        same = c.SendItemTlv(password=PW, tlv=encode({1163: product("A1"), 2102: 0}))
        assert await error(same) == 0
        await ok(host, marked_line())
        assert await error(bind(b"9" * 33)) == ErrorCode.BAD_PARAMETERS  # no 1163 from it
        await ok(host, c.SendItemTlv(password=PW, tlv=encode({1163: product("A9")})))
        closed = await host.call(close(cash=2 * 549_000))
        assert isinstance(closed, c.CloseReceiptV2Answer)

        await ok(host, check(km("B1")), decide(MarkingDecision.CLEAR))
        assert fn.marking_pending is None and fn.marking_accepted == ()
        await ok(host, check(km("B1")), decide(MarkingDecision.ACCEPT))
        await ok(host, marked_line())
        tagged = c.SendItemTlv(password=PW, tlv=encode({1163: product("B2")}))
        await ok(host, tagged)
        assert await error(bind(km("B1"))) == ErrorCode.BAD_PARAMETERS  # 1163 from FF4Dh differs
        assert len(fn.marking_accepted) == 1  # the refusal took nothing from the ФН
        await ok(host, c.CancelReceipt(password=PW))
        assert fn.marking_accepted == ()  # a cancelled receipt takes its checks with it

        await ok(host, marked_line(operation=3))  # расход: marking codes are not bound there
        assert await error(bind(km())) == ErrorCode.WRONG_OPERATION
        await ok(host, c.CancelReceipt(password=PW))

        fn.limits = attrs.evolve(fn.limits, marking_codes=1)
        await ok(host, check(km("C1")), decide(MarkingDecision.ACCEPT))
        assert await error(check(km("C2"))) == ErrorCode.FN_MARKING_TABLE_FULL


async def test_the_fn_s_rule_for_the_host_s_2106(autojump_clock: trio.testing.MockClock) -> None:
    async with open_memory_fleet(1) as fleet:
        fn = fleet.registers[0].fn
        host = Host(await fleet.connect(0), 1)
        await ok(host, c.OpenShift(password=PW))

        # KEEP (hosts that send their own): the host's 2106 goes in as sent; a bound code's
        # replaces it.
        assert fn.marking_policy.host_results is HostResults.REFUSE  # the ФН-М's, by default
        fn.marking_policy = MarkingPolicy(host_results=HostResults.KEEP)
        own = c.SendItemTlv(password=PW, tlv=encode({1163: product(), 2106: 15}))
        await ok(host, marked_line(), own)
        closed = await host.call(close(cash=549_000))
        assert isinstance(closed, c.CloseReceiptV2Answer)
        marking = (await archived_item(host, closed.fd_number)).marking
        assert marking is not None and marking.check_result == 15
        await ok(host, check(km("REJECT1")), decide(MarkingDecision.ACCEPT))
        lying = c.SendItemTlv(password=PW, tlv=encode({2106: 15}))
        await ok(host, marked_line(), lying, bind(km("REJECT1")))
        closed = await host.call(close(cash=549_000))
        assert isinstance(closed, c.CloseReceiptV2Answer)
        marking = (await archived_item(host, closed.fd_number)).marking
        assert marking is not None and marking.check_result == 0x07

        # REFUSE (the ФН's rule): no 2106 from the host; an unbound marked line is "not checked".
        fn.marking_policy = MarkingPolicy()
        await ok(host, marked_line())
        assert error_of(await host.call(own)) == ErrorCode.BAD_PARAMETERS
        await ok(host, c.SendItemTlv(password=PW, tlv=encode({1163: product()})))
        closed = await host.call(close(cash=549_000))
        assert isinstance(closed, c.CloseReceiptV2Answer)
        marking = (await archived_item(host, closed.fd_number)).marking
        assert marking is not None and marking.check_result == 0
