"""The tenant's product catalogue (каталог товаров) and the mobile cashier page (касса в телефоне).

The catalogue keeps what a shop sells as journal records of the tenant (kind ``product``, a
generated key, a JSON value), and the seller's own details (kind ``seller``): a cashier's sale
needs the ИНН (1018), the tax system (1055) and the place of settlement (1187), which no
tenant setting carries yet. The cashier page makes a sale of catalogue lines and submits it
through the same engine API as the cabinet's refund: the engine's checks
(:func:`engine.checks.check_receipt`) judge it, marking codes included, so this module only
turns form fields into the receipt model and names the field a refusal is about.

A payment link (оплата по ссылке) is made by the merchant's acquiring, not by Kassa: the
receipt says «безналичными» (1081) and goes to the buyer's e-mail or phone (1008).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import attrs
import markupsafe
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from engine.cabinet.app import PREFIX, STATES_RU, Cabinet, Refusal, typed_kopecks
from engine.cabinet.users import Session
from engine.engine import Busy, Engine, SubmitError, ValidationFailed
from engine.journal import FINAL_STATES, JournalUnavailable, TenantRecord
from engine.render import qr_code
from protocols.documents.model import Client, Company, Item, Marking, Payments, Receipt
from protocols.documents.vat import vat_amount
from protocols.fiscal_sign import marking_control_code
from protocols.inn import inn_is_valid
from protocols.tlv.enums import (
    MeasureUnit,
    OperationType,
    PaymentMethod,
    PaymentSubject,
    TaxSystem,
    VatRate,
)

PRODUCT, SELLER = "product", "seller"
#: A tenant's catalogue is read whole for each page, and the cashier's form has two fields a
#: product (app.FORM_FIELDS): a small shop's or a courier's list, not a warehouse's.
MAX_PRODUCTS = 1000
#: 1030 наименование предмета расчёта: at most 128 characters.
NAME_LIMIT = 128
#: A price of at most 10 000 000,00 ₽ a unit: beyond it is a typo, not a product.
PRICE_LIMIT = 1_000_000_000
#: 1023 количество: up to 3 decimals (ATOL's E6h carries three) and 7 whole digits.
_QUANTITY = re.compile(r"\A[0-9]{1,7}(?:[.,][0-9]{1,3})?\Z")
#: A catalogue price is under 100 million roubles (eight digits of them).
MAX_PRICE = 10**10
_PRODUCT_ID = re.compile(r"\A[0-9a-f]{16}\Z")
_EMAIL = re.compile(r"\A[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}\Z")
_PHONE = re.compile(r"\A\+?[0-9]{10,15}\Z")
_GS = "\x1d"

#: 2108 мера количества, as a cashier names it.
MEASURES: dict[int, str] = {
    int(MeasureUnit.PIECE): "шт",
    int(MeasureUnit.GRAM): "г",
    int(MeasureUnit.KILOGRAM): "кг",
    int(MeasureUnit.TONNE): "т",
    int(MeasureUnit.CENTIMETRE): "см",
    int(MeasureUnit.METRE): "м",
    int(MeasureUnit.SQUARE_METRE): "м²",
    int(MeasureUnit.MILLILITRE): "мл",
    int(MeasureUnit.LITRE): "л",
    int(MeasureUnit.CUBIC_METRE): "м³",
    int(MeasureUnit.KILOWATT_HOUR): "кВт·ч",
    int(MeasureUnit.DAY): "сутки",
    int(MeasureUnit.HOUR): "час",
    int(MeasureUnit.MINUTE): "мин",
    int(MeasureUnit.OTHER): "иная мера",
}
#: 1212 признак предмета расчёта a shop's catalogue offers; marked goods become 33 by the flag.
SUBJECTS: dict[int, str] = {
    int(PaymentSubject.GOODS): "товар",
    int(PaymentSubject.EXCISE_GOODS): "подакцизный товар",
    int(PaymentSubject.WORK): "работа",
    int(PaymentSubject.SERVICE): "услуга",
}
#: 1055 применяемая система налогообложения.
TAX_SYSTEMS: dict[int, str] = {
    int(TaxSystem.OSN): "ОСН",
    int(TaxSystem.USN_INCOME): "УСН доход",
    int(TaxSystem.USN_INCOME_OUTCOME): "УСН доход минус расход",
    int(TaxSystem.ESN): "ЕСХН",
    int(TaxSystem.PATENT): "Патент",
}
#: How the buyer pays: the payment field it fills and its label.
PAYMENTS: dict[str, tuple[str, str]] = {
    "cash": ("cash", "Наличными"),
    "card": ("electronic", "Картой"),
    "link": ("electronic", "По ссылке"),
}


@attrs.frozen
class Product:
    """One catalogue line: 1030 name, 1079 price (kopecks), 1199, 2108, 1212 and whether it is
    marked goods (товар подлежит маркировке: a marking code at every sale, 1212 = 33)."""

    id: str
    name: str
    price: int
    vat: int
    measure: int = int(MeasureUnit.PIECE)
    subject: int = int(PaymentSubject.GOODS)
    marked: bool = False

    def to_json(self) -> str:
        value = attrs.asdict(self)
        del value["id"]
        return json.dumps(value, ensure_ascii=False, sort_keys=True)

    @classmethod
    def of(cls, record: TenantRecord) -> Product:
        return cls(id=record.key, **json.loads(record.value))


@attrs.frozen
class Seller:
    """The seller's details a sale needs: 1018 ИНН, 1055 СНО, 1187 место расчётов, 1048."""

    inn: str
    tax_system: int
    place: str
    name: str = ""

    def to_json(self) -> str:
        return json.dumps(attrs.asdict(self), ensure_ascii=False, sort_keys=True)

    def company(self) -> Company:
        return Company(
            inn=self.inn, tax_system=self.tax_system, place=self.place, name=self.name or None
        )


def kopecks(text: str) -> int:
    """A price typed as «1 234,45» (or «123.45») as kopecks, the cabinet's one money reading
    with thousands' spaces allowed; at most 99 999 999,99 ₽. ValueError if not money."""
    value = typed_kopecks(text.replace(" ", "").replace("\u00a0", ""))
    if value >= MAX_PRICE:
        raise ValueError(text)
    return value


def quantity(text: str) -> Decimal:
    """A quantity typed as «0,5» or «2»: an exact decimal; ValueError if not one."""
    text = text.strip()
    if not _QUANTITY.match(text):
        raise ValueError(text)
    return Decimal(text.replace(",", "."))


def read_product(form: Mapping[str, str], product_id: str) -> tuple[Product | None, list[str]]:
    """A product from the catalogue's form, or the problems, each naming its field."""
    problems: list[str] = []
    name = " ".join(form.get("name", "").split())
    if not name:
        problems.append("Наименование (name, 1030): обязательно.")
    elif len(name) > NAME_LIMIT:
        problems.append(f"Наименование (name, 1030): не длиннее {NAME_LIMIT} знаков.")
    price = 0
    try:
        price = kopecks(form.get("price", ""))
        if not 0 < price <= PRICE_LIMIT:
            problems.append("Цена (price, 1079): больше нуля и не больше 10 000 000,00 ₽.")
    except ValueError:
        problems.append(
            f"Цена (price, 1079): ожидалась сумма в рублях, например 123,45; "
            f"получено {form.get('price', '')!r}."
        )
    choices = (("vat", "Ставка НДС", "1199", VAT_CHOICES), ("measure", "Мера", "2108", MEASURES))
    codes: dict[str, int] = {}
    for field, label, tag, allowed in (*choices, ("subject", "Предмет", "1212", SUBJECTS)):
        text = form.get(field, "")
        if not text.isdigit() or int(text) not in allowed:
            problems.append(f"{label} ({field}, {tag}): выберите из списка.")
        else:
            codes[field] = int(text)
    if problems:
        return None, problems
    product = Product(
        id=product_id,
        name=name,
        price=price,
        vat=codes["vat"],
        measure=codes["measure"],
        subject=codes["subject"],
        marked=form.get("marked", "") == "1",
    )
    return product, []


def read_seller(form: Mapping[str, str]) -> tuple[Seller | None, list[str]]:
    problems: list[str] = []
    inn = form.get("inn", "").strip()
    if not inn_is_valid(inn):
        problems.append(f"ИНН продавца (inn, 1018): неверный ИНН {inn!r}.")
    system = form.get("tax_system", "")
    if not system.isdigit() or int(system) not in TAX_SYSTEMS:
        problems.append("Система налогообложения (tax_system, 1055): выберите из списка.")
    place = form.get("place", "").strip()
    if not place or len(place) > 256:
        problems.append("Место расчётов (place, 1187): обязательно, до 256 знаков.")
    name = " ".join(form.get("seller_name", "").split())
    if len(name) > 256:
        problems.append("Наименование продавца (seller_name, 1048): до 256 знаков.")
    if problems:
        return None, problems
    return Seller(inn=inn, tax_system=int(system), place=place, name=name), []


def read_marking(text: str, *, piece: bool = True) -> Marking:
    """The marking code (КМ, 2000) of a GS1 DataMatrix as the scanner typed it: 1163 is its
    head before the first GS, 2115 is derived from the whole code, as the API doors read
    ``gs1m``; the engine's checks judge its structure. ValueError if not ASCII."""
    scanned = text.strip("\r\n\t ")
    if not scanned.isascii():
        raise ValueError(text)
    return Marking(
        kind="gs1m",
        code=scanned.split(_GS, 1)[0],
        control_code=marking_control_code(scanned.encode("ascii")),
        scanned=scanned,
        # 2003: штучный товар реализован (1) or мерный товар в стадии реализации (2)
        planned_status=1 if piece else 2,
    )


#: 1199 rates a catalogue offers: all of 2026, the 22 % first.
def _vat_choices() -> dict[int, str]:
    from engine.reports import VAT_LABELS

    order = (11, 12, 2, 4, 7, 9, 8, 10, 5, 6, 1, 3)
    return {rate: VAT_LABELS[rate] for rate in order}


VAT_CHOICES = _vat_choices()


@attrs.frozen
class Line:
    """A line of the cashier's form: the product, its quantity and its typed marking code."""

    product: Product
    quantity: Decimal
    code: str


def sale(
    lines: Sequence[Line], seller: Seller, payment: str, contact: str | None
) -> tuple[Receipt | None, list[str]]:
    """The receipt of a sale (приход, 1054 = 1) of ``lines``, or the problems of the form."""
    problems: list[str] = []
    items: list[Item] = []
    for line in lines:
        product = line.product
        marking: Marking | None = None
        if product.marked:
            field = f"marking_{product.id}"
            if not line.code.strip():
                problems.append(
                    f"Код маркировки ({field}) для «{product.name}»: товар подлежит маркировке, "
                    "отсканируйте или введите код."
                )
                continue
            piece = product.measure == int(MeasureUnit.PIECE)
            if piece and line.quantity != 1:  # a weighed item's code is of its whole weight
                problems.append(
                    f"Количество (qty_{product.id}) для «{product.name}»: один код маркировки — "
                    "одна единица товара, продайте по 1."
                )
                continue
            try:
                marking = read_marking(line.code, piece=piece)
            except ValueError:
                problems.append(
                    f"Код маркировки ({field}) для «{product.name}»: только латиница, цифры и "
                    "знаки кода (ASCII)."
                )
                continue
        if product.measure == int(MeasureUnit.PIECE) and line.quantity != line.quantity // 1:
            problems.append(
                f"Количество (qty_{product.id}) для «{product.name}»: товар штучный, "
                "количество — целое."
            )
            continue
        total = int((product.price * line.quantity).to_integral_value(rounding=ROUND_HALF_UP))
        items.append(
            Item(
                name=product.name,
                price=product.price,
                quantity=line.quantity,
                sum=total,
                vat=product.vat,
                vat_sum=vat_amount(total, product.vat),
                payment_method=int(PaymentMethod.FULL_PAYMENT),
                payment_subject=int(PaymentSubject.MARKED) if product.marked else product.subject,
                measure=product.measure,
                marking=marking,
            )
        )
    if not lines:
        problems.append("Товары (qty_…): укажите количество хотя бы одного товара.")
    if problems:
        return None, problems
    total = sum(item.sum for item in items)
    field, _ = PAYMENTS[payment]
    return (
        Receipt(
            operation=int(OperationType.SELL),
            items=tuple(items),
            payments=Payments(cash=total) if field == "cash" else Payments(electronic=total),
            company=seller.company(),
            total=total,
            client=Client(contact=contact) if contact else None,
        ),
        [],
    )


def contact_of(text: str) -> str | None:
    """The buyer's e-mail or phone (1008) as typed, normalised; ValueError if neither."""
    text = text.strip()
    if not text:
        return None
    if "@" in text:
        if not _EMAIL.match(text) or len(text) > 64:
            raise ValueError(text)
        return text
    phone = re.sub(r"[\s()-]", "", text)
    if not _PHONE.match(phone):
        raise ValueError(text)
    if phone.startswith("8") and len(phone) == 11:
        phone = "+7" + phone[1:]
    return phone if phone.startswith("+") else "+" + phone


def _problem_text(exc: ValidationFailed, lines: Sequence[Line]) -> list[str]:
    """The engine's problems with the field of the form each is about."""
    out = []
    for problem in exc.problems:
        match = re.match(r"items\[(\d+)\](?:\.(\w+))?", problem.path)
        if match and int(match[1]) < len(lines):
            product = lines[int(match[1])].product
            field = f"marking_{product.id}" if match[2] == "marking" else f"qty_{product.id}"
            what = "Код маркировки" if match[2] == "marking" else "Строка"
            out.append(
                f"{what} ({field}) для «{product.name}»: {problem.message} [{problem.code}]."
            )
        else:
            out.append(f"{problem.path or 'чек'}: {problem.message} [{problem.code}].")
    return out


class CataloguePages:
    """The catalogue's and the cashier's pages of one :class:`~engine.cabinet.app.Cabinet`."""

    def __init__(self, cabinet: Cabinet) -> None:
        self.cabinet = cabinet

    def routes(self) -> list[BaseRoute]:
        page = self.cabinet.page
        return [
            Route("/catalogue", page("catalogue", self.catalogue), methods=["GET"]),
            Route("/catalogue", page("catalogue", self.add, post=True), methods=["POST"]),
            Route("/catalogue/seller", page("catalogue", self.seller, post=True), methods=["POST"]),
            Route("/catalogue/{product_id}", page("catalogue", self.product), methods=["GET"]),
            Route(
                "/catalogue/{product_id}",
                page("catalogue", self.edit, post=True),
                methods=["POST"],
            ),
            Route(
                "/catalogue/{product_id}/remove",
                page("catalogue", self.remove, post=True),
                methods=["POST"],
            ),
            Route("/cashier", page("sell", self.cashier), methods=["GET"]),
            Route("/cashier", page("sell", self.sell, post=True), methods=["POST"]),
            Route("/cashier/{job_id}", page("sell", self.result), methods=["GET"]),
            Route("/cashier/{job_id}/email", page("sell", self.email, post=True), methods=["POST"]),
        ]

    # --- storage --------------------------------------------------------------------------------

    async def _records(self, kind: str, tenant: str) -> list[TenantRecord]:
        # A journal that cannot answer is the engine's Unavailable: the guard answers 503.
        return await self.cabinet.engine.tenant_records(tenant, kind)

    async def products(self, tenant: str) -> list[Product]:
        records = await self._records(PRODUCT, tenant)
        return sorted((Product.of(r) for r in records), key=lambda p: p.name.casefold())

    async def product_of(self, tenant: str, product_id: str) -> Product:
        """The tenant's product; another tenant's is as absent as a missing one (404)."""
        if _PRODUCT_ID.match(product_id):
            for product in await self.products(tenant):
                if product.id == product_id:
                    return product
        raise Refusal(404, "Товар не найден.")

    async def seller_of(self, tenant: str) -> Seller | None:
        records = await self._records(SELLER, tenant)
        return Seller(**json.loads(records[0].value)) if records else None

    async def _put(self, tenant: str, kind: str, key: str, value: str) -> None:
        record = TenantRecord(tenant, kind, key, value, self.cabinet.now())
        await self.cabinet.engine.put_tenant_record(record)

    # --- the catalogue --------------------------------------------------------------------------

    async def _catalogue_page(
        self,
        session: Session,
        *,
        problems: Sequence[str] = (),
        values: Mapping[str, str] | None = None,
        code: int = 200,
    ) -> Response:
        tenant = session.user.tenant
        seller = await self.seller_of(tenant)
        return self.cabinet.render(
            "catalogue.html",
            code,
            **self.cabinet.context(
                session,
                products=await self.products(tenant),
                seller=seller,
                problems=list(problems),
                values=values or {},
                **_choices(),
            ),
        )

    async def catalogue(self, request: Request, session: Session) -> Response:
        return await self._catalogue_page(session)

    async def add(self, request: Request, session: Session) -> Response:
        form: dict[str, str] = request.state.form
        product, problems = read_product(form, secrets.token_hex(8))
        if len(await self.products(session.user.tenant)) >= MAX_PRODUCTS:
            product, problems = None, [f"В каталоге уже {MAX_PRODUCTS} товаров: удалите лишние."]
        if product is None:
            return await self._catalogue_page(session, problems=problems, values=form, code=422)
        await self._put(session.user.tenant, PRODUCT, product.id, product.to_json())
        return RedirectResponse(f"{PREFIX}/catalogue", 303)

    async def product(self, request: Request, session: Session) -> Response:
        product = await self.product_of(session.user.tenant, str(request.path_params["product_id"]))
        return self._product_page(session, product, _product_values(product), [])

    def _product_page(
        self,
        session: Session,
        product: Product,
        values: Mapping[str, str],
        problems: Sequence[str],
        code: int = 200,
    ) -> Response:
        return self.cabinet.render(
            "product.html",
            code,
            **self.cabinet.context(
                session, product=product, values=values, problems=list(problems), **_choices()
            ),
        )

    async def edit(self, request: Request, session: Session) -> Response:
        tenant = session.user.tenant
        old = await self.product_of(tenant, str(request.path_params["product_id"]))
        form: dict[str, str] = request.state.form
        product, problems = read_product(form, old.id)
        if product is None:
            return self._product_page(session, old, form, problems, 422)
        await self._put(tenant, PRODUCT, product.id, product.to_json())
        return RedirectResponse(f"{PREFIX}/catalogue", 303)

    async def remove(self, request: Request, session: Session) -> Response:
        tenant = session.user.tenant
        product = await self.product_of(tenant, str(request.path_params["product_id"]))
        await self.cabinet.engine.drop_tenant_record(tenant, PRODUCT, product.id)
        return RedirectResponse(f"{PREFIX}/catalogue", 303)

    async def seller(self, request: Request, session: Session) -> Response:
        form: dict[str, str] = request.state.form
        seller, problems = read_seller(form)
        if seller is None:
            return await self._catalogue_page(session, problems=problems, values=form, code=422)
        await self._put(session.user.tenant, SELLER, "main", seller.to_json())
        return RedirectResponse(f"{PREFIX}/catalogue", 303)

    # --- the cashier ----------------------------------------------------------------------------

    def _groups(self, tenant: str) -> list[str]:
        """The tenant's register groups, "main" (the engine's default) first."""
        engine = self.cabinet.engine
        groups = {r.config.group for r in engine.registers.values() if r.config.tenant == tenant}
        return sorted(groups, key=lambda group: (group != "main", group))

    async def _cashier_page(
        self,
        session: Session,
        *,
        problems: Sequence[str] = (),
        values: Mapping[str, str] | None = None,
        code: int = 200,
    ) -> Response:
        tenant = session.user.tenant
        return self.cabinet.render(
            "cashier.html",
            code,
            **self.cabinet.context(
                session,
                products=await self.products(tenant),
                seller=await self.seller_of(tenant),
                groups=self._groups(tenant),
                payments=PAYMENTS,
                measures=MEASURES,
                problems=list(problems),
                values=values or {},
            ),
        )

    async def cashier(self, request: Request, session: Session) -> Response:
        return await self._cashier_page(session)

    async def sell(self, request: Request, session: Session) -> Response:
        """Пробить чек: the sale goes through the engine's submit under a new external_id."""
        tenant = session.user.tenant
        form: dict[str, str] = request.state.form
        problems: list[str] = []
        seller = await self.seller_of(tenant)
        if seller is None:
            problems.append("Продавец: заполните ИНН, СНО и место расчётов в каталоге.")
        lines: list[Line] = []
        for product in await self.products(tenant):
            text = form.get(f"qty_{product.id}", "").strip()
            if not text:
                continue
            try:
                amount = quantity(text)
            except ValueError:
                problems.append(
                    f"Количество (qty_{product.id}) для «{product.name}»: ожидалось число, "
                    f"например 2 или 0,5; получено {text!r}."
                )
                continue
            if amount > 0:
                lines.append(Line(product, amount, form.get(f"marking_{product.id}", "")))
        payment = form.get("payment", "")
        if payment not in PAYMENTS:
            problems.append("Оплата (payment): выберите наличными, картой или по ссылке.")
        contact: str | None = None
        try:
            contact = contact_of(form.get("contact", ""))
        except ValueError:
            problems.append(
                f"Покупатель (contact, 1008): ожидался e-mail или телефон, "
                f"получено {form.get('contact', '')!r}."
            )
        else:
            if payment == "link" and contact is None:
                problems.append(
                    "Покупатель (contact, 1008): при оплате по ссылке чек уходит покупателю — "
                    "укажите его e-mail или телефон."
                )
        groups = self._groups(tenant)
        group = form.get("group", "") or (groups[0] if groups else "")
        if group not in groups:
            problems.append("Группа касс (group): выберите из списка.")
        if problems or seller is None:
            return await self._cashier_page(session, problems=problems, values=form, code=422)
        receipt, problems = sale(lines, seller, payment, contact)
        if receipt is None:
            return await self._cashier_page(session, problems=problems, values=form, code=422)
        engine = self.cabinet.engine
        try:
            job = await engine.submit(
                tenant, f"cashier-{secrets.token_hex(8)}", receipt, group=group
            )
        except Busy:
            raise Refusal(503, "Очередь касс переполнена, повторите позже.") from None
        except ValidationFailed as exc:
            return await self._cashier_page(
                session, problems=_problem_text(exc, lines), values=form, code=422
            )
        except SubmitError as exc:
            raise Refusal(422, f"Чек не принят: {exc}") from None
        await self.cabinet.door.journal_deliveries(job, receipt)
        return RedirectResponse(f"{PREFIX}/cashier/{job.id}", 303)

    async def _result_page(
        self,
        session: Session,
        job_id: str,
        *,
        notice: str = "",
        problems: Sequence[str] = (),
        code: int = 200,
    ) -> Response:
        tenant = session.user.tenant
        engine = self.cabinet.engine
        job = await engine.job(tenant, job_id)
        if job is None:  # another tenant's job is as absent as a missing one
            raise Refusal(404, "Чек не найден.")
        view = await engine.receipt_view(tenant, job.id)
        deliveries = [d for d in await engine.deliveries(job) if d.kind in ("email", "sms")]
        qr = ""
        if view is not None:
            qr = markupsafe.Markup(qr_code(view.qr).svg_inline(scale=4, border=2, omitsize=True))
        response = self.cabinet.render(
            "sale.html",
            code,
            **self.cabinet.context(
                session,
                job=job,
                state=STATES_RU.get(job.state.value, job.state.value),
                final=job.state in FINAL_STATES,
                view=view,
                qr=qr,
                link=self.cabinet.door.receipt_links.link(tenant, job.id),
                deliveries=deliveries,
                mail=self.cabinet.door.settings.smtp is not None,
                notice=notice,
                problems=list(problems),
            ),
        )
        if job.state not in FINAL_STATES:
            response.headers["Refresh"] = "2"  # look again until the ФН has signed it; no JS
        return response

    async def result(self, request: Request, session: Session) -> Response:
        notice = "Письмо с чеком поставлено в очередь." if request.query_params.get("sent") else ""
        return await self._result_page(session, str(request.path_params["job_id"]), notice=notice)

    async def email(self, request: Request, session: Session) -> Response:
        """Send the receipt to an e-mail: a journaled ``email`` delivery (engine/http/mail.py),
        sent once the job is final with the callbacks' retries. A job has one of each kind."""
        tenant = session.user.tenant
        job_id = str(request.path_params["job_id"])
        engine = self.cabinet.engine
        job = await engine.job(tenant, job_id)
        if job is None:
            raise Refusal(404, "Чек не найден.")
        address = request.state.form.get("email", "").strip()
        callbacks = self.cabinet.door.callbacks
        problem = ""
        if not _EMAIL.match(address) or len(address) > 64:
            problem = f"E-mail (email): ожидался адрес вида name@example.ru, получено {address!r}."
        elif self.cabinet.door.settings.smtp is None or callbacks is None:
            problem = "E-mail (email): отправка писем не настроена в сервисе (нет [smtp])."
        else:
            sent = [d for d in await engine.deliveries(job) if d.kind == "email"]
            if sent and sent[0].url != f"mailto:{address}":
                problem = (
                    f"E-mail (email): этот чек уже отправляется на "
                    f"{sent[0].url.removeprefix('mailto:')}; второй адрес не принимается."
                )
        if problem or callbacks is None:
            return await self._result_page(session, job_id, problems=[problem], code=422)
        try:
            kept = await callbacks.add(job, "email", f"mailto:{address}")
        except JournalUnavailable:
            raise Refusal(503, "Журнал временно недоступен, письмо не поставлено.") from None
        if kept.url != f"mailto:{address}":  # another address won a race for the one e-mail
            problem = (
                f"E-mail (email): этот чек уже отправляется на "
                f"{kept.url.removeprefix('mailto:')}; второй адрес не принимается."
            )
            return await self._result_page(session, job_id, problems=[problem], code=422)
        return RedirectResponse(f"{PREFIX}/cashier/{job.id}?sent=1", 303)


def _choices() -> dict[str, Any]:
    return {"vats": VAT_CHOICES, "measures": MEASURES, "subjects": SUBJECTS, "systems": TAX_SYSTEMS}


def _product_values(product: Product) -> dict[str, str]:
    return {
        "name": product.name,
        "price": f"{product.price // 100},{product.price % 100:02d}",
        "vat": str(product.vat),
        "measure": str(product.measure),
        "subject": str(product.subject),
        "marked": "1" if product.marked else "",
    }


#: What ``kassa serve --demo`` stocks its tenant with, so that its cashier page sells at once:
#: a piece, a weighed item and marked goods, at 2026 rates.
DEMO_PRODUCTS = (
    Product("00000000000de001", "Кофе в зёрнах, 250 г", 45_000, int(VatRate.VAT22)),
    Product("00000000000de002", "Сыр, кг", 98_000, int(VatRate.VAT10), int(MeasureUnit.KILOGRAM)),
    Product("00000000000de003", "Кроссовки", 549_000, int(VatRate.VAT22), marked=True),
)


async def stock_demo(engine: Engine, tenant: str, company: Company) -> None:
    """Give the demo tenant the seller of ``company`` and :data:`DEMO_PRODUCTS`."""
    seller = Seller(company.inn, int(company.tax_system), company.place or "", company.name or "")
    await engine.put_tenant_record(TenantRecord(tenant, SELLER, "main", seller.to_json()))
    for product in DEMO_PRODUCTS:
        await engine.put_tenant_record(TenantRecord(tenant, PRODUCT, product.id, product.to_json()))
