"""FFD TLV (формат фискальных документов): the codec, the tag dictionary and the JSON views."""

from protocols.tlv.codec import (
    DOCUMENT_CODES,
    Decoded,
    DecodeWarning,
    FieldValue,
    FiscalDocument,
    Scalar,
    TagMap,
    TlvError,
    decode,
    decode_document,
    decode_value,
    encode,
    encode_document,
    encode_value,
)
from protocols.tlv.dictionary import TAGS
from protocols.tlv.types import FieldType, TagSpec, Width
from protocols.tlv.views import dumps, from_tags_json, loads, to_fns_json, to_tags_json

__all__ = [
    "DOCUMENT_CODES",
    "TAGS",
    "DecodeWarning",
    "Decoded",
    "FieldType",
    "FieldValue",
    "FiscalDocument",
    "Scalar",
    "TagMap",
    "TagSpec",
    "TlvError",
    "Width",
    "decode",
    "decode_document",
    "decode_value",
    "dumps",
    "encode",
    "encode_document",
    "encode_value",
    "from_tags_json",
    "loads",
    "to_fns_json",
    "to_tags_json",
]
