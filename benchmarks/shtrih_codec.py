"""``kassa bench shtrih``: Shtrih-M frames encoded and decoded per second, link v1 and v2.

Two payloads, each through the command layer and the link framing: an FF46h operation
(the request a receipt line costs) and a 10h short-status answer (what a driver polls while
the register prints). The last row runs whole exchanges between a host and a device
connection in memory: ENQ, NAK, frame, ACK, answer, ACK on v1; packet and answer on v2.
"""

from __future__ import annotations

import json
import platform
from decimal import Decimal

from benchmarks.common import bench_arguments, rate
from protocols.shtrih import NEED_DATA, AnswerFrame, CommandFrame, decode_answer, decode_request
from protocols.shtrih.commands import OperationV2, OperationV2Answer, ShortStatusAnswer
from protocols.shtrih.link_v1 import LinkV1Device, LinkV1Host, encode_frame, parse_frame
from protocols.shtrih.link_v2 import LinkV2Device, LinkV2Host, encode_packet, parse_packet

OPERATION = OperationV2(
    password=30,
    operation=1,
    quantity=Decimal("1.000"),
    price=8_990,
    tax_rate=0x08,
    department=1,
    payment_method=4,
    payment_object=1,
    name="Молоко «Домик в деревне» 3,2 %, 930 мл",
)
STATUS = ShortStatusAnswer(
    operator=30,
    flags=0x0292,
    mode=2,
    submode=0,
    receipt_operations_low=0,
    battery_raw=0x9F,
    supply_raw=0xE5,
    fp_error=0,
    eklz_error=0,
    receipt_operations_high=0,
    reserved=b"\x00\x00\x00",
)


def _exchange_v1(host: LinkV1Host, device: LinkV1Device, payload: bytes, answer: bytes) -> bytes:
    """One whole v1 exchange; returns the answer payload the host got."""
    device.receive_data(host.send(CommandFrame(payload=payload)))
    device.next_event()
    host.receive_data(device.data_to_send())  # NAK: idle
    host.next_event()
    device.receive_data(host.data_to_send())  # the frame
    command = device.next_event()
    assert isinstance(command, CommandFrame)
    host.receive_data(device.data_to_send() + device.send(AnswerFrame(payload=answer)))
    got = host.next_event()
    assert isinstance(got, AnswerFrame)
    device.receive_data(host.data_to_send())  # ACK
    assert device.next_event() is NEED_DATA
    return got.payload


def _exchange_v2(host: LinkV2Host, device: LinkV2Device, payload: bytes, answer: bytes) -> bytes:
    device.receive_data(host.send(CommandFrame(payload=payload)))
    command = device.next_event()
    assert isinstance(command, CommandFrame)
    host.receive_data(device.send(AnswerFrame(payload=answer)))
    got = host.next_event()
    assert isinstance(got, AnswerFrame)
    return got.payload


def measure(seconds: float) -> dict[str, float]:
    """Rates per second, keyed ``<link>_<operation>``."""
    operation = OPERATION.encode()
    status = STATUS.encode()
    done = OperationV2Answer().encode()
    v1_operation, v1_status = encode_frame(operation), encode_frame(status)
    v2_operation, v2_status = encode_packet(7, operation), encode_packet(7, status)
    assert decode_request(parse_frame(v1_operation)) == OPERATION
    assert decode_answer(parse_packet(v2_status)[1]) == STATUS

    v1_host, v1_device = LinkV1Host(), LinkV1Device(ff_after_ack=True)
    v2_host, v2_device = LinkV2Host(next_number=1), LinkV2Device()
    assert _exchange_v1(v1_host, v1_device, operation, done) == done
    assert _exchange_v2(v2_host, v2_device, operation, done) == done
    return {
        "v1_encode_ff46": rate(lambda: encode_frame(OPERATION.encode()), seconds),
        "v1_decode_ff46": rate(lambda: decode_request(parse_frame(v1_operation)), seconds),
        "v1_encode_status": rate(lambda: encode_frame(STATUS.encode()), seconds),
        "v1_decode_status": rate(lambda: decode_answer(parse_frame(v1_status)), seconds),
        "v1_exchange_ff46": rate(
            lambda: _exchange_v1(v1_host, v1_device, operation, done), seconds
        ),
        "v2_encode_ff46": rate(lambda: encode_packet(7, OPERATION.encode()), seconds),
        "v2_decode_ff46": rate(lambda: decode_request(parse_packet(v2_operation)[1]), seconds),
        "v2_encode_status": rate(lambda: encode_packet(7, STATUS.encode()), seconds),
        "v2_decode_status": rate(lambda: decode_answer(parse_packet(v2_status)[1]), seconds),
        "v2_exchange_ff46": rate(
            lambda: _exchange_v2(v2_host, v2_device, operation, done), seconds
        ),
    }


ROWS = (
    ("encode FF46h operation (request)", "encode_ff46"),
    ("decode FF46h operation (request)", "decode_ff46"),
    ("encode 10h status answer", "encode_status"),
    ("decode 10h status answer", "decode_status"),
    ("host<->device exchange, FF46h", "exchange_ff46"),
)


def main(argv: list[str] | None = None) -> int:
    args, seconds = bench_arguments("kassa bench shtrih", __doc__, argv, 1.0)

    rates = measure(seconds)
    print(f"Shtrih-M codec: FF46h request {len(OPERATION.encode())} bytes, 10h answer 16 bytes")
    print(f"{'operation (frames/s; exchanges/s)':<36}{'link v1':>12}{'link v2':>12}")
    for title, key in ROWS:
        print(f"{title:<36}{rates['v1_' + key]:>12,.0f}{rates['v2_' + key]:>12,.0f}")
    if args.json:
        result: dict[str, object] = {"benchmark": "shtrih"}
        result.update({f"{key}_per_s": round(value) for key, value in rates.items()})
        result.update(python=platform.python_version(), machine=platform.machine())
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
