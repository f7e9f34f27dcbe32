"""TCP to a register (Shtrih on port 12345, ATOL on 5555, a serial-to-TCP device server).

A register is a small device on a shop or rack network: it is switched off, unplugged or
rebooted without closing its connections. Without keepalive a half-open connection looks
healthy until the next command times out, and a connect to a dead address waits for the
kernel's SYN retries (minutes), so both are bounded here.
"""

from __future__ import annotations

import os
import socket

import trio

from transports.errors import ConnectTimeout, TransportError

#: Keepalive: probe after 10 s of silence, every 5 s, give up after 3 unanswered probes, so a
#: dead register is noticed in about 25 s. Probes are answered by the register's TCP stack even
#: while it prints or waits for its ФН, so a long command (E0h, up to 120 s) does not trip them.
KEEPALIVE_IDLE = 10
KEEPALIVE_INTERVAL = 5
KEEPALIVE_COUNT = 3


def _endpoint(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _error(message: str, exc: OSError) -> TransportError:
    """``message: why``, keeping the errno; trio groups per-address failures under the cause."""
    errno, reason = exc.errno, exc.strerror
    group = exc.__cause__
    if errno is None and isinstance(group, BaseExceptionGroup):
        leaves = [e for e in group.exceptions if isinstance(e, OSError) and e.errno is not None]
        if leaves:
            errno = leaves[0].errno
            reason = "; ".join(dict.fromkeys(os.strerror(e.errno or 0) for e in leaves))
    text = f"{message}: {reason or exc}"
    return TransportError(errno, text) if errno is not None else TransportError(text)


def _tune(sock: trio.socket.SocketType) -> None:
    """No Nagle delay (frames are small and latency-bound) and keepalive where the OS allows."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    # Linux and the BSDs name the idle option TCP_KEEPIDLE; macOS calls it TCP_KEEPALIVE.
    idle = getattr(socket, "TCP_KEEPIDLE", None) or getattr(socket, "TCP_KEEPALIVE", None)
    for option, value in (
        (idle, KEEPALIVE_IDLE),
        (getattr(socket, "TCP_KEEPINTVL", None), KEEPALIVE_INTERVAL),
        (getattr(socket, "TCP_KEEPCNT", None), KEEPALIVE_COUNT),
    ):
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


async def connect_tcp(host: str, port: int, *, timeout: float = 5.0) -> trio.SocketStream:
    """Connect within ``timeout`` seconds (name resolution included), tuned for a register.

    Raises :class:`ConnectTimeout` when the time runs out and :class:`TransportError` for any
    other failure; both name ``host:port``.
    """
    where = _endpoint(host, port)
    if not 0 < port < 65536:
        raise TransportError(f"cannot connect to {where}: the port is not 1..65535")
    try:
        with trio.fail_after(timeout):
            stream = await trio.open_tcp_stream(host, port)
    except trio.TooSlowError:
        raise ConnectTimeout(f"cannot connect to {where}: no answer in {timeout:g} s") from None
    except OSError as exc:
        raise _error(f"cannot connect to {where}", exc) from exc
    try:
        _tune(stream.socket)
    except OSError as exc:
        await stream.aclose()
        raise _error(f"cannot set up {where}", exc) from exc
    return stream


class SocketWire:
    """The file descriptor under a :class:`trio.SocketStream`, for a host that waits for each
    answer: a write goes out at once, and a read costs one wait for the socket to be readable
    and one ``read``.

    :meth:`trio.SocketStream.send_all` yields to the scheduler after every send and
    :meth:`~trio.SocketStream.receive_some` tries a ``recv`` before it waits, which fails
    with ``EAGAIN`` while the register works on the command: per exchange that is an extra
    trip through the run loop and a wasted system call, where the frames are a few hundred
    bytes that always fit the socket's buffer. The stream still owns the socket and closes it.
    """

    __slots__ = ("_fd",)

    #: The most one read takes: far above any frame, so a frame comes in one read.
    READ_SIZE: int = 65536

    def __init__(self, stream: trio.SocketStream) -> None:
        self._fd = stream.socket.fileno()

    async def send(self, data: bytes) -> None:
        """Write all of ``data``; waits only when the socket's buffer is full."""
        try:
            sent = os.write(self._fd, data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            raise _error("cannot send to the register", exc) from exc
        if sent == len(data):
            return  # a frame is a few hundred bytes: it nearly always goes in one write
        view = memoryview(data)[sent:]
        while view:
            try:
                view = view[os.write(self._fd, view) :]
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self._fd)
            except OSError as exc:
                raise _error("cannot send to the register", exc) from exc

    async def receive(self) -> bytes:
        """Wait until the socket is readable and read what is there; ``b""`` at its end."""
        while True:
            await trio.lowlevel.wait_readable(self._fd)
            try:
                return os.read(self._fd, self.READ_SIZE)
            except BlockingIOError:
                continue  # woken with nothing to read: wait again
            except OSError as exc:
                raise _error("cannot read from the register", exc) from exc
