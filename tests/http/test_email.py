"""The buyer's receipt by e-mail (1008), sent to a real SMTP server (aiosmtpd) on 127.0.0.1:
journaled with the job, retried on a refusal, delivered once after a restart, and nothing
for a receipt without a contact; and the SMS path through its (logging) provider."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
from aiosmtpd.controller import Controller

from emulator.serve import open_memory_fleet
from engine.http.mail import LoggingSmsProvider, message_id
from engine.journal import Delivery, DeliveryState, JobState
from engine.service_config import ConfigError, SmtpSettings, load_config
from protocols.ingress import parse_atol_v5
from tests.http.conftest import Served, corpus, moscow_now, serving
from tests.http.test_config import CONFIG, NO_HTTP, setup


class Mailbox:
    """An SMTP handler answering each DATA with the next of ``replies`` (the last thereafter)."""

    def __init__(self, replies: list[str]) -> None:
        self.replies = replies
        self.tries = 0
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.tries += 1
            reply = self.replies[min(self.tries, len(self.replies)) - 1]
            if reply.startswith("250"):
                parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
                assert isinstance(parsed, EmailMessage)
                self.messages.append(parsed)
                self.recipients.append(list(envelope.rcpt_tos))
        return reply


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def smtp_server(*replies: str, port: int = 0) -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox(list(replies) or ["250 OK"])
    port = port or free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


def smtp(port: int, attempts: int = 5) -> SmtpSettings:
    return SmtpSettings(
        "127.0.0.1",
        port,
        security="none",
        sender="Магазин <kassa@shop.example.ru>",
        link_base="https://kassa.example.ru",
        timeout=5.0,
        attempts=attempts,
    )


def sale(**client: str) -> dict[str, Any]:
    body = corpus("atol-sell-prepayment.json", external_id=f"email-{uuid.uuid4().hex[:8]}")
    if client:
        body["receipt"]["client"] = client
    else:
        del body["receipt"]["client"]
    return body


async def delivery(served: Served, uid: str, kind: str) -> Delivery:
    found = await served.engine.journal.deliveries(uuid.UUID(uid).hex)
    (one,) = [d for d in found if d.kind == kind]
    return one


async def until_state(served: Served, uid: str, kind: str, state: DeliveryState) -> Delivery:
    with trio.fail_after(30):
        while (found := await delivery(served, uid, kind)).state is not state:
            await trio.sleep(0.02)
    return found


async def test_a_fiscalized_sale_e_mails_the_branded_receipt_once(tmp_path: Path) -> None:
    with smtp_server() as (mailbox, port):
        async with serving(tmp_path, smtp=smtp(port)) as served:
            token = await served.token()
            uid = (await served.sell(sale(email="buyer@example.com"), token)).json()["uuid"]
            report = await served.until_done(uid, token)
            assert report["status"] == "done"
            done = await until_state(served, uid, "email", DeliveryState.DELIVERED)
            assert done.url == "mailto:buyer@example.com" and done.attempts == 1
            view = await served.engine.receipt_view("shop", uuid.UUID(uid).hex)
            assert view is not None
            link = "https://kassa.example.ru" + served.door.receipt_links.link(
                "shop", uuid.UUID(uid).hex
            )
    (message,) = mailbox.messages
    assert mailbox.recipients == [["buyer@example.com"]]
    assert message["Subject"] == f"Кассовый чек № {view.fd_number} от {view.time:%d.%m.%Y %H:%M}"
    assert message["Message-ID"] == message_id(uuid.UUID(uid).hex)
    html = message.get_body(("html",))
    plain = message.get_body(("plain",))
    assert html is not None and plain is not None
    page = html.get_content()
    assert str(view.fd_number) in page and str(view.printed_sign) in page and link in page
    assert link in plain.get_content()
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content().startswith(b"%PDF")


async def test_a_refusing_server_gets_the_e_mail_once_after_a_retry(tmp_path: Path) -> None:
    with smtp_server("451 4.3.0 try again later", "250 OK") as (mailbox, port):
        async with serving(tmp_path, smtp=smtp(port), backoff=0.05) as served:
            token = await served.token()
            uid = (await served.sell(sale(email="buyer@example.com"), token)).json()["uuid"]
            done = await until_state(served, uid, "email", DeliveryState.DELIVERED)
            await trio.sleep(0.3)  # time enough for a wrong second message
    assert done.attempts == 2 and done.last_error == ""
    assert mailbox.tries == 2 and len(mailbox.messages) == 1


async def test_an_e_mail_that_never_goes_is_dead_and_alerted(tmp_path: Path) -> None:
    with smtp_server("554 5.7.1 no") as (mailbox, port):
        async with serving(tmp_path, smtp=smtp(port, attempts=2), backoff=0.05) as served:
            token = await served.token()
            uid = (await served.sell(sale(email="buyer@example.com"), token)).json()["uuid"]
            dead = await until_state(served, uid, "email", DeliveryState.DEAD)
            alerts = await served.engine.journal.events("alert.callback_dead")
    assert dead.attempts == 2 and "554" in dead.last_error and mailbox.tries == 2
    assert [a.job_id for a in alerts] == [uuid.UUID(uid).hex]


async def test_a_pending_e_mail_is_delivered_once_after_a_restart(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there until the restart
    async with open_memory_fleet(2, start=moscow_now()) as fleet:
        settings = smtp(port, attempts=50)
        async with serving(tmp_path, fleet=fleet, smtp=settings, backoff=0.05) as served:
            token = await served.token()
            uid = (await served.sell(sale(email="buyer@example.com"), token)).json()["uuid"]
            with trio.fail_after(30):
                while (await delivery(served, uid, "email")).attempts < 1:
                    await trio.sleep(0.02)
            assert (await delivery(served, uid, "email")).state is DeliveryState.PENDING
        with smtp_server(port=port) as (mailbox, _):
            async with serving(tmp_path, fleet=fleet, smtp=settings, backoff=0.05) as served:
                await until_state(served, uid, "email", DeliveryState.DELIVERED)
            # A third service on the same journal sends nothing again.
            async with serving(tmp_path, fleet=fleet, smtp=settings, backoff=0.05) as served:
                await trio.sleep(0.3)
                assert served.door.callbacks is not None and served.door.callbacks.sent == 0
    assert len(mailbox.messages) == 1
    assert mailbox.messages[0]["Message-ID"] == message_id(uuid.UUID(uid).hex)


async def test_a_receipt_without_a_contact_sends_nothing(tmp_path: Path) -> None:
    """ATOL's API insists on a contact, so the receipt is submitted to the engine as another
    door (payments, the cabinet) would, and the door journals what it needs."""
    data = json.loads(json.dumps(sale(email="buyer@example.com")), parse_float=Decimal)
    parsed = parse_atol_v5("sell", data)
    receipt = attrs.evolve(parsed.receipt, client=None, internet=False)
    with smtp_server() as (mailbox, port):
        async with serving(tmp_path, smtp=smtp(port)) as served:
            job = await served.engine.submit("shop", parsed.external_id, receipt, group="main")
            await served.door.journal_deliveries(job, receipt)
            with trio.fail_after(30):
                while job.state is not JobState.FISCALIZED:
                    await trio.sleep(0.02)
                    job = await served.engine.job("shop", job.id) or job
            await trio.sleep(0.3)
            assert await served.engine.journal.deliveries(job.id) == []
    assert mailbox.tries == 0


async def test_a_phone_gets_the_link_by_the_logging_sms_provider(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        provider = served.door.sms
        assert isinstance(provider, LoggingSmsProvider)
        token = await served.token()
        uid = (await served.sell(sale(phone="+79001234567"), token)).json()["uuid"]
        done = await until_state(served, uid, "sms", DeliveryState.DELIVERED)
        link = served.url + served.door.receipt_links.link("shop", uuid.UUID(uid).hex)
    assert done.url == "tel:+79001234567"
    ((phone, text),) = provider.sent
    assert phone == "+79001234567" and text.startswith("Кассовый чек № ") and link in text


SMTP_SECTION = """
[smtp]
host = "smtp.example.ru"
port = 465
security = "ssl"
user = "kassa@example.ru"
password_file = "smtp.password"
from = "Магазин <kassa@example.ru>"
attempts = 3
"""


def test_the_smtp_section_is_read_and_its_mistakes_named(tmp_path: Path) -> None:
    (tmp_path / "smtp.password").write_text("secret\n")
    loaded = load_config(setup(tmp_path, CONFIG + SMTP_SECTION))
    assert loaded.http is not None and loaded.http.smtp is not None
    smtp = loaded.http.smtp
    assert (smtp.host, smtp.port, smtp.security, smtp.user) == (
        "smtp.example.ru",
        465,
        "ssl",
        "kassa@example.ru",
    )
    assert (smtp.sender, smtp.attempts, smtp.timeout) == ("Магазин <kassa@example.ru>", 3, 30.0)
    assert smtp.password_file == tmp_path / "smtp.password" and "secret" not in repr(smtp)
    for i, (old, new, message) in enumerate(
        (
            ('security = "ssl"', 'security = "tls"', "smtp.security: expected starttls, ssl"),
            ("attempts = 3", "attempts = 0", "smtp.attempts: expected 1 to 100"),
            ('from = "Магазин <kassa@example.ru>"', 'from = "nobody"', "smtp.from: expected"),
            ('"smtp.password"', '"missing"', "smtp.password_file: "),
            ("port = 465", "colour = 1", "smtp.colour: unknown key"),
        )
    ):
        folder = tmp_path / str(i)
        folder.mkdir()
        (folder / "smtp.password").write_text("secret\n")
        with pytest.raises(ConfigError) as caught:
            load_config(setup(folder, CONFIG + SMTP_SECTION.replace(old, new)))
        assert message in str(caught.value), str(caught.value)
    (tmp_path / "no-http").mkdir()
    with pytest.raises(ConfigError, match="smtp: the receipts' e-mails need the"):
        load_config(setup(tmp_path / "no-http", NO_HTTP + SMTP_SECTION))
