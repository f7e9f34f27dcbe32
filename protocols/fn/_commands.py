"""The ФН command set (команды ФН) and their answers, as frozen value classes.

Every command knows its code and its answer class. ``encode()`` gives the whole frame,
``decode(frame)`` reads one; ``encode_data()`` / ``decode_data(data)`` do the same for the
DATA field alone. Answers carry the status byte's warning bit (bit 7) as ``warning``; a
non-zero result code decodes as :class:`Failure`, whatever the command was.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import ClassVar, Self

import attrs

from protocols.fn._codes import ExchangeFlag, FnPhase, FnWarning, describe_result
from protocols.fn._fields import (
    Reader,
    blob,
    boolean,
    date_only,
    date_time,
    fixed_text,
    optional_date_time,
    pack_date,
    pack_date_time,
    pack_text,
    pad12,
    pad16,
    pad20,
    to_enum,
    to_flag,
    uint,
)
from protocols.fn._frame import MAX_DATA, FnError, decode_frame, encode_frame
from protocols.tlv.enums import OperationType, TaxSystem

__all__ = [
    "COMMANDS",
    "Answer",
    "ArchivedDocument",
    "BeginCorrectionReceipt",
    "BeginFiscalModeClosing",
    "BeginMessageRead",
    "BeginReceipt",
    "BeginRegistration",
    "BeginShiftClosing",
    "BeginShiftOpening",
    "CancelDocument",
    "CancelMessageRead",
    "CloseFiscalMode",
    "CloseShift",
    "Command",
    "CountUnconfirmed",
    "Done",
    "ExchangeStatus",
    "Failure",
    "FindDocument",
    "FinishMessageRead",
    "FinishReceipt",
    "FinishRegistration",
    "FnExpiry",
    "FnNumber",
    "FnStatus",
    "FnVersion",
    "GetExchangeStatus",
    "GetFnExpiry",
    "GetFnNumber",
    "GetFnStatus",
    "GetFnVersion",
    "GetOfdAck",
    "GetShiftStatus",
    "MessageBlock",
    "MessageLength",
    "OfdAckResult",
    "OpenShift",
    "PassOfdAck",
    "RawAnswer",
    "RawCommand",
    "ReadMessageBlock",
    "ReceiptDocument",
    "Request",
    "SendDocumentData",
    "SetTransportStatus",
    "ShiftDocument",
    "ShiftStatus",
    "SignedDocument",
    "StoredOfdAck",
    "UnconfirmedCount",
    "decode_answer",
    "decode_command",
]

_WARNING_BIT = 0x80


# Named converters, as the attrs mypy plugin requires.
def _exchange_flags(value: int) -> ExchangeFlag:
    return to_flag(ExchangeFlag)(value)


def _warning_flags(value: int) -> FnWarning:
    return to_flag(FnWarning)(value)


def _tax_systems(value: int) -> TaxSystem:
    return to_flag(TaxSystem)(value)


def _phase(value: int) -> FnPhase:
    return to_enum(FnPhase)(value)


def _operation(value: int) -> OperationType:
    return to_enum(OperationType)(value)


#####################################################################################
# Answers (ФН → KKT)
#####################################################################################


@attrs.frozen
class Answer:
    """A successful answer (status 00h, or 80h with the warning bit) and its data."""

    warning: bool = attrs.field(default=False, kw_only=True, validator=boolean)

    def encode_data(self) -> bytes:
        return b""

    @classmethod
    def decode_data(cls, data: bytes, *, warning: bool = False) -> Self:
        Reader(data, cls.__name__).end()
        return cls(warning=warning)

    def encode(self) -> bytes:
        return encode_frame(_WARNING_BIT if self.warning else 0, self.encode_data())

    @classmethod
    def decode(cls, frame: bytes) -> Self:
        status, data = decode_frame(frame)
        if status & ~_WARNING_BIT:
            raise FnError(f"result {status & ~_WARNING_BIT:02x}h is not a success", cls.__name__)
        return cls.decode_data(data, warning=bool(status & _WARNING_BIT))


@attrs.frozen
class Done(Answer):
    """The empty answer of a command that returns nothing but its status."""


@attrs.frozen
class Failure(Answer):
    """An answer with a non-zero result code (код ответа); ``data`` is kept as it came.

    Real ФН send no data with an error; anything that does arrive is kept, not judged.
    """

    code: int = attrs.field()
    data: bytes = attrs.field(default=b"", validator=blob(MAX_DATA))

    @code.validator
    def _check_code(self, attribute: attrs.Attribute[int], value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 0x7F:
            raise FnError(f"a failure code is 01h..7Fh, got {value!r}", attribute.name)

    @property
    def text(self) -> tuple[str, str]:
        """The code's Russian and English text."""
        return describe_result(self.code)

    def encode_data(self) -> bytes:
        return self.data

    def encode(self) -> bytes:
        return encode_frame(self.code | (_WARNING_BIT if self.warning else 0), self.data)

    @classmethod
    def decode_data(cls, data: bytes, *, warning: bool = False) -> Self:
        raise FnError("a failure's code is in the status byte: use decode()", cls.__name__)

    @classmethod
    def decode(cls, frame: bytes) -> Self:
        status, data = decode_frame(frame)
        return cls(status & ~_WARNING_BIT, data, warning=bool(status & _WARNING_BIT))


@attrs.frozen
class RawAnswer(Answer):
    """The answer to a :class:`RawCommand`: its DATA, uninterpreted."""

    data: bytes = attrs.field(default=b"", validator=blob(MAX_DATA))

    def encode_data(self) -> bytes:
        return self.data

    @classmethod
    def decode_data(cls, data: bytes, *, warning: bool = False) -> Self:
        return cls(data, warning=warning)


@attrs.frozen
class SignedDocument(Answer):
    """A fiscal document made by 03h or 05h: its number (ФД, 1040) and fiscal sign (ФП)."""

    fd_number: int = attrs.field(validator=uint(4))
    fiscal_sign: int = attrs.field(validator=uint(4))

    def encode_data(self) -> bytes:
        return self.fd_number.to_bytes(4, "little") + self.fiscal_sign.to_bytes(4, "little")

    @classmethod
    def decode_data(cls, data: bytes, *, warning: bool = False) -> Self:
        r = Reader(data, cls.__name__)
        value = cls(r.uint(4), r.uint(4), warning=warning)
        r.end()
        return value


@attrs.frozen
class ShiftStatus(Answer):
    """Параметры текущей смены (10h): open or not, shift number (1038), receipts in it."""

    open: bool = attrs.field(validator=boolean)
    shift_number: int = attrs.field(validator=uint(2))
    receipt_number: int = attrs.field(validator=uint(2))

    def encode_data(self) -> bytes:
        return (
            bytes((self.open,))
            + self.shift_number.to_bytes(2, "little")
            + self.receipt_number.to_bytes(2, "little")
        )

    @classmethod
    def decode_data(cls, data: bytes, *, warning: bool = False) -> Self:
        r = Reader(data, cls.__name__)
        value = cls(r.flag(), r.uint(2), r.uint(2), warning=warning)
        r.end()
        return value


@attrs.frozen
class ShiftDocument(Answer):
    """A shift opening or closing report (12h, 14h): shift number, ФД number, ФП."""

    shift_number: int = attrs.field(validator=uint(2))
    fd_number: int = attrs.field(validator=uint(4))
    fiscal_sign: int = attrs.field(validator=uint(4))

    def encode_data(self) -> bytes:
        return (
            self.shift_number.to_bytes(2, "little")
            + self.fd_number.to_bytes(4, "little")
            + self.fiscal_sign.to_bytes(4, "little")
        )

    @classmethod
    def decode_data(cls, data: bytes, *, warning: bool = False) -> Self:
        r = Reader(data, cls.__name__)
        value = cls(r.uint(2), r.uint(4), r.uint(4), warning=warning)
        r.end()
        return value


@attrs.frozen
class ReceiptDocument(Answer):
    """A receipt (16h): its number in the shift (1042), ФД number (1040), ФП (1077 for print).

    This is the answer that proves a receipt exists: the ФН computed its fiscal sign.
    """

    receipt_number: int = attrs.field(validator=uint(2))
    fd_number: int = attrs.field(validator=uint(4))
    fiscal_sign: int = attrs.field(validator=uint(4))

    def encode_data(self) -> bytes:
        return (
            self.receipt_number.to_bytes(2, "little")
            + self.fd_number.to_bytes(4, "little")
            + self.fiscal_sign.to_bytes(4, "little")
        )

    @classmethod
    def decode_data(cls, data: bytes, *, warning: bool = False) -> Self:
        r = Reader(data, cls.__name__)
        value = cls(r.uint(2), r.uint(4), r.uint(4), warning=warning)
        r.end()
        return value


@attrs.frozen
class ExchangeStatus(Answer):
    """Статус информационного обмена (20h): what waits to go to the OFD."""

    flags: ExchangeFlag = attrs.field(converter=_exchange_flags)
    reading: bool = attrs.field(validator=boolean)  # чтение сообщения начато
    pending: int = attrs.field(validator=uint(2))  # сообщений для передачи в ОФД
    first_fd_number: int = attrs.field(validator=uint(4))
    first_at: datetime | None = attrs.field(validator=optional_date_time)

    def encode_data(self) -> bytes:
        return (
            bytes((self.flags, self.reading))
            + self.pending.to_bytes(2, "little")
            + self.first_fd_number.to_bytes(4, "little")
            + pack_date_time(self.first_at)
        )

    @classmethod
    def decode_data(cls, data: bytes, *, warning: bool = False) -> Self:
        r = Reader(data, cls.__name__)
        value = cls(
            ExchangeFlag(r.uint(1)), r.flag(), r.uint(2), r.uint(4), r.date_time(), warning=warning
        )
        r.end()
        return value


@attrs.frozen
class MessageLength(Answer):
    """The size of the message for the OFD that reading has begun on (22h)."""

    length: int = attrs.field(validator=uint(2))

    def encode_data(self) -> bytes:
        return self.length.to_bytes(2, "little")

    @classmethod
    def decode_data(cls, data: bytes, *, warning: bool = False) -> Self:
        r = Reader(data, cls.__name__)
        value = cls(r.uint(2), warning=warning)
        r.end()
        return value


@attrs.frozen
class MessageBlock(Answer):
    """One block of the message for the OFD (23h): container bytes, see protocols.ofd."""

    data: bytes = attrs.field(validator=blob(MAX_DATA))

    def encode_data(self) -> bytes:
        return self.data

    @classmethod
    def decode_data(cls, data: bytes, *, warning: bool = False) -> Self:
        return cls(data, warning=warning)


@attrs.frozen
class OfdAckResult(Answer):
    """The ФН's verdict on an OFD ack (квитанция, 26h): the OFD's response code (1022)."""

    response_code: int = attrs.field(validator=uint(1))

    def encode_data(self) -> bytes:
        return bytes((self.response_code,))

    @classmethod
    def decode_data(cls, data: bytes, *, warning: bool = False) -> Self:
        r = Reader(data, cls.__name__)
        value = cls(r.uint(1), warning=warning)
        r.end()
        return value


@attrs.frozen
class FnStatus(Answer):
    """Статус ФН (30h): phase, open document, shift, warnings, last document."""

    phase: FnPhase = attrs.field(converter=_phase)
    current_document: int = attrs.field(validator=uint(1))  # текущий документ, 00h = none
    document_data: bool = attrs.field(validator=boolean)  # данные документа получены
    shift_open: bool = attrs.field(validator=boolean)
    warning_flags: FnWarning = attrs.field(converter=_warning_flags)
    at: datetime | None = attrs.field(validator=optional_date_time)  # последний документ
    fn_number: str = attrs.field(validator=fixed_text(16))
    last_fd_number: int = attrs.field(validator=uint(4))

    def encode_data(self) -> bytes:
        return (
            bytes(
                (
                    self.phase,
                    self.current_document,
                    self.document_data,
                    self.shift_open,
                    self.warning_flags,
                )
            )
            + pack_date_time(self.at)
            + pack_text(self.fn_number)
            + self.last_fd_number.to_bytes(4, "little")
        )

    @classmethod
    def decode_data(cls, data: bytes, *, warning: bool = False) -> Self:
        r = Reader(data, cls.__name__)
        value = cls(
            r.enum(FnPhase),
            r.uint(1),
            r.flag(),
            r.flag(),
            FnWarning(r.uint(1)),
            r.date_time(),
            r.text(16),
            r.uint(4),
            warning=warning,
        )
        r.end()
        return value


@attrs.frozen
class FnNumber(Answer):
    """Номер ФН (31h): 16 characters, the same as tag 1041."""

    fn_number: str = attrs.field(validator=fixed_text(16))

    def encode_data(self) -> bytes:
        return pack_text(self.fn_number)

    @classmethod
    def decode_data(cls, data: bytes, *, warning: bool = False) -> Self:
        r = Reader(data, cls.__name__)
        value = cls(r.text(16), warning=warning)
        r.end()
        return value


@attrs.frozen
class FnExpiry(Answer):
    """Срок действия ФН (32h): the last day of the keys and registrations left / done."""

    expires: date = attrs.field(validator=date_only)
    registrations_left: int = attrs.field(validator=uint(1))
    registrations_done: int = attrs.field(validator=uint(1))

    def encode_data(self) -> bytes:
        return pack_date(self.expires) + bytes((self.registrations_left, self.registrations_done))

    @classmethod
    def decode_data(cls, data: bytes, *, warning: bool = False) -> Self:
        r = Reader(data, cls.__name__)
        value = cls(r.date(), r.uint(1), r.uint(1), warning=warning)
        r.end()
        return value


@attrs.frozen
class FnVersion(Answer):
    """Версия ПО ФН (33h): 16 characters and whether it is a serial (not a debug) build."""

    version: str = attrs.field(converter=pad16, validator=fixed_text(16))
    serial: bool = attrs.field(validator=boolean)

    def encode_data(self) -> bytes:
        return pack_text(self.version) + bytes((self.serial,))

    @classmethod
    def decode_data(cls, data: bytes, *, warning: bool = False) -> Self:
        r = Reader(data, cls.__name__)
        value = cls(r.text(16), r.flag(), warning=warning)
        r.end()
        return value


@attrs.frozen
class ArchivedDocument(Answer):
    """A document found in the archive (40h), the basis of in-doubt recovery.

    Every document type starts with DATE_TIME, ФД number and ФП; what follows depends on the
    type (a receipt: operation and total; a shift report: the shift number) and is kept raw
    in ``details``.
    """

    document_type: int = attrs.field(validator=uint(1))  # 1 registration, 3 receipt, …
    ack_received: bool = attrs.field(validator=boolean)  # квитанция ОФД получена
    at: datetime | None = attrs.field(validator=optional_date_time)
    fd_number: int = attrs.field(validator=uint(4))
    fiscal_sign: int = attrs.field(validator=uint(4))
    details: bytes = attrs.field(default=b"", validator=blob(MAX_DATA - 15))

    def encode_data(self) -> bytes:
        return (
            bytes((self.document_type, self.ack_received))
            + pack_date_time(self.at)
            + self.fd_number.to_bytes(4, "little")
            + self.fiscal_sign.to_bytes(4, "little")
            + self.details
        )

    @classmethod
    def decode_data(cls, data: bytes, *, warning: bool = False) -> Self:
        r = Reader(data, cls.__name__)
        return cls(
            r.uint(1), r.flag(), r.date_time(), r.uint(4), r.uint(4), r.rest(), warning=warning
        )


@attrs.frozen
class StoredOfdAck(Answer):
    """The OFD ack kept for a document (41h): its time, the operator's sign, the ФД number.

    The sign (ФПО) sits between a DATE_TIME and the u32 ФД number, so its length (18 bytes
    on ФН-1, 16 in tag 1078) is whatever lies between them.
    """

    at: datetime | None = attrs.field(validator=optional_date_time)
    operator_sign: bytes = attrs.field(validator=blob(MAX_DATA - 9))
    fd_number: int = attrs.field(validator=uint(4))

    def encode_data(self) -> bytes:
        return pack_date_time(self.at) + self.operator_sign + self.fd_number.to_bytes(4, "little")

    @classmethod
    def decode_data(cls, data: bytes, *, warning: bool = False) -> Self:
        if len(data) < 9:
            raise FnError(f"at least 9 bytes expected, got {len(data)}", cls.__name__)
        at = Reader(data[:5], cls.__name__).date_time()
        return cls(at, data[5:-4], int.from_bytes(data[-4:], "little"), warning=warning)


@attrs.frozen
class UnconfirmedCount(Answer):
    """How many documents have no OFD ack yet (42h)."""

    count: int = attrs.field(validator=uint(2))

    def encode_data(self) -> bytes:
        return self.count.to_bytes(2, "little")

    @classmethod
    def decode_data(cls, data: bytes, *, warning: bool = False) -> Self:
        r = Reader(data, cls.__name__)
        value = cls(r.uint(2), warning=warning)
        r.end()
        return value


#####################################################################################
# Commands (KKT → ФН)
#####################################################################################


@attrs.frozen
class Command:
    """A request with a fixed code; the subclasses without fields send no data."""

    CODE: ClassVar[int]
    ANSWER: ClassVar[type[Answer]] = Done

    def encode_data(self) -> bytes:
        return b""

    @classmethod
    def decode_data(cls, data: bytes) -> Self:
        Reader(data, cls.__name__).end()
        return cls()

    def encode(self) -> bytes:
        return encode_frame(self.CODE, self.encode_data())

    @classmethod
    def decode(cls, frame: bytes) -> Self:
        code, data = decode_frame(frame)
        if code != cls.CODE:
            raise FnError(f"command {code:02x}h is not {cls.CODE:02x}h", cls.__name__)
        return cls.decode_data(data)


@attrs.frozen
class RawCommand:
    """Any command by its code, for what the typed set does not cover (35h, 43h–47h, ФН-М).

    The device connection also hands over a known command whose data it cannot read as a
    RawCommand, so that the ФН side can answer 01h as a real ФН does.
    """

    code: int = attrs.field(validator=uint(1))
    data: bytes = attrs.field(default=b"", validator=blob(MAX_DATA))

    ANSWER: ClassVar[type[Answer]] = RawAnswer

    def encode_data(self) -> bytes:
        return self.data

    def encode(self) -> bytes:
        return encode_frame(self.code, self.data)

    @classmethod
    def decode(cls, frame: bytes) -> Self:
        return cls(*decode_frame(frame))


#: What a KKT can send: a typed command or a raw one.
Request = Command | RawCommand


@attrs.frozen
class _Dated(Command):
    """A command whose only data is the DATE_TIME of the operation."""

    at: datetime = attrs.field(validator=date_time)

    def encode_data(self) -> bytes:
        return pack_date_time(self.at)

    @classmethod
    def decode_data(cls, data: bytes) -> Self:
        r = Reader(data, cls.__name__)
        at = r.date_time()
        r.end()
        if at is None:
            raise FnError("a zero DATE_TIME", cls.__name__)
        return cls(at)


@attrs.frozen
class BeginRegistration(Command):
    """Начать отчёт о регистрации ККТ (02h); the TLVs follow by 07h."""

    CODE = 0x02


@attrs.frozen
class FinishRegistration(Command):
    """Сформировать отчёт о регистрации (перерегистрации) ККТ (03h)."""

    CODE = 0x03
    ANSWER = SignedDocument

    at: datetime = attrs.field(validator=date_time)
    inn: str = attrs.field(converter=pad12, validator=fixed_text(12))  # ИНН 1018
    registration_number: str = attrs.field(  # регистрационный номер ККТ 1037
        converter=pad20, validator=fixed_text(20)
    )
    tax_systems: TaxSystem = attrs.field(converter=_tax_systems)  # 1062
    work_modes: int = attrs.field(validator=uint(1))  # режим работы, bit mask

    def encode_data(self) -> bytes:
        return (
            pack_date_time(self.at)
            + pack_text(self.inn)
            + pack_text(self.registration_number)
            + bytes((self.tax_systems, self.work_modes))
        )

    @classmethod
    def decode_data(cls, data: bytes) -> Self:
        r = Reader(data, cls.__name__)
        at = r.date_time()
        if at is None:
            raise FnError("a zero DATE_TIME", cls.__name__)
        value = cls(at, r.text(12), r.text(20), TaxSystem(r.uint(1)), r.uint(1))
        r.end()
        return value


@attrs.frozen
class BeginFiscalModeClosing(Command):
    """Начать закрытие фискального режима ФН (04h)."""

    CODE = 0x04


@attrs.frozen
class CloseFiscalMode(Command):
    """Закрыть фискальный режим ФН (05h)."""

    CODE = 0x05
    ANSWER = SignedDocument

    at: datetime = attrs.field(validator=date_time)
    registration_number: str = attrs.field(converter=pad20, validator=fixed_text(20))

    def encode_data(self) -> bytes:
        return pack_date_time(self.at) + pack_text(self.registration_number)

    @classmethod
    def decode_data(cls, data: bytes) -> Self:
        r = Reader(data, cls.__name__)
        at = r.date_time()
        if at is None:
            raise FnError("a zero DATE_TIME", cls.__name__)
        value = cls(at, r.text(20))
        r.end()
        return value


@attrs.frozen
class CancelDocument(Command):
    """Отменить документ (06h): drop the document being formed."""

    CODE = 0x06


@attrs.frozen
class SendDocumentData(Command):
    """Передать данные документа (07h): whole TLVs, at most 1024 bytes per call; may repeat."""

    CODE = 0x07

    tlv: bytes = attrs.field(validator=blob(MAX_DATA))

    def encode_data(self) -> bytes:
        return self.tlv

    @classmethod
    def decode_data(cls, data: bytes) -> Self:
        return cls(data)


@attrs.frozen
class GetShiftStatus(Command):
    """Запрос параметров текущей смены (10h)."""

    CODE = 0x10
    ANSWER = ShiftStatus


@attrs.frozen
class BeginShiftOpening(_Dated):
    """Начать открытие смены (11h)."""

    CODE = 0x11


@attrs.frozen
class OpenShift(Command):
    """Открыть смену (12h): makes the shift opening report."""

    CODE = 0x12
    ANSWER = ShiftDocument


@attrs.frozen
class BeginShiftClosing(_Dated):
    """Начать закрытие смены (13h)."""

    CODE = 0x13


@attrs.frozen
class CloseShift(Command):
    """Закрыть смену (14h): makes the shift closing report."""

    CODE = 0x14
    ANSWER = ShiftDocument


@attrs.frozen
class BeginReceipt(_Dated):
    """Начать формирование чека (БСО) (15h): within 24 h of the shift opening."""

    CODE = 0x15


@attrs.frozen
class FinishReceipt(Command):
    """Сформировать чек (16h): the ФН signs the receipt here.

    ``total`` is the receipt total (1020) in kopecks, sent as a 5-byte little-endian integer.
    """

    CODE = 0x16
    ANSWER = ReceiptDocument

    at: datetime = attrs.field(validator=date_time)
    operation: OperationType = attrs.field(converter=_operation)  # 1054
    total: int = attrs.field(validator=uint(5))

    def encode_data(self) -> bytes:
        return pack_date_time(self.at) + bytes((self.operation,)) + self.total.to_bytes(5, "little")

    @classmethod
    def decode_data(cls, data: bytes) -> Self:
        r = Reader(data, cls.__name__)
        at = r.date_time()
        if at is None:
            raise FnError("a zero DATE_TIME", cls.__name__)
        value = cls(at, r.enum(OperationType), r.uint(5))
        r.end()
        return value


@attrs.frozen
class BeginCorrectionReceipt(_Dated):
    """Начать формирование чека коррекции (17h)."""

    CODE = 0x17


@attrs.frozen
class GetExchangeStatus(Command):
    """Получить статус информационного обмена с ОФД (20h)."""

    CODE = 0x20
    ANSWER = ExchangeStatus


@attrs.frozen
class SetTransportStatus(Command):
    """Передать статус транспортного соединения с ОФД (21h)."""

    CODE = 0x21

    connected: bool = attrs.field(validator=boolean)

    def encode_data(self) -> bytes:
        return bytes((self.connected,))

    @classmethod
    def decode_data(cls, data: bytes) -> Self:
        r = Reader(data, cls.__name__)
        value = cls(r.flag())
        r.end()
        return value


@attrs.frozen
class BeginMessageRead(Command):
    """Начать чтение сообщения для ОФД (22h)."""

    CODE = 0x22
    ANSWER = MessageLength


@attrs.frozen
class ReadMessageBlock(Command):
    """Прочитать блок сообщения для ОФД (23h): ``length`` bytes from ``offset``."""

    CODE = 0x23
    ANSWER = MessageBlock

    offset: int = attrs.field(validator=uint(2))
    length: int = attrs.field(validator=uint(2))

    def encode_data(self) -> bytes:
        return self.offset.to_bytes(2, "little") + self.length.to_bytes(2, "little")

    @classmethod
    def decode_data(cls, data: bytes) -> Self:
        r = Reader(data, cls.__name__)
        value = cls(r.uint(2), r.uint(2))
        r.end()
        return value


@attrs.frozen
class CancelMessageRead(Command):
    """Отменить чтение сообщения для ОФД (24h)."""

    CODE = 0x24


@attrs.frozen
class FinishMessageRead(Command):
    """Завершить чтение сообщения для ОФД (25h)."""

    CODE = 0x25


@attrs.frozen
class PassOfdAck(Command):
    """Передать квитанцию ОФД (26h): the OFD's reply container, for the ФН to verify."""

    CODE = 0x26
    ANSWER = OfdAckResult

    ack: bytes = attrs.field(validator=blob(MAX_DATA))

    def encode_data(self) -> bytes:
        return self.ack

    @classmethod
    def decode_data(cls, data: bytes) -> Self:
        return cls(data)


@attrs.frozen
class GetFnStatus(Command):
    """Запрос статуса ФН (30h)."""

    CODE = 0x30
    ANSWER = FnStatus


@attrs.frozen
class GetFnNumber(Command):
    """Запрос номера ФН (31h)."""

    CODE = 0x31
    ANSWER = FnNumber


@attrs.frozen
class GetFnExpiry(Command):
    """Запрос срока действия ФН (32h)."""

    CODE = 0x32
    ANSWER = FnExpiry


@attrs.frozen
class GetFnVersion(Command):
    """Запрос версии ФН (33h)."""

    CODE = 0x33
    ANSWER = FnVersion


@attrs.frozen
class _ByNumber(Command):
    """A command whose only data is a ФД number."""

    fd_number: int = attrs.field(validator=uint(4))

    def encode_data(self) -> bytes:
        return self.fd_number.to_bytes(4, "little")

    @classmethod
    def decode_data(cls, data: bytes) -> Self:
        r = Reader(data, cls.__name__)
        value = cls(r.uint(4))
        r.end()
        return value


@attrs.frozen
class FindDocument(_ByNumber):
    """Найти фискальный документ по номеру (40h)."""

    CODE = 0x40
    ANSWER = ArchivedDocument


@attrs.frozen
class GetOfdAck(_ByNumber):
    """Запрос квитанции о получении ФД оператором по номеру документа (41h)."""

    CODE = 0x41
    ANSWER = StoredOfdAck


@attrs.frozen
class CountUnconfirmed(Command):
    """Запрос количества ФД, на которые нет квитанции (42h)."""

    CODE = 0x42
    ANSWER = UnconfirmedCount


#: Every typed command by its code.
COMMANDS: dict[int, type[Command]] = {
    cls.CODE: cls
    for cls in (
        BeginRegistration,
        FinishRegistration,
        BeginFiscalModeClosing,
        CloseFiscalMode,
        CancelDocument,
        SendDocumentData,
        GetShiftStatus,
        BeginShiftOpening,
        OpenShift,
        BeginShiftClosing,
        CloseShift,
        BeginReceipt,
        FinishReceipt,
        BeginCorrectionReceipt,
        GetExchangeStatus,
        SetTransportStatus,
        BeginMessageRead,
        ReadMessageBlock,
        CancelMessageRead,
        FinishMessageRead,
        PassOfdAck,
        GetFnStatus,
        GetFnNumber,
        GetFnExpiry,
        GetFnVersion,
        FindDocument,
        GetOfdAck,
        CountUnconfirmed,
    )
}


def decode_command(frame: bytes) -> Request:
    """The command in one frame: typed when its code is known, else a RawCommand."""
    code, data = decode_frame(frame)
    kind = COMMANDS.get(code)
    return RawCommand(code, data) if kind is None else kind.decode_data(data)


def decode_answer(frame: bytes, command: Request | type[Request]) -> Answer:
    """The answer in one frame, read as the answer to ``command``; Failure for a non-zero code."""
    status, data = decode_frame(frame)
    warning = bool(status & _WARNING_BIT)
    if status & ~_WARNING_BIT:
        return Failure(status & ~_WARNING_BIT, data, warning=warning)
    return command.ANSWER.decode_data(data, warning=warning)
