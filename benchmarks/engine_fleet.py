"""The engine on an emulated fleet (in-memory streams, simulated time) for benchmarks and tests.

The emulator and the engine never import each other; this is one of the places that joins them.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any

import trio

from emulator.serve import START, MemoryFleet
from engine.config import EngineConfig, RegisterConfig, TenantConfig
from engine.connectors import driver_for
from engine.drivers.base import RegisterDriver
from engine.recovery import MARKER_LENGTH, MARKER_NAME
from protocols.documents.ffd import decode_receipt
from protocols.documents.vat import TaxTable
from protocols.errors import ProtocolError
from protocols.fiscal_sign import EmulatorSignVerifier

#: The emulator's clock starts at 08:00 Moscow time (UTC+3): the engine's wall clock matches it.
WALL_START = START.replace(tzinfo=dt.timezone(dt.timedelta(hours=3))).timestamp()


def wall_clock() -> float:
    return WALL_START + trio.current_time()


def connector(fleet: MemoryFleet, index: int, protocol: str, taxes: TaxTable | None = None) -> Any:
    """Connect to ``fleet``'s register ``index`` (its tax table ``taxes``, or the default)."""

    async def connect() -> RegisterDriver:
        return driver_for(protocol, await fleet.connect(index), taxes)

    return connect


def fleet_config(
    fleet: MemoryFleet,
    journal: Path,
    *,
    protocol: str = "shtrih",
    tenants: tuple[TenantConfig, ...] = (TenantConfig("shop"),),
    owners: tuple[str, ...] | None = None,
    **options: Any,
) -> EngineConfig:
    """An engine config over every register of ``fleet`` (owned by ``owners[i]``, or shop)."""
    registers = tuple(
        RegisterConfig(
            id=f"kkt-{i}",
            tenant=owners[i] if owners else tenants[0].id,
            connect=connector(fleet, i, protocol),
            protocol=protocol,
            address=f"memory:{i}",
        )
        for i in range(len(fleet.registers))
    )
    keys = {register.fn.number: register.fn.key for register in fleet.registers}
    options.setdefault("verifier", EmulatorSignVerifier(keys))
    options.setdefault("wall_clock", wall_clock)
    return EngineConfig(journal=journal, tenants=tenants, registers=registers, **options)


def job_marker(document: bytes) -> str | None:
    """The job marker a signed document carries (1192, or the 1084 ``kassa-job``: its first
    16 characters, as 1192 would hold them); None for a document that is no marked receipt."""
    try:
        receipt = decode_receipt(document).receipt
    except ProtocolError:
        return None
    if receipt.user_prop is not None and receipt.user_prop.name == MARKER_NAME:
        return receipt.user_prop.value[:MARKER_LENGTH]
    return receipt.additional_prop


def markers_in_archive(fleet: MemoryFleet) -> Counter[str]:
    """How many signed receipts carry each job marker (1192 or the 1084 ``kassa-job``)."""
    found: Counter[str] = Counter()
    for register in fleet.registers:
        for document in register.fn.archive.values():
            if (marker := job_marker(document)) is not None:
                found[marker] += 1
    return found
