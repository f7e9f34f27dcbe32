"""The TLV decoder's fast path gives exactly the checked decoder's answers, or declines.

:func:`protocols.tlv.decode` first tries an inlined fast path and, when it declines, decodes
again with the checked decoder that reports errors and warnings. These properties hold the two
together: on any input the fast path either declines or returns what the checked decoder returns
(same tags, order, types and Decimal scales) with no warnings; on clean documents it must not
decline, so the properties test the path the benchmark measures; and signed bytes still round
trip exactly.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.documents.ffd import DocumentError, FfdVersion, encode_receipt
from protocols.documents.model import Receipt
from protocols.tlv import DecodeWarning, TagMap, TlvError, decode, decode_document, encode
from protocols.tlv.codec import _decode_list, _fast_decode, _Slow
from tests.protocols.receipts import receipts
from tests.protocols.test_tlv_properties import documents

VECTORS = json.loads((Path(__file__).parent.parent / "vectors" / "ffd_given.json").read_text())
TLV_VECTORS = [v for v in VECTORS if v["kind"] in ("tlv-fragment", "tlv-document")]

Checked = tuple[TagMap, tuple[DecodeWarning, ...]] | tuple[str, str]


def checked(wire: bytes) -> Checked:
    """The checked decoder's answer: fields and warnings, or the error's path and reason."""
    warnings: list[DecodeWarning] = []
    try:
        fields = _decode_list(wire, 0, len(wire), 0, warnings)
    except TlvError as exc:
        return exc.path, exc.reason
    return fields, tuple(warnings)


def fast(wire: bytes) -> TagMap | None:
    """The fast path's answer, or None when it declines."""
    try:
        return _fast_decode(wire)
    except (_Slow, struct.error, IndexError):
        return None


def assert_agree(wire: bytes) -> TagMap | None:
    """The fast path declines or matches the checked decoder; decode() gives the checked answer."""
    expected = checked(wire)
    got = fast(wire)
    if got is not None:
        # repr compares types, key order and Decimal scale, which == alone would not
        assert expected == (got, ())
        assert repr(expected[0]) == repr(got)
    try:
        decoded = decode(wire)
    except TlvError as exc:
        assert (exc.path, exc.reason) == expected
    else:
        assert (decoded.fields, decoded.warnings) == expected
        assert repr(decoded.fields) == repr(expected[0])
        assert decoded.wire == wire
    return got


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(documents())
def test_generated_documents_take_the_fast_path_and_agree(
    document: tuple[int, TagMap, bytes],
) -> None:
    code, _, wire = document
    assert assert_agree(wire) is not None
    decoded = decode_document(wire)
    assert encode({code: decoded.fields}) == wire


@settings(max_examples=50, deadline=None)
@given(receipts())
def test_receipts_take_the_fast_path_and_agree(receipt: Receipt) -> None:
    for ffd in (FfdVersion.V1_2, FfdVersion.V1_05):
        try:
            wire = encode_receipt(receipt, ffd)
        except (DocumentError, TlvError):
            continue  # FFD 1.05 refuses what it has no tags for
        assert assert_agree(wire) is not None
        decoded = decode_document(wire)
        assert decoded.wire == wire
        assert encode({decoded.code: decoded.fields}) == wire


@pytest.mark.parametrize("vector", TLV_VECTORS, ids=lambda v: v["id"])
def test_vectors_agree(vector: dict[str, str]) -> None:
    wire = bytes.fromhex(vector["hex"])
    assert_agree(wire)
    decoded = decode(wire)
    if not decoded.warnings:
        assert encode(decoded.fields) == wire


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=512))
def test_any_bytes_agree(data: bytes) -> None:
    assert_agree(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(documents(), st.data())
def test_corrupted_documents_agree(
    document: tuple[int, TagMap, bytes], data: st.DataObject
) -> None:
    _, _, wire = document
    for cut in range(0, len(wire), 3):
        assert_agree(wire[:cut])
    corrupted = bytearray(wire)
    for _ in range(data.draw(st.integers(1, 8))):
        corrupted[data.draw(st.integers(0, len(wire) - 1))] = data.draw(st.integers(0, 255))
    assert_agree(bytes(corrupted))


@pytest.mark.parametrize(
    ("fields", "takes_fast_path"),
    [
        ({1030: "Кофе\tс молоком\r\n№1 ё"}, True),  # TAB, CR, LF are text: not printable, allowed
        ({1030: "Кофе\xa0латте"}, True),  # U+00A0 (CP866 0xFF) is not printable, but allowed
        ({1059: [{1030: "a"}, {1030: "b"}]}, True),  # a repeatable tag
        ({1030: "a", 9999: b"\x01"}, False),  # an unknown tag warns
    ],
)
def test_what_isprintable_rejects_is_rechecked(fields: TagMap, takes_fast_path: bool) -> None:
    wire = encode(fields)
    assert (assert_agree(wire) is not None) is takes_fast_path


@pytest.mark.parametrize(
    ("wire", "path"),
    [
        (struct.pack("<HH", 1030, 3) + b"a\x01b", "1030"),  # a control character
        (struct.pack("<HHHH", 1059, 4, 1030, 1), "1059[0]/1030"),  # truncated inside an item
        (struct.pack("<HH", 1055, 0), "1055"),  # an empty BYTE
        (struct.pack("<HH", 1012, 3) + b"\x00\x00\x00", "1012"),  # a short UNIXTIME
        (struct.pack("<HHB", 1055, 1, 1) * 2, "1055[1]"),  # a repeat warns, not errs
    ],
)
def test_bad_input_keeps_the_checked_answer(wire: bytes, path: str) -> None:
    assert fast(wire) is None
    expected = checked(wire)
    assert_agree(wire)
    if isinstance(expected[0], str):
        assert expected[0] == path
    else:
        assert [w.path for w in expected[1]] == [path]
