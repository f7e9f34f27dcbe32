"""Shtrih-M commands and answers (команды и ответы ККТ): the payloads inside link frames.

A request payload is ``CMD DATA``; an answer payload is ``CMD ERR DATA``, and when ``ERR`` is
not 0 the register sends only ``CMD ERR`` (reference §1.2), decoded here as
:class:`ErrorAnswer`. Two-byte commands are the ``FFxx`` family, sent big-endian (``FF 46``).
Each field declares its wire form with ``Annotated[type, codec]`` (see :mod:`.wire`); money is
int kopecks, quantities are exact :class:`~decimal.Decimal`, passwords are 4-byte LE ints,
text is Windows-1251.

:data:`REGISTRY` maps a command code to its request class, answer class and the answer
timeout a host should allow, so both roles can decode any payload they meet.

Assumptions where the reference is silent:
- FF0Ah (find document): the document data of every ФН document type starts with
  DATE_TIME, FD number (4) and fiscal sign (4), as in the ФН protocol; receipts (types 3, 4,
  31, 41) continue with the operation type (1) and the total (5).
- FF61h / FF67h: the "extra parameters" length byte counts the bytes that follow it (the
  ФН's answer code, the check result, the server's TLV); anything after them is kept as
  ``rest`` so an answer always re-encodes byte for byte. A real register's FF61h exchange
  bears this out (shtrih-m/fr_drv_ng #145: length 14h, then 20 bytes).
- Answer timeouts: the larger of the OPOS and JavaPOS driver values (§4.3), 30 s otherwise.
- FF35h (begin correction receipt) takes the system administrator's password and answers the
  error byte alone, as JavaPOS encodes it (shtrih-m/javapos_shtrih@1ddda80
  ``command/FSStartCorrectionReceipt.java``: "Длина сообщения: 6 байт … Ответ: 1 байт");
  with FFD 1.1/1.2 the lines follow as FF46h, 1173/1174 as FF0Ch and FF45h closes it, as the
  official driver's FNOpenCheckCorrection, FNOperation, FNSendTag and FNCloseCheckEx do
  (a public script, ivanovforwow-del/shtrih-m-correction-ofd ``correction_final.py``). The
  operation (1054) comes from the lines; that FF35h carries nothing else is the JavaPOS layout.

Marking (FFD 1.2, Честный знак), checked against JavaPOS (shtrih-m/javapos_shtrih@af0a237
``Source/FiscalPrinterService/src/res/commands.xml`` and ``command/FSCheckMC.java``,
``FSBindMC.java``, ``FSAcceptMC.java``):

- FF61h, FF67h and FF69h have the layouts the codec had, with one correction: in the online
  part, 2106 and the server's TLV follow the ФН's answer code only when the server answered
  without errors (code 00h); code 20h is followed by the reason the ФН could not take the
  answer, and FFh (no answer in time) by nothing. :attr:`CheckMarkingAnswer.check_result`
  therefore reads the 2106 only after code 00h (FSCheckMC.java reads the two bytes into
  swapped names; its own comment and commands.xml give this order).
- FF67h's "first 2 bytes of the product code tag's value" (первые 2 байта значения реквизита
  «код товара») are read as a little-endian word: the tag of the 1163 child (1305 for GS1.M).
- FF69h's decision 2 (clear the marking buffer) is JavaPOS's ``ActionClearBuffer``; the
  specification text lists only 0 and 1.
"""

from __future__ import annotations

import datetime as dt
import typing
from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Self

import attrs

from protocols.fn import OnlineCheckCode
from protocols.shtrih.codes import Mode, describe_error, split_mode
from protocols.shtrih.errors import ShtrihError
from protocols.shtrih.wire import (
    Ascii,
    AutoMoney,
    Blob8,
    DateDMY,
    DateYMD,
    FnDateTime,
    Opt,
    Raw,
    Reader,
    Repeat,
    Scaled,
    SInt,
    Tail,
    Text,
    TimeHMS,
    UInt,
    WireField,
)

__all__ = [
    "RECEIPT_DOCUMENT_TYPES",
    "REGISTRY",
    "AcceptMarking",
    "AcceptMarkingAnswer",
    "Answer",
    "Beep",
    "BeepAnswer",
    "BeginBufferWrite",
    "BeginBufferWriteAnswer",
    "BeginCorrectionReceipt",
    "BeginCorrectionReceiptAnswer",
    "BindMarking",
    "BindMarkingAnswer",
    "CancelReceipt",
    "CancelReceiptAnswer",
    "CheckMarking",
    "CheckMarkingAnswer",
    "CloseReceipt",
    "CloseReceiptAnswer",
    "CloseReceiptV2",
    "CloseReceiptV2Answer",
    "CommandSpec",
    "DeviceType",
    "DeviceTypeAnswer",
    "DocumentTlvInfo",
    "DocumentTlvInfoAnswer",
    "ErrorAnswer",
    "FindDocument",
    "FindDocumentAnswer",
    "FnExpiry",
    "FnExpiryAnswer",
    "FnSerial",
    "FnSerialAnswer",
    "FnStatus",
    "FnStatusAnswer",
    "FontParameters",
    "FontParametersAnswer",
    "FullStatus",
    "FullStatusAnswer",
    "OfdStatus",
    "OfdStatusAnswer",
    "OpenReceipt",
    "OpenReceiptAnswer",
    "OpenShift",
    "OpenShiftAnswer",
    "OperationV2",
    "OperationV2Answer",
    "PrintLine",
    "PrintLineAnswer",
    "PrintLineWithFont",
    "PrintLineWithFontAnswer",
    "Purchase",
    "PurchaseAnswer",
    "PurchaseReturn",
    "PurchaseReturnAnswer",
    "ReadTlv",
    "ReadTlvAnswer",
    "Request",
    "Sale",
    "SaleAnswer",
    "SaleReturn",
    "SaleReturnAnswer",
    "SendItemTlv",
    "SendItemTlvAnswer",
    "SendTlv",
    "SendTlvAnswer",
    "ShortStatus",
    "ShortStatusAnswer",
    "UnconfirmedCount",
    "UnconfirmedCountAnswer",
    "XReport",
    "XReportAnswer",
    "ZReport",
    "ZReportAnswer",
    "code_bytes",
    "command_code",
    "decode_answer",
    "decode_request",
    "layout",
]

Byte = Annotated[int, UInt(1)]
Word = Annotated[int, UInt(2)]
DWord = Annotated[int, UInt(4)]
Password = Annotated[int, UInt(4)]
Money = Annotated[int, UInt(5)]
TaxGroups = Annotated[tuple[int, int, int, int], Repeat(UInt(1), 4)]
LegacyText = Annotated[str, Text(pad_to=40)]
Tlv250 = Annotated[bytes, Tail(max_bytes=250)]
FnSerialNumber = Annotated[str, Ascii(16)]


def code_bytes(code: int) -> bytes:
    """The command code as sent: one byte, or ``FF xx`` for the two-byte family."""
    return code.to_bytes(2 if code > 0xFF else 1, "big")


def command_code(payload: bytes) -> int:
    """The command code at the start of a request or answer payload."""
    if not payload:
        raise ShtrihError("empty payload", "cmd")
    if payload[0] != 0xFF:
        return payload[0]
    if len(payload) < 2:
        raise ShtrihError("two-byte command cut short", "cmd")
    return 0xFF00 | payload[1]


_LAYOUTS: dict[type, tuple[tuple[str, WireField[Any]], ...]] = {}


def layout(cls: type) -> tuple[tuple[str, WireField[Any]], ...]:
    """The (field name, wire codec) pairs of a request or answer class, in wire order."""
    cached = _LAYOUTS.get(cls)
    if cached is None:
        hints = typing.get_type_hints(cls, include_extras=True)
        pairs = []
        for attribute in attrs.fields(cls):
            metadata = getattr(hints[attribute.name], "__metadata__", ())
            codec = next((m for m in metadata if isinstance(m, WireField)), None)
            if codec is None:
                raise TypeError(f"{cls.__name__}.{attribute.name} has no wire codec")
            pairs.append((attribute.name, codec))
        cached = _LAYOUTS[cls] = tuple(pairs)
    return cached


class _Message:
    """What requests and answers share: a code and a declared field layout."""

    CODE: ClassVar[int]

    def _put_body(self, out: bytearray) -> None:
        absent_at: str | None = None
        for name, codec in layout(type(self)):
            value = getattr(self, name)
            if absent_at is not None and not codec.is_absent(value):
                raise ShtrihError(f"cannot follow the absent field {absent_at!r}", name)
            codec.put(out, value, name)
            if codec.trailing and codec.is_absent(value):
                absent_at = name

    @classmethod
    def _get_body(cls, reader: Reader) -> dict[str, Any]:
        return {name: codec.get(reader, name) for name, codec in layout(cls)}

    @classmethod
    def _start(cls, payload: bytes) -> Reader:
        if not isinstance(payload, bytes):
            raise ShtrihError(f"expected bytes, got {type(payload).__name__}", "payload")
        code = command_code(payload)
        if code != cls.CODE:
            raise ShtrihError(f"command {code:02X}h, expected {cls.CODE:02X}h", "cmd")
        return Reader(payload, 2 if code > 0xFF else 1)

    @classmethod
    def _finish(cls, reader: Reader, values: dict[str, Any]) -> Self:
        if reader.remaining:
            raise ShtrihError(f"{reader.remaining} unexpected trailing bytes", cls.__name__)
        return cls(**values)


class Request(_Message):
    """A command from the host (команда): ``CMD DATA``."""

    def encode(self) -> bytes:
        out = bytearray(code_bytes(self.CODE))
        self._put_body(out)
        return bytes(out)

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        reader = cls._start(payload)
        return cls._finish(reader, cls._get_body(reader))


class Answer(_Message):
    """A successful answer (ответ, код ошибки 0): ``CMD 00 DATA``."""

    #: Always 0 here; a non-zero error byte decodes to :class:`ErrorAnswer`.
    error: ClassVar[int] = 0

    def encode(self) -> bytes:
        out = bytearray(code_bytes(self.CODE))
        out.append(0)
        self._put_body(out)
        return bytes(out)

    @classmethod
    def decode(cls, payload: bytes) -> Self | ErrorAnswer:
        reader = cls._start(payload)
        error = reader.take(1, "error")[0]
        if error:
            return ErrorAnswer(code=cls.CODE, error=error, extra=reader.rest())
        return cls._finish(reader, cls._get_body(reader))


@attrs.frozen(kw_only=True)
class ErrorAnswer:
    """An answer whose error byte is not 0 (ответ с ошибкой): ``CMD ERR``.

    The register sends nothing after the error byte; ``extra`` keeps any bytes a quirky
    firmware adds so the answer still re-encodes exactly.
    """

    code: int
    error: int = attrs.field(validator=attrs.validators.in_(range(1, 256)))
    extra: bytes = b""

    @property
    def text(self) -> str:
        return describe_error(self.error)

    def encode(self) -> bytes:
        return code_bytes(self.code) + bytes((self.error,)) + self.extra

    @classmethod
    def decode(cls, payload: bytes) -> ErrorAnswer:
        code = command_code(payload)
        reader = Reader(payload, 2 if code > 0xFF else 1)
        error = reader.take(1, "error")[0]
        if not error:
            raise ShtrihError("error byte is 0: not an error answer", "error")
        return cls(code=code, error=error, extra=reader.rest())


# --- Status ---------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _PasswordOnly(Request):
    password: Password


@attrs.frozen(kw_only=True)
class _OperatorAnswer(Answer):
    operator: Byte


@attrs.frozen(kw_only=True)
class _EmptyAnswer(Answer):
    pass


@attrs.frozen(kw_only=True)
class ShortStatus(_PasswordOnly):
    """10h Короткий запрос состояния — short status; drivers poll it while printing."""

    CODE: ClassVar[int] = 0x10


@attrs.frozen(kw_only=True)
class ShortStatusAnswer(Answer):
    """10h answer: operator, flags, mode/submode, voltages, legacy error bytes."""

    CODE: ClassVar[int] = 0x10
    operator: Byte
    flags: Word
    mode: Byte
    submode: Byte
    receipt_operations_low: Byte
    battery_raw: Byte
    supply_raw: Byte
    fp_error: Byte
    eklz_error: Byte
    receipt_operations_high: Byte
    reserved: Annotated[bytes, Raw(3)]
    last_print_result: Annotated[int | None, Opt(UInt(1))] = None

    @property
    def receipt_operations(self) -> int:
        """Operations in the open receipt (количество операций в чеке)."""
        return self.receipt_operations_low | self.receipt_operations_high << 8

    @property
    def kkt_mode(self) -> Mode | None:
        return split_mode(self.mode)[0]

    @property
    def battery_voltage(self) -> Decimal:
        """Battery volts, b·5/255, to 0.01 V."""
        return (Decimal(self.battery_raw * 5) / 255).quantize(Decimal("0.01"))

    @property
    def supply_voltage(self) -> Decimal:
        """Supply volts, b·24/216, to 0.01 V."""
        return (Decimal(self.supply_raw * 24) / 216).quantize(Decimal("0.01"))


@attrs.frozen(kw_only=True)
class FullStatus(_PasswordOnly):
    """11h Полный запрос состояния — full status: firmware, counters, date, serial, INN."""

    CODE: ClassVar[int] = 0x11


@attrs.frozen(kw_only=True)
class FullStatusAnswer(Answer):
    """11h answer (LEN 48, 50 with the serial's high word, 52 on some firmware)."""

    CODE: ClassVar[int] = 0x11
    operator: Byte
    firmware_version: Annotated[str, Ascii(2)]
    firmware_build: Word
    firmware_date: Annotated[dt.date | None, DateDMY()]
    hall_number: Byte
    document_number: Word
    flags: Word
    mode: Byte
    submode: Byte
    port: Byte
    fp_version: Annotated[str, Ascii(2)]
    fp_build: Word
    fp_date: Annotated[dt.date | None, DateDMY()]
    date: Annotated[dt.date | None, DateDMY()]
    time: Annotated[dt.time, TimeHMS()]
    fp_flags: Byte
    serial_low: DWord
    last_closed_shift: Word
    free_fp_records: Word
    reregistrations: Byte
    reregistrations_left: Byte
    inn: Annotated[int, UInt(6)]
    serial_high: Annotated[int | None, Opt(UInt(2))] = None
    reserved: Annotated[bytes, Tail()] = b""

    @property
    def serial_number(self) -> int:
        """The register's serial (заводской номер), low dword plus the optional high word."""
        return self.serial_low | (self.serial_high or 0) << 32

    @property
    def kkt_mode(self) -> Mode | None:
        return split_mode(self.mode)[0]


@attrs.frozen(kw_only=True)
class DeviceType(Request):
    """FCh Получить тип устройства — device type; the one command without a password."""

    CODE: ClassVar[int] = 0xFC


@attrs.frozen(kw_only=True)
class DeviceTypeAnswer(Answer):
    """FCh answer: type, subtype, protocol version, model, language and model name."""

    CODE: ClassVar[int] = 0xFC
    type: Byte
    subtype: Byte
    protocol_version: Byte
    protocol_subversion: Byte
    model: Byte
    language: Byte
    name: Annotated[str, Text()]


# --- Printing and reports ---------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Beep(_PasswordOnly):
    """13h Гудок — beep."""

    CODE: ClassVar[int] = 0x13


@attrs.frozen(kw_only=True)
class BeepAnswer(_OperatorAnswer):
    CODE: ClassVar[int] = 0x13


@attrs.frozen(kw_only=True)
class PrintLine(Request):
    """17h Печать стандартной строки — print one line (flags: bit0 journal, bit1 receipt)."""

    CODE: ClassVar[int] = 0x17
    password: Password
    flags: Byte
    text: LegacyText


@attrs.frozen(kw_only=True)
class PrintLineAnswer(_OperatorAnswer):
    CODE: ClassVar[int] = 0x17


@attrs.frozen(kw_only=True)
class FontParameters(Request):
    """26h Прочитать параметры шрифта — font parameters."""

    CODE: ClassVar[int] = 0x26
    password: Password
    font: Byte


@attrs.frozen(kw_only=True)
class FontParametersAnswer(Answer):
    """26h answer: print width in dots, character cell and the number of fonts."""

    CODE: ClassVar[int] = 0x26
    print_width: Word
    char_width: Byte
    char_height: Byte
    font_count: Byte


@attrs.frozen(kw_only=True)
class PrintLineWithFont(Request):
    """2Fh Печать строки данным шрифтом — print one line in a given font."""

    CODE: ClassVar[int] = 0x2F
    password: Password
    flags: Byte
    font: Byte
    text: LegacyText


@attrs.frozen(kw_only=True)
class PrintLineWithFontAnswer(_OperatorAnswer):
    CODE: ClassVar[int] = 0x2F


@attrs.frozen(kw_only=True)
class XReport(_PasswordOnly):
    """40h Суточный отчёт без гашения — X report (administrator password)."""

    CODE: ClassVar[int] = 0x40


@attrs.frozen(kw_only=True)
class XReportAnswer(_OperatorAnswer):
    CODE: ClassVar[int] = 0x40


@attrs.frozen(kw_only=True)
class ZReport(_PasswordOnly):
    """41h Суточный отчёт с гашением — Z report: closes the shift."""

    CODE: ClassVar[int] = 0x41


@attrs.frozen(kw_only=True)
class ZReportAnswer(_OperatorAnswer):
    CODE: ClassVar[int] = 0x41


@attrs.frozen(kw_only=True)
class OpenShift(_PasswordOnly):
    """E0h Открыть смену — open shift (can block over 10 s on FFD 1.2 without internet)."""

    CODE: ClassVar[int] = 0xE0


@attrs.frozen(kw_only=True)
class OpenShiftAnswer(Answer):
    """E0h answer: the operator byte, which the v1.16 text lists and some firmware omits."""

    CODE: ClassVar[int] = 0xE0
    operator: Annotated[int | None, Opt(UInt(1))] = None


# --- Legacy receipts ---------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _Line(Request):
    """The layout shared by 80h–83h: one receipt line, legacy style."""

    password: Password
    quantity: Annotated[Decimal, Scaled(5, 3)]
    price: Money
    department: Byte
    taxes: TaxGroups
    text: LegacyText


@attrs.frozen(kw_only=True)
class Sale(_Line):
    """80h Продажа — sale line: quantity to 0.001, price in kopecks, tax groups 1–4."""

    CODE: ClassVar[int] = 0x80


@attrs.frozen(kw_only=True)
class SaleAnswer(_OperatorAnswer):
    CODE: ClassVar[int] = 0x80


@attrs.frozen(kw_only=True)
class Purchase(_Line):
    """81h Покупка — purchase line."""

    CODE: ClassVar[int] = 0x81


@attrs.frozen(kw_only=True)
class PurchaseAnswer(_OperatorAnswer):
    CODE: ClassVar[int] = 0x81


@attrs.frozen(kw_only=True)
class SaleReturn(_Line):
    """82h Возврат продажи — sale return line."""

    CODE: ClassVar[int] = 0x82


@attrs.frozen(kw_only=True)
class SaleReturnAnswer(_OperatorAnswer):
    CODE: ClassVar[int] = 0x82


@attrs.frozen(kw_only=True)
class PurchaseReturn(_Line):
    """83h Возврат покупки — purchase return line."""

    CODE: ClassVar[int] = 0x83


@attrs.frozen(kw_only=True)
class PurchaseReturnAnswer(_OperatorAnswer):
    CODE: ClassVar[int] = 0x83


@attrs.frozen(kw_only=True)
class CloseReceipt(Request):
    """85h Закрытие чека — close receipt: four payment sums, discount, taxes, footer text.

    ``discount`` is in hundredths of a percent; negative means a surcharge (надбавка).
    """

    CODE: ClassVar[int] = 0x85
    password: Password
    cash: Money
    payment2: Money
    payment3: Money
    payment4: Money
    discount: Annotated[int, SInt(2, -9999, 9999)]
    taxes: TaxGroups
    text: LegacyText


@attrs.frozen(kw_only=True)
class CloseReceiptAnswer(Answer):
    """85h answer: operator, change (сдача) and the receipt's web link when QR is on."""

    CODE: ClassVar[int] = 0x85
    operator: Byte
    change: Money
    web_link: Annotated[str, Text(max_bytes=247)] = ""


@attrs.frozen(kw_only=True)
class CancelReceipt(_PasswordOnly):
    """88h Аннулирование чека — cancel the open receipt."""

    CODE: ClassVar[int] = 0x88


@attrs.frozen(kw_only=True)
class CancelReceiptAnswer(_OperatorAnswer):
    CODE: ClassVar[int] = 0x88


@attrs.frozen(kw_only=True)
class OpenReceipt(Request):
    """8Dh Открыть чек — open a receipt of a :class:`~.codes.ReceiptType`."""

    CODE: ClassVar[int] = 0x8D
    password: Password
    receipt_type: Byte


@attrs.frozen(kw_only=True)
class OpenReceiptAnswer(_OperatorAnswer):
    CODE: ClassVar[int] = 0x8D


# --- ФН ----------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class FnStatus(_PasswordOnly):
    """FF01h Запрос статуса ФН — ФН status (system administrator password)."""

    CODE: ClassVar[int] = 0xFF01


@attrs.frozen(kw_only=True)
class FnStatusAnswer(Answer):
    """FF01h answer: life phase, open document, shift state, warnings, clock, serial, last FD."""

    CODE: ClassVar[int] = 0xFF01
    phase: Byte
    current_document: Byte
    document_data: Byte
    shift_open: Byte
    warnings: Byte
    date_time: Annotated[dt.datetime, FnDateTime()]
    fn_serial: FnSerialNumber
    last_fd: DWord


@attrs.frozen(kw_only=True)
class FnSerial(_PasswordOnly):
    """FF02h Запрос номера ФН — the ФН's serial number."""

    CODE: ClassVar[int] = 0xFF02


@attrs.frozen(kw_only=True)
class FnSerialAnswer(Answer):
    CODE: ClassVar[int] = 0xFF02
    fn_serial: FnSerialNumber


@attrs.frozen(kw_only=True)
class FnExpiry(_PasswordOnly):
    """FF03h Запрос срока действия ФН — ФН expiry and re-registrations left / done."""

    CODE: ClassVar[int] = 0xFF03


@attrs.frozen(kw_only=True)
class FnExpiryAnswer(Answer):
    CODE: ClassVar[int] = 0xFF03
    expires: Annotated[dt.date, DateYMD()]
    reregistrations_left: Byte
    reregistrations_done: Byte


@attrs.frozen(kw_only=True)
class FindDocument(Request):
    """FF0Ah Найти фискальный документ по номеру — find an FD by number (recovery)."""

    CODE: ClassVar[int] = 0xFF0A
    password: Password
    fd_number: DWord


#: FFD document types whose FF0Ah data continue with operation type and total.
RECEIPT_DOCUMENT_TYPES = frozenset({3, 4, 31, 41})


@attrs.frozen(kw_only=True)
class FindDocumentAnswer(Answer):
    """FF0Ah answer: document type, OFD receipt flag, then the document's own data."""

    CODE: ClassVar[int] = 0xFF0A
    document_type: Byte
    ofd_receipt: Byte
    date_time: Annotated[dt.datetime, FnDateTime()]
    fd_number: DWord
    fiscal_sign: DWord
    details: Annotated[bytes, Tail()] = b""

    @property
    def operation(self) -> int | None:
        """A receipt's operation type (признак расчёта, tag 1054), else None."""
        if self.document_type in RECEIPT_DOCUMENT_TYPES and len(self.details) >= 6:
            return self.details[0]
        return None

    @property
    def total(self) -> int | None:
        """A receipt's total in kopecks (tag 1020), else None."""
        if self.document_type in RECEIPT_DOCUMENT_TYPES and len(self.details) >= 6:
            return int.from_bytes(self.details[1:6], "little")
        return None


@attrs.frozen(kw_only=True)
class SendTlv(Request):
    """FF0Ch Передать произвольную TLV структуру — TLV for the current document (≤ 250)."""

    CODE: ClassVar[int] = 0xFF0C
    password: Password
    tlv: Tlv250


@attrs.frozen(kw_only=True)
class SendTlvAnswer(_EmptyAnswer):
    CODE: ClassVar[int] = 0xFF0C


@attrs.frozen(kw_only=True)
class BeginBufferWrite(Request):
    """FF32h Начать запись данных в буфер — announce ``size`` bytes for the data buffer."""

    CODE: ClassVar[int] = 0xFF32
    password: Password
    size: Word


@attrs.frozen(kw_only=True)
class BeginBufferWriteAnswer(Answer):
    CODE: ClassVar[int] = 0xFF32
    block_size: Byte


@attrs.frozen(kw_only=True)
class DocumentTlvInfo(Request):
    """FF3Ah Запросить фискальный документ в TLV формате — start reading an FD as TLV."""

    CODE: ClassVar[int] = 0xFF3A
    password: Password
    fd_number: DWord


@attrs.frozen(kw_only=True)
class DocumentTlvInfoAnswer(Answer):
    """FF3Ah answer: the document's STLV tag and its length; FF3Bh then reads it in chunks."""

    CODE: ClassVar[int] = 0xFF3A
    document_tag: Word
    length: Word


@attrs.frozen(kw_only=True)
class ReadTlv(_PasswordOnly):
    """FF3Bh Чтение TLV фискального документа — the next TLV chunk of the FD being read."""

    CODE: ClassVar[int] = 0xFF3B


@attrs.frozen(kw_only=True)
class ReadTlvAnswer(Answer):
    CODE: ClassVar[int] = 0xFF3B
    tlv: Annotated[bytes, Tail()]


# --- FFD 1.2 receipts ------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class CloseReceiptV2(Request):
    """FF45h Закрытие чека расширенное вариант 2 — close receipt, get FD number and sign.

    ``payments`` are the 16 payment sums (1 cash, 2–13 electronic, 14 prepayment,
    15 postpayment, 16 counter-provision); ``tax_sums`` the six tax totals; ``taxation`` a
    :class:`~.codes.TaxationSystem` bit field.
    """

    CODE: ClassVar[int] = 0xFF45
    password: Password
    payments: Annotated[tuple[int, ...], Repeat(UInt(5), 16)]
    rounding: Byte
    tax_sums: Annotated[tuple[int, ...], Repeat(UInt(5), 6)]
    taxation: Byte
    text: Annotated[str, Text(max_bytes=64)] = ""


@attrs.frozen(kw_only=True)
class CloseReceiptV2Answer(Answer):
    """FF45h answer: change, FD number (номер ФД), fiscal sign (ФП), DATE_TIME if enabled."""

    CODE: ClassVar[int] = 0xFF45
    change: Money
    fd_number: DWord
    fiscal_sign: DWord
    date_time: Annotated[dt.datetime | None, Opt(FnDateTime())] = None


@attrs.frozen(kw_only=True)
class BeginCorrectionReceipt(_PasswordOnly):
    """FF35h Начать формирование чека коррекции — open a correction receipt (чек коррекции, 31).

    System administrator password only; the lines (FF46h), 1173/1174 (FF0Ch) and FF45h follow.
    """

    CODE: ClassVar[int] = 0xFF35


@attrs.frozen(kw_only=True)
class BeginCorrectionReceiptAnswer(_EmptyAnswer):
    CODE: ClassVar[int] = 0xFF35


@attrs.frozen(kw_only=True)
class OperationV2(Request):
    """FF46h Операция v2 — one receipt line (opens a receipt if none is open).

    ``amount`` and ``tax_amount`` None mean "the register computes them" (``FF×5``);
    ``tax_rate`` is a bit field (bit0 = group 1 … bit5 = group 6); ``payment_method`` is
    tag 1214 and ``payment_object`` tag 1212. A name starting with ``//`` is not printed.
    """

    CODE: ClassVar[int] = 0xFF46
    password: Password
    operation: Byte
    quantity: Annotated[Decimal, Scaled(6, 6)]
    price: Money
    amount: Annotated[int | None, AutoMoney()] = None
    tax_amount: Annotated[int | None, AutoMoney()] = None
    tax_rate: Byte
    department: Byte
    payment_method: Byte
    payment_object: Byte
    name: Annotated[str, Text(max_bytes=128)] = ""


@attrs.frozen(kw_only=True)
class OperationV2Answer(_EmptyAnswer):
    CODE: ClassVar[int] = 0xFF46


@attrs.frozen(kw_only=True)
class SendItemTlv(Request):
    """FF4Dh Передать TLV, привязанную к операции — TLV for the last line (1162, 1191…)."""

    CODE: ClassVar[int] = 0xFF4D
    password: Password
    tlv: Tlv250


@attrs.frozen(kw_only=True)
class SendItemTlvAnswer(_EmptyAnswer):
    CODE: ClassVar[int] = 0xFF4D


# --- OFD and marking ------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class OfdStatus(_PasswordOnly):
    """FF39h Статус информационного обмена — the ФН's OFD exchange status."""

    CODE: ClassVar[int] = 0xFF39


@attrs.frozen(kw_only=True)
class OfdStatusAnswer(Answer):
    """FF39h answer: status bits, read state, queue length, first queued FD and its time."""

    CODE: ClassVar[int] = 0xFF39
    status: Byte
    read_state: Byte
    queued: Word
    first_fd: DWord
    first_date_time: Annotated[dt.datetime | None, FnDateTime(nullable=True)] = None


@attrs.frozen(kw_only=True)
class UnconfirmedCount(_PasswordOnly):
    """FF3Fh Запрос количества ФД, на которые нет квитанции — FDs without an OFD receipt."""

    CODE: ClassVar[int] = 0xFF3F


@attrs.frozen(kw_only=True)
class UnconfirmedCountAnswer(Answer):
    CODE: ClassVar[int] = 0xFF3F
    count: Word


@attrs.frozen(kw_only=True)
class CheckMarking(Request):
    """FF61h Проверка КМ — check a marking code: planned status (2003), mode (2102).

    On the wire both lengths come first, then the code, then the TLV (2108/1023).
    """

    CODE: ClassVar[int] = 0xFF61
    password: Password
    planned_status: Byte
    mode: Byte
    marking_code: Annotated[bytes, Blob8()]
    tlv: Annotated[bytes, Blob8()] = b""

    def _put_body(self, out: bytearray) -> None:
        for name, value in (("marking_code", self.marking_code), ("tlv", self.tlv)):
            if not isinstance(value, bytes) or len(value) > 255:
                raise ShtrihError("expected at most 255 bytes", name)
        UInt(4).put(out, self.password, "password")
        UInt(1).put(out, self.planned_status, "planned_status")
        UInt(1).put(out, self.mode, "mode")
        out += bytes((len(self.marking_code), len(self.tlv)))
        out += self.marking_code + self.tlv

    @classmethod
    def _get_body(cls, reader: Reader) -> dict[str, Any]:
        password = UInt(4).get(reader, "password")
        planned_status, mode, code_length, tlv_length = reader.take(4, "lengths")
        return {
            "password": password,
            "planned_status": planned_status,
            "mode": mode,
            "marking_code": reader.take(code_length, "marking_code"),
            "tlv": reader.take(tlv_length, "tlv"),
        }


class _MarkingOnline:
    """Reading the online part (the length-prefixed extra parameters) of a КМ check: the ФН's
    answer code (:class:`~protocols.fn.OnlineCheckCode`), then by that code either 2106 and
    the server's TLV (00h), the reason the answer was refused (20h) or nothing (FFh)."""

    online: bytes | None

    @property
    def fn_answer_code(self) -> int | None:
        """The ФН's answer to the online check; None when none was made (автономный режим)."""
        return self.online[0] if self.online else None

    @property
    def check_result(self) -> int | None:
        """2106 результат проверки сведений о товаре, when the server answered (code 00h)."""
        if self.fn_answer_code != OnlineCheckCode.ANSWERED or self.online is None:
            return None
        return self.online[1] if len(self.online) > 1 else None

    @property
    def answer_problem(self) -> int | None:
        """Why the ФН refused the server's answer (code 20h): 1 its sign … 7 its length."""
        if self.fn_answer_code != OnlineCheckCode.ANSWER_REJECTED or self.online is None:
            return None
        return self.online[1] if len(self.online) > 1 else None

    @property
    def server_tlv(self) -> bytes:
        """The server's answer tags (2005, 2105, 2109 …), when it answered (code 00h)."""
        if self.fn_answer_code != OnlineCheckCode.ANSWERED or self.online is None:
            return b""
        return self.online[2:]


@attrs.frozen(kw_only=True)
class CheckMarkingAnswer(_MarkingOnline, Answer):
    """FF61h answer: the ФН's own check (2004 bits, and why it was not made: a
    :class:`~protocols.fn.LocalCheckReason`), the recognised code type (2100), the online part."""

    CODE: ClassVar[int] = 0xFF61
    local_status: Byte
    local_reason: Byte
    code_type: Byte
    online: Annotated[bytes, Blob8()]
    rest: Annotated[bytes, Tail()] = b""


@attrs.frozen(kw_only=True)
class BindMarking(Request):
    """FF67h Привязка маркированного товара к позиции — bind a КМ to the current line.

    ``volume_accounting`` is the optional trailing ОСУ byte (0xFF when sent).
    """

    CODE: ClassVar[int] = 0xFF67
    password: Password
    marking_code: Annotated[bytes, Blob8()]
    volume_accounting: Annotated[int | None, Opt(UInt(1))] = None


@attrs.frozen(kw_only=True)
class BindMarkingAnswer(_MarkingOnline, Answer):
    """FF67h answer: the 1163 child's tag, the DataMatrix type (0 КМ 88, 1 symmetric, 2 tobacco,
    3 КМ 44, FFh GS1 without marking) and the КМ check the register ran itself when the code had
    not been checked before (as FF61h's answer, else absent)."""

    CODE: ClassVar[int] = 0xFF67
    code_type: Word
    datamatrix_type: Byte
    local_status: Annotated[int | None, Opt(UInt(1))] = None
    local_reason: Annotated[int | None, Opt(UInt(1))] = None
    recognised_type: Annotated[int | None, Opt(UInt(1))] = None
    online: Annotated[bytes | None, Opt(Blob8())] = None
    rest: Annotated[bytes, Tail()] = b""


@attrs.frozen(kw_only=True)
class AcceptMarking(Request):
    """FF69h Принять или отвергнуть КМ — the decision on the КМ just checked (FF61h).

    ``decision`` is a :class:`~.codes.MarkingDecision`: 0 reject, 1 accept, 2 clear the
    register's marking buffer. Every check must be followed by one (commands.xml).
    """

    CODE: ClassVar[int] = 0xFF69
    password: Password
    decision: Byte


@attrs.frozen(kw_only=True)
class AcceptMarkingAnswer(Answer):
    """FF69h answer: 2106 результат проверки сведений о товаре of the decided КМ."""

    CODE: ClassVar[int] = 0xFF69
    check_result: Byte


# --- Registry --------------------------------------------------------------------------


@attrs.frozen
class CommandSpec:
    """One command: its code, request and answer classes and the host's answer timeout."""

    code: int
    request: type[Request]
    answer: type[Answer]
    timeout_ms: int

    @property
    def name(self) -> str:
        return self.request.__name__


_SPECS = (
    (ShortStatus, ShortStatusAnswer, 3_000),
    (FullStatus, FullStatusAnswer, 3_000),
    (Beep, BeepAnswer, 3_000),
    (PrintLine, PrintLineAnswer, 3_000),
    (FontParameters, FontParametersAnswer, 5_000),
    (PrintLineWithFont, PrintLineWithFontAnswer, 3_000),
    (XReport, XReportAnswer, 30_000),
    (ZReport, ZReportAnswer, 65_000),
    (Sale, SaleAnswer, 10_000),
    (Purchase, PurchaseAnswer, 10_000),
    (SaleReturn, SaleReturnAnswer, 10_000),
    (PurchaseReturn, PurchaseReturnAnswer, 10_000),
    (CloseReceipt, CloseReceiptAnswer, 30_000),
    (CancelReceipt, CancelReceiptAnswer, 10_000),
    (OpenReceipt, OpenReceiptAnswer, 10_000),
    (OpenShift, OpenShiftAnswer, 120_000),
    (DeviceType, DeviceTypeAnswer, 30_000),
    (FnStatus, FnStatusAnswer, 30_000),
    (FnSerial, FnSerialAnswer, 30_000),
    (FnExpiry, FnExpiryAnswer, 30_000),
    (FindDocument, FindDocumentAnswer, 30_000),
    (SendTlv, SendTlvAnswer, 30_000),
    (BeginBufferWrite, BeginBufferWriteAnswer, 30_000),
    (OfdStatus, OfdStatusAnswer, 30_000),
    (DocumentTlvInfo, DocumentTlvInfoAnswer, 30_000),
    (ReadTlv, ReadTlvAnswer, 30_000),
    (UnconfirmedCount, UnconfirmedCountAnswer, 30_000),
    (BeginCorrectionReceipt, BeginCorrectionReceiptAnswer, 30_000),
    (CloseReceiptV2, CloseReceiptV2Answer, 30_000),
    (OperationV2, OperationV2Answer, 30_000),
    (SendItemTlv, SendItemTlvAnswer, 30_000),
    (CheckMarking, CheckMarkingAnswer, 40_000),
    (BindMarking, BindMarkingAnswer, 40_000),
    (AcceptMarking, AcceptMarkingAnswer, 30_000),
)

#: Command code → :class:`CommandSpec`, for every command this codec knows.
REGISTRY: Mapping[int, CommandSpec] = MappingProxyType(
    {req.CODE: CommandSpec(req.CODE, req, ans, timeout) for req, ans, timeout in _SPECS}
)


def _spec(payload: bytes) -> CommandSpec:
    code = command_code(payload)
    spec = REGISTRY.get(code)
    if spec is None:
        raise ShtrihError(f"unknown command {code:02X}h", "cmd")
    return spec


def decode_request(payload: bytes) -> Request:
    """Decode any known request payload (what the device role receives)."""
    return _spec(payload).request.decode(payload)


def decode_answer(payload: bytes) -> Answer | ErrorAnswer:
    """Decode any known answer payload (what the host role receives)."""
    return _spec(payload).answer.decode(payload)
