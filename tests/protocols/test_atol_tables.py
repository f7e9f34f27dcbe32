"""The task-buffer state tables, state × input, against the real connection objects (as h2)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from protocols.atol import (
    NEED_DATA,
    AbortTasks,
    AckTask,
    AddTask,
    AtolError,
    DeviceConnection,
    HostConnection,
    ReqTask,
    Status,
    TaskCompleted,
    TaskFlags,
    TaskResumed,
    TaskStarted,
    TaskWaiting,
    encode_packet,
)
from protocols.atol.taskbuffer import (
    DEVICE_TRANSITIONS,
    HOST_TRANSITIONS,
    STATE_STATUS,
    BufferErrorCode,
    BufferRefusal,
    DeviceInput,
    HostInput,
    HostTaskState,
    Reply,
    TaskState,
    TaskStatusReply,
    decode_device_message,
    device_transition,
    host_transition,
)
from protocols.atol.transport import ASYNC_PACKET_ID, FrameReader, Packet

T = 5  # the task under test
OTHER = 4
ANSWER = b"\x55\x00\x00"
HOST_COMMANDS = (DeviceInput.ADD, DeviceInput.REQ, DeviceInput.ACK, DeviceInput.ABORT)


# The pure tables --------------------------------------------------------------------------


@pytest.mark.parametrize(("state", "event"), list(itertools.product(TaskState, DeviceInput)))
def test_device_table_lookup_is_the_table_or_an_atol_error(
    state: TaskState, event: DeviceInput
) -> None:
    if (state, event) in DEVICE_TRANSITIONS:
        new, reply = device_transition(state, event)
        assert (new, reply) == DEVICE_TRANSITIONS[state, event]
        # Commands that only ask never move a task; nothing but Add creates one.
        if event is DeviceInput.REQ or reply is Reply.ALREADY_EXISTS:
            assert new is state
        if state is TaskState.ABSENT:
            assert new is (TaskState.PENDING if event is DeviceInput.ADD else TaskState.ABSENT)
        if event not in HOST_COMMANDS:
            assert reply is Reply.NONE
    else:
        # The register answers every host command in every state.
        assert event not in HOST_COMMANDS
        with pytest.raises(AtolError, match="cannot"):
            device_transition(state, event)


@pytest.mark.parametrize(("state", "event"), list(itertools.product(HostTaskState, HostInput)))
def test_host_table_lookup_is_the_table_or_an_atol_error(
    state: HostTaskState, event: HostInput
) -> None:
    if (state, event) in HOST_TRANSITIONS:
        new = host_transition(state, event)
        assert new is HOST_TRANSITIONS[state, event]
        # A result once seen is never forgotten by a later status.
        if state in (HostTaskState.FINISHED, HostTaskState.STOPPED, HostTaskState.ACKING):
            assert new not in (HostTaskState.ADDING, HostTaskState.QUEUED)
    else:
        with pytest.raises(AtolError, match="cannot"):
            host_transition(state, event)


# The register's buffer against its table ---------------------------------------------------


class Register:
    """A DeviceConnection driven by hand-made host packets, with fresh packet IDs."""

    def __init__(self) -> None:
        self.conn = DeviceConnection()
        self.packet_id = 0

    def command(self, message: AddTask | ReqTask | AckTask | AbortTasks) -> object:
        self.packet_id += 1
        self.conn.receive_data(encode_packet(self.packet_id, message.encode()))
        while self.conn.next_event() is not NEED_DATA:
            pass
        (answer,) = FrameReader().feed(self.conn.data_to_send())
        assert isinstance(answer, Packet) and answer.packet_id == self.packet_id
        return decode_device_message(answer.data)

    def add(self, tid: int, flags: TaskFlags = TaskFlags.NEED_RESULT) -> None:
        assert self.command(AddTask(tid=tid, request=b"\x00\x00\x3f", flags=flags)) == (
            TaskStatusReply(status=Status.PENDING)
        )


def register_with_task_in(state: TaskState) -> Register:
    register = Register()
    if state is TaskState.ABSENT:
        return register
    if state is TaskState.STOPPED:
        register.add(OTHER)
        register.add(T)
        register.conn.send(TaskStarted(tid=OTHER))
        register.conn.send(TaskCompleted(tid=OTHER, answer=ANSWER, error=True))
        return register
    register.add(T)
    if state is not TaskState.PENDING:
        register.conn.send(TaskStarted(tid=T))
    if state is TaskState.WAITING:
        register.conn.send(TaskWaiting(tid=T))
    if state in (TaskState.RESULT, TaskState.ERROR):
        register.conn.send(TaskCompleted(tid=T, answer=ANSWER, error=state is TaskState.ERROR))
    return register


def register_input(register: Register, event: DeviceInput) -> Callable[[], object]:
    actions: dict[DeviceInput, Callable[[], object]] = {
        DeviceInput.ADD: lambda: register.command(AddTask(tid=T, request=b"\x00\x00\x3f")),
        DeviceInput.REQ: lambda: register.command(ReqTask(tid=T)),
        DeviceInput.ACK: lambda: register.command(AckTask(tid=T)),
        DeviceInput.ABORT: lambda: register.command(AbortTasks()),
        DeviceInput.START: lambda: register.conn.send(TaskStarted(tid=T)),
        DeviceInput.WAIT: lambda: register.conn.send(TaskWaiting(tid=T)),
        DeviceInput.RESUME: lambda: register.conn.send(TaskResumed(tid=T)),
        DeviceInput.SUCCEED: lambda: register.conn.send(TaskCompleted(tid=T, answer=ANSWER)),
        DeviceInput.FAIL: lambda: register.conn.send(
            TaskCompleted(tid=T, answer=ANSWER, error=True)
        ),
    }
    return actions[event]


def expected_reply(old: TaskState, new: TaskState, reply: Reply, event: DeviceInput) -> object:
    if event is DeviceInput.ABORT:
        return TaskStatusReply(status=Status.STOPPED)
    if reply is Reply.ALREADY_EXISTS:
        return BufferRefusal(code=BufferErrorCode.ALREADY_EXISTS)
    if reply is Reply.NOT_FOUND:
        return BufferRefusal(code=BufferErrorCode.NOT_FOUND)
    if reply is Reply.ACKED:
        return TaskStatusReply(status=STATE_STATUS[old])
    answer = ANSWER if new in (TaskState.RESULT, TaskState.ERROR) else b""
    return TaskStatusReply(status=STATE_STATUS[new], answer=answer)


# STOP and DISCARD are the buffer's own rules, tested in test_atol_link.py.
DRIVEN = [event for event in DeviceInput if event not in (DeviceInput.STOP, DeviceInput.DISCARD)]


@pytest.mark.parametrize(("state", "event"), list(itertools.product(TaskState, DRIVEN)))
def test_register_moves_a_task_as_its_table_says(state: TaskState, event: DeviceInput) -> None:
    register = register_with_task_in(state)
    assert register.conn.task_state(T) is state
    act = register_input(register, event)
    if (state, event) not in DEVICE_TRANSITIONS:
        with pytest.raises(AtolError):
            act()
        assert register.conn.task_state(T) is state
        return
    new, reply = DEVICE_TRANSITIONS[state, event]
    result = act()
    assert register.conn.task_state(T) is new
    if event in HOST_COMMANDS:
        assert result == expected_reply(state, new, reply, event)


# The host's view against its table -----------------------------------------------------------

SYNC_ANSWERS = {
    HostInput.GOT_QUEUED: b"\xa1",
    HostInput.GOT_RESULT: b"\xa3" + ANSWER,
    HostInput.GOT_STOPPED: b"\xa5",
    HostInput.GOT_REFUSED: b"\xb1",
    HostInput.GOT_NOT_FOUND: b"\xb3",
}


class Host:
    """A HostConnection that remembers the ID of the packet it last sent."""

    def __init__(self) -> None:
        self.conn = HostConnection(first_packet_id=1)
        self.sent_id = 0

    def send(self, message: AddTask | ReqTask | AckTask | AbortTasks) -> None:
        self.sent_id = self.conn.send(message)[3]

    def answer(self, data: bytes, packet_id: int | None = None) -> list[object]:
        """Deliver the answer to the last packet, or an 0xF0 packet."""
        self.conn.receive_data(
            encode_packet(self.sent_id if packet_id is None else packet_id, data)
        )
        events: list[object] = []
        while (event := self.conn.next_event()) is not NEED_DATA:
            events.append(event)
        return events


def host_with_task_in(state: HostTaskState) -> Host:
    host = Host()
    if state is HostTaskState.ABSENT:
        return host
    host.send(AddTask(tid=T, request=b"\x00\x00\x3f"))
    if state is HostTaskState.ADDING:
        return host
    host.answer(b"\xa1")
    if state is HostTaskState.QUEUED:
        return host
    host.send(ReqTask(tid=T))
    host.answer(b"\xa5" if state is HostTaskState.STOPPED else b"\xa3" + ANSWER)
    if state is HostTaskState.ACKING:
        host.send(AckTask(tid=T))
    return host


def host_cases() -> list[tuple[HostTaskState, HostInput]]:
    """Every pair the host's API can produce (a sync answer needs a question in flight)."""
    cases = []
    for state, event in itertools.product(HostTaskState, HostInput):
        producible = (
            event in (HostInput.SEND_ADD, HostInput.SEND_REQ, HostInput.SEND_ACK)
            or event is HostInput.ABORTED
            or event is HostInput.GOT_RESULT
            or (event is HostInput.GOT_ACKED and state is HostTaskState.ACKING)
            or (
                event in SYNC_ANSWERS
                and state is not HostTaskState.ABSENT
                and not (state is HostTaskState.ACKING and event is HostInput.GOT_STOPPED)
            )
        )
        if producible:
            cases.append((state, event))
    return cases


def host_input(host: Host, state: HostTaskState, event: HostInput) -> None:
    if event is HostInput.SEND_ADD:
        host.send(AddTask(tid=T, request=b"\x00\x00\x3f"))
    elif event is HostInput.SEND_REQ:
        host.send(ReqTask(tid=T))
    elif event is HostInput.SEND_ACK:
        host.send(AckTask(tid=T))
    elif event is HostInput.ABORTED:
        host.send(AbortTasks())
        host.answer(b"\xa5")
    elif event is HostInput.GOT_RESULT and state in (HostTaskState.ABSENT, HostTaskState.ACKING):
        host.answer(bytes((Status.ASYNC_RESULT, T)) + ANSWER, ASYNC_PACKET_ID)
    elif event is HostInput.GOT_ACKED:
        host.answer(b"\xa3")
    else:
        if state in (HostTaskState.QUEUED, HostTaskState.FINISHED, HostTaskState.STOPPED):
            host.send(ReqTask(tid=T))  # a question for the answer to belong to
        host.answer(SYNC_ANSWERS[event])


@pytest.mark.parametrize(("state", "event"), host_cases())
def test_host_moves_a_task_as_its_table_says(state: HostTaskState, event: HostInput) -> None:
    host = host_with_task_in(state)
    assert host.conn.task_state(T) is state
    if (state, event) in HOST_TRANSITIONS:
        host_input(host, state, event)
        assert host.conn.task_state(T) is HOST_TRANSITIONS[state, event]
    else:
        with pytest.raises(AtolError):
            host_input(host, state, event)
