"""Payment sources and the two-receipt flow (предоплата, затем полный расчёт).

A shop's payment event says how the money came; 54-FZ cares about which payment tag it lands
in and which 1214 method the items carry. Every non-cash way a customer pays online — a card
on a site, a payment link, an SBP QR code, a bank transfer, a recurring charge, and a credit
or instalment service that pays the merchant in full — is money received by non-cash means
(1081 безналичными) with the items settled in full (1214 = 4). Cash handed to a courier is
1031 наличными. (cloud-apis.md §2.3; a sale on the merchant's own credit is not a source but a
receipt with 1214 = 5 or 6 and 1216.)

The two-receipt flow: money received before the goods are handed over gives a prepayment
receipt (1214 = 1 full prepayment, 2 partial prepayment, or 3 advance); at handover a second
receipt settles the same items in full (1214 = 4) and offsets the prepayment with 1215
(зачёт предоплаты), carrying over items, totals and client.
"""

from __future__ import annotations

import enum

import attrs

from protocols.documents.model import Item, Payments, Receipt
from protocols.errors import ProtocolError
from protocols.tlv.enums import OperationType, PaymentMethod


class PaymentSource(enum.Enum):
    """How the customer paid (источник оплаты)."""

    CARD_ONLINE = "card_online"  # card on a site
    PAYMENT_LINK = "payment_link"  # a link sent to the customer
    SBP_QR = "sbp_qr"  # Система быстрых платежей QR code
    BANK_TRANSFER = "bank_transfer"  # transfer to the merchant's account
    CREDIT_SERVICE = "credit_service"  # a bank's credit or instalment pays the merchant
    RECURRING = "recurring"  # a recurring (subscription) charge
    COURIER_CASH = "courier_cash"  # cash handed to a courier


_CASH_SOURCES = frozenset({PaymentSource.COURIER_CASH})
PREPAYMENT_METHODS = frozenset(
    {PaymentMethod.FULL_PREPAYMENT, PaymentMethod.PREPAYMENT, PaymentMethod.ADVANCE}
)


class FlowError(ProtocolError):
    """A receipt that the two-receipt flow cannot continue from."""


def payments_for(source: PaymentSource, amount: int) -> Payments:
    """The payment tags of ``amount`` kopecks received from ``source``."""
    if source in _CASH_SOURCES:
        return Payments(cash=amount)
    return Payments(electronic=amount)


def settlement_method(source: PaymentSource) -> PaymentMethod:
    """The 1214 method of items paid for in full from ``source`` (every source settles in full)."""
    return PaymentMethod.FULL_PAYMENT


def receipt_for_payment(
    source: PaymentSource, receipt: Receipt, *, prepayment: PaymentMethod | None = None
) -> Receipt:
    """``receipt`` with its payments and item methods set for money received from ``source``.

    With ``prepayment`` (1, 2 or 3) the receipt is the first of the two-receipt flow.
    """
    if prepayment is not None and prepayment not in PREPAYMENT_METHODS:
        raise FlowError(f"{prepayment} is not a prepayment method (1214 = 1, 2 or 3)", "prepayment")
    method = prepayment if prepayment is not None else settlement_method(source)
    items = tuple(attrs.evolve(item, payment_method=int(method)) for item in receipt.items)
    return attrs.evolve(receipt, items=items, payments=payments_for(source, receipt.total))


def settlement_for(
    prepayment: Receipt,
    *,
    items: tuple[Item, ...] | None = None,
    remainder: Payments | None = None,
) -> Receipt:
    """The full-settlement receipt that offsets an accepted prepayment receipt with 1215.

    ``items`` replaces the items when the prepayment was an advance for goods not yet known
    (1212 = 10 платёж); ``remainder`` pays what the prepayment did not cover (a partial
    prepayment, 1214 = 2). Client, company, cashier and receipt properties carry over.
    """
    if prepayment.operation not in (OperationType.SELL, OperationType.BUY):
        raise FlowError("only a sale or a purchase starts the two-receipt flow", "operation")
    for i, item in enumerate(prepayment.items):
        if item.payment_method not in PREPAYMENT_METHODS:
            raise FlowError(
                f"method {item.payment_method} is not a prepayment (1214 = 1, 2 or 3)",
                f"items[{i}].payment_method",
            )
    if prepayment.payments.prepaid:
        raise FlowError("a prepayment receipt does not offset another (1215)", "payments.prepaid")
    settled = tuple(
        attrs.evolve(item, payment_method=int(PaymentMethod.FULL_PAYMENT))
        for item in (items if items is not None else prepayment.items)
    )
    total = sum(item.sum for item in settled)
    extra = remainder if remainder is not None else Payments()
    payments = attrs.evolve(extra, prepaid=prepayment.total)
    if payments.total != total:
        raise FlowError(
            f"the offset {prepayment.total} and the remainder {extra.total} do not pay "
            f"the settled items' {total}",
            "remainder",
        )
    return attrs.evolve(prepayment, items=settled, payments=payments, total=total)
