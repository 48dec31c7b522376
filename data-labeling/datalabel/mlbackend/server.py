"""Serving the app with uvicorn, with the limits a server exposed to its network needs: a connection that has not
sent a whole request head within HEAD_SECONDS is closed (uvicorn itself waits forever for the first one), idle
keep-alive connections after KEEPALIVE_SECONDS, at most CONCURRENCY connections at once (more get 503), bodies
capped and timed by the app. No thread per connection: a stalled client holds a socket, not a thread.

Binds 127.0.0.1 unless told otherwise; wherever it listens, every route but /health needs the basic-auth pair.
"""
from __future__ import annotations

import logging
import socket
import threading

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..errors import ServerError
from ..processes import wait_until
from .app import make_app
from .auth import Credentials
from .backend import Backend

log = logging.getLogger("datalabel.mlbackend")

HEAD_SECONDS = 10.0
KEEPALIVE_SECONDS = 5
CONCURRENCY = 64


class GuardedH11(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, closing a connection whose next request head does not arrive in time."""

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def _arm(self) -> None:
        cycle = self.cycle
        self.loop.call_later(HEAD_SECONDS, self._head_deadline, cycle)

    def _head_deadline(self, cycle) -> None:
        # no new request began since the timer was set: the client stalls before or inside a request head
        if self.cycle is cycle and not self.transport.is_closing():
            self.transport.close()


def _socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServerError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _config(backend: Backend, credentials: Credentials) -> uvicorn.Config:
    return uvicorn.Config(make_app(backend, credentials), http=GuardedH11, ws="none", lifespan="off",
                          timeout_keep_alive=KEEPALIVE_SECONDS, limit_concurrency=CONCURRENCY,
                          log_config=None, access_log=False, server_header=False)


class RunningServer:
    """A backend served in a background thread (tests, notebooks): `url`, `credentials`, `shutdown()`."""

    def __init__(self, server: uvicorn.Server, thread: threading.Thread, url: str, credentials: Credentials):
        self._server, self._thread, self.url, self.credentials = server, thread, url, credentials

    def shutdown(self) -> None:
        self._server.should_exit = True
        self._thread.join(15)

    def server_close(self) -> None:  # the socket closes with the server
        pass


def start_in_thread(backend: Backend, credentials: Credentials, host: str = "127.0.0.1",
                    port: int = 0) -> tuple[RunningServer, str]:
    """Serve in a background thread; returns (server, url) once it answers. Stop with server.shutdown()."""
    sock = _socket(host, port)
    server = uvicorn.Server(_config(backend, credentials))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="ml-backend", daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), 30, 0.01)
    if not server.started:
        raise ServerError("the ML backend did not start (see its log)")
    bound_host, bound_port = sock.getsockname()[:2]
    url = f"http://{'[' + bound_host + ']' if ':' in bound_host else bound_host}:{bound_port}"
    return RunningServer(server, thread, url, credentials), url


def serve(backend: Backend, credentials: Credentials, host: str = "127.0.0.1", port: int = 9090) -> None:
    """Warm up, then listen until interrupted (Ctrl-C / SIGTERM)."""
    sock = _socket(host, port)  # first: a port in use is said before the warm-up
    try:
        backend.warm_up()
        log.info("ML backend on http://%s:%s (models in %s)", host, port, backend.models_dir)
        uvicorn.Server(_config(backend, credentials)).run(sockets=[sock])
    finally:
        sock.close()
        backend.stop()
