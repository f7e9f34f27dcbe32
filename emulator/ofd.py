"""The OFD model (оператор фискальных данных) and the register's OFD transport module.

:class:`OfdServer` is an emulated OFD: it reads KKT → OFD messages with the SERVER side of
:class:`protocols.ofd.OfdConnection`, and answers each document with a container carrying an
operator ack (подтверждение оператора, document 7). :class:`OfdSender` is the register's side:
it sends the ФН's unsent documents, oldest first, and hands each ack to the ФН
(:meth:`emulator.fn.FiscalStorage.acknowledge`). Both run on trio, on the real clock or on
trio's MockClock (then :meth:`OfdServer.memory_connector` replaces sockets).

Outages (недоступность ОФД) are intervals of trio's clock, counted from a schedule's epoch:
while one lasts, the OFD *refuses connections*. In memory, the connector raises
:class:`ConnectionRefusedError`; over TCP the listener stays open (closing and reopening it
would race with the port), so a connection is accepted and closed at once, before a byte is
read. A connection already open when an outage starts is closed, unanswered, at its next
message. Every refusal is logged.

Where the references (ffd.md §2.8, §6; registers.md §3.5, §4.4) are silent, this module assumes:

- A container whose CRC is wrong gets no answer: the OFD logs it and closes the connection
  (the sender sees a closed connection and retries). So does any message that breaks the
  session protocol.
- A document that does not decode, or whose code, 1040 or 1041 differ from its container's,
  is answered with response code 14 (ФЛК, format-logical control, yandex ``FLK_ERROR``).
  Tests may script other codes per FD number (``answers``).
- The ack has no 1078 ФПО and no trailer (the yandex mock omits both: there is no crypto
  here), and its container's message type is 0x5A (OFD → KKT).
- The emulated ФН forms no ФПС trailer and no service data 2, so the sender's containers carry
  none: the container's document is exactly :meth:`~emulator.fn.FiscalStorage.read_document`.
- The sender keeps one connection open while documents are waiting, one request at a time,
  and closes it when the queue is empty. An ack with a response code other than 0 is not
  passed to the ФН: the document stays unsent and is sent again after the retry interval.
- The sender waits ``reply_timeout`` (300 s, the ФН's OFD receipt timer, registers.md §3.5)
  for a connection and for each ack.
- A header-only message (body length 0) is answered with a header-only message.

Determinism: under MockClock a run is a function of its inputs and ``seed``, provided no two
tasks that touch the same ФН or OFD wake at the same instant: trio runs tasks woken together
in a random order (on purpose, to shake out bugs). The jitter makes such ties unlikely.
"""

from __future__ import annotations

import random
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import NoReturn

import attrs
import trio
import trio.testing

from emulator.fn import FiscalStorage, FnModelError
from protocols.ofd import (
    NEED_DATA,
    OFD_TO_KKT,
    P_VERSION_FFD_105,
    ConnectionClosed,
    Container,
    Message,
    OfdConnection,
    OfdError,
    OperatorAck,
    Role,
)
from protocols.tlv import TlvError, decode_document

__all__ = [
    "DEFAULT_OFD_INN",
    "FLK_ERROR",
    "Clock",
    "Connect",
    "Delivery",
    "OfdSender",
    "OfdServer",
    "Outage",
    "OutageSchedule",
    "Refusal",
    "SendAttempt",
    "WallClock",
]

#: 1017 ИНН ОФД of the emulated operator (the registration's ``ofd_inn`` in the tests).
DEFAULT_OFD_INN = "7709364346"
#: Response code 1022 for a document that fails format-logical control (ФЛК), yandex FLK_ERROR.
FLK_ERROR = 14
_RECEIVE_SIZE = 65536

#: A wall clock: the current local time, naive (the OFD's 1012 in its acks).
Clock = Callable[[], datetime]
#: Opens one connection to the OFD.
Connect = Callable[[], Awaitable[trio.abc.Stream]]


@attrs.frozen
class WallClock:
    """Wall time read off trio's clock: ``start`` at trio time ``epoch``.

    Under MockClock this is simulated wall time, so 31 days of outage pass in milliseconds.
    """

    start: datetime
    epoch: float = 0.0

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=trio.current_time() - self.epoch)


# --- outages ----------------------------------------------------------------------------------


def _seconds(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{attribute.name}: {value!r} is not a time in seconds, ≥ 0")


@attrs.frozen
class Outage:
    """одна недоступность ОФД: the OFD is down from ``start`` (included) to ``end`` (excluded).

    Both are seconds of trio's clock after the schedule's epoch.
    """

    start: float = attrs.field(validator=_seconds)
    end: float = attrs.field(validator=_seconds)

    def __attrs_post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"an outage ends after it starts, not {self.start}..{self.end}")

    def covers(self, elapsed: float) -> bool:
        return self.start <= elapsed < self.end


_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_TIME = r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*"
_INTERVAL = re.compile(_TIME + r"([-+])" + _TIME)


def _duration(number: str, unit: str) -> float:
    value = float(number) * _UNITS[unit]
    return int(value) if value.is_integer() else value


@attrs.frozen
class OutageSchedule:
    """The OFD's outages, counted from trio time ``epoch``; empty means always up."""

    outages: tuple[Outage, ...] = ()
    epoch: float = 0.0

    @classmethod
    def parse(cls, spec: str, *, epoch: float = 0.0) -> OutageSchedule:
        """Read ``"START-END, START+DURATION, …"``; times take a unit s, m, h or d (default s).

        ``"1h-2h, 3d+31d"``: down from 1 h to 2 h, and for 31 days from day 3.

        Raises:
            ValueError: a part that is not an interval, naming it.
        """
        outages = []
        for part in spec.split(","):
            if not part.strip():
                continue
            match = _INTERVAL.fullmatch(part)
            if match is None:
                raise ValueError(f"outage {part.strip()!r} is not START-END or START+DURATION")
            start = _duration(match[1], match[2])
            other = _duration(match[4], match[5])
            outages.append(Outage(start, start + other if match[3] == "+" else other))
        return cls(tuple(sorted(outages, key=lambda outage: outage.start)), epoch)

    def down(self, now: float) -> bool:
        """Whether the OFD is down at trio time ``now``."""
        elapsed = now - self.epoch
        return any(outage.covers(elapsed) for outage in self.outages)


# --- the OFD ----------------------------------------------------------------------------------


@attrs.frozen
class Delivery:
    """A document the OFD received (принятый документ) and the response code it answered."""

    fd_number: int  # 1040, from the container
    fn_number: str  # 1041, from the container
    document_type: int  # the document code (1, 2, 3, 5 …)
    at: datetime  # the OFD's wall time, its ack's 1012
    response_code: int  # 1022: 0, or e.g. 14 ФЛК
    document: bytes  # the document TLV as it arrived


@attrs.frozen
class Refusal:
    """A connection or message the OFD dropped without an answer, and why."""

    at: datetime
    reason: str  # "outage" or "bad message: …" or "connection lost: …"


class OfdServer:
    """An emulated OFD: acks every well-formed document, refuses during outages.

    ``answers`` scripts response codes per FD number: the n-th delivery of that document gets
    the n-th code, and 0 once they run out (``{2: (14,)}``: FD 2 fails ФЛК once).
    """

    def __init__(
        self,
        clock: Clock,
        *,
        inn: str = DEFAULT_OFD_INN,
        outages: OutageSchedule = OutageSchedule(),
        answers: Mapping[int, Sequence[int]] = MappingProxyType({}),
    ) -> None:
        self.clock = clock
        self.inn = inn
        self.outages = outages
        self.forced_down = False  # fault injection: down until set back, whatever the schedule
        self.log: list[Delivery | Refusal] = []
        self._answers = {fd: list(codes) for fd, codes in answers.items()}

    @property
    def deliveries(self) -> list[Delivery]:
        return [entry for entry in self.log if isinstance(entry, Delivery)]

    @property
    def refusals(self) -> list[Refusal]:
        return [entry for entry in self.log if isinstance(entry, Refusal)]

    def down(self) -> bool:
        """Whether the OFD refuses connections now."""
        return self.forced_down or self.outages.down(trio.current_time())

    def _now(self) -> datetime:
        return self.clock().replace(microsecond=0)

    def _refuse(self, reason: str) -> None:
        self.log.append(Refusal(self._now(), reason))

    async def serve_stream(self, stream: trio.abc.Stream) -> None:
        """Serve one connection until the KKT closes it, an outage starts, or a bad message."""
        async with stream:
            connection = OfdConnection(Role.SERVER)
            try:
                while True:
                    event = connection.next_event()
                    if event is NEED_DATA:
                        if self.down():
                            self._refuse("outage")
                            return
                        connection.receive_data(bytes(await stream.receive_some(_RECEIVE_SIZE)))
                    elif isinstance(event, ConnectionClosed):
                        return
                    elif isinstance(event, Message):
                        if self.down():
                            self._refuse("outage")
                            return
                        await stream.send_all(connection.send(self._answer(event)))
            except OfdError as exc:
                self._refuse(f"bad message: {exc}")
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                self._refuse(f"connection lost: {exc!r}")

    def _answer(self, message: Message) -> Message:
        header, container = message.header, message.container
        if container is None:
            return Message.wrap(None, client_id=header.client_id, p_version=header.p_version)
        at = self._now()
        code = self._response_code(container)
        self.log.append(
            Delivery(
                fd_number=container.fd_number,
                fn_number=container.fn_number,
                document_type=container.document_type,
                at=at,
                response_code=code,
                document=container.document,
            )
        )
        ack = OperatorAck(
            ofd_inn=self.inn,
            fn_number=container.fn_number.ljust(16),
            fd_number=container.fd_number,
            at=at,
            response_code=code,
        )
        reply = Container(
            document_type=7,
            fn_number=container.fn_number,
            fd_number=container.fd_number,
            document=ack.to_tlv(),
            message_type=OFD_TO_KKT,
        )
        return Message.wrap(reply, client_id=header.client_id, p_version=header.p_version)

    def _response_code(self, container: Container) -> int:
        try:
            document = decode_document(container.document)
        except TlvError:
            return FLK_ERROR
        fields = document.fields
        if (
            document.code != container.document_type
            or fields.get(1040) != container.fd_number
            or fields.get(1041) != container.fn_number
        ):
            return FLK_ERROR
        scripted = self._answers.get(container.fd_number)
        return scripted.pop(0) if scripted else 0

    def memory_connector(self, nursery: trio.Nursery) -> Connect:
        """A ``connect()`` over in-memory streams (for MockClock), serving in ``nursery``.

        During an outage it raises :class:`ConnectionRefusedError`, as a refused TCP connect.
        """

        async def connect() -> trio.abc.Stream:
            if self.down():
                self._refuse("outage")
                raise ConnectionRefusedError("the OFD is down")
            client, server = trio.testing.memory_stream_pair()
            nursery.start_soon(self.serve_stream, server)
            return client

        return connect

    async def serve_tcp(
        self,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> NoReturn:
        """Listen on ``host``:``port`` (0: any free port) and serve until cancelled.

        ``await nursery.start(ofd.serve_tcp)`` returns the port it listens on.
        """
        listeners = await trio.open_tcp_listeners(port, host=host)
        task_status.started(int(listeners[0].socket.getsockname()[1]))
        await trio.serve_listeners(self.serve_stream, listeners)


# --- the register's side ----------------------------------------------------------------------


@attrs.frozen
class SendAttempt:
    """One try at one document: ``outcome`` is "acknowledged" or what went wrong."""

    at: float  # trio time
    fd_number: int | None  # None when the connection failed before a document went out
    outcome: str


#: Failures the sender outlives: it waits the retry interval and tries again.
_TRANSIENT = (
    OfdError,
    FnModelError,
    OSError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    trio.TooSlowError,
)


class OfdSender:
    """The register's OFD transport (транспортный модуль ККТ): drains the ФН's unsent queue.

    Run :meth:`run` in a nursery the caller owns; it never returns. Documents go oldest
    first, byte for byte as the ФН archived them; each good ack is passed to the ФН. Retries
    wait ``retry_interval`` × a factor drawn uniformly from ``[1 - jitter, 1 + jitter]`` by a
    ``random.Random(seed)``, so a run reproduces exactly.
    """

    def __init__(
        self,
        fn: FiscalStorage,
        connect: Connect,
        *,
        retry_interval: float = 60.0,
        poll_interval: float | None = None,
        reply_timeout: float = 300.0,
        jitter: float = 0.0,
        seed: int = 0,
        p_version: bytes = P_VERSION_FFD_105,
    ) -> None:
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter is a fraction in [0, 1), not {jitter}")
        self.fn = fn
        self.connect = connect
        self.retry_interval = retry_interval
        self.poll_interval = retry_interval if poll_interval is None else poll_interval
        self.reply_timeout = reply_timeout
        self.jitter = jitter
        self.p_version = p_version
        self.attempts: list[SendAttempt] = []
        self.acks: list[OperatorAck] = []
        self._random = random.Random(seed)
        self._wakeup = trio.Event()
        self._current: int | None = None  # the FD number in flight, for the log

    def wake(self) -> None:
        """A new document is in the ФН: send now rather than at the next poll."""
        self._wakeup.set()

    async def run(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> NoReturn:
        """Send while the ФН has unsent documents, else wait for :meth:`wake` or the poll."""
        task_status.started()
        while True:
            if not self.fn.unsent():
                with trio.move_on_after(self.poll_interval):
                    await self._wakeup.wait()
                self._wakeup = trio.Event()
                continue
            try:
                await self._drain()
            except _TRANSIENT as exc:
                self.attempts.append(SendAttempt(trio.current_time(), self._current, repr(exc)))
                delay = self.retry_interval * self._random.uniform(1 - self.jitter, 1 + self.jitter)
                await trio.sleep(delay)

    async def _drain(self) -> None:
        """Send every unsent document over one connection."""
        self._current = None
        with trio.fail_after(self.reply_timeout):
            stream = await self.connect()
        async with stream:
            connection = OfdConnection(Role.CLIENT)
            while unsent := self.fn.unsent():
                self._current = unsent[0]
                await self._send(stream, connection, unsent[0])
                self.attempts.append(SendAttempt(trio.current_time(), unsent[0], "acknowledged"))
            self._current = None

    async def _send(self, stream: trio.abc.Stream, connection: OfdConnection, fd: int) -> None:
        document = self.fn.read_document(fd)
        container = Container(
            document_type=int.from_bytes(document[:2], "little"),
            fn_number=self.fn.number,
            fd_number=fd,
            document=document,
        )
        message = Message.wrap(container, client_id=self.fn.number, p_version=self.p_version)
        await stream.send_all(connection.send(message))
        with trio.fail_after(self.reply_timeout):
            reply = await _receive(stream, connection)
        ack = self._check(reply, fd)
        self.fn.acknowledge(fd)
        self.acks.append(ack)

    def _check(self, reply: Message, fd: int) -> OperatorAck:
        """The ack in ``reply`` if it is document 7 for this ФН and FD, with code 0."""
        container = reply.container
        if container is None or container.document_type != 7:
            raise OfdError("the reply carries no operator ack", "ack")
        ack = OperatorAck.from_tlv(container.document)
        if (ack.fn_number.strip(), ack.fd_number) != (self.fn.number, fd) or (
            container.fn_number,
            container.fd_number,
        ) != (self.fn.number, fd):
            raise OfdError(f"the ack is for ФН {ack.fn_number} FD {ack.fd_number}", "ack")
        if ack.response_code != 0:
            raise OfdError(f"the OFD answered code {ack.response_code}", "ack/1068/1022")
        return ack


async def _receive(stream: trio.abc.Stream, connection: OfdConnection) -> Message:
    """The next message; the OFD closing the connection instead is an OfdError."""
    while True:
        event = connection.next_event()
        if isinstance(event, Message):
            return event
        data = bytes(await stream.receive_some(_RECEIVE_SIZE))
        if not data and not connection.buffered:
            raise OfdError("the OFD closed the connection", "reply")
        connection.receive_data(data)
