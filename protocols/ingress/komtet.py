"""KOMTET Kassa API v2 task JSON ↔ the receipt model, and KOMTET-shaped errors.

Shops on KOMTET's CMS modules post ``POST /api/shop/v2/queues/{queue}/task`` bodies; Kassa takes
them unchanged. :func:`parse_komtet_task` maps a task (a check or a correction check) onto a
:class:`~protocols.documents.model.Receipt` / ``CorrectionReceipt``, :func:`to_komtet_task`
maps it back, and :func:`check_komtet_task` runs parsing plus
:func:`protocols.validation.validate` and answers in KOMTET's ``{title, code, description}``
shape. Source of the schema: ``cloud-apis.md`` §2.2–2.4 ([KT1] the Python SDK v2, [KT2] the PHP
SDK).

Fields (KOMTET name → model, FFD tag):

- envelope: ``external_id`` → :attr:`KomtetTask.external_id`; ``intent`` (``sell`` 1,
  ``sellReturn`` 2, ``buy`` 3, ``buyReturn`` 4, and ``sellCorrection``, ``sellReturnCorrection``,
  ``buyCorrection``, ``buyReturnCorrection`` for a correction receipt) → 1054; ``print`` →
  ``print_receipt``; ``callback_url`` → ``callback_url``.
- ``client``: the same fields as ATOL (``email`` / ``phone`` → 1008, 1227, 1228, 1243–1246,
  1254); optional.
- ``company``: ``payment_address`` → ``place`` 1187, ``sno`` (0 ОСН, 1 УСН доход, 2 УСН
  доход − расход, 3 ЕНВД, 4 ЕСН, 5 патент) → the 1055 bit, ``inn`` 1018, ``place_address`` →
  ``address`` 1009.
- ``payments[].type``: ``cash`` 1031, ``card`` 1081, ``prepayment`` 1215, ``credit`` 1216,
  ``counter_provisioning`` 1217, summed per tag.
- ``cashier {name, inn}`` (checks) and ``authorised_person {name, inn}`` (corrections) →
  ``cashier`` 1021/1203; ``correction_info {type, base_date, base_number, base_name}`` → 1173,
  1178, 1179, 1177.
- ``additional_check_props`` 1192, ``additional_user_props`` 1084, ``operating_check_props``
  1270, ``sectoral_check_props`` 1261, ``internet`` 1125, ``timezone`` 1011,
  ``cashless_payments`` 1234/1235, as in ATOL.
- positions: ``name`` 1030, ``price`` 1079, ``quantity`` 1023, ``total`` 1043 (default
  price × quantity, rounded half up), ``vat`` 1199 (``"20"`` 1, ``"10"`` 2, ``"120"`` 3,
  ``"110"`` 4, ``"0"`` 5, ``"no"`` 6, ``"5"`` 7, ``"7"`` 8, ``"105"`` 9, ``"107"`` 10, ``"22"`` 11,
  ``"122"`` 12), ``measure`` 2108, ``payment_method`` 1214 (``pre_payment_full`` 1,
  ``pre_payment_part`` 2, ``advance`` 3, ``full_payment`` 4, ``credit_part`` 5, ``credit`` 6,
  ``credit_pay`` 7), ``payment_object`` 1212 (``product`` 1 … ``pay`` 12, ``other`` 13 … ``tm``
  33), and the item blocks ATOL has (``agent_info`` with KOMTET's type names
  ``bank_payment_agent`` … ``agent``, ``supplier_info``, ``mark_code``, ``mark_quantity``,
  ``planned_status``, ``sectoral_item_props``, ``user_data``, ``excise``, ``country_code``,
  ``declaration_number``, ``wholesale``).

Errors: KOMTET answers a rejected task with HTTP 422 (403 / 500 for access and server faults)
and ``{title, code, description}`` [KT2]. KOMTET publishes no table of its validation codes, so
:class:`KomtetProblem` carries status 422 for every problem and Kassa's own stable code as
``code`` (the ingress codes of :mod:`protocols.ingress._common` and the codes of
:mod:`protocols.validation`, e.g. ``total.items_mismatch`` at ``total``); ``title`` says
whether the request or the receipt was at fault.

Assumptions where the reference is silent:

- ``company.inn`` may be omitted (KOMTET knows the shop's INN): the caller passes it as
  ``inn=``; without it a missing INN is ``field.missing``.
- Positions carry no VAT amount: 1200 is computed from ``total`` and the rate (none for 0 %
  and "no VAT"), so a receipt whose 1200 differs cannot go back to KOMTET.
- ``position.id`` (the shop's own id) is not a receipt tag and is not kept; KOMTET has no
  field for 1036, 1048, 1057, 1117 or 2102 ≠ 0, so a receipt with them cannot go back.
- ``gs1m`` in ``mark_code`` is base64 of the whole scanned code, as in ATOL (KOMTET's SDK
  passes the value through unchanged).
- ``cashier`` and ``authorised_person`` are both accepted in a correction; when both are given
  they must agree. The way back writes ``authorised_person`` for corrections, ``cashier``
  otherwise, and ``print`` only when true.
- ``correction_info.base_name`` is read (the SDK still sends ``""``, read as absent) and
  written back only when the model has 1177; ``sno`` 3 (ЕНВД, dropped by KOMTET in 2025-11)
  is still read as the ЕНВД bit.
- Quantities have no decimal-place limit beyond exactness; money has at most two decimals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

import attrs

from protocols.documents.model import Cashier, Company, CorrectionReceipt, Item, Receipt
from protocols.documents.vat import vat_amount
from protocols.ingress._common import (
    ITEM_EXTRA_FIELDS,
    ITEM_PATHS,
    RECEIPT_EXTRA_FIELDS,
    RECEIPT_PATHS,
    Body,
    IngressError,
    PathTable,
    Reader,
    Writer,
    client_out,
    correction_info_out,
    given_contact,
    implied_sum,
    item_extras_out,
    name_of,
    payments_out,
    put,
    quantity_out,
    read_correction_info,
    read_item_extras,
    read_payments,
    read_receipt_extras,
    receipt_extras_out,
    rubles,
    translate,
)
from protocols.validation import Limits, Problem, Registration, validate

#: ``intent`` → (1054 признак расчёта, whether it is a correction).
INTENTS: dict[str, tuple[int, bool]] = {
    "sell": (1, False),
    "sellReturn": (2, False),
    "buy": (3, False),
    "buyReturn": (4, False),
    "sellCorrection": (1, True),
    "sellReturnCorrection": (2, True),
    "buyCorrection": (3, True),
    "buyReturnCorrection": (4, True),
}
#: ``company.sno`` → 1055 bit.
TAX_SYSTEMS: dict[int, int] = {0: 0x01, 1: 0x02, 2: 0x04, 3: 0x08, 4: 0x10, 5: 0x20}
#: ``payment_method`` → 1214.
PAYMENT_METHODS: dict[str, int] = {
    "pre_payment_full": 1,
    "pre_payment_part": 2,
    "advance": 3,
    "full_payment": 4,
    "credit_part": 5,
    "credit": 6,
    "credit_pay": 7,
}
#: ``vat`` → 1199.
VAT_RATES: dict[str, int] = {
    "20": 1,
    "10": 2,
    "120": 3,
    "110": 4,
    "0": 5,
    "no": 6,
    "5": 7,
    "7": 8,
    "105": 9,
    "107": 10,
    "22": 11,
    "122": 12,
}
_RETIRED_VATS = {
    "18": "18 % ended on 01.01.2019; FFD 1.2 has no code for it",
    "118": "18/118 ended on 01.01.2019; FFD 1.2 has no code for it",
}
#: ``agent_info.type`` → 1222 bit.
AGENT_TYPES: dict[str, int] = {
    "bank_payment_agent": 0x01,
    "bank_payment_subagent": 0x02,
    "payment_agent": 0x04,
    "payment_subagent": 0x08,
    "solicitor": 0x10,
    "commissionaire": 0x20,
    "agent": 0x40,
}
#: ``payments[].type`` → the :class:`Payments` field (1031, 1081, 1215, 1216, 1217).
PAYMENT_TYPES: dict[str, str] = {
    "cash": "cash",
    "card": "electronic",
    "prepayment": "prepaid",
    "credit": "credit",
    "counter_provisioning": "provision",
}
#: ``payment_object`` → 1212 in its FFD 1.2 meaning.
PAYMENT_OBJECTS: dict[str, int] = {
    "product": 1,
    "product_practical": 2,
    "work": 3,
    "service": 4,
    "gambling_bet": 5,
    "gambling_win": 6,
    "lottery_bet": 7,
    "lottery_win": 8,
    "rid": 9,
    "payment": 10,
    "commission": 11,
    "pay": 12,
    "other": 13,
    "property_right": 14,
    "non_operating": 15,
    "insurance": 16,
    "sales_tax": 17,
    "resort_fee": 18,
    "deposit": 19,
    "consumption": 20,
    "sole_proprietor_cpi_contributins": 21,
    "cpi_contributins": 22,
    "sole_proprietor_cmi_contributins": 23,
    "cmi_contributins": 24,
    "csi_contributins": 25,
    "casino_payment": 26,
    "payment_of_the_money": 27,
    "atnm": 30,
    "atm": 31,
    "tnm": 32,
    "tm": 33,
}
_RETIRED_OBJECTS = {
    "composite": "FFD 1.05's «составной предмет расчёта» has no FFD 1.2 code (12 is a payout)",
}

#: The HTTP status KOMTET answers a rejected task with.
VALIDATION_STATUS = 422
REQUEST_TITLE = "Ошибка в запросе"
RECEIPT_TITLE = "Ошибка валидации чека"

_CHECK_FIELDS = (
    "external_id",
    "intent",
    "print",
    "company",
    "payments",
    "positions",
    "cashier",
    "callback_url",
    *RECEIPT_EXTRA_FIELDS,
)
_CORRECTION_FIELDS = (*_CHECK_FIELDS, "authorised_person", "correction_info")
_POSITION_FIELDS = (
    "name",
    "price",
    "quantity",
    "total",
    "vat",
    "measure",
    "payment_method",
    "payment_object",
    "id",
    *ITEM_EXTRA_FIELDS,
)


def _paths(person: str) -> PathTable:
    return {
        **RECEIPT_PATHS,
        "company": (
            "company",
            {"tax_system": "sno", "place": "payment_address", "address": "place_address"},
        ),
        "cashier": (person, {}),
        "items": ("positions", {**ITEM_PATHS, "sum": "total", "vat_sum": "vat"}),
    }


@attrs.frozen
class KomtetTask:
    """One KOMTET v2 task: the envelope and the receipt it carries."""

    external_id: str  # the shop's operation id
    receipt: Receipt  # a CorrectionReceipt for the *Correction intents
    callback_url: str | None = None
    print_receipt: bool = False  # "print": a paper copy on the register

    @property
    def intent(self) -> str | None:
        """The KOMTET intent of the receipt, or None if its 1054 has no KOMTET name."""
        key = (self.receipt.operation, isinstance(self.receipt, CorrectionReceipt))
        return next((name for name, kind in INTENTS.items() if kind == key), None)


@attrs.frozen
class KomtetProblem:
    """One problem in KOMTET's ``{title, code, description}`` shape, with Kassa's path."""

    path: str  # the JSON path in the KOMTET task (positions[2].price)
    status: int  # the HTTP status: 422
    code: str  # Kassa's stable code (KOMTET publishes no code table)
    title: str
    description: str
    kassa_path: str  # the model path for receipt checks, the JSON path otherwise


# --- KOMTET → model -------------------------------------------------------------------------------


def parse_komtet_task(body: Mapping[str, Any], *, inn: str | None = None) -> KomtetTask:
    """The task of JSON ``body``; every problem at once in the error.

    ``inn`` is the shop's INN (1018), used when ``company.inn`` is omitted.
    """
    task, problems = _read(body, inn)
    if problems:
        raise IngressError(problems)
    assert task is not None
    return task


def _read(body: Any, inn: str | None) -> tuple[KomtetTask | None, list[Problem]]:
    r = Reader()
    if not isinstance(body, Mapping):
        r.problem("$", "field.type", "expected a JSON object")
        return None, r.problems
    codes = {name: i for i, name in enumerate(INTENTS)}
    intent = r.choice(body, "intent", "", codes, required=True)
    number, correction = (0, False) if intent is None else list(INTENTS.values())[intent]
    top = r.object(body, "", _CORRECTION_FIELDS if correction else _CHECK_FIELDS)
    external_id = r.text(top, "external_id", "", required=True, min_length=1)
    callback_url = r.url(top, "callback_url", "")
    print_receipt = bool(r.boolean(top, "print", ""))
    receipt = _read_receipt(r, body, number, correction, inn)
    if intent is None or r.blocked:
        return None, r.problems
    task = KomtetTask(
        external_id=external_id or "",
        receipt=receipt,
        callback_url=callback_url,
        print_receipt=print_receipt,
    )
    return task, r.problems


def _read_receipt(
    r: Reader, obj: Body, operation: int, correction: bool, inn: str | None
) -> Receipt:
    values = r.array(obj, "positions", "", required=True)
    items = [_read_position(r, v, f"positions[{i}]") for i, v in enumerate(values or [])]
    payments = read_payments(r, obj, "", PAYMENT_TYPES, min_length=1)
    extras = read_receipt_extras(r, obj, "", contact_required=False)
    payments = attrs.evolve(payments, cashless=extras.pop("cashless"))
    cashier = _read_person(r, obj, "cashier")
    common: dict[str, Any] = {
        "operation": operation,
        "items": tuple(items),
        "payments": payments,
        "company": _read_company(r, obj, inn),
        "total": sum(item.sum for item in items),
        "cashier": cashier,
        **extras,
    }
    if not correction:
        return Receipt(**common)
    person = _read_person(r, obj, "authorised_person")
    if cashier is not None and person is not None and cashier != person:
        r.problem(
            "authorised_person",
            "ingress.unsupported",
            "the receipt has one cashier (1021, 1203): cashier and authorised_person differ",
        )
    common["cashier"] = person or cashier
    kind, basis = read_correction_info(r, obj, "", extra=("base_name",))
    return CorrectionReceipt(**common, correction_type=kind, basis=basis)


def _read_person(r: Reader, obj: Body, key: str) -> Cashier | None:
    """кассир / уполномоченное лицо: 1021 name and 1203 ИНН."""
    person = r.field_object(obj, key, "", ("name", "inn"))
    if person is None:
        return None
    name = r.text(person, "name", key, required=True)
    return Cashier(name or "", r.text(person, "inn", key))


def _read_company(r: Reader, obj: Body, inn: str | None) -> Company:
    fields = ("payment_address", "sno", "inn", "place_address")
    company = r.field_object(obj, "company", "", fields)
    if obj.get("company") is None:
        r.problem("company", "field.missing", "required field is missing")
    own = r.text(company, "inn", "company")
    if company is not None and company.get("inn") is None and inn is None:
        r.problem("company.inn", "field.missing", "no INN (1018) in the task, and none is known")
    return Company(
        inn=own or inn or "",
        tax_system=r.choice(company, "sno", "company", TAX_SYSTEMS, required=True) or 0,
        place=r.text(company, "payment_address", "company", required=True) or "",
        address=r.text(company, "place_address", "company"),
    )


def _read_position(r: Reader, value: Any, path: str) -> Item:
    obj = r.object(value, path, _POSITION_FIELDS)
    price = r.money(obj, "price", path, required=True) or 0
    quantity = r.quantity(obj, "quantity", path, required=True) or Decimal(0)
    total = r.money(obj, "total", path)
    total = implied_sum(price, quantity) if total is None else total
    vat = r.choice(obj, "vat", path, VAT_RATES, required=True, retired=_RETIRED_VATS) or 0
    r.text(obj, "id", path)
    return Item(
        name=r.text(obj, "name", path, required=True) or "",
        price=price,
        quantity=quantity,
        sum=total,
        vat=vat,
        vat_sum=vat_amount(total, vat),
        payment_method=r.choice(obj, "payment_method", path, PAYMENT_METHODS, required=True) or 0,
        payment_subject=r.choice(
            obj,
            "payment_object",
            path,
            PAYMENT_OBJECTS,
            required=True,
            retired=_RETIRED_OBJECTS,
        )
        or 0,
        measure=r.integer(obj, "measure", path, required=True),
        **read_item_extras(r, obj, path, AGENT_TYPES, with_mode=False, supplier_inn_required=False),
    )


# --- model → KOMTET -------------------------------------------------------------------------------


def to_komtet_task(task: KomtetTask) -> dict[str, Any]:
    """The task's JSON body; what KOMTET cannot say is an ``IngressError``."""
    w = Writer()
    receipt = task.receipt
    intent = task.intent
    if intent is None:
        w.cannot("operation", f"operation {receipt.operation} has no KOMTET intent")
    out: dict[str, Any] = {"external_id": task.external_id, "intent": intent}
    if task.print_receipt:
        out["print"] = True
    put(out, "client", client_out(receipt.client))
    out["company"] = _company_out(receipt.company, w)
    out["payments"] = payments_out(receipt.payments, PAYMENT_TYPES)
    out["positions"] = [
        _position_out(item, f"items[{i}]", w) for i, item in enumerate(receipt.items)
    ]
    if receipt.total != sum(item.sum for item in receipt.items):
        w.cannot("total", "KOMTET has no total: it is the sum of the positions")
    if receipt.agent_type is not None:
        w.cannot("agent_type", "KOMTET has no receipt-level agent kind (1057)")
    if receipt.machine_number is not None:
        w.cannot("machine_number", "KOMTET has no machine number (1036)")
    if receipt.cashier is not None:
        person = {"name": receipt.cashier.name}
        put(person, "inn", receipt.cashier.inn)
        correction = isinstance(receipt, CorrectionReceipt)
        out["authorised_person" if correction else "cashier"] = person
    put(out, "callback_url", task.callback_url)
    out.update(receipt_extras_out(receipt, w))
    if isinstance(receipt, CorrectionReceipt):
        out["correction_info"] = correction_info_out(
            receipt.correction_type, receipt.basis, w, with_name=True
        )
    w.finish()
    return out


def _company_out(company: Company, w: Writer) -> dict[str, Any]:
    sno = name_of(TAX_SYSTEMS, company.tax_system)
    if sno is None:
        w.cannot("company.tax_system", f"{company.tax_system:#x} is not one KOMTET sno")
    if company.email is not None:
        w.cannot("company.email", "KOMTET has no sender e-mail (1117)")
    if company.name is not None:
        w.cannot("company.name", "KOMTET has no field for the user's name (1048)")
    out: dict[str, Any] = {"payment_address": company.place, "sno": sno, "inn": company.inn}
    put(out, "place_address", company.address)
    return out


def _position_out(item: Item, path: str, w: Writer) -> dict[str, Any]:
    vat = name_of(VAT_RATES, item.vat)
    if vat is None:
        w.cannot(f"{path}.vat", f"{item.vat} is not a KOMTET vat")
    if item.vat_sum != vat_amount(item.sum, item.vat):
        w.cannot(f"{path}.vat_sum", "KOMTET carries no VAT amount: 1200 is computed")
    method = name_of(PAYMENT_METHODS, item.payment_method)
    if method is None:
        w.cannot(f"{path}.payment_method", f"{item.payment_method} is not a KOMTET method")
    subject = name_of(PAYMENT_OBJECTS, item.payment_subject)
    if subject is None:
        w.cannot(f"{path}.payment_subject", f"{item.payment_subject} is not a KOMTET object")
    if item.measure is None:
        w.cannot(f"{path}.measure", "KOMTET v2 requires the measure code (2108)")
    out: dict[str, Any] = {
        "name": item.name,
        "price": rubles(item.price),
        "quantity": quantity_out(item.quantity),
        "total": rubles(item.sum),
        "vat": vat,
        "measure": None if item.measure is None else int(item.measure),
        "payment_method": method,
        "payment_object": subject,
    }
    out.update(
        item_extras_out(item, w, path, AGENT_TYPES, with_mode=False, supplier_inn_required=False)
    )
    return out


# --- checks in KOMTET's shape ---------------------------------------------------------------------


def check_komtet_task(
    body: Mapping[str, Any],
    *,
    inn: str | None = None,
    registration: Registration | None = None,
    today: date | None = None,
    more: Callable[[Receipt], Iterable[Problem]] | None = None,
) -> list[KomtetProblem]:
    """Every problem of a task, parsing and receipt checks at once, in KOMTET's shape.

    ``more`` adds the caller's own checks of the receipt (an engine's: what its registers
    cannot carry), reported at the task's paths like the rest.
    """
    task, problems = _read(body, inn)
    out = [
        KomtetProblem(
            p.path, VALIDATION_STATUS, p.code, REQUEST_TITLE, f"{p.path}: {p.message}", p.path
        )
        for p in problems
    ]
    if task is None:
        return out
    receipt = task.receipt
    correction = isinstance(receipt, CorrectionReceipt)
    given = correction and body.get("authorised_person") is not None
    table = _paths("authorised_person" if given else "cashier")
    limits = Limits(max_items=100)
    contact = given_contact(body)
    found = validate(receipt, registration=registration, limits=limits, today=today)
    if more is not None:  # a part already found wrong is not reported twice
        paths = {p.path for p in found}
        found += [p for p in more(receipt) if p.path not in paths]
    for p in found:
        path = "intent" if p.path == "operation" else translate(p.path, table, contact)
        description = f"{path}: {p.message}"
        out.append(
            KomtetProblem(path, VALIDATION_STATUS, p.code, RECEIPT_TITLE, description, p.path)
        )
    return out


def komtet_error(problems: Sequence[KomtetProblem]) -> dict[str, Any]:
    """KOMTET's error body for a rejected task: the first problem's title and code, every
    problem in the description."""
    if not problems:
        raise ValueError("an error body needs at least one problem")
    first = problems[0]
    return {
        "title": first.title,
        "code": first.code,
        "description": "; ".join(p.description for p in problems),
    }
