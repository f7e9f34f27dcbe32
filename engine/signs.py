"""Checks on every signed receipt before its result is journaled (проверка фискального признака).

The register's answer is not trusted blindly: a wrong FD number means a document the journal
does not know about (or a lost one), a malformed 1077 means a broken register or driver, and a
QR string that disagrees with the document would send a buyer to a receipt that does not exist.
Each check answers with a sentence naming what disagrees; an empty list means the result holds.
"""

from __future__ import annotations

import attrs

from protocols.documents.ffd import FiscalizedReceipt, decode_receipt
from protocols.documents.model import Receipt
from protocols.documents.qr import parse_receipt_qr, receipt_qr
from protocols.errors import ProtocolError
from protocols.fiscal_sign import FiscalSignError, SignVerifier, printed_fiscal_sign

#: 1077 ФПД is 6 bytes: a 2-byte prefix and the 4 bytes the printed ФП is read from.
FISCAL_SIGN_LENGTH = 6


@attrs.frozen
class Checked:
    """A signed receipt after the checks: what to journal, and what is wrong with it."""

    signed: FiscalizedReceipt | None  # the document decoded (None when it does not decode)
    fiscal_sign: bytes
    printed_sign: int
    qr: str
    problems: tuple[str, ...]


def check_signed(
    document: bytes,
    *,
    sent: Receipt,
    fd_number: int,
    fn_number: str | None,
    previous_fd: int | None,
    printed_sign: int | None,
    verifier: SignVerifier | None,
) -> Checked:
    """Every check on a document the register says it signed as ``fd_number``.

    ``previous_fd`` is the last FD the engine knows for this ФН (None after a restart or in
    recovery, where documents may lie between); ``printed_sign`` is the ФП the register's
    answer carried, when its protocol gives one.
    """
    problems: list[str] = []
    try:
        signed = decode_receipt(document)
    except ProtocolError as exc:
        return Checked(None, b"", 0, "", (f"the document does not decode: {exc}",))
    fiscal = signed.fiscal
    if fiscal is None:
        return Checked(signed, b"", 0, "", ("the document carries no fiscal data (1040/1077)",))
    sign = fiscal.fiscal_sign
    if len(sign) != FISCAL_SIGN_LENGTH:
        problems.append(f"1077 is {len(sign)} bytes, not {FISCAL_SIGN_LENGTH}")
    printed = printed_fiscal_sign(sign) if len(sign) == FISCAL_SIGN_LENGTH else 0
    if printed_sign is not None and printed_sign != printed:
        problems.append(
            f"the register answered ФП {printed_sign}, the document's 1077 gives {printed}"
        )
    if fiscal.fd_number != fd_number:
        problems.append(f"1040 is {fiscal.fd_number}, the register answered FD {fd_number}")
    if previous_fd is not None and fd_number != previous_fd + 1:
        problems.append(f"FD {fd_number} does not follow FD {previous_fd} of this ФН")
    if fn_number is not None and fiscal.fn_number != fn_number:
        problems.append(f"1041 is {fiscal.fn_number}, the register's ФН is {fn_number}")
    receipt = signed.receipt
    if receipt.total != sent.total or receipt.operation != sent.operation:
        problems.append(
            f"1020/1054 are {receipt.total}/{receipt.operation}, "
            f"the job sent {sent.total}/{sent.operation}"
        )
    try:
        qr = receipt_qr(
            fiscal.time,
            receipt.total,
            fiscal.fn_number,
            fiscal.fd_number,
            printed,
            receipt.operation,
        )
        parsed = parse_receipt_qr(qr)
    except ProtocolError as exc:
        qr = ""
        problems.append(f"no QR string can be built from the document: {exc}")
    else:
        if (parsed.fd_number, parsed.fn_number, parsed.printed_sign, parsed.total) != (
            fiscal.fd_number,
            fiscal.fn_number,
            printed,
            receipt.total,
        ):
            problems.append(f"the QR string {qr!r} disagrees with the document")
    if verifier is not None:
        try:
            verdict = verifier.verify(document)
        except FiscalSignError as exc:
            verdict = False
            problems.append(f"1077 cannot be checked: {exc}")
        if verdict is False:
            problems.append("1077 does not match the document (the fiscal sign check failed)")
    return Checked(signed, sign, printed, qr, tuple(problems))
