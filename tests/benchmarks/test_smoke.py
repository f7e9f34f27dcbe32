"""Every benchmark runs at a tiny size through ``kassa bench`` (a smoke run, never a timed test)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.cli import BENCHMARKS

KASSA = str(Path(sys.executable).with_name("kassa"))


def rates(result: Any) -> list[float]:
    """Every ``*_per_s`` figure in a benchmark's JSON, however nested."""
    if isinstance(result, dict):
        found = [v for k, v in result.items() if k.endswith("_per_s") and not isinstance(v, dict)]
        return found + [r for v in result.values() for r in rates(v)]
    if isinstance(result, list):
        return [r for v in result for r in rates(v)]
    return []


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_benchmark_quick_run_prints_a_table_and_json(name: str) -> None:
    done = subprocess.run(
        [KASSA, "bench", name, "--quick", "--json"], capture_output=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().strip().splitlines()
    assert len(lines) > 2, "a table comes before the JSON line"
    result = json.loads(lines[-1])
    assert result["benchmark"] == name
    measured = rates(result)
    assert measured and all(r > 0 for r in measured)


def test_tlv_benchmark_sets_kassa_beside_the_reference_decoder() -> None:
    done = subprocess.run([KASSA, "bench", "tlv", "--quick", "--json"], capture_output=True)
    result = json.loads(done.stdout.decode().splitlines()[-1])
    assert result["reference_decode_per_s"] > 0 and result["decode_speedup"] > 0


def test_unknown_benchmark_exits_2() -> None:
    done = subprocess.run([KASSA, "bench", "nosuch"], capture_output=True, timeout=60)
    assert done.returncode == 2
    assert "unknown benchmark" in done.stderr.decode()
