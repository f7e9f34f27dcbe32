"""The ZeroMQ door of one engine on a PostgreSQL journal another engine shares: a client of
engine-a submits, engine-b (which leases every register) signs, and the client hears the
job's events, the fiscal data with the last, from engine-a's PUB socket. Skips, with one line
saying why, where no PostgreSQL server answers."""

from __future__ import annotations

import datetime as dt
import time
from zoneinfo import ZoneInfo

import attrs
import pytest
import trio
import zmq

from emulator.serve import open_memory_fleet
from engine.config import TenantConfig
from engine.service import open_service
from engine.service_config import ServiceSettings
from tests.engine.conftest import postgres_down
from tests.engine.fleet import fleet_config
from tests.engine.test_engine_scaleout import holding, running
from tests.service.test_service import A1, SERVER, Client, events_of, kassa_receipt, subscriber

if postgres_down():
    pytest.skip(postgres_down() or "", allow_module_level=True)


async def test_a_door_s_client_hears_the_events_of_a_job_another_engine_signed(
    postgres_url: str,
) -> None:
    settings = ServiceSettings(
        listen="tcp://127.0.0.1:*",
        server_public=SERVER.public,
        server_secret=SERVER.secret,
        clients={A1.raw: "a"},
    )
    now = dt.datetime.now(ZoneInfo("Europe/Moscow")).replace(tzinfo=None, microsecond=0)
    async with open_memory_fleet(1, start=now) as fleet:
        base = fleet_config(
            fleet,
            postgres_url,  # type: ignore[arg-type]
            tenants=(TenantConfig("a"),),
            wall_clock=time.time,
        )
        config_b = attrs.evolve(base, engine_id="engine-b", lease_seconds=1.5)
        config_a = attrs.evolve(base, engine_id="engine-a", lease_seconds=1.5)
        async with running(config_b) as (signer, _):
            await holding(signer, 1)
            async with open_service(settings, config_a) as door:
                assert door.engine is not None and door.engine._leases == {}

                def client_side() -> tuple[str, list[str], str]:
                    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
                    client = Client(context, door.endpoint, A1)
                    try:
                        sub = subscriber(context, client.ok("events")["endpoint"], A1)
                        time.sleep(0.3)  # the subscription reaches the PUB socket first
                        job = client.ok("submit", external_id="far", receipt=kassa_receipt())
                        job_id = job["job"]["id"]
                        states = events_of(sub, job_id, "fiscalized", timeout=30)
                        final = client.ok("status", job_id=job_id)["job"]
                        sub.close(linger=0)
                        return job_id, states, final["register"]
                    finally:
                        client.close()
                        context.term()

                with trio.fail_after(60):
                    job_id, states, register = await trio.to_thread.run_sync(client_side)
                assert states[-1] == "fiscalized", states  # events_of checked its fiscal data
                assert register == "kkt-0"
                result = await signer.journal.result(job_id)
                assert result is not None and result.register_id == "kkt-0"
