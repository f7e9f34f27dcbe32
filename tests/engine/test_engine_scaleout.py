"""Several engines on one PostgreSQL journal and one emulated fleet (issue 21): registers are
leased with fencing tokens, jobs claimed in the journal, job events cross engines. Real time
(PostgreSQL's clock is real), short leases; every wait is bounded. Skips, with one line saying
why, where no PostgreSQL server answers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
import trio

from benchmarks.engine_fleet import markers_in_archive
from emulator.serve import MemoryFleet, open_memory_fleet
from engine import samples
from engine.engine import Engine, JobEvent
from engine.journal import FINAL_STATES, JobState, LeaseLost
from engine.recovery import MARKER_LENGTH
from tests.engine.conftest import postgres_down
from tests.engine.fleet import assert_exactly_once, fleet_config

if postgres_down():
    pytest.skip(postgres_down() or "", allow_module_level=True)

LEASE = 1.5  # seconds: a killed engine's registers are free again this long after its last renewal


def config_for(fleet: MemoryFleet, url: str, engine_id: str) -> Any:
    return attrs.evolve(
        fleet_config(fleet, url, wall_clock=time.time),  # type: ignore[arg-type]
        engine_id=engine_id,
        lease_seconds=LEASE,
        maintenance_interval=5.0,
    )


async def holding(engine: Engine, count: int, *, within: float = 10.0) -> None:
    """Wait (bounded) until ``engine`` holds ``count`` registers' leases and they are ready."""
    with trio.fail_after(within):
        while (
            len(engine._leases) != count
            or sum(1 for r in engine.registers.values() if r.state == "ready") < count
        ):
            await trio.sleep(0.05)


@asynccontextmanager
async def running(config: Any, **options: Any) -> AsyncIterator[tuple[Engine, trio.CancelScope]]:
    """An engine in a scope of its own: cancelling the scope stops it as a kill would (no
    lease is released, nothing more is journaled)."""
    async with trio.open_nursery() as nursery:
        ready: trio.Event = trio.Event()
        box: list[Engine] = []
        scope = trio.CancelScope()

        async def run() -> None:
            with scope:
                async with Engine.open(config, **options) as engine:
                    box.append(engine)
                    ready.set()
                    await trio.sleep_forever()

        nursery.start_soon(run)
        with trio.fail_after(10):
            await ready.wait()
        yield box[0], scope
        scope.cancel()


async def test_two_engines_fiscalize_every_receipt_once_and_a_waiter_hears_the_other_s_result(
    postgres_url: str,
) -> None:
    events: list[JobEvent] = []
    async with (
        open_memory_fleet(2) as fleet,
        running(config_for(fleet, postgres_url, "engine-b")) as (second, _),
    ):
        if True:
            await holding(second, 2)  # engine-b leases both registers before engine-a starts
            config = config_for(fleet, postgres_url, "engine-a")
            async with running(config, on_event=events.append) as (first, _):
                with trio.fail_after(60):
                    started = time.perf_counter()
                    jobs = [
                        await engine.submit("shop", f"o-{i}", samples.card_sale())
                        for i, engine in enumerate([first, second] * 10)
                    ]
                    done = [
                        await engine.wait("shop", job.id)
                        for job, engine in zip(jobs, [first, second] * 10, strict=True)
                    ]
                    elapsed = time.perf_counter() - started
                assert first._leases == {}  # engine-a leased nothing: engine-b signed all
                assert [job.state for job in done] == [JobState.FISCALIZED] * 20
                results = [await first.journal.result(job.id) for job in jobs]
                assert {r.register_id for r in results if r is not None} == {"kkt-0", "kkt-1"}
                await assert_exactly_once(first, fleet, [job.id for job in jobs])
                # engine-a's clients hear its jobs' final events, with the result, as if it
                # had signed them itself.
                finals = {e.job.id: e for e in events if e.job.state in FINAL_STATES}
                for job in jobs[::2]:
                    assert finals[job.id].result is not None
                    assert finals[job.id].result == await first.journal.result(job.id)
                # A repeat on either engine is the first job: the unique key holds across them.
                again = await second.submit("shop", "o-0", samples.card_sale())
                assert again.id == jobs[0].id
    print(f"\n20 receipts, 2 engines, 2 registers: {elapsed:.2f} s ({20 / elapsed:.1f}/s)")


async def test_engines_serving_one_group_claim_each_job_once(postgres_url: str) -> None:
    """Each engine leases one register of the group (its config lists only that one), so
    both claim from the one queue at once: every job is signed once, by either register."""
    async with open_memory_fleet(2) as fleet:
        configs = []
        for engine_id, register in (("engine-a", 0), ("engine-b", 1)):
            config = config_for(fleet, postgres_url, engine_id)
            configs.append(attrs.evolve(config, registers=(config.registers[register],)))
        async with (
            running(configs[0]) as (first, _),
            running(configs[1]) as (second, _),
        ):
            await holding(first, 1)
            await holding(second, 1)
            engines = [second] * 20 + [first] * 20  # each waits on the other's jobs
            with trio.fail_after(90):
                started = time.perf_counter()
                accepted = await first.submit_many(
                    "shop", [(f"a-{i}", samples.card_sale()) for i in range(20)]
                )
                accepted += await second.submit_many(
                    "shop", [(f"b-{i}", samples.card_sale()) for i in range(20)]
                )
                jobs = [job for job in accepted if not isinstance(job, Exception)]
                assert len(jobs) == 40
                done = [await engines[i].wait("shop", job.id) for i, job in enumerate(jobs)]
                elapsed = time.perf_counter() - started
            assert [job.state for job in done] == [JobState.FISCALIZED] * 40
            signers = [(await first.journal.result(job.id)).register_id for job in jobs]  # type: ignore[union-attr]
            assert set(signers) == {"kkt-0", "kkt-1"}, signers
            await assert_exactly_once(first, fleet, [job.id for job in jobs])
    print(
        f"\n40 receipts, 2 engines with a register each: {elapsed:.2f} s "
        f"({40 / elapsed:.1f}/s; kkt-0 {signers.count('kkt-0')}, kkt-1 {signers.count('kkt-1')})"
    )


async def test_a_killed_engine_s_registers_are_taken_over_and_its_in_doubt_job_resolved(
    postgres_url: str,
) -> None:
    """Engine-a is killed after its register signed a receipt and before the result was
    journaled; engine-b takes the register once the lease expired, finds the receipt in the
    ФН archive, and the job is resolved, signed once."""
    async with open_memory_fleet(1) as fleet:
        signed = trio.Event()
        hold = trio.Event()  # never set: engine-a stays at "signed" until it is killed

        async def checkpoint(step: str, job_id: str) -> None:
            if step == "signed":
                signed.set()
                await hold.wait()

        config_a = config_for(fleet, postgres_url, "engine-a")
        async with running(config_a, checkpoint=checkpoint) as (first, kill):
            await holding(first, 1)
            token = first._leases["kkt-0"].token
            job = await first.submit("shop", "in-doubt", samples.card_sale())
            with trio.fail_after(20):
                await signed.wait()
            async with running(config_for(fleet, postgres_url, "engine-b")) as (second, _):
                await trio.sleep(LEASE)  # engine-b cannot take a register engine-a renews
                assert second._leases == {}
                killed_at = trio.current_time()
                kill.cancel()
                await holding(second, 1, within=LEASE * 4)
                took = trio.current_time() - killed_at
                assert second._leases["kkt-0"].token > token
                with trio.fail_after(20):
                    resolved = await second.wait("shop", job.id)
                assert resolved.state is JobState.RESOLVED, resolved
                assert markers_in_archive(fleet)[job.id[:MARKER_LENGTH]] == 1
                kinds = [e.kind for e in await second.journal.events("recovery.")]
                assert "recovery.found" in kinds
                # The killed engine's token is stale: a write with it is refused.
                stale = attrs.evolve(second._leases["kkt-0"], owner="engine-a", token=token)
                with pytest.raises(LeaseLost, match="stale"):
                    await second.journal.move(job.id, JobState.FAILED, lease=stale)
                nxt = await second.submit("shop", "after", samples.card_sale())
                with trio.fail_after(20):
                    assert (await second.wait("shop", nxt.id)).state is JobState.FISCALIZED
                await assert_exactly_once(second, fleet, [job.id, nxt.id])
    print(f"\ntakeover {took:.2f} s after the kill (lease {LEASE} s)")


async def test_a_worker_whose_token_went_stale_is_refused_and_stops(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The lease changes hands (as if engine-a had stalled past its expiry) between the ФН's
    signature and the result's commit: the commit is refused for its stale token, the worker
    stops, and once the other holder's lease ran out engine-a takes the register again with a
    higher token and resolves the job from the ФН archive."""
    import psycopg

    async with open_memory_fleet(1) as fleet:
        stolen: list[int] = []

        def steal() -> None:
            with psycopg.connect(postgres_url, autocommit=True) as connection:
                row = connection.execute(
                    "UPDATE leases SET owner = 'engine-z', token = token + 1, "
                    "expires_at = now() + interval '1 second' RETURNING token"
                ).fetchone()
                assert row is not None
                stolen.append(row[0])

        async def checkpoint(step: str, job_id: str) -> None:
            if step == "signed" and not stolen:
                await trio.to_thread.run_sync(steal)

        config = config_for(fleet, postgres_url, "engine-a")
        async with running(config, checkpoint=checkpoint) as (engine, _):
            await holding(engine, 1)
            job = await engine.submit("shop", "stale", samples.card_sale())
            with trio.fail_after(30):
                done = await engine.wait("shop", job.id)
            assert done.state is JobState.RESOLVED, done  # not the stale worker's FISCALIZED
            assert engine._leases["kkt-0"].token > stolen[0]
            assert markers_in_archive(fleet)[job.id[:MARKER_LENGTH]] == 1
            await assert_exactly_once(engine, fleet, [job.id])
    refused = [r.getMessage() for r in caplog.records if "is stale" in r.getMessage()]
    assert refused and "kkt-0: the lease with token 1 of engine-a is stale" in refused[0], refused
