"""The machinery both Shtrih-M link layers share: input buffer, outbox, event queue.

A connection is driven h11-style: ``receive_data(bytes)`` feeds bytes, ``next_event()`` pulls
events (or ``NEED_DATA``), ``send(event) -> bytes`` turns an application event into bytes, and
``data_to_send()`` drains the link's own replies (ACK, NAK, retransmissions) that receiving
bytes or a ``timeout()`` produced. Input is parsed lazily, one token per step, so after
``next_event()`` returns ``NEED_DATA`` the buffer holds at most one partial frame.
"""

from __future__ import annotations

from collections import deque

from protocols.shtrih.errors import ShtrihError
from protocols.shtrih.events import NEED_DATA, Event, NeedData, Timer

__all__ = ["LinkConnection"]


class LinkConnection:
    """Base of the four link connections (v1/v2 × host/device)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._out = bytearray()
        self._events: deque[Event] = deque()

    # --- what subclasses provide -------------------------------------------------------

    @property
    def broken(self) -> bool:
        """True after the host ran out of retries; every later call raises."""
        return False

    @property
    def timer(self) -> Timer:
        raise NotImplementedError

    def _advance(self) -> bool:
        """Lex one token and apply it; False when the buffer holds no whole token."""
        raise NotImplementedError

    def _expire(self) -> None:
        raise NotImplementedError

    # --- the public surface ------------------------------------------------------------

    @property
    def buffered(self) -> int:
        """Bytes held for a frame not yet complete (bounded by the maximum frame size)."""
        return len(self._buf)

    def receive_data(self, data: bytes) -> None:
        """Feed bytes that arrived from the peer."""
        self._check_usable()
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ShtrihError(f"expected bytes, got {type(data).__name__}", "data")
        self._buf += data

    def next_event(self) -> Event | NeedData:
        """The next event, or ``NEED_DATA`` once all whole frames have been consumed."""
        self._check_usable()
        while not self._events:
            if not self._advance():
                return NEED_DATA
        return self._events.popleft()

    def data_to_send(self) -> bytes:
        """Bytes the link itself wants written (acknowledgements, retries); may be empty."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def timeout(self) -> None:
        """Report that the timer named by :attr:`timer` expired (the caller owns the clock).

        A partial frame is dropped as a bad frame (inter-byte timeout); otherwise the wait
        the state machine was in ends, which on a host means a retry or, when retries are
        exhausted, :class:`ShtrihError`. Call it after ``next_event()`` returned ``NEED_DATA``.
        """
        self._check_usable()
        self._expire()

    def _check_usable(self) -> None:
        if self.broken:
            raise ShtrihError("the link gave up earlier; open a new connection", "state")
