"""The engine (движок): accepted jobs become fiscalized receipts, exactly once.

::

    async with Engine.open(config) as engine:
        job = await engine.submit("shop", "order-1", receipt)
        job = await engine.wait("shop", job.id)

A submit validates the receipt, then journals the job before it answers: an answered job
survives any crash. Each register has one worker task, owned by the engine's nursery, which
takes jobs of its tenant's group in FIFO order, keeps its shift (:mod:`engine.shifts`), sends
each receipt with the job's marker, checks what comes back (:mod:`engine.signs`) and journals
it. Before a receipt goes out its intent is journaled (``sent``, with the ФН's last FD); a lost
answer makes the job ``in_doubt``, and the register's worker resolves it from the ФН archive
before anything else (:mod:`engine.recovery`). A register that fails is taken out and probed
with growing waits; its queue is served by the group's other registers meanwhile.

A journal that cannot commit (a full disk, an I/O error) makes the engine *degraded*
(:attr:`Engine.health`): submits raise :class:`Unavailable` with a ``retry_after``, registers
take no jobs, and a watcher probes the journal with growing waits until a commit succeeds.
Nothing in flight is lost meanwhile: a commit is all or nothing, so a job is either journaled
in its old state (back to its queue, or in doubt if the register may have signed it, for
recovery to settle from the ФН once the journal is back) or in its new one.

A register whose ФН holds receipts the journal does not know is held (``journal_behind``): the
journal has forgotten jobs (emptied, replaced, or restored from an older copy), so an
external_id it forgot could be signed twice. The register takes no jobs and its tenant's
submits are refused until an operator puts the right journal back or adopts the ФН
(``kassa journal adopt``); it is looked at again every ``probe_max``.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import math
import shlex
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any

import attrs
import trio

from engine.admission import Admission
from engine.checks import RegisterProfile, check_receipt
from engine.config import EngineConfig, RegisterConfig, TenantConfig
from engine.drivers.base import (
    DriverError,
    Fiscalized,
    LinkLost,
    RefusalReason,
    RegisterDriver,
    RegisterRefused,
)
from engine.export import export_csv, export_fns_json, export_jsonl
from engine.journal import (
    FINAL_STATES,
    ConflictError,
    Delivery,
    DuplicateDocument,
    Event,
    FiscalResult,
    Job,
    JobState,
    Journal,
    JournalError,
    JournalUnavailable,
    Lease,
    LeaseLost,
    Notice,
    ReceiptQuery,
    ReceiptRow,
    RegisterRow,
    TenantRecord,
    journal_name,
    open_journal,
)
from engine.recovery import ArchiveReader, mark, unknown_receipt
from engine.reports import (
    OperationsReport,
    ReceiptRecord,
    ReceiptView,
    ShiftRecord,
    operations_report,
    receipt_view,
)
from engine.shifts import RegisterView, ShiftKeeper, fn_state
from engine.signs import check_signed
from engine.times import zone
from protocols.documents.json_format import ReceiptJsonError, receipt_from_json, receipt_to_json
from protocols.documents.model import Receipt
from protocols.tlv import TlvError, decode_document
from protocols.validation import Problem

#: A seam for tests and benchmarks: awaited at each step of a job with (step, job id);
#: cancelling there kills the engine at that step. Steps: accepted, queued, taken (a register's
#: worker took it from the FIFO, before any shift work), sending, signed, journaled.
Checkpoint = Callable[[str, str], Awaitable[None]]

log = logging.getLogger("kassa.engine")


class SubmitError(Exception):
    """A submit that was not accepted; ``code`` and ``path`` say what and where."""

    code = "invalid"
    path = ""


class ValidationFailed(SubmitError):
    """The receipt has problems; every one is listed with its field path."""

    code = "validation"

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        self.path = problems[0].path if problems else ""
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in problems))


class UnknownTenant(SubmitError):
    code = "unknown_tenant"


class UnknownGroup(SubmitError):
    code = "unknown_group"
    path = "group"


class JournalBehind(SubmitError):
    """A register of the tenant holds receipts the journal does not know: nothing is accepted,
    so that no forgotten external_id is signed twice and no job goes into a journal that an
    operator may yet put aside."""

    code = "unavailable"


class NotCancellable(Exception):
    """The job is not waiting in its queue (taken by a register, sent, final): it stays."""


class Busy(SubmitError):
    """The tenant's queue is full: nothing was journaled; try again after ``retry_after``."""

    code = "busy"

    def __init__(self, tenant: str, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(f"tenant {tenant!r} has too many jobs waiting; retry in {retry_after:g} s")


class Unavailable(SubmitError):
    """The journal cannot commit now: the request was not done (nothing of a submit was
    journaled); try again after ``retry_after`` seconds. ``cause`` is the journal's error."""

    code = "unavailable"

    def __init__(self, cause: str, retry_after: float) -> None:
        self.cause = cause
        self.retry_after = retry_after
        super().__init__(f"the journal cannot commit now ({cause}); retry in {retry_after:g} s")


@attrs.frozen
class Health:
    """Whether the engine takes work now (every front door maps it: ping, HTTP 503 …)."""

    degraded: bool = False
    cause: str | None = None  # the journal's error while degraded
    since: float | None = None  # wall-clock time it began
    retry_after: float | None = None  # seconds a client should wait before trying again


class Conflict(SubmitError):
    """The external_id was used before with a different receipt."""

    code = "conflict"
    path = "external_id"

    def __init__(self, error: ConflictError) -> None:
        self.job_id = error.job_id
        super().__init__(str(error))


@attrs.frozen
class JobEvent:
    """A job changed state (the notification hook; the service publishes these)."""

    job: Job
    result: FiscalResult | None = None


class _Group:
    """The FIFO of one tenant's group and the registers that serve it.

    On a shared journal the journal holds the queue (registers claim from it) and this is a
    hint: ``generation`` grows each time a job may be waiting (one accepted here, a NOTIFY
    from another engine, a job put back), and idle workers wait for it to grow.
    """

    def __init__(self) -> None:
        self.jobs: deque[Job] = deque()
        self.registers: list[RegisterView] = []  # what the checks before fiscalization ask
        self._lot = trio.lowlevel.ParkingLot()
        self.generation = 0

    def nudge(self) -> None:
        self.generation += 1
        self._lot.unpark_all()

    async def wait_beyond(self, seen: int) -> None:
        while self.generation <= seen:
            await self._lot.park()

    def put(self, job: Job, *, front: bool = False, at: int | None = None) -> None:
        if front:
            self.jobs.appendleft(job)
        elif at is not None:
            self.jobs.insert(min(at, len(self.jobs)), job)
        else:
            self.jobs.append(job)
        self._lot.unpark()

    async def take(self) -> Job:
        await self.ready()
        return self.jobs.popleft()

    async def ready(self) -> None:
        """Return once a job waits (it may be taken by another register first)."""
        while not self.jobs:
            await self._lot.park()

    def take_nowait(self) -> Job | None:
        return self.jobs.popleft() if self.jobs else None


#: Each export's writer, given the records and the tenant's time zone (FNS JSON has its own).
_EXPORTS: dict[str, Callable[[Iterable[ReceiptRecord], str], Iterator[str]]] = {
    "csv": export_csv,
    "jsonl": export_jsonl,
    "fns": lambda records, _: export_fns_json(records),
}


def encode_body(receipt: Receipt, group: str) -> bytes:
    """The job body as journaled: canonical JSON, so that a repeat hashes the same."""
    body = {"group": group, "receipt": receipt_to_json(receipt)}
    return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def body_receipt(body: bytes) -> Receipt:
    """The receipt of a journaled job body."""
    return receipt_from_json(json.loads(body)["receipt"])


def body_group(body: bytes) -> str:
    """The register group of a journaled job body, without building its receipt."""
    return str(json.loads(body)["group"])


#: Receipts whose checks' outcome the engine remembers (by journaled body, registers' profiles
#: and day): a shop that sells the same thing again and again (a ticket, a coffee, a vending
#: slot) sends the same receipt, and its checks (about 150 µs: the register's commands are
#: planned, the ФН's data encoded) are then a dictionary look-up. About 1 KiB each.
CHECK_MEMO = 1024


#: Worker threads that compute reports (and, for the service, decode big requests and write
#: exports) at once: the CPU-heavy reads run off the event loop, where every request waits.
HEAVY_THREADS = 2


@attrs.frozen(cache_hash=True)
class _ProfilesKey:
    """A group's register profiles in the checks' memo: hashed once, compared by identity."""

    profiles: tuple[RegisterProfile, ...]


class _RegisterGone(Exception):
    """The register cannot serve (ФН exhausted): its worker stops taking jobs."""


class _Shed(Exception):
    """The register is one more than this engine's share: its worker stops between two jobs,
    and the lease is given up for an engine with fewer to take it."""


@attrs.define
class _Outage:
    """The journal cannot commit: since when, why, and when the watcher probes it next."""

    cause: str
    since: float  # wall clock
    next_probe: float  # trio time
    back: trio.Event = attrs.Factory(trio.Event)  # set once a commit succeeds again


class _UnknownReceipts(Exception):
    """The register's ФН holds receipts the journal does not know: it must not take jobs."""


class Engine:
    """An open engine; see the module docstring. Create it with :meth:`open`."""

    def __init__(
        self,
        config: EngineConfig,
        journal: Journal,
        nursery: trio.Nursery,
        *,
        on_event: Callable[[JobEvent], None] | None = None,
        on_alert: Callable[[Event], None] | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> None:
        self.config = config
        self.journal = journal
        #: Several engines on this journal: registers are leased, jobs claimed in it.
        self._shared = journal.shared
        self._leases: dict[str, Lease] = {}  # the registers this engine holds, by id
        self._engines_alive = 1  # engines on the journal by their last heartbeat, this one too
        self._acquiring = 0  # lease requests under way: counted against the share at once
        self._shedding: set[str] = set()  # held registers to give up after their current job
        #: Jobs accepted here and not yet final (shared journal): their events from another
        #: engine are told here too, and they count in this engine's queue limits.
        self._watched: set[str] = set()
        self._to_fetch: set[str] = set()  # watched jobs another engine moved: read them
        self._fetch_wake = trio.Event()
        self._nursery = nursery
        self._on_event = on_event
        self._on_alert = on_alert
        self._checkpoint = checkpoint
        self.tenants: dict[str, TenantConfig] = {t.id: t for t in config.tenants}
        self._groups: dict[tuple[str, str], _Group] = {}
        self.registers: dict[str, RegisterView] = {}
        self._keepers = {
            t.id: ShiftKeeper(config, t, journal, self._keeper_alert(t.id)) for t in config.tenants
        }
        self._pending: dict[str, int] = dict.fromkeys(self.tenants, 0)
        #: Each tenant's registers held because the journal is behind their ФН.
        self._behind: dict[str, set[str]] = {}
        self._waiters: dict[str, trio.Event] = {}
        self.alerts: deque[Event] = deque(maxlen=1000)
        self._outage: _Outage | None = None
        self._journal_lost = trio.Event()  # wakes the watcher
        #: The watcher's first wait in the next outage: an outage soon after the last one
        #: (a disk that is nearly full) waits longer each time, up to journal_probe_max.
        self._probe_wait = config.journal_probe_interval
        self._journal_back_at = -math.inf  # trio time the last outage ended
        #: Jobs journaled as accepted whose move to their queue could not be committed: the
        #: watcher queues them once the journal is back (a restart queues them anyway).
        self._unqueued: dict[str, Job] = {}
        self._unjournaled: list[Event] = []  # events raised while the journal was down
        #: The threads of heavy reads: a report over thousands of receipts decodes each one
        #: (about 0.1 ms apiece), which on the event loop would hold up every other request.
        self.heavy = trio.CapacityLimiter(HEAVY_THREADS)
        #: Receipts on registers at once: past saturation, more would only pile up.
        self.admission = Admission(len(config.registers), tolerance=config.admission_tolerance)
        #: The problems (none: it passes) of the receipts checked last, see CHECK_MEMO.
        self._checks: OrderedDict[tuple[bytes, _ProfilesKey, dt.date], tuple[Problem, ...]] = (
            OrderedDict()
        )
        self._profile_keys: dict[tuple[str, str], _ProfilesKey] = {}
        #: Each group's profiles, with the registrations (1062) they were made from.
        self._profiles: dict[
            tuple[str, str], tuple[tuple[int | None, ...], tuple[RegisterProfile, ...]]
        ] = {}
        for register in config.registers:
            if register.tenant not in self.tenants:
                raise ValueError(f"register {register.id}: unknown tenant {register.tenant!r}")
            view = RegisterView(register)
            self._groups.setdefault((register.tenant, register.group), _Group()).registers.append(
                view
            )
            self.registers[register.id] = view

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        config: EngineConfig,
        *,
        on_event: Callable[[JobEvent], None] | None = None,
        on_alert: Callable[[Event], None] | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> AsyncIterator[Engine]:
        """Run an engine on ``config`` for the life of the block; its tasks end with it."""
        async with open_journal(config.journal) as journal:
            clean = False
            async with trio.open_nursery() as nursery:
                engine = cls(
                    config,
                    journal,
                    nursery,
                    on_event=on_event,
                    on_alert=on_alert,
                    checkpoint=checkpoint,
                )
                await engine._start()
                try:
                    yield engine
                    clean = True
                finally:
                    nursery.cancel_scope.cancel()
            if clean:  # every worker has stopped: others may take its registers at once
                await engine._release_leases()

    async def _start(self) -> None:
        for tenant in self.config.tenants:
            await self.journal.save_tenant(tenant.id, tenant.name)
        # A register held at the last run stays held until its connect says otherwise: a
        # restart must not open its tenant's intake to a journal that is still behind.
        held = {
            row.id: row for row in await self.journal.registers() if row.state == "journal_behind"
        }
        for register in self.config.registers:
            row = held.get(register.id)
            if row is not None:
                self._behind.setdefault(register.tenant, set()).add(register.id)
            await self.journal.save_register(
                RegisterRow(
                    register.id,
                    register.tenant,
                    register.group,
                    register.protocol,
                    register.address,
                    *(() if row is None else (row.fn_number, row.state)),
                )
            )
        if self._shared:
            await self._start_shared()
            return
        # A restart: what was accepted goes back to its queue; what was sent is resolved by
        # its register's worker before it takes new work.
        waiting = await self.journal.jobs_in([JobState.ACCEPTED, JobState.QUEUED])
        accepted = [job.id for job in waiting if job.state is JobState.ACCEPTED]
        queued = {job.id: job for job in await self.journal.move_many(accepted, JobState.QUEUED)}
        for job in queued.values():
            self._tell(job)
        for job in waiting:
            self._pending[job.tenant] = self._pending.get(job.tenant, 0) + 1
            self._enqueue(queued.get(job.id, job))
        for job in await self.journal.jobs_in([JobState.SENT, JobState.IN_DOUBT]):
            self._pending[job.tenant] = self._pending.get(job.tenant, 0) + 1
            if job.register_id not in self.registers:
                await self._alert(
                    "alert.orphan_job",
                    f"job {job.id} was sent to register {job.register_id}, which is not "
                    "configured: only its ФН can say whether the receipt exists",
                    tenant=job.tenant,
                    job_id=job.id,
                )
        self._nursery.start_soon(self._watch_journal)
        for register in self.config.registers:
            self._nursery.start_soon(self._run_register, self.registers[register.id])

    async def _start_shared(self) -> None:
        """Start on a journal other engines share: the journal keeps the queue, and the jobs
        sent or in doubt are their register's, whichever engine leases it (its worker
        resolves them before new work), not this engine's nor orphans.

        A job left ``accepted`` (its engine died between the commit and the move to its
        queue) is queued once it is older than three leases: a younger one may be another
        engine's submit still under way.
        """
        stale = self.config.wall_clock() - 3 * self.config.lease_seconds
        accepted = [
            job.id for job in await self.journal.jobs_in([JobState.ACCEPTED]) if job.updated < stale
        ]
        await self.journal.move_many(accepted, JobState.QUEUED)
        with suppress(JournalError):  # the others count this engine before it leases any
            await self._heartbeat()
        self._nursery.start_soon(self._membership)
        self._nursery.start_soon(self._watch_journal)
        self._nursery.start_soon(self.journal.watch, self._on_notices)
        self._nursery.start_soon(self._fetch_remote)
        for register in self.config.registers:
            self._nursery.start_soon(self._lease_register, self.registers[register.id])

    # --- health ------------------------------------------------------------------------------

    @property
    def health(self) -> Health:
        """Whether the engine takes work now; degraded while its journal cannot commit."""
        outage = self._outage
        if outage is None:
            return Health()
        return Health(True, outage.cause, outage.since, self._retry_after_outage(outage))

    def _retry_after_outage(self, outage: _Outage) -> float:
        return float(max(1, math.ceil(outage.next_probe - trio.current_time())))

    def _degrade(self, exc: JournalUnavailable) -> Unavailable:
        """Enter (or stay in) the degraded state; the Unavailable a caller should hear."""
        outage = self._outage
        if outage is None:
            now = trio.current_time()
            if now - self._journal_back_at > self.config.journal_probe_max:
                self._probe_wait = self.config.journal_probe_interval  # it worked a good while
            outage = self._outage = _Outage(
                exc.cause, self.config.wall_clock(), now + self._probe_wait
            )
            log.error(
                "the journal cannot commit: %s; degraded: submits answer unavailable and "
                "registers take no jobs until a commit succeeds",
                exc.cause,
            )
            event = Event(
                "alert.journal_unavailable",
                f"the journal cannot commit: {exc.cause}",
                outage.since,
            )
            self._unjournaled.append(event)
            self._notify_alert(event)
            self._journal_lost.set()
        else:
            outage.cause = exc.cause
        return Unavailable(outage.cause, self._retry_after_outage(outage))

    def _refuse_while_degraded(self) -> None:
        outage = self._outage
        if outage is not None:
            raise Unavailable(outage.cause, self._retry_after_outage(outage))

    @contextmanager
    def _journaled(self) -> Iterator[None]:
        """A journal that cannot commit becomes the degraded state and :class:`Unavailable`."""
        try:
            yield
        except JournalUnavailable as exc:
            raise self._degrade(exc) from exc

    async def _journal_ready(self) -> None:
        """Return at once while the journal commits; else once it commits again."""
        while self._outage is not None:
            await self._outage.back.wait()

    async def _watch_journal(self) -> None:
        """Probe a journal that failed, with growing waits, until a commit succeeds."""
        while True:
            await self._journal_lost.wait()
            outage = self._outage
            assert outage is not None
            while True:
                wait = self._probe_wait
                outage.next_probe = trio.current_time() + wait
                await trio.sleep(wait)
                self._probe_wait = min(wait * 2, self.config.journal_probe_max)
                try:
                    await self.journal.probe()
                    await self._journal_back(outage)
                except JournalUnavailable as exc:
                    outage.cause = exc.cause
                    continue
                break

    async def _journal_back(self, outage: _Outage) -> None:
        """A commit succeeded: queue what waited, journal the outage's events, go on."""
        if self._unqueued:
            known = set(self._unqueued)  # jobs still accepted only: the journal says which
            accepted = await self.journal.jobs_in([JobState.ACCEPTED])
            waiting = [job.id for job in accepted if job.id in known]
            for job in await self.journal.move_many(waiting, JobState.QUEUED):
                self._tell(job)
                self._enqueue(job)
            for job_id in known:
                del self._unqueued[job_id]
        lasted = self.config.wall_clock() - outage.since
        self._unjournaled.append(
            Event(
                "journal.recovered",
                f"the journal commits again after {lasted:.1f} s ({outage.cause})",
                self.config.wall_clock(),
            )
        )
        while self._unjournaled:
            await self.journal.record_event(self._unjournaled[0])
            self._unjournaled.pop(0)
        log.warning("the journal commits again after %.1f s: no longer degraded", lasted)
        self._journal_back_at = trio.current_time()
        self._journal_lost = trio.Event()
        self._outage = None
        outage.back.set()

    # --- intake ------------------------------------------------------------------------------

    async def submit(
        self, tenant: str, external_id: str, receipt: Receipt, *, group: str = "main"
    ) -> Job:
        """Validate and journal one job; the answer comes only after the commit.

        A repeat of (tenant, external_id) with the same receipt returns the first job, in its
        current state. Raises a :class:`SubmitError` (nothing journaled) otherwise.
        """
        body = self._checked(tenant, receipt, group)
        self._refuse_while_degraded()
        try:
            self._reserve(tenant, 1)
        except Busy:  # a repeat of an accepted job is answered even when the queue is full
            with self._journaled():
                existing = await self.journal.job_by_external_id(tenant, external_id)
            if existing is None:
                raise
            if existing.body != body:
                raise Conflict(ConflictError(tenant, external_id, existing.id)) from None
            return existing
        entry = JobState.ACCEPTED if self._shared else JobState.QUEUED  # see submit_many
        try:
            with self._journaled():
                accepted = await self.journal.accept(tenant, external_id, body, state=entry)
        except ConflictError as exc:
            self._release(tenant)
            raise Conflict(exc) from None
        except BaseException:
            self._release(tenant)
            raise
        if accepted.duplicate:
            self._release(tenant)
            return accepted.job
        if entry is JobState.QUEUED:  # one commit: journaled and queued
            self._tell(accepted.job)
            await self._step("queued", accepted.job.id)
            self._enqueue(accepted.job, group)
            return accepted.job
        await self._step("accepted", accepted.job.id)
        self._watched.add(accepted.job.id)
        try:
            job = await self._move(accepted.job, JobState.QUEUED)
        except JournalUnavailable as exc:  # journaled: answered as accepted, queued later
            self._degrade(exc)
            self._unqueued[accepted.job.id] = accepted.job
            return accepted.job
        await self._step("queued", job.id)
        self._enqueue(job, group)
        return job

    async def submit_many(
        self, tenant: str, jobs: Sequence[tuple[str, Receipt]], *, group: str = "main"
    ) -> list[Job | SubmitError]:
        """Journal a batch in one commit; each entry is answered alone (a job or its error).

        Entries beyond the room left in the tenant's queue are answered :class:`Busy`, in
        order, so the front of a batch goes through and the client retries the rest.

        Each answer says exactly what was journaled: a job was (``queued``; on a shared
        journal ``accepted`` when the journal failed between the batch's commit and the one
        that queues it: it is queued once the journal is back); an error was not. A journal
        that cannot commit the batch answers every entry :class:`Unavailable`; this method
        raises only for a fault of Kassa's own.
        """
        out: list[Job | SubmitError | None] = [None] * len(jobs)
        batch: list[tuple[int, str, bytes]] = []
        known = (tenant, group) in self._groups and tenant in self.tenants
        facts = self._check_facts(tenant, group) if known else None
        for i, (external_id, receipt) in enumerate(jobs):
            try:
                batch.append((i, external_id, self._checked(tenant, receipt, group, facts)))
            except SubmitError as exc:
                out[i] = exc
        try:
            self._refuse_while_degraded()
        except Unavailable as exc:
            for i, _, _ in batch:
                out[i] = exc
            batch = []
        room = max(0, self.tenants[tenant].queue_limit - self._pending[tenant]) if batch else 0
        for i, _, _ in batch[room:]:
            out[i] = Busy(tenant, self._retry_after(tenant, len(batch) - room))
        batch = batch[:room]
        if batch:
            self._reserve(tenant, len(batch))
            # Alone on its journal, the engine journals a batch straight into its queue: one
            # commit. On a shared journal another engine's register may claim a queued job at
            # once, so the job is watched (its events are this engine's clients') before the
            # second commit queues it.
            entry = JobState.ACCEPTED if self._shared else JobState.QUEUED
            try:
                accepted = await self.journal.accept_many(
                    [(tenant, e, b) for _, e, b in batch], state=entry
                )
            except JournalUnavailable as exc:  # one commit: none of the batch was journaled
                self._release(tenant, len(batch))
                unavailable = self._degrade(exc)
                for i, _, _ in batch:
                    out[i] = unavailable
                return [answer for answer in out if answer is not None]
            except BaseException:
                self._release(tenant, len(batch))
                raise
            fresh = []
            for (i, _, _), answer in zip(batch, accepted, strict=True):
                if isinstance(answer, ConflictError):
                    out[i] = Conflict(answer)
                    self._release(tenant)
                elif answer.duplicate:
                    out[i] = answer.job
                    self._release(tenant)
                elif entry is JobState.QUEUED:
                    out[i] = answer.job
                    self._tell(answer.job)
                    self._enqueue(answer.job, group)
                else:
                    fresh.append((i, answer.job))
                    self._watched.add(answer.job.id)
            if fresh:  # one commit moves the whole batch to its queue
                try:
                    moved = await self.journal.move_many(
                        [job.id for _, job in fresh], JobState.QUEUED
                    )
                except JournalUnavailable as exc:  # journaled: answered as accepted
                    self._degrade(exc)
                    for i, job in fresh:
                        out[i] = job
                        self._unqueued[job.id] = job
                    fresh, moved = [], []
                for (i, _), job in zip(fresh, moved, strict=True):
                    out[i] = job
                    self._tell(job)
                    self._enqueue(job, group)
        return [answer for answer in out if answer is not None]

    def _checked(
        self,
        tenant: str,
        receipt: Receipt,
        group: str,
        facts: tuple[tuple[RegisterProfile, ...], dt.date] | None = None,
    ) -> bytes:
        """The job body of ``receipt`` once it passes the checks; :class:`SubmitError` if not.

        ``facts`` are the group's profiles and today, if the caller has them (a batch asks
        once). The outcome is remembered by body: the body is what is fiscalized later
        (:func:`body_receipt`), so two receipts with one body pass or fail alike.
        """
        if tenant not in self.tenants:
            raise UnknownTenant(f"unknown tenant {tenant!r}")
        held = self._behind.get(tenant)
        if held:
            raise JournalBehind(
                f"the journal is behind the ФН of register {', '.join(sorted(held))}: nothing "
                "is accepted until an operator settles it"
            )
        if (tenant, group) not in self._groups:
            raise UnknownGroup(f"tenant {tenant!r} has no register group {group!r}")
        profiles, today = facts or self._check_facts(tenant, group)
        # The memo's key holds the group's profiles as one object, made again only when one
        # changes: a fresh tuple of them cost a hash and a comparison of every register of the
        # group a receipt (at 500 registers, a fifth of the engine's CPU under load).
        profiles_key = self._profiles_key(tenant, group, profiles)
        try:
            body = encode_body(receipt, group)
        except Exception:  # a receipt too odd to encode is refused by its checks, as before
            odd = check_receipt(receipt, profiles, today=today)
            if odd:
                raise ValidationFailed(odd) from None
            raise
        key = (body, profiles_key, today)
        remembered = self._checks.get(key)
        if remembered is None:
            problems = tuple(check_receipt(receipt, profiles, today=today))
            self._checks[key] = problems
            if len(self._checks) > CHECK_MEMO:
                self._checks.popitem(last=False)
        else:
            problems = remembered
            self._checks.move_to_end(key)
        if problems:
            raise ValidationFailed(problems)
        return body

    def _profiles_key(
        self, tenant: str, group: str, profiles: tuple[RegisterProfile, ...]
    ) -> _ProfilesKey:
        """One object for the group's ``profiles`` while they stay the same (its hash kept)."""
        known = self._profile_keys.get((tenant, group))
        if known is None or (known.profiles is not profiles and known.profiles != profiles):
            known = self._profile_keys[(tenant, group)] = _ProfilesKey(profiles)
        return known

    def _check_facts(self, tenant: str, group: str) -> tuple[tuple[RegisterProfile, ...], dt.date]:
        """What the checks of ``tenant``'s ``group`` depend on beside the receipt.

        The profiles are the same tuple while no register's registration (1062) changed.
        """
        systems = tuple(view.tax_systems for view in self._groups[(tenant, group)].registers)
        known = self._profiles.get((tenant, group))
        if known is None or known[0] != systems:
            known = self._profiles[(tenant, group)] = (
                systems,
                tuple(self.group_profiles(tenant, group)),
            )
        return known[1], self.today(tenant)

    def group_profiles(self, tenant: str, group: str) -> list[RegisterProfile]:
        """What the checks know of the registers of ``tenant``'s ``group``."""
        return [
            RegisterProfile(
                view.config.id, view.config.protocol, view.config.taxes, view.tax_systems
            )
            for view in self._groups[(tenant, group)].registers
        ]

    def today(self, tenant: str) -> dt.date:
        """Today at the tenant's registers (its time zone), by the engine's wall clock."""
        local = zone(self.tenants[tenant].timezone)
        return dt.datetime.fromtimestamp(self.config.wall_clock(), local).date()

    def _reserve(self, tenant: str, count: int) -> None:
        pending = self._pending[tenant]
        limit = self.tenants[tenant].queue_limit
        if pending + count > limit:
            raise Busy(tenant, self._retry_after(tenant, pending + count - limit))
        self._pending[tenant] = pending + count

    def _retry_after(self, tenant: str, excess: int) -> float:
        """Seconds until ``excess`` jobs' room is likely free: a second per job per register."""
        registers = sum(
            1 for r in self.registers.values() if r.config.tenant == tenant and r.state == "ready"
        )
        return float(max(1, math.ceil(excess / max(1, registers))))

    def _release(self, tenant: str, count: int = 1) -> None:
        self._pending[tenant] -= count

    # --- queries -----------------------------------------------------------------------------

    # Reads work while degraded (a group of reads commits nothing); one that shared a failed
    # commit with writes raises Unavailable like a submit.

    async def job(self, tenant: str, job_id: str) -> Job | None:
        """The tenant's job ``job_id``; another tenant's job is as absent as a missing one."""
        with self._journaled():
            job = await self.journal.job(job_id)
        return job if job is not None and job.tenant == tenant else None

    async def job_by_external_id(self, tenant: str, external_id: str) -> Job | None:
        with self._journaled():
            return await self.journal.job_by_external_id(tenant, external_id)

    async def jobs_of(self, tenant: str, *, limit: int = 100, after: str = "") -> list[Job]:
        """A tenant's jobs in id order, a page at a time (``after`` the last id seen)."""
        with self._journaled():
            return await self.journal.jobs_of(tenant, limit=limit, after=after)

    async def receipts(self, tenant: str, query: ReceiptQuery) -> list[ReceiptRow]:
        """A page of the tenant's jobs newest first, filtered (the cabinet's receipts list)."""
        with self._journaled():
            return await self.journal.receipts(tenant, query)

    async def fiscalized(
        self, tenant: str, *, start: float = 0.0, end: float = float("inf")
    ) -> list[ReceiptRecord]:
        """The tenant's signed receipts journaled in [start, end), as the ФН signed them."""
        with self._journaled():
            return await self.journal.fiscalized(tenant, start=start, end=end)

    async def deliveries(self, job: Job) -> list[Delivery]:
        """The outbound deliveries (callbacks) of ``job``, one its tenant has read."""
        with self._journaled():
            return await self.journal.deliveries(job.id)

    async def result(self, tenant: str, job_id: str) -> FiscalResult | None:
        if await self.job(tenant, job_id) is None:
            return None
        with self._journaled():
            return await self.journal.result(job_id)

    async def tenant_records(self, tenant: str, kind: str) -> list[TenantRecord]:
        """What the tenant keeps of ``kind`` (its branding, …), as the cabinet saved it."""
        with self._journaled():
            return await self.journal.records(kind, tenant)

    async def put_tenant_record(self, record: TenantRecord) -> None:
        """Save what a tenant edited in the cabinet, replacing its (tenant, kind, key)."""
        with self._journaled():
            await self.journal.put_record(record)

    async def drop_tenant_record(self, tenant: str, kind: str, key: str) -> bool:
        """Forget one of a tenant's records; whether there was one."""
        with self._journaled():
            return await self.journal.drop_record(tenant, kind, key)

    async def wait(self, tenant: str, job_id: str) -> Job:
        """The job once it is final (fiscalized, failed or resolved)."""
        while True:
            event = self._waiters.setdefault(job_id, trio.Event())
            job = await self.job(tenant, job_id)
            if job is None:
                raise KeyError(job_id)
            if job.state in FINAL_STATES:
                return job
            await event.wait()

    async def cancel(self, tenant: str, job_id: str) -> Job:
        """Cancel a job still waiting in its queue: it becomes ``failed`` with ``cancelled``.

        Any other job raises :class:`NotCancellable`: one ``accepted`` and not yet queued, one
        a register has taken (still ``queued`` until it is sent), one ``sent`` or
        ``in_doubt`` (the ФН may have signed it), a final one. An unknown job (or another
        tenant's) raises KeyError. While the journal cannot commit: :class:`Unavailable`.
        """
        self._refuse_while_degraded()
        job = await self.job(tenant, job_id)
        if job is None:
            raise KeyError(job_id)
        if (
            self._shared
        ):  # only while queued in the journal: a claim and a cancel exclude each other
            try:
                with self._journaled():
                    return await self._move(
                        job, JobState.FAILED, error="cancelled", expect=JobState.QUEUED
                    )
            except JournalError as exc:
                if isinstance(exc, JournalUnavailable):
                    raise
                raise NotCancellable(
                    f"job {job_id} is no longer queued ({exc}): only a job still waiting in "
                    "its queue can be cancelled"
                ) from None
        group_name = body_group(job.body)
        group = self._groups.get((tenant, group_name))
        waiting = None if group is None else next((j for j in group.jobs if j.id == job_id), None)
        if waiting is None:  # no await since the look: a worker cannot have taken it meanwhile
            taken = " and a register has taken it" if job.state is JobState.QUEUED else ""
            raise NotCancellable(
                f"job {job_id} is {job.state.value}{taken}: only a job still waiting in its "
                "queue can be cancelled"
            )
        assert group is not None
        place = group.jobs.index(waiting)
        group.jobs.remove(waiting)
        try:
            with self._journaled():
                return await self._move(waiting, JobState.FAILED, error="cancelled")
        except Exception:  # nothing was committed: it waits where it was
            group.put(waiting, at=place)
            raise

    def register_states(self, tenant: str) -> list[dict[str, Any]]:
        """The tenant's registers as the engine sees them now."""
        return [
            {
                "id": r.config.id,
                "group": r.config.group,
                "protocol": r.config.protocol,
                "state": r.state,
                "fn_number": r.fn_number,
                "shift_open": r.shift is not None,
                "last_fd": r.last_fd,
                **fn_state(r),
            }
            for r in self.registers.values()
            if r.config.tenant == tenant
        ]

    async def close_shift(self, tenant: str, register_id: str) -> bool:
        """Close the register's shift now (on demand); False when none was open.

        Raises KeyError for a register that is not the tenant's, and LinkLost or
        RegisterRefused when the register cannot do it now.
        """
        register = self._own_register(tenant, register_id)
        self._refuse_while_degraded()
        async with register.lock:
            driver = self._live(register)
            status = await driver.status()
            with self._journaled():
                await self._keepers[tenant].adopt(register, driver, status)
            if register.shift is None:
                return False
            with self._journaled():
                await self._keepers[tenant].close(register, driver)
            return True

    async def open_shift(self, tenant: str, register_id: str) -> bool:
        """Open a shift now (on demand); False when one was already open."""
        register = self._own_register(tenant, register_id)
        self._refuse_while_degraded()
        async with register.lock:
            driver = self._live(register)
            status = await driver.status()
            with self._journaled():
                await self._keepers[tenant].adopt(register, driver, status)
                if register.shift is not None:
                    return False
                await self._keepers[tenant].open(register, driver)
            return True

    async def close_all_shifts(self, tenant: str) -> int:
        """Close every open shift of the tenant's ready registers; how many were closed."""
        closed = 0
        for register in list(self.registers.values()):
            if register.config.tenant == tenant and register.state == "ready":
                closed += await self.close_shift(tenant, register.config.id)
        return closed

    def _own_register(self, tenant: str, register_id: str) -> RegisterView:
        register = self.registers.get(register_id)
        if register is None or register.config.tenant != tenant:
            raise KeyError(register_id)
        return register

    def _live(self, register: RegisterView) -> RegisterDriver:
        if register.driver is None:
            raise LinkLost(f"register {register.config.id} is not connected")
        return register.driver

    async def report(
        self,
        tenant: str,
        *,
        start: float | None = None,
        end: float | None = None,
        register_id: str | None = None,
    ) -> OperationsReport:
        """The operations report of a tenant for [start, end), reconciled shift by shift.

        With no ``start`` it covers everything until ``end`` (by default now) and starts at
        its first shift or receipt. It is computed in a :attr:`heavy` thread, off the loop.
        """
        end = self.config.wall_clock() + 1 if end is None else end
        with self._journaled():
            receipts = await self.journal.fiscalized(tenant, register_id=register_id)
            shifts = [
                ShiftRecord(
                    s.tenant,
                    s.register_id,
                    s.fn_number,
                    s.number,
                    s.opened_at,
                    s.closed_at,
                    s.close_document,
                )
                for s in await self.journal.shifts(tenant, register_id)
            ]
        compute = functools.partial(
            operations_report,
            receipts,
            shifts,
            tenant=tenant,
            start=start,
            end=end,
            register_id=register_id,
        )
        return await trio.to_thread.run_sync(compute, limiter=self.heavy)

    async def export(
        self,
        tenant: str,
        form: str,
        *,
        start: float = 0.0,
        end: float = float("inf"),
        register_id: str | None = None,
    ) -> Iterator[str]:
        """The tenant's signed receipts in ``form`` (csv, jsonl or fns), chunk by chunk."""
        writer = _EXPORTS.get(form)
        if writer is None:
            raise ValueError(f"form: expected one of {', '.join(_EXPORTS)}, got {form!r}")
        with self._journaled():
            records = await self.journal.fiscalized(
                tenant, start=start, end=end, register_id=register_id
            )
        return writer(records, self.tenants[tenant].timezone)

    async def receipt_view(self, tenant: str, job_id: str) -> ReceiptView | None:
        """A signed receipt line by line, with its fiscal data (None if not the tenant's)."""
        job = await self.job(tenant, job_id)
        with self._journaled():
            result = None if job is None else await self.journal.result(job_id)
        if job is None or result is None:
            return None
        return receipt_view(
            ReceiptRecord(
                job.id,
                job.tenant,
                job.external_id,
                result.register_id,
                result.fn_number,
                result.fd_number,
                result.fiscal_sign,
                result.printed_sign,
                result.qr,
                result.document,
                result.fiscalized_at,
            )
        )

    # --- leases (several engines on one journal) ------------------------------------------------

    async def _lease_register(self, register: RegisterView) -> None:
        """Run the register's worker only while this engine holds its lease.

        Why the worker stops before anyone else may use the register: the lease expires at
        the server's ``now()`` of the acquiring or renewing transaction plus ``ttl``, and that
        transaction began after this engine sent its request (at ``sent``, trio's monotonic
        clock). The worker runs in a cancel scope whose deadline is ``sent + ttl - margin``, so
        by its own clock it is cancelled ``margin`` before the earliest moment the lease can
        expire; another engine can acquire it only after it expired (``expires_at <= now()``),
        with a higher token. The margin covers clock-rate drift and a command already on the
        register's wire. Whatever was still in flight to the journal when the worker stopped
        carries the old token: it commits before the takeover (whose recovery then reads it) or
        is refused (:class:`LeaseLost`): a takeover cannot take the lease row while a fenced
        write holds it. A renewal refused (another owner, or expired) cancels the worker at
        once. An engine whose worker stopped takes its own lease again at once (a higher token
        fences the stopped worker's writes); its first act, as a new holder's, is recovery.
        """
        ttl = self.config.lease_seconds
        margin = ttl / 4
        register_id = register.config.id
        while True:
            while len(self._leases) + self._acquiring >= self.lease_share():
                await trio.sleep(ttl / 3)  # this engine has its share: others take the rest
            await self._journal_ready()
            sent = trio.current_time()
            lease = None
            self._acquiring += 1
            try:
                lease = await self.journal.acquire_lease(register_id, self.config.engine_id, ttl)
            except JournalError as exc:
                if isinstance(exc, JournalUnavailable):
                    self._degrade(exc)
            finally:
                self._acquiring -= 1
            if lease is None:  # another engine's, or the journal is down: look again soon
                await trio.sleep(ttl / 3)
                continue
            self._leases[register_id] = lease
            log.info("register %s: lease taken with token %d", register_id, lease.token)
            with trio.CancelScope(deadline=sent + ttl - margin) as scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._renew_lease, register, scope, ttl, margin)
                    nursery.start_soon(self._run_leased, register, scope)
            if register_id in self._shedding:  # stopped between two jobs: hand it over
                self._shedding.discard(register_id)
                held = self._leases.get(register_id)
                with suppress(JournalError), trio.move_on_after(ttl / 4):
                    if held is not None and await self.journal.release_lease(held):
                        log.info("register %s: lease given up for another engine", register_id)
            elif scope.cancelled_caught:
                log.warning(
                    "register %s: lease token %d lost or not renewed in time: its worker stopped",
                    register_id,
                    lease.token,
                )
            self._leases.pop(register_id, None)
            if register.state == "ready":
                register.state = "unknown"  # another engine may serve it now

    async def _run_leased(self, register: RegisterView, scope: trio.CancelScope) -> None:
        """The register's worker; a write refused for a stale token stops it (and the lease's
        renewals with it)."""
        try:
            await self._run_register(register)
        except LeaseLost as exc:
            log.warning("%s", exc)
            scope.cancel()
        except _Shed:
            scope.cancel()  # the renewals end; the lease is given up by _lease_register

    def lease_share(self) -> int:
        """The most registers this engine leases: an even share among the engines alive, so
        that K engines fiscalize at K engines' pace, not at the pace of the first to start."""
        return math.ceil(len(self.config.registers) / max(1, self._engines_alive))

    async def _heartbeat(self) -> None:
        self._engines_alive = await self.journal.engine_alive(
            self.config.engine_id, self.config.lease_seconds
        )

    async def _membership(self) -> None:
        """Say every third of a lease that this engine lives, learn how many do, and give up
        the registers beyond this engine's share (another engine started): each after the job
        it is on, never in the middle of one."""
        while True:
            await trio.sleep(self.config.lease_seconds / 3)
            await self._journal_ready()  # while degraded, the journal's own probe asks it
            try:
                await self._heartbeat()
            except JournalError:
                continue  # the leases' own deadlines stop the workers if this lasts
            excess = len(self._leases) - self.lease_share() - len(self._shedding)
            if excess <= 0:
                continue
            # Idle registers first, then the rest; by id, so the choice is steady.
            candidates = sorted(
                (r for r in self._leases if r not in self._shedding),
                key=lambda r: (self.registers[r].current is not None, r),
            )
            for register_id in candidates[:excess]:
                self._shedding.add(register_id)
                config = self.registers[register_id].config
                self._groups[(config.tenant, config.group)].nudge()  # wake an idle worker

    async def _renew_lease(
        self, register: RegisterView, scope: trio.CancelScope, ttl: float, margin: float
    ) -> None:
        """Renew every ``ttl / 3``; each renewal moves the worker's deadline on."""
        register_id = register.config.id
        wait = ttl / 3
        while True:
            await trio.sleep(wait)
            lease = self._leases[register_id]
            sent = trio.current_time()
            try:
                renewed = await self.journal.renew_lease(lease, ttl)
            except JournalError:  # the store failed (or its group did)
                wait = ttl / 10  # try again soon; the deadline stops the worker meanwhile
                continue
            if renewed is None:
                log.warning("register %s: lease token %d lost", register_id, lease.token)
                scope.cancel()
                return
            self._leases[register_id] = renewed
            scope.deadline = sent + ttl - margin
            wait = ttl / 3

    async def _release_leases(self) -> None:
        """Give up the leases of a clean stop (its workers have ended), so others need not
        wait for them to expire. A kill releases nothing: they expire."""
        with trio.move_on_after(max(1.0, self.config.lease_seconds / 2)):
            for lease in list(self._leases.values()):
                try:
                    await self.journal.release_lease(lease)
                except JournalError:
                    return
        self._leases.clear()

    def _fence(self, register: RegisterView | None) -> Lease | None:
        """The lease a write on ``register``'s path carries (none on an unshared journal)."""
        if register is None or not self._shared:
            return None
        return self._leases.get(register.config.id)

    def _on_notices(self, notices: Sequence[Notice]) -> None:
        """What other engines did on the shared journal: wake a group whose job waits, and
        read the jobs this engine's clients wait on (a bounded set: watched and waited)."""
        for kind, value in notices:
            if kind == "queued":
                tenant, _, group_name = value.partition("\t")
                group = self._groups.get((tenant, group_name))
                if group is not None:
                    group.nudge()
            elif kind == "job":
                if value in self._watched or value in self._waiters:
                    self._to_fetch.add(value)
            else:  # resync: notices were lost
                self._to_fetch.update(self._watched)
                self._to_fetch.update(self._waiters)
                for group in self._groups.values():
                    group.nudge()
        if self._to_fetch:
            self._fetch_wake.set()

    async def _fetch_remote(self) -> None:
        """Tell the events of watched jobs another engine moved, as if this one had."""
        while True:
            await self._fetch_wake.wait()
            self._fetch_wake = trio.Event()
            pending, self._to_fetch = self._to_fetch, set()
            for job_id in pending:
                try:
                    job = await self.journal.job(job_id)
                    if job is None:
                        continue
                    if job.state in FINAL_STATES:
                        if job.id in self._watched or job.id in self._waiters:
                            self._finished(job, await self.journal.result(job_id))
                    elif job.id in self._watched:
                        self._tell(job)
                except JournalError as exc:
                    if isinstance(exc, JournalUnavailable):
                        self._degrade(exc)
                    self._to_fetch.add(job_id)
            if self._to_fetch:
                await trio.sleep(self.config.journal_probe_interval)
                self._fetch_wake.set()

    # --- the register workers ------------------------------------------------------------------

    async def _run_register(self, register: RegisterView) -> None:
        """Keep the register serving; while the journal cannot commit, it waits for it.

        A journal failure anywhere in the register's work (a job, a shift, an alert) ends its
        session: the job it held stays as the journal has it, queued or in doubt, and the
        register connects again, recovering its in-doubt jobs first, once commits succeed.
        """
        while True:
            await self._journal_ready()
            try:
                await self._keep_register(register)
            except JournalUnavailable as exc:
                self._degrade(exc)

    async def _keep_register(self, register: RegisterView) -> None:
        """Connect, serve, and on failure take the register out and probe it back."""
        wait = self.config.probe_interval
        while True:
            try:
                driver = await register.config.connect()
            except (OSError, DriverError) as exc:
                await self._mark(register, "out", f"cannot connect: {exc}")
                await trio.sleep(wait)
                wait = min(wait * 2, self.config.probe_max)
                continue
            register.driver = driver
            try:
                await self._serve(register, driver)
            except LinkLost as exc:
                if register.state == "ready":  # it served: the first probe comes soon again
                    wait = self.config.probe_interval
                await self._mark(register, "out", f"link lost: {exc}")
            except _RegisterGone as exc:
                await self._mark(register, "exhausted", str(exc))
                wait = self.config.probe_max
            except _UnknownReceipts as exc:
                if register.state != "journal_behind":
                    log.error("%s", exc)
                await self._mark(register, "journal_behind", str(exc))
                wait = self.config.probe_max
            except RegisterRefused as exc:
                await self._mark(register, "out", f"refused a service command: {exc}")
            except (JournalUnavailable, LeaseLost, _Shed):  # the register is fine
                raise
            except Exception as exc:  # a bug or a register that breaks the protocol's rules
                # One register must not stop the others: take it out, keep its job safe.
                await self._mark(register, "out", f"{type(exc).__name__}: {exc}")
            finally:
                job = register.current
                register.current = None
                if job is not None and job.state is JobState.QUEUED:  # taken, never sent
                    group = self._groups[(job.tenant, body_group(job.body))]
                    if self._shared:
                        group.nudge()
                    else:
                        group.put(job, front=True)
                register.driver = None
                with trio.CancelScope(shield=True):
                    await driver.aclose()
            await trio.sleep(wait)
            wait = min(wait * 2, self.config.probe_max)

    async def _serve(self, register: RegisterView, driver: RegisterDriver) -> None:
        keeper = self._keepers[register.config.tenant]
        async with register.lock:
            await self._connected(register, driver, keeper)
        group = self._groups[(register.config.tenant, register.config.group)]
        if self._shared:
            await self._serve_claims(register, driver, keeper, group)
            return
        while True:
            await self._journal_ready()  # no job is taken while the journal cannot keep it
            with trio.move_on_after(self.config.maintenance_interval) as idle:
                await group.ready()
            if idle.cancelled_caught:
                async with register.lock:
                    await keeper.maintain(register, driver, await driver.status())
                continue
            # A job waiting for admission stays in its queue, cancellable, for any register.
            async with self.admission.slot((register.config.tenant, register.config.group)) as slot:
                job = group.take_nowait() if self._outage is None else None
                while job is not None:  # the next one's intent was committed with a result
                    began = trio.current_time()
                    key = self.admission.key(register.config.id, job.body)
                    plain = keeper.ready_for_receipt(register)  # no shift to open first
                    register.current = job  # queued, or sent: a lost link finds it here
                    async with register.lock:
                        job = register.current = await self._process(register, driver, keeper, job)
                    if plain:  # a shift's open or close is not a receipt taking longer
                        slot.observe(key, trio.current_time() - began)

    async def _serve_claims(
        self, register: RegisterView, driver: RegisterDriver, keeper: ShiftKeeper, group: _Group
    ) -> None:
        """:meth:`_serve` on a shared journal: claim the group's next job in the journal.

        Woken by the group's hint (a submit here, another engine's NOTIFY); a slow poll (a
        third of the lease) covers a notice lost. Each claim is the job's intent (``sent``
        with the ФН's last FD), so two engines never take one job.
        """
        poll = min(self.config.maintenance_interval, self.config.lease_seconds / 3)
        ahead: Job | None = None
        idle_since = trio.current_time()
        while True:
            job = ahead
            ahead = None
            if job is None:
                if register.config.id in self._shedding:  # between two jobs: hand it over
                    raise _Shed(register.config.id)
                await self._journal_ready()
                seen = group.generation
                async with register.lock:
                    job = register.current = await self.journal.claim_next(
                        register.config.tenant,
                        register.config.group,
                        register.config.id,
                        register.last_fd,
                        self._fence(register),
                    )
                if job is None:
                    with trio.move_on_after(poll):
                        await group.wait_beyond(seen)
                    if trio.current_time() - idle_since >= self.config.maintenance_interval:
                        idle_since = trio.current_time()
                        async with register.lock:
                            await keeper.maintain(register, driver, await driver.status())
                    continue
                self._tell(job)
                await self._step("taken", job.id)
                await self._step("sending", job.id)
            async with register.lock:
                if not keeper.ready_for_receipt(register):
                    try:
                        await keeper.before_receipt(register, driver)
                    except RegisterRefused as exc:
                        if exc.reason is RefusalReason.FN_EXHAUSTED:
                            register.current = await self._move(
                                job, JobState.QUEUED, error=str(exc), fence=register
                            )
                            raise _RegisterGone(f"ФН cannot open a shift: {exc}") from exc
                        raise
                register.current = job
                ahead = register.current = await self._process(register, driver, keeper, job)

    async def _connected(
        self, register: RegisterView, driver: RegisterDriver, keeper: ShiftKeeper
    ) -> None:
        status = await driver.status()
        if register.state == "exhausted" and status.fn_number == register.fn_number:
            # Out for good until its ФН is replaced: an operator's job, not a retry's.
            raise _RegisterGone(f"ФН {status.fn_number} is still exhausted")
        if status.fn_number != register.fn_number:
            register.last_fd = await self.journal.last_fd(status.fn_number)
        if register.last_fd is None or register.last_fd > status.last_fd:
            register.last_fd = status.last_fd
        if register.tax_systems_of != status.fn_number:
            await self._read_registration(register, driver, status.fn_number)
        await keeper.adopt(register, driver, status)
        await self._recover(register, driver)
        await self._compare_with_journal(register, driver, status.fn_number, status.last_fd)
        await keeper.maintain(register, driver, await driver.status())
        if register.state != "ready":
            await self._mark(register, "ready", f"ФН {status.fn_number}, last FD {status.last_fd}")

    async def _compare_with_journal(
        self, register: RegisterView, driver: RegisterDriver, fn_number: str, last_fd: int
    ) -> None:
        """Hold the register if its ФН holds receipts the journal does not know.

        Runs after recovery has settled the in-doubt jobs: what a sound journal may still not
        know are the shift reports a crash kept it from journaling. FD 1 is the registration
        report, so a new ФН holds nothing unknown.
        """
        tenant, register_id = register.config.tenant, register.config.id
        known = await self.journal.last_fd(fn_number) or 1
        why = None
        if last_fd > known:
            why = await unknown_receipt(ArchiveReader(driver), known + 1, last_fd)
        if why is None:
            self._behind.get(tenant, set()).discard(register_id)
            return
        self._behind.setdefault(tenant, set()).add(register_id)
        name = journal_name(self.config.journal)
        journal = shlex.quote(name)
        raise _UnknownReceipts(
            f"register {register_id}: its ФН {fn_number} holds FD {known + 1}–{last_fd}, which "
            f"the journal {name} does not know, and {why}. The journal is behind "
            "the register (emptied, replaced or restored from an older copy), so a receipt it "
            "forgot could be made twice: the register takes no jobs and tenant "
            f"{tenant}'s submits are refused. Put the right journal back; or, if this journal "
            f"is to start over on this ФН, run: kassa journal adopt {journal} --fn {fn_number} "
            f"--last-fd {last_fd}"
        )

    async def _read_registration(
        self, register: RegisterView, driver: RegisterDriver, fn_number: str
    ) -> None:
        """Learn the tax systems (1062) the ФН was registered with, from its first document.

        A ФН's FD 1 is its registration report (отчёт о регистрации). A register that will
        not give it leaves the tax-system check to the register itself.
        """
        register.tax_systems, register.tax_systems_of = None, fn_number
        try:
            document = decode_document(await driver.read_document(1))
        except (RegisterRefused, TlvError):
            return
        systems = document.fields.get(1062)
        if document.code in (1, 11) and isinstance(systems, int):
            register.tax_systems = systems

    async def _process(
        self, register: RegisterView, driver: RegisterDriver, keeper: ShiftKeeper, job: Job
    ) -> Job | None:
        """Fiscalize ``job``; the register's next job when its intent was committed with
        this one's result (:meth:`_next_job`), to be fiscalized next and nothing else first.

        A ``job`` already ``sent`` came so from the last call: its shift was open with time
        left, and no byte of it has reached the register.
        """
        receipt = body_receipt(job.body)
        marked = mark(receipt, job.id)
        if job.state is not JobState.SENT:
            await self._step("taken", job.id)
            try:
                await keeper.before_receipt(register, driver)
            except RegisterRefused as exc:
                if exc.reason is RefusalReason.FN_EXHAUSTED:
                    raise _RegisterGone(f"ФН cannot open a shift: {exc}") from exc
                raise
            await self._step("sending", job.id)
            job = register.current = await self._move(
                job, JobState.SENT, register=register, fd_before=register.last_fd
            )
        for attempt in range(3):
            try:
                fiscalized = await driver.fiscalize(
                    marked, sell_failed_marking=self.tenants[job.tenant].sell_failed_marking
                )
                break
            except LinkLost as exc:
                await self._move(
                    job,
                    JobState.IN_DOUBT,
                    error=f"no answer from the register: {exc}",
                    fence=register,
                )
                raise
            except RegisterRefused as exc:
                if attempt < 2 and exc.reason in (
                    RefusalReason.SHIFT_CLOSED,
                    RefusalReason.SHIFT_EXPIRED,
                ):
                    await keeper.reopen(register, driver)
                    continue
                if attempt < 2 and exc.reason is RefusalReason.DOCUMENT_OPEN:
                    await driver.cancel_receipt()
                    continue
                if exc.reason is RefusalReason.FN_EXHAUSTED:
                    register.current = await self._move(
                        job, JobState.QUEUED, error=str(exc), fence=register
                    )
                    raise _RegisterGone(f"ФН cannot sign: {exc}") from exc
                await self._move(
                    job, JobState.FAILED, error=f"the register refused: {exc}", fence=register
                )
                return None
        else:  # pragma: no cover - the loop always breaks or returns
            raise AssertionError("unreachable")
        await self._step("signed", job.id)
        following = await self._next_job(register, keeper)
        claim = (
            self._shared
            and self._outage is None
            and keeper.ready_for_receipt(register)
            and register.config.id not in self._shedding
        )
        started = None
        try:
            started = await self._conclude(
                register,
                job,
                marked,
                fiscalized,
                JobState.FISCALIZED,
                following=following,
                claim=claim,
            )
        finally:
            if following is not None and started is None:  # still queued in the journal
                self._groups[(following.tenant, body_group(following.body))].put(
                    following, front=True
                )
        await self._step("journaled", job.id)
        return started

    async def _next_job(self, register: RegisterView, keeper: ShiftKeeper) -> Job | None:
        """The group's next job, to journal its intent in the commit of this one's result.

        Only when one is waiting now and nothing else has to come first: the journal is
        fine, admission lets it keep its slot (engine.admission), and the shift needs
        no work (an open or close would come between the commit of the intent and the job's
        first byte).
        """
        if self._shared or self._outage is not None or not keeper.ready_for_receipt(register):
            return None  # on a shared journal the result's commit claims the next job
        if not self.admission.keep((register.config.tenant, register.config.group)):
            return None  # it gives its slot back: the limit fell, or another group waits
        job = self._groups[(register.config.tenant, register.config.group)].take_nowait()
        if job is not None:
            await self._step("taken", job.id)
            await self._step("sending", job.id)
        return job

    async def _conclude(
        self,
        register: RegisterView,
        job: Job,
        sent: Receipt,
        fiscalized: Fiscalized,
        to: JobState,
        *,
        contiguous: bool = True,
        following: Job | None = None,
        claim: bool = False,
    ) -> Job | None:
        """Check and journal the ФН's result; with ``following``, that job's intent in the
        same commit (:meth:`Journal.record_result_and_send`), and it is returned ``sent``;
        with ``claim``, the group's next job claimed in that commit likewise."""
        checked = check_signed(
            fiscalized.document,
            sent=sent,
            fd_number=fiscalized.fd_number,
            fn_number=register.fn_number,
            previous_fd=register.last_fd if contiguous else None,
            printed_sign=fiscalized.printed_sign,
            verifier=self.config.verifier,
        )
        if contiguous or register.last_fd is None or fiscalized.fd_number > register.last_fd:
            register.last_fd = fiscalized.fd_number
        fn_number = register.fn_number or ""
        if checked.signed is not None and checked.signed.fiscal is not None:
            fn_number = checked.signed.fiscal.fn_number
        result = FiscalResult(
            job_id=job.id,
            register_id=register.config.id,
            fn_number=fn_number,
            fd_number=fiscalized.fd_number,
            fiscal_sign=checked.fiscal_sign,
            printed_sign=checked.printed_sign,
            qr=checked.qr,
            document=fiscalized.document,
            fiscalized_at=self.config.wall_clock(),
        )
        error = None
        if checked.problems:
            error = "the signed receipt failed its checks: " + "; ".join(checked.problems)
            to = JobState.FAILED
        started = None
        lease = self._fence(register)
        try:
            if following is not None:
                job, started = await self.journal.record_result_and_send(
                    result, to, following.id, error=error, lease=lease
                )
            elif claim:
                config = register.config
                job, started = await self.journal.record_result_and_claim(
                    result, to, config.tenant, config.group, error=error, lease=lease
                )
            else:
                job = await self.journal.record_result(result, to, error=error, lease=lease)
        except DuplicateDocument as exc:  # the register answered with another job's document
            await self._alert(
                "alert.duplicate_document", str(exc), register=register, job_id=job.id
            )
            await self._move(
                job,
                JobState.FAILED,
                error=f"the register's answer is wrong: {exc}",
                fence=register,
            )
            return None
        if error is not None:
            await self._alert("alert.sign_check", error, register=register, job_id=job.id)
        self._finished(job, result)
        if started is not None:
            self._tell(started)
        if started is not None and claim:
            await self._step("taken", started.id)
            await self._step("sending", started.id)
        return started

    # --- recovery ------------------------------------------------------------------------------

    async def _recover(self, register: RegisterView, driver: RegisterDriver) -> None:
        """Decide every job this register left sent or in doubt, from its ФН archive."""
        doubtful = [
            job
            for job in await self.journal.jobs_in([JobState.SENT, JobState.IN_DOUBT])
            if job.register_id == register.config.id
        ]
        if not doubtful:
            return
        # A receipt left open by the lost session can never be signed now: drop it first, so
        # the archive read below is final.
        await driver.cancel_receipt()
        status = await driver.status()
        register.observe(status)
        reader = ArchiveReader(driver)
        taken: dict[int, str] = {}
        group = self._groups[(register.config.tenant, register.config.group)]
        for job in doubtful:
            if job.state is JobState.SENT:
                job = await self._move(
                    job, JobState.IN_DOUBT, error="the engine stopped mid-send", fence=register
                )
            receipt = body_receipt(job.body)
            sent = mark(receipt, job.id)
            after = job.fd_before if job.fd_before is not None else 0
            found = await reader.find(job.id, sent, after, status.last_fd, taken)
            if found is None:
                job = await self._move(job, JobState.QUEUED, error=None, fence=register)
                await self._event(
                    "recovery.absent",
                    f"job {job.id} is not in the ФН: sent again",
                    register,
                    job.id,
                )
                if self._shared:
                    group.nudge()  # the oldest job of its group in the journal: claimed first
                else:
                    group.put(job, front=True)
                continue
            taken[found.fd_number] = job.id
            await self._event(
                "recovery.found",
                f"job {job.id} is FD {found.fd_number} in the ФН",
                register,
                job.id,
            )
            await self._conclude(
                register,
                job,
                sent,
                Fiscalized(found.fd_number, found.document, None),
                JobState.RESOLVED,
                contiguous=False,
            )
        register.last_fd = max(register.last_fd or 0, status.last_fd)

    # --- bookkeeping ---------------------------------------------------------------------------

    def _enqueue(self, job: Job, group_name: str | None = None) -> None:
        """Queue a job (``group_name`` if the caller knows it: no parse of its body)."""
        group = self._groups[(job.tenant, group_name or body_group(job.body))]
        if self._shared:  # queued in the journal: wake the group's workers to claim it
            group.nudge()
        else:
            group.put(job)

    async def _move(
        self,
        job: Job,
        to: JobState,
        *,
        register: RegisterView | None = None,
        error: str | None = None,
        fd_before: int | None = None,
        fence: RegisterView | None = None,
        expect: JobState | None = None,
    ) -> Job:
        """Journal a move and tell it; ``fence``: a move on that register's path, refused
        (:class:`LeaseLost`) once this engine's lease of it is stale."""
        moved = await self.journal.move(
            job.id,
            to,
            register_id=None if register is None else register.config.id,
            error=error,
            fd_before=fd_before,
            lease=self._fence(fence or register),
            expect=expect,
        )
        if to in FINAL_STATES:
            self._finished(moved, None)
        else:
            self._tell(moved)
        return moved

    def _tell(self, job: Job) -> None:
        """Tell the front doors a job's new state (its ``JobEvent``), if one listens."""
        if self._on_event is not None:
            self._on_event(JobEvent(job))

    def _finished(self, job: Job, result: FiscalResult | None) -> None:
        if not self._shared or job.id in self._watched:  # else another engine counted it
            self._pending[job.tenant] = max(0, self._pending.get(job.tenant, 0) - 1)
            self._watched.discard(job.id)
        if self._on_event is not None:
            self._on_event(JobEvent(job, result))
        waiter = self._waiters.pop(job.id, None)
        if waiter is not None:
            waiter.set()

    async def _step(self, step: str, job_id: str) -> None:
        if self._checkpoint is not None:
            await self._checkpoint(step, job_id)

    async def _mark(self, register: RegisterView, state: str, message: str) -> None:
        if register.state == state and state != "out":
            return
        was = register.state
        register.state = state
        config = register.config
        await self.journal.save_register(
            RegisterRow(
                config.id,
                config.tenant,
                config.group,
                config.protocol,
                config.address,
                register.fn_number,
                state,
            )
        )
        if state in ("out", "exhausted", "journal_behind") and was != state:
            await self._alert(f"alert.register_{state}", message, register=register)
        else:
            await self._event(f"register.{state}", message, register, None)

    def _keeper_alert(self, tenant: str) -> Callable[[str, str], Awaitable[None]]:
        async def alert(kind: str, message: str) -> None:
            await self._alert(kind, message, tenant=tenant)

        return alert

    async def _alert(
        self,
        kind: str,
        message: str,
        *,
        register: RegisterView | None = None,
        job_id: str | None = None,
        tenant: str | None = None,
    ) -> None:
        event = Event(
            kind,
            message,
            self.config.wall_clock(),
            tenant if register is None else register.config.tenant,
            None if register is None else register.config.id,
            job_id,
        )
        self._notify_alert(event)
        await self._record(event)

    def _notify_alert(self, event: Event) -> None:
        self.alerts.append(event)
        if self._on_alert is not None:
            self._on_alert(event)

    async def _event(
        self, kind: str, message: str, register: RegisterView | None, job_id: str | None
    ) -> None:
        await self._record(
            Event(
                kind,
                message,
                self.config.wall_clock(),
                None if register is None else register.config.tenant,
                None if register is None else register.config.id,
                job_id,
            )
        )

    async def _record(self, event: Event) -> None:
        """Journal an event; one the journal cannot take now is kept until it can."""
        try:
            await self.journal.record_event(event)
        except JournalUnavailable:
            self._unjournaled.append(event)
            raise


def problems_of(exc: SubmitError) -> list[dict[str, Any]]:
    """A submit error as ``{code, message, path}`` entries (the service's error shape)."""
    if isinstance(exc, ValidationFailed):
        return [{"code": p.code, "message": p.message, "path": p.path} for p in exc.problems]
    return [{"code": exc.code, "message": str(exc), "path": exc.path}]


__all__ = [
    "Busy",
    "Conflict",
    "Engine",
    "EngineConfig",
    "Health",
    "JobEvent",
    "JournalBehind",
    "NotCancellable",
    "ReceiptJsonError",
    "RegisterConfig",
    "SubmitError",
    "TenantConfig",
    "Unavailable",
    "UnknownGroup",
    "UnknownTenant",
    "ValidationFailed",
]
