"""An independent Shtrih driver, pyshtrih from PyPI, against ``kassa emulator serve``.

pyshtrih drives a register on a serial port through pyserial; here pyserial's own
``socket://`` transport stands in for the serial-to-TCP device server that such a register
sits behind in a data centre, so the emulator runs with ``--line serial`` (no 0xFF after ACK).
The driver's protocol code is used as shipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyshtrih
import pytest
from pyshtrih import protocol as pyshtrih_protocol
from serial.urlhandler import protocol_socket

from tests.emulator.test_serve_tcp import free_ports, start, stop


@pytest.fixture
def register(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    port = free_ports(1)
    proc, lines = start("--registers", "1", "--port", str(port), "--line", "serial")
    assert lines[0].split()[0] == str(port)
    monkeypatch.setattr(
        pyshtrih_protocol.serial, "Serial", lambda **kw: protocol_socket.Serial(**kw)
    )
    device = pyshtrih.ShtrihOnLine(port=f"socket://127.0.0.1:{port}", baudrate=115200, timeout=5)
    try:
        device.connect()
        yield device
    finally:
        device.disconnect()
        stop(proc)


def test_pyshtrih_reads_status_and_runs_a_shift(register: Any) -> None:
    state = register.state()
    assert state["Код ошибки"] == 0
    assert str(state["Режим ФР"]) == "Закрытая смена."
    full = register.full_state()
    assert full["Код ошибки"] == 0
    assert register.open_shift()["Код ошибки"] == 0
    assert str(register.state()["Режим ФР"]).startswith("Открытая смена")
    fs = register.fs_state()
    assert fs["Код ошибки"] == 0
