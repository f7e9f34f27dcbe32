"""The receipt QR string (QR-код чека): what a buyer scans to check a receipt with the FNS.

``t=YYYYMMDDTHHMM&s=RUB.KK&fn=<1041>&i=<1040>&fp=<printed ФП>&n=<1054>`` (ffd.md §5.3, after
shtrih-m/opos ``FSSalesReceipt.pas``): the document's local time (1012) to the minute, the
total (1020) in roubles with two decimals, the ФН number, the FD number, the printed fiscal
sign and the operation type. Kassa writes exactly that. It reads what registers print too:
seconds in ``t`` (``T113800``), the keys in any order and leading zeros in the numbers, and
refuses anything else with a :class:`QrError` naming the key.
"""

from __future__ import annotations

from datetime import datetime

import attrs

from protocols.errors import ProtocolError
from protocols.tlv.enums import OperationType

#: 1020 is VLN money of at most 6 bytes; 1040 and the printed ФП are uint32.
MAX_TOTAL = 2**48 - 1
MAX_U32 = 2**32 - 1
#: Longer digit runs are refused before int() sees them (its own limit raises ValueError).
MAX_DIGITS = 20
KEYS = ("t", "s", "fn", "i", "fp", "n")
_OPERATIONS = frozenset(OperationType)


class QrError(ProtocolError):
    """A receipt QR string, or a value for one, that does not fit the format; path ``qr.<key>``."""


@attrs.frozen
class ReceiptQr:
    """The values a receipt QR string carries."""

    time: datetime  # t, 1012 дата, время (register-local wall clock)
    total: int  # s, 1020 сумма расчёта, kopecks
    fn_number: str  # fn, 1041 номер ФН, 16 digits
    fd_number: int  # i, 1040 номер ФД
    printed_sign: int  # fp, the printed ФП (from 1077)
    operation: OperationType  # n, 1054 признак расчёта

    def text(self) -> str:
        """The QR string of these values, as Kassa writes it."""
        return receipt_qr(
            self.time,
            self.total,
            self.fn_number,
            self.fd_number,
            self.printed_sign,
            self.operation,
        )


def _is_digits(text: str) -> bool:
    # str.isdigit() also accepts "²" and "٣"; int() also accepts "+1", " 1" and "1_0".
    return text.isascii() and text.isdigit()


def _check(total: int, fn_number: str, fd_number: int, printed_sign: int, operation: int) -> None:
    if not 0 <= total <= MAX_TOTAL:
        raise QrError(f"the total {total} is not 0..{MAX_TOTAL} kopecks", "qr.s")
    if len(fn_number) != 16 or not _is_digits(fn_number):
        raise QrError(f"the ФН number {fn_number[:MAX_DIGITS]!r} is not 16 digits", "qr.fn")
    if not 1 <= fd_number <= MAX_U32:
        raise QrError(f"the FD number {fd_number} is not 1..{MAX_U32}", "qr.i")
    if not 0 <= printed_sign <= MAX_U32:
        raise QrError(f"the printed ФП {printed_sign} is not 0..{MAX_U32}", "qr.fp")
    if operation not in _OPERATIONS:
        raise QrError(f"the operation type {operation} is not 1..4", "qr.n")


def receipt_qr(
    time: datetime,
    total: int,
    fn_number: str,
    fd_number: int,
    printed_sign: int,
    operation: int,
) -> str:
    """The QR string of a fiscalized receipt; ``time`` is its 1012, to the minute.

    Raises :class:`QrError` for a value the format cannot carry, so a string Kassa prints is
    always one :func:`parse_receipt_qr` (and the FNS) reads back.
    """
    _check(total, fn_number, fd_number, printed_sign, operation)
    roubles, kopecks = divmod(total, 100)
    return (
        f"t={time.year:04d}{time.month:02d}{time.day:02d}T{time.hour:02d}{time.minute:02d}"
        f"&s={roubles}.{kopecks:02d}&fn={fn_number}&i={fd_number}&fp={printed_sign}"
        f"&n={operation:d}"
    )


def _number(key: str, text: str) -> int:
    if not text or len(text) > MAX_DIGITS or not _is_digits(text):
        raise QrError(f"{text[:MAX_DIGITS]!r} is not a decimal number", f"qr.{key}")
    return int(text)


def _time(text: str) -> datetime:
    date, t, clock = text[:8], text[8:9], text[9:]
    if t != "T" or len(clock) not in (4, 6) or not _is_digits(date) or not _is_digits(clock):
        raise QrError(f"{text[:20]!r} is not YYYYMMDDTHHMM[SS]", "qr.t")
    try:
        return datetime(
            int(date[:4]),
            int(date[4:6]),
            int(date[6:]),
            int(clock[:2]),
            int(clock[2:4]),
            int(clock[4:] or "0"),
        )
    except ValueError as exc:
        raise QrError(f"{text!r} is not a date and time: {exc}", "qr.t") from None


def _total(text: str) -> int:
    roubles, dot, kopecks = text.partition(".")
    if not dot or len(kopecks) != 2 or not _is_digits(kopecks):
        raise QrError(f"{text[:MAX_DIGITS]!r} is not roubles with two decimals", "qr.s")
    return _number("s", roubles) * 100 + int(kopecks)


def parse_receipt_qr(text: str) -> ReceiptQr:
    """The values of a scanned QR string; :class:`QrError` for anything malformed."""
    if not text:
        raise QrError("the QR string is empty", "qr")
    fields: dict[str, str] = {}
    for part in text.split("&"):
        key, equals, value = part.partition("=")
        if not equals:
            raise QrError(f"{part[:MAX_DIGITS]!r} is not key=value", "qr")
        if key not in KEYS:
            raise QrError(f"unknown key {key[:MAX_DIGITS]!r}", "qr")
        if key in fields:
            raise QrError("the key appears twice", f"qr.{key}")
        fields[key] = value
    for key in KEYS:
        if key not in fields:
            raise QrError("the key is missing", f"qr.{key}")
    qr_time = _time(fields["t"])
    total = _total(fields["s"])
    fn_number = fields["fn"]
    fd_number = _number("i", fields["i"])
    printed_sign = _number("fp", fields["fp"])
    operation = _number("n", fields["n"])
    _check(total, fn_number, fd_number, printed_sign, operation)
    return ReceiptQr(qr_time, total, fn_number, fd_number, printed_sign, OperationType(operation))
