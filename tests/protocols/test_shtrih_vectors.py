"""Shtrih-M frames captured from real registers and drivers (R1–R30 of registers_given.json).

Every frame is parsed by the link layer, decoded by the command registry, compared with the
vector's ``expect`` facts (every fact is checked; an unknown fact fails the test) and encoded
back byte for byte. Each frame is also pushed through the receiving role's connection.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from protocols.crc import crc16_ccitt_false, lrc
from protocols.shtrih import (
    NEED_DATA,
    AnswerFrame,
    CommandFrame,
    LinkV1Device,
    LinkV1Host,
    LinkV2Device,
    LinkV2Host,
    decode_answer,
    decode_request,
)
from protocols.shtrih.codes import (
    FnDocumentKind,
    FnLifePhase,
    Mode,
    OfdExchangeStatus,
    StatusFlags,
    Submode,
)
from protocols.shtrih.commands import (
    Answer,
    ErrorAnswer,
    FnStatusAnswer,
    OfdStatusAnswer,
    Request,
    ShortStatusAnswer,
    layout,
)
from protocols.shtrih.link_v1 import encode_frame, parse_frame
from protocols.shtrih.link_v2 import encode_packet, parse_packet
from protocols.shtrih.wire import Scaled

VECTORS = {
    v["id"]: v
    for v in json.loads(
        (Path(__file__).parent.parent / "vectors" / "registers_given.json").read_text()
    )
    if v["protocol"] in ("shtrih-v1", "shtrih-v2")
}
FRAMES = sorted(
    (k for k, v in VECTORS.items() if v["kind"] != "crc-unit"), key=lambda k: int(k[1:])
)
CRC_UNITS = [k for k, v in VECTORS.items() if v["kind"] == "crc-unit"]


def test_the_file_holds_the_thirty_shtrih_vectors() -> None:
    assert sorted(VECTORS, key=lambda k: int(k[1:])) == [f"R{i}" for i in range(1, 31)]


def _unframe(vector: dict[str, Any]) -> tuple[int, int | None, bytes]:
    """(LEN field, packet number, payload) of a vector's frame."""
    raw = bytes.fromhex(vector["hex"])
    if vector["protocol"] == "shtrih-v1":
        return raw[1], None, parse_frame(raw)
    number, payload = parse_packet(raw)
    return int.from_bytes(raw[1:3], "little"), number, payload


def _data_after_header(message: Request | Answer | ErrorAnswer, payload: bytes) -> str:
    """The DATA the vector leaves undecoded: after CMD + password, or after CMD + error."""
    header = (2 if payload[0] == 0xFF else 1) + (4 if isinstance(message, Request) else 1)
    return payload[header:].hex()


def _quantity_units(message: Any) -> int:
    scale = next(
        c.scale for name, c in layout(type(message)) if name == "quantity" and isinstance(c, Scaled)
    )
    return int(message.quantity.scaleb(scale))


FACTS: dict[str, Callable[[Any, bytes], Any]] = {
    "password": lambda m, p: m.password,
    "error": lambda m, p: m.error,
    "operator": lambda m, p: m.operator,
    "flags": lambda m, p: m.flags,
    "mode": lambda m, p: m.mode,
    "submode": lambda m, p: m.submode,
    "battery_raw": lambda m, p: m.battery_raw,
    "supply_raw": lambda m, p: m.supply_raw,
    "phase": lambda m, p: m.phase,
    "current_document": lambda m, p: m.current_document,
    "document_data": lambda m, p: m.document_data,
    "shift_open": lambda m, p: m.shift_open,
    "warnings": lambda m, p: m.warnings,
    "date_time": lambda m, p: m.date_time.isoformat(timespec="minutes"),
    "fn": lambda m, p: m.fn_serial,
    "last_fd": lambda m, p: m.last_fd,
    "status": lambda m, p: m.status,
    "read_state": lambda m, p: m.read_state,
    "queued": lambda m, p: m.queued,
    "first_fd": lambda m, p: m.first_fd,
    "type": lambda m, p: m.type,
    "subtype": lambda m, p: m.subtype,
    "protocol_version": lambda m, p: m.protocol_version,
    "protocol_subversion": lambda m, p: m.protocol_subversion,
    "model": lambda m, p: m.model,
    "language": lambda m, p: m.language,
    "name": lambda m, p: m.name,
    "font": lambda m, p: m.font,
    "data": lambda m, p: _data_after_header(m, p),
    "quantity": lambda m, p: _quantity_units(m),
    "price": lambda m, p: m.price,
    "department": lambda m, p: m.department,
    "taxes": lambda m, p: bytes(m.taxes).hex(),
    "text": lambda m, p: m.text,
    "operation": lambda m, p: m.operation,
    "sum": lambda m, p: "auto" if m.amount is None else m.amount,
    "tax_sum": lambda m, p: "auto" if m.tax_amount is None else m.tax_amount,
    "tax_bits": lambda m, p: m.tax_rate,
    "payment_method": lambda m, p: m.payment_method,
    "payment_object": lambda m, p: m.payment_object,
    "cash": lambda m, p: m.payments[0],
    "other_payments": lambda m, p: sum(m.payments[1:]),
    "rounding": lambda m, p: m.rounding,
    "tax_sums": lambda m, p: sum(m.tax_sums),
    "taxation": lambda m, p: m.taxation,
    "receipt_type": lambda m, p: m.receipt_type,
}


@pytest.mark.parametrize("vid", FRAMES)
def test_frame_decodes_to_its_facts_and_reencodes_exactly(vid: str) -> None:
    vector = VECTORS[vid]
    raw = bytes.fromhex(vector["hex"])
    length, number, payload = _unframe(vector)
    expect = dict(vector["expect"])
    assert length == expect.pop("len")
    assert payload[: 2 if payload[0] == 0xFF else 1].hex() == expect.pop("cmd")
    if vector["protocol"] == "shtrih-v2":
        assert number == expect.pop("number")
        assert vector["checksum"]["value"] == crc16_ccitt_false(
            raw[1:].replace(b"\x9f\x83", b"\x9f")[:-2]
        )
    else:
        assert vector["checksum"]["value"] == lrc(raw[1:-1])

    message = (
        decode_request(payload) if vector["direction"] == "host->device" else decode_answer(payload)
    )
    for fact, value in expect.items():
        assert fact in FACTS, f"{vid}: no check for fact {fact!r}"
        assert FACTS[fact](message, payload) == value, (vid, fact)

    again = message.encode()
    assert again == payload
    assert (encode_frame(again) if number is None else encode_packet(number, again)) == raw


@pytest.mark.parametrize("vid", CRC_UNITS)
def test_link_v2_crc_unit_vectors(vid: str) -> None:
    vector = VECTORS[vid]
    assert crc16_ccitt_false(bytes.fromhex(vector["hex"])) == vector["checksum"]["value"]


def _drain(connection: LinkV1Host | LinkV1Device | LinkV2Host | LinkV2Device) -> list[object]:
    events: list[object] = []
    while (event := connection.next_event()) is not NEED_DATA:
        events.append(event)
    return events


@pytest.mark.parametrize("vid", [k for k in FRAMES if VECTORS[k]["direction"] == "host->device"])
def test_device_role_receives_each_captured_command(vid: str) -> None:
    vector = VECTORS[vid]
    _, number, payload = _unframe(vector)
    device: LinkV1Device | LinkV2Device = (
        LinkV1Device() if vector["protocol"] == "shtrih-v1" else LinkV2Device()
    )
    device.receive_data(bytes.fromhex(vector["hex"]))
    assert _drain(device) == [CommandFrame(payload=payload, number=number)]
    assert device.data_to_send() == (b"\x06" if number is None else b"")


@pytest.mark.parametrize("vid", [k for k in FRAMES if VECTORS[k]["direction"] == "device->host"])
def test_host_role_receives_each_captured_answer(vid: str) -> None:
    vector = VECTORS[vid]
    _, number, payload = _unframe(vector)
    request = payload[: 2 if payload[0] == 0xFF else 1] + b"\x1e\x00\x00\x00"
    if number is None:
        host = LinkV1Host()
        assert host.send(CommandFrame(payload=request)) == b"\x05"
        host.receive_data(b"\xff\x15")  # a TCP register's 0xFF, then NAK: idle
        assert _drain(host) == []
        assert host.data_to_send() == encode_frame(request)
        host.receive_data(b"\x06" + bytes.fromhex(vector["hex"]))
        assert _drain(host) == [AnswerFrame(payload=payload)]
        assert host.data_to_send() == b"\x06"
    else:
        v2 = LinkV2Host(next_number=number)
        assert v2.send(CommandFrame(payload=request)) == encode_packet(number, request)
        v2.receive_data(bytes.fromhex(vector["hex"]))
        assert _drain(v2) == [AnswerFrame(payload=payload, number=number)]


def test_r24_request_is_what_the_v2_host_sends_for_packet_0x19() -> None:
    host = LinkV2Host(next_number=0x19)
    sent = host.send(CommandFrame(payload=decode_request(_unframe(VECTORS["R24"])[2]).encode()))
    assert sent == bytes.fromhex(VECTORS["R24"]["hex"])


def test_r25_crc_low_byte_9f_is_stuffed() -> None:
    packet = encode_packet(0xD4, bytes.fromhex("1001000000"))
    assert packet == bytes.fromhex(VECTORS["R25"]["hex"])
    assert packet.endswith(b"\x9f\x83\x5b")


def test_r4_status_reads_mode_two_submode_printing_and_voltages() -> None:
    status = decode_answer(_unframe(VECTORS["R4"])[2])
    assert isinstance(status, ShortStatusAnswer)
    assert status.kkt_mode is Mode.SHIFT_OPEN
    assert Submode(status.submode) is Submode.PRINTING
    assert status.receipt_operations == 0
    r2 = decode_answer(_unframe(VECTORS["R2"])[2])
    assert isinstance(r2, ShortStatusAnswer)
    assert r2.battery_voltage == Decimal("3.12")
    assert r2.supply_voltage == Decimal("25.44")
    assert StatusFlags(r2.flags) == (
        StatusFlags.RECEIPT_ROLL
        | StatusFlags.RECEIPT_PAPER_SENSOR
        | StatusFlags.RECEIPT_HEAD_LEVER
        | 1 << 4
    )


def test_r8_fn_status_reads_fiscal_mode_and_no_open_document() -> None:
    status = decode_answer(_unframe(VECTORS["R8"])[2])
    assert isinstance(status, FnStatusAnswer)
    assert FnLifePhase(status.phase) == FnLifePhase.SET_UP | FnLifePhase.FISCAL_MODE
    assert FnDocumentKind(status.current_document) is FnDocumentKind.NONE
    r10 = decode_answer(_unframe(VECTORS["R10"])[2])
    assert isinstance(r10, OfdStatusAnswer)
    assert OfdExchangeStatus(r10.status) == OfdExchangeStatus(0)
    assert r10.first_date_time is None


def test_r27_error_answer_names_the_missing_fn() -> None:
    answer = decode_answer(_unframe(VECTORS["R27"])[2])
    assert isinstance(answer, ErrorAnswer)
    assert answer.error == 0x30
    assert answer.text == "30h ФН не отвечает (ФН not responding)"
