"""TLS from the config: the door speaks HTTPS with the certificate and key it names."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.http.conftest import JSON, PASSWORD, serving


def self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a certificate")
async def test_the_door_serves_https_with_the_configured_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    async with serving(tmp_path, tls_cert=cert, tls_key=key) as served:
        assert served.url.startswith("https://127.0.0.1:")
        trusted = ssl.create_default_context(cafile=str(cert))
        async with httpx.AsyncClient(base_url=served.url, verify=trusted) as client:
            answer = await client.post(
                "/possystem/v5/getToken",
                json={"login": "shop-atol", "pass": PASSWORD},
                headers=JSON,
            )
        assert answer.status_code == 200 and answer.json()["token"]
        with pytest.raises(httpx.HTTPError):  # plain HTTP is not answered there
            await served.client.get(served.url.replace("https", "http") + "/openapi.json")
