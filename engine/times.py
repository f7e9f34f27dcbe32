"""Times as people read them (местное время): the register's local time with its UTC offset.

A tenant's registers keep its local time (``TenantConfig.timezone``, Europe/Moscow unless
said otherwise), so every time a person reads — a job's, a receipt's, a report's, an
export's — is shown in that zone with its offset, ``2026-12-06T23:07:22+03:00``: one clock,
and no reader has to guess which. Machine formats keep theirs (Unix seconds on the wire and
in FNS JSON).
"""

from __future__ import annotations

import functools
from datetime import datetime
from zoneinfo import ZoneInfo


@functools.cache
def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` (validated where tenants are configured)."""
    return ZoneInfo(name)


def local_time(unix: float, time_zone: str) -> str:
    """Unix seconds as local time in ``time_zone``, to the second, with the offset."""
    return datetime.fromtimestamp(unix, zone(time_zone)).isoformat(timespec="seconds")


def register_time(wall: datetime, time_zone: str, timespec: str = "seconds") -> str:
    """A register's wall-clock reading (naive, like 1012) with the offset its zone had then."""
    return wall.replace(tzinfo=zone(time_zone)).isoformat(timespec=timespec)
