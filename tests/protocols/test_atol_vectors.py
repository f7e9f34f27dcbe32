"""The ATOL frames of tests/vectors/registers_given.json (R31–R43), and the native CRC."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import protocols.crc
from protocols.atol import (
    NEED_DATA,
    AbortTasks,
    AckTask,
    AddTask,
    BufferAborted,
    GetDeviceStatus,
    HostConnection,
    ReqTask,
    Status,
    TaskFinished,
    TaskFlags,
    TaskQueued,
    TaskReleased,
    decode_packet,
    encode_packet,
)
from protocols.atol.taskbuffer import (
    AckAddTask,
    AsyncResult,
    TaskStatusReply,
    decode_device_message,
    decode_host_message,
)
from protocols.atol.transport import FrameReader, decode_v2_frame, encode_v2_frame
from protocols.crc import crc8_atol

VECTORS = {
    v["id"]: v
    for v in json.loads(
        (Path(__file__).parent.parent / "vectors" / "registers_given.json").read_text()
    )
}
V3 = sorted((k for k, v in VECTORS.items() if v["protocol"] == "atol-v3"), key=lambda k: int(k[1:]))
V2 = sorted((k for k, v in VECTORS.items() if v["protocol"] == "atol-v2"), key=lambda k: int(k[1:]))


def test_the_file_holds_the_atol_vectors_r31_to_r43() -> None:
    assert [f"R{i}" for i in range(31, 42)] == V3
    assert V2 == ["R42", "R43"]


def task_layer_facts(direction: str, data: bytes) -> dict[str, Any]:
    """The task-buffer facts a vector's ``expect`` may name, decoded by the codec."""
    if not data:
        return {}
    if direction == "host->device":
        message = decode_host_message(data)
        facts: dict[str, Any] = {"command": data[:1].hex()}
        if isinstance(message, AddTask | AckAddTask):
            facts.update(flags=int(message.flags), tid=message.tid, app=message.request.hex())
        elif isinstance(message, ReqTask | AckTask):
            facts["tid"] = message.tid
        return facts
    reply = decode_device_message(data)
    assert isinstance(reply, AsyncResult | TaskStatusReply)
    facts = {"status": f"{int(reply.status):02x}", "answer": reply.answer.hex()}
    if isinstance(reply, AsyncResult):
        facts["tid"] = reply.tid
    return facts


@pytest.mark.parametrize("vid", V3)
def test_v3_vector_decodes_to_its_facts_and_reencodes_byte_for_byte(vid: str) -> None:
    vector = VECTORS[vid]
    wire = bytes.fromhex(vector["hex"])
    packet = decode_packet(wire)
    expect = vector["expect"]
    assert packet.packet_id == expect["id"]
    assert len(packet.data) == expect["len"]
    assert packet.data.hex() == expect["data"]
    assert crc8_atol(bytes((packet.packet_id,)) + packet.data) == vector["checksum"]["value"]
    facts = task_layer_facts(vector["direction"], packet.data)
    for key, value in expect.items():
        if key not in ("id", "len", "data"):
            assert facts[key] == value, key
    assert encode_packet(packet.packet_id, packet.data) == wire
    # The stream reader finds the same packet, whole or byte by byte.
    assert FrameReader().feed(wire) == [packet]
    reader = FrameReader()
    assert [item for byte in wire for item in reader.feed(bytes((byte,)))] == [packet]


@pytest.mark.parametrize("vid", V2)
def test_v2_vector_decodes_to_its_data_and_reencodes_byte_for_byte(vid: str) -> None:
    vector = VECTORS[vid]
    wire = bytes.fromhex(vector["hex"])
    data = decode_v2_frame(wire)
    assert data.hex() == vector["expect"]["data"]
    assert wire[-1] == vector["checksum"]["value"]
    assert encode_v2_frame(data) == wire


def drain(conn: HostConnection) -> list[object]:
    events: list[object] = []
    while (event := conn.next_event()) is not NEED_DATA:
        events.append(event)
    return events


def test_host_connection_sends_the_captured_link_check_r33_to_r37() -> None:
    wire = {vid: bytes.fromhex(VECTORS[vid]["hex"]) for vid in ("R33", "R34", "R35", "R36", "R37")}
    host = HostConnection(first_packet_id=6)
    assert host.send(AbortTasks()) == wire["R33"]
    host.receive_data(encode_packet(6, bytes((Status.STOPPED,))))
    assert drain(host) == [BufferAborted(discarded=())]
    add = AddTask(tid=2, request=bytes.fromhex("0000a5"), flags=TaskFlags.NEED_RESULT)
    assert host.send(add) == wire["R34"]
    host.receive_data(encode_packet(7, bytes((Status.PENDING,))))
    assert drain(host) == [TaskQueued(tid=2, status=Status.PENDING)]
    for packet_id, vid in ((8, "R35"), (9, "R36")):
        assert host.send(ReqTask(tid=2)) == wire[vid]
        host.receive_data(encode_packet(packet_id, bytes((Status.IN_PROGRESS,))))
        assert drain(host) == [TaskQueued(tid=2, status=Status.IN_PROGRESS)]
    assert host.send(ReqTask(tid=2)) == wire["R37"]
    host.receive_data(encode_packet(10, b"\xa3\x55\x00\x00"))
    assert drain(host) == [TaskFinished(tid=2, answer=b"\x55\x00\x00", error=False)]


def test_host_connection_sends_the_synthesised_r38_to_r41() -> None:
    wire = {vid: bytes.fromhex(VECTORS[vid]["hex"]) for vid in ("R38", "R39", "R40", "R41")}
    host = HostConnection(first_packet_id=2)
    assert host.send(AddTask(tid=1, request=GetDeviceStatus().encode())) == wire["R38"]
    host.receive_data(encode_packet(2, b"\xa1"))
    drain(host)
    assert host.send(ReqTask(tid=1)) == wire["R39"]
    host.receive_data(encode_packet(3, b"\xa3\x55\x00\x00"))
    assert drain(host) == [TaskFinished(tid=1, answer=b"\x55\x00\x00", error=False)]
    assert host.send(AckTask(tid=1)) == wire["R40"]
    host.receive_data(encode_packet(4, b"\xa3"))
    assert drain(host) == [TaskReleased(tid=1)]
    assert host.send(AbortTasks()) == wire["R41"]


def test_r32_async_result_reaches_the_host_that_added_task_0x57() -> None:
    host = HostConnection(first_packet_id=0x30)
    host.send(AddTask(tid=0x57, request=GetDeviceStatus().encode()))
    host.receive_data(encode_packet(0x30, b"\xa1") + bytes.fromhex(VECTORS["R32"]["hex"]))
    assert drain(host) == [
        TaskQueued(tid=0x57, status=Status.PENDING),
        TaskFinished(tid=0x57, answer=b"\x55\x00\x00", error=False),
    ]


def test_crcmod_uses_its_c_extension() -> None:
    """Without a compiler crcmod silently falls back to pure Python, about 30 times slower."""
    assert protocols.crc.CRC8_IS_NATIVE is True
