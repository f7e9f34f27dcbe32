"""Cabinet users in kassa.toml (``[[tenants.users]]``), made by ``kassa keys cabinet``, and the
session cookie's Secure flag over TLS."""

from __future__ import annotations

import shutil
import ssl
from pathlib import Path

import httpx
import pytest

from engine.cli import main as kassa
from engine.http.credentials import verify_password
from engine.service_config import ConfigError, load_config
from tests.cabinet.conftest import cabinet, cookies_of, csrf_of
from tests.http.test_config import CONFIG, setup
from tests.http.test_tls import self_signed


def _user_table(capsys: pytest.CaptureFixture[str], name: str, role: str) -> tuple[str, str]:
    assert kassa(["keys", "cabinet", name, "--role", role]) == 0
    out = capsys.readouterr().out
    password = next(line.split(": ")[1] for line in out.splitlines() if "# password:" in line)
    table = "\n".join(line for line in out.splitlines() if not line.startswith("#"))
    return table, password


def test_kassa_keys_cabinet_prints_a_user_table_the_config_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    owner, password = _user_table(capsys, "anna", "owner")
    cashier, _ = _user_table(capsys, "kira", "cashier")
    # the tables belong under tenant b, the last [[tenants]]: TOML puts them there
    text = CONFIG + f"\n{owner}\n{cashier}\n"
    loaded = load_config(setup(tmp_path, text))
    assert loaded.http is not None
    users = loaded.http.cabinet_users
    assert {u.login: (u.tenant, u.role) for u in users.values()} == {
        "anna": ("b", "owner"),
        "kira": ("b", "cashier"),
    }
    assert verify_password(password, users["anna"].password_hash)
    assert password not in text


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('login = "a b"\nrole = "owner"', "tenants[1].users[0].login: expected 1 to 64"),
        ('login = "x"\nrole = "boss"', "tenants[1].users[0].role: expected one of owner"),
        ('login = "x"\nrole = "owner"\npassword_hash = "plain"', "password_hash: expected scrypt"),
        ('login = "x"\nrole = "owner"\npassword = "p"', "tenants[1].users[0].password: unknown"),
    ],
)
def test_a_bad_user_is_named_with_its_key(tmp_path: Path, table: str, message: str) -> None:
    from tests.http.test_config import HASH

    if "password_hash" not in table and "password =" not in table:
        table += f'\npassword_hash = "{HASH}"'
    with pytest.raises(ConfigError) as caught:
        load_config(setup(tmp_path, CONFIG + f"\n[[tenants.users]]\n{table}\n"))
    assert message in str(caught.value), str(caught.value)


def test_a_login_of_two_tenants_is_refused(tmp_path: Path) -> None:
    from tests.http.test_config import HASH

    user = f'[[tenants.users]]\nlogin = "anna"\nrole = "owner"\npassword_hash = "{HASH}"\n'
    text = CONFIG.replace('[[tenants]]\nid = "b"', f'{user}\n[[tenants]]\nid = "b"') + user
    with pytest.raises(ConfigError) as caught:
        load_config(setup(tmp_path, text))
    assert "the cabinet login 'anna' belongs to tenant 'a' too" in str(caught.value)


def test_kassa_keys_cabinet_refuses_a_bad_login(capsys: pytest.CaptureFixture[str]) -> None:
    assert kassa(["keys", "cabinet", "a b", "--role", "owner"]) == 2
    assert "a login is 1 to 64 letters" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a certificate")
async def test_the_session_cookie_is_secure_over_tls(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    async with cabinet(tmp_path, tls_cert=cert, tls_key=key) as served:
        trusted = ssl.create_default_context(cafile=str(cert))
        async with httpx.AsyncClient(base_url=served.url, verify=trusted) as client:
            form = await client.get("/cabinet/login")
            assert "secure" in cookies_of(form)["kassa_login_csrf"].lower()
            answer = await client.post(
                "/cabinet/login",
                data={"csrf": csrf_of(form), "login": "anna", "password": "anna-pass-1"},
            )
            assert answer.status_code == 303
            assert "; secure" in cookies_of(answer)["kassa_session"].lower()
