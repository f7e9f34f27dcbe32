"""Reading a fuzzer's bytes as a sequence of decisions, the same way in every run.

libFuzzer hands a target one flat byte string. Targets that drive a state machine or mutate a
structured body read it through :class:`Reader` (numbers, choices, chunks), so one input is one
reproducible script; :func:`steps` and :func:`script` cut and build the (opcode, chunk) form the
link targets use, so a seed can be written from a captured frame.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


class Reader:
    """Decisions drawn from the front of ``data``; past its end every read is zero or empty."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    @property
    def left(self) -> int:
        return len(self.data) - self.at

    def byte(self) -> int:
        if self.at >= len(self.data):
            return 0
        self.at += 1
        return self.data[self.at - 1]

    def number(self, size: int) -> int:
        """An unsigned little-endian number of ``size`` bytes."""
        chunk = self.chunk(size)
        return int.from_bytes(chunk.ljust(size, b"\0"), "little")

    def pick(self, options: Sequence[T]) -> T:
        return options[self.byte() % len(options)]

    def chunk(self, size: int) -> bytes:
        out = self.data[self.at : self.at + size]
        self.at += len(out)
        return out

    def rest(self) -> bytes:
        return self.chunk(self.left)


def steps(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(opcode, chunk) pairs: one opcode byte, one length byte, then that many bytes."""
    reader = Reader(data)
    while reader.left:
        op = reader.byte()
        size = reader.byte()
        yield op, reader.chunk(size)


def script(*pairs: tuple[int, bytes]) -> bytes:
    """The bytes :func:`steps` reads back as ``pairs`` (chunks over 255 bytes are split)."""
    out = bytearray()
    for op, chunk in pairs:
        for start in range(0, max(len(chunk), 1), 255):
            part = chunk[start : start + 255]
            out += bytes((op, len(part))) + part
    return bytes(out)
