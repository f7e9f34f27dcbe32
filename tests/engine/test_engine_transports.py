"""The engine over real transports on the real clock: a served fleet over TCP, a pty line."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import trio

from benchmarks.processes import free_ports
from emulator.serve import make_register, serve_register
from engine import samples
from engine.config import EngineConfig, RegisterConfig, TenantConfig
from engine.connectors import serial_connector, tcp_connector
from engine.engine import Engine
from engine.journal import JobState
from protocols.documents.ffd import decode_receipt
from protocols.fiscal_sign import EmulatorSignVerifier
from tests.engine.test_cli_tlv import KASSA


@pytest.mark.parametrize("protocol", ["shtrih", "atol"])
async def test_the_engine_drives_a_served_fleet_over_tcp(protocol: str, tmp_path: Path) -> None:
    port = free_ports(2)
    server = subprocess.Popen(
        [
            KASSA,
            "emulator",
            "serve",
            "--protocol",
            protocol,
            "--registers",
            "2",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert server.stdout is not None
        lines = [server.stdout.readline().decode().split() for _ in range(2)]
        fns = [line[1] for line in lines]
        config = EngineConfig(
            journal=tmp_path / "j.db",
            tenants=(TenantConfig("shop"),),
            registers=tuple(
                RegisterConfig(f"kkt-{i}", "shop", tcp_connector(protocol, "127.0.0.1", port + i))
                for i in range(2)
            ),
        )
        async with Engine.open(config) as engine:
            jobs = [
                await engine.submit("shop", f"o-{i}", r)
                for i, r in enumerate(
                    [samples.card_sale(), samples.marked_sale(), samples.correction()] * 2
                )
            ]
            with trio.fail_after(60):
                done = [await engine.wait("shop", job.id) for job in jobs]
            assert [job.state for job in done] == [JobState.FISCALIZED] * len(jobs)
            by_fn: dict[str, list[int]] = {}
            for job in jobs:
                result = await engine.result("shop", job.id)
                assert result is not None and result.fn_number in fns
                assert decode_receipt(result.document).receipt.additional_prop == job.id[:16]
                by_fn.setdefault(result.fn_number, []).append(result.fd_number)
            for fds in by_fn.values():  # contiguous per ФН after each one's open-shift report
                assert fds == list(range(fds[0], fds[0] + len(fds)))
            assert sum(map(len, by_fn.values())) == len(jobs)
    finally:
        server.terminate()
        server.wait(timeout=10)


async def test_the_engine_drives_a_register_on_a_serial_line(tmp_path: Path) -> None:
    """The emulator on a pty's master end, the engine on its slave device path."""
    master, slave = os.openpty()
    path = os.ttyname(slave)
    register = make_register(0)
    async with trio.open_nursery() as nursery:
        line = trio.lowlevel.FdStream(master)
        nursery.start_soon(serve_register, line, register)
        config = EngineConfig(
            journal=tmp_path / "j.db",
            tenants=(TenantConfig("shop"),),
            registers=(
                RegisterConfig("kkt-0", "shop", serial_connector("shtrih", path, baud=115200)),
            ),
            verifier=EmulatorSignVerifier({register.fn.number: register.fn.key}),
        )
        async with Engine.open(config) as engine:
            job = await engine.submit("shop", "o-1", samples.marked_sale())
            with trio.fail_after(30):
                done = await engine.wait("shop", job.id)
            assert done.state is JobState.FISCALIZED, done.error
            result = await engine.result("shop", job.id)
            assert result is not None and result.document == register.fn.archive[result.fd_number]
        nursery.cancel_scope.cancel()
    os.close(slave)
