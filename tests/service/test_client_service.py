"""The Python client against the real service: every method, both forms, events."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import trio

from engine import samples
from engine.client import ClientKeys, JobEvent, KassaClient, KassaError, TrioKassaClient, subscribe
from tests.service.test_service import A1, B1, SERVER, Keys, Running


def keys_of(keys: Keys) -> ClientKeys:
    return ClientKeys(SERVER.public, keys.public, keys.secret)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = Running(tmp_path_factory.mktemp("client"))
    yield running
    running.stop()


def test_every_method_of_the_blocking_client(service: Running) -> None:
    with KassaClient(service.endpoint, keys_of(A1)) as client:
        assert client.ping().tenant == "a"
        endpoint = client.events_endpoint()
        events: list[JobEvent] = []
        listener = threading.Thread(
            target=lambda: events.extend(subscribe(endpoint, keys_of(A1), idle_timeout=5.0))
        )
        listener.start()
        first = client.submit("c-1", samples.card_sale())
        assert not first.duplicate
        again = client.submit("c-1", samples.card_sale())
        assert again.duplicate and again.job.id == first.job.id
        while not (job := client.status(first.job.id)).final:
            time.sleep(0.05)
        assert job.state == "fiscalized"
        assert client.status(external_id="c-1").id == first.job.id
        receipt = client.receipt(first.job.id)
        assert receipt.fiscal is not None and receipt.fiscal.qr.startswith("t=")
        assert [line.name for line in receipt.lines] == [i.name for i in samples.card_sale().items]
        page = client.list_jobs(limit=1)
        assert [j.id for j in page.jobs] == [first.job.id]  # tenant a's only job
        assert client.list_jobs(after=first.job.id).jobs == ()
        (register,) = client.registers()
        assert register.id == "kkt-0" and register.state == "ready"
        assert client.shift("kkt-0", "close") is True  # the shift of the receipt above
        assert client.shift("kkt-0", "close") is False
        report = client.report(0, 4e9)
        assert "kkt-0" in report.text and "match" in report.text
        rows = "".join(client.export("csv")).splitlines()
        assert len(rows) == 2 and first.job.id in rows[1]
        with pytest.raises(KassaError) as refused:
            client.cancel(first.job.id)
        assert refused.value.code == "not_cancellable"
        with pytest.raises(KassaError) as missing:
            client.status("no-such-job")
        assert missing.value.code == "not_found"
        listener.join(10)
    states = [e.job.state for e in events if e.job.id == first.job.id]
    assert states[-1] == "fiscalized", states
    assert next(e.fiscal for e in events if e.job.state == "fiscalized") is not None


def test_the_trio_client_keeps_many_requests_in_flight(service: Running) -> None:
    async def main() -> list[str]:
        async with TrioKassaClient.open(service.endpoint, keys_of(B1)) as client:
            submitted: list[str] = []

            async def one(i: int) -> None:
                done = await client.submit(f"t-{i}", samples.card_sale(100_000 + i))
                submitted.append(done.job.id)

            async with trio.open_nursery() as nursery:
                for i in range(40):
                    nursery.start_soon(one, i)
            with trio.fail_after(60):
                for job_id in submitted:
                    while not (await client.status(job_id)).final:
                        await trio.sleep(0.05)
            assert (await client.ping()).tenant == "b"
            return submitted

    submitted = trio.run(main)
    assert len(set(submitted)) == 40
    with KassaClient(service.endpoint, keys_of(B1)) as client:
        assert {client.status(j).state for j in submitted} == {"fiscalized"}
    with KassaClient(service.endpoint, keys_of(A1)) as other:  # tenant a sees none of b's
        for job_id in submitted[:5]:
            with pytest.raises(KassaError) as hidden:
                other.status(job_id)
            assert hidden.value.code == "not_found"
