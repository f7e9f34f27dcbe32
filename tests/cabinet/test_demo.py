"""``kassa serve --demo`` names a cabinet owner in its credentials line, who can log in."""

from __future__ import annotations

import json
import re
import signal
from typing import Any

import httpx

from tests.http.test_demo import start_demo


def test_the_demo_s_cabinet_owner_logs_in() -> None:
    process, said = start_demo()
    try:
        credentials: dict[str, Any] = json.loads(said["credentials"])
        cabinet = credentials["cabinet"]
        assert set(cabinet) == {"url", "login", "password"}
        assert cabinet["url"] == credentials["http"] + "/cabinet/"
        with httpx.Client(base_url=cabinet["url"], trust_env=False) as client:
            form = client.get("login")
            token = re.search(r'name="csrf" value="([^"]+)"', form.text)
            assert token is not None
            answer = client.post(
                "login",
                data={"csrf": token[1], "login": cabinet["login"], "password": cabinet["password"]},
            )
            assert answer.status_code == 303
            page = client.get("dashboard")
            assert page.status_code == 200
            assert "owner (owner)" in page.text
            assert 'data-id="kkt-0"' in page.text
    finally:
        process.send_signal(signal.SIGINT)
        try:
            assert process.wait(20) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
