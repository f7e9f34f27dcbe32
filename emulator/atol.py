"""The ATOL register personality (персональность «АТОЛ»): state, commands, the task buffer.

:class:`AtolRegister` is one emulated ATOL register (протокол ККТ 3.1, transport v3): its mode
(режим, registers.md §2.3), the shift as its ФН (:class:`~emulator.fn.FiscalStorage`) keeps it,
and the open receipt (открытый чек) with its items and payments.
:meth:`AtolRegister.execute` answers one application request with the answer a real register
sends and the time it takes. :func:`serve_connection` runs :mod:`protocols.atol`'s
:class:`~protocols.atol.DeviceConnection` on a trio stream and executes the tasks of the task
buffer (буфер заданий) in order. The register outlives connections: its task buffer, its
receipt and its ФН survive a reconnect, and a task already executed is answered from the
buffer, never run twice.

Choices where the reference (registers.md §2, §4) is silent:

- Modes: the register starts in the select mode (0). 56h enters modes 1 (registration),
  2 (X reports), 3 (Z reports), 4 (programming) and 6 (ФН) from mode 0 only; modes 1 and 2
  take an operator password 1…30, the others 29 or 30 (administrator, system administrator);
  another password answers 8Ch. 48h returns to mode 0, refused with 9Bh while a receipt is open.
- Open shift (9Ah), open receipt (92h), items (E6h), payments (99h), close (4Ah) and cancel
  (59h) need mode 1; the Z report (5Ah) needs mode 3; anything else there answers 66h. There is
  no automatic shift opening: 92h in a closed shift answers 66h. Status (3Fh) and the ФН
  requests (A4 xx) work in every mode.
- Error codes the reference lacks, numbered as on the older ATOL protocols (assumed; the
  codec's :class:`~protocols.atol.ErrorCode` names them too): 9Ah receipt closed (no receipt
  open), 45h payments below the total, 46h non-cash payments above the total (the change
  comes out of cash only), D0h ФН error with the ФН's result code in the extended byte. An
  item with a zero quantity answers 0Ah, a discount above the item's sum 08h, a tax code
  outside the tax table or a malformed or unknown request 13h, a close with no items 3Dh. A
  ФН refusal 16h (shift over 24 h) answers 88h.
- E6h tax codes follow the register's tax table (:mod:`protocols.atol.taxes`), in the order
  of 1199: 1 = 20 %, 2 = 10 %, 3 = 20/120, 4 = 10/110, 5 = 0 %, 6 = no VAT, 7 = 5 %, 8 = 7 %,
  9 = 5/105, 10 = 7/107, 11 = 22 %, 12 = 22/122 on the 2026 firmware (the default); a code
  the table lacks answers 13h; 0 (the department's rate) = no VAT.
  Items are full payment (1214 = 4) of goods (1212 = 1) unless E8h says otherwise. A discount
  lowers 1043 and 1079.
- 92h opens the ФН document (begin_receipt) unless bit 0 (test mode) is set: a test receipt
  never reaches the ФН. 4Ah with amount 0 pays what is left with its payment type.
- The state answer: submode and receipt state are the open receipt's type (0 when none),
  receipt number the last 1042 of the shift, port 4 on TCP and 0 on a serial line. A4 10
  answers the open (or last) shift and the last 1042 of the open shift.
- A4 45 answers the document's STLV tag and its whole size; A4 46 the whole document, header
  included, exactly as archived; 46 before any 45 answers 18h (no more data), and one
  whose document does not fit one answer's payload (over 16 378 bytes) answers 14h (wrong
  length): the reference gives no read in parts.
- Requisites (E8h, :class:`~protocols.atol.commands.WriteRequisite`) need an open receipt
  (9Ah otherwise). Blocks must come in order 0…count-1 with the same flags and count, each
  new block 0 dropping an unfinished set; the joined data must be whole TLVs (13h otherwise).
  With the item flag they add to or replace the tags of the last registered item (3Dh when
  there is none): 1214, 1212, 1200, 2108, 1163 and 2xxx, agent and supplier data, 1079, even
  1030 for a name longer than E6h's 64 bytes; but not 1043 or 1199, which E6h gave and the
  totals are counted from (13h). Without it they add to or replace the receipt's tags: 1055,
  1187, 1009, 1048, 1117, the cashier (1021, 1203), the buyer (1008, 1256), 1192, 1084, 1057,
  1234, 1270, 1261, 1011, 1036, 1125, and 1173/1174 in a correction receipt only; tags the
  register or the ФН forms themselves (1209, 1018, 1054, 1059, 1020, the payment sums, the VAT
  totals, the fiscal header) answer 13h. A 1055 that is not one of the registered tax systems
  (1062) answers D0h with the ФН's 09h. Without a 1055 the receipt has the lowest registered
  tax system.
- Correction receipts (92h types 7…10) form document 31 (кассовый чек коррекции) with 1054 from
  the type and 1173 = 0 (самостоятельно) unless E8h sends 1173; they count in the ФН's 1134
  only. A4 30 reports the open document as 04h (receipt) or 14h (correction), as a ФН does.
- Marking codes (FFD 1.2) through D1h…D4h (assumed commands, see :mod:`protocols.atol.commands`)
  and :mod:`emulator.marking`'s model, with Shtrih's rules where they carry over. D1h (mode 1)
  answers at once and the check runs on for its modelled time: D2h answers "pending" until
  then, then the result (the online part empty without the ОИСМ, FFh alone without its
  answer). D3h keeps the checked code in the ФН for an item, D4h forgets it; both answer its
  2106. The item takes its code through E8h: a КМ (tag 2000 with the code's bytes as
  scanned, GS included, which the register takes out before it reads the other TLVs and never
  writes to the document) or a 1163 that matches an accepted code binds that code to the last
  item, giving it 1163, 2102 and the ФН's 2106, which outrank what E8h sends. A КМ no
  accepted check matches binds nothing and gives the item its 1163. Errors: a КМ that cannot
  be read, a planned status outside 2003's values, a mode other than 0, a second КМ for an
  item, a КМ in a receipt other than приход or возврат прихода or for the receipt itself, or
  a 1163 / 2102 that differs from the bound code's 13h; a second D1h before D3h/D4h, D2h with
  nothing checked, D3h/D4h while the check runs or with nothing checked, or a close while a
  check awaits its decision D0h with A1h (the ФН-М's wrong sequence); a full table D0h with
  A3h. With the policy's ``host_results`` REFUSE (the default, a ФН-М's rule), an item's
  2106 in E8h answers 13h and a marked item (1212 = 31 or 33) with a 1163 but no bound code
  gets 2106 = 0 (not checked); with KEEP, for hosts that send their own 2106, both stay as
  the host sent them.
- The task's status is A4 (error) when the application answer carries a non-zero error.
- Timing: a task takes the processing time of its command (see :data:`ATOL_MODELS`) plus the
  printing of its document on models with a printer; the register answers Req with A2 for that
  long (the 15 s async timeout of S7 was raised "because the receipt did not finish printing").
- Link state (the frame reader and the last answer kept for an exact repeat) belongs to one
  connection; the task buffer belongs to the register. Tasks still pending when the host
  leaves run to the end all the same.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from types import MappingProxyType
from typing import Any

import attrs
import trio

from emulator.fn import FiscalResult, FiscalStorage, FnModelError
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
    take_scanned_codes,
)
from emulator.pace import Pacer
from emulator.timing import MS, RegisterModel, RegisterTiming
from protocols.atol import commands as c
from protocols.atol.connection import DeviceConnection
from protocols.atol.errors import AtolError
from protocols.atol.events import (
    NEED_DATA,
    TaskAdded,
    TaskCompleted,
    TaskStarted,
)
from protocols.atol.taskbuffer import MAX_PAYLOAD, TaskBuffer
from protocols.atol.taxes import DEFAULT as DEFAULT_TAXES
from protocols.documents.ffd import receipt_to_tags
from protocols.documents.model import Company, CorrectionReceipt, Item, Payments, Receipt
from protocols.documents.vat import TaxTable
from protocols.errors import ProtocolError
from protocols.fn import FnPhase, MarkingRefusal, ResultCode
from protocols.tlv import TagMap, TlvError, decode, encode
from protocols.tlv.enums import VatRate

__all__ = [
    "ATOL_30F",
    "ATOL_42FA",
    "ATOL_MODELS",
    "AtolErrorCode",
    "AtolRegister",
    "AtolTiming",
    "OpenReceipt",
    "atol_model_named",
    "request_code",
    "serve_connection",
]

ErrorCode = c.ErrorCode


class AtolErrorCode(enum.IntEnum):
    """Result codes the reference lacks (assumed numbers), as :class:`~protocols.atol.ErrorCode`
    also names them for the host's side."""

    PAYMENTS_BELOW_TOTAL = 0x45  # сумма оплат меньше итога чека
    NON_CASH_OVER_TOTAL = 0x46  # безналичные оплаты больше итога чека
    RECEIPT_CLOSED = 0x9A  # чек закрыт — операция невозможна
    FN_ERROR = 0xD0  # ошибка ФН: the ФН's result code in the extended byte


# --- timing ------------------------------------------------------------------------------------

#: A printer-less data-centre register, ATOL 42ФА (libfptr model 70, §2.3).
ATOL_42FA = RegisterModel(
    name="atol-42fa",
    title="АТОЛ 42ФА",
    model_id=70,  # §2.3 libfptr10 model ids: 42FA = 70
    baud=115_200,  # assumption: the fastest common rate (§2.3 constants go to 921600)
    tcp_latency=0.5 * MS,  # assumption: a data-centre LAN share, as for Shtrih
    byte_timeout=50 * MS,  # assumption: not used by transport v3 (one packet per write)
    status_time=5 * MS,  # assumption: §4.2 shows 1–8 ms for status over TCP (Shtrih #50, #72)
    command_time=7 * MS,  # assumption: §4.2 7 ms for a simple command (#130)
    operation_time=60 * MS,  # assumption: under the 196 ms FF46h upper bound (§4.2, #72)
    tlv_read_time=5 * MS,  # assumption: §4.2 FF3Bh 5 ms (#141)
    fn_document_time=300 * MS,  # assumption: ФН sign latency is unpublished (§4.5)
    shift_open_time=800 * MS,  # assumption: online, without the 10 s OKP wait (#158)
    shift_close_time=1_200 * MS,  # assumption: counters, no printing; §2.4 T5 40 s is a bound
    print_line=0.0,  # §4.5: 0 for printer-less data-centre devices
    header_lines=0,
    lines_per_item=0,
    footer_lines=0,
    report_lines=0,
    jitter=0.10,  # assumption, as for Shtrih
)

#: A desktop register with a thermal printer, ATOL 30Ф (libfptr model 61, §2.3).
ATOL_30F = attrs.evolve(
    ATOL_42FA,
    name="atol-30f",
    title="АТОЛ 30Ф",
    model_id=61,  # §2.3: 30F = 61
    tcp_latency=2 * MS,  # assumption: USB / RNDIS
    status_time=20 * MS,  # assumption: §4.2 10h 20 ms (#130)
    operation_time=196 * MS,  # assumption: §4.2 FF46h 196 ms (#72)
    fn_document_time=400 * MS,  # assumption (§4.5)
    shift_open_time=1_500 * MS,  # assumption
    shift_close_time=2_000 * MS,  # assumption
    print_line=25 * MS,  # assumption: ~150 mm/s thermal head (see emulator.timing)
    header_lines=8,
    lines_per_item=2,
    footer_lines=18,
    report_lines=30,
)

ATOL_MODELS: Mapping[str, RegisterModel] = MappingProxyType(
    {m.name: m for m in (ATOL_42FA, ATOL_30F)}
)

#: Command code → the field of the model table that gives its processing time.
_COMMAND_FIELDS: Mapping[bytes, str] = MappingProxyType(
    {
        b"\x3f": "status_time",
        b"\xa4\x10": "status_time",
        b"\xa4\x20": "status_time",
        b"\xa4\x30": "status_time",
        b"\xe6": "operation_time",
        b"\xe8": "command_time",
        b"\xa4\x45": "tlv_read_time",
        b"\xa4\x46": "tlv_read_time",
        b"\x4a": "fn_document_time",
        b"\x9a": "shift_open_time",
        b"\x5a": "shift_close_time",
        b"\xd2": "status_time",  # the state of a marking check; D1h's check runs on after it
    }
)


def atol_model_named(name: str) -> RegisterModel:
    """The table of an ATOL model; ``KeyError`` names the known ones."""
    try:
        return ATOL_MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; choose from: {', '.join(ATOL_MODELS)}") from None


class AtolTiming(RegisterTiming):
    """The durations of one ATOL register: :class:`RegisterTiming` keyed by ATOL command codes
    (which overlap Shtrih's numbers with other meanings)."""

    COMMAND_FIELDS = _COMMAND_FIELDS
    SEED_PREFIX = "kassa-emulator-atol"


# --- the register ------------------------------------------------------------------------------


class CommandRefused(Exception):
    """A command answered ``55 error ext`` with a non-zero error."""

    def __init__(self, error: int, extended: int = 0) -> None:
        super().__init__(f"{error:02X}h/{extended:02X}h")
        self.error = error
        self.extended = extended


#: Receipt type (тип чека) → 1054 признак расчёта.
_OPERATIONS: Mapping[c.ReceiptType, int] = MappingProxyType(
    {
        c.ReceiptType.SALE: 1,
        c.ReceiptType.SALE_RETURN: 2,
        c.ReceiptType.PURCHASE: 3,
        c.ReceiptType.PURCHASE_RETURN: 4,
        c.ReceiptType.CORRECTION_SALE: 1,
        c.ReceiptType.CORRECTION_SALE_RETURN: 2,
        c.ReceiptType.CORRECTION_PURCHASE: 3,
        c.ReceiptType.CORRECTION_PURCHASE_RETURN: 4,
    }
)
_OPERATOR_MODES = frozenset({c.Mode.REGISTRATION, c.Mode.X_REPORTS})
_ADMIN_MODES = frozenset({c.Mode.Z_REPORTS, c.Mode.PROGRAMMING, c.Mode.FISCAL_STORAGE})
_ADMIN = frozenset({29, 30})
#: Item tags E6h gives and the receipt's totals are counted from: E8h cannot replace them.
_ITEM_TAGS_OF_E6 = frozenset({1043, 1199})
#: Receipt tags the register or its ФН forms: E8h cannot send them.
_OWN_TAGS = frozenset(
    {1209, 1018, 1054, 1059, 1020, 1031, 1081, 1215, 1216, 1217, 1115}
    | set(range(1102, 1108))
    | {1040, 1041, 1037, 1012, 1077, 1038, 1042}
)
_CORRECTION_TAGS = frozenset({1173, 1174})


@attrs.frozen
class OpenReceipt:
    """открытый чек: its type, items (предметы расчёта, 1059), payments by type, and the
    requisites E8h sent for each item and for the receipt."""

    receipt_type: c.ReceiptType
    test: bool = False  # opened in test mode: never reaches the ФН
    items: tuple[Item, ...] = ()
    payments: tuple[tuple[c.PaymentType, int], ...] = ()
    item_requisites: tuple[TagMap, ...] = ()  # one per item, the tags that replace or add
    requisites: TagMap = attrs.field(factory=dict)  # receipt-level tags that replace or add
    #: Item index → the tags of the marking code bound to it (1163, 2102, the ФН's 2106).
    markings: Mapping[int, TagMap] = attrs.field(factory=dict)

    @property
    def correction(self) -> bool:
        """A correction receipt (чек коррекции, document 31)."""
        return self.receipt_type in c.CORRECTION_TYPES

    @property
    def total(self) -> int:
        """1020 сумма расчёта so far."""
        return sum(item.sum for item in self.items)

    @property
    def paid(self) -> int:
        return sum(amount for _, amount in self.payments)


class AtolRegister:
    """One emulated ATOL register with its ФН; no I/O, time from ``clock`` (seconds).

    ``start`` is the wall clock (naive local time) when ``clock()`` read ``origin``; the wall
    clock then runs with ``clock``, so MockClock moves it too.
    """

    def __init__(
        self,
        fn: FiscalStorage,
        timing: AtolTiming,
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
        self.mode = c.Mode.SELECT
        self.operator = 0  # the password the current mode was entered with
        self.receipt: OpenReceipt | None = None
        self.last_result: FiscalResult | None = None  # the last document the ФН formed
        self._selected: bytes | None = None  # the document A4 45 chose for A4 46
        # An E8h set still being received: flags, block count, blocks so far, their data.
        self._requisite: tuple[int, int, int, bytes] | None = None
        # The register's side of the task buffer, shared by every connection.
        self.tasks = TaskBuffer()
        self.requests: dict[int, bytes] = {}  # TID → the request of the task
        self.lock = trio.Lock()  # one task at a time, whatever the connection
        self.attached: _Connection | None = None  # the newest connection, for 0xF0 packets
        self._marking_ready = 0.0  # clock reading when the running marking check is done

    # --- time and state ----------------------------------------------------------------

    def now(self) -> dt.datetime:
        """The register's wall clock."""
        return self._start + dt.timedelta(seconds=self._clock() - self._origin)

    def _timer(self) -> float:
        return self._clock() - self._origin

    def shift_expired(self) -> bool:
        """The open shift is older than the ФН's 24 hours (смена превысила 24 часа)."""
        shift = self.fn.shift
        return shift is not None and self.now() - shift.opened > self.fn.limits.max_shift

    # --- execution ---------------------------------------------------------------------

    def execute(self, payload: bytes) -> tuple[bytes, float]:
        """The answer to one application request and the time before the task completes."""
        duration = self.timing.command(request_code(payload))
        try:
            request = c.decode_request(payload)
        except AtolError:
            return _refusal(ErrorCode.WRONG_FORMAT), duration
        handler = _HANDLERS[type(request)]
        try:
            answer, printed = handler(self, request)
        except CommandRefused as exc:
            return _refusal(exc.error, exc.extended), duration
        except FnModelError as exc:
            return _fn_refusal(exc), duration
        except (ProtocolError, TlvError, AtolError):
            return _refusal(ErrorCode.WRONG_FORMAT), duration
        return answer.encode(), duration + self.timing.print_lines(printed)

    def _need_mode(self, mode: c.Mode) -> None:
        if self.mode != mode:
            raise CommandRefused(ErrorCode.WRONG_MODE)

    def _need_receipt(self) -> OpenReceipt:
        self._need_mode(c.Mode.REGISTRATION)
        if self.receipt is None:
            raise CommandRefused(AtolErrorCode.RECEIPT_CLOSED)
        return self.receipt

    def _not_expired(self) -> None:
        if self.shift_expired():
            raise CommandRefused(ErrorCode.SHIFT_OVER_24_HOURS)

    def _report_lines(self) -> int:
        return self.model.report_lines if self.model.prints else 0

    # --- handlers: each returns (answer, printed lines) ----------------------------------

    def _status(self, r: c.GetDeviceStatus) -> tuple[c.Answer, int]:
        fn = self.fn
        flags = c.StatusFlags.PAPER_PRESENT
        if fn.phase is FnPhase.FISCAL:
            flags |= c.StatusFlags.FISCALIZED | c.StatusFlags.FN_ACTIVE
        if fn.shift is not None:
            flags |= c.StatusFlags.SHIFT_OPEN
        receipt = self.receipt
        state = 0 if receipt is None else int(receipt.receipt_type)
        return c.DeviceStatus(
            cashier=self.operator % 100,
            number_in_hall=1,
            clock=self.now().replace(microsecond=0),
            flags=flags,
            serial_number=self.kkt_serial % 10**8,
            model=self.model.model_id,
            mode=int(self.mode),
            submode=state,
            receipt_number=(fn.shift.receipts if fn.shift else 0) % 10**4,
            shift_number=fn.last_shift_number % 10**4,
            receipt_state=state,
            receipt_total=0 if receipt is None else receipt.total % 10**10,
            port=4 if self.timing.line == "tcp" else 0,
        ), 0

    def _enter_mode(self, r: c.EnterMode) -> tuple[c.Answer, int]:
        if self.mode != c.Mode.SELECT:
            raise CommandRefused(ErrorCode.WRONG_MODE)
        if r.mode in _OPERATOR_MODES:
            allowed: frozenset[int] | range = range(1, 31)
        elif r.mode in _ADMIN_MODES:
            allowed = _ADMIN
        else:
            raise CommandRefused(ErrorCode.WRONG_MODE)
        if r.mode_password not in allowed:
            raise CommandRefused(ErrorCode.WRONG_PASSWORD)
        self.mode = c.Mode(r.mode)
        self.operator = r.mode_password
        return c.CommandAnswer(), 0

    def _exit_mode(self, r: c.ExitMode) -> tuple[c.Answer, int]:
        if self.receipt is not None:
            raise CommandRefused(ErrorCode.RECEIPT_OPEN)
        self.mode = c.Mode.SELECT
        return c.CommandAnswer(), 0

    def _open_shift(self, r: c.OpenShift) -> tuple[c.Answer, int]:
        self._need_mode(c.Mode.REGISTRATION)
        if self.fn.shift is not None:
            raise CommandRefused(ErrorCode.SHIFT_OPEN)
        self.last_result = self.fn.open_shift(self.now(), timer=self._timer())
        return c.CommandAnswer(), self._report_lines()

    def _close_shift(self, r: c.CloseShift) -> tuple[c.Answer, int]:
        self._need_mode(c.Mode.Z_REPORTS)
        if self.fn.shift is None:
            raise CommandRefused(ErrorCode.WRONG_MODE)
        self.last_result = self.fn.close_shift(self.now(), timer=self._timer())
        return c.CommandAnswer(), self._report_lines()

    def _open_receipt(self, r: c.OpenReceipt) -> tuple[c.Answer, int]:
        self._need_mode(c.Mode.REGISTRATION)
        if self.receipt is not None:
            raise CommandRefused(ErrorCode.RECEIPT_OPEN)
        if self.fn.shift is None:
            raise CommandRefused(ErrorCode.WRONG_MODE)
        self._not_expired()
        test = bool(r.flags & c.FLAG_TEST_MODE)
        receipt = OpenReceipt(receipt_type=r.receipt_type, test=test)
        if not test:
            self.fn.begin_receipt(self.now(), correction=receipt.correction, timer=self._timer())
        self.receipt = receipt
        self._requisite = None
        return c.CommandAnswer(), 0

    def _register_item(self, r: c.RegisterItem) -> tuple[c.Answer, int]:
        receipt = self._need_receipt()
        self._not_expired()
        if r.quantity == 0:
            raise CommandRefused(ErrorCode.WRONG_QUANTITY)
        vat = self.taxes.rate_of(r.tax) if r.tax else int(VatRate.NONE)
        if vat is None:
            raise CommandRefused(ErrorCode.WRONG_FORMAT)
        gross = _amount(r.price, r.quantity)
        amount = gross + r.discount if r.surcharge else gross - r.discount
        if amount < 0:
            raise CommandRefused(ErrorCode.WRONG_PRICE)
        price = r.price if amount == gross else _amount(amount, 1 / r.quantity)
        item = Item(
            name=r.name or "Товар",
            price=price,
            quantity=r.quantity,
            sum=amount,
            vat=vat,
            payment_method=4,  # полный расчёт
            payment_subject=1,  # товар
        )
        self.receipt = attrs.evolve(
            receipt,
            items=(*receipt.items, item),
            item_requisites=(*receipt.item_requisites, {}),
        )
        return c.CommandAnswer(), 0

    def _write_requisite(self, r: c.WriteRequisite) -> tuple[c.Answer, int]:
        receipt = self._need_receipt()
        pending, self._requisite = self._requisite, None
        if r.block_number == 0:
            data = r.data
        elif pending is not None and pending[:3] == (r.flags, r.block_count, r.block_number):
            data = pending[3] + r.data
        else:
            raise CommandRefused(ErrorCode.WRONG_FORMAT)
        if r.block_number + 1 < r.block_count:
            self._requisite = (r.flags, r.block_count, r.block_number + 1, data)
            return c.CommandAnswer(), 0
        data, scanned = take_scanned_codes(data)
        fields = decode(data).fields
        if len(scanned) > 1 or (scanned and not r.for_item):
            raise CommandRefused(ErrorCode.WRONG_FORMAT)
        if r.for_item:
            if not receipt.items:
                raise CommandRefused(ErrorCode.ITEM_NOT_FOUND)
            if fields.keys() & (_ITEM_TAGS_OF_E6 | _OWN_TAGS):
                raise CommandRefused(ErrorCode.WRONG_FORMAT)
            receipt = self._bind_marking(receipt, fields, scanned[0] if scanned else None)
            *before, last = receipt.item_requisites
            self.receipt = attrs.evolve(receipt, item_requisites=(*before, {**last, **fields}))
            return c.CommandAnswer(), 0
        if fields.keys() & _OWN_TAGS or (
            fields.keys() & _CORRECTION_TAGS and not receipt.correction
        ):
            raise CommandRefused(ErrorCode.WRONG_FORMAT)
        if 1055 in fields:
            self._check_tax_system(fields[1055])
        self.receipt = attrs.evolve(receipt, requisites={**receipt.requisites, **fields})
        return c.CommandAnswer(), 0

    def _bind_marking(
        self, receipt: OpenReceipt, fields: TagMap, scanned: bytes | None
    ) -> OpenReceipt:
        """The marking of E8h's item tags: a КМ (2000, ``scanned``) or a 1163 that an accepted
        check matches binds it to the last item; the receipt with the item's marking."""
        if 2106 in fields and self.fn.marking_policy.host_results is HostResults.REFUSE:
            raise CommandRefused(ErrorCode.WRONG_FORMAT)
        index = len(receipt.items) - 1
        bound = receipt.markings.get(index)
        markable = bound is None and _OPERATIONS[receipt.receipt_type] in MARKING_OPERATIONS
        check: MarkingCheck | None = None
        if scanned is not None:
            code = _readable(scanned)
            product = code.product_tags
            if not markable or product is None:
                raise CommandRefused(ErrorCode.WRONG_FORMAT)
            check = self.fn.accepted_marking(lambda accepted: accepted.code.raw == code.raw)
            tags: TagMap = {1163: product}
            if check is not None:
                tags = bound_tags(code, check.processing_mode, int(check.result))
        elif markable and 1163 in fields:
            given = fields[1163]
            check = self.fn.accepted_marking(lambda accepted: accepted.code.product_tags == given)
            if check is None:
                return receipt
            tags = bound_tags(check.code, check.processing_mode, int(check.result))
        else:
            tags = bound or {}
        if conflicting_tags({**receipt.item_requisites[index], **fields}, tags):
            raise CommandRefused(ErrorCode.WRONG_FORMAT)
        if check is not None:
            self.fn.take_marking(check)
        if not tags:
            return receipt
        return attrs.evolve(receipt, markings={**receipt.markings, index: tags})

    def _begin_marking_check(self, r: c.BeginMarkingCheck) -> tuple[c.Answer, int]:
        self._need_mode(c.Mode.REGISTRATION)
        code = _readable(r.marking_code)
        if r.processing_mode != 0 or r.planned_status not in PLANNED_STATUSES:
            raise CommandRefused(ErrorCode.WRONG_FORMAT)
        decode(r.tlv)  # whole TLVs: 2108, 1023, 1291 for measured goods
        check = self.fn.check_marking(code, r.planned_status, r.processing_mode)
        took = self.timing.marking_check(asked=check.asked, answered=check.answered)
        self._marking_ready = self._clock() + took
        return c.CommandAnswer(), 0

    def _marking_status(self, r: c.GetMarkingCheckStatus) -> tuple[c.Answer, int]:
        check = self._checked()
        if self._clock() < self._marking_ready:
            return c.MarkingCheckPending(), 0
        return c.MarkingCheckResult(
            local_status=int(check.local),
            local_reason=int(check.code.reason),
            code_type=int(check.code.code_type),
            check_result=int(check.result),
            online=check.online_part(with_result=False),
        ), 0

    def _accept_marking(self, r: c.AcceptMarkingCode) -> tuple[c.Answer, int]:
        return self._decide_marking(accept=True)

    def _decline_marking(self, r: c.DeclineMarkingCode) -> tuple[c.Answer, int]:
        return self._decide_marking(accept=False)

    def _decide_marking(self, *, accept: bool) -> tuple[c.Answer, int]:
        self._need_mode(c.Mode.REGISTRATION)
        self._checked()
        if self._clock() < self._marking_ready:
            raise FnModelError(MarkingRefusal.WRONG_SEQUENCE, "the check has not finished")
        check = self.fn.decide_marking(accept=accept)
        return c.MarkingDecision(check_result=int(check.result)), 0

    def _checked(self) -> MarkingCheck:
        """The check awaiting its decision: D0h with A1h when there is none."""
        check = self.fn.marking_pending
        if check is None:
            raise FnModelError(MarkingRefusal.WRONG_SEQUENCE, "no marking code is being checked")
        return check

    def _check_tax_system(self, value: object) -> None:
        """1055 must be one of the tax systems the register was registered with (1062)."""
        registration = self.fn.registration
        allowed = 0 if registration is None else registration.tax_systems
        if not isinstance(value, int) or value <= 0 or value & (value - 1) or not value & allowed:
            raise CommandRefused(c.ErrorCode.FN_ERROR, ResultCode.WRONG_PARAMETER)

    def _payment(self, r: c.Payment) -> tuple[c.Answer, int]:
        receipt = self._need_receipt()
        if r.amount == 0:
            raise CommandRefused(ErrorCode.WRONG_PRICE)
        receipt = attrs.evolve(receipt, payments=(*receipt.payments, (r.payment_type, r.amount)))
        self.receipt = receipt
        remainder = max(0, receipt.total - receipt.paid)
        change = max(0, receipt.paid - receipt.total)
        return c.PaymentAnswer(remainder=remainder % 10**10, change=change % 10**10), 0

    def _close_receipt(self, r: c.CloseReceipt) -> tuple[c.Answer, int]:
        receipt = self._need_receipt()
        self._not_expired()
        if not receipt.items:
            raise CommandRefused(ErrorCode.ITEM_NOT_FOUND)
        payments = list(receipt.payments)
        left = receipt.total - receipt.paid
        amount = r.amount if r.amount else max(0, left)
        if amount:
            payments.append((r.payment_type, amount))
        sums = dict.fromkeys(c.PaymentType, 0)
        for kind, paid in payments:
            sums[kind] += paid
        total = receipt.total
        paid = sum(sums.values())
        if paid < total:
            raise CommandRefused(AtolErrorCode.PAYMENTS_BELOW_TOTAL)
        change = paid - total
        if change > sums[c.PaymentType.CASH]:
            raise CommandRefused(AtolErrorCode.NON_CASH_OVER_TOTAL)
        lines = self.timing.model.header_lines + self.timing.model.footer_lines
        lines += self.timing.model.lines_per_item * len(receipt.items)
        printed = lines if self.model.prints else 0
        if receipt.test:
            self.receipt = None
            return c.CommandAnswer(), printed
        registration = self.fn.registration
        if registration is None:
            raise CommandRefused(AtolErrorCode.FN_ERROR, ResultCode.WRONG_STATE)
        model: type[Receipt] = CorrectionReceipt if receipt.correction else Receipt
        document = model(
            operation=_OPERATIONS[receipt.receipt_type],
            items=receipt.items,
            payments=Payments(
                cash=sums[c.PaymentType.CASH] - change,
                electronic=sums[c.PaymentType.ELECTRONIC],
                prepaid=sums[c.PaymentType.ADVANCE],
                credit=sums[c.PaymentType.CREDIT],
                provision=sums[c.PaymentType.OTHER],
            ),
            company=Company(
                inn=registration.user_inn,
                tax_system=registration.tax_systems & -registration.tax_systems,
                place=registration.place or "emulator",
                address=registration.address,
            ),
            total=total,
        )
        self.fn.marking_settled()
        unchecked = self.fn.marking_policy.host_results is HostResults.REFUSE
        tags = receipt_to_tags(document)
        item_tags = tags[1059]
        assert isinstance(item_tags, list)
        for index, (line, extra) in enumerate(zip(item_tags, receipt.item_requisites, strict=True)):
            assert isinstance(line, dict)
            line.update(extra)
            line.update(receipt.markings.get(index, {}))
            if unchecked:
                mark_unchecked_line(line)
        tags.update(receipt.requisites)
        for own in (1054, 1020, 1018):  # the ФН writes its own header tags
            tags.pop(own, None)
        self.fn.add_tlv(encode(tags))
        self.last_result = self.fn.finish_receipt(
            self.now(), document.operation, total, timer=self._timer()
        )
        self.receipt = None
        self._requisite = None
        return c.CommandAnswer(), printed

    def _cancel_receipt(self, r: c.CancelReceipt) -> tuple[c.Answer, int]:
        receipt = self._need_receipt()
        if not receipt.test:
            self.fn.cancel_document()
        self.receipt = None
        self._requisite = None
        return c.CommandAnswer(), 0

    def _shift_state(self, r: c.GetShiftState) -> tuple[c.Answer, int]:
        shift = self.fn.shift
        return c.ShiftState(
            shift_open=shift is not None,
            shift_number=self.fn.last_shift_number & 0xFFFF,
            receipt_number=(shift.receipts if shift else 0) & 0xFFFF,
        ), 0

    def _ofd_status(self, r: c.GetOfdExchangeStatus) -> tuple[c.Answer, int]:
        unsent = self.fn.unsent()
        since = self.fn.unsent_since
        flags = c.OfdExchangeFlags.UNSENT_DOCUMENTS if unsent else c.OfdExchangeFlags.NONE
        return c.OfdExchangeStatus(
            flags=flags,
            reading_message=False,
            unsent_count=min(len(unsent), 0xFFFF),
            first_unsent_number=unsent[0] if unsent else 0,
            first_unsent_time=None if since is None else since.replace(second=0, microsecond=0),
        ), 0

    def _fn_status(self, r: c.GetFnStatus) -> tuple[c.Answer, int]:
        fn = self.fn
        document = fn.open_document
        current = 0 if document is None else (0x14 if document.code == 31 else 0x04)
        return c.FnStatus(
            phase=int(fn.phase),
            current_document=current,
            document_data=document is not None and bool(document.data),
            shift_open=fn.shift is not None,
            warnings=int(fn.warnings(self.now())) & 0xFF,
            last_document_time=fn.last_time,
            fn_number=fn.number,
            last_fd_number=fn.last_fd_number,
        ), 0

    def _fn_expiry(self, r: c.GetFnExpiry) -> tuple[c.Answer, int]:
        """срок действия ФН: the keys' last day, as the emulator's Shtrih FF03h answers it."""
        fn = self.fn
        expires = fn.key_expires
        if expires is None:
            raise FnModelError(ResultCode.WRONG_STATE, "the ФН is not registered: no keys yet")
        return c.FnExpiry(
            expires=expires.date(),
            registrations_left=max(0, 30 - fn.registrations),
            registrations_done=max(0, fn.registrations - 1),
        ), 0

    def _document_info(self, r: c.GetDocumentInfo) -> tuple[c.Answer, int]:
        document = self.fn.read_document(r.number)
        self._selected = document
        kind = int.from_bytes(document[:2], "little")
        return c.DocumentInfo(document_type=kind, size=min(len(document), 0xFFFF)), 0

    def _document_data(self, r: c.ReadDocumentData) -> tuple[c.Answer, int]:
        if self._selected is None:
            raise CommandRefused(ErrorCode.NO_MORE_DATA)
        if len(self._selected) > MAX_PAYLOAD - 2:  # it does not fit one answer
            raise CommandRefused(ErrorCode.WRONG_LENGTH)
        return c.DocumentData(tlv=self._selected), 0


def request_code(payload: bytes) -> bytes:
    """The command code of an application request: one byte, or two for the A4 xx family."""
    return bytes(payload[2:4]) if payload[2:3] == b"\xa4" else bytes(payload[2:3])


def _amount(price: int, quantity: Decimal) -> int:
    """price × quantity to the kopeck, half up."""
    return int((price * quantity).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _readable(raw: bytes) -> MarkingCode:
    try:
        return parse_marking_code(raw)
    except UnreadableCode:
        raise CommandRefused(ErrorCode.WRONG_FORMAT) from None


def _refusal(error: int, extended: int = 0) -> bytes:
    return c.CommandAnswer(error=error, extended=extended).encode()


def _fn_refusal(exc: FnModelError) -> bytes:
    """A ФН refusal as ATOL answers it: 88h for the 24-hour rule, else D0h + the ФН's code."""
    if exc.code is ResultCode.SHIFT_OVER_24H:
        return _refusal(ErrorCode.SHIFT_OVER_24_HOURS, int(exc.code))
    return _refusal(AtolErrorCode.FN_ERROR, int(exc.code))


_Handler = Callable[[AtolRegister, Any], tuple[c.Answer, int]]
_HANDLERS: Mapping[type[c.Request], _Handler] = MappingProxyType(
    {
        c.GetDeviceStatus: AtolRegister._status,
        c.EnterMode: AtolRegister._enter_mode,
        c.ExitMode: AtolRegister._exit_mode,
        c.OpenShift: AtolRegister._open_shift,
        c.CloseShift: AtolRegister._close_shift,
        c.OpenReceipt: AtolRegister._open_receipt,
        c.RegisterItem: AtolRegister._register_item,
        c.Payment: AtolRegister._payment,
        c.CloseReceipt: AtolRegister._close_receipt,
        c.CancelReceipt: AtolRegister._cancel_receipt,
        c.GetShiftState: AtolRegister._shift_state,
        c.GetOfdExchangeStatus: AtolRegister._ofd_status,
        c.GetDocumentInfo: AtolRegister._document_info,
        c.ReadDocumentData: AtolRegister._document_data,
        c.GetFnStatus: AtolRegister._fn_status,
        c.GetFnExpiry: AtolRegister._fn_expiry,
        c.WriteRequisite: AtolRegister._write_requisite,
        c.BeginMarkingCheck: AtolRegister._begin_marking_check,
        c.GetMarkingCheckStatus: AtolRegister._marking_status,
        c.AcceptMarkingCode: AtolRegister._accept_marking,
        c.DeclineMarkingCode: AtolRegister._decline_marking,
    }
)


def answer_failed(answer: bytes) -> bool:
    """A ``55 error …`` answer with a non-zero error: the task ends in A4."""
    return len(answer) >= 2 and answer[0] == 0x55 and answer[1] != 0


# --- the link on a trio stream -------------------------------------------------------------


class _RegisterLink(DeviceConnection):
    """A connection's link state over the register's own task buffer."""

    def __init__(self, buffer: TaskBuffer) -> None:
        super().__init__()
        self._buffer = buffer


class _Connection:
    """One host connection: the link, the stream, a write lock and the executor's wake-up."""

    def __init__(self, stream: trio.abc.Stream, register: AtolRegister) -> None:
        self.stream = stream
        self.register = register
        self.link = _RegisterLink(register.tasks)
        self.closed = False
        self.wakeup = trio.Event()
        self._write_lock = trio.Lock()
        self.pacer = Pacer()

    async def write(self, data: bytes) -> None:
        if not data or self.closed:
            return
        await self.pacer.sleep(self.register.timing.wire(len(data)))
        async with self._write_lock:
            with trio.CancelScope(shield=True):
                try:
                    await self.stream.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self.closed = True

    async def read(self) -> None:
        """Feed what arrives to the link, answer it, hand new tasks to the executor."""
        while not self.closed:
            try:
                data = await self.stream.receive_some()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                self.closed = True
                break
            self.link.receive_data(bytes(data))
            added = False
            while (event := self.link.next_event()) is not NEED_DATA:
                if isinstance(event, TaskAdded):
                    self.register.requests[event.tid] = event.request
                    added = True
            await self.write(self.link.data_to_send())
            if added:
                self.wakeup.set()
        self.wakeup.set()

    async def execute(self) -> None:
        """Run the buffer's pending tasks in order; after the host leaves, finish them."""
        while True:
            self.wakeup = trio.Event()
            while await self._run_next():
                pass
            if self.closed:
                return
            await self.wakeup.wait()

    async def _run_next(self) -> bool:
        register = self.register
        async with register.lock:
            tid = self.link.next_pending()
            if tid is None:
                return False
            self.link.send(TaskStarted(tid=tid))
            began = trio.current_time()  # the model's time includes the emulator's own work
            answer, delay = register.execute(register.requests.pop(tid))
            try:
                await self.pacer.sleep(delay - (trio.current_time() - began))
            finally:
                # The work is done in the ФН: record it even if this run is cancelled.
                frame = self.link.send(
                    TaskCompleted(tid=tid, answer=answer, error=answer_failed(answer))
                )
        attached = register.attached
        if frame and attached is not None:
            await attached.write(frame)
        return True


async def serve_connection(stream: trio.abc.Stream, register: AtolRegister) -> None:
    """Serve one host on ``stream`` until it closes; the register keeps its state after."""
    connection = _Connection(stream, register)
    register.attached = connection
    async with stream, trio.open_nursery() as nursery:
        nursery.start_soon(connection.read)
        nursery.start_soon(connection.execute)
    if register.attached is connection:
        register.attached = None
