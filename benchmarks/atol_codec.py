"""``kassa bench atol``: ATOL v3 frames encoded and decoded per second.

Two frames a driver and the emulator handle on every receipt: the host's C1 Add carrying an
E6 register-item request, and the register's A3 result carrying a 3Fh state answer. Each is
measured whole (command object <-> frame bytes) and as bare framing (DATA <-> frame bytes).

Kassa only: there is no public reference Python ATOL framing in the package set to measure
beside it (pyshtrih, the Shtrih-M reference of ``kassa bench shtrih``, has no ATOL side).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from benchmarks.common import Column, bar_figure, bench_arguments, format_table, rate, report
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
    rates = {label: rate(fn, seconds) for label, _, fn in rows}
    result: dict[str, object] = {key: round(rates[label]) for label, key, _ in rows}
    result.update(
        item_frame_bytes=len(item_frame),
        state_frame_bytes=len(state_frame),
        crc8_native=CRC8_IS_NATIVE,
    )
    heading = (
        f"ATOL v3 frames: item {len(item_frame)} bytes, state answer {len(state_frame)} bytes"
        f" (state DATA {len(state_data)} bytes); CRC-8 native: {CRC8_IS_NATIVE}"
    )
    figure = bar_figure(
        f"ATOL v3 frames, Kassa's codec (no reference to compare)\n"
        f"item frame {len(item_frame)} bytes, state frame {len(state_frame)} bytes",
        rates,
        {"Kassa": list(rates.values())},
        "frames/s",
    )
    columns = [Column("operation", "operation"), Column("frames/s", "per_s", ",.0f")]
    table = format_table([{"operation": k, "per_s": v} for k, v in rates.items()], columns)
    report(args, "atol", result, heading + "\n" + table, figure)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
