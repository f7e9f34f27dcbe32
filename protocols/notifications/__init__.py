"""Payment systems' notifications (уведомления об оплате), read and checked without I/O.

A payment system tells the shop that money came (or went back). Each provider has its own body
and its own proof that it sent it; :mod:`.yookassa`, :mod:`.cloudpayments` and :mod:`.tbank`
each read theirs into one :class:`PaymentEvent` (``parse``) and check the proof (``verify``),
as pure functions that either answer or raise :class:`NotificationError` (a bad proof is its
subclass :class:`SignatureError`). :mod:`.receipts` makes the receipt of an event: from the
receipt the payment carries, else from the tenant's :class:`~.receipts.OrderTemplate`.
"""

from __future__ import annotations

import enum
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs

from protocols.documents.model import Item
from protocols.errors import ProtocolError
from protocols.ingress import IngressError, load_json
from protocols.payments import PaymentSource

#: The largest sum a notification may carry, kopecks (10^12 roubles): beyond it, a typo.
MAX_KOPECKS = 10**14


class NotificationError(ProtocolError):
    """A notification that cannot be read; nothing is fiscalized from it."""


class SignatureError(NotificationError):
    """A notification without its provider's valid proof (signature, token or source)."""


class EventKind(enum.Enum):
    PAYMENT = "payment"  # money received: the (prepayment or full) sale receipt
    REFUND = "refund"  # money returned: the sale refund receipt (возврат прихода)


@attrs.frozen
class CarriedReceipt:
    """The receipt a payment carries (the shop sent it with the payment): items and terms."""

    items: tuple[Item, ...]
    tax_system: int | None = None  # 1055 bit, None: the tenant's
    contact: str | None = None  # 1008


@attrs.frozen
class PaymentEvent:
    """One notification that gives a receipt. ``payment_id`` is the provider's payment's;
    ``refund_id`` tells one refund of it from another."""

    provider: str
    kind: EventKind
    payment_id: str
    amount: int  # kopecks
    source: PaymentSource = PaymentSource.CARD_ONLINE
    refund_id: str | None = None
    contact: str | None = None  # the payer's e-mail or phone, if the notification has one
    receipt: CarriedReceipt | None = None

    @property
    def external_id(self) -> str:
        """The job's idempotency key: a repeated notification finds the first job."""
        base = f"{self.provider}:{self.payment_id}:{self.kind.value}"
        return base if self.refund_id is None else f"{base}:{self.refund_id}"


def shipped_id(provider: str, payment_id: str) -> str:
    """The external_id of the full-settlement receipt of a prepaid payment."""
    return f"{provider}:{payment_id}:shipped"


def prepayment_id(provider: str, payment_id: str) -> str:
    return f"{provider}:{payment_id}:{EventKind.PAYMENT.value}"


def json_body(body: bytes) -> Any:
    try:
        return load_json(body)
    except IngressError as exc:
        raise NotificationError(exc.problems[0].message) from None


def obj(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise NotificationError("expected an object", path)
    return value


def field(body: dict[str, Any], key: str, path: str, kind: type | tuple[type, ...]) -> Any:
    where = f"{path}.{key}" if path else key
    if key not in body:
        raise NotificationError("required, missing", where)
    value = body[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise NotificationError(f"expected {getattr(kind, '__name__', kind)}", where)
    return value


def text(body: dict[str, Any], key: str, path: str, *, max_length: int = 128) -> str:
    """A non-empty string; a number is taken as its digits (ids are numbers in some bodies)."""
    value = field(body, key, path, (str, int))
    value = str(value)
    where = f"{path}.{key}" if path else key
    if not value or len(value) > max_length:
        raise NotificationError(f"expected 1 to {max_length} characters", where)
    return value


def optional_text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    return value if isinstance(value, str) and value else None


def decimal(value: Any, path: str) -> Decimal:
    """An exact decimal from a JSON number or a string of digits."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise NotificationError("expected a number", path)
    try:
        number = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except InvalidOperation:
        raise NotificationError(f"not a number: {value!r}", path) from None
    if not number.is_finite() or number < 0 or number > MAX_KOPECKS:
        raise NotificationError(f"out of range: {value}", path)
    return number


def rubles(value: Any, path: str) -> int:
    """Kopecks of a sum in roubles with at most 2 decimals."""
    number = decimal(value, path) * 100
    if number != number.to_integral_value():
        raise NotificationError("more than 2 decimals of a rouble", path)
    return int(number)


def kopecks(value: Any, path: str) -> int:
    """Kopecks given as an integer (T-Bank)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_KOPECKS:
        raise NotificationError("expected kopecks, a whole number", path)
    return value


def quantity(value: Any, path: str) -> Decimal:
    number = decimal(value, path)
    if number <= 0 or number.as_tuple().exponent < -3:  # type: ignore[operator]
        raise NotificationError("expected above 0, at most 3 decimals", path)
    return Decimal(int(number)) if number == number.to_integral_value() else number


def choice(mapping: dict[Any, int], value: Any, path: str) -> int:
    try:
        return mapping[value]
    except (KeyError, TypeError):
        raise NotificationError(f"unknown value {value!r}", path) from None
