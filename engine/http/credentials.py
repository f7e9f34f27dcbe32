"""Tenants' HTTP credentials (учётные данные): ATOL logins, their hashed passwords, and tokens.

A tenant reaches the HTTP door with credentials kept next to its CURVE keys in kassa.toml
(``http = ["shop-web.atol"]``), made and rotated by ``kassa keys atol NAME``. A credential file
holds the login and a scrypt hash of the password, never the password itself, so that a copied
config gives no one a password they may have used elsewhere; the password is printed once,
when it is made. An owner may also make and revoke logins and shops in the cabinet
(engine/keyring.py keeps them in the journal); the doors look them up there, live.

ATOL's ``getToken`` trades login and password for a token valid 24 hours. A token here is the
login, its expiry and an HMAC over both and the password's hash, keyed by the service's secret:
it survives a restart of the service (clients keep their tokens for the day), and rotating the
password ends every token made from the old one. Reading a token costs one HMAC, no journal.

A KOMTET shop (``kassa keys komtet NAME``) is a ``shop_id`` and its secret. KOMTET signs every
request with HMAC-MD5 keyed by that secret, so the service must hold the secret itself, not a
hash of it: the credential file keeps it in plain text, is written owner-only (0600), and must
stay so; rotating it (``--rotate``) is the remedy for a copied file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import tomllib
from collections.abc import Mapping
from pathlib import Path

import attrs

#: scrypt's cost: 2^14 × 8 is the interactive-login figure of its paper (16 MiB, tens of ms).
SCRYPT_N = 1 << 14
SCRYPT_R = 8
SCRYPT_P = 1
#: An ATOL login: what ATOL's own logins look like, and nothing that needs quoting in a file.
LOGIN = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}\Z")
#: ATOL tokens live 24 hours (error 11 after that).
TOKEN_LIFETIME = 24 * 3600
#: A KOMTET shop id: KOMTET's are digits; any plain word is taken.
SHOP_ID = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_TOKEN = re.compile(r"\A([A-Za-z0-9_-]{1,128})\.([0-9]{1,12})\.([A-Za-z0-9_-]{24})\Z")


class CredentialError(Exception):
    """A credential file or hash that cannot be used; the message says what."""


def b64(data: bytes) -> str:
    """Unpadded base64url: what tokens, cookies and links carry."""
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_password() -> str:
    """A password of 144 random bits, in characters any client config takes."""
    return secrets.token_urlsafe(18)


def hash_password(password: str, *, n: int = SCRYPT_N, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$SALT$HASH``: the password's hash as a credential keeps it."""
    salt = os.urandom(16) if salt is None else salt
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=SCRYPT_R, p=SCRYPT_P, maxmem=1 << 26, dklen=32
    )
    return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${b64(salt)}${b64(digest)}"


def check_hash(text: str) -> None:
    """Raise CredentialError unless ``text`` is a hash :func:`hash_password` makes."""
    parts = text.split("$")
    if len(parts) != 6 or parts[0] != "scrypt" or not all(p.isdigit() for p in parts[1:4]):
        raise CredentialError("expected scrypt$N$r$p$SALT$HASH, as kassa keys atol writes it")
    n, r, p = (int(x) for x in parts[1:4])
    if n < 2 or n & (n - 1) or n > 1 << 20 or not 1 <= r <= 32 or not 1 <= p <= 16:
        raise CredentialError(f"scrypt parameters out of range: N={n}, r={r}, p={p}")
    try:
        if len(unb64(parts[4])) < 8 or len(unb64(parts[5])) != 32:
            raise CredentialError("the salt or the hash has the wrong length")
    except ValueError:
        raise CredentialError("the salt or the hash is not base64") from None


def verify_password(password: str, hashed: str) -> bool:
    """Whether ``password`` is the one ``hashed`` was made of (constant time in the hash)."""
    try:
        check_hash(hashed)
    except CredentialError:
        return False
    _, n, r, p, salt, digest = hashed.split("$")
    given = hashlib.scrypt(
        password.encode(),
        salt=unb64(salt),
        n=int(n),
        r=int(r),
        p=int(p),
        maxmem=1 << 27,
        dklen=32,
    )
    return hmac.compare_digest(given, unb64(digest))


@attrs.frozen
class AtolLogin:
    """One ATOL login of a tenant (its ``login``, its ``pass`` hashed)."""

    tenant: str
    login: str
    password_hash: str = attrs.field(repr=False)


def write_atol_credential(path: Path, login: str, password_hash: str) -> None:
    """Write an ATOL credential file, readable by its owner only."""
    text = (
        "# An ATOL Online login of Kassa's HTTP door, written by kassa keys atol.\n"
        "# List this file in a tenant's http = [...] in kassa.toml.\n"
        'api = "atol"\n'
        f'login = "{login}"\n'
        f'password_hash = "{password_hash}"\n'
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text)


@attrs.frozen
class KomtetShop:
    """One KOMTET shop of a tenant: its ``shop_id`` and the secret its requests are signed with."""

    tenant: str
    shop_id: str
    secret: str = attrs.field(repr=False)


def new_secret() -> str:
    """A KOMTET shop secret: 192 random bits as hex, which any client config takes."""
    return secrets.token_hex(24)


def komtet_signature(secret: str, method: str, url: str, body: bytes = b"") -> str:
    """KOMTET's ``X-HMAC-Signature``: hex HMAC-MD5 over method + full URL + body, keyed by the
    shop's secret, as its SDKs compute it (``hash_hmac('md5', $method . $url . $data, …)``)."""
    message = method.upper().encode() + url.encode() + body
    return hmac.new(secret.encode(), message, hashlib.md5).hexdigest()


def write_komtet_credential(path: Path, shop_id: str, secret: str) -> None:
    """Write a KOMTET credential file, readable by its owner only: it holds the secret itself,
    which HMAC verification needs."""
    text = (
        "# A KOMTET Kassa shop of Kassa's HTTP door, written by kassa keys komtet.\n"
        "# The secret is kept as is (KOMTET's HMAC needs it): keep this file owner-only.\n"
        "# List this file in a tenant's http = [...] in kassa.toml.\n"
        'api = "komtet"\n'
        f'shop_id = "{shop_id}"\n'
        f'secret = "{secret}"\n'
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # a file that existed keeps its mode through O_CREAT
    with os.fdopen(descriptor, "w") as out:
        out.write(text)


def read_credential(path: Path) -> dict[str, object]:
    """The table of a credential file; CredentialError if it cannot be read."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CredentialError(f"{path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CredentialError(f"{path}: not a credential file: {exc}") from None


class TokenProblem(Exception):
    """A token that lets nobody in; ``expired`` tells ATOL's 11 from its 10."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


class Tokens:
    """ATOL tokens: issued for a login, read back into it; see the module docstring."""

    def __init__(self, key: bytes, lifetime: int = TOKEN_LIFETIME) -> None:
        self._key = hashlib.sha256(b"kassa atol token\n" + key).digest()
        self.lifetime = lifetime

    def _mac(self, login: AtolLogin, expires: int) -> str:
        message = f"{login.login}\n{expires}\n{login.password_hash}".encode()
        return b64(hmac.new(self._key, message, hashlib.sha256).digest()[:18])

    def issue(self, login: AtolLogin, now: float) -> str:
        expires = int(now) + self.lifetime
        return f"{b64(login.login.encode())}.{expires}.{self._mac(login, expires)}"

    def read(self, token: str, logins: Mapping[str, AtolLogin], now: float) -> AtolLogin:
        """The login a token was issued for; TokenProblem if none, or if it has expired."""
        match = _TOKEN.match(token)
        if match is None:
            raise TokenProblem("not a token of this service")
        try:
            name = unb64(match[1]).decode()
        except (ValueError, UnicodeDecodeError):
            raise TokenProblem("not a token of this service") from None
        login = logins.get(name)
        expires = int(match[2])
        if login is None or not hmac.compare_digest(self._mac(login, expires), match[3]):
            raise TokenProblem("not a token of this service, or its password has changed")
        if now >= expires:
            raise TokenProblem("the token has expired", expired=True)
        return login
