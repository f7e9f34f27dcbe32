"""Payment notifications → receipts, live on 127.0.0.1: each provider's sample notification as
it documents it, signed as it signs, becomes one fiscalized receipt; bad proofs journal nothing."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import trio

from engine.engine import body_receipt
from engine.http.hooks import PaymentSettings
from engine.journal import JobState
from protocols.documents.model import Company, Receipt
from protocols.notifications.cloudpayments import signature
from protocols.notifications.receipts import OrderTemplate
from protocols.notifications.tbank import token
from tests.http.conftest import Served, serving

HOOK = "hook-0123456789abcdef"
TEMPLATE = OrderTemplate(
    "Оплата заказа",
    11,
    1,
    Company(
        inn="7707083893", tax_system=1, place="https://shop.example.ru", email="shop@example.ru"
    ),
    contact="shop@example.ru",
)
SETTINGS = PaymentSettings(
    "shop",
    HOOK,
    TEMPLATE,
    yookassa_secret="yk-secret-1",
    cloudpayments_secret="cp-secret-1",
    tbank_password="tb-password-1",
)


def hooks(prepayment: bool = True) -> dict[str, Any]:
    return {"payments": {HOOK: PaymentSettings(**{**_fields(), "prepayment": prepayment})}}


def _fields() -> dict[str, Any]:
    import attrs

    return attrs.asdict(SETTINGS, recurse=False)


async def fiscalized(served: Served, job_id: str) -> Receipt:
    with trio.fail_after(30):
        job = await served.engine.wait("shop", job_id)
    assert job.state is JobState.FISCALIZED, job
    return body_receipt(job.body)


def yookassa_payment(payment_id: str = "22d6d597-000f-5000-9000-145f6df21d6f") -> dict[str, Any]:
    return {
        "type": "notification",
        "event": "payment.succeeded",
        "object": {
            "id": payment_id,
            "status": "succeeded",
            "paid": True,
            "amount": {"value": "2.00", "currency": "RUB"},
            "created_at": "2018-07-10T14:25:27.847Z",
            "description": "Заказ №72",
            "metadata": {},
            "payment_method": {"type": "sbp", "id": payment_id, "saved": False},
            "refundable": True,
            "test": False,
        },
    }


async def test_yookassa_payment_refund_and_repeat(tmp_path: Path) -> None:
    async with serving(tmp_path, **hooks(prepayment=False)) as served:
        url = f"/notifications/{HOOK}/yookassa?secret=yk-secret-1"
        answer = await served.client.post(url, json=yookassa_payment())
        assert answer.status_code == 200, answer.text
        job_id = answer.headers["X-Kassa-Job"]
        receipt = await fiscalized(served, job_id)
        assert receipt.operation == 1 and receipt.total == 200
        assert receipt.payments.electronic == 200 and receipt.payments.cash == 0
        assert [item.payment_method for item in receipt.items] == [4]
        again = await served.client.post(url, json=yookassa_payment())
        assert again.status_code == 200 and again.headers["X-Kassa-Job"] == job_id

        refund = {
            "type": "notification",
            "event": "refund.succeeded",
            "object": {
                "id": "216749f7-0016-50be-b000-078d43a63ae4",
                "status": "succeeded",
                "amount": {"value": "2.00", "currency": "RUB"},
                "created_at": "2017-10-04T19:27:51.407Z",
                "payment_id": "22d6d597-000f-5000-9000-145f6df21d6f",
            },
        }
        back = await served.client.post(url, json=refund)
        assert back.status_code == 200, back.text
        refunded = await fiscalized(served, back.headers["X-Kassa-Job"])
        assert refunded.operation == 2 and refunded.payments.electronic == 200
        assert refunded.items == receipt.items


async def test_yookassa_without_secret_or_network_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(tmp_path, **hooks()) as served:
        with caplog.at_level(logging.WARNING, "kassa.http.payments"):
            for url in (
                f"/notifications/{HOOK}/yookassa",
                f"/notifications/{HOOK}/yookassa?secret=x",
            ):
                answer = await served.client.post(url, json=yookassa_payment())
                assert answer.status_code == 401, answer.text
        assert await served.engine.jobs_of("shop") == []
        assert served.door.payments.refused == 2
        assert "refused a yookassa notification of tenant shop" in caplog.text
        assert "yk-secret-1" not in caplog.text and HOOK not in caplog.text


def cloudpayments_pay() -> bytes:
    receipt = {
        "Items": [
            {
                "label": "Чайник",
                "price": 300.00,
                "quantity": 1.00,
                "amount": 300.00,
                "vat": 20,
                "method": 1,
                "object": 1,
            },
            {
                "label": "Доставка",
                "price": 50.00,
                "quantity": 2,
                "amount": 100.00,
                "vat": None,
                "method": 1,
                "object": 4,
            },
        ],
        "taxationSystem": 0,
        "email": "buyer@example.ru",
    }
    fields = {
        "TransactionId": "1211506522",
        "Amount": "400.00",
        "Currency": "RUB",
        "PaymentAmount": "400.00",
        "PaymentCurrency": "RUB",
        "OperationType": "Payment",
        "InvoiceId": "1234567",
        "AccountId": "user_x",
        "DateTime": "2019-05-23 12:49:13",
        "CardFirstSix": "424242",
        "CardLastFour": "4242",
        "CardType": "Visa",
        "TestMode": "1",
        "Status": "Completed",
        "Email": "buyer@example.ru",
        "Data": json.dumps({"CloudPayments": {"CustomerReceipt": receipt}}),
    }
    return urlencode(fields).encode()


async def test_cloudpayments_pay_with_its_receipt_and_a_bad_hmac(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    body = cloudpayments_pay()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    url = f"/notifications/{HOOK}/cloudpayments"
    async with serving(tmp_path, **hooks()) as served:
        with caplog.at_level(logging.WARNING, "kassa.http.payments"):
            bad = await served.client.post(
                url, content=body, headers={**form, "Content-HMAC": signature(body, b"wrong")}
            )
        assert bad.status_code == 401 and "Content-HMAC" in bad.text
        assert await served.engine.jobs_of("shop") == []
        assert "refused a cloudpayments notification" in caplog.text

        signed = {**form, "Content-HMAC": signature(body, b"cp-secret-1")}
        answer = await served.client.post(url, content=body, headers=signed)
        assert answer.status_code == 200 and answer.json() == {"code": 0}
        receipt = await fiscalized(served, answer.headers["X-Kassa-Job"])
        assert [(i.name, i.sum, i.vat, i.payment_subject) for i in receipt.items] == [
            ("Чайник", 30000, 1, 1),
            ("Доставка", 10000, 6, 4),
        ]
        assert [i.payment_method for i in receipt.items] == [1, 1]
        assert receipt.payments.electronic == 40000 and receipt.client is not None
        assert receipt.client.contact == "buyer@example.ru"
        again = await served.client.post(url, content=body, headers=signed)
        assert again.headers["X-Kassa-Job"] == answer.headers["X-Kassa-Job"]


def tbank(
    status: str = "CONFIRMED", password: str = "tb-password-1", **more: Any
) -> dict[str, Any]:
    note: dict[str, Any] = {
        "TerminalKey": "1321054611234DEMO",
        "OrderId": "201709",
        "Success": True,
        "Status": status,
        "PaymentId": 8742591,
        "ErrorCode": "0",
        "Amount": 9855,
        "CardId": 322264,
        "Pan": "430000******0777",
        "ExpDate": "1122",
        **more,
    }
    note["Token"] = token(note, password)
    return note


async def test_tbank_two_receipts_prepayment_then_shipped(tmp_path: Path) -> None:
    url = f"/notifications/{HOOK}/tbank"
    async with serving(tmp_path, **hooks()) as served:
        forged = await served.client.post(url, json=tbank(password="guess"))
        assert forged.status_code == 401
        assert await served.engine.jobs_of("shop") == []

        answer = await served.client.post(url, json=tbank(DATA={"Source": "sbp"}))
        assert answer.status_code == 200 and answer.text == "OK"
        prepaid = await fiscalized(served, answer.headers["X-Kassa-Job"])
        assert [i.payment_method for i in prepaid.items] == [1]
        assert prepaid.payments.electronic == 9855 and prepaid.total == 9855

        token_ = await served.token()
        shipped_url = "/payments/tbank/8742591/shipped"
        shipped = await served.client.post(shipped_url, headers={"Token": token_})
        assert shipped.status_code == 200, shipped.text
        job = shipped.json()["job"]
        settled = await fiscalized(served, job)
        assert [i.payment_method for i in settled.items] == [4]
        assert settled.payments.prepaid == 9855 and settled.payments.electronic == 0
        again = await served.client.post(shipped_url, headers={"Token": token_})
        assert again.json()["job"] == job
        nobody = await served.client.post(shipped_url)
        assert nobody.status_code == 401
        unknown = await served.client.post("/payments/tbank/1/shipped", headers={"Token": token_})
        assert unknown.status_code == 404
        assert len(await served.engine.jobs_of("shop")) == 2


PAYMENTS_TOML = """
[tenants.payments]
hook = "hook-0123456789abcdef"
settlement = "full"
cloudpayments_secret = "cp-secret-1"
tbank_password = "tb-password-1"
[tenants.payments.template]
name = "Оплата заказа"
vat = "vat22"
subject = "service"
inn = "7707083893"
tax_system = "usn_income"
place = "https://shop.example.ru"
email = "shop@example.ru"
"""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("", ""), ""),
        (('settlement = "full"', 'settlement = "later"'), "tenants[0].payments.settlement"),
        (('hook = "hook-0123456789abcdef"', 'hook = "short"'), "tenants[0].payments.hook"),
        (('vat = "vat22"', 'vat = "vat18"'), "tenants[0].payments.template.vat"),
        (('subject = "service"', 'colour = "red"'), "tenants[0].payments.template.colour"),
    ],
)
def test_kassa_toml_gives_a_tenant_its_payment_settings(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    from engine.service_config import ConfigError, load_config
    from tests.http.test_config import CONFIG, setup

    text = CONFIG.replace('http = ["a-web.atol"]\n', 'http = ["a-web.atol"]\n' + PAYMENTS_TOML)
    text = text.replace(*change) if change[0] else text
    if not message:
        http = load_config(setup(tmp_path, text)).http
        assert http is not None
        got = http.payments[HOOK]
        assert (got.tenant, got.prepayment, got.template.vat, got.template.subject) == (
            "a",
            False,
            11,
            4,
        )
        assert got.template.company.tax_system == 2 and got.yookassa_secret is None
        assert "cp-secret-1" not in repr(http) and "tb-password-1" not in repr(got)
        return
    with pytest.raises(ConfigError) as caught:
        load_config(setup(tmp_path, text))
    assert message in str(caught.value), str(caught.value)
