"""Property tests of the ФН codec: round trips of every class, and any bytes never crash it."""

from __future__ import annotations

import contextlib
import enum
import itertools
from datetime import date, datetime
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import protocols.fn as fn
from protocols.fn import (
    COMMANDS,
    MAX_BUFFER,
    MAX_DATA,
    NEED_DATA,
    Answer,
    Command,
    ConnectionClosed,
    Done,
    Failure,
    FnConnection,
    FnError,
    RawAnswer,
    RawCommand,
    Role,
    decode_answer,
    decode_command,
    decode_frame,
    encode_frame,
)

CP866 = bytes(range(256)).decode("cp866")
MINUTES = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2255, 12, 31)).map(
    lambda moment: moment.replace(second=0, microsecond=0)
)
INT_WIDTH = {
    "fd_number": 4,
    "fiscal_sign": 4,
    "first_fd_number": 4,
    "last_fd_number": 4,
    "shift_number": 2,
    "receipt_number": 2,
    "pending": 2,
    "length": 2,
    "offset": 2,
    "count": 2,
    "response_code": 1,
    "current_document": 1,
    "registrations_left": 1,
    "registrations_done": 1,
    "document_type": 1,
    "work_modes": 1,
    "total": 5,
}
BYTES_LIMIT = {"tlv": MAX_DATA, "ack": MAX_DATA, "data": MAX_DATA, "details": 1009}
TEXT_WIDTH = {"fn_number": 16, "version": 16, "inn": 12, "registration_number": 20}


def _field(cls: type, field: attrs.Attribute[Any]) -> st.SearchStrategy[Any]:
    kind = field.type
    if cls is Failure and field.name == "code":
        return st.integers(1, 0x7F)
    if cls is RawCommand and field.name == "code":
        return st.integers(0, 0xFF).filter(lambda code: code not in COMMANDS)
    if field.name == "operator_sign":
        return st.binary(max_size=32)
    if kind is bool:
        return st.booleans()
    if kind is datetime:
        return MINUTES
    if kind == datetime | None:
        return st.none() | MINUTES
    if kind is date:
        return st.dates(min_value=date(2000, 1, 1), max_value=date(2255, 12, 31))
    if kind is str:
        width = TEXT_WIDTH[field.name]
        small = 0 if field.converter is not None else width
        return st.text(alphabet=CP866, min_size=small, max_size=width)
    if kind is bytes:
        return st.binary(max_size=BYTES_LIMIT[field.name])
    if kind is int:
        return st.integers(0, (1 << (8 * INT_WIDTH[field.name])) - 1)
    assert isinstance(kind, type) and issubclass(kind, enum.Enum), (cls, field)
    if issubclass(kind, enum.IntFlag):
        return st.integers(0, 0xFF)
    return st.sampled_from(list(kind))


def strategy(cls: type) -> st.SearchStrategy[Any]:
    attrs.resolve_types(cls)
    return st.builds(cls, **{f.name: _field(cls, f) for f in attrs.fields(cls)})


COMMAND_CLASSES: list[type[Command]] = sorted(COMMANDS.values(), key=lambda c: c.CODE)
ANSWER_CLASSES: list[type[Answer]] = sorted(
    {c.ANSWER for c in COMMAND_CLASSES} | {Done, Failure, RawAnswer}, key=lambda c: c.__name__
)
EVERY_CLASS: list[type[Command] | type[Answer] | type[RawCommand]] = [
    *COMMAND_CLASSES,
    *ANSWER_CLASSES,
    RawCommand,
]
STRATEGIES: dict[type, st.SearchStrategy[Any]] = {cls: strategy(cls) for cls in EVERY_CLASS}
ANY_COMMAND = st.one_of(*(STRATEGIES[cls] for cls in [*COMMAND_CLASSES, RawCommand]))
ANY_ANSWER = st.one_of(*(STRATEGIES[cls] for cls in ANSWER_CLASSES))


def command_for(answer: type[Answer]) -> type[Command | RawCommand]:
    """A command whose answer is ``answer``; any command for a Failure."""
    if answer is RawAnswer:
        return RawCommand
    return next(c for c in COMMAND_CLASSES if c.ANSWER is answer or answer is Failure)


def test_every_public_command_and_answer_class_is_covered() -> None:
    public = [getattr(fn, name) for name in fn.__all__]
    classes = {c for c in public if isinstance(c, type) and issubclass(c, (Command, Answer))}
    assert classes - {Command, Answer} == set(STRATEGIES) - {RawCommand}
    assert len(COMMAND_CLASSES) == 28
    assert [f"{c.CODE:02x}" for c in COMMAND_CLASSES] == [
        *["02", "03", "04", "05", "06", "07"],
        *["10", "11", "12", "13", "14", "15", "16", "17"],
        *["20", "21", "22", "23", "24", "25", "26"],
        *["30", "31", "32", "33"],
        *["40", "41", "42"],
    ]


@pytest.mark.parametrize("cls", [*COMMAND_CLASSES, RawCommand], ids=lambda c: c.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_command_round_trip(cls: type[Command | RawCommand], data: st.DataObject) -> None:
    command = data.draw(STRATEGIES[cls])
    frame = command.encode()
    assert len(frame) == 6 + len(command.encode_data())
    assert decode_command(frame) == command
    assert cls.decode(frame) == command
    if isinstance(command, Command):
        assert type(command).decode_data(command.encode_data()) == command


@pytest.mark.parametrize("cls", ANSWER_CLASSES, ids=lambda c: c.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_answer_round_trip(cls: type[Answer], data: st.DataObject) -> None:
    answer = data.draw(STRATEGIES[cls])
    frame = answer.encode()
    assert decode_answer(frame, command_for(cls)) == answer
    assert cls.decode(frame) == answer
    if cls is not Failure:
        assert cls.decode_data(answer.encode_data(), warning=answer.warning) == answer


@settings(max_examples=60, deadline=None)
@given(command=ANY_COMMAND, answer=ANY_ANSWER)
def test_every_cut_frame_is_an_fn_error(command: Command | RawCommand, answer: Answer) -> None:
    for frame in (command.encode(), answer.encode()):
        for size in range(len(frame)):
            with pytest.raises(FnError):
                decode_frame(frame[:size])
        with pytest.raises(FnError):
            decode_frame(frame + b"\x00")


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_decode_or_raise_fn_error(data: bytes) -> None:
    for decode in (decode_frame, decode_command):
        with contextlib.suppress(FnError):
            decode(data)
    for cls in EVERY_CLASS:
        with contextlib.suppress(FnError):
            cls.decode(data)


@settings(max_examples=300, deadline=None)
@given(code=st.integers(0, 0xFF), data=st.binary(max_size=48))
def test_any_well_framed_data_decodes_or_raises_and_reencodes_exactly(
    code: int, data: bytes
) -> None:
    """Past the CRC every class sees arbitrary DATA; whatever it accepts it re-encodes as is."""
    frame = encode_frame(code, data)
    try:
        command = decode_command(frame)
    except FnError:
        pass
    else:
        assert command.encode() == frame
    for cls in [*COMMAND_CLASSES, RawCommand]:
        try:
            answer = decode_answer(frame, cls)
        except FnError:
            continue
        assert answer.encode() == frame
    for answer_cls in ANSWER_CLASSES:
        try:
            value = answer_cls.decode_data(data)
        except FnError:
            continue
        assert value.encode_data() == data


@settings(max_examples=200, deadline=None)
@given(
    role=st.sampled_from(Role),
    chunks=st.lists(st.binary(min_size=1, max_size=1500), max_size=6),
    seed=st.lists(ANY_COMMAND, max_size=2),
)
def test_receive_data_parses_or_raises_and_stays_bounded(
    role: Role, chunks: list[bytes], seed: list[Command | RawCommand]
) -> None:
    conn = FnConnection(role)
    if role is Role.HOST and seed:
        conn.send(seed[0])  # so that answers are legal
    else:
        chunks = [c.encode() for c in seed] + chunks
    try:
        for chunk in [*chunks, b""]:
            conn.receive_data(chunk)
            assert conn.buffered <= MAX_BUFFER
            while True:
                event = conn.next_event()
                if event is NEED_DATA or isinstance(event, ConnectionClosed):
                    break
    except FnError:
        assert conn.state is fn.State.ERROR


@settings(max_examples=100, deadline=None)
@given(command=ANY_COMMAND, cuts=st.lists(st.integers(0, 1100), max_size=5))
def test_a_frame_split_anywhere_gives_the_same_event(
    command: Command | RawCommand, cuts: list[int]
) -> None:
    frame = command.encode()
    points = sorted({min(c, len(frame)) for c in cuts} | {0, len(frame)})
    device = FnConnection(Role.DEVICE)
    for start, end in itertools.pairwise(points):
        assert device.next_event() is NEED_DATA
        device.receive_data(frame[start:end])
    assert device.next_event() == command
    assert device.next_event() is NEED_DATA
    assert device.buffered == 0


def test_garbage_is_refused_after_three_bytes_at_most() -> None:
    for garbage in (b"\x00", b"\x04\x00\x00", b"\x04\xff\xff", b"\x04\x02\x04"):
        device = FnConnection(Role.DEVICE)
        device.receive_data(garbage)
        with pytest.raises(FnError):
            device.next_event()
        assert device.state is fn.State.ERROR
        with pytest.raises(FnError):
            device.next_event()  # an error is final


def test_more_than_two_maximal_frames_unread_is_refused() -> None:
    device = FnConnection(Role.DEVICE)
    frame = fn.SendDocumentData(bytes(MAX_DATA)).encode()
    assert len(frame) == fn.MAX_FRAME == 1030
    device.receive_data(frame)
    device.receive_data(frame)
    assert device.buffered == MAX_BUFFER
    with pytest.raises(FnError):
        device.receive_data(b"\x04")
    assert device.state is fn.State.ERROR


def test_limits_are_enforced_when_building() -> None:
    with pytest.raises(FnError):
        encode_frame(0x07, bytes(MAX_DATA + 1))
    with pytest.raises(FnError):
        fn.SendDocumentData(bytes(MAX_DATA + 1))
    with pytest.raises(FnError):
        fn.FinishReceipt(datetime(2024, 1, 1, 10, 0, 30), 1, 100)  # seconds do not travel
    with pytest.raises(FnError):
        fn.FinishReceipt(datetime(2024, 1, 1, 10, 0), 5, 100)  # no operation type 5
    with pytest.raises(FnError):
        fn.FinishReceipt(datetime(2024, 1, 1, 10, 0), 1, 1 << 40)  # total beyond Uint40
    with pytest.raises(FnError):
        fn.FinishRegistration(datetime(2024, 1, 1), "1234567890123", "1", 1, 0)  # INN of 13
    with pytest.raises(FnError):
        fn.FnNumber("€" * 16)  # not CP866
    with pytest.raises(FnError):
        Failure(0)
    assert fn.FinishRegistration(datetime(2024, 1, 1), "7707083893", "1", 1, 0).inn == (
        "7707083893  "
    )
