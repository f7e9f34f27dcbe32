"""Operations reports and shift reconciliation against the emulator ФН's close-shift reports.

The documents here are formed and signed by :class:`emulator.fn.FiscalStorage`, so the
reconciliation is checked against the counters a ФН actually writes, not against a copy of
the engine's own rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal

import attrs
import pytest

from emulator.fn import FiscalResult, FiscalStorage
from engine import samples
from engine.reports import (
    OperationsReport,
    OperationTotal,
    ReceiptRecord,
    ShiftRecord,
    ShiftSection,
    journal_counters,
    operations_report,
    receipt_view,
    reconcile,
    render_receipt,
    render_report,
    roubles,
)
from protocols.documents.ffd import decode_receipt
from protocols.documents.model import (
    Cashier,
    CorrectionBasis,
    CorrectionReceipt,
    Item,
    Payments,
    Receipt,
)
from protocols.documents.reports import CloseShiftReport, RegistrationReport, decode_report
from protocols.tlv.enums import OperationType, PaymentMethod, PaymentSubject, TaxSystem, VatRate

TENANT = "shop-1"
REGISTER = "kkt-1"
FN_NUMBER = "9999078902003988"
OTHER_FN = "9999078902003995"
INN = samples.COMPANY.inn
START = datetime(2026, 3, 2, 9, 0)
MINUTE = timedelta(minutes=1)
#: The tenant's time zone, which its registers' clocks (1012) keep.
ZONE = "Europe/Moscow"
#: The journal's clock: unix time of START in ZONE, so that record times and 1012 line up.
T0 = 1_772_431_200.0


def registration(fn_number: str = FN_NUMBER) -> RegistrationReport:
    return RegistrationReport(
        user_inn=INN,
        user="ООО Ромашка",
        registration_number="0000000001061875",
        fn_number=fn_number,
        kkt_serial="0496530001",
        tax_systems=int(TaxSystem.OSN),
        place=samples.COMPANY.place,
    )


def line(
    name: str,
    price: int,
    quantity: str = "1",
    vat: VatRate = VatRate.VAT20,
    method: PaymentMethod = PaymentMethod.FULL_PAYMENT,
) -> Item:
    return samples.item(name, price, quantity, vat=int(vat), method=int(method))


def receipt(
    operation: OperationType, items: tuple[Item, ...], payments: Payments | None = None
) -> Receipt:
    total = sum(i.sum for i in items)
    return Receipt(
        operation=int(operation),
        items=items,
        payments=payments or Payments(cash=total),
        company=samples.COMPANY,
        total=total,
        cashier=Cashier("Иванова И."),
    )


def correction(operation: OperationType, amount: int) -> CorrectionReceipt:
    base = receipt(operation, (line("Кофе с собой", amount),))
    return CorrectionReceipt(
        **{f.name: getattr(base, f.name) for f in attrs.fields(Receipt)},
        correction_type=0,
        basis=CorrectionBasis(date=datetime(2026, 3, 1)),
    )


def qr(result: FiscalResult, total: int, operation: int, fn_number: str = FN_NUMBER) -> str:
    t = result.time
    return (
        f"t={t:%Y%m%dT%H%M}&s={roubles(total)}&fn={fn_number}&i={result.fd_number}"
        f"&fp={result.printed_sign}&n={operation}"
    )


def record(
    result: FiscalResult,
    sent: Receipt,
    *,
    job: str,
    at: float,
    tenant: str = TENANT,
    register_id: str = REGISTER,
    fn_number: str = FN_NUMBER,
) -> ReceiptRecord:
    return ReceiptRecord(
        job_id=job,
        tenant=tenant,
        external_id=f"order-{job}",
        register_id=register_id,
        fn_number=fn_number,
        fd_number=result.fd_number,
        fiscal_sign=result.fiscal_sign,
        printed_sign=result.printed_sign,
        qr=qr(result, sent.total, sent.operation, fn_number),
        document=result.document,
        fiscalized_at=at,
    )


#: The receipts of shift 1: sales with mixed payments, a refund, a purchase, a correction.
SHIFT_1: tuple[tuple[str, Receipt], ...] = (
    (
        "sale-mixed",
        receipt(
            OperationType.SELL,
            (line("Кофе", 15_000, "2"), line("Пирожное", 8_000, vat=VatRate.VAT10)),
            Payments(cash=10_000, electronic=28_000),
        ),
    ),
    (
        "sale-other-payments",
        receipt(
            OperationType.SELL,
            (line("Диван", 50_000, vat=VatRate.NONE, method=PaymentMethod.FULL_PAYMENT),),
            Payments(prepaid=30_000, credit=15_000, provision=5_000),
        ),
    ),
    ("sale-marked", samples.marked_sale()),
    (
        "refund",
        receipt(
            OperationType.SELL_REFUND,
            (line("Пирожное", 8_000, vat=VatRate.VAT10),),
            Payments(electronic=8_000),
        ),
    ),
    ("buy", receipt(OperationType.BUY, (line("Макулатура", 700, "0.5", VatRate.VAT0),))),
    ("correction", correction(OperationType.SELL, 45_000)),
)


@attrs.frozen
class Journal:
    """What the journal of one register holds after the scenario."""

    receipts: tuple[ReceiptRecord, ...]
    shifts: tuple[ShiftRecord, ...]
    sent: dict[str, Receipt]  # job id → the receipt as sent


def scenario() -> Journal:
    """Shift 1 with SHIFT_1, closed; shift 2 with one sale, still open."""
    fn = FiscalStorage(FN_NUMBER)
    fn.register(START, registration())
    fn.open_shift(START + 5 * MINUTE)
    records: list[ReceiptRecord] = []
    sent: dict[str, Receipt] = {}
    for i, (job, what) in enumerate(SHIFT_1):
        minute = 10 + i
        result = fn.fiscalize(START + minute * MINUTE, what)
        records.append(record(result, what, job=job, at=T0 + 60 * minute))
        sent[job] = what
    closed = fn.close_shift(START + 30 * MINUTE)
    fn.open_shift(START + 40 * MINUTE)
    late = receipt(OperationType.SELL, (line("Чай", 9_000),), Payments(electronic=9_000))
    result = fn.fiscalize(START + 45 * MINUTE, late)
    records.append(record(result, late, job="sale-shift-2", at=T0 + 60 * 45))
    sent["sale-shift-2"] = late
    shifts = (
        ShiftRecord(TENANT, REGISTER, FN_NUMBER, 1, T0 + 300, T0 + 1800, closed.document),
        ShiftRecord(TENANT, REGISTER, FN_NUMBER, 2, T0 + 2400, None, None),
    )
    return Journal(tuple(records), shifts, sent)


@pytest.fixture(scope="module")
def journal() -> Journal:
    return scenario()


def report_of(
    journal: Journal,
    receipts: Iterable[ReceiptRecord] | None = None,
    *,
    start: float | None = 0.0,
    end: float = float("inf"),
    register_id: str | None = None,
    tenant: str = TENANT,
) -> OperationsReport:
    return operations_report(
        journal.receipts if receipts is None else receipts,
        journal.shifts,
        tenant=tenant,
        start=start,
        end=end,
        register_id=register_id,
    )


def shift_of(report: OperationsReport, number: int) -> ShiftSection:
    return next(
        s for register in report.registers for s in register.shifts if s.shift_number == number
    )


def operation(
    section_totals: Iterable[OperationTotal], op: int, correction: bool = False
) -> OperationTotal:
    return next(o for o in section_totals if o.operation == op and o.correction is correction)


# --- reconciliation -------------------------------------------------------------------------------


def test_a_consistent_journal_reconciles_with_the_fns_close_shift_report(journal: Journal) -> None:
    report = report_of(journal)
    first = shift_of(report, 1)
    assert first.reconciliation.status == "match", first.reconciliation.differences
    assert first.reconciliation.differences == ()
    assert first.totals.receipts == len(SHIFT_1)


def test_the_journal_counters_equal_the_fns_1194_exactly(journal: Journal) -> None:
    closed = journal.shifts[0].close_document
    assert closed is not None
    fn_report = decode_report(closed)
    assert isinstance(fn_report, CloseShiftReport)
    in_shift_1 = [decode_receipt(r.document).receipt for r in journal.receipts[: len(SHIFT_1)]]
    assert journal_counters(in_shift_1) == fn_report.shift_counters
    assert fn_report.receipts == len(SHIFT_1)


def test_dropping_a_receipt_from_the_journal_names_the_counters_that_differ(
    journal: Journal,
) -> None:
    without_mixed_sale = [r for r in journal.receipts if r.job_id != "sale-mixed"]
    check = shift_of(report_of(journal, without_mixed_sale), 1).reconciliation
    assert check.status == "mismatch"
    sale = journal.sent["sale-mixed"]
    assert set(check.differences) == {
        f"1118 receipts: ФН {len(SHIFT_1)}, journal {len(SHIFT_1) - 1}",
        f"1194.1134 receipts: ФН {len(SHIFT_1)}, journal {len(SHIFT_1) - 1}",
        "1194.1129.1135 count: ФН 3, journal 2",
        f"1194.1129.1201 total: ФН {_sells()}, journal {_sells() - sale.total}",
        f"1194.1129.1136 cash: ФН {_sells('cash')}, journal {_sells('cash') - sale.payments.cash}",
        f"1194.1129.1138 electronic: ФН {_sells('electronic')}, journal "
        f"{_sells('electronic') - sale.payments.electronic}",
    }


def _sells(field: str | None = None) -> int:
    """Σ over the shift-1 receipts (not corrections) of приход: 1020 or a payment field."""
    return sum(
        r.total if field is None else getattr(r.payments, field)
        for job, r in SHIFT_1
        if r.operation == OperationType.SELL and not isinstance(r, CorrectionReceipt)
    )


def test_dropping_a_correction_shows_in_1134_and_1118_only(journal: Journal) -> None:
    without = [r for r in journal.receipts if r.job_id != "correction"]
    check = shift_of(report_of(journal, without), 1).reconciliation
    assert check.status == "mismatch"
    assert [d.split(":")[0] for d in check.differences] == ["1118 receipts", "1194.1134 receipts"]


def test_a_shift_without_a_close_report_is_open(journal: Journal) -> None:
    second = shift_of(report_of(journal), 2)
    assert second.reconciliation.status == "open"
    assert second.closed_at is None
    assert second.totals.receipts == 1


def test_a_closed_shift_whose_report_is_missing_or_damaged_is_a_mismatch(
    journal: Journal,
) -> None:
    record = journal.shifts[0]
    counters = journal_counters(decode_receipt(r.document).receipt for r in journal.receipts)
    missing = reconcile(attrs.evolve(record, close_document=None), counters)
    assert missing.status == "mismatch"
    assert "missing" in missing.differences[0]
    assert record.close_document is not None
    damaged = reconcile(attrs.evolve(record, close_document=record.close_document[:-3]), counters)
    assert damaged.status == "mismatch"
    assert "does not decode" in damaged.differences[0]
    assert reconcile(None, counters).status == "open"


def test_reconciliation_uses_the_whole_shift_even_when_the_period_cuts_it(
    journal: Journal,
) -> None:
    # Only the last three receipts of shift 1 fall into the period.
    cut = T0 + 60 * 13
    report = report_of(journal, start=cut, end=T0 + 60 * 40)
    first = shift_of(report, 1)
    assert first.totals.receipts == 3
    assert first.outside_period == 3
    assert first.reconciliation.status == "match"
    assert [s.shift_number for r in report.registers for s in r.shifts] == [1]


# --- totals ---------------------------------------------------------------------------------------


def test_totals_per_operation_payment_type_and_vat_rate(journal: Journal) -> None:
    report = report_of(journal, end=T0 + 60 * 40)
    totals = report.totals
    assert totals.receipts == len(SHIFT_1)
    sell = operation(totals.operations, OperationType.SELL)
    assert sell.count == 3
    assert sell.total == 38_000 + 50_000 + 549_000
    assert (sell.cash, sell.electronic) == (10_000, 28_000 + 549_000)
    assert (sell.prepaid, sell.credit, sell.provision) == (30_000, 15_000, 5_000)
    by_rate = {v.rate: v for v in sell.vat}
    assert by_rate[VatRate.VAT20].amount == 30_000
    assert by_rate[VatRate.VAT20].vat == 5_000
    assert by_rate[VatRate.VAT22].amount == 549_000  # the marked shoes, at 2026's rate
    assert by_rate[VatRate.VAT22].vat == 99_000
    assert by_rate[VatRate.VAT10].amount == 8_000
    assert by_rate[VatRate.VAT10].vat == 727
    assert by_rate[VatRate.NONE].amount == 50_000
    assert by_rate[VatRate.NONE].vat_lines == 0
    refund = operation(totals.operations, OperationType.SELL_REFUND)
    assert (refund.count, refund.total, refund.electronic) == (1, 8_000, 8_000)
    buy = operation(totals.operations, OperationType.BUY)
    assert (buy.count, buy.total, buy.cash) == (1, 350, 350)
    assert buy.vat[0].rate == VatRate.VAT0
    corrected = operation(totals.operations, OperationType.SELL, correction=True)
    assert (corrected.count, corrected.total, corrected.cash) == (1, 45_000, 45_000)
    assert [(o.correction, o.operation) for o in totals.operations] == [
        (False, 1),
        (False, 2),
        (False, 3),
        (True, 1),
    ]
    assert totals.net("cash") == 10_000 - 350 + 45_000
    assert totals.net("electronic") == 28_000 + 549_000 - 8_000
    assert report.registers[0].totals == totals


def test_the_grand_total_adds_registers_and_shifts(journal: Journal) -> None:
    report = report_of(journal)
    assert report.totals.receipts == len(SHIFT_1) + 1
    assert sum(s.totals.receipts for s in report.registers[0].shifts) == report.totals.receipts
    assert operation(report.totals.operations, OperationType.SELL).count == 4


def test_registers_are_reported_apart_and_added_up(journal: Journal) -> None:
    fn = FiscalStorage(OTHER_FN)
    fn.register(START, registration(OTHER_FN))
    fn.open_shift(START + MINUTE)
    sale = receipt(OperationType.SELL, (line("Сок", 12_000),), Payments(cash=12_000))
    sold = fn.fiscalize(START + 20 * MINUTE, sale)
    closed = fn.close_shift(START + 50 * MINUTE)
    other = record(
        sold, sale, job="kkt-2-sale", at=T0 + 1200, register_id="kkt-2", fn_number=OTHER_FN
    )
    shifts = (
        *journal.shifts,
        ShiftRecord(TENANT, "kkt-2", OTHER_FN, 1, T0 + 60, T0 + 3000, closed.document),
    )
    report = operations_report(
        [*journal.receipts, other], shifts, tenant=TENANT, start=0.0, end=float("inf")
    )
    assert [r.register_id for r in report.registers] == [REGISTER, "kkt-2"]
    second = report.registers[1]
    assert [(s.fn_number, s.shift_number) for s in second.shifts] == [(OTHER_FN, 1)]
    assert second.shifts[0].reconciliation.status == "match"
    assert second.totals.receipts == 1
    assert report.totals.receipts == report.registers[0].totals.receipts + 1
    sells = operation(report.totals.operations, OperationType.SELL)
    assert sells.cash == operation(report.registers[0].totals.operations, 1).cash + 12_000


# --- filters --------------------------------------------------------------------------------------


def test_only_the_tenants_records_are_reported(journal: Journal) -> None:
    foreign = [attrs.evolve(r, tenant="shop-2", job_id="x-" + r.job_id) for r in journal.receipts]
    report = report_of(journal, [*journal.receipts, *foreign])
    assert report.totals.receipts == len(journal.receipts)
    assert shift_of(report, 1).reconciliation.status == "match"
    other = report_of(journal, [*journal.receipts, *foreign], tenant="shop-2")
    # shop-2 has receipts but no shift records: its shifts are reported as open.
    assert other.totals.receipts == len(journal.receipts)
    assert all(s.reconciliation.status == "open" for r in other.registers for s in r.shifts)
    assert report_of(journal, tenant="nobody").registers == ()


def test_the_period_is_half_open_on_journal_time(journal: Journal) -> None:
    at = journal.receipts[2].fiscalized_at
    only = report_of(journal, start=at, end=at + 1)
    assert only.totals.receipts == 1
    assert report_of(journal, start=at + 1, end=at + 60).totals.receipts == 0
    # Later on, only the still open shift 2 overlaps the period, with nothing in it.
    later = report_of(journal, start=T0 + 10**6, end=T0 + 2 * 10**6)
    assert [s.shift_number for r in later.registers for s in r.shifts] == [2]
    assert later.totals.receipts == 0
    # Before the first shift opened, nothing.
    assert report_of(journal, start=T0 - 10**6, end=T0).registers == ()


def test_the_register_filter(journal: Journal) -> None:
    elsewhere = [
        attrs.evolve(r, register_id="kkt-2") if r.job_id == "sale-shift-2" else r
        for r in journal.receipts
    ]
    mine = report_of(journal, elsewhere, register_id=REGISTER)
    assert [r.register_id for r in mine.registers] == [REGISTER]
    # Shift 2 belongs to kkt-1 by its record, but its only receipt was made elsewhere.
    assert shift_of(mine, 2).totals.receipts == 0
    assert mine.totals.receipts == len(SHIFT_1)
    theirs = report_of(journal, elsewhere, register_id="kkt-2")
    assert theirs.registers == ()


def test_a_document_that_does_not_decode_is_left_out_and_said(journal: Journal) -> None:
    broken = attrs.evolve(journal.receipts[0], document=journal.receipts[0].document[:-2])
    report = report_of(journal, [broken, *journal.receipts[1:]])
    assert len(report.problems) == 1
    assert broken.job_id in report.problems[0]
    assert shift_of(report, 1).reconciliation.status == "mismatch"


# --- rendering ------------------------------------------------------------------------------------


def test_render_report_shows_roubles_statuses_and_differences(journal: Journal) -> None:
    text = render_report(report_of(journal), ZONE)
    assert "tenant shop-1" in text
    assert "register kkt-1" in text
    assert "shift 1, ФН 9999078902003988" in text
    assert "reconciliation: match" in text
    assert "reconciliation: open" in text
    assert "6370.00" in text  # приход of shift 1
    assert "VAT 50.00 (1200 in 1 of 1 lines)" in text  # the coffee at 20 %
    assert "VAT 990.00 (1200 in 1 of 1 lines)" in text  # the shoes at 22 %
    assert "коррекция: приход" in text
    assert "НДС 10%" in text and "НДС 22%" in text
    assert "." in text and "e+" not in text
    dropped = [r for r in journal.receipts if r.job_id != "refund"]
    text = render_report(report_of(journal, dropped), ZONE)
    assert "reconciliation: mismatch" in text
    assert "! 1194.1130.1138 electronic: ФН 8000, journal 0" in text


def test_render_report_shows_times_in_the_tenants_zone_with_the_offset(journal: Journal) -> None:
    text = render_report(report_of(journal, start=T0, end=T0 + 3600), ZONE)
    assert "period: 2026-03-02T09:00:00+03:00 … 2026-03-02T10:00:00+03:00\n" in text
    assert (
        "shift 1, ФН 9999078902003988: opened 2026-03-02T09:05:00+03:00, "
        "closed 2026-03-02T09:30:00+03:00; reconciliation: match"
    ) in text
    assert "opened 2026-03-02T09:40:00+03:00, closed …; reconciliation: open" in text
    elsewhere = render_report(report_of(journal, start=T0, end=T0 + 3600), "Asia/Yekaterinburg")
    assert "period: 2026-03-02T11:00:00+05:00 … 2026-03-02T12:00:00+05:00\n" in elsewhere
    assert "UTC" not in text + elsewhere


def test_a_report_without_a_start_shows_the_period_it_covers(journal: Journal) -> None:
    """Not 1970: the period starts at the first shift opening or receipt in the report."""
    report = report_of(journal, start=None, end=T0 + 3600)
    assert report.start == T0 + 300  # shift 1 opened at 09:05, before its first receipt
    assert report.totals.receipts == len(journal.receipts)
    assert "period: 2026-03-02T09:05:00+03:00 … 2026-03-02T10:00:00+03:00" in render_report(
        report, ZONE
    )
    nothing = report_of(journal, start=None, end=T0 + 3600, tenant="nobody")
    assert (nothing.start, nothing.end, nothing.registers) == (T0 + 3600, T0 + 3600, ())


def test_roubles_use_integer_arithmetic() -> None:
    assert roubles(0) == "0.00"
    assert roubles(5) == "0.05"
    assert roubles(123_456) == "1234.56"
    assert roubles(-705) == "-7.05"
    assert roubles(2**48 - 1) == "2814749767106.55"


# --- the receipt view -----------------------------------------------------------------------------


def test_the_receipt_view_lists_every_line_and_the_fiscal_data(journal: Journal) -> None:
    rec = journal.receipts[0]
    view = receipt_view(rec)
    sent = journal.sent["sale-mixed"]
    assert [(ln.number, ln.name, ln.quantity, ln.price, ln.sum) for ln in view.lines] == [
        (1, "Кофе", Decimal(2), 15_000, 30_000),
        (2, "Пирожное", Decimal(1), 8_000, 8_000),
    ]
    assert [ln.vat for ln in view.lines] == [VatRate.VAT20, VatRate.VAT10]
    assert view.total == sent.total
    assert view.payments.cash == 10_000
    assert {(v.rate, v.tag, v.amount) for v in view.vat_sums} == {
        (VatRate.VAT20, 1102, 5_000),
        (VatRate.VAT10, 1103, 727),
    }
    assert (view.fd_number, view.fn_number, view.shift_number, view.receipt_number) == (
        rec.fd_number,
        FN_NUMBER,
        1,
        1,
    )
    assert view.time == START + 10 * MINUTE
    text = render_receipt(view, ZONE)
    for expected in (
        "КАССОВЫЙ ЧЕК / ПРИХОД",
        "  1 Кофе",
        "  2 Пирожное",
        "2 шт",
        "150.00",
        "300.00",
        "НДС 20% (50.00)",
        "НДС 10% (7.27)",
        "полный расчёт",
        "предмет расчёта (1212): товар",
        "ИТОГ (1020): 380.00",
        "наличными (1031): 100.00",
        "безналичными (1081): 280.00",
        "НДС 20% (1102): 50.00",
        f"ФД (1040): {rec.fd_number}",
        f"ФН (1041): {FN_NUMBER}",
        f"ФП: {rec.printed_sign}",
        "смена (1038): 1",
        "чек за смену (1042): 1",
        "дата, время (1012): 2026-03-02T09:10+03:00",
        f"QR: {rec.qr}",
    ):
        assert expected in text, expected


def test_the_receipt_view_shows_marking_and_corrections(journal: Journal) -> None:
    marked = receipt_view(next(r for r in journal.receipts if r.job_id == "sale-marked"))
    assert marked.lines[0].payment_subject == PaymentSubject.MARKED
    text = render_receipt(marked, ZONE)
    assert "маркировка (1163): GS1M 0104601234567893215Ab7Cd9ExY" in text
    assert "маркированный с КМ" in text
    corrected = receipt_view(next(r for r in journal.receipts if r.job_id == "correction"))
    assert corrected.document_code == 31
    text = render_receipt(corrected, ZONE)
    assert "КАССОВЫЙ ЧЕК КОРРЕКЦИИ / ПРИХОД" in text
    assert "самостоятельно, от 01.03.2026" in text
    bought = receipt_view(next(r for r in journal.receipts if r.job_id == "buy"))
    assert "0.5 шт" in render_receipt(bought, ZONE)
    assert "сумма расчёта, НДС 0% (1104): 3.50" in render_receipt(bought, ZONE)
