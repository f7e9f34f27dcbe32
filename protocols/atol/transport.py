"""ATOL transport framing (транспортный протокол): v3 packets and v2 frames.

v3, used by current ATOL registers over USB, COM and TCP::

    STX 0xFE | LEN (2: len & 0x7F, len >> 7) | ID | DATA (stuffed) | CRC8 (stuffed)

LEN counts the unstuffed DATA. ESC stuffing (0xFE -> FD EE, 0xFD -> FD ED) covers DATA and the
CRC byte, never LEN or ID. CRC-8 (poly 0x31, init 0xFF) covers ID and the unstuffed DATA.

How :class:`FrameReader` reads a byte stream. Where the reference is silent it follows atol4j
(S6) and the other public drivers, and says so here:

- 0xFE appears on the wire only as STX: LEN bytes are at most 0x7F, an ID is never 0xFE, and
  DATA and CRC are stuffed. So every 0xFE starts a frame; a frame cut short by one is reported
  as a :class:`BadFrame` and reading resumes at the new STX.
- Bytes before an STX are line noise and are dropped without a report.
- ESC followed by anything but 0xEE or 0xED makes the frame bad (S6 passes such a byte through;
  here it can only be noise).
- The reader holds at most one incomplete frame, so it never buffers more than
  :data:`MAX_FRAME_SIZE` bytes whatever it is fed.
- LEN is outside the CRC by the protocol's design: a corrupted LEN that shortens a frame passes
  the CRC with probability 1/256. No receiver can detect that case.

v2, used by older ATOL registers: ``STX 0x02 | DATA (DLE-stuffed) | ETX 0x03 | XOR``; bytes 0x03
and 0x10 in DATA are preceded by DLE 0x10, and the XOR covers every byte after STX up to and
including ETX. Only the framing is implemented here, not the ENQ/ACK/EOT session around it.
"""

from __future__ import annotations

import attrs

from protocols.atol.errors import AtolError
from protocols.crc import crc8_atol, lrc

__all__ = [
    "ASYNC_PACKET_ID",
    "ESC",
    "MAX_DATA_LENGTH",
    "MAX_FRAME_SIZE",
    "MAX_PACKET_ID",
    "STX",
    "TESC",
    "TSTX",
    "BadFrame",
    "FrameReader",
    "Packet",
    "decode_packet",
    "decode_v2_frame",
    "encode_packet",
    "encode_v2_frame",
    "stuff",
    "unstuff",
]

STX = 0xFE
ESC = 0xFD
TSTX = 0xEE
TESC = 0xED

#: Packets the register sends on its own (асинхронные пакеты), e.g. an A6 async result.
ASYNC_PACKET_ID = 0xF0
#: Host packet IDs run 0x00…0xDF and wrap (S6).
MAX_PACKET_ID = 0xDF
#: LEN has 7 + 7 bits.
MAX_DATA_LENGTH = 0x3FFF
#: STX, LEN, ID, then DATA and CRC with every byte stuffed.
MAX_FRAME_SIZE = 4 + 2 * (MAX_DATA_LENGTH + 1)

_STX_BYTES = bytes((STX,))
_ESC_BYTES = bytes((ESC,))

V2_STX = 0x02
V2_ETX = 0x03
V2_DLE = 0x10


def _byte(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not 0 <= value <= 0xFF:
        raise AtolError(f"must be a byte, got {value}", attribute.name)


def _data(_: object, attribute: attrs.Attribute[bytes], value: bytes) -> None:
    if len(value) > MAX_DATA_LENGTH:
        raise AtolError(f"{len(value)} bytes, at most {MAX_DATA_LENGTH}", attribute.name)


@attrs.frozen(slots=True)
class Packet:
    """One v3 transport packet (пакет): its ID and its unstuffed DATA."""

    packet_id: int = attrs.field(validator=_byte)
    data: bytes = attrs.field(validator=_data)


@attrs.frozen(slots=True)
class BadFrame:
    """A frame the reader had to throw away; ``packet_id`` when the header was readable."""

    packet_id: int | None
    reason: str


def stuff(data: bytes) -> bytes:
    """ESC-stuff DATA or the CRC byte: 0xFD -> FD ED first, then 0xFE -> FD EE."""
    return data.replace(b"\xfd", b"\xfd\xed").replace(b"\xfe", b"\xfd\xee")


def unstuff(body: bytes) -> bytes:
    """Undo :func:`stuff`; an ESC not followed by 0xEE or 0xED is an :class:`AtolError`."""
    if ESC not in body:
        return body
    parts = body.split(_ESC_BYTES)
    out = [parts[0]]
    for part in parts[1:]:
        if not part or part[0] not in (TSTX, TESC):
            raise AtolError("ESC 0xFD not followed by 0xEE or 0xED", "data")
        out.append(b"\xfe" if part[0] == TSTX else b"\xfd")
        out.append(part[1:])
    return b"".join(out)


def encode_packet(packet_id: int, data: bytes) -> bytes:
    """One v3 frame: a host ID 0x00…0xDF or the async ID 0xF0, and up to 16383 bytes."""
    if not (0 <= packet_id <= MAX_PACKET_ID or packet_id == ASYNC_PACKET_ID):
        raise AtolError(f"packet ID {packet_id:#x} is not 0x00…0xDF or 0xF0", "packet_id")
    length = len(data)
    if length > MAX_DATA_LENGTH:
        raise AtolError(f"{length} bytes, at most {MAX_DATA_LENGTH}", "data")
    crc = crc8_atol(bytes((packet_id,)) + data)
    return bytes((STX, length & 0x7F, length >> 7, packet_id)) + stuff(data) + stuff(bytes((crc,)))


def decode_packet(frame: bytes) -> Packet:
    """Decode exactly one v3 frame, stuffing and CRC checked."""
    if len(frame) < 5 or frame[0] != STX:
        raise AtolError("a frame starts with STX 0xFE and has at least 5 bytes", "frame")
    if STX in frame[1:]:
        raise AtolError("STX 0xFE inside the frame", "frame")
    l1, l2, packet_id = frame[1], frame[2], frame[3]
    if l1 > 0x7F or l2 > 0x7F:
        raise AtolError("a LEN byte above 0x7F", "len")
    length = l1 | l2 << 7
    raw = unstuff(frame[4:])
    if len(raw) != length + 1:
        raise AtolError(f"LEN says {length} data bytes, the frame has {len(raw) - 1}", "len")
    data = raw[:-1]
    expected = crc8_atol(bytes((packet_id,)) + data)
    if raw[-1] != expected:
        raise AtolError(f"CRC {raw[-1]:#04x}, computed {expected:#04x}", "crc")
    return Packet(packet_id=packet_id, data=data)


class FrameReader:
    """Cuts a v3 byte stream into packets and bad frames; see the module notes.

    It remembers how far it has scanned the incomplete frame, so feeding a frame byte by byte
    costs linear time.
    """

    __slots__ = ("_buf", "_end", "_esc_from", "_max_data_length", "_packet_id", "_stx_from")

    def __init__(self, max_data_length: int = MAX_DATA_LENGTH) -> None:
        if not 0 <= max_data_length <= MAX_DATA_LENGTH:
            raise AtolError(f"must be 0…{MAX_DATA_LENGTH}", "max_data_length")
        self._max_data_length = max_data_length
        self._buf = bytearray()
        self._reset()

    def _reset(self) -> None:
        # _end == 0: the header of the frame at the buffer start is not parsed yet.
        self._end = 0
        self._esc_from = 4
        self._stx_from = 4
        self._packet_id = 0

    @property
    def buffered_bytes(self) -> int:
        """Bytes held for an incomplete frame; never above :data:`MAX_FRAME_SIZE`."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Packet | BadFrame]:
        """Add bytes from the line; return every packet and bad frame they complete."""
        buf = self._buf
        buf += data
        out: list[Packet | BadFrame] = []
        while buf:
            if buf[0] != STX:
                start = buf.find(_STX_BYTES)
                if start < 0:
                    buf.clear()
                    break
                del buf[:start]
                self._reset()
            if self._end == 0:
                cut = buf.find(_STX_BYTES, 1, 4)
                if cut > 0:
                    out.append(BadFrame(None, "frame header cut by STX"))
                    del buf[:cut]
                    continue
                if len(buf) < 4:
                    break
                if buf[1] > 0x7F or buf[2] > 0x7F:
                    out.append(BadFrame(None, "a LEN byte above 0x7F"))
                    del buf[:1]
                    continue
                length = buf[1] | buf[2] << 7
                self._packet_id = buf[3]
                if length > self._max_data_length:
                    out.append(BadFrame(self._packet_id, f"LEN {length} above the limit"))
                    del buf[:1]
                    self._reset()
                    continue
                self._end = 5 + length
            end, i, avail = self._end, self._esc_from, len(buf)
            while True:
                stop = min(end, avail)
                found = buf.find(_ESC_BYTES, i, stop) if i < stop else -1
                if found < 0:
                    i = max(i, stop)
                    break
                end += 1  # an ESC pair carries one byte
                i = found + 2
            self._end, self._esc_from = end, i
            stop = min(end, avail)
            cut = buf.find(_STX_BYTES, self._stx_from, stop)
            if cut >= 0:
                out.append(BadFrame(self._packet_id, "frame cut by STX"))
                del buf[:cut]
                self._reset()
                continue
            self._stx_from = stop
            if end > avail:
                break
            frame = bytes(buf[:end])
            packet_id = self._packet_id
            del buf[:end]
            self._reset()
            try:
                out.append(decode_packet(frame))
            except AtolError as exc:
                out.append(BadFrame(packet_id, exc.reason))
        return out


def encode_v2_frame(data: bytes) -> bytes:
    """One v2 frame around DATA (password, command, parameters)."""
    body = data.replace(b"\x10", b"\x10\x10").replace(b"\x03", b"\x10\x03") + b"\x03"
    return b"\x02" + body + bytes((lrc(body),))


def decode_v2_frame(frame: bytes) -> bytes:
    """The unstuffed DATA of exactly one v2 frame, checksum checked."""
    if len(frame) < 3 or frame[0] != V2_STX:
        raise AtolError("a v2 frame starts with STX 0x02 and has at least 3 bytes", "frame")
    out = bytearray()
    i, n = 1, len(frame)
    while True:
        if i >= n:
            raise AtolError("no ETX 0x03", "frame")
        byte = frame[i]
        if byte == V2_ETX:
            break
        if byte == V2_DLE:
            if i + 1 >= n or frame[i + 1] not in (V2_DLE, V2_ETX):
                raise AtolError("DLE 0x10 not followed by 0x03 or 0x10", "data")
            out.append(frame[i + 1])
            i += 2
        else:
            out.append(byte)
            i += 1
    if i + 2 != n:
        raise AtolError("exactly one checksum byte must follow ETX", "frame")
    expected = lrc(frame[1 : i + 1])
    if frame[i + 1] != expected:
        raise AtolError(f"XOR {frame[i + 1]:#04x}, computed {expected:#04x}", "checksum")
    return bytes(out)
