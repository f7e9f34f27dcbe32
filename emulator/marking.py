"""The check of marking codes (проверка КМ, FFD 1.2, Честный знак): the ФН-М's own check of a
code and the marking operator's system (ОИСМ) it asks online, as the emulator models them.

Pure and deterministic: :func:`parse_marking_code` reads a code as scanned (КМ, 2000),
:func:`check_marking_code` gives the result of checking it under a :class:`MarkingPolicy`.
The ФН (:class:`~emulator.fn.FiscalStorage`) keeps the checks until the host decides on them,
and the personalities (:mod:`emulator.shtrih`, :mod:`emulator.atol`) bind the accepted ones to
receipt lines with :func:`bound_tags` and mark unbound marked lines with
:func:`mark_unchecked_line`. The modelled durations are :mod:`emulator.timing`'s.

The rules:

- Reading the code. Bytes other than printable ASCII and GS (1Dh), or none at all, cannot be
  read: the register refuses the command (Shtrih D3h, as fr_drv_ng_examples #42 shows for an
  empty code). A GS1 DataMatrix code is ``01`` + GTIN (14 digits) + ``21`` + serial (1–20
  characters, up to GS), then GS-separated groups; its 1163 is GS1.M (1305) with
  ``01<GTIN>21<serial>``. Its crypto tail decides its type (2100) and whether the ФН checks it:
  ``91`` (4 characters) with ``92`` of 88 or 44 characters is checked in the ФН (2100 = 2 or
  4; DataMatrix type 0 or 3); ``93`` (4 characters) is a code the ФН does not check (2100 = 5,
  reason 1: "КМ данного типа не подлежит проверке в ФН", ffd.md §3; DataMatrix type 1); no
  valid tail leaves it unchecked with reason 3 (no AI 91/92, javapos commands.xml) and 2100 = 0.
  Any other readable code is not identified (2100 = 0, reason 1); its 1163 is 1300 (КТ Н) with
  the whole code, which must fit 32 characters to be bound.
- The ФН's check (2004, КП КМ): a code it can check passes (03h) unless the policy calls it
  forged, then it fails (01h); one it cannot check gives 00h and the reason above.
- The ОИСМ (2005, 2109), unless the register works without it (``online`` False, автономный
  режим, FF61h's online part then empty): a silent code gets no answer in time (the ФН's answer
  code FFh); otherwise it answers. It finds a forged code's КП invalid (01h) and any other code
  with a crypto tail valid (03h), and cannot judge the КП of a code without one (00h). It
  calls the planned status correct (04h | 08h, 2109 = 1) unless the code is refused or forged
  (04h, 2109 = 2). Its TLV are 2105 = 0 (the request was well formed), 2005 and 2109.
- 2106 (ffd.md §3 bits): 01h/02h are the ФН's own check of the code, or, when the ФН could
  not check it, the ОИСМ's (a real ФН-М does so: fr_drv_ng #145 shows local status 0, reason 1
  and 2106 = 05h = the ОИСМ's 2005, and Shtrih's own example, fr_drv_ng_examples
  ``classic_interface/main.cpp``, reads bit 0 clear as "код маркировки не был проверен ФН и
  (или) ОИСМ"); 04h/08h are the ОИСМ's status bits; 10h says the result was
  formed without the ОИСМ's answer (none in time, or no online check at all). So a code with
  91/92 gives 0Fh, 05h forged, 07h refused, 13h silent; a code without a tail 0Ch, 04h, 10h.
- The default :class:`MarkingPolicy` decides by the serial (the part after AI 21; the whole
  code when it is not GS1): ``FORGED…`` fails the КП check, ``REJECT…`` is refused by the
  ОИСМ, ``SILENT…`` gets no answer in time, anything else passes. Sets of whole codes do the
  same from Python.

Assumptions where the sources are silent: the ОИСМ's answer carries no 2114 (the model has no
clock of its own); the ОИСМ's verdict does not depend on the planned status; a GS1 code whose
groups include others than 91/92/93 (8005, 3103 …) is read by those three alone; FF67h's
DataMatrix type is 1 (КМ симметричный) for a ``93`` tail and FFh (GS1 without marking) for a
code without a tail or not GS1 (javapos FSBindMC lists the values, not which code has which).
"""

from __future__ import annotations

import enum
import re
import struct
from collections.abc import Mapping
from types import MappingProxyType

import attrs

from protocols.fn import LocalCheckReason, OnlineCheckCode
from protocols.tlv import TagMap, encode
from protocols.tlv.enums import (
    MARKED_SUBJECTS,
    MarkingCheckFlags,
    MarkingCodeType,
    OismProductStatus,
    PlannedStatus,
)

__all__ = [
    "MARKED_GOODS_USAGE",
    "MARKING_OPERATIONS",
    "PLANNED_STATUSES",
    "HostResults",
    "MarkingCheck",
    "MarkingCode",
    "MarkingPolicy",
    "UnreadableCode",
    "bound_tags",
    "check_marking_code",
    "conflicting_tags",
    "mark_unchecked_line",
    "parse_marking_code",
    "take_scanned_codes",
]

#: 1290 признаки условий применения ККТ: the bit of marked goods (ffd.md §3).
MARKED_GOODS_USAGE = 1 << 8
#: The values a check's 2003 планируемый статус товара may take.
PLANNED_STATUSES = frozenset(int(status) for status in PlannedStatus)
#: The receipts (1054) a marking code may be bound in, приход and возврат прихода
#: (fr_drv_ng_examples #42), and the 2003 of a code the register checks itself in them.
MARKING_OPERATIONS: Mapping[int, PlannedStatus] = MappingProxyType(
    {1: PlannedStatus.PIECE_SOLD, 2: PlannedStatus.PIECE_RETURNED}
)

_GS = "\x1d"
_GS1_HEAD = re.compile(r"01(\d{14})21([^\x1d]{1,20})")
_CODE_BITS = MarkingCheckFlags.CODE_CHECKED | MarkingCheckFlags.CODE_VALID
_STATUS_BITS = MarkingCheckFlags.STATUS_CHECKED | MarkingCheckFlags.STATUS_VALID
_GS1M = 1305  # 1163 child: GS1.М
_UNIDENTIFIED = 1300  # 1163 child: КТ Н, not identified
_UNIDENTIFIED_MAX = 32
_NO_MARKING_MATRIX = 0xFF  # FF67h DataMatrix type: GS1 without marking
_TLV_HEADER = struct.Struct("<HH")
_SCANNED = 2000  # код маркировки, as scanned


class UnreadableCode(ValueError):
    """A marking code the register cannot read: empty, or bytes outside ASCII and GS."""


@attrs.frozen
class MarkingCode:
    """A marking code (КМ, 2000) as the register reads it."""

    raw: bytes  # as scanned, GS bytes included
    code_type: MarkingCodeType  # 2100
    reason: LocalCheckReason  # CHECKED when the ФН can check it itself
    serial: str  # after AI 21 for GS1 codes, else the whole code: the policy's key
    product_code: tuple[int, str] | None  # the 1163 child (tag, value); None: cannot be bound
    datamatrix_type: int  # FF67h: 0 КМ 88, 1 symmetric, 3 КМ 44, FFh GS1 without marking
    has_tail: bool  # a crypto tail (91/92 or 93) the ОИСМ can verify

    @property
    def checkable(self) -> bool:
        """The ФН checks this code's КП itself."""
        return self.reason is LocalCheckReason.CHECKED

    @property
    def product_tags(self) -> TagMap | None:
        """1163 код товара's value: its one child, or None when the code has none."""
        if self.product_code is None:
            return None
        tag, value = self.product_code
        return {tag: value}


def parse_marking_code(raw: bytes) -> MarkingCode:
    """Read a scanned code by the module's rules; :class:`UnreadableCode` if it cannot be."""
    if not raw or any(b != 0x1D and not 0x20 <= b <= 0x7E for b in raw):
        raise UnreadableCode(f"{raw!r} is not a marking code")
    text = raw.decode("ascii")
    head, *groups = text.split(_GS)
    match = _GS1_HEAD.fullmatch(head)
    if match is None:
        product = (_UNIDENTIFIED, text) if len(text) <= _UNIDENTIFIED_MAX else None
        return MarkingCode(
            raw=raw,
            code_type=MarkingCodeType.UNIDENTIFIED,
            reason=LocalCheckReason.TYPE_NOT_CHECKED,
            serial=text,
            product_code=product,
            datamatrix_type=_NO_MARKING_MATRIX,
            has_tail=False,
        )
    gtin, serial = match.groups()
    fields = {group[:2]: group[2:] for group in groups if group[:2] in ("91", "92", "93")}
    key, crypto, short = fields.get("91", ""), fields.get("92", ""), fields.get("93", "")
    kind, reason = MarkingCodeType.UNIDENTIFIED, LocalCheckReason.NO_CRYPTO_TAIL
    matrix = _NO_MARKING_MATRIX
    if len(key) == 4 and len(crypto) in (44, 88):
        kind = MarkingCodeType.CHECK_CODE_88 if len(crypto) == 88 else MarkingCodeType.CHECK_CODE_44
        reason, matrix = LocalCheckReason.CHECKED, 0 if len(crypto) == 88 else 3
    elif len(short) == 4:
        kind, reason, matrix = (
            MarkingCodeType.CHECK_CODE_4_UNCHECKED,
            LocalCheckReason.TYPE_NOT_CHECKED,
            1,
        )
    return MarkingCode(
        raw=raw,
        code_type=kind,
        reason=reason,
        serial=serial,
        product_code=(_GS1M, f"01{gtin}21{serial}"),
        datamatrix_type=matrix,
        has_tail=kind is not MarkingCodeType.UNIDENTIFIED,
    )


class HostResults(enum.Enum):
    """Who may write a line's 2106: the ФН alone (the default, as a ФН-М), or the host too."""

    #: A 2106 the host sends is kept (unless the line's code is bound, then the ФН's wins),
    #: and a marked line without a bound code is left as the host sent it: for hosts written
    #: before FFD 1.2's check, which send their own 2106.
    KEEP = "keep"
    #: The ФН's rule: a 2106 from the host is refused (Shtrih FF4Dh 33h, ATOL E8h 13h), and a
    #: marked line (1212 = 31 or 33, with 1163) whose code was not bound gets 2106 = 0, "not
    #: checked", as a ФН-М forms it.
    REFUSE = "refuse"


@attrs.frozen
class MarkingPolicy:
    """How the emulator's ФН and ОИСМ treat marking codes (see the module's rules).

    The prefixes apply to a code's serial; the sets to whole codes as scanned. ``online``
    False is a register without the ОИСМ (автономный режим).
    """

    online: bool = True
    forged_prefix: str = "FORGED"
    refused_prefix: str = "REJECT"
    silent_prefix: str = "SILENT"
    forged: frozenset[bytes] = frozenset()
    refused: frozenset[bytes] = frozenset()
    silent: frozenset[bytes] = frozenset()
    host_results: HostResults = HostResults.REFUSE

    def is_forged(self, code: MarkingCode) -> bool:
        return _named(code, self.forged, self.forged_prefix)

    def is_refused(self, code: MarkingCode) -> bool:
        return _named(code, self.refused, self.refused_prefix)

    def is_silent(self, code: MarkingCode) -> bool:
        return _named(code, self.silent, self.silent_prefix)


def _named(code: MarkingCode, codes: frozenset[bytes], prefix: str) -> bool:
    return code.raw in codes or (bool(prefix) and code.serial.startswith(prefix))


@attrs.frozen
class MarkingCheck:
    """One code checked: what FF61h (or ATOL's D2h) answers and what a bound line carries."""

    code: MarkingCode
    planned_status: int  # 2003
    processing_mode: int  # 2102
    local: MarkingCheckFlags  # 2004, the ФН's own check
    online_code: OnlineCheckCode | None  # None: no online check (автономный режим)
    oism: MarkingCheckFlags | None  # 2005, when the ОИСМ answered
    oism_status: OismProductStatus | None  # 2109, when the ОИСМ answered
    result: MarkingCheckFlags  # 2106

    @property
    def asked(self) -> bool:
        """The register asked the ОИСМ."""
        return self.online_code is not None

    @property
    def answered(self) -> bool:
        return self.online_code is OnlineCheckCode.ANSWERED

    def online_part(self, *, with_result: bool) -> bytes:
        """The online part of a check's answer: nothing without the ОИСМ, FFh without its
        answer, else 00h, 2106 when ``with_result`` (Shtrih's FF61h has it there, ATOL's D2h
        elsewhere) and the ОИСМ's TLV."""
        if self.online_code is None:
            return b""
        if not self.answered:
            return bytes((self.online_code,))
        result = bytes((int(self.result),)) if with_result else b""
        return bytes((self.online_code,)) + result + self.server_tlv

    @property
    def server_tlv(self) -> bytes:
        """The ОИСМ's answer tags: 2105, 2005 and 2109; nothing without an answer."""
        if self.oism is None or self.oism_status is None:
            return b""
        return encode({2105: 0, 2005: int(self.oism), 2109: int(self.oism_status)})


def check_marking_code(
    code: MarkingCode, planned_status: int, processing_mode: int, policy: MarkingPolicy
) -> MarkingCheck:
    """Check ``code`` as the ФН and the ОИСМ do under ``policy`` (the module's rules)."""
    forged = policy.is_forged(code)
    local = MarkingCheckFlags(0)
    if code.checkable:
        local = MarkingCheckFlags.CODE_CHECKED
        if not forged:
            local |= MarkingCheckFlags.CODE_VALID
    online_code: OnlineCheckCode | None = None
    oism: MarkingCheckFlags | None = None
    status: OismProductStatus | None = None
    if policy.online:
        online_code = OnlineCheckCode.ANSWERED
        if policy.is_silent(code):
            online_code = OnlineCheckCode.NO_ANSWER
        else:
            oism = MarkingCheckFlags.STATUS_CHECKED
            if forged:
                oism |= MarkingCheckFlags.CODE_CHECKED
            elif code.has_tail:
                oism |= _CODE_BITS
            status = OismProductStatus.CORRECT
            if forged or policy.is_refused(code):
                status = OismProductStatus.INCORRECT
            else:
                oism |= MarkingCheckFlags.STATUS_VALID
    result = local if code.checkable or oism is None else oism & _CODE_BITS
    result |= MarkingCheckFlags.OFFLINE if oism is None else oism & _STATUS_BITS
    return MarkingCheck(
        code=code,
        planned_status=planned_status,
        processing_mode=processing_mode,
        local=local,
        online_code=online_code,
        oism=oism,
        oism_status=status,
        result=result,
    )


def bound_tags(code: MarkingCode, processing_mode: int, result: int) -> TagMap:
    """The tags a code bound to a line gives it: 1163 from the code, 2102, and the ФН's 2106."""
    product = code.product_tags
    assert product is not None, "only codes with a 1163 are bound"
    return {1163: product, 2102: processing_mode, 2106: result}


def conflicting_tags(line: TagMap, bound: TagMap) -> list[int]:
    """The tags of ``bound`` the line already has with another value (2106 aside: the ФН's
    replaces a host's when the host may send one)."""
    return [tag for tag, value in bound.items() if tag != 2106 and line.get(tag, value) != value]


def mark_unchecked_line(line: TagMap) -> None:
    """Give a marked line with a code but no 2106 the ФН's "not checked" result (2106 = 0)."""
    if line.get(1212) in MARKED_SUBJECTS and 1163 in line and 2106 not in line:
        line[2106] = 0


def take_scanned_codes(data: bytes) -> tuple[bytes, list[bytes]]:
    """Take the КМ (2000) out of TLV ``data``: its bytes as scanned, GS included, which the
    TLV codec's text rules refuse, and the other TLVs as they were. Data that is not whole
    TLVs comes back unchanged, for the codec to refuse."""
    kept: list[bytes] = []
    codes: list[bytes] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < _TLV_HEADER.size:
            return data, []
        tag, size = _TLV_HEADER.unpack_from(data, pos)
        end = pos + _TLV_HEADER.size + size
        if end > len(data):
            return data, []
        if tag == _SCANNED:
            codes.append(data[pos + _TLV_HEADER.size : end])
        else:
            kept.append(data[pos:end])
        pos = end
    return b"".join(kept), codes
