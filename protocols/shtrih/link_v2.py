"""Shtrih-M alternative link layer, "v2" (альтернативный нижний уровень): numbered packets.

Packet: ``STX(8F) LEN16 NUM16 DATA CRC16``, all little-endian (reference §1.3). LEN16 counts
NUM16 + DATA; LEN16 = 0 is the 5-byte ping without a number, LEN16 = 2 an empty numbered
answer, LEN16 = 1 is invalid. CRC16 is CRC-16/CCITT-FALSE over LEN16, NUM16 and DATA. After
the STX, 8F is sent as ``9F 81`` and 9F as ``9F 83``; any other byte after 9F, or a bare 8F,
ends the packet as corrupt (a bare 8F starts the next one). There is no ACK/NAK: a host that
gets no answer repeats the same packet, and the register executes packet *i* only once.

Both roles are here: :class:`LinkV2Host` and :class:`LinkV2Device`, each driven by a
complete (state, input) → (action, next state) table (:data:`HOST_TRANSITIONS`,
:data:`DEVICE_TRANSITIONS`).

Assumptions where the reference is silent (the common behaviour of real drivers/devices):
- Synchronisation as in the OPOS driver (``PrinterProtocol2.SynchronizeFrames``): a host that
  does not know the register's last number sends the ping first; the register answers with
  an empty packet carrying the number of its last answer (0 after power-on), and the host
  numbers its next command one higher.
- The register executes a packet whose number is its last answer's number + 1; the same
  number as its last answer gets the cached answer again; any other number also gets the
  cached answer (the reference's "re-sends the answer to the last executed command"). After
  power-on, with nothing cached, it executes whatever number comes. The device role reports
  every packet it does not execute as :class:`RepeatedCommandFrame`; a repeat of the packet
  being executed right now gets no reply, its answer follows when ready.
- The host takes an answer only if its number *and* CMD match the packet in flight; others
  are reported as :class:`StaleAnswerFrame` and never renumber the host (a late duplicate
  must not make the host skip or reuse a number). A corrupt packet or a timeout makes the
  host repeat its packet at once; after ``max_retries`` repeats the host gives up with
  :class:`ShtrihError` and the connection is broken (open a new one, which syncs again).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

from protocols.crc import crc16_ccitt_false
from protocols.shtrih._link import LinkConnection
from protocols.shtrih.errors import ShtrihError
from protocols.shtrih.events import (
    AnswerFrame,
    CommandFrame,
    Event,
    RepeatedCommandFrame,
    StaleAnswerFrame,
    Timer,
)

__all__ = [
    "DEVICE_TRANSITIONS",
    "ESC",
    "HOST_TRANSITIONS",
    "MAX_LENGTH",
    "STX",
    "DeviceAction",
    "DeviceInput",
    "DeviceState",
    "HostAction",
    "HostInput",
    "HostState",
    "LinkV2Device",
    "LinkV2Host",
    "encode_packet",
    "parse_packet",
]

STX = 0x8F
ESC = 0x9F
TSTX = 0x81
TESC = 0x83
#: The largest LEN16 (NUM16 + DATA).
MAX_LENGTH = 0xFFFF


def encode_packet(number: int | None, payload: bytes = b"") -> bytes:
    """A stuffed packet; ``number=None`` with no payload is the ping (LEN16 = 0)."""
    if number is None:
        if payload:
            raise ShtrihError("the ping carries no payload", "payload")
        body = b"\x00\x00"
    else:
        if not 0 <= number <= 0xFFFF:
            raise ShtrihError(f"{number} is not a 16-bit packet number", "number")
        if len(payload) > MAX_LENGTH - 2:
            raise ShtrihError(f"{len(payload)} bytes do not fit LEN16", "payload")
        body = (len(payload) + 2).to_bytes(2, "little") + number.to_bytes(2, "little") + payload
    raw = body + crc16_ccitt_false(body).to_bytes(2, "little")
    return b"\x8f" + raw.replace(b"\x9f", b"\x9f\x83").replace(b"\x8f", b"\x9f\x81")


def parse_packet(packet: bytes) -> tuple[int | None, bytes]:
    """(number, payload) of exactly one whole packet; the ping gives (None, b"")."""
    if len(packet) < 5 or packet[0] != STX:
        raise ShtrihError("not a v2 packet", "packet")
    raw = bytes(packet[1:])
    if STX in raw:
        raise ShtrihError("bare 8F inside a packet", "packet")
    body = raw
    if ESC in raw:
        first, *rest = raw.split(b"\x9f")
        pieces = [first]
        for piece in rest:
            if not piece or piece[0] not in (TSTX, TESC):
                raise ShtrihError("bad escape sequence", "packet")
            pieces += (b"\x8f" if piece[0] == TSTX else b"\x9f", piece[1:])
        body = b"".join(pieces)
    if len(body) < 4:
        raise ShtrihError("packet too short", "packet")
    length = int.from_bytes(body[:2], "little")
    if length == 1 or len(body) != length + 4:
        raise ShtrihError(f"LEN16 {length} does not match {len(body) - 4} bytes", "packet.len")
    if crc16_ccitt_false(body[:-2]) != int.from_bytes(body[-2:], "little"):
        raise ShtrihError("CRC mismatch", "packet.crc")
    if length == 0:
        return None, b""
    return int.from_bytes(body[2:4], "little"), body[4:-2]


class _Token(enum.Enum):
    PING = "ping"
    PACKET = "packet"
    BAD = "bad"


class _V2Link(LinkConnection):
    """The v2 lexer: hunt for STX, unstuff, count LEN16, check the CRC."""

    def __init__(self, max_length: int) -> None:
        super().__init__()
        if not 2 <= max_length <= MAX_LENGTH:
            raise ShtrihError(f"max_length must be 2..{MAX_LENGTH}", "max_length")
        self.max_length = max_length
        self._pkt = bytearray()  # the unstuffed packet so far: LEN16 NUM16 DATA CRC16
        self._in_packet = False
        self._esc = False
        self._need = 2

    @property
    def buffered(self) -> int:
        return len(self._buf) + len(self._pkt)

    def _restart(self, consumed: int) -> tuple[_Token, int, bytes]:
        del self._buf[:consumed]
        self._in_packet = False
        self._esc = False
        self._pkt.clear()
        return _Token.BAD, 0, b""

    def _lex(self) -> tuple[_Token, int, bytes] | None:
        buf = self._buf
        pkt = self._pkt
        if not self._in_packet:
            start = buf.find(STX)
            if start < 0:
                buf.clear()
                return None
            del buf[: start + 1]
            self._in_packet = True
            self._need = 2
        pos = 0
        size = len(buf)
        while len(pkt) < self._need:
            if pos >= size:
                del buf[:pos]
                return None
            byte = buf[pos]
            if self._esc:
                self._esc = False
                if byte == STX:
                    return self._restart(pos)  # keep this STX: it opens the next packet
                pos += 1
                if byte == TSTX:
                    pkt.append(STX)
                elif byte == TESC:
                    pkt.append(ESC)
                else:
                    return self._restart(pos)
            elif byte == ESC:
                self._esc = True
                pos += 1
            elif byte == STX:
                return self._restart(pos)  # keep this STX: it opens the next packet
            else:
                end = min(size, pos + self._need - len(pkt))
                for special in (ESC, STX):
                    found = buf.find(special, pos, end)
                    if found >= 0:
                        end = found
                pkt += buf[pos:end]
                pos = end
            if self._need == 2 and len(pkt) == 2:
                length = pkt[0] | pkt[1] << 8
                if length == 1 or length > self.max_length:
                    return self._restart(pos)
                self._need = length + 4
        del buf[:pos]
        self._in_packet = False
        body = bytes(pkt)
        pkt.clear()
        if crc16_ccitt_false(body[:-2]) != body[-2] | body[-1] << 8:
            return _Token.BAD, 0, b""
        if self._need == 4:
            return _Token.PING, 0, b""
        return _Token.PACKET, body[2] | body[3] << 8, body[4:-2]

    def _cut_partial(self) -> bool:
        had = self._in_packet
        self._restart(len(self._buf))
        return had


# --- host ---------------------------------------------------------------------------------


class HostState(enum.Enum):
    UNSYNCED = "unsynced"  # the register's last number is unknown
    SYNC = "sync"  # ping sent, the command waits for the pong
    IDLE = "idle"
    WAIT_ANSWER = "wait_answer"
    ERROR = "error"  # retries exhausted


class HostInput(enum.Enum):
    PONG = "pong"  # an empty numbered packet
    ANSWER = "answer"  # number and CMD of the packet in flight (or the last one)
    FOREIGN = "foreign"  # any other information packet
    PING = "ping"  # a ping from the register (hosts ignore it)
    BAD_PACKET = "bad_packet"  # CRC, escape or length error, or cut off by a timeout
    SEND_COMMAND = "send_command"
    TIMEOUT = "timeout"


class HostAction(enum.Enum):
    IGNORE = "ignore"
    PING = "ping"  # send the ping, new retry budget
    PING_AGAIN = "ping_again"  # a retry
    SYNCED = "synced"  # adopt the pong's number + 1 and send the command
    SEND = "send"  # number the command and send it, new retry budget
    RESEND = "resend"  # the same packet again (a retry)
    ACCEPT = "accept"  # report AnswerFrame
    STALE = "stale"  # report StaleAnswerFrame
    FAIL = "fail"


def _host_table() -> dict[tuple[HostState, HostInput], tuple[HostAction, HostState]]:
    S, In, A = HostState, HostInput, HostAction
    table: dict[tuple[HostState, HostInput], tuple[HostAction, HostState]] = {}
    for state in S:
        table.update(
            {
                (state, In.PONG): (A.IGNORE, state),
                (state, In.ANSWER): (A.STALE, state),
                (state, In.FOREIGN): (A.STALE, state),
                (state, In.PING): (A.IGNORE, state),
                (state, In.BAD_PACKET): (A.IGNORE, state),
                (state, In.SEND_COMMAND): (A.FAIL, state),
                (state, In.TIMEOUT): (A.IGNORE, state),
            }
        )
    table.update(
        {
            (S.UNSYNCED, In.SEND_COMMAND): (A.PING, S.SYNC),
            (S.SYNC, In.PONG): (A.SYNCED, S.WAIT_ANSWER),
            (S.SYNC, In.BAD_PACKET): (A.PING_AGAIN, S.SYNC),
            (S.SYNC, In.TIMEOUT): (A.PING_AGAIN, S.SYNC),
            (S.IDLE, In.SEND_COMMAND): (A.SEND, S.WAIT_ANSWER),
            (S.WAIT_ANSWER, In.ANSWER): (A.ACCEPT, S.IDLE),
            (S.WAIT_ANSWER, In.BAD_PACKET): (A.RESEND, S.WAIT_ANSWER),
            (S.WAIT_ANSWER, In.TIMEOUT): (A.RESEND, S.WAIT_ANSWER),
        }
    )
    for inp in In:
        table[S.ERROR, inp] = (A.FAIL, S.ERROR)
    return table


#: (state, input) → (action, next state) of the host; every pair is present.
HOST_TRANSITIONS: Mapping[tuple[HostState, HostInput], tuple[HostAction, HostState]] = (
    MappingProxyType(_host_table())
)

_HOST_TIMERS = {
    HostState.UNSYNCED: Timer.NONE,
    HostState.SYNC: Timer.LINK,
    HostState.IDLE: Timer.NONE,
    HostState.WAIT_ANSWER: Timer.ANSWER,
    HostState.ERROR: Timer.NONE,
}


class LinkV2Host(_V2Link):
    """The host role of link v2: numbers packets, repeats them, matches answers.

    ``next_number`` is the number of the first command when the caller knows the
    register's state; None (the default) syncs with a ping first.
    """

    def __init__(
        self,
        *,
        next_number: int | None = None,
        max_retries: int = 10,
        max_length: int = MAX_LENGTH,
    ) -> None:
        super().__init__(max_length)
        if max_retries < 0:
            raise ShtrihError("max_retries must be >= 0", "max_retries")
        if next_number is not None and not 0 <= next_number <= 0xFFFF:
            raise ShtrihError(f"{next_number} is not a 16-bit packet number", "next_number")
        self.max_retries = max_retries
        self._retries = 0
        self._state = HostState.UNSYNCED if next_number is None else HostState.IDLE
        self._number = ((next_number or 0) - 1) & 0xFFFF  # in flight, or the last one
        self._payload = b""
        self._cmd = b""
        self._packet = b""

    @property
    def state(self) -> HostState:
        return self._state

    @property
    def broken(self) -> bool:
        return self._state is HostState.ERROR

    @property
    def timer(self) -> Timer:
        return Timer.BYTE if self._in_packet else _HOST_TIMERS[self._state]

    @property
    def number(self) -> int:
        """The number of the packet in flight, or of the last one sent."""
        return self._number

    @property
    def retries(self) -> int:
        return self._retries

    def send(self, event: Event) -> bytes:
        """Send a command (:class:`CommandFrame`, numbered by the host); returns the bytes."""
        if not isinstance(event, CommandFrame) or event.number is not None:
            raise ShtrihError("a v2 host sends only CommandFrame without a number", "event")
        if len(event.payload) > self.max_length - 2:
            raise ShtrihError(f"{len(event.payload)} bytes exceed max_length", "payload")
        action, state = HOST_TRANSITIONS[self._state, HostInput.SEND_COMMAND]
        if action is not HostAction.FAIL:
            self._payload = event.payload
            self._cmd = event.payload[: 2 if event.payload[0] == 0xFF else 1]
        self._apply(action, state, 0, b"")
        return self.data_to_send()

    def _classify(self, token: _Token, number: int, data: bytes) -> HostInput:
        if token is _Token.BAD:
            return HostInput.BAD_PACKET
        if token is _Token.PING:
            return HostInput.PING
        if not data:
            return HostInput.PONG
        cmd = self._cmd
        if number != self._number or not data.startswith(cmd):
            return HostInput.FOREIGN
        return HostInput.BAD_PACKET if cmd and len(data) <= len(cmd) else HostInput.ANSWER

    def _advance(self) -> bool:
        token = self._lex()
        if token is None:
            return False
        kind, number, data = token
        action, state = HOST_TRANSITIONS[self._state, self._classify(kind, number, data)]
        self._apply(action, state, number, data)
        return True

    def _expire(self) -> None:
        inp = HostInput.BAD_PACKET if self._cut_partial() else HostInput.TIMEOUT
        action, state = HOST_TRANSITIONS[self._state, inp]
        self._apply(action, state, 0, b"")

    def _spend(self) -> None:
        self._retries += 1
        if self._retries > self.max_retries:
            self._state = HostState.ERROR
            raise ShtrihError(f"no answer after {self.max_retries} retries", "link")

    def _number_and_send(self, number: int) -> None:
        self._number = number
        self._packet = encode_packet(number, self._payload)
        self._out += self._packet

    def _apply(self, action: HostAction, state: HostState, number: int, data: bytes) -> None:
        A = HostAction
        if action is A.FAIL:
            raise ShtrihError(f"not allowed in state {self._state.value}", "state")
        if action is A.PING:
            self._retries = 0
            self._out += encode_packet(None)
        elif action is A.PING_AGAIN:
            self._spend()
            self._out += encode_packet(None)
        elif action is A.SYNCED:
            self._number_and_send((number + 1) & 0xFFFF)
        elif action is A.SEND:
            self._retries = 0
            self._number_and_send((self._number + 1) & 0xFFFF)
        elif action is A.RESEND:
            self._spend()
            self._out += self._packet
        elif action is A.ACCEPT:
            self._events.append(AnswerFrame(payload=data, number=number))
        elif action is A.STALE:
            self._events.append(StaleAnswerFrame(payload=data, number=number))
        self._state = state


# --- device -------------------------------------------------------------------------------


class DeviceState(enum.Enum):
    FRESH = "fresh"  # after power-on: no answer cached, any number executes
    IDLE = "idle"  # the last answer is cached
    EXECUTING = "executing"


class DeviceInput(enum.Enum):
    PING = "ping"
    EMPTY = "empty"  # an empty numbered packet (hosts do not send it)
    NEXT = "next"  # last + 1 when idle; the number being executed when executing
    SAME = "same"  # the number of the last answer
    OTHER = "other"  # any other number
    BAD_PACKET = "bad_packet"
    SEND_ANSWER = "send_answer"
    TIMEOUT = "timeout"


class DeviceAction(enum.Enum):
    IGNORE = "ignore"
    PONG = "pong"  # an empty packet numbered with the last answer's number
    EXECUTE = "execute"  # report CommandFrame
    RESEND = "resend"  # the cached answer again; report RepeatedCommandFrame
    DUPLICATE = "duplicate"  # report RepeatedCommandFrame; the answer follows when ready
    ANSWER = "answer"  # send the answer and cache it
    FAIL = "fail"


def _device_table() -> dict[tuple[DeviceState, DeviceInput], tuple[DeviceAction, DeviceState]]:
    S, In, A = DeviceState, DeviceInput, DeviceAction
    table: dict[tuple[DeviceState, DeviceInput], tuple[DeviceAction, DeviceState]] = {}
    for state in S:
        table.update(
            {
                (state, In.PING): (A.PONG, state),
                (state, In.EMPTY): (A.IGNORE, state),
                (state, In.BAD_PACKET): (A.IGNORE, state),
                (state, In.SEND_ANSWER): (A.FAIL, state),
                (state, In.TIMEOUT): (A.IGNORE, state),
            }
        )
    table.update(
        {
            (S.FRESH, In.NEXT): (A.EXECUTE, S.EXECUTING),
            (S.FRESH, In.SAME): (A.EXECUTE, S.EXECUTING),
            (S.FRESH, In.OTHER): (A.EXECUTE, S.EXECUTING),
            (S.IDLE, In.NEXT): (A.EXECUTE, S.EXECUTING),
            (S.IDLE, In.SAME): (A.RESEND, S.IDLE),
            (S.IDLE, In.OTHER): (A.RESEND, S.IDLE),
            (S.EXECUTING, In.NEXT): (A.DUPLICATE, S.EXECUTING),
            (S.EXECUTING, In.SAME): (A.IGNORE, S.EXECUTING),
            (S.EXECUTING, In.OTHER): (A.IGNORE, S.EXECUTING),
            (S.EXECUTING, In.SEND_ANSWER): (A.ANSWER, S.IDLE),
        }
    )
    return table


#: (state, input) → (action, next state) of the device; every pair is present.
DEVICE_TRANSITIONS: Mapping[tuple[DeviceState, DeviceInput], tuple[DeviceAction, DeviceState]] = (
    MappingProxyType(_device_table())
)


class LinkV2Device(_V2Link):
    """The device role of link v2 (the emulated register): executes each number once."""

    def __init__(self, *, max_length: int = MAX_LENGTH) -> None:
        super().__init__(max_length)
        self._state = DeviceState.FRESH
        self._last = 0  # the number of the cached answer (0 when fresh)
        self._current = 0  # the number being executed
        self._answer = b""  # the cached answer packet

    @property
    def state(self) -> DeviceState:
        return self._state

    @property
    def timer(self) -> Timer:
        return Timer.BYTE if self._in_packet else Timer.NONE

    @property
    def last_number(self) -> int:
        """The number of the last answer sent (0 after power-on)."""
        return self._last

    def answer_size(self, payload: bytes) -> int:
        """Bytes the answer ``payload`` takes on the line, stuffing included."""
        return len(encode_packet(self._current, payload))

    def send(self, event: Event) -> bytes:
        """Answer the command being executed (:class:`AnswerFrame`); returns the packet."""
        if not isinstance(event, AnswerFrame) or event.number is not None:
            raise ShtrihError("a v2 device sends only AnswerFrame without a number", "event")
        action, state = DEVICE_TRANSITIONS[self._state, DeviceInput.SEND_ANSWER]
        self._apply(action, state, 0, event.payload)
        return self.data_to_send()

    def _classify(self, token: _Token, number: int, data: bytes) -> DeviceInput:
        if token is _Token.BAD:
            return DeviceInput.BAD_PACKET
        if token is _Token.PING:
            return DeviceInput.PING
        if not data:
            return DeviceInput.EMPTY
        if self._state is DeviceState.EXECUTING:
            if number == self._current:
                return DeviceInput.NEXT
        elif number == (self._last + 1) & 0xFFFF:
            return DeviceInput.NEXT
        return DeviceInput.SAME if number == self._last else DeviceInput.OTHER

    def _advance(self) -> bool:
        token = self._lex()
        if token is None:
            return False
        kind, number, data = token
        action, state = DEVICE_TRANSITIONS[self._state, self._classify(kind, number, data)]
        self._apply(action, state, number, data)
        return True

    def _expire(self) -> None:
        inp = DeviceInput.BAD_PACKET if self._cut_partial() else DeviceInput.TIMEOUT
        action, state = DEVICE_TRANSITIONS[self._state, inp]
        self._apply(action, state, 0, b"")

    def _apply(self, action: DeviceAction, state: DeviceState, number: int, data: bytes) -> None:
        A = DeviceAction
        if action is A.FAIL:
            raise ShtrihError(f"no command to answer in state {self._state.value}", "state")
        if action is A.PONG:
            self._out += encode_packet(self._last)
        elif action is A.EXECUTE:
            self._current = number
            self._events.append(CommandFrame(payload=data, number=number))
        elif action is A.RESEND:
            self._out += self._answer
            self._events.append(RepeatedCommandFrame(payload=data, number=number))
        elif action is A.DUPLICATE:
            self._events.append(RepeatedCommandFrame(payload=data, number=number))
        elif action is A.ANSWER:
            if len(data) > self.max_length - 2:
                raise ShtrihError(f"{len(data)} bytes exceed max_length", "payload")
            self._answer = encode_packet(self._current, data)
            self._last = self._current
            self._out += self._answer
        self._state = state
