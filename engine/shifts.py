"""The shift keeper (контроль смены): opens and closes shifts so that no receipt meets a dead one.

A ФН refuses every receipt once its shift is older than 24 hours (ФН error 16h), and a shift
cannot be closed from the past. So the keeper acts before the deadline, not after the error:

- it opens a shift before the first receipt;
- it closes the shift ``shift_margin`` before the 24 hours run out, measured on the register's
  own clock (the ФН measures it there), on the tenant's daily schedule (in the tenant's time
  zone), and when the ФН raises a new warning (so the close-shift report records it);
- a shift of unknown age (opened by someone else, or before the journal knew it) is closed and
  reopened before a receipt, as its deadline cannot be trusted.

Register time is estimated between looks as the last :class:`RegisterStatus` ``now`` plus the
time passed since on trio's clock, so a deadline costs no command.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import trio

from engine.config import EngineConfig, RegisterConfig, TenantConfig
from engine.drivers.base import MAX_SHIFT, RegisterDriver, RegisterRefused, RegisterStatus
from engine.journal import Job, Journal, ShiftRow

Alert = Callable[[str, str], Awaitable[None]]  # (kind, message)


@attrs.define
class OpenShift:
    """The shift open in a register, as the keeper knows it."""

    number: int  # 1038
    opened: dt.datetime | None  # on the register's clock; None when its age is unknown
    opened_wall: float  # unix time


@attrs.define
class RegisterView:
    """What the engine keeps in memory about one register between commands."""

    config: RegisterConfig
    fn_number: str | None = None
    last_fd: int | None = None  # the last FD of this ФН the engine knows
    shift: OpenShift | None = None
    state: str = "unknown"  # ready | out | exhausted | journal_behind | unknown
    warnings: int = 0  # ФН warning flags already acted on
    #: 1062 of the registration report (FD 1) of the ФН ``tax_systems_of`` names: what the
    #: checks before fiscalization hold a receipt's 1055 against.
    tax_systems: int | None = None
    tax_systems_of: str | None = None
    ofd_alerted: dt.datetime | None = None  # register time of the last OFD alert
    #: срок действия ФН (FF03h / A4 32) of ``fn_expires_of``; None until read, or when the
    #: register cannot tell. Read on connecting, shift open and close, and while idle.
    fn_expires: dt.date | None = None
    fn_expires_of: str | None = None
    fn_expires_read: float | None = None  # trio time of the last read (or refusal)
    #: The OFD backlog (документы, не переданные в ОФД) at the last status look: how many,
    #: and when the oldest was signed, on the register's clock (FF39h / A4 20).
    ofd_unsent: int | None = None
    ofd_oldest: dt.datetime | None = None
    driver: RegisterDriver | None = None  # the live connection, while there is one
    current: Job | None = None  # the job its worker holds, until it is journaled elsewhere
    lock: trio.Lock = attrs.Factory(trio.Lock)  # one user of the connection at a time
    _clock_at: tuple[dt.datetime, float] | None = None

    def observe(self, status: RegisterStatus) -> None:
        self.fn_number = status.fn_number
        self._clock_at = (status.now, trio.current_time())
        self.ofd_unsent = status.unsent
        self.ofd_oldest = status.first_unsent if status.unsent else None

    def fn_expiry(self) -> dt.date | None:
        """срок действия ФН of the ФН in the register now; None when not (yet) known."""
        return self.fn_expires if self.fn_expires_of == self.fn_number else None

    def fn_days_left(self) -> int | None:
        """Whole days from the register's today to the ФН's last day; negative once past."""
        expires, now = self.fn_expiry(), self.register_now()
        if expires is None or now is None:
            return None
        return (expires - now.date()).days

    def ofd_oldest_age(self) -> dt.timedelta | None:
        """How long the oldest unsent document has waited, on the register's clock."""
        now = self.register_now()
        if self.ofd_oldest is None or now is None:
            return None
        return max(dt.timedelta(0), now - self.ofd_oldest)

    def register_now(self) -> dt.datetime | None:
        if self._clock_at is None:
            return None
        seen, at = self._clock_at
        return seen + dt.timedelta(seconds=trio.current_time() - at)


def fn_state(register: RegisterView) -> dict[str, Any]:
    """The ФН's expiry and the OFD backlog as plain JSON values (``kassa``'s registers).

    ``fn_expires`` is an ISO date, ``ofd_oldest`` an ISO time on the register's clock (its
    local time, as 1012), ``ofd_oldest_days`` its age in days; None where not known.
    """
    expires, age = register.fn_expiry(), register.ofd_oldest_age()
    return {
        "fn_expires": None if expires is None else expires.isoformat(),
        "fn_days_left": register.fn_days_left(),
        "ofd_unsent": register.ofd_unsent,
        "ofd_oldest": None if register.ofd_oldest is None else register.ofd_oldest.isoformat(),
        "ofd_oldest_days": None if age is None else round(age / dt.timedelta(days=1), 2),
    }


class ShiftKeeper:
    """Opens and closes the shifts of one tenant's registers."""

    def __init__(
        self, config: EngineConfig, tenant: TenantConfig, journal: Journal, alert: Alert
    ) -> None:
        self._config = config
        self._tenant = tenant
        self._zone = ZoneInfo(tenant.timezone)
        self._journal = journal
        self._alert = alert

    # --- decisions -------------------------------------------------------------------------

    def deadline_passed(self, register: RegisterView, ahead: float = 0.0) -> bool:
        """Whether the open shift must be closed now (or within ``ahead`` seconds)."""
        shift = register.shift
        if shift is None:
            return False
        if shift.opened is None:
            return True
        now = register.register_now()
        limit = shift.opened + MAX_SHIFT - self._config.shift_margin
        if now is not None and now + dt.timedelta(seconds=ahead) >= limit:
            return True
        daily = self._daily_close_after(shift.opened_wall)
        return daily is not None and self._config.wall_clock() + ahead >= daily

    def _daily_close_after(self, opened_wall: float) -> float | None:
        at = self._tenant.daily_close
        if at is None:
            return None
        opened = dt.datetime.fromtimestamp(opened_wall, self._zone)
        close = opened.replace(hour=at.hour, minute=at.minute, second=0, microsecond=0)
        if close <= opened:
            close = (close.replace(tzinfo=None) + dt.timedelta(days=1)).replace(tzinfo=self._zone)
        return close.timestamp()

    # --- actions -----------------------------------------------------------------------------

    async def adopt(
        self, register: RegisterView, driver: RegisterDriver, status: RegisterStatus
    ) -> None:
        """Take the register's shift state as found on (re)connecting."""
        register.observe(status)
        if not status.shift_open:
            register.shift = None
            return
        known = register.shift
        if known is not None and known.number == status.shift_number:
            return
        for row in await self._journal.shifts(register_id=register.config.id):
            if (row.fn_number, row.number) == (status.fn_number, status.shift_number) and (
                row.closed_at is None
            ):
                age = dt.timedelta(seconds=self._config.wall_clock() - row.opened_at)
                register.shift = OpenShift(row.number, status.now - age, row.opened_at)
                return
        register.shift = OpenShift(status.shift_number, None, self._config.wall_clock())

    def ready_for_receipt(self, register: RegisterView) -> bool:
        """Whether :meth:`before_receipt` has nothing to do: a shift is open with time left."""
        return register.shift is not None and not self.deadline_passed(register, ahead=60.0)

    async def before_receipt(self, register: RegisterView, driver: RegisterDriver) -> None:
        """Make sure a shift is open with time left for one more receipt."""
        if register.shift is not None and self.deadline_passed(register, ahead=60.0):
            await self.close(register, driver)
        if register.shift is None:
            await self.open(register, driver)

    async def reopen(self, register: RegisterView, driver: RegisterDriver) -> None:
        """After the register said the shift is closed or expired: look, close, open."""
        status = await driver.status()
        register.observe(status)
        register.shift = (
            OpenShift(status.shift_number, None, self._config.wall_clock())
            if status.shift_open
            else None
        )
        if register.shift is not None:
            await self.close(register, driver)
        await self.open(register, driver)

    async def maintain(
        self, register: RegisterView, driver: RegisterDriver, status: RegisterStatus
    ) -> None:
        """An idle look: close a shift that is due, act on warnings, watch the OFD queue and
        (every ``fn_expiry_interval``) the ФН's expiry."""
        await self.adopt(register, driver, status)
        await self.read_fn_expiry(register, driver)
        new_warnings = status.fn_warnings & ~register.warnings
        register.warnings = status.fn_warnings
        if new_warnings:
            await self._alert(
                "alert.fn_warning",
                f"ФН {status.fn_number} warns: flags {status.fn_warnings:#04x}",
            )
        if register.shift is not None and (
            status.shift_expired or new_warnings or self.deadline_passed(register)
        ):
            await self.close(register, driver)
        first = status.first_unsent
        if first is not None and status.now - first >= self._config.ofd_alert_after:
            last = register.ofd_alerted
            if last is None or status.now - last >= dt.timedelta(days=1):
                register.ofd_alerted = status.now
                days = (status.now - first) / dt.timedelta(days=1)
                await self._alert(
                    "alert.ofd_unsent",
                    f"ФН {status.fn_number}: {status.unsent} documents unsent to the OFD for "
                    f"{days:.1f} days; the ФН blocks at 30",
                )

    async def read_fn_expiry(
        self, register: RegisterView, driver: RegisterDriver, *, now: bool = False
    ) -> None:
        """Read срок действия ФН unless it is fresh: known for this ФН and read within
        ``fn_expiry_interval`` (``now`` reads anyway). One command, off the receipt path.

        A register that refuses the command keeps "unknown" (None) until the next interval:
        the dashboard says so, nothing is guessed.
        """
        read = register.fn_expires_read
        if (
            not now
            and read is not None
            and register.fn_expires_of == register.fn_number
            and trio.current_time() - read < self._config.fn_expiry_interval
        ):
            return
        try:
            expires: dt.date | None = await driver.fn_expiry()
        except RegisterRefused:
            expires = None
        register.fn_expires = expires
        register.fn_expires_of = register.fn_number
        register.fn_expires_read = trio.current_time()

    async def open(self, register: RegisterView, driver: RegisterDriver) -> None:
        fd = await driver.open_shift()
        status = await driver.status()
        register.observe(status)
        wall = self._config.wall_clock()
        register.shift = OpenShift(status.shift_number, status.now, wall)
        register.last_fd = fd
        await self._journal.shift_opened(
            ShiftRow(
                register.config.id,
                register.config.tenant,
                status.fn_number,
                status.shift_number,
                wall,
                fd,
            )
        )
        await self.read_fn_expiry(register, driver, now=True)  # journaled first: it may fail

    async def close(self, register: RegisterView, driver: RegisterDriver) -> None:
        shift = register.shift
        fd = await driver.close_shift()
        closed = self._config.wall_clock()
        register.shift = None
        register.last_fd = fd
        document = await driver.read_document(fd)
        if shift is not None and register.fn_number is not None:
            await self._journal.shift_opened(  # a shift adopted unknown gets its row now
                ShiftRow(
                    register.config.id,
                    register.config.tenant,
                    register.fn_number,
                    shift.number,
                    shift.opened_wall,
                    None,
                )
            )
            await self._journal.shift_closed(register.fn_number, shift.number, closed, fd, document)
        await self.read_fn_expiry(register, driver, now=True)  # journaled first: it may fail
