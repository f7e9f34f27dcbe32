"""The ATOL Online v5-compatible API (API АТОЛ Онлайн v5): what shops' ATOL clients already speak.

A shop's ATOL client, SDK or CMS module works unchanged once its base address is Kassa's
``{base}/possystem/v5`` and its login, password and group code are the tenant's
(cloud-apis.md §2.1 and §2.4, the table of the v4 document 5.15 as [AT4] transcribes it):

- ``POST getToken`` ``{login, pass[, source]}`` → ``{error, token, timestamp}``; the token lives
  24 hours (:mod:`engine.http.credentials`). ``GET getToken?login=…&pass=…`` as older clients do.
- ``POST {group_code}/{operation}`` with the ``Token`` header (or ``?token=``): sell,
  sell_refund, buy, buy_refund and the four ``*_correction``; → ``{uuid, status, error,
  timestamp}``. The body is read by :func:`protocols.ingress.parse_atol_v5` and submitted to the
  engine, which journals it before this answers.
- ``GET {group_code}/report/{uuid}`` → the report; the callback POSTed to
  ``service.callback_url`` when the job ends is the same body.

How ATOL's terms map onto Kassa's:

- the token's login is one tenant's; ``group_code`` is one of that tenant's register groups;
- ``uuid`` is the Kassa job id (32 hex digits) written as a UUID;
- ``external_id`` is the job's. ATOL keeps it unique within a group, Kassa within the tenant:
  a repeat, with any receipt and in any group, answers 33 with the first job's uuid and
  fiscalizes nothing;
- ``status``: ``wait`` (no error, no payload: ATOL's 34 is not used) while the job is
  accepted, queued, sent or in doubt; ``done`` once
  fiscalized (or found signed by recovery); ``fail`` once failed. A failure's ``error`` is of
  type ``driver`` when the register refused, ``agent`` when the signed receipt failed Kassa's
  checks of it, ``system`` otherwise (cancelled), with the job's own words as its text;
- a report carries, beyond ATOL's fields, ``callback`` {state, attempts, last_error} when the
  job has a callback, so that a dead one shows.

Errors, each ``{error_id, code, text, type: "system"}`` with the field paths in its text:

====  ======  =============================================================================
code  HTTP    when
====  ======  =============================================================================
10    401     no token, or not one of Kassa's (or its password was rotated)
11    401     the token has expired
12    401     wrong login or password
13    400     the request does not match the schema (field paths in the text)
20    401     the group code is not one of the token's tenant's
30    400     not a UUID, or no job of this group has it
31    400     an operation ATOL does not have
32    400     the receipt fails its checks (field paths in the text); nothing is journaled
33    400     the external_id was used before: the first job's uuid, status ``wait``
40    400     not JSON
41    415     a Content-Type other than application/json (charset utf-8 if any)
0     429     over the tenant's request rate, or its queue is full: Retry-After says when
40    413     a body over the service's limit (engine/limits.py), refused unread
40    404     a path under /possystem/v5 that is no route of the API
40    405     a method the path does not take (Allow lists those it does)
50    500     a fault of Kassa's own, logged
====  ======  =============================================================================

Not carried: ``ism_optional`` (Kassa sells when the marking system is silent, as
``ism_optional: true`` would), ``marks_result`` and ``ofd_receipt_url`` in reports.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import trio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from engine.engine import (
    Busy,
    Conflict,
    Engine,
    JournalBehind,
    SubmitError,
    Unavailable,
    ValidationFailed,
    body_group,
)
from engine.http.app import Handler, guarded, json_bytes, json_response, read_body, retry_after
from engine.http.callbacks import Outgoing
from engine.http.credentials import AtolLogin, TokenProblem, verify_password
from engine.journal import Delivery, Job, JobState
from engine.tenancy import TokenBucket
from engine.times import zone
from protocols.ingress import IngressError, check_atol_v5, load_json, parse_atol_v5
from protocols.ingress.atol_v5 import OPERATIONS, AtolProblem, atol_code, atol_error
from protocols.tlv import TlvError, decode_document

if TYPE_CHECKING:
    from engine.http.app import HttpDoor

log = logging.getLogger("kassa.http.atol")

PREFIX = "/possystem/v5"
#: ATOL's texts of its system errors (the v4 document 5.15, p. 63, as [AT4] transcribes it).
TEXTS = {
    0: "Неизвестная ошибка обработки",
    10: "Не распознан токен запроса",
    11: "Переданный токен не активен",
    12: "Неверный логин или пароль",
    13: "Ошибка валидации входящего запроса",
    20: "Код группы, указанный в запросе, не соответствует токену",
    30: "Передан некорректный UUID",
    31: "Операция не поддерживается",
    32: "Ошибка валидации входного чека",
    33: "В системе существует чек с external_id и group_code",
    40: "Некорректный запрос",
    41: "Некорректный Content-Type",
    50: "Ошибка сервера. Обратитесь к Администратору",
}
#: Job states → ATOL's statuses.
STATUS = {
    JobState.ACCEPTED: "wait",
    JobState.QUEUED: "wait",
    JobState.SENT: "wait",
    JobState.IN_DOUBT: "wait",
    JobState.FISCALIZED: "done",
    JobState.RESOLVED: "done",
    JobState.FAILED: "fail",
}
#: Where timestamps go before a tenant is known: ATOL writes Moscow time.
DEFAULT_ZONE = "Europe/Moscow"
#: Passwords getToken checks at once, in threads: scrypt takes tens of ms and 16 MiB each.
HASHING = 2
#: The server name of reports (ATOL's daemon_code).
DAEMON_CODE = "kassa"
_KOPECK = Decimal("0.01")


class Refusal(Exception):
    """An answer in ATOL's error shape: raise it anywhere in a handler."""

    def __init__(
        self,
        code: int,
        detail: str = "",
        *,
        http: int = 400,
        status: str | None = None,
        uuid: str | None = None,
        retry_after: float | None = None,
        text: str | None = None,
    ) -> None:
        super().__init__(code, detail)
        self.code = code
        self.text = text or TEXTS.get(code, TEXTS[0]) + (f": {detail}" if detail else "")
        self.http = http
        self.status = status
        self.uuid = uuid
        self.retry_after = retry_after


def _door_failure(http: int, detail: str, retry_after: float | None) -> Refusal:
    """What the door finds, in ATOL's codes: 40 a body over the limit, 0 try later, 50 a bug."""
    code = {413: 40, 503: 0}.get(http, 50)
    return Refusal(code, "" if code == 50 else detail, http=http, retry_after=retry_after)


def error_object(code: int, text: str, kind: str = "system") -> dict[str, Any]:
    """ATOL's ``error``: a fresh error_id for support, the code, the text, the type."""
    return {"error_id": str(uuid.uuid4()), "code": code, "text": text, "type": kind}


def timestamp(unix: float, time_zone: str = DEFAULT_ZONE) -> str:
    """ATOL's ``dd.mm.yyyy HH:MM:SS``, in the tenant's zone."""
    return dt.datetime.fromtimestamp(unix, zone(time_zone)).strftime("%d.%m.%Y %H:%M:%S")


def job_uuid(job_id: str) -> str:
    """A Kassa job id (32 hex digits) as the UUID ATOL clients expect."""
    return str(uuid.UUID(hex=job_id))


def rubles(kopecks: int) -> Decimal:
    return (Decimal(kopecks) / 100).quantize(_KOPECK)


class AtolApi:
    """The routes of the ATOL v5 API on one :class:`~engine.http.app.HttpDoor`."""

    def __init__(self, door: HttpDoor) -> None:
        self.door = door
        self._groups: frozenset[tuple[str, str]] | None = None
        self._hashing = trio.CapacityLimiter(HASHING)
        #: Logins no tenant has share one bucket: guessing costs scrypt, so it is bounded too.
        self._strangers = TokenBucket(door.rate, door.burst)

    @property
    def engine(self) -> Engine:
        assert self.door.engine is not None, "the door is not running"
        return self.door.engine

    def routes(self) -> list[BaseRoute]:
        return [
            Route(f"{PREFIX}/getToken", self._guarded(self.get_token), methods=["GET", "POST"]),
            Route(
                f"{PREFIX}/{{group_code}}/report/{{uuid}}",
                self._guarded(self.report),
                methods=["GET"],
            ),
            Route(
                f"{PREFIX}/{{group_code}}/{{operation}}",
                self._guarded(self.register),
                methods=["POST"],
            ),
        ]

    def register_shape(self) -> None:
        """Refusals of unknown paths and methods under PREFIX are ATOL's too (code 40)."""

        def refuse(request: Request, status: int, text: str, headers: Any) -> Response:
            refusal = Refusal(40, text, http=status)
            answer = self._refused(request, refusal)
            answer.headers.update(headers)
            return answer

        self.door.shapes[PREFIX] = refuse

    def openapi(self) -> dict[str, Any]:
        from engine.http.openapi import atol_document

        return atol_document()

    # --- the guard: every refusal in ATOL's shape -------------------------------------------

    def _guarded(self, handler: Handler) -> Handler:
        return guarded(self.door, handler, Refusal, self._refused, _door_failure)

    def _refused(self, request: Request, refusal: Refusal) -> Response:
        body: dict[str, Any] = {"error": error_object(refusal.code, refusal.text)}
        if request.url.path.endswith("/getToken"):
            body = {"error": body["error"], "token": None}
        else:
            body = {"uuid": refusal.uuid, "status": refusal.status or "fail", **body}
        body["timestamp"] = timestamp(time.time())
        headers = retry_after(refusal.retry_after)
        return json_response(body, refusal.http, headers)

    # --- authentication ---------------------------------------------------------------------

    def _rate(self, tenant: str) -> None:
        limits = self.door.limits
        assert limits is not None
        wait = limits.take(tenant, trio.current_time())
        if wait > 0:
            raise Refusal(0, "over the request rate", http=429, retry_after=wait)

    def _login(self, request: Request, group: str) -> AtolLogin:
        """The token's login, its rate taken; refused unless it may use ``group``."""
        token = request.headers.get("token") or request.query_params.get("token")
        if not token:
            raise Refusal(10, "no Token header", http=401)
        try:
            login = self.door.tokens.read(token, self.door.keyring.atol_logins, time.time())
        except TokenProblem as exc:
            raise Refusal(11 if exc.expired else 10, str(exc), http=401) from None
        self._rate(login.tenant)
        if self._groups is None:
            self._groups = frozenset((r.tenant, r.group) for r in self.engine.config.registers)
        if (login.tenant, group) not in self._groups:
            raise Refusal(20, f"group_code {group!r}", http=401)
        return login

    async def get_token(self, request: Request) -> Response:
        if request.method == "GET":
            fields: Any = dict(request.query_params)
        else:
            _json_content(request)
            body = await read_body(request, self.door.sizes.receipt_bytes)
            try:
                fields = load_json(body)
            except IngressError as exc:
                raise Refusal(40, exc.problems[0].message) from None
        if not isinstance(fields, dict):
            raise Refusal(13, "$: expected a JSON object")
        for key in ("login", "pass"):
            if not isinstance(fields.get(key), str) or not fields[key]:
                raise Refusal(13, f"{key}: required, a string")
        login = self.door.keyring.atol_logins.get(fields["login"])
        if login is not None:
            self._rate(login.tenant)
        else:
            wait = self._strangers.take(trio.current_time())
            if wait > 0:
                raise Refusal(0, "over the request rate", http=429, retry_after=wait)
        hashed = login.password_hash if login is not None else _DECOY
        async with self._hashing:
            good = await trio.to_thread.run_sync(verify_password, fields["pass"], hashed)
        if login is None or not good:
            raise Refusal(12, http=401)
        zone_name = self.engine.tenants[login.tenant].timezone
        token = self.door.tokens.issue(login, time.time())
        return json_response({"error": None, "token": token, "timestamp": _now(zone_name)})

    # --- registration -----------------------------------------------------------------------

    async def register(self, request: Request) -> Response:
        group, operation = request.path_params["group_code"], request.path_params["operation"]
        login = self._login(request, group)
        tenant = login.tenant
        _json_content(request)
        if operation not in OPERATIONS:
            raise Refusal(31, f"operation: {operation!r}")
        sizes = self.door.sizes
        body = await read_body(request, min(sizes.receipt_bytes, sizes.request_bytes))
        try:
            data = load_json(body)
        except IngressError as exc:
            raise Refusal(40, exc.problems[0].message) from None
        tax_system = self._tax_system(tenant, group)
        try:
            parsed = parse_atol_v5(operation, data, tax_system=tax_system)
        except IngressError as exc:
            problems = [
                AtolProblem(p.path, atol_code(p.code), p.code, p.path, p.message)
                for p in exc.problems
            ]
            raise _problems(problems) from None
        engine = self.engine
        before = time.time()
        try:
            job = await engine.submit(tenant, parsed.external_id, parsed.receipt, group=group)
        except Conflict as exc:
            raise self._duplicate(exc.job_id, parsed.external_id, group) from None
        except ValidationFailed as exc:
            found = exc.problems
            today = engine.today(tenant)
            problems = check_atol_v5(
                operation, data, tax_system=tax_system, today=today, more=lambda _: found
            )
            raise _problems(problems or [_whole(exc)]) from None
        except Busy as exc:
            raise Refusal(0, str(exc), http=429, retry_after=exc.retry_after) from None
        except Unavailable as exc:  # an engine that cannot commit now
            raise Refusal(0, str(exc), http=503, retry_after=exc.retry_after) from None
        except JournalBehind as exc:  # held until an operator acts: no time to retry after
            raise Refusal(0, str(exc), http=503) from None
        except SubmitError as exc:  # the engine's other refusals name their own path
            raise Refusal(13, f"{exc.path or '$'}: {exc}") from None
        callback = None if parsed.callback_url is None else ("atol", parsed.callback_url)
        await self.door.journal_deliveries(job, parsed.receipt, callback)
        if job.created < before:  # the journal had it before this request came
            raise self._duplicate(job.id, parsed.external_id, group)
        zone_name = engine.tenants[tenant].timezone
        answer = {"uuid": job_uuid(job.id), "status": "wait", "error": None}
        return json_response({**answer, "timestamp": _now(zone_name)})

    def _duplicate(self, job_id: str, external_id: str, group: str) -> Refusal:
        text = f"В системе существует чек с external_id : {external_id} и group_code: {group}"
        return Refusal(33, status="wait", uuid=job_uuid(job_id), text=text)

    def _tax_system(self, tenant: str, group: str) -> int | None:
        """The group's one tax system, for a body without ``company.sno`` (as ATOL does)."""
        systems = {p.tax_systems for p in self.engine.group_profiles(tenant, group)}
        if len(systems) != 1:
            return None
        (only,) = systems
        if only is None or only & (only - 1):
            return None
        return only

    # --- reports and callbacks --------------------------------------------------------------

    async def report(self, request: Request) -> Response:
        group, given = request.path_params["group_code"], request.path_params["uuid"]
        login = self._login(request, group)
        try:
            job_id = uuid.UUID(given).hex
        except ValueError:
            raise Refusal(30, f'"{given}"', uuid=given) from None
        job = await self.engine.job(login.tenant, job_id)
        if job is None or body_group(job.body) != group:
            raise Refusal(30, f'"{given}" не найден', uuid=given)
        deliveries = await self.engine.deliveries(job)
        delivery = next((d for d in deliveries if d.kind == "atol"), None)
        body = await self.report_body(job, delivery)
        if delivery is not None:
            body["callback"] = {
                "state": delivery.state.value,
                "attempts": delivery.attempts,
                "last_error": delivery.last_error or None,
            }
        return json_response(body)

    async def render_callback(self, job: Job, delivery: Delivery) -> Outgoing:
        return Outgoing(json_bytes(await self.report_body(job, delivery)))

    async def report_body(self, job: Job, delivery: Delivery | None) -> dict[str, Any]:
        """ATOL's report of a job, which is also its callback's body."""
        engine = self.engine
        zone_name = engine.tenants[job.tenant].timezone
        status = STATUS[job.state]
        payload = await self._payload(job) if status == "done" else None
        error = None
        if status == "fail":
            error = error_object(*_failure(job.error or "failed"))
        return {
            "uuid": job_uuid(job.id),
            "error": error,
            "status": status,
            "payload": payload,
            "timestamp": timestamp(job.updated, zone_name),
            "group_code": body_group(job.body),
            "daemon_code": DAEMON_CODE,
            "device_code": job.register_id or "",
            "external_id": job.external_id,
            "callback_url": "" if delivery is None else delivery.url,
        }

    async def _payload(self, job: Job) -> dict[str, Any] | None:
        engine = self.engine
        view = await engine.receipt_view(job.tenant, job.id)
        result = await engine.result(job.tenant, job.id)
        if view is None or result is None:
            return None
        try:
            fields = decode_document(result.document).fields
        except TlvError:
            fields = {}
        return {
            "total": rubles(view.total),
            "fns_site": str(fields.get(1060) or "www.nalog.gov.ru").strip(),
            "fn_number": view.fn_number,
            "shift_number": view.shift_number,
            "receipt_datetime": view.time.strftime("%d.%m.%Y %H:%M:%S"),
            "fiscal_receipt_number": view.receipt_number,
            "fiscal_document_number": view.fd_number,
            "ecr_registration_number": view.registration_number.strip(),
            "fiscal_document_attribute": view.printed_sign,
            "ofd_inn": str(fields.get(1017) or "").strip(),
        }


#: A well-formed hash no password matches, checked for unknown logins so that they take as
#: long as known ones.
_DECOY = "scrypt$16384$8$1$a2Fzc2EtZGVjb3ktc2FsdA$" + "A" * 43


def _now(time_zone: str) -> str:
    return timestamp(time.time(), time_zone)


def _json_content(request: Request) -> None:
    """ATOL wants ``application/json; charset=utf-8`` (41 otherwise); a missing charset is
    UTF-8 by JSON's own rule, so it passes."""
    given = request.headers.get("content-type", "")
    kind, _, rest = given.partition(";")
    charset = ""
    for part in rest.split(";"):
        name, _, value = part.strip().partition("=")
        if name.lower() == "charset":
            charset = value.strip().strip('"').lower()
    if kind.strip().lower() != "application/json" or charset not in ("", "utf-8", "utf8"):
        raise Refusal(41, repr(given), http=415)


def _problems(problems: list[AtolProblem]) -> Refusal:
    error = atol_error(problems)
    code = int(error["code"])
    return Refusal(code, error["text"].partition(": ")[2], status="fail")


def _whole(exc: ValidationFailed) -> AtolProblem:
    return AtolProblem("receipt", 32, "validation", "", str(exc))


def _failure(error: str) -> tuple[int, str, str]:
    """A failed job's (code, text, type) in ATOL's terms, from the journaled reason."""
    if error.startswith("the register refused"):
        return 1, error, "driver"
    if error.startswith("the signed receipt failed") or error.startswith("the register's answer"):
        return 1, error, "agent"
    return 0, error, "system"
