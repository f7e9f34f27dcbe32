"""The receipt as a PNG image, 576 px wide: the printable width of an 80 mm receipt printer.

Drawn with Pillow from the same :class:`~engine.render.receipt.ReceiptPage` as the HTML: the
same rows in the same order, the QR code at 6 pixels a module (a phone reads it from a screen).
A PNG logo is drawn at the top; an SVG one is left out, as Pillow cannot rasterise SVG, and the
tenant's name in its primary colour stands in for it.
"""

from __future__ import annotations

import io
from functools import cache

from PIL import Image, ImageDraw, ImageFont

from engine.render.fonts import BOLD, REGULAR
from engine.render.html import qr_code
from engine.render.receipt import ReceiptPage, Row

__all__ = ["WIDTH", "render_png"]

WIDTH = 576
_MARGIN = 16
_INNER = WIDTH - 2 * _MARGIN
_LOGO_BOX = (320, 120)
Font = ImageFont.FreeTypeFont


@cache
def _font(bold: bool, size: int) -> Font:
    return ImageFont.truetype(str(BOLD if bold else REGULAR), size)


def _wrap(text: str, font: Font, width: int) -> list[str]:
    """``text`` broken into lines no wider than ``width``: at spaces, else inside a word."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if font.getlength(candidate) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            line = ""
            for char in word:  # a word wider than the line is cut where it must be
                if font.getlength(line + char) > width and line:
                    lines.append(line)
                    line = ""
                line += char
        lines.append(line)
    return lines


class _Canvas:
    """Lays rows top to bottom; measures only when ``draw`` is None (the first pass)."""

    def __init__(self, draw: ImageDraw.ImageDraw | None) -> None:
        self.draw = draw
        self.y = _MARGIN

    def text(
        self,
        text: str,
        *,
        bold: bool = False,
        size: int = 20,
        fill: tuple[int, int, int] = (17, 17, 17),
        centre: bool = False,
    ) -> None:
        font = _font(bold, size)
        for line in _wrap(text, font, _INNER):
            if self.draw is not None:
                x = _MARGIN + (_INNER - font.getlength(line)) / 2 if centre else _MARGIN
                self.draw.text((x, self.y), line, font=font, fill=fill)
            self.y += size + 6

    def row(
        self,
        row: Row,
        *,
        bold: bool = False,
        size: int = 20,
        fill: tuple[int, int, int] = (17, 17, 17),
    ) -> None:
        """A label on the left and its value on the right; a long pair takes two lines."""
        font = _font(bold, size)
        label_width, value_width = font.getlength(row.label), font.getlength(row.value)
        if label_width + value_width + 16 > _INNER:
            self.text(row.label, bold=bold, size=size, fill=fill if bold else (85, 85, 85))
            for line in _wrap(row.value, font, _INNER):
                if self.draw is not None:
                    x = _MARGIN + _INNER - font.getlength(line)
                    self.draw.text((x, self.y), line, font=font, fill=fill)
                self.y += size + 6
            return
        if self.draw is not None:
            self.draw.text(
                (_MARGIN, self.y), row.label, font=font, fill=fill if bold else (85, 85, 85)
            )
            self.draw.text(
                (_MARGIN + _INNER - value_width, self.y), row.value, font=font, fill=fill
            )
        self.y += size + 6

    def rule(self) -> None:
        if self.draw is not None:
            for x in range(_MARGIN, WIDTH - _MARGIN, 12):
                self.draw.line((x, self.y + 6, x + 6, self.y + 6), fill=(170, 170, 170))
        self.y += 14

    def image(self, image: Image.Image, target: Image.Image | None) -> None:
        if target is not None:
            x = (WIDTH - image.width) // 2
            target.paste(image, (x, self.y), image if image.mode == "RGBA" else None)
        self.y += image.height + 8


def _logo(page: ReceiptPage) -> Image.Image | None:
    if page.branding.logo is None or page.branding.logo_type not in ("image/png", "image/jpeg"):
        return None
    logo = Image.open(io.BytesIO(page.branding.logo)).convert("RGBA")
    logo.thumbnail(_LOGO_BOX)
    return logo


def _qr(page: ReceiptPage) -> Image.Image:
    out = io.BytesIO()
    qr_code(page.qr).save(out, kind="png", scale=6, border=4)
    return Image.open(io.BytesIO(out.getvalue())).convert("RGB")


def _header(
    page: ReceiptPage, canvas: _Canvas, target: Image.Image | None, logo: Image.Image | None
) -> None:
    if logo is not None:
        canvas.image(logo, target)
    if page.branding.name:
        canvas.text(
            page.branding.name, bold=True, size=24, fill=page.branding.rgb("primary"), centre=True
        )
    canvas.text(page.title, bold=True, size=26, fill=page.branding.rgb("primary"), centre=True)
    canvas.text(page.operation, bold=True, size=22, centre=True)


def _lay_out(
    page: ReceiptPage,
    canvas: _Canvas,
    target: Image.Image | None,
    logo: Image.Image | None,
    qr: Image.Image,
) -> None:
    primary = page.branding.rgb("primary")
    if canvas.draw is not None:  # the header's band in the accent colour, under what it holds
        height = _Canvas(None)
        _header(page, height, None, logo)
        canvas.draw.rectangle((0, 0, WIDTH, height.y + 4), fill=page.branding.rgb("accent"))
        canvas.draw.rectangle((0, height.y + 4, WIDTH, height.y + 7), fill=primary)
    _header(page, canvas, target, logo)
    canvas.y += 12
    for row in page.seller:
        canvas.row(row)
    canvas.rule()
    for line in page.lines:
        mark = f"{line.mark} " if line.mark else ""
        canvas.row(Row(f"{line.number}. {mark}{line.name}", line.sum), bold=True)
        for row in line.rows():
            canvas.row(row, size=17)
        canvas.y += 6
    canvas.rule()
    canvas.row(page.total, bold=True, size=26, fill=primary)
    for row in (*page.payments, *page.vat):
        canvas.row(row)
    if page.people:
        canvas.rule()
        for row in page.people:
            canvas.row(row)
    canvas.rule()
    for row in page.fiscal:
        canvas.row(row)
    canvas.y += 8
    canvas.image(qr, target)
    if page.branding.footer:
        canvas.rule()
        canvas.text(page.branding.footer, size=20, fill=primary, centre=True)
    canvas.text(page.reference, size=14, fill=(153, 153, 153), centre=True)


def render_png(page: ReceiptPage) -> bytes:
    """The page as PNG bytes."""
    logo, qr = _logo(page), _qr(page)
    measure = _Canvas(None)
    _lay_out(page, measure, None, logo, qr)
    image = Image.new("RGB", (WIDTH, measure.y + _MARGIN), (255, 255, 255))
    _lay_out(page, _Canvas(ImageDraw.Draw(image)), image, logo, qr)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
