"""The ZeroMQ service (сервис): the engine behind CURVE-encrypted sockets, one tenant per key.

::

    async with open_service(settings, engine_config) as service:
        print(service.endpoint)         # where clients connect their DEALER

Which task owns which socket (engineering.md §2: one task makes every libzmq call of a socket):

- the ZAP pump owns a ``ROUTER`` on ``inproc://zeromq.zap.01``; the ZAP task answers libzmq's
  authentication requests from the key → tenant map (:func:`zap_reply`, pure);
- the requests pump owns the ``ROUTER`` at ``listen`` (CURVE server, ZAP domain ``requests``).
  It hands batches of messages, each with its connection's ZAP ``User-Id`` (its client key,
  looked up again per request, so that a revoked key stops at once), to the dispatcher,
  which applies the tenant's token bucket before decoding anything (a request over the rate
  costs a look at its first bytes), then takes the tenants' requests in turn, a couple of
  milliseconds of the loop at a time. It decodes a small request
  (:mod:`engine.wire`) and answers the quick operations inline, and hands the rest on: submits
  to their tenant's submitter (one ``submit_many`` per group for whatever has gathered: one
  journal commit for many jobs), everything else, and any request over INLINE_BYTES still
  undecoded, to the tenant's own few workers through a bounded channel (full: ``busy``);
- what costs CPU in proportion to a tenant's data (decoding a big request, computing a report,
  writing an export) runs in one of the engine's ``heavy`` worker threads, one operation of a
  tenant at a time: ten reports of one tenant take turns, and never hold up another's ping;
- each tenant's pump owns its ``PUB`` (CURVE server, ZAP domain ``events:<tenant>``), fed from
  the engine's ``on_event`` hook through a bounded buffer that drops the oldest event when it
  overflows (counted; the journal is the truth and ``status`` answers from it).

Answers go back through ``Pump.send_nowait`` from any task: the pump alone touches the socket.
It never waits on one connection: an answer a connection has no room for (it left about 2,000
unread) is dropped, and the connection is told how many in a ``dropped`` answer before its next
one; an export's chunks wait for room instead, and the export with them. A request over the
settings' size limits (:mod:`engine.limits`) is answered ``too_large`` at once, undecoded. Only
a frame over SOCKET_CAP, above any limit a service may set, never reaches Kassa: libzmq drops it
with its connection, unbuffered. Memory stays bounded in counts: the pump's inbox, each
tenant's arrivals, work channel, pending submits and event buffer, and the engine's per-tenant
queue. No request can stop the service: every exception becomes an ``internal`` answer, logged
without keys or receipt contents. While the engine is degraded (its journal cannot commit) a
submit, a cancel or a shift is answered ``unavailable`` with ``retry_after``, reads go on, and
``ping`` says why.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any

import attrs
import trio
import zmq

from engine.config import EngineConfig
from engine.drivers.base import DriverError, LinkLost
from engine.engine import (
    Busy,
    Conflict,
    Engine,
    Health,
    JobEvent,
    JournalBehind,
    NotCancellable,
    SubmitError,
    Unavailable,
    UnknownGroup,
    ValidationFailed,
)
from engine.journal import Job
from engine.limits import MAX_REQUEST_BYTES, SizeLimits
from engine.reports import render_receipt, render_report
from engine.service_config import ServiceSettings
from engine.tenancy import RateLimits
from engine.wire import (
    CancelArgs,
    ExportArgs,
    JobRef,
    ListJobsArgs,
    ReportArgs,
    Request,
    RequestId,
    ShiftArgs,
    SubmitArgs,
    SubmitBatchArgs,
    WireError,
    decode_request,
    encode_answer,
    encode_chunk,
    encode_dropped,
    encode_error,
    encode_event,
    encode_wire_error,
    error_dict,
    fiscal_view,
    job_view,
    line_view,
    peek_request_id,
    receipt_problems,
)
from transports.zmq_pump import Pump

log = logging.getLogger("kassa.service")

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
REQUESTS_DOMAIN = "requests"
EVENTS_DOMAIN = "events:"
#: Each tenant's tasks that run its operations other than submits (status, receipt, report,
#: export, ...) and decode its big requests: one tenant's slow requests wait for its own.
TENANT_WORKERS = 4
#: A tenant's requests waiting for one of its workers; beyond it: busy at once.
TENANT_BACKLOG = 256
#: A tenant's requests received and not yet looked at; beyond it: busy at once, undecoded.
TENANT_ARRIVALS = 4_096
#: Bytes of a request decoded on the event loop as it arrives (a ping, a status, a submit of one
#: receipt): at most 3,072 values (engine.wire.value_limit), a millisecond or so at worst. A
#: bigger request is decoded in a worker thread, in its tenant's turn.
INLINE_BYTES = 8 << 10
#: Seconds of the loop the dispatcher spends on requests before it lets other tasks run.
DISPATCH_SLICE = 0.002
#: The GIL switch interval ``kassa serve`` sets (Python's default is 5 ms). While a worker thread
#: computes a report or decodes a big request, the event loop waits for the GIL each time it
#: comes back from libzmq or epoll, up to this long, several times per request: a ping answered
#: in 6 ms (p50) and 34 ms (p99) with the default, 2.5 and 10 ms with this (kassa bench fairness).
SWITCH_INTERVAL = 0.001
#: Submit entries one tenant may have waiting for its submitter; beyond it: busy at once.
MAX_PENDING_SUBMITS = 10_000
#: Entries one submit round takes.
SUBMIT_ROUND = 2_000
#: Concurrent submit_many calls a round is split into, at most. While one lane waits for its
#: journal commits the next checks its receipts, so checking and committing overlap, and the
#: journal's writer still puts every lane's writes in one commit.
SUBMIT_LANES = 32
#: Entries a lane takes at least: each lane costs two journal requests (accept, then queue)
#: and their wake-ups, so a round of a few dozen single submits goes in a few lanes, not 32
#: (kassa bench intake, single ×64: about 400 µs of service CPU a job with 1, 330-380 with 16).
MIN_LANE = 16
#: Events kept per tenant while its PUB socket catches up; the oldest go first.
EVENT_BUFFER = 4_096
#: Characters per streamed export answer.
EXPORT_CHUNK = 64 * 1024
#: Seconds a streaming export waits for its client to read a chunk before it gives up (the
#: chunks it could not send are then told as dropped).
STREAM_STALL = 60.0
#: libzmq's ZMQ_MAXMSGSIZE on the requests socket: a bigger frame is dropped with its connection,
#: unanswered. It lies above any request limit a service may set (and CURVE's few bytes more),
#: so every frame a Kassa client sends (they refuse more) gets an answer, ``too_large`` or not.
SOCKET_CAP = MAX_REQUEST_BYTES + (64 << 10)


#: The message of an ``internal`` answer: the log has the rest.
INTERNAL = "an internal error; it has been logged"


class ServiceError(Exception):
    """The service cannot start (an endpoint that cannot be bound, ...)."""


# --- pure parts -----------------------------------------------------------------------------


def zap_reply(request: Sequence[bytes], clients: Mapping[bytes, str]) -> list[bytes] | None:
    """The ZAP 1.0 reply (RFC 27) to one request, without its envelope; None if unreadable.

    ``request`` is version, request id, domain, address, identity, mechanism, credentials.
    A CURVE client key known to ``clients`` passes in domain ``requests``, and in domain
    ``events:<tenant>`` only if it is that tenant's; the reply's user id is the tenant.
    """
    if len(request) < 6:
        return None
    version, request_id, domain, _address, _identity, mechanism, *credentials = request
    tenant = None
    if version == b"1.0" and mechanism == b"CURVE" and len(credentials) == 1:
        tenant = clients.get(credentials[0])
    allowed = tenant is not None and (
        domain == REQUESTS_DOMAIN.encode() or domain == f"{EVENTS_DOMAIN}{tenant}".encode()
    )
    if not allowed or tenant is None:
        return [b"1.0", request_id, b"400", b"not allowed", b"", b""]
    # The user id is the key, not its tenant: every request then asks whether the key is
    # still good (:func:`tenant_of_user`), so a key revoked in the cabinet stops the very
    # next request of a connection already made, not only new connections.
    return [b"1.0", request_id, b"200", b"OK", credentials[0].hex().encode(), b""]


def tenant_of_user(user: bytes, clients: Mapping[bytes, str]) -> str | None:
    """The tenant of a request's ZAP user id (its client key, hex) while the key is good."""
    try:
        key = bytes.fromhex(user.decode("ascii"))
    except ValueError:  # no user id: the connection was never authenticated
        return None
    return clients.get(key)


# --- the moving parts -------------------------------------------------------------------------


@attrs.define
class _Reply:
    """Where the answers to one request go: its envelope, through the requests pump."""

    pump: Pump
    envelope: list[bytes]
    request_id: RequestId | None

    def send(self, frame: bytes, *, hold: bool = False) -> None:
        self.pump.send_nowait([*self.envelope, frame], hold=hold)

    def ok(self, result: Mapping[str, Any]) -> None:
        self.send(encode_answer(self.request_id, result))

    def error(self, error: Mapping[str, Any]) -> None:
        self.send(encode_error(self.request_id, error))

    def fail(self, code: str, message: str, path: str = "") -> None:
        self.error(error_dict(code, message, path))


@attrs.define
class _Work:
    """A request for one of its tenant's workers: decoded, or its frame still to decode."""

    reply: _Reply
    request: Request | None = None
    frame: bytes = b""


class _Arrivals:
    """Requests received and not yet looked at, by tenant, taken one tenant after another.

    Taking them in turn is what keeps a tenant that sends a thousand requests at once from
    making the others wait behind them: each of the others' requests waits for at most one
    request of every other tenant.
    """

    def __init__(self, capacity: int) -> None:
        self._queues: dict[str, deque[tuple[list[bytes], bytes]]] = {}
        self._turns: deque[str] = deque()  # tenants with requests waiting, in turn
        self.capacity = capacity

    def __bool__(self) -> bool:
        return bool(self._turns)

    def add(self, tenant: str, envelope: list[bytes], frame: bytes) -> bool:
        """Queue a request; False (and nothing queued) when its tenant has ``capacity``."""
        queue = self._queues.setdefault(tenant, deque())
        if len(queue) >= self.capacity:
            return False
        if not queue:
            self._turns.append(tenant)
        queue.append((envelope, frame))
        return True

    def take(self) -> tuple[str, list[bytes], bytes]:
        """The next tenant's oldest request (there must be one)."""
        tenant = self._turns.popleft()
        queue = self._queues[tenant]
        envelope, frame = queue.popleft()
        if queue:
            self._turns.append(tenant)
        return tenant, envelope, frame


@attrs.define
class _SubmitWork:
    """One submit or submit_batch waiting for its tenant's submitter."""

    reply: _Reply
    entries: Sequence[SubmitArgs | WireError]
    batch: bool
    answers: list[dict[str, Any] | None]


class _Intake:
    """A tenant's submits waiting for the next round."""

    def __init__(self) -> None:
        self.works: deque[_SubmitWork] = deque()
        self.entries = 0
        self.ready = trio.Event()


class _EventFeed:
    """A tenant's events on their way to its PUB socket: bounded, oldest dropped first."""

    def __init__(self, capacity: int) -> None:
        self.events: deque[JobEvent] = deque()
        self.capacity = capacity
        self.dropped = 0
        self.published = 0
        self.ready = trio.Event()

    def put(self, event: JobEvent) -> None:
        if len(self.events) >= self.capacity:
            self.events.popleft()
            self.dropped += 1
        self.events.append(event)
        self.ready.set()


def _causes(exc: BaseException) -> list[BaseException]:
    """The faults inside ``exc``: the leaves of an exception group, else ``exc`` itself."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _causes(inner)]
    return [exc]


def _internal(where: str, tenant: str, exc: BaseException) -> None:
    """Log a fault by its type and stack only: messages may quote receipts, never keys.

    An exception group is logged as the faults inside it, each with its chain of causes
    (``JournalError <- OperationalError``), never as just "ExceptionGroup".
    """
    for fault in _causes(exc):
        chain, inner = [type(fault).__name__], fault.__cause__ or fault.__context__
        while inner is not None and len(chain) < 8:
            chain.append(type(inner).__name__)
            inner = inner.__cause__ or inner.__context__
        stack = "".join(traceback.format_tb(fault.__traceback__))
        log.error(
            "internal error in %s (tenant %s): %s\n%s", where, tenant, " <- ".join(chain), stack
        )


class Service:
    """The ZeroMQ front of one engine; see the module docstring."""

    def __init__(
        self,
        settings: ServiceSettings,
        tenants: Sequence[str],
        *,
        workers: int = TENANT_WORKERS,
        event_buffer: int = EVENT_BUFFER,
        limits: RateLimits | None = None,
        clients: Mapping[bytes, str] | None = None,
    ) -> None:
        self.settings = settings
        #: CURVE public key → tenant, read by ZAP at each handshake: the keyring's live dict
        #: when the doors serve together (engine/keyring.py), else kassa.toml's.
        self.clients = settings.clients if clients is None else clients
        self.tenants = tuple(tenants)
        self._workers = workers
        self._feeds = {t: _EventFeed(event_buffer) for t in self.tenants}
        # Shared with the other doors when they serve together: one budget per tenant.
        self._buckets = limits or RateLimits(self.tenants, settings.rate, settings.burst)
        self._intakes = {t: _Intake() for t in self.tenants}
        self._lanes: dict[str, trio.MemorySendChannel[_Work]] = {}
        self._heavy: dict[str, trio.CapacityLimiter] = {}  # one heavy operation per tenant
        self.endpoint = ""  # the requests socket's endpoint once bound (the real port)
        self.events_endpoints: dict[str, str] = {}
        self.engine: Engine | None = None  # the engine it serves, once running
        self.unauthenticated = 0  # messages dropped for want of a ZAP user id
        self.revoked = 0  # requests refused because their connection's key was revoked since
        self._requests: Pump | None = None
        self.internal_errors = 0

    @property
    def answers_sent(self) -> int:
        """Answers handed to libzmq (notices of dropped answers included)."""
        return 0 if self._requests is None else self._requests.sent

    @property
    def answers_dropped(self) -> int:
        """Answers dropped because their connection left too many unread (each one told)."""
        return 0 if self._requests is None else self._requests.dropped

    @property
    def events_dropped(self) -> dict[str, int]:
        return {t: feed.dropped for t, feed in self._feeds.items()}

    def on_event(self, event: JobEvent) -> None:
        """The engine's notification hook: queue the event for its tenant's PUB socket."""
        feed = self._feeds.get(event.job.tenant)
        if feed is not None:
            feed.put(event)

    # --- sockets ----------------------------------------------------------------------------

    def _server_socket(
        self, context: zmq.Context[zmq.Socket[bytes]], kind: int, domain: str
    ) -> zmq.Socket[bytes]:
        socket = context.socket(kind)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.CURVE_SERVER, 1)
        socket.setsockopt(zmq.CURVE_SECRETKEY, self.settings.server_secret)
        socket.setsockopt(zmq.ZAP_DOMAIN, domain.encode())
        # Without a ZAP handler libzmq would let anyone in: refuse instead.
        socket.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)
        return socket

    def _events_endpoint(self, tenant: str) -> str:
        host = self.settings.events_host
        if host.startswith("ipc://"):
            return f"{host.rstrip('/')}/{tenant}.events"
        return f"tcp://{host}:*"

    async def run(
        self, engine: Engine, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Bind, serve until cancelled, then close every socket (linger 0) and the context."""
        self.engine = engine
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        sockets: list[zmq.Socket[bytes]] = []
        zap: zmq.Socket[bytes] | None = None
        try:
            zap = context.socket(zmq.ROUTER)
            zap.setsockopt(zmq.LINGER, 0)
            zap.bind(ZAP_ENDPOINT)
            router = self._server_socket(context, zmq.ROUTER, REQUESTS_DOMAIN)
            sockets.append(router)
            router.setsockopt(zmq.MAXMSGSIZE, SOCKET_CAP)
            self.endpoint = _bind(router, self.settings.listen)
            pubs: dict[str, zmq.Socket[bytes]] = {}
            for tenant in self.tenants:
                pub = self._server_socket(context, zmq.PUB, f"{EVENTS_DOMAIN}{tenant}")
                sockets.append(pub)
                pub.setsockopt(zmq.MAXMSGSIZE, 4096)  # subscriptions only come in
                self.events_endpoints[tenant] = _bind(pub, self._events_endpoint(tenant))
                pubs[tenant] = pub
            log.info("listening on %s for %d tenant(s)", self.endpoint, len(self.tenants))
            async with trio.open_nursery() as nursery:
                zap_pump = Pump(zap)
                await nursery.start(zap_pump.run)
                nursery.start_soon(self._answer_zap, zap_pump)
                requests = Pump(router, user_id=True, inbox_batches=4, notice=encode_dropped)
                self._requests = requests
                await nursery.start(requests.run)
                for tenant, pub in pubs.items():
                    pub_pump = Pump(pub)
                    await nursery.start(pub_pump.run)
                    zone = engine.tenants[tenant].timezone
                    nursery.start_soon(self._publish, tenant, zone, pub_pump)
                    nursery.start_soon(self._submitter, engine, tenant)
                for tenant in self.tenants:
                    lane, work = trio.open_memory_channel[_Work](TENANT_BACKLOG)
                    self._lanes[tenant] = lane
                    self._heavy[tenant] = trio.CapacityLimiter(1)
                    async with work:
                        for _ in range(self._workers):
                            nursery.start_soon(self._worker, engine, tenant, work.clone())
                nursery.start_soon(self._dispatch, engine, requests)
                task_status.started()
        finally:
            for socket in sockets:  # the servers first: while they live, ZAP must answer
                socket.close(linger=0)
            if zap is not None:
                zap.close(linger=0)
            context.term()

    # --- ZAP -------------------------------------------------------------------------------

    async def _answer_zap(self, pump: Pump) -> None:
        clients = self.clients  # changed in place by the keyring: one dict read per handshake
        async for batch in pump.inbox:
            for message in batch:
                # [routing id, b"", version, request id, domain, address, identity, ...]
                if len(message) < 3 or message[1] != b"":
                    continue
                reply = zap_reply(message[2:], clients)
                if reply is not None:
                    pump.send_nowait([message[0], b"", *reply])

    # --- events ----------------------------------------------------------------------------

    async def _publish(self, tenant: str, time_zone: str, pump: Pump) -> None:
        feed = self._feeds[tenant]
        while True:
            await feed.ready.wait()
            feed.ready = trio.Event()
            while feed.events:
                event = feed.events.popleft()
                try:
                    pump.send_nowait(encode_event(event.job, event.result, time_zone))
                    feed.published += 1
                except Exception as exc:
                    _internal("events", tenant, exc)
            await trio.lowlevel.checkpoint()

    # --- requests --------------------------------------------------------------------------

    async def _dispatch(self, engine: Engine, pump: Pump) -> None:
        """Take the pump's requests, tenant by tenant in turn, DISPATCH_SLICE of loop at a time.

        Every request is checked against its tenant's rate as it arrives, before anything of
        it is decoded: one over the rate costs a look at its first bytes (for its id), however
        large or malformed it is.
        """
        arrivals = _Arrivals(TENANT_ARRIVALS)
        while True:
            if not arrivals:
                try:
                    batch = await pump.inbox.receive()
                except trio.EndOfChannel:
                    return
                self._arrive(pump, batch, arrivals)
            with suppress(trio.WouldBlock, trio.EndOfChannel):
                while True:  # whatever else has come meanwhile, to take turns with it
                    self._arrive(pump, pump.inbox.receive_nowait(), arrivals)
            deadline = time.perf_counter() + DISPATCH_SLICE
            while arrivals and time.perf_counter() < deadline:
                tenant, envelope, frame = arrivals.take()
                self._take(engine, pump, tenant, envelope, frame)
            await trio.lowlevel.checkpoint()

    def _arrive(self, pump: Pump, batch: list[list[bytes]], arrivals: _Arrivals) -> None:
        """Queue a batch's requests by tenant, or answer at once those that cannot wait."""
        now = trio.current_time()
        for message in batch:
            if len(message) < 3:
                continue
            *envelope, frame, user = message
            tenant = tenant_of_user(user, self.clients)
            reply = _Reply(pump, envelope, None)
            if tenant is None or tenant not in self._buckets:
                if user:  # authenticated by a key revoked since: say so, do nothing
                    self.revoked += 1
                    reply.request_id = peek_request_id(frame)
                    reply.fail("revoked", "this connection's client key has been revoked")
                else:
                    self.unauthenticated += 1
                continue
            wait = self._buckets.take(tenant, now)  # every request counts, readable or not
            if len(envelope) > 2 or (len(envelope) == 2 and envelope[1] != b""):
                reply.fail("bad_request", "expected one frame after an optional empty delimiter")
            elif wait > 0:
                reply.request_id = peek_request_id(frame)
                reply.error(error_dict("rate_limited", "over the request rate", retry_after=wait))
            elif not arrivals.add(tenant, envelope, frame):
                reply.request_id = peek_request_id(frame)
                reply.error(error_dict("busy", "too many requests waiting", retry_after=1.0))

    def _take(
        self, engine: Engine, pump: Pump, tenant: str, envelope: list[bytes], frame: bytes
    ) -> None:
        """Answer or route one request: decoded here if small, else by its tenant's worker."""
        reply = _Reply(pump, envelope, None)
        try:
            if INLINE_BYTES < len(frame) <= self.settings.sizes.request_bytes:
                self._queue_work(tenant, _Work(reply, frame=frame))
                return
            try:
                request = decode_request(frame, self.settings.sizes)
            except WireError as exc:
                reply.send(encode_wire_error(exc))
                return
            if self._route(engine, tenant, request, reply):
                self._queue_work(tenant, _Work(reply, request))
        except Exception as exc:  # a bug: this request fails, the service goes on
            self.internal_errors += 1
            _internal("dispatch", tenant, exc)
            reply.fail("internal", INTERNAL)

    def _route(self, engine: Engine, tenant: str, request: Request, reply: _Reply) -> bool:
        """Answer the quick operations, queue the submits; True if a worker must run it."""
        reply.request_id = request.id
        op = request.op
        if op == "ping":
            zone = engine.tenants[tenant].timezone
            reply.ok(
                {
                    "pong": True,
                    "time": time.time(),
                    "tenant": tenant,
                    "time_zone": zone,
                    "health": _health_view(engine.health),
                }
            )
        elif op == "events":
            reply.ok({"endpoint": self.events_endpoints[tenant]})
        elif op == "registers":
            reply.ok({"registers": _registers(engine, tenant)})
        elif isinstance(request.args, SubmitArgs):
            self._queue_submits(tenant, reply, [request.args], batch=False)
        elif isinstance(request.args, SubmitBatchArgs):
            self._queue_submits(tenant, reply, request.args.jobs, batch=True)
        else:
            return True
        return False

    def _queue_work(self, tenant: str, work: _Work) -> None:
        try:
            self._lanes[tenant].send_nowait(work)
        except trio.WouldBlock:
            if work.request is None:
                work.reply.request_id = peek_request_id(work.frame)
            work.reply.error(error_dict("busy", "too many requests waiting", retry_after=1.0))

    async def _worker(
        self, engine: Engine, tenant: str, work: trio.MemoryReceiveChannel[_Work]
    ) -> None:
        async with work:
            async for item in work:
                op = "decode" if item.request is None else item.request.op
                try:
                    request = item.request
                    if request is None:
                        request = await self._decode(engine, tenant, item)
                        if request is None or not self._route(engine, tenant, request, item.reply):
                            continue
                    op = request.op
                    await self._run(engine, tenant, request, item.reply)
                except Unavailable as exc:
                    item.reply.error(_unavailable(exc))
                except Exception as exc:
                    self.internal_errors += 1
                    _internal(op, tenant, exc)
                    item.reply.fail("internal", INTERNAL)

    async def _decode(self, engine: Engine, tenant: str, item: _Work) -> Request | None:
        """Decode a big request in a worker thread, one of its tenant's at a time; None (and
        the error answered) if it cannot be read."""
        async with self._heavy[tenant]:
            outcome = await trio.to_thread.run_sync(
                _decode_or_error, item.frame, self.settings.sizes, limiter=engine.heavy
            )
        if isinstance(outcome, WireError):
            item.reply.send(encode_wire_error(outcome))
            return None
        return outcome

    async def _run(self, engine: Engine, tenant: str, request: Request, reply: _Reply) -> None:
        args = request.args
        if isinstance(args, JobRef):
            job = await _find(engine, tenant, args)
            if job is None:
                reply.fail("not_found", "no such job", _ref_path(args))
            elif request.op == "status":
                reply.ok({"job": _job_view(engine, job)})
            else:
                reply.ok(await _receipt(engine, tenant, job))
        elif isinstance(args, ListJobsArgs):
            jobs = await engine.jobs_of(tenant, limit=args.limit + 1, after=args.after)
            more = len(jobs) > args.limit
            jobs = jobs[: args.limit]
            views = [_job_view(engine, j) for j in jobs]
            reply.ok({"jobs": views, "next": jobs[-1].id if more else None})
        elif isinstance(args, ReportArgs):
            if args.register is not None and not _owns(engine, tenant, args.register):
                reply.fail("not_found", "no such register", "register")
                return
            async with self._heavy[tenant]:
                report = await engine.report(
                    tenant, start=args.start, end=args.end, register_id=args.register
                )
            view = attrs.asdict(report)
            text = render_report(report, engine.tenants[tenant].timezone)
            reply.ok({"text": text, "report": view})
        elif isinstance(args, ExportArgs):
            async with self._heavy[tenant]:
                await self._export(engine, tenant, args, reply)
        elif isinstance(args, CancelArgs):
            try:
                job = await engine.cancel(tenant, args.job_id)
            except KeyError:
                reply.fail("not_found", "no such job", "job_id")
            except NotCancellable as exc:
                reply.fail("not_cancellable", str(exc), "job_id")
            else:
                reply.ok({"job": _job_view(engine, job)})
        elif isinstance(args, ShiftArgs):
            shift = engine.open_shift if args.action == "open" else engine.close_shift
            try:
                changed = await shift(tenant, args.register)
            except KeyError:
                reply.fail("not_found", "no such register", "register")
            except LinkLost:
                reply.fail("unavailable", "the register is not connected now", "register")
            except DriverError as exc:
                reply.fail("unavailable", f"the register refused: {exc}", "register")
            else:
                reply.ok({"changed": changed})
        else:  # the dispatcher answers the others itself
            raise AssertionError(f"no worker for {request.op}")

    async def _export(self, engine: Engine, tenant: str, args: ExportArgs, reply: _Reply) -> None:
        """Stream the export in answers of about EXPORT_CHUNK characters, each written in a
        heavy thread (a chunk decodes a few hundred documents), at the pace its client reads:
        a chunk its connection has no room for is held, and the next waits for it."""
        assert reply.request_id is not None
        chunks = await engine.export(tenant, args.form, start=args.start, end=args.end)
        peer, pump = reply.envelope[0], reply.pump
        seq, more = 0, True
        while more:
            text, more = await trio.to_thread.run_sync(_next_chunk, chunks, limiter=engine.heavy)
            reply.send(encode_chunk(reply.request_id, seq, text, more), hold=True)
            seq += 1
            with trio.move_on_after(STREAM_STALL) as stall:
                while more and pump.held(peer):
                    await trio.sleep(0.005)
            if stall.cancelled_caught:
                pump.drop_held(peer)
                return

    # --- submits ---------------------------------------------------------------------------

    def _queue_submits(
        self,
        tenant: str,
        reply: _Reply,
        entries: Sequence[SubmitArgs | WireError],
        *,
        batch: bool,
    ) -> None:
        intake = self._intakes[tenant]
        if intake.entries + len(entries) > MAX_PENDING_SUBMITS:
            reply.error(error_dict("busy", "too many submits waiting", retry_after=1.0))
            return
        intake.works.append(_SubmitWork(reply, entries, batch, [None] * len(entries)))
        intake.entries += len(entries)
        intake.ready.set()

    async def _submitter(self, engine: Engine, tenant: str) -> None:
        """Take the tenant's gathered submits round by round: one submit_many per group."""
        intake = self._intakes[tenant]
        while True:
            await intake.ready.wait()
            intake.ready = trio.Event()
            while intake.works:
                works: list[_SubmitWork] = []
                taken = 0
                while intake.works and taken < SUBMIT_ROUND:
                    work = intake.works.popleft()
                    works.append(work)
                    taken += len(work.entries)
                intake.entries -= taken
                try:
                    await self._submit_round(engine, tenant, works)
                except Exception as exc:  # entries answered before it keep their answers
                    self.internal_errors += 1
                    _internal("submit", tenant, exc)
                for work in works:
                    _answer_submits(work)

    async def _submit_round(self, engine: Engine, tenant: str, works: list[_SubmitWork]) -> None:
        groups: dict[str, list[tuple[_SubmitWork, int, SubmitArgs]]] = {}
        for work in works:
            for i, entry in enumerate(work.entries):
                if isinstance(entry, WireError):
                    work.answers[i] = {"error": entry.as_dict()}
                else:
                    groups.setdefault(entry.group, []).append((work, i, entry))
        # The journal stamps a new job with time.time(); a job older than the round was there
        # before it, so it is a repeat (the engine does not say which it is). Rounds of one
        # tenant never overlap, and ``seen`` names the first answer of a job new in this round.
        before = time.time()
        seen: set[str] = set()
        retries: list[tuple[_SubmitWork, int, SubmitArgs]] = []
        async with trio.open_nursery() as nursery:
            for group, items in groups.items():
                size = max(MIN_LANE, -(-len(items) // SUBMIT_LANES))
                for start in range(0, len(items), size):
                    nursery.start_soon(
                        self._submit_lane,
                        engine,
                        tenant,
                        group,
                        items[start : start + size],
                        seen,
                        retries,
                        before,
                    )
        if retries:  # a repeat is answered even when the queue is full: ask one by one
            async with trio.open_nursery() as nursery:
                for work, i, entry in retries:
                    nursery.start_soon(self._submit_one, engine, tenant, work, i, entry, seen)

    async def _submit_lane(
        self,
        engine: Engine,
        tenant: str,
        group: str,
        items: list[tuple[_SubmitWork, int, SubmitArgs]],
        seen: set[str],
        retries: list[tuple[_SubmitWork, int, SubmitArgs]],
        before: float,
    ) -> None:
        try:
            outcomes = await engine.submit_many(
                tenant, [(e.external_id, e.receipt.receipt) for _, _, e in items], group=group
            )
        except Exception as exc:  # a fault of Kassa's: this lane's entries alone say so
            self.internal_errors += 1
            _internal("submit", tenant, exc)
            for work, i, _ in items:
                work.answers[i] = {"error": error_dict("internal", INTERNAL)}
            return
        for (work, i, entry), outcome in zip(items, outcomes, strict=True):
            if isinstance(outcome, Busy):
                retries.append((work, i, entry))
            else:
                work.answers[i] = _submit_answer(engine, outcome, entry, work, i, seen, before)

    async def _submit_one(
        self,
        engine: Engine,
        tenant: str,
        work: _SubmitWork,
        i: int,
        entry: SubmitArgs,
        seen: set[str],
    ) -> None:
        before = time.time()
        outcome: Job | SubmitError
        try:
            outcome = await engine.submit(
                tenant, entry.external_id, entry.receipt.receipt, group=entry.group
            )
        except SubmitError as exc:
            outcome = exc
        except Exception as exc:  # a fault of Kassa's: this entry alone says so
            self.internal_errors += 1
            _internal("submit", tenant, exc)
            work.answers[i] = {"error": error_dict("internal", INTERNAL)}
            return
        work.answers[i] = _submit_answer(engine, outcome, entry, work, i, seen, before)


def _submit_answer(
    engine: Engine,
    outcome: Job | SubmitError,
    entry: SubmitArgs,
    work: _SubmitWork,
    i: int,
    seen: set[str],
    before: float,
) -> dict[str, Any]:
    """``{"job", "duplicate"}`` or ``{"error"}`` for one submit entry."""
    prefix = f"jobs[{i}]." if work.batch else ""
    if isinstance(outcome, Job):
        duplicate = outcome.id in seen or outcome.created < before
        seen.add(outcome.id)
        return {"job": _job_view(engine, outcome), "duplicate": duplicate}
    return {"error": _submit_error(outcome, entry, prefix)}


def _submit_error(exc: SubmitError, entry: SubmitArgs, prefix: str) -> dict[str, Any]:
    if isinstance(exc, ValidationFailed):
        problems = receipt_problems(entry.receipt, exc.problems, f"{prefix}receipt")
        if not problems:
            return error_dict("validation", str(exc), f"{prefix}receipt")
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        first = problems[0]
        return error_dict("validation", first["message"] + more, first["path"], problems)
    if isinstance(exc, Conflict):
        return error_dict(
            "conflict",
            "the external_id was accepted before with a different receipt",
            f"{prefix}external_id",
        )
    if isinstance(exc, Busy):
        return error_dict("busy", str(exc), retry_after=exc.retry_after)
    if isinstance(exc, Unavailable):
        return _unavailable(exc)
    if isinstance(exc, UnknownGroup):
        return error_dict("bad_request", "no register group of that name", f"{prefix}group")
    if isinstance(exc, JournalBehind):
        return error_dict("unavailable", str(exc))
    _internal("submit", "?", exc)
    return error_dict("internal", INTERNAL)


def _unavailable(exc: Unavailable) -> dict[str, Any]:
    return error_dict("unavailable", str(exc), retry_after=exc.retry_after)


def _health_view(health: Health) -> dict[str, Any]:
    """The engine's health on the wire: ``{"state": "ok"}``, or degraded with its cause."""
    if not health.degraded:
        return {"state": "ok"}
    return {
        "state": "degraded",
        "cause": health.cause,
        "since": health.since,
        "retry_after": health.retry_after,
    }


def _answer_submits(work: _SubmitWork) -> None:
    answers = [
        a if a is not None else {"error": error_dict("internal", INTERNAL)} for a in work.answers
    ]
    if work.batch:
        work.reply.ok({"results": answers})
        return
    (answer,) = answers
    if "error" in answer:
        work.reply.error(answer["error"])
    else:
        work.reply.ok(answer)


# --- operations ---------------------------------------------------------------------------------


def _decode_or_error(frame: bytes, sizes: SizeLimits) -> Request | WireError:
    """:func:`decode_request` for a worker thread: its error as a value."""
    try:
        return decode_request(frame, sizes)
    except WireError as exc:
        return exc


def _next_chunk(chunks: Iterator[str]) -> tuple[str, bool]:
    """About EXPORT_CHUNK characters of an export, and whether more may follow."""
    parts, size = [], 0
    for part in chunks:
        parts.append(part)
        size += len(part)
        if size >= EXPORT_CHUNK:
            return "".join(parts), True
    return "".join(parts), False


def _registers(engine: Engine, tenant: str) -> list[dict[str, Any]]:
    keys: tuple[str, ...] = ("id", "group", "protocol", "state", "fn_number")
    keys += ("fn_expires", "fn_days_left", "ofd_unsent", "ofd_oldest", "ofd_oldest_days")
    return [{k: r[k] for k in keys} for r in engine.register_states(tenant)]


def _owns(engine: Engine, tenant: str, register: str) -> bool:
    return any(r["id"] == register for r in engine.register_states(tenant))


def _ref_path(ref: JobRef) -> str:
    return "job_id" if ref.job_id is not None else "external_id"


async def _find(engine: Engine, tenant: str, ref: JobRef) -> Job | None:
    if ref.job_id is not None:
        return await engine.job(tenant, ref.job_id)
    assert ref.external_id is not None
    return await engine.job_by_external_id(tenant, ref.external_id)


def _job_view(engine: Engine, job: Job) -> dict[str, Any]:
    """A job on the wire, with its tenant's time zone."""
    return job_view(job, engine.tenants[job.tenant].timezone)


async def _receipt(engine: Engine, tenant: str, job: Job) -> dict[str, Any]:
    """A job's receipt: its fiscal data, lines and text once signed, empty before."""
    result = await engine.result(tenant, job.id)
    if result is None:
        return {"job": _job_view(engine, job), "fiscal": None, "lines": [], "text": ""}
    view = await engine.receipt_view(tenant, job.id)
    lines = [] if view is None else [line_view(line) for line in view.lines]
    text = "" if view is None else render_receipt(view, engine.tenants[tenant].timezone)
    fiscal = fiscal_view(result)
    return {"job": _job_view(engine, job), "fiscal": fiscal, "lines": lines, "text": text}


def _bind(socket: zmq.Socket[bytes], endpoint: str) -> str:
    try:
        socket.bind(endpoint)
    except zmq.ZMQError as exc:
        raise ServiceError(f"cannot bind {endpoint}: {exc}") from None
    bound = socket.getsockopt(zmq.LAST_ENDPOINT)
    return bound.decode() if isinstance(bound, bytes) else str(bound)


@asynccontextmanager
async def open_service(settings: ServiceSettings, config: EngineConfig) -> AsyncIterator[Service]:
    """An engine on ``config`` served on ZeroMQ for the life of the block."""
    service = Service(settings, [t.id for t in config.tenants])
    async with Engine.open(config, on_event=service.on_event) as engine:
        service.engine = engine
        async with trio.open_nursery() as nursery:
            await nursery.start(service.run, engine)
            try:
                yield service
            finally:
                nursery.cancel_scope.cancel()
