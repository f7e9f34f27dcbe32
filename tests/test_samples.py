"""The receipt files Kassa ships for people to try."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).parents[1]
#: Kassa's own receipt JSON in samples/, and the ATOL v5 and KOMTET corpus the README uses.
SAMPLE_FOLDERS = (ROOT / "samples", ROOT / "tests" / "protocols" / "corpus")
SHIPPED_SAMPLES = sorted(path for folder in SAMPLE_FOLDERS for path in folder.glob("*.json"))
