"""``kassa bench tlv``: documents per second to decode and encode a 10-item FFD 1.2 receipt.

Kassa's codec is measured beside a straightforward reference decoder
(:mod:`benchmarks.reference_tlv`) on the same bytes, in the same run.
"""

from __future__ import annotations

import json
import platform
from datetime import datetime
from decimal import Decimal

from benchmarks.common import bench_arguments, rate
from benchmarks.reference_tlv import reference_decode
from protocols.tlv import TagMap, decode, decode_document, encode_document


def ten_item_receipt() -> TagMap:
    """A realistic FFD 1.2 card receipt with ten items."""
    items: list[int | Decimal | str | datetime | bytes | TagMap] = [
        {
            1030: f'Товар №{i}: молоко "Домик в деревне" 3,2 %, 930 мл',
            1079: 8990 + i,
            1023: Decimal("1.000"),
            1043: 8990 + i,
            1199: 11,
            1200: round((8990 + i) * 22 / 122),
            1212: 1,
            1214: 4,
            2108: 0,
        }
        for i in range(10)
    ]
    total = sum(8990 + i for i in range(10))
    return {
        1209: 4,
        1018: "7707083893",
        1048: 'ООО "Ромашка"',
        1009: "г. Москва, ул. Льва Толстого, д. 16",
        1187: "romashka.example",
        1021: "Кассир Иванова",
        1037: "0000000001061875",
        1041: "9999078902003988",
        1040: 1024,
        1012: datetime(2026, 11, 28, 12, 30, 5),
        1038: 12,
        1042: 7,
        1054: 1,
        1055: 1,
        1059: items,
        1020: total,
        1031: 0,
        1081: total,
        1215: 0,
        1216: 0,
        1217: 0,
        1008: "buyer@example.com",
        1117: "receipts@romashka.example",
        1077: bytes.fromhex("31046629765f"),
    }


def main(argv: list[str] | None = None) -> int:
    args, seconds = bench_arguments("kassa bench tlv", __doc__, argv, 1.0)

    fields = ten_item_receipt()
    wire = encode_document(3, fields)
    assert decode(wire).fields == reference_decode(wire)  # the same answer from both

    decode_rate = rate(lambda: decode_document(wire), seconds)
    encode_rate = rate(lambda: encode_document(3, fields), seconds)
    reference_rate = rate(lambda: reference_decode(wire), seconds)
    ratio = decode_rate / reference_rate
    print(f"10-item FFD 1.2 receipt, {len(wire)} bytes of TLV")
    print(f"{'operation':<28}{'documents/s':>14}")
    print(f"{'kassa decode':<28}{decode_rate:>14,.0f}")
    print(f"{'kassa encode':<28}{encode_rate:>14,.0f}")
    print(f"{'reference decode':<28}{reference_rate:>14,.0f}")
    print(f"decode speed-up over the reference: {ratio:.2f}x")
    if args.json:
        results = {
            "benchmark": "tlv",
            "document_bytes": len(wire),
            "decode_per_s": round(decode_rate),
            "encode_per_s": round(encode_rate),
            "reference_decode_per_s": round(reference_rate),
            "decode_speedup": round(ratio, 2),
            "python": platform.python_version(),
            "machine": platform.machine(),
        }
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
