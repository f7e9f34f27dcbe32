"""Several ``kassa serve`` processes on one PostgreSQL journal, for the scale-out benchmarks.

What :mod:`benchmarks.processes` does for one engine, for K: a scratch database on the server
the benchmark was pointed at (migrated, dropped at the end, so runs never see each other's
rows and ``pg_stat_database`` counts this run's commits alone), K service folders over the
same registers with one CURVE key pair between them (a client may send any job to any
engine), and a TCP proxy between the engines and the server that can drop every connection
for a moment, as a network fault or a server restart does.
"""

from __future__ import annotations

import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import attrs
import psycopg
import zmq
from psycopg.conninfo import conninfo_to_dict

from benchmarks.processes import (
    UNLIMITED,
    ServiceFolder,
    _service_toml,
    free_ports,
    start_service,
    stop_child,
)
from engine.client import ClientKeys
from engine.journal_pg import migrate
from engine.service_config import write_certificate


def with_database(url: str, dbname: str, *, host: str = "", port: int = 0) -> str:
    """``url`` with another database (and, if given, another host and port), as a URL:
    kassa.toml's ``journal`` takes ``postgresql://`` URLs only."""
    params: dict[str, Any] = {
        key: value for key, value in conninfo_to_dict(url).items() if value is not None
    }
    params.pop("dbname", None)
    if host:
        params["host"], params["port"] = host, str(port)
    user, password = params.pop("user", ""), params.pop("password", "")
    where, at = str(params.pop("host", "")), str(params.pop("port", ""))
    if where.startswith("/"):  # a socket folder cannot sit in a URL's authority
        params["host"] = where
        where = ""
    credentials = quote(str(user), safe="") if user else ""
    if password:
        credentials += ":" + quote(str(password), safe="")
    authority = (credentials + "@" if credentials else "") + where + (f":{at}" if at else "")
    query = f"?{urlencode(params)}" if params else ""
    return f"postgresql://{authority}/{quote(dbname, safe='')}{query}"


@attrs.frozen
class ScratchJournal:
    """A migrated journal in a database of its own, on the server of ``admin``."""

    admin: str  # the URL the benchmark was given: where the database is created and dropped
    dbname: str
    url: str  # the journal's URL

    def url_via(self, port: int) -> str:
        """The journal's URL through a proxy on 127.0.0.1:``port``."""
        return with_database(self.admin, self.dbname, host="127.0.0.1", port=port)

    def commits(self) -> int:
        """Transactions committed in this database so far (``pg_stat_database.xact_commit``)."""
        with psycopg.connect(self.admin, autocommit=True) as admin:
            admin.execute("SELECT pg_stat_clear_snapshot()")
            row = admin.execute(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (self.dbname,)
            ).fetchone()
        return int(row[0]) if row else 0


@contextmanager
def scratch_journal(url: str) -> Iterator[ScratchJournal]:
    """A new database on ``url``'s server, migrated as ``kassa journal migrate`` does; dropped
    (connections and all) when the block ends."""
    dbname = f"kassa_bench_{secrets.token_hex(6)}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{dbname}"')
    try:
        journal = ScratchJournal(url, dbname, with_database(url, dbname))
        migrate(journal.url)
        yield journal
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def upstream_of(url: str) -> tuple[int, Any]:
    """Where the server of ``url`` listens, as a socket family and address (a Unix socket for a
    URL without a host, as libpq connects then)."""
    with psycopg.connect(url) as probe:
        host, port = probe.info.host, probe.info.port
    if host.startswith("/"):
        return socket.AF_UNIX, f"{host}/.s.PGSQL.{port}"
    return socket.AF_INET, (host, port)


class JournalProxy:
    """A TCP proxy in front of the journal's server whose :meth:`cut` drops every connection
    through it and refuses new ones for a while: the engines' side of an outage.

    Why a proxy rather than ``pg_terminate_backend``: it cuts the TCP path the way the network
    does (a reset mid-commit, then refused connections for the whole outage, which a terminated
    backend cannot make: the engine reconnects at once), and it needs no right on the server.
    """

    def __init__(self, upstream: tuple[int, Any]) -> None:
        self._upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._down_until = 0.0
        self._halt = threading.Event()
        self.cuts = 0
        self.connections_cut = 0
        self.refused = 0
        self._threads = [threading.Thread(target=self._accept, name="journal-proxy", daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while not self._halt.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if time.monotonic() < self._down_until:
                self.refused += 1
                client.close()
                continue
            try:
                server = socket.socket(self._upstream[0], socket.SOCK_STREAM)
                server.connect(self._upstream[1])
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, server))
            for source, sink in ((client, server), (server, client)):
                threading.Thread(
                    target=self._pump, args=(source, sink), name="journal-proxy-pump", daemon=True
                ).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for each in (source, sink):
                with suppress(OSError):
                    each.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._pairs = [p for p in self._pairs if source not in p]

    def cut(self, seconds: float) -> int:
        """Drop every connection now and refuse new ones for ``seconds``; how many were cut."""
        with self._lock:
            self._down_until = time.monotonic() + seconds
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for each in pair:
                with suppress(OSError):
                    each.shutdown(socket.SHUT_RDWR)
        self.cuts += 1
        self.connections_cut += len(pairs)
        return len(pairs)

    def close(self) -> None:
        self._halt.set()
        self._listener.close()
        self.cut(0.0)


@contextmanager
def journal_proxy(url: str) -> Iterator[JournalProxy]:
    proxy = JournalProxy(upstream_of(url))
    try:
        yield proxy
    finally:
        proxy.close()


def engine_settings(engines: int, index: int, lease_seconds: float) -> dict[str, str | float]:
    """The ``[service]`` keys of engine ``index`` of ``engines``: none for one engine alone
    (today's kassa.toml), else its ``engine_id`` and ``lease_seconds``."""
    if engines == 1:
        return {}
    return {"engine_id": f"engine-{index}", "lease_seconds": lease_seconds}


@contextmanager
def cluster_folders(
    addresses: Sequence[str],
    journal: str,
    engines: int,
    *,
    lease_seconds: float = 2.0,
    tenant: str = "shop",
    limits: Mapping[str, float | int] = UNLIMITED,
) -> Iterator[list[ServiceFolder]]:
    """``engines`` service folders over the same registers at ``addresses`` and the same
    journal URL, each with its own port and ``engine_id``, one CURVE key pair for them all."""
    server_public, server_secret = zmq.curve_keypair()
    client_public, client_secret = zmq.curve_keypair()
    keys = ClientKeys(server_public, client_public, client_secret)
    first = free_ports(engines)
    with ExitStack() as stack:
        folders = []
        for index in range(engines):
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kassa-k-")))
            write_certificate(folder / "server", server_public, server_secret)
            port = first + index
            setup = ServiceFolder(
                folder, f"tcp://127.0.0.1:{port}", keys, tenant, tenant_keys={tenant: keys}
            )
            settings = engine_settings(engines, index, lease_seconds)
            setup.config.write_text(
                _service_toml(
                    port, {tenant: client_public}, addresses, limits, journal, service=settings
                )
            )
            folders.append(setup)
        yield folders


#: Starts of an engine tried before a run gives up on it (a service manager restarts too).
START_ATTEMPTS = 3


def start_together(folders: Sequence[ServiceFolder], refused: list[str] | None = None) -> list[Any]:
    """Start every engine at once (each in a thread: a start takes seconds), so that none has
    leased every register before the others are up; all their processes once all serve.

    An engine that exits instead of serving is started again, up to :data:`START_ATTEMPTS`
    times, and the last line it wrote is added to ``refused``: a run says how often it was.
    """
    processes: list[Any] = [None] * len(folders)
    errors: list[BaseException] = []
    lock = threading.Lock()

    def one(index: int) -> None:
        for attempt in range(START_ATTEMPTS):
            try:
                processes[index] = start_service(folders[index])
                return
            except RuntimeError as error:
                with lock:
                    if refused is not None:
                        refused.append(f"engine-{index}: {error}")
                    if attempt == START_ATTEMPTS - 1:
                        errors.append(error)
                time.sleep(1.0)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(folders))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        for process in processes:
            if process is not None:
                stop_child(process)
        raise RuntimeError(f"an engine did not start: {errors[0]}")
    return processes


def first_line(error: BaseException) -> str:
    """An error's first line: libpq adds hints on lines of their own, and a CLI says one."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
