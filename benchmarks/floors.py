"""What one receipt costs at the least, on this machine, with no scheduler, journal or ZeroMQ.

``kassa bench e2e`` measures whole processes. These floors say how much CPU the engine and
the emulator spend on Kassa's sequence for one card sale with nothing around the work, with
these codecs and plain blocking sockets, so that a target can be read against them:

- :func:`protocol_floor_us`, the engine's Shtrih work: planning the commands, then encoding,
  framing and decoding each exchange (link v2), with no I/O;
- :func:`emulator_floor_us`, the emulated register's: taking each packet off the link,
  executing the command (the ФН forms and signs the document) and framing the answer;
- :func:`socket_floor_us`, the sockets' on each side: the same packets over one TCP
  connection on 127.0.0.1, with blocking ``sendall`` and ``recv`` and nothing else, the
  register's side in a process of its own.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import trio
import trio.testing

from benchmarks.processes import STARTUP_SECONDS, ChildOutput, stop_child
from emulator.serve import open_memory_fleet
from emulator.shtrih import ShtrihRegister
from engine.drivers.shtrih import receipt_requests
from engine.recovery import mark
from protocols.documents.model import Receipt
from protocols.shtrih import NEED_DATA, AnswerFrame, CommandFrame
from protocols.shtrih import commands as c
from protocols.shtrih.link_v2 import LinkV2Device, LinkV2Host, encode_packet

MARKER = "0" * 32  # a job id: the marker is as long as a real one
_T = TypeVar("_T")


def _sequence(receipt: Receipt, exchange: Callable[[c.Request], bytes]) -> None:
    """Kassa's sequence for ``receipt`` through ``exchange`` (a request → its answer payload).

    The receipt is marked as a job; its commands, then the read-back of its signed document
    until the announced length.
    """
    answer = b""
    for request in receipt_requests(mark(receipt, MARKER)):
        answer = exchange(request)
    closed = c.decode_answer(answer)
    assert isinstance(closed, c.CloseReceiptV2Answer), closed
    info = c.DocumentTlvInfo(password=30, fd_number=closed.fd_number)
    announced = c.decode_answer(exchange(info))
    assert isinstance(announced, c.DocumentTlvInfoAnswer), announced
    read = 0
    while read < announced.length:
        chunk = c.decode_answer(exchange(c.ReadTlv(password=30)))
        assert isinstance(chunk, c.ReadTlvAnswer) and chunk.tlv, chunk
        read += len(chunk.tlv)


def _on_a_register(work: Callable[[ShtrihRegister], _T]) -> _T:
    """``work`` on an emulated register whose shift is open."""

    async def run() -> _T:
        async with open_memory_fleet(1) as fleet:
            register = fleet.registers[0]
            assert isinstance(register, ShtrihRegister)
            register.execute(c.OpenShift(password=30).encode())
            return work(register)

    return trio.run(run, clock=trio.testing.MockClock(autojump_threshold=0))


def kassa_exchanges(receipt: Receipt) -> list[tuple[c.Request, bytes]]:
    """Kassa's whole sequence for ``receipt``, with the answers of an emulated register."""
    done: list[tuple[c.Request, bytes]] = []

    def record(register: ShtrihRegister) -> None:
        def exchange(request: c.Request) -> bytes:
            done.append((request, register.execute(request.encode())[0]))
            return done[-1][1]

        _sequence(receipt, exchange)

    _on_a_register(record)
    return done


def kassa_packets(receipt: Receipt) -> list[tuple[bytes, bytes]]:
    """Kassa's sequence for ``receipt`` as the link v2 packets on the wire: request, answer."""
    host = LinkV2Host(next_number=1)
    packets: list[tuple[bytes, bytes]] = []
    for request, answer in kassa_exchanges(receipt):
        sent = host.send(CommandFrame(payload=request.encode()))
        packets.append((sent, encode_packet(host.number, answer)))
        host.receive_data(packets[-1][1])
        assert isinstance(host.next_event(), AnswerFrame) and host.next_event() is NEED_DATA
    return packets


def _engine_work(receipt: Receipt) -> Callable[[], Iterator[None]]:
    """One receipt of the engine's Shtrih work, as a generator that yields before each exchange.

    Planning the commands of the marked receipt, then, for each exchange of Kassa's sequence,
    encoding and framing the request (link v2), taking the answer packet and decoding it. The
    answers come from an emulated register beforehand.
    """
    exchanges = kassa_exchanges(receipt)
    marked = mark(receipt, MARKER)
    reads = [request for request, _ in exchanges[len(receipt_requests(marked)) :]]
    answers = [answer for _, answer in exchanges]
    host = LinkV2Host(next_number=1)

    def one_receipt() -> Iterator[None]:
        requests = [*receipt_requests(marked), *reads]
        for request, answer in zip(requests, answers, strict=True):
            yield  # the register's answer is due
            host.send(CommandFrame(payload=request.encode()))
            host.receive_data(encode_packet(host.number, answer))
            event = host.next_event()
            assert isinstance(event, AnswerFrame) and host.next_event() is NEED_DATA
            c.decode_answer(event.payload)

    return one_receipt


def protocol_floor_us(receipt: Receipt, rounds: int = 300) -> float:
    """CPU µs of the Shtrih work the engine does for one receipt (:func:`_engine_work`), with
    no I/O at all, the receipts back to back."""
    one_receipt = _engine_work(receipt)
    began = 0.0
    for round_ in range(-rounds // 10, rounds):  # a tenth more, untimed, to warm up
        if round_ == 0:
            began = time.process_time()
        for _ in one_receipt():
            pass
    return (time.process_time() - began) / rounds * 1e6


def spaced_protocol_us(
    receipt: Receipt, pause: float, rounds: int = 10, *, spin: bool = False
) -> float:
    """:func:`protocol_floor_us` with a pause of ``pause`` seconds before each exchange, as an
    engine's exchanges come when the register answers: CPU µs a receipt, the pauses left out.

    The planning and each exchange come after a pause of their own. The pause is asleep, or
    with ``spin`` a busy loop: whether the work costs more after the thread was idle or after
    time went by at all.
    """
    one_receipt = _engine_work(receipt)
    for _ in range(3):  # warm up, untimed
        for _ in one_receipt():
            pass
    spent = 0.0
    for _ in range(rounds):
        steps = one_receipt()
        while True:
            if spin:
                until = time.perf_counter() + pause
                while time.perf_counter() < until:
                    pass
            else:
                time.sleep(pause)
            began = time.thread_time()
            done = next(steps, StopIteration) is StopIteration
            spent += time.thread_time() - began
            if done:
                break
    return spent / rounds * 1e6


def emulator_floor_us(receipt: Receipt, rounds: int = 300) -> float:
    """CPU µs of the emulated register's work for one receipt of Kassa's, with no I/O at all.

    Each exchange: the request packet into :class:`LinkV2Device`, the command executed by
    :class:`ShtrihRegister` (the ФН forms, signs and archives the document at FF45h), and the
    answer framed. Only the register's side is timed; a host link makes the packets.
    """
    spent = 0.0

    def time_rounds(register: ShtrihRegister) -> float:
        nonlocal spent
        host, device = LinkV2Host(next_number=1), LinkV2Device()

        def exchange(request: c.Request) -> bytes:
            nonlocal spent
            packet = host.send(CommandFrame(payload=request.encode()))
            began = time.process_time()
            device.receive_data(packet)
            command = device.next_event()
            assert isinstance(command, CommandFrame), command
            answer, _ = register.execute(command.payload)
            device.answer_size(answer)  # the emulator times the answer's wire before sending it
            sent = device.send(AnswerFrame(payload=answer))
            spent += time.process_time() - began
            host.receive_data(sent)
            event = host.next_event()
            assert isinstance(event, AnswerFrame) and host.next_event() is NEED_DATA
            return event.payload

        for _ in range(rounds // 10):  # warm-up, not counted
            _sequence(receipt, exchange)
        spent = 0.0
        for _ in range(rounds):
            _sequence(receipt, exchange)
        return spent

    return _on_a_register(time_rounds) / rounds * 1e6


#: The register's side of :func:`socket_floor_us`: answers each request once all of it is in.
_PEER = """
import socket, sys, time
sizes = [int(size) for size in sys.argv[1].split(",")]
answers = [bytes.fromhex(answer) for answer in sys.argv[2].split(",")]
wait = float(sys.argv[3])
server = socket.create_server(("127.0.0.1", 0))
print(server.getsockname()[1], flush=True)
connection, _ = server.accept()
connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
began = time.process_time()
def take(size):
    while size:
        data = connection.recv(size)
        if not data:
            return False
        size -= len(data)
    return True
ended = False
while not ended:
    for size, answer in zip(sizes, answers):
        if not take(size):
            ended = True
            break
        if wait:
            time.sleep(wait)
        connection.sendall(answer)
print(time.process_time() - began, flush=True)
"""


def socket_floor_us(
    packets: list[tuple[bytes, bytes]], rounds: int = 2000, *, wait: float = 0.0
) -> tuple[float, float]:
    """CPU µs a receipt of the bare socket calls on each side: (host, register).

    The host sends each request packet with a blocking ``sendall`` and ``recv``s its answer;
    the register's process ``recv``s the request and ``sendall``s the answer. Nothing parses,
    schedules or executes anything. An event loop makes the same two calls an exchange, and
    waits in epoll besides.

    With ``wait`` (seconds), the register sleeps that long before each answer, as a real or
    emulated register does while it works: the host's ``recv`` then puts it to sleep, and
    each answer wakes it up. Without it, two busy processes play ping-pong, and a wake-up
    (a context switch, on a virtual machine an idle CPU's exit) costs less or nothing.
    """
    sizes = ",".join(str(len(request)) for request, _ in packets)
    answers = ",".join(answer.hex() for _, answer in packets)
    command = [sys.executable, "-c", _PEER, sizes, answers, repr(wait)]
    peer = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        output = ChildOutput(peer)
        port = output.line(time.monotonic() + STARTUP_SECONDS)
        if not port:
            raise RuntimeError("the socket floor's peer process did not start")
        with socket.create_connection(("127.0.0.1", int(port))) as host:
            host.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            began = time.thread_time()
            for _ in range(rounds):
                for request, answer in packets:
                    host.sendall(request)
                    wanted = len(answer)
                    while wanted:
                        data = host.recv(wanted)
                        if not data:
                            raise RuntimeError("the socket floor's peer closed early")
                        wanted -= len(data)
            spent = time.thread_time() - began
        peer_spent = output.line(time.monotonic() + STARTUP_SECONDS)
        if not peer_spent:
            raise RuntimeError("the socket floor's peer did not report its CPU time")
        return spent / rounds * 1e6, float(peer_spent) / rounds * 1e6
    finally:
        stop_child(peer)
