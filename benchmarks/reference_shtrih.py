"""pyshtrih's Shtrih-M link v1 framing, cut into pieces the benchmark can time beside Kassa's.

pyshtrih (2.0.x, a Shtrih-M driver, a dev dependency) builds and reads its frames inside the
methods that drive its ``serial.Serial``, so what is compared is, precisely:

- :func:`pyshtrih_frame`: the lines of ``Protocol.command_nopass`` that build the frame
  ``STX LEN CMD params LRC``, copied verbatim (they are not a function of their own there) and
  calling pyshtrih's own ``misc`` helpers (``int_to_bytes``, ``CAST_SIZE``, ``CAST_CMD``,
  ``bytearray_concat``, ``lrc``); beside ``link_v1.encode_frame``.
- :func:`pyshtrih_reader` with ``decode=False``: pyshtrih's own ``Protocol.handle_response``
  reading one frame (STX, LEN, payload, LRC check, then it writes ACK) from an in-memory stand-in
  for its port, with ``handle_payload`` replaced by the identity; beside ``link_v1.parse_frame``.
- :func:`pyshtrih_reader` with ``decode=True``: the same, through pyshtrih's real
  ``handle_payload``, which decodes an answer into a ``Response`` of named fields (the 16 FR
  flags become a dict of bits); beside ``decode_answer(parse_frame(...))``.

The stand-in's ``read`` is one Python call for each of the four reads of a frame: that cost
counts against pyshtrih, as a real port's reads would. pyshtrih has no ATOL side, no link v2,
and decodes no requests, so nothing else is compared. Without pyshtrih installed
:data:`VERSION` is None and the benchmark measures Kassa alone.
"""

from __future__ import annotations

import io
from collections.abc import Callable

try:
    from pyshtrih import __version__ as _version  # type: ignore[import-untyped]
    from pyshtrih import misc
    from pyshtrih.protocol import STX, Protocol  # type: ignore[import-untyped]
except ImportError:  # a dev dependency: `kassa bench shtrih` then runs without the reference
    _version = misc = STX = Protocol = None

#: pyshtrih's version, or None when it is not installed.
VERSION: str | None = _version


def split_payload(payload: bytes) -> tuple[int, bytearray]:
    """pyshtrih's (cmd, params) for a payload: FFxxh commands are two bytes, big-endian."""
    size = 2 if payload[0] == 0xFF else 1
    return int.from_bytes(payload[:size], "big"), bytearray(payload[size:])


def pyshtrih_frame(cmd: int, params: bytearray) -> bytearray:
    """``STX LEN CMD params LRC`` exactly as ``Protocol.command_nopass`` builds it."""
    cmd_len = len(misc.int_to_bytes(cmd))
    buff = misc.bytearray_concat(
        misc.CAST_SIZE["1"](cmd_len + len(params)), misc.CAST_CMD[cmd_len](cmd), params
    )
    frame: bytearray = misc.bytearray_concat(STX, buff, misc.CAST_SIZE["1"](misc.lrc(buff)))
    return frame


class _Port:
    """What ``handle_response`` uses of ``serial.Serial`` (read, write) over one frame in memory."""

    def __init__(self, frame: bytes) -> None:
        self.buffer = io.BytesIO(frame)

    def read(self, size: int = 1) -> bytes:
        return self.buffer.read(size)

    def write(self, data: bytes | bytearray) -> int:
        return len(data)


def pyshtrih_reader(frame: bytes, *, decode: bool) -> Callable[[], object]:
    """A call that reads ``frame`` with ``Protocol.handle_response``; see the module docstring."""
    protocol = Protocol("unused", 115200, 1.0)  # builds a serial.Serial, never opens it
    port = _Port(frame)
    protocol.serial = port
    if not decode:
        protocol.handle_payload = bytes  # framing only: the payload as read
    rewind = port.buffer.seek

    def read() -> object:
        rewind(0)
        answer: object = protocol.handle_response()
        return answer

    return read
