"""The one receipt model (кассовый чек, document 3; чек коррекции, document 31) and its parts.

Every ingress format maps onto these classes and every egress is made from them. They are
frozen attrs values without validators: validation (:mod:`protocols.validation`) reports every
problem at once with a field path, which validators that raise on the first cannot. Codes of
FFD enumerations are kept as ``int`` so that an out-of-range code can be reported rather than
refused at construction; the enums of :mod:`protocols.tlv.enums` are ints and fit directly.

Money is integer kopecks, quantities are :class:`~decimal.Decimal`. Each field that maps onto
one FFD tag carries that tag number in its metadata (``tag``); the FFD mapping
(:mod:`protocols.documents.ffd`) reads it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs

from protocols.tlv.enums import MeasureUnit


def tag(number: int, *, default: Any = attrs.NOTHING, block: type | None = None) -> Any:
    """A field that maps onto FFD tag ``number``; ``block`` names the class of an STLV value."""
    return attrs.field(default=default, metadata={"tag": number, "block": block})


# --- parts of an item -------------------------------------------------------------------------


@attrs.frozen
class AgentData:
    """1223 данные агента: who the agent acts for and how to reach the parties."""

    operation: str | None = tag(1044, default=None)  # операция платёжного агента
    phones: tuple[str, ...] = tag(1073, default=())  # телефоны платёжного агента
    payment_operator_phones: tuple[str, ...] = tag(1074, default=())  # оператора по приёму
    transfer_operator_phones: tuple[str, ...] = tag(1075, default=())  # оператора перевода
    transfer_operator_name: str | None = tag(1026, default=None)
    transfer_operator_address: str | None = tag(1005, default=None)
    transfer_operator_inn: str | None = tag(1016, default=None)


@attrs.frozen
class Supplier:
    """1224 данные поставщика, with 1226 ИНН поставщика kept beside it in the item."""

    name: str | None = tag(1225, default=None)
    phones: tuple[str, ...] = tag(1171, default=())
    inn: str | None = None  # 1226, an item-level tag next to 1224


@attrs.frozen
class IndustryProp:
    """1260 / 1261 отраслевой реквизит: a federal authority's code and a basis document."""

    authority_id: str = tag(1262)  # идентификатор ФОИВ, 3 digits
    document_date: str = tag(1263)  # дата документа основания, DD.MM.YYYY
    document_number: str = tag(1264)  # номер документа основания
    value: str = tag(1265)  # значение отраслевого реквизита


@attrs.frozen
class FractionalQuantity:
    """1291 дробное количество маркированного товара: part of a marked unit sold."""

    numerator: int = tag(1293)  # числитель
    denominator: int = tag(1294)  # знаменатель

    @property
    def text(self) -> str:
        """1292 дробная часть, as ``numerator/denominator``."""
        return f"{self.numerator}/{self.denominator}"


#: 1163 код товара: the child tag that carries the code, by kind.
PRODUCT_CODE_TAGS: dict[str, int] = {
    "unknown": 1300,  # КТ Н, not identified
    "ean8": 1301,
    "ean13": 1302,
    "itf14": 1303,
    "gs1": 1304,  # GS1.0
    "gs1m": 1305,  # GS1.М, marked goods (Честный знак)
    "kmk": 1306,  # короткий код маркировки
    "mi": 1307,  # контрольно-идентификационный знак меха
    "egais2": 1308,
    "egais3": 1309,
    "f1": 1320,
    "f2": 1321,
    "f3": 1322,
    "f4": 1323,
    "f5": 1324,
    "f6": 1325,
}
PRODUCT_CODE_KINDS: dict[int, str] = {v: k for k, v in PRODUCT_CODE_TAGS.items()}


@attrs.frozen
class Marking:
    """The marking of one item (маркировка, Честный знак): 1163 код товара and check results.

    ``code`` is the 1163 child's value: for GS1 kinds the GTIN and serial part
    (``01<GTIN>21<serial>``) without group separators or the crypto tail. ``scanned`` is the
    whole marking code as read from the DataMatrix (КМ, 2000), with its crypto tail: validation
    checks its structure, and 2115 контрольный код КМ is derived from it; it is not itself a
    receipt tag. ``planned_status`` is 2003 планируемый статус товара, ``processing_mode``
    2102 режим обработки КМ (always 0), ``check_result`` 2106 результат проверки сведений о
    товаре (bits).
    """

    kind: str  # a key of PRODUCT_CODE_TAGS
    code: str
    control_code: str | None = None  # 2115
    scanned: str | None = None
    planned_status: int | None = None  # 2003
    processing_mode: int = 0  # 2102
    check_result: int | None = None  # 2106


@attrs.frozen
class Item:
    """1059 предмет расчёта: one line of a receipt."""

    name: str = tag(1030)  # наименование
    price: int = tag(1079)  # цена за единицу с учётом скидок, kopecks
    quantity: Decimal = tag(1023)  # количество
    sum: int = tag(1043)  # стоимость с учётом скидок, kopecks
    vat: int = tag(1199)  # ставка НДС, VatRate
    payment_method: int = tag(1214)  # признак способа расчёта, PaymentMethod
    payment_subject: int = tag(1212)  # признак предмета расчёта, PaymentSubject
    vat_sum: int | None = tag(1200, default=None)  # сумма НДС за предмет расчёта
    measure: int | None = tag(2108, default=int(MeasureUnit.PIECE))  # мера количества (1.2)
    unit: str | None = tag(1197, default=None)  # единица измерения (FFD 1.05 only)
    excise: int | None = tag(1229, default=None)  # акциз, kopecks
    country_code: str | None = tag(1230, default=None)  # код страны происхождения, OKSM
    declaration: str | None = tag(1231, default=None)  # номер таможенной декларации
    agent_type: int | None = tag(1222, default=None)  # признак агента по предмету расчёта
    agent: AgentData | None = tag(1223, default=None, block=AgentData)
    supplier: Supplier | None = None  # 1224 + 1226
    user_data: str | None = tag(1191, default=None)  # доп. реквизит предмета расчёта
    industry_props: tuple[IndustryProp, ...] = tag(1260, default=(), block=IndustryProp)
    marking: Marking | None = None  # 1163 + 2003/2102/2106/2115
    fraction: FractionalQuantity | None = tag(1291, default=None, block=FractionalQuantity)


# --- the parties --------------------------------------------------------------------------------


@attrs.frozen
class Company:
    """The seller (пользователь): 1018 ИНН, 1055 СНО, 1048 name, 1187 place, 1009 address."""

    inn: str = tag(1018)
    tax_system: int = tag(1055)  # one TaxSystem bit
    place: str = tag(1187)  # место расчётов: a site address for internet sales
    address: str | None = tag(1009, default=None)  # адрес расчётов
    name: str | None = tag(1048, default=None)  # наименование пользователя
    email: str | None = tag(1117, default=None)  # адрес электронной почты отправителя чека


@attrs.frozen
class Cashier:
    """1021 кассир and 1203 ИНН кассира."""

    name: str = tag(1021)
    inn: str | None = tag(1203, default=None)


@attrs.frozen
class Client:
    """The buyer (покупатель): 1008 contact, and the 1256 сведения о покупателе block.

    In FFD 1.2 name and INN (1227, 1228) sit in 1256 with the identity fields; in FFD 1.05
    they are receipt-level tags.
    """

    contact: str | None = None  # 1008 телефон или электронный адрес покупателя
    name: str | None = tag(1227, default=None)
    inn: str | None = tag(1228, default=None)
    birth_date: str | None = tag(1243, default=None)  # DD.MM.YYYY
    citizenship: str | None = tag(1244, default=None)  # OKSM code
    document_code: str | None = tag(1245, default=None)  # код вида документа
    document_data: str | None = tag(1246, default=None)
    address: str | None = tag(1254, default=None)

    @property
    def has_details(self) -> bool:
        """Whether anything beyond the contact is known (then 1256 is emitted in FFD 1.2)."""
        return any(
            v is not None
            for v in (
                self.name,
                self.inn,
                self.birth_date,
                self.citizenship,
                self.document_code,
                self.document_data,
                self.address,
            )
        )


# --- payments -----------------------------------------------------------------------------------


@attrs.frozen
class CashlessPayment:
    """1235 сведения об оплате безналичными: one non-cash payment's method and identifiers."""

    method: int = tag(1236)  # признак способа оплаты безналичными
    sum: int = tag(1082)  # сумма оплаты безналичными, kopecks
    identifiers: str | None = tag(1237, default=None)  # идентификаторы безналичной оплаты
    details: str | None = tag(1238, default=None)  # дополнительные сведения


@attrs.frozen
class Payments:
    """The receipt's payment sums (kopecks): 1031, 1081, 1215, 1216, 1217, and 1234 details."""

    cash: int = tag(1031, default=0)  # наличными
    electronic: int = tag(1081, default=0)  # безналичными
    prepaid: int = tag(1215, default=0)  # предоплатой (зачёт аванса)
    credit: int = tag(1216, default=0)  # постоплатой (в кредит)
    provision: int = tag(1217, default=0)  # встречным предоставлением
    cashless: tuple[CashlessPayment, ...] = ()  # 1234 → 1235 …

    @property
    def total(self) -> int:
        return self.cash + self.electronic + self.prepaid + self.credit + self.provision


# --- receipt-level properties -------------------------------------------------------------------


@attrs.frozen
class UserProp:
    """1084 дополнительный реквизит пользователя: 1085 name and 1086 value."""

    name: str = tag(1085)
    value: str = tag(1086)


@attrs.frozen
class OperatingProp:
    """1270 операционный реквизит чека: 1271 id, 1272 data, 1273 time."""

    operation_id: int = tag(1271)
    data: str = tag(1272)
    time: datetime = tag(1273)


@attrs.frozen
class CorrectionBasis:
    """1174 основание для коррекции: 1178 date of the corrected settlement, 1179 order number."""

    date: datetime = tag(1178)  # midnight of the date, register-local
    number: str | None = tag(1179, default=None)  # номер предписания, required for BY_ORDER
    name: str | None = tag(1177, default=None)  # наименование основания (FFD 1.05)


@attrs.frozen
class Receipt:
    """кассовый чек (document 3): a sale, a refund of a sale, a purchase or its refund."""

    operation: int  # 1054 признак расчёта, OperationType
    items: tuple[Item, ...]  # 1059
    payments: Payments
    company: Company
    total: int  # 1020 сумма расчёта, kopecks: must equal Σ 1043 and the payment sum
    cashier: Cashier | None = None
    client: Client | None = None
    agent_type: int | None = tag(1057, default=None)  # признак агента (receipt level)
    additional_prop: str | None = tag(1192, default=None)  # доп. реквизит чека
    user_prop: UserProp | None = tag(1084, default=None, block=UserProp)
    operating_prop: OperatingProp | None = tag(1270, default=None, block=OperatingProp)
    industry_props: tuple[IndustryProp, ...] = tag(1261, default=(), block=IndustryProp)
    time_zone: int | None = tag(1011, default=None)  # часовая зона, 1–11
    internet: bool = False  # 1125 признак расчёта в сети «Интернет»
    machine_number: str | None = tag(1036, default=None)  # номер автомата

    @property
    def document_code(self) -> int:
        return 3


@attrs.frozen
class CorrectionReceipt(Receipt):
    """кассовый чек коррекции (document 31): corrects an unrecorded or wrong settlement."""

    correction_type: int = 0  # 1173 тип коррекции, CorrectionType
    basis: CorrectionBasis | None = None  # 1174

    @property
    def document_code(self) -> int:
        return 31


__all__ = [
    "PRODUCT_CODE_KINDS",
    "PRODUCT_CODE_TAGS",
    "AgentData",
    "Cashier",
    "CashlessPayment",
    "Client",
    "Company",
    "CorrectionBasis",
    "CorrectionReceipt",
    "FractionalQuantity",
    "IndustryProp",
    "Item",
    "Marking",
    "OperatingProp",
    "Payments",
    "Receipt",
    "Supplier",
    "UserProp",
]
