"""``kassa bench emulator``: how many emulated registers one core serves at the modelled timing.

The fleet runs as ``kassa emulator serve`` in its own process, on the real clock, over TCP on
127.0.0.1. This process drives every register at once with Kassa's own Shtrih link v2 host:
open the shift, then receipts of one line (FF46h) closed in cash (FF45h), back to back. For
each fleet size N it reports receipts/s achieved, the fleet's modelled limit (N over the
modelled time of one receipt: the line, the ФН's document, and the TCP latency of each write),
their ratio, and the emulator process's CPU: the share of one core it used, and the registers
per core that share implies (N ÷ cores used).
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import trio

from benchmarks.common import bench_arguments
from emulator.timing import model_named
from protocols.shtrih import NEED_DATA, AnswerFrame, CommandFrame, LinkV2Host, Timer
from protocols.shtrih import commands as c

MODEL = "shtrih-m-online"
PASSWORD = 30
_TICKS = os.sysconf("SC_CLK_TCK")
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
    """One receipt at the model's timing: two commands, each a request and an answer write."""
    model = model_named(MODEL)
    return model.operation_time + model.fn_document_time + 4 * model.tcp_latency


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


async def _drive(ports: list[int], seconds: float) -> int:
    """Receipts completed by all registers in ``seconds`` of steady state."""
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

    async with trio.open_nursery() as nursery:
        for port in ports:
            nursery.start_soon(one, port)
        await trio.sleep(2.0)  # shifts opened, every register in its receipt loop
        counting = True
        await trio.sleep(seconds)
        nursery.cancel_scope.cancel()
    return done


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _free_port(count: int) -> int:
    """A first port with ``count`` free ports after it."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = int(probe.getsockname()[1])
        if first + count < 65535:
            return first


def measure(registers: int, seconds: float) -> dict[str, float]:
    port = _free_port(registers)
    kassa = str(Path(sys.executable).with_name("kassa"))
    command = [kassa, "emulator", "serve", "--protocol", "shtrih", "--model", MODEL]
    command += ["--registers", str(registers), "--port", str(port), "--seed", "1"]
    fleet = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert fleet.stdout is not None
        ports = [int(fleet.stdout.readline().split()[0]) for _ in range(registers)]
        cpu_before, wall_before = _cpu_seconds(fleet.pid), time.perf_counter()
        receipts = trio.run(_drive, ports, seconds)
        cpu = _cpu_seconds(fleet.pid) - cpu_before
        wall = time.perf_counter() - wall_before
    finally:
        fleet.terminate()
        fleet.wait(timeout=30)
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


def main(argv: list[str] | None = None) -> int:
    args, seconds = bench_arguments("kassa bench emulator", __doc__, argv, default_seconds=10.0)
    sizes = [2] if args.quick else [10, 50, 100, 200]
    seconds = 1.0 if args.quick else seconds
    print(f"model {MODEL}: one receipt takes {modelled_receipt_seconds() * 1000:.0f} ms modelled")
    print(
        f"{'registers':>10}{'receipts/s':>12}{'limit/s':>10}{'ratio':>8}{'core':>8}{'reg/core':>10}"
    )
    rows = []
    for size in sizes:
        row = measure(size, seconds)
        rows.append(row)
        print(
            f"{row['registers']:>10}{row['receipts_per_s']:>12}{row['limit_per_s']:>10}"
            f"{row['ratio']:>8}{row['emulator_core_share']:>8}{row['registers_per_core']:>10}"
        )
    if args.json:
        print(json.dumps({"benchmark": "emulator", "model": MODEL, "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
