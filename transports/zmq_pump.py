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

A ``ROUTER`` drops a message to a peer whose queue is full (it has left about its high-water
marks' worth unread), without a word. With ``notice`` the pump sets ``ROUTER_MANDATORY``, so
that libzmq says so, and then never waits on one peer: a message that does not fit is dropped
and counted for its peer, and before that peer's next message the pump sends it
``notice(count)`` (with the envelope of what was dropped), or as soon as it can take it. A
message sent with ``hold=True`` (a chunk of a stream) is held instead, and goes when its peer
has room again (:meth:`Pump.held` says how many wait). A message to a peer that is gone is
discarded, as libzmq would.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import cast

import trio
import zmq

#: The most messages one drain hands over as one batch.
MAX_BATCH = 4096
#: Socket types libzmq cannot receive on.
_SEND_ONLY = frozenset({zmq.PUB, zmq.PUSH})
#: Seconds between tries to send held messages and notices while nothing else wakes the pump.
RETRY_SECONDS = 0.02

Frames = Sequence[bytes]


class Pump:
    """The single owner of one ZeroMQ socket inside a trio run."""

    def __init__(
        self,
        socket: zmq.Socket[bytes],
        *,
        inbox_batches: int = 16,
        user_id: bool = False,
        notice: Callable[[int], bytes] | None = None,
    ) -> None:
        self.socket = socket
        self._fd = socket.FD
        self._user_id = user_id
        self._receives = socket.type not in _SEND_ONLY
        self._notice = notice
        if notice is not None:
            socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self._outgoing: deque[tuple[Frames, bool]] = deque()
        self._held: dict[bytes, deque[Frames]] = {}  # by peer: messages that wait for room
        self._untold: dict[bytes, tuple[Sequence[bytes], int]] = {}  # peer: envelope, dropped
        self._park: trio.CancelScope | None = None
        self._inbox_send, self.inbox = trio.open_memory_channel[list[list[bytes]]](inbox_batches)
        self.sent = 0  # messages handed to libzmq, for tests and benchmarks
        self.received = 0
        self.dropped = 0  # messages dropped for a full peer (each one told in a notice)
        self.unroutable = 0  # messages to peers that were gone

    def send_nowait(self, frames: Frames, *, hold: bool = False) -> None:
        """Queue one multipart message; callable from any task of the run, never blocks.

        ``hold``: if its peer is full, keep it until the peer has room (with ``notice``).
        """
        self._outgoing.append((frames, hold))
        if self._park is not None:
            self._park.cancel()
            self._park = None

    @property
    def pending(self) -> int:
        """Messages queued but not yet taken by libzmq."""
        return len(self._outgoing)

    def held(self, peer: bytes) -> int:
        """Messages to ``peer`` held until it has room."""
        return len(self._held.get(peer, ()))

    def drop_held(self, peer: bytes) -> None:
        """Give up the messages held for ``peer``: dropped, and told as such."""
        for frames in self._held.pop(peer, ()):
            self._count_drop(frames)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Pump until cancelled; closes the inbox and tells trio the fd is going away."""
        socket = self.socket
        task_status.started()
        try:
            while True:
                if self._notice is not None:
                    self._flush_routed()
                while self._outgoing and self._notice is None:
                    try:
                        socket.send_multipart(self._outgoing[0][0], zmq.NOBLOCK, copy=False)
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
                    if self._held or self._untold:  # nothing wakes the pump when a peer reads
                        park.deadline = trio.current_time() + RETRY_SECONDS
                    await trio.lowlevel.wait_readable(self._fd)
                self._park = None
        finally:
            self._park = None
            trio.lowlevel.notify_closing(self._fd)
            self._inbox_send.close()

    def _flush_routed(self) -> None:
        """Send what is queued, never waiting on one peer: see the module docstring."""
        for peer in list(self._held):
            self._send_held(peer)
        for peer in list(self._untold):
            self._tell(peer)
        while self._outgoing:
            frames, hold = self._outgoing.popleft()
            peer = frames[0]
            if hold and peer in self._held:  # behind what it already holds for that peer
                self._held[peer].append(frames)
            elif not self._tell(peer) or not self._try(frames):
                if hold:
                    self._held.setdefault(peer, deque()).append(frames)
                else:
                    self._count_drop(frames)

    def _send_held(self, peer: bytes) -> None:
        held = self._held[peer]
        while held and self._tell(peer) and self._try(held[0]):
            held.popleft()
        if not held:
            self._held.pop(peer, None)

    def _tell(self, peer: bytes) -> bool:
        """Send ``peer`` the notice of what was dropped for it, if any; False if it is full."""
        untold = self._untold.get(peer)
        if untold is None:
            return True
        envelope, count = untold
        assert self._notice is not None
        if not self._try([*envelope, self._notice(count)]):
            return False
        self._untold.pop(peer, None)
        return True

    def _try(self, frames: Frames) -> bool:
        """Send one message if its peer has room; a peer that is gone takes it (discarded)."""
        try:
            self.socket.send_multipart(frames, zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return False
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EHOSTUNREACH:
                raise
            self.unroutable += 1
            peer = frames[0]
            self._untold.pop(peer, None)  # nobody is left to tell
            self._held.pop(peer, None)
            return True
        self.sent += 1
        return True

    def _count_drop(self, frames: Frames) -> None:
        peer = frames[0]
        _, count = self._untold.get(peer, (frames, 0))
        self._untold[peer] = (frames[:-1], count + 1)
        self.dropped += 1

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
