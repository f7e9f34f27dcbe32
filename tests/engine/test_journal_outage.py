"""A journal that cannot commit: the engine degrades, loses nothing and recovers by itself.

The engine runs on an emulated register in simulated time over a real journal (an SQLite file,
and a PostgreSQL schema where a server answers) whose commits fail on demand: the journal's
``before_commit`` fault hook raises the store's own error, as a full disk or an I/O error
would. A job the ФН signed whose result could not be journaled is in doubt: recovery finds it
in the ФН once the journal is back, and nothing is signed twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing

from emulator.serve import open_memory_fleet
from engine import samples
from engine.engine import Engine, Unavailable
from engine.journal import Job, JobState
from tests.engine.conftest import Store
from tests.engine.fleet import assert_exactly_once, fleet_config


class CommitFaults:
    """Fails the journal's commits that write once ``allowed`` more have passed (None: never
    fails); as on a full disk, a commit that only read goes through."""

    def __init__(self, journal: Any, failure: Callable[[str], Exception]) -> None:
        self.allowed: int | None = None
        self.failure = failure
        self.refused = 0  # commits failed
        journal.before_commit = self

    def __call__(self, changes: int) -> None:  # in the journal's writer thread
        if self.allowed is None or not changes:
            return
        if self.allowed > 0:
            self.allowed -= 1
            return
        self.refused += 1
        raise self.failure("disk I/O error (injected)")


async def until(condition: object, what: str) -> None:
    """Wait in simulated time, a bounded while, for ``condition()`` to hold."""
    with trio.move_on_after(3600):
        while not condition():  # type: ignore[operator]
            await trio.sleep(0.1)
        return
    raise AssertionError(f"{what}: not within an hour of simulated time")


@pytest.mark.parametrize("step", ["sending", "signed"])
async def test_a_journal_that_fails_mid_job_degrades_the_engine_until_it_commits_again(
    step: str, store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    """The journal fails as the second job is sent (its move to ``sent`` is lost: it goes
    back to its queue) or once the ФН signed it (its result is lost: it is in doubt)."""
    steps: list[str] = []
    hit: list[str] = []
    faults: CommitFaults | None = None

    async def checkpoint(at: str, job_id: str) -> None:
        steps.append(at)
        if at == step and steps.count(step) == 2:
            assert faults is not None
            faults.allowed = 0
            hit.append(job_id)

    receipt = samples.card_sale()
    async with open_memory_fleet(1) as fleet:
        config = fleet_config(fleet, store.target)
        async with Engine.open(config, checkpoint=checkpoint) as engine:
            faults = CommitFaults(engine.journal, store.failure)
            jobs = await engine.submit_many("shop", [(f"order-{i}", receipt) for i in range(4)])
            ids = [job.id for job in jobs if isinstance(job, Job)]
            assert len(ids) == 4, jobs
            await until(lambda: engine.health.degraded, "degraded")

            health = engine.health
            assert health.cause is not None and "disk I/O error (injected)" in health.cause
            assert health.retry_after is not None and health.retry_after >= 1
            with pytest.raises(Unavailable) as refused:
                await engine.submit("shop", "late", receipt)
            assert refused.value.code == "unavailable" and refused.value.retry_after >= 1
            late = await engine.submit_many("shop", [("late-1", receipt), ("late-2", receipt)])
            assert all(isinstance(answer, Unavailable) for answer in late), late
            with pytest.raises(Unavailable):
                await engine.cancel("shop", ids[3])  # it stays in its queue
            assert [e.kind for e in engine.alerts] == ["alert.journal_unavailable"]

            taken = steps.count("taken")
            await trio.sleep(120)  # the register takes nothing; the watcher probes, backs off
            assert steps.count("taken") == taken and engine.health.degraded
            assert 3 <= faults.refused < 20, faults.refused  # probes, with growing waits

            faults.allowed = None  # the disk has room again
            await until(lambda: not engine.health.degraded, "recovered")
            for job_id in ids:
                await engine.wait("shop", job_id)
            await assert_exactly_once(engine, fleet, ids)
            (failed_job,) = hit
            job = await engine.journal.job(failed_job)
            assert job is not None
            # On a shared journal (PostgreSQL) the claim is the job's intent, committed before
            # its "taken" and "sending" steps: a commit lost after them leaves it in doubt too.
            in_doubt = step == "signed" or engine.journal.shared
            assert job.state is (JobState.RESOLVED if in_doubt else JobState.FISCALIZED)
            for external_id in ("late", "late-1", "late-2"):
                assert await engine.job_by_external_id("shop", external_id) is None
            kinds = [e.kind for e in await engine.journal.events()]
            assert "alert.journal_unavailable" in kinds and "journal.recovered" in kinds
            if in_doubt:
                assert "recovery.found" in kinds


async def test_a_batch_answers_exactly_what_was_journaled(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    """A batch whose commit fails keeps none of it: every entry is unavailable. Alone on its
    journal, the engine journals a batch straight into its queue, so one commit passing is
    the whole batch queued. On a shared journal a batch takes a second commit to be queued;
    when that one fails, it is journaled all the same: its jobs are answered ``accepted`` and
    queued (then fiscalized) once the journal is back. So is a single submit.

    Faults are armed only while the register is idle, so that they hit the submits."""
    receipt = samples.card_sale()
    async with open_memory_fleet(1) as fleet:
        config = fleet_config(fleet, store.target)
        async with Engine.open(config) as engine:
            faults = CommitFaults(engine.journal, store.failure)
            ready: list[object] = []

            async def came_up() -> None:  # journaled last as it comes up: then it idles
                ready.extend(await engine.journal.events("register.ready"))

            while not ready:
                await trio.sleep(0.1)
                await came_up()

            faults.allowed = 0
            refused = await engine.submit_many("shop", [(f"lost-{i}", receipt) for i in range(5)])
            assert all(isinstance(answer, Unavailable) for answer in refused), refused
            assert await engine.journal.jobs_in(list(JobState)) == []
            faults.allowed = None
            await until(lambda: not engine.health.degraded, "recovered")

            faults.allowed = 1  # the batch's commit passes (on a shared journal, not its move)
            kept = await engine.submit_many("shop", [(f"kept-{i}", receipt) for i in range(5)])
            entered = JobState.ACCEPTED if engine.journal.shared else JobState.QUEUED
            assert engine.health.degraded is engine.journal.shared
            assert all(getattr(job, "state", None) is entered for job in kept), kept
            ids = [job.id for job in kept if isinstance(job, Job)]
            faults.allowed = None
            for job_id in ids:  # queued once the journal is back, then fiscalized
                await engine.wait("shop", job_id)

            faults.allowed = 1
            one = await engine.submit("shop", "kept-one", receipt)
            assert one.state is entered and engine.health.degraded is engine.journal.shared
            faults.allowed = None
            await engine.wait("shop", one.id)

            await assert_exactly_once(engine, fleet, [*ids, one.id])
            assert {job.external_id for job in await engine.journal.jobs_in(list(JobState))} == {
                *(f"kept-{i}" for i in range(5)),
                "kept-one",
            }
