"""The checks before fiscalization hold at the register: what they accept, the emulator signs.

Each known gap (a receipt that passed the checks and then failed at the register) has its test
here, through the engine's own submit; the property test draws receipts near every limit the
checks know of and asserts the one-way promise: accepted means fiscalized, on both families.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from emulator.serve import INN, open_memory_fleet
from engine import samples
from engine.checks import CODES, RegisterProfile, check_receipt
from engine.config import EngineConfig, RegisterConfig, TenantConfig
from engine.engine import Engine, ValidationFailed
from engine.journal import JobState
from protocols.atol import taxes as atol_taxes
from protocols.documents.ffd import decode_receipt
from protocols.documents.model import (
    CorrectionBasis,
    CorrectionReceipt,
    Item,
    Payments,
    Receipt,
    UserProp,
)
from protocols.documents.vat import TURNOVER_RATES, TaxTable, vat_amount
from protocols.fiscal_sign import EmulatorSignVerifier
from protocols.fn import MARKING_TABLE_SIZE
from protocols.shtrih import taxes as shtrih_taxes
from protocols.tlv.enums import OperationType, TaxSystem, VatRate
from tests.engine.fleet import WALL_START, connector, wall_clock
from tests.protocols.receipts import receipts

PROTOCOLS = ("shtrih", "atol")
#: The emulator's registers are registered for ОСН | УСН доход (emulator/serve.py).
REGISTERED = TaxSystem.OSN | TaxSystem.USN_INCOME
DEFAULT_TABLES = {"shtrih": shtrih_taxes.DEFAULT, "atol": atol_taxes.DEFAULT}
_PROBES = itertools.count()


@asynccontextmanager
async def engine_on(
    journal: Path, tables: dict[str, TaxTable] | None = None
) -> AsyncIterator[Engine]:
    """An engine with a group per register family (``shtrih``, ``atol``), one register each,
    every register connected and its registration read."""
    tables = tables or DEFAULT_TABLES
    async with (
        open_memory_fleet(1, protocol="shtrih", taxes=tables["shtrih"].name) as shtrih,
        open_memory_fleet(1, protocol="atol", taxes=tables["atol"].name, seed=1) as atol,
    ):
        registers = tuple(
            RegisterConfig(
                id=f"kkt-{protocol}",
                tenant="shop",
                connect=connector(fleet, 0, protocol, tables[protocol]),
                group=protocol,
                protocol=protocol,
                address="memory:0",
                taxes=tables[protocol],
            )
            for protocol, fleet in (("shtrih", shtrih), ("atol", atol))
        )
        keys = {r.fn.number: r.fn.key for f in (shtrih, atol) for r in f.registers}
        config = EngineConfig(
            journal=journal,
            tenants=(TenantConfig("shop"),),
            registers=registers,
            verifier=EmulatorSignVerifier(keys),
            wall_clock=wall_clock,
        )
        async with Engine.open(config) as engine:
            while any(
                view.state != "ready" or view.tax_systems is None
                for view in engine.registers.values()
            ):
                await trio.sleep(0.1)
            yield engine


async def refused_codes(engine: Engine, group: str, receipt: Receipt) -> list[tuple[str, str]]:
    """(path, code) of every problem submit refuses ``receipt`` with; [] when accepted."""
    try:
        job = await engine.submit("shop", f"probe-{next(_PROBES)}", receipt, group=group)
    except ValidationFailed as exc:
        return [(p.path, p.code) for p in exc.problems]
    done = await engine.wait("shop", job.id)
    assert done.state is JobState.FISCALIZED, (group, done.error)
    return []


def sale(*items: Item) -> Receipt:
    total = sum(i.sum for i in items)
    return Receipt(
        operation=1,
        items=items,
        payments=Payments(electronic=total),
        company=samples.COMPANY,
        total=total,
        client=samples.CLIENT,
    )


# --- every 2026 rate, on both families -----------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_every_rate_fiscalizes_and_is_reported_and_exported(
    protocol: str, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with engine_on(tmp_path / "j.db") as engine:
        for rate in VatRate:
            line = samples.item(f"Товар {rate.name}", 12_345, "2", vat=int(rate))
            assert await refused_codes(engine, protocol, sale(line)) == [], rate
        signed = [
            decode_receipt(r.document).receipt for r in await engine.journal.fiscalized("shop")
        ]
        assert len(signed) == len(VatRate)
        for receipt in signed:  # each line's rate as the ФН signed it, and its VAT amount
            line = receipt.items[0]
            assert line.vat == VatRate[line.name.split()[-1]]
            assert line.vat_sum == vat_amount(line.sum, line.vat)
        # The report, the CSV export and the FNS JSON carry every rate with its sums.
        report = await engine.report("shop")
        (sale_totals,) = report.totals.operations
        assert {v.rate: (v.amount, v.vat) for v in sale_totals.vat} == {
            int(rate): (24_690, vat_amount(24_690, rate) or 0) for rate in VatRate
        }
        header, *rows = "".join(await _collected(engine, "csv")).splitlines()
        found = set()  # (column, amount) of every row's one rate
        for row in rows:
            exported = dict(zip(header.split(","), row.split(","), strict=True))
            found |= {(c, exported[c]) for c in _CSV_COLUMNS.values() if exported[c]}
        assert sorted(found) == sorted(
            (column, _roubles(24_690 if rate in TURNOVER_RATES else vat_amount(24_690, rate)))
            for rate, column in _CSV_COLUMNS.items()
        )
        fns = [json.loads(text) for text in await _collected(engine, "fns")]
        assert sorted(item["nds"] for d in fns for item in d["receipt"]["items"]) == sorted(
            int(rate) for rate in VatRate
        )


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_rate_the_group_lacks_is_refused_at_intake(
    protocol: str, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    legacy = {"shtrih": shtrih_taxes.LEGACY, "atol": atol_taxes.LEGACY}
    async with engine_on(tmp_path / "j.db", legacy) as engine:
        kettle = samples.item("Чайник", 199_000, vat=int(VatRate.VAT22))
        assert await refused_codes(engine, protocol, sale(kettle)) == [
            ("items[0].vat", "register.vat_rate")
        ]
        old_rate = samples.item("Чайник", 199_000, vat=int(VatRate.VAT20))
        assert await refused_codes(engine, protocol, sale(old_rate)) == []
        assert await engine.journal.jobs_in(list(JobState)) != []


def test_a_problem_names_its_registers_in_the_groups_order() -> None:
    """Registers of interleaved kinds (and equal tax tables that are different objects) are
    named in the group's order, each once, whatever kind they were checked as."""
    legacy = shtrih_taxes.LEGACY
    legacy_copy = type(legacy)(legacy.name, dict(legacy.pairs))
    group = [
        RegisterProfile("kkt-1", "shtrih", legacy),
        RegisterProfile("kkt-2", "shtrih", legacy_copy),
        RegisterProfile("kkt-3", "shtrih", shtrih_taxes.DEFAULT),
        RegisterProfile("kkt-4", "shtrih", legacy),
        RegisterProfile("kkt-5", "shtrih", legacy, tax_systems=0x02),
    ]
    kettle = samples.item("Чайник", 199_000, vat=int(VatRate.VAT22))
    problems = {(p.path, p.code): p.message for p in check_receipt(sale(kettle), group)}
    assert legacy_copy == legacy and legacy_copy is not legacy
    assert problems[("items[0].vat", "register.vat_rate")].endswith(
        "(registers kkt-1, kkt-2, kkt-4 and 1 more)"
    )
    assert problems[("company.tax_system", "registration.tax_system")].endswith("(register kkt-5)")
    fine = samples.item("Чайник", 199_000, vat=int(VatRate.VAT20))
    assert [p.code for p in check_receipt(sale(fine), group)] == ["registration.tax_system"]


#: The CSV export's column of each rate's receipt total (engine/export.py).
_CSV_COLUMNS = {
    VatRate.VAT20: "vat_20",
    VatRate.VAT10: "vat_10",
    VatRate.VAT120: "vat_20_120",
    VatRate.VAT110: "vat_10_110",
    VatRate.VAT0: "sum_vat_0",
    VatRate.NONE: "sum_no_vat",
    VatRate.VAT5: "vat_5",
    VatRate.VAT7: "vat_7",
    VatRate.VAT105: "vat_5_105",
    VatRate.VAT107: "vat_7_107",
    VatRate.VAT22: "vat_22",
    VatRate.VAT122: "vat_22_122",
}


def _roubles(kopecks: int | None) -> str:
    assert kopecks is not None
    return f"{kopecks // 100}.{kopecks % 100:02d}"


async def _collected(engine: Engine, form: str) -> list[str]:
    return list(await engine.export("shop", form))


# --- the known gaps ---------------------------------------------------------------------------


async def test_a_receipt_larger_than_the_fn_takes_is_refused_at_intake(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    lines = tuple(samples.item(f"Товар № {i}", 100 + i) for i in range(1000))
    async with engine_on(tmp_path / "j.db") as engine:
        for protocol in PROTOCOLS:
            assert ("items", "document.too_large") in await refused_codes(
                engine, protocol, sale(*lines)
            )
        assert await engine.journal.jobs_in(list(JobState)) == []
        # The longest receipt the checks let through goes through, and the register signs it;
        # one line more is refused. ATOL's limit is its one-piece read-back (A4 46).
        for protocol in PROTOCOLS:
            most = _most_lines_that_fit(lines, protocol)
            assert await refused_codes(engine, protocol, sale(*lines[:most])) == []
            assert await refused_codes(engine, protocol, sale(*lines[: most + 1])) == [
                ("items", "document.too_large")
            ]
        signed = await engine.journal.fiscalized("shop")
        assert len(signed) == 2 and max(len(r.document) for r in signed) > 16_000


def _most_lines_that_fit(lines: Sequence[Item], protocol: str) -> int:
    profiles = [RegisterProfile(protocol, protocol, DEFAULT_TABLES[protocol])]
    low, high = 1, len(lines)
    while low < high:
        middle = (low + high + 1) // 2
        if check_receipt(sale(*lines[:middle]), profiles):
            high = middle - 1
        else:
            low = middle
    return low


async def test_1192_and_1084_together_are_refused_at_intake(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    both = attrs.evolve(
        samples.card_sale(), additional_prop="заказ 1", user_prop=UserProp("канал", "сайт")
    )
    async with engine_on(tmp_path / "j.db") as engine:
        assert await refused_codes(engine, "shtrih", both) == [("user_prop", "engine.marker")]


async def test_a_correction_dated_after_the_document_is_refused_at_intake(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with engine_on(tmp_path / "j.db") as engine:
        today = engine.today("shop")
        correction = samples.correction()
        tomorrow = CorrectionBasis(
            dt.datetime.combine(today + dt.timedelta(days=1), dt.time()), number="ПР-1"
        )
        late = attrs.evolve(correction, basis=tomorrow)
        assert await refused_codes(engine, "atol", late) == [
            ("basis.date", "correction.basis_date_future")
        ]
        on_the_day = attrs.evolve(
            late, basis=attrs.evolve(tomorrow, date=tomorrow.date - dt.timedelta(days=1))
        )
        assert await refused_codes(engine, "atol", on_the_day) == []


async def test_a_tax_system_the_register_is_not_registered_for_is_refused_at_intake(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    patent = attrs.evolve(
        samples.card_sale(), company=attrs.evolve(samples.COMPANY, tax_system=int(TaxSystem.PATENT))
    )
    async with engine_on(tmp_path / "j.db") as engine:
        for protocol in PROTOCOLS:
            assert await refused_codes(engine, protocol, patent) == [
                ("company.tax_system", "registration.tax_system")
            ]


async def test_money_beyond_a_register_field_is_refused_at_intake(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    # 1 << 40 kopecks fits the model's 6-byte VLN, not Shtrih's 5-byte FF46h/FF45h fields;
    # 10¹⁰ kopecks fits neither ATOL's BCD5 payments.
    async with engine_on(tmp_path / "j.db") as engine:
        huge = sale(samples.item("Самолёт", 1 << 40, vat=int(VatRate.VAT22)))
        codes = await refused_codes(engine, "shtrih", huge)
        assert ("items[0].price", "register.not_carried") in codes
        dear = sale(samples.item("Яхта", 10**10, vat=int(VatRate.VAT22)))
        assert ("payments.electronic", "register.not_carried") in await refused_codes(
            engine, "atol", dear
        )


async def test_more_codes_than_the_fn_checks_at_once_are_refused_at_intake(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    # Every code is checked before the receipt opens, and each waits in the ФН-М's table for
    # its line: one code more than the table holds failed at the register with A3h.
    shoes = samples.marked_sale().items[0]
    lines = tuple(
        attrs.evolve(shoes, marking=samples.shoes_marking(f"S{i:09d}"))
        for i in range(MARKING_TABLE_SIZE + 1)
    )
    async with engine_on(tmp_path / "j.db") as engine:
        for protocol in PROTOCOLS:
            assert await refused_codes(engine, protocol, sale(*lines)) == [
                ("items", "document.marking_codes")
            ]
            assert await refused_codes(engine, protocol, sale(*lines[:-1])) == []
        # A refund's codes are checked before it opens too (CHECKED_OPERATIONS).
        returned = tuple(
            attrs.evolve(line, marking=attrs.evolve(line.marking, planned_status=None))
            for line in lines
        )
        refund = attrs.evolve(sale(*returned), operation=int(OperationType.SELL_REFUND))
        assert await refused_codes(engine, "shtrih", refund) == [
            ("items", "document.marking_codes")
        ]


def test_the_docs_list_every_check_of_the_engine() -> None:
    text = (Path(__file__).parents[2] / "docs" / "validation.md").read_text()
    section = text.split("\n## What the engine checks beyond the receipt")[1]
    assert set(re.findall(r"^\| `([a-z0-9_.]+)` \|", section, re.MULTILINE)) == CODES


# --- the property -----------------------------------------------------------------------------


@st.composite
def near_the_limits(draw: st.DrawFn) -> Receipt:
    """A receipt of any kind, pushed toward one limit the checks know of (or none)."""
    receipt = draw(receipts())
    company = attrs.evolve(receipt.company, inn=INN)
    receipt = attrs.evolve(receipt, company=company)
    push = draw(st.sampled_from(["none", "rate", "money", "lines", "marker", "date", "tax_system"]))
    event(f"pushed: {push}")
    if push == "rate":
        rate = draw(st.sampled_from(list(VatRate)))
        items = tuple(
            attrs.evolve(i, vat=int(rate), vat_sum=vat_amount(i.sum, rate)) for i in receipt.items
        )
        receipt = attrs.evolve(receipt, items=items)
    elif push == "money":
        price = draw(st.sampled_from([10**10 - 1, 10**10, (1 << 40) - 1, 1 << 40]))
        line = attrs.evolve(
            receipt.items[0],
            price=price,
            quantity=Decimal(1),
            sum=price,
            vat_sum=vat_amount(price, receipt.items[0].vat),
        )
        items = (line, *receipt.items[1:])
        total = sum(i.sum for i in items)
        receipt = attrs.evolve(receipt, items=items, total=total, payments=Payments(cash=total))
    elif push == "lines":
        count = draw(st.integers(100, 400))
        items = receipt.items * (count // len(receipt.items))
        total = sum(i.sum for i in items)
        receipt = attrs.evolve(
            receipt, items=items, total=total, payments=Payments(electronic=total)
        )
    elif push == "marker":
        receipt = attrs.evolve(receipt, additional_prop=draw(st.sampled_from([None, "заказ"])))
    elif push == "date" and isinstance(receipt, CorrectionReceipt):
        assert receipt.basis is not None
        days = draw(st.integers(-3, 3))
        at = dt.datetime.fromtimestamp(WALL_START, dt.timezone(dt.timedelta(hours=3)))
        when = dt.datetime.combine(at.date() + dt.timedelta(days=days), dt.time())
        receipt = attrs.evolve(receipt, basis=attrs.evolve(receipt.basis, date=when))
    elif push == "tax_system":
        company = attrs.evolve(company, tax_system=int(draw(st.sampled_from(list(TaxSystem)))))
        receipt = attrs.evolve(receipt, company=company)
    else:
        company = attrs.evolve(company, tax_system=int(TaxSystem.OSN))
        receipt = attrs.evolve(receipt, company=company)
    return receipt


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(receipt=near_the_limits())
def test_every_receipt_the_checks_accept_fiscalizes(receipt: Receipt, tmp_path: Path) -> None:
    """Accepted at intake means fiscalized by the emulator, on both register families."""

    async def run() -> None:
        async with engine_on(tmp_path / f"{next(_PROBES)}.db") as engine:  # a journal each
            for protocol in PROTOCOLS:
                refused = await refused_codes(engine, protocol, receipt)
                event(f"{protocol}: {'refused ' + refused[0][1] if refused else 'fiscalized'}")

    trio.run(run, clock=trio.testing.MockClock(autojump_threshold=0))
