"""``kassa bench e2e --journal URL --engines K…``: throughput of K engines on one PostgreSQL.

For each fleet size N and each K: a scratch database on URL's server (migrated, dropped at the
end), one ``kassa emulator serve`` fleet of N Shtrih-M registers, and K ``kassa serve``
processes over all N registers, started together (each leases the registers it gets first).
This process is the client: one CURVE connection per engine, the receipts dealt round-robin
over them in ``submit_batch`` requests, the final job events read from every engine's PUB
socket (an engine publishes the jobs it fiscalized, whichever engine took them in).

The phases are e2e's warm-up (a receipt a register) and throughput (N × ``--per-register``,
at least 200), without its latency phase. Per K it reports receipts/s (the sum of each
register's pace, :func:`benchmarks.e2e.fleet_rate`, and the plain count over the phase's wall
time), its ratio to K = 1 at the same N, each engine's CPU µs a receipt and share of a core,
the PostgreSQL backends' CPU µs a receipt (the server processes serving this database's
connections; the server's WAL writer and checkpointer, and backends that ended mid-phase, are not
counted), and the database's
commits/s and commits a receipt (``pg_stat_database.xact_commit``).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import AsyncExitStack, suppress
from typing import Any

import psycopg
import trio
import zmq
from tqdm import tqdm

from benchmarks.cluster import (
    ScratchJournal,
    cluster_folders,
    first_line,
    scratch_journal,
    start_together,
)
from benchmarks.common import Column, format_table, new_figure, report, show_progress
from benchmarks.e2e import (
    BATCH,
    MIN_RECEIPTS,
    MODEL,
    _Events,
    _until_final,
    fleet_rate,
    kassa_receipt_seconds,
    receipt_seconds,
)
from benchmarks.processes import ServiceFolder, cpu_seconds, emulator_fleet, stop_child
from emulator.timing import model_named
from engine import samples
from engine.client import BatchEntry, TrioKassaClient
from protocols.documents.model import Receipt

#: A lease long enough that nothing expires in a run without faults (the service's default).
LEASE_SECONDS = 10.0


def backend_pids(store: ScratchJournal) -> list[int]:
    """The server processes serving connections to the scratch database (the engines')."""
    with psycopg.connect(store.admin, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND backend_type = %s",
            (store.dbname, "client backend"),
        ).fetchall()
    return [int(row[0]) for row in rows]


def _cpu(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in pids:
        # a backend that ended meanwhile: its time is not counted (the module says so)
        with suppress(OSError, IndexError, ValueError):
            total += cpu_seconds(pid)
    return total


def unfinished_states(store: ScratchJournal, ids: set[str]) -> dict[str, int]:
    """What the journal says of the jobs whose final event did not come within the cap: a job
    still queued is stuck; a final one's event was lost on the way."""
    if not ids:
        return {}
    with psycopg.connect(store.url) as db:
        rows = db.execute("SELECT state FROM jobs WHERE id = ANY(%s)", (sorted(ids),)).fetchall()
    return dict(Counter(str(row[0]) for row in rows))


def lease_split(store: ScratchJournal) -> dict[str, int]:
    """How many registers each engine holds the lease of (none on a journal without leases)."""
    with psycopg.connect(store.url) as db:
        found = db.execute("SELECT to_regclass('leases') IS NOT NULL").fetchone()
        if found is None or not found[0]:
            return {}
        rows = db.execute("SELECT owner FROM leases WHERE expires_at > now()").fetchall()
    return dict(sorted(Counter(str(row[0]) for row in rows).items()))


async def _submit(
    clients: Sequence[TrioKassaClient], prefix: str, receipts: list[Receipt]
) -> list[str]:
    """Deal ``receipts`` round-robin over the engines in batches, all engines at once."""
    ids: list[str] = []
    entries = [BatchEntry(f"{prefix}-{n}", receipt) for n, receipt in enumerate(receipts)]
    chunks = [entries[start : start + BATCH] for start in range(0, len(entries), BATCH)]

    async def engine(index: int) -> None:
        for chunk in chunks[index :: len(clients)]:
            for answer in await clients[index].submit_batch(chunk):
                if not isinstance(answer, Exception):
                    ids.append(answer.job.id)

    async with trio.open_nursery() as nursery:
        for index in range(len(clients)):
            nursery.start_soon(engine, index)
    return ids


async def _drive(
    folders: Sequence[ServiceFolder],
    pids: Sequence[int],
    store: ScratchJournal,
    fleet_pid: int,
    registers: int,
    count: int,
    cap: float,
    progress: bool,
) -> dict[str, Any]:
    context: zmq.Context[Any] = zmq.Context()
    receipt = samples.card_sale()
    try:
        async with AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(
                    TrioKassaClient.open(f.endpoint, f.keys, timeout=120, context=context)
                )
                for f in folders
            ]
            endpoints = [await client.events_endpoint() for client in clients]
            events = _Events(endpoints[0], folders[0].keys, context, also=endpoints[1:])
            events.start()
            try:
                await trio.sleep(0.5)  # the subscriptions reach the publishers
                bar = tqdm(disable=not progress, leave=False, unit="receipt")
                bar.set_description(f"{registers} registers, {len(folders)} engines: warm-up")
                bar.reset(total=registers)
                warm = await _submit(clients, "warm", [receipt] * registers)
                await _until_final(events, warm, cap, bar)

                bar.set_description(f"{registers} registers, {len(folders)} engines: throughput")
                bar.reset(total=count)
                backends = backend_pids(store)
                commits_before = store.commits()
                cpu_before = [cpu_seconds(pid) for pid in pids]
                pg_before, fleet_before = _cpu(backends), cpu_seconds(fleet_pid)
                client_before, wall_before = time.process_time(), time.perf_counter()
                ids = await _submit(clients, "load", [receipt] * count)
                await _until_final(events, ids, cap, bar)
                wall = time.perf_counter() - wall_before
                finished = len(events.done(ids))
                cpu = [cpu_seconds(p) - b for p, b in zip(pids, cpu_before, strict=True)]
                pg_cpu, fleet_cpu = (
                    _cpu(backends) - pg_before,
                    cpu_seconds(fleet_pid) - fleet_before,
                )
                client_cpu = time.process_time() - client_before
                await trio.sleep(1.0)  # the server's statistics are flushed about once a second
                commits = store.commits() - commits_before
                achieved = fleet_rate(events, ids)
                unfinished = unfinished_states(store, set(ids) - set(events.done_ids(ids)))
                bar.close()
            finally:
                events.stop()
    finally:
        context.term()
    done = max(finished, 1)
    return {
        "receipts": finished,
        "lost_events": count - finished,
        "unfinished_states": unfinished,
        "failed": events.failed,
        "wall_s": round(wall, 2),
        "receipts_per_s": round(achieved, 1),
        "receipts_per_wall_s": round(finished / wall, 1) if wall else 0.0,
        "engine_cpu_us_per_receipt": round(sum(cpu) / done * 1e6),
        "engine_cpu_us_per_receipt_each": [round(c / done * 1e6) for c in cpu],
        "engine_core_share_each": [round(c / wall, 3) for c in cpu] if wall else [],
        "postgres_cpu_us_per_receipt": round(pg_cpu / done * 1e6),
        "postgres_backends": len(backends),
        "emulator_core_share": round(fleet_cpu / wall, 3) if wall else 0.0,
        "client_core_share": round(client_cpu / wall, 3) if wall else 0.0,
        "commits": commits,
        "commits_per_s": round(commits / wall, 1) if wall else 0.0,
        "commits_per_receipt": round(commits / done, 2),
    }


def measure(
    journal: str, registers: int, engines: int, count: int, cap: float, progress: bool
) -> dict[str, Any]:
    """One fleet size with K engines: start everything, drive it, stop it, drop the database."""
    with (
        scratch_journal(journal) as store,
        emulator_fleet(registers, model=MODEL) as fleet,
    ):
        addresses = [f"tcp://127.0.0.1:{port}" for port in fleet.ports]
        with cluster_folders(addresses, store.url, engines, lease_seconds=LEASE_SECONDS) as folders:
            refused: list[str] = []
            processes = start_together(folders, refused)
            try:
                pids = [process.pid for process in processes]
                row = trio.run(
                    _drive, folders, pids, store, fleet.pid, registers, count, cap, progress
                )
                row["leases"] = lease_split(store)
                row["refused_starts"] = refused
            finally:
                for process in processes:
                    stop_child(process)
    model = model_named(MODEL)
    receipt = samples.card_sale()
    limit = registers / receipt_seconds(model, receipt)
    return {
        "registers": registers,
        "engines": engines,
        **row,
        "limit_per_s": round(limit, 1),
        "ratio": round(row["receipts_per_s"] / limit, 3),
        "kassa_sequence_limit_per_s": round(registers / kassa_receipt_seconds(model, receipt), 1),
    }


COLUMNS = (
    Column("registers", "registers"),
    Column("K", "engines"),
    Column("receipts/s", "receipts_per_s"),
    Column("per wall s", "receipts_per_wall_s"),
    Column("× K=1", "ratio_to_one"),
    Column("limit/s", "limit_per_s"),
    Column("engine µs/rcpt", "engine_cpu_us_per_receipt"),
    Column("each", "each_engine"),
    Column("cores each", "cores_each"),
    Column("PG µs/rcpt", "postgres_cpu_us_per_receipt"),
    Column("commits/s", "commits_per_s"),
    Column("commits/rcpt", "commits_per_receipt", ".2f"),
    Column("emu core", "emulator_core_share", ".2f"),
    Column("leases", "lease_text"),
    Column("failed", "failed"),
)


def _figure(rows: list[dict[str, Any]]) -> Any:
    figure = new_figure(8.0, 3.5)
    rate_axes, cpu_axes = figure.subplots(1, 2)
    for size in sorted({row["registers"] for row in rows}):
        mine = [row for row in rows if row["registers"] == size]
        ks = [row["engines"] for row in mine]
        rate_axes.plot(ks, [row["receipts_per_s"] for row in mine], marker="o", label=f"N={size}")
        cpu_axes.plot(
            ks, [row["engine_cpu_us_per_receipt"] for row in mine], marker="o", label=f"N={size}"
        )
    rate_axes.set_xlabel("engine processes K")
    rate_axes.set_ylabel("receipts/s")
    rate_axes.set_title("K engines on one PostgreSQL")
    rate_axes.legend(fontsize=8)
    cpu_axes.set_xlabel("engine processes K")
    cpu_axes.set_ylabel("engine CPU µs a receipt (all K)")
    cpu_axes.legend(fontsize=8)
    return figure


def main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``kassa bench e2e --journal URL --engines K…``: the parsed options of :mod:`.e2e`."""
    if not args.journal.startswith(("postgresql://", "postgres://")):
        parser.error(f"--journal {args.journal}: a postgresql:// URL")
    if any(k < 1 for k in args.engines):
        parser.error(f"--engines {args.engines}: each at least 1")
    sizes, per_register, least, cap = args.registers, args.per_register, MIN_RECEIPTS, args.cap
    if args.quick:
        sizes, per_register, least, cap = [2], 3, 0, 30.0
    progress = show_progress(args)
    rows = []
    try:
        for size in sizes:
            count = max(size * per_register, least)
            for engines in args.engines:
                rows.append(measure(args.journal, size, engines, count, cap, progress))
    except psycopg.Error as error:
        parser.exit(2, f"kassa bench e2e: --journal {args.journal}: {first_line(error)}\n")
    for row in rows:
        one = [r for r in rows if r["registers"] == row["registers"] and r["engines"] == 1]
        row["ratio_to_one"] = (
            round(row["receipts_per_s"] / one[0]["receipts_per_s"], 2)
            if one and one[0]["receipts_per_s"]
            else ""
        )
        row["each_engine"] = "/".join(str(c) for c in row["engine_cpu_us_per_receipt_each"])
        row["cores_each"] = "/".join(f"{c:.2f}" for c in row["engine_core_share_each"])
        row["lease_text"] = " ".join(f"{e}:{n}" for e, n in row["leases"].items()) or "-"
    result = {"model": MODEL, "journal": "postgresql", "rows": rows}
    notes = [
        f"N = {row['registers']}, K = {row['engines']}: an engine exited instead of serving"
        f" {len(row['refused_starts'])} times and was started again; {row['refused_starts'][0]}"
        for row in rows
        if row["refused_starts"]
    ] + [
        f"N = {row['registers']}, K = {row['engines']}: {row['lost_events']} jobs not final"
        f" within {cap:g} s; the journal holds them as {row['unfinished_states']}"
        for row in rows
        if row["lost_events"]
    ]
    table = "\n".join([format_table(rows, list(COLUMNS)), *notes])
    report(args, "e2e_cluster", result, table, _figure(rows))
    return 0 if all(row["failed"] == 0 and row["lost_events"] == 0 for row in rows) else 1
