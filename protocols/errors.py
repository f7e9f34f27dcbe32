"""The common base of every codec's own error type.

Each protocol raises exactly one error type of its own (a subclass of :class:`ProtocolError`),
so a caller can catch one codec's failures without catching programming errors.
"""

from __future__ import annotations


class ProtocolError(ValueError):
    """Input that a codec cannot accept; ``path`` says where, ``reason`` says why."""

    def __init__(self, reason: str, path: str = "") -> None:
        self.reason = reason
        self.path = path
        super().__init__(f"{path}: {reason}" if path else reason)
