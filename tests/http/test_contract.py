"""The HTTP door keeps its contract: docs/openapi.json, checked by schemathesis against a live
``kassa serve --demo`` process, and JSON refusals in each API's own shape for requests no route
takes and bodies over the limit however they are sent."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import trio

from engine.http.openapi import served
from engine.limits import SizeLimits
from tests.http.conftest import JSON, corpus, serving
from tests.http.schemathesis_hooks import PLACEHOLDER
from tests.http.test_atol import assert_error
from tests.http.test_demo import ROOT, start_demo

#: What schemathesis checks: every built-in check of a response against the document (all are on
#: by default), and the server's answers to methods and headers the document does not allow.
#: Left out: positive_data_acceptance, which wants every schema-valid body accepted, while the
#: document cannot carry all of 54-FZ's rules (the server's 400s name the fields it refuses).
#: The checks are set in the config file, not on the command line, where they would override
#: the one operation's exemption below.
CHECKS = "[checks]\npositive_data_acceptance.enabled = false\n"
#: Examples per operation: 30, the same every run, in the suite; ``kassa fuzz http`` (fuzz/http.py)
#: sets KASSA_FUZZ_HTTP_EXAMPLES for a longer run with fresh random data each time.
EXAMPLES = int(os.environ.get("KASSA_FUZZ_HTTP_EXAMPLES", "30"))
GENERATION = () if "KASSA_FUZZ_HTTP_EXAMPLES" in os.environ else ("--generation-deterministic",)


def test_schemathesis_finds_no_5xx_and_no_answer_outside_the_document(tmp_path: Path) -> None:
    log = tmp_path / "server.log"  # the server's own account, for a finding's report
    process, said = start_demo(log=log)
    try:
        credentials = json.loads(said["credentials"])
        base, atol = credentials["http"], credentials["atol"]
        login = {"login": atol["login"], "pass": atol["password"]}
        answer = httpx.post(f"{base}/possystem/v5/getToken", json=login, trust_env=False)
        token = answer.json()["token"]
        komtet, payments = credentials["komtet"], credentials["payments"]
        # The generated requests go to the demo's group with a live token, to its KOMTET shop
        # signed with its secret (tests/http/schemathesis_hooks.py) and to its payment hook, so
        # that they reach the receipt's checks and the engine rather than stop at authentication.
        # The notifications' own proofs (secret, Content-HMAC, Token) are not made: those are
        # refused with 401, as the document says.
        config = tmp_path / "schemathesis.toml"
        config.write_text(
            CHECKS + "[parameters]\n"
            f'"path.group_code" = "{atol["group_code"]}"\n'
            f'"header.Token" = "{token}"\n'
            f'"path.queue_id" = "{komtet["queue_id"]}"\n'
            f'"header.Authorization" = "{komtet["shop_id"]}"\n'
            f'"header.X-HMAC-Signature" = "{PLACEHOLDER}"\n'
            f'"path.hook" = "{payments["hook"]}"\n'
            # multi-tasks answers each entry alone: a bad entry is an error in its slot of a
            # 200, not a refusal of the request (README), so schema-violating data is "accepted".
            "[[operations]]\n"
            'include-operation-id = "komtetMultiTasks"\n'
            "checks.negative_data_rejection.enabled = false\n"
        )
        env = {
            **os.environ,
            "SCHEMATHESIS_HOOKS": "tests.http.schemathesis_hooks",
            "KASSA_KOMTET_SECRET": komtet["secret"],
            "PYTHONPATH": str(ROOT),
        }
        run = subprocess.run(
            [
                *(sys.executable, "-m", "schemathesis.cli", "--config-file", str(config)),
                *("run", f"{base}/openapi.json"),
                *("--max-examples", str(EXAMPLES), *GENERATION, "--no-color"),
                *("--phases", "examples,coverage,fuzzing,stateful", "--workers", "1"),
                *("--request-timeout", "10"),
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120 if EXAMPLES == 30 else None,
        )
        print(run.stdout[-3000:])  # kassa fuzz http reads the summary
        told = log.read_text(errors="replace")[-2000:]
        assert run.returncode == 0, f"{run.stdout[-6000:]}{run.stderr[-2000:]}\nserver:\n{told}"
        operations = sum(len(methods) for methods in served()["paths"].values())
        every = rf"Selected: {operations}/{operations}|{operations} selected / {operations} total"
        assert re.search(every, run.stdout), run.stdout
        assert " passed" in run.stdout and "generated" in run.stdout, run.stdout
        assert not re.search(r"(?<!\d)0 generated", run.stdout), (
            run.stdout
        )  # 1620 generated is fine
    finally:
        process.send_signal(signal.SIGINT)
        try:
            assert process.wait(20) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


async def test_requests_no_route_takes_are_refused_in_json(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        token = await served.token()
        # Under the ATOL prefix: ATOL's error shape, code 40, the path in the text.
        unknown = await served.client.get("/possystem/v5/main/a/b/c", headers={"Token": token})
        text = assert_error(unknown, 404, 40)
        assert "/possystem/v5/main/a/b/c" in text, text
        wrong = await served.client.get("/possystem/v5/main/sell", headers={"Token": token})
        text = assert_error(wrong, 405, 40)
        assert wrong.headers["Allow"] == "POST" and "GET" in text, (wrong.headers, text)
        put = await served.client.put("/possystem/v5/getToken", json={}, headers=JSON)
        assert_error(put, 405, 40, status=None)
        assert put.json()["token"] is None
        # Under KOMTET's prefix: its {title, code, description}.
        komtet = await served.client.get("/api/shop/v2/nothing/here")
        assert komtet.status_code == 404, komtet.text
        assert set(komtet.json()) == {"title", "code", "description"}, komtet.text
        assert "/api/shop/v2/nothing/here" in komtet.json()["description"]
        get_task = await served.client.get("/api/shop/v2/queues/main/task")
        assert get_task.status_code == 405 and get_task.headers["Allow"] == "POST"
        assert get_task.json()["code"] == "request.method_not_allowed", get_task.text
        # Under the payments' prefixes: their {"error": text}.
        for path in ("/notifications/x", "/payments/tbank/1/unknown"):
            payments = await served.client.post(path)
            assert payments.status_code == 404, payments.text
            assert set(payments.json()) == {"error"} and path in payments.json()["error"]
        get_hook = await served.client.get("/notifications/hook-0123456789abcdef/tbank")
        assert get_hook.status_code == 405 and get_hook.headers["Allow"] == "POST"
        assert set(get_hook.json()) == {"error"}, get_hook.text
        # Elsewhere: the door's own shape, naming the path.
        other = await served.client.get("/nowhere/at/all")
        assert other.status_code == 404
        assert other.headers["content-type"].startswith("application/json")
        error = other.json()["error"]
        assert error["code"] == 404 and error["path"] == "/nowhere/at/all", error
        spec = await served.client.post("/openapi.json")
        assert spec.status_code == 405 and spec.json()["error"]["code"] == 405
        assert set(spec.headers["Allow"].split(", ")) == {"GET", "HEAD"}


async def test_a_chunked_body_over_the_limit_is_refused_before_it_ends(tmp_path: Path) -> None:
    sizes = SizeLimits(request_bytes=8192, receipt_bytes=4096)
    async with serving(tmp_path, sizes=sizes) as served:
        token = await served.token()
        host, port = served.url.removeprefix("http://").rsplit(":", 1)
        stream = await trio.open_tcp_stream(host, int(port))
        head = (
            "POST /possystem/v5/main/sell HTTP/1.1\r\n"
            f"Host: {host}\r\nToken: {token}\r\n"
            "Content-Type: application/json; charset=utf-8\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b" " * 1024
        await stream.send_all(head.encode())
        for _ in range(6):  # 6 KiB, past the 4 KiB limit, and the body never ends
            await stream.send_all(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        received = b""
        with trio.fail_after(10):
            while b"\r\n\r\n" not in received:
                received += await stream.receive_some(4096)
        assert received.startswith(b"HTTP/1.1 413"), received
        await stream.aclose()
        assert await served.engine.journal.jobs_of("shop") == []
        # The door goes on taking bodies within the limit.
        assert (await served.sell(corpus("atol-sell-prepayment.json"), token)).status_code == 200
