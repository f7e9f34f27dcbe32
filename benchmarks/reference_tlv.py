"""A straightforward FFD TLV decoder and encoder, written the way most drivers write them.

The decoder re-slices the remaining buffer after every element, builds a dict per element and
converts through strings, as yandex/ofd's ``STLV.unpack`` does; the encoder walks the mapping,
packs each value with :mod:`struct` or through its text and appends header and value to a
growing buffer. They exist only so that the benchmark can put Kassa's codec beside them on the
same documents; nothing else imports them, and they check nothing a driver would not.
"""

from __future__ import annotations

import struct
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from protocols.tlv.dictionary import TAGS
from protocols.tlv.types import FieldType, TagSpec, Width

_EPOCH = datetime(1970, 1, 1)


def _value(kind: FieldType, data: bytes) -> Any:
    if kind is FieldType.STLV:
        return reference_decode(data)
    if kind is FieldType.BYTE:
        return struct.unpack("<B", data)[0]
    if kind is FieldType.UINT16:
        return struct.unpack("<H", data)[0]
    if kind is FieldType.UINT32:
        return struct.unpack("<I", data)[0]
    if kind is FieldType.VLN:
        return struct.unpack("<Q", data + b"\x00" * (8 - len(data)))[0]
    if kind is FieldType.FVLN:
        point = data[0]
        mantissa = struct.unpack("<Q", data[1:] + b"\x00" * (9 - len(data)))[0]
        text = str(mantissa).rjust(point + 1, "0")
        return Decimal(text[: len(text) - point] + "." + text[len(text) - point :])
    if kind is FieldType.UNIXTIME:
        return _EPOCH + timedelta(seconds=struct.unpack("<I", data)[0])
    if kind is FieldType.STRING:
        return data.decode("cp866")
    return data


def reference_decode(data: bytes) -> dict[int, Any]:
    """Decode a TLV list into {tag: value or [values]}."""
    result: dict[int, Any] = {}
    while data:
        tag, length = struct.unpack("<HH", data[:4])
        raw = data[4 : 4 + length]
        data = data[4 + length :]
        spec = TAGS.get(tag)
        element = {"tag": tag, "value": _value(spec.type, raw) if spec else raw}
        if spec is not None and spec.repeats:
            result.setdefault(tag, []).append(element["value"])
        else:
            result[tag] = element["value"]
    return result


def _raw(spec: TagSpec, value: Any) -> bytes:
    kind = spec.type
    if kind is FieldType.STLV:
        return reference_encode(value)
    if kind is FieldType.BYTE:
        return struct.pack("<B", value)
    if kind is FieldType.UINT16:
        return struct.pack("<H", value)
    if kind is FieldType.UINT32:
        return struct.pack("<I", value)
    if kind is FieldType.VLN:
        return struct.pack("<Q", value).rstrip(b"\x00") or b"\x00"
    if kind is FieldType.FVLN:
        whole, _, fraction = str(value).partition(".")
        mantissa = struct.pack("<Q", int(whole + fraction)).rstrip(b"\x00") or b"\x00"
        return struct.pack("<B", len(fraction)) + mantissa
    if kind is FieldType.UNIXTIME:
        return struct.pack("<I", int((value - _EPOCH).total_seconds()))
    if kind is FieldType.STRING:
        text: bytes = value.encode("cp866")
        return text.ljust(spec.max_length, b" ") if spec.width is Width.PADDED else text
    return bytes(value)


def reference_encode(fields: dict[int, Any]) -> bytes:
    """Encode {tag: value or [values]} as a TLV list, in the mapping's order."""
    data = bytearray()
    for tag, value in fields.items():
        spec = TAGS.get(tag)
        for item in value if isinstance(value, list) else [value]:
            raw = _raw(spec, item) if spec else bytes(item)
            data += struct.pack("<HH", tag, len(raw)) + raw
    return bytes(data)
