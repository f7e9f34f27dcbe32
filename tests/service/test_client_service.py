"""The Python client against the real service: every method, both forms, events."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from engine import samples
from engine.client import (
    BatchEntry,
    ClientKeys,
    JobEvent,
    KassaClient,
    KassaError,
    Submitted,
    TrioKassaClient,
    subscribe,
)
from engine.service_config import write_certificate
from protocols.documents.json_format import receipt_to_json
from tests.service.test_client import KASSA
from tests.service.test_service import A1, B1, CORPUS, SERVER, Keys, Running


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
        # срок действия ФН and the OFD backlog, as the dashboard shows them
        assert register.fn_expires is not None and register.fn_days_left is not None
        assert register.fn_days_left > 30 and len(register.fn_expires) == 10
        assert register.ofd_unsent is not None and register.ofd_unsent >= 0
        assert (register.ofd_oldest is None) == (register.ofd_unsent == 0)
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


# --- oversized input ----------------------------------------------------------------------------


def komtet_text(padding: int) -> str:
    """A KOMTET receipt as JSON text, a long unknown field making it about ``padding`` bigger."""
    body = json.loads((CORPUS / "komtet-buy.json").read_text(encoding="utf-8"))
    return json.dumps({**body, "x": "a" * padding})


def test_the_client_refuses_10_mb_unsent_and_reports_the_service_s_too_large(
    service: Running,
) -> None:
    huge, big = json.loads(komtet_text(10**7)), json.loads(komtet_text(300_000))
    with KassaClient(service.endpoint, keys_of(A1), timeout=10) as client:
        with pytest.raises(KassaError) as caught:
            client.submit("huge-1", huge, format="komtet")  # refused here, at once
        assert (caught.value.code, caught.value.path, caught.value.limit) == (
            "too_large",
            "receipt",
            1 << 20,
        )
        with pytest.raises(KassaError) as caught:
            client.submit("big-1", big, format="komtet")  # the service's own limit
        assert (caught.value.code, caught.value.path, caught.value.limit) == (
            "too_large",
            "receipt",
            256 << 10,
        )
        assert caught.value.message.endswith(
            "is over this service's limit of 262144 bytes (256 KiB)"
        )
        results = client.submit_batch(
            [
                BatchEntry("fit-1", samples.card_sale(1001)),
                BatchEntry("huge-2", huge, format="komtet"),
                BatchEntry("big-2", big, format="komtet"),
                BatchEntry("fit-2", samples.card_sale(1002)),
            ]
        )
        assert client.reopened == 0  # no answer was waited for in vain
        assert client.ping().tenant == "a"
        for external_id in ("huge-1", "big-1", "huge-2", "big-2"):
            with pytest.raises(KassaError) as missing:
                client.status(external_id=external_id)
            assert missing.value.code == "not_found"
    first, huge_entry, big_entry, last = results
    assert isinstance(first, Submitted) and isinstance(last, Submitted)
    assert isinstance(huge_entry, KassaError) and isinstance(big_entry, KassaError)
    assert (huge_entry.code, huge_entry.path, huge_entry.limit) == ("too_large", "jobs[1]", 1 << 20)
    assert (big_entry.code, big_entry.path, big_entry.limit) == ("too_large", "jobs[2]", 256 << 10)


def test_the_trio_client_gets_the_service_s_too_large_at_once(service: Running) -> None:
    big = json.loads(komtet_text(300_000))

    async def main() -> KassaError:
        async with TrioKassaClient.open(service.endpoint, keys_of(B1), timeout=10) as client:
            with trio.fail_after(30), pytest.raises(KassaError) as caught:  # a deadline only
                await client.submit("big-3", big, format="komtet")
            assert (await client.ping()).tenant == "b"
            return caught.value

    error = trio.run(main)
    assert (error.code, error.path, error.limit) == ("too_large", "receipt", 256 << 10)


@pytest.fixture
def cli_env(tmp_path: Path, service: Running) -> dict[str, str]:
    """KASSA_* for tenant a's key, as certificate files."""
    server_key, _ = write_certificate(tmp_path / "server", SERVER.public, SERVER.secret)
    _, client_key = write_certificate(tmp_path / "a1", A1.public, A1.secret)
    return {
        "KASSA_SERVER": service.endpoint,
        "KASSA_SERVER_KEY": str(server_key),
        "KASSA_KEY": str(client_key),
    }


def kassa(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KASSA, *args], capture_output=True, text=True, timeout=60, env={**os.environ, **env}
    )


def test_kassa_submit_refuses_a_10_mb_file_before_sending_and_exits_2(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    huge = tmp_path / "huge-file.json"
    huge.write_text(komtet_text(10**7), encoding="utf-8")
    done = kassa("submit", str(huge), env=cli_env)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        f"kassa: error: {huge}: too_large: an input of {huge.stat().st_size} bytes is over "
        "the limit of 1048576 bytes (1 MiB)\n"
    )


def test_kassa_submit_prints_the_service_s_too_large_per_file_and_exits_1(
    tmp_path: Path, cli_env: dict[str, str], service: Running
) -> None:
    big = tmp_path / "big-file.json"
    big.write_text(komtet_text(300_000), encoding="utf-8")
    good = tmp_path / "cli-good-1.json"
    good.write_text(json.dumps(receipt_to_json(samples.card_sale(1003)), default=str))
    done = kassa("submit", str(big), str(good), env=cli_env)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    refused, accepted = done.stdout.splitlines()
    path, dash, word, error = refused.split("\t")
    assert (path, dash, word) == (str(big), "-", "refused")
    assert error.startswith("too_large: jobs[0]: a receipt of ")
    assert error.endswith(" bytes is over this service's limit of 262144 bytes (256 KiB)")
    assert accepted.startswith(f"{good}\t")
    with KassaClient(service.endpoint, keys_of(A1)) as client:
        assert client.status(external_id="cli-good-1").external_id == "cli-good-1"
