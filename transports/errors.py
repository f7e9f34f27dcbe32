"""The one error type of the byte pipes, so a driver can tell "the wire is gone" from a bug."""

from __future__ import annotations


class TransportError(OSError):
    """A pipe that could not be opened or set up; the message names the endpoint."""


class ConnectTimeout(TransportError, TimeoutError):
    """A connection that did not complete in time (a register powered off or unplugged)."""
