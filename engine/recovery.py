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
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from engine.drivers.base import RegisterDriver
from protocols.documents.ffd import FiscalizedReceipt, decode_receipt
from protocols.documents.model import Receipt, UserProp
from protocols.errors import ProtocolError

MARKER_NAME = "kassa-job"  # 1085 name of the 1084 marker
MARKER_LENGTH = 16  # 1192 is at most 16 characters


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
