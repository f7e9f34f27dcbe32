"""The buyer's copy of a receipt (1008): an e-mail by SMTP, or an SMS through a provider.

Both are deliveries of the :class:`~engine.http.callbacks.CallbackSender`, journaled with the
job when it is accepted (kind ``email``, url ``mailto:ADDRESS``; kind ``sms``, url ``tel:PHONE``)
and sent once it is final, with the callbacks' retries, ``dead`` state and restart. A job that
ends without a receipt (failed) has nothing to send: its delivery is journaled ``skipped``.

Not lost, not doubled: a delivery journaled ``delivered`` is never sent again. One window stays
at-least-once: the process dying after the SMTP server's 250 and before ``delivered`` is
journaled sends the message again after the restart. Its Message-ID is derived from the job id
(``<receipt-JOBID@kassa>``), the same at every attempt, so a receiver can drop the repeat.

smtplib blocks, so a message goes out in a worker thread (``trio.to_thread``) with the socket
timeout of ``[smtp] timeout``.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from typing import TYPE_CHECKING, Protocol

import trio

from engine.http.callbacks import SKIPPED as SKIP
from engine.render import receipt_page, render_html, render_pdf
from engine.service_config import SmtpSettings

if TYPE_CHECKING:
    from engine.http.app import HttpDoor
    from engine.journal import Delivery, Job
    from engine.reports import ReceiptView

log = logging.getLogger("kassa.http.mail")


class SmsProvider(Protocol):
    """Sends one text message; raises on a failure (the delivery is retried)."""

    async def send(self, phone: str, text: str) -> None: ...


class LoggingSmsProvider:
    """The default SMS provider: logs the message; a real gateway replaces it."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def send(self, phone: str, text: str) -> None:
        log.info("SMS to %s: %s", phone, text)
        self.sent.append((phone, text))


def buyer_contact(receipt: object) -> tuple[str, str] | None:
    """(kind, url) of a receipt's buyer delivery from its 1008, or None without one."""
    client = getattr(receipt, "client", None)
    contact = getattr(client, "contact", None)
    if not isinstance(contact, str) or not contact.strip():
        return None
    contact = contact.strip()
    if "@" in contact:
        return "email", f"mailto:{contact}"
    return "sms", f"tel:{contact}"


def message_id(job_id: str) -> str:
    """The same Message-ID at every attempt, so that a receiver can drop a repeat."""
    return f"<receipt-{job_id}@kassa>"


def subject(view: ReceiptView) -> str:
    title = "Кассовый чек коррекции" if view.document_code == 31 else "Кассовый чек"
    return f"{title} № {view.fd_number} от {view.time:%d.%m.%Y %H:%M}"


def plain_text(view: ReceiptView, link: str) -> str:
    lines = [
        subject(view),
        f"{view.company.name}" if getattr(view.company, "name", "") else "",
        f"Итого: {view.total // 100}.{view.total % 100:02d} ₽",
        f"ФН {view.fn_number}, ФД {view.fd_number}, ФП {view.printed_sign}",
        f"Чек: {link}",
    ]
    return "\n".join(line for line in lines if line) + "\n"


def build_message(
    settings: SmtpSettings,
    to: str,
    job_id: str,
    view: ReceiptView,
    html: str,
    pdf: bytes,
    link: str,
) -> EmailMessage:
    """The e-mail: HTML with a plain-text alternative, the PDF attached, the link in both."""
    message = EmailMessage()
    message["Subject"] = subject(view)
    message["From"] = settings.sender
    message["To"] = to
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = message_id(job_id)
    message.set_content(plain_text(view, link))
    anchor = f'<p style="text-align:center"><a href="{link}">Чек по ссылке</a></p>'
    body = html.replace("</body>", anchor + "</body>", 1) if "</body>" in html else html + anchor
    message.add_alternative(body, subtype="html")
    message.add_attachment(
        pdf, maintype="application", subtype="pdf", filename=f"receipt-{view.fd_number}.pdf"
    )
    return message


def send_smtp(settings: SmtpSettings, message: EmailMessage) -> None:
    """One SMTP session (blocking, in a worker thread): connect, TLS, log in, send."""
    password = settings.password_file.read_text().strip() if settings.password_file else ""
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if settings.security == "ssl":
        smtp = smtplib.SMTP_SSL(
            settings.host, settings.port, timeout=settings.timeout, context=context
        )
    else:
        smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
    with smtp:
        if settings.security == "starttls":
            smtp.starttls(context=context)
        if settings.user:
            smtp.login(settings.user, password)
        smtp.send_message(message)


class BuyerMail:
    """The ``email`` and ``sms`` transports of one door's sender."""

    def __init__(self, door: HttpDoor, settings: SmtpSettings | None, sms: SmsProvider) -> None:
        self.door = door
        self.settings = settings
        self.sms = sms

    def link(self, job: Job) -> str:
        base = (self.settings.link_base if self.settings else "") or self.door.url
        return base.rstrip("/") + self.door.receipt_links.link(job.tenant, job.id)

    async def _view(self, job: Job) -> ReceiptView | None:
        engine = self.door.engine
        assert engine is not None
        return await engine.receipt_view(job.tenant, job.id)

    async def email(self, job: Job, delivery: Delivery) -> str:
        """One attempt: "" sent, SKIP if there is no receipt, else what went wrong."""
        settings = self.settings
        if settings is None:
            return "no [smtp] is configured"
        view = await self._view(job)
        if view is None:
            return SKIP
        engine = self.door.engine
        assert engine is not None
        branding = await self.door.brandings.of(engine, job.tenant)
        page = receipt_page(view, engine.tenants[job.tenant].timezone, branding)
        pdf = await trio.to_thread.run_sync(render_pdf, page, limiter=engine.heavy)
        to = delivery.url.removeprefix("mailto:")
        message = build_message(settings, to, job.id, view, render_html(page), pdf, self.link(job))
        try:
            await trio.to_thread.run_sync(send_smtp, settings, message)
        except (smtplib.SMTPException, OSError) as exc:
            return f"{type(exc).__name__}: {exc}"[:200]
        return ""

    async def text(self, job: Job, delivery: Delivery) -> str:
        view = await self._view(job)
        if view is None:
            return SKIP
        text = f"{subject(view)}: {self.link(job)}"
        try:
            await self.sms.send(delivery.url.removeprefix("tel:"), text)
        except Exception as exc:  # a provider's failure: retried as any delivery
            return f"{type(exc).__name__}: {exc}"[:200]
        return ""
