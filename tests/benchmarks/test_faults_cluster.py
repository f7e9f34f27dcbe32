"""``kassa bench faults --journal URL``: engine processes on PostgreSQL, killed and cut off."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.engine.conftest import POSTGRES, postgres_down

if postgres_down():
    pytest.skip(postgres_down() or "", allow_module_level=True)

from benchmarks.faults_cluster import FAULT_LINE, fault_plan  # it imports psycopg

KASSA = str(Path(sys.executable).with_name("kassa"))


def test_a_short_run_with_engine_kills_and_journal_cuts_loses_and_doubles_nothing(
    tmp_path: Path,
) -> None:
    options = ["--journal", POSTGRES, "--engines", "2", "--quick", "--json"]
    command = [KASSA, "bench", "faults", *options, "--results", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, timeout=180)
    assert done.returncode == 0, done.stdout.decode()[-2000:] + done.stderr.decode()[-2000:]
    result = json.loads(done.stdout.decode().splitlines()[-1])
    assert (result["lost"], result["duplicated"], result["failed_on_fn"]) == (0, 0, 0)
    assert result["fault_kinds"]["engine-kill"] >= 1
    assert result["fault_kinds"]["journal-cut"] == 1
    assert result["faults"] == sum(result["fault_kinds"].values())
    assert result["receipts"] > 0
    assert result["acknowledged"] == result["submitted"]
    assert result["receipts"] + result["failed"] == result["acknowledged"]
    # both engines held leases: each register was granted at least once
    assert len(result["lease_holders"]) == result["registers"] == 2


def test_the_plan_is_seeded_and_keeps_its_counts() -> None:
    actions, spec = fault_plan(6, 3, 8, 4, 2, 2.0, 40.0, seed=3)
    assert (actions, spec) == fault_plan(6, 3, 8, 4, 2, 2.0, 40.0, seed=3)
    kinds = [action.kind for action in actions]
    assert (kinds.count("engine-kill"), kinds.count("journal-cut")) == (6, 3)
    assert [action.at for action in actions] == sorted(action.at for action in actions)
    assert all(0 < action.at < 40.0 for action in actions)
    # with others to take over, every other kill stays down past its leases (2 s)
    downs = [a.seconds for a in actions if a.kind == "engine-kill"]
    assert sorted(downs) == [0.2] * 3 + [5.0] * 3
    items = spec.split(",")
    assert len(items) == 9 and items[-1].startswith("corrupt:")
    alone, _ = fault_plan(4, 0, 0, 4, 1, 2.0, 40.0, seed=3)
    assert {a.seconds for a in alone} == {0.2}  # K = 1: back at once, nobody else can go on


def test_the_fleet_log_line_the_tally_counts_is_the_one_the_emulator_writes() -> None:
    found = FAULT_LINE.match("fault at 12.345 s: register 3 power-after receipt committed")
    assert found is not None and found.groups() == ("3", "power-after")


def test_a_cut_drops_a_journal_connection_and_refuses_new_ones_for_its_outage() -> None:
    import psycopg

    from benchmarks.cluster import journal_proxy, scratch_journal

    with scratch_journal(POSTGRES) as store, journal_proxy(store.url) as proxy:
        through = store.url_via(proxy.port)
        assert f"127.0.0.1:{proxy.port}/{store.dbname}" in through
        with psycopg.connect(through, autocommit=True) as db:
            assert db.execute("SELECT COUNT(*) FROM jobs").fetchone() == (0,)
            assert proxy.cut(1.0) == 1
            with pytest.raises(psycopg.OperationalError):
                db.execute("SELECT 1")
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(through, connect_timeout=2).close()
        time.sleep(1.1)
        with psycopg.connect(through) as db:
            assert db.execute("SELECT 1").fetchone() == (1,)
        assert (proxy.cuts, proxy.refused) == (1, 1)
    with psycopg.connect(POSTGRES) as admin:
        gone = admin.execute(
            "SELECT COUNT(*) FROM pg_database WHERE datname = %s", (store.dbname,)
        ).fetchone()
    assert gone == (0,)
