"""``kassa ofd decode`` on the public vectors, as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

KASSA = str(Path(sys.executable).with_name("kassa"))
VECTORS = {
    v["id"]: v
    for v in json.loads((Path(__file__).parents[1] / "vectors" / "ffd_given.json").read_text())
}


def kassa(*args: str, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([KASSA, *args], input=stdin, capture_output=True, timeout=60)


def test_container_header_crc_and_document(tmp_path: Path) -> None:
    vector = VECTORS["G2"]
    raw = tmp_path / "ack.bin"
    raw.write_bytes(bytes.fromhex(vector["hex"]))
    done = kassa("ofd", "decode", str(raw), stdin=b"")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    expected = vector["expect"]["container"]
    for key in ("length", "crc", "crc_ok", "message_type", "document_type", "fd_number"):
        assert out["container"][key] == expected[key]
    assert out["container"]["fn"] == expected["fn"]
    assert out["container"]["document_length"] == expected["document_length"]
    assert out["document"]["7"]["1068"] == {"1022": 0}


def test_a_broken_crc_is_reported_not_hidden() -> None:
    wire = bytearray(bytes.fromhex(VECTORS["G2"]["hex"]))
    wire[2] ^= 0xFF
    done = kassa("ofd", "decode", stdin=wire.hex().encode())
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["container"]["crc_ok"] is False


def test_session_header_and_fns_view() -> None:
    header = bytes.fromhex(VECTORS["G1"]["hex"])
    done = kassa("ofd", "decode", stdin=header)
    assert json.loads(done.stdout)["session"] == VECTORS["G1"]["expect"]["session"]
    container = bytes.fromhex(VECTORS["G2"]["hex"])
    message = header[:24] + len(container).to_bytes(2, "little") + header[26:] + container
    done = kassa("ofd", "decode", "--view", "fns", stdin=message)
    out = json.loads(done.stdout)
    assert out["session"]["body_length"] == 95
    assert out["document"]["operatorAck"]["ofdInn"] == "7704211201"


@pytest.mark.parametrize(
    "stdin", [b"2a08", bytes.fromhex("5f00f966a507"), b"not hex, not a container"]
)
def test_bad_input_exits_2_with_one_line(stdin: bytes) -> None:
    done = kassa("ofd", "decode", stdin=stdin)
    assert done.returncode == 2
    assert done.stderr.decode().count("\n") == 1
    assert b"Traceback" not in done.stderr


@pytest.mark.parametrize("stdin", [b"", b" \n\t "], ids=["empty", "whitespace"])
def test_nothing_to_decode_is_an_error_not_an_empty_object(stdin: bytes) -> None:
    done = kassa("ofd", "decode", stdin=stdin)
    assert (done.returncode, done.stdout) == (2, b"")
    assert done.stderr.decode() == (
        "kassa: error: stdin: nothing to decode: expected a session header, a container or "
        "both, as raw bytes or hex text\n"
    )
