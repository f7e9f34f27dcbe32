"""Branded receipts: one fiscalized receipt as HTML, PNG and PDF, in a tenant's branding.

::

    page = receipt_page(await engine.receipt_view(tenant, job_id), time_zone, branding)
    render_html(page), render_png(page), render_pdf(page)

:mod:`engine.render.receipt` makes the one view every format draws, so that all three carry
every attribute the law requires of an electronic receipt; the HTTP door serves them at a
public link (engine/http/receipts.py).
"""

from engine.render.branding import PLAIN, Branding, BrandingError, read_branding
from engine.render.html import qr_code, render_html
from engine.render.pdf import render_pdf
from engine.render.png import render_png
from engine.render.receipt import FNS_SITE, PageLine, ReceiptPage, Row, marking_mark, receipt_page

__all__ = [
    "FNS_SITE",
    "PLAIN",
    "Branding",
    "BrandingError",
    "PageLine",
    "ReceiptPage",
    "Row",
    "marking_mark",
    "qr_code",
    "read_branding",
    "receipt_page",
    "render_html",
    "render_pdf",
    "render_png",
]
