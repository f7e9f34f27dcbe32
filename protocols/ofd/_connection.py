"""KKT ↔ OFD messages over one byte stream, as a sans-IO state machine per side.

Theory of operation
-------------------
A message is a session header and, unless its body length is 0, one container. The KKT
(CLIENT) sends a message and the OFD (SERVER) answers it with one, in turn; a KKT may send
several messages over one connection, one after the other (ffd.md §6.3).

Rule 1: the state table knows nothing of roles; the role says only which inputs a side sends.

Rule 2: any error is final: the call that found it raises :class:`OfdError` and the
connection moves to ERROR.

The header is read as soon as its 30 bytes are in, so garbage is refused before any body is
buffered, and no more than two maximal messages are ever held unread. The session header has
no checksum in the only mode seen in practice; the container's CRC is what guards a message.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Self

import attrs

from protocols.ofd._container import Container
from protocols.ofd._session import (
    FLAGS_EXPECT_REPLY,
    HEADER_SIZE,
    MAX_CONTAINER,
    P_VERSION_FFD_105,
    OfdError,
    SessionHeader,
)

__all__ = [
    "MAX_BUFFER",
    "MAX_MESSAGE",
    "NEED_DATA",
    "TRANSITIONS",
    "ConnectionClosed",
    "Input",
    "Message",
    "OfdConnection",
    "Role",
    "Sentinel",
    "State",
]

MAX_MESSAGE = HEADER_SIZE + MAX_CONTAINER
#: The most unread bytes a connection holds before it refuses more.
MAX_BUFFER = 2 * MAX_MESSAGE


class Role(enum.Enum):
    CLIENT = "client"  # the KKT: sends documents, receives acks
    SERVER = "server"  # the OFD: receives documents, sends acks


class State(enum.Enum):
    IDLE = "idle"
    AWAITING_REPLY = "awaiting reply"
    CLOSED = "closed"
    ERROR = "error"


class Input(enum.Enum):
    REQUEST = "request"  # a message from the KKT
    REPLY = "reply"  # a message from the OFD
    CLOSE = "close"  # end of the byte stream


#: (state, input) → next state. A pair that is not here is a protocol error.
TRANSITIONS: Mapping[tuple[State, Input], State] = {
    (State.IDLE, Input.REQUEST): State.AWAITING_REPLY,
    (State.IDLE, Input.CLOSE): State.CLOSED,
    (State.AWAITING_REPLY, Input.REPLY): State.IDLE,
    (State.CLOSED, Input.CLOSE): State.CLOSED,  # next_event() after the end, again
}

_SENDS: Mapping[Role, Input] = {Role.CLIENT: Input.REQUEST, Role.SERVER: Input.REPLY}


class Sentinel(enum.Enum):
    NEED_DATA = "need data"


#: next_event(): no complete message yet; call receive_data() with more bytes.
NEED_DATA = Sentinel.NEED_DATA


@attrs.frozen(kw_only=True)
class Message:
    """A session header and the container it announces (None when its body length is 0)."""

    header: SessionHeader
    container: Container | None = None

    def __attrs_post_init__(self) -> None:
        size = 0 if self.container is None else self.container.length
        if self.header.body_length != size:
            raise OfdError(
                f"the header announces {self.header.body_length} bytes, the body is {size}",
                "header.body_length",
            )

    @classmethod
    def wrap(
        cls,
        container: Container | None,
        *,
        client_id: str,
        p_version: bytes = P_VERSION_FFD_105,
        flags: int = FLAGS_EXPECT_REPLY,
    ) -> Self:
        """A message around ``container`` with a header that announces it."""
        size = 0 if container is None else container.length
        header = SessionHeader(
            client_id=client_id, body_length=size, p_version=p_version, flags=flags
        )
        return cls(header=header, container=container)

    def encode(self) -> bytes:
        body = b"" if self.container is None else self.container.encode()
        return self.header.encode() + body


@attrs.frozen
class ConnectionClosed:
    """The byte stream ended between messages."""


class OfdConnection:
    """One side of a KKT ↔ OFD connection: bytes in, messages out; messages in, bytes out."""

    def __init__(self, role: Role) -> None:
        self.role = role
        self._state = State.IDLE
        self._buffer = bytearray()
        self._header: SessionHeader | None = None
        self._eof = False

    @property
    def state(self) -> State:
        return self._state

    @property
    def buffered(self) -> int:
        """Received bytes not yet turned into messages."""
        return len(self._buffer)

    def _move(self, kind: Input) -> None:
        new = TRANSITIONS.get((self._state, kind))
        if new is None:
            was, self._state = self._state, State.ERROR
            raise OfdError(f"{kind.value} is not allowed when {was.value}", self.role.value)
        self._state = new

    def _fail(self, exc: OfdError) -> OfdError:
        self._state = State.ERROR
        return exc

    def send(self, message: Message) -> bytes:
        """The bytes of ``message``: a request from a client, a reply from a server.

        Raises:
            OfdError: the state does not allow it (one reply per request, in turn).
        """
        if self._state is State.ERROR:
            raise OfdError("the connection has failed", self.role.value)
        self._move(_SENDS[self.role])
        return message.encode()

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the peer; ``b""`` means the stream has ended.

        Raises:
            OfdError: bytes after the end of the stream, or more than ``MAX_BUFFER`` unread.
        """
        if not data:
            self._eof = True
            return
        if self._eof:
            raise self._fail(OfdError("bytes after the end of the stream", self.role.value))
        if len(self._buffer) + len(data) > MAX_BUFFER:
            raise self._fail(
                OfdError(f"more than {MAX_BUFFER} unread bytes from the peer", self.role.value)
            )
        self._buffer += data

    def next_event(self) -> Message | ConnectionClosed | Sentinel:
        """The next message from the received bytes, or NEED_DATA.

        Raises:
            OfdError: a broken header or container, or a message the state does not allow.
        """
        if self._state is State.ERROR:
            raise OfdError("the connection has failed", self.role.value)
        try:
            return self._next_event()
        except OfdError as exc:
            raise self._fail(exc) from None

    def _next_event(self) -> Message | ConnectionClosed | Sentinel:
        buffer = self._buffer
        kind = Input.REPLY if self.role is Role.CLIENT else Input.REQUEST
        if self._header is None:
            if not buffer and self._eof:
                self._move(Input.CLOSE)
                return ConnectionClosed()
            if len(buffer) < HEADER_SIZE:
                return self._short()
            header = SessionHeader.decode(bytes(buffer[:HEADER_SIZE]))
            if (self._state, kind) not in TRANSITIONS:
                self._move(kind)  # raises now, before the body is waited for
            self._header = header
        end = HEADER_SIZE + self._header.body_length
        if len(buffer) < end:
            return self._short()
        header, self._header = self._header, None
        body = bytes(buffer[HEADER_SIZE:end])
        del buffer[:end]
        self._move(kind)
        container = Container.decode(body) if body else None
        return Message(header=header, container=container)

    def _short(self) -> Sentinel:
        if self._eof:
            raise OfdError(f"the stream ended inside a message ({self.buffered} bytes)", "message")
        return NEED_DATA
