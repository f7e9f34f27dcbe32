"""schemathesis hooks for the contract test (``SCHEMATHESIS_HOOKS=tests.http.schemathesis_hooks``):
KOMTET requests are signed as KOMTET's SDKs sign them, so that generated requests reach the
checks and the engine rather than stop at the signature.

The signature is made over the request exactly as it leaves (requests' ``auth`` sees the
prepared method, URL and body), keyed by ``KASSA_KOMTET_SECRET``.
"""

from __future__ import annotations

import os
from typing import Any

import requests
import schemathesis

from engine.http.credentials import komtet_signature

#: The X-HMAC-Signature the test's config gives every KOMTET request: the hook signs those.
PLACEHOLDER = "made-by-the-hook"


class KomtetSigner(requests.auth.AuthBase):
    """Puts the X-HMAC-Signature over method + full URL + body of the prepared request in place
    of the placeholder. A negative case that removed or changed the header stays unsigned, and
    so must be refused."""

    def __init__(self, secret: str) -> None:
        self.secret = secret

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if request.headers.get("X-HMAC-Signature") != PLACEHOLDER:
            return request
        body = request.body
        data = body.encode() if isinstance(body, str) else body if isinstance(body, bytes) else b""
        signed = komtet_signature(self.secret, request.method or "", request.url or "", data)
        request.headers["X-HMAC-Signature"] = signed
        return request


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    secret = os.environ.get("KASSA_KOMTET_SECRET")
    if secret and case.path.startswith("/api/shop/v2/"):
        kwargs["auth"] = KomtetSigner(secret)
