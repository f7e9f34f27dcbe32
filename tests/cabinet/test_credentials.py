"""The «Ключи API» page: keys made and revoked in the cabinet count at once in both doors.

Each test talks over real sockets: the cabinet and the ATOL and KOMTET APIs over HTTP, and the
CURVE keys against the real ZeroMQ service of :func:`engine.doors.open_doors`.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio
import zmq

from emulator.serve import MemoryFleet, open_memory_fleet
from engine.client import REFUSED, ClientKeys, KassaError, TrioKassaClient
from engine.config import EngineConfig, RegisterConfig, TenantConfig
from engine.doors import Doors, open_doors
from engine.service_config import HttpSettings, LoadedConfig, ServiceSettings
from protocols.fiscal_sign import EmulatorSignVerifier
from tests.cabinet.conftest import USERS, cabinet, csrf_of, login
from tests.engine.fleet import connector
from tests.http.conftest import JSON, Served, corpus, moscow_now

MADE_NAME = re.compile(r'id="made-name">([^<]+)<')
MADE_SECRET = re.compile(r'id="made-secret">([^<]+)<')


def made(page: httpx.Response) -> tuple[str, str]:
    """The name and the once-shown secret of the key a POST just made."""
    assert page.status_code == 200, page.text
    name, secret = MADE_NAME.search(page.text), MADE_SECRET.search(page.text)
    assert name is not None and secret is not None, page.text
    return html.unescape(name[1]), html.unescape(secret[1])


async def make(client: httpx.AsyncClient, kind: str, name: str = "") -> httpx.Response:
    page = await client.get("/cabinet/credentials")
    return await client.post(
        "/cabinet/credentials", data={"csrf": csrf_of(page), "kind": kind, "name": name}
    )


async def revoke(client: httpx.AsyncClient, kind: str, name: str) -> httpx.Response:
    page = await client.get("/cabinet/credentials")
    return await client.post(
        "/cabinet/credentials/revoke", data={"csrf": csrf_of(page), "kind": kind, "name": name}
    )


async def get_token(served: Served, login: str, password: str) -> httpx.Response:
    return await served.client.post(
        "/possystem/v5/getToken", json={"login": login, "pass": password}, headers=JSON
    )


def komtet_headers(shop: str, secret: str, method: str, url: str) -> dict[str, str]:
    signature = hmac.new(secret.encode(), method.encode() + url.encode(), hashlib.md5).hexdigest()
    return {"Authorization": shop, "Accept": "application/json", "X-HMAC-Signature": signature}


async def test_an_atol_login_made_in_the_cabinet_sells_until_it_is_revoked(
    tmp_path: Path,
) -> None:
    async with cabinet(tmp_path) as served, login(served, "anna") as anna:
        name, password = made(await make(anna, "atol", "web-shop"))
        assert name == "web-shop"
        answer = await get_token(served, "web-shop", password)
        assert answer.status_code == 200, answer.text
        token = answer.json()["token"]
        sold = await served.sell(corpus("atol-sell-prepayment.json", external_id="c-1"), token)
        assert sold.status_code == 200, sold.text
        report = await served.until_done(sold.json()["uuid"], token)
        assert report["status"] == "done", report
        job = await served.engine.job_by_external_id("shop", "c-1")
        assert job is not None and job.tenant == "shop"
        # only the hash is kept: the password shows nowhere again, the hash is scrypt's
        listing = await anna.get("/cabinet/credentials")
        assert 'data-name="web-shop"' in listing.text and password not in listing.text
        assert served.door.keyring.atol_logins["web-shop"].password_hash.startswith("scrypt$")
        assert (await revoke(anna, "atol", "web-shop")).status_code == 303
        refused = await get_token(served, "web-shop", password)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == 12
        old = await served.sell(corpus("atol-sell-prepayment.json", external_id="c-2"), token)
        assert old.status_code == 401 and old.json()["error"]["code"] == 10, old.text
        assert await served.engine.job_by_external_id("shop", "c-2") is None
        assert 'data-name="web-shop"' not in (await anna.get("/cabinet/credentials")).text


async def test_a_komtet_shop_made_in_the_cabinet_signs_requests_until_revoked(
    tmp_path: Path,
) -> None:
    async with cabinet(tmp_path) as served, login(served, "anna") as anna:
        shop, secret = made(await make(anna, "komtet", "9001"))
        assert shop == "9001"
        url = f"{served.url}/api/shop/v2/queues/main"
        answer = await served.client.get(url, headers=komtet_headers(shop, secret, "GET", url))
        assert answer.status_code == 200, answer.text
        forged = komtet_headers(shop, "not-the-secret", "GET", url)
        assert (await served.client.get(url, headers=forged)).status_code == 401
        assert secret not in (await anna.get("/cabinet/credentials")).text
        assert (await revoke(anna, "komtet", shop)).status_code == 303
        gone = await served.client.get(url, headers=komtet_headers(shop, secret, "GET", url))
        assert gone.status_code == 401 and gone.json()["code"] == "auth.unknown_shop"


async def test_a_key_of_kassa_toml_is_revoked_but_its_name_stays_taken(tmp_path: Path) -> None:
    async with cabinet(tmp_path) as served, login(served, "anna") as anna:
        page = await anna.get("/cabinet/credentials")
        assert 'data-name="shop-atol" data-origin="config"' in page.text
        assert "kassa.toml" in page.text
        token = await served.token()
        assert (await revoke(anna, "atol", "shop-atol")).status_code == 303
        assert (await get_token(served, "shop-atol", "s3cret-pass")).status_code == 401
        old = await served.sell(corpus("atol-sell-prepayment.json", external_id="t-1"), token)
        assert old.status_code == 401
        again = await make(anna, "atol", "shop-atol")
        assert again.status_code == 400 and "уже занято" in again.text
        # the other tenant's owner cannot take a login of this tenant's either
        async with login(served, "oleg") as oleg:
            web = made(await make(anna, "atol", "web-1"))
            taken = await make(oleg, "atol", "web-1")
            assert taken.status_code == 400 and "уже занято" in taken.text
            assert served.door.keyring.atol_logins["web-1"].tenant == "shop"
            bad = await make(oleg, "atol", "has space")
            assert bad.status_code == 400 and 'data-field="login"' in bad.text
            unknown = await make(oleg, "ssh", "x")
            assert unknown.status_code == 400 and "kind" in unknown.text
        assert web[1] not in (await anna.get("/cabinet/credentials")).text


async def test_another_tenants_keys_are_neither_shown_nor_revoked(tmp_path: Path) -> None:
    async with cabinet(tmp_path) as served, login(served, "anna") as anna:
        _, password = made(await make(anna, "atol", "anna-web"))
        async with login(served, "oleg") as oleg:
            page = await oleg.get("/cabinet/credentials")
            assert page.status_code == 200
            assert "anna-web" not in page.text and "shop-atol" not in page.text
            assert 'data-name="other-atol"' in page.text  # its own
            for kind, key in (("atol", "anna-web"), ("atol", "shop-atol"), ("atol", "nobody")):
                answer = await revoke(oleg, kind, key)
                assert answer.status_code == 404 and "Ключ не найден" in answer.text
        assert (await get_token(served, "anna-web", password)).status_code == 200
        assert (await get_token(served, "shop-atol", "s3cret-pass")).status_code == 200


@pytest.mark.parametrize("user", ["kira", "lena"])
async def test_cashiers_and_accountants_may_not_see_or_change_keys(
    tmp_path: Path, user: str
) -> None:
    async with cabinet(tmp_path) as served, login(served, user) as client:
        dashboard = await client.get("/cabinet/dashboard")
        assert "/cabinet/credentials" not in dashboard.text
        assert (await client.get("/cabinet/credentials")).status_code == 403
        token = csrf_of(dashboard)
        for path, data in (
            ("/cabinet/credentials", {"csrf": token, "kind": "atol", "name": "sneaky"}),
            ("/cabinet/credentials/revoke", {"csrf": token, "kind": "atol", "name": "shop-atol"}),
        ):
            assert (await client.post(path, data=data)).status_code == 403
        assert "sneaky" not in served.door.keyring.atol_logins
        assert "shop-atol" in served.door.keyring.atol_logins
    async with cabinet(tmp_path) as served, login(served, "anna") as anna:
        assert "/cabinet/credentials" in (await anna.get("/cabinet/dashboard")).text
        no_csrf = await anna.post("/cabinet/credentials", data={"kind": "curve"})
        assert no_csrf.status_code == 403


# --- both doors: the ZeroMQ service and the HTTP door over one engine ---------------------------


SERVER_PUBLIC, SERVER_SECRET = zmq.curve_keypair()


@asynccontextmanager
async def both_doors(folder: Path, fleet: MemoryFleet) -> AsyncIterator[Doors]:
    keys = {r.fn.number: r.fn.key for r in fleet.registers}
    engine = EngineConfig(
        journal=folder / "journal.db",
        tenants=(TenantConfig("shop"), TenantConfig("other")),
        registers=(
            RegisterConfig("kkt-0", "shop", connector(fleet, 0, "shtrih"), "main"),
            RegisterConfig("other-0", "other", connector(fleet, 1, "shtrih"), "theirs"),
        ),
        verifier=EmulatorSignVerifier(keys),
        wall_clock=time.time,
    )
    service = ServiceSettings(
        listen="tcp://127.0.0.1:*",
        server_public=SERVER_PUBLIC,
        server_secret=SERVER_SECRET,
        clients={},
    )
    http = HttpSettings(listen="127.0.0.1:0", token_key=b"k" * 32, cabinet_users=USERS)
    async with open_doors(LoadedConfig(engine, service, http)) as doors:
        yield doors


def served_of(doors: Doors, client: httpx.AsyncClient) -> Served:
    assert doors.http is not None
    return Served(doors.engine, doors.http, client, None, doors.http.url)  # type: ignore[arg-type]


async def ping(doors: Doors, public: str, secret: str) -> str:
    """The tenant the service says this key pair is, or ``refused`` if its ZAP says no."""
    keys = ClientKeys(SERVER_PUBLIC, public.encode(), secret.encode())
    try:
        async with TrioKassaClient.open(
            doors.service.endpoint, keys, timeout=10, attempts=1
        ) as client:
            return (await client.ping()).tenant
    except* KassaError as group:
        codes = {exc.code for exc in group.exceptions if isinstance(exc, KassaError)}
        assert codes == {REFUSED}, group
    return REFUSED


async def test_curve_keys_and_logins_made_in_the_cabinet_serve_both_doors_after_a_restart(
    tmp_path: Path,
) -> None:
    async with open_memory_fleet(2, start=moscow_now()) as fleet:
        async with both_doors(tmp_path, fleet) as doors:
            assert doors.http is not None
            async with httpx.AsyncClient(base_url=doors.http.url, trust_env=False) as web:
                served = served_of(doors, web)
                async with login(served, "anna") as anna:
                    page = await make(anna, "curve")
                    public, secret = made(page)
                    assert f'public-key = "{public}"' in html.unescape(page.text)
                    assert await ping(doors, public, secret) == "shop"
                    login_name, password = made(await make(anna, "atol", "kept-web"))
                    shop, shop_secret = made(await make(anna, "komtet", "kept-shop"))
                    doomed_public, doomed_secret = made(await make(anna, "curve"))
                    assert await ping(doors, doomed_public, doomed_secret) == "shop"
                    doomed = ClientKeys(
                        SERVER_PUBLIC, doomed_public.encode(), doomed_secret.encode()
                    )
                    async with TrioKassaClient.open(
                        doors.service.endpoint, doomed, timeout=10, attempts=1
                    ) as connected:
                        assert (await connected.ping()).tenant == "shop"
                        assert (await revoke(anna, "curve", doomed_public)).status_code == 303
                        # the connection made before the revocation stops at its next request
                        with pytest.raises(KassaError) as stopped:
                            await connected.ping()
                        assert stopped.value.code == "revoked"
                    assert await ping(doors, doomed_public, doomed_secret) == REFUSED
                    listing = html.unescape((await anna.get("/cabinet/credentials")).text)
                    assert secret not in listing and public in listing
                    assert doomed_public not in listing
                    stored = await doors.engine.journal.records("credential", "shop")
                    assert secret not in json.dumps([r.value for r in stored])
                    assert password not in json.dumps([r.value for r in stored])
        # the same journal, a new service: the keys made are there, the revoked one is not
        async with both_doors(tmp_path, fleet) as doors:
            assert doors.http is not None
            assert await ping(doors, public, secret) == "shop"
            assert await ping(doors, doomed_public, doomed_secret) == REFUSED
            async with httpx.AsyncClient(base_url=doors.http.url, trust_env=False) as web:
                served = served_of(doors, web)
                assert (await get_token(served, login_name, password)).status_code == 200
                url = f"{doors.http.url}/api/shop/v2/queues/main"
                signed = komtet_headers(shop, shop_secret, "GET", url)
                assert (await web.get(url, headers=signed)).status_code == 200
                async with login(served, "anna") as anna:
                    listing = html.unescape((await anna.get("/cabinet/credentials")).text)
                    for name in (public, login_name, shop):
                        assert f'data-name="{name}" data-origin="cabinet"' in listing
                    assert shop_secret not in listing and password not in listing
                async with login(served, "oleg") as oleg:
                    answer = await revoke(oleg, "curve", public)
                    assert answer.status_code == 404
            assert await ping(doors, public, secret) == "shop"
        await trio.lowlevel.checkpoint()
