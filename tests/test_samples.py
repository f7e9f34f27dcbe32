"""The receipt files Kassa ships for people to try: each one is its own job when submitted."""

from __future__ import annotations

from pathlib import Path

from engine.cli import _submission

ROOT = Path(__file__).parents[1]
#: Kassa's own receipt JSON in samples/, and the ATOL v5 and KOMTET corpus the README uses.
SAMPLE_FOLDERS = (ROOT / "samples", ROOT / "tests" / "protocols" / "corpus")
SHIPPED_SAMPLES = sorted(path for folder in SAMPLE_FOLDERS for path in folder.glob("*.json"))


def test_every_shipped_sample_has_an_external_id_of_its_own() -> None:
    """``kassa submit samples/*.json tests/protocols/corpus/*.json`` makes one job per file.

    The external_id is found as ``kassa submit`` finds it: the body's own (ATOL, KOMTET), or
    the file's stem (Kassa JSON). Two files sharing one would make the second a conflict.
    """
    files: dict[str, list[str]] = {}
    for path in SHIPPED_SAMPLES:
        external_id = _submission(str(path), "auto", "main", None).external_id
        files.setdefault(external_id, []).append(str(path.relative_to(ROOT)))
    assert {eid: paths for eid, paths in files.items() if len(paths) > 1} == {}
    assert len(files) == len(SHIPPED_SAMPLES)
    assert {path.parent.name for path in SHIPPED_SAMPLES} == {"samples", "corpus"}
