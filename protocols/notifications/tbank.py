"""T-Bank (Тинькофф) acquiring notifications: CONFIRMED and REFUNDED.

T-Bank POSTs JSON to the terminal's notification URL and stops retrying at the text ``OK``.
Its proof is ``Token``: the root-level scalar values and the terminal's ``Password`` (nested
objects such as ``Receipt`` and ``DATA`` are left out), sorted by key, concatenated, SHA-256 in
hex; booleans count as ``true`` / ``false``.

Fields read: ``Status`` (``CONFIRMED`` a payment; ``REFUNDED`` / ``PARTIAL_REFUNDED`` a refund
of ``Amount``; others give no receipt), ``PaymentId``, ``Amount`` (kopecks), ``Success``. The
source is assumed from a ``Source`` (root, ``Data`` or ``DATA``): one naming SBP is an SBP QR
payment, ``installment`` / ``credit`` / ``bnpl`` a credit service, else a card. T-Bank gives a
refund no id of its own: one refund is told from another by its status and amount. The carried
``Receipt`` is T-Bank's FFD 1.2 model [TB1]: ``Email`` / ``Phone``, ``Taxation`` (ATOL's
``sno`` names), ``Items[]`` {``Name``, ``Price``, ``Quantity``, ``Amount`` (kopecks), ``Tax``
(ATOL's ``vat`` names), ``PaymentMethod`` (ATOL's), ``PaymentObject`` (ATOL v4's)}.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from protocols.documents.model import Item
from protocols.ingress.atol_v5 import PAYMENT_METHODS, TAX_SYSTEMS, V4_PAYMENT_OBJECTS, VAT_TYPES
from protocols.notifications import (
    CarriedReceipt,
    EventKind,
    NotificationError,
    PaymentEvent,
    SignatureError,
    choice,
    json_body,
    kopecks,
    obj,
    optional_text,
    quantity,
    text,
)
from protocols.payments import PaymentSource

PROVIDER = "tbank"
ACKNOWLEDGED = b"OK"
_REFUNDS = frozenset({"REFUNDED", "PARTIAL_REFUNDED"})


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def token(fields: dict[str, Any], password: str) -> str:
    """T-Bank's Token of a notification's (or a request's) root-level fields."""
    values = {k: v for k, v in fields.items() if k != "Token" and not isinstance(v, dict | list)}
    values["Password"] = password
    joined = "".join(_scalar(values[key]) for key in sorted(values))
    return hashlib.sha256(joined.encode()).hexdigest()


def verify(body: bytes, password: str) -> dict[str, Any]:
    """The notification's fields, or SignatureError unless its Token is right."""
    note = obj(json_body(body), "$")
    given = note.get("Token")
    if not password:
        raise SignatureError("no password is configured", "Token")
    if not isinstance(given, str) or not hmac.compare_digest(
        given.lower().encode(), token(note, password).encode()
    ):
        raise SignatureError("the Token does not match", "Token")
    return note


def parse(body: bytes) -> PaymentEvent | None:
    """The event of a notification; None for statuses that give no receipt."""
    note = obj(json_body(body), "$")
    status = text(note, "Status", "")
    if note.get("Success", True) is False:
        return None
    if status == "CONFIRMED":
        receipt = note.get("Receipt")
        carried = None if receipt is None else _receipt(obj(receipt, "Receipt"))
        return PaymentEvent(
            PROVIDER,
            EventKind.PAYMENT,
            text(note, "PaymentId", ""),
            kopecks(note.get("Amount"), "Amount"),
            _source(note),
            contact=carried.contact if carried is not None else None,
            receipt=carried,
        )
    if status in _REFUNDS:
        amount = kopecks(note.get("Amount"), "Amount")
        return PaymentEvent(
            PROVIDER,
            EventKind.REFUND,
            text(note, "PaymentId", ""),
            amount,
            refund_id=f"{status.lower()}-{amount}",
        )
    return None


def _source(note: dict[str, Any]) -> PaymentSource:
    given: Any = note.get("Source")
    for key in ("Data", "DATA"):
        data = note.get(key)
        if given is None and isinstance(data, dict):
            given = data.get("Source")
    name = given.lower() if isinstance(given, str) else ""
    if "sbp" in name:
        return PaymentSource.SBP_QR
    if any(word in name for word in ("installment", "credit", "bnpl")):
        return PaymentSource.CREDIT_SERVICE
    return PaymentSource.CARD_ONLINE


def _receipt(receipt: dict[str, Any]) -> CarriedReceipt:
    items = receipt.get("Items")
    if not isinstance(items, list) or not 1 <= len(items) <= 100:
        raise NotificationError("expected 1 to 100 items", "Receipt.Items")
    taxation = receipt.get("Taxation")
    tax_system = None if taxation is None else choice(TAX_SYSTEMS, taxation, "Receipt.Taxation")
    contact = optional_text(receipt, "Email") or optional_text(receipt, "Phone")
    return CarriedReceipt(
        tuple(
            _item(obj(v, f"Receipt.Items[{i}]"), f"Receipt.Items[{i}]") for i, v in enumerate(items)
        ),
        tax_system,
        contact,
    )


def _item(item: dict[str, Any], path: str) -> Item:
    return Item(
        name=text(item, "Name", path),
        price=kopecks(item.get("Price"), f"{path}.Price"),
        quantity=quantity(item.get("Quantity"), f"{path}.Quantity"),
        sum=kopecks(item.get("Amount"), f"{path}.Amount"),
        vat=choice(VAT_TYPES, item.get("Tax"), f"{path}.Tax"),
        payment_method=choice(
            PAYMENT_METHODS, item.get("PaymentMethod", "full_payment"), f"{path}.PaymentMethod"
        ),
        payment_subject=choice(
            V4_PAYMENT_OBJECTS, item.get("PaymentObject", "commodity"), f"{path}.PaymentObject"
        ),
    )
