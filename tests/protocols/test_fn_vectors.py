"""ФН frames R44–R49 of tests/vectors/registers_given.json, and hand-assembled answer layouts."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest

from protocols.crc import crc16_ccitt_false
from protocols.fn import (
    Answer,
    ArchivedDocument,
    BeginMessageRead,
    BeginReceipt,
    BeginShiftOpening,
    CancelDocument,
    Command,
    CountUnconfirmed,
    Done,
    ExchangeFlag,
    ExchangeStatus,
    Failure,
    FindDocument,
    FinishReceipt,
    FinishRegistration,
    FnError,
    FnExpiry,
    FnPhase,
    FnStatus,
    FnVersion,
    FnWarning,
    GetExchangeStatus,
    GetFnExpiry,
    GetFnNumber,
    GetFnStatus,
    GetFnVersion,
    GetOfdAck,
    GetShiftStatus,
    MessageLength,
    OfdAckResult,
    OpenShift,
    PassOfdAck,
    ReceiptDocument,
    ResultCode,
    ShiftDocument,
    ShiftStatus,
    SignedDocument,
    StoredOfdAck,
    UnconfirmedCount,
    decode_answer,
    decode_command,
    decode_frame,
    describe_result,
    encode_frame,
)
from protocols.tlv.enums import OperationType

VECTORS: dict[str, dict[str, Any]] = {
    v["id"]: v
    for v in json.loads(
        (Path(__file__).parent.parent / "vectors" / "registers_given.json").read_text()
    )
    if v.get("protocol") == "fn"
}


def test_the_fn_vectors_are_r44_to_r49() -> None:
    assert sorted(VECTORS) == ["R44", "R45", "R46", "R47", "R48", "R49"]


@pytest.mark.parametrize("vid", sorted(VECTORS))
def test_frame_decodes_to_its_facts_and_reencodes(vid: str) -> None:
    vector = VECTORS[vid]
    wire = bytes.fromhex(vector["hex"])
    expect = vector["expect"]
    assert int.from_bytes(wire[1:3], "little") == expect["len"]
    code, data = decode_frame(wire)
    assert code == int(expect["cmd"], 16)
    assert data.hex() == expect["data"]
    assert crc16_ccitt_false(wire[1:-2]) == vector["checksum"]["value"]
    assert int.from_bytes(wire[-2:], "little") == vector["checksum"]["value"]
    command = decode_command(wire)
    assert isinstance(command, Command)
    assert code == type(command).CODE
    if "date_time" in expect:
        fields = attrs.asdict(command, recurse=False)
        assert fields["at"] == datetime.fromisoformat(expect["date_time"])
    assert command.encode() == wire
    assert encode_frame(code, data) == wire
    assert type(command).decode(wire) == command


def test_r45_r46_r47_are_the_typed_commands() -> None:
    assert decode_command(bytes.fromhex(VECTORS["R45"]["hex"])) == BeginShiftOpening(
        datetime(2024, 5, 17, 9, 0)
    )
    assert decode_command(bytes.fromhex(VECTORS["R46"]["hex"])) == BeginReceipt(
        datetime(2024, 5, 17, 12, 30)
    )
    r47 = decode_command(bytes.fromhex(VECTORS["R47"]["hex"]))
    assert r47 == FinishReceipt(datetime(2024, 5, 17, 12, 31), OperationType.SELL, 10000)
    assert isinstance(r47, FinishReceipt)
    assert r47.total == VECTORS["R47"]["expect"]["total"]
    assert r47.operation == VECTORS["R47"]["expect"]["operation"]


def test_r44_r48_r49_are_the_data_less_queries() -> None:
    assert decode_command(bytes.fromhex(VECTORS["R44"]["hex"])) == GetFnStatus()
    assert decode_command(bytes.fromhex(VECTORS["R48"]["hex"])) == GetFnNumber()
    assert decode_command(bytes.fromhex(VECTORS["R49"]["hex"])) == BeginMessageRead()


@pytest.mark.parametrize("vid", sorted(VECTORS))
def test_every_cut_of_a_vector_is_an_fn_error(vid: str) -> None:
    wire = bytes.fromhex(VECTORS[vid]["hex"])
    for size in range(len(wire)):
        with pytest.raises(FnError):
            decode_frame(wire[:size])
        with pytest.raises(FnError):
            decode_command(wire[:size])


@pytest.mark.parametrize("vid", sorted(VECTORS))
def test_every_flipped_byte_of_a_vector_is_caught(vid: str) -> None:
    wire = bytes.fromhex(VECTORS[vid]["hex"])
    for index in range(len(wire)):
        for mask in (0x01, 0x80, 0xFF):
            damaged = bytearray(wire)
            damaged[index] ^= mask
            with pytest.raises(FnError):
                decode_frame(bytes(damaged))


# Answers: no capture exists, so each layout is pinned by DATA assembled by hand from the
# moguchev driver's parser (ffd.md §7), next to the value it must decode to.
FN = "39393939303738393032303133323637"  # "9999078902013267"
AT = "1805110c1f"  # 2024-05-17 12:31
SIGN18 = bytes(range(1, 19))
ANSWER_LAYOUTS: list[tuple[type[Command], int, str, object]] = [
    (
        GetFnStatus,
        0x00,
        f"03 00 00 01 05 {AT} {FN} 2a000000",
        FnStatus(
            FnPhase.FISCAL,
            0,
            False,
            True,
            FnWarning.KEYS_EXPIRE_3_DAYS | FnWarning.ARCHIVE_90_PERCENT,
            datetime(2024, 5, 17, 12, 31),
            "9999078902013267",
            42,
        ),
    ),
    (
        GetFnStatus,
        0x00,
        f"01 00 00 00 00 0000000000 {FN} 00000000",
        FnStatus(FnPhase.READY, 0, False, False, FnWarning(0), None, "9999078902013267", 0),
    ),
    (GetFnStatus, 0x02, "", Failure(ResultCode.WRONG_STATE)),
    (GetFnStatus, 0x83, "", Failure(ResultCode.FN_FAILURE, warning=True)),
    (GetFnStatus, 0x13, "ab", Failure(0x13, b"\xab")),
    (GetShiftStatus, 0x00, "01 0700 0300", ShiftStatus(True, 7, 3)),
    (OpenShift, 0x00, "0700 2a000000 78563412", ShiftDocument(7, 42, 0x12345678)),
    (
        FinishReceipt,
        0x80,
        "0300 2b000000 efbeadde",
        ReceiptDocument(3, 43, 0xDEADBEEF, warning=True),
    ),
    (FinishRegistration, 0x00, "01000000 11223344", SignedDocument(1, 0x44332211)),
    (
        GetExchangeStatus,
        0x00,
        f"03 01 0200 2a000000 {AT}",
        ExchangeStatus(
            ExchangeFlag.TRANSPORT_UP | ExchangeFlag.MESSAGE_PENDING,
            True,
            2,
            42,
            datetime(2024, 5, 17, 12, 31),
        ),
    ),
    (BeginMessageRead, 0x00, "5f00", MessageLength(95)),
    (PassOfdAck, 0x00, "00", OfdAckResult(0)),
    (GetFnExpiry, 0x00, "1b0c1f 02 01", FnExpiry(date(2027, 12, 31), 2, 1)),
    (GetFnVersion, 0x00, "666e20312e312e30" + "20" * 8 + "01", FnVersion("fn 1.1.0", True)),
    (
        FindDocument,
        0x00,
        f"03 01 {AT} 2b000000 efbeadde 01 1027000000",
        ArchivedDocument(
            3, True, datetime(2024, 5, 17, 12, 31), 43, 0xDEADBEEF, bytes.fromhex("011027000000")
        ),
    ),
    (
        GetOfdAck,
        0x00,
        f"{AT} {SIGN18.hex()} 2b000000",
        StoredOfdAck(datetime(2024, 5, 17, 12, 31), SIGN18, 43),
    ),
    (CountUnconfirmed, 0x00, "0500", UnconfirmedCount(5)),
    (CancelDocument, 0x00, "", Done()),
]


@pytest.mark.parametrize(("command", "status", "data", "answer"), ANSWER_LAYOUTS)
def test_answer_layout(command: type[Command], status: int, data: str, answer: Answer) -> None:
    frame = encode_frame(status, bytes.fromhex(data))
    assert decode_answer(frame, command) == answer
    assert answer.encode() == frame
    assert type(answer).decode(frame) == answer


def test_a_failure_reads_the_same_whatever_the_command() -> None:
    frame = Failure(ResultCode.SHIFT_OVER_24H).encode()
    assert frame == encode_frame(0x16, b"")
    for command in (GetFnStatus, FinishReceipt, OpenShift):
        answer = decode_answer(frame, command)
        assert isinstance(answer, Failure)
        assert answer.code == ResultCode.SHIFT_OVER_24H
        assert answer.text == (
            "Продолжительность смены более 24 часов",
            "the shift has lasted more than 24 hours",
        )


def test_every_result_code_has_russian_and_english_text() -> None:
    assert [int(c) for c in ResultCode] == [
        *range(0x00, 0x0A),
        0x10,
        0x11,
        0x12,
        0x14,
        0x15,
        0x16,
        0x17,
        0x20,
    ]
    for code in ResultCode:
        assert code.ru and code.en and code.ru != code.en
        assert describe_result(code) == (code.ru, code.en)
    assert describe_result(0x7E)[1] == "unassigned result code 7eh"


def test_phases_are_cumulative_bits() -> None:
    assert [int(p) for p in FnPhase] == [0x00, 0x01, 0x03, 0x07, 0x0F]
