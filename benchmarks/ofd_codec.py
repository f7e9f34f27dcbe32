"""``kassa bench ofd``: OFD session headers, containers and acks encoded and decoded per second.

Containers are measured at three sizes: an operator ack (document 7, the G2 shape plus a
trailer), a 1 KiB receipt and the largest container, 32 KiB. A message is one KKT request
framed out of a byte stream by a server connection.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import datetime

from benchmarks.common import bench_arguments, codec_rows, rate, report
from protocols.ofd import (
    MAX_CONTAINER,
    OFD_TO_KKT,
    Container,
    Message,
    OfdConnection,
    OperatorAck,
    Role,
    SessionHeader,
)

FN_NUMBER = "9999078902013267"


def _tlv(tag: int, value: bytes) -> bytes:
    return struct.pack("<HH", tag, len(value)) + value


def _receipt(size: int) -> Container:
    """A KKT → OFD container whose whole size is ``size`` bytes."""
    document = _tlv(3, bytes(size - 32 - 10 - 4))
    return Container(
        document_type=3,
        fn_number=FN_NUMBER,
        fd_number=1024,
        document=document,
        trailer=b"\x81\x06" + bytes(8),
    )


ACK = OperatorAck(
    ofd_inn="7704211201",
    fn_number=FN_NUMBER,
    fd_number=1024,
    at=datetime(2026, 11, 28, 12, 30, 5),
    operator_sign=bytes(range(16)),
)


def containers() -> list[tuple[str, Container]]:
    ack = Container(
        document_type=7,
        fn_number=FN_NUMBER,
        fd_number=1024,
        document=ACK.to_tlv(),
        trailer=b"\x82\x06" + bytes(8),
        message_type=OFD_TO_KKT,
    )
    return [
        ("operator ack", ack),
        ("receipt, 1 KiB", _receipt(1024)),
        ("receipt, 32 KiB", _receipt(MAX_CONTAINER)),
    ]


def _decoder(data: bytes) -> Callable[[], object]:
    return lambda: Container.decode(data)


def _framing(message: Message) -> Callable[[], object]:
    server, wire = OfdConnection(Role.SERVER), message.encode()
    reply = Message.wrap(None, client_id=FN_NUMBER)

    def run() -> object:
        server.receive_data(wire)
        event = server.next_event()
        server.send(reply)
        return event

    return run


def main(argv: list[str] | None = None) -> int:
    args, seconds = bench_arguments("kassa bench ofd", __doc__, argv, 0.5)

    rows: dict[str, dict[str, int]] = {}

    def measure(
        name: str, size: int, encode: Callable[[], bytes], decode: Callable[[], object]
    ) -> None:
        rows[name] = {
            "bytes": size,
            "encode_per_s": round(rate(encode, seconds)),
            "decode_per_s": round(rate(decode, seconds)),
        }

    header = SessionHeader(client_id=FN_NUMBER, body_length=95)
    wire = header.encode()
    assert SessionHeader.decode(wire) == header
    measure("session header", len(wire), header.encode, lambda: SessionHeader.decode(wire))
    for name, container in containers():
        data = container.encode()
        assert Container.decode(data) == container
        measure(f"container: {name}", len(data), container.encode, _decoder(data))
    document = ACK.to_tlv()
    assert OperatorAck.from_tlv(document) == ACK
    measure("operator ack TLV", len(document), ACK.to_tlv, lambda: OperatorAck.from_tlv(document))

    message = Message.wrap(_receipt(1024), client_id=FN_NUMBER)
    framing_rate = rate(_framing(message), seconds)
    framing = f"1 KiB messages framed by a server connection: {framing_rate:,.0f}/s"
    table, figure = codec_rows(
        rows, "value", f"OFD protocol values, Kassa's codec\n{framing}", "values/s (log scale)"
    )
    figure.axes[0].set_xscale("log")
    result = {"values": rows, "messages_per_s": round(framing_rate)}
    report(args, "ofd", result, table + "\n" + framing, figure)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
