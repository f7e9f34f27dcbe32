"""ATOL Online v5 request JSON (FFD 1.2) ↔ the receipt model, and ATOL's error codes.

Existing CMS modules and payment systems post ``POST …/possystem/v5/{group}/{operation}`` bodies;
Kassa takes them unchanged. :func:`parse_atol_v5` maps (operation, body) onto a
:class:`~protocols.documents.model.Receipt` (or ``CorrectionReceipt`` for ``*_correction``),
:func:`to_atol_v5` maps it back, and :func:`check_atol_v5` runs parsing plus
:func:`protocols.validation.validate` and answers in ATOL's error codes. Source of the schema:
``cloud-apis.md`` §2.1–2.4 ([AT1] ``ili/atol-online``, [AT3] ``mygento/kkm``, [AT4]).

Fields (ATOL name → model, FFD tag):

- envelope: ``external_id`` (≤ 128) → :attr:`AtolRequest.external_id`; ``timestamp``
  ``dd.mm.yyyy HH:MM:SS`` → ``timestamp`` (naive); ``service.callback_url`` (≤ 256, http(s)) →
  ``callback_url``; ``ism_optional`` → ``ism_optional``; ``receipt`` / ``correction``.
- ``client``: ``email`` / ``phone`` → ``client.contact`` (1008); ``name`` 1227, ``inn`` 1228,
  ``birthdate`` 1243, ``citizenship`` 1244, ``document_code`` 1245, ``document_data`` 1246,
  ``address`` 1254.
- ``company``: ``email`` 1117, ``sno`` → ``tax_system`` 1055 (``osn`` 0x01, ``usn_income``
  0x02, ``usn_income_outcome`` 0x04, ``envd`` 0x08, ``esn`` 0x10, ``patent`` 0x20), ``inn`` 1018,
  ``payment_address`` → ``place`` 1187, ``location`` → ``address`` 1009.
- ``agent_info.type`` → ``agent_type`` 1057; ``items[]`` → ``items`` 1059; ``total`` 1020;
  ``cashier`` 1021 and ``cashier_inn`` 1203 → ``cashier``; ``additional_check_props`` 1192;
  ``additional_user_props`` 1084; ``operating_check_props`` 1270 (``name`` 1271 as a digit
  string, ``value`` 1272, ``timestamp`` 1273); ``sectoral_check_props`` 1261; ``device_number``
  → ``machine_number`` 1036; ``internet`` 1125; ``timezone`` → ``time_zone`` 1011;
  ``cashless_payments[]`` → ``payments.cashless`` 1234/1235 (``sum`` 1082, ``method`` 1236,
  ``id`` 1237, ``additional_info`` 1238).
- ``payments[].type``: 0 → ``cash`` 1031, 1 → ``electronic`` 1081, 2 → ``prepaid`` 1215,
  3 → ``credit`` 1216, 4 → ``provision`` 1217, summed per tag. 5–9 are extended kinds that a
  register maps onto 0–4 by its own settings, which Kassa does not know: refused
  (``ingress.unsupported``).
- ``vats[]``: declared totals, checked against the items (below), not carried.
- items: ``name`` 1030, ``price`` 1079, ``quantity`` 1023 (≤ 3 decimals), ``measure`` 2108,
  ``sum`` 1043, ``payment_method`` 1214 (``full_prepayment`` 1 … ``credit_payment`` 7),
  ``payment_object`` 1212 (v5 integer, passed through; the v4 names are read too), ``vat.type``
  1199 (``vat20`` 1, ``vat10`` 2, ``vat120`` 3, ``vat110`` 4, ``vat0`` 5, ``none`` 6, ``vat5`` 7,
  ``vat7`` 8, ``vat105`` 9, ``vat107`` 10, ``vat22`` 11, ``vat122`` 12), ``vat.sum`` 1200,
  ``user_data`` 1191, ``excise`` 1229, ``country_code`` 1230, ``declaration_number`` 1231,
  ``mark_quantity`` 1291 (1293/1294), ``mark_processing_mode`` 2102, ``mark_code`` 1163
  (``gs10`` → kind ``gs1``, ``short`` → ``kmk``, ``fur`` → ``mi``, ``egais20/30`` →
  ``egais2/3``, the others by name), ``planned_status`` 2003, ``sectoral_item_props`` 1260,
  ``agent_info`` 1222 + 1223 (``paying_agent`` 1044/1073, ``receive_payments_operator`` 1074,
  ``money_transfer_operator`` 1075/1026/1005/1016; types ``bank_paying_agent`` 0x01 …
  ``another`` 0x40), ``supplier_info`` 1224 (1225, 1171) + 1226, ``wholesale`` (refused when true).

Error codes (ATOL ``type: system``; [AT3][AT4]) — :class:`AtolProblem` keeps Kassa's code and
path beside ATOL's:

=============================================  =====  ========================================
Kassa code                                     ATOL   meaning in ATOL
=============================================  =====  ========================================
``json.syntax``                                40     некорректный запрос
``operation.unknown``                          31     операция не поддерживается
``json.duplicate_key``, ``field.*``,           13     ошибка валидации входящего запроса
``enum.unknown``, ``number.exponent``,                (the request schema)
``number.size``, ``money.precision``,
``quantity.precision``
``ingress.unsupported``, ``vats.mismatch``,    32     ошибка валидации входного чека, the
every code of :mod:`protocols.validation`             document is not registered
=============================================  =====  ========================================

Where a receipt check has a counterpart in the ATOL driver (DTO) codes that a register would
answer with, it is given as :attr:`AtolProblem.driver_code`: −3803 неверная цена (сумма) for
``item.sum_mismatch`` / ``money.negative`` / ``money.too_large``; −3804 неверное количество for
``item.quantity_not_positive``; −3809 недопустимый ИНН for ``inn.invalid``; −3895 неверная
длина for ``text.too_long`` / ``text.wrong_width``; −3897 чек оплачен не полностью for
``total.payments_mismatch`` when the payments fall short; −4021 некорректная СНО for
``registration.tax_system`` and an out-of-range 1055; −4022 недопустимый номер ставки налога for
an out-of-range item VAT. A total that is not the sum of the items (``total.items_mismatch``)
is ATOL's 32 at ``receipt.total``.

Assumptions where the reference is silent:

- ``client.email`` and ``client.phone`` both given: 1008 holds one value, and the e-mail wins
  (the phone is not kept). On the way back a 1008 with ``@`` is an e-mail, else a phone.
- ``company.sno`` may be omitted in ATOL (the register's only system is used): the caller
  passes that system as ``tax_system=``; without it, a missing ``sno`` is ``field.missing``.
- ``company.email``, ``client`` with a contact, ``measure``, ``supplier_info.inn``,
  ``cashless_payments[].id`` and ``correction_info.base_date`` are required, as in the
  reference; a receipt without them cannot go back to ATOL (``ingress.inexpressible``).
- Receipt-level ``agent_info`` sub-blocks and ``supplier_info`` (an FFD 1.05 placement) are
  copied into every item that lacks its own, as FFD 1.2 carries them per item; on the way back
  they are written per item and the receipt keeps only ``agent_info.type`` (1057).
- ``vats`` is checked, not carried: per rate, the declared sum must be the items' VAT by either
  rounding rule of :mod:`protocols.documents.vat` (sum of item amounts, or from the subtotal);
  for ``vat0`` / ``none`` either 0 or the turnover is accepted. The way back omits ``vats``.
- ``gs1m`` is base64 of the whole scanned code (reference); every other ``mark_code`` kind is
  the code text itself. 2115 is derived from the decoded code. ``mark_processing_mode`` is
  written back only when it is not 0.
- ``mark_quantity`` with ``quantity`` 1 (as ATOL describes it for marked goods) is passed
  through as it is: Kassa's check wants ``quantity`` = numerator / denominator.
- ``payment_object`` as a v4 name is accepted (``award`` = 12 in its FFD 1.2 meaning);
  ``composite`` (FFD 1.05's 12) has no FFD 1.2 code and is refused; ``vat18`` / ``vat118``
  are refused as abolished.
- Magnitude limits of the ATOL SDKs (price ≤ 42 949 672.95, quantity ≤ 99 999.999, string
  lengths of FFD tags) are left to :func:`~protocols.validation.validate`, which checks the
  FFD limits.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import attrs

from protocols.documents.model import (
    AgentData,
    Cashier,
    Company,
    CorrectionReceipt,
    Item,
    Receipt,
    Supplier,
)
from protocols.documents.vat import TURNOVER_RATES, VatTotalRule, vat_totals
from protocols.ingress._common import (
    DATETIME_FORMAT,
    ITEM_EXTRA_FIELDS,
    ITEM_PATHS,
    RECEIPT_EXTRA_FIELDS,
    RECEIPT_PATHS,
    Body,
    IngressError,
    PathTable,
    Reader,
    Writer,
    agent_out,
    client_out,
    correction_info_out,
    given_contact,
    item_extras_out,
    join,
    name_of,
    payments_out,
    put,
    quantity_out,
    read_agent,
    read_correction_info,
    read_item_extras,
    read_payments,
    read_receipt_extras,
    read_supplier,
    receipt_extras_out,
    rubles,
    translate,
)
from protocols.validation import Limits, Problem, Registration, validate

#: ATOL operation → (1054 признак расчёта, whether it is a correction).
OPERATIONS: dict[str, tuple[int, bool]] = {
    "sell": (1, False),
    "sell_refund": (2, False),
    "buy": (3, False),
    "buy_refund": (4, False),
    "sell_correction": (1, True),
    "sell_refund_correction": (2, True),
    "buy_correction": (3, True),
    "buy_refund_correction": (4, True),
}
#: ``company.sno`` → 1055 bit.
TAX_SYSTEMS: dict[str, int] = {
    "osn": 0x01,
    "usn_income": 0x02,
    "usn_income_outcome": 0x04,
    "envd": 0x08,
    "esn": 0x10,
    "patent": 0x20,
}
#: ``payment_method`` → 1214.
PAYMENT_METHODS: dict[str, int] = {
    "full_prepayment": 1,
    "prepayment": 2,
    "advance": 3,
    "full_payment": 4,
    "partial_payment": 5,
    "credit": 6,
    "credit_payment": 7,
}
#: ``vat.type`` → 1199.
VAT_TYPES: dict[str, int] = {
    "vat20": 1,
    "vat10": 2,
    "vat120": 3,
    "vat110": 4,
    "vat0": 5,
    "none": 6,
    "vat5": 7,
    "vat7": 8,
    "vat105": 9,
    "vat107": 10,
    "vat22": 11,
    "vat122": 12,
}
_RETIRED_VATS = {
    "vat18": "18 % ended on 01.01.2019; FFD 1.2 has no code for it",
    "vat118": "18/118 ended on 01.01.2019; FFD 1.2 has no code for it",
}
#: ``agent_info.type`` → 1222 / 1057 bit.
AGENT_TYPES: dict[str, int] = {
    "bank_paying_agent": 0x01,
    "bank_paying_subagent": 0x02,
    "paying_agent": 0x04,
    "paying_subagent": 0x08,
    "attorney": 0x10,
    "commission_agent": 0x20,
    "another": 0x40,
}
#: ``payments[].type`` → the :class:`Payments` field (1031, 1081, 1215, 1216, 1217).
PAYMENT_TYPES: dict[int, str] = {
    0: "cash",
    1: "electronic",
    2: "prepaid",
    3: "credit",
    4: "provision",
}
_EXTENDED_PAYMENT_TYPES = dict.fromkeys(
    range(5, 10),
    "an extended payment kind that the register maps onto 0–4 by its own settings, "
    "which Kassa does not know: send 0 cash, 1 electronic, 2 prepayment, 3 credit "
    "or 4 counter-provision",
)
#: v4 ``payment_object`` names → 1212 in its FFD 1.2 meaning.
V4_PAYMENT_OBJECTS: dict[str, int] = {
    "commodity": 1,
    "excise": 2,
    "job": 3,
    "service": 4,
    "gambling_bet": 5,
    "gambling_prize": 6,
    "lottery": 7,
    "lottery_prize": 8,
    "intellectual_activity": 9,
    "payment": 10,
    "agent_commission": 11,
    "award": 12,
    "another": 13,
    "property_right": 14,
    "non-operating_gain": 15,
    "insurance_premium": 16,
    "sales_tax": 17,
    "resort_fee": 18,
    "deposit": 19,
    "expense": 20,
    "pension_insurance_ip": 21,
    "pension_insurance": 22,
    "medical_insurance_ip": 23,
    "medical_insurance": 24,
    "social_insurance": 25,
    "casino_payment": 26,
}
_RETIRED_OBJECTS = {
    "composite": "FFD 1.05's «составной предмет расчёта» has no FFD 1.2 code (12 is a payout)",
}

#: ATOL's system error codes that Kassa answers with, and their ATOL texts.
ATOL_CODES: dict[int, str] = {
    13: "Ошибка валидации входящего запроса",
    31: "Операция не поддерживается",
    32: "Ошибка валидации входного чека",
    40: "Некорректный запрос",
}
_INGRESS_TO_ATOL: dict[str, int] = {
    "json.syntax": 40,
    "operation.unknown": 31,
    "ingress.unsupported": 32,
    "vats.mismatch": 32,
}
_DRIVER_CODES: dict[str, int] = {
    "item.sum_mismatch": -3803,
    "money.negative": -3803,
    "money.too_large": -3803,
    "item.quantity_not_positive": -3804,
    "inn.invalid": -3809,
    "text.too_long": -3895,
    "text.wrong_width": -3895,
    "registration.tax_system": -4021,
}
_ITEM_VAT = re.compile(r"\Aitems\[\d+\]\.vat\Z")

_ENVELOPE_FIELDS = ("external_id", "timestamp", "service", "ism_optional")
_RECEIPT_FIELDS = (
    "company",
    "agent_info",
    "supplier_info",
    "items",
    "payments",
    "vats",
    "total",
    "cashier",
    "cashier_inn",
    "device_number",
    *RECEIPT_EXTRA_FIELDS,
)
_ITEM_FIELDS = (
    "name",
    "price",
    "quantity",
    "measure",
    "sum",
    "payment_method",
    "payment_object",
    "vat",
    "mark_processing_mode",
    *ITEM_EXTRA_FIELDS,
)
_QUANTITY_PLACES = 3

_PATHS: PathTable = {
    **RECEIPT_PATHS,
    "company": (
        "company",
        {"tax_system": "sno", "place": "payment_address", "address": "location"},
    ),
    "cashier.name": "cashier",
    "cashier.inn": "cashier_inn",
    "machine_number": "device_number",
    "agent_type": "agent_info.type",
    "items": ("items", {**ITEM_PATHS, "vat": "vat.type", "vat_sum": "vat.sum"}),
}


@attrs.frozen
class AtolRequest:
    """One ATOL v5 registration request: the envelope and the receipt it carries."""

    external_id: str  # the sender's idempotency key within its group
    timestamp: datetime  # the document's time in the sender's system, naive
    receipt: Receipt  # a CorrectionReceipt for the *_correction operations
    callback_url: str | None = None  # service.callback_url
    ism_optional: bool | None = None  # register anyway if the marking system is silent

    @property
    def operation(self) -> str | None:
        """The ATOL operation of the receipt, or None if its 1054 has no ATOL name."""
        key = (self.receipt.operation, isinstance(self.receipt, CorrectionReceipt))
        return next((name for name, kind in OPERATIONS.items() if kind == key), None)


@attrs.frozen
class AtolProblem:
    """One problem in ATOL's terms, with Kassa's code and path kept beside it."""

    path: str  # the JSON path in the ATOL body (receipt.items[2].price)
    code: int  # ATOL's system error code: 13, 31, 32 or 40
    kassa_code: str  # the ingress or validation code
    kassa_path: str  # the model path for receipt checks, the JSON path otherwise
    message: str
    driver_code: int | None = None  # the DTO code a register would answer with, if any


# --- ATOL → model ---------------------------------------------------------------------------------


def parse_atol_v5(
    operation: str, body: Mapping[str, Any], *, tax_system: int | None = None
) -> AtolRequest:
    """The request for ``operation`` with JSON ``body``; every problem at once in the error.

    ``tax_system`` is the 1055 bit to use when ``company.sno`` is omitted (ATOL then uses the
    register's only system).
    """
    request, problems = _read(operation, body, tax_system)
    if problems:
        raise IngressError(problems)
    assert request is not None
    return request


def _read(
    operation: str, body: Any, tax_system: int | None
) -> tuple[AtolRequest | None, list[Problem]]:
    r = Reader()
    kind = OPERATIONS.get(operation)
    if kind is None:
        r.problem(
            "operation", "operation.unknown", f"{operation!r} is not one of {', '.join(OPERATIONS)}"
        )
        return None, r.problems
    number, correction = kind
    root = "correction" if correction else "receipt"
    if not isinstance(body, Mapping):
        r.problem("$", "field.type", "expected a JSON object")
        return None, r.problems
    top = r.object(body, "", (*_ENVELOPE_FIELDS, root))
    external_id = r.text(top, "external_id", "", required=True, min_length=1, max_length=128)
    timestamp = r.timestamp(top, "timestamp", "", required=True)
    service = r.field_object(top, "service", "", ("callback_url",))
    callback_url = r.url(service, "callback_url", "service")
    ism_optional = r.boolean(top, "ism_optional", "")
    receipt = _read_receipt(r, body, root, number, correction, tax_system)
    if receipt is None or r.blocked:
        return None, r.problems
    request = AtolRequest(
        external_id=external_id or "",
        timestamp=timestamp or datetime(1970, 1, 1),
        receipt=receipt,
        callback_url=callback_url,
        ism_optional=ism_optional,
    )
    return request, r.problems


def _read_receipt(
    r: Reader,
    top: Body,
    root: str,
    operation: int,
    correction: bool,
    tax_system: int | None,
) -> Receipt | None:
    fields = (*_RECEIPT_FIELDS, "correction_info") if correction else _RECEIPT_FIELDS
    obj = r.field_object(top, root, "", fields)
    if obj is None:
        if top.get(root) is None:
            r.problem(root, "field.missing", "required field is missing")
        return None
    path = root
    company = _read_company(r, obj, path, tax_system)
    agent_type, agent = read_agent(r, obj, path, AGENT_TYPES)
    supplier = read_supplier(r, obj, path, inn_required=True)
    values = r.array(obj, "items", path, required=True)
    items = [_read_item(r, v, f"{path}.items[{i}]") for i, v in enumerate(values or [])]
    if agent is not None or supplier is not None:
        items = [_with_receipt_agent(item, agent_type, agent, supplier) for item in items]
    payments = read_payments(
        r,
        obj,
        path,
        PAYMENT_TYPES,
        unsupported=_EXTENDED_PAYMENT_TYPES,
        min_length=1,
        max_length=10,
    )
    vats = _read_vats(r, obj, path)
    total = r.money(obj, "total", path, required=True)
    cashier_name = r.text(obj, "cashier", path)
    cashier_inn = r.text(obj, "cashier_inn", path)
    if cashier_name is None and cashier_inn is not None:
        r.problem(
            join(path, "cashier_inn"),
            "ingress.unsupported",
            "the model keeps the cashier's INN (1203) only with the name (1021): give cashier",
        )
    extras = read_receipt_extras(r, obj, path, contact_required=True)
    payments = attrs.evolve(payments, cashless=extras.pop("cashless"))
    common: dict[str, Any] = {
        "operation": operation,
        "items": tuple(items),
        "payments": payments,
        "company": company,
        "total": total or 0,
        "cashier": None if cashier_name is None else Cashier(cashier_name, cashier_inn),
        "agent_type": agent_type,
        "machine_number": r.text(obj, "device_number", path),
        **extras,
    }
    receipt: Receipt
    if correction:
        kind, basis = read_correction_info(r, obj, path)
        receipt = CorrectionReceipt(**common, correction_type=kind, basis=basis)
    else:
        receipt = Receipt(**common)
    if not r.blocked and vats is not None:
        _check_vats(r, vats, receipt, path)
    return receipt


def _with_receipt_agent(
    item: Item, kind: int | None, agent: AgentData | None, supplier: Supplier | None
) -> Item:
    """FFD 1.2 carries agent and supplier data per item: the receipt's fill the gaps."""
    return attrs.evolve(
        item,
        agent_type=item.agent_type if item.agent_type is not None else kind,
        agent=item.agent or agent,
        supplier=item.supplier or supplier,
    )


def _read_company(r: Reader, obj: Body, path: str, tax_system: int | None) -> Company:
    where = join(path, "company")
    fields = ("email", "sno", "inn", "payment_address", "location")
    company = r.field_object(obj, "company", path, fields)
    if obj.get("company") is None:
        r.problem(where, "field.missing", "required field is missing")
    sno = r.choice(company, "sno", where, TAX_SYSTEMS)
    if company is not None and company.get("sno") is None:
        if tax_system is None:
            r.problem(
                join(where, "sno"),
                "field.missing",
                "no tax system (1055) in the request, and none is known for the group",
            )
        sno = tax_system
    return Company(
        inn=r.text(company, "inn", where, required=True) or "",
        tax_system=sno or 0,
        place=r.text(company, "payment_address", where, required=True) or "",
        address=r.text(company, "location", where),
        email=r.text(company, "email", where, required=True),
    )


def _read_item(r: Reader, value: Any, path: str) -> Item:
    obj = r.object(value, path, _ITEM_FIELDS)
    vat = r.field_object(obj, "vat", path, ("type", "sum"))
    if obj is not None and obj.get("vat") is None:
        r.problem(join(path, "vat"), "field.missing", "required field is missing")
    where = join(path, "vat")
    return Item(
        name=r.text(obj, "name", path, required=True) or "",
        price=r.money(obj, "price", path, required=True) or 0,
        quantity=r.quantity(obj, "quantity", path, required=True, max_places=_QUANTITY_PLACES)
        or Decimal(0),
        sum=r.money(obj, "sum", path, required=True) or 0,
        vat=r.choice(vat, "type", where, VAT_TYPES, required=True, retired=_RETIRED_VATS) or 0,
        vat_sum=r.money(vat, "sum", where),
        payment_method=r.choice(obj, "payment_method", path, PAYMENT_METHODS, required=True) or 0,
        payment_subject=_payment_object(r, obj, path) or 0,
        measure=r.integer(obj, "measure", path, required=True),
        **read_item_extras(r, obj, path, AGENT_TYPES, with_mode=True, supplier_inn_required=True),
    )


def _payment_object(r: Reader, obj: Body | None, path: str) -> int | None:
    """1212: an integer in v5 (passed through for validation), or a v4 name."""
    if obj is not None and isinstance(obj.get("payment_object"), str):
        return r.choice(obj, "payment_object", path, V4_PAYMENT_OBJECTS, retired=_RETIRED_OBJECTS)
    return r.integer(obj, "payment_object", path, required=True)


def _read_vats(r: Reader, obj: Body, path: str) -> list[tuple[int, int, str]] | None:
    values = r.array(obj, "vats", path, min_length=1, max_length=6)
    if values is None:
        return None
    out = []
    for i, value in enumerate(values):
        where = f"{path}.vats[{i}]"
        entry = r.object(value, where, ("type", "sum"))
        rate = r.choice(entry, "type", where, VAT_TYPES, required=True, retired=_RETIRED_VATS)
        amount = r.money(entry, "sum", where, required=True)
        if rate is not None and amount is not None:
            out.append((rate, amount, join(where, "sum")))
    return out


def _check_vats(r: Reader, vats: list[tuple[int, int, str]], receipt: Receipt, path: str) -> None:
    """Declared VAT totals (``vats``) against the items: the model recomputes them, so a
    declaration that differs would be silently replaced — it is a problem instead."""
    lines = [(item.sum, item.vat) for item in receipt.items]
    by_rule = [vat_totals(lines, rule) for rule in VatTotalRule]
    declared: dict[int, tuple[int, str]] = {}
    for rate, amount, where in vats:
        before = declared.get(rate, (0, where))[0]
        declared[rate] = (before + amount, where)
    for rate in sorted(set(declared) | set(by_rule[0])):
        amount, where = declared.get(rate, (0, join(path, "vats")))
        if rate in TURNOVER_RATES:
            allowed = {0, by_rule[0].get(rate, 0)}
        else:
            allowed = {totals.get(rate, 0) for totals in by_rule}
        if amount not in allowed:
            wanted = " or ".join(str(rubles(a)) for a in sorted(allowed))
            r.problem(
                where,
                "vats.mismatch",
                f"declared VAT {rubles(amount)} at {name_of(VAT_TYPES, rate)} is not the "
                f"items' {wanted}",
            )


# --- model → ATOL ---------------------------------------------------------------------------------


def to_atol_v5(request: AtolRequest) -> tuple[str, dict[str, Any]]:
    """(operation, body) of a request; what ATOL cannot say is an ``IngressError``."""
    w = Writer()
    operation = request.operation
    if operation is None:
        w.cannot("operation", f"operation {request.receipt.operation} has no ATOL name")
    body: dict[str, Any] = {
        "external_id": request.external_id,
        "timestamp": request.timestamp.strftime(DATETIME_FORMAT),
    }
    if request.callback_url is not None:
        body["service"] = {"callback_url": request.callback_url}
    if request.ism_optional is not None:
        body["ism_optional"] = request.ism_optional
    receipt = request.receipt
    root = "correction" if isinstance(receipt, CorrectionReceipt) else "receipt"
    body[root] = _receipt_out(receipt, w)
    w.finish()
    return operation or "", body


def _receipt_out(receipt: Receipt, w: Writer) -> dict[str, Any]:
    client = receipt.client
    if client is None or client.contact is None:
        w.cannot("client.contact", "ATOL requires the buyer's email or phone (1008)")
    out: dict[str, Any] = {
        "client": client_out(client),
        "company": _company_out(receipt.company, w),
    }
    if receipt.agent_type is not None:
        put(out, "agent_info", agent_out(receipt.agent_type, None, AGENT_TYPES, w, ""))
    out["items"] = [_item_out(item, f"items[{i}]", w) for i, item in enumerate(receipt.items)]
    out["payments"] = payments_out(receipt.payments, PAYMENT_TYPES)
    out["total"] = rubles(receipt.total)
    if receipt.cashier is not None:
        out["cashier"] = receipt.cashier.name
        put(out, "cashier_inn", receipt.cashier.inn)
    out.update(receipt_extras_out(receipt, w))
    put(out, "device_number", receipt.machine_number)
    if isinstance(receipt, CorrectionReceipt):
        out["correction_info"] = correction_info_out(
            receipt.correction_type, receipt.basis, w, with_name=False
        )
    return out


def _company_out(company: Company, w: Writer) -> dict[str, Any]:
    sno = name_of(TAX_SYSTEMS, company.tax_system)
    if sno is None:
        w.cannot("company.tax_system", f"{company.tax_system:#x} is not one ATOL sno")
    if company.email is None:
        w.cannot("company.email", "ATOL requires the sender's e-mail (1117)")
    if company.name is not None:
        w.cannot("company.name", "ATOL has no field for the user's name (1048)")
    out = {"email": company.email, "sno": sno, "inn": company.inn, "payment_address": company.place}
    put(out, "location", company.address)
    return out


def _item_out(item: Item, path: str, w: Writer) -> dict[str, Any]:
    vat: dict[str, Any] = {"type": name_of(VAT_TYPES, item.vat)}
    if vat["type"] is None:
        w.cannot(f"{path}.vat", f"{item.vat} is not an ATOL vat type")
    put(vat, "sum", None if item.vat_sum is None else rubles(item.vat_sum))
    method = name_of(PAYMENT_METHODS, item.payment_method)
    if method is None:
        w.cannot(f"{path}.payment_method", f"{item.payment_method} is not an ATOL method")
    if item.measure is None:
        w.cannot(f"{path}.measure", "ATOL v5 requires the measure code (2108)")
    quantity = quantity_out(item.quantity)
    if isinstance(quantity, Decimal) and -int(quantity.as_tuple().exponent) > _QUANTITY_PLACES:
        w.cannot(f"{path}.quantity", f"ATOL carries at most {_QUANTITY_PLACES} decimal places")
    out: dict[str, Any] = {
        "name": item.name,
        "price": rubles(item.price),
        "quantity": quantity,
        "measure": None if item.measure is None else int(item.measure),
        "sum": rubles(item.sum),
        "payment_method": method,
        "payment_object": int(item.payment_subject),
        "vat": vat,
    }
    out.update(
        item_extras_out(item, w, path, AGENT_TYPES, with_mode=True, supplier_inn_required=True)
    )
    return out


# --- checks in ATOL's codes -----------------------------------------------------------------------


def atol_code(kassa_code: str) -> int:
    """ATOL's system error code for an ingress problem code (validation codes are 32)."""
    return _INGRESS_TO_ATOL.get(kassa_code, 13)


def check_atol_v5(
    operation: str,
    body: Mapping[str, Any],
    *,
    tax_system: int | None = None,
    registration: Registration | None = None,
    today: date | None = None,
    more: Callable[[Receipt], Iterable[Problem]] | None = None,
) -> list[AtolProblem]:
    """Every problem of a request, parsing and receipt checks at once, in ATOL's codes.

    ``more`` adds the caller's own checks of the receipt (an engine's: what its registers
    cannot carry), reported at the body's paths like the rest.
    """
    request, problems = _read(operation, body, tax_system)
    out = [AtolProblem(p.path, atol_code(p.code), p.code, p.path, p.message) for p in problems]
    if request is None:
        return out
    receipt = request.receipt
    root = "correction" if isinstance(receipt, CorrectionReceipt) else "receipt"
    limits = Limits(max_items=100)
    contact = given_contact(body.get(root))
    found = validate(receipt, registration=registration, limits=limits, today=today)
    if more is not None:  # a part already found wrong is not reported twice
        paths = {p.path for p in found}
        found += [p for p in more(receipt) if p.path not in paths]
    for p in found:
        where = translate(p.path, _PATHS, contact)
        path = "operation" if p.path == "operation" else f"{root}.{where}"
        out.append(AtolProblem(path, 32, p.code, p.path, p.message, _driver_code(p, receipt)))
    return out


def _driver_code(problem: Problem, receipt: Receipt) -> int | None:
    if problem.code == "enum.out_of_range":
        if problem.path == "company.tax_system":
            return -4021
        return -4022 if _ITEM_VAT.match(problem.path) else None
    if problem.code == "total.payments_mismatch":
        return -3897 if receipt.payments.total < receipt.total else None
    return _DRIVER_CODES.get(problem.code)


def atol_error(problems: Sequence[AtolProblem]) -> dict[str, Any]:
    """ATOL's ``error`` object for a rejected request: the most basic code, every field listed."""
    if not problems:
        raise ValueError("an error object needs at least one problem")
    code = next(c for c in (40, 31, 13, 32) if any(p.code == c for p in problems))
    fields = "; ".join(f"{p.path}: {p.message}" for p in problems)
    return {"code": code, "text": f"{ATOL_CODES[code]}: {fields}", "type": "system"}
