"""The receipt as one HTML page: responsive (one column that fits a phone) and printable.

Jinja2 with autoescape on: an item name, a footer or a buyer's contact is the sender's text,
so it is always escaped. The QR code and the logo are inlined as data URIs, so that the page
stands alone (a saved copy, an e-mail) and needs no second request. Every attribute carries
its FFD tag as ``data-tag``, which is what the tests read the page by.
"""

from __future__ import annotations

import base64
from functools import cache

import jinja2
import segno

from engine.render.receipt import ReceiptPage

__all__ = ["qr_code", "render_html"]


@cache
def _template() -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("engine.render", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
    )
    return environment.get_template("receipt.html")


def qr_code(text: str) -> segno.QRCode:
    """The FNS QR code of a receipt's QR string (error correction M, as registers print it)."""
    return segno.make(text, error="m", micro=False)


def render_html(page: ReceiptPage) -> str:
    """The page as one self-contained HTML document."""
    logo = page.branding.logo
    logo_uri = (
        None
        if logo is None
        else f"data:{page.branding.logo_type};base64,{base64.b64encode(logo).decode('ascii')}"
    )
    fd = next(row.value for row in page.fiscal if row.tag == 1040)
    return _template().render(
        page=page,
        fd=fd,
        logo=logo_uri,
        qr=qr_code(page.qr).svg_data_uri(scale=4, border=2),
    )
