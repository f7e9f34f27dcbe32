"""The cabinet live on 127.0.0.1: the HTTP door of tests/http/conftest.py with cabinet users.

Tenant ``shop`` has an owner (anna), a cashier (kira) and an accountant (lena), tenant ``other``
an owner (oleg); each test logs in over real HTTP as a browser would: it reads the login form's
CSRF token and posts it back.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from engine.cabinet.users import CabinetUser
from engine.engine import Engine
from engine.http.credentials import hash_password
from engine.journal import Job
from engine.samples import card_sale
from tests.http.conftest import Served, serving

PASSWORDS = {
    "anna": "anna-pass-1",
    "kira": "kira-pass-2",
    "oleg": "oleg-pass-3",
    "lena": "lena-pass-4",
}
USERS = {
    "anna": CabinetUser("shop", "anna", "owner", hash_password("anna-pass-1", n=1 << 10)),
    "kira": CabinetUser("shop", "kira", "cashier", hash_password("kira-pass-2", n=1 << 10)),
    "oleg": CabinetUser("other", "oleg", "owner", hash_password("oleg-pass-3", n=1 << 10)),
    "lena": CabinetUser("shop", "lena", "accountant", hash_password("lena-pass-4", n=1 << 10)),
}
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@asynccontextmanager
async def cabinet(folder: Path, **settings: Any) -> AsyncIterator[Served]:
    async with serving(folder, cabinet_users=USERS, **settings) as served:
        yield served


def csrf_of(page: httpx.Response) -> str:
    match = CSRF.search(page.text)
    assert match is not None, page.text
    return match[1]


@asynccontextmanager
async def login(served: Served, user: str, **extra: str) -> AsyncIterator[httpx.AsyncClient]:
    """A fresh client (its own cookies) signed in as ``user``."""
    async with httpx.AsyncClient(base_url=served.url, trust_env=False) as client:
        form = await client.get("/cabinet/login")
        answer = await client.post(
            "/cabinet/login",
            data={"csrf": csrf_of(form), "login": user, "password": PASSWORDS[user], **extra},
        )
        assert answer.status_code == 303, answer.text
        yield client


async def sell(
    engine: Engine, tenant: str, external_id: str, price: int = 129_900, group: str = "main"
) -> Job:
    """A card sale journaled and waited for until final."""
    job = await engine.submit(tenant, external_id, card_sale(price), group=group)
    return await engine.wait(tenant, job.id)


def cookies_of(answer: httpx.Response) -> Mapping[str, str]:
    """Each Set-Cookie header by its cookie's name."""
    out = {}
    for header in answer.headers.get_list("set-cookie"):
        out[header.split("=", 1)[0]] = header
    return out
