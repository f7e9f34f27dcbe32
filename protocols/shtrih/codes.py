"""Shtrih-M code tables: error codes (коды ошибок), modes and submodes (режимы и подрежимы),
status flags and the small enumerations the commands use.

Sources: the protocol specification v1.16/v1.17 as summarised in
``reference/registers.md`` §1.7 (errors), §1.8 (modes), §1.9 (flags) and §1.6 (per-command
bytes). Error codes 01h–20h come from the ФН and carry the ФН protocol's numbers; 2Fh and up
come from the register itself. Only the reference's codes and modes are listed; anything
else decodes as a plain int (``split_mode`` gives None, ``describe_error`` says "unknown").

The marking codes (FFD 1.2) come from public driver sources: A0h–ACh are the ФН-М's refusals
as JavaPOS reads them (:class:`protocols.fn.MarkingRefusal`), D3h the register's "marking
code cannot be parsed" (shtrih-m/fr_drv_ng_examples #42: FF61h with an empty code answers
``0x00D30015: передана пустая строка в качестве КМ``; ``classic_interface/main.cpp`` calls
211 = D3h "ошибка разбора КМ").
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

from protocols.fn import MarkingRefusal

__all__ = [
    "ERROR_TEXTS",
    "MODE_TEXTS",
    "SUBMODE_TEXTS",
    "ErrorCode",
    "FnDocumentKind",
    "FnLifePhase",
    "MarkingDecision",
    "Mode",
    "OfdExchangeStatus",
    "OperationType",
    "PrintResult",
    "ReceiptType",
    "StatusFlags",
    "Submode",
    "TaxationSystem",
    "describe_error",
    "split_mode",
]


class ErrorCode(enum.IntEnum):
    """The error byte of an answer (код ошибки); 0 means success."""

    OK = 0x00
    FN_UNKNOWN_COMMAND = 0x01
    FN_WRONG_STATE = 0x02
    FN_FAILURE = 0x03
    FN_CRYPTO_FAILURE = 0x04
    FN_LIFETIME_OVER = 0x05
    FN_ARCHIVE_FULL = 0x06
    FN_WRONG_DATE_TIME = 0x07
    FN_NO_DATA = 0x08
    FN_BAD_PARAMETER = 0x09
    FN_TLV_TOO_LARGE = 0x10
    FN_NO_TRANSPORT = 0x11
    FN_CRYPTO_RESOURCE_EXHAUSTED = 0x12
    FN_STORAGE_EXHAUSTED = 0x14
    FN_OFD_WAIT_EXHAUSTED = 0x15
    FN_SHIFT_OVER_24H = 0x16
    FN_WRONG_TIME_DIFFERENCE = 0x17
    FN_OFD_MESSAGE_REJECTED = 0x20
    FN_EXCHANGE_TIMEOUT = 0x2F
    FN_NOT_RESPONDING = 0x30
    BAD_PARAMETERS = 0x33
    NOT_SUPPORTED = 0x37
    PAYMENTS_BELOW_TOTAL = 0x45
    NOT_ENOUGH_CASH = 0x46
    RECEIPT_OPEN = 0x4A
    RECEIPT_BUFFER_FULL = 0x4B
    SHIFT_OVER_24H = 0x4E
    WRONG_PASSWORD = 0x4F
    PRINTING_PREVIOUS = 0x50
    WAITING_CONTINUE_PRINT = 0x58
    WRONG_OPERATION = 0x5E
    NO_RECEIPT_PAPER = 0x6B
    NOT_IN_THIS_SUBMODE = 0x72
    NOT_IN_THIS_MODE = 0x73
    ZERO_TOTAL = 0x8E
    OPERATIONS_LIMIT = 0x94
    FN_MARKING_FORBIDDEN = MarkingRefusal.FORBIDDEN  # A0h
    FN_MARKING_WRONG_SEQUENCE = MarkingRefusal.WRONG_SEQUENCE  # A1h
    FN_MARKING_BLOCKED = MarkingRefusal.BLOCKED  # A2h
    FN_MARKING_TABLE_FULL = MarkingRefusal.TABLE_FULL  # A3h
    FN_MARKING_TLV_MISSING = MarkingRefusal.TLV_MISSING  # AAh
    FN_MARKING_NOT_CHECKED = MarkingRefusal.NOT_CHECKED  # ACh
    CONFIRM_DATE_TIME = 0xC0
    NO_PRINTER_LINK = 0xC8
    MARKING_CODE_UNREADABLE = 0xD3


#: Error code → (Russian text after the specification's wording, short English).
ERROR_TEXTS: Mapping[int, tuple[str, str]] = MappingProxyType(
    {
        0x00: ("Ошибок нет", "no error"),
        0x01: (
            "ФН: неизвестная команда, неверный формат посылки или неизвестные параметры",
            "ФН: unknown command or format",
        ),
        0x02: ("ФН: неверное состояние ФН", "ФН: wrong state"),
        0x03: ("ФН: ошибка ФН", "ФН: failure"),
        0x04: ("ФН: ошибка КС", "ФН: crypto coprocessor failure"),
        0x05: ("ФН: закончен срок эксплуатации ФН", "ФН: lifetime over"),
        0x06: ("ФН: архив ФН переполнен", "ФН: archive full"),
        0x07: ("ФН: неверные дата и/или время", "ФН: wrong date or time"),
        0x08: ("ФН: нет запрошенных данных", "ФН: no such data"),
        0x09: ("ФН: некорректное значение параметров команды", "ФН: bad parameter value"),
        0x10: ("ФН: превышение размеров TLV данных", "ФН: TLV data too large"),
        0x11: ("ФН: нет транспортного соединения", "ФН: no transport connection"),
        0x12: ("ФН: исчерпан ресурс КС", "ФН: crypto resource exhausted"),
        0x14: ("ФН: исчерпан ресурс хранения", "ФН: storage resource exhausted"),
        0x15: (
            "ФН: исчерпан ресурс ожидания передачи сообщения",
            "ФН: OFD wait resource exhausted (30 days)",
        ),
        0x16: ("ФН: продолжительность смены более 24 часов", "ФН: shift longer than 24 h"),
        0x17: (
            "ФН: неверная разница во времени между двумя операциями",
            "ФН: wrong time difference between operations",
        ),
        0x20: ("ФН: сообщение от ОФД не может быть принято", "ФН: OFD message rejected"),
        0x2F: ("Таймаут обмена с ФН", "ФН exchange timeout"),
        0x30: ("ФН не отвечает", "ФН not responding"),
        0x33: ("Некорректные параметры в команде", "bad command parameters"),
        0x37: ("Команда не поддерживается в данной реализации ККТ", "command not supported"),
        0x45: ("Сумма всех типов оплаты меньше итога чека", "payments below receipt total"),
        0x46: ("Не хватает наличности в кассе", "not enough cash"),
        0x4A: ("Открыт чек – операция невозможна", "receipt open, operation impossible"),
        0x4B: ("Буфер чека переполнен", "receipt buffer full"),
        0x4E: ("Смена превысила 24 часа", "shift exceeded 24 h"),
        0x4F: ("Неверный пароль", "wrong password"),
        0x50: (
            "Идёт печать результатов выполнения предыдущей команды",
            "printing the previous command",
        ),
        0x58: ("Ожидание команды продолжения печати", "waiting for continue printing"),
        0x5E: ("Некорректная операция", "wrong operation"),
        0x6B: ("Нет чековой ленты", "no receipt paper"),
        0x72: ("Команда не поддерживается в данном подрежиме", "not supported in this submode"),
        0x73: ("Команда не поддерживается в данном режиме", "not supported in this mode"),
        0x8E: ("Нулевой итог чека", "zero receipt total"),
        0x94: ("Исчерпан лимит операций в чеке", "operations-per-receipt limit reached"),
        **{int(code): (f"ФН: {code.ru}", f"ФН: {code.en}") for code in MarkingRefusal},
        0xC0: ("Контроль даты и времени (подтвердите дату и время)", "confirm date and time"),
        0xC8: ("Нет связи с принтером", "no link with the printer"),
        0xD3: ("Ошибка разбора КМ", "the marking code cannot be parsed"),
    }
)


def describe_error(code: int) -> str:
    """``"4Fh Неверный пароль (wrong password)"``; unknown codes are named as such."""
    ru, en = ERROR_TEXTS.get(code, ("Неизвестная ошибка", "unknown error"))
    return f"{code:02X}h {ru} ({en})"


class Mode(enum.IntEnum):
    """The register mode (режим ККТ): the low nibble of the mode byte of 10h/11h."""

    DATA_OUTPUT = 1
    SHIFT_OPEN = 2
    SHIFT_EXPIRED = 3
    SHIFT_CLOSED = 4
    LOCKED_WRONG_TAX_PASSWORD = 5
    WAITING_DATE_CONFIRMATION = 6
    DECIMAL_POINT_CHANGE = 7
    DOCUMENT_OPEN = 8
    TECHNOLOGICAL_RESET_ALLOWED = 9
    TEST_RUN = 10
    FULL_FISCAL_REPORT = 11
    FISCAL_SLIP = 12
    SLIP_PRINTING = 13
    FISCAL_SLIP_FORMED = 14


MODE_TEXTS: Mapping[Mode, tuple[str, str]] = MappingProxyType(
    {
        Mode.DATA_OUTPUT: ("Выдача данных", "data output"),
        Mode.SHIFT_OPEN: ("Открытая смена, 24 часа не кончились", "shift open, under 24 h"),
        Mode.SHIFT_EXPIRED: ("Открытая смена, 24 часа кончились", "shift open, 24 h expired"),
        Mode.SHIFT_CLOSED: ("Закрытая смена", "shift closed"),
        Mode.LOCKED_WRONG_TAX_PASSWORD: (
            "Блокировка по неправильному паролю налогового инспектора",
            "locked: wrong tax inspector password",
        ),
        Mode.WAITING_DATE_CONFIRMATION: (
            "Ожидание подтверждения ввода даты",
            "waiting for date confirmation",
        ),
        Mode.DECIMAL_POINT_CHANGE: (
            "Разрешение изменения положения десятичной точки",
            "decimal point change",
        ),
        Mode.DOCUMENT_OPEN: ("Открытый документ", "document open"),
        Mode.TECHNOLOGICAL_RESET_ALLOWED: (
            "Режим разрешения технологического обнуления",
            "technological reset allowed",
        ),
        Mode.TEST_RUN: ("Тестовый прогон", "test run"),
        Mode.FULL_FISCAL_REPORT: ("Печать полного фискального отчёта", "full fiscal report"),
        Mode.FISCAL_SLIP: ("Работа с фискальным подкладным документом", "fiscal slip document"),
        Mode.SLIP_PRINTING: ("Печать подкладного документа", "slip printing"),
        Mode.FISCAL_SLIP_FORMED: (
            "Фискальный подкладной документ сформирован",
            "fiscal slip formed",
        ),
    }
)


class Submode(enum.IntEnum):
    """The printer submode (подрежим ФР) of 10h/11h; 5 rejects printing commands with 50h."""

    IDLE = 0
    PASSIVE_PAPER_OUT = 1
    ACTIVE_PAPER_OUT = 2
    AFTER_ACTIVE_PAPER_OUT = 3
    LONG_REPORT_PRINTING = 4
    PRINTING = 5


SUBMODE_TEXTS: Mapping[Submode, tuple[str, str]] = MappingProxyType(
    {
        Submode.IDLE: ("Бумага есть – ФР не в фазе печати", "paper present, idle"),
        Submode.PASSIVE_PAPER_OUT: ("Пассивное отсутствие бумаги", "passive paper-out"),
        Submode.ACTIVE_PAPER_OUT: ("Активное отсутствие бумаги", "active paper-out"),
        Submode.AFTER_ACTIVE_PAPER_OUT: (
            "После активного отсутствия бумаги – ожидание команды продолжения печати",
            "after active paper-out, waiting for B0h",
        ),
        Submode.LONG_REPORT_PRINTING: (
            "Фаза печати операции полных фискальных отчётов",
            "printing a long fiscal report",
        ),
        Submode.PRINTING: ("Фаза печати операции", "printing phase"),
    }
)


def split_mode(mode_byte: int) -> tuple[Mode | None, int]:
    """Split a mode byte into the mode (low nibble) and its status (high nibble, e.g. 8.2)."""
    low = mode_byte & 0x0F
    return (Mode(low) if low in Mode._value2member_map_ else None), mode_byte >> 4


class StatusFlags(enum.IntFlag):
    """The flags word of 10h/11h (флаги ККТ)."""

    JOURNAL_ROLL = 1 << 0
    RECEIPT_ROLL = 1 << 1
    JOURNAL_PAPER_SENSOR = 1 << 6
    RECEIPT_PAPER_SENSOR = 1 << 7
    JOURNAL_HEAD_LEVER = 1 << 8
    RECEIPT_HEAD_LEVER = 1 << 9
    COVER_OPEN = 1 << 10
    CASH_DRAWER_OPEN = 1 << 11
    JOURNAL_COVER = 1 << 12


class PrintResult(enum.IntEnum):
    """The optional last byte of the 10h answer (результат последней печати)."""

    OK = 0
    PAPER_BREAK = 1
    PRINTER_ERROR = 2
    PRINTING = 5


class ReceiptType(enum.IntEnum):
    """The receipt type of 8Dh (тип документа) and the status of mode 8."""

    SALE = 0
    PURCHASE = 1
    SALE_RETURN = 2
    PURCHASE_RETURN = 3


class OperationType(enum.IntEnum):
    """The operation of FF46h (тип операции, признак расчёта, tag 1054)."""

    INCOME = 1
    INCOME_RETURN = 2
    EXPENSE = 3
    EXPENSE_RETURN = 4


class TaxationSystem(enum.IntFlag):
    """The taxation system bit field of FF45h (система налогообложения, tag 1055)."""

    OSN = 1 << 0
    USN_INCOME = 1 << 1
    USN_INCOME_MINUS_EXPENSE = 1 << 2
    ENVD = 1 << 3
    ESHN = 1 << 4
    PATENT = 1 << 5


class FnLifePhase(enum.IntFlag):
    """The ФН life phase byte of FF01h (фаза жизни ФН)."""

    SET_UP = 1 << 0
    FISCAL_MODE = 1 << 1
    POST_FISCAL = 1 << 2
    OFD_TRANSFER_FINISHED = 1 << 3


class FnDocumentKind(enum.IntEnum):
    """The document open in the ФН, from FF01h (текущий документ)."""

    NONE = 0x00
    REGISTRATION = 0x01
    SHIFT_OPEN = 0x02
    RECEIPT = 0x04
    SHIFT_CLOSE = 0x08
    FISCAL_CLOSE = 0x10
    BSO = 0x11
    REREGISTRATION_FN_CHANGE = 0x12
    REREGISTRATION = 0x13
    CORRECTION_RECEIPT = 0x14
    BSO_CORRECTION = 0x15
    SETTLEMENT_REPORT = 0x17


class OfdExchangeStatus(enum.IntFlag):
    """The status bits of FF39h (статус информационного обмена с ОФД)."""

    TRANSPORT_CONNECTED = 1 << 0
    MESSAGE_PENDING = 1 << 1
    WAITING_OFD_RECEIPT = 1 << 2
    OFD_COMMAND = 1 << 3
    OFD_SETTINGS_CHANGED = 1 << 4
    WAITING_COMMAND_ANSWER = 1 << 5


class MarkingDecision(enum.IntEnum):
    """The decision byte of FF69h (решение): JavaPOS ``FSAcceptMC`` and ``res/commands.xml``."""

    REJECT = 0  # отвергнуть
    ACCEPT = 1  # принять
    CLEAR = 2  # очистить буфер КМ (JavaPOS ``ActionClearBuffer``, ``mcClearBuffer``)
