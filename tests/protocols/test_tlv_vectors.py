"""The FFD vectors from real registers and public test suites: tests/vectors/ffd_given.json."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from protocols.crc import crc16_ccitt_false
from protocols.fiscal_sign import marking_control_code, printed_fiscal_sign
from protocols.tlv import (
    TAGS,
    FieldType,
    decode,
    decode_document,
    decode_value,
    encode,
    encode_value,
    to_tags_json,
)

VECTORS = {
    v["id"]: v
    for v in json.loads((Path(__file__).parent.parent / "vectors" / "ffd_given.json").read_text())
}


def assert_matches(actual: Any, expected: Any, tag: int | None = None) -> None:
    """Compare a tags view with a vector's expected facts.

    A scalar ``x`` equals ``[x]`` for a repeatable tag; FVLN strings compare as Decimals.
    """
    if isinstance(expected, dict):
        assert isinstance(actual, dict), actual
        assert set(actual) == set(expected), (set(actual) ^ set(expected), tag)
        for key, value in expected.items():
            assert_matches(actual[key], value, int(key))
        return
    spec = TAGS.get(tag) if tag is not None else None
    if isinstance(actual, list) and not isinstance(expected, list):
        assert spec is not None and spec.repeats and len(actual) == 1, (tag, actual)
        actual = actual[0]
    if isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), (tag, actual)
        for a, e in zip(actual, expected, strict=True):
            assert_matches(a, e, tag)
        return
    if spec is not None and spec.type is FieldType.FVLN:
        assert Decimal(actual) == Decimal(expected), (tag, actual, expected)
    else:
        assert actual == expected, (tag, actual, expected)


FRAGMENTS = [k for k, v in VECTORS.items() if v["kind"] in ("tlv-fragment", "tlv-document")]


@pytest.mark.parametrize("vector_id", FRAGMENTS)
def test_fragment_vectors_decode_to_their_facts(vector_id: str) -> None:
    vector = VECTORS[vector_id]
    wire = bytes.fromhex(vector["hex"])
    decoded = decode(wire)
    expected = {k: v for k, v in vector["expect"].items() if k.isdigit()}
    assert_matches(to_tags_json(decoded.fields), expected)
    assert decoded.wire == wire


def test_fragment_vectors_cover_the_kinds() -> None:
    assert {"G3", "G4", "G5", "G6", "G24", "G25", "G26"} <= set(FRAGMENTS)


def test_g3_registration_report_printed_fiscal_sign() -> None:
    vector = VECTORS["G3"]
    fields = decode(bytes.fromhex(vector["hex"])).fields
    sign = fields[1077]
    assert isinstance(sign, bytes)
    assert printed_fiscal_sign(sign) == vector["expect"]["printed_fiscal_sign"]


def test_g3_is_emitted_byte_for_byte_and_reencodes_in_kkt_order() -> None:
    """The KKT's own order and padding survive a decode → encode of the tag view."""
    wire = bytes.fromhex(VECTORS["G3"]["hex"])
    assert encode(decode(wire).fields) == wire


def test_g25_is_a_whole_document() -> None:
    wire = bytes.fromhex(VECTORS["G25"]["hex"])
    document = decode_document(wire)
    assert document.code == 11
    assert document.fields == {1205: [12, 9]}
    assert document.wire == wire


def test_g2_operator_ack_document_inside_the_container() -> None:
    vector = VECTORS["G2"]
    wire = bytes.fromhex(vector["hex"])
    length = vector["expect"]["container"]["document_length"]
    document = decode_document(wire[32 : 32 + length])
    assert document.code == vector["expect"]["document_type"] == 7
    assert_matches(to_tags_json(document.fields), vector["expect"]["7"])


def test_g21_unknown_tag_666_is_kept_raw_with_a_warning() -> None:
    value = bytes.fromhex(VECTORS["G21"]["hex"])
    wire = bytes.fromhex("9a021600") + value
    decoded = decode(wire)
    assert decoded.fields == {666: value}
    assert [w.path for w in decoded.warnings] == ["666"]
    assert encode(decoded.fields) == wire


# G30 (a 1162 product code) is tested with the receipt model; G27–G29 are checksums.
VALUE_VECTORS = [
    k
    for k, v in VECTORS.items()
    if v["kind"] == "value" and v["expect"].get("type") not in (None, "BYTES")
]


@pytest.mark.parametrize("vector_id", VALUE_VECTORS)
def test_value_vectors(vector_id: str) -> None:
    expect = VECTORS[vector_id]["expect"]
    wire = bytes.fromhex(VECTORS[vector_id]["hex"])
    kind = FieldType[expect["type"]]
    max_length = expect.get("max_length", 8 if kind in (FieldType.VLN, FieldType.FVLN) else None)
    if kind is FieldType.STRING:
        max_length = 256
    value = decode_value(kind, wire, max_length=max_length)
    if kind is FieldType.FVLN:
        assert value == Decimal(expect["value"])
    elif kind is FieldType.UNIXTIME:
        assert isinstance(value, datetime)
        assert value.isoformat() == expect["value"]
        if "seconds" in expect:
            assert (value - datetime(1970, 1, 1)).total_seconds() == expect["seconds"]
    else:
        assert value == expect["value"]
    canonical = encode_value(kind, value, max_length=max_length)
    assert decode_value(kind, canonical, max_length=max_length) == value
    if wire:  # the empty zero VLN (G17) is canonically one 00 byte
        trailing_zeros = kind in (FieldType.VLN, FieldType.FVLN) and wire.endswith(b"\x00")
        if not trailing_zeros:
            assert canonical == wire


def test_g11_padded_fvln_encodes_minimally() -> None:
    wire = bytes.fromhex(VECTORS["G11"]["hex"])
    value = decode_value(FieldType.FVLN, wire, max_length=8)
    assert encode_value(FieldType.FVLN, value, max_length=8) == bytes.fromhex("02d73702")


def test_g17_empty_vln_is_zero_and_encodes_as_one_byte() -> None:
    assert decode_value(FieldType.VLN, b"", max_length=6) == 0
    assert encode_value(FieldType.VLN, 0, max_length=6) == b"\x00"


def test_g27_crc16_ccitt_false() -> None:
    vector = VECTORS["G27"]
    assert crc16_ccitt_false(bytes.fromhex(vector["hex"])) == vector["expect"]["crc16_ccitt_false"]


@pytest.mark.parametrize("vector_id", ["G28", "G29"])
def test_tag_2115_control_code(vector_id: str) -> None:
    vector = VECTORS[vector_id]
    assert marking_control_code(bytes.fromhex(vector["hex"])) == vector["expect"]["2115"]


def test_g9_printed_fiscal_sign() -> None:
    vector = VECTORS["G9"]
    raw = bytes.fromhex(vector["hex"])
    assert printed_fiscal_sign(raw) == vector["expect"]["printed_fiscal_sign"]
