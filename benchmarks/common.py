"""What every benchmark shares: its options, its timing loop, its table, its JSON and its plot.

Every benchmark ends through :func:`report`: it prints a table, writes ``NAME.json`` and
``NAME.png`` into the results folder (``results/`` unless ``--results`` says otherwise), and
with ``--json`` prints the same JSON object as its last line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from tqdm import tqdm

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Where results go unless ``--results`` names another folder.
DEFAULT_RESULTS = Path("results")


def bench_parser(prog: str, description: str | None) -> argparse.ArgumentParser:
    """A parser with the options every benchmark takes: ``--quick``, ``--json``, ``--results``."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a tiny run, for smoke tests")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument(
        "--results",
        type=Path,
        default=DEFAULT_RESULTS,
        help="folder for NAME.json and NAME.png (default: results/)",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress bar on stderr (default: when stderr is a terminal)",
    )
    return parser


def bench_arguments(
    prog: str, description: str | None, argv: list[str] | None, default_seconds: float = 1.0
) -> tuple[argparse.Namespace, float]:
    """Parse the common options and ``--seconds``; returns the options and the time per row.

    ``--quick`` is for the test suite's smoke runs: it measures for 10 ms, which proves the
    benchmark works and says nothing about speed.
    """
    parser = bench_parser(prog, description)
    parser.add_argument(
        "--seconds", type=float, default=default_seconds, help="time per measurement"
    )
    args = parser.parse_args(argv)
    if show_progress(args):
        global _measurements
        _measurements = tqdm(desc=prog, unit=" measurements", leave=False)
    return args, 0.01 if args.quick else args.seconds


#: The progress bar of a benchmark made of many :func:`rate` measurements (tqdm, on stderr).
_measurements: tqdm[Any] | None = None


def show_progress(args: argparse.Namespace) -> bool:
    """Whether to draw a progress bar: ``--progress``, or by default a terminal on stderr."""
    if args.progress is not None:
        return bool(args.progress)
    return bool(os.isatty(2)) and not args.quick


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of ``fn``, timed over doubling batches for at least ``seconds``."""
    batch = 1
    while True:
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            if _measurements is not None:
                _measurements.update()
            return batch / elapsed
        batch *= 2


def side_by_side(
    calls: Mapping[str, Callable[[], object]], seconds: float, rounds: int = 3
) -> dict[str, float]:
    """The best rate of each call over ``rounds`` alternating rounds of ``seconds / rounds``.

    Alternating keeps a ratio honest on a busy machine: load that comes and goes hits both
    sides alike, and the best round of each is its least disturbed one (as :mod:`timeit`'s
    advice goes).
    """
    best = dict.fromkeys(calls, 0.0)
    for _ in range(rounds):
        for name, call in calls.items():
            best[name] = max(best[name], rate(call, seconds / rounds))
    return best


def interleaved_best(
    calls: Mapping[str, Callable[[], object]], seconds: float, batch_seconds: float = 0.005
) -> dict[str, float]:
    """The best rate of each call over many short batches, the calls taking turns.

    For a ratio on a shared machine: a batch of a few milliseconds often runs undisturbed,
    where a round of a tenth of a second rarely does, so the best batches of each side are
    comparable. Batch sizes are fixed once, from a first rate of each call.
    """
    sizes = {
        name: max(1, round(batch_seconds * rate(call, batch_seconds)))
        for name, call in calls.items()
    }
    best = dict.fromkeys(calls, 0.0)
    deadline = time.perf_counter() + seconds
    while True:
        for name, call in calls.items():
            size = sizes[name]
            start = time.perf_counter()
            for _ in range(size):
                call()
            best[name] = max(best[name], size / (time.perf_counter() - start))
        if _measurements is not None:
            _measurements.update()
        if time.perf_counter() >= deadline:
            return best


def machine() -> dict[str, Any]:
    """What the figures were measured on: CPU model, cores, Python."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }


@attrs.frozen
class Column:
    """One column of a printed table: its heading, the row key, and a format spec."""

    title: str
    key: str
    spec: str = ""


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> str:
    """Rows as a plain right-aligned text table, one line per row under a heading line."""
    cells = [[format(row.get(c.key, ""), c.spec) for c in columns] for row in rows]
    widths = [max([len(c.title), *(len(line[i]) for line in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.title.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(line, widths, strict=True)) for line in cells]
    return "\n".join(lines)


def new_figure(width: float = 7.0, height: float = 4.0) -> Figure:
    """A figure drawn without a screen (the Agg backend), for :func:`report`'s ``plot``."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def bar_figure(
    title: str, labels: Iterable[str], series: dict[str, Sequence[float]], unit: str
) -> Figure:
    """Grouped horizontal bars: one group per label, one bar per series (e.g. Kassa, reference)."""
    names = list(labels)
    figure = new_figure(7.0, 0.6 + 0.45 * len(names) * max(1, len(series)))
    axes = figure.subplots()
    height = 0.8 / max(1, len(series))
    for n, (name, values) in enumerate(series.items()):
        positions = [i + n * height for i in range(len(names))]
        bars = axes.barh(positions, list(values), height=height, label=name)
        axes.bar_label(bars, labels=[f"{v:,.0f}" for v in values], padding=3, fontsize=8)
    axes.set_yticks([i + height * (len(series) - 1) / 2 for i in range(len(names))], names)
    axes.invert_yaxis()
    axes.set_xlabel(unit)
    axes.set_title(title)
    axes.margins(x=0.2)
    if len(series) > 1:
        axes.legend(loc="lower right")
    return figure


def codec_rows(
    rows: dict[str, dict[str, Any]], what: str, title: str, unit: str
) -> tuple[str, Figure]:
    """The table and the bars of a codec's rows: ``{name: {bytes, encode_per_s, decode_per_s}}``.

    ``what`` heads the name column (frame, value).
    """
    columns = [
        Column(what, what),
        Column("bytes", "bytes"),
        Column("encode/s", "encode_per_s", ",.0f"),
        Column("decode/s", "decode_per_s", ",.0f"),
    ]
    table = format_table([{what: name, **row} for name, row in rows.items()], columns)
    figure = bar_figure(
        title,
        rows,
        {
            "encode": [row["encode_per_s"] for row in rows.values()],
            "decode": [row["decode_per_s"] for row in rows.values()],
        },
        unit,
    )
    return table, figure


def report(
    args: argparse.Namespace,
    name: str,
    result: dict[str, Any],
    table: str,
    figure: Figure | None,
) -> None:
    """Print the table, write ``NAME.json`` and ``NAME.png``, and print the JSON last."""
    global _measurements
    if _measurements is not None:
        _measurements.close()
        _measurements = None
    result = {"benchmark": name, **result, "machine": machine()}
    print(table)
    folder: Path = args.results
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
    written = [folder / f"{name}.json"]
    if figure is not None:
        figure.savefig(folder / f"{name}.png", dpi=110)
        written.append(folder / f"{name}.png")
    print("written: " + ", ".join(str(path) for path in written))
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
