"""Real processes for the benchmarks that cross them: an emulated fleet and ``kassa serve``.

Each runs as its own ``kassa`` process on 127.0.0.1, the way an operator runs them, and is
terminated (then killed, if it must be) when its ``with`` block ends, whatever happened in it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import queue
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import attrs
import zmq

from engine.client import ClientKeys
from engine.service_config import write_certificate

KASSA = str(Path(sys.executable).with_name("kassa"))
_TICKS = os.sysconf("SC_CLK_TCK")
#: How long a process may take to say it is ready: a silent one fails the run, not hangs it.
STARTUP_SECONDS = 120.0


def cpu_times(pid: int) -> tuple[float, float]:
    """User and system CPU seconds a process (all its threads) has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / _TICKS, int(fields[12]) / _TICKS


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (``/proc/PID/stat``)."""
    return sum(cpu_times(pid))


def main_thread_cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process's main thread alone (its thread id is its pid).

    For ``kassa serve`` that is the trio event loop; its other threads are the journal's
    writer and ZeroMQ's I/O thread.
    """
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def pin(pid: int, cpus: Collection[int]) -> None:
    """Keep every thread of process ``pid`` on ``cpus`` (``sched_setaffinity``).

    The call moves one thread, so each of ``/proc/PID/task`` is moved; threads they start
    later inherit it.
    """
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), cpus)
        except ProcessLookupError:  # a thread that ended meanwhile
            continue


def peak_rss_bytes(pid: int) -> int:
    """The most resident memory a process has had (``VmHWM``), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> int:
    """A first port of ``count`` free ones, all below the kernel's ephemeral range.

    Every outgoing connection on the machine takes its local port from that range (Linux:
    32768 and up), so a fleet of hundreds of listeners there is likely to meet one of them.
    A port can still be taken between this check and its bind: callers try again.
    """
    try:
        ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral = 32768
    while True:
        first = random.randrange(10000, max(10001, ephemeral - count))
        if all(_bindable(port) for port in range(first, first + count)):
            return first


class ChildOutput:
    """A child's standard output, read by a thread, so that a wait for a line has a deadline.

    Reading on after start-up also keeps a talkative child from blocking on a full pipe.
    """

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        self._lines: queue.Queue[str] = queue.Queue()
        stream = process.stdout

        def read() -> None:
            for line in stream:
                self._lines.put(line)
            self._lines.put("")  # the end of the output

        threading.Thread(target=read, name="kassa-output", daemon=True).start()

    def line(self, deadline: float) -> str | None:
        """The next line; "" once the output has ended, None when the deadline passed."""
        try:
            return self._lines.get(timeout=max(deadline - time.monotonic(), 0.0))
        except queue.Empty:
            return None


def stop_child(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@attrs.frozen
class FleetProcess:
    """``kassa emulator serve``: one register per port."""

    pid: int
    ports: tuple[int, ...]


@contextmanager
def emulator_fleet(
    registers: int,
    *,
    protocol: str = "shtrih",
    model: str = "shtrih-m-online",
    seed: int = 1,
    profile: Path | None = None,
    faults: str | None = None,
    log: Path | None = None,
) -> Iterator[FleetProcess]:
    """Start an emulated fleet in its own process; its ports once every one listens.

    A port taken between the check and the fleet's bind ends that fleet: it tries again.
    With ``profile``, the fleet runs under cProfile (CPU time) and writes its statistics there.
    ``faults`` is its ``--faults`` spec; ``log`` takes its standard error (a line per fault
    injected), appended.
    """
    for _ in range(3):
        port = free_ports(registers)
        command = ["emulator", "serve", "--protocol", protocol, "--model", model]
        command += ["--registers", str(registers), "--port", str(port), "--seed", str(seed)]
        if faults:
            command += ["--faults", faults]
        with contextlib.ExitStack() as files:
            errors = None if log is None else files.enter_context(log.open("a"))
            process = subprocess.Popen(
                _kassa(command, profile), stdout=subprocess.PIPE, stderr=errors, text=True
            )
        try:
            output, deadline = ChildOutput(process), time.monotonic() + STARTUP_SECONDS
            lines: list[str] = []
            while len(lines) < registers and (line := output.line(deadline)):
                lines.append(line)
            if len(lines) < registers and line is None:
                raise RuntimeError(f"the emulated fleet said nothing for {STARTUP_SECONDS:g} s")
            if len(lines) < registers:
                continue  # it ended: a port was taken
            yield FleetProcess(process.pid, tuple(int(line.split()[0]) for line in lines))
            return
        finally:
            stop_child(process)
    raise RuntimeError(f"an emulated fleet of {registers} registers did not start three times")


@attrs.frozen
class ServiceProcess:
    """``kassa serve``: where its requests socket is and its tenants' client keys."""

    pid: int
    endpoint: str
    keys: ClientKeys  # the first tenant's
    tenant: str
    journal: Path
    http: str = ""  # the HTTP door's base URL, when it has one
    tenant_keys: Mapping[str, ClientKeys] = attrs.field(factory=dict)


#: ``[limits]`` unless a benchmark says otherwise: it measures the engine, not the rate limits.
UNLIMITED = {"rate": 1000000.0, "burst": 1000000, "queue": 1000000}


@attrs.frozen
class HttpDoorSetup:
    """What the HTTP door of a ``kassa serve`` under test takes beyond its ATOL login: extra
    ``[http]`` keys (e.g. ``callback_backoff``), a KOMTET shop (shop id, secret) and a payment
    hook (``[tenants.payments]`` keys: hook, secrets, settlement) with a fixed order template."""

    options: Mapping[str, float | int | str] = attrs.field(factory=dict)
    komtet: tuple[str, str] | None = None
    payments: Mapping[str, str] | None = None


#: The order template of a payment hook under test: a one-line order of the shop's receipts.
PAYMENTS_TEMPLATE = """[tenants.payments.template]
name = "Оплата заказа"
vat = "vat22"
subject = "commodity"
inn = "7707083893"
tax_system = "osn"
place = "shop.kassa.example"
email = "receipts@shop.kassa.example"
"""


def _toml_value(value: float | int | str) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _service_toml(
    port: int,
    tenants: Mapping[str, bytes],
    addresses: Sequence[str],
    limits: Mapping[str, float | int],
    journal: Path | str,
    http: tuple[int, str, str] | None = None,
    door: HttpDoorSetup = HttpDoorSetup(),
    service: Mapping[str, float | int | str] | None = None,
) -> str:
    """A kassa.toml: ``tenants`` maps each tenant to its client's public key; the registers
    at ``addresses`` and the HTTP login are the first tenant's; ``service`` adds keys to
    ``[service]`` (a shared journal's ``engine_id`` and ``lease_seconds``)."""
    # A daily close twelve hours away: none falls inside a benchmark run.
    close = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=12)).strftime("%H:%M")
    lines = [
        "[service]",
        f'listen = "tcp://127.0.0.1:{port}"',
        'events_host = "127.0.0.1"',
        'secret_key_file = "server.key_secret"',
        f'journal = "{journal}"',
        *(f"{key} = {_toml_value(value)}" for key, value in (service or {}).items()),
        "",
        "[limits]",
        *(f"{key} = {value!r}" for key, value in limits.items()),
    ]
    if http is not None:
        lines += ["", "[http]", f'listen = "127.0.0.1:{http[0]}"']
        lines += [f"{key} = {_toml_value(value)}" for key, value in door.options.items()]
    owner = next(iter(tenants))
    for tenant, client_public in tenants.items():
        lines += ["", "[[tenants]]", f'id = "{tenant}"', 'timezone = "UTC"']
        lines += [f'daily_close = "{close}"', f'keys = ["{client_public.decode()}"]']
        if http is not None and tenant == owner:
            login, hashed = http[1], http[2]
            logins = [f'{{api = "atol", login = "{login}", password_hash = "{hashed}"}}']
            if door.komtet is not None:
                shop_id, secret = door.komtet
                logins.append(f'{{api = "komtet", shop_id = "{shop_id}", secret = "{secret}"}}')
            lines.append(f"http = [{', '.join(logins)}]")
            if door.payments is not None:
                lines.append("[tenants.payments]")
                lines += [f"{key} = {_toml_value(value)}" for key, value in door.payments.items()]
                lines.append(PAYMENTS_TEMPLATE)
    for index, address in enumerate(addresses):
        lines += ["", "[[registers]]", f'id = "kkt-{index}"', f'tenant = "{owner}"']
        lines += ['protocol = "shtrih"', f'address = "{address}"']
    return "\n".join(lines) + "\n"


_PROFILED = """
import cProfile, sys, time
from engine.cli import main
profile = cProfile.Profile(time.process_time)
try:
    profile.runcall(main, sys.argv[2:])
finally:
    profile.dump_stats(sys.argv[1])
"""


def _kassa(arguments: list[str], profile: Path | None) -> list[str]:
    """``kassa ARGUMENTS``, under cProfile counting CPU time (waiting is not cost) if asked."""
    if profile is None:
        return [KASSA, *arguments]
    return [sys.executable, "-c", _PROFILED, str(profile), *arguments]


@attrs.frozen
class ServiceFolder:
    """What ``kassa serve --config`` runs on, kept across its restarts: the folder holding its
    kassa.toml, CURVE certificate, journal and log, where it listens and the tenant's keys."""

    folder: Path
    endpoint: str
    keys: ClientKeys  # the first tenant's
    tenant: str
    http: str = ""  # the HTTP door's base URL, when it has one
    tenant_keys: Mapping[str, ClientKeys] = attrs.field(factory=dict)
    journal_file: Path | None = None  # a journal elsewhere (one filled beforehand)

    @property
    def config(self) -> Path:
        return self.folder / "kassa.toml"

    @property
    def journal(self) -> Path:
        return self.journal_file or self.folder / "journal.db"

    @property
    def log(self) -> Path:
        """Every run's standard error, one after another."""
        return self.folder / "serve.log"


@contextmanager
def service_folder(
    addresses: Sequence[str],
    *,
    tenant: str = "shop",
    http: tuple[str, str] | None = None,
    more_tenants: Sequence[str] = (),
    limits: Mapping[str, float | int] = UNLIMITED,
    journal: Path | None = None,
    door: HttpDoorSetup = HttpDoorSetup(),
) -> Iterator[ServiceFolder]:
    """A temporary folder with a kassa.toml over the registers at ``addresses``, fresh CURVE
    keys and a free port; removed, journal and all, when the block ends. With ``http``
    (an ATOL login and its password hash), an [http] door on another free port too, with
    ``door``'s options, KOMTET shop and payment hook.

    The registers are ``tenant``'s; ``more_tenants`` get a key each and no registers. The
    journal is SQLite at its default, ``synchronous=FULL``: every acknowledged job is on
    disk before its answer leaves; ``journal`` names a file to serve (one filled beforehand),
    else a new one in the folder.
    """
    with tempfile.TemporaryDirectory(prefix="kassa-bench-serve-") as name:
        folder = Path(name)
        server_public, server_secret = zmq.curve_keypair()
        write_certificate(folder / "server", server_public, server_secret)
        keys: dict[str, ClientKeys] = {}
        for each in (tenant, *more_tenants):
            client_public, client_secret = zmq.curve_keypair()
            keys[each] = ClientKeys(server_public, client_public, client_secret)
        port = free_ports(2 if http else 1)
        door_at = None if http is None else (port + 1, *http)
        setup = ServiceFolder(
            folder,
            f"tcp://127.0.0.1:{port}",
            keys[tenant],
            tenant,
            "" if door_at is None else f"http://127.0.0.1:{door_at[0]}",
            keys,
            journal,
        )
        publics = {each: k.public for each, k in keys.items()}
        text = _service_toml(port, publics, addresses, limits, setup.journal, door_at, door)
        setup.config.write_text(text)
        yield setup


def start_service(setup: ServiceFolder, profile: Path | None = None) -> subprocess.Popen[str]:
    """``kassa serve --config`` on ``setup``, returned once it says it serves.

    A run that ends or stays silent instead is stopped and raises, with the last line it wrote
    on standard error. With ``profile``, the service runs under cProfile and writes its
    statistics there when it stops.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = _kassa(["serve", "--config", str(setup.config)], profile)
    with setup.log.open("a") as errors:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=errors, text=True, env=env
        )
    try:
        output, deadline = ChildOutput(process), time.monotonic() + STARTUP_SECONDS
        while not (line := output.line(deadline)) or not line.startswith("kassa: serving"):
            if line is None:
                raise RuntimeError(f"kassa serve said nothing for {STARTUP_SECONDS:g} s")
            if not line:
                said = setup.log.read_text().strip().splitlines() or ["(nothing on stderr)"]
                raise RuntimeError(
                    f"kassa serve ended before serving (exit status {process.wait()}): {said[-1]}"
                )
    except BaseException:
        stop_child(process)
        raise
    return process


@contextmanager
def kassa_service(
    addresses: Sequence[str],
    *,
    tenant: str = "shop",
    profile: Path | None = None,
    http: tuple[str, str] | None = None,
    more_tenants: Sequence[str] = (),
    limits: Mapping[str, float | int] = UNLIMITED,
    journal: Path | None = None,
    door: HttpDoorSetup = HttpDoorSetup(),
) -> Iterator[ServiceProcess]:
    """``kassa serve --config`` over the registers at ``addresses`` (:func:`service_folder`,
    which says what the other arguments do), stopped when the block ends. With ``profile``, it
    runs under cProfile (:func:`start_service`).
    """
    folder = service_folder(
        addresses,
        tenant=tenant,
        http=http,
        more_tenants=more_tenants,
        limits=limits,
        journal=journal,
        door=door,
    )
    with folder as setup:
        process = start_service(setup, profile)
        try:
            yield ServiceProcess(
                process.pid,
                setup.endpoint,
                setup.keys,
                tenant,
                setup.journal,
                setup.http,
                setup.tenant_keys,
            )
        finally:
            stop_child(process)
