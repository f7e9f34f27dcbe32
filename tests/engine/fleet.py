"""The engine on an emulated fleet: in-memory streams, MockClock time, a real SQLite journal."""

from __future__ import annotations

from benchmarks.engine_fleet import (
    WALL_START,
    connector,
    fleet_config,
    markers_in_archive,
    wall_clock,
)
from emulator.serve import MemoryFleet
from engine.engine import Engine
from engine.journal import FINAL_STATES, JobState
from engine.recovery import MARKER_LENGTH

__all__ = ["WALL_START", "assert_exactly_once", "connector", "fleet_config", "wall_clock"]


async def assert_exactly_once(engine: Engine, fleet: MemoryFleet, job_ids: list[str]) -> None:
    """Every job final and signed, and each one's receipt in the ФН archives exactly once."""
    archive = markers_in_archive(fleet)
    for job_id in job_ids:
        job = await engine.journal.job(job_id)
        assert job is not None and job.state in FINAL_STATES, job
        assert job.state in (JobState.FISCALIZED, JobState.RESOLVED), job
        assert archive[job_id[:MARKER_LENGTH]] == 1, (job_id, archive[job_id[:MARKER_LENGTH]])
        result = await engine.journal.result(job_id)
        assert result is not None and result.document in [
            r.fn.archive.get(result.fd_number) for r in fleet.registers
        ]
    assert sum(archive.values()) == len(job_ids), "a receipt no job accounts for"
