"""The emulator's check of marking codes: reading a code, the ФН's and the ОИСМ's verdicts, 2106,
and the ФН's table of checks awaiting decisions and lines."""

from __future__ import annotations

import datetime as dt

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.fn import FiscalStorage, FnModelError
from emulator.marking import (
    MarkingPolicy,
    UnreadableCode,
    bound_tags,
    check_marking_code,
    conflicting_tags,
    mark_unchecked_line,
    parse_marking_code,
)
from protocols.documents.reports import RegistrationReport
from protocols.fn import LocalCheckReason, MarkingRefusal, OnlineCheckCode, ResultCode
from protocols.tlv import decode
from protocols.tlv.enums import (
    MarkingCheckFlags,
    MarkingCodeType,
    OismProductStatus,
    TaxSystem,
)

GTIN = "04601234567893"


def gs1(serial: str, tail: str = "\x1d91EE07\x1d92" + "A" * 44) -> bytes:
    """A GS1 DataMatrix code (КМ) with ``tail`` after its serial."""
    return f"01{GTIN}21{serial}{tail}".encode("ascii")


CODE_44 = gs1("5Ab7Cd9ExY")
CODE_88 = gs1("5Ab7Cd9ExY", "\x1d91EE07\x1d92" + "B" * 88)
CODE_93 = gs1("5Ab7Cd9ExY", "\x1d93dGVz")
NO_TAIL = gs1("5Ab7Cd9ExY", "")
SHORT = b"04606203103348a3=EfODAB=UpGbL"  # a tobacco pack's code, fr_drv_ng #145


def test_reading_codes() -> None:
    code = parse_marking_code(CODE_88)
    assert (code.code_type, code.reason, code.datamatrix_type) == (
        MarkingCodeType.CHECK_CODE_88,
        LocalCheckReason.CHECKED,
        0,
    )
    assert code.product_code == (1305, f"01{GTIN}215Ab7Cd9ExY") and code.serial == "5Ab7Cd9ExY"
    assert parse_marking_code(CODE_44).code_type is MarkingCodeType.CHECK_CODE_44
    assert parse_marking_code(CODE_44).datamatrix_type == 3
    short_tail = parse_marking_code(CODE_93)
    assert short_tail.code_type is MarkingCodeType.CHECK_CODE_4_UNCHECKED
    assert (short_tail.reason, short_tail.has_tail) == (LocalCheckReason.TYPE_NOT_CHECKED, True)
    bare = parse_marking_code(NO_TAIL)
    assert (bare.code_type, bare.reason) == (
        MarkingCodeType.UNIDENTIFIED,
        LocalCheckReason.NO_CRYPTO_TAIL,
    )
    assert not bare.has_tail and bare.product_code is not None
    bad_key = parse_marking_code(gs1("X", "\x1d91EE0\x1d92" + "A" * 44))  # 91 of 3 characters
    assert bad_key.reason is LocalCheckReason.NO_CRYPTO_TAIL
    other = parse_marking_code(SHORT)
    assert (other.reason, other.product_code) == (
        LocalCheckReason.TYPE_NOT_CHECKED,
        (1300, SHORT.decode()),
    )
    assert parse_marking_code(b"9" * 33).product_code is None  # too long for 1300
    for unreadable in (b"", b"0104\x00", "КМ".encode(), b"01\n"):
        with pytest.raises(UnreadableCode):
            parse_marking_code(unreadable)


C = MarkingCheckFlags
NO_ANSWER = OnlineCheckCode.NO_ANSWER


@pytest.mark.parametrize(
    "raw,policy,local,online,result",
    [
        (CODE_44, MarkingPolicy(), C(3), 0, 0x0F),
        (CODE_88, MarkingPolicy(), C(3), 0, 0x0F),
        (gs1("FORGED00001"), MarkingPolicy(), C(1), 0, 0x05),
        (gs1("REJECT00001"), MarkingPolicy(), C(3), 0, 0x07),
        (gs1("SILENT00001"), MarkingPolicy(), C(3), NO_ANSWER, 0x13),
        (CODE_93, MarkingPolicy(), C(0), 0, 0x0F),
        (NO_TAIL, MarkingPolicy(), C(0), 0, 0x0C),
        (gs1("REJECT00001", ""), MarkingPolicy(), C(0), 0, 0x04),
        (gs1("SILENT00001", ""), MarkingPolicy(), C(0), NO_ANSWER, 0x10),
        (SHORT, MarkingPolicy(), C(0), 0, 0x0C),
        (CODE_44, MarkingPolicy(online=False), C(3), None, 0x13),
        (NO_TAIL, MarkingPolicy(online=False), C(0), None, 0x10),
        (CODE_44, MarkingPolicy(refused=frozenset({CODE_44})), C(3), 0, 0x07),
        (CODE_44, MarkingPolicy(silent=frozenset({CODE_44})), C(3), NO_ANSWER, 0x13),
        (CODE_44, MarkingPolicy(forged=frozenset({CODE_44})), C(1), 0, 0x05),
        (gs1("REJECT00001"), MarkingPolicy(refused_prefix=""), C(3), 0, 0x0F),
    ],
)
def test_2106_follows_the_checks(
    raw: bytes, policy: MarkingPolicy, local: C, online: int | None, result: int
) -> None:
    check = check_marking_code(parse_marking_code(raw), 1, 0, policy)
    assert (check.local, check.online_code, check.result) == (local, online, result)
    assert check.asked == (online is not None)
    assert check.answered == (online == 0)


def test_the_oism_answer_tags() -> None:
    passed = check_marking_code(parse_marking_code(CODE_44), 1, 0, MarkingPolicy())
    assert decode(passed.server_tlv).fields == {2105: 0, 2005: 0x0F, 2109: 1}
    refused = check_marking_code(parse_marking_code(gs1("REJECT1")), 1, 0, MarkingPolicy())
    assert refused.oism_status is OismProductStatus.INCORRECT and refused.oism == C(0x07)
    silent = check_marking_code(parse_marking_code(gs1("SILENT1")), 1, 0, MarkingPolicy())
    assert (silent.oism, silent.server_tlv) == (None, b"")


@settings(max_examples=300, deadline=None)
@given(
    raw=st.binary(max_size=120)
    | st.builds(
        gs1,
        st.text("ABCFGIJLNORSTE0123456789", min_size=1, max_size=20),
        st.sampled_from(["", "\x1d91EE07\x1d92" + "A" * 44, "\x1d93dGVz", "\x1d91x"]),
    ),
    policy=st.builds(MarkingPolicy, online=st.booleans()),
)
def test_any_code_reads_or_is_unreadable_and_2106_is_consistent(
    raw: bytes, policy: MarkingPolicy
) -> None:
    try:
        code = parse_marking_code(raw)
    except UnreadableCode:
        return
    check = check_marking_code(code, 1, 0, policy)
    result = check.result
    assert bool(result & C.OFFLINE) == (not check.answered)
    assert bool(result & (C.STATUS_CHECKED | C.STATUS_VALID)) <= check.answered
    assert not result & C.CODE_VALID or result & C.CODE_CHECKED
    if code.checkable:
        assert result & 0x03 == check.local


def test_binding_helpers() -> None:
    code = parse_marking_code(CODE_44)
    tags = bound_tags(code, 0, 0x0F)
    assert tags == {1163: {1305: f"01{GTIN}215Ab7Cd9ExY"}, 2102: 0, 2106: 0x0F}
    assert conflicting_tags({1163: {1305: f"01{GTIN}215Ab7Cd9ExY"}, 2106: 1}, tags) == []
    assert conflicting_tags({1163: {1305: "other"}, 2102: 1}, tags) == [1163, 2102]
    line = {1212: 33, 1163: {1305: "x"}}
    mark_unchecked_line(line)
    assert line[2106] == 0
    for untouched in ({1212: 1, 1163: {1305: "x"}}, {1212: 33}, {1212: 33, 1163: {}, 2106: 7}):
        before = dict(untouched)
        mark_unchecked_line(untouched)
        assert untouched == before


NOW = dt.datetime(2026, 3, 2, 9, 0)


def registered_fn(usage: int | None = None) -> FiscalStorage:
    fn = FiscalStorage("9999078902003988")
    report = RegistrationReport(
        user_inn="7707083893",
        user="ООО Ромашка",
        registration_number="0000000001061875",
        fn_number=fn.number,
        kkt_serial="0496530001",
        tax_systems=int(TaxSystem.OSN),
        ofd_inn="7709364346",
        usage=usage,
    )
    fn.register(NOW, report)
    return fn


def refusal(exc: pytest.ExceptionInfo[FnModelError]) -> int:
    return int(exc.value.code)


def test_the_fn_keeps_checks_until_decided_and_bound() -> None:
    fn = registered_fn()
    code = parse_marking_code(CODE_44)
    with pytest.raises(FnModelError) as nothing:
        fn.decide_marking(accept=True)
    assert refusal(nothing) == MarkingRefusal.WRONG_SEQUENCE
    check = fn.check_marking(code, 1)
    assert fn.marking_pending == check
    with pytest.raises(FnModelError) as second:
        fn.check_marking(code, 1)
    assert refusal(second) == MarkingRefusal.WRONG_SEQUENCE
    fn.open_shift(NOW)
    fn.begin_receipt(NOW)
    with pytest.raises(FnModelError) as undecided:
        fn.finish_receipt(NOW, 1, 0)
    assert refusal(undecided) == MarkingRefusal.WRONG_SEQUENCE
    assert fn.open_document is not None  # the refusal changed nothing
    assert fn.decide_marking(accept=True) == check
    assert fn.marking_pending is None and fn.marking_accepted == (check,)
    assert fn.accepted_marking(lambda k: k.code.raw == CODE_44) == check
    fn.check_marking(parse_marking_code(CODE_88), 1)
    fn.decide_marking(accept=False)  # rejected: nothing kept
    assert fn.marking_accepted == (check,)
    fn.take_marking(check)
    assert fn.marking_accepted == ()
    fn.check_marking(code, 1)
    fn.decide_marking(accept=True)
    fn.finish_receipt(NOW, 1, 0)
    assert fn.marking_accepted == ()  # a formed receipt takes its checks with it
    fn.check_marking(code, 1)
    fn.cancel_document()
    assert fn.marking_pending is None  # and so does a cancelled one


def test_the_fn_refuses_checks_it_cannot_keep() -> None:
    fn = FiscalStorage("9999000000000001")
    with pytest.raises(FnModelError) as not_fiscal:
        fn.check_marking(parse_marking_code(CODE_44), 1)
    assert not_fiscal.value.code is ResultCode.WRONG_STATE
    fn = registered_fn()
    fn.limits = attrs.evolve(fn.limits, marking_codes=2)
    for serial in ("A1", "A2"):
        fn.check_marking(parse_marking_code(gs1(serial)), 1)
        fn.decide_marking(accept=True)
    with pytest.raises(FnModelError) as full:
        fn.check_marking(parse_marking_code(gs1("A3")), 1)
    assert refusal(full) == MarkingRefusal.TABLE_FULL
    fn.clear_marking()
    assert fn.marking_accepted == ()
    with pytest.raises(FnModelError) as forbidden:
        registered_fn(usage=1 << 9).check_marking(parse_marking_code(CODE_44), 1)  # services
    assert refusal(forbidden) == MarkingRefusal.FORBIDDEN
    marked_goods = registered_fn(usage=1 << 8)
    assert marked_goods.check_marking(parse_marking_code(CODE_44), 1).result == 0x0F
