"""docs/reliability.md names a test or benchmark for each promise: every one it names exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from engine.cli import BENCHMARKS

ROOT = Path(__file__).parents[1]
DOC = ROOT / "docs" / "reliability.md"


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    }


def test_every_test_the_reliability_promises_name_exists() -> None:
    text = DOC.read_text()
    named: list[tuple[str, str]] = []
    for row in text.splitlines():
        file = ""
        # `tests/x.py::test_a`, `::test_b` (the row's last file), or a bare `tests/x.py`
        for path, test in re.findall(r"`(tests/[\w/]+\.py)?(?:::(test_\w+))?`", row):
            file = path or file
            if test:
                named.append((file, test))
            elif path:
                assert (ROOT / path).is_file(), path
    assert len(named) > 40
    for file, test in named:
        assert file, f"{test} has no file before it"
        assert test in _tests_in(ROOT / file), f"{file}::{test} is named but does not exist"


def test_every_benchmark_the_reliability_promises_name_exists() -> None:
    named = set(re.findall(r"`kassa bench ([a-z]+)`", DOC.read_text()))
    assert {"crash", "faults", "fairness"} <= named
    assert named <= set(BENCHMARKS), named - set(BENCHMARKS)
