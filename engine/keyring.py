"""The tenants' API keys (ключи доступа): kassa.toml's, the cabinet's, and their revocations.

The one tenant model the front doors share (DESIGN.md, "Front doors"): the ZeroMQ door reads
:attr:`Keyring.clients` (a CURVE public key → its tenant) in its ZAP handler, the HTTP door reads
:attr:`Keyring.atol_logins` and :attr:`Keyring.komtet_shops` at ``getToken``, at every token it
reads and at every KOMTET signature. They are plain dicts changed in place, so a key made or
revoked in the cabinet counts at the next handshake or request, and a lookup stays one dict read.

kassa.toml's keys are the base; the cabinet adds keys and revokes any key, kassa.toml's too,
as ``TenantRecord`` rows of kind ``credential`` in the journal, read back at start. A revoked
key of kassa.toml stays in the file (the service never writes it) and is kept out by its
revocation record. Names are unique in the whole service: an ATOL login, a KOMTET shop_id or
a CURVE key belongs to one tenant. An ATOL token names its login, so revoking the login ends
its tokens too; a CURVE connection already made lives on until it reconnects (ZAP is asked
at the handshake only).
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Mapping
from typing import Any, Literal

import attrs
import trio
import zmq
import zmq.utils.z85

from engine.http.credentials import (
    LOGIN,
    SHOP_ID,
    AtolLogin,
    KomtetShop,
    hash_password,
    new_password,
    new_secret,
)
from engine.journal import Journal, TenantRecord

log = logging.getLogger("kassa.keyring")

KIND = "credential"
Kind = Literal["atol", "komtet", "curve"]
KINDS: tuple[Kind, ...] = ("atol", "komtet", "curve")


class KeyringError(Exception):
    """A key that cannot be made: the message (Russian, for the cabinet) says why; ``field``
    names the form's field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@attrs.frozen
class Credential:
    """One API key of a tenant as the cabinet lists it: never a secret, only what names it."""

    tenant: str
    kind: Kind
    name: str  # the ATOL login, the KOMTET shop_id, or the CURVE public key in Z85
    origin: Literal["config", "cabinet"]
    created: float | None = None  # when the cabinet made it; kassa.toml's keys have no date


@attrs.frozen
class Made:
    """A key just made: its listing and the secret to show once (a password, a shop's secret,
    a CURVE secret key in Z85), which the keyring keeps only as the doors need it."""

    credential: Credential
    secret: str


def _record_key(kind: Kind, name: str) -> str:
    return f"{kind}:{name}"


class Keyring:
    """The live keys of every tenant; see the module docstring."""

    def __init__(
        self,
        clients: Mapping[bytes, str] | None = None,
        atol_logins: Mapping[str, AtolLogin] | None = None,
        komtet_shops: Mapping[str, KomtetShop] | None = None,
        *,
        password_cost: int = 1 << 14,
    ) -> None:
        self._config_clients = dict(clients or {})
        self._config_logins = dict(atol_logins or {})
        self._config_shops = dict(komtet_shops or {})
        #: What the doors read: kassa.toml's keys plus the cabinet's, less the revoked ones.
        self.clients: dict[bytes, str] = dict(self._config_clients)
        self.atol_logins: dict[str, AtolLogin] = dict(self._config_logins)
        self.komtet_shops: dict[str, KomtetShop] = dict(self._config_shops)
        self.password_cost = password_cost
        self._made: dict[tuple[Kind, str], Credential] = {}  # the cabinet's keys
        self._revoked: set[tuple[Kind, str]] = set()  # kassa.toml's keys revoked
        self._journal: Journal | None = None
        self._lock = trio.Lock()  # one change at a time: a name is checked, then journaled

    @property
    def loaded(self) -> bool:
        return self._journal is not None

    # --- the doors' view ------------------------------------------------------------------------

    def _owner(self, kind: Kind, name: str) -> str | None:
        """Whose ``name`` is among kassa.toml's keys, revoked or not (a revoked one stays taken:
        its record in the journal holds the name)."""
        if kind == "atol":
            login = self._config_logins.get(name)
            return login.tenant if login else None
        if kind == "komtet":
            shop = self._config_shops.get(name)
            return shop.tenant if shop else None
        return self._config_clients.get(_raw(name))

    def _install(self, tenant: str, kind: Kind, name: str, value: Mapping[str, Any]) -> None:
        if kind == "atol":
            self.atol_logins[name] = AtolLogin(tenant, name, str(value["password_hash"]))
        elif kind == "komtet":
            self.komtet_shops[name] = KomtetShop(tenant, name, str(value["secret"]))
        else:
            self.clients[_raw(name)] = tenant

    def _remove(self, kind: Kind, name: str) -> None:
        if kind == "atol":
            self.atol_logins.pop(name, None)
        elif kind == "komtet":
            self.komtet_shops.pop(name, None)
        else:
            self.clients.pop(_raw(name), None)

    # --- start ----------------------------------------------------------------------------------

    async def load(self, journal: Journal, tenants: Mapping[str, object] | None = None) -> None:
        """Apply the cabinet's keys and revocations journaled so far; once per journal.

        A record of a tenant no longer configured, or naming a key kassa.toml now gives another
        tenant, is skipped with a warning: kassa.toml wins."""
        if self._journal is journal:
            return
        for record in await journal.records(KIND):
            try:
                value = json.loads(record.value)
                kind, name = value["kind"], value["name"]
                if kind not in KINDS or _record_key(kind, name) != record.key:
                    raise ValueError(record.key)
                owner = self._owner(kind, name)
            except (ValueError, KeyError, TypeError):
                log.warning("credential %r of %r is unreadable: skipped", record.key, record.tenant)
                continue
            if tenants is not None and record.tenant not in tenants:
                log.warning(
                    "credential %s of unknown tenant %r: skipped", record.key, record.tenant
                )
                continue
            if value.get("revoked") is not None:
                if owner == record.tenant:
                    self._revoked.add((kind, name))
                    self._remove(kind, name)
                continue
            if owner is not None or self._taken(kind, name):
                log.warning(
                    "credential %s of %r is taken elsewhere: skipped", record.key, record.tenant
                )
                continue
            try:
                self._install(record.tenant, kind, name, value)
            except (KeyError, ValueError):
                log.warning("credential %r of %r is unreadable: skipped", record.key, record.tenant)
                continue
            self._made[kind, name] = Credential(
                record.tenant, kind, name, "cabinet", float(value.get("created", record.updated))
            )
        self._journal = journal

    def _taken(self, kind: Kind, name: str) -> bool:
        return self._owner(kind, name) is not None or (kind, name) in self._made

    # --- the cabinet's view ---------------------------------------------------------------------

    def listing(self, tenant: str) -> list[Credential]:
        """The tenant's live keys, kassa.toml's first, each kind by name."""
        found = [
            *(
                Credential(tenant, "atol", n, "config")
                for n, login in self._config_logins.items()
                if login.tenant == tenant
            ),
            *(
                Credential(tenant, "komtet", n, "config")
                for n, shop in self._config_shops.items()
                if shop.tenant == tenant
            ),
            *(
                Credential(tenant, "curve", _z85(key), "config")
                for key, owner in self._config_clients.items()
                if owner == tenant
            ),
        ]
        found = [c for c in found if (c.kind, c.name) not in self._revoked]
        found += [c for c in self._made.values() if c.tenant == tenant]
        order = {"config": 0, "cabinet": 1}
        return sorted(found, key=lambda c: (order[c.origin], KINDS.index(c.kind), c.name))

    def find(self, tenant: str, kind: str, name: str) -> Credential | None:
        """The tenant's live key of that kind and name; None if none, or another tenant's."""
        return next((c for c in self.listing(tenant) if c.kind == kind and c.name == name), None)

    def _journal_or_fail(self) -> Journal:
        if self._journal is None:
            raise RuntimeError("the keyring is not loaded from a journal yet")
        return self._journal

    async def make_atol(self, tenant: str, login: str) -> Made:
        """A new ATOL login with a generated password; only its scrypt hash is kept."""
        login = login.strip()
        if not LOGIN.match(login):
            raise KeyringError(
                "login", "логин: латинские буквы, цифры и _.@-, до 64 знаков, с буквы или цифры"
            )
        password = new_password()
        hashed = await trio.to_thread.run_sync(
            functools.partial(hash_password, password, n=self.password_cost)
        )
        made = await self._make(tenant, "atol", login, {"password_hash": hashed}, "login")
        return Made(made, password)

    async def make_komtet(self, tenant: str, shop_id: str) -> Made:
        """A new KOMTET shop with a generated secret, kept as is: KOMTET's HMAC needs it."""
        shop_id = shop_id.strip()
        if not SHOP_ID.match(shop_id):
            raise KeyringError("shop_id", "shop_id: латинские буквы, цифры и _.-, до 64 знаков")
        secret = new_secret()
        made = await self._make(tenant, "komtet", shop_id, {"secret": secret}, "shop_id")
        return Made(made, secret)

    async def make_curve(self, tenant: str) -> Made:
        """A new CURVE key pair; only the public key is kept, the secret is the client's."""
        public, secret = zmq.curve_keypair()
        made = await self._make(tenant, "curve", public.decode("ascii"), {}, "key")
        return Made(made, secret.decode("ascii"))

    async def _make(
        self, tenant: str, kind: Kind, name: str, fields: Mapping[str, Any], field: str
    ) -> Credential:
        journal = self._journal_or_fail()
        async with self._lock:
            if self._taken(kind, name):
                raise KeyringError(field, f"«{name}» уже занято: имена уникальны во всём сервисе")
            created = time.time()
            value = {"kind": kind, "name": name, "created": created, **fields}
            record = TenantRecord(tenant, KIND, _record_key(kind, name), json.dumps(value))
            await journal.put_record(record)
            credential = Credential(tenant, kind, name, "cabinet", created)
            self._made[kind, name] = credential
            self._install(tenant, kind, name, value)
        return credential

    async def revoke(self, tenant: str, kind: str, name: str) -> bool:
        """Revoke the tenant's key; False if it has none by that kind and name (another
        tenant's key is none of its own). Journaled before the doors stop taking it."""
        journal = self._journal_or_fail()
        async with self._lock:
            credential = self.find(tenant, kind, name)
            if credential is None:
                return False
            key = _record_key(credential.kind, name)
            if credential.origin == "cabinet":
                await journal.drop_record(tenant, KIND, key)
                del self._made[credential.kind, name]
            else:
                value = {"kind": credential.kind, "name": name, "revoked": time.time()}
                await journal.put_record(TenantRecord(tenant, KIND, key, json.dumps(value)))
                self._revoked.add((credential.kind, name))
            self._remove(credential.kind, name)
        return True


def _raw(z85: str) -> bytes:
    return bytes(zmq.utils.z85.decode(z85.encode("ascii")))


def _z85(raw: bytes) -> str:
    return bytes(zmq.utils.z85.encode(raw)).decode("ascii")
