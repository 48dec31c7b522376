"""HTTP basic auth in front of every endpoint but /health, as Label Studio's ML-backend connection sends it
(`auth_method` BASIC_AUTH with `basic_auth_user` / `basic_auth_pass`; the retrain webhook carries the same header).

A pure ASGI middleware: a request without the right pair is answered 401 before its body is read. The pair is
compared in constant time (`hmac.compare_digest`, user and password both, no early exit).
"""
from __future__ import annotations

import base64
import binascii
import hmac
import json
from dataclasses import dataclass

OPEN_PATHS = ("/health",)  # what Label Studio's health check and a load balancer may call without the pair
REALM = "datalabel ML backend"


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str

    def __repr__(self) -> str:  # never in a log or a traceback
        return f"Credentials(user={self.user!r}, password=***)"

    def header(self) -> str:
        """The Authorization header value a client sends."""
        return "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()

    def matches(self, authorization: str | None) -> bool:
        scheme, _, encoded = (authorization or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return False
        same_user = hmac.compare_digest(user, self.user.encode())
        same_password = hmac.compare_digest(password, self.password.encode())
        return bool(sep) and same_user & same_password


class BasicAuth:
    """ASGI middleware: 401 for any HTTP path but OPEN_PATHS without the credentials."""

    def __init__(self, app, credentials: Credentials):
        if not credentials.user or not credentials.password:
            raise ValueError("the ML backend needs a user and a password for basic auth")
        self.app = app
        self.credentials = credentials

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("path", "").rstrip("/") in OPEN_PATHS:
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        value = headers.get(b"authorization", b"").decode("latin-1")
        if self.credentials.matches(value):
            return await self.app(scope, receive, send)
        body = json.dumps({"error": "authentication required: HTTP basic auth with the backend's user and "
                                    "password (`datalabel al connect` hands them to Label Studio)"}).encode()
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", f'Basic realm="{REALM}"'.encode())]})
        await send({"type": "http.response.body", "body": body})
