"""The receipt of a payment notification: the carried one, else the tenant's order template.

The payment source sets the payment tags as :mod:`protocols.payments` does; the tenant's
settlement choice sets 1214: a full prepayment (1214 = 1) that a later "shipped" settles
(1214 = 4 with the 1215 offset), or an immediate full payment (1214 = 4). A carried receipt
must add up to the amount paid: a partial prepayment (1214 = 2) is not made from notifications.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from protocols.documents.model import Client, Company, Item, Payments, Receipt
from protocols.notifications import EventKind, NotificationError, PaymentEvent
from protocols.payments import receipt_for_payment
from protocols.tlv.enums import OperationType, PaymentMethod

_ONE = Decimal(1)


@attrs.frozen
class OrderTemplate:
    """A tenant's one-line order (шаблон заказа) for payments that carry no receipt."""

    name: str  # 1030, e.g. "Оплата заказа"
    vat: int  # 1199
    subject: int  # 1212
    company: Company  # 1018, 1055, 1187, 1117
    #: 1008 when the payer's contact is not in the notification: None refuses such payments.
    contact: str | None = None


def receipt_of(event: PaymentEvent, template: OrderTemplate, *, prepayment: bool) -> Receipt:
    """The sale (or sale refund) receipt of ``event``."""
    carried = event.receipt
    company = template.company
    if carried is not None and carried.tax_system is not None:
        company = attrs.evolve(company, tax_system=carried.tax_system)
    contact = (carried.contact if carried is not None else None) or event.contact
    contact = contact or template.contact
    if carried is not None and carried.items:
        items = carried.items
    else:
        items = (
            Item(
                name=template.name,
                price=event.amount,
                quantity=_ONE,
                sum=event.amount,
                vat=template.vat,
                payment_method=int(PaymentMethod.FULL_PAYMENT),
                payment_subject=template.subject,
            ),
        )
    total = sum(item.sum for item in items)
    if total != event.amount:
        raise NotificationError(
            f"the carried items' total {total} is not the amount paid {event.amount}", "receipt"
        )
    operation = OperationType.SELL if event.kind is EventKind.PAYMENT else OperationType.SELL_REFUND
    receipt = Receipt(
        operation=int(operation),
        items=items,
        payments=Payments(),
        company=company,
        total=total,
        client=Client(contact=contact) if contact else None,
        internet=True,
    )
    method = PaymentMethod.FULL_PREPAYMENT if prepayment else None
    return receipt_for_payment(event.source, receipt, prepayment=method)
