"""Kassa's ZeroMQ protocol on the wire (docs/protocol.md): request frames in, answer bytes out.

Pure: no sockets, no clocks. :func:`decode_request` turns one frame into a :class:`Request`
with typed arguments, or raises :class:`WireError` carrying the protocol's error code and the
path of the argument at fault; it never raises anything else, on any input. The limits are
checked before anything looks inside: the frame's size first (``too_large``, with nothing
decoded but the id at its start), each receipt's size, msgpack's own size limits and the count
of values while unpacking (:func:`value_limit`: a frame of a million empty arrays costs the
decoder about a second, one of real requests a few milliseconds), then the nesting depth,
walked without recursion.

Types are strict because the wire is where coercion would creep in: an integer must be an
``int`` (``True`` is not 1), money only ever an integer of kopecks inside a receipt, and a
receipt body goes through the strict converters of its format (Kassa JSON, ATOL Online v5 or
KOMTET v2), whose problems come back with ``receipt.body.<path>`` paths.

The encoders make the answers, the streamed chunks and the event frames, and the views of a
job, its fiscal data and a receipt line.
"""

from __future__ import annotations

import gc
import math
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, TypeAlias

import attrs
import msgpack  # type: ignore[import-untyped]

from engine.journal import FiscalResult, Job
from engine.limits import DEFAULT_SIZES, SizeLimits, over_limit
from engine.reports import ReceiptLine
from protocols.documents.json_format import ReceiptJsonError, receipt_from_json
from protocols.documents.model import Receipt
from protocols.ingress import (
    IngressError,
    check_atol_v5,
    check_komtet_task,
    load_json,
    parse_atol_v5,
    parse_komtet_task,
)
from protocols.validation import Problem

VERSION = 1
MAX_DEPTH = 32
MAX_STRING = 1 << 20  # bytes of one str or bin
MAX_ENTRIES = 10_000  # items of one array or map
#: Bytes of request per msgpack value, on average, below which a request is refused: real
#: requests take 7 bytes a value or more (the receipts of tests/protocols/corpus: 7 to 11), while
#: a frame built to cost the decoder the most takes one (an empty array is one byte).
BYTES_PER_VALUE = 4
#: Values any request may hold, whatever its size.
VALUES_FLOOR = 1_024
MAX_REQUEST_ID = 2**63 - 1
MAX_ID_LENGTH = 64
MAX_BATCH = 1_000
MAX_LIST = 1_000
#: Bytes read of a request too large to decode, to find its id (clients send it second).
PEEK_BYTES = 512
FORMATS = ("kassa", "atol_v5", "komtet")
EXPORT_FORMS = ("csv", "jsonl", "fns")
SHIFT_ACTIONS = ("open", "close")

RequestId: TypeAlias = int | str


class WireError(Exception):
    """A request Kassa cannot take: ``code`` from the protocol's table, ``path`` of the fault.

    ``request_id`` is the request's id when it could be read (answers echo it), else None.
    """

    def __init__(
        self,
        code: str,
        message: str,
        path: str = "",
        *,
        request_id: RequestId | None = None,
        problems: Sequence[Mapping[str, str]] = (),
        retry_after: float | None = None,
        limit: int | None = None,
        size: int | None = None,
    ) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.code = code
        self.message = message
        self.path = path
        self.request_id = request_id
        self.problems = tuple(problems)
        self.retry_after = retry_after
        self.limit = limit  # a too_large's limit and size, in bytes
        self.size = size

    def as_dict(self) -> dict[str, Any]:
        """The ``error`` map of an answer."""
        return error_dict(
            self.code,
            self.message,
            self.path,
            self.problems,
            self.retry_after,
            limit=self.limit,
            size=self.size,
        )


@attrs.frozen
class Oversized:
    """A receipt left undecoded because it is over the service's limit: its place in a request."""

    size: int
    limit: int

    def error(self, path: str, request_id: RequestId | None) -> WireError:
        message = over_limit("a receipt", self.size, self.limit, "this service's")
        return WireError(
            "too_large", message, path, request_id=request_id, limit=self.limit, size=self.size
        )


# --- the arguments of each operation ----------------------------------------------------------


@attrs.frozen
class ReceiptArg:
    """A receipt as the client sent it, and the one model it maps onto."""

    format: str
    receipt: Receipt
    body: Mapping[str, Any] = attrs.field(eq=False, repr=False)  # kept to name paths later
    operation: str | None = None  # the ATOL operation (the URL's last segment in ATOL's API)


@attrs.frozen
class SubmitArgs:
    external_id: str
    receipt: ReceiptArg
    group: str = "main"


@attrs.frozen
class SubmitBatchArgs:
    """The entries in order; an entry that cannot be read is its error, answered in place."""

    jobs: tuple[SubmitArgs | WireError, ...]


@attrs.frozen
class JobRef:
    """Exactly one of the two is set."""

    job_id: str | None = None
    external_id: str | None = None


@attrs.frozen
class ListJobsArgs:
    after: str = ""
    limit: int = 100


@attrs.frozen
class ReportArgs:
    start: float
    end: float
    register: str | None = None


@attrs.frozen
class ExportArgs:
    form: str
    start: float = 0.0
    end: float = math.inf


@attrs.frozen
class CancelArgs:
    job_id: str


@attrs.frozen
class ShiftArgs:
    register: str
    action: str


@attrs.frozen
class NoArgs:
    pass


Args: TypeAlias = (
    NoArgs
    | SubmitArgs
    | SubmitBatchArgs
    | JobRef
    | ListJobsArgs
    | ReportArgs
    | ExportArgs
    | CancelArgs
    | ShiftArgs
)


@attrs.frozen
class Request:
    """One request, read and checked."""

    id: RequestId
    op: str
    args: Args


# --- reading ----------------------------------------------------------------------------------


def _kind(value: Any) -> str:
    """A value's type in msgpack's words."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bytes):
        return "bin"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a map"
    return "an extension type"


def _too_deep(value: Any, depth: int = 1) -> bool:
    """Whether ``value``, at ``depth``, nests arrays and maps deeper than MAX_DEPTH (walked
    without recursion)."""
    stack: list[tuple[Any, int]] = [(value, depth)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if type(item) is dict else item
        if _CONTAINERS.isdisjoint(map(type, children)):  # at C speed: most hold scalars only
            continue
        if depth >= MAX_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in children if type(child) in _CONTAINERS)
    return False


_CONTAINERS = frozenset((dict, list))


def value_limit(size: int) -> int:
    """The most msgpack values (arrays, maps, keys and scalars) a request of ``size`` bytes
    may hold: VALUES_FLOOR, and one per BYTES_PER_VALUE bytes."""
    return VALUES_FLOOR + size // BYTES_PER_VALUE


class _Budget:
    """The values left to a request while msgpack builds it, spent through its hooks.

    msgpack calls a hook as each array or map is complete, so decoding stops within one
    container (at most MAX_ENTRIES entries) of the limit, before the rest of the frame is
    built. The hooks are also where a decoder in a worker thread gives the GIL back.
    """

    __slots__ = ("left", "limit", "path", "request_id", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.limit = self.left = value_limit(size)
        self.path = ""  # the argument being read
        self.request_id: RequestId | None = None

    def spend(self, count: int) -> None:
        self.left -= count
        if self.left < 0:
            raise WireError(
                "too_deep",
                f"more than {self.limit} values in a request of {self.size} bytes "
                f"(at most {VALUES_FLOOR} and one per {BYTES_PER_VALUE} bytes)",
                self.path,
                request_id=self.request_id,
            )

    def array(self, items: list[Any]) -> list[Any]:
        self.spend(len(items))  # each value counts once, as an entry of its container
        return items

    def map(self, items: dict[Any, Any]) -> dict[Any, Any]:
        self.spend(2 * len(items))
        return items

    def hooks(self) -> dict[str, Any]:
        return {"list_hook": self.array, "object_hook": self.map}


_UNPACK_LIMITS: dict[str, Any] = {
    "raw": False,
    "strict_map_key": True,
    "max_str_len": MAX_STRING,
    "max_bin_len": MAX_STRING,
    "max_array_len": MAX_ENTRIES,
    "max_map_len": MAX_ENTRIES,
    "max_ext_len": MAX_STRING,
}
#: The first byte of a msgpack array: fixarray, array 16, array 32.
_ARRAY_HEADS = frozenset([*range(0x90, 0xA0), 0xDC, 0xDD])


_collector = threading.Lock()
_collector_pauses = 0  # decodes under way that paused the garbage collector
_collector_was_enabled = False


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a request is built, in any thread.

    A frame of many small arrays makes as many tracked objects, and their number sets off
    full collections that hold the GIL for tens of milliseconds at a time: long enough to
    stall the event loop while a worker thread decodes. Nothing msgpack builds can make a
    reference cycle, so the collector has nothing to find there.
    """
    global _collector_pauses, _collector_was_enabled
    with _collector:
        if _collector_pauses == 0:
            _collector_was_enabled = gc.isenabled()
            gc.disable()
        _collector_pauses += 1
    try:
        yield
    finally:
        with _collector:
            _collector_pauses -= 1
            if _collector_pauses == 0 and _collector_was_enabled:
                gc.enable()


def _unpack(frame: bytes, receipt_bytes: int | None = None) -> Any:
    """The value in ``frame``, a request's if ``receipt_bytes`` is given: then its values are
    counted (:func:`value_limit`) and receipts over ``receipt_bytes`` become :class:`Oversized`.
    """
    try:
        if receipt_bytes is None:
            return msgpack.unpackb(frame, **_UNPACK_LIMITS)
        with _collector_paused():
            return _unpack_request(frame, receipt_bytes)
    except WireError:
        raise
    except msgpack.StackError:
        raise WireError("too_deep", f"nesting deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        if "exceeds max_" in str(exc):
            raise WireError(
                "too_deep",
                f"a string over {MAX_STRING} bytes, or an array or map over {MAX_ENTRIES} entries",
            ) from None
        raise WireError("bad_request", "not a msgpack value") from None
    except Exception:  # msgpack's decoder raises several types on garbage; all mean the same
        raise WireError("bad_request", "not a msgpack value") from None


def _unpack_request(frame: bytes, receipt_bytes: int) -> Any:
    """A request map as :func:`msgpack.unpackb` reads it, except that its values are counted
    against :func:`value_limit` (an excess is ``too_deep`` at the argument being read), and
    that a receipt (``receipt``, or an entry of ``jobs``) over ``receipt_bytes`` is measured,
    skipped and left undecoded. The top level is walked in Python, the rest by msgpack.

    Whatever was built of a request that fails is freed here, before the error leaves: its
    traceback would otherwise keep it (up to a few hundred thousand objects) alive, for the
    garbage collector to walk again and again.
    """
    budget = _Budget(len(frame))
    unpacker = msgpack.Unpacker(max_buffer_size=len(frame), **_UNPACK_LIMITS, **budget.hooks())
    unpacker.feed(frame)
    try:
        return _read_request(unpacker, frame, receipt_bytes, budget)
    except Exception as exc:
        failure = exc.with_traceback(None)
    del unpacker  # with the containers it was building
    raise failure


def _read_request(
    unpacker: msgpack.Unpacker, frame: bytes, receipt_bytes: int, budget: _Budget
) -> Any:
    try:
        pairs = unpacker.read_map_header()
    except ValueError:  # not a map: read as any other frame, to be answered the same
        return msgpack.unpackb(frame, **_UNPACK_LIMITS, **budget.hooks())
    if pairs > MAX_ENTRIES:
        raise ValueError("exceeds max_map_len")
    budget.spend(2 * pairs)
    measure = len(frame) > receipt_bytes  # else no receipt in it can be over
    value: dict[Any, Any] = {}
    for _ in range(pairs):
        key = unpacker.unpack()
        if not isinstance(key, str | bytes):
            raise TypeError("a map key that is not a string")
        budget.path = key if isinstance(key, str) else ""
        if measure and key == "receipt":
            value[key] = _measured(unpacker, frame, receipt_bytes, budget)
        elif measure and key == "jobs" and frame[unpacker.tell()] in _ARRAY_HEADS:
            count = unpacker.read_array_header()
            if count > MAX_ENTRIES:
                raise ValueError("exceeds max_array_len")
            budget.spend(count)
            jobs = []
            for i in range(count):
                budget.path = f"jobs[{i}]"
                jobs.append(_measured(unpacker, frame, receipt_bytes, budget))
            value[key] = jobs
        else:
            value[key] = unpacker.unpack()
        if key == "id":
            budget.request_id = _request_id(value[key])
    if unpacker.tell() != len(frame):
        raise ValueError("extra data after the map")
    return value


def _measured(unpacker: msgpack.Unpacker, frame: bytes, receipt_bytes: int, budget: _Budget) -> Any:
    """The next value, or its :class:`Oversized` if it is over ``receipt_bytes``."""
    start = unpacker.tell()
    unpacker.skip()
    size = unpacker.tell() - start
    if size > receipt_bytes:
        return Oversized(size, receipt_bytes)
    view = memoryview(frame)[start : start + size]
    return msgpack.unpackb(view, **_UNPACK_LIMITS, **budget.hooks())


def peek_request_id(frame: bytes) -> RequestId | None:
    """The id of a request not decoded (too large), if it is among the first few arguments."""
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(frame[:PEEK_BYTES])
    try:
        for _ in range(min(unpacker.read_map_header(), 4)):
            key, value = unpacker.unpack(), unpacker.unpack()
            if key == "id":
                return _request_id(value)
    except Exception:  # cut short, or not a map: no id then
        return None
    return None


def _request_id(value: Any) -> RequestId | None:
    if type(value) is int and 0 <= value <= MAX_REQUEST_ID:
        return value
    if isinstance(value, str) and len(value) <= MAX_ID_LENGTH:
        return value
    return None


class _Fields:
    """The arguments of one map, read by typed getters that name the path of any fault."""

    def __init__(self, data: Mapping[str, Any], prefix: str, request_id: RequestId | None) -> None:
        self._data = data
        self._prefix = prefix
        self._used: set[str] = set()
        self.request_id = request_id

    def path(self, key: str) -> str:
        return f"{self._prefix}{key}"

    def error(self, key: str, message: str, code: str = "bad_request") -> WireError:
        return WireError(code, message, self.path(key), request_id=self.request_id)

    def get(self, key: str) -> Any:
        """The raw value, None when absent (nil counts as absent)."""
        self._used.add(key)
        return self._data.get(key)

    def text(
        self,
        key: str,
        *,
        required: bool = True,
        min_length: int = 1,
        max_length: int = 128,
    ) -> str | None:
        value = self.get(key)
        if value is None:
            if required:
                raise self.error(key, "required argument is missing")
            return None
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, got {_kind(value)}")
        if not min_length <= len(value) <= max_length:
            raise self.error(key, f"{len(value)} characters, expected {min_length} to {max_length}")
        return value

    def required_text(self, key: str, *, max_length: int = 128) -> str:
        value = self.text(key, max_length=max_length)
        assert value is not None
        return value

    def choice(self, key: str, options: Sequence[str], default: str | None = None) -> str:
        value = self.text(key, required=default is None, max_length=64)
        if value is None:
            assert default is not None
            return default
        if value not in options:
            raise self.error(key, f"expected one of {', '.join(options)}, got {value!r}")
        return value

    def integer(self, key: str, *, default: int, low: int, high: int) -> int:
        value = self.get(key)
        if value is None:
            return default
        if type(value) is not int:
            raise self.error(key, f"expected an integer, got {_kind(value)}")
        if not low <= value <= high:
            raise self.error(key, f"{value} is out of range {low} to {high}")
        return value

    def seconds(self, key: str, *, required: bool) -> float | None:
        """Unix seconds: an integer or a float, finite and not negative."""
        value = self.get(key)
        if value is None:
            if required:
                raise self.error(key, "required argument is missing")
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"expected unix seconds (a number), got {_kind(value)}")
        if not math.isfinite(value) or value < 0:
            raise self.error(key, f"{value} is not a time")
        return float(value)

    def finish(self) -> None:
        """Refuse arguments the operation does not have: a typo must not pass silently."""
        for key in self._data:
            if key not in self._used:
                raise self.error(key, "no such argument")


def decode_request(frame: bytes, limits: SizeLimits = DEFAULT_SIZES) -> Request:
    """The request in one frame; raises :class:`WireError` and nothing else.

    A frame over ``limits.request_bytes`` is ``too_large`` before any of it is decoded (but
    its id); a receipt over ``limits.receipt_bytes`` is ``too_large`` at its path.
    """
    if len(frame) > limits.request_bytes:
        raise WireError(
            "too_large",
            over_limit("a request", len(frame), limits.request_bytes, "this service's"),
            request_id=peek_request_id(frame),
            limit=limits.request_bytes,
            size=len(frame),
        )
    value = _unpack(frame, limits.receipt_bytes)
    if not isinstance(value, dict):
        raise WireError("bad_request", f"expected a map, got {_kind(value)}")
    request_id = _request_id(value.get("id"))
    for key, item in value.items():
        if isinstance(item, dict | list) and _too_deep(item, 2):
            raise WireError(
                "too_deep",
                f"nesting deeper than {MAX_DEPTH} levels",
                key if isinstance(key, str) else "",
                request_id=request_id,
            )
    if request_id is None:
        raise WireError(
            "bad_request",
            f"id: expected an integer 0 to 2^63-1 or a string of at most {MAX_ID_LENGTH} "
            f"characters, got {_kind(value.get('id'))}",
            "id",
        )
    fields = _Fields(value, "", request_id)
    fields.get("id")
    version = fields.get("v")
    if version is None:
        raise fields.error("v", "required argument is missing")
    if type(version) is not int or version != VERSION:
        raise fields.error("v", f"this service speaks version {VERSION}", "unsupported_version")
    op = fields.get("op")
    if not isinstance(op, str):
        raise fields.error("op", f"expected an operation name, got {_kind(op)}")
    reader = _OPERATIONS.get(op)
    if reader is None:
        raise fields.error("op", f"no operation {op[:64]!r}", "unknown_op")
    try:
        args = reader(fields)
        fields.finish()
    except WireError as exc:
        exc.request_id = request_id
        raise
    return Request(request_id, op, args)


def _no_args(fields: _Fields) -> NoArgs:
    return NoArgs()


def _submit(fields: _Fields) -> SubmitArgs:
    value = fields.get("receipt")
    if isinstance(value, Oversized):
        raise value.error(fields.path("receipt"), fields.request_id)
    external_id = fields.required_text("external_id")
    group = fields.text("group", required=False) or "main"
    receipt = read_receipt(value, fields.path("receipt"), fields.request_id)
    return SubmitArgs(external_id, receipt, group)


def _submit_batch(fields: _Fields) -> SubmitBatchArgs:
    jobs = fields.get("jobs")
    if not isinstance(jobs, list):
        raise fields.error("jobs", f"expected an array, got {_kind(jobs)}")
    if not 1 <= len(jobs) <= MAX_BATCH:
        raise fields.error("jobs", f"{len(jobs)} jobs, expected 1 to {MAX_BATCH}")
    out: list[SubmitArgs | WireError] = []
    for i, entry in enumerate(jobs):
        path = f"jobs[{i}]"
        try:
            if isinstance(entry, Oversized):
                raise entry.error(path, fields.request_id)
            if not isinstance(entry, dict):
                raise WireError("bad_request", f"expected a map, got {_kind(entry)}", path)
            sub = _Fields(entry, f"{path}.", fields.request_id)
            submit = _submit(sub)
            sub.finish()
            out.append(submit)
        except WireError as exc:
            out.append(exc)
    return SubmitBatchArgs(tuple(out))


def _job_ref(fields: _Fields) -> JobRef:
    job_id = fields.text("job_id", required=False)
    external_id = fields.text("external_id", required=False)
    if (job_id is None) == (external_id is None):
        raise fields.error("job_id", "expected either job_id or external_id")
    return JobRef(job_id, external_id)


def _list_jobs(fields: _Fields) -> ListJobsArgs:
    after = fields.text("after", required=False, min_length=0) or ""
    limit = fields.integer("limit", default=100, low=1, high=MAX_LIST)
    return ListJobsArgs(after, limit)


def _report(fields: _Fields) -> ReportArgs:
    start = fields.seconds("start", required=True)
    end = fields.seconds("end", required=True)
    assert start is not None and end is not None
    if end < start:
        raise fields.error("end", "the period ends before it starts")
    return ReportArgs(start, end, fields.text("register", required=False))


def _export(fields: _Fields) -> ExportArgs:
    form = fields.choice("form", EXPORT_FORMS)
    start = fields.seconds("start", required=False)
    end = fields.seconds("end", required=False)
    start = 0.0 if start is None else start
    end = math.inf if end is None else end
    if end < start:
        raise fields.error("end", "the period ends before it starts")
    return ExportArgs(form, start, end)


def _cancel(fields: _Fields) -> CancelArgs:
    return CancelArgs(fields.required_text("job_id"))


def _shift(fields: _Fields) -> ShiftArgs:
    return ShiftArgs(fields.required_text("register"), fields.choice("action", SHIFT_ACTIONS))


_OPERATIONS: dict[str, Callable[[_Fields], Args]] = {
    "ping": _no_args,
    "submit": _submit,
    "submit_batch": _submit_batch,
    "status": _job_ref,
    "receipt": _job_ref,
    "list_jobs": _list_jobs,
    "report": _report,
    "export": _export,
    "cancel": _cancel,
    "registers": _no_args,
    "shift": _shift,
    "events": _no_args,
}
OPERATIONS = tuple(_OPERATIONS)


# --- receipts -----------------------------------------------------------------------------------


def _body_path(base: str, path: str) -> str:
    """``receipt.body`` joined with a body path (``$`` and ``""`` are the body itself)."""
    path = path.removeprefix("$").removeprefix(".")
    if not path:
        return base
    return f"{base}{path}" if path.startswith("[") else f"{base}.{path}"


def read_receipt(value: Any, path: str, request_id: RequestId | None = None) -> ReceiptArg:
    """A receipt argument ``{"format", "body"[, "operation"]}`` mapped onto the model."""
    if not isinstance(value, dict):
        if value is None:
            raise WireError("bad_request", "required argument is missing", path)
        raise WireError("bad_request", f"expected a map, got {_kind(value)}", path)
    fields = _Fields(value, f"{path}.", request_id)
    form = fields.choice("format", FORMATS)
    operation = fields.text("operation", required=False, max_length=64)
    if operation is not None and form != "atol_v5":
        raise fields.error("operation", "only an atol_v5 receipt has an operation")
    body = fields.get("body")
    fields.finish()
    body_path = f"{path}.body"
    if form != "kassa" and isinstance(body, str):  # JSON text: decimal roubles stay exact
        try:
            body = load_json(body)
        except IngressError as exc:
            raise WireError("bad_request", exc.reason, body_path, request_id=request_id) from None
        if isinstance(body, dict | list) and _too_deep(body):
            raise WireError(
                "too_deep",
                f"nesting deeper than {MAX_DEPTH} levels",
                body_path,
                request_id=request_id,
            )
    if not isinstance(body, dict):
        what = (
            "required argument is missing" if body is None else f"expected a map, got {_kind(body)}"
        )
        raise WireError("bad_request", what, body_path, request_id=request_id)
    if form == "kassa":
        try:
            receipt = receipt_from_json(body)
        except ReceiptJsonError as exc:
            problems = [
                {"code": "format.invalid", "message": reason, "path": _body_path(body_path, p)}
                for p, reason in exc.problems
            ]
            raise _problems_error(problems, request_id) from None
        return ReceiptArg(form, receipt, body)
    if form == "atol_v5":
        operation = operation or ("sell_correction" if "correction" in body else "sell")
        try:
            receipt = parse_atol_v5(operation, body).receipt
        except IngressError as exc:
            raise _ingress_error(exc, path, body_path, request_id) from None
        return ReceiptArg(form, receipt, body, operation)
    try:
        receipt = parse_komtet_task(body).receipt
    except IngressError as exc:
        raise _ingress_error(exc, path, body_path, request_id) from None
    return ReceiptArg(form, receipt, body)


def _problems_error(problems: list[dict[str, str]], request_id: RequestId | None) -> WireError:
    first = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return WireError(
        "bad_request",
        first["message"] + more,
        first["path"],
        request_id=request_id,
        problems=problems,
    )


def _ingress_error(
    exc: IngressError, path: str, body_path: str, request_id: RequestId | None
) -> WireError:
    problems = [
        {
            "code": p.code,
            "message": p.message,
            "path": f"{path}.operation" if p.path == "operation" else _body_path(body_path, p.path),
        }
        for p in exc.problems
    ]
    return _problems_error(problems, request_id)


def receipt_problems(
    receipt: ReceiptArg, problems: Sequence[Problem], path: str = "receipt"
) -> list[dict[str, str]]:
    """The engine's problems of a receipt, with paths into the body the client sent.

    The checks name model paths; an ATOL or KOMTET body names its fields otherwise, so their
    own checkers (run only here, on the failure path) translate each path.
    """
    body_path = f"{path}.body"
    where: dict[tuple[str, str], str] = {}
    try:
        if receipt.format == "atol_v5" and receipt.operation is not None:
            for a in check_atol_v5(receipt.operation, receipt.body):
                where.setdefault((a.kassa_path, a.kassa_code), a.path)
        elif receipt.format == "komtet":
            for k in check_komtet_task(receipt.body):
                where.setdefault((k.kassa_path, k.code), k.path)
    except Exception:  # a translation is a convenience: the model path is still right
        where = {}
    return [
        {
            "code": p.code,
            "message": p.message,
            "path": _body_path(body_path, where.get((p.path, p.code), p.path)),
        }
        for p in problems
    ]


# --- writing ------------------------------------------------------------------------------------


def error_dict(
    code: str,
    message: str,
    path: str = "",
    problems: Sequence[Mapping[str, str]] = (),
    retry_after: float | None = None,
    *,
    limit: int | None = None,
    size: int | None = None,
) -> dict[str, Any]:
    """An answer's ``error`` map: code, message, path, and problems / retry_after /
    a too_large's limit and size, if any."""
    out: dict[str, Any] = {"code": code, "message": message, "path": path}
    if problems:
        out["problems"] = [dict(p) for p in problems]
    if retry_after is not None:
        out["retry_after"] = float(retry_after)
    if limit is not None and size is not None:
        out["limit"], out["size"] = limit, size
    return out


def _pack(value: Any) -> bytes:
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed


def encode_answer(request_id: RequestId | None, result: Mapping[str, Any]) -> bytes:
    return _pack({"v": VERSION, "id": request_id, "ok": True, "result": result})


def encode_error(request_id: RequestId | None, error: Mapping[str, Any]) -> bytes:
    return _pack({"v": VERSION, "id": request_id, "ok": False, "error": error})


def encode_wire_error(error: WireError) -> bytes:
    return encode_error(error.request_id, error.as_dict())


def encode_dropped(count: int) -> bytes:
    """The answer (``"id": null``) that tells a connection ``count`` answers to it were dropped:
    it left more unread than the service queues for one connection."""
    error = error_dict(
        "dropped",
        f"{count} answers to this connection were dropped: it left more unread than the "
        "service queues for one connection",
    )
    error["dropped"] = count
    return encode_error(None, error)


def encode_chunk(request_id: RequestId, seq: int, chunk: str, more: bool) -> bytes:
    """One answer of a streamed result (``export``)."""
    return encode_answer(request_id, {"seq": seq, "chunk": chunk, "more": more})


EVENT_TOPIC = b"job"


def encode_event(job: Job, result: FiscalResult | None, time_zone: str) -> list[bytes]:
    """The two frames of a job event: the topic, then the event map."""
    event = {
        "v": VERSION,
        "event": "job",
        "job": job_view(job, time_zone),
        "fiscal": None if result is None else fiscal_view(result),
    }
    return [EVENT_TOPIC, _pack(event)]


def job_view(job: Job, time_zone: str) -> dict[str, Any]:
    """A job on the wire; ``time_zone`` is its tenant's, in which people read its times."""
    return {
        "id": job.id,
        "external_id": job.external_id,
        "state": job.state.value,
        "error": job.error,
        "register": job.register_id,
        "created": job.created,
        "updated": job.updated,
        "time_zone": time_zone,
    }


def fiscal_view(result: FiscalResult) -> dict[str, Any]:
    return {
        "fd_number": result.fd_number,
        "fn_number": result.fn_number,
        "fiscal_sign": bytes(result.fiscal_sign),
        "printed_sign": result.printed_sign,
        "qr": result.qr,
        "fiscalized_at": result.fiscalized_at,
        "document": bytes(result.document),
    }


def quantity_text(quantity: Decimal) -> str:
    """A quantity as plain decimal digits (``"1.5"``, ``"10"``), never in exponent form."""
    return f"{quantity.normalize():f}"


def line_view(line: ReceiptLine) -> dict[str, Any]:
    return {
        "n": line.number,
        "name": line.name,
        "quantity": quantity_text(line.quantity),
        "price": line.price,
        "sum": line.sum,
        "vat": line.vat,
        "payment_method": line.payment_method,
        "payment_subject": line.payment_subject,
        "marking": line.marking,
    }


def encode_request(request_id: RequestId, op: str, **args: Any) -> bytes:
    """A request frame (for clients and tests): ``{"v": 1, "id", "op", ...args}``."""
    return _pack({"v": VERSION, "id": request_id, "op": op, **args})


def decode_answer(frame: bytes) -> dict[str, Any]:
    """An answer frame as a map (for clients and tests); raises WireError on anything else."""
    value = _unpack(frame)
    if not isinstance(value, dict):
        raise WireError("bad_request", f"expected a map, got {_kind(value)}")
    return value
