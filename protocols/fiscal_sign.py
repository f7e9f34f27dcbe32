"""The fiscal sign of a document (фискальный признак документа, ФПД, tag 1077).

The ФН computes it with keys nobody outside it and the tax service holds, so a real one is an
opaque 6-byte value. What can be derived from it is the printed ФП: the number on the paper
receipt and the ``fp=`` of its QR code.
"""

from __future__ import annotations

import zlib

from protocols.errors import ProtocolError


class FiscalSignError(ProtocolError):
    """A fiscal sign value of the wrong shape."""


def printed_fiscal_sign(raw: bytes) -> int:
    """The printed ФП: bytes 2..5 of the 6-byte 1077 value, read as a big-endian uint32."""
    if len(raw) != 6:
        raise FiscalSignError(f"a 1077 fiscal sign is 6 bytes, got {len(raw)}", "1077")
    return int.from_bytes(raw[2:6], "big")


def marking_control_code(marking_code: bytes) -> str:
    """Tag 2115 (контрольный код КМ): the last 4 decimal digits of the CRC-32 of the code (2000)."""
    return f"{zlib.crc32(marking_code) % 10000:04d}"
