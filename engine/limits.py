"""How big an input Kassa takes, the same at every front door (ZeroMQ, the command line, HTTP).

An oversized input is refused at once with ``too_large``, its size and the limit, before
anything parses it: a parser's time grows with its input, and a front door that spends seconds
on one absurd request is slow for everyone else.

Why these sizes. A receipt ends as one fiscal document in the ФН (fiscal storage), which takes
at most 32 KiB of TLV (tag 3, кассовый чек). The JSON a shop sends for it is bigger: field
names, decimal text, and Cyrillic, which is one byte in CP866 on the fiscal wire but two in
UTF-8 and six as a ``\\u041f`` escape. A text-heavy receipt grows about six times from TLV to
escaped JSON, so 256 KiB (eight times the ФН's 32 KiB) holds any receipt the ФН can take, with
room for pretty-printing. A request carries up to 1,000 receipts in a ``submit_batch``; real
ones are 1 to 4 KiB (the largest in tests/protocols/corpus, a marked ATOL sale, is 3.3 KiB), so
4 MiB takes a full batch of them, and a client splits a batch of bigger receipts into several
requests. What a size costs the service is reading receipts onto the model, on the event loop
where every other request waits: about 0.1 ms per KB (a 600 KB KOMTET body of 3,000 lines took
60 ms here), so the receipt limit bounds one receipt to some 25 ms, where a 10 MB one would take
a second; msgpack itself reads 4 MiB in a few milliseconds. A full batch of 1,000 ordinary
receipts takes about 0.3 s (1,000 marked ATOL sales, 2.5 MB): its entries bound that.

The ceilings bound what a service may be configured to take. A client refuses anything above
them before it sends a byte, since no Kassa service would take it; what lies between a
service's limit and the ceiling goes out, and that service answers ``too_large``.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

#: Bytes of one receipt as sent: a submit's receipt, one entry of a batch.
RECEIPT_BYTES = 256 << 10
#: Bytes of one request as it arrives: a ZeroMQ frame, an HTTP body.
REQUEST_BYTES = 4 << 20
#: The most ``receipt_bytes`` may be set to (msgpack strings are refused above it anyway).
MAX_RECEIPT_BYTES = 1 << 20
#: The most ``request_bytes`` may be set to.
MAX_REQUEST_BYTES = 64 << 20
#: The least either may be set to: below it not even a small receipt fits.
MIN_BYTES = 1 << 10


def _within(high: int) -> Callable[[object, attrs.Attribute[int], int], None]:
    """An attrs validator: an int from MIN_BYTES to ``high``."""

    def check(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
        if type(value) is not int or not MIN_BYTES <= value <= high:
            raise ValueError(f"{attribute.name}: {value!r} is out of range {MIN_BYTES} to {high}")

    return check


@attrs.frozen
class SizeLimits:
    """The sizes a service takes (``[limits]`` in kassa.toml); see the module docstring."""

    request_bytes: int = attrs.field(default=REQUEST_BYTES, validator=_within(MAX_REQUEST_BYTES))
    receipt_bytes: int = attrs.field(default=RECEIPT_BYTES, validator=_within(MAX_RECEIPT_BYTES))

    def __attrs_post_init__(self) -> None:
        if self.receipt_bytes > self.request_bytes:
            raise ValueError(
                f"receipt_bytes: {self.receipt_bytes} is more than request_bytes "
                f"{self.request_bytes}: a receipt travels inside a request"
            )


DEFAULT_SIZES = SizeLimits()


def size_text(count: int) -> str:
    """Bytes as people read them: ``4 MiB``, ``256 KiB``, ``1500 bytes``."""
    for unit, shift in (("MiB", 20), ("KiB", 10)):
        if count >= 1 << shift and count % (1 << shift) == 0:
            return f"{count >> shift} {unit}"
    return f"{count} bytes"


def over_limit(what: str, size: int | None, limit: int, whose: str = "the") -> str:
    """``a request of 10000990 bytes is over the limit of 4194304 bytes (4 MiB)``.

    ``size`` None: only that it is more (read from a stream that was not read to its end).
    """
    amount = f"more than {limit} bytes" if size is None else f"{size} bytes"
    return f"{what} of {amount} is over {whose} limit of {limit} bytes ({size_text(limit)})"
