"""What an engine runs with: its journal, tenants, registers and limits (конфигурация).

Registers are reached through a :data:`Connector`, a function that opens a fresh connection and
wraps it in the register's driver: TCP, a serial line or an in-memory stream to an emulator all
look the same to the engine, which reconnects through it after every lost link.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import attrs

from engine.drivers.base import RegisterDriver
from protocols.documents.vat import TaxTable
from protocols.fiscal_sign import SignVerifier
from protocols.shtrih.taxes import DEFAULT as SHTRIH_TAXES
from protocols.taxes import DEFAULT_TAX_TABLES

Connector = Callable[[], Awaitable[RegisterDriver]]
#: A tenant's time zone unless configured: its registers' clocks keep Moscow time.
DEFAULT_TIMEZONE = "Europe/Moscow"


def _zone(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    try:
        ZoneInfo(value)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{attribute.name}: unknown time zone {value!r}") from exc


@attrs.frozen
class TenantConfig:
    """A merchant (клиент): its time zone, the daily shift close, its queue bound and its
    policy for marked goods that fail the ФН's check."""

    id: str
    name: str = ""
    timezone: str = attrs.field(default=DEFAULT_TIMEZONE, validator=_zone)
    daily_close: dt.time | None = None  # close every open shift at this local time
    queue_limit: int = 10_000  # jobs accepted and not yet final; beyond it submit is "busy"
    #: Sell goods whose marking code failed the ФН's check (продажа с предупреждением): the
    #: line carries the ФН's 2106 that says so. By default such a receipt fails, unsigned.
    sell_failed_marking: bool = False


def _default_taxes(register: RegisterConfig) -> TaxTable:
    return DEFAULT_TAX_TABLES.get(register.protocol, SHTRIH_TAXES)


@attrs.frozen
class RegisterConfig:
    """A register (ККТ) of a tenant's group (like ATOL's group_code).

    ``taxes`` is its firmware's tax table, the 2026 table of its protocol unless configured:
    the checks before fiscalization refuse a rate it lacks.
    """

    id: str
    tenant: str
    connect: Connector = attrs.field(eq=False)
    group: str = "main"
    protocol: str = "shtrih"
    address: str = ""  # where it is, for people: tcp://host:port, serial:/dev/ttyS0, memory:0
    taxes: TaxTable = attrs.field(default=attrs.Factory(_default_taxes, takes_self=True))


def default_engine_id() -> str:
    """This process as leases name it: ``hostname:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


@attrs.frozen
class EngineConfig:
    """Everything :meth:`engine.Engine.open` needs."""

    journal: Path | str  # an SQLite file, or a postgresql:// URL (engine.journal.open_journal)
    tenants: tuple[TenantConfig, ...]
    registers: tuple[RegisterConfig, ...]
    #: Close a shift this long before the ФН's 24-hour limit (registers.md §4).
    shift_margin: dt.timedelta = dt.timedelta(minutes=30)
    #: Alert when the oldest document the OFD has not acknowledged is this old; the ФН blocks
    #: at 30 days (ffd.md), so the default leaves three weeks to mend the link.
    ofd_alert_after: dt.timedelta = dt.timedelta(days=7)
    #: An idle register is looked at this often (shift deadlines, ФН warnings, the OFD queue).
    maintenance_interval: float = 60.0
    #: An idle register's срок действия ФН is read again after this long (s); shift open and
    #: close read it too. It changes only with the ФН, so rarely is enough.
    fn_expiry_interval: float = 600.0
    probe_interval: float = 1.0  # first wait before reconnecting to a register that failed
    probe_max: float = 60.0  # the wait doubles up to this
    #: While the journal cannot commit, it is probed after this wait, doubling up to the max.
    journal_probe_interval: float = 0.5
    journal_probe_max: float = 30.0
    #: Receipts may take this many times their shortest time on a register before fewer are
    #: admitted at once (engine.admission); math.inf, the default, admits every register's
    #: receipt at once: on a shared machine the delay signal cut receipts/s as often as it
    #: bounded p99 (README, issue 20), so it is a choice, not a default.
    admission_tolerance: float = math.inf
    verifier: SignVerifier | None = None  # checks 1077 values for ФНs whose keys it knows
    #: Unix time now; tests under MockClock pass a clock that moves with trio's.
    wall_clock: Callable[[], float] = time.time
    #: Who this engine is among the engines of one shared (PostgreSQL) journal: a lease's owner.
    engine_id: str = attrs.field(factory=default_engine_id)
    #: How long a register's lease runs unrenewed (s). The holder renews it every third of
    #: this and stops using the register before it runs out; a kill frees it after this long.
    lease_seconds: float = 10.0
