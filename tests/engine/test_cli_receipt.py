"""``kassa receipt check|tlv`` as a user runs them, and the help of ``kassa receipt``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from protocols.documents.ffd import decode_receipt
from protocols.documents.json_format import receipt_from_json
from tests.test_samples import SHIPPED_SAMPLES

KASSA = str(Path(sys.executable).with_name("kassa"))
RECEIPT = {
    "kind": "receipt",
    "operation": 1,
    "items": [
        {
            "name": "Кофе",
            "price": 25000,
            "quantity": "2",
            "sum": 50000,
            "vat": 11,
            "vat_sum": 9016,
            "payment_method": 4,
            "payment_subject": 1,
        }
    ],
    "payments": {"electronic": 50000},
    "company": {"inn": "7707083893", "tax_system": 1, "place": "shop.example"},
    "total": 50000,
}


def kassa(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([KASSA, *args], input=stdin, capture_output=True, timeout=60)


def test_a_valid_receipt_checks_clean_and_gives_its_tlv(tmp_path: Path) -> None:
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(RECEIPT, ensure_ascii=False))
    done = kassa("receipt", "check", str(path))
    assert (done.returncode, done.stdout) == (0, b"")
    done = kassa("receipt", "tlv", str(path))
    assert done.returncode == 0, done.stderr
    back = decode_receipt(bytes.fromhex(done.stdout.decode()))
    assert back.receipt == receipt_from_json(RECEIPT)


def test_problems_are_json_lines_and_exit_1() -> None:
    body = json.loads(json.dumps(RECEIPT))
    body["total"] = 5000
    body["items"][0]["vat"] = 13
    done = kassa("receipt", "check", stdin=json.dumps(body).encode())
    assert done.returncode == 1
    lines = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert {(p["path"], p["code"]) for p in lines} >= {
        ("total", "total.items_mismatch"),
        ("items[0].vat", "enum.out_of_range"),
    }


def test_wrong_types_are_problems_with_paths() -> None:
    body = json.loads(json.dumps(RECEIPT))
    body["items"][0]["price"] = "250.00"
    done = kassa("receipt", "check", stdin=json.dumps(body).encode())
    assert done.returncode == 1
    assert json.loads(done.stdout.decode().splitlines()[0])["path"] == "items[0].price"


def test_tlv_refuses_an_invalid_receipt_with_one_line() -> None:
    body = json.loads(json.dumps(RECEIPT))
    body["total"] = 5000
    done = kassa("receipt", "tlv", stdin=json.dumps(body).encode())
    assert done.returncode == 2
    assert done.stderr.decode().count("\n") == 1
    assert "total" in done.stderr.decode()


def test_unreadable_input_exits_2() -> None:
    done = kassa("receipt", "check", stdin=b"{not json")
    assert done.returncode == 2
    assert b"Traceback" not in done.stderr


CORPUS = Path(__file__).parents[1] / "protocols" / "corpus"


@pytest.mark.parametrize("path", SHIPPED_SAMPLES, ids=lambda p: p.name)
def test_shipped_samples_check_clean_and_give_tlv(path: Path) -> None:
    args = ["--operation", path.stem.split("-")[1]] if path.name.startswith("atol-") else []
    done = kassa("receipt", "check", *args, str(path))
    assert (done.returncode, done.stdout) == (0, b""), done.stdout
    done = kassa("receipt", "tlv", *args, str(path))
    assert done.returncode == 0, done.stderr
    code = 31 if "correction" in path.name.lower() else 3
    assert decode_receipt(bytes.fromhex(done.stdout.decode())).document.code == code


def test_atol_problems_carry_atol_codes() -> None:
    body = json.loads((CORPUS / "atol-sell-marked.json").read_text())
    body["receipt"]["total"] = 1
    done = kassa("receipt", "check", "--operation", "sell", stdin=json.dumps(body).encode())
    assert done.returncode == 1
    problems = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert {"path": "receipt.total", "code": "total.items_mismatch"}.items() <= problems[0].items()
    assert problems[0]["atol_code"] == 32


def test_komtet_unknown_field_is_a_problem_with_its_path() -> None:
    body = json.loads((CORPUS / "komtet-buy.json").read_text())
    body["positions"][0]["colour"] = "red"
    done = kassa("receipt", "check", stdin=json.dumps(body).encode())
    assert done.returncode == 1
    problem = json.loads(done.stdout.decode().splitlines()[0])
    assert problem["path"] == "positions[0].colour" and problem["status"] == 422


def test_an_undetectable_format_exits_2() -> None:
    done = kassa("receipt", "check", stdin=b'{"hello": 1}')
    assert done.returncode == 2
    assert "cannot tell the format" in done.stderr.decode()


def test_the_help_names_every_receipt_action() -> None:
    """``show`` talks to the service; it is a receipt action all the same, and the help says so."""
    listed = kassa("receipt", "--help")
    assert listed.returncode == 0, listed.stderr
    actions = re.findall(r"^ {4}(\w+) ", listed.stdout.decode(), re.MULTILINE)
    assert actions == ["check", "tlv", "show"]
    overview = kassa("--help").stdout.decode()
    found = re.search(r"^ {4}receipt +(.*(?:\n {5,}.*)*)", overview, re.MULTILINE)
    assert found is not None, overview
    described = " ".join(found.group(1).split())
    assert described == "check receipt files, make their TLV, show a job's receipt"


def test_check_knows_what_the_registers_refuse() -> None:
    """The engine's own checks run here too: what passes this check passes ``submit``."""
    every_rate = str(Path(__file__).parents[2] / "samples" / "kassa-sell-every-rate.json")
    done = kassa("receipt", "check", every_rate, "--register", "shtrih:legacy")
    assert done.returncode == 1
    problems = [json.loads(line) for line in done.stdout.decode().splitlines()]
    rates = [json.loads(Path(every_rate).read_text())["items"][i]["vat"] for i in range(12)]
    assert [(p["path"], p["code"]) for p in problems] == [
        (f"items[{i}].vat", "register.vat_rate") for i, rate in enumerate(rates) if rate > 6
    ]
    assert kassa("receipt", "check", every_rate).returncode == 0  # 2026 firmware: every rate

    atol = json.loads((CORPUS / "atol-sell-every-rate.json").read_text())
    done = kassa("receipt", "check", "--register", "atol:legacy", stdin=json.dumps(atol).encode())
    problems = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert problems[0]["path"] == "receipt.items[0].vat.type"  # the body's own path
    assert (problems[0]["code"], problems[0]["atol_code"]) == ("register.vat_rate", 32)

    both = json.loads((CORPUS / "atol-sell-marked.json").read_text())
    both["receipt"]["additional_check_props"] = "заказ 1001"  # 1192 beside 1084
    done = kassa("receipt", "check", stdin=json.dumps(both).encode())
    problems = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert [(p["path"], p["code"]) for p in problems] == [
        ("receipt.additional_user_props", "engine.marker")
    ]


def test_a_register_that_does_not_exist_exits_2() -> None:
    for bad in ("epson", "shtrih:1999"):
        done = kassa("receipt", "check", "--register", bad, stdin=json.dumps(RECEIPT).encode())
        assert done.returncode == 2 and done.stdout == b""
        assert done.stderr.decode().count("\n") == 1 and "--register" in done.stderr.decode()
