"""``kassa demo``: the main job on the embedded defaults.

For now it shows the fiscal document round trip that every later stage stands on: a sample
FFD 1.2 receipt (кассовый чек, document 3) encoded to TLV, decoded back, and printed in both
JSON views.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from protocols.tlv import TagMap, decode_document, dumps, encode_document, to_fns_json, to_tags_json


def sample_receipt() -> TagMap:
    """A card-paid FFD 1.2 sale of two items, one at 22 % VAT and one at 10 %."""
    coffee_sum = 2 * 25000  # 2 × 250.00 ₽, in kopecks
    milk_sum = 8990
    coffee_vat = round(Decimal(coffee_sum) * 22 / 122)  # VAT 22/122 included in the price
    milk_vat = round(Decimal(milk_sum) * 10 / 110)
    total = coffee_sum + milk_sum
    return {
        1209: 4,  # FFD 1.2
        1018: "7707083893",
        1048: 'ООО "Ромашка"',
        1009: "г. Москва, ул. Льва Толстого, д. 16",
        1187: "romashka.example",
        1021: "Кассир Иванова Ё.",
        1037: "0000000001061875",
        1041: "9999078902003988",
        1040: 1024,
        1012: datetime(2026, 11, 28, 12, 30, 5),
        1038: 12,
        1042: 7,
        1054: 1,  # приход (sale)
        1055: 1,  # ОСН (general tax system)
        1059: [
            {
                1030: "Кофе в зёрнах №1, 250 г",
                1079: 25000,
                1023: Decimal("2"),
                1043: coffee_sum,
                1199: 11,  # НДС 22 %
                1200: coffee_vat,
                1212: 1,  # товар
                1214: 4,  # полный расчёт
                2108: 0,  # штуки
            },
            {
                1030: "Молоко 3,2 %, 0,93 л",
                1079: 8990,
                1023: Decimal("1.000"),
                1043: milk_sum,
                1199: 2,  # НДС 10 %
                1200: milk_vat,
                1212: 1,
                1214: 4,
                2108: 0,
            },
        ],
        1020: total,
        1031: 0,
        1081: total,
        1215: 0,
        1216: 0,
        1217: 0,
        1103: milk_vat,
        1008: "buyer@example.com",
        1117: "receipts@romashka.example",
        1060: "www.nalog.gov.ru",
        1077: bytes.fromhex("31046629765f"),  # the ФН returns this; kept opaque,
    }


def run_demo() -> int:
    wire = encode_document(3, sample_receipt())
    document = decode_document(wire)
    print(f"FFD 1.2 receipt, document 3: {len(wire)} bytes of TLV")
    print(wire.hex())
    print()
    print("Decoded, by tag number (kassa tlv decode --view tags):")
    print(dumps(to_tags_json({document.code: document.fields})))
    print()
    print("Decoded, FNS-JSON (kassa tlv decode --view fns):")
    print(dumps(to_fns_json({document.code: document.fields})))
    return 0
