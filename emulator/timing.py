"""The emulator's timing model (модель времени): how long a register takes, per model.

Durations only: nothing here sleeps or reads a clock. A personality asks
:class:`RegisterTiming` how long a command, a ФН operation, the wire or the printer takes and
sleeps that long with ``trio.sleep`` (so trio's MockClock gives simulated time).

Each :class:`RegisterModel` value cites its source in ``reference/registers.md`` §4, or says
that it is an assumption (§4.5 lists what is not publicly known). Assumptions:

- Wire time: 10 bits a byte at the model's baud rate on a serial line; on TCP one fixed
  latency per write (a packet), whatever its size, since the local-network transfer time of a
  ≤ 258-byte frame is far below the register's own processing time.
- The byte timeout's minimum gap before an acknowledgement (§1.2 rule 5) is not slept: hosts
  tolerate a faster register, and it would only slow simulated runs down.
- Jitter: every duration is multiplied by a factor drawn uniformly from
  ``[1 - jitter, 1 + jitter]`` from one ``random.Random`` per register, seeded with the run's
  seed and the register's index, so a run reproduces exactly and registers differ.
- Printing happens when a document closes: ``header + per-item × items + footer`` lines at
  ``print_line`` each; the register stays in submode 5 (печать) for that long after its answer.
- A marking code's check (FF61h; ATOL's D1h runs it in the background) takes the ФН's own
  check, then the ОИСМ's answer or, when none comes, the register's whole wait for it
  (:meth:`RegisterTiming.marking_check`). The wait is a timer: it has no jitter.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

__all__ = ["MODELS", "RegisterModel", "RegisterTiming", "model_named"]

MS = 0.001


@attrs.frozen(kw_only=True)
class RegisterModel:
    """One register model's timing and identity table (all times in seconds)."""

    name: str
    title: str  # the FCh model name (наименование модели)
    model_id: int  # the FCh model number
    baud: int  # serial line speed, bits/s
    tcp_latency: float  # one TCP write, any size
    byte_timeout: float  # inter-byte timeout of the link (таймаут байта)
    status_time: float  # 10h/11h/FCh and other reads
    command_time: float  # any other command without a ФН operation
    operation_time: float  # FF46h / 80h–83h: one receipt line
    tlv_read_time: float  # FF3Bh / FF0Ah / FF3Ah: one archive read
    fn_document_time: float  # the ФН forms and signs a document (FF45h, 85h)
    shift_open_time: float  # E0h
    shift_close_time: float  # 41h
    print_line: float  # one printed line; 0 for printer-less data-centre registers
    header_lines: int  # printed before the items of a receipt
    lines_per_item: int
    footer_lines: int  # totals, payments, fiscal data, QR code
    report_lines: int  # an X/Z report or a shift opening report
    jitter: float  # relative spread of every duration
    # The check of a marking code (FFD 1.2), the same on every model until one is measured:
    marking_check_time: float = 50 * MS  # assumption: the ФН's check of the КП КМ (unpublished)
    # fr_drv_ng #145: a real FF61h with the ОИСМ's answer took 537 ms, this and the above
    oism_answer_time: float = 450 * MS
    # §4.2 (#158): the register waits for its OKP / ОИСМ server 10 s, then goes on without it
    oism_timeout: float = 10.0

    @property
    def prints(self) -> bool:
        return self.print_line > 0


#: A printer-less data-centre register (ШТРИХ-М-ON-LINE class, rack-mounted, TCP attached).
SHTRIH_M_ONLINE = RegisterModel(
    name="shtrih-m-online",
    title="ШТРИХ-ON-LINE",  # assumption: the FCh name of the rack model
    model_id=19,  # assumption: the model number is not in the reference
    baud=115_200,  # §1.1 default 115200 baud on current models
    tcp_latency=0.5 * MS,  # assumption: a data-centre LAN round trip share
    byte_timeout=50 * MS,  # §1.1 "byte timeout 50 ms" (50–100 ms range)
    status_time=5 * MS,  # §4.2 11h over TCP v2: 1–8 ms (#50, #72)
    command_time=7 * MS,  # §4.2 17h answered in 7 ms (#130)
    operation_time=60 * MS,  # assumption: under §4.2's 196 ms FF46 upper bound (#72), no print
    tlv_read_time=5 * MS,  # §4.2 FF3Bh 5 ms (#141)
    fn_document_time=300 * MS,  # assumption: ФН sign latency is unpublished (§4.5)
    shift_open_time=800 * MS,  # assumption: online, so without the 10 s OKP wait (#158)
    shift_close_time=1_200 * MS,  # assumption: a report with counters, no printing
    print_line=0.0,  # §4.5: 0 for printer-less data-centre devices
    header_lines=0,
    lines_per_item=0,
    footer_lines=0,
    report_lines=0,
    jitter=0.10,  # assumption: §4.2 shows 20 ms against a 29 ms average for 10h
)

#: A desktop register with a thermal printer (ШТРИХ-М-01Ф).
SHTRIH_M_01F = RegisterModel(
    name="shtrih-m-01f",
    title="ШТРИХ-М-01Ф",
    model_id=6,  # assumption: the model number is not in the reference
    baud=115_200,  # §1.1
    tcp_latency=2 * MS,  # assumption: an office LAN / RNDIS over USB
    byte_timeout=100 * MS,  # §1.1 14h note "timeout from 100 ms"; JavaPOS default 100 ms
    status_time=20 * MS,  # §4.2 10h 20 ms over TCP v1 (#130), 11h 24 ms serial (#247)
    command_time=7 * MS,  # §4.2 17h 7 ms, the answer returns while printing (#130)
    operation_time=196 * MS,  # §4.2 FF46h 196 ms (#72)
    tlv_read_time=5 * MS,  # §4.2 FF3Bh 5 ms (#141)
    fn_document_time=400 * MS,  # assumption: ФН sign latency is unpublished (§4.5)
    shift_open_time=1_500 * MS,  # assumption: online; #158 shows > 10 s without internet
    shift_close_time=2_000 * MS,  # assumption
    print_line=25 * MS,  # assumption: ~150 mm/s thermal head, 3.75 mm line; #324's 620 ms
    # per line is a slow large-font case the reporter calls unlike fiscal receipts
    header_lines=8,  # assumption: company, address, INN, register numbers, date
    lines_per_item=2,  # assumption: name; quantity × price = sum with VAT
    footer_lines=18,  # assumption: totals, payments, VAT, ФН data, a QR code ≈ 10 lines
    report_lines=30,  # assumption
    jitter=0.10,
)

#: Model name → table.
MODELS: Mapping[str, RegisterModel] = MappingProxyType(
    {m.name: m for m in (SHTRIH_M_ONLINE, SHTRIH_M_01F)}
)


def model_named(name: str) -> RegisterModel:
    """The table of a model; ``KeyError`` names the known ones."""
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; choose from: {', '.join(MODELS)}") from None


#: Command code → which field of the table gives its processing time.
_COMMAND_FIELDS: Mapping[int, str] = MappingProxyType(
    {
        0x10: "status_time",
        0x11: "status_time",
        0xFC: "status_time",
        0xFF01: "status_time",
        0xFF02: "status_time",
        0xFF03: "status_time",
        0xFF39: "status_time",
        0xFF3F: "status_time",
        0x80: "operation_time",
        0x81: "operation_time",
        0x82: "operation_time",
        0x83: "operation_time",
        0xFF46: "operation_time",
        0xFF0A: "tlv_read_time",
        0xFF3A: "tlv_read_time",
        0xFF3B: "tlv_read_time",
        0xFF45: "fn_document_time",
        0x85: "fn_document_time",
        0xE0: "shift_open_time",
        0x41: "shift_close_time",
    }
)


class RegisterTiming:
    """The durations of one register: its model's table plus seeded jitter.

    A personality whose command codes differ subclasses it with its own ``COMMAND_FIELDS``
    (command code → the model field that times it) and ``SEED_PREFIX``.
    """

    COMMAND_FIELDS: Mapping[Any, str] = _COMMAND_FIELDS
    SEED_PREFIX = "kassa-emulator"

    def __init__(self, model: RegisterModel, *, seed: int, index: int, line: str = "tcp") -> None:
        if line not in ("tcp", "serial"):
            raise ValueError(f"line must be tcp or serial, not {line!r}")
        self.model = model
        self.line = line
        # A string seed hashes with SHA-512 in random.seed: stable across processes.
        self._random = random.Random(f"{self.SEED_PREFIX}:{seed}:{index}")

    def _jittered(self, base: float) -> float:
        if base <= 0:
            return 0.0
        spread = self.model.jitter
        return base * self._random.uniform(1 - spread, 1 + spread)

    def command(self, code: Any) -> float:
        """Processing time of a command, the ФН operation included."""
        return self._jittered(getattr(self.model, self.COMMAND_FIELDS.get(code, "command_time")))

    def wire(self, size: int) -> float:
        """Time to put ``size`` bytes on the line (serial: 10 bits a byte; TCP: one packet)."""
        if size <= 0:
            return 0.0
        if self.line == "serial":
            return size * 10 / self.model.baud
        return self.model.tcp_latency

    def print_lines(self, lines: int) -> float:
        """Time the printer needs for ``lines`` lines (0 on printer-less models)."""
        return self._jittered(self.model.print_line * lines)

    def marking_check(self, *, asked: bool, answered: bool) -> float:
        """The check of one marking code: the ФН's own, then the ОИСМ's answer when ``asked``
        and ``answered``, or the register's whole wait for it when asked in vain."""
        m = self.model
        if not asked:
            return self._jittered(m.marking_check_time)
        if answered:
            return self._jittered(m.marking_check_time + m.oism_answer_time)
        return self._jittered(m.marking_check_time) + m.oism_timeout

    def receipt_lines(self, items: int) -> int:
        m = self.model
        if not m.prints:
            return 0
        return m.header_lines + m.lines_per_item * items + m.footer_lines
