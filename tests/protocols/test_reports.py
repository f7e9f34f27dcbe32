"""Registration, shift and status reports encode to FFD TLV and decode back equal."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.documents.ffd import DocumentError
from protocols.documents.reports import (
    CloseShiftReport,
    Counters,
    OpenShiftReport,
    OperationCounters,
    RegistrationReport,
    Report,
    StatusReport,
    decode_report,
    encode_report,
)
from protocols.tlv import decode_document

HEADER = dict(
    registration_number="0000000001061875",
    fn_number="9999078902003988",
    fd_number=12,
    time=datetime(2026, 11, 28, 9, 0),
    fiscal_sign=bytes.fromhex("21045b491f91"),
)
money = st.integers(0, (1 << 48) - 1)
operation_counters = st.builds(
    OperationCounters,
    count=st.integers(0, 2**32 - 1),
    total=money,
    cash=money,
    electronic=money,
    prepaid=money,
    credit=money,
    provision=money,
)
counters = st.builds(
    Counters,
    receipts=st.integers(0, 2**32 - 1),
    sell=st.none() | operation_counters,
    sell_refund=st.none() | operation_counters,
    buy=st.none() | operation_counters,
    buy_refund=st.none() | operation_counters,
)


@settings(max_examples=100, deadline=None)
@given(
    shift=st.integers(1, 9999),
    receipts=st.integers(0, 2**32 - 3),
    shift_counters=st.none() | counters,
    fn_counters=st.none() | counters,
    unsent=st.integers(0, 100),
    hours=st.integers(0, 10_000),
)
def test_close_shift_round_trips(
    shift: int,
    receipts: int,
    shift_counters: Counters | None,
    fn_counters: Counters | None,
    unsent: int,
    hours: int,
) -> None:
    report = CloseShiftReport(
        user_inn="7707083893",
        shift_number=shift,
        receipts=receipts,
        documents=receipts + 2,
        unsent=unsent,
        first_unsent_time=datetime(2026, 1, 1) + timedelta(hours=hours) if unsent else None,
        key_days_left=400,
        shift_counters=shift_counters,
        fn_counters=fn_counters,
        **HEADER,  # type: ignore[arg-type]
    )
    assert decode_report(encode_report(5, report)) == report


@pytest.mark.parametrize(
    ("code", "report"),
    [
        (
            1,
            RegistrationReport(
                user_inn="7707083893",
                user='ООО "Ромашка"',
                kkt_serial="0000000000123456",
                tax_systems=0x01 | 0x02,
                place="shop.example",
                ofd_inn="7704211201",
                usage=1 << 5,
                **HEADER,  # type: ignore[arg-type]
            ),
        ),
        (
            11,
            RegistrationReport(
                user_inn="7707083893",
                user='ООО "Ромашка"',
                kkt_serial="0000000000123456",
                tax_systems=0x01,
                reasons=(1, 0x200000),
                **HEADER,  # type: ignore[arg-type]
            ),
        ),
        (
            2,
            OpenShiftReport(
                user_inn="7707083893",
                shift_number=15,
                cashier="Иванова",
                **HEADER,  # type: ignore[arg-type]
            ),
        ),
        (
            21,
            StatusReport(
                user_inn="7707083893",
                unsent=3,
                first_unsent_number=9,
                first_unsent_time=datetime(2026, 11, 27, 23, 0),
                **HEADER,  # type: ignore[arg-type]
            ),
        ),
    ],
)
def test_reports_round_trip(code: int, report: Report) -> None:
    wire = encode_report(code, report)
    assert decode_document(wire).code == code
    assert decode_report(wire) == report


def test_a_report_of_the_wrong_class_is_refused() -> None:
    report = StatusReport("7707083893", unsent=0, first_unsent_number=0, **HEADER)  # type: ignore[arg-type]
    with pytest.raises(DocumentError):
        encode_report(5, report)
    with pytest.raises(DocumentError):
        decode_report(encode_report(21, report)[:0] + bytes.fromhex("03000000"))
