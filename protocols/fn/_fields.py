"""Field encodings of the ФН protocol: little-endian integers, DATE_TIME, DATE, CP866 text.

Validators raise :class:`FnError`, so a bad value is the codec's own error wherever it is
caught: when an event is built, or when one is decoded from the wire.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, TypeVar

import attrs

from protocols.fn._frame import FnError

_E = TypeVar("_E", bound=enum.IntEnum)
_F = TypeVar("_F", bound=enum.IntFlag)

#: DATE_TIME of the ФН protocol: YY (year − 2000), MM, DD, hh, mm.
DATE_TIME_SIZE = 5
_NO_DATE_TIME = bytes(DATE_TIME_SIZE)
_TEXT = "cp866"


class Reader:
    """Reads one command's or answer's DATA from the front, and insists it is used up."""

    __slots__ = ("_data", "_pos", "_where")

    def __init__(self, data: bytes, where: str) -> None:
        self._data = data
        self._pos = 0
        self._where = where

    def take(self, size: int) -> bytes:
        end = self._pos + size
        if end > len(self._data):
            raise FnError(f"data end after {len(self._data)} bytes, need {end}", self._where)
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "little")

    def flag(self) -> bool:
        value = self.uint(1)
        if value > 1:
            raise FnError(f"a flag byte is 0 or 1, got {value}", self._where)
        return value == 1

    def enum(self, kind: type[_E]) -> _E:
        value = self.uint(1)
        try:
            return kind(value)
        except ValueError:
            raise FnError(f"{value} is not a {kind.__name__}", self._where) from None

    def date_time(self) -> datetime | None:
        raw = self.take(DATE_TIME_SIZE)
        if raw == _NO_DATE_TIME:
            return None
        try:
            return datetime(2000 + raw[0], raw[1], raw[2], raw[3], raw[4])
        except ValueError as exc:
            raise FnError(f"DATE_TIME {raw.hex()}: {exc}", self._where) from None

    def date(self) -> date:
        raw = self.take(3)
        try:
            return date(2000 + raw[0], raw[1], raw[2])
        except ValueError as exc:
            raise FnError(f"DATE {raw.hex()}: {exc}", self._where) from None

    def text(self, size: int) -> str:
        return self.take(size).decode(_TEXT)  # CP866 maps every byte, so this never fails

    def rest(self) -> bytes:
        chunk = self._data[self._pos :]
        self._pos = len(self._data)
        return chunk

    def end(self) -> None:
        if self._pos != len(self._data):
            extra = len(self._data) - self._pos
            raise FnError(f"{extra} bytes after the last field", self._where)


def pack_date_time(value: datetime | None) -> bytes:
    if value is None:
        return _NO_DATE_TIME
    return bytes((value.year - 2000, value.month, value.day, value.hour, value.minute))


def pack_date(value: date) -> bytes:
    return bytes((value.year - 2000, value.month, value.day))


def pack_text(value: str) -> bytes:
    return value.encode(_TEXT)


def uint(size: int) -> Callable[[Any, attrs.Attribute[int], int], None]:
    """A validator: an int that fits ``size`` unsigned bytes."""
    top = 1 << (8 * size)

    def check(_: Any, attribute: attrs.Attribute[int], value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < top:
            raise FnError(f"{value!r} is not an integer in 0..{top - 1}", attribute.name)

    return check


def boolean(_: Any, attribute: attrs.Attribute[bool], value: bool) -> None:
    if type(value) is not bool:
        raise FnError(f"{value!r} is not a bool", attribute.name)


def blob(limit: int) -> Callable[[Any, attrs.Attribute[bytes], bytes], None]:
    """A validator: bytes of at most ``limit``."""

    def check(_: Any, attribute: attrs.Attribute[bytes], value: bytes) -> None:
        if type(value) is not bytes or len(value) > limit:
            raise FnError(f"bytes of at most {limit} expected, got {value!r:.40}", attribute.name)

    return check


def _check_date_time(name: str, value: object) -> None:
    if type(value) is not datetime:
        raise FnError(f"{value!r} is not a datetime", name)
    if value.tzinfo is not None or value.second or value.microsecond:
        raise FnError(f"{value} is not a naive datetime in whole minutes", name)
    if not 2000 <= value.year <= 2255:
        raise FnError(f"year {value.year} is outside 2000..2255", name)


def date_time(_: Any, attribute: attrs.Attribute[datetime], value: datetime) -> None:
    """A validator: a DATE_TIME, a naive wall-clock datetime in whole minutes."""
    _check_date_time(attribute.name, value)


def optional_date_time(
    _: Any, attribute: attrs.Attribute[datetime | None], value: datetime | None
) -> None:
    """A validator: a DATE_TIME or None (sent as five zero bytes)."""
    if value is not None:
        _check_date_time(attribute.name, value)


def date_only(_: Any, attribute: attrs.Attribute[date], value: date) -> None:
    if type(value) is not date or not 2000 <= value.year <= 2255:
        raise FnError(f"{value!r} is not a date in 2000..2255", attribute.name)


# Converters: right-pad text with spaces to the field's width, as fixed-width fields are sent.
def pad12(value: str) -> str:
    return value.ljust(12)


def pad16(value: str) -> str:
    return value.ljust(16)


def pad20(value: str) -> str:
    return value.ljust(20)


def fixed_text(width: int) -> Callable[[Any, attrs.Attribute[str], str], None]:
    """A validator: CP866 text of exactly ``width`` characters."""

    def check(_: Any, attribute: attrs.Attribute[str], value: str) -> None:
        if type(value) is not str or len(value) != width:
            raise FnError(f"{value!r} is not {width} characters", attribute.name)
        try:
            value.encode(_TEXT)
        except UnicodeEncodeError:
            raise FnError(f"{value!r} is not CP866 text", attribute.name) from None

    return check


def to_flag(kind: type[_F]) -> Callable[[int], _F]:
    """A converter: a byte to a member of the flag set ``kind``, unknown bits kept."""

    def convert(value: int) -> _F:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFF:
            raise FnError(f"{value!r} is not a flag byte", kind.__name__)
        return kind(value)

    return convert


def to_enum(kind: type[_E]) -> Callable[[int], _E]:
    """A converter: an int to a member of ``kind``, or FnError."""

    def convert(value: int) -> _E:
        if not isinstance(value, int) or isinstance(value, bool):
            raise FnError(f"{value!r} is not a {kind.__name__}", kind.__name__)
        try:
            return kind(value)
        except ValueError:
            raise FnError(f"{value!r} is not a {kind.__name__}", kind.__name__) from None

    return convert
