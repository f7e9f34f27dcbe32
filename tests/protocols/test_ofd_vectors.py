"""G1 (a session header) and G2 (an operator ack container) of tests/vectors/ffd_given.json."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from protocols.crc import crc16_ccitt_false
from protocols.ofd import (
    Container,
    Message,
    OfdConnection,
    OfdError,
    OperatorAck,
    Role,
    SessionHeader,
)

VECTORS: dict[str, dict[str, Any]] = {
    v["id"]: v
    for v in json.loads((Path(__file__).parent.parent / "vectors" / "ffd_given.json").read_text())
}
G1 = bytes.fromhex(VECTORS["G1"]["hex"])
G2 = bytes.fromhex(VECTORS["G2"]["hex"])


def test_g1_session_header_decodes_to_its_facts_and_reencodes() -> None:
    expect = VECTORS["G1"]["expect"]["session"]
    header = SessionHeader.decode(G1)
    assert header.signature.hex() == expect["signature"]
    assert header.s_version.hex() == expect["s_version"]
    assert header.p_version.hex() == expect["p_version"]
    assert int.from_bytes(header.p_version, "little") == 256  # as yandex reads it
    assert header.client_id == expect["client_id"]
    assert header.body_length == expect["body_length"]
    assert header.flags == expect["flags"]
    assert header.crc == expect["crc"]
    assert header.encode() == G1


def test_g1_is_rebuilt_from_its_fields() -> None:
    header = SessionHeader(client_id="9999078950", body_length=305, p_version=bytes.fromhex("0001"))
    assert header.encode() == G1


def test_g2_container_decodes_to_its_facts_and_reencodes() -> None:
    expect = VECTORS["G2"]["expect"]["container"]
    container = Container.decode(G2)
    assert container.length == expect["length"] == len(G2)
    assert container.crc == expect["crc"] == int.from_bytes(G2[2:4], "little")
    assert expect["crc_ok"] and crc16_ccitt_false(G2[:2] + G2[4:]) == expect["crc"]
    assert container.message_type == expect["message_type"]
    assert container.document_type == expect["document_type"]
    assert container.version == expect["version"]
    assert container.service_1.hex() == expect["service_1"]
    assert G2[9:17].hex() == expect["fn_bcd"]
    assert container.fn_number == expect["fn"]
    assert container.fd_number == expect["fd_number"] == 3211264  # the mock wrote ASCII "1"
    assert container.service_2.hex() == expect["service_2"]
    assert len(container.document) == expect["document_length"]
    assert container.trailer.hex() == expect["trailer"]
    assert container.encode() == G2


def test_g2_document_is_the_operator_ack() -> None:
    expect = VECTORS["G2"]["expect"]
    container = Container.decode(G2)
    assert container.document[:2] == expect["document_type"].to_bytes(2, "little")
    ack = OperatorAck.from_tlv(container.document)
    facts = expect["7"]
    assert ack.ofd_inn == facts["1017"]
    assert ack.fn_number == facts["1041"]
    assert ack.fd_number == facts["1040"]
    assert ack.at == datetime.fromisoformat(facts["1012"])
    assert ack.response_code == facts["1068"]["1022"]
    assert ack.operator_sign is None
    # Built again, 1017 is padded to its 12 bytes: two more bytes than the mock sent.
    rebuilt = ack.to_tlv()
    assert len(rebuilt) == len(container.document) + 2
    assert rebuilt[8:20] == b"7704211201  "
    assert OperatorAck.from_tlv(rebuilt) == ack


def test_a_damaged_g2_is_refused() -> None:
    for index in range(len(G2)):
        damaged = bytearray(G2)
        damaged[index] ^= 0x20
        with pytest.raises(OfdError):
            Container.decode(bytes(damaged))
    for size in range(len(G2)):
        with pytest.raises(OfdError):
            Container.decode(G2[:size])


def test_g2_travels_in_a_message_from_the_ofd() -> None:
    container = Container.decode(G2)
    kkt, ofd = OfdConnection(Role.CLIENT), OfdConnection(Role.SERVER)
    request = Message.wrap(container, client_id="9999078902013267")
    ofd.receive_data(kkt.send(request))
    assert ofd.next_event() == request
    reply = Message.wrap(container, client_id="9999078902013267")
    wire = ofd.send(reply)
    assert wire[30:] == G2
    kkt.receive_data(wire)
    got = kkt.next_event()
    assert isinstance(got, Message) and got.container is not None
    assert got.container.encode() == G2
