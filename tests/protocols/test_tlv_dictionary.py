"""The tag dictionary covers what fiscal documents carry, with consistent entries."""

from __future__ import annotations

import pytest

from protocols.tlv import DOCUMENT_CODES, TAGS, FieldType, Width
from protocols.tlv.enums import VatRate

# Required and optional tags per document, from the FNS-derived tables in ffd.md §2.
REGISTRATION = {
    1209,
    1221,
    1188,
    1189,
    1013,
    1048,
    1018,
    1062,
    1012,
    1037,
    1002,
    1110,
    1109,
    1056,
    1001,
    1108,
    1040,
    1041,
    1021,
    1187,
    1017,
    1077,
    1207,
    1203,
    1213,
    1190,
    1036,
    1009,
    1046,
    1060,
    1117,
    1126,
    1193,
    1057,
    1084,
    1101,
    1205,
    1290,
    1274,
    1275,
}
OPEN_SHIFT = {
    1209,
    1018,
    1012,
    1038,
    1037,
    1041,
    1040,
    1077,
    1048,
    1021,
    1203,
    1009,
    1187,
    1050,
    1051,
    1052,
    1053,
    1206,
    1188,
    1189,
    1084,
    1276,
    1277,
}
CLOSE_SHIFT = {
    1209,
    1018,
    1012,
    1038,
    1118,
    1111,
    1097,
    1098,
    1050,
    1051,
    1052,
    1053,
    1037,
    1041,
    1040,
    1077,
    1194,
    1157,
    1213,
    1048,
    1021,
    1203,
    1009,
    1187,
    1206,
    2104,
    2112,
    1278,
    1279,
}
STATUS = {
    1209,
    1018,
    1012,
    1002,
    1116,
    1097,
    1098,
    1037,
    1041,
    1040,
    1077,
    1038,
    1009,
    1187,
    1157,
    1158,
    1213,
    1280,
    1281,
}
RECEIPT = {
    1042,
    1054,
    1055,
    1020,
    1031,
    1081,
    1215,
    1216,
    1217,
    1102,
    1103,
    1104,
    1105,
    1106,
    1107,
    1059,
    1008,
    1117,
    1060,
    1057,
    1192,
    1227,
    1228,
    1256,
    1261,
    1270,
    2107,
    1005,
    1016,
    1026,
    1044,
    1073,
    1074,
    1075,
    1000,
    1021,
    1203,
    1036,
    1084,
}
ITEM = {
    1030,
    1079,
    1023,
    1043,
    1199,
    1200,
    1198,
    1212,
    1214,
    1197,
    2108,
    1162,
    1163,
    1191,
    1222,
    1223,
    1224,
    1226,
    1229,
    1230,
    1231,
    1260,
    1291,
    2102,
    2106,
    2115,
    1171,
    1225,
    1292,
    1293,
    1294,
    1262,
    1263,
    1264,
    1265,
    1271,
    1272,
    1273,
}
BUYER = {1227, 1228, 1243, 1244, 1245, 1246, 1254}
CORRECTION = {1173, 1174, 1177, 1178, 1179}
COUNTERS = {
    1129,
    1130,
    1131,
    1132,
    1133,
    1134,
    1135,
    1136,
    1138,
    1139,
    1140,
    1141,
    1142,
    1143,
    1144,
    1145,
    1146,
    1183,
    1201,
    1218,
    1219,
    1220,
    1232,
    1233,
}
OFD_ACK = {1017, 1078, 1041, 1040, 1012, 1068, 1022}
MARKING = {
    1162,
    1163,
    *range(1300, 1310),
    *range(1320, 1326),
    2000,
    2001,
    2002,
    2003,
    2004,
    2005,
    2006,
    2007,
    2100,
    2101,
    2102,
    2104,
    2105,
    2106,
    2107,
    2108,
    2109,
    2110,
    2111,
    2112,
    2113,
    2114,
    2115,
    2116,
}

GROUPS = {
    "registration": REGISTRATION,
    "open shift": OPEN_SHIFT,
    "close shift": CLOSE_SHIFT,
    "status report": STATUS,
    "receipt": RECEIPT,
    "item": ITEM,
    "buyer": BUYER,
    "correction": CORRECTION,
    "counters": COUNTERS,
    "OFD ack": OFD_ACK,
    "marking": MARKING,
    "documents": set(DOCUMENT_CODES),
}


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_dictionary_covers(group: str) -> None:
    missing = sorted(GROUPS[group] - TAGS.keys())
    assert not missing, f"{group}: missing tags {missing}"


def test_entries_are_consistent() -> None:
    for tag, spec in TAGS.items():
        assert spec.tag == tag
        assert 0 < spec.max_length <= 0xFFFF, tag
        assert spec.name_ru and spec.name_en and spec.fns_key, tag
        if spec.width is not None:
            assert spec.type in (FieldType.STRING, FieldType.BYTES), tag
        if spec.type is FieldType.VLN:
            assert spec.max_length <= 8, tag


@pytest.mark.parametrize(
    ("tag", "kind", "length", "width"),
    [
        (1018, FieldType.STRING, 12, Width.PADDED),
        (1037, FieldType.STRING, 20, Width.PADDED),
        (1041, FieldType.STRING, 16, Width.EXACT),
        (1077, FieldType.BYTES, 6, Width.EXACT),
        (1020, FieldType.VLN, 6, None),
        (1023, FieldType.FVLN, 8, None),
        (1040, FieldType.UINT32, 4, None),
        (1012, FieldType.UNIXTIME, 4, None),
        (1059, FieldType.STLV, 1024, None),
        (2115, FieldType.STRING, 4, Width.EXACT),
    ],
)
def test_key_entries(tag: int, kind: FieldType, length: int, width: Width | None) -> None:
    spec = TAGS[tag]
    assert (spec.type, spec.max_length, spec.width) == (kind, length, width)


def test_every_vat_rate_of_2026() -> None:
    """1199 codes 1–12, with 5 %, 7 % and 22 % and their 105/107/122 forms (ЕД-7-20/1050@)."""
    assert TAGS[1199].type is FieldType.BYTE
    assert [rate.value for rate in VatRate] == list(range(1, 13))
    assert VatRate(7).percent == VatRate(9).percent == 5
    assert VatRate(8).percent == VatRate(10).percent == 7
    assert VatRate(11).percent == VatRate(12).percent == 22
    assert VatRate.NONE.percent is None


def test_repeatable_tags() -> None:
    for tag in (1059, 1084, 1073, 1074, 1075, 1171, 1260, 2007):
        assert TAGS[tag].repeats, tag
