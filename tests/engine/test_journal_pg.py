"""The journal on a real PostgreSQL server: its migrations, the checks of an open, a dropped
connection, and ``kassa journal copy`` from SQLite. The contract it shares with SQLite is in
test_journal.py; these tests skip, with one line saying why, where no server answers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import trio

from engine.cli import main as kassa
from engine.journal import (
    Event,
    FiscalResult,
    JobState,
    JournalUnavailable,
    JournalUnusable,
    RegisterRow,
    ShiftRow,
    SqliteJournal,
    TenantRecord,
    adopt,
    open_journal,
    safe_url,
)
from engine.service_config import load_config
from tests.engine.conftest import postgres_down
from tests.engine.test_journal_file import _config

if postgres_down():
    pytest.skip(postgres_down() or "", allow_module_level=True)
import psycopg

from engine.journal_pg import SCHEMA_VERSION, PostgresJournal, copy


def test_an_empty_database_is_refused_until_kassa_journal_migrate_makes_it(
    empty_postgres: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(JournalUnusable, match="is empty: make it with `kassa journal migrate"):
        trio.run(_accept_one, empty_postgres)
    assert kassa(["journal", "migrate", empty_postgres]) == 0
    migrated = f"migrated from version 0 to schema version {SCHEMA_VERSION}\n"
    assert capsys.readouterr().out.endswith(migrated)
    assert kassa(["journal", "migrate", empty_postgres]) == 0  # a second run changes nothing
    assert capsys.readouterr().out.endswith(f": already at schema version {SCHEMA_VERSION}\n")
    trio.run(_accept_one, empty_postgres)
    assert kassa(["journal", "check", empty_postgres]) == 0
    sound = f"sound; 1 jobs, 0 signed documents, schema version {SCHEMA_VERSION}\n"
    assert capsys.readouterr().out.endswith(sound)


def test_another_program_s_schema_is_refused_and_left_untouched(empty_postgres: str) -> None:
    with psycopg.connect(empty_postgres, autocommit=True) as connection:
        connection.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        connection.execute("INSERT INTO customers VALUES (1, 'Иванов')")
    for attempt in (
        lambda: trio.run(_accept_one, empty_postgres),
        lambda: kassa_migrate(empty_postgres),
    ):
        with pytest.raises(JournalUnusable, match=r"not a Kassa journal: .*\(customers\)"):
            attempt()
    with psycopg.connect(empty_postgres) as connection:
        tables = connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchall()
        assert tables == [("customers",)]


def kassa_migrate(url: str) -> None:
    from engine.journal_pg import migrate

    migrate(url)


def test_a_journal_of_a_newer_kassa_is_refused(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute("INSERT INTO kassa_journal VALUES (99, 'from the future', 0)")
    with pytest.raises(JournalUnusable, match="schema version 99, made by a newer Kassa"):
        trio.run(_accept_one, postgres_url)
    with pytest.raises(JournalUnusable, match="schema version 99"):
        kassa_migrate(postgres_url)


def test_a_password_never_shows_in_what_kassa_says() -> None:
    assert safe_url("postgresql://kassa:s3cret@db:5432/k") == "postgresql://kassa:***@db:5432/k"
    assert safe_url("postgresql://db/k?password=s3cret&sslmode=require") == (
        "postgresql://db/k?password=***&sslmode=require"
    )
    with pytest.raises(JournalUnusable) as refused:
        trio.run(_accept_one, "postgresql://kassa:s3cret@127.0.0.1:1/k")
    assert "s3cret" not in str(refused.value) and "kassa:***@127.0.0.1:1" in str(refused.value)


async def test_a_dropped_connection_fails_one_commit_and_the_writer_reconnects(
    postgres_url: str,
) -> None:
    async with PostgresJournal.open(postgres_url) as journal:
        await journal.accept("shop", "before", b"r")
        pid = await journal._run(lambda c: c.connection.info.backend_pid)
        with psycopg.connect(postgres_url, autocommit=True) as admin:  # the server drops it
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(JournalUnavailable) as failed:
            await journal.accept("shop", "lost", b"r")
        assert "AdminShutdown" in failed.value.cause, failed.value.cause
        await journal.probe()  # a new connection
        assert not (await journal.accept("shop", "after", b"r")).duplicate
        assert (await journal.accept("shop", "before", b"r")).duplicate
        assert await journal.job_by_external_id("shop", "lost") is None
        assert journal.reconnects == 1


def test_a_journal_of_an_older_version_is_migrated_when_opened(postgres_url: str) -> None:
    """A version-1 journal (before leases) gets version 2's steps on open, as migrate does."""
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute("DROP TABLE leases")
        connection.execute("DROP TRIGGER jobs_notice ON jobs")
        connection.execute("DROP FUNCTION kassa_job_notice()")
        connection.execute("DROP INDEX jobs_queued")
        connection.execute("DELETE FROM kassa_journal WHERE version > 1")

    async def lease_one() -> None:
        async with open_journal(postgres_url) as journal:
            lease = await journal.acquire_lease("kkt-1", "engine-a", 5)
            assert lease is not None and lease.token == 1

    trio.run(lease_one)
    with psycopg.connect(postgres_url) as connection:
        versions = connection.execute("SELECT version FROM kassa_journal ORDER BY 1").fetchall()
    assert [v for (v,) in versions] == list(range(1, SCHEMA_VERSION + 1))


async def _accept_one(url: str) -> None:
    async with open_journal(url) as journal:
        await journal.accept("shop", "one", b"r")


#: Every byte value, in a signed document and a shift report: a copy must keep them as they are.
DOCUMENT = bytes(range(256)) * 3
REPORT = bytes(reversed(range(256)))


async def _fill(path: Path) -> tuple[str, FiscalResult]:
    """An SQLite journal with a row in every table."""
    fn = "9999078902003988"
    async with SqliteJournal.open(path) as journal:
        await journal.save_tenant("shop", "Магазин «Ромашка»")
        await journal.save_register(RegisterRow("kkt-1", "shop", "main", "shtrih", "tcp://x:1", fn))
        await journal.shift_opened(ShiftRow("kkt-1", "shop", fn, 3, 100.0, 10))
        job = (await journal.accept("shop", "o-1", b'{"receipt": {"total": 1020}}')).job
        await journal.accept("shop", "o-2", b"\x00\xff")
        await journal.move(job.id, JobState.QUEUED)
        await journal.move(job.id, JobState.SENT, register_id="kkt-1", fd_before=10)
        result = FiscalResult(
            job.id, "kkt-1", fn, 11, b"\x31\x04\x00\xff\x00\x01", 4, "t=1", DOCUMENT, 150.25
        )
        await journal.record_result(result, JobState.FISCALIZED)
        await journal.shift_closed(fn, 3, 200.0, 12, REPORT)
        await journal.add_delivery(job.id, "atol", "https://shop.example/cb")
        await journal.record_event(Event("register.ready", "up", 1.0, "shop", "kkt-1"))
        await journal.record_event(Event("alert.ofd_unsent", "late", 2.0, "shop", "kkt-1"))
        await journal.put_record(TenantRecord("shop", "product", "чай", '{"price": 100}', 3.0))
        await journal.probe()
    adopt(path, "9999078902000001", 70, now=4.0)
    return job.id, result


async def test_kassa_journal_copy_moves_every_table_byte_exact(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "journal.db"
    job_id, result = await _fill(path)
    async with SqliteJournal.open(path) as journal:
        before = await _everything(journal, job_id)
    assert await trio.to_thread.run_sync(kassa, ["journal", "copy", str(path), postgres_url]) == 0
    out = capsys.readouterr().out
    assert "copied into" in out and "jobs 2" in out and "events 3" in out, out
    async with open_journal(postgres_url) as journal:
        after = await _everything(journal, job_id)
        assert after == before
        copied = await journal.result(job_id)
        assert copied is not None and copied.document == DOCUMENT and copied == result
        await journal.record_event(Event("journal.copied", "", 5.0))  # numbering goes on
        assert [e.kind for e in await journal.events()][-1] == "journal.copied"
        assert await journal.last_fd("9999078902000001") == 70
    # a second copy would mix two installations: refused, the first kept
    assert await trio.to_thread.run_sync(kassa, ["journal", "copy", str(path), postgres_url]) == 2
    assert "is not empty" in capsys.readouterr().err
    with pytest.raises(JournalUnusable, match="there is no journal"):
        copy(tmp_path / "missing.db", postgres_url)


async def _everything(journal: object, job_id: str) -> list[object]:
    j = journal  # either store: the same answers, row for row
    return [
        await j.registers(),  # type: ignore[attr-defined]
        await j.shifts(),  # type: ignore[attr-defined]
        await j.jobs_in(list(JobState)),  # type: ignore[attr-defined]
        await j.result(job_id),  # type: ignore[attr-defined]
        await j.events(),  # type: ignore[attr-defined]
        await j.deliveries(job_id),  # type: ignore[attr-defined]
        await j.records("product"),  # type: ignore[attr-defined]
        await j.fiscalized("shop"),  # type: ignore[attr-defined]
        await j.last_fd("9999078902003988"),  # type: ignore[attr-defined]
    ]


def test_kassa_serve_on_an_empty_database_names_it_and_the_command_that_makes_it(
    empty_postgres: str, tmp_path: Path
) -> None:
    """A real ``kassa serve`` whose kassa.toml names a PostgreSQL journal not migrated yet."""
    config = _config(tmp_path, empty_postgres)  # type: ignore[arg-type]
    assert load_config(config).engine.journal == empty_postgres
    done = subprocess.run(
        [sys.executable, "-m", "engine.cli", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert empty_postgres in done.stderr and "kassa journal migrate" in done.stderr, done.stderr
