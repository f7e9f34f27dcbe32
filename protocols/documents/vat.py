"""VAT arithmetic (расчёт НДС) as the ФН and the OFD's format-logic control do it.

Prices include VAT, so an item's VAT is ``sum × r / (100 + r)`` for every rate with a
percentage, rounded half up to the kopeck; 0 % and "no VAT" carry none. Receipt totals per
rate are the sum of the rounded item amounts by default; some registers compute them from
the per-rate subtotal instead, and a 1-kopeck difference between the two is a known source
of ФЛК complaints, so the rule is a parameter (ffd.md §4.5).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from types import MappingProxyType

import attrs

from protocols.tlv.enums import VatRate

#: Receipt-level total tags of the rates that FFD 1.05 already had (1102–1107).
LEGACY_TOTAL_TAGS: dict[int, int] = {
    VatRate.VAT20: 1102,
    VatRate.VAT10: 1103,
    VatRate.VAT0: 1104,
    VatRate.NONE: 1105,
    VatRate.VAT120: 1106,
    VatRate.VAT110: 1107,
}
#: Rates whose receipt total is the turnover (сумма расчёта), not a VAT amount.
TURNOVER_RATES = frozenset({VatRate.VAT0, VatRate.NONE})


class VatTotalRule(enum.Enum):
    """How a receipt's per-rate VAT total is formed."""

    SUM_OF_ITEMS = "sum_of_items"  # Σ round(item VAT)
    FROM_SUBTOTAL = "from_subtotal"  # round(VAT of Σ item sums)


def vat_amount(amount: int, rate: int) -> int | None:
    """The VAT included in ``amount`` kopecks at ``rate`` (1199); None where no VAT applies."""
    try:
        percent = VatRate(rate).percent
    except ValueError:
        return None
    if percent is None or percent == 0:
        return None
    exact = Decimal(amount) * percent / (100 + percent)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def vat_totals(
    lines: Iterable[tuple[int, int]], rule: VatTotalRule = VatTotalRule.SUM_OF_ITEMS
) -> dict[int, int]:
    """Receipt totals per rate from (item sum, rate) pairs.

    For 0 % and "no VAT" the total is the turnover at that rate (1104, 1105); for the others
    it is the VAT amount.
    """
    turnover: dict[int, int] = {}
    vat: dict[int, int] = {}
    for amount, rate in lines:
        turnover[rate] = turnover.get(rate, 0) + amount
        vat[rate] = vat.get(rate, 0) + (vat_amount(amount, rate) or 0)
    out: dict[int, int] = {}
    for rate, amount in turnover.items():
        if rate in TURNOVER_RATES:
            out[rate] = amount
        elif rule is VatTotalRule.FROM_SUBTOTAL:
            out[rate] = vat_amount(amount, rate) or 0
        else:
            out[rate] = vat[rate]
    return out


def _pairs(codes: Mapping[int, int]) -> tuple[tuple[int, int], ...]:
    return tuple(sorted((int(rate), int(code)) for rate, code in codes.items()))


@attrs.frozen(cache_hash=True)  # hashed with every RegisterProfile
class TaxTable:
    """A register's tax table (таблица налогов): the code its protocol sends for each rate.

    A register carries a rate (1199) only if its firmware's table has a code for it; the
    table is part of the register's configuration, so the engine's checks, its driver and
    the emulator all read the same value. Built from a mapping 1199 → wire code; kept as
    sorted pairs so that a table is a hashable value.
    """

    name: str
    pairs: tuple[tuple[int, int], ...] = attrs.field(converter=_pairs)
    _by_rate: Mapping[int, int] = attrs.field(init=False, eq=False, repr=False)
    _by_code: Mapping[int, int] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_by_rate", MappingProxyType(dict(self.pairs)))
        by_code = {code: rate for rate, code in self.pairs}
        object.__setattr__(self, "_by_code", MappingProxyType(by_code))

    @property
    def codes(self) -> Mapping[int, int]:
        """1199 rate → the protocol's code for it."""
        return self._by_rate

    @property
    def rates(self) -> frozenset[int]:
        """The 1199 codes this table can carry."""
        return frozenset(self._by_rate)

    def code_of(self, rate: int) -> int | None:
        """The wire code of 1199 ``rate``; None where the table has none."""
        return self._by_rate.get(rate)

    def rate_of(self, code: int) -> int | None:
        """The 1199 rate a wire ``code`` stands for; None for a code the table lacks."""
        return self._by_code.get(code)

    def describe(self) -> str:
        """The rates, for a person: ``20 %, 10 %, 20/120 …``."""
        return ", ".join(RATE_NAMES[VatRate(rate)] for rate, _ in self.pairs)


#: A person's name of each 1199 rate, as the ФНС order names them.
RATE_NAMES: Mapping[VatRate, str] = MappingProxyType(
    {
        VatRate.VAT20: "20 %",
        VatRate.VAT10: "10 %",
        VatRate.VAT120: "20/120",
        VatRate.VAT110: "10/110",
        VatRate.VAT0: "0 %",
        VatRate.NONE: "no VAT",
        VatRate.VAT5: "5 %",
        VatRate.VAT7: "7 %",
        VatRate.VAT105: "5/105",
        VatRate.VAT107: "7/107",
        VatRate.VAT22: "22 %",
        VatRate.VAT122: "22/122",
    }
)
