"""CloudPayments notifications: Pay and Refund.

CloudPayments POSTs each notification to the URL set for its kind, as a form
(``application/x-www-form-urlencoded``, its default) or as JSON, and signs it: ``Content-HMAC``
is base64(HMAC-SHA256(the raw body, the site's API secret)); ``X-Content-HMAC`` the same of
the URL-decoded body. It stops retrying at ``{"code": 0}``.

Fields read (cloud-apis.md [CK1][CK2]): ``OperationType`` (``Payment`` | ``Refund``),
``TransactionId``, ``PaymentTransactionId`` (a refund's payment), ``Amount`` (roubles),
``Currency``, ``Status`` (a Pay of a two-stage payment that is only ``Authorized`` gives no
receipt), ``Email``, ``PaymentMethod`` / ``InstallmentTerm`` (the source; assumed: a method
naming SBP is an SBP QR payment, one naming an instalment or a loan, or a non-empty
``InstallmentTerm``, is a credit service; else a card), and the carried receipt at
``Data.CloudPayments.CustomerReceipt``, ``Data.CustomerReceipt`` or ``CustomerReceipt``
(``Data`` is a JSON string in a form). The receipt is CloudKassir's: ``Items[]`` {``label``,
``price``, ``quantity``, ``amount`` (roubles), ``vat`` (null none, 0, 10, 20, 110, 120, 5, 7,
105, 107, 22, 122), ``method`` 1214 (0: unset), ``object`` 1212 (0: goods)},
``taxationSystem`` 0–5 (bit 1 << n of 1055), ``email`` / ``phone``; a key's first letter in
either case.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from protocols.documents.model import Item
from protocols.notifications import (
    CarriedReceipt,
    EventKind,
    NotificationError,
    PaymentEvent,
    SignatureError,
    decimal,
    json_body,
    obj,
    optional_text,
    quantity,
    rubles,
    text,
)
from protocols.payments import PaymentSource
from protocols.tlv.enums import PaymentMethod, PaymentSubject

PROVIDER = "cloudpayments"
#: CloudKassir's ``vat`` → 1199.
VATS: dict[Any, int] = {
    None: 6,
    "": 6,
    0: 5,
    10: 2,
    20: 1,
    110: 4,
    120: 3,
    5: 7,
    7: 8,
    105: 9,
    107: 10,
    22: 11,
    122: 12,
}
ACKNOWLEDGED = b'{"code":0}'


def signature(body: bytes, secret: bytes) -> str:
    """Content-HMAC of ``body``."""
    return base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode()


def verify(
    body: bytes, content_hmac: str | None, x_content_hmac: str | None, secret: bytes
) -> None:
    """Raise SignatureError unless one of the two headers signs ``body`` with ``secret``."""
    if not secret:
        raise SignatureError("no secret is configured", "Content-HMAC")
    if content_hmac and hmac.compare_digest(
        content_hmac.encode(), signature(body, secret).encode()
    ):
        return
    if x_content_hmac:
        decoded = unquote_plus(body.decode("utf-8", "replace")).encode()
        if hmac.compare_digest(x_content_hmac.encode(), signature(decoded, secret).encode()):
            return
    raise SignatureError("the HMAC does not sign the body", "Content-HMAC")


def fields(body: bytes) -> dict[str, Any]:
    """The notification's fields, from JSON or from a form."""
    if body.lstrip()[:1] == b"{":
        return obj(json_body(body), "$")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError) as exc:
        raise NotificationError(f"not a form: {exc}") from None
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise NotificationError("given twice", key)
        out[key] = value
    return out


def parse(body: bytes) -> PaymentEvent | None:
    """The event of a Pay or Refund notification; None for one that gives no receipt."""
    note = fields(body)
    operation = text(note, "OperationType", "")
    currency = note.get("Currency", "RUB")
    if currency not in ("RUB", ""):
        raise NotificationError(f"a receipt is in roubles, not {currency!r}", "Currency")
    amount = rubles(note.get("Amount"), "Amount")
    if operation == "Payment":
        if note.get("Status", "Completed") != "Completed":
            return None
        return PaymentEvent(
            PROVIDER,
            EventKind.PAYMENT,
            text(note, "TransactionId", ""),
            amount,
            _source(note),
            contact=optional_text(note, "Email"),
            receipt=_carried(note),
        )
    if operation == "Refund":
        return PaymentEvent(
            PROVIDER,
            EventKind.REFUND,
            text(note, "PaymentTransactionId", ""),
            amount,
            refund_id=text(note, "TransactionId", ""),
            contact=optional_text(note, "Email"),
        )
    return None


def _source(note: dict[str, Any]) -> PaymentSource:
    method = str(note.get("PaymentMethod") or "").lower()
    if "sbp" in method:
        return PaymentSource.SBP_QR
    if any(word in method for word in ("installment", "loan", "credit")) or note.get(
        "InstallmentTerm"
    ) not in (None, "", 0, "0"):
        return PaymentSource.CREDIT_SERVICE
    return PaymentSource.CARD_ONLINE


def _get(value: dict[str, Any], key: str) -> Any:
    """``Key`` or ``key``: CloudPayments' documents write both."""
    return value.get(key, value.get(key[:1].lower() + key[1:]))


def _carried(note: dict[str, Any]) -> CarriedReceipt | None:
    data = note.get("Data")
    if isinstance(data, str) and data.strip():
        data = json_body(data.encode())
    found, path = None, ""
    if isinstance(data, dict):
        inner = data.get("CloudPayments")
        if isinstance(inner, dict) and _get(inner, "CustomerReceipt") is not None:
            found, path = _get(inner, "CustomerReceipt"), "Data.CloudPayments.CustomerReceipt"
        elif _get(data, "CustomerReceipt") is not None:
            found, path = _get(data, "CustomerReceipt"), "Data.CustomerReceipt"
    if found is None and note.get("CustomerReceipt") not in (None, ""):
        found, path = note["CustomerReceipt"], "CustomerReceipt"
        if isinstance(found, str):
            found = json_body(found.encode())
    if found is None:
        return None
    receipt = obj(found, path)
    items = _get(receipt, "Items")
    if not isinstance(items, list) or not 1 <= len(items) <= 100:
        raise NotificationError("expected 1 to 100 items", f"{path}.Items")
    system = _get(receipt, "TaxationSystem")
    tax_system = None
    if system is not None:
        if isinstance(system, bool) or not isinstance(system, int) or not 0 <= system <= 5:
            raise NotificationError("expected 0 to 5", f"{path}.TaxationSystem")
        tax_system = 1 << system
    contact = None
    for key in ("Email", "Phone"):
        value = _get(receipt, key)
        if isinstance(value, str) and value:
            contact = value
            break
    return CarriedReceipt(
        tuple(
            _item(obj(v, f"{path}.Items[{i}]"), f"{path}.Items[{i}]") for i, v in enumerate(items)
        ),
        tax_system,
        contact,
    )


def _code(value: Any, path: str, top: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
        raise NotificationError(f"expected 0 to {top}", path)
    return value


def _item(item: dict[str, Any], path: str) -> Item:
    name = _get(item, "Label")
    if not isinstance(name, str) or not name:
        raise NotificationError("required, a string", f"{path}.label")
    vat = _get(item, "Vat")
    if isinstance(vat, str) and vat:
        vat = int(decimal(vat, f"{path}.vat")) if vat.isdigit() else vat
    if isinstance(vat, bool) or not isinstance(vat, int | str | Decimal | None) or vat not in VATS:
        raise NotificationError(f"unknown rate {vat!r}", f"{path}.vat")
    method = _code(_get(item, "Method") or 0, f"{path}.method", 7)
    subject = _code(_get(item, "Object") or 0, f"{path}.object", 26)
    return Item(
        name=name,
        price=rubles(_get(item, "Price"), f"{path}.price"),
        quantity=quantity(_get(item, "Quantity"), f"{path}.quantity"),
        sum=rubles(_get(item, "Amount"), f"{path}.amount"),
        vat=VATS[vat],
        payment_method=method or int(PaymentMethod.FULL_PAYMENT),
        payment_subject=subject or int(PaymentSubject.GOODS),
    )
