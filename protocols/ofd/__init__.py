"""KKT ↔ OFD (оператор фискальных данных) transport: session header, container, operator ack.

Layout: ``_session`` (the 30-byte session header and :class:`OfdError`), ``_container`` (the
32-byte container header around the document TLV), ``_ack`` (document 7, the operator ack),
``_connection`` (the sans-IO state machine, CLIENT = the KKT, SERVER = the OFD). Source:
ffd.md §6 and the yandex/ofd implementation it describes.

Where the sources are silent, this package assumes:

- Version fields (S-version, P-version), service data 1 and 2 and the trailer are opaque
  bytes: kept exactly as they came, never interpreted. So is the session-header CRC, which
  is never checked (only mode 00, no CRC, is seen in public captures).
- A session header with body length 0 announces no container; any other body is one
  container of 36..32768 bytes.
- The container body is unencrypted: the document TLV's own header gives its end, and the
  rest is a trailer of 0 or 10 bytes.
- The ФН number in the container is packed BCD, digits first, F filler at the end.
- The FD number in the container is read as written (3 bytes, big-endian), even where a
  sender wrote something else there (the yandex mock writes ASCII, G2).
"""

from protocols.ofd._ack import OperatorAck
from protocols.ofd._connection import (
    MAX_BUFFER,
    MAX_MESSAGE,
    NEED_DATA,
    TRANSITIONS,
    ConnectionClosed,
    Input,
    Message,
    OfdConnection,
    Role,
    Sentinel,
    State,
)
from protocols.ofd._container import (
    CONTAINER_HEADER_SIZE,
    KKT_TO_OFD,
    OFD_TO_KKT,
    TRAILER_SIZE,
    Container,
)
from protocols.ofd._session import (
    FLAGS_EXPECT_REPLY,
    HEADER_SIZE,
    MARKING_SIGNATURE,
    MAX_CONTAINER,
    MIN_CONTAINER,
    OFD_SIGNATURE,
    P_VERSION_FFD_10,
    P_VERSION_FFD_11,
    P_VERSION_FFD_12,
    P_VERSION_FFD_105,
    S_VERSION,
    OfdError,
    SessionHeader,
)

__all__ = [
    "CONTAINER_HEADER_SIZE",
    "FLAGS_EXPECT_REPLY",
    "HEADER_SIZE",
    "KKT_TO_OFD",
    "MARKING_SIGNATURE",
    "MAX_BUFFER",
    "MAX_CONTAINER",
    "MAX_MESSAGE",
    "MIN_CONTAINER",
    "NEED_DATA",
    "OFD_SIGNATURE",
    "OFD_TO_KKT",
    "P_VERSION_FFD_10",
    "P_VERSION_FFD_11",
    "P_VERSION_FFD_12",
    "P_VERSION_FFD_105",
    "S_VERSION",
    "TRAILER_SIZE",
    "TRANSITIONS",
    "ConnectionClosed",
    "Container",
    "Input",
    "Message",
    "OfdConnection",
    "OfdError",
    "OperatorAck",
    "Role",
    "Sentinel",
    "SessionHeader",
    "State",
]
