"""Byte pipes for trio: TCP, serial line, in-memory pairs, and the ZeroMQ socket adapter."""
