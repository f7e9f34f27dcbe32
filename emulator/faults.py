"""Fault injection (внесение неисправностей): a broken line, lost power, a ФН in trouble.

A fault plan is read from a small spec (``kassa emulator serve --faults SPEC``) and applied
per register by :class:`RegisterFaults`: :class:`FaultyStream` breaks the link,
:class:`FaultyRegister` (Shtrih) and :class:`FaultyAtolRegister` (ATOL) lose power around ФН
commits and slow down, :func:`run_schedule`
puts the ФН, the shift and the OFD into trouble at scheduled times. Every fault injected is
recorded in a :class:`FaultLog` with trio's time (simulated time under MockClock).

The spec language: items separated by commas, each ``KIND[:VALUE][@WHEN][#REGISTER]``.

=====================  =============================================================
``drop:P``             each byte sent or received is lost with probability P
``corrupt:P``          each byte sent or received has bits flipped with probability P
``delay:P@DUR``        each write is held back DUR first, with probability P
``disconnect:P``       each write is cut partway and the connection closed, probability P
``disconnect@T``       the first write at or after T is cut so
``power-before:P``     power drops just before a ФН commit, probability P per commit
``power-after:P``      power drops just after a ФН commit (the answer is lost)
``power-before@T``     the first commit at or after T (``power-after@T`` likewise)
``slow:Fx[@WINDOW]``   every command takes F times as long (always, or in WINDOW)
``fn-full@T``          the ФН archive is full from T on (06h to new work)
``shift-expired@T``    the shift open at T is over 24 h old from T on (4Eh, ФН 16h)
``ofd-down@WINDOW``    the OFD refuses connections in WINDOW (``OfdServer.forced_down``)
=====================  =============================================================

Times are a number with a unit ``ms``, ``s`` (the default), ``m``, ``h`` or ``d``, counted
from the epoch of :class:`RegisterFaults` (when the fleet starts). A WINDOW is ``T`` (from T
on), ``T+DUR`` or ``T-END``. ``#N`` applies an item to register N only (0-based); without it,
to every register. Example: ``drop:0.01,delay:0.02@50ms,power-after:0.002,ofd-down@2h+6h``.

Choices where the references are silent:

- Power loss before a commit: a real ФН forms a document atomically at its 16h/04h command;
  the receipt in progress (opened by 15h, filled by 07h) lives in volatile memory and is gone
  when power returns. So :func:`power_off` leaves no open document in the ФН, no open receipt
  in the register, nothing printing, and the archive and counters as they were: the last FD
  is unchanged. The shift stays open (it is a ФН state, kept in flash).
- Power loss after a commit: the document is archived with its FD number and fiscal sign
  and queued for the OFD; the register dies before its answer leaves, so the host sees the
  connection drop. :meth:`FiscalStorage.read_document` and FF0Ah/FF3Ah read it back.
- A power loss drops the connection that carried the command (the register's side closes);
  other connections to the same register are not cut (a known gap), though they find the
  register's state after the power loss.
- Commits are FF45h and 85h with a receipt open, E0h and 41h on Shtrih; 4Ah with a (non-test)
  receipt open, 9Ah and 5Ah on ATOL. ``power-before`` draws once per such command,
  ``power-after`` once per command that grew the archive. An ATOL register comes back in the
  select mode (0) with an empty task buffer (volatile memory): the host finds its task
  unknown (B3) and reads the ФН to learn whether the document was formed.
- A corrupted byte is XOR-ed with a random non-zero byte. Delay applies to writes only: a
  delay inside a read would be cut by the reader's byte timeout and turn into a drop.
- "ФН full" lowers :attr:`FnLimits.archive_capacity` to the documents already archived;
  "shift expired" moves the open shift's opening time back by ``max_shift`` + 1 minute (the
  archived opening report keeps its real time). Moving the register's clock instead would
  trip the ФН's clock-jump rule (17h), which is a different fault.
- Randomness: one ``random.Random`` per register for power and one per connection for the
  link, seeded from the run's seed, the register and the connection's ordinal, so a run
  under MockClock reproduces exactly.
"""

from __future__ import annotations

import random
import re
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, Literal, NoReturn

import attrs
import trio

from emulator.atol import AtolRegister, request_code
from emulator.atol import serve_connection as serve_atol_connection
from emulator.fn import FiscalResult, FiscalStorage
from emulator.ofd import OfdServer
from emulator.shtrih import ShtrihRegister, serve_connection
from protocols.atol import commands as atol
from protocols.atol.taskbuffer import TaskBuffer
from protocols.documents.ffd import receipt_to_tags
from protocols.documents.model import CorrectionReceipt, Receipt
from protocols.shtrih import commands as c
from protocols.shtrih.errors import ShtrihError
from protocols.tlv import encode

__all__ = [
    "ATOL_COMMIT_COMMANDS",
    "COMMIT_COMMANDS",
    "KINDS",
    "FaultEvent",
    "FaultLog",
    "FaultPlan",
    "FaultRule",
    "FaultyAtolRegister",
    "FaultyRegister",
    "FaultyStream",
    "PowerLoss",
    "PowerLost",
    "RegisterFaults",
    "attach_faults",
    "expire_shift",
    "fill_fn",
    "fiscalize_with_power_loss",
    "parse_faults",
    "power_off",
    "run_schedule",
    "serve_faulty_connection",
    "set_ofd_down",
]

#: Commands whose execution forms a ФН document (a commit).
COMMIT_COMMANDS = frozenset({0x85, 0xFF45, 0xE0, 0x41})
_RECEIPT_COMMITS = frozenset({0x85, 0xFF45})
#: ATOL commands that form a ФН document: close receipt (4Ah), open shift (9Ah), Z (5Ah).
ATOL_COMMIT_COMMANDS = frozenset({b"\x4a", b"\x9a", b"\x5a"})

#: A register fault injection serves, in either protocol.
Register = ShtrihRegister | AtolRegister

#: Kinds that take a probability (``KIND:P``).
_RATES = frozenset({"drop", "corrupt", "delay", "disconnect", "power-before", "power-after"})
#: Kinds that may be scheduled once (``KIND@T``).
_ONE_SHOT = frozenset({"disconnect", "power-before", "power-after"})
_STATES = frozenset({"fn-full", "shift-expired", "ofd-down"})
KINDS = _RATES | _STATES | {"slow"}

_UNITS = {"ms": 0.001, "s": 1.0, "": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_TIME = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?")
_ITEM = re.compile(
    r"(?P<kind>[a-z][a-z-]*)(?::(?P<value>[^@#]*))?(?:@(?P<when>[^#]*))?(?:#(?P<reg>[^#]*))?"
)


# --- the plan -------------------------------------------------------------------------------


@attrs.frozen
class FaultRule:
    """One item of a spec: a kind, a rate or a time, and the register it is for."""

    kind: str
    probability: float | None = None  # per byte, write or commit
    at: float | None = None  # seconds after the epoch: a one-shot time or a window's start
    until: float | None = None  # a window's end, None for "from then on"
    value: float | None = None  # delay in seconds, or the slow factor
    register: int | None = None  # None: every register

    def covers(self, elapsed: float) -> bool:
        """Whether a window rule is in force ``elapsed`` seconds after the epoch."""
        start = 0.0 if self.at is None else self.at
        return start <= elapsed and (self.until is None or elapsed < self.until)


@attrs.frozen
class FaultPlan:
    """The faults of a run: the spec's rules, in the spec's order."""

    rules: tuple[FaultRule, ...] = ()

    def for_register(self, index: int) -> FaultPlan:
        """The rules that apply to register ``index``."""
        return FaultPlan(tuple(r for r in self.rules if r.register in (None, index)))

    def rates(self, kind: str) -> tuple[FaultRule, ...]:
        return tuple(r for r in self.rules if r.kind == kind and r.probability is not None)

    def probability(self, kind: str) -> float:
        """The chance that at least one ``kind`` rate rule fires on one draw."""
        miss = 1.0
        for rule in self.rates(kind):
            assert rule.probability is not None
            miss *= 1.0 - rule.probability
        return 1.0 - miss

    def scheduled(self, kind: str) -> tuple[FaultRule, ...]:
        """The timed rules of ``kind`` (probability None), earliest first."""
        timed = (r for r in self.rules if r.kind == kind and r.probability is None)
        return tuple(sorted(timed, key=lambda r: r.at or 0.0))

    def slow_factor(self, elapsed: float) -> float:
        """The product of the slow factors in force ``elapsed`` seconds after the epoch."""
        factor = 1.0
        for rule in self.rules:
            if rule.kind == "slow" and rule.value is not None and rule.covers(elapsed):
                factor *= rule.value
        return factor


def _time(text: str, part: str) -> float:
    match = _TIME.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"fault {part!r}: {text.strip()!r} is not a time like 50ms, 3h or 2.5")
    return float(match[1]) * _UNITS[match[2] or ""]


def _window(text: str, part: str) -> tuple[float, float | None]:
    for sign in "+-":
        if sign in text:
            start_text, other_text = text.split(sign, 1)
            start, other = _time(start_text, part), _time(other_text, part)
            end = start + other if sign == "+" else other
            if end <= start:
                raise ValueError(f"fault {part!r}: the window ends before it starts")
            return start, end
    return _time(text, part), None


def _probability(text: str, part: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0 or not re.fullmatch(r"[0-9.eE+-]+", text):
        raise ValueError(f"fault {part!r}: {text!r} is not a probability from 0 to 1")
    return value


def _rule(part: str) -> FaultRule:
    match = _ITEM.fullmatch(part)
    if match is None:
        raise ValueError(f"fault {part!r} is not KIND[:VALUE][@WHEN][#REGISTER]")
    kind, value, when, reg = match["kind"], match["value"], match["when"], match["reg"]
    if kind not in KINDS:
        raise ValueError(
            f"fault {part!r}: unknown kind {kind!r}; known: {', '.join(sorted(KINDS))}"
        )
    register = None
    if reg is not None:
        if not reg.isdigit():
            raise ValueError(f"fault {part!r}: #{reg} is not a register number")
        register = int(reg)
    if kind == "delay":
        if value is None or when is None:
            raise ValueError(f"fault {part!r}: delay is delay:P@DURATION")
        return FaultRule(
            kind, _probability(value, part), value=_time(when, part), register=register
        )
    if kind == "slow":
        if value is None:
            raise ValueError(f"fault {part!r}: slow is slow:FACTORx[@WINDOW]")
        try:
            factor = float(value.removesuffix("x"))
        except ValueError:
            factor = 0.0
        if not factor > 0:
            raise ValueError(f"fault {part!r}: {value!r} is not a factor like 2x")
        at, until = _window(when, part) if when is not None else (None, None)
        return FaultRule(kind, at=at, until=until, value=factor, register=register)
    if kind in _STATES:
        if value is not None or when is None:
            raise ValueError(f"fault {part!r}: {kind} takes a time, {kind}@T")
        at, until = _window(when, part)
        if until is not None and kind != "ofd-down":
            raise ValueError(f"fault {part!r}: {kind} takes a time, not a window")
        return FaultRule(kind, at=at, until=until, register=register)
    if value is not None and when is None:
        return FaultRule(kind, _probability(value, part), register=register)
    if value is None and when is not None and kind in _ONE_SHOT:
        return FaultRule(kind, at=_time(when, part), register=register)
    shapes = f"{kind}:P or {kind}@T" if kind in _ONE_SHOT else f"{kind}:P"
    raise ValueError(f"fault {part!r}: write {shapes}")


def parse_faults(spec: str) -> FaultPlan:
    """Read a fault spec (see the module docstring); an empty spec injects nothing.

    Raises:
        ValueError: a bad item, named in the message.
    """
    parts = [part.strip() for part in spec.split(",")]
    if spec.strip() and not all(parts):
        raise ValueError(f"faults {spec!r}: an empty item between commas")
    return FaultPlan(tuple(_rule(part) for part in parts if part))


# --- the log --------------------------------------------------------------------------------


@attrs.frozen
class FaultEvent:
    """One injected fault: when (trio time), on which register, what, and the particulars."""

    at: float
    register: int
    kind: str
    detail: str


class FaultLog(list[FaultEvent]):
    """Every fault injected in a run, in the order injected."""

    def record(self, register: int, kind: str, detail: str) -> FaultEvent:
        event = FaultEvent(trio.current_time(), register, kind, detail)
        self.append(event)
        return event

    def of_kind(self, kind: str) -> list[FaultEvent]:
        return [event for event in self if event.kind == kind]


# --- the link -------------------------------------------------------------------------------


class FaultyStream(trio.abc.Stream):
    """A stream that loses, garbles and holds back bytes, and hangs up mid-frame.

    ``due`` answers whether a scheduled one-shot fault of a kind is due now (and consumes it);
    :class:`RegisterFaults` shares one across a register's connections.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        plan: FaultPlan,
        *,
        rng: random.Random,
        log: FaultLog,
        register: int = 0,
        due: Callable[[str], bool] | None = None,
    ) -> None:
        self.stream = stream
        self._rng = rng
        self._log = log
        self._register = register
        self._due = due
        self._drop = plan.probability("drop")
        self._corrupt = plan.probability("corrupt")
        self._disconnect = plan.probability("disconnect")
        self._delays = plan.rates("delay")
        self.closed = False

    def _garble(self, data: bytes, direction: str) -> bytes:
        if not (self._drop or self._corrupt):
            return data
        out = bytearray()
        rng = self._rng
        for index, byte in enumerate(data):
            if self._drop and rng.random() < self._drop:
                self._log.record(
                    self._register, "drop", f"{direction} byte {index} of {len(data)}: {byte:02X}"
                )
                continue
            if self._corrupt and rng.random() < self._corrupt:
                bad = byte ^ rng.randrange(1, 256)
                self._log.record(
                    self._register,
                    "corrupt",
                    f"{direction} byte {index} of {len(data)}: {byte:02X} -> {bad:02X}",
                )
                byte = bad
            out.append(byte)
        return bytes(out)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self.closed:
            raise trio.ClosedResourceError("the faulty stream is closed")
        data = bytes(data)
        if not data:
            return
        for rule in self._delays:
            assert rule.probability is not None and rule.value is not None
            if self._rng.random() < rule.probability:
                self._log.record(self._register, "delay", f"{len(data)} bytes by {rule.value} s")
                await trio.sleep(rule.value)
        cut = (self._disconnect and self._rng.random() < self._disconnect) or (
            self._due is not None and self._due("disconnect")
        )
        if cut:
            keep = self._rng.randrange(len(data))
            self._log.record(
                self._register, "disconnect", f"after {keep} of {len(data)} bytes sent"
            )
            try:
                if keep:
                    await self.stream.send_all(self._garble(data[:keep], "sent"))
            finally:
                await self.aclose()
            raise trio.BrokenResourceError("disconnected mid-frame (fault injected)")
        garbled = self._garble(data, "sent")
        if garbled:
            await self.stream.send_all(garbled)

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        while True:
            if self.closed:
                raise trio.ClosedResourceError("the faulty stream is closed")
            data = bytes(await self.stream.receive_some(max_bytes))
            if not data:
                return b""
            garbled = self._garble(data, "received")
            if garbled:  # b"" would read as the end of the stream
                return garbled

    async def aclose(self) -> None:
        self.closed = True
        await self.stream.aclose()


# --- power ----------------------------------------------------------------------------------


class PowerLost(Exception):
    """The register lost power ``when`` ("before" or "after") a ФН commit."""

    def __init__(self, when: Literal["before", "after"], fd_number: int | None = None) -> None:
        what = "the ФН commit" if fd_number is None else f"the ФН commit of FD {fd_number}"
        super().__init__(f"power lost {when} {what}")
        self.when = when
        self.fd_number = fd_number  # the document archived, for "after"


class PowerLoss:
    """Decides when power drops around ФН commits: by rate, or once at scheduled times.

    ``before_commit``/``after_commit`` raise :class:`PowerLost` (and log it) when it drops;
    the caller then leaves the device as power-on finds it (:func:`power_off`).
    """

    def __init__(
        self,
        plan: FaultPlan,
        *,
        rng: random.Random,
        log: FaultLog,
        register: int = 0,
        due: Callable[[str], bool] | None = None,
    ) -> None:
        self._before = plan.probability("power-before")
        self._after = plan.probability("power-after")
        self._rng = rng
        self._log = log
        self._register = register
        self._due = due

    def _fires(self, kind: str, probability: float) -> bool:
        hit = bool(probability) and self._rng.random() < probability
        return hit or (self._due is not None and self._due(kind))

    def before_commit(self, what: str = "") -> None:
        if self._fires("power-before", self._before):
            self._log.record(self._register, "power-before", f"{what} not committed".strip())
            raise PowerLost("before")

    def after_commit(self, fd_number: int) -> None:
        if self._fires("power-after", self._after):
            self._log.record(self._register, "power-after", f"FD {fd_number} archived, answer lost")
            raise PowerLost("after", fd_number)


def power_off(target: FiscalStorage | ShtrihRegister | AtolRegister) -> None:
    """Leave a ФН (and its register) as power-on finds them: nothing half-done survives.

    An ATOL register also comes back in the select mode (0) with an empty task buffer: the
    buffer lives in volatile memory, so a task whose answer was lost is unknown (B3) after.
    """
    if isinstance(target, ShtrihRegister):
        target.receipt = None
        target.print_until = 0.0
        target.fn.cancel_document()
    elif isinstance(target, AtolRegister):
        target.receipt = None
        target.mode = atol.Mode.SELECT
        target.operator = 0
        target.tasks = TaskBuffer()
        target.requests.clear()
        target.fn.cancel_document()
    else:
        target.cancel_document()


def fiscalize_with_power_loss(
    fn: FiscalStorage,
    now: datetime,
    receipt: Receipt | CorrectionReceipt,
    when: Literal["before", "after"],
    *,
    timer: float | None = None,
) -> NoReturn:
    """Run begin/add/finish for ``receipt`` and lose power ``when``; always raises PowerLost.

    "before": the ФН ends with no open document and no new FD. "after": the receipt is
    archived (``PowerLost.fd_number``) but the caller never gets its FiscalResult.
    """
    data = encode(receipt_to_tags(receipt))
    fn.begin_receipt(now, correction=isinstance(receipt, CorrectionReceipt), timer=timer)
    fn.add_tlv(data)
    if when == "before":
        power_off(fn)
        raise PowerLost("before")
    result: FiscalResult = fn.finish_receipt(now, receipt.operation, receipt.total, timer=timer)
    power_off(fn)
    raise PowerLost("after", result.fd_number)


# --- device states --------------------------------------------------------------------------


def fill_fn(fn: FiscalStorage) -> None:
    """ФН full: no room for another document, so new work answers 06h (archive full)."""
    fn.limits = attrs.evolve(fn.limits, archive_capacity=len(fn.archive))


def expire_shift(fn: FiscalStorage) -> bool:
    """Make the open shift older than ``max_shift``; False when no shift is open."""
    shift = fn.shift
    if shift is None:
        return False
    opened = shift.opened - fn.limits.max_shift - timedelta(minutes=1)
    fn.shift = attrs.evolve(shift, opened=opened)
    return True


def set_ofd_down(ofd: OfdServer, down: bool = True) -> None:
    """Take the OFD down (or bring it back) whatever its outage schedule says."""
    ofd.forced_down = down


# --- one register's faults ------------------------------------------------------------------


class RegisterFaults:
    """A plan applied to register ``register``: its link and power randomness, log and epoch.

    Create it inside trio: the epoch defaults to the current trio time.
    """

    def __init__(
        self,
        plan: FaultPlan,
        *,
        register: int = 0,
        seed: int = 0,
        log: FaultLog | None = None,
        epoch: float | None = None,
    ) -> None:
        self.plan = plan.for_register(register)
        self.register = register
        self.seed = seed
        self.log = FaultLog() if log is None else log
        self.epoch = trio.current_time() if epoch is None else epoch
        self._connections = 0
        self._one_shots = {
            kind: [rule.at or 0.0 for rule in self.plan.scheduled(kind)] for kind in _ONE_SHOT
        }
        self.power = PowerLoss(
            self.plan,
            rng=random.Random(f"kassa-faults:{seed}:{register}:power"),
            log=self.log,
            register=register,
            due=self.due,
        )

    def elapsed(self) -> float:
        return trio.current_time() - self.epoch

    def due(self, kind: str) -> bool:
        """Whether a one-shot ``kind`` is due now; consumes it."""
        times = self._one_shots.get(kind)
        if times and times[0] <= self.elapsed():
            times.pop(0)
            return True
        return False

    def slow_factor(self) -> float:
        return self.plan.slow_factor(self.elapsed())

    def wrap(self, stream: trio.abc.Stream) -> FaultyStream:
        """A faulty view of one new connection's stream."""
        self._connections += 1
        rng = random.Random(f"kassa-faults:{self.seed}:{self.register}:link:{self._connections}")
        return FaultyStream(
            stream, self.plan, rng=rng, log=self.log, register=self.register, due=self.due
        )


class _PowerFaults:
    """What a faulty register adds to its protocol's register, shared by both protocols.

    A subclass names its commits (:meth:`_commit`) and routes ``execute`` through
    :meth:`_execute_faulty`; :class:`PowerLost` escapes ``execute`` after :func:`power_off`
    and ends the connection (:func:`serve_faulty_connection` catches it).
    """

    faults: RegisterFaults
    fn: FiscalStorage

    def _commit(self, payload: bytes) -> str | None:
        """What ``payload`` commits to the ФН (for the log), or None when it commits nothing."""
        raise NotImplementedError

    def _execute_faulty(
        self, payload: bytes, execute: Callable[[bytes], tuple[bytes, float]]
    ) -> tuple[bytes, float]:
        what = self._commit(payload)
        last = self.fn.last_fd_number
        try:
            if what is not None:
                self.faults.power.before_commit(what)
            answer, duration = execute(payload)
            if self.fn.last_fd_number > last:
                self.faults.power.after_commit(self.fn.last_fd_number)
        except PowerLost:
            power_off(self)  # type: ignore[arg-type]  # a subclass is a register
            raise
        return answer, duration * self.faults.slow_factor()


class FaultyRegister(_PowerFaults, ShtrihRegister):
    """A Shtrih register that loses power around ФН commits and runs slow on schedule.

    Make one with :meth:`wrap` and use it in place of the original.
    """

    @classmethod
    def wrap(cls, register: ShtrihRegister, faults: RegisterFaults) -> FaultyRegister:
        faulty = cls.__new__(cls)
        faulty.__dict__.update(register.__dict__)
        faulty.faults = faults
        return faulty

    def _commit(self, payload: bytes) -> str | None:
        try:
            code = c.command_code(payload)
        except ShtrihError:
            return None
        commits = code in COMMIT_COMMANDS and (
            code not in _RECEIPT_COMMITS or self.fn.open_document is not None
        )
        return f"command {code:02X}h" if commits else None

    def execute(self, payload: bytes) -> tuple[bytes, float]:
        return self._execute_faulty(payload, super().execute)


class FaultyAtolRegister(_PowerFaults, AtolRegister):
    """An ATOL register that loses power around ФН commits and runs slow on schedule.

    Commits are 9Ah, 5Ah and 4Ah with a (non-test) receipt open. Make one with :meth:`wrap`.
    """

    @classmethod
    def wrap(cls, register: AtolRegister, faults: RegisterFaults) -> FaultyAtolRegister:
        faulty = cls.__new__(cls)
        faulty.__dict__.update(register.__dict__)
        faulty.faults = faults
        return faulty

    def _commit(self, payload: bytes) -> str | None:
        code = request_code(payload)
        commits = code in ATOL_COMMIT_COMMANDS and (
            code != b"\x4a" or self.fn.open_document is not None
        )
        return f"command {code.hex().upper()}h" if commits else None

    def execute(self, payload: bytes) -> tuple[bytes, float]:
        return self._execute_faulty(payload, super().execute)


def attach_faults(register: Register, faults: RegisterFaults) -> Register:
    """``register`` with ``faults`` attached: a faulty register of its own protocol."""
    if isinstance(register, AtolRegister):
        return FaultyAtolRegister.wrap(register, faults)
    return FaultyRegister.wrap(register, faults)


async def serve_faulty_connection(stream: trio.abc.Stream, register: Register) -> None:
    """Serve one connection in the register's protocol through a faulty stream.

    A power loss ends the connection. With a plain register (no faults attached) this is the
    protocol's own ``serve_connection``.
    """
    if isinstance(register, AtolRegister):
        serve: Callable[[trio.abc.Stream, Any], Awaitable[None]] = serve_atol_connection
    else:
        serve = serve_connection
    if not isinstance(register, FaultyRegister | FaultyAtolRegister):
        await serve(stream, register)
        return
    faulty = register.faults.wrap(stream)
    try:
        await serve(faulty, register)
    except* PowerLost:
        pass
    finally:
        with trio.CancelScope(shield=True):
            await faulty.aclose()


def _actions(
    register: Register, faults: RegisterFaults, ofd: OfdServer | None
) -> Iterable[tuple[float, str, Callable[[], str]]]:
    fn = register.fn

    def full() -> str:
        fill_fn(fn)
        return f"archive full at {len(fn.archive)} documents"

    def expired() -> str:
        return "shift aged past max_shift" if expire_shift(fn) else "no shift open: nothing to do"

    def ofd_state(down: bool) -> Callable[[], str]:
        def action() -> str:
            if ofd is None:
                return "no OFD attached: nothing to do"
            set_ofd_down(ofd, down)
            return "OFD down" if down else "OFD back up"

        return action

    plan = faults.plan
    for rule in plan.scheduled("fn-full"):
        yield rule.at or 0.0, "fn-full", full
    for rule in plan.scheduled("shift-expired"):
        yield rule.at or 0.0, "shift-expired", expired
    for rule in plan.scheduled("ofd-down"):
        yield rule.at or 0.0, "ofd-down", ofd_state(True)
        if rule.until is not None:
            yield rule.until, "ofd-up", ofd_state(False)
    for rule in plan.rules:
        if rule.kind == "slow":
            factor = rule.value

            def slow(factor: float | None = factor) -> str:
                return f"commands take {factor}x as long"

            yield rule.at or 0.0, "slow", slow
            if rule.until is not None:
                yield rule.until, "slow-end", lambda: "back to normal speed"


async def run_schedule(
    register: Register, faults: RegisterFaults, ofd: OfdServer | None = None
) -> None:
    """Apply the plan's timed device-state faults to ``register`` (and ``ofd``) as they fall due.

    Run it in the fleet's nursery, one per register; it returns after the last one.
    """
    actions = sorted(_actions(register, faults, ofd), key=lambda action: action[0])
    for at, kind, action in actions:
        await trio.sleep_until(faults.epoch + at)
        faults.log.record(faults.register, kind, action())
