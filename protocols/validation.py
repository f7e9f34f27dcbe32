"""Checks before fiscalization (проверка чека): every problem of a receipt at once.

:func:`validate` never stops at the first problem: it returns a list of :class:`Problem`, each
with a field path of the model (``items[3].vat``) and a stable code that callers can match on.
The table of checks, with the rule each one enforces, is in ``docs/validation.md``.

Sans-IO: the caller supplies what depends on the outside world, such as today's date for
"the corrected settlement is not in the future" and the register's registered tax systems.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, localcontext

import attrs

from protocols.documents.model import (
    PRODUCT_CODE_TAGS,
    CorrectionReceipt,
    Item,
    Marking,
    Receipt,
)
from protocols.documents.vat import vat_amount
from protocols.fiscal_sign import marking_control_code
from protocols.inn import inn_is_valid
from protocols.tlv import TAGS, FieldType, TlvError, Width, encode_value
from protocols.tlv.enums import (
    MARKED_SUBJECTS,
    AgentType,
    CorrectionType,
    MeasureUnit,
    OperationType,
    PaymentMethod,
    PaymentSubject,
    TaxSystem,
    VatRate,
)

#: The largest sum a 6-byte VLN money tag can carry, in kopecks.
MAX_MONEY = (1 << 48) - 1

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?\d{10,15}$")
_PREPAYMENT_METHODS = frozenset(
    {PaymentMethod.FULL_PREPAYMENT, PaymentMethod.PREPAYMENT, PaymentMethod.ADVANCE}
)
_CREDIT_METHODS = frozenset({PaymentMethod.PARTIAL_PAYMENT_AND_CREDIT, PaymentMethod.CREDIT})
_REFUNDS = frozenset({OperationType.SELL_REFUND, OperationType.BUY_REFUND})
_GS1_KINDS = frozenset({"gs1", "gs1m"})
_GS = "\x1d"
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@attrs.frozen
class Problem:
    """One thing wrong with a receipt: where (``path``), what (``code``) and a sentence."""

    path: str
    code: str
    message: str


@attrs.frozen
class Registration:
    """What the register was registered with (параметры регистрации ККТ)."""

    tax_systems: int  # 1062 системы налогообложения, TaxSystem bits


@attrs.frozen
class Limits:
    """Tunable limits of the checks."""

    sum_tolerance: int = 0  # kopecks allowed between 1043 and round(1079 × 1023)
    max_items: int | None = None  # ingress formats allow 100


def validate(
    receipt: Receipt,
    *,
    registration: Registration | None = None,
    limits: Limits = Limits(),
    today: date | None = None,
) -> list[Problem]:
    """Every problem of ``receipt``; an empty list means it may be fiscalized."""
    return list(_all(receipt, registration, limits, today))


def _all(
    receipt: Receipt, registration: Registration | None, limits: Limits, today: date | None
) -> Iterator[Problem]:
    yield from _form(receipt)
    yield from _arithmetic(receipt, limits)
    yield from _parties(receipt)
    yield from _payment_rules(receipt)
    for i, item in enumerate(receipt.items):
        yield from _item(item, f"items[{i}]", receipt)
    if registration is not None and not receipt.company.tax_system & registration.tax_systems:
        yield Problem(
            "company.tax_system",
            "registration.tax_system",
            f"tax system {receipt.company.tax_system:#04x} is not among the register's "
            f"registered systems {registration.tax_systems:#04x}",
        )
    if isinstance(receipt, CorrectionReceipt):
        yield from _correction(receipt, today)
    if limits.max_items is not None and len(receipt.items) > limits.max_items:
        yield Problem(
            "items", "items.too_many", f"{len(receipt.items)} items, at most {limits.max_items}"
        )


# --- form -----------------------------------------------------------------------------------------


def _enum(path: str, value: int | None, enum: type, what: str) -> Iterator[Problem]:
    if value is None:
        return
    if value not in enum._value2member_map_:  # type: ignore[attr-defined]
        yield Problem(path, "enum.out_of_range", f"{value} is not a valid {what}")


def _bits(path: str, value: int | None, allowed: int, what: str) -> Iterator[Problem]:
    if value is not None and (value < 0 or value & ~allowed):
        yield Problem(path, "enum.out_of_range", f"{value:#x} has bits that are not {what}")


def _form(receipt: Receipt) -> Iterator[Problem]:
    yield from _enum("operation", receipt.operation, OperationType, "operation type (1054)")
    tax = receipt.company.tax_system
    if tax not in {int(bit) for bit in TaxSystem}:
        yield Problem(
            "company.tax_system", "enum.out_of_range", f"{tax} is not one tax system bit (1055)"
        )
    yield from _bits("agent_type", receipt.agent_type, 0x7F, "agent kinds (1057)")
    if receipt.time_zone is not None and not 1 <= receipt.time_zone <= 11:
        yield Problem("time_zone", "time_zone.out_of_range", "time zone (1011) must be 1 to 11")
    if not receipt.items:
        yield Problem("items", "items.empty", "a receipt needs at least one item (1059)")
    yield from _texts(receipt, "")


#: Field values that hold no text and no block: skipped without a look inside.
_NOT_TEXT = frozenset({int, bool, Decimal, bytes, datetime, date})
#: Per model class: each field's name and tag, the marking's scanned code left out.
_TEXT_FIELDS: dict[type, tuple[tuple[str, int | None], ...]] = {}


def _text_fields(cls: type) -> tuple[tuple[str, int | None], ...]:
    fields = _TEXT_FIELDS.get(cls)
    if fields is None:
        fields = tuple(
            (field.name, field.metadata.get("tag"))
            for field in attrs.fields(cls)
            if field.name != "scanned"
        )
        _TEXT_FIELDS[cls] = fields
    return fields


def _texts(block: attrs.AttrsInstance, path: str) -> Iterator[Problem]:
    """Lengths, widths and CP866 of every text field, recursively.

    The scanned marking code is exempt: it holds GS1 group separators and is not a tag.
    Paths are built only for what is looked into: this runs on every field of every receipt.
    """
    for name, number in _text_fields(type(block)):
        value = getattr(block, name)
        if value is None or type(value) in _NOT_TEXT:
            continue
        if isinstance(value, str):
            yield from _text(f"{path}.{name}" if path else name, value, number)
        elif isinstance(value, tuple):
            where = f"{path}.{name}" if path else name
            for i, item in enumerate(value):
                if isinstance(item, str):
                    yield from _text(f"{where}[{i}]", item, number)
                elif attrs.has(type(item)):
                    yield from _texts(item, f"{where}[{i}]")
        elif attrs.has(type(value)):
            yield from _texts(value, f"{path}.{name}" if path else name)


def _text(path: str, value: str, number: int | None) -> Iterator[Problem]:
    control = _CONTROL.search(value)
    if control is not None:
        yield Problem(
            path, "text.control_character", f"control character {ord(control.group()):#04x}"
        )
    try:
        raw = value.encode("cp866")
    except UnicodeEncodeError as exc:
        char = value[exc.start]
        yield Problem(
            path, "text.not_cp866", f"character {char!r} (U+{ord(char):04X}) is not in CP866"
        )
        return
    spec = TAGS.get(number) if number is not None else None
    if spec is None or spec.type is not FieldType.STRING:
        return
    if len(raw) > spec.max_length:
        yield Problem(
            path, "text.too_long", f"{len(raw)} characters, at most {spec.max_length} ({number})"
        )
    elif spec.width is Width.EXACT and len(raw) != spec.max_length:
        yield Problem(
            path, "text.wrong_width", f"must be exactly {spec.max_length} characters ({number})"
        )


# --- arithmetic -----------------------------------------------------------------------------------


def _money(path: str, value: int | None) -> Iterator[Problem]:
    if value is None:
        return
    if value < 0:
        yield Problem(path, "money.negative", f"{value} kopecks is negative")
    elif value > MAX_MONEY:
        yield Problem(path, "money.too_large", f"{value} kopecks does not fit 6 bytes")


def _arithmetic(receipt: Receipt, limits: Limits) -> Iterator[Problem]:
    payments = receipt.payments
    yield from _money("total", receipt.total)
    for name in ("cash", "electronic", "prepaid", "credit", "provision"):
        yield from _money(f"payments.{name}", getattr(payments, name))
    items_total = sum(item.sum for item in receipt.items)
    if receipt.items and items_total != receipt.total:
        yield Problem(
            "total",
            "total.items_mismatch",
            f"total {receipt.total} is not the sum of the items {items_total} (1020 = Σ 1043)",
        )
    if payments.total != receipt.total:
        yield Problem(
            "payments",
            "total.payments_mismatch",
            f"payments add up to {payments.total}, the total is {receipt.total}",
        )
    cashless = sum(p.sum for p in payments.cashless)
    if payments.cashless and cashless != payments.electronic:
        yield Problem(
            "payments.cashless",
            "payments.cashless_mismatch",
            f"cashless details add up to {cashless}, electronic (1081) is {payments.electronic}",
        )
    for i, item in enumerate(receipt.items):
        path = f"items[{i}]"
        yield from _money(f"{path}.price", item.price)
        yield from _money(f"{path}.sum", item.sum)
        yield from _money(f"{path}.excise", item.excise)
        if item.quantity <= 0:
            yield Problem(f"{path}.quantity", "item.quantity_not_positive", "quantity must be > 0")
            continue
        try:
            encode_value(FieldType.FVLN, item.quantity, max_length=8)
        except TlvError as exc:
            yield Problem(f"{path}.quantity", "item.quantity_too_large", f"1023: {exc.reason}")
            continue
        if not 0 <= item.price <= MAX_MONEY:
            continue  # reported above; the product would mean nothing
        with localcontext() as exact:  # 1079 × 1023 can exceed the default 28 digits
            exact.prec = 64
            expected = int((item.price * item.quantity).quantize(Decimal(1), ROUND_HALF_UP))
        if abs(expected - item.sum) > limits.sum_tolerance:
            yield Problem(
                f"{path}.sum",
                "item.sum_mismatch",
                f"sum {item.sum} is not price × quantity = {expected} (1043 = 1079 × 1023)",
            )
        vat = vat_amount(item.sum, item.vat)
        if item.vat_sum is not None and item.vat_sum != (vat or 0):
            yield Problem(
                f"{path}.vat_sum",
                "item.vat_mismatch",
                f"VAT {item.vat_sum} should be {vat or 0} at rate code {item.vat} (1200)",
            )


# --- parties --------------------------------------------------------------------------------------


def _inn(path: str, value: str | None, lengths: tuple[int, ...] = (10, 12)) -> Iterator[Problem]:
    if value is None:
        return
    if len(value) not in lengths or not inn_is_valid(value):
        yield Problem(path, "inn.invalid", f"{value!r} is not a valid INN")


def _phone(path: str, value: str) -> Iterator[Problem]:
    if not _PHONE.match(value):
        yield Problem(path, "phone.invalid", f"{value!r} is not a phone number like +79991234567")


def _parties(receipt: Receipt) -> Iterator[Problem]:
    yield from _inn("company.inn", receipt.company.inn)
    if receipt.company.email is not None and not _EMAIL.match(receipt.company.email):
        yield Problem("company.email", "email.invalid", "not an e-mail address")
    if receipt.cashier is not None:
        yield from _inn("cashier.inn", receipt.cashier.inn, (12,))
    client = receipt.client
    if client is not None:
        yield from _inn("client.inn", client.inn)
        contact = client.contact
        if contact is not None and not (_EMAIL.match(contact) or _PHONE.match(contact)):
            yield Problem(
                "client.contact", "contact.invalid", "neither an e-mail nor a phone number (1008)"
            )
    if receipt.internet and (client is None or client.contact is None):
        yield Problem(
            "client.contact",
            "contact.required",
            "an internet settlement (1125) sends the receipt to the buyer: give 1008",
        )


# --- payment rules --------------------------------------------------------------------------------


def _payment_rules(receipt: Receipt) -> Iterator[Problem]:
    payments = receipt.payments
    methods = {item.payment_method for item in receipt.items}
    if payments.prepaid and methods and methods <= _PREPAYMENT_METHODS:
        yield Problem(
            "payments.prepaid",
            "payments.offset_on_prepayment",
            "a prepayment receipt cannot offset an earlier prepayment (1215)",
        )
    if payments.prepaid and not methods & {
        PaymentMethod.FULL_PAYMENT,
        PaymentMethod.PARTIAL_PAYMENT_AND_CREDIT,
    }:
        yield Problem(
            "payments.prepaid",
            "payments.offset_needs_settlement",
            "an offset of a prepayment (1215) settles items: use full_payment (1214 = 4)",
        )
    if payments.credit and not methods & _CREDIT_METHODS:
        yield Problem(
            "payments.credit",
            "payments.credit_needs_credit_method",
            "a credit sum (1216) needs an item sold on credit (1214 = 5 or 6)",
        )
    if PaymentMethod.CREDIT in methods and not payments.credit:
        yield Problem(
            "payments.credit",
            "payments.credit_missing",
            "an item handed over on credit (1214 = 6) needs the credit sum (1216)",
        )


# --- items and marking ----------------------------------------------------------------------------


def _item(item: Item, path: str, receipt: Receipt) -> Iterator[Problem]:
    yield from _enum(f"{path}.vat", item.vat, VatRate, "VAT rate code (1199)")
    yield from _enum(f"{path}.payment_method", item.payment_method, PaymentMethod, "1214 code")
    yield from _enum(f"{path}.payment_subject", item.payment_subject, PaymentSubject, "1212 code")
    yield from _enum(f"{path}.measure", item.measure, MeasureUnit, "measure code (2108)")
    yield from _bits(f"{path}.agent_type", item.agent_type, 0x7F, "agent kinds (1222)")
    if item.agent_type is not None and item.agent_type not in {int(a) for a in AgentType}:
        yield Problem(f"{path}.agent_type", "enum.out_of_range", "1222 must be one agent kind")
    if item.supplier is not None:
        yield from _inn(f"{path}.supplier.inn", item.supplier.inn)
        for i, phone in enumerate(item.supplier.phones):
            yield from _phone(f"{path}.supplier.phones[{i}]", phone)
        if item.agent_type is None:
            yield Problem(
                f"{path}.agent_type",
                "agent.type_missing",
                "supplier data (1224, 1226) goes with the agent kind (1222)",
            )
    if item.agent is not None:
        yield from _inn(f"{path}.agent.transfer_operator_inn", item.agent.transfer_operator_inn)
        for name in ("phones", "payment_operator_phones", "transfer_operator_phones"):
            for i, phone in enumerate(getattr(item.agent, name)):
                yield from _phone(f"{path}.agent.{name}[{i}]", phone)
    if item.country_code is not None and not (
        item.country_code.isdigit() and len(item.country_code) == 3
    ):
        yield Problem(f"{path}.country_code", "country.invalid", "OKSM code is 3 digits (1230)")
    if item.fraction is not None:
        fraction = item.fraction
        if not 0 < fraction.numerator < fraction.denominator:
            yield Problem(
                f"{path}.fraction",
                "fraction.invalid",
                "a fractional quantity needs 0 < numerator < denominator (1293, 1294)",
            )
        elif item.quantity != Decimal(fraction.numerator) / Decimal(fraction.denominator):
            yield Problem(
                f"{path}.quantity",
                "fraction.quantity_mismatch",
                "quantity (1023) must equal numerator / denominator of 1291",
            )
    if item.payment_subject in MARKED_SUBJECTS and item.marking is None:
        yield Problem(
            f"{path}.marking",
            "marking.required",
            f"payment subject {item.payment_subject} is marked goods: give the marking code",
        )
    if item.marking is not None:
        yield from _marking(item.marking, f"{path}.marking", receipt)


def gtin_check_digit_ok(gtin: str) -> bool:
    """The GS1 mod-10 check digit of a 14-digit GTIN."""
    if len(gtin) != 14 or not gtin.isdigit():
        return False
    body = [int(c) for c in gtin[:13]]
    total = sum(d * (3 if i % 2 == 0 else 1) for i, d in enumerate(body))
    return (10 - total % 10) % 10 == int(gtin[13])


def _marking(marking: Marking, path: str, receipt: Receipt) -> Iterator[Problem]:
    if marking.kind not in PRODUCT_CODE_TAGS:
        yield Problem(f"{path}.kind", "enum.out_of_range", f"{marking.kind!r} is no 1163 kind")
    if marking.processing_mode != 0:
        yield Problem(
            f"{path}.processing_mode", "marking.processing_mode", "2102 must be 0 in FFD 1.2"
        )
    if marking.kind in _GS1_KINDS:
        yield from _gs1_product_code(marking.code, f"{path}.code")
        if marking.scanned is not None:
            yield from _gs1_scanned(marking, f"{path}.scanned")
    if marking.control_code is None:
        yield Problem(
            f"{path}.control_code", "marking.control_code_missing", "marked items carry 2115"
        )
    elif marking.scanned is not None and marking.control_code != marking_control_code(
        marking.scanned.encode("ascii", errors="replace")
    ):
        yield Problem(
            f"{path}.control_code",
            "marking.control_code_mismatch",
            "2115 is not the control code of the scanned marking code",
        )
    status = marking.planned_status
    if status is not None:
        allowed = {3, 4, 255} if receipt.operation in _REFUNDS else {1, 2, 255}
        if status not in allowed:
            yield Problem(
                f"{path}.planned_status",
                "marking.status_for_operation",
                f"planned status (2003) {status} does not fit operation {receipt.operation}",
            )


def _gs1_product_code(code: str, path: str) -> Iterator[Problem]:
    if not (code.startswith("01") and code[16:18] == "21" and 18 < len(code) <= 38):
        yield Problem(
            path, "marking.gs1_structure", "expected 01<GTIN, 14 digits>21<serial> (1305)"
        )
        return
    if not gtin_check_digit_ok(code[2:16]):
        yield Problem(path, "marking.gtin_check_digit", f"GTIN {code[2:16]} has a bad check digit")


def _gs1_scanned(marking: Marking, path: str) -> Iterator[Problem]:
    groups = marking.scanned.split(_GS) if marking.scanned is not None else []
    head = groups[0] if groups else ""
    if not head.startswith(marking.code):
        yield Problem(
            path, "marking.scanned_mismatch", "the scanned code does not start with 1163's code"
        )
    tail = {group[:2]: group[2:] for group in groups[1:] if len(group) >= 2}
    has_key = len(tail.get("91", "")) == 4
    has_sign = len(tail.get("92", "")) in (44, 88) or len(tail.get("93", "")) == 4
    if not (has_sign and (has_key or "93" in tail)):
        yield Problem(
            path,
            "marking.crypto_tail_missing",
            "a GS1 DataMatrix marking code needs its crypto tail (91 + 92, or 93)",
        )


# --- corrections ----------------------------------------------------------------------------------


def _correction(receipt: CorrectionReceipt, today: date | None) -> Iterator[Problem]:
    yield from _enum(
        "correction_type", receipt.correction_type, CorrectionType, "correction type (1173)"
    )
    basis = receipt.basis
    if basis is None:
        yield Problem("basis", "correction.basis_missing", "a correction needs its basis (1174)")
        return
    if today is not None and basis.date.date() > today:
        yield Problem(
            "basis.date",
            "correction.basis_date_future",
            f"the corrected settlement's date {basis.date.date()} is in the future (1178)",
        )
    if receipt.correction_type == CorrectionType.BY_ORDER and not basis.number:
        yield Problem(
            "basis.number",
            "correction.basis_number_missing",
            "a correction by order (1173 = 1) needs the order's number (1179)",
        )
