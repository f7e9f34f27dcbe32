"""Intake's shortcuts answer exactly as the long way would.

The engine remembers each receipt's checks by body (engine.CHECK_MEMO), and the journal builds
a fresh job from what it wrote and moves a batch with one UPDATE … RETURNING: these tests hold
each shortcut against what a fresh check or a read-back of the journal says.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing

import engine.engine as engine_module
from emulator.serve import open_memory_fleet
from engine import samples
from engine.engine import Engine, ValidationFailed
from engine.journal import Accepted, ConflictError, Job, JobState, SqliteJournal
from engine.recovery import MARKER_LENGTH
from protocols.documents.model import Client
from tests.engine.fleet import fleet_config


async def test_a_remembered_receipt_is_answered_as_a_fresh_check_would(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "CHECK_MEMO", 3)
    async with (
        open_memory_fleet(1) as fleet,
        Engine.open(fleet_config(fleet, tmp_path / "j.db")) as engine,
    ):
        refusals = []
        for external_id in ("bad-1", "bad-2"):  # the second is answered from memory
            with pytest.raises(ValidationFailed) as invalid:
                await engine.submit("shop", external_id, samples.invalid())
            refusals.append(invalid.value.problems)
            assert await engine.job_by_external_id("shop", external_id) is None
        assert refusals[0] == refusals[1] and refusals[0][0].path == "total"

        batch = await engine.submit_many(
            "shop",
            [(f"ok-{i}", samples.card_sale()) for i in range(3)] + [("bad-3", samples.invalid())],
        )
        jobs = [answer for answer in batch if isinstance(answer, Job)]
        assert len(jobs) == 3 and isinstance(batch[3], ValidationFailed)
        assert batch[3].problems == refusals[0]
        assert len({job.body for job in jobs}) == 1  # one receipt, one body, three jobs

        # What the checks depend on beside the receipt is part of what is remembered: once
        # the register's registration says another tax system, the same receipt is refused.
        (view,) = engine.registers.values()
        view.tax_systems = 0x02  # УСН доход only; card_sale is ОСН (1055 = 1)
        with pytest.raises(ValidationFailed) as refused:
            await engine.submit("shop", "ok-4", samples.card_sale())
        assert {p.code for p in refused.value.problems} == {"registration.tax_system"}
        view.tax_systems = None
        assert (await engine.submit("shop", "ok-4", samples.card_sale())).external_id == "ok-4"

        # The memory is bounded: many distinct receipts leave at most CHECK_MEMO remembered,
        # and each is still checked (and refused) as it comes.
        odd = [
            (f"odd-{i}", attrs.evolve(samples.invalid(), client=Client(f"b{i}@example.com")))
            for i in range(8)
        ]
        answers = await engine.submit_many("shop", odd)
        assert all(isinstance(answer, ValidationFailed) for answer in answers), answers
        assert len(engine._checks) <= 3


async def test_what_intake_hands_back_is_what_the_journal_holds(tmp_path: Path) -> None:
    async with SqliteJournal.open(tmp_path / "j.db") as journal:
        accepted = await journal.accept_many(
            [("shop", "o-1", b"one"), ("shop", "o-2", b"two"), ("shop", "o-1", b"one")]
        )
        fresh, _, repeat = accepted
        assert isinstance(fresh, Accepted) and isinstance(repeat, Accepted)
        assert not fresh.duplicate and repeat.duplicate and repeat.job == fresh.job
        assert await journal.job(fresh.job.id) == fresh.job
        (conflict,) = await journal.accept_many([("shop", "o-1", b"changed")])
        assert isinstance(conflict, ConflictError) and conflict.job_id == fresh.job.id
        assert (await journal.job(fresh.job.id)).body == b"one"  # type: ignore[union-attr]

        ids = [a.job.id for a in accepted[:2] if isinstance(a, Accepted)]
        moved = await journal.move_many(ids, JobState.QUEUED)
        assert moved == [await journal.job(job_id) for job_id in ids]
        assert all(job.state is JobState.QUEUED and job.updated >= job.created for job in moved)


async def test_jobs_of_one_commit_carry_distinct_markers(tmp_path: Path) -> None:
    """A job's ФН marker is its id's first 16 digits: one commit's jobs must differ there."""
    async with SqliteJournal.open(tmp_path / "j.db") as journal:
        accepted = await journal.accept_many([("shop", f"o-{i}", b"r") for i in range(2000)])
    ids = [a.job.id for a in accepted if isinstance(a, Accepted)]
    assert len(ids) == 2000
    assert len({job_id[:MARKER_LENGTH] for job_id in ids}) == len(ids)
    for job_id in ids:
        parsed = uuid.UUID(hex=job_id)
        assert parsed.hex == job_id and parsed.variant == uuid.RFC_4122
