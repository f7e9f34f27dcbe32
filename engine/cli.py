"""The ``kassa`` command: one thin dispatcher where the rooms of the house meet.

Bad input ends with exit status 2 and one line on stderr that says what and where; a
traceback is a bug. ``demo`` and ``bench`` import what they run inside their own functions.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import os
import shlex
import string
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from engine.limits import MAX_RECEIPT_BYTES, over_limit
from protocols.documents.model import Receipt
from protocols.errors import ProtocolError
from protocols.tlv import decode, dumps, encode, from_tags_json, loads, to_fns_json, to_tags_json

EXIT_BAD_INPUT = 2
EXIT_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a tool whose reader went away
#: The most bytes an input file may have: a receipt's JSON is at most MAX_RECEIPT_BYTES for
#: any service, and a fiscal document or an OFD message far less (the ФН's 32 KiB). Reading
#: stops there, so that an absurd file is refused at once rather than parsed for seconds.
INPUT_BYTES = MAX_RECEIPT_BYTES

#: ``kassa bench NAME`` → the module in ``benchmarks/`` whose ``main(argv)`` runs it.
BENCHMARKS: dict[str, str] = {
    "tlv": "benchmarks.tlv_codec",
    "fn": "benchmarks.fn_codec",
    "ofd": "benchmarks.ofd_codec",
    "shtrih": "benchmarks.shtrih_codec",
    "atol": "benchmarks.atol_codec",
    "emulator": "benchmarks.emulator_capacity",
    "faults": "benchmarks.faults",
    "crash": "benchmarks.crash",
    "intake": "benchmarks.intake",
    "http": "benchmarks.http_intake",
    "fairness": "benchmarks.fairness",
    "e2e": "benchmarks.e2e",
    "sim": "benchmarks.sim",
}


class BadInput(Exception):
    """Input the command cannot use; printed as one line, exit status 2."""


def _fail(message: str) -> NoReturn:
    raise BadInput(message)


def _read_input(path: str | None) -> bytes:
    """The file's bytes, or stdin's; too_large past INPUT_BYTES, the rest unread."""
    if path is None or path == "-":
        path, data, size = "stdin", sys.stdin.buffer.read(INPUT_BYTES + 1), 0
    else:
        try:
            with open(path, "rb") as file:
                data, size = file.read(INPUT_BYTES + 1), os.fstat(file.fileno()).st_size
        except OSError as exc:
            _fail(f"{path}: {exc.strerror or exc}")
    if len(data) > INPUT_BYTES:
        known = size if size > INPUT_BYTES else None  # a stream's size is not known
        _fail(f"{path}: too_large: {over_limit('an input', known, INPUT_BYTES)}")
    return data


_HEX_TEXT = frozenset((string.hexdigits + string.whitespace).encode("ascii"))


def _as_binary(data: bytes, form: str) -> bytes:
    """Raw bytes as given, or hex text (whitespace allowed) turned into bytes."""
    if form == "auto":
        form = "hex" if _HEX_TEXT.issuperset(data) else "raw"
    if form == "raw":
        return data
    text = data.decode("ascii", errors="replace")
    try:
        return bytes.fromhex("".join(text.split()))
    except ValueError:
        _fail("input is not hex text: expected pairs of hex digits")


def _binary_input(path: str | None, form: str, what: str) -> bytes:
    """The bytes to decode; nothing at all (or only whitespace as hex) is bad input, never {}."""
    data = _as_binary(_read_input(path), form)
    if not data:
        source = "stdin" if path is None or path == "-" else path
        _fail(f"{source}: nothing to decode: expected {what}, as raw bytes or hex text")
    return data


def _cmd_tlv_decode(args: argparse.Namespace) -> int:
    decoded = decode(_binary_input(args.file, args.form, "a TLV document or fragment"))
    for warning in decoded.warnings:
        print(f"kassa: warning: {warning.path}: {warning.message}", file=sys.stderr)
    view = to_fns_json(decoded.fields) if args.view == "fns" else to_tags_json(decoded.fields)
    print(dumps(view))
    return 0


def _cmd_tlv_encode(args: argparse.Namespace) -> int:
    fields = from_tags_json(loads(_read_input(args.file)))
    print(encode(fields).hex())
    return 0


def _document_view(document: bytes, view: str) -> dict[str, Any]:
    decoded = decode(document)
    for warning in decoded.warnings:
        print(f"kassa: warning: {warning.path}: {warning.message}", file=sys.stderr)
    return to_fns_json(decoded.fields) if view == "fns" else to_tags_json(decoded.fields)


def _cmd_ofd_decode(args: argparse.Namespace) -> int:
    from protocols.crc import crc16_ccitt_false
    from protocols.ofd import (
        HEADER_SIZE,
        MARKING_SIGNATURE,
        OFD_SIGNATURE,
        Container,
        SessionHeader,
    )

    data = _binary_input(args.file, args.form, "a session header, a container or both")
    out: dict[str, Any] = {}
    if data[:4] in (OFD_SIGNATURE, MARKING_SIGNATURE):
        header = SessionHeader.decode(data[:HEADER_SIZE])
        out["session"] = {
            "signature": header.signature.hex(),
            "s_version": header.s_version.hex(),
            "p_version": header.p_version.hex(),
            "client_id": header.client_id,
            "body_length": header.body_length,
            "flags": header.flags,
            "crc": header.crc,
        }
        data = data[HEADER_SIZE:]
        if data and len(data) != header.body_length:
            _fail(f"body: the session header announces {header.body_length} bytes, got {len(data)}")
    if data:
        container = Container.decode(data, verify_crc=False)
        stored_crc = int.from_bytes(data[2:4], "little")
        out["container"] = {
            "length": container.length,
            "crc": stored_crc,
            "crc_ok": stored_crc == crc16_ccitt_false(data[:2] + data[4:]),
            "message_type": container.message_type,
            "document_type": container.document_type,
            "version": container.version,
            "service_1": container.service_1.hex(),
            "fn": container.fn_number,
            "fd_number": container.fd_number,
            "service_2": container.service_2.hex(),
            "document_length": len(container.document),
            "trailer": container.trailer.hex(),
        }
        out["document"] = _document_view(container.document, args.view)
    print(dumps(out))
    return 0


def _detect_format(body: Any) -> str:
    """Kassa JSON has "kind", a KOMTET task "intent", an ATOL v5 body "receipt" or "correction"."""
    if isinstance(body, dict):
        if "kind" in body:
            return "kassa"
        if "intent" in body:
            return "komtet"
        if "receipt" in body or "correction" in body:
            return "atol"
    _fail("cannot tell the format: expected Kassa JSON, an ATOL v5 body or a KOMTET task")


def _checked_receipt(args: argparse.Namespace) -> tuple[Receipt | None, list[dict[str, Any]]]:
    """The receipt in FILE and every problem of it (format and checks), as JSON-ready dicts.

    The checks are the engine's (:mod:`engine.checks`), against the registers ``--register``
    describes, so that what passes here passes ``submit``.
    """
    import datetime
    from zoneinfo import ZoneInfo

    from engine.checks import check_receipt, engine_problems
    from engine.config import DEFAULT_TIMEZONE
    from protocols.ingress import (
        check_atol_v5,
        check_komtet_task,
        load_json,
        parse_atol_v5,
        parse_komtet_task,
    )
    from protocols.validation import Limits

    registers = _register_profiles(args.register)
    today = datetime.datetime.now(ZoneInfo(DEFAULT_TIMEZONE)).date()

    def more(receipt: Receipt) -> list[Problem]:
        return engine_problems(receipt, registers)

    body = load_json(_read_input(args.file))
    form = _detect_format(body) if args.format == "auto" else args.format
    if form == "atol":
        operation = args.operation or ("sell_correction" if "correction" in body else "sell")
        atol = check_atol_v5(operation, body, today=today, more=more)
        problems = [
            {"path": p.path, "code": p.kassa_code, "message": p.message, "atol_code": p.code}
            | ({"driver_code": p.driver_code} if p.driver_code is not None else {})
            for p in atol
        ]
        return (None if problems else parse_atol_v5(operation, body).receipt), problems
    if form == "komtet":
        komtet = check_komtet_task(body, today=today, more=more)
        problems = [
            {"path": p.path, "code": p.code, "message": p.description, "status": p.status}
            for p in komtet
        ]
        return (None if problems else parse_komtet_task(body).receipt), problems
    from protocols.documents.json_format import ReceiptJsonError, receipt_from_json

    try:
        receipt = receipt_from_json(body)
    except ReceiptJsonError as exc:
        return None, [{"path": p, "code": "format.invalid", "message": m} for p, m in exc.problems]
    limits = Limits(sum_tolerance=args.tolerance)
    found = check_receipt(receipt, registers, today=today, limits=limits)
    return receipt, [{"path": p.path, "code": p.code, "message": p.message} for p in found]


def _register_profiles(given: Sequence[str] | None) -> list[RegisterProfile]:
    """The register group ``--register`` describes: PROTOCOL[:TAX_TABLE] each."""
    from engine.checks import RegisterProfile
    from protocols.taxes import DEFAULT_TAX_TABLES, TAX_TABLES

    out = []
    for text in given or ("shtrih:2026", "atol:2026"):
        protocol, _, name = text.partition(":")
        tables = TAX_TABLES.get(protocol)
        if tables is None:
            _fail(f"--register {text!r}: the protocol is shtrih or atol")
        table = tables.get(name) if name else DEFAULT_TAX_TABLES[protocol]
        if table is None:
            _fail(f"--register {text!r}: the tax tables of {protocol} are {', '.join(tables)}")
        out.append(RegisterProfile(f"{protocol}:{table.name}", protocol, table))
    return out


def _cmd_receipt_check(args: argparse.Namespace) -> int:
    _, problems = _checked_receipt(args)
    for problem in problems:
        print(json.dumps(problem, ensure_ascii=False))
    return 1 if problems else 0


def _cmd_receipt_tlv(args: argparse.Namespace) -> int:
    from protocols.documents.ffd import encode_receipt
    from protocols.tlv.enums import FfdVersion

    receipt, problems = _checked_receipt(args)
    if problems or receipt is None:
        first = problems[0]
        more = (
            f" (and {len(problems) - 1} more; see kassa receipt check)" if len(problems) > 1 else ""
        )
        _fail(f"{first['path']}: {first['message']}{more}")
    ffd = FfdVersion.V1_05 if args.ffd == "1.05" else FfdVersion.V1_2
    print(encode_receipt(receipt, ffd).hex())
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    """The embedded end-to-end: the emulator is imported here only (the engine never does)."""
    import functools
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager
    from datetime import datetime
    from zoneinfo import ZoneInfo

    import trio

    from emulator.serve import open_memory_fleet
    from engine.config import Connector
    from engine.demo import run
    from engine.drivers.base import RegisterDriver
    from engine.drivers.shtrih import ShtrihDriver
    from protocols.fiscal_sign import EmulatorSignVerifier, SignVerifier

    @asynccontextmanager
    async def emulated(n: int) -> AsyncIterator[tuple[Sequence[Connector], SignVerifier]]:
        # The registers' clocks keep Moscow time, as the demo tenant's registers would.
        now = datetime.now(ZoneInfo("Europe/Moscow")).replace(tzinfo=None, microsecond=0)
        async with open_memory_fleet(n, start=now) as fleet:

            async def connect(index: int) -> RegisterDriver:
                return ShtrihDriver(await fleet.connect(index))

            keys = {register.fn.number: register.fn.key for register in fleet.registers}
            yield [functools.partial(connect, i) for i in range(n)], EmulatorSignVerifier(keys)

    return trio.run(run, emulated)


def _cmd_emulator_serve(args: argparse.Namespace) -> int:
    """Serve emulated registers until SIGINT or SIGTERM; the emulator is imported only here.

    The signals are taken explicitly: a process started in the background inherits SIGINT
    ignored, and a service manager stops with SIGTERM, and either must end the fleet cleanly.
    """
    import datetime as dt
    import signal

    import trio

    from emulator.serve import FleetError, FnSetup, serve_fleet
    from engine.collector import tune_collector

    tune_collector()  # engine/collector.py: the default schedule made a large fleet collapse
    fn_setup = FnSetup(
        registered_ago=dt.timedelta(days=args.fn_age),
        key_validity_months=args.fn_months,
        registration_sent=args.fn_sent,
    )

    async def serve_until_signalled() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    partial(
                        serve_fleet,
                        args.protocol,
                        args.registers,
                        args.port,
                        args.model,
                        args.line,
                        args.seed,
                        args.faults,
                        taxes=args.tax_table,
                        fn_setup=fn_setup,
                        announce=lambda line: print(line, flush=True),
                        on_fault=lambda event: print(
                            f"fault at {event.at:.3f} s: register {event.register} "
                            f"{event.kind} {event.detail}",
                            file=sys.stderr,
                            flush=True,
                        ),
                    )
                )
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break

    try:
        trio.run(serve_until_signalled)
    except BaseExceptionGroup as group:  # trio nurseries wrap what their tasks raise
        failed, _ = group.split((FleetError, OSError))  # OSError: a port taken, say
        if failed is None:
            raise
        _fail(str(_first_leaf(failed)))
    return 0


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first exception a (nested) group holds: the one to report in one line."""
    first: BaseException = group
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first


def _cmd_serve(args: argparse.Namespace) -> int:
    """Serve the engine on ZeroMQ, and on HTTP when configured, until SIGINT or SIGTERM, from
    kassa.toml or as a demo.

    ``--demo`` needs no config: an emulated fleet in-process (the emulator is imported here
    only), a journal, fresh CURVE certificates and a fresh ATOL password in a temporary folder,
    and it prints how to reach both doors. Sockets close with linger 0 and the context ends
    before the command returns.
    """
    import datetime
    import logging
    import signal
    import sqlite3
    import tempfile
    from zoneinfo import ZoneInfo

    import attrs
    import trio
    import zmq

    from engine.collector import tune_collector
    from engine.config import EngineConfig
    from engine.doors import Doors, open_doors
    from engine.http.credentials import (
        AtolLogin,
        KomtetShop,
        hash_password,
        new_password,
        new_secret,
    )
    from engine.journal import JournalError
    from engine.log_writer import LogWriter
    from engine.service import SWITCH_INTERVAL, ServiceError
    from engine.service_config import (
        ConfigError,
        HttpSettings,
        LoadedConfig,
        ServiceSettings,
        load_config,
        write_certificate,
        z85_key,
    )

    sys.setswitchinterval(SWITCH_INTERVAL)  # this process is the service's: see the constant
    tune_collector()  # engine/collector.py: the default schedule stalls a busy engine

    @contextlib.contextmanager
    def logging_to_stderr() -> Iterator[None]:
        """The log goes to stderr from a thread of its own (engine/log_writer.py): a reader
        that stalls cannot block the event loop. Its lines are written before any error."""
        with LogWriter(sys.stderr) as writer:
            logging.basicConfig(level=logging.INFO, handlers=[writer.handler])
            try:
                yield
            finally:
                logging.getLogger().removeHandler(writer.handler)

    async def until_signalled(
        loaded: LoadedConfig,
        announce: Callable[[Doors], None],
        prepare: Callable[[Doors], Awaitable[None]] | None = None,
    ) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with open_doors(loaded) as doors:
                if prepare is not None:
                    await prepare(doors)
                announce(doors)
                async for _ in signals:
                    break

    def say(line: str) -> None:
        print(line, flush=True)

    async def demo(folder: Path) -> None:
        from emulator.serve import MemoryFleet, open_memory_fleet
        from engine.cabinet.users import CabinetUser
        from engine.config import RegisterConfig, TenantConfig
        from engine.connectors import driver_for
        from engine.drivers.base import RegisterDriver
        from protocols.fiscal_sign import EmulatorSignVerifier

        server_public, server_secret = zmq.curve_keypair()
        client_public, client_secret = zmq.curve_keypair()
        server_file, _ = write_certificate(folder / "server", server_public, server_secret)
        client_file, client_secret_file = write_certificate(
            folder / "demo-client", client_public, client_secret
        )
        tenant = "demo-shop"
        password = new_password()  # printed once, below; only its hash is kept
        login = AtolLogin(tenant, tenant, hash_password(password))
        shop = KomtetShop(tenant, "1001", new_secret())  # printed once, below
        owner_password = new_password()  # the cabinet's demo owner: printed once, below
        owner = CabinetUser(tenant, "owner", "owner", hash_password(owner_password))
        payments = _demo_payments(tenant)  # its hook and secrets too
        now = datetime.datetime.now(ZoneInfo("Europe/Moscow")).replace(tzinfo=None, microsecond=0)
        async with (
            open_memory_fleet(2, start=now) as shtrih,
            open_memory_fleet(2, protocol="atol", start=now, seed=1) as atol,
        ):

            def connector(fleet: MemoryFleet, protocol: str, index: int) -> Callable[[], Any]:
                async def connect() -> RegisterDriver:
                    return driver_for(protocol, await fleet.connect(index))

                return connect

            fleets = (("main", "shtrih", shtrih), ("atol", "atol", atol))
            config = EngineConfig(
                journal=folder / "journal.db",
                tenants=(TenantConfig(tenant, name="Демо-магазин"),),
                registers=tuple(
                    RegisterConfig(
                        f"{'kkt' if group == 'main' else group}-{i}",
                        tenant,
                        connector(fleet, protocol, i),
                        group=group,
                        protocol=protocol,
                        address=f"emulator:{protocol}:{i}",
                    )
                    for group, protocol, fleet in fleets
                    for i in range(2)
                ),
                verifier=EmulatorSignVerifier(
                    {r.fn.number: r.fn.key for _, _, f in fleets for r in f.registers}
                ),
            )
            settings = ServiceSettings(
                listen=args.listen or "tcp://127.0.0.1:5555",
                server_public=server_public,
                server_secret=server_secret,
                clients={z85_key(client_public.decode()): tenant},
            )
            http = HttpSettings(
                listen=args.http_listen or "127.0.0.1:8080",
                atol_logins={login.login: login},
                komtet_shops={shop.shop_id: shop},
                token_key=server_secret,
                payments={payments.hook: payments},
                cabinet_users={owner.login: owner},
                smtp=_demo_smtp(args.smtp),
            )

            def announce(doors: Doors) -> None:
                service, door = doors.service, doors.http
                assert door is not None
                say(
                    f"kassa serve --demo: tenant {tenant}; register groups main (2 emulated "
                    "Shtrih-M) and atol (2 emulated ATOL: submit with --group atol)"
                )
                say(f"journal: {config.journal}")
                say(f"requests: {service.endpoint}")
                say(f"events: {service.events_endpoints[tenant]}")
                say(f"server key: {server_public.decode()} (certificate {server_file})")
                say(f"client key: {client_secret_file} (public: {client_file})")
                say(f"http: {door.url}")
                credentials = {
                    "http": door.url,
                    "atol": {"login": login.login, "password": password, "group_code": "main"},
                    "komtet": {"shop_id": shop.shop_id, "secret": shop.secret, "queue_id": "main"},
                    "payments": _demo_payments_credentials(payments, door.url),
                    "cabinet": {
                        "url": f"{door.url}/cabinet/",
                        "login": owner.login,
                        "password": owner_password,
                    },
                    "zmq": {
                        "endpoint": service.endpoint,
                        "server_key": str(server_file),
                        "client_key": str(client_secret_file),
                    },
                }
                say(f"credentials: {json.dumps(credentials, ensure_ascii=False)}")
                command = [
                    _program(),
                    "submit",
                    _demo_sample(),
                    "--wait",
                    "--server",
                    service.endpoint,
                    "--server-key",
                    str(server_file),
                    "--key",
                    str(client_secret_file),
                ]
                say(f"try: {shlex.join(command)}")
                say("stop: Ctrl-C")

            async def stock(doors: Doors) -> None:
                from engine.cabinet.catalogue import stock_demo
                from engine.samples import COMPANY

                await stock_demo(doors.engine, tenant, COMPANY)

            await until_signalled(LoadedConfig(config, settings, http), announce, stock)

    def serving(doors: Doors) -> None:
        say(f"kassa: serving on {doors.service.endpoint}")
        if doors.http is not None:
            say(f"kassa: serving HTTP on {doors.http.url}")

    try:
        if args.smtp and not args.demo:
            _fail("--smtp is for --demo; a config sets its [smtp] section")
        if args.demo:
            with tempfile.TemporaryDirectory(prefix="kassa-serve-") as folder, logging_to_stderr():
                trio.run(demo, Path(folder))
        else:
            try:
                loaded = load_config(args.config)
            except ConfigError as exc:
                _fail(str(exc))
            if args.listen:
                loaded = attrs.evolve(
                    loaded, service=attrs.evolve(loaded.service, listen=args.listen)
                )
            if args.http_listen:
                if loaded.http is None:
                    _fail(f"--http-listen: {args.config} has no [http] section")
                loaded = attrs.evolve(
                    loaded, http=attrs.evolve(loaded.http, listen=args.http_listen)
                )
            with logging_to_stderr():
                trio.run(until_signalled, loaded, serving)
    except BaseExceptionGroup as group:  # trio nurseries wrap what their tasks raise
        failed, _ = group.split((ServiceError, OSError, sqlite3.Error, JournalError))
        if failed is None:
            raise
        _fail(str(_first_leaf(failed)))
    except (ServiceError, OSError, sqlite3.Error, JournalError) as exc:  # e.g. a full disk
        _fail(str(exc))
    return 0


def _cmd_journal_check(args: argparse.Namespace) -> int:
    """The full check of a journal file (``PRAGMA integrity_check``), which a start skips; of a
    PostgreSQL journal, the checks of a start (Kassa's, at this schema version)."""
    from engine.journal import JournalError, check, is_url, journal_name, need_psycopg

    try:
        if is_url(args.journal):
            need_psycopg()
            from engine import journal_pg

            held = journal_pg.check(args.journal)
        else:
            held = check(Path(args.journal))
        print(f"{journal_name(args.journal)}: sound; {held}")
    except JournalError as exc:
        _fail(str(exc))
    return 0


def _cmd_journal_adopt(args: argparse.Namespace) -> int:
    """Let a journal start over on a used ФН: the way out an engine names when it holds a
    register whose ФН holds receipts the journal does not know."""
    from engine.journal import JournalError, adopt, is_url, journal_name, need_psycopg

    if not args.fn.isdigit():
        _fail(f"--fn: expected the ФН's number (digits), got {args.fn!r}")
    if args.last_fd < 1:
        _fail(f"--last-fd: expected an FD number of at least 1, got {args.last_fd}")
    try:
        if is_url(args.journal):
            need_psycopg()
            from engine import journal_pg

            known = journal_pg.adopt(args.journal, args.fn, args.last_fd)
        else:
            known = adopt(Path(args.journal), args.fn, args.last_fd)
    except JournalError as exc:
        _fail(str(exc))
    before = "nothing of it" if known is None else f"FD {known}"
    print(
        f"{journal_name(args.journal)}: ФН {args.fn} adopted at FD {args.last_fd} (the journal "
        f"knew {before}); its register takes jobs once the engine looks at it again. Receipts "
        "it signed before are not in this journal: their external_ids are not recognised."
    )
    return 0


def _postgres_url(value: str, what: str) -> str:
    from engine.journal import is_url, need_psycopg

    if not is_url(value):
        _fail(f"{what}: expected a postgresql:// URL, got {value!r}")
    need_psycopg()
    return value


def _cmd_journal_migrate(args: argparse.Namespace) -> int:
    """Bring a PostgreSQL journal's schema to this Kassa's version (made new if empty)."""
    from engine.journal import JournalError, journal_name

    try:
        url = _postgres_url(args.url, "URL")
        from engine import journal_pg

        before, after = journal_pg.migrate(url)
    except JournalError as exc:
        _fail(str(exc))
    done = "already at" if before == after else f"migrated from version {before} to"
    print(f"{journal_name(url)}: {done} schema version {after}")
    return 0


def _cmd_journal_copy(args: argparse.Namespace) -> int:
    """Move an installation's SQLite journal into a new PostgreSQL journal, row for row."""
    from engine.journal import JournalError, journal_name

    try:
        url = _postgres_url(args.url, "POSTGRES_URL")
        from engine import journal_pg

        counts = journal_pg.copy(Path(args.sqlite), url)
    except JournalError as exc:
        _fail(str(exc))
    rows = ", ".join(f"{table} {count}" for table, count in counts.items())
    print(f"{args.sqlite} copied into {journal_name(url)} and read back: {rows}")
    return 0


def _demo_smtp(address: str | None) -> SmtpSettings | None:
    """The demo's outgoing mail: plain SMTP to a local mail catcher, or none."""
    from engine.service_config import SmtpSettings

    if address is None:
        return None
    host, _, port = address.rpartition(":")
    return SmtpSettings(host, int(port), security="none", sender="demo@kassa.localhost")


def _demo_payments(tenant: str) -> PaymentSettings:
    """The demo tenant's payment hook: fresh secrets for the three providers, prepayment first
    (the two-receipt flow), and a one-line order template for payments without a receipt."""
    import secrets

    from engine.http.hooks import PaymentSettings
    from protocols.documents.model import Company
    from protocols.notifications.receipts import OrderTemplate

    shop = Company(
        inn="7707083893",
        tax_system=1,  # ОСН
        place="shop.kassa.example",
        email="receipts@shop.kassa.example",
    )
    return PaymentSettings(
        tenant,
        secrets.token_urlsafe(18),
        OrderTemplate("Оплата заказа", 11, 1, shop, contact="receipts@shop.kassa.example"),
        prepayment=True,
        yookassa_secret=secrets.token_urlsafe(18),
        cloudpayments_secret=secrets.token_urlsafe(18),
        tbank_password=secrets.token_urlsafe(12),
    )


def _demo_payments_credentials(payments: PaymentSettings, base: str) -> dict[str, Any]:
    """What ``credentials.payments`` prints: the hook, each provider's secret and its URL."""
    hook = f"{base}/notifications/{payments.hook}"
    return {
        "hook": payments.hook,
        "yookassa_secret": payments.yookassa_secret,
        "cloudpayments_secret": payments.cloudpayments_secret,
        "tbank_password": payments.tbank_password,
        "settlement": "prepayment" if payments.prepayment else "full",
        "urls": {
            "yookassa": f"{hook}/yookassa?secret={payments.yookassa_secret}",
            "cloudpayments": f"{hook}/cloudpayments",
            "tbank": f"{hook}/tbank",
            "shipped": f"{base}/payments/{{provider}}/{{payment_id}}/shipped",
        },
    }


#: The shipped receipt the hint of ``kassa serve --demo`` submits: a card sale at VAT 22 %.
DEMO_SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "kassa-sell-card.json"


def _demo_sample() -> str:
    """The demo's sample receipt as a path that works from here: relative when it is below."""
    if not DEMO_SAMPLE.is_file():  # installed without the checkout: say what to put there
        return "RECEIPT.json"
    try:
        return str(DEMO_SAMPLE.relative_to(Path.cwd()))
    except ValueError:
        return str(DEMO_SAMPLE)


def _program() -> str:
    """This ``kassa`` as a hint names it: ``kassa`` if it is the one on PATH, else as it was run
    (``.venv/bin/kassa``, say), so that the hint can be pasted as it is.
    """
    import shutil

    ran = Path(sys.argv[0])
    on_path = shutil.which("kassa")
    if ran.name != "kassa" or (on_path and Path(on_path).resolve() == ran.resolve()):
        return "kassa"
    return str(ran)


def _cmd_bench(args: argparse.Namespace) -> int:
    names = list(BENCHMARKS) if args.name == "all" else [args.name]
    if importlib.util.find_spec("matplotlib") is None:  # before a run, not after it
        _fail("kassa bench draws its plots with matplotlib: pip install 'kassa[bench]'")
    status = 0
    for name in names:
        module_name = BENCHMARKS.get(name)
        if module_name is None:
            _fail(f"unknown benchmark {name!r}; choose from: all, {', '.join(BENCHMARKS)}")
        module = importlib.import_module(module_name)
        main: Callable[[list[str]], int] = module.main
        status |= main(list(args.rest))
    return status


def _cmd_fuzz(args: argparse.Namespace) -> int:
    """kassa fuzz: the targets live in fuzz/, imported here only (like bench's benchmarks/)."""
    if importlib.util.find_spec("fuzz") is None:
        _fail("kassa fuzz runs from a source checkout with fuzz/ (pip install -e '.[fuzz]')")
    from fuzz.command import main as fuzz_main
    from fuzz.runner import FuzzError

    try:
        return fuzz_main(
            args.target,
            show_list=args.list,
            seconds=args.time,
            runs=args.runs,
            jobs=args.jobs,
            corpus=Path(args.corpus),
            as_json=args.json,
            replay_file=None if args.replay is None else Path(args.replay),
        )
    except FuzzError as exc:
        _fail(str(exc))


# --- the service's client: submit, status, receipt show, report, export, keys ------------------
# A client of docs/protocol.md (engine/client.py). Bad input (a file, a date, a key file) is
# exit status 2 and nothing is sent; what the service refuses or fails, or a service that
# cannot be reached, is exit status 1 and one line: the code, the path at fault, the message.

if TYPE_CHECKING:
    import datetime

    from engine.checks import RegisterProfile
    from engine.client import BatchEntry, JobInfo, KassaClient, KassaError, ReceiptInfo
    from engine.http.hooks import PaymentSettings
    from engine.service_config import SmtpSettings
    from protocols.validation import Problem

EXIT_REFUSED = 1
#: More files than this get a progress bar on a terminal (--progress shows one always).
_PROGRESS_FROM = 5
#: Jobs sent in one submit_batch request.
_BATCH = 100
_WIRE_FORMAT = {"atol": "atol_v5", "kassa": "kassa", "komtet": "komtet"}
_SIGNED = ("fiscalized", "resolved")


def _setting(value: str | None, variable: str, option: str, what: str) -> str:
    import os

    found = value or os.environ.get(variable)
    if not found:
        _fail(f"{option}: missing: give {option} {what} or set {variable}")
    return found


def _client(args: argparse.Namespace) -> KassaClient:
    """The client the common options name; connecting sends nothing yet."""
    from engine.client import ClientKeys, KassaClient

    server = _setting(args.server, "KASSA_SERVER", "--server", "ENDPOINT")
    server_key = _setting(args.server_key, "KASSA_SERVER_KEY", "--server-key", "FILE")
    key = _setting(args.key, "KASSA_KEY", "--key", "FILE")
    try:
        keys = ClientKeys.load(server_key, key)
        return KassaClient(server, keys, timeout=args.timeout)
    except ValueError as exc:
        _fail(str(exc))


def _error_line(error: KassaError) -> str:
    """A service's error on one line: code, path at fault, message (and how many more)."""
    where = f"{error.path}: " if error.path else ""
    more = ""
    if len(error.problems) > 1 and "more)" not in error.message:
        more = f" (and {len(error.problems) - 1} more)"
    return f"{error.code}: {where}{error.message}{more}"


def _refused(error: KassaError) -> int:
    print(f"kassa: error: {_error_line(error)}", file=sys.stderr)
    return EXIT_REFUSED


def _progress_bar(args: argparse.Namespace, *, auto: bool = True, **options: Any) -> Any:
    """A tqdm bar on stderr: with --progress, or on a terminal when ``auto``; else silent."""
    from tqdm import tqdm

    shown = args.progress or (auto and sys.stderr.isatty())
    return tqdm(file=sys.stderr, disable=not shown, leave=False, **options)


def _zone(name: str | None) -> datetime.tzinfo | None:
    """The tenant's zone as the service names it, or None: unnamed, or unknown here.

    Where it is None this machine's own zone stands in, its offset shown all the same.
    """
    from zoneinfo import ZoneInfo

    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):  # ZoneInfoNotFoundError is a KeyError
        return None


def _local_time(value: float, time_zone: str | None) -> str:
    """Unix seconds as the tenant's local time with its offset, as Kassa shows times."""
    import datetime

    zone = _zone(time_zone)
    moment = datetime.datetime.fromtimestamp(value, zone)
    return (moment if zone else moment.astimezone()).isoformat(timespec="seconds")


def _when(text: str, option: str, *, end: bool) -> datetime.datetime:
    """An ISO date or date and time; without an offset it is the tenant's local time.

    A date alone means its whole day: its start for --from, the next day's start for --to.
    """
    import datetime

    try:
        if len(text) == 10:
            moment = datetime.datetime.combine(datetime.date.fromisoformat(text), datetime.time())
            if end:
                moment += datetime.timedelta(days=1)
        else:
            moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        _fail(f"{option}: {text!r} is not an ISO date or date and time (2026-03-01T08:00)")
    return moment


def _period(
    args: argparse.Namespace, *, required: bool
) -> tuple[datetime.datetime | None, datetime.datetime | None]:
    """--from and --to as given: checked before anything is sent."""
    if required and (args.start is None or args.end is None):
        _fail(f"{'--from' if args.start is None else '--to'}: missing")
    start = None if args.start is None else _when(args.start, "--from", end=False)
    end = None if args.end is None else _when(args.end, "--to", end=True)
    if start is not None and end is not None and (start.tzinfo is None) == (end.tzinfo is None):
        _check_period(args, start.timestamp(), end.timestamp())
    return start, end


def _check_period(args: argparse.Namespace, start: float, end: float) -> None:
    if end <= start:
        _fail(f"--to: the period from {args.start} to {args.end} is empty")


def _unix(moment: datetime.datetime, zone: datetime.tzinfo | None) -> float:
    """Unix seconds of a moment; one that names no offset is local time in ``zone``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone) if zone else moment.astimezone()
    return moment.timestamp()


def _period_seconds(
    args: argparse.Namespace,
    period: tuple[datetime.datetime | None, datetime.datetime | None],
    client: KassaClient,
) -> tuple[float | None, float | None]:
    """--from and --to as Unix seconds, the tenant's local time unless they name an offset.

    The service tells the tenant's zone (one ``ping``, only when a date needs it).
    """
    start, end = period
    naive = any(m is not None and m.tzinfo is None for m in (start, end))
    zone = _zone(client.ping().time_zone) if naive else None
    first, last = (None if m is None else _unix(m, zone) for m in (start, end))
    if first is not None and last is not None:
        _check_period(args, first, last)
    return first, last


def _job_ref(args: argparse.Namespace) -> tuple[str | None, str | None]:
    if args.job_id is None and args.external_id is None:
        _fail("ID: missing: give a job id, or --external-id X")
    if args.job_id is not None and args.external_id is not None:
        _fail("--external-id: give a job id or an external id, not both")
    job_id: str | None = args.job_id
    external_id: str | None = args.external_id
    return job_id, external_id


def _submission(path: str, form: str, group: str, operation: str | None) -> BatchEntry:
    """The batch entry for one file; every fault of the file is bad input that names it."""
    from engine.client import BatchEntry
    from protocols.ingress import IngressError, load_json

    try:
        body = load_json(_read_input(path))
    except IngressError as exc:
        _fail(f"{path}: {exc.problems[0].message}")
    try:
        detected = _detect_format(body) if form == "auto" else form
    except BadInput as exc:
        _fail(f"{path}: {exc}")
    if not isinstance(body, dict):
        _fail(f"{path}: expected a JSON object")
    own_id = body.get("external_id") if detected != "kassa" else None
    external_id = own_id if isinstance(own_id, str) and own_id else Path(path).stem
    atol = detected == "atol"
    return BatchEntry(external_id, body, _WIRE_FORMAT[detected], group, operation if atol else None)


def _job_line(path: str, job: JobInfo, receipt: ReceiptInfo | None = None) -> str:
    """``FILE  JOB  STATE`` and the fiscal data once signed, or the job's error."""
    fields = [path, job.id, job.state]
    if receipt is not None and receipt.fiscal is not None:
        fiscal = receipt.fiscal
        fields += [f"FD {fiscal.fd_number}", f"ФП {fiscal.printed_sign}", f"QR {fiscal.qr}"]
    elif job.error:
        fields.append(job.error)
    return "\t".join(fields)


def _cmd_submit(args: argparse.Namespace) -> int:
    """Submit every file (all are read and checked first: a bad one sends nothing)."""
    from engine.client import KassaError

    if args.operation is not None and args.format not in ("auto", "atol"):
        _fail("--operation: only an ATOL v5 body has an operation")
    entries = [(p, _submission(p, args.format, args.group, args.operation)) for p in args.files]
    status = 0
    accepted: list[tuple[str, JobInfo]] = []
    many = len(entries) > _PROGRESS_FROM
    with _client(args) as client:
        try:
            with _progress_bar(args, auto=many, total=len(entries), unit="file") as bar:
                for first in range(0, len(entries), _BATCH):
                    chunk = entries[first : first + _BATCH]
                    results = client.submit_batch(entry for _, entry in chunk)
                    for (path, _), result in zip(chunk, results, strict=True):
                        if isinstance(result, KassaError):
                            status = EXIT_REFUSED
                            line = f"{path}\t-\trefused\t{_error_line(result)}"
                        else:
                            accepted.append((path, result.job))
                            if args.wait:
                                continue
                            line = _job_line(path, result.job)
                            line += "\tduplicate" if result.duplicate else ""
                        bar.write(line, file=sys.stdout)
                    bar.update(len(chunk))
            if args.wait:
                status |= _wait_and_print(args, client, accepted, many)
        except KassaError as exc:
            return _refused(exc)
    return status


def _wait_and_print(
    args: argparse.Namespace, client: KassaClient, accepted: list[tuple[str, JobInfo]], many: bool
) -> int:
    """Poll ``status`` until every job is final (or --wait-timeout), then print them in order."""
    import time

    deadline = time.monotonic() + args.wait_timeout
    pending = [i for i, (_, job) in enumerate(accepted) if not job.final]
    pause = 0.05
    with _progress_bar(
        args, auto=many, total=len(accepted), initial=len(accepted) - len(pending), unit="job"
    ) as bar:
        while pending and time.monotonic() < deadline:
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 1.5, 2.0)
            waiting = []
            for i in pending:
                path, job = accepted[i]
                accepted[i] = (path, client.status(job_id=job.id))
                if accepted[i][1].final:
                    bar.update(1)
                else:
                    waiting.append(i)
            pending = waiting
    status = 0
    for path, job in accepted:
        receipt = client.receipt(job_id=job.id) if job.state in _SIGNED else None
        line = _job_line(path, job, receipt)
        if job.state not in _SIGNED:
            status = EXIT_REFUSED
            if not job.final:
                line += f"\tnot final after {args.wait_timeout:g} s"
        print(line)
    return status


def _hexed(value: Any) -> Any:
    """JSON-ready: binary values as hex text."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): _hexed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_hexed(v) for v in value]
    return value


def _cmd_status(args: argparse.Namespace) -> int:
    import attrs

    from engine.client import KassaError

    job_id, external_id = _job_ref(args)
    with _client(args) as client:
        try:
            job = client.status(job_id, external_id)
        except KassaError as exc:
            return _refused(exc)
    if args.json:
        print(json.dumps(attrs.asdict(job), ensure_ascii=False))
        return 0
    fields = [job.id, job.external_id, job.state]
    fields += [f"register {job.register}"] if job.register else []
    fields += [f"error {job.error}"] if job.error else []
    print("\t".join([*fields, f"updated {_local_time(job.updated, job.time_zone)}"]))
    return 0


def _cmd_receipt_show(args: argparse.Namespace) -> int:
    from engine.client import KassaError

    job_id, external_id = _job_ref(args)
    with _client(args) as client:
        try:
            info = client.receipt(job_id, external_id)
        except KassaError as exc:
            return _refused(exc)
    if args.json:
        print(json.dumps(_hexed(info.raw), ensure_ascii=False, indent=2))
        return 0
    if info.text:
        print(info.text.rstrip("\n"))
    fiscal = info.fiscal
    if fiscal is None:
        print(f"{info.job.id}\t{info.job.state}\tnot fiscalized")
        return 0
    print(f"FN {fiscal.fn_number}")
    print(f"FD {fiscal.fd_number}")
    print(f"ФП {fiscal.printed_sign}")
    print(f"QR {fiscal.qr}")
    print(f"fiscalized {_local_time(fiscal.fiscalized_at, info.job.time_zone)}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from engine.client import KassaError

    period = _period(args, required=True)
    with _client(args) as client:
        try:
            start, end = _period_seconds(args, period, client)
            assert start is not None and end is not None
            report = client.report(start, end, args.register)
        except KassaError as exc:
            return _refused(exc)
    print(report.text.rstrip("\n"))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    """Write the chunks as they come; a file appears under its name only when complete."""
    import contextlib
    import os

    from engine.client import KassaError

    period = _period(args, required=False)
    part = None if args.output in (None, "-") else Path(args.output + ".part")
    try:
        out = sys.stdout if part is None else part.open("w", encoding="utf-8", newline="")
    except OSError as exc:
        _fail(f"{args.output}: {exc.strerror or exc}")
    done = False
    try:
        with _client(args) as client, _progress_bar(args, unit="B", unit_scale=True) as bar:
            start, end = _period_seconds(args, period, client)
            for chunk in client.export(args.form, start, end):
                out.write(chunk)
                out.flush()
                bar.update(len(chunk.encode()))
        done = True
    except KassaError as exc:
        return _refused(exc)
    finally:
        if part is not None:
            out.close()
            if done:
                os.replace(part, args.output)
            else:
                with contextlib.suppress(OSError):
                    part.unlink()
    return 0


def _cmd_keys_new(args: argparse.Namespace) -> int:
    """A CURVE key pair as NAME.key and NAME.key_secret (owner-only), written by ZeroMQ."""
    import os

    import zmq.auth

    name: str = args.name
    if not name or name.startswith(".") or "/" in name or os.sep in name:
        _fail(f"{name!r}: a key name is a plain file name, like shop-web")
    folder = Path(args.dir)
    if not folder.is_dir():
        _fail(f"--dir: {folder}: no such folder")
    for path in (folder / f"{name}.key", folder / f"{name}.key_secret"):
        if path.exists():
            _fail(f"{path}: already exists; not overwritten")
    mask = os.umask(0o077)  # the secret file is never readable by others, not even briefly
    try:
        public_file, secret_file = zmq.auth.create_certificates(folder, name)
    except OSError as exc:
        _fail(f"{folder}: {exc.strerror or exc}")
    finally:
        os.umask(mask)
    Path(public_file).chmod(0o644)
    public, _ = zmq.auth.load_certificate(public_file)
    print(public.decode("ascii"))
    print(
        f"kassa: wrote {public_file} and {secret_file} (keep it secret); "
        "add the public key to a tenant's keys in kassa.toml",
        file=sys.stderr,
    )
    return 0


def _cmd_keys_atol(args: argparse.Namespace) -> int:
    """An ATOL login for the HTTP door as NAME.atol (owner-only): the password's scrypt hash,
    never the password, which is printed here once. ``--rotate`` gives it a new password."""
    from engine.http.credentials import LOGIN, hash_password, new_password, write_atol_credential

    path, login = _credential_file(args, "atol", "login", args.login, "password")
    if not isinstance(login, str) or not LOGIN.match(login):
        _fail(f"--login: {login!r}: use 1 to 64 letters, digits, '_', '.', '@' or '-'")
    password = new_password()
    try:
        write_atol_credential(path, login, hash_password(password))
    except OSError as exc:
        _fail(f"{path}: {exc.strerror or exc}")
    print(f"login: {login}")
    print(f"password: {password}")
    print(
        f"kassa: wrote {path}: the password is shown only now. List the file in a tenant's "
        "http = [...] in kassa.toml; a running service takes it when it starts again",
        file=sys.stderr,
    )
    return 0


def _cmd_keys_cabinet(args: argparse.Namespace) -> int:
    """A cabinet user as a ``[[tenants.users]]`` table to paste under its tenant in kassa.toml:
    the login, the role and the scrypt hash of a new password, which is printed here once."""
    from engine.http.credentials import LOGIN, hash_password, new_password

    login: str = args.name
    if not LOGIN.match(login):
        _fail(f"{login!r}: a login is 1 to 64 letters, digits, '_', '.', '@' or '-'")
    password = new_password()
    print(f"# login: {login}")
    print(f"# password: {password}")
    print("[[tenants.users]]")
    print(f'login = "{login}"')
    print(f'role = "{args.role}"')
    print(f'password_hash = "{hash_password(password)}"')
    print(
        "kassa: the password is shown only now. Paste the table under its tenant's [[tenants]] "
        "in kassa.toml; a running service takes it when it starts again",
        file=sys.stderr,
    )
    return 0


def _credential_file(
    args: argparse.Namespace, suffix: str, key: str, given: str | None, renewed: str
) -> tuple[Path, object]:
    """NAME.suffix in --dir, and the identity (``key``) it is for: ``given``, else the file's
    own on --rotate, else NAME. A new file never overwrites one; --rotate needs one."""
    from engine.http.credentials import CredentialError, read_credential

    name: str = args.name
    if not name or name.startswith(".") or "/" in name or os.sep in name:
        _fail(f"{name!r}: a credential name is a plain file name, like shop-web")
    folder = Path(args.dir)
    if not folder.is_dir():
        _fail(f"--dir: {folder}: no such folder")
    path = folder / f"{name}.{suffix}"
    identity: object = given
    if args.rotate:
        if not path.is_file():
            _fail(f"{path}: no such file to rotate; make it without --rotate")
        try:
            known = read_credential(path)
        except CredentialError as exc:
            _fail(str(exc))
        if identity is None:
            identity = known.get(key)
    elif path.exists():
        _fail(f"{path}: already exists; not overwritten (--rotate gives it a new {renewed})")
    return path, name if identity is None else identity


def _cmd_keys_komtet(args: argparse.Namespace) -> int:
    """A KOMTET shop for the HTTP door as NAME.komtet, owner-only (0600): its shop_id and its
    secret in plain text, since KOMTET's HMAC needs the secret itself. ``--rotate`` gives the
    shop a new secret."""
    from engine.http.credentials import SHOP_ID, new_secret, write_komtet_credential

    path, shop_id = _credential_file(args, "komtet", "shop_id", args.shop_id, "secret")
    if not isinstance(shop_id, str) or not SHOP_ID.match(shop_id):
        _fail(f"--shop-id: {shop_id!r}: use 1 to 64 letters, digits, '_', '.' or '-'")
    secret = new_secret()
    try:
        write_komtet_credential(path, shop_id, secret)
    except OSError as exc:
        _fail(f"{path}: {exc.strerror or exc}")
    print(f"shop_id: {shop_id}")
    print(f"secret: {secret}")
    print(
        f"kassa: wrote {path} (owner-only: it holds the secret itself, which KOMTET's HMAC "
        "needs). List the file in a tenant's http = [...] in kassa.toml; a running service "
        "takes it when it starts again",
        file=sys.stderr,
    )
    return 0


def _http_address(text: str) -> str:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: expected HOST:PORT")
    return text


def _seconds_option(text: str) -> float:
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected positive seconds")
    return value


def _days_option(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected days before the start, 0 or more")
    return value


def _service_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("the service")
    group.add_argument(
        "--server", metavar="ENDPOINT", help="its requests endpoint (default: $KASSA_SERVER)"
    )
    group.add_argument(
        "--server-key",
        metavar="FILE",
        help="its public certificate, NAME.key (default: $KASSA_SERVER_KEY)",
    )
    group.add_argument(
        "--key", metavar="FILE", help="this client's NAME.key_secret (default: $KASSA_KEY)"
    )
    group.add_argument(
        "--timeout",
        type=_seconds_option,
        default=10.0,
        metavar="SECONDS",
        help="how long an answer may take (default 10)",
    )
    return common


def _add_client_commands(commands: Any, receipt_commands: Any) -> None:
    """The parser entries of the client commands (``receipt show`` joins ``receipt``)."""
    common = _service_options()
    progress = argparse.ArgumentParser(add_help=False)
    progress.add_argument(
        "--progress", action="store_true", help="a progress bar on stderr even if not a terminal"
    )

    submit = commands.add_parser(
        "submit",
        parents=[common, progress],
        help="submit receipt files (ATOL v5, KOMTET or Kassa JSON) to the service",
    )
    submit.add_argument(
        "files", nargs="+", metavar="FILE", help="a receipt; the body's external_id, or FILE's stem"
    )
    submit.add_argument(
        "--format",
        choices=("auto", "kassa", "atol", "komtet"),
        default="auto",
        help="the files' format (default auto: told apart per file)",
    )
    submit.add_argument("--operation", help="the ATOL operation (default sell or sell_correction)")
    submit.add_argument("--group", default="main", help="the register group (default main)")
    submit.add_argument(
        "--wait", action="store_true", help="wait until every job is final (fiscalized or failed)"
    )
    submit.add_argument(
        "--wait-timeout",
        type=_seconds_option,
        default=300.0,
        metavar="SECONDS",
        help="give up waiting after this long (default 300)",
    )
    submit.set_defaults(handler=_cmd_submit)

    for name, handler, what in (
        ("status", _cmd_status, "a job's state"),
        ("show", _cmd_receipt_show, "a job's receipt line by line and its fiscal data"),
    ):
        where = receipt_commands if name == "show" else commands
        sub = where.add_parser(name, parents=[common], help=what)
        sub.add_argument("job_id", nargs="?", metavar="ID", help="the job id")
        sub.add_argument("--external-id", help="the job's external_id instead of its id")
        sub.add_argument("--json", action="store_true", help="the answer as JSON, binary as hex")
        sub.set_defaults(handler=handler)

    report = commands.add_parser(
        "report", parents=[common], help="the text report of a period (the tenant's local time)"
    )
    report.add_argument("--from", dest="start", metavar="DATE", required=True)
    report.add_argument("--to", dest="end", metavar="DATE", required=True, help="(inclusive)")
    report.add_argument("--register", help="one register only")
    report.set_defaults(handler=_cmd_report)

    export = commands.add_parser(
        "export", parents=[common, progress], help="export receipts as CSV, JSON lines or FNS"
    )
    export.add_argument("--format", dest="form", choices=("csv", "jsonl", "fns"), required=True)
    export.add_argument("--from", dest="start", metavar="DATE")
    export.add_argument("--to", dest="end", metavar="DATE", help="(inclusive)")
    export.add_argument("-o", "--output", metavar="FILE", help="the file to write (default stdout)")
    export.set_defaults(handler=_cmd_export)

    keys = commands.add_parser(
        "keys", help="make client keys (CURVE certificates) and HTTP credentials"
    )
    keys_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    new = keys_commands.add_parser("new", help="write NAME.key and NAME.key_secret")
    new.add_argument("name", metavar="NAME")
    new.add_argument("--dir", default=".", help="where to write them (default: here)")
    new.set_defaults(handler=_cmd_keys_new)
    atol = keys_commands.add_parser(
        "atol",
        help="write NAME.atol: an ATOL v5 login of the HTTP door and a new password, printed once",
    )
    atol.add_argument("name", metavar="NAME")
    atol.add_argument("--login", help="the login clients send (default: NAME, or the file's)")
    atol.add_argument("--dir", default=".", help="where to write it (default: here)")
    atol.add_argument(
        "--rotate", action="store_true", help="NAME.atol exists: give it a new password"
    )
    atol.set_defaults(handler=_cmd_keys_atol)
    komtet = keys_commands.add_parser(
        "komtet",
        help="write NAME.komtet: a KOMTET v2 shop of the HTTP door and a new secret, printed once",
    )
    komtet.add_argument("name", metavar="NAME")
    komtet.add_argument("--shop-id", help="the shop id clients send (default: NAME, or the file's)")
    komtet.add_argument("--dir", default=".", help="where to write it (default: here)")
    komtet.add_argument(
        "--rotate", action="store_true", help="NAME.komtet exists: give it a new secret"
    )
    komtet.set_defaults(handler=_cmd_keys_komtet)
    cabinet = keys_commands.add_parser(
        "cabinet",
        help="print a [[tenants.users]] table: a cabinet login, its role and a new password's "
        "hash; the password is printed once",
    )
    cabinet.add_argument("name", metavar="NAME", help="the login")
    cabinet.add_argument(
        "--role", required=True, choices=("owner", "accountant", "cashier"), help="what it may do"
    )
    cabinet.set_defaults(handler=_cmd_keys_cabinet)


def _receipt_show_argv(argv: Sequence[str] | None) -> list[str]:
    """``kassa receipt ID`` means ``kassa receipt show ID``: the service's receipt of a job."""
    given = list(sys.argv[1:] if argv is None else argv)
    if len(given) > 1 and given[0] == "receipt" and given[1] not in _RECEIPT_ACTIONS:
        given.insert(1, "show")
    return given


_RECEIPT_ACTIONS = frozenset({"check", "tlv", "show", "-h", "--help"})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kassa", description="Kassa: a cloud cash register engine for 54-FZ."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    tlv = commands.add_parser("tlv", help="decode and encode FFD TLV fiscal documents")
    tlv_commands = tlv.add_subparsers(dest="tlv_command", required=True, metavar="ACTION")
    dec = tlv_commands.add_parser("decode", help="TLV (raw or hex) -> JSON")
    dec.add_argument("file", nargs="?", help="input file; stdin when absent or '-'")
    dec.add_argument("--view", choices=("tags", "fns"), default="tags", help="JSON keys")
    dec.add_argument(
        "--form",
        choices=("auto", "hex", "raw"),
        default="auto",
        help="input form (auto: hex text if it is only hex digits and spaces)",
    )
    dec.set_defaults(handler=_cmd_tlv_decode)
    enc = tlv_commands.add_parser("encode", help="JSON (tags view) -> TLV hex")
    enc.add_argument("file", nargs="?", help="input file; stdin when absent or '-'")
    enc.set_defaults(handler=_cmd_tlv_encode)

    ofd = commands.add_parser("ofd", help="decode KKT <-> OFD messages")
    ofd_commands = ofd.add_subparsers(dest="ofd_command", required=True, metavar="ACTION")
    ofd_dec = ofd_commands.add_parser(
        "decode", help="session header and/or container (raw or hex) -> JSON"
    )
    ofd_dec.add_argument("file", nargs="?", help="input file; stdin when absent or '-'")
    ofd_dec.add_argument("--view", choices=("tags", "fns"), default="tags", help="document keys")
    ofd_dec.add_argument("--form", choices=("auto", "hex", "raw"), default="auto")
    ofd_dec.set_defaults(handler=_cmd_ofd_decode)

    receipt = commands.add_parser(
        "receipt",
        help="check receipt files, make their TLV, show a job's receipt",
        description="Check a receipt file or make its FFD TLV, here and offline; or show a "
        "job's receipt as the service fiscalized it ('kassa receipt ID' is 'kassa receipt "
        "show ID').",
    )
    receipt_commands = receipt.add_subparsers(
        dest="receipt_command", required=True, metavar="ACTION"
    )
    check = receipt_commands.add_parser(
        "check", help="print every problem as a JSON line; exit 1 if there are any"
    )
    make_tlv = receipt_commands.add_parser("tlv", help="the receipt's FFD TLV as hex")
    make_tlv.add_argument("--ffd", choices=("1.2", "1.05"), default="1.2", help="FFD version")
    for sub, handler in ((check, _cmd_receipt_check), (make_tlv, _cmd_receipt_tlv)):
        sub.add_argument("file", nargs="?", help="receipt JSON; stdin when absent or '-'")
        sub.add_argument(
            "--format",
            choices=("auto", "kassa", "atol", "komtet"),
            default="auto",
            help="Kassa JSON, an ATOL Online v5 body or a KOMTET v2 task (auto: detected)",
        )
        sub.add_argument(
            "--operation",
            help="the ATOL operation (sell, sell_refund, …, buy_refund_correction); "
            "default sell, or sell_correction for a correction body",
        )
        sub.add_argument(
            "--tolerance",
            type=int,
            default=0,
            help="kopecks allowed between sum and price × quantity (Kassa JSON)",
        )
        sub.add_argument(
            "--register",
            action="append",
            metavar="PROTOCOL[:TAX_TABLE]",
            help="check against a register group of these (repeat for several), e.g. "
            "shtrih:legacy; default: shtrih:2026 and atol:2026",
        )
        sub.set_defaults(handler=handler)

    demo = commands.add_parser("demo", help="run the main job on the embedded defaults")
    demo.set_defaults(handler=_cmd_demo)

    emulator = commands.add_parser("emulator", help="run the register emulator")
    emulator_commands = emulator.add_subparsers(
        dest="emulator_command", required=True, metavar="ACTION"
    )
    serve = emulator_commands.add_parser(
        "serve", help="serve N registers on ports P…P+N-1 of 127.0.0.1 until interrupted"
    )
    serve.add_argument("--protocol", choices=("shtrih", "atol"), required=True)
    serve.add_argument("--registers", type=int, default=1, help="how many registers (N)")
    serve.add_argument("--port", type=int, required=True, help="the first port (P); 0: any")
    serve.add_argument(
        "--model",
        help="timing model: shtrih-m-online (default) or shtrih-m-01f; atol-42fa (default) "
        "or atol-30f",
    )
    serve.add_argument("--line", choices=("tcp", "serial"), default="tcp")
    serve.add_argument(
        "--tax-table",
        help="the registers' firmware tax table: 2026 (default; all twelve 1199 rates), "
        "legacy (the six rates before 2025); shtrih also nano-2026, atol also 2025",
    )
    serve.add_argument("--seed", type=int, default=0, help="makes a run reproducible")
    serve.add_argument(
        "--faults",
        help="faults to inject, e.g. 'drop:0.001,power-after:0.01,ofd-down@1h+6h' "
        "(the language is in emulator/faults.py); each is logged on stderr with its time",
    )
    serve.add_argument(
        "--fn-age",
        type=_days_option,
        default=0,
        metavar="DAYS",
        help="each ФН was registered DAYS before the start (default 0): its keys end sooner, "
        "and unless --fn-sent its registration report waits for the OFD since then",
    )
    serve.add_argument(
        "--fn-months",
        type=int,
        choices=(15, 36),
        default=15,
        help="срок действия ключей ФН from registration, months (default 15)",
    )
    serve.add_argument(
        "--fn-sent", action="store_true", help="the registration report reached the OFD"
    )
    serve.set_defaults(handler=_cmd_emulator_serve)

    kassa_serve = commands.add_parser(
        "serve",
        help="serve the engine on ZeroMQ (docs/protocol.md) and HTTP (ATOL v5) until interrupted",
    )
    source = kassa_serve.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="kassa.toml: the service, tenants, keys and registers")
    source.add_argument(
        "--demo",
        action="store_true",
        help="no config: 2 emulated Shtrih-M registers (group main) and 2 ATOL (group atol), "
        "a temporary journal, fresh keys and an ATOL password, printed",
    )
    kassa_serve.add_argument(
        "--listen", help="the requests endpoint (default: the config's, or tcp://127.0.0.1:5555)"
    )
    kassa_serve.add_argument(
        "--http-listen",
        type=_http_address,
        metavar="HOST:PORT",
        help="the HTTP door's address (default: the config's [http], or 127.0.0.1:8080); "
        "port 0 takes a free one",
    )
    kassa_serve.add_argument(
        "--smtp",
        type=_http_address,
        metavar="HOST:PORT",
        help="with --demo: send the buyers' receipt e-mails (1008) through this SMTP server, "
        "plain and without a login (a local mail catcher)",
    )
    kassa_serve.set_defaults(handler=_cmd_serve)

    _add_client_commands(commands, receipt_commands)

    journal = commands.add_parser(
        "journal",
        help="check a journal, adopt a used ФН, migrate or copy a journal to PostgreSQL",
    )
    journal_commands = journal.add_subparsers(
        dest="journal_command", required=True, metavar="ACTION"
    )
    journal_check = journal_commands.add_parser(
        "check", help="the full integrity check of a journal (a start runs the quick one)"
    )
    journal_check.add_argument(
        "journal", metavar="JOURNAL", help="the journal file, or its postgresql:// URL"
    )
    journal_check.set_defaults(handler=_cmd_journal_check)
    journal_adopt = journal_commands.add_parser(
        "adopt",
        help="let the journal start over on a ФН whose receipts it does not know "
        "(their external_ids are then not recognised)",
    )
    journal_adopt.add_argument(
        "journal", metavar="JOURNAL", help="the journal file, or its postgresql:// URL"
    )
    journal_adopt.add_argument(
        "--fn", required=True, help="the ФН's number (1041), as the engine said"
    )
    journal_adopt.add_argument(
        "--last-fd", type=int, required=True, help="its last FD, as the engine said"
    )
    journal_adopt.set_defaults(handler=_cmd_journal_adopt)
    journal_migrate = journal_commands.add_parser(
        "migrate", help="make or upgrade the schema of a PostgreSQL journal"
    )
    journal_migrate.add_argument("url", metavar="URL", help="postgresql://USER@HOST/DATABASE")
    journal_migrate.set_defaults(handler=_cmd_journal_migrate)
    journal_copy = journal_commands.add_parser(
        "copy",
        help="move an SQLite journal into a new PostgreSQL journal (every row, bytes as kept)",
    )
    journal_copy.add_argument("sqlite", metavar="SQLITE_FILE", help="the SQLite journal")
    journal_copy.add_argument("url", metavar="POSTGRES_URL", help="the new journal's URL")
    journal_copy.set_defaults(handler=_cmd_journal_copy)

    bench = commands.add_parser("bench", help="run a benchmark from benchmarks/")
    bench.add_argument("name", help=f"one of: all, {', '.join(BENCHMARKS)}")
    bench.add_argument("rest", nargs=argparse.REMAINDER, help="options for the benchmark")
    bench.set_defaults(handler=_cmd_bench)

    fuzz = commands.add_parser(
        "fuzz", help="coverage-guided fuzzing of a decoder, state machine or front door (fuzz/)"
    )
    fuzz.add_argument("target", nargs="?", help="a target of kassa fuzz --list")
    fuzz.add_argument("--list", action="store_true", help="list the targets")
    fuzz.add_argument("--time", type=float, metavar="SECONDS", help="stop after this long")
    fuzz.add_argument("--runs", type=int, metavar="N", help="stop after N executions")
    fuzz.add_argument("--jobs", type=int, default=1, metavar="N", help="processes (default 1)")
    fuzz.add_argument(
        "--corpus", default=".fuzz", metavar="DIR", help="DIR/corpus and DIR/findings (.fuzz)"
    )
    fuzz.add_argument("--json", action="store_true", help="end with one JSON line")
    fuzz.add_argument("--replay", metavar="FILE", help="re-run one input (a finding)")
    fuzz.set_defaults(handler=_cmd_fuzz)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(_receipt_show_argv(argv))
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except (BadInput, ProtocolError) as exc:
        print(f"kassa: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _reader_gone()
    except BaseExceptionGroup as group:  # a trio run wraps what its tasks raise
        if group.split(BrokenPipeError)[1] is not None:
            raise
        return _reader_gone()


def _reader_gone() -> int:
    """The reader of stdout went away (``kassa demo | head``): stop quietly, as Unix tools do,
    and keep Python from writing to the closed pipe once more at exit."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_PIPE


if __name__ == "__main__":
    raise SystemExit(main())
