"""``kassa bench faults``: receipts through the engine and the emulator while things break.

N receipts go to an emulated Shtrih fleet in simulated time while M faults are scheduled over
the run: a quarter are engine crashes (its nursery cancelled, then restarted on the same
journal), the rest power lost before or after a ФН commit and connections cut mid-frame, each on
a random register; bytes are also corrupted at a small rate on top. ``faults`` in the result
counts every fault actually injected (a one-shot due after the run ends never fires). Every
client then resubmits every receipt, as real clients do after a crash (the external_id makes
that safe), and every ФН archive is read: a job whose receipt is not there exactly once is lost
or duplicated. The last line (with ``--json``) has ``receipts``, ``faults``, ``lost`` and
``duplicated``; the exit status is 0 only when nothing was lost or duplicated.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio
from tqdm import tqdm

from benchmarks.common import Column, bar_figure, bench_parser, format_table, report, show_progress
from benchmarks.engine_fleet import fleet_config, markers_in_archive
from benchmarks.simclock import journal_aware_clock
from emulator.serve import open_memory_fleet
from engine import samples
from engine.engine import Engine
from engine.journal import JobState
from engine.recovery import MARKER_LENGTH
from protocols.documents.model import Receipt

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Simulated seconds one receipt keeps a Shtrih register busy, with its read-back (measured
#: in simulated time on shtrih-m-online: about 0.5 s); it spreads the faults over the run.
RECEIPT_SECONDS = 0.5
LINK_FAULTS = ("power-before", "power-after", "disconnect")


def _receipts(n: int) -> list[tuple[str, Receipt]]:
    kinds = [samples.card_sale(), samples.marked_sale(), samples.correction(), samples.prepayment()]
    return [(f"order-{i}", attrs.evolve(kinds[i % len(kinds)])) for i in range(n)]


def fault_plan(faults: int, registers: int, duration: float, seed: int) -> tuple[str, list[float]]:
    """The emulator's fault spec and the engine's crash times for ``faults`` faults in all.

    A quarter are engine crashes; the rest are one-shot power losses and disconnects, each
    on a random register at a random time of the run, plus a small byte corruption rate.
    """
    rng = random.Random(seed)
    crashes = sorted(rng.uniform(0.05, 0.95) * duration for _ in range(faults // 4))
    items = []
    for _ in range(faults - len(crashes)):
        at = rng.uniform(0.02, 0.98) * duration
        items.append(f"{rng.choice(LINK_FAULTS)}@{at:.3f}#{rng.randrange(registers)}")
    items.append("corrupt:0.00002")
    return ",".join(items), crashes


async def run(
    receipts: int, faults: int, registers: int, seed: int, progress: bool
) -> dict[str, Any]:
    jobs = _receipts(receipts)
    duration = receipts / registers * RECEIPT_SECONDS
    spec, crashes = fault_plan(faults, registers, duration, seed)
    with tempfile.TemporaryDirectory(prefix="kassa-bench-faults-") as folder:
        crashed = 0
        bar = tqdm(total=receipts, disable=not progress, unit="receipt", leave=False)
        async with open_memory_fleet(registers, faults=spec, seed=seed) as fleet:
            config = fleet_config(fleet, Path(folder) / "journal.db", probe_interval=0.5)
            start = trio.current_time()
            for crash_at in [*crashes, None]:
                with trio.CancelScope() as scope:
                    if crash_at is not None:
                        scope.deadline = start + crash_at
                    async with Engine.open(config) as engine:
                        submitted = await engine.submit_many("shop", jobs)
                        done = 0
                        for answer in submitted:
                            if not isinstance(answer, Exception):
                                job = await engine.wait("shop", answer.id)
                                done += job.state in (JobState.FISCALIZED, JobState.RESOLVED)
                        bar.n = done
                        bar.refresh()
                        break
                crashed += scope.cancelled_caught
            bar.close()
            archive = markers_in_archive(fleet)
            async with Engine.open(config) as engine:
                states: Counter[str] = Counter()
                lost = duplicated = 0
                for external_id, receipt in jobs:
                    job = await engine.submit("shop", external_id, receipt)
                    job = await engine.wait("shop", job.id)
                    states[job.state.value] += 1
                    count = archive[job.id[:MARKER_LENGTH]]
                    lost += count == 0 or job.state not in (JobState.FISCALIZED, JobState.RESOLVED)
                    duplicated += count > 1
            simulated = trio.current_time() - start
            injected = Counter(event.kind for event in fleet.faults)
    injected["engine-crash"] = crashed
    return {
        "receipts": receipts,
        "registers": registers,
        "faults": sum(injected.values()),
        "fault_kinds": dict(sorted(injected.items())),
        "lost": lost,
        "duplicated": duplicated,
        "states": dict(states),
        "simulated_s": round(simulated, 1),
        "receipts_per_simulated_s": round(receipts / simulated, 2),
        "stray_receipts": sum(archive.values()) - (receipts - lost),
    }


def _figure(result: dict[str, Any]) -> Figure:
    """The injected fault kinds as bars; what was lost and duplicated in the title."""
    kinds: dict[str, int] = result["fault_kinds"]
    return bar_figure(
        f"{result['receipts']} receipts on {result['registers']} registers, "
        f"{result['faults']} faults injected\n"
        f"lost {result['lost']}, duplicated {result['duplicated']}",
        kinds,
        {"injected": list(kinds.values())},
        "faults injected",
    )


def _add_cluster_arguments(group: Any) -> None:
    """The real-process run's options, declared here so that ``--help`` shows them without
    importing psycopg (:func:`benchmarks.faults_cluster.add_arguments` says what they do)."""
    group.add_argument(
        "--journal",
        metavar="URL",
        help="a postgresql:// URL: run K real kassa serve processes on a scratch database there",
    )
    group.add_argument("--engines", type=int, help="kassa serve processes (K; default 2)")
    group.add_argument("--seconds", type=float, default=45.0, help="the load's length (s)")
    group.add_argument("--kills", type=int, help="engine SIGKILLs (default 6)")
    group.add_argument("--cuts", type=int, help="journal connection cuts (default 3)")
    group.add_argument("--clients", type=int, default=4, help="client threads")
    group.add_argument("--lease-seconds", type=float, default=2.0, help="each engine's leases")
    group.add_argument("--settle", type=float, default=120.0, help="seconds to finish after")


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser("kassa bench faults", __doc__)
    parser.add_argument("--receipts", type=int, default=2000, help="receipts to fiscalize")
    parser.add_argument(
        "--faults",
        type=int,
        help="faults scheduled over the run (default 200; with --journal, the emulator's"
        " one-shot link faults, default 8)",
    )
    parser.add_argument(
        "--registers", type=int, help="emulated Shtrih registers (default 10; 4 with --journal)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the fault plan and faults")
    cluster_options = parser.add_argument_group(
        "real processes on PostgreSQL (with --journal; see benchmarks/faults_cluster.py)"
    )
    _add_cluster_arguments(cluster_options)
    args = parser.parse_args(argv)
    if args.journal is not None:
        args.engines = 2 if args.engines is None else args.engines
        from benchmarks import faults_cluster  # psycopg: only for a PostgreSQL journal

        return faults_cluster.main(args, parser)
    if args.engines is not None:
        parser.error("--engines: engine processes share a PostgreSQL journal: give --journal URL")
    args.faults = 200 if args.faults is None else args.faults
    args.registers = 10 if args.registers is None else args.registers
    if args.quick:
        args.receipts, args.faults, args.registers = 40, 8, 2
    began = time.perf_counter()
    result = trio.run(
        run,
        args.receipts,
        args.faults,
        args.registers,
        args.seed,
        show_progress(args),
        clock=journal_aware_clock(),
    )
    result["wall_s"] = round(time.perf_counter() - began, 1)
    result["receipts_per_s"] = round(args.receipts / result["wall_s"], 1) if result["wall_s"] else 0
    kinds = [{"kind": kind, "count": count} for kind, count in result["fault_kinds"].items()]
    table = "\n".join(
        [
            format_table(kinds, [Column("fault injected", "kind"), Column("times", "count")]),
            f"{'receipts':<16}{result['receipts']} on {result['registers']} registers",
            f"{'faults':<16}{result['faults']}",
            f"{'lost':<16}{result['lost']}",
            f"{'duplicated':<16}{result['duplicated']}",
            f"{'job states':<16}{result['states']}",
            f"{'simulated time':<16}{result['simulated_s']} s  (wall {result['wall_s']} s)",
        ]
    )
    report(args, "faults", result, table, _figure(result))
    return 0 if result["lost"] == 0 and result["duplicated"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
