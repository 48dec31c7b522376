"""Local server processes: free loopback ports, a start that waits until the server answers, a stop that takes
the whole process group. The embedded stack (Label Studio, the GCS emulator, PostgreSQL) and the test fixtures
start their servers through here."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from .errors import ServerError
from .files import pid_alive


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        # servers bind with SO_REUSEADDR too, so a port in TIME_WAIT after a stop counts as free
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status == 200
    except Exception:
        return False


@dataclass
class Server:
    name: str
    url: str
    port: int
    pid: int
    log: str
    health: str
    stop_signal: int = signal.SIGTERM
    front: "Server | None" = None  # a server in front of this one (nginx before Label Studio's app), stopped first

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server's whole process group (Label Studio spawns workers), the one in front of it first."""
        if self.front is not None:
            self.front.stop(timeout)
        stop_pid(self.pid, timeout, self.stop_signal)


def stop_pid(pid: int, timeout: float = 15.0, first: int = signal.SIGTERM) -> None:
    for sig in (first, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            os.kill(pid, sig)
        if wait_until(lambda: _exited(pid), timeout, 0.1):
            return


def _exited(pid: int) -> bool:
    try:
        return os.waitpid(pid, os.WNOHANG)[0] != 0
    except ChildProcessError:  # not our child: poll instead
        return not pid_alive(pid)


def wait_until(done: Callable[[], bool], timeout: float, every: float) -> bool:
    """Whether `done()` said True within `timeout` seconds, asked every `every` seconds; an error it raises
    ends the wait."""
    return Retrying(retry=retry_if_result(lambda ok: not ok), stop=stop_after_delay(timeout), wait=wait_fixed(every),
                    retry_error_callback=lambda state: False)(done)


def spawn(name: str, cmd: list[str], env: dict, log: Path, health: str, port: int, timeout: float,
           cwd: Path | None = None, ready=None) -> Server:
    """Start `cmd` in its own session and wait until `ready()` (default: `health` answers HTTP 200)."""
    ready = ready or (lambda: http_ok(health))
    log.parent.mkdir(parents=True, exist_ok=True)
    # the servers' files (Label Studio's database holds the API token, logs may hold request data) are the
    # owner's only: the log is opened 0600 and the server runs with umask 077
    with os.fdopen(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=cwd, umask=0o077)
    server = Server(name, f"http://127.0.0.1:{port}", port, proc.pid, str(log), health)

    def up() -> bool:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
            raise ServerError(f"{name} exited during start (code {proc.returncode}): {tail[0][:200]}; log: {log}")
        return ready()

    if wait_until(up, timeout, 0.3):
        return server
    server.stop()
    raise ServerError(f"{name} did not answer {health} within {timeout:.0f}s; log: {log}")


def venv_bin(name: str) -> str:
    """An executable installed beside the running Python (the project's virtualenv)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name
