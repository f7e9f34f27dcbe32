"""The TLV benchmark runs at a tiny size and reports what it measured (not a timed test)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

KASSA = str(Path(sys.executable).with_name("kassa"))


def test_kassa_bench_tlv_quick_prints_a_table_and_json() -> None:
    done = subprocess.run(
        [KASSA, "bench", "tlv", "--quick", "--json"], capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().strip().splitlines()
    assert "kassa decode" in done.stdout.decode()
    result = json.loads(lines[-1])
    assert result["benchmark"] == "tlv"
    assert result["decode_per_s"] > 0 and result["encode_per_s"] > 0
    assert result["reference_decode_per_s"] > 0


def test_unknown_benchmark_exits_2() -> None:
    done = subprocess.run([KASSA, "bench", "nosuch"], capture_output=True, timeout=60)
    assert done.returncode == 2
    assert "unknown benchmark" in done.stderr.decode()
