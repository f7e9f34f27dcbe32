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
import types
import typing
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Union

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
    """The receipt as Kassa JSON (fields left at their defaults are omitted).

    One pass over the receipt (:func:`_dumper`): every submit journals its receipt this way,
    and unstructuring it whole with cattrs, then walking the result again to drop the
    defaults, was most of the service's CPU a job at intake. The answer is the same
    (tests/protocols/test_receipt_json.py holds it to :func:`receipt_to_json_reference`).
    """
    kind = "correction" if isinstance(receipt, CorrectionReceipt) else "receipt"
    cls: type = type(receipt)
    return {"kind": kind, **_dumper(cls)(receipt)}


def receipt_to_json_reference(receipt: Receipt) -> dict[str, Any]:
    """:func:`receipt_to_json` the straightforward way: cattrs, then the defaults dropped."""
    kind = "correction" if isinstance(receipt, CorrectionReceipt) else "receipt"
    return {"kind": kind, **_prune(_CONVERTER.unstructure(receipt), type(receipt))}


def _identity(value: Any) -> Any:
    return value


def _text_of(value: Any) -> Any:  # Decimal → its exact text, as the converter's hook
    return None if value is None else str(value)


def _time_of(value: Any) -> Any:
    return None if value is None else value.strftime(_TIME_FORMAT)


def _field_dumper(kind: Any) -> Callable[[Any], Any]:
    """How one field's value is written, from its declared type: the converter's own answer
    for scalars, a nested :func:`_dumper` for attrs classes, lists for tuples."""
    args = getattr(kind, "__args__", None)
    origin = getattr(kind, "__origin__", None)
    if isinstance(kind, types.UnionType) or origin is Union:
        present = [a for a in args or () if a is not type(None)]
        if len(present) == 1:  # Optional[X]
            inner = _field_dumper(present[0])
            if inner in (_identity, _text_of, _time_of):  # these let None through
                return inner
            return lambda value: None if value is None else inner(value)
    elif origin is tuple and args and (len(args) == 1 or args[-1] is Ellipsis):
        inner = _field_dumper(args[0])
        if inner is _identity:
            return list
        return lambda value: [inner(v) for v in value]
    if kind in (str, int, bool):
        return _identity
    if kind is Decimal:
        return _text_of
    if kind is datetime:
        return _time_of
    if isinstance(kind, type) and attrs.has(kind):
        return _dumper(kind)
    return lambda value: _CONVERTER.unstructure(value, kind)


@functools.cache
def _dumper(cls: type) -> Callable[[Any], dict[str, Any]]:
    """The one-pass writer of an attrs class, generated once per class: each field written,
    and left out when it is its default (compared as written, so that a Decimal 1.0 is not
    taken for a default of 1). Fields written as they are take no call at all."""
    hints = typing.get_type_hints(cls)
    namespace: dict[str, Any] = {}
    lines = ["def dump(value):", "    out = {}"]
    for i, (name, default, _) in enumerate(_pruning(cls)):
        write = _field_dumper(hints[name])
        expression = f"value.{name}"
        if write is not _identity:
            namespace[f"w{i}"] = write
            expression = f"w{i}({expression})"
        if default is _NO_DEFAULT:
            lines.append(f"    out[{name!r}] = {expression}")
        else:
            namespace[f"d{i}"] = default
            lines += [
                f"    x = {expression}",
                f"    if not x == d{i}:",
                f"        out[{name!r}] = x",
            ]
    lines.append("    return out")
    exec("\n".join(lines), namespace)  # the source is built above from field names alone
    dump: Callable[[Any], dict[str, Any]] = namespace["dump"]
    return dump


_NO_DEFAULT = object()


@functools.cache
def _pruning(cls: type) -> tuple[tuple[str, Any, type | None], ...]:
    """(name, unstructured default or _NO_DEFAULT, attrs class held) of each field of ``cls``.

    Worked out once per class: unstructuring every default on every call cost about half of
    ``receipt_to_json``. The annotations are resolved first: read as strings, no field would
    be seen to hold a class, and its defaults would stay in.
    """
    attrs.resolve_types(cls)
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
