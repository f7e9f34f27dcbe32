"""The HTTP front door: ATOL Online v5-compatible API (and, beside it, the APIs to come).

One ASGI application (:mod:`engine.http.app`) on hypercorn's trio worker, inside the nursery
that serves the engine; each API is a module of its own that adds its routes, its callback
renderer and its part of the OpenAPI document (:mod:`engine.http.atol`). Callbacks are
journaled deliveries (:mod:`engine.http.callbacks`); tenants log in with the credentials of
:mod:`engine.http.credentials`.
"""
