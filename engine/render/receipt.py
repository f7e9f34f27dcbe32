"""One view of a fiscalized receipt that the HTML, PNG and PDF renderers all draw.

The three formats must carry the same attributes (54-FZ art. 4.7, the FFD 1.2 table of an
electronic receipt), so they are made from one :class:`ReceiptPage`: every value is formatted
here once, as a row with its FFD tag, and a renderer only lays the rows out. A tag the
document does not carry (a cashier, a buyer's contact) is left out, never shown empty; the
FNS site (1060) is shown from the document, or as the FNS's own address when the register
left it to its registration report.
"""

from __future__ import annotations

from datetime import datetime

import attrs

from engine.render.branding import PLAIN, Branding
from engine.reports import (
    MEASURE_LABELS,
    PAYMENT_METHOD_LABELS,
    PAYMENT_SUBJECT_LABELS,
    ReceiptLine,
    ReceiptView,
    operation_label,
    roubles,
    vat_label,
)
from engine.times import register_time
from protocols.tlv.enums import TaxSystem

__all__ = ["FNS_SITE", "PageLine", "ReceiptPage", "Row", "marking_mark", "receipt_page"]

#: 1060 when the receipt itself does not carry it: the FNS's site, where a buyer checks it.
FNS_SITE = "www.nalog.gov.ru"

#: 1055 применяемая система налогообложения.
TAX_SYSTEM_LABELS: dict[int, str] = {
    TaxSystem.OSN: "ОСН",
    TaxSystem.USN_INCOME: "УСН доход",
    TaxSystem.USN_INCOME_OUTCOME: "УСН доход - расход",
    TaxSystem.ENVD: "ЕНВД",
    TaxSystem.ESN: "ЕСХН",
    TaxSystem.PATENT: "ПСН",
}
#: 1173 тип коррекции.
CORRECTION_TYPES = {0: "самостоятельно", 1: "по предписанию"}
_PAYMENTS = (
    ("cash", 1031, "НАЛИЧНЫМИ"),
    ("electronic", 1081, "БЕЗНАЛИЧНЫМИ"),
    ("prepaid", 1215, "ПРЕДВАРИТЕЛЬНАЯ ОПЛАТА (АВАНС)"),
    ("credit", 1216, "ПОСЛЕДУЮЩАЯ ОПЛАТА (КРЕДИТ)"),
    ("provision", 1217, "ИНАЯ ФОРМА ОПЛАТЫ"),
)
# 2106 bits (ffd.md §3): checked by the ФН / its result positive; checked by the ОИСМ / positive.
_FN_CHECKED, _FN_POSITIVE, _OISM_CHECKED, _OISM_POSITIVE = 0x01, 0x02, 0x04, 0x08


@attrs.frozen
class Row:
    """One attribute as shown: its printed name, its value and the FFD tag it comes from."""

    label: str
    value: str
    tag: int | None = None


@attrs.frozen
class PageLine:
    """One item (1059) with each value formatted."""

    number: int
    name: str  # 1030
    quantity: str  # 1023 with 2108 (or 1197)
    price: str  # 1079
    sum: str  # 1043
    vat: str  # 1199
    vat_sum: str | None  # 1200
    payment_method: str  # 1214
    payment_subject: str  # 1212
    marking: str | None  # 1163
    mark: str | None  # [М+], [М-] or [М] from 2106

    def rows(self) -> tuple[Row, ...]:
        """The line's attributes under the name and sum, as a paper receipt prints them."""
        out = [
            Row("Количество × цена", f"{self.quantity} × {self.price}", 1023),
            Row("Ставка НДС", self.vat, 1199),
        ]
        if self.vat_sum is not None:
            out.append(Row("Сумма НДС", self.vat_sum, 1200))
        out += [
            Row("Способ расчёта", self.payment_method, 1214),
            Row("Предмет расчёта", self.payment_subject, 1212),
        ]
        if self.marking is not None:
            out.append(Row("Код товара", self.marking, 1163))
        return tuple(out)


@attrs.frozen
class ReceiptPage:
    """A receipt ready to draw: heading, seller, lines, totals and fiscal data, as rows."""

    title: str  # КАССОВЫЙ ЧЕК / КАССОВЫЙ ЧЕК КОРРЕКЦИИ
    operation: str  # 1054, upper case
    seller: tuple[Row, ...]
    lines: tuple[PageLine, ...]
    total: Row  # 1020
    payments: tuple[Row, ...]  # 1031, 1081, 1215, 1216, 1217 that are not zero
    vat: tuple[Row, ...]  # 1102–1107 or 1120 per rate
    people: tuple[Row, ...]  # cashier 1021/1203, buyer 1008, correction 1173/1174
    fiscal: tuple[Row, ...]  # 1037, 1041, 1040, ФП, 1038, 1042, 1012, 1060, 1017
    qr: str  # t=…&s=…&fn=…&i=…&fp=…&n=…
    moment: str  # 1012 as ISO 8601 with the tenant zone's offset
    branding: Branding
    reference: str  # the job's id, for support, not a fiscal attribute

    def rows(self) -> tuple[Row, ...]:
        """Every tagged attribute in the order the renderers show them (lines excepted)."""
        return (*self.seller, self.total, *self.payments, *self.vat, *self.people, *self.fiscal)


def marking_mark(check: int | None) -> str:
    """[М+] when every check the 2106 result says was made was positive, [М-] when one was
    not, [М] when none was made (the code went unchecked: offline, or no answer)."""
    if check is None:
        return "[М]"
    made = [
        (check & _FN_CHECKED, check & _FN_POSITIVE),
        (check & _OISM_CHECKED, check & _OISM_POSITIVE),
    ]
    done = [bool(positive) for checked, positive in made if checked]
    if not done:
        return "[М]"
    return "[М+]" if all(done) else "[М-]"


def _quantity(line: ReceiptLine) -> str:
    unit = line.unit if line.unit is not None else MEASURE_LABELS.get(line.measure or 0, "")
    return f"{line.quantity.normalize():f} {unit}".rstrip()


def _line(line: ReceiptLine) -> PageLine:
    return PageLine(
        number=line.number,
        name=line.name,
        quantity=_quantity(line),
        price=roubles(line.price),
        sum=roubles(line.sum),
        vat=vat_label(line.vat),
        vat_sum=None if line.vat_sum is None else roubles(line.vat_sum),
        payment_method=PAYMENT_METHOD_LABELS.get(line.payment_method, str(line.payment_method)),
        payment_subject=PAYMENT_SUBJECT_LABELS.get(line.payment_subject, str(line.payment_subject)),
        marking=line.marking,
        mark=None if line.marking is None else marking_mark(line.marking_check),
    )


def _moment(time: datetime) -> str:
    return f"{time:%d.%m.%Y %H:%M}"


def receipt_page(view: ReceiptView, time_zone: str, branding: Branding = PLAIN) -> ReceiptPage:
    """The page of a fiscalized receipt (``engine.reports.receipt_view``) in a tenant's zone
    and branding."""
    correction = view.document_code == 31
    company = view.company
    seller = []
    if company.name:
        seller.append(Row("Пользователь", company.name, 1048))
    seller.append(Row("ИНН", company.inn, 1018))
    if company.address:
        seller.append(Row("Адрес расчётов", company.address, 1009))
    seller.append(Row("Место расчётов", company.place, 1187))
    seller.append(
        Row("СНО", TAX_SYSTEM_LABELS.get(company.tax_system, str(company.tax_system)), 1055)
    )
    if company.email:
        seller.append(Row("Эл. адрес отправителя", company.email, 1117))
    payments = tuple(
        Row(label, roubles(getattr(view.payments, field)), tag)
        for field, tag, label in _PAYMENTS
        if getattr(view.payments, field)
    )
    vat = tuple(
        Row(
            f"Сумма расчёта {vat_label(v.rate)}" if v.turnover else f"Сумма {vat_label(v.rate)}",
            roubles(v.amount),
            v.tag,
        )
        for v in view.vat_sums
    )
    people = []
    if view.cashier is not None:
        people.append(Row("Кассир", view.cashier.name, 1021))
        if view.cashier.inn:
            people.append(Row("ИНН кассира", view.cashier.inn, 1203))
    if view.contact:
        people.append(Row("Покупатель", view.contact, 1008))
    if view.correction_type is not None:
        people.append(
            Row(
                "Тип коррекции",
                CORRECTION_TYPES.get(view.correction_type, str(view.correction_type)),
                1173,
            )
        )
        basis = view.correction_basis
        if basis is not None:
            text = f"от {basis.date:%d.%m.%Y}" + (f" № {basis.number}" if basis.number else "")
            people.append(Row("Основание для коррекции", text, 1174))
    fiscal = [
        Row("РН ККТ", view.registration_number.strip(), 1037),
        Row("ФН", view.fn_number, 1041),
        Row("ФД", str(view.fd_number), 1040),
        Row("ФП", str(view.printed_sign), 1077),
        Row("Смена", str(view.shift_number), 1038),
        Row("Чек за смену", str(view.receipt_number), 1042),
        Row("Дата, время", _moment(view.time), 1012),
        Row("Сайт ФНС", view.fns_site or FNS_SITE, 1060),
    ]
    if view.ofd_inn:
        fiscal.append(Row("ИНН ОФД", view.ofd_inn, 1017))
    return ReceiptPage(
        title="КАССОВЫЙ ЧЕК КОРРЕКЦИИ" if correction else "КАССОВЫЙ ЧЕК",
        operation=operation_label(view.operation).upper(),
        seller=tuple(seller),
        lines=tuple(_line(line) for line in view.lines),
        total=Row("ИТОГ", roubles(view.total), 1020),
        payments=payments,
        vat=vat,
        people=tuple(people),
        fiscal=tuple(fiscal),
        qr=view.qr,
        moment=register_time(view.time, time_zone, "minutes"),
        branding=branding,
        reference=view.job_id,
    )
