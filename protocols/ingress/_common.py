"""What the two JSON ingress formats share: strict reading, the common blocks, and paths.

ATOL Online v5 and KOMTET v2 grew from the same FFD 1.2 tag list, so client, agent, supplier,
marking, sectoral, operating and cashless blocks have the same shape in both; they are read
and written here once, and each format module keeps only what is its own (the envelope, the
enumeration names, the payment kinds, its error codes).

Reading never stops at the first problem: a :class:`Reader` collects every
:class:`~protocols.validation.Problem` with the JSON path of the value (``receipt.items[2].price``)
and a stable code, and the format module raises one :class:`IngressError` with all of them.

Numbers are strict, because money must never be coerced: a JSON fraction is expected as a
:class:`~decimal.Decimal` (``json.loads(text, parse_float=Decimal)``, see :func:`load_json`),
money has at most two decimal places, and a bool, a binary float, a string, or exponent
notation (``1e2``) where a number belongs is an error. A ``Decimal`` whose exponent is not
negative can only come from exponent notation, since the JSON literal ``100`` is an ``int``
and ``100.0`` has exponent −1; that is how ``1e2`` is told apart from ``100``.

A JSON ``null`` in an optional field is read as "absent": PHP and C# clients send nulls for
fields they leave unset.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypeAlias

from protocols.documents.model import (
    AgentData,
    CashlessPayment,
    Client,
    CorrectionBasis,
    FractionalQuantity,
    IndustryProp,
    Item,
    Marking,
    OperatingProp,
    Payments,
    Receipt,
    Supplier,
    UserProp,
)
from protocols.errors import ProtocolError
from protocols.fiscal_sign import marking_control_code
from protocols.tlv.enums import AgentType, CorrectionType
from protocols.tlv.views import dumps
from protocols.validation import Problem

#: The ingress problem codes, each with its meaning (the format modules map them onto their
#: own error codes).
INGRESS_CODES: dict[str, str] = {
    "json.syntax": "the text is not JSON (or a NaN / Infinity constant)",
    "json.duplicate_key": "an object names the same key twice",
    "field.unknown": "a key the format does not define",
    "field.missing": "a required key is absent or null",
    "field.type": "a value of the wrong JSON type (a bool, float or string for a number …)",
    "field.format": "a string that does not have the format's shape (dates, base64 …)",
    "field.length": "a string or list longer or shorter than the format allows",
    "enum.unknown": "a name or number that the format does not define",
    "number.exponent": "a number in exponent notation (1e2)",
    "number.size": "a number of 10¹² or more, or with more than 20 digits",
    "money.precision": "money with more than two decimal places",
    "quantity.precision": "a quantity with more decimal places than the format allows",
    "ingress.unsupported": "valid in the format, but Kassa's receipt model cannot carry it",
    "ingress.inexpressible": "(way back) a receipt field the format has no place for",
    "vats.mismatch": "declared VAT totals that differ from the items' (ATOL vats)",
    "operation.unknown": "an ATOL operation that does not exist",
}

#: Problems after which the receipt is still complete enough to check further.
NON_BLOCKING = frozenset({"vats.mismatch"})

_DATE = re.compile(r"\A[0-9]{2}\.[0-9]{2}\.[0-9]{4}\Z")
_DATETIME = re.compile(r"\A[0-9]{2}\.[0-9]{2}\.[0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2}\Z")
_DIGITS = re.compile(r"\A[0-9]+\Z")
DATE_FORMAT = "%d.%m.%Y"
DATETIME_FORMAT = "%d.%m.%Y %H:%M:%S"
_GS = "\x1d"
_MAX_NUMBER = Decimal(10) ** 12
_MAX_DIGITS = 20


class IngressError(ProtocolError):
    """A request body that does not map onto a receipt; ``problems`` lists every one at once."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        first = self.problems[0]
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(first.message + more, first.path)


# --- JSON text ------------------------------------------------------------------------------------


def load_json(text: str | bytes) -> Any:
    """A request body from JSON text: fractions as Decimal, duplicate keys and NaN refused."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise IngressError([Problem("$", "json.duplicate_key", f"key {key!r} twice")])
            out[key] = value
        return out

    def constant(name: str) -> Any:
        raise IngressError([Problem("$", "json.syntax", f"{name} is not a JSON number")])

    try:
        return json.loads(
            text, parse_float=Decimal, object_pairs_hook=pairs, parse_constant=constant
        )
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, IngressError):
            raise
        raise IngressError([Problem("$", "json.syntax", f"not valid JSON: {exc}")]) from None


def dump_json(body: Any, indent: int = 2) -> str:
    """JSON text of a body made by ``to_*``: Decimals are written exactly, never via float."""
    return dumps(body, indent)


# --- reading --------------------------------------------------------------------------------------


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "a binary float (parse the JSON with parse_float=Decimal)"
    if isinstance(value, str):
        return f"the string {value!r}"
    return type(value).__name__


Body: TypeAlias = Mapping[str, Any]


class Reader:
    """Reads one JSON body, collecting every problem with its path instead of raising."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def problem(self, path: str, code: str, message: str) -> None:
        self.problems.append(Problem(path, code, message))

    @property
    def blocked(self) -> bool:
        """Whether a problem so far keeps the receipt model from being built."""
        return any(p.code not in NON_BLOCKING for p in self.problems)

    def _get(self, obj: Body | None, key: str, path: str, required: bool) -> Any:
        if obj is None:
            return None
        value = obj.get(key)
        if value is None and required:
            self.problem(join(path, key), "field.missing", "required field is missing")
        return value

    def object(
        self,
        value: Any,
        path: str,
        fields: Iterable[str],
        required: Iterable[str] = (),
    ) -> Body | None:
        """An object with only the keys ``fields``; unknown and missing keys are problems."""
        if not isinstance(value, Mapping):
            self.problem(path, "field.type", f"expected an object, got {_kind(value)}")
            return None
        known = set(fields)
        for key in value:
            if key not in known:
                self.problem(join(path, str(key)), "field.unknown", "the format has no such field")
        for key in required:
            if value.get(key) is None:
                self.problem(join(path, key), "field.missing", "required field is missing")
        return value

    def field_object(
        self,
        obj: Body | None,
        key: str,
        path: str,
        fields: Iterable[str],
        required: Iterable[str] = (),
    ) -> Body | None:
        value = self._get(obj, key, path, False)
        if value is None:
            return None
        return self.object(value, join(path, key), fields, required)

    def text(
        self,
        obj: Body | None,
        key: str,
        path: str,
        *,
        required: bool = False,
        max_length: int | None = None,
        min_length: int = 0,
    ) -> str | None:
        value = self._get(obj, key, path, required)
        if value is None:
            return None
        where = join(path, key)
        if not isinstance(value, str):
            self.problem(where, "field.type", f"expected a string, got {_kind(value)}")
            return None
        if len(value) < min_length or (max_length is not None and len(value) > max_length):
            bound = (
                f"{min_length} to {max_length}" if max_length is not None else f">= {min_length}"
            )
            self.problem(where, "field.length", f"{len(value)} characters, expected {bound}")
        return value

    def digits(
        self, obj: Body | None, key: str, path: str, *, required: bool = False
    ) -> str | None:
        """A string of decimal digits (ATOL sends codes such as "0" as strings)."""
        value = self.text(obj, key, path, required=required)
        if value is not None and not _DIGITS.match(value):
            self.problem(join(path, key), "field.format", f"{value!r} is not a string of digits")
            return None
        return value

    def byte_code(
        self, obj: Body | None, key: str, path: str, *, required: bool = False
    ) -> int | None:
        """A one-byte FFD code sent as a digit string ("0"), as ATOL does for 1271 and 2102."""
        value = self.digits(obj, key, path, required=required)
        if value is None:
            return None
        if len(value) > 3 or int(value) > 255:
            self.problem(join(path, key), "field.format", f"{value!r} is not a code 0 to 255")
            return None
        return int(value)

    def url(self, obj: Body | None, key: str, path: str, *, max_length: int = 256) -> str | None:
        """A callback address: http(s), at most ``max_length`` characters."""
        value = self.text(obj, key, path, max_length=max_length)
        if value is not None and not value.startswith(("http://", "https://")):
            self.problem(join(path, key), "field.format", f"{value!r} is not an http(s) URL")
            return None
        return value

    def boolean(self, obj: Body | None, key: str, path: str) -> bool | None:
        value = self._get(obj, key, path, False)
        if value is None:
            return None
        if not isinstance(value, bool):
            self.problem(
                join(path, key), "field.type", f"expected true or false, got {_kind(value)}"
            )
            return None
        return value

    def integer(
        self, obj: Body | None, key: str, path: str, *, required: bool = False
    ) -> int | None:
        value = self._get(obj, key, path, required)
        if value is None:
            return None
        if type(value) is not int:
            self.problem(join(path, key), "field.type", f"expected an integer, got {_kind(value)}")
            return None
        return value

    def _number(self, value: Any, where: str) -> Decimal | None:
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            self.problem(where, "field.type", f"expected a number, got {_kind(value)}")
            return None
        if isinstance(value, int):
            return self._sized(Decimal(value), where)
        if not value.is_finite():
            self.problem(where, "field.type", f"expected a number, got {value}")
            return None
        exponent = value.as_tuple().exponent
        assert isinstance(exponent, int)
        if exponent >= 0:
            self.problem(where, "number.exponent", f"{value} is in exponent notation")
            return None
        return self._sized(value, where)

    def _sized(self, value: Decimal, where: str) -> Decimal | None:
        # Far beyond any receipt value (FFD money stops at 2.8e10 roubles); bounding it keeps
        # price × quantity within Decimal's 28 digits wherever it is computed.
        if abs(value) >= _MAX_NUMBER or len(value.as_tuple().digits) > _MAX_DIGITS:
            self.problem(where, "number.size", f"{value} is larger or longer than a receipt value")
            return None
        return value

    def money(self, obj: Body | None, key: str, path: str, *, required: bool = False) -> int | None:
        """Roubles with at most two decimals, as integer kopecks."""
        value = self._get(obj, key, path, required)
        if value is None:
            return None
        where = join(path, key)
        number = self._number(value, where)
        if number is None:
            return None
        exponent = number.as_tuple().exponent
        assert isinstance(exponent, int)
        if exponent < -2:
            self.problem(where, "money.precision", f"{number} has more than 2 decimal places")
            return None
        return int(number * 100)

    def quantity(
        self,
        obj: Body | None,
        key: str,
        path: str,
        *,
        required: bool = False,
        max_places: int | None = None,
    ) -> Decimal | None:
        value = self._get(obj, key, path, required)
        if value is None:
            return None
        where = join(path, key)
        number = self._number(value, where)
        if number is None:
            return None
        exponent = number.as_tuple().exponent
        assert isinstance(exponent, int)
        if max_places is not None and -exponent > max_places:
            self.problem(
                where, "quantity.precision", f"{number} has more than {max_places} decimal places"
            )
            return None
        return number

    def choice(
        self,
        obj: Body | None,
        key: str,
        path: str,
        names: Mapping[Any, int],
        *,
        required: bool = False,
        retired: Mapping[Any, str] | None = None,
    ) -> int | None:
        """An FFD code named by one of ``names`` (strings, or the format's own numbers)."""
        value = self._get(obj, key, path, required)
        if value is None:
            return None
        where = join(path, key)
        expected = type(next(iter(names)))
        if type(value) is not expected:
            wanted = "a string" if expected is str else "an integer"
            self.problem(where, "field.type", f"expected {wanted}, got {_kind(value)}")
            return None
        if retired and value in retired:
            self.problem(where, "ingress.unsupported", f"{value!r}: {retired[value]}")
            return None
        if value not in names:
            listed = ", ".join(str(n) for n in names)
            self.problem(where, "enum.unknown", f"{value!r} is not one of {listed}")
            return None
        return names[value]

    def array(
        self,
        obj: Body | None,
        key: str,
        path: str,
        *,
        required: bool = False,
        min_length: int = 0,
        max_length: int | None = None,
    ) -> list[Any] | None:
        value = self._get(obj, key, path, required)
        if value is None:
            return None
        where = join(path, key)
        if not isinstance(value, list):
            self.problem(where, "field.type", f"expected an array, got {_kind(value)}")
            return None
        if len(value) < min_length or (max_length is not None and len(value) > max_length):
            bound = (
                f"{min_length} to {max_length}" if max_length is not None else f">= {min_length}"
            )
            self.problem(where, "field.length", f"{len(value)} entries, expected {bound}")
        return value

    def strings(self, obj: Body | None, key: str, path: str) -> tuple[str, ...]:
        values = self.array(obj, key, path) or []
        out = []
        for i, value in enumerate(values):
            if isinstance(value, str):
                out.append(value)
            else:
                self.problem(
                    f"{join(path, key)}[{i}]",
                    "field.type",
                    f"expected a string, got {_kind(value)}",
                )
        return tuple(out)

    def date_text(
        self, obj: Body | None, key: str, path: str, *, required: bool = False
    ) -> str | None:
        """A ``dd.mm.yyyy`` date, kept as the text the model holds."""
        value = self.text(obj, key, path, required=required)
        if value is not None and self._parse_time(value, _DATE, DATE_FORMAT, join(path, key)):
            return value
        return None

    def date(
        self, obj: Body | None, key: str, path: str, *, required: bool = False
    ) -> datetime | None:
        """A ``dd.mm.yyyy`` date as midnight of that day."""
        value = self.text(obj, key, path, required=required)
        if value is None:
            return None
        return self._parse_time(value, _DATE, DATE_FORMAT, join(path, key))

    def timestamp(
        self, obj: Body | None, key: str, path: str, *, required: bool = False
    ) -> datetime | None:
        """A ``dd.mm.yyyy HH:MM:SS`` time (naive: the sender's local time)."""
        value = self.text(obj, key, path, required=required)
        if value is None:
            return None
        return self._parse_time(value, _DATETIME, DATETIME_FORMAT, join(path, key))

    def _parse_time(
        self, value: str, shape: re.Pattern[str], fmt: str, where: str
    ) -> datetime | None:
        human = fmt.replace("%d", "dd").replace("%m", "mm").replace("%Y", "yyyy")
        human = human.replace("%H", "HH").replace("%M", "MM").replace("%S", "SS")
        try:
            if not shape.match(value):
                raise ValueError
            return datetime.strptime(value, fmt)
        except ValueError:
            self.problem(where, "field.format", f"{value!r} does not have the form {human}")
            return None


# --- building -------------------------------------------------------------------------------------


class Writer:
    """Collects what a receipt has that a format cannot say, with model paths."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def cannot(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, "ingress.inexpressible", message))

    def finish(self) -> None:
        if self.problems:
            raise IngressError(self.problems)


def rubles(kopecks: int) -> Decimal:
    """Kopecks as the formats' roubles: a number with exactly two decimals."""
    return Decimal(kopecks).scaleb(-2)


def quantity_out(quantity: Decimal) -> int | Decimal:
    """A quantity as a JSON number: an integer when whole, else the shortest exact decimal."""
    number = quantity.normalize()
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)
    return int(number) if exponent >= 0 else number


def name_of(names: Mapping[Any, int], code: int | None) -> Any:
    """The format's name of an FFD code (the first name listed for it), or None."""
    for name, value in names.items():
        if value == code:
            return name
    return None


def _int(value: int | None) -> int | None:
    """A plain int for JSON: the model may hold the FFD enums, which are IntEnums."""
    return None if value is None else int(value)


def put(out: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key`` unless the value is absent (None, empty): optional fields stay out."""
    if value is not None and value != () and value != [] and value != {}:
        out[key] = value


# --- blocks both formats share --------------------------------------------------------------------

#: 1222 / 1057 агент kinds in bit order, shared by the formats' names.
AGENT_BITS = tuple(int(a) for a in AgentType)

_CLIENT_FIELDS = (
    "email",
    "phone",
    "name",
    "inn",
    "birthdate",
    "citizenship",
    "document_code",
    "document_data",
    "address",
)


def read_client(
    r: Reader, body: Body | None, path: str, *, contact_required: bool
) -> Client | None:
    """покупатель: 1008 from e-mail or phone (the e-mail wins when both are given), 1256."""
    obj = r.field_object(body, "client", path, _CLIENT_FIELDS)
    where = join(path, "client")
    if obj is None:
        if contact_required and body is not None and body.get("client") is None:
            r.problem(where, "field.missing", "required field is missing")
        return None
    email = r.text(obj, "email", where)
    phone = r.text(obj, "phone", where)
    if contact_required and email is None and phone is None:
        r.problem(join(where, "email"), "field.missing", "give the buyer's email or phone (1008)")
    client = Client(
        contact=email if email is not None else phone,
        name=r.text(obj, "name", where),
        inn=r.text(obj, "inn", where),
        birth_date=r.date_text(obj, "birthdate", where),
        citizenship=r.digits(obj, "citizenship", where),
        document_code=r.digits(obj, "document_code", where),
        document_data=r.text(obj, "document_data", where),
        address=r.text(obj, "address", where),
    )
    return None if client == Client() else client


def client_out(client: Client | None) -> dict[str, Any]:
    if client is None:
        return {}
    out: dict[str, Any] = {}
    if client.contact is not None:
        out[contact_key(client.contact)] = client.contact
    put(out, "name", client.name)
    put(out, "inn", client.inn)
    put(out, "birthdate", client.birth_date)
    put(out, "citizenship", client.citizenship)
    put(out, "document_code", client.document_code)
    put(out, "document_data", client.document_data)
    put(out, "address", client.address)
    return out


def contact_key(contact: str) -> str:
    """Which of the formats' two buyer fields a 1008 value goes back to."""
    return "email" if "@" in contact else "phone"


def read_user_prop(r: Reader, body: Body | None, path: str) -> UserProp | None:
    """1084 дополнительный реквизит пользователя: ``additional_user_props {name, value}``."""
    obj = r.field_object(body, "additional_user_props", path, ("name", "value"))
    where = join(path, "additional_user_props")
    if obj is None:
        return None
    name = r.text(obj, "name", where, required=True)
    value = r.text(obj, "value", where, required=True)
    return UserProp(name or "", value or "")


def user_prop_out(prop: UserProp | None) -> dict[str, Any] | None:
    return None if prop is None else {"name": prop.name, "value": prop.value}


def read_operating_prop(r: Reader, body: Body | None, path: str) -> OperatingProp | None:
    """1270 операционный реквизит: ``{name: "0" (1271), value (1272), timestamp (1273)}``."""
    obj = r.field_object(body, "operating_check_props", path, ("name", "value", "timestamp"))
    where = join(path, "operating_check_props")
    if obj is None:
        return None
    name = r.byte_code(obj, "name", where, required=True)
    data = r.text(obj, "value", where, required=True)
    time = r.timestamp(obj, "timestamp", where, required=True)
    return OperatingProp(name or 0, data or "", time or datetime(1970, 1, 1))


def operating_prop_out(prop: OperatingProp | None, w: Writer) -> dict[str, Any] | None:
    if prop is None:
        return None
    if prop.time.microsecond or prop.time.tzinfo is not None:
        w.cannot("operating_prop.time", "the format carries whole seconds of a naive time")
    return {
        "name": str(prop.operation_id),
        "value": prop.data,
        "timestamp": prop.time.strftime(DATETIME_FORMAT),
    }


def read_sectoral(r: Reader, body: Body | None, key: str, path: str) -> tuple[IndustryProp, ...]:
    """1260 / 1261 отраслевой реквизит: ``[{federal_id, date, number, value}]``."""
    out = []
    for i, value in enumerate(r.array(body, key, path) or []):
        where = f"{join(path, key)}[{i}]"
        fields = ("federal_id", "date", "number", "value")
        obj = r.object(value, where, fields)
        prop = IndustryProp(
            authority_id=r.text(obj, "federal_id", where, required=True) or "",
            document_date=r.date_text(obj, "date", where, required=True) or "",
            document_number=r.text(obj, "number", where, required=True) or "",
            value=r.text(obj, "value", where, required=True) or "",
        )
        out.append(prop)
    return tuple(out)


def sectoral_out(props: tuple[IndustryProp, ...]) -> list[dict[str, Any]]:
    return [
        {
            "federal_id": p.authority_id,
            "date": p.document_date,
            "number": p.document_number,
            "value": p.value,
        }
        for p in props
    ]


def read_cashless(r: Reader, body: Body | None, path: str) -> tuple[CashlessPayment, ...]:
    """1234 → 1235 сведения об оплате безналичными: ``cashless_payments[]``."""
    out = []
    key = "cashless_payments"
    for i, value in enumerate(r.array(body, key, path) or []):
        where = f"{join(path, key)}[{i}]"
        obj = r.object(value, where, ("sum", "method", "id", "additional_info"))
        out.append(
            CashlessPayment(
                method=r.integer(obj, "method", where, required=True) or 0,
                sum=r.money(obj, "sum", where, required=True) or 0,
                identifiers=r.text(obj, "id", where, required=True, max_length=256),
                details=r.text(obj, "additional_info", where, max_length=256),
            )
        )
    return tuple(out)


def cashless_out(payments: Payments, w: Writer) -> list[dict[str, Any]]:
    out = []
    for i, p in enumerate(payments.cashless):
        if p.identifiers is None:
            w.cannot(f"payments.cashless[{i}].identifiers", "the formats require the id (1237)")
        entry: dict[str, Any] = {"sum": rubles(p.sum), "method": int(p.method), "id": p.identifiers}
        put(entry, "additional_info", p.details)
        out.append(entry)
    return out


def read_payments(
    r: Reader,
    body: Body | None,
    path: str,
    kinds: Mapping[Any, str],
    *,
    unsupported: Mapping[Any, str] | None = None,
    min_length: int = 0,
    max_length: int | None = None,
) -> Payments:
    """The payment list, summed per FFD tag: ``kinds`` maps each payment type onto a
    :class:`Payments` field (cash 1031, electronic 1081, prepaid 1215, credit 1216, provision
    1217)."""
    names = {kind: i for i, kind in enumerate(kinds)}
    sums = dict.fromkeys(kinds.values(), 0)
    values = r.array(
        body, "payments", path, required=True, min_length=min_length, max_length=max_length
    )
    for i, value in enumerate(values or []):
        where = f"{join(path, 'payments')}[{i}]"
        obj = r.object(value, where, ("type", "sum"))
        kind = r.choice(obj, "type", where, names, required=True, retired=unsupported)
        amount = r.money(obj, "sum", where, required=True)
        if kind is not None and amount is not None:
            field = list(kinds.values())[kind]
            sums[field] += amount
    return Payments(
        cash=sums.get("cash", 0),
        electronic=sums.get("electronic", 0),
        prepaid=sums.get("prepaid", 0),
        credit=sums.get("credit", 0),
        provision=sums.get("provision", 0),
    )


def payments_out(payments: Payments, kinds: Mapping[Any, str]) -> list[dict[str, Any]]:
    """One entry per tag that carries money, in the format's order (a zero receipt has one)."""
    out = [
        {"type": kind, "sum": rubles(getattr(payments, field))}
        for kind, field in kinds.items()
        if getattr(payments, field)
    ]
    if not out:
        out = [{"type": next(iter(kinds)), "sum": rubles(0)}]
    return out


_AGENT_FIELDS = ("type", "paying_agent", "receive_payments_operator", "money_transfer_operator")
_TRANSFER_FIELDS = ("phones", "name", "address", "inn")


def read_agent(
    r: Reader, body: Body | None, path: str, names: Mapping[str, int]
) -> tuple[int | None, AgentData | None]:
    """``agent_info``: the agent kind (1222 / 1057) and 1223 данные агента."""
    obj = r.field_object(body, "agent_info", path, _AGENT_FIELDS, ("type",))
    where = join(path, "agent_info")
    if obj is None:
        return None, None
    kind = r.choice(obj, "type", where, names)
    paying = r.field_object(obj, "paying_agent", where, ("operation", "phones"))
    receiving = r.field_object(obj, "receive_payments_operator", where, ("phones",))
    transfer = r.field_object(obj, "money_transfer_operator", where, _TRANSFER_FIELDS)
    paying_at = join(where, "paying_agent")
    transfer_at = join(where, "money_transfer_operator")
    agent = AgentData(
        operation=r.text(paying, "operation", paying_at, max_length=24),
        phones=r.strings(paying, "phones", paying_at),
        payment_operator_phones=r.strings(
            receiving, "phones", join(where, "receive_payments_operator")
        ),
        transfer_operator_phones=r.strings(transfer, "phones", transfer_at),
        transfer_operator_name=r.text(transfer, "name", transfer_at),
        transfer_operator_address=r.text(transfer, "address", transfer_at),
        transfer_operator_inn=r.text(transfer, "inn", transfer_at),
    )
    return kind, None if agent == AgentData() else agent


def agent_out(
    kind: int | None, agent: AgentData | None, names: Mapping[str, int], w: Writer, path: str
) -> dict[str, Any] | None:
    if kind is None:
        if agent is not None:
            w.cannot(f"{path}.agent", "agent data (1223) goes in agent_info, which needs its type")
        return None
    name = name_of(names, kind)
    if name is None:
        w.cannot(f"{path}.agent_type", f"{kind:#x} is not one agent kind the format can name")
    out: dict[str, Any] = {"type": name}
    if agent is None:
        return out
    paying: dict[str, Any] = {}
    put(paying, "operation", agent.operation)
    put(paying, "phones", list(agent.phones))
    put(out, "paying_agent", paying)
    if agent.payment_operator_phones:
        out["receive_payments_operator"] = {"phones": list(agent.payment_operator_phones)}
    transfer: dict[str, Any] = {}
    put(transfer, "phones", list(agent.transfer_operator_phones))
    put(transfer, "name", agent.transfer_operator_name)
    put(transfer, "address", agent.transfer_operator_address)
    put(transfer, "inn", agent.transfer_operator_inn)
    put(out, "money_transfer_operator", transfer)
    return out


def read_supplier(
    r: Reader, body: Body | None, path: str, *, inn_required: bool
) -> Supplier | None:
    """``supplier_info``: 1224 данные поставщика (1225 name, 1171 phones) and 1226 ИНН."""
    obj = r.field_object(body, "supplier_info", path, ("inn", "name", "phones"))
    where = join(path, "supplier_info")
    if obj is None:
        return None
    return Supplier(
        name=r.text(obj, "name", where),
        phones=r.strings(obj, "phones", where),
        inn=r.text(obj, "inn", where, required=inn_required),
    )


def supplier_out(
    supplier: Supplier | None, w: Writer, path: str, *, inn_required: bool
) -> dict[str, Any] | None:
    if supplier is None:
        return None
    if inn_required and supplier.inn is None:
        w.cannot(f"{path}.supplier.inn", "the format requires the supplier's INN (1226)")
    out: dict[str, Any] = {}
    put(out, "inn", supplier.inn)
    put(out, "name", supplier.name)
    put(out, "phones", list(supplier.phones))
    return out


#: ``mark_code`` keys → the model's 1163 kinds (the 1300–1309 child tags).
MARK_KINDS: dict[str, str] = {
    "unknown": "unknown",
    "ean8": "ean8",
    "ean13": "ean13",
    "itf14": "itf14",
    "gs10": "gs1",
    "gs1m": "gs1m",
    "short": "kmk",
    "fur": "mi",
    "egais20": "egais2",
    "egais30": "egais3",
}
_BASE64_KINDS = frozenset({"gs1m"})


def read_marking(r: Reader, item: Body | None, path: str, *, with_mode: bool) -> Marking | None:
    """1163 код товара from ``mark_code``, with 2003 ``planned_status`` and 2102.

    ``gs1m`` is base64 of the whole DataMatrix code as scanned (with its GS separators and
    crypto tail): the 1163 code is its head before the first GS and 2115 is derived from it.
    Other kinds carry the code text itself, and 2115 is derived from that text.
    """
    obj = r.field_object(item, "mark_code", path, MARK_KINDS)
    where = join(path, "mark_code")
    status = r.integer(item, "planned_status", path)
    mode = r.byte_code(item, "mark_processing_mode", path) if with_mode else None
    if obj is None:
        if item is not None and "mark_code" not in item and (status, mode) != (None, None):
            r.problem(
                where, "field.missing", "planned_status and mark_processing_mode need mark_code"
            )
        return None
    if len(obj) != 1:
        r.problem(where, "field.format", f"exactly one of {', '.join(MARK_KINDS)}")
        return None
    ((name, _),) = obj.items()
    value = r.text(obj, name, where, required=True)
    kind = MARK_KINDS.get(name)
    if value is None or kind is None:
        return None
    scanned = None
    code = value
    raw = value.encode("utf-8", "surrogatepass")
    if name in _BASE64_KINDS:
        try:
            raw = base64.b64decode(value, validate=True)
            scanned = raw.decode("ascii")
        except (ValueError, UnicodeDecodeError):
            r.problem(join(where, name), "field.format", "expected base64 of an ASCII marking code")
            return None
        code = scanned.split(_GS, 1)[0]
    return Marking(
        kind=kind,
        code=code,
        control_code=marking_control_code(raw),
        scanned=scanned,
        planned_status=status,
        processing_mode=mode or 0,
    )


def marking_out(
    marking: Marking | None, w: Writer, path: str, *, with_mode: bool
) -> dict[str, Any]:
    """The ``mark_code`` / ``planned_status`` / ``mark_processing_mode`` fields of an item."""
    if marking is None:
        return {}
    where = f"{path}.marking"
    names = {kind: key for key, kind in MARK_KINDS.items()}
    name = names.get(marking.kind)
    value = marking.code
    raw = value.encode("utf-8", "surrogatepass")
    if name is None:
        w.cannot(f"{where}.kind", f"the format has no mark_code kind for {marking.kind!r}")
    elif name in _BASE64_KINDS:
        if marking.scanned is None or not marking.scanned.isascii():
            w.cannot(f"{where}.scanned", "gs1m carries the whole scanned (ASCII) code")
        else:
            raw = marking.scanned.encode("ascii")
            value = base64.b64encode(raw).decode("ascii")
            if marking.scanned.split(_GS, 1)[0] != marking.code:
                w.cannot(f"{where}.code", "1163 is not the head of the scanned code")
    elif marking.scanned is not None:
        w.cannot(f"{where}.scanned", f"{name} carries the code itself, not a scanned one")
    if marking.control_code != marking_control_code(raw):
        w.cannot(f"{where}.control_code", "2115 is derived from the code on the way in")
    if marking.check_result is not None:
        w.cannot(f"{where}.check_result", "2106 is the register's answer, not a request field")
    out: dict[str, Any] = {"mark_code": {name: value}}
    put(out, "planned_status", _int(marking.planned_status))
    if marking.processing_mode:
        if with_mode:
            out["mark_processing_mode"] = str(marking.processing_mode)
        else:
            w.cannot(f"{where}.processing_mode", "the format has no mark_processing_mode")
    return out


def read_fraction(r: Reader, item: Body | None, path: str) -> FractionalQuantity | None:
    """1291 дробное количество: ``mark_quantity {numerator (1293), denominator (1294)}``."""
    obj = r.field_object(item, "mark_quantity", path, ("numerator", "denominator"))
    where = join(path, "mark_quantity")
    if obj is None:
        return None
    numerator = r.integer(obj, "numerator", where, required=True)
    denominator = r.integer(obj, "denominator", where, required=True)
    return FractionalQuantity(numerator or 0, denominator or 0)


#: Item fields that both formats define the same way.
ITEM_EXTRA_FIELDS = (
    "user_data",
    "excise",
    "country_code",
    "declaration_number",
    "mark_quantity",
    "mark_code",
    "planned_status",
    "sectoral_item_props",
    "agent_info",
    "supplier_info",
    "wholesale",
)


def read_item_extras(
    r: Reader,
    obj: Body | None,
    path: str,
    agent_names: Mapping[str, int],
    *,
    with_mode: bool,
    supplier_inn_required: bool,
) -> dict[str, Any]:
    """The optional item fields both formats share, as :class:`Item` keyword arguments."""
    if r.boolean(obj, "wholesale", path):
        r.problem(
            join(path, "wholesale"),
            "ingress.unsupported",
            "wholesale (ОСУ) marking is not in Kassa's receipt model",
        )
    agent_type, agent = read_agent(r, obj, path, agent_names)
    return {
        "user_data": r.text(obj, "user_data", path),
        "excise": r.money(obj, "excise", path),
        "country_code": r.text(obj, "country_code", path),
        "declaration": r.text(obj, "declaration_number", path),
        "fraction": read_fraction(r, obj, path),
        "marking": read_marking(r, obj, path, with_mode=with_mode),
        "industry_props": read_sectoral(r, obj, "sectoral_item_props", path),
        "agent_type": agent_type,
        "agent": agent,
        "supplier": read_supplier(r, obj, path, inn_required=supplier_inn_required),
    }


def item_extras_out(
    item: Item,
    w: Writer,
    path: str,
    agent_names: Mapping[str, int],
    *,
    with_mode: bool,
    supplier_inn_required: bool,
) -> dict[str, Any]:
    if item.unit is not None:
        w.cannot(f"{path}.unit", "1197 is FFD 1.05; the formats carry the 2108 measure")
    out: dict[str, Any] = {}
    put(out, "user_data", item.user_data)
    put(out, "excise", None if item.excise is None else rubles(item.excise))
    put(out, "country_code", item.country_code)
    put(out, "declaration_number", item.declaration)
    if item.fraction is not None:
        out["mark_quantity"] = {
            "numerator": int(item.fraction.numerator),
            "denominator": int(item.fraction.denominator),
        }
    out.update(marking_out(item.marking, w, path, with_mode=with_mode))
    put(out, "sectoral_item_props", sectoral_out(item.industry_props))
    put(out, "agent_info", agent_out(item.agent_type, item.agent, agent_names, w, path))
    put(
        out,
        "supplier_info",
        supplier_out(item.supplier, w, path, inn_required=supplier_inn_required),
    )
    return out


#: Receipt fields that both formats define the same way.
RECEIPT_EXTRA_FIELDS = (
    "client",
    "additional_check_props",
    "additional_user_props",
    "operating_check_props",
    "sectoral_check_props",
    "internet",
    "timezone",
    "cashless_payments",
)


def read_receipt_extras(
    r: Reader, obj: Body | None, path: str, *, contact_required: bool
) -> dict[str, Any]:
    """The receipt fields both formats share, as :class:`Receipt` keyword arguments (the
    cashless details are returned under ``cashless`` for :class:`Payments`)."""
    return {
        "client": read_client(r, obj, path, contact_required=contact_required),
        "additional_prop": r.text(obj, "additional_check_props", path),
        "user_prop": read_user_prop(r, obj, path),
        "operating_prop": read_operating_prop(r, obj, path),
        "industry_props": read_sectoral(r, obj, "sectoral_check_props", path),
        "internet": bool(r.boolean(obj, "internet", path)),
        "time_zone": r.integer(obj, "timezone", path),
        "cashless": read_cashless(r, obj, path),
    }


def receipt_extras_out(receipt: Receipt, w: Writer) -> dict[str, Any]:
    out: dict[str, Any] = {}
    put(out, "additional_check_props", receipt.additional_prop)
    put(out, "additional_user_props", user_prop_out(receipt.user_prop))
    put(out, "operating_check_props", operating_prop_out(receipt.operating_prop, w))
    put(out, "sectoral_check_props", sectoral_out(receipt.industry_props))
    if receipt.internet:
        out["internet"] = True
    put(out, "timezone", _int(receipt.time_zone))
    put(out, "cashless_payments", cashless_out(receipt.payments, w))
    return out


#: 1173 тип коррекции by name.
CORRECTION_TYPES: dict[str, int] = {
    "self": int(CorrectionType.SELF),
    "instruction": int(CorrectionType.BY_ORDER),
}


def read_correction_info(
    r: Reader, body: Body | None, path: str, extra: Sequence[str] = ()
) -> tuple[int, CorrectionBasis | None]:
    """``correction_info {type (1173), base_date (1178), base_number (1179)}``."""
    fields = ("type", "base_date", "base_number", *extra)
    obj = r.field_object(body, "correction_info", path, fields)
    where = join(path, "correction_info")
    if obj is None:
        if body is not None and body.get("correction_info") is None:
            r.problem(where, "field.missing", "a correction needs correction_info (1173, 1174)")
        return 0, None
    kind = r.choice(obj, "type", where, CORRECTION_TYPES, required=True)
    date = r.date(obj, "base_date", where, required=True)
    number = r.text(obj, "base_number", where, max_length=32)
    name = r.text(obj, "base_name", where) if "base_name" in extra else None
    basis = CorrectionBasis(date=date or datetime(1970, 1, 1), number=number, name=name or None)
    return kind or 0, basis


def correction_info_out(
    kind: int, basis: CorrectionBasis | None, w: Writer, *, with_name: bool
) -> dict[str, Any]:
    name = name_of(CORRECTION_TYPES, kind)
    if name is None:
        w.cannot("correction_type", f"{kind} is not a correction type (1173) the format names")
    if basis is None:
        w.cannot("basis", "the format requires correction_info.base_date (1178)")
        return {"type": name}
    if basis.date != datetime(basis.date.year, basis.date.month, basis.date.day):
        w.cannot("basis.date", "base_date is a date: the time must be midnight")
    out: dict[str, Any] = {"type": name, "base_date": basis.date.strftime(DATE_FORMAT)}
    put(out, "base_number", basis.number)
    if basis.name is not None:
        if with_name:
            out["base_name"] = basis.name
        else:
            w.cannot("basis.name", "1177 is FFD 1.05; the format has no base_name")
    return out


def implied_sum(price: int, quantity: Decimal) -> int:
    """round half up (price × quantity): the item sum (1043) a format implies when omitted."""
    return int((price * quantity).quantize(Decimal(1), rounding=ROUND_HALF_UP))


# --- paths ----------------------------------------------------------------------------------------

#: How model paths become format paths. A key is a model field name (or two joined by a dot);
#: a value is the format's name (the rest of the path kept as it is), or a pair of the name
#: and the table for the fields below it, or a pair with None (the rest of the path dropped).
PathTable: TypeAlias = Mapping[str, "str | tuple[str, PathTable | None]"]

_INDEX = re.compile(r"\A([^\[]*)(\[\d+\])?\Z")

AGENT_PATHS: PathTable = {
    "operation": "paying_agent.operation",
    "phones": "paying_agent.phones",
    "payment_operator_phones": "receive_payments_operator.phones",
    "transfer_operator_phones": "money_transfer_operator.phones",
    "transfer_operator_name": "money_transfer_operator.name",
    "transfer_operator_address": "money_transfer_operator.address",
    "transfer_operator_inn": "money_transfer_operator.inn",
}
SECTORAL_PATHS: PathTable = {
    "authority_id": "federal_id",
    "document_date": "date",
    "document_number": "number",
}
ITEM_PATHS: PathTable = {
    "declaration": "declaration_number",
    "payment_subject": "payment_object",
    "agent_type": "agent_info.type",
    "agent": ("agent_info", AGENT_PATHS),
    "supplier": ("supplier_info", {}),
    "industry_props": ("sectoral_item_props", SECTORAL_PATHS),
    "marking.planned_status": "planned_status",
    "marking.processing_mode": "mark_processing_mode",
    "marking": ("mark_code", None),
    "fraction": ("mark_quantity", {}),
}
RECEIPT_PATHS: PathTable = {
    "client": ("client", {"birth_date": "birthdate"}),
    "additional_prop": "additional_check_props",
    "user_prop": ("additional_user_props", {}),
    "operating_prop": (
        "operating_check_props",
        {"operation_id": "name", "data": "value", "time": "timestamp"},
    ),
    "industry_props": ("sectoral_check_props", SECTORAL_PATHS),
    "time_zone": "timezone",
    "payments.cashless": (
        "cashless_payments",
        {"identifiers": "id", "details": "additional_info"},
    ),
    "payments": ("payments", None),
    "correction_type": "correction_info.type",
    "basis": (
        "correction_info",
        {"date": "base_date", "number": "base_number", "name": "base_name"},
    ),
}


def _split(segment: str) -> tuple[str, str]:
    match = _INDEX.match(segment)
    if match is None:
        return segment, ""
    return match.group(1), match.group(2) or ""


def given_contact(receipt: Any) -> str:
    """Which buyer field (``email`` or ``phone``) a body's 1008 came from."""
    client = receipt.get("client") if isinstance(receipt, Mapping) else None
    has_email = isinstance(client, Mapping) and client.get("email") is not None
    return "email" if has_email else "phone"


def translate(path: str, table: PathTable, contact: str = "email") -> str:
    """The format's JSON path of a model path (``items[2].vat_sum`` → ``items[2].vat.sum``);
    ``contact`` names the field that 1008 came from."""
    if path.startswith("client.contact"):
        path = f"client.{contact}{path.removeprefix('client.contact')}"
    segments = path.split(".")
    out: list[str] = []
    current: PathTable | None = table
    i = 0
    while i < len(segments):
        if current is None:
            break
        name, index = _split(segments[i])
        rule = None
        if i + 1 < len(segments) and not index:
            second, index2 = _split(segments[i + 1])
            rule = current.get(f"{name}.{second}")
            if rule is not None:
                index = index2
                i += 1
        if rule is None:
            rule = current.get(name)
        i += 1
        if rule is None:
            out.append(name + index)
            current = {}
        elif isinstance(rule, str):
            out.append(rule + index)
            out.extend(segments[i:])
            break
        else:
            out.append(rule[0] + index)
            current = rule[1]
    return ".".join(out)
