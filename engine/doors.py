"""Every front door of one engine, opened together: ZeroMQ, and HTTP when it is configured.

::

    async with open_doors(loaded) as doors:
        doors.service.endpoint, doors.http.url if doors.http else None

The doors are peers (DESIGN.md, "Front doors"): each one hears the engine's job events, and
they share one rate budget per tenant (:class:`engine.tenancy.RateLimits`), so a tenant asks
at ``[limits]`` rate whichever door it comes through, and one keyring
(:class:`engine.keyring.Keyring`), so a key made or revoked in the cabinet counts at once in
both the ZAP handler and the HTTP APIs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import trio

from engine.engine import Engine, JobEvent
from engine.http.app import HttpDoor
from engine.keyring import Keyring
from engine.service import Service
from engine.service_config import LoadedConfig
from engine.tenancy import RateLimits


@attrs.define
class Doors:
    """The open doors of one engine."""

    engine: Engine
    service: Service
    http: HttpDoor | None
    keyring: Keyring


@asynccontextmanager
async def open_doors(loaded: LoadedConfig) -> AsyncIterator[Doors]:
    """An engine on ``loaded.engine`` behind its doors for the life of the block."""
    settings = loaded.service
    tenants = [t.id for t in loaded.engine.tenants]
    limits = RateLimits(tenants, settings.rate, settings.burst)
    web = loaded.http
    keyring = Keyring(
        settings.clients,
        web.atol_logins if web is not None else {},
        web.komtet_shops if web is not None else {},
    )
    service = Service(settings, tenants, limits=limits, clients=keyring.clients)
    http = None
    if web is not None:
        http = HttpDoor(
            web, settings.sizes, limits, rate=settings.rate, burst=settings.burst, keyring=keyring
        )

    def on_event(event: JobEvent) -> None:
        service.on_event(event)
        if http is not None:
            http.on_event(event)

    async with Engine.open(loaded.engine, on_event=on_event) as engine:
        service.engine = engine
        await keyring.load(engine.journal, engine.tenants)  # before either door takes a key
        async with trio.open_nursery() as nursery:
            await nursery.start(service.run, engine)
            if http is not None:
                await nursery.start(http.run, engine)
            try:
                yield Doors(engine, service, http, keyring)
            finally:
                nursery.cancel_scope.cancel()
