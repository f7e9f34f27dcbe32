"""Simulated time for the engine tests that does not run ahead of the journal's fsyncs, and
the journal stores the journal's contract runs against (SQLite, and PostgreSQL if one answers)."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import attrs
import pytest
import trio.testing

from benchmarks.simclock import journal_aware_clock
from engine.journal import Journal, open_journal

#: The server the PostgreSQL half of the journal's contract runs on; CI has one at this address.
POSTGRES = os.environ.get("KASSA_TEST_POSTGRES", "postgresql://127.0.0.1:5432/test")


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return journal_aware_clock()


@attrs.frozen
class Store:
    """One journal store under test: where it is, and how to make it fail as a full disk does."""

    name: str
    target: Path | str
    #: An error of this store's own kind that says the store failed (raised by a fault hook).
    failure: Callable[[str], Exception]
    #: Work for the writer's connection that makes later writes fail, as a read-only file does.
    read_only: Callable[[Any], object]

    def open(self) -> AbstractAsyncContextManager[Journal]:
        return open_journal(self.target)


_reachable: dict[str, str | None] = {}


def postgres_down() -> str | None:
    """Why the PostgreSQL tests cannot run here (None: they can), asked once per session.

    Where none answers, the modules that need one are left out with this reason in one line
    (tests/conftest.py), and the journal's contract (the ``store`` fixture) runs on SQLite
    alone.
    """
    if POSTGRES not in _reachable:
        try:
            import psycopg
        except ImportError:
            _reachable[POSTGRES] = "psycopg is not installed (pip install -e '.[postgres]')"
            return _reachable[POSTGRES]
        try:
            psycopg.connect(POSTGRES, connect_timeout=2).close()
            _reachable[POSTGRES] = None
        except psycopg.Error as exc:
            _reachable[POSTGRES] = (
                f"no PostgreSQL answers at {POSTGRES} (set KASSA_TEST_POSTGRES), so the "
                "tests that need one (their modules, and test_journal.py's [postgresql] "
                f"cases) do not run: {str(exc).strip().splitlines()[0]}"
            )
    return _reachable[POSTGRES]


@pytest.fixture
def empty_postgres() -> Iterator[str]:
    """The URL of a fresh, empty schema on the test server, dropped afterwards: each test has
    its own, so tests stay independent without the cost of a database each."""
    down = postgres_down()
    if down is not None:
        pytest.skip(down)
    import psycopg

    schema = f"kassa_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in POSTGRES else "?"
    try:
        yield f"{POSTGRES}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def postgres_url(empty_postgres: str) -> str:
    """A migrated journal in a fresh schema (``kassa journal migrate`` made it)."""
    from engine.journal_pg import migrate

    migrate(empty_postgres)
    return empty_postgres


def _sqlite_failure(message: str) -> Exception:
    return sqlite3.OperationalError(message)


def _postgres_failure(message: str) -> Exception:
    import psycopg

    return psycopg.OperationalError(message)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The journal's contract on each store: PostgreSQL too wherever a server answers."""
    if "store" in metafunc.fixturenames:
        stores = ["sqlite"] if postgres_down() else ["sqlite", "postgresql"]
        metafunc.parametrize("store", stores, indirect=True)


@pytest.fixture
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """Each store the journal's contract holds on."""
    if request.param == "sqlite":
        return Store(
            "sqlite",
            tmp_path / "journal.db",
            _sqlite_failure,
            lambda c: c.execute("PRAGMA query_only = ON"),
        )
    url: str = request.getfixturevalue("postgres_url")
    return Store(
        "postgresql",
        url,
        _postgres_failure,
        lambda c: c.execute("SET SESSION default_transaction_read_only = on"),
    )


@pytest.fixture
async def journal(store: Store) -> AsyncIterator[Journal]:
    async with store.open() as opened:
        yield opened
