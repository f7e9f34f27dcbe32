"""``kassa bench faults --journal URL --engines K``: real processes sharing one PostgreSQL.

One ``kassa emulator serve`` fleet process, K ``kassa serve`` processes over the same
registers and one journal (a scratch database on URL's server, dropped afterwards), each with
its own ``engine_id`` and a short ``lease_seconds``, and client threads that send each batch to
one engine and, when it does not answer, resubmit it to the next, as real clients do (the
external_id makes that safe). Over ``--seconds`` these faults are injected, in a seeded plan:

- ``engine-kill``: SIGKILL of an engine process (the most recently started first, so a
  restart is itself killed now and then); with K > 1 it is restarted either at once or after
  its leases have run out (the others take its registers over, recovering from the ФН
  archive), with K = 1 at once;
- ``journal-cut``: every connection between the engines and PostgreSQL dropped, and new ones
  refused for up to two seconds, by a TCP proxy the engines reach the server through;
- the emulator's link faults: power lost before or after a ФН commit, a connection cut
  mid-frame, each on a random register once, and bytes corrupted at a small rate.

Then every engine runs until each acknowledged job is final, and every ФН archive is read
through the register protocol: each receipt's job marker (1192) says which job it is. ``lost``
and ``duplicated`` count external_ids as :mod:`benchmarks.crash` does. The last line (with
``--json``) has ``receipts``, ``faults`` (and ``fault_kinds``), ``lost`` and ``duplicated``;
the exit status is 0 only when nothing was lost or duplicated.
"""

from __future__ import annotations

import argparse
import random
import re
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import psycopg
import trio
import zmq
from tqdm import tqdm

from benchmarks.cluster import (
    JournalProxy,
    cluster_folders,
    first_line,
    journal_proxy,
    scratch_journal,
    start_together,
)
from benchmarks.common import Column, bar_figure, format_table, report, show_progress
from benchmarks.crash import (
    ANSWER_TIMEOUT,
    MODEL,
    REFUSALS,
    JournaledJob,
    Ledger,
    read_archives,
    receipt_mix,
    tally,
)
from benchmarks.e2e import kassa_receipt_seconds
from benchmarks.processes import ServiceFolder, emulator_fleet, start_service, stop_child
from emulator.timing import model_named
from engine import samples
from engine.client import BatchEntry, KassaClient, KassaError, Submitted

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LINK_FAULTS = ("power-before", "power-after", "disconnect")
#: A line the fleet writes on standard error for each fault it injects.
FAULT_LINE = re.compile(r"^fault at [0-9.]+ s: register (\d+) (\S+)")
#: The longest journal outage (s); each lasts a seeded time from a tenth of it.
CUT_SECONDS = 2.0
#: Starts of an engine tried before the run gives up on it.
START_ATTEMPTS = 10
#: The longest a planned kill waits for an engine to kill (one restarting is not yet up).
KILL_WAIT = 60.0
#: Seconds from the fleet's start to the load's: its one-shot faults are planned after it.
STARTUP_GUESS = 5.0


@attrs.frozen
class Action:
    """A planned fault of the run: ``kind`` at ``at`` s after the load began."""

    at: float
    kind: str  # "engine-kill" or "journal-cut"
    #: engine-kill: seconds until the engine is started again; journal-cut: the outage.
    seconds: float


def fault_plan(
    kills: int,
    cuts: int,
    link_faults: int,
    registers: int,
    engines: int,
    lease_seconds: float,
    duration: float,
    seed: int,
) -> tuple[list[Action], str]:
    """The seeded kills and cuts over ``duration``, and the fleet's ``--faults`` spec."""
    rng = random.Random(seed)
    actions = []
    for n in range(kills):
        # with others to take over, every other kill stays down past its leases
        later = engines > 1 and n % 2 == 1
        actions.append(
            Action(rng.uniform(0.05, 0.9) * duration, "engine-kill",
                   lease_seconds * 2 + 1 if later else 0.2)
        )  # fmt: skip
    for _ in range(cuts):
        outage = rng.uniform(0.1, 1.0) * CUT_SECONDS
        actions.append(Action(rng.uniform(0.05, 0.9) * duration, "journal-cut", outage))
    items = []
    for _ in range(link_faults):
        at = STARTUP_GUESS + rng.uniform(0.02, 0.9) * duration
        items.append(f"{rng.choice(LINK_FAULTS)}@{at:.3f}#{rng.randrange(registers)}")
    items.append("corrupt:0.00002")
    return sorted(actions, key=lambda action: action.at), ",".join(items)


class Engines:
    """K ``kassa serve`` processes: killed on demand, started again in threads of their own (a
    start takes seconds), so that the plan's other faults keep their times."""

    def __init__(self, folders: Sequence[ServiceFolder]) -> None:
        self.folders = list(folders)
        self._lock = threading.Lock()
        self._processes: list[subprocess.Popen[str] | None] = [None] * len(folders)
        self._starting: dict[int, threading.Thread] = {}
        self._started_at: list[float] = [0.0] * len(folders)
        #: Why a start failed, one line each (it was tried again).
        self.refused_starts: list[str] = []

    def start_all(self) -> None:
        """Start every engine at once (:func:`~benchmarks.cluster.start_together`)."""
        processes = start_together(self.folders, self.refused_starts)
        with self._lock:
            self._processes = processes
            self._started_at = [time.monotonic()] * len(processes)

    def _start(self, index: int, after: float) -> None:
        """Start engine ``index`` after ``after`` s, again (as a service manager would) while
        it refuses to, e.g. during a journal outage, up to :data:`START_ATTEMPTS` times."""
        time.sleep(after)
        for _ in range(START_ATTEMPTS):
            try:
                process = start_service(self.folders[index])
                break
            except RuntimeError as error:
                with self._lock:
                    self.refused_starts.append(f"engine-{index}: {error}")
                time.sleep(1.0)
        else:
            return
        with self._lock:
            self._processes[index] = process
            self._started_at[index] = time.monotonic()

    def alive(self) -> list[int]:
        with self._lock:
            return [
                index
                for index, process in enumerate(self._processes)
                if process is not None and process.poll() is None and index not in self._starting
            ]

    def kill_one(self, restart_after: float) -> int | None:
        """SIGKILL the engine started last, once another is up too (or it is alone) and within
        :data:`KILL_WAIT` s; start it again after ``restart_after`` s. The index killed, or
        None when none could be."""
        deadline = time.monotonic() + KILL_WAIT
        while len(alive := self.alive()) < min(2, len(self.folders)):
            if time.monotonic() > deadline:
                return None
            time.sleep(0.1)
        with self._lock:
            index = max(alive, key=lambda i: self._started_at[i])
            process = self._processes[index]
            assert process is not None
            process.kill()
            process.wait()
            self._processes[index] = None
            thread = threading.Thread(
                target=self._restart, args=(index, restart_after), daemon=True
            )
            self._starting[index] = thread
        thread.start()
        return index

    def _restart(self, index: int, after: float) -> None:
        try:
            self._start(index, after)
        finally:
            with self._lock:
                self._starting.pop(index, None)

    def all_up(self) -> None:
        """Wait for every restart under way, then start any engine still down."""
        with self._lock:
            threads = list(self._starting.values())
        for thread in threads:
            thread.join()
        for index in range(len(self.folders)):
            with self._lock:
                down = self._processes[index] is None
            if down:
                self._start(index, 0.0)
        if len(self.alive()) < len(self.folders):
            raise RuntimeError(f"engines did not start again: {self.refused_starts[-3:]}")

    def stop(self) -> None:
        with self._lock:
            threads = list(self._starting.values())
        for thread in threads:
            thread.join()
        for process in self._processes:
            if process is not None:
                stop_child(process)


class Client(threading.Thread):
    """One client: a KassaClient per engine, each batch to one engine, again and again (to the
    next engine each time) until every entry is acknowledged or refused."""

    def __init__(
        self,
        number: int,
        folders: Sequence[ServiceFolder],
        context: zmq.Context[zmq.Socket[bytes]],
        ledger: Ledger,
        rate: float,
        seed: int,
        stop: threading.Event,
        give_up: threading.Event,
        began: float,
    ) -> None:
        super().__init__(name=f"c{number}", daemon=True)
        self._number, self._folders, self._context = number, folders, context
        self._ledger, self._rate, self._rng = ledger, rate, random.Random(seed)
        self._no_more, self._abandon, self._began = stop, give_up, began
        self._mix = receipt_mix()
        self.switches = 0

    def run(self) -> None:
        clients = [
            KassaClient(
                folder.endpoint, folder.keys, timeout=ANSWER_TIMEOUT, attempts=1,
                context=self._context,
            )
            for folder in self._folders
        ]  # fmt: skip
        try:
            count, due, target = 0, time.monotonic(), self._number
            while not self._no_more.is_set():
                size = 1 if self._rng.random() < 0.5 else self._rng.randint(2, 6)
                batch = [
                    BatchEntry(f"{self.name}-{n}", self._mix[n % len(self._mix)])
                    for n in range(count, count + size)
                ]
                count += size
                with self._ledger.lock:
                    self._ledger.submitted += size
                target = self._until_acknowledged(clients, target, batch)
                due += size / self._rate
                self._no_more.wait(max(0.0, due - time.monotonic()))
        finally:
            for client in clients:
                client.close()

    def _until_acknowledged(
        self, clients: list[KassaClient], target: int, batch: list[BatchEntry]
    ) -> int:
        ledger = self._ledger
        while batch and not self._abandon.is_set():
            client = clients[target % len(clients)]
            with ledger.lock:
                ledger.in_flight += 1
            try:
                answers: Sequence[Submitted | KassaError] = client.submit_batch(batch)
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
                target += 1  # the next engine: this one may be down
                self.switches += 1
                self._abandon.wait(0.05)
            batch = pending
        return target


def settle(folder: ServiceFolder, expected: set[str], cap: float) -> dict[str, str]:
    """Every job's state (any engine lists them all: they share the journal), once all of
    ``expected`` are final or ``cap`` s pass."""
    deadline = time.monotonic() + cap
    final = {"fiscalized", "resolved", "failed"}
    with KassaClient(folder.endpoint, folder.keys, timeout=30.0) as client:
        while True:
            states: dict[str, str] = {}
            after: str | None = ""
            while after is not None:
                page = client.list_jobs(after, 1000)
                states.update((job.external_id, job.state) for job in page.jobs)
                after = page.next
            if all(states.get(e) in final for e in expected) or time.monotonic() > deadline:
                return states
            time.sleep(0.25)


@attrs.frozen
class SharedJournal:
    """What the shared journal holds once every engine stopped."""

    jobs: dict[str, JournaledJob]
    #: Events of each kind that is not a job's own step (recovery decisions, alerts…).
    events: Counter[str]
    #: register → (its lease's last holder, its fencing token: how many times it was granted).
    leases: dict[str, tuple[str, int]]


def read_journal(url: str, tenant: str) -> SharedJournal:
    """The jobs of ``tenant``, the other events and the register leases (where the journal
    has them) in the shared journal."""
    with psycopg.connect(url) as db:
        rows = db.execute(
            "SELECT id, external_id, state, error FROM jobs WHERE tenant = %s", (tenant,)
        ).fetchall()
        kinds = db.execute(
            "SELECT kind, COUNT(*) FROM events WHERE kind NOT LIKE 'job.%%' GROUP BY kind"
        ).fetchall()
        leases: list[tuple[Any, ...]] = []
        found = db.execute("SELECT to_regclass('leases') IS NOT NULL").fetchone()
        if found is not None and found[0]:
            leases = db.execute("SELECT register_id, owner, token FROM leases").fetchall()
    return SharedJournal(
        {row[0]: JournaledJob(row[1], row[2], row[3]) for row in rows},
        Counter({str(kind): int(n) for kind, n in kinds}),
        {str(row[0]): (str(row[1]), int(row[2])) for row in leases},
    )


def fleet_faults(log: Path) -> Counter[str]:
    """The faults the fleet says it injected, by kind."""
    kinds: Counter[str] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        if found := FAULT_LINE.match(line):
            kinds[found.group(2)] += 1
    return kinds


def _conduct(
    actions: Sequence[Action], engines: Engines, proxy: JournalProxy, began: float,
    bar: tqdm[Any],
) -> Counter[str]:  # fmt: skip
    done: Counter[str] = Counter()
    for action in actions:
        time.sleep(max(0.0, began + action.at - time.monotonic()))
        if action.kind == "engine-kill":
            done["engine-kill"] += engines.kill_one(action.seconds) is not None
        else:
            proxy.cut(action.seconds)
            done["journal-cut"] += 1
        bar.update()
    return done


def run(
    journal: str,
    engines: int,
    registers: int,
    clients: int,
    rate: float,
    seconds: float,
    kills: int,
    cuts: int,
    link_faults: int,
    lease_seconds: float,
    seed: int,
    settle_cap: float,
    progress: bool,
) -> dict[str, Any]:
    began_all = time.monotonic()
    actions, spec = fault_plan(
        kills, cuts, link_faults, registers, engines, lease_seconds, seconds, seed
    )
    ledger = Ledger()
    stop, give_up = threading.Event(), threading.Event()
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    bar = tqdm(total=len(actions), disable=not progress, unit="fault", leave=False)
    with tempfile.TemporaryDirectory(prefix="kassa-bench-faults-k-") as scratch:
        log = Path(scratch) / "fleet.log"
        with (
            scratch_journal(journal) as store,
            journal_proxy(store.url) as proxy,
            emulator_fleet(registers, model=MODEL, seed=seed, faults=spec, log=log) as fleet,
        ):
            addresses = [f"tcp://127.0.0.1:{port}" for port in fleet.ports]
            through_proxy = store.url_via(proxy.port)
            with cluster_folders(
                addresses, through_proxy, engines, lease_seconds=lease_seconds
            ) as folders:
                cluster = Engines(folders)
                try:
                    cluster.start_all()
                    if len(cluster.alive()) < engines:
                        raise RuntimeError(f"kassa serve did not start: {cluster.refused_starts}")
                    began = time.monotonic()
                    threads = [
                        Client(n, folders, context, ledger, rate / clients, seed * 1000 + n,
                               stop, give_up, began)
                        for n in range(clients)
                    ]  # fmt: skip
                    for thread in threads:
                        thread.start()
                    done = _conduct(actions, cluster, proxy, began, bar)
                    time.sleep(max(0.0, began + seconds - time.monotonic()))
                    load_phase = time.monotonic() - began
                    stop.set()
                    cluster.all_up()
                    for thread in threads:  # each finishes resubmitting its last batch
                        thread.join(settle_cap)
                    give_up.set()
                    for thread in threads:
                        thread.join()
                    settle_began = time.monotonic()
                    states = settle(folders[0], set(ledger.acknowledged), settle_cap)
                    settled = time.monotonic() - settle_began
                finally:
                    give_up.set()
                    cluster.stop()
                    bar.close()
                context.term()
            shared = read_journal(store.url, folders[0].tenant)
            read_began = time.monotonic()
            signed, documents = trio.run(read_archives, fleet.ports)
            read = time.monotonic() - read_began
            proxy_figures = (proxy.connections_cut, proxy.refused)
        injected = fleet_faults(log)
    counts = tally(ledger.acknowledged, states, shared.jobs, signed)
    kinds = Counter(done) + injected
    wall = time.monotonic() - began_all
    return {
        "receipts": len(signed),
        "faults": sum(kinds.values()),
        "fault_kinds": dict(sorted(kinds.items())),
        "lost": counts["lost"],
        "duplicated": counts["duplicated"],
        "failed_on_fn": counts["failed_on_fn"],
        "failed": counts["failed"],
        "unsettled": counts["unsettled"],
        "not_in_journal": counts["not_in_journal"],
        "stray_receipts": counts["stray_receipts"],
        "engines": engines,
        "registers": registers,
        "clients": clients,
        "lease_seconds": lease_seconds,
        "offered_per_s": rate,
        "seed": seed,
        "submitted": ledger.submitted,
        "acknowledged": len(ledger.acknowledged),
        "resubmits": ledger.resubmits,
        "client_switches": sum(thread.switches for thread in threads),
        "duplicate_answers": ledger.duplicate_answers,
        "refused": dict(ledger.refused),
        "states": counts["states"],
        "failures": counts["failures"],
        "examples": counts["examples"],
        "kills_planned": kills,
        "kills_skipped": kills - done["engine-kill"],
        "refused_starts": len(cluster.refused_starts),
        "refused_start_reasons": cluster.refused_starts[:3],
        "journal_connections_cut": proxy_figures[0],
        "journal_connections_refused": proxy_figures[1],
        "journal_events": dict(sorted(shared.events.items())),
        "lease_grants": sum(token for _, token in shared.leases.values()),
        "lease_holders": dict(sorted(shared.leases.items())),
        "documents_read": documents,
        "load_s": round(load_phase, 1),
        "settle_s": round(settled, 1),
        "archive_read_s": round(read, 1),
        "wall_s": round(wall, 1),
    }


def _figure(result: dict[str, Any]) -> Figure:
    kinds: dict[str, int] = result["fault_kinds"]
    return bar_figure(
        f"{result['receipts']} receipts, {result['engines']} engines on PostgreSQL, "
        f"{result['faults']} faults\nlost {result['lost']}, duplicated {result['duplicated']}",
        kinds,
        {"injected": list(kinds.values())},
        "faults injected",
    )


def main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``kassa bench faults --journal URL``: the parsed options of :mod:`benchmarks.faults`."""
    registers = 4 if args.registers is None else args.registers
    kills = 6 if args.kills is None else args.kills
    cuts = 3 if args.cuts is None else args.cuts
    link_faults = 8 if args.faults is None else args.faults
    if args.quick:
        registers, kills, cuts, link_faults, args.clients, args.seconds = 2, 2, 1, 2, 2, 10.0
    for name, value in (("engines", args.engines), ("registers", registers),
                        ("clients", args.clients)):  # fmt: skip
        if value < 1:
            parser.error(f"--{name} {value}: at least 1")
    if min(kills, cuts, link_faults) < 0 or args.seconds <= 0 or args.lease_seconds <= 0:
        parser.error("--kills, --cuts and --faults are counts; --seconds and --lease-seconds > 0")
    if not args.journal.startswith(("postgresql://", "postgres://")):
        parser.error(f"--journal {args.journal}: a postgresql:// URL")
    limit = registers / kassa_receipt_seconds(model_named(MODEL), samples.card_sale())
    rate = round(limit / 2, 1)
    try:
        result = run(
            args.journal, args.engines, registers, args.clients, rate, args.seconds, kills,
            cuts, link_faults, args.lease_seconds, args.seed, args.settle, show_progress(args),
        )  # fmt: skip
    except psycopg.Error as error:
        parser.exit(2, f"kassa bench faults: --journal {args.journal}: {first_line(error)}\n")
    kinds = [{"kind": kind, "count": count} for kind, count in result["fault_kinds"].items()]
    lines = [
        format_table(kinds, [Column("fault injected", "kind"), Column("times", "count")]),
        f"{'engines':<16}{result['engines']} kassa serve on one PostgreSQL journal, leases"
        f" {result['lease_seconds']:g} s; {result['registers']} registers",
        f"{'receipts':<16}{result['receipts']} on the ФН ({result['documents_read']} documents"
        " read back)",
        f"{'acknowledged':<16}{result['acknowledged']} of {result['submitted']} external_ids"
        f" ({result['resubmits']} resubmits, {result['client_switches']} to another engine)",
        f"{'faults':<16}{result['faults']}",
        f"{'lost':<16}{result['lost']}",
        f"{'duplicated':<16}{result['duplicated']}",
        f"{'failed':<16}{result['failed']} (on a ФН all the same: {result['failed_on_fn']})",
        f"{'job states':<16}{result['states']}",
        f"{'journal events':<16}{result['journal_events']}",
        f"{'leases':<16}granted {result['lease_grants']} times over {len(result['lease_holders'])}"
        f" registers; last holders {result['lease_holders']}",
        f"{'time':<16}{result['wall_s']} s: load {result['load_s']} s, settling"
        f" {result['settle_s']} s, reading the archives {result['archive_read_s']} s",
    ]
    if result["unsettled"] or result["not_in_journal"] or result["stray_receipts"]:
        lines.append(
            f"{'also':<16}{result['unsettled']} unsettled, {result['not_in_journal']}"
            f" acknowledged but not in the journal, {result['stray_receipts']} stray receipts"
        )
    report(args, "faults", result, "\n".join(lines), _figure(result))
    bad = result["lost"] or result["duplicated"] or result["failed_on_fn"]
    return 1 if bad else 0
