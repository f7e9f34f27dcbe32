"""``kassa bench crash``: the real processes, killed for real.

``kassa emulator serve`` runs an emulated Shtrih-M fleet in its own process for the whole run.
``kassa serve`` runs on a file journal (SQLite, ``synchronous=FULL``) over that fleet, and is
killed with SIGKILL at random moments (``--kills`` times, seeded by ``--seed``) and restarted
each time on the same journal: some kills come within half a second of a restart, while the
engine reconnects and recovers its in-doubt jobs, the rest while it takes in, journals and
fiscalizes receipts. Client threads, each with its own ZeroMQ client, submit receipts (alone
and in batches) at a steady pace all along and resubmit whatever they did not see
acknowledged, as real clients do (the external_id makes that safe).

After the last kill the service runs until every acknowledged job is final, then stops, and
every ФН archive is read through the register protocol: each signed receipt's job marker
(1192, or 1084 ``kassa-job``) says which job, and so which external_id, it fiscalizes.

- ``lost``: an external_id the client saw accepted whose receipt is on no ФН (unless its job
  ended in a clear ``failed``), or a job answered ``fiscalized`` whose document is absent;
- ``duplicated``: an external_id fiscalized on more than one document;
- ``failed_on_fn``: a job answered ``failed`` whose receipt is on a ФН all the same.

The last line (with ``--json``) has ``receipts``, ``kills``, ``lost`` and ``duplicated``; the
exit status is 0 only when ``lost``, ``duplicated`` and ``failed_on_fn`` are all 0.
"""

from __future__ import annotations

import bisect
import random
import sqlite3
import statistics
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs
import trio
import zmq
from tqdm import tqdm

from benchmarks.common import bench_parser, new_figure, report, show_progress
from benchmarks.e2e import kassa_receipt_seconds
from benchmarks.engine_fleet import job_marker
from benchmarks.processes import (
    ServiceFolder,
    emulator_fleet,
    service_folder,
    start_service,
    stop_child,
)
from emulator.timing import model_named
from engine import samples
from engine.client import BatchEntry, KassaClient, KassaError, Submitted
from engine.connectors import tcp_connector
from engine.recovery import MARKER_LENGTH
from protocols.documents.model import Receipt

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MODEL = "shtrih-m-online"
#: Errors after which resubmitting the same receipt cannot help: the run reports them.
REFUSALS = frozenset(
    {
        "validation",
        "conflict",
        "bad_request",
        "too_large",
        "too_deep",
        "unsupported_version",
        "unknown_op",
        "refused",
        "bad_answer",
    }
)
#: A client's wait for one answer (s): past it, the submit was not acknowledged.
ANSWER_TIMEOUT = 1.0
#: The share of kills that come within :data:`EARLY` seconds of the service saying it serves,
#: and the share that, after their delay, wait for a client request to be on its way.
EARLY_SHARE = 0.3
INTAKE_SHARE = 0.3
EARLY = 0.5
#: The longest a kill waits after a restart (s), and then for a request in flight.
LATEST = 4.0
#: Jobs on both answers of a FINAL state: on a ФН, by the engine's word.
ON_FN = frozenset({"fiscalized", "resolved"})


@attrs.frozen
class KillMoment:
    """When to SIGKILL the service: ``delay`` s after it says it serves, and then, if
    ``on_intake``, as soon as a client request is on its way (or :data:`LATEST` s more)."""

    delay: float
    on_intake: bool


def kill_plan(kills: int, seed: int, latest: float = LATEST) -> list[KillMoment]:
    """The seeded moments of ``kills`` kills.

    A share come within :data:`EARLY` s, while the engine reconnects and reads the ФН archives
    for its in-doubt jobs; a share wait for a request in flight (intake, the journal's group
    commit, the answer); the rest land wherever the run is, mostly mid-fiscalization.
    """
    rng = random.Random(seed)
    early = min(EARLY, latest)
    plan = []
    for _ in range(kills):
        draw = rng.random()
        if draw < EARLY_SHARE:
            plan.append(KillMoment(rng.uniform(0.0, early), on_intake=False))
        else:
            on_intake = draw < EARLY_SHARE + INTAKE_SHARE
            plan.append(KillMoment(rng.uniform(early, latest), on_intake))
    return plan


def receipt_mix() -> list[Receipt]:
    """What the clients sell, in turn: 1192 carries the marker, or 1084 when 1192 is taken."""
    sale = samples.card_sale()
    return [
        sale,
        samples.marked_sale(),
        samples.prepayment(),
        attrs.evolve(sale, additional_prop="promo-7"),
    ]


@attrs.define
class Ledger:
    """What the clients saw, shared by their threads (under ``lock``)."""

    lock: threading.Condition = attrs.field(factory=threading.Condition)
    #: external_id → the job id of its first acknowledgement.
    acknowledged: dict[str, str] = attrs.field(factory=dict)
    #: (seconds since the start, acknowledgements so far), for the plot.
    timeline: list[tuple[float, int]] = attrs.field(factory=list)
    submitted: int = 0  # external_ids sent at least once
    resubmits: int = 0  # sends of an external_id after one that was not acknowledged
    duplicate_answers: int = 0  # acknowledgements that said "an earlier submit's job"
    refused: Counter[str] = attrs.field(factory=Counter)
    in_flight: int = 0  # requests sent and not answered yet

    def acknowledge(self, answer: Submitted, at: float) -> None:
        with self.lock:
            self.acknowledged.setdefault(answer.job.external_id, answer.job.id)
            self.duplicate_answers += answer.duplicate
            self.timeline.append((at, len(self.acknowledged)))


class Client(threading.Thread):
    """One client: a blocking ZeroMQ client submitting at ``rate`` receipts/s until ``stop``,
    each batch again and again until every entry of it is acknowledged or refused."""

    def __init__(
        self,
        name: str,
        setup: ServiceFolder,
        context: zmq.Context[zmq.Socket[bytes]],
        ledger: Ledger,
        rate: float,
        seed: int,
        stop: threading.Event,
        give_up: threading.Event,
        began: float,
    ) -> None:
        super().__init__(name=name, daemon=True)
        self._setup, self._context, self._ledger = setup, context, ledger
        self._rate, self._rng = rate, random.Random(seed)
        self._no_more, self._abandon, self._began = stop, give_up, began
        self._mix = receipt_mix()

    def run(self) -> None:
        with KassaClient(
            self._setup.endpoint,
            self._setup.keys,
            timeout=ANSWER_TIMEOUT,
            attempts=1,
            context=self._context,
        ) as client:
            count, due = 0, time.monotonic()
            while not self._no_more.is_set():
                size = 1 if self._rng.random() < 0.5 else self._rng.randint(2, 6)
                batch = [
                    BatchEntry(f"{self.name}-{n}", self._mix[n % len(self._mix)])
                    for n in range(count, count + size)
                ]
                count += size
                with self._ledger.lock:
                    self._ledger.submitted += size
                self._until_acknowledged(client, batch)
                due += size / self._rate
                self._no_more.wait(max(0.0, due - time.monotonic()))

    def _until_acknowledged(self, client: KassaClient, batch: list[BatchEntry]) -> None:
        ledger = self._ledger
        while batch and not self._abandon.is_set():
            with ledger.lock:
                ledger.in_flight += 1
                ledger.lock.notify_all()
            try:
                if len(batch) == 1:
                    entry = batch[0]
                    answers: Sequence[Submitted | KassaError] = [
                        client.submit(entry.external_id, entry.receipt)
                    ]
                else:
                    answers = client.submit_batch(batch)
            except KassaError as error:
                answers = [error] * len(batch)
            finally:
                with ledger.lock:
                    ledger.in_flight -= 1
            at = time.monotonic() - self._began
            pending = []
            for entry, answer in zip(batch, answers, strict=True):
                if isinstance(answer, Submitted):
                    ledger.acknowledge(answer, at)
                elif answer.code in REFUSALS:
                    with ledger.lock:
                        ledger.refused[answer.code] += 1
                else:
                    pending.append(entry)
            if pending:
                with ledger.lock:
                    ledger.resubmits += len(pending)
                self._abandon.wait(0.05)
            batch = pending


@attrs.frozen
class Kill:
    """One SIGKILL: when (s since the start), how long after the service said it serves, and
    how many client requests were unanswered at that moment."""

    at: float
    after_start: float
    requests_in_flight: int
    on_intake: bool


def kill_when_planned(
    process: subprocess.Popen[str], moment: KillMoment, ledger: Ledger, latest: float
) -> tuple[float, int]:
    """SIGKILL ``process`` at ``moment``; the seconds since ``moment`` began, and how many
    requests were in flight then."""
    began = time.monotonic()
    time.sleep(moment.delay)
    with ledger.lock:
        if moment.on_intake:
            ledger.lock.wait_for(lambda: ledger.in_flight > 0, timeout=latest)
        process.kill()
        in_flight = ledger.in_flight
    process.wait()
    return time.monotonic() - began, in_flight


def settle(setup: ServiceFolder, expected: set[str], cap: float) -> dict[str, str]:
    """Every job's state, once all of ``expected`` (external_ids) are final or ``cap`` s pass."""
    deadline = time.monotonic() + cap
    with KassaClient(setup.endpoint, setup.keys, timeout=30.0) as client:
        while True:
            states: dict[str, str] = {}
            after: str | None = ""
            while after is not None:
                page = client.list_jobs(after, 1000)
                states.update((job.external_id, job.state) for job in page.jobs)
                after = page.next
            final = {"fiscalized", "resolved", "failed"}
            if all(states.get(e) in final for e in expected) or time.monotonic() > deadline:
                return states
            time.sleep(0.25)


@attrs.frozen
class SignedReceipt:
    """A receipt in a ФН's archive that carries a job marker."""

    fn_number: str
    fd_number: int
    marker: str


async def read_archives(ports: Sequence[int]) -> tuple[list[SignedReceipt], int]:
    """Every marked receipt of every register's ФН, read over the Shtrih protocol (FF3Ah/FF3Bh),
    and how many documents were read in all."""
    found: list[SignedReceipt] = []
    documents = 0

    async def one(port: int) -> None:
        nonlocal documents
        driver = await tcp_connector("shtrih", "127.0.0.1", port)()
        try:
            status = await driver.status()
            for fd_number in range(1, status.last_fd + 1):
                marker = job_marker(await driver.read_document(fd_number))
                documents += 1
                if marker is not None:
                    found.append(SignedReceipt(status.fn_number, fd_number, marker))
        finally:
            await driver.aclose()

    async with trio.open_nursery() as nursery:
        for port in ports:
            nursery.start_soon(one, port)
    return found, documents


@attrs.frozen
class JournaledJob:
    """A job as the journal holds it once the service stopped."""

    external_id: str
    state: str
    error: str | None


@attrs.frozen
class Recovery:
    """One decision of recovery on an in-doubt job (``recovery.found`` or ``.absent``)."""

    kind: str
    at: float  # wall clock
    job_id: str


@attrs.frozen
class Journal:
    """What the journal says once the service stopped: its jobs by id, and every decision
    recovery took on an in-doubt job."""

    jobs: dict[str, JournaledJob]
    recoveries: list[Recovery]


def read_journal(setup: ServiceFolder) -> Journal:
    """The journal of ``setup``'s tenant, opened read-only after the service stopped."""
    with sqlite3.connect(f"file:{setup.journal}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT id, external_id, state, error FROM jobs WHERE tenant = ?", (setup.tenant,)
        ).fetchall()
        events = db.execute(
            "SELECT kind, ts, job_id FROM events"
            " WHERE kind IN ('recovery.found', 'recovery.absent') ORDER BY seq"
        ).fetchall()
    return Journal(
        {row[0]: JournaledJob(*row[1:]) for row in rows}, [Recovery(*event) for event in events]
    )


def tally(
    acknowledged: dict[str, str],
    states: dict[str, str],
    journal: dict[str, JournaledJob],
    signed: Sequence[SignedReceipt],
) -> dict[str, Any]:
    """Lost, duplicated and the rest, per external_id, from what the clients, the service,
    the journal and the ФН archives say."""
    on_fn = Counter(receipt.marker for receipt in signed)
    jobs: dict[str, set[str]] = {}  # external_id → every job id anyone gave it
    for external_id, job_id in acknowledged.items():
        jobs.setdefault(external_id, set()).add(job_id)
    for job_id, job in journal.items():
        jobs.setdefault(job.external_id, set()).add(job_id)
    known = {job_id[:MARKER_LENGTH] for ids in jobs.values() for job_id in ids}
    lost: list[str] = []
    duplicated: list[str] = []
    failed_on_fn: list[str] = []
    for external_id, ids in sorted(jobs.items()):
        copies = sum(on_fn[job_id[:MARKER_LENGTH]] for job_id in ids)
        state = states.get(external_id, "missing")
        if copies == 0 and (external_id in acknowledged or state in ON_FN) and state != "failed":
            lost.append(external_id)
        if copies > 1:
            duplicated.append(external_id)
        if copies and state == "failed":
            failed_on_fn.append(external_id)
    final = {"fiscalized", "resolved", "failed"}
    return {
        "lost": len(lost),
        "duplicated": len(duplicated),
        "failed_on_fn": len(failed_on_fn),
        "failed": sum(states.get(e) == "failed" for e in jobs),
        "unsettled": sum(states.get(e) not in final for e in acknowledged),
        "not_in_journal": sum(
            job_id not in journal for job_id in acknowledged.values()
        ),  # acknowledged, then gone
        "stray_receipts": sum(n for marker, n in on_fn.items() if marker not in known),
        "states": dict(Counter(states.get(e, "missing") for e in jobs)),
        "failures": dict(
            Counter(job.error or "" for job in journal.values() if job.state == "failed")
        ),
        "examples": {
            "lost": lost[:5],
            "duplicated": duplicated[:5],
            "failed_on_fn": failed_on_fn[:5],
        },
    }


def run(
    kills: int,
    registers: int,
    clients: int,
    rate: float,
    seed: int,
    latest: float,
    settle_cap: float,
    progress: bool,
) -> dict[str, Any]:
    began = time.monotonic()
    ledger = Ledger()
    done: list[Kill] = []
    stop, give_up = threading.Event(), threading.Event()
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    bar = tqdm(total=kills, disable=not progress, unit="kill", leave=False)
    with emulator_fleet(registers, model=MODEL, seed=seed) as fleet:
        addresses = [f"tcp://127.0.0.1:{port}" for port in fleet.ports]
        with service_folder(addresses) as setup:
            threads = [
                Client(f"c{n}", setup, context, ledger, rate / clients, seed * 1000 + n, stop,
                       give_up, began)
                for n in range(clients)
            ]  # fmt: skip
            starts = [time.time()]  # wall clock, as the journal's events are stamped
            process = start_service(setup)
            try:
                for thread in threads:
                    thread.start()
                for moment in kill_plan(kills, seed, latest):
                    after, in_flight = kill_when_planned(process, moment, ledger, latest)
                    done.append(Kill(time.monotonic() - began, after, in_flight, moment.on_intake))
                    bar.update()
                    starts.append(time.time())
                    process = start_service(setup)
                kill_phase = time.monotonic() - began
                stop.set()
                for thread in threads:  # each finishes resubmitting its last batch
                    thread.join(settle_cap)
                give_up.set()
                for thread in threads:
                    thread.join()
                settle_began = time.monotonic()
                states = settle(setup, set(ledger.acknowledged), settle_cap)
                settled = time.monotonic() - settle_began
            finally:
                give_up.set()
                stop_child(process)
                bar.close()
            context.term()
            journal = read_journal(setup)
        read_began = time.monotonic()
        signed, documents = trio.run(read_archives, fleet.ports)
        read = time.monotonic() - read_began
    wall = time.monotonic() - began
    counts = tally(ledger.acknowledged, states, journal.jobs, signed)
    # the run each recovery happened in: the last one started before it
    recovering_runs = {bisect.bisect(starts, recovery.at) for recovery in journal.recoveries}
    found = {r.job_id for r in journal.recoveries if r.kind == "recovery.found"}
    absent = {r.job_id for r in journal.recoveries if r.kind == "recovery.absent"}
    delays = [kill.after_start for kill in done]
    return {
        "receipts": len(signed),
        "kills": len(done),
        "lost": counts["lost"],
        "duplicated": counts["duplicated"],
        "failed_on_fn": counts["failed_on_fn"],
        "failed": counts["failed"],
        "unsettled": counts["unsettled"],
        "not_in_journal": counts["not_in_journal"],
        "stray_receipts": counts["stray_receipts"],
        "submitted": ledger.submitted,
        "acknowledged": len(ledger.acknowledged),
        "resubmits": ledger.resubmits,
        "duplicate_answers": ledger.duplicate_answers,
        "refused": dict(ledger.refused),
        "states": counts["states"],
        "failures": counts["failures"],
        "examples": counts["examples"],
        "registers": registers,
        "clients": clients,
        "offered_per_s": rate,
        "seed": seed,
        "kills_within_early_s": sum(d < EARLY for d in delays),
        "kills_waiting_for_intake": sum(kill.on_intake for kill in done),
        "kills_with_requests_in_flight": sum(kill.requests_in_flight > 0 for kill in done),
        "kill_delay_median_s": round(statistics.median(delays), 2) if delays else 0.0,
        "in_doubt_found_on_fn": len(found),
        "in_doubt_absent_resent": len(absent),
        "restarts_recovering": len(recovering_runs),
        "documents_read": documents,
        "kill_phase_s": round(kill_phase, 1),
        "settle_s": round(settled, 1),
        "archive_read_s": round(read, 1),
        "wall_s": round(wall, 1),
        "receipts_per_s": round(len(signed) / wall, 2) if wall else 0.0,
        "timeline": [[round(t, 2), n] for t, n in ledger.timeline],
        "kill_times": [round(kill.at, 2) for kill in done],
    }


def _figure(result: dict[str, Any]) -> Figure:
    """Acknowledged jobs over time, a red line at each SIGKILL."""
    figure = new_figure(8.0, 3.5)
    axes = figure.subplots()
    timeline = result["timeline"]
    if timeline:
        axes.step([t for t, _ in timeline], [n for _, n in timeline], where="post",
                  label="acknowledged")  # fmt: skip
    for n, at in enumerate(result["kill_times"]):
        axes.axvline(at, color="red", linewidth=0.8, alpha=0.6, label="SIGKILL" if n == 0 else None)
    axes.set_xlabel("seconds")
    axes.set_ylabel("jobs acknowledged")
    axes.set_title(
        f"kassa serve killed {result['kills']} times: {result['receipts']} receipts, "
        f"lost {result['lost']}, duplicated {result['duplicated']}"
    )
    axes.legend(loc="upper left", fontsize=8)
    return figure


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser("kassa bench crash", __doc__)
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs of kassa serve")
    parser.add_argument("--registers", type=int, default=4, help="emulated Shtrih registers")
    parser.add_argument("--clients", type=int, default=4, help="client threads")
    parser.add_argument(
        "--rate",
        type=float,
        help="receipts/s all clients offer together (default: half the fleet's limit)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the kill moments and load")
    parser.add_argument(
        "--latest", type=float, default=LATEST, help="the longest a kill waits after a restart"
    )
    parser.add_argument(
        "--settle", type=float, default=180.0, help="seconds the last run may take to finish"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.kills, args.registers, args.clients, args.latest = 2, 2, 2, 1.0
    for option in ("kills", "registers", "clients"):
        if getattr(args, option) < 1:
            parser.error(f"--{option} {getattr(args, option)}: at least 1")
    limit = args.registers / kassa_receipt_seconds(model_named(MODEL), samples.card_sale())
    rate = args.rate if args.rate is not None else round(limit / 2, 1)
    if rate <= 0:
        parser.error(f"--rate {rate}: receipts/s above 0")
    result = run(
        args.kills,
        args.registers,
        args.clients,
        rate,
        args.seed,
        args.latest,
        args.settle,
        show_progress(args),
    )
    lines = [
        f"{'kills':<22}{result['kills']} SIGKILLs: {result['kills_within_early_s']} within"
        f" {EARLY} s of a restart, {result['kills_with_requests_in_flight']} with client"
        f" requests in flight ({result['kills_waiting_for_intake']} waited for one)",
        f"{'in doubt at a kill':<22}{result['in_doubt_found_on_fn']} jobs found signed on the"
        f" ФН, {result['in_doubt_absent_resent']} proven absent and sent again (recovery in"
        f" {result['restarts_recovering']} of {result['kills']} restarts)",
        f"{'receipts':<22}{result['receipts']} on {result['registers']} ФН"
        f" ({result['documents_read']} documents read back)",
        f"{'acknowledged':<22}{result['acknowledged']} of {result['submitted']} external_ids"
        f" ({result['resubmits']} resubmits, {result['duplicate_answers']} answered as earlier)",
        f"{'lost':<22}{result['lost']}",
        f"{'duplicated':<22}{result['duplicated']}",
        f"{'failed':<22}{result['failed']} (on a ФН all the same: {result['failed_on_fn']})",
        f"{'job states':<22}{result['states']}",
        *(f"{'  failed because':<22}{n} × {error}" for error, n in result["failures"].items()),
        f"{'time':<22}{result['wall_s']} s: kills {result['kill_phase_s']} s, settling"
        f" {result['settle_s']} s, reading the archives {result['archive_read_s']} s",
    ]
    if result["unsettled"] or result["not_in_journal"] or result["stray_receipts"]:
        lines.append(
            f"{'also':<22}{result['unsettled']} unsettled, {result['not_in_journal']}"
            f" acknowledged but not in the journal, {result['stray_receipts']} stray receipts"
        )
    if result["refused"]:
        lines.append(f"{'refused':<22}{result['refused']}")
    report(args, "crash", result, "\n".join(lines), _figure(result))
    bad = result["lost"] or result["duplicated"] or result["failed_on_fn"]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
