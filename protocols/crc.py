"""The checksums of the fiscal wire: CRC-16/CCITT-FALSE, ATOL's CRC-8 and the Shtrih LRC.

CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection) protects the ФН frame, the OFD
container and the Shtrih link v2 packet; ``binascii.crc_hqx`` computes exactly it in C with no
build step. ATOL transport v3 uses CRC-8 (poly 0x31, init 0xFF, no reflection), computed through
crcmod's C extension when it was built (see ``CRC8_IS_NATIVE``).
"""

from __future__ import annotations

import binascii
import sys
from collections.abc import Callable
from functools import reduce
from operator import xor

import crcmod

_crc8: Callable[[bytes], int] = crcmod.mkCrcFun(0x131, initCrc=0xFF, rev=False, xorOut=0x00)

#: True when crcmod's C extension is in use; a pure-Python fallback is about 30 times slower.
CRC8_IS_NATIVE: bool = bool(getattr(sys.modules["crcmod.crcmod"], "_usingExtension", False))


def crc16_ccitt_false(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/CCITT-FALSE: check value 0x29B1 for b"123456789"."""
    return binascii.crc_hqx(data, 0xFFFF)


def crc8_atol(data: bytes | bytearray | memoryview) -> int:
    """ATOL transport v3 CRC-8: poly 0x31, init 0xFF, not reflected, no final XOR."""
    return _crc8(bytes(data))


def lrc(data: bytes | bytearray | memoryview) -> int:
    """Shtrih-M link v1 LRC: XOR of every byte from LEN to the last data byte."""
    return reduce(xor, data, 0)
