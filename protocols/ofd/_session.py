"""The 30-byte session header (заголовок сообщения сеансового уровня) of KKT ↔ OFD messages.

``signature (4) | S-version (2) | P-version (2) | client id (16) | body length u16 LE |
flags u16 LE | CRC u16 LE`` (ffd.md §6.1; yandex ``SessionHeader.STRUCT = '<IHH16sHHH'``).
"""

from __future__ import annotations

import struct
from typing import Any, Self

import attrs

from protocols.errors import ProtocolError

__all__ = [
    "FLAGS_EXPECT_REPLY",
    "HEADER_SIZE",
    "MARKING_SIGNATURE",
    "MAX_CONTAINER",
    "MIN_CONTAINER",
    "OFD_SIGNATURE",
    "P_VERSION_FFD_10",
    "P_VERSION_FFD_11",
    "P_VERSION_FFD_12",
    "P_VERSION_FFD_105",
    "S_VERSION",
    "OfdError",
    "SessionHeader",
]

HEADER_SIZE = 30
#: The largest container a message may carry (yandex ``MAX_LEN``).
MAX_CONTAINER = 32 * 1024
#: The smallest container: its 32-byte header and a 4-byte TLV header.
MIN_CONTAINER = 36

OFD_SIGNATURE = bytes.fromhex("2a08410a")
#: The marking-operator (ОИСМ) channel's signature; from a secondary source, unverified.
MARKING_SIGNATURE = bytes.fromhex("dd80caa1")
S_VERSION = bytes.fromhex("81a2")  # session protocol 1.1
P_VERSION_FFD_10 = bytes.fromhex("0100")
P_VERSION_FFD_105 = bytes.fromhex("0105")
P_VERSION_FFD_11 = bytes.fromhex("0110")
P_VERSION_FFD_12 = bytes.fromhex("0120")
#: Flags of every public capture: CRC mode 00 (none), container present, reply expected.
FLAGS_EXPECT_REPLY = 0x0014

_STRUCT = struct.Struct("<4s2s2s16sHHH")


class OfdError(ProtocolError):
    """A KKT ↔ OFD message, header, container or ack that cannot be accepted."""


def _pad16(value: str) -> str:
    return value.ljust(16)


def _two_bytes(_: Any, attribute: attrs.Attribute[bytes], value: bytes) -> None:
    if type(value) is not bytes or len(value) != 2:
        raise OfdError(f"2 bytes expected, got {value!r}", attribute.name)


def _u16(_: Any, attribute: attrs.Attribute[int], value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFFFF:
        raise OfdError(f"{value!r} is not a u16", attribute.name)


@attrs.frozen(kw_only=True)
class SessionHeader:
    """The session header; ``client_id`` is the ФН number, space-padded to 16.

    The CRC is kept as it came and never checked: the only mode seen in public captures is
    00 (no CRC, field 0), and the other two modes are unverified (ffd.md §9).
    """

    client_id: str = attrs.field(converter=_pad16)
    body_length: int = attrs.field()
    p_version: bytes = attrs.field(default=P_VERSION_FFD_105, validator=_two_bytes)
    flags: int = attrs.field(default=FLAGS_EXPECT_REPLY, validator=_u16)
    crc: int = attrs.field(default=0, validator=_u16)
    s_version: bytes = attrs.field(default=S_VERSION, validator=_two_bytes)
    signature: bytes = attrs.field(default=OFD_SIGNATURE)

    @client_id.validator
    def _check_client_id(self, attribute: attrs.Attribute[str], value: str) -> None:
        if len(value) != 16 or not value.isascii():
            raise OfdError(f"{value!r} is not 16 ASCII characters", attribute.name)

    @body_length.validator
    def _check_body_length(self, attribute: attrs.Attribute[int], value: int) -> None:
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or not (value == 0 or MIN_CONTAINER <= value <= MAX_CONTAINER)
        ):
            raise OfdError(
                f"{value!r} is neither 0 nor a container size {MIN_CONTAINER}..{MAX_CONTAINER}",
                attribute.name,
            )

    @signature.validator
    def _check_signature(self, attribute: attrs.Attribute[bytes], value: bytes) -> None:
        if value not in (OFD_SIGNATURE, MARKING_SIGNATURE):
            raise OfdError(f"unknown signature {value!r}", attribute.name)

    def encode(self) -> bytes:
        return _STRUCT.pack(
            self.signature,
            self.s_version,
            self.p_version,
            self.client_id.encode("ascii"),
            self.body_length,
            self.flags,
            self.crc,
        )

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Exactly one 30-byte header; OfdError for anything else."""
        if len(data) != HEADER_SIZE:
            raise OfdError(f"a session header is {HEADER_SIZE} bytes, got {len(data)}", "header")
        signature, s_version, p_version, client_id, body_length, flags, crc = _STRUCT.unpack(data)
        if signature not in (OFD_SIGNATURE, MARKING_SIGNATURE):
            raise OfdError(f"unknown signature {signature.hex()}", "header.signature")
        if not client_id.isascii():
            raise OfdError(f"client id {client_id!r} is not ASCII", "header.client_id")
        return cls(
            signature=signature,
            s_version=s_version,
            p_version=p_version,
            client_id=client_id.decode("ascii"),
            body_length=body_length,
            flags=flags,
            crc=crc,
        )
