"""The ATOL register driver (драйвер ККТ АТОЛ): протокол ККТ 3.1 over the transport v3 task buffer.

:class:`AtolDriver` speaks :mod:`protocols.atol` from the host's side over any
``trio.abc.Stream``: every application request is a task (C1 Add, then C3 Req until its result,
then C2 Ack), one at a time. The connection starts with C4 Abort, as the captured link check
of S7 does, so results a lost session left in the register's buffer cannot collide with new
task IDs; a task still running keeps running, and ours queue behind it.

Timeouts (registers.md §2.1, §2.4):

- :data:`ANSWER_TIMEOUT`, 500 ms for the answer to one packet before it is sent again: S8 waits
  0.5 s per response; most of atol4j's v2 link timeouts (T1, T3, T4, T6, T7) are 500 ms too.
- :data:`MAX_ATTEMPTS`, 5 sends of one packet: S8 retries a write 4 times; S7 tries a task 5
  times. A silent link is therefore given up after 2.5 s.
- :data:`TASK_TIMEOUT`, 15 s from the Add to the result: S7's async task timeout, "increased
  because the receipt did not finish printing in time"; the Z report (5Ah) gets
  :data:`Z_REPORT_TIMEOUT`, atol4j's T5 of 40 s for it.

Passwords: a mode is entered (56h) with ``password``, 30 by default. The emulator takes an
operator's 1…30 for registration (mode 1) and 29 (administrator) or 30 (system administrator)
for the Z report (mode 3), ATOL's usual numbering (registers.md has no ATOL password table), so
30 opens both. The access password at the head of every request stays 0000 (S6, S7).

How a receipt travels (what is not here cannot be carried, and is refused with its field path
before anything is sent, as :class:`NotCarried`):

- Marking codes (FFD 1.2) of a sale or its refund are checked first, in mode 1
  (:mod:`engine.drivers.marking`): D1h, D2h every :data:`MARKING_POLL` until the result,
  then D3h accepts it (or D4h declines it, and the receipt stops); the register binds an
  accepted code to the item whose 1163 matches. 2106 is the ФН's: the driver never sends one.
- 92h opens it with the type from 1054: 1, 2, 4, 5, or 7…10 for a correction receipt.
- E6h registers each item: name (1030, when CP866 fits its 64 bytes), price (1079), quantity
  (1023, in thousandths), tax code (1199, through the register's tax table,
  :mod:`protocols.atol.taxes`, the 2026 firmware's unless configured: a rate it lacks is
  refused with its path), and 1043 as a discount or surcharge on
  price × quantity. Then E8h (write a requisite, item flag) sends every other tag of the item:
  1214, 1212, 1200, 2108, the marking (1163, 2003, 2102, 2115), agent and supplier data,
  1079 when a discount changed it, 1030 when E6h could not hold the name …
- E8h without the item flag sends the receipt's tags: 1055 (the tax system: the protocol has no
  OpenReceipt parameter for it, so it is a requisite, as libfptr10 sends it), 1187, 1009, 1048,
  1117, the cashier (1021, 1203), the buyer (1008, 1256), 1192, 1084, 1057, 1234, 1270, 1261,
  1011, 1036, 1125, and 1173/1174 of a correction.
- 99h pays each kind: cash 1031, electronic 1081, prepaid 1215 (зачёт аванса), credit 1216,
  provision 1217; the last of them goes with 4Ah, which closes the receipt. 4Ah is never sent
  with amount 0 ("pay what is left") unless nothing is paid at all: a receipt whose payments
  fall short of its total is refused by the register (45h), not paid up in cash.
- The register writes its own 1018 (its registration's INN), 1209, 1054, 1020 and the VAT
  totals: a receipt whose 1018 is not the register's comes back with the register's.

Other choices:

- The FD number of a new document is 1040 of the ФН's status (A4 30) read right after it. The
  4Ah answer carries no fiscal sign, so :attr:`Fiscalized.printed_sign` is None: the ФП is in
  the document's 1077.
- ``shift_expired``: no state answer says it, so the driver reads the time of the shift's
  opening report (document 2, found just before the shift's receipts) and compares the
  register's clock with it plus 24 hours; a shift the register refused with 88h counts as
  expired from then on.
- A 66h (wrong mode) or a ФН 02h (wrong state) refusal is read with the ФН's status: a shift
  that is closed makes it SHIFT_CLOSED, a document open in the ФН DOCUMENT_OPEN.
- The driver tracks the register's mode and queries it (3Fh) when it does not know it: at the
  start and after any refusal. It leaves the register in mode 1 after receipts and the opening
  of a shift, and in mode 0 after the Z report.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import partial
from typing import Any, Final, TypeVar

import attrs
import trio

from engine.drivers.base import (
    MAX_SHIFT,
    Fiscalized,
    LinkLost,
    RefusalReason,
    RegisterRefused,
    RegisterStatus,
)
from engine.drivers.marking import (
    MarkingFailed,
    check_failed,
    code_to_check,
)
from engine.drivers.paths import (
    ITEM_PATHS,
    RECEIPT_PATHS,
    VAT_RATE,
    Gather,
    NotCarried,
    join,
)
from protocols.atol.commands import (
    FLAG_ITEM_REQUISITE,
    MAX_REQUISITE_BLOCK,
    AcceptMarkingCode,
    Answer,
    BeginMarkingCheck,
    CancelReceipt,
    CloseReceipt,
    CloseShift,
    CommandAnswer,
    DeclineMarkingCode,
    DeviceStatus,
    DocumentData,
    DocumentInfo,
    EnterMode,
    ErrorCode,
    ExitMode,
    FnExpiry,
    FnStatus,
    GetDeviceStatus,
    GetDocumentInfo,
    GetFnExpiry,
    GetFnStatus,
    GetMarkingCheckStatus,
    GetOfdExchangeStatus,
    GetShiftState,
    MarkingCheckPending,
    MarkingCheckResult,
    MarkingDecision,
    Mode,
    OfdExchangeStatus,
    OpenReceipt,
    OpenShift,
    Payment,
    PaymentAnswer,
    PaymentType,
    ReadDocumentData,
    ReceiptType,
    RegisterItem,
    Request,
    ShiftState,
    WriteRequisite,
    decode_answer,
)
from protocols.atol.connection import HostConnection
from protocols.atol.errors import AtolError
from protocols.atol.events import (
    NEED_DATA,
    HostEvent,
    TaskFinished,
    TaskLost,
    TaskRefused,
    TaskStopped,
)
from protocols.atol.taskbuffer import (
    MAX_PAYLOAD,
    MAX_TID,
    AbortTasks,
    AckTask,
    AddTask,
    BufferErrorCode,
    HostMessage,
    ReqTask,
)
from protocols.atol.taxes import DEFAULT as DEFAULT_TAXES
from protocols.documents.ffd import DocumentError, receipt_to_tags
from protocols.documents.model import (
    CorrectionReceipt,
    Item,
    Receipt,
)
from protocols.documents.vat import TaxTable
from protocols.fn import MarkingRefusal, ResultCode
from protocols.tlv import TagMap, TlvError, decode_document, encode

__all__ = [
    "ANSWER_TIMEOUT",
    "MAX_ATTEMPTS",
    "TASK_TIMEOUT",
    "Z_REPORT_TIMEOUT",
    "AtolDriver",
    "NotCarried",
]

#: Seconds to wait for the answer to one packet before sending it again (S8).
ANSWER_TIMEOUT: Final = 0.5
#: Sends of one packet before the link counts as lost (S8: 4 retries; S7: 5 tries).
MAX_ATTEMPTS: Final = 5
#: Seconds from a task's Add to its result (S7 ATOL_TASK_ASYNC_TIMEOUT).
TASK_TIMEOUT: Final = 15.0
#: Seconds for the Z report (atol4j's v2 T5 for 5Ah).
Z_REPORT_TIMEOUT: Final = 40.0
#: Seconds between two D2h while the ФН checks a marking code (its online part takes about
#: half a second, and up to the ФН's own wait when the ОИСМ is silent).
MARKING_POLL: Final = 0.1
#: The longest document (its TLV, header included) one A4 46 answer returns: the answer is
#: ``55 00`` and the TLV in one task-buffer payload. The reference gives no read in parts.
MAX_DOCUMENT: Final = MAX_PAYLOAD - 2
#: The first pause between polls (Req) of a running task, and the longest.
POLL_FIRST: Final = 0.005
POLL_MAX: Final = 0.1
#: Documents the driver steps back over when it looks for the shift's opening report.
_OPENING_SEARCH = 8
_TID_TRIES = 4

_RECEIPT_TYPES: Mapping[tuple[int, bool], ReceiptType] = {
    (1, False): ReceiptType.SALE,
    (2, False): ReceiptType.SALE_RETURN,
    (3, False): ReceiptType.PURCHASE,
    (4, False): ReceiptType.PURCHASE_RETURN,
    (1, True): ReceiptType.CORRECTION_SALE,
    (2, True): ReceiptType.CORRECTION_SALE_RETURN,
    (3, True): ReceiptType.CORRECTION_PURCHASE,
    (4, True): ReceiptType.CORRECTION_PURCHASE_RETURN,
}
#: Receipt tags the register forms itself, or that E6h, 99h and 4Ah carry.
_CARRIED = frozenset(
    {1209, 1018, 1054, 1059, 1020, 1031, 1081, 1215, 1216, 1217, 1115} | set(range(1102, 1108))
)
_PAYMENT_KINDS = (
    (PaymentType.CASH, "cash"),
    (PaymentType.ELECTRONIC, "electronic"),
    (PaymentType.ADVANCE, "prepaid"),
    (PaymentType.CREDIT, "credit"),
    (PaymentType.OTHER, "provision"),
)
_E6_NAME_BYTES = 64
_CHECK_RESULT = 2106  # результат проверки сведений о товаре: the ФН writes it, never the host
#: ФН result codes that mean the register cannot form documents any more (FN_EXHAUSTED).
_EXHAUSTED = frozenset(
    {
        ResultCode.LIFETIME_OVER,
        ResultCode.ARCHIVE_FULL,
        ResultCode.CRYPTO_EXHAUSTED,
        ResultCode.STORAGE_EXHAUSTED,
        ResultCode.OFD_WAIT_EXHAUSTED,
    }
)
_A = TypeVar("_A", bound=Answer)
#: Requests that a document left open blocks (so a 66h or ФН 02h to them means DOCUMENT_OPEN).
_STARTERS = (OpenReceipt, ExitMode, OpenShift, CloseShift)


class _Broken(Exception):
    """No usable answer: the driver closes the link and raises LinkLost."""


# --- the receipt as requests --------------------------------------------------------------------


@attrs.frozen
class _Plan:
    """A receipt as the requests that carry it, after 92h opens it and before 4Ah closes it."""

    receipt_type: ReceiptType
    steps: tuple[Request, ...]
    close: CloseReceipt  # with the last payment, so that 4Ah never pays a remainder itself
    checks: tuple[tuple[str, BeginMarkingCheck], ...] = ()  # (the item's path, D1h) each


def _plan(receipt: Receipt, taxes: TaxTable) -> _Plan:
    """The requests for ``receipt``, or :class:`NotCarried` naming every part that cannot travel."""
    correction = isinstance(receipt, CorrectionReceipt)
    receipt_type = _RECEIPT_TYPES.get((receipt.operation, correction))
    if receipt_type is None:
        raise NotCarried("operation", f"1054 = {receipt.operation} is not 1…4")
    try:
        tags = receipt_to_tags(receipt)
    except DocumentError as exc:
        raise NotCarried(exc.path, exc.reason) from None
    lines = tags.get(1059, [])
    assert isinstance(lines, list)
    gather = Gather()
    steps: list[Request] = []
    for index, (item, line) in enumerate(zip(receipt.items, lines, strict=True)):
        assert isinstance(line, dict)
        steps += gather.part(partial(_item_steps, item, line, f"items[{index}]", taxes)) or []
    rest = {number: value for number, value in tags.items() if number not in _CARRIED}
    steps += gather.part(partial(_requisites, rest, item=False, path="")) or []
    payments: list[Payment] = []
    for kind, name in _PAYMENT_KINDS:
        amount = getattr(receipt.payments, name)
        if amount:
            payment = gather.part(
                partial(_built, f"payments.{name}", Payment, payment_type=kind, amount=amount)
            )
            if isinstance(payment, Payment):
                payments.append(payment)
    checks = [
        gather.part(partial(_check, receipt.operation, item, f"items[{index}]"))
        for index, item in enumerate(receipt.items)
    ]
    gather.check()
    close = CloseReceipt(payment_type=PaymentType.CASH)
    if payments:
        last = payments.pop()
        close = CloseReceipt(payment_type=last.payment_type, amount=last.amount)
    found = tuple(check for check in checks if check is not None)
    return _Plan(receipt_type, (*steps, *payments), close, found)


def _check(operation: int, item: Item, path: str) -> tuple[str, BeginMarkingCheck] | None:
    """D1h for the item's КМ, or None."""
    check = code_to_check(operation, item, path)
    if check is None:
        return None
    try:
        request = BeginMarkingCheck(
            planned_status=check.planned_status, marking_code=check.code, tlv=check.tlv
        )
    except AtolError as exc:
        raise NotCarried(f"{path}.marking.scanned", exc.reason) from None
    return check.path, request


def _item_steps(item: Item, line: TagMap, path: str, taxes: TaxTable) -> list[Request]:
    """E6h for ``item``, then E8h for its tags E6h does not carry; never 2106, which the ФН
    writes from its check of the code (the register binds the code by its 1163)."""
    register, carried = _item_request(item, path, taxes)
    extra = {
        number: value
        for number, value in line.items()
        if number not in carried and number != _CHECK_RESULT
    }
    return [register, *_requisites(extra, item=True, path=path)]


def problems(receipt: Receipt, taxes: TaxTable = DEFAULT_TAXES) -> tuple[NotCarried, ...]:
    """Every part of ``receipt`` a register with ``taxes`` cannot carry; () when it can.

    Pure: the checks before fiscalization call it for each register of a group.
    """
    try:
        _plan(receipt, taxes)
    except NotCarried as exc:
        return exc.every
    return ()


#: The model field behind each RegisterItem field, for the path of a value E6h cannot hold.
_E6_FIELDS: Mapping[str, str] = {
    "name": "name",
    "price": "price",
    "quantity": "quantity",
    "discount": "sum",
    "tax": "vat",
}


def _built(
    path: str, cls: type[Request], fields: Mapping[str, str] | None = None, **values: Any
) -> Request:
    """``cls(**values)``; a value it cannot hold is :class:`NotCarried` at the model's path."""
    try:
        return cls(**values)
    except AtolError as exc:
        where = (fields or {}).get(exc.path)
        raise NotCarried(join(path, where) if where else path, exc.reason) from None


def _item_request(item: Item, path: str, taxes: TaxTable) -> tuple[Request, frozenset[int]]:
    """E6h for ``item`` and the item tags it carries (the rest go by E8h)."""
    tax = taxes.code_of(item.vat) if isinstance(item.vat, int) else None
    if tax is None:
        raise NotCarried(
            f"{path}.vat",
            f"1199 = {item.vat!r} is not in the register's tax table {taxes.name!r} "
            f"({taxes.describe()})",
            VAT_RATE,
        )
    quantity = item.quantity
    if not isinstance(quantity, Decimal) or not quantity.is_finite() or quantity <= 0:
        raise NotCarried(f"{path}.quantity", f"{quantity!r} is not a positive quantity")
    if quantity.scaleb(3) != quantity.scaleb(3).to_integral_value():
        raise NotCarried(f"{path}.quantity", "E6h carries quantities in thousandths")
    if not isinstance(item.price, int) or not isinstance(item.sum, int):
        raise NotCarried(f"{path}.price", "money is integer kopecks")
    gross = int((item.price * quantity).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    difference = gross - item.sum
    carried = {1023, 1043, 1199}
    if difference == 0:
        carried.add(1079)  # else the register derives 1079 from 1043; E8h sends the real one
    name = item.name
    if _fits_e6(name):
        carried.add(1030)
    else:
        name = ""  # the name goes as 1030 by E8h
    request = _built(
        path,
        RegisterItem,
        _E6_FIELDS,
        name=name,
        price=item.price,
        quantity=quantity,
        surcharge=difference < 0,
        discount=abs(difference),
        tax=tax,
    )
    return request, frozenset(carried)


def _fits_e6(name: str) -> bool:
    try:
        encoded = name.encode("cp866")
    except UnicodeEncodeError:
        return False
    return 0 < len(encoded) <= _E6_NAME_BYTES and b"\x00" not in encoded


def _requisites(tags: TagMap, *, item: bool, path: str) -> list[Request]:
    """E8h requests for ``tags``: their TLVs joined, in blocks of at most 1024 bytes."""
    chunks: list[bytes] = []
    for number, value in tags.items():
        where = (ITEM_PATHS if item else RECEIPT_PATHS).get(number, str(number))
        try:
            chunks.append(encode({number: value}))
        except TlvError as exc:
            raise NotCarried(join(path, where), exc.reason) from None
    data = b"".join(chunks)
    if not data:
        return []
    count = math.ceil(len(data) / MAX_REQUISITE_BLOCK)
    if count > 0xFF:
        raise NotCarried(path or "receipt", f"{len(data)} bytes of requisites, too many blocks")
    flags = FLAG_ITEM_REQUISITE if item else 0
    return [
        WriteRequisite(
            flags=flags,
            block_count=count,
            block_number=number,
            data=data[number * MAX_REQUISITE_BLOCK : (number + 1) * MAX_REQUISITE_BLOCK],
        )
        for number in range(count)
    ]


def _error_of(answer: Answer) -> tuple[int, int]:
    if isinstance(answer, CommandAnswer | PaymentAnswer):
        return answer.error, answer.extended
    return 0, 0


# --- the driver ---------------------------------------------------------------------------------


class AtolDriver:
    """One connection to one ATOL register (протокол ККТ 3.1, transport v3).

    Satisfies :class:`engine.drivers.base.RegisterDriver`. After :class:`LinkLost` the stream is
    closed and every later call raises :class:`LinkLost` again: make a new driver on a new
    connection. Not for two tasks at once.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        password: int = 30,
        answer_timeout: float = ANSWER_TIMEOUT,
        task_timeout: float = TASK_TIMEOUT,
        taxes: TaxTable = DEFAULT_TAXES,
    ) -> None:
        if not isinstance(password, int) or not 0 <= password < 10**8:
            raise ValueError(f"a mode password is 0…99999999, got {password!r}")
        self._stream = stream
        self._password = password
        self._taxes = taxes
        self._answer_timeout = answer_timeout
        self._task_timeout = task_timeout
        self._link = HostConnection(max_attempts=MAX_ATTEMPTS)
        self._next_tid = 1
        self._started = False
        self._dead = False
        self._mode: int | None = None  # the register's mode, None when not known
        self._opened: dict[tuple[str, int], datetime] = {}  # (ФН, shift) → its opening time
        self._expired: tuple[str, int] | None = None  # the shift the register refused with 88h
        #: A check a lost session left undecided was looked for on this connection.
        self._declined = False

    # --- the RegisterDriver interface ---------------------------------------------------

    async def status(self) -> RegisterStatus:
        device = await self._call(GetDeviceStatus(), DeviceStatus)
        self._mode = device.mode
        shift = await self._call(GetShiftState(), ShiftState)
        ofd = await self._call(GetOfdExchangeStatus(), OfdExchangeStatus)
        fn = await self._call(GetFnStatus(), FnStatus)
        expired = shift.shift_open and await self._shift_expired(fn, shift, device.clock)
        return RegisterStatus(
            fn_number=fn.fn_number,
            now=device.clock,
            shift_open=shift.shift_open,
            shift_expired=expired,
            shift_number=shift.shift_number,
            last_fd=fn.last_fd_number,
            document_open=device.receipt_state != 0 or fn.current_document != 0,
            unsent=ofd.unsent_count,
            first_unsent=ofd.first_unsent_time,
            fn_warnings=fn.warnings,
        )

    async def open_shift(self) -> int:
        """9Ah in mode 1; the FD number of the opening report (2)."""
        await self._enter(Mode.REGISTRATION)
        await self._call(OpenShift(), CommandAnswer)
        return await self._last_fd()

    async def close_shift(self) -> int:
        """5Ah, the Z report, in mode 3; the FD number of the closing report (5)."""
        await self._enter(Mode.Z_REPORTS)
        await self._call(CloseShift(), CommandAnswer, timeout=Z_REPORT_TIMEOUT)
        fd_number = await self._last_fd()
        await self._enter(Mode.SELECT)
        return fd_number

    async def fiscalize(
        self, receipt: Receipt | CorrectionReceipt, *, sell_failed_marking: bool = False
    ) -> Fiscalized:
        """Check the marking codes, open, fill and close the receipt; read back what the ФН
        archived.

        Nothing is sent for a receipt with a part that cannot be carried (:class:`NotCarried`).
        A code whose check fails stops it before 92h (:class:`MarkingFailed`), unless
        ``sell_failed_marking``. A refusal after 92h cancels the receipt (59h) before it is
        raised.
        """
        plan = _plan(receipt, self._taxes)
        await self._enter(Mode.REGISTRATION)
        if not plan.checks and not self._declined:
            # a check a lost session left undecided would make the receipt's close refused
            await self._decline_left_check()
            await self._enter(Mode.REGISTRATION)
        self._declined = True
        for path, check in plan.checks:
            await self._check_marking(path, check, sell_failed_marking)
        await self._call(OpenReceipt(receipt_type=plan.receipt_type), CommandAnswer)
        try:
            for step in plan.steps:
                await self._do(step)
            await self._call(plan.close, CommandAnswer)
        except RegisterRefused:
            await self._task(CancelReceipt())  # its own refusal changes nothing
            raise
        try:
            fd_number = await self._last_fd()
            document = await self.read_document(fd_number)
        except RegisterRefused as exc:  # signed, yet not read: in doubt, never "refused"
            await self._die()
            raise LinkLost(f"the receipt closed, then reading it back was refused: {exc}") from exc
        if int.from_bytes(document[:2], "little") not in (3, 31):
            await self._die()
            raise LinkLost(f"FD {fd_number} read after the receipt is not a receipt")
        return Fiscalized(fd_number, document, None)

    async def _check_marking(self, path: str, check: BeginMarkingCheck, sell_failed: bool) -> None:
        """D1h, D2h until the result, then D3h (accept) or D4h (decline, and raise).

        A check a lost session left undecided makes D1h refused (ФН A1h): it is declined, and
        D1h sent once more.
        """
        try:
            await self._call(check, CommandAnswer)
        except RegisterRefused as exc:
            if exc.fn_code != MarkingRefusal.WRONG_SEQUENCE:
                raise
            await self._decline_left_check()
            await self._enter(Mode.REGISTRATION)
            await self._call(check, CommandAnswer)
        while True:
            answer = await self._do(GetMarkingCheckStatus())
            if isinstance(answer, MarkingCheckResult):
                break
            if not isinstance(answer, MarkingCheckPending):
                await self._die()
                raise LinkLost(f"D2h answered with a {type(answer).__name__}")
            await trio.sleep(MARKING_POLL)
        if check_failed(answer.check_result) and not sell_failed:
            await self._call(DeclineMarkingCode(), MarkingDecision)
            raise MarkingFailed(path, answer.check_result)
        await self._call(AcceptMarkingCode(), MarkingDecision)

    async def _decline_left_check(self) -> None:
        """Wait for a check left running to end, then decline it; refusals change nothing."""
        while isinstance(await self._task(GetMarkingCheckStatus()), MarkingCheckPending):
            await trio.sleep(MARKING_POLL)
        await self._task(DeclineMarkingCode())

    async def cancel_receipt(self) -> None:
        """59h in mode 1; no receipt open (9Ah) is success."""
        await self._enter(Mode.REGISTRATION)
        request = CancelReceipt()
        error, extended = _error_of(await self._task(request))
        if error not in (ErrorCode.NO_ERROR, ErrorCode.RECEIPT_CLOSED):
            raise await self._refusal(request, error, extended)

    async def fn_expiry(self) -> date:
        """A4 32 срок действия ФН (registers.md §2.3; layout assumed in
        :mod:`protocols.atol.commands`): the keys' last day. Polled, never per receipt."""
        answer = await self._call(GetFnExpiry(), FnExpiry)
        return answer.expires

    async def read_document(self, fd_number: int) -> bytes:
        """A4 45 then A4 46: the document's TLV exactly as the ФН archived it."""
        info = await self._call(GetDocumentInfo(number=fd_number), DocumentInfo)
        data = await self._call(ReadDocumentData(), DocumentData)
        if len(data.tlv) != info.size:
            await self._die()
            raise LinkLost(f"FD {fd_number}: {len(data.tlv)} bytes read, {info.size} announced")
        return data.tlv

    async def aclose(self) -> None:
        await self._die()

    # --- modes, documents, refusals -----------------------------------------------------

    async def _enter(self, mode: Mode) -> None:
        """Put the register in ``mode`` (режим), through the select mode if need be."""
        if self._mode is None:
            self._mode = (await self._call(GetDeviceStatus(), DeviceStatus)).mode
        if self._mode == mode:
            return
        if self._mode != Mode.SELECT:
            await self._call(ExitMode(), CommandAnswer)
            self._mode = Mode.SELECT
        if mode != Mode.SELECT:
            await self._call(EnterMode(mode=mode, mode_password=self._password), CommandAnswer)
            self._mode = mode

    async def _last_fd(self) -> int:
        return (await self._call(GetFnStatus(), FnStatus)).last_fd_number

    async def _shift_expired(self, fn: FnStatus, shift: ShiftState, now: datetime) -> bool:
        key = (fn.fn_number, shift.shift_number)
        if self._expired == key:
            return True
        opened = self._opened.get(key)
        if opened is None:
            opened = await self._opening_time(shift, fn.last_fd_number)
            if opened is None:
                return False
            self._opened[key] = opened
        return now - opened > MAX_SHIFT

    async def _opening_time(self, shift: ShiftState, last_fd: int) -> datetime | None:
        """1012 of the shift's opening report, found just before the shift's receipts."""
        first = last_fd - shift.receipt_number
        for number in range(first, max(0, first - _OPENING_SEARCH), -1):
            try:
                info = await self._call(GetDocumentInfo(number=number), DocumentInfo)
                if info.document_type != 2:
                    continue
                document = decode_document(await self.read_document(number))
            except (RegisterRefused, TlvError):
                return None
            opened = document.fields.get(1012)
            if document.fields.get(1038) != shift.shift_number or not isinstance(opened, datetime):
                return None
            return opened
        return None

    async def _refusal(self, request: Request, error: int, extended: int) -> RegisterRefused:
        """The refusal ``55 error ext`` means, with the reason the engine acts on."""
        self._mode = None  # not worth guessing what a refused command left
        fn_code = extended if error == ErrorCode.FN_ERROR else None
        what = f"{type(request).__name__} refused with {error:02X}h"
        if fn_code is not None:
            what += f", ФН {fn_code:02X}h"
        reason = RefusalReason.OTHER
        if error == ErrorCode.SHIFT_OVER_24_HOURS or fn_code == ResultCode.SHIFT_OVER_24H:
            reason = RefusalReason.SHIFT_EXPIRED
            fn = await self._peek(GetFnStatus(), FnStatus)
            shift = await self._peek(GetShiftState(), ShiftState)
            if fn is not None and shift is not None:
                self._expired = (fn.fn_number, shift.shift_number)
        elif error == ErrorCode.RECEIPT_OPEN:
            reason = RefusalReason.DOCUMENT_OPEN
        elif fn_code in _EXHAUSTED:
            reason = RefusalReason.FN_EXHAUSTED
        elif error == ErrorCode.WRONG_MODE or fn_code == ResultCode.WRONG_STATE:
            fn = await self._peek(GetFnStatus(), FnStatus)
            if fn is not None and not fn.shift_open:
                reason = RefusalReason.SHIFT_CLOSED
            elif fn is not None and fn.current_document and isinstance(request, _STARTERS):
                reason = RefusalReason.DOCUMENT_OPEN
        return RegisterRefused.because(reason, what, error, fn_code=fn_code)

    async def _peek(self, request: Request, expect: type[_A]) -> _A | None:
        """A look the refusal needs: its answer, or None when that is refused too."""
        answer = await self._task(request)
        return answer if isinstance(answer, expect) else None

    # --- tasks ----------------------------------------------------------------------------

    async def _do(self, request: Request, *, timeout: float | None = None) -> Answer:
        """Run ``request``; its answer, or the refusal raised."""
        answer = await self._task(request, timeout=timeout)
        error, extended = _error_of(answer)
        if error:
            raise await self._refusal(request, error, extended)
        return answer

    async def _call(
        self, request: Request, expect: type[_A], *, timeout: float | None = None
    ) -> _A:
        """Run ``request``; its answer, which must be an ``expect``, or the refusal raised."""
        answer = await self._do(request, timeout=timeout)
        if not isinstance(answer, expect):
            await self._die()
            raise LinkLost(f"{type(request).__name__} answered with a {type(answer).__name__}")
        return answer

    async def _task(self, request: Request, *, timeout: float | None = None) -> Answer:
        """Run ``request`` as one task and decode its answer; refusals are returned."""
        if self._dead:
            raise LinkLost("the connection to the register is closed")
        limit = self._task_timeout if timeout is None else max(timeout, self._task_timeout)
        try:
            with trio.move_on_after(limit) as scope:
                if not self._started:
                    await self._exchange(AbortTasks())
                    self._started = True
                answer = await self._run(request)
            if scope.cancelled_caught:
                raise _Broken(f"no result within {limit:g} s")
        except (_Broken, AtolError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            await self._die()
            raise LinkLost(f"{type(request).__name__}: {exc}") from exc
        except trio.Cancelled:
            await self._die()  # cancelled mid-exchange: the link's state is no longer known
            raise
        return answer

    async def _run(self, request: Request) -> Answer:
        payload = request.encode()
        for _ in range(_TID_TRIES):
            tid = self._take_tid()
            events = await self._exchange(AddTask(tid=tid, request=payload))
            poll = POLL_FIRST
            while (outcome := _outcome(tid, events)) is None:
                await trio.sleep(poll)
                poll = min(2 * poll, POLL_MAX)
                events = await self._exchange(ReqTask(tid=tid))
            if isinstance(outcome, TaskRefused):
                if outcome.code is BufferErrorCode.ALREADY_EXISTS:
                    continue  # a task of a lost session still holds this ID
                raise RegisterRefused(
                    f"{type(request).__name__}: the task buffer refused it with "
                    f"{outcome.code:02X}h",
                    int(outcome.code),
                )
            if isinstance(outcome, TaskLost):
                raise _Broken(f"the register no longer knows task {tid}")
            await self._exchange(AckTask(tid=tid))
            if isinstance(outcome, TaskStopped):
                raise RegisterRefused(
                    f"{type(request).__name__}: stopped after an earlier task failed", 0xA5
                )
            return decode_answer(request, outcome.answer)
        raise _Broken(f"{_TID_TRIES} task IDs in a row are taken")

    def _take_tid(self) -> int:
        tid = self._next_tid
        self._next_tid = 0 if tid == MAX_TID else tid + 1
        return tid

    async def _exchange(self, message: HostMessage) -> list[HostEvent]:
        """Send one task-buffer command, repeating it until answered; the events it brought."""
        await self._write(self._link.send(message))
        events: list[HostEvent] = []
        while True:
            while (event := self._link.next_event()) is not NEED_DATA:
                events.append(event)
            await self._write(self._link.data_to_send())
            if not self._link.awaiting_answer:
                return events
            with trio.move_on_after(self._answer_timeout) as scope:
                data = await self._stream.receive_some()
            if scope.cancelled_caught:
                await self._write(self._link.retransmit())
                continue
            if not data:
                raise _Broken("the register closed the connection")
            self._link.receive_data(bytes(data))

    async def _write(self, data: bytes) -> None:
        if data:
            await self._stream.send_all(data)

    async def _die(self) -> None:
        self._dead = True
        await trio.aclose_forcefully(self._stream)


def _outcome(
    tid: int, events: Iterable[HostEvent]
) -> TaskFinished | TaskRefused | TaskLost | TaskStopped | None:
    for event in events:
        if isinstance(event, TaskFinished | TaskRefused | TaskLost | TaskStopped) and (
            event.tid == tid
        ):
            return event
    return None
