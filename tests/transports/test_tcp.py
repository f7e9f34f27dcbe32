"""connect_tcp against real sockets on 127.0.0.1: echo, socket options, refusal, timeout."""

from __future__ import annotations

import errno
import select
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from functools import partial

import pytest
import trio

from transports import ConnectTimeout, TransportError
from transports.tcp import KEEPALIVE_COUNT, KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, connect_tcp


async def echo(stream: trio.SocketStream) -> None:
    async with stream:
        async for data in stream:
            await stream.send_all(data)


async def test_bytes_echo_through_a_real_listener() -> None:
    every_byte = bytes(range(256)) * 64
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(partial(trio.serve_tcp, echo, 0, host="127.0.0.1"))
            port = listeners[0].socket.getsockname()[1]
            stream = await connect_tcp("127.0.0.1", port)
            async with stream:
                await stream.send_all(every_byte)
                received = bytearray()
                while len(received) < len(every_byte):
                    received += await stream.receive_some()
                assert received == every_byte
            nursery.cancel_scope.cancel()


async def test_the_socket_is_tuned_for_a_register() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(partial(trio.serve_tcp, echo, 0, host="127.0.0.1"))
            port = listeners[0].socket.getsockname()[1]
            async with await connect_tcp("127.0.0.1", port) as stream:
                sock = stream.socket
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
                if hasattr(socket, "TCP_KEEPIDLE"):
                    idle = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)
                    assert idle == KEEPALIVE_IDLE
                    interval = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL)
                    assert interval == KEEPALIVE_INTERVAL
                    count = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT)
                    assert count == KEEPALIVE_COUNT
            nursery.cancel_scope.cancel()


async def test_a_refused_connection_names_the_endpoint() -> None:
    """A port bound but not listening answers SYN with RST (and stays ours for the test)."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        with pytest.raises(TransportError, match=f"127.0.0.1:{port}.*refused") as caught:
            await connect_tcp("127.0.0.1", port)
    assert isinstance(caught.value, OSError)
    assert caught.value.errno == errno.ECONNREFUSED
    assert not isinstance(caught.value, ConnectTimeout)


@pytest.mark.parametrize("port", [0, 65536, -1])
async def test_a_port_out_of_range_is_refused_before_connecting(port: int) -> None:
    with pytest.raises(TransportError, match=f"127.0.0.1:{port}"):
        await connect_tcp("127.0.0.1", port)


@contextmanager
def full_backlog() -> Iterator[int]:
    """A listener on 127.0.0.1 whose accept queue is full, so the kernel drops new SYNs.

    Linux (tcp_conn_request) drops a SYN while the accept queue is full and the client keeps
    retrying; other kernels may answer RST instead. So the queue is filled until a raw probe
    really stays unanswered, and the test is skipped when that cannot be had.
    """
    with ExitStack() as stack:
        listener = stack.enter_context(socket.socket())
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(8):
            probe = stack.enter_context(socket.socket())
            probe.setblocking(False)
            probe.connect_ex(("127.0.0.1", port))
            _, writable, _ = select.select([], [probe], [], 0.3)
            if not writable:
                yield port
                return
        pytest.skip("this kernel does not leave a connect to a full backlog unanswered")


async def test_a_silent_peer_times_out_naming_the_endpoint() -> None:
    with full_backlog() as port:
        started = trio.current_time()
        with pytest.raises(ConnectTimeout, match=f"127.0.0.1:{port}.*0.3 s"):
            await connect_tcp("127.0.0.1", port, timeout=0.3)
        elapsed = trio.current_time() - started
    assert 0.3 <= elapsed < 2.0
    assert isinstance(ConnectTimeout("x"), TimeoutError)
