"""Shtrih-M register protocol (протокол ККТ «Штрих-М»): link v1 and v2, commands, codes.

Layout:
- :mod:`.link_v1` — the standard link (ENQ/ACK/NAK, STX frames with LRC), host and device;
- :mod:`.link_v2` — the alternative link (numbered 0x8F packets, CRC-16, stuffing), both roles;
- :mod:`.events` — the events both links exchange with the application;
- :mod:`.commands` — request and answer classes and the :data:`REGISTRY` of command codes;
- :mod:`.wire` — field codecs the command classes are declared with;
- :mod:`.codes` — error codes, modes, submodes and flag tables;
- :mod:`.errors` — :class:`ShtrihError`, the one exception this package raises.

Sans-IO: nothing here reads a clock or a socket. The caller feeds bytes, pulls events, writes
what the connection returns and tells it when a timer it armed has expired.
"""

from protocols.shtrih.codes import ERROR_TEXTS, ErrorCode, Mode, Submode, describe_error
from protocols.shtrih.commands import (
    REGISTRY,
    Answer,
    CommandSpec,
    ErrorAnswer,
    Request,
    command_code,
    decode_answer,
    decode_request,
)
from protocols.shtrih.errors import ShtrihError
from protocols.shtrih.events import (
    NEED_DATA,
    AnswerFrame,
    CommandFrame,
    Event,
    NeedData,
    RepeatedCommandFrame,
    StaleAnswerFrame,
    Timer,
)
from protocols.shtrih.link_v1 import LinkV1Device, LinkV1Host
from protocols.shtrih.link_v2 import LinkV2Device, LinkV2Host

__all__ = [
    "ERROR_TEXTS",
    "NEED_DATA",
    "REGISTRY",
    "Answer",
    "AnswerFrame",
    "CommandFrame",
    "CommandSpec",
    "ErrorAnswer",
    "ErrorCode",
    "Event",
    "LinkV1Device",
    "LinkV1Host",
    "LinkV2Device",
    "LinkV2Host",
    "Mode",
    "NeedData",
    "RepeatedCommandFrame",
    "Request",
    "ShtrihError",
    "StaleAnswerFrame",
    "Submode",
    "Timer",
    "command_code",
    "decode_answer",
    "decode_request",
    "describe_error",
]
