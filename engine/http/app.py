"""The HTTP door's server: one Starlette app on hypercorn's trio worker, in the service's nursery.

::

    door = HttpDoor(settings, sizes, limits)
    async with Engine.open(config, on_event=door.on_event) as engine:
        url = await nursery.start(door.run, engine)   # "http://127.0.0.1:8080"

Each API (ATOL v5, KOMTET v2, payment notifications, the receipts' public links) is a class
with ``routes``, ``openapi`` and, if it sends callbacks, a renderer, mounted into the one app;
``/openapi.json`` is the union of their documents (:mod:`engine.http.openapi`). The door owns
no fiscal logic: an API reads its format onto the receipt model, calls the engine, and answers
in its own shapes.
A body over the service's size limit is refused (413) from its Content-Length, unread.

A request no route takes (an unknown path: 404; a method the path lacks: 405 with Allow) is
answered in JSON too, in the error shape of the API whose prefix the path has
(:attr:`HttpDoor.shapes`), else in the door's own ``{"error": {code, text, path}}``, so that a
client never meets Starlette's plain text.
"""

from __future__ import annotations

import json
import logging
import math
import traceback
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any, Protocol

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from engine.engine import Engine, JobEvent, Unavailable
from engine.http.callbacks import CallbackSender
from engine.http.credentials import Tokens
from engine.journal import Job
from engine.keyring import Keyring
from engine.limits import DEFAULT_SIZES, SizeLimits, over_limit
from engine.service_config import HttpSettings
from engine.tenancy import RateLimits

log = logging.getLogger("kassa.http")

#: Seconds the server lets requests in progress finish once asked to stop.
GRACE = 5.0


class TooLarge(Exception):
    """A body over the limit; ``size`` is None when only its stream said so."""

    def __init__(self, size: int | None, limit: int) -> None:
        super().__init__(size, limit)
        self.size = size
        self.limit = limit


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body, refused (TooLarge) past ``limit`` bytes: at once when its
    Content-Length says so, else as soon as the stream passes it."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise TooLarge(int(length), limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(None, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _json_parts(value: Any, out: list[str]) -> None:
    if isinstance(value, Decimal):
        out.append(str(value))
    elif isinstance(value, dict):
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            out.append(("," if i else "") + json.dumps(key, ensure_ascii=False) + ":")
            _json_parts(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _json_parts(item, out)
        out.append("]")
    else:
        out.append(json.dumps(value, ensure_ascii=False))


def json_bytes(value: Any) -> bytes:
    """Compact UTF-8 JSON in which a Decimal (money in roubles) is an exact number."""
    out: list[str] = []
    _json_parts(value, out)
    return "".join(out).encode()


def json_response(
    value: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        json_bytes(value),
        status_code=status,
        headers=dict(headers or {}),
        media_type="application/json; charset=utf-8",
    )


def retry_after(seconds: float | None) -> dict[str, str]:
    """The Retry-After header of a refusal that says when to try again: whole seconds, at
    least one (HTTP has no fractions); none when it does not say."""
    if seconds is None:
        return {}
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


#: How an API words a refusal of its own: (request, HTTP status, text, headers) → the answer.
Refuser = Callable[[Request, int, str, Mapping[str, str]], Response]


def door_refusal(request: Request, status: int, text: str, headers: Mapping[str, str]) -> Response:
    """The door's own error shape, for paths that are no API's."""
    body = {"error": {"code": status, "text": text, "path": request.url.path}}
    return json_response(body, status, headers)


#: A refusal of what the door itself finds (a body over the limit 413, the engine unable to
#: take work now 503 with its wait, a bug 500), made the API's own exception.
Failure = Callable[[int, str, float | None], Exception]
#: A handler of one route, and the endpoint the guard makes of it.
Handler = Callable[[Request], Awaitable[Response]]


def guarded(
    door: HttpDoor,
    handler: Handler,
    own: type[Exception],
    answer: Callable[[Request, Any], Response],
    failure: Failure,
) -> Handler:
    """``handler`` with every refusal in its API's shape: its ``own`` exceptions answered by
    ``answer``, and what the door finds made one of them by ``failure``. No exception leaves:
    a bug is logged by its type and stack, never its message, and the door goes on."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except own as refusal:
            return answer(request, refusal)
        except TooLarge as exc:
            return answer(request, failure(413, over_limit("a body", exc.size, exc.limit), None))
        except Unavailable as exc:  # the journal cannot commit now: try later
            return answer(request, failure(503, str(exc), exc.retry_after))
        except Exception as exc:
            door.internal_errors += 1
            stack = "".join(traceback.format_tb(exc.__traceback__))
            log.error("internal error in %s: %s\n%s", request.url.path, type(exc).__name__, stack)
            return answer(request, failure(500, "a fault of Kassa's own, logged", None))

    return endpoint


class Api(Protocol):
    """One HTTP API of the door: its routes and its part of the OpenAPI document."""

    def routes(self) -> list[BaseRoute]: ...

    def openapi(self) -> dict[str, Any]: ...


class HttpDoor:
    """The HTTP front of one engine; see the module docstring."""

    def __init__(
        self,
        settings: HttpSettings,
        sizes: SizeLimits = DEFAULT_SIZES,
        limits: RateLimits | None = None,
        *,
        rate: float = 200.0,
        burst: float = 400.0,
        keyring: Keyring | None = None,
    ) -> None:
        from engine.http.atol import AtolApi  # the APIs import the door's helpers from here
        from engine.http.komtet import KomtetApi
        from engine.http.payments import PaymentsApi
        from engine.http.receipts import ReceiptLinks
        from engine.render.brands import Brandings

        self.settings = settings
        #: Who may log in, live (engine/keyring.py): kassa.toml's logins and shops with the
        #: cabinet's changes; the ZeroMQ door shares it when the doors serve together.
        self.keyring = keyring or Keyring(
            atol_logins=settings.atol_logins, komtet_shops=settings.komtet_shops
        )
        self.sizes = sizes
        self.limits = limits
        self.rate, self.burst = rate, burst  # for the tenants' buckets unless ``limits`` is given
        key = settings.token_key or _fresh_key()
        self.tokens = Tokens(key)
        self.engine: Engine | None = None  # the engine it serves, once running
        self.callbacks: CallbackSender | None = None
        from engine.http.mail import LoggingSmsProvider, SmsProvider

        #: Where a buyer's SMS (1008 a phone number) goes; logged unless a gateway is set.
        self.sms: SmsProvider = LoggingSmsProvider()
        self.url = ""  # the base URL once bound: http://127.0.0.1:8080
        self.internal_errors = 0
        self._stop = trio.Event()
        self.atol = AtolApi(self)
        self.komtet = KomtetApi(self)
        self.payments = PaymentsApi(self)
        #: The receipts' public links (``/r/TOKEN``), for the cabinet and the e-mails to give.
        self.receipt_links = ReceiptLinks(self, key)
        #: Each tenant's branding of its receipts: the cabinet's over kassa.toml's.
        self.brandings = Brandings(settings.branding)
        self.apis: list[Api] = [self.atol, self.komtet, self.payments, self.receipt_links]
        #: Path prefix → how the API under it words the door's refusals (unknown path, method).
        self.shapes: dict[str, Refuser] = {}
        self.atol.register_shape()
        self.komtet.register_shape()
        self.payments.register_shape()
        from engine.cabinet.app import Cabinet  # a peer of the APIs, on the same server

        self.cabinet = Cabinet(self, key)
        self.cabinet.register_shape()
        self.receipt_links.register_shape()

    def on_event(self, event: JobEvent) -> None:
        """The engine's notification hook: a job that ended may have a callback due."""
        if self.callbacks is not None:
            self.callbacks.on_event(event.job)

    async def journal_deliveries(
        self, job: Job, receipt: object, callback: tuple[str, str] | None = None
    ) -> None:
        """Journal what goes out once ``job`` is final: its API's callback (kind, url) and the
        buyer's copy by its 1008 (an e-mail when ``[smtp]`` is set, else nothing; an SMS).

        Call it before the next checkpoint after the submit that returned ``job``.
        """
        from engine.http.mail import buyer_contact

        callbacks = self.callbacks
        assert callbacks is not None
        wanted = [callback] if callback is not None else []
        buyer = buyer_contact(receipt)
        if buyer is not None and (buyer[0] != "email" or self.settings.smtp is not None):
            wanted.append(buyer)
        if wanted:
            await callbacks.add_all(job, wanted)

    def app(self) -> Starlette:
        from engine.http.openapi import document

        spec = json_bytes(document([api.openapi() for api in self.apis]))

        async def openapi(_: Request) -> Response:
            return Response(spec, media_type="application/json")

        routes: list[BaseRoute] = [Route("/openapi.json", openapi, methods=["GET"])]
        for api in self.apis:
            routes.extend(api.routes())
        routes.extend(self.cabinet.routes())
        handlers: Any = {HTTPException: self._unrouted}  # Starlette's type is invariant
        return Starlette(routes=routes, exception_handlers=handlers)

    async def _unrouted(self, request: Request, exc: Exception) -> Response:
        """404 and 405 (and any HTTPException a route raises) in the shape of the path's API."""
        assert isinstance(exc, HTTPException)
        path, headers = request.url.path, dict(exc.headers or {})
        if exc.status_code == 405:
            text = f"{request.method} {path}: the path takes {headers.get('Allow', 'none')}"
        elif exc.status_code == 404:
            text = f"{path}: no such path"
        else:
            text = f"{path}: {exc.detail}"
        prefixes = [p for p in self.shapes if path == p or path.startswith(p.rstrip("/") + "/")]
        refuse = self.shapes[max(prefixes, key=len)] if prefixes else door_refusal
        return refuse(request, exc.status_code, text, headers)

    def stop(self) -> None:
        """Stop taking connections; requests in progress get GRACE seconds to finish."""
        self._stop.set()

    async def run(self, engine: Engine, *, task_status: trio.TaskStatus[str]) -> None:
        """Serve until cancelled or stopped, with the callback sender beside the server."""
        self.engine = engine
        await self.keyring.load(engine.journal, engine.tenants)  # done already behind open_doors
        if self.limits is None:
            self.limits = RateLimits(engine.tenants, self.rate, self.burst)
        settings = self.settings
        self.callbacks = CallbackSender(
            engine.journal,
            attempts=settings.callback_attempts,
            backoff=settings.callback_backoff,
            timeout=settings.callback_timeout,
            clock=engine.config.wall_clock,
        )
        self.callbacks.renderers["atol"] = self.atol.render_callback
        self.callbacks.renderers["komtet"] = self.komtet.render_callback
        from engine.http.mail import BuyerMail

        mail = BuyerMail(self, settings.smtp, self.sms)
        self.callbacks.transports["email"] = mail.email
        self.callbacks.transports["sms"] = mail.text
        if settings.smtp is not None:
            self.callbacks.kind_attempts["email"] = settings.smtp.attempts
        config = Config()
        config.bind = [settings.listen]
        if settings.tls_cert is not None and settings.tls_key is not None:
            config.certfile = str(settings.tls_cert)
            config.keyfile = str(settings.tls_key)
        config.accesslog = None
        config.errorlog = logging.getLogger("kassa.http.server")
        config.graceful_timeout = GRACE
        async with trio.open_nursery() as nursery:
            await nursery.start(self.callbacks.run)
            binds = await nursery.start(self._serve, config, nursery.cancel_scope)
            self.url = binds[0]
            log.info("HTTP on %s", self.url)
            task_status.started(self.url)

    async def _serve(
        self,
        config: Config,
        scope: trio.CancelScope,
        *,
        task_status: trio.TaskStatus[list[str]],
    ) -> None:
        app: Any = self.app()  # hypercorn's Framework type does not name Starlette's __call__
        await serve(app, config, shutdown_trigger=self._stop.wait, task_status=task_status)
        scope.cancel()  # the server has stopped: so does the callback sender


def _fresh_key() -> bytes:
    import os

    return os.urandom(32)
