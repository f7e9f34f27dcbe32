"""срок действия ФН and the OFD backlog on the wire: Shtrih FF03h / FF39h and ATOL A4 32 / A4 20.

The FF39h frame with an empty queue is a capture (R10); the others are synthesised from the
layouts (registers.md §1.6, §2.3, §3.3), their LRC computed by the link rule (registers.md §1.2;
the FF03h request's E4 follows R7's FF01h request, E6, by the same rule).
"""

from __future__ import annotations

from datetime import date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.atol.commands import (
    CommandAnswer,
    FnExpiry,
    GetFnExpiry,
)
from protocols.atol.commands import (
    decode_answer as atol_decode_answer,
)
from protocols.atol.commands import (
    decode_request as atol_decode_request,
)
from protocols.atol.errors import AtolError
from protocols.shtrih import ShtrihError, decode_answer, decode_request
from protocols.shtrih.codes import OfdExchangeStatus
from protocols.shtrih.commands import (
    FnExpiry as ShtrihFnExpiry,
)
from protocols.shtrih.commands import (
    FnExpiryAnswer,
    OfdStatusAnswer,
)
from protocols.shtrih.link_v1 import encode_frame, parse_frame

FUZZ = settings(max_examples=300, deadline=None)


def test_shtrih_ff03_request_and_answer_bytes() -> None:
    request = ShtrihFnExpiry(password=30)
    frame = bytes.fromhex("02 06 FF 03 1E 00 00 00 E4")
    assert encode_frame(request.encode()) == frame
    assert decode_request(parse_frame(frame)) == request
    answer_frame = bytes.fromhex("02 08 FF 03 00 1B 0C 1F 02 01 FF")
    answer = decode_answer(parse_frame(answer_frame))
    assert answer == FnExpiryAnswer(
        expires=date(2027, 12, 31), reregistrations_left=2, reregistrations_done=1
    )
    assert encode_frame(answer.encode()) == answer_frame


def test_shtrih_ff39_answer_with_a_queue_reads_count_and_oldest_time() -> None:
    frame = bytes.fromhex("02 10 FF 39 00 02 00 03 00 07 00 00 00 1A 03 02 08 1E DD")
    answer = decode_answer(parse_frame(frame))
    assert isinstance(answer, OfdStatusAnswer)
    assert OfdExchangeStatus(answer.status) == OfdExchangeStatus.MESSAGE_PENDING
    assert (answer.queued, answer.first_fd) == (3, 7)
    assert answer.first_date_time == datetime(2026, 3, 2, 8, 30)
    assert encode_frame(answer.encode()) == frame


def test_shtrih_ff03_answer_with_an_impossible_date_names_the_field() -> None:
    with pytest.raises(ShtrihError) as refused:
        decode_answer(bytes.fromhex("FF 03 00 1B 0D 01 02 01"))  # month 13
    assert "expires" in str(refused.value)


def test_atol_a4_32_request_and_answer_bytes() -> None:
    request = GetFnExpiry()
    assert request.encode() == bytes.fromhex("00 00 A4 32")
    assert atol_decode_request(bytes.fromhex("00 00 A4 32")) == request
    answer = FnExpiry(expires=date(2027, 12, 31), registrations_left=2, registrations_done=1)
    wire = bytes.fromhex("55 00 1B 0C 1F 02 01")  # 55 00 + the ФН's 32h data (as A4 20 / 30h)
    assert answer.encode() == wire
    assert atol_decode_answer(request, wire) == answer


def test_atol_a4_32_refusal_is_the_generic_answer() -> None:
    refused = atol_decode_answer(GetFnExpiry, bytes.fromhex("55 D0 02"))
    assert refused == CommandAnswer(error=0xD0, extended=0x02)


@pytest.mark.parametrize(
    "wire,field",
    [
        ("55 00 1B 0D 01 02 01", "expires"),  # month 13
        ("55 00 1B 0C 1F 02", "ФН expiry"),  # one byte short
        ("44 00 1B 0C 1F 02 01", "ФН expiry"),  # not 55 00
    ],
)
def test_atol_a4_32_bad_answers_name_what_is_wrong(wire: str, field: str) -> None:
    with pytest.raises(AtolError) as refused:
        FnExpiry.decode(bytes.fromhex(wire))
    assert refused.value.reason and field in str(refused.value)


def test_atol_expiry_refuses_a_date_the_wire_cannot_carry() -> None:
    with pytest.raises(AtolError):
        FnExpiry(expires=date(1999, 12, 31), registrations_left=0, registrations_done=0)
    with pytest.raises(AtolError):
        FnExpiry(
            expires=datetime(2027, 1, 1),  # type: ignore[arg-type]
            registrations_left=0,
            registrations_done=0,
        )


@FUZZ
@given(data=st.binary(max_size=16) | st.binary(max_size=5).map(lambda b: b"\x55\x00" + b))
def test_atol_expiry_decoders_parse_or_raise_atol_error(data: bytes) -> None:
    for decode in (FnExpiry.decode, GetFnExpiry.decode_answer):
        try:
            decode(data)
        except AtolError as exc:
            assert exc.reason


@FUZZ
@given(
    code=st.sampled_from([b"\xff\x03", b"\xff\x39"]),
    body=st.binary(max_size=20),
)
def test_shtrih_expiry_and_ofd_decoders_parse_or_raise_shtrih_error(
    code: bytes, body: bytes
) -> None:
    try:
        decode_answer(code + body)
    except ShtrihError as exc:
        assert str(exc)
