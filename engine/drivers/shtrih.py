"""The Shtrih-M register driver (драйвер ККТ «Штрих-М»): протокол ККТ v1.16/v1.17, link v1 or v2.

:class:`ShtrihDriver` speaks :mod:`protocols.shtrih` from the host's side over any
``trio.abc.Stream``: one command at a time, each sent as a :class:`~protocols.shtrih.CommandFrame`
through :class:`~protocols.shtrih.LinkV1Host` (ENQ/ACK, STX frames) or
:class:`~protocols.shtrih.LinkV2Host` (numbered 0x8F packets), whose retries it drives by the
timer the link names. Passwords: every command goes with ``password``, 30 by default, the
system administrator that the FFxxh family and the Z report need (registers.md §1.5).

Timeouts (registers.md §1.1, §1.2, §4.3):

- :data:`BYTE_TIMEOUT`, 100 ms between the bytes of one frame: the register's byte timeout is
  50–100 ms (§1.1) and JavaPOS waits 100 ms (§1.2). A partial frame older than that is dropped.
- :data:`LINK_TIMEOUT`, 500 ms for the register's reaction to an ENQ, a frame or a v2 ping: it
  answers one byte timeout (≤ 100 ms) after the last byte (§1.2 rule 5), a full 258-byte frame
  takes 0.27 s at 9600 baud (§4.1), and pyshtrih gives a register 0.5 s to show itself (§1.2).
  Lines slower than 9600 baud need more.
- :data:`ANSWER_REPEAT`, 1 s of silence while a command runs before the host asks again: an ENQ
  on v1 (the register answers ACK while it works), the same packet on v2 (which the register
  never executes twice, §1.3). Status reads take ≤ 25 ms and a receipt line ≤ 196 ms (§4.2),
  so a repeat seldom meets a command still running, and a lost frame costs a second, not the
  command's whole timeout.
- The command's own timeout, ``REGISTRY[code].timeout_ms`` (§4.3: the larger of OPOS and
  JavaPOS, e.g. 65 s for 41h and 120 s for E0h), plus one link timeout for the handshake, is
  the deadline of the whole exchange. The links' retry budgets are sized so that the deadline,
  not the count, ends the wait.

How a receipt travels (what is not here cannot be carried, and is refused with its field path
before anything is sent, as :class:`NotCarried`):

- 10h first: a shift closed (mode 4), over 24 hours (mode 3) or a document open (mode 8) is
  refused at once, as SHIFT_CLOSED, SHIFT_EXPIRED or DOCUMENT_OPEN. FF46h would otherwise add
  its line to a receipt a lost session left open.
- Marking codes (FFD 1.2) of a sale or its refund are checked before the receipt opens
  (:mod:`engine.drivers.marking`): FF69h 2 clears what a lost session left, then FF61h and
  FF69h accept (or reject, and the receipt stops) each code; FF67h binds it to its line after
  that line's FF4Dh. 2106 is the ФН's: the driver never sends one.
- A correction receipt (чек коррекции, 31) opens with FF35h; a receipt opens with its first line.
- FF46h per item: 1054, 1023 (six decimals), 1079, 1043 (within a kopeck of price × quantity,
  as the register demands), 1200 when given, the tax bit, 1214, 1212 and 1030 when it fits
  128 bytes of Windows-1251 and does not start with ``//`` (which the register strips). The tax
  byte comes from the register's tax table (:mod:`protocols.shtrih.taxes`, the 2026 firmware's
  unless configured): a rate the table lacks is refused with its path.
- FF4Dh per item tag that FF46h does not carry, one tag (with its repeats) per call: 2108,
  1163 and 2003/2102/2115, 1222/1223, 1224/1226, 1191, 1260, 1291, 1229–1231, and 1030
  when FF46h could not hold the name.
- FF0Ch per receipt tag the close does not carry and the register does not write: 1021/1203,
  1008, 1256, 1048, 1117, 1057, 1192, 1084, 1270, 1261, 1011, 1036, 1125, 1234, and 1173/1174
  of a correction. At most 250 bytes of TLV per call (§4.4).
- FF45h closes it with the payments (sum 1 cash 1031, 2 electronic 1081, 14 prepaid 1215,
  15 credit 1216, 16 provision 1217), the totals of the six rates FF45h has fields for (20 %,
  10 %, 0 %, no VAT, 20/120, 10/110; the register forms the others) and the tax system (1055,
  one bit). The register and its ФН write 1209, 1018, 1187, 1009 (from the
  registration), 1054, 1020 (the sum of the lines: a receipt whose 1020 differs is refused),
  the payment sums, the VAT totals 1102–1107 and the fiscal header themselves.
- A refusal after the receipt opened cancels it (88h) before it is raised; a lost link leaves it
  to the engine's recovery. The FD number and ФП come from FF45h's answer; the document is then
  read back with FF3Ah/FF3Bh exactly as the ФН archived it.

Other choices:

- :meth:`ShtrihDriver.status` reads 11h (mode, clock, last closed shift), FF01h (ФН number,
  shift, last FD, open document, warnings) and FF39h (the OFD queue). The open shift's number
  (1038) is 11h's last closed shift + 1, since no status command carries it; a shift is
  ``shift_expired`` when the mode says 3. With a receipt open the mode says 8 and hides expiry.
- Refusals: 4Eh or the ФН's 16h is SHIFT_EXPIRED; 4Ah DOCUMENT_OPEN; the ФН's 05h, 06h, 12h,
  14h and 15h FN_EXHAUSTED; 73h (wrong mode) is read with 11h: mode 4 makes it SHIFT_CLOSED,
  mode 3 SHIFT_EXPIRED; the ФН's 02h (wrong state) is read with FF01h: a document open makes
  a command that would start one DOCUMENT_OPEN, a shift closed SHIFT_CLOSED. Error codes
  01h–20h are the ФН's own (§1.7) and also go in ``fn_code``.
- 50h (the previous command is still printing, §1.8) is not a refusal: the driver polls 10h
  until submode 5 ends, as fr_drv_ng's WaitForPrinting does, and sends the command again.
- The FD number of a shift report is FF01h's last FD read right after E0h or 41h.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import partial
from typing import Final, TypeVar

import attrs
import trio

from engine.drivers.base import (
    Fiscalized,
    LinkLost,
    RefusalReason,
    RegisterRefused,
    RegisterStatus,
)
from engine.drivers.marking import (
    CHECKED_OPERATIONS,
    MarkingFailed,
    check_failed,
    code_to_check,
    marking_code,
)
from engine.drivers.paths import (
    ITEM_PATHS,
    RECEIPT_PATHS,
    VAT_RATE,
    Gather,
    NotCarried,
    join,
)
from protocols.documents.ffd import DocumentError, receipt_to_tags
from protocols.documents.model import (
    CorrectionReceipt,
    Item,
    Receipt,
)
from protocols.documents.vat import TaxTable, vat_totals
from protocols.fn import OnlineCheckCode
from protocols.shtrih import (
    NEED_DATA,
    REGISTRY,
    AnswerFrame,
    CommandFrame,
    LinkV1Host,
    LinkV2Host,
    ShtrihError,
    Timer,
)
from protocols.shtrih import commands as c
from protocols.shtrih.codes import ErrorCode, MarkingDecision, Mode, Submode, describe_error
from protocols.shtrih.taxes import DEFAULT as DEFAULT_TAXES
from protocols.shtrih.taxes import LEGACY as LEGACY_TAXES
from protocols.tlv import TagMap, TlvError, encode
from transports.errors import TransportError
from transports.tcp import SocketWire

__all__ = [
    "ANSWER_REPEAT",
    "BYTE_TIMEOUT",
    "LINK_TIMEOUT",
    "MAX_TLV",
    "NotCarried",
    "ShtrihDriver",
]

#: Seconds between the bytes of one frame (the register's byte timeout, §1.1).
BYTE_TIMEOUT: Final = 0.1
#: Seconds for the register's reaction to an ENQ, a frame or a ping (§1.2).
LINK_TIMEOUT: Final = 0.5
#: Seconds of silence while a command runs before the host asks again (ENQ, or the packet).
ANSWER_REPEAT: Final = 1.0
#: TLV bytes one FF0Ch or FF4Dh carries (§4.4).
MAX_TLV: Final = 250
#: Seconds between two 10h polls while the register prints, and the longest wait for it.
PRINT_POLL: Final = 0.1
PRINT_WAIT: Final = 60.0
_PRINT_RETRIES = 3
#: The longest deadline any command gets; the links' retry budgets cover it at the byte timeout.
_LONGEST = max(spec.timeout_ms for spec in REGISTRY.values()) / 1000 + LINK_TIMEOUT
_LINK_RETRIES = math.ceil(_LONGEST / BYTE_TIMEOUT)
_DEPARTMENT = 1  # отдел: Kassa does not use departments
_DOCUMENT_HEADER = struct.Struct("<HH")
_CHECK_RESULT = 2106  # результат проверки сведений о товаре: the ФН writes it, never the host


#: FF45h's six tax sums, in the order of the register's first six tax groups.
_TAX_GROUPS = tuple(sorted(LEGACY_TAXES.codes, key=LEGACY_TAXES.codes.__getitem__))
#: Receipt tags the register or its ФН writes, or that FF46h and FF45h carry.
_REGISTER_WRITES = frozenset(
    {1209, 1018, 1055, 1187, 1009, 1054, 1059, 1020, 1031, 1081, 1215, 1216, 1217, 1115}
    | set(range(1102, 1108))
)
#: Item tags FF46h carries whatever the item (1030 and 1200 depend on it).
_FF46_TAGS = frozenset({1023, 1079, 1043, 1199, 1214, 1212})
#: ФН result codes that mean the register cannot form documents any more (FN_EXHAUSTED).
_EXHAUSTED = frozenset(
    {
        ErrorCode.FN_LIFETIME_OVER,
        ErrorCode.FN_ARCHIVE_FULL,
        ErrorCode.FN_CRYPTO_RESOURCE_EXHAUSTED,
        ErrorCode.FN_STORAGE_EXHAUSTED,
        ErrorCode.FN_OFD_WAIT_EXHAUSTED,
    }
)
_LAST_FN_CODE = 0x20  # error bytes 01h–20h are the ФН's result codes (§1.7)
#: Requests that start a document: a ФН 02h to them while none of ours is open is DOCUMENT_OPEN.
_STARTERS = (c.OperationV2, c.BeginCorrectionReceipt, c.OpenShift, c.ZReport)
_A = TypeVar("_A", bound=c.Answer)


class _Broken(Exception):
    """No usable answer: the driver closes the link and raises LinkLost."""


# --- the receipt as requests --------------------------------------------------------------------


#: The model field behind each FF46h field, for the path of a value FF46h cannot hold.
_FF46_FIELDS: Mapping[str, str] = {
    "operation": "",
    "quantity": "quantity",
    "price": "price",
    "amount": "sum",
    "tax_amount": "vat_sum",
    "payment_method": "payment_method",
    "payment_object": "payment_subject",
    "name": "name",
}
_PAYMENT_SLOTS = (
    ("cash", 0),
    ("electronic", 1),
    ("prepaid", 13),
    ("credit", 14),
    ("provision", 15),
)


@attrs.frozen
class _Line:
    """One item: its FF46h, the FF4Dh TLVs that follow it, and the КМ FF67h binds to it."""

    operation: c.OperationV2
    payload: bytes  # the FF46h as sent: encoded once, when it was checked
    tlvs: tuple[bytes, ...]
    bind: c.BindMarking | None = None


@attrs.frozen
class _Check:
    """FF61h for one item's marking code, checked before the receipt opens."""

    path: str  # the item's marking, for a refusal
    request: c.CheckMarking


@attrs.frozen
class _Plan:
    """A receipt as the requests that carry it."""

    correction: bool
    lines: tuple[_Line, ...]
    tlvs: tuple[bytes, ...]  # FF0Ch, after the lines
    close: c.CloseReceiptV2
    checks: tuple[_Check, ...] = ()  # FF61h → FF69h each, before anything else


def _plan(receipt: Receipt, password: int, taxes: TaxTable) -> _Plan:
    """The requests for ``receipt``, or :class:`NotCarried` naming every part that cannot travel."""
    if receipt.operation not in (1, 2, 3, 4):
        raise NotCarried("operation", f"1054 = {receipt.operation!r} is not 1…4")
    if not receipt.items:
        raise NotCarried("items", "a receipt has at least one line (1059)")
    try:
        tags = receipt_to_tags(receipt)
    except DocumentError as exc:
        raise NotCarried(exc.path, exc.reason) from None
    lines = tags.get(1059)
    assert isinstance(lines, list)
    gather = Gather()
    planned: list[_Line | None] = []
    for index, (item, line) in enumerate(zip(receipt.items, lines, strict=True)):
        assert isinstance(line, dict)
        path = f"items[{index}]"
        planned.append(
            gather.part(partial(_line, receipt.operation, item, line, path, password, taxes))
        )
    total = sum(item.sum for item in receipt.items)
    if receipt.total != total:
        gather.found.append(
            NotCarried(
                "total",
                f"the register writes 1020 as the sum of the lines, {total}, not {receipt.total}",
            )
        )
    checks = [
        gather.part(partial(_check, receipt.operation, item, f"items[{index}]", password))
        for index, item in enumerate(receipt.items)
    ]
    rest = {number: value for number, value in tags.items() if number not in _REGISTER_WRITES}
    tlvs = gather.part(partial(_tlvs, rest, RECEIPT_PATHS, ""))
    close = gather.part(partial(_close, receipt, password))
    gather.check()
    assert tlvs is not None and close is not None
    return _Plan(
        correction=isinstance(receipt, CorrectionReceipt),
        lines=tuple(line for line in planned if line is not None),
        tlvs=tlvs,
        close=close,
        checks=tuple(check for check in checks if check is not None),
    )


def problems(receipt: Receipt, taxes: TaxTable = DEFAULT_TAXES) -> tuple[NotCarried, ...]:
    """Every part of ``receipt`` a register with ``taxes`` cannot carry; () when it can.

    Pure: the checks before fiscalization call it for each register of a group.
    """
    try:
        _plan(receipt, 30, taxes)
    except NotCarried as exc:
        return exc.every
    return ()


def receipt_requests(
    receipt: Receipt, password: int = 30, taxes: TaxTable = DEFAULT_TAXES
) -> tuple[c.Request, ...]:
    """The commands ``receipt`` takes on the wire, in order: what capacity planning counts.

    Only the receipt's own: the driver's read-back of the signed document (FF3Ah, FF3Bh) and
    any 10h check come on top. :class:`NotCarried` when the receipt cannot travel.
    """
    plan = _plan(receipt, password, taxes)
    requests: list[c.Request] = []
    if plan.checks:
        requests.append(c.AcceptMarking(password=password, decision=MarkingDecision.CLEAR))
    for check in plan.checks:
        accept = c.AcceptMarking(password=password, decision=MarkingDecision.ACCEPT)
        requests += [check.request, accept]
    requests += [c.BeginCorrectionReceipt(password=password)] * plan.correction
    for line in plan.lines:
        requests.append(line.operation)
        requests += [c.SendItemTlv(password=password, tlv=tlv) for tlv in line.tlvs]
        requests += [line.bind] if line.bind is not None else []
    requests += [c.SendTlv(password=password, tlv=tlv) for tlv in plan.tlvs]
    requests.append(plan.close)
    return tuple(requests)


def _line(
    operation: int, item: Item, tags: TagMap, path: str, password: int, taxes: TaxTable
) -> _Line:
    """FF46h for ``item`` and FF4Dh for the tags it cannot carry."""
    bit = taxes.code_of(item.vat) if isinstance(item.vat, int) else None
    if bit is None:
        raise NotCarried(
            f"{path}.vat",
            f"1199 = {item.vat!r} is not in the register's tax table {taxes.name!r} "
            f"({taxes.describe()})",
            VAT_RATE,
        )
    quantity = item.quantity
    if not isinstance(quantity, Decimal) or not quantity.is_finite() or quantity <= 0:
        raise NotCarried(f"{path}.quantity", f"{quantity!r} is not a positive quantity")
    for name in ("price", "sum"):
        value = getattr(item, name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise NotCarried(f"{path}.{name}", f"money is integer kopecks, not {value!r}")
    expected = int((item.price * quantity).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if abs(item.sum - expected) > 1:
        raise NotCarried(
            f"{path}.sum",
            f"FF46h takes a line sum within a kopeck of price × quantity ({expected}), "
            f"not {item.sum}",
        )
    carried = set(_FF46_TAGS)
    name = item.name
    if _fits_ff46(name):
        carried.add(1030)
    else:
        name = ""  # the name goes as 1030 by FF4Dh
    if item.vat_sum is not None:
        carried.add(1200)
    request = c.OperationV2(
        password=password,
        operation=operation,
        quantity=quantity,
        price=item.price,
        amount=item.sum,
        tax_amount=item.vat_sum,
        tax_rate=bit,
        department=_DEPARTMENT,
        payment_method=item.payment_method,
        payment_object=item.payment_subject,
        name=name,
    )
    try:
        payload = request.encode()
    except ShtrihError as exc:
        raise NotCarried(join(path, _FF46_FIELDS.get(exc.path, "")), exc.reason) from None
    tags = {number: value for number, value in tags.items() if number != _CHECK_RESULT}
    every = _tlvs(tags, ITEM_PATHS, path)  # each tag checked, the carried ones too
    extra = tuple(tlv for number, tlv in zip(tags, every, strict=True) if number not in carried)
    return _Line(request, payload, extra, _bind(operation, item, path, password))


def _bind(operation: int, item: Item, path: str, password: int) -> c.BindMarking | None:
    """FF67h of the item's КМ, in the receipts whose codes the ФН checks; None otherwise."""
    code = marking_code(item, path)
    if code is None or operation not in CHECKED_OPERATIONS:
        return None
    request = c.BindMarking(password=password, marking_code=code)
    try:
        request.encode()
    except ShtrihError as exc:
        raise NotCarried(f"{path}.marking.scanned", exc.reason) from None
    return request


def _check(operation: int, item: Item, path: str, password: int) -> _Check | None:
    """FF61h of the item's КМ, or None."""
    check = code_to_check(operation, item, path)
    if check is None:
        return None
    request = c.CheckMarking(
        password=password,
        planned_status=check.planned_status,
        mode=0,
        marking_code=check.code,
        tlv=check.tlv,
    )
    try:
        request.encode()
    except ShtrihError as exc:
        raise NotCarried(f"{path}.marking.scanned", exc.reason) from None
    return _Check(check.path, request)


def _fits_ff46(name: object) -> bool:
    """Whether FF46h's name field holds ``name`` exactly (the register strips a ``//``)."""
    if not isinstance(name, str) or not name or name.startswith("//"):
        return False
    try:
        encoded = name.encode("cp1251")
    except UnicodeEncodeError:
        return False
    return len(encoded) <= 128 and b"\x00" not in encoded


def _tlvs(tags: TagMap, paths: Mapping[int, str], prefix: str) -> tuple[bytes, ...]:
    """One TLV run per tag (its repeats together), each at most :data:`MAX_TLV` bytes."""
    out: list[bytes] = []
    for number, value in tags.items():
        where = join(prefix, paths.get(number, str(number)))
        try:
            raw = encode({number: value})
        except TlvError as exc:
            raise NotCarried(where, exc.reason) from None
        if len(raw) > MAX_TLV:
            raise NotCarried(where, f"{len(raw)} bytes of tag {number}; one call carries {MAX_TLV}")
        out.append(raw)
    return tuple(out)


def _close(receipt: Receipt, password: int) -> c.CloseReceiptV2:
    """FF45h: the payments in their slots, the tax totals, the tax system."""
    sums = [0] * 16
    for name, slot in _PAYMENT_SLOTS:
        value = getattr(receipt.payments, name)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 40:
            raise NotCarried(f"payments.{name}", f"{value!r} is not 0…2⁴⁰−1 kopecks")
        sums[slot] = value
    taxation = receipt.company.tax_system
    if not isinstance(taxation, int) or not 0 < taxation <= 0x20 or taxation & (taxation - 1):
        raise NotCarried("company.tax_system", f"1055 is one tax system bit, not {taxation!r}")
    totals = vat_totals((item.sum, item.vat) for item in receipt.items)
    tax_sums = tuple(totals.get(int(rate), 0) for rate in _TAX_GROUPS)
    for rate, amount in zip(_TAX_GROUPS, tax_sums, strict=True):
        if amount >= 1 << 40:
            raise NotCarried("total", f"the total of 1199 = {rate} does not fit 5 bytes")
    return c.CloseReceiptV2(
        password=password,
        payments=tuple(sums),
        rounding=0,
        tax_sums=tax_sums,
        taxation=taxation,
    )


def _name(request: c.Request) -> str:
    """A command as an error names it: only on the error path, not on every exchange."""
    return f"{type(request).__name__} ({request.CODE:02X}h)"


# --- the driver ---------------------------------------------------------------------------------


class ShtrihDriver:
    """One connection to one Shtrih-M register (протокол ККТ «Штрих-М», link v1 or v2).

    Satisfies :class:`engine.drivers.base.RegisterDriver`. After :class:`LinkLost` the stream is
    closed and every later call raises :class:`LinkLost` again: make a new driver on a new
    connection. Calls are serialised by a lock.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        version: int = 2,
        password: int = 30,
        taxes: TaxTable = DEFAULT_TAXES,
    ) -> None:
        if version not in (1, 2):
            raise ValueError(f"a Shtrih link is version 1 or 2, not {version!r}")
        if not isinstance(password, int) or not 0 <= password <= 0xFFFFFFFF:
            raise ValueError(f"a password is 4 bytes, 0…4294967295, not {password!r}")
        self._stream = stream
        #: Over TCP, frames go through the socket itself (:class:`SocketWire`).
        self._wire = SocketWire(stream) if isinstance(stream, trio.SocketStream) else None
        self._password = password
        self._taxes = taxes
        #: FF3Bh is the same bytes for every chunk of every read-back: encoded once.
        self._read_tlv = c.ReadTlv(password=password)
        self._read_tlv_payload = self._read_tlv.encode()
        self._link: LinkV1Host | LinkV2Host = (
            LinkV1Host(max_retries=_LINK_RETRIES)
            if version == 1
            else LinkV2Host(max_retries=_LINK_RETRIES)
        )
        self._lock = trio.Lock()
        self._dead = False
        self._receipt_open = False  # a receipt of ours is open in the register
        #: Our last receipt on this connection closed: the register is known to be ready for
        #: the next, so 10h need not ask (FF46h's own refusal still names a closed shift).
        self._ready = False
        #: The ФН's marking buffer was cleared on this connection: what a lost session left
        #: there is gone.
        self._cleared = False

    # --- the RegisterDriver interface ---------------------------------------------------

    async def status(self) -> RegisterStatus:
        """11h, FF01h and FF39h (and FF02h when FF01h's serial is blank)."""
        async with self._lock:
            pw = self._password
            full = await self._call(c.FullStatus(password=pw), c.FullStatusAnswer)
            fn = await self._call(c.FnStatus(password=pw), c.FnStatusAnswer)
            ofd = await self._call(c.OfdStatus(password=pw), c.OfdStatusAnswer)
            fn_number = fn.fn_serial.strip()
            if not fn_number.isdigit():
                serial = await self._call(c.FnSerial(password=pw), c.FnSerialAnswer)
                fn_number = serial.fn_serial.strip()
        mode = full.kkt_mode
        shift_open = bool(fn.shift_open)
        now = fn.date_time if full.date is None else datetime.combine(full.date, full.time)
        return RegisterStatus(
            fn_number=fn_number,
            now=now,
            shift_open=shift_open,
            shift_expired=shift_open and mode is Mode.SHIFT_EXPIRED,
            shift_number=full.last_closed_shift + int(shift_open),
            last_fd=fn.last_fd,
            document_open=mode is Mode.DOCUMENT_OPEN or fn.current_document != 0,
            unsent=ofd.queued,
            first_unsent=ofd.first_date_time if ofd.queued else None,
            fn_warnings=fn.warnings,
        )

    async def open_shift(self) -> int:
        """E0h; the FD number of the opening report (2)."""
        async with self._lock:
            await self._call(c.OpenShift(password=self._password), c.OpenShiftAnswer)
            return await self._last_fd()

    async def close_shift(self) -> int:
        """41h, the Z report; the FD number of the closing report (5)."""
        async with self._lock:
            self._ready = False
            await self._call(c.ZReport(password=self._password), c.ZReportAnswer)
            return await self._last_fd()

    async def fiscalize(
        self, receipt: Receipt | CorrectionReceipt, *, sell_failed_marking: bool = False
    ) -> Fiscalized:
        """Check the marking codes, open, fill and close the receipt; read back what the ФН
        archived.

        Nothing is sent for a receipt with a part that cannot be carried (:class:`NotCarried`).
        A code whose check fails stops it before it opens (:class:`MarkingFailed`), unless
        ``sell_failed_marking``. A refusal once the receipt is open cancels it (88h) before
        it is raised.
        """
        plan = _plan(receipt, self._password, self._taxes)
        pw = self._password
        async with self._lock:
            if not self._ready:
                await self._ready_for_receipt()
            self._ready = False
            await self._check_markings(plan.checks, sell_failed_marking)
            try:
                if plan.correction:
                    begin = c.BeginCorrectionReceipt(password=pw)
                    await self._call(begin, c.BeginCorrectionReceiptAnswer)
                    self._receipt_open = True
                for line in plan.lines:
                    await self._call(line.operation, c.OperationV2Answer, line.payload)
                    self._receipt_open = True
                    for tlv in line.tlvs:
                        await self._call(c.SendItemTlv(password=pw, tlv=tlv), c.SendItemTlvAnswer)
                    if line.bind is not None:
                        await self._call(line.bind, c.BindMarkingAnswer)
                for tlv in plan.tlvs:
                    await self._call(c.SendTlv(password=pw, tlv=tlv), c.SendTlvAnswer)
                closed = await self._call(plan.close, c.CloseReceiptV2Answer)
            except RegisterRefused:
                if self._receipt_open:
                    await self._cancel_after_refusal()
                raise
            finally:
                self._receipt_open = False
            try:
                document = await self._read_document(closed.fd_number)
            except RegisterRefused as exc:  # signed, yet not read: in doubt, never "refused"
                await self._die()
                raise LinkLost(
                    f"FD {closed.fd_number} was signed, then reading it back was refused: {exc}"
                ) from exc
            self._ready = True
        return Fiscalized(closed.fd_number, document, closed.fiscal_sign)

    async def _check_markings(self, checks: Sequence[_Check], sell_failed: bool) -> None:
        """FF61h, then FF69h to accept or reject, for each code; the ФН keeps what it accepts
        for FF67h. A failed check clears what was accepted (FF69h 2) and raises.

        The ФН's marking buffer is cleared first (FF69h 2): a lost session may have left a
        code checked and undecided there, which would make FF61h refused (A1h), and the close
        of any receipt, with codes or not: so the first receipt of a connection clears it too.
        """
        pw = self._password
        clear = c.AcceptMarking(password=pw, decision=MarkingDecision.CLEAR)
        if checks:
            await self._call(clear, c.AcceptMarkingAnswer)
        elif not self._cleared:  # a register without marking codes refuses: that is fine
            await self._answer(clear, c.AcceptMarkingAnswer)
        self._cleared = True
        for check in checks:
            answer = await self._call(check.request, c.CheckMarkingAnswer)
            flags = answer.local_status
            if (
                answer.fn_answer_code == OnlineCheckCode.ANSWERED
                and answer.check_result is not None
            ):
                flags = answer.check_result
            if check_failed(flags) and not sell_failed:
                for decision in (MarkingDecision.REJECT, MarkingDecision.CLEAR):
                    await self._call(
                        c.AcceptMarking(password=pw, decision=decision), c.AcceptMarkingAnswer
                    )
                raise MarkingFailed(check.path, flags)
            accept = c.AcceptMarking(password=pw, decision=MarkingDecision.ACCEPT)
            await self._call(accept, c.AcceptMarkingAnswer)

    async def cancel_receipt(self) -> None:
        """88h; no receipt open (73h) is success."""
        async with self._lock:
            request = c.CancelReceipt(password=self._password)
            answer = await self._answer(request, c.CancelReceiptAnswer)
            if isinstance(answer, c.ErrorAnswer) and answer.error != ErrorCode.NOT_IN_THIS_MODE:
                raise await self._refusal(request, answer)

    async def fn_expiry(self) -> date:
        """FF03h Запрос срока действия ФН (registers.md §1.6): the keys' last day. Polled on
        shift open and close and while idle, never per receipt."""
        async with self._lock:
            answer = await self._call(c.FnExpiry(password=self._password), c.FnExpiryAnswer)
            return answer.expires

    async def read_document(self, fd_number: int) -> bytes:
        """FF3Ah, then FF3Bh until its length is read: the TLV exactly as the ФН archived it."""
        async with self._lock:
            return await self._read_document(fd_number)

    async def aclose(self) -> None:
        await self._die()

    # --- documents, shifts, refusals ----------------------------------------------------

    async def _read_document(self, fd_number: int) -> bytes:
        pw = self._password
        info = await self._call(
            c.DocumentTlvInfo(password=pw, fd_number=fd_number), c.DocumentTlvInfoAnswer
        )
        body = bytearray()
        request, payload = self._read_tlv, self._read_tlv_payload
        while len(body) < info.length:  # the announced length is all: no 08h read to end
            chunk = await self._answer(request, c.ReadTlvAnswer, payload)
            if isinstance(chunk, c.ErrorAnswer):
                if chunk.error == ErrorCode.FN_NO_DATA:
                    break
                raise await self._refusal(request, chunk)
            if not chunk.tlv or len(body) + len(chunk.tlv) > info.length:
                await self._die()
                raise LinkLost(f"FD {fd_number}: FF3Bh gave more than the {info.length} bytes")
            body += chunk.tlv
        if len(body) != info.length:
            await self._die()
            raise LinkLost(f"FD {fd_number}: {len(body)} bytes read, {info.length} announced")
        return _DOCUMENT_HEADER.pack(info.document_tag, info.length) + bytes(body)

    async def _last_fd(self) -> int:
        return (await self._call(c.FnStatus(password=self._password), c.FnStatusAnswer)).last_fd

    async def _ready_for_receipt(self) -> None:
        """10h: refuse at once what FF46h would refuse or, worse, add to a stale receipt."""
        status = await self._call(c.ShortStatus(password=self._password), c.ShortStatusAnswer)
        mode = status.kkt_mode
        if mode is Mode.SHIFT_CLOSED:
            raise RegisterRefused.because(
                RefusalReason.SHIFT_CLOSED, "the shift is closed", ErrorCode.NOT_IN_THIS_MODE
            )
        if mode is Mode.SHIFT_EXPIRED:
            raise RegisterRefused.because(
                RefusalReason.SHIFT_EXPIRED, "the shift is over 24 hours", ErrorCode.SHIFT_OVER_24H
            )
        if mode is Mode.DOCUMENT_OPEN:
            raise RegisterRefused.because(
                RefusalReason.DOCUMENT_OPEN,
                f"a receipt with {status.receipt_operations} lines is open",
                ErrorCode.RECEIPT_OPEN,
            )

    async def _cancel_after_refusal(self) -> None:
        """88h after a refusal mid-receipt; its own refusal changes nothing worth raising."""
        await self._answer(c.CancelReceipt(password=self._password), c.CancelReceiptAnswer)

    async def _refusal(self, request: c.Request, answer: c.ErrorAnswer) -> RegisterRefused:
        """The refusal ``answer`` means, with the reason the engine acts on."""
        error = answer.error
        fn_code = error if error <= _LAST_FN_CODE else None
        what = f"{type(request).__name__} refused with {describe_error(error)}"
        reason = RefusalReason.OTHER
        if error in (ErrorCode.SHIFT_OVER_24H, ErrorCode.FN_SHIFT_OVER_24H):
            reason = RefusalReason.SHIFT_EXPIRED
        elif error == ErrorCode.RECEIPT_OPEN:
            reason = RefusalReason.DOCUMENT_OPEN
        elif error in _EXHAUSTED:
            reason = RefusalReason.FN_EXHAUSTED
        elif error == ErrorCode.NOT_IN_THIS_MODE:
            full = await self._peek(c.FullStatus(password=self._password), c.FullStatusAnswer)
            mode = None if full is None else full.kkt_mode
            if mode is Mode.SHIFT_CLOSED:
                reason = RefusalReason.SHIFT_CLOSED
            elif mode is Mode.SHIFT_EXPIRED:
                reason = RefusalReason.SHIFT_EXPIRED
        elif error == ErrorCode.FN_WRONG_STATE:
            fn = await self._peek(c.FnStatus(password=self._password), c.FnStatusAnswer)
            if fn is not None and fn.current_document and not self._receipt_open:
                if isinstance(request, _STARTERS):
                    reason = RefusalReason.DOCUMENT_OPEN
            elif fn is not None and not fn.shift_open:
                reason = RefusalReason.SHIFT_CLOSED
        return RegisterRefused.because(reason, what, error, fn_code=fn_code)

    async def _peek(self, request: c.Request, expect: type[_A]) -> _A | None:
        """A look a refusal needs: its answer, or None when that is refused too."""
        answer = await self._answer(request, expect)
        return None if isinstance(answer, c.ErrorAnswer) else answer

    # --- commands ------------------------------------------------------------------------

    async def _call(self, request: c.Request, expect: type[_A], payload: bytes = b"") -> _A:
        """Run ``request`` (already encoded as ``payload``, if given); its answer, or the
        refusal raised."""
        answer = await self._answer(request, expect, payload)
        if isinstance(answer, c.ErrorAnswer):
            raise await self._refusal(request, answer)
        return answer

    async def _answer(
        self, request: c.Request, expect: type[_A], payload: bytes = b""
    ) -> _A | c.ErrorAnswer:
        """Run ``request`` until it is not refused for printing; its answer or its refusal."""
        answer = await self._exchange(request, payload)
        for _ in range(_PRINT_RETRIES):
            if not (
                isinstance(answer, c.ErrorAnswer) and answer.error == ErrorCode.PRINTING_PREVIOUS
            ):
                break
            await self._wait_printing()
            answer = await self._exchange(request, payload)
        if not isinstance(answer, (expect, c.ErrorAnswer)):
            await self._die()
            raise LinkLost(f"{type(request).__name__} answered with a {type(answer).__name__}")
        return answer

    async def _wait_printing(self) -> None:
        """Poll 10h while the register prints (submode 5), for at most :data:`PRINT_WAIT`."""
        with trio.move_on_after(PRINT_WAIT):
            while True:
                await trio.sleep(PRINT_POLL)
                status = await self._exchange(c.ShortStatus(password=self._password))
                if not isinstance(status, c.ShortStatusAnswer):
                    return
                if status.submode != Submode.PRINTING:
                    return

    async def _exchange(self, request: c.Request, payload: bytes = b"") -> c.Answer | c.ErrorAnswer:
        """Send one command (``payload`` when it is encoded already) and decode its answer;
        :class:`LinkLost` when none comes."""
        if self._dead:
            raise LinkLost("the connection to the register is closed")
        if not payload:
            try:
                payload = request.encode()
            except ShtrihError as exc:
                raise RegisterRefused(f"{_name(request)}: cannot be encoded: {exc}", 0) from None
        timeout = REGISTRY[request.CODE].timeout_ms / 1000
        deadline = timeout + LINK_TIMEOUT
        answer_wait = min(timeout, ANSWER_REPEAT)
        try:
            if self._wire is not None:
                answer = await self._transact_wire(self._wire, payload, answer_wait, deadline)
            else:
                with trio.move_on_after(deadline) as scope:
                    answer = await self._transact(payload, answer_wait)
                if scope.cancelled_caught:
                    raise _Broken(f"no answer within {deadline:g} s")
            return c.decode_answer(answer)
        except (
            _Broken,
            ShtrihError,
            TransportError,
            trio.BrokenResourceError,
            trio.ClosedResourceError,
        ) as exc:
            await self._die()
            raise LinkLost(f"{_name(request)}: {exc}") from exc
        except trio.Cancelled:
            await self._die()  # cancelled mid-exchange: the link's state is no longer known
            raise

    async def _transact(self, payload: bytes, answer_wait: float) -> bytes:
        """Drive the link until the answer to ``payload`` arrives; its payload."""
        link = self._link
        waits = {
            Timer.BYTE: BYTE_TIMEOUT,
            Timer.LINK: LINK_TIMEOUT,
            Timer.ANSWER: answer_wait,
            Timer.NONE: math.inf,
        }
        await self._write(link.send(CommandFrame(payload=payload)))
        while True:
            event = link.next_event()
            await self._write(link.data_to_send())
            if isinstance(event, AnswerFrame):
                return event.payload
            if event is not NEED_DATA:
                continue  # a stale answer of an earlier exchange: the link has dealt with it
            with trio.move_on_after(waits[link.timer]) as scope:
                data = await self._stream.receive_some()
            if scope.cancelled_caught:
                link.timeout()
                await self._write(link.data_to_send())
                continue
            if not data:
                raise _Broken("the register closed the connection")
            link.receive_data(bytes(data))

    async def _transact_wire(
        self, wire: SocketWire, payload: bytes, answer_wait: float, deadline: float
    ) -> bytes:
        """:meth:`_transact` on a socket: one cancel scope a wait, made with its deadline.

        The deadline is the link's timer or the exchange's own ``deadline``, whichever comes
        first. Giving the scope its deadline when it is made registers it once; moving the
        deadline of an entered scope registers it again. An answer usually takes one wait.
        """
        link = self._link
        give_up = trio.current_time() + deadline
        await wire.send(link.send(CommandFrame(payload=payload)))
        while True:
            event = link.next_event()
            out = link.data_to_send()
            if out:
                await wire.send(out)
            if isinstance(event, AnswerFrame):
                return event.payload
            if event is not NEED_DATA:
                continue  # a stale answer of an earlier exchange: the link has dealt with it
            timer = link.timer
            if timer is Timer.ANSWER:
                wait = answer_wait
            elif timer is Timer.BYTE:
                wait = BYTE_TIMEOUT
            elif timer is Timer.LINK:
                wait = LINK_TIMEOUT
            else:
                wait = math.inf
            with trio.CancelScope(deadline=min(give_up, trio.current_time() + wait)) as scope:
                data = await wire.receive()
            if scope.cancelled_caught:
                if trio.current_time() >= give_up:
                    raise _Broken(f"no answer within {deadline:g} s")
                link.timeout()
                out = link.data_to_send()
                if out:
                    await wire.send(out)
                continue
            if not data:
                raise _Broken("the register closed the connection")
            link.receive_data(data)

    async def _write(self, data: bytes) -> None:
        if data:
            await self._stream.send_all(data)

    async def _die(self) -> None:
        self._dead = True
        await trio.aclose_forcefully(self._stream)
