"""The benchmarks' child processes: a silent or dead child fails the run in time, never hangs it."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from benchmarks import processes

#: A child that starts, prints nothing and waits: a service stuck before it listens.
SILENT = [sys.executable, "-c", "import time; time.sleep(60)"]
#: A child that fails at once, as a service with a bad configuration does.
FAILING = [
    sys.executable,
    "-c",
    "import sys; print('kassa: no'); sys.exit('kassa: kassa.toml: [service] listen is missing')",
]


def _as_kassa(command: list[str]) -> object:
    return lambda arguments, profile: command


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (SILENT, r"said nothing for 0\.5 s"),
        (FAILING, r"ended before serving \(exit status 1\): kassa: kassa.toml: \[service\]"),
    ],
)
def test_a_service_that_does_not_serve_fails_the_run(
    monkeypatch: pytest.MonkeyPatch, command: list[str], message: str
) -> None:
    monkeypatch.setattr(processes, "STARTUP_SECONDS", 0.5)
    monkeypatch.setattr(processes, "_kassa", _as_kassa(command))
    began = time.monotonic()
    with pytest.raises(RuntimeError, match=message), processes.kassa_service(["127.0.0.1:1"]):
        pytest.fail("the service must not be yielded")
    assert time.monotonic() - began < 10  # the silent child is stopped, not waited for


def test_a_silent_fleet_fails_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(processes, "STARTUP_SECONDS", 0.5)
    monkeypatch.setattr(processes, "_kassa", _as_kassa(SILENT))
    began = time.monotonic()
    with pytest.raises(RuntimeError, match=r"said nothing for 0\.5 s"), processes.emulator_fleet(2):
        pytest.fail("the fleet must not be yielded")
    assert time.monotonic() - began < 10


def test_a_fleet_that_ends_at_once_is_tried_three_times(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    def failing(arguments: list[str], profile: object) -> list[str]:
        calls.append(arguments)
        return FAILING

    monkeypatch.setattr(processes, "_kassa", failing)
    with (
        pytest.raises(RuntimeError, match="did not start three times"),
        processes.emulator_fleet(2),
    ):
        pytest.fail("the fleet must not be yielded")
    assert len(calls) == 3


def test_the_main_thread_s_cpu_time_is_part_of_the_process_s() -> None:
    def spin(seconds: float) -> None:
        end = time.thread_time() + seconds
        while time.thread_time() < end:
            pass

    pid = os.getpid()
    before, main_before = processes.cpu_seconds(pid), processes.main_thread_cpu_seconds(pid)
    worker = threading.Thread(target=spin, args=(0.3,))
    worker.start()
    worker.join()
    spin(0.1)
    process = processes.cpu_seconds(pid) - before
    main = processes.main_thread_cpu_seconds(pid) - main_before
    # The clock ticks are 10 ms: the main thread spun 0.1 s, the process 0.4 s in all.
    assert 0.05 <= main <= 0.2
    assert process >= main + 0.2
