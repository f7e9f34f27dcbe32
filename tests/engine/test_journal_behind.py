"""A journal behind its registers' ФН takes no work for them (issue 17, defect 4).

An emptied, replaced or restored journal has forgotten external_ids that are receipts on the
registers' ФН; the job markers carry only job ids, so those could be fiscalized again. The
engine compares each register's ФН with the journal when it connects and holds a register whose
ФН holds receipts the journal does not know, until an operator adopts it.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import trio
import trio.testing
import zmq

from emulator.serve import MemoryFleet, open_memory_fleet
from engine import samples
from engine.config import EngineConfig
from engine.engine import Engine, JournalBehind
from engine.journal import JobState, adopt
from engine.recovery import UNKNOWN_READ_LIMIT
from tests.engine.fleet import connector, fleet_config
from tests.service.test_service import A1, Client, Running, kassa_receipt


async def _connected(engine: Engine) -> str:
    """The register's state once its connect has been decided, either way."""
    view = engine.registers["kkt-0"]
    while view.state == "unknown":
        await trio.sleep(0.1)
    return view.state


async def _fiscalize(config: EngineConfig, external_ids: list[str]) -> None:
    async with Engine.open(config) as engine:
        for external_id in external_ids:
            job = await engine.submit("shop", external_id, samples.card_sale())
            assert (await engine.wait("shop", job.id)).state is JobState.FISCALIZED


def _receipts(fleet: MemoryFleet) -> int:
    """Receipts (document 3) in the register's ФН archive."""
    archive = fleet.registers[0].fn.archive.values()
    return sum(1 for document in archive if document[:2] == (3).to_bytes(2, "little"))


async def test_a_new_or_restored_journal_holds_a_used_register_until_adopted(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_memory_fleet(1) as fleet:
        fn = fleet.registers[0].fn
        journal = tmp_path / "journal.db"
        await _fiscalize(fleet_config(fleet, journal), ["order-1"])
        shutil.copy(journal, tmp_path / "copy.db")  # the copy knows order-1 only
        await _fiscalize(fleet_config(fleet, journal), ["order-2", "order-3"])
        signed = _receipts(fleet)
        assert signed == 3

        for name in ("copy.db", "new.db"):  # restored from an older copy; a new, empty one
            config = fleet_config(fleet, tmp_path / name, probe_max=60.0)
            async with Engine.open(config) as engine:
                assert await _connected(engine) == "journal_behind"
                with pytest.raises(
                    JournalBehind, match="journal is behind the ФН of register kkt-0"
                ):
                    await engine.submit("shop", "order-2", samples.card_sale())
                assert engine.register_states("shop")[0]["state"] == "journal_behind"
                (alert,) = await engine.journal.events("alert.register_journal_behind")
                assert str(config.journal) in alert.message, alert.message
                assert f"its ФН {fn.number} holds FD" in alert.message, alert.message
                assert "is a receipt of Kassa job" in alert.message, alert.message
                command = f"kassa journal adopt {config.journal} --fn {fn.number} --last-fd "
                assert f"{command}{fn.last_fd_number}" in alert.message, alert.message
                await trio.sleep(300)  # probed again and again, and still held
                assert engine.registers["kkt-0"].state == "journal_behind"
        assert _receipts(fleet) == signed

        # The operator decides that new.db starts over on this ФН; a running engine sees it.
        config = fleet_config(fleet, tmp_path / "new.db", probe_max=60.0)
        async with Engine.open(config) as engine:
            assert await _connected(engine) == "journal_behind"
            await trio.to_thread.run_sync(adopt, config.journal, fn.number, fn.last_fd_number)
            while engine.registers["kkt-0"].state != "ready":
                await trio.sleep(1)
            job = await engine.submit("shop", "order-4", samples.card_sale())
            assert (await engine.wait("shop", job.id)).state is JobState.FISCALIZED
        assert _receipts(fleet) == signed + 1


@pytest.mark.parametrize("protocol", ["shtrih", "atol"])
async def test_reports_the_journal_missed_and_an_in_doubt_receipt_do_not_hold_a_register(
    protocol: str, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The normal restart: the ФН is ahead by a receipt signed but not journaled (in doubt),
    and by shift reports a crash kept the journal from keeping."""
    async with open_memory_fleet(1, protocol=protocol) as fleet:
        config = fleet_config(fleet, tmp_path / "journal.db", protocol=protocol)
        driver = await connector(fleet, 0, protocol)()
        await driver.open_shift()  # a new journal, on a ФН with reports only
        await driver.close_shift()
        await driver.aclose()
        with trio.CancelScope() as killed:

            async def checkpoint(at: str, job_id: str) -> None:
                if at == "signed":  # the ФН signed it; the journal never hears
                    killed.cancel()
                    await trio.sleep(0)

            async with Engine.open(config, checkpoint=checkpoint) as engine:
                assert await _connected(engine) == "ready"
                doubtful = await engine.submit("shop", "order-1", samples.card_sale())
                await trio.sleep_forever()
        driver = await connector(fleet, 0, protocol)()
        await driver.close_shift()
        await driver.open_shift()
        await driver.aclose()
        async with Engine.open(config) as engine:
            assert (await engine.wait("shop", doubtful.id)).state is JobState.RESOLVED
            assert await _connected(engine) == "ready"
            job = await engine.submit("shop", "order-2", samples.card_sale())
            assert (await engine.wait("shop", job.id)).state is JobState.FISCALIZED


async def test_more_unknown_documents_than_a_crash_leaves_hold_a_register(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_memory_fleet(1) as fleet:
        driver = await connector(fleet, 0, "shtrih")()
        for _ in range(UNKNOWN_READ_LIMIT // 2 + 1):
            await driver.open_shift()
            await driver.close_shift()
        await driver.aclose()
        async with Engine.open(fleet_config(fleet, tmp_path / "journal.db")) as engine:
            assert await _connected(engine) == "journal_behind"
            (alert,) = await engine.journal.events("alert.register_journal_behind")
            assert "documents are more than a crash leaves unjournaled" in alert.message


async def test_a_held_register_does_not_take_jobs_accepted_before(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Jobs a journal queued before its register was found ahead stay queued, unsent; and
    after a restart, its tenant's submits are refused before the register is looked at."""
    async with open_memory_fleet(1) as fleet:
        await _fiscalize(fleet_config(fleet, tmp_path / "journal.db"), ["order-1"])
        config = fleet_config(fleet, tmp_path / "new.db")
        async with Engine.open(config) as engine:
            queued = await engine.submit("shop", "order-1", samples.card_sale())
            await trio.sleep(600)
            assert engine.registers["kkt-0"].state == "journal_behind"
            job = await engine.journal.job(queued.id)
            assert job is not None and job.state is JobState.QUEUED
        async with Engine.open(config) as engine:  # a restart keeps the tenant's intake shut
            with pytest.raises(JournalBehind):
                await engine.submit("shop", "order-2", samples.card_sale())
            assert await _connected(engine) == "journal_behind"
        assert _receipts(fleet) == 1


def test_the_service_answers_a_held_tenant_s_submit_unavailable(tmp_path: Path) -> None:
    """Over ZeroMQ: a receipt made on the register without the journal holds it at the next
    start, and the tenant's submit answers ``unavailable``, not ``internal``."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    running = Running(tmp_path, owners=("a",))
    try:
        client = Client(context, running.endpoint, A1)
        job = client.ok("submit", external_id="order-1", receipt=kassa_receipt())["job"]
        assert client.wait_final(job["id"])["state"] == "fiscalized"

        async def sell_behind_the_journal() -> None:
            assert running.fleet is not None
            driver = await connector(running.fleet, 0, "shtrih")()
            await driver.fiscalize(samples.card_sale())
            await driver.aclose()

        running.run(sell_behind_the_journal)
        client.close()
        running.restart()
        client = Client(context, running.endpoint, A1)
        deadline = time.monotonic() + 30
        while client.ok("registers")["registers"][0]["state"] != "journal_behind":
            assert time.monotonic() < deadline, client.ok("registers")
            time.sleep(0.05)
        error = client.error("submit", external_id="order-2", receipt=kassa_receipt())
        assert error["code"] == "unavailable", error
        assert "journal is behind the ФН of register kkt-0" in error["message"], error
        client.close()
    finally:
        running.stop()
        context.destroy(linger=0)  # closes a client an assertion left open
