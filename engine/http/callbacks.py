"""Callbacks (уведомления о результате): a job's outcome POSTed to the URL its submit named.

A front door journals a :class:`~engine.journal.Delivery` when it accepts a job that names a
callback URL (ATOL's ``service.callback_url``), before it answers; a repeat of the submit writes
it again, idempotently, so a crash between the job's commit and the delivery's leaves the client
unanswered and its retry mends it. The :class:`CallbackSender`, a task beside the HTTP server in
the service's nursery, takes every pending delivery whose job is final from the journal, POSTs
the body its API renders (ATOL's report, ...), and journals how it went: ``delivered`` on a 2xx,
else ``pending`` again after a doubling wait, and ``dead`` after the last attempt, with an
``alert.callback_dead`` event. It reads the journal, not memory, so a restart picks up every
delivery where it stood; at most the one in flight at a crash is sent again. A delivery kind
other than an HTTP POST has a transport of its own (``transports``): the buyer's e-mail and SMS
of :mod:`engine.http.mail` go out by the same journal, retries and ``dead`` state.

A kind that is not an HTTP callback has a :data:`Transport` instead (the buyer's e-mail and SMS,
:mod:`engine.http.mail`): the same journal, retries, ``dead`` and restart, another wire.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

import attrs
import httpx
import trio

from engine.journal import FINAL_STATES, Delivery, DeliveryState, Event, Job, Journal

log = logging.getLogger("kassa.http.callbacks")

#: Deliveries taken from the journal at a time, and sent side by side.
BATCH = 64
IN_FLIGHT = 16
#: The longest wait between two attempts, however many came before.
MAX_WAIT = 3600.0


@attrs.frozen
class Outgoing:
    """One callback's request as its API writes it: the body and any headers (a signature)."""

    body: bytes
    headers: Mapping[str, str] = attrs.field(factory=dict)


#: An API's callback body for a final job: ``renderers[api_of(delivery.kind)](job, delivery)``.
Renderer = Callable[[Job, Delivery], Awaitable[Outgoing]]


def api_of(kind: str) -> str:
    """The API of a delivery kind: a kind may name whose it is after a colon
    (``komtet:SHOP_ID``, the shop whose secret signs it)."""
    return kind.partition(":")[0]


#: A delivery sent by other means than an HTTP POST: one attempt, "" if it went out, SKIPPED
#: if the job has nothing to send (journaled ``skipped``), else what went wrong.
Transport = Callable[[Job, Delivery], Awaitable[str]]
SKIPPED = "skip"


def retry_wait(attempts: int, backoff: float) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: backoff, doubling."""
    return min(MAX_WAIT, backoff * float(2 ** min(attempts - 1, 30)))


class CallbackSender:
    """Sends the journal's due deliveries; see the module docstring."""

    def __init__(
        self,
        journal: Journal,
        *,
        attempts: int,
        backoff: float,
        timeout: float,
        clock: Callable[[], float],
    ) -> None:
        self.journal = journal
        self.attempts = attempts
        self.backoff = backoff
        self.timeout = timeout
        self.clock = clock  # unix time, the journal's
        self.renderers: dict[str, Renderer] = {}
        self.transports: dict[str, Transport] = {}
        #: A kind's own number of attempts (the e-mail's ``[smtp] attempts``), else ``attempts``.
        self.kind_attempts: dict[str, int] = {}
        self._watched: set[str] = set()  # jobs with a pending delivery, not yet final
        self._wake = trio.Event()
        self.sent = 0  # attempts made, for tests and benchmarks

    def watch(self, job: Job) -> None:
        """A delivery of ``job`` is (about to be) journaled: send it once the job is final.

        Call it before the next checkpoint after the submit that returned ``job``: the job
        cannot end before then, so its final event is not missed.
        """
        if job.state in FINAL_STATES:
            self._wake.set()
        else:
            self._watched.add(job.id)

    def on_event(self, job: Job) -> None:
        """The engine's notification: a watched job that ended wakes the sender."""
        if job.state in FINAL_STATES and job.id in self._watched:
            self._watched.discard(job.id)
            self._wake.set()

    async def add(self, job: Job, kind: str, url: str) -> Delivery:
        """Journal a delivery of ``job`` (the first one of its kind stays) and watch it."""
        (delivery,) = await self.add_all(job, [(kind, url)])
        return delivery

    async def add_all(self, job: Job, wanted: list[tuple[str, str]]) -> list[Delivery]:
        """Journal several deliveries of ``job``, (kind, url) each, watching it once.

        The job may end while they are written: its event then finds them half written, so
        the sender is woken once more after the last one.
        """
        self.watch(job)
        out = [await self.journal.add_delivery(job.id, kind, url) for kind, url in wanted]
        if job.id not in self._watched:  # it ended (or was sent) meanwhile: look again
            self._wake.set()
        return out

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        for delivery in await self.journal.deliveries(state=DeliveryState.PENDING):
            self._watched.add(delivery.job_id)  # final ones are found by the first look below
        async with httpx.AsyncClient(
            timeout=self.timeout, follow_redirects=False, trust_env=False
        ) as client:
            task_status.started()
            while True:
                self._wake = trio.Event()
                due = await self.journal.due_deliveries(self.clock(), BATCH)
                if due:
                    limiter = trio.CapacityLimiter(IN_FLIGHT)
                    async with trio.open_nursery() as nursery:
                        for delivery in due:
                            nursery.start_soon(self._attempt, client, delivery, limiter)
                    continue
                soonest = await self.journal.next_delivery_at()
                wait = float("inf") if soonest is None else max(0.0, soonest - self.clock())
                with trio.move_on_after(wait):
                    await self._wake.wait()

    async def _attempt(
        self, client: httpx.AsyncClient, delivery: Delivery, limiter: trio.CapacityLimiter
    ) -> None:
        async with limiter:
            error = await self._post(client, delivery)
        self.sent += 1
        limit = self.kind_attempts.get(api_of(delivery.kind), self.attempts)
        if not error or error == SKIPPED or delivery.attempts + 1 >= limit:
            self._watched.discard(delivery.job_id)
        if error == SKIPPED:
            await self.journal.delivery_tried(delivery, DeliveryState.SKIPPED, 0.0, "no receipt")
            return
        if not error:
            await self.journal.delivery_tried(delivery, DeliveryState.DELIVERED, 0.0, "")
            return
        attempts = delivery.attempts + 1
        if attempts < limit:
            next_at = self.clock() + retry_wait(attempts, self.backoff)
            await self.journal.delivery_tried(delivery, DeliveryState.PENDING, next_at, error)
            return
        job = await self.journal.job(delivery.job_id)
        message = (
            f"the {delivery.kind} callback of job {delivery.job_id} failed {attempts} times, "
            f"the last with {error}; it is not tried again"
        )
        log.warning("%s", message)
        alert = Event(
            "alert.callback_dead",
            message,
            tenant=None if job is None else job.tenant,
            job_id=delivery.job_id,
        )
        await self.journal.delivery_tried(delivery, DeliveryState.DEAD, 0.0, error, alert)

    async def _post(self, client: httpx.AsyncClient, delivery: Delivery) -> str:
        """One attempt: "" if the receiver took it, else what went wrong (no URL, no body)."""
        job = await self.journal.job(delivery.job_id)
        transport = self.transports.get(api_of(delivery.kind))
        if job is not None and transport is not None:
            try:
                return await transport(job, delivery)
            except Exception as exc:  # a bug: the attempt fails, the sender goes on
                log.exception("sending the %s delivery of job %s", delivery.kind, job.id)
                return f"internal error {type(exc).__name__}"
        renderer = self.renderers.get(api_of(delivery.kind))
        if job is None or renderer is None:
            return f"nothing renders {delivery.kind!r} callbacks"
        try:
            outgoing = await renderer(job, delivery)
        except Exception as exc:  # a bug: the attempt fails, the sender goes on
            log.exception("rendering the %s callback of job %s", delivery.kind, job.id)
            return f"internal error {type(exc).__name__}"
        headers = {"Content-Type": "application/json; charset=utf-8", **outgoing.headers}
        try:
            response = await client.post(delivery.url, content=outgoing.body, headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"[:200]
        if 200 <= response.status_code < 300:
            return ""
        return f"HTTP {response.status_code}"
