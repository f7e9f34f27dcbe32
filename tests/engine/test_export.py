"""Receipt exports: CSV, JSON Lines and FNS JSON over documents the emulator's ФН signed."""

from __future__ import annotations

import base64
import csv
import io
import itertools
import json
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal

import attrs
import pytest

from engine.export import CSV_COLUMNS, ExportError, export_csv, export_fns_json, export_jsonl
from engine.reports import ReceiptRecord
from protocols.documents.ffd import decode_receipt
from protocols.documents.json_format import receipt_from_json, receipt_to_json
from tests.engine.test_reports import FN_NUMBER, SHIFT_1, T0, ZONE, Journal, scenario


@pytest.fixture(scope="module")
def journal() -> Journal:
    return scenario()


def by_job(journal: Journal, job: str) -> ReceiptRecord:
    return next(r for r in journal.receipts if r.job_id == job)


def forever(record: ReceiptRecord) -> Iterator[ReceiptRecord]:
    """An endless journal: an export that is not lazy would never return its first chunk."""
    for i in itertools.count():
        yield attrs.evolve(record, job_id=f"job-{i}")


# --- CSV ------------------------------------------------------------------------------------------


def parse_csv(chunks: Iterator[str]) -> list[dict[str, str]]:
    text = "".join(chunks)
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert tuple(rows[0]) == CSV_COLUMNS
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def test_csv_parses_back_with_one_row_per_receipt(journal: Journal) -> None:
    rows = parse_csv(export_csv(journal.receipts, ZONE))
    assert len(rows) == len(journal.receipts)
    assert [r["job_id"] for r in rows] == [r.job_id for r in journal.receipts]
    mixed = rows[0]
    record = journal.receipts[0]
    assert mixed["external_id"] == "order-sale-mixed"
    assert mixed["register_id"] == "kkt-1"
    assert mixed["fn_number"] == FN_NUMBER
    assert mixed["fd_number"] == str(record.fd_number)
    assert (mixed["shift_number"], mixed["receipt_number"]) == ("1", "1")
    assert mixed["time"] == "2026-03-02T09:10:00+03:00"
    assert (mixed["document"], mixed["operation"]) == ("receipt", "sell")
    assert (mixed["total"], mixed["cash"], mixed["electronic"]) == ("380.00", "100.00", "280.00")
    assert (mixed["prepaid"], mixed["credit"], mixed["provision"]) == ("0.00", "0.00", "0.00")
    assert (mixed["vat_20"], mixed["vat_10"], mixed["sum_no_vat"]) == ("50.00", "7.27", "")
    assert mixed["fiscal_sign"] == str(record.printed_sign)
    assert mixed["fiscal_sign_hex"] == record.fiscal_sign.hex()
    assert mixed["qr"] == record.qr
    assert mixed["journaled_at"] == "2026-03-02T09:10:00+03:00"
    assert mixed["problem"] == ""
    other = rows[1]
    assert (other["prepaid"], other["credit"], other["provision"]) == ("300.00", "150.00", "50.00")
    assert other["sum_no_vat"] == "500.00"
    by_id = {r["job_id"]: r for r in rows}
    assert (by_id["refund"]["operation"], by_id["refund"]["total"]) == ("sell_refund", "80.00")
    assert (by_id["buy"]["operation"], by_id["buy"]["sum_vat_0"]) == ("buy", "3.50")
    assert by_id["correction"]["document"] == "correction"
    assert by_id["sale-shift-2"]["shift_number"] == "2"


def test_times_people_read_are_the_tenants_local_time_with_its_offset(journal: Journal) -> None:
    """A tenant in Vladivostok reads its journal's times at +10:00 (1012 is its registers')."""
    (row,) = parse_csv(export_csv(journal.receipts[:1], "Asia/Vladivostok"))
    assert (row["time"], row["journaled_at"]) == (
        "2026-03-02T09:10:00+10:00",
        "2026-03-02T16:10:00+10:00",
    )
    (line,) = export_jsonl(journal.receipts[:1], "Asia/Vladivostok")
    assert json.loads(line)["journaled_at"] == "2026-03-02T16:10:00+10:00"


def test_csv_quotes_by_rfc_4180(journal: Journal) -> None:
    awkward = 'заказ "42", склад\r\nвторой'
    record = attrs.evolve(journal.receipts[0], external_id=awkward)
    chunks = list(export_csv([record], ZONE))
    assert len(chunks) == 2
    assert all(chunk.endswith("\r\n") for chunk in chunks)
    assert '"заказ ""42"", склад\r\nвторой"' in chunks[1]
    assert parse_csv(iter(chunks))[0]["external_id"] == awkward


def test_csv_is_lazy(journal: Journal) -> None:
    chunks = export_csv(forever(journal.receipts[0]), ZONE)
    header, first, second = itertools.islice(chunks, 3)
    assert header.startswith("job_id,external_id,")
    assert first.startswith("job-0,") and second.startswith("job-1,")


def test_csv_keeps_a_damaged_record_with_its_problem(journal: Journal) -> None:
    broken = attrs.evolve(journal.receipts[0], document=b"\x03\x00\xff\x00")
    (row,) = parse_csv(export_csv([broken], ZONE))
    assert row["job_id"] == broken.job_id
    assert row["fd_number"] == str(broken.fd_number)
    assert row["total"] == ""
    assert row["problem"]


# --- JSON Lines -----------------------------------------------------------------------------------


def test_every_jsonl_line_parses_with_ids_fiscal_data_and_the_receipt(journal: Journal) -> None:
    lines = list(export_jsonl(journal.receipts, ZONE))
    assert len(lines) == len(journal.receipts)
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in lines)
    objects = [json.loads(line) for line in lines]
    for obj, record in zip(objects, journal.receipts, strict=True):
        assert obj["job_id"] == record.job_id
        assert obj["tenant"] == record.tenant
        assert obj["external_id"] == record.external_id
        assert obj["register_id"] == record.register_id
        assert (obj["fn_number"], obj["fd_number"]) == (FN_NUMBER, record.fd_number)
        assert bytes.fromhex(obj["fiscal_sign"]) == record.fiscal_sign
        assert obj["printed_sign"] == record.printed_sign
        assert obj["qr"] == record.qr
        assert base64.b64decode(obj["document"]) == record.document
        assert "problem" not in obj
        decoded = decode_receipt(record.document).receipt
        assert obj["receipt"] == json.loads(json.dumps(receipt_to_json(decoded)))
        assert receipt_from_json(obj["receipt"]) == decoded
    mixed = objects[0]
    # Unix seconds for programs, and the same moment as the tenant's local time for people.
    assert (mixed["fiscalized_at"], mixed["journaled_at"]) == (
        T0 + 600,
        "2026-03-02T09:10:00+03:00",
    )
    assert mixed["fiscal"] == {
        "fn_number": FN_NUMBER,
        "fd_number": journal.receipts[0].fd_number,
        "registration_number": "0000000001061875",
        "shift_number": 1,
        "receipt_number": 1,
        "time": "2026-03-02T09:10:00+03:00",
        "ffd_version": 4,
    }
    receipt = mixed["receipt"]
    assert receipt["kind"] == "receipt"
    assert receipt["total"] == 38_000 and type(receipt["total"]) is int  # kopecks
    assert receipt["payments"] == {"cash": 10_000, "electronic": 28_000}
    assert receipt["items"][0]["quantity"] == "2"
    assert objects[5]["receipt"]["kind"] == "correction"


def test_jsonl_is_lazy_and_keeps_a_damaged_record(journal: Journal) -> None:
    first, second = itertools.islice(export_jsonl(forever(journal.receipts[0]), ZONE), 2)
    assert json.loads(first)["job_id"] == "job-0"
    assert json.loads(second)["job_id"] == "job-1"
    broken = attrs.evolve(journal.receipts[0], document=b"\x03\x00\x01\x00")
    (line,) = export_jsonl([broken], ZONE)
    obj = json.loads(line)
    assert obj["receipt"] is None and obj["fiscal"] is None
    assert obj["problem"]
    assert base64.b64decode(obj["document"]) == broken.document


# --- FNS JSON -------------------------------------------------------------------------------------


def test_every_fns_json_line_is_one_document_with_the_fns_keys(journal: Journal) -> None:
    lines = list(export_fns_json(journal.receipts))
    assert len(lines) == len(journal.receipts)
    documents = [json.loads(line, parse_float=Decimal) for line in lines]
    assert [next(iter(d)) for d in documents] == [
        "receiptCorrection" if job == "correction" else "receipt" for job, _ in SHIFT_1
    ] + ["receipt"]
    record = journal.receipts[0]
    receipt = documents[0]["receipt"]
    assert {
        "fiscalDriveNumber",
        "kktRegId",
        "userInn",
        "fiscalDocumentNumber",
        "dateTime",
        "fiscalSign",
        "shiftNumber",
        "requestNumber",
        "operationType",
        "totalSum",
        "cashTotalSum",
        "ecashTotalSum",
        "prepaidSum",
        "creditSum",
        "provisionSum",
        "nds18",
        "nds10",
        "items",
        "fiscalDocumentFormatVer",
    } <= receipt.keys()
    assert receipt["fiscalDriveNumber"] == FN_NUMBER
    assert receipt["fiscalDocumentNumber"] == record.fd_number
    assert receipt["fiscalSign"] == record.printed_sign
    assert receipt["dateTime"] == int(
        (datetime(2026, 3, 2, 9, 10) - datetime(1970, 1, 1)).total_seconds()
    )
    assert (receipt["shiftNumber"], receipt["requestNumber"], receipt["operationType"]) == (1, 1, 1)
    assert (receipt["totalSum"], receipt["cashTotalSum"], receipt["ecashTotalSum"]) == (
        38_000,
        10_000,
        28_000,
    )
    assert (receipt["nds18"], receipt["nds10"]) == (5_000, 727)
    assert receipt["userInn"] == "7707083893"
    coffee = receipt["items"][0]
    assert (coffee["name"], coffee["price"], coffee["sum"], coffee["nds"]) == (
        "Кофе",
        15_000,
        30_000,
        1,
    )
    assert coffee["quantity"] == 2
    buy = documents[4]["receipt"]
    assert buy["items"][0]["quantity"] == Decimal("0.5")  # an exact JSON number, not a float
    assert buy["nds0"] == 350
    assert "receiptCorrection" in documents[5]
    assert documents[5]["receiptCorrection"]["correctionType"] == 0


def test_fns_json_is_lazy_and_refuses_a_record_that_is_no_document(journal: Journal) -> None:
    first, second = itertools.islice(export_fns_json(forever(journal.receipts[0])), 2)
    assert first == second  # the same document twice: the job id is not part of the FNS view
    broken = attrs.evolve(journal.receipts[0], job_id="bad-job", document=b"\x03\x00\x09")
    exported = export_fns_json([journal.receipts[0], broken])
    assert json.loads(next(exported))["receipt"]
    with pytest.raises(ExportError, match="bad-job"):
        next(exported)
