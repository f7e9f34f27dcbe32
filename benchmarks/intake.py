"""``kassa bench intake``: submits over ZeroMQ up to their journaled ack, in jobs/s.

The service runs as ``kassa serve --config kassa.toml`` in its own process; this process is its
client, an :class:`engine.client.TrioKassaClient` (many requests in flight) on
tcp://127.0.0.1 with CURVE on, as a shop's back end would be. Every job has its own
external_id and the same realistic receipt (``engine.samples.card_sale``: two lines, paid by
card, as Kassa JSON). Each mode sends ``--jobs`` jobs, or stops at ``--seconds``:

- ``single ×K``: one ``submit`` per job, K requests in flight (K = 1 and 64);
- ``batch B ×K``: ``submit_batch`` of B jobs per request (B = 100), K in flight (1 and 4).

``--single none`` or ``--batches none`` leaves that shape out (to profile the other alone, with
``--profile-service FILE``: the service under cProfile). With ``--distinct`` each job's receipt
has its own buyer (1008): the engine remembers the checks of the receipts it saw last by body,
so receipts all alike measure intake with that memory answering, distinct ones without it.

For each mode: acked jobs/s and requests/s, the p50 and p99 latency of one request (send to
answer), the service process's CPU time per acked job (utime + stime of /proc/PID/stat over
the mode's wall time) and its peak resident memory so far (VmHWM of /proc/PID/status).

What an ack guarantees: the service answers a submit only when the engine's ``submit_many``
has returned, which is after the job was validated, then inserted into its queue and
committed by the journal's writer thread (one commit: the job enters the journal ``queued``).
The journal is SQLite in WAL mode with ``synchronous=FULL`` (set on every connection by
engine/journal.py, not configurable), so the commit is fsynced before the answer leaves: an
acked job survives a crash or power loss of the service at any later point, and a repeat of
its external_id answers the same job. Many requests in flight share a transaction and its
fsync (group commit: the service gathers each tenant's submits into rounds, and the writer
thread commits whatever queued meanwhile in one go), which is why jobs/s grows with what is
in flight. After the run the journal file is
opened to read back its journal_mode and count the jobs it holds.

Registers: the tenant's group is a ``kassa emulator serve`` fleet of ``--registers`` (2)
Shtrih-M registers in a third process, so the engine runs as deployed (registers connected,
shifts open, receipts being fiscalized) but fiscalization barely competes with intake: at the
modelled timing two registers sign a few receipts a second (under 100 in a default run),
against thousands of jobs/s accepted. Measuring starts once every register is ready, after a
warm-up of 20 submits and a second of idling that gives the service's idle CPU. The queue
therefore grows by nearly every accepted job, so the tenant's queue limit (``[limits]
queue``, beyond which submits are answered ``busy``) is set far above the run's total, and the
token bucket (``rate``, ``burst``) far above any rate reached. The client makes one attempt
per request, so every ``busy`` or ``rate_limited`` answer is counted in the result rather than
retried away. The three processes share the machine's cores; the client's CPU (this process)
is reported beside the service's, to show which side was the limit.
"""

from __future__ import annotations

import argparse
import math
import os
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio
from tqdm import tqdm

from benchmarks.common import Column, bench_parser, format_table, new_figure, report, show_progress
from benchmarks.processes import (
    cpu_seconds,
    cpu_times,
    emulator_fleet,
    kassa_service,
    peak_rss_bytes,
)
from engine import samples
from engine.client import BatchEntry, ClientKeys, KassaError, Submitted, TrioKassaClient
from protocols.documents.json_format import receipt_to_json

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TENANT = "bench"
#: Seconds the registers have to become ready before measuring starts anyway.
READY_TIMEOUT = 20.0
#: Seconds one request may take before it counts as a ``timeout`` error.
REQUEST_TIMEOUT = 60.0
#: Single submits sent before the first mode, not measured (handshake, caches, first commits).
WARMUP = 20


@attrs.frozen
class Mode:
    """One way of submitting: ``batch`` jobs per request (1: ``submit``), ``in_flight`` at once."""

    in_flight: int
    batch: int = 1

    @property
    def label(self) -> str:
        if self.batch == 1:
            return f"single ×{self.in_flight}"
        return f"batch {self.batch} ×{self.in_flight}"

    @property
    def key(self) -> str:
        """A prefix for external ids: every job of the run has its own."""
        return f"s{self.in_flight}" if self.batch == 1 else f"b{self.batch}x{self.in_flight}"


@attrs.define
class Tally:
    """What one mode got back."""

    requests: int = 0
    acked: int = 0
    duplicates: int = 0
    errors: Counter[str] = attrs.field(factory=Counter)
    latencies: list[float] = attrs.field(factory=list)

    def count(self, answer: Submitted | KassaError) -> None:
        if isinstance(answer, KassaError):
            self.errors[answer.code] += 1
        elif answer.duplicate:
            self.duplicates += 1
        else:
            self.acked += 1


@attrs.frozen
class Clocks:
    """Wall time, the service's user and system CPU and this process's CPU, at one moment."""

    wall: float
    user: float
    system: float
    client: float

    @classmethod
    def now(cls, pid: int) -> Clocks:
        user, system = cpu_times(pid)
        times = os.times()
        return cls(time.perf_counter(), user, system, times.user + times.system)

    def __sub__(self, other: Clocks) -> Clocks:
        return Clocks(
            self.wall - other.wall,
            self.user - other.user,
            self.system - other.system,
            self.client - other.client,
        )


# --- the client ----------------------------------------------------------------------------------


async def _wait_ready(client: TrioKassaClient, timeout: float) -> list[str]:
    """Wait until every register is ready (connected, ФН read); their states at the end."""
    deadline = trio.current_time() + timeout
    while True:
        states = [r.state for r in await client.registers()]
        if all(s == "ready" for s in states) or trio.current_time() > deadline:
            return states
        await trio.sleep(0.1)


async def _run_mode(
    client: TrioKassaClient,
    mode: Mode,
    jobs: int,
    seconds: float,
    body: Mapping[str, Any],
    prefix: str,
    distinct: bool = False,
) -> Tally:
    """Send ``jobs`` jobs ``mode``'s way (or until ``seconds``), ``in_flight`` requests at once.

    The external ids are ``PREFIX-0`` … ``PREFIX-(jobs-1)``: new to the journal, every one.
    With ``distinct``, each job's buyer (1008) is its own, so no two receipts are the same.
    """

    def receipt(external_id: str) -> Mapping[str, Any]:
        if not distinct:
            return body
        return {**body, "client": {"contact": f"{external_id}@buyer.example"}}

    tally = Tally()
    sent = 0
    deadline = trio.current_time() + seconds

    async def sender() -> None:
        nonlocal sent
        while sent < jobs and trio.current_time() < deadline:
            first, count = sent, min(mode.batch, jobs - sent)
            sent += count
            ids = [f"{prefix}-{i}" for i in range(first, first + count)]
            began = time.perf_counter()
            answers: list[Submitted | KassaError]
            try:
                if mode.batch == 1:
                    answers = [await client.submit(ids[0], receipt(ids[0]))]
                else:
                    answers = await client.submit_batch(BatchEntry(e, receipt(e)) for e in ids)
            except KassaError as exc:  # the whole request refused (busy, rate_limited, timeout)
                answers = [exc] * count
            tally.latencies.append(time.perf_counter() - began)
            tally.requests += 1
            for answer in answers:
                tally.count(answer)

    async with trio.open_nursery() as nursery:
        for _ in range(mode.in_flight):
            nursery.start_soon(sender)
    return tally


def _percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile (``q`` in 0..1) of ``values``; 0.0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _row(mode: Mode, tally: Tally, spent: Clocks, rss_kib: int) -> dict[str, Any]:
    jobs, wall, cpu = tally.acked, spent.wall, spent.user + spent.system
    return {
        "mode": mode.label,
        "kind": "single" if mode.batch == 1 else "batch",
        "in_flight": mode.in_flight,
        "batch": mode.batch,
        "requests": tally.requests,
        "acked": jobs,
        "duplicates": tally.duplicates,
        "busy": tally.errors.get("busy", 0),
        "rate_limited": tally.errors.get("rate_limited", 0),
        "errors": dict(sorted(tally.errors.items())),
        "seconds": round(wall, 3),
        "jobs_per_s": round(jobs / wall, 1) if wall > 0 else 0.0,
        "requests_per_s": round(tally.requests / wall, 1) if wall > 0 else 0.0,
        "p50_ms": round(_percentile(tally.latencies, 0.50) * 1000, 2),
        "p99_ms": round(_percentile(tally.latencies, 0.99) * 1000, 2),
        "service_cpu_us_per_job": round(cpu / jobs * 1e6, 1) if jobs else 0.0,
        "service_cores": round(cpu / wall, 2) if wall > 0 else 0.0,
        "service_system_share": round(spent.system / cpu, 2) if cpu > 0 else 0.0,
        "service_rss_peak_mib": round(rss_kib / 1024, 1),
        "client_cpu_us_per_job": round(spent.client / jobs * 1e6, 1) if jobs else 0.0,
        "client_cores": round(spent.client / wall, 2) if wall > 0 else 0.0,
    }


async def _measure(
    endpoint: str,
    keys: ClientKeys,
    service_pid: int,
    modes: Sequence[Mode],
    jobs: int,
    seconds: float,
    progress: bool,
    idle_seconds: float,
    distinct: bool = False,
) -> tuple[list[dict[str, Any]], list[str], float]:
    """Each mode's row, the registers' states when measuring began, the service's idle cores."""
    body = receipt_to_json(samples.card_sale())
    rows = []
    async with TrioKassaClient.open(endpoint, keys, timeout=REQUEST_TIMEOUT, attempts=1) as client:
        states = await _wait_ready(client, READY_TIMEOUT)
        warm = await _run_mode(client, Mode(in_flight=4), WARMUP, seconds, body, "warmup")
        if warm.acked == 0:
            raise RuntimeError(f"no submit was accepted while warming up: {dict(warm.errors)}")
        before = Clocks.now(service_pid)
        await trio.sleep(idle_seconds)  # the registers' own work and the engine's timers
        idle = Clocks.now(service_pid) - before
        with tqdm(modes, file=sys.stderr, disable=not progress, unit="mode", leave=False) as bar:
            for mode in bar:
                bar.set_description(mode.label)
                before = Clocks.now(service_pid)
                tally = await _run_mode(client, mode, jobs, seconds, body, mode.key, distinct)
                spent = Clocks.now(service_pid) - before
                rows.append(_row(mode, tally, spent, peak_rss_bytes(service_pid) // 1024))
                bar.set_postfix(jobs_per_s=rows[-1]["jobs_per_s"])
    return rows, states, (idle.user + idle.system) / idle.wall


def _journal_facts(path: Path) -> dict[str, Any]:
    """The journal as the service left it: its mode, and its jobs by state."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
        states = connection.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall()
    finally:
        connection.close()
    return {
        "store": "sqlite",
        "journal_mode": str(mode),
        "synchronous": "FULL (engine/journal.py sets it on every connection)",
        "jobs": sum(int(n) for _, n in states),
        "job_states": {str(state): int(n) for state, n in sorted(states)},
    }


def run(
    modes: Sequence[Mode],
    jobs: int,
    seconds: float,
    registers: int,
    progress: bool,
    idle_seconds: float = 1.0,
    profile: Path | None = None,
    distinct: bool = False,
) -> dict[str, Any]:
    """Start the fleet and the service, measure every mode, stop both; the result's fields."""
    with emulator_fleet(registers) as fleet:
        addresses = [f"tcp://127.0.0.1:{port}" for port in fleet.ports]
        with kassa_service(addresses, tenant=TENANT, profile=profile) as service:
            started = time.perf_counter()
            rows, states, idle_cores = trio.run(
                _measure,
                service.endpoint,
                service.keys,
                service.pid,
                modes,
                jobs,
                seconds,
                progress,
                idle_seconds,
                distinct,
            )
            measured = time.perf_counter() - started
            rss = peak_rss_bytes(service.pid) // 1024
            service_cpu = cpu_seconds(service.pid)
            journal = _journal_facts(service.journal)
    return {
        "jobs_per_mode": jobs,
        "seconds_cap_per_mode": seconds,
        "registers": registers,
        "register_states": states,
        "receipt": "engine.samples.card_sale (2 lines, card), Kassa JSON",
        "receipts": "distinct (a buyer 1008 of each job's own)" if distinct else "all the same",
        "transport": "ZeroMQ tcp://127.0.0.1, CURVE",
        "journal": journal,
        "measured_s": round(measured, 1),
        "service_cpu_s": round(service_cpu, 2),
        "service_idle_cores": round(idle_cores, 3),
        "service_rss_peak_mib": round(rss / 1024, 1),
        "rows": rows,
    }


# --- the report ----------------------------------------------------------------------------------

COLUMNS = (
    Column("mode", "mode"),
    Column("requests", "requests", ","),
    Column("acked", "acked", ","),
    Column("dup", "duplicates", ","),
    Column("busy", "busy", ","),
    Column("jobs/s", "jobs_per_s", ",.0f"),
    Column("req/s", "requests_per_s", ",.0f"),
    Column("p50 ms", "p50_ms", ".2f"),
    Column("p99 ms", "p99_ms", ".2f"),
    Column("CPU µs/job", "service_cpu_us_per_job", ",.0f"),
    Column("cores", "service_cores", ".2f"),
    Column("RSS MiB", "service_rss_peak_mib", ".1f"),
    Column("client cores", "client_cores", ".2f"),
)


def figure(rows: Sequence[dict[str, Any]], title: str) -> Figure:
    """Jobs/s per mode beside the p50 and p99 latency of one request."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    labels = [row["mode"] for row in rows]
    chart = new_figure(10.0, 1.0 + 0.55 * len(rows))
    rate_axes, latency_axes = chart.subplots(1, 2, sharey=True)
    positions = list(range(len(rows)))
    bars = rate_axes.barh(positions, [row["jobs_per_s"] for row in rows], color="tab:blue")
    rate_axes.bar_label(bars, labels=[f"{r['jobs_per_s']:,.0f}" for r in rows], padding=3)
    rate_axes.set_yticks(positions, labels)
    rate_axes.invert_yaxis()
    rate_axes.set_xlabel("journaled acks, jobs/s")
    rate_axes.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))
    rate_axes.margins(x=0.25)
    height = 0.4
    for n, (key, name) in enumerate((("p50_ms", "p50"), ("p99_ms", "p99"))):
        values = [max(row[key], 0.01) for row in rows]
        placed = [p - height / 2 + n * height for p in positions]
        bars = latency_axes.barh(placed, values, height=height, label=name)
        latency_axes.bar_label(bars, labels=[f"{v:,.1f}" for v in values], padding=3, fontsize=8)
    latency_axes.set_xscale("log")
    latency_axes.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    latency_axes.xaxis.set_minor_formatter(NullFormatter())
    latency_axes.set_xlabel("ms per request (log scale)")
    latency_axes.legend(loc="best")
    latency_axes.margins(x=0.3)
    chart.suptitle(title)
    return chart


def _counts(text: str) -> list[int]:
    if text.strip().lower() in ("", "none"):
        return []  # none of that shape: profile the other alone
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected numbers like 1,64") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected numbers of at least 1")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser("kassa bench intake", __doc__)
    parser.add_argument("--jobs", type=int, default=5_000, help="jobs per mode (default 5000)")
    parser.add_argument(
        "--seconds", type=float, default=30.0, help="time cap per mode (default 30 s)"
    )
    parser.add_argument("--batch", type=int, default=100, help="jobs per submit_batch (≤ 1000)")
    parser.add_argument(
        "--single", type=_counts, default=[1, 64], help="single submits in flight (default 1,64)"
    )
    parser.add_argument(
        "--batches", type=_counts, default=[1, 4], help="batch requests in flight (default 1,4)"
    )
    parser.add_argument("--registers", type=int, default=2, help="emulated registers (default 2)")
    parser.add_argument(
        "--distinct",
        action="store_true",
        help="give every job its own buyer (1008): no two receipts alike, so the engine's "
        "memory of checked receipts never helps",
    )
    parser.add_argument(
        "--profile-service",
        type=Path,
        metavar="FILE",
        help="run the service under cProfile and write its statistics to FILE "
        "(with --single none or --batches none, one shape alone)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.jobs, args.seconds, args.batch = 40, 5.0, 10
    if not 1 <= args.batch <= 1000:
        parser.error(f"--batch: {args.batch}: a submit_batch takes 1 to 1000 jobs")
    if args.jobs < 1 or args.registers < 1 or args.seconds <= 0:
        parser.error("--jobs, --registers and --seconds must be positive")
    both = [Mode(k) for k in args.single] + [Mode(k, args.batch) for k in args.batches]
    modes = list(dict.fromkeys(both))  # each once: a mode run twice would send repeats
    if not modes:
        parser.error("--single none and --batches none leave nothing to measure")
    idle = 0.3 if args.quick else 1.0
    result = run(
        modes,
        args.jobs,
        args.seconds,
        args.registers,
        show_progress(args),
        idle,
        args.profile_service,
        args.distinct,
    )
    rows = result["rows"]
    table = format_table(rows, COLUMNS)
    journal = result["journal"]
    states = ", ".join(f"{state} {n:,}" for state, n in journal["job_states"].items())
    table += (
        f"\nreceipts: {result['receipts']}"
        f"\njournal: {journal['store']} {journal['journal_mode']}, synchronous=FULL; "
        f"{journal['jobs']:,} jobs after the run ({states})"
        f"\nservice: idle {result['service_idle_cores']:.2f} cores, peak RSS "
        f"{result['service_rss_peak_mib']} MiB; registers {', '.join(result['register_states'])}"
    )
    title = f"kassa bench intake: submit → journaled ack ({args.registers} registers)"
    report(args, "intake", result, table, figure(rows, title))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
