"""Every API's routes answer a bug in their own error shape with 500, count it, and log it by
its type and stack, never its message (it may quote a receipt)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import Response

from tests.http.conftest import serving


def _request(path: str) -> Request:
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [],
        "scheme": "http",
        "server": ("127.0.0.1", 80),
    }
    return Request(scope)


async def _boom(request: Request) -> Response:
    raise RuntimeError(" ".join(("secret", "receipt", "text")))  # not quoted in the stack


async def test_a_bug_in_any_route_is_a_500_in_its_api_s_shape(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(tmp_path) as served:
        door = served.door
        shapes: dict[str, tuple[Any, str]] = {
            "atol": (door.atol, "/possystem/v5/main/sell"),
            "komtet": (door.komtet, "/api/shop/v2/queues/main/task"),
            "payments": (door.payments, "/notifications/hook/tbank"),
        }
        answers = {}
        with caplog.at_level(logging.ERROR):
            for name, (api, path) in shapes.items():
                answer = await api._guarded(_boom)(_request(path))
                assert answer.status_code == 500, name
                answers[name] = answer.body.decode()
        assert door.internal_errors == 3
        assert '"code":50' in answers["atol"] and '"status":"fail"' in answers["atol"]
        assert '"code":"internal"' in answers["komtet"]
        assert answers["payments"].startswith('{"error":')
        assert "RuntimeError" in caplog.text and "secret receipt text" not in caplog.text
