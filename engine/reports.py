"""Operations reports (отчёт об операциях), shift reconciliation and the receipt view.

The journal keeps every fiscalized receipt as the ФН signed it (:class:`ReceiptRecord`) and
every shift with its close-shift report (:class:`ShiftRecord`). From those alone, with no
register at hand, this module answers what a tenant sold and refunded in a period, register
by register and shift by shift, and whether the journal agrees with the ФН: each closed
shift's 1194 счётчики итогов смены are compared with the same counters recomputed from the
journal's receipts of that shift.

The reconciliation rule follows the ФН (:mod:`emulator.fn` ``_tally``, which this module
must not import): 1134 and 1118 count every receipt (3) and correction receipt (31) of the
shift; the per-operation blocks 1129–1132 (приход, возврат прихода, расход, возврат расхода)
count receipts only, each adding 1 to 1135, its 1020 to 1201 and its 1031, 1081, 1215, 1216,
1217 to 1136, 1138, 1218, 1219, 1220. Corrections go into 1133 on a real ФН, which
:class:`~protocols.documents.reports.Counters` does not model, so they are reconciled through
1134 and 1118 only.

Reconciliation looks at *all* the receipts of a shift in the input, not only those inside the
report's period or register filter: the ФН's counters cover the whole shift, and a shift that
straddles the period's edge would otherwise never match. The journal side must therefore be
given every receipt of the shifts in question (the engine passes the tenant's whole journal);
the period decides which receipts are *reported*, never which are *reconciled*.

Money is integer kopecks throughout and is shown as roubles by integer arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import Literal

import attrs

from engine.times import local_time, register_time
from protocols.documents.ffd import DocumentError, FiscalData, decode_receipt
from protocols.documents.model import (
    PRODUCT_CODE_TAGS,
    Cashier,
    Company,
    CorrectionBasis,
    CorrectionReceipt,
    Payments,
    Receipt,
)
from protocols.documents.reports import (
    CloseShiftReport,
    Counters,
    OperationCounters,
    decode_report,
)
from protocols.documents.vat import LEGACY_TOTAL_TAGS, TURNOVER_RATES
from protocols.errors import ProtocolError
from protocols.tlv import TagMap

__all__ = [
    "PAYMENT_FIELDS",
    "OperationTotal",
    "OperationsReport",
    "ReceiptLine",
    "ReceiptRecord",
    "ReceiptView",
    "Reconciliation",
    "RegisterSection",
    "ShiftRecord",
    "ShiftSection",
    "Totals",
    "VatSum",
    "VatTotal",
    "journal_counters",
    "operation_label",
    "operations_report",
    "receipt_vat_sums",
    "receipt_view",
    "reconcile",
    "render_receipt",
    "render_report",
    "roubles",
    "vat_label",
]


# --- the journal's records ------------------------------------------------------------------------


@attrs.frozen
class ReceiptRecord:
    """One fiscalized job as the journal keeps it: who sent it, and the document as signed."""

    job_id: str
    tenant: str
    external_id: str
    register_id: str
    fn_number: str  # 1041
    fd_number: int  # 1040
    fiscal_sign: bytes  # 1077 ФПД, the 6 raw bytes
    printed_sign: int  # the printed ФП
    qr: str  # the receipt's QR string
    document: bytes  # the whole TLV (3 or 31) as the ФН signed it
    fiscalized_at: float  # unix time when journaled


@attrs.frozen
class ShiftRecord:
    """One shift (смена, 1038) of one register, with its close-shift report (5) once closed."""

    tenant: str
    register_id: str
    fn_number: str
    shift_number: int
    opened_at: float
    closed_at: float | None
    close_document: bytes | None  # отчёт о закрытии смены as the ФН signed it


# --- labels ---------------------------------------------------------------------------------------

#: 1054 признак расчёта.
OPERATION_LABELS: dict[int, str] = {
    1: "приход",
    2: "возврат прихода",
    3: "расход",
    4: "возврат расхода",
}
#: 1199 ставка НДС.
VAT_LABELS: dict[int, str] = {
    1: "НДС 20%",
    2: "НДС 10%",
    3: "НДС 20/120",
    4: "НДС 10/110",
    5: "НДС 0%",
    6: "без НДС",
    7: "НДС 5%",
    8: "НДС 7%",
    9: "НДС 5/105",
    10: "НДС 7/107",
    11: "НДС 22%",
    12: "НДС 22/122",
}
#: 1214 признак способа расчёта.
PAYMENT_METHOD_LABELS: dict[int, str] = {
    1: "предоплата 100%",
    2: "предоплата",
    3: "аванс",
    4: "полный расчёт",
    5: "частичный расчёт и кредит",
    6: "передача в кредит",
    7: "оплата кредита",
}
#: 1212 признак предмета расчёта (FFD 1.2 meanings).
PAYMENT_SUBJECT_LABELS: dict[int, str] = {
    1: "товар",
    2: "подакцизный товар",
    3: "работа",
    4: "услуга",
    5: "ставка азартной игры",
    6: "выигрыш азартной игры",
    7: "лотерейный билет",
    8: "выигрыш лотереи",
    9: "РИД",
    10: "платёж",
    11: "агентское вознаграждение",
    12: "выплата",
    13: "иной предмет расчёта",
    14: "имущественное право",
    15: "внереализационный доход",
    16: "страховые взносы",
    17: "торговый сбор",
    18: "курортный сбор",
    19: "залог",
    20: "расход",
    21: "взносы на ОПС ИП",
    22: "взносы на ОПС",
    23: "взносы на ОМС ИП",
    24: "взносы на ОМС",
    25: "взносы на ОСС",
    26: "платёж казино",
    27: "выдача денежных средств",
    30: "подакцизный маркированный без КМ",
    31: "подакцизный маркированный с КМ",
    32: "маркированный без КМ",
    33: "маркированный с КМ",
}
#: 2108 мера количества.
MEASURE_LABELS: dict[int, str] = {
    0: "шт",
    10: "г",
    11: "кг",
    12: "т",
    20: "см",
    21: "дм",
    22: "м",
    30: "см²",
    31: "дм²",
    32: "м²",
    40: "мл",
    41: "л",
    42: "м³",
    50: "кВт·ч",
    51: "Гкал",
    70: "сут",
    71: "ч",
    72: "мин",
    73: "с",
    80: "КБ",
    81: "МБ",
    82: "ГБ",
    83: "ТБ",
    255: "иное",
}
_PRODUCT_CODE_NAMES = {kind: kind.upper() for kind in PRODUCT_CODE_TAGS}


def roubles(kopecks: int) -> str:
    """Kopecks as roubles with two decimals, by integer arithmetic (never through a float)."""
    sign = "-" if kopecks < 0 else ""
    whole, part = divmod(abs(kopecks), 100)
    return f"{sign}{whole}.{part:02d}"


def operation_label(operation: int, correction: bool = False) -> str:
    """The Russian name of a 1054 value, as a correction («коррекция …») where it is one."""
    name = OPERATION_LABELS.get(operation, f"1054={operation}")
    return f"коррекция: {name}" if correction else name


def vat_label(rate: int) -> str:
    """The Russian name of a 1199 rate."""
    return VAT_LABELS.get(rate, f"1199={rate}")


# --- the report's values --------------------------------------------------------------------------


@attrs.frozen
class VatTotal:
    """One 1199 rate within one operation: Σ 1043 item sums and Σ 1200 VAT where present."""

    rate: int  # 1199
    lines: int  # items (1059) at this rate
    amount: int  # Σ 1043 стоимость, kopecks
    vat: int  # Σ 1200 сумма НДС, kopecks, over the items that carry it
    vat_lines: int  # how many of the items carry 1200, so "where present" stays visible


@attrs.frozen
class OperationTotal:
    """Counts and sums of one 1054 operation, receipts (3) and corrections (31) apart."""

    operation: int  # 1054
    correction: bool  # кассовый чек коррекции (31)
    count: int
    total: int  # Σ 1020
    cash: int  # Σ 1031 наличными
    electronic: int  # Σ 1081 безналичными
    prepaid: int  # Σ 1215 предоплатой
    credit: int  # Σ 1216 постоплатой
    provision: int  # Σ 1217 встречным предоставлением
    vat: tuple[VatTotal, ...]  # by rate, ascending

    @property
    def label(self) -> str:
        return operation_label(self.operation, self.correction)


#: Operations that bring money in (приход, возврат расхода); the others pay it out.
_INCOME = frozenset({1, 4})
PAYMENT_FIELDS = ("total", "cash", "electronic", "prepaid", "credit", "provision")


@attrs.frozen
class Totals:
    """The totals of a group of receipts: how many, and per operation its payments and VAT."""

    receipts: int = 0  # documents 3 and 31
    operations: tuple[OperationTotal, ...] = ()  # receipts before corrections, by 1054

    def net(self, field: str) -> int:
        """Money in less money out for one payment field (``PAYMENT_FIELDS``), corrections too.

        приход and возврат расхода bring money in; возврат прихода and расход pay it out.
        """
        return sum(
            getattr(line, field) * (1 if line.operation in _INCOME else -1)
            for line in self.operations
        )


@attrs.frozen
class Reconciliation:
    """Whether the journal agrees with the ФН's close-shift report (5) of a shift.

    ``open``: no close-shift report yet, nothing to compare. Each difference names the
    counter by its tag path, e.g. ``1194.1129.1136 cash: ФН 150000, journal 140000``.
    """

    status: Literal["match", "mismatch", "open"]
    differences: tuple[str, ...] = ()


@attrs.frozen
class ShiftSection:
    """One shift (смена) in the report: its receipts in the period and its reconciliation."""

    register_id: str
    fn_number: str  # 1041
    shift_number: int  # 1038
    opened_at: float | None  # unix time, from the journal's shift record
    closed_at: float | None
    totals: Totals  # receipts of the shift inside the period
    outside_period: int  # receipts of the shift outside the period, reconciled nonetheless
    reconciliation: Reconciliation


@attrs.frozen
class RegisterSection:
    """One register (ККТ) in the report: its shifts and their totals."""

    register_id: str
    shifts: tuple[ShiftSection, ...]
    totals: Totals


@attrs.frozen
class OperationsReport:
    """отчёт об операциях: a tenant's receipts of [start, end), per register and shift.

    ``start`` is the one asked for, or, when none was, the first moment the report covers:
    its earliest shift opening or receipt (``end`` when it has neither).
    """

    tenant: str
    start: float
    end: float
    register_id: str | None
    registers: tuple[RegisterSection, ...]
    totals: Totals
    problems: tuple[str, ...] = ()  # records left out because their documents do not decode


# --- accumulation ---------------------------------------------------------------------------------


@attrs.define
class _OperationSums:
    count: int = 0
    total: int = 0
    cash: int = 0
    electronic: int = 0
    prepaid: int = 0
    credit: int = 0
    provision: int = 0
    vat: dict[int, list[int]] = attrs.Factory(dict)  # rate → [lines, amount, vat, vat_lines]

    def add_receipt(self, receipt: Receipt) -> None:
        payments = receipt.payments
        self.count += 1
        self.total += receipt.total
        self.cash += payments.cash
        self.electronic += payments.electronic
        self.prepaid += payments.prepaid
        self.credit += payments.credit
        self.provision += payments.provision
        for item in receipt.items:
            sums = self.vat.setdefault(item.vat, [0, 0, 0, 0])
            sums[0] += 1
            sums[1] += item.sum
            if item.vat_sum is not None:
                sums[2] += item.vat_sum
                sums[3] += 1

    def merge(self, other: _OperationSums) -> None:
        for name in ("count", *PAYMENT_FIELDS):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for rate, sums in other.vat.items():
            mine = self.vat.setdefault(rate, [0, 0, 0, 0])
            for i, value in enumerate(sums):
                mine[i] += value

    def freeze(self, operation: int, correction: bool) -> OperationTotal:
        return OperationTotal(
            operation=operation,
            correction=correction,
            count=self.count,
            total=self.total,
            cash=self.cash,
            electronic=self.electronic,
            prepaid=self.prepaid,
            credit=self.credit,
            provision=self.provision,
            vat=tuple(VatTotal(rate, *sums) for rate, sums in sorted(self.vat.items())),
        )


@attrs.define
class _TotalsSums:
    receipts: int = 0
    operations: dict[tuple[bool, int], _OperationSums] = attrs.Factory(dict)

    def add_receipt(self, receipt: Receipt) -> None:
        self.receipts += 1
        key = (isinstance(receipt, CorrectionReceipt), receipt.operation)
        self.operations.setdefault(key, _OperationSums()).add_receipt(receipt)

    def merge(self, other: _TotalsSums) -> None:
        self.receipts += other.receipts
        for key, sums in other.operations.items():
            self.operations.setdefault(key, _OperationSums()).merge(sums)

    def freeze(self) -> Totals:
        return Totals(
            receipts=self.receipts,
            operations=tuple(
                sums.freeze(operation, correction)
                for (correction, operation), sums in sorted(self.operations.items())
            ),
        )


#: (Counters field, its 1129–1132 tag, the 1054 operation it counts).
_BLOCKS: tuple[tuple[str, int, int], ...] = tuple(
    (name, int(attrs.fields_dict(Counters)[name].metadata["tag"]), operation)
    for name, operation in (("sell", 1), ("sell_refund", 2), ("buy", 3), ("buy_refund", 4))
)
#: (OperationCounters field, its tag): 1135, 1201, 1136, 1138, 1218, 1219, 1220.
_BLOCK_FIELDS: tuple[tuple[str, int], ...] = tuple(
    (field.name, int(field.metadata["tag"])) for field in attrs.fields(OperationCounters)
)


@attrs.define
class _CounterSums:
    """1194 as the journal's receipts make it, by the ФН's rule (see the module docstring)."""

    receipts: int = 0  # 1134, and 1118
    blocks: dict[int, list[int]] = attrs.Factory(dict)  # 1054 → values in OperationCounters order

    def add_receipt(self, receipt: Receipt) -> None:
        self.receipts += 1
        if isinstance(receipt, CorrectionReceipt):
            return
        payments = receipt.payments
        values = (
            1,
            receipt.total,
            payments.cash,
            payments.electronic,
            payments.prepaid,
            payments.credit,
            payments.provision,
        )
        block = self.blocks.setdefault(receipt.operation, [0] * len(values))
        for i, value in enumerate(values):
            block[i] += value

    def freeze(self) -> Counters:
        blocks = {
            name: OperationCounters(*self.blocks.get(operation, ()))
            for name, _, operation in _BLOCKS
        }
        return Counters(receipts=self.receipts, **blocks)


@attrs.define
class _Shift:
    register_id: str
    period: _TotalsSums = attrs.Factory(_TotalsSums)
    counters: _CounterSums = attrs.Factory(_CounterSums)
    outside_period: int = 0
    reported: bool = False  # has a receipt in the period and the register filter


# --- the report -----------------------------------------------------------------------------------


def operations_report(
    receipts: Iterable[ReceiptRecord],
    shifts: Iterable[ShiftRecord],
    *,
    tenant: str,
    start: float | None,
    end: float,
    register_id: str | None = None,
) -> OperationsReport:
    """The tenant's receipts journaled in [start, end), per register and shift, reconciled.

    A shift is in the report when one of its receipts is, or when its record overlaps the
    period. Records of other tenants are never looked at. Reconciliation uses every receipt
    of the shift in ``receipts``, inside the period or not (see the module docstring).
    With no ``start``, everything before ``end`` is reported, and the report's ``start`` is
    the first moment it covers, so that it never shows a period from 1970.
    """
    since = -math.inf if start is None else start
    first = end  # the earliest receipt or shift opening reported, when start is None
    by_shift: dict[tuple[str, int], _Shift] = {}
    problems: list[str] = []
    for receipt in receipts:
        if receipt.tenant != tenant:
            continue
        wanted = since <= receipt.fiscalized_at < end and (
            register_id is None or receipt.register_id == register_id
        )
        try:
            decoded = decode_receipt(receipt.document)
            fiscal = _signed(decoded.fiscal)
        except ProtocolError as exc:
            if wanted:
                problems.append(f"job {receipt.job_id} (FD {receipt.fd_number}): {exc}")
            continue
        shift = by_shift.setdefault(
            (fiscal.fn_number, fiscal.shift_number), _Shift(receipt.register_id)
        )
        shift.counters.add_receipt(decoded.receipt)
        if wanted:
            shift.period.add_receipt(decoded.receipt)
            shift.reported = True
            first = min(first, receipt.fiscalized_at)
        else:
            shift.outside_period += 1

    records: dict[tuple[str, int], ShiftRecord] = {}
    for candidate in shifts:
        if candidate.tenant != tenant:
            continue
        key = (candidate.fn_number, candidate.shift_number)
        known = records.get(key)
        if known is None or known.close_document is None:
            records[key] = candidate

    sections: dict[str, list[ShiftSection]] = {}
    for key in sorted(by_shift.keys() | records.keys()):
        record = records.get(key)
        sums = by_shift.get(key) or _Shift(record.register_id if record else "")
        if record is not None:
            sums.register_id = record.register_id
        overlaps = record is not None and (
            record.opened_at < end and (record.closed_at is None or record.closed_at >= since)
        )
        if not (sums.reported or overlaps):
            continue
        if register_id is not None and sums.register_id != register_id:
            continue
        section = ShiftSection(
            register_id=sums.register_id,
            fn_number=key[0],
            shift_number=key[1],
            opened_at=None if record is None else record.opened_at,
            closed_at=None if record is None else record.closed_at,
            totals=sums.period.freeze(),
            outside_period=sums.outside_period,
            reconciliation=reconcile(record, sums.counters.freeze()),
        )
        sections.setdefault(sums.register_id, []).append(section)
        if record is not None:
            first = min(first, record.opened_at)

    registers = []
    grand = _TotalsSums()
    for register in sorted(sections):
        total = _TotalsSums()
        for key in ((s.fn_number, s.shift_number) for s in sections[register]):
            if key in by_shift:
                total.merge(by_shift[key].period)
        grand.merge(total)
        registers.append(RegisterSection(register, tuple(sections[register]), total.freeze()))
    return OperationsReport(
        tenant=tenant,
        start=first if start is None else start,
        end=end,
        register_id=register_id,
        registers=tuple(registers),
        totals=grand.freeze(),
        problems=tuple(problems),
    )


def _signed(fiscal: FiscalData | None) -> FiscalData:
    if fiscal is None:
        raise DocumentError("the document carries no fiscal sign", "1077")
    return fiscal


# --- reconciliation -------------------------------------------------------------------------------


def journal_counters(receipts: Iterable[Receipt]) -> Counters:
    """1194 счётчики итогов смены as the ФН would have formed them from these receipts."""
    sums = _CounterSums()
    for receipt in receipts:
        sums.add_receipt(receipt)
    return sums.freeze()


def reconcile(record: ShiftRecord | None, journal: Counters) -> Reconciliation:
    """Compare a shift's close-shift report (5) with the journal's counters of that shift.

    ``journal`` is :func:`journal_counters` of every receipt of the shift. No record, or an
    open shift, is ``open``; a closed shift whose report is missing or unreadable is a
    ``mismatch`` that says so.
    """
    if record is None or (record.closed_at is None and record.close_document is None):
        return Reconciliation("open")
    if record.close_document is None:
        return Reconciliation("mismatch", ("5: the shift is closed but its report is missing",))
    try:
        report = decode_report(record.close_document)
    except ProtocolError as exc:
        return Reconciliation("mismatch", (f"5: the close-shift report does not decode: {exc}",))
    if not isinstance(report, CloseShiftReport):
        return Reconciliation("mismatch", ("5: the shift's document is not a close-shift report",))
    differences: list[str] = []

    def compare(name: str, fn_value: int, journal_value: int) -> None:
        if fn_value != journal_value:
            differences.append(f"{name}: ФН {fn_value}, journal {journal_value}")

    if report.fn_number != record.fn_number:
        differences.append(f"1041 ФН: report {report.fn_number}, shift {record.fn_number}")
    if report.shift_number != record.shift_number:
        differences.append(f"1038 shift: report {report.shift_number}, shift {record.shift_number}")
    compare("1118 receipts", report.receipts, journal.receipts)
    counters = report.shift_counters
    if counters is None:
        differences.append("1194: the report carries no shift counters")
    else:
        compare("1194.1134 receipts", counters.receipts, journal.receipts)
        for block_name, block_tag, _ in _BLOCKS:
            fn_block = getattr(counters, block_name) or OperationCounters()
            ours = getattr(journal, block_name) or OperationCounters()
            for field_name, field_tag in _BLOCK_FIELDS:
                compare(
                    f"1194.{block_tag}.{field_tag} {field_name}",
                    getattr(fn_block, field_name),
                    getattr(ours, field_name),
                )
    return Reconciliation("mismatch" if differences else "match", tuple(differences))


# --- the text report ------------------------------------------------------------------------------

_COLUMNS = ("count", *PAYMENT_FIELDS)
_HEADINGS = ("receipts", "total", "cash", "electronic", "prepaid", "credit", "provision")


def _moment(unix: float | None, time_zone: str) -> str:
    if unix is None or not math.isfinite(unix) or not -1e11 < unix < 1e11:
        return "…"
    return local_time(unix, time_zone)


def _table(totals: Totals, indent: str) -> Iterator[str]:
    label_width = 30
    yield indent + f"{'operation':<{label_width}}" + "".join(f"{h:>13}" for h in _HEADINGS)
    if not totals.operations:
        yield indent + "(no receipts)"
        return
    for line in totals.operations:
        cells = [f"{line.count:>13}"] + [f"{roubles(getattr(line, f)):>13}" for f in _COLUMNS[1:]]
        yield indent + f"{line.label:<{label_width}}" + "".join(cells)
        for vat in line.vat:
            shown = roubles(vat.vat) if vat.vat_lines else "-"
            yield (
                indent
                + f"  {vat_label(vat.rate):<{label_width - 2}}{'':>13}{roubles(vat.amount):>13}"
                + f"   VAT {shown} (1200 in {vat.vat_lines} of {vat.lines} lines)"
            )
    net = "".join(f"{roubles(totals.net(f)):>13}" for f in PAYMENT_FIELDS)
    yield indent + f"{'net (in − out)':<{label_width}}{totals.receipts:>13}" + net


def render_report(report: OperationsReport, time_zone: str) -> str:
    """The report as a plain-text table: roubles with two decimals, one block per shift.

    Times are local in ``time_zone`` (the tenant's) with their offset; the period's end is
    exclusive.
    """
    out = [
        f"Operations report (отчёт об операциях), tenant {report.tenant}",
        f"period: {_moment(report.start, time_zone)} … {_moment(report.end, time_zone)}"
        + (f", register {report.register_id}" if report.register_id else ""),
    ]
    for register in report.registers:
        out += ["", f"register {register.register_id}"]
        for shift in register.shifts:
            check = shift.reconciliation
            out.append(
                f"  shift {shift.shift_number}, ФН {shift.fn_number}: "
                f"opened {_moment(shift.opened_at, time_zone)}, "
                f"closed {_moment(shift.closed_at, time_zone)}; "
                f"reconciliation: {check.status}"
            )
            out += [f"    ! {difference}" for difference in check.differences]
            if shift.outside_period:
                out.append(
                    f"    ({shift.outside_period} receipt(s) of this shift outside the period "
                    "are not listed but were reconciled)"
                )
            out += _table(shift.totals, "    ")
        out += ["  register total", *_table(register.totals, "    ")]
    out += ["", "grand total", *_table(report.totals, "  ")]
    if report.problems:
        out += ["", "left out:"] + [f"  ! {problem}" for problem in report.problems]
    return "\n".join(out) + "\n"


# --- one receipt ----------------------------------------------------------------------------------


@attrs.frozen
class ReceiptLine:
    """One item (1059 предмет расчёта) as shown on the receipt."""

    number: int  # № from 1
    name: str  # 1030
    quantity: Decimal  # 1023
    measure: int | None  # 2108
    unit: str | None  # 1197 (FFD 1.05)
    price: int  # 1079
    sum: int  # 1043
    vat: int  # 1199
    vat_sum: int | None  # 1200
    payment_method: int  # 1214
    payment_subject: int  # 1212
    marking: str | None  # 1163: the code's kind and value, if the item is marked
    marking_check: int | None = None  # 2106 результат проверки сведений о товаре (bits)


@attrs.frozen
class VatSum:
    """A receipt-level VAT total as the ФН signed it: 1102–1107, or a 1119 entry of 1115."""

    rate: int  # 1199
    tag: int  # 1102–1107, or 1120 inside 1115
    amount: int  # kopecks
    turnover: bool  # 1104 / 1105 carry the settlement sum at 0 % / without VAT, not a VAT


@attrs.frozen
class ReceiptView:
    """A fiscalized receipt ready to be shown: its lines, totals, payments, VAT and ФН data."""

    job_id: str
    external_id: str
    register_id: str
    document_code: int  # 3 кассовый чек or 31 чек коррекции
    operation: int  # 1054
    company: Company
    cashier: Cashier | None
    contact: str | None  # 1008
    lines: tuple[ReceiptLine, ...]
    total: int  # 1020
    payments: Payments
    vat_sums: tuple[VatSum, ...]
    fd_number: int  # 1040
    fn_number: str  # 1041
    registration_number: str  # 1037
    printed_sign: int  # ФП
    shift_number: int  # 1038
    receipt_number: int  # 1042
    time: datetime  # 1012, the register's wall clock
    qr: str
    correction_type: int | None = None  # 1173
    correction_basis: CorrectionBasis | None = None  # 1174
    fns_site: str | None = None  # 1060 адрес сайта ФНС, where the document carries it
    ofd_inn: str | None = None  # 1017 ИНН ОФД, where the document carries it


_LEGACY_RATES = {tag: rate for rate, tag in LEGACY_TOTAL_TAGS.items()}


def receipt_vat_sums(fields: TagMap) -> tuple[VatSum, ...]:
    """The receipt-level VAT totals of a receipt's tags (1102–1107 and 1115), by rate."""
    out: list[VatSum] = []
    for tag, value in fields.items():
        rate = _LEGACY_RATES.get(tag)
        if rate is not None and isinstance(value, int):
            out.append(VatSum(rate, tag, value, rate in TURNOVER_RATES))
    block = fields.get(1115)
    entries = block.get(1119, []) if isinstance(block, dict) else []
    for entry in entries if isinstance(entries, list) else [entries]:
        if isinstance(entry, dict):
            code, amount = entry.get(1199), entry.get(1120)
            if isinstance(code, int) and isinstance(amount, int):
                out.append(VatSum(code, 1120, amount, code in TURNOVER_RATES))
    return tuple(sorted(out, key=lambda v: v.rate))


def receipt_view(record: ReceiptRecord) -> ReceiptView:
    """The receipt of a journal record, line by line; raises the codec's error on a bad one."""
    decoded = decode_receipt(record.document)
    fiscal = _signed(decoded.fiscal)
    receipt = decoded.receipt
    lines = tuple(
        ReceiptLine(
            number=i,
            name=item.name,
            quantity=item.quantity,
            measure=item.measure,
            unit=item.unit,
            price=item.price,
            sum=item.sum,
            vat=item.vat,
            vat_sum=item.vat_sum,
            payment_method=item.payment_method,
            payment_subject=item.payment_subject,
            marking=None
            if item.marking is None
            else f"{_PRODUCT_CODE_NAMES.get(item.marking.kind, item.marking.kind)} "
            f"{item.marking.code}",
            marking_check=None if item.marking is None else item.marking.check_result,
        )
        for i, item in enumerate(receipt.items, start=1)
    )
    correction = receipt if isinstance(receipt, CorrectionReceipt) else None
    return ReceiptView(
        job_id=record.job_id,
        external_id=record.external_id,
        register_id=record.register_id,
        document_code=decoded.document.code,
        operation=receipt.operation,
        company=receipt.company,
        cashier=receipt.cashier,
        contact=None if receipt.client is None else receipt.client.contact,
        lines=lines,
        total=receipt.total,
        payments=receipt.payments,
        vat_sums=receipt_vat_sums(decoded.document.fields),
        fd_number=fiscal.fd_number,
        fn_number=fiscal.fn_number,
        registration_number=fiscal.registration_number,
        printed_sign=record.printed_sign,
        shift_number=fiscal.shift_number,
        receipt_number=fiscal.receipt_number,
        time=fiscal.time,
        qr=record.qr,
        correction_type=None if correction is None else correction.correction_type,
        correction_basis=None if correction is None else correction.basis,
        fns_site=_text_tag(decoded.document.fields, 1060),
        ofd_inn=_text_tag(decoded.document.fields, 1017),
    )


def _text_tag(fields: TagMap, tag: int) -> str | None:
    value = fields.get(tag)
    return value.strip() or None if isinstance(value, str) else None


_PAYMENT_NAMES = (
    ("cash", "наличными (1031)"),
    ("electronic", "безналичными (1081)"),
    ("prepaid", "предоплатой (1215)"),
    ("credit", "постоплатой (1216)"),
    ("provision", "встречным предоставлением (1217)"),
)


def _quantity(line: ReceiptLine) -> str:
    unit = line.unit if line.unit is not None else MEASURE_LABELS.get(line.measure or 0, "")
    return f"{line.quantity.normalize():f} {unit}".rstrip()


def render_receipt(view: ReceiptView, time_zone: str) -> str:
    """The receipt as plain text, as a paper receipt would list it, with its fiscal data.

    1012 is the register's clock, which keeps ``time_zone`` (the tenant's): it is shown with
    that zone's offset, to the minute as the ФН keeps it.
    """
    kind = "КАССОВЫЙ ЧЕК КОРРЕКЦИИ" if view.document_code == 31 else "КАССОВЫЙ ЧЕК"
    company = view.company
    out = [f"{kind} / {operation_label(view.operation).upper()}"]
    out.append(f"{company.name or ''} ИНН {company.inn}".strip())
    out.append(f"место расчётов: {company.place}")
    if company.address:
        out.append(f"адрес: {company.address}")
    if view.cashier is not None:
        out.append(f"кассир: {view.cashier.name}")
    if view.correction_type is not None:
        basis = view.correction_basis
        out.append(
            "тип коррекции (1173): "
            + ("по предписанию" if view.correction_type == 1 else "самостоятельно")
            + (f", от {basis.date:%d.%m.%Y}" if basis is not None else "")
            + (f", № {basis.number}" if basis is not None and basis.number else "")
        )
    out.append("")
    out.append(
        f"{'№':>3} {'наименование':<32} {'кол-во':>10} {'цена':>12} {'сумма':>12}  ставка НДС"
    )
    for line in view.lines:
        vat = vat_label(line.vat)
        if line.vat_sum is not None:
            vat += f" ({roubles(line.vat_sum)})"
        out.append(
            f"{line.number:>3} {line.name:<32} {_quantity(line):>10} "
            f"{roubles(line.price):>12} {roubles(line.sum):>12}  {vat}"
        )
        method = PAYMENT_METHOD_LABELS.get(line.payment_method, f"1214={line.payment_method}")
        subject = PAYMENT_SUBJECT_LABELS.get(line.payment_subject, f"1212={line.payment_subject}")
        out.append(f"    способ расчёта (1214): {method}; предмет расчёта (1212): {subject}")
        if line.marking is not None:
            out.append(f"    маркировка (1163): {line.marking}")
    out += ["", f"ИТОГ (1020): {roubles(view.total)}"]
    for field, name in _PAYMENT_NAMES:
        amount = getattr(view.payments, field)
        if amount:
            out.append(f"  {name}: {roubles(amount)}")
    for vat_sum in view.vat_sums:
        what = (
            f"сумма расчёта, {vat_label(vat_sum.rate)}"
            if vat_sum.turnover
            else vat_label(vat_sum.rate)
        )
        out.append(f"  {what} ({vat_sum.tag}): {roubles(vat_sum.amount)}")
    if view.contact:
        out.append(f"покупатель (1008): {view.contact}")
    out += [
        "",
        f"ФД (1040): {view.fd_number}   ФН (1041): {view.fn_number}   ФП: {view.printed_sign}",
        f"РН ККТ (1037): {view.registration_number}",
        f"смена (1038): {view.shift_number}   чек за смену (1042): {view.receipt_number}",
        f"дата, время (1012): {register_time(view.time, time_zone, 'minutes')}",
        f"QR: {view.qr}",
        f"job {view.job_id}, external id {view.external_id}, register {view.register_id}",
    ]
    return "\n".join(out) + "\n"
