"""Shtrih-M commands and answers: round trips for every class, decoders under garbage, tables.

Values are drawn from each field's declared wire codec, so a new command class is covered as
soon as it is in the registry.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.shtrih import REGISTRY, ShtrihError, decode_answer, decode_request
from protocols.shtrih.codes import (
    ERROR_TEXTS,
    MODE_TEXTS,
    SUBMODE_TEXTS,
    ErrorCode,
    MarkingDecision,
    Mode,
    Submode,
    describe_error,
    split_mode,
)
from protocols.shtrih.commands import (
    AcceptMarking,
    AcceptMarkingAnswer,
    Answer,
    BeginCorrectionReceipt,
    BeginCorrectionReceiptAnswer,
    BindMarkingAnswer,
    CheckMarking,
    CheckMarkingAnswer,
    CloseReceiptV2Answer,
    ErrorAnswer,
    FindDocumentAnswer,
    FullStatusAnswer,
    OperationV2,
    Request,
    Sale,
    ShortStatus,
    code_bytes,
    command_code,
    layout,
)
from protocols.shtrih.link_v1 import encode_frame, parse_frame
from protocols.shtrih.wire import (
    Ascii,
    AutoMoney,
    Blob8,
    DateDMY,
    DateYMD,
    FnDateTime,
    Opt,
    Raw,
    Repeat,
    Scaled,
    SInt,
    Tail,
    Text,
    TimeHMS,
    UInt,
    WireField,
)
from protocols.tlv import decode

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: Every character Windows-1251 can carry except NUL (which pads legacy text fields).
CP1251 = "".join(
    bytes((b,)).decode("cp1251") for b in range(1, 256) if b != 0x98
)  # 0x98 is unassigned in cp1251

DATES = st.dates(dt.date(2000, 1, 1), dt.date(2099, 12, 31))


def values(codec: WireField[Any]) -> st.SearchStrategy[Any]:
    """Valid values of one wire codec."""
    if isinstance(codec, UInt):
        return st.integers(0, codec.max)
    if isinstance(codec, SInt):
        return st.integers(codec.low, codec.high)
    if isinstance(codec, AutoMoney):
        return st.none() | st.integers(0, (1 << 40) - 2)
    if isinstance(codec, Scaled):
        scale = codec.scale
        return st.integers(0, codec.max).map(lambda units: Decimal(units).scaleb(-scale))
    if isinstance(codec, Text):
        limit = codec.max_bytes if codec.max_bytes is not None else 60
        return st.text(alphabet=CP1251, max_size=limit)
    if isinstance(codec, Ascii):
        return st.text(st.characters(max_codepoint=127), min_size=codec.size, max_size=codec.size)
    if isinstance(codec, Raw):
        return st.binary(min_size=codec.size, max_size=codec.size)
    if isinstance(codec, Tail):
        return st.binary(max_size=min(codec.max_bytes or 80, 80))
    if isinstance(codec, Blob8):
        return st.binary(max_size=255)
    if isinstance(codec, Repeat):
        return st.tuples(*[values(codec.item)] * codec.count)
    if isinstance(codec, Opt):
        return st.none() | values(codec.item)
    if isinstance(codec, DateDMY):
        return st.none() | DATES
    if isinstance(codec, DateYMD):
        return DATES
    if isinstance(codec, TimeHMS):
        return st.times().map(lambda t: t.replace(microsecond=0))
    if isinstance(codec, FnDateTime):
        stamps = st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2099, 12, 31, 23, 59)).map(
            lambda d: d.replace(second=0, microsecond=0)
        )
        return (st.none() | stamps) if codec.nullable else stamps
    raise AssertionError(f"no strategy for {codec!r}")


def _absent(codec: WireField[Any]) -> Any:
    return None if isinstance(codec, Opt) else (b"" if isinstance(codec, Tail) else "")


def instances(cls: type[Request] | type[Answer]) -> st.SearchStrategy[Any]:
    """Instances of a request or answer class that respect "nothing after an absent field"."""
    pairs = layout(cls)

    def build(drawn: tuple[Any, ...]) -> Any:
        fields: dict[str, Any] = {}
        gone = False
        for (name, codec), value in zip(pairs, drawn, strict=True):
            fields[name] = _absent(codec) if gone and codec.trailing else value
            gone = gone or (codec.trailing and codec.is_absent(fields[name]))
        return cls(**fields)

    return st.tuples(*(values(codec) for _, codec in pairs)).map(build)


REQUESTS = [spec.request for spec in REGISTRY.values()]
ANSWERS = [spec.answer for spec in REGISTRY.values()]


@pytest.mark.parametrize("cls", REQUESTS, ids=lambda c: c.__name__)
@SETTINGS
@given(data=st.data())
def test_every_request_round_trips(cls: type[Request], data: st.DataObject) -> None:
    request = data.draw(instances(cls))
    payload = request.encode()
    assert payload.startswith(code_bytes(cls.CODE))
    assert cls.decode(payload) == request
    assert decode_request(payload) == request


@pytest.mark.parametrize("cls", ANSWERS, ids=lambda c: c.__name__)
@SETTINGS
@given(data=st.data())
def test_every_answer_round_trips(cls: type[Answer], data: st.DataObject) -> None:
    answer = data.draw(instances(cls))
    payload = answer.encode()
    assert payload[len(code_bytes(cls.CODE))] == 0
    assert cls.decode(payload) == answer
    assert decode_answer(payload) == answer


@SETTINGS
@given(
    code=st.sampled_from(sorted(REGISTRY)),
    error=st.integers(1, 255),
    extra=st.binary(max_size=4),
)
def test_error_answers_round_trip_for_every_command(code: int, error: int, extra: bytes) -> None:
    answer = ErrorAnswer(code=code, error=error, extra=extra)
    payload = answer.encode()
    assert payload == code_bytes(code) + bytes((error,)) + extra
    assert decode_answer(payload) == answer
    assert REGISTRY[code].answer.decode(payload) == answer
    assert ErrorAnswer.decode(payload) == answer


def _parses_or_raises(decoder: Callable[[bytes], Any], data: bytes) -> None:
    """The invariant of every decoder: a value (which encodes back stably) or ShtrihError."""
    try:
        decoded = decoder(data)
    except ShtrihError:
        return
    if hasattr(decoded, "encode"):
        assert decoder(decoded.encode()) == decoded


DECODERS: list[Callable[[bytes], Any]] = [
    decode_request,
    decode_answer,
    command_code,
    ErrorAnswer.decode,
    *(cls.decode for cls in REQUESTS),
    *(cls.decode for cls in ANSWERS),
]


def _payloads() -> st.SearchStrategy[bytes]:
    """Garbage, and garbage behind every known command code and error byte."""
    codes = st.sampled_from(sorted(REGISTRY)).map(code_bytes)
    tails = st.binary(max_size=300)
    return (
        tails
        | st.tuples(codes, tails).map(lambda t: t[0] + t[1])
        | st.tuples(codes, st.sampled_from([b"\x00", b"\x4f"]), tails).map(
            lambda t: t[0] + t[1] + t[2]
        )
    )


@settings(max_examples=300, deadline=None)
@given(data=_payloads())
def test_decoders_parse_or_raise_their_own_error(data: bytes) -> None:
    for decoder in DECODERS:
        _parses_or_raises(decoder, data)


@pytest.mark.parametrize("cls", [*REQUESTS, *ANSWERS], ids=lambda c: c.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_truncated_and_extended_payloads_raise_shtrih_error_or_parse(
    cls: type[Request] | type[Answer], data: st.DataObject
) -> None:
    payload = data.draw(instances(cls)).encode()
    cut = data.draw(st.integers(0, len(payload)))
    _parses_or_raises(cls.decode, payload[:cut])
    _parses_or_raises(cls.decode, payload + data.draw(st.binary(min_size=1, max_size=8)))


def test_non_bytes_payload_is_a_shtrih_error() -> None:
    with pytest.raises(ShtrihError):
        ShortStatus.decode("1e000000")  # type: ignore[arg-type]


def test_unknown_command_is_a_shtrih_error() -> None:
    with pytest.raises(ShtrihError, match="unknown command 77h"):
        decode_request(b"\x77\x1e\x00\x00\x00")
    with pytest.raises(ShtrihError, match="unknown command FF99h"):
        decode_answer(b"\xff\x99\x00")


def test_text_outside_cp1251_names_the_field() -> None:
    sale = Sale(
        password=1,
        quantity=Decimal("1"),
        price=100,
        department=1,
        taxes=(0, 0, 0, 0),
        text="Кофе ☕",
    )
    with pytest.raises(ShtrihError) as caught:
        sale.encode()
    assert caught.value.path == "text"
    assert "☕" in caught.value.reason


def test_quantity_is_never_rounded() -> None:
    line = OperationV2(
        password=30,
        operation=1,
        quantity=Decimal("0.0000001"),
        price=100,
        tax_rate=8,
        department=1,
        payment_method=4,
        payment_object=1,
    )
    with pytest.raises(ShtrihError, match="more than 6 decimal places"):
        line.encode()
    legacy = Sale(
        password=1, quantity=Decimal("1.0005"), price=1, department=1, taxes=(0,) * 4, text=""
    )
    with pytest.raises(ShtrihError, match="more than 3 decimal places"):
        legacy.encode()


def test_money_must_be_an_int_in_range() -> None:
    too_big = Sale(
        password=1, quantity=Decimal(1), price=1 << 40, department=1, taxes=(0,) * 4, text=""
    )
    with pytest.raises(ShtrihError, match="outside"):
        too_big.encode()
    price: Any = 1.5
    as_float = Sale(
        password=1, quantity=Decimal(1), price=price, department=1, taxes=(0,) * 4, text=""
    )
    with pytest.raises(ShtrihError, match="expected an int"):
        as_float.encode()


def test_ff46_name_is_limited_to_128_bytes() -> None:
    fields: dict[str, Any] = {
        "password": 30,
        "operation": 1,
        "quantity": Decimal(1),
        "price": 1,
        "tax_rate": 8,
        "department": 1,
        "payment_method": 4,
        "payment_object": 1,
    }
    assert len(OperationV2(**fields, name="я" * 128).encode()) == 160  # the max LEN of §1.6
    with pytest.raises(ShtrihError, match="at most 128"):
        OperationV2(**fields, name="я" * 129).encode()


def test_absent_optional_field_cannot_be_followed_by_data() -> None:
    answer = BindMarkingAnswer(code_type=1, datamatrix_type=0, local_status=None, local_reason=2)
    with pytest.raises(ShtrihError, match="cannot follow"):
        answer.encode()


def test_check_marking_sends_both_lengths_before_the_code() -> None:
    request = CheckMarking(password=30, planned_status=1, mode=0, marking_code=b"0104", tlv=b"\x01")
    assert request.encode() == bytes.fromhex("ff611e000000010004013031303401")


def test_check_marking_reads_2106_only_when_the_server_answered() -> None:
    """commands.xml: 2106 and the server's TLV follow code 00h; 20h is followed by a reason."""

    def answer(online: bytes) -> CheckMarkingAnswer:
        return CheckMarkingAnswer(local_status=3, local_reason=0, code_type=2, online=online)

    answered = answer(b"\x00\x0f\xaa")
    assert (answered.fn_answer_code, answered.check_result) == (0, 0x0F)
    assert (answered.server_tlv, answered.answer_problem) == (b"\xaa", None)
    late = answer(b"\xff")
    assert (late.fn_answer_code, late.check_result, late.server_tlv) == (0xFF, None, b"")
    refused = answer(b"\x20\x04")
    assert (refused.check_result, refused.answer_problem, refused.server_tlv) == (None, 4, b"")
    offline = answer(b"")
    assert (offline.fn_answer_code, offline.check_result) == (None, None)


#: A real FF61h exchange (shtrih-m/fr_drv_ng #145, a ФН-М, driver log of 2021-08-12): a short
#: code checked online; the answer came 537 ms after the request.
CHECK_145 = bytes.fromhex(
    "02 27 FF 61 1E 00 00 00 01 00 1D 00 30 34 36 30 36 32 30 33 31 30 33 33 34 38 61 33 3D 45"
    " 66 4F 44 41 42 3D 55 70 47 62 4C 86"
)
ANSWER_145 = bytes.fromhex(
    "02 1B FF 61 00 00 01 01 14 00 05 42 08 04 00 80 07 15 61 39 08 01 00 00 D5 07 01 00 05 CF"
)


def test_check_marking_matches_a_real_register_byte_for_byte() -> None:
    request = decode_request(parse_frame(CHECK_145))
    assert request == CheckMarking(
        password=30, planned_status=1, mode=0, marking_code=b"04606203103348a3=EfODAB=UpGbL"
    )
    assert encode_frame(request.encode()) == CHECK_145
    answer = decode_answer(parse_frame(ANSWER_145))
    assert isinstance(answer, CheckMarkingAnswer)
    assert (answer.local_status, answer.local_reason, answer.code_type) == (0, 1, 1)
    assert (answer.fn_answer_code, answer.check_result) == (0, 0x05)
    server = decode(answer.server_tlv).fields  # 2114 request time, 2105 code 0, 2005 bits
    assert list(server) == [2114, 2105, 2005] and (server[2105], server[2005]) == (0, 0x05)
    assert encode_frame(answer.encode()) == ANSWER_145


def test_accept_marking_layout_is_javapos() -> None:
    """FF69h: LEN 7 (command, password, decision); the answer LEN 4 (command, error, 2106)."""
    request = AcceptMarking(password=30, decision=MarkingDecision.ACCEPT)
    assert request.encode() == bytes.fromhex("ff691e00000001")
    assert decode_request(bytes.fromhex("ff691e00000000")) == AcceptMarking(
        password=30, decision=MarkingDecision.REJECT
    )
    assert decode_answer(bytes.fromhex("ff69000f")) == AcceptMarkingAnswer(check_result=0x0F)
    refused = decode_answer(bytes.fromhex("ff69a1"))
    assert refused == ErrorAnswer(code=0xFF69, error=ErrorCode.FN_MARKING_WRONG_SEQUENCE)
    assert "Bxh" in describe_error(refused.error)
    assert REGISTRY[0xFF69].timeout_ms == 30_000


def test_find_document_reads_a_receipts_total() -> None:
    payload = bytes.fromhex(
        "ff0a00" + "03" + "01" + "15071d0b1d" + "a9010000" + "78563412" + "01" + "1027000000"
    )
    answer = decode_answer(payload)
    assert isinstance(answer, FindDocumentAnswer)
    assert (answer.fd_number, answer.fiscal_sign) == (425, 0x12345678)
    assert (answer.operation, answer.total) == (1, 10_000)
    assert answer.date_time == dt.datetime(2021, 7, 29, 11, 29)
    shift_open = FindDocumentAnswer(
        document_type=2,
        ofd_receipt=0,
        date_time=dt.datetime(2021, 7, 29, 9, 0),
        fd_number=1,
        fiscal_sign=2,
        details=b"\x05\x00",
    )
    assert (shift_open.operation, shift_open.total) == (None, None)


def test_close_receipt_v2_answer_carries_fd_and_fiscal_sign() -> None:
    payload = bytes.fromhex("ff4500" + "0000000000" + "aa010000" + "efbeadde")
    answer = decode_answer(payload)
    assert answer == CloseReceiptV2Answer(change=0, fd_number=426, fiscal_sign=0xDEADBEEF)


def test_full_status_serial_joins_its_two_halves() -> None:
    status = FullStatusAnswer(
        operator=30,
        firmware_version="C2",
        firmware_build=1,
        firmware_date=None,
        hall_number=1,
        document_number=2,
        flags=0,
        mode=0x24,
        submode=0,
        port=128,
        fp_version="NA",
        fp_build=0,
        fp_date=dt.date(2016, 1, 1),
        date=dt.date(2024, 5, 6),
        time=dt.time(12, 0, 1),
        fp_flags=0,
        serial_low=0x01020304,
        last_closed_shift=7,
        free_fp_records=0,
        reregistrations=0,
        reregistrations_left=0,
        inn=7707083893,
        serial_high=0x0506,
    )
    assert status.serial_number == 0x050601020304
    assert status.kkt_mode is Mode.SHIFT_CLOSED
    assert len(status.encode()) == 50


def test_error_table_covers_every_error_code_with_russian_and_english() -> None:
    assert set(ERROR_TEXTS) == {code.value for code in ErrorCode}
    for ru, en in ERROR_TEXTS.values():
        assert ru and en and ru != en
    assert describe_error(0x4F) == "4Fh Неверный пароль (wrong password)"
    assert describe_error(0xEE) == "EEh Неизвестная ошибка (unknown error)"


def test_mode_tables_and_nibbles() -> None:
    assert set(MODE_TEXTS) == set(Mode)
    assert set(SUBMODE_TEXTS) == set(Submode)
    assert split_mode(0x28) == (Mode.DOCUMENT_OPEN, 2)  # 8.2: sale return open
    assert split_mode(0x0F) == (None, 0)


def test_registry_covers_the_issue_list_with_timeouts() -> None:
    wanted = {0x10, 0x11, 0x17, 0x2F, 0x40, 0x41, 0xE0, 0x80, 0x82, 0x85, 0x88, 0x8D}
    wanted |= {0xFF01, 0xFF02, 0xFF03, 0xFF0C, 0xFF0A, 0xFF3B, 0xFF45, 0xFF46, 0xFF4D}
    wanted |= {0xFF39, 0xFF3F, 0xFF61, 0xFF67, 0xFF69}
    assert wanted <= set(REGISTRY)
    for code, spec in REGISTRY.items():
        assert spec.code == code == spec.request.CODE == spec.answer.CODE
        assert spec.answer.__name__ == spec.name + "Answer"
        assert 1_000 <= spec.timeout_ms <= 120_000
    assert REGISTRY[0x41].timeout_ms == 65_000 and REGISTRY[0xE0].timeout_ms == 120_000


def test_begin_correction_receipt_is_the_password_alone() -> None:
    """FF35h as JavaPOS encodes it: LEN 6 (command and password), the answer only its error."""
    request = BeginCorrectionReceipt(password=30)
    assert request.encode() == bytes.fromhex("ff351e000000")
    assert decode_request(bytes.fromhex("ff351e000000")) == request
    assert decode_answer(bytes.fromhex("ff3500")) == BeginCorrectionReceiptAnswer()
    refused = decode_answer(bytes.fromhex("ff354a"))
    assert refused == ErrorAnswer(code=0xFF35, error=ErrorCode.RECEIPT_OPEN)
    with pytest.raises(ShtrihError, match="trailing"):
        BeginCorrectionReceipt.decode(bytes.fromhex("ff351e00000001"))
    spec = REGISTRY[0xFF35]
    assert (spec.request, spec.answer, spec.timeout_ms) == (
        BeginCorrectionReceipt,
        BeginCorrectionReceiptAnswer,
        30_000,
    )
