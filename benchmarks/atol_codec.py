"""``kassa bench atol``: ATOL v3 frames encoded and decoded per second.

Two frames a driver and the emulator handle on every receipt: the host's C1 Add carrying an
E6 register-item request, and the register's A3 result carrying a 3Fh state answer. Each is
measured whole (command object <-> frame bytes) and as bare framing (DATA <-> frame bytes).
"""

from __future__ import annotations

import json
import platform
from datetime import datetime
from decimal import Decimal

from benchmarks.common import bench_arguments, rate
from protocols.atol.commands import (
    DeviceStatus,
    GetDeviceStatus,
    RegisterItem,
    StatusFlags,
    decode_request,
)
from protocols.atol.taskbuffer import (
    AddTask,
    Status,
    TaskStatusReply,
    decode_device_message,
    decode_host_message,
)
from protocols.atol.transport import FrameReader, Packet, encode_packet
from protocols.crc import CRC8_IS_NATIVE

ITEM = RegisterItem(
    password=30,
    name='Молоко "Домик в деревне" 3,2 %, 930 мл',
    price=8990,
    quantity=Decimal("2.000"),
    tax=1,
    department=1,
)
STATE = DeviceStatus(
    cashier=1,
    number_in_hall=1,
    clock=datetime(2026, 11, 28, 12, 30, 5),
    flags=StatusFlags.FISCALIZED | StatusFlags.SHIFT_OPEN | StatusFlags.PAPER_PRESENT,
    serial_number=12345678,
    model=62,
    mode=1,
    submode=0,
    receipt_number=7,
    shift_number=3,
    receipt_state=1,
    receipt_total=17980,
    port=6,
)


def encode_item_frame() -> bytes:
    return encode_packet(7, AddTask(tid=2, request=ITEM.encode()).encode())


def decode_item_frame(frame: bytes) -> RegisterItem:
    (packet,) = FrameReader().feed(frame)
    assert isinstance(packet, Packet)
    add = decode_host_message(packet.data)
    assert isinstance(add, AddTask)
    item = decode_request(add.request)
    assert isinstance(item, RegisterItem)
    return item


def encode_state_frame() -> bytes:
    return encode_packet(8, TaskStatusReply(status=Status.RESULT, answer=STATE.encode()).encode())


def decode_state_frame(frame: bytes) -> DeviceStatus:
    (packet,) = FrameReader().feed(frame)
    assert isinstance(packet, Packet)
    reply = decode_device_message(packet.data)
    assert isinstance(reply, TaskStatusReply)
    state = GetDeviceStatus.decode_answer(reply.answer)
    assert isinstance(state, DeviceStatus)
    return state


def main(argv: list[str] | None = None) -> int:
    args, seconds = bench_arguments("kassa bench atol", __doc__, argv, 1.0)

    item_frame, state_frame = encode_item_frame(), encode_state_frame()
    assert decode_item_frame(item_frame) == ITEM and decode_state_frame(state_frame) == STATE
    item_data = AddTask(tid=2, request=ITEM.encode()).encode()
    state_data = TaskStatusReply(status=Status.RESULT, answer=STATE.encode()).encode()

    rows = [
        ("C1 add + E6 item: encode", "item_encode_per_s", encode_item_frame),
        ("C1 add + E6 item: decode", "item_decode_per_s", lambda: decode_item_frame(item_frame)),
        ("A3 + state answer: encode", "state_encode_per_s", encode_state_frame),
        (
            "A3 + state answer: decode",
            "state_decode_per_s",
            lambda: decode_state_frame(state_frame),
        ),
        ("framing only: encode", "framing_encode_per_s", lambda: encode_packet(7, item_data)),
        ("framing only: decode", "framing_decode_per_s", lambda: FrameReader().feed(item_frame)),
    ]
    results: dict[str, object] = {"benchmark": "atol"}
    print(
        f"ATOL v3 frames: item {len(item_frame)} bytes, state answer {len(state_frame)} bytes"
        f" (state DATA {len(state_data)} bytes); CRC-8 native: {CRC8_IS_NATIVE}"
    )
    print(f"{'operation':<30}{'frames/s':>14}")
    for label, key, fn in rows:
        per_s = rate(fn, seconds)
        results[key] = round(per_s)
        print(f"{label:<30}{per_s:>14,.0f}")
    if args.json:
        results.update(
            item_frame_bytes=len(item_frame),
            state_frame_bytes=len(state_frame),
            crc8_native=CRC8_IS_NATIVE,
            python=platform.python_version(),
            machine=platform.machine(),
        )
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
