"""ATOL Online v5 ingress: the corpus goes through check, the model and back; every error code
has a failing example with its path; money is strict."""

from __future__ import annotations

import copy
import re
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.documents.ffd import decode_receipt, encode_receipt
from protocols.documents.model import CorrectionReceipt, Marking, Receipt
from protocols.ingress import (
    INGRESS_CODES,
    AtolRequest,
    IngressError,
    atol_code,
    atol_error,
    check_atol_v5,
    dump_json,
    load_json,
    parse_atol_v5,
    to_atol_v5,
)
from protocols.ingress.atol_v5 import OPERATIONS
from protocols.validation import Registration, validate
from tests.protocols.receipts import receipts

CORPUS = Path(__file__).parent / "corpus"
ATOL_FILES = sorted(CORPUS.glob("atol-*.json"))
TODAY = date(2025, 12, 1)


def operation_of(path: Path) -> str:
    """The corpus names each ATOL body ``atol-{operation}-{what}.json`` (the URL carries it)."""
    return path.stem.split("-")[1]


def load(name: str) -> Any:
    return load_json((CORPUS / name).read_text(encoding="utf-8"))


def without_scanned(receipt: Receipt) -> Receipt:
    """The scanned marking code is not a receipt tag, so it does not come back from the ФН."""
    items = tuple(
        attrs.evolve(i, marking=attrs.evolve(i.marking, scanned=None)) if i.marking else i
        for i in receipt.items
    )
    return attrs.evolve(receipt, items=items)


_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def edit(body: Any, path: str, value: Any = None, *, delete: bool = False) -> Any:
    """A deep copy of ``body`` with the value at a JSON path (``receipt.items[0].price``) set."""
    out = copy.deepcopy(body)
    keys: list[str | int] = [k if k else int(i) for k, i in _STEP.findall(path)]
    target = out
    for key in keys[:-1]:
        target = target[key]
    if delete:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return out


# --- the corpus -----------------------------------------------------------------------------------


def test_the_corpus_has_every_operation() -> None:
    assert {operation_of(p) for p in ATOL_FILES} == set(OPERATIONS)


@pytest.mark.parametrize("path", ATOL_FILES, ids=lambda p: p.stem)
def test_corpus_goes_through_check_the_model_and_back(path: Path) -> None:
    operation = operation_of(path)
    body = load_json(path.read_text(encoding="utf-8"))
    assert check_atol_v5(operation, body, today=TODAY) == []
    request = parse_atol_v5(operation, body)
    assert isinstance(request.receipt, CorrectionReceipt) == operation.endswith("_correction")
    assert validate(request.receipt, today=TODAY) == []
    # the way back gives the body itself; declared VAT totals (vats) are checked, not carried
    back_operation, back = to_atol_v5(request)
    root = "correction" if operation.endswith("_correction") else "receipt"
    canonical = {**body, root: {k: v for k, v in body[root].items() if k != "vats"}}
    assert (back_operation, back) == (operation, canonical)
    again = parse_atol_v5(back_operation, load_json(dump_json(back)))
    assert again == request
    wire = encode_receipt(request.receipt)
    assert decode_receipt(wire).receipt == without_scanned(request.receipt)


# --- every receipt the format can carry -----------------------------------------------------------


def atol_expressible(receipt: Receipt) -> Receipt:
    """What ATOL cannot carry, made carriable: ATOL requires the sender's e-mail (1117) and the
    id of each cashless payment (1237), and 2106 is the register's answer, not a request field.
    Everything else of the strategy (marking, fractions, agents, suppliers, corrections,
    credit, prepayment and its offset) goes through as it is."""
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
        company=attrs.evolve(receipt.company, email=receipt.company.email or "shop@example.ru"),
        payments=attrs.evolve(receipt.payments, cashless=cashless),
    )


@settings(max_examples=150, deadline=None)
@given(receipts())
def test_every_receipt_atol_can_carry_comes_back_the_same(receipt: Receipt) -> None:
    receipt = atol_expressible(receipt)
    request = AtolRequest("order-1", datetime(2026, 1, 2, 3, 4, 5), receipt, "https://x.ru/cb")
    operation, body = to_atol_v5(request)
    assert parse_atol_v5(operation, body) == request
    assert parse_atol_v5(operation, load_json(dump_json(body))) == request
    assert check_atol_v5(operation, body) == []


# --- error codes ----------------------------------------------------------------------------------

BASE = "atol-sell-marked.json"

#: (edit path, value, Kassa code, ATOL path, ATOL code); None as value deletes the field.
PARSE_CASES = [
    ("receipt.items[0].colour", "red", "field.unknown", "receipt.items[0].colour", 13),
    ("receipt.total", None, "field.missing", "receipt.total", 13),
    ("receipt.items[0].price", "1.9", "field.type", "receipt.items[0].price", 13),
    ("timestamp", "2025-12-01 12:30:00", "field.format", "timestamp", 13),
    ("external_id", "x" * 129, "field.length", "external_id", 13),
    ("receipt.items[0].vat.type", "vat19", "enum.unknown", "receipt.items[0].vat.type", 13),
    ("receipt.total", Decimal("6E+3"), "number.exponent", "receipt.total", 13),
    ("receipt.items[0].price", Decimal("1.999"), "money.precision", "receipt.items[0].price", 13),
    ("receipt.total", 10**12, "number.size", "receipt.total", 13),
    (
        "receipt.operating_check_props.name",
        "256",
        "field.format",
        "receipt.operating_check_props.name",
        13,
    ),
    ("receipt.items[2].planned_status", 1, "field.missing", "receipt.items[2].mark_code", 13),
    (
        "receipt.items[2].quantity",
        Decimal("2.0001"),
        "quantity.precision",
        "receipt.items[2].quantity",
        13,
    ),
    ("receipt.payments[0].type", 7, "ingress.unsupported", "receipt.payments[0].type", 32),
    ("receipt.vats[0].sum", Decimal("1.00"), "vats.mismatch", "receipt.vats[0].sum", 32),
]


@pytest.mark.parametrize(("where", "value", "code", "path", "atol"), PARSE_CASES)
def test_each_request_problem_has_its_code_and_path(
    where: str, value: Any, code: str, path: str, atol: int
) -> None:
    body = edit(load(BASE), where, value, delete=value is None)
    problems = check_atol_v5("sell", body)
    assert (path, atol, code) in {(p.path, p.code, p.kassa_code) for p in problems}
    with pytest.raises(IngressError) as caught:
        parse_atol_v5("sell", body)
    assert (path, code) in {(p.path, p.code) for p in caught.value.problems}


def test_an_unknown_operation_is_atol_31() -> None:
    (problem,) = check_atol_v5("sell_twice", load(BASE))
    assert (problem.path, problem.code, problem.kassa_code) == (
        "operation",
        31,
        "operation.unknown",
    )
    assert atol_error([problem])["code"] == 31


@pytest.mark.parametrize(
    ("text", "code", "atol"),
    [
        ("{", "json.syntax", 40),
        ('{"a": NaN}', "json.syntax", 40),
        ('{"a":1,"a":2}', "json.duplicate_key", 13),
    ],
)
def test_json_text_problems(text: str, code: str, atol: int) -> None:
    with pytest.raises(IngressError) as caught:
        load_json(text)
    (problem,) = caught.value.problems
    assert (problem.path, problem.code, atol_code(problem.code)) == ("$", code, atol)


def test_what_atol_cannot_say_is_inexpressible_with_the_model_path() -> None:
    request = parse_atol_v5("sell", load(BASE))
    company = attrs.evolve(request.receipt.company, email=None, name="ООО Ромашка")
    item = attrs.evolve(request.receipt.items[0], unit="шт", measure=None)
    marking = request.receipt.items[1].marking
    assert marking is not None
    marked = attrs.evolve(request.receipt.items[1], marking=attrs.evolve(marking, check_result=15))
    receipt = attrs.evolve(request.receipt, company=company, items=(item, marked))
    with pytest.raises(IngressError) as caught:
        to_atol_v5(attrs.evolve(request, receipt=receipt))
    assert {p.code for p in caught.value.problems} == {"ingress.inexpressible"}
    assert {p.path for p in caught.value.problems} == {
        "company.email",
        "company.name",
        "items[0].unit",
        "items[0].measure",
        "items[1].marking.check_result",
    }


def test_every_ingress_code_has_a_failing_example() -> None:
    tested = {case[2] for case in PARSE_CASES} | {
        "operation.unknown",
        "json.syntax",
        "json.duplicate_key",
        "ingress.inexpressible",
    }
    assert tested == set(INGRESS_CODES)


#: Receipt checks in ATOL's terms: (corpus, edit path, value, Kassa code, ATOL path, driver).
CHECK_CASES = [
    (
        BASE,
        "receipt.items[0].mark_processing_mode",
        "1",
        "marking.processing_mode",
        "receipt.items[0].mark_processing_mode",
        None,
    ),
    (BASE, "receipt.total", Decimal("6000.00"), "total.items_mismatch", "receipt.total", None),
    (
        BASE,
        "receipt.items[1].sum",
        Decimal("91.00"),
        "item.sum_mismatch",
        "receipt.items[1].sum",
        -3803,
    ),
    (
        BASE,
        "receipt.items[2].quantity",
        0,
        "item.quantity_not_positive",
        "receipt.items[2].quantity",
        -3804,
    ),
    (
        BASE,
        "receipt.items[2].vat.sum",
        Decimal("1.00"),
        "item.vat_mismatch",
        "receipt.items[2].vat.sum",
        None,
    ),
    (BASE, "receipt.client.email", "nobody", "contact.invalid", "receipt.client.email", None),
    (BASE, "receipt.company.inn", "7707083890", "inn.invalid", "receipt.company.inn", -3809),
    (BASE, "receipt.cashier_inn", "500100732250", "inn.invalid", "receipt.cashier_inn", -3809),
    (
        BASE,
        "receipt.items[0].planned_status",
        3,
        "marking.status_for_operation",
        "receipt.items[0].planned_status",
        None,
    ),
    (
        BASE,
        "receipt.items[0].payment_object",
        99,
        "enum.out_of_range",
        "receipt.items[0].payment_object",
        None,
    ),
    (BASE, "receipt.items[0].name", "x" * 129, "text.too_long", "receipt.items[0].name", -3895),
    (
        BASE,
        "receipt.items[1].mark_quantity.numerator",
        3,
        "fraction.invalid",
        "receipt.items[1].mark_quantity",
        None,
    ),
    (BASE, "receipt.timezone", 12, "time_zone.out_of_range", "receipt.timezone", None),
    (
        BASE,
        "receipt.additional_user_props.name",
        "名",
        "text.not_cp866",
        "receipt.additional_user_props.name",
        None,
    ),
    (
        BASE,
        "receipt.sectoral_check_props[0].federal_id",
        "30",
        "text.wrong_width",
        "receipt.sectoral_check_props[0].federal_id",
        -3895,
    ),
    (
        BASE,
        "receipt.cashless_payments[0].sum",
        Decimal("1.00"),
        "payments.cashless_mismatch",
        "receipt.cashless_payments",
        None,
    ),
    (
        BASE,
        "receipt.payments[0].sum",
        Decimal("6000.00"),
        "total.payments_mismatch",
        "receipt.payments",
        -3897,
    ),
    (
        BASE,
        "receipt.operating_check_props.value",
        "x" * 65,
        "text.too_long",
        "receipt.operating_check_props.value",
        -3895,
    ),
    (BASE, "receipt.device_number", "x" * 21, "text.too_long", "receipt.device_number", -3895),
    (
        "atol-sell-agents.json",
        "receipt.items[1].agent_info.paying_agent.phones[0]",
        "8-800",
        "phone.invalid",
        "receipt.items[1].agent_info.paying_agent.phones[0]",
        None,
    ),
    (
        "atol-sell-agents.json",
        "receipt.items[1].agent_info.money_transfer_operator.inn",
        "1",
        "inn.invalid",
        "receipt.items[1].agent_info.money_transfer_operator.inn",
        -3809,
    ),
    (
        "atol-sell-agents.json",
        "receipt.items[0].supplier_info.phones[0]",
        "x",
        "phone.invalid",
        "receipt.items[0].supplier_info.phones[0]",
        None,
    ),
    (
        "atol-sell-agents.json",
        "receipt.client.phone",
        "call me",
        "contact.invalid",
        "receipt.client.phone",
        None,
    ),
]


@pytest.mark.parametrize(("name", "where", "value", "code", "path", "driver"), CHECK_CASES)
def test_receipt_checks_come_back_as_atol_32_at_the_body_path(
    name: str, where: str, value: Any, code: str, path: str, driver: int | None
) -> None:
    problems = check_atol_v5(operation_of(CORPUS / name), edit(load(name), where, value))
    found = {(p.path, p.code, p.kassa_code, p.driver_code) for p in problems}
    assert (path, 32, code, driver) in found


def test_correction_paths_land_in_correction_info() -> None:
    name = "atol-sell_refund_correction-by-order.json"
    body = edit(load(name), "correction.correction_info.base_number", None, delete=True)
    problems = check_atol_v5("sell_refund_correction", body)
    assert [(p.path, p.kassa_code, p.kassa_path) for p in problems] == [
        (
            "correction.correction_info.base_number",
            "correction.basis_number_missing",
            "basis.number",
        )
    ]
    future = edit(load(name), "correction.correction_info.base_date", "02.12.2025")
    (late,) = check_atol_v5("sell_refund_correction", future, today=TODAY)
    assert (late.path, late.kassa_code) == (
        "correction.correction_info.base_date",
        "correction.basis_date_future",
    )


def test_registration_and_item_limits_in_atol_terms() -> None:
    body = load(BASE)
    (problem,) = check_atol_v5("sell", body, registration=Registration(tax_systems=0x02))
    assert (problem.path, problem.kassa_code, problem.driver_code) == (
        "receipt.company.sno",
        "registration.tax_system",
        -4021,
    )
    many = edit(body, "receipt.items", body["receipt"]["items"] * 34)
    codes = {(p.path, p.kassa_code) for p in check_atol_v5("sell", many)}
    assert ("receipt.items", "items.too_many") in codes


def test_the_error_object_lists_every_field() -> None:
    body = edit(edit(load(BASE), "receipt.total", Decimal("1.00")), "receipt.items[0].x", 1)
    error = atol_error(check_atol_v5("sell", body))
    assert error["code"] == 13 and error["type"] == "system"
    assert "receipt.items[0].x" in error["text"]
    receipt_only = atol_error(
        check_atol_v5("sell", edit(load(BASE), "receipt.total", Decimal("1.00")))
    )
    assert receipt_only["code"] == 32
    assert receipt_only["text"].startswith("Ошибка валидации входного чека: receipt.total")


# --- money is strict ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("literal", "code"),
    [
        ('"1.9"', "field.type"),
        ("1.999", "money.precision"),
        ("true", "field.type"),
        ("1e2", "number.exponent"),
        ("1.5E+1", "number.exponent"),
        ("null", "field.missing"),
        ("[1]", "field.type"),
    ],
)
def test_money_is_never_coerced(literal: str, code: str) -> None:
    text = dump_json(load(BASE)).replace('"price": 5.00', f'"price": {literal}')
    problems = check_atol_v5("sell", load_json(text))
    assert [(p.path, p.kassa_code) for p in problems if p.path.endswith("price")] == [
        ("receipt.items[2].price", code)
    ]


def test_a_binary_float_is_refused_even_when_it_looks_exact() -> None:
    body = edit(load(BASE), "receipt.items[2].price", 5.0)
    (problem,) = [p for p in check_atol_v5("sell", body) if p.kassa_code == "field.type"]
    assert problem.path == "receipt.items[2].price"
    assert "parse_float=Decimal" in problem.message


def test_bools_and_strings_are_not_integers() -> None:
    body = edit(edit(load(BASE), "receipt.items[0].measure", True), "receipt.timezone", "2")
    found = {(p.path, p.kassa_code) for p in check_atol_v5("sell", body)}
    assert {("receipt.items[0].measure", "field.type"), ("receipt.timezone", "field.type")} <= found


# --- unknown fields -------------------------------------------------------------------------------


def test_unknown_fields_are_rejected_at_every_depth_all_at_once() -> None:
    body = load(BASE)
    for where in (
        "group_code",
        "service.retry",
        "receipt.discount",
        "receipt.client.telegram",
        "receipt.company.kpp",
        "receipt.items[0].vat.rate",
        "receipt.items[0].mark_code.gs1",
        "receipt.payments[0].currency",
        "receipt.sectoral_check_props[0].extra",
        "receipt.cashless_payments[0].bank",
    ):
        body = edit(body, where, "?")
    with pytest.raises(IngressError) as caught:
        parse_atol_v5("sell", body)
    unknown = {p.path for p in caught.value.problems if p.code == "field.unknown"}
    assert unknown == {
        "group_code",
        "service.retry",
        "receipt.discount",
        "receipt.client.telegram",
        "receipt.company.kpp",
        "receipt.items[0].vat.rate",
        "receipt.items[0].mark_code.gs1",
        "receipt.payments[0].currency",
        "receipt.sectoral_check_props[0].extra",
        "receipt.cashless_payments[0].bank",
    }


def test_a_receipt_key_in_a_correction_operation_is_unknown() -> None:
    problems = check_atol_v5("sell_correction", load(BASE))
    assert {(p.path, p.kassa_code) for p in problems} == {
        ("receipt", "field.unknown"),
        ("correction", "field.missing"),
    }


# --- mapping details ------------------------------------------------------------------------------


def test_the_email_wins_when_both_contacts_are_given() -> None:
    body = edit(load(BASE), "receipt.client.phone", "+79161234567")
    client = parse_atol_v5("sell", body).receipt.client
    assert client is not None and client.contact == "buyer@example.ru"


def test_a_missing_sno_takes_the_groups_tax_system() -> None:
    body = edit(load(BASE), "receipt.company.sno", None, delete=True)
    problems = check_atol_v5("sell", body)
    assert [(p.path, p.kassa_code) for p in problems] == [("receipt.company.sno", "field.missing")]
    assert parse_atol_v5("sell", body, tax_system=0x20).receipt.company.tax_system == 0x20


def test_receipt_level_agent_data_moves_into_the_items() -> None:
    body = load("atol-sell-agents.json")
    supplier = {"inn": "7720810170", "name": "ООО Поставщик"}
    body = edit(body, "receipt.supplier_info", supplier)
    body = edit(body, "receipt.agent_info.paying_agent", {"phones": ["+78009999999"]})
    body = edit(body, "receipt.items[0].supplier_info", None, delete=True)
    body = edit(body, "receipt.items[0].agent_info", None, delete=True)
    receipt = parse_atol_v5("sell", body).receipt
    first, second = receipt.items
    assert receipt.agent_type == 0x20
    assert first.agent_type == 0x20 and first.agent is not None
    assert first.agent.phones == ("+78009999999",)
    assert first.supplier is not None and first.supplier.inn == "7720810170"
    assert second.agent_type == 0x04 and second.supplier is not None
    assert second.supplier.inn != "7720810170"  # an item's own data wins


def test_v4_payment_object_names_and_the_processing_mode_are_read() -> None:
    body = edit(load(BASE), "receipt.items[2].payment_object", "commodity")
    body = edit(body, "receipt.items[0].mark_processing_mode", "0")
    receipt = parse_atol_v5("sell", body).receipt
    assert receipt.items[2].payment_subject == 1
    marking = receipt.items[0].marking
    assert isinstance(marking, Marking) and marking.processing_mode == 0
    composite = edit(load(BASE), "receipt.items[2].payment_object", "composite")
    (problem,) = check_atol_v5("sell", composite)
    assert (problem.path, problem.kassa_code) == (
        "receipt.items[2].payment_object",
        "ingress.unsupported",
    )


def test_the_marking_code_is_decoded_and_its_control_code_derived() -> None:
    marking = parse_atol_v5("sell", load(BASE)).receipt.items[0].marking
    assert marking is not None and marking.scanned is not None
    assert marking.code == "0104606203090785215ABCDEFGHIJK"
    assert marking.scanned.startswith(marking.code + "\x1d91")
    bad = edit(load(BASE), "receipt.items[0].mark_code.gs1m", "not base64!")
    (problem,) = check_atol_v5("sell", bad)
    assert (problem.path, problem.kassa_code) == ("receipt.items[0].mark_code.gs1m", "field.format")
    ean = edit(load(BASE), "receipt.items[2].mark_code", {"ean13": "4601234567893"})
    item = parse_atol_v5("sell", ean).receipt.items[2]
    assert item.marking is not None and (item.marking.kind, item.marking.code) == (
        "ean13",
        "4601234567893",
    )
    two = edit(load(BASE), "receipt.items[2].mark_code", {"ean8": "1", "ean13": "2"})
    codes = {(p.path, p.kassa_code) for p in check_atol_v5("sell", two)}
    assert ("receipt.items[2].mark_code", "field.format") in codes


def test_nulls_in_optional_fields_are_absent() -> None:
    body = edit(load("atol-sell-settlement.json"), "receipt.cashier", None)
    body = edit(body, "service", None)
    assert check_atol_v5("sell", body) == []
    assert parse_atol_v5("sell", body).callback_url is None


# --- any input: problems, never a crash -----------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.decimals(places=None)
    | st.floats()
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def node_paths(value: Any, path: str = "") -> list[str]:
    """The JSON path of every value inside a body."""
    out = []
    if isinstance(value, dict):
        for key, inner in value.items():
            where = f"{path}.{key}" if path else key
            out += [where, *node_paths(inner, where)]
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            out += [f"{path}[{i}]", *node_paths(inner, f"{path}[{i}]")]
    return out


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_edit_of_a_corpus_body_gives_problems_never_a_crash(data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(ATOL_FILES))
    body = load_json(path.read_text(encoding="utf-8"))
    where = data.draw(st.sampled_from(node_paths(body)))
    edited = edit(body, where, data.draw(JSON_VALUES))
    operation = operation_of(path)
    problems = check_atol_v5(operation, edited)
    try:
        request = parse_atol_v5(operation, edited)
    except IngressError as exc:
        assert exc.problems and problems
    else:
        assert [p for p in problems if p.code != 32] == []
        assert request.receipt is not None


@settings(max_examples=100, deadline=None)
@given(JSON_VALUES, st.sampled_from(sorted(OPERATIONS)))
def test_any_body_at_all_gives_problems_never_a_crash(body: Any, operation: str) -> None:
    with pytest.raises(IngressError):
        parse_atol_v5(operation, body)
    assert check_atol_v5(operation, body)


def test_a_non_canonical_body_is_stable_after_one_trip() -> None:
    """parse(to(parse(x))) == parse(x) for a body that is not in the canonical form: both
    contacts, a v4 name, integer money, an explicit processing mode, receipt-level agent data,
    declared VAT totals, and an omitted sno."""
    body = edit(load(BASE), "receipt.client.phone", "+79161234567")
    body = edit(body, "receipt.items[2].payment_object", "commodity")
    body = edit(body, "receipt.items[2].price", 5)
    body = edit(body, "receipt.items[0].mark_processing_mode", "0")
    body = edit(body, "receipt.company.sno", None, delete=True)
    body = edit(body, "receipt.agent_info", {"type": "another", "paying_agent": {"phones": []}})
    first = parse_atol_v5("sell", body, tax_system=0x01)
    operation, back = to_atol_v5(first)
    assert back != body
    assert parse_atol_v5(operation, back) == first
