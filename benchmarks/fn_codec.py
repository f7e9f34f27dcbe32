"""``kassa bench fn``: ФН frames encoded and decoded per second, and whole exchanges per second.

The frames are the ones a receipt costs: the status query and its answer, one 1024-byte
chunk of document TLV (07h), the form-receipt command (16h) and its answer with the fiscal
sign. An exchange is one command and its answer through a host and a device connection.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from benchmarks.common import bench_arguments, codec_rows, rate, report
from protocols.fn import (
    NEED_DATA,
    Answer,
    Command,
    FinishReceipt,
    FnConnection,
    FnPhase,
    FnStatus,
    FnWarning,
    GetFnStatus,
    ReceiptDocument,
    Role,
    SendDocumentData,
    decode_answer,
    decode_command,
)
from protocols.tlv.enums import OperationType

AT = datetime(2026, 11, 28, 12, 30)


def frames() -> list[tuple[str, Command | Answer, type[Command]]]:
    """(name, value, the command it belongs to) for each measured frame."""
    return [
        ("30h status request", GetFnStatus(), GetFnStatus),
        (
            "30h status answer",
            FnStatus(FnPhase.FISCAL, 0, False, True, FnWarning(0), AT, "9999078902013267", 1024),
            GetFnStatus,
        ),
        ("07h document data, 1 KiB", SendDocumentData(bytes(range(256)) * 4), SendDocumentData),
        ("16h form receipt", FinishReceipt(AT, OperationType.SELL, 899_545), FinishReceipt),
        ("16h receipt answer", ReceiptDocument(12, 1024, 1713993311), FinishReceipt),
    ]


def _decoder(wire: bytes, value: Command | Answer, command: type[Command]) -> Callable[[], object]:
    """Decoding ``wire`` the way a device (commands) or a host (answers) does, checked once."""
    if isinstance(value, Command):
        assert decode_command(wire) == value
        return lambda: decode_command(wire)
    assert decode_answer(wire, command) == value
    return lambda: decode_answer(wire, command)


def _exchange(command: Command, answer: Answer) -> Callable[[], object]:
    host, device = FnConnection(Role.HOST), FnConnection(Role.DEVICE)

    def run() -> object:
        device.receive_data(host.send(command))
        if device.next_event() is NEED_DATA:
            raise AssertionError("the device did not see the command")
        host.receive_data(device.send(answer))
        return host.next_event()

    return run


def main(argv: list[str] | None = None) -> int:
    args, seconds = bench_arguments("kassa bench fn", __doc__, argv, 0.5)

    results: dict[str, dict[str, int]] = {}
    for name, value, command in frames():
        wire = value.encode()
        decode = _decoder(wire, value, command)
        results[name] = {
            "bytes": len(wire),
            "encode_per_s": round(rate(value.encode, seconds)),
            "decode_per_s": round(rate(decode, seconds)),
        }

    receipt = FinishReceipt(AT, OperationType.SELL, 899_545)
    exchange_rate = rate(_exchange(receipt, ReceiptDocument(12, 1024, 1713993311)), seconds)
    exchange = f"16h exchange through a host and a device: {exchange_rate:,.0f}/s"
    table, figure = codec_rows(
        results, "frame", f"ФН frames, Kassa's codec\n{exchange}", "frames/s"
    )
    result = {"frames": results, "exchange_per_s": round(exchange_rate)}
    report(args, "fn", result, table + "\n" + exchange, figure)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
