"""A register's RS-232 / USB-serial line as a trio stream, with the stdlib only.

Register protocols are binary: STX, ENQ, ACK, NAK, 0x11/0x13 and CR/LF are ordinary bytes in
their frames, so the line must be fully raw — no echo, no signals, no XON/XOFF, no CR/LF
translation — and 8N1 without hardware handshake (registers.md §1.1).

``VMIN`` is 1, not 0: with ``O_NONBLOCK`` and ``VMIN = 0`` a read with nothing waiting returns
``b""`` on Linux and the BSDs, which a trio stream reports as the end of the stream; with
``VMIN = 1`` it fails with ``EAGAIN`` and trio waits for the fd instead. ``VTIME`` is 0:
inter-byte timeouts belong to the link layer (50–100 ms for Shtrih), which sees the clock.
"""

from __future__ import annotations

import os
import termios
from typing import Any

import trio

from transports.errors import TransportError

#: Baud rates registers speak (registers.md §1.1): 2400…115200 on every Shtrih and ATOL, and
#: 230400, 460800, 921600 on some models — offered where the platform's termios has them.
BAUD_RATES: dict[int, int] = {
    rate: getattr(termios, f"B{rate}")
    for rate in (2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)
    if hasattr(termios, f"B{rate}")
}


def _flags(*names: str) -> int:
    """The OR of the termios flags this platform defines (CRTSCTS, IUCLC are not everywhere)."""
    value = 0
    for name in names:
        value |= getattr(termios, name, 0)
    return value


_IFLAG_OFF = _flags(
    "IGNBRK", "BRKINT", "PARMRK", "ISTRIP", "INLCR", "IGNCR", "ICRNL", "IXON", "IXOFF",
    "IXANY", "INPCK", "IUCLC", "IMAXBEL",
)  # fmt: skip
_OFLAG_OFF = _flags("OPOST")
_CFLAG_OFF = _flags("CSIZE", "PARENB", "PARODD", "CSTOPB", "CRTSCTS", "CMSPAR")
_CFLAG_ON = _flags("CS8", "CLOCAL", "CREAD")
_LFLAG_OFF = _flags("ECHO", "ECHOE", "ECHOK", "ECHONL", "ICANON", "ISIG", "IEXTEN")


def raw_attributes(current: list[Any], speed: int) -> list[Any]:
    """``current`` (from tcgetattr) made raw 8N1, no flow control, at ``speed`` (a ``B*``)."""
    iflag, oflag, cflag, lflag, _, _, cc = current
    cc = list(cc)
    cc[termios.VMIN] = 1
    cc[termios.VTIME] = 0
    return [
        iflag & ~_IFLAG_OFF,
        oflag & ~_OFLAG_OFF,
        cflag & ~_CFLAG_OFF | _CFLAG_ON,
        lflag & ~_LFLAG_OFF,
        speed,
        speed,
        cc,
    ]


def is_raw(attributes: list[Any], speed: int) -> bool:
    """Whether the line is raw 8N1 at ``speed``, whatever bits a driver keeps besides."""
    iflag, oflag, cflag, lflag, ispeed, ospeed, cc = attributes
    return (
        not iflag & _IFLAG_OFF
        and not oflag & _OFLAG_OFF
        and cflag & _CFLAG_OFF == termios.CS8 & _CFLAG_OFF
        and cflag & _CFLAG_ON == _CFLAG_ON
        and not lflag & _LFLAG_OFF
        and ispeed == ospeed == speed
        and cc[termios.VMIN] == 1
        and cc[termios.VTIME] == 0
    )


class SerialStream(trio.abc.Stream):
    """An open serial line; closing it closes the device."""

    def __init__(self, fd: int, *, path: str, baud: int) -> None:
        self.path = path
        self.baud = baud
        self._stream = trio.lowlevel.FdStream(fd)

    def fileno(self) -> int:
        """The device's fd, for termios calls (flush, break); -1 once closed."""
        return self._stream.fileno()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Bytes as they arrive; ``b""`` only when the line hung up (a USB adapter unplugged)."""
        return await self._stream.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self._stream.aclose()


async def open_serial(path: str, *, baud: int = 115200) -> SerialStream:
    """Open ``path`` raw 8N1 at ``baud``, dropping bytes that arrived before anyone listened.

    Stale input would be read as the answer to the first command, so it is flushed.
    Raises :class:`TransportError` naming the baud rate or the path.
    """
    speed = BAUD_RATES.get(baud)
    if speed is None:
        rates = ", ".join(map(str, BAUD_RATES))
        raise TransportError(f"{path}: {baud} baud is not a register's rate ({rates})")
    await trio.lowlevel.checkpoint()
    try:
        # O_NONBLOCK also keeps open() from waiting for carrier on a modem-control line.
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise TransportError(exc.errno, f"cannot open {path}: {exc.strerror}") from exc
    try:
        try:
            wanted = raw_attributes(termios.tcgetattr(fd), speed)
            termios.tcsetattr(fd, termios.TCSANOW, wanted)
            # tcsetattr succeeds when any one change took; check that all of them did.
            applied = termios.tcgetattr(fd)
        except termios.error as exc:
            raise TransportError(f"cannot set up {path}: {exc.args[-1]}") from exc
        if not is_raw(applied, speed):
            raise TransportError(f"{path} did not accept raw 8N1 at {baud} baud")
        termios.tcflush(fd, termios.TCIFLUSH)
    except BaseException:
        os.close(fd)
        raise
    return SerialStream(fd, path=path, baud=baud)
