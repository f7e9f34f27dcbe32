"""The receipt model: every kind validates, encodes to FFD TLV, decodes and compares equal."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings

from protocols.documents.ffd import (
    DocumentError,
    decode_receipt,
    encode_receipt,
    legacy_product_code,
    parse_legacy_product_code,
    receipt_to_fns_json,
    receipt_to_tags,
)
from protocols.documents.model import Company, Item, Marking, Payments, Receipt
from protocols.tlv import decode_document, encode_document
from protocols.tlv.enums import FfdVersion, VatRate
from protocols.validation import validate
from tests.protocols.receipts import receipts


def without_scanned(receipt: Receipt) -> Receipt:
    """The scanned marking code is not a receipt tag, so it does not come back from the ФН."""
    items = tuple(
        attrs.evolve(i, marking=attrs.evolve(i.marking, scanned=None)) if i.marking else i
        for i in receipt.items
    )
    return attrs.evolve(receipt, items=items)


@settings(max_examples=200, deadline=None)
@given(receipts())
def test_every_kind_validates_encodes_decodes_and_compares_equal(receipt: Receipt) -> None:
    assert validate(receipt, today=datetime(2026, 11, 28).date()) == []
    wire = encode_receipt(receipt)
    back = decode_receipt(wire)
    assert back.receipt == without_scanned(receipt)
    assert back.document.wire == wire
    assert back.fiscal is None  # not signed yet: the ФН adds 1040, 1077 …


@settings(max_examples=100, deadline=None)
@given(receipts())
def test_ffd_105_either_refuses_with_a_path_or_round_trips(receipt: Receipt) -> None:
    try:
        wire = encode_receipt(receipt, FfdVersion.V1_05)
    except DocumentError as exc:
        assert exc.path
        return
    back = decode_receipt(wire).receipt
    expected = attrs.evolve(
        receipt, items=tuple(attrs.evolve(i, measure=None) for i in receipt.items)
    )
    assert back == expected


def coffee(**changes: Any) -> Receipt:
    item = Item(
        name="Кофе",
        price=25000,
        quantity=Decimal("2"),
        sum=50000,
        vat=VatRate.VAT22,
        vat_sum=9016,
        payment_method=4,
        payment_subject=1,
    )
    receipt = Receipt(
        operation=1,
        items=(item,),
        payments=Payments(electronic=50000),
        company=Company(inn="7707083893", tax_system=1, place="shop.example"),
        total=50000,
    )
    return attrs.evolve(receipt, **changes)


def test_a_fiscalized_document_gives_its_fiscal_header() -> None:
    tags = receipt_to_tags(coffee())
    tags.update(
        {
            1037: "0000000001061875",
            1041: "9999078902003988",
            1040: 87,
            1012: datetime(2026, 11, 28, 12, 30),
            1038: 14,
            1042: 1,
            1077: bytes.fromhex("31046629765f"),
        }
    )
    back = decode_receipt(encode_document(3, tags))
    assert back.receipt == coffee()
    assert back.fiscal is not None
    assert (back.fiscal.fd_number, back.fiscal.shift_number, back.fiscal.receipt_number) == (
        87,
        14,
        1,
    )
    assert back.fiscal.registration_number == "0000000001061875"
    assert back.fiscal.fiscal_sign == bytes.fromhex("31046629765f")


def test_new_vat_rates_get_the_1115_block_and_old_ones_1102_1107() -> None:
    tags = receipt_to_tags(coffee())
    assert tags[1115] == {1119: [{1199: 11, 1120: 9016}]}
    ten = attrs.evolve(coffee().items[0], vat=VatRate.VAT10, vat_sum=4545)
    tags = receipt_to_tags(coffee(items=(ten,)))
    assert tags[1103] == 4545 and 1115 not in tags


def test_ffd_105_refuses_what_it_cannot_carry_with_the_field_path() -> None:
    with pytest.raises(DocumentError) as caught:
        encode_receipt(coffee(), FfdVersion.V1_05)
    assert caught.value.path == "items[0].vat"
    marked = attrs.evolve(
        coffee().items[0], vat=1, marking=Marking("gs1m", "0104606203090785217xyz")
    )
    with pytest.raises(DocumentError) as caught:
        encode_receipt(coffee(items=(marked,)), FfdVersion.V1_05)
    assert caught.value.path == "items[0].marking"


def test_missing_required_tag_in_a_document_names_its_path() -> None:
    tags = receipt_to_tags(coffee())
    del tags[1059][0][1030]  # type: ignore[index, union-attr]
    with pytest.raises(DocumentError) as caught:
        decode_receipt(encode_document(3, tags))
    assert caught.value.path == "3/1059[0]/1030"


def test_fns_json_uses_the_tax_service_keys() -> None:
    view = receipt_to_fns_json(coffee())
    receipt = view["receipt"]
    assert receipt["totalSum"] == 50000
    assert receipt["items"][0]["nds"] == 11
    assert receipt["ecashTotalSum"] == 50000
    assert decode_document(encode_receipt(coffee())).code == 3


def test_g30_ffd_105_product_code_1162() -> None:
    vectors = json.loads((Path(__file__).parents[1] / "vectors" / "ffd_given.json").read_text())
    g30 = next(v for v in vectors if v["id"] == "G30")
    raw = bytes.fromhex(g30["hex"])
    type_code, gtin, serial = parse_legacy_product_code(raw)
    assert (type_code.to_bytes(2, "big").hex(), gtin, serial) == (
        g30["expect"]["type_code"],
        g30["expect"]["gtin"],
        b"",
    )
    assert legacy_product_code(type_code, gtin) == raw
