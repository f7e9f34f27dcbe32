"""Cabinet users, their roles, sessions and CSRF tokens: the cabinet's part of the tenant model.

A tenant's users are listed in kassa.toml as ``[[tenants.users]]`` tables (login, role and a
scrypt hash of the password, made by ``kassa keys cabinet NAME --role ROLE``). A login belongs
to one tenant in the whole service, so a session names its tenant through its user.

A session is a signed cookie, not a journal row: ``LOGIN.EXPIRES.NONCE.MAC``, the MAC an HMAC
keyed by the service's secret over the login, the expiry, the nonce and the password's hash.
It survives a restart, costs one HMAC to read, and a new password ends every old session.
The CSRF token of a session is an HMAC of its cookie under another key: a form posted from
another site cannot know it, and it needs no storage.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping

import attrs

from engine.http.credentials import b64, unb64

#: What each role may do; a page names the action it needs (see :data:`RIGHTS`).
ROLES = ("owner", "accountant", "cashier")
RIGHTS: Mapping[str, frozenset[str]] = {
    "dashboard": frozenset(ROLES),
    "receipts": frozenset(ROLES),  # the list and a receipt's page
    "refund": frozenset({"owner", "accountant", "cashier"}),
    "correction": frozenset({"owner", "accountant"}),  # чек коррекции from a receipt's page
    "reports": frozenset({"owner", "accountant"}),
    "exports": frozenset({"owner", "accountant"}),
    "shifts": frozenset({"owner", "accountant", "cashier"}),
    "credentials": frozenset({"owner"}),
    "branding": frozenset({"owner"}),
    "catalogue": frozenset({"owner", "accountant"}),
    "sell": frozenset(ROLES),  # the mobile cashier page
}
#: A session lives 12 hours: a working day, then log in again.
SESSION_LIFETIME = 12 * 3600
_SESSION = re.compile(
    r"\A([A-Za-z0-9_-]{1,128})\.([0-9]{1,12})\.([A-Za-z0-9_-]{16})\.([A-Za-z0-9_-]{32})\Z"
)


def may(role: str, action: str) -> bool:
    """Whether ``role`` may do ``action``; an action not in :data:`RIGHTS` is no one's."""
    return role in RIGHTS.get(action, frozenset())


@attrs.frozen
class CabinetUser:
    """One cabinet user of a tenant: a login, a role, and the password's scrypt hash."""

    tenant: str
    login: str
    role: str
    password_hash: str = attrs.field(repr=False)


@attrs.frozen
class Session:
    """A signed-in user, read back from a cookie; ``cookie`` is the cookie's value."""

    user: CabinetUser
    expires: int
    cookie: str = attrs.field(repr=False)


class Sessions:
    """Issues and reads session cookies and their CSRF tokens; see the module docstring."""

    def __init__(self, key: bytes, lifetime: int = SESSION_LIFETIME) -> None:
        self._session_key = hashlib.sha256(b"kassa cabinet session\n" + key).digest()
        self._csrf_key = hashlib.sha256(b"kassa cabinet csrf\n" + key).digest()
        self.lifetime = lifetime

    def _mac(self, user: CabinetUser, expires: int, nonce: str) -> str:
        message = f"{user.login}\n{expires}\n{nonce}\n{user.password_hash}".encode()
        return b64(hmac.new(self._session_key, message, hashlib.sha256).digest()[:24])

    def issue(self, user: CabinetUser, now: float) -> Session:
        expires = int(now) + self.lifetime
        nonce = b64(secrets.token_bytes(12))
        cookie = f"{b64(user.login.encode())}.{expires}.{nonce}.{self._mac(user, expires, nonce)}"
        return Session(user, expires, cookie)

    def read(self, cookie: str, users: Mapping[str, CabinetUser], now: float) -> Session | None:
        """The session of a cookie; None if it is forged, expired, or its user is gone."""
        match = _SESSION.match(cookie)
        if match is None:
            return None
        try:
            login = unb64(match[1]).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        user = users.get(login)
        expires = int(match[2])
        if user is None or not hmac.compare_digest(self._mac(user, expires, match[3]), match[4]):
            return None
        if now >= expires:
            return None
        return Session(user, expires, cookie)

    def csrf(self, session: Session) -> str:
        """The CSRF token every form of ``session`` carries."""
        return b64(hmac.new(self._csrf_key, session.cookie.encode(), hashlib.sha256).digest())

    def csrf_ok(self, session: Session, token: str) -> bool:
        return hmac.compare_digest(self.csrf(session).encode(), token.encode())


class LoginThrottle:
    """Failed logins counted per login and per client address in a sliding window: past
    ``per_login`` (or ``per_address``) failures the next tries are refused unchecked until
    the window has passed, so that guessing a password costs days, not minutes."""

    def __init__(self, window: float = 300.0, per_login: int = 5, per_address: int = 50) -> None:
        self.window = window
        self.per_login = per_login
        self.per_address = per_address
        self._failures: dict[str, list[float]] = {}

    def _recent(self, key: str, now: float) -> list[float]:
        times = [t for t in self._failures.get(key, ()) if now - t < self.window]
        if times:
            self._failures[key] = times
        else:
            self._failures.pop(key, None)
        return times

    def retry_after(self, login: str, address: str, now: float) -> float:
        """Seconds until a try is taken again; 0 when it is taken now."""
        waits = [0.0]
        limits = ((f"login:{login}", self.per_login), (f"addr:{address}", self.per_address))
        for key, limit in limits:
            times = self._recent(key, now)
            if len(times) >= limit:
                waits.append(times[-limit] + self.window - now)
        return max(waits)

    def failed(self, login: str, address: str, now: float) -> None:
        if len(self._failures) > 100_000:  # bounded memory under a flood of logins
            self._failures.clear()
        for key in (f"login:{login}", f"addr:{address}"):
            self._failures.setdefault(key, []).append(now)

    def succeeded(self, login: str) -> None:
        self._failures.pop(f"login:{login}", None)
