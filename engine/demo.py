"""``kassa demo``: the whole cloud cash register on one machine, end to end.

An emulated fleet of registers runs in-process (the CLI opens it: the engine never imports
the emulator), the engine runs on a temporary SQLite journal, and a mixed batch goes through:
sales with marked goods (one whose code the ФН's check refuses), a sale at every VAT rate, a
refund, a correction, a prepayment and then its full settlement, a duplicate and an invalid
receipt. It prints one line per job — its outcome, FD number, ФП and
QR string, or the errors with their paths — then closes the shifts and prints the operations
report, reconciled against the ФН's own close-shift counters.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TextIO

import trio

from engine import samples
from engine.config import Connector, EngineConfig, RegisterConfig, TenantConfig
from engine.engine import Engine, SubmitError, problems_of
from engine.journal import FINAL_STATES, Job
from engine.reports import render_report
from protocols.documents.model import Receipt
from protocols.fiscal_sign import SignVerifier
from protocols.tlv.enums import OperationType

#: Opens ``n`` registers and gives their connectors and a verifier of their fiscal signs.
FleetOpener = Callable[[int], AbstractAsyncContextManager[tuple[Sequence[Connector], SignVerifier]]]

TENANT = "demo-shop"
REGISTERS = 2
#: A marking code whose planned status the emulated ОИСМ refuses (emulator/marking.py): the
#: ФН's check fails, and the job with it, before anything is signed.
REFUSED_SERIAL = "REJECT42xY"
#: The kinds of the batch whose job is meant to fail.
_MEANT_TO_FAIL = frozenset({"refused code"})


def batch() -> list[tuple[str, str, Receipt]]:
    """(external_id, what it is, receipt): the mixed batch an online shop sends in a day."""
    sale = samples.card_sale()
    prepaid = samples.prepayment()
    return [
        ("order-1001", "card sale", sale),
        ("order-1002", "marked goods", samples.marked_sale("5Ab7Cd9ExY")),
        ("order-1003", "marked goods", samples.marked_sale("8Qw2Er4TyU")),
        ("order-1006", "refused code", samples.marked_sale(REFUSED_SERIAL)),
        ("order-1007", "every rate", samples.every_rate()),
        ("order-1001-refund", "refund", samples.refund(sale)),
        ("correction-0301", "correction", samples.correction()),
        ("order-1004-prepay", "prepayment", prepaid),
        ("order-1004-final", "settlement", samples.settlement(prepaid)),
        ("order-1001", "duplicate", sale),
        ("order-1005", "invalid", samples.invalid()),
    ]


def _roubles(kopecks: int) -> str:
    return f"{kopecks // 100}.{kopecks % 100:02d}"


async def run(open_fleet: FleetOpener, out: TextIO = sys.stdout) -> int:
    """Run the demo on a fleet ``open_fleet`` provides; 0 when every outcome is as expected."""
    with tempfile.TemporaryDirectory(prefix="kassa-demo-") as folder:
        async with open_fleet(REGISTERS) as (connectors, verifier):
            tenant = TenantConfig(TENANT, name="Демо-магазин")
            config = EngineConfig(
                journal=Path(folder) / "journal.db",
                tenants=(tenant,),
                registers=tuple(
                    RegisterConfig(f"kkt-{i}", TENANT, connect, address=f"emulator:{i}")
                    for i, connect in enumerate(connectors)
                ),
                verifier=verifier,
            )
            async with Engine.open(config) as engine:
                print(f"journal: {config.journal} (SQLite, WAL, synchronous=FULL)", file=out)
                print(f"registers: {REGISTERS} emulated Shtrih-M, tenant {TENANT}\n", file=out)
                ok = await _submit_and_show(engine, out)
                closed = await engine.close_all_shifts(TENANT)
                print(f"\nclosed {closed} shift(s); operations report:\n", file=out)
                report = await engine.report(TENANT)
                print(render_report(report, tenant.timezone), file=out)
                reconciled = all(
                    shift.reconciliation.status == "match"
                    for register in report.registers
                    for shift in register.shifts
                )
                return 0 if ok and reconciled else 1


async def _submit_and_show(engine: Engine, out: TextIO) -> bool:
    rows: list[tuple[str, str, str]] = []
    jobs: list[tuple[str, str, Receipt, Job, bool]] = []
    expected_ok = True
    for external_id, what, receipt in batch():
        try:
            job = await engine.submit(TENANT, external_id, receipt)
        except SubmitError as exc:
            errors = "; ".join(f"{p['path']}: {p['message']}" for p in problems_of(exc))
            rows.append((external_id, what, f"refused ({exc.code}): {errors}"))
            expected_ok &= what == "invalid"
            continue
        repeat = any(j.id == job.id for _, _, _, j, _ in jobs)
        jobs.append((external_id, what, receipt, job, repeat))
    with trio.fail_after(120):
        for _, _, _, job, _ in jobs:
            await engine.wait(TENANT, job.id)
    print(
        f"{'external_id':<18} {'kind':<13} {'job':<10} {'operation':<14} {'total':>10} "
        f"{'FD':>4} {'ФП':>10}  QR / errors",
        file=out,
    )
    for external_id, what, receipt, job, repeat in jobs:
        final = await engine.job(TENANT, job.id)
        result = await engine.result(TENANT, job.id)
        assert final is not None and final.state in FINAL_STATES
        operation = OperationType(receipt.operation).name.lower()
        if what == "correction":
            operation = f"corr. {operation}"
        total = _roubles(receipt.total)
        head = f"{external_id:<18} {what:<13} {job.id[:8]:<10} {operation:<14} {total:>10}"
        if result is None:
            print(f"{head} {'-':>4} {'-':>10}  {final.state.value}: {final.error}", file=out)
            expected_ok &= what in _MEANT_TO_FAIL
            continue
        note = f"  (same job as before: {final.state.value})" if repeat else ""
        sign = f"{result.fd_number:>4} {result.printed_sign:>10}"
        print(f"{head} {sign}  {result.qr}{note}", file=out)
        expected_ok &= final.error is None and what not in _MEANT_TO_FAIL
    for external_id, what, message in rows:
        print(f"{external_id:<18} {what:<13} {message}", file=out)
    return expected_ok
