"""Hypothesis strategies for valid receipts of every kind, shared by the document tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import attrs
from hypothesis import assume
from hypothesis import strategies as st

from protocols.documents.model import (
    AgentData,
    Cashier,
    CashlessPayment,
    Client,
    Company,
    CorrectionBasis,
    CorrectionReceipt,
    FractionalQuantity,
    IndustryProp,
    Item,
    Marking,
    Payments,
    Receipt,
    Supplier,
    UserProp,
)
from protocols.documents.vat import vat_amount
from protocols.fiscal_sign import marking_control_code
from protocols.tlv.enums import AgentType, PaymentMethod, PaymentSubject, TaxSystem

WORDS = st.text("абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВЕЁЖЗ №%0123456789.,-", min_size=1, max_size=30)
SUBJECTS = [s for s in PaymentSubject if s not in (31, 33)]
#: Serials the emulated ФН and ОИСМ refuse by rule (emulator/marking.py): a valid receipt's
#: codes pass their check.
_FAILING_SERIALS = ("REJECT", "FORGED", "SILENT")


def inn10(body: str) -> str:
    weights = (2, 4, 10, 3, 5, 9, 4, 6, 8)
    return body + str(sum(w * int(d) for w, d in zip(weights, body, strict=True)) % 11 % 10)


def inn12(body: str) -> str:
    first = body + str(
        sum(w * int(d) for w, d in zip((7, 2, 4, 10, 3, 5, 9, 4, 6, 8), body, strict=True))
        % 11
        % 10
    )
    return first + str(
        sum(w * int(d) for w, d in zip((3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8), first, strict=True))
        % 11
        % 10
    )


def gtin14(body: str) -> str:
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


INNS = st.one_of(
    st.text("0123456789", min_size=9, max_size=9).map(inn10),
    st.text("0123456789", min_size=10, max_size=10).map(inn12),
)
PERSON_INNS = st.text("0123456789", min_size=10, max_size=10).map(inn12)
PHONES = st.text("0123456789", min_size=10, max_size=10).map(lambda d: "+7" + d)
EMAILS = st.from_regex(r"\A[a-z]{1,8}@[a-z]{1,8}\.ru\Z")


@st.composite
def markings(draw: st.DrawFn) -> Marking:
    gtin = gtin14(draw(st.text("0123456789", min_size=13, max_size=13)))
    serial = draw(
        st.text("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789!%&", min_size=6, max_size=13).filter(
            lambda serial: not serial.startswith(_FAILING_SERIALS)
        )
    )
    code = f"01{gtin}21{serial}"
    key = draw(st.text("ABCDEF0123456789", min_size=4, max_size=4))
    sign = draw(st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/=", min_size=44, max_size=44))
    scanned = f"{code}\x1d91{key}\x1d92{sign}"
    return Marking(
        kind="gs1m",
        code=code,
        control_code=marking_control_code(scanned.encode("ascii")),
        scanned=scanned,
        planned_status=draw(st.sampled_from([None, 1])),
        check_result=draw(st.sampled_from([None, 0, 15])),
    )


@st.composite
def items(draw: st.DrawFn, method: int) -> Item:
    marked = draw(st.booleans())
    fraction = None
    if marked and draw(st.booleans()):
        denominator = draw(st.sampled_from([2, 4, 5, 8, 10, 20, 25, 50, 100]))
        numerator = draw(st.integers(1, denominator - 1))
        fraction = FractionalQuantity(numerator, denominator)
        quantity = Decimal(numerator) / Decimal(denominator)
    else:
        scale = draw(st.integers(0, 3))
        quantity = Decimal(draw(st.integers(1, 10**6))).scaleb(-scale)
    price = draw(st.integers(0, 10**7))
    total = int((price * quantity).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    vat = draw(st.integers(1, 12))
    agent_type = draw(st.sampled_from([None, *[int(a) for a in AgentType]]))
    supplier = None
    agent = None
    if agent_type is not None:
        supplier = Supplier(name=draw(WORDS), phones=(draw(PHONES),), inn=draw(INNS))
        agent = AgentData(phones=(draw(PHONES),), operation=draw(st.sampled_from([None, "Оплата"])))
    return Item(
        name=draw(WORDS),
        price=price,
        quantity=quantity,
        sum=total,
        vat=vat,
        vat_sum=vat_amount(total, vat),
        payment_method=method,
        payment_subject=draw(st.sampled_from([33, 31]))
        if marked
        else draw(st.sampled_from(SUBJECTS)),
        country_code=draw(st.sampled_from([None, "643", "156"])),
        declaration=draw(st.sampled_from([None, "10702070/011125/0012345"])),
        excise=draw(st.sampled_from([None, 0, 1500])),
        agent_type=agent_type,
        agent=agent,
        supplier=supplier,
        user_data=draw(st.sampled_from([None, "партия 7"])),
        industry_props=draw(
            st.sampled_from([(), (IndustryProp("030", "21.11.2025", "477", "UUID=1"),)])
        ),
        marking=draw(markings()) if marked else None,
        fraction=fraction,
    )


@st.composite
def receipts(draw: st.DrawFn) -> Receipt:
    """A valid receipt of any kind: sale/refund/purchase, prepayment, settlement, credit,
    correction; with marked goods, agents and fractional quantities."""
    flow = draw(st.sampled_from(["plain", "prepayment", "settlement", "credit", "correction"]))
    method = {
        "plain": PaymentMethod.FULL_PAYMENT,
        "prepayment": draw(st.sampled_from([1, 2, 3])),
        "settlement": PaymentMethod.FULL_PAYMENT,
        "credit": PaymentMethod.CREDIT,
        "correction": PaymentMethod.FULL_PAYMENT,
    }[flow]
    lines = tuple(draw(st.lists(items(method), min_size=1, max_size=4)))
    total = sum(item.sum for item in lines)
    assume(total > 0 or flow not in ("settlement", "credit"))
    if flow == "settlement":
        payments = Payments(prepaid=total)
    elif flow == "credit":
        payments = Payments(credit=total)
    else:
        cash = draw(st.integers(0, total))
        cashless: tuple[CashlessPayment, ...] = ()
        if total - cash and draw(st.booleans()):
            cashless = (CashlessPayment(method=draw(st.integers(0, 2)), sum=total - cash),)
        payments = Payments(cash=cash, electronic=total - cash, cashless=cashless)
    operation = draw(st.integers(1, 4))
    if operation in (2, 4):  # a refund returns goods: no planned "sold" status
        lines = tuple(item if item.marking is None else _with_status(item, 3) for item in lines)
    common = dict(
        operation=operation,
        items=lines,
        payments=payments,
        company=Company(
            inn=draw(INNS),
            tax_system=draw(st.sampled_from([int(t) for t in TaxSystem])),
            place=draw(st.sampled_from(["shop.example", "Магазин №1"])),
            address=draw(st.sampled_from([None, "г. Москва, ул. Ленина, д. 1"])),
            email=draw(st.sampled_from([None, "shop@example.ru"])),
        ),
        total=total,
        cashier=draw(
            st.sampled_from([None, Cashier("Иванова И."), Cashier("Петров", "500100732259")])
        ),
        client=Client(
            contact=draw(st.one_of(EMAILS, PHONES)),
            name=draw(st.sampled_from([None, "Сидоров"])),
            inn=draw(st.one_of(st.none(), PERSON_INNS)),
        ),
        user_prop=draw(st.sampled_from([None, UserProp("заказ", "A-17")])),
        time_zone=draw(st.sampled_from([None, 2, 11])),
        internet=draw(st.booleans()),
    )
    if flow == "correction":
        by_order = draw(st.booleans())
        return CorrectionReceipt(
            **common,  # type: ignore[arg-type]
            correction_type=int(by_order),
            basis=CorrectionBasis(
                date=datetime(2026, 1, 1) + timedelta(days=draw(st.integers(0, 300))),
                number="ПР-12" if by_order else draw(st.sampled_from([None, "7"])),
            ),
        )
    return Receipt(**common)  # type: ignore[arg-type]


def _with_status(item: Item, status: int) -> Item:
    assert item.marking is not None
    return attrs.evolve(item, marking=attrs.evolve(item.marking, planned_status=status))
