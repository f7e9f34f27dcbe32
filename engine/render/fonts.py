"""The fonts the PNG and PDF receipts are drawn with: DejaVu Sans, shipped in this package.

Cyrillic needs a TrueType font, and a server's system fonts are whatever its image happens to
have: the receipt must look the same everywhere, so the two faces (regular and bold, about
1.4 MB; DejaVu's free license, fonts/LICENSE_DEJAVU) are package data rather than borrowed
from matplotlib, which is only a benchmark dependency.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["BOLD", "REGULAR"]

_FOLDER = Path(__file__).with_name("fonts")
REGULAR = _FOLDER / "DejaVuSans.ttf"
BOLD = _FOLDER / "DejaVuSans-Bold.ttf"
