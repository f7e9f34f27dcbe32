"""The receipt as a PDF: 80 mm wide pages, as a receipt printer's roll would print it.

Written with fpdf2 from the same :class:`~engine.render.receipt.ReceiptPage` as the HTML and
PNG, with the package's DejaVu Sans embedded (subset, with its Unicode map, so that the text
can be searched and copied). A long receipt goes on to a next page. fpdf2 draws PNG and SVG
logos alike.
"""

from __future__ import annotations

import io

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from engine.render.fonts import BOLD, REGULAR
from engine.render.html import qr_code
from engine.render.receipt import ReceiptPage, Row

__all__ = ["render_pdf"]

_WIDTH = 80.0  # mm
_HEIGHT = 297.0
_MARGIN = 4.0
_INNER = _WIDTH - 2 * _MARGIN
_GREY = (85, 85, 85)
_BLACK = (17, 17, 17)


class _Receipt(FPDF):
    def __init__(self, page: ReceiptPage) -> None:
        super().__init__(unit="mm", format=(_WIDTH, _HEIGHT))
        self.page_view = page
        self.set_margins(_MARGIN, _MARGIN, _MARGIN)
        self.set_auto_page_break(True, margin=_MARGIN)
        self.add_font("DejaVu", "", str(REGULAR))
        self.add_font("DejaVu", "B", str(BOLD))
        self.set_title(f"{page.title} {page.reference}")
        self.set_creator("Kassa")

    def text_block(
        self,
        text: str,
        *,
        bold: bool = False,
        size: float = 8,
        colour: tuple[int, int, int] = _BLACK,
        align: str = "C",
    ) -> None:
        self.set_font("DejaVu", "B" if bold else "", size)
        self.set_text_color(*colour)
        self.multi_cell(_INNER, size * 0.45, text, align=align, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def row(
        self,
        row: Row,
        *,
        bold: bool = False,
        size: float = 8,
        colour: tuple[int, int, int] = _BLACK,
    ) -> None:
        """A label on the left, its value on the right; a long pair takes two lines."""
        self.set_font("DejaVu", "B" if bold else "", size)
        height = size * 0.45
        label_width = self.get_string_width(row.label)
        value_width = self.get_string_width(row.value)
        if label_width + value_width + 2 > _INNER:
            self.text_block(
                row.label, bold=bold, size=size, colour=colour if bold else _GREY, align="L"
            )
            self.text_block(row.value, bold=bold, size=size, colour=colour, align="R")
            return
        self.set_text_color(*(colour if bold else _GREY))
        self.cell(label_width + 1, height, row.label)
        self.set_text_color(*colour)
        self.cell(0, height, row.value, align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def rule(self) -> None:
        self.ln(1)
        self.set_draw_color(170, 170, 170)
        self.set_dash_pattern(dash=1, gap=1)
        self.line(_MARGIN, self.get_y(), _WIDTH - _MARGIN, self.get_y())
        self.set_dash_pattern()
        self.ln(1.5)


def render_pdf(page: ReceiptPage) -> bytes:
    """The page as PDF bytes."""
    primary = page.branding.rgb("primary")
    pdf = _Receipt(page)
    pdf.add_page()
    top = pdf.get_y()
    pdf.set_fill_color(*page.branding.rgb("accent"))
    header_height = (
        (22 if page.branding.logo is not None else 0) + (6 if page.branding.name else 0) + 11
    )
    pdf.rect(0, 0, _WIDTH, top + header_height, style="F")
    pdf.set_fill_color(*primary)
    pdf.rect(0, top + header_height, _WIDTH, 0.8, style="F")
    if page.branding.logo is not None:
        pdf.image(
            io.BytesIO(page.branding.logo), x=_MARGIN, y=top, w=_INNER, h=20, keep_aspect_ratio=True
        )
        pdf.set_y(top + 22)
    if page.branding.name:
        pdf.text_block(page.branding.name, bold=True, size=10, colour=primary)
    pdf.text_block(page.title, bold=True, size=11, colour=primary)
    pdf.text_block(page.operation, bold=True, size=9)
    pdf.set_y(top + header_height + 2)
    for row in page.seller:
        pdf.row(row)
    pdf.rule()
    for line in page.lines:
        mark = f"{line.mark} " if line.mark else ""
        pdf.row(Row(f"{line.number}. {mark}{line.name}", line.sum), bold=True)
        for row in line.rows():
            pdf.row(row, size=7)
        pdf.ln(1)
    pdf.rule()
    pdf.row(page.total, bold=True, size=11, colour=primary)
    for row in (*page.payments, *page.vat):
        pdf.row(row)
    if page.people:
        pdf.rule()
        for row in page.people:
            pdf.row(row)
    pdf.rule()
    for row in page.fiscal:
        pdf.row(row)
    qr = io.BytesIO()
    qr_code(page.qr).save(qr, kind="png", scale=8, border=4)
    if pdf.get_y() + 40 > _HEIGHT - _MARGIN:
        pdf.add_page()
    pdf.image(io.BytesIO(qr.getvalue()), x=(_WIDTH - 38) / 2, y=pdf.get_y() + 1, w=38, h=38)
    pdf.set_y(pdf.get_y() + 40)
    if page.branding.footer:
        pdf.rule()
        pdf.text_block(page.branding.footer, size=8, colour=primary)
    pdf.text_block(page.reference, size=5, colour=(153, 153, 153))
    return bytes(pdf.output())
