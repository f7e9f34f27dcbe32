"""The KKT ↔ ФН exchange as a sans-IO state machine, one object per side.

Theory of operation
-------------------
The link is strictly one command at a time: the KKT (HOST) sends a command frame, the ФН
(DEVICE) answers it with one frame. Over UART the KKT may also send a lone ENQ (05h) to have
the last answer sent again (registers.md §3.1), which is how a lost answer is recovered
without repeating a command that made a fiscal document.

Rule 1: the state table knows nothing of roles. It tracks the one exchange both sides share
(``TRANSITIONS``); the role only says which inputs a side sends and which it receives, and
how received bytes are read (as commands and ENQ on the device, as answers on the host).

Rule 2: any error is final. The call that found it raises :class:`FnError` and the
connection moves to ERROR; a driver recovers with a new connection object and the ФН's own
state (30h, 40h), never by guessing what the broken frame said.

Bytes received past what a well-behaved peer could have sent (more than two maximal frames
unread) are refused, so a confused or hostile peer cannot make the buffer grow.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

import attrs

from protocols.fn._commands import (
    COMMANDS,
    Answer,
    Command,
    RawCommand,
    Request,
    decode_answer,
)
from protocols.fn._frame import ENQ, MAX_FRAME, FnError, decode_frame, frame_size

__all__ = [
    "MAX_BUFFER",
    "NEED_DATA",
    "TRANSITIONS",
    "ConnectionClosed",
    "Event",
    "FnConnection",
    "Input",
    "RepeatAnswer",
    "Role",
    "Sentinel",
    "State",
]

#: The most unread bytes a connection holds before it refuses more.
MAX_BUFFER = 2 * MAX_FRAME


class Role(enum.Enum):
    """Which side of the link a connection plays."""

    HOST = "host"  # the KKT: sends commands, receives answers
    DEVICE = "device"  # the ФН: receives commands, sends answers


class State(enum.Enum):
    """The state of the one exchange both sides share."""

    IDLE = "idle"  # nothing sent yet: no answer to repeat
    AWAITING_ANSWER = "awaiting answer"  # a command (or an ENQ) wants its answer
    ANSWERED = "answered"  # the last command has its answer; ENQ may ask for it again
    CLOSED = "closed"  # the byte stream ended between exchanges
    ERROR = "error"


class Input(enum.Enum):
    """What moves the state: the kinds of thing that cross the link."""

    COMMAND = "command"
    REPEAT = "repeat"  # ENQ
    ANSWER = "answer"
    CLOSE = "close"  # end of the byte stream


#: (state, input) → next state. A pair that is not here is a protocol error.
TRANSITIONS: Mapping[tuple[State, Input], State] = {
    (State.IDLE, Input.COMMAND): State.AWAITING_ANSWER,
    (State.IDLE, Input.CLOSE): State.CLOSED,
    (State.AWAITING_ANSWER, Input.ANSWER): State.ANSWERED,
    (State.AWAITING_ANSWER, Input.REPEAT): State.AWAITING_ANSWER,
    (State.ANSWERED, Input.COMMAND): State.AWAITING_ANSWER,
    (State.ANSWERED, Input.REPEAT): State.AWAITING_ANSWER,
    (State.ANSWERED, Input.CLOSE): State.CLOSED,
    (State.CLOSED, Input.CLOSE): State.CLOSED,  # next_event() after the end, again
}

_SENDS: Mapping[Role, frozenset[Input]] = {
    Role.HOST: frozenset((Input.COMMAND, Input.REPEAT)),
    Role.DEVICE: frozenset((Input.ANSWER,)),
}


class Sentinel(enum.Enum):
    """Values of :meth:`FnConnection.next_event` that are not events."""

    NEED_DATA = "need data"


#: next_event(): no complete event yet; call receive_data() with more bytes.
NEED_DATA = Sentinel.NEED_DATA


@attrs.frozen
class RepeatAnswer:
    """ENQ (05h): the KKT asks for the last answer again.

    Send it only after the answer's timeout: an answer still in flight would then arrive
    twice, and the second one is a protocol error. Sending it drops any partial answer.
    """


@attrs.frozen
class ConnectionClosed:
    """The byte stream ended between exchanges."""


#: Everything next_event() can return besides NEED_DATA.
Event = Command | RawCommand | RepeatAnswer | Answer | ConnectionClosed


class FnConnection:
    """One side of a KKT ↔ ФН link: bytes in, events out; events in, bytes out."""

    def __init__(self, role: Role) -> None:
        self.role = role
        self._state = State.IDLE
        self._buffer = bytearray()
        self._eof = False
        self._last: Request | None = None

    @property
    def state(self) -> State:
        return self._state

    @property
    def last_command(self) -> Request | None:
        """The command of the current or last exchange: what an answer answers."""
        return self._last

    @property
    def buffered(self) -> int:
        """Received bytes not yet turned into events."""
        return len(self._buffer)

    def _move(self, kind: Input) -> None:
        new = TRANSITIONS.get((self._state, kind))
        if new is None:
            was, self._state = self._state, State.ERROR
            raise FnError(f"{kind.value} is not allowed when {was.value}", self.role.value)
        self._state = new

    def _fail(self, exc: FnError) -> FnError:
        self._state = State.ERROR
        return exc

    def send(self, event: Request | RepeatAnswer | Answer) -> bytes:
        """The bytes that carry ``event`` to the peer.

        Raises:
            FnError: the role does not send this event, or the state does not allow it.
        """
        if self._state is State.ERROR:
            raise FnError("the connection has failed", self.role.value)
        if isinstance(event, Answer):
            kind = Input.ANSWER
        elif isinstance(event, RepeatAnswer):
            kind = Input.REPEAT
        else:
            kind = Input.COMMAND
        if kind not in _SENDS[self.role]:
            self._state = State.ERROR
            raise FnError(f"a {self.role.value} does not send a {kind.value}", self.role.value)
        self._move(kind)
        if isinstance(event, RepeatAnswer):
            self._buffer.clear()
            return bytes((ENQ,))
        if not isinstance(event, Answer):
            self._last = event
        return event.encode()

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the peer; ``b""`` means the stream has ended.

        Raises:
            FnError: bytes after the end of the stream, or more unread bytes than
                ``MAX_BUFFER``.
        """
        if not data:
            self._eof = True
            return
        if self._eof:
            raise self._fail(FnError("bytes after the end of the stream", self.role.value))
        if len(self._buffer) + len(data) > MAX_BUFFER:
            raise self._fail(
                FnError(f"more than {MAX_BUFFER} unread bytes from the peer", self.role.value)
            )
        self._buffer += data

    def next_event(self) -> Event | Sentinel:
        """The next event from the received bytes, or NEED_DATA.

        Raises:
            FnError: the peer sent a broken frame, or something the state does not allow.
        """
        if self._state is State.ERROR:
            raise FnError("the connection has failed", self.role.value)
        try:
            return self._next_event()
        except FnError as exc:
            raise self._fail(exc) from None

    def _next_event(self) -> Event | Sentinel:
        buffer = self._buffer
        if not buffer:
            if not self._eof:
                return NEED_DATA
            self._move(Input.CLOSE)
            return ConnectionClosed()
        if self.role is Role.DEVICE and buffer[0] == ENQ:
            del buffer[0]
            self._move(Input.REPEAT)
            return RepeatAnswer()
        size = frame_size(buffer[:3])
        if size is None or len(buffer) < size:
            if self._eof:
                raise FnError(f"the stream ended inside a frame ({len(buffer)} bytes)", "frame")
            return NEED_DATA
        frame = bytes(buffer[:size])
        del buffer[:size]
        if self.role is Role.HOST:
            return self._answer(frame)
        return self._command(frame)

    def _answer(self, frame: bytes) -> Answer:
        command = self._last
        self._move(Input.ANSWER)
        assert command is not None  # ANSWER is only legal after a command was sent
        return decode_answer(frame, command)

    def _command(self, frame: bytes) -> Request:
        code, data = decode_frame(frame)
        self._move(Input.COMMAND)
        kind = COMMANDS.get(code)
        request: Request
        if kind is None:
            request = RawCommand(code, data)
        else:
            try:
                request = kind.decode_data(data)
            except FnError:
                request = RawCommand(code, data)  # the ФН answers 01h, it does not hang up
        self._last = request
        return request
