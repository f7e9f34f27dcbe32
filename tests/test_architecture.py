"""The house rules of DESIGN.md, checked on the source: which room may import which."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
ROOMS = ("protocols", "transports", "engine", "emulator", "benchmarks", "fuzz")
#: room → the rooms it must never import (at module level or anywhere inside).
FORBIDDEN = {
    "protocols": {"transports", "engine", "emulator", "benchmarks", "fuzz"},
    "transports": {"engine", "emulator", "benchmarks", "fuzz"},
    "engine": {"emulator", "benchmarks", "fuzz"},
    "emulator": {"engine", "benchmarks", "fuzz"},
    "benchmarks": {"fuzz"},
}
#: The one meeting place: the CLI's ``emulator``, ``demo``, ``bench`` and ``fuzz`` commands import
#: their rooms inside the functions that run them. fuzz/, like benchmarks/, may import the rest.
CLI = ROOT / "engine" / "cli.py"


def imports(path: Path) -> list[tuple[str, bool]]:
    """(top-level package, imported at module level) for every import in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            continue
        found.extend((name.split(".")[0], id(node) in top_level) for name in names)
    return found


@pytest.mark.parametrize("room", sorted(FORBIDDEN))
def test_rooms_import_only_what_the_design_allows(room: str) -> None:
    for path in sorted((ROOT / room).rglob("*.py")):
        for package, module_level in imports(path):
            if package not in FORBIDDEN[room]:
                continue
            allowed = path == CLI and not module_level
            assert allowed, f"{path.relative_to(ROOT)} imports {package}"


def test_protocols_do_no_io() -> None:
    """Sans-IO: no sockets, no trio, no clocks in protocols/."""
    for path in sorted((ROOT / "protocols").rglob("*.py")):
        packages = {package for package, _ in imports(path)}
        assert not packages & {"trio", "socket", "zmq", "asyncio", "time"}, path
