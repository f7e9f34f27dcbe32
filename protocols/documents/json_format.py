"""Kassa's own receipt JSON: the model, field for field, with strict types.

This is the format of the Python API and of ``kassa receipt check`` when the input is neither
ATOL nor KOMTET JSON. Money is integer kopecks and an integer only: cattrs would turn "1.9"
into 1 by default, so every scalar has a strict hook, and a wrong type, an unknown field or a
missing one is an error with its JSON path. Quantities are decimal strings or integers (a JSON
fraction is read as a Decimal, never a float); times are ``"YYYY-MM-DDTHH:MM:SS"``.

The top level is ``{"kind": "receipt" | "correction", ...the Receipt fields}``.
"""

from __future__ import annotations

import functools
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs
import cattrs

from protocols.documents.model import CorrectionReceipt, Receipt
from protocols.errors import ProtocolError

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"


class ReceiptJsonError(ProtocolError):
    """Kassa JSON that does not describe a receipt; ``problems`` lists every path at once."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        path, reason = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(reason + more, path)


def _int(value: Any, _: type) -> int:
    if type(value) is not int:
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _bool(value: Any, _: type) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {type(value).__name__}")
    return value


def _decimal(value: Any, _: type) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise TypeError(f"expected a decimal string, got {type(value).__name__}")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a decimal number") from None
    if not number.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    return number


def _datetime(value: Any, _: type) -> datetime:
    if not isinstance(value, str):
        raise TypeError(f"expected 'YYYY-MM-DDTHH:MM:SS', got {type(value).__name__}")
    return datetime.strptime(value, _TIME_FORMAT)


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True)
    converter.register_structure_hook(int, _int)
    converter.register_structure_hook(str, _str)
    converter.register_structure_hook(bool, _bool)
    converter.register_structure_hook(Decimal, _decimal)
    converter.register_structure_hook(datetime, _datetime)
    converter.register_unstructure_hook(Decimal, str)
    converter.register_unstructure_hook(datetime, lambda t: t.strftime(_TIME_FORMAT))
    return converter


_CONVERTER = _make_converter()
_KINDS: dict[str, type[Receipt]] = {"receipt": Receipt, "correction": CorrectionReceipt}


def receipt_to_json(receipt: Receipt) -> dict[str, Any]:
    """The receipt as Kassa JSON (fields left at their defaults are omitted)."""
    kind = "correction" if isinstance(receipt, CorrectionReceipt) else "receipt"
    return {"kind": kind, **_prune(_CONVERTER.unstructure(receipt), type(receipt))}


_NO_DEFAULT = object()


@functools.cache
def _pruning(cls: type) -> tuple[tuple[str, Any, type | None], ...]:
    """(name, unstructured default or _NO_DEFAULT, attrs class held) of each field of ``cls``.

    Worked out once per class: unstructuring every default on every call cost about half of
    ``receipt_to_json``.
    """
    return tuple(
        (
            field.name,
            _NO_DEFAULT
            if field.default is attrs.NOTHING or isinstance(field.default, attrs.Factory)  # type: ignore[arg-type]
            else _CONVERTER.unstructure(field.default),
            _field_class(field),
        )
        for field in attrs.fields(cls)
    )


def _prune(value: Any, cls: type | None) -> Any:
    """Drop fields equal to their defaults, so the JSON says only what the receipt says."""
    if isinstance(value, dict) and cls is not None and attrs.has(cls):
        out = {}
        for name, default, inner in _pruning(cls):
            item = value[name]
            if default is not _NO_DEFAULT and item == default:
                continue
            out[name] = _prune(item, inner)
        return out
    if isinstance(value, list):
        return [_prune(v, cls) for v in value]
    return value


def _field_class(field: attrs.Attribute[Any]) -> type | None:
    """The attrs class a field holds (directly, optionally, or as a tuple of them)."""
    kind = field.type
    for candidate in getattr(kind, "__args__", ()) or (kind,):
        inner = getattr(candidate, "__args__", None)
        target = inner[0] if inner else candidate
        if isinstance(target, type) and attrs.has(target):
            return target
    return None


def receipt_from_json(obj: Any) -> Receipt:
    """A receipt from Kassa JSON; every problem is reported with its path."""
    if not isinstance(obj, dict):
        raise ReceiptJsonError([("$", "expected an object")])
    kind = obj.get("kind")
    cls = _KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ReceiptJsonError([("kind", "expected 'receipt' or 'correction'")])
    body = {k: v for k, v in obj.items() if k != "kind"}
    try:
        return _CONVERTER.structure(body, cls)
    except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
        raise ReceiptJsonError(_problems(exc)) from None


def _reason(error: BaseException, _: type | None) -> str:
    if isinstance(error, KeyError):
        return "required field is missing"
    return str(error)


def _problems(exc: BaseException) -> list[tuple[str, str]]:
    """(path, reason) pairs from cattrs' nested errors."""
    messages = (
        cattrs.transform_error(exc, format_exception=_reason)
        if isinstance(exc, cattrs.BaseValidationError)
        else [f"{exc} @ $"]
    )
    out = []
    for message in messages:
        reason, _, where = message.rpartition(" @ ")
        path = where.removeprefix("$").removeprefix(".") or "$"
        out.append((path, reason or message))
    return out


attrs.resolve_types(Receipt)
attrs.resolve_types(CorrectionReceipt)
