"""The ФН's result codes (коды ответов), life phases (фазы жизни) and flag bytes."""

from __future__ import annotations

import enum

__all__ = [
    "ExchangeFlag",
    "FnPhase",
    "FnWarning",
    "LocalCheckReason",
    "MarkingRefusal",
    "OnlineCheckCode",
    "ResultCode",
    "describe_result",
]


class ResultCode(enum.IntEnum):
    """The low 7 bits of an answer's status byte (S3 tables 4–5; the moguchev ФН model).

    Codes 0x0A–0x0F, 0x13, 0x18–0x1F and others are not assigned in the 2016 protocol; an
    answer carrying one still decodes (see :class:`protocols.fn.Failure`).
    """

    OK = 0x00
    UNKNOWN_COMMAND = 0x01
    WRONG_STATE = 0x02
    FN_FAILURE = 0x03
    CRYPTO_FAILURE = 0x04
    LIFETIME_OVER = 0x05
    ARCHIVE_FULL = 0x06
    WRONG_DATE_TIME = 0x07
    NO_DATA = 0x08
    WRONG_PARAMETER = 0x09
    TLV_TOO_LARGE = 0x10
    NO_TRANSPORT = 0x11
    CRYPTO_EXHAUSTED = 0x12
    STORAGE_EXHAUSTED = 0x14
    OFD_WAIT_EXHAUSTED = 0x15
    SHIFT_OVER_24H = 0x16
    WRONG_TIME_DIFFERENCE = 0x17
    OFD_MESSAGE_REJECTED = 0x20

    @property
    def ru(self) -> str:
        """The Russian text, as a KKT shows it."""
        return _TEXT[self][0]

    @property
    def en(self) -> str:
        """The English text."""
        return _TEXT[self][1]


_TEXT: dict[ResultCode, tuple[str, str]] = {
    ResultCode.OK: ("Успешное выполнение команды", "success"),
    ResultCode.UNKNOWN_COMMAND: (
        "Неизвестная команда, неверный формат посылки или неизвестные параметры",
        "unknown command, wrong frame format or unknown parameters",
    ),
    ResultCode.WRONG_STATE: ("Неверное состояние ФН", "wrong ФН state for this command"),
    ResultCode.FN_FAILURE: ("Отказ ФН", "ФН failure (read 35h)"),
    ResultCode.CRYPTO_FAILURE: ("Отказ КС", "crypto coprocessor (КС) failure"),
    ResultCode.LIFETIME_OVER: (
        "Закончен срок эксплуатации ФН",
        "the ФН lifetime is over",
    ),
    ResultCode.ARCHIVE_FULL: ("Архив ФН переполнен", "the ФН archive is full"),
    ResultCode.WRONG_DATE_TIME: ("Неверные дата и/или время", "wrong date and/or time"),
    ResultCode.NO_DATA: ("Нет запрошенных данных", "the requested data does not exist"),
    ResultCode.WRONG_PARAMETER: (
        "Некорректное значение параметров команды",
        "a command parameter has a wrong value",
    ),
    ResultCode.TLV_TOO_LARGE: (
        "Превышение размеров TLV данных",
        "the TLV data exceed the allowed size",
    ),
    ResultCode.NO_TRANSPORT: (
        "Нет транспортного соединения",
        "no transport connection to the OFD",
    ),
    ResultCode.CRYPTO_EXHAUSTED: (
        "Исчерпан ресурс КС (криптографического сопроцессора)",
        "the crypto coprocessor resource is exhausted",
    ),
    ResultCode.STORAGE_EXHAUSTED: (
        "Исчерпан ресурс хранения",
        "the storage resource is exhausted",
    ),
    ResultCode.OFD_WAIT_EXHAUSTED: (
        "Исчерпан ресурс ожидания передачи сообщения (более 30 дней)",
        "the oldest unsent message is older than 30 days",
    ),
    ResultCode.SHIFT_OVER_24H: (
        "Продолжительность смены более 24 часов",
        "the shift has lasted more than 24 hours",
    ),
    ResultCode.WRONG_TIME_DIFFERENCE: (
        "Неверная разница во времени между двумя операциями",
        "the time between two operations differs from the ФН timer by more than 5 minutes",
    ),
    ResultCode.OFD_MESSAGE_REJECTED: (
        "Сообщение от ОФД не может быть принято",
        "the message from the OFD cannot be accepted",
    ),
}


def describe_result(code: int) -> tuple[str, str]:
    """Russian and English text for any result code, including unassigned ones."""
    try:
        return _TEXT[ResultCode(code)]
    except ValueError:
        return (f"Неизвестный код ошибки {code:02x}h", f"unassigned result code {code:02x}h")


class MarkingRefusal(enum.IntEnum):
    """The ФН-М's refusals of marking-code work (команды группы Bxh), as registers report them.

    Numbers and texts are JavaPOS's (shtrih-m/javapos_shtrih@af0a237
    ``Source/FiscalPrinterService/src/res/messages_ru.txt``, FSPrinterErrorA0…AC; its
    ``SMFiscalPrinterImpl.getDriverErrorText`` reads a register's error byte A0h–B2h as the
    ФН's). The ФН-М's own result codes for them are not public.
    """

    FORBIDDEN = 0xA0
    WRONG_SEQUENCE = 0xA1
    BLOCKED = 0xA2
    TABLE_FULL = 0xA3
    TLV_MISSING = 0xAA
    NOT_CHECKED = 0xAC

    @property
    def ru(self) -> str:
        return _MARKING_TEXT[self][0]

    @property
    def en(self) -> str:
        return _MARKING_TEXT[self][1]


_MARKING_TEXT: dict[MarkingRefusal, tuple[str, str]] = {
    MarkingRefusal.FORBIDDEN: (
        "Запрещена работа с маркированным товаром",
        "marked goods are not allowed",
    ),
    MarkingRefusal.WRONG_SEQUENCE: (
        "Неверная последовательность команд группы Bxh",
        "marking commands out of sequence",
    ),
    MarkingRefusal.BLOCKED: (
        "Работа с маркированными товарами временно заблокирована",
        "marked goods temporarily blocked",
    ),
    MarkingRefusal.TABLE_FULL: (
        "Переполнена таблица проверки кодов маркировки",
        "the marking code check table is full",
    ),
    MarkingRefusal.TLV_MISSING: (
        "В блоке TLV отсутствуют необходимые реквизиты",
        "the TLV block lacks required tags",
    ),
    MarkingRefusal.NOT_CHECKED: (
        "В реквизите 2007 содержится КМ, который ранее не проверялся в ФН",
        "a marking code in 2007 was not checked by the ФН",
    ),
}


class LocalCheckReason(enum.IntEnum):
    """Why the ФН did not check a КМ itself (причина, по которой не была проведена локальная
    проверка), as the FF61h answer gives it (javapos ``res/commands.xml``, FF61h note 1)."""

    CHECKED = 0  # КМ проверен в ФН
    TYPE_NOT_CHECKED = 1  # КМ данного типа не подлежит проверке в ФН
    NO_KEY = 2  # ФН не содержит ключ проверки кода проверки этого КМ
    NO_CRYPTO_TAIL = 3  # нет идентификаторов применения GS1 91 и/или 92, или их формат неверный
    OTHER = 4  # проверка КМ в ФН невозможна по иной причине


class OnlineCheckCode(enum.IntEnum):
    """The ФН's answer code to the online check of a КМ (код ответа ФН на команду онлайн-проверки,
    javapos ``res/commands.xml`` FF61h)."""

    ANSWERED = 0x00  # the ОИСМ answered; its 2106 and TLV follow
    ANSWER_REJECTED = 0x20  # the ФН could not accept the answer; a reason byte follows
    NO_ANSWER = 0xFF  # the ОИСМ did not answer in time


class FnPhase(enum.IntEnum):
    """Фаза жизни ФН (30h): each phase sets one more bit than the one before."""

    SETUP = 0x00  # настройка
    READY = 0x01  # готовность к фискализации
    FISCAL = 0x03  # фискальный режим
    POST_FISCAL = 0x07  # постфискальный режим, идёт передача ФД в ОФД
    ARCHIVE_READ = 0x0F  # чтение данных из архива ФН


class FnWarning(enum.IntFlag):
    """Флаги предупреждения (30h, S3 table 9).

    CRITICAL at bit 7 is the common reading, not confirmed by a public source.
    """

    KEYS_EXPIRE_3_DAYS = 0x01  # срочная замена КС (до окончания срока 3 дня)
    KEYS_EXPIRE_30_DAYS = 0x02  # исчерпание ресурса КС (до окончания срока 30 дней)
    ARCHIVE_90_PERCENT = 0x04  # переполнение памяти ФН (архив заполнен на 90 %)
    OFD_TIMEOUT = 0x08  # превышено время ожидания ответа ОФД
    CRITICAL = 0x80  # критическая ошибка ФН


class ExchangeFlag(enum.IntFlag):
    """Статус информационного обмена с ОФД (20h), as the moguchev driver and model read it."""

    TRANSPORT_UP = 0x01  # транспортное соединение установлено
    MESSAGE_PENDING = 0x02  # есть сообщение для передачи в ОФД
    AWAITING_RECEIPT = 0x04  # ожидание ответного сообщения (квитанции) от ОФД


#: Receipt TLV data a ФН takes for one receipt (registers.md §3: "receipt data ≤ 30 KB");
#: more answers 10h.
MAX_RECEIPT_DATA = 30 * 1024
#: Checked marking codes a ФН-М keeps at once, awaiting their receipt's lines (A3h when
#: full). The size is not public (FF70h reports the count in one byte); Kassa assumes 100,
#: and the checks before fiscalization refuse a receipt with more codes to check.
MARKING_TABLE_SIZE = 100
