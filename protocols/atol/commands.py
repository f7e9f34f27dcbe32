"""ATOL application commands (протокол ККТ 3.1): requests, answers, and a registry for both roles.

A request is ``password (2 bytes BCD) | command | parameters`` and travels inside a task
(C1 Add). Answers are the generic ``55h error ext`` (:class:`CommandAnswer`), the state answer
``44h 'D' …`` (:class:`DeviceStatus`), and ``55h 00h data`` for the ФН requests (A4 xx).
The host decodes an answer with the request it sent (:func:`decode_answer`); the register
decodes any request with :func:`decode_request`.

Numbers are BCD where the reference says so (prices BCD6, sums BCD5, the quantity BCD5 with
three implied decimals). Money is int kopecks and a quantity a :class:`~decimal.Decimal`, never
a float. Text is CP866, the device code page; text that CP866 cannot encode is an
:class:`AtolError` naming the field, never a silent replacement.

Layouts follow S6 (atol4j). Where the reference is silent this module assumes:

- The receipt item is E6 "register item", the one layout a public source shows; EA/EB (begin
  and finish an item, FFD 1.05) are not public. The 17 bytes after the department are kept
  as they are (S6 sends zeros; likely a barcode and a reserve byte).
- ФН requests (A4 xx) answer ``55 00 data`` with little-endian binary numbers, as the ФН
  itself sends them (S6 reads A4 20 so; it reads A4 10 as BCD, taken here as binary like every
  other ФН number). Any failed command answers ``55 error ext`` with a non-zero error.
- A4 45 takes a document number (4 bytes LE) and answers its type and size (2 + 2 bytes LE);
  A4 46 then answers the document's TLV bytes.
- Bytes 15–16 of the state answer are decoded by no public source and are kept raw.
- A flag byte whose bits the sources disagree on (open receipt: "don't print" is 0x02 in
  S6, 0x04 in S7) stays an int; only bit 0, test mode, is named (:data:`FLAG_TEST_MODE`).
- A boolean byte is 0 or 1; anything else is an :class:`AtolError`.
- Open shift may carry text after its flag byte (S6 lists it among the code-page commands).
- Correction receipts (чеки коррекции) open with 92h types 7…10, the numbers of libfptr10's
  ``LIBFPTR_RT_*_CORRECTION`` (7 прихода, 8 возврата прихода, 9 расхода, 10 возврата расхода),
  which keep 92h's own numbers for 1, 2, 4 and 5. S6 agrees on 7 and 9 but names 10
  "коррекция возврата прихода"; libfptr10's reading is taken.
- E8h "write a requisite" (записать реквизит) carries FFD TLVs the other commands cannot (1214,
  1212, 1163, 1192, 1084 …). No public source shows its layout; :class:`WriteRequisite` says
  what is assumed.
- A4 30 answers the ФН's own 30h status (S3) after ``55 00``, as A4 20 answers 20h's.
- A4 32 (срок действия ФН; named in registers.md §2.3, bytes in no public source) answers the
  ФН's own 32h data after ``55 00``: DATE YY MM DD, registrations left, registrations done
  (registers.md §3.3, S3; the same five bytes Shtrih's FF03h answers).
- Error codes 45h, 46h, 9Ah and D0h are not in the reference; they are numbered as on the older
  ATOL protocols, as the emulator answers them (see :class:`ErrorCode`).
- Marking codes (FFD 1.2, Честный знак): no public source shows ATOL's bytes for the check of
  a КМ. libfptr10 exposes it only as driver calls (beginMarkingCodeValidation,
  getMarkingCodeValidationStatus, acceptMarkingCode, declineMarkingCode, as public clients of
  DTO 10 call them). The commands D1h…D4h (:class:`BeginMarkingCheck`,
  :class:`GetMarkingCheckStatus`, :class:`AcceptMarkingCode`, :class:`DeclineMarkingCode`) and
  their layouts are Kassa's assumption: codes that no command of this codec or of the
  reference (§2.3, §2.4) uses, fields that mirror Shtrih's public FF61h/FF69h. A real ATOL
  register will not know them; they serve the emulator, and a driver written against it, until
  ATOL's own bytes are known. The ФН-М's refusals (:class:`protocols.fn.MarkingRefusal`) come
  as D0h with the refusal's number in the extended byte, like the ФН's other result codes.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar, Self, TypeVar

import attrs

from protocols.atol.errors import AtolError

__all__ = [
    "CORRECTION_TYPES",
    "FLAG_ITEM_REQUISITE",
    "FLAG_TEST_MODE",
    "MAX_REQUISITE_BLOCK",
    "REQUESTS",
    "AcceptMarkingCode",
    "Answer",
    "BeginMarkingCheck",
    "CancelReceipt",
    "CloseReceipt",
    "CloseShift",
    "CommandAnswer",
    "DeclineMarkingCode",
    "DeviceStatus",
    "DocumentData",
    "DocumentInfo",
    "EnterMode",
    "ErrorCode",
    "ExitMode",
    "FnExpiry",
    "FnStatus",
    "GetDeviceStatus",
    "GetDocumentInfo",
    "GetFnExpiry",
    "GetFnStatus",
    "GetMarkingCheckStatus",
    "GetOfdExchangeStatus",
    "GetShiftState",
    "MarkingCheckPending",
    "MarkingCheckResult",
    "MarkingDecision",
    "Mode",
    "OfdExchangeFlags",
    "OfdExchangeStatus",
    "OpenReceipt",
    "OpenShift",
    "Payment",
    "PaymentAnswer",
    "PaymentType",
    "ReadDocumentData",
    "ReceiptType",
    "RegisterItem",
    "Request",
    "ShiftState",
    "StatusFlags",
    "WriteRequisite",
    "decode_answer",
    "decode_bcd",
    "decode_request",
    "encode_bcd",
]

#: Bit 0 of a command's flag byte: run in test mode, nothing fiscal happens.
FLAG_TEST_MODE = 0x01
#: Bit 0 of E8h's flag byte: the requisite belongs to the last registered item, not the receipt.
FLAG_ITEM_REQUISITE = 0x01
#: The most TLV bytes one E8h block carries (assumed: one ФН message holds 1024 data bytes).
MAX_REQUISITE_BLOCK = 1024

_GENERIC = 0x55  # 'U'
_STATE = 0x44  # 'D'
_NAME_WIDTH = 64
_ITEM_RESERVED = 17
_E = TypeVar("_E", bound=enum.IntEnum)


class ErrorCode(enum.IntEnum):
    """Result codes (коды ошибок) of ``55h error ext``: S7's list and S6's ``Errors``."""

    NO_ERROR = 0x00
    WRONG_PRICE = 0x08
    WRONG_QUANTITY = 0x0A
    CASH_COUNTER_OVERFLOW = 0x0B
    CANNOT_STORNO_LAST = 0x0C
    CANNOT_STORNO_BY_CODE = 0x0D
    CANNOT_REPEAT_LAST = 0x0E
    DISCOUNT_ALREADY_GIVEN = 0x0F
    CANNOT_DISCOUNT_PREVIOUS = 0x10
    WRONG_ITEM_CODE = 0x11
    WRONG_BARCODE = 0x12
    WRONG_FORMAT = 0x13
    WRONG_LENGTH = 0x14
    BLOCKED_IN_DATE_ENTRY = 0x15
    DATE_CONFIRMATION_NEEDED = 0x16
    NO_MORE_DATA = 0x18
    NO_INCOME_CONFIRMATION = 0x19
    Z_REPORT_INTERRUPTED = 0x1A
    CANNOT_DISABLE_CASH_CONTROL = 0x1B
    MODE_ENTRY_BLOCKED = 0x1E
    CHECK_DATE_AND_TIME = 0x1F
    CLOCK_BEHIND_FN = 0x20
    ARCHIVE_CLOSE_FAILED = 0x21
    ITEM_NOT_FOUND = 0x3D
    # 45h, 46h, 9Ah and D0h: not in the reference; numbered as on the older ATOL protocols.
    PAYMENTS_BELOW_TOTAL = 0x45  # сумма оплат меньше итога чека
    NON_CASH_OVER_TOTAL = 0x46  # безналичные оплаты больше итога чека
    WRONG_MODE = 0x66
    NO_PAPER = 0x67
    NO_PRINTER_LINK = 0x68
    SHIFT_OVER_24_HOURS = 0x88
    WRONG_PASSWORD = 0x8C
    RECEIPT_CLOSED = 0x9A  # чек закрыт — операция невозможна
    RECEIPT_OPEN = 0x9B
    SHIFT_OPEN = 0x9C
    FN_ERROR = 0xD0  # ошибка ФН: the ФН's result code in the extended byte


class Mode(enum.IntEnum):
    """Register modes (режимы ККТ), the low nibble of the state answer's mode byte."""

    SELECT = 0
    REGISTRATION = 1
    X_REPORTS = 2
    Z_REPORTS = 3
    PROGRAMMING = 4
    MODE_5 = 5  # S7 names it "EnterWTF"; its meaning is not documented
    FISCAL_STORAGE = 6
    ADDITIONAL = 7


class ReceiptType(enum.IntEnum):
    """Receipt types (тип чека): приход, возврат прихода, расход, возврат расхода, and the
    correction receipts (чек коррекции, document 31) of each."""

    SALE = 1
    SALE_RETURN = 2
    PURCHASE = 4
    PURCHASE_RETURN = 5
    CORRECTION_SALE = 7  # чек коррекции прихода
    CORRECTION_SALE_RETURN = 8  # чек коррекции возврата прихода
    CORRECTION_PURCHASE = 9  # чек коррекции расхода
    CORRECTION_PURCHASE_RETURN = 10  # чек коррекции возврата расхода


#: The receipt types that open a correction receipt (document 31).
CORRECTION_TYPES = frozenset(
    {
        ReceiptType.CORRECTION_SALE,
        ReceiptType.CORRECTION_SALE_RETURN,
        ReceiptType.CORRECTION_PURCHASE,
        ReceiptType.CORRECTION_PURCHASE_RETURN,
    }
)


class PaymentType(enum.IntEnum):
    """Payment types (тип оплаты), as S6 numbers them."""

    CASH = 1
    ELECTRONIC = 2
    ADVANCE = 3
    CREDIT = 4
    OTHER = 5


class StatusFlags(enum.IntFlag):
    """The flag byte of the state answer (флаги состояния); bit 4 is undocumented."""

    NONE = 0
    FISCALIZED = 0x01
    SHIFT_OPEN = 0x02
    DRAWER_OPEN = 0x04
    PAPER_PRESENT = 0x08
    COVER_OPEN = 0x20
    FN_ACTIVE = 0x40
    BATTERY_LOW = 0x80


class OfdExchangeFlags(enum.IntFlag):
    """The OFD exchange state byte (статус информационного обмена с ОФД)."""

    NONE = 0
    CONNECTED = 0x01
    UNSENT_DOCUMENTS = 0x02
    AWAITING_RECEIPT = 0x04
    OFD_COMMAND = 0x08
    SETTINGS_CHANGED = 0x10
    AWAITING_COMMAND_ANSWER = 0x20


##########################################################################################
# Field codecs and validators


def encode_bcd(value: int, width: int, path: str = "") -> bytes:
    """``value`` as ``width`` bytes of packed BCD, most significant first."""
    if not 0 <= value < 100**width:
        raise AtolError(f"{value} does not fit {width} BCD bytes", path)
    return bytes.fromhex(f"{value:0{2 * width}d}")


def decode_bcd(raw: bytes, path: str = "") -> int:
    """Packed BCD, most significant first; a nibble above 9 is an :class:`AtolError`."""
    digits = raw.hex()
    if not digits.isdigit():
        raise AtolError(f"{digits} is not BCD", path)
    return int(digits)


def _encode_text(text: str, path: str) -> bytes:
    try:
        return text.encode("cp866")
    except UnicodeEncodeError as exc:
        raise AtolError(f"{text[exc.start]!r} has no CP866 code", path) from None


def _enum(cls: type[_E], value: int, path: str) -> _E:
    try:
        return cls(value)
    except ValueError:
        raise AtolError(f"{value} is not a known {cls.__name__}", path) from None


def _bool(raw: int, path: str) -> bool:
    if raw not in (0, 1):
        raise AtolError(f"{raw} is not a boolean 0 or 1", path)
    return raw == 1


def _need(data: bytes, length: int, what: str) -> None:
    if len(data) != length:
        raise AtolError(f"{what} has {length} bytes, got {len(data)}", what)


Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def _uint(limit: int) -> Validator:
    def check(_: object, attribute: attrs.Attribute[int], value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < limit:
            raise AtolError(f"{value!r} is not an integer 0…{limit - 1}", attribute.name)

    return check


_byte = _uint(0x100)
_nibble = _uint(0x10)
_u16 = _uint(0x10000)
_u32 = _uint(0x1_0000_0000)


def _bcd(width: int) -> Validator:
    return _uint(100**width)


def _is_bool(_: object, attribute: attrs.Attribute[bool], value: bool) -> None:
    if not isinstance(value, bool):
        raise AtolError(f"{value!r} is not a bool", attribute.name)


def _is_enum(cls: type[enum.IntEnum]) -> Validator:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, cls):
            raise AtolError(f"{value!r} is not a {cls.__name__}", attribute.name)

    return check


def _flag_byte(cls: type[enum.IntFlag]) -> Validator:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, cls) or not 0 <= value <= 0xFF:
            raise AtolError(f"{value!r} is not a {cls.__name__} byte", attribute.name)

    return check


def _exact_bytes(length: int) -> Validator:
    def check(_: object, attribute: attrs.Attribute[bytes], value: bytes) -> None:
        if not isinstance(value, bytes) or len(value) != length:
            raise AtolError(f"must be {length} bytes", attribute.name)

    return check


def _cp866(max_bytes: int | None, *, padded: bool) -> Validator:
    def check(_: object, attribute: attrs.Attribute[str], value: str) -> None:
        encoded = _encode_text(value, attribute.name)
        if max_bytes is not None and len(encoded) > max_bytes:
            raise AtolError(f"{len(encoded)} bytes in CP866, at most {max_bytes}", attribute.name)
        if padded and "\x00" in value:
            raise AtolError("NUL pads the field on the wire and cannot be text", attribute.name)

    return check


def _quantity(_: object, attribute: attrs.Attribute[Decimal], value: Decimal) -> None:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise AtolError(f"{value!r} is not a finite Decimal", attribute.name)
    thousandths = value.scaleb(3)
    if thousandths != thousandths.to_integral_value() or not 0 <= thousandths < 10**10:
        raise AtolError(f"{value} is not 0…9999999.999 in steps of 0.001", attribute.name)


def _clock(years: range, *, seconds: bool) -> Validator:
    def check(_: object, attribute: attrs.Attribute[Any], value: datetime | None) -> None:
        if value is None and not seconds:
            return
        if not isinstance(value, datetime) or value.tzinfo is not None:
            raise AtolError(f"{value!r} is not a naive datetime", attribute.name)
        if value.year not in years or value.microsecond or (value.second and not seconds):
            raise AtolError(f"{value} does not fit the wire's date fields", attribute.name)

    return check


def _bcd_clock(raw: bytes, path: str) -> datetime:
    yy, mo, dd, hh, mi, ss = (decode_bcd(raw[i : i + 1], path) for i in range(6))
    try:
        return datetime(2000 + yy, mo, dd, hh, mi, ss)
    except ValueError as exc:
        raise AtolError(str(exc), path) from None


def _ok_body(data: bytes, what: str, length: int | None = None) -> bytes:
    """The data of a ``55 00 data`` answer."""
    if data[:2] != b"\x55\x00":
        raise AtolError("a ФН answer starts with 55 00", what)
    if length is not None:
        _need(data[2:], length, what)
    return data[2:]


##########################################################################################
# Answers


@attrs.frozen(kw_only=True, slots=True)
class CommandAnswer:
    """The generic answer ``55h error ext`` (ответ на команду); error 0 means done."""

    error: int = attrs.field(default=ErrorCode.NO_ERROR, validator=_byte)
    extended: int = attrs.field(default=0, validator=_byte)

    @property
    def ok(self) -> bool:
        return self.error == ErrorCode.NO_ERROR

    def encode(self) -> bytes:
        return bytes((_GENERIC, self.error, self.extended))

    @classmethod
    def decode(cls, data: bytes) -> Self:
        if len(data) != 3 or data[0] != _GENERIC:
            raise AtolError("the generic answer is 55 error ext", "answer")
        return cls(error=data[1], extended=data[2])


@attrs.frozen(kw_only=True, slots=True)
class PaymentAnswer:
    """The answer to a payment: ``55 error ext``, what is left to pay and the change (BCD5)."""

    error: int = attrs.field(default=ErrorCode.NO_ERROR, validator=_byte)
    extended: int = attrs.field(default=0, validator=_byte)
    remainder: int = attrs.field(validator=_bcd(5))
    change: int = attrs.field(validator=_bcd(5))

    def encode(self) -> bytes:
        return (
            bytes((_GENERIC, self.error, self.extended))
            + encode_bcd(self.remainder, 5)
            + encode_bcd(self.change, 5)
        )

    @classmethod
    def decode(cls, data: bytes) -> Self:
        _need(data, 13, "payment answer")
        if data[0] != _GENERIC:
            raise AtolError("a payment answer starts with 55", "answer")
        return cls(
            error=data[1],
            extended=data[2],
            remainder=decode_bcd(data[3:8], "remainder"),
            change=decode_bcd(data[8:13], "change"),
        )


@attrs.frozen(kw_only=True, slots=True)
class DeviceStatus:
    """The state answer ``44h 'D'`` (запрос состояния ККТ, 3Fh): 30 bytes (S6)."""

    cashier: int = attrs.field(validator=_bcd(1))
    number_in_hall: int = attrs.field(validator=_byte)
    clock: datetime = attrs.field(validator=_clock(range(2000, 2100), seconds=True))
    flags: StatusFlags = attrs.field(validator=_flag_byte(StatusFlags))
    serial_number: int = attrs.field(validator=_bcd(4))
    model: int = attrs.field(validator=_byte)
    reserved: bytes = attrs.field(default=b"\x00\x00", validator=_exact_bytes(2))
    mode: int = attrs.field(validator=_nibble)
    submode: int = attrs.field(validator=_nibble)
    receipt_number: int = attrs.field(validator=_bcd(2))
    shift_number: int = attrs.field(validator=_bcd(2))
    receipt_state: int = attrs.field(validator=_byte)
    receipt_total: int = attrs.field(validator=_bcd(5))
    decimal_places: int = attrs.field(default=2, validator=_byte)
    port: int = attrs.field(validator=_byte)

    def encode(self) -> bytes:
        c = self.clock
        clock = b"".join(
            encode_bcd(part, 1)
            for part in (c.year - 2000, c.month, c.day, c.hour, c.minute, c.second)
        )
        return b"".join(
            (
                bytes((_STATE,)),
                encode_bcd(self.cashier, 1),
                bytes((self.number_in_hall,)),
                clock,
                bytes((self.flags,)),
                encode_bcd(self.serial_number, 4),
                bytes((self.model,)),
                self.reserved,
                bytes((self.submode << 4 | self.mode,)),
                encode_bcd(self.receipt_number, 2),
                encode_bcd(self.shift_number, 2),
                bytes((self.receipt_state,)),
                encode_bcd(self.receipt_total, 5),
                bytes((self.decimal_places, self.port)),
            )
        )

    @classmethod
    def decode(cls, data: bytes) -> Self:
        _need(data, 30, "state answer")
        if data[0] != _STATE:
            raise AtolError("the state answer starts with 44 'D'", "answer")
        return cls(
            cashier=decode_bcd(data[1:2], "cashier"),
            number_in_hall=data[2],
            clock=_bcd_clock(data[3:9], "clock"),
            flags=StatusFlags(data[9]),
            serial_number=decode_bcd(data[10:14], "serial_number"),
            model=data[14],
            reserved=data[15:17],
            mode=data[17] & 0x0F,
            submode=data[17] >> 4,
            receipt_number=decode_bcd(data[18:20], "receipt_number"),
            shift_number=decode_bcd(data[20:22], "shift_number"),
            receipt_state=data[22],
            receipt_total=decode_bcd(data[23:28], "receipt_total"),
            decimal_places=data[28],
            port=data[29],
        )


_SHIFT = struct.Struct("<BHH")
_OFD = struct.Struct("<BBHI5B")
_DOCUMENT = struct.Struct("<HH")


@attrs.frozen(kw_only=True, slots=True)
class ShiftState:
    """A4 10 answer: the shift state (состояние смены) from the ФН."""

    shift_open: bool = attrs.field(validator=_is_bool)
    shift_number: int = attrs.field(validator=_u16)
    receipt_number: int = attrs.field(validator=_u16)

    def encode(self) -> bytes:
        return b"\x55\x00" + _SHIFT.pack(self.shift_open, self.shift_number, self.receipt_number)

    @classmethod
    def decode(cls, data: bytes) -> Self:
        is_open, shift, receipt = _SHIFT.unpack(_ok_body(data, "shift state", _SHIFT.size))
        return cls(
            shift_open=_bool(is_open, "shift_open"), shift_number=shift, receipt_number=receipt
        )


@attrs.frozen(kw_only=True, slots=True)
class OfdExchangeStatus:
    """A4 20 answer: the OFD exchange state (статус информационного обмена с ОФД)."""

    flags: OfdExchangeFlags = attrs.field(validator=_flag_byte(OfdExchangeFlags))
    reading_message: bool = attrs.field(validator=_is_bool)
    unsent_count: int = attrs.field(validator=_u16)
    first_unsent_number: int = attrs.field(validator=_u32)
    #: None when the queue is empty (the wire carries zeros); minutes, no seconds.
    first_unsent_time: datetime | None = attrs.field(
        validator=_clock(range(2000, 2256), seconds=False)
    )

    def encode(self) -> bytes:
        t = self.first_unsent_time
        clock = (0, 0, 0, 0, 0) if t is None else (t.year - 2000, t.month, t.day, t.hour, t.minute)
        return b"\x55\x00" + _OFD.pack(
            self.flags, self.reading_message, self.unsent_count, self.first_unsent_number, *clock
        )

    @classmethod
    def decode(cls, data: bytes) -> Self:
        flags, reading, count, number, *clock = _OFD.unpack(
            _ok_body(data, "OFD exchange state", _OFD.size)
        )
        first_unsent_time = None
        if any(clock):
            yy, mo, dd, hh, mi = clock
            try:
                first_unsent_time = datetime(2000 + yy, mo, dd, hh, mi)
            except ValueError as exc:
                raise AtolError(str(exc), "first_unsent_time") from None
        return cls(
            flags=OfdExchangeFlags(flags),
            reading_message=_bool(reading, "reading_message"),
            unsent_count=count,
            first_unsent_number=number,
            first_unsent_time=first_unsent_time,
        )


@attrs.frozen(kw_only=True, slots=True)
class DocumentInfo:
    """A4 45 answer: the type and size of a ФН document found by number."""

    document_type: int = attrs.field(validator=_u16)
    size: int = attrs.field(validator=_u16)

    def encode(self) -> bytes:
        return b"\x55\x00" + _DOCUMENT.pack(self.document_type, self.size)

    @classmethod
    def decode(cls, data: bytes) -> Self:
        kind, size = _DOCUMENT.unpack(_ok_body(data, "document info", _DOCUMENT.size))
        return cls(document_type=kind, size=size)


@attrs.frozen(kw_only=True, slots=True)
class DocumentData:
    """A4 46 answer: the TLV bytes of the selected ФН document (документ из архива ФН)."""

    tlv: bytes

    def encode(self) -> bytes:
        return b"\x55\x00" + self.tlv

    @classmethod
    def decode(cls, data: bytes) -> Self:
        return cls(tlv=_ok_body(data, "document data"))


_FN_STATUS = struct.Struct("<5B5B16sI")
_FN_EXPIRY = struct.Struct("<5B")


def _date(_: object, attribute: attrs.Attribute[date], value: date) -> None:
    if type(value) is not date or value.year not in range(2000, 2256):
        raise AtolError(f"{value!r} is not a date the wire's YY MM DD can carry", attribute.name)


@attrs.frozen(kw_only=True, slots=True)
class FnExpiry:
    """A4 32 answer: срок действия ФН, the ФН's 32h answer (S3, registers.md §3.3) after ``55 00``.

    The keys' last day (DATE YY MM DD) and the re-registrations left and done; the layout
    is assumed (see the module's notes), the fields are the ФН's.
    """

    expires: date = attrs.field(validator=_date)
    registrations_left: int = attrs.field(validator=_byte)
    registrations_done: int = attrs.field(validator=_byte)

    def encode(self) -> bytes:
        e = self.expires
        return b"\x55\x00" + _FN_EXPIRY.pack(
            e.year - 2000, e.month, e.day, self.registrations_left, self.registrations_done
        )

    @classmethod
    def decode(cls, data: bytes) -> Self:
        yy, mo, dd, left, done = _FN_EXPIRY.unpack(_ok_body(data, "ФН expiry", _FN_EXPIRY.size))
        try:
            expires = date(2000 + yy, mo, dd)
        except ValueError as exc:
            raise AtolError(str(exc), "expires") from None
        return cls(expires=expires, registrations_left=left, registrations_done=done)


def _fn_number(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or len(value) != 16 or not value.isascii():
        raise AtolError(f"{value!r} is not 16 ASCII characters", attribute.name)


@attrs.frozen(kw_only=True, slots=True)
class FnStatus:
    """A4 30 answer: the ФН's status (статус ФН), its 30h answer (S3) after ``55 00``.

    Phase (фаза жизни) and warnings (флаги предупреждения, 1050–1053) are the ФН's codes, kept
    as ints (:class:`protocols.fn.FnPhase`, :class:`protocols.fn.FnWarning` read them). The
    current document is the ФН's code: 00h none, 04h a receipt, 14h a correction receipt.
    """

    phase: int = attrs.field(validator=_byte)
    current_document: int = attrs.field(default=0, validator=_byte)
    document_data: bool = attrs.field(default=False, validator=_is_bool)
    shift_open: bool = attrs.field(validator=_is_bool)
    warnings: int = attrs.field(default=0, validator=_byte)
    #: The last document's time (1012); None when the wire carries zeros. Minutes, no seconds.
    last_document_time: datetime | None = attrs.field(
        validator=_clock(range(2000, 2256), seconds=False)
    )
    fn_number: str = attrs.field(validator=_fn_number)  # 1041 номер ФН
    last_fd_number: int = attrs.field(validator=_u32)  # 1040 of the last document, 0 if none

    def encode(self) -> bytes:
        t = self.last_document_time
        clock = (0, 0, 0, 0, 0) if t is None else (t.year - 2000, t.month, t.day, t.hour, t.minute)
        return b"\x55\x00" + _FN_STATUS.pack(
            self.phase,
            self.current_document,
            self.document_data,
            self.shift_open,
            self.warnings,
            *clock,
            self.fn_number.encode("ascii"),
            self.last_fd_number,
        )

    @classmethod
    def decode(cls, data: bytes) -> Self:
        phase, current, has_data, is_open, warnings, *rest = _FN_STATUS.unpack(
            _ok_body(data, "ФН status", _FN_STATUS.size)
        )
        *clock, number, last_fd = rest
        last_document_time = None
        if any(clock):
            yy, mo, dd, hh, mi = clock
            try:
                last_document_time = datetime(2000 + yy, mo, dd, hh, mi)
            except ValueError as exc:
                raise AtolError(str(exc), "last_document_time") from None
        try:
            fn_number = number.decode("ascii")
        except UnicodeDecodeError:
            raise AtolError(f"{number!r} is not ASCII", "fn_number") from None
        return cls(
            phase=phase,
            current_document=current,
            document_data=_bool(has_data, "document_data"),
            shift_open=_bool(is_open, "shift_open"),
            warnings=warnings,
            last_document_time=last_document_time,
            fn_number=fn_number,
            last_fd_number=last_fd,
        )


def _blob(limit: int) -> Validator:
    def check(_: object, attribute: attrs.Attribute[bytes], value: bytes) -> None:
        if not isinstance(value, bytes) or len(value) > limit:
            raise AtolError(f"must be at most {limit} bytes", attribute.name)

    return check


_PENDING = b"\x55\x00\x00"
_MARKING_HEAD = struct.Struct("<5B")


@attrs.frozen(kw_only=True, slots=True)
class MarkingCheckPending:
    """D2h answer while the КМ check still runs (проверка КМ не завершена): ``55 00 00``."""

    def encode(self) -> bytes:
        return _PENDING

    @classmethod
    def decode(cls, data: bytes) -> Self:
        if data != _PENDING:
            raise AtolError("a pending check answers 55 00 00", "answer")
        return cls()


@attrs.frozen(kw_only=True, slots=True)
class MarkingCheckResult:
    """D2h answer once the КМ check is done (результат проверки КМ).

    ``55 00 01 | 2004 | reason | 2100 | 2106 | length | online``: the ФН's own check (2004 bits,
    :class:`~protocols.fn.LocalCheckReason`), the code's type (2100), the ФН's result for the
    line (2106), then the online part as Shtrih's FF61h has it less its 2106: empty when no
    online check was made (автономный режим), else the ФН's answer code
    (:class:`~protocols.fn.OnlineCheckCode`) and, after 00h, the server's TLV.
    """

    local_status: int = attrs.field(validator=_byte)
    local_reason: int = attrs.field(validator=_byte)
    code_type: int = attrs.field(validator=_byte)
    check_result: int = attrs.field(validator=_byte)
    online: bytes = attrs.field(default=b"", validator=_blob(0xFF))

    @property
    def online_code(self) -> int | None:
        """The ФН's answer code to the online check; FFh: the ОИСМ did not answer in time."""
        return self.online[0] if self.online else None

    @property
    def server_tlv(self) -> bytes:
        """The ОИСМ's answer tags (2005, 2105, 2109 …) when it answered (code 00h)."""
        return self.online[1:] if self.online_code == 0 else b""

    def encode(self) -> bytes:
        head = (self.local_status, self.local_reason, self.code_type, self.check_result)
        return b"\x55\x00\x01" + _MARKING_HEAD.pack(*head, len(self.online)) + self.online

    @classmethod
    def decode(cls, data: bytes) -> Self:
        body = _ok_body(data, "marking check result")
        if body[:1] != b"\x01" or len(body) < 1 + _MARKING_HEAD.size:
            raise AtolError("a finished check answers 55 00 01 and five bytes", "answer")
        *head, length = _MARKING_HEAD.unpack_from(body, 1)
        online = body[1 + _MARKING_HEAD.size :]
        _need(online, length, "online")
        status, reason, kind, result = head
        return cls(
            local_status=status,
            local_reason=reason,
            code_type=kind,
            check_result=result,
            online=online,
        )


@attrs.frozen(kw_only=True, slots=True)
class MarkingDecision:
    """D3h / D4h answer: ``55 00 | 2106`` of the КМ accepted or declined."""

    check_result: int = attrs.field(validator=_byte)

    def encode(self) -> bytes:
        return bytes((_GENERIC, 0, self.check_result))

    @classmethod
    def decode(cls, data: bytes) -> Self:
        return cls(check_result=_ok_body(data, "marking decision", 1)[0])


Answer = (
    CommandAnswer
    | PaymentAnswer
    | DeviceStatus
    | ShiftState
    | OfdExchangeStatus
    | DocumentInfo
    | DocumentData
    | FnStatus
    | FnExpiry
    | MarkingCheckPending
    | MarkingCheckResult
    | MarkingDecision
)


def _fn_answer(
    cls: type[
        ShiftState
        | OfdExchangeStatus
        | DocumentInfo
        | DocumentData
        | FnStatus
        | FnExpiry
        | MarkingCheckResult
        | MarkingDecision
    ],
    data: bytes,
) -> Answer:
    """An A4 xx answer: ``55 00 data``, or ``55 error ext`` when the command failed."""
    if len(data) == 3 and data[0] == _GENERIC and data[1] != 0:
        return CommandAnswer.decode(data)
    return cls.decode(data)


##########################################################################################
# Requests


@attrs.frozen(kw_only=True, slots=True)
class Request:
    """A request's common head: the access password (пароль доступа), two BCD bytes."""

    code: ClassVar[bytes] = b""
    password: int = attrs.field(default=0, validator=_bcd(2))

    def encode(self) -> bytes:
        return encode_bcd(self.password, 2) + self.code + self._params()

    def _params(self) -> bytes:
        return b""

    @classmethod
    def decode(cls, data: bytes) -> Self:
        head = 2 + len(cls.code)
        if len(data) < head or data[2:head] != cls.code:
            raise AtolError(f"not a {cls.__name__} request", "command")
        return cls._from_params(decode_bcd(data[:2], "password"), data[head:])

    @classmethod
    def _from_params(cls, password: int, params: bytes) -> Self:
        _need(params, 0, "parameters")
        return cls(password=password)

    @classmethod
    def decode_answer(cls, data: bytes) -> Answer:
        return CommandAnswer.decode(data)


@attrs.frozen(kw_only=True, slots=True)
class GetDeviceStatus(Request):
    """3Fh state request (запрос состояния); answers :class:`DeviceStatus`."""

    code: ClassVar[bytes] = b"\x3f"

    @classmethod
    def decode_answer(cls, data: bytes) -> Answer:
        if data[:1] == bytes((_STATE,)):
            return DeviceStatus.decode(data)
        return CommandAnswer.decode(data)


@attrs.frozen(kw_only=True, slots=True)
class EnterMode(Request):
    """56h enter mode (вход в режим) with the mode's own password, four BCD bytes."""

    code: ClassVar[bytes] = b"\x56"
    mode: int = attrs.field(validator=_byte)
    mode_password: int = attrs.field(default=0, validator=_bcd(4))

    def _params(self) -> bytes:
        return bytes((self.mode,)) + encode_bcd(self.mode_password, 4)

    @classmethod
    def _from_params(cls, password: int, params: bytes) -> Self:
        _need(params, 5, "parameters")
        return cls(
            password=password, mode=params[0], mode_password=decode_bcd(params[1:], "mode_password")
        )


@attrs.frozen(kw_only=True, slots=True)
class ExitMode(Request):
    """48h exit to the select mode (выход в режим выбора)."""

    code: ClassVar[bytes] = b"\x48"


@attrs.frozen(kw_only=True, slots=True)
class OpenShift(Request):
    """9Ah open shift (открыть смену): a flag byte and optional CP866 text."""

    code: ClassVar[bytes] = b"\x9a"
    flags: int = attrs.field(default=0, validator=_byte)
    text: str = attrs.field(default="", validator=_cp866(None, padded=False))

    def _params(self) -> bytes:
        return bytes((self.flags,)) + _encode_text(self.text, "text")

    @classmethod
    def _from_params(cls, password: int, params: bytes) -> Self:
        if not params:
            raise AtolError("open shift has a flag byte", "flags")
        return cls(password=password, flags=params[0], text=params[1:].decode("cp866"))


@attrs.frozen(kw_only=True, slots=True)
class CloseShift(Request):
    """5Ah Z-report, which closes the shift (отчёт с гашением, закрытие смены)."""

    code: ClassVar[bytes] = b"\x5a"


@attrs.frozen(kw_only=True, slots=True)
class OpenReceipt(Request):
    """92h open receipt (открыть чек): a flag byte and the receipt type."""

    code: ClassVar[bytes] = b"\x92"
    flags: int = attrs.field(default=0, validator=_byte)
    receipt_type: ReceiptType = attrs.field(validator=_is_enum(ReceiptType))

    def _params(self) -> bytes:
        return bytes((self.flags, self.receipt_type))

    @classmethod
    def _from_params(cls, password: int, params: bytes) -> Self:
        _need(params, 2, "parameters")
        return cls(
            password=password,
            flags=params[0],
            receipt_type=_enum(ReceiptType, params[1], "receipt_type"),
        )


_ITEM = struct.Struct(f">B{_NAME_WIDTH}s6s5sBB6sBB{_ITEM_RESERVED}s")


@attrs.frozen(kw_only=True, slots=True)
class RegisterItem(Request):
    """E6h register item (регистрация позиции), 103 parameter bytes (S6).

    Name: 64 bytes CP866 padded with NUL. Price: BCD6 kopecks. Quantity: BCD5 thousandths.
    Discount: its kind (S6 always sends 1), a surcharge flag (0 discount, 1 surcharge) and a
    BCD6 amount in kopecks. Then the tax code and the department (секция), one byte each.
    """

    code: ClassVar[bytes] = b"\xe6"
    flags: int = attrs.field(default=0, validator=_byte)
    name: str = attrs.field(validator=_cp866(_NAME_WIDTH, padded=True))
    price: int = attrs.field(validator=_bcd(6))
    quantity: Decimal = attrs.field(validator=_quantity)
    discount_type: int = attrs.field(default=1, validator=_byte)
    surcharge: bool = attrs.field(default=False, validator=_is_bool)
    discount: int = attrs.field(default=0, validator=_bcd(6))
    tax: int = attrs.field(default=0, validator=_byte)
    department: int = attrs.field(default=1, validator=_byte)
    reserved: bytes = attrs.field(default=bytes(_ITEM_RESERVED), validator=_exact_bytes(17))

    def _params(self) -> bytes:
        return _ITEM.pack(
            self.flags,
            _encode_text(self.name, "name"),
            encode_bcd(self.price, 6),
            encode_bcd(int(self.quantity.scaleb(3)), 5),
            self.discount_type,
            self.surcharge,
            encode_bcd(self.discount, 6),
            self.tax,
            self.department,
            self.reserved,
        )

    @classmethod
    def _from_params(cls, password: int, params: bytes) -> Self:
        _need(params, _ITEM.size, "parameters")
        flags, name, price, qty, kind, sign, discount, tax, dept, reserved = _ITEM.unpack(params)
        name = name.rstrip(b"\x00")
        if b"\x00" in name:
            raise AtolError("NUL inside the name", "name")
        return cls(
            password=password,
            flags=flags,
            name=name.decode("cp866"),
            price=decode_bcd(price, "price"),
            quantity=Decimal(decode_bcd(qty, "quantity")).scaleb(-3),
            discount_type=kind,
            surcharge=_bool(sign, "surcharge"),
            discount=decode_bcd(discount, "discount"),
            tax=tax,
            department=dept,
            reserved=reserved,
        )


@attrs.frozen(kw_only=True, slots=True)
class Payment(Request):
    """99h payment (расчёт по чеку): payment type and BCD5 amount; answers what is left."""

    code: ClassVar[bytes] = b"\x99"
    flags: int = attrs.field(default=0, validator=_byte)
    payment_type: PaymentType = attrs.field(validator=_is_enum(PaymentType))
    amount: int = attrs.field(validator=_bcd(5))

    def _params(self) -> bytes:
        return bytes((self.flags, self.payment_type)) + encode_bcd(self.amount, 5)

    @classmethod
    def _from_params(cls, password: int, params: bytes) -> Self:
        _need(params, 7, "parameters")
        return cls(
            password=password,
            flags=params[0],
            payment_type=_enum(PaymentType, params[1], "payment_type"),
            amount=decode_bcd(params[2:], "amount"),
        )

    @classmethod
    def decode_answer(cls, data: bytes) -> Answer:
        if len(data) == 13:
            return PaymentAnswer.decode(data)
        return CommandAnswer.decode(data)


@attrs.frozen(kw_only=True, slots=True)
class CloseReceipt(Request):
    """4Ah close receipt with change (закрыть чек со сдачей); amount 0 = the receipt total."""

    code: ClassVar[bytes] = b"\x4a"
    flags: int = attrs.field(default=0, validator=_byte)
    payment_type: PaymentType = attrs.field(validator=_is_enum(PaymentType))
    amount: int = attrs.field(default=0, validator=_bcd(5))

    def _params(self) -> bytes:
        return bytes((self.flags, self.payment_type)) + encode_bcd(self.amount, 5)

    @classmethod
    def _from_params(cls, password: int, params: bytes) -> Self:
        _need(params, 7, "parameters")
        return cls(
            password=password,
            flags=params[0],
            payment_type=_enum(PaymentType, params[1], "payment_type"),
            amount=decode_bcd(params[2:], "amount"),
        )


@attrs.frozen(kw_only=True, slots=True)
class CancelReceipt(Request):
    """59h cancel the open receipt (аннулирование чека)."""

    code: ClassVar[bytes] = b"\x59"


@attrs.frozen(kw_only=True, slots=True)
class GetShiftState(Request):
    """A4 10 shift state from the ФН; answers :class:`ShiftState`."""

    code: ClassVar[bytes] = b"\xa4\x10"

    @classmethod
    def decode_answer(cls, data: bytes) -> Answer:
        return _fn_answer(ShiftState, data)


@attrs.frozen(kw_only=True, slots=True)
class GetOfdExchangeStatus(Request):
    """A4 20 OFD exchange state; answers :class:`OfdExchangeStatus`."""

    code: ClassVar[bytes] = b"\xa4\x20"

    @classmethod
    def decode_answer(cls, data: bytes) -> Answer:
        return _fn_answer(OfdExchangeStatus, data)


@attrs.frozen(kw_only=True, slots=True)
class GetDocumentInfo(Request):
    """A4 45 select a ФН document by number; answers :class:`DocumentInfo`."""

    code: ClassVar[bytes] = b"\xa4\x45"
    number: int = attrs.field(validator=_u32)

    @classmethod
    def decode_answer(cls, data: bytes) -> Answer:
        return _fn_answer(DocumentInfo, data)

    def _params(self) -> bytes:
        return struct.pack("<I", self.number)

    @classmethod
    def _from_params(cls, password: int, params: bytes) -> Self:
        _need(params, 4, "parameters")
        return cls(password=password, number=int.from_bytes(params, "little"))


@attrs.frozen(kw_only=True, slots=True)
class ReadDocumentData(Request):
    """A4 46 read the selected ФН document (чтение документа); answers :class:`DocumentData`."""

    code: ClassVar[bytes] = b"\xa4\x46"

    @classmethod
    def decode_answer(cls, data: bytes) -> Answer:
        return _fn_answer(DocumentData, data)


@attrs.frozen(kw_only=True, slots=True)
class GetFnStatus(Request):
    """A4 30 the ФН's status (запрос статуса ФН); answers :class:`FnStatus`."""

    code: ClassVar[bytes] = b"\xa4\x30"

    @classmethod
    def decode_answer(cls, data: bytes) -> Answer:
        return _fn_answer(FnStatus, data)


@attrs.frozen(kw_only=True, slots=True)
class GetFnExpiry(Request):
    """A4 32 срок действия ФН (the keys' last day); answers :class:`FnExpiry`."""

    code: ClassVar[bytes] = b"\xa4\x32"

    @classmethod
    def decode_answer(cls, data: bytes) -> Answer:
        return _fn_answer(FnExpiry, data)


def _requisite_block(_: object, attribute: attrs.Attribute[bytes], value: bytes) -> None:
    if not isinstance(value, bytes) or not 0 < len(value) <= MAX_REQUISITE_BLOCK:
        raise AtolError(f"must be 1…{MAX_REQUISITE_BLOCK} bytes", attribute.name)


@attrs.frozen(kw_only=True, slots=True)
class WriteRequisite(Request):
    """E8h write a requisite (записать реквизит ФН): FFD TLVs for the open receipt or its item.

    ``flags | block count | block number | data``. What E6h, 99h and 4Ah cannot say goes here:
    1214/1212, the marking (1163, 2xxx), agent data, 1192, 1084, 1008, the cashier, 1173/1174 …
    All of the layout is assumed (no public source shows E8h): bit 0 of ``flags``
    (:data:`FLAG_ITEM_REQUISITE`) attaches the data to the last registered item (1059), else to
    the receipt; data longer than :data:`MAX_REQUISITE_BLOCK` goes in ``block_count`` blocks
    numbered from 0 that the register joins; the joined data is one or more whole TLVs (tag
    and length little-endian, as the ФН takes them). The answer is the generic ``55 error ext``.
    """

    code: ClassVar[bytes] = b"\xe8"
    flags: int = attrs.field(default=0, validator=_byte)
    block_count: int = attrs.field(default=1, validator=_byte)
    block_number: int = attrs.field(default=0, validator=_byte)
    data: bytes = attrs.field(validator=_requisite_block)

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.block_number < self.block_count:
            raise AtolError(
                f"block {self.block_number} of {self.block_count}: blocks run 0…count-1",
                "block_number",
            )

    @property
    def for_item(self) -> bool:
        """The data belongs to the last registered item (реквизит предмета расчёта)."""
        return bool(self.flags & FLAG_ITEM_REQUISITE)

    def _params(self) -> bytes:
        return bytes((self.flags, self.block_count, self.block_number)) + self.data

    @classmethod
    def _from_params(cls, password: int, params: bytes) -> Self:
        if len(params) < 4:
            raise AtolError("E8h has flags, block count, block number and data", "parameters")
        return cls(
            password=password,
            flags=params[0],
            block_count=params[1],
            block_number=params[2],
            data=params[3:],
        )


@attrs.frozen(kw_only=True, slots=True)
class BeginMarkingCheck(Request):
    """D1h begin the check of a marking code (начать проверку КМ; assumed, see the module).

    ``planned_status | processing_mode | code length | code | tlv``: 2003 планируемый статус
    товара (:class:`~protocols.tlv.enums.PlannedStatus`), 2102 режим обработки КМ (0), the КМ
    as scanned (2000, GS bytes included) and, for measured goods, the TLVs of 2108 мера
    количества, 1023 количество and 1291 дробное количество, as FF61h carries them. The check
    runs on after the generic answer; :class:`GetMarkingCheckStatus` says when it is done.
    """

    code: ClassVar[bytes] = b"\xd1"
    planned_status: int = attrs.field(validator=_byte)
    processing_mode: int = attrs.field(default=0, validator=_byte)
    marking_code: bytes = attrs.field(validator=_blob(0xFF))
    tlv: bytes = attrs.field(default=b"", validator=_blob(MAX_REQUISITE_BLOCK))

    def _params(self) -> bytes:
        head = (self.planned_status, self.processing_mode, len(self.marking_code))
        return bytes(head) + self.marking_code + self.tlv

    @classmethod
    def _from_params(cls, password: int, params: bytes) -> Self:
        if len(params) < 3 or len(params) < 3 + params[2]:
            raise AtolError("D1h has status, mode, the code's length and the code", "parameters")
        end = 3 + params[2]
        return cls(
            password=password,
            planned_status=params[0],
            processing_mode=params[1],
            marking_code=params[3:end],
            tlv=params[end:],
        )


@attrs.frozen(kw_only=True, slots=True)
class GetMarkingCheckStatus(Request):
    """D2h the state of the КМ check (статус проверки КМ; assumed): pending or its result."""

    code: ClassVar[bytes] = b"\xd2"

    @classmethod
    def decode_answer(cls, data: bytes) -> Answer:
        if data == _PENDING:
            return MarkingCheckPending()
        return _fn_answer(MarkingCheckResult, data)


@attrs.frozen(kw_only=True, slots=True)
class _DecideMarking(Request):
    """A decision on the checked КМ; answers :class:`MarkingDecision`."""

    @classmethod
    def decode_answer(cls, data: bytes) -> Answer:
        return _fn_answer(MarkingDecision, data)


@attrs.frozen(kw_only=True, slots=True)
class AcceptMarkingCode(_DecideMarking):
    """D3h accept the checked КМ (принять КМ; assumed): the ФН keeps it and its 2106."""

    code: ClassVar[bytes] = b"\xd3"


@attrs.frozen(kw_only=True, slots=True)
class DeclineMarkingCode(_DecideMarking):
    """D4h decline the checked КМ (отказаться от КМ; assumed): the ФН forgets it."""

    code: ClassVar[bytes] = b"\xd4"


#: Every request class by its command code (one byte, or two for A4 xx).
REQUESTS: Mapping[bytes, type[Request]] = {
    cls.code: cls
    for cls in (
        GetDeviceStatus,
        EnterMode,
        ExitMode,
        OpenShift,
        CloseShift,
        OpenReceipt,
        RegisterItem,
        Payment,
        CloseReceipt,
        CancelReceipt,
        GetShiftState,
        GetOfdExchangeStatus,
        GetDocumentInfo,
        ReadDocumentData,
        GetFnStatus,
        GetFnExpiry,
        WriteRequisite,
        BeginMarkingCheck,
        GetMarkingCheckStatus,
        AcceptMarkingCode,
        DeclineMarkingCode,
    )
}


def decode_request(data: bytes) -> Request:
    """Decode any request the registry knows (the register's side)."""
    if len(data) < 3:
        raise AtolError("a request is a password, a command and its parameters", "command")
    cls = REQUESTS.get(bytes(data[2:4])) or REQUESTS.get(bytes(data[2:3]))
    if cls is None:
        raise AtolError(f"unknown command {data[2:4].hex()}", "command")
    return cls.decode(data)


def decode_answer(request: Request | type[Request], data: bytes) -> Answer:
    """Decode the answer to ``request`` (the host's side)."""
    return request.decode_answer(data)
