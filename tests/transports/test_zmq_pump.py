"""The single-owner pump on real ZeroMQ sockets over TCP on 127.0.0.1."""

from __future__ import annotations

import trio
import zmq

from transports.zmq_pump import Pump


def sockets(context: zmq.Context[zmq.Socket[bytes]]) -> tuple[zmq.Socket[bytes], zmq.Socket[bytes]]:
    router = context.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(f"tcp://127.0.0.1:{port}")
    return router, dealer


async def test_every_request_comes_back_exactly_once() -> None:
    """A ROUTER pump answers a DEALER pump; 5,000 requests, 64 in flight, each answered once."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    router_socket, dealer_socket = sockets(context)
    total, window = 5000, 64
    answered: list[int] = []
    try:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                server, client = Pump(router_socket), Pump(dealer_socket)
                await nursery.start(server.run)
                await nursery.start(client.run)

                async def serve() -> None:
                    async for batch in server.inbox:
                        for identity, body in batch:
                            server.send_nowait([identity, b"ok:" + body])

                nursery.start_soon(serve)
                sent = 0
                for _ in range(window):
                    client.send_nowait([str(sent).encode()])
                    sent += 1
                async for batch in client.inbox:
                    for (reply,) in batch:
                        answered.append(int(reply.removeprefix(b"ok:")))
                        if sent < total:
                            client.send_nowait([str(sent).encode()])
                            sent += 1
                    if len(answered) == total:
                        break
                nursery.cancel_scope.cancel()
    finally:
        router_socket.close()
        dealer_socket.close()
        context.term()
    assert sorted(answered) == list(range(total))


async def test_a_task_that_sends_while_the_pump_is_parked_wakes_it() -> None:
    """The lost-wakeup case of engineering.md §2.2: another task queues a message while the
    pump waits on the fd; the message must still go out and its reply come back."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    router_socket, dealer_socket = sockets(context)
    try:
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                server, client = Pump(router_socket), Pump(dealer_socket)
                await nursery.start(server.run)
                await nursery.start(client.run)
                for n in range(50):
                    await trio.sleep(0.002)  # the pumps are parked now
                    client.send_nowait([b"ping %d" % n])
                    (identity, body), *_ = await server.inbox.receive()
                    assert body == b"ping %d" % n
                    server.send_nowait([identity, b"pong"])
                    assert await client.inbox.receive() == [[b"pong"]]
                nursery.cancel_scope.cancel()
    finally:
        router_socket.close()
        dealer_socket.close()
        context.term()


async def test_a_peer_that_reads_nothing_loses_messages_with_a_notice_and_held_ones_wait() -> None:
    """A ROUTER pump with ``notice``: 3,000 messages of 8 KiB to a peer that reads none of them
    until all are sent; what does not fit is dropped and counted, the peer is told how many
    before its next message, and the held ones (a stream) all arrive, in order."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(f"tcp://127.0.0.1:{port}")
    total, held = 3_000, 50
    received: list[bytes] = []
    try:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                server = Pump(router, notice=lambda count: b"dropped %d" % count)
                await nursery.start(server.run)
                dealer.send(b"hello")
                ((peer, _),) = await server.inbox.receive()
                for n in range(total):
                    server.send_nowait([peer, b"m%d:" % n + bytes(8192)])
                for n in range(held):
                    server.send_nowait([peer, b"h%d" % n], hold=True)
                while server.pending or server.sent + server.dropped < total:
                    await trio.sleep(0.01)
                # Whether any held one is still waiting here depends on how far ZeroMQ's I/O
                # thread has drained the pipe meanwhile (under load it may have made room for
                # all 50): what must hold is below, that they all arrive, in order.
                assert server.dropped > 0
                quiet = 0
                while quiet < 200:  # read until nothing more comes for a while
                    try:
                        received.append(dealer.recv(zmq.NOBLOCK))
                        quiet = 0
                    except zmq.Again:
                        quiet += 1
                        await trio.sleep(0.005)
                assert server.held(peer) == 0
                nursery.cancel_scope.cancel()
    finally:
        router.close()
        dealer.close()
        context.term()
    plain = [m for m in received if m.startswith(b"m")]
    notices = [int(m.split()[1]) for m in received if m.startswith(b"dropped")]
    assert notices and len(plain) + sum(notices) == total
    assert [m for m in received if m.startswith(b"h")] == [b"h%d" % n for n in range(held)]
    numbers = [int(m[1:].split(b":")[0]) for m in plain]
    assert numbers == sorted(numbers)  # what was not dropped came in the order it was sent
