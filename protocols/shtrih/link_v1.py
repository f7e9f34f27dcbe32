"""Shtrih-M standard link layer, "v1" (стандартный нижний уровень): ENQ/ACK/NAK and STX frames.

Frame: ``STX(02) LEN CMD… DATA… LRC``; LEN counts CMD+DATA (1…255), LRC is the XOR of LEN
and everything after it. One command is exchanged at a time (reference §1.2):

1. the host sends ENQ; the register answers NAK (idle) or ACK (it holds an answer);
2. on NAK the host sends its frame, the register acknowledges it with ACK (NAK = bad frame);
3. the register executes and sends its answer frame; the host acknowledges with ACK or NAK.
   After a NAK the register waits for the next ENQ and sends the answer again.

Both roles are here: :class:`LinkV1Host` (the engine's driver) and :class:`LinkV1Device` (the
emulator). Their behaviour is data: :data:`HOST_TRANSITIONS` and :data:`DEVICE_TRANSITIONS`
map every (state, input) pair to an action and the next state, and the tests run the whole
product. Inputs are byte classes lexed from the stream (control bytes outside frames, whole
frames with a good or bad LRC) plus the caller's ``send`` and ``timeout``.

Assumptions where the reference is silent (the common behaviour of real drivers/devices):
- The register keeps an unacknowledged answer until the host ACKs it, sends a new good frame,
  or asks again with ENQ; an ENQ while it is executing gets ACK ("preparing the answer").
- An ACK to the host's *first* ENQ of a command means a leftover answer of an earlier
  exchange: the host reads it, ACKs it, reports :class:`StaleAnswerFrame` and probes again
  (as pyshtrih and OPOS do), so a leftover is never taken for the new command's answer.
  Later, an answer frame whose CMD differs from the command in flight is stale too.
- A NAK where the host awaits the ACK of its frame is not answered with the frame at once:
  it may be the late reply to an earlier ENQ, and a blind resend would run the command twice.
  The host lets its link timer run out, then asks with ENQ (a NAK to that ENQ means the
  register does not have the command, and only then is the frame sent again).
- A frame that arrives where the host expected ACK means the ACK was lost: it is read as the
  answer. Bytes other than ACK/NAK/STX outside a frame are line noise and are skipped;
  0xFF in particular is the RNDIS/TCP byte the register sends after the host's ACK
  (reference §1.1). The device role sends it when built with ``ff_after_ack=True``.
- An incomplete frame at the inter-byte timeout is a bad frame (the register answers NAK).
- The host gives up (:class:`ShtrihError`, then the connection is broken) after
  ``max_retries`` retries of one command (timeouts, NAKs, bad or stale frames); pyshtrih
  uses 10 attempts, OPOS 3 per kind.
- v1 cannot promise that a command runs at most once when bytes are corrupted (an ACK
  corrupted into NAK makes the host resend); link v2 can.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

from protocols.crc import lrc
from protocols.shtrih._link import LinkConnection
from protocols.shtrih.errors import ShtrihError
from protocols.shtrih.events import (
    AnswerFrame,
    CommandFrame,
    Event,
    StaleAnswerFrame,
    Timer,
)

__all__ = [
    "ACK",
    "DEVICE_TRANSITIONS",
    "ENQ",
    "HOST_TRANSITIONS",
    "MAX_FRAME",
    "NAK",
    "RNDIS_FILLER",
    "STX",
    "DeviceAction",
    "DeviceInput",
    "DeviceState",
    "HostAction",
    "HostInput",
    "HostState",
    "LinkV1Device",
    "LinkV1Host",
    "encode_frame",
    "parse_frame",
]

STX = 0x02
ENQ = 0x05
ACK = 0x06
NAK = 0x15
#: The byte a TCP (RNDIS) attached register sends after the host's ACK of its answer.
RNDIS_FILLER = 0xFF
#: STX + LEN + 255 payload bytes + LRC.
MAX_FRAME = 258


def encode_frame(payload: bytes) -> bytes:
    """``STX LEN payload LRC`` for a payload of 1…255 bytes."""
    if not isinstance(payload, bytes) or not 1 <= len(payload) <= 255:
        raise ShtrihError("a v1 payload is 1 to 255 bytes", "payload")
    head = bytes((len(payload),)) + payload
    return b"\x02" + head + bytes((lrc(head),))


def parse_frame(frame: bytes) -> bytes:
    """The payload of exactly one whole v1 frame; anything else raises :class:`ShtrihError`."""
    if len(frame) < 4 or frame[0] != STX:
        raise ShtrihError("not a v1 frame", "frame")
    if frame[1] + 3 != len(frame):
        raise ShtrihError(f"LEN {frame[1]} does not match {len(frame)} bytes", "frame.len")
    if lrc(frame[1:-1]) != frame[-1]:
        raise ShtrihError("LRC mismatch", "frame.lrc")
    return bytes(frame[2:-1])


class _Token(enum.Enum):
    """What the lexer finds at the head of the input."""

    ENQ = "enq"
    ACK = "ack"
    NAK = "nak"
    FF = "ff"
    OTHER = "other"
    FRAME = "frame"
    BAD_FRAME = "bad_frame"


_CONTROL = {ENQ: _Token.ENQ, ACK: _Token.ACK, NAK: _Token.NAK, RNDIS_FILLER: _Token.FF}


class _V1Link(LinkConnection):
    """The v1 lexer: control bytes outside frames, whole frames after STX."""

    def _lex(self) -> tuple[_Token, bytes] | None:
        buf = self._buf
        if not buf:
            return None
        first = buf[0]
        if first != STX:
            del buf[0]
            return _CONTROL.get(first, _Token.OTHER), b""
        if len(buf) < 2:
            return None
        length = buf[1]
        end = length + 3
        if len(buf) < end:
            return None
        body = bytes(buf[2 : end - 1])
        good = length > 0 and lrc(buf[1 : end - 1]) == buf[end - 1]
        del buf[:end]
        return (_Token.FRAME, body) if good else (_Token.BAD_FRAME, b"")

    def _cut_partial(self) -> bool:
        """Drop an incomplete frame at the inter-byte timeout; True if there was one."""
        had = bool(self._buf)
        self._buf.clear()
        return had


# --- host ---------------------------------------------------------------------------------


class HostState(enum.Enum):
    """Where the host is in the exchange of one command."""

    IDLE = "idle"  # no command in flight
    PROBE = "probe"  # ENQ sent, our frame not sent yet
    WAIT_STALE = "wait_stale"  # the register said ACK before we sent: reading a leftover
    WAIT_ACK = "wait_ack"  # our frame sent, waiting for its ACK
    CONFIRM = "confirm"  # ENQ sent after our frame: did the register get it?
    WAIT_ANSWER = "wait_answer"  # frame acknowledged, the register is executing
    ERROR = "error"  # retries exhausted


class HostInput(enum.Enum):
    ENQ = "enq"
    ACK = "ack"
    NAK = "nak"
    FF = "ff"
    OTHER = "other"
    ANSWER = "answer"  # a good frame echoing the command code in flight (or the last one)
    FOREIGN = "foreign"  # a good frame with another command code
    BAD_FRAME = "bad_frame"  # LRC mismatch, LEN 0, an answer without an error byte, cut off
    SEND_COMMAND = "send_command"
    TIMEOUT = "timeout"


class HostAction(enum.Enum):
    IGNORE = "ignore"
    START = "start"  # send ENQ, new retry budget
    SEND_FRAME = "send_frame"  # send our frame (first time)
    RESEND_FRAME = "resend_frame"  # send our frame again, the register said it lacks it
    PROBE_AGAIN = "probe_again"  # send ENQ (a retry)
    ACCEPT = "accept"  # ACK, report AnswerFrame
    DISCARD = "discard"  # ACK, report StaleAnswerFrame
    STALE = "stale"  # ACK, report StaleAnswerFrame, send ENQ (a retry)
    REJECT = "reject"  # NAK, then ENQ to have it sent again (a retry)
    FAIL = "fail"  # raise ShtrihError


def _host_table() -> dict[tuple[HostState, HostInput], tuple[HostAction, HostState]]:
    S, In, A = HostState, HostInput, HostAction
    table: dict[tuple[HostState, HostInput], tuple[HostAction, HostState]] = {}
    for state in S:
        for noise in (In.ENQ, In.FF, In.OTHER):
            table[state, noise] = (A.IGNORE, state)
    # A good answer always ends the exchange; a stale one restarts the probe.
    table.update(
        {
            (S.IDLE, In.ACK): (A.IGNORE, S.IDLE),
            (S.IDLE, In.NAK): (A.IGNORE, S.IDLE),
            (S.IDLE, In.ANSWER): (A.DISCARD, S.IDLE),
            (S.IDLE, In.FOREIGN): (A.DISCARD, S.IDLE),
            (S.IDLE, In.BAD_FRAME): (A.IGNORE, S.IDLE),
            (S.IDLE, In.SEND_COMMAND): (A.START, S.PROBE),
            (S.IDLE, In.TIMEOUT): (A.IGNORE, S.IDLE),
            (S.PROBE, In.ACK): (A.IGNORE, S.WAIT_STALE),
            (S.PROBE, In.NAK): (A.SEND_FRAME, S.WAIT_ACK),
            (S.PROBE, In.ANSWER): (A.STALE, S.PROBE),
            (S.PROBE, In.FOREIGN): (A.STALE, S.PROBE),
            (S.PROBE, In.BAD_FRAME): (A.REJECT, S.PROBE),
            (S.PROBE, In.TIMEOUT): (A.PROBE_AGAIN, S.PROBE),
            (S.WAIT_STALE, In.ACK): (A.IGNORE, S.WAIT_STALE),
            (S.WAIT_STALE, In.NAK): (A.SEND_FRAME, S.WAIT_ACK),
            (S.WAIT_STALE, In.ANSWER): (A.STALE, S.PROBE),
            (S.WAIT_STALE, In.FOREIGN): (A.STALE, S.PROBE),
            (S.WAIT_STALE, In.BAD_FRAME): (A.REJECT, S.PROBE),
            (S.WAIT_STALE, In.TIMEOUT): (A.PROBE_AGAIN, S.PROBE),
        }
    )
    for state in (S.WAIT_ACK, S.CONFIRM, S.WAIT_ANSWER):
        table.update(
            {
                (state, In.ANSWER): (A.ACCEPT, S.IDLE),
                (state, In.FOREIGN): (A.STALE, S.CONFIRM),
                (state, In.BAD_FRAME): (A.REJECT, S.CONFIRM),
                (state, In.TIMEOUT): (A.PROBE_AGAIN, S.CONFIRM),
            }
        )
    table.update(
        {
            (S.WAIT_ACK, In.ACK): (A.IGNORE, S.WAIT_ANSWER),
            (S.WAIT_ACK, In.NAK): (A.IGNORE, S.WAIT_ACK),
            (S.CONFIRM, In.ACK): (A.IGNORE, S.WAIT_ANSWER),
            (S.CONFIRM, In.NAK): (A.RESEND_FRAME, S.WAIT_ACK),
            (S.WAIT_ANSWER, In.ACK): (A.IGNORE, S.WAIT_ANSWER),
            (S.WAIT_ANSWER, In.NAK): (A.IGNORE, S.WAIT_ANSWER),
        }
    )
    for state in S:
        if state is not S.IDLE:
            table[state, In.SEND_COMMAND] = (A.FAIL, state)
    for inp in In:
        table[S.ERROR, inp] = (A.FAIL, S.ERROR)
    return table


#: (state, input) → (action, next state) of the host; every pair is present.
HOST_TRANSITIONS: Mapping[tuple[HostState, HostInput], tuple[HostAction, HostState]] = (
    MappingProxyType(_host_table())
)

_HOST_TIMERS = {
    HostState.IDLE: Timer.NONE,
    HostState.PROBE: Timer.LINK,
    HostState.WAIT_STALE: Timer.LINK,
    HostState.WAIT_ACK: Timer.LINK,
    HostState.CONFIRM: Timer.LINK,
    HostState.WAIT_ANSWER: Timer.ANSWER,
    HostState.ERROR: Timer.NONE,
}

_HOST_TOKENS = {
    _Token.ENQ: HostInput.ENQ,
    _Token.ACK: HostInput.ACK,
    _Token.NAK: HostInput.NAK,
    _Token.FF: HostInput.FF,
    _Token.OTHER: HostInput.OTHER,
    _Token.BAD_FRAME: HostInput.BAD_FRAME,
}


class LinkV1Host(_V1Link):
    """The host role of link v1 (the driver): sends commands, retries, reads answers."""

    def __init__(self, *, max_retries: int = 10) -> None:
        super().__init__()
        if max_retries < 0:
            raise ShtrihError("max_retries must be >= 0", "max_retries")
        self.max_retries = max_retries
        self._state = HostState.IDLE
        self._frame = b""  # our command frame, kept for retries
        self._cmd = b""  # the CMD bytes of the command in flight or the last one
        self._retries = 0

    @property
    def state(self) -> HostState:
        return self._state

    @property
    def broken(self) -> bool:
        return self._state is HostState.ERROR

    @property
    def timer(self) -> Timer:
        return Timer.BYTE if self._buf else _HOST_TIMERS[self._state]

    @property
    def retries(self) -> int:
        """Retries spent on the command in flight."""
        return self._retries

    def send(self, event: Event) -> bytes:
        """Start a command (:class:`CommandFrame`); returns the bytes to write (an ENQ)."""
        if not isinstance(event, CommandFrame) or event.number is not None:
            raise ShtrihError("a v1 host sends only CommandFrame without a number", "event")
        frame = encode_frame(event.payload)
        action, state = HOST_TRANSITIONS[self._state, HostInput.SEND_COMMAND]
        self._apply(action, state, b"")
        self._frame = frame
        self._cmd = event.payload[: 2 if event.payload[0] == 0xFF else 1]
        return self.data_to_send()

    def _classify(self, body: bytes) -> HostInput:
        cmd = self._cmd
        if not cmd or not body.startswith(cmd):
            return HostInput.FOREIGN
        return HostInput.ANSWER if len(body) > len(cmd) else HostInput.BAD_FRAME

    def _advance(self) -> bool:
        token = self._lex()
        if token is None:
            return False
        kind, body = token
        inp = self._classify(body) if kind is _Token.FRAME else _HOST_TOKENS[kind]
        action, state = HOST_TRANSITIONS[self._state, inp]
        self._apply(action, state, body)
        return True

    def _expire(self) -> None:
        inp = HostInput.BAD_FRAME if self._cut_partial() else HostInput.TIMEOUT
        action, state = HOST_TRANSITIONS[self._state, inp]
        self._apply(action, state, b"")

    def _spend(self) -> None:
        self._retries += 1
        if self._retries > self.max_retries:
            self._state = HostState.ERROR
            raise ShtrihError(f"no answer after {self.max_retries} retries", "link")

    def _apply(self, action: HostAction, state: HostState, body: bytes) -> None:
        A = HostAction
        out = self._out
        if action is A.FAIL:
            raise ShtrihError(f"not allowed in state {self._state.value}", "state")
        if action is A.START:
            self._retries = 0
            out.append(ENQ)
        elif action is A.SEND_FRAME:
            out += self._frame
        elif action is A.RESEND_FRAME:
            self._spend()
            out += self._frame
        elif action is A.PROBE_AGAIN:
            self._spend()
            out.append(ENQ)
        elif action is A.ACCEPT:
            out.append(ACK)
            self._events.append(AnswerFrame(payload=body))
        elif action is A.DISCARD:
            out.append(ACK)
            self._events.append(StaleAnswerFrame(payload=body))
        elif action is A.STALE:
            self._spend()
            out.append(ACK)
            out.append(ENQ)
            self._events.append(StaleAnswerFrame(payload=body))
        elif action is A.REJECT:
            self._spend()
            out.append(NAK)
            out.append(ENQ)
        self._state = state


# --- device -------------------------------------------------------------------------------


class DeviceState(enum.Enum):
    """Where the register is."""

    IDLE = "idle"  # no answer held
    EXECUTING = "executing"  # a command was received; the application is running it
    ANSWER_SENT = "answer_sent"  # the answer went out and is not acknowledged yet


class DeviceInput(enum.Enum):
    ENQ = "enq"
    ACK = "ack"
    NAK = "nak"
    OTHER = "other"
    FRAME = "frame"
    BAD_FRAME = "bad_frame"
    SEND_ANSWER = "send_answer"
    TIMEOUT = "timeout"


class DeviceAction(enum.Enum):
    IGNORE = "ignore"
    REPLY_NAK = "reply_nak"  # idle, or the frame was bad
    REPLY_ACK = "reply_ack"  # "preparing the answer"
    EXECUTE = "execute"  # ACK the frame, report CommandFrame, forget the old answer
    ANSWER = "answer"  # send the application's answer and keep it until acknowledged
    RESEND = "resend"  # ACK, then the kept answer again
    ACKNOWLEDGED = "acknowledged"  # the host has the answer: forget it (send 0xFF on TCP)
    FAIL = "fail"


def _device_table() -> dict[tuple[DeviceState, DeviceInput], tuple[DeviceAction, DeviceState]]:
    S, In, A = DeviceState, DeviceInput, DeviceAction
    table: dict[tuple[DeviceState, DeviceInput], tuple[DeviceAction, DeviceState]] = {}
    for state in S:
        for noise in (In.ACK, In.NAK, In.OTHER, In.TIMEOUT):
            table[state, noise] = (A.IGNORE, state)
        table[state, In.SEND_ANSWER] = (A.FAIL, state)
    table.update(
        {
            (S.IDLE, In.ENQ): (A.REPLY_NAK, S.IDLE),
            (S.IDLE, In.FRAME): (A.EXECUTE, S.EXECUTING),
            (S.IDLE, In.BAD_FRAME): (A.REPLY_NAK, S.IDLE),
            (S.EXECUTING, In.ENQ): (A.REPLY_ACK, S.EXECUTING),
            (S.EXECUTING, In.FRAME): (A.IGNORE, S.EXECUTING),
            (S.EXECUTING, In.BAD_FRAME): (A.IGNORE, S.EXECUTING),
            (S.EXECUTING, In.SEND_ANSWER): (A.ANSWER, S.ANSWER_SENT),
            (S.ANSWER_SENT, In.ENQ): (A.RESEND, S.ANSWER_SENT),
            (S.ANSWER_SENT, In.ACK): (A.ACKNOWLEDGED, S.IDLE),
            (S.ANSWER_SENT, In.FRAME): (A.EXECUTE, S.EXECUTING),
            (S.ANSWER_SENT, In.BAD_FRAME): (A.REPLY_NAK, S.ANSWER_SENT),
        }
    )
    return table


#: (state, input) → (action, next state) of the device; every pair is present.
DEVICE_TRANSITIONS: Mapping[tuple[DeviceState, DeviceInput], tuple[DeviceAction, DeviceState]] = (
    MappingProxyType(_device_table())
)

_DEVICE_TOKENS = {
    _Token.ENQ: DeviceInput.ENQ,
    _Token.ACK: DeviceInput.ACK,
    _Token.NAK: DeviceInput.NAK,
    _Token.FF: DeviceInput.OTHER,
    _Token.OTHER: DeviceInput.OTHER,
    _Token.FRAME: DeviceInput.FRAME,
    _Token.BAD_FRAME: DeviceInput.BAD_FRAME,
}


class LinkV1Device(_V1Link):
    """The device role of link v1 (the emulated register).

    ``ff_after_ack=True`` reproduces a register attached over TCP (RNDIS), which sends 0xFF
    after the host's ACK of each answer; a serial line or a serial-to-TCP server has none.
    """

    def __init__(self, *, ff_after_ack: bool = False) -> None:
        super().__init__()
        self.ff_after_ack = ff_after_ack
        self._state = DeviceState.IDLE
        self._answer = b""  # the answer frame held until acknowledged

    @property
    def state(self) -> DeviceState:
        return self._state

    @property
    def timer(self) -> Timer:
        return Timer.BYTE if self._buf else Timer.NONE

    def answer_size(self, payload: bytes) -> int:
        """Bytes the answer ``payload`` takes on the line: what its wire time is modelled on."""
        return len(payload) + 3  # STX, LEN and LRC around it, with no stuffing on v1

    def send(self, event: Event) -> bytes:
        """Answer the command being executed (:class:`AnswerFrame`); returns the frame."""
        if not isinstance(event, AnswerFrame) or event.number is not None:
            raise ShtrihError("a v1 device sends only AnswerFrame without a number", "event")
        frame = encode_frame(event.payload)
        action, state = DEVICE_TRANSITIONS[self._state, DeviceInput.SEND_ANSWER]
        self._apply(action, state, frame)
        return self.data_to_send()

    def _advance(self) -> bool:
        token = self._lex()
        if token is None:
            return False
        kind, body = token
        action, state = DEVICE_TRANSITIONS[self._state, _DEVICE_TOKENS[kind]]
        self._apply(action, state, body)
        return True

    def _expire(self) -> None:
        inp = DeviceInput.BAD_FRAME if self._cut_partial() else DeviceInput.TIMEOUT
        action, state = DEVICE_TRANSITIONS[self._state, inp]
        self._apply(action, state, b"")

    def _apply(self, action: DeviceAction, state: DeviceState, data: bytes) -> None:
        A = DeviceAction
        out = self._out
        if action is A.FAIL:
            raise ShtrihError(f"no command to answer in state {self._state.value}", "state")
        if action is A.REPLY_NAK:
            out.append(NAK)
        elif action is A.REPLY_ACK:
            out.append(ACK)
        elif action is A.EXECUTE:
            out.append(ACK)
            self._answer = b""
            self._events.append(CommandFrame(payload=data))
        elif action is A.ANSWER:
            self._answer = data
            out += data
        elif action is A.RESEND:
            out.append(ACK)
            out += self._answer
        elif action is A.ACKNOWLEDGED:
            self._answer = b""
            if self.ff_after_ack:
                out.append(RNDIS_FILLER)
        self._state = state
