"""The fiscal sign of a document (фискальный признак документа, ФПД, tag 1077).

The ФН computes it with keys nobody outside it and the tax service holds, so a real one is an
opaque 6-byte value. What can be derived from it is the printed ФП: the number on the paper
receipt and the ``fp=`` of its QR code.

The emulator's ФН signs with a key that is known instead (an HMAC, :func:`emulator_fiscal_sign`),
so what it signs can be checked: :class:`EmulatorSignVerifier` is the :class:`SignVerifier` the
engine uses for emulator ФНs.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import zlib
from collections.abc import Mapping
from typing import Protocol

from protocols.errors import ProtocolError


class FiscalSignError(ProtocolError):
    """A fiscal sign value, or a signed document, of the wrong shape."""


def printed_fiscal_sign(raw: bytes) -> int:
    """The printed ФП: bytes 2..5 of the 6-byte 1077 value, read as a big-endian uint32."""
    if len(raw) != 6:
        raise FiscalSignError(f"a 1077 fiscal sign is 6 bytes, got {len(raw)}", "1077")
    return int.from_bytes(raw[2:6], "big")


def marking_control_code(marking_code: bytes) -> str:
    """Tag 2115 (контрольный код КМ): the last 4 decimal digits of the CRC-32 of the code (2000)."""
    return f"{zlib.crc32(marking_code) % 10000:04d}"


# --- the emulator's fiscal sign -------------------------------------------------------------------
# Here, not in the emulator, because the engine may import only protocols/ and the emulator's ФН
# (emulator/fn.py) must sign exactly what EmulatorSignVerifier checks.

#: The two leading bytes of an emulator 1077, the pair seen in public samples (ffd.md §5.1).
EMULATOR_SIGN_PREFIX = b"\x31\x04"

_TLV_HEADER = struct.Struct("<HH")
_SIGN_TAG = 1077  # ФПД
_FN_NUMBER_TAG = 1041  # номер ФН


def _top_level(document: bytes) -> tuple[int, list[tuple[int, int, int]]]:
    """The document code and (tag, start, end) of each top-level element; values stay undecoded."""
    if len(document) < 4:
        raise FiscalSignError(f"a document needs a 4-byte TLV header, got {len(document)} bytes")
    code, length = _TLV_HEADER.unpack_from(document, 0)
    if 4 + length != len(document):
        raise FiscalSignError(
            f"document declares {length} value bytes but {len(document) - 4} follow", str(code)
        )
    elements: list[tuple[int, int, int]] = []
    pos = 4
    while pos < len(document):
        if len(document) - pos < 4:
            raise FiscalSignError("truncated TLV header", str(code))
        tag, size = _TLV_HEADER.unpack_from(document, pos)
        end = pos + 4 + size
        if end > len(document):
            raise FiscalSignError(f"truncated value: {size} bytes declared", f"{code}/{tag}")
        elements.append((tag, pos, end))
        pos = end
    return code, elements


def _split(document: bytes, code: int, elements: list[tuple[int, int, int]]) -> tuple[bytes, bytes]:
    signs = [(start, end) for tag, start, end in elements if tag == _SIGN_TAG]
    if len(signs) != 1:
        raise FiscalSignError(f"expected one 1077 element, found {len(signs)}", f"{code}/1077")
    ((start, end),) = signs
    body = document[4:start] + document[end:]
    return _TLV_HEADER.pack(code, len(body)) + body, document[start + 4 : end]


def split_fiscal_sign(document: bytes) -> tuple[bytes, bytes]:
    """(signed bytes, 1077 value) of a whole document TLV (outer tag = the document code).

    The signed bytes are the document exactly as stored, less its one top-level 1077 element
    (header and value), with the outer length reduced by that element's size: the document as
    the ФН had it just before it inserted the sign. Nothing is decoded or re-encoded, so the
    ФН's own tag order and the host's exact bytes are what is signed.
    """
    code, elements = _top_level(document)
    return _split(document, code, elements)


def emulator_fiscal_sign(key: bytes, signed: bytes) -> bytes:
    """The emulator ФН's 6-byte 1077: ``31 04`` + the first 4 bytes of HMAC-SHA256(key, signed).

    ``signed`` is what :func:`split_fiscal_sign` returns; the printed ФП
    (:func:`printed_fiscal_sign`) is then those 4 MAC bytes read big-endian.
    """
    mac = hmac.new(key, signed, hashlib.sha256).digest()
    return EMULATOR_SIGN_PREFIX + mac[:4]


class SignVerifier(Protocol):
    """Checks a document's 1077 where it knows the ФН's key."""

    def verify(self, document: bytes) -> bool | None:
        """True or False for a ФН whose key is known; None when the value cannot be judged."""
        ...


class EmulatorSignVerifier:
    """Verifies 1077 of documents signed by emulator ФНs, keyed by ФН number (1041).

    ``verify`` answers None for a document without exactly one 1041 or from a ФН it has no key
    for (a real ФН, whose sign only the ФНС can check), False when the 1077 is missing, repeated
    or wrong, and True when it matches. Bytes that are not a document TLV at all raise
    :class:`FiscalSignError`.
    """

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        self._keys = dict(keys)

    def verify(self, document: bytes) -> bool | None:
        code, elements = _top_level(document)
        numbers = [document[a + 4 : b] for tag, a, b in elements if tag == _FN_NUMBER_TAG]
        if len(numbers) != 1:
            return None
        key = self._keys.get(numbers[0].decode("cp866"))
        if key is None:
            return None
        try:
            signed, sign = _split(document, code, elements)
        except FiscalSignError:
            return False
        return hmac.compare_digest(sign, emulator_fiscal_sign(key, signed))
