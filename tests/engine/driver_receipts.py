"""The receipts the driver tests send, whatever the register: lines, receipts of one company,
and one receipt of every kind.

What a register keeps of a receipt differs (see each test module's ``as_archived``), and so
does the company each test module sends as: it starts from :data:`SHOP`.
"""

from __future__ import annotations

import datetime as dt
import inspect
from typing import Any

import attrs

from emulator.serve import INN
from engine.drivers.marking import CHECKED_OPERATIONS
from engine.samples import item, shoes_marking
from protocols.documents.model import (
    AgentData,
    Cashier,
    CashlessPayment,
    Client,
    Company,
    CorrectionBasis,
    CorrectionReceipt,
    Item,
    Payments,
    Receipt,
    Supplier,
    UserProp,
)
from protocols.tlv.enums import (
    MARKED_SUBJECTS,
    AgentType,
    MeasureUnit,
    OperationType,
    PaymentMethod,
    PaymentSubject,
    TaxSystem,
    VatRate,
)

#: The emulator registers ОСН | УСН доход; УСН доход is not its default, so 1055 must travel.
SHOP = Company(
    inn=INN,
    tax_system=int(TaxSystem.USN_INCOME),
    place="shop.kassa.example",
    email="receipts@shop.kassa.example",
)
CASHIER = Cashier("Иванова А. П.", "500100732259")
CLIENT = Client(contact="+79990001122")


def line(name: str, price: int, quantity: str = "1", **more: Any) -> Item:
    """:func:`engine.samples.item` (``vat``, ``method``, ``subject`` and ``marking`` go to it),
    with any other field of the line in ``more``."""
    own = {key: more.pop(key) for key in _ITEM_KEYWORDS & more.keys()}
    return attrs.evolve(item(name, price, quantity, **own), **more)


_ITEM_KEYWORDS = frozenset(inspect.signature(item).parameters) - {"name", "price", "quantity"}


def shoes() -> Item:
    """A pair of marked shoes (1212 = 33) with the GS1 DataMatrix code of the samples."""
    return line(
        "Кроссовки, р. 42", 549_000, subject=int(PaymentSubject.MARKED), marking=shoes_marking()
    )


@attrs.frozen
class Receipts:
    """Receipts of ``company``, by :data:`CASHIER` to :data:`CLIENT`."""

    company: Company

    def receipt(
        self,
        operation: int,
        *items: Item,
        payments: Payments | None = None,
        marker: str = "job-0001",
        **more: Any,
    ) -> Receipt:
        """A receipt of ``items`` paid in cash unless ``payments`` say otherwise; ``marker`` is
        the job marker (1192)."""
        total = sum(i.sum for i in items)
        return Receipt(
            operation=operation,
            items=items,
            payments=payments or Payments(cash=total),
            company=self.company,
            total=total,
            cashier=CASHIER,
            client=CLIENT,
            additional_prop=marker,
            **more,
        )

    def every_kind(self, *, advance: bool = False, **ticket: Any) -> tuple[Receipt, ...]:
        """One receipt of every kind, each with its own job marker: sale, card sale, refund,
        purchase and its refund, marked goods, an agent's ticket (with the fields ``ticket``
        adds to its line), prepayment, an advance (1214 = 3) if ``advance``, settlement,
        credit, and a correction and a correction of a purchase refund."""
        receipt = self.receipt
        sale = receipt(
            int(OperationType.SELL),
            line("Хлеб", 4_990, "2"),
            line(
                "Сыр весовой",
                89_900,
                "0.347",
                vat=int(VatRate.VAT10),
                measure=int(MeasureUnit.KILOGRAM),
            ),
            attrs.evolve(line("Пакет", 1_500), sum=1_499),  # 1043 one kopeck under 1079 × 1023
            payments=Payments(cash=20_000, electronic=22_674),
            user_prop=UserProp("заказ", "A-17"),
        )
        card = receipt(
            int(OperationType.SELL),
            line("Наушники беспроводные", 129_900),
            line("Доставка", 30_000, vat=int(VatRate.NONE), subject=int(PaymentSubject.SERVICE)),
            payments=Payments(
                electronic=159_900, cashless=(CashlessPayment(method=1, sum=159_900),)
            ),
            marker="job-card",
            internet=True,
        )
        refund = receipt(
            int(OperationType.SELL_REFUND), *card.items, payments=Payments(electronic=159_900)
        )
        purchase = receipt(
            int(OperationType.BUY),
            line("Лом чёрных металлов", 1_200, "350.5", vat=int(VatRate.NONE)),
            marker="job-buy",
        )
        purchase_refund = receipt(
            int(OperationType.BUY_REFUND), *purchase.items, marker="job-buy-r"
        )
        marked = receipt(int(OperationType.SELL), shoes(), marker="job-shoes")
        agent = receipt(
            int(OperationType.SELL),
            line(
                "Билет",
                150_000,
                vat=int(VatRate.NONE),
                subject=int(PaymentSubject.SERVICE),
                agent_type=int(AgentType.COMMISSION_AGENT),
                agent=AgentData(phones=("+74950000000",)),
                supplier=Supplier(name="ООО Театр", phones=("+74951111111",), inn="7707083893"),
                **ticket,
            ),
            marker="job-agent",
        )
        prepayment = receipt(
            int(OperationType.SELL),
            line("Диван угловой", 2_500_000, method=int(PaymentMethod.FULL_PREPAYMENT)),
            payments=Payments(electronic=2_500_000),
            marker="job-pre",
        )
        advances = (
            receipt(
                int(OperationType.SELL),
                line("Аванс за мебель", 500_000, method=int(PaymentMethod.ADVANCE)),
                payments=Payments(electronic=500_000),
                marker="job-advance",
            ),
        )
        settlement = receipt(
            int(OperationType.SELL),
            line("Диван угловой", 2_500_000),
            payments=Payments(prepaid=2_500_000),
            marker="job-settle",
        )
        credit = receipt(
            int(OperationType.SELL),
            line("Холодильник", 4_999_000, method=int(PaymentMethod.CREDIT)),
            payments=Payments(credit=4_999_000),
            marker="job-credit",
        )
        correction = CorrectionReceipt(
            operation=int(OperationType.SELL),
            items=(line("Кофе с собой", 45_000),),
            payments=Payments(cash=45_000),
            company=self.company,
            total=45_000,
            additional_prop="job-corr",
            correction_type=1,  # по предписанию
            basis=CorrectionBasis(date=dt.datetime(2026, 3, 1), number="ПР-12"),
        )
        correction_refund = attrs.evolve(
            correction,
            operation=int(OperationType.BUY_REFUND),
            correction_type=0,
            basis=CorrectionBasis(date=dt.datetime(2026, 2, 27)),
            additional_prop="job-corr-r",
        )
        return (
            sale,
            card,
            refund,
            purchase,
            purchase_refund,
            marked,
            agent,
            prepayment,
            *(advances if advance else ()),
            settlement,
            credit,
            correction,
            correction_refund,
        )


def as_the_fn_checks(sent: Receipt) -> Receipt:
    """``sent`` with each line's 2106 as the emulated ФН writes it, never the sender's: 0Fh
    for a code it checked and accepted in a sale or its refund (the ОИСМ answering), 0 (not
    checked) for a marked line of any other receipt, none on a line without marking."""
    items = []
    for line_ in sent.items:
        marking = line_.marking
        if marking is not None:
            if sent.operation in CHECKED_OPERATIONS:
                result: int | None = 0x0F
            else:
                result = 0 if line_.payment_subject in MARKED_SUBJECTS else None
            line_ = attrs.evolve(line_, marking=attrs.evolve(marking, check_result=result))
        items.append(line_)
    return attrs.evolve(sent, items=tuple(items))
