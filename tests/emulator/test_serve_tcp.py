"""``kassa emulator serve`` on real sockets, talked to by a hand-written third-party client."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from benchmarks.processes import free_ports
from protocols.atol import (
    NEED_DATA,
    DeviceStatus,
    GetDeviceStatus,
    HostConnection,
    TaskFinished,
    decode_answer,
)
from protocols.atol.taskbuffer import AddTask, ReqTask

KASSA = [sys.executable, "-m", "engine.cli"]
ROOT = Path(__file__).resolve().parents[2]
ENQ, STX, ACK, NAK = 0x05, 0x02, 0x06, 0x15
#: 10h short status with the administrator password 30 (registers.md §1.10 R1).
SHORT_STATUS = bytes.fromhex("02 05 10 1E 00 00 00 0B")


def lrc(data: bytes) -> int:
    out = 0
    for byte in data:
        out ^= byte
    return out


def read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "connection closed"
        data += chunk
    return data


def short_status(port: int) -> tuple[bytes, bytes]:
    """ENQ, the 10h frame, ACK, as a plain blocking client; (answer payload, bytes after ACK)."""
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        sock.sendall(bytes((ENQ,)))
        assert read_exactly(sock, 1) == bytes((NAK,))  # idle, ready for a command
        sock.sendall(SHORT_STATUS)
        assert read_exactly(sock, 1) == bytes((ACK,))
        head = read_exactly(sock, 2)
        assert head[0] == STX
        rest = read_exactly(sock, head[1] + 1)
        payload, check = rest[:-1], rest[-1]
        assert lrc(head[1:] + payload) == check
        sock.sendall(bytes((ACK,)))
        sock.settimeout(0.5)
        try:
            after = sock.recv(16)
        except TimeoutError:
            after = b""
        return payload, after


def call(port: int, payload: bytes) -> bytes:
    """One v1 command on a connection of its own: ENQ, the frame, ACK; the answer payload."""
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        sock.sendall(bytes((ENQ,)))
        assert read_exactly(sock, 1) == bytes((NAK,))
        body = bytes((len(payload),)) + payload
        sock.sendall(bytes((STX,)) + body + bytes((lrc(body),)))
        assert read_exactly(sock, 1) == bytes((ACK,))
        head = read_exactly(sock, 2)
        assert head[0] == STX
        rest = read_exactly(sock, head[1] + 1)
        assert lrc(head[1:] + rest[:-1]) == rest[-1]
        sock.sendall(bytes((ACK,)))
        return rest[:-1]


def start(*args: str, protocol: str = "shtrih") -> tuple[subprocess.Popen[str], list[str]]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [*KASSA, "emulator", "serve", "--protocol", protocol, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(20, proc.kill)
    watchdog.start()
    try:
        count = int(args[args.index("--registers") + 1])
        assert proc.stdout is not None
        lines = [proc.stdout.readline().strip() for _ in range(count)]
    finally:
        watchdog.cancel()
    return proc, lines


def stop(proc: subprocess.Popen[str], how: signal.Signals = signal.SIGINT) -> None:
    proc.send_signal(how)
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_sigterm_stops_the_fleet_cleanly() -> None:
    """A service manager stops with SIGTERM; a background shell start ignores SIGINT."""
    proc, lines = start("--registers", "1", "--port", str(free_ports(1)))
    assert len(lines) == 1
    stop(proc, signal.SIGTERM)


@pytest.mark.parametrize("line", ["tcp", "serial"])
def test_serve_with_a_third_party_client(line: str) -> None:
    port = free_ports(2)
    proc, lines = start("--registers", "2", "--port", str(port), "--line", line, "--seed", "3")
    try:
        numbers = [text.split() for text in lines]
        assert [int(n[0]) for n in numbers] == [port, port + 1], lines
        assert all(len(n[1]) == 16 and len(n[2]) == 16 for n in numbers)
        assert numbers[0][1] != numbers[1][1]
        for offset in (0, 1):
            payload, after = short_status(port + offset)
            assert payload[:2] == b"\x10\x00" and len(payload) == 16
            assert payload[2] == 30  # operator
            assert payload[5] & 0x0F == 4  # shift closed
            assert after == (b"\xff" if line == "tcp" else b"")
    finally:
        if proc.poll() is None:
            stop(proc)


def test_bad_arguments_exit_2() -> None:
    for args in (
        ["--protocol", "atol", "--model", "shtrih-m-01f", "--port", "1"],
        ["--protocol", "shtrih", "--port", "x"],
        ["--protocol", "atol", "--port", "1", "--faults", "drop:2"],
        ["--protocol", "atol", "--port", "1", "--tax-table", "nano-2026"],  # Shtrih-Nano's
        ["--protocol", "shtrih", "--port", "1", "--fn-age", "-1"],  # registered later
        ["--protocol", "shtrih", "--port", "1", "--fn-months", "12"],  # 15 or 36
    ):
        done = subprocess.run(
            [*KASSA, "emulator", "serve", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert done.returncode == 2
        assert "Traceback" not in done.stderr
    faults = subprocess.run(
        [*KASSA, "emulator", "serve", "--protocol", "shtrih", "--port", "1", "--faults", "drop"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert faults.returncode == 2 and faults.stderr.count("\n") == 1


def test_a_fn_late_in_its_life_reports_its_expiry() -> None:
    """--fn-age 20: the keys end 20 days sooner; --fn-sent: FD 1 reached the OFD then.

    (Without --fn-sent FD 1 would wait for the OFD, but the fleet's OFD takes it at once.)
    """
    port = free_ports(1)
    options = ("--fn-age", "20", "--fn-months", "36", "--fn-sent")
    proc, _ = start("--registers", "1", "--port", str(port), *options)
    try:
        expiry = call(port, bytes.fromhex("FF 03 1E 00 00 00"))  # FF03h, password 30
        ofd = call(port, bytes.fromhex("FF 39 1E 00 00 00"))  # FF39h
    finally:
        if proc.poll() is None:
            stop(proc)
    registered = dt.date.today() - dt.timedelta(days=20)
    assert expiry[:3] == b"\xff\x03\x00"
    expires = dt.date(2000 + expiry[3], expiry[4], expiry[5])
    assert expires.year == registered.year + 3 and expires.month == registered.month
    assert ofd[:3] == b"\xff\x39\x00" and ofd[5:] == bytes(11)  # nothing waits


def test_a_port_already_taken_is_one_line_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*KASSA, "emulator", "serve", "--protocol", "shtrih", "--port", str(port)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=20,
        )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and f"--port {port}" in done.stderr


@pytest.mark.parametrize("faults", [(), ("--faults", "slow:2x,ofd-down@1h")])
def test_serve_an_atol_fleet(faults: tuple[str, ...]) -> None:
    """ATOL registers on TCP answer Kassa's ATOL host through the task buffer (faults or not)."""
    port = free_ports(2)
    proc, lines = start("--registers", "2", "--port", str(port), *faults, protocol="atol")
    try:
        assert [int(line.split()[0]) for line in lines] == [port, port + 1]
        with socket.create_connection(("127.0.0.1", port + 1), timeout=5) as sock:
            host = HostConnection()
            request = GetDeviceStatus()
            sock.sendall(host.send(AddTask(tid=1, request=request.encode())))
            status = None
            deadline = time.monotonic() + 10
            while status is None and time.monotonic() < deadline:
                host.receive_data(sock.recv(4096))
                while (event := host.next_event()) is not NEED_DATA:
                    if isinstance(event, TaskFinished):
                        status = decode_answer(request, event.answer)
                if status is None and not host.awaiting_answer:
                    sock.sendall(host.send(ReqTask(tid=1)))
        assert isinstance(status, DeviceStatus)
        assert status.model == 70  # ATOL 42ФА, the default ATOL model
    finally:
        if proc.poll() is None:
            stop(proc)
