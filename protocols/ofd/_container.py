"""The container (контейнер) a ФН makes for the OFD, and the OFD sends back: 32-byte header + body.

``length u16 LE | CRC u16 LE | message type | document type | version | service data 1 (2) |
ФН number, packed BCD (8) | ФД number u24 BE | service data 2 (12) | document TLV | trailer``
(ffd.md §6.2). The CRC is CRC-16/CCITT-FALSE over the whole container except the CRC field.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, Self

import attrs

from protocols.crc import crc16_ccitt_false
from protocols.ofd._session import MAX_CONTAINER, MIN_CONTAINER, OfdError

__all__ = [
    "CONTAINER_HEADER_SIZE",
    "KKT_TO_OFD",
    "OFD_TO_KKT",
    "TRAILER_SIZE",
    "Container",
]

CONTAINER_HEADER_SIZE = 32
#: The ФПС trailer (фискальный признак сообщения): ``[type][06][6-byte MAC][00 00]``.
TRAILER_SIZE = 10
KKT_TO_OFD = 0xA5
OFD_TO_KKT = 0x5A

_HEAD = struct.Struct("<HHBBB2s8s3s12s")
_TLV_HEAD = struct.Struct("<HH")


def _u8(_: Any, attribute: attrs.Attribute[int], value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFF:
        raise OfdError(f"{value!r} is not a byte", attribute.name)


def _sized(size: int) -> Callable[[Any, attrs.Attribute[bytes], bytes], None]:
    def check(_: Any, attribute: attrs.Attribute[bytes], value: bytes) -> None:
        if type(value) is not bytes or len(value) != size:
            raise OfdError(f"{size} bytes expected, got {value!r}", attribute.name)

    return check


def _fn_to_bcd(number: str) -> bytes:
    return bytes.fromhex(number.ljust(16, "f"))


def _bcd_to_fn(raw: bytes) -> str:
    digits = raw.hex()
    number = digits.rstrip("f")
    if not number or not number.isdigit():
        raise OfdError(f"ФН number {digits} is not BCD digits with F filler", "container.fn")
    return number


@attrs.frozen(kw_only=True)
class Container:
    """One container. ``document`` is the document TLV exactly as signed, never re-encoded.

    Assumes an unencrypted body (1056 = 0), the only kind public samples show: the document's
    end is read from its own TLV header, and what follows is the trailer, kept opaque.
    """

    document_type: int = attrs.field(validator=_u8)  # 1, 11, 3, 7 …
    fn_number: str = attrs.field()  # 1041, sent as packed BCD
    fd_number: int = attrs.field()  # 1040, sent as 3 bytes big-endian
    document: bytes = attrs.field()
    trailer: bytes = attrs.field(default=b"")
    message_type: int = attrs.field(default=KKT_TO_OFD, validator=_u8)
    version: int = attrs.field(default=1, validator=_u8)
    service_1: bytes = attrs.field(default=bytes.fromhex("1009"), validator=_sized(2))
    service_2: bytes = attrs.field(default=bytes(12), validator=_sized(12))

    @fn_number.validator
    def _check_fn_number(self, attribute: attrs.Attribute[str], value: str) -> None:
        if not (isinstance(value, str) and value.isascii() and value.isdigit()) or len(value) > 16:
            raise OfdError(f"{value!r} is not 1..16 ASCII digits", attribute.name)

    @fd_number.validator
    def _check_fd_number(self, attribute: attrs.Attribute[int], value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 24:
            raise OfdError(f"{value!r} does not fit 3 bytes", attribute.name)

    @document.validator
    def _check_document(self, attribute: attrs.Attribute[bytes], value: bytes) -> None:
        if type(value) is not bytes or len(value) < 4:
            raise OfdError("a document is one TLV, at least its 4-byte header", attribute.name)
        _, size = _TLV_HEAD.unpack_from(value)
        if len(value) != 4 + size:
            raise OfdError(f"the TLV header says {4 + size} bytes, got {len(value)}", "document")

    @trailer.validator
    def _check_trailer(self, attribute: attrs.Attribute[bytes], value: bytes) -> None:
        if type(value) is not bytes or len(value) not in (0, TRAILER_SIZE):
            raise OfdError(f"a trailer is 0 or {TRAILER_SIZE} bytes", attribute.name)
        if self.length > MAX_CONTAINER:
            raise OfdError(f"{self.length} bytes, at most {MAX_CONTAINER}", "container")

    @property
    def length(self) -> int:
        """The container's size on the wire, header included."""
        return CONTAINER_HEADER_SIZE + len(self.document) + len(self.trailer)

    def _head(self, crc: int) -> bytes:
        return _HEAD.pack(
            self.length,
            crc,
            self.message_type,
            self.document_type,
            self.version,
            self.service_1,
            _fn_to_bcd(self.fn_number),
            self.fd_number.to_bytes(3, "big"),
            self.service_2,
        )

    @property
    def crc(self) -> int:
        """CRC-16/CCITT-FALSE over the container without its CRC field."""
        head = self._head(0)
        return crc16_ccitt_false(head[:2] + head[4:] + self.document + self.trailer)

    def encode(self) -> bytes:
        return self._head(self.crc) + self.document + self.trailer

    @classmethod
    def decode(cls, data: bytes, *, verify_crc: bool = True) -> Self:
        """Exactly one container; OfdError for anything else, a wrong CRC included.

        ``verify_crc=False`` reads a damaged container anyway, for a tool that reports it.
        """
        if not MIN_CONTAINER <= len(data) <= MAX_CONTAINER:
            raise OfdError(f"a container is {MIN_CONTAINER}..{MAX_CONTAINER} bytes", "container")
        length, crc, message_type, document_type, version, service_1, fn, fd, service_2 = (
            _HEAD.unpack_from(data)
        )
        if length != len(data):
            raise OfdError(f"length field {length}, got {len(data)} bytes", "container.length")
        if verify_crc and crc != crc16_ccitt_false(data[:2] + data[4:]):
            raise OfdError(f"CRC {crc:04x} does not match the container", "container.crc")
        _, size = _TLV_HEAD.unpack_from(data, CONTAINER_HEADER_SIZE)
        end = CONTAINER_HEADER_SIZE + 4 + size
        if end > len(data):
            raise OfdError(f"the document TLV runs {end - len(data)} bytes past the end", "body")
        return cls(
            message_type=message_type,
            document_type=document_type,
            version=version,
            service_1=service_1,
            fn_number=_bcd_to_fn(fn),
            fd_number=int.from_bytes(fd, "big"),
            service_2=service_2,
            document=data[CONTAINER_HEADER_SIZE:end],
            trailer=data[end:],
        )
