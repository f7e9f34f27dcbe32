"""The e2e benchmark's throughput: each register's pace, summed (worked by hand)."""

from __future__ import annotations

import pytest
import zmq

from benchmarks.e2e import _Events, fleet_rate
from engine.client import ClientKeys


def test_the_fleet_rate_is_the_sum_of_each_register_s_pace_while_it_had_work() -> None:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        server_public, _ = zmq.curve_keypair()
        events = _Events("tcp://127.0.0.1:9", ClientKeys.new(server_public), context)
        # Register a: 3 receipts 0.5 s apart (2 per s); b started late, 2 receipts 1 s apart;
        # c did one (no pace of its own); a job still open counts for nothing.
        finished = {"j1": (0.0, "a"), "j2": (0.5, "a"), "j3": (1.0, "a")}
        finished |= {"j4": (3.0, "b"), "j5": (4.0, "b"), "j6": (2.0, "c")}
        for job_id, (at, register) in finished.items():
            events.final[job_id] = at
            events.register[job_id] = register
        assert fleet_rate(events, [*finished, "open"]) == pytest.approx(2.0 + 1.0)
        events.start()  # its thread owns the socket: it closes it on stop
        events.stop()
    finally:
        context.term()
