"""What the engine needs from a register, whatever its wire protocol (драйвер ККТ).

A driver owns one connection to one register and runs one command at a time. It is built on
the sans-IO codecs of ``protocols/`` over a ``trio.abc.Stream`` (TCP, a serial line or an
in-memory stream), so the same driver runs against hardware and against the emulator.

The two failure kinds are the heart of exactly-once fiscalization:

- :class:`RegisterRefused`: the register answered, and refused. What was asked did not happen.
- :class:`LinkLost`: no usable answer (timeout, disconnect, garbage). What was asked may or may
  not have happened; for a receipt, the job is in doubt and recovery must read the ФН.
"""

from __future__ import annotations

import enum
from datetime import date, datetime, timedelta
from typing import Protocol

import attrs

from protocols.documents.model import CorrectionReceipt, Receipt

#: The longest a shift may last: the ФН refuses receipts after it (смена не более 24 часов).
MAX_SHIFT = timedelta(hours=24)


class DriverError(Exception):
    """A register command did not succeed."""


class RegisterRefused(DriverError):
    """The register answered with an error code: the command had no effect.

    ``code`` is the register's own error code (Shtrih error byte, ATOL error number),
    ``fn_code`` the ФН's result code when the register reported one.
    """

    def __init__(self, message: str, code: int, *, fn_code: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.fn_code = fn_code
        self.reason = RefusalReason.OTHER

    @classmethod
    def because(
        cls, reason: RefusalReason, message: str, code: int, *, fn_code: int | None = None
    ) -> RegisterRefused:
        """A refusal the engine can act on: ``reason`` says what the shift keeper should do."""
        refused = cls(message, code, fn_code=fn_code)
        refused.reason = reason
        return refused


class RefusalReason(enum.Enum):
    """Refusals the engine reacts to rather than failing the job."""

    OTHER = "other"  # a refusal about this document: the job fails with it
    SHIFT_CLOSED = "shift_closed"  # смена закрыта: open one and retry
    SHIFT_EXPIRED = "shift_expired"  # смена превысила 24 часа: close, open, retry
    DOCUMENT_OPEN = "document_open"  # a document left open (by a lost session): cancel, retry
    FN_EXHAUSTED = "fn_exhausted"  # ФН full, keys expired, 30 days offline: the register is out


class LinkLost(DriverError):
    """No valid answer came: the command may have run. The connection is closed."""


@attrs.frozen
class RegisterStatus:
    """One look at a register and its ФН (состояние ККТ и ФН)."""

    fn_number: str  # 1041 номер ФН
    now: datetime  # the register's clock, naive local time
    shift_open: bool
    shift_expired: bool  # the register counts the open shift as over 24 hours
    shift_number: int  # 1038: the open shift, or the last closed one
    last_fd: int  # 1040 of the last document the ФН signed
    document_open: bool  # a receipt is open in the register or the ФН
    unsent: int  # documents the OFD has not acknowledged
    first_unsent: datetime | None  # when the oldest of them was signed
    fn_warnings: int  # FnWarning flags (1050–1053): replace the ФН soon, archive 90 %, …


@attrs.frozen
class Fiscalized:
    """A receipt the ФН signed: its number and the document as the ФН keeps it."""

    fd_number: int  # 1040 номер ФД
    document: bytes  # the whole document TLV (tag, length, body) read back from the ФН archive
    printed_sign: int | None  # the ФП the register's answer carried, if its protocol gives one


class RegisterDriver(Protocol):
    """One connection to one register; the engine never calls it from two tasks at once.

    ``fiscalize`` sends the receipt as tags (the receipt model mapped by
    :func:`protocols.documents.ffd.receipt_to_tags`), so the additional properties the engine
    writes (1192 or 1084: the job marker) reach the ФН. Its marking codes go through the
    ФН's check first; one that fails stops the receipt unless ``sell_failed_marking``, and the
    lines carry the ФН's 2106. ``read_document`` returns the document as the ФН's archive
    holds it, never re-serialised.
    """

    async def status(self) -> RegisterStatus: ...

    async def open_shift(self) -> int: ...  # the FD number of the open-shift report (2)

    async def close_shift(self) -> int: ...  # the FD number of the close-shift report (5)

    async def fiscalize(
        self, receipt: Receipt | CorrectionReceipt, *, sell_failed_marking: bool = False
    ) -> Fiscalized: ...

    async def cancel_receipt(self) -> None: ...  # drop a receipt left open; none open is fine

    async def read_document(self, fd_number: int) -> bytes: ...

    async def fn_expiry(self) -> date: ...  # срок действия ФН: the last day of its keys

    async def aclose(self) -> None: ...
