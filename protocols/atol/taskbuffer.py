"""The ATOL task-buffer layer (буфер заданий), carried in the DATA of v3 packets.

Host -> register: C1 Add ``C1 flags TID request``, C2 Ack ``C2 TID``, C3 Req ``C3 TID``,
C4 Abort ``C4``, C5 AckAdd ``C5 flags TID request``. Register -> host: a status A1…A8 or a
buffer error B1…B4. Each task moves through the states of :data:`DEVICE_TRANSITIONS` on the
register and of :data:`HOST_TRANSITIONS` on the host; a pair missing from a table is an
:class:`~protocols.atol.errors.AtolError` (h2's rule).

The reference (S6 atol4j, S7, the public drivers) fixes the command and status bytes and the
async packet ``A6/A7 TID answer``. Where it is silent this module follows the most common
behaviour of real devices and drivers, and assumes:

1. Every host packet gets one answer packet with the same ID. A synchronous answer carries no
   TID (atol4j and the Cyberplat driver both read ``status | data``): ``A1``, ``A2``, ``A5``,
   ``A8`` alone; ``A3 answer`` and ``A4 answer`` with the application answer.
2. Add answers with the new task's status (A1); a TID already in the buffer gets B2, a full
   buffer B1 (capacity :data:`DEFAULT_CAPACITY`, a constructor argument). Flags with unknown
   bits get ``B4 00`` and a TID above 0xDF ``B4 01`` (B4 carries the index of the bad
   parameter, 0 = flags, 1 = TID, as the Cyberplat driver documents); a malformed or unknown
   command also gets ``B4 00``.
3. Req answers with the task's status, with the answer for A3/A4; an unknown TID gets B3.
4. Ack removes a finished task (A3, A4 or A5) and answers with that status byte alone; Ack of a
   task still pending or running changes nothing and answers with its status; an unknown TID
   gets B3 (so a repeated Ack is harmless).
5. AckAdd acknowledges the newest task in the buffer if it is finished, then adds as Add does.
6. Abort removes every task not yet started and every finished one; a task already running
   cannot be stopped halfway (a fiscal document is in the ФН) and keeps running, its result
   kept. Abort answers A5.
7. Tasks run one at a time in the order added. When a task ends in error, every pending task
   without IgnoreError is stopped (A5). A result is kept until acknowledged when the task has
   NeedResult or WaitAsyncData (atol4j acknowledges async results too); otherwise the task
   leaves the buffer as soon as it ends.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping

import attrs

from protocols.atol.errors import AtolError
from protocols.atol.transport import MAX_DATA_LENGTH

__all__ = [
    "DEFAULT_CAPACITY",
    "DEVICE_TRANSITIONS",
    "HOST_TRANSITIONS",
    "MAX_PAYLOAD",
    "MAX_TID",
    "STATE_STATUS",
    "AbortTasks",
    "AckAddTask",
    "AckTask",
    "AddTask",
    "AsyncResult",
    "BufferErrorCode",
    "BufferRefusal",
    "Completed",
    "DeviceInput",
    "Handled",
    "HostInput",
    "HostTaskState",
    "Reply",
    "ReqTask",
    "Status",
    "TaskBuffer",
    "TaskCommand",
    "TaskFlags",
    "TaskState",
    "TaskStatusReply",
    "check_flags",
    "check_tid",
    "decode_device_message",
    "decode_host_message",
    "device_transition",
    "host_transition",
]

#: Task IDs (идентификаторы заданий) run 0x00…0xDF, as packet IDs do (S6).
MAX_TID = 0xDF
#: Tasks a register holds at once; the real figure is not public.
DEFAULT_CAPACITY = 32
#: The longest application request or answer that fits a packet after the task-layer header.
MAX_PAYLOAD = MAX_DATA_LENGTH - 3


class TaskCommand(enum.IntEnum):
    """Task-buffer commands (команды буфера заданий)."""

    ADD = 0xC1
    ACK = 0xC2
    REQ = 0xC3
    ABORT = 0xC4
    ACK_ADD = 0xC5


class TaskFlags(enum.IntFlag):
    """Flags of an Add (флаги задания)."""

    NONE = 0
    #: Keep the result until the host acknowledges it (NeedResult).
    NEED_RESULT = 0x01
    #: Run even if an earlier task ended in error (IgnoreError).
    IGNORE_ERROR = 0x02
    #: Send the result unasked in an 0xF0 packet (WaitAsyncData).
    WAIT_ASYNC_DATA = 0x04


class Status(enum.IntEnum):
    """Task statuses (статусы задания), the first byte of the register's answer."""

    PENDING = 0xA1
    IN_PROGRESS = 0xA2
    RESULT = 0xA3
    ERROR = 0xA4
    STOPPED = 0xA5
    ASYNC_RESULT = 0xA6
    ASYNC_ERROR = 0xA7
    WAITING = 0xA8


class BufferErrorCode(enum.IntEnum):
    """Task-buffer errors (ошибки буфера заданий)."""

    OVERFLOW = 0xB1
    ALREADY_EXISTS = 0xB2
    NOT_FOUND = 0xB3
    ILLEGAL_VALUE = 0xB4


_SYNC_STATUSES = frozenset(Status) - {Status.ASYNC_RESULT, Status.ASYNC_ERROR}
_WITH_ANSWER = frozenset({Status.RESULT, Status.ERROR})
_KNOWN_FLAGS = 0x07


def check_tid(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    """attrs validator: a task ID 0x00…0xDF."""
    if not 0 <= value <= MAX_TID:
        raise AtolError(f"task ID {value} is not 0…{MAX_TID}", attribute.name)


def check_flags(_: object, attribute: attrs.Attribute[TaskFlags], value: TaskFlags) -> None:
    """attrs validator: only the three known flag bits."""
    if not 0 <= value <= _KNOWN_FLAGS:
        raise AtolError(f"unknown flag bits in {int(value):#04x}", attribute.name)


def _payload_limit(limit: int) -> Callable[[object, attrs.Attribute[bytes], bytes], None]:
    def check(_: object, attribute: attrs.Attribute[bytes], value: bytes) -> None:
        if len(value) > limit:
            raise AtolError(f"{len(value)} bytes, at most {limit}", attribute.name)

    return check


_check_payload = _payload_limit(MAX_PAYLOAD)


##########################################################################################
# Messages


@attrs.frozen(kw_only=True, slots=True)
class AddTask:
    """C1 Add (добавить задание): put an application request into the buffer."""

    tid: int = attrs.field(validator=check_tid)
    request: bytes = attrs.field(validator=_check_payload)
    flags: TaskFlags = attrs.field(default=TaskFlags.NEED_RESULT, validator=check_flags)

    def encode(self) -> bytes:
        return bytes((TaskCommand.ADD, self.flags, self.tid)) + self.request


@attrs.frozen(kw_only=True, slots=True)
class AckTask:
    """C2 Ack (подтвердить получение результата): the host has the result; free the task."""

    tid: int = attrs.field(validator=check_tid)

    def encode(self) -> bytes:
        return bytes((TaskCommand.ACK, self.tid))


@attrs.frozen(kw_only=True, slots=True)
class ReqTask:
    """C3 Req (запрос состояния задания): ask for a task's status and result."""

    tid: int = attrs.field(validator=check_tid)

    def encode(self) -> bytes:
        return bytes((TaskCommand.REQ, self.tid))


@attrs.frozen(kw_only=True, slots=True)
class AbortTasks:
    """C4 Abort (очистить буфер): drop every task that has not started."""

    def encode(self) -> bytes:
        return bytes((TaskCommand.ABORT,))


@attrs.frozen(kw_only=True, slots=True)
class AckAddTask:
    """C5 AckAdd: acknowledge the newest finished task and add a new one in one packet."""

    tid: int = attrs.field(validator=check_tid)
    request: bytes = attrs.field(validator=_check_payload)
    flags: TaskFlags = attrs.field(default=TaskFlags.NEED_RESULT, validator=check_flags)

    def encode(self) -> bytes:
        return bytes((TaskCommand.ACK_ADD, self.flags, self.tid)) + self.request


HostMessage = AddTask | AckTask | ReqTask | AbortTasks | AckAddTask


def _check_sync_status(_: object, attribute: attrs.Attribute[Status], value: Status) -> None:
    if value not in _SYNC_STATUSES:
        raise AtolError(f"{value!r} is sent only in 0xF0 packets", attribute.name)


@attrs.frozen(kw_only=True, slots=True)
class TaskStatusReply:
    """A synchronous answer: a status, and the application answer after A3 or A4."""

    status: Status = attrs.field(validator=_check_sync_status)
    answer: bytes = attrs.field(default=b"", validator=_payload_limit(MAX_DATA_LENGTH - 1))

    def __attrs_post_init__(self) -> None:
        if self.answer and self.status not in _WITH_ANSWER:
            raise AtolError(f"{self.status!r} carries no answer", "answer")

    def encode(self) -> bytes:
        return bytes((self.status,)) + self.answer


@attrs.frozen(kw_only=True, slots=True)
class AsyncResult:
    """A6 async result / A7 async error, sent unasked with packet ID 0xF0."""

    tid: int = attrs.field(validator=check_tid)
    answer: bytes = attrs.field(validator=_payload_limit(MAX_DATA_LENGTH - 2))
    error: bool = False

    @property
    def status(self) -> Status:
        return Status.ASYNC_ERROR if self.error else Status.ASYNC_RESULT

    def encode(self) -> bytes:
        return bytes((self.status, self.tid)) + self.answer


@attrs.frozen(kw_only=True, slots=True)
class BufferRefusal:
    """B1…B4: the buffer refused a command; B4 names the bad parameter (0 flags, 1 TID)."""

    code: BufferErrorCode
    param_index: int | None = None

    def __attrs_post_init__(self) -> None:
        if (self.code is BufferErrorCode.ILLEGAL_VALUE) != (self.param_index is not None):
            raise AtolError("B4 and only B4 carries a parameter index", "param_index")
        if self.param_index is not None and not 0 <= self.param_index <= 0xFF:
            raise AtolError(f"{self.param_index} is not a byte", "param_index")

    def encode(self) -> bytes:
        if self.param_index is None:
            return bytes((self.code,))
        return bytes((self.code, self.param_index))


DeviceMessage = TaskStatusReply | AsyncResult | BufferRefusal


def decode_host_message(data: bytes) -> HostMessage:
    """Decode a host packet's DATA; the error's ``path`` is ``flags``, ``tid`` or ``command``."""
    if not data:
        raise AtolError("no task-buffer command", "command")
    command = data[0]
    if command in (TaskCommand.ADD, TaskCommand.ACK_ADD):
        if len(data) < 3:
            raise AtolError(f"{command:#04x} needs flags and a TID", "command")
        if data[1] & ~_KNOWN_FLAGS:
            raise AtolError(f"unknown flag bits in {data[1]:#04x}", "flags")
        if data[2] > MAX_TID:
            raise AtolError(f"task ID {data[2]} is not 0…{MAX_TID}", "tid")
        cls = AddTask if command == TaskCommand.ADD else AckAddTask
        return cls(tid=data[2], flags=TaskFlags(data[1]), request=data[3:])
    if command in (TaskCommand.ACK, TaskCommand.REQ):
        if len(data) != 2:
            raise AtolError(f"{command:#04x} is followed by exactly one TID", "command")
        if data[1] > MAX_TID:
            raise AtolError(f"task ID {data[1]} is not 0…{MAX_TID}", "tid")
        return AckTask(tid=data[1]) if command == TaskCommand.ACK else ReqTask(tid=data[1])
    if command == TaskCommand.ABORT:
        if len(data) != 1:
            raise AtolError("C4 takes no parameters", "command")
        return AbortTasks()
    raise AtolError(f"unknown task-buffer command {command:#04x}", "command")


def decode_device_message(data: bytes) -> DeviceMessage:
    """Decode a register packet's DATA (not the empty retransmission request)."""
    if not data:
        raise AtolError("no status byte", "status")
    code = data[0]
    if code in _SYNC_STATUSES:
        return TaskStatusReply(status=Status(code), answer=data[1:])
    if code in (Status.ASYNC_RESULT, Status.ASYNC_ERROR):
        if len(data) < 2:
            raise AtolError("an async status is followed by a TID", "tid")
        return AsyncResult(tid=data[1], answer=data[2:], error=code == Status.ASYNC_ERROR)
    if code == BufferErrorCode.ILLEGAL_VALUE:
        if len(data) != 2:
            raise AtolError("B4 is followed by exactly one parameter index", "param_index")
        return BufferRefusal(code=BufferErrorCode.ILLEGAL_VALUE, param_index=data[1])
    if code in (
        BufferErrorCode.OVERFLOW,
        BufferErrorCode.ALREADY_EXISTS,
        BufferErrorCode.NOT_FOUND,
    ):
        if len(data) != 1:
            raise AtolError(f"{code:#04x} takes no parameters", "status")
        return BufferRefusal(code=BufferErrorCode(code))
    raise AtolError(f"unknown status {code:#04x}", "status")


##########################################################################################
# The register's side: one task's states and the table that moves it


class TaskState(enum.Enum):
    """Where a task is in the register's buffer (ABSENT: not there)."""

    ABSENT = "absent"
    PENDING = "pending"
    IN_PROGRESS = "in progress"
    WAITING = "waiting"
    RESULT = "result"
    ERROR = "error"
    STOPPED = "stopped"


#: The status byte each present state reports.
STATE_STATUS: Mapping[TaskState, Status] = {
    TaskState.PENDING: Status.PENDING,
    TaskState.IN_PROGRESS: Status.IN_PROGRESS,
    TaskState.WAITING: Status.WAITING,
    TaskState.RESULT: Status.RESULT,
    TaskState.ERROR: Status.ERROR,
    TaskState.STOPPED: Status.STOPPED,
}


class DeviceInput(enum.Enum):
    """What moves a task: a host command (ADD…ABORT) or the register's own step."""

    ADD = "add"
    REQ = "req"
    ACK = "ack"
    ABORT = "abort"
    START = "start"
    WAIT = "wait"
    RESUME = "resume"
    SUCCEED = "succeed"
    FAIL = "fail"
    STOP = "stop"
    DISCARD = "discard"


class Reply(enum.Enum):
    """What the register answers a host command with."""

    NONE = "none"  # the register's own steps, and Abort (answered for the whole buffer)
    STATUS = "status"  # the task's status after the command, with the answer for A3/A4
    ACKED = "acked"  # the status the task had, without the answer
    ALREADY_EXISTS = "B2"
    NOT_FOUND = "B3"


_A = TaskState.ABSENT
_P = TaskState.PENDING
_G = TaskState.IN_PROGRESS
_W = TaskState.WAITING
_R = TaskState.RESULT
_E = TaskState.ERROR
_S = TaskState.STOPPED
_I = DeviceInput
_Y = Reply

#: (state, input) -> (new state, reply). Host commands are defined in every state.
DEVICE_TRANSITIONS: Mapping[tuple[TaskState, DeviceInput], tuple[TaskState, Reply]] = {
    (_A, _I.ADD): (_P, _Y.STATUS),
    (_A, _I.REQ): (_A, _Y.NOT_FOUND),
    (_A, _I.ACK): (_A, _Y.NOT_FOUND),
    (_A, _I.ABORT): (_A, _Y.NONE),
    (_P, _I.ADD): (_P, _Y.ALREADY_EXISTS),
    (_P, _I.REQ): (_P, _Y.STATUS),
    (_P, _I.ACK): (_P, _Y.STATUS),
    (_P, _I.ABORT): (_A, _Y.NONE),
    (_P, _I.START): (_G, _Y.NONE),
    (_P, _I.STOP): (_S, _Y.NONE),
    (_G, _I.ADD): (_G, _Y.ALREADY_EXISTS),
    (_G, _I.REQ): (_G, _Y.STATUS),
    (_G, _I.ACK): (_G, _Y.STATUS),
    (_G, _I.ABORT): (_G, _Y.NONE),
    (_G, _I.WAIT): (_W, _Y.NONE),
    (_G, _I.SUCCEED): (_R, _Y.NONE),
    (_G, _I.FAIL): (_E, _Y.NONE),
    (_W, _I.ADD): (_W, _Y.ALREADY_EXISTS),
    (_W, _I.REQ): (_W, _Y.STATUS),
    (_W, _I.ACK): (_W, _Y.STATUS),
    (_W, _I.ABORT): (_W, _Y.NONE),
    (_W, _I.RESUME): (_G, _Y.NONE),
    (_W, _I.SUCCEED): (_R, _Y.NONE),
    (_W, _I.FAIL): (_E, _Y.NONE),
    (_R, _I.ADD): (_R, _Y.ALREADY_EXISTS),
    (_R, _I.REQ): (_R, _Y.STATUS),
    (_R, _I.ACK): (_A, _Y.ACKED),
    (_R, _I.ABORT): (_A, _Y.NONE),
    (_R, _I.DISCARD): (_A, _Y.NONE),
    (_E, _I.ADD): (_E, _Y.ALREADY_EXISTS),
    (_E, _I.REQ): (_E, _Y.STATUS),
    (_E, _I.ACK): (_A, _Y.ACKED),
    (_E, _I.ABORT): (_A, _Y.NONE),
    (_E, _I.DISCARD): (_A, _Y.NONE),
    (_S, _I.ADD): (_S, _Y.ALREADY_EXISTS),
    (_S, _I.REQ): (_S, _Y.STATUS),
    (_S, _I.ACK): (_A, _Y.ACKED),
    (_S, _I.ABORT): (_A, _Y.NONE),
    (_S, _I.DISCARD): (_A, _Y.NONE),
}


def device_transition(state: TaskState, event: DeviceInput) -> tuple[TaskState, Reply]:
    """Look up the register's table; a missing pair is an :class:`AtolError`."""
    try:
        return DEVICE_TRANSITIONS[state, event]
    except KeyError:
        raise AtolError(f"a {state.value} task cannot {event.value}", "task state") from None


@attrs.define(slots=True)
class _Task:
    tid: int
    flags: TaskFlags
    request: bytes
    state: TaskState
    answer: bytes = b""


_FINAL = frozenset({TaskState.RESULT, TaskState.ERROR, TaskState.STOPPED})
_RUNNING = frozenset({TaskState.IN_PROGRESS, TaskState.WAITING})
_KEEP = TaskFlags.NEED_RESULT | TaskFlags.WAIT_ASYNC_DATA


@attrs.frozen(slots=True)
class Handled:
    """What one host command did: the answer, the task it added, the tasks it cancelled."""

    reply: DeviceMessage
    added: AddTask | None = None
    cancelled: tuple[int, ...] = ()


@attrs.frozen(slots=True)
class Completed:
    """What ending a task did: the 0xF0 message to send, if any, and the tasks it stopped."""

    async_result: AsyncResult | None
    cancelled: tuple[int, ...]


class TaskBuffer:
    """The register's task buffer: answers host commands and tracks execution by the table."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise AtolError("a buffer holds at least one task", "capacity")
        self._capacity = capacity
        self._tasks: dict[int, _Task] = {}

    def state(self, tid: int) -> TaskState:
        task = self._tasks.get(tid)
        return TaskState.ABSENT if task is None else task.state

    def next_pending(self) -> int | None:
        """The task to start next, if none is running."""
        for task in self._tasks.values():
            if task.state in _RUNNING:
                return None
            if task.state is TaskState.PENDING:
                return task.tid
        return None

    def _move(self, tid: int, event: DeviceInput) -> tuple[TaskState, Reply]:
        old = self.state(tid)
        new, reply = device_transition(old, event)
        if new is TaskState.ABSENT:
            self._tasks.pop(tid, None)
        elif old is not TaskState.ABSENT:
            self._tasks[tid].state = new
        return old, reply

    def _status_reply(self, tid: int, old: TaskState, reply: Reply) -> DeviceMessage:
        if reply is Reply.NOT_FOUND:
            return BufferRefusal(code=BufferErrorCode.NOT_FOUND)
        if reply is Reply.ACKED:
            return TaskStatusReply(status=STATE_STATUS[old])
        task = self._tasks[tid]
        answer = task.answer if task.state in (TaskState.RESULT, TaskState.ERROR) else b""
        return TaskStatusReply(status=STATE_STATUS[task.state], answer=answer)

    def _add(self, message: AddTask | AckAddTask) -> Handled:
        if message.tid in self._tasks:
            self._move(message.tid, DeviceInput.ADD)  # the table keeps the state: B2
            return Handled(BufferRefusal(code=BufferErrorCode.ALREADY_EXISTS))
        if len(self._tasks) >= self._capacity:
            return Handled(BufferRefusal(code=BufferErrorCode.OVERFLOW))
        state, _ = device_transition(TaskState.ABSENT, DeviceInput.ADD)
        self._tasks[message.tid] = _Task(message.tid, message.flags, message.request, state)
        added = AddTask(tid=message.tid, request=message.request, flags=message.flags)
        return Handled(TaskStatusReply(status=STATE_STATUS[state]), added=added)

    def handle(self, message: HostMessage) -> Handled:
        """Apply one host command."""
        if isinstance(message, AddTask):
            return self._add(message)
        if isinstance(message, AckAddTask):
            if self._tasks:
                newest = next(reversed(self._tasks.values()))
                if newest.state in _FINAL:
                    self._move(newest.tid, DeviceInput.ACK)
            return self._add(message)
        if isinstance(message, ReqTask | AckTask):
            event = DeviceInput.REQ if isinstance(message, ReqTask) else DeviceInput.ACK
            old, reply = self._move(message.tid, event)
            return Handled(self._status_reply(message.tid, old, reply))
        cancelled = tuple(t.tid for t in self._tasks.values() if t.state is TaskState.PENDING)
        for tid in list(self._tasks):
            self._move(tid, DeviceInput.ABORT)
        return Handled(TaskStatusReply(status=Status.STOPPED), cancelled=cancelled)

    def start(self, tid: int) -> None:
        """Begin a task: it must be the oldest pending one, and nothing may be running."""
        if self.state(tid) is TaskState.PENDING and self.next_pending() != tid:
            raise AtolError(f"task {tid} is not next: tasks run one at a time, in order", "tid")
        self._move(tid, DeviceInput.START)

    def wait(self, tid: int) -> None:
        self._move(tid, DeviceInput.WAIT)

    def resume(self, tid: int) -> None:
        self._move(tid, DeviceInput.RESUME)

    def complete(self, tid: int, answer: bytes, *, error: bool) -> Completed:
        """End the running task (A3, or A4 when ``error``)."""
        if len(answer) > MAX_PAYLOAD:
            raise AtolError(f"{len(answer)} bytes, at most {MAX_PAYLOAD}", "answer")
        self._move(tid, DeviceInput.FAIL if error else DeviceInput.SUCCEED)
        task = self._tasks[tid]
        task.answer = answer
        cancelled: list[int] = []
        if error:
            for other in list(self._tasks.values()):
                if other.state is TaskState.PENDING and not other.flags & TaskFlags.IGNORE_ERROR:
                    self._move(other.tid, DeviceInput.STOP)
                    cancelled.append(other.tid)
                    if not other.flags & _KEEP:
                        self._move(other.tid, DeviceInput.DISCARD)
        if not task.flags & _KEEP:
            self._move(tid, DeviceInput.DISCARD)
        async_result = None
        if task.flags & TaskFlags.WAIT_ASYNC_DATA:
            async_result = AsyncResult(tid=tid, answer=answer, error=error)
        return Completed(async_result, tuple(cancelled))


##########################################################################################
# The host's side: what the host knows of one task


class HostTaskState(enum.Enum):
    """The host's view of one task (ABSENT: not tracked, its TID is free)."""

    ABSENT = "absent"
    ADDING = "adding"  # Add sent, no answer yet
    QUEUED = "queued"  # the register holds it, not finished
    FINISHED = "finished"  # the host has the result (A3/A4/A6/A7)
    STOPPED = "stopped"  # the register stopped it (A5)
    ACKING = "acking"  # Ack sent, no answer yet


class HostInput(enum.Enum):
    """What the host sends about a task, or how the register's answer reads for it."""

    SEND_ADD = "send Add"
    SEND_REQ = "send Req"
    SEND_ACK = "send Ack"
    ABORTED = "see the buffer aborted"
    GOT_QUEUED = "get A1/A2/A8"
    GOT_RESULT = "get A3/A4/A6/A7"
    GOT_STOPPED = "get A5"
    GOT_ACKED = "get the Ack confirmed"
    GOT_REFUSED = "get B1/B2/B4"
    GOT_NOT_FOUND = "get B3"


_HA = HostTaskState.ABSENT
_HD = HostTaskState.ADDING
_HQ = HostTaskState.QUEUED
_HF = HostTaskState.FINISHED
_HS = HostTaskState.STOPPED
_HK = HostTaskState.ACKING
_H = HostInput

#: (state, input) -> new state. Stale answers (a late A1 after an async result, a repeated
#: async result) are absorbed; answers that contradict what the host knows are errors.
HOST_TRANSITIONS: Mapping[tuple[HostTaskState, HostInput], HostTaskState] = {
    (_HA, _H.SEND_ADD): _HD,
    (_HA, _H.ABORTED): _HA,
    (_HA, _H.GOT_RESULT): _HA,  # a repeated async result after the Ack
    (_HD, _H.GOT_QUEUED): _HQ,
    (_HD, _H.GOT_RESULT): _HF,  # the async result overtook the Add's answer
    (_HD, _H.GOT_STOPPED): _HS,
    (_HD, _H.GOT_REFUSED): _HA,
    (_HQ, _H.SEND_REQ): _HQ,
    (_HQ, _H.ABORTED): _HQ,  # it may be running: ask again
    (_HQ, _H.GOT_QUEUED): _HQ,
    (_HQ, _H.GOT_RESULT): _HF,
    (_HQ, _H.GOT_STOPPED): _HS,
    (_HQ, _H.GOT_NOT_FOUND): _HA,  # lost: outcome unknown
    (_HF, _H.SEND_REQ): _HF,
    (_HF, _H.SEND_ACK): _HK,
    (_HF, _H.ABORTED): _HA,
    (_HF, _H.GOT_QUEUED): _HF,  # the Add's answer after the async result
    (_HF, _H.GOT_RESULT): _HF,
    (_HF, _H.GOT_NOT_FOUND): _HA,
    (_HS, _H.SEND_REQ): _HS,
    (_HS, _H.SEND_ACK): _HK,
    (_HS, _H.ABORTED): _HA,
    (_HS, _H.GOT_STOPPED): _HS,
    (_HS, _H.GOT_NOT_FOUND): _HA,
    (_HK, _H.GOT_ACKED): _HA,
    (_HK, _H.GOT_NOT_FOUND): _HA,
    (_HK, _H.GOT_RESULT): _HK,
}


def host_transition(state: HostTaskState, event: HostInput) -> HostTaskState:
    """Look up the host's table; a missing pair is an :class:`AtolError`."""
    try:
        return HOST_TRANSITIONS[state, event]
    except KeyError:
        raise AtolError(
            f"a task that is {state.value} cannot {event.value}", "task state"
        ) from None
