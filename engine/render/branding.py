"""A tenant's branding of its receipts: a shop name, logo, two colours and a footer.

It comes from kassa.toml, or from the cabinet's branding page, which overrides kassa.toml's
(engine/render/brands.py answers which one a tenant has).

::

    [[tenants]]
    id = "shop"
    [tenants.branding]
    name = "Кофейня «Зерно»"       # the shop's name as the buyer knows it, over the title
    logo = "brand/logo.png"        # a PNG, JPEG or SVG file, relative to kassa.toml's folder
    primary = "#1f4e79"            # headings and the total
    accent = "#e8f0f8"             # the header band and table stripes
    footer = "Спасибо за покупку! Скидка 5% по промокоду ЧЕК5"

Every key is optional; a tenant without the table gets :data:`PLAIN`. A mistake is one
:class:`BrandingError` with the key's path, as a hook's is (engine/http/hooks.py), which the
config reader turns into its own error with the file's name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

__all__ = [
    "FOOTER_CHARS",
    "LOGO_BYTES",
    "NAME_CHARS",
    "PLAIN",
    "Branding",
    "BrandingError",
    "read_branding",
]

_COLOUR = re.compile(r"\A#[0-9A-Fa-f]{6}\Z")
_KEYS = ("name", "logo", "primary", "accent", "footer")
#: A logo is shown on every receipt and inlined into its HTML: keep it small.
LOGO_BYTES = 256 * 1024
#: A footer longer than this is an essay, not an advertisement line.
FOOTER_CHARS = 1000
#: A shop's name is one heading line.
NAME_CHARS = 100
_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"


class BrandingError(Exception):
    """A branding table the renderer cannot use: ``path`` names the key within it."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def _colour(_: Any, attribute: attrs.Attribute[str], value: str) -> None:
    if not _COLOUR.match(value):
        raise BrandingError(attribute.name, f"expected a colour as #RRGGBB, got {value!r}")


def _logo_type(logo: bytes) -> str:
    if logo.startswith(_PNG):
        return "image/png"
    if logo.startswith(_JPEG):
        return "image/jpeg"
    head = logo[:512].lstrip().lower()
    if head.startswith((b"<svg", b"<?xml")) and b"<svg" in logo[:4096].lower():
        return "image/svg+xml"
    raise BrandingError("logo", "expected a PNG, JPEG or SVG image")


@attrs.frozen
class Branding:
    """How a tenant's receipts look; the fiscal content never depends on it."""

    primary: str = attrs.field(default="#222222", validator=_colour)
    accent: str = attrs.field(default="#f2f2f2", validator=_colour)
    footer: str = ""
    logo: bytes | None = attrs.field(default=None, repr=False)
    name: str = ""  # the shop's name shown over the title; 1048 stays in the seller's rows

    def __attrs_post_init__(self) -> None:
        if self.logo is not None:
            if len(self.logo) > LOGO_BYTES:
                raise BrandingError("logo", f"{len(self.logo)} bytes, at most {LOGO_BYTES}")
            _logo_type(self.logo)
        if len(self.footer) > FOOTER_CHARS:
            raise BrandingError("footer", f"{len(self.footer)} characters, at most {FOOTER_CHARS}")
        if len(self.name) > NAME_CHARS or "\n" in self.name:
            raise BrandingError("name", f"one line of at most {NAME_CHARS} characters")

    @property
    def logo_type(self) -> str | None:
        """The logo's media type: image/png, image/jpeg or image/svg+xml (None without one)."""
        return None if self.logo is None else _logo_type(self.logo)

    def rgb(self, which: str) -> tuple[int, int, int]:
        """``primary`` or ``accent`` as an (r, g, b) triple, for the PNG and PDF renderers."""
        text: str = getattr(self, which)
        return int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16)


#: Black on white with no logo and no footer.
PLAIN = Branding()


def read_branding(table: Mapping[str, Any], folder: Path) -> Branding:
    """A ``[tenants.branding]`` table; the logo file is read now, relative to ``folder``."""
    if not isinstance(table, Mapping):
        raise BrandingError("", f"expected a table, got {type(table).__name__}")
    for key in table:
        if key not in _KEYS:
            raise BrandingError(key, "unknown key")
    values: dict[str, Any] = {}
    for key in ("name", "primary", "accent", "footer"):
        if key in table:
            if not isinstance(table[key], str):
                raise BrandingError(key, f"expected a string, got {type(table[key]).__name__}")
            values[key] = table[key]
    if "logo" in table:
        name = table["logo"]
        if not isinstance(name, str):
            raise BrandingError("logo", f"expected a file name, got {type(name).__name__}")
        path = Path(name).expanduser()
        path = path if path.is_absolute() else folder / path
        try:
            values["logo"] = path.read_bytes()
        except OSError as exc:
            raise BrandingError("logo", f"{path}: {exc.strerror or exc}") from None
    return Branding(**values)
