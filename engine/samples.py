"""Receipts of every kind an online shop sends, for the demo, the tests and the benchmarks.

Each builder gives a valid FFD 1.2 receipt of the emulator's test company (ИНН 7707083893,
ОСН), at the standard rate of 2026 (НДС 22 %, 1199 = 11) unless told otherwise: a card sale,
a sale of marked goods (Честный знак), a refund, a correction, a sale at every rate, and the
two-receipt flow — a full prepayment (предоплата 100 %, 1214 = 1), then the full settlement
that hands the goods over against it (1214 = 4, paid by 1215).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from protocols.documents.model import (
    Client,
    Company,
    CorrectionBasis,
    CorrectionReceipt,
    Item,
    Marking,
    Payments,
    Receipt,
)
from protocols.documents.vat import vat_amount
from protocols.fiscal_sign import marking_control_code
from protocols.tlv.enums import OperationType, PaymentMethod, PaymentSubject, TaxSystem, VatRate

COMPANY = Company(
    inn="7707083893",
    tax_system=int(TaxSystem.OSN),
    place="shop.kassa.example",
    email="receipts@shop.kassa.example",
)
CLIENT = Client(contact="buyer@example.com")


def item(
    name: str,
    price: int,
    quantity: str = "1",
    *,
    vat: int = int(VatRate.VAT22),
    method: int = int(PaymentMethod.FULL_PAYMENT),
    subject: int = int(PaymentSubject.GOODS),
    marking: Marking | None = None,
) -> Item:
    """One line; its sum is price × quantity rounded half up to the kopeck."""
    qty = Decimal(quantity)
    total = int((price * qty).to_integral_value(rounding="ROUND_HALF_UP"))
    return Item(
        name=name,
        price=price,
        quantity=qty,
        sum=total,
        vat=vat,
        vat_sum=vat_amount(total, vat),
        payment_method=method,
        payment_subject=subject,
        marking=marking,
    )


def _receipt(operation: int, items: tuple[Item, ...], payments: Payments | None = None) -> Receipt:
    total = sum(i.sum for i in items)
    return Receipt(
        operation=operation,
        items=items,
        payments=payments or Payments(electronic=total),
        company=COMPANY,
        total=total,
        client=CLIENT,
    )


def card_sale(price: int = 129_900, name: str = "Наушники беспроводные") -> Receipt:
    """Приход, paid by card on the site (1081)."""
    return _receipt(int(OperationType.SELL), (item(name, price), item("Доставка", 30_000)))


#: Goods of a shop, one for each 1199 rate in force in 2026.
_GOODS_BY_RATE = {
    VatRate.VAT22: "Чайник электрический",
    VatRate.VAT10: "Молоко 3,2 %",
    VatRate.VAT122: "Подарочная карта",
    VatRate.VAT110: "Детское питание",
    VatRate.VAT0: "Доставка за рубеж",
    VatRate.NONE: "Медицинская маска",
    VatRate.VAT5: "Хлеб пшеничный",
    VatRate.VAT7: "Кофе в зёрнах",
    VatRate.VAT105: "Торт",
    VatRate.VAT107: "Чай листовой",
    VatRate.VAT20: "Возврат аванса 2025 года",
    VatRate.VAT120: "Аванс 2025 года",
}


def every_rate() -> Receipt:
    """Приход with one line at each 1199 rate: 22 %, 10 %, 22/122, 10/110, 0 %, no VAT, the
    5 % and 7 % of УСН payers with their calculated forms, and the 20 % of 2025 documents."""
    lines = tuple(
        item(name, 10_000 + 1_111 * i, vat=int(rate))
        for i, (rate, name) in enumerate(_GOODS_BY_RATE.items())
    )
    return _receipt(int(OperationType.SELL), lines)


def shoes_marking(serial: str = "5Ab7Cd9ExY") -> Marking:
    """A GS1 DataMatrix code of a pair of shoes (обувь), with its crypto tail."""
    code = "0104601234567893" + "21" + serial
    scanned = f"{code}\x1d91EE07\x1d92{'A' * 44}"
    return Marking(
        kind="gs1m",
        code=code,
        control_code=marking_control_code(scanned.encode("ascii")),
        scanned=scanned,
        planned_status=1,
    )


def marked_sale(serial: str = "5Ab7Cd9ExY") -> Receipt:
    """Приход of marked goods (Честный знак, 1212 = 33 with 1163 and 2xxx tags)."""
    shoes = item(
        "Кроссовки беговые, р. 42",
        549_000,
        subject=int(PaymentSubject.MARKED),
        marking=shoes_marking(serial),
    )
    return _receipt(int(OperationType.SELL), (shoes,))


def refund(of: Receipt) -> Receipt:
    """Возврат прихода of a card sale: the same lines, paid back to the card."""
    return _receipt(int(OperationType.SELL_REFUND), of.items)


def prepayment(price: int = 2_500_000, name: str = 'Диван угловой "Север"') -> Receipt:
    """The first of two receipts: 100 % prepayment (1214 = 1) before the goods are handed over."""
    return _receipt(
        int(OperationType.SELL), (item(name, price, method=int(PaymentMethod.FULL_PREPAYMENT)),)
    )


def settlement(of: Receipt) -> Receipt:
    """The second receipt: full settlement (1214 = 4) paid by the prepayment (1215)."""
    lines = tuple(
        item(i.name, i.price, str(i.quantity), vat=i.vat, subject=i.payment_subject)
        for i in of.items
    )
    total = sum(i.sum for i in lines)
    return _receipt(int(OperationType.SELL), lines, Payments(prepaid=total))


def correction(price: int = 45_000, on: dt.date = dt.date(2026, 3, 1)) -> CorrectionReceipt:
    """Чек коррекции прихода: a cash sale that was not fiscalized, corrected on one's own."""
    line = item("Кофе с собой", price)
    return CorrectionReceipt(
        operation=int(OperationType.SELL),
        items=(line,),
        payments=Payments(cash=line.sum),
        company=COMPANY,
        total=line.sum,
        correction_type=0,  # самостоятельно
        basis=CorrectionBasis(date=dt.datetime(on.year, on.month, on.day)),
    )


def invalid() -> Receipt:
    """A receipt whose total disagrees with its lines: refused with a path, never fiscalized."""
    good = card_sale()
    return Receipt(
        operation=good.operation,
        items=good.items,
        payments=Payments(electronic=good.total - 100),
        company=COMPANY,
        total=good.total - 100,
    )
