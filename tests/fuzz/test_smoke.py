"""The fuzzing smoke of `make test`: every target for a few thousand inputs, and `kassa fuzz`
itself end to end (atheris, the JSON line, a finding minimised, saved and replayed).

Long campaigns are `make fuzz`; these stay within a few seconds of wall time each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fuzz.runner import listing
from fuzz.targets import targets

ROOT = Path(__file__).parents[2]
KASSA = [sys.executable, "-m", "engine.cli"]


def kassa(*args: str, selftest: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if selftest:
        env["KASSA_FUZZ_SELFTEST"] = "1"
    return subprocess.run(
        [*KASSA, "fuzz", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_every_target_holds_on_its_seeds_and_thousands_of_mutations() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "fuzz.smoke", "2000"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    said = dict(line.split(": ", 1) for line in run.stdout.splitlines())
    assert set(said) == set(targets()), run.stdout
    for name, line in said.items():
        assert int(line.split()[0]) == (200 if targets()[name].slow else 2000), (name, line)


def test_the_list_names_every_target_and_the_http_door() -> None:
    run = kassa("--list")
    assert run.returncode == 0, run.stderr
    names = [line.split()[0] for line in run.stdout.splitlines()]
    assert names == [name for name, _ in listing()]
    assert {"tlv", "ffd", "tlv-reference", "wire", "komtet", "http"} <= set(names)


def test_kassa_fuzz_tlv_ends_with_a_json_line_of_what_it_did(tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    run = kassa("tlv", "--runs", "3000", "--json", "--corpus", str(tmp_path))
    assert run.returncode == 0, run.stdout + run.stderr
    outcome = json.loads(run.stdout.splitlines()[-1])
    assert outcome["target"] == "tlv" and outcome["engine"] == "atheris", outcome
    assert outcome["executions"] >= 3000 and outcome["findings"] == [], outcome
    assert outcome["coverage"] > 50 and outcome["features"] >= outcome["coverage"], outcome
    assert "executions" in run.stderr and "cov" in run.stderr  # the progress line
    assert len(list((tmp_path / "corpus" / "tlv").iterdir())) >= len(targets()["tlv"].seeds())


def test_a_finding_is_minimised_saved_with_its_traceback_and_replays(tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    run = kassa("selftest", "--time", "30", "--json", "--corpus", str(tmp_path), selftest=True)
    assert run.returncode == 1, run.stdout + run.stderr
    outcome = json.loads(run.stdout.splitlines()[-1])
    [finding] = map(Path, outcome["findings"])
    assert finding.read_bytes() == b"\xab"  # minimised to the one byte that matters
    report = finding.with_suffix(".txt").read_text()
    assert "target: selftest" in report and "Broken: the planted bug" in report, report
    replayed = kassa("selftest", "--replay", str(finding), selftest=True)
    assert replayed.returncode == 1 and "the planted bug" in replayed.stdout, replayed.stdout
    holds = tmp_path / "holds"
    holds.write_bytes(b"\x00")
    assert kassa("selftest", "--replay", str(holds), selftest=True).returncode == 0


def test_an_unknown_target_is_refused_in_one_line() -> None:
    run = kassa("nonesuch", "--time", "1")
    assert run.returncode != 0
    assert "no fuzz target 'nonesuch'" in run.stderr and "Traceback" not in run.stderr
