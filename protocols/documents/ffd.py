"""Receipts to FFD TLV and back: the tags the register's ФН receives, in FFD 1.2 or 1.05.

A receipt leaves Kassa as the tags the register passes to its ФН; the ФН adds the fiscal
header (1040 FD number, 1041 ФН number, 1012 time, 1038 shift, 1042 receipt number, 1077 the
fiscal sign …). Decoding a fiscalized document gives the receipt back together with that
header (:class:`FiscalData`).

FFD 1.05 has no marking block (1163), no buyer block (1256), no fractional quantity (1291), no
industry or operating properties (1260, 1261, 1270), no cashless details (1234), no measure
code (2108, it has the 1197 text unit instead) and only the VAT rates 1–6. Encoding a receipt
that uses any of them as 1.05 is an error that names the field, never a silent drop.

Receipt-level VAT totals: 1102–1107 for the rates FFD 1.05 had, and, for the 2025–2026 rates
(5 %, 7 %, 22 % and their calculated forms), the 1115 block of 1119 entries (1199 rate and 1120
amount) that order ЕД-7-20/236@ added; which of the two a given OFD expects for the new rates
is not public (ffd.md §9.2), so both are emitted where they apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

import attrs

from protocols.documents.model import (
    PRODUCT_CODE_KINDS,
    PRODUCT_CODE_TAGS,
    Cashier,
    CashlessPayment,
    Client,
    Company,
    CorrectionBasis,
    CorrectionReceipt,
    Item,
    Marking,
    Payments,
    Receipt,
    Supplier,
)
from protocols.documents.vat import LEGACY_TOTAL_TAGS, VatTotalRule, vat_totals
from protocols.errors import ProtocolError
from protocols.inn import normalise_inn
from protocols.tlv import (
    FiscalDocument,
    Scalar,
    TagMap,
    decode_document,
    encode_document,
    to_fns_json,
)
from protocols.tlv.enums import FfdVersion

T = TypeVar("T")

#: Item tags that FFD 1.05 does not have.
_ITEM_TAGS_12_ONLY = {2108: "measure", 1260: "industry_props", 1291: "fraction"}
_RECEIPT_TAGS_12_ONLY = {1261: "industry_props", 1270: "operating_prop", 1011: "time_zone"}
_INN_TAGS = frozenset({1016, 1017, 1018, 1203, 1226, 1228})


class DocumentError(ProtocolError):
    """A receipt that cannot be put into a given FFD version, or a document that is not one."""


@attrs.frozen
class FiscalData:
    """The fiscal header the ФН adds to a receipt (реквизиты, формируемые ФН)."""

    fd_number: int  # 1040 номер ФД
    fn_number: str  # 1041 номер ФН
    registration_number: str  # 1037 регистрационный номер ККТ
    time: datetime  # 1012 дата, время (register-local)
    shift_number: int  # 1038 номер смены
    receipt_number: int  # 1042 номер чека за смену
    fiscal_sign: bytes  # 1077 ФПД, 6 bytes as received
    ffd_version: int  # 1209


@attrs.frozen
class FiscalizedReceipt:
    """A receipt as the ФН signed it: the model, the fiscal header, and the bytes themselves."""

    receipt: Receipt
    fiscal: FiscalData | None
    document: FiscalDocument


# --- model → tags ---------------------------------------------------------------------------------


def block_to_tags(block: attrs.AttrsInstance) -> TagMap:
    """The tags of an attrs block whose fields carry ``tag`` metadata, in field order."""
    out: TagMap = {}
    for field in attrs.fields(type(block)):
        number = field.metadata.get("tag")
        if number is None:
            continue
        value = getattr(block, field.name)
        if value is None or value == ():
            continue
        if field.metadata.get("block") is not None:
            if isinstance(value, tuple):
                out[number] = [block_to_tags(v) for v in value]
            else:
                out[number] = block_to_tags(value)
        elif isinstance(value, tuple):
            out[number] = list(value)
        else:
            out[number] = value
    return out


def _item_tags(item: Item, index: int, ffd: FfdVersion) -> TagMap:
    out = block_to_tags(item)
    if ffd is FfdVersion.V1_05:
        for number, name in _ITEM_TAGS_12_ONLY.items():
            if number in out and not (number == 2108 and item.unit is not None):
                if number == 2108 and out[number] == 0:
                    continue
                _unsupported(f"items[{index}].{name}")
        out.pop(2108, None)
        if item.marking is not None:
            _unsupported(f"items[{index}].marking")
        if item.vat > 6:
            _unsupported(f"items[{index}].vat")
    elif item.unit is not None:
        _unsupported(f"items[{index}].unit", "FFD 1.2 has the 2108 measure code instead")
    if item.supplier is not None:
        supplier = block_to_tags(item.supplier)
        if supplier:
            out[1224] = supplier
        if item.supplier.inn is not None:
            out[1226] = item.supplier.inn
    if item.fraction is not None:
        fraction = item.fraction
        out[1291] = {1292: fraction.text, 1293: fraction.numerator, 1294: fraction.denominator}
    if item.marking is not None:
        marking = item.marking
        out[1163] = {PRODUCT_CODE_TAGS[marking.kind]: marking.code}
        if marking.planned_status is not None:
            out[2003] = marking.planned_status
        out[2102] = marking.processing_mode
        if marking.check_result is not None:
            out[2106] = marking.check_result
        if marking.control_code is not None:
            out[2115] = marking.control_code
    return out


def _unsupported(path: str, why: str = "FFD 1.05 has no such tag") -> None:
    raise DocumentError(f"cannot be encoded: {why}", path)


def receipt_to_tags(
    receipt: Receipt,
    ffd: FfdVersion = FfdVersion.V1_2,
    vat_rule: VatTotalRule = VatTotalRule.SUM_OF_ITEMS,
) -> TagMap:
    """The document's tags as the register passes them to its ФН, in a fixed order."""
    if ffd not in (FfdVersion.V1_2, FfdVersion.V1_05):
        raise DocumentError(f"FFD version {ffd} is not supported for encoding", "ffd")
    out: TagMap = {1209: int(ffd)}
    out.update(block_to_tags(receipt.company))
    if receipt.cashier is not None:
        out.update(block_to_tags(receipt.cashier))
    out[1054] = receipt.operation
    if isinstance(receipt, CorrectionReceipt):
        out[1173] = receipt.correction_type
        if receipt.basis is not None:
            out[1174] = block_to_tags(receipt.basis)
    out[1059] = [_item_tags(item, i, ffd) for i, item in enumerate(receipt.items)]
    out[1020] = receipt.total
    out.update(block_to_tags(receipt.payments))
    if receipt.payments.cashless:
        if ffd is FfdVersion.V1_05:
            _unsupported("payments.cashless")
        out[1234] = {1235: [block_to_tags(p) for p in receipt.payments.cashless]}
    out.update(_vat_total_tags(receipt, ffd, vat_rule))
    client = receipt.client
    if client is not None:
        if client.contact is not None:
            out[1008] = client.contact
        details = block_to_tags(client)
        if ffd is FfdVersion.V1_05:
            extra = sorted(set(details) - {1227, 1228})
            if extra:
                _unsupported("client", f"FFD 1.05 has no buyer tags {extra}")
            out.update(details)
        elif details:
            out[1256] = details
    rest = block_to_tags(receipt)
    if ffd is FfdVersion.V1_05:
        for number, name in _RECEIPT_TAGS_12_ONLY.items():
            if number in rest:
                _unsupported(name)
    out.update(rest)
    if receipt.internet:
        out[1125] = 1
    return out


def _vat_total_tags(receipt: Receipt, ffd: FfdVersion, rule: VatTotalRule) -> TagMap:
    totals = vat_totals(((item.sum, item.vat) for item in receipt.items), rule)
    out: TagMap = {}
    new_rates: list[Scalar | TagMap] = []
    for rate in sorted(totals):
        legacy = LEGACY_TOTAL_TAGS.get(rate)
        if legacy is not None:
            out[legacy] = totals[rate]
        elif ffd is FfdVersion.V1_2 and 7 <= rate <= 12:
            new_rates.append({1199: rate, 1120: totals[rate]})
    if new_rates:
        out[1115] = {1119: new_rates}
    return out


def encode_receipt(
    receipt: Receipt,
    ffd: FfdVersion = FfdVersion.V1_2,
    vat_rule: VatTotalRule = VatTotalRule.SUM_OF_ITEMS,
) -> bytes:
    """The receipt as one FFD TLV document (3 or 31)."""
    return encode_document(receipt.document_code, receipt_to_tags(receipt, ffd, vat_rule))


# --- tags → model ---------------------------------------------------------------------------------


def _clean(number: int, value: Any) -> Any:
    """Undo the wire's padding for the model: INNs and the registration number are trimmed."""
    if isinstance(value, str):
        if number in _INN_TAGS:
            return normalise_inn(value)
        if number == 1037:
            return value.rstrip(" ")
    return value


def tagged_kwargs(cls: type, fields: Mapping[int, Any], path: str) -> dict[str, Any]:
    """Constructor arguments for the fields of ``cls`` that carry a tag, read from ``fields``.

    A missing required tag and a repeated tag where the model holds one value are errors
    that name the path.
    """
    kwargs: dict[str, Any] = {}
    for field in attrs.fields(cls):
        number = field.metadata.get("tag")
        if number is None:
            continue
        where = f"{path}/{number}"
        if number not in fields:
            if field.default is attrs.NOTHING:
                raise DocumentError("required tag is missing", where)
            continue
        value = fields[number]
        many = field.default == ()
        if isinstance(value, list) and not many:
            if len(value) != 1:
                raise DocumentError(f"tag occurs {len(value)} times, the model holds one", where)
            value = value[0]
        nested = field.metadata.get("block")
        if nested is not None:
            values = value if isinstance(value, list) else [value]
            built = [
                block_from_tags(nested, _as_map(v, f"{where}[{i}]"), f"{where}[{i}]")
                for i, v in enumerate(values)
            ]
            kwargs[field.name] = tuple(built) if many else built[0]
        elif many:
            values = value if isinstance(value, list) else [value]
            kwargs[field.name] = tuple(_clean(number, v) for v in values)
        else:
            kwargs[field.name] = _clean(number, value)
    return kwargs


def block_from_tags(cls: type[T], fields: Mapping[int, Any], path: str) -> T:
    """Build an attrs block from its tags."""
    return cls(**tagged_kwargs(cls, fields, path))


def _as_map(value: Any, path: str) -> Mapping[int, Any]:
    if not isinstance(value, dict):
        raise DocumentError("expected an STLV", path)
    return value


def _item_from_tags(fields: Mapping[int, Any], path: str) -> Item:
    item = block_from_tags(Item, fields, path)
    if 2108 not in fields:
        item = attrs.evolve(item, measure=None)
    supplier = fields.get(1224)
    if supplier is not None or 1226 in fields:
        base = block_from_tags(Supplier, _as_map(supplier or {}, f"{path}/1224"), f"{path}/1224")
        item = attrs.evolve(item, supplier=attrs.evolve(base, inn=_clean(1226, fields.get(1226))))
    code = fields.get(1163)
    if code is not None:
        code = _as_map(code, f"{path}/1163")
        if len(code) != 1:
            raise DocumentError("expected exactly one product code", f"{path}/1163")
        ((number, value),) = code.items()
        kind = PRODUCT_CODE_KINDS.get(number)
        if kind is None:
            raise DocumentError(f"tag {number} is not a product code", f"{path}/1163/{number}")
        marking = Marking(
            kind=kind,
            code=value,
            planned_status=fields.get(2003),
            processing_mode=fields.get(2102, 0),
            check_result=fields.get(2106),
            control_code=fields.get(2115),
        )
        item = attrs.evolve(item, marking=marking)
    return item


def receipt_from_tags(code: int, fields: Mapping[int, Any]) -> Receipt:
    """The model of a receipt (3) or correction receipt (31) from its tags."""
    if code not in (3, 31):
        raise DocumentError(f"document {code} is not a receipt", str(code))
    root = str(code)
    raw_items = fields.get(1059, [])
    items = tuple(
        _item_from_tags(_as_map(v, f"{root}/1059[{i}]"), f"{root}/1059[{i}]")
        for i, v in enumerate(raw_items if isinstance(raw_items, list) else [raw_items])
    )
    company = block_from_tags(Company, fields, root)
    cashier = block_from_tags(Cashier, fields, root) if 1021 in fields else None
    buyer = dict(_as_map(fields.get(1256, {}), f"{root}/1256"))
    for number in (1227, 1228):  # FFD 1.05 keeps them at receipt level
        if number in fields:
            buyer[number] = fields[number]
    client = None
    if buyer or 1008 in fields:
        client = attrs.evolve(
            block_from_tags(Client, buyer, f"{root}/1256"), contact=fields.get(1008)
        )
    cashless: tuple[CashlessPayment, ...] = ()
    if 1234 in fields:
        entries = _as_map(fields[1234], f"{root}/1234").get(1235, [])
        cashless = tuple(
            block_from_tags(
                CashlessPayment, _as_map(v, f"{root}/1234/1235[{i}]"), f"{root}/1234/1235[{i}]"
            )
            for i, v in enumerate(entries)
        )
    payments = attrs.evolve(block_from_tags(Payments, fields, root), cashless=cashless)
    if 1054 not in fields or 1020 not in fields:
        raise DocumentError(
            "required tag is missing", f"{root}/{1054 if 1054 not in fields else 1020}"
        )
    common: dict[str, Any] = {
        "operation": fields[1054],
        "items": items,
        "payments": payments,
        "company": company,
        "total": fields[1020],
        "cashier": cashier,
        "client": client,
        "internet": bool(fields.get(1125, 0)),
    }
    common.update(tagged_kwargs(Receipt, fields, root))
    if code == 3:
        return Receipt(**common)
    basis = None
    if 1174 in fields:
        basis = block_from_tags(
            CorrectionBasis, _as_map(fields[1174], f"{root}/1174"), f"{root}/1174"
        )
    return CorrectionReceipt(**common, correction_type=fields.get(1173, 0), basis=basis)


def fiscal_data_from_tags(fields: Mapping[int, Any]) -> FiscalData | None:
    """The ФН's header of a fiscalized document, or None for a document not yet signed."""
    if 1077 not in fields:
        return None
    return FiscalData(
        fd_number=fields.get(1040, 0),
        fn_number=fields.get(1041, ""),
        registration_number=_clean(1037, fields.get(1037, "")),
        time=fields.get(1012, datetime(1970, 1, 1)),
        shift_number=fields.get(1038, 0),
        receipt_number=fields.get(1042, 0),
        fiscal_sign=fields[1077],
        ffd_version=fields.get(1209, 0),
    )


def decode_receipt(wire: bytes) -> FiscalizedReceipt:
    """A receipt document (3 or 31) from its TLV, with the ФН's header where it has one."""
    document = decode_document(wire)
    receipt = receipt_from_tags(document.code, document.fields)
    return FiscalizedReceipt(receipt, fiscal_data_from_tags(document.fields), document)


def receipt_to_fns_json(receipt: Receipt, ffd: FfdVersion = FfdVersion.V1_2) -> dict[str, Any]:
    """The FNS-JSON view of the receipt's tags."""
    return to_fns_json({receipt.document_code: receipt_to_tags(receipt, ffd)})


def legacy_product_code(type_code: int, gtin: str, serial: bytes = b"") -> bytes:
    """1162 код товара of FFD 1.05: a 2-byte identifier type, the GTIN as a 6-byte big-endian
    integer, then the serial for marked goods (order ММВ-7-20/229@; ffd.md §2.4)."""
    if not (gtin.isascii() and gtin.isdigit()) or int(gtin) >= 1 << 48:
        raise DocumentError(f"{gtin!r} is not a GTIN of at most 14 digits", "1162")
    return type_code.to_bytes(2, "big") + int(gtin).to_bytes(6, "big") + serial


def parse_legacy_product_code(raw: bytes) -> tuple[int, str, bytes]:
    """(identifier type, GTIN, serial) of a 1162 value."""
    if len(raw) < 8:
        raise DocumentError(f"a 1162 product code has at least 8 bytes, got {len(raw)}", "1162")
    return int.from_bytes(raw[:2], "big"), str(int.from_bytes(raw[2:8], "big")), raw[8:]
