"""The OFD model and the register's OFD sender: delivery, bad CRCs, ФЛК, outages, 30 days."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import partial

import pytest
import trio
import trio.testing

from emulator.fn import FiscalStorage, FnModelError
from emulator.ofd import (
    DEFAULT_OFD_INN,
    FLK_ERROR,
    Connect,
    Delivery,
    OfdSender,
    OfdServer,
    Outage,
    OutageSchedule,
    Refusal,
    SendAttempt,
    WallClock,
)
from protocols.fiscal_sign import EmulatorSignVerifier
from protocols.fn import ResultCode
from protocols.ofd import (
    CONTAINER_HEADER_SIZE,
    HEADER_SIZE,
    OFD_TO_KKT,
    Container,
    OperatorAck,
    SessionHeader,
)
from protocols.tlv import decode_document
from tests.emulator.test_fn_model import FN_NUMBER, KEY, START, receipt, registration

MINUTE = timedelta(minutes=1)
DAY = 86400.0
#: A byte inside the first document's TLV: flipping it breaks the container's CRC only.
INSIDE_DOCUMENT = HEADER_SIZE + CONTAINER_HEADER_SIZE + 10


class Tap(trio.abc.Stream):
    """A KKT-side stream that records what the OFD answers and can flip one byte it sends."""

    def __init__(self, inner: trio.abc.Stream, received: bytearray, flip: int | None) -> None:
        self.inner = inner
        self.received = received
        self.flip = flip

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self.flip is not None:
            damaged = bytearray(data)
            damaged[self.flip] ^= 0x01
            data, self.flip = damaged, None
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        data = await self.inner.receive_some(max_bytes)
        self.received += data
        return data

    async def aclose(self) -> None:
        await self.inner.aclose()


def tapped(connect: Connect, received: bytearray, corrupt: Sequence[int] = ()) -> Connect:
    """``connect`` behind a Tap; the connections numbered in ``corrupt`` (from 0) get a bad CRC."""
    count = 0

    async def open_tapped() -> trio.abc.Stream:
        nonlocal count
        stream = await connect()
        count += 1
        return Tap(stream, received, INSIDE_DOCUMENT if count - 1 in corrupt else None)

    return open_tapped


def registered_at(when: datetime) -> FiscalStorage:
    fn = FiscalStorage(FN_NUMBER, KEY)
    fn.register(when, registration())
    return fn


def one_shift(fn: FiscalStorage, now: datetime, receipts: int) -> None:
    fn.open_shift(now)
    for index in range(receipts):
        fn.fiscalize(now, receipt(1_000 * (index + 1)))
    fn.close_shift(now)


def replies(wire: bytes) -> list[Container]:
    """The containers in the OFD's answers, read straight off the wire."""
    containers = []
    while wire:
        header = SessionHeader.decode(wire[:HEADER_SIZE])
        end = HEADER_SIZE + header.body_length
        containers.append(Container.decode(wire[HEADER_SIZE:end]))
        wire = wire[end:]
    return containers


async def drained(fn: FiscalStorage, step: float = 1.0) -> None:
    while fn.unsent():
        await trio.sleep(step)


def assert_delivered_as_archived(fn: FiscalStorage, deliveries: list[Delivery]) -> None:
    """Every document reached the OFD once with code 0, oldest first, byte for byte."""
    accepted = [entry for entry in deliveries if entry.response_code == 0]
    assert [entry.fd_number for entry in accepted] == list(fn.archive)
    verifier = EmulatorSignVerifier({FN_NUMBER: KEY})
    for entry in accepted:
        assert entry.document == fn.archive[entry.fd_number]
        assert entry.fn_number == FN_NUMBER
        assert entry.document_type == decode_document(entry.document).code
        assert verifier.verify(entry.document) is True


# --- the outage schedule --------------------------------------------------------------------------


def test_outage_spec() -> None:
    schedule = OutageSchedule.parse("3d+31d, 1h-2h,1.5s-2s", epoch=100.0)
    assert schedule.outages == (Outage(1.5, 2), Outage(3600, 7200), Outage(3 * DAY, 34 * DAY))
    assert [schedule.down(100.0 + at) for at in (0, 1.5, 2, 3599, 3600, 7199.9, 7200)] == [
        False,
        True,
        False,
        False,
        True,
        True,
        False,
    ]
    assert schedule.down(100.0 + 34 * DAY - 1) and not schedule.down(100.0 + 34 * DAY)
    assert OutageSchedule.parse("").outages == ()
    for spec in ("1h", "2h-1h", "1x-2h", "a-b", "1h-1h"):
        with pytest.raises(ValueError):
            OutageSchedule.parse(spec)


# --- delivery -------------------------------------------------------------------------------------


async def test_sender_delivers_every_document_and_each_ack_is_a_document_7(
    autojump_clock: trio.testing.MockClock,
) -> None:
    clock = WallClock(START, trio.current_time())
    fn = registered_at(clock())
    one_shift(fn, clock(), receipts=5)
    ofd = OfdServer(clock)
    received = bytearray()
    with trio.fail_after(3600):
        async with trio.open_nursery() as nursery:
            connect = tapped(ofd.memory_connector(nursery), received)
            sender = OfdSender(fn, connect, retry_interval=60)
            nursery.start_soon(sender.run)
            await drained(fn)
            nursery.cancel_scope.cancel()
    assert fn.unsent() == ()
    assert_delivered_as_archived(fn, ofd.deliveries)
    assert [entry.document_type for entry in ofd.deliveries] == [1, 2, 3, 3, 3, 3, 3, 5]
    assert ofd.refusals == []
    assert [attempt.outcome for attempt in sender.attempts] == ["acknowledged"] * 8
    containers = replies(bytes(received))
    assert [container.fd_number for container in containers] == list(range(1, 9))
    for fd_number, container in enumerate(containers, 1):
        assert (container.document_type, container.message_type) == (7, OFD_TO_KKT)
        assert container.fn_number == FN_NUMBER
        assert decode_document(container.document).code == 7
        ack = OperatorAck.from_tlv(container.document)
        assert ack == OperatorAck(
            ofd_inn=DEFAULT_OFD_INN, fn_number=FN_NUMBER, fd_number=fd_number, at=START
        )
    assert sender.acks == [OperatorAck.from_tlv(c.document) for c in containers]


async def test_a_corrupted_container_gets_no_ack_and_is_sent_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    clock = WallClock(START, trio.current_time())
    fn = registered_at(clock())
    one_shift(fn, clock(), receipts=2)
    ofd = OfdServer(clock)
    received = bytearray()
    with trio.fail_after(3600):
        async with trio.open_nursery() as nursery:
            connect = tapped(ofd.memory_connector(nursery), received, corrupt=(0, 1))
            sender = OfdSender(fn, connect, retry_interval=30)
            nursery.start_soon(sender.run)
            await drained(fn)
            nursery.cancel_scope.cancel()
    assert fn.unsent() == ()
    assert_delivered_as_archived(fn, ofd.deliveries)
    assert len(ofd.deliveries) == 5  # the damaged copies were never taken
    assert [refusal.reason.split(":")[0] for refusal in ofd.refusals] == ["bad message"] * 2
    assert all("CRC" in refusal.reason for refusal in ofd.refusals)
    assert [(a.at, a.fd_number) for a in sender.attempts[:3]] == [(0, 1), (30, 1), (60, 1)]
    assert "closed the connection" in sender.attempts[0].outcome
    assert sender.attempts[2].outcome == "acknowledged"
    assert len(replies(bytes(received))) == 5


async def test_a_flk_answer_leaves_the_document_unsent_until_a_good_ack(
    autojump_clock: trio.testing.MockClock,
) -> None:
    clock = WallClock(START, trio.current_time())
    fn = registered_at(clock())
    one_shift(fn, clock(), receipts=1)
    ofd = OfdServer(clock, answers={3: (FLK_ERROR, FLK_ERROR)})
    with trio.fail_after(3600):
        async with trio.open_nursery() as nursery:
            sender = OfdSender(fn, ofd.memory_connector(nursery), retry_interval=10)
            nursery.start_soon(sender.run)
            await trio.sleep(15)
            assert fn.unsent() == (3, 4)  # FD 3 refused twice so far: at 0 s and at 10 s
            await drained(fn)
            nursery.cancel_scope.cancel()
    codes = [(entry.fd_number, entry.response_code) for entry in ofd.deliveries]
    assert codes == [(1, 0), (2, 0), (3, 14), (3, 14), (3, 0), (4, 0)]
    assert_delivered_as_archived(fn, ofd.deliveries)
    assert [a.fd_number for a in sender.attempts if a.outcome != "acknowledged"] == [3, 3]


async def test_the_sender_polls_and_wakes_for_new_documents(
    autojump_clock: trio.testing.MockClock,
) -> None:
    clock = WallClock(START, trio.current_time())
    fn = registered_at(clock())
    ofd = OfdServer(clock)
    with trio.fail_after(3600):
        async with trio.open_nursery() as nursery:
            sender = OfdSender(fn, ofd.memory_connector(nursery), poll_interval=600)
            await nursery.start(sender.run)
            await drained(fn)
            await trio.sleep(5)
            fn.open_shift(clock())  # no wake: found at the next poll, 600 s after the last
            await trio.sleep_until(clock.epoch + 599.5)
            assert fn.unsent() == (2,)
            await trio.sleep_until(clock.epoch + 600.5)
            assert fn.unsent() == ()
            fn.close_shift(clock())
            sender.wake()  # found at once
            await trio.sleep(0.1)
            assert fn.unsent() == ()
            nursery.cancel_scope.cancel()
    seconds = [(entry.at - START).total_seconds() for entry in ofd.deliveries]
    assert seconds == [0, 600, 600]
    assert_delivered_as_archived(fn, ofd.deliveries)


# --- outages --------------------------------------------------------------------------------------


async def test_a_31_day_outage_blocks_the_fn_at_30_days_and_then_drains(
    autojump_clock: trio.testing.MockClock,
) -> None:
    epoch = trio.current_time()
    clock = WallClock(START, epoch)
    fn = registered_at(clock())
    ofd = OfdServer(clock, outages=OutageSchedule.parse("0d+31d", epoch=epoch))
    with trio.fail_after(40 * DAY):
        async with trio.open_nursery() as nursery:
            sender = OfdSender(fn, ofd.memory_connector(nursery), retry_interval=3600)
            await trio.sleep(1)  # retries at 1 s, 3601 s …: never with the cashier (trio may
            nursery.start_soon(sender.run)  # run tasks woken at one instant in either order)
            for day in range(30):  # a shift a day, all of it piling up
                await trio.sleep_until(epoch + day * DAY)
                one_shift(fn, clock(), receipts=1)
                sender.wake()
            assert len(fn.unsent()) == 1 + 30 * 3
            await trio.sleep_until(epoch + 30 * DAY)
            fn.open_shift(clock())  # the registration is exactly 30 days old: still allowed
            await trio.sleep(60)
            with pytest.raises(FnModelError) as refused:
                fn.fiscalize(clock(), receipt())
            assert refused.value.code is ResultCode.OFD_WAIT_EXHAUSTED
            fn.close_shift(clock())  # closing stays possible
            assert ofd.deliveries == [] and fn.unsent()[0] == 1
            await trio.sleep_until(epoch + 31 * DAY)
            await drained(fn)
            back = START + timedelta(days=31, seconds=1)  # the first retry after the outage
            assert [entry.at for entry in ofd.deliveries] == [back] * 93  # sends them all
            one_shift(fn, clock(), receipts=1)  # the ФН takes receipts again
            sender.wake()
            await drained(fn)
            nursery.cancel_scope.cancel()
    assert_delivered_as_archived(fn, ofd.deliveries)
    assert all(entry.at >= START + timedelta(days=31) for entry in ofd.deliveries)
    assert {refusal.reason for refusal in ofd.refusals} == {"outage"}
    assert len(ofd.refusals) == 31 * 24  # one refused connection an hour


async def test_a_forced_outage_holds_documents_until_lifted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    clock = WallClock(START, trio.current_time())
    fn = registered_at(clock())
    ofd = OfdServer(clock)
    ofd.forced_down = True
    with trio.fail_after(3600):
        async with trio.open_nursery() as nursery:
            sender = OfdSender(fn, ofd.memory_connector(nursery), retry_interval=60)
            nursery.start_soon(sender.run)
            await trio.sleep(630)
            assert fn.unsent() == (1,) and ofd.deliveries == []
            assert all("ConnectionRefusedError" in a.outcome for a in sender.attempts)
            ofd.forced_down = False
            await drained(fn)
            nursery.cancel_scope.cancel()
    assert_delivered_as_archived(fn, ofd.deliveries)
    assert len(ofd.refusals) == 11  # at 0, 60 … 600 s


async def test_an_outage_closes_an_open_connection_at_its_next_message(
    autojump_clock: trio.testing.MockClock,
) -> None:
    epoch = trio.current_time()
    clock = WallClock(START, epoch)
    fn = registered_at(clock())
    ofd = OfdServer(clock, outages=OutageSchedule.parse("5s-1000s", epoch=epoch))
    silent_since = 0.0

    async def slow_connect() -> trio.abc.Stream:
        stream = await connect()
        await trio.sleep(10)  # the connection was up at 0 s; its message comes at 10 s
        return stream

    with trio.fail_after(3600):
        async with trio.open_nursery() as nursery:
            connect = ofd.memory_connector(nursery)
            sender = OfdSender(fn, slow_connect, retry_interval=60, reply_timeout=300)
            nursery.start_soon(sender.run)
            await drained(fn)
            silent_since = trio.current_time() - epoch
            nursery.cancel_scope.cancel()
    assert sender.attempts[0] == SendAttempt(
        10, 1, "OfdError('reply: the OFD closed the connection')"
    )
    assert ofd.refusals[0] == Refusal(START + timedelta(seconds=10), "outage")
    assert silent_since >= 1000
    assert_delivered_as_archived(fn, ofd.deliveries)


async def test_a_silent_peer_times_the_sender_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    clock = WallClock(START, trio.current_time())
    fn = registered_at(clock())
    peers: list[trio.abc.Stream] = []

    async def connect_to_nobody() -> trio.abc.Stream:
        client, peer = trio.testing.memory_stream_pair()
        peers.append(peer)  # held open, never read
        return client

    with trio.fail_after(3600):
        async with trio.open_nursery() as nursery:
            sender = OfdSender(fn, connect_to_nobody, retry_interval=60, reply_timeout=300)
            nursery.start_soon(sender.run)
            await trio.sleep(400)
            nursery.cancel_scope.cancel()
    assert sender.attempts == [SendAttempt(300, 1, "TooSlowError()")]
    assert fn.unsent() == (1,)


# --- determinism ----------------------------------------------------------------------------------


async def _scripted_run(seed: int) -> tuple[list[Delivery | Refusal], list[SendAttempt]]:
    epoch = trio.current_time()
    clock = WallClock(START, epoch)
    fn = registered_at(clock())
    one_shift(fn, clock(), receipts=3)
    ofd = OfdServer(
        clock, outages=OutageSchedule.parse("0s-2h, 3h+1h", epoch=epoch), answers={4: (14,)}
    )
    with trio.fail_after(DAY):
        async with trio.open_nursery() as nursery:
            connect = tapped(ofd.memory_connector(nursery), bytearray(), corrupt=(0,))
            sender = OfdSender(fn, connect, retry_interval=600, jitter=0.5, seed=seed)
            nursery.start_soon(sender.run)
            await trio.sleep(2.5 * 3600)
            one_shift(fn, clock(), receipts=2)
            await drained(fn)
            nursery.cancel_scope.cancel()
    assert_delivered_as_archived(fn, ofd.deliveries)
    return ofd.log, sender.attempts


def _run(seed: int) -> tuple[list[Delivery | Refusal], list[SendAttempt]]:
    return trio.run(_scripted_run, seed, clock=trio.testing.MockClock(autojump_threshold=0))


def test_a_seed_makes_a_run_reproducible() -> None:
    first, again, other = _run(7), _run(7), _run(8)
    assert first == again
    assert first[1] != other[1]  # the jitter differs with the seed
    assert any(isinstance(entry, Refusal) and "CRC" in entry.reason for entry in first[0])


# --- real sockets ---------------------------------------------------------------------------------


async def test_delivery_over_tcp_with_a_short_outage() -> None:
    epoch = trio.current_time()
    clock = WallClock(START, epoch)
    fn = registered_at(clock())
    one_shift(fn, clock(), receipts=3)
    ofd = OfdServer(clock, outages=OutageSchedule.parse("0s-0.3s", epoch=epoch))
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(ofd.serve_tcp)
            connect = partial(trio.open_tcp_stream, "127.0.0.1", port)
            sender = OfdSender(fn, connect, retry_interval=0.05, reply_timeout=2)
            nursery.start_soon(sender.run)
            await drained(fn, 0.01)
            nursery.cancel_scope.cancel()
    assert trio.current_time() - epoch >= 0.3
    assert_delivered_as_archived(fn, ofd.deliveries)
    assert ofd.refusals and {refusal.reason for refusal in ofd.refusals} == {"outage"}
    assert [a.fd_number for a in sender.attempts if a.outcome == "acknowledged"] == list(
        range(1, 7)
    )
