"""The journal file is checked before use: refused by its path when empty, damaged or foreign."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import trio
import zmq

from engine.cli import main as kassa
from engine.journal import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    JournalUnusable,
    SqliteJournal,
    TenantRecord,
    adopt,
    check,
)
from engine.service_config import write_certificate


async def _open(path: Path) -> None:
    async with SqliteJournal.open(path) as journal:
        await journal.accept("shop", "order-1", b"receipt")


def _refused(path: Path) -> str:
    with pytest.raises(JournalUnusable) as caught:
        trio.run(_open, path)
    assert str(path) in str(caught.value), caught.value
    return str(caught.value)


def test_an_empty_file_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    path.touch()
    assert "an empty file (0 bytes)" in _refused(path)
    assert path.stat().st_size == 0


def test_a_new_journal_is_made_whole_and_stamped(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    trio.run(_open, path)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(("-wal", "-shm"))) == [
        "journal.db"
    ]
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    connection.close()
    trio.run(_open, path)  # and it opens again


def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    path.write_bytes(b"not a database, not even close " * 200)
    assert "is not an SQLite database" in _refused(path)


def test_another_program_s_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    plain = tmp_path / "plain.db"
    stamped = tmp_path / "stamped.db"
    for path, pragma in ((plain, ""), (stamped, "PRAGMA application_id = 7;")):
        connection = sqlite3.connect(path)
        connection.executescript(f"{pragma} CREATE TABLE contacts (name TEXT, phone TEXT);")
        connection.close()
    assert "is not a Kassa journal: it has no table 'tenants'" in _refused(plain)
    assert "another program's SQLite database (application id 0x7)" in _refused(stamped)
    connection = sqlite3.connect(plain)
    tables = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    connection.close()
    assert tables == [("contacts",)]


def test_a_damaged_journal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"

    async def fill() -> None:
        async with SqliteJournal.open(path) as journal:
            await journal.accept_many([("shop", f"order-{i}", b"x" * 300) for i in range(2000)])

    trio.run(fill)
    with path.open("r+b") as file:  # a page of the jobs table overwritten
        file.seek(100 * 4096)
        file.write(b"\x0d" * 4096)
    assert "is damaged" in _refused(path)
    with pytest.raises(JournalUnusable, match="is damaged"):
        check(path)


def test_a_journal_of_a_newer_kassa_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    trio.run(_open, path)
    connection = sqlite3.connect(path)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.close()
    assert f"schema version {SCHEMA_VERSION + 1}, made by a newer Kassa" in _refused(path)


def test_a_journal_from_before_versions_is_upgraded(tmp_path: Path) -> None:
    """A journal of the last Kassa without versions: the same tables, no stamp, no adopted."""
    path = tmp_path / "journal.db"
    trio.run(_open, path)
    connection = sqlite3.connect(path)
    connection.executescript(
        "DROP TABLE adopted; PRAGMA application_id = 0; PRAGMA user_version = 0;"
    )
    connection.close()

    async def reopen() -> None:
        async with SqliteJournal.open(path) as journal:
            assert await journal.job_by_external_id("shop", "order-1") is not None
            assert await journal.last_fd("0001") is None

    trio.run(reopen)
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    connection.close()


def test_a_missing_folder_is_named(tmp_path: Path) -> None:
    path = tmp_path / "gone" / "journal.db"
    assert f"its folder {path.parent} does not exist" in _refused(path)


def test_adopting_a_fn_raises_what_the_journal_knows_of_it(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    trio.run(_open, path)
    assert adopt(path, "9999078900000001", 40) is None
    assert adopt(path, "9999078900000001", 12) == 40  # never lowered

    async def known() -> tuple[int | None, list[str]]:
        async with SqliteJournal.open(path) as journal:
            events = [e.message for e in await journal.events("journal.adopted")]
            return await journal.last_fd("9999078900000001"), events

    last, events = trio.run(known)
    assert last == 40
    assert events[0].startswith("ФН 9999078900000001 adopted at FD 40 (the journal knew nothing")
    with pytest.raises(JournalUnusable, match="there is no journal at"):
        adopt(tmp_path / "other.db", "9999078900000001", 40)
    assert not (tmp_path / "other.db").exists()


def test_kassa_journal_check_and_adopt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "journal.db"
    trio.run(_open, path)
    assert kassa(["journal", "check", str(path)]) == 0
    sound = f"{path}: sound; 1 jobs, 0 signed documents, schema version {SCHEMA_VERSION}\n"
    assert capsys.readouterr().out == sound
    assert kassa(["journal", "adopt", str(path), "--fn", "9999078900000001", "--last-fd", "7"]) == 0
    assert "ФН 9999078900000001 adopted at FD 7" in capsys.readouterr().out
    assert kassa(["journal", "adopt", str(path), "--fn", "x", "--last-fd", "7"]) == 2
    assert "--fn: expected the ФН's number" in capsys.readouterr().err
    empty = tmp_path / "empty.db"
    empty.touch()
    assert kassa(["journal", "check", str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(empty) in err


def _config(folder: Path, journal: Path) -> Path:
    public, secret = zmq.curve_keypair()
    write_certificate(folder / "server", public, secret)
    client, _ = zmq.curve_keypair()
    path = folder / "kassa.toml"
    path.write_text(
        f"""
[service]
listen = "tcp://127.0.0.1:0"
secret_key_file = "server.key_secret"
journal = "{journal}"

[[tenants]]
id = "a"
keys = ["{client.decode()}"]

[[registers]]
id = "kkt-1"
tenant = "a"
address = "tcp://127.0.0.1:1"
"""
    )
    return path


@pytest.mark.parametrize("case", ["missing folder", "empty file"])
def test_kassa_serve_names_a_journal_it_cannot_use(tmp_path: Path, case: str) -> None:
    """A real ``kassa serve``: exit status 2 and one line naming the journal, no traceback."""
    journal = tmp_path / "gone" / "journal.db" if case == "missing folder" else tmp_path / "j.db"
    if case == "empty file":
        journal.touch()
    done = subprocess.run(
        [sys.executable, "-m", "engine.cli", "serve", "--config", str(_config(tmp_path, journal))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("kassa: error: ") and str(journal) in done.stderr, done.stderr


def test_a_version_1_journal_gains_the_cabinet_records_and_keeps_its_jobs(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    trio.run(_open, path)
    connection = sqlite3.connect(path)
    connection.executescript("DROP TABLE tenant_records; PRAGMA user_version = 1;")
    connection.close()

    async def reopen() -> None:
        async with SqliteJournal.open(path) as journal:
            assert await journal.job_by_external_id("shop", "order-1") is not None
            assert await journal.records("product") == []
            await journal.put_record(TenantRecord("shop", "product", "tea", '{"price": 100}', 1.0))
            await journal.put_record(TenantRecord("shop", "product", "tea", '{"price": 120}', 2.0))
            await journal.put_record(TenantRecord("cafe", "product", "tea", '{"price": 90}', 3.0))
            assert await journal.records("product", "shop") == [
                TenantRecord("shop", "product", "tea", '{"price": 120}', 2.0)
            ]
            assert [r.tenant for r in await journal.records("product")] == ["cafe", "shop"]
            assert await journal.drop_record("shop", "product", "tea")
            assert not await journal.drop_record("shop", "product", "tea")
            assert [r.tenant for r in await journal.records("product")] == ["cafe"]

    trio.run(reopen)
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    connection.close()
