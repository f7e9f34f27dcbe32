"""A fleet of emulated registers (парк ККТ): on TCP ports, or on in-memory streams for tests.

Each register gets its own ФН, registered and ready: a deterministic ФН number (1041),
register serial (1013) and registration number (1037) from the seed and the register's
index, the test INN 7707083893 (1018) and the tax systems ОСН | УСН доход (1062).

Choices where the reference is silent:
- ФН number ``9999`` + 6 digits of the seed + 6 digits of the index; serial ``SSSSIIIIII``
  (4 seed digits, 6 index digits); registration number = 10-digit order number (index + 1) +
  a 6-digit check, CRC-16/CCITT-FALSE of order (10) + INN (12) + serial (20), each
  zero-padded (the ФНС scheme as drivers compute it).
- Port 0 serves every register on an ephemeral port; the printed lines say which.
- Under MockClock the wall clock starts at :data:`START` so runs reproduce; on the real clock
  it starts at the local time.
- A ФН registered before the start (:class:`FnSetup`) has no timer mark from then: its timer
  check starts with the first command, as a register's clock since power-on would.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import TypeAlias

import attrs
import trio
import trio.testing

from emulator.atol import AtolRegister, AtolTiming, atol_model_named
from emulator.faults import (
    FaultEvent,
    FaultLog,
    RegisterFaults,
    attach_faults,
    parse_faults,
    run_schedule,
    serve_faulty_connection,
)
from emulator.fn import FiscalStorage, FnLimits
from emulator.ofd import OfdSender, OfdServer, WallClock
from emulator.shtrih import ShtrihRegister
from emulator.timing import RegisterTiming, model_named
from protocols.crc import crc16_ccitt_false
from protocols.documents.reports import RegistrationReport
from protocols.documents.vat import TaxTable
from protocols.taxes import DEFAULT_TAX_TABLES, TAX_TABLES
from protocols.tlv.enums import TaxSystem

#: A register the fleet serves, in either protocol.
Register: TypeAlias = ShtrihRegister | AtolRegister

__all__ = [
    "INN",
    "START",
    "FleetError",
    "FnSetup",
    "MemoryFleet",
    "RegisterIdentity",
    "identity",
    "make_register",
    "open_memory_fleet",
    "serve_fleet",
    "start_ofd",
]

INN = "7707083893"  # ИНН пользователя (1018) of every emulated register: a test INN
START = dt.datetime(2026, 3, 2, 8, 0)
#: The timing model a protocol's registers use unless --model says otherwise.
DEFAULT_MODELS = {"shtrih": "shtrih-m-online", "atol": "atol-42fa"}
#: How often a register looks for unsent documents, and waits after a failed exchange (s).
OFD_POLL_INTERVAL = 5.0
OFD_RETRY_INTERVAL = 60.0


class FleetError(Exception):
    """Arguments the fleet cannot serve (the CLI prints it as one line, exit status 2)."""


@attrs.frozen
class RegisterIdentity:
    """What tells one emulated register from another."""

    index: int
    fn_number: str  # 1041 номер ФН
    kkt_serial: str  # 1013 заводской номер ККТ
    registration_number: str  # 1037 регистрационный номер ККТ


def _not_negative(_: object, attribute: attrs.Attribute[dt.timedelta], value: dt.timedelta) -> None:
    if value < dt.timedelta(0):
        raise FleetError(f"{attribute.name}: the ФН cannot be registered after the start")


@attrs.frozen
class FnSetup:
    """Where each emulated ФН is in its life at the start: tests and demos set a ФН near its
    end (срок действия ФН) or with documents long unsent to the OFD.

    ``registered_ago`` moves the registration (FD 1) before the start; the keys run
    ``key_validity_months`` from it (15 or 36, registers.md §4.4). Unless
    ``registration_sent``, FD 1 waits for the OFD from then, as a ФН out of touch would.
    """

    registered_ago: dt.timedelta = attrs.field(default=dt.timedelta(0), validator=_not_negative)
    key_validity_months: int = 15
    registration_sent: bool = False


def identity(seed: int, index: int) -> RegisterIdentity:
    """The deterministic numbers of register ``index`` in a run with ``seed``."""
    fn_number = f"9999{seed % 10**6:06d}{index % 10**6:06d}"
    serial = f"{seed % 10**4:04d}{index % 10**6:06d}"
    order = f"{index + 1:010d}"
    check = crc16_ccitt_false(f"{order}{INN:0>12}{serial:0>20}".encode("ascii"))
    return RegisterIdentity(index, fn_number, serial, f"{order}{check:06d}")


def make_register(
    index: int,
    *,
    protocol: str = "shtrih",
    model: str | None = None,
    line: str = "tcp",
    seed: int = 0,
    start: dt.datetime = START,
    taxes: str | None = None,
    fn_setup: FnSetup = FnSetup(),
) -> Register:
    """A register with a registered ФН; call it inside trio (the clock starts now).

    ``taxes`` names the tax table of its firmware (:data:`TAX_TABLES`); the 2026 one by default.
    ``fn_setup`` says when its ФН was registered and how long its keys last.
    """
    numbers = identity(seed, index)
    fn = FiscalStorage(
        number=numbers.fn_number,
        limits=FnLimits(key_validity_months=fn_setup.key_validity_months),
    )
    registered = fn_setup.registered_ago != dt.timedelta(0)
    fn.register(
        start - fn_setup.registered_ago,
        RegistrationReport(
            user_inn=INN,
            user='ООО "Касса-эмулятор"',
            registration_number=numbers.registration_number,
            fn_number=numbers.fn_number,
            kkt_serial=numbers.kkt_serial,
            tax_systems=int(TaxSystem.OSN | TaxSystem.USN_INCOME),
            place="emulator.kassa.example",
            address="г. Москва, ул. Эмуляторная, д. 1",
            ofd_inn="7709364346",
        ),
        timer=None if registered else 0.0,
    )
    if fn_setup.registration_sent:
        fn.acknowledge(fn.last_fd_number)
    serial = int(numbers.kkt_serial)
    if protocol == "atol":
        atol_timing = AtolTiming(
            atol_model_named(model or DEFAULT_MODELS["atol"]), seed=seed, index=index, line=line
        )
        return AtolRegister(
            fn, atol_timing, start=start, kkt_serial=serial, taxes=tax_table(protocol, taxes)
        )
    timing = RegisterTiming(
        model_named(model or DEFAULT_MODELS["shtrih"]), seed=seed, index=index, line=line
    )
    return ShtrihRegister(
        fn, timing, start=start, kkt_serial=serial, taxes=tax_table(protocol, taxes)
    )


def tax_table(protocol: str, name: str | None) -> TaxTable:
    """The tax table ``name`` of ``protocol``'s registers; its default for None."""
    tables = TAX_TABLES[protocol]
    if name is None:
        return DEFAULT_TAX_TABLES[protocol]
    try:
        return tables[name]
    except KeyError:
        raise FleetError(
            f"--tax-table {name!r}: the tax tables of {protocol} registers are {', '.join(tables)}"
        ) from None


async def serve_register(stream: trio.abc.Stream, register: Register) -> None:
    """Serve one connection to ``register`` in its own protocol (faults applied, if any)."""
    await serve_faulty_connection(stream, register)


def _check(
    protocol: str,
    registers: int,
    line: str,
    model: str | None,
    faults: str | None,
    taxes: str | None = None,
) -> None:
    if protocol not in DEFAULT_MODELS:
        raise FleetError(f"--protocol {protocol!r}: choose shtrih or atol")
    tax_table(protocol, taxes)
    if registers < 1:
        raise FleetError(f"--registers {registers}: at least 1")
    if line not in ("tcp", "serial"):
        raise FleetError(f"--line {line!r}: choose tcp or serial")
    try:
        (atol_model_named if protocol == "atol" else model_named)(model or DEFAULT_MODELS[protocol])
    except KeyError as exc:
        raise FleetError(f"--model: {exc.args[0]}") from None
    if faults is not None:
        try:
            parse_faults(faults)
        except ValueError as exc:
            raise FleetError(f"--faults: {exc}") from None


def _with_faults(
    nursery: trio.Nursery,
    fleet: Sequence[Register],
    faults: str | None,
    seed: int,
    ofd: OfdServer,
    log: FaultLog,
) -> list[Register]:
    """The fleet with the fault plan attached to each register and its schedule running."""
    if faults is None:
        return list(fleet)
    plan = parse_faults(faults)
    faulty: list[Register] = []
    for index, register in enumerate(fleet):
        register_faults = RegisterFaults(plan, register=index, seed=seed, log=log)
        wrapped = attach_faults(register, register_faults)
        nursery.start_soon(run_schedule, wrapped, register_faults, ofd)
        faulty.append(wrapped)
    return faulty


class AnnouncedFaultLog(FaultLog):
    """A fault log that also says each fault as it happens (``kassa emulator serve`` prints it)."""

    def __init__(self, say: Callable[[FaultEvent], None]) -> None:
        super().__init__()
        self._say = say

    def record(self, register: int, kind: str, detail: str) -> FaultEvent:
        event = super().record(register, kind, detail)
        self._say(event)
        return event


async def serve_fleet(
    protocol: str,
    registers: int,
    port: int,
    model: str | None = None,
    line: str = "tcp",
    seed: int = 0,
    faults: str | None = None,
    *,
    taxes: str | None = None,
    host: str = "127.0.0.1",
    start: dt.datetime | None = None,
    announce: Callable[[str], None] = print,
    on_fault: Callable[[FaultEvent], None] | None = None,
    fn_setup: FnSetup = FnSetup(),
    task_status: trio.TaskStatus[list[Register]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``registers`` registers on ``port`` … ``port + registers - 1`` until cancelled.

    Once every port listens, ``announce`` gets one line per register: port, ФН number,
    registration number. With ``faults`` (the language of :func:`emulator.faults.parse_faults`)
    each injected fault is logged with its time and passed to ``on_fault``.
    """
    _check(protocol, registers, line, model, faults, taxes)
    if not 0 <= port <= 65535 or (port and port + registers - 1 > 65535):
        raise FleetError(f"--port {port}: ports {port}…{port + registers - 1} do not exist")
    begin = start if start is not None else dt.datetime.now().replace(microsecond=0)
    fleet: list[Register] = [
        make_register(
            i,
            protocol=protocol,
            model=model,
            line=line,
            seed=seed,
            start=begin,
            taxes=taxes,
            fn_setup=fn_setup,
        )
        for i in range(registers)
    ]
    async with trio.open_nursery() as nursery:
        ofd = start_ofd(nursery, fleet, begin, seed)
        log = AnnouncedFaultLog(on_fault) if on_fault is not None else FaultLog()
        fleet = _with_faults(nursery, fleet, faults, seed, ofd, log)
        lines = []
        for index, register in enumerate(fleet):

            async def handler(stream: trio.SocketStream, register: Register = register) -> None:
                await serve_register(stream, register)

            try:
                listeners = await nursery.start(
                    partial(trio.serve_tcp, handler, port + index if port else 0, host=host)
                )
            except OSError as exc:
                raise FleetError(f"--port {port + index}: {exc.strerror or exc}") from None
            bound = listeners[0].socket.getsockname()[1]
            lines.append(
                f"{bound} {register.fn.number} {identity(seed, index).registration_number}"
            )
        for text in lines:
            announce(text)
        task_status.started(fleet)


def start_ofd(
    nursery: trio.Nursery, fleet: Sequence[Register], begin: dt.datetime, seed: int
) -> OfdServer:
    """An emulated OFD for the fleet, and each register's transport sending it their documents.

    The OFD runs in-process and the registers reach it over in-memory streams: it needs no
    port, and it is the same protocol as over TCP (session header, container, document 7).
    """
    ofd = OfdServer(WallClock(begin, trio.current_time()))
    connect = ofd.memory_connector(nursery)
    for register in fleet:
        index = int(register.fn.number[-6:])
        sender = OfdSender(
            register.fn,
            connect,
            retry_interval=OFD_RETRY_INTERVAL,
            poll_interval=OFD_POLL_INTERVAL,
            jitter=0.1,
            seed=seed * 1_000_003 + index,
        )
        nursery.start_soon(sender.run)
    return ofd


@attrs.frozen
class MemoryFleet:
    """Registers served over in-memory streams; ``connect(i)`` opens a host's end to one."""

    registers: tuple[Register, ...]
    _nursery: trio.Nursery
    ofd: OfdServer | None = None  # the fleet's OFD, when it runs one
    faults: FaultLog = attrs.field(factory=FaultLog)  # every fault injected, with its time

    async def connect(self, index: int) -> trio.abc.Stream:
        """A new connection to register ``index``; closing it ends the register's side."""
        host_end, device_end = trio.testing.memory_stream_pair()
        self._nursery.start_soon(serve_register, device_end, self.registers[index])
        return host_end


@asynccontextmanager
async def open_memory_fleet(
    registers: int = 1,
    *,
    protocol: str = "shtrih",
    model: str | None = None,
    line: str = "tcp",
    seed: int = 0,
    start: dt.datetime = START,
    ofd: bool = False,
    faults: str | None = None,
    taxes: str | None = None,
    fn_setup: FnSetup = FnSetup(),
) -> AsyncIterator[MemoryFleet]:
    """A fleet for MockClock runs: in-memory streams replace sockets; stops on exit.

    With ``ofd`` the registers send their documents to an emulated OFD, as a served fleet does;
    with ``faults`` the fault plan applies (an OFD-down fault needs ``ofd``).
    """
    _check(protocol, registers, line, model, faults, taxes)
    fleet: tuple[Register, ...] = tuple(
        make_register(
            i,
            protocol=protocol,
            model=model,
            line=line,
            seed=seed,
            start=start,
            taxes=taxes,
            fn_setup=fn_setup,
        )
        for i in range(registers)
    )
    async with trio.open_nursery() as nursery:
        server = start_ofd(nursery, fleet, start, seed) if ofd else None
        log = FaultLog()
        if faults is not None:
            fleet = tuple(
                _with_faults(
                    nursery, fleet, faults, seed, server or OfdServer(WallClock(start)), log
                )
            )
        yield MemoryFleet(fleet, nursery, server, log)
        nursery.cancel_scope.cancel()
