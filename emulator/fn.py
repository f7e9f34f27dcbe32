"""The ФН model (фискальный накопитель, fiscal storage): phases, counters, archive, rules, sign.

A plain, deterministic state object with no I/O and no clock: every dated operation takes
``now``, the register's local wall-clock time (naive), and optionally ``timer``, a reading of
the ФН's own running timer in seconds (any origin; the register passes its trio clock). The
register personalities drive it from their wire commands; tests drive it directly.

What it keeps: the life phase (:class:`~protocols.fn.FnPhase`), the registration (INN 1018,
registration number 1037, tax systems 1062, FFD version 1209), the counters (FD number 1040,
receipt number in the shift 1042, shift number 1038, per-operation totals 1194/1157), the
archive (every document's TLV exactly as signed, by FD number), the queue of documents the
OFD has not acknowledged, the open shift and the open document. The open document is the
ФН's, not the connection's: a host that drops the link mid-receipt finds it still open, and
a new begin answers 02h until :meth:`FiscalStorage.cancel_document`.

Documents carry the ФН's header first, in the order real archives show it (ffd.md G3, G4):
1041, 1037, 1018, 1040, 1012, 1077; receipts then 1038, 1042, 1054, 1020, then the host's TLV
data as received. Reports are formed from :mod:`protocols.documents.reports` with the same
header. The 1077 is :func:`protocols.fiscal_sign.emulator_fiscal_sign` over
:func:`protocols.fiscal_sign.split_fiscal_sign` of the document, so that
:class:`~protocols.fiscal_sign.EmulatorSignVerifier` checks it.

Times are kept to the minute: the ФН protocol's DATE_TIME has no seconds.

Marking codes (FFD 1.2, ФН-М): :meth:`FiscalStorage.check_marking` checks a code by
:mod:`emulator.marking`'s rules under the ФН's :class:`~emulator.marking.MarkingPolicy`; the
check then awaits the host's decision (:meth:`~FiscalStorage.decide_marking`), and an
accepted one waits in the ФН's table until a line takes it (:meth:`~FiscalStorage.take_marking`).
The table empties when a receipt is formed or cancelled: the checks are for that receipt.
Refusals are the ФН-М's, numbered as registers report them
(:class:`protocols.fn.MarkingRefusal`): a second check before the decision on the first, a
decision with nothing checked, or a receipt formed while a check awaits its decision answer
A1h (wrong sequence); a full table A3h; a registration whose 1290 lacks marked goods A0h.

Choices where the sources (registers.md §3.3–3.4, §4.4) are silent:

- Result codes: wrong phase, shift or open document 02h; time before the last operation 07h;
  wall-clock step differing from the ФН timer by more than 5 minutes 17h; receipt more than
  24 h after the shift opened 16h; oldest unacknowledged document older than 30 days 15h;
  archive full 06h (not 14h, "storage resource exhausted"); key validity over 12h (КС resource
  exhausted, not 05h "lifetime over", which this model never answers); receipt data over the
  limit 10h; malformed TLV data, a ФН header tag in the data that differs from the ФН's value,
  a wrong ФН number or operation type, an OFD ack for other than the oldest unsent document
  09h; no such document or nothing to acknowledge 08h. When several rules fail, the first
  in this order answers: state and parameters, time, resources, the 24-hour shift.
- The resource rules (keys, archive, 30 days) block new work: registration, shift opening,
  receipts and the status report. Closing the shift and closing the ФН stay possible, as if
  the ФН kept room and key for them, so that a run can always end cleanly.
- The host may send header tags (1018, 1054, 1020 …) in its data; each must equal the ФН's
  value and is then dropped, the ФН writing its own in the header.
- Corrections (31) count in 1134 only: the per-operation blocks 1129–1132 are for receipts,
  and 1133 (correction counters) is not modelled by :class:`~protocols.documents.reports.Counters`.
- 1111 (ФД in the shift) counts the opening and closing reports; 1097 counts the documents
  unsent before the report itself; 1053 (OFD timeout) is 0, the OFD exchange timer being the
  exchange's, not the archive's.
- A cancel with nothing open succeeds: drivers cancel blindly after a reconnect.
- A new ФН is in phase READY (готовность к фискализации); registration needs that phase.
- The table of marking checks holds :data:`protocols.fn.MARKING_TABLE_SIZE` codes
  (:attr:`FnLimits.marking_codes`; the ФН-М's size is not public). A check needs the fiscal phase,
  not an open shift; a registration without 1290 allows marked goods.
"""

from __future__ import annotations

import calendar
import hashlib
import struct
from collections.abc import Callable
from datetime import datetime, timedelta

import attrs

from emulator.marking import (
    MARKED_GOODS_USAGE,
    MarkingCheck,
    MarkingCode,
    MarkingPolicy,
    check_marking_code,
)
from protocols.documents.ffd import receipt_to_tags
from protocols.documents.model import Cashier, CorrectionReceipt, Receipt
from protocols.documents.reports import (
    CloseShiftReport,
    Counters,
    OpenShiftReport,
    OperationCounters,
    RegistrationReport,
    Report,
    StatusReport,
    report_to_tags,
)
from protocols.fiscal_sign import emulator_fiscal_sign, printed_fiscal_sign, split_fiscal_sign
from protocols.fn import (
    MARKING_TABLE_SIZE,
    MAX_RECEIPT_DATA,
    FnPhase,
    FnWarning,
    MarkingRefusal,
    ResultCode,
)
from protocols.tlv import FieldValue, TagMap, TlvError, decode, encode
from protocols.tlv.enums import FfdVersion

__all__ = [
    "FiscalResult",
    "FiscalStorage",
    "FnLimits",
    "FnModelError",
    "OpenDocument",
    "Shift",
    "default_key",
]

#: The ФН's own tags at the head of every document, in its order; 1077 goes in after 1012.
_HEADER_TAGS = (1041, 1037, 1018, 1040, 1012, 1077)
#: 1054 признак расчёта → the Counters field of its 1129–1132 block.
_OPERATION_FIELDS = {1: "sell", 2: "sell_refund", 3: "buy", 4: "buy_refund"}
_ZERO = OperationCounters()
_NO_COUNTS = Counters(sell=_ZERO, sell_refund=_ZERO, buy=_ZERO, buy_refund=_ZERO)
_TLV_HEADER = struct.Struct("<HH")
_PLACEHOLDER_SIGN = bytes(6)
#: DATE_TIME counts years from 2000; UNIXTIME (1012) ends in 2106.
_EARLIEST, _LATEST = datetime(2000, 1, 1), datetime(2106, 1, 1)


class FnModelError(Exception):
    """A ФН refusal: the result code a real ФН answers (``code``) and why (``message``); the
    marking refusals carry the number registers report them by."""

    def __init__(self, code: ResultCode | MarkingRefusal, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code:02X}h {code.en}: {message}")


@attrs.frozen
class FnLimits:
    """The ФН's resource limits and time rules (registers.md §3.3, §4.4); tests shrink them."""

    archive_capacity: int = 250_000  # documents; real archives are sized in bytes, unpublished
    key_validity_months: int = 15  # срок действия ключей ФП from registration: 15 or 36 months
    max_shift: timedelta = timedelta(hours=24)  # продолжительность смены
    max_clock_jump: timedelta = timedelta(minutes=5)  # against the ФН's own timer
    max_unsent_age: timedelta = timedelta(days=30)  # ресурс ожидания передачи в ОФД
    max_receipt_data: int = MAX_RECEIPT_DATA  # receipt TLV data the host may send
    marking_codes: int = MARKING_TABLE_SIZE  # checked marking codes the ФН keeps at once


@attrs.frozen
class Shift:
    """смена: the open shift as the ФН keeps it."""

    number: int  # 1038 номер смены
    opened: datetime
    receipts: int = 0  # 1042 of the last receipt or correction
    documents: int = 1  # ФД formed in the shift so far, the opening report included
    counters: Counters = _NO_COUNTS  # 1194 счётчики итогов смены


@attrs.frozen
class OpenDocument:
    """A receipt the ФН has begun (15h/17h) and not finished: it outlives the host's link."""

    code: int  # 3 кассовый чек or 31 чек коррекции
    data: bytes = b""  # the TLVs received so far (07h)


@attrs.frozen
class FiscalResult:
    """A document the ФН formed and signed: what 12h/14h/16h answer, and the document itself."""

    code: int  # document code: 1, 11, 2, 3, 31, 5, 6 or 21
    fd_number: int  # 1040 номер ФД
    fiscal_sign: bytes  # 1077 ФПД, 6 bytes
    time: datetime  # 1012
    shift_number: int  # 1038: the open or last shift, 0 before the first
    receipt_number: int | None  # 1042 for receipts and corrections
    document: bytes  # the TLV exactly as archived and signed

    @property
    def printed_sign(self) -> int:
        """The ФП printed on paper and in the QR code (``fp=``)."""
        return printed_fiscal_sign(self.fiscal_sign)


def default_key(number: str) -> bytes:
    """A ФН's emulator key derived from its number, so that runs are reproducible."""
    return hashlib.sha256(f"kassa emulator ФН {number}".encode()).digest()


def _fn_number(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if len(value) != 16 or not (value.isascii() and value.isdigit()):
        raise ValueError(f"a ФН number is 16 digits, got {value!r}")


@attrs.define
class FiscalStorage:
    """One ФН: its state, and the operations of its command set as method calls.

    Every operation either succeeds and changes the state, or raises :class:`FnModelError` and
    changes nothing.
    """

    number: str = attrs.field(validator=_fn_number)  # 1041 номер ФН, 16 digits
    key: bytes = attrs.field(
        default=attrs.Factory(lambda self: default_key(self.number), takes_self=True)
    )
    limits: FnLimits = attrs.field(factory=FnLimits)
    phase: FnPhase = FnPhase.READY
    registration: RegistrationReport | None = attrs.field(default=None, init=False)
    registered_at: datetime | None = attrs.field(default=None, init=False)  # keys start here
    registrations: int = attrs.field(default=0, init=False)  # reports 1 and 11 formed
    shift: Shift | None = attrs.field(default=None, init=False)
    last_shift_number: int = attrs.field(default=0, init=False)
    counters: Counters = attrs.field(default=_NO_COUNTS, init=False)  # 1157 счётчики итогов ФН
    archive: dict[int, bytes] = attrs.field(factory=dict, init=False)  # FD number → document
    open_document: OpenDocument | None = attrs.field(default=None, init=False)
    last_time: datetime | None = attrs.field(default=None, init=False)  # of the last operation
    _queue: dict[int, datetime] = attrs.field(factory=dict, init=False)  # unsent FD → 1012
    _timer_mark: tuple[datetime, float] | None = attrs.field(default=None, init=False)
    marking_policy: MarkingPolicy = attrs.field(factory=MarkingPolicy, kw_only=True)
    #: The check awaiting the host's decision, and the accepted checks no line has taken yet.
    marking_pending: MarkingCheck | None = attrs.field(default=None, init=False)
    marking_accepted: tuple[MarkingCheck, ...] = attrs.field(default=(), init=False)

    # --- reading ----------------------------------------------------------------------------------

    @property
    def last_fd_number(self) -> int:
        """1040 of the last document, 0 before the first (FD numbers run 1, 2, 3 …)."""
        return len(self.archive)

    @property
    def key_expires(self) -> datetime | None:
        """When the fiscal-sign keys run out: the first registration plus their validity."""
        if self.registered_at is None:
            return None
        return _add_months(self.registered_at, self.limits.key_validity_months)

    @property
    def unsent_since(self) -> datetime | None:
        """1098: the time of the oldest document the OFD has not acknowledged."""
        return next(iter(self._queue.values()), None)

    def unsent(self) -> tuple[int, ...]:
        """FD numbers the OFD has not acknowledged, oldest first."""
        return tuple(self._queue)

    def read_document(self, fd_number: int) -> bytes:
        """A document from the archive, exactly as signed."""
        try:
            return self.archive[fd_number]
        except KeyError:
            raise FnModelError(ResultCode.NO_DATA, f"no document {fd_number}") from None

    def warnings(self, now: datetime) -> FnWarning:
        """Флаги предупреждения (30h): key expiry within 30 and 3 days, archive 90 % full."""
        flags = FnWarning(0)
        expires = self.key_expires
        if expires is not None:
            if expires - now <= timedelta(days=30):
                flags |= FnWarning.KEYS_EXPIRE_30_DAYS
            if expires - now <= timedelta(days=3):
                flags |= FnWarning.KEYS_EXPIRE_3_DAYS
        if 10 * len(self.archive) >= 9 * self.limits.archive_capacity:
            flags |= FnWarning.ARCHIVE_90_PERCENT
        return flags

    # --- registration and the end of fiscal life --------------------------------------------------

    def register(
        self, now: datetime, report: RegistrationReport, *, timer: float | None = None
    ) -> FiscalResult:
        """Form the registration report (1), or the re-registration report (11) once fiscal.

        ``report`` carries the registration data; its 1040, 1012 and 1077 are the ФН's to fill.
        """
        if self.phase is FnPhase.READY:
            code = 1
        elif self.phase is FnPhase.FISCAL and self.shift is None:
            code = 11
        else:
            raise self._wrong_state("registration needs a ready ФН, or a fiscal one between shifts")
        self._no_open_document()
        if report.fn_number != self.number:
            raise FnModelError(
                ResultCode.WRONG_PARAMETER,
                f"the report is for ФН {report.fn_number}, this is {self.number}",
            )
        at = self._dated(now, timer)
        self._resources(at)
        result = self._report(code, report, at, shift_number=self.last_shift_number)
        self.registration = attrs.evolve(
            report, fd_number=result.fd_number, time=at, fiscal_sign=result.fiscal_sign
        )
        if self.registered_at is None:
            self.registered_at = at
        self.registrations += 1
        self.phase = FnPhase.FISCAL
        self._mark(at, timer)
        return result

    def close_fn(self, now: datetime, *, timer: float | None = None) -> FiscalResult:
        """Form the report on closing the ФН (6) and leave fiscal mode.

        The ФН stays post-fiscal until the OFD has acknowledged every document, then only its
        archive can be read.
        """
        registration = self._fiscal()
        self._no_open_document()
        if self.shift is not None:
            raise self._wrong_state("close the shift before closing the ФН")
        at = self._dated(now, timer)
        tags: TagMap = {
            **self._header(at),
            1209: registration.ffd_version,
            1048: registration.user,
        }
        if registration.place is not None:
            tags[1187] = registration.place
        if registration.address is not None:
            tags[1009] = registration.address
        result = self._form(6, tags, b"", at, shift_number=self.last_shift_number)
        self.phase = FnPhase.POST_FISCAL
        self._mark(at, timer)
        return result

    # --- shifts -----------------------------------------------------------------------------------

    def open_shift(
        self, now: datetime, cashier: Cashier | None = None, *, timer: float | None = None
    ) -> FiscalResult:
        """Form the shift opening report (2) and open the next shift."""
        registration = self._fiscal()
        self._no_open_document()
        if self.shift is not None:
            raise self._wrong_state(f"shift {self.shift.number} is open")
        at = self._dated(now, timer)
        self._resources(at)
        number = self.last_shift_number + 1
        warnings = self.warnings(at)
        report = OpenShiftReport(
            user_inn=registration.user_inn,
            shift_number=number,
            registration_number=registration.registration_number,
            fn_number=self.number,
            ffd_version=registration.ffd_version,
            user=registration.user,
            cashier=None if cashier is None else cashier.name,
            cashier_inn=None if cashier is None else cashier.inn,
            place=registration.place,
            address=registration.address,
            kkt_version=registration.kkt_version,
            kkt_ffd_version=registration.kkt_ffd_version,
            fn_replace_soon=_flag(warnings, FnWarning.KEYS_EXPIRE_30_DAYS),
            fn_replace_now=_flag(warnings, FnWarning.KEYS_EXPIRE_3_DAYS),
            fn_memory_full=_flag(warnings, FnWarning.ARCHIVE_90_PERCENT),
            ofd_timeout=0,
        )
        result = self._report(2, report, at, shift_number=number)
        self.shift = Shift(number=number, opened=at)
        self.last_shift_number = number
        self._mark(at, timer)
        return result

    def close_shift(
        self, now: datetime, cashier: Cashier | None = None, *, timer: float | None = None
    ) -> FiscalResult:
        """Form the shift closing report (5) with the shift's and the ФН's counters."""
        registration = self._fiscal()
        self._no_open_document()
        shift = self.shift
        if shift is None:
            raise self._wrong_state("no shift is open")
        at = self._dated(now, timer)
        expires = self.key_expires
        warnings = self.warnings(at)
        report = CloseShiftReport(
            user_inn=registration.user_inn,
            shift_number=shift.number,
            registration_number=registration.registration_number,
            fn_number=self.number,
            receipts=shift.receipts,
            documents=shift.documents + 1,
            unsent=len(self._queue),
            ffd_version=registration.ffd_version,
            first_unsent_time=self.unsent_since,
            key_days_left=None if expires is None else max(0, (expires - at).days),
            shift_counters=shift.counters,
            fn_counters=self.counters,
            cashier=None if cashier is None else cashier.name,
            cashier_inn=None if cashier is None else cashier.inn,
            fn_replace_soon=_flag(warnings, FnWarning.KEYS_EXPIRE_30_DAYS),
            fn_replace_now=_flag(warnings, FnWarning.KEYS_EXPIRE_3_DAYS),
            fn_memory_full=_flag(warnings, FnWarning.ARCHIVE_90_PERCENT),
            ofd_timeout=0,
        )
        result = self._report(5, report, at, shift_number=shift.number)
        self.shift = None
        self._mark(at, timer)
        return result

    def status_report(self, now: datetime, *, timer: float | None = None) -> FiscalResult:
        """Form the report on the current state of settlements (21)."""
        registration = self._fiscal()
        self._no_open_document()
        at = self._dated(now, timer)
        self._resources(at)
        unsent = self.unsent()
        report = StatusReport(
            user_inn=registration.user_inn,
            registration_number=registration.registration_number,
            fn_number=self.number,
            unsent=len(unsent),
            first_unsent_number=unsent[0] if unsent else 0,
            ffd_version=registration.ffd_version,
            offline=registration.offline,
            first_unsent_time=self.unsent_since,
            shift_number=self.last_shift_number or None,
            fn_counters=self.counters,
        )
        result = self._report(21, report, at, shift_number=self.last_shift_number)
        if self.shift is not None:
            self.shift = attrs.evolve(self.shift, documents=self.shift.documents + 1)
        self._mark(at, timer)
        return result

    # --- receipts: begin (15h/17h) → data (07h) → finish (16h) ------------------------------------

    def begin_receipt(
        self, now: datetime, *, correction: bool = False, timer: float | None = None
    ) -> None:
        """Open a receipt (3) or a correction receipt (31) in the open shift."""
        self._fiscal()
        self._no_open_document()
        shift = self.shift
        if shift is None:
            raise self._wrong_state("no shift is open")
        at = self._dated(now, timer)
        self._resources(at)
        self._shift_age(shift, at)
        self.open_document = OpenDocument(code=31 if correction else 3)
        self._mark(at, timer)

    def add_tlv(self, chunk: bytes) -> None:
        """Append whole TLVs to the open receipt (the ФН checks their lengths, not their logic)."""
        document = self.open_document
        if document is None:
            raise self._wrong_state("no document is open")
        try:
            decode(chunk)
        except TlvError as exc:
            raise FnModelError(ResultCode.WRONG_PARAMETER, f"bad TLV data: {exc}") from None
        size = len(document.data) + len(chunk)
        if size > self.limits.max_receipt_data:
            raise FnModelError(
                ResultCode.TLV_TOO_LARGE,
                f"{size} bytes of receipt data, more than {self.limits.max_receipt_data}",
            )
        self.open_document = attrs.evolve(document, data=document.data + chunk)

    def finish_receipt(
        self, now: datetime, operation: int, total: int, *, timer: float | None = None
    ) -> FiscalResult:
        """Form the open receipt: 1054 ``operation`` and 1020 ``total`` as the 16h command gives."""
        self._fiscal()
        self.marking_settled()
        document = self.open_document
        shift = self.shift
        if document is None or shift is None:
            raise self._wrong_state("no document is open")
        if operation not in _OPERATION_FIELDS:
            raise FnModelError(ResultCode.WRONG_PARAMETER, f"operation type {operation}")
        at = self._dated(now, timer)
        self._resources(at)
        self._shift_age(shift, at)
        number = shift.receipts + 1
        head = {
            **self._header(at),
            1038: shift.number,
            1042: number,
            1054: operation,
            1020: total,
        }
        tail = _own_tags_removed(document.data, head)
        result = self._form(
            document.code, head, tail, at, shift_number=shift.number, receipt_number=number
        )
        if document.code == 3:
            fields = decode(tail).fields
            sums = OperationCounters(
                count=1,
                total=total,
                cash=_money(fields, 1031),
                electronic=_money(fields, 1081),
                prepaid=_money(fields, 1215),
                credit=_money(fields, 1216),
                provision=_money(fields, 1217),
            )
            counted: int | None = operation
        else:
            sums, counted = _ZERO, None
        self.shift = attrs.evolve(
            shift,
            receipts=number,
            documents=shift.documents + 1,
            counters=_tally(shift.counters, counted, sums),
        )
        self.counters = _tally(self.counters, counted, sums)
        self.open_document = None
        self.clear_marking()
        self._mark(at, timer)
        return result

    def cancel_document(self) -> None:
        """Drop the open receipt and its data (06h), and the marking checks made for it; nothing
        open is not an error."""
        self.open_document = None
        self.clear_marking()

    def fiscalize(
        self,
        now: datetime,
        receipt: Receipt,
        ffd: FfdVersion = FfdVersion.V1_2,
        *,
        timer: float | None = None,
    ) -> FiscalResult:
        """Begin, send and finish one receipt; a refusal leaves the ФН as it was.

        The receipt's tags are :func:`~protocols.documents.ffd.receipt_to_tags`, so a receipt
        that cannot be put into ``ffd`` raises its ``DocumentError`` before the ФН is touched.
        """
        data = encode(receipt_to_tags(receipt, ffd))
        marks = self.last_time, self._timer_mark
        self.begin_receipt(now, correction=isinstance(receipt, CorrectionReceipt), timer=timer)
        try:
            self.add_tlv(data)
            return self.finish_receipt(now, receipt.operation, receipt.total, timer=timer)
        except FnModelError:
            self.cancel_document()
            self.last_time, self._timer_mark = marks
            raise

    # --- marking codes (ФН-М) -------------------------------------------------------------------

    def check_marking(
        self, code: MarkingCode, planned_status: int, processing_mode: int = 0
    ) -> MarkingCheck:
        """Check a marking code (КП КМ here, the status at the ОИСМ by the policy); the check
        then awaits the host's decision."""
        registration = self._fiscal()
        usage = registration.usage
        if usage is not None and not usage & MARKED_GOODS_USAGE:
            raise FnModelError(MarkingRefusal.FORBIDDEN, "1290 does not allow marked goods")
        self.marking_settled()
        if len(self.marking_accepted) >= self.limits.marking_codes:
            raise FnModelError(
                MarkingRefusal.TABLE_FULL, f"{len(self.marking_accepted)} codes await their lines"
            )
        check = check_marking_code(code, planned_status, processing_mode, self.marking_policy)
        self.marking_pending = check
        return check

    def decide_marking(self, accept: bool) -> MarkingCheck:
        """Accept the pending check into the table, or forget it; either way it is decided."""
        check = self.marking_pending
        if check is None:
            raise FnModelError(MarkingRefusal.WRONG_SEQUENCE, "no marking code awaits a decision")
        self.marking_pending = None
        if accept:
            self.marking_accepted = (*self.marking_accepted, check)
        return check

    def accepted_marking(self, matches: Callable[[MarkingCheck], bool]) -> MarkingCheck | None:
        """The first accepted check that ``matches``, still in the table."""
        return next((check for check in self.marking_accepted if matches(check)), None)

    def take_marking(self, check: MarkingCheck) -> None:
        """Take an accepted check out of the table: a line carries it now."""
        index = self.marking_accepted.index(check)
        self.marking_accepted = (
            *self.marking_accepted[:index],
            *self.marking_accepted[index + 1 :],
        )

    def clear_marking(self) -> None:
        """Forget every check, decided or not (the marking buffer cleared)."""
        self.marking_pending = None
        self.marking_accepted = ()

    def marking_settled(self) -> None:
        """Refuse while a check awaits its decision: every check must be decided first."""
        if self.marking_pending is not None:
            raise FnModelError(
                MarkingRefusal.WRONG_SEQUENCE, "a checked marking code awaits its decision"
            )

    # --- the OFD ----------------------------------------------------------------------------------

    def acknowledge(self, fd_number: int) -> None:
        """Take the OFD's receipt (квитанция) for the oldest unsent document."""
        if not self._queue:
            raise FnModelError(ResultCode.NO_DATA, "no document is waiting for the OFD")
        oldest = next(iter(self._queue))
        if fd_number != oldest:
            raise FnModelError(
                ResultCode.WRONG_PARAMETER,
                f"the OFD can acknowledge document {oldest}, the oldest unsent, not {fd_number}",
            )
        del self._queue[fd_number]
        if self.phase is FnPhase.POST_FISCAL and not self._queue:
            self.phase = FnPhase.ARCHIVE_READ

    # --- internals --------------------------------------------------------------------------------

    def _wrong_state(self, message: str) -> FnModelError:
        return FnModelError(ResultCode.WRONG_STATE, message)

    def _no_open_document(self) -> None:
        if self.open_document is not None:
            raise self._wrong_state(f"document {self.open_document.code} is already open")

    def _fiscal(self) -> RegistrationReport:
        """The registration of a ФН in fiscal mode."""
        if self.phase is not FnPhase.FISCAL or self.registration is None:
            raise self._wrong_state(f"the ФН is in phase {self.phase.name}, not FISCAL")
        return self.registration

    def _dated(self, now: datetime, timer: float | None) -> datetime:
        """``now`` to the minute, checked against the last operation and the ФН's timer."""
        if now.tzinfo is not None or not _EARLIEST <= now < _LATEST:
            raise FnModelError(ResultCode.WRONG_DATE_TIME, f"{now} is not a register wall time")
        at = now.replace(second=0, microsecond=0)
        if self.last_time is not None and at < self.last_time:
            raise FnModelError(
                ResultCode.WRONG_DATE_TIME, f"{at} is before the last operation, {self.last_time}"
            )
        if timer is not None and self._timer_mark is not None:
            marked_at, marked_timer = self._timer_mark
            drift = (at - marked_at) - timedelta(seconds=timer - marked_timer)
            if abs(drift) > self.limits.max_clock_jump:
                raise FnModelError(
                    ResultCode.WRONG_TIME_DIFFERENCE,
                    f"the clock moved {drift} more than the ФН timer since {marked_at}",
                )
        return at

    def _mark(self, at: datetime, timer: float | None) -> None:
        self.last_time = at
        if timer is not None:
            self._timer_mark = (at, timer)

    def _resources(self, at: datetime) -> None:
        """The rules that block new work: keys, archive space, the OFD's 30 days."""
        expires = self.key_expires
        if expires is not None and at >= expires:
            raise FnModelError(ResultCode.CRYPTO_EXHAUSTED, f"the keys expired at {expires}")
        if len(self.archive) >= self.limits.archive_capacity:
            raise FnModelError(
                ResultCode.ARCHIVE_FULL, f"the archive holds {len(self.archive)} documents"
            )
        oldest = self.unsent_since
        if oldest is not None and at - oldest > self.limits.max_unsent_age:
            raise FnModelError(
                ResultCode.OFD_WAIT_EXHAUSTED,
                f"document {self.unsent()[0]} of {oldest} is still unsent to the OFD",
            )

    def _shift_age(self, shift: Shift, at: datetime) -> None:
        if at - shift.opened > self.limits.max_shift:
            raise FnModelError(
                ResultCode.SHIFT_OVER_24H, f"shift {shift.number} opened at {shift.opened}"
            )

    def _header(self, at: datetime) -> TagMap:
        registration = self.registration
        assert registration is not None
        return {
            1041: self.number,
            1037: registration.registration_number,
            1018: registration.user_inn,
            1040: self.last_fd_number + 1,
            1012: at,
            1077: _PLACEHOLDER_SIGN,
        }

    def _report(
        self, code: int, report: Report, at: datetime, *, shift_number: int
    ) -> FiscalResult:
        """Sign and keep a report, its header moved to the front in the ФН's order."""
        tags = report_to_tags(
            attrs.evolve(
                report, fd_number=self.last_fd_number + 1, time=at, fiscal_sign=_PLACEHOLDER_SIGN
            )
        )
        head = {tag: tags.pop(tag) for tag in _HEADER_TAGS}
        return self._form(code, head, _encode(tags), at, shift_number=shift_number)

    def _form(
        self,
        code: int,
        head: TagMap,
        tail: bytes,
        at: datetime,
        *,
        shift_number: int,
        receipt_number: int | None = None,
    ) -> FiscalResult:
        """Sign ``head`` + ``tail`` as document ``code``, archive it and queue it for the OFD."""
        draft = _document(code, head, tail)
        sign = emulator_fiscal_sign(self.key, split_fiscal_sign(draft)[0])
        head[1077] = sign
        document = _document(code, head, tail)
        fd_number = self.last_fd_number + 1
        self.archive[fd_number] = document
        self._queue[fd_number] = at
        return FiscalResult(
            code=code,
            fd_number=fd_number,
            fiscal_sign=sign,
            time=at,
            shift_number=shift_number,
            receipt_number=receipt_number,
            document=document,
        )


def _document(code: int, head: TagMap, tail: bytes) -> bytes:
    body = _encode(head) + tail
    if len(body) > 0xFFFF:
        raise FnModelError(ResultCode.TLV_TOO_LARGE, f"document of {len(body)} bytes")
    return _TLV_HEADER.pack(code, len(body)) + body


def _encode(tags: TagMap) -> bytes:
    try:
        return encode(tags)
    except TlvError as exc:
        raise FnModelError(ResultCode.WRONG_PARAMETER, f"cannot be encoded: {exc}") from None


def _own_tags_removed(data: bytes, head: TagMap) -> bytes:
    """The host's TLVs less the ФН's own tags, each of which must equal the ФН's value."""
    kept: list[bytes] = []
    pos = 0
    while pos < len(data):
        tag, size = _TLV_HEADER.unpack_from(data, pos)
        element = data[pos : pos + 4 + size]
        pos += 4 + size
        if tag not in head:
            kept.append(element)
        elif tag == 1077 or _encode(decode(element).fields) != _encode({tag: head[tag]}):
            raise FnModelError(
                ResultCode.WRONG_PARAMETER, f"tag {tag} in the data differs from the ФН's own"
            )
    return b"".join(kept)


def _money(fields: TagMap, tag: int) -> int:
    value: FieldValue = fields.get(tag, 0)
    return value if isinstance(value, int) else 0


def _tally(counters: Counters, operation: int | None, sums: OperationCounters) -> Counters:
    """One more receipt in 1134 and, unless a correction (``operation`` None), in its 1129–1132."""
    blocks: dict[int, OperationCounters | None] = {
        op: getattr(counters, name) for op, name in _OPERATION_FIELDS.items()
    }
    if operation is not None:
        block = blocks[operation] or _ZERO
        blocks[operation] = OperationCounters(
            **{
                field.name: getattr(block, field.name) + getattr(sums, field.name)
                for field in attrs.fields(OperationCounters)
            }
        )
    return Counters(
        receipts=counters.receipts + 1,
        sell=blocks[1],
        sell_refund=blocks[2],
        buy=blocks[3],
        buy_refund=blocks[4],
    )


def _flag(flags: FnWarning, flag: FnWarning) -> int:
    return int(flag in flags)


def _add_months(moment: datetime, months: int) -> datetime:
    """The same day and time ``months`` later, the day clipped to the end of a short month."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    return moment.replace(
        year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1])
    )
