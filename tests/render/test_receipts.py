"""Branded receipts: every attribute the law requires, in HTML, PNG and PDF, of real signed
receipts of each kind; the QR code read back from the PNG; branding and escaping; the links."""

from __future__ import annotations

import io
from collections import defaultdict
from html.parser import HTMLParser
from pathlib import Path

import pypdf
import pytest
import zmq
import zxingcpp
from PIL import Image

from engine.render import (
    Branding,
    BrandingError,
    marking_mark,
    receipt_page,
    render_html,
    render_pdf,
    render_png,
)
from engine.reports import (
    MEASURE_LABELS,
    PAYMENT_METHOD_LABELS,
    PAYMENT_SUBJECT_LABELS,
    ReceiptView,
    roubles,
    vat_label,
)
from engine.service_config import ConfigError, parse_config, write_certificate
from tests.render.conftest import HOSTILE, fiscalized

ZONE = "Europe/Moscow"


class Tags(HTMLParser):
    """The text under every element with a ``data-tag``, by tag; every element's name seen."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, list[str]] = defaultdict(list)
        self.elements: list[str] = []
        self.attributes: list[dict[str, str | None]] = []
        self._open: list[tuple[str, str | None, list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(tag)
        self.attributes.append(dict(attrs))
        if tag in ("img", "meta", "br"):
            return
        self._open.append((tag, dict(attrs).get("data-tag"), []))

    def handle_endtag(self, tag: str) -> None:
        name, data_tag, text = self._open.pop()
        assert name == tag, (name, tag)
        joined = "".join(text)
        if data_tag is not None:
            self.values[data_tag].append(joined)
        if self._open:
            self._open[-1][2].append(joined)

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[-1][2].append(data)


def parse(text: str) -> Tags:
    tags = Tags()
    tags.feed(text)
    tags.close()
    return tags


def required(view: ReceiptView) -> dict[str, list[str]]:
    """What the receipt must show for each tag it carries, as the tests expect it written."""
    company = view.company
    want: dict[str, list[str]] = defaultdict(list)
    want["1054"] = [{1: "ПРИХОД", 2: "ВОЗВРАТ ПРИХОДА"}[view.operation]]
    want["1018"] = [company.inn]
    want["1187"] = [company.place]
    want["1055"] = [{1: "ОСН"}[company.tax_system]]
    if company.address:
        want["1009"] = [company.address]
    want["1012"] = [f"{view.time:%d.%m.%Y %H:%M}"]
    want["1038"] = [str(view.shift_number)]
    want["1042"] = [str(view.receipt_number)]
    want["1040"] = [str(view.fd_number)]
    want["1077"] = [str(view.printed_sign)]
    want["1041"] = [view.fn_number]
    want["1037"] = [view.registration_number.strip()]
    want["1020"] = [roubles(view.total)]
    want["1060"] = ["www.nalog.gov.ru"]
    for line in view.lines:
        want["1030"].append(line.name)
        want["1043"].append(roubles(line.sum))
        unit = MEASURE_LABELS[line.measure or 0]
        want["1023"].append(f"{line.quantity.normalize():f} {unit} × {roubles(line.price)}")
        want["1199"].append(vat_label(line.vat))
        if line.vat_sum is not None:
            want["1200"].append(roubles(line.vat_sum))
        want["1214"].append(PAYMENT_METHOD_LABELS[line.payment_method])
        want["1212"].append(PAYMENT_SUBJECT_LABELS[line.payment_subject])
        if line.marking is not None:
            want["1163"].append(line.marking)
            want["2106"].append(marking_mark(line.marking_check))
    for field, tag in (("cash", "1031"), ("electronic", "1081"), ("prepaid", "1215")):
        if getattr(view.payments, field):
            want[tag] = [roubles(getattr(view.payments, field))]
    for vat in view.vat_sums:
        want[str(vat.tag)].append(roubles(vat.amount))
    if view.contact:
        want["1008"] = [view.contact]
    if view.cashier is not None:
        want["1021"] = [view.cashier.name]
    if view.correction_type is not None:
        want["1173"] = ["самостоятельно"]
    return want


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)


def qr_of(png: bytes) -> str:
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert len(found) == 1, found
    return found[0].text


async def test_each_kind_carries_every_required_attribute_in_html_png_and_pdf(
    tmp_path: Path,
) -> None:
    async with fiscalized(tmp_path) as (_, views):
        pass
    assert views["marked"].lines[0].marking_check is not None
    assert views["sale"].lines[0].vat_sum is not None
    for name, view in views.items():
        page = receipt_page(view, ZONE)
        html = parse(render_html(page))
        title = "КАССОВЫЙ ЧЕК КОРРЕКЦИИ" if name == "correction" else "КАССОВЫЙ ЧЕК"
        assert title in render_html(page)
        want = required(view)
        for tag, values in want.items():
            assert html.values[tag] == values, (name, tag)
        assert html.values["2106"] == (["[М+]"] if name == "marked" else [])
        qr = [a["data-qr"] for a in html.attributes if "data-qr" in a]
        assert qr == [view.qr]
        assert view.qr.startswith("t=") and f"&fn={view.fn_number}&" in view.qr
        png = render_png(page)
        assert qr_of(png) == view.qr, name
        text = pdf_text(render_pdf(page))
        for tag in ("1054", "1020", "1040", "1077", "1041", "1037", "1038", "1042", "1012"):
            for value in want[tag]:
                assert value in text, (name, tag, value)
        for value in want["1030"]:
            assert value[:20] in text.replace("\n", " "), (name, value)
        assert title in text


def logo_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 20), (200, 10, 10)).save(out, format="PNG")
    return out.getvalue()


async def test_branding_is_applied_and_hostile_text_is_escaped(tmp_path: Path) -> None:
    async with fiscalized(tmp_path) as (_, views):
        pass
    branding = Branding(
        primary="#1f4e79",
        accent="#aabbcc",
        footer="Скидка 5% по промокоду <b>ЧЕК5</b>",
        logo=logo_png(),
    )
    page = receipt_page(views["sale"], ZONE, branding)
    text = render_html(page)
    html = parse(text)
    assert "--primary: #1f4e79" in text and "--accent: #aabbcc" in text
    assert "data:image/png;base64," in text
    assert "Скидка 5% по промокоду &lt;b&gt;ЧЕК5&lt;/b&gt;" in text
    assert HOSTILE in html.values["1030"]  # shown as text, exactly
    assert "script" not in html.elements and "b" not in html.elements
    assert html.elements.count("img") == 2  # the logo and the QR code, no third one
    image = Image.open(io.BytesIO(render_png(page))).convert("RGB")
    assert image.getpixel((2, 2)) == (0xAA, 0xBB, 0xCC)  # the header band
    assert (200, 10, 10) in {image.getpixel((x, 25)) for x in range(image.width)}  # the logo
    pdf = pdf_text(render_pdf(page))
    assert "ЧЕК5" in pdf and HOSTILE[:20] in pdf.replace("\n", " ")
    plain = render_html(receipt_page(views["sale"], ZONE))
    assert "data:image/png" not in plain and "ЧЕК5" not in plain


B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


async def test_a_public_link_serves_the_receipt_and_a_wrong_token_is_404(
    tmp_path: Path,
) -> None:
    branding = {"shop": Branding(footer="Реклама магазина")}
    async with fiscalized(tmp_path, branding=branding) as (served, views):
        view = views["refund"]
        links = served.door.receipt_links
        link = links.link("shop", view.job_id)
        page = await served.client.get(link)
        assert page.status_code == 200, page.text
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert "default-src 'none'" in page.headers["content-security-policy"]
        tags = parse(page.text)
        assert tags.values["1040"] == [str(view.fd_number)]
        assert "Реклама магазина" in page.text
        png = await served.client.get(link + ".png")
        assert png.headers["content-type"] == "image/png"
        assert qr_of(png.content) == view.qr
        pdf = await served.client.get(link + ".pdf")
        assert pdf.headers["content-type"] == "application/pdf"
        assert str(view.printed_sign) in pdf_text(pdf.content)
        token = link.removeprefix("/r/")
        altered = token[:-1] + ("A" if token[-1] != "A" else "B")
        # The same bytes spelt otherwise: base64's last character has spare bits.
        spare = token[:-1] + B64[B64.index(token[-1]) ^ 1]
        wrong = [
            "/r/" + altered,
            "/r/" + spare,
            "/r/" + "A" * 60,
            "/r/" + token + ".gif",
            "/r/" + links.token("other", view.job_id),  # another tenant's: not its job
            "/r/" + links.token("shop", "no-such-job"),
            "/r/x/y",
        ]
        for path in wrong:
            answer = await served.client.get(path)
            assert answer.status_code == 404, path
            assert answer.headers["content-type"].startswith("text/html"), path
            assert str(view.fd_number) not in answer.text
        assert links.read(token) == ("shop", view.job_id)
        assert links.read(altered) is None


CONFIG = """
[service]
listen = "tcp://127.0.0.1:0"
secret_key_file = "server.key_secret"
journal = "journal.db"

[http]
listen = "127.0.0.1:0"

[[tenants]]
id = "a"
"""


def load(folder: Path, branding: str) -> Branding | None:
    import tomllib

    public, secret = zmq.curve_keypair()
    write_certificate(folder / "server", public, secret)
    data = tomllib.loads(CONFIG + "[tenants.branding]\n" + branding)
    http = parse_config(data, "kassa.toml", folder).http
    assert http is not None
    return http.branding.get("a")


def test_branding_is_read_from_kassa_toml_with_a_path_for_each_mistake(tmp_path: Path) -> None:
    (tmp_path / "logo.png").write_bytes(logo_png())
    (tmp_path / "logo.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    (tmp_path / "logo.gif").write_bytes(b"GIF89a....")
    read = load(
        tmp_path, 'name = "Зерно"\nlogo = "logo.png"\nprimary = "#102030"\nfooter = "Спасибо"\n'
    )
    assert read == Branding(primary="#102030", footer="Спасибо", logo=logo_png(), name="Зерно")
    svg = load(tmp_path, 'logo = "logo.svg"\n')
    assert svg is not None and svg.logo_type == "image/svg+xml"
    mistakes = {
        'primary = "red"\n': "tenants[0].branding.primary: expected a colour as #RRGGBB",
        "accent = 5\n": "tenants[0].branding.accent: expected a string, got int",
        'colour = "#000000"\n': "tenants[0].branding.colour: unknown key",
        'logo = "missing.png"\n': "tenants[0].branding.logo: ",
        'logo = "logo.gif"\n': "tenants[0].branding.logo: expected a PNG, JPEG or SVG image",
        f'footer = "{"x" * 1001}"\n': "tenants[0].branding.footer: 1001 characters",
        f'name = "{"x" * 101}"\n': "tenants[0].branding.name: one line of at most 100",
    }
    for text, message in mistakes.items():
        with pytest.raises(ConfigError) as caught:
            load(tmp_path, text)
        assert str(caught.value).startswith(f"kassa.toml: {message}"), str(caught.value)
    with pytest.raises(BrandingError):
        Branding(accent="#12345")


def test_marks_follow_the_2106_bits() -> None:
    assert marking_mark(None) == "[М]"
    assert marking_mark(0) == "[М]"
    assert marking_mark(0x0F) == "[М+]"
    assert marking_mark(0x03) == "[М+]"
    assert marking_mark(0x01) == "[М-]"
    assert marking_mark(0x07) == "[М-]"
