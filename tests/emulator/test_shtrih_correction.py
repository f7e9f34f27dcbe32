"""Correction receipts (чек коррекции, document 31) on the Shtrih-M personality, and a whole
fiscal life through the driver, delivered to the emulated OFD.

A correction opens with FF35h, takes its lines by FF46h and its 1173/1174 by FF0Ch, and is
formed by FF45h: the ФН archives document 31 with the correction tags where the FFD puts them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal

import trio
import trio.testing

from emulator.serve import open_memory_fleet
from emulator.shtrih import ShtrihRegister
from engine.drivers.shtrih import ShtrihDriver
from engine.samples import card_sale, correction, marked_sale, prepayment, refund, settlement
from protocols.documents.ffd import decode_receipt
from protocols.documents.model import CorrectionBasis, CorrectionReceipt
from protocols.fiscal_sign import EmulatorSignVerifier, printed_fiscal_sign
from protocols.shtrih import commands as c
from protocols.shtrih.codes import ErrorCode, FnDocumentKind, Mode
from protocols.tlv import decode_document, encode
from tests.emulator.test_shtrih_register import PW, Host, close, error_of, read_back, sale

BASIS = {1178: dt.datetime(2026, 3, 1), 1179: "ПР-12"}


def begin() -> c.Request:
    return c.BeginCorrectionReceipt(password=PW)


def tlv(tags: Mapping[int, object]) -> c.Request:
    return c.SendTlv(password=PW, tlv=encode(tags))


async def test_a_correction_receipt_is_document_31(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_memory_fleet(1) as fleet:
        register = fleet.registers[0]
        assert isinstance(register, ShtrihRegister)
        host = Host(await fleet.connect(0), 2)
        assert error_of(await host.call(c.OpenShift(password=PW))) == 0

        assert error_of(await host.call(begin())) == 0
        status = await host.status()
        assert status.mode == Mode.DOCUMENT_OPEN  # 8.0: no line yet, so no operation yet
        fn = await host.call(c.FnStatus(password=PW))
        assert isinstance(fn, c.FnStatusAnswer)
        assert fn.current_document == FnDocumentKind.CORRECTION_RECEIPT
        assert error_of(await host.call(begin())) == ErrorCode.RECEIPT_OPEN
        assert error_of(await host.call(c.OpenShift(password=PW))) == ErrorCode.RECEIPT_OPEN

        assert error_of(await host.call(sale(operation=3, price=45_000))) == 0
        assert (await host.status()).mode == Mode.DOCUMENT_OPEN | 1 << 4  # 8.1: expense
        assert error_of(await host.call(sale(operation=1))) == ErrorCode.WRONG_OPERATION
        for tags in ({1192: "job-corr"}, {1173: 1}, {1174: BASIS}):
            assert error_of(await host.call(tlv(tags))) == 0
        closed = await host.call(close(cash=45_000))
        assert isinstance(closed, c.CloseReceiptV2Answer) and closed.fd_number == 3

        document = await read_back(host, 3)
        assert document == register.fn.archive[3]
        assert EmulatorSignVerifier({register.fn.number: register.fn.key}).verify(document)
        parsed = decode_document(document)
        assert parsed.code == 31
        fields = parsed.fields
        assert (fields[1054], fields[1020], fields[1173], fields[1174]) == (3, 45_000, 1, BASIS)
        assert fields[1192] == ["job-corr"]  # 1192 may repeat: always a list
        order = list(fields)
        assert order.index(1054) < order.index(1173) < order.index(1174) < order.index(1059)
        signed = decode_receipt(document)
        assert isinstance(signed.receipt, CorrectionReceipt)
        assert signed.receipt.correction_type == 1
        assert signed.receipt.basis == CorrectionBasis(date=dt.datetime(2026, 3, 1), number="ПР-12")
        assert signed.fiscal is not None
        assert printed_fiscal_sign(signed.fiscal.fiscal_sign) == closed.fiscal_sign

        found = await host.call(c.FindDocument(password=PW, fd_number=3))
        assert isinstance(found, c.FindDocumentAnswer)
        assert (found.document_type, found.operation, found.total) == (31, 3, 45_000)
        shift = register.fn.shift
        assert shift is not None and shift.receipts == 1
        assert shift.counters.receipts == 1  # 1134 counts it; the 1129–1132 blocks do not
        assert shift.counters.buy is not None and shift.counters.buy.count == 0


async def test_correction_refusals(autojump_clock: trio.testing.MockClock) -> None:
    async with open_memory_fleet(1) as fleet:
        register = fleet.registers[0]
        assert isinstance(register, ShtrihRegister)
        host = Host(await fleet.connect(0), 1)
        assert error_of(await host.call(begin())) == ErrorCode.NOT_IN_THIS_MODE  # shift closed
        assert error_of(await host.call(c.BeginCorrectionReceipt(password=1))) == 0x4F
        assert error_of(await host.call(c.OpenShift(password=PW))) == 0

        # A receipt already open: FF35h cannot turn it into a correction.
        assert error_of(await host.call(sale())) == 0
        assert error_of(await host.call(begin())) == ErrorCode.RECEIPT_OPEN
        assert error_of(await host.call(c.CancelReceipt(password=PW))) == 0

        # No 1173: FF45h refuses and the correction stays open until cancelled.
        assert error_of(await host.call(begin())) == 0
        assert error_of(await host.call(close(cash=1))) == ErrorCode.ZERO_TOTAL  # no lines yet
        assert error_of(await host.call(sale(price=1_000))) == 0
        assert error_of(await host.call(tlv({1174: BASIS}))) == 0
        assert error_of(await host.call(close(cash=1_000))) == ErrorCode.BAD_PARAMETERS
        assert error_of(await host.call(tlv({1173: 0}))) == 0
        assert error_of(await host.call(tlv({1173: 1}))) == 0
        assert error_of(await host.call(close(cash=1_000))) == ErrorCode.BAD_PARAMETERS  # twice
        assert register.fn.open_document is not None and register.fn.open_document.code == 31
        assert error_of(await host.call(c.CancelReceipt(password=PW))) == 0
        assert register.receipt is None and register.fn.open_document is None
        assert register.fn.last_fd_number == 2

        # Without 1174 it is formed: the basis is optional in the model.
        assert error_of(await host.call(begin())) == 0
        assert error_of(await host.call(sale(price=1_000))) == 0
        assert error_of(await host.call(tlv({1173: 0}))) == 0
        closed = await host.call(close(cash=1_000))
        assert isinstance(closed, c.CloseReceiptV2Answer)
        receipt = decode_receipt(register.fn.archive[closed.fd_number]).receipt
        assert isinstance(receipt, CorrectionReceipt) and receipt.basis is None

        # Over 24 hours: 4Eh, as for a line.
        await trio.sleep(24 * 3600 + 60)
        assert error_of(await host.call(begin())) == ErrorCode.SHIFT_OVER_24H
        assert register.receipt is None and register.fn.open_document is None


async def test_a_fiscal_life_delivered_to_the_ofd(autojump_clock: trio.testing.MockClock) -> None:
    """Open, sell, refund, settle a prepayment, correct, close; the OFD gets every document."""
    async with open_memory_fleet(1, ofd=True) as fleet:
        assert fleet.ofd is not None
        register = fleet.registers[0]
        assert isinstance(register, ShtrihRegister)
        driver = ShtrihDriver(await fleet.connect(0), version=2)
        assert await driver.open_shift() == 2
        paid = prepayment()
        sent = [
            card_sale(),
            refund(card_sale()),
            marked_sale(),
            paid,
            settlement(paid),
            correction(),
            CorrectionReceipt(
                operation=2,
                items=correction().items,
                payments=correction().payments,
                company=correction().company,
                total=correction().total,
                correction_type=1,
                basis=CorrectionBasis(date=dt.datetime(2026, 2, 28), number="ПР-7"),
            ),
        ]
        for number, receipt in enumerate(sent, start=3):
            fiscalized = await driver.fiscalize(receipt)
            assert fiscalized.fd_number == number
            code = decode_document(fiscalized.document).code
            assert code == (31 if isinstance(receipt, CorrectionReceipt) else 3)
        last = await driver.close_shift()
        assert last == 3 + len(sent)

        with trio.fail_after(600):
            while (await driver.status()).unsent:
                await trio.sleep(5)
        status = await driver.status()
        assert (status.unsent, status.first_unsent, status.last_fd) == (0, None, last)
        delivered = {d.fd_number: d for d in fleet.ofd.deliveries if d.response_code == 0}
        assert set(delivered) == set(register.fn.archive) == set(range(1, last + 1))
        for fd_number, document in register.fn.archive.items():
            assert delivered[fd_number].document == document  # byte for byte
        kinds = [delivered[n].document_type for n in range(1, last + 1)]
        assert kinds == [1, 2, 3, 3, 3, 3, 3, 31, 31, 5]
        closing = decode_document(register.fn.archive[last]).fields
        assert (closing[1038], closing[1118]) == (1, len(sent))  # receipts and corrections
        await driver.aclose()


async def test_a_legacy_close_forms_a_correction_too(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """85h closes a correction like FF45h does; FF46h's quantity keeps its six decimals."""
    async with open_memory_fleet(1) as fleet:
        register = fleet.registers[0]
        assert isinstance(register, ShtrihRegister)
        host = Host(await fleet.connect(0), 2)
        assert error_of(await host.call(c.OpenShift(password=PW))) == 0
        assert error_of(await host.call(begin())) == 0
        assert error_of(await host.call(sale(price=10_000, qty="0.5"))) == 0
        assert error_of(await host.call(tlv({1173: 0, 1174: BASIS}))) == 0
        legacy = c.CloseReceipt(
            password=PW,
            cash=5_000,
            payment2=0,
            payment3=0,
            payment4=0,
            discount=0,
            taxes=(0, 0, 0, 0),
            text="",
        )
        assert isinstance(await host.call(legacy), c.CloseReceiptAnswer)
        receipt = decode_receipt(register.fn.archive[3]).receipt
        assert isinstance(receipt, CorrectionReceipt) and receipt.items[0].quantity == Decimal(
            "0.5"
        )
