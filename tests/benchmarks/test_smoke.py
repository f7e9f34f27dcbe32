"""Every benchmark runs at a tiny size through ``kassa bench`` (a smoke run, never a timed test)."""

from __future__ import annotations

import json
import os
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


#: The first eight bytes of every PNG file.
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_benchmark_quick_run_prints_a_table_and_writes_json_and_png(
    name: str, tmp_path: Path
) -> None:
    done = subprocess.run(
        [KASSA, "bench", name, "--quick", "--json", "--results", str(tmp_path)],
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().strip().splitlines()
    assert len(lines) > 2, "a table comes before the JSON line"
    result = json.loads(lines[-1])
    assert result["benchmark"] == name
    measured = rates(result)
    assert measured and all(r > 0 for r in measured)
    assert json.loads((tmp_path / f"{name}.json").read_text()) == result
    assert (tmp_path / f"{name}.png").read_bytes().startswith(PNG_SIGNATURE)
    if name == "e2e":  # the floors it compares with, each measured
        floors = [*result["floors_us"].values(), *result["spaced_work_us"].values()]
        assert len(result["spaced_work_us"]) == 4 and all(us > 0 for us in floors)


def test_tlv_benchmark_sets_kassa_beside_the_reference_codec(tmp_path: Path) -> None:
    done = subprocess.run(
        [KASSA, "bench", "tlv", "--quick", "--json", "--results", str(tmp_path)],
        capture_output=True,
    )
    result = json.loads(done.stdout.decode().splitlines()[-1])
    assert result["reference_decode_per_s"] > 0 and result["decode_over_reference"] > 0
    assert result["reference_encode_per_s"] > 0 and result["encode_over_reference"] > 0


def test_unknown_benchmark_exits_2() -> None:
    done = subprocess.run([KASSA, "bench", "nosuch"], capture_output=True, timeout=60)
    assert done.returncode == 2
    assert "unknown benchmark" in done.stderr.decode()


def test_shtrih_benchmark_sets_kassa_beside_pyshtrih(tmp_path: Path) -> None:
    pytest.importorskip("pyshtrih")
    done = subprocess.run(
        [KASSA, "bench", "shtrih", "--quick", "--json", "--results", str(tmp_path)],
        capture_output=True,
    )
    result = json.loads(done.stdout.decode().splitlines()[-1])
    assert result["reference"].startswith("pyshtrih ")
    for key in ("frame_ff46", "parse_ff46", "frame_status", "parse_status", "decode_status"):
        assert result[f"pyshtrih_{key}_per_s"] > 0 and result[f"{key}_speedup"] > 0


def test_bench_without_matplotlib_says_how_to_get_it_before_running(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    from engine.cli import main

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *rest: None if name == "matplotlib" else find_spec(name, *rest),
    )
    assert main(["bench", "tlv"]) == 2
    err = capsys.readouterr()
    assert "pip install 'kassa[bench]'" in err.err and err.out == ""


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="--pin needs two cores")
def test_e2e_pin_searches_the_fleet_sizes_with_the_engine_alone_on_a_core(tmp_path: Path) -> None:
    done = subprocess.run(
        [KASSA, "bench", "e2e", "--pin", "--quick", "--json", "--results", str(tmp_path)],
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert result["benchmark"] == "e2e-pin" and (tmp_path / "e2e-pin.json").exists()
    assert len(result["pinned"]["engine"]) == 1 and result["pinned"]["fleet_and_client"]
    sizes = [row["registers"] for row in result["rows"]]
    assert sizes and sizes[0] == 2 and max(sizes) <= 4  # --quick tries 2 to 4 registers
    assert result["stopped_by"] in ("engine", "fleet", "most")
    assert result["registers_per_engine_core"] in (0, *sizes)
    assert result["registers_per_engine_core_scheduling"] in (0, *sizes)
    assert 0.9 < result["ratio_ceiling"] < 1
    assert result["fleet_cap_registers"] > 0 and result["engine_cap_registers"] > 0
