"""What the whole suite shares: the PostgreSQL tests are left out, in one line, where no
server answers.

A test module that needs the server says so the way tests/engine/test_journal_pg.py does,
with a module-level ``if postgres_down(): pytest.skip(...)``. Where none answers, those modules
are not collected at all and the run ends with one line naming them and why, rather than a
skip line per module (and the journal's contract runs on SQLite alone).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

#: How a module says it needs the PostgreSQL server (see the docstring).
NEEDS_POSTGRES = re.compile(r"^if postgres_down\(\):", re.MULTILINE)

_left_out: list[str] = []


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path.suffix != ".py" or not collection_path.name.startswith("test_"):
        return None
    try:
        needs = NEEDS_POSTGRES.search(collection_path.read_text(encoding="utf-8"))
    except OSError:
        return None
    if needs is None:
        return None
    from tests.engine.conftest import postgres_down

    if postgres_down() is None:
        return None
    _left_out.append(collection_path.name)
    return True


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _left_out:
        from tests.engine.conftest import postgres_down

        terminalreporter.write_line(
            f"SKIPPED the PostgreSQL tests ({', '.join(sorted(_left_out))}): {postgres_down()}"
        )
