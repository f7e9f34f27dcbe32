"""Byte pipes for trio: TCP, serial line, in-memory pairs, and the ZeroMQ socket adapter."""

from transports.errors import ConnectTimeout, TransportError

__all__ = ["ConnectTimeout", "TransportError"]
