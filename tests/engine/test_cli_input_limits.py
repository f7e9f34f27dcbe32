"""Every ``kassa`` command that reads a file refuses an absurd one at once, as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import INPUT_BYTES

KASSA = str(Path(sys.executable).with_name("kassa"))
CORPUS = Path(__file__).parents[1] / "protocols" / "corpus"
COMMANDS = [("receipt", "check"), ("receipt", "tlv"), ("tlv", "decode"), ("tlv", "encode"),
            ("ofd", "decode")]  # fmt: skip


def kassa(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([KASSA, *args], input=stdin, capture_output=True, timeout=60)


def komtet(size: int) -> bytes:
    """A KOMTET receipt of exactly ``size`` bytes: a good one with a long unknown field."""
    body = json.loads((CORPUS / "komtet-buy.json").read_text(encoding="utf-8"))
    text = json.dumps({**body, "x": ""}).encode()
    return json.dumps({**body, "x": "a" * (size - len(text))}).encode()


@pytest.fixture(scope="module")
def ten_mb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.json"
    path.write_bytes(komtet(10**7))
    return path


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_10_mb_file_is_too_large_in_one_line_and_exit_2(
    ten_mb: Path, command: tuple[str, str]
) -> None:
    done = kassa(*command, str(ten_mb))
    assert (done.returncode, done.stdout) == (2, b"")
    assert done.stderr.decode() == (
        f"kassa: error: {ten_mb}: too_large: an input of 10000000 bytes is over the limit "
        "of 1048576 bytes (1 MiB)\n"
    )


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_too_much_on_stdin_is_too_large_without_reading_it_all(command: tuple[str, str]) -> None:
    done = kassa(*command, stdin=komtet(2 * INPUT_BYTES))
    assert (done.returncode, done.stdout) == (2, b"")
    assert done.stderr.decode() == (
        "kassa: error: stdin: too_large: an input of more than 1048576 bytes is over the limit "
        "of 1048576 bytes (1 MiB)\n"
    )


def test_the_limit_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "edge.json"
    path.write_bytes(komtet(INPUT_BYTES))
    done = kassa("receipt", "check", str(path))
    assert done.returncode == 1, done.stderr  # read and checked: the field is unknown
    (problem,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert (problem["path"], problem["code"]) == ("x", "field.unknown")
    path.write_bytes(komtet(INPUT_BYTES + 1))
    done = kassa("receipt", "check", str(path))
    assert (done.returncode, done.stdout) == (2, b"")
    assert b"too_large: an input of 1048577 bytes" in done.stderr
