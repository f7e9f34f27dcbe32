"""Every finding `kassa fuzz` made and that was fixed, kept as a regression test.

Each case is the minimised input from .fuzz/findings/TARGET, the property the target checks on
it (it must now hold), and what the fixed decoder says about it.
"""

from __future__ import annotations

import pytest

from emulator.shtrih import ShtrihRegister
from fuzz.runner import replay
from protocols.shtrih import ErrorCode, ShtrihError, decode_answer
from protocols.tlv import TlvError, decode, encode

#: (target, minimised input, what was wrong)
FINDINGS = [
    (
        "tlv",
        # 1309 (КТ ЕГАИС-3.0) is text of exactly 14 characters; it came with 0.
        "1d050000",
        "an exact-width text field of the wrong length decoded, and then would not encode",
    ),
    (
        "tlv",
        # a receipt line with 1203 (ИНН кассира) of 2 characters: padded to 12 when re-encoded
        "020408009de1afe0a5e1e1aeb3040200c409ff030200000113040200c409270402007d01",
        "a short padded field: the property now compares it with its padding set aside",
    ),
    (
        "tlv",
        # 1213 (ресурс ключей ФП) of 1048576 in the 4 bytes of FFD 1.05
        "bd04040000001000",
        "a 4-byte 1213 over 65535 decoded, and then would not encode in 2 bytes",
    ),
    (
        "shtrih-commands",
        # 11h FullStatusAnswer whose firmware date has the year byte FFh (2255)
        "1100a51a0000000107ff390010270000000000000000000000000000000000000000000000000000"
        "000000000000000000000023000000fffffb05ff00000000000000",
        "a Shtrih date with a year byte over 99 decoded, and then would not encode",
    ),
    (
        "emulator-shtrih",
        "0000",  # one empty request payload
        "the Shtrih register answered an empty payload with an IndexError",
    ),
    (
        "tlv-reference",
        # 1213 (ресурс ключей ФП) in 4 bytes: Kassa reads it, the naive reference cannot
        "0b001000bd0404000c000000b504040009000000",
        "the differential target compares only what both decoders read",
    ),
    (
        "atol-transport",
        "fe0000ff00",  # a v3 frame with the reserved packet ID 0xFF
        "a reserved packet ID decodes (the connection ignores it) but does not encode",
    ),
    (
        "fn-host",
        "00000000000000008c06",  # bytes then the end of the stream, then more events asked
        "the harness asked a closed ФН link for events forever (ConnectionClosed repeats)",
    ),
]


@pytest.mark.parametrize(("target", "data", "why"), FINDINGS, ids=[f[2] for f in FINDINGS])
def test_the_fixed_finding_holds(target: str, data: str, why: str) -> None:
    assert replay(target, bytes.fromhex(data)) is None, why


def test_an_exact_width_text_of_another_length_is_refused_naming_the_tag() -> None:
    with pytest.raises(TlvError) as refused:
        decode(bytes.fromhex("1d050000"))
    assert refused.value.path == "1309" and "exactly 14" in refused.value.reason
    fourteen = "1" * 14
    assert decode(encode({1309: fourteen})).fields == {1309: fourteen}


def test_a_1213_over_two_bytes_encodes_in_the_four_of_ffd_105_and_a_small_one_in_two() -> None:
    assert encode({1213: 1 << 20}) == bytes.fromhex("bd04040000001000")
    assert encode({1213: 1000}) == bytes.fromhex("bd040200e803")
    with pytest.raises(TlvError):
        encode({1213: 1 << 32})


def test_a_short_padded_text_comes_back_padded_and_then_stays_put() -> None:
    """1203 (ИНН кассира) is padded to 12: the re-encoding is the fixed point, not the input."""
    short = decode(bytes.fromhex("b3040200c409")).fields
    padded = decode(encode(short)).fields
    assert padded[1203] == str(short[1203]).ljust(12)
    assert encode(padded) == encode(short)


def test_a_shtrih_year_byte_over_99_is_refused_naming_the_field() -> None:
    answer = bytes.fromhex(FINDINGS[3][1])
    with pytest.raises(ShtrihError) as refused:
        decode_answer(answer)
    assert refused.value.path.endswith("firmware_date"), refused.value.path
    assert "2255" in refused.value.reason


def test_the_shtrih_register_answers_an_empty_payload_with_bad_parameters() -> None:
    from fuzz.targets import _register

    register, _ = _register("shtrih")
    assert isinstance(register, ShtrihRegister)
    answer, _ = register.execute(b"")
    assert answer == bytes((0, ErrorCode.BAD_PARAMETERS))
