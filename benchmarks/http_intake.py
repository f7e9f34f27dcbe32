"""``kassa bench http``: receipts over the HTTP door up to their journaled ack, in jobs/s.

The twin of ``kassa bench intake`` (ZeroMQ) for the HTTP door: the same ``kassa serve --config
kassa.toml`` process over a ``kassa emulator serve`` fleet, now with an ``[http]`` door on
127.0.0.1 and an ATOL login for the tenant. This process is the load: K keep-alive HTTP/1.1
connections (a minimal client on trio's TCP streams, so that the load costs little of the two
cores it shares with the service), each sending one request, reading its answer, sending the
next. Every job has its own external_id and the same body, ``samples/atol-sell-card.json`` (a
card sale of two lines, exactly as ATOL documents the body), with a fresh timestamp.

- ``single ×K``: ``POST /possystem/v5/main/sell`` per job, K connections (1 and 32 by default).
  Its 200 ``{"status": "wait"}`` is the ack: the engine has journaled the job (committed and
  fsynced by SQLite at ``synchronous=FULL``) before the door answers, as over ZeroMQ.
- ``batch B ×K``: KOMTET's ``POST /api/shop/v2/queues/main/multi-tasks``, B checks a request
  (50 by default; ATOL v5 has no batch request), K connections (1 and 4 by default). The body
  is an array of ``samples/komtet-sell-card.json`` (the same card sale of two lines, in KOMTET's
  shape), each with its own external_id, signed as KOMTET's SDKs sign (hex HMAC-MD5 over
  method + URL + body, keyed by the shop's secret; the service has that shop configured).
  An entry answered with a task (``state: "new"``) is an ack: all of a request's checks are
  journaled in one commit before the answer leaves.

For each mode: acked jobs/s and requests/s, the p50 and p99 latency of one request, the
service process's CPU time per acked job (utime + stime of /proc/PID/stat over the mode's wall
time) and its peak RSS, and this process's CPU per job beside it. The token comes from
getToken once, before measuring; a warm-up of 20 sells precedes the first mode. Rate and
queue limits are set far above what the run reaches; a 429 is counted, never retried.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import trio

from benchmarks.common import Column, bench_parser, format_table, report
from benchmarks.intake import Clocks, Mode, _counts, _journal_facts, _percentile, figure
from benchmarks.processes import (
    HttpDoorSetup,
    cpu_seconds,
    emulator_fleet,
    kassa_service,
    peak_rss_bytes,
)
from engine.http.credentials import hash_password, komtet_signature
from engine.http.komtet import MAX_TASKS

TENANT = "bench"
LOGIN, PASSWORD = "bench-atol", "bench-password-1"
GROUP = "main"
SAMPLES = Path(__file__).parents[1] / "samples"
SAMPLE = SAMPLES / "atol-sell-card.json"
KOMTET_SAMPLE = SAMPLES / "komtet-sell-card.json"
SHOP_ID, SHOP_SECRET = "4242", "bench-komtet-secret-0123456789"
MULTI_TASKS = f"/api/shop/v2/queues/{GROUP}/multi-tasks"
#: Seconds the door has to answer its first getToken after the service says it serves.
READY_TIMEOUT = 30.0
#: Seconds one request may take before the run fails.
REQUEST_TIMEOUT = 60.0
WARMUP = 20


class Connection:
    """One keep-alive HTTP/1.1 connection: a request out, its whole answer in."""

    def __init__(self, stream: trio.SocketStream, host: str) -> None:
        self.stream = stream
        self.host = host
        self._buffer = b""
        #: The server said ``Connection: close`` (hypercorn does after 1,000 requests).
        self.closing = False

    @classmethod
    async def open(cls, base: str) -> Connection:
        host, port = base.removeprefix("http://").rsplit(":", 1)
        return cls(await trio.open_tcp_stream(host, int(port)), f"{host}:{port}")

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> tuple[int, bytes]:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body:
            lines += ["Content-Type: application/json; charset=utf-8"]
        lines += [f"Content-Length: {len(body)}", "", ""]
        await self.stream.send_all("\r\n".join(lines).encode() + body)
        while b"\r\n\r\n" not in self._buffer:
            await self._more()
        head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            elif name.strip().lower() == b"connection" and value.strip().lower() == b"close":
                self.closing = True
        while len(self._buffer) < length:
            await self._more()
        answer, self._buffer = self._buffer[:length], self._buffer[length:]
        return status, answer

    async def _more(self) -> None:
        chunk = await self.stream.receive_some(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self._buffer += chunk

    async def aclose(self) -> None:
        await self.stream.aclose()


@attrs.define
class Tally:
    requests: int = 0
    acked: int = 0
    duplicates: int = 0
    errors: Counter[str] = attrs.field(factory=Counter)
    latencies: list[float] = attrs.field(factory=list)

    def count(self, status: int, answer: bytes) -> None:
        if status == 200 and json.loads(answer).get("status") == "wait":
            self.acked += 1
        elif status == 400 and json.loads(answer)["error"]["code"] == 33:
            self.duplicates += 1
        elif status == 429:
            self.errors["rate_limited"] += 1
        else:
            self.errors[f"http {status}"] += 1

    def count_batch(self, status: int, answer: bytes, entries: int) -> None:
        """A multi-tasks answer: one verdict per entry, or one for all when refused whole."""
        if status != 200:
            self.errors["rate_limited" if status == 429 else f"http {status}"] += entries
            return
        for verdict in json.loads(answer).values():
            if verdict.get("state") == "new" and "id" in verdict:
                self.acked += 1
            elif verdict.get("code") == "external_id.duplicate":
                self.duplicates += 1
            else:
                self.errors[str(verdict.get("code"))] += 1


def sell_body(external_id: str, template: Mapping[str, Any]) -> bytes:
    stamp = dt.datetime.now(dt.UTC).strftime("%d.%m.%Y %H:%M:%S")
    body = {**template, "external_id": external_id, "timestamp": stamp}
    return json.dumps(body, ensure_ascii=False).encode()


def multi_tasks_body(external_ids: Sequence[str], template: Mapping[str, Any]) -> bytes:
    tasks = [{**template, "external_id": external_id} for external_id in external_ids]
    return json.dumps(tasks, ensure_ascii=False).encode()


async def get_token(base: str) -> str:
    """A token, once the door answers (it may still be starting)."""
    credentials = json.dumps({"login": LOGIN, "pass": PASSWORD}).encode()
    with trio.fail_after(READY_TIMEOUT):
        while True:
            try:
                connection = await Connection.open(base)
            except OSError:
                await trio.sleep(0.1)
                continue
            try:
                status, answer = await connection.request(
                    "POST", "/possystem/v5/getToken", credentials
                )
            finally:
                await connection.aclose()
            if status != 200:
                raise RuntimeError(f"getToken answered {status}: {answer[:300]!r}")
            token: str = json.loads(answer)["token"]
            return token


async def _run_single(
    base: str, token: str, mode: Mode, jobs: int, seconds: float, template: Mapping[str, Any]
) -> Tally:
    """``jobs`` sells (or until ``seconds``) over ``mode.in_flight`` connections."""
    tally = Tally()
    sent = 0
    deadline = trio.current_time() + seconds
    headers = {"Token": token}

    async def sender() -> None:
        nonlocal sent
        connection = await Connection.open(base)
        try:
            while sent < jobs and trio.current_time() < deadline:
                body = sell_body(f"{mode.key}-{sent}", template)
                sent += 1
                began = time.perf_counter()
                with trio.fail_after(REQUEST_TIMEOUT):
                    status, answer = await connection.request(
                        "POST", f"/possystem/v5/{GROUP}/sell", body, headers
                    )
                tally.latencies.append(time.perf_counter() - began)
                tally.requests += 1
                tally.count(status, answer)
                if connection.closing:  # answered, then closed by the server: a new one
                    await connection.aclose()
                    connection = await Connection.open(base)
        finally:
            await connection.aclose()

    async with trio.open_nursery() as nursery:
        for _ in range(mode.in_flight):
            nursery.start_soon(sender)
    return tally


async def _run_batch(
    base: str, mode: Mode, jobs: int, seconds: float, template: Mapping[str, Any]
) -> Tally:
    """``jobs`` checks (or until ``seconds``), ``mode.batch`` a multi-tasks request, over
    ``mode.in_flight`` connections."""
    tally = Tally()
    sent = 0
    deadline = trio.current_time() + seconds
    url = base + MULTI_TASKS  # what the SDK signs: the full URL as it addresses the server

    async def sender() -> None:
        nonlocal sent
        connection = await Connection.open(base)
        try:
            while sent < jobs and trio.current_time() < deadline:
                first, count = sent, min(mode.batch, jobs - sent)
                sent += count
                ids = [f"{mode.key}-{i}" for i in range(first, first + count)]
                body = multi_tasks_body(ids, template)
                headers = {
                    "Authorization": SHOP_ID,
                    "X-HMAC-Signature": komtet_signature(SHOP_SECRET, "POST", url, body),
                }
                began = time.perf_counter()
                with trio.fail_after(REQUEST_TIMEOUT):
                    status, answer = await connection.request("POST", MULTI_TASKS, body, headers)
                tally.latencies.append(time.perf_counter() - began)
                tally.requests += 1
                tally.count_batch(status, answer, count)
                if connection.closing:
                    await connection.aclose()
                    connection = await Connection.open(base)
        finally:
            await connection.aclose()

    async with trio.open_nursery() as nursery:
        for _ in range(mode.in_flight):
            nursery.start_soon(sender)
    return tally


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
        "errors": dict(sorted(tally.errors.items())),
        "seconds": round(wall, 3),
        "jobs_per_s": round(jobs / wall, 1) if wall > 0 else 0.0,
        "requests_per_s": round(tally.requests / wall, 1) if wall > 0 else 0.0,
        "p50_ms": round(_percentile(tally.latencies, 0.50) * 1000, 2),
        "p99_ms": round(_percentile(tally.latencies, 0.99) * 1000, 2),
        "service_cpu_us_per_job": round(cpu / jobs * 1e6, 1) if jobs else 0.0,
        "service_cores": round(cpu / wall, 2) if wall > 0 else 0.0,
        "service_rss_peak_mib": round(rss_kib / 1024, 1),
        "client_cpu_us_per_job": round(spent.client / jobs * 1e6, 1) if jobs else 0.0,
        "client_cores": round(spent.client / wall, 2) if wall > 0 else 0.0,
    }


async def _measure(
    base: str, pid: int, modes: Sequence[Mode], jobs: int, seconds: float
) -> list[dict[str, Any]]:
    """Each mode's row, in the order given."""
    template = json.loads(SAMPLE.read_text())
    komtet = json.loads(KOMTET_SAMPLE.read_text())
    token = await get_token(base)
    warm = await _run_single(base, token, Mode(4), WARMUP, seconds, template)
    if warm.acked == 0:
        raise RuntimeError(f"no sell was acknowledged while warming up: {dict(warm.errors)}")
    rows = []
    for mode in modes:
        before = Clocks.now(pid)
        if mode.batch == 1:
            tally = await _run_single(base, token, mode, jobs, seconds, template)
        else:
            tally = await _run_batch(base, mode, jobs, seconds, komtet)
        spent = Clocks.now(pid) - before
        if tally.acked == 0:
            raise RuntimeError(f"{mode.label}: nothing was acknowledged: {dict(tally.errors)}")
        rows.append(_row(mode, tally, spent, peak_rss_bytes(pid) // 1024))
    return rows


def run(modes: Sequence[Mode], jobs: int, seconds: float, registers: int) -> dict[str, Any]:
    """Start the fleet and the service with its HTTP door, measure, stop both."""
    hashed = hash_password(PASSWORD)
    with emulator_fleet(registers) as fleet:
        addresses = [f"tcp://127.0.0.1:{port}" for port in fleet.ports]
        door = HttpDoorSetup(komtet=(SHOP_ID, SHOP_SECRET))
        with kassa_service(addresses, tenant=TENANT, http=(LOGIN, hashed), door=door) as service:
            started = time.perf_counter()
            rows = trio.run(_measure, service.http, service.pid, modes, jobs, seconds)
            measured = time.perf_counter() - started
            rss = peak_rss_bytes(service.pid) // 1024
            service_cpu = cpu_seconds(service.pid)
            journal = _journal_facts(service.journal)
    return {
        "jobs_per_mode": jobs,
        "seconds_cap_per_mode": seconds,
        "registers": registers,
        "receipt": "samples/atol-sell-card.json (2 lines, card), ATOL v5 sell",
        "batch_receipt": (
            "samples/komtet-sell-card.json (the same sale), KOMTET v2 multi-tasks, signed"
        ),
        "transport": "HTTP/1.1 keep-alive on 127.0.0.1, no TLS; one load process",
        "journal": journal,
        "measured_s": round(measured, 1),
        "service_cpu_s": round(service_cpu, 2),
        "service_rss_peak_mib": round(rss / 1024, 1),
        "rows": rows,
    }


COLUMNS = (
    Column("mode", "mode"),
    Column("requests", "requests", ","),
    Column("acked", "acked", ","),
    Column("dup", "duplicates", ","),
    Column("jobs/s", "jobs_per_s", ",.0f"),
    Column("p50 ms", "p50_ms", ".2f"),
    Column("p99 ms", "p99_ms", ".2f"),
    Column("CPU µs/job", "service_cpu_us_per_job", ",.0f"),
    Column("cores", "service_cores", ".2f"),
    Column("RSS MiB", "service_rss_peak_mib", ".1f"),
    Column("client cores", "client_cores", ".2f"),
)


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser("kassa bench http", __doc__)
    parser.add_argument("--jobs", type=int, default=5_000, help="jobs per mode (default 5000)")
    parser.add_argument(
        "--seconds", type=float, default=30.0, help="time cap per mode (default 30 s)"
    )
    parser.add_argument(
        "--single", type=_counts, default=[1, 32], help="connections, one per mode (default 1,32)"
    )
    parser.add_argument(
        "--batched",
        type=_counts,
        default=[1, 4],
        help="connections of the batched (KOMTET multi-tasks) modes, one per mode (default 1,4)",
    )
    parser.add_argument(
        "--batch", type=int, default=50, help="checks per multi-tasks request (default 50)"
    )
    parser.add_argument(
        "--no-batch", action="store_true", help="skip the batched (KOMTET multi-tasks) modes"
    )
    parser.add_argument("--registers", type=int, default=2, help="emulated registers (default 2)")
    args = parser.parse_args(argv)
    if args.quick:  # batches of 10: a few requests a connection even so
        args.jobs, args.seconds, args.batch = 40, 5.0, min(args.batch, 10)
    if args.jobs < 1 or args.registers < 1 or args.seconds <= 0:
        parser.error("--jobs, --registers and --seconds must be positive")
    if not 2 <= args.batch <= MAX_TASKS:
        parser.error(f"--batch must be 2 to {MAX_TASKS} (KOMTET's multi-tasks limit here)")
    modes = [Mode(k) for k in args.single]
    if not args.no_batch:
        modes += [Mode(k, args.batch) for k in args.batched]
    modes = list(dict.fromkeys(modes))
    result = run(modes, args.jobs, args.seconds, args.registers)
    rows = result["rows"]
    table = format_table(rows, COLUMNS)
    journal = result["journal"]
    table += (
        f"\njournal: {journal['store']} {journal['journal_mode']}, synchronous=FULL; "
        f"{journal['jobs']:,} jobs after the run"
    )
    title = (
        f"kassa bench http: ATOL v5 sell, KOMTET multi-tasks → journaled ack "
        f"({args.registers} registers)"
    )
    report(args, "http", result, table, figure(rows, title))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
