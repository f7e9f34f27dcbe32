"""Sans-IO ATOL v3 connections for both roles: the host (a driver) and the register.

In the style of h11: bytes go in through ``receive_data()``, events come out of
``next_event()`` until it returns :data:`NEED_DATA`, and ``send(event)`` returns the bytes to
write. Received packets are acted on as ``next_event()`` reads them, so drain it after every
``receive_data()``. As in h2, bytes the protocol itself must write (answers, repeats) then wait
in ``data_to_send()``. Nothing here touches a socket or a clock; the host's caller decides when
an answer is late and calls :meth:`HostConnection.retransmit`.

Link rules. Where the reference (§2.1, S6 atol4j) is silent, these follow the most common
behaviour of real devices and drivers:

- Stop and wait: the host sends one packet and waits for its answer before the next. Packet
  IDs run 0x00…0xDF and wrap, one per new packet (S6 starts at 1).
- A retransmission repeats the packet byte for byte, with the same ID. The register remembers
  the last packet it answered and answers an exact repeat (same ID, same DATA) with the same
  bytes without running the command again: this is what makes Add safe to repeat.
- An empty packet asks the peer to send its packet with that ID again (S6): the register
  repeats its last answer if the ID matches it, the host repeats the packet it awaits an answer
  for. Each side sends one for a frame that fails its checks but has a readable ID.
- Answers whose ID is not the one awaited are late copies and are dropped. 0xF0 packets carry
  only A6/A7; they cannot be asked for again (S6 only logs a bad one), so the host learns a
  lost async result by Req.
- The host's repeats (its own, by ``retransmit()``, or asked for) and its requests for repeats
  share one budget of ``max_attempts`` per packet; past it the connection raises
  :class:`AtolError` and stays broken.
- The register never raises on what it receives: noise is dropped, bad commands are answered
  on the wire (see :mod:`protocols.atol.taskbuffer`). The host raises :class:`AtolError` for a
  well-formed answer that contradicts its task table, and the connection is then broken.
"""

from __future__ import annotations

from collections import deque

import attrs

from protocols.atol.errors import AtolError
from protocols.atol.events import (
    NEED_DATA,
    BufferAborted,
    DeviceAction,
    DeviceEvent,
    HostEvent,
    NeedData,
    TaskAdded,
    TaskCancelled,
    TaskCompleted,
    TaskFinished,
    TaskLost,
    TaskQueued,
    TaskRefused,
    TaskReleased,
    TaskResumed,
    TaskStarted,
    TaskStopped,
    TaskWaiting,
)
from protocols.atol.taskbuffer import (
    DEFAULT_CAPACITY,
    AbortTasks,
    AckAddTask,
    AckTask,
    AddTask,
    AsyncResult,
    BufferErrorCode,
    BufferRefusal,
    DeviceMessage,
    Handled,
    HostInput,
    HostMessage,
    HostTaskState,
    ReqTask,
    Status,
    TaskBuffer,
    TaskState,
    TaskStatusReply,
    decode_device_message,
    decode_host_message,
    host_transition,
)
from protocols.atol.transport import (
    ASYNC_PACKET_ID,
    MAX_DATA_LENGTH,
    MAX_PACKET_ID,
    BadFrame,
    FrameReader,
    Packet,
    encode_packet,
)

__all__ = ["DeviceConnection", "HostConnection"]

_QUEUED_STATUSES = frozenset({Status.PENDING, Status.IN_PROGRESS, Status.WAITING})
_FINAL_STATUSES = frozenset({Status.RESULT, Status.ERROR, Status.STOPPED})


@attrs.define(slots=True)
class _Outstanding:
    packet_id: int
    frame: bytes
    message: HostMessage
    acked_tid: int | None  # the task an AckAdd acknowledges
    attempts: int = 1


class HostConnection:
    """The host's end (Kassa's driver): sends task-buffer commands and tracks every task."""

    def __init__(
        self,
        *,
        first_packet_id: int = 1,
        max_attempts: int = 5,
        max_data_length: int = MAX_DATA_LENGTH,
    ) -> None:
        if not 0 <= first_packet_id <= MAX_PACKET_ID:
            raise AtolError(f"must be 0…{MAX_PACKET_ID}", "first_packet_id")
        if max_attempts < 1:
            raise AtolError("at least one attempt", "max_attempts")
        self._reader = FrameReader(max_data_length)
        self._items: deque[Packet | BadFrame] = deque()
        self._events: deque[HostEvent] = deque()
        self._outbox = bytearray()
        self._tasks: dict[int, HostTaskState] = {}
        self._outstanding: _Outstanding | None = None
        self._next_id = first_packet_id
        self._max_attempts = max_attempts
        self._error: AtolError | None = None

    @property
    def awaiting_answer(self) -> bool:
        """True while a packet waits for its answer; ``send()`` is refused until then."""
        return self._outstanding is not None

    @property
    def buffered_bytes(self) -> int:
        """Bytes held for an incomplete frame."""
        return self._reader.buffered_bytes

    def task_state(self, tid: int) -> HostTaskState:
        return self._tasks.get(tid, HostTaskState.ABSENT)

    def _check_usable(self) -> None:
        if self._error is not None:
            raise AtolError(f"the connection is broken: {self._error.reason}", "connection")

    def send(self, message: HostMessage) -> bytes:
        """The frame for one task-buffer command; raises if the task table forbids it."""
        self._check_usable()
        if self._outstanding is not None:
            pid = self._outstanding.packet_id
            raise AtolError(f"packet {pid:#04x} is unanswered: wait or retransmit()", "connection")
        moves: dict[int, HostTaskState] = {}
        acked_tid = None
        if isinstance(message, AckAddTask):
            if self._tasks:
                acked_tid = next(reversed(self._tasks))
                moves[acked_tid] = host_transition(self._tasks[acked_tid], HostInput.SEND_ACK)
            moves[message.tid] = host_transition(self.task_state(message.tid), HostInput.SEND_ADD)
        elif isinstance(message, AddTask):
            moves[message.tid] = host_transition(self.task_state(message.tid), HostInput.SEND_ADD)
        elif isinstance(message, ReqTask):
            moves[message.tid] = host_transition(self.task_state(message.tid), HostInput.SEND_REQ)
        elif isinstance(message, AckTask):
            moves[message.tid] = host_transition(self.task_state(message.tid), HostInput.SEND_ACK)
        frame = encode_packet(self._next_id, message.encode())
        self._tasks.update(moves)
        self._outstanding = _Outstanding(self._next_id, frame, message, acked_tid)
        self._next_id = 0 if self._next_id == MAX_PACKET_ID else self._next_id + 1
        return frame

    def retransmit(self) -> bytes:
        """The unanswered packet again, same ID; call it when the answer is late."""
        self._check_usable()
        if self._outstanding is None:
            raise AtolError("no packet waits for an answer", "connection")
        self._spend_attempt(self._outstanding)
        return self._outstanding.frame

    def receive_data(self, data: bytes) -> None:
        self._check_usable()
        self._items.extend(self._reader.feed(data))

    def next_event(self) -> HostEvent | NeedData:
        """The next event, or NEED_DATA; an :class:`AtolError` here breaks the connection."""
        self._check_usable()
        while not self._events:
            if not self._items:
                return NEED_DATA
            try:
                self._process(self._items.popleft())
            except AtolError as exc:
                self._error = exc
                raise
        return self._events.popleft()

    def data_to_send(self) -> bytes:
        """Repeats the protocol decided on by itself while reading."""
        out = bytes(self._outbox)
        self._outbox.clear()
        return out

    def _spend_attempt(self, outstanding: _Outstanding) -> None:
        outstanding.attempts += 1
        if outstanding.attempts > self._max_attempts:
            self._error = AtolError(
                f"no answer to packet {outstanding.packet_id:#04x} "
                f"after {self._max_attempts} attempts",
                "connection",
            )
            raise self._error

    def _process(self, item: Packet | BadFrame) -> None:
        out = self._outstanding
        if isinstance(item, BadFrame):
            if out is not None and item.packet_id == out.packet_id:
                self._spend_attempt(out)
                self._outbox += encode_packet(out.packet_id, b"")
            return
        if item.packet_id == ASYNC_PACKET_ID:
            message = decode_device_message(item.data)
            if not isinstance(message, AsyncResult):
                raise AtolError(f"{item.data[0]:#04x} in an 0xF0 packet", "status")
            self._apply(message.tid, HostInput.GOT_RESULT, message)
            return
        if out is None or item.packet_id != out.packet_id:
            return
        if not item.data:
            self._spend_attempt(out)
            self._outbox += out.frame
            return
        message = decode_device_message(item.data)
        if isinstance(message, AsyncResult):
            raise AtolError("an async status outside an 0xF0 packet", "status")
        self._outstanding = None
        sent = out.message
        if isinstance(sent, AbortTasks):
            self._aborted(message)
            return
        if isinstance(sent, AckAddTask):
            if isinstance(message, BufferRefusal) and message.code is BufferErrorCode.ILLEGAL_VALUE:
                raise AtolError("AckAdd refused with B4: did its Ack happen?", "status")
            if out.acked_tid is not None:
                self._apply(out.acked_tid, HostInput.GOT_ACKED, message)
        self._apply(sent.tid, _classify(sent, message), message)

    def _aborted(self, message: TaskStatusReply | BufferRefusal) -> None:
        if isinstance(message, BufferRefusal):
            raise AtolError(f"Abort refused with {message.code:#04x}", "status")
        discarded = []
        for tid, state in list(self._tasks.items()):
            if host_transition(state, HostInput.ABORTED) is HostTaskState.ABSENT:
                del self._tasks[tid]
                discarded.append(tid)
        self._events.append(BufferAborted(discarded=tuple(discarded)))

    def _apply(self, tid: int, event: HostInput, message: DeviceMessage) -> None:
        old = self.task_state(tid)
        new = host_transition(old, event)
        if new is HostTaskState.ABSENT:
            self._tasks.pop(tid, None)
        else:
            self._tasks[tid] = new
        if isinstance(message, BufferRefusal):
            if event is HostInput.GOT_REFUSED:
                code, index = message.code, message.param_index
                self._events.append(TaskRefused(tid=tid, code=code, param_index=index))
            elif old is HostTaskState.QUEUED:
                self._events.append(TaskLost(tid=tid))
            else:  # B3 for a task whose outcome the host has, or the Ack inside an AckAdd
                self._events.append(TaskReleased(tid=tid))
        elif event is HostInput.GOT_ACKED:
            self._events.append(TaskReleased(tid=tid))
        elif new is HostTaskState.QUEUED:
            self._events.append(TaskQueued(tid=tid, status=message.status))
        elif new is HostTaskState.FINISHED and old is not HostTaskState.FINISHED:
            error = message.status in (Status.ERROR, Status.ASYNC_ERROR)
            self._events.append(TaskFinished(tid=tid, answer=message.answer, error=error))
        elif new is HostTaskState.STOPPED and old is not HostTaskState.STOPPED:
            self._events.append(TaskStopped(tid=tid))


def _classify(sent: AddTask | AckAddTask | ReqTask | AckTask, reply: DeviceMessage) -> HostInput:
    """How a synchronous answer reads for the task the host asked about."""
    if isinstance(reply, BufferRefusal):
        if reply.code is BufferErrorCode.NOT_FOUND:
            return HostInput.GOT_NOT_FOUND
        return HostInput.GOT_REFUSED
    status = reply.status
    if status in _QUEUED_STATUSES:
        return HostInput.GOT_QUEUED
    if isinstance(sent, AckTask):
        return HostInput.GOT_ACKED
    if status is Status.STOPPED:
        return HostInput.GOT_STOPPED
    return HostInput.GOT_RESULT


class DeviceConnection:
    """The register's end (ККТ; the emulator): answers the host, runs tasks one at a time."""

    def __init__(
        self, *, capacity: int = DEFAULT_CAPACITY, max_data_length: int = MAX_DATA_LENGTH
    ) -> None:
        self._reader = FrameReader(max_data_length)
        self._items: deque[Packet | BadFrame] = deque()
        self._events: deque[DeviceEvent] = deque()
        self._outbox = bytearray()
        self._buffer = TaskBuffer(capacity)
        self._last: tuple[int, bytes, bytes] | None = None  # ID, DATA, the answer frame

    @property
    def buffered_bytes(self) -> int:
        """Bytes held for an incomplete frame."""
        return self._reader.buffered_bytes

    def task_state(self, tid: int) -> TaskState:
        return self._buffer.state(tid)

    def next_pending(self) -> int | None:
        """The task to start next, or None while one runs or none waits."""
        return self._buffer.next_pending()

    def receive_data(self, data: bytes) -> None:
        self._items.extend(self._reader.feed(data))

    def next_event(self) -> DeviceEvent | NeedData:
        """The next event, or NEED_DATA; answers to the host pile up in ``data_to_send()``."""
        while not self._events:
            if not self._items:
                return NEED_DATA
            self._process(self._items.popleft())
        return self._events.popleft()

    def data_to_send(self) -> bytes:
        """Answers and repeats for the host."""
        out = bytes(self._outbox)
        self._outbox.clear()
        return out

    def send(self, action: DeviceAction) -> bytes:
        """Record a step of the running task; returns the 0xF0 packet if one is due."""
        if isinstance(action, TaskStarted):
            self._buffer.start(action.tid)
        elif isinstance(action, TaskWaiting):
            self._buffer.wait(action.tid)
        elif isinstance(action, TaskResumed):
            self._buffer.resume(action.tid)
        elif isinstance(action, TaskCompleted):
            completed = self._buffer.complete(action.tid, action.answer, error=action.error)
            self._events.extend(TaskCancelled(tid=tid) for tid in completed.cancelled)
            if completed.async_result is not None:
                return encode_packet(ASYNC_PACKET_ID, completed.async_result.encode())
        return b""

    def _process(self, item: Packet | BadFrame) -> None:
        if isinstance(item, BadFrame):
            if item.packet_id is not None and item.packet_id <= MAX_PACKET_ID:
                self._outbox += encode_packet(item.packet_id, b"")
            return
        pid, data, last = item.packet_id, item.data, self._last
        if pid > MAX_PACKET_ID:
            return  # not a host packet ID
        if last is not None and last[0] == pid and (not data or last[1] == data):
            self._outbox += last[2]
            return
        if not data:
            return
        try:
            handled = self._buffer.handle(decode_host_message(data))
        except AtolError as exc:
            refusal = BufferRefusal(
                code=BufferErrorCode.ILLEGAL_VALUE, param_index=1 if exc.path == "tid" else 0
            )
            handled = Handled(refusal)
        frame = encode_packet(pid, handled.reply.encode())
        self._last = (pid, data, frame)
        self._outbox += frame
        if handled.added is not None:
            added = handled.added
            self._events.append(TaskAdded(tid=added.tid, flags=added.flags, request=added.request))
        self._events.extend(TaskCancelled(tid=tid) for tid in handled.cancelled)
