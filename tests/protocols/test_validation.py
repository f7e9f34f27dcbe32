"""Each check before fiscalization has a failing example that asserts its stable code."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.documents.model import (
    AgentData,
    Cashier,
    CashlessPayment,
    Client,
    Company,
    CorrectionBasis,
    CorrectionReceipt,
    FractionalQuantity,
    Item,
    Marking,
    Payments,
    Receipt,
    Supplier,
)
from protocols.fiscal_sign import marking_control_code
from protocols.validation import Limits, Registration, validate

SCANNED = "0104606203090785215ABCDEFGHIJK\x1d91EE06\x1d92" + "A" * 44
MARKING = Marking(
    "gs1m",
    "0104606203090785215ABCDEFGHIJK",
    control_code=marking_control_code(SCANNED.encode()),
    scanned=SCANNED,
)


def item(**changes: Any) -> Item:
    base = Item(
        name="Кофе",
        price=25000,
        quantity=Decimal("2"),
        sum=50000,
        vat=11,
        vat_sum=9016,
        payment_method=4,
        payment_subject=1,
    )
    return attrs.evolve(base, **changes)


def receipt(*items: Item, **changes: Any) -> Receipt:
    lines = items or (item(),)
    total = sum(i.sum for i in lines)
    base = Receipt(
        operation=1,
        items=lines,
        payments=Payments(electronic=total),
        company=Company(inn="7707083893", tax_system=1, place="shop.example"),
        total=total,
        client=Client(contact="buyer@example.ru"),
    )
    return attrs.evolve(base, **changes)


def correction(**changes: Any) -> CorrectionReceipt:
    base = receipt()
    fields = {f.name: getattr(base, f.name) for f in attrs.fields(Receipt)}
    fields.update(correction_type=0, basis=CorrectionBasis(datetime(2026, 11, 1)))
    fields.update(changes)
    return CorrectionReceipt(**fields)


def test_the_examples_start_valid() -> None:
    assert validate(receipt()) == []
    assert validate(correction(), today=date(2026, 11, 28)) == []
    assert validate(receipt(item(payment_subject=33, marking=MARKING))) == []


EXAMPLES: list[tuple[str, str, Callable[[], Receipt]]] = [
    ("enum.out_of_range", "operation", lambda: receipt(operation=5)),
    ("enum.out_of_range", "items[0].vat", lambda: receipt(item(vat=13, vat_sum=None))),
    ("enum.out_of_range", "items[0].payment_method", lambda: receipt(item(payment_method=8))),
    ("enum.out_of_range", "items[0].payment_subject", lambda: receipt(item(payment_subject=28))),
    ("enum.out_of_range", "items[0].measure", lambda: receipt(item(measure=99))),
    (
        "enum.out_of_range",
        "company.tax_system",
        lambda: receipt(company=Company("7707083893", 3, "x")),
    ),
    ("enum.out_of_range", "agent_type", lambda: receipt(agent_type=0x80)),
    ("time_zone.out_of_range", "time_zone", lambda: receipt(time_zone=12)),
    ("items.empty", "items", lambda: receipt(items=(), total=0, payments=Payments())),
    ("items.too_many", "items", lambda: receipt(*[item(price=1, sum=2, vat_sum=0, vat=6)] * 101)),
    ("text.not_cp866", "items[0].name", lambda: receipt(item(name="Кофе €"))),
    ("text.control_character", "items[0].name", lambda: receipt(item(name="Ко\x07фе"))),
    ("text.too_long", "items[0].name", lambda: receipt(item(name="я" * 129))),
    ("text.wrong_width", "items[0].country_code", lambda: receipt(item(country_code="64"))),
    ("money.negative", "items[0].price", lambda: receipt(item(price=-1))),
    ("money.too_large", "total", lambda: receipt(total=1 << 48)),
    (
        "total.items_mismatch",
        "total",
        lambda: receipt(total=49999, payments=Payments(electronic=49999)),
    ),
    ("total.payments_mismatch", "payments", lambda: receipt(payments=Payments(cash=100))),
    (
        "payments.cashless_mismatch",
        "payments.cashless",
        lambda: receipt(payments=Payments(electronic=50000, cashless=(CashlessPayment(1, 100),))),
    ),
    ("item.quantity_not_positive", "items[0].quantity", lambda: receipt(item(quantity=Decimal(0)))),
    (
        "item.quantity_too_large",
        "items[0].quantity",
        lambda: receipt(item(quantity=Decimal("1e40"))),
    ),
    ("item.sum_mismatch", "items[0].sum", lambda: receipt(item(sum=50001, vat_sum=9016))),
    ("item.vat_mismatch", "items[0].vat_sum", lambda: receipt(item(vat_sum=9015))),
    ("inn.invalid", "company.inn", lambda: receipt(company=Company("7707083894", 1, "x"))),
    ("inn.invalid", "cashier.inn", lambda: receipt(cashier=Cashier("Иванова", "7707083893"))),
    (
        "email.invalid",
        "company.email",
        lambda: receipt(company=Company("7707083893", 1, "x", email="no")),
    ),
    ("contact.invalid", "client.contact", lambda: receipt(client=Client(contact="кому-то"))),
    ("contact.required", "client.contact", lambda: receipt(client=None, internet=True)),
    (
        "phone.invalid",
        "items[0].agent.phones[0]",
        lambda: receipt(item(agent_type=4, agent=AgentData(phones=("12-34",)))),
    ),
    (
        "agent.type_missing",
        "items[0].agent_type",
        lambda: receipt(item(supplier=Supplier(name="Поставщик", inn="7707083893"))),
    ),
    ("country.invalid", "items[0].country_code", lambda: receipt(item(country_code="RUS"))),
    (
        "payments.offset_on_prepayment",
        "payments.prepaid",
        lambda: receipt(item(payment_method=1), payments=Payments(prepaid=50000)),
    ),
    (
        "payments.offset_needs_settlement",
        "payments.prepaid",
        lambda: receipt(item(payment_method=7), payments=Payments(prepaid=50000)),
    ),
    (
        "payments.credit_needs_credit_method",
        "payments.credit",
        lambda: receipt(payments=Payments(credit=50000)),
    ),
    (
        "payments.credit_missing",
        "payments.credit",
        lambda: receipt(item(payment_method=6)),
    ),
    (
        "fraction.invalid",
        "items[0].fraction",
        lambda: receipt(item(fraction=FractionalQuantity(3, 2))),
    ),
    (
        "fraction.quantity_mismatch",
        "items[0].quantity",
        lambda: receipt(item(fraction=FractionalQuantity(1, 2))),
    ),
    ("marking.required", "items[0].marking", lambda: receipt(item(payment_subject=33))),
    (
        "marking.processing_mode",
        "items[0].marking.processing_mode",
        lambda: receipt(item(marking=attrs.evolve(MARKING, processing_mode=1))),
    ),
    (
        "marking.gs1_structure",
        "items[0].marking.code",
        lambda: receipt(item(marking=attrs.evolve(MARKING, code="4606203090785", scanned=None))),
    ),
    (
        "marking.gtin_check_digit",
        "items[0].marking.code",
        lambda: receipt(
            item(marking=attrs.evolve(MARKING, code="0104606203090786215ABC", scanned=None))
        ),
    ),
    (
        "marking.scanned_mismatch",
        "items[0].marking.scanned",
        lambda: receipt(item(marking=attrs.evolve(MARKING, code="0104606203090785215XYZ"))),
    ),
    (
        "marking.crypto_tail_missing",
        "items[0].marking.scanned",
        lambda: receipt(item(marking=attrs.evolve(MARKING, scanned=MARKING.code))),
    ),
    (
        "marking.control_code_missing",
        "items[0].marking.control_code",
        lambda: receipt(item(marking=attrs.evolve(MARKING, control_code=None))),
    ),
    (
        "marking.control_code_mismatch",
        "items[0].marking.control_code",
        lambda: receipt(item(marking=attrs.evolve(MARKING, control_code="0000"))),
    ),
    (
        "marking.status_for_operation",
        "items[0].marking.planned_status",
        lambda: receipt(item(marking=attrs.evolve(MARKING, planned_status=1)), operation=2),
    ),
    ("correction.basis_missing", "basis", lambda: correction(basis=None)),
    (
        "correction.basis_date_future",
        "basis.date",
        lambda: correction(basis=CorrectionBasis(datetime(2026, 12, 1))),
    ),
    ("correction.basis_number_missing", "basis.number", lambda: correction(correction_type=1)),
    ("enum.out_of_range", "correction_type", lambda: correction(correction_type=2)),
]


@pytest.mark.parametrize(
    ("code", "path", "build"), EXAMPLES, ids=[f"{c}@{p}" for c, p, _ in EXAMPLES]
)
def test_each_check_has_a_failing_example(
    code: str, path: str, build: Callable[[], Receipt]
) -> None:
    problems = validate(build(), limits=Limits(max_items=100), today=date(2026, 11, 28))
    assert (path, code) in {(p.path, p.code) for p in problems}, problems


def test_registration_tax_system() -> None:
    problems = validate(receipt(), registration=Registration(tax_systems=0x02 | 0x20))
    assert [(p.path, p.code) for p in problems] == [
        ("company.tax_system", "registration.tax_system")
    ]
    assert validate(receipt(), registration=Registration(tax_systems=0x03)) == []


def test_every_problem_at_once() -> None:
    bad = receipt(
        item(name="€", vat=13, sum=1, vat_sum=None),
        item(quantity=Decimal(-1)),
        company=Company("123", 3, "x"),
        operation=9,
        payments=Payments(cash=1),
    )
    codes = {p.code for p in validate(bad)}
    assert {
        "text.not_cp866",
        "enum.out_of_range",
        "item.sum_mismatch",
        "item.quantity_not_positive",
        "inn.invalid",
        "total.payments_mismatch",
    } <= codes


def test_sum_tolerance_is_configurable() -> None:
    off_by_one = receipt(item(sum=50001, vat_sum=9016))
    assert "item.sum_mismatch" in {p.code for p in validate(off_by_one)}
    assert "item.sum_mismatch" not in {
        p.code for p in validate(off_by_one, limits=Limits(sum_tolerance=1))
    }


def test_the_docs_table_lists_every_code() -> None:
    text = (Path(__file__).parents[2] / "docs" / "validation.md").read_text()
    table = text.split("\n## ")[0]  # the engine's own checks follow in a section of their own
    documented = set(re.findall(r"^\| `([a-z0-9_.]+)` \|", table, re.MULTILINE))
    tested = {code for code, _, _ in EXAMPLES} | {"registration.tax_system"}
    assert documented == tested


@settings(max_examples=300, deadline=None)
@given(
    price=st.integers(-(10**40), 10**40),
    quantity=st.decimals(allow_nan=False, allow_infinity=False),
    total=st.integers(-(10**40), 10**40),
    vat=st.integers(-5, 300),
)
def test_validate_reports_rather_than_raises(
    price: int, quantity: Decimal, total: int, vat: int
) -> None:
    """Any numbers at all give a list of problems, never an exception."""
    problems = validate(receipt(item(price=price, quantity=quantity, vat=vat), total=total))
    assert all(isinstance(p.code, str) and p.path for p in problems)
