"""``kassa bench shtrih``: Shtrih-M frames encoded and decoded per second, link v1 and v2.

Two payloads, each through the command layer and the link framing: an FF46h operation
(the request a receipt line costs) and a 10h short-status answer (what a driver polls while
the register prints). The last row runs whole exchanges between a host and a device
connection in memory: ENQ, NAK, frame, ACK, answer, ACK on v1; packet and answer on v2.

Where it compares, pyshtrih (the Shtrih-M Python driver, when installed) runs on the same
payloads in the same run: its v1 frame building, its frame reading (framing only) and its
decoding of the 10h answer; :mod:`benchmarks.reference_shtrih` says exactly which of its code
each row runs. Ratios are Kassa link v1 over pyshtrih. pyshtrih has no link v2, never decodes a
request and encodes no answer objects, so the other rows are Kassa's alone.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING

from benchmarks import reference_shtrih as reference
from benchmarks.common import (
    Column,
    bar_figure,
    bench_arguments,
    format_table,
    report,
    side_by_side,
)
from protocols.shtrih import NEED_DATA, AnswerFrame, CommandFrame, decode_answer, decode_request
from protocols.shtrih.commands import OperationV2, OperationV2Answer, ShortStatusAnswer
from protocols.shtrih.link_v1 import LinkV1Device, LinkV1Host, encode_frame, parse_frame
from protocols.shtrih.link_v2 import LinkV2Device, LinkV2Host, encode_packet, parse_packet

if TYPE_CHECKING:
    from matplotlib.figure import Figure

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
    """Rates per second, keyed ``<link>_<operation>``; pyshtrih's as ``pyshtrih_<operation>``.

    The links (and pyshtrih) are measured side by side on each row, so that a ratio is taken
    between figures of the same moments of a busy machine.
    """
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
    calls: dict[str, Callable[[], object]] = {
        "v1_frame_ff46": lambda: encode_frame(operation),
        "v1_parse_ff46": lambda: parse_frame(v1_operation),
        "v1_frame_status": lambda: encode_frame(status),
        "v1_parse_status": lambda: parse_frame(v1_status),
        "v1_encode_ff46": lambda: encode_frame(OPERATION.encode()),
        "v1_decode_ff46": lambda: decode_request(parse_frame(v1_operation)),
        "v1_encode_status": lambda: encode_frame(STATUS.encode()),
        "v1_decode_status": lambda: decode_answer(parse_frame(v1_status)),
        "v1_exchange_ff46": lambda: _exchange_v1(v1_host, v1_device, operation, done),
        "v2_frame_ff46": lambda: encode_packet(7, operation),
        "v2_parse_ff46": lambda: parse_packet(v2_operation),
        "v2_frame_status": lambda: encode_packet(7, status),
        "v2_parse_status": lambda: parse_packet(v2_status),
        "v2_encode_ff46": lambda: encode_packet(7, OPERATION.encode()),
        "v2_decode_ff46": lambda: decode_request(parse_packet(v2_operation)[1]),
        "v2_encode_status": lambda: encode_packet(7, STATUS.encode()),
        "v2_decode_status": lambda: decode_answer(parse_packet(v2_status)[1]),
        "v2_exchange_ff46": lambda: _exchange_v2(v2_host, v2_device, operation, done),
    }
    if reference.VERSION is not None:
        calls.update(_pyshtrih(operation, status))
    rates: dict[str, float] = {}
    for _, _, key in ROWS:
        row = {name: call for name, call in calls.items() if name.split("_", 1)[1] == key}
        rates.update(side_by_side(row, seconds))
    return rates


def _pyshtrih(operation: bytes, status: bytes) -> dict[str, Callable[[], object]]:
    """pyshtrih's framing on the same payloads, each checked against Kassa's bytes first."""
    calls: dict[str, Callable[[], object]] = {}
    for name, payload in (("ff46", operation), ("status", status)):
        cmd, params = reference.split_payload(payload)
        frame = encode_frame(payload)
        assert reference.pyshtrih_frame(cmd, params) == frame
        parse = reference.pyshtrih_reader(frame, decode=False)
        assert parse() == payload
        calls[f"pyshtrih_frame_{name}"] = functools.partial(reference.pyshtrih_frame, cmd, params)
        calls[f"pyshtrih_parse_{name}"] = parse
    read_answer = reference.pyshtrih_reader(encode_frame(status), decode=True)
    fields = getattr(read_answer(), "params", {})
    assert fields["Порядковый номер оператора"] == STATUS.operator
    assert fields["Напряжение резервной батареи"] == STATUS.battery_raw
    calls["pyshtrih_decode_status"] = read_answer
    return calls


#: (table row, plot label, key); the rows pyshtrih has a counterpart for are in :data:`COMPARED`.
ROWS = (
    ("framing: FF46h payload -> frame", "FF46h: build frame", "frame_ff46"),
    ("framing: FF46h frame -> payload", "FF46h: read frame", "parse_ff46"),
    ("framing: 10h answer payload -> frame", "10h: build frame", "frame_status"),
    ("framing: 10h answer frame -> payload", "10h: read frame", "parse_status"),
    ("encode FF46h operation (request)", "FF46h: encode", "encode_ff46"),
    ("decode FF46h operation (request)", "FF46h: decode", "decode_ff46"),
    ("encode 10h status answer", "10h: encode", "encode_status"),
    ("decode 10h status answer", "10h: decode", "decode_status"),
    ("host<->device exchange, FF46h", "FF46h: exchange", "exchange_ff46"),
)
COMPARED = ("frame_ff46", "parse_ff46", "frame_status", "parse_status", "decode_status")


def main(argv: list[str] | None = None) -> int:
    args, seconds = bench_arguments("kassa bench shtrih", __doc__, argv, 1.0)

    rates = measure(seconds)
    compared = [key for key in COMPARED if f"pyshtrih_{key}" in rates]
    result: dict[str, object] = {f"{key}_per_s": round(value) for key, value in rates.items()}
    result["reference"] = f"pyshtrih {reference.VERSION}" if compared else None
    result.update({f"{key}_speedup": _ratio(rates, key) for key in compared})
    table = []
    for title, _, key in ROWS:
        row = {
            "operation": title,
            "v1": f"{rates['v1_' + key]:,.0f}",
            "v2": f"{rates['v2_' + key]:,.0f}",
        }
        if key in compared:
            row["pyshtrih"] = f"{rates['pyshtrih_' + key]:,.0f}"
            row["speedup"] = f"{_ratio(rates, key):.2f}x"
        table.append(row)
    columns = [
        Column("operation (frames/s; exchanges/s)", "operation"),
        Column("kassa v1", "v1"),
        Column("kassa v2", "v2"),
        Column(f"pyshtrih {reference.VERSION or '(absent)'}", "pyshtrih"),
        Column("v1/pyshtrih", "speedup"),
    ]
    heading = f"Shtrih-M codec: FF46h request {len(OPERATION.encode())} bytes, 10h answer 16 bytes"
    report(args, "shtrih", result, heading + "\n" + format_table(table, columns), _figure(rates))
    return 0


def _ratio(rates: dict[str, float], key: str) -> float:
    return round(rates[f"v1_{key}"] / rates[f"pyshtrih_{key}"], 2)


def _figure(rates: dict[str, float]) -> Figure:
    """Kassa link v1 beside pyshtrih where they compare; Kassa v1 beside v2 without pyshtrih."""
    labels = {key: label for _, label, key in ROWS}
    if f"pyshtrih_{COMPARED[0]}" in rates:
        keys: tuple[str, ...] = COMPARED
        other, label = "pyshtrih", f"pyshtrih {reference.VERSION}"
        heading = "Shtrih-M link v1, the same payloads\nKassa vs pyshtrih (ratio in brackets)"
    else:
        keys, other, label = tuple(key for _, _, key in ROWS), "v2", "Kassa link v2"
        heading = "Shtrih-M: Kassa link v1 and v2\n(pyshtrih not installed; v1/v2 in brackets)"
    return bar_figure(
        heading,
        [f"{labels[key]} ({rates['v1_' + key] / rates[f'{other}_{key}']:.2f}x)" for key in keys],
        {
            "Kassa link v1": [rates[f"v1_{key}"] for key in keys],
            label: [rates[f"{other}_{key}"] for key in keys],
        },
        "operations/s",
    )


if __name__ == "__main__":
    raise SystemExit(main())
