"""Kassa's own receipt JSON: lossless for every receipt, strict about types."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings

from protocols.documents.json_format import ReceiptJsonError, receipt_from_json, receipt_to_json
from protocols.documents.model import Receipt
from protocols.tlv.views import dumps, loads
from tests.protocols.receipts import receipts


@settings(max_examples=150, deadline=None)
@given(receipts())
def test_every_receipt_survives_json_text(receipt: Receipt) -> None:
    text = dumps(receipt_to_json(receipt))
    assert receipt_from_json(loads(text)) == receipt


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
