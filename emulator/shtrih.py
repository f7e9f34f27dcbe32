"""The Shtrih-M register personality (персональность «Штрих-М»): state, commands, the link.

:class:`ShtrihRegister` is one emulated register: its mode and submode (режим / подрежим,
registers.md §1.8), the open receipt built from FF46h lines and FF4Dh/FF0Ch TLV, and its ФН
(:class:`~emulator.fn.FiscalStorage`). :meth:`ShtrihRegister.execute` answers one request
payload with the answer payload a real register sends and the time it takes.
:func:`serve_connection` runs the link on a trio stream; the register outlives connections,
so a host that reconnects mid-receipt finds the receipt still open.

Choices where the reference is silent:

- Passwords: 1…30 are operators 1…30 (cashier 1, administrator 30, §1.5); 40h, 41h and the
  FFxxh family need 29 or 30; E0h (open shift) takes any operator, as pyshtrih's cashier does.
  Anything else answers 4Fh.
- Wrong mode: a command that needs an open shift in a closed one, or a receipt when none is
  open, answers 73h (не поддерживается в данном режиме); a document command with a receipt
  open answers 4Ah; a sale line or a close in an expired shift answers 4Eh; a printing command
  in submode 5 answers 50h. An unknown command answers 37h, a malformed one 33h. ФН refusals
  pass the ФН's result code through (01h…20h are the same numbers, §1.7).
- The ФН document opens with the first line (FF46h, 80h–83h or 8Dh) and is formed at
  FF45h/85h: FF01h shows document 04h in between. 88h with no receipt open answers 73h.
- A correction receipt (чек коррекции, 31) opens with FF35h, which needs an open shift under
  24 hours (73h when closed, 4Eh when over) and no receipt open (4Ah); FF01h then shows
  document 14h. Its operation (1054) is the first line's; until then mode 8's status is 0.
  FF45h takes 1173 (тип коррекции) and 1174 (основание) out of the FF0Ch TLV and forms
  document 31 with them where the FFD puts them; one without 1173, or with either tag twice,
  answers 33h at FF45h (1173 is mandatory in FFD 1.2). The other FF0Ch TLV follow as sent.
- FF46h's tax byte maps to tag 1199 through the register's tax table
  (:mod:`protocols.shtrih.taxes`; the 2026 firmware's by default, with codes for all twelve
  rates); a byte the table lacks answers 33h. 80h–83h take groups 1…4 of the first six
  (20 %, 10 %, 0 %, no VAT). A name starting with ``//`` is stored without the slashes. A
  line sum given must be within 1 kopeck of price × quantity.
- FF45h: the change (сдача) comes out of cash only; payments below the total answer 45h,
  change larger than the cash 46h. Sums 2–13 are electronic (1081), 14 prepayment (1215),
  15 postpayment (1216), 16 counter-provision (1217). Taxation 0 means the first registered.
- FF3Bh returns the document body (after FF3Ah's tag and length) in chunks of up to 200
  bytes, then 08h (no data).
- Marking codes (FFD 1.2): FF61h checks a code by :mod:`emulator.marking`'s rules (the ФН's
  own check and the ОИСМ's under the ФН's :class:`~emulator.marking.MarkingPolicy`) and answers
  after the check's modelled time; its online part is empty without the ОИСМ, FFh alone when
  the ОИСМ did not answer in time, else 00h, 2106 and the ОИСМ's TLV. FF69h decides on it:
  1 keeps it in the ФН for a line, 0 forgets it, 2 clears every check (JavaPOS); both answer
  its 2106. FF67h binds a code to the last line: the line gets 1163 from the code, 2102 and
  the ФН's 2106, which outrank what FF4Dh sent. A code never checked (or rejected) is checked
  by the register itself, taken as accepted, and its check is appended to the answer, as the
  specification's note to FF67h says. Errors: an unreadable code (empty, or bytes outside
  ASCII and GS) D3h; a planned status outside 2003's values or a mode other than 0 33h; a
  second FF61h before FF69h, FF69h 0/1 with nothing checked, or a close while a check awaits
  its decision A1h (the ФН-М's wrong sequence); a full table A3h; FF67h with no receipt line
  73h, in a receipt other than приход or возврат прихода 5Eh (fr_drv_ng_examples #42), on a
  line already bound or with a code whose 1163 cannot be formed 33h, and 33h when the line's
  1163 or 2102 from FF4Dh differ from the code's (a repeated tag, as fr_drv_ng #249 shows
  the register refusing one). With the policy's ``host_results`` REFUSE (the default, a
  ФН-М's rule), a 2106 in FF4Dh answers 33h and a marked line (1212 = 31 or 33) with a 1163
  but no bound code is formed with 2106 = 0 (not checked); with KEEP, for hosts that send
  their own 2106, both stay as the host sent them.
- Link: the first byte 0x8F selects v2, anything else v1 (§1.3). v1 sends 0xFF after the
  host's ACK on a TCP line (``line="tcp"``), not on ``"serial"`` (§1.1).
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import attrs
import trio

from emulator.fn import FiscalStorage, FnModelError
from emulator.marking import (
    MARKING_OPERATIONS,
    PLANNED_STATUSES,
    HostResults,
    MarkingCheck,
    MarkingCode,
    UnreadableCode,
    bound_tags,
    conflicting_tags,
    mark_unchecked_line,
    parse_marking_code,
)
from emulator.pace import Pacer
from emulator.timing import RegisterTiming
from protocols.documents.ffd import block_from_tags, receipt_to_tags
from protocols.documents.model import (
    Company,
    CorrectionBasis,
    CorrectionReceipt,
    Item,
    Payments,
    Receipt,
)
from protocols.documents.vat import TaxTable
from protocols.errors import ProtocolError
from protocols.fiscal_sign import printed_fiscal_sign
from protocols.shtrih import commands as c
from protocols.shtrih.codes import ErrorCode, MarkingDecision, Mode, OfdExchangeStatus, Submode
from protocols.shtrih.errors import ShtrihError
from protocols.shtrih.events import (
    NEED_DATA,
    AnswerFrame,
    CommandFrame,
    Timer,
)
from protocols.shtrih.link_v1 import LinkV1Device
from protocols.shtrih.link_v2 import LinkV2Device
from protocols.shtrih.taxes import DEFAULT as DEFAULT_TAXES
from protocols.shtrih.taxes import LEGACY as LEGACY_TAXES
from protocols.tlv import TagMap, TlvError, decode, decode_document, encode

__all__ = ["Line", "OpenReceipt", "ShtrihRegister", "serve_connection"]

#: The tax groups of 80h–83h (налог 1…4) → 1199 ставка НДС: the table's first groups.
_TAX_GROUPS = tuple(sorted(LEGACY_TAXES.codes, key=LEGACY_TAXES.codes.__getitem__))
#: 1054 признак расчёта → the status nibble of mode 8 (8.0 sale … 8.3 purchase return).
_RECEIPT_STATUS = {1: 0, 2: 2, 3: 1, 4: 3}
_LEGACY_OPERATIONS = {0x80: 1, 0x81: 3, 0x82: 2, 0x83: 4}
_ADMIN = frozenset({29, 30})
_ADMIN_COMMANDS = frozenset({0x40, 0x41})
#: Commands that print or open a document: refused with 50h while submode 5 lasts.
_PRINTING_COMMANDS = frozenset(
    {0x12, 0x17, 0x2F, 0x40, 0x41, 0xE0, 0x80, 0x81, 0x82, 0x83, 0x85, 0x8D}
    | {0xFF35, 0xFF45, 0xFF46}
)
#: The correction tags FF45h takes out of a correction receipt's FF0Ch TLV.
_CORRECTION_TAGS = (1173, 1174)
_TLV_HEADER = struct.Struct("<HH")
_TLV_CHUNK = 200
_FLAGS = 0x0292  # as in the real 10h captures (§1.10 R2–R4): rolls and sensors present
_BATTERY, _SUPPLY = 0x9F, 0xE5  # 3.12 V and 25.44 V, as captured


class CommandRefused(Exception):
    """A command answered with a non-zero error byte."""

    def __init__(self, error: int) -> None:
        super().__init__(f"{error:02X}h")
        self.error = error


@attrs.frozen
class Line:
    """One receipt line (предмет расчёта, 1059) with its extra TLV from FF4Dh, and the tags of
    the marking code FF67h bound to it (1163, 2102, the ФН's 2106)."""

    item: Item
    extra: TagMap = attrs.field(factory=dict)
    marking: TagMap = attrs.field(factory=dict)


@attrs.frozen
class OpenReceipt:
    """The receipt being built (открытый чек): operation 1054, lines, receipt-level TLV.

    ``correction`` marks a correction receipt (чек коррекции, FF35h), whose ``operation`` is
    None until its first line gives it.
    """

    operation: int | None
    lines: tuple[Line, ...] = ()
    tlv: bytes = b""
    correction: bool = False


class ShtrihRegister:
    """One emulated Shtrih-M register with its ФН; no I/O, time from ``clock`` (seconds).

    ``start`` is the register's wall clock (naive local time) when ``clock()`` read
    ``origin``; the wall clock then runs with ``clock``, so MockClock moves it too.
    """

    def __init__(
        self,
        fn: FiscalStorage,
        timing: RegisterTiming,
        *,
        start: dt.datetime,
        kkt_serial: int,
        clock: Callable[[], float] = trio.current_time,
        origin: float | None = None,
        taxes: TaxTable = DEFAULT_TAXES,
    ) -> None:
        self.fn = fn
        self.timing = timing
        self.taxes = taxes  # the tax table of the register's firmware
        self.model = timing.model
        self.kkt_serial = kkt_serial
        self._clock = clock
        self._origin = clock() if origin is None else origin
        self._start = start
        self.receipt: OpenReceipt | None = None
        self.print_until = 0.0  # clock reading when the printer stops (submode 5 until then)
        self.lock = trio.Lock()  # one command at a time, whatever the connection
        self._reading: bytes = b""  # the FF3Ah document body left for FF3Bh
        self._marking_time = 0.0  # the last command's marking check, added to its duration

    # --- time and state ----------------------------------------------------------------

    def now(self) -> dt.datetime:
        """The register's wall clock."""
        return self._start + dt.timedelta(seconds=self._clock() - self._origin)

    def _timer(self) -> float:
        return self._clock() - self._origin

    @property
    def mode(self) -> int:
        """The mode byte of 10h/11h: mode in the low nibble, its status in the high one."""
        if self.receipt is not None:
            status = _RECEIPT_STATUS.get(self.receipt.operation or 0, 0)
            return int(Mode.DOCUMENT_OPEN) | status << 4
        shift = self.fn.shift
        if shift is None:
            return int(Mode.SHIFT_CLOSED)
        return int(Mode.SHIFT_EXPIRED if self._shift_expired() else Mode.SHIFT_OPEN)

    def _shift_expired(self) -> bool:
        shift = self.fn.shift
        return shift is not None and self.now() - shift.opened > self.fn.limits.max_shift

    @property
    def submode(self) -> int:
        return int(Submode.PRINTING if self._clock() < self.print_until else Submode.IDLE)

    # --- execution ---------------------------------------------------------------------

    def execute(self, payload: bytes) -> tuple[bytes, float]:
        """The answer payload to one request and the processing time before it is sent."""
        try:
            code = c.command_code(payload)
        except ShtrihError:  # no code at all (an empty payload): answer 00h, bad parameters
            return bytes((payload[0] if payload else 0, ErrorCode.BAD_PARAMETERS)), 0.0
        duration = self.timing.command(code)
        self._marking_time = 0.0
        spec = c.REGISTRY.get(code)
        handler = _HANDLERS.get(code)
        if spec is None or handler is None:
            return c.ErrorAnswer(code=code, error=ErrorCode.NOT_SUPPORTED).encode(), duration
        try:
            request = spec.request.decode(payload)
        except ShtrihError:
            return c.ErrorAnswer(code=code, error=ErrorCode.BAD_PARAMETERS).encode(), duration
        try:
            self._check_password(code, request)
            if code in _PRINTING_COMMANDS and self.submode == Submode.PRINTING:
                raise CommandRefused(ErrorCode.PRINTING_PREVIOUS)
            answer, printed = handler(self, request)
        except CommandRefused as exc:
            return c.ErrorAnswer(code=code, error=exc.error).encode(), duration
        except FnModelError as exc:
            return c.ErrorAnswer(code=code, error=int(exc.code)).encode(), duration
        except (ProtocolError, TlvError):
            return c.ErrorAnswer(code=code, error=ErrorCode.BAD_PARAMETERS).encode(), duration
        duration += self._marking_time
        if printed:
            begin = max(self._clock() + duration, self.print_until)
            self.print_until = begin + self.timing.print_lines(printed)
        return answer.encode(), duration

    def _check_password(self, code: int, request: c.Request) -> None:
        password: int | None = getattr(request, "password", None)
        if password is None:
            return
        allowed = _ADMIN if code > 0xFF or code in _ADMIN_COMMANDS else range(1, 31)
        if password not in allowed:
            raise CommandRefused(ErrorCode.WRONG_PASSWORD)

    def _operator(self, request: c.Request) -> int:
        password: int = getattr(request, "password", 30)
        return password if 1 <= password <= 30 else 30

    def _need_shift(self) -> None:
        mode = self.mode & 0x0F
        if mode == Mode.DOCUMENT_OPEN:
            raise CommandRefused(ErrorCode.RECEIPT_OPEN)
        if mode == Mode.SHIFT_CLOSED:
            raise CommandRefused(ErrorCode.NOT_IN_THIS_MODE)

    def _no_receipt(self) -> None:
        if self.receipt is not None:
            raise CommandRefused(ErrorCode.RECEIPT_OPEN)

    def _open_receipt(self, operation: int) -> OpenReceipt:
        """The open receipt, opening one (in the ФН too) if none is open."""
        receipt = self.receipt
        if receipt is not None:
            if receipt.operation is None:  # a correction receipt's first line gives 1054
                if operation not in _RECEIPT_STATUS:
                    raise CommandRefused(ErrorCode.BAD_PARAMETERS)
                self.receipt = attrs.evolve(receipt, operation=operation)
                return self.receipt
            if receipt.operation != operation:
                raise CommandRefused(ErrorCode.WRONG_OPERATION)
            return receipt
        self._may_open()
        if operation not in _RECEIPT_STATUS:
            raise CommandRefused(ErrorCode.BAD_PARAMETERS)
        self.fn.begin_receipt(self.now(), timer=self._timer())
        self.receipt = OpenReceipt(operation=operation)
        return self.receipt

    def _may_open(self) -> None:
        """A new receipt needs an open shift under 24 hours."""
        mode = self.mode
        if mode == Mode.SHIFT_CLOSED:
            raise CommandRefused(ErrorCode.NOT_IN_THIS_MODE)
        if mode == Mode.SHIFT_EXPIRED:
            raise CommandRefused(ErrorCode.SHIFT_OVER_24H)

    def _add_line(self, operation: int, item: Item) -> None:
        receipt = self._open_receipt(operation)
        self.receipt = attrs.evolve(receipt, lines=(*receipt.lines, Line(item)))

    def _close(self, payments: tuple[int, ...], taxation: int) -> tuple[int, Any]:
        """Form the open receipt in the ФН; (change, FiscalResult)."""
        receipt = self.receipt
        if receipt is None:
            raise CommandRefused(ErrorCode.NOT_IN_THIS_MODE)
        if self._shift_expired():
            raise CommandRefused(ErrorCode.SHIFT_OVER_24H)
        if not receipt.lines or receipt.operation is None:
            raise CommandRefused(ErrorCode.ZERO_TOTAL)
        operation = receipt.operation
        total = sum(line.item.sum for line in receipt.lines)
        paid = sum(payments)
        if paid < total:
            raise CommandRefused(ErrorCode.PAYMENTS_BELOW_TOTAL)
        change = paid - total
        if change > payments[0]:
            raise CommandRefused(ErrorCode.NOT_ENOUGH_CASH)
        registration = self.fn.registration
        if registration is None:
            raise CommandRefused(ErrorCode.FN_WRONG_STATE)
        if taxation == 0:
            taxation = registration.tax_systems & -registration.tax_systems
        if taxation & (taxation - 1) or not taxation & registration.tax_systems:
            raise CommandRefused(ErrorCode.BAD_PARAMETERS)
        document = Receipt(
            operation=operation,
            items=tuple(line.item for line in receipt.lines),
            payments=Payments(
                cash=payments[0] - change,
                electronic=sum(payments[1:13]),
                prepaid=payments[13],
                credit=payments[14],
                provision=payments[15],
            ),
            company=Company(
                inn=registration.user_inn,
                tax_system=taxation,
                place=registration.place or "emulator",
                address=registration.address,
            ),
            total=total,
        )
        host_tlv = receipt.tlv
        if receipt.correction:
            document, host_tlv = _as_correction(document, host_tlv)
        self.fn.marking_settled()
        unchecked = self.fn.marking_policy.host_results is HostResults.REFUSE
        tags = receipt_to_tags(document)
        items = tags[1059]
        assert isinstance(items, list)
        tags[1059] = [
            _line_tags(tags_, line, unchecked) if isinstance(tags_, dict) else tags_
            for tags_, line in zip(items, receipt.lines, strict=True)
        ]
        for own in (1054, 1020, 1018):  # the ФН writes its own header tags
            tags.pop(own, None)
        self.fn.add_tlv(encode(tags) + host_tlv)
        result = self.fn.finish_receipt(self.now(), operation, total, timer=self._timer())
        self.receipt = None
        return change, result

    def _receipt_lines(self, items: int) -> int:
        return self.timing.receipt_lines(items)

    def _report_lines(self) -> int:
        return self.model.report_lines if self.model.prints else 0

    # --- handlers: each returns (answer, printed lines) ----------------------------------

    def _short_status(self, r: c.ShortStatus) -> tuple[c.Answer, int]:
        ops = len(self.receipt.lines) if self.receipt else 0
        return c.ShortStatusAnswer(
            operator=self._operator(r),
            flags=_FLAGS,
            mode=self.mode,
            submode=self.submode,
            receipt_operations_low=ops & 0xFF,
            battery_raw=_BATTERY,
            supply_raw=_SUPPLY,
            fp_error=0,
            eklz_error=0,
            receipt_operations_high=ops >> 8 & 0xFF,
            reserved=bytes(3),
        ), 0

    def _full_status(self, r: c.FullStatus) -> tuple[c.Answer, int]:
        now = self.now()
        registration = self.fn.registration
        return c.FullStatusAnswer(
            operator=self._operator(r),
            firmware_version="C2",
            firmware_build=1,
            firmware_date=dt.date(2024, 1, 1),
            hall_number=1,
            document_number=self.fn.last_fd_number & 0xFFFF,
            flags=_FLAGS,
            mode=self.mode,
            submode=self.submode,
            port=128 if self.timing.line == "tcp" else 0,
            fp_version="NA",
            fp_build=0,
            fp_date=dt.date(2016, 1, 1),
            date=now.date(),
            time=now.time().replace(microsecond=0),
            fp_flags=0,
            serial_low=self.kkt_serial & 0xFFFFFFFF,
            last_closed_shift=self.fn.last_shift_number - (self.fn.shift is not None),
            free_fp_records=0,
            reregistrations=max(0, self.fn.registrations - 1),
            reregistrations_left=max(0, 30 - self.fn.registrations),
            inn=int(registration.user_inn) if registration else 0,
            serial_high=self.kkt_serial >> 32 & 0xFFFF,
        ), 0

    def _device_type(self, r: c.DeviceType) -> tuple[c.Answer, int]:
        return c.DeviceTypeAnswer(
            type=0,
            subtype=0,
            protocol_version=1,
            protocol_subversion=14,
            model=self.model.model_id,
            language=0,
            name=self.model.title,
        ), 0

    def _beep(self, r: c.Beep) -> tuple[c.Answer, int]:
        return c.BeepAnswer(operator=self._operator(r)), 0

    def _font(self, r: c.FontParameters) -> tuple[c.Answer, int]:
        if not 1 <= r.font <= 7:
            raise CommandRefused(ErrorCode.BAD_PARAMETERS)
        return c.FontParametersAnswer(
            print_width=576, char_width=12, char_height=24, font_count=7
        ), 0

    def _print_line(self, r: c.PrintLine) -> tuple[c.Answer, int]:
        return c.PrintLineAnswer(operator=self._operator(r)), int(self.model.prints)

    def _print_font(self, r: c.PrintLineWithFont) -> tuple[c.Answer, int]:
        return c.PrintLineWithFontAnswer(operator=self._operator(r)), int(self.model.prints)

    def _x_report(self, r: c.XReport) -> tuple[c.Answer, int]:
        self._no_receipt()
        return c.XReportAnswer(operator=self._operator(r)), self._report_lines()

    def _z_report(self, r: c.ZReport) -> tuple[c.Answer, int]:
        self._need_shift()
        self.fn.close_shift(self.now(), timer=self._timer())
        return c.ZReportAnswer(operator=self._operator(r)), self._report_lines()

    def _open_shift(self, r: c.OpenShift) -> tuple[c.Answer, int]:
        self._no_receipt()
        if self.mode != Mode.SHIFT_CLOSED:
            raise CommandRefused(ErrorCode.NOT_IN_THIS_MODE)
        self.fn.open_shift(self.now(), timer=self._timer())
        return c.OpenShiftAnswer(operator=self._operator(r)), self._report_lines()

    def _legacy_line(
        self, r: c.Sale | c.Purchase | c.SaleReturn | c.PurchaseReturn
    ) -> tuple[c.Answer, int]:
        operation = _LEGACY_OPERATIONS[r.CODE]
        vat = next((g for g in r.taxes if g), 4)
        if not 1 <= vat <= 4:
            raise CommandRefused(ErrorCode.BAD_PARAMETERS)
        amount = _amount(r.price, r.quantity)
        item = Item(
            name=r.text or "Товар",
            price=r.price,
            quantity=r.quantity,
            sum=amount,
            vat=_TAX_GROUPS[vat - 1],
            payment_method=4,  # полный расчёт
            payment_subject=1,  # товар
        )
        self._add_line(operation, item)
        answer = c.REGISTRY[r.CODE].answer
        return answer(operator=self._operator(r)), 0  # type: ignore[call-arg]

    def _open_receipt_cmd(self, r: c.OpenReceipt) -> tuple[c.Answer, int]:
        operation = {0: 1, 1: 3, 2: 2, 3: 4}.get(r.receipt_type)
        if operation is None:
            raise CommandRefused(ErrorCode.BAD_PARAMETERS)
        self._no_receipt()
        self._open_receipt(operation)
        return c.OpenReceiptAnswer(operator=self._operator(r)), 0

    def _close_legacy(self, r: c.CloseReceipt) -> tuple[c.Answer, int]:
        payments = (r.cash, r.payment2, r.payment3, r.payment4, *([0] * 12))
        items = len(self.receipt.lines) if self.receipt else 0
        change, _ = self._close(payments, 0)
        return c.CloseReceiptAnswer(operator=self._operator(r), change=change), self._receipt_lines(
            items
        )

    def _cancel(self, r: c.CancelReceipt) -> tuple[c.Answer, int]:
        if self.receipt is None:
            raise CommandRefused(ErrorCode.NOT_IN_THIS_MODE)
        self.fn.cancel_document()
        self.receipt = None
        return c.CancelReceiptAnswer(operator=self._operator(r)), int(self.model.prints) * 3

    def _operation_v2(self, r: c.OperationV2) -> tuple[c.Answer, int]:
        vat = self.taxes.rate_of(r.tax_rate)
        if vat is None:
            raise CommandRefused(ErrorCode.BAD_PARAMETERS)
        expected = _amount(r.price, r.quantity)
        amount = expected if r.amount is None else r.amount
        if abs(amount - expected) > 1:
            raise CommandRefused(ErrorCode.BAD_PARAMETERS)
        name = r.name[2:] if r.name.startswith("//") else r.name
        item = Item(
            name=name or "Товар",
            price=r.price,
            quantity=r.quantity,
            sum=amount,
            vat=vat,
            payment_method=r.payment_method,
            payment_subject=r.payment_object,
            vat_sum=r.tax_amount,
        )
        self._add_line(r.operation, item)
        return c.OperationV2Answer(), 0

    def _begin_correction(self, r: c.BeginCorrectionReceipt) -> tuple[c.Answer, int]:
        self._no_receipt()
        self._may_open()
        self.fn.begin_receipt(self.now(), correction=True, timer=self._timer())
        self.receipt = OpenReceipt(operation=None, correction=True)
        return c.BeginCorrectionReceiptAnswer(), 0

    def _item_tlv(self, r: c.SendItemTlv) -> tuple[c.Answer, int]:
        receipt = self.receipt
        if receipt is None or not receipt.lines:
            raise CommandRefused(ErrorCode.NOT_IN_THIS_MODE)
        fields = decode(r.tlv).fields
        last = receipt.lines[-1]
        refuse = self.fn.marking_policy.host_results is HostResults.REFUSE
        if (2106 in fields and refuse) or conflicting_tags(fields, last.marking):
            raise CommandRefused(ErrorCode.BAD_PARAMETERS)
        line = attrs.evolve(last, extra={**last.extra, **fields})
        self.receipt = attrs.evolve(receipt, lines=(*receipt.lines[:-1], line))
        return c.SendItemTlvAnswer(), 0

    def _receipt_tlv(self, r: c.SendTlv) -> tuple[c.Answer, int]:
        receipt = self.receipt
        if receipt is None:
            raise CommandRefused(ErrorCode.NOT_IN_THIS_MODE)
        decode(r.tlv)  # whole TLVs only
        self.receipt = attrs.evolve(receipt, tlv=receipt.tlv + r.tlv)
        return c.SendTlvAnswer(), 0

    def _close_v2(self, r: c.CloseReceiptV2) -> tuple[c.Answer, int]:
        items = len(self.receipt.lines) if self.receipt else 0
        change, result = self._close(r.payments, r.taxation)
        return c.CloseReceiptV2Answer(
            change=change,
            fd_number=result.fd_number,
            fiscal_sign=printed_fiscal_sign(result.fiscal_sign),
        ), self._receipt_lines(items)

    def _fn_status(self, r: c.FnStatus) -> tuple[c.Answer, int]:
        fn = self.fn
        return c.FnStatusAnswer(
            phase=int(fn.phase),
            current_document=_FN_DOCUMENTS.get(fn.open_document.code, 0x04)
            if fn.open_document is not None
            else 0,
            document_data=int(bool(fn.open_document and fn.open_document.data)),
            shift_open=int(fn.shift is not None),
            warnings=int(fn.warnings(self.now())),
            date_time=self.now().replace(second=0, microsecond=0),
            fn_serial=fn.number,
            last_fd=fn.last_fd_number,
        ), 0

    def _fn_serial(self, r: c.FnSerial) -> tuple[c.Answer, int]:
        return c.FnSerialAnswer(fn_serial=self.fn.number), 0

    def _fn_expiry(self, r: c.FnExpiry) -> tuple[c.Answer, int]:
        expires = self.fn.key_expires
        if expires is None:
            raise CommandRefused(ErrorCode.FN_WRONG_STATE)
        return c.FnExpiryAnswer(
            expires=expires.date(),
            reregistrations_left=max(0, 30 - self.fn.registrations),
            reregistrations_done=max(0, self.fn.registrations - 1),
        ), 0

    def _find_document(self, r: c.FindDocument) -> tuple[c.Answer, int]:
        document = decode_document(self.fn.read_document(r.fd_number))
        fields = document.fields
        sign = fields.get(1077)
        when = fields.get(1012)
        assert isinstance(sign, bytes) and isinstance(when, dt.datetime)
        details = b""
        if document.code in c.RECEIPT_DOCUMENT_TYPES:
            operation, total = fields.get(1054), fields.get(1020)
            assert isinstance(operation, int) and isinstance(total, int)
            details = bytes((operation,)) + total.to_bytes(5, "little")
        return c.FindDocumentAnswer(
            document_type=document.code,
            ofd_receipt=int(r.fd_number not in self.fn.unsent()),
            date_time=when,
            fd_number=r.fd_number,
            fiscal_sign=printed_fiscal_sign(sign),
            details=details,
        ), 0

    def _document_tlv_info(self, r: c.DocumentTlvInfo) -> tuple[c.Answer, int]:
        document = self.fn.read_document(r.fd_number)
        self._reading = document[4:]
        return c.DocumentTlvInfoAnswer(
            document_tag=int.from_bytes(document[:2], "little"), length=len(document) - 4
        ), 0

    def _read_tlv(self, r: c.ReadTlv) -> tuple[c.Answer, int]:
        if not self._reading:
            raise CommandRefused(ErrorCode.FN_NO_DATA)
        chunk, self._reading = self._reading[:_TLV_CHUNK], self._reading[_TLV_CHUNK:]
        return c.ReadTlvAnswer(tlv=chunk), 0

    def _ofd_status(self, r: c.OfdStatus) -> tuple[c.Answer, int]:
        unsent = self.fn.unsent()
        status = OfdExchangeStatus(0)
        if unsent:
            status |= OfdExchangeStatus.MESSAGE_PENDING
        return c.OfdStatusAnswer(
            status=int(status),
            read_state=0,
            queued=min(len(unsent), 0xFFFF),
            first_fd=unsent[0] if unsent else 0,
            first_date_time=self.fn.unsent_since,
        ), 0

    def _unconfirmed(self, r: c.UnconfirmedCount) -> tuple[c.Answer, int]:
        return c.UnconfirmedCountAnswer(count=min(len(self.fn.unsent()), 0xFFFF)), 0

    def _check_marking(self, r: c.CheckMarking) -> tuple[c.Answer, int]:
        code = _readable(r.marking_code)
        if r.mode != 0 or r.planned_status not in PLANNED_STATUSES:
            raise CommandRefused(ErrorCode.BAD_PARAMETERS)
        decode(r.tlv)  # whole TLVs: 2108, 1023, 1291 for measured goods
        check = self._run_check(code, r.planned_status, r.mode)
        return c.CheckMarkingAnswer(
            local_status=int(check.local),
            local_reason=int(check.code.reason),
            code_type=int(check.code.code_type),
            online=check.online_part(with_result=True),
        ), 0

    def _run_check(self, code: MarkingCode, planned_status: int, mode: int) -> MarkingCheck:
        """The ФН checks ``code``; the command takes the check's modelled time."""
        check = self.fn.check_marking(code, planned_status, mode)
        self._marking_time = self.timing.marking_check(asked=check.asked, answered=check.answered)
        return check

    def _decide_marking(self, r: c.AcceptMarking) -> tuple[c.Answer, int]:
        if r.decision == MarkingDecision.CLEAR:
            self.fn.clear_marking()
            return c.AcceptMarkingAnswer(check_result=0), 0
        if r.decision not in (MarkingDecision.REJECT, MarkingDecision.ACCEPT):
            raise CommandRefused(ErrorCode.BAD_PARAMETERS)
        check = self.fn.decide_marking(accept=r.decision == MarkingDecision.ACCEPT)
        return c.AcceptMarkingAnswer(check_result=int(check.result)), 0

    def _bind_marking(self, r: c.BindMarking) -> tuple[c.Answer, int]:
        code = _readable(r.marking_code)
        receipt = self.receipt
        if receipt is None or not receipt.lines:
            raise CommandRefused(ErrorCode.NOT_IN_THIS_MODE)
        status = MARKING_OPERATIONS.get(receipt.operation or 0)
        if status is None:
            raise CommandRefused(ErrorCode.WRONG_OPERATION)
        last = receipt.lines[-1]
        if last.marking or code.product_code is None:
            raise CommandRefused(ErrorCode.BAD_PARAMETERS)
        check = self.fn.accepted_marking(lambda accepted: accepted.code.raw == code.raw)
        mode = 0 if check is None else check.processing_mode
        if conflicting_tags(last.extra, bound_tags(code, mode, 0)):
            raise CommandRefused(ErrorCode.BAD_PARAMETERS)
        ran = check is None
        if check is None:  # never checked: the register checks it itself (FF67h note 1)
            self._run_check(code, status, 0)
            check = self.fn.decide_marking(accept=True)
        self.fn.take_marking(check)
        line = attrs.evolve(last, marking=bound_tags(code, mode, int(check.result)))
        self.receipt = attrs.evolve(receipt, lines=(*receipt.lines[:-1], line))
        tag = code.product_code[0]
        if not ran:
            return c.BindMarkingAnswer(code_type=tag, datamatrix_type=code.datamatrix_type), 0
        return c.BindMarkingAnswer(
            code_type=tag,
            datamatrix_type=code.datamatrix_type,
            local_status=int(check.local),
            local_reason=int(code.reason),
            recognised_type=int(code.code_type),
            online=check.online_part(with_result=True),
        ), 0


#: The ФН's open document code → the "current document" byte of FF01h (registers.md §1.6).
_FN_DOCUMENTS = {3: 0x04, 31: 0x14}


def _as_correction(receipt: Receipt, tlv: bytes) -> tuple[CorrectionReceipt, bytes]:
    """The correction receipt (31) with 1173/1174 taken out of the host's FF0Ch ``tlv``."""
    taken: dict[int, list[bytes]] = {tag: [] for tag in _CORRECTION_TAGS}
    kept: list[bytes] = []
    pos = 0
    while pos < len(tlv):  # whole TLVs: FF0Ch checked them
        tag, size = _TLV_HEADER.unpack_from(tlv, pos)
        element = tlv[pos : pos + 4 + size]
        pos += 4 + size
        taken.get(tag, kept).append(element)
    if len(taken[1173]) != 1 or len(taken[1174]) > 1:
        raise CommandRefused(ErrorCode.BAD_PARAMETERS)
    correction_type = decode(taken[1173][0]).fields[1173]
    assert isinstance(correction_type, int)  # 1173 is a BYTE in the dictionary
    basis = None
    if taken[1174]:
        block = decode(taken[1174][0]).fields[1174]
        assert isinstance(block, dict)  # 1174 is an STLV
        basis = block_from_tags(CorrectionBasis, block, "31/1174")
    corrected = CorrectionReceipt(
        **{field.name: getattr(receipt, field.name) for field in attrs.fields(Receipt)},
        correction_type=correction_type,
        basis=basis,
    )
    return corrected, b"".join(kept)


def _readable(raw: bytes) -> MarkingCode:
    try:
        return parse_marking_code(raw)
    except UnreadableCode:
        raise CommandRefused(ErrorCode.MARKING_CODE_UNREADABLE) from None


def _line_tags(tags: TagMap, line: Line, unchecked: bool) -> TagMap:
    """A line's tags: the model's, FF4Dh's, then the bound code's; ``unchecked`` marks a marked
    line without a bound code "not checked" (the ФН's rule)."""
    merged = {**tags, **line.extra, **line.marking}
    if unchecked:
        mark_unchecked_line(merged)
    return merged


def _amount(price: int, quantity: Decimal) -> int:
    """price × quantity to the kopeck, half up."""
    return int((price * quantity).quantize(Decimal(1), rounding=ROUND_HALF_UP))


_Handler = Callable[[ShtrihRegister, Any], tuple[c.Answer, int]]
_HANDLERS: dict[int, _Handler] = {
    0x10: ShtrihRegister._short_status,
    0x11: ShtrihRegister._full_status,
    0x13: ShtrihRegister._beep,
    0x17: ShtrihRegister._print_line,
    0x26: ShtrihRegister._font,
    0x2F: ShtrihRegister._print_font,
    0x40: ShtrihRegister._x_report,
    0x41: ShtrihRegister._z_report,
    0x80: ShtrihRegister._legacy_line,
    0x81: ShtrihRegister._legacy_line,
    0x82: ShtrihRegister._legacy_line,
    0x83: ShtrihRegister._legacy_line,
    0x85: ShtrihRegister._close_legacy,
    0x88: ShtrihRegister._cancel,
    0x8D: ShtrihRegister._open_receipt_cmd,
    0xE0: ShtrihRegister._open_shift,
    0xFC: ShtrihRegister._device_type,
    0xFF01: ShtrihRegister._fn_status,
    0xFF02: ShtrihRegister._fn_serial,
    0xFF03: ShtrihRegister._fn_expiry,
    0xFF0A: ShtrihRegister._find_document,
    0xFF0C: ShtrihRegister._receipt_tlv,
    0xFF39: ShtrihRegister._ofd_status,
    0xFF3A: ShtrihRegister._document_tlv_info,
    0xFF3B: ShtrihRegister._read_tlv,
    0xFF35: ShtrihRegister._begin_correction,
    0xFF3F: ShtrihRegister._unconfirmed,
    0xFF45: ShtrihRegister._close_v2,
    0xFF46: ShtrihRegister._operation_v2,
    0xFF4D: ShtrihRegister._item_tlv,
    0xFF61: ShtrihRegister._check_marking,
    0xFF67: ShtrihRegister._bind_marking,
    0xFF69: ShtrihRegister._decide_marking,
}


# --- the link on a trio stream -------------------------------------------------------------


class _Connection:
    """One host connection: the link role, the stream and a write lock."""

    def __init__(self, stream: trio.abc.Stream, register: ShtrihRegister) -> None:
        self.stream = stream
        self.register = register
        self.link: LinkV1Device | LinkV2Device | None = None
        self._write_lock = trio.Lock()
        self.closed = False
        self.pacer = Pacer()

    async def write(self, data: bytes) -> None:
        """Put ``data`` on the line after its modelled wire time."""
        if not data or self.closed:
            return
        await self.pacer.sleep(self.register.timing.wire(len(data)))
        await self._send(data)

    async def _send(self, data: bytes) -> None:
        """Put ``data`` on the line now: its wire time has been waited for already."""
        async with self._write_lock:
            with trio.CancelScope(shield=True):
                try:
                    await self.stream.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self.closed = True

    async def receive(self) -> bytes | None:
        """The next bytes, None at the end of the stream, b"" when the link timer ran out."""
        link = self.link
        timer = Timer.NONE if link is None else link.timer
        try:
            if timer is Timer.NONE:
                data = await self.stream.receive_some()
            else:
                with trio.move_on_after(self.register.model.byte_timeout):
                    return bytes(await self.stream.receive_some()) or None
                return b""
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return None
        return bytes(data) or None

    async def pump(self) -> list[CommandFrame]:
        """Lex what arrived, write the link's replies; the commands to execute."""
        assert self.link is not None
        commands: list[CommandFrame] = []
        while True:
            event = self.link.next_event()
            if event is NEED_DATA:
                break
            if isinstance(event, CommandFrame):
                commands.append(event)
        await self.write(self.link.data_to_send())
        return commands

    async def listen_while_busy(self) -> None:
        """While a command runs, answer ENQ with ACK (v1) and repeats (v2) by the link."""
        while True:
            data = await self.receive()
            if data is None:
                self.closed = True
                return
            assert self.link is not None
            if data:
                self.link.receive_data(data)
            else:
                self.link.timeout()
            # A frame arriving while executing is ignored by the link (v1) or is a repeat (v2).
            await self.pump()

    async def run(self, command: CommandFrame) -> None:
        register, link = self.register, self.link
        assert link is not None
        async with register.lock:
            # The model's time for the command includes the emulator's own work on it.
            began = trio.current_time()
            answer, delay = register.execute(command.payload)
            # One wait for the command and its answer's time on the line: a second timer for
            # the line cost the emulator about a tenth of its CPU an exchange.
            done = began + delay + register.timing.wire(link.answer_size(answer))
            aim = self.pacer.aim(done)
            if trio.current_time() < aim:  # work that overran the model is not a late wake
                # Listen in this task, not a second one: a nursery and a task a command cost
                # more than the rest of the exchange. A connection closed early does not end
                # the command.
                with trio.move_on_at(aim):
                    await self.listen_while_busy()
                if trio.current_time() < aim:
                    await trio.sleep_until(aim)
                self.pacer.woke(done)
        if not self.closed:
            await self._send(link.send(AnswerFrame(payload=answer)))


async def serve_connection(stream: trio.abc.Stream, register: ShtrihRegister) -> None:
    """Serve one host on ``stream`` until it closes; the register keeps its state after."""
    connection = _Connection(stream, register)
    async with stream:
        while not connection.closed:
            data = await connection.receive()
            if data is None:
                return
            if connection.link is None:
                if data[0] == 0x8F:
                    connection.link = LinkV2Device()
                else:
                    connection.link = LinkV1Device(ff_after_ack=register.timing.line == "tcp")
            if data:
                connection.link.receive_data(data)
            else:
                connection.link.timeout()
            pending = await connection.pump()
            while pending and not connection.closed:
                await connection.run(pending.pop(0))
                pending += await connection.pump()
