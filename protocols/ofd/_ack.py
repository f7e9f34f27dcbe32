"""The operator ack (подтверждение оператора, document 7) that an OFD returns for a document.

1017 ОФД INN (12, space-padded), 1041 ФН number (16), 1040 ФД number (U32), 1012 time
(UNIXTIME), 1068 STLV holding 1022 response code (BYTE), and 1078 ФПО (≤ 16 bytes) when the
OFD signs it (ffd.md §2.8). The yandex mock omits 1078 and sends 1017 unpadded (G2).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Self, TypeVar

import attrs

from protocols.ofd._session import OfdError
from protocols.tlv import TagMap, TlvError, decode_document, encode_document

__all__ = ["OperatorAck"]

_EPOCH = datetime(1970, 1, 1)
T = TypeVar("T")


def _unixtime(_: Any, attribute: attrs.Attribute[datetime], value: datetime) -> None:
    if type(value) is not datetime or value.tzinfo is not None or value.microsecond:
        raise OfdError(f"{value!r} is not a naive datetime in whole seconds", attribute.name)
    if not 0 <= (value - _EPOCH) // timedelta(seconds=1) < 1 << 32:
        raise OfdError(f"{value} does not fit UNIXTIME", attribute.name)


@attrs.frozen(kw_only=True)
class OperatorAck:
    """Document 7. ``at`` is the OFD's wall-clock time, UNIXTIME read as UTC (ffd.md §1.2).

    Tags this class does not model (1206, 1047 inside 1068) are skipped when reading.
    """

    ofd_inn: str = attrs.field()
    fn_number: str = attrs.field()
    fd_number: int = attrs.field()
    at: datetime = attrs.field(validator=_unixtime)
    response_code: int = attrs.field(default=0)
    operator_sign: bytes | None = attrs.field(default=None)

    @ofd_inn.validator
    def _check_inn(self, attribute: attrs.Attribute[str], value: str) -> None:
        if not (isinstance(value, str) and value.isascii()) or len(value) > 12:
            raise OfdError(f"{value!r} is not at most 12 ASCII characters", attribute.name)
        if value != value.rstrip(" "):
            raise OfdError(f"{value!r} ends in the padding", attribute.name)

    @fn_number.validator
    def _check_fn(self, attribute: attrs.Attribute[str], value: str) -> None:
        if not (isinstance(value, str) and value.isascii()) or len(value) != 16:
            raise OfdError(f"{value!r} is not 16 ASCII characters", attribute.name)

    @fd_number.validator
    def _check_fd(self, attribute: attrs.Attribute[int], value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 32:
            raise OfdError(f"{value!r} is not a U32", attribute.name)

    @response_code.validator
    def _check_code(self, attribute: attrs.Attribute[int], value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFF:
            raise OfdError(f"{value!r} is not a BYTE", attribute.name)

    @operator_sign.validator
    def _check_sign(self, attribute: attrs.Attribute[bytes | None], value: bytes | None) -> None:
        if value is not None and (type(value) is not bytes or len(value) > 16):
            raise OfdError(f"{value!r} is not at most 16 bytes", attribute.name)

    def to_tlv(self) -> bytes:
        """The whole document TLV (tag 7), in the yandex mock's order, 1078 last."""
        fields: TagMap = {
            1017: self.ofd_inn,
            1041: self.fn_number,
            1040: self.fd_number,
            1012: self.at,
            1068: {1022: self.response_code},
        }
        if self.operator_sign is not None:
            fields[1078] = self.operator_sign
        try:
            return encode_document(7, fields)
        except TlvError as exc:
            raise OfdError(exc.reason, exc.path) from None

    @classmethod
    def from_tlv(cls, data: bytes) -> Self:
        """Read document 7 from its TLV bytes (``Container.document``)."""
        try:
            document = decode_document(data)
        except TlvError as exc:
            raise OfdError(exc.reason, exc.path or "ack") from None
        if document.code != 7:
            raise OfdError(f"an operator ack is document 7, not {document.code}", "ack")
        fields = document.fields
        for number in (1017, 1041, 1040, 1012, 1068):
            if number not in fields:
                raise OfdError(f"tag {number} is missing", "7")
        message = fields[1068]
        if not isinstance(message, dict) or 1022 not in message:
            raise OfdError("tag 1022 is missing", "7/1068")
        sign = fields.get(1078)
        return cls(
            ofd_inn=_scalar(fields[1017], str, "7/1017").rstrip(" "),
            fn_number=_scalar(fields[1041], str, "7/1041"),
            fd_number=_scalar(fields[1040], int, "7/1040"),
            at=_scalar(fields[1012], datetime, "7/1012"),
            response_code=_scalar(message[1022], int, "7/1068/1022"),
            operator_sign=None if sign is None else _scalar(sign, bytes, "7/1078"),
        )


def _scalar(value: object, kind: type[T], path: str) -> T:
    """One value of the expected type; a repeated tag is refused."""
    if not isinstance(value, kind):
        raise OfdError("tag is repeated or of the wrong type", path)
    return value
