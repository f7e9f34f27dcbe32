"""The notification parsers and verifiers: any input parses or raises NotificationError."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.notifications import NotificationError, cloudpayments, tbank, yookassa

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
KEYS = st.sampled_from(
    [
        "event",
        "object",
        "id",
        "payment_id",
        "amount",
        "value",
        "currency",
        "payment_method",
        "type",
        "receipt",
        "items",
        "description",
        "quantity",
        "vat_code",
        "OperationType",
        "TransactionId",
        "PaymentTransactionId",
        "Amount",
        "Status",
        "Data",
        "CustomerReceipt",
        "Items",
        "label",
        "price",
        "vat",
        "method",
        "object",
        "Receipt",
        "PaymentId",
        "Name",
        "Price",
        "Quantity",
        "Tax",
        "Token",
        "Success",
        "Taxation",
        "Source",
        "DATA",
    ]
)
SHAPED = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 10**15)
    | st.sampled_from(
        [
            "payment.succeeded",
            "refund.succeeded",
            "Payment",
            "Refund",
            "CONFIRMED",
            "REFUNDED",
            "2.00",
            "RUB",
            "1",
            "vat20",
            "sbp",
            "",
            "1e3",
            "-1",
        ]
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=6),
    max_leaves=30,
)
PARSERS = (yookassa.parse, cloudpayments.parse, tbank.parse)


def _each(body: bytes) -> None:
    for parse in PARSERS:
        with contextlib.suppress(NotificationError):
            parse(body)
    with contextlib.suppress(NotificationError):
        tbank.verify(body, "pw")
    with contextlib.suppress(NotificationError):
        cloudpayments.verify(body, "x", "y", b"secret")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_parse_or_raise_their_error(body: bytes) -> None:
    _each(body)


@settings(max_examples=500, deadline=None)
@given(st.one_of(JSON, SHAPED))
def test_any_json_parses_or_raises_its_error(value: Any) -> None:
    _each(json.dumps(value).encode())


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(KEYS, SHAPED, max_size=8))
def test_any_form_parses_or_raises_its_error(fields: dict[str, Any]) -> None:
    from urllib.parse import urlencode

    body = urlencode({k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()})
    _each(body.encode())


@given(st.text(max_size=30), st.text(max_size=30))
def test_yookassa_source_check_refuses_or_passes(source: str, secret: str) -> None:
    try:
        yookassa.verify(source, secret, secret="s3cret", networks=yookassa.NETWORKS)
        assert secret == "s3cret"
    except NotificationError:
        assert secret != "s3cret"


def test_the_tbank_token_is_sha256_of_sorted_root_values_and_password() -> None:
    import hashlib

    note = {"TerminalKey": "T", "Amount": 100, "Success": True, "Receipt": {"x": 1}, "Token": "z"}
    expected = hashlib.sha256(b"100pwtrueT").hexdigest()
    assert tbank.token(note, "pw") == expected
    body = json.dumps({**note, "Token": expected}).encode()
    assert tbank.verify(body, "pw")["Amount"] == 100


def test_the_cloudpayments_hmac_is_base64_hmac_sha256_of_the_raw_body() -> None:
    import base64
    import hashlib
    import hmac

    body = b"TransactionId=1&Amount=10.00"
    mac = base64.b64encode(hmac.new(b"k", body, hashlib.sha256).digest()).decode()
    cloudpayments.verify(body, mac, None, b"k")
    try:
        cloudpayments.verify(body + b"0", mac, None, b"k")
    except NotificationError:
        return
    raise AssertionError("a changed body passed")
