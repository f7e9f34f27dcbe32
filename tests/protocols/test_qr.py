"""The receipt QR string: the ffd.md §5.3 example, round trips, and any text never crashes."""

from __future__ import annotations

import contextlib
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.documents.qr import (
    KEYS,
    MAX_TOTAL,
    MAX_U32,
    QrError,
    ReceiptQr,
    parse_receipt_qr,
    receipt_qr,
)
from protocols.errors import ProtocolError
from protocols.tlv.enums import OperationType

#: ffd.md §5.3 and tests/vectors/ffd_given.json: the real 2018 ATOL receipt (1012 2018-02-22
#: 16:17, 1020 2500, 1041 9999078900007317, 1040 87, 1077 31 04 66 29 76 5f, 1054 1).
ATOL_2018 = "t=20180222T1617&s=25.00&fn=9999078900007317&i=87&fp=1713993311&n=1"
ATOL_2018_VALUES = ReceiptQr(
    datetime(2018, 2, 22, 16, 17), 2500, "9999078900007317", 87, 1713993311, OperationType.SELL
)

QRS = st.builds(
    ReceiptQr,
    time=st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59)).map(
        lambda t: t.replace(second=0, microsecond=0)
    ),
    total=st.integers(0, MAX_TOTAL),
    fn_number=st.text("0123456789", min_size=16, max_size=16),
    fd_number=st.integers(1, MAX_U32),
    printed_sign=st.integers(0, MAX_U32),
    operation=st.sampled_from(OperationType),
)


def test_the_ffd_example_is_built_and_read() -> None:
    assert ATOL_2018_VALUES.text() == ATOL_2018
    assert parse_receipt_qr(ATOL_2018) == ATOL_2018_VALUES


def test_the_time_is_written_to_the_minute() -> None:
    """ffd.md §5.3: ``%.4d%.2d%.2dT%.2d%.2d``; the seconds of 1012 are not printed."""
    qr = receipt_qr(datetime(2018, 2, 22, 16, 17, 59), 2500, "9999078900007317", 87, 1, 1)
    assert qr.startswith("t=20180222T1617&")


@pytest.mark.parametrize(
    ("kopecks", "written"),
    [(0, "0.00"), (5, "0.05"), (99, "0.99"), (100, "1.00"), (123456, "1234.56"), (2500, "25.00")],
)
def test_the_total_is_roubles_with_two_decimals(kopecks: int, written: str) -> None:
    qr = receipt_qr(datetime(2024, 1, 1), kopecks, "9999078900007317", 1, 1, 1)
    assert f"&s={written}&" in qr
    assert parse_receipt_qr(qr).total == kopecks


def test_seconds_keys_in_any_order_and_leading_zeros_are_read() -> None:
    """What some registers print (ffd.md §5.3: "Some KKTs add seconds: accept both")."""
    parsed = parse_receipt_qr(
        "n=2&fp=0000127055&i=0087&fn=9999078900007317&s=25.00&t=20180222T161703"
    )
    assert parsed == ReceiptQr(
        datetime(2018, 2, 22, 16, 17, 3),
        2500,
        "9999078900007317",
        87,
        127055,
        OperationType.SELL_REFUND,
    )


@given(QRS)
def test_round_trip(qr: ReceiptQr) -> None:
    assert parse_receipt_qr(qr.text()) == qr


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("", "qr"),
        (ATOL_2018 + "&", "qr"),
        (ATOL_2018 + "&x=1", "qr"),
        (ATOL_2018.replace("&n=1", ""), "qr.n"),
        (ATOL_2018 + "&n=1", "qr.n"),
        (ATOL_2018.replace("i=87", "i87"), "qr"),
        # t
        (ATOL_2018.replace("T1617", "T16"), "qr.t"),
        (ATOL_2018.replace("T1617", "T16170"), "qr.t"),
        (ATOL_2018.replace("T1617", " 1617"), "qr.t"),
        (ATOL_2018.replace("20180222", "20180230"), "qr.t"),
        (ATOL_2018.replace("20180222", "00000222"), "qr.t"),
        (ATOL_2018.replace("T1617", "T2417"), "qr.t"),
        (ATOL_2018.replace("T1617", "T16١٧"), "qr.t"),
        # s
        (ATOL_2018.replace("25.00", "25"), "qr.s"),
        (ATOL_2018.replace("25.00", "25.0"), "qr.s"),
        (ATOL_2018.replace("25.00", "25.000"), "qr.s"),
        (ATOL_2018.replace("25.00", "25,00"), "qr.s"),
        (ATOL_2018.replace("25.00", "-1.00"), "qr.s"),
        (ATOL_2018.replace("25.00", "+1.00"), "qr.s"),
        (ATOL_2018.replace("25.00", "2_5.00"), "qr.s"),
        (ATOL_2018.replace("25.00", "²5.00"), "qr.s"),
        (ATOL_2018.replace("25.00", "1e3.00"), "qr.s"),
        (ATOL_2018.replace("25.00", ".00"), "qr.s"),
        (ATOL_2018.replace("25.00", f"{MAX_TOTAL // 100 + 1}.00"), "qr.s"),
        (ATOL_2018.replace("25.00", "9" * 5000 + ".00"), "qr.s"),
        # fn
        (ATOL_2018.replace("9999078900007317", "999907890000731"), "qr.fn"),
        (ATOL_2018.replace("9999078900007317", "99990789000073170"), "qr.fn"),
        (ATOL_2018.replace("9999078900007317", "999907890000731X"), "qr.fn"),
        # i, fp, n
        (ATOL_2018.replace("i=87", "i=0"), "qr.i"),
        (ATOL_2018.replace("i=87", "i="), "qr.i"),
        (ATOL_2018.replace("i=87", f"i={MAX_U32 + 1}"), "qr.i"),
        (ATOL_2018.replace("i=87", "i= 87"), "qr.i"),
        (ATOL_2018.replace("1713993311", str(MAX_U32 + 1)), "qr.fp"),
        (ATOL_2018.replace("1713993311", "9" * 5000), "qr.fp"),
        (ATOL_2018.replace("n=1", "n=0"), "qr.n"),
        (ATOL_2018.replace("n=1", "n=5"), "qr.n"),
    ],
)
def test_malformed_strings_are_refused_with_the_key(text: str, path: str) -> None:
    with pytest.raises(QrError) as caught:
        parse_receipt_qr(text)
    assert caught.value.path == path
    assert isinstance(caught.value, ProtocolError)


@pytest.mark.parametrize(
    ("total", "fn_number", "fd_number", "printed_sign", "operation", "path"),
    [
        (-1, "9999078900007317", 1, 1, 1, "qr.s"),
        (MAX_TOTAL + 1, "9999078900007317", 1, 1, 1, "qr.s"),
        (1, "99990789000073", 1, 1, 1, "qr.fn"),
        (1, "９９９９078900007317", 1, 1, 1, "qr.fn"),
        (1, "9999078900007317", 0, 1, 1, "qr.i"),
        (1, "9999078900007317", MAX_U32 + 1, 1, 1, "qr.i"),
        (1, "9999078900007317", 1, -1, 1, "qr.fp"),
        (1, "9999078900007317", 1, MAX_U32 + 1, 1, "qr.fp"),
        (1, "9999078900007317", 1, 1, 0, "qr.n"),
        (1, "9999078900007317", 1, 1, 5, "qr.n"),
    ],
)
def test_values_the_format_cannot_carry_are_refused(
    total: int, fn_number: str, fd_number: int, printed_sign: int, operation: int, path: str
) -> None:
    with pytest.raises(QrError) as caught:
        receipt_qr(datetime(2024, 1, 1), total, fn_number, fd_number, printed_sign, operation)
    assert caught.value.path == path


@given(st.text())
def test_any_text_parses_or_raises_qr_error(text: str) -> None:
    with contextlib.suppress(QrError):
        assert isinstance(parse_receipt_qr(text), ReceiptQr)


#: Pieces near the format, so the fuzzer reaches the value checks and not only the key checks.
PIECES = st.sampled_from(
    [*KEYS, "=", "&", ".", "T", "0", "9", "00", "16", "2018", "0222", " ", "+", "-", "_",
     "١", "²", "é", "\x00", "9" * 30]
)  # fmt: skip


@given(QRS, st.lists(st.tuples(st.integers(0, 200), st.integers(0, 3), PIECES), max_size=6))
def test_edited_strings_parse_or_raise_qr_error(
    qr: ReceiptQr, edits: list[tuple[int, int, str]]
) -> None:
    """Valid strings with pieces inserted or replaced; every part reordered."""
    text = qr.text()
    for position, cut, piece in edits:
        position %= len(text) + 1
        text = text[:position] + piece + text[position + cut :]
    with contextlib.suppress(QrError):
        assert isinstance(parse_receipt_qr(text), ReceiptQr)
    parts = qr.text().split("&")
    assert parse_receipt_qr("&".join(reversed(parts))) == qr
