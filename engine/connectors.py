"""How the engine reaches a register: a :data:`~engine.config.Connector` per transport.

A connector opens a fresh connection and wraps it in the register's driver, so the engine's
worker can reconnect after every lost link without knowing whether the register sits behind
TCP (a register's own port, or a serial-to-TCP device server) or a serial line.
"""

from __future__ import annotations

import trio

from engine.config import Connector
from engine.drivers.atol import AtolDriver
from engine.drivers.base import RegisterDriver
from engine.drivers.shtrih import ShtrihDriver
from protocols.documents.vat import TaxTable
from protocols.taxes import DEFAULT_TAX_TABLES
from transports.serial import open_serial
from transports.tcp import connect_tcp

PROTOCOLS = ("shtrih", "atol")


def _known(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol: expected one of {', '.join(PROTOCOLS)}, got {protocol!r}")


def driver_for(
    protocol: str, stream: trio.abc.Stream, taxes: TaxTable | None = None
) -> RegisterDriver:
    """The driver of ``protocol`` over ``stream``, for a register with tax table ``taxes``."""
    _known(protocol)
    table = taxes or DEFAULT_TAX_TABLES[protocol]
    if protocol == "shtrih":
        return ShtrihDriver(stream, taxes=table)
    return AtolDriver(stream, taxes=table)


def tcp_connector(
    protocol: str,
    host: str,
    port: int,
    *,
    timeout: float = 5.0,
    taxes: TaxTable | None = None,
) -> Connector:
    """Connect over TCP (Shtrih registers listen on 7778 or behind a device server)."""
    _known(protocol)

    async def connect() -> RegisterDriver:
        return driver_for(protocol, await connect_tcp(host, port, timeout=timeout), taxes)

    return connect


def serial_connector(
    protocol: str, path: str, *, baud: int = 115200, taxes: TaxTable | None = None
) -> Connector:
    """Connect over a serial line (RS-232 or a USB-serial adapter)."""
    _known(protocol)

    async def connect() -> RegisterDriver:
        return driver_for(protocol, await open_serial(path, baud=baud), taxes)

    return connect
