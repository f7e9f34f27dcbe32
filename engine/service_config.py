"""``kassa.toml``: what ``kassa serve`` runs with, read into the engine's and the service's config.

::

    [service]
    listen = "tcp://0.0.0.0:5555"          # the requests socket (ROUTER)
    events_host = "10.0.0.2"               # tenants' PUB sockets: tcp://HOST:* , or "ipc:///run/kassa"
    secret_key_file = "keys/server.key_secret"   # the service's ZeroMQ certificate
    journal = "/var/lib/kassa/journal.db"   # or "postgresql://kassa@db.local/kassa"
    engine_id = "kassa-1"                  # this engine among those on one PostgreSQL journal
    lease_seconds = 10                     # a register's lease; a killed engine's frees after it

    [limits]
    rate = 200.0    # requests per second per tenant
    burst = 400     # requests at once per tenant
    queue = 10000   # jobs per tenant accepted and not yet final
    request_bytes = 4194304   # one request; a bigger one is answered too_large, undecoded
    receipt_bytes = 262144    # one receipt in it (engine/limits.py says why these sizes)
    admission_tolerance = inf # receipts on registers at once fall when one takes this many
                              # times its shortest time (engine/admission.py), e.g. 1.5

    [http]                                 # the HTTP door (engine/http); absent: none
    listen = "0.0.0.0:8080"                # HOST:PORT
    tls_cert = "tls/cert.pem"              # both or neither: HTTPS
    tls_key = "tls/key.pem"
    callback_attempts = 10                 # a callback is dead after this many failures
    callback_backoff = 5.0                 # seconds before the first retry; doubling
    callback_timeout = 10.0                # seconds one attempt may take

    [smtp]                                 # the buyer's receipt by e-mail (1008); absent: none
    host = "smtp.example.ru"
    port = 587
    security = "starttls"                  # starttls | ssl | none
    user = "kassa@example.ru"              # absent: no login
    password_file = "keys/smtp.password"
    from = "Магазин <kassa@example.ru>"
    link_base = "https://kassa.example.ru" # the public receipt link's base; absent: the door's
    timeout = 30.0                         # seconds one SMTP session may take
    attempts = 10                          # an e-mail is dead after this many failures

    [[tenants]]
    id = "shop"
    name = "Магазин"
    timezone = "Europe/Moscow"
    daily_close = "23:30"
    sell_failed_marking = false            # a marking code the ФН refuses fails the receipt
    keys = ["rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7", "keys/shop-web.key"]
    http = ["keys/shop-web.atol", "keys/shop-web.komtet"]   # kassa keys atol|komtet NAME
    [tenants.branding]                     # its receipts' look (engine/render/branding.py)
    name = "Кофейня «Зерно»"               # over the title; the cabinet's branding overrides
    logo = "brand/logo.png"                # PNG, JPEG or SVG; colours "#RRGGBB"; all optional
    primary = "#1f4e79"
    accent = "#e8f0f8"
    footer = "Спасибо за покупку!"

    [[tenants.users]]                      # a cabinet user: kassa keys cabinet NAME --role ROLE
    login = "anna"
    role = "owner"                         # owner | accountant | cashier
    password_hash = "scrypt$16384$8$1$..."

    [[registers]]
    id = "kkt-1"
    tenant = "shop"
    group = "main"
    protocol = "shtrih"
    address = "tcp://10.0.0.5:7778"      # or "serial:/dev/ttyS0?baud=115200"
    tax_table = "2026"                   # its firmware's: 2026 (default), legacy, …

Relative paths are taken from the file's folder. Every mistake is reported as one
:class:`ConfigError` that names the file, the key path and the problem
(``kassa.toml: registers[2].address: ...``): a service must not start on a config it half
understood, so unknown keys are mistakes too.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import zmq
import zmq.auth
import zmq.utils.z85

from engine.cabinet.users import ROLES, CabinetUser
from engine.config import (
    Connector,
    EngineConfig,
    RegisterConfig,
    TenantConfig,
    default_engine_id,
)
from engine.connectors import PROTOCOLS, serial_connector, tcp_connector
from engine.http.credentials import (
    LOGIN,
    SHOP_ID,
    AtolLogin,
    CredentialError,
    KomtetShop,
    check_hash,
    read_credential,
)
from engine.http.hooks import HookError, PaymentSettings, read_payments
from engine.journal import is_url
from engine.limits import DEFAULT_SIZES, SizeLimits
from engine.render.branding import Branding, BrandingError, read_branding
from protocols.documents.vat import TaxTable
from protocols.taxes import DEFAULT_TAX_TABLES, TAX_TABLES

#: A tenant id goes into ZAP domains and ipc paths: keep it to plain characters.
TENANT_ID = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}\Z")
_HOST = re.compile(r"\A(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])\Z")
_SERVICE_KEYS = (
    "listen",
    "events_host",
    "secret_key_file",
    "journal",
    "max_message",
    "engine_id",
    "lease_seconds",
)
_LIMIT_KEYS = ("rate", "burst", "queue", "request_bytes", "receipt_bytes", "admission_tolerance")
_TENANT_KEYS = (
    "id",
    "name",
    "timezone",
    "daily_close",
    "queue",
    "keys",
    "http",
    "sell_failed_marking",
    "payments",
    "users",
    "branding",
)
_HTTP_KEYS = (
    "listen",
    "tls_cert",
    "tls_key",
    "callback_attempts",
    "callback_backoff",
    "callback_timeout",
)
_SMTP_KEYS = (
    "host",
    "port",
    "security",
    "user",
    "password_file",
    "from",
    "link_base",
    "timeout",
    "attempts",
)
_CREDENTIAL_KEYS = {
    "atol": ("api", "login", "password_hash"),
    "komtet": ("api", "shop_id", "secret"),
}
_REGISTER_KEYS = ("id", "tenant", "group", "protocol", "address", "tax_table")


class ConfigError(Exception):
    """A config the service cannot run with; the message names file, key and problem."""


@attrs.frozen
class ServiceSettings:
    """The ZeroMQ side of a service: where it listens, who may talk to it, how much."""

    listen: str
    server_public: bytes = attrs.field(repr=False)  # Z85, 40 bytes
    server_secret: bytes = attrs.field(repr=False)
    #: A client's public key (32 raw bytes, as ZAP hands it over) → its tenant.
    clients: Mapping[bytes, str] = attrs.field(repr=False)
    events_host: str = "127.0.0.1"  # a host for tcp://HOST:*, or an ipc:// folder
    sizes: SizeLimits = DEFAULT_SIZES  # the largest request and receipt answered, not refused
    rate: float = 200.0  # requests per second per tenant
    burst: int = 400


@attrs.frozen
class SmtpSettings:
    """Where the buyers' receipt e-mails go out (engine/http/mail.py)."""

    host: str
    port: int = 587
    security: str = "starttls"  # starttls | ssl | none
    user: str = ""
    password_file: Path | None = attrs.field(default=None, repr=False)
    sender: str = "kassa@localhost"  # the From header
    link_base: str = ""  # the public link's base URL; empty: the door's own
    timeout: float = 30.0
    attempts: int = 10


@attrs.frozen
class HttpSettings:
    """The HTTP side of a service (engine/http): where it listens, its TLS, who may log in,
    and how callbacks are retried. Its rate and sizes are the service's ``[limits]``."""

    listen: str = "127.0.0.1:8080"  # HOST:PORT; port 0 takes a free one
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: ATOL login → the tenant's credential.
    atol_logins: Mapping[str, AtolLogin] = attrs.field(factory=dict, repr=False)
    #: KOMTET shop_id → the tenant's shop and its secret.
    komtet_shops: Mapping[str, KomtetShop] = attrs.field(factory=dict, repr=False)
    #: What tokens are signed with; kassa.toml's is the service's secret key, so that tokens
    #: outlive a restart. Empty: a fresh key for this run.
    token_key: bytes = attrs.field(default=b"", repr=False)
    callback_attempts: int = 10
    callback_backoff: float = 5.0  # the first retry's wait; each next one doubles
    callback_timeout: float = 10.0
    #: A tenant's notification hook → its payment settings (engine/http/hooks.py).
    payments: Mapping[str, PaymentSettings] = attrs.field(factory=dict, repr=False)
    #: Cabinet login → its user (engine/cabinet), of whichever tenant.
    cabinet_users: Mapping[str, CabinetUser] = attrs.field(factory=dict, repr=False)
    #: A tenant → how its receipts look (engine/render); a tenant not here gets the plain look.
    branding: Mapping[str, Branding] = attrs.field(factory=dict, repr=False)
    #: The buyers' e-mails; None: a receipt's e-mail 1008 is not sent.
    smtp: SmtpSettings | None = None


_HTTP_DEFAULTS = HttpSettings()


@attrs.frozen
class LoadedConfig:
    engine: EngineConfig
    service: ServiceSettings
    http: HttpSettings | None = None  # no [http] section: no HTTP door


def z85_key(text: str) -> bytes:
    """The 32 raw bytes of a Z85 public key (40 characters); ValueError if it is none."""
    if len(text) != 40:
        raise ValueError(f"a Z85 key has 40 characters, got {len(text)}")
    try:
        return bytes(zmq.utils.z85.decode(text.encode("ascii")))
    except (UnicodeEncodeError, ValueError, KeyError, IndexError, OverflowError):
        raise ValueError("not a Z85 key") from None


def write_certificate(base: Path, public: bytes, secret: bytes) -> tuple[Path, Path]:
    """Write ``BASE.key`` (public) and ``BASE.key_secret`` (owner-only) in ZeroMQ's format."""
    public_file, secret_file = (
        base.with_name(base.name + ".key"),
        base.with_name(base.name + ".key_secret"),
    )
    head = "#   ZeroMQ CURVE {} Certificate, written by kassa\n\nmetadata\ncurve\n"
    public_line = f'    public-key = "{public.decode("ascii")}"\n'
    public_file.write_text(head.format("Public") + public_line)
    descriptor = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(head.format("**Secret**") + public_line)
        out.write(f'    secret-key = "{secret.decode("ascii")}"\n')
    return public_file, secret_file


class _Reader:
    """Typed access to one TOML table; each fault raises a ConfigError with its key path."""

    def __init__(self, source: str, table: Any, path: str, known: tuple[str, ...]) -> None:
        self.source = source
        self.path = path
        if not isinstance(table, dict):
            raise self.error("", f"expected a table, got {type(table).__name__}")
        self.table: dict[str, Any] = table
        for key in table:  # a typo is named as such, not as the key it left missing
            if key not in known:
                raise self.error(key, "unknown key")

    def where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path and key else (self.path or key)

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {self.where(key)}: {message}")

    def value(
        self, key: str, kind: type | tuple[type, ...], default: Any = ..., what: str = ""
    ) -> Any:
        if key not in self.table:
            if default is ...:
                raise self.error(key, "required, missing")
            return default
        value = self.table[key]
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise self.error(key, f"expected {what or _names(kind)}, got a boolean")
        if not isinstance(value, kind):
            raise self.error(key, f"expected {what or _names(kind)}, got {type(value).__name__}")
        return value

    def text(self, key: str, default: Any = ...) -> Any:
        return self.value(key, str, default)


def _names(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    words = {
        str: "a string",
        int: "an integer",
        float: "a number",
        list: "an array",
        dict: "a table",
    }
    return " or ".join(words.get(k, k.__name__) for k in kinds)


def load_config(path: str | Path) -> LoadedConfig:
    """Read ``path`` into the engine's and the service's config; raises ConfigError only."""
    path = Path(path)
    source = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{source}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    return parse_config(data, source, path.parent)


def parse_config(data: Mapping[str, Any], source: str, folder: Path) -> LoadedConfig:
    """The config of an already parsed TOML document (paths relative to ``folder``)."""
    top = _Reader(
        source, dict(data), "", ("service", "limits", "http", "smtp", "tenants", "registers")
    )
    service = _Reader(source, top.value("service", dict), "service", _SERVICE_KEYS)
    limits = _Reader(source, top.value("limits", dict, {}), "limits", _LIMIT_KEYS)
    tenant_tables = top.value("tenants", list, what="an array of [[tenants]] tables")
    register_tables = top.value("registers", list, [], what="an array of [[registers]] tables")

    listen = service.text("listen")
    _endpoint(service, "listen", listen)
    events_host = service.text("events_host", "127.0.0.1")
    if events_host.startswith("ipc://"):
        if events_host == "ipc://":
            raise service.error("events_host", "the ipc:// folder is missing")
    elif not _HOST.match(events_host):
        raise service.error(
            "events_host", f"expected a host name or address, or ipc://FOLDER, got {events_host!r}"
        )
    secret_file = _file(folder, service.text("secret_key_file"))
    try:
        public, secret = zmq.auth.load_certificate(secret_file)
    except (OSError, ValueError) as exc:
        raise service.error("secret_key_file", f"{secret_file}: {exc}") from None
    if secret is None:
        raise service.error("secret_key_file", f"{secret_file} has no secret key")
    for which, value in (("public", public), ("secret", secret)):
        try:
            z85_key(value.decode("ascii", "replace"))
        except ValueError as exc:
            raise service.error("secret_key_file", f"{secret_file}: {which} key: {exc}") from None
    journal = _journal(folder, service.text("journal"))
    engine_id = service.text("engine_id", default_engine_id())
    if not engine_id.strip() or len(engine_id) > 200:
        raise service.error("engine_id", "expected a name of 1 to 200 characters")
    lease_seconds = service.value("lease_seconds", (int, float), 10.0)
    if not (math.isfinite(lease_seconds) and 0.5 <= lease_seconds <= 600):
        raise service.error(
            "lease_seconds", f"expected seconds from 0.5 to 600, got {lease_seconds}"
        )
    if "max_message" in service.table:  # it meant the request limit, which is shared now
        raise service.error("max_message", "moved: it is limits.request_bytes now")

    rate = limits.value("rate", (int, float), 200.0)
    if not (math.isfinite(rate) and rate > 0):
        raise limits.error("rate", f"expected requests per second above 0, got {rate}")
    burst = limits.value("burst", int, max(1, math.ceil(rate * 2)))
    if burst < 1:
        raise limits.error("burst", f"expected at least 1, got {burst}")
    queue = limits.value("queue", int, 10_000)
    if queue < 1:
        raise limits.error("queue", f"expected at least 1, got {queue}")
    tolerance = limits.value("admission_tolerance", (int, float), math.inf)
    if not tolerance >= 1:
        raise limits.error("admission_tolerance", f"expected at least 1 (or inf), got {tolerance}")
    try:
        sizes = SizeLimits(
            limits.value("request_bytes", int, DEFAULT_SIZES.request_bytes),
            limits.value("receipt_bytes", int, DEFAULT_SIZES.receipt_bytes),
        )
    except ValueError as exc:
        name, _, problem = str(exc).partition(": ")
        raise limits.error(name, problem) from None

    tenants: list[TenantConfig] = []
    clients: dict[bytes, str] = {}
    logins: dict[str, AtolLogin] = {}
    hooks: dict[str, PaymentSettings] = {}
    brandings: dict[str, Branding] = {}
    shops: dict[str, KomtetShop] = {}
    users: dict[str, CabinetUser] = {}
    if not tenant_tables:
        raise top.error("tenants", "at least one [[tenants]] table is needed")
    for i, table in enumerate(tenant_tables):
        reader = _Reader(source, table, f"tenants[{i}]", _TENANT_KEYS)
        tenant, keys = _tenant(reader, folder, queue)
        if any(t.id == tenant.id for t in tenants):
            raise ConfigError(f"{source}: tenants[{i}].id: {tenant.id!r} is listed twice")
        for login in _http_credentials(reader, tenant.id, folder):
            if isinstance(login, KomtetShop):
                if login.shop_id in shops:
                    raise reader.error(
                        "http",
                        f"the KOMTET shop_id {login.shop_id!r} is tenant "
                        f"{shops[login.shop_id].tenant!r}'s too; each shop belongs to one tenant",
                    )
                shops[login.shop_id] = login
                continue
            if login.login in logins:
                raise reader.error(
                    "http",
                    f"the ATOL login {login.login!r} is tenant "
                    f"{logins[login.login].tenant!r}'s too; each login belongs to one tenant",
                )
            logins[login.login] = login
        for user in _cabinet_users(reader, tenant.id):
            if user.login in users:
                raise reader.error(
                    "users",
                    f"the cabinet login {user.login!r} belongs to tenant "
                    f"{users[user.login].tenant!r} too; each login belongs to one tenant",
                )
            users[user.login] = user
        if "payments" in reader.table:
            try:
                payments = read_payments(tenant.id, reader.table["payments"])
            except HookError as exc:
                raise reader.error(exc.path, exc.message) from None
            if payments.hook in hooks:
                raise reader.error("payments.hook", "another tenant's hook too; make it unique")
            hooks[payments.hook] = payments
        if "branding" in reader.table:
            try:
                brandings[tenant.id] = read_branding(reader.table["branding"], folder)
            except BrandingError as exc:
                raise reader.error(f"branding.{exc.path}".rstrip("."), exc.message) from None
        for key in keys:
            if key in clients:
                raise ConfigError(
                    f"{source}: tenants[{i}].keys: a key of tenant {clients[key]!r} too; "
                    "each key belongs to exactly one tenant"
                )
            clients[key] = tenant.id
        tenants.append(tenant)

    registers: list[RegisterConfig] = []
    known = {t.id for t in tenants}
    for i, table in enumerate(register_tables):
        register = _register(_Reader(source, table, f"registers[{i}]", _REGISTER_KEYS), known)
        if any(r.id == register.id for r in registers):
            raise ConfigError(f"{source}: registers[{i}].id: {register.id!r} is listed twice")
        registers.append(register)

    engine = EngineConfig(
        journal=journal,
        tenants=tuple(tenants),
        registers=tuple(registers),
        admission_tolerance=float(tolerance),
        engine_id=engine_id,
        lease_seconds=float(lease_seconds),
    )
    settings = ServiceSettings(
        listen=listen,
        server_public=public,
        server_secret=secret,
        clients=clients,
        events_host=events_host,
        sizes=sizes,
        rate=float(rate),
        burst=burst,
    )
    http = None
    if "http" in top.table:
        http = _http(_Reader(source, top.value("http", dict), "http", _HTTP_KEYS), folder)
        http = attrs.evolve(
            http,
            atol_logins=logins,
            komtet_shops=shops,
            token_key=secret,
            payments=hooks,
            cabinet_users=users,
            branding=brandings,
        )
    if "smtp" in top.table:
        if http is None:
            raise top.error("smtp", "the receipts' e-mails need the [http] door for their links")
        smtp = _smtp(_Reader(source, top.value("smtp", dict), "smtp", _SMTP_KEYS), folder)
        http = attrs.evolve(http, smtp=smtp)
    return LoadedConfig(engine, settings, http)


def _smtp(r: _Reader, folder: Path) -> SmtpSettings:
    host = r.text("host")
    if not _HOST.match(host):
        raise r.error("host", f"expected a host name, got {host!r}")
    port = r.value("port", int, 587)
    if not 1 <= port <= 65535:
        raise r.error("port", f"expected 1 to 65535, got {port}")
    security = r.text("security", "starttls")
    if security not in ("starttls", "ssl", "none"):
        raise r.error("security", f"expected starttls, ssl or none, got {security!r}")
    password = r.text("password_file", None)
    password_file = None if password is None else _file(folder, password)
    if password_file is not None and not password_file.is_file():
        raise r.error("password_file", f"{password_file}: no such file")
    attempts = r.value("attempts", int, 10)
    if not 1 <= attempts <= 100:
        raise r.error("attempts", f"expected 1 to 100, got {attempts}")
    sender = r.text("from")
    if "@" not in sender:
        raise r.error("from", f"expected an e-mail address, got {sender!r}")
    return SmtpSettings(
        host=host,
        port=port,
        security=security,
        user=r.text("user", ""),
        password_file=password_file,
        sender=sender,
        link_base=r.text("link_base", ""),
        timeout=_seconds(r, "timeout", 30.0),
        attempts=attempts,
    )


def _http(r: _Reader, folder: Path) -> HttpSettings:
    listen = r.text("listen", _HTTP_DEFAULTS.listen)
    host, _, port = listen.rpartition(":")
    if not _HOST.match(host) or not port.isdigit() or int(port) > 65535:
        raise r.error("listen", f"expected HOST:PORT, got {listen!r}")
    cert, key = r.text("tls_cert", None), r.text("tls_key", None)
    if (cert is None) != (key is None):
        raise r.error("tls_key" if key is None else "tls_cert", "TLS needs tls_cert and tls_key")
    files = {}
    for name, value in (("tls_cert", cert), ("tls_key", key)):
        if value is not None:
            files[name] = _file(folder, value)
            if not files[name].is_file():
                raise r.error(name, f"{files[name]}: no such file")
    attempts = r.value("callback_attempts", int, _HTTP_DEFAULTS.callback_attempts)
    if not 1 <= attempts <= 100:
        raise r.error("callback_attempts", f"expected 1 to 100, got {attempts}")
    backoff, timeout = (
        _seconds(r, name, getattr(_HTTP_DEFAULTS, name))
        for name in ("callback_backoff", "callback_timeout")
    )
    return HttpSettings(
        listen=listen,
        tls_cert=files.get("tls_cert"),
        tls_key=files.get("tls_key"),
        callback_attempts=attempts,
        callback_backoff=backoff,
        callback_timeout=timeout,
    )


def _seconds(r: _Reader, name: str, default: float) -> float:
    value = r.value(name, (int, float), default)
    if not (math.isfinite(value) and 0 < value <= 3600):
        raise r.error(name, f"expected seconds above 0, at most 3600, got {value}")
    return float(value)


def _http_credentials(r: _Reader, tenant: str, folder: Path) -> list[AtolLogin | KomtetShop]:
    """A tenant's ``http`` list: credential files (``kassa keys atol|komtet``) or inline tables."""
    out: list[AtolLogin | KomtetShop] = []
    for j, entry in enumerate(r.value("http", list, [])):
        where = f"http[{j}]"
        origin = where
        if isinstance(entry, str):
            path = _file(folder, entry)
            try:
                entry = read_credential(path)
            except CredentialError as exc:
                raise r.error(where, str(exc)) from None
            origin = f"{where}: {path}"
        if not isinstance(entry, dict):
            raise r.error(where, f"expected a file name or a table, got {type(entry).__name__}")
        api = entry.get("api")
        if api not in _CREDENTIAL_KEYS:
            raise r.error(where, f'{origin}: api: expected "atol" or "komtet", got {api!r}')
        unknown = sorted(set(entry) - set(_CREDENTIAL_KEYS[api]))
        if unknown:
            raise r.error(where, f"{origin}: unknown key {unknown[0]!r}")
        if api == "komtet":
            out.append(_komtet_shop(r, where, origin, tenant, entry))
            continue
        login, hashed = entry.get("login"), entry.get("password_hash")
        if not isinstance(login, str) or not LOGIN.match(login):
            raise r.error(where, f"{origin}: login: expected 1 to 64 letters, digits, _.@-")
        if not isinstance(hashed, str):
            raise r.error(where, f"{origin}: password_hash: required, a string")
        try:
            check_hash(hashed)
        except CredentialError as exc:
            raise r.error(where, f"{origin}: password_hash: {exc}") from None
        out.append(AtolLogin(tenant, login, hashed))
    return out


def _cabinet_users(r: _Reader, tenant: str) -> list[CabinetUser]:
    """A tenant's ``[[tenants.users]]``: cabinet logins with their role and password hash."""
    out: list[CabinetUser] = []
    for j, entry in enumerate(r.value("users", list, [], "an array of [[tenants.users]]")):
        user = _Reader(r.source, entry, r.where(f"users[{j}]"), ("login", "role", "password_hash"))
        login = user.text("login")
        if not LOGIN.match(login):
            raise user.error("login", "expected 1 to 64 letters, digits, _.@-")
        role = user.text("role")
        if role not in ROLES:
            raise user.error("role", f"expected one of {', '.join(ROLES)}, got {role!r}")
        hashed = user.text("password_hash")
        try:
            check_hash(hashed)
        except CredentialError as exc:
            raise user.error("password_hash", str(exc)) from None
        if any(u.login == login for u in out):
            raise user.error("login", f"{login!r} is listed twice")
        out.append(CabinetUser(tenant, login, role, hashed))
    return out


def _komtet_shop(
    r: _Reader, where: str, origin: str, tenant: str, entry: Mapping[str, Any]
) -> KomtetShop:
    shop_id, secret = entry.get("shop_id"), entry.get("secret")
    if not isinstance(shop_id, str) or not SHOP_ID.match(shop_id):
        raise r.error(where, f"{origin}: shop_id: expected 1 to 64 letters, digits, _.-")
    if not isinstance(secret, str) or len(secret) < 16:
        raise r.error(where, f"{origin}: secret: required, a string of at least 16 characters")
    return KomtetShop(tenant, shop_id, secret)


def _journal(folder: Path, name: str) -> Path | str:
    """An SQLite file beside the config, or a PostgreSQL URL kept as it is."""
    return name if is_url(name) else _file(folder, name)


def _file(folder: Path, name: str) -> Path:
    path = Path(name).expanduser()
    return path if path.is_absolute() else folder / path


def _endpoint(reader: _Reader, key: str, value: str) -> None:
    if not value.startswith(("tcp://", "ipc://")) or len(value) <= len("tcp://"):
        raise reader.error(key, f"expected tcp://HOST:PORT or ipc://PATH, got {value!r}")


def _tenant(r: _Reader, folder: Path, queue: int) -> tuple[TenantConfig, list[bytes]]:
    tenant_id = r.text("id")
    if not TENANT_ID.match(tenant_id):
        raise r.error("id", f"{tenant_id!r}: use 1 to 64 letters, digits, '_', '.' or '-'")
    name = r.text("name", "")
    timezone = r.text("timezone", "Europe/Moscow")
    close_text = r.text("daily_close", None)
    daily_close = None
    if close_text is not None:
        match = re.fullmatch(r"([01][0-9]|2[0-3]):([0-5][0-9])", close_text)
        if match is None:
            raise r.error("daily_close", f"expected HH:MM, got {close_text!r}")
        daily_close = dt.time(int(match[1]), int(match[2]))
    sell_failed_marking = r.value("sell_failed_marking", bool, False, "true or false")
    tenant_queue = r.value("queue", int, queue)
    if tenant_queue < 1:
        raise r.error("queue", f"expected at least 1, got {tenant_queue}")
    entries = r.value("keys", list, [])
    keys: list[bytes] = []
    for j, entry in enumerate(entries):
        where = f"keys[{j}]"
        if not isinstance(entry, str):
            raise r.error(where, f"expected a string, got {type(entry).__name__}")
        keys.append(_client_key(r, where, entry, folder))
    try:
        tenant = TenantConfig(
            tenant_id,
            name=name,
            timezone=timezone,
            daily_close=daily_close,
            queue_limit=tenant_queue,
            sell_failed_marking=sell_failed_marking,
        )
    except ValueError as exc:
        raise r.error("timezone", str(exc).removeprefix("timezone: ")) from None
    return tenant, keys


def _client_key(r: _Reader, where: str, entry: str, folder: Path) -> bytes:
    """A Z85 public key, or the path of a ``.key`` certificate file holding one."""
    if entry.endswith(".key"):
        key_file = _file(folder, entry)
        try:
            public, _ = zmq.auth.load_certificate(key_file)
        except (OSError, ValueError) as exc:
            raise r.error(where, f"{key_file}: {exc}") from None
        try:
            return z85_key(public.decode("ascii", "replace"))
        except ValueError as exc:
            raise r.error(where, f"{key_file}: {exc}") from None
    if entry.endswith(".key_secret"):
        raise r.error(where, "give the client's public .key file, never its secret one")
    try:
        return z85_key(entry)
    except ValueError as exc:
        raise r.error(where, f"expected a Z85 public key or a .key file: {exc}") from None


def _register(r: _Reader, tenants: set[str]) -> RegisterConfig:
    register_id = r.text("id")
    if not _NAME.match(register_id):
        raise r.error("id", f"{register_id!r}: use 1 to 64 letters, digits, '_', '.', ':' or '-'")
    tenant = r.text("tenant")
    if tenant not in tenants:
        raise r.error("tenant", f"no [[tenants]] table has id {tenant!r}")
    group = r.text("group", "main")
    if not _NAME.match(group):
        raise r.error("group", f"{group!r}: use 1 to 64 letters, digits, '_', '.', ':' or '-'")
    protocol = r.text("protocol", "shtrih")
    if protocol not in PROTOCOLS:
        raise r.error("protocol", f"expected one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    tables = TAX_TABLES[protocol]
    table_name = r.text("tax_table", DEFAULT_TAX_TABLES[protocol].name)
    taxes = tables.get(table_name)
    if taxes is None:
        raise r.error(
            "tax_table",
            f"the tax tables of {protocol} registers are {', '.join(tables)}, not {table_name!r}",
        )
    address = r.text("address")
    try:
        connect = connector_for(protocol, address, taxes)
    except ValueError as exc:
        raise r.error("address", str(exc)) from None
    return RegisterConfig(register_id, tenant, connect, group, protocol, address, taxes)


def connector_for(protocol: str, address: str, taxes: TaxTable | None = None) -> Connector:
    """The connector of ``tcp://HOST:PORT`` or ``serial:/dev/X?baud=N``; ValueError if bad."""
    if address.startswith("tcp://"):
        parts = urlsplit(address)
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"{address!r}: the port is not a number 1 to 65535") from None
        if not parts.hostname or port is None or port == 0:
            raise ValueError(f"expected tcp://HOST:PORT, got {address!r}")
        if parts.path or parts.query or parts.fragment or parts.username:
            raise ValueError(f"expected tcp://HOST:PORT and nothing more, got {address!r}")
        return tcp_connector(protocol, parts.hostname, port, taxes=taxes)
    if address.startswith("serial:"):
        rest = address.removeprefix("serial:")
        device, _, query = rest.partition("?")
        if not device.startswith("/"):
            raise ValueError(f"expected serial:/dev/NAME[?baud=N], got {address!r}")
        options = parse_qs(query, keep_blank_values=True, strict_parsing=False)
        unknown = set(options) - {"baud"}
        if unknown:
            raise ValueError(f"unknown option {sorted(unknown)[0]!r}; only baud is known")
        baud = 115_200
        if "baud" in options:
            text = options["baud"][-1]
            if not text.isdigit() or not 300 <= int(text) <= 4_000_000:
                raise ValueError(f"baud: expected a rate 300 to 4000000, got {text!r}")
            baud = int(text)
        return serial_connector(protocol, device, baud=baud, taxes=taxes)
    raise ValueError(f"expected tcp://HOST:PORT or serial:/dev/NAME?baud=N, got {address!r}")
