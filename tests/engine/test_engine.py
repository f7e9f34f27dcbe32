"""The engine against the emulator: every receipt kind, idempotency, backpressure, sign checks."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing

from emulator.serve import open_memory_fleet
from engine import samples
from engine.config import TenantConfig
from engine.engine import (
    Busy,
    Conflict,
    Engine,
    JobEvent,
    NotCancellable,
    ValidationFailed,
    encode_body,
)
from engine.journal import FiscalResult, JobState, SqliteJournal
from engine.recovery import MARKER_NAME
from protocols.documents.ffd import decode_receipt
from protocols.documents.model import UserProp
from protocols.documents.qr import parse_receipt_qr
from protocols.fiscal_sign import EmulatorSignVerifier
from tests.engine.fleet import assert_exactly_once, fleet_config, wall_clock

KINDS = {
    "card sale": samples.card_sale(),
    "marked goods": samples.marked_sale(),
    "refund": samples.refund(samples.card_sale()),
    "prepayment": samples.prepayment(),
    "settlement": samples.settlement(samples.prepayment()),
    "correction": samples.correction(),
    "marker in 1084": attrs.evolve(samples.card_sale(), additional_prop="заказ 17"),
}


@pytest.mark.parametrize("protocol", ["shtrih", "atol"])
async def test_every_kind_of_receipt_is_fiscalized_once(
    protocol: str, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    events: list[JobEvent] = []
    async with open_memory_fleet(1, protocol=protocol) as fleet:
        config = fleet_config(fleet, tmp_path / "j.db", protocol=protocol)
        async with Engine.open(config, on_event=events.append) as engine:
            jobs = {name: await engine.submit("shop", name, r) for name, r in KINDS.items()}
            done = {name: await engine.wait("shop", job.id) for name, job in jobs.items()}
            assert {name: job.state for name, job in done.items()} == dict.fromkeys(
                KINDS, JobState.FISCALIZED
            ), {name: job.error for name, job in done.items()}
            await assert_exactly_once(engine, fleet, [job.id for job in jobs.values()])
            fds = []
            for name, job in jobs.items():
                result = await engine.result("shop", job.id)
                assert result is not None
                signed = decode_receipt(result.document)
                assert signed.fiscal is not None
                sent = KINDS[name]
                assert (signed.receipt.total, signed.receipt.operation) == (
                    sent.total,
                    sent.operation,
                )
                assert [i.name for i in signed.receipt.items] == [i.name for i in sent.items]
                assert type(signed.receipt) is type(sent)
                qr = parse_receipt_qr(result.qr)
                assert (qr.fd_number, qr.fn_number, qr.printed_sign, qr.total) == (
                    result.fd_number,
                    result.fn_number,
                    result.printed_sign,
                    sent.total,
                )
                if name == "marker in 1084":
                    assert signed.receipt.additional_prop == "заказ 17"
                    assert signed.receipt.user_prop == UserProp(MARKER_NAME, job.id)
                if name == "marked goods":
                    marking = sent.items[0].marking
                    assert marking is not None  # the scanned code is not a tag: 2115 holds it
                    # 2106 is the ФН's result of its check (0Fh: code and status valid)
                    fn_checked = attrs.evolve(marking, scanned=None, check_result=0x0F)
                    assert signed.receipt.items[0].marking == fn_checked
                fds.append(result.fd_number)
            # The shift was opened by the engine (FD 2 after registration), then each receipt.
            assert fds == list(range(fds[0], fds[0] + len(KINDS)))
            shifts = await engine.journal.shifts("shop")
            assert len(shifts) == 1 and shifts[0].open_fd == fds[0] - 1
    states = [(e.job.external_id, e.job.state) for e in events]
    for name in KINDS:
        assert [s for n, s in states if n == name] == [
            JobState.QUEUED,
            JobState.SENT,
            JobState.FISCALIZED,
        ]
        assert [e.result for e in events if e.job.external_id == name][-1] is not None


async def test_a_result_and_the_next_jobs_intent_share_one_commit(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A register with work waiting journals each result and the next job's ``sent`` in
    one commit (one fsync a receipt), and still fiscalizes each job once."""
    commits: list[tuple[str, JobState, int]] = []
    async with open_memory_fleet(1) as fleet:
        config = fleet_config(fleet, tmp_path / "j.db")
        running: list[Engine] = []

        def seen(event: JobEvent) -> None:
            journal = running[0].journal
            assert isinstance(journal, SqliteJournal)
            commits.append((event.job.id, event.job.state, journal.commits))

        async with Engine.open(config, on_event=seen) as engine:
            running.append(engine)
            jobs = [await engine.submit("shop", f"o-{i}", samples.card_sale()) for i in range(4)]
            ids = [job.id for job in jobs]
            done = [await engine.wait("shop", job_id) for job_id in ids]
            assert [job.state for job in done] == [JobState.FISCALIZED] * 4
            await assert_exactly_once(engine, fleet, ids)
            fds = [(await engine.result("shop", job_id)).fd_number for job_id in ids]  # type: ignore[union-attr]
            later = [await engine.journal.job(job_id) for job_id in ids[1:]]
    at = {(job_id, state): commit for job_id, state, commit in commits}
    for before, after in itertools.pairwise(ids):
        assert at[(before, JobState.FISCALIZED)] == at[(after, JobState.SENT)]
    assert [job.fd_before for job in later if job is not None] == fds[:-1]


async def test_a_job_left_accepted_is_queued_and_fiscalized_once_at_start_up(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Alone on its journal a submit is one commit, straight into the queue; a job journaled
    as ``accepted`` (by an earlier Kassa, whose submit took two commits, killed between them)
    is still found at start-up, queued and fiscalized once."""
    events: list[JobEvent] = []
    async with open_memory_fleet(1) as fleet:
        config = fleet_config(fleet, tmp_path / "j.db")
        async with Engine.open(config) as engine:
            body = encode_body(samples.card_sale(), "main")
            left = (await engine.journal.accept("shop", "left", body)).job
            assert left.state is JobState.ACCEPTED
        async with Engine.open(config, on_event=events.append) as engine:
            with trio.fail_after(600):  # simulated seconds: a job never queued waits forever
                done = await engine.wait("shop", left.id)
            assert done.state is JobState.FISCALIZED, done.error
            await assert_exactly_once(engine, fleet, [left.id])
    assert [event.job.state for event in events if event.job.id == left.id][:1] == [JobState.QUEUED]


async def test_a_repeat_returns_the_first_job_and_a_changed_body_conflicts(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with (
        open_memory_fleet(1) as fleet,
        Engine.open(fleet_config(fleet, tmp_path / "j.db")) as engine,
    ):
        if True:
            first = await engine.submit("shop", "order-1", samples.card_sale())
            again = await engine.submit("shop", "order-1", samples.card_sale())
            assert again.id == first.id
            with pytest.raises(Conflict) as conflict:
                await engine.submit("shop", "order-1", samples.card_sale(price=100))
            assert conflict.value.job_id == first.id and conflict.value.path == "external_id"
            with pytest.raises(ValidationFailed) as invalid:
                await engine.submit("shop", "order-2", samples.invalid())
            assert invalid.value.path == "total"
            assert await engine.job_by_external_id("shop", "order-2") is None
            both = attrs.evolve(
                samples.card_sale(), additional_prop="x", user_prop=UserProp("a", "b")
            )
            with pytest.raises(ValidationFailed, match="job marker"):
                await engine.submit("shop", "order-3", both)
            done = await engine.wait("shop", first.id)
            assert done.state is JobState.FISCALIZED
            repeat = await engine.submit("shop", "order-1", samples.card_sale())
            assert repeat.id == first.id and repeat.state is JobState.FISCALIZED


async def test_a_full_queue_answers_busy_and_journals_nothing(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_memory_fleet(1) as fleet:
        tenants = (TenantConfig("shop", queue_limit=3),)
        config = fleet_config(fleet, tmp_path / "j.db", tenants=tenants)
        config = attrs.evolve(
            config, registers=tuple(attrs.evolve(r, connect=_unreachable) for r in config.registers)
        )
        async with Engine.open(config) as engine:
            accepted = [
                await engine.submit("shop", f"o-{i}", samples.card_sale()) for i in range(3)
            ]
            with pytest.raises(Busy) as busy:
                await engine.submit("shop", "o-3", samples.card_sale())
            assert busy.value.retry_after >= 1
            assert await engine.job_by_external_id("shop", "o-3") is None
            # A repeat of an accepted job is still answered with it.
            assert (await engine.submit("shop", "o-0", samples.card_sale())).id == accepted[0].id
            batch = await engine.submit_many("shop", [("o-4", samples.card_sale())])
            assert isinstance(batch[0], Busy)
            # A queued job can be cancelled, which makes room; a final one cannot.
            cancelled = await engine.cancel("shop", accepted[1].id)
            assert (cancelled.state, cancelled.error) == (JobState.FAILED, "cancelled")
            with pytest.raises(NotCancellable):
                await engine.cancel("shop", accepted[1].id)
            with pytest.raises(KeyError):
                await engine.cancel("cafe", accepted[0].id)
            assert not isinstance(
                (await engine.submit_many("shop", [("o-4", samples.card_sale())]))[0], Busy
            )


async def _unreachable() -> object:
    raise OSError("connection refused")


class Gates:
    """An engine checkpoint that holds a job at the steps armed, one job per arming."""

    def __init__(self) -> None:
        self._armed: dict[str, tuple[trio.Event, trio.Event]] = {}
        self._held: dict[str, str] = {}

    def arm(self, step: str) -> None:
        self._armed[step] = (trio.Event(), trio.Event())

    async def held(self, step: str) -> str:
        """The id of the job now held at ``step``, once one is."""
        await self._armed[step][0].wait()
        return self._held[step]

    def release(self, step: str) -> None:
        self._armed.pop(step)[1].set()

    async def __call__(self, step: str, job_id: str) -> None:
        gate = self._armed.get(step)
        if gate is None or gate[0].is_set():
            return
        self._held[step] = job_id
        gate[0].set()
        await gate[1].wait()


async def _journal_doubtful_jobs(path: Path) -> tuple[str, str]:
    """An in-doubt job and a resolved one, sent to a register that is no longer configured."""
    body = encode_body(samples.card_sale(), "main")
    async with SqliteJournal.open(path) as journal:
        jobs = []
        for external_id in ("o-in-doubt", "o-resolved"):
            job = (await journal.accept("shop", external_id, body)).job
            await journal.move(job.id, JobState.QUEUED)
            await journal.move(job.id, JobState.SENT, register_id="kkt-gone", fd_before=7)
            jobs.append(await journal.move(job.id, JobState.IN_DOUBT, error="no answer"))
        signed = FiscalResult(
            jobs[1].id, "kkt-gone", "9999999999999999", 8, bytes(6), 1, "t=", b"\x03", 0.0
        )
        await journal.record_result(signed, JobState.RESOLVED)
    return jobs[0].id, jobs[1].id


async def test_only_a_job_waiting_in_its_queue_can_be_cancelled(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Each state's answer to cancel, as docs/protocol.md lists them."""
    in_doubt, resolved = await _journal_doubtful_jobs(tmp_path / "j.db")
    gates = Gates()
    async with open_memory_fleet(1) as fleet:
        config = fleet_config(fleet, tmp_path / "j.db")
        async with Engine.open(config, checkpoint=gates) as engine, trio.open_nursery() as tasks:

            async def refusal(job_id: str) -> str:
                """Why cancel refused the job, which it left as it was."""
                before = await engine.job("shop", job_id)
                with pytest.raises(NotCancellable) as refused:
                    await engine.cancel("shop", job_id)
                assert await engine.job("shop", job_id) == before
                return str(refused.value)

            # Journaled, not yet in its queue. Alone on its journal the engine never leaves a
            # job so (a submit is one commit), but a journal written before, or shared with
            # other engines, can hold one.
            body = encode_body(samples.card_sale(), "main")
            waiting = (await engine.journal.accept("shop", "o-0", body)).job.id
            assert (await refusal(waiting)).startswith(f"job {waiting} is accepted: only a job")
            gates.arm("taken")
            tasks.start_soon(engine.submit, "shop", "o-1", samples.card_sale())
            first = await gates.held("taken")  # the register took it: still queued
            assert f"job {first} is queued and a register has taken it" in await refusal(first)

            second = await engine.submit("shop", "o-2", samples.card_sale())
            assert second.state is JobState.QUEUED  # waiting behind the first: cancellable
            cancelled = await engine.cancel("shop", second.id)
            assert (cancelled.state, cancelled.error) == (JobState.FAILED, "cancelled")
            assert f"job {second.id} is failed: " in await refusal(second.id)

            gates.arm("signed")
            gates.release("taken")
            assert await gates.held("signed") == first  # sent, and the ФН has signed it
            assert f"job {first} is sent: " in await refusal(first)
            gates.release("signed")
            assert (await engine.wait("shop", first)).state is JobState.FISCALIZED
            assert f"job {first} is fiscalized: " in await refusal(first)

            assert f"job {in_doubt} is in_doubt: " in await refusal(in_doubt)
            assert f"job {resolved} is resolved: " in await refusal(resolved)
            for tenant, job_id in (("shop", "no-such-job"), ("cafe", first)):
                with pytest.raises(KeyError):
                    await engine.cancel(tenant, job_id)


async def test_a_wrong_fiscal_sign_fails_the_job_loudly(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_memory_fleet(1) as fleet:
        wrong = EmulatorSignVerifier({fleet.registers[0].fn.number: b"not the key"})
        config = fleet_config(fleet, tmp_path / "j.db", verifier=wrong)
        async with Engine.open(config) as engine:
            job = await engine.submit("shop", "o-1", samples.card_sale())
            done = await engine.wait("shop", job.id)
            assert done.state is JobState.FAILED
            assert done.error is not None and "fiscal sign check failed" in done.error
            assert [a.kind for a in engine.alerts] == ["alert.sign_check"]
            # The signed document is kept all the same: nothing the ФН signed is lost.
            assert await engine.result("shop", job.id) is not None


async def test_tenants_see_only_their_jobs(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_memory_fleet(2) as fleet:
        tenants = (TenantConfig("shop"), TenantConfig("cafe"))
        config = fleet_config(fleet, tmp_path / "j.db", tenants=tenants, owners=("shop", "cafe"))
        async with Engine.open(config) as engine:
            shop = await engine.submit("shop", "o-1", samples.card_sale())
            cafe = await engine.submit("cafe", "o-1", samples.card_sale())
            assert shop.id != cafe.id
            await engine.wait("shop", shop.id)
            await engine.wait("cafe", cafe.id)
            assert await engine.job("cafe", shop.id) is None
            assert await engine.result("cafe", shop.id) is None
            shop_result = await engine.result("shop", shop.id)
            cafe_result = await engine.result("cafe", cafe.id)
            assert shop_result is not None and cafe_result is not None
            assert shop_result.register_id == "kkt-0" and cafe_result.register_id == "kkt-1"


async def test_a_register_that_fails_is_taken_out_and_back(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_memory_fleet(1) as fleet:
        config = fleet_config(fleet, tmp_path / "j.db")
        real = config.registers[0].connect
        tries = 0

        async def flaky() -> object:
            nonlocal tries
            tries += 1
            if tries <= 3:
                raise OSError("no route to the register")
            return await real()

        config = attrs.evolve(config, registers=(attrs.evolve(config.registers[0], connect=flaky),))
        async with Engine.open(config) as engine:
            job = await engine.submit("shop", "o-1", samples.card_sale())
            assert (await engine.wait("shop", job.id)).state is JobState.FISCALIZED
            assert tries == 4
            assert [a.kind for a in engine.alerts] == ["alert.register_out"]
            kinds = [e.kind for e in await engine.journal.events()]
            assert kinds.index("alert.register_out") < kinds.index("register.ready")
            assert engine.registers["kkt-0"].state == "ready"


async def test_reports_reconcile_with_the_close_shift_report(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_memory_fleet(1) as fleet:
        tenants = (TenantConfig("shop", daily_close=dt.time(23, 0)),)
        config = fleet_config(fleet, tmp_path / "j.db", tenants=tenants)
        async with Engine.open(config) as engine:
            jobs = [await engine.submit("shop", name, r) for name, r in KINDS.items()]
            for job in jobs:
                await engine.wait("shop", job.id)
            await trio.sleep(16 * 3600)  # past 23:00 Moscow time: the keeper closes the shift
            shifts = await engine.journal.shifts("shop")
            assert len(shifts) == 1 and shifts[0].close_document is not None, (
                shifts,
                engine.alerts,
                await engine.journal.events(),
            )
            closed = dt.datetime.fromtimestamp(shifts[0].closed_at or 0, dt.UTC)
            assert closed.hour == 20  # 23:00 in Moscow
            receipts = await engine.journal.fiscalized("shop")
            report = await engine.report("shop", start=0, end=wall_clock())
            assert len(receipts) == len(KINDS) == report.totals.receipts
            statuses = [s.reconciliation.status for r in report.registers for s in r.shifts]
            assert statuses == ["match"], report
            csv_rows = list(await engine.export("shop", "csv"))
            assert len(csv_rows) == len(KINDS) + 1  # the header, then one row per receipt
            assert len(list(await engine.export("shop", "jsonl"))) == len(KINDS)
            assert len(list(await engine.export("shop", "fns"))) == len(KINDS)
            with pytest.raises(ValueError, match="form"):
                await engine.export("shop", "xml")
            view = await engine.receipt_view("shop", jobs[0].id)
            assert view is not None and await engine.receipt_view("cafe", jobs[0].id) is None
            assert [line.name for line in view.lines] == [i.name for i in KINDS["card sale"].items]
