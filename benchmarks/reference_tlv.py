"""A straightforward FFD TLV decoder, written the way most drivers write one.

It re-slices the remaining buffer after every element, builds a dict per element and converts
through strings, as yandex/ofd's ``STLV.unpack`` does. It exists only so that the benchmark can
put Kassa's codec beside it on the same documents; nothing else imports it.
"""

from __future__ import annotations

import struct
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from protocols.tlv.dictionary import TAGS
from protocols.tlv.types import FieldType


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
        return datetime(1970, 1, 1) + timedelta(seconds=struct.unpack("<I", data)[0])
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
