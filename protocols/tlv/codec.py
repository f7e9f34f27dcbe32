"""Decode and encode FFD TLV (формат фискальных документов): ``TAG u16 LE | LEN u16 LE | VALUE``.

Decoding is lenient where real registers differ and strict where the format is fixed:

- accepted: a zero-length VLN (= 0), a non-minimal VLN or FVLN (trailing zero bytes, any number
  of decimal places), a fixed-width string shorter than its width (10-digit INNs unpadded), tags
  in any order, a 1213 of 4 bytes (FFD ≤ 1.1) or 2 (FFD 1.2), and unknown tags, kept as raw
  bytes with a warning; a tag that the dictionary says does not repeat but does is kept as a
  list, with a warning;
- rejected with :class:`TlvError`, naming the tag path (``3/1059[2]/1030``, indexes from 0): a
  value longer than its maximum, truncated data, a fixed-width field longer than its width, an
  integer of the wrong width, and text with control characters (every byte decodes as CP866, so
  control characters other than TAB, LF and CR are what "bad CP866" means on input).

Encoding is strict and canonical: minimal VLN (zero as one ``00`` byte, as real registers and
javapos send it, because some OFDs are suspected to reject an empty value), FVLN with the scale
the Decimal carries, fixed widths padded with spaces, tags in the caller's order. A signed
document is never re-encoded: :attr:`FiscalDocument.wire` is the exact bytes that were decoded.

Speed: one pass over offsets into a single bytes buffer, with a decode plan per tag computed
once from the dictionary. A clean input (every tag known, every value well formed, no unexpected
repeat: nearly every document a register sends) takes a fast path with the value decoders
inlined and string values sliced from one CP866 decode of the whole buffer; anything else is
decoded again by the checked decoder, which alone reports errors and warnings, building tag
paths only then. Value bytes are sliced from the bytes buffer rather than through a memoryview:
for values of a few bytes a bytes slice is the cheaper of the two (measured here: 209 ns against
235 ns for a 4-byte integer).

Values: int (BYTE, UINT16, UINT32, VLN), :class:`~decimal.Decimal` (FVLN), str (STRING), a naive
:class:`~datetime.datetime` of the register's local wall-clock time (UNIXTIME), bytes (BYTES and
unknown tags), and a ``dict`` keyed by tag (STLV). Repeatable tags are always lists.
"""

from __future__ import annotations

import codecs
import encodings.cp866
import re
import struct
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TypeAlias

import attrs

from protocols.errors import ProtocolError
from protocols.tlv.dictionary import TAGS
from protocols.tlv.types import FieldType, TagSpec, Width

Scalar: TypeAlias = int | Decimal | str | datetime | bytes
TagMap: TypeAlias = "dict[int, FieldValue]"
FieldValue: TypeAlias = "Scalar | TagMap | list[Scalar | TagMap]"

#: The outer tags of whole fiscal documents (коды фискальных документов).
DOCUMENT_CODES: frozenset[int] = frozenset({1, 11, 2, 21, 3, 31, 4, 41, 5, 6, 7, 81, 82, 83, 84})

#: STLV nesting deeper than this is rejected; real documents nest at most 4 levels.
MAX_DEPTH = 8

_EPOCH = datetime(1970, 1, 1)
_HEADER = struct.Struct("<HH")
_BAD_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class TlvError(ProtocolError):
    """A TLV that cannot be decoded or a value that cannot be encoded; ``path`` names the tag."""


@attrs.frozen(slots=True)
class DecodeWarning:
    """Something accepted leniently: an unknown tag, an unexpected repeat."""

    path: str
    message: str


@attrs.frozen(slots=True)
class Decoded:
    """A decoded TLV list: the tags view, the exact input bytes and any warnings."""

    fields: TagMap
    wire: bytes
    warnings: tuple[DecodeWarning, ...] = ()


@attrs.frozen(slots=True)
class FiscalDocument:
    """One fiscal document (фискальный документ): its code, its tags and its bytes as received.

    ``wire`` is what the ФН signed; forward and store it, never a re-encoding of ``fields``.
    """

    code: int
    fields: TagMap
    wire: bytes
    warnings: tuple[DecodeWarning, ...] = ()


class _Bad(Exception):
    """A value problem, raised inside a value decoder and given its path by the caller."""


# --- value decoders: (buffer, start, end) -> value ----------------------------------------------


def _dec_byte(buf: bytes, a: int, b: int) -> int:
    if b - a != 1:
        raise _Bad(f"a BYTE must be 1 byte, got {b - a}")
    return buf[a]


def _dec_uint(buf: bytes, a: int, b: int) -> int:
    return int.from_bytes(buf[a:b], "little")


def _dec_fvln(buf: bytes, a: int, b: int) -> Decimal:
    if b == a:
        raise _Bad("an FVLN needs at least its decimal-places byte")
    return Decimal(int.from_bytes(buf[a + 1 : b], "little")).scaleb(-buf[a])


def _dec_time(buf: bytes, a: int, b: int) -> datetime:
    if b - a != 4:
        raise _Bad(f"a UNIXTIME must be 4 bytes, got {b - a}")
    return _EPOCH + timedelta(seconds=int.from_bytes(buf[a:b], "little"))


def _dec_string(buf: bytes, a: int, b: int) -> str:
    text = buf[a:b].decode("cp866")
    bad = _BAD_TEXT.search(text)
    if bad is not None:
        raise _Bad(f"control character {ord(bad.group()):#04x} at offset {bad.start()} in text")
    return text


def _dec_bytes(buf: bytes, a: int, b: int) -> bytes:
    return buf[a:b]


_Decoder: TypeAlias = Callable[[bytes, int, int], Scalar]

_VALUE_DECODERS: dict[FieldType, _Decoder] = {
    FieldType.BYTE: _dec_byte,
    FieldType.UINT16: _dec_uint,
    FieldType.UINT32: _dec_uint,
    FieldType.VLN: _dec_uint,
    FieldType.FVLN: _dec_fvln,
    FieldType.UNIXTIME: _dec_time,
    FieldType.STRING: _dec_string,
    FieldType.BYTES: _dec_bytes,
}

_NATURAL_WIDTH = {FieldType.UINT16: 2, FieldType.UINT32: 4}


_Plan: TypeAlias = "tuple[_Decoder | None, int, int, bool]"


def _plan(spec: TagSpec) -> _Plan:
    """(decoder or None, min_length, max_length, repeats) for the hot loop."""
    if spec.type is FieldType.STLV:
        return None, 0, spec.max_length, spec.repeats
    min_length = _NATURAL_WIDTH.get(spec.type, 0)
    if spec.width is Width.EXACT:  # bytes and text alike (1041, 1309 …): the encoder's rule too
        min_length = spec.max_length
    return _VALUE_DECODERS[spec.type], min_length, spec.max_length, spec.repeats


_PLANS: dict[int, _Plan] = {tag: _plan(spec) for tag, spec in TAGS.items()}


# --- decoding -------------------------------------------------------------------------------------


def _step(tag: int, out: TagMap, repeats: bool) -> str:
    """This element's step in a tag path: ``1030``, or ``1059[2]`` for the third 1059."""
    existing = out.get(tag)
    if isinstance(existing, list):
        return f"{tag}[{len(existing)}]"
    return f"{tag}[0]" if repeats else str(tag)


def _length_problem(length: int, min_length: int, max_length: int) -> str:
    if min_length == max_length:
        expected = f"exactly {max_length}"
    elif min_length:
        expected = f"{min_length}..{max_length}"
    else:
        expected = f"at most {max_length}"
    return f"value of {length} bytes, expected {expected}"


def _decode_list(
    buf: bytes, start: int, end: int, depth: int, warnings: list[DecodeWarning]
) -> TagMap:
    """Decode the TLVs in ``buf[start:end]``.

    Paths in errors and warnings are relative to this list; each enclosing STLV prefixes its
    own step on the way out, so the success path builds no path strings at all.
    """
    out: TagMap = {}
    plans = _PLANS
    unpack = _HEADER.unpack_from
    pos = start
    while pos < end:
        if end - pos < 4:
            raise TlvError(f"truncated TLV header: {end - pos} of 4 bytes")
        tag, length = unpack(buf, pos)
        a = pos + 4
        b = a + length
        plan = plans.get(tag)
        repeats = plan is not None and plan[3]
        if b > end:
            raise TlvError(
                f"truncated value: {length} bytes declared, {end - a} present",
                _step(tag, out, repeats),
            )
        value: Scalar | TagMap
        if plan is None:
            value = buf[a:b]
            warnings.append(DecodeWarning(_step(tag, out, False), "unknown tag kept as raw bytes"))
        else:
            decoder, min_length, max_length, _ = plan
            if length > max_length or length < min_length:
                raise TlvError(
                    _length_problem(length, min_length, max_length), _step(tag, out, repeats)
                )
            if decoder is not None:
                try:
                    value = decoder(buf, a, b)
                except _Bad as exc:
                    raise TlvError(str(exc), _step(tag, out, repeats)) from None
            else:
                value = _decode_child(buf, a, b, depth, warnings, tag, out, repeats)
        existing = out.get(tag)
        if existing is None:
            out[tag] = [value] if repeats else value
        elif isinstance(existing, list):
            if not repeats:
                warnings.append(DecodeWarning(_step(tag, out, False), "tag repeated; kept as list"))
            existing.append(value)
        else:
            warnings.append(DecodeWarning(f"{tag}[1]", "tag repeated; kept as a list"))
            out[tag] = [existing, value]
        pos = b
    return out


def _decode_child(
    buf: bytes,
    a: int,
    b: int,
    depth: int,
    warnings: list[DecodeWarning],
    tag: int,
    parent: TagMap,
    repeats: bool,
) -> TagMap:
    """Decode an STLV value; what goes wrong inside gets this element's step as a prefix."""
    if depth >= MAX_DEPTH:
        raise TlvError(f"nesting deeper than {MAX_DEPTH} levels", _step(tag, parent, repeats))
    seen = len(warnings)
    try:
        value = _decode_list(buf, a, b, depth + 1, warnings)
    except TlvError as exc:
        step = _step(tag, parent, repeats)
        raise TlvError(exc.reason, f"{step}/{exc.path}" if exc.path else step) from None
    if len(warnings) > seen:
        step = _step(tag, parent, repeats)
        for i in range(seen, len(warnings)):
            warnings[i] = DecodeWarning(f"{step}/{warnings[i].path}", warnings[i].message)
    return value


# --- the fast path -------------------------------------------------------------------------------
# A clean document (known tags, lengths in range, good text, no unexpected repeat) is decoded by
# one tight loop with the value decoders inlined: a function call per value was a third of the
# time. Anything unusual raises _Slow, and the whole input is decoded again by _decode_list above,
# so every error and warning, with its tag path, comes from that one checked decoder.

_K_STLV, _K_BYTE, _K_UINT, _K_FVLN, _K_TIME, _K_STRING, _K_BYTES = range(7)
_KINDS = {
    FieldType.STLV: _K_STLV,
    FieldType.BYTE: _K_BYTE,
    FieldType.UINT16: _K_UINT,
    FieldType.UINT32: _K_UINT,
    FieldType.VLN: _K_UINT,
    FieldType.FVLN: _K_FVLN,
    FieldType.UNIXTIME: _K_TIME,
    FieldType.STRING: _K_STRING,
    FieldType.BYTES: _K_BYTES,
}
_FastPlan: TypeAlias = "tuple[int, int, int, bool]"
#: The fast path's least lengths also cover what the value decoders check themselves.
_FAST_MIN_LENGTH = {FieldType.BYTE: 1, FieldType.FVLN: 1, FieldType.UNIXTIME: 4}
#: A tag not in the dictionary: no length fits, so the fast path declines it.
_UNKNOWN_FAST: _FastPlan = (_K_BYTES, 0x10000, 0, False)


def _fast_plans() -> list[_FastPlan]:
    """(kind, min_length, max_length, repeats) indexed by tag: a list index beats a dict get."""
    plans = [_UNKNOWN_FAST] * 0x10000
    for tag, (_, min_length, max_length, repeats) in _PLANS.items():
        kind = TAGS[tag].type
        least = max(min_length, _FAST_MIN_LENGTH.get(kind, 0))
        plans[tag] = (_KINDS[kind], least, max_length, repeats)
    return plans


_FAST_PLANS = _fast_plans()
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_CP866_TABLE = encodings.cp866.decoding_table


class _Slow(Exception):
    """The fast path met something it leaves to the checked decoder."""


def _fast_list(
    buf: bytes,
    text: str,
    start: int,
    end: int,
    depth: int,
    # bound once here rather than looked up on every call: a receipt has a call per item
    plans: list[_FastPlan] = _FAST_PLANS,
    unpack: Callable[[bytes, int], tuple[int, int]] = _HEADER.unpack_from,
    u16: Callable[[bytes, int], tuple[int]] = _U16.unpack_from,
    u32: Callable[[bytes, int], tuple[int]] = _U32.unpack_from,
    bad_text: Callable[[str], object] = _BAD_TEXT.search,
) -> TagMap:
    """Decode a clean TLV list in ``buf[start:end]``, or raise :class:`_Slow`.

    ``text`` is all of ``buf`` decoded as CP866, one character a byte: a string value is a
    slice of it, which is cheaper than a decode call per string.
    """
    out: TagMap = {}
    pos = start
    while pos < end:
        tag, length = unpack(buf, pos)
        a = pos + 4
        pos = a + length
        kind, min_length, max_length, repeats = plans[tag]
        if length > max_length or length < min_length:
            raise _Slow  # also every tag not in the dictionary: see _UNKNOWN_FAST
        value: Scalar | TagMap
        if kind == _K_BYTE:
            value = buf[a]
        elif kind == _K_UINT:
            if length == 2:
                value = u16(buf, a)[0]
            elif length == 1:
                value = buf[a]
            elif length == 4:
                value = u32(buf, a)[0]
            else:
                value = int.from_bytes(buf[a:pos], "little")
        elif kind == _K_STRING:
            value = text[a:pos]
            # isprintable() is false for TAB, LF, CR and U+00A0 too: those take the exact check
            if not value.isprintable() and bad_text(value) is not None:
                raise _Slow
        elif kind == _K_STLV:
            if depth >= MAX_DEPTH:
                raise _Slow
            value = _fast_list(buf, text, a, pos, depth + 1)
        elif kind == _K_FVLN:
            value = Decimal(int.from_bytes(buf[a + 1 : pos], "little")).scaleb(-buf[a])
        elif kind == _K_TIME:
            if length != 4:
                raise _Slow
            value = _EPOCH + timedelta(seconds=u32(buf, a)[0])
        else:
            value = buf[a:pos]
        if repeats:
            existing = out.get(tag)
            if existing is None:
                out[tag] = [value]
            else:
                existing.append(value)  # type: ignore[union-attr]
        elif tag in out:
            raise _Slow
        else:
            out[tag] = value
    if pos != end:
        raise _Slow  # the last value ran past the end: checked here, once, not per element
    return out


def _fast_decode(wire: bytes) -> TagMap:
    """The fast path over a whole input.

    It declines with :class:`_Slow`, or with :class:`struct.error` or :class:`IndexError` when a
    value ran past the end of the input: that is found once a list ends, not per element.
    """
    text = codecs.charmap_decode(wire, None, _CP866_TABLE)[0]
    return _fast_list(wire, text, 0, len(wire), 0)


def _decode_fields(wire: bytes) -> tuple[TagMap, tuple[DecodeWarning, ...]]:
    """The fast path, or the checked decoder when the fast path declines."""
    try:
        return _fast_decode(wire), ()
    except (_Slow, struct.error, IndexError):
        warnings: list[DecodeWarning] = []
        fields = _decode_list(wire, 0, len(wire), 0, warnings)
        return fields, tuple(warnings)


def decode(data: bytes | bytearray | memoryview) -> Decoded:
    """Decode a list of TLVs: a whole document (one outer tag) or a fragment (an STLV value)."""
    wire = bytes(data)
    fields, warnings = _decode_fields(wire)
    return Decoded(fields, wire, warnings)


def decode_document(data: bytes | bytearray | memoryview) -> FiscalDocument:
    """Decode exactly one fiscal document: a single TLV whose tag is a document code."""
    wire = bytes(data)
    if len(wire) < 4:
        raise TlvError(f"a document needs a 4-byte TLV header, got {len(wire)} bytes")
    code, length = _HEADER.unpack_from(wire, 0)
    if code not in DOCUMENT_CODES:
        raise TlvError(f"tag {code} is not a fiscal document code", str(code))
    if 4 + length != len(wire):
        raise TlvError(
            f"document declares {length} value bytes but {len(wire) - 4} follow the header",
            str(code),
        )
    fields, warnings = _decode_fields(wire)
    body = fields[code]
    assert isinstance(body, dict)  # document codes are STLV in the dictionary
    return FiscalDocument(code, body, wire, warnings)


# --- encoding -------------------------------------------------------------------------------------
# Value encoders take (spec, value) and raise _Bad; the list encoder adds the tag path, so the
# success path builds no path strings.


def _int(value: object) -> int:
    if type(value) is not int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _Bad(f"expected an integer, got {type(value).__name__}")
        value = int(value)  # an IntEnum such as VatRate
    if value < 0:
        raise _Bad(f"negative value {value}")
    return value


def _enc_byte(spec: TagSpec, value: object) -> bytes:
    number = _int(value)
    if number > 0xFF:
        raise _Bad(f"{number} does not fit in 1 byte")
    return _BYTES[number]


def _enc_uint(spec: TagSpec, value: object) -> bytes:
    number = _int(value)
    width = _NATURAL_WIDTH[spec.type]
    if number >> (8 * width) and spec.max_length > width:
        width = spec.max_length  # 1213: U16 in FFD 1.2, U32 before; what was read must encode
    if number >> (8 * width):
        raise _Bad(f"{number} does not fit in {width} bytes")
    return number.to_bytes(width, "little")


def _enc_vln(spec: TagSpec, value: object) -> bytes:
    number = _int(value)
    raw = number.to_bytes((number.bit_length() + 7) // 8 or 1, "little")
    if len(raw) > spec.max_length:
        raise _Bad(f"{number} needs {len(raw)} bytes, more than the {spec.max_length} allowed")
    return raw


def _enc_fvln(spec: TagSpec, value: object) -> bytes:
    if type(value) is int:
        value = Decimal(value)
    if not isinstance(value, Decimal):
        raise _Bad(f"expected a Decimal, got {type(value).__name__}")
    if not value.is_finite() or value.is_signed():
        raise _Bad(f"{value} is not a non-negative finite number")
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    mantissa = int("".join(map(str, digits)))
    if exponent > 0:
        mantissa *= 10**exponent
        exponent = 0
    if -exponent > 0xFF:
        raise _Bad(f"{value} has more than 255 decimal places")
    raw = _BYTES[-exponent] + mantissa.to_bytes((mantissa.bit_length() + 7) // 8 or 1, "little")
    if len(raw) > spec.max_length:
        raise _Bad(f"{value} needs {len(raw)} bytes, more than the {spec.max_length} allowed")
    return raw


def _enc_time(spec: TagSpec, value: object) -> bytes:
    if not isinstance(value, datetime):
        raise _Bad(f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is not None:
        raise _Bad("UNIXTIME is the register's local wall-clock time: give a naive datetime")
    seconds = (value - _EPOCH) // _SECOND
    if not 0 <= seconds <= 0xFFFF_FFFF:
        raise _Bad(f"{value} is outside the UNIXTIME range")
    return seconds.to_bytes(4, "little")


def _enc_string(spec: TagSpec, value: object) -> bytes:
    if not isinstance(value, str):
        raise _Bad(f"expected text, got {type(value).__name__}")
    bad = _BAD_TEXT.search(value)
    if bad is not None:
        raise _Bad(f"control character {ord(bad.group()):#04x} at offset {bad.start()}")
    try:
        raw = value.encode("cp866")
    except UnicodeEncodeError as exc:
        char = value[exc.start]
        raise _Bad(
            f"character {char!r} (U+{ord(char):04X}) at offset {exc.start} is not in CP866"
        ) from None
    return _fit(spec, raw, b" ")


def _enc_bytes(spec: TagSpec, value: object) -> bytes:
    if not isinstance(value, bytes | bytearray):
        raise _Bad(f"expected bytes, got {type(value).__name__}")
    return _fit(spec, bytes(value), None)


def _fit(spec: TagSpec, raw: bytes, pad: bytes | None) -> bytes:
    width = spec.max_length
    if len(raw) > width:
        raise _Bad(f"{len(raw)} bytes, more than the {width} allowed")
    if spec.width is None:
        return raw
    if pad is not None and spec.width is Width.PADDED:
        return raw.ljust(width, pad)
    if len(raw) != width:
        raise _Bad(f"{len(raw)} bytes, the field is exactly {width}")
    return raw


def _enc_stlv(spec: TagSpec, value: object) -> bytes:
    if not isinstance(value, Mapping):
        raise _Bad(f"expected a mapping of tags, got {type(value).__name__}")
    raw = _encode_list(value)
    if len(raw) > spec.max_length:
        raise _Bad(f"{len(raw)} bytes, more than the {spec.max_length} allowed")
    return raw


_BYTES = [bytes((i,)) for i in range(256)]
_SECOND = timedelta(seconds=1)
_VALUE_ENCODERS: dict[FieldType, Callable[[TagSpec, object], bytes]] = {
    FieldType.BYTE: _enc_byte,
    FieldType.UINT16: _enc_uint,
    FieldType.UINT32: _enc_uint,
    FieldType.VLN: _enc_vln,
    FieldType.FVLN: _enc_fvln,
    FieldType.UNIXTIME: _enc_time,
    FieldType.STRING: _enc_string,
    FieldType.BYTES: _enc_bytes,
    FieldType.STLV: _enc_stlv,
}
_ENCODE_PLANS = {tag: (spec, _VALUE_ENCODERS[spec.type]) for tag, spec in TAGS.items()}


def _enc_unknown(spec: TagSpec, value: object) -> bytes:
    if not isinstance(value, bytes | bytearray):
        raise _Bad("unknown tag: give its value as raw bytes")
    return bytes(value)


_Encoder: TypeAlias = Callable[[TagSpec, object], bytes]
_UNKNOWN_PLAN: tuple[TagSpec, _Encoder] = (
    TagSpec(0, FieldType.BYTES, 0xFFFF, None, False, "", "", ""),
    _enc_unknown,
)


def _encode_list(fields: Mapping[int, object]) -> bytes:
    parts: list[bytes] = []
    append = parts.append
    pack = _HEADER.pack
    plans = _ENCODE_PLANS
    for tag, value in fields.items():
        plan = plans.get(tag)
        if plan is None:
            if type(tag) is not int or not 0 <= tag <= 0xFFFF:
                raise TlvError(f"tag {tag!r} is not a number from 0 to 65535")
            plan = _UNKNOWN_PLAN
        spec, encoder = plan
        items = value if isinstance(value, list | tuple) else (value,)
        for index, item in enumerate(items):
            try:
                raw = encoder(spec, item)
            except _Bad as exc:
                raise TlvError(str(exc), _encode_step(tag, value, index)) from None
            except TlvError as exc:
                step = _encode_step(tag, value, index)
                raise TlvError(exc.reason, f"{step}/{exc.path}" if exc.path else step) from None
            if len(raw) > 0xFFFF:
                raise TlvError(
                    f"{len(raw)} bytes do not fit a TLV length", _encode_step(tag, value, index)
                )
            append(pack(tag, len(raw)))
            append(raw)
    return b"".join(parts)


def _encode_step(tag: int, value: object, index: int) -> str:
    return f"{tag}[{index}]" if isinstance(value, list | tuple) else str(tag)


def encode(fields: Mapping[int, object]) -> bytes:
    """Encode a mapping of tags to values as a TLV list, in the mapping's order.

    A list or tuple value emits the tag once per element, in order.
    """
    return _encode_list(fields)


def encode_document(code: int, fields: Mapping[int, object]) -> bytes:
    """Encode one fiscal document: the document code as the outer tag around ``fields``."""
    if code not in DOCUMENT_CODES:
        raise TlvError(f"tag {code} is not a fiscal document code", str(code))
    return _encode_list({code: fields})


# --- single values --------------------------------------------------------------------------------


def _bare_spec(kind: FieldType, max_length: int | None, width: Width | None) -> TagSpec:
    natural = {FieldType.BYTE: 1, FieldType.UINT16: 2, FieldType.UINT32: 4, FieldType.UNIXTIME: 4}
    length = max_length if max_length is not None else natural.get(kind, 0xFFFF)
    return TagSpec(0, kind, length, width, False, "", "", "")


def decode_value(
    kind: FieldType,
    data: bytes | bytearray | memoryview,
    *,
    max_length: int | None = None,
    width: Width | None = None,
) -> Scalar:
    """Decode one value of an FFD type, without a TLV header (e.g. a field the ФН returns)."""
    if kind is FieldType.STLV:
        raise TlvError("decode an STLV value with decode()")
    raw = bytes(data)
    decoder, min_length, limit, _ = _plan(_bare_spec(kind, max_length, width))
    assert decoder is not None
    if not min_length <= len(raw) <= limit:
        raise TlvError(f"value of {len(raw)} bytes, expected {min_length}..{limit}")
    try:
        return decoder(raw, 0, len(raw))
    except _Bad as exc:
        raise TlvError(str(exc)) from None


def encode_value(
    kind: FieldType,
    value: object,
    *,
    max_length: int | None = None,
    width: Width | None = None,
) -> bytes:
    """Encode one value of an FFD type canonically, without a TLV header."""
    try:
        return _VALUE_ENCODERS[kind](_bare_spec(kind, max_length, width), value)
    except _Bad as exc:
        raise TlvError(str(exc)) from None
