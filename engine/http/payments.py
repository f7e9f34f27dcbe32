"""Payment-system notifications that become receipts, and the "shipped" call that settles them.

- ``POST /notifications/{hook}/yookassa|cloudpayments|tbank``: ``hook`` is the tenant's
  unguessable id (engine/http/hooks.py). The provider's proof is checked first
  (:mod:`protocols.notifications`); a bad one is refused (401), logged without secrets, and
  nothing is journaled. A payment's receipt is made (:mod:`protocols.notifications.receipts`)
  and journaled under an external_id of provider, payment id and event kind, so that a
  repeated notification finds the first job. Then each provider hears what stops its retries:
  YooKassa any 200, CloudPayments ``{"code": 0}``, T-Bank ``OK``; the job's id is in the
  ``X-Kassa-Job`` header. Whenever nothing was journaled the answer is not 2xx, so the
  provider tries again.
- ``POST /payments/{provider}/{payment_id}/shipped`` with an ATOL ``Token`` of the tenant: the
  full-settlement receipt (1214 = 4, the 1215 offset) of a prepaid payment, once.

A refund without a carried receipt returns the payment's receipt when it refunds all of it
(with its 1214: a prepayment not yet shipped is refunded as a prepayment), else one template line.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import attrs
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
    body_receipt,
)
from engine.http.app import Handler, guarded, json_response, read_body, retry_after
from engine.http.credentials import TokenProblem
from engine.http.hooks import PROVIDERS, PaymentSettings
from engine.journal import Job, JobState
from protocols.documents.model import Receipt
from protocols.notifications import (
    CarriedReceipt,
    EventKind,
    NotificationError,
    PaymentEvent,
    SignatureError,
    cloudpayments,
    prepayment_id,
    shipped_id,
    tbank,
    yookassa,
)
from protocols.notifications.receipts import receipt_of
from protocols.payments import PREPAYMENT_METHODS, FlowError, settlement_for
from protocols.tlv.enums import OperationType

if TYPE_CHECKING:
    from engine.http.app import HttpDoor

log = logging.getLogger("kassa.http.payments")
#: The paths of these routes begin so.
PREFIXES = ("/notifications", "/payments")


class Answer(Exception):
    """A refusal: the status and a JSON error body (or Retry-After)."""

    def __init__(self, status: int, error: str, retry_after: float | None = None) -> None:
        super().__init__(status, error)
        self.status = status
        self.error = error
        self.retry_after = retry_after


def _answered(request: Request, answer: Answer) -> Response:
    headers = retry_after(answer.retry_after)
    return json_response({"error": answer.error}, answer.status, headers)


class PaymentsApi:
    """The notification and "shipped" routes on one :class:`~engine.http.app.HttpDoor`."""

    def __init__(self, door: HttpDoor) -> None:
        self.door = door
        self.refused = 0  # notifications refused for their proof

    @property
    def engine(self) -> Engine:
        assert self.door.engine is not None, "the door is not running"
        return self.door.engine

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/notifications/{hook}/{provider}", self._guarded(self.notify), methods=["POST"]),
            Route(
                "/payments/{provider}/{payment_id}/shipped",
                self._guarded(self.shipped),
                methods=["POST"],
            ),
        ]

    def register_shape(self) -> None:
        """Refusals of unknown paths and methods under the notification and payment prefixes
        are in these routes' shape, ``{"error": text}``."""

        def refuse(request: Request, status: int, text: str, headers: Any) -> Response:
            return json_response({"error": text}, status, headers)

        for prefix in PREFIXES:
            self.door.shapes[prefix] = refuse

    def openapi(self) -> dict[str, Any]:
        return payments_document()

    def _guarded(self, handler: Handler) -> Handler:
        return guarded(self.door, handler, Answer, _answered, Answer)

    def _rate(self, tenant: str) -> None:
        limits = self.door.limits
        assert limits is not None
        wait = limits.take(tenant, trio.current_time())
        if wait > 0:
            raise Answer(429, "over the request rate", retry_after=wait)

    # --- notifications ----------------------------------------------------------------------

    async def notify(self, request: Request) -> Response:
        provider = request.path_params["provider"]
        settings = self.door.settings.payments.get(request.path_params["hook"])
        if settings is None or provider not in PROVIDERS:
            raise Answer(404, "no such notification address")
        self._rate(settings.tenant)
        body = await read_body(request, self.door.sizes.receipt_bytes)
        try:
            event = _verified(provider, settings, request, body)
        except SignatureError as exc:
            self.refused += 1
            source = request.client.host if request.client else "?"
            log.warning(
                "refused a %s notification of tenant %s from %s: %s",
                provider,
                settings.tenant,
                source,
                exc,
            )
            raise Answer(401, f"refused: {exc}") from None
        except NotificationError as exc:
            log.warning("unreadable %s notification of %s: %s", provider, settings.tenant, exc)
            raise Answer(400, str(exc)) from None
        if event is None:  # an event that gives no receipt: heard, nothing to do
            return _acknowledged(provider, None)
        job = await self._journal(settings, event)
        return _acknowledged(provider, job)

    async def _journal(self, settings: PaymentSettings, event: PaymentEvent) -> Job:
        tenant, engine = settings.tenant, self.engine
        existing = await engine.job_by_external_id(tenant, event.external_id)
        if existing is not None:  # a repeat: the first job, whatever the config says now
            return existing
        prepayment = settings.prepayment
        if event.kind is EventKind.REFUND:
            event, prepayment = await self._refund(settings, event)
        try:
            receipt = receipt_of(event, settings.template, prepayment=prepayment)
        except (NotificationError, FlowError) as exc:
            log.warning("no receipt from %s of %s: %s", event.provider, tenant, exc)
            raise Answer(422, str(exc)) from None
        return await self._submit(tenant, event.external_id, receipt, settings.group)

    async def _refund(
        self, settings: PaymentSettings, event: PaymentEvent
    ) -> tuple[PaymentEvent, bool]:
        """A refund mirrors its payment's receipt when it refunds the whole of it."""
        engine, tenant = self.engine, settings.tenant
        first = await engine.job_by_external_id(
            tenant, prepayment_id(event.provider, event.payment_id)
        )
        shipped = await engine.job_by_external_id(
            tenant, shipped_id(event.provider, event.payment_id)
        )
        last = shipped or first
        paid = body_receipt(last.body) if last is not None else None
        prepayment = settings.prepayment and shipped is None
        if paid is not None:
            prepayment = all(item.payment_method in PREPAYMENT_METHODS for item in paid.items)
            if event.receipt is None and paid.total == event.amount:
                contact = paid.client.contact if paid.client is not None else None
                carried = CarriedReceipt(paid.items, paid.company.tax_system, contact)
                event = attrs.evolve(event, receipt=carried)
        return event, prepayment

    async def _submit(self, tenant: str, external_id: str, receipt: Receipt, group: str) -> Job:
        engine = self.engine
        try:
            job = await engine.submit(tenant, external_id, receipt, group=group)
        except Conflict as exc:
            known = await engine.job(tenant, exc.job_id)
            assert known is not None
            job = known
        except ValidationFailed as exc:
            found = "; ".join(f"{p.path}: {p.message}" for p in exc.problems)
            log.warning(
                "the receipt of %s (tenant %s) fails its checks: %s", external_id, tenant, found
            )
            raise Answer(422, found) from None
        except Busy as exc:
            raise Answer(429, str(exc), retry_after=exc.retry_after) from None
        except Unavailable as exc:
            raise Answer(503, str(exc), retry_after=exc.retry_after) from None
        except JournalBehind as exc:  # held until an operator acts; the provider retries
            raise Answer(503, str(exc)) from None
        except SubmitError as exc:
            raise Answer(422, f"{exc.path or '$'}: {exc}") from None
        await self.door.journal_deliveries(job, receipt)  # the buyer's copy, by its 1008
        return job

    # --- shipped ----------------------------------------------------------------------------

    async def shipped(self, request: Request) -> Response:
        token = request.headers.get("token") or request.query_params.get("token")
        if not token:
            raise Answer(401, "no Token header (POST /possystem/v5/getToken)")
        try:
            login = self.door.tokens.read(token, self.door.keyring.atol_logins, time.time())
        except TokenProblem as exc:
            raise Answer(401, str(exc)) from None
        tenant = login.tenant
        self._rate(tenant)
        provider, payment_id = request.path_params["provider"], request.path_params["payment_id"]
        if provider not in PROVIDERS:
            raise Answer(404, f"provider: expected one of {', '.join(PROVIDERS)}")
        engine = self.engine
        first = await engine.job_by_external_id(tenant, prepayment_id(provider, payment_id))
        if first is None:
            raise Answer(404, f"payment_id: no {provider} payment {payment_id!r} came")
        if first.state is JobState.FAILED:
            raise Answer(409, f"the prepayment receipt failed: {first.error}")
        prepaid = body_receipt(first.body)
        if prepaid.operation != OperationType.SELL:
            raise Answer(409, "not a sale")
        try:
            receipt = settlement_for(prepaid)
        except FlowError as exc:
            raise Answer(409, f"{exc.path}: {exc.reason}") from None
        external_id = shipped_id(provider, payment_id)
        job = await self._submit(tenant, external_id, receipt, body_group(first.body))
        return json_response(
            {
                "job": job.id,
                "external_id": external_id,
                "state": job.state.value,
                "prepayment": first.id,
            }
        )


def _verified(
    provider: str, settings: PaymentSettings, request: Request, body: bytes
) -> PaymentEvent | None:
    """The event of a notification whose proof holds; SignatureError otherwise."""
    if provider == "yookassa":
        source = request.client.host if request.client else ""
        yookassa.verify(
            source,
            request.query_params.get("secret"),
            secret=settings.yookassa_secret,
            networks=settings.yookassa_networks,
        )
        return yookassa.parse(body)
    if provider == "cloudpayments":
        secret = (settings.cloudpayments_secret or "").encode()
        headers = request.headers
        cloudpayments.verify(
            body, headers.get("content-hmac"), headers.get("x-content-hmac"), secret
        )
        return cloudpayments.parse(body)
    tbank.verify(body, settings.tbank_password or "")
    return tbank.parse(body)


def _acknowledged(provider: str, job: Job | None) -> Response:
    headers = {} if job is None else {"X-Kassa-Job": job.id}
    if provider == "tbank":
        return Response(tbank.ACKNOWLEDGED, headers=headers, media_type="text/plain")
    if provider == "cloudpayments":
        return Response(cloudpayments.ACKNOWLEDGED, headers=headers, media_type="application/json")
    return json_response({"job": None if job is None else job.id}, headers=headers)


def payments_document() -> dict[str, Any]:
    """The payment notifications' part of the OpenAPI document."""
    error = {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string", "description": "names the field at fault"}},
    }
    retry = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}

    def refusal(description: str, *, wait: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "description": description,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/PaymentError"}}
            },
        }
        if wait:
            out["headers"] = retry
        return out

    job_header = {"X-Kassa-Job": {"schema": {"type": "string"}, "description": "the job's id"}}
    return {
        "paths": {
            "/notifications/{hook}/{provider}": {
                "post": {
                    "summary": "A payment system's notification: a receipt, journaled once",
                    "operationId": "paymentNotification",
                    "parameters": [
                        {
                            "name": "hook",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "provider",
                            "in": "path",
                            "required": True,
                            "schema": {"enum": list(PROVIDERS)},
                        },
                        {
                            "name": "secret",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string"},
                            "description": "YooKassa: the tenant's secret (or its networks)",
                        },
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"type": "object"}},
                            "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "journaled (or nothing to do): YooKassa {job}, "
                            'CloudPayments {"code": 0}, T-Bank OK',
                            "headers": job_header,
                            "content": {
                                "application/json": {"schema": {"type": "object"}},
                                "text/plain": {"schema": {"type": "string"}},
                            },
                        },
                        "400": refusal("an unreadable notification; nothing journaled"),
                        "401": refusal(
                            "a bad signature, token or source; logged, nothing journaled"
                        ),
                        "404": refusal("no such hook or provider"),
                        "413": refusal("the body is over the service's limit"),
                        "422": refusal("no valid receipt from it; nothing journaled"),
                        "429": refusal("over the tenant's rate or queue", wait=True),
                        "500": refusal("a fault of Kassa's own, logged"),
                        "503": refusal("the engine cannot take jobs now", wait=True),
                    },
                },
            },
            "/payments/{provider}/{payment_id}/shipped": {
                "post": {
                    "summary": "The full-settlement receipt (1214 = 4, 1215) of a prepaid payment",
                    "operationId": "paymentShipped",
                    "parameters": [
                        {
                            "name": "Token",
                            "in": "header",
                            "required": True,
                            "schema": {"type": "string"},
                            "description": "an ATOL token of the tenant (getToken)",
                        },
                        {
                            "name": "provider",
                            "in": "path",
                            "required": True,
                            "schema": {"enum": list(PROVIDERS)},
                        },
                        {
                            "name": "payment_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "journaled once: the settlement job",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["job", "external_id", "state", "prepayment"],
                                        "properties": {
                                            "job": {"type": "string"},
                                            "external_id": {"type": "string"},
                                            "state": {"type": "string"},
                                            "prepayment": {"type": "string"},
                                        },
                                    }
                                }
                            },
                        },
                        "401": refusal("no, expired or wrong token"),
                        "404": refusal("no such provider or payment"),
                        "409": refusal(
                            "the payment's receipt cannot be settled (not a prepayment)"
                        ),
                        "422": refusal("the settlement fails its checks"),
                        "429": refusal("over the tenant's rate or queue", wait=True),
                        "500": refusal("a fault of Kassa's own, logged"),
                        "503": refusal("the engine cannot take jobs now", wait=True),
                    },
                },
            },
        },
        "components": {"schemas": {"PaymentError": error}},
    }
