"""The ATOL driver against the emulated ATOL register, over in-memory streams in mock time.

The property that matters most: the document read back from the ФН decodes to the receipt
that was sent (items with 1214/1212, payments, totals, 1192/1084, markings), whatever its kind.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal

import attrs
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from emulator.atol import AtolRegister
from emulator.serve import INN, MemoryFleet, open_memory_fleet
from engine.drivers.atol import (
    ANSWER_TIMEOUT,
    MAX_ATTEMPTS,
    TASK_TIMEOUT,
    AtolDriver,
    NotCarried,
)
from engine.drivers.base import Fiscalized, LinkLost, RefusalReason, RegisterRefused
from protocols.atol.commands import (
    CommandAnswer,
    ErrorCode,
    OpenReceipt,
    ReceiptType,
    RegisterItem,
    WriteRequisite,
)
from protocols.atol.taxes import DEFAULT as DEFAULT_TAXES
from protocols.atol.taxes import TABLES
from protocols.documents.ffd import decode_receipt
from protocols.documents.model import (
    Company,
    CorrectionReceipt,
    IndustryProp,
    Payments,
    Receipt,
)
from protocols.documents.vat import TaxTable
from protocols.fiscal_sign import EmulatorSignVerifier
from protocols.tlv import encode
from protocols.tlv.enums import OperationType, TaxSystem
from tests.emulator.test_atol_register import Host
from tests.engine.driver_receipts import SHOP, Receipts, as_the_fn_checks, line, shoes
from tests.protocols.receipts import receipts

COMPANY = attrs.evolve(SHOP, address="г. Москва, ул. Тестовая, д. 7")
RECEIPTS = Receipts(COMPANY)
receipt = RECEIPTS.receipt


def as_archived(sent: Receipt) -> Receipt:
    """What the ФН keeps of ``sent``: the scanned КМ is not a tag (2115 is derived from it)."""
    items = tuple(
        attrs.evolve(i, marking=attrs.evolve(i.marking, scanned=None)) if i.marking else i
        for i in sent.items
    )
    return as_the_fn_checks(attrs.evolve(sent, items=items))


@asynccontextmanager
async def atol(
    faults: str | None = None, taxes: TaxTable = DEFAULT_TAXES
) -> AsyncIterator[tuple[MemoryFleet, AtolRegister, AtolDriver]]:
    async with open_memory_fleet(1, protocol="atol", faults=faults, taxes=taxes.name) as fleet:
        register = fleet.registers[0]
        assert isinstance(register, AtolRegister)
        driver = AtolDriver(await fleet.connect(0), taxes=taxes)
        yield fleet, register, driver
        await driver.aclose()


async def fiscalize_and_check(
    driver: AtolDriver, register: AtolRegister, sent: Receipt, fd_number: int
) -> Fiscalized:
    """Fiscalize ``sent`` as FD ``fd_number``; its read-back must decode to what was sent."""
    fiscalized = await driver.fiscalize(sent)
    assert fiscalized.fd_number == fd_number == register.fn.last_fd_number
    assert fiscalized.document == register.fn.archive[fd_number]
    assert fiscalized.printed_sign is None  # 4Ah carries no ФП: it is in 1077
    assert EmulatorSignVerifier({register.fn.number: register.fn.key}).verify(fiscalized.document)
    signed = decode_receipt(fiscalized.document)
    assert signed.fiscal is not None and signed.fiscal.fd_number == fd_number
    assert signed.receipt == as_archived(sent)
    assert signed.document.code == (31 if isinstance(sent, CorrectionReceipt) else 3)
    assert await driver.read_document(fd_number) == fiscalized.document
    return fiscalized


# --- shifts and status ------------------------------------------------------------------------


async def test_status_and_shifts(autojump_clock: trio.testing.MockClock) -> None:
    async with atol() as (_, register, driver):
        status = await driver.status()
        assert status.fn_number == register.fn.number
        assert (status.shift_open, status.shift_number, status.last_fd) == (False, 0, 1)
        assert not status.document_open and not status.shift_expired
        assert (status.unsent, status.first_unsent) == (1, dt.datetime(2026, 3, 2, 8, 0))
        assert status.now == register.now().replace(microsecond=0)

        assert await driver.open_shift() == 2
        status = await driver.status()
        assert (status.shift_open, status.shift_number, status.last_fd) == (True, 1, 2)
        assert register.mode == 1  # the driver entered registration by itself
        assert await driver.close_shift() == 3
        assert register.mode == 0  # and left the Z-report mode after
        assert await driver.open_shift() == 4
        status = await driver.status()
        assert (status.shift_open, status.shift_number, status.last_fd, status.unsent) == (
            True,
            2,
            4,
            4,
        )
        assert status.fn_warnings == 0


# --- every kind of receipt --------------------------------------------------------------------


async def test_every_kind_of_receipt(autojump_clock: trio.testing.MockClock) -> None:
    kinds = RECEIPTS.every_kind()
    async with atol() as (_, register, driver):
        fd_number = await driver.open_shift()
        for sent in kinds:
            fd_number += 1
            fiscalized = await fiscalize_and_check(driver, register, sent, fd_number)
            signed = decode_receipt(fiscalized.document).receipt
            assert signed.additional_prop == sent.additional_prop  # the job marker, 1192
            assert signed.company.tax_system == TaxSystem.USN_INCOME  # 1055 travelled by E8h
        status = await driver.status()
        assert (status.last_fd, status.document_open) == (fd_number, False)
        assert register.fn.shift is not None and register.fn.shift.receipts == len(kinds)


async def test_requisites_longer_than_one_block(autojump_clock: trio.testing.MockClock) -> None:
    """Receipt-level requisites over 1024 bytes go in several E8h blocks and arrive whole."""
    props = tuple(
        IndustryProp("030", "21.11.2025", f"{n:03d}", f"значение отраслевого реквизита {n}")
        for n in range(40)
    )
    long_name = "Набор инструментов профессиональный, 128 предметов, в кейсе, арт. 4471-Б/22"
    assert len(long_name.encode("cp866")) > 64  # E6h cannot hold it: 1030 goes by E8h
    sent = receipt(int(OperationType.SELL), line(long_name, 1_250_000), industry_props=props)
    async with atol() as (_, register, driver):
        fd_number = await driver.open_shift() + 1
        await fiscalize_and_check(driver, register, sent, fd_number)


async def test_cashier_less_receipt_and_company_as_the_register_keeps_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """What the receipt leaves out, the register fills from its registration (1009, 1055)."""
    sent = Receipt(
        operation=1,
        items=(line("Чай", 15_000),),
        payments=Payments(cash=15_000),
        company=Company(inn=INN, tax_system=int(TaxSystem.OSN), place="Магазин №1"),
        total=15_000,
    )
    async with atol() as (_, register, driver):
        await driver.open_shift()
        fiscalized = await driver.fiscalize(sent)
        signed = decode_receipt(fiscalized.document).receipt
        registration = register.fn.registration
        assert registration is not None
        assert signed.company == attrs.evolve(sent.company, address=registration.address)
        assert attrs.evolve(signed, company=sent.company) == sent


# Hypothesis: random valid receipts of every kind through the driver and back ------------------


def _fiscalize_in_mock_time(
    sent: Receipt, taxes: TaxTable
) -> tuple[Exception | None, Receipt | None]:
    async def run() -> tuple[Exception | None, Receipt | None]:
        async with atol(taxes=taxes) as (_, register, driver):
            await driver.open_shift()
            try:
                fiscalized = await driver.fiscalize(sent)
            except NotCarried as exc:
                assert register.receipt is None and register.fn.last_fd_number == 2
                return exc, None
            return None, decode_receipt(fiscalized.document).receipt

    return trio.run(run, clock=trio.testing.MockClock(autojump_threshold=0))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    drawn=receipts(),
    tax=st.sampled_from([TaxSystem.OSN, TaxSystem.USN_INCOME]),
    taxes=st.sampled_from(list(TABLES.values())),
)
def test_any_receipt_comes_back_as_sent(drawn: Receipt, tax: TaxSystem, taxes: TaxTable) -> None:
    """Any valid receipt: the same model back, or refused at every rate the register's tax
    table lacks (the 2026 firmware's has all twelve)."""
    address = drawn.company.address or "г. Москва, ул. Ленина, д. 1"
    company = attrs.evolve(drawn.company, inn=INN, tax_system=int(tax), address=address)
    sent = attrs.evolve(drawn, company=company)
    refused, signed = _fiscalize_in_mock_time(sent, taxes)
    beyond_table = [
        f"items[{i}].vat" for i, item in enumerate(sent.items) if taxes.code_of(item.vat) is None
    ]
    beyond_bcd5 = [
        f"payments.{name}"
        for name in ("cash", "electronic", "prepaid", "credit", "provision")
        if getattr(sent.payments, name) >= 10**10  # 99h and 4Ah amounts are BCD5
    ]
    expected = beyond_table + beyond_bcd5
    event(f"refused at {expected[0].split('[')[0].split('.')[0]}" if expected else "fiscalized")
    if expected:
        assert isinstance(refused, NotCarried) and refused.path == expected[0]
        assert [part.path for part in refused.every] == expected
        assert refused.reason is RefusalReason.OTHER
    else:
        assert refused is None and signed == as_archived(sent)


# --- refusals ---------------------------------------------------------------------------------


async def test_refused_before_anything_is_sent(autojump_clock: trio.testing.MockClock) -> None:
    bread = line("Хлеб", 4_990)
    cases = {
        "items[0].vat": attrs.evolve(bread, vat=13),  # not a 1199 code
        "items[0].quantity": attrs.evolve(bread, quantity=Decimal("0.0005"), sum=2),
        "items[0].unit": attrs.evolve(bread, unit="шт"),  # FFD 1.05 only
        "items[0].name": attrs.evolve(bread, name="Кофе €"),  # no CP866 code
        "items[0].price": attrs.evolve(bread, price=-1, sum=-1),
    }
    async with atol() as (_, register, driver):
        await driver.open_shift()
        for path, bad in cases.items():
            sent = receipt(1, bad, payments=Payments(cash=max(0, bad.sum)))
            with pytest.raises(NotCarried) as caught:
                await driver.fiscalize(sent)
            assert caught.value.path == path, caught.value
            assert caught.value.reason is RefusalReason.OTHER
            assert isinstance(caught.value, RegisterRefused)
            assert register.receipt is None and register.fn.open_document is None
        assert register.fn.last_fd_number == 2
        with pytest.raises(NotCarried) as caught:
            await driver.fiscalize(attrs.evolve(receipt(1, bread), operation=5))
        assert caught.value.path == "operation"
    # Not a byte goes out: a driver on a line nobody answers refuses at once, link intact.
    host_end, device_end = trio.testing.memory_stream_pair()
    silent = AtolDriver(host_end)
    started = trio.current_time()
    with pytest.raises(NotCarried):
        await silent.fiscalize(receipt(1, cases["items[0].vat"]))
    assert trio.current_time() == started
    with trio.move_on_after(1) as waited:
        await device_end.receive_some()
    assert waited.cancelled_caught  # nothing arrived on the line
    await silent.aclose()


async def test_shift_closed(autojump_clock: trio.testing.MockClock) -> None:
    async with atol() as (_, register, driver):
        with pytest.raises(RegisterRefused) as caught:
            await driver.fiscalize(receipt(1, line("Хлеб", 4_990)))
        assert caught.value.reason is RefusalReason.SHIFT_CLOSED
        assert caught.value.code == ErrorCode.WRONG_MODE
        with pytest.raises(RegisterRefused) as caught:
            await driver.close_shift()
        assert caught.value.reason is RefusalReason.SHIFT_CLOSED
        await driver.open_shift()
        await fiscalize_and_check(driver, register, receipt(1, line("Хлеб", 4_990)), 3)


async def test_shift_expired(autojump_clock: trio.testing.MockClock) -> None:
    """The fault ages the shift past 24 h: 88h is SHIFT_EXPIRED; close, open, and it goes."""
    async with atol("shift-expired@2h") as (_, register, driver):
        await driver.open_shift()
        await trio.sleep(2 * 3600 + 1)
        with pytest.raises(RegisterRefused) as caught:
            await driver.fiscalize(receipt(1, line("Хлеб", 4_990)))
        assert caught.value.reason is RefusalReason.SHIFT_EXPIRED
        assert caught.value.code == ErrorCode.SHIFT_OVER_24_HOURS
        assert (await driver.status()).shift_expired  # the register said so
        assert await driver.close_shift() == 3
        assert await driver.open_shift() == 4
        status = await driver.status()
        assert status.shift_open and not status.shift_expired and status.shift_number == 2
        await fiscalize_and_check(driver, register, receipt(1, line("Хлеб", 4_990)), 5)


async def test_shift_expires_by_the_clock(autojump_clock: trio.testing.MockClock) -> None:
    """With no fault, status() tells an expired shift from the opening report's time."""
    async with atol() as (fleet, _, driver):
        await driver.open_shift()
        for n in range(3):
            await driver.fiscalize(receipt(1, line("Хлеб", 4_990), marker=f"job-{n}"))
        await trio.sleep(23 * 3600)
        assert not (await driver.status()).shift_expired
        await trio.sleep(3600 + 60)
        fresh = AtolDriver(await fleet.connect(0))  # knows nothing of this shift yet
        assert (await fresh.status()).shift_expired
        with pytest.raises(RegisterRefused) as caught:
            await fresh.fiscalize(receipt(1, line("Хлеб", 4_990)))
        assert caught.value.reason is RefusalReason.SHIFT_EXPIRED
        await fresh.aclose()


async def test_document_left_open_by_a_lost_session(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Another session opened a receipt and vanished: DOCUMENT_OPEN, then cancel, then it goes."""
    async with atol() as (fleet, register, driver):
        await driver.open_shift()
        other = Host(await fleet.connect(0), tid=0x80)
        answer = await other.call(OpenReceipt(receipt_type=ReceiptType.SALE))
        assert answer == CommandAnswer()
        await other.call(RegisterItem(name="Чужой товар", price=100, quantity=Decimal(1), tax=1))
        await other.stream.aclose()
        assert (await driver.status()).document_open
        sent = receipt(1, line("Хлеб", 4_990))
        with pytest.raises(RegisterRefused) as caught:
            await driver.fiscalize(sent)
        assert caught.value.reason is RefusalReason.DOCUMENT_OPEN
        assert caught.value.code == ErrorCode.RECEIPT_OPEN
        await driver.cancel_receipt()
        assert register.receipt is None and register.fn.open_document is None
        await driver.cancel_receipt()  # none open: still fine
        assert not (await driver.status()).document_open
        await fiscalize_and_check(driver, register, sent, 3)


async def test_refusal_after_open_cancels_the_receipt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A tax system the register is not registered for is refused by E8h: 59h cleans up."""
    sent = attrs.evolve(
        receipt(1, line("Хлеб", 4_990)),
        company=attrs.evolve(COMPANY, tax_system=int(TaxSystem.PATENT)),
    )
    async with atol() as (_, register, driver):
        await driver.open_shift()
        with pytest.raises(RegisterRefused) as caught:
            await driver.fiscalize(sent)
        assert caught.value.reason is RefusalReason.OTHER
        assert (caught.value.code, caught.value.fn_code) == (ErrorCode.FN_ERROR, 0x09)
        assert register.receipt is None and register.fn.open_document is None
        assert register.fn.last_fd_number == 2
        await fiscalize_and_check(driver, register, receipt(1, line("Хлеб", 4_990)), 3)


async def test_payments_short_of_the_total(autojump_clock: trio.testing.MockClock) -> None:
    """4Ah carries the last payment: the register refuses a shortfall, never pays it in cash."""
    short = attrs.evolve(receipt(1, line("Хлеб", 4_990)), payments=Payments(electronic=4_989))
    async with atol() as (_, register, driver):
        await driver.open_shift()
        with pytest.raises(RegisterRefused) as caught:
            await driver.fiscalize(short)
        assert caught.value.code == ErrorCode.PAYMENTS_BELOW_TOTAL
        assert caught.value.reason is RefusalReason.OTHER
        assert register.receipt is None and register.fn.last_fd_number == 2


async def test_fn_exhausted(autojump_clock: trio.testing.MockClock) -> None:
    async with atol("fn-full@1h") as (_, register, driver):
        await driver.open_shift()
        await fiscalize_and_check(driver, register, receipt(1, line("Хлеб", 4_990)), 3)
        await trio.sleep(3600)
        with pytest.raises(RegisterRefused) as caught:
            await driver.fiscalize(receipt(1, line("Хлеб", 4_990)))
        assert caught.value.reason is RefusalReason.FN_EXHAUSTED
        assert (caught.value.code, caught.value.fn_code) == (ErrorCode.FN_ERROR, 0x06)
        with pytest.raises(RegisterRefused) as caught:
            await driver.open_shift()
        assert caught.value.reason is RefusalReason.OTHER  # 9Ch: the shift is still open
        assert register.fn.last_fd_number == 3


# --- a lost link ------------------------------------------------------------------------------


async def test_power_lost_after_the_commit(autojump_clock: trio.testing.MockClock) -> None:
    """The receipt is in the ФН but the answer is lost: LinkLost; a new session finds it."""
    sent = receipt(1, shoes(), marker="job-lost")
    async with atol("power-after@1h") as (fleet, register, driver):
        await driver.open_shift()
        await trio.sleep(3600)
        with pytest.raises(LinkLost):
            await driver.fiscalize(sent)
        with pytest.raises(LinkLost):  # the driver is dead
            await driver.status()
        again = AtolDriver(await fleet.connect(0))
        status = await again.status()
        assert (status.last_fd, status.document_open, status.shift_open) == (3, False, True)
        document = await again.read_document(3)
        assert document == register.fn.archive[3]
        assert decode_receipt(document).receipt == as_archived(sent)
        await fiscalize_and_check(again, register, receipt(1, line("Хлеб", 4_990)), 4)
        await again.aclose()


async def test_silent_register(autojump_clock: trio.testing.MockClock) -> None:
    """Nobody answers: LinkLost after the packet's attempts, well within the task timeout."""
    host_end, _device_end = trio.testing.memory_stream_pair()
    driver = AtolDriver(host_end)
    started = trio.current_time()
    with pytest.raises(LinkLost):
        await driver.status()
    elapsed = trio.current_time() - started
    assert elapsed == pytest.approx(ANSWER_TIMEOUT * MAX_ATTEMPTS) and elapsed < TASK_TIMEOUT
    with pytest.raises(trio.ClosedResourceError):
        await host_end.send_all(b"\x00")  # the driver closed its stream


async def test_task_that_never_finishes(autojump_clock: trio.testing.MockClock) -> None:
    """The register answers Req with "in progress" for 25 s: LinkLost at the 15 s task timeout."""
    async with atol("slow:5000x@1h") as (_, _, driver):
        await driver.open_shift()
        await trio.sleep(3600)
        started = trio.current_time()
        with pytest.raises(LinkLost):
            await driver.status()  # 3Fh: 5 ms × 5000
        assert TASK_TIMEOUT <= trio.current_time() - started < TASK_TIMEOUT + 0.1


async def test_receipt_in_doubt_after_a_timeout(autojump_clock: trio.testing.MockClock) -> None:
    """The close takes 30 s, the driver gives up: the receipt is in the ФН all the same."""
    async with atol("slow:100x@1h") as (fleet, _, driver):
        await driver.open_shift()
        await trio.sleep(3600)
        sent = receipt(1, line("Хлеб", 4_990), marker="job-slow")
        with pytest.raises(LinkLost):
            await driver.fiscalize(sent)
        # The emulated ФН forms the document as 4Ah starts; its answer would come 30 s later.
        await trio.sleep(60)
        again = AtolDriver(await fleet.connect(0), task_timeout=600)
        assert (await again.status()).last_fd == 3
        assert decode_receipt(await again.read_document(3)).receipt == sent
        await again.aclose()


# --- the emulator's side of E8h ---------------------------------------------------------------


async def test_emulator_requisite_rules(autojump_clock: trio.testing.MockClock) -> None:
    """E8h needs an open receipt, blocks in order, whole TLVs, and no tag E6h or the ФН owns."""
    async with atol() as (fleet, register, driver):
        await driver.open_shift()
        host = Host(await fleet.connect(0), tid=0x90)

        async def error(request: WriteRequisite) -> int:
            answer = await host.call(request)
            assert isinstance(answer, CommandAnswer)
            return answer.error

        tag_1192 = encode({1192: "job-x"})
        assert await error(WriteRequisite(data=tag_1192)) == ErrorCode.RECEIPT_CLOSED
        await host.call(OpenReceipt(receipt_type=ReceiptType.SALE))
        item_flag = 0x01
        assert await error(WriteRequisite(flags=item_flag, data=encode({1214: 1}))) == 0x3D
        await host.call(RegisterItem(name="Хлеб", price=100, quantity=Decimal(1), tax=1))
        refused = {
            "1043 is E6h's": WriteRequisite(flags=item_flag, data=encode({1043: 5})),
            "1199 is E6h's": WriteRequisite(flags=item_flag, data=encode({1199: 2})),
            "1020 is the register's": WriteRequisite(data=encode({1020: 5})),
            "1173 outside a correction": WriteRequisite(data=encode({1173: 0})),
            "not whole TLVs": WriteRequisite(data=tag_1192[:-1]),
            "block 1 before block 0": WriteRequisite(block_count=2, block_number=1, data=b"\x01"),
        }
        for why, request in refused.items():
            assert await error(request) == ErrorCode.WRONG_FORMAT, why
        half = len(tag_1192) // 2
        first = WriteRequisite(block_count=2, block_number=0, data=tag_1192[:half])
        assert await error(first) == 0
        assert await error(attrs.evolve(first, block_number=1, data=tag_1192[half:])) == 0
        assert await error(WriteRequisite(flags=item_flag, data=encode({1212: 2}))) == 0
        assert register.receipt is not None
        assert register.receipt.requisites == {1192: ["job-x"]}  # 1192 may repeat
        assert register.receipt.item_requisites == ({1212: 2},)
        await host.stream.aclose()
        await driver.cancel_receipt()
