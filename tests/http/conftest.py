"""The HTTP door live on 127.0.0.1 (a free port), over an engine on an emulated fleet.

The server, the engine and the emulated registers run in the test's own trio run on the real
clock (real sockets); the tests talk to the door with httpx over TCP as any client would.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import httpx
import trio

from emulator.serve import MemoryFleet, open_memory_fleet
from engine.config import EngineConfig, RegisterConfig, TenantConfig
from engine.engine import Engine
from engine.http.app import HttpDoor
from engine.http.credentials import AtolLogin, hash_password
from engine.limits import DEFAULT_SIZES, SizeLimits
from engine.service_config import HttpSettings
from protocols.fiscal_sign import EmulatorSignVerifier
from tests.engine.fleet import connector

CORPUS = Path(__file__).parents[1] / "protocols" / "corpus"
PASSWORD = "s3cret-pass"
#: Cheap hashes for tests: the cost is a parameter of the hash, not of the check.
LOGINS = {
    "shop-atol": AtolLogin("shop", "shop-atol", hash_password(PASSWORD, n=1 << 10)),
    "other-atol": AtolLogin("other", "other-atol", hash_password("other-pass", n=1 << 10)),
}
JSON = {"Content-Type": "application/json; charset=utf-8"}


def corpus(name: str, **changes: Any) -> dict[str, Any]:
    """A corpus body exactly as ATOL documents it, with top-level ``changes``."""
    body: dict[str, Any] = json.loads((CORPUS / name).read_text())
    body.update(changes)
    return body


@attrs.define
class Served:
    engine: Engine
    door: HttpDoor
    client: httpx.AsyncClient
    fleet: MemoryFleet
    url: str

    async def token(self, login: str = "shop-atol", password: str = PASSWORD) -> str:
        answer = await self.client.post(
            "/possystem/v5/getToken", json={"login": login, "pass": password}, headers=JSON
        )
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["token"]
        return token

    async def sell(
        self, body: Mapping[str, Any], token: str, group: str = "main", operation: str = "sell"
    ) -> httpx.Response:
        return await self.client.post(
            f"/possystem/v5/{group}/{operation}",
            content=json.dumps(body, ensure_ascii=False).encode(),
            headers={**JSON, "Token": token},
        )

    async def report(self, uuid: str, token: str, group: str = "main") -> httpx.Response:
        return await self.client.get(
            f"/possystem/v5/{group}/report/{uuid}", headers={"Token": token}
        )

    async def until_done(self, uuid: str, token: str, group: str = "main") -> dict[str, Any]:
        """Poll the report, as ATOL clients do, until it is no longer ``wait`` (bounded)."""
        for _ in range(600):
            report = (await self.report(uuid, token, group)).json()
            if report["status"] != "wait":
                return dict(report)
            await trio.sleep(0.05)
        raise AssertionError(f"{uuid} still waits: {report}")


def moscow_now() -> dt.datetime:
    return dt.datetime.now(ZoneInfo("Europe/Moscow")).replace(tzinfo=None, microsecond=0)


@asynccontextmanager
async def serving(
    folder: Path,
    *,
    registers: int = 1,
    sizes: SizeLimits = DEFAULT_SIZES,
    rate: float = 1e6,
    burst: float = 1e6,
    queue: int = 10_000,
    attempts: int = 3,
    backoff: float = 0.05,
    logins: Mapping[str, AtolLogin] = LOGINS,
    fleet: MemoryFleet | None = None,
    **settings: Any,
) -> AsyncIterator[Served]:
    """The door on 127.0.0.1 over an engine whose journal is in ``folder``."""
    async with open_memory_fleet(registers + 1, start=moscow_now()) as own:
        fleet = fleet or own  # its last register is the other tenant's
        keys = {r.fn.number: r.fn.key for r in fleet.registers}
        last = len(fleet.registers) - 1
        config = EngineConfig(
            journal=folder / "journal.db",
            tenants=(TenantConfig("shop", queue_limit=queue), TenantConfig("other")),
            registers=(
                *(
                    RegisterConfig(f"kkt-{i}", "shop", connector(fleet, i, "shtrih"), "main")
                    for i in range(last)
                ),
                RegisterConfig("other-0", "other", connector(fleet, last, "shtrih"), "theirs"),
            ),
            verifier=EmulatorSignVerifier(keys),
            wall_clock=time.time,
        )
        http = HttpSettings(
            listen="127.0.0.1:0",
            atol_logins=dict(logins),
            token_key=b"k" * 32,
            callback_attempts=attempts,
            callback_backoff=backoff,
            callback_timeout=2.0,
            **settings,
        )
        door = HttpDoor(http, sizes, rate=rate, burst=burst)
        async with (
            Engine.open(config, on_event=door.on_event) as engine,
            trio.open_nursery() as nursery,
        ):
            url = await nursery.start(door.run, engine)
            async with httpx.AsyncClient(base_url=url, trust_env=False) as client:
                yield Served(engine, door, client, fleet, url)
            nursery.cancel_scope.cancel()
