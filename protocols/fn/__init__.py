"""KKT ↔ ФН (фискальный накопитель, fiscal storage): frames, commands, answers, the link.

Layout: ``_frame`` (the ``04 | LEN | CODE | DATA | CRC`` frame and :class:`FnError`),
``_codes`` (result codes, phases, flag bytes), ``_fields`` (private field encodings),
``_commands`` (one frozen class per command and per answer), ``_connection`` (the sans-IO
state machine, HOST = the KKT, DEVICE = the ФН). Sources: ffd.md §7, registers.md §3 and the
moguchev/KKM driver and ФН model, which agree with each other.

Where the sources are silent, this package assumes what real devices and drivers do:

- Every answer's status byte is a result code in bits 0–6 and a warning flag in bit 7. A
  non-zero code decodes as :class:`Failure` for any command; a real ФН sends no data with
  it, and any that comes is kept opaque in ``Failure.data``.
- DATE_TIME is 5 bytes ``YY MM DD hh mm`` (year − 2000), a naive wall-clock ``datetime`` in
  whole minutes; five zero bytes in an answer (no document yet) read as ``None``. The expiry
  date of 32h is a 3-byte DATE, as both moguchev's driver and model read it.
- Fixed-width text (ФН number 16, INN 12, registration number 20, firmware version 16) is
  CP866, right-padded with spaces when built from a shorter value; padding that arrives
  (moguchev pads with NUL) is kept, so every frame re-encodes byte for byte.
- 02h (begin registration) carries no data; 03h carries DATE_TIME, INN, registration number,
  tax systems (1062) and work modes; 05h carries DATE_TIME and the registration number.
- 16h sends the total as a 5-byte little-endian count of kopecks; 12h, 14h and 16h answer a
  u16 number, the u32 ФД number and the u32 fiscal sign (ФП), all little-endian.
- 26h answers one byte, the OFD's response code; 40h answers document type, ack flag,
  DATE_TIME, ФД number, ФП and type-specific bytes kept raw; 41h answers DATE_TIME, the
  operator's sign (whatever length lies between) and the ФД number.
- Flag bytes are 0 or 1; phases, operation types (1054) and the 33h build type are strict.
- A command code outside the typed set travels as :class:`RawCommand` / :class:`RawAnswer`.
  The device side hands a known code with unreadable data over as a RawCommand too, so the
  ФН side can answer 01h, as a real ФН does, instead of dropping the link.
- ENQ (05h) is accepted only between frames on the device side; the host clears its
  partial answer when it sends one.
"""

from protocols.fn._codes import (
    MARKING_TABLE_SIZE,
    MAX_RECEIPT_DATA,
    ExchangeFlag,
    FnPhase,
    FnWarning,
    LocalCheckReason,
    MarkingRefusal,
    OnlineCheckCode,
    ResultCode,
    describe_result,
)
from protocols.fn._commands import (
    COMMANDS,
    Answer,
    ArchivedDocument,
    BeginCorrectionReceipt,
    BeginFiscalModeClosing,
    BeginMessageRead,
    BeginReceipt,
    BeginRegistration,
    BeginShiftClosing,
    BeginShiftOpening,
    CancelDocument,
    CancelMessageRead,
    CloseFiscalMode,
    CloseShift,
    Command,
    CountUnconfirmed,
    Done,
    ExchangeStatus,
    Failure,
    FindDocument,
    FinishMessageRead,
    FinishReceipt,
    FinishRegistration,
    FnExpiry,
    FnNumber,
    FnStatus,
    FnVersion,
    GetExchangeStatus,
    GetFnExpiry,
    GetFnNumber,
    GetFnStatus,
    GetFnVersion,
    GetOfdAck,
    GetShiftStatus,
    MessageBlock,
    MessageLength,
    OfdAckResult,
    OpenShift,
    PassOfdAck,
    RawAnswer,
    RawCommand,
    ReadMessageBlock,
    ReceiptDocument,
    Request,
    SendDocumentData,
    SetTransportStatus,
    ShiftDocument,
    ShiftStatus,
    SignedDocument,
    StoredOfdAck,
    UnconfirmedCount,
    decode_answer,
    decode_command,
)
from protocols.fn._connection import (
    MAX_BUFFER,
    NEED_DATA,
    TRANSITIONS,
    ConnectionClosed,
    Event,
    FnConnection,
    Input,
    RepeatAnswer,
    Role,
    Sentinel,
    State,
)
from protocols.fn._frame import (
    ENQ,
    MAX_DATA,
    MAX_FRAME,
    START,
    FnError,
    decode_frame,
    encode_frame,
    frame_size,
)

__all__ = [
    "COMMANDS",
    "ENQ",
    "MARKING_TABLE_SIZE",
    "MAX_BUFFER",
    "MAX_DATA",
    "MAX_FRAME",
    "MAX_RECEIPT_DATA",
    "NEED_DATA",
    "START",
    "TRANSITIONS",
    "Answer",
    "ArchivedDocument",
    "BeginCorrectionReceipt",
    "BeginFiscalModeClosing",
    "BeginMessageRead",
    "BeginReceipt",
    "BeginRegistration",
    "BeginShiftClosing",
    "BeginShiftOpening",
    "CancelDocument",
    "CancelMessageRead",
    "CloseFiscalMode",
    "CloseShift",
    "Command",
    "ConnectionClosed",
    "CountUnconfirmed",
    "Done",
    "Event",
    "ExchangeFlag",
    "ExchangeStatus",
    "Failure",
    "FindDocument",
    "FinishMessageRead",
    "FinishReceipt",
    "FinishRegistration",
    "FnConnection",
    "FnError",
    "FnExpiry",
    "FnNumber",
    "FnPhase",
    "FnStatus",
    "FnVersion",
    "FnWarning",
    "GetExchangeStatus",
    "GetFnExpiry",
    "GetFnNumber",
    "GetFnStatus",
    "GetFnVersion",
    "GetOfdAck",
    "GetShiftStatus",
    "Input",
    "LocalCheckReason",
    "MarkingRefusal",
    "MessageBlock",
    "MessageLength",
    "OfdAckResult",
    "OnlineCheckCode",
    "OpenShift",
    "PassOfdAck",
    "RawAnswer",
    "RawCommand",
    "ReadMessageBlock",
    "ReceiptDocument",
    "RepeatAnswer",
    "Request",
    "ResultCode",
    "Role",
    "SendDocumentData",
    "Sentinel",
    "SetTransportStatus",
    "ShiftDocument",
    "ShiftStatus",
    "SignedDocument",
    "State",
    "StoredOfdAck",
    "UnconfirmedCount",
    "decode_answer",
    "decode_command",
    "decode_frame",
    "describe_result",
    "encode_frame",
    "frame_size",
]
