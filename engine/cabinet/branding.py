"""The cabinet's branding page: the owner sets how the tenant's receipts look to buyers.

The shop's name, the logo (PNG or JPEG, at most :data:`~engine.render.branding.LOGO_BYTES`,
checked to be a real image by Pillow), two colours (#rrggbb) and the footer's advertising line.
Saved as the tenant's journal record through :class:`engine.render.brands.Brandings`, the one
place every door asks, so the public link, the e-mail and the PNG/PDF show it at once and after
a restart. The logo comes as a multipart file upload (the page's form) or as base64 / a
``data:`` URL in ``logo_base64`` (a script's urlencoded post). The preview is the PNG of the
tenant's last fiscalized receipt, served from the cabinet itself: its CSP allows only 'self'.
"""

from __future__ import annotations

import io
import warnings
from typing import TYPE_CHECKING, Any

import trio
from PIL import Image
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from engine.cabinet.app import PREFIX, Cabinet, Refusal
from engine.journal import ReceiptQuery
from engine.render import receipt_page, render_png
from engine.render.branding import FOOTER_CHARS, LOGO_BYTES, NAME_CHARS, Branding, BrandingError
from engine.render.brands import decode_logo

if TYPE_CHECKING:
    from engine.cabinet.users import Session

__all__ = ["BrandingPages", "check_logo"]

#: A logo wider or taller than this is a photo, not a logo (and a decompression bomb's shape).
LOGO_SIDE = 2048
_COLOURS = {"primary": "основной цвет", "accent": "цвет фона шапки"}


def check_logo(data: bytes) -> str:
    """ "" if ``data`` is a PNG or JPEG logo the receipts can carry, else why not (Russian)."""
    if len(data) > LOGO_BYTES:
        return f"logo: файл {len(data) // 1024} КБ, допустимо не больше {LOGO_BYTES // 1024} КБ"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                kind, size = image.format, image.size
                image.verify()
            if kind not in ("PNG", "JPEG"):
                return f"logo: ожидалось изображение PNG или JPEG, получено {kind}"
            if max(size) > LOGO_SIDE:
                return f"logo: {size[0]}×{size[1]} пикселей, допустимо до {LOGO_SIDE} по стороне"
            with Image.open(io.BytesIO(data)) as image:
                image.load()  # verify() leaves JPEG data unread: decode it whole
    except Exception:  # Pillow's many ways of saying "not an image": all one answer
        return "logo: файл не является изображением PNG или JPEG"
    return ""


class BrandingPages:
    """The routes of the branding page, on one cabinet."""

    def __init__(self, cabinet: Cabinet) -> None:
        self.cabinet = cabinet

    def routes(self) -> list[BaseRoute]:
        page = self.cabinet.page
        return [
            Route("/branding", page("branding", self.show), methods=["GET"]),
            Route(
                "/branding", page("branding", self.save, post=True, upload=True), methods=["POST"]
            ),
            Route("/branding/reset", page("branding", self.reset, post=True), methods=["POST"]),
            Route("/branding/preview.png", page("branding", self.preview), methods=["GET"]),
        ]

    async def _page(
        self,
        session: Session,
        values: dict[str, Any] | None = None,
        problems: list[str] | None = None,
        code: int = 200,
        notice: str = "",
    ) -> Response:
        cabinet, tenant = self.cabinet, session.user.tenant
        brandings = cabinet.door.brandings
        saved = await brandings.saved(cabinet.engine, tenant)
        current = saved if saved is not None else brandings.default(tenant)
        if values is None:
            values = {
                "name": current.name,
                "primary": current.primary,
                "accent": current.accent,
                "footer": current.footer,
            }
        last = await self._last_receipt(tenant)
        return cabinet.render(
            "branding.html",
            code,
            **cabinet.context(
                session,
                values=values,
                problems=problems or [],
                notice=notice,
                own=saved is not None,
                logo=None
                if current.logo is None
                else f"{current.logo_type}, {len(current.logo) // 1024 or 1} КБ",
                preview=last is not None,
                limits={"logo": LOGO_BYTES // 1024, "footer": FOOTER_CHARS, "name": NAME_CHARS},
            ),
        )

    async def _last_receipt(self, tenant: str) -> str | None:
        rows = await self.cabinet.engine.receipts(tenant, ReceiptQuery(state="fiscalized", limit=1))
        return rows[0].job_id if rows else None

    async def show(self, request: Request, session: Session) -> Response:
        notice = {"saved": "Оформление сохранено.", "reset": "Вернули оформление из kassa.toml."}
        return await self._page(
            session, notice=notice.get(request.query_params.get("done", ""), "")
        )

    async def save(self, request: Request, session: Session) -> Response:
        """Check every field, naming each bad one; save only a branding that is whole."""
        cabinet, tenant = self.cabinet, session.user.tenant
        form: dict[str, str] = request.state.form
        files: dict[str, bytes] = request.state.files
        values = {k: form.get(k, "").strip() for k in ("name", "primary", "accent")}
        values["footer"] = form.get("footer", "").replace("\r\n", "\n").strip()
        problems: list[str] = []
        if len(values["name"]) > NAME_CHARS or "\n" in values["name"]:
            problems.append(f"name: название — одна строка до {NAME_CHARS} символов")
        for key, label in _COLOURS.items():
            colour = values[key]
            if not (len(colour) == 7 and colour[0] == "#" and _hex(colour[1:])):
                problems.append(f"{key}: {label} — ожидался цвет #rrggbb, получено {colour!r}")
        if len(values["footer"]) > FOOTER_CHARS:
            problems.append(
                f"footer: текст внизу чека — {len(values['footer'])} символов, "
                f"допустимо до {FOOTER_CHARS}"
            )
        brandings = cabinet.door.brandings
        saved = await brandings.saved(cabinet.engine, tenant)
        logo = (saved if saved is not None else brandings.default(tenant)).logo
        if form.get("drop_logo"):
            logo = None
        upload = files.get("logo")
        if upload is None and form.get("logo_base64", "").strip():
            try:
                upload = decode_logo(form["logo_base64"])
            except BrandingError:
                problems.append("logo: ожидался base64 или data:-ссылка на изображение")
        if upload is not None:
            problem = await trio.to_thread.run_sync(
                check_logo, upload, limiter=cabinet.engine.heavy
            )
            if problem:
                problems.append(problem)
            logo = upload
        if not problems:
            try:
                branding = Branding(
                    primary=values["primary"].lower(),
                    accent=values["accent"].lower(),
                    footer=values["footer"],
                    logo=logo,
                    name=values["name"],
                )
            except BrandingError as exc:  # an SVG logo from kassa.toml kept is fine; else:
                problems.append(f"{exc.path}: {exc.message}")
        if problems:
            return await self._page(session, values, problems, 422)
        await brandings.save(cabinet.engine, tenant, branding)
        return RedirectResponse(f"{PREFIX}/branding?done=saved", 303)

    async def reset(self, request: Request, session: Session) -> Response:
        await self.cabinet.door.brandings.reset(self.cabinet.engine, session.user.tenant)
        return RedirectResponse(f"{PREFIX}/branding?done=reset", 303)

    async def preview(self, request: Request, session: Session) -> Response:
        """The tenant's last fiscalized receipt as PNG, in the branding saved now."""
        cabinet, tenant = self.cabinet, session.user.tenant
        engine = cabinet.engine
        job_id = await self._last_receipt(tenant)
        view = None if job_id is None else await engine.receipt_view(tenant, job_id)
        if view is None:
            raise Refusal(404, "Нет фискализированных чеков для предпросмотра.")
        branding = await cabinet.door.brandings.of(engine, tenant)
        page = receipt_page(view, engine.tenants[tenant].timezone, branding)
        body = await trio.to_thread.run_sync(render_png, page, limiter=engine.heavy)
        return Response(body, 200, {"Cache-Control": "no-store"}, media_type="image/png")


def _hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)
