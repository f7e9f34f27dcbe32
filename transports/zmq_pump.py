"""A ZeroMQ socket under trio: one task, the pump, makes every libzmq call for the socket.

pyzmq has no trio support, and the ZMQ file descriptor is edge-triggered: a task parked on it
while another task touches the same socket misses its wakeup (engineering.md §2.2 reproduced 50
of 50 replies stranded). So the pump owns the socket outright. Other tasks hand it outgoing
messages with :meth:`Pump.send_nowait` — which wakes it at most once per park — and receive
incoming messages from :attr:`Pump.inbox` in batches, one channel item per drain, because a
hand-off per message costs about four times the throughput (§2.4). Before every park it
re-reads ``zmq.EVENTS``, since data that arrived while it was busy raises no new edge.

The bounded inbox is the back-pressure point: when the engine does not keep up, the pump stops
reading, and ZeroMQ's own high-water marks push back on the peers.

A server that authenticates its peers through ZAP needs each message's ``User-Id`` property,
which only a :class:`zmq.Frame` carries: with ``user_id=True`` the pump reads it and appends it
to every message as one more frame (``b""`` when the connection has none). A send-only socket
(``PUB``, ``PUSH``) is never read from, since libzmq refuses a receive on it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import cast

import trio
import zmq

#: The most messages one drain hands over as one batch.
MAX_BATCH = 4096
#: Socket types libzmq cannot receive on.
_SEND_ONLY = frozenset({zmq.PUB, zmq.PUSH})

Frames = Sequence[bytes]


class Pump:
    """The single owner of one ZeroMQ socket inside a trio run."""

    def __init__(
        self, socket: zmq.Socket[bytes], *, inbox_batches: int = 16, user_id: bool = False
    ) -> None:
        self.socket = socket
        self._fd = socket.FD
        self._user_id = user_id
        self._receives = socket.type not in _SEND_ONLY
        self._outgoing: deque[Frames] = deque()
        self._park: trio.CancelScope | None = None
        self._inbox_send, self.inbox = trio.open_memory_channel[list[list[bytes]]](inbox_batches)
        self.sent = 0  # messages handed to libzmq, for tests and benchmarks
        self.received = 0

    def send_nowait(self, frames: Frames) -> None:
        """Queue one multipart message; callable from any task of the run, never blocks."""
        self._outgoing.append(frames)
        if self._park is not None:
            self._park.cancel()
            self._park = None

    @property
    def pending(self) -> int:
        """Messages queued but not yet taken by libzmq."""
        return len(self._outgoing)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Pump until cancelled; closes the inbox and tells trio the fd is going away."""
        socket = self.socket
        task_status.started()
        try:
            while True:
                while self._outgoing:
                    try:
                        socket.send_multipart(self._outgoing[0], zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    self._outgoing.popleft()
                    self.sent += 1
                batch: list[list[bytes]] = []
                while self._receives and len(batch) < MAX_BATCH:
                    try:
                        if self._user_id:
                            batch.append(self._receive_with_user_id())
                        else:
                            batch.append(socket.recv_multipart(zmq.NOBLOCK))
                    except zmq.Again:
                        break
                if batch:
                    self.received += len(batch)
                    await self._inbox_send.send(batch)
                    continue
                events = cast(int, socket.getsockopt(zmq.EVENTS))
                if events & zmq.POLLIN or (self._outgoing and events & zmq.POLLOUT):
                    await trio.lowlevel.checkpoint()
                    continue
                with trio.CancelScope() as park:
                    self._park = park
                    await trio.lowlevel.wait_readable(self._fd)
                self._park = None
        finally:
            self._park = None
            trio.lowlevel.notify_closing(self._fd)
            self._inbox_send.close()

    def _receive_with_user_id(self) -> list[bytes]:
        """One message, plus the ``User-Id`` its connection's ZAP handler gave, as a frame."""
        socket = self.socket
        first = socket.recv(zmq.NOBLOCK, copy=False)
        frames = [first.bytes]
        more = first.more
        while more:  # the parts of a message arrive together: the rest is already here
            frames.append(socket.recv(zmq.NOBLOCK))
            more = bool(socket.getsockopt(zmq.RCVMORE))
        try:
            user = first.get("User-Id")
        except zmq.ZMQError:  # no ZAP handler authenticated this connection
            user = ""
        frames.append(user.encode() if isinstance(user, str) else b"")
        return frames
