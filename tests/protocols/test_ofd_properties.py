"""Property tests of the OFD transport: round trips, and any bytes never crash it."""

from __future__ import annotations

import contextlib
import itertools
import struct
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.crc import crc16_ccitt_false
from protocols.ofd import (
    HEADER_SIZE,
    MARKING_SIGNATURE,
    MAX_BUFFER,
    MAX_CONTAINER,
    NEED_DATA,
    OFD_SIGNATURE,
    ConnectionClosed,
    Container,
    Message,
    OfdConnection,
    OfdError,
    OperatorAck,
    Role,
    SessionHeader,
    State,
)

DIGITS = st.text(alphabet="0123456789", min_size=1, max_size=16)
ASCII = st.characters(min_codepoint=0, max_codepoint=127)


def tlv(tag: int, value: bytes) -> bytes:
    return struct.pack("<HH", tag, len(value)) + value


HEADERS = st.builds(
    SessionHeader,
    client_id=st.text(alphabet=ASCII, max_size=16),
    body_length=st.just(0) | st.integers(36, MAX_CONTAINER),
    p_version=st.binary(min_size=2, max_size=2),
    flags=st.integers(0, 0xFFFF),
    crc=st.integers(0, 0xFFFF),
    s_version=st.binary(min_size=2, max_size=2),
    signature=st.sampled_from([OFD_SIGNATURE, MARKING_SIGNATURE]),
)
DOCUMENTS = st.builds(tlv, st.integers(0, 0xFFFF), st.binary(max_size=300))
CONTAINERS = st.builds(
    Container,
    document_type=st.integers(0, 0xFF),
    fn_number=DIGITS,
    fd_number=st.integers(0, (1 << 24) - 1),
    document=DOCUMENTS,
    trailer=st.just(b"") | st.binary(min_size=10, max_size=10),
    message_type=st.integers(0, 0xFF),
    version=st.integers(0, 0xFF),
    service_1=st.binary(min_size=2, max_size=2),
    service_2=st.binary(min_size=12, max_size=12),
)
ACKS = st.builds(
    OperatorAck,
    ofd_inn=st.text(alphabet="0123456789", max_size=12),
    fn_number=st.text(alphabet="0123456789", min_size=16, max_size=16),
    fd_number=st.integers(0, (1 << 32) - 1),
    at=st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2106, 2, 7)).map(
        lambda moment: moment.replace(microsecond=0)
    ),
    response_code=st.integers(0, 0xFF),
    operator_sign=st.none() | st.binary(max_size=16),
)


@settings(max_examples=100, deadline=None)
@given(HEADERS)
def test_session_header_round_trip(header: SessionHeader) -> None:
    wire = header.encode()
    assert len(wire) == HEADER_SIZE
    assert SessionHeader.decode(wire) == header
    for size in range(HEADER_SIZE):
        with pytest.raises(OfdError):
            SessionHeader.decode(wire[:size])


@settings(max_examples=100, deadline=None)
@given(CONTAINERS)
def test_container_round_trip(container: Container) -> None:
    wire = container.encode()
    assert len(wire) == container.length == int.from_bytes(wire[:2], "little")
    assert container.crc == crc16_ccitt_false(wire[:2] + wire[4:])
    assert Container.decode(wire) == container
    for size in range(len(wire)):
        with pytest.raises(OfdError):
            Container.decode(wire[:size])


@settings(max_examples=100, deadline=None)
@given(ACKS)
def test_operator_ack_round_trip(ack: OperatorAck) -> None:
    document = ack.to_tlv()
    assert OperatorAck.from_tlv(document) == ack
    for size in range(len(document)):
        with pytest.raises(OfdError):
            OperatorAck.from_tlv(document[:size])


@settings(max_examples=100, deadline=None)
@given(HEADERS.filter(lambda h: h.body_length == 0) | st.none(), CONTAINERS, ASCII)
def test_message_round_trip(empty: SessionHeader | None, container: Container, c: str) -> None:
    message = (
        Message(header=empty)
        if empty is not None
        else Message.wrap(container, client_id=c * 16, p_version=b"\x01\x20", flags=0x10)
    )
    server = OfdConnection(Role.SERVER)
    server.receive_data(message.encode())
    assert server.next_event() == message
    assert server.buffered == 0


def test_the_largest_container_and_one_byte_more() -> None:
    document = tlv(3, bytes(MAX_CONTAINER - 32 - 10 - 4))
    largest = Container(
        document_type=3,
        fn_number="1",
        fd_number=1,
        document=document,
        trailer=b"\x81\x06" + bytes(8),
    )
    assert len(largest.encode()) == MAX_CONTAINER
    assert Container.decode(largest.encode()) == largest
    with pytest.raises(OfdError):
        Container(
            document_type=3, fn_number="1", fd_number=1, document=tlv(3, bytes(MAX_CONTAINER - 35))
        )
    with pytest.raises(OfdError):
        SessionHeader(client_id="1", body_length=MAX_CONTAINER + 1)


def test_values_are_checked_when_built() -> None:
    good = {"document_type": 7, "fn_number": "9999078902013267", "fd_number": 1}
    document = tlv(7, b"")
    for bad in (
        {"fn_number": "12345678901234567"},
        {"fn_number": "12a4"},
        {"fn_number": ""},
        {"fd_number": 1 << 24},
        {"document_type": 256},
        {"trailer": bytes(9)},
        {"service_1": b"\x10"},
    ):
        with pytest.raises(OfdError):
            Container(**{**good, "document": document, **bad})  # type: ignore[arg-type]
    with pytest.raises(OfdError):
        Container(**good, document=document + b"\x00")  # type: ignore[arg-type]
    with pytest.raises(OfdError):
        SessionHeader(client_id="Ф", body_length=0)
    with pytest.raises(OfdError):
        SessionHeader(client_id="1", body_length=35)
    with pytest.raises(OfdError):
        SessionHeader(client_id="1", body_length=0, signature=b"\x00" * 4)
    with pytest.raises(OfdError):
        OperatorAck(
            ofd_inn="7704211201  ", fn_number="9" * 16, fd_number=1, at=datetime(2024, 1, 1)
        )
    with pytest.raises(OfdError):
        OperatorAck(ofd_inn="1", fn_number="9" * 16, fd_number=1, at=datetime(1969, 12, 31))
    with pytest.raises(OfdError):
        OperatorAck(
            ofd_inn="1",
            fn_number="9" * 16,
            fd_number=1,
            at=datetime(2024, 1, 1),
            operator_sign=bytes(17),
        )
    with pytest.raises(OfdError):
        Message(header=SessionHeader(client_id="1", body_length=36))


def test_bcd_filler_pads_short_numbers_at_the_end() -> None:
    container = Container(
        document_type=7, fn_number="9999078950", fd_number=1, document=tlv(7, b"")
    )
    assert container.encode()[9:17].hex() == "9999078950ffffff"
    assert Container.decode(container.encode()).fn_number == "9999078950"


def with_fixed_crc(data: bytes) -> bytes:
    """``data`` as a container with a right length field and CRC, whatever else it holds."""
    head = len(data).to_bytes(2, "little")
    return head + crc16_ccitt_false(head + data[4:]).to_bytes(2, "little") + data[4:]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=120))
def test_any_bytes_decode_or_raise_ofd_error(data: bytes) -> None:
    for decode in (SessionHeader.decode, Container.decode, OperatorAck.from_tlv):
        with contextlib.suppress(OfdError):
            decode(data)
    if len(data) >= 4:
        framed = with_fixed_crc(data)
        try:
            container = Container.decode(framed)
        except OfdError:
            pass
        else:
            assert container.encode() == framed


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([1017, 1041, 1040, 1012, 1068, 1078, 1022, 1206]),
            st.binary(max_size=20),
        ),
        max_size=8,
    )
)
def test_any_ack_shaped_tlv_decodes_or_raises(fields: list[tuple[int, bytes]]) -> None:
    body = b"".join(
        tlv(tag, tlv(1022, value[:1]) if tag == 1068 else value) for tag, value in fields
    )
    with contextlib.suppress(OfdError):
        OperatorAck.from_tlv(tlv(7, body))


@settings(max_examples=150, deadline=None)
@given(
    role=st.sampled_from(Role),
    chunks=st.lists(st.binary(min_size=1, max_size=400), max_size=5),
    seed=st.lists(CONTAINERS, max_size=2),
)
def test_receive_data_parses_or_raises_and_stays_bounded(
    role: Role, chunks: list[bytes], seed: list[Container]
) -> None:
    conn = OfdConnection(role)
    if role is Role.CLIENT and seed:
        conn.send(Message.wrap(seed[0], client_id="1"))
    else:
        chunks = [Message.wrap(c, client_id="1").encode() for c in seed] + chunks
    try:
        for chunk in [*chunks, b""]:
            conn.receive_data(chunk)
            assert conn.buffered <= MAX_BUFFER
            while True:
                event = conn.next_event()
                if event is NEED_DATA or isinstance(event, ConnectionClosed):
                    break
    except OfdError:
        assert conn.state is State.ERROR


@settings(max_examples=60, deadline=None)
@given(container=CONTAINERS, cuts=st.lists(st.integers(0, 400), max_size=5))
def test_a_message_split_anywhere_gives_the_same_event(
    container: Container, cuts: list[int]
) -> None:
    message = Message.wrap(container, client_id="9999078902013267")
    wire = message.encode()
    points = sorted({min(c, len(wire)) for c in cuts} | {0, len(wire)})
    server = OfdConnection(Role.SERVER)
    for start, end in itertools.pairwise(points):
        assert server.next_event() is NEED_DATA
        server.receive_data(wire[start:end])
    assert server.next_event() == message


def test_garbage_is_refused_once_a_header_is_in() -> None:
    server = OfdConnection(Role.SERVER)
    server.receive_data(bytes(HEADER_SIZE - 1))
    assert server.next_event() is NEED_DATA
    server.receive_data(b"\x00")
    with pytest.raises(OfdError):
        server.next_event()
    assert server.state is State.ERROR


def test_more_than_two_maximal_messages_unread_is_refused() -> None:
    server = OfdConnection(Role.SERVER)
    server.receive_data(bytes(MAX_BUFFER))
    with pytest.raises(OfdError):
        server.receive_data(b"\x00")
    assert server.state is State.ERROR
