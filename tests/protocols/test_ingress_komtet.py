"""KOMTET v2 ingress: the corpus goes through check, the model and back; every error code has a
failing example with its path; money is strict."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.documents.ffd import decode_receipt, encode_receipt
from protocols.documents.model import Cashier, CorrectionReceipt, Receipt
from protocols.ingress import (
    INGRESS_CODES,
    IngressError,
    KomtetTask,
    check_komtet_task,
    dump_json,
    komtet_error,
    load_json,
    parse_komtet_task,
    to_komtet_task,
)
from protocols.ingress.komtet import INTENTS
from protocols.validation import validate
from tests.protocols.receipts import receipts
from tests.protocols.test_ingress_atol import (
    CORPUS,
    JSON_VALUES,
    edit,
    node_paths,
    without_scanned,
)

KOMTET_FILES = sorted(CORPUS.glob("komtet-*.json"))
TODAY = date(2025, 12, 1)
BASE = "komtet-sell-marked.json"


def load(name: str) -> Any:
    return load_json((CORPUS / name).read_text(encoding="utf-8"))


# --- the corpus -----------------------------------------------------------------------------------


def test_the_corpus_has_every_intent() -> None:
    assert {load(p.name)["intent"] for p in KOMTET_FILES} == set(INTENTS)


@pytest.mark.parametrize("path", KOMTET_FILES, ids=lambda p: p.stem)
def test_corpus_goes_through_check_the_model_and_back(path: Path) -> None:
    body = load_json(path.read_text(encoding="utf-8"))
    assert check_komtet_task(body, today=TODAY) == []
    task = parse_komtet_task(body)
    assert isinstance(task.receipt, CorrectionReceipt) == body["intent"].endswith("Correction")
    assert validate(task.receipt, today=TODAY) == []
    back = to_komtet_task(task)
    assert back == body
    assert parse_komtet_task(load_json(dump_json(back))) == task
    wire = encode_receipt(task.receipt)
    assert decode_receipt(wire).receipt == without_scanned(task.receipt)


# --- every receipt the format can carry -----------------------------------------------------------


def komtet_expressible(receipt: Receipt) -> Receipt:
    """What KOMTET cannot carry, dropped or filled in: it has no sender e-mail (1117), it
    requires the id of each cashless payment (1237), and 2106 is the register's answer. The
    strategy's item VAT amounts (1200) are the computed ones, which is what KOMTET implies."""
    items = tuple(
        attrs.evolve(i, marking=attrs.evolve(i.marking, check_result=None)) if i.marking else i
        for i in receipt.items
    )
    cashless = tuple(
        attrs.evolve(p, identifiers=p.identifiers or "txn-1") for p in receipt.payments.cashless
    )
    return attrs.evolve(
        receipt,
        items=items,
        company=attrs.evolve(receipt.company, email=None),
        payments=attrs.evolve(receipt.payments, cashless=cashless),
    )


@settings(max_examples=150, deadline=None)
@given(receipts())
def test_every_receipt_komtet_can_carry_comes_back_the_same(receipt: Receipt) -> None:
    task = KomtetTask("order-1", komtet_expressible(receipt), "https://x.ru/cb", True)
    body = to_komtet_task(task)
    assert parse_komtet_task(body) == task
    assert parse_komtet_task(load_json(dump_json(body))) == task
    assert check_komtet_task(body) == []


# --- error codes ----------------------------------------------------------------------------------

CORRECTION = "komtet-sellReturnCorrection-by-order.json"

#: (corpus, edit path, value, Kassa code, KOMTET path); None as value deletes the field.
PARSE_CASES: list[tuple[str, str, Any, str, str]] = [
    (BASE, "positions[0].colour", "red", "field.unknown", "positions[0].colour"),
    (BASE, "company.payment_address", None, "field.missing", "company.payment_address"),
    (BASE, "positions[0].price", "1.9", "field.type", "positions[0].price"),
    (
        CORRECTION,
        "correction_info.base_date",
        "2025-11-20",
        "field.format",
        "correction_info.base_date",
    ),
    (BASE, "payments", [], "field.length", "payments"),
    (BASE, "positions[0].vat", "21", "enum.unknown", "positions[0].vat"),
    (BASE, "intent", "refund", "enum.unknown", "intent"),
    (BASE, "positions[0].total", Decimal("6E+3"), "number.exponent", "positions[0].total"),
    (BASE, "positions[0].price", Decimal("5990.001"), "money.precision", "positions[0].price"),
    (
        BASE,
        "positions[0].quantity",
        Decimal("0.1234567890123456789012"),
        "number.size",
        "positions[0].quantity",
    ),
    (BASE, "positions[0].wholesale", True, "ingress.unsupported", "positions[0].wholesale"),
    (
        BASE,
        "positions[2].payment_object",
        "composite",
        "ingress.unsupported",
        "positions[2].payment_object",
    ),
    (BASE, "positions[2].vat", "18", "ingress.unsupported", "positions[2].vat"),
]


@pytest.mark.parametrize(("name", "where", "value", "code", "path"), PARSE_CASES)
def test_each_request_problem_has_its_code_and_path(
    name: str, where: str, value: Any, code: str, path: str
) -> None:
    body = edit(load(name), where, value, delete=value is None)
    problems = check_komtet_task(body)
    assert (path, 422, code) in {(p.path, p.status, p.code) for p in problems}
    with pytest.raises(IngressError) as caught:
        parse_komtet_task(body)
    assert (path, code) in {(p.path, p.code) for p in caught.value.problems}


def test_every_ingress_code_komtet_can_produce_has_a_failing_example() -> None:
    atol_only = {"quantity.precision", "vats.mismatch", "operation.unknown"}
    text_level = {"json.syntax", "json.duplicate_key"}  # load_json, tested with ATOL
    tested = {case[3] for case in PARSE_CASES} | {"ingress.inexpressible"}
    assert tested == set(INGRESS_CODES) - atol_only - text_level


def test_what_komtet_cannot_say_is_inexpressible_with_the_model_path() -> None:
    task = parse_komtet_task(load(BASE))
    receipt = attrs.evolve(
        task.receipt,
        company=attrs.evolve(task.receipt.company, email="shop@example.ru"),
        machine_number="A-1",
        agent_type=0x20,
        items=(attrs.evolve(task.receipt.items[0], vat_sum=1), *task.receipt.items[1:]),
    )
    with pytest.raises(IngressError) as caught:
        to_komtet_task(attrs.evolve(task, receipt=receipt))
    assert {(p.path, p.code) for p in caught.value.problems} == {
        ("company.email", "ingress.inexpressible"),
        ("machine_number", "ingress.inexpressible"),
        ("agent_type", "ingress.inexpressible"),
        ("items[0].vat_sum", "ingress.inexpressible"),
    }


#: Receipt checks in KOMTET's terms: (corpus, edit path, value, Kassa code, KOMTET path).
CHECK_CASES = [
    (BASE, "payments[0].sum", Decimal("6000.00"), "total.payments_mismatch", "payments"),
    (BASE, "positions[1].total", Decimal("91.00"), "item.sum_mismatch", "positions[1].total"),
    (
        BASE,
        "positions[0].planned_status",
        3,
        "marking.status_for_operation",
        "positions[0].planned_status",
    ),
    (
        BASE,
        "positions[1].mark_quantity.numerator",
        2,
        "fraction.invalid",
        "positions[1].mark_quantity",
    ),
    (BASE, "positions[2].country_code", "RUS", "country.invalid", "positions[2].country_code"),
    (BASE, "cashier.inn", "7707083893", "inn.invalid", "cashier.inn"),
    (BASE, "client.email", "nobody", "contact.invalid", "client.email"),
    (BASE, "company.place_address", "x" * 257, "text.too_long", "company.place_address"),
    (
        BASE,
        "cashless_payments[0].sum",
        Decimal("1.00"),
        "payments.cashless_mismatch",
        "cashless_payments",
    ),
    (
        "komtet-sell-agents.json",
        "positions[1].agent_info.receive_payments_operator.phones[0]",
        "x",
        "phone.invalid",
        "positions[1].agent_info.receive_payments_operator.phones[0]",
    ),
    ("komtet-sell-agents.json", "client.phone", "call me", "contact.invalid", "client.phone"),
    (CORRECTION, "authorised_person.inn", "1", "inn.invalid", "authorised_person.inn"),
    (
        CORRECTION,
        "correction_info.base_number",
        None,
        "correction.basis_number_missing",
        "correction_info.base_number",
    ),
    ("komtet-sell-credit.json", "payments[1].type", "card", "payments.credit_missing", "payments"),
]


@pytest.mark.parametrize(("name", "where", "value", "code", "path"), CHECK_CASES)
def test_receipt_checks_come_back_at_the_task_path(
    name: str, where: str, value: Any, code: str, path: str
) -> None:
    body = edit(load(name), where, value, delete=value is None)
    found = {(p.path, p.status, p.code, p.title) for p in check_komtet_task(body)}
    assert (path, 422, code, "Ошибка валидации чека") in found


def test_the_error_body_has_komtets_shape() -> None:
    body = edit(edit(load(BASE), "positions[0].x", 1), "payments[0].sum", Decimal("1.00"))
    error = komtet_error(check_komtet_task(body))
    assert set(error) == {"title", "code", "description"}
    assert (error["title"], error["code"]) == ("Ошибка в запросе", "field.unknown")
    assert "positions[0].x" in error["description"]


# --- money is strict ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("literal", "code"),
    [
        ('"1.9"', "field.type"),
        ("1.999", "money.precision"),
        ("true", "field.type"),
        ("1e2", "number.exponent"),
        ("null", "field.missing"),
    ],
)
def test_money_is_never_coerced(literal: str, code: str) -> None:
    text = dump_json(load(BASE)).replace('"price": 5.00', f'"price": {literal}')
    problems = check_komtet_task(load_json(text))
    assert [(p.path, p.code) for p in problems if p.path.endswith("price")] == [
        ("positions[2].price", code)
    ]


def test_a_binary_float_is_refused() -> None:
    problems = check_komtet_task(edit(load(BASE), "payments[0].sum", 6090.0))
    assert ("payments[0].sum", "field.type") in {(p.path, p.code) for p in problems}


# --- unknown fields -------------------------------------------------------------------------------


def test_unknown_fields_are_rejected_at_every_depth_all_at_once() -> None:
    wheres = [
        "queue_id",
        "client.telegram",
        "company.kpp",
        "positions[0].discount",
        "positions[1].mark_quantity.whole",
        "payments[0].currency",
        "cashier.role",
        "additional_user_props.extra",
    ]
    body = load(BASE)
    for where in wheres:
        body = edit(body, where, "?")
    with pytest.raises(IngressError) as caught:
        parse_komtet_task(body)
    assert {p.path for p in caught.value.problems if p.code == "field.unknown"} == set(wheres)


def test_correction_fields_are_unknown_in_a_check() -> None:
    body = edit(load(BASE), "correction_info", {"type": "self", "base_date": "01.12.2025"})
    problems = check_komtet_task(body)
    assert [(p.path, p.code) for p in problems] == [("correction_info", "field.unknown")]


# --- mapping details ------------------------------------------------------------------------------


def test_an_sdk_made_body_is_read_as_it_is() -> None:
    """What the Python SDK sends: an empty client, ``print: false``, a position id, no total,
    ``base_name: ""``, and the cashier under its own key in a correction."""
    body = edit(load(CORRECTION), "client", {})
    body = edit(body, "print", False)
    body = edit(body, "positions[0].id", "sku-1")
    body = edit(body, "positions[0].total", None, delete=True)
    body = edit(body, "correction_info.base_name", "")
    body = edit(body, "cashier", {"name": "Иванова И. И.", "inn": "500100732259"})
    assert check_komtet_task(body) == []
    task = parse_komtet_task(body)
    assert task.receipt.client is None and not task.print_receipt
    assert task.receipt.items[0].sum == 599000  # price × quantity
    assert isinstance(task.receipt, CorrectionReceipt) and task.receipt.basis is not None
    assert task.receipt.basis.name is None
    assert parse_komtet_task(to_komtet_task(task)) == task


def test_cashier_and_authorised_person_must_agree() -> None:
    body = edit(load(CORRECTION), "cashier", {"name": "Петров П. П."})
    problems = check_komtet_task(body)
    assert [(p.path, p.code) for p in problems] == [("authorised_person", "ingress.unsupported")]
    task = parse_komtet_task(edit(body, "authorised_person", None, delete=True))
    assert task.receipt.cashier == Cashier("Петров П. П.")


def test_the_shops_inn_fills_a_task_without_one() -> None:
    body = edit(load(BASE), "company.inn", None, delete=True)
    assert [(p.path, p.code) for p in check_komtet_task(body)] == [("company.inn", "field.missing")]
    assert parse_komtet_task(body, inn="7707083893").receipt.company.inn == "7707083893"


def test_item_vat_amounts_are_computed_and_the_envd_code_is_read() -> None:
    task = parse_komtet_task(edit(load(BASE), "company.sno", 3))
    assert task.receipt.company.tax_system == 0x08
    assert [i.vat_sum for i in task.receipt.items] == [108016, 818, 167]


# --- any input: problems, never a crash -----------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_edit_of_a_corpus_body_gives_problems_never_a_crash(data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(KOMTET_FILES))
    body = load_json(path.read_text(encoding="utf-8"))
    where = data.draw(st.sampled_from(node_paths(body)))
    edited = edit(body, where, data.draw(JSON_VALUES))
    problems = check_komtet_task(edited)
    try:
        parse_komtet_task(edited)
    except IngressError as exc:
        assert exc.problems and problems
    else:
        assert [p for p in problems if p.title != "Ошибка валидации чека"] == []


@settings(max_examples=100, deadline=None)
@given(JSON_VALUES)
def test_any_body_at_all_gives_problems_never_a_crash(body: Any) -> None:
    with pytest.raises(IngressError):
        parse_komtet_task(body)
    assert check_komtet_task(body)
