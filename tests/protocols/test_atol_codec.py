"""Round trips and fuzzing of every ATOL codec: framing, task buffer, application commands."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.atol import (
    NEED_DATA,
    REQUESTS,
    AbortTasks,
    AckAddTask,
    AckTask,
    AddTask,
    AtolError,
    CommandAnswer,
    DeviceConnection,
    DeviceStatus,
    DocumentData,
    DocumentInfo,
    GetDeviceStatus,
    GetDocumentInfo,
    GetOfdExchangeStatus,
    GetShiftState,
    HostConnection,
    OfdExchangeFlags,
    OfdExchangeStatus,
    Payment,
    PaymentAnswer,
    PaymentType,
    ReadDocumentData,
    ReceiptType,
    RegisterItem,
    ReqTask,
    Request,
    ShiftState,
    Status,
    StatusFlags,
    TaskFlags,
    decode_answer,
    decode_packet,
    decode_request,
    encode_packet,
)
from protocols.atol.commands import (
    CORRECTION_TYPES,
    MAX_REQUISITE_BLOCK,
    AcceptMarkingCode,
    BeginMarkingCheck,
    CancelReceipt,
    CloseReceipt,
    CloseShift,
    DeclineMarkingCode,
    EnterMode,
    ErrorCode,
    ExitMode,
    FnExpiry,
    FnStatus,
    GetFnExpiry,
    GetFnStatus,
    GetMarkingCheckStatus,
    MarkingCheckPending,
    MarkingCheckResult,
    MarkingDecision,
    OpenReceipt,
    OpenShift,
    WriteRequisite,
    decode_bcd,
    encode_bcd,
)
from protocols.atol.taskbuffer import (
    AsyncResult,
    BufferErrorCode,
    BufferRefusal,
    TaskStatusReply,
    decode_device_message,
    decode_host_message,
)
from protocols.atol.transport import (
    ASYNC_PACKET_ID,
    MAX_FRAME_SIZE,
    BadFrame,
    FrameReader,
    Packet,
    decode_v2_frame,
    encode_v2_frame,
    stuff,
    unstuff,
)

FUZZ = settings(max_examples=300, deadline=None)
ROUND_TRIP = settings(max_examples=100, deadline=None)

# Bytes that matter to the framing turn up often.
wire_bytes = st.lists(
    st.sampled_from([0xFE, 0xFD, 0xEE, 0xED, 0x02, 0x03, 0x10, 0x00, 0x7F, 0xF0])
    | st.integers(0, 255),
    max_size=80,
).map(bytes)
packet_ids = st.integers(0, 0xDF) | st.just(ASYNC_PACKET_ID)
tids = st.integers(0, 0xDF)
byte = st.integers(0, 255)
CP866 = bytes(range(256)).decode("cp866")
cp866_text = st.text(alphabet=CP866, max_size=40)
names = st.text(alphabet=CP866.replace("\x00", ""), max_size=64)
# Quantities with up to three decimals, written with any exponent.
quantities = st.integers(0, 10**10 - 1).map(lambda n: Decimal(n).scaleb(-3)) | st.integers(
    0, 9_999_999
).map(Decimal)


def bcd(width: int) -> st.SearchStrategy[int]:
    return st.integers(0, 100**width - 1)


def clocks(last_year: int, *, seconds: bool) -> st.SearchStrategy[datetime]:
    moments = st.datetimes(datetime(2000, 1, 1), datetime(last_year, 12, 31, 23, 59, 59))
    return moments.map(lambda d: d.replace(microsecond=0, second=d.second if seconds else 0))


REQUEST_STRATEGIES: dict[type[Request], st.SearchStrategy[Any]] = {
    GetDeviceStatus: st.builds(GetDeviceStatus, password=bcd(2)),
    EnterMode: st.builds(EnterMode, password=bcd(2), mode=byte, mode_password=bcd(4)),
    ExitMode: st.builds(ExitMode, password=bcd(2)),
    OpenShift: st.builds(OpenShift, password=bcd(2), flags=byte, text=cp866_text),
    CloseShift: st.builds(CloseShift, password=bcd(2)),
    OpenReceipt: st.builds(
        OpenReceipt, password=bcd(2), flags=byte, receipt_type=st.sampled_from(ReceiptType)
    ),
    RegisterItem: st.builds(
        RegisterItem,
        password=bcd(2),
        flags=byte,
        name=names,
        price=bcd(6),
        quantity=quantities,
        discount_type=byte,
        surcharge=st.booleans(),
        discount=bcd(6),
        tax=byte,
        department=byte,
        reserved=st.binary(min_size=17, max_size=17),
    ),
    Payment: st.builds(
        Payment,
        password=bcd(2),
        flags=byte,
        payment_type=st.sampled_from(PaymentType),
        amount=bcd(5),
    ),
    CloseReceipt: st.builds(
        CloseReceipt,
        password=bcd(2),
        flags=byte,
        payment_type=st.sampled_from(PaymentType),
        amount=bcd(5),
    ),
    CancelReceipt: st.builds(CancelReceipt, password=bcd(2)),
    GetShiftState: st.builds(GetShiftState, password=bcd(2)),
    GetOfdExchangeStatus: st.builds(GetOfdExchangeStatus, password=bcd(2)),
    GetDocumentInfo: st.builds(GetDocumentInfo, password=bcd(2), number=st.integers(0, 2**32 - 1)),
    ReadDocumentData: st.builds(ReadDocumentData, password=bcd(2)),
    GetFnStatus: st.builds(GetFnStatus, password=bcd(2)),
    GetFnExpiry: st.builds(GetFnExpiry, password=bcd(2)),
    WriteRequisite: st.integers(1, 255).flatmap(
        lambda count: st.builds(
            WriteRequisite,
            password=bcd(2),
            flags=byte,
            block_count=st.just(count),
            block_number=st.integers(0, count - 1),
            data=st.binary(min_size=1, max_size=80),
        )
    ),
    BeginMarkingCheck: st.builds(
        BeginMarkingCheck,
        password=bcd(2),
        planned_status=byte,
        processing_mode=byte,
        marking_code=st.binary(max_size=255),
        tlv=st.binary(max_size=60),
    ),
    GetMarkingCheckStatus: st.builds(GetMarkingCheckStatus, password=bcd(2)),
    AcceptMarkingCode: st.builds(AcceptMarkingCode, password=bcd(2)),
    DeclineMarkingCode: st.builds(DeclineMarkingCode, password=bcd(2)),
}

failed = st.builds(CommandAnswer, error=st.integers(1, 255), extended=byte)
command_answers = st.builds(CommandAnswer, error=byte, extended=byte)
device_statuses = st.builds(
    DeviceStatus,
    cashier=bcd(1),
    number_in_hall=byte,
    clock=clocks(2099, seconds=True),
    flags=byte.map(StatusFlags),
    serial_number=bcd(4),
    model=byte,
    reserved=st.binary(min_size=2, max_size=2),
    mode=st.integers(0, 15),
    submode=st.integers(0, 15),
    receipt_number=bcd(2),
    shift_number=bcd(2),
    receipt_state=byte,
    receipt_total=bcd(5),
    decimal_places=byte,
    port=byte,
)
payment_answers = st.builds(
    PaymentAnswer, error=byte, extended=byte, remainder=bcd(5), change=bcd(5)
)
shift_states = st.builds(
    ShiftState,
    shift_open=st.booleans(),
    shift_number=st.integers(0, 0xFFFF),
    receipt_number=st.integers(0, 0xFFFF),
)
ofd_statuses = st.builds(
    OfdExchangeStatus,
    flags=byte.map(OfdExchangeFlags),
    reading_message=st.booleans(),
    unsent_count=st.integers(0, 0xFFFF),
    first_unsent_number=st.integers(0, 2**32 - 1),
    first_unsent_time=st.none() | clocks(2255, seconds=False),
)
document_infos = st.builds(
    DocumentInfo, document_type=st.integers(0, 0xFFFF), size=st.integers(0, 0xFFFF)
)
document_data = st.builds(DocumentData, tlv=st.binary(max_size=200))
fn_statuses = st.builds(
    FnStatus,
    phase=byte,
    current_document=byte,
    document_data=st.booleans(),
    shift_open=st.booleans(),
    warnings=byte,
    last_document_time=st.none() | clocks(2255, seconds=False),
    fn_number=st.text(alphabet="0123456789", min_size=16, max_size=16),
    last_fd_number=st.integers(0, 2**32 - 1),
)
fn_expiries = st.builds(
    FnExpiry,
    expires=st.dates(date(2000, 1, 1), date(2255, 12, 31)),
    registrations_left=byte,
    registrations_done=byte,
)
marking_results = st.builds(
    MarkingCheckResult,
    local_status=byte,
    local_reason=byte,
    code_type=byte,
    check_result=byte,
    online=st.binary(max_size=255),
)
marking_pending = st.just(MarkingCheckPending())
marking_decisions = st.builds(MarkingDecision, check_result=byte)

#: Each request class with the answers it can get: its own, or a failure.
ANSWERS: dict[type[Request], st.SearchStrategy[Any]] = {
    cls: command_answers for cls in REQUEST_STRATEGIES
} | {
    GetDeviceStatus: device_statuses | command_answers,
    Payment: payment_answers | command_answers,
    GetShiftState: shift_states | failed,
    GetOfdExchangeStatus: ofd_statuses | failed,
    GetDocumentInfo: document_infos | failed,
    ReadDocumentData: document_data | failed,
    GetFnStatus: fn_statuses | failed,
    GetFnExpiry: fn_expiries | failed,
    GetMarkingCheckStatus: marking_pending | marking_results | failed,
    AcceptMarkingCode: marking_decisions | failed,
    DeclineMarkingCode: marking_decisions | failed,
}
ANSWER_CLASSES: list[tuple[Any, st.SearchStrategy[Any]]] = [
    (CommandAnswer, command_answers),
    (PaymentAnswer, payment_answers),
    (DeviceStatus, device_statuses),
    (ShiftState, shift_states),
    (OfdExchangeStatus, ofd_statuses),
    (DocumentInfo, document_infos),
    (DocumentData, document_data),
    (FnStatus, fn_statuses),
    (FnExpiry, fn_expiries),
    (MarkingCheckPending, marking_pending),
    (MarkingCheckResult, marking_results),
    (MarkingDecision, marking_decisions),
]

host_messages = st.one_of(
    st.builds(
        AddTask, tid=tids, request=st.binary(max_size=60), flags=st.integers(0, 7).map(TaskFlags)
    ),
    st.builds(
        AckAddTask, tid=tids, request=st.binary(max_size=60), flags=st.integers(0, 7).map(TaskFlags)
    ),
    st.builds(AckTask, tid=tids),
    st.builds(ReqTask, tid=tids),
    st.just(AbortTasks()),
)
device_messages = st.one_of(
    st.builds(
        TaskStatusReply,
        status=st.sampled_from(
            [Status.PENDING, Status.IN_PROGRESS, Status.STOPPED, Status.WAITING]
        ),
    ),
    st.builds(
        TaskStatusReply,
        status=st.sampled_from([Status.RESULT, Status.ERROR]),
        answer=st.binary(max_size=60),
    ),
    st.builds(AsyncResult, tid=tids, answer=st.binary(max_size=60), error=st.booleans()),
    st.builds(
        BufferRefusal,
        code=st.sampled_from(
            [BufferErrorCode.OVERFLOW, BufferErrorCode.ALREADY_EXISTS, BufferErrorCode.NOT_FOUND]
        ),
    ),
    st.builds(BufferRefusal, code=st.just(BufferErrorCode.ILLEGAL_VALUE), param_index=byte),
)


@st.composite
def mutated(draw: st.DrawFn, valid: st.SearchStrategy[bytes]) -> bytes:
    """A valid encoding with bytes replaced, inserted, or cut off: noise near the real thing."""
    data = bytearray(draw(valid))
    for _ in range(draw(st.integers(0, 3))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["replace", "insert", "cut"]))
        if action == "insert" or (action == "replace" and position == len(data)):
            data.insert(position, draw(byte))
        elif action == "replace":
            data[position] = draw(byte)
        else:
            del data[position:]
    return bytes(data)


def parses_or_raises_atol_error(decoder: Callable[[bytes], object], data: bytes) -> None:
    try:
        decoder(data)
    except AtolError as exc:
        assert exc.reason


# Framing ------------------------------------------------------------------------------


@ROUND_TRIP
@given(packet_id=packet_ids, data=wire_bytes)
def test_packet_round_trip(packet_id: int, data: bytes) -> None:
    frame = encode_packet(packet_id, data)
    assert 0xFE not in frame[1:]  # STX only ever starts a frame
    assert decode_packet(frame) == Packet(packet_id=packet_id, data=data)
    assert unstuff(stuff(data)) == data


@ROUND_TRIP
@given(data=wire_bytes)
def test_v2_frame_round_trip(data: bytes) -> None:
    assert decode_v2_frame(encode_v2_frame(data)) == data


def feed_in_pieces(stream: bytes, cuts: list[int]) -> list[Packet | BadFrame]:
    reader = FrameReader()
    items: list[Packet | BadFrame] = []
    bounds = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    for start, end in itertools.pairwise(bounds):
        items += reader.feed(stream[start:end])
        assert reader.buffered_bytes <= MAX_FRAME_SIZE
    return items


@FUZZ
@given(
    chunks=st.lists(st.tuples(st.tuples(packet_ids, wire_bytes), wire_bytes), max_size=6),
    cuts=st.lists(st.integers(0, 2000), max_size=12),
)
def test_frame_reader_reads_the_same_whole_or_in_pieces(
    chunks: list[tuple[tuple[int, bytes], bytes]], cuts: list[int]
) -> None:
    frames = [encode_packet(packet_id, data) for (packet_id, data), _ in chunks]
    noisy = b"".join(frame + noise for frame, (_, noise) in zip(frames, chunks, strict=True))
    assert feed_in_pieces(noisy, cuts) == FrameReader().feed(noisy)
    # Noise without an STX in it costs nothing: every frame comes out intact.
    quiet = b"".join(
        frame + noise.replace(b"\xfe", b"")
        for frame, (_, noise) in zip(frames, chunks, strict=True)
    )
    expected = [Packet(packet_id=packet_id, data=data) for (packet_id, data), _ in chunks]
    assert feed_in_pieces(quiet, cuts) == expected


def test_frame_reader_buffers_at_most_one_frame() -> None:
    reader = FrameReader(max_data_length=64)
    cap = 4 + 2 * 65
    assert reader.feed(b"\x00" * 10_000) == []
    assert reader.buffered_bytes == 0
    header = b"\xfe\x40\x00\x01"  # 64 data bytes announced
    assert reader.feed(header + b"\xfd\xee" * 40) == []
    assert reader.buffered_bytes <= cap
    out = reader.feed(b"\xfd\xee" * 25)  # 65 unstuffed bytes: the frame ends, CRC wrong
    assert [type(item) for item in out] == [BadFrame]
    assert reader.buffered_bytes <= cap
    too_long = reader.feed(b"\xfe\x41\x00\x02")  # 65 announced, the limit is 64
    assert too_long == [BadFrame(2, "LEN 65 above the limit")]


@FUZZ
@given(data=st.binary(max_size=120) | wire_bytes)
def test_frame_decoders_parse_or_raise_their_own_error(data: bytes) -> None:
    parses_or_raises_atol_error(decode_packet, b"\xfe" + data)
    parses_or_raises_atol_error(decode_packet, data)
    parses_or_raises_atol_error(unstuff, data)
    parses_or_raises_atol_error(decode_v2_frame, b"\x02" + data)
    parses_or_raises_atol_error(decode_v2_frame, data)
    reader = FrameReader()
    for item in reader.feed(data):
        assert isinstance(item, Packet | BadFrame)
    assert reader.buffered_bytes <= MAX_FRAME_SIZE


# Task buffer --------------------------------------------------------------------------


@ROUND_TRIP
@given(message=host_messages)
def test_host_message_round_trip(message: Any) -> None:
    assert decode_host_message(message.encode()) == message


@ROUND_TRIP
@given(message=device_messages)
def test_device_message_round_trip(message: Any) -> None:
    assert decode_device_message(message.encode()) == message


@FUZZ
@given(
    data=st.binary(max_size=40)
    | mutated(host_messages.map(lambda m: m.encode()))
    | mutated(device_messages.map(lambda m: m.encode()))
)
def test_task_buffer_decoders_parse_or_raise_their_own_error(data: bytes) -> None:
    parses_or_raises_atol_error(decode_host_message, data)
    parses_or_raises_atol_error(decode_device_message, data)


# Application commands -----------------------------------------------------------------


def test_every_registered_request_has_a_strategy() -> None:
    assert set(REQUEST_STRATEGIES) == set(REQUESTS.values())


@pytest.mark.parametrize("cls", list(REQUEST_STRATEGIES), ids=lambda c: c.__name__)
@ROUND_TRIP
@given(data=st.data())
def test_request_round_trip(cls: type[Request], data: st.DataObject) -> None:
    request = data.draw(REQUEST_STRATEGIES[cls])
    wire = request.encode()
    assert cls.decode(wire) == request
    assert decode_request(wire) == request
    answer = data.draw(ANSWERS[cls])
    assert decode_answer(cls, answer.encode()) == answer
    assert decode_answer(request, answer.encode()) == answer


@pytest.mark.parametrize("cls,answers", ANSWER_CLASSES, ids=lambda c: getattr(c, "__name__", ""))
@ROUND_TRIP
@given(data=st.data())
def test_answer_round_trip(cls: Any, answers: st.SearchStrategy[Any], data: st.DataObject) -> None:
    answer = data.draw(answers)
    assert cls.decode(answer.encode()) == answer


all_requests = st.one_of(*REQUEST_STRATEGIES.values())
all_answers = st.one_of(*(answers for _, answers in ANSWER_CLASSES))


@FUZZ
@given(
    data=st.binary(max_size=120)
    | mutated(all_requests.map(lambda r: r.encode()))
    | mutated(all_answers.map(lambda a: a.encode()))
)
def test_command_decoders_parse_or_raise_their_own_error(data: bytes) -> None:
    parses_or_raises_atol_error(decode_request, data)
    for cls in REQUESTS.values():
        parses_or_raises_atol_error(cls.decode, data)
        parses_or_raises_atol_error(cls.decode_answer, data)
    for answer_cls, _ in ANSWER_CLASSES:
        parses_or_raises_atol_error(answer_cls.decode, data)
    parses_or_raises_atol_error(lambda raw: decode_bcd(raw, "x"), data)


def test_money_and_text_are_strict() -> None:
    with pytest.raises(AtolError, match="not an integer"):
        Payment(payment_type=PaymentType.CASH, amount=1.5)  # type: ignore[arg-type]
    with pytest.raises(AtolError, match="not an integer"):
        Payment(payment_type=PaymentType.CASH, amount=True)
    with pytest.raises(AtolError, match=r"steps of 0\.001"):
        RegisterItem(name="x", price=1, quantity=Decimal("0.0001"))
    with pytest.raises(AtolError, match="finite Decimal"):
        RegisterItem(name="x", price=1, quantity=1.0)  # type: ignore[arg-type]
    with pytest.raises(AtolError, match="CP866") as caught:
        RegisterItem(name="Кофе €", price=1, quantity=Decimal(1))
    assert caught.value.path == "name"
    with pytest.raises(AtolError, match="at most 64"):
        RegisterItem(name="я" * 65, price=1, quantity=Decimal(1))
    with pytest.raises(AtolError, match="BCD"):
        decode_bcd(b"\x1a", "price")
    assert encode_bcd(123456, 3) == b"\x12\x34\x56"


def test_register_item_layout_matches_s6() -> None:
    item = RegisterItem(
        name="Test", price=1000, quantity=Decimal("1.000"), tax=2, department=3, discount=5
    )
    wire = item.encode()
    assert wire[:4] == b"\x00\x00\xe6\x00"
    assert len(wire) == 2 + 104  # password, then S6's 104-byte message
    assert wire[4:8] == b"Test" and wire[8:68] == bytes(60)
    assert wire[68:74] == encode_bcd(1000, 6)
    assert wire[74:79] == b"\x00\x00\x00\x10\x00"  # 1.000 as 1000 thousandths
    assert wire[79:81] == b"\x01\x00"  # an amount, a discount
    assert wire[81:87] == encode_bcd(5, 6)
    assert wire[87:89] == b"\x02\x03"


# Connections: any bytes are read or refused with AtolError, and nothing piles up ------------


host_stream = st.lists(
    st.binary(max_size=30)
    | mutated(
        st.tuples(st.integers(0, 3), device_messages).map(
            lambda p: encode_packet(p[0], p[1].encode())
        )
    )
    | st.tuples(tids, st.binary(max_size=8)).map(
        lambda p: encode_packet(ASYNC_PACKET_ID, bytes((0xA6, p[0])) + p[1])
    ),
    max_size=10,
)
device_stream = st.lists(
    st.binary(max_size=30)
    | mutated(
        st.tuples(st.integers(0, 3), host_messages).map(
            lambda p: encode_packet(p[0], p[1].encode())
        )
    ),
    max_size=10,
)


@FUZZ
@given(chunks=host_stream, tid=tids)
def test_host_receive_data_reads_or_raises_atol_error(chunks: list[bytes], tid: int) -> None:
    host = HostConnection(first_packet_id=1, max_data_length=64)
    host.send(AddTask(tid=tid, request=GetDeviceStatus().encode()))
    try:
        for chunk in chunks:
            host.receive_data(chunk)
            while host.next_event() is not NEED_DATA:
                pass
            host.data_to_send()
            assert host.buffered_bytes <= 4 + 2 * 65
    except AtolError as exc:
        assert exc.reason
        with pytest.raises(AtolError, match="broken"):
            host.receive_data(b"")


@FUZZ
@given(chunks=device_stream)
def test_device_receive_data_never_raises(chunks: list[bytes]) -> None:
    device = DeviceConnection(capacity=4, max_data_length=64)
    for chunk in chunks:
        device.receive_data(chunk)
        while device.next_event() is not NEED_DATA:
            pass
        for item in FrameReader().feed(device.data_to_send()):
            assert isinstance(item, Packet)  # the register only ever writes good frames
            if item.data:
                decode_device_message(item.data)
        assert device.buffered_bytes <= 4 + 2 * 65


# Commands the driver needs beyond S6: correction receipts, E8h requisites, A4 30 ----------------


def test_correction_receipt_types() -> None:
    """92h types 7…10 open correction receipts, numbered as libfptr10's LIBFPTR_RT_*."""
    assert [int(t) for t in sorted(CORRECTION_TYPES)] == [7, 8, 9, 10]
    assert OpenReceipt(receipt_type=ReceiptType.CORRECTION_PURCHASE).encode() == bytes.fromhex(
        "0000920009"
    )
    assert decode_request(bytes.fromhex("000092000a")) == OpenReceipt(
        receipt_type=ReceiptType.CORRECTION_PURCHASE_RETURN
    )
    with pytest.raises(AtolError, match="not a known ReceiptType") as caught:
        decode_request(bytes.fromhex("0000920006"))
    assert caught.value.path == "receipt_type"


def test_write_requisite_layout() -> None:
    tlv = bytes.fromhex("be040100") + b"\x04"  # 1214 = 4
    item = WriteRequisite(flags=0x01, data=tlv)
    assert item.encode() == bytes.fromhex("0000e8010100") + tlv
    assert item.for_item and not WriteRequisite(data=tlv).for_item
    block = WriteRequisite(block_count=3, block_number=2, data=b"\x01")
    assert decode_request(block.encode()) == block
    with pytest.raises(AtolError, match="blocks run") as caught:
        WriteRequisite(block_count=2, block_number=2, data=b"\x01")
    assert caught.value.path == "block_number"
    with pytest.raises(AtolError, match="blocks run"):
        decode_request(bytes.fromhex("0000e800000001"))  # a block count of 0
    with pytest.raises(AtolError, match="1…1024 bytes") as caught:
        WriteRequisite(data=bytes(MAX_REQUISITE_BLOCK + 1))
    assert caught.value.path == "data"
    with pytest.raises(AtolError, match="flags, block count"):
        decode_request(bytes.fromhex("0000e8000100"))  # no data


def test_fn_status_layout() -> None:
    """A4 30: the ФН's 30h answer after 55 00, numbers little-endian."""
    status = FnStatus(
        phase=3,
        current_document=0x04,
        document_data=True,
        shift_open=True,
        warnings=0x02,
        last_document_time=datetime(2026, 3, 2, 8, 15),
        fn_number="9999000000000001",
        last_fd_number=0x01020304,
    )
    wire = status.encode()
    head = bytes.fromhex("5500 03 04 01 01 02 1a0302080f")  # phase … warnings, YY MM DD hh mm
    assert wire == head + b"9999000000000001" + bytes.fromhex("04030201")
    assert decode_answer(GetFnStatus(), wire) == status
    assert decode_answer(GetFnStatus(), bytes.fromhex("55d006")) == CommandAnswer(
        error=ErrorCode.FN_ERROR, extended=6
    )
    with pytest.raises(AtolError, match="ASCII") as caught:
        FnStatus.decode(wire[:12] + "ФН".encode("cp866") + wire[14:])
    assert caught.value.path == "fn_number"


def test_marking_check_layouts() -> None:
    """D1h…D4h are Kassa's assumption (the module says so); their bytes must not drift."""
    code = b"010460123456789321SERIAL\x1d91EE07\x1d92" + b"A" * 44
    begin = BeginMarkingCheck(planned_status=1, marking_code=code, tlv=bytes.fromhex("3c08010000"))
    wire = begin.encode()
    assert wire == bytes.fromhex("0000d1 01 00") + bytes((len(code),)) + code + wire[-5:]
    assert decode_request(wire) == begin
    assert decode_answer(begin, bytes.fromhex("550000")) == CommandAnswer()
    with pytest.raises(AtolError, match="code's length"):
        decode_request(bytes.fromhex("0000d1010005") + b"0104")  # the code is cut short

    status = GetMarkingCheckStatus()
    assert status.encode() == bytes.fromhex("0000d2")
    assert decode_answer(status, bytes.fromhex("550000")) == MarkingCheckPending()
    done = MarkingCheckResult(
        local_status=3, local_reason=0, code_type=4, check_result=0x0F, online=b"\x00\xaa"
    )
    assert done.encode() == bytes.fromhex("5500 01 03 00 04 0f 02 00aa")
    assert decode_answer(status, done.encode()) == done
    assert (done.online_code, done.server_tlv) == (0, b"\xaa")
    late = MarkingCheckResult(
        local_status=3, local_reason=0, code_type=4, check_result=0x13, online=b"\xff"
    )
    assert (late.online_code, late.server_tlv) == (0xFF, b"")
    offline = attrs.evolve(late, online=b"")
    assert offline.online_code is None and offline.encode().endswith(b"\x00")
    refused = decode_answer(status, bytes.fromhex("55d0a1"))
    assert refused == CommandAnswer(error=ErrorCode.FN_ERROR, extended=0xA1)
    with pytest.raises(AtolError, match="online"):
        MarkingCheckResult.decode(done.encode()[:-1])

    for decision in (AcceptMarkingCode(), DeclineMarkingCode()):
        assert decision.encode()[2:] in (b"\xd3", b"\xd4")
        assert decode_answer(decision, bytes.fromhex("55000f")) == MarkingDecision(check_result=15)
        assert decode_answer(decision, bytes.fromhex("55d0a1")) == refused


def test_marking_codes_collide_with_no_other_command() -> None:
    marking = {b"\xd1", b"\xd2", b"\xd3", b"\xd4"}
    others = set(REQUESTS) - marking
    assert marking <= set(REQUESTS)
    assert not any(code[:1] in marking for code in others)
    # The reference's command table (registers.md §2.3) and atol4j's T5 list (§2.4).
    reference = bytes.fromhex("3f 45 48 56 4c 6c 73 75 80 85 88 8e 8f 91 92 95 97 99 9a 9b 9d")
    reference += bytes.fromhex("a5 b3 b8 c1 ce e6 ea eb 4a 59 5a 43 49 4f 64 ed 6b 71 77 8d a7 a6")
    reference += bytes.fromhex("a8 ab a4 e8")
    assert not marking & {bytes((b,)) for b in reference}
