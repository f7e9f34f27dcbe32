"""The ФН frame (кадр обмена ККТ — ФН): ``04 | LEN LE | CMD or STATUS | DATA | CRC16 LE``.

LEN counts the code byte and DATA, not the CRC; the CRC is CRC-16/CCITT-FALSE over LEN, the
code and DATA (everything after the start byte), sent low byte first (ffd.md §7,
registers.md §3.2). DATA is at most 1024 bytes, so a frame is at most 1030 bytes: the size of
one I²C packet.
"""

from __future__ import annotations

import struct

from protocols.crc import crc16_ccitt_false
from protocols.errors import ProtocolError

__all__ = [
    "ENQ",
    "MAX_DATA",
    "MAX_FRAME",
    "START",
    "FnError",
    "decode_frame",
    "encode_frame",
    "frame_size",
]

#: MSG_START, the first byte of every frame in both directions.
START = 0x04
#: ENQ: a lone byte from the KKT asking the ФН to send its last answer again (UART only).
ENQ = 0x05
#: The largest DATA field of one frame.
MAX_DATA = 1024
#: The largest frame: start, LEN (2), code, DATA, CRC (2).
MAX_FRAME = 1 + 2 + 1 + MAX_DATA + 2

_HEADER = struct.Struct("<BHB")
_CRC = struct.Struct("<H")


class FnError(ProtocolError):
    """A ФН frame or command that cannot be accepted, or a misuse of the ФН connection."""


def encode_frame(code: int, data: bytes) -> bytes:
    """One frame carrying a command code (KKT → ФН) or a status byte (ФН → KKT)."""
    if not 0 <= code <= 0xFF:
        raise FnError(f"code {code} does not fit a byte", "frame.code")
    if len(data) > MAX_DATA:
        raise FnError(f"{len(data)} bytes of data, at most {MAX_DATA}", "frame.data")
    body = _HEADER.pack(START, len(data) + 1, code) + data
    return body + _CRC.pack(crc16_ccitt_false(memoryview(body)[1:]))


def frame_size(head: bytes | bytearray | memoryview) -> int | None:
    """The size of the frame that starts ``head``, or None until its 3 header bytes are in.

    Rejects a wrong start byte or an impossible LEN at once, so that garbage is refused after
    three bytes instead of being buffered.
    """
    if not head:
        return None
    if head[0] != START:
        raise FnError(f"a frame starts with 04, got {head[0]:02x}", "frame.start")
    if len(head) < 3:
        return None
    length = head[1] | head[2] << 8
    if not 1 <= length <= MAX_DATA + 1:
        raise FnError(f"LEN {length} is outside 1..{MAX_DATA + 1}", "frame.len")
    return length + 5


def decode_frame(frame: bytes | bytearray | memoryview) -> tuple[int, bytes]:
    """The code and DATA of exactly one frame; FnError for anything else."""
    size = frame_size(frame[:3])
    if size is None:
        raise FnError(f"a frame has at least 6 bytes, got {len(frame)}", "frame")
    if len(frame) != size:
        raise FnError(f"LEN says a {size}-byte frame, got {len(frame)} bytes", "frame.len")
    view = memoryview(frame)
    (crc,) = _CRC.unpack(view[-2:])
    if crc != crc16_ccitt_false(view[1:-2]):
        raise FnError(f"CRC {crc:04x} does not match the frame", "frame.crc")
    return frame[3], bytes(view[4:-2])
