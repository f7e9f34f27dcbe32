"""``kassa tlv`` as a user runs it: a real process, files and pipes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

KASSA = str(Path(sys.executable).with_name("kassa"))


def kassa(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([KASSA, *args], input=stdin, capture_output=True, timeout=60)


def receipt_hex() -> str:
    done = kassa("tlv", "encode", stdin=RECEIPT_JSON.encode())
    assert done.returncode == 0, done.stderr
    return done.stdout.decode().strip()


RECEIPT_JSON = json.dumps(
    {
        "3": {
            "1209": 4,
            "1018": "7707083893",
            "1012": "2026-11-28T12:30:05",
            "1054": 1,
            "1059": [
                {"1030": "Кофе №1, ёмкость 250 г", "1079": 25000, "1023": "2.000", "1043": 50000},
            ],
            "1020": 50000,
            "1077": "31046629765f",
        }
    },
    ensure_ascii=False,
)


def test_encode_then_decode_from_a_hex_file(tmp_path: Path) -> None:
    source = tmp_path / "receipt.hex"
    source.write_text(receipt_hex() + "\n")
    done = kassa("tlv", "decode", str(source))
    assert done.returncode == 0, done.stderr
    view = json.loads(done.stdout)
    expected = json.loads(RECEIPT_JSON)
    expected["3"]["1018"] = "7707083893  "  # the INN comes back padded to its 12 bytes
    assert view == expected


def test_decode_raw_bytes_from_stdin_in_the_fns_view() -> None:
    raw = bytes.fromhex(receipt_hex())
    done = kassa("tlv", "decode", "--view", "fns", stdin=raw)
    assert done.returncode == 0, done.stderr
    receipt = json.loads(done.stdout)["receipt"]
    assert receipt["userInn"] == "7707083893"
    assert receipt["totalSum"] == 50000
    assert receipt["fiscalSign"] == 1713993311  # the printed ФП of 31 04 66 29 76 5f
    assert receipt["items"][0]["quantity"] == 2.0
    assert '"quantity": 2.000' in done.stdout.decode()  # an exact number, never through float
    assert receipt["dateTime"] == 1795869005


def test_encode_is_the_inverse_of_decode() -> None:
    hex_text = receipt_hex()
    decoded = kassa("tlv", "decode", stdin=hex_text.encode())
    again = kassa("tlv", "encode", stdin=decoded.stdout)
    assert again.returncode == 0, again.stderr
    assert again.stdout.decode().strip() == hex_text


@pytest.mark.parametrize(
    ("args", "stdin", "needle"),
    [
        (
            ("tlv", "decode"),
            bytes.fromhex("03000b00fc03070001020304050607"),
            "3/1020: value of 7 bytes, expected at most 6",
        ),
        (("tlv", "decode"), b"0300 0a0", "not hex"),
        (("tlv", "decode"), bytes.fromhex("fa030d00") + b"7707083893   ", "1018"),
        (("tlv", "encode"), b'{"3": {"1059": [{"1030": "\\u20ac"}]}}', "3/1059[0]/1030"),
        (("tlv", "encode"), b'{"1020": 19.90}', "1020: expected an integer"),
        (("tlv", "encode"), b'{"1020": ', "not valid JSON"),
        (("tlv", "decode", "/nonexistent/file"), b"", "/nonexistent/file"),
    ],
)
def test_bad_input_exits_2_with_one_line_naming_the_place(
    args: tuple[str, ...], stdin: bytes, needle: str
) -> None:
    done = kassa(*args, stdin=stdin)
    assert done.returncode == 2
    err = done.stderr.decode()
    assert err.count("\n") == 1, err
    assert needle in err
    assert "Traceback" not in err
    assert done.stdout == b""


def test_warnings_go_to_stderr_and_json_to_stdout() -> None:
    done = kassa(
        "tlv", "decode", stdin=b"9a021600" + b"8ca0aca02c20aceba0a03b20e0a0ace3215f41614529"
    )
    assert done.returncode == 0
    assert json.loads(done.stdout) == {"666": "8ca0aca02c20aceba0a03b20e0a0ace3215f41614529"}
    assert "666: unknown tag" in done.stderr.decode()


@pytest.mark.parametrize(
    ("options", "stdin"),
    [((), b""), ((), b"  \n\t"), (("--form", "hex"), b" \r\n"), (("--form", "raw"), b"")],
    ids=["empty", "whitespace", "whitespace-as-hex", "empty-as-raw"],
)
def test_nothing_to_decode_is_an_error_not_an_empty_object(
    options: tuple[str, ...], stdin: bytes
) -> None:
    done = kassa("tlv", "decode", *options, stdin=stdin)
    assert (done.returncode, done.stdout) == (2, b"")
    err = done.stderr.decode()
    assert (
        err.startswith("kassa: error: stdin: nothing to decode: expected ") and err.count("\n") == 1
    ), err


def test_an_empty_file_names_the_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.hex"
    empty.write_bytes(b"")
    done = kassa("tlv", "decode", str(empty))
    assert done.returncode == 2
    assert done.stderr.decode() == (
        f"kassa: error: {empty}: nothing to decode: expected a TLV document or fragment, "
        "as raw bytes or hex text\n"
    )
