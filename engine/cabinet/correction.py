"""The correction form of a receipt's page: a чек коррекции (FFD 1.2, document 31) from the cabinet.

A settlement that went wrong or unrecorded is corrected by a correction receipt, never by
editing the signed one. The form is filled from the receipt (operation 1054, its sums per VAT
rate and per payment kind, its date as 1178) and the user says why: 1173 тип коррекции,
самостоятельно (0) or по предписанию (1, with the order's number 1179). Every field is checked
here with a Russian message naming it, before the engine's own checks (which refuse the same
future date with ``correction.basis_date_future``); the receipt is submitted through the same
engine API as the refund button, and the browser goes to the new job's page.

In FFD 1.2 a correction carries items: one line per VAT rate with the rate's sum (the VAT sum
1200 computed from it, as the register will), named as the user typed. The external id is
``correction-of-<job>-<nonce>``, the nonce made when the form was drawn: a double click is one
correction, a second form another.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from engine.cabinet.app import PAYMENT_KINDS, PREFIX, Cabinet, Refusal, money_ru, typed_kopecks
from engine.engine import Busy, SubmitError, body_group, body_receipt
from engine.journal import Job, JobState
from engine.reports import OPERATION_LABELS, ReceiptLine, ReceiptView, vat_label
from protocols.documents.model import CorrectionBasis, CorrectionReceipt, Item, Payments
from protocols.documents.vat import vat_amount
from protocols.tlv.enums import PaymentMethod, PaymentSubject

if TYPE_CHECKING:
    from engine.cabinet.users import Session

__all__ = ["CORRECTION_TYPES", "CorrectionForm"]

#: 1173 тип коррекции.
CORRECTION_TYPES = {0: "самостоятельно", 1: "по предписанию налогового органа"}
#: 1030 and 1179 at most (FFD 1.2 table of tags).
NAME_CHARS, ORDER_CHARS = 128, 32
_NONCE = re.compile(r"\A[A-Za-z0-9_-]{8,43}\Z")


def _rates(view: ReceiptView) -> dict[int, int]:
    """Σ 1043 per 1199 rate of the receipt, in its lines' order."""
    sums: dict[int, int] = {}
    for line in view.lines:
        sums[line.vat] = sums.get(line.vat, 0) + line.sum
    return sums


class CorrectionForm:
    """The correction form's prefill and its POST handler, on one cabinet."""

    def __init__(self, cabinet: Cabinet) -> None:
        self.cabinet = cabinet

    def routes(self) -> list[BaseRoute]:
        handler = self.cabinet.page("correction", self.submit, post=True)
        return [Route("/receipts/{job_id}/correction", handler, methods=["POST"])]

    @staticmethod
    def prefill(view: ReceiptView) -> dict[str, Any]:
        """The form's values from the receipt being corrected."""
        return {
            "correction_type": "0",
            "basis_date": view.time.date().isoformat(),
            "basis_number": "",
            "operation": str(view.operation),
            "name": f"Коррекция расчёта по чеку ФД {view.fd_number}"[:NAME_CHARS],
            **{f"vat_{rate}": money_ru(total) for rate, total in _rates(view).items()},
            **{kind: money_ru(getattr(view.payments, kind)) for kind, _ in PAYMENT_KINDS},
            "nonce": secrets.token_urlsafe(12),
        }

    @staticmethod
    def context(view: ReceiptView, values: dict[str, Any], problems: list[str]) -> dict[str, Any]:
        """What ``_correction_form.html`` draws."""
        return {
            "fields": values,
            "problems": problems,
            "types": CORRECTION_TYPES,
            "operations": OPERATION_LABELS,
            "rates": [(rate, vat_label(rate)) for rate in _rates(view)],
            "kinds": PAYMENT_KINDS,
        }

    async def submit(self, request: Request, session: Session) -> Response:
        cabinet, tenant = self.cabinet, session.user.tenant
        engine = cabinet.engine
        job_id = str(request.path_params["job_id"])
        job = await engine.job(tenant, job_id)
        view = None if job is None else await engine.receipt_view(tenant, job_id)
        if job is None:  # another tenant's job is as absent as a missing one
            raise Refusal(404, "Чек не найден.")
        if view is None or job.state is not JobState.FISCALIZED:
            raise Refusal(409, "Скорректировать можно только фискализированный чек.")
        form: dict[str, str] = request.state.form
        values = {k: v.strip() for k, v in form.items() if k != "csrf"}
        problems: list[str] = []
        correction = self._correction(job, view, values, engine.today(tenant), problems)
        if correction is None:
            return self._page(session, job, view, values, problems)
        external_id = f"correction-of-{job.id}-{values['nonce']}"
        try:
            new = await engine.submit(tenant, external_id, correction, group=body_group(job.body))
        except Busy:
            raise Refusal(503, "Очередь касс переполнена, повторите позже.") from None
        except SubmitError as exc:
            return self._page(session, job, view, values, [f"Чек коррекции не принят: {exc}"])
        return RedirectResponse(f"{PREFIX}/receipts/{new.id}", 303)

    def _page(
        self,
        session: Session,
        job: Job,
        view: ReceiptView,
        values: dict[str, Any],
        problems: list[str],
    ) -> Response:
        cabinet = self.cabinet
        return cabinet.render(
            "correction.html",
            422,
            **cabinet.context(
                session, job=job, view=view, correction=self.context(view, values, problems)
            ),
        )

    def _correction(
        self,
        job: Job,
        view: ReceiptView,
        values: dict[str, str],
        today: dt.date,
        problems: list[str],
    ) -> CorrectionReceipt | None:
        """The correction the form describes, or None with ``problems`` (each names its field)."""
        if not _NONCE.match(values.get("nonce", "")):
            problems.append("nonce: форма повреждена, откройте страницу чека заново")
        kind = values.get("correction_type", "")
        if kind not in ("0", "1"):
            problems.append(f"correction_type: тип коррекции (1173) — 0 или 1, получено {kind!r}")
        text = values.get("basis_date", "")
        basis_date: dt.date | None = None
        try:
            basis_date = dt.date.fromisoformat(text)
        except ValueError:
            problems.append(
                f"basis_date: дата исправляемого расчёта (1178) — ГГГГ-ММ-ДД, получено {text!r}"
            )
        if basis_date is not None and basis_date > today:
            problems.append(
                f"basis_date: дата исправляемого расчёта (1178) {basis_date:%d.%m.%Y} "
                f"позже сегодняшней ({today:%d.%m.%Y})"
            )
        number = values.get("basis_number", "")
        if kind == "1" and not number:
            problems.append(
                "basis_number: для коррекции по предписанию нужен номер предписания (1179)"
            )
        if len(number) > ORDER_CHARS:
            problems.append(f"basis_number: номер предписания (1179) — до {ORDER_CHARS} символов")
        operation = values.get("operation", "")
        if operation not in ("1", "2", "3", "4"):
            problems.append(
                f"operation: признак расчёта (1054) — одно из 1–4, получено {operation!r}"
            )
        name = values.get("name", "")
        if not name or len(name) > NAME_CHARS:
            problems.append(
                f"name: наименование предмета расчёта (1030) — от 1 до {NAME_CHARS} символов"
            )
        by_rate = self._sums(
            {r: f"vat_{r}" for r in _rates(view)}, values, "сумма по ставке", problems
        )
        paid = self._sums({k: k for k, _ in PAYMENT_KINDS}, values, "оплата", problems)
        total = sum(by_rate.values())
        if len(by_rate) == len(_rates(view)) and len(paid) == len(PAYMENT_KINDS):
            if total <= 0:
                problems.append("vat_*: сумма чека коррекции (1020) должна быть больше нуля")
            elif sum(paid.values()) != total:
                problems.append(
                    f"cash: сумма оплат {money_ru(sum(paid.values()))} ₽ не равна сумме по "
                    f"ставкам НДС {money_ru(total)} ₽ (1020)"
                )
        if problems or basis_date is None:
            return None
        receipt = body_receipt(job.body)
        first: dict[int, ReceiptLine] = {}
        for line in view.lines:
            first.setdefault(line.vat, line)
        items = tuple(
            Item(
                name=name,
                price=amount,
                quantity=Decimal(1),
                sum=amount,
                vat=rate,
                vat_sum=vat_amount(amount, rate),
                payment_method=first[rate].payment_method or int(PaymentMethod.FULL_PAYMENT),
                payment_subject=first[rate].payment_subject or int(PaymentSubject.GOODS),
            )
            for rate, amount in by_rate.items()
            if amount
        )
        return CorrectionReceipt(
            operation=int(operation),
            items=items,
            payments=Payments(
                cash=paid["cash"],
                electronic=paid["electronic"],
                prepaid=paid["prepaid"],
                credit=paid["credit"],
                provision=paid["provision"],
            ),
            company=receipt.company,
            total=total,
            cashier=receipt.cashier,
            correction_type=int(kind),
            basis=CorrectionBasis(
                date=dt.datetime(basis_date.year, basis_date.month, basis_date.day),
                number=number or None,
            ),
        )

    @staticmethod
    def _sums(
        fields: dict[Any, str], values: dict[str, str], label: str, problems: list[str]
    ) -> dict[Any, int]:
        """Each field's roubles as kopecks (blank is 0); a bad one is a problem naming it."""
        out = {}
        for key, field in fields.items():
            text = values.get(field, "") or "0"
            try:
                out[key] = typed_kopecks(text)
            except ValueError:
                problems.append(
                    f"{field}: {label} — ожидалась сумма в рублях, например 150,00; "
                    f"получено {text!r}"
                )
        return out
