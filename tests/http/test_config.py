"""The HTTP door in kassa.toml, tenants' credentials made by ``kassa keys atol``, and a
``kassa serve --config`` that serves them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import zmq

from engine.cli import main as kassa
from engine.http.credentials import (
    AtolLogin,
    TokenProblem,
    Tokens,
    hash_password,
    read_credential,
    verify_password,
)
from engine.service_config import ConfigError, load_config, write_certificate

ROOT = Path(__file__).parents[2]
HASH = hash_password("inline-pass", n=1 << 10)

CONFIG = f"""
[service]
listen = "tcp://127.0.0.1:0"
secret_key_file = "server.key_secret"
journal = "journal.db"

[http]
listen = "127.0.0.1:0"
callback_attempts = 4
callback_backoff = 2

[[tenants]]
id = "a"
http = ["a-web.atol"]

[[tenants]]
id = "b"
http = [{{ api = "atol", login = "b-cms", password_hash = "{HASH}" }}]
"""
NO_HTTP = CONFIG.split("[http]")[0] + '[[tenants]]\nid = "a"\nhttp = ["a-web.atol"]\n'


def setup(folder: Path, text: str = CONFIG) -> Path:
    public, secret = zmq.curve_keypair()
    write_certificate(folder / "server", public, secret)
    assert kassa(["keys", "atol", "a-web", "--dir", str(folder)]) == 0
    path = folder / "kassa.toml"
    path.write_text(text)
    return path


def test_the_http_section_and_the_tenants_credentials_are_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    loaded = load_config(setup(tmp_path))
    printed = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    http = loaded.http
    assert http is not None
    assert (http.listen, http.callback_attempts, http.callback_backoff) == ("127.0.0.1:0", 4, 2.0)
    assert (http.tls_cert, http.tls_key) == (None, None)
    assert http.token_key == loaded.service.server_secret  # tokens outlive a restart
    assert sorted(http.atol_logins) == ["a-web", "b-cms"]
    a, b = http.atol_logins["a-web"], http.atol_logins["b-cms"]
    assert (a.tenant, b.tenant) == ("a", "b")
    assert printed["login"] == "a-web" and verify_password(printed["password"], a.password_hash)
    assert printed["password"] not in (tmp_path / "a-web.atol").read_text()
    assert "password_hash" not in repr(http) and HASH not in repr(http)
    (tmp_path / "no-http").mkdir()
    assert load_config(setup(tmp_path / "no-http", NO_HTTP)).http is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("callback_attempts = 4", "colour = 4"), "http.colour: unknown key"),
        (('listen = "127.0.0.1:0"', 'listen = "somewhere"'), "http.listen: expected HOST:PORT"),
        (("callback_backoff = 2", "callback_backoff = 0"), "http.callback_backoff: expected"),
        (("callback_attempts = 4", 'tls_cert = "x.pem"'), "http.tls_key: TLS needs"),
        (('"a-web.atol"', '"missing.atol"'), "tenants[0].http[0]: "),
        (('login = "b-cms"', 'login = "a-web"'), "tenants[1].http: the ATOL login 'a-web'"),
        (('api = "atol"', 'api = "orange"'), 'tenants[1].http[0]: http[0]: api: expected "atol"'),
        (('api = "atol"', 'api = "komtet"'), "tenants[1].http[0]: http[0]: unknown key 'login'"),
        ((f'password_hash = "{HASH}"', 'password_hash = "hunter2"'), "password_hash: expected"),
        (('login = "b-cms"', 'login = "b cms"'), "tenants[1].http[0]: http[0]: login"),
        (('http = ["a-web.atol"]', 'http = "a-web.atol"'), "tenants[0].http: expected an array"),
    ],
)
def test_a_mistake_is_named_with_its_key(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    old, new = change
    assert old in CONFIG
    with pytest.raises(ConfigError) as caught:
        load_config(setup(tmp_path, CONFIG.replace(old, new)))
    assert message in str(caught.value), str(caught.value)
    assert "\n" not in str(caught.value)


def test_kassa_keys_atol_makes_rotates_and_never_overwrites(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert kassa(["keys", "atol", "shop", "--login", "shop@kassa", "--dir", str(tmp_path)]) == 0
    first = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    path = tmp_path / "shop.atol"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    made = read_credential(path)
    assert made["login"] == first["login"] == "shop@kassa"
    login = AtolLogin("t", "shop@kassa", str(made["password_hash"]))
    tokens = Tokens(b"key")
    token = tokens.issue(login, time.time())

    assert kassa(["keys", "atol", "shop", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "already exists; not overwritten" in err and err.count("\n") == 1
    assert read_credential(path) == made

    assert kassa(["keys", "atol", "shop", "--rotate", "--dir", str(tmp_path)]) == 0
    second = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    rotated = read_credential(path)
    assert rotated["login"] == "shop@kassa" and second["password"] != first["password"]
    assert verify_password(second["password"], str(rotated["password_hash"]))
    assert not verify_password(first["password"], str(rotated["password_hash"]))
    renewed = AtolLogin("t", "shop@kassa", str(rotated["password_hash"]))
    with pytest.raises(TokenProblem):  # the old password's tokens stop working
        tokens.read(token, {"shop@kassa": renewed}, time.time())

    assert kassa(["keys", "atol", "new", "--rotate", "--dir", str(tmp_path)]) == 2
    assert "no such file to rotate" in capsys.readouterr().err
    assert kassa(["keys", "atol", "../x", "--dir", str(tmp_path)]) == 2
    assert kassa(["keys", "atol", "x", "--login", "a b", "--dir", str(tmp_path)]) == 2
    assert not (tmp_path / "x.atol").exists()


def test_kassa_serve_config_serves_the_atol_login_it_lists(tmp_path: Path) -> None:
    path = setup(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "serve", "--config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        url = ""
        deadline = time.monotonic() + 30
        while not url and time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line, process.stderr.read() if process.stderr else "no output"
            if line.startswith("kassa: serving HTTP on "):
                url = line.split()[-1]
        answer = httpx.post(
            f"{url}/possystem/v5/getToken",
            json={"login": "b-cms", "pass": "inline-pass"},
            trust_env=False,
        )
        assert answer.status_code == 200 and answer.json()["token"], answer.text
        process.send_signal(signal.SIGINT)
        assert process.wait(20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_kassa_serve_refuses_http_listen_without_an_http_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = setup(tmp_path, NO_HTTP)
    assert kassa(["serve", "--config", str(path), "--http-listen", "127.0.0.1:0"]) == 2
    assert "has no [http] section" in capsys.readouterr().err


def test_kassa_keys_komtet_writes_an_owner_only_shop_the_config_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert kassa(["keys", "komtet", "web", "--shop-id", "3141", "--dir", str(tmp_path)]) == 0
    said = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    path = tmp_path / "web.komtet"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert kassa(["keys", "komtet", "web", "--dir", str(tmp_path)]) == 2
    text = CONFIG.replace('http = ["a-web.atol"]', 'http = ["a-web.atol", "web.komtet"]')
    loaded = load_config(setup(tmp_path, text))
    assert loaded.http is not None
    shop = loaded.http.komtet_shops["3141"]
    assert shop.tenant == "a" and shop.secret == said["secret"] and said["shop_id"] == "3141"
    assert "secret" not in repr(loaded.http) and said["secret"] not in repr(shop)
    path.chmod(0o644)  # rotating keeps it owner-only even when someone widened it
    assert kassa(["keys", "komtet", "web", "--rotate", "--dir", str(tmp_path)]) == 0
    rotated = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert rotated["shop_id"] == "3141" and rotated["secret"] != said["secret"]
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    twice = text.replace(
        f'http = [{{ api = "atol", login = "b-cms", password_hash = "{HASH}" }}]',
        f'http = [{{ api = "komtet", shop_id = "3141", secret = "{"s" * 16}" }}]',
    )
    with pytest.raises(ConfigError, match="the KOMTET shop_id '3141' is tenant 'a'"):
        load_config(_reload(tmp_path, twice))


def _reload(folder: Path, text: str) -> Path:
    path = folder / "kassa.toml"
    path.write_text(text)
    return path
