"""Receipt exports (выгрузка чеков) that the service streams chunk by chunk.

Three formats, each a lazy iterator of text chunks over :class:`~engine.reports.ReceiptRecord`
values: nothing is built for the whole export, one record is decoded and written at a time,
so a journal of millions of receipts streams in constant memory.

- :func:`export_csv`: a spreadsheet row per receipt, RFC 4180 (the csv module's quoting,
  CRLF line ends), money as roubles with two decimals. One chunk per row, the header first.
- :func:`export_jsonl`: JSON Lines, one object per receipt with the journal's ids, the fiscal
  data, the receipt as Kassa JSON (:func:`~protocols.documents.json_format.receipt_to_json`,
  money as integer kopecks) and the signed document as base64.
- :func:`export_fns_json`: the FNS-JSON view (ключи ФНС, as OFDs publish documents) of each
  document, one JSON document per line (JSON Lines) rather than one streamed array: a reader
  can take it line by line as it arrives, a truncated stream loses only its last line, and
  ``jq -s`` makes the array when one is wanted. Each line is ``{"receipt": {...}}`` or
  ``{"receiptCorrection": {...}}``, exactly :func:`protocols.tlv.to_fns_json` of the document.

Times a person reads (the CSV's ``time`` and ``journaled_at``, the JSON line's ``journaled_at``
and ``fiscal.time``) are local in the tenant's time zone with their offset (:mod:`engine.times`);
the JSON line's ``fiscalized_at`` stays Unix seconds, and the FNS view keeps its own format.

A record whose document does not decode (a damaged journal) still gets its CSV row and JSON
line, with what the journal itself knows and a ``problem``; the FNS view has no place for
that, so :func:`export_fns_json` raises :class:`ExportError` naming the job instead.
"""

from __future__ import annotations

import base64
import csv
import json
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

from engine.reports import ReceiptRecord, receipt_vat_sums, roubles
from engine.times import local_time, register_time
from protocols.documents.ffd import decode_receipt
from protocols.documents.json_format import receipt_to_json
from protocols.documents.model import CorrectionReceipt
from protocols.errors import ProtocolError
from protocols.tlv import decode_document, to_fns_json
from protocols.tlv.enums import OperationType, VatRate

__all__ = ["CSV_COLUMNS", "ExportError", "export_csv", "export_fns_json", "export_jsonl"]

#: Receipt-level VAT columns by 1199 rate: VAT amounts, except 0 % and "no VAT", whose
#: 1104 / 1105 are the settlement sums at those rates.
_VAT_COLUMNS: tuple[tuple[str, int], ...] = (
    ("vat_20", VatRate.VAT20),
    ("vat_10", VatRate.VAT10),
    ("vat_20_120", VatRate.VAT120),
    ("vat_10_110", VatRate.VAT110),
    ("sum_vat_0", VatRate.VAT0),
    ("sum_no_vat", VatRate.NONE),
    ("vat_5", VatRate.VAT5),
    ("vat_7", VatRate.VAT7),
    ("vat_5_105", VatRate.VAT105),
    ("vat_7_107", VatRate.VAT107),
    ("vat_22", VatRate.VAT22),
    ("vat_22_122", VatRate.VAT122),
)
_PAYMENT_COLUMNS = ("cash", "electronic", "prepaid", "credit", "provision")

#: The CSV header, in column order.
CSV_COLUMNS: tuple[str, ...] = (
    "job_id",
    "external_id",
    "register_id",
    "fn_number",  # 1041
    "fd_number",  # 1040
    "shift_number",  # 1038
    "receipt_number",  # 1042
    "time",  # 1012, the register's wall clock, with its zone's offset
    "document",  # receipt (3) | correction (31)
    "operation",  # 1054: sell | sell_refund | buy | buy_refund
    "total",  # 1020, roubles
    *_PAYMENT_COLUMNS,  # 1031, 1081, 1215, 1216, 1217
    *(name for name, _ in _VAT_COLUMNS),  # 1102–1107 and the 1115 entries
    "fiscal_sign",  # the printed ФП
    "fiscal_sign_hex",  # 1077 as signed
    "journaled_at",  # when the journal kept it, local with its offset
    "qr",
    "problem",  # empty unless the document does not decode
)


class ExportError(Exception):
    """A record that cannot be put into an export's format; the message names the job."""


# --- CSV ------------------------------------------------------------------------------------------


class _LastLine:
    """The csv writer's file: it keeps the one row just written, so rows stream one by one."""

    text = ""

    def write(self, text: str) -> int:
        self.text = text
        return len(text)


def export_csv(records: Iterable[ReceiptRecord], time_zone: str) -> Iterator[str]:
    """The header, then one CSV row per receipt (RFC 4180, CRLF); each row is one chunk."""
    line = _LastLine()
    writer = csv.writer(line, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    yield line.text
    for record in records:
        writer.writerow(_csv_row(record, time_zone))
        yield line.text


def _csv_row(record: ReceiptRecord, time_zone: str) -> list[str]:
    row = dict.fromkeys(CSV_COLUMNS, "")
    row.update(
        job_id=record.job_id,
        external_id=record.external_id,
        register_id=record.register_id,
        fn_number=record.fn_number,
        fd_number=str(record.fd_number),
        fiscal_sign=str(record.printed_sign),
        fiscal_sign_hex=record.fiscal_sign.hex(),
        journaled_at=local_time(record.fiscalized_at, time_zone),
        qr=record.qr,
    )
    try:
        decoded = decode_receipt(record.document)
    except ProtocolError as exc:
        row["problem"] = str(exc)
        return list(row.values())
    receipt, fiscal = decoded.receipt, decoded.fiscal
    row.update(
        document="correction" if isinstance(receipt, CorrectionReceipt) else "receipt",
        operation=_operation_name(receipt.operation),
        total=roubles(receipt.total),
        **{name: roubles(getattr(receipt.payments, name)) for name in _PAYMENT_COLUMNS},
    )
    if fiscal is not None:
        row.update(
            fn_number=fiscal.fn_number,
            fd_number=str(fiscal.fd_number),
            shift_number=str(fiscal.shift_number),
            receipt_number=str(fiscal.receipt_number),
            time=register_time(fiscal.time, time_zone),
        )
    totals: dict[int, int] = {}
    for vat in receipt_vat_sums(decoded.document.fields):
        totals[vat.rate] = totals.get(vat.rate, 0) + vat.amount
    for name, rate in _VAT_COLUMNS:
        if rate in totals:
            row[name] = roubles(totals[rate])
    return list(row.values())


def _operation_name(operation: int) -> str:
    try:
        return OperationType(operation).name.lower()
    except ValueError:
        return str(operation)


# --- JSON Lines -----------------------------------------------------------------------------------


def export_jsonl(records: Iterable[ReceiptRecord], time_zone: str) -> Iterator[str]:
    """One JSON object per receipt and line: ids, fiscal data, Kassa JSON, the document."""
    for record in records:
        yield _json_line(_jsonl_object(record, time_zone))


def _jsonl_object(record: ReceiptRecord, time_zone: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "job_id": record.job_id,
        "tenant": record.tenant,
        "external_id": record.external_id,
        "register_id": record.register_id,
        "fn_number": record.fn_number,  # 1041
        "fd_number": record.fd_number,  # 1040
        "fiscal_sign": record.fiscal_sign.hex(),  # 1077
        "printed_sign": record.printed_sign,  # ФП
        "qr": record.qr,
        "fiscalized_at": record.fiscalized_at,
        "journaled_at": local_time(record.fiscalized_at, time_zone),
        "fiscal": None,
        "receipt": None,
        "document": base64.b64encode(record.document).decode("ascii"),
    }
    try:
        decoded = decode_receipt(record.document)
    except ProtocolError as exc:
        out["problem"] = str(exc)
        return out
    fiscal = decoded.fiscal
    if fiscal is not None:
        out["fiscal"] = {
            "fn_number": fiscal.fn_number,
            "fd_number": fiscal.fd_number,
            "registration_number": fiscal.registration_number,  # 1037
            "shift_number": fiscal.shift_number,  # 1038
            "receipt_number": fiscal.receipt_number,  # 1042
            "time": register_time(fiscal.time, time_zone),  # 1012
            "ffd_version": fiscal.ffd_version,  # 1209
        }
    out["receipt"] = receipt_to_json(decoded.receipt)
    return out


# --- FNS JSON -------------------------------------------------------------------------------------


def export_fns_json(records: Iterable[ReceiptRecord]) -> Iterator[str]:
    """The FNS-JSON view of each signed document, one JSON document per line."""
    for record in records:
        try:
            document = decode_document(record.document)
        except ProtocolError as exc:
            raise ExportError(f"job {record.job_id}: {exc}") from exc
        yield _json_line(to_fns_json({document.code: document.fields}))


# --- JSON text ------------------------------------------------------------------------------------


def _json_line(value: Any) -> str:
    return "".join(_compact(value)) + "\n"


def _compact(value: Any) -> Iterator[str]:
    """Compact JSON in which a Decimal is an exact number (FVLN quantities), never a float."""
    if isinstance(value, Decimal):
        yield str(value)
    elif isinstance(value, dict):
        yield "{"
        for i, (key, item) in enumerate(value.items()):
            yield ("," if i else "") + json.dumps(str(key), ensure_ascii=False) + ":"
            yield from _compact(item)
        yield "}"
    elif isinstance(value, list | tuple):
        yield "["
        for i, item in enumerate(value):
            if i:
                yield ","
            yield from _compact(item)
        yield "]"
    else:
        yield json.dumps(value, ensure_ascii=False)
