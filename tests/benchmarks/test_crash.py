"""``kassa bench crash``: real processes killed for real, and how the run's figures are counted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.crash import EARLY, JournaledJob, SignedReceipt, kill_plan, tally

KASSA = str(Path(sys.executable).with_name("kassa"))
JOB_A, JOB_B, JOB_C, JOB_D = ("a" * 32, "b" * 32, "c" * 32, "d" * 32)


def _signed(*markers: str) -> list[SignedReceipt]:
    return [SignedReceipt("9999", fd, marker[:16]) for fd, marker in enumerate(markers, 1)]


def test_three_kills_of_kassa_serve_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    options = ["--kills", "3", "--registers", "2", "--clients", "2", "--latest", "1.5"]
    done = subprocess.run(
        [KASSA, "bench", "crash", *options, "--seed", "7", "--json", "--results", str(tmp_path)],
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout.decode()[-2000:] + done.stderr.decode()[-2000:]
    result = json.loads(done.stdout.decode().splitlines()[-1])
    assert result["kills"] == 3
    assert (result["lost"], result["duplicated"], result["failed_on_fn"]) == (0, 0, 0)
    assert result["receipts"] > 0
    # every acknowledged external_id is on a ФН once, or failed in the clear
    assert result["receipts"] + result["failed"] == result["acknowledged"]
    assert result["acknowledged"] == result["submitted"]


def test_lost_duplicated_and_failed_are_counted_per_external_id() -> None:
    acknowledged = {"order-1": JOB_A, "order-2": JOB_B, "order-3": JOB_C}
    states = {"order-1": "fiscalized", "order-2": "resolved", "order-3": "failed"}
    journal = {job: JournaledJob(e, states[e], None) for e, job in acknowledged.items()}
    clean = tally(acknowledged, states, journal, _signed(JOB_A, JOB_B))
    assert (clean["lost"], clean["duplicated"], clean["failed_on_fn"]) == (0, 0, 0)
    assert clean["failed"] == 1

    twice = tally(acknowledged, states, journal, _signed(JOB_A, JOB_B, JOB_A))
    assert (twice["lost"], twice["duplicated"]) == (0, 1)
    assert twice["examples"]["duplicated"] == ["order-1"]

    absent = tally(acknowledged, states, journal, _signed(JOB_A))
    assert (absent["lost"], absent["duplicated"]) == (1, 0)
    assert absent["examples"]["lost"] == ["order-2"]

    failed_yet_signed = tally(acknowledged, states, journal, _signed(JOB_A, JOB_B, JOB_C))
    assert failed_yet_signed["failed_on_fn"] == 1


def test_an_acknowledged_job_the_journal_forgot_is_lost_and_a_foreign_marker_is_stray() -> None:
    acknowledged = {"order-1": JOB_A}
    # the journal lost order-1's job; a resubmit could only have made a second job for it
    journal = {JOB_D: JournaledJob("order-1", "fiscalized", None)}
    counted = tally(acknowledged, {"order-1": "fiscalized"}, journal, _signed(JOB_D, JOB_C))
    assert counted["not_in_journal"] == 1
    assert counted["stray_receipts"] == 1  # JOB_C is no job of anyone's
    assert (counted["lost"], counted["duplicated"]) == (0, 0)  # order-1 is on the ФН once

    nowhere = tally(acknowledged, {}, {}, [])
    assert (nowhere["lost"], nowhere["unsettled"]) == (1, 1)


def test_kill_moments_are_seeded_and_some_come_right_after_a_restart_or_on_intake() -> None:
    plan = kill_plan(200, seed=3, latest=4.0)
    assert plan == kill_plan(200, seed=3, latest=4.0)
    assert plan != kill_plan(200, seed=4, latest=4.0)
    assert all(0.0 <= moment.delay <= 4.0 for moment in plan)
    early = [moment for moment in plan if moment.delay < EARLY]
    assert 20 < len(early) < 120  # about EARLY_SHARE of them
    assert not any(moment.on_intake for moment in early)
    assert 20 < sum(moment.on_intake for moment in plan) < 120
