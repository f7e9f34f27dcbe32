"""The service while its journal cannot commit: ``unavailable`` answers, never a dead process.

One test runs ``kassa serve`` in a child process whose files are capped by RLIMIT_FSIZE (a
full disk, as far as SQLite can tell: writes fail with EFBIG); the others run the service in
a thread and fail the journal's commits through its fault hook.
"""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import zmq

from engine.client import ClientKeys, KassaClient
from engine.journal import _SCHEMA, JobState, JournalError, SqliteJournal
from engine.service import _internal
from tests.service.test_service import (
    A1,
    A2,
    CONFIG_FOR_SERVE,
    SERVER,
    Client,
    Running,
    kassa_receipt,
    write_config,
)

#: The journal's files may not grow past this in the child (the WAL first, then the database).
FILE_LIMIT = 512 << 10


@pytest.fixture(scope="module")
def context() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    yield ctx
    ctx.term()


def journaled(path: Path) -> set[str]:
    """The external ids of every job in the journal at ``path``."""

    async def read() -> set[str]:
        async with SqliteJournal.open(path) as journal:
            return {job.external_id for job in await journal.jobs_in(list(JobState))}

    return trio.run(read)


def sort_answers(
    batch: list[dict[str, Any]], results: list[dict[str, Any]]
) -> tuple[dict[str, str], list[str]]:
    """The entries answered with a job (external id → job id) and those answered unavailable;
    any other answer fails the test."""
    assert len(results) == len(batch)
    jobs: dict[str, str] = {}
    refused: list[str] = []
    for entry, result in zip(batch, results, strict=True):
        if "job" in result:
            jobs[entry["external_id"]] = result["job"]["id"]
        else:
            error = result["error"]
            assert error["code"] == "unavailable", result
            assert error["retry_after"] >= 1, result
            refused.append(entry["external_id"])
    return jobs, refused


def test_a_batch_whose_commits_fail_part_way_answers_each_entry_exactly(
    tmp_path: Path, context: zmq.Context[zmq.Socket[bytes]], caplog: pytest.LogCaptureFixture
) -> None:
    """200 entries go to the journal in several commits; all but the first fail. Each entry
    is answered with its job (journaled) or ``unavailable`` (not journaled), never
    ``internal``; resent after the journal is back, the refused ones are accepted once."""
    running = Running(tmp_path, owners=("a",))
    client = Client(context, running.endpoint, A1)
    try:
        assert client.ok("ping")["health"] == {"state": "ok"}
        journal = running.engine.journal
        assert isinstance(journal, SqliteJournal)

        async def ready() -> bool:  # journaled last as it comes up: then it idles
            return bool(await journal.events("register.ready"))

        deadline = time.monotonic() + 20
        while not running.run(ready):
            assert time.monotonic() < deadline, "the register did not come up"
            time.sleep(0.05)
        allowed = [1]  # the first commit that writes passes: one lane's entries, or a few

        def fail_after_one(changes: int) -> None:  # in the journal's writer thread
            if changes and allowed[0] <= 0:
                raise sqlite3.OperationalError("disk I/O error (injected)")
            allowed[0] -= bool(changes)

        journal.before_commit = fail_after_one
        batch = [{"external_id": f"b{n}", "receipt": kassa_receipt(10_000 + n)} for n in range(200)]
        jobs, refused = sort_answers(batch, client.ok("submit_batch", jobs=batch)["results"])
        assert jobs and refused, (len(jobs), len(refused))
        health = client.ok("ping")["health"]
        assert health["state"] == "degraded" and "disk I/O error (injected)" in health["cause"]
        keys = ClientKeys(SERVER.public, A1.public, A1.secret)
        with KassaClient(running.endpoint, keys, timeout=5) as kassa:
            pong = kassa.ping()
            assert pong.degraded is not None and "disk I/O error (injected)" in pong.degraded
        journal.before_commit = None

        async def kept() -> set[str]:
            return {j.external_id for j in await journal.jobs_in(list(JobState))}

        assert running.run(kept) == set(jobs)  # exactly the entries answered with a job
        deadline = time.monotonic() + 20
        while client.ok("ping")["health"]["state"] != "ok":
            assert time.monotonic() < deadline, "the journal's outage did not end"
            time.sleep(0.05)
        again = [entry for entry in batch if entry["external_id"] in refused]
        more, still = sort_answers(again, client.ok("submit_batch", jobs=again)["results"])
        assert not still and len({**jobs, **more}) == 200
        assert running.run(kept) == {entry["external_id"] for entry in batch}
        for job_id in list(jobs.values())[:3]:  # answered accepted or queued: they go on
            assert client.wait_final(job_id)["state"] == "fiscalized"
    finally:
        client.close()
        running.stop()
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("the journal cannot commit: OperationalError: disk I/O error" in m for m in logged)
    assert not any("ExceptionGroup" in m or "internal error" in m for m in logged), logged


def test_an_internal_error_is_logged_by_its_innermost_cause(
    caplog: pytest.LogCaptureFixture,
) -> None:
    try:
        try:
            raise sqlite3.OperationalError("database or disk is full")
        except sqlite3.Error as exc:
            raise JournalError("commit failed") from exc
    except JournalError as exc:
        group = ExceptionGroup("from a nursery", [ExceptionGroup("inner", [exc])])
    with caplog.at_level(logging.ERROR, logger="kassa.service"):
        _internal("submit", "a", group)
    (message,) = [r.getMessage() for r in caplog.records]
    assert "internal error in submit (tenant a): JournalError <- OperationalError" in message
    assert "ExceptionGroup" not in message


def test_kassa_serve_on_a_full_disk_answers_unavailable_and_keeps_running(
    tmp_path: Path, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    """``kassa serve`` with its register away (it writes to the journal at every probe) and
    its files capped: batches fill the journal until commits fail. Submits are answered
    ``unavailable``, ping says why, the process lives and stops cleanly on SIGTERM, and the
    journal holds exactly the jobs answered as accepted."""
    path = write_config(tmp_path, CONFIG_FOR_SERVE)

    def cap() -> None:  # in the child: a write past the limit fails with EFBIG (no SIGXFSZ)
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, resource.RLIM_INFINITY))

    process = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "serve", "--config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"},
        preexec_fn=cap,
    )
    jobs: dict[str, str] = {}
    refused: list[str] = []
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("kassa: serving on tcp://127.0.0.1:"), line
        client = Client(context, line.split()[-1], A2)
        try:
            health: dict[str, Any] = {}
            for round_ in range(100):  # ~1 MiB of receipts at most: far past the limit
                batch = [
                    {"external_id": f"r{round_}-{n}", "receipt": kassa_receipt(10_000 + n)}
                    for n in range(10)
                ]
                accepted, unavailable = sort_answers(
                    batch, client.ok("submit_batch", jobs=batch)["results"]
                )
                jobs.update(accepted)
                refused += unavailable
                if unavailable:
                    health = client.ok("ping")["health"]
                    if health["state"] == "degraded":
                        break
            assert health.get("state") == "degraded", "the journal never filled up"
            assert "SQLITE_IOERR" in health["cause"] or "SQLITE_FULL" in health["cause"]
            assert health["retry_after"] >= 1
            error = client.error("submit", external_id="one-more", receipt=kassa_receipt())
            assert error["code"] == "unavailable" and error["retry_after"] >= 1, error
            refused.append("one-more")
            assert client.ok("status", job_id=next(iter(jobs.values())))["job"]["state"]
        finally:
            client.close()
        assert process.poll() is None, "the service died"
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.stderr is not None
    log = process.stderr.read()
    assert "the journal cannot commit: disk I/O error" in log, log[-2000:]
    assert "Traceback" not in log and "ExceptionGroup" not in log, log[-2000:]
    assert jobs and refused
    assert journaled(tmp_path / "journal.db") == set(jobs)  # nothing accepted lost, no more


def test_kassa_serve_on_a_journal_that_cannot_commit_at_start_says_so_in_one_line(
    tmp_path: Path,
) -> None:
    """The files may hold the journal's schema but not its first commit: exit 2, one line."""
    probe = sqlite3.connect(tmp_path / "probe.db", isolation_level=None)
    probe.execute("PRAGMA journal_mode=WAL")
    probe.execute("PRAGMA synchronous=FULL")
    probe.executescript(_SCHEMA)  # as the journal opens: the schema's pages in the WAL
    schema = max(os.path.getsize(tmp_path / f"probe.db{end}") for end in ("", "-wal", "-shm"))
    probe.close()

    def cap() -> None:  # the schema fits, a commit's page more does not
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (schema + 1024, resource.RLIM_INFINITY))

    config = write_config(tmp_path, CONFIG_FOR_SERVE)
    done = subprocess.run(
        [sys.executable, "-m", "engine.cli", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        preexec_fn=cap,
        timeout=30,
    )
    assert done.returncode == 2, done.stderr
    # The journal is made beside its path and moved into place whole: making it fails, and
    # the one line names the journal and the store's error.
    last = done.stderr.splitlines()[-1]
    assert last.startswith("kassa: error: ") and "disk I/O error" in last, done.stderr
    assert str(tmp_path / "journal.db") in last, done.stderr
    assert "Traceback" not in done.stderr
