"""The cabinet's pages under ``/cabinet`` of the HTTP door: login, dashboard, receipts.

A peer of the API doors (DESIGN.md, "Front doors"): it reads the engine's API for the tenant of
the signed-in user and owns no fiscal logic. Pages are Jinja2 templates with autoescape; every
form carries the session's CSRF token and every POST is refused (403) without it. Whatever is
another tenant's is answered 404, exactly like what does not exist, so that no id can be
probed from another tenant's session.
"""

from __future__ import annotations

import datetime as dt
import email.parser
import email.policy
import hmac
import logging
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

import attrs
import jinja2
import trio
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route

from engine.cabinet.credentials import CredentialsPage
from engine.cabinet.users import (
    RIGHTS,
    ROLES,
    CabinetUser,
    LoginThrottle,
    Session,
    Sessions,
    may,
)
from engine.drivers.base import DriverError, LinkLost
from engine.engine import Busy, Engine, SubmitError, body_group, body_receipt
from engine.export import ExportError
from engine.http.credentials import hash_password, verify_password
from engine.journal import JobState, ReceiptQuery
from engine.reports import (
    PAYMENT_FIELDS,
    OperationsReport,
    ReceiptRecord,
    ReceiptView,
    operation_label,
    receipt_view,
    roubles,
    vat_label,
)
from engine.shifts import RegisterView
from engine.times import zone
from protocols.documents.model import Receipt
from protocols.errors import ProtocolError

if TYPE_CHECKING:
    from engine.http.app import HttpDoor

log = logging.getLogger("kassa.cabinet")

PREFIX = "/cabinet"
SESSION_COOKIE = "kassa_session"
LOGIN_COOKIE = "kassa_login_csrf"  # the login form's double-submit token: no session yet
PAGE_SIZE = 50
#: A shift may stay open 24 hours (54-FZ); warn this long before.
SHIFT_LIMIT = 24 * 3600
SHIFT_WARNING = 22 * 3600
#: Warn this many days before срок действия ФН: the ФН's own flag 1051 (ключи ФП, ≤ 30 days,
#: registers.md §3.3 table 9) warns at the same point.
FN_EXPIRY_WARNING_DAYS = 30
#: The oldest document not sent to the OFD: warn after 3 days; the ФН blocks new documents at
#: 30 calendar days (ФН code 15h, registers.md §3.4 and §4.4, 54-FZ), so 25 is an error.
OFD_WARNING_DAYS = 3
OFD_ERROR_DAYS = 25
OFD_BLOCK_DAYS = 30
STATES_RU = {
    "accepted": "принят",
    "queued": "в очереди",
    "sent": "отправлен в ФН",
    "in_doubt": "проверяется",
    "fiscalized": "фискализирован",
    "failed": "ошибка",
    "resolved": "разрешён вручную",
}
PAYMENT_KINDS = (
    ("cash", "наличными"),
    ("electronic", "безналичными"),
    ("prepaid", "предоплатой"),
    ("credit", "постоплатой"),
    ("provision", "встречным предоставлением"),
)
REFUNDS = {1: 2, 3: 4}  # приход → возврат прихода, расход → возврат расхода
#: The forms of a download: engine.export's name → (its label, the file's extension and type).
EXPORT_FORMS = {
    "csv": ("CSV для таблиц", "csv", "text/csv; charset=utf-8"),
    "jsonl": ("JSON Lines", "jsonl", "application/x-ndjson; charset=utf-8"),
    "fns": ("ФНС-JSON", "fns.jsonl", "application/x-ndjson; charset=utf-8"),
}
#: Characters of an export written per heavy-thread call: a few hundred documents.
EXPORT_CHUNK = 64 * 1024
#: What a shift button did, by the code its redirect names: no text travels in the URL.
SHIFT_NOTICES = {
    "opened": "Смена открыта.",
    "closed": "Смена закрыта.",
    "was-open": "Смена уже была открыта.",
    "was-closed": "Смена уже была закрыта.",
}
#: Operations that bring money in (приход, возврат расхода), as the report nets them.
INCOME = frozenset({1, 4})
RECONCILIATION_RU = {
    "match": "сходится с ФН",
    "mismatch": "расходится с ФН",
    "open": "смена открыта",
}
#: The chart's size in SVG units: a bar per day across CHART_WIDTH.
CHART_WIDTH, CHART_HEIGHT = 700, 160
#: The longest period a page or download covers at once: bounds a request's work.
MAX_PERIOD_DAYS = 366
#: The cabinet's icon: a receipt with a torn edge, in the header's colour.
FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    '<path d="M3 1h10v13l-2-1.5-2 1.5-2-1.5-2 1.5-2-1.5z" fill="#234"/>'
    '<path d="M5 4h6M5 7h6M5 10h4" stroke="#fff" stroke-width="1.2"/></svg>'
)
_ROUBLES = re.compile(r"\A([0-9]{1,15})(?:[.,]([0-9]{1,2}))?\Z")
#: The largest sum an FFD document holds (6 bytes of kopecks).
MAX_KOPECKS = 2**48 - 1
#: The days a filter or report may name.
FIRST_DAY, LAST_DAY = dt.date(2000, 1, 1), dt.date(2999, 12, 31)
#: The largest form body read: the biggest form (a correction's) is a few kilobytes.
FORM_BYTES = 64 * 1024
#: An upload page's (the branding's): a 256 KB logo, as a file part or base64, and its fields.
UPLOAD_BYTES = 512 * 1024
#: The most fields a form may have (parse_qs's max_num_fields; parts of a multipart form):
#: the cashier's form has two a product (catalogue.MAX_PRODUCTS).
FORM_FIELDS = 2048
#: A fixed hash checked for an unknown login, so that a miss costs as long as a wrong password.
_DECOY = hash_password(secrets.token_urlsafe(12))


class Refusal(Exception):
    """A page answered with an error page: its HTTP status and Russian text."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(status, text)
        self.status = status
        self.text = text


Page = Callable[[Request, Session], Awaitable[Response]]


def money_ru(kopecks: int | None) -> str:
    return "—" if kopecks is None else roubles(kopecks).replace(".", ",")


def typed_kopecks(text: str) -> int:
    """Roubles typed in a filter («123,45» or «123.45») as kopecks; ValueError if not money.

    ASCII digits only (``str.isdigit`` takes «١٠٠» too), and no more than a 6-byte FFD sum
    holds, so that no typed amount reaches the journal or the register as an overflow.
    """
    match = _ROUBLES.match(text.strip())
    if match is None:
        raise ValueError(text)
    kopecks = int(match[1]) * 100 + int((match[2] or "").ljust(2, "0"))
    if kopecks > MAX_KOPECKS:
        raise ValueError(text)
    return kopecks


def typed_day(text: str) -> dt.date:
    """A date typed as ГГГГ-ММ-ДД, within the years a cash register lives; ValueError if not.

    The bound keeps «по» + 1 day and the tenant's midnight away from ``date.max``.
    """
    day = dt.date.fromisoformat(text)
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(text)
    return day


class Cabinet:
    """The cabinet of one HTTP door; see the module docstring."""

    def __init__(self, door: HttpDoor, key: bytes) -> None:
        self.door = door
        self.users: Mapping[str, CabinetUser] = door.settings.cabinet_users
        self.sessions = Sessions(key)
        self.throttle = LoginThrottle()
        self.secure = door.settings.tls_cert is not None  # cookies only over TLS then
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("engine.cabinet", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.templates.filters["money"] = money_ru
        self.templates.globals["prefix"] = PREFIX

    # --- plumbing -------------------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        assert self.door.engine is not None, "the door serves no engine yet"
        return self.door.engine

    def now(self) -> float:
        return self.engine.config.wall_clock()

    def render(self, name: str, code: int = 200, /, **values: Any) -> HTMLResponse:
        html = self.templates.get_template(name).render(**values)
        headers = {
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
            "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'",
            "Referrer-Policy": "same-origin",
        }
        return HTMLResponse(html, status_code=code, headers=headers)

    def refusal(
        self, request: Request, status: int, text: str, headers: Mapping[str, str]
    ) -> Response:
        """An error page (the door's unknown path or method under /cabinet, and Refusal)."""
        response = self.render("error.html", status, status=status, text=text, session=None)
        response.headers.update(headers)
        return response

    def register_shape(self) -> None:
        self.door.shapes[PREFIX] = self.refusal

    def _guarded(self, handler: Callable[[Request], Awaitable[Response]]) -> Any:
        from engine.http.app import guarded

        def answer(request: Request, refusal: Refusal) -> Response:
            return self.refusal(request, refusal.status, refusal.text, {})

        def failure(status: int, text: str, retry_after: float | None) -> Exception:
            words = {413: "Слишком большой запрос.", 503: "Журнал временно недоступен, повторите."}
            return Refusal(status, words.get(status, "Внутренняя ошибка, она записана в журнал."))

        return guarded(self.door, handler, Refusal, answer, failure)

    def session_of(self, request: Request) -> Session | None:
        cookie = request.cookies.get(SESSION_COOKIE, "")
        return self.sessions.read(cookie, self.users, self.now()) if cookie else None

    def page(self, action: str, handler: Page, *, post: bool = False, upload: bool = False) -> Any:
        """``handler`` for signed-in users whose role may do ``action``; a POST also needs the
        session's CSRF token in its form. Only an ``upload`` page takes multipart forms and
        bodies above :data:`FORM_BYTES`."""

        async def endpoint(request: Request) -> Response:
            session = self.session_of(request)
            if session is None:
                if post:
                    raise Refusal(403, "Сессия истекла: войдите снова.")
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"{PREFIX}/login?{urlencode({'next': target})}", 303)
            if not may(session.user.role, action):
                raise Refusal(403, "Этот раздел недоступен вашей роли.")
            if post:
                form = await self.form(request, upload=upload)
                if not self.sessions.csrf_ok(session, form.get("csrf", "")):
                    raise Refusal(403, "Форма устарела или пришла с чужого сайта (CSRF).")
                request.state.form = form
            return await handler(request, session)

        return self._guarded(endpoint)

    async def form(self, request: Request, *, upload: bool = False) -> dict[str, str]:
        """A form's fields (the last value of each); an ``upload`` page's multipart files go to
        ``request.state.files`` (name → bytes).

        The body is read under :data:`FORM_BYTES` (an upload page's: :data:`UPLOAD_BYTES`), so
        that the login form, which anyone may post, cannot make the loop parse megabytes for
        every tenant; an upload is parsed in a worker thread.
        """
        from engine.http.app import read_body

        request.state.files = {}
        header = request.headers.get("content-type", "")
        kind = header.split(";")[0].strip()
        if kind == "multipart/form-data":
            if not upload:
                raise Refusal(415, "Эта форма принимается только как urlencoded.")
            body = await read_body(request, UPLOAD_BYTES)
            parts, request.state.files = await trio.to_thread.run_sync(_multipart, header, body)
            return parts
        if kind != "application/x-www-form-urlencoded":  # no form: so no CSRF token either
            return {}
        body = await read_body(request, UPLOAD_BYTES if upload else FORM_BYTES)
        try:
            text = body.decode()
        except UnicodeDecodeError:
            raise Refusal(400, "Форма не в UTF-8.") from None
        if len(body) > FORM_BYTES:
            fields = await trio.to_thread.run_sync(_parse_query, text)
        else:
            fields = _parse_query(text)
        return {name: values[-1] for name, values in fields.items()}

    def context(self, session: Session, **values: Any) -> dict[str, Any]:
        return {
            "session": session,
            "csrf": self.sessions.csrf(session),
            "may": lambda action: may(session.user.role, action),
            **values,
        }

    def set_session(self, response: Response, session: Session | None) -> None:
        if session is None:
            response.delete_cookie(SESSION_COOKIE, path=PREFIX, secure=self.secure, httponly=True)
            return
        response.set_cookie(
            SESSION_COOKIE,
            session.cookie,
            max_age=self.sessions.lifetime,
            path=PREFIX,
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )

    # --- routes ---------------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        from engine.cabinet.branding import BrandingPages  # they build on this module
        from engine.cabinet.catalogue import CataloguePages
        from engine.cabinet.correction import CorrectionForm

        async def root(request: Request) -> Response:
            return RedirectResponse(f"{PREFIX}/dashboard", 303)

        async def icon(request: Request) -> Response:
            # Linked from every page, so that no browser asks for a /favicon.ico that 404s.
            headers = {"Cache-Control": "public, max-age=86400"}
            return Response(FAVICON, media_type="image/svg+xml", headers=headers)

        return [
            Mount(
                PREFIX,
                routes=[
                    Route("/", root, methods=["GET"]),
                    Route("/favicon.svg", icon, methods=["GET"]),
                    Route("/login", self._guarded(self.login_page), methods=["GET"]),
                    Route("/login", self._guarded(self.login), methods=["POST"]),
                    Route(
                        "/logout", self.page("dashboard", self.logout, post=True), methods=["POST"]
                    ),
                    Route("/dashboard", self.page("dashboard", self.dashboard), methods=["GET"]),
                    Route("/receipts", self.page("receipts", self.receipts), methods=["GET"]),
                    Route(
                        "/receipts/{job_id}", self.page("receipts", self.receipt), methods=["GET"]
                    ),
                    Route(
                        "/receipts/{job_id}/refund",
                        self.page("refund", self.refund, post=True),
                        methods=["POST"],
                    ),
                    Route("/registers", self.page("shifts", self.registers), methods=["GET"]),
                    Route(
                        "/registers/{register_id}/shift",
                        self.page("shifts", self.shift, post=True),
                        methods=["POST"],
                    ),
                    Route("/reports", self.page("reports", self.reports), methods=["GET"]),
                    Route("/exports", self.page("exports", self.exports), methods=["GET"]),
                    Route(
                        "/exports", self.page("exports", self.download, post=True), methods=["POST"]
                    ),
                    *CataloguePages(self).routes(),
                    *BrandingPages(self).routes(),
                    *CorrectionForm(self).routes(),
                    *CredentialsPage(self).routes(),
                ],
            )
        ]

    # --- login ----------------------------------------------------------------------------------

    def _login_form(
        self, next_path: str, status: int = 200, error: str = "", login: str = ""
    ) -> Response:
        token = secrets.token_urlsafe(24)
        response = self.render(
            "login.html", status, session=None, csrf=token, next=next_path, error=error, login=login
        )
        response.set_cookie(
            LOGIN_COOKIE,
            token,
            max_age=3600,
            path=f"{PREFIX}/login",
            secure=self.secure,
            httponly=True,
            samesite="strict",
        )
        return response

    async def login_page(self, request: Request) -> Response:
        return self._login_form(_local(request.query_params.get("next", "")))

    async def login(self, request: Request) -> Response:
        form = await self.form(request)
        next_path = _local(form.get("next", ""))
        cookie = request.cookies.get(LOGIN_COOKIE, "")
        given = form.get("csrf", "")
        if not cookie or not hmac.compare_digest(cookie.encode(), given.encode()):
            raise Refusal(403, "Форма входа устарела или пришла с чужого сайта (CSRF).")
        login, password = form.get("login", "").strip(), form.get("password", "")
        address = request.client.host if request.client else ""
        now = self.now()
        wait = self.throttle.retry_after(login, address, now)
        if wait > 0:
            response = self._login_form(
                next_path, 429, f"Слишком много попыток. Повторите через {int(wait) + 1} с.", login
            )
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        user = self.users.get(login)
        hashed = user.password_hash if user is not None else _DECOY
        # scrypt takes tens of milliseconds of CPU: off the event loop
        good = await trio.to_thread.run_sync(verify_password, password, hashed)
        if user is None or not good:
            self.throttle.failed(login, address, now)
            log.info("cabinet: a failed login for %r from %s", login, address)
            return self._login_form(next_path, 401, "Неверный логин или пароль.", login)
        self.throttle.succeeded(login)
        session = self.sessions.issue(user, now)
        response = RedirectResponse(next_path or f"{PREFIX}/dashboard", 303)
        self.set_session(response, session)
        response.delete_cookie(LOGIN_COOKIE, path=f"{PREFIX}/login")
        return response

    async def logout(self, request: Request, session: Session) -> Response:
        response = RedirectResponse(f"{PREFIX}/login", 303)
        self.set_session(response, None)
        return response

    # --- dashboard ------------------------------------------------------------------------------

    async def dashboard(self, request: Request, session: Session) -> Response:
        tenant = session.user.tenant
        engine = self.engine
        local = zone(engine.tenants[tenant].timezone)
        now = self.now()
        midnight = dt.datetime.combine(engine.today(tenant), dt.time(), local).timestamp()
        records = await engine.fiscalized(tenant, start=midnight, end=now + 1)
        views = await trio.to_thread.run_sync(
            lambda: [receipt_view(r) for r in records], limiter=engine.heavy
        )
        by_operation: dict[str, dict[str, int]] = {}
        for view in views:
            label = operation_label(view.operation, view.document_code == 31)
            sums = by_operation.setdefault(label, {"count": 0, "total": 0})
            sums["count"] += 1
            sums["total"] += view.total
            for kind, _ in PAYMENT_KINDS:
                sums[kind] = sums.get(kind, 0) + getattr(view.payments, kind)
        registers = [
            _register_card(r, now) for r in engine.registers.values() if r.config.tenant == tenant
        ]
        return self.render(
            "dashboard.html",
            **self.context(
                session,
                day=engine.today(tenant),
                count=len(views),
                by_operation=by_operation,
                kinds=PAYMENT_KINDS,
                registers=registers,
            ),
        )

    # --- receipts -------------------------------------------------------------------------------

    async def receipts(self, request: Request, session: Session) -> Response:
        tenant = session.user.tenant
        params = request.query_params
        local = zone(self.engine.tenants[tenant].timezone)
        problems: list[str] = []
        query = ReceiptQuery(limit=PAGE_SIZE + 1)
        changes: dict[str, Any] = {}
        for name, field in (("from", "start"), ("to", "end")):
            text = params.get(name, "").strip()
            if text:
                try:
                    day = typed_day(text)
                except ValueError:
                    problems.append(f"{name}: ожидалась дата ГГГГ-ММ-ДД, получено {text!r}")
                    continue
                if field == "end":
                    day += dt.timedelta(days=1)  # «по» includes that day
                changes[field] = dt.datetime.combine(day, dt.time(), local).timestamp()
        state = params.get("status", "").strip()
        if state:
            if state in STATES_RU:
                changes["state"] = state
            else:
                problems.append(f"status: нет статуса {state!r}")
        external_id = params.get("external_id", "").strip()
        if external_id:
            changes["external_id"] = external_id
        total = params.get("sum", "").strip()
        if total:
            try:
                changes["total"] = typed_kopecks(total)
            except ValueError:
                problems.append(
                    f"sum: ожидалась сумма в рублях, например 150,00; получено {total!r}"
                )
        fd = params.get("fd", "").strip()
        if fd:
            if fd.isdigit() and len(fd) <= 10:
                changes["fd_number"] = int(fd)
            else:
                problems.append(f"fd: ожидался номер ФД, получено {fd!r}")
        before = params.get("before", "")
        if before:
            moment, _, job_id = before.partition(":")
            try:
                changes["before"] = (float(moment), job_id)
            except ValueError:
                problems.append("before: не курсор страницы")
        rows = (
            [] if problems else await self.engine.receipts(tenant, attrs.evolve(query, **changes))
        )
        more = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
        filters = {
            k: params.get(k, "") for k in ("from", "to", "status", "external_id", "sum", "fd")
        }
        next_url = ""
        if more:
            last = rows[-1]
            cursor = f"{last.created!r}:{last.job_id}"
            next_url = "?" + urlencode(
                {**{k: v for k, v in filters.items() if v}, "before": cursor}
            )
        lines = [
            {
                "row": row,
                "accepted": _moment(row.created, local),
                "state": STATES_RU.get(row.state, row.state),
                "operation": "" if row.operation is None else operation_label(row.operation),
            }
            for row in rows
        ]
        return self.render(
            "receipts.html",
            **self.context(
                session,
                lines=lines,
                filters=filters,
                states=STATES_RU,
                problems=problems,
                next_url=next_url,
                first_page=not before,
            ),
        )

    async def receipt(self, request: Request, session: Session) -> Response:
        tenant = session.user.tenant
        job_id = str(request.path_params["job_id"])
        job = await self.engine.job(tenant, job_id)
        if job is None:  # another tenant's job is as absent as a missing one
            raise Refusal(404, "Чек не найден.")
        view = await self.engine.receipt_view(tenant, job_id)
        local = zone(self.engine.tenants[tenant].timezone)
        submitted: Receipt | None = None
        if view is None:
            submitted = body_receipt(job.body)
        refundable = (
            view is not None
            and view.document_code == 3
            and view.operation in REFUNDS
            and may(session.user.role, "refund")
        )
        return self.render(
            "receipt.html",
            **self.context(
                session,
                job=job,
                state=STATES_RU.get(job.state.value, job.state.value),
                accepted=_moment(job.created, local),
                view=view,
                submitted=submitted,
                operation=operation_label,
                vat=vat_label,
                kinds=PAYMENT_KINDS,
                refundable=refundable,
                correction=_correction_form(view, session),
                # the buyer's branded receipt (engine/render) by its public link
                links={
                    kind or "html": self.door.receipt_links.link(tenant, job.id, kind)
                    for kind in ("", "png", "pdf")
                },
            ),
        )

    async def refund(self, request: Request, session: Session) -> Response:
        """A refund of a signed receipt in one action: the same lines, ``refund-of-<job id>``."""
        tenant = session.user.tenant
        job_id = str(request.path_params["job_id"])
        job = await self.engine.job(tenant, job_id)
        if job is None:
            raise Refusal(404, "Чек не найден.")
        if job.state is not JobState.FISCALIZED:
            raise Refusal(409, "Вернуть можно только фискализированный чек.")
        receipt = body_receipt(job.body)
        if type(receipt) is not Receipt or receipt.operation not in REFUNDS:
            raise Refusal(409, "Этот чек нельзя вернуть одним действием.")
        refund = attrs.evolve(receipt, operation=REFUNDS[receipt.operation])
        try:
            new = await self.engine.submit(
                tenant, f"refund-of-{job.id}", refund, group=body_group(job.body)
            )
        except Busy:
            raise Refusal(503, "Очередь касс переполнена, повторите позже.") from None
        except SubmitError as exc:
            raise Refusal(422, f"Возврат не принят: {exc}") from None
        return RedirectResponse(f"{PREFIX}/receipts/{new.id}", 303)

    # --- registers and shifts -------------------------------------------------------------------

    def _registers_page(
        self, session: Session, *, notice: str = "", error: str = "", code: int = 200
    ) -> Response:
        tenant, now = session.user.tenant, self.now()
        cards = [
            _register_card(r, now)
            for r in self.engine.registers.values()
            if r.config.tenant == tenant
        ]
        return self.render(
            "registers.html",
            code,
            **self.context(session, registers=cards, notice=notice, error=error),
        )

    async def registers(self, request: Request, session: Session) -> Response:
        params = request.query_params
        notice = SHIFT_NOTICES.get(params.get("done", ""), "")
        register_id = params.get("register", "")
        if notice and register_id in self.engine.registers:
            notice = f"{register_id}: {notice}"
        return self._registers_page(session, notice=notice)

    async def shift(self, request: Request, session: Session) -> Response:
        """Open or close a register's shift by hand: the engine's shift command, as
        ``kassa shift`` sends it; what the register answers is shown in Russian."""
        tenant = session.user.tenant
        register_id = str(request.path_params["register_id"])
        action = request.state.form.get("action", "")
        register = self.engine.registers.get(register_id)
        if register is None or register.config.tenant != tenant:
            raise Refusal(404, "Касса не найдена.")
        if action not in ("open", "close"):
            raise Refusal(400, f"action: ожидалось open или close, получено {action!r}")
        command = self.engine.open_shift if action == "open" else self.engine.close_shift
        try:
            changed = await command(tenant, register_id)
        except KeyError:
            raise Refusal(404, "Касса не найдена.") from None
        except LinkLost:
            error = f"{register_id}: касса сейчас не на связи, повторите позже."
            return self._registers_page(session, error=error, code=503)
        except DriverError as exc:
            return self._registers_page(
                session, error=f"{register_id}: касса отказала: {exc}", code=502
            )
        if action == "open":
            done = "opened" if changed else "was-open"
        else:
            done = "closed" if changed else "was-closed"
        query = urlencode({"done": done, "register": register_id})
        return RedirectResponse(f"{PREFIX}/registers?{query}", 303)

    # --- reports --------------------------------------------------------------------------------

    async def reports(self, request: Request, session: Session) -> Response:
        """The operations report of whole days (today by default): by operation and payment
        kind, by shift, and by day with a bar chart of the day's net sum."""
        tenant = session.user.tenant
        engine = self.engine
        local = zone(engine.tenants[tenant].timezone)
        params = request.query_params
        problems: list[str] = []
        period = _period(params, local, engine.today(tenant), problems)
        report: OperationsReport | None = None
        days: list[dict[str, Any]] = []
        if period is not None:
            (first, last), (start, end) = period
            report = await engine.report(tenant, start=start, end=end)
            records = await engine.fiscalized(tenant, start=start, end=end)
            days = await trio.to_thread.run_sync(
                _by_day, records, first, last, local, limiter=engine.heavy
            )
            filters = {"from": first.isoformat(), "to": last.isoformat()}
        else:
            filters = {k: params.get(k, "") for k in ("from", "to")}
        shifts = [] if report is None else _shift_rows(report, local)
        return self.render(
            "reports.html",
            200 if period is not None else 422,
            **self.context(
                session,
                filters=filters,
                problems=problems,
                report=report,
                net={f: report.totals.net(f) for f in PAYMENT_FIELDS} if report else {},
                shifts=shifts,
                days=days,
                kinds=PAYMENT_KINDS,
                chart=_chart(days),
                chart_size=(CHART_WIDTH, CHART_HEIGHT),
            ),
        )

    # --- exports --------------------------------------------------------------------------------

    def _export_page(
        self, session: Session, values: Mapping[str, str], problems: list[str], code: int = 200
    ) -> Response:
        today = self.engine.today(session.user.tenant).isoformat()
        filters = {
            "from": values.get("from", "") or today,
            "to": values.get("to", "") or today,
            "form": values.get("form", "") or "csv",
        }
        return self.render(
            "exports.html",
            code,
            **self.context(session, filters=filters, forms=EXPORT_FORMS, problems=problems),
        )

    async def exports(self, request: Request, session: Session) -> Response:
        return self._export_page(session, {}, [])

    async def download(self, request: Request, session: Session) -> Response:
        """The tenant's signed receipts of the period as a file, streamed as it is written."""
        tenant = session.user.tenant
        form: dict[str, str] = request.state.form
        local = zone(self.engine.tenants[tenant].timezone)
        kind = form.get("form", "")
        problems: list[str] = []
        if kind not in EXPORT_FORMS:
            problems.append(f"form: ожидался один из {', '.join(EXPORT_FORMS)}, получено {kind!r}")
        period = _period(form, local, self.engine.today(tenant), problems)
        if problems or period is None:
            return self._export_page(session, form, problems, 422)
        (first, last), (start, end) = period
        chunks = await self.engine.export(tenant, kind, start=start, end=end)
        heavy = self.engine.heavy

        async def body() -> AsyncIterator[bytes]:
            # A document that does not decode ends an FNS-JSON export midway (ExportError):
            # the headers are sent, so the connection is cut, and the browser shows the
            # download as failed rather than a file that looks whole.
            more = True
            while more:
                try:
                    text, more = await trio.to_thread.run_sync(_next_chunk, chunks, limiter=heavy)
                except ExportError as exc:
                    log.warning("cabinet: the %s export of %s stopped: %s", kind, tenant, exc)
                    raise
                if text:
                    yield text.encode()

        _, extension, media = EXPORT_FORMS[kind]
        name = f"kassa-{tenant}-{first.isoformat()}-{last.isoformat()}.{extension}"
        headers = {
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        }
        return StreamingResponse(body(), media_type=media, headers=headers)


def _parse_query(text: str) -> dict[str, list[str]]:
    try:
        return parse_qs(text, keep_blank_values=True, max_num_fields=FORM_FIELDS)
    except ValueError:  # more fields than max_num_fields
        raise Refusal(400, f"В форме больше {FORM_FIELDS} полей.") from None


def _multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, bytes]]:
    """A multipart/form-data body's fields and files, read with the standard library's MIME
    parser (the door has no python-multipart); a part with a file name is a file."""
    if body.count(b"\r\n--") > FORM_FIELDS:  # each part opens with CRLF, then its boundary
        raise Refusal(400, f"В форме больше {FORM_FIELDS} полей.")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    if not message.is_multipart():
        raise Refusal(400, "Форма multipart не читается.")
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        raw = part.get_payload(decode=True)
        data = raw if isinstance(raw, bytes) else b""
        if part.get_filename() is not None:
            if data:  # an empty file input sends an empty part: no file chosen
                files[name] = data
            continue
        try:
            fields[name] = data.decode()
        except UnicodeDecodeError:
            raise Refusal(400, "Форма не в UTF-8.") from None
    return fields, files


def _correction_form(view: ReceiptView | None, session: Session) -> dict[str, Any] | None:
    """The correction form of a signed receipt, for the roles that may issue one."""
    from engine.cabinet.correction import CorrectionForm

    if view is None or not may(session.user.role, "correction"):
        return None
    return CorrectionForm.context(view, CorrectionForm.prefill(view), [])


def _by_day(
    records: list[ReceiptRecord], first: dt.date, last: dt.date, local: dt.tzinfo
) -> list[dict[str, Any]]:
    """Every day of the period with its receipts' count and net sums per payment field
    (money in less money out, as the report nets them); undecodable records are left out,
    as the report leaves them (it lists them as problems)."""
    days: dict[dt.date, dict[str, Any]] = {}
    day = first
    while day <= last:
        days[day] = {"day": day, "count": 0, **dict.fromkeys(PAYMENT_FIELDS, 0)}
        day += dt.timedelta(days=1)
    for record in records:
        sums = days.get(dt.datetime.fromtimestamp(record.fiscalized_at, local).date())
        if sums is None:
            continue
        try:
            view = receipt_view(record)
        except ProtocolError:
            continue
        sign = 1 if view.operation in INCOME else -1
        sums["count"] += 1
        sums["total"] += sign * view.total
        for kind, _ in PAYMENT_KINDS:
            sums[kind] += sign * getattr(view.payments, kind)
    return list(days.values())


def _shift_rows(report: OperationsReport, local: dt.tzinfo) -> list[dict[str, Any]]:
    """A row per shift of the report, with its net sums."""
    return [
        {
            "register_id": shift.register_id,
            "fn_number": shift.fn_number,
            "number": shift.shift_number,
            "opened": "—" if shift.opened_at is None else _moment(shift.opened_at, local),
            "closed": "—" if shift.closed_at is None else _moment(shift.closed_at, local),
            "count": shift.totals.receipts,
            **{f: shift.totals.net(f) for f in PAYMENT_FIELDS},
            "reconciliation": RECONCILIATION_RU[shift.reconciliation.status],
            "differences": shift.reconciliation.differences,
        }
        for register in report.registers
        for shift in register.shifts
    ]


def _chart(days: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The bars of the SVG chart: each day's net sum as a height from the baseline, in SVG
    units (money out, a negative net, drawn as its own colour); integers only, no floats of
    money: the heights are drawing, the sums in the titles are exact."""
    if not days:
        return []
    top = max(abs(d["total"]) for d in days) or 1
    slot = CHART_WIDTH // len(days) or 1
    bars = []
    for i, day in enumerate(days):
        height = abs(day["total"]) * (CHART_HEIGHT - 20) // top
        bars.append(
            {
                "x": i * slot + slot // 10,
                "y": CHART_HEIGHT - 20 - height,
                "width": max(1, slot - slot // 5),
                "height": height,
                "out": day["total"] < 0,
                "label": day["day"].strftime("%d.%m"),
                "title": f"{day['day'].strftime('%d.%m.%Y')}: {money_ru(day['total'])} ₽",
                "text_x": i * slot + slot // 2,
                "show_label": len(days) <= 31 or i % (len(days) // 31 + 1) == 0,
            }
        )
    return bars


def _next_chunk(chunks: Iterator[str]) -> tuple[str, bool]:
    """About EXPORT_CHUNK characters of an export, and whether more may follow."""
    parts, size = [], 0
    for part in chunks:
        parts.append(part)
        size += len(part)
        if size >= EXPORT_CHUNK:
            return "".join(parts), True
    return "".join(parts), False


def _period(
    values: Mapping[str, str], local: dt.tzinfo, today: dt.date, problems: list[str]
) -> tuple[tuple[dt.date, dt.date], tuple[float, float]] | None:
    """The days «с» ``from`` «по» ``to`` (both included, today when blank) and their
    [start, end) in Unix time at the tenant's midnight; None, with ``problems``, if bad."""
    days: list[dt.date] = []
    for name in ("from", "to"):
        text = values.get(name, "").strip()
        try:
            days.append(typed_day(text) if text else today)
        except ValueError:
            problems.append(f"{name}: ожидалась дата ГГГГ-ММ-ДД, получено {text!r}")
    if len(days) < 2:
        return None
    first, last = days
    if last < first:
        problems.append("to: дата «по» раньше даты «с»")
        return None
    if (last - first).days >= MAX_PERIOD_DAYS:
        problems.append(f"to: период длиннее {MAX_PERIOD_DAYS} дней, разбейте его")
        return None

    def midnight(day: dt.date) -> float:
        return dt.datetime.combine(day, dt.time(), local).timestamp()

    return (first, last), (midnight(first), midnight(last + dt.timedelta(days=1)))


def _moment(unix: float, local: dt.tzinfo) -> str:
    return dt.datetime.fromtimestamp(unix, local).strftime("%d.%m.%Y %H:%M:%S")


def _local(path: str) -> str:
    """A ``next`` path only if it stays in the cabinet: never an open redirect."""
    if path.startswith(PREFIX + "/") and not path.startswith("//") and "\\" not in path:
        return path
    return ""


def _register_card(register: RegisterView, now: float) -> dict[str, Any]:
    """One register on the dashboard with what needs a person's eye."""
    warnings: list[str] = []
    if register.state != "ready":
        warnings.append(f"касса не готова: {register.state}")
    age: float | None = None
    if register.shift is not None:
        age = max(0.0, now - register.shift.opened_wall)
        if age >= SHIFT_LIMIT:
            warnings.append("смена открыта дольше 24 часов: закройте её")
        elif age >= SHIFT_WARNING:
            warnings.append("смене скоро 24 часа")
    if register.warnings:
        warnings.append(f"ФН сообщает предупреждения (флаги {register.warnings:#04x})")
    errors: list[str] = []
    fn_expiry = _fn_expiry(register, warnings, errors)
    ofd_backlog = _ofd_backlog(register, warnings, errors)
    return {
        "id": register.config.id,
        "group": register.config.group,
        "state": register.state,
        "fn_number": register.fn_number,
        "last_fd": register.last_fd,
        "shift": register.shift,
        "shift_age": None if age is None else f"{int(age // 3600)} ч {int(age % 3600 // 60)} мин",
        "fn_expiry": fn_expiry,  # None: not known, shown as such, never guessed
        "ofd_backlog": ofd_backlog,
        "warnings": warnings,
        "errors": errors,
    }


def _fn_expiry(register: RegisterView, warnings: list[str], errors: list[str]) -> str | None:
    """срок действия ФН with the days left on the register's clock, and its warning."""
    expires, days = register.fn_expiry(), register.fn_days_left()
    if expires is None:
        return None
    text = expires.strftime("%d.%m.%Y")
    if days is None:
        return text
    if days < 0:
        errors.append(f"срок действия ФН истёк {-days} дн. назад: замените ФН")
        return f"{text} (истёк)"
    if days == 0:
        errors.append("срок действия ФН истекает сегодня: замените ФН")
    elif days < FN_EXPIRY_WARNING_DAYS:
        warnings.append(f"срок действия ФН истекает через {days} дн.: закажите замену ФН")
    return f"{text} (осталось {days} дн.)"


def _ofd_backlog(register: RegisterView, warnings: list[str], errors: list[str]) -> str | None:
    """Документы, не переданные в ОФД: how many and how old the oldest, and its warning."""
    count, oldest, age = register.ofd_unsent, register.ofd_oldest, register.ofd_oldest_age()
    if count is None:
        return None
    if count == 0:
        return "0"
    text = f"{count} док."
    if oldest is None or age is None:
        return text
    days = age / dt.timedelta(days=1)
    waited = f"{days:.0f} дн." if days >= 1 else f"{age // dt.timedelta(hours=1)} ч"
    text += f", первый от {oldest.strftime('%d.%m.%Y %H:%M')} ({waited})"
    if days >= OFD_BLOCK_DAYS:
        errors.append(
            f"документы не переданы в ОФД {days:.0f} дн.: ФН не формирует новые документы "
            f"(более {OFD_BLOCK_DAYS} дней без передачи); восстановите связь с ОФД"
        )
    elif days >= OFD_ERROR_DAYS:
        errors.append(
            f"документы не переданы в ОФД {days:.0f} дн.: через "
            f"{OFD_BLOCK_DAYS - days:.0f} дн. ФН перестанет формировать документы"
        )
    elif days >= OFD_WARNING_DAYS:
        warnings.append(f"документы не переданы в ОФД {days:.0f} дн.: проверьте связь с ОФД")
    return text


__all__ = ["PREFIX", "RIGHTS", "ROLES", "Cabinet", "Refusal"]
