"""The Shtrih-M driver against the emulated Shtrih-M register, on link v1 and v2, in mock time.

The property that matters most: the document read back from the ФН decodes to the receipt
that was sent (items with 1214/1212, payments, totals, 1192/1084, markings), whatever its kind,
modulo what the register writes from its registration (1187, 1009).
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

from emulator.serve import INN, MemoryFleet, open_memory_fleet
from emulator.shtrih import ShtrihRegister
from engine.drivers.base import Fiscalized, LinkLost, RefusalReason, RegisterRefused
from engine.drivers.shtrih import LINK_TIMEOUT, NotCarried, ShtrihDriver
from protocols.documents.ffd import decode_receipt
from protocols.documents.model import (
    CorrectionBasis,
    CorrectionReceipt,
    IndustryProp,
    Payments,
    Receipt,
    Supplier,
    UserProp,
)
from protocols.documents.vat import TaxTable, vat_totals
from protocols.fiscal_sign import EmulatorSignVerifier, printed_fiscal_sign
from protocols.shtrih import REGISTRY
from protocols.shtrih import commands as c
from protocols.shtrih.codes import ErrorCode
from protocols.shtrih.taxes import DEFAULT as DEFAULT_TAXES
from protocols.shtrih.taxes import TABLES
from protocols.tlv import decode_document
from protocols.tlv.enums import TaxSystem
from tests.emulator.test_shtrih_register import Host, sale
from tests.engine.driver_receipts import SHOP, Receipts, as_the_fn_checks, line, shoes
from tests.protocols.receipts import receipts

VERSIONS = pytest.mark.parametrize("version", [1, 2])

COMPANY = attrs.evolve(SHOP, name='ООО "Магазин"')
RECEIPTS = Receipts(COMPANY)
receipt = RECEIPTS.receipt


def as_archived(sent: Receipt, register: ShtrihRegister) -> Receipt:
    """What the ФН keeps of ``sent``: the register's place and address (1187, 1009) from its
    registration, and no scanned КМ (not a tag: 2115 is derived from it)."""
    registration = register.fn.registration
    assert registration is not None
    items = tuple(
        attrs.evolve(i, marking=attrs.evolve(i.marking, scanned=None)) if i.marking else i
        for i in sent.items
    )
    place = registration.place or "emulator"  # as the register's FF45h fills it in
    company = attrs.evolve(sent.company, place=place, address=registration.address)
    return as_the_fn_checks(attrs.evolve(sent, items=items, company=company))


def shtrih_of(fleet: MemoryFleet) -> ShtrihRegister:
    register = fleet.registers[0]
    assert isinstance(register, ShtrihRegister)
    return register


@asynccontextmanager
async def shtrih(
    version: int = 2,
    faults: str | None = None,
    model: str | None = None,
    taxes: TaxTable = DEFAULT_TAXES,
) -> AsyncIterator[tuple[MemoryFleet, ShtrihRegister, ShtrihDriver]]:
    async with open_memory_fleet(1, faults=faults, model=model, taxes=taxes.name) as fleet:
        driver = ShtrihDriver(await fleet.connect(0), version=version, taxes=taxes)
        yield fleet, shtrih_of(fleet), driver
        await driver.aclose()


async def fiscalize_and_check(
    driver: ShtrihDriver, register: ShtrihRegister, sent: Receipt, fd_number: int
) -> Fiscalized:
    """Fiscalize ``sent`` as FD ``fd_number``; its read-back must decode to what was sent."""
    fiscalized = await driver.fiscalize(sent)
    assert fiscalized.fd_number == fd_number == register.fn.last_fd_number
    assert fiscalized.document == register.fn.archive[fd_number]
    assert EmulatorSignVerifier({register.fn.number: register.fn.key}).verify(fiscalized.document)
    signed = decode_receipt(fiscalized.document)
    assert signed.fiscal is not None and signed.fiscal.fd_number == fd_number
    assert fiscalized.printed_sign == printed_fiscal_sign(signed.fiscal.fiscal_sign)  # FF45h's
    assert signed.receipt == as_archived(sent, register)
    assert signed.document.code == (31 if isinstance(sent, CorrectionReceipt) else 3)
    assert await driver.read_document(fd_number) == fiscalized.document
    return fiscalized


# --- construction, shifts and status ----------------------------------------------------------


def test_arguments_are_checked() -> None:
    stream, _ = trio.testing.memory_stream_pair()
    with pytest.raises(ValueError, match="version 1 or 2"):
        ShtrihDriver(stream, version=3)
    with pytest.raises(ValueError, match="password"):
        ShtrihDriver(stream, password=-1)


@VERSIONS
async def test_status_and_shifts(version: int, autojump_clock: trio.testing.MockClock) -> None:
    async with shtrih(version) as (_, register, driver):
        status = await driver.status()
        assert status.fn_number == register.fn.number
        assert (status.shift_open, status.shift_number, status.last_fd) == (False, 0, 1)
        assert not status.document_open and not status.shift_expired
        assert (status.unsent, status.first_unsent) == (1, dt.datetime(2026, 3, 2, 8, 0))
        assert status.now == register.now().replace(microsecond=0)
        assert status.fn_warnings == 0

        assert await driver.open_shift() == 2
        status = await driver.status()
        assert (status.shift_open, status.shift_number, status.last_fd) == (True, 1, 2)
        await fiscalize_and_check(driver, register, receipt(1, line("Хлеб", 4_990)), 3)
        assert await driver.close_shift() == 4
        status = await driver.status()
        assert (status.shift_open, status.shift_number, status.last_fd) == (False, 1, 4)
        assert await driver.open_shift() == 5
        status = await driver.status()
        assert (status.shift_open, status.shift_number, status.last_fd, status.unsent) == (
            True,
            2,
            5,
            5,
        )
        closing = decode_document(await driver.read_document(4))
        assert (closing.code, closing.fields[1038], closing.fields[1040]) == (5, 1, 4)


# --- every kind of receipt --------------------------------------------------------------------


@VERSIONS
async def test_every_kind_of_receipt(version: int, autojump_clock: trio.testing.MockClock) -> None:
    kinds = RECEIPTS.every_kind(
        advance=True,
        user_data="ряд 7, место 12",
        industry_props=(IndustryProp("030", "21.11.2025", "477", "UUID=1"),),
    )
    async with shtrih(version) as (_, register, driver):
        fd_number = await driver.open_shift()
        for sent in kinds:
            fd_number += 1
            fiscalized = await fiscalize_and_check(driver, register, sent, fd_number)
            signed = decode_receipt(fiscalized.document).receipt
            assert signed.additional_prop == sent.additional_prop  # the job marker, 1192
            assert signed.company.tax_system == TaxSystem.USN_INCOME  # 1055 travelled by FF45h
        status = await driver.status()
        assert (status.last_fd, status.document_open) == (fd_number, False)
        assert register.fn.shift is not None and register.fn.shift.receipts == len(kinds)
        corrections = decode_document(register.fn.archive[fd_number]).fields
        assert (corrections[1173], corrections[1174]) == (0, {1178: dt.datetime(2026, 2, 27)})


async def test_names_ff46_cannot_hold_go_as_1030(autojump_clock: trio.testing.MockClock) -> None:
    """A name over 128 bytes, or one starting with "//" (which the register strips), by FF4Dh."""
    long_name = "Набор инструментов профессиональный, 128 предметов, в кейсе, арт. 4471-Б/22 " * 2
    assert len(long_name.encode("cp1251")) > 128
    sent = receipt(1, line(long_name[:127], 1_250_000), line("//не печатать", 100))
    async with shtrih() as (_, register, driver):
        fd_number = await driver.open_shift() + 1
        await fiscalize_and_check(driver, register, sent, fd_number)


async def test_the_job_marker_in_1084(autojump_clock: trio.testing.MockClock) -> None:
    """With 1192 taken the engine marks 1084; both reach the archived document."""
    sent = receipt(1, line("Хлеб", 4_990), user_prop=UserProp("kassa-job", "0f1e2d3c"))
    async with shtrih(1) as (_, register, driver):
        await driver.open_shift()
        fiscalized = await fiscalize_and_check(driver, register, sent, 3)
        signed = decode_receipt(fiscalized.document).receipt
        assert signed.user_prop == UserProp("kassa-job", "0f1e2d3c")
        assert signed.additional_prop == "job-0001"


async def test_a_printing_register_is_waited_for(autojump_clock: trio.testing.MockClock) -> None:
    """A desktop model prints after each receipt (submode 5): 50h is waited out, not refused."""
    async with shtrih(model="shtrih-m-01f") as (_, register, driver):
        fd_number = await driver.open_shift()
        for n in range(3):
            fd_number += 1
            sent = receipt(1, line("Хлеб", 4_990), marker=f"job-{n}")
            await fiscalize_and_check(driver, register, sent, fd_number)
        assert await driver.close_shift() == fd_number + 1


# Hypothesis: random valid receipts of every kind through the driver and back ------------------


def _fiscalize_in_mock_time(
    sent: Receipt, taxes: TaxTable
) -> tuple[Exception | None, Receipt | None, Receipt]:
    async def run() -> tuple[Exception | None, Receipt | None, Receipt]:
        async with shtrih(taxes=taxes) as (_, register, driver):
            await driver.open_shift()
            expected = as_archived(sent, register)
            try:
                fiscalized = await driver.fiscalize(sent)
            except NotCarried as exc:
                assert register.receipt is None and register.fn.last_fd_number == 2
                return exc, None, expected
            return None, decode_receipt(fiscalized.document).receipt, expected

    return trio.run(run, clock=trio.testing.MockClock(autojump_threshold=0))


_MONEY = 1 << 40  # 5-byte money fields


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    drawn=receipts(),
    tax=st.sampled_from([TaxSystem.OSN, TaxSystem.USN_INCOME]),
    taxes=st.sampled_from(list(TABLES.values())),
)
def test_any_receipt_comes_back_as_sent(drawn: Receipt, tax: TaxSystem, taxes: TaxTable) -> None:
    """Any valid receipt: the same model back, or refused naming every part FF46h/FF45h lack,
    such as a rate the register's tax table has no code for."""
    company = attrs.evolve(drawn.company, inn=INN, tax_system=int(tax))
    sent = attrs.evolve(drawn, company=company)
    refused, signed, expected = _fiscalize_in_mock_time(sent, taxes)
    problems: list[str] = []
    for i, item in enumerate(sent.items):
        if taxes.code_of(item.vat) is None:
            problems.append(f"items[{i}].vat")
        elif item.sum >= _MONEY:
            problems.append(f"items[{i}].sum")
        elif item.vat_sum is not None and item.vat_sum >= _MONEY:
            problems.append(f"items[{i}].vat_sum")
    for name in ("cash", "electronic", "prepaid", "credit", "provision"):
        if getattr(sent.payments, name) >= _MONEY:
            problems.append(f"payments.{name}")
    if any(total >= _MONEY for total in vat_totals((i.sum, i.vat) for i in sent.items).values()):
        problems.append("total")  # FF45h's per-rate totals are 5 bytes too
    event(f"refused at {problems[0].split('[')[0].split('.')[0]}" if problems else "fiscalized")
    if problems:
        assert isinstance(refused, NotCarried) and refused.path == problems[0], refused
        assert refused.reason is RefusalReason.OTHER
    else:
        assert refused is None and signed == expected


# --- refusals ---------------------------------------------------------------------------------


async def test_refused_with_its_path_before_anything_is_sent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bread = line("Хлеб", 4_990)
    items = {
        "items[0].vat": attrs.evolve(bread, vat=13),  # not a 1199 code
        "items[0].quantity": attrs.evolve(bread, quantity=Decimal("0.0000001"), sum=0),
        "items[0].sum": attrs.evolve(bread, sum=4_988),  # 2 kopecks off price × quantity
        "items[0].unit": attrs.evolve(bread, unit="шт"),  # FFD 1.05 only
        "items[0].name": attrs.evolve(bread, name="Кофе €"),  # no CP866 code
        "items[0].supplier": attrs.evolve(bread, supplier=Supplier(name="П" * 250)),  # > 250
    }
    cases = {path: receipt(1, bad) for path, bad in items.items()}
    cases["total"] = attrs.evolve(receipt(1, bread), total=5_000)
    cases["payments.cash"] = attrs.evolve(receipt(1, bread), payments=Payments(cash=1 << 40))
    cases["company.tax_system"] = attrs.evolve(
        receipt(1, bread), company=attrs.evolve(COMPANY, tax_system=3)
    )
    cases["operation"] = attrs.evolve(receipt(1, bread), operation=5)
    cases["items"] = attrs.evolve(receipt(1, bread), items=(), total=0)
    async with shtrih() as (_, register, driver):
        await driver.open_shift()
        for path, sent in cases.items():
            with pytest.raises(NotCarried) as caught:
                await driver.fiscalize(sent)
            assert caught.value.path == path, caught.value
            assert caught.value.reason is RefusalReason.OTHER
            assert isinstance(caught.value, RegisterRefused)
            assert register.receipt is None and register.fn.open_document is None
        assert register.fn.last_fd_number == 2
    # Not a byte goes out: a driver on a line nobody answers refuses at once, link intact.
    host_end, device_end = trio.testing.memory_stream_pair()
    silent = ShtrihDriver(host_end)
    started = trio.current_time()
    with pytest.raises(NotCarried) as caught:
        await silent.fiscalize(cases["items[0].supplier"])
    assert "250" in str(caught.value)
    assert trio.current_time() == started
    with trio.move_on_after(1) as waited:
        await device_end.receive_some()
    assert waited.cancelled_caught  # nothing arrived on the line
    await silent.aclose()


@VERSIONS
async def test_shift_closed(version: int, autojump_clock: trio.testing.MockClock) -> None:
    async with shtrih(version) as (_, register, driver):
        with pytest.raises(RegisterRefused) as caught:
            await driver.fiscalize(receipt(1, line("Хлеб", 4_990)))
        assert caught.value.reason is RefusalReason.SHIFT_CLOSED
        assert caught.value.code == ErrorCode.NOT_IN_THIS_MODE
        with pytest.raises(RegisterRefused) as caught:
            await driver.close_shift()  # 41h answers 73h; the mode (4) tells why
        assert caught.value.reason is RefusalReason.SHIFT_CLOSED
        assert (caught.value.code, caught.value.fn_code) == (ErrorCode.NOT_IN_THIS_MODE, None)
        assert register.fn.last_fd_number == 1
        await driver.open_shift()
        await fiscalize_and_check(driver, register, receipt(1, line("Хлеб", 4_990)), 3)


@VERSIONS
async def test_shift_expired(version: int, autojump_clock: trio.testing.MockClock) -> None:
    """The fault ages the shift past 24 h: SHIFT_EXPIRED; close, open, and it goes."""
    async with shtrih(version, "shift-expired@2h") as (_, register, driver):
        await driver.open_shift()
        await trio.sleep(2 * 3600 + 1)
        status = await driver.status()
        assert status.shift_open and status.shift_expired
        with pytest.raises(RegisterRefused) as caught:
            await driver.fiscalize(receipt(1, line("Хлеб", 4_990)))
        assert caught.value.reason is RefusalReason.SHIFT_EXPIRED
        assert caught.value.code == ErrorCode.SHIFT_OVER_24H
        with pytest.raises(RegisterRefused) as caught:
            await driver.open_shift()  # 73h in mode 3: the open shift is over 24 hours
        assert caught.value.reason is RefusalReason.SHIFT_EXPIRED
        assert register.receipt is None and register.fn.open_document is None
        assert await driver.close_shift() == 3
        assert await driver.open_shift() == 4
        status = await driver.status()
        assert status.shift_open and not status.shift_expired and status.shift_number == 2
        await fiscalize_and_check(driver, register, receipt(1, line("Хлеб", 4_990)), 5)


async def test_shift_expires_by_the_clock(autojump_clock: trio.testing.MockClock) -> None:
    async with shtrih() as (_, _, driver):
        await driver.open_shift()
        await trio.sleep(23 * 3600)
        assert not (await driver.status()).shift_expired
        await trio.sleep(3600 + 60)
        assert (await driver.status()).shift_expired
        with pytest.raises(RegisterRefused) as caught:
            await driver.fiscalize(receipt(1, line("Хлеб", 4_990)))
        assert caught.value.reason is RefusalReason.SHIFT_EXPIRED


async def test_a_line_refused_for_the_24_hours(autojump_clock: trio.testing.MockClock) -> None:
    """The shift runs out between the 10h look and the close: FF45h's 4Eh is SHIFT_EXPIRED,
    and the receipt it leaves open is cancelled."""
    async with shtrih(2, "slow:10x@1h") as (fleet, register, driver):
        await driver.open_shift()
        await trio.sleep(24 * 3600 - 2)  # the two lines at 0.6 s each take it over the edge
        sent = receipt(1, line("Хлеб", 4_990), line("Молоко", 8_990), line("Сыр", 3_000))
        with pytest.raises(RegisterRefused) as caught:
            await driver.fiscalize(sent)
        assert caught.value.reason is RefusalReason.SHIFT_EXPIRED
        assert caught.value.code in (ErrorCode.SHIFT_OVER_24H, ErrorCode.FN_SHIFT_OVER_24H)
        assert register.receipt is None and register.fn.open_document is None
        assert fleet.faults.of_kind("slow")


@VERSIONS
async def test_document_left_open_by_a_lost_session(
    version: int, autojump_clock: trio.testing.MockClock
) -> None:
    """Another session sent a line and vanished: DOCUMENT_OPEN, then cancel, then it goes."""
    async with shtrih(version) as (fleet, register, driver):
        await driver.open_shift()
        other = Host(await fleet.connect(0), 3 - version)
        assert isinstance(await other.call(sale()), c.OperationV2Answer)
        await other.stream.aclose()
        assert (await driver.status()).document_open
        sent = receipt(1, line("Хлеб", 4_990))
        with pytest.raises(RegisterRefused) as caught:
            await driver.fiscalize(sent)
        assert caught.value.reason is RefusalReason.DOCUMENT_OPEN
        assert caught.value.code == ErrorCode.RECEIPT_OPEN
        assert register.receipt is not None and len(register.receipt.lines) == 1  # untouched
        await driver.cancel_receipt()
        assert register.receipt is None and register.fn.open_document is None
        await driver.cancel_receipt()  # none open: still fine
        assert not (await driver.status()).document_open
        await fiscalize_and_check(driver, register, sent, 3)


async def test_refusal_after_open_cancels_the_receipt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A tax system the register is not registered for is refused by FF45h: 88h cleans up."""
    patent = attrs.evolve(
        receipt(1, line("Хлеб", 4_990)),
        company=attrs.evolve(COMPANY, tax_system=int(TaxSystem.PATENT)),
    )
    short = attrs.evolve(receipt(1, line("Хлеб", 4_990)), payments=Payments(electronic=4_989))
    async with shtrih() as (_, register, driver):
        await driver.open_shift()
        for sent, code in ((patent, ErrorCode.BAD_PARAMETERS), (short, 0x45)):
            with pytest.raises(RegisterRefused) as caught:
                await driver.fiscalize(sent)
            assert caught.value.reason is RefusalReason.OTHER
            assert (caught.value.code, caught.value.fn_code) == (code, None)
            assert register.receipt is None and register.fn.open_document is None
            assert register.fn.last_fd_number == 2
        correction = CorrectionReceipt(
            operation=1,
            items=(line("Кофе", 45_000),),
            payments=Payments(cash=45_000),
            company=attrs.evolve(COMPANY, tax_system=int(TaxSystem.PATENT)),
            total=45_000,
            basis=CorrectionBasis(date=dt.datetime(2026, 3, 1)),
        )
        with pytest.raises(RegisterRefused):
            await driver.fiscalize(correction)
        assert register.receipt is None and register.fn.open_document is None
        await fiscalize_and_check(driver, register, receipt(1, line("Хлеб", 4_990)), 3)


@VERSIONS
async def test_fn_exhausted(version: int, autojump_clock: trio.testing.MockClock) -> None:
    async with shtrih(version, "fn-full@1h") as (_, register, driver):
        await driver.open_shift()
        await fiscalize_and_check(driver, register, receipt(1, line("Хлеб", 4_990)), 3)
        await trio.sleep(3600)
        with pytest.raises(RegisterRefused) as caught:
            await driver.fiscalize(receipt(1, line("Хлеб", 4_990)))
        assert caught.value.reason is RefusalReason.FN_EXHAUSTED
        assert (caught.value.code, caught.value.fn_code) == (0x06, 0x06)
        assert register.receipt is None and register.fn.open_document is None
        assert await driver.close_shift() == 4  # closing stays possible
        with pytest.raises(RegisterRefused) as caught:
            await driver.open_shift()
        assert caught.value.reason is RefusalReason.FN_EXHAUSTED


async def test_reading_a_document_that_is_not_there(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with shtrih() as (_, _, driver):
        with pytest.raises(RegisterRefused) as caught:
            await driver.read_document(99)
        assert (caught.value.code, caught.value.fn_code) == (0x08, 0x08)
        assert caught.value.reason is RefusalReason.OTHER
        assert (await driver.status()).last_fd == 1  # the driver lives on


# --- a lost link ------------------------------------------------------------------------------


@VERSIONS
async def test_power_lost_after_the_commit(
    version: int, autojump_clock: trio.testing.MockClock
) -> None:
    """The receipt is in the ФН but the answer is lost: LinkLost; a new session finds it."""
    sent = receipt(1, shoes(), marker="job-lost")
    async with shtrih(version, "power-after@1h") as (fleet, register, driver):
        await driver.open_shift()
        await trio.sleep(3600)
        with pytest.raises(LinkLost):
            await driver.fiscalize(sent)
        with pytest.raises(LinkLost):  # the driver is dead
            await driver.status()
        assert fleet.faults.of_kind("power-after")
        again = ShtrihDriver(await fleet.connect(0), version=version)
        status = await again.status()
        assert (status.last_fd, status.document_open, status.shift_open) == (3, False, True)
        document = await again.read_document(3)
        assert document == register.fn.archive[3]
        assert decode_receipt(document).receipt == as_archived(sent, register)
        await fiscalize_and_check(again, register, receipt(1, line("Хлеб", 4_990)), 4)
        await again.aclose()


async def test_power_lost_before_the_commit(autojump_clock: trio.testing.MockClock) -> None:
    """Nothing was signed and nothing is left open: the next session fiscalizes afresh."""
    sent = receipt(1, line("Хлеб", 4_990), marker="job-again")
    async with shtrih(2, "power-before@1h") as (fleet, register, driver):
        await driver.open_shift()
        await trio.sleep(3600)
        with pytest.raises(LinkLost):
            await driver.fiscalize(sent)
        again = ShtrihDriver(await fleet.connect(0))
        status = await again.status()
        assert (status.last_fd, status.document_open) == (2, False)
        await fiscalize_and_check(again, register, sent, 3)
        await again.aclose()


@asynccontextmanager
async def stream_pair(kind: str) -> AsyncIterator[tuple[trio.abc.Stream, trio.abc.Stream]]:
    """The driver's end and the register's: in memory, or a real TCP connection on 127.0.0.1
    (where the driver reads and writes the socket itself)."""
    if kind == "memory":
        yield trio.testing.memory_stream_pair()
        return
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    try:
        port = listeners[0].socket.getsockname()[1]
        host_end = await trio.open_tcp_stream("127.0.0.1", port)
        device_end = await listeners[0].accept()
        async with host_end, device_end:
            yield host_end, device_end
    finally:
        for listener in listeners:
            await listener.aclose()


LINKS = pytest.mark.parametrize("link", ["memory", "tcp"])


@VERSIONS
@LINKS
async def test_silent_register(
    version: int, link: str, autojump_clock: trio.testing.MockClock
) -> None:
    """Nobody answers: LinkLost within the command's own timeout (11h: 3 s) and its handshake."""
    async with stream_pair(link) as (host_end, device_end):
        await silent(version, host_end, device_end)


async def silent(version: int, host_end: trio.abc.Stream, device_end: trio.abc.Stream) -> None:
    driver = ShtrihDriver(host_end, version=version)
    started = trio.current_time()
    with pytest.raises(LinkLost):
        await driver.status()
    elapsed = trio.current_time() - started
    assert elapsed == pytest.approx(REGISTRY[0x11].timeout_ms / 1000 + LINK_TIMEOUT)
    with pytest.raises(LinkLost):
        await driver.read_document(1)
    with pytest.raises(trio.ClosedResourceError):
        await host_end.send_all(b"\x05")  # the driver closed its stream
    probes = await device_end.receive_some()
    assert probes[0] == (0x05 if version == 1 else 0x8F)  # ENQ, or the v2 ping


@VERSIONS
@LINKS
async def test_register_that_hangs_up(
    version: int, link: str, autojump_clock: trio.testing.MockClock
) -> None:
    async with stream_pair(link) as (host_end, device_end):
        await hangs_up(version, host_end, device_end)


async def hangs_up(version: int, host_end: trio.abc.Stream, device_end: trio.abc.Stream) -> None:
    driver = ShtrihDriver(host_end, version=version)
    async with trio.open_nursery() as nursery:

        async def hang_up() -> None:
            await device_end.receive_some()
            await device_end.aclose()

        nursery.start_soon(hang_up)
        with pytest.raises(LinkLost, match="closed the connection"):
            await driver.open_shift()


async def test_receipt_in_doubt_after_a_timeout(autojump_clock: trio.testing.MockClock) -> None:
    """The close takes about 30 s, past FF45h's timeout: LinkLost, and the receipt is signed."""
    async with shtrih(1, "slow:130x@1h") as (fleet, register, driver):
        await driver.open_shift()
        await trio.sleep(3600)
        sent = receipt(1, line("Хлеб", 4_990), marker="job-slow")
        with pytest.raises(LinkLost, match=r"no answer within 30\.5 s"):
            await driver.fiscalize(sent)  # FF45h takes 39 s ± 10 %
        await trio.sleep(60)  # the emulated ФН signed as FF45h began; its answer never came
        again = ShtrihDriver(await fleet.connect(0))
        assert (await again.status()).last_fd == 3
        assert decode_receipt(await again.read_document(3)).receipt == as_archived(sent, register)
        await again.aclose()
