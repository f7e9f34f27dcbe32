"""The e2e benchmark's figures: each register's pace, summed (worked by hand), and what Kassa
sends for one receipt."""

from __future__ import annotations

import time

import pytest
import zmq

from benchmarks.e2e import (
    MODEL,
    _Events,
    budget_notes,
    command_seconds,
    cpu_budget_us,
    engine_cap_registers,
    fleet_cap_registers,
    fleet_rate,
    kassa_additions_seconds,
    kassa_receipt_seconds,
    largest_meeting,
    median_run,
    over_floor,
    past_saturation,
    receipt_seconds,
    saturation_notes,
    search_registers,
    spaced_text,
)
from benchmarks.floors import (
    emulator_floor_us,
    kassa_exchanges,
    kassa_packets,
    protocol_floor_us,
    socket_floor_us,
    spaced_protocol_us,
)
from emulator.timing import model_named
from engine import samples
from engine.client import ClientKeys
from protocols.shtrih import NEED_DATA, AnswerFrame, CommandFrame
from protocols.shtrih import commands as c
from protocols.shtrih.link_v2 import LinkV2Device


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


def test_kassa_s_sequence_is_the_receipt_then_the_read_back_of_its_whole_document() -> None:
    receipt = samples.card_sale()
    exchanges = kassa_exchanges(receipt)
    kinds = [type(request) for request, _ in exchanges]
    lines = [c.OperationV2, c.SendItemTlv] * len(receipt.items)
    # 1008 and 1117 from the receipt, then the job marker 1192; the read-back after the close.
    head = [*lines, c.SendTlv, c.SendTlv, c.SendTlv, c.CloseReceiptV2, c.DocumentTlvInfo]
    reads = len(kinds) - len(head)
    assert reads >= 1 and kinds == [*head, *[c.ReadTlv] * reads]
    marker = exchanges[len(lines) + 2][0]
    assert isinstance(marker, c.SendTlv) and marker.tlv[:2] == (1192).to_bytes(2, "little")
    answers = [c.decode_answer(answer) for _, answer in exchanges]
    assert not [a for a in answers if isinstance(a, c.ErrorAnswer)]
    info = answers[len(lines) + 4]
    assert isinstance(info, c.DocumentTlvInfoAnswer)
    read = [a.tlv for a in answers[len(lines) + 5 :] if isinstance(a, c.ReadTlvAnswer)]
    assert sum(map(len, read)) == info.length and len(read) == reads
    model = model_named(MODEL)
    requests = [request for request, _ in exchanges]
    assert kassa_receipt_seconds(model, receipt) == command_seconds(model, requests)
    assert kassa_receipt_seconds(model, receipt) > receipt_seconds(model, receipt)


def test_the_protocol_floor_is_measured_cpu_time() -> None:
    floor = protocol_floor_us(samples.card_sale(), rounds=20)
    assert 10 < floor < 100_000  # µs: some work was timed, and it was not a hang


def test_the_emulator_floor_times_the_register_s_work_for_a_receipt() -> None:
    floor = emulator_floor_us(samples.card_sale(), rounds=10)
    assert 10 < floor < 1_000_000


def test_kassa_s_packets_are_its_sequence_framed_for_link_v2() -> None:
    receipt = samples.card_sale()
    exchanges, packets = kassa_exchanges(receipt), kassa_packets(receipt)
    assert len(packets) == len(exchanges)
    device = LinkV2Device()
    for (request, answer), (sent, answered) in zip(exchanges, packets, strict=True):
        device.receive_data(sent)
        command = device.next_event()
        assert isinstance(command, CommandFrame) and command.payload == request.encode()
        assert device.next_event() is NEED_DATA
        assert answered == device.send(AnswerFrame(payload=answer))


def test_the_socket_floor_crosses_a_real_connection_to_a_process_that_ends() -> None:
    packets = kassa_packets(samples.card_sale())
    host, register = socket_floor_us(packets, rounds=50)
    # 12 round trips over loopback TCP cost each side some CPU, and far less than a second.
    assert 0 < host < 1_000_000 and 0 < register < 1_000_000


def test_the_waking_floor_lets_the_register_work_before_each_answer() -> None:
    packets = kassa_packets(samples.card_sale())
    began = time.monotonic()
    host, register = socket_floor_us(packets, rounds=2, wait=0.005)
    # 2 receipts of 12 answers, each after 5 ms of the register's work: at least 0.12 s.
    assert time.monotonic() - began >= 2 * len(packets) * 0.005
    assert 0 < host < 1_000_000 and 0 < register < 1_000_000


def test_the_spaced_work_pauses_before_the_planning_and_each_exchange() -> None:
    receipt = samples.card_sale()
    pieces = 1 + len(kassa_exchanges(receipt))  # the planning, then each of the 12 exchanges
    for spin in (False, True):
        began = time.monotonic()
        spent = spaced_protocol_us(receipt, 0.002, rounds=2, spin=spin)
        assert time.monotonic() - began >= 2 * pieces * 0.002
        # The pauses are left out of the count: 2 receipts of Shtrih work, not 52 ms of them.
        assert 0 < spent < 2 * pieces * 0.002 * 1e6 / 2


def test_the_spaced_work_is_printed_asleep_then_spun() -> None:
    spaced = {"asleep_0.5ms": 800, "asleep_5ms": 2500, "asleep_40ms": 3500, "spun_40ms": 3000}
    assert spaced_text(spaced, 340) == (
        "  engine, its Shtrih work with a pause before each exchange: asleep 0.5 ms 800,"
        " 5 ms 2500, 40 ms 3500; spun 40 ms 3000 (back to back 340)"
    )


def test_the_cpu_budget_is_the_cores_over_the_target_rate() -> None:
    # 0.95 of 1,000 receipts/s on 2 cores: 2 s of CPU a second over 950 receipts.
    assert cpu_budget_us(1000.0, cores=2) == pytest.approx(2e6 / 950)
    rows = [
        {"registers": 10, "cpu_budget_us": 95_000},
        {"registers": 500, "cpu_budget_us": 1_900},
        {"registers": 1000, "cpu_budget_us": 950},
    ]
    floors = {"engine_protocol": 300, "engine_sockets": 300, "emulator_work": 500, "x": 100}
    notes = budget_notes(rows, floors)
    assert notes == [
        "N = 500: at 0.95 of the limit, the cores allow 1900 µs a receipt for everything;"
        " the floors alone take 1200 (63%)",
        "N = 1000: at 0.95 of the limit, the cores allow 950 µs a receipt for everything;"
        " the floors alone take 1200 (126%)",
    ]


def test_a_repeated_size_reports_its_median_run_and_the_spread_of_all() -> None:
    runs = [
        {"receipts_per_s": 300.0, "engine_cpu_us_per_receipt": 2900, "p": "a"},
        {"receipts_per_s": 360.5, "engine_cpu_us_per_receipt": 2500, "p": "b"},
        {"receipts_per_s": 270.0, "engine_cpu_us_per_receipt": 3100, "p": "c"},
    ]
    chosen = median_run(runs)
    assert chosen["p"] == "a" and chosen["runs"] == 3
    assert chosen["receipts_per_s_runs"] == [300.0, 360.5, 270.0]
    assert chosen["engine_cpu_us_runs"] == [2900, 2500, 3100]
    assert chosen["spread"] == "270–360.5 /s, 2500–3100 µs"
    assert median_run(runs[:2])["p"] == "a"  # the lower of the middle two
    assert median_run(runs[:1]) == runs[0]  # one run: no spread to report


def test_a_size_whose_fleet_process_ran_out_of_core_is_named() -> None:
    rows = [
        {"registers": 100, "emulator_core_share": 0.42, "fleet_saturated": False},
        {"registers": 500, "emulator_core_share": 0.89, "fleet_saturated": True},
    ]
    (note,) = saturation_notes(rows)
    assert note.startswith("N = 500: the fleet's process used 0.89 of a core")


def test_engine_cpu_over_floor_is_the_ratio_to_the_runs_own_floor() -> None:
    """Issue 20's figure: 2,575 µs against a floor of 761 µs is 3.38 times it (by hand)."""
    assert over_floor(2575, 761) == 3.38
    assert over_floor(1141.5, 761) == 1.5
    assert over_floor(500, 0) == 0.0  # no floor measured: no ratio, not a division by zero


def _row(
    registers: int, ratio: float, saturated: bool = False, engine_share: float = 0.9
) -> dict[str, object]:
    return {
        "registers": registers,
        "ratio": ratio,
        "fleet_saturated": saturated,
        "engine_core_share": engine_share,
    }


def test_the_pinned_search_doubles_then_halves_the_gap_to_the_largest_size_that_meets_it() -> None:
    """A made-up engine that keeps 0.95 up to 130 registers: 50, 100 and 200 by doubling, then
    150, 125 and 137 between 100 and 200, until the gap (12) is within a tenth of 125."""
    tried: list[int] = []

    def trial(size: int) -> dict[str, object]:
        tried.append(size)
        return _row(size, 0.97 if size <= 130 else 0.80)

    rows, found, stopped_by = search_registers(trial, 50, 1000)
    assert tried == [50, 100, 200, 150, 125, 137]
    assert found == 125 and stopped_by == "engine" and len(rows) == len(tried)


def test_the_pinned_search_says_when_the_fleet_stopped_it_or_every_size_met_it() -> None:
    rows, found, stopped_by = search_registers(
        lambda size: _row(size, 0.96 if size < 100 else 0.90, saturated=size >= 100), 40, 1000
    )
    # 40 and 80 meet it, 160, 120 and 100 do not, 90 and 95 do: 100 failed with its fleet full.
    assert found == 95 and stopped_by == "fleet"
    assert [row["registers"] for row in rows] == [40, 80, 160, 120, 100, 90, 95]
    rows, found, stopped_by = search_registers(lambda size: _row(size, 0.99), 100, 300)
    assert (found, stopped_by) == (300, "most")
    assert [row["registers"] for row in rows] == [100, 200, 300]
    assert search_registers(lambda size: _row(size, 0.5), 10, 100)[1:] == (0, "engine")
    # Neither core full where it failed: the wake-ups held the registers, not the CPU.
    idle = search_registers(
        lambda size: _row(size, 0.96 if size < 150 else 0.93, False, 0.35), 20, 1000
    )
    assert idle[1:] == (140, "waits")


def test_the_fleet_cap_is_where_the_fleet_and_client_would_fill_their_core() -> None:
    # 850 µs a receipt for fleet and client together: 0.85 of a core gives 1,000 receipts/s,
    # which is 0.95 of the limit of 1,000 / 0.95 × 0.45 = 473.68 registers of 0.45 s a receipt.
    rows = [
        {"emulator_cpu_us_per_receipt": 700, "client_cpu_us_per_receipt": 150},
        {"emulator_cpu_us_per_receipt": 600, "client_cpu_us_per_receipt": 100},
        {"emulator_cpu_us_per_receipt": 900, "client_cpu_us_per_receipt": 200},
    ]
    assert fleet_cap_registers(rows, 0.45) == 473


def test_past_saturation_compares_the_largest_size_with_the_best() -> None:
    rows = [
        {"registers": 100, "receipts_per_s": 180.0, "latency_p99_ms": 600.0},
        {"registers": 500, "receipts_per_s": 336.0, "latency_p99_ms": 900.0},
        {"registers": 1000, "receipts_per_s": 251.0, "latency_p99_ms": 1220.0},
    ]
    figures = past_saturation(rows)
    assert figures["best_registers"] == 500 and figures["largest_registers"] == 1000
    assert figures["largest_share_of_best"] == 0.747 and figures["held"] is False  # 251 / 336
    assert (figures["largest_p99_ms"], figures["best_p99_ms"]) == (1220.0, 900.0)
    rows[2]["receipts_per_s"] = 330.0
    assert past_saturation(rows)["held"] is True  # 330 / 336 = 0.982


def test_what_kassa_adds_on_the_register_is_the_marker_and_the_read_back() -> None:
    model, receipt = model_named(MODEL), samples.card_sale()
    adds = kassa_additions_seconds(model, receipt)
    # The marker is one FF0Ch; the read-back one FF3Ah and at least one FF3Bh.
    marker = command_seconds(model, [c.SendTlv(password=30, tlv=b"")])
    assert adds["marker"] == pytest.approx(marker)
    requests = [request for request, _ in kassa_exchanges(receipt)]
    read_back = [r for r in requests if isinstance(r, (c.DocumentTlvInfo, c.ReadTlv))]
    assert len(read_back) >= 2
    assert adds["read_back"] == pytest.approx(command_seconds(model, read_back))
    total = receipt_seconds(model, receipt) + adds["marker"] + adds["read_back"]
    assert total == pytest.approx(kassa_receipt_seconds(model, receipt))


def test_the_search_can_go_by_the_scheduling_ratio_and_the_ratio_is_read_off_its_rows() -> None:
    def trial(size: int) -> dict[str, object]:
        return {
            "registers": size,
            "ratio": 0.93 if size <= 20 else 0.5,  # never 0.95: Kassa's sequence is longer
            "scheduling_ratio": 0.99 if size <= 20 else 0.5,
            "fleet_saturated": False,
            "engine_core_share": 0.2,
        }

    rows, found, _ = search_registers(trial, 10, 100, figure="scheduling_ratio")
    assert found == 20 and [row["registers"] for row in rows] == [10, 20, 40, 30, 25]
    assert largest_meeting(rows, "ratio") == 0 and largest_meeting(rows, "scheduling_ratio") == 20


def test_the_engine_cap_is_where_its_cpu_a_receipt_would_fill_its_core() -> None:
    # 2,000 µs a receipt: a core gives 500 receipts/s, 0.95 of the limit of 500 / 0.95 × 0.45
    # = 236.8 registers of 0.45 s a receipt.
    rows = [{"engine_cpu_us_per_receipt": us} for us in (1500, 2000, 4000)]
    assert engine_cap_registers(rows, 0.45) == 236
