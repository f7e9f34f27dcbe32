"""The FFD enumerations that the tag dictionary's BYTE tags carry.

Sources: ffd.md §3 (fiscal-data, javapos_shtrih, order ЕД-7-20/662@ as amended by
ЕД-7-20/1050@ for the 22 % rates from 05.01.2026).
"""

from __future__ import annotations

import enum
from decimal import Decimal


class OperationType(enum.IntEnum):
    """1054 признак расчёта; also the ``n=`` of the receipt QR code."""

    SELL = 1  # приход
    SELL_REFUND = 2  # возврат прихода
    BUY = 3  # расход
    BUY_REFUND = 4  # возврат расхода


class TaxSystem(enum.IntFlag):
    """1055 применяемая СНО (one bit in a receipt) / 1062 системы налогообложения (any bits)."""

    OSN = 0x01  # общая
    USN_INCOME = 0x02  # упрощённая, доход
    USN_INCOME_OUTCOME = 0x04  # упрощённая, доход минус расход
    ENVD = 0x08  # ЕНВД, abolished in 2021, still defined
    ESN = 0x10  # единый сельскохозяйственный налог
    PATENT = 0x20  # патентная


class VatRate(enum.IntEnum):
    """1199 ставка НДС, every rate in force in 2026.

    Codes 1 and 3 meant 18 % and 18/118 before 2019; some vendors printed 22 % under code 1
    during the 2026 transition. Decoders accept that; Kassa emits 11 and 12 for 22 %.
    """

    VAT20 = 1  # НДС 20 %
    VAT10 = 2  # НДС 10 %
    VAT120 = 3  # НДС расч. 20/120
    VAT110 = 4  # НДС расч. 10/110
    VAT0 = 5  # НДС 0 %
    NONE = 6  # НДС не облагается
    VAT5 = 7  # НДС 5 % (from 2025)
    VAT7 = 8  # НДС 7 % (from 2025)
    VAT105 = 9  # НДС расч. 5/105
    VAT107 = 10  # НДС расч. 7/107
    VAT22 = 11  # НДС 22 % (from 05.01.2026)
    VAT122 = 12  # НДС расч. 22/122

    @property
    def percent(self) -> Decimal | None:
        """The rate in percent; None where no VAT applies."""
        return _VAT_PERCENT[self]


_VAT_PERCENT: dict[VatRate, Decimal | None] = {
    VatRate.VAT20: Decimal(20),
    VatRate.VAT10: Decimal(10),
    VatRate.VAT120: Decimal(20),
    VatRate.VAT110: Decimal(10),
    VatRate.VAT0: Decimal(0),
    VatRate.NONE: None,
    VatRate.VAT5: Decimal(5),
    VatRate.VAT7: Decimal(7),
    VatRate.VAT105: Decimal(5),
    VatRate.VAT107: Decimal(7),
    VatRate.VAT22: Decimal(22),
    VatRate.VAT122: Decimal(22),
}


class PaymentMethod(enum.IntEnum):
    """1214 признак способа расчёта."""

    FULL_PREPAYMENT = 1  # предоплата 100 %
    PREPAYMENT = 2  # предоплата
    ADVANCE = 3  # аванс
    FULL_PAYMENT = 4  # полный расчёт
    PARTIAL_PAYMENT_AND_CREDIT = 5  # частичный расчёт и кредит
    CREDIT = 6  # передача в кредит
    CREDIT_PAYMENT = 7  # оплата кредита


class CorrectionType(enum.IntEnum):
    """1173 тип коррекции."""

    SELF = 0  # самостоятельно
    BY_ORDER = 1  # по предписанию


class MeasureUnit(enum.IntEnum):
    """2108 мера количества; 0 is pieces, as javapos and real Shtrih registers send it."""

    PIECE = 0
    GRAM = 10
    KILOGRAM = 11
    TONNE = 12
    CENTIMETRE = 20
    DECIMETRE = 21
    METRE = 22
    SQUARE_CENTIMETRE = 30
    SQUARE_DECIMETRE = 31
    SQUARE_METRE = 32
    MILLILITRE = 40
    LITRE = 41
    CUBIC_METRE = 42
    KILOWATT_HOUR = 50
    GIGACALORIE = 51
    DAY = 70
    HOUR = 71
    MINUTE = 72
    SECOND = 73
    KILOBYTE = 80
    MEGABYTE = 81
    GIGABYTE = 82
    TERABYTE = 83
    OTHER = 255


class PaymentSubject(enum.IntEnum):
    """1212 признак предмета расчёта, in its FFD 1.2 meaning (12 was «составной» in 1.05)."""

    GOODS = 1  # товар
    EXCISE_GOODS = 2  # подакцизный товар
    WORK = 3  # работа
    SERVICE = 4  # услуга
    GAMBLING_BET = 5  # ставка азартной игры
    GAMBLING_WIN = 6  # выигрыш азартной игры
    LOTTERY_TICKET = 7  # лотерейный билет
    LOTTERY_WIN = 8  # выигрыш лотереи
    INTELLECTUAL_PROPERTY = 9  # предоставление РИД
    PAYMENT = 10  # платёж (аванс, задаток, предоплата, кредит)
    AGENT_COMMISSION = 11  # агентское вознаграждение
    PAYOUT = 12  # выплата
    OTHER = 13  # иной предмет расчёта
    PROPERTY_RIGHT = 14  # имущественное право
    NON_OPERATING_INCOME = 15  # внереализационный доход
    INSURANCE_PREMIUM = 16  # страховые взносы / иные платежи, уменьшающие налог
    TRADE_FEE = 17  # торговый сбор
    RESORT_FEE = 18  # курортный сбор
    PLEDGE = 19  # залог
    EXPENSE = 20  # расход
    PENSION_INSURANCE_IP = 21  # взносы на ОПС ИП
    PENSION_INSURANCE = 22  # взносы на ОПС
    MEDICAL_INSURANCE_IP = 23  # взносы на ОМС ИП
    MEDICAL_INSURANCE = 24  # взносы на ОМС
    SOCIAL_INSURANCE = 25  # взносы на ОСС
    CASINO_PAYMENT = 26  # платёж казино
    CASH_WITHDRAWAL = 27  # выдача денежных средств банковским платёжным агентом
    EXCISE_MARKED_NO_CODE = 30  # подакцизный маркированный без КМ (АТНМ)
    EXCISE_MARKED = 31  # подакцизный маркированный с КМ (АТМ)
    MARKED_NO_CODE = 32  # маркированный без КМ (ТНМ)
    MARKED = 33  # маркированный с КМ (ТМ)


#: 1212 kinds that carry a marking code (1163) in FFD 1.2.
MARKED_SUBJECTS = frozenset({PaymentSubject.EXCISE_MARKED, PaymentSubject.MARKED})


class MarkingCheckFlags(enum.IntFlag):
    """2004 / 2005 / 2106 результат проверки КМ: the bits of a marking code's check (ffd.md §3).

    2004 is the ФН's own check, 2005 the ОИСМ's answer, 2106 what the line carries.
    """

    CODE_CHECKED = 0x01  # КМ проверен
    CODE_VALID = 0x02  # результат проверки КП КМ положительный
    STATUS_CHECKED = 0x04  # статус товара проверен ОИСМ
    STATUS_VALID = 0x08  # от ОИСМ получены сведения, что планируемый статус товара корректен
    OFFLINE = 0x10  # результат сформирован без ответа ОИСМ (в автономном режиме)


class MarkingCodeType(enum.IntEnum):
    """2100 тип кода маркировки: which check code the КМ carries (ffd.md §3)."""

    UNIDENTIFIED = 0  # не идентифицирован
    SHORT = 1  # короткий КМ
    CHECK_CODE_88 = 2  # код проверки 88 символов, проверяется в ФН
    CHECK_CODE_44_UNCHECKED = 3  # код проверки 44 символа, не проверяется в ФН
    CHECK_CODE_44 = 4  # код проверки 44 символа, проверяется в ФН
    CHECK_CODE_4_UNCHECKED = 5  # код проверки 4 символа, не проверяется в ФН


class PlannedStatus(enum.IntEnum):
    """2003 / 2110 планируемый (присвоенный) статус товара (ffd.md §3, javapos FSCheckMC)."""

    PIECE_SOLD = 1  # штучный товар реализован
    MEASURED_SOLD = 2  # мерный товар в стадии реализации
    PIECE_RETURNED = 3  # штучный товар возвращён
    MEASURED_RETURNED = 4  # часть мерного товара возвращена
    UNCHANGED = 255  # статус товара не изменился


class OismProductStatus(enum.IntEnum):
    """2109 ответ ОИСМ о статусе товара (fr_drv_ng #225 quotes the table)."""

    CORRECT = 1  # планируемый статус товара корректен
    INCORRECT = 2  # планируемый статус товара некорректен
    SUSPENDED = 3  # оборот товара приостановлен


class AgentType(enum.IntFlag):
    """1057 / 1222 признак агента: which kind of agent the seller acts as."""

    BANK_PAYMENT_AGENT = 0x01  # банковский платёжный агент
    BANK_PAYMENT_SUBAGENT = 0x02  # банковский платёжный субагент
    PAYMENT_AGENT = 0x04  # платёжный агент
    PAYMENT_SUBAGENT = 0x08  # платёжный субагент
    ATTORNEY = 0x10  # поверенный
    COMMISSION_AGENT = 0x20  # комиссионер
    OTHER = 0x40  # иной агент


class FfdVersion(enum.IntEnum):
    """1209 номер версии ФФД."""

    V1_0 = 1
    V1_05 = 2
    V1_1 = 3
    V1_2 = 4
