"""Kassa's own receipt JSON: lossless for every receipt, strict about types."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings

from protocols.documents.json_format import (
    ReceiptJsonError,
    receipt_from_json,
    receipt_to_json,
    receipt_to_json_reference,
)
from protocols.documents.model import Receipt
from protocols.tlv.views import dumps, loads
from tests.protocols.receipts import receipts


@settings(max_examples=150, deadline=None)
@given(receipts())
def test_every_receipt_survives_json_text(receipt: Receipt) -> None:
    text = dumps(receipt_to_json(receipt))
    assert receipt_from_json(loads(text)) == receipt


@settings(max_examples=300, deadline=None)
@given(receipts())
def test_the_one_pass_writer_writes_what_cattrs_and_pruning_write(receipt: Receipt) -> None:
    # A job's body is this JSON, and a repeat of its external_id is compared by body: one
    # field written differently would turn every resubmission after an upgrade into a conflict.
    fast = receipt_to_json(receipt)
    assert fast == receipt_to_json_reference(receipt)
    assert json.dumps(fast, sort_keys=True) == json.dumps(
        receipt_to_json_reference(receipt), sort_keys=True
    )


def test_a_quantity_is_written_as_typed_not_as_its_value() -> None:
    # Decimal("2.000") == 2, but the body keeps the places the shop sent.
    body = json.loads(json.dumps(GOOD))
    body["items"][0]["quantity"] = "2.000"
    written = receipt_to_json(receipt_from_json(body))
    assert written["items"][0]["quantity"] == "2.000"
    assert written == receipt_to_json_reference(receipt_from_json(body))


GOOD = {
    "kind": "receipt",
    "operation": 1,
    "items": [
        {
            "name": "Кофе",
            "price": 25000,
            "quantity": "2",
            "sum": 50000,
            "vat": 11,
            "payment_method": 4,
            "payment_subject": 1,
        }
    ],
    "payments": {"electronic": 50000},
    "company": {"inn": "7707083893", "tax_system": 1, "place": "shop.example"},
    "total": 50000,
}


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda r: r["items"][0].update(price="1.9"), "items[0].price"),
        (lambda r: r["items"][0].update(price=True), "items[0].price"),
        (lambda r: r["items"][0].update(quantity="два"), "items[0].quantity"),
        (lambda r: r["payments"].update(cash=1.5), "payments.cash"),
        (lambda r: r["company"].update(ogrn="1"), "company"),
        (lambda r: r.pop("total"), "total"),
        (lambda r: r.update(kind="cheque"), "kind"),
    ],
)
def test_wrong_types_unknown_and_missing_fields_name_their_path(
    change: Callable[[Any], object], path: str
) -> None:
    body = loads(json.dumps(GOOD))
    change(body)
    with pytest.raises(ReceiptJsonError) as caught:
        receipt_from_json(body)
    assert path in [p for p, _ in caught.value.problems], caught.value.problems


def test_every_problem_is_listed() -> None:
    body = loads(json.dumps(GOOD))
    body["operation"] = "1"
    body["items"][0]["price"] = 19.9
    with pytest.raises(ReceiptJsonError) as caught:
        receipt_from_json(body)
    assert {p for p, _ in caught.value.problems} >= {"operation", "items[0].price"}
