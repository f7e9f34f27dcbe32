"""The ``kassa`` command: one thin dispatcher where the rooms of the house meet.

Bad input ends with exit status 2 and one line on stderr that says what and where; a
traceback is a bug. ``demo`` and ``bench`` import what they run inside their own functions.
"""

from __future__ import annotations

import argparse
import importlib
import json
import string
import sys
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

from protocols.documents.model import Receipt
from protocols.errors import ProtocolError
from protocols.tlv import decode, dumps, encode, from_tags_json, loads, to_fns_json, to_tags_json

EXIT_BAD_INPUT = 2

#: ``kassa bench NAME`` → the module in ``benchmarks/`` whose ``main(argv)`` runs it.
BENCHMARKS: dict[str, str] = {
    "tlv": "benchmarks.tlv_codec",
    "fn": "benchmarks.fn_codec",
    "ofd": "benchmarks.ofd_codec",
    "shtrih": "benchmarks.shtrih_codec",
    "atol": "benchmarks.atol_codec",
    "emulator": "benchmarks.emulator_capacity",
}


class BadInput(Exception):
    """Input the command cannot use; printed as one line, exit status 2."""


def _fail(message: str) -> NoReturn:
    raise BadInput(message)


def _read_input(path: str | None) -> bytes:
    if path is None or path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        _fail(f"{path}: {exc.strerror or exc}")


_HEX_TEXT = frozenset((string.hexdigits + string.whitespace).encode("ascii"))


def _as_binary(data: bytes, form: str) -> bytes:
    """Raw bytes as given, or hex text (whitespace allowed) turned into bytes."""
    if form == "auto":
        form = "hex" if data.strip() and _HEX_TEXT.issuperset(data) else "raw"
    if form == "raw":
        return data
    text = data.decode("ascii", errors="replace")
    try:
        return bytes.fromhex("".join(text.split()))
    except ValueError:
        _fail("input is not hex text: expected pairs of hex digits")


def _cmd_tlv_decode(args: argparse.Namespace) -> int:
    decoded = decode(_as_binary(_read_input(args.file), args.form))
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

    data = _as_binary(_read_input(args.file), args.form)
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
    """The receipt in FILE and every problem of it (format and checks), as JSON-ready dicts."""
    from protocols.ingress import (
        check_atol_v5,
        check_komtet_task,
        load_json,
        parse_atol_v5,
        parse_komtet_task,
    )
    from protocols.validation import Limits, validate

    body = load_json(_read_input(args.file))
    form = _detect_format(body) if args.format == "auto" else args.format
    if form == "atol":
        operation = args.operation or ("sell_correction" if "correction" in body else "sell")
        atol = check_atol_v5(operation, body)
        problems = [
            {"path": p.path, "code": p.kassa_code, "message": p.message, "atol_code": p.code}
            | ({"driver_code": p.driver_code} if p.driver_code is not None else {})
            for p in atol
        ]
        return (None if problems else parse_atol_v5(operation, body).receipt), problems
    if form == "komtet":
        komtet = check_komtet_task(body)
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
    found = validate(receipt, limits=Limits(sum_tolerance=args.tolerance))
    return receipt, [{"path": p.path, "code": p.code, "message": p.message} for p in found]


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
    import signal

    import trio

    from emulator.serve import FleetError, serve_fleet

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
        failed, _ = group.split(FleetError)
        if failed is None:
            raise
        _fail(str(failed.exceptions[0]))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    names = list(BENCHMARKS) if args.name == "all" else [args.name]
    status = 0
    for name in names:
        module_name = BENCHMARKS.get(name)
        if module_name is None:
            _fail(f"unknown benchmark {name!r}; choose from: all, {', '.join(BENCHMARKS)}")
        module = importlib.import_module(module_name)
        main: Callable[[list[str]], int] = module.main
        status |= main(list(args.rest))
    return status


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

    receipt = commands.add_parser("receipt", help="check receipts and make their TLV")
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
    serve.add_argument("--seed", type=int, default=0, help="makes a run reproducible")
    serve.add_argument(
        "--faults",
        help="faults to inject, e.g. 'drop:0.001,power-after:0.01,ofd-down@1h+6h' "
        "(the language is in emulator/faults.py); each is logged on stderr with its time",
    )
    serve.set_defaults(handler=_cmd_emulator_serve)

    bench = commands.add_parser("bench", help="run a benchmark from benchmarks/")
    bench.add_argument("name", help=f"one of: all, {', '.join(BENCHMARKS)}")
    bench.add_argument("rest", nargs=argparse.REMAINDER, help="options for the benchmark")
    bench.set_defaults(handler=_cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except (BadInput, ProtocolError) as exc:
        print(f"kassa: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
