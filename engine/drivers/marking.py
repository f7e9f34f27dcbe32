"""The marking-code exchange both drivers run (проверка КМ, FFD 1.2, Честный знак).

Before a receipt with marked goods goes out, the register's ФН checks each code: itself (the
code's crypto tail, 2004) and online with the marking operator's system (ОИСМ: the planned
status, 2005). The line then carries the ФН's 2106, never the client's. A check *fails* when
either side looked and said no: the code is not valid, or the ОИСМ calls the planned status
wrong. A check without the ОИСМ's answer (none in time, 2106 bit 10h) does not fail: the law
lets the sale go on offline. A failed code stops the receipt before anything is fiscalized,
unless the tenant sells with a failed check (продажа с предупреждением).
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from engine.drivers.base import RegisterRefused
from engine.drivers.paths import NotCarried
from protocols.documents.model import Item
from protocols.tlv import TagMap, TlvError, encode
from protocols.tlv.enums import MarkingCheckFlags, PlannedStatus

__all__ = [
    "CHECKED_OPERATIONS",
    "CodeToCheck",
    "MarkingFailed",
    "check_failed",
    "code_to_check",
    "describe",
    "marking_code",
    "planned_status",
]

#: The receipts (1054) whose codes the ФН checks and binds: приход and возврат прихода
#: (fr_drv_ng_examples #42: FF67h answers 5Eh in any other).
CHECKED_OPERATIONS = frozenset({1, 2})
_REFUNDS = frozenset({2})
_MEASURED = frozenset({int(PlannedStatus.MEASURED_SOLD), int(PlannedStatus.MEASURED_RETURNED)})

_WORDS = (
    (MarkingCheckFlags.CODE_CHECKED, "code checked", "code not checked"),
    (MarkingCheckFlags.CODE_VALID, "code valid", ""),
    (MarkingCheckFlags.STATUS_CHECKED, "status checked by the ОИСМ", "status not checked"),
    (MarkingCheckFlags.STATUS_VALID, "status correct", ""),
    (MarkingCheckFlags.OFFLINE, "formed without the ОИСМ's answer", ""),
)


class MarkingFailed(RegisterRefused):
    """The ФН's check of a marking code failed: the receipt was not opened, nothing signed."""

    def __init__(self, path: str, flags: int) -> None:
        super().__init__(
            f"{path}: the ФН's check of the marking code failed (2106 = {flags:#04x}: "
            f"{describe(flags)}); nothing was fiscalized",
            0,
        )
        self.path = path
        self.flags = flags


def check_failed(flags: int) -> bool:
    """Whether a check's bits (2004, 2106) say the code, or its planned status, was refused."""
    code_refused = (
        flags & MarkingCheckFlags.CODE_CHECKED and not flags & MarkingCheckFlags.CODE_VALID
    )
    status_refused = (
        flags & MarkingCheckFlags.STATUS_CHECKED and not flags & MarkingCheckFlags.STATUS_VALID
    )
    return bool(code_refused or status_refused)


def describe(flags: int) -> str:
    """The bits of a check for a person: ``code checked, code invalid, …``."""
    words = []
    for bit, present, absent in _WORDS:
        if flags & bit:
            words.append(present)
        elif bit is MarkingCheckFlags.CODE_VALID and flags & MarkingCheckFlags.CODE_CHECKED:
            words.append("code invalid")
        elif bit is MarkingCheckFlags.STATUS_VALID and flags & MarkingCheckFlags.STATUS_CHECKED:
            words.append("status wrong")
        elif absent:
            words.append(absent)
    return ", ".join(words)


def marking_code(item: Item, path: str) -> bytes | None:
    """The КМ (2000) the ФН checks: the code as scanned, or a code that is its own scan;
    None for an item without marking."""
    marking = item.marking
    if marking is None:
        return None
    text = marking.scanned if marking.scanned is not None else marking.code
    where = f"{path}.marking.{'scanned' if marking.scanned is not None else 'code'}"
    if not isinstance(text, str) or not text:
        raise NotCarried(where, "the ФН checks a marking code: it cannot be empty")
    try:
        return text.encode("ascii")
    except UnicodeEncodeError:
        raise NotCarried(where, "a marking code is ASCII, as a scanner reads it") from None


def planned_status(item: Item, operation: int) -> int:
    """2003 планируемый статус товара: the item's own, or what the operation makes of it."""
    marking = item.marking
    if marking is not None and marking.planned_status is not None:
        return marking.planned_status
    quantity = item.quantity
    measured = item.fraction is not None or (
        isinstance(quantity, Decimal) and quantity != quantity.to_integral_value()
    )
    if operation in _REFUNDS:
        return int(PlannedStatus.MEASURED_RETURNED if measured else PlannedStatus.PIECE_RETURNED)
    return int(PlannedStatus.MEASURED_SOLD if measured else PlannedStatus.PIECE_SOLD)


@attrs.frozen
class CodeToCheck:
    """What a register's check of one item's code takes, whatever its protocol."""

    path: str  # the item's marking, for a refusal
    code: bytes  # КМ (2000) as scanned
    planned_status: int  # 2003
    tlv: bytes  # 2108, 1023 and 1291 of measured goods; nothing for pieces


def code_to_check(operation: int, item: Item, path: str) -> CodeToCheck | None:
    """The item's code to check in a receipt of ``operation``; None when there is none."""
    code = marking_code(item, path)
    if code is None or operation not in CHECKED_OPERATIONS:
        return None
    status = planned_status(item, operation)
    measured: TagMap = {}
    if status in _MEASURED:
        if item.measure is not None:
            measured[2108] = item.measure
        measured[1023] = item.quantity
        if item.fraction is not None:
            measured[1291] = {1293: item.fraction.numerator, 1294: item.fraction.denominator}
    try:
        tlv = encode(measured)
    except TlvError as exc:
        raise NotCarried(f"{path}.quantity", exc.reason) from None
    return CodeToCheck(f"{path}.marking", code, status, tlv)
