"""Round trips, fuzzing and the lenient/strict rules of the FFD TLV codec."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from protocols.tlv import (
    DOCUMENT_CODES,
    TAGS,
    FieldType,
    TagMap,
    TagSpec,
    TlvError,
    Width,
    decode,
    decode_document,
    decode_value,
    encode,
    encode_document,
    encode_value,
    to_fns_json,
)
from protocols.tlv.enums import VatRate

CP866_TEXT = (
    "".join(ch for ch in bytes(range(0x20, 0x100)).decode("cp866") if ch != "\x7f") + "\t\n\r"
)
FIELD_TAGS = sorted(tag for tag in TAGS if tag not in DOCUMENT_CODES)
SCALAR_TAGS = [tag for tag in FIELD_TAGS if TAGS[tag].type is not FieldType.STLV]
STLV_TAGS = [tag for tag in FIELD_TAGS if TAGS[tag].type is FieldType.STLV]
EPOCH = datetime(1970, 1, 1)


def text_for(spec: TagSpec) -> st.SearchStrategy[str]:
    if spec.width is Width.EXACT:
        return st.text(CP866_TEXT, min_size=spec.max_length, max_size=spec.max_length)
    return st.text(CP866_TEXT, max_size=min(spec.max_length, 24))


def value_for(spec: TagSpec) -> st.SearchStrategy[Any]:
    kind = spec.type
    if kind is FieldType.BYTE:
        return st.integers(0, 0xFF)
    if kind is FieldType.UINT16:
        return st.integers(0, 0xFFFF)
    if kind is FieldType.UINT32:
        return st.integers(0, 0xFFFF_FFFF)
    if kind is FieldType.VLN:
        return st.integers(0, (1 << (8 * spec.max_length)) - 1)
    if kind is FieldType.FVLN:
        return st.builds(
            lambda m, s: Decimal(m).scaleb(-s),
            st.integers(0, (1 << (8 * (spec.max_length - 1))) - 1),
            st.integers(0, 12),
        )
    if kind is FieldType.UNIXTIME:
        return st.integers(0, 0xFFFF_FFFF).map(lambda s: EPOCH + timedelta(seconds=s))
    if kind is FieldType.STRING:
        return text_for(spec)
    if kind is FieldType.BYTES:
        if spec.width is Width.EXACT:
            return st.binary(min_size=spec.max_length, max_size=spec.max_length)
        return st.binary(max_size=min(spec.max_length, 24))
    raise AssertionError(kind)


def tag_maps(depth: int) -> st.SearchStrategy[TagMap]:
    tags = SCALAR_TAGS + (STLV_TAGS if depth > 0 else [])

    @st.composite
    def build(draw: st.DrawFn) -> TagMap:
        chosen = draw(st.lists(st.sampled_from(tags), unique=True, max_size=6))
        out: TagMap = {}
        for tag in chosen:
            spec = TAGS[tag]
            one = tag_maps(depth - 1) if spec.type is FieldType.STLV else value_for(spec)
            if spec.repeats:
                out[tag] = draw(st.lists(one, min_size=1, max_size=3))
            else:
                out[tag] = draw(one)
        return out

    return build()


def as_decoded(fields: TagMap) -> TagMap:
    """What decoding the encoding of ``fields`` must give: padded strings come back padded."""
    out: TagMap = {}
    for tag, value in fields.items():
        spec = TAGS[tag]
        items = value if isinstance(value, list) else [value]
        done = [
            as_decoded(item)
            if isinstance(item, dict)
            else item.ljust(spec.max_length)
            if isinstance(item, str) and spec.width is Width.PADDED
            else item
            for item in items
        ]
        out[tag] = done if isinstance(value, list) else done[0]
    return out


@st.composite
def documents(draw: st.DrawFn) -> tuple[int, TagMap, bytes]:
    code = draw(st.sampled_from(sorted(DOCUMENT_CODES)))
    fields = draw(tag_maps(2))
    try:
        wire = encode_document(code, fields)
    except TlvError:
        reject()  # the random children outgrew a maximum length: not a valid document
    return code, fields, wire


# --- round trips ----------------------------------------------------------------------------------


TYPE_SPECS = [
    TagSpec(0, kind, length, width, False, "", "", "")
    for kind, length, width in [
        (FieldType.BYTE, 1, None),
        (FieldType.UINT16, 2, None),
        (FieldType.UINT32, 4, None),
        (FieldType.VLN, 6, None),
        (FieldType.VLN, 8, None),
        (FieldType.FVLN, 8, None),
        (FieldType.UNIXTIME, 4, None),
        (FieldType.STRING, 256, None),
        (FieldType.STRING, 16, Width.EXACT),
        (FieldType.BYTES, 32, None),
        (FieldType.BYTES, 6, Width.EXACT),
    ]
]


@pytest.mark.parametrize("spec", TYPE_SPECS, ids=lambda s: f"{s.type.name}-{s.max_length}")
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_every_type_round_trips(spec: TagSpec, data: st.DataObject) -> None:
    value = data.draw(value_for(spec))
    kind, length, width = spec.type, spec.max_length, spec.width
    wire = encode_value(kind, value, max_length=length, width=width)
    back = decode_value(kind, wire, max_length=length, width=width)
    assert back == value
    assert str(back) == str(value)  # an FVLN keeps its scale
    assert encode_value(kind, back, max_length=length, width=width) == wire


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(documents())
def test_whole_documents_round_trip(document: tuple[int, TagMap, bytes]) -> None:
    code, fields, wire = document
    decoded = decode_document(wire)
    assert decoded.code == code
    assert decoded.fields == as_decoded(fields)
    assert decoded.wire == wire
    assert decoded.warnings == ()
    assert encode_document(code, decoded.fields) == wire


# --- fuzzing: parse, or raise TlvError; never anything else, never hang ---------------------------


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=512))
def test_any_bytes_decode_or_raise_tlv_error(data: bytes) -> None:
    try:
        decoded = decode(data)
    except TlvError:
        return
    assert decoded.wire == data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(documents(), st.data())
def test_documents_cut_or_corrupted_decode_or_raise_tlv_error(
    document: tuple[int, TagMap, bytes], data: st.DataObject
) -> None:
    _, _, wire = document
    for cut in range(len(wire)):
        with pytest.raises(TlvError):
            decode_document(wire[:cut])
        with contextlib.suppress(TlvError):
            decode(wire[:cut])
    corrupted = bytearray(wire)
    for _ in range(data.draw(st.integers(1, 8))):
        corrupted[data.draw(st.integers(0, len(wire) - 1))] = data.draw(st.integers(0, 255))
    with contextlib.suppress(TlvError):
        decode(bytes(corrupted))


def test_nesting_is_bounded() -> None:
    wire = encode({1030: "x"})
    for _ in range(40):
        wire = (1059).to_bytes(2, "little") + len(wire).to_bytes(2, "little") + wire
    with pytest.raises(TlvError, match="nesting deeper"):
        decode(wire)


# --- strict where the format is fixed -------------------------------------------------------------


def receipt_with_items(*items: TagMap) -> bytes:
    return encode_document(3, {1054: 1, 1059: list(items)})


def test_value_over_its_maximum_names_the_tag_path() -> None:
    item = encode({1030: "ok"})
    too_long = (1030).to_bytes(2, "little") + (129).to_bytes(2, "little") + b"a" * 129
    items = [item, item, too_long]
    body = b"".join((1059).to_bytes(2, "little") + len(i).to_bytes(2, "little") + i for i in items)
    wire = (3).to_bytes(2, "little") + len(body).to_bytes(2, "little") + body
    with pytest.raises(TlvError) as caught:
        decode_document(wire)
    assert caught.value.path == "3/1059[2]/1030"
    assert "129 bytes" in str(caught.value)


def test_fixed_width_field_longer_than_its_width_is_an_error() -> None:
    wire = (1018).to_bytes(2, "little") + (13).to_bytes(2, "little") + b"7707083893   "
    with pytest.raises(TlvError) as caught:
        decode(wire)
    assert caught.value.path == "1018"


def test_fixed_width_field_shorter_than_its_width_is_accepted_and_encoded_padded() -> None:
    wire = (1018).to_bytes(2, "little") + (10).to_bytes(2, "little") + b"7707083893"
    assert decode(wire).fields == {1018: "7707083893"}
    assert encode({1018: "7707083893"})[4:] == b"7707083893  "


def test_truncated_value_is_an_error() -> None:
    wire = receipt_with_items({1030: "Эспрессо", 1079: 2500})
    with pytest.raises(TlvError, match="truncated"):
        decode(wire[:-1])


def test_integer_of_the_wrong_width_is_an_error() -> None:
    wire = (1040).to_bytes(2, "little") + (3).to_bytes(2, "little") + b"\x01\x00\x00"
    with pytest.raises(TlvError) as caught:
        decode(wire)
    assert caught.value.path == "1040"


def test_control_characters_are_bad_cp866_text() -> None:
    wire = (1030).to_bytes(2, "little") + (3).to_bytes(2, "little") + b"a\x01b"
    with pytest.raises(TlvError, match="control character"):
        decode(wire)


# --- lenient where real registers differ ----------------------------------------------------------


def test_zero_length_vln_is_zero() -> None:
    assert decode(bytes.fromhex("fc030000")).fields == {1020: 0}


def test_non_minimal_fvln_is_accepted() -> None:
    wire = bytes.fromhex("ff030600") + bytes.fromhex("0640420f0000")
    assert decode(wire).fields == {1023: Decimal("1.000000")}


def test_1213_is_two_bytes_in_ffd_12_and_four_before() -> None:
    assert decode(bytes.fromhex("bd040200e803")).fields == {1213: 1000}
    assert decode(bytes.fromhex("bd040400e8030000")).fields == {1213: 1000}
    assert encode({1213: 1000}) == bytes.fromhex("bd040200e803")


def test_inn_with_leading_zeros_is_kept_and_normalised_in_the_fns_view() -> None:
    fields = decode(encode({1018: "007707083893"})).fields
    assert fields == {1018: "007707083893"}
    assert to_fns_json(fields) == {"userInn": "7707083893"}
    assert to_fns_json({1018: "500100732259"}) == {"userInn": "500100732259"}


def test_unknown_tags_are_kept_raw_and_re_emitted() -> None:
    wire = bytes.fromhex("39300300010203") + encode({1020: 100})
    decoded = decode(wire)
    assert decoded.fields == {12345: b"\x01\x02\x03", 1020: 100}
    assert len(decoded.warnings) == 1 and "unknown" in decoded.warnings[0].message
    assert encode(decoded.fields) == wire


# --- CP866 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "wire"),
    [("Ёлка", b"\xf0\xab\xaa\xa0"), ("ёж", b"\xf1\xa6"), ("№5", b"\xfc5")],
)
def test_cp866_yo_and_numero(text: str, wire: bytes) -> None:
    assert encode({1030: text})[4:] == wire
    assert decode(encode({1030: text})).fields == {1030: text}


@pytest.mark.parametrize("char", ["€", "é", "“", "😀", "\u0301"])
def test_characters_outside_cp866_are_errors_with_the_path(char: str) -> None:
    with pytest.raises(TlvError) as caught:
        encode_document(3, {1059: [{1030: "Кофе"}, {1030: f"Чай {char}"}]})
    assert caught.value.path == "3/1059[1]/1030"
    assert char in str(caught.value)


# --- strict encoding ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({1020: 1 << 48}, "more than the 6 allowed"),
        ({1020: -1}, "negative"),
        ({1020: 19.9}, "expected an integer"),
        ({1020: "1990"}, "expected an integer"),
        ({1020: True}, "expected an integer"),
        ({1023: 1.5}, "expected a Decimal"),
        ({1023: Decimal("-1")}, "non-negative"),
        ({1012: datetime(2026, 1, 1, tzinfo=UTC)}, "naive"),
        ({1041: "123"}, "exactly 16"),
        ({1077: b"\x00" * 5}, "exactly 6"),
        ({1059: "not a map"}, "mapping"),
        ({70000: b""}, "tag 70000"),
        ({12345: "text"}, "raw bytes"),
    ],
)
def test_encode_rejects_with_a_reason(fields: dict[int, object], message: str) -> None:
    with pytest.raises(TlvError, match=message):
        encode(fields)


def test_encode_pads_registration_number_and_emits_zero_as_one_byte() -> None:
    wire = encode({1037: "0000000001061875", 1031: 0})
    assert wire == bytes.fromhex("0d041400") + b"0000000001061875    " + bytes.fromhex("0704010000")


def test_encode_takes_int_enums_as_their_values() -> None:
    assert encode({1199: VatRate.VAT22}) == encode({1199: 11}) == bytes.fromhex("af0401000b")
