"""In-doubt recovery (разбор сомнительных заданий): does the ФН hold this job's receipt?

A job is in doubt when its receipt went to the register and no answer came back: a timeout, a
disconnect, a power loss or an engine crash between sending and journaling. Resending blindly
could print a second receipt; giving up could lose one. So the engine writes a marker of the job
into every receipt it sends, and recovery reads the ФН's archive through the register — every
document after the last FD known when the job was sent — looking for a receipt that carries
the marker with the job's total (1020) and operation (1054). Found: the job is journaled with
that document. Not found, once no receipt can still be open: the job is proven absent and is
sent again.

The marker: tag 1192 (доп. реквизит чека, at most 16 characters) carries the first 16 hex
digits of the job id when the receipt leaves 1192 unset; otherwise 1084 (доп. реквизит
пользователя) carries the name ``kassa-job`` and the whole job id. A receipt that uses both
has no room for it and is refused at intake.

The same archive reads tell a journal that is behind its registers (:func:`unknown_receipt`):
once in-doubt jobs are settled, the only documents a sound journal may not know are the shift
reports a crash kept it from journaling; a receipt it does not know means that it has forgotten
jobs. The marker carries the job id, not the tenant or the external_id, so such a receipt
cannot be matched to the external_id it was submitted under.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from engine.drivers.base import RegisterDriver, RegisterRefused
from protocols.documents.ffd import FiscalizedReceipt, decode_receipt
from protocols.documents.model import Receipt, UserProp
from protocols.errors import ProtocolError

MARKER_NAME = "kassa-job"  # 1085 name of the 1084 marker
MARKER_LENGTH = 16  # 1192 is at most 16 characters
#: Document codes of receipts: кассовый чек (3), БСО (4) and their corrections (31, 41).
RECEIPT_DOCUMENTS = frozenset({3, 4, 31, 41})
#: Other documents a ФН signs: registration (1, 11), shift reports (2, 5), the settlement
#: report (21), closing the ФН (6), the OFD's confirmation (7), marking notices (81–84).
REPORT_DOCUMENTS = frozenset({1, 11, 2, 21, 5, 6, 7, 81, 82, 83, 84})
#: The most documents the journal does not know that are read at a connect. A sound journal
#: misses a shift report or two at most; a larger gap of reports only is not one.
UNKNOWN_READ_LIMIT = 32


def has_room_for_marker(receipt: Receipt) -> bool:
    """Whether the engine can mark ``receipt`` (1192 or 1084 is free)."""
    return receipt.additional_prop is None or receipt.user_prop is None


def mark(receipt: Receipt, job_id: str) -> Receipt:
    """``receipt`` with the job marker in 1192, or in 1084 when 1192 is taken."""
    if receipt.additional_prop is None:
        return attrs.evolve(receipt, additional_prop=job_id[:MARKER_LENGTH])
    if receipt.user_prop is None:
        return attrs.evolve(receipt, user_prop=UserProp(name=MARKER_NAME, value=job_id))
    raise ValueError("the receipt uses both 1192 and 1084: no room for the job marker")


def carries(receipt: Receipt, job_id: str, sent: Receipt) -> bool:
    """Whether a signed ``receipt`` is the one ``sent`` for ``job_id``: marker, total, operation."""
    if receipt.total != sent.total or receipt.operation != sent.operation:
        return False
    if sent.additional_prop == job_id[:MARKER_LENGTH]:
        return receipt.additional_prop == sent.additional_prop
    prop = receipt.user_prop
    return prop is not None and prop.name == MARKER_NAME and prop.value == job_id


@attrs.frozen
class Found:
    """The receipt of an in-doubt job, as the ФН archive holds it."""

    fd_number: int
    document: bytes
    signed: FiscalizedReceipt


class ArchiveReader:
    """Reads and decodes documents of one ФН once, for all the in-doubt jobs of a register."""

    def __init__(self, driver: RegisterDriver) -> None:
        self._driver = driver
        self._cache: dict[int, tuple[bytes, FiscalizedReceipt | None]] = {}
        self.read = 0  # documents read from the register

    async def document(self, fd_number: int) -> tuple[bytes, FiscalizedReceipt | None]:
        cached = self._cache.get(fd_number)
        if cached is None:
            document = await self._driver.read_document(fd_number)
            self.read += 1
            try:
                signed: FiscalizedReceipt | None = decode_receipt(document)
            except ProtocolError:  # a shift report, or anything else that is not a receipt
                signed = None
            cached = self._cache[fd_number] = (document, signed)
        return cached

    async def find(
        self, job_id: str, sent: Receipt, after: int, last: int, taken: Mapping[int, str]
    ) -> Found | None:
        """The receipt of ``job_id`` among FDs ``after`` + 1 … ``last`` not ``taken`` by others."""
        for fd_number in range(after + 1, last + 1):
            if taken.get(fd_number, job_id) != job_id:
                continue
            document, signed = await self.document(fd_number)
            if signed is not None and carries(signed.receipt, job_id, sent):
                return Found(fd_number, document, signed)
        return None


async def unknown_receipt(reader: ArchiveReader, first: int, last: int) -> str | None:
    """Why FDs ``first`` … ``last``, which the journal does not know, may hold a receipt, or
    None when they are all reports.

    Read from the newest back, at most :data:`UNKNOWN_READ_LIMIT` of them; a document that
    cannot be read or told apart counts as a receipt.
    """
    for fd_number in range(last, max(first, last - UNKNOWN_READ_LIMIT + 1) - 1, -1):
        try:
            document, signed = await reader.document(fd_number)
        except RegisterRefused as exc:
            return f"FD {fd_number} cannot be read ({exc})"
        code = int.from_bytes(document[:2], "little") if len(document) >= 4 else None
        if code in REPORT_DOCUMENTS:
            continue
        if code not in RECEIPT_DOCUMENTS:
            return f"FD {fd_number} is not a document Kassa can tell apart"
        marker = None if signed is None else _marker(signed.receipt)
        if marker is None:
            return f"FD {fd_number} is a receipt without Kassa's job marker"
        return f"FD {fd_number} is a receipt of Kassa job {marker}"
    if last - first + 1 > UNKNOWN_READ_LIMIT:
        return f"{last - first + 1} documents are more than a crash leaves unjournaled"
    return None


def _marker(receipt: Receipt) -> str | None:
    """The job marker a signed receipt carries, if it reads as one."""
    prop = receipt.user_prop
    if prop is not None and prop.name == MARKER_NAME:
        return prop.value
    marker = receipt.additional_prop
    if marker is not None and len(marker) == MARKER_LENGTH:
        try:
            int(marker, 16)
        except ValueError:
            return None
        return marker
    return None
