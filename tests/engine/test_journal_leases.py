"""The journal's contract for several engines, on each store: register leases with fencing
tokens, fenced writes, and job claims (the ``store`` fixture: SQLite, and PostgreSQL when one
answers). The engines themselves on one PostgreSQL journal are in test_engine_scaleout.py."""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable

import pytest
import trio

from engine.journal import FiscalResult, Job, JobState, JournalError, LeaseLost
from tests.engine.conftest import Store


def body(group: str) -> bytes:
    return json.dumps({"group": group, "receipt": {}}).encode()


async def test_a_lease_is_exclusive_until_it_expires_then_taken_with_a_higher_token(
    store: Store,
) -> None:
    async with store.open() as journal:
        first = await journal.acquire_lease("kkt-1", "engine-a", 0.5)
        assert first is not None and (first.owner, first.token) == ("engine-a", 1)
        assert await journal.acquire_lease("kkt-1", "engine-b", 0.5) is None
        other = await journal.acquire_lease("kkt-2", "engine-b", 0.5)
        assert other is not None and other.token == 1  # tokens count per register
        renewed = await journal.renew_lease(first, 0.5)
        assert renewed is not None and renewed.token == 1
        assert renewed.expires_at >= first.expires_at
        await trio.sleep(0.6)  # the store's clock passes the expiry
        assert await journal.renew_lease(first, 0.5) is None  # expired: renewal is refused
        second = await journal.acquire_lease("kkt-1", "engine-b", 5)
        assert second is not None and (second.owner, second.token) == ("engine-b", 2)
        assert await journal.renew_lease(first, 5) is None  # a stale token renews nothing
        assert await journal.release_lease(first) is False
        assert await journal.release_lease(second) is True  # free now, its token kept
        third = await journal.acquire_lease("kkt-1", "engine-a", 5)
        assert third is not None and third.token == 3
        # Its own owner takes it again at once (its worker stopped), fencing the old token.
        fourth = await journal.acquire_lease("kkt-1", "engine-a", 5)
        assert fourth is not None and fourth.token == 4
        assert await journal.renew_lease(third, 5) is None
        assert [
            (lease.register_id, lease.owner, lease.token) for lease in await journal.leases()
        ] == [
            ("kkt-1", "engine-a", 4),
            ("kkt-2", "engine-b", 1),
        ]


async def test_a_write_with_a_stale_token_is_refused_and_keeps_nothing(store: Store) -> None:
    async with store.open() as journal:
        jobs = []
        for name in ("order-1", "order-2"):
            job = (await journal.accept("shop", name, body("main"))).job
            jobs.append((await journal.move(job.id, JobState.QUEUED)).id)
        stale = await journal.acquire_lease("kkt-1", "engine-a", 0.2)
        assert stale is not None
        sent = await journal.claim_next("shop", "main", "kkt-1", 10, stale)
        assert sent is not None and sent.id == jobs[0] and sent.state is JobState.SENT
        await trio.sleep(0.3)
        current = await journal.acquire_lease("kkt-1", "engine-b", 5)
        assert current is not None and current.token == stale.token + 1
        result = FiscalResult(
            jobs[0], "kkt-1", "9999078902003988", 11, b"\0" * 6, 1, "t=", b"x", 1.0
        )
        with pytest.raises(LeaseLost, match="kkt-1: the lease with token 1 of engine-a is stale"):
            await journal.record_result(result, JobState.FISCALIZED, lease=stale)
        with pytest.raises(LeaseLost):
            await journal.move(jobs[0], JobState.IN_DOUBT, lease=stale)
        with pytest.raises(LeaseLost):
            await journal.claim_next("shop", "main", "kkt-1", 10, stale)
        with pytest.raises(LeaseLost):
            await journal.record_result_and_claim(
                result, JobState.FISCALIZED, "shop", "main", lease=stale
            )
        assert (await journal.job(jobs[0])).state is JobState.SENT  # type: ignore[union-attr]
        assert (await journal.job(jobs[1])).state is JobState.QUEUED  # type: ignore[union-attr]
        assert await journal.result(jobs[0]) is None
        # The current holder's writes go through, the result and the next claim in one commit.
        commits = journal.commits  # type: ignore[attr-defined]
        done, started = await journal.record_result_and_claim(
            result, JobState.FISCALIZED, "shop", "main", lease=current
        )
        assert journal.commits == commits + 1  # type: ignore[attr-defined]
        assert done.state is JobState.FISCALIZED
        assert started is not None and started.id == jobs[1] and started.fd_before == 11
        assert (started.state, started.register_id) == (JobState.SENT, "kkt-1")


async def test_claims_take_a_group_s_oldest_job_once_and_cancel_takes_only_a_queued_one(
    store: Store,
) -> None:
    async with store.open() as journal:
        ids = {}
        for name, group in (("a1", "main"), ("b1", "bar"), ("a2", "main"), ("a3", "main")):
            job = (await journal.accept("shop", name, body(group))).job
            ids[name] = (await journal.move(job.id, JobState.QUEUED)).id
        other = (await journal.accept("cafe", "a1", body("main"))).job
        await journal.move(other.id, JobState.QUEUED)
        cancelled = await journal.move(
            ids["a2"], JobState.FAILED, error="cancelled", expect=JobState.QUEUED
        )
        assert cancelled.state is JobState.FAILED
        claims = await trio_gather(
            [
                functools.partial(journal.claim_next, "shop", "main", f"kkt-{i}", None, None)
                for i in range(4)
            ]
        )
        taken = sorted(job.id for job in claims if job is not None)
        assert taken == sorted([ids["a1"], ids["a3"]])  # each once, none of another group
        first = next(job for job in claims if job is not None and job.id == ids["a1"])
        with pytest.raises(JournalError, match="is sent, not queued"):  # a claimed job stays
            await journal.move(first.id, JobState.FAILED, error="cancelled", expect=JobState.QUEUED)
        assert await journal.claim_next("shop", "main", "kkt-0", None, None) is None
        bar = await journal.claim_next("shop", "bar", "kkt-9", 3, None)
        assert bar is not None and bar.id == ids["b1"] and bar.fd_before == 3


async def trio_gather(calls: list[Callable[[], Awaitable[Job | None]]]) -> list[Job | None]:
    out: list[Job | None] = [None] * len(calls)

    async def run(i: int) -> None:
        out[i] = await calls[i]()

    async with trio.open_nursery() as nursery:
        for i in range(len(calls)):
            nursery.start_soon(run, i)
    return out
