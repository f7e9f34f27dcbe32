"""The benchmarks' child processes: a silent or dead child fails the run in time, never hangs it."""

from __future__ import annotations

import sys
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
