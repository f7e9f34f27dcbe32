"""The two JSON views of a decoded TLV list: by tag number, and FNS-JSON.

The tags view is lossless and is what ``kassa tlv encode`` reads back: keys are tag numbers as
strings, repeatable tags are lists, STLVs are objects, UNIXTIME is ``"YYYY-MM-DDTHH:MM:SS"``,
FVLN a decimal string that keeps its scale, BYTES lowercase hex, text exactly as on the wire.

The FNS-JSON view uses the tax service's key names (ключи ФНС), as OFDs and cloud APIs speak
them: times are Unix seconds of the register's local clock, 1077 is the printed fiscal sign
(ФП), padded INNs and the registration number are trimmed, FVLN is a JSON number, BYTES are
base64 (Kassa's choice: the public FNS-JSON samples carry no binary tags), and an unknown tag
appears as ``"tag<number>"`` with hex bytes. It is for reading, not for encoding: the printed ФП
keeps only 4 of the 6 bytes of 1077.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from protocols.fiscal_sign import printed_fiscal_sign
from protocols.inn import normalise_inn
from protocols.tlv.codec import Scalar, TagMap, TlvError
from protocols.tlv.dictionary import TAGS
from protocols.tlv.types import FieldType, TagSpec, Width

JsonValue = Any  # what json.loads returns: dict, list, str, int, Decimal, bool, None

_EPOCH = datetime(1970, 1, 1)
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
_INN_TAGS = frozenset({1016, 1017, 1018, 1203, 1226, 1228})


# --- the tags view --------------------------------------------------------------------------------


def _scalar_to_json(value: Scalar) -> JsonValue:
    if isinstance(value, datetime):
        return value.strftime(_TIME_FORMAT)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


def to_tags_json(fields: TagMap) -> dict[str, JsonValue]:
    """The lossless view keyed by tag numbers as strings."""
    out: dict[str, JsonValue] = {}
    for tag, value in fields.items():
        if isinstance(value, list):
            out[str(tag)] = [_one_to_json(item) for item in value]
        else:
            out[str(tag)] = _one_to_json(value)
    return out


def _one_to_json(value: Scalar | TagMap) -> JsonValue:
    if isinstance(value, dict):
        return to_tags_json(value)
    return _scalar_to_json(value)


def from_tags_json(obj: JsonValue, parent: str = "") -> TagMap:
    """Read the tags view back into values for :func:`protocols.tlv.encode`.

    JSON numbers must be integers where the type is an integer; a float, a bool or a numeric
    string is an error, never silently coerced. Parse the JSON with ``parse_float=Decimal``.
    """
    if not isinstance(obj, dict):
        raise TlvError(f"expected an object of tags, got {_json_type(obj)}", parent)
    out: TagMap = {}
    for key, raw in obj.items():
        if not (isinstance(key, str) and key.isdigit() and key.isascii()) or int(key) > 0xFFFF:
            raise TlvError(f"key {key!r} is not a tag number", parent)
        tag = int(key)
        spec = TAGS.get(tag)
        if isinstance(raw, list):
            out[tag] = [
                _one_from_json(spec, item, _join(parent, f"{tag}[{i}]"))
                for i, item in enumerate(raw)
            ]
        elif spec is not None and spec.repeats:
            out[tag] = [_one_from_json(spec, raw, _join(parent, f"{tag}[0]"))]
        else:
            out[tag] = _one_from_json(spec, raw, _join(parent, str(tag)))
    return out


def _join(parent: str, step: str) -> str:
    return f"{parent}/{step}" if parent else step


def _json_type(value: JsonValue) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, Decimal | float):
        return "a fractional number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "null"


def _one_from_json(spec: TagSpec | None, raw: JsonValue, path: str) -> Scalar | TagMap:
    if spec is None or spec.type is FieldType.BYTES:
        if not isinstance(raw, str):
            raise TlvError(f"expected hex bytes, got {_json_type(raw)}", path)
        try:
            return bytes.fromhex(raw)
        except ValueError:
            raise TlvError(f"{raw!r} is not hex", path) from None
    kind = spec.type
    if kind is FieldType.STLV:
        return from_tags_json(raw, path)
    if kind is FieldType.STRING:
        if not isinstance(raw, str):
            raise TlvError(f"expected a string, got {_json_type(raw)}", path)
        return raw
    if kind is FieldType.FVLN:
        if isinstance(raw, str | int | Decimal) and not isinstance(raw, bool):
            try:
                number = Decimal(raw)
            except InvalidOperation:
                raise TlvError(f"{raw!r} is not a decimal number", path) from None
            if number.is_finite():
                return number
        raise TlvError(f"expected a decimal string, got {_json_type(raw)}", path)
    if kind is FieldType.UNIXTIME:
        if not isinstance(raw, str):
            raise TlvError(f"expected 'YYYY-MM-DDTHH:MM:SS', got {_json_type(raw)}", path)
        try:
            return datetime.strptime(raw, _TIME_FORMAT)
        except ValueError:
            raise TlvError(f"{raw!r} is not 'YYYY-MM-DDTHH:MM:SS'", path) from None
    if type(raw) is not int:
        raise TlvError(f"expected an integer, got {_json_type(raw)}", path)
    return raw


# --- the FNS-JSON view ----------------------------------------------------------------------------


def to_fns_json(fields: TagMap) -> dict[str, JsonValue]:
    """The FNS-JSON view: tax-service key names, printed ФП, trimmed INNs."""
    out: dict[str, JsonValue] = {}
    for tag, value in fields.items():
        spec = TAGS.get(tag)
        key = spec.fns_key if spec is not None else f"tag{tag}"
        if isinstance(value, list):
            out[key] = [_fns_value(tag, spec, item) for item in value]
        else:
            out[key] = _fns_value(tag, spec, value)
    return out


def _fns_value(tag: int, spec: TagSpec | None, value: Scalar | TagMap) -> JsonValue:
    if isinstance(value, dict):
        return to_fns_json(value)
    if spec is None:
        assert isinstance(value, bytes)
        return value.hex()
    if isinstance(value, datetime):
        return (value - _EPOCH) // timedelta(seconds=1)
    if isinstance(value, bytes):
        if tag == 1077 and len(value) == 6:
            return printed_fiscal_sign(value)
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, str):
        if tag in _INN_TAGS:
            return normalise_inn(value)
        if spec.width is Width.PADDED:
            return value.rstrip(" ")
    return value


# --- JSON text ------------------------------------------------------------------------------------


def dumps(value: JsonValue, indent: int = 2) -> str:
    """JSON text in which a Decimal is written as an exact JSON number, never through float."""
    return "".join(_dump(value, indent, 0))


def _dump(value: JsonValue, indent: int, level: int) -> list[str]:
    if isinstance(value, Decimal):
        return [str(value)]
    pad = "\n" + " " * (indent * (level + 1))
    end = "\n" + " " * (indent * level)
    if isinstance(value, dict):
        if not value:
            return ["{}"]
        parts = ["{"]
        for i, (key, item) in enumerate(value.items()):
            parts.append(("," if i else "") + pad + json.dumps(key, ensure_ascii=False) + ": ")
            parts.extend(_dump(item, indent, level + 1))
        parts.append(end + "}")
        return parts
    if isinstance(value, list):
        if not value:
            return ["[]"]
        parts = ["["]
        for i, item in enumerate(value):
            parts.append(("," if i else "") + pad)
            parts.extend(_dump(item, indent, level + 1))
        parts.append(end + "]")
        return parts
    return [json.dumps(value, ensure_ascii=False)]


def loads(text: str | bytes) -> JsonValue:
    """Parse JSON with fractional numbers as Decimal, so money and quantities never pass float."""
    try:
        return json.loads(text, parse_float=Decimal)
    except (ValueError, RecursionError) as exc:
        raise TlvError(f"not valid JSON: {exc}") from None
