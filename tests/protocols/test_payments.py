"""Payment sources map onto the right tags, and the two-receipt flow offsets with 1215."""

from __future__ import annotations

from decimal import Decimal

import attrs
import pytest

from protocols.documents.ffd import decode_receipt, encode_receipt
from protocols.documents.model import Client, Company, Item, Payments, Receipt
from protocols.payments import FlowError, PaymentSource, receipt_for_payment, settlement_for
from protocols.tlv.enums import PaymentMethod, PaymentSubject
from protocols.validation import validate


def order(*lines: Item) -> Receipt:
    items = lines or (
        Item("Чайник", 199000, Decimal(1), 199000, 1, 4, 1, vat_sum=33167),
        Item("Доставка", 30000, Decimal(1), 30000, 6, 4, 4),
    )
    total = sum(i.sum for i in items)
    return Receipt(
        operation=1,
        items=items,
        payments=Payments(),
        company=Company("7707083893", 1, "shop.example"),
        total=total,
        client=Client(contact="+79991234567"),
        internet=True,
    )


ELECTRONIC = [s for s in PaymentSource if s is not PaymentSource.COURIER_CASH]


@pytest.mark.parametrize("source", ELECTRONIC, ids=lambda s: s.value)
def test_non_cash_sources_land_in_1081_with_full_payment(source: PaymentSource) -> None:
    receipt = receipt_for_payment(source, order())
    assert receipt.payments == Payments(electronic=229000)
    assert {i.payment_method for i in receipt.items} == {PaymentMethod.FULL_PAYMENT}
    assert validate(receipt) == []
    assert decode_receipt(encode_receipt(receipt)).receipt == receipt


def test_cash_to_a_courier_lands_in_1031() -> None:
    receipt = receipt_for_payment(PaymentSource.COURIER_CASH, order())
    assert receipt.payments == Payments(cash=229000)
    assert validate(receipt) == []


@pytest.mark.parametrize("method", [1, 2, 3])
def test_two_receipt_flow_offsets_the_prepayment_with_1215(method: int) -> None:
    first = receipt_for_payment(
        PaymentSource.CARD_ONLINE, order(), prepayment=PaymentMethod(method)
    )
    assert validate(first) == []
    assert {i.payment_method for i in first.items} == {method}
    second = settlement_for(first)
    assert validate(second) == []
    assert second.payments == Payments(prepaid=first.total)
    assert {i.payment_method for i in second.items} == {PaymentMethod.FULL_PAYMENT}
    assert (second.client, second.company, second.total) == (first.client, first.company, 229000)
    assert [i.name for i in second.items] == [i.name for i in first.items]


def test_advance_for_unknown_goods_is_settled_with_the_real_items() -> None:
    advance = Item("Аванс за заказ 17", 100000, Decimal(1), 100000, 6, 3, PaymentSubject.PAYMENT)
    first = receipt_for_payment(
        PaymentSource.SBP_QR, order(advance), prepayment=PaymentMethod.ADVANCE
    )
    goods = Item("Чайник", 150000, Decimal(1), 150000, 6, 4, 1)
    second = settlement_for(first, items=(goods,), remainder=Payments(electronic=50000))
    assert second.payments == Payments(electronic=50000, prepaid=100000)
    assert second.total == 150000
    assert validate(second) == []


def test_the_flow_refuses_what_is_not_a_prepayment() -> None:
    paid = receipt_for_payment(PaymentSource.CARD_ONLINE, order())
    with pytest.raises(FlowError) as caught:
        settlement_for(paid)
    assert caught.value.path == "items[0].payment_method"
    first = receipt_for_payment(PaymentSource.CARD_ONLINE, order(), prepayment=PaymentMethod(1))
    with pytest.raises(FlowError, match="do not pay"):
        settlement_for(first, remainder=Payments(cash=1))
    with pytest.raises(FlowError):
        settlement_for(attrs.evolve(first, operation=2))
