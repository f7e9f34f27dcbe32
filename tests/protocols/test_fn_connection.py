"""The KKT ↔ ФН connection: every state × every input, conversations, and a lossy link."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from datetime import date, datetime

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.fn import (
    NEED_DATA,
    TRANSITIONS,
    Answer,
    ArchivedDocument,
    BeginReceipt,
    BeginShiftOpening,
    Command,
    ConnectionClosed,
    Done,
    Event,
    ExchangeStatus,
    Failure,
    FindDocument,
    FinishReceipt,
    FnConnection,
    FnError,
    FnExpiry,
    FnNumber,
    FnPhase,
    FnStatus,
    FnVersion,
    GetExchangeStatus,
    GetFnExpiry,
    GetFnNumber,
    GetFnStatus,
    GetFnVersion,
    GetOfdAck,
    GetShiftStatus,
    Input,
    MessageBlock,
    MessageLength,
    OfdAckResult,
    OpenShift,
    RawAnswer,
    RawCommand,
    ReadMessageBlock,
    ReceiptDocument,
    RepeatAnswer,
    Request,
    ResultCode,
    Role,
    SendDocumentData,
    ShiftDocument,
    ShiftStatus,
    SignedDocument,
    State,
    StoredOfdAck,
    UnconfirmedCount,
)
from protocols.tlv.enums import OperationType

#####################################################################################
# The state table
#####################################################################################


def test_the_table_is_the_designed_one() -> None:
    assert dict(TRANSITIONS) == {
        (State.IDLE, Input.COMMAND): State.AWAITING_ANSWER,
        (State.IDLE, Input.CLOSE): State.CLOSED,
        (State.AWAITING_ANSWER, Input.ANSWER): State.ANSWERED,
        (State.AWAITING_ANSWER, Input.REPEAT): State.AWAITING_ANSWER,
        (State.ANSWERED, Input.COMMAND): State.AWAITING_ANSWER,
        (State.ANSWERED, Input.REPEAT): State.AWAITING_ANSWER,
        (State.ANSWERED, Input.CLOSE): State.CLOSED,
        (State.CLOSED, Input.CLOSE): State.CLOSED,
    }


QUERY = GetShiftStatus()
REPLY = ShiftStatus(True, 4, 17)


# Each kind of thing that can happen to a connection, and the input it is for each role
# (None: not an input that role can take at all). Bytes are read by role: a command frame
# reaching a host is an answer with that status byte, an answer frame reaching a device is a
# command with code 00h.
def receiving(data: bytes) -> Callable[[FnConnection], object]:
    def receive(conn: FnConnection) -> object:
        conn.receive_data(data)
        return conn.next_event()

    return receive


KINDS: dict[str, Callable[[FnConnection], object]] = {
    "send command": lambda c: c.send(QUERY),
    "send repeat": lambda c: c.send(RepeatAnswer()),
    "send answer": lambda c: c.send(REPLY),
    "receive command": receiving(QUERY.encode()),
    "receive answer": receiving(REPLY.encode()),
    "receive ENQ": receiving(b"\x05"),
    "receive end": receiving(b""),
}
INPUT_OF: dict[Role, dict[str, Input | None]] = {
    Role.HOST: {
        "send command": Input.COMMAND,
        "send repeat": Input.REPEAT,
        "send answer": None,
        "receive command": Input.ANSWER,
        "receive answer": Input.ANSWER,
        "receive ENQ": None,
        "receive end": Input.CLOSE,
    },
    Role.DEVICE: {
        "send command": None,
        "send repeat": None,
        "send answer": Input.ANSWER,
        "receive command": Input.COMMAND,
        "receive answer": Input.COMMAND,
        "receive ENQ": Input.REPEAT,
        "receive end": Input.CLOSE,
    },
}


def reach(role: Role, state: State) -> FnConnection:
    """A connection of ``role`` brought to ``state`` by legal steps."""
    conn = FnConnection(role)
    if state is State.ERROR:
        conn.receive_data(b"\xff")
        with pytest.raises(FnError):
            conn.next_event()
    elif state is State.CLOSED:
        conn.receive_data(b"")
        assert conn.next_event() == ConnectionClosed()
    elif state is not State.IDLE:
        if role is Role.HOST:
            conn.send(QUERY)
        else:
            conn.receive_data(QUERY.encode())
            assert conn.next_event() == QUERY
        if state is State.ANSWERED:
            if role is Role.HOST:
                conn.receive_data(REPLY.encode())
                assert conn.next_event() == REPLY
            else:
                conn.send(REPLY)
    assert conn.state is state
    return conn


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("state", list(State), ids=lambda s: s.name)
@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.name)
def test_every_state_and_input(role: Role, state: State, kind: str) -> None:
    """Either the table's next state, or FnError and ERROR, for all 2 × 5 × 7 cases."""
    conn = reach(role, state)
    made = INPUT_OF[role][kind]
    expected = None if made is None or state is State.ERROR else TRANSITIONS.get((state, made))
    if expected is None:
        with pytest.raises(FnError):
            KINDS[kind](conn)
        assert conn.state is State.ERROR
    else:
        KINDS[kind](conn)
        assert conn.state is expected


#####################################################################################
# Conversations
#####################################################################################


def drain(conn: FnConnection) -> list[Event]:
    events: list[Event] = []
    while True:
        event = conn.next_event()
        if event is NEED_DATA:
            return events
        events.append(event)
        if isinstance(event, ConnectionClosed):
            return events


def exchange(host: FnConnection, device: FnConnection, command: Request, answer: Answer) -> Answer:
    device.receive_data(host.send(command))
    assert drain(device) == [command]
    host.receive_data(device.send(answer))
    (got,) = drain(host)
    assert isinstance(got, Answer)
    return got


def test_a_receipt_from_open_to_fiscal_sign() -> None:
    host, device = FnConnection(Role.HOST), FnConnection(Role.DEVICE)
    at = datetime(2024, 5, 17, 12, 30)
    assert exchange(host, device, BeginReceipt(at), Done()) == Done()
    tlv = bytes.fromhex("fe03010000")
    assert exchange(host, device, SendDocumentData(tlv), Done()) == Done()
    sign = ReceiptDocument(1, 88, 1713993311)
    finish = FinishReceipt(at, OperationType.SELL, 10000)
    assert exchange(host, device, finish, sign) == sign
    assert host.last_command == device.last_command == finish
    assert host.state is device.state is State.ANSWERED
    rejected = exchange(host, device, BeginReceipt(at), Failure(ResultCode.SHIFT_OVER_24H))
    assert rejected == Failure(0x16)
    for conn in (host, device):
        conn.receive_data(b"")
        assert drain(conn) == [ConnectionClosed()]
        assert conn.state is State.CLOSED


def test_enq_recovers_a_lost_answer_without_a_second_receipt() -> None:
    host, device = FnConnection(Role.HOST), FnConnection(Role.DEVICE)
    finish = FinishReceipt(datetime(2024, 5, 17, 12, 31), OperationType.SELL, 10000)
    sign = ReceiptDocument(1, 88, 1713993311)
    device.receive_data(host.send(finish))
    assert drain(device) == [finish]
    lost = device.send(sign)
    host.receive_data(lost[:7])  # the rest never arrives
    assert drain(host) == []
    device.receive_data(host.send(RepeatAnswer()))
    assert host.buffered == 0  # the partial answer is gone
    assert drain(device) == [RepeatAnswer()]
    assert device.state is State.AWAITING_ANSWER
    host.receive_data(device.send(sign))
    assert drain(host) == [sign]
    assert (host.state, device.state) == (State.ANSWERED, State.ANSWERED)


def test_enq_before_any_command_is_an_error() -> None:
    device = FnConnection(Role.DEVICE)
    device.receive_data(b"\x05")
    with pytest.raises(FnError):
        device.next_event()


def test_unknown_and_malformed_commands_reach_the_device_raw() -> None:
    host, device = FnConnection(Role.HOST), FnConnection(Role.DEVICE)
    unknown = RawCommand(0x35)
    assert exchange(host, device, unknown, RawAnswer(b"\x00" * 4)) == RawAnswer(b"\x00" * 4)
    malformed = RawCommand(BeginShiftOpening.CODE, b"\x18\x05")
    refusal = Failure(ResultCode.UNKNOWN_COMMAND)
    assert exchange(host, device, malformed, refusal) == refusal


def test_the_stream_ending_mid_frame_or_mid_exchange_is_an_error() -> None:
    device = FnConnection(Role.DEVICE)
    device.receive_data(GetFnStatus().encode()[:4])
    assert device.next_event() is NEED_DATA
    device.receive_data(b"")
    with pytest.raises(FnError):
        device.next_event()
    host = FnConnection(Role.HOST)
    host.send(GetFnStatus())
    host.receive_data(b"")
    with pytest.raises(FnError):
        host.next_event()


def test_a_broken_answer_is_final() -> None:
    host = FnConnection(Role.HOST)
    host.send(GetFnNumber())
    frame = bytearray(FnNumber("9999078902013267").encode())
    frame[-1] ^= 0x01
    host.receive_data(bytes(frame))
    with pytest.raises(FnError):
        host.next_event()
    with pytest.raises(FnError):
        host.send(GetFnNumber())


#####################################################################################
# A lossy link
#####################################################################################


@attrs.define
class LossyPipe:
    """One direction of a link that drops, duplicates, corrupts and splits what it carries."""

    rng: random.Random
    rate: float
    faults: int = 0

    def carry(self, data: bytes) -> list[bytes]:
        damaged = bytearray(data)
        if damaged and self.rng.random() < self.rate:
            start = self.rng.randrange(len(damaged))
            del damaged[start : start + self.rng.randint(1, len(damaged))]
            self.faults += 1
        if damaged and self.rng.random() < self.rate:
            start = self.rng.randrange(len(damaged))
            end = self.rng.randint(start + 1, len(damaged))
            damaged[end:end] = damaged[start:end]
            self.faults += 1
        if damaged and self.rng.random() < self.rate:
            damaged[self.rng.randrange(len(damaged))] ^= self.rng.randint(1, 0xFF)
            self.faults += 1
        cuts = sorted(self.rng.randint(0, len(damaged)) for _ in range(self.rng.randint(0, 3)))
        edges = [0, *cuts, len(damaged)]
        return [bytes(damaged[a:b]) for a, b in itertools.pairwise(edges) if b > a]


AT = datetime(2024, 5, 17, 12, 30)
FN_NUMBER = "9999078902013267"
REPLIES: dict[type[Answer], Answer] = {
    Done: Done(),
    SignedDocument: SignedDocument(7, 0xCAFE),
    ShiftStatus: ShiftStatus(True, 3, 9),
    ShiftDocument: ShiftDocument(3, 8, 0xBEEF),
    ReceiptDocument: ReceiptDocument(10, 19, 1713993311, warning=True),
    ExchangeStatus: ExchangeStatus(3, False, 2, 18, AT),
    MessageLength: MessageLength(95),
    MessageBlock: MessageBlock(bytes(range(95))),
    OfdAckResult: OfdAckResult(0),
    FnStatus: FnStatus(FnPhase.FISCAL, 0, False, True, 0, AT, FN_NUMBER, 19),
    FnNumber: FnNumber(FN_NUMBER),
    FnExpiry: FnExpiry(date(2027, 1, 31), 11, 1),
    FnVersion: FnVersion("fn-1.1", True),
    ArchivedDocument: ArchivedDocument(3, False, AT, 19, 1713993311, b"\x01\x10\x27\x00\x00\x00"),
    StoredOfdAck: StoredOfdAck(AT, bytes(18), 18),
    UnconfirmedCount: UnconfirmedCount(2),
}
SCRIPT_COMMANDS: list[Request] = [
    GetFnStatus(),
    GetShiftStatus(),
    OpenShift(),
    BeginReceipt(AT),
    SendDocumentData(bytes(range(256)) * 2),
    FinishReceipt(AT, OperationType.SELL_REFUND, 123456),
    GetExchangeStatus(),
    ReadMessageBlock(0, 95),
    GetFnExpiry(),
    GetFnVersion(),
    FindDocument(19),
    GetOfdAck(18),
    RawCommand(0x35),
]


def reply_to(command: Request) -> Answer:
    """A ФН that knows every command and refuses the raw ones, as a real one does."""
    if isinstance(command, RawCommand):
        return Failure(ResultCode.UNKNOWN_COMMAND)
    if isinstance(command, BeginReceipt):
        return Failure(ResultCode.WRONG_STATE, warning=True)
    return REPLIES[command.ANSWER]


@attrs.define
class Run:
    host: FnConnection = attrs.field(factory=lambda: FnConnection(Role.HOST))
    device: FnConnection = attrs.field(factory=lambda: FnConnection(Role.DEVICE))
    host_sent: list[bytes] = attrs.field(factory=list)
    device_got: list[Request] = attrs.field(factory=list)
    device_sent: list[bytes] = attrs.field(factory=list)
    host_got: list[Answer] = attrs.field(factory=list)
    end_states: tuple[State, State] | None = None
    failed: FnConnection | None = None


def converse(script: list[Request], to_device: LossyPipe, to_host: LossyPipe) -> Run:
    """Drive a host through ``script`` against an answering device; stop at the first error.

    When nothing moves and the host still waits, it sends ENQ (twice at most), as a driver
    does after its answer timeout; then the link is closed on both sides.
    """
    run = Run()
    queue, repeats = list(script), 2
    inbound: list[bytes] = []  # to the device
    outbound: list[bytes] = []  # to the host
    side = run.host
    try:
        for _ in range(4 * len(script) + 8):
            moved = bool(inbound or outbound)
            if run.host.state in (State.IDLE, State.ANSWERED) and queue:
                side = run.host
                wire = run.host.send(queue.pop(0))
                run.host_sent.append(wire)
                inbound += to_device.carry(wire)
                moved = True
            side = run.device
            for chunk in inbound:
                run.device.receive_data(chunk)
            inbound.clear()
            for event in drain(run.device):
                if isinstance(event, (Command, RawCommand)):
                    run.device_got.append(event)
                    wire = run.device.send(reply_to(event))
                elif isinstance(event, RepeatAnswer):
                    wire = run.device.send(reply_to(run.device_got[-1]))
                else:
                    continue
                run.device_sent.append(wire)
                outbound += to_host.carry(wire)
            side = run.host
            for chunk in outbound:
                run.host.receive_data(chunk)
            outbound.clear()
            run.host_got += [e for e in drain(run.host) if isinstance(e, Answer)]
            if not moved:
                if run.host.state is not State.AWAITING_ANSWER or not repeats:
                    break
                repeats -= 1
                inbound += to_device.carry(run.host.send(RepeatAnswer()))
        run.end_states = (run.host.state, run.device.state)
        for side in (run.device, run.host):
            side.receive_data(b"")
            drain(side)
    except FnError:
        assert side.state is State.ERROR
        run.failed = side
    return run


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    script=st.lists(st.sampled_from(SCRIPT_COMMANDS), min_size=1, max_size=6),
    rng=st.randoms(use_true_random=False),
    rate=st.sampled_from([0.0, 0.05, 0.2, 0.5]),
)
def test_a_lossy_link_ends_agreed_or_in_an_fn_error(
    script: list[Request], rng: random.Random, rate: float
) -> None:
    to_device, to_host = LossyPipe(rng, rate), LossyPipe(rng, rate)
    run = converse(script, to_device, to_host)
    # No damaged frame is ever taken for a good one: whatever either side accepted is a
    # frame the other side sent (CRC-16 catches every burst of up to 16 bits).
    assert {c.encode() for c in run.device_got} <= set(run.host_sent)
    assert {a.encode() for a in run.host_got} <= set(run.device_sent)
    if run.failed is None:
        assert run.end_states is not None
        host_state, device_state = run.end_states
        assert host_state is device_state is State.ANSWERED
        assert run.host.state is run.device.state is State.CLOSED
        assert len(run.host_got) == len(script)
    if to_device.faults == to_host.faults == 0:
        assert run.failed is None
        assert run.device_got == script
        assert [a.encode() for a in run.host_got] == run.device_sent
        assert run.host_got == [reply_to(c) for c in script]
