"""The one error type of the ATOL codec."""

from __future__ import annotations

from protocols.errors import ProtocolError

__all__ = ["AtolError"]


class AtolError(ProtocolError):
    """ATOL bytes that cannot be decoded, a value that cannot be encoded, or a step the task
    buffer does not allow; ``path`` names the field or the state, ``reason`` says why."""
