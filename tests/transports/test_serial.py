"""open_serial on real pseudo-terminals: the slave end is the "register port", the master the wire.

The slave's line discipline processes both directions (input from the master, output to it),
so a pty shows every translation a wrongly set up serial port would make.
"""

from __future__ import annotations

import errno
import os
import termios
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from transports import TransportError
from transports.serial import BAUD_RATES, SerialStream, open_serial

EVERY_BYTE = bytes(range(256))


@asynccontextmanager
async def line(baud: int = 115200) -> AsyncIterator[tuple[SerialStream, trio.lowlevel.FdStream]]:
    """(the port opened by path with open_serial, the pty master as the register's end)."""
    master, slave = os.openpty()
    try:
        port = await open_serial(os.ttyname(slave), baud=baud)
    finally:
        os.close(slave)  # only open_serial's fd keeps the slave open from here on
    wire = trio.lowlevel.FdStream(master)
    async with wire, port:
        yield port, wire


async def receive_exactly(stream: trio.abc.ReceiveStream, size: int) -> bytes:
    received = bytearray()
    while len(received) < size:
        data = await stream.receive_some()
        assert data, f"end of stream after {len(received)} of {size} bytes"
        received += data
    return bytes(received)


async def test_every_byte_value_passes_unchanged_both_ways() -> None:
    """CR/LF, XON/XOFF (11h/13h), ^C/^Z/^\\ (03h/1Ah/1Ch), DEL and 8-bit bytes are all data."""
    with trio.fail_after(10):
        async with line() as (port, wire):
            await wire.send_all(EVERY_BYTE)
            assert await receive_exactly(port, 256) == EVERY_BYTE
            await port.send_all(EVERY_BYTE)
            assert await receive_exactly(wire, 256) == EVERY_BYTE
            # Nothing echoed back to the wire, nothing held back: both ends are now empty.
            with trio.move_on_after(0.2):
                extra = await wire.receive_some()
                pytest.fail(f"the port echoed {extra!r}")


async def test_large_transfers_both_ways_at_once() -> None:
    """More than the pty buffers hold, so both ends wait for readiness (EAGAIN paths)."""
    payload = EVERY_BYTE * 1024  # 256 KiB each way
    with trio.fail_after(20):
        async with line() as (port, wire), trio.open_nursery() as nursery:
            nursery.start_soon(port.send_all, payload)
            nursery.start_soon(wire.send_all, payload)
            from_port = await receive_exactly(wire, len(payload))
            from_wire = await receive_exactly(port, len(payload))
    assert from_port == payload and from_wire == payload


async def test_a_read_waits_for_data_instead_of_ending_the_stream() -> None:
    """With O_NONBLOCK and VMIN 0 an idle line would read as b"" — the end of the stream."""
    with trio.fail_after(10):
        async with line() as (port, wire), trio.open_nursery() as nursery:
            received: list[bytes] = []

            async def read() -> None:
                received.append(await port.receive_some())

            nursery.start_soon(read)
            await trio.sleep(0.2)
            assert received == []
            await wire.send_all(b"\x06")
    assert received == [b"\x06"]


@pytest.mark.parametrize("baud", [2400, 4800, 9600, 19200, 38400, 57600, 115200])
async def test_the_line_is_raw_8n1_without_flow_control(baud: int) -> None:
    async with line(baud) as (port, _):
        iflag, oflag, cflag, lflag, ispeed, ospeed, cc = termios.tcgetattr(port.fileno())
        assert os.get_blocking(port.fileno()) is False
    assert ispeed == ospeed == getattr(termios, f"B{baud}")
    assert cflag & termios.CSIZE == termios.CS8
    assert not cflag & (termios.PARENB | termios.CSTOPB | termios.CRTSCTS)
    assert cflag & termios.CLOCAL and cflag & termios.CREAD
    assert not iflag & (termios.IXON | termios.IXOFF | termios.ICRNL | termios.INLCR)
    assert not iflag & (termios.IGNCR | termios.ISTRIP | termios.BRKINT | termios.PARMRK)
    assert not oflag & termios.OPOST
    assert not lflag & (termios.ICANON | termios.ECHO | termios.ISIG | termios.IEXTEN)
    assert (cc[termios.VMIN], cc[termios.VTIME]) == (1, 0)


async def test_register_rates_are_the_supported_ones() -> None:
    assert set(BAUD_RATES) >= {2400, 4800, 9600, 19200, 38400, 57600, 115200}
    assert set(BAUD_RATES) <= {
        2400,
        4800,
        9600,
        19200,
        38400,
        57600,
        115200,
        230400,
        460800,
        921600,
    }


@pytest.mark.parametrize("baud", [0, 1200, 14400, 100000, 2000000])
async def test_an_unsupported_baud_rate_is_named(baud: int) -> None:
    master, slave = os.openpty()
    try:
        with pytest.raises(TransportError, match=f"{baud} baud"):
            await open_serial(os.ttyname(slave), baud=baud)
    finally:
        os.close(slave)
        os.close(master)


async def test_a_missing_device_is_named(tmp_path: Path) -> None:
    path = str(tmp_path / "ttyUSB9")
    with pytest.raises(TransportError, match="ttyUSB9") as caught:
        await open_serial(path)
    assert caught.value.errno == errno.ENOENT


async def test_a_file_that_is_not_a_terminal_is_refused_and_not_leaked(tmp_path: Path) -> None:
    path = tmp_path / "not-a-tty"
    path.write_bytes(b"")
    before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    with pytest.raises(TransportError, match="not-a-tty"):
        await open_serial(str(path))
    if before is not None:
        assert len(os.listdir("/proc/self/fd")) == before


async def test_bytes_waiting_before_the_open_are_dropped() -> None:
    """A stale answer in the input buffer would be read as the answer to the first command."""
    master, slave = os.openpty()
    wire = trio.lowlevel.FdStream(master)
    try:
        await wire.send_all(b"stale")
        port = await open_serial(os.ttyname(slave))
    finally:
        os.close(slave)
    async with wire, port:
        await wire.send_all(b"fresh")
        with trio.fail_after(10):
            assert await receive_exactly(port, 5) == b"fresh"


async def test_aclose_closes_the_device() -> None:
    master, slave = os.openpty()
    try:
        port = await open_serial(os.ttyname(slave))
    finally:
        os.close(slave)
    fd = port.fileno()
    async with trio.lowlevel.FdStream(master) as wire:
        await port.aclose()
        with pytest.raises(OSError) as caught:
            os.fstat(fd)
        assert caught.value.errno == errno.EBADF
        assert port.fileno() == -1
        with pytest.raises(trio.ClosedResourceError):
            await port.send_all(b"x")
        await port.aclose()  # closing twice is harmless
        # The register's end sees the line go away: no slave fd is open any more.
        with trio.fail_after(10), pytest.raises(trio.BrokenResourceError):
            await wire.receive_some()


async def test_the_register_end_going_away_ends_the_stream() -> None:
    """Closing the master hangs the slave up, as unplugging a USB adapter does: reads end."""
    with trio.fail_after(10):
        async with line() as (port, wire):
            await wire.aclose()
            assert await port.receive_some() == b""
            with pytest.raises(trio.BrokenResourceError):
                await port.send_all(b"\x05")
