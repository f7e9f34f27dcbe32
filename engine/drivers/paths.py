"""Where a tag comes from in the receipt model: the path a driver names when it cannot send it.

A register protocol carries some fields in its own commands and the rest as TLV; a value
neither can hold is refused before a byte is sent, with the model path a person can fix
(``items[0].marking.control_code``), not a bare tag number.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import attrs

from engine.drivers.base import RegisterRefused
from protocols.documents.model import Cashier, Client, Company, Item, Payments, Receipt

_T = TypeVar("_T")


class NotCarried(RegisterRefused):
    """A part of the receipt the register's protocol cannot carry: refused before sending.

    ``path`` names the field (``items[0].vat``, ``payments.cash`` …) and ``code`` the check
    (:data:`VAT_RATE` for a rate the register's tax table lacks, :data:`NOT_CARRIED` for the
    rest). ``every`` holds every part of the receipt that cannot travel, this one first, so
    the checks before fiscalization can list them all at once.
    """

    def __init__(self, path: str, why: str, code: str = "") -> None:
        super().__init__(f"{path}: {why}" if path else why, 0)
        self.path = path
        self.why = why
        self.check = code or NOT_CARRIED
        self.every: tuple[NotCarried, ...] = (self,)

    @classmethod
    def of(cls, found: Sequence[NotCarried]) -> NotCarried:
        """The first of ``found``, carrying them all."""
        first = found[0]
        first.every = tuple(found)
        return first


#: Check codes of what a register cannot carry (docs/validation.md).
NOT_CARRIED = "register.not_carried"
VAT_RATE = "register.vat_rate"


class Gather:
    """Collects what cannot travel, part by part, so that one refusal names every part."""

    def __init__(self) -> None:
        self.found: list[NotCarried] = []

    def part(self, step: Callable[[], _T]) -> _T | None:
        """``step()``, or None after noting the :class:`NotCarried` it raised."""
        try:
            return step()
        except NotCarried as exc:
            self.found.extend(exc.every)
            return None

    def check(self) -> None:
        """Raise what was found, if anything."""
        if self.found:
            raise NotCarried.of(self.found)


def _tag_names(cls: type, prefix: str) -> dict[int, str]:
    return {
        field.metadata["tag"]: f"{prefix}{field.name}"
        for field in attrs.fields(cls)
        if field.metadata.get("tag") is not None
    }


#: The item field behind each tag of a 1059 block.
ITEM_PATHS: Mapping[int, str] = {
    **_tag_names(Item, ""),
    1163: "marking",
    2003: "marking.planned_status",
    2102: "marking.processing_mode",
    2106: "marking.check_result",
    2115: "marking.control_code",
    1224: "supplier",
    1226: "supplier.inn",
    1291: "fraction",
}
#: The receipt field behind each receipt-level tag.
RECEIPT_PATHS: Mapping[int, str] = {
    **_tag_names(Receipt, ""),
    **_tag_names(Company, "company."),
    **_tag_names(Cashier, "cashier."),
    **_tag_names(Client, "client."),
    **_tag_names(Payments, "payments."),
    1234: "payments.cashless",
    1008: "client.contact",
    1256: "client",
    1227: "client.name",
    1228: "client.inn",
    1173: "correction_type",
    1174: "basis",
    1125: "internet",
}


def join(prefix: str, name: str) -> str:
    """``prefix.name``, or whichever of the two is not empty."""
    if not prefix:
        return name
    return f"{prefix}.{name}" if name else prefix
