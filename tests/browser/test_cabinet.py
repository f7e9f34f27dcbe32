"""The cabinet in a real browser: Debian's Chromium driven by Playwright against a real
``kassa serve --demo`` process, whose receipt e-mails go to a real SMTP server on 127.0.0.1.

A merchant logs in, finds a receipt, opens it and refunds it; a cashier sells on the mobile
page at 360 px; the buyer's e-mail arrives. ``KASSA_SCREENSHOTS=DIR`` also saves the main
pages as PNG there (``make screenshots`` writes docs/screenshots/).

Without Chromium (``make browser`` installs Debian's as root) or Playwright, the module skips
with one line that says which is missing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.http.conftest import corpus
from tests.http.test_demo import start_demo
from tests.http.test_email import Mailbox, smtp_server

#: Debian's Chromium; KASSA_CHROMIUM names another build of it.
CHROMIUM = Path(os.environ.get("KASSA_CHROMIUM", "/usr/bin/chromium"))

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - `make test` installs it with the dev extras
    pytest.skip(
        "browser tests: Playwright is not installed (pip install -e '.[dev]')",
        allow_module_level=True,
    )
if not CHROMIUM.exists():
    pytest.skip(
        f"browser tests: no {CHROMIUM}; `make browser` installs Debian's chromium as root",
        allow_module_level=True,
    )

#: How Chromium starts as root on a machine whose network reaches only 127.0.0.1.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MOBILE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 900}
#: How long the browser waits for a page or an element, in milliseconds.
WAIT_MS = 20_000


class Demo:
    """A running ``kassa serve --demo`` and what its credentials line said."""

    def __init__(self, process: subprocess.Popen[str], credentials: dict[str, Any]) -> None:
        self.process = process
        self.credentials = credentials
        self.cabinet: str = credentials["cabinet"]["url"]

    def sell(self, **client: str) -> str:
        """A card sale through the ATOL door, as a shop's CMS sends it; its external_id."""
        atol, base = self.credentials["atol"], self.credentials["http"] + "/possystem/v5"
        external_id = f"browser-{uuid.uuid4().hex[:8]}"
        body = corpus("atol-sell-prepayment.json", external_id=external_id)
        body["receipt"]["client"] = client or {"email": "buyer@example.com"}
        with httpx.Client(trust_env=False, timeout=30) as http:
            token = http.post(
                f"{base}/getToken", json={"login": atol["login"], "pass": atol["password"]}
            ).json()["token"]
            answer = http.post(
                f"{base}/{atol['group_code']}/sell", json=body, headers={"Token": token}
            )
            assert answer.status_code == 200, answer.text
        return external_id


@pytest.fixture(scope="module")
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    with smtp_server() as served:
        yield served


@pytest.fixture(scope="module")
def demo(mailbox: tuple[Mailbox, int]) -> Iterator[Demo]:
    process, said = start_demo("--smtp", f"127.0.0.1:{mailbox[1]}", quiet=True)
    try:
        yield Demo(process, json.loads(said["credentials"]))
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def open_page(browser: Browser, viewport: dict[str, int]) -> Page:
    page = browser.new_page(viewport=viewport, locale="ru-RU")  # type: ignore[arg-type]
    page.set_default_timeout(WAIT_MS)
    return page


def log_in(page: Page, demo: Demo) -> None:
    page.goto(demo.cabinet)
    expect(page.get_by_role("heading", name="Вход в кабинет")).to_be_visible()
    page.get_by_label("Логин").fill(demo.credentials["cabinet"]["login"])
    page.get_by_label("Пароль").fill(demo.credentials["cabinet"]["password"])
    page.get_by_role("button", name="Войти").click()
    page.wait_for_url("**/cabinet/dashboard")


def shoot(page: Page, name: str) -> None:
    """Save the page as docs' screenshot ``name`` when KASSA_SCREENSHOTS names a folder."""
    folder = os.environ.get("KASSA_SCREENSHOTS")
    if folder:
        from PIL import Image

        Path(folder).mkdir(parents=True, exist_ok=True)
        path = Path(folder) / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        with Image.open(path) as shot:  # a palette keeps the repository's copies small
            shot.convert("RGB").quantize(128).save(path, optimize=True)


def mail_to(mailbox: Mailbox, address: str) -> EmailMessage:
    """The one message the test SMTP server took for ``address``, waiting for it to come."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while True:
        with mailbox.lock:
            found = [
                m
                for m, to in zip(mailbox.messages, mailbox.recipients, strict=True)
                if address in to
            ]
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    (message,) = found
    return message


def until_fiscalized(page: Page) -> None:
    """Reload a job's page until its state says fiscalized (the page has no script)."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while "фискализирован" not in (page.locator("#state").text_content() or ""):
        assert time.monotonic() < deadline, page.locator("#state").text_content()
        page.wait_for_timeout(200)
        page.reload()


def test_a_merchant_finds_a_receipt_opens_it_and_refunds_it(
    browser: Browser, demo: Demo, mailbox: tuple[Mailbox, int]
) -> None:
    buyer = f"{uuid.uuid4().hex[:8]}@example.com"
    external_id = demo.sell(email=buyer)
    page = open_page(browser, DESKTOP)
    log_in(page, demo)
    expect(page.locator("header")).to_contain_text("owner (owner)")

    page.get_by_role("link", name="Чеки", exact=True).click()
    page.get_by_label("external_id").fill(external_id)
    page.get_by_role("button", name="Найти").click()
    found = page.get_by_role("link", name=external_id)
    expect(found).to_have_count(1)
    shoot(page, "receipts")
    found.click()

    until_fiscalized(page)
    expect(page.locator("h1")).to_contain_text(external_id)
    assert page.locator("#lines tr.line").count() >= 1
    fd = page.locator("#fd").text_content() or ""
    assert fd.isdigit(), fd
    shoot(page, "receipt")

    # The buyer's public link shows the same receipt, with its FD, to anyone who has it.
    receipt_url = page.url
    page.get_by_role("link", name="страница").click()
    expect(page.locator("body")).to_contain_text(fd)
    shoot(page, "public-receipt")
    page.goto(receipt_url)

    # The buyer got the receipt by e-mail (1008), with the same FD and a PDF.
    message = mail_to(mailbox[0], buyer)
    assert f"Кассовый чек № {fd} " in message["Subject"]
    assert [a.get_content_type() for a in message.iter_attachments()] == ["application/pdf"]

    page.locator("#refund").click()
    until_fiscalized(page)
    expect(page.locator("h1")).to_contain_text("refund-of-")
    expect(page.locator("main")).to_contain_text("возврат прихода")
    assert page.locator("#lines tr.line").count() >= 1
    page.close()


#: A pair of shoes' DataMatrix as a scanner types it: GS (0x1D) before 91 and 92.
SHOES_CODE = "0104601234567893215Br0wser" + "\x1d91EE07\x1d92" + "A" * 44


def test_a_cashier_sells_on_a_phone_and_the_buyer_gets_the_receipt(
    browser: Browser, demo: Demo, mailbox: tuple[Mailbox, int]
) -> None:
    page = open_page(browser, MOBILE)
    log_in(page, demo)
    page.get_by_role("link", name="Продажа").click()
    expect(page.get_by_role("heading", name="Касса")).to_be_visible()
    assert fits(page), "the cashier page scrolls sideways at 360 px"
    page.get_by_label("Кофе в зёрнах").fill("2")
    page.get_by_label("Сыр, кг").fill("0,5")
    page.get_by_label("Кроссовки").fill("1")
    page.get_by_label("Код маркировки").fill(SHOES_CODE)
    page.get_by_label("Картой").check()
    shoot(page, "cashier")
    page.get_by_role("button", name="Пробить чек").click()

    page.wait_for_url("**/cabinet/cashier/*")
    expect(page.locator("#state")).to_have_text("фискализирован")  # the page refreshes itself
    # 2 × 450,00 + 0,5 × 980,00 + 5 490,00
    expect(page.locator("#total")).to_have_text("6880,00")
    assert fits(page), "the sale's page scrolls sideways at 360 px"
    shoot(page, "cashier-receipt")
    shown = decode_qr(page.locator("#qr svg").screenshot())
    assert shown.startswith("t=") and "&s=6880.00&" in shown, shown

    buyer = f"{uuid.uuid4().hex[:8]}@example.com"
    page.get_by_label("Отправить чек на e-mail").fill(buyer)
    page.get_by_role("button", name="Отправить").click()
    message = mail_to(mailbox[0], buyer)
    html = message.get_body(("html",))
    assert html is not None and "Кроссовки" in html.get_content()
    page.close()


def fits(page: Page) -> bool:
    """Whether the page is no wider than its viewport: nothing to scroll sideways."""
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def decode_qr(png: bytes) -> str:
    """The text of the one QR code in a screenshot, as a phone's camera would read it."""
    import io

    import zxingcpp
    from PIL import Image

    (found,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    return str(found.text)


#: Every page of the owner's menu: its link and its heading.
OWNER_PAGES = (
    ("Кассы и смены", "Кассы и смены", "registers"),
    ("Отчёты", "Отчёт об операциях", "reports"),
    ("Каталог", "Каталог товаров", "catalogue"),
    ("Выгрузки", "Выгрузка чеков", "exports"),
    ("Оформление чека", "Оформление чека", "branding"),
    ("Ключи API", "Ключи API", "credentials"),
)


@pytest.mark.parametrize("viewport", [DESKTOP, MOBILE], ids=["1280px", "360px"])
def test_every_page_of_the_owner_s_menu_opens_and_fits(
    browser: Browser, demo: Demo, viewport: dict[str, int]
) -> None:
    demo.sell()  # something to report, chart and show on the dashboard
    page = open_page(browser, viewport)
    failures: list[str] = []
    page.on(
        "response", lambda r: failures.append(f"{r.status} {r.url}") if r.status >= 400 else None
    )
    page.on(
        "console",
        lambda m: failures.append(f"{m.text} {m.location}") if m.type == "error" else None,
    )
    log_in(page, demo)
    for link, heading, name in OWNER_PAGES:
        page.locator("header").get_by_role("link", name=link, exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_have_text(heading)
        assert fits(page), f"{name} scrolls sideways at {viewport['width']} px"
        if viewport is DESKTOP:
            shoot(page, name)
    page.locator("header").get_by_role("link", name="Сводка").click()
    expect(page.locator("#today-count")).not_to_have_text("0")  # this test's sale, at least
    assert fits(page), f"the dashboard scrolls sideways at {viewport['width']} px"
    if viewport is DESKTOP:
        shoot(page, "dashboard")
    assert failures == []
    page.close()
