"""``kassa bench emulator``: how many emulated registers one core serves at the modelled timing.

The fleet runs as ``kassa emulator serve`` in its own process, on the real clock, over TCP on
127.0.0.1. This process drives every register at once with Kassa's own Shtrih link v2 host:
open the shift, then receipts of one line (FF46h) closed in cash (FF45h), back to back. For
each fleet size N it reports receipts/s achieved, the fleet's modelled limit (N over the
modelled time of one receipt: the line, the ФН's document, and the latency of each answer),
their ratio, and the emulator process's CPU: the share of one core it used, and the registers
per core that share implies (N ÷ cores used). A fleet size takes 2 s of warm-up plus
``--seconds`` (10 by default), so a progress bar on stderr counts those seconds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING

import trio
from tqdm import tqdm

from benchmarks.common import (
    Column,
    bench_arguments,
    format_table,
    new_figure,
    report,
    show_progress,
)
from benchmarks.e2e import command_seconds
from benchmarks.processes import cpu_seconds, emulator_fleet
from emulator.timing import model_named
from protocols.shtrih import NEED_DATA, AnswerFrame, CommandFrame, LinkV2Host, Timer
from protocols.shtrih import commands as c

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MODEL = "shtrih-m-online"
PASSWORD = 30
#: Seconds every fleet runs before counting: shifts opened, every register in its receipt loop.
WARMUP = 2.0
_LINE = c.OperationV2(
    password=PASSWORD,
    operation=1,
    quantity=Decimal(1),
    price=10_000,
    tax_rate=1 << 1,
    department=1,
    payment_method=4,
    payment_object=1,
    name="Хлеб",
)
_CLOSE = c.CloseReceiptV2(
    password=PASSWORD,
    payments=(10_000, *([0] * 15)),
    rounding=0,
    tax_sums=(0,) * 6,
    taxation=1,
)


def modelled_receipt_seconds() -> float:
    """One receipt at the model's timing: two commands, each with the write of its answer."""
    return command_seconds(model_named(MODEL), [_LINE, _CLOSE])


class _Driver:
    """One register's host: Kassa's link v2 over a TCP stream."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.link = LinkV2Host()

    async def call(self, request: c.Request) -> bytes:
        await self.stream.send_all(self.link.send(CommandFrame(payload=request.encode())))
        waits = {Timer.BYTE: 0.1, Timer.LINK: 0.5, Timer.ANSWER: 30.0, Timer.NONE: math.inf}
        while True:
            event = self.link.next_event()
            out = self.link.data_to_send()
            if out:
                await self.stream.send_all(out)
            if isinstance(event, AnswerFrame):
                return event.payload
            if event is not NEED_DATA:
                continue
            with trio.move_on_after(waits[self.link.timer]) as scope:
                data = await self.stream.receive_some()
            if scope.cancelled_caught:
                self.link.timeout()
                continue
            if not data:
                raise ConnectionError("the register closed the connection")
            self.link.receive_data(data)


async def _drive(ports: list[int], seconds: float, tick: Callable[[float], object]) -> int:
    """Receipts completed by all registers in ``seconds`` of steady state.

    ``tick`` is told every half second of the run (the warm-up and the measured seconds).
    """
    done = 0
    counting = False

    async def one(port: int) -> None:
        nonlocal done
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        driver = _Driver(stream)
        await driver.call(c.OpenShift(password=PASSWORD))
        while True:
            await driver.call(_LINE)
            await driver.call(_CLOSE)
            if counting:
                done += 1

    async def clock() -> None:
        while True:
            await trio.sleep(0.5)
            tick(0.5)

    async with trio.open_nursery() as nursery:
        for port in ports:
            nursery.start_soon(one, port)
        nursery.start_soon(clock)
        await trio.sleep(WARMUP)  # shifts opened, every register in its receipt loop
        counting = True
        await trio.sleep(seconds)
        nursery.cancel_scope.cancel()
    return done


def measure(
    registers: int, seconds: float, tick: Callable[[float], object] = lambda _: None
) -> dict[str, float]:
    """One fleet of ``registers`` in its own process, driven for ``seconds`` after the warm-up."""
    with emulator_fleet(registers, model=MODEL) as fleet:
        cpu_before, wall_before = cpu_seconds(fleet.pid), time.perf_counter()
        receipts = trio.run(_drive, list(fleet.ports), seconds, tick)
        cpu = cpu_seconds(fleet.pid) - cpu_before
        wall = time.perf_counter() - wall_before
    achieved = receipts / seconds
    limit = registers / modelled_receipt_seconds()
    core_share = cpu / wall
    return {
        "registers": registers,
        "receipts_per_s": round(achieved, 1),
        "limit_per_s": round(limit, 1),
        "ratio": round(achieved / limit, 3),
        "emulator_core_share": round(core_share, 3),
        "registers_per_core": round(registers / core_share) if core_share else 0,
    }


def _figure(rows: list[dict[str, float]]) -> Figure:
    """Receipts/s achieved against the modelled limit over fleet size, and their ratio below."""
    figure = new_figure(7.0, 6.0)
    rate_axes, ratio_axes = figure.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    sizes = [row["registers"] for row in rows]
    rate_axes.plot(sizes, [row["receipts_per_s"] for row in rows], "o-", label="achieved")
    rate_axes.plot(sizes, [row["limit_per_s"] for row in rows], "s--", label="modelled limit")
    rate_axes.set_ylabel("receipts/s")
    rate_axes.set_title(
        f"Emulated {MODEL} fleet in one process, driven over TCP\n"
        f"one receipt = {modelled_receipt_seconds() * 1000:.0f} ms modelled"
    )
    rate_axes.legend(loc="upper left")
    rate_axes.grid(alpha=0.3)
    ratio_axes.plot(sizes, [row["ratio"] for row in rows], "o-", color="tab:green")
    ratio_axes.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
    for row in rows:
        ratio_axes.annotate(
            f"emulator: {row['emulator_core_share']:.0%} of a core",
            (row["registers"], row["ratio"]),
            textcoords="offset points",
            xytext=(0, -14),
            ha="center",
            fontsize=8,
        )
    ratio_axes.set_ylim(0, 1.15)
    ratio_axes.set_ylabel("achieved / limit")
    ratio_axes.set_xlabel("registers in the fleet")
    ratio_axes.grid(alpha=0.3)
    return figure


def main(argv: list[str] | None = None) -> int:
    args, seconds = bench_arguments("kassa bench emulator", __doc__, argv, default_seconds=10.0)
    sizes = [2] if args.quick else [10, 50, 100, 200]
    seconds = 1.0 if args.quick else seconds
    rows = []
    with tqdm(
        total=len(sizes) * (WARMUP + seconds),
        unit="s",
        disable=not show_progress(args),
        leave=False,
        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s{postfix}",
    ) as bar:
        for done, size in enumerate(sizes, 1):
            bar.set_postfix(registers=size)
            rows.append(measure(size, seconds, bar.update))
            bar.n = done * (WARMUP + seconds)  # the half-second ticks drift a little
            bar.refresh()
    heading = (
        f"model {MODEL}: one receipt takes {modelled_receipt_seconds() * 1000:.0f} ms modelled"
    )
    columns = [
        Column("registers", "registers"),
        Column("receipts/s", "receipts_per_s"),
        Column("limit/s", "limit_per_s"),
        Column("ratio", "ratio"),
        Column("core", "emulator_core_share"),
        Column("reg/core", "registers_per_core"),
    ]
    table = heading + "\n" + format_table(rows, columns)
    report(args, "emulator", {"model": MODEL, "rows": rows}, table, _figure(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
