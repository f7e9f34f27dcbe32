"""Host and register over a clean and a lossy in-memory line; the link and buffer rules."""

from __future__ import annotations

import itertools
import random
from collections import Counter, deque
from datetime import datetime
from decimal import Decimal

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.atol import (
    NEED_DATA,
    AbortTasks,
    AckAddTask,
    AckTask,
    AddTask,
    AtolError,
    BufferAborted,
    BufferErrorCode,
    CloseReceipt,
    CommandAnswer,
    DeviceConnection,
    DeviceStatus,
    GetDeviceStatus,
    HostConnection,
    OpenReceipt,
    OpenShift,
    Payment,
    PaymentAnswer,
    PaymentType,
    ReceiptType,
    RegisterItem,
    ReqTask,
    Status,
    StatusFlags,
    TaskAdded,
    TaskCancelled,
    TaskCompleted,
    TaskFinished,
    TaskFlags,
    TaskLost,
    TaskQueued,
    TaskRefused,
    TaskReleased,
    TaskStarted,
    TaskStopped,
    decode_answer,
    decode_request,
    encode_packet,
)
from protocols.atol.taskbuffer import (
    BufferRefusal,
    HostTaskState,
    TaskState,
    TaskStatusReply,
    decode_device_message,
)
from protocols.atol.transport import ASYNC_PACKET_ID, STX, FrameReader, Packet

STATUS = GetDeviceStatus().encode()
OK = CommandAnswer().encode()


def drain(conn: HostConnection | DeviceConnection) -> list[object]:
    events: list[object] = []
    while (event := conn.next_event()) is not NEED_DATA:
        events.append(event)
    return events


def packets(wire: bytes) -> list[Packet]:
    items = FrameReader().feed(wire)
    assert all(isinstance(item, Packet) for item in items)
    return [item for item in items if isinstance(item, Packet)]


def replies(device: DeviceConnection) -> list[object]:
    return [
        decode_device_message(p.data) if p.data else b"" for p in packets(device.data_to_send())
    ]


# The register's link rules ------------------------------------------------------------------


def test_register_answers_an_exact_repeat_without_running_the_command_again() -> None:
    device = DeviceConnection()
    add = encode_packet(7, AddTask(tid=1, request=STATUS).encode())
    device.receive_data(add)
    assert drain(device) == [TaskAdded(tid=1, flags=TaskFlags.NEED_RESULT, request=STATUS)]
    first = device.data_to_send()
    device.receive_data(add)
    assert drain(device) == []
    assert device.data_to_send() == first  # the same A1, not B2
    device.receive_data(encode_packet(7, b""))  # "say that again"
    assert drain(device) == []
    assert device.data_to_send() == first
    device.receive_data(encode_packet(8, AddTask(tid=1, request=STATUS).encode()))
    drain(device)
    assert replies(device) == [BufferRefusal(code=BufferErrorCode.ALREADY_EXISTS)]


def test_each_side_asks_for_a_damaged_frame_again() -> None:
    damaged = bytearray(encode_packet(9, ReqTask(tid=1).encode()))
    damaged[-1] ^= 0x01
    device = DeviceConnection()
    device.receive_data(bytes(damaged))
    assert drain(device) == []
    assert device.data_to_send() == encode_packet(9, b"")
    host = HostConnection(first_packet_id=3)
    host.send(AddTask(tid=1, request=STATUS))
    bad_answer = bytearray(encode_packet(3, b"\xa1"))
    bad_answer[-1] ^= 0x80
    host.receive_data(bytes(bad_answer) + bytes(encode_packet(4, b"\xa1")))  # + a stray answer
    assert drain(host) == []
    assert host.data_to_send() == encode_packet(3, b"")
    assert host.awaiting_answer


def test_host_repeats_its_packet_when_asked_and_gives_up_after_max_attempts() -> None:
    host = HostConnection(first_packet_id=0xDF, max_attempts=3)
    frame = host.send(AddTask(tid=1, request=STATUS))
    assert frame[3] == 0xDF
    with pytest.raises(AtolError, match="unanswered"):
        host.send(ReqTask(tid=1))
    host.receive_data(encode_packet(0xDF, b""))  # the register asks for it again
    assert drain(host) == []
    assert host.data_to_send() == frame
    assert host.retransmit() == frame
    with pytest.raises(AtolError, match="after 3 attempts"):
        host.retransmit()
    with pytest.raises(AtolError, match="broken"):
        host.next_event()


def test_host_packet_ids_wrap_and_late_answers_are_dropped() -> None:
    host = HostConnection(first_packet_id=0xDF)
    host.send(AddTask(tid=1, request=STATUS))
    host.receive_data(encode_packet(0xDF, b"\xa1"))
    assert drain(host) == [TaskQueued(tid=1, status=Status.PENDING)]
    assert host.send(ReqTask(tid=1))[3] == 0x00
    host.receive_data(encode_packet(0xDF, b"\xa1"))  # a late copy of the Add's answer
    assert drain(host) == []
    assert host.awaiting_answer


def test_host_refuses_an_answer_that_contradicts_its_table_and_stays_broken() -> None:
    host = HostConnection()
    host.send(AddTask(tid=1, request=STATUS))
    host.receive_data(encode_packet(1, b"\xa1"))
    drain(host)
    host.send(ReqTask(tid=1))
    host.receive_data(encode_packet(2, b"\xa3" + OK))
    drain(host)
    host.send(AckTask(tid=1))
    host.receive_data(encode_packet(3, b"\xa2"))  # "still running" after the result
    with pytest.raises(AtolError, match="cannot"):
        drain(host)
    with pytest.raises(AtolError, match="broken"):
        host.receive_data(b"")


def test_host_refuses_async_statuses_in_the_wrong_packets() -> None:
    host = HostConnection()
    host.send(AddTask(tid=1, request=STATUS))
    host.receive_data(encode_packet(ASYNC_PACKET_ID, b"\xa1"))
    with pytest.raises(AtolError, match="0xF0"):
        drain(host)
    host = HostConnection()
    host.send(AddTask(tid=1, request=STATUS))
    host.receive_data(encode_packet(1, b"\xa6\x01" + OK))
    with pytest.raises(AtolError, match="async"):
        drain(host)


# The buffer's rules -------------------------------------------------------------------------


class Register:
    """A DeviceConnection fed hand-made host packets with fresh IDs."""

    def __init__(self, capacity: int = 32) -> None:
        self.conn = DeviceConnection(capacity=capacity)
        self.packet_id = 0
        self.events: list[object] = []

    def command(self, message: AddTask | AckAddTask | ReqTask | AckTask | AbortTasks) -> object:
        return self.raw(message.encode())

    def raw(self, data: bytes) -> object:
        self.packet_id += 1
        self.conn.receive_data(encode_packet(self.packet_id, data))
        self.events += drain(self.conn)
        (reply,) = replies(self.conn)
        return reply

    def run(self, tid: int, answer: bytes = OK, *, error: bool = False) -> bytes:
        self.conn.send(TaskStarted(tid=tid))
        out = self.conn.send(TaskCompleted(tid=tid, answer=answer, error=error))
        self.events += drain(self.conn)
        return out


def test_a_failed_task_stops_the_pending_tasks_that_do_not_ignore_errors() -> None:
    register = Register()
    register.command(AddTask(tid=1, request=STATUS))
    register.command(AddTask(tid=2, request=STATUS))
    register.command(AddTask(tid=3, request=STATUS, flags=TaskFlags.IGNORE_ERROR))
    register.command(
        AddTask(tid=4, request=STATUS, flags=TaskFlags.IGNORE_ERROR | TaskFlags.NEED_RESULT)
    )
    register.run(1, CommandAnswer(error=0x9C).encode(), error=True)
    assert TaskCancelled(tid=2) in register.events
    assert register.conn.task_state(2) is TaskState.STOPPED
    assert register.conn.task_state(3) is TaskState.PENDING
    assert register.command(ReqTask(tid=1)) == TaskStatusReply(
        status=Status.ERROR, answer=b"\x55\x9c\x00"
    )
    assert register.command(ReqTask(tid=2)) == TaskStatusReply(status=Status.STOPPED)
    assert register.command(AckTask(tid=2)) == TaskStatusReply(status=Status.STOPPED)
    assert register.command(AckTask(tid=2)) == BufferRefusal(code=BufferErrorCode.NOT_FOUND)
    assert register.conn.next_pending() == 3
    with pytest.raises(AtolError, match="in order"):
        register.conn.send(TaskStarted(tid=4))


def test_a_task_without_need_result_leaves_the_buffer_when_done() -> None:
    register = Register()
    register.command(AddTask(tid=1, request=STATUS, flags=TaskFlags.NONE))
    assert register.run(1) == b""
    assert register.conn.task_state(1) is TaskState.ABSENT
    assert register.command(ReqTask(tid=1)) == BufferRefusal(code=BufferErrorCode.NOT_FOUND)


def test_wait_async_data_sends_the_result_in_an_f0_packet() -> None:
    register = Register()
    register.command(AddTask(tid=0x57, request=STATUS, flags=TaskFlags.WAIT_ASYNC_DATA))
    frame = register.run(0x57, OK)
    assert frame == bytes.fromhex("fe0500f0a657550000fdee")  # R32
    assert register.command(ReqTask(tid=0x57)) == TaskStatusReply(status=Status.RESULT, answer=OK)


def test_abort_drops_pending_and_finished_tasks_but_not_the_running_one() -> None:
    register = Register()
    for tid in (1, 2, 3):
        register.command(AddTask(tid=tid, request=STATUS))
    register.run(1)
    register.conn.send(TaskStarted(tid=2))
    assert register.command(AbortTasks()) == TaskStatusReply(status=Status.STOPPED)
    assert TaskCancelled(tid=3) in register.events
    assert [register.conn.task_state(t) for t in (1, 2, 3)] == [
        TaskState.ABSENT,
        TaskState.IN_PROGRESS,
        TaskState.ABSENT,
    ]


def test_buffer_refusals_b1_and_b4() -> None:
    register = Register(capacity=1)
    register.command(AddTask(tid=1, request=STATUS))
    assert register.command(AddTask(tid=2, request=STATUS)) == BufferRefusal(
        code=BufferErrorCode.OVERFLOW
    )
    assert register.raw(b"\xc1\x08\x02" + STATUS) == BufferRefusal(
        code=BufferErrorCode.ILLEGAL_VALUE, param_index=0
    )
    assert register.raw(b"\xc3\xe0") == BufferRefusal(
        code=BufferErrorCode.ILLEGAL_VALUE, param_index=1
    )
    assert register.raw(b"\xc9") == BufferRefusal(code=BufferErrorCode.ILLEGAL_VALUE, param_index=0)


def test_ack_add_acknowledges_the_newest_finished_task_on_both_sides() -> None:
    register = Register()
    host = HostConnection(first_packet_id=1)
    for message in (
        AddTask(tid=1, request=STATUS),
        ReqTask(tid=1),
        AckAddTask(tid=2, request=STATUS),
    ):
        if isinstance(message, ReqTask):
            register.run(1)
        frame = host.send(message)
        register.conn.receive_data(frame)
        register.events += drain(register.conn)
        host.receive_data(register.conn.data_to_send())
        drain(host)
    assert register.conn.task_state(1) is TaskState.ABSENT
    assert register.conn.task_state(2) is TaskState.PENDING
    assert host.task_state(1) is HostTaskState.ABSENT
    assert host.task_state(2) is HostTaskState.QUEUED
    with pytest.raises(AtolError, match="cannot"):
        host.send(AckAddTask(tid=3, request=STATUS))  # task 2 has no result to acknowledge


def test_host_reports_lost_refused_and_aborted_tasks() -> None:
    host = HostConnection()
    host.send(AddTask(tid=1, request=STATUS))
    host.receive_data(encode_packet(1, b"\xb1"))
    assert drain(host) == [TaskRefused(tid=1, code=BufferErrorCode.OVERFLOW, param_index=None)]
    host.send(AddTask(tid=1, request=STATUS))
    host.receive_data(encode_packet(2, b"\xa1"))
    assert drain(host) == [TaskQueued(tid=1, status=Status.PENDING)]
    host.send(ReqTask(tid=1))
    host.receive_data(encode_packet(3, b"\xb3"))
    assert drain(host) == [TaskLost(tid=1)]
    host.send(AddTask(tid=2, request=STATUS))
    host.receive_data(encode_packet(4, b"\xa1") + encode_packet(0xF0, b"\xa7\x02\x55\x67\x00"))
    events = drain(host)
    host.send(AbortTasks())
    host.receive_data(encode_packet(5, b"\xa5"))
    assert events + drain(host) == [
        TaskQueued(tid=2, status=Status.PENDING),
        TaskFinished(tid=2, answer=b"\x55\x67\x00", error=True),
        BufferAborted(discarded=(2,)),
    ]


# A whole receipt, application commands included ---------------------------------------------


def emulate(request: bytes) -> bytes:
    """A toy register: everything succeeds; the state request answers a fixed state."""
    command = decode_request(request)
    if isinstance(command, GetDeviceStatus):
        return DeviceStatus(
            cashier=1,
            number_in_hall=1,
            clock=datetime(2026, 11, 28, 12, 30, 5),
            flags=StatusFlags.FISCALIZED | StatusFlags.SHIFT_OPEN,
            serial_number=12345678,
            model=62,
            mode=1,
            submode=0,
            receipt_number=7,
            shift_number=3,
            receipt_state=0,
            receipt_total=0,
            port=6,
        ).encode()
    if isinstance(command, Payment):
        return PaymentAnswer(remainder=0, change=1010).encode()
    return OK


def test_a_receipt_goes_through_task_by_task() -> None:
    commands = [
        OpenShift(password=30, text="Кассир Иванова"),
        OpenReceipt(receipt_type=ReceiptType.SALE),
        RegisterItem(name="Молоко 3,2 %", price=8990, quantity=Decimal("2.000"), tax=1),
        Payment(payment_type=PaymentType.CASH, amount=19000),
        CloseReceipt(payment_type=PaymentType.CASH),
        GetDeviceStatus(),
    ]
    host, device = HostConnection(), DeviceConnection()
    answers = {}
    for tid, command in enumerate(commands):
        for message in (AddTask(tid=tid, request=command.encode()), ReqTask(tid=tid)):
            device.receive_data(host.send(message))
            for event in drain(device):
                if isinstance(event, TaskAdded):
                    device.send(TaskStarted(tid=event.tid))
                    device.send(TaskCompleted(tid=event.tid, answer=emulate(event.request)))
            host.receive_data(device.data_to_send())
            for event in drain(host):
                if isinstance(event, TaskFinished):
                    answers[event.tid] = decode_answer(command, event.answer)
        device.receive_data(host.send(AckTask(tid=tid)))
        drain(device)
        host.receive_data(device.data_to_send())
        assert drain(host) == [TaskReleased(tid=tid)]
    assert answers[3] == PaymentAnswer(remainder=0, change=1010)
    assert isinstance(answers[5], DeviceStatus) and answers[5].shift_number == 3
    assert all(answers[tid] == CommandAnswer() for tid in (0, 1, 2, 4))


# A lossy line ---------------------------------------------------------------------------------


class LossyLine:
    """One direction of a line that drops, repeats, corrupts and splits what is written.

    The faults are those the v3 link is built to survive: a frame lost or repeated whole, a
    byte lost or a bit flipped where the CRC covers (ID, DATA, CRC), and bytes delivered in
    arbitrary pieces. STX and LEN are spared on purpose: LEN is outside the CRC by the
    protocol's design, so a frame whose STX or LEN is damaged can merge with the bytes that
    follow into a frame that passes the CRC one time in 256, and no receiver can tell (see
    :mod:`protocols.atol.transport`).
    """

    def __init__(self, rng: random.Random, faults: tuple[float, float, float, float]) -> None:
        self.rng = rng
        self.lose, self.repeat, self.flip, self.drop = faults
        self.queue = bytearray()

    def write(self, data: bytes) -> None:
        starts = [i for i, b in enumerate(data) if b == STX] + [len(data)]
        for start, end in itertools.pairwise(starts):
            frame = bytearray(data[start:end])
            if self.rng.random() < self.lose:
                continue
            if self.rng.random() < self.flip:
                frame[self.rng.randrange(3, len(frame))] ^= 1 << self.rng.randrange(8)
            if self.rng.random() < self.drop:
                del frame[self.rng.randrange(3, len(frame))]
            self.queue += frame * (2 if self.rng.random() < self.repeat else 1)

    def read(self) -> list[bytes]:
        data, self.queue = bytes(self.queue), bytearray()
        cuts = sorted(self.rng.sample(range(len(data) + 1), min(3, len(data) + 1)))
        return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


@attrs.define
class Job:
    tid: int
    request: bytes
    flags: TaskFlags
    fails: bool


class HostApp:
    """A driver: adds jobs, polls with Req, acknowledges, repeats itself when answers are late."""

    def __init__(self, jobs: list[Job], max_attempts: int) -> None:
        self.conn = HostConnection(max_attempts=max_attempts, max_data_length=64)
        self.to_add = deque(jobs)
        self.jobs = {job.tid: job for job in jobs}
        self.outcomes: dict[int, tuple[bytes, bool] | str] = {}
        self.released: set[int] = set()
        self.unexpected: list[object] = []
        self.waited = 0
        self.turn = 0
        self.full = False  # the register said B1: poll before adding again

    @property
    def done(self) -> bool:
        return self.released == set(self.jobs) and not self.conn.awaiting_answer

    def step(self, line: LossyLine) -> None:
        for event in drain(self.conn):
            if isinstance(event, TaskFinished):
                self.outcomes[event.tid] = (event.answer, event.error)
            elif isinstance(event, TaskStopped):
                self.outcomes[event.tid] = "stopped"
            elif isinstance(event, TaskReleased):
                self.released.add(event.tid)
                self.full = False
            elif isinstance(event, TaskRefused) and event.code is BufferErrorCode.OVERFLOW:
                self.to_add.append(self.jobs[event.tid])
                self.full = True
            elif not isinstance(event, TaskQueued):
                self.unexpected.append(event)
        assert self.conn.buffered_bytes <= 4 + 2 * 65
        line.write(self.conn.data_to_send())
        if self.conn.awaiting_answer:
            self.waited += 1
            if self.waited > 2:  # the caller's timeout
                self.waited = 0
                line.write(self.conn.retransmit())
            return
        self.waited = 0
        states = {tid: self.conn.task_state(tid) for tid in self.jobs}
        finished = [
            t for t, s in states.items() if s in (HostTaskState.FINISHED, HostTaskState.STOPPED)
        ]
        queued = [t for t, s in states.items() if s is HostTaskState.QUEUED]
        if finished:
            line.write(self.conn.send(AckTask(tid=finished[0])))
        elif self.to_add and not (self.full and queued):
            job = self.to_add.popleft()
            line.write(self.conn.send(AddTask(tid=job.tid, request=job.request, flags=job.flags)))
        elif queued:
            self.turn += 1
            line.write(self.conn.send(ReqTask(tid=queued[self.turn % len(queued)])))


class RegisterApp:
    """An emulator: runs one task step per tick, in order, and counts what it executes."""

    def __init__(self, jobs: list[Job]) -> None:
        self.conn = DeviceConnection(capacity=4, max_data_length=64)
        self.fails = {job.request: job.fails for job in jobs}
        self.requests: dict[int, bytes] = {}
        self.executed: Counter[bytes] = Counter()
        self.outcomes: dict[int, tuple[bytes, bool] | str] = {}
        self.running: int | None = None

    def step(self, line: LossyLine) -> None:
        for event in drain(self.conn):
            if isinstance(event, TaskAdded):
                self.requests[event.tid] = event.request
            elif isinstance(event, TaskCancelled):
                self.outcomes[event.tid] = "stopped"
        assert self.conn.buffered_bytes <= 4 + 2 * 65
        line.write(self.conn.data_to_send())
        if self.running is None:
            self.running = self.conn.next_pending()
            if self.running is not None:
                self.conn.send(TaskStarted(tid=self.running))
                self.executed[self.requests[self.running]] += 1
            return
        tid, self.running = self.running, None
        fails = self.fails[self.requests[tid]]
        answer = CommandAnswer(error=0x66 if fails else 0, extended=tid).encode()
        line.write(self.conn.send(TaskCompleted(tid=tid, answer=answer, error=fails)))
        self.outcomes[tid] = (answer, fails)
        for event in drain(self.conn):
            assert isinstance(event, TaskCancelled)
            self.outcomes[event.tid] = "stopped"


jobs_strategy = st.lists(
    st.tuples(
        st.sampled_from(
            [
                TaskFlags.NEED_RESULT,
                TaskFlags.NEED_RESULT | TaskFlags.WAIT_ASYNC_DATA,
                TaskFlags.NEED_RESULT | TaskFlags.IGNORE_ERROR,
                TaskFlags.WAIT_ASYNC_DATA,
            ]
        ),
        st.booleans(),
    ),
    min_size=1,
    max_size=9,
).map(
    lambda specs: [
        Job(tid, GetDeviceStatus(password=tid).encode(), flags, fails)
        for tid, (flags, fails) in enumerate(specs)
    ]
)
fault_rates = st.tuples(*(st.sampled_from([0.0, 0.05, 0.15, 0.3]) for _ in range(4)))


@settings(max_examples=500, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), jobs=jobs_strategy, faults=fault_rates)
def test_host_and_register_agree_over_a_lossy_line(
    seed: int, jobs: list[Job], faults: tuple[float, float, float, float]
) -> None:
    rng = random.Random(seed)
    to_register, to_host = LossyLine(rng, faults), LossyLine(rng, faults)
    host, register = HostApp(jobs, max_attempts=40), RegisterApp(jobs)
    failure = None
    for _ in range(300 * len(jobs)):
        try:
            host.step(to_register)
        except AtolError as exc:
            failure = exc
            break
        for chunk in to_register.read():
            register.conn.receive_data(chunk)
        register.step(to_host)
        for chunk in to_host.read():
            host.conn.receive_data(chunk)
        if host.done:
            break
    # At most once, whatever happened on the line.
    assert all(count == 1 for count in register.executed.values())
    # Whatever the host learned is what the register did.
    for tid, outcome in host.outcomes.items():
        assert register.outcomes[tid] == outcome
    if failure is not None:
        assert "attempts" in failure.reason  # only a dead line may stop the host
        return
    assert host.done, "the link neither finished nor failed"
    assert host.unexpected == []
    assert host.outcomes == register.outcomes
    assert set(host.outcomes) == {job.tid for job in jobs}
    assert all(register.conn.task_state(job.tid) is TaskState.ABSENT for job in jobs)
