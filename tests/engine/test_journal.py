"""The journal's contract, on each store (a real SQLite file; a real PostgreSQL server when one
answers): durability, idempotency, group commit, the state machine, all-or-nothing commits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from engine.journal import (
    ConflictError,
    DeliveryState,
    DuplicateDocument,
    Event,
    FiscalResult,
    JobState,
    JournalError,
    JournalUnavailable,
    ReceiptQuery,
    RegisterRow,
    ShiftRow,
    TenantRecord,
    adopt,
)
from tests.engine.conftest import Store


async def test_a_job_is_kept_and_a_repeat_returns_it(store: Store) -> None:
    async with store.open() as journal:
        first = await journal.accept("shop", "order-1", b"receipt")
        again = await journal.accept("shop", "order-1", b"receipt")
        other_tenant = await journal.accept("cafe", "order-1", b"receipt")
    assert not first.duplicate and again.duplicate
    assert again.job.id == first.job.id and again.job.state is JobState.ACCEPTED
    assert other_tenant.job.id != first.job.id
    async with store.open() as journal:  # reopened: it was durable
        job = await journal.job_by_external_id("shop", "order-1")
    assert job is not None and job.id == first.job.id and job.body == b"receipt"


async def test_a_repeat_with_another_body_names_the_conflict(journal: Any) -> None:
    first = await journal.accept("shop", "order-1", b"one")
    with pytest.raises(ConflictError) as caught:
        await journal.accept("shop", "order-1", b"two")
    assert caught.value.job_id == first.job.id
    assert "order-1" in str(caught.value)
    batch = await journal.accept_many([("shop", "order-1", b"two"), ("shop", "o-2", b"x")])
    assert isinstance(batch[0], ConflictError)
    assert not isinstance(batch[1], ConflictError) and not batch[1].duplicate


async def test_a_batch_can_enter_straight_into_its_queue(store: Store) -> None:
    """Intake's one commit: a batch journaled ``queued`` is queued as it is read back, and a
    repeat in it is the first job, in the state it is in. No job enters anywhere else."""
    async with store.open() as journal:
        first = await journal.accept("shop", "order-1", b"receipt")
        batch = await journal.accept_many(
            [("shop", "order-1", b"receipt"), ("shop", "o-2", b"x"), ("shop", "o-3", b"y")],
            state=JobState.QUEUED,
        )
        with pytest.raises(JournalError, match="cannot enter the journal sent"):
            await journal.accept_many([("shop", "o-4", b"z")], state=JobState.SENT)
    repeat, *fresh = batch
    assert repeat.duplicate and repeat.job.id == first.job.id
    assert repeat.job.state is JobState.ACCEPTED
    assert all(not a.duplicate and a.job.state is JobState.QUEUED for a in fresh)
    async with store.open() as journal:  # reopened: kept, queued, as answered
        assert [await journal.job(a.job.id) for a in fresh] == [a.job for a in fresh]
        assert await journal.job_by_external_id("shop", "o-4") is None


async def test_concurrent_jobs_share_commits(journal: Any) -> None:
    async with trio.open_nursery() as nursery:
        for i in range(300):
            nursery.start_soon(journal.accept, "shop", f"order-{i}", b"receipt")
    assert journal.requests == 300
    assert journal.commits < 150  # every fsync carried more than one job on average
    assert len(await journal.jobs_in([JobState.ACCEPTED])) == 300


async def test_the_state_machine_and_results(journal: Any) -> None:
    job = (await journal.accept("shop", "order-1", b"receipt")).job
    with pytest.raises(JournalError, match="cannot move from accepted to fiscalized"):
        await journal.move(job.id, JobState.FISCALIZED)
    await journal.move(job.id, JobState.QUEUED)
    sent = await journal.move(job.id, JobState.SENT, register_id="kkt-1")
    assert sent.register_id == "kkt-1"
    result = FiscalResult(
        job_id=job.id,
        register_id="kkt-1",
        fn_number="9999078902003988",
        fd_number=87,
        fiscal_sign=bytes.fromhex("31046629765f"),
        printed_sign=1713993311,
        qr="t=20180222T1617&s=25.00&fn=9999078902003988&i=87&fp=1713993311&n=1",
        document=b"\x03\x00\x00\x00",
        fiscalized_at=1.0,
    )
    done = await journal.record_result(result, JobState.FISCALIZED)
    assert done.state is JobState.FISCALIZED
    assert await journal.result(job.id) == result
    other = (await journal.accept("shop", "order-2", b"receipt")).job
    await journal.move(other.id, JobState.QUEUED)
    await journal.move(other.id, JobState.SENT, register_id="kkt-1")
    clash = attrs.evolve(result, job_id=other.id)  # the same ФН and FD number again
    with pytest.raises(DuplicateDocument, match=f"already the result of job {job.id}"):
        await journal.record_result(clash, JobState.FISCALIZED)
    assert (await journal.job(other.id)).state is JobState.SENT  # type: ignore[union-attr]


async def test_a_result_and_the_next_intent_share_one_commit(store: Store) -> None:
    """The register's next job goes to sent in the commit of the last one's result, or
    neither does: a duplicate FD leaves the first job sent and the next one queued."""
    async with store.open() as journal:
        ids = []
        for name in ("order-1", "order-2", "order-3"):
            job = (await journal.accept("shop", name, b"receipt")).job
            await journal.move(job.id, JobState.QUEUED)
            ids.append(job.id)
        await journal.move(ids[0], JobState.SENT, register_id="kkt-1", fd_before=86)
        result = FiscalResult(
            job_id=ids[0],
            register_id="kkt-1",
            fn_number="9999078902003988",
            fd_number=87,
            fiscal_sign=bytes.fromhex("31046629765f"),
            printed_sign=1713993311,
            qr="t=20180222T1617&s=25.00&fn=9999078902003988&i=87&fp=1713993311&n=1",
            document=b"\x03\x00\x00\x00",
            fiscalized_at=1.0,
        )
        commits = journal.commits
        done, started = await journal.record_result_and_send(result, JobState.FISCALIZED, ids[1])
        assert journal.commits == commits + 1
        assert done.state is JobState.FISCALIZED and done.id == ids[0]
        assert started.state is JobState.SENT and started.id == ids[1]
        assert started.register_id == "kkt-1" and started.fd_before == 87
        clash = attrs.evolve(result, job_id=ids[1])  # FD 87 again: the whole commit is refused
        with pytest.raises(DuplicateDocument):
            await journal.record_result_and_send(clash, JobState.FISCALIZED, ids[2])
    async with store.open() as journal:  # reopened: what was committed is there
        states = [(await journal.job(i)).state for i in ids]  # type: ignore[union-attr]
        assert states == [JobState.FISCALIZED, JobState.SENT, JobState.QUEUED]
        assert await journal.result(ids[0]) == result
        assert await journal.result(ids[1]) is None


async def test_a_closed_journal_refuses_work(store: Store) -> None:
    async with store.open() as journal:
        pass
    with pytest.raises(JournalError, match="closed"):
        await journal.accept("shop", "x", b"")


def test_acknowledged_jobs_survive_a_kill(store: Store) -> None:
    """A process that acknowledges jobs is killed with SIGKILL; every acknowledged job is there."""
    script = textwrap.dedent(
        f"""
        import sys, trio
        from engine.journal import open_journal

        async def main():
            async with open_journal({str(store.target)!r}) as journal:
                in_flight = trio.Semaphore(512)  # many jobs at once, not a loop that only spawns
                async def one(i):
                    try:
                        await journal.accept("shop", f"order-{{i}}", b"receipt")
                        print(f"order-{{i}}", flush=True)
                    finally:
                        in_flight.release()
                async with trio.open_nursery() as nursery:
                    for i in range(100_000):
                        await in_flight.acquire()
                        nursery.start_soon(one, i)

        trio.run(main)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
    )
    assert child.stdout is not None
    acknowledged = []
    for line in child.stdout:
        acknowledged.append(line.strip())
        if len(acknowledged) == 2000:
            child.send_signal(signal.SIGKILL)
            break
    child.wait(timeout=30)
    acknowledged.extend(line.strip() for line in child.stdout)

    async def check() -> set[str]:
        async with store.open() as journal:
            return {job.external_id for job in await journal.jobs_in([JobState.ACCEPTED])}

    kept = trio.run(check)
    assert len(acknowledged) >= 2000
    assert set(acknowledged) <= kept


async def test_a_failed_commit_wakes_every_waiting_job_with_an_error(store: Store) -> None:
    """A database that cannot be written (here: read-only) must not leave a submit hanging."""
    async with store.open() as journal:
        await journal.accept("shop", "order-1", b"receipt")
    async with store.open() as journal:
        await journal._run(store.read_only)  # type: ignore[attr-defined]
        with trio.fail_after(10), pytest.raises(JournalUnavailable, match="commit failed"):
            await journal.accept("shop", "order-2", b"receipt")


async def test_registers_shifts_events_and_signed_receipts(journal: Any) -> None:
    await journal.save_tenant("shop", "Магазин")
    await journal.save_register(RegisterRow("kkt-1", "shop", "main", "shtrih", "tcp://x:1"))
    await journal.save_register(
        RegisterRow("kkt-1", "shop", "main", "shtrih", "tcp://x:1", "9999078902003988", "ready")
    )
    await journal.save_register(RegisterRow("kkt-2", "cafe", "main", "atol", "serial:/dev/x"))
    assert [r.state for r in await journal.registers("shop")] == ["ready"]
    fn = "9999078902003988"
    await journal.shift_opened(ShiftRow("kkt-1", "shop", fn, 12, 100.0, 1023))
    await journal.shift_opened(ShiftRow("kkt-1", "shop", fn, 12, 999.0, 9999))  # ignored
    assert await journal.last_fd(fn) == 1023
    job = (await journal.accept("shop", "o-1", b"r")).job
    await journal.move(job.id, JobState.QUEUED)
    sent = await journal.move(job.id, JobState.SENT, register_id="kkt-1", fd_before=1023)
    assert sent.fd_before == 1023 and (await journal.job(job.id)).fd_before == 1023  # type: ignore[union-attr]
    result = FiscalResult(
        job.id, "kkt-1", fn, 1024, b"\x31\x04\x00\x00\x00\x01", 1, "q", b"d", 150.0
    )
    await journal.record_result(result, JobState.FISCALIZED)
    await journal.shift_closed(fn, 12, 200.0, 1025, b"report")
    assert await journal.last_fd(fn) == 1025
    assert await journal.last_fd("0000000000000000") is None
    (shift,) = await journal.shifts("shop")
    assert (shift.opened_at, shift.open_fd, shift.close_fd, shift.close_document) == (
        100.0,
        1023,
        1025,
        b"report",
    )
    (record,) = await journal.fiscalized("shop", start=100.0, end=200.0)
    assert (record.job_id, record.fd_number, record.external_id) == (job.id, 1024, "o-1")
    assert await journal.fiscalized("shop", start=151.0) == []
    assert await journal.fiscalized("cafe") == []
    await journal.record_event(Event("alert.ofd_unsent", "late", 1.0, "shop", "kkt-1"))
    await journal.record_event(Event("register.ready", "up", 2.0, "shop", "kkt-1"))
    assert [e.kind for e in await journal.events("alert.")] == ["alert.ofd_unsent"]
    assert len(await journal.events(tenant="shop")) == 2
    assert [j.id for j in await journal.jobs_of("shop")] == [job.id]
    assert await journal.jobs_of("cafe") == []


async def test_a_batch_moves_in_one_commit(journal: Any) -> None:
    accepted = await journal.accept_many([("shop", f"o-{i}", b"r") for i in range(50)])
    ids = [a.job.id for a in accepted if not isinstance(a, ConflictError)]
    commits = journal.commits
    moved = await journal.move_many(ids, JobState.QUEUED)
    assert journal.commits == commits + 1
    assert [j.id for j in moved] == ids and {j.state for j in moved} == {JobState.QUEUED}
    with pytest.raises(JournalError, match="cannot move from queued to fiscalized"):
        await journal.move_many(ids[:1], JobState.FISCALIZED)
    assert (await journal.job(ids[0])).state is JobState.QUEUED  # type: ignore[union-attr]


@pytest.mark.parametrize("fault", ["at commit", "in a request"])
async def test_a_commit_that_fails_keeps_none_of_its_group_and_the_writer_goes_on(
    fault: str, store: Store
) -> None:
    """All or nothing per commit: a store failure in one request or at COMMIT fails the group.

    The writer is held inside a first request so that the next ones queue up and share one
    transaction; then the store fails (a fault at COMMIT, or an I/O error inside a request).
    """
    hold, held = threading.Event(), threading.Event()

    def blocker(_: object) -> None:
        held.set()
        hold.wait(10)

    def io_error(_: object) -> None:
        raise store.failure("disk I/O error")

    outcomes: dict[str, object] = {}

    async def outcome(name: str, work: Awaitable[object]) -> None:
        try:
            outcomes[name] = await work
        except JournalError as exc:
            outcomes[name] = exc

    journal: Any
    async with store.open() as journal:

        def fail_commit(changes: int) -> None:
            if changes:  # not the blocker's own group, which writes nothing
                journal.before_commit = None
                raise store.failure("database or disk is full")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(outcome, "blocker", journal._run(blocker))
            await trio.to_thread.run_sync(held.wait, 10)
            nursery.start_soon(outcome, "a", journal.accept("shop", "a", b"r"))
            batch = [("shop", f"b{i}", b"r") for i in range(3)]
            nursery.start_soon(outcome, "batch", journal.accept_many(batch))
            if fault == "in a request":
                nursery.start_soon(outcome, "io", journal._run(io_error))
            await trio.sleep(0.2)  # the requests are queued behind the blocker
            journal.before_commit = fail_commit if fault == "at commit" else None
            hold.set()
        assert not isinstance(outcomes["blocker"], JournalError)  # its own commit
        for name in ("a", "batch"):
            failure = outcomes[name]
            assert isinstance(failure, JournalUnavailable), (name, failure)
            assert "OperationalError: d" in failure.cause, failure.cause
        assert await journal.jobs_in(list(JobState)) == []
        assert not (await journal.accept("shop", "later", b"r")).duplicate  # the writer lives
        await journal.probe()
        assert journal.failed_commits == 1


def test_a_size_limited_file_is_unavailable_until_it_may_grow(tmp_path: Path) -> None:
    """A real EFBIG: the journal's files capped by RLIMIT_FSIZE in a child process.

    Commits fail with JournalUnavailable (the writer survives; nothing of a failed commit is
    kept), and succeed again once the limit is raised, as when a full disk gets room again.
    """
    path = tmp_path / "journal.db"
    script = textwrap.dedent(
        f"""
        import resource, trio
        from engine.journal import JobState, JournalUnavailable, SqliteJournal

        async def main():
            async with SqliteJournal.open({str(path)!r}) as journal:
                acknowledged, refused = 0, 0
                for i in range(2000):
                    try:
                        await journal.accept("shop", f"order-{{i}}", bytes(2000))
                        acknowledged += 1
                    except JournalUnavailable as exc:
                        refused += 1
                        cause = exc.cause
                        if refused == 20:
                            break
                assert refused == 20, "the limit never bit"
                kept = len(await journal.jobs_in([JobState.ACCEPTED]))
                resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
                await journal.probe()
                await journal.accept("shop", "after", bytes(2000))
                print(acknowledged, kept, cause, flush=True)

        trio.run(main)
        """
    )

    def cap() -> None:  # in the child: writes past 256 KiB fail with EFBIG, not SIGXFSZ
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (256 << 10, resource.RLIM_INFINITY))

    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=os.getcwd(),
        preexec_fn=cap,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    acknowledged, kept, cause = done.stdout.split(maxsplit=2)
    assert int(acknowledged) == int(kept) > 0  # every acknowledged job, nothing else
    assert "SQLITE_IOERR" in cause or "SQLITE_FULL" in cause, cause


async def test_deliveries_wait_for_a_final_job_and_a_dead_one_commits_with_its_alert(
    journal: Any,
) -> None:
    job = (await journal.accept("shop", "o-1", b"r")).job
    first = await journal.add_delivery(job.id, "atol", "http://x/cb")
    again = await journal.add_delivery(job.id, "atol", "http://y/cb")  # a repeat keeps the first
    assert again == first and first.state is DeliveryState.PENDING and first.attempts == 0
    assert await journal.due_deliveries(10.0, 10) == []  # its job is not final yet
    assert await journal.next_delivery_at() is None
    await journal.move(job.id, JobState.FAILED, error="refused")
    assert await journal.next_delivery_at() == 0.0
    (due,) = await journal.due_deliveries(10.0, 10)
    retry = await journal.delivery_tried(due, DeliveryState.PENDING, 50.0, "HTTP 502")
    assert await journal.due_deliveries(10.0, 10) == [] and await journal.next_delivery_at() == 50.0
    alert = Event("alert.callback_dead", "gave up", 60.0, "shop", job_id=job.id)
    dead = await journal.delivery_tried(retry, DeliveryState.DEAD, 0.0, "HTTP 502", alert)
    assert (dead.state, dead.attempts, dead.last_error) == (DeliveryState.DEAD, 2, "HTTP 502")
    assert await journal.deliveries(job.id) == [dead]
    assert await journal.deliveries(state=DeliveryState.DEAD) == [dead]
    assert await journal.deliveries(state=DeliveryState.PENDING) == []
    (event,) = await journal.events("alert.")
    assert (event.job_id, event.message) == (job.id, "gave up")


async def test_tenant_records_are_kept_per_tenant_and_replaced_by_key(journal: Any) -> None:
    assert await journal.records("product") == []
    await journal.put_record(TenantRecord("shop", "product", "tea", '{"price": 100}', 1.0))
    await journal.put_record(TenantRecord("shop", "product", "tea", '{"price": 120}', 2.0))
    await journal.put_record(TenantRecord("cafe", "product", "tea", '{"price": 90}', 3.0))
    await journal.put_record(TenantRecord("shop", "branding", "main", "{}", 4.0))
    assert await journal.records("product", "shop") == [
        TenantRecord("shop", "product", "tea", '{"price": 120}', 2.0)
    ]
    assert [r.tenant for r in await journal.records("product")] == ["cafe", "shop"]
    assert await journal.drop_record("shop", "product", "tea")
    assert not await journal.drop_record("shop", "product", "tea")
    assert [r.tenant for r in await journal.records("product")] == ["cafe"]


async def test_the_receipts_list_filters_and_pages_newest_first(journal: Any) -> None:
    def body(total: int, operation: int = 1) -> bytes:
        return json.dumps({"receipt": {"total": total, "operation": operation}}).encode()

    ids = []
    for i, total in enumerate([1000, 2500, 1000, 700]):
        ids.append((await journal.accept("shop", f"o-{i}", body(total, 1 + i % 2))).job.id)
    await journal.accept("cafe", "o-0", body(1000))
    await journal.move(ids[1], JobState.QUEUED)
    await journal.move(ids[1], JobState.SENT, register_id="kkt-1")
    fn = "9999078902003988"
    result = FiscalResult(ids[1], "kkt-1", fn, 31, b"\x00" * 6, 7, "q", b"doc", 5.0)
    await journal.record_result(result, JobState.FISCALIZED)

    rows = await journal.receipts("shop", ReceiptQuery())
    assert [r.external_id for r in rows] == ["o-3", "o-2", "o-1", "o-0"]
    by_id = {r.external_id: r for r in rows}
    assert (by_id["o-1"].total, by_id["o-1"].operation, by_id["o-1"].fd_number) == (2500, 2, 31)
    assert by_id["o-0"].fd_number is None
    assert {r.external_id for r in await journal.receipts("shop", ReceiptQuery(total=1000))} == {
        "o-0",
        "o-2",
    }
    (signed,) = await journal.receipts("shop", ReceiptQuery(fd_number=31))
    assert (signed.state, signed.register_id, signed.fiscalized_at) == ("fiscalized", "kkt-1", 5.0)
    assert await journal.receipts("shop", ReceiptQuery(state="failed")) == []
    (named,) = await journal.receipts("shop", ReceiptQuery(external_id="o-3"))
    assert named.total == 700
    first = await journal.receipts("shop", ReceiptQuery(limit=2))
    rest = await journal.receipts(
        "shop", ReceiptQuery(limit=10, before=(first[-1].created, first[-1].job_id))
    )
    assert [r.job_id for r in first + rest] == [r.job_id for r in rows]


async def test_last_fd_counts_adopted_fns_and_shift_reports(store: Store) -> None:
    fn = "9999078902003988"
    async with store.open() as journal:
        await journal.shift_opened(ShiftRow("kkt-1", "shop", fn, 1, 1.0, 5))
        assert await journal.last_fd(fn) == 5
    adopt = _adopt(store)
    assert adopt(fn, 40) == 5
    assert adopt(fn, 30) == 40  # adopting never lowers what the journal knows
    async with store.open() as journal:
        assert await journal.last_fd(fn) == 40
        assert [e.kind for e in await journal.events("journal.")] == ["journal.adopted"] * 2


def _adopt(store: Store) -> Callable[[str, int], int | None]:
    if store.name == "sqlite":
        return lambda fn, fd: adopt(Path(store.target), fn, fd)
    from engine.journal_pg import adopt as adopt_pg

    return lambda fn, fd: adopt_pg(str(store.target), fn, fd)
