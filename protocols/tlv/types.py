"""The FFD data types (типы данных ФФД) and the shape of one tag dictionary entry.

Every tag of a fiscal document has one of these wire types; the dictionary
(:mod:`protocols.tlv.dictionary`) says which, and how long its value may be.
"""

from __future__ import annotations

import enum

import attrs


class FieldType(enum.Enum):
    """How a tag's value is laid out on the wire."""

    BYTE = "byte"  # 1 byte: booleans, enums, bit masks
    UINT16 = "uint16"  # 2 bytes LE
    UINT32 = "uint32"  # 4 bytes LE, always all 4
    VLN = "vln"  # unsigned LE of variable length; money in kopecks
    FVLN = "fvln"  # 1 byte of decimal places, then the mantissa as a VLN
    UNIXTIME = "unixtime"  # 4 bytes LE: local wall-clock seconds since 1970-01-01
    STRING = "string"  # CP866 text
    BYTES = "bytes"  # opaque bytes
    STLV = "stlv"  # a nested list of TLVs


class Width(enum.Enum):
    """How a fixed-width STRING or BYTES value fills its width."""

    PADDED = "padded"  # right-padded with spaces to the width (INNs, registration number)
    EXACT = "exact"  # exactly the width (ФН number 1041, country 1230, 1077 …)


@attrs.frozen(slots=True)
class TagSpec:
    """One entry of the tag dictionary (справочник реквизитов).

    ``max_length`` is the most value bytes the tag may carry; for a fixed-width tag it is the
    width. A UINT16/UINT32 tag whose ``max_length`` exceeds its natural width (1213 is U32 in
    FFD ≤ 1.1 and U16 in 1.2) decodes any length between the two and encodes the natural width.
    """

    tag: int
    type: FieldType
    max_length: int
    width: Width | None
    repeats: bool
    name_ru: str
    name_en: str
    fns_key: str
