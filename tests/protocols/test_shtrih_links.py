"""Shtrih-M link layers v1 and v2: the state × input tables run exhaustively, garbage input.

Each connection is first driven into a state through its public API, then given one input
(real bytes, ``send`` or ``timeout``); the resulting state, the bytes it wants written and
the events it reports must be what the transition table and the action say.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.crc import crc16_ccitt_false
from protocols.shtrih import (
    NEED_DATA,
    AnswerFrame,
    CommandFrame,
    RepeatedCommandFrame,
    ShtrihError,
    StaleAnswerFrame,
    Timer,
)
from protocols.shtrih import link_v1 as v1
from protocols.shtrih import link_v2 as v2
from protocols.shtrih.link_v1 import LinkV1Device, LinkV1Host, encode_frame, parse_frame
from protocols.shtrih.link_v2 import LinkV2Device, LinkV2Host, encode_packet, parse_packet

Link = LinkV1Host | LinkV1Device | LinkV2Host | LinkV2Device

STATUS = b"\x10\x1e\x00\x00\x00"  # 10h short status, password 30
OPERATION = b"\xff\x46\x1e\x00\x00\x00\x01"  # an FF46h-coded payload
ANSWER = b"\x10\x00\x1e"
OTHER_ANSWER = b"\x11\x00\x1e"


def drain(link: Link) -> list[object]:
    events: list[object] = []
    while (event := link.next_event()) is not NEED_DATA:
        events.append(event)
    return events


def bad_lrc(payload: bytes) -> bytes:
    frame = encode_frame(payload)
    return frame[:-1] + bytes((frame[-1] ^ 0x5A,))


def bad_crc(number: int, payload: bytes) -> bytes:
    body = (len(payload) + 2).to_bytes(2, "little") + number.to_bytes(2, "little") + payload
    raw = body + (crc16_ccitt_false(body) ^ 0xFFFF).to_bytes(2, "little")
    return b"\x8f" + raw.replace(b"\x9f", b"\x9f\x83").replace(b"\x8f", b"\x9f\x81")


# --- v1 host ------------------------------------------------------------------------------


def v1_host(state: v1.HostState) -> LinkV1Host:
    """A host driven into ``state`` (IDLE after one whole exchange, so ANSWER is defined)."""
    S = v1.HostState
    host = LinkV1Host(max_retries=0 if state is S.ERROR else 10)
    if state is S.ERROR:
        host.send(CommandFrame(payload=STATUS))
        with pytest.raises(ShtrihError):
            host.timeout()
        return host
    host.send(CommandFrame(payload=STATUS))
    host.receive_data(b"\x15\x06" + encode_frame(ANSWER))
    assert drain(host) == [AnswerFrame(payload=ANSWER)]
    if state is not S.IDLE:
        host.send(CommandFrame(payload=STATUS))
        steps = {
            S.PROBE: b"",
            S.WAIT_STALE: b"\x06",
            S.WAIT_ACK: b"\x15",
            S.CONFIRM: b"\x15",
            S.WAIT_ANSWER: b"\x15\x06",
        }
        host.receive_data(steps[state])
        drain(host)
        if state is S.CONFIRM:
            host.timeout()
    host.data_to_send()
    assert host.state is state
    return host


V1_HOST_INPUTS: dict[v1.HostInput, Callable[[LinkV1Host], bytes | None]] = {
    v1.HostInput.ENQ: lambda h: b"\x05",
    v1.HostInput.ACK: lambda h: b"\x06",
    v1.HostInput.NAK: lambda h: b"\x15",
    v1.HostInput.FF: lambda h: b"\xff",
    v1.HostInput.OTHER: lambda h: b"\x42",
    v1.HostInput.ANSWER: lambda h: encode_frame(ANSWER),
    v1.HostInput.FOREIGN: lambda h: encode_frame(OTHER_ANSWER),
    v1.HostInput.BAD_FRAME: lambda h: bad_lrc(ANSWER),
    v1.HostInput.SEND_COMMAND: lambda h: None,
    v1.HostInput.TIMEOUT: lambda h: None,
}


def v1_host_output(action: v1.HostAction, payload: bytes) -> tuple[bytes, list[object]]:
    """What an action writes and reports; ``payload`` is the frame the input carried."""
    A = v1.HostAction
    frame = encode_frame(STATUS)
    outputs: dict[v1.HostAction, tuple[bytes, list[object]]] = {
        A.IGNORE: (b"", []),
        A.START: (b"", []),  # send() returned the ENQ
        A.SEND_FRAME: (frame, []),
        A.RESEND_FRAME: (frame, []),
        A.PROBE_AGAIN: (b"\x05", []),
        A.ACCEPT: (b"\x06", [AnswerFrame(payload=payload)]),
        A.DISCARD: (b"\x06", [StaleAnswerFrame(payload=payload)]),
        A.STALE: (b"\x06\x05", [StaleAnswerFrame(payload=payload)]),
        A.REJECT: (b"\x15\x05", []),
    }
    return outputs[action]


def _feed(link: Any, inp_name: str, data: bytes | None, command: object) -> list[object]:
    if inp_name.startswith("SEND"):
        link.send(command)
        return drain(link)
    if inp_name == "TIMEOUT":
        link.timeout()
        return drain(link)
    assert data is not None
    link.receive_data(data)
    return drain(link)


@pytest.mark.parametrize(
    ("state", "inp"), list(itertools.product(v1.HostState, v1.HostInput)), ids=str
)
def test_v1_host_table(state: v1.HostState, inp: v1.HostInput) -> None:
    action, target = v1.HOST_TRANSITIONS[state, inp]
    host = v1_host(state)
    data = V1_HOST_INPUTS[inp](host)
    if action is v1.HostAction.FAIL:
        with pytest.raises(ShtrihError):
            _feed(host, inp.name, data, CommandFrame(payload=STATUS))
        assert host.state is state
        return
    events = _feed(host, inp.name, data, CommandFrame(payload=STATUS))
    carried = OTHER_ANSWER if inp is v1.HostInput.FOREIGN else ANSWER
    assert host.state is target
    assert (host.data_to_send(), events) == v1_host_output(action, carried)


def test_v1_host_tables_are_complete() -> None:
    assert set(v1.HOST_TRANSITIONS) == set(itertools.product(v1.HostState, v1.HostInput))
    assert set(v1.DEVICE_TRANSITIONS) == set(itertools.product(v1.DeviceState, v1.DeviceInput))
    assert set(v2.HOST_TRANSITIONS) == set(itertools.product(v2.HostState, v2.HostInput))
    assert set(v2.DEVICE_TRANSITIONS) == set(itertools.product(v2.DeviceState, v2.DeviceInput))


# --- v1 device ----------------------------------------------------------------------------


def v1_device(state: v1.DeviceState, ff_after_ack: bool) -> LinkV1Device:
    device = LinkV1Device(ff_after_ack=ff_after_ack)
    if state is not v1.DeviceState.IDLE:
        device.receive_data(encode_frame(STATUS))
        assert drain(device) == [CommandFrame(payload=STATUS)]
    if state is v1.DeviceState.ANSWER_SENT:
        device.send(AnswerFrame(payload=ANSWER))
    device.data_to_send()
    assert device.state is state
    return device


V1_DEVICE_INPUTS: dict[v1.DeviceInput, bytes | None] = {
    v1.DeviceInput.ENQ: b"\x05",
    v1.DeviceInput.ACK: b"\x06",
    v1.DeviceInput.NAK: b"\x15",
    v1.DeviceInput.OTHER: b"\x42",
    v1.DeviceInput.FRAME: encode_frame(OPERATION),
    v1.DeviceInput.BAD_FRAME: bad_lrc(OPERATION),
    v1.DeviceInput.SEND_ANSWER: None,
    v1.DeviceInput.TIMEOUT: None,
}


@pytest.mark.parametrize("ff_after_ack", [False, True])
@pytest.mark.parametrize(
    ("state", "inp"), list(itertools.product(v1.DeviceState, v1.DeviceInput)), ids=str
)
def test_v1_device_table(state: v1.DeviceState, inp: v1.DeviceInput, ff_after_ack: bool) -> None:
    A = v1.DeviceAction
    action, target = v1.DEVICE_TRANSITIONS[state, inp]
    device = v1_device(state, ff_after_ack)
    reply = AnswerFrame(payload=b"\xff\x46\x00")
    if action is A.FAIL:
        with pytest.raises(ShtrihError):
            _feed(device, inp.name, V1_DEVICE_INPUTS[inp], reply)
        assert device.state is state
        return
    events = _feed(device, inp.name, V1_DEVICE_INPUTS[inp], reply)
    expected: dict[v1.DeviceAction, tuple[bytes, list[object]]] = {
        A.IGNORE: (b"", []),
        A.REPLY_NAK: (b"\x15", []),
        A.REPLY_ACK: (b"\x06", []),
        A.EXECUTE: (b"\x06", [CommandFrame(payload=OPERATION)]),
        A.ANSWER: (b"", []),  # send() returned the frame
        A.RESEND: (b"\x06" + encode_frame(ANSWER), []),
        A.ACKNOWLEDGED: (b"\xff" if ff_after_ack else b"", []),
    }
    assert device.state is target
    assert (device.data_to_send(), events) == expected[action]


def test_v1_device_send_returns_the_answer_frame_and_resends_it_on_enq() -> None:
    device = v1_device(v1.DeviceState.EXECUTING, ff_after_ack=True)
    assert device.send(AnswerFrame(payload=ANSWER)) == encode_frame(ANSWER)
    device.receive_data(b"\x15\x05")  # NAK for the answer, then the host asks again
    assert drain(device) == []
    assert device.data_to_send() == b"\x06" + encode_frame(ANSWER)
    device.receive_data(b"\x06")
    drain(device)
    assert device.data_to_send() == b"\xff"
    device.receive_data(b"\x05")
    drain(device)
    assert device.data_to_send() == b"\x15"  # nothing held any more: idle


# --- v2 host ------------------------------------------------------------------------------


def v2_host(state: v2.HostState) -> LinkV2Host:
    S = v2.HostState
    if state is S.UNSYNCED:
        return LinkV2Host()
    if state is S.SYNC:
        host = LinkV2Host()
        host.send(CommandFrame(payload=STATUS))
        host.data_to_send()
        return host
    host = LinkV2Host(next_number=5, max_retries=0 if state is S.ERROR else 10)
    host.send(CommandFrame(payload=STATUS))
    host.receive_data(encode_packet(5, ANSWER))
    assert drain(host) == [AnswerFrame(payload=ANSWER, number=5)]
    if state in (S.WAIT_ANSWER, S.ERROR):
        host.send(CommandFrame(payload=STATUS))
    if state is S.ERROR:
        with pytest.raises(ShtrihError):
            host.timeout()
    host.data_to_send()
    assert host.state is state
    return host


V2_HOST_INPUTS: dict[v2.HostInput, Callable[[LinkV2Host], bytes | None]] = {
    v2.HostInput.PONG: lambda h: encode_packet(7),
    v2.HostInput.ANSWER: lambda h: encode_packet(h.number, ANSWER),
    v2.HostInput.FOREIGN: lambda h: encode_packet(h.number ^ 0x100, ANSWER),
    v2.HostInput.PING: lambda h: encode_packet(None),
    v2.HostInput.BAD_PACKET: lambda h: bad_crc(h.number, ANSWER),
    v2.HostInput.SEND_COMMAND: lambda h: None,
    v2.HostInput.TIMEOUT: lambda h: None,
}


@pytest.mark.parametrize(
    ("state", "inp"), list(itertools.product(v2.HostState, v2.HostInput)), ids=str
)
def test_v2_host_table(state: v2.HostState, inp: v2.HostInput) -> None:
    A = v2.HostAction
    action, target = v2.HOST_TRANSITIONS[state, inp]
    host = v2_host(state)
    number = host.number
    data = V2_HOST_INPUTS[inp](host)
    if action is A.FAIL:
        with pytest.raises(ShtrihError):
            _feed(host, inp.name, data, CommandFrame(payload=STATUS))
        assert host.state is state
        return
    events = _feed(host, inp.name, data, CommandFrame(payload=STATUS))
    carried = number ^ 0x100 if inp is v2.HostInput.FOREIGN else number
    expected: dict[v2.HostAction, tuple[bytes, list[object]]] = {
        A.IGNORE: (b"", []),
        A.PING: (b"", []),  # send() returned the ping
        A.PING_AGAIN: (encode_packet(None), []),
        A.SYNCED: (encode_packet(8, STATUS), []),  # the pong said 7
        A.SEND: (b"", []),  # send() returned the packet
        A.RESEND: (encode_packet(number, STATUS), []),
        A.ACCEPT: (b"", [AnswerFrame(payload=ANSWER, number=number)]),
        A.STALE: (b"", [StaleAnswerFrame(payload=ANSWER, number=carried)]),
    }
    assert host.state is target
    assert (host.data_to_send(), events) == expected[action]


def test_v2_host_syncs_with_a_ping_then_numbers_from_the_pong() -> None:
    host = LinkV2Host()
    assert host.send(CommandFrame(payload=STATUS)) == bytes.fromhex("8f00000f1d")  # CRC of 00 00
    host.receive_data(encode_packet(0x1234))
    assert drain(host) == []
    assert host.data_to_send() == encode_packet(0x1235, STATUS)
    host.receive_data(encode_packet(0x1235, ANSWER))
    assert drain(host) == [AnswerFrame(payload=ANSWER, number=0x1235)]
    assert host.send(CommandFrame(payload=STATUS)) == encode_packet(0x1236, STATUS)


def test_v2_numbers_wrap_to_zero() -> None:
    host = LinkV2Host(next_number=0xFFFF)
    assert host.send(CommandFrame(payload=STATUS)) == encode_packet(0xFFFF, STATUS)
    host.receive_data(encode_packet(0xFFFF, ANSWER))
    drain(host)
    assert host.send(CommandFrame(payload=STATUS)) == encode_packet(0, STATUS)


# --- v2 device ----------------------------------------------------------------------------


def v2_device(state: v2.DeviceState) -> LinkV2Device:
    device = LinkV2Device()
    if state is not v2.DeviceState.FRESH:
        device.receive_data(encode_packet(1, STATUS))
        assert drain(device) == [CommandFrame(payload=STATUS, number=1)]
        device.send(AnswerFrame(payload=ANSWER))
    if state is v2.DeviceState.EXECUTING:
        device.receive_data(encode_packet(2, OPERATION))
        assert drain(device) == [CommandFrame(payload=OPERATION, number=2)]
    device.data_to_send()
    assert device.state is state
    return device


def _v2_device_number(device: LinkV2Device, inp: v2.DeviceInput) -> int:
    executing = device.state is v2.DeviceState.EXECUTING
    if inp is v2.DeviceInput.NEXT:
        return 2 if executing or device.state is v2.DeviceState.IDLE else 1
    if inp is v2.DeviceInput.SAME:
        return device.last_number
    return 77


@pytest.mark.parametrize(
    ("state", "inp"), list(itertools.product(v2.DeviceState, v2.DeviceInput)), ids=str
)
def test_v2_device_table(state: v2.DeviceState, inp: v2.DeviceInput) -> None:
    A, In = v2.DeviceAction, v2.DeviceInput
    action, target = v2.DEVICE_TRANSITIONS[state, inp]
    device = v2_device(state)
    last = device.last_number
    number = _v2_device_number(device, inp)
    data = {
        In.PING: encode_packet(None),
        In.EMPTY: encode_packet(9),
        In.NEXT: encode_packet(number, OPERATION),
        In.SAME: encode_packet(number, OPERATION),
        In.OTHER: encode_packet(number, OPERATION),
        In.BAD_PACKET: bad_crc(3, OPERATION),
    }.get(inp)
    reply = AnswerFrame(payload=b"\xff\x46\x00")
    if action is A.FAIL:
        with pytest.raises(ShtrihError):
            _feed(device, inp.name, data, reply)
        assert device.state is state
        return
    events = _feed(device, inp.name, data, reply)
    expected: dict[v2.DeviceAction, tuple[bytes, list[object]]] = {
        A.IGNORE: (b"", []),
        A.PONG: (encode_packet(last), []),
        A.EXECUTE: (b"", [CommandFrame(payload=OPERATION, number=number)]),
        A.RESEND: (
            encode_packet(1, ANSWER),
            [RepeatedCommandFrame(payload=OPERATION, number=number)],
        ),
        A.DUPLICATE: (b"", [RepeatedCommandFrame(payload=OPERATION, number=number)]),
        A.ANSWER: (b"", []),  # send() returned the packet
    }
    assert device.state is target
    assert (device.data_to_send(), events) == expected[action]


def test_v2_device_executes_a_number_once_and_repeats_its_answer() -> None:
    device = LinkV2Device()
    device.receive_data(encode_packet(40, OPERATION) * 2)
    assert drain(device) == [
        CommandFrame(payload=OPERATION, number=40),
        RepeatedCommandFrame(payload=OPERATION, number=40),
    ]
    assert device.send(AnswerFrame(payload=b"\xff\x46\x00")) == encode_packet(40, b"\xff\x46\x00")
    device.receive_data(encode_packet(40, OPERATION))
    assert drain(device) == [RepeatedCommandFrame(payload=OPERATION, number=40)]
    assert device.data_to_send() == encode_packet(40, b"\xff\x46\x00")
    device.receive_data(encode_packet(41, STATUS))
    assert drain(device) == [CommandFrame(payload=STATUS, number=41)]


@given(number=st.integers(1, 0xFFFF), payload=st.binary(min_size=1, max_size=250))
def test_devices_know_the_size_of_an_answer_before_sending_it(number: int, payload: bytes) -> None:
    """The emulator waits for an answer's time on the line before it sends it."""
    v2_device = LinkV2Device()
    v2_device.receive_data(encode_packet(number, STATUS))
    assert drain(v2_device) == [CommandFrame(payload=STATUS, number=number)]
    size = v2_device.answer_size(payload)
    assert size == len(v2_device.send(AnswerFrame(payload=payload)))
    v1_device = LinkV1Device()
    v1_device.receive_data(b"\x05")
    drain(v1_device)
    v1_device.data_to_send()
    v1_device.receive_data(encode_frame(STATUS))
    assert drain(v1_device) == [CommandFrame(payload=STATUS)]
    v1_device.data_to_send()  # the ACK of the command
    assert v1_device.answer_size(payload) == len(v1_device.send(AnswerFrame(payload=payload)))


# --- timers, partial frames, misuse ------------------------------------------------------


def test_timers_name_the_wait() -> None:
    host = LinkV1Host()
    timers = [host.timer]
    host.send(CommandFrame(payload=STATUS))
    timers.append(host.timer)
    host.receive_data(b"\x15\x06")
    drain(host)
    assert host.data_to_send() == encode_frame(STATUS)
    timers.append(host.timer)
    host.receive_data(encode_frame(ANSWER)[:3])
    drain(host)
    timers.append(host.timer)
    assert timers == [Timer.NONE, Timer.LINK, Timer.ANSWER, Timer.BYTE]
    host.timeout()  # the cut-off frame is a bad frame: NAK it and ask again
    assert host.data_to_send() == b"\x15\x05"
    assert host.state is v1.HostState.CONFIRM
    v2host = LinkV2Host(next_number=1)
    v2host.send(CommandFrame(payload=STATUS))
    timers = [v2host.timer]
    v2host.receive_data(encode_packet(1, ANSWER)[:4])
    drain(v2host)
    timers.append(v2host.timer)
    assert timers == [Timer.ANSWER, Timer.BYTE]
    v2host.timeout()
    assert v2host.data_to_send() == encode_packet(1, STATUS)


def test_device_cuts_a_partial_frame_at_the_byte_timeout() -> None:
    device = LinkV1Device()
    device.receive_data(encode_frame(STATUS)[:4])
    assert drain(device) == [] and device.timer is Timer.BYTE
    device.timeout()
    assert device.data_to_send() == b"\x15" and device.buffered == 0
    v2device = LinkV2Device()
    v2device.receive_data(encode_packet(1, STATUS)[:6])
    drain(v2device)
    timers = [v2device.timer]
    assert v2device.buffered > 0
    v2device.timeout()
    timers.append(v2device.timer)
    assert timers == [Timer.BYTE, Timer.NONE] and v2device.buffered == 0


def test_host_gives_up_after_its_retries_and_stays_broken() -> None:
    host = LinkV1Host(max_retries=2)
    host.send(CommandFrame(payload=STATUS))
    host.timeout()
    host.timeout()
    assert host.retries == 2
    with pytest.raises(ShtrihError, match="after 2 retries"):
        host.timeout()
    assert host.broken
    for call in (host.next_event, host.timeout, lambda: host.receive_data(b"\x15")):
        with pytest.raises(ShtrihError):
            call()
    v2host = LinkV2Host(next_number=3, max_retries=1)
    v2host.send(CommandFrame(payload=STATUS))
    v2host.receive_data(bad_crc(3, ANSWER))  # a corrupt answer: repeat at once
    drain(v2host)
    assert v2host.retries == 1 and v2host.data_to_send() == encode_packet(3, STATUS)
    with pytest.raises(ShtrihError, match="after 1 retries"):
        v2host.timeout()
    assert v2host.broken


@pytest.mark.parametrize(
    "link",
    [LinkV1Host, LinkV1Device, LinkV2Host, LinkV2Device],
    ids=lambda c: c.__name__,
)
def test_wrong_events_are_shtrih_errors(link: type[Link]) -> None:
    connection = link()
    for event in (
        StaleAnswerFrame(payload=b"\x10"),
        RepeatedCommandFrame(payload=b"\x10", number=1),
        CommandFrame(payload=b"\x10", number=1),
        AnswerFrame(payload=b"\x10", number=1),
    ):
        with pytest.raises(ShtrihError):
            connection.send(event)
    with pytest.raises(ShtrihError):
        connection.receive_data("text")  # type: ignore[arg-type]


def test_events_validate_their_fields() -> None:
    with pytest.raises(ShtrihError):
        CommandFrame(payload=b"")
    with pytest.raises(ShtrihError):
        AnswerFrame(payload=b"\x10", number=70000)
    with pytest.raises(ShtrihError):
        LinkV1Host().send(CommandFrame(payload=bytes(256)))


# --- whole-frame codecs and garbage -----------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(min_size=1, max_size=255))
def test_v1_frames_round_trip(payload: bytes) -> None:
    assert parse_frame(encode_frame(payload)) == payload


@settings(max_examples=200, deadline=None)
@given(number=st.integers(0, 0xFFFF), payload=st.binary(max_size=300))
def test_v2_packets_round_trip_and_never_show_a_bare_stx(number: int, payload: bytes) -> None:
    packet = encode_packet(number, payload)
    assert 0x8F not in packet[1:]
    assert parse_packet(packet) == (number, payload)


def _noisy_bytes() -> st.SearchStrategy[bytes]:
    """Bytes rich in the link layers' special values and whole frames."""
    specials = st.sampled_from([0x02, 0x05, 0x06, 0x15, 0xFF, 0x8F, 0x9F, 0x81, 0x83, 0x00, 0x03])
    noise = st.lists(specials | st.integers(0, 255), max_size=40).map(bytes)
    frames = st.binary(min_size=1, max_size=40).map(encode_frame)
    packets = st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=40)).map(
        lambda t: encode_packet(*t)
    )
    return st.lists(noise | frames | packets | st.just(encode_packet(None)), max_size=8).map(
        b"".join
    )


@settings(max_examples=200, deadline=None)
@given(data=_noisy_bytes())
def test_whole_frame_parsers_parse_or_raise_shtrih_error(data: bytes) -> None:
    for parser in (parse_frame, parse_packet):
        with contextlib.suppress(ShtrihError):
            parser(data)


def _build(kind: str, state: object) -> Link:
    if kind == "v1_host":
        assert isinstance(state, v1.HostState)
        return v1_host(state)
    if kind == "v1_device":
        assert isinstance(state, v1.DeviceState)
        return v1_device(state, ff_after_ack=True)
    if kind == "v2_host":
        assert isinstance(state, v2.HostState)
        return v2_host(state)
    assert isinstance(state, v2.DeviceState)
    return v2_device(state)


STARTS = [
    *(("v1_host", s) for s in v1.HostState if s is not v1.HostState.ERROR),
    *(("v1_device", s) for s in v1.DeviceState),
    *(("v2_host", s) for s in v2.HostState if s is not v2.HostState.ERROR),
    *(("v2_device", s) for s in v2.DeviceState),
]


@settings(max_examples=150, deadline=None)
@given(
    start=st.sampled_from(STARTS),
    chunks=st.lists(_noisy_bytes(), max_size=6),
    timeouts=st.lists(st.booleans(), min_size=6, max_size=6),
)
def test_receive_data_parses_or_raises_and_buffers_at_most_one_frame(
    start: tuple[str, object], chunks: list[bytes], timeouts: list[bool]
) -> None:
    link = _build(*start)
    cap = v1.MAX_FRAME if start[0].startswith("v1") else v2.MAX_LENGTH + 4
    try:
        for chunk, expire in zip(chunks, timeouts, strict=False):
            for i in range(0, len(chunk), 7):
                link.receive_data(chunk[i : i + 7])
                drain(link)
                assert link.buffered < cap
                link.data_to_send()
            if expire:
                link.timeout()
                drain(link)
    except ShtrihError:
        assert isinstance(link, LinkV1Host | LinkV2Host) and link.broken


@settings(max_examples=100, deadline=None)
@given(junk=st.binary(min_size=1, max_size=2000), limit=st.integers(2, 64))
def test_v2_max_length_bounds_the_buffer(junk: bytes, limit: int) -> None:
    device = LinkV2Device(max_length=limit)
    device.receive_data(b"\x8f" + junk)
    drain(device)
    assert device.buffered <= limit + 4
