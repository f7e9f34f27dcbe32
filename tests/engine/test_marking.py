"""Marked goods (Честный знак) through the engine: every code goes through the ФН's check first.

The emulated ФН decides by the code's serial (emulator/marking.py): ``REJECT…`` the marking
operator's system (ОИСМ) calls the planned status wrong, ``FORGED…`` fails the ФН's own check
of the crypto tail, ``SILENT…`` gets no answer from the ОИСМ in time; anything else passes.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
import trio
import trio.testing

from emulator.marking import parse_marking_code
from emulator.serve import open_memory_fleet
from engine import samples
from engine.config import TenantConfig
from engine.engine import Engine
from engine.journal import JobState
from protocols.documents.ffd import decode_receipt
from protocols.documents.model import Receipt
from protocols.tlv.enums import MarkingCheckFlags, PaymentSubject
from tests.engine.fleet import fleet_config

PROTOCOLS = pytest.mark.parametrize("protocol", ["shtrih", "atol"])
ALL_GOOD = 0x0F  # code checked and valid, status checked and correct


def two_pairs(first: str, second: str) -> Receipt:
    """A sale of two pairs of shoes with the marking codes of serials ``first``, ``second``."""
    lines = tuple(
        samples.item(
            f"Кроссовки {serial}",
            549_000,
            subject=int(PaymentSubject.MARKED),
            marking=samples.shoes_marking(serial),
        )
        for serial in (first, second)
    )
    total = sum(line.sum for line in lines)
    return attrs.evolve(
        samples.card_sale(),
        items=lines,
        total=total,
        payments=attrs.evolve(samples.card_sale().payments, electronic=total),
    )


async def outcome(
    tmp_path: Path, protocol: str, receipt: Receipt, *, sell_failed: bool = False
) -> tuple[JobState, str | None, list[int | None], int]:
    """The job's state and error, the 2106 of each signed line, and the receipts in the ФН."""
    tenant = TenantConfig("shop", sell_failed_marking=sell_failed)
    async with open_memory_fleet(1, protocol=protocol) as fleet:
        config = fleet_config(fleet, tmp_path / "j.db", protocol=protocol, tenants=(tenant,))
        async with Engine.open(config) as engine:
            job = await engine.wait("shop", (await engine.submit("shop", "o-1", receipt)).id)
            results: list[int | None] = []
            result = await engine.result("shop", job.id)
            if result is not None:
                signed = decode_receipt(result.document).receipt
                results = [i.marking.check_result if i.marking else None for i in signed.items]
            archive = fleet.registers[0].fn.archive.values()
            receipts = sum(int.from_bytes(doc[:2], "little") == 3 for doc in archive)
            return job.state, job.error, results, receipts


@PROTOCOLS
async def test_the_line_carries_the_fn_s_result_never_the_client_s(
    protocol: str, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    sent = two_pairs("GOOD1", "GOOD2")
    # The client claims a failed check for the first pair: the ФН's own result replaces it.
    claimed = attrs.evolve(samples.shoes_marking("GOOD1"), check_result=0x05)
    lying = attrs.evolve(sent, items=(attrs.evolve(sent.items[0], marking=claimed), sent.items[1]))
    state, error, results, receipts = await outcome(tmp_path, protocol, lying)
    assert (state, error, results, receipts) == (
        JobState.FISCALIZED,
        None,
        [ALL_GOOD, ALL_GOOD],
        1,
    )


@PROTOCOLS
@pytest.mark.parametrize(
    ("serial", "flags"),
    [("REJECT7", 0x07), ("FORGED7", 0x05)],
    ids=["refused by the ОИСМ", "failed in the ФН"],
)
async def test_a_code_the_fn_rejects_fails_the_job_and_nothing_is_signed(
    protocol: str,
    serial: str,
    flags: int,
    tmp_path: Path,
    autojump_clock: trio.testing.MockClock,
) -> None:
    state, error, results, receipts = await outcome(tmp_path, protocol, two_pairs("GOOD1", serial))
    assert state is JobState.FAILED and results == [] and receipts == 0
    assert error is not None
    assert f"items[1].marking: the ФН's check of the marking code failed (2106 = {flags:#04x}" in (
        error
    )
    assert "nothing was fiscalized" in error


@PROTOCOLS
async def test_a_tenant_may_sell_with_a_failed_check(
    protocol: str, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Продажа с предупреждением: signed, and the line's 2106 says what the ФН found."""
    state, _, results, receipts = await outcome(
        tmp_path, protocol, two_pairs("GOOD1", "REJECT7"), sell_failed=True
    )
    assert (state, results, receipts) == (JobState.FISCALIZED, [ALL_GOOD, 0x07], 1)


@PROTOCOLS
async def test_an_online_check_that_does_not_answer_in_time_does_not_stop_the_sale(
    protocol: str, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    state, _, results, receipts = await outcome(tmp_path, protocol, two_pairs("SILENT1", "GOOD2"))
    offline = MarkingCheckFlags.CODE_CHECKED | MarkingCheckFlags.CODE_VALID
    assert (state, results, receipts) == (
        JobState.FISCALIZED,
        [int(offline | MarkingCheckFlags.OFFLINE), ALL_GOOD],
        1,
    )


@PROTOCOLS
async def test_after_a_failed_code_the_register_sells_the_next_receipt(
    protocol: str, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A check that failed, or one a lost session left undecided, leaves nothing behind."""
    async with open_memory_fleet(1, protocol=protocol) as fleet:
        config = fleet_config(fleet, tmp_path / "j.db", protocol=protocol)
        async with Engine.open(config) as engine:
            failed = await engine.submit("shop", "o-1", two_pairs("GOOD1", "REJECT7"))
            assert (await engine.wait("shop", failed.id)).state is JobState.FAILED
            fn = fleet.registers[0].fn
            left = b"0104601234567893215LEFT1\x1d91EE07\x1d92" + b"A" * 44
            fn.check_marking(parse_marking_code(left), 1)
            assert fn.marking_pending is not None  # as if a session died before deciding
            sold = await engine.submit("shop", "o-2", two_pairs("GOOD1", "GOOD2"))
            assert (await engine.wait("shop", sold.id)).state is JobState.FISCALIZED


@PROTOCOLS
async def test_a_check_a_lost_session_left_undecided_does_not_fail_an_unmarked_receipt(
    protocol: str, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The ФН refuses to form any receipt (A1h) while a check awaits its decision: a service
    killed between FF61h and FF69h left one, and the next receipt sells no marked goods."""
    async with open_memory_fleet(1, protocol=protocol) as fleet:
        config = fleet_config(fleet, tmp_path / "j.db", protocol=protocol)
        fn = fleet.registers[0].fn
        async with Engine.open(config) as engine:
            warm = await engine.submit("shop", "o-1", samples.card_sale())
            assert (await engine.wait("shop", warm.id)).state is JobState.FISCALIZED
        left = b"0104601234567893215LEFT1\x1d91EE07\x1d92" + b"A" * 44
        fn.check_marking(parse_marking_code(left), 1)  # the engine stopped before deciding
        async with Engine.open(config) as engine:
            sold = await engine.submit("shop", "o-2", samples.card_sale())
            job = await engine.wait("shop", sold.id)
            assert (job.state, job.error) == (JobState.FISCALIZED, None)
        assert fn.marking_pending is None
