"""The public link of a receipt: ``GET /r/{token}`` (HTML), ``/r/{token}.png``, ``/r/{token}.pdf``.

A buyer gets a receipt by a link, with no login, so the token is the only lock: it is an HMAC
(SHA-256, 128 bits kept) of the tenant and the job id under a key derived from the service's
secret key, with the tenant and job id beside it. That needs no storage, outlives a restart
(kassa.toml's key is the service's), and cannot be made for a receipt without the key: a guessed
or altered token, or one for a job that has no receipt, is answered 404, all alike. The pages
are made by :mod:`engine.render` in the tenant's branding (engine/render/brands.py);
PNG and PDF are drawn in the engine's heavy-read threads, off the event loop.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import trio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from engine.http.app import guarded, retry_after
from engine.http.credentials import b64
from engine.render import receipt_page, render_html, render_pdf, render_png

if TYPE_CHECKING:
    from engine.engine import Engine
    from engine.http.app import HttpDoor

__all__ = ["PREFIX", "LinkRefusal", "ReceiptLinks", "receipt_links_document"]

PREFIX = "/r"
_MAC_BYTES = 16
_TOKEN = re.compile(r"\A[A-Za-z0-9_-]{24,400}\Z")
_KINDS = {"": "text/html; charset=utf-8", "png": "image/png", "pdf": "application/pdf"}
#: The HTML page may load nothing: its QR code, logo and style are inline.
_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'"
_HEADERS = {
    "Cache-Control": "private, max-age=300",
    "X-Robots-Tag": "noindex",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


class LinkRefusal(Exception):
    """A link that cannot be answered with its receipt: the status and a text for the page."""

    def __init__(self, status: int, text: str, retry_after: float | None = None) -> None:
        super().__init__(status, text)
        self.status = status
        self.text = text
        self.retry_after = retry_after


def _page(status: int, text: str, headers: Mapping[str, str]) -> Response:
    title = "Чек не найден" if status == 404 else "Чек недоступен"
    body = (
        '<!DOCTYPE html><html lang="ru"><head><meta charset="utf-8">'
        f"<title>{title}</title></head><body><h1>{title}</h1>"
        f"<p>{html.escape(text)}</p></body></html>"
    )
    return Response(body, status, {**headers, "X-Robots-Tag": "noindex"}, media_type=_KINDS[""])


def _refused(_: Request, refusal: LinkRefusal) -> Response:
    headers = retry_after(refusal.retry_after)
    return _page(refusal.status, refusal.text, headers)


class ReceiptLinks:
    """Issues receipt tokens and serves the receipts they name, on one door."""

    def __init__(self, door: HttpDoor, key: bytes) -> None:
        self.door = door
        self._key = hashlib.sha256(b"kassa receipt link\n" + key).digest()

    def _mac(self, tenant: str, job_id: str) -> bytes:
        message = f"{tenant}\n{job_id}".encode()
        return hmac.new(self._key, message, hashlib.sha256).digest()[:_MAC_BYTES]

    def token(self, tenant: str, job_id: str) -> str:
        """The unguessable token of a tenant's receipt."""
        return b64(self._mac(tenant, job_id) + f"{tenant}\n{job_id}".encode())

    def link(self, tenant: str, job_id: str, kind: str = "") -> str:
        """The receipt's path on the door: ``/r/TOKEN`` or ``/r/TOKEN.png`` / ``.pdf``."""
        return f"{PREFIX}/{self.token(tenant, job_id)}" + (f".{kind}" if kind else "")

    def read(self, token: str) -> tuple[str, str] | None:
        """(tenant, job id) of a token this service issued; None for any other string."""
        if not _TOKEN.match(token):
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            tenant, job_id = raw[_MAC_BYTES:].decode().split("\n")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return None
        if b64(raw) != token:  # the last character's spare bits: one token, one spelling
            return None
        if not hmac.compare_digest(raw[:_MAC_BYTES], self._mac(tenant, job_id)):
            return None
        return tenant, job_id

    @property
    def engine(self) -> Engine:
        assert self.door.engine is not None, "the door is not running"
        return self.door.engine

    def register_shape(self) -> None:
        """An unknown path or method under /r is answered with a small page, as a bad token."""

        def refuse(request: Request, status: int, text: str, headers: Any) -> Response:
            return _page(status, "Ссылка на чек неверна." if status == 404 else text, headers)

        self.door.shapes[PREFIX] = refuse

    def routes(self) -> list[BaseRoute]:
        endpoint = guarded(self.door, self.receipt, LinkRefusal, _refused, LinkRefusal)
        return [Route(PREFIX + "/{name}", endpoint, methods=["GET"])]

    def openapi(self) -> dict[str, Any]:
        return receipt_links_document()

    async def receipt(self, request: Request) -> Response:
        name: str = request.path_params["name"]
        token, _, kind = name.partition(".")
        found = self.read(token) if kind in _KINDS else None
        engine = self.engine
        if found is None or found[0] not in engine.tenants:
            raise LinkRefusal(404, "Ссылка на чек неверна.")
        tenant, job_id = found
        view = await engine.receipt_view(tenant, job_id)
        if view is None:
            raise LinkRefusal(404, "Ссылка на чек неверна.")
        branding = await self.door.brandings.of(engine, tenant)
        page = receipt_page(view, engine.tenants[tenant].timezone, branding)
        headers = dict(_HEADERS)
        if kind == "":
            headers["Content-Security-Policy"] = _POLICY
            return Response(render_html(page), 200, headers, media_type=_KINDS[""])
        draw = render_png if kind == "png" else render_pdf
        body = await trio.to_thread.run_sync(draw, page, limiter=engine.heavy)
        headers["Content-Disposition"] = f'inline; filename="receipt-{view.fd_number}.{kind}"'
        return Response(body, 200, headers, media_type=_KINDS[kind])


def receipt_links_document() -> dict[str, Any]:
    """The OpenAPI part of the public receipt links."""
    token = {
        "name": "token",
        "in": "path",
        "required": True,
        "description": "the receipt's unguessable token, as the cabinet and the e-mail give it",
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{24,400}$"},
    }
    refusals = {
        "404": {
            "description": "no receipt has this token",
            "content": {"text/html": {"schema": {"type": "string"}}},
        },
        "500": {
            "description": "a fault of Kassa's own, logged",
            "content": {"text/html": {"schema": {"type": "string"}}},
        },
        "503": {
            "description": "the journal cannot be read now; wait Retry-After seconds",
            "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}},
            "content": {"text/html": {"schema": {"type": "string"}}},
        },
    }
    formats = (
        ("", "text/html", "receiptPage", "the receipt as a responsive, printable HTML page"),
        (".png", "image/png", "receiptPng", "the receipt as a PNG image 576 px wide"),
        (".pdf", "application/pdf", "receiptPdf", "the receipt as a PDF, 80 mm wide pages"),
    )
    paths: dict[str, Any] = {}
    for suffix, media, operation, summary in formats:
        schema: dict[str, Any] = {"type": "string"}
        if media != "text/html":
            schema["contentMediaType"] = media
        paths[f"{PREFIX}/{{token}}{suffix}"] = {
            "get": {
                "operationId": operation,
                "summary": summary,
                "tags": ["receipts"],
                "parameters": [token],
                "responses": {
                    "200": {
                        "description": "the receipt with every attribute 54-FZ requires, "
                        "its FNS QR code and the tenant's branding",
                        "content": {media: {"schema": schema}},
                    },
                    **refusals,
                },
            }
        }
    return {"paths": paths}
