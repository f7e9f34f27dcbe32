"""YooKassa (ЮKassa) HTTP notifications: ``payment.succeeded`` and ``refund.succeeded``.

The body is ``{"type": "notification", "event": …, "object": …}``; the object is the payment
(``id``, ``amount {value, currency}``, ``payment_method.type``, optionally the ``receipt`` the
shop sent with it) or the refund (``id``, ``payment_id``, ``amount``). Other events are
acknowledged and give no receipt (None).

YooKassa signs nothing: a notification is taken when it comes from one of YooKassa's published
networks, or carries the tenant's secret (kassa's own addition: ``?secret=`` on the URL the
tenant registers with YooKassa). The carried receipt is read as the create-payment request's
``receipt`` is written (cloud-apis.md §2.3 [YK1][YK3]): ``customer.email|phone``, ``items[]``
{``description``, ``quantity``, ``amount.value`` — the unit price —, ``vat_code``,
``payment_mode``, ``payment_subject``}, ``tax_system_code`` 1–6.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

from protocols.documents.model import Item
from protocols.ingress._common import implied_sum
from protocols.ingress.atol_v5 import PAYMENT_METHODS, V4_PAYMENT_OBJECTS
from protocols.notifications import (
    CarriedReceipt,
    EventKind,
    NotificationError,
    PaymentEvent,
    SignatureError,
    choice,
    field,
    json_body,
    obj,
    optional_text,
    quantity,
    rubles,
    text,
)
from protocols.payments import PaymentSource

PROVIDER = "yookassa"
#: The networks YooKassa sends notifications from (its published list).
NETWORKS = (
    "185.71.76.0/27",
    "185.71.77.0/27",
    "77.75.153.0/25",
    "77.75.156.11/32",
    "77.75.156.35/32",
    "77.75.154.128/25",
    "2a02:5180::/32",
)
#: ``payment_method.type`` → source; any other type is money on a card or in a wallet.
SOURCES = {
    "bank_card": PaymentSource.CARD_ONLINE,
    "sbp": PaymentSource.SBP_QR,
    "installments": PaymentSource.CREDIT_SERVICE,
    "sber_loan": PaymentSource.CREDIT_SERVICE,
    "sber_bnpl": PaymentSource.CREDIT_SERVICE,
    "b2b_sberbank": PaymentSource.BANK_TRANSFER,
}
#: ``vat_code`` → 1199 ([YK3]).
VAT_CODES = {1: 6, 2: 5, 3: 2, 4: 1, 5: 4, 6: 3, 7: 7, 8: 8, 9: 9, 10: 10, 11: 11, 12: 12}


def verify(
    source: str, given_secret: str | None, *, secret: str | None, networks: tuple[str, ...]
) -> None:
    """Raise SignatureError unless ``source`` is in ``networks`` or the secret matches."""
    if (
        secret
        and given_secret is not None
        and hmac.compare_digest(given_secret.encode(), secret.encode())
    ):
        return
    try:
        address = ipaddress.ip_address(source)
    except ValueError:
        raise SignatureError(f"not an address: {source!r}", "source") from None
    for network in networks:
        if address in ipaddress.ip_network(network, strict=False):
            return
    raise SignatureError("neither from YooKassa's networks nor with the secret", "source")


def parse(body: bytes) -> PaymentEvent | None:
    """The event of a notification's body; None for events that give no receipt."""
    note = obj(json_body(body), "$")
    event = text(note, "event", "")
    payment = obj(note.get("object"), "object")
    if event == "payment.succeeded":
        amount = _amount(payment, "object")
        method = payment.get("payment_method")
        kind = method.get("type") if isinstance(method, dict) else None
        receipt = payment.get("receipt")
        return PaymentEvent(
            PROVIDER,
            EventKind.PAYMENT,
            text(payment, "id", "object"),
            amount,
            SOURCES.get(kind, PaymentSource.CARD_ONLINE)
            if isinstance(kind, str)
            else PaymentSource.CARD_ONLINE,
            receipt=None if receipt is None else _receipt(obj(receipt, "object.receipt")),
        )
    if event == "refund.succeeded":
        return PaymentEvent(
            PROVIDER,
            EventKind.REFUND,
            text(payment, "payment_id", "object"),
            _amount(payment, "object"),
            refund_id=text(payment, "id", "object"),
        )
    return None


def _amount(value: dict[str, Any], path: str) -> int:
    amount = obj(value.get("amount"), f"{path}.amount")
    currency = amount.get("currency", "RUB")
    if currency != "RUB":
        raise NotificationError(f"a receipt is in roubles, not {currency!r}", f"{path}.amount")
    return rubles(field(amount, "value", f"{path}.amount", (str, int)), f"{path}.amount.value")


def _receipt(receipt: dict[str, Any]) -> CarriedReceipt:
    path = "object.receipt"
    customer = receipt.get("customer")
    contact = None
    if isinstance(customer, dict):
        contact = optional_text(customer, "email") or optional_text(customer, "phone")
    system = receipt.get("tax_system_code")
    tax_system = None
    if system is not None:
        if isinstance(system, bool) or not isinstance(system, int) or not 1 <= system <= 6:
            raise NotificationError("expected 1 to 6", f"{path}.tax_system_code")
        tax_system = 1 << (system - 1)
    items = field(receipt, "items", path, list)
    if not items or len(items) > 100:
        raise NotificationError("expected 1 to 100 items", f"{path}.items")
    return CarriedReceipt(
        tuple(
            _item(obj(v, f"{path}.items[{i}]"), f"{path}.items[{i}]") for i, v in enumerate(items)
        ),
        tax_system,
        contact,
    )


def _item(item: dict[str, Any], path: str) -> Item:
    price = _amount(item, path)
    count = quantity(item.get("quantity"), f"{path}.quantity")
    mode = item.get("payment_mode", "full_payment")
    subject = item.get("payment_subject", "commodity")
    return Item(
        name=text(item, "description", path),
        price=price,
        quantity=count,
        sum=implied_sum(price, count),
        vat=choice(VAT_CODES, item.get("vat_code"), f"{path}.vat_code"),
        payment_method=choice(PAYMENT_METHODS, mode, f"{path}.payment_mode"),
        payment_subject=choice(V4_PAYMENT_OBJECTS, subject, f"{path}.payment_subject"),
    )
