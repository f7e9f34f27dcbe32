"""The journal (журнал): where accepted jobs and their fiscal results become durable.

A job is acknowledged only after its commit, so an accepted job survives a crash at any point.
The embedded default is SQLite in WAL mode with ``synchronous=FULL``: every commit is fsynced.
One writer thread owns the write connection and commits in groups — it drains every request
that queued while the previous commit was syncing and runs them in one transaction — so many
concurrent jobs share one fsync (engineering.md §6.4 measured ~58k durable rows/s this way,
against ~2.6k/s with one ``to_thread`` call per row). trio tasks wait on a ``trio.Event`` that
the writer sets through the run's ``TrioToken`` once the group is on disk.

:class:`Journal` is the seam: the PostgreSQL journal (``engine.journal_pg``) for installations
larger than one machine implements the same methods with the same group-commit design over
psycopg's synchronous API; :func:`open_journal` opens either by what the config names.

Job states (the job state machine)::

    accepted → queued → sent → fiscalized
                    ↘    ↑  ↘ failed
                     failed └ (refused with no effect: back to the queue)
                             ↘ in_doubt → resolved (found in the ФН archive)
                                        → failed | queued (proven absent: sent again)

``(tenant, external_id)`` is unique forever: a repeat returns the first job and its current
state; a repeat with a different body is a :class:`ConflictError` that names the conflict.

A commit is all or nothing for its group: when the store cannot commit (a full disk, an I/O
error, a read-only file) every request of the group hears :class:`JournalUnavailable` and none
of them is kept; the writer thread lives on, and the next group tries again. :meth:`probe`
is the smallest durable write, for whoever waits to learn that commits work again.

Dedupe is only as good as the journal's memory, so a journal is checked before it is used
(:func:`open_checked`): a new one is made beside its path and moved into place whole, so an
empty file is never Kassa's; an empty, damaged or foreign file is refused with its path named.
The registers' ФН are the other memory: the engine compares each with the journal when it
connects (see ``engine.engine``), and ``adopted`` keeps the ФН an operator let a journal start
over on (:func:`adopt`, ``kassa journal adopt``).
"""

from __future__ import annotations

import enum
import hashlib
import os
import queue
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

import attrs
import trio

from engine.reports import ReceiptRecord

T = TypeVar("T")


class JobState(enum.Enum):
    """Where a job stands (состояние задания)."""

    ACCEPTED = "accepted"  # journaled, not yet scheduled
    QUEUED = "queued"  # waiting for a free register of its group
    SENT = "sent"  # the intent is journaled: the document is going to the register
    FISCALIZED = "fiscalized"  # the ФН signed it and the result is journaled
    FAILED = "failed"  # refused before fiscalization, or proven not fiscalized
    IN_DOUBT = "in_doubt"  # the answer was lost after sending: recovery must decide
    RESOLVED = "resolved"  # recovery decided an in-doubt job (its result row says how)


#: The allowed moves of the job state machine.
TRANSITIONS: frozenset[tuple[JobState, JobState]] = frozenset(
    {
        (JobState.ACCEPTED, JobState.QUEUED),
        (JobState.ACCEPTED, JobState.FAILED),
        (JobState.QUEUED, JobState.SENT),
        (JobState.QUEUED, JobState.FAILED),
        (JobState.SENT, JobState.FISCALIZED),
        (JobState.SENT, JobState.FAILED),
        (JobState.SENT, JobState.IN_DOUBT),
        (JobState.SENT, JobState.QUEUED),  # the register refused with no effect (ФН full)
        (JobState.IN_DOUBT, JobState.RESOLVED),
        (JobState.IN_DOUBT, JobState.FISCALIZED),
        (JobState.IN_DOUBT, JobState.FAILED),
        (JobState.IN_DOUBT, JobState.QUEUED),
    }
)
FINAL_STATES = frozenset({JobState.FISCALIZED, JobState.FAILED, JobState.RESOLVED})


class JournalError(Exception):
    """The journal could not do what was asked (a closed journal, an illegal state move)."""


class JournalUnavailable(JournalError):
    """The store cannot commit now (a full disk, an I/O error): nothing of the request was kept.

    ``cause`` names the store's error (``disk I/O error (SQLITE_IOERR_WRITE)``); it never
    quotes a job's body. A later commit may succeed: the fault is the store's, not the request's.
    """

    def __init__(self, cause: str) -> None:
        self.cause = cause
        super().__init__(f"commit failed: {cause}")


class JournalUnusable(JournalError):
    """The journal file cannot be used as it is; the message names its path and why."""


class DuplicateDocument(JournalError):
    """A result names an (ФН, FD) already journaled for another job: one receipt, two jobs."""


class LeaseLost(JournalError):
    """A write on a register's path carried a lease token that is no longer the register's
    (аренда ККТ): another engine has taken the register since. Nothing of it was kept; the
    writer's worker must stop using the register."""


class ConflictError(JournalError):
    """A repeated (tenant, external_id) with a different body than the first."""

    def __init__(self, tenant: str, external_id: str, job_id: str) -> None:
        self.tenant = tenant
        self.external_id = external_id
        self.job_id = job_id
        super().__init__(
            f"external_id {external_id!r} of tenant {tenant!r} was already accepted as job "
            f"{job_id} with a different body"
        )


@attrs.frozen
class Job:
    """A journaled job."""

    id: str
    tenant: str
    external_id: str
    body: bytes  # the submitted receipt, as the intake serialised it
    state: JobState
    register_id: str | None
    error: str | None
    created: float
    updated: float
    fd_before: int | None = None  # the ФН's last FD when the job was sent: where recovery looks


@attrs.frozen
class Lease:
    """One engine's right to use one register (аренда ККТ) until ``expires_at``.

    ``token`` is the fencing token: it grows by one each time the register changes hands (or
    is taken again after it expired), and every write that claims or concludes a job on the
    register's path carries it, so a writer whose lease was taken over is refused
    (:class:`LeaseLost`). ``expires_at`` is unix time by the store's clock (PostgreSQL's
    ``now()``), never an engine's: the holder times itself by its own monotonic clock.
    """

    register_id: str
    owner: str  # the engine's id, kassa.toml's [service] engine_id
    token: int
    expires_at: float


@attrs.frozen
class ReceiptQuery:
    """A page of a tenant's jobs, newest first, as the cabinet lists them: each filter is
    optional; ``before`` is the (created, id) of the last row of the previous page."""

    start: float | None = None  # accepted at or after (unix time)
    end: float | None = None  # accepted before
    state: str | None = None  # a JobState value
    external_id: str | None = None
    total: int | None = None  # 1020, kopecks
    fd_number: int | None = None
    before: tuple[float, str] | None = None
    limit: int = 50


@attrs.frozen
class ReceiptRow:
    """One line of the cabinet's receipts list: a job, its sum, and its FD once signed."""

    job_id: str
    external_id: str
    state: str
    created: float
    error: str | None
    operation: int | None  # 1054
    total: int | None  # 1020, kopecks
    register_id: str | None
    fd_number: int | None
    fiscalized_at: float | None


@attrs.frozen
class Accepted:
    """The answer to a submit: the job and whether it was a repeat of an earlier one."""

    job: Job
    duplicate: bool


@attrs.frozen
class FiscalResult:
    """What the ФН returned for a job (результат фискализации), kept as received."""

    job_id: str
    register_id: str
    fn_number: str
    fd_number: int
    fiscal_sign: bytes  # 1077, 6 bytes as received
    printed_sign: int  # the printed ФП
    qr: str
    document: bytes  # the document TLV as the ФН signed it, never re-serialised
    fiscalized_at: float


#: What a shared journal tells every engine (:meth:`Journal.watch`): ``("job", id)`` a job
#: changed state, ``("queued", "tenant\tgroup")`` a job waits in that group, ``("resync", "")``
#: notices may have been missed (a reconnect): look at everything again.
Notice = tuple[str, str]


class Journal(Protocol):
    """The durable store of jobs and results: :class:`SqliteJournal`, or
    ``engine.journal_pg.PostgresJournal`` (:func:`open_journal` picks by the configured target).

    ``shared``: whether several engine processes may use the store at once (PostgreSQL); they
    then lease registers and claim jobs in it, see ``engine.engine``.
    """

    shared: bool

    async def accept(
        self, tenant: str, external_id: str, body: bytes, *, state: JobState = JobState.ACCEPTED
    ) -> Accepted: ...

    async def accept_many(
        self, jobs: Sequence[tuple[str, str, bytes]], *, state: JobState = JobState.ACCEPTED
    ) -> list[Accepted | ConflictError]: ...

    async def move(
        self,
        job_id: str,
        to: JobState,
        *,
        register_id: str | None = None,
        error: str | None = None,
        fd_before: int | None = None,
        lease: Lease | None = None,
        expect: JobState | None = None,
    ) -> Job: ...

    async def move_many(self, job_ids: Sequence[str], to: JobState) -> list[Job]: ...

    async def record_result(
        self,
        result: FiscalResult,
        to: JobState,
        *,
        error: str | None = None,
        lease: Lease | None = None,
    ) -> Job: ...

    async def record_result_and_send(
        self,
        result: FiscalResult,
        to: JobState,
        next_job_id: str,
        *,
        error: str | None = None,
        lease: Lease | None = None,
    ) -> tuple[Job, Job]: ...

    async def claim_next(
        self, tenant: str, group: str, register_id: str, fd_before: int | None, lease: Lease | None
    ) -> Job | None: ...

    async def record_result_and_claim(
        self,
        result: FiscalResult,
        to: JobState,
        tenant: str,
        group: str,
        *,
        error: str | None = None,
        lease: Lease | None = None,
    ) -> tuple[Job, Job | None]: ...

    async def acquire_lease(self, register_id: str, owner: str, seconds: float) -> Lease | None: ...

    async def renew_lease(self, lease: Lease, seconds: float) -> Lease | None: ...

    async def release_lease(self, lease: Lease) -> bool: ...

    async def leases(self) -> list[Lease]: ...

    async def engine_alive(self, owner: str, seconds: float) -> int: ...

    async def watch(self, on_notices: Callable[[Sequence[Notice]], None]) -> None: ...

    async def job(self, job_id: str) -> Job | None: ...

    async def job_by_external_id(self, tenant: str, external_id: str) -> Job | None: ...

    async def result(self, job_id: str) -> FiscalResult | None: ...

    async def jobs_in(self, states: Sequence[JobState]) -> list[Job]: ...

    async def save_tenant(self, tenant: str, name: str = "") -> None: ...

    async def save_register(self, register: RegisterRow) -> None: ...

    async def registers(self, tenant: str | None = None) -> list[RegisterRow]: ...

    async def shift_opened(self, shift: ShiftRow) -> None: ...

    async def shift_closed(
        self, fn_number: str, number: int, closed_at: float, close_fd: int, document: bytes
    ) -> None: ...

    async def shifts(
        self, tenant: str | None = None, register_id: str | None = None
    ) -> list[ShiftRow]: ...

    async def last_fd(self, fn_number: str) -> int | None: ...

    async def record_event(self, event: Event) -> None: ...

    async def events(self, kind: str | None = None, tenant: str | None = None) -> list[Event]: ...

    async def fiscalized(
        self,
        tenant: str,
        *,
        start: float = 0.0,
        end: float = float("inf"),
        register_id: str | None = None,
    ) -> list[ReceiptRecord]: ...

    async def jobs_of(self, tenant: str, *, limit: int = 100, after: str = "") -> list[Job]: ...

    async def receipts(self, tenant: str, query: ReceiptQuery) -> list[ReceiptRow]: ...

    async def probe(self) -> None: ...

    async def add_delivery(self, job_id: str, kind: str, url: str) -> Delivery: ...

    async def due_deliveries(self, now: float, limit: int) -> list[Delivery]: ...

    async def next_delivery_at(self) -> float | None: ...

    async def delivery_tried(
        self,
        delivery: Delivery,
        state: DeliveryState,
        next_at: float,
        error: str,
        alert: Event | None = None,
    ) -> Delivery: ...

    async def deliveries(
        self, job_id: str | None = None, state: DeliveryState | None = None
    ) -> list[Delivery]: ...

    async def put_record(self, record: TenantRecord) -> None: ...

    async def drop_record(self, tenant: str, kind: str, key: str) -> bool: ...

    async def records(self, kind: str, tenant: str | None = None) -> list[TenantRecord]: ...


class DeliveryState(enum.Enum):
    """Where an outbound delivery of a job's outcome stands (a callback, later an e-mail)."""

    PENDING = "pending"  # to be sent once its job is final, at or after next_at
    DELIVERED = "delivered"  # the receiver took it (HTTP 2xx)
    DEAD = "dead"  # every attempt failed; the job shows it and an alert was raised
    SKIPPED = "skipped"  # nothing to send: a buyer's e-mail or SMS of a job without a receipt


@attrs.frozen
class Delivery:
    """One outbound delivery of a job's final state, journaled before it is ever tried.

    It is written when the job is accepted (or at a repeat of its submit), so that it is
    durable before the job can end; the sender takes it once the job is final, so a crash
    anywhere neither loses it nor, once ``delivered`` is journaled, sends it again.
    """

    job_id: str
    kind: str  # whose format it goes out in: "atol" (later "komtet", ...)
    url: str
    state: DeliveryState = DeliveryState.PENDING
    attempts: int = 0
    next_at: float = 0.0  # unix time of the next attempt
    last_error: str = ""
    updated: float = 0.0


@attrs.frozen
class RegisterRow:
    """A register as the journal knows it (ККТ): whose it is, how it is reached, its state."""

    id: str
    tenant: str
    group_code: str
    protocol: str
    address: str
    fn_number: str | None = None  # 1041 of the ФН last seen in it
    state: str = "unknown"  # ready | out | exhausted | journal_behind | unknown


@attrs.frozen
class ShiftRow:
    """One shift (смена, 1038) of one ФН, with the close-shift report (5) once it is closed."""

    register_id: str
    tenant: str
    fn_number: str
    number: int
    opened_at: float  # unix time the engine saw it opened
    open_fd: int | None
    closed_at: float | None = None
    close_fd: int | None = None
    close_document: bytes | None = None  # the report as the ФН signed it


@attrs.frozen
class TenantRecord:
    """One thing a tenant keeps in its cabinet (a product, its branding, an API key), as JSON.

    The journal is the service's one durable store, so what a merchant edits in the cabinet
    lives beside its receipts and moves with them; each owner module gives ``value`` its shape.
    """

    tenant: str
    kind: str  # whose: "product", "branding", "credential", ...
    key: str  # unique within (tenant, kind)
    value: str  # JSON text
    updated: float = attrs.field(factory=time.time)


@attrs.frozen
class Event:
    """Something an operator should be able to read later: an alert, a recovery, a shift."""

    kind: str  # alert.* for alerts
    message: str
    ts: float = attrs.field(factory=time.time)
    tenant: str | None = None
    register_id: str | None = None
    job_id: str | None = None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS registers (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    group_code TEXT NOT NULL,
    protocol TEXT NOT NULL,
    address TEXT NOT NULL,
    fn_number TEXT,
    state TEXT NOT NULL DEFAULT 'unknown'
);
CREATE TABLE IF NOT EXISTS shifts (
    register_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    fn_number TEXT NOT NULL,
    number INTEGER NOT NULL,
    opened_at REAL NOT NULL,
    open_fd INTEGER,
    closed_at REAL,
    close_fd INTEGER,
    close_document BLOB,
    PRIMARY KEY (fn_number, number)
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    tenant TEXT,
    register_id TEXT,
    job_id TEXT,
    message TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS events_by_kind ON events (kind, seq);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    external_id TEXT NOT NULL,
    body BLOB NOT NULL,
    body_hash BLOB NOT NULL,
    state TEXT NOT NULL,
    register_id TEXT,
    error TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    fd_before INTEGER,
    UNIQUE (tenant, external_id)
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state);
CREATE INDEX IF NOT EXISTS jobs_by_tenant ON jobs (tenant, id);
CREATE INDEX IF NOT EXISTS jobs_by_tenant_time ON jobs (tenant, created, id);
CREATE TABLE IF NOT EXISTS results (
    job_id TEXT PRIMARY KEY,
    register_id TEXT NOT NULL,
    fn_number TEXT NOT NULL,
    fd_number INTEGER NOT NULL,
    fiscal_sign BLOB NOT NULL,
    printed_sign INTEGER NOT NULL,
    qr TEXT NOT NULL,
    document BLOB NOT NULL,
    fiscalized_at REAL NOT NULL,
    UNIQUE (fn_number, fd_number)
);
CREATE INDEX IF NOT EXISTS results_by_time ON results (fiscalized_at);
CREATE INDEX IF NOT EXISTS results_by_fd ON results (fd_number);
CREATE TABLE IF NOT EXISTS deliveries (
    job_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    url TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_at REAL NOT NULL,
    last_error TEXT NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (job_id, kind)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (state, next_at);
CREATE TABLE IF NOT EXISTS probes (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    probed REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tenant_records (
    tenant TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (kind, tenant, key)
);
CREATE TABLE IF NOT EXISTS adopted (
    fn_number TEXT PRIMARY KEY,
    last_fd INTEGER NOT NULL,
    adopted_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
    register_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    token INTEGER NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS engines (
    engine_id TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
);
"""

#: SQLite's primary result codes that say the store, not the statement, failed: busy, locked,
#: out of memory, read-only, I/O error, corrupt, full, cannot open, protocol, not a database.
_STORE_FAILURES = frozenset({5, 6, 7, 8, 10, 11, 13, 14, 15, 26})


def _store_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is the store failing (retry later) rather than a request's own fault."""
    if not isinstance(exc, sqlite3.Error) or isinstance(exc, sqlite3.IntegrityError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    return code is None or code & 0xFF in _STORE_FAILURES


def _describe(exc: BaseException) -> str:
    """A store error as one line: SQLite's message and its code name, never a row's data."""
    name = getattr(exc, "sqlite_errorname", None)
    return f"{exc} ({name})" if name else f"{type(exc).__name__}: {exc}"


#: ``PRAGMA application_id`` of a Kassa journal ("Kass"): an SQLite file with another id is
#: another program's.
APPLICATION_ID = 0x4B617373
#: ``PRAGMA user_version``: the schema this Kassa writes. Version 0 is a journal from before
#: versions (no ``adopted``, ``deliveries`` or ``probes`` table); it is upgraded when opened.
#: Version 2 added ``tenant_records``; version 3 ``leases`` and version 4 ``engines`` (one
#: contract with PostgreSQL's).
SCHEMA_VERSION = 4
#: The tables each version added: a journal of an older version may lack them.
_ADDED_IN = {
    1: frozenset({"adopted", "deliveries", "probes"}),
    2: frozenset({"tenant_records"}),
    3: frozenset({"leases"}),
    4: frozenset({"engines"}),
}

_JOB_COLUMNS = (
    "id, tenant, external_id, body, state, register_id, error, created, updated, fd_before"
)


def _job(row: Sequence[Any]) -> Job:
    return Job(
        id=row[0],
        tenant=row[1],
        external_id=row[2],
        body=row[3],
        state=JobState(row[4]),
        register_id=row[5],
        error=row[6],
        created=row[7],
        updated=row[8],
        fd_before=row[9],
    )


@attrs.define
class _Request:
    """One unit of work for the writer thread and where its outcome goes."""

    work: Callable[[sqlite3.Connection], Any]
    done: trio.Event
    outcome: Any = None
    error: BaseException | None = None


class SqliteJournal:
    """The SQLite journal: WAL, ``synchronous=FULL``, one writer thread, group commit."""

    shared = False  # one engine process: it needs no leases

    #: The most requests one transaction takes; a larger backlog waits for the next commit.
    MAX_GROUP = 256
    #: Requests of every journal in this process waiting for their commit. Simulated-time
    #: tests read it: a task waiting for the writer thread is not idle, whatever trio sees.
    waiting: ClassVar[int] = 0

    def __init__(self, path: Path, token: trio.lowlevel.TrioToken) -> None:
        self.path = path
        self._token = token
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._closed = False
        self.commits = 0  # transactions committed, for benchmarks and tests
        self.requests = 0  # requests carried by them
        self.failed_commits = 0  # groups the store could not commit
        #: A fault hook for tests: called in the writer thread just before each COMMIT with
        #: the rows the group changed; a ``sqlite3.Error`` it raises fails the commit as a full
        #: disk would.
        self.before_commit: Callable[[int], None] | None = None
        self._failing = False  # the last commit failed: give the WAL back before the next

    @classmethod
    @asynccontextmanager
    async def open(cls, path: str | Path) -> AsyncIterator[SqliteJournal]:
        """Open (creating if needed) the journal at ``path`` for the life of the block."""
        journal = cls(Path(path), trio.lowlevel.current_trio_token())
        cls.waiting += 1
        try:
            connection = await trio.to_thread.run_sync(journal._connect)
        finally:
            cls.waiting -= 1
        writer = threading.Thread(
            target=journal._writer, args=(connection,), name="kassa-journal", daemon=True
        )
        writer.start()
        try:
            yield journal
        finally:
            journal._closed = True
            journal._queue.put(None)
            cls.waiting += 1
            try:
                await trio.to_thread.run_sync(writer.join)
            finally:
                cls.waiting -= 1

    def _connect(self) -> sqlite3.Connection:
        connection = open_checked(self.path)
        # Indexes added since a journal was made (the cabinet's list by time): additive, cheap
        # when present, and harmless to a Kassa that does not know them.
        connection.execute(
            "CREATE INDEX IF NOT EXISTS jobs_by_tenant_time ON jobs (tenant, created, id)"
        )
        connection.execute("CREATE INDEX IF NOT EXISTS results_by_fd ON results (fd_number)")
        return connection

    # --- the writer thread ------------------------------------------------------------------------

    def _writer(self, connection: sqlite3.Connection) -> None:
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                group = [first]
                stop = False
                while len(group) < self.MAX_GROUP:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        stop = True
                        break
                    group.append(more)
                self._commit(connection, group)
                if stop:
                    return
        finally:
            connection.close()

    def _commit(self, connection: sqlite3.Connection, group: list[_Request]) -> None:
        """Run a group in one transaction; every waiting task is woken, whatever happens.

        A request's own error (an illegal move, a conflict) is handed back to it alone; a
        store failure anywhere fails the whole group, so a commit is all or nothing.
        """
        try:
            if self._failing:
                self._give_back_wal(connection)
            connection.execute("BEGIN IMMEDIATE")
            changes = connection.total_changes
            for request in group:
                connection.execute("SAVEPOINT request")
                try:
                    request.outcome = request.work(connection)
                except Exception as exc:
                    if _store_failure(exc):
                        raise
                    request.error = exc  # handed back to the waiting task, which re-raises it
                    connection.execute("ROLLBACK TO request")
                connection.execute("RELEASE request")
            if self.before_commit is not None:
                self.before_commit(connection.total_changes - changes)
            connection.execute("COMMIT")
            self._failing = False
        except Exception as exc:  # nothing of the group is durable: every task hears it
            _roll_back(connection)
            self._failing = True
            self.failed_commits += 1
            cause = _describe(exc)
            for request in group:
                failure = JournalUnavailable(cause) if _store_failure(exc) else JournalError(cause)
                failure.__cause__ = exc
                request.error = failure
        finally:
            self.commits += 1
            self.requests += len(group)
            self._token.run_sync_soon(_wake, group)

    @staticmethod
    def _give_back_wal(connection: sqlite3.Connection) -> None:
        """After a failed commit, move the WAL into the database and truncate it: on a full
        disk (or a file-size limit) that frees the room the next commit needs."""
        with suppress(sqlite3.Error):  # the commit that follows says whether the store works
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise JournalError("the journal is closed")
        request = _Request(work, trio.Event())
        SqliteJournal.waiting += 1
        try:
            self._queue.put(request)
            await request.done.wait()
        finally:
            SqliteJournal.waiting -= 1
        if request.error is not None:
            raise request.error
        outcome: T = request.outcome
        return outcome

    # --- jobs -------------------------------------------------------------------------------------

    async def accept(
        self, tenant: str, external_id: str, body: bytes, *, state: JobState = JobState.ACCEPTED
    ) -> Accepted:
        """Journal a new job, or return the first job for a repeat of (tenant, external_id).

        ``state``: ``queued`` journals it straight into its queue (see :meth:`accept_many`).
        """
        check_entry_state(state)
        return await self._run(lambda c: _accept(c, tenant, external_id, body, state))

    async def accept_many(
        self, jobs: Sequence[tuple[str, str, bytes]], *, state: JobState = JobState.ACCEPTED
    ) -> list[Accepted | ConflictError]:
        """Journal a batch of jobs in one commit; each repeat or conflict is answered alone.

        A conflict in the batch is returned as the exception in its place, so that one bad
        entry does not refuse the others. ``state`` ``queued`` journals the new jobs straight
        into their queue: one commit at intake instead of a second one to move them there.
        """
        check_entry_state(state)
        return await self._run(lambda c: [_accept_or_conflict(c, *job, state) for job in jobs])

    async def move(
        self,
        job_id: str,
        to: JobState,
        *,
        register_id: str | None = None,
        error: str | None = None,
        fd_before: int | None = None,
        lease: Lease | None = None,
        expect: JobState | None = None,
    ) -> Job:
        """Move a job along the state machine; an illegal move is a JournalError.

        With ``lease``, only while it is still the register's (else :class:`LeaseLost`); with
        ``expect``, only from that state (a cancel moves a job only while it is queued).
        """

        def work(connection: sqlite3.Connection) -> Job:
            _fence(connection, lease)
            return _move(connection, job_id, to, register_id, error, fd_before, expect)

        return await self._run(work)

    async def move_many(self, job_ids: Sequence[str], to: JobState) -> list[Job]:
        """Move many jobs in one transaction (a batch just accepted goes to its queue at once)."""
        return await self._run(lambda c: [_move_plain(c, job_id, to) for job_id in job_ids])

    async def record_result(
        self,
        result: FiscalResult,
        to: JobState,
        *,
        error: str | None = None,
        lease: Lease | None = None,
    ) -> Job:
        """Keep the ФН's result and move the job in the same transaction.

        ``error`` with a result is a receipt the ФН signed whose checks failed: it is kept,
        and the job says why it is not trusted. ``lease``: see :meth:`move`.
        """

        def work(connection: sqlite3.Connection) -> Job:
            _fence(connection, lease)
            return _record_result(connection, result, to, error)

        return await self._run(work)

    async def record_result_and_send(
        self,
        result: FiscalResult,
        to: JobState,
        next_job_id: str,
        *,
        error: str | None = None,
        lease: Lease | None = None,
    ) -> tuple[Job, Job]:
        """:meth:`record_result`, and the register's next job moved to ``sent`` with
        ``fd_before`` the result's FD, in one transaction: one commit a receipt.

        All or nothing. Before the commit the result's job is still ``sent`` (recovery finds
        its receipt in the ФН archive) and the next job is still ``queued`` (no byte of it has
        gone to the register); after it, the next job's intent is durable before its first
        byte, as :meth:`move` to ``sent`` would have made it. A refusal of either (a
        :class:`DuplicateDocument`, an illegal move) rolls back both.
        """

        def work(connection: sqlite3.Connection) -> tuple[Job, Job]:
            _fence(connection, lease)
            done = _record_result(connection, result, to, error)
            started = _move(
                connection, next_job_id, JobState.SENT, result.register_id, None, result.fd_number
            )
            return done, started

        return await self._run(work)

    async def claim_next(
        self, tenant: str, group: str, register_id: str, fd_before: int | None, lease: Lease | None
    ) -> Job | None:
        """Take the oldest ``queued`` job of ``tenant``'s ``group`` for ``register_id``: it is
        moved to ``sent`` with ``fd_before`` in the same transaction (its intent). None when
        the group has no job waiting. The writer thread serialises claims here; PostgreSQL's
        does it with ``FOR UPDATE SKIP LOCKED`` across engines."""

        def work(connection: sqlite3.Connection) -> Job | None:
            _fence(connection, lease)
            return _claim(connection, tenant, group, register_id, fd_before)

        return await self._run(work)

    async def record_result_and_claim(
        self,
        result: FiscalResult,
        to: JobState,
        tenant: str,
        group: str,
        *,
        error: str | None = None,
        lease: Lease | None = None,
    ) -> tuple[Job, Job | None]:
        """:meth:`record_result` and :meth:`claim_next` (``fd_before`` the result's FD) in one
        transaction: one commit a receipt when the journal, not the engine, keeps the queue."""

        def work(connection: sqlite3.Connection) -> tuple[Job, Job | None]:
            _fence(connection, lease)
            done = _record_result(connection, result, to, error)
            started = _claim(connection, tenant, group, result.register_id, result.fd_number)
            return done, started

        return await self._run(work)

    # --- leases -------------------------------------------------------------------------------

    async def acquire_lease(self, register_id: str, owner: str, seconds: float) -> Lease | None:
        """Take the register's lease for ``seconds`` if it is free, expired or ``owner``'s own
        (an engine whose worker stopped takes it again at once), with a token one above the
        last; None while another holder's lease runs. Engine ids must be unique."""

        def work(connection: sqlite3.Connection) -> Lease | None:
            row = connection.execute(
                f"INSERT INTO leases VALUES (?, ?, 1, {_NOW} + ?) ON CONFLICT (register_id) DO "
                "UPDATE SET owner = excluded.owner, token = token + 1, "
                "expires_at = excluded.expires_at "
                f"WHERE expires_at <= {_NOW} OR owner = excluded.owner "
                "RETURNING token, expires_at",
                (register_id, owner, seconds),
            ).fetchone()
            return None if row is None else Lease(register_id, owner, row[0], row[1])

        return await self._run(work)

    async def renew_lease(self, lease: Lease, seconds: float) -> Lease | None:
        """The lease extended to ``seconds`` from now; None if it is not current any more
        (expired, or taken with a higher token)."""

        def work(connection: sqlite3.Connection) -> Lease | None:
            row = connection.execute(
                f"UPDATE leases SET expires_at = {_NOW} + ? WHERE register_id = ? AND owner = ? "
                f"AND token = ? AND expires_at > {_NOW} RETURNING expires_at",
                (seconds, lease.register_id, lease.owner, lease.token),
            ).fetchone()
            return None if row is None else attrs.evolve(lease, expires_at=row[0])

        return await self._run(work)

    async def release_lease(self, lease: Lease) -> bool:
        """Give the lease up now (its token stays, so the next holder's is higher); whether it
        was still current."""

        def work(connection: sqlite3.Connection) -> bool:
            return bool(
                connection.execute(
                    f"UPDATE leases SET expires_at = {_NOW} WHERE register_id = ? AND owner = ? "
                    f"AND token = ? AND expires_at > {_NOW}",
                    (lease.register_id, lease.owner, lease.token),
                ).rowcount
            )

        return await self._run(work)

    async def leases(self) -> list[Lease]:
        """Every register's lease row, expired or not, by register."""

        def work(connection: sqlite3.Connection) -> list[Lease]:
            rows = connection.execute("SELECT * FROM leases ORDER BY register_id")
            return [Lease(*row) for row in rows]

        return await self._run(work)

    async def engine_alive(self, owner: str, seconds: float) -> int:
        """Say that engine ``owner`` lives ``seconds`` more; the engines alive now, ``owner``
        among them (each takes its share of the registers). Rows dead an hour are dropped."""

        def work(connection: sqlite3.Connection) -> int:
            connection.execute(f"DELETE FROM engines WHERE expires_at < {_NOW} - 3600")
            connection.execute(
                f"INSERT INTO engines VALUES (?, {_NOW} + ?) ON CONFLICT (engine_id) "
                "DO UPDATE SET expires_at = excluded.expires_at",
                (owner, seconds),
            )
            row = connection.execute(
                f"SELECT COUNT(*) FROM engines WHERE expires_at > {_NOW}"
            ).fetchone()
            return int(row[0])

        return await self._run(work)

    async def watch(self, on_notices: Callable[[Sequence[Notice]], None]) -> None:
        """Nothing to hear: an SQLite journal has one engine. Returns at once."""

    async def job(self, job_id: str) -> Job | None:
        return await self._run(lambda c: _one_job(c, "id = ?", (job_id,)))

    async def job_by_external_id(self, tenant: str, external_id: str) -> Job | None:
        return await self._run(
            lambda c: _one_job(c, "tenant = ? AND external_id = ?", (tenant, external_id))
        )

    async def result(self, job_id: str) -> FiscalResult | None:
        def work(connection: sqlite3.Connection) -> FiscalResult | None:
            row = connection.execute("SELECT * FROM results WHERE job_id = ?", (job_id,)).fetchone()
            return None if row is None else FiscalResult(*row)

        return await self._run(work)

    async def jobs_in(self, states: Sequence[JobState]) -> list[Job]:
        """Every job in one of ``states``, oldest first: what a restart must pick up again."""

        def work(connection: sqlite3.Connection) -> list[Job]:
            marks = ", ".join("?" for _ in states)
            rows = connection.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE state IN ({marks}) ORDER BY created, id",
                [s.value for s in states],
            )
            return [_job(row) for row in rows]

        return await self._run(work)

    async def jobs_of(self, tenant: str, *, limit: int = 100, after: str = "") -> list[Job]:
        """A tenant's jobs in id order, a page at a time (``after`` the last id seen)."""

        def work(connection: sqlite3.Connection) -> list[Job]:
            rows = connection.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE tenant = ? AND id > ? ORDER BY id LIMIT ?",
                (tenant, after, limit),
            )
            return [_job(row) for row in rows]

        return await self._run(work)

    async def receipts(self, tenant: str, query: ReceiptQuery) -> list[ReceiptRow]:
        """A page of :class:`ReceiptRow` by ``query``, through the (tenant, created, id) index."""
        where = ["j.tenant = ?"]
        args: list[Any] = [tenant]
        if query.start is not None:
            where.append("j.created >= ?")
            args.append(query.start)
        if query.end is not None:
            where.append("j.created < ?")
            args.append(query.end)
        if query.state is not None:
            where.append("j.state = ?")
            args.append(query.state)
        if query.external_id is not None:
            where.append("j.external_id = ?")
            args.append(query.external_id)
        if query.total is not None:
            where.append("json_extract(j.body, '$.receipt.total') = ?")
            args.append(query.total)
        if query.fd_number is not None:  # led by the results_by_fd index: a few rows to sort
            where.append("j.id IN (SELECT job_id FROM results WHERE fd_number = ?)")
            args.append(query.fd_number)
        if query.before is not None:
            where.append("(j.created < ? OR (j.created = ? AND j.id < ?))")
            args += [query.before[0], query.before[0], query.before[1]]
        sql = (
            "SELECT j.id, j.external_id, j.state, j.created, j.error, "
            "json_extract(j.body, '$.receipt.operation'), json_extract(j.body, '$.receipt.total'), "
            "r.register_id, r.fd_number, r.fiscalized_at "
            "FROM jobs j LEFT JOIN results r ON r.job_id = j.id "
            f"WHERE {' AND '.join(where)} ORDER BY j.created DESC, j.id DESC LIMIT ?"
        )
        args.append(query.limit)

        def work(connection: sqlite3.Connection) -> list[ReceiptRow]:
            return [ReceiptRow(*row) for row in connection.execute(sql, args)]

        return await self._run(work)

    async def probe(self) -> None:
        """Commit one small durable write: JournalUnavailable while the store cannot."""
        await self._run(
            lambda c: c.execute("INSERT OR REPLACE INTO probes VALUES (1, ?)", (time.time(),))
        )

    # --- deliveries (callbacks) ----------------------------------------------------------------

    async def add_delivery(self, job_id: str, kind: str, url: str) -> Delivery:
        """Journal a delivery of ``job_id``'s outcome; a repeat keeps (and returns) the first."""

        def work(connection: sqlite3.Connection) -> Delivery:
            connection.execute(
                "INSERT OR IGNORE INTO deliveries VALUES (?, ?, ?, ?, 0, 0, '', ?)",
                (job_id, kind, url, DeliveryState.PENDING.value, time.time()),
            )
            row = connection.execute(
                f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE job_id = ? AND kind = ?",
                (job_id, kind),
            ).fetchone()
            return _delivery(row)

        return await self._run(work)

    async def due_deliveries(self, now: float, limit: int) -> list[Delivery]:
        """Pending deliveries whose job is final and whose time has come, soonest first."""

        def work(connection: sqlite3.Connection) -> list[Delivery]:
            rows = connection.execute(
                f"SELECT {_DUE_COLUMNS} FROM deliveries d JOIN jobs j ON j.id = d.job_id "
                f"WHERE d.state = ? AND d.next_at <= ? AND j.state IN ({_FINAL_MARKS}) "
                "ORDER BY d.next_at LIMIT ?",
                (DeliveryState.PENDING.value, now, *_FINAL_VALUES, limit),
            )
            return [_delivery(row) for row in rows]

        return await self._run(work)

    async def next_delivery_at(self) -> float | None:
        """When the soonest pending delivery of a final job is due; None if there is none."""

        def work(connection: sqlite3.Connection) -> float | None:
            row = connection.execute(
                "SELECT MIN(d.next_at) FROM deliveries d JOIN jobs j ON j.id = d.job_id "
                f"WHERE d.state = ? AND j.state IN ({_FINAL_MARKS})",
                (DeliveryState.PENDING.value, *_FINAL_VALUES),
            ).fetchone()
            return None if row[0] is None else float(row[0])

        return await self._run(work)

    async def delivery_tried(
        self,
        delivery: Delivery,
        state: DeliveryState,
        next_at: float,
        error: str,
        alert: Event | None = None,
    ) -> Delivery:
        """Journal one attempt: delivered, dead, or pending again from ``next_at``.

        ``alert`` (a dead delivery's) commits with the new state, so no reader ever sees a
        dead delivery without its alert, nor a crash leave one.
        """
        now = time.time()
        attempts = delivery.attempts + 1

        def work(connection: sqlite3.Connection) -> None:
            connection.execute(
                "UPDATE deliveries SET state = ?, attempts = ?, next_at = ?, last_error = ?, "
                "updated = ? WHERE job_id = ? AND kind = ?",
                (state.value, attempts, next_at, error, now, delivery.job_id, delivery.kind),
            )
            if alert is not None:
                _insert_event(connection, alert)

        await self._run(work)
        return attrs.evolve(
            delivery,
            state=state,
            attempts=attempts,
            next_at=next_at,
            last_error=error,
            updated=now,
        )

    async def deliveries(
        self, job_id: str | None = None, state: DeliveryState | None = None
    ) -> list[Delivery]:
        """A job's deliveries, or every one in ``state``, oldest first."""

        def work(connection: sqlite3.Connection) -> list[Delivery]:
            rows = connection.execute(
                f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE (? IS NULL OR job_id = ?) "
                "AND (? IS NULL OR state = ?) ORDER BY updated, job_id, kind",
                (job_id, job_id, state and state.value, state and state.value),
            )
            return [_delivery(row) for row in rows]

        return await self._run(work)

    # --- what tenants keep in the cabinet ---------------------------------------------------------

    async def put_record(self, record: TenantRecord) -> None:
        """Write ``record``, replacing the one with its (tenant, kind, key)."""
        await self._run(
            lambda c: c.execute(
                "INSERT OR REPLACE INTO tenant_records (tenant, kind, key, value, updated) "
                "VALUES (?, ?, ?, ?, ?)",
                (record.tenant, record.kind, record.key, record.value, record.updated),
            )
        )

    async def drop_record(self, tenant: str, kind: str, key: str) -> bool:
        """Remove a record; whether there was one."""
        dropped: int = await self._run(
            lambda c: (
                c.execute(
                    "DELETE FROM tenant_records WHERE tenant = ? AND kind = ? AND key = ?",
                    (tenant, kind, key),
                ).rowcount
            )
        )
        return dropped > 0

    async def records(self, kind: str, tenant: str | None = None) -> list[TenantRecord]:
        """Every record of ``kind``, of one tenant or of all, by tenant and key."""

        def work(connection: sqlite3.Connection) -> list[TenantRecord]:
            rows = connection.execute(
                "SELECT tenant, kind, key, value, updated FROM tenant_records "
                "WHERE kind = ? AND (? IS NULL OR tenant = ?) ORDER BY tenant, key",
                (kind, tenant, tenant),
            )
            return [TenantRecord(*row) for row in rows]

        return await self._run(work)

    # --- tenants, registers, shifts, events ---------------------------------------------------

    async def save_tenant(self, tenant: str, name: str = "") -> None:
        await self._run(
            lambda c: c.execute(
                "INSERT INTO tenants VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET name = ?",
                (tenant, name, time.time(), name),
            )
        )

    async def save_register(self, register: RegisterRow) -> None:
        """Insert or update a register (its tenant, group, address, ФН and state)."""
        await self._run(
            lambda c: c.execute(
                "INSERT OR REPLACE INTO registers VALUES (?, ?, ?, ?, ?, ?, ?)",
                attrs.astuple(register),
            )
        )

    async def registers(self, tenant: str | None = None) -> list[RegisterRow]:
        def work(connection: sqlite3.Connection) -> list[RegisterRow]:
            where, args = ("WHERE tenant = ?", (tenant,)) if tenant is not None else ("", ())
            rows = connection.execute(f"SELECT * FROM registers {where} ORDER BY id", args)
            return [RegisterRow(*row) for row in rows]

        return await self._run(work)

    async def shift_opened(self, shift: ShiftRow) -> None:
        await self._run(
            lambda c: c.execute(
                "INSERT OR IGNORE INTO shifts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                attrs.astuple(shift),
            )
        )

    async def shift_closed(
        self, fn_number: str, number: int, closed_at: float, close_fd: int, document: bytes
    ) -> None:
        """Keep the close-shift report (5): reports reconcile against its counters."""
        await self._run(
            lambda c: c.execute(
                "UPDATE shifts SET closed_at = ?, close_fd = ?, close_document = ? "
                "WHERE fn_number = ? AND number = ?",
                (closed_at, close_fd, document, fn_number, number),
            )
        )

    async def shifts(
        self, tenant: str | None = None, register_id: str | None = None
    ) -> list[ShiftRow]:
        def work(connection: sqlite3.Connection) -> list[ShiftRow]:
            rows = connection.execute(
                "SELECT * FROM shifts WHERE (? IS NULL OR tenant = ?) "
                "AND (? IS NULL OR register_id = ?) ORDER BY register_id, fn_number, number",
                (tenant, tenant, register_id, register_id),
            )
            return [ShiftRow(*row) for row in rows]

        return await self._run(work)

    async def last_fd(self, fn_number: str) -> int | None:
        """The highest FD number of ``fn_number`` the journal knows: its receipts and shift
        reports, or the FD an operator adopted the ФН at."""

        def work(connection: sqlite3.Connection) -> int | None:
            row = connection.execute(
                "SELECT MAX(fd) FROM (SELECT MAX(fd_number) AS fd FROM results WHERE fn_number = ?"
                " UNION ALL SELECT MAX(MAX(COALESCE(open_fd, 0)), MAX(COALESCE(close_fd, 0))) "
                "FROM shifts WHERE fn_number = ? "
                "UNION ALL SELECT last_fd FROM adopted WHERE fn_number = ?)",
                (fn_number, fn_number, fn_number),
            ).fetchone()
            return None if row[0] in (None, 0) else int(row[0])

        return await self._run(work)

    async def record_event(self, event: Event) -> None:
        await self._run(lambda c: _insert_event(c, event))

    async def events(self, kind: str | None = None, tenant: str | None = None) -> list[Event]:
        """Events in order; ``kind`` matches a prefix (``alert.`` gives every alert)."""

        def work(connection: sqlite3.Connection) -> list[Event]:
            rows = connection.execute(
                "SELECT kind, message, ts, tenant, register_id, job_id FROM events "
                "WHERE (? IS NULL OR kind LIKE ? || '%') AND (? IS NULL OR tenant = ?) "
                "ORDER BY seq",
                (kind, kind, tenant, tenant),
            )
            return [Event(*row) for row in rows]

        return await self._run(work)

    async def fiscalized(
        self,
        tenant: str,
        *,
        start: float = 0.0,
        end: float = float("inf"),
        register_id: str | None = None,
    ) -> list[ReceiptRecord]:
        """A tenant's signed receipts journaled in [start, end), in the order they were signed."""

        def work(connection: sqlite3.Connection) -> list[ReceiptRecord]:
            rows = connection.execute(
                "SELECT j.id, j.tenant, j.external_id, r.register_id, r.fn_number, r.fd_number, "
                "r.fiscal_sign, r.printed_sign, r.qr, r.document, r.fiscalized_at "
                "FROM results r JOIN jobs j ON j.id = r.job_id WHERE j.tenant = ? "
                "AND r.fiscalized_at >= ? AND r.fiscalized_at < ? "
                "AND (? IS NULL OR r.register_id = ?) ORDER BY r.fn_number, r.fd_number",
                (tenant, start, min(end, 1e300), register_id, register_id),
            )
            return [ReceiptRecord(*row) for row in rows]

        return await self._run(work)


_DELIVERY_FIELDS = (
    "job_id",
    "kind",
    "url",
    "state",
    "attempts",
    "next_at",
    "last_error",
    "updated",
)
_DELIVERY_COLUMNS = ", ".join(_DELIVERY_FIELDS)
_DUE_COLUMNS = ", ".join(f"d.{name}" for name in _DELIVERY_FIELDS)  # beside the jobs table
_FINAL_VALUES = tuple(sorted(s.value for s in FINAL_STATES))
_FINAL_MARKS = ", ".join("?" for _ in _FINAL_VALUES)


def _delivery(row: Sequence[Any]) -> Delivery:
    return Delivery(
        job_id=row[0],
        kind=row[1],
        url=row[2],
        state=DeliveryState(row[3]),
        attempts=row[4],
        next_at=row[5],
        last_error=row[6],
        updated=row[7],
    )


def _roll_back(connection: sqlite3.Connection) -> None:
    """End a failed transaction, if SQLite has not ended it already; never raise."""
    with suppress(sqlite3.Error):  # SQLite rolls back by itself what it cannot keep
        if connection.in_transaction:
            connection.execute("ROLLBACK")


def _wake(group: list[_Request]) -> None:
    for request in group:
        request.done.set()


def _one_job(connection: sqlite3.Connection, where: str, args: tuple[Any, ...]) -> Job | None:
    row = connection.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE {where}", args).fetchone()
    return None if row is None else _job(row)


def _insert_event(connection: sqlite3.Connection, event: Event) -> None:
    connection.execute(
        "INSERT INTO events (ts, kind, tenant, register_id, job_id, message) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (event.ts, event.kind, event.tenant, event.register_id, event.job_id, event.message),
    )


def new_job_id() -> str:
    """A job id: a random UUID (v4) as 32 hex digits.

    Random in its first 16 digits, because those are the job's marker on the ФН (1192,
    :data:`engine.recovery.MARKER_LENGTH`): recovery and the crash benches tell jobs apart by
    it. A time-first UUIDv7 sorted better in the jobs' index, but two jobs of one millisecond
    then shared all but 12 bits of their markers, and `kassa bench faults` counted a job
    found twice (test_jobs_of_one_commit_carry_distinct_markers).
    """
    return uuid.uuid4().hex


def check_entry_state(state: JobState) -> None:
    """A new job enters the journal ``accepted`` or straight into its queue, nowhere else."""
    if state not in (JobState.ACCEPTED, JobState.QUEUED):
        raise JournalError(f"a new job cannot enter the journal {state.value}")


def _accept(
    connection: sqlite3.Connection,
    tenant: str,
    external_id: str,
    body: bytes,
    state: JobState = JobState.ACCEPTED,
) -> Accepted:
    digest = hashlib.sha256(body).digest()
    now = time.time()
    job_id = new_job_id()
    inserted = connection.execute(
        "INSERT OR IGNORE INTO jobs VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?, NULL)",
        (job_id, tenant, external_id, body, digest, state.value, now, now),
    ).rowcount
    if inserted:  # the row is exactly what was written: no need to read it back
        job = Job(job_id, tenant, external_id, body, state, None, None, now, now)
        return Accepted(job, duplicate=False)
    row = connection.execute(
        f"SELECT {_JOB_COLUMNS}, body_hash FROM jobs WHERE tenant = ? AND external_id = ?",
        (tenant, external_id),
    ).fetchone()
    job = _job(row)
    if row[-1] != digest:
        raise ConflictError(tenant, external_id, job.id)
    return Accepted(job, duplicate=True)


def _accept_or_conflict(
    connection: sqlite3.Connection, tenant: str, external_id: str, body: bytes, state: JobState
) -> Accepted | ConflictError:
    try:
        return _accept(connection, tenant, external_id, body, state)
    except ConflictError as exc:
        return exc


def _record_result(
    connection: sqlite3.Connection, result: FiscalResult, to: JobState, error: str | None
) -> Job:
    """Keep the ФН's result (one job an FD) and move its job to ``to``."""
    taken = connection.execute(
        "SELECT job_id FROM results WHERE fn_number = ? AND fd_number = ?",
        (result.fn_number, result.fd_number),
    ).fetchone()
    if taken is not None:
        raise DuplicateDocument(
            f"FD {result.fd_number} of ФН {result.fn_number} is already the result of "
            f"job {taken[0]}"
        )
    connection.execute(
        "INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            result.job_id,
            result.register_id,
            result.fn_number,
            result.fd_number,
            result.fiscal_sign,
            result.printed_sign,
            result.qr,
            result.document,
            result.fiscalized_at,
        ),
    )
    return _move(connection, result.job_id, to, result.register_id, error, None)


def _move(
    connection: sqlite3.Connection,
    job_id: str,
    to: JobState,
    register_id: str | None,
    error: str | None,
    fd_before: int | None = None,
    expect: JobState | None = None,
) -> Job:
    job = _one_job(connection, "id = ?", (job_id,))
    if job is None:
        raise JournalError(f"no job {job_id}")
    if expect is not None and job.state is not expect:
        raise JournalError(f"job {job_id} is {job.state.value}, not {expect.value}")
    if (job.state, to) not in TRANSITIONS:
        raise JournalError(f"job {job_id} cannot move from {job.state.value} to {to.value}")
    now = time.time()
    connection.execute(
        "UPDATE jobs SET state = ?, register_id = COALESCE(?, register_id), error = ?, "
        "updated = ?, fd_before = COALESCE(?, fd_before) WHERE id = ?",
        (to.value, register_id, error, now, fd_before, job_id),
    )
    return attrs.evolve(
        job,
        state=to,
        register_id=register_id or job.register_id,
        error=error,
        updated=now,
        fd_before=job.fd_before if fd_before is None else fd_before,
    )


#: SQLite's clock as unix time (a statement sees one value). One process uses an SQLite
#: journal, so its clock is the engine's anyway; PostgreSQL's leases use the server's now().
_NOW = "((julianday('now') - 2440587.5) * 86400.0)"


def _fence(connection: sqlite3.Connection, lease: Lease | None) -> None:
    """Refuse a write whose lease token is not the register's current one (:class:`LeaseLost`)."""
    if lease is None:
        return
    row = connection.execute(
        "SELECT owner, token FROM leases WHERE register_id = ?", (lease.register_id,)
    ).fetchone()
    check_fence(lease, row)


def check_fence(lease: Lease, row: Sequence[Any] | None) -> None:
    if row is None or (row[0], row[1]) != (lease.owner, lease.token):
        now = "nobody's" if row is None else f"{row[0]}'s with token {row[1]}"
        raise LeaseLost(
            f"register {lease.register_id}: the lease with token {lease.token} of "
            f"{lease.owner} is stale (the register's lease is {now}): nothing was written"
        )


def _claim(
    connection: sqlite3.Connection,
    tenant: str,
    group: str,
    register_id: str,
    fd_before: int | None,
) -> Job | None:
    """The oldest queued job of the group moved to ``sent`` for the register; None if none."""
    row = connection.execute(
        "UPDATE jobs SET state = ?, register_id = ?, error = NULL, updated = ?, fd_before = ? "
        "WHERE id = (SELECT id FROM jobs WHERE state = ? AND tenant = ? AND "
        "json_extract(body, '$.group') = ? ORDER BY created, id LIMIT 1) "
        f"RETURNING {_JOB_COLUMNS}",
        (
            JobState.SENT.value,
            register_id,
            time.time(),
            fd_before,
            JobState.QUEUED.value,
            tenant,
            group,
        ),
    ).fetchone()
    return None if row is None else _job(row)


def _move_plain(connection: sqlite3.Connection, job_id: str, to: JobState) -> Job:
    """:func:`_move` with no register, error or FD: one statement when the move is legal."""
    rows = connection.execute(_MOVE_PLAIN[to], (to.value, time.time(), job_id)).fetchall()
    if not rows:  # no such job, or an illegal move: _move names which
        return _move(connection, job_id, to, None, None)
    return _job(rows[0])


def _move_statement(to: JobState) -> str:
    """The UPDATE of :func:`_move_plain` to ``to``: legal only from its TRANSITIONS sources."""
    sources = sorted(f"'{a.value}'" for a, b in TRANSITIONS if b is to)
    return (
        "UPDATE jobs SET state = ?, error = NULL, updated = ? WHERE id = ? AND state IN "
        f"({', '.join(sources)}) RETURNING {_JOB_COLUMNS}"
    )


_MOVE_PLAIN = {to: _move_statement(to) for to in JobState}


# --- which store ---------------------------------------------------------------------------------


def is_url(target: str | Path) -> bool:
    """Whether a configured journal names a PostgreSQL database rather than an SQLite file."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def safe_url(url: str) -> str:
    """``url`` with its password hidden, for messages and logs."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        if ":" in user:
            user = user.split(":", 1)[0] + ":***"
        netloc = f"{user}@{host}"
    query = "&".join(
        "password=***" if item.startswith("password=") else item
        for item in parts.query.split("&")
        if item
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def journal_name(target: str | Path) -> str:
    """The journal as messages name it: its file, or its URL without the password."""
    return safe_url(str(target)) if is_url(target) else str(target)


def need_psycopg() -> None:
    """Refuse a PostgreSQL journal clearly where psycopg (the ``postgres`` extra) is missing."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise JournalUnusable(
            "a postgresql:// journal needs psycopg 3: pip install 'kassa[postgres]'"
        ) from None


@asynccontextmanager
async def open_journal(target: str | Path) -> AsyncIterator[Journal]:
    """The journal at ``target`` for the life of the block: a ``postgresql://`` URL, or an
    SQLite file (the embedded default). psycopg is imported only for a URL."""
    if is_url(target):
        need_psycopg()
        from engine.journal_pg import PostgresJournal

        async with PostgresJournal.open(str(target)) as journal:
            yield journal
    else:
        async with SqliteJournal.open(target) as sqlite_journal:
            yield sqlite_journal


# --- opening and checking the file ------------------------------------------------------------


def open_checked(path: Path, *, full: bool = False) -> sqlite3.Connection:
    """The journal at ``path`` as a connection in WAL mode with ``synchronous=FULL``.

    A missing file becomes a new journal. An existing one must be a whole Kassa journal: an
    empty file, a file that is not SQLite, a damaged one (``PRAGMA quick_check``, or the full
    ``integrity_check`` with ``full``) or another program's database is refused with a
    :class:`JournalUnusable` naming ``path``. A version-0 journal is upgraded.
    """
    if not os.path.lexists(path):
        _create(path)
    elif not path.exists():
        raise JournalUnusable(f"the journal {path} is a link to a file that does not exist")
    elif path.is_dir():
        raise JournalUnusable(f"the journal {path} is a folder, not a file")
    elif path.stat().st_size == 0:
        raise JournalUnusable(
            f"the journal {path} is an empty file (0 bytes). Kassa never leaves one (it makes a "
            "new journal whole), so the journal that was here has been emptied: put it back; "
            "or, to start a new journal, remove the file (a register whose ФН holds receipts "
            "the new journal does not know will take no jobs until adopted)"
        )
    try:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise _cannot_open(path, exc) from None
    try:
        _check(connection, path, full)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
    except sqlite3.Error as exc:
        connection.close()
        raise _cannot_open(path, exc) from None
    except BaseException:
        connection.close()
        raise
    return connection


def _create(path: Path) -> None:
    """Make a new journal beside ``path`` and move it there whole.

    A crash leaves no journal or a whole one, never an empty file that could pass for a new
    journal where a used one was.
    """
    fresh = path.with_name(f"{path.name}.new")
    if path.parent.is_dir():  # else connecting says that the folder is missing
        for leftover in (fresh, Path(f"{fresh}-wal"), Path(f"{fresh}-shm")):
            leftover.unlink(missing_ok=True)  # a crash's, before its rename
    try:
        connection = sqlite3.connect(fresh, isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.executescript(_SCHEMA)
            connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        finally:
            connection.close()  # the last connection: its WAL is checkpointed and removed
        _fsync(fresh)
        os.rename(fresh, path)
        _fsync(path.parent)
    except sqlite3.Error as exc:
        raise _cannot_open(path, exc) from None
    except OSError as exc:
        raise JournalUnusable(f"cannot create the journal {path}: {exc.strerror or exc}") from None


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _cannot_open(path: Path, exc: sqlite3.Error) -> JournalUnusable:
    """SQLite's error with the path and, where it can be told, the reason."""
    folder = path.parent
    if not folder.is_dir():
        why = f"its folder {folder} does not exist"
    elif not os.access(folder, os.W_OK | os.X_OK):
        why = f"its folder {folder} is not writable"
    elif path.exists() and not os.access(path, os.R_OK | os.W_OK):
        why = "the file is not readable and writable"
    else:
        why = str(exc)
    return JournalUnusable(f"cannot open the journal {path}: {why}")


def _check(connection: sqlite3.Connection, path: Path, full: bool) -> None:
    """Refuse a damaged or foreign file; upgrade a version-0 journal."""
    try:
        application_id = connection.execute("PRAGMA application_id").fetchone()[0]
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        problems = [
            row[0]
            for row in connection.execute(f"PRAGMA {'integrity_check' if full else 'quick_check'}")
        ]
        tables = _tables(connection)
    except sqlite3.DatabaseError as exc:
        if "not a database" in str(exc):
            raise JournalUnusable(f"the journal {path} is not an SQLite database") from None
        raise JournalUnusable(
            f"the journal {path} is damaged: {exc}; put back a sound copy"
        ) from None
    if problems != ["ok"]:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise JournalUnusable(
            f"the journal {path} is damaged: {problems[0]}{more}; put back a sound copy"
        )
    if application_id not in (0, APPLICATION_ID):
        raise JournalUnusable(
            f"the journal {path} is not a Kassa journal: it is another program's SQLite "
            f"database (application id {application_id:#x})"
        )
    if application_id == APPLICATION_ID and version > SCHEMA_VERSION:
        raise JournalUnusable(
            f"the journal {path} has schema version {version}, made by a newer Kassa; this one "
            f"knows versions up to {SCHEMA_VERSION}"
        )
    expected = _expected_tables()
    newer = frozenset().union(
        *(names for added, names in _ADDED_IN.items() if added > (version if application_id else 0))
    )
    needed = {name: columns for name, columns in expected.items() if name not in newer}
    for name, columns in needed.items():
        if tables.get(name) != columns:
            what = "has no table" if name not in tables else "has another table"
            raise JournalUnusable(
                f"the journal {path} is not a Kassa journal: it {what} {name!r} "
                f"({', '.join(c for c, _ in columns)})"
            )
    if application_id == 0 or version < SCHEMA_VERSION:
        connection.executescript(_SCHEMA)
        connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _tables(connection: sqlite3.Connection) -> dict[str, list[tuple[str, str]]]:
    """Each table's (column, type) list."""
    names = [
        row[0]
        for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    return {
        name: [(row[1], row[2]) for row in connection.execute(f"PRAGMA table_info({name!r})")]
        for name in names
    }


def _expected_tables() -> dict[str, list[tuple[str, str]]]:
    memory = sqlite3.connect(":memory:")
    try:
        memory.executescript(_SCHEMA)
        return _tables(memory)
    finally:
        memory.close()


def check(path: Path) -> str:
    """Run the full check (``integrity_check``) on the journal at ``path``; what it holds."""
    if not os.path.lexists(path):
        raise JournalUnusable(f"there is no journal at {path}")
    connection = open_checked(path, full=True)
    try:
        jobs = connection.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
        results = connection.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    finally:
        connection.close()
    return f"{jobs} jobs, {results} signed documents, schema version {SCHEMA_VERSION}"


def adopt(path: Path, fn_number: str, last_fd: int, *, now: float | None = None) -> int | None:
    """Let the journal at ``path`` start over on ФН ``fn_number`` as of FD ``last_fd``.

    An operator's decision, for a new journal on a used ФН: the ФН's documents up to
    ``last_fd`` are taken as known, so its register takes jobs again; receipts made there
    before are not in this journal, and their external_ids are not recognised. Returns the
    last FD the journal knew of that ФН before (None: none).
    """
    if not os.path.lexists(path):
        raise JournalUnusable(f"there is no journal at {path}")
    connection = open_checked(path)
    stamp = time.time() if now is None else now
    try:
        row = connection.execute(
            "SELECT MAX(fd) FROM (SELECT MAX(fd_number) AS fd FROM results WHERE fn_number = ?"
            " UNION ALL SELECT MAX(MAX(COALESCE(open_fd, 0)), MAX(COALESCE(close_fd, 0))) "
            "FROM shifts WHERE fn_number = ? "
            "UNION ALL SELECT last_fd FROM adopted WHERE fn_number = ?)",
            (fn_number, fn_number, fn_number),
        ).fetchone()
        known = None if row[0] in (None, 0) else int(row[0])
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(
            "INSERT INTO adopted VALUES (?, ?, ?) ON CONFLICT (fn_number) DO UPDATE SET "
            "last_fd = MAX(last_fd, excluded.last_fd), adopted_at = excluded.adopted_at",
            (fn_number, last_fd, stamp),
        )
        connection.execute(
            "INSERT INTO events (ts, kind, message) VALUES (?, ?, ?)",
            (
                stamp,
                "journal.adopted",
                f"ФН {fn_number} adopted at FD {last_fd} (the journal knew "
                f"{'nothing of it' if known is None else f'FD {known}'})",
            ),
        )
        connection.execute("COMMIT")
    finally:
        connection.close()
    return known
