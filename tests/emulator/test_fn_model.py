"""The ФН model: whole fiscal lifecycles, every rule and limit, signs, and invariants."""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.fn import FiscalStorage, FnLimits, FnModelError, OpenDocument
from protocols.documents.ffd import FiscalData, decode_receipt, receipt_to_tags
from protocols.documents.model import (
    Cashier,
    Company,
    CorrectionBasis,
    CorrectionReceipt,
    Item,
    Payments,
    Receipt,
)
from protocols.documents.reports import (
    CloseShiftReport,
    Counters,
    OpenShiftReport,
    OperationCounters,
    RegistrationReport,
    StatusReport,
    decode_report,
)
from protocols.fiscal_sign import (
    EmulatorSignVerifier,
    FiscalSignError,
    emulator_fiscal_sign,
    split_fiscal_sign,
)
from protocols.fn import FnPhase, FnWarning, ResultCode
from protocols.tlv import decode_document, encode, encode_document
from protocols.tlv.enums import OperationType, PaymentMethod, PaymentSubject, TaxSystem, VatRate

FN_NUMBER = "9999078902003988"
KEY = b"emulator test key"
INN = "7707083893"
REGISTRATION_NUMBER = "0000000001061875"
START = datetime(2026, 3, 2, 9, 0)
MINUTE = timedelta(minutes=1)
VERIFIER = EmulatorSignVerifier({FN_NUMBER: KEY})
HEADER = [1041, 1037, 1018, 1040, 1012, 1077]
OPERATION_FIELDS = {1: "sell", 2: "sell_refund", 3: "buy", 4: "buy_refund"}


def registration(**changes: object) -> RegistrationReport:
    report = RegistrationReport(
        user_inn=INN,
        user="ООО Ромашка",
        registration_number=REGISTRATION_NUMBER,
        fn_number=FN_NUMBER,
        kkt_serial="0496530001",
        tax_systems=int(TaxSystem.OSN | TaxSystem.USN_INCOME),
        place="shop.example",
        address="г. Москва, ул. Ленина, д. 1",
        ofd_inn="7709364346",
    )
    return attrs.evolve(report, **changes)


def receipt(
    total: int = 10_000,
    operation: int = OperationType.SELL,
    *,
    cash: int | None = None,
    correction: bool = False,
    inn: str = INN,
) -> Receipt:
    item = Item(
        name="Кофе",
        price=total,
        quantity=Decimal(1),
        sum=total,
        vat=VatRate.VAT20,
        payment_method=PaymentMethod.FULL_PAYMENT,
        payment_subject=PaymentSubject.GOODS,
    )
    paid_cash = total if cash is None else cash
    common = dict(
        operation=int(operation),
        items=(item,),
        payments=Payments(cash=paid_cash, electronic=total - paid_cash),
        company=Company(inn=inn, tax_system=int(TaxSystem.OSN), place="shop.example"),
        total=total,
        cashier=Cashier("Иванова И."),
    )
    if correction:
        return CorrectionReceipt(
            **common,  # type: ignore[arg-type]
            correction_type=0,
            basis=CorrectionBasis(date=datetime(2026, 3, 1)),
        )
    return Receipt(**common)  # type: ignore[arg-type]


def registered(limits: FnLimits | None = None, at: datetime = START) -> FiscalStorage:
    fn = FiscalStorage(FN_NUMBER, KEY, limits or FnLimits())
    fn.register(at, registration())
    return fn


def top_tags(document: bytes) -> list[int]:
    """The document's top-level tags in their order on the wire."""
    tags, pos = [], 4
    while pos < len(document):
        tag, size = struct.unpack_from("<HH", document, pos)
        tags.append(tag)
        pos += 4 + size
    return tags


@contextlib.contextmanager
def refused(code: ResultCode) -> Iterator[None]:
    with pytest.raises(FnModelError) as caught:
        yield
    assert caught.value.code is code, caught.value


def count_receipts(documents: list[bytes]) -> Counters:
    """Counters recomputed from receipts: sums of 3 by 1054; 1134 counts 3 and 31."""
    blocks = dict.fromkeys(OPERATION_FIELDS.values(), OperationCounters())
    receipts = 0
    for wire in documents:
        document = decode_document(wire)
        if document.code not in (3, 31):
            continue
        receipts += 1
        if document.code == 31:
            continue
        fields = document.fields
        name = OPERATION_FIELDS[fields[1054]]  # type: ignore[index]
        block = blocks[name]
        blocks[name] = OperationCounters(
            count=block.count + 1,
            total=block.total + fields[1020],  # type: ignore[operator]
            cash=block.cash + fields.get(1031, 0),  # type: ignore[operator]
            electronic=block.electronic + fields.get(1081, 0),  # type: ignore[operator]
            prepaid=block.prepaid + fields.get(1215, 0),  # type: ignore[operator]
            credit=block.credit + fields.get(1216, 0),  # type: ignore[operator]
            provision=block.provision + fields.get(1217, 0),  # type: ignore[operator]
        )
    return Counters(receipts=receipts, **blocks)


def assert_invariants(fn: FiscalStorage) -> None:
    """FD numbers contiguous, every document decodes and verifies, counters add up."""
    count = len(fn.archive)
    assert list(fn.archive) == list(range(1, count + 1))
    for fd_number, wire in fn.archive.items():
        assert VERIFIER.verify(wire) is True
        document = decode_document(wire)
        assert document.fields[1040] == fd_number
        assert document.fields[1041] == FN_NUMBER
        assert top_tags(wire)[:6] == HEADER
        if document.code in (3, 31):
            decode_receipt(wire)
        elif document.code != 6:
            decode_report(wire)
    assert fn.counters == count_receipts(list(fn.archive.values()))
    unsent = fn.unsent()
    assert unsent == tuple(range(count - len(unsent) + 1, count + 1))
    for wire in fn.archive.values():
        if decode_document(wire).code != 5:
            continue
        report = decode_report(wire)
        assert isinstance(report, CloseShiftReport)
        in_shift = [
            w
            for w in fn.archive.values()
            if decode_document(w).code in (3, 31)
            and decode_document(w).fields[1038] == report.shift_number
        ]
        assert report.shift_counters == count_receipts(in_shift)
        numbers = [decode_document(w).fields[1042] for w in in_shift]
        assert numbers == list(range(1, report.receipts + 1))


# --- a whole fiscal life --------------------------------------------------------------------------


def test_a_fiscal_life_from_registration_to_the_archive() -> None:
    fn = FiscalStorage(FN_NUMBER, KEY)
    assert fn.phase is FnPhase.READY
    registered_ = fn.register(START, registration())
    assert fn.phase is FnPhase.FISCAL
    opened = fn.open_shift(START + 5 * MINUTE, Cashier("Иванова И.", "500100732259"))
    sales = [receipt(10_000, cash=4_000), receipt(2_550)]
    results = [fn.fiscalize(START + (10 + i) * MINUTE, r) for i, r in enumerate(sales)]
    results.append(fn.fiscalize(START + 12 * MINUTE, receipt(2_550, OperationType.SELL_REFUND)))
    results.append(fn.fiscalize(START + 13 * MINUTE, receipt(700, OperationType.BUY)))
    results.append(fn.fiscalize(START + 14 * MINUTE, receipt(1_000, correction=True)))
    status = fn.status_report(START + 15 * MINUTE)
    closed = fn.close_shift(START + 20 * MINUTE)

    everything = [registered_, opened, *results, status, closed]
    assert [r.fd_number for r in everything] == list(range(1, 10))
    assert [r.code for r in everything] == [1, 2, 3, 3, 3, 3, 31, 21, 5]
    assert [r.receipt_number for r in results] == [1, 2, 3, 4, 5]
    assert all(fn.read_document(r.fd_number) == r.document for r in everything)

    first = decode_receipt(results[0].document)
    assert first.receipt == sales[0]
    assert first.fiscal == FiscalData(
        fd_number=3,
        fn_number=FN_NUMBER,
        registration_number=REGISTRATION_NUMBER,
        time=START + 10 * MINUTE,
        shift_number=1,
        receipt_number=1,
        fiscal_sign=results[0].fiscal_sign,
        ffd_version=4,
    )
    assert results[0].fiscal_sign[:2] == b"\x31\x04"
    assert results[0].printed_sign == int.from_bytes(results[0].fiscal_sign[2:], "big")
    assert top_tags(results[0].document)[:10] == [*HEADER, 1038, 1042, 1054, 1020]
    assert decode_receipt(results[4].document).receipt == receipt(1_000, correction=True)

    assert decode_report(registered_.document) == attrs.evolve(
        registration(), fd_number=1, time=START, fiscal_sign=registered_.fiscal_sign
    )
    open_report = decode_report(opened.document)
    assert isinstance(open_report, OpenShiftReport)
    assert (open_report.shift_number, open_report.cashier_inn) == (1, "500100732259")

    sell = OperationCounters(count=2, total=12_550, cash=6_550, electronic=6_000)
    expected = Counters(
        receipts=5,
        sell=sell,
        sell_refund=OperationCounters(count=1, total=2_550, cash=2_550),
        buy=OperationCounters(count=1, total=700, cash=700),
        buy_refund=OperationCounters(),
    )
    status_report = decode_report(status.document)
    assert isinstance(status_report, StatusReport)
    assert (status_report.unsent, status_report.first_unsent_number) == (7, 1)
    assert (status_report.first_unsent_time, status_report.shift_number) == (START, 1)
    assert status_report.fn_counters == expected
    close_report = decode_report(closed.document)
    assert isinstance(close_report, CloseShiftReport)
    assert (close_report.receipts, close_report.documents, close_report.unsent) == (5, 8, 8)
    assert close_report.shift_counters == close_report.fn_counters == expected
    assert close_report.key_days_left == (datetime(2027, 6, 2, 9, 0) - closed.time).days
    assert fn.counters == expected
    assert_invariants(fn)

    for fd_number in range(1, 10):  # the OFD acknowledges, oldest first
        fn.acknowledge(fd_number)
    assert fn.unsent() == ()
    closing = fn.close_fn(START + 30 * MINUTE)
    assert (closing.code, fn.phase) == (6, FnPhase.POST_FISCAL)
    with refused(ResultCode.WRONG_STATE):
        fn.open_shift(START + 31 * MINUTE)
    fn.acknowledge(closing.fd_number)
    assert fn.phase is FnPhase.ARCHIVE_READ
    assert VERIFIER.verify(fn.read_document(10)) is True
    assert_invariants(fn)


def test_re_registration_forms_report_11_and_changes_the_header() -> None:
    fn = registered()
    with refused(ResultCode.WRONG_PARAMETER):
        fn.register(START, registration(fn_number="9999078902000001"))
    fn.open_shift(START)
    with refused(ResultCode.WRONG_STATE):
        fn.register(START, registration(reasons=(4,)))
    fn.close_shift(START + MINUTE)
    again = fn.register(
        START + 2 * MINUTE, registration(registration_number="0000000002", reasons=(4,))
    )
    assert (again.code, fn.registrations) == (11, 2)
    fn.open_shift(START + 3 * MINUTE)
    sale = fn.fiscalize(START + 4 * MINUTE, receipt())
    fiscal = decode_receipt(sale.document).fiscal
    assert fiscal is not None and fiscal.registration_number == "0000000002"
    assert_invariants(fn)


def test_a_new_fn_refuses_everything_but_registration() -> None:
    fn = FiscalStorage(FN_NUMBER, KEY)
    for attempt in (
        lambda: fn.open_shift(START),
        lambda: fn.begin_receipt(START),
        lambda: fn.status_report(START),
        lambda: fn.close_fn(START),
    ):
        with refused(ResultCode.WRONG_STATE):
            attempt()
    with refused(ResultCode.NO_DATA):
        fn.read_document(1)
    with refused(ResultCode.NO_DATA):
        fn.acknowledge(1)


def test_shift_states() -> None:
    fn = registered()
    with refused(ResultCode.WRONG_STATE):
        fn.close_shift(START)
    with refused(ResultCode.WRONG_STATE):
        fn.fiscalize(START, receipt())
    fn.open_shift(START)
    with refused(ResultCode.WRONG_STATE):
        fn.open_shift(START)
    with refused(ResultCode.WRONG_STATE):
        fn.close_fn(START)
    fn.close_shift(START)
    fn.open_shift(START)
    assert fn.shift is not None and fn.shift.number == 2
    assert_invariants(fn)


# --- the fiscal sign ------------------------------------------------------------------------------


def test_the_sign_covers_the_document_without_its_1077() -> None:
    fn = registered()
    opened = fn.open_shift(START)
    document = decode_document(opened.document)
    unsigned = {tag: value for tag, value in document.fields.items() if tag != 1077}
    signed, sign = split_fiscal_sign(opened.document)
    assert signed == encode_document(2, unsigned)
    assert sign == opened.fiscal_sign == emulator_fiscal_sign(KEY, signed)


def test_signs_verify_only_with_the_right_key_and_bytes() -> None:
    fn = registered()
    fn.open_shift(START)
    sale = fn.fiscalize(START, receipt(12_345))
    assert VERIFIER.verify(sale.document) is True
    assert EmulatorSignVerifier({FN_NUMBER: b"another key"}).verify(sale.document) is False
    assert EmulatorSignVerifier({}).verify(sale.document) is None
    total = sale.document.index(struct.pack("<HH", 1020, 2) + (12_345).to_bytes(2, "little"))
    flipped = bytearray(sale.document)
    flipped[total + 4] ^= 0x01
    assert VERIFIER.verify(bytes(flipped)) is False
    fields = decode_document(sale.document).fields
    unsigned = encode_document(3, {tag: value for tag, value in fields.items() if tag != 1077})
    assert VERIFIER.verify(unsigned) is False
    with pytest.raises(FiscalSignError):
        VERIFIER.verify(sale.document[:-1])


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_no_flipped_byte_verifies(data: st.DataObject) -> None:
    document = SIGNED_SALE
    index = data.draw(st.integers(0, len(document) - 1))
    mask = data.draw(st.integers(1, 255))
    flipped = bytearray(document)
    flipped[index] ^= mask
    with contextlib.suppress(FiscalSignError):
        assert VERIFIER.verify(bytes(flipped)) is not True


def _signed_sale() -> bytes:
    fn = registered()
    fn.open_shift(START)
    return fn.fiscalize(START, receipt()).document


SIGNED_SALE = _signed_sale()


# --- time rules -----------------------------------------------------------------------------------


def test_a_shift_lasts_at_most_24_hours() -> None:
    fn = registered()
    fn.open_shift(START)
    fn.fiscalize(START + timedelta(hours=24), receipt())
    with refused(ResultCode.SHIFT_OVER_24H):
        fn.fiscalize(START + timedelta(hours=24) + MINUTE, receipt())
    assert fn.open_document is None
    fn.close_shift(START + timedelta(hours=30))
    fn.open_shift(START + timedelta(hours=30))
    fn.fiscalize(START + timedelta(hours=31), receipt())
    assert_invariants(fn)


def test_a_receipt_begun_in_time_cannot_be_finished_after_24_hours() -> None:
    fn = registered()
    fn.open_shift(START)
    fn.begin_receipt(START + timedelta(hours=23, minutes=59))
    fn.add_tlv(encode(receipt_to_tags(receipt())))
    with refused(ResultCode.SHIFT_OVER_24H):
        fn.finish_receipt(START + timedelta(hours=24, minutes=1), 1, 10_000)
    assert fn.open_document is not None
    fn.cancel_document()
    fn.close_shift(START + timedelta(hours=24, minutes=2))
    assert_invariants(fn)


def test_time_never_goes_backwards() -> None:
    fn = registered()
    fn.open_shift(START + 10 * MINUTE)
    with refused(ResultCode.WRONG_DATE_TIME):
        fn.fiscalize(START + 9 * MINUTE, receipt())
    with refused(ResultCode.WRONG_DATE_TIME):
        fn.close_shift(START)
    fn.fiscalize(START + 10 * MINUTE + timedelta(seconds=30), receipt())  # the same minute
    with refused(ResultCode.WRONG_DATE_TIME):
        fn.status_report(datetime(1999, 12, 31))
    assert len(fn.archive) == 3
    assert_invariants(fn)


def test_a_clock_jump_against_the_fn_timer_is_refused() -> None:
    fn = registered()
    fn.open_shift(START, timer=1_000.0)
    fn.fiscalize(START + 10 * MINUTE, receipt(), timer=1_600.0)
    with refused(ResultCode.WRONG_TIME_DIFFERENCE):  # the wall clock leapt 20 minutes in 1
        fn.fiscalize(START + 30 * MINUTE, receipt(), timer=1_660.0)
    with refused(ResultCode.WRONG_TIME_DIFFERENCE):  # or stood still for 6
        fn.fiscalize(START + 10 * MINUTE, receipt(), timer=1_960.0)
    fn.fiscalize(START + 15 * MINUTE, receipt(), timer=1_900.0)  # 5 minutes in 5
    fn.fiscalize(START + 25 * MINUTE, receipt(), timer=2_200.0)  # 10 in 5: at the limit
    fn.fiscalize(START + 26 * MINUTE, receipt())  # no timer reading: nothing to compare
    assert len(fn.archive) == 6
    assert_invariants(fn)


# --- resources ------------------------------------------------------------------------------------


def test_thirty_days_unsent_block_new_work_until_the_ofd_acknowledges() -> None:
    fn = registered()
    fn.open_shift(START)
    fn.close_shift(START + MINUTE)
    later = START + timedelta(days=30)
    fn.open_shift(later)  # the registration report is exactly 30 days old
    with refused(ResultCode.OFD_WAIT_EXHAUSTED):
        fn.fiscalize(later + MINUTE, receipt())
    with refused(ResultCode.OFD_WAIT_EXHAUSTED):
        fn.status_report(later + MINUTE)
    fn.close_shift(later + MINUTE)  # closing stays possible
    fn.acknowledge(1)
    with refused(ResultCode.OFD_WAIT_EXHAUSTED):  # document 2 is as old
        fn.open_shift(later + MINUTE)
    with refused(ResultCode.WRONG_PARAMETER):  # acknowledgements come oldest first
        fn.acknowledge(4)
    fn.acknowledge(2)
    fn.acknowledge(3)
    assert fn.unsent_since == later
    fn.open_shift(later + 2 * MINUTE)
    fn.fiscalize(later + 3 * MINUTE, receipt())
    assert_invariants(fn)


def test_a_full_archive_refuses_new_documents_but_lets_the_fn_close() -> None:
    fn = registered(FnLimits(archive_capacity=5))
    fn.open_shift(START)
    fn.fiscalize(START, receipt())
    assert not fn.warnings(START) & FnWarning.ARCHIVE_90_PERCENT
    fn.fiscalize(START, receipt())
    fn.fiscalize(START, receipt())
    assert fn.warnings(START) & FnWarning.ARCHIVE_90_PERCENT
    with refused(ResultCode.ARCHIVE_FULL):
        fn.fiscalize(START, receipt())
    with refused(ResultCode.ARCHIVE_FULL):
        fn.status_report(START)
    closed = decode_report(fn.close_shift(START).document)
    assert isinstance(closed, CloseShiftReport) and closed.fn_memory_full == 1
    fn.close_fn(START)
    assert fn.phase is FnPhase.POST_FISCAL
    for fd_number in range(1, 8):
        fn.acknowledge(fd_number)
    assert fn.phase is FnPhase.ARCHIVE_READ
    assert_invariants(fn)


def test_expired_keys_refuse_new_work() -> None:
    registered_at = datetime(2026, 1, 31, 9, 0)
    fn = registered(FnLimits(key_validity_months=1), at=registered_at)
    expires = datetime(2026, 2, 28, 9, 0)  # one month later, clipped to February
    assert fn.key_expires == expires
    assert fn.warnings(registered_at) == FnWarning.KEYS_EXPIRE_30_DAYS
    assert fn.warnings(expires - timedelta(days=3)) == (
        FnWarning.KEYS_EXPIRE_30_DAYS | FnWarning.KEYS_EXPIRE_3_DAYS
    )
    fn.open_shift(expires - timedelta(hours=1))
    fn.fiscalize(expires - MINUTE, receipt())
    with refused(ResultCode.CRYPTO_EXHAUSTED):
        fn.fiscalize(expires, receipt())
    closed = decode_report(fn.close_shift(expires + MINUTE).document)
    assert isinstance(closed, CloseShiftReport)
    assert (closed.key_days_left, closed.fn_replace_now, closed.fn_replace_soon) == (0, 1, 1)
    with refused(ResultCode.CRYPTO_EXHAUSTED):
        fn.open_shift(expires + 2 * MINUTE)
    fn.close_fn(expires + 3 * MINUTE)
    assert_invariants(fn)


def test_receipt_data_over_the_limit_is_refused() -> None:
    fn = registered(FnLimits(max_receipt_data=200))
    fn.open_shift(START)
    with refused(ResultCode.WRONG_STATE):
        fn.add_tlv(encode({1192: "x"}))
    fn.begin_receipt(START)
    fn.add_tlv(encode({1192: "x" * 12}))  # 16 bytes
    with refused(ResultCode.TLV_TOO_LARGE):
        fn.add_tlv(encode({1048: "y" * 190}))  # 194 more
    with refused(ResultCode.WRONG_PARAMETER):
        fn.add_tlv(b"\x30\x04\x05\x00ab")  # declares 5 value bytes, has 2
    document = fn.open_document
    assert document is not None and len(document.data) == 16


# --- the open document ----------------------------------------------------------------------------


def test_an_open_receipt_survives_a_host_disconnect() -> None:
    fn = registered()
    fn.open_shift(START)
    sale = receipt(5_000)
    tags = receipt_to_tags(sale)
    keys = list(tags)
    first = encode({k: tags[k] for k in keys[:5]})
    rest = encode({k: tags[k] for k in keys[5:]})
    fn.begin_receipt(START + MINUTE)
    fn.add_tlv(first)
    # The host's link drops here. Whoever connects next finds the document still open.
    for attempt in (
        lambda: fn.begin_receipt(START + 2 * MINUTE),
        lambda: fn.begin_receipt(START + 2 * MINUTE, correction=True),
        lambda: fn.status_report(START + 2 * MINUTE),
        lambda: fn.close_shift(START + 2 * MINUTE),
        lambda: fn.fiscalize(START + 2 * MINUTE, sale),
    ):
        with refused(ResultCode.WRONG_STATE):
            attempt()
    assert fn.open_document == OpenDocument(code=3, data=first)
    fn.add_tlv(rest)
    result = fn.finish_receipt(START + 3 * MINUTE, sale.operation, sale.total)
    assert decode_receipt(result.document).receipt == sale
    assert result.fd_number == 3
    assert_invariants(fn)


def test_a_cancelled_receipt_leaves_no_trace() -> None:
    fn = registered()
    fn.open_shift(START)
    fn.begin_receipt(START, correction=True)
    fn.add_tlv(encode(receipt_to_tags(receipt(correction=True))))
    fn.cancel_document()
    fn.cancel_document()  # nothing open: still fine
    result = fn.fiscalize(START, receipt())
    assert (result.fd_number, result.receipt_number) == (3, 1)
    assert_invariants(fn)


def test_header_tags_from_the_host_must_agree_with_the_fn() -> None:
    fn = registered()
    fn.open_shift(START)
    before = snapshot(fn)
    with refused(ResultCode.WRONG_PARAMETER):  # a receipt of another seller
        fn.fiscalize(START + MINUTE, receipt(inn="7736207543"))
    assert snapshot(fn) == before
    sale = receipt(3_000)
    for tag, value in ((1040, 99), (1077, bytes(6))):
        fn.begin_receipt(START)
        fn.add_tlv(encode({**receipt_to_tags(sale), tag: value}))
        with refused(ResultCode.WRONG_PARAMETER):
            fn.finish_receipt(START, sale.operation, sale.total)
        fn.cancel_document()
    fn.begin_receipt(START)
    fn.add_tlv(encode(receipt_to_tags(sale)))
    with refused(ResultCode.WRONG_PARAMETER):  # 1020 in the data says 3000
        fn.finish_receipt(START, sale.operation, 3_001)
    with refused(ResultCode.WRONG_PARAMETER):
        fn.finish_receipt(START, 5, sale.total)
    result = fn.finish_receipt(START, sale.operation, sale.total)
    assert top_tags(result.document).count(1018) == 1
    assert_invariants(fn)


# --- determinism and invariants -------------------------------------------------------------------

#: Steps and their weights: mostly receipts, sometimes a wait of days that trips the rules.
STEPS = st.lists(
    st.tuples(
        st.sampled_from(
            ["receipt"] * 8
            + ["wait"] * 3
            + ["ack"] * 2
            + ["open", "close", "correction", "status", "abandon"]
        ),
        st.integers(0, 10**6),
    ),
    min_size=15,
    max_size=80,
)


def snapshot(fn: FiscalStorage) -> dict[str, object]:
    """Every attribute of the ФН, its dicts copied."""
    state = attrs.asdict(fn, recurse=False)
    return {k: dict(v) if isinstance(v, dict) else v for k, v in state.items()}


def attempt(fn: FiscalStorage, action: Callable[[], object]) -> None:
    """Run one operation; a refusal must leave the ФН exactly as it was."""
    before = snapshot(fn)
    try:
        action()
    except FnModelError:
        assert snapshot(fn) == before


def run(steps: list[tuple[str, int]]) -> FiscalStorage:
    """Play ``steps`` on a fresh ФН; receipts open a shift when none is open."""
    fn = registered(FnLimits(archive_capacity=25))
    now = START
    for name, value in steps:
        if name == "wait":  # minutes; one wait in ten lasts up to 45 days
            now += timedelta(minutes=value % 65_000 if value % 10 == 0 else value % 300)
            continue
        if name in ("receipt", "correction", "abandon") and fn.shift is None:
            attempt(fn, partial(fn.open_shift, now))
        if name == "open":
            attempt(fn, partial(fn.open_shift, now))
        elif name == "close":
            attempt(fn, partial(fn.close_shift, now))
        elif name == "receipt":
            attempt(fn, partial(fn.fiscalize, now, receipt(value, value % 4 + 1, cash=value // 3)))
        elif name == "correction":
            attempt(fn, partial(fn.fiscalize, now, receipt(value, correction=True)))
        elif name == "status":
            attempt(fn, partial(fn.status_report, now))
        elif name == "ack":
            for fd_number in fn.unsent()[: value % 4]:
                fn.acknowledge(fd_number)
        else:
            attempt(fn, partial(abandon, fn, now))
    return fn


def abandon(fn: FiscalStorage, now: datetime) -> None:
    """Begin a receipt and send its data, then find it open from a "new connection" and cancel."""
    fn.begin_receipt(now)
    fn.add_tlv(encode(receipt_to_tags(receipt())))
    with refused(ResultCode.WRONG_STATE):
        fn.begin_receipt(now)
    fn.cancel_document()


@settings(max_examples=100, deadline=None)
@given(steps=STEPS)
def test_any_sequence_keeps_the_invariants_and_is_deterministic(
    steps: list[tuple[str, int]],
) -> None:
    fn = run(steps)
    assert_invariants(fn)
    assert run(steps).archive == fn.archive


def test_the_same_inputs_give_the_same_bytes_and_keys_change_signs() -> None:
    steps = [("open", 0), ("receipt", 12_345), ("correction", 700), ("status", 0), ("close", 0)]
    assert run(steps).archive == run(steps).archive
    assert FiscalStorage(FN_NUMBER).key == FiscalStorage(FN_NUMBER).key != KEY
    other = FiscalStorage(FN_NUMBER)
    other.register(START, registration())
    assert other.archive[1] != run([]).archive[1]
    assert decode_document(other.archive[1]).fields | {1077: b""} == (
        decode_document(run([]).archive[1]).fields | {1077: b""}
    )
