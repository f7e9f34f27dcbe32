"""The KOMTET Kassa API v2-compatible API: what shops' KOMTET SDKs and CMS modules already speak.

A shop's KOMTET client works unchanged once its host is Kassa's base URL and its shop id and
secret are the tenant's (``kassa keys komtet NAME``; cloud-apis.md §2.2):

- ``POST /api/shop/v2/queues/{queue}/task`` a check or correction check → ``{id, external_id,
  print_queue_id, state: "new"}``, once the engine has journaled it;
- ``POST …/queues/{queue}/multi-tasks`` an array of checks, journaled in one commit → an object
  of per-entry answers keyed by the entry's index (``"0"``, ``"1"``, …, in order): a task, or
  an error ``{title, code, description}``; a 503 when the journal could take none of them;
- ``GET /api/shop/v2/tasks/{id}`` → ``{id, external_id, print_queue_id, state,
  error_description, fiscal_data: {i, fn, t, n, fp, s}}`` (the FNS QR parameters); the
  callback POSTed to a task's ``callback_url`` when it ends is the same body;
- ``GET /api/shop/v2/queues/{queue}`` → ``{id, state}``: ``active`` while a register of the
  group is ready, else ``passive``.

Authentication, as KOMTET checks it: ``Authorization`` is the shop id, and
``X-HMAC-Signature`` the hex HMAC-MD5, keyed by the shop's secret, of method + full URL + body
(the URL as the client wrote it: ``http://host:port/api/shop/v2/…``). A proxy that ends TLS
changes the scheme the server sees, so a signature over the ``https`` or the ``http`` form of
the URL is taken; both need the secret. The signature is checked before the body is read as
JSON, so a bad one journals nothing. Callbacks carry the same header over ``POST`` + their URL
+ their body, with the secret of the shop that sent the task (kept in the delivery's kind,
``komtet:SHOP_ID``).

How KOMTET's terms map onto Kassa's: the shop id is one tenant's; a queue id is one of its
register groups; a task id is the Kassa job id (32 hex digits); ``state`` is ``new`` until the
job ends, then ``done`` (fiscalized, or found signed by recovery) or ``error`` with the job's
reason in ``error_description``.

Errors, each ``{title, code, description}`` with the field path leading the description
(KOMTET publishes no code table, so ``code`` is Kassa's stable one):

====  =========================================================================================
HTTP  when
====  =========================================================================================
401   no or unknown ``Authorization``, or a wrong ``X-HMAC-Signature``
404   the queue is not one of the shop's tenant's groups, or no task of the tenant has the id
413   a body over the service's limit (engine/limits.py), refused unread
422   not JSON, not a check (field paths), a receipt that fails its checks; or ``external_id``
      used before: ``external_id.duplicate`` with the first task in ``task``, nothing
      fiscalized again
429   over the tenant's request rate or queue: Retry-After says when
500   a fault of Kassa's own, logged
503   the journal cannot commit (or read) now: Retry-After says when
====  =========================================================================================

Assumptions where the reference is silent: the duplicate answer above (KOMTET documents none);
a company without ``inn`` is refused at ``company.inn`` (Kassa does not guess the shop's INN);
at most :data:`MAX_TASKS` checks in one multi-tasks request.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

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
from engine.http.credentials import KomtetShop, komtet_signature
from engine.journal import Delivery, Job, JobState
from protocols.ingress import IngressError, check_komtet_task, load_json, parse_komtet_task
from protocols.ingress.komtet import REQUEST_TITLE, KomtetProblem, KomtetTask, komtet_error

if TYPE_CHECKING:
    from engine.http.app import HttpDoor

log = logging.getLogger("kassa.http.komtet")

PREFIX = "/api/shop/v2"
#: Checks in one multi-tasks request at most.
MAX_TASKS = 100
#: Job states → KOMTET's task states.
STATE = {
    JobState.ACCEPTED: "new",
    JobState.QUEUED: "new",
    JobState.SENT: "new",
    JobState.IN_DOUBT: "new",
    JobState.FISCALIZED: "done",
    JobState.RESOLVED: "done",
    JobState.FAILED: "error",
}
_TITLES = {
    401: "Ошибка авторизации",
    404: "Не найдено",
    413: "Слишком большой запрос",
    422: REQUEST_TITLE,
    429: "Слишком много запросов",
    500: "Внутренняя ошибка сервера",
    503: "Сервис временно недоступен",
}
DUPLICATE_TITLE = "Задача с таким external_id уже существует"


class Refusal(Exception):
    """An answer in KOMTET's error shape: raise it anywhere in a handler."""

    def __init__(
        self,
        http: int,
        code: str,
        description: str,
        *,
        title: str | None = None,
        retry_after: float | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(http, code, description)
        self.http = http
        self.body: dict[str, Any] = {
            "title": title or _TITLES.get(http, _TITLES[500]),
            "code": code,
            "description": description,
            **(extra or {}),
        }
        self.retry_after = retry_after


def _refusal_of(problems: Sequence[KomtetProblem]) -> Refusal:
    body = komtet_error(problems)
    return Refusal(problems[0].status, body["code"], body["description"], title=body["title"])


class KomtetApi:
    """The routes of the KOMTET v2 API on one :class:`~engine.http.app.HttpDoor`."""

    def __init__(self, door: HttpDoor) -> None:
        self.door = door
        self._groups: frozenset[tuple[str, str]] | None = None

    @property
    def engine(self) -> Engine:
        assert self.door.engine is not None, "the door is not running"
        return self.door.engine

    def routes(self) -> list[BaseRoute]:
        queue = f"{PREFIX}/queues/{{queue_id}}"
        return [
            Route(f"{queue}/task", self._guarded(self.task), methods=["POST"]),
            Route(f"{queue}/multi-tasks", self._guarded(self.multi_tasks), methods=["POST"]),
            Route(queue, self._guarded(self.queue), methods=["GET"]),
            Route(f"{PREFIX}/tasks/{{task_id}}", self._guarded(self.task_info), methods=["GET"]),
        ]

    def register_shape(self) -> None:
        """Refusals of unknown paths and methods under PREFIX are KOMTET's too."""

        def refuse(request: Request, status: int, text: str, headers: Any) -> Response:
            code = "request.not_found" if status == 404 else "request.method_not_allowed"
            answer = _refused(Refusal(status, code if status in (404, 405) else "request", text))
            answer.headers.update(headers)
            return answer

        self.door.shapes[PREFIX] = refuse

    def openapi(self) -> dict[str, Any]:
        from engine.http.openapi import komtet_document

        return komtet_document()

    # --- the guard: every refusal in KOMTET's shape -----------------------------------------

    def _guarded(self, handler: Handler) -> Handler:
        return guarded(
            self.door, handler, Refusal, lambda _, refusal: _refused(refusal), _door_failure
        )

    # --- authentication ---------------------------------------------------------------------

    def _shop(self, request: Request) -> KomtetShop:
        """The shop of the Authorization header, its rate taken (the signature comes later)."""
        shop_id = request.headers.get("authorization", "").strip()
        if not shop_id:
            raise Refusal(401, "auth.missing", "Authorization: required, the shop id")
        shop = self.door.keyring.komtet_shops.get(shop_id)
        if shop is None:
            raise Refusal(401, "auth.unknown_shop", "Authorization: not a shop of this service")
        limits = self.door.limits
        assert limits is not None
        wait = limits.take(shop.tenant, trio.current_time())
        if wait > 0:
            raise Refusal(429, "rate.limited", "$: over the request rate", retry_after=wait)
        return shop

    def _verify(self, request: Request, shop: KomtetShop, body: bytes) -> None:
        """KOMTET's signature over method + full URL + body, in constant time."""
        given = request.headers.get("x-hmac-signature", "").strip().lower()
        if not given:
            raise Refusal(401, "auth.signature", "X-HMAC-Signature: required")
        url = signed_url(request)
        scheme, _, rest = url.partition("://")
        forms = [url, ("https" if scheme == "http" else "http") + "://" + rest]
        good = False
        for form in forms:  # every form is computed: the time does not tell which one matched
            expected = komtet_signature(shop.secret, request.method, form, body)
            good |= hmac.compare_digest(expected, given)
        if not good:
            raise Refusal(
                401,
                "auth.signature",
                "X-HMAC-Signature: not the HMAC-MD5 of method + URL + body with the shop's secret",
            )

    def _group(self, shop: KomtetShop, queue: str) -> str:
        if self._groups is None:
            self._groups = frozenset((r.tenant, r.group) for r in self.engine.config.registers)
        if (shop.tenant, queue) not in self._groups:
            raise Refusal(404, "queue.not_found", f"queue_id: {queue!r} is not a queue of the shop")
        return queue

    async def _signed_body(self, request: Request, shop: KomtetShop, limit: int) -> Any:
        """The body, read within ``limit``, signature checked, as JSON."""
        body = await read_body(request, limit)
        self._verify(request, shop, body)
        if request.method == "GET":
            return None
        try:
            return load_json(body)
        except IngressError as exc:
            problem = exc.problems[0]
            raise Refusal(422, "request.json", f"$: not JSON: {problem.message}") from None

    # --- tasks ------------------------------------------------------------------------------

    async def task(self, request: Request) -> Response:
        shop = self._shop(request)
        sizes = self.door.sizes
        data = await self._signed_body(request, shop, min(sizes.receipt_bytes, sizes.request_bytes))
        group = self._group(shop, request.path_params["queue_id"])
        try:
            parsed = parse_komtet_task(data)
        except IngressError:
            raise _refusal_of(check_komtet_task(data)) from None
        before = time.time()
        try:
            job = await self.engine.submit(
                shop.tenant, parsed.external_id, parsed.receipt, group=group
            )
        except SubmitError as exc:
            raise await self._submit_refusal(exc, shop, data) from None
        await self._callback(job, parsed, shop)
        if job.created < before:  # the journal had it before this request came
            raise self._duplicate(job)
        return json_response(self.task_answer(job))

    async def multi_tasks(self, request: Request) -> Response:
        shop = self._shop(request)
        data = await self._signed_body(request, shop, self.door.sizes.request_bytes)
        group = self._group(shop, request.path_params["queue_id"])
        if not isinstance(data, list) or not data:
            raise Refusal(422, "field.type", "$: expected an array of checks")
        if len(data) > MAX_TASKS:
            raise Refusal(422, "field.too_many", f"$: at most {MAX_TASKS} checks, got {len(data)}")
        answers: dict[str, Any] = {}
        parsed: list[tuple[int, KomtetTask]] = []
        for i, entry in enumerate(data):
            try:
                parsed.append((i, parse_komtet_task(entry)))
            except IngressError:
                answers[str(i)] = _refusal_of(_at(i, check_komtet_task(entry))).body
        jobs: list[tuple[str, Any]] = [(task.external_id, task.receipt) for _, task in parsed]
        before = time.time()
        results = await self.engine.submit_many(shop.tenant, jobs, group=group) if jobs else []
        refused = [result for result in results if isinstance(result, Unavailable)]
        if refused and len(refused) == len(results):  # nothing journaled: the whole, later
            raise unavailable(refused[0])
        for (i, task), result in zip(parsed, results, strict=True):
            if isinstance(result, SubmitError):
                refusal = await self._submit_refusal(result, shop, data[i], index=i)
                answers[str(i)] = refusal.body
                continue
            await self._callback(result, task, shop)
            if result.created < before:
                answers[str(i)] = self._duplicate(result).body
            else:
                answers[str(i)] = self.task_answer(result)
        return json_response({str(i): answers[str(i)] for i in range(len(data))})

    async def _callback(self, job: Job, task: KomtetTask, shop: KomtetShop) -> None:
        """Journal the task's callback as the shop's (``komtet:SHOP_ID``): KOMTET signs it with
        the secret of the shop that sent the task, which the receiving shop checks."""
        callback = None
        if task.callback_url is not None:
            callback = (f"komtet:{shop.shop_id}", task.callback_url)
        await self.door.journal_deliveries(job, task.receipt, callback)

    async def _submit_refusal(
        self, exc: SubmitError, shop: KomtetShop, data: Any, *, index: int | None = None
    ) -> Refusal:
        if isinstance(exc, Conflict):
            job = await self.engine.job(shop.tenant, exc.job_id)
            assert job is not None
            return self._duplicate(job)
        if isinstance(exc, ValidationFailed):
            found = exc.problems
            today = self.engine.today(shop.tenant)
            problems = check_komtet_task(data, today=today, more=lambda _: found)
            if not problems:
                where = "$" if index is None else f"[{index}]"
                return Refusal(422, "receipt.invalid", f"{where}: {exc}")
            return _refusal_of(problems if index is None else _at(index, problems))
        if isinstance(exc, Busy):
            return Refusal(429, "queue.full", f"$: {exc}", retry_after=exc.retry_after)
        if isinstance(exc, Unavailable):
            return unavailable(exc)
        if isinstance(exc, JournalBehind):  # held until an operator acts: no Retry-After
            return Refusal(503, "unavailable", f"$: {exc}")
        return Refusal(422, exc.code, f"{exc.path or '$'}: {exc}")

    def _duplicate(self, job: Job) -> Refusal:
        first = self.task_answer(job)
        description = (
            f"external_id: {job.external_id!r} is task {job.id} of queue "
            f"{first['print_queue_id']!r}; nothing was fiscalized again"
        )
        return Refusal(
            422,
            "external_id.duplicate",
            description,
            title=DUPLICATE_TITLE,
            extra={"task": first},
        )

    def task_answer(self, job: Job) -> dict[str, Any]:
        return {
            "id": job.id,
            "external_id": job.external_id,
            "print_queue_id": body_group(job.body),
            "state": STATE[job.state],
        }

    # --- task info, queues, callbacks -------------------------------------------------------

    async def task_info(self, request: Request) -> Response:
        shop = self._shop(request)
        await self._signed_body(request, shop, 0)
        given = request.path_params["task_id"]
        job = await self.engine.job(shop.tenant, given) if _job_id(given) else None
        if job is None:
            raise Refusal(404, "task.not_found", f"task_id: no task {given!r} of the shop")
        return json_response(await self.info_body(job))

    async def queue(self, request: Request) -> Response:
        shop = self._shop(request)
        await self._signed_body(request, shop, 0)
        group = self._group(shop, request.path_params["queue_id"])
        ready = any(
            r["group"] == group and r["state"] == "ready"
            for r in self.engine.register_states(shop.tenant)
        )
        return json_response({"id": group, "state": "active" if ready else "passive"})

    async def info_body(self, job: Job) -> dict[str, Any]:
        """KOMTET's task info, which is also its callback's body."""
        state = STATE[job.state]
        fiscal_data = None
        if state == "done":
            view = await self.engine.receipt_view(job.tenant, job.id)
            if view is not None:
                qr = {k: v[0] for k, v in parse_qs(view.qr).items()}
                fiscal_data = {
                    "i": qr.get("i", str(view.fd_number)),
                    "fn": qr.get("fn", view.fn_number),
                    "t": qr.get("t", view.time.strftime("%Y%m%dT%H%M")),
                    "n": int(qr.get("n", view.operation)),
                    "fp": qr.get("fp", str(view.printed_sign)),
                    "s": qr.get("s", f"{view.total // 100}.{view.total % 100:02d}"),
                }
        return {
            **self.task_answer(job),
            "error_description": (job.error or "failed") if state == "error" else None,
            "fiscal_data": fiscal_data,
        }

    async def render_callback(self, job: Job, delivery: Delivery) -> Outgoing:
        """The task info, signed with the secret of the shop that sent the task; a delivery
        journaled without its shop (before it was kept), or whose shop was revoked since, is
        signed with the tenant's first shop by shop id, as the only secret left to sign with."""
        body = json_bytes(await self.info_body(job))
        shops = self.door.keyring.komtet_shops
        sender = shops.get(delivery.kind.partition(":")[2])
        if sender is None or sender.tenant != job.tenant:
            sender = min(
                (s for s in shops.values() if s.tenant == job.tenant),
                key=lambda s: s.shop_id,
                default=None,
            )
        headers = {}
        if sender is not None:
            headers["X-HMAC-Signature"] = komtet_signature(
                sender.secret, "POST", delivery.url, body
            )
        return Outgoing(body, headers)


def _job_id(text: str) -> bool:
    return len(text) == 32 and all(c in "0123456789abcdef" for c in text)


def _at(index: int, problems: Sequence[KomtetProblem]) -> list[KomtetProblem]:
    """Problems of entry ``index`` of a multi-tasks array, their paths prefixed with it."""
    out = []
    for p in problems:
        path = f"[{index}]" if p.path in ("", "$") else f"[{index}].{p.path}"
        description = p.description.replace(f"{p.path}: ", f"{path}: ", 1)
        out.append(KomtetProblem(path, p.status, p.code, p.title, description, p.kassa_path))
    return out


def signed_url(request: Request) -> str:
    """The full URL as the client sent it, the one its SDK signed: the request target's bytes
    as they came (percent-encoding and all), not Starlette's rebuilt URL, which decodes and
    re-quotes the path."""
    url = request.url  # the scheme and Host the client addressed
    target = request.scope.get("raw_path") or url.path.encode()
    query = request.scope.get("query_string") or b""
    if query:
        target += b"?" + query
    return f"{url.scheme}://{url.netloc}{target.decode('latin-1')}"


def _door_failure(http: int, text: str, retry_after: float | None) -> Refusal:
    """What the door finds, in KOMTET's shape."""
    code = {413: "request.too_large", 503: "unavailable"}.get(http, "internal")
    return Refusal(http, code, f"$: {text}", retry_after=retry_after)


def unavailable(exc: Unavailable) -> Refusal:
    return Refusal(503, "unavailable", f"$: {exc}", retry_after=exc.retry_after)


def _refused(refusal: Refusal) -> Response:
    headers = retry_after(refusal.retry_after)
    return json_response(refusal.body, refusal.http, headers)
