"""Events of the Shtrih-M link layers (события канального уровня), shared by v1 and v2.

The link layers carry opaque payloads (``CMD DATA`` / ``CMD ERR DATA``); decoding them is the
job of :mod:`.commands`. ``number`` is the v2 packet number (номер пакета); it is None on v1
and on events a host passes to ``send`` (the host numbers its own packets).
"""

from __future__ import annotations

import enum
from typing import Any, Literal

import attrs

from protocols.shtrih.errors import ShtrihError

__all__ = [
    "NEED_DATA",
    "AnswerFrame",
    "CommandFrame",
    "Event",
    "NeedData",
    "RepeatedCommandFrame",
    "StaleAnswerFrame",
    "Timer",
]


def _payload(_instance: object, attribute: attrs.Attribute[bytes], value: bytes) -> None:
    if not isinstance(value, bytes) or not value:
        raise ShtrihError("a payload is non-empty bytes", attribute.name)


def _number(_instance: object, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None and not 0 <= value <= 0xFFFF:
        raise ShtrihError(f"{value} is not a 16-bit packet number", attribute.name)


@attrs.frozen(kw_only=True)
class CommandFrame:
    """A command (команда): the host sends it, the device receives it to execute."""

    payload: bytes = attrs.field(validator=_payload)
    number: int | None = attrs.field(default=None, validator=_number)


@attrs.frozen(kw_only=True)
class AnswerFrame:
    """The answer to the command in flight (ответ): the device sends it, the host receives it."""

    payload: bytes = attrs.field(validator=_payload)
    number: int | None = attrs.field(default=None, validator=_number)


@attrs.frozen(kw_only=True)
class StaleAnswerFrame:
    """An answer that belongs to no command in flight (a leftover of an interrupted exchange).

    The host acknowledges and reports it but never takes it as the current answer; a driver
    may log it or use it in recovery.
    """

    payload: bytes = attrs.field(validator=_payload)
    number: int | None = attrs.field(default=None, validator=_number)


@attrs.frozen(kw_only=True)
class RepeatedCommandFrame:
    """v2 only: a command packet the device did not execute (повтор).

    Either a repeat of a number already executed or being executed, or a number out of
    sequence. The device role answers it by itself with the cached answer (if one exists);
    the application must not execute it again.
    """

    payload: bytes = attrs.field(validator=_payload)
    number: int = attrs.field(validator=_number)


Event = CommandFrame | AnswerFrame | StaleAnswerFrame | RepeatedCommandFrame


class NeedData(enum.Enum):
    """The sentinel ``next_event`` returns when it needs more bytes (h11's NEED_DATA)."""

    NEED_DATA = "NEED_DATA"


NEED_DATA: Literal[NeedData.NEED_DATA] = NeedData.NEED_DATA


class Timer(enum.Enum):
    """Which timeout the caller should arm before waiting; ``timeout()`` reports its expiry.

    The codec has no clock: the caller owns time and picks the durations (reference §1.2,
    §4.3): BYTE ≈ the byte timeout (50–100 ms), LINK ≈ a few byte timeouts, ANSWER = the
    command's timeout (:attr:`~.commands.CommandSpec.timeout_ms`).
    """

    NONE = "none"
    BYTE = "byte"
    LINK = "link"
    ANSWER = "answer"
