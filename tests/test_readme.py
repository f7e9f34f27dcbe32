"""The README as a new user reads it: its Python examples run, its Layout matches the tree."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

README = (Path(__file__).parents[1] / "README.md").read_text()


def test_python_examples_run() -> None:
    """As written, in order, in one namespace."""
    blocks = re.findall(r"```python\n(.*?)```", README, re.DOTALL)
    assert len(blocks) >= 4
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)


def test_the_layout_names_every_module_and_folder() -> None:
    """The Layout section keeps up with the tree: every module a reader may open is named."""
    layout = re.search(r"## Layout\n\n```\n(.*?)```", README, re.DOTALL)
    assert layout is not None
    text = layout.group(1)
    root = Path(__file__).parents[1]
    packages = (
        "engine",
        "emulator",
        "transports",
        "protocols",
        "protocols/tlv",
        "protocols/documents",
    )
    modules = [
        path.name
        for package in packages
        for path in sorted((root / package).glob("*.py"))
        if not path.name.startswith("_")
    ]
    assert [name for name in modules if name not in text] == []
    ignored = [line.rstrip("/") for line in (root / ".gitignore").read_text().split()]
    folders = tuple(
        path.name
        for path in sorted(root.iterdir())
        if path.is_dir()
        and not path.name.startswith(".")
        and not any(fnmatch.fnmatch(path.name, pattern) for pattern in ignored)
    )
    assert "samples" in folders and "docs" in folders
    assert [f"{name}/" for name in folders if f"{name}/" not in text] == []
