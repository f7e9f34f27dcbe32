"""Field codecs of the Shtrih-M command layer (форматы полей команд).

Every command and answer field declares its wire form with ``Annotated[type, codec]``; the
command classes read those annotations to encode and decode. The forms follow
``reference/registers.md`` §1.4: integers little-endian, money as 5-byte kopecks, legacy
quantities as 5-byte thousandths, FF46h quantities as 6-byte millionths, text in
Windows-1251, the ФН DATE_TIME as YY MM DD hh mm and the legacy date as DD MM YY.

Assumptions where the reference is silent:
- A text field never contains NUL: legacy fields are padded with NULs and trailing NULs are
  stripped on decode, so a NUL inside text could not survive a round trip.
- An all-zero date or DATE_TIME means "none" where the register reports an absent date (the
  FF39h answer with an empty OFD queue carries ``00 00 00 00 00``); those fields are typed
  ``... | None``. Years are 2000 + YY.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Generic, TypeVar

from protocols.shtrih.errors import ShtrihError

__all__ = [
    "TEXT_ENCODING",
    "Ascii",
    "AutoMoney",
    "Blob8",
    "DateDMY",
    "DateYMD",
    "FnDateTime",
    "Opt",
    "Raw",
    "Reader",
    "Repeat",
    "SInt",
    "Scaled",
    "Tail",
    "Text",
    "TimeHMS",
    "UInt",
    "WireField",
]

#: The code page of every text field (reference §1.4).
TEXT_ENCODING = "cp1251"

T = TypeVar("T")


class Reader:
    """A cursor over a payload that raises :class:`ShtrihError` instead of over-reading."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self._data = data
        self._pos = pos

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def take(self, n: int, path: str) -> bytes:
        end = self._pos + n
        if end > len(self._data):
            raise ShtrihError(f"needs {n} bytes, {self.remaining} left", path)
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def rest(self) -> bytes:
        chunk = self._data[self._pos :]
        self._pos = len(self._data)
        return chunk


class WireField(Generic[T]):
    """How one field travels: ``put`` appends it, ``get`` reads it back."""

    #: True for fields that take the rest of the payload or may be absent at its end.
    trailing: bool = False

    def put(self, out: bytearray, value: T, path: str) -> None:
        raise NotImplementedError

    def get(self, reader: Reader, path: str) -> T:
        raise NotImplementedError

    def is_absent(self, value: T) -> bool:
        """Whether a trailing field puts no bytes (then no later field may put any)."""
        return False


def _check_int(value: object, low: int, high: int, path: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ShtrihError(f"expected an int, got {type(value).__name__}", path)
    if not low <= value <= high:
        raise ShtrihError(f"{value} is outside {low}..{high}", path)
    return value


class UInt(WireField[int]):
    """An unsigned little-endian integer of ``size`` bytes."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.max = (1 << (8 * size)) - 1

    def put(self, out: bytearray, value: int, path: str) -> None:
        out += _check_int(value, 0, self.max, path).to_bytes(self.size, "little")

    def get(self, reader: Reader, path: str) -> int:
        return int.from_bytes(reader.take(self.size, path), "little")


class SInt(WireField[int]):
    """A signed (two's complement) little-endian integer of ``size`` bytes."""

    def __init__(self, size: int, low: int, high: int) -> None:
        self.size = size
        self.low = low
        self.high = high

    def put(self, out: bytearray, value: int, path: str) -> None:
        checked = _check_int(value, self.low, self.high, path)
        out += checked.to_bytes(self.size, "little", signed=True)

    def get(self, reader: Reader, path: str) -> int:
        value = int.from_bytes(reader.take(self.size, path), "little", signed=True)
        return _check_int(value, self.low, self.high, path)


class AutoMoney(WireField[int | None]):
    """5-byte kopecks where ``FF FF FF FF FF`` means "let the register compute it" (None)."""

    size = 5
    _AUTO = b"\xff" * 5

    def put(self, out: bytearray, value: int | None, path: str) -> None:
        if value is None:
            out += self._AUTO
        else:
            out += _check_int(value, 0, (1 << 40) - 2, path).to_bytes(5, "little")

    def get(self, reader: Reader, path: str) -> int | None:
        raw = reader.take(5, path)
        return None if raw == self._AUTO else int.from_bytes(raw, "little")


class Scaled(WireField[Decimal]):
    """An exact decimal sent as an unsigned integer of 10**-scale units (quantities)."""

    def __init__(self, size: int, scale: int) -> None:
        self.size = size
        self.scale = scale
        self.max = (1 << (8 * size)) - 1

    def put(self, out: bytearray, value: Decimal, path: str) -> None:
        if not isinstance(value, Decimal) or not value.is_finite() or value.adjusted() > 30:
            raise ShtrihError(f"expected a finite Decimal, got {value!r}", path)
        try:
            units = value.scaleb(self.scale)
            whole = int(units)
        except (InvalidOperation, OverflowError, ValueError) as exc:
            raise ShtrihError(f"{value} does not fit", path) from exc
        if units != whole:
            raise ShtrihError(f"{value} has more than {self.scale} decimal places", path)
        out += _check_int(whole, 0, self.max, path).to_bytes(self.size, "little")

    def get(self, reader: Reader, path: str) -> Decimal:
        units = int.from_bytes(reader.take(self.size, path), "little")
        return Decimal(units).scaleb(-self.scale)


def _decode_text(raw: bytes, path: str) -> str:
    if b"\x00" in raw:
        raise ShtrihError("NUL inside text", path)
    try:
        return raw.decode(TEXT_ENCODING)
    except UnicodeDecodeError as exc:
        raise ShtrihError(f"not {TEXT_ENCODING} text: {exc.reason}", path) from exc


def _encode_text(value: object, path: str) -> bytes:
    if not isinstance(value, str):
        raise ShtrihError(f"expected str, got {type(value).__name__}", path)
    if "\x00" in value:
        raise ShtrihError("text must not contain NUL", path)
    try:
        return value.encode(TEXT_ENCODING)
    except UnicodeEncodeError as exc:
        bad = value[exc.start : exc.end]
        raise ShtrihError(f"{bad!r} cannot be encoded in {TEXT_ENCODING}", path) from exc


class Text(WireField[str]):
    """Windows-1251 text to the end of the payload, NUL-padded to ``pad_to`` bytes."""

    trailing = True

    def __init__(self, pad_to: int = 0, max_bytes: int | None = None) -> None:
        self.pad_to = pad_to
        self.max_bytes = max_bytes

    def put(self, out: bytearray, value: str, path: str) -> None:
        raw = _encode_text(value, path)
        if self.max_bytes is not None and len(raw) > self.max_bytes:
            raise ShtrihError(f"{len(raw)} bytes of text, at most {self.max_bytes}", path)
        out += raw.ljust(self.pad_to, b"\x00")

    def get(self, reader: Reader, path: str) -> str:
        raw = reader.rest().rstrip(b"\x00")
        if self.max_bytes is not None and len(raw) > self.max_bytes:
            raise ShtrihError(f"{len(raw)} bytes of text, at most {self.max_bytes}", path)
        return _decode_text(raw, path)

    def is_absent(self, value: str) -> bool:
        return self.pad_to == 0 and value == ""


class Ascii(WireField[str]):
    """Exactly ``size`` ASCII characters (serial numbers, firmware versions)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def put(self, out: bytearray, value: str, path: str) -> None:
        if not isinstance(value, str) or not value.isascii() or len(value) != self.size:
            raise ShtrihError(f"expected {self.size} ASCII characters, got {value!r}", path)
        out += value.encode("ascii")

    def get(self, reader: Reader, path: str) -> str:
        raw = reader.take(self.size, path)
        if not raw.isascii():
            raise ShtrihError(f"not ASCII: {raw.hex()}", path)
        return raw.decode("ascii")


class Raw(WireField[bytes]):
    """Exactly ``size`` opaque bytes."""

    def __init__(self, size: int) -> None:
        self.size = size

    def put(self, out: bytearray, value: bytes, path: str) -> None:
        if not isinstance(value, bytes) or len(value) != self.size:
            raise ShtrihError(f"expected {self.size} bytes", path)
        out += value

    def get(self, reader: Reader, path: str) -> bytes:
        return reader.take(self.size, path)


class Tail(WireField[bytes]):
    """Opaque bytes to the end of the payload (TLV, document data), at most ``max_bytes``."""

    trailing = True

    def __init__(self, max_bytes: int | None = None) -> None:
        self.max_bytes = max_bytes

    def _check(self, value: bytes, path: str) -> bytes:
        if self.max_bytes is not None and len(value) > self.max_bytes:
            raise ShtrihError(f"{len(value)} bytes, at most {self.max_bytes}", path)
        return value

    def put(self, out: bytearray, value: bytes, path: str) -> None:
        if not isinstance(value, bytes):
            raise ShtrihError(f"expected bytes, got {type(value).__name__}", path)
        out += self._check(value, path)

    def get(self, reader: Reader, path: str) -> bytes:
        return self._check(reader.rest(), path)

    def is_absent(self, value: bytes) -> bool:
        return value == b""


class Blob8(WireField[bytes]):
    """Bytes preceded by their one-byte length (marking codes, extra parameters)."""

    def put(self, out: bytearray, value: bytes, path: str) -> None:
        if not isinstance(value, bytes) or len(value) > 255:
            raise ShtrihError("expected at most 255 bytes", path)
        out.append(len(value))
        out += value

    def get(self, reader: Reader, path: str) -> bytes:
        return reader.take(reader.take(1, path)[0], path)


class Repeat(WireField[tuple[T, ...]]):
    """``count`` values of one form in a row (the 16 payment sums of FF45h)."""

    def __init__(self, item: WireField[T], count: int) -> None:
        self.item = item
        self.count = count

    def put(self, out: bytearray, value: tuple[T, ...], path: str) -> None:
        if not isinstance(value, tuple) or len(value) != self.count:
            raise ShtrihError(f"expected a tuple of {self.count}", path)
        for i, item in enumerate(value):
            self.item.put(out, item, f"{path}[{i}]")

    def get(self, reader: Reader, path: str) -> tuple[T, ...]:
        return tuple(self.item.get(reader, f"{path}[{i}]") for i in range(self.count))


class Opt(WireField[T | None]):
    """A field that older firmware leaves off the end of an answer: None when absent."""

    trailing = True

    def __init__(self, item: WireField[T]) -> None:
        self.item = item

    def put(self, out: bytearray, value: T | None, path: str) -> None:
        if value is not None:
            self.item.put(out, value, path)

    def get(self, reader: Reader, path: str) -> T | None:
        return self.item.get(reader, path) if reader.remaining else None

    def is_absent(self, value: T | None) -> bool:
        return value is None


def _make_date(year: int, month: int, day: int, path: str) -> dt.date:
    if year > 2099:  # a YY byte over 99: the encoder could never send it back (found by fuzzing)
        raise ShtrihError(f"year {year} is outside 2000..2099", path)
    try:
        return dt.date(year, month, day)
    except ValueError as exc:
        raise ShtrihError(f"bad date {year}-{month}-{day}", path) from exc


def _check_year(value: dt.date, path: str) -> int:
    if not 2000 <= value.year <= 2099:
        raise ShtrihError(f"year {value.year} is outside 2000..2099", path)
    return value.year - 2000


class DateDMY(WireField[dt.date | None]):
    """The legacy date, DD MM YY; ``00 00 00`` is None."""

    size = 3

    def put(self, out: bytearray, value: dt.date | None, path: str) -> None:
        if value is None:
            out += b"\x00\x00\x00"
        elif not isinstance(value, dt.date) or isinstance(value, dt.datetime):
            raise ShtrihError("expected a date", path)
        else:
            out += bytes((value.day, value.month, _check_year(value, path)))

    def get(self, reader: Reader, path: str) -> dt.date | None:
        day, month, year = reader.take(3, path)
        if day == month == year == 0:
            return None
        return _make_date(2000 + year, month, day, path)


class DateYMD(WireField[dt.date]):
    """The ФН date, YY MM DD (ФН expiry)."""

    size = 3

    def put(self, out: bytearray, value: dt.date, path: str) -> None:
        if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
            raise ShtrihError("expected a date", path)
        out += bytes((_check_year(value, path), value.month, value.day))

    def get(self, reader: Reader, path: str) -> dt.date:
        year, month, day = reader.take(3, path)
        return _make_date(2000 + year, month, day, path)


class TimeHMS(WireField[dt.time]):
    """The legacy time, hh mm ss."""

    size = 3

    def put(self, out: bytearray, value: dt.time, path: str) -> None:
        if not isinstance(value, dt.time) or value.microsecond or value.tzinfo is not None:
            raise ShtrihError("expected a whole-second naive time", path)
        out += bytes((value.hour, value.minute, value.second))

    def get(self, reader: Reader, path: str) -> dt.time:
        hour, minute, second = reader.take(3, path)
        try:
            return dt.time(hour, minute, second)
        except ValueError as exc:
            raise ShtrihError(f"bad time {hour}:{minute}:{second}", path) from exc


class FnDateTime(WireField[dt.datetime | None]):
    """The ФН DATE_TIME, YY MM DD hh mm; all zeros is None where ``nullable``."""

    size = 5

    def __init__(self, nullable: bool = False) -> None:
        self.nullable = nullable

    def put(self, out: bytearray, value: dt.datetime | None, path: str) -> None:
        if value is None and self.nullable:
            out += bytes(5)
            return
        if (
            not isinstance(value, dt.datetime)
            or value.second
            or value.microsecond
            or value.tzinfo is not None
        ):
            raise ShtrihError("expected a naive datetime to the minute", path)
        year = _check_year(value, path)
        out += bytes((year, value.month, value.day, value.hour, value.minute))

    def get(self, reader: Reader, path: str) -> dt.datetime | None:
        raw = reader.take(5, path)
        if self.nullable and raw == bytes(5):
            return None
        year, month, day, hour, minute = raw
        if year > 99:
            raise ShtrihError(f"bad DATE_TIME {raw.hex()}: year {2000 + year}", path)
        try:
            return dt.datetime(2000 + year, month, day, hour, minute)
        except ValueError as exc:
            raise ShtrihError(f"bad DATE_TIME {raw.hex()}", path) from exc
