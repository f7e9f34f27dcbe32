"""The one answer to "how do tenant T's receipts look": the cabinet's branding over kassa.toml's.

kassa.toml's ``[tenants.branding]`` is the default; what the owner saves on the cabinet's
branding page is a journal record (:class:`~engine.journal.TenantRecord`, kind ``branding``)
that overrides it whole. Every door that draws a receipt (the public link, the buyer's e-mail,
the cabinet's preview) asks :class:`Brandings`, so an edit shows everywhere at once and after a
restart. The record is read from the journal on each use, not cached: with several engine
processes on one journal (DESIGN.md, scale-out) a cache in one would go stale.

The record's JSON: ``{"name", "primary", "accent", "footer", "logo"}``, the logo as a
``data:`` URL (its media type beside its base64), or null.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from engine.journal import TenantRecord
from engine.render.branding import PLAIN, Branding, BrandingError

if TYPE_CHECKING:
    from engine.engine import Engine

__all__ = ["KIND", "Brandings", "branding_from_json", "branding_to_json"]

log = logging.getLogger("kassa.render")

#: The journal record's kind and its one key: a tenant has one branding.
KIND = "branding"
KEY = "receipt"


def branding_to_json(branding: Branding) -> str:
    """The record's JSON of ``branding``."""
    logo = None
    if branding.logo is not None:
        logo = f"data:{branding.logo_type};base64,{base64.b64encode(branding.logo).decode()}"
    return json.dumps(
        {
            "name": branding.name,
            "primary": branding.primary,
            "accent": branding.accent,
            "footer": branding.footer,
            "logo": logo,
        },
        ensure_ascii=False,
    )


def decode_logo(text: str) -> bytes:
    """A logo given as a ``data:`` URL or bare base64; BrandingError("logo") if neither."""
    text = text.strip()
    if text.startswith("data:"):
        head, comma, text = text.partition(",")
        if not comma or not head.endswith(";base64"):
            raise BrandingError("logo", "expected a data: URL in base64")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BrandingError("logo", "not base64") from None


def branding_from_json(text: str) -> Branding:
    """A record's branding; BrandingError if it is not one."""
    try:
        value: Any = json.loads(text)
    except ValueError:
        raise BrandingError("", "not JSON") from None
    if not isinstance(value, dict):
        raise BrandingError("", "expected an object")
    fields: dict[str, Any] = {}
    for key in ("name", "primary", "accent", "footer"):
        if key in value:
            if not isinstance(value[key], str):
                raise BrandingError(key, "expected a string")
            fields[key] = value[key]
    logo = value.get("logo")
    if logo is not None:
        if not isinstance(logo, str):
            raise BrandingError("logo", "expected a data: URL")
        fields["logo"] = decode_logo(logo)
    return Branding(**fields)


class Brandings:
    """The effective branding of each tenant; see the module docstring."""

    def __init__(self, configured: Mapping[str, Branding]) -> None:
        self.configured = configured

    def default(self, tenant: str) -> Branding:
        """kassa.toml's branding of ``tenant`` (the plain look without one)."""
        return self.configured.get(tenant, PLAIN)

    async def saved(self, engine: Engine, tenant: str) -> Branding | None:
        """The cabinet's branding of ``tenant``, None if the owner saved none. A record that
        does not read (written by a later version, edited by hand) is logged and ignored, so a
        buyer still gets the receipt."""
        for record in await engine.tenant_records(tenant, KIND):
            if record.key == KEY:
                try:
                    return branding_from_json(record.value)
                except BrandingError as exc:
                    log.warning("the saved branding of %s does not read: %s", tenant, exc)
        return None

    async def of(self, engine: Engine, tenant: str) -> Branding:
        """The branding ``tenant``'s receipts are drawn in now."""
        saved = await self.saved(engine, tenant)
        return saved if saved is not None else self.default(tenant)

    async def save(self, engine: Engine, tenant: str, branding: Branding) -> None:
        """Make ``branding`` the tenant's, over kassa.toml's."""
        await engine.put_tenant_record(TenantRecord(tenant, KIND, KEY, branding_to_json(branding)))

    async def reset(self, engine: Engine, tenant: str) -> bool:
        """Back to kassa.toml's branding; whether the cabinet had one."""
        return await engine.drop_tenant_record(tenant, KIND, KEY)
