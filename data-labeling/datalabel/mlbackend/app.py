"""The ML backend's HTTP protocol as a Starlette app (what Label Studio 1.23 calls; label-studio-ml-backend's routes):
  GET  /health     {"status": "UP", ...}                           the only route open without basic auth
  POST /setup      {"project": "ID.ts", "schema"}               -> {"model_version"}
  POST /predict    {"tasks": [...], "project", "label_config"}  -> {"results": [one per task], "model_version"}
  POST /webhook    {"action", "project": {...}}                 -> 201 (a retrain queued or not)
  POST /train      the legacy training call, same effect as START_TRAINING
  GET  /versions   {"versions": [...]}
Layers, outermost first: basic auth (auth.py; 401 before a body is read), then a body cap (BODY_LIMIT; 413 at the
Content-Length or once the read passes it, 408 when a body trickles in slower than BODY_SECONDS), then the routes.
Errors answer with an incident id, never their details (which stay in this process's log); request bodies, which
carry task data, are never logged.
"""
from __future__ import annotations

import asyncio
import json
import logging
import uuid

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..errors import LabError
from .auth import BasicAuth, Credentials
from .backend import Backend, project_id_of

log = logging.getLogger("datalabel.mlbackend")

BODY_LIMIT = 16 << 20  # a /predict batch of thousands of tasks (with their annotations and predictions) fits
BODY_SECONDS = 30.0  # a whole request body


class BodyLimit:
    """ASGI middleware: refuse a request body past `limit` bytes, or one that does not arrive within `seconds`."""

    def __init__(self, app, limit: int = BODY_LIMIT, seconds: float | None = None):
        self.app, self.limit, self.seconds = app, limit, BODY_SECONDS if seconds is None else seconds

    @staticmethod
    async def _answer(send, status: int, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        try:
            declared = int(headers.get(b"content-length", b"0"))
        except ValueError:
            return await self._answer(send, 400, "bad Content-Length")
        if declared > self.limit:
            return await self._answer(send, 413, f"a body of {declared} bytes (at most {self.limit})")
        chunks, size = [], 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                return await self._answer(send, 408, f"the request body did not arrive within {self.seconds:g} s")
            if message["type"] != "http.request":
                return  # the client left
            size += len(message.get("body", b""))
            if size > self.limit:
                return await self._answer(send, 413, f"a body of more than {self.limit} bytes")
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


async def _payload(request: Request) -> dict:
    raw = await request.body()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"bad JSON: {exc.msg if hasattr(exc, 'msg') else 'not UTF-8'}") from None
    if not isinstance(value, dict):
        raise ValueError("bad JSON: expected an object")
    return value


def make_app(backend: Backend, credentials: Credentials, body_limit: int = BODY_LIMIT):
    """The ASGI app: the routes behind the body cap behind basic auth."""

    def answer(status: int, body: dict) -> JSONResponse:
        return JSONResponse(body, status_code=status)

    async def call(request: Request, fn, status: int = 200):
        try:
            payload = await _payload(request)
        except ValueError as exc:
            return answer(400, {"error": str(exc)})
        try:
            return answer(status, await run_in_threadpool(fn, payload))
        except LabError as exc:
            return answer(400, {"error": str(exc)})
        except Exception:  # answer, don't drop the connection; the details stay in this process's log
            incident = uuid.uuid4().hex[:8]
            log.exception("%s failed (incident %s)", request.url.path, incident)
            return answer(500, {"error": f"internal error (incident {incident}); see the ML backend's log"})

    async def health(request: Request):
        return answer(200, backend.health())

    async def versions(request: Request):
        return answer(200, backend.versions(project_id_of(request.query_params.get("project"))))

    async def setup(request: Request):
        return await call(request, backend.setup)

    async def predict(request: Request):
        return await call(request, backend.predict)

    async def webhook(request: Request):
        return await call(request, backend.webhook, 201)

    def train_now(payload: dict) -> dict:
        project = project_id_of(payload.get("project"))
        if project is not None:
            backend.request_training(project)
        return {"queued": project is not None}

    async def train(request: Request):
        return await call(request, train_now, 201)

    async def validate(request: Request):
        return answer(200, {"status": "ok"})

    async def metrics(request: Request):
        return answer(200, {})

    async def not_found(request: Request, exc):
        return answer(404 if getattr(exc, "status_code", 404) == 404 else exc.status_code,
                      {"error": f"no such endpoint: {request.method} {request.url.path}"})

    routes = [Route("/", health), Route("/health", health), Route("/versions", versions),
              Route("/metrics", metrics), Route("/setup", setup, methods=["POST"]),
              Route("/predict", predict, methods=["POST"]), Route("/webhook", webhook, methods=["POST"]),
              Route("/train", train, methods=["POST"]), Route("/validate", validate, methods=["POST"])]
    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})
    app.router.redirect_slashes = False
    return BasicAuth(BodyLimit(app, body_limit), credentials)
