"""The checks before fiscalization as the engine runs them (проверка чека перед фискализацией).

A receipt that passes them must not fail at the register for a reason in its data: so beside
the receipt's own rules (:func:`protocols.validation.validate`) they ask what the target group's
registers and their ФН will refuse, and the engine's own needs:

- ``register.vat_rate``: a rate (1199) that a register's tax table lacks;
- ``register.not_carried``: anything else a register's protocol cannot carry (5-byte money of
  Shtrih FF46h/FF45h, a tag too long for one FF4Dh, …), found by planning the receipt's
  commands exactly as the register's driver will, without sending them;
- ``registration.tax_system``: a tax system (1055) that a register is not registered for
  (1062), once the engine has read the register's registration report;
- ``document.too_large``: receipt data larger than the ФН takes (≤ 30 KB, ФН command 15h,
  registers.md §3), counted with the job marker and the register's own address and place;
- ``document.marking_codes``: more marking codes to check than a ФН-М's check table holds
  (:data:`protocols.fn.MARKING_TABLE_SIZE`; every code is checked before the receipt opens);
- ``engine.marker``: 1192 and 1084 both set, leaving no room for the job marker;
- ``correction.basis_date_future``: a correction's base date (1178) after today at the
  register (the tenant's time zone).

``kassa receipt check``, ``submit`` and every front door call :func:`check_receipt`, so they
all refuse the same receipts, before anything is journaled.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal, InvalidOperation

import attrs

from engine.drivers import atol, shtrih
from engine.drivers.marking import CHECKED_OPERATIONS
from engine.drivers.paths import NotCarried
from engine.recovery import has_room_for_marker, mark
from protocols.documents.ffd import DocumentError, receipt_to_tags
from protocols.documents.model import Item, Receipt
from protocols.documents.vat import TaxTable
from protocols.fn import MARKING_TABLE_SIZE, MAX_RECEIPT_DATA
from protocols.tlv import TAGS, TlvError, encode
from protocols.validation import Limits, Problem, validate

__all__ = ["CODES", "MAX_RECEIPT_DATA", "RegisterProfile", "check_receipt", "engine_problems"]

#: The codes of the checks beyond the receipt's own rules (docs/validation.md lists them).
CODES = frozenset(
    {
        "register.vat_rate",
        "register.not_carried",
        "registration.tax_system",
        "document.too_large",
        "document.marking_codes",
        "engine.marker",
    }
)

#: Tags the register writes from its registration whatever the receipt says: address and
#: place of settlement (1009, 1187). The check counts them at their longest.
_REGISTER_OWN = (1009, 1187)
_REGISTER_OWN_SIZE = sum(4 + TAGS[tag].max_length for tag in _REGISTER_OWN)
#: Tags the ФН writes itself (its header): not part of the data the register sends.
_FN_OWN = (1054, 1020, 1018)
#: The ФН's own head of a signed receipt at its longest: the document's tag and length, and
#: 1041, 1037, 1018, 1040, 1012, 1077, 1038, 1042, 1054, 1020.
_FN_HEAD = 4 + sum(
    4 + TAGS[tag].max_length for tag in (1041, 1037, 1018, 1040, 1012, 1077, 1038, 1042, 1054, 1020)
)
#: The longest signed document each protocol's driver reads back; absent: no such limit.
_DOCUMENT_LIMITS = {"atol": atol.MAX_DOCUMENT}
_PROBE_JOB = "0" * 32  # a job id of the longest marker, for counting bytes
_MICRO = Decimal("0.000001")
_SIX = -6

_PLANNERS = {"shtrih": shtrih.problems, "atol": atol.problems}


@attrs.frozen(cache_hash=True)  # a key of the checks memo, hashed per submit
class RegisterProfile:
    """What the checks know of one register (профиль ККТ): what its protocol can carry.

    ``tax_systems`` is 1062 of its registration, None until the engine has read it.
    """

    id: str
    protocol: str
    taxes: TaxTable
    tax_systems: int | None = None


def check_receipt(
    receipt: Receipt,
    registers: Sequence[RegisterProfile],
    *,
    today: date | None = None,
    limits: Limits | None = None,
) -> list[Problem]:
    """Every problem of ``receipt`` for a group of ``registers``; [] means it may be sent.

    The group's scheduler may pick any of its registers, so the receipt must suit each.
    """
    problems = validate(receipt, today=today, limits=limits or Limits())
    paths = {p.path for p in problems}  # a part already found wrong is not reported twice
    return problems + [p for p in engine_problems(receipt, registers) if p.path not in paths]


def engine_problems(receipt: Receipt, registers: Sequence[RegisterProfile]) -> list[Problem]:
    """The checks beyond :func:`~protocols.validation.validate`: the marker, the ФН's size
    limit and what ``registers`` cannot carry (an ingress format's ``check(more=...)``)."""
    problems: list[Problem] = []
    if not has_room_for_marker(receipt):
        problems.append(
            Problem(
                "user_prop",
                "engine.marker",
                "1192 and 1084 are both set: the engine needs one of them for its job marker",
            )
        )
    problems += _size(receipt, registers) + _marking_codes(receipt)
    return problems + _register_problems(receipt, registers)


def _size(receipt: Receipt, registers: Sequence[RegisterProfile]) -> list[Problem]:
    """``document.too_large`` when the data the register sends the ФН exceeds its limit, or
    the signed document (with the ФН's own head) is longer than a register's protocol reads
    back in one piece (ATOL's A4 46)."""
    marked = mark(receipt, _PROBE_JOB) if has_room_for_marker(receipt) else receipt
    widest = tuple(_as_the_register_writes(item) for item in marked.items)
    try:
        tags = receipt_to_tags(attrs.evolve(marked, items=widest))
        for tag in (*_REGISTER_OWN, *_FN_OWN):
            tags.pop(tag, None)
        size = len(encode(tags)) + _REGISTER_OWN_SIZE
    except (DocumentError, TlvError):
        return []  # a receipt that cannot be encoded has its own problems, with their paths
    what = f"the receipt is {size} bytes of fiscal data with the job marker and the register's "
    if size > MAX_RECEIPT_DATA:
        why = f"{what}address and place; a ФН takes at most {MAX_RECEIPT_DATA} (15h)"
        return [Problem("items", "document.too_large", why)]
    signed = size + _FN_HEAD
    short = [
        f"{profile.id} ({profile.protocol}: {limit})"
        for profile in registers
        if (limit := _DOCUMENT_LIMITS.get(profile.protocol)) is not None and signed > limit
    ]
    if short:
        why = (
            f"{what}address and place, {signed} signed; longer than a register reads back in "
            f"one piece: {', '.join(short)} bytes"
        )
        return [Problem("items", "document.too_large", why)]
    return []


def _marking_codes(receipt: Receipt) -> list[Problem]:
    """``document.marking_codes`` when the drivers would check more codes before the receipt
    opens than the ФН's table keeps (A3h at the register, half-way through the checks)."""
    if receipt.operation not in CHECKED_OPERATIONS:
        return []
    codes = sum(1 for item in receipt.items if item.marking is not None)
    if codes <= MARKING_TABLE_SIZE:
        return []
    why = (
        f"{codes} marked lines: the ФН checks every code before the receipt opens and keeps "
        f"at most {MARKING_TABLE_SIZE} checked codes (A3h); split the receipt"
    )
    return [Problem("items", "document.marking_codes", why)]


def _as_the_register_writes(item: Item) -> Item:
    """``item`` with its quantity (1023) at the six decimals Shtrih's FF46h gives the ФН: the
    widest form a register writes it in (ATOL's E6h has three)."""
    quantity = item.quantity
    if (
        isinstance(quantity, Decimal)
        and quantity.is_finite()
        and quantity.as_tuple().exponent != _SIX
    ):
        try:
            quantity = quantity.quantize(_MICRO)
        except InvalidOperation:
            return item
        return attrs.evolve(item, quantity=quantity)
    return item


def _register_problems(receipt: Receipt, registers: Sequence[RegisterProfile]) -> list[Problem]:
    """What the group's registers cannot carry, each problem naming the registers it is for.

    The registers are taken kind by kind (protocol, tax table, registered tax systems): a
    group of hundreds is a few kinds, and a receipt is planned once a kind, not a register.
    """
    kinds: dict[tuple[str, int, int | None], list[int]] = {}  # the tax table by identity
    for index, profile in enumerate(registers):
        key = (profile.protocol, id(profile.taxes), profile.tax_systems)
        kinds.setdefault(key, []).append(index)
    found: dict[tuple[str, str, str], list[int]] = {}
    planned: dict[tuple[str, TaxTable], tuple[NotCarried, ...]] = {}  # once per kind of register
    tax_system = receipt.company.tax_system
    for indexes in kinds.values():
        profile = registers[indexes[0]]
        kind = (profile.protocol, profile.taxes)
        if kind not in planned:
            planned[kind] = _refusals(receipt, profile)
        for refused in planned[kind]:
            found.setdefault((refused.path, refused.check, refused.why), []).extend(indexes)
        systems = profile.tax_systems
        if systems is not None and isinstance(tax_system, int) and not tax_system & systems:
            why = (
                f"tax system (1055) {tax_system:#04x} is not among the register's registered "
                f"systems (1062) {systems:#04x}"
            )
            found.setdefault(("company.tax_system", "registration.tax_system", why), []).extend(
                indexes
            )
    every = len(registers)
    return [
        Problem(path, code, f"{why} ({_which([registers[i].id for i in sorted(ids)], every)})")
        for (path, code, why), ids in found.items()
    ]


def _which(ids: Sequence[str], every: int) -> str:
    """The registers a problem is for, briefly: a large group is not listed in full."""
    if len(ids) == every and every > 1:
        return f"every register of the group, {every}"
    shown = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
    return f"register{'s' * (len(ids) > 1)} {shown}"


def _refusals(receipt: Receipt, profile: RegisterProfile) -> tuple[NotCarried, ...]:
    planner = _PLANNERS.get(profile.protocol)
    return () if planner is None else planner(receipt, profile.taxes)
