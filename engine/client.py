"""The client side of Kassa's ZeroMQ protocol (docs/protocol.md): blocking, and under trio.

::

    keys = ClientKeys.load("server.key", "shop.key_secret")
    with KassaClient("tcp://kassa.example:5555", keys) as kassa:
        job = kassa.submit("order-1", receipt).job

    async with TrioKassaClient.open("tcp://kassa.example:5555", keys) as kassa:
        job = (await kassa.submit("order-1", receipt)).job

Every request carries an id unique within its client, and answers are matched by that id, so
an answer that comes after its request timed out is dropped, never taken for another's. The
blocking client also closes its ``DEALER`` (linger 0) and opens a new one after a timeout: a
lost answer then cannot even arrive on the socket the next request waits on.

A socket monitor watches the CURVE handshake, so that a request that gets no answer says why:
the service refused this client's key (reported at once, ``refused``), the handshake failed
(a wrong server key) or nothing listens (``unreachable``, after the timeout, nothing was
delivered), or the service was connected but silent (``timeout``: the request may have
arrived). Errors of the service and of the link are one type, :class:`KassaError`.

Sizes are checked before sending (:mod:`engine.limits`): a receipt or a request larger than
any Kassa service may take is ``too_large`` at once, and a batch goes in as many requests as
the default request limit needs. A ``too_large`` from the service is never retried.

Retries are safe where the protocol makes them so: a repeated ``submit`` of an ``external_id``
answers the first job (the service dedupes), and reads change nothing. Those retry on
``timeout`` and on ``busy`` / ``rate_limited`` / ``unavailable`` with a ``retry_after`` (the
service's journal cannot commit now: nothing was journaled) after ``retry_after``, a bounded
number of times. ``cancel`` and ``shift`` do not: a retried cancel whose first answer was lost would
report ``not_cancellable`` for a job it did cancel.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from decimal import Decimal
from os import PathLike
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, Self, TypeAlias, TypeVar

import attrs
import msgpack  # type: ignore[import-untyped]
import trio
import zmq
import zmq.auth
from zmq.utils.monitor import parse_monitor_message

from engine.limits import MAX_RECEIPT_BYTES, MAX_REQUEST_BYTES, REQUEST_BYTES, over_limit
from protocols.documents.json_format import receipt_to_json
from protocols.documents.model import Receipt
from protocols.ingress import dump_json
from transports.zmq_pump import Pump

__all__ = [
    "FINAL_STATES",
    "FORMATS",
    "BatchEntry",
    "ClientKeys",
    "Fiscal",
    "JobEvent",
    "JobInfo",
    "JobPage",
    "KassaClient",
    "KassaError",
    "Pong",
    "ReceiptInfo",
    "ReceiptLine",
    "RegisterInfo",
    "Report",
    "Submitted",
    "TrioKassaClient",
    "receipt_argument",
    "subscribe",
]

VERSION = 1
FORMATS = ("kassa", "atol_v5", "komtet")
#: States after which a job changes no more.
FINAL_STATES = frozenset({"fiscalized", "failed", "resolved"})
#: Errors after which the same request may simply be sent again (``unavailable`` only with a
#: ``retry_after``: the journal's outage; a register that is not connected has none).
RETRY_CODES = frozenset({"busy", "rate_limited", "unavailable"})
#: Codes the client itself gives (the service's are in docs/protocol.md).
TIMEOUT, UNREACHABLE, REFUSED, BAD_ANSWER = "timeout", "unreachable", "refused", "bad_answer"
#: The service's code, and the client's own for what no service would take.
TOO_LARGE = "too_large"
#: The most jobs in one submit_batch request (docs/protocol.md).
MAX_BATCH = 1_000
#: The longest a retry sleeps, whatever ``retry_after`` says.
MAX_RETRY_SLEEP = 30.0
#: Chunks of one stream buffered for a slow reader before the trio client stops reading.
STREAM_BUFFER = 256

_log = logging.getLogger(__name__)
T = TypeVar("T")
Body: TypeAlias = Mapping[str, Any]
StrPath: TypeAlias = str | PathLike[str]


class KassaError(Exception):
    """An error answer of the service, or of the link to it (``timeout``, ``unreachable``…).

    ``path`` names the argument or receipt field at fault, or is ``""``; a ``validation``
    error lists every problem in ``problems``; ``busy``, ``rate_limited`` and an
    ``unavailable`` journal carry ``retry_after`` seconds; ``too_large`` carries the ``limit``
    and the ``size`` in bytes.
    """

    def __init__(
        self,
        code: str,
        message: str,
        path: str = "",
        problems: Sequence[Mapping[str, str]] = (),
        retry_after: float | None = None,
        *,
        limit: int | None = None,
        size: int | None = None,
    ) -> None:
        super().__init__(f"{code}: {path}: {message}" if path else f"{code}: {message}")
        self.code = code
        self.message = message
        self.path = path
        self.problems = tuple(problems)
        self.retry_after = retry_after
        self.limit = limit
        self.size = size

    @classmethod
    def from_wire(cls, error: Any) -> KassaError:
        """The ``error`` map of an answer; a malformed one is a ``bad_answer``."""
        if not isinstance(error, Mapping):
            return cls(BAD_ANSWER, "an error answer without an error map")
        code, message, path = error.get("code"), error.get("message"), error.get("path")
        raw_problems = error.get("problems") or ()
        problems = [
            {k: str(v) for k, v in p.items() if isinstance(k, str)}
            for p in raw_problems
            if isinstance(p, Mapping)
        ]
        retry_after = error.get("retry_after")
        limit, size = error.get("limit"), error.get("size")
        return cls(
            code if isinstance(code, str) else BAD_ANSWER,
            message if isinstance(message, str) else "",
            path if isinstance(path, str) else "",
            problems,
            float(retry_after)
            if isinstance(retry_after, int | float) and not isinstance(retry_after, bool)
            else None,
            limit=limit if type(limit) is int else None,
            size=size if type(size) is int else None,
        )

    def renumbered(self, sent: int, index: int) -> KassaError:
        """This error of entry ``jobs[sent]`` of a request, as entry ``jobs[index]``."""
        old, new = f"jobs[{sent}]", f"jobs[{index}]"

        def fix(path: str) -> str:
            return new + path[len(old) :] if path.startswith(old) else path

        problems = [{k: fix(v) if k == "path" else v for k, v in p.items()} for p in self.problems]
        return KassaError(
            self.code,
            self.message,
            fix(self.path),
            problems,
            self.retry_after,
            limit=self.limit,
            size=self.size,
        )


def _too_large(what: str, size: int, limit: int, path: str = "") -> KassaError:
    """What the client refuses to send: more than any Kassa service takes."""
    message = over_limit(what, size, limit, "any Kassa service's")
    return KassaError(TOO_LARGE, message, path, limit=limit, size=size)


# --- keys ---------------------------------------------------------------------------------------


@attrs.frozen
class ClientKeys:
    """The service's public key and this client's key pair, Z85 text (40 bytes each)."""

    server_public: bytes = attrs.field(repr=False)
    public: bytes
    secret: bytes = attrs.field(repr=False)

    @classmethod
    def load(cls, server_key_path: StrPath, client_key_path: StrPath) -> ClientKeys:
        """From ZeroMQ certificate files: the service's ``.key``, the client's ``.key_secret``.

        Raises ValueError naming the file and what is wrong with it.
        """
        server_public, _ = _certificate(server_key_path)
        public, secret = _certificate(client_key_path)
        if secret is None:
            raise ValueError(
                f"{client_key_path}: holds no secret key: give the client's .key_secret file"
            )
        return cls(server_public, public, secret)

    @classmethod
    def new(cls, server_public: bytes) -> ClientKeys:
        """A fresh client key pair for the service with this public key (tests, tools)."""
        public, secret = zmq.curve_keypair()
        return cls(server_public, public, secret)


def _certificate(path: StrPath) -> tuple[bytes, bytes | None]:
    if not Path(path).is_file():
        raise ValueError(f"{path}: no such file")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a ZeroMQ certificate: {exc}") from None
    for key in (public, secret):
        if key is not None and len(key) != 40:
            raise ValueError(f"{path}: a Z85 key has 40 characters, got {len(key)}")
    return public, secret


# --- values -------------------------------------------------------------------------------------


class _Read:
    """Typed getters over one answer map; a mistyped field is a ``bad_answer`` with its path."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, Mapping):
            raise KassaError(BAD_ANSWER, "expected a map", path)
        self.data = data
        self.path = path

    def get(self, key: str, kind: type | tuple[type, ...], *, optional: bool = False) -> Any:
        value = self.data.get(key)
        if value is None and optional:
            return None
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            value = None  # True is not 1 here either
        if not isinstance(value, kind):
            what = "missing" if value is None else f"unexpected {type(value).__name__}"
            raise KassaError(BAD_ANSWER, what, f"{self.path}.{key}".lstrip("."))
        return value

    def number(self, key: str) -> float:
        return float(self.get(key, (int, float)))


@attrs.frozen
class JobInfo:
    """A job as the service reports it (``state``: accepted … fiscalized, failed, resolved)."""

    id: str
    external_id: str
    state: str
    error: str | None
    register: str | None
    created: float
    updated: float
    time_zone: str | None = None  # the tenant's, in which people read the times

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    @classmethod
    def from_wire(cls, value: Any, path: str = "job") -> JobInfo:
        r = _Read(value, path)
        return cls(
            id=r.get("id", str),
            external_id=r.get("external_id", str),
            state=r.get("state", str),
            error=r.get("error", str, optional=True),
            register=r.get("register", str, optional=True),
            created=r.number("created"),
            updated=r.number("updated"),
            time_zone=r.get("time_zone", str, optional=True),
        )


@attrs.frozen
class Fiscal:
    """What the ФН (fiscal storage) signed: FD number (1040), fiscal sign (1077), the QR."""

    fd_number: int
    fn_number: str
    fiscal_sign: bytes
    printed_sign: int
    qr: str
    fiscalized_at: float
    document: bytes = attrs.field(repr=False)  # the TLV as the ФН signed it

    @classmethod
    def from_wire(cls, value: Any, path: str = "fiscal") -> Fiscal | None:
        if value is None:
            return None
        r = _Read(value, path)
        return cls(
            fd_number=r.get("fd_number", int),
            fn_number=r.get("fn_number", str),
            fiscal_sign=r.get("fiscal_sign", bytes),
            printed_sign=r.get("printed_sign", int),
            qr=r.get("qr", str),
            fiscalized_at=r.number("fiscalized_at"),
            document=r.get("document", bytes),
        )


@attrs.frozen
class Submitted:
    """The answer to a submit: the job, and whether it was an earlier submit's (deduped)."""

    job: JobInfo
    duplicate: bool

    @classmethod
    def from_wire(cls, value: Any, path: str = "") -> Submitted:
        r = _Read(value, path)
        job_path = f"{path}.job".lstrip(".")
        return cls(JobInfo.from_wire(r.get("job", Mapping), job_path), r.get("duplicate", bool))


@attrs.frozen
class ReceiptLine:
    """One item of a receipt as printed (1059 предмет расчёта)."""

    n: int
    name: str
    quantity: Decimal
    price: int
    sum: int
    vat: int
    payment_method: int
    payment_subject: int
    marking: str | None

    @classmethod
    def from_wire(cls, value: Any, path: str) -> ReceiptLine:
        r = _Read(value, path)
        quantity = r.get("quantity", str)
        try:
            exact = Decimal(quantity)
        except ArithmeticError:
            raise KassaError(BAD_ANSWER, "not a decimal", f"{path}.quantity") from None
        return cls(
            n=r.get("n", int),
            name=r.get("name", str),
            quantity=exact,
            price=r.get("price", int),
            sum=r.get("sum", int),
            vat=r.get("vat", int),
            payment_method=r.get("payment_method", int),
            payment_subject=r.get("payment_subject", int),
            marking=r.get("marking", str, optional=True),
        )


@attrs.frozen
class ReceiptInfo:
    """A job's receipt: fiscal data and lines once signed (None and empty before)."""

    job: JobInfo
    fiscal: Fiscal | None
    lines: tuple[ReceiptLine, ...]
    text: str
    raw: Mapping[str, Any] = attrs.field(eq=False, repr=False)  # the result map as it came

    @classmethod
    def from_wire(cls, value: Any) -> ReceiptInfo:
        r = _Read(value, "")
        lines = r.get("lines", list)
        return cls(
            job=JobInfo.from_wire(r.get("job", Mapping)),
            fiscal=Fiscal.from_wire(r.data.get("fiscal")),
            lines=tuple(ReceiptLine.from_wire(line, f"lines[{i}]") for i, line in enumerate(lines)),
            text=r.get("text", str),
            raw=r.data,
        )


@attrs.frozen
class JobPage:
    """One page of ``list_jobs``; ``next`` is the ``after`` of the next page, None at the end."""

    jobs: tuple[JobInfo, ...]
    next: str | None


@attrs.frozen
class Report:
    text: str
    report: Mapping[str, Any]


@attrs.frozen
class RegisterInfo:
    id: str
    group: str
    protocol: str
    state: str
    fn_number: str | None
    #: срок действия ФН (ISO date) and days left on the register's clock; None when unknown.
    fn_expires: str | None = None
    fn_days_left: int | None = None
    #: Documents not yet sent to the OFD, and the oldest one's time (register clock, ISO) and
    #: age in days; None when unknown. The ФН blocks at 30 days (registers.md §4.4).
    ofd_unsent: int | None = None
    ofd_oldest: str | None = None
    ofd_oldest_days: float | None = None


@attrs.frozen
class Pong:
    time: float  # the service's clock, Unix seconds
    tenant: str  # the tenant this client's key belongs to
    time_zone: str | None = None  # the tenant's: its registers' local time
    degraded: str | None = None  # why the service takes no submits now (its journal), or None


@attrs.frozen
class JobEvent:
    """One state change of a job, from the tenant's events socket."""

    job: JobInfo
    fiscal: Fiscal | None


def _submitted_or_error(value: Any, path: str) -> Submitted | KassaError:
    r = _Read(value, path)
    if "error" in r.data:
        return KassaError.from_wire(r.data["error"])
    return Submitted.from_wire(value, path)


def _job_page(value: Any) -> JobPage:
    r = _Read(value, "")
    jobs = r.get("jobs", list)
    return JobPage(
        tuple(JobInfo.from_wire(j, f"jobs[{i}]") for i, j in enumerate(jobs)),
        r.get("next", str, optional=True),
    )


def _registers(value: Any) -> list[RegisterInfo]:
    out = []
    for i, item in enumerate(_Read(value, "").get("registers", list)):
        r = _Read(item, f"registers[{i}]")
        out.append(
            RegisterInfo(
                r.get("id", str),
                r.get("group", str),
                r.get("protocol", str),
                r.get("state", str),
                r.get("fn_number", str, optional=True),
                r.get("fn_expires", str, optional=True),
                r.get("fn_days_left", int, optional=True),
                r.get("ofd_unsent", int, optional=True),
                r.get("ofd_oldest", str, optional=True),
                _days(r.get("ofd_oldest_days", (int, float), optional=True)),
            )
        )
    return out


def _days(value: float | None) -> float | None:
    return None if value is None else float(value)


# --- requests -----------------------------------------------------------------------------------


def _exact(value: Any) -> Any:
    """A body with every Decimal as its decimal string: msgpack has no decimal type."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {k: _exact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_exact(v) for v in value]
    return value


def _numbers(value: Any) -> tuple[bool, bool]:
    """Whether a body holds a Decimal, and whether it holds a binary float, anywhere."""
    decimal = floating = False
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Decimal):
            decimal = True
        elif isinstance(item, float):
            floating = True
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return decimal, floating


def receipt_argument(
    receipt: Receipt | Body, format: str = "kassa", operation: str | None = None
) -> dict[str, Any]:
    """The ``receipt`` argument of a submit: ``{"format", "body"[, "operation"]}``.

    A :class:`Receipt` goes as Kassa JSON. Kassa JSON carries quantities as decimal strings,
    so a Decimal becomes its string. ATOL and KOMTET bodies carry roubles as JSON numbers, and
    msgpack has no exact decimal: a body holding Decimals (as ``load_json`` reads them) goes as
    its JSON text, which the service reads back exactly. A binary float is never turned into a
    decimal here: such a body goes as it is, and the service refuses the float with its path.
    """
    if format not in FORMATS:
        raise ValueError(f"format: expected one of {', '.join(FORMATS)}, got {format!r}")
    if operation is not None and format != "atol_v5":
        raise ValueError("operation: only an atol_v5 receipt has an operation")
    body: Any
    if isinstance(receipt, Receipt):
        if format != "kassa":
            raise ValueError("a Receipt model is sent as Kassa JSON: format must be 'kassa'")
        body = _exact(receipt_to_json(receipt))
    elif format == "kassa":
        body = _exact(receipt)
    else:
        decimal, floating = _numbers(receipt)
        body = dump_json(dict(receipt), indent=0) if decimal and not floating else dict(receipt)
    out: dict[str, Any] = {"format": format, "body": body}
    if operation is not None:
        out["operation"] = operation
    return out


def _job_entry(
    external_id: str,
    receipt: Receipt | Body,
    format: str = "kassa",
    group: str = "main",
    operation: str | None = None,
) -> dict[str, Any]:
    return {
        "external_id": external_id,
        "receipt": receipt_argument(receipt, format, operation),
        "group": group,
    }


@attrs.frozen
class BatchEntry:
    """One entry of a batch submit."""

    external_id: str
    receipt: Receipt | Body = attrs.field(repr=False)
    format: str = "kassa"
    group: str = "main"
    operation: str | None = None


@attrs.frozen
class _Call(Generic[T]):
    """One operation: what to send, how to read its result, whether a retry is safe."""

    op: str
    args: Mapping[str, Any]
    parse: Callable[[Any], T]
    retry: bool = False


def _job_ref(job_id: str | None, external_id: str | None) -> dict[str, str]:
    if (job_id is None) == (external_id is None):
        raise ValueError("give either job_id or external_id")
    return {"job_id": job_id} if job_id is not None else {"external_id": str(external_id)}


class _Calls:
    """The operations of docs/protocol.md, shared by the blocking and the trio client."""

    @staticmethod
    def ping() -> _Call[Pong]:
        def parse(v: Any) -> Pong:
            r = _Read(v, "")
            health = _Read(r.get("health", Mapping, optional=True) or {}, "health")
            degraded = None
            if health.get("state", str, optional=True) == "degraded":
                degraded = health.get("cause", str, optional=True) or "degraded"
            return Pong(
                r.number("time"),
                r.get("tenant", str),
                r.get("time_zone", str, optional=True),
                degraded,
            )

        return _Call("ping", {}, parse, retry=True)

    @staticmethod
    def submit(entry: dict[str, Any]) -> _Call[Submitted]:
        return _Call("submit", entry, Submitted.from_wire, retry=True)

    @staticmethod
    def submit_batch(entries: list[dict[str, Any]]) -> _Call[list[Submitted | KassaError]]:
        def parse(v: Any) -> list[Submitted | KassaError]:
            results = _Read(v, "").get("results", list)
            if len(results) != len(entries):
                raise KassaError(BAD_ANSWER, f"{len(results)} results for {len(entries)} jobs")
            return [_submitted_or_error(x, f"results[{i}]") for i, x in enumerate(results)]

        return _Call("submit_batch", {"jobs": entries}, parse, retry=True)

    @staticmethod
    def status(job_id: str | None, external_id: str | None) -> _Call[JobInfo]:
        def parse(v: Any) -> JobInfo:
            return JobInfo.from_wire(_Read(v, "").get("job", Mapping))

        return _Call("status", _job_ref(job_id, external_id), parse, retry=True)

    @staticmethod
    def receipt(job_id: str | None, external_id: str | None) -> _Call[ReceiptInfo]:
        return _Call("receipt", _job_ref(job_id, external_id), ReceiptInfo.from_wire, retry=True)

    @staticmethod
    def list_jobs(after: str, limit: int) -> _Call[JobPage]:
        return _Call("list_jobs", {"after": after, "limit": limit}, _job_page, retry=True)

    @staticmethod
    def report(start: float, end: float, register: str | None) -> _Call[Report]:
        def parse(v: Any) -> Report:
            r = _Read(v, "")
            return Report(r.get("text", str), r.get("report", Mapping))

        args: dict[str, Any] = {"start": float(start), "end": float(end)}
        if register is not None:
            args["register"] = register
        return _Call("report", args, parse, retry=True)

    @staticmethod
    def export(form: str, start: float | None, end: float | None) -> dict[str, Any]:
        args: dict[str, Any] = {"form": form}
        for key, value in (("start", start), ("end", end)):
            if value is not None:
                args[key] = float(value)
        return args

    @staticmethod
    def cancel(job_id: str) -> _Call[JobInfo]:
        def parse(v: Any) -> JobInfo:
            return JobInfo.from_wire(_Read(v, "").get("job", Mapping))

        return _Call("cancel", {"job_id": job_id}, parse)

    @staticmethod
    def registers() -> _Call[list[RegisterInfo]]:
        return _Call("registers", {}, _registers, retry=True)

    @staticmethod
    def shift(register: str, action: str) -> _Call[bool]:
        def parse(v: Any) -> bool:
            changed: bool = _Read(v, "").get("changed", bool)
            return changed

        return _Call("shift", {"register": register, "action": action}, parse)

    @staticmethod
    def events() -> _Call[str]:
        def parse(v: Any) -> str:
            endpoint: str = _Read(v, "").get("endpoint", str)
            return endpoint

        return _Call("events", {}, parse, retry=True)


def _retryable(error: KassaError) -> bool:
    """Whether the service said to send the same again later (busy, over the rate, its
    journal down); ``unavailable`` without ``retry_after`` (a register away) is not."""
    if error.code == "unavailable":
        return error.retry_after is not None
    return error.code in RETRY_CODES


def _retry_delay(error: KassaError, attempt: int, attempts: int) -> float | None:
    """Seconds to wait before trying again, or None to give up with ``error``."""
    if attempt >= attempts:
        return None
    if _retryable(error):
        after = error.retry_after if error.retry_after is not None else 0.1
        return min(max(after, 0.0), MAX_RETRY_SLEEP)
    if error.code == TIMEOUT:
        return 0.0
    return None


def _pack(value: Any) -> bytes:
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed


def _encode(request_id: int, op: str, args: Mapping[str, Any]) -> bytes:
    """A request frame; ``too_large`` if no Kassa service would take it (nothing is sent)."""
    packed = _pack({"v": VERSION, "id": request_id, "op": op, **args})
    if op == "submit" and len(packed) > MAX_RECEIPT_BYTES:
        size = len(_pack(args.get("receipt")))
        if size > MAX_RECEIPT_BYTES:
            raise _too_large("a receipt", size, MAX_RECEIPT_BYTES, "receipt")
    if len(packed) > MAX_REQUEST_BYTES:
        raise _too_large("a request", len(packed), MAX_REQUEST_BYTES)
    return packed


@attrs.frozen
class _Answer:
    id: Any
    ok: bool
    body: Any  # the result, or the error map

    def result(self) -> Any:
        if not self.ok:
            raise KassaError.from_wire(self.body)
        return self.body


def _read_answer(frames: Sequence[bytes]) -> _Answer | None:
    """The answer in a message (the last frame, after an optional empty delimiter)."""
    if not frames:
        return None
    try:
        value = msgpack.unpackb(frames[-1], raw=False)
    except Exception:  # msgpack raises several types on garbage; all mean "unreadable"
        return None
    if not isinstance(value, dict) or "id" not in value or not isinstance(value.get("ok"), bool):
        return None
    ok = value["ok"]
    return _Answer(value["id"], ok, value.get("result") if ok else value.get("error"))


def _dropped(answer: _Answer) -> int:
    """How many answers the service says it dropped for this connection (docs/protocol.md,
    "Answers left unread"), in an answer without an id; 0 for any other answer."""
    body = answer.body
    if answer.id is not None or answer.ok or not isinstance(body, dict):
        return 0
    count = body.get("dropped")
    return count if body.get("code") == "dropped" and type(count) is int and count > 0 else 0


def _chunk(result: Any) -> tuple[int, str, bool]:
    r = _Read(result, "")
    return r.get("seq", int), r.get("chunk", str), r.get("more", bool)


class _Reorder:
    """A stream's chunks in ``seq`` order, whatever order they come in."""

    def __init__(self) -> None:
        self.next = 0
        self.held: dict[int, tuple[str, bool]] = {}
        self.done = False

    def add(self, result: Any) -> list[str]:
        """The chunks now deliverable; sets ``done`` after the last."""
        seq, chunk, more = _chunk(result)
        if seq < self.next or seq in self.held:
            raise KassaError(BAD_ANSWER, f"chunk {seq} of the stream came twice", "seq")
        self.held[seq] = (chunk, more)
        out = []
        while self.next in self.held:
            chunk, more = self.held.pop(self.next)
            self.next += 1
            out.append(chunk)
            if not more:
                if self.held:
                    raise KassaError(BAD_ANSWER, "chunks came after the stream's last", "seq")
                self.done = True
        if len(self.held) > 4 * STREAM_BUFFER:
            raise KassaError(BAD_ANSWER, f"chunk {self.next} of the stream is missing", "seq")
        return out


# --- the link ------------------------------------------------------------------------------------


class _LinkWatch:
    """What the socket monitor said about the connection: why a request got no answer."""

    def __init__(self) -> None:
        self.connected = False  # a TCP (or ipc) connection was made, ever
        self.up = False  # the CURVE handshake succeeded and the peer is still there
        self.handshakes = 0  # successful handshakes so far
        self.failed_handshake = False
        self.refused = False  # the service's ZAP handler refused this client's key

    def feed(self, frames: Sequence[bytes]) -> None:
        try:
            event = int(parse_monitor_message(list(frames))["event"])
        except Exception:  # a monitor message we cannot read tells nothing
            return
        if event == zmq.EVENT_CONNECTED:
            self.connected = True
        elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self.up, self.refused, self.failed_handshake = True, False, False
            self.handshakes += 1
        elif event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            self.refused = True
        elif event in (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL):
            self.failed_handshake = True
        elif event == zmq.EVENT_DISCONNECTED:
            self.up = False

    def refusal(self, endpoint: str) -> KassaError:
        return KassaError(
            REFUSED,
            f"{endpoint} refused this client's key: it is not in any tenant's keys",
        )

    def silence(self, endpoint: str, timeout: float, was_up: bool) -> KassaError:
        """The error for a request that got no answer within ``timeout``."""
        if self.refused:
            return self.refusal(endpoint)
        if was_up:
            return KassaError(TIMEOUT, f"no answer from {endpoint} within {timeout:g} s")
        if self.failed_handshake:
            why = "the secure handshake failed: is the server key the service's public key?"
        elif self.connected:
            why = "connected, but no secure handshake: is it a Kassa service?"
        else:
            why = "cannot connect: nothing listens there, or the host is unknown"
        return KassaError(UNREACHABLE, f"{endpoint} unreachable within {timeout:g} s: {why}")


def _dealer(
    context: zmq.Context[zmq.Socket[bytes]], endpoint: str, keys: ClientKeys
) -> tuple[zmq.Socket[bytes], zmq.Socket[bytes]]:
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.curve_serverkey = keys.server_public
    socket.curve_publickey = keys.public
    socket.curve_secretkey = keys.secret
    monitor = socket.get_monitor_socket()
    monitor.setsockopt(zmq.LINGER, 0)
    try:
        socket.connect(endpoint)
    except zmq.ZMQError as exc:
        socket.disable_monitor()
        monitor.close(linger=0)
        socket.close(linger=0)
        raise ValueError(f"{endpoint}: not a ZeroMQ endpoint: {exc}") from None
    return socket, monitor


def _close(socket: zmq.Socket[bytes], monitor: zmq.Socket[bytes]) -> None:
    with suppress(zmq.ZMQError):
        socket.disable_monitor()
    monitor.close(linger=0)
    socket.close(linger=0)


def _context(context: zmq.Context[zmq.Socket[bytes]] | None) -> zmq.Context[zmq.Socket[bytes]]:
    return context if context is not None else zmq.Context.instance()


# --- the blocking client -------------------------------------------------------------------------


class KassaClient:
    """A blocking client: one ``DEALER`` (CURVE client), one request at a time.

    ``timeout`` is how long one answer (or one chunk of a stream) may take; ``attempts`` bounds
    the tries of a safe retry. Not thread-safe, like the socket it owns.
    """

    def __init__(
        self,
        endpoint: str,
        keys: ClientKeys,
        *,
        timeout: float = 10.0,
        attempts: int = 4,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
    ) -> None:
        if timeout <= 0 or not math.isfinite(timeout):
            raise ValueError(f"timeout: expected positive seconds, got {timeout}")
        self.endpoint = endpoint
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self._keys = keys
        self._context = _context(context)
        self._ids = itertools.count(1)
        self._socket: zmq.Socket[bytes] | None = None
        self._monitor: zmq.Socket[bytes] | None = None
        self._watch = _LinkWatch()
        self._poller = zmq.Poller()
        self._backlog: deque[_Answer] = deque()
        self.reopened = 0  # sockets closed after a timeout, for tests
        self.answers_dropped = 0  # the service's count of answers it could not send us
        self._open()  # a malformed endpoint is a ValueError here, not at the first request

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the socket at once (linger 0); the next request opens a new one."""
        if self._socket is not None and self._monitor is not None:
            self._poller.unregister(self._socket)
            self._poller.unregister(self._monitor)
            _close(self._socket, self._monitor)
        self._socket = self._monitor = None

    def _open(self) -> tuple[zmq.Socket[bytes], zmq.Socket[bytes]]:
        if self._socket is None or self._monitor is None:
            self._socket, self._monitor = _dealer(self._context, self.endpoint, self._keys)
            self._poller.register(self._socket, zmq.POLLIN)
            self._poller.register(self._monitor, zmq.POLLIN)
            self._watch = _LinkWatch()
        return self._socket, self._monitor

    def _reopen(self) -> None:
        """After a timeout: an answer still on its way must not meet the next request."""
        self.close()
        self._backlog.clear()
        self.reopened += 1

    def _send(self, op: str, args: Mapping[str, Any]) -> tuple[int, bool, int]:
        """Send one request: its id, and what the link looked like then.

        A socket with no peer to queue on cannot take it (libzmq tears the pipe down when the
        service refuses the key, and a full queue is mute too): wait for room until the
        timeout, reading the monitor, so a refused key says ``refused``, not "unreachable".
        """
        socket, monitor = self._open()
        request_id = next(self._ids)
        frames = [b"", _encode(request_id, op, args)]
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                socket.send_multipart(frames, zmq.NOBLOCK)
                return request_id, self._watch.up, self._watch.handshakes
            except zmq.Again:
                pass
            for event in self._drain(monitor):
                self._watch.feed(event)
            if self._watch.refused:
                self._reopen()
                raise self._watch.refusal(self.endpoint)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._reopen()
                raise KassaError(UNREACHABLE, f"{self.endpoint}: the send queue stayed full")
            room = zmq.Poller()
            room.register(socket, zmq.POLLOUT)
            room.register(monitor, zmq.POLLIN)
            room.poll(math.ceil(remaining * 1000))

    def _wait(self, request_id: int, was_up: bool, handshakes: int) -> Any:
        """The result of the next answer to ``request_id``; an error answer raises.

        No answer within the timeout, or a refused key, closes the socket (see _reopen).
        """
        socket, monitor = self._open()
        watch = self._watch
        deadline = time.monotonic() + self.timeout
        while True:
            while self._backlog:
                answer = self._backlog.popleft()
                if _dropped(answer):  # answers the service could not send (ours: it times out)
                    self.answers_dropped += _dropped(answer)
                    continue
                if answer.id == request_id or (answer.id is None and not answer.ok):
                    return answer.result()
                # else: a late answer to an earlier request, dropped
            remaining = deadline - time.monotonic()
            ready = dict(self._poller.poll(math.ceil(remaining * 1000))) if remaining > 0 else {}
            if monitor in ready:
                for frames in self._drain(monitor):
                    watch.feed(frames)
                if watch.refused:
                    self._reopen()
                    raise watch.refusal(self.endpoint)
            if socket in ready:
                for frames in self._drain(socket):
                    late = _read_answer(frames)
                    if late is not None:
                        self._backlog.append(late)
            elif not ready and time.monotonic() >= deadline:
                up = was_up or watch.up or watch.handshakes > handshakes
                self._reopen()
                raise watch.silence(self.endpoint, self.timeout, up)

    @staticmethod
    def _drain(socket: zmq.Socket[bytes]) -> list[list[bytes]]:
        out = []
        while True:
            try:
                out.append(socket.recv_multipart(zmq.NOBLOCK))
            except zmq.Again:
                return out

    def _run(self, call: _Call[T]) -> T:
        attempt = 1
        while True:
            try:
                return call.parse(self._wait(*self._send(call.op, call.args)))
            except KassaError as exc:
                delay = _retry_delay(exc, attempt, self.attempts) if call.retry else None
                if delay is None:
                    raise
            time.sleep(delay)
            attempt += 1

    def ping(self) -> Pong:
        return self._run(_Calls.ping())

    def submit(
        self,
        external_id: str,
        receipt: Receipt | Body,
        *,
        format: str = "kassa",
        group: str = "main",
        operation: str | None = None,
    ) -> Submitted:
        """Submit one receipt (a model, or a body in ``format``) under ``external_id``.

        Retried on ``timeout``, ``busy``, ``rate_limited`` and ``unavailable``: safe, because
        the service dedupes by external_id, so a repeat answers the first job (``duplicate``),
        never a second one.
        """
        return self._run(_Calls.submit(_job_entry(external_id, receipt, format, group, operation)))

    def submit_batch(self, jobs: Iterable[BatchEntry]) -> list[Submitted | KassaError]:
        """Submit up to 1,000 jobs in one request: a result or an error for each, in order.

        Retried like :meth:`submit`, and so are the entries refused as ``busy``,
        ``rate_limited`` or ``unavailable``: every entry is deduped by its external_id.
        """
        batch = _Batch(jobs, self.attempts)
        while (entries := batch.pending()) is not None:
            answers = self._run(_Calls.submit_batch(entries))
            delay = batch.take(answers)
            if delay:
                time.sleep(delay)
        return batch.results()

    def status(self, job_id: str | None = None, external_id: str | None = None) -> JobInfo:
        return self._run(_Calls.status(job_id, external_id))

    def receipt(self, job_id: str | None = None, external_id: str | None = None) -> ReceiptInfo:
        return self._run(_Calls.receipt(job_id, external_id))

    def list_jobs(self, after: str = "", limit: int = 100) -> JobPage:
        return self._run(_Calls.list_jobs(after, limit))

    def report(self, start: float, end: float, register: str | None = None) -> Report:
        """The report of [start, end) (Unix seconds) for the tenant or one register."""
        return self._run(_Calls.report(start, end, register))

    def export(
        self, form: str, start: float | None = None, end: float | None = None
    ) -> Iterator[str]:
        """The export's text chunks in ``seq`` order, as they arrive (``timeout`` per chunk).

        Not retried: a stream that broke midway is asked for again by the caller.
        """
        request_id, was_up, handshakes = self._send("export", _Calls.export(form, start, end))
        order = _Reorder()
        try:
            while not order.done:
                yield from order.add(self._wait(request_id, was_up, handshakes))
        finally:
            if not order.done and self._socket is not None:
                self._reopen()  # the rest of the stream must not meet the next request

    def cancel(self, job_id: str) -> JobInfo:
        return self._run(_Calls.cancel(job_id))

    def registers(self) -> list[RegisterInfo]:
        return self._run(_Calls.registers())

    def shift(self, register: str, action: str) -> bool:
        """Open or close a register's shift (``action``: open, close); whether it changed."""
        return self._run(_Calls.shift(register, action))

    def events_endpoint(self) -> str:
        return self._run(_Calls.events())


#: Bytes of a submit_batch request besides its entries: the map's other keys, array header.
_BATCH_HEAD = 64


class _Batch:
    """A batch submit in rounds: each round sends its entries in as few requests as the
    default request limit and MAX_BATCH allow; entries refused as busy, rate_limited or
    unavailable go again next round. An entry larger than any service takes is refused here, unsent.
    """

    def __init__(self, jobs: Iterable[BatchEntry], attempts: int) -> None:
        self._entries = [
            _job_entry(j.external_id, j.receipt, j.format, j.group, j.operation) for j in jobs
        ]
        self._sizes = [len(_pack(entry)) for entry in self._entries]
        self._results: list[Submitted | KassaError | None] = [None] * len(self._entries)
        self._round: deque[int] = deque()  # entries of this round not sent yet
        for index, size in enumerate(self._sizes):
            if size > MAX_RECEIPT_BYTES:
                path = f"jobs[{index}]"
                self._results[index] = _too_large("a receipt", size, MAX_RECEIPT_BYTES, path)
            else:
                self._round.append(index)
        self._part: list[int] = []  # the entries of the request last sent
        self._sent: list[int] = []  # the entries of this round sent so far
        self._attempt = 1
        self._attempts = attempts

    def pending(self) -> list[dict[str, Any]] | None:
        """The entries of the next request, or None when the batch is done."""
        if not self._round:
            return None
        part: list[int] = []
        room = REQUEST_BYTES - _BATCH_HEAD
        while self._round and len(part) < MAX_BATCH:
            size = self._sizes[self._round[0]]
            if part and size > room:
                break
            room -= size
            part.append(self._round.popleft())
        self._part = part
        return [self._entries[i] for i in part]

    def take(self, answers: Sequence[Submitted | KassaError]) -> float | None:
        """Record the answers to :meth:`pending`; the seconds to wait before the next round."""
        for sent, (index, answer) in enumerate(zip(self._part, answers, strict=True)):
            if isinstance(answer, KassaError):
                answer = answer.renumbered(sent, index)
            self._results[index] = answer
        self._sent += self._part
        if self._round:
            return None
        delays: list[float | None] = []
        again = []
        for index in self._sent:
            result = self._results[index]
            if isinstance(result, KassaError) and _retryable(result):
                again.append(index)
                delays.append(_retry_delay(result, self._attempt, self._attempts))
        self._sent = []
        if not again or any(d is None for d in delays):
            return None
        self._round, self._attempt = deque(again), self._attempt + 1
        return max(d for d in delays if d is not None)

    def results(self) -> list[Submitted | KassaError]:
        return [r for r in self._results if r is not None]


# --- the trio client -----------------------------------------------------------------------------


#: A waiter's channel closed: its request was given up.
_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)


@attrs.define
class _Waiter:
    """Where the router puts the answers to one request in flight."""

    send: trio.MemorySendChannel[_Answer | KassaError]
    stream: bool


class TrioKassaClient:
    """The client's API as trio coroutines, for many requests in flight from many tasks.

    One task, the pump, makes every libzmq call of the ``DEALER`` (engineering.md §2): tasks
    hand it requests and wait on a channel of their own; a router task matches each answer to
    its request by id. A timeout gives up on one request and drops its late answer when it
    comes; the socket stays open for the others in flight, since ids are never reused.
    A stream's chunks are buffered up to STREAM_BUFFER for a slow reader; past that the router
    waits for it, and so do the other requests' answers.
    """

    def __init__(
        self, endpoint: str, pump: Pump, *, timeout: float, attempts: int
    ) -> None:  # use TrioKassaClient.open
        self.endpoint = endpoint
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self._pump = pump
        self._ids = itertools.count(1)
        self._waiting: dict[int, _Waiter] = {}
        self._watch = _LinkWatch()
        self._open = False
        self.dropped = 0  # answers that matched no request in flight, for tests
        self.answers_dropped = 0  # the service's count of answers it could not send us

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        endpoint: str,
        keys: ClientKeys,
        *,
        timeout: float = 10.0,
        attempts: int = 4,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
    ) -> AsyncIterator[TrioKassaClient]:
        """Connect, run the pump and the router, and close everything on the way out."""
        if timeout <= 0 or not math.isfinite(timeout):
            raise ValueError(f"timeout: expected positive seconds, got {timeout}")
        socket, monitor = _dealer(_context(context), endpoint, keys)
        try:
            pump, monitor_pump = Pump(socket), Pump(monitor)
            client = cls(endpoint, pump, timeout=timeout, attempts=attempts)
            async with trio.open_nursery() as nursery:
                await nursery.start(pump.run)
                await nursery.start(monitor_pump.run)
                nursery.start_soon(client._route)
                nursery.start_soon(client._watch_link, monitor_pump)
                client._open = True
                try:
                    yield client
                finally:
                    client._open = False
                    nursery.cancel_scope.cancel()
        finally:
            _close(socket, monitor)  # the pumps have ended: no task touches either socket now

    async def _route(self) -> None:
        async for batch in self._pump.inbox:
            for frames in batch:
                answer = _read_answer(frames)
                ours = answer is not None and type(answer.id) is int
                waiter = self._waiting.get(answer.id) if answer is not None and ours else None
                if answer is not None and _dropped(answer):
                    # Which requests' answers were lost the service does not know: theirs
                    # time out, and are retried where that is safe.
                    self.answers_dropped += _dropped(answer)
                    _log.warning("%s", answer.body.get("message"))
                    continue
                if answer is None or waiter is None:
                    self.dropped += 1  # late (its request timed out), unreadable, or id nil
                    if answer is not None and answer.id is None:
                        _log.warning("an answer without an id: %r", answer.body)
                    continue
                if not waiter.stream or not answer.ok or not _more(answer.body):
                    del self._waiting[answer.id]
                try:
                    waiter.send.send_nowait(answer)
                except trio.WouldBlock:
                    await self._deliver_late(waiter, answer)
                except _GONE:
                    self._waiting.pop(answer.id, None)

    @staticmethod
    async def _deliver_late(waiter: _Waiter, answer: _Answer) -> None:
        with suppress(*_GONE):
            await waiter.send.send(answer)

    async def _watch_link(self, monitor_pump: Pump) -> None:
        async for batch in monitor_pump.inbox:
            for frames in batch:
                self._watch.feed(frames)
            if self._watch.refused:
                refusal = self._watch.refusal(self.endpoint)
                waiting, self._waiting = self._waiting, {}
                for waiter in waiting.values():
                    with suppress(trio.WouldBlock, *_GONE):
                        waiter.send.send_nowait(refusal)

    def _send(
        self, op: str, args: Mapping[str, Any], *, stream: bool
    ) -> tuple[int, trio.MemoryReceiveChannel[_Answer | KassaError]]:
        if not self._open:
            raise RuntimeError("the client is closed: use it inside TrioKassaClient.open()")
        if self._watch.refused:
            raise self._watch.refusal(self.endpoint)
        request_id = next(self._ids)
        frame = _encode(request_id, op, args)
        send, receive = trio.open_memory_channel[_Answer | KassaError](
            STREAM_BUFFER if stream else 1
        )
        self._waiting[request_id] = _Waiter(send, stream)
        self._pump.send_nowait([b"", frame])
        return request_id, receive

    async def _next(
        self, receive: trio.MemoryReceiveChannel[_Answer | KassaError], was_up: bool, seen: int
    ) -> Any:
        item: _Answer | KassaError | None = None
        with trio.move_on_after(self.timeout):
            item = await receive.receive()
        if item is None:
            up = was_up or self._watch.up or self._watch.handshakes > seen
            raise self._watch.silence(self.endpoint, self.timeout, up)
        if isinstance(item, KassaError):
            raise item
        return item.result()

    async def _request(self, op: str, args: Mapping[str, Any]) -> Any:
        was_up, seen = self._watch.up, self._watch.handshakes
        request_id, receive = self._send(op, args, stream=False)
        try:
            with receive:
                return await self._next(receive, was_up, seen)
        finally:
            self._waiting.pop(request_id, None)

    async def _run(self, call: _Call[T]) -> T:
        attempt = 1
        while True:
            try:
                return call.parse(await self._request(call.op, call.args))
            except KassaError as exc:
                delay = _retry_delay(exc, attempt, self.attempts) if call.retry else None
                if delay is None:
                    raise
            await trio.sleep(delay)
            attempt += 1

    async def ping(self) -> Pong:
        return await self._run(_Calls.ping())

    async def submit(
        self,
        external_id: str,
        receipt: Receipt | Body,
        *,
        format: str = "kassa",
        group: str = "main",
        operation: str | None = None,
    ) -> Submitted:
        """As :meth:`KassaClient.submit`: retried, safely, since the service dedupes."""
        entry = _job_entry(external_id, receipt, format, group, operation)
        return await self._run(_Calls.submit(entry))

    async def submit_batch(self, jobs: Iterable[BatchEntry]) -> list[Submitted | KassaError]:
        """As :meth:`KassaClient.submit_batch`."""
        batch = _Batch(jobs, self.attempts)
        while (entries := batch.pending()) is not None:
            answers = await self._run(_Calls.submit_batch(entries))
            delay = batch.take(answers)
            if delay:
                await trio.sleep(delay)
        return batch.results()

    async def status(self, job_id: str | None = None, external_id: str | None = None) -> JobInfo:
        return await self._run(_Calls.status(job_id, external_id))

    async def receipt(
        self, job_id: str | None = None, external_id: str | None = None
    ) -> ReceiptInfo:
        return await self._run(_Calls.receipt(job_id, external_id))

    async def list_jobs(self, after: str = "", limit: int = 100) -> JobPage:
        return await self._run(_Calls.list_jobs(after, limit))

    async def report(self, start: float, end: float, register: str | None = None) -> Report:
        return await self._run(_Calls.report(start, end, register))

    async def export(
        self, form: str, start: float | None = None, end: float | None = None
    ) -> AsyncIterator[str]:
        """The export's chunks in ``seq`` order, as they arrive; not retried."""
        was_up, seen = self._watch.up, self._watch.handshakes
        request_id, receive = self._send("export", _Calls.export(form, start, end), stream=True)
        order = _Reorder()
        try:
            with receive:
                while not order.done:
                    result = await self._next(receive, was_up, seen)
                    for chunk in order.add(result):
                        yield chunk
        finally:
            self._waiting.pop(request_id, None)

    async def cancel(self, job_id: str) -> JobInfo:
        return await self._run(_Calls.cancel(job_id))

    async def registers(self) -> list[RegisterInfo]:
        return await self._run(_Calls.registers())

    async def shift(self, register: str, action: str) -> bool:
        return await self._run(_Calls.shift(register, action))

    async def events_endpoint(self) -> str:
        return await self._run(_Calls.events())


def _more(result: Any) -> bool:
    return isinstance(result, Mapping) and result.get("more") is True


# --- events -------------------------------------------------------------------------------------


def subscribe(
    endpoint: str,
    keys: ClientKeys,
    *,
    idle_timeout: float | None = None,
    context: zmq.Context[zmq.Socket[bytes]] | None = None,
) -> Iterator[JobEvent]:
    """The tenant's job events (``SUB``, CURVE) from ``endpoint`` (see ``events_endpoint``).

    Ends after ``idle_timeout`` seconds without an event, if given. Events are a convenience:
    a subscriber that was away asks ``status`` or ``list_jobs``.
    """
    socket = _context(context).socket(zmq.SUB)
    socket.setsockopt(zmq.LINGER, 0)
    socket.curve_serverkey = keys.server_public
    socket.curve_publickey = keys.public
    socket.curve_secretkey = keys.secret
    socket.setsockopt(zmq.SUBSCRIBE, b"job")
    try:
        try:
            socket.connect(endpoint)
        except zmq.ZMQError as exc:
            raise ValueError(f"{endpoint}: not a ZeroMQ endpoint: {exc}") from None
        while True:
            wait = None if idle_timeout is None else math.ceil(idle_timeout * 1000)
            if not socket.poll(wait, zmq.POLLIN):
                return
            frames = socket.recv_multipart()
            event = _read_event(frames)
            if event is not None:
                yield event
    finally:
        socket.close(linger=0)


def _read_event(frames: Sequence[bytes]) -> JobEvent | None:
    if len(frames) != 2:
        return None
    try:
        value = msgpack.unpackb(frames[1], raw=False)
        if not isinstance(value, dict) or value.get("event") != "job":
            return None
        return JobEvent(JobInfo.from_wire(value.get("job")), Fiscal.from_wire(value.get("fiscal")))
    except (KassaError, ValueError, msgpack.UnpackException):
        return None
