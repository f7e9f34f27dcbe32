"""The KKT ↔ OFD connection: every state × every input, and a lossy link."""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from datetime import datetime

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.ofd import (
    NEED_DATA,
    OFD_TO_KKT,
    TRANSITIONS,
    ConnectionClosed,
    Container,
    Input,
    Message,
    OfdConnection,
    OfdError,
    OperatorAck,
    Role,
    State,
)
from tests.protocols.test_fn_connection import LossyPipe

FN_NUMBER = "9999078902013267"


def receipt(fd_number: int) -> Container:
    """A KKT → OFD container around a small receipt-like document, with a trailer."""
    body = struct.pack("<HH", 1040, 4) + fd_number.to_bytes(4, "little") + bytes(fd_number % 50)
    document = struct.pack("<HH", 3, len(body)) + body
    trailer = b"\x81\x06" + fd_number.to_bytes(6, "big") + b"\x00\x00"
    return Container(
        document_type=3,
        fn_number=FN_NUMBER,
        fd_number=fd_number,
        document=document,
        trailer=trailer,
        service_2=bytes(10) + len(document).to_bytes(2, "big"),
    )


def ack_for(request: Container) -> Container:
    """The OFD's reply: document 7 for the same ФН and ФД, with an OFD → KKT trailer."""
    ack = OperatorAck(
        ofd_inn="7704211201",
        fn_number=request.fn_number.rjust(16, "0"),
        fd_number=request.fd_number,
        at=datetime(2024, 9, 15, 11, 46, 28),
        operator_sign=bytes(range(16)),
    )
    return Container(
        document_type=7,
        fn_number=request.fn_number,
        fd_number=request.fd_number,
        document=ack.to_tlv(),
        trailer=b"\x82\x06" + bytes(6) + b"\x00\x00",
        message_type=OFD_TO_KKT,
    )


REQUEST = Message.wrap(receipt(1), client_id=FN_NUMBER)
REPLY = Message.wrap(ack_for(receipt(1)), client_id=FN_NUMBER)

#####################################################################################
# The state table
#####################################################################################


def test_the_table_is_the_designed_one() -> None:
    assert dict(TRANSITIONS) == {
        (State.IDLE, Input.REQUEST): State.AWAITING_REPLY,
        (State.IDLE, Input.CLOSE): State.CLOSED,
        (State.AWAITING_REPLY, Input.REPLY): State.IDLE,
        (State.CLOSED, Input.CLOSE): State.CLOSED,
    }


def receiving(data: bytes) -> Callable[[OfdConnection], object]:
    def receive(conn: OfdConnection) -> object:
        conn.receive_data(data)
        return conn.next_event()

    return receive


KINDS: dict[str, Callable[[OfdConnection], object]] = {
    "send message": lambda c: c.send(REQUEST),
    "receive message": receiving(REPLY.encode()),
    "receive garbage": receiving(bytes(30)),
    "receive end": receiving(b""),
}
INPUT_OF: dict[Role, dict[str, Input | None]] = {
    Role.CLIENT: {
        "send message": Input.REQUEST,
        "receive message": Input.REPLY,
        "receive garbage": None,
        "receive end": Input.CLOSE,
    },
    Role.SERVER: {
        "send message": Input.REPLY,
        "receive message": Input.REQUEST,
        "receive garbage": None,
        "receive end": Input.CLOSE,
    },
}


def reach(role: Role, state: State) -> OfdConnection:
    """A connection of ``role`` brought to ``state`` by legal steps."""
    conn = OfdConnection(role)
    if state is State.ERROR:
        conn.receive_data(bytes(30))
        with pytest.raises(OfdError):
            conn.next_event()
    elif state is State.CLOSED:
        conn.receive_data(b"")
        assert conn.next_event() == ConnectionClosed()
    elif state is State.AWAITING_REPLY:
        if role is Role.CLIENT:
            conn.send(REQUEST)
        else:
            conn.receive_data(REQUEST.encode())
            assert conn.next_event() == REQUEST
    assert conn.state is state
    return conn


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("state", list(State), ids=lambda s: s.name)
@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.name)
def test_every_state_and_input(role: Role, state: State, kind: str) -> None:
    """Either the table's next state, or OfdError and ERROR, for all 2 × 4 × 4 cases."""
    conn = reach(role, state)
    made = INPUT_OF[role][kind]
    expected = None if made is None or state is State.ERROR else TRANSITIONS.get((state, made))
    if expected is None:
        with pytest.raises(OfdError):
            KINDS[kind](conn)
        assert conn.state is State.ERROR
    else:
        KINDS[kind](conn)
        assert conn.state is expected


def test_a_kkt_sends_several_documents_over_one_connection() -> None:
    kkt, ofd = OfdConnection(Role.CLIENT), OfdConnection(Role.SERVER)
    for fd_number in (1, 2, 3):
        request = Message.wrap(receipt(fd_number), client_id=FN_NUMBER)
        ofd.receive_data(kkt.send(request))
        got = ofd.next_event()
        assert got == request and isinstance(got, Message) and got.container is not None
        reply = Message.wrap(ack_for(got.container), client_id=FN_NUMBER)
        kkt.receive_data(ofd.send(reply))
        answer = kkt.next_event()
        assert isinstance(answer, Message) and answer.container is not None
        ack = OperatorAck.from_tlv(answer.container.document)
        assert (ack.fd_number, ack.response_code) == (fd_number, 0)
    for conn in (kkt, ofd):
        conn.receive_data(b"")
        assert conn.next_event() == ConnectionClosed()
        assert conn.state is State.CLOSED


def test_a_header_only_message_has_no_container() -> None:
    ofd = OfdConnection(Role.SERVER)
    empty = Message.wrap(None, client_id=FN_NUMBER)
    assert len(empty.encode()) == 30
    ofd.receive_data(empty.encode())
    assert ofd.next_event() == empty


def test_the_stream_ending_inside_a_message_is_an_error() -> None:
    ofd = OfdConnection(Role.SERVER)
    ofd.receive_data(REQUEST.encode()[:-1])
    assert ofd.next_event() is NEED_DATA
    ofd.receive_data(b"")
    with pytest.raises(OfdError):
        ofd.next_event()


#####################################################################################
# A lossy link
#####################################################################################


@attrs.define
class Run:
    kkt: OfdConnection = attrs.field(factory=lambda: OfdConnection(Role.CLIENT))
    ofd: OfdConnection = attrs.field(factory=lambda: OfdConnection(Role.SERVER))
    kkt_sent: list[bytes] = attrs.field(factory=list)
    ofd_got: list[Message] = attrs.field(factory=list)
    ofd_sent: list[bytes] = attrs.field(factory=list)
    kkt_got: list[Message] = attrs.field(factory=list)
    end_states: tuple[State, State] | None = None
    failed: OfdConnection | None = None


def messages(conn: OfdConnection) -> list[Message]:
    got: list[Message] = []
    while True:
        event = conn.next_event()
        if not isinstance(event, Message):
            return got
        got.append(event)


def converse(script: list[Container], to_ofd: LossyPipe, to_kkt: LossyPipe) -> Run:
    """A KKT sends ``script`` one message at a time; the OFD acks each; stop at an error."""
    run = Run()
    queue = list(script)
    inbound: list[bytes] = []  # to the OFD
    outbound: list[bytes] = []  # to the KKT
    side = run.kkt
    try:
        for _ in range(2 * len(script) + 4):
            moved = bool(inbound or outbound)
            if run.kkt.state is State.IDLE and queue:
                side = run.kkt
                wire = run.kkt.send(Message.wrap(queue.pop(0), client_id=FN_NUMBER))
                run.kkt_sent.append(wire)
                inbound += to_ofd.carry(wire)
                moved = True
            side = run.ofd
            for chunk in inbound:
                run.ofd.receive_data(chunk)
            inbound.clear()
            for request in messages(run.ofd):
                run.ofd_got.append(request)
                # A damaged stream can frame a header-only message; it gets one back.
                answer = None if request.container is None else ack_for(request.container)
                reply = Message.wrap(answer, client_id=FN_NUMBER)
                wire = run.ofd.send(reply)
                run.ofd_sent.append(wire)
                outbound += to_kkt.carry(wire)
            side = run.kkt
            for chunk in outbound:
                run.kkt.receive_data(chunk)
            outbound.clear()
            run.kkt_got += messages(run.kkt)
            if not moved:
                break
        run.end_states = (run.kkt.state, run.ofd.state)
        for side in (run.ofd, run.kkt):
            side.receive_data(b"")
            messages(side)
    except OfdError:
        assert side.state is State.ERROR
        run.failed = side
    return run


def containers(sent: list[bytes]) -> set[bytes]:
    return {wire[30:] for wire in sent}


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    fd_numbers=st.lists(st.integers(1, 500), min_size=1, max_size=5),
    rng=st.randoms(use_true_random=False),
    rate=st.sampled_from([0.0, 0.05, 0.2, 0.5]),
)
def test_a_lossy_link_ends_agreed_or_in_an_ofd_error(
    fd_numbers: list[int], rng: random.Random, rate: float
) -> None:
    script = [receipt(n) for n in fd_numbers]
    to_ofd, to_kkt = LossyPipe(rng, rate), LossyPipe(rng, rate)
    run = converse(script, to_ofd, to_kkt)
    # The session header has no checksum (CRC mode 00), so a damaged header may pass; the
    # container's CRC is what must hold: every container accepted is one that was sent.
    accepted = [m.container.encode() for m in run.ofd_got if m.container is not None]
    assert set(accepted) <= containers(run.kkt_sent)
    replies = [m.container.encode() for m in run.kkt_got if m.container is not None]
    assert set(replies) <= containers(run.ofd_sent)
    if run.failed is None:
        assert run.end_states == (State.IDLE, State.IDLE)
        assert run.kkt.state is run.ofd.state is State.CLOSED
        assert len(run.kkt_got) == len(script)
    if to_ofd.faults == to_kkt.faults == 0:
        assert run.failed is None
        assert [m.container for m in run.ofd_got] == script
        assert [m.encode() for m in run.kkt_got] == run.ofd_sent
