"""Events of the ATOL task-buffer connections, in the style of h11.

The host sends the task-buffer commands of :mod:`protocols.atol.taskbuffer` (``AddTask``,
``ReqTask`` …) and receives the ``Task*`` host events below; the register (device role)
receives :class:`TaskAdded` / :class:`TaskCancelled` and sends :class:`TaskStarted`,
:class:`TaskWaiting`, :class:`TaskResumed` and :class:`TaskCompleted` as it executes tasks.
"""

from __future__ import annotations

import enum
from typing import Final

import attrs

from protocols.atol.taskbuffer import BufferErrorCode, Status, TaskFlags, check_flags, check_tid

__all__ = [
    "NEED_DATA",
    "BufferAborted",
    "NeedData",
    "TaskAdded",
    "TaskCancelled",
    "TaskCompleted",
    "TaskFinished",
    "TaskLost",
    "TaskQueued",
    "TaskRefused",
    "TaskReleased",
    "TaskResumed",
    "TaskStarted",
    "TaskStopped",
    "TaskWaiting",
]


class NeedData(enum.Enum):
    """``next_event()`` has nothing more until ``receive_data()`` is given more bytes."""

    NEED_DATA = "NEED_DATA"


NEED_DATA: Final = NeedData.NEED_DATA

# The register's side: what it is told, and what it tells.


@attrs.frozen(kw_only=True, slots=True)
class TaskAdded:
    """The host put a task into the buffer; run it in the order added."""

    tid: int = attrs.field(validator=check_tid)
    flags: TaskFlags = attrs.field(validator=check_flags)
    request: bytes


@attrs.frozen(kw_only=True, slots=True)
class TaskCancelled:
    """A task that was never started left the buffer (Abort, or an earlier task failed)."""

    tid: int = attrs.field(validator=check_tid)


@attrs.frozen(kw_only=True, slots=True)
class TaskStarted:
    """The register begins the oldest pending task (status A2)."""

    tid: int = attrs.field(validator=check_tid)


@attrs.frozen(kw_only=True, slots=True)
class TaskWaiting:
    """The running task waits for an external device (status A8)."""

    tid: int = attrs.field(validator=check_tid)


@attrs.frozen(kw_only=True, slots=True)
class TaskResumed:
    """The waiting task runs again (status A2)."""

    tid: int = attrs.field(validator=check_tid)


@attrs.frozen(kw_only=True, slots=True)
class TaskCompleted:
    """The running task ended with an application answer (A3 result or A4 error)."""

    tid: int = attrs.field(validator=check_tid)
    answer: bytes
    error: bool = False


# The host's side: what it learns about its tasks.


@attrs.frozen(kw_only=True, slots=True)
class TaskQueued:
    """The register holds the task: pending (A1), in progress (A2) or waiting (A8)."""

    tid: int = attrs.field(validator=check_tid)
    status: Status


@attrs.frozen(kw_only=True, slots=True)
class TaskFinished:
    """The task's result, reported once however many times the register repeats it."""

    tid: int = attrs.field(validator=check_tid)
    answer: bytes
    error: bool


@attrs.frozen(kw_only=True, slots=True)
class TaskStopped:
    """The register stopped the task without running it (A5): an earlier task failed."""

    tid: int = attrs.field(validator=check_tid)


@attrs.frozen(kw_only=True, slots=True)
class TaskRefused:
    """The register did not take the task (B1, B2 or B4); it was never run."""

    tid: int = attrs.field(validator=check_tid)
    code: BufferErrorCode
    param_index: int | None


@attrs.frozen(kw_only=True, slots=True)
class TaskLost:
    """The register no longer knows a task whose outcome the host never saw (B3): in doubt."""

    tid: int = attrs.field(validator=check_tid)


@attrs.frozen(kw_only=True, slots=True)
class TaskReleased:
    """The register no longer holds a task whose outcome the host has; the ID is free."""

    tid: int = attrs.field(validator=check_tid)


@attrs.frozen(kw_only=True, slots=True)
class BufferAborted:
    """The register cleared its buffer; ``discarded`` lists finished tasks it forgot."""

    discarded: tuple[int, ...]


HostEvent = (
    TaskQueued | TaskFinished | TaskStopped | TaskRefused | TaskLost | TaskReleased | BufferAborted
)
DeviceEvent = TaskAdded | TaskCancelled
DeviceAction = TaskStarted | TaskWaiting | TaskResumed | TaskCompleted
