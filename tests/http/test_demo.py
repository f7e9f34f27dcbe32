"""``kassa serve --demo`` as a newcomer meets it: its credentials line, then the README's curl
lines run as written against it (the live password, token and uuid in place of the README's)."""

from __future__ import annotations

import array
import contextlib
import fcntl
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path
from typing import IO, Any

import httpx

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text()


def readme_session(title: str = "HTTP: the ATOL Online v5 API") -> list[tuple[str, str]]:
    """The README's curl session: (command, the answer it shows) in order."""
    section = README.split(f"## {title}", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    session = next(b for b in blocks if "$ curl" in b)
    steps: list[tuple[str, str]] = []
    command = ""
    for line in session.splitlines():
        if line.startswith("$ "):
            command = line[2:]
        elif command.endswith("\\"):
            command = command[:-1] + " " + line.strip()
        else:
            steps.append((command, line))
            command = ""
            continue
        if not command.endswith("\\") and command.startswith("export"):
            steps.append((command, ""))
            command = ""
    return steps


def start_demo(
    *extra: str, quiet: bool = False, log: Path | None = None, unread_pipe: bool = False
) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """``kassa serve --demo`` on free ports, and what it said before serving.

    Its log (stderr) goes to the file ``log``, else to an unnamed temporary file, never to a
    pipe: no test reads a pipe while it runs, and once a pipe holds 64 KiB the server's next
    log line blocks its event loop in write(2), so it answers nothing and ignores SIGINT
    (issue 22's http finding: some 540 refused notifications). ``quiet`` drops the log;
    ``unread_pipe`` sends it to such a pipe, for the test that the server copes with one.
    """
    with contextlib.ExitStack() as files:  # the child has its own copy of the log's file
        sink: IO[str] | int = subprocess.PIPE if unread_pipe else subprocess.DEVNULL
        if log is not None and not quiet:
            sink = files.enter_context(log.open("w+"))
        elif not quiet and not unread_pipe:
            sink = files.enter_context(tempfile.TemporaryFile("w+"))
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "engine.cli",
                "serve",
                "--demo",
                "--listen",
                "tcp://127.0.0.1:*",
                "--http-listen",
                "127.0.0.1:0",
                *extra,
            ],
            stdout=subprocess.PIPE,  # read below up to "stop:", after which it says nothing
            stderr=sink,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        said: dict[str, str] = {}
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        while "stop" not in said and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:  # it stopped before serving: its log says why
                process.wait(10)
                told = ""
                if not isinstance(sink, int):
                    sink.seek(0)
                    told = sink.read()
                raise AssertionError(told or "no output")
            key, _, value = line.partition(": ")
            said[key] = value.strip()
    return process, said


#: What a Linux pipe holds (pipe(7)): a writer blocks once that much is unread.
PIPE_BYTES = 65536


def test_the_demo_answers_and_stops_after_more_log_than_a_pipe_holds(tmp_path: Path) -> None:
    """Every unreadable notification logs a warning; twice a pipe's worth of them must neither
    stop the server (an unread stderr pipe did, and then it ignored SIGINT) nor be lost."""
    log = tmp_path / "server.log"
    process, said = start_demo(log=log)
    try:
        credentials = json.loads(said["credentials"])
        url = f"{credentials['http']}/notifications/{credentials['payments']['hook']}/tbank"
        with httpx.Client(trust_env=False, timeout=10) as client:
            sent = 0
            while log.stat().st_size <= 2 * PIPE_BYTES and sent < 3000:  # ~120 bytes each
                answer = client.post(url, data={"not": "json"})
                if answer.status_code == 429:  # the tenant's rate limit: wait as it says
                    time.sleep(float(answer.headers["Retry-After"]))
                    continue
                assert answer.status_code == 400, answer.text
                sent += 1
        logged = log.read_text()
        assert logged.count("unreadable tbank notification") >= sent, (sent, logged[-500:])
        assert len(logged.encode()) > 2 * PIPE_BYTES, (sent, len(logged))
    finally:
        process.send_signal(signal.SIGINT)
        try:
            assert process.wait(20) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_the_demo_answers_and_stops_while_nobody_reads_its_log() -> None:
    """A full stderr pipe held the event loop in write(2): nothing answered, SIGINT ignored.
    The log is written from a thread of its own now (engine/log_writer.py)."""
    process, said = start_demo(unread_pipe=True)
    try:
        assert process.stderr is not None
        credentials = json.loads(said["credentials"])
        url = f"{credentials['http']}/notifications/{credentials['payments']['hook']}/tbank"
        answered = 0
        with httpx.Client(trust_env=False, timeout=10) as client:
            while answered < 1200:  # ~120 bytes of warning each: twice what a pipe holds
                answer = client.post(url, data={"not": "json"})
                if answer.status_code == 429:  # the tenant's rate limit: wait as it says
                    time.sleep(float(answer.headers["Retry-After"]))
                    continue
                assert answer.status_code == 400, answer.text
                answered += 1
        waiting = array.array("i", [0])
        fcntl.ioctl(process.stderr.fileno(), termios.FIONREAD, waiting)
        assert waiting[0] > PIPE_BYTES // 2, waiting[0]  # it is (nearly) full: nobody read it
    finally:
        process.send_signal(signal.SIGINT)
        try:
            assert process.wait(20) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_the_readme_s_curl_session_runs_against_the_demo() -> None:
    process, said = start_demo()
    try:
        credentials: dict[str, Any] = json.loads(said["credentials"])
        assert set(credentials) >= {"http", "atol", "zmq"}
        assert set(credentials["atol"]) == {"login", "password", "group_code"}
        assert set(credentials["zmq"]) == {"endpoint", "server_key", "client_key"}
        assert credentials["http"].startswith("http://127.0.0.1:")
        assert Path(credentials["zmq"]["client_key"]).is_file()

        env = {**os.environ}
        shown_uuid = ""
        live_uuid = ""
        steps = readme_session()
        assert [c.split()[0] for c, _ in steps] == ["export", "curl", "export", "curl", "curl"]
        for command, shown in steps:
            if command.startswith("export KASSA="):
                env["KASSA"] = credentials["http"] + "/possystem/v5"
                env["PASS"] = credentials["atol"]["password"]
                assert shlex.split(command)[1] == "KASSA=http://127.0.0.1:8080/possystem/v5"
                continue
            if command.startswith("export TOKEN="):
                continue  # set from the live answer below
            expected = json.loads(shown)
            if "/report/" in command:
                command = command.replace(shown_uuid, live_uuid)
            for _ in range(200):  # the report: until the register has signed it
                done = subprocess.run(
                    ["bash", "-c", command], env=env, cwd=ROOT, capture_output=True, text=True
                )
                assert done.returncode == 0, done.stderr
                answer = json.loads(done.stdout)
                if answer.get("status") != "wait" or expected.get("status") == "wait":
                    break
                time.sleep(0.1)
            assert set(answer) == set(expected), (command, answer)
            assert answer["error"] is None, answer
            if "token" in expected:
                env["TOKEN"] = answer["token"]
            elif answer["status"] == "wait":
                shown_uuid, live_uuid = expected["uuid"], answer["uuid"]
            else:
                assert answer["status"] == expected["status"] == "done"
                assert set(answer["payload"]) == set(expected["payload"])
                for key in ("uuid", "group_code", "external_id"):
                    assert answer[key] == (live_uuid if key == "uuid" else expected[key])
                assert re.fullmatch(r"kkt-[01]", answer["device_code"]), answer  # either one
                assert '"total":1599.00' in done.stdout
        assert live_uuid, "the session sold nothing"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            assert process.wait(20) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_the_readme_s_komtet_curl_session_runs_against_the_demo() -> None:
    """The KOMTET session as written: openssl signs, curl sends; the demo's shop id and secret
    and the live task id stand in for the README's."""
    process, said = start_demo()
    try:
        credentials: dict[str, Any] = json.loads(said["credentials"])
        komtet = credentials["komtet"]
        assert set(komtet) == {"shop_id", "secret", "queue_id"} and komtet["queue_id"] == "main"
        steps = readme_session("HTTP: the KOMTET Kassa v2 API")
        assert [c.split()[0] for c, _ in steps] == ["export", "export", "curl", "export", "curl"]
        env = {**os.environ}
        shown_id = live_id = ""
        for command, shown in steps:
            if command.startswith("export KASSA="):
                words = dict(w.split("=", 1) for w in shlex.split(command)[1:])
                assert words["KASSA"] == "http://127.0.0.1:8080"
                assert words["SHOP"] == komtet["shop_id"]
                env.update(KASSA=credentials["http"], SHOP=komtet["shop_id"])
                env["SECRET"] = komtet["secret"]
                continue
            if command.startswith("export "):  # URL: evaluated by the shell, as a reader's is
                if shown_id:
                    command = command.replace(shown_id, live_id)
                done = subprocess.run(
                    ["bash", "-c", command + ' && printf %s "$URL"'],
                    env=env,
                    capture_output=True,
                    text=True,
                )
                env["URL"] = done.stdout
                continue
            expected = json.loads(shown)
            for _ in range(200):  # the task: until the register has signed it
                done = subprocess.run(
                    ["bash", "-c", command], env=env, cwd=ROOT, capture_output=True, text=True
                )
                assert done.returncode == 0, done.stderr
                answer = json.loads(done.stdout)
                if answer.get("state") != "new" or expected["state"] == "new":
                    break
                time.sleep(0.1)
            assert set(answer) == set(expected), (command, answer)
            assert answer["external_id"] == expected["external_id"] == "komtet-sell-card"
            if expected["state"] == "new":
                assert answer["state"] == "new", answer
                shown_id, live_id = expected["id"], answer["id"]
            else:
                assert answer["state"] == "done" and answer["id"] == live_id, answer
                assert set(answer["fiscal_data"]) == set(expected["fiscal_data"])
                assert answer["fiscal_data"]["s"] == "1599.00"
        assert live_id, "the session sold nothing"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            assert process.wait(20) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def _stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        assert process.wait(20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_readme_s_payment_notifications_run_against_the_demo() -> None:
    """One notification per provider and the shipment, as written: the demo's hook, secrets and
    password stand in for the README's; then each receipt is fiscalized (``kassa status`` over
    ZeroMQ), the shipment's prepayment being the T-Bank payment's own receipt."""
    process, said = start_demo()
    try:
        credentials: dict[str, Any] = json.loads(said["credentials"])
        payments = credentials["payments"]
        assert set(payments) == {
            "hook",
            "yookassa_secret",
            "cloudpayments_secret",
            "tbank_password",
            "settlement",
            "urls",
        }
        assert payments["settlement"] == "prepayment"
        hook_url = f"{credentials['http']}/notifications/{payments['hook']}"
        assert payments["urls"]["tbank"] == hook_url + "/tbank"
        steps = readme_session("HTTP: payment notifications")
        programs = ["export", "curl", "export", "curl", "curl", "export", "curl"]
        assert [c.split()[0] for c, _ in steps] == programs
        live = {
            "KASSA": credentials["http"],
            "HOOK": payments["hook"],
            "PASS": credentials["atol"]["password"],
            "YOOKASSA": payments["yookassa_secret"],
            "CP": payments["cloudpayments_secret"],
            "TBANK": payments["tbank_password"],
        }
        env = {**os.environ}
        jobs: dict[str, str] = {}
        for command, shown in steps:
            if command.startswith("export KASSA="):
                words = dict(w.split("=", 1) for w in shlex.split(command)[1:])
                assert set(words) == set(live) and words["KASSA"] == "http://127.0.0.1:8080"
                env.update(live)
                continue
            if command.startswith("export "):  # evaluated by the shell, as a reader's is
                name = command.split()[1].split("=", 1)[0]
                done = subprocess.run(
                    ["bash", "-c", f'{command} && printf %s "${name}"'],
                    env=env,
                    capture_output=True,
                    text=True,
                )
                assert done.returncode == 0 and done.stdout, (command, done.stderr)
                env[name] = done.stdout
                continue
            done = subprocess.run(
                ["bash", "-c", command], env=env, cwd=ROOT, capture_output=True, text=True
            )
            assert done.returncode == 0, done.stderr
            if not shown.startswith("{"):
                assert done.stdout == shown, (command, done.stdout)  # T-Bank's OK
                continue
            answer, expected = json.loads(done.stdout), json.loads(shown)
            assert set(answer) == set(expected), (command, answer)
            if "code" in expected:
                assert answer == expected == {"code": 0}
            elif "prepayment" in expected:
                assert answer["external_id"] == expected["external_id"] == "tbank:8742591:shipped"
                jobs[answer["external_id"]] = answer["job"]
                jobs["tbank:8742591:payment"] = answer["prepayment"]
            else:
                jobs["yookassa:2ecf1a3c-000f-5000-8000-1f0a8b3c7d10:payment"] = answer["job"]
        assert len(jobs) == 3, jobs

        zmq = credentials["zmq"]
        status = [sys.executable, "-m", "engine.cli", "status", "--json"]
        status += ["--server", zmq["endpoint"], "--server-key", zmq["server_key"]]
        status += ["--key", zmq["client_key"]]
        external_ids = [*jobs, "cloudpayments:1211506522:payment"]
        for external_id in external_ids:
            for _ in range(200):  # until the register has signed it
                asked = subprocess.run(
                    [*status, "--external-id", external_id],
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                )
                assert asked.returncode == 0, asked.stderr
                job = json.loads(asked.stdout)
                if job["state"] not in ("accepted", "queued", "sent"):
                    break
                time.sleep(0.1)
            assert job["state"] == "fiscalized", job
            assert jobs.get(external_id, job["id"]) == job["id"], (external_id, job)
    finally:
        _stop(process)
