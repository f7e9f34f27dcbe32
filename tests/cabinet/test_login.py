"""Logging in and out of the cabinet: passwords, session cookies, CSRF, throttling, roles."""

from __future__ import annotations

from pathlib import Path

from engine.cabinet.users import RIGHTS, ROLES, may
from tests.cabinet.conftest import cabinet, cookies_of, csrf_of, login


async def test_a_right_password_opens_a_session_with_safe_cookie_flags(tmp_path: Path) -> None:
    async with cabinet(tmp_path) as served:
        client = served.client
        form = await client.get("/cabinet/login")
        assert form.status_code == 200
        assert "Вход в кабинет" in form.text
        login_cookie = cookies_of(form)["kassa_login_csrf"].lower()
        assert "httponly" in login_cookie and "samesite=strict" in login_cookie
        answer = await client.post(
            "/cabinet/login",
            data={"csrf": csrf_of(form), "login": "anna", "password": "anna-pass-1"},
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == "/cabinet/dashboard"
        session = cookies_of(answer)["kassa_session"].lower()
        assert "httponly" in session
        assert "samesite=lax" in session
        assert "path=/cabinet" in session
        assert "max-age=43200" in session
        assert "secure" not in session  # plain HTTP here; tests/cabinet/test_tls.py has TLS
        page = await client.get("/cabinet/dashboard")
        assert page.status_code == 200
        assert "anna (owner)" in page.text


async def test_a_wrong_password_or_unknown_login_is_refused(tmp_path: Path) -> None:
    async with cabinet(tmp_path) as served:
        client = served.client
        for user, password in (("anna", "nope"), ("nobody", "anna-pass-1"), ("anna", "")):
            form = await client.get("/cabinet/login")
            answer = await client.post(
                "/cabinet/login",
                data={"csrf": csrf_of(form), "login": user, "password": password},
            )
            assert answer.status_code == 401
            assert "Неверный логин или пароль" in answer.text
            assert "kassa_session" not in cookies_of(answer)
        assert (await client.get("/cabinet/dashboard")).status_code == 303


async def test_a_page_without_a_session_sends_to_the_login_and_back(tmp_path: Path) -> None:
    async with cabinet(tmp_path) as served:
        answer = await served.client.get("/cabinet/receipts?status=failed")
        assert answer.status_code == 303
        assert answer.headers["location"] == (
            "/cabinet/login?next=%2Fcabinet%2Freceipts%3Fstatus%3Dfailed"
        )
        async with login(served, "anna") as client:
            form = await client.get("/cabinet/login")
            answer = await client.post(
                "/cabinet/login",
                data={
                    "csrf": csrf_of(form),
                    "login": "anna",
                    "password": "anna-pass-1",
                    "next": "/cabinet/receipts?status=failed",
                },
            )
            assert answer.headers["location"] == "/cabinet/receipts?status=failed"
            form = await client.get("/cabinet/login")
            answer = await client.post(  # never an open redirect
                "/cabinet/login",
                data={
                    "csrf": csrf_of(form),
                    "login": "anna",
                    "password": "anna-pass-1",
                    "next": "https://evil.example/",
                },
            )
            assert answer.headers["location"] == "/cabinet/dashboard"


async def test_a_login_post_without_its_csrf_token_is_refused(tmp_path: Path) -> None:
    async with cabinet(tmp_path) as served:
        client = served.client
        good = {"login": "anna", "password": "anna-pass-1"}
        answer = await client.post("/cabinet/login", data=good)  # no form fetched: no cookie
        assert answer.status_code == 403
        form = await client.get("/cabinet/login")
        answer = await client.post("/cabinet/login", data=good)  # the cookie, not the field
        assert answer.status_code == 403
        answer = await client.post("/cabinet/login", data={**good, "csrf": "x" + csrf_of(form)})
        assert answer.status_code == 403
        assert "kassa_session" not in cookies_of(answer)


async def test_a_post_of_a_session_needs_its_csrf_token(tmp_path: Path) -> None:
    async with cabinet(tmp_path) as served, login(served, "anna") as client:
        page = await client.get("/cabinet/dashboard")
        token = csrf_of(page)
        assert (await client.post("/cabinet/logout", data={})).status_code == 403
        assert (await client.post("/cabinet/logout", data={"csrf": "forged"})).status_code == 403
        async with login(served, "kira") as other:  # another session's token
            other_token = csrf_of(await other.get("/cabinet/dashboard"))
        answer = await client.post("/cabinet/logout", data={"csrf": other_token})
        assert answer.status_code == 403
        assert (await client.get("/cabinet/dashboard")).status_code == 200  # still in
        answer = await client.post("/cabinet/logout", data={"csrf": token})
        assert answer.status_code == 303
        assert 'kassa_session=""' in cookies_of(answer)["kassa_session"]
        assert (await client.get("/cabinet/dashboard")).status_code == 303


async def test_a_forged_or_expired_session_cookie_lets_no_one_in(tmp_path: Path) -> None:
    async with cabinet(tmp_path) as served, login(served, "kira") as client:
        cookie = client.cookies["kassa_session"]
        login_part, expires, nonce, mac = cookie.split(".")
        import base64

        anna = base64.urlsafe_b64encode(b"anna").decode().rstrip("=")
        for forged in (
            f"{anna}.{expires}.{nonce}.{mac}",  # a cashier's MAC under the owner's login
            f"{login_part}.{int(expires) + 3600}.{nonce}.{mac}",  # a longer life
            "garbage",
        ):
            client.cookies.set("kassa_session", forged, path="/cabinet")
            assert (await client.get("/cabinet/dashboard")).status_code == 303
        served.door.cabinet.sessions.lifetime = -1  # sessions issued now are dead at once
        async with login(served, "kira") as expired:
            assert (await expired.get("/cabinet/dashboard")).status_code == 303


async def test_password_guessing_is_throttled_per_login(tmp_path: Path) -> None:
    async with cabinet(tmp_path) as served:
        client = served.client
        limit = served.door.cabinet.throttle.per_login
        for _ in range(limit):
            form = await client.get("/cabinet/login")
            data = {"csrf": csrf_of(form), "login": "anna", "password": "guess"}
            assert (await client.post("/cabinet/login", data=data)).status_code == 401
        form = await client.get("/cabinet/login")
        data = {"csrf": csrf_of(form), "login": "anna", "password": "anna-pass-1"}
        answer = await client.post("/cabinet/login", data=data)  # even the right one waits
        assert answer.status_code == 429
        assert int(answer.headers["retry-after"]) > 0
        assert "Слишком много попыток" in answer.text
        async with login(served, "kira"):  # another login is not held up
            pass


def test_the_role_table() -> None:
    assert set(ROLES) == {"owner", "accountant", "cashier"}
    assert all(may("owner", action) for action in RIGHTS)
    assert not may("cashier", "credentials")
    assert not may("cashier", "exports")
    assert not may("accountant", "credentials")
    assert may("accountant", "exports")
    assert may("cashier", "receipts")
    assert not may("owner", "no-such-action")
