"""A Docker engine for the tests, and the Compose stack brought up by ./docker-shell.sh in isolation.

Where no engine answers but one can be started (root, `dockerd` installed), it is started for the session and
stopped at the end. The stack gets its own Compose project, network, ports, secrets folder and settings file,
so it never touches the repository's secrets/ or ./.env, nor a stack the user has running.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def engine_answers() -> bool:
    return bool(shutil.which("docker")) and subprocess.run(["docker", "info"], capture_output=True).returncode == 0


class DockerEngine:
    """The engine the tests use: the running one, or one started here (`reason` says why there is none)."""

    def __init__(self, log_dir: Path):
        self.proc: subprocess.Popen | None = None
        self.reason = ""
        if engine_answers():
            return
        dockerd = shutil.which("dockerd")
        if not shutil.which("docker") or dockerd is None:
            self.reason = "no Docker engine answers and dockerd is not installed (run-tests.sh installs it as root)"
            return
        if os.geteuid() != 0:
            self.reason = "no Docker engine answers and starting dockerd needs root"
            return
        log = open(log_dir / "dockerd.log", "wb")
        self.proc = subprocess.Popen([dockerd], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if engine_answers():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(1)
        self.stop()
        self.reason = f"dockerd did not start; see {log_dir / 'dockerd.log'}"

    @property
    def ok(self) -> bool:
        return not self.reason

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None


def compose_command() -> list[str]:
    """`docker compose` (v2) where installed, else Debian's `docker-compose` (v1); docker-shell.sh picks the same."""
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"]


@dataclass
class Stack:
    """One isolated stack: everything docker-shell.sh reads comes from `env`."""

    folder: Path
    ls_port: int
    gcs_port: int
    name: str = field(default_factory=lambda: f"dltest{uuid.uuid4().hex[:8]}")
    start_output: str = ""
    start_seconds: float = 0.0
    repo_env_existed: bool = False

    @classmethod
    def start(cls, folder: Path, env: dict[str, str] | None = None) -> "Stack":
        """`./docker-shell.sh --docker --emulator` with this stack's settings (and `env`); its state saved in
        `folder`."""
        from datalabel.embedded import free_port

        folder.mkdir(parents=True, exist_ok=True)
        stack = cls(folder, free_port(), free_port())
        stack.repo_env_existed = (ROOT / ".env").exists()
        started = time.monotonic()
        out = stack.shell("--docker", "--emulator", env=env)
        stack.start_output = out.stdout + out.stderr
        stack.start_seconds = time.monotonic() - started
        (folder / "stack.json").write_text(json.dumps({"ls_port": stack.ls_port, "gcs_port": stack.gcs_port,
                                                       "name": stack.name, "start_output": stack.start_output,
                                                       "start_seconds": stack.start_seconds,
                                                       "repo_env_existed": stack.repo_env_existed}))
        if out.returncode != 0:
            logs = stack.compose("logs", "--tail", "40").stdout
            stack.down()
            raise AssertionError(f"./docker-shell.sh failed (exit {out.returncode}):\n{stack.start_output}\n{logs}")
        return stack

    @classmethod
    def reuse(cls, folder: Path) -> "Stack | None":
        """The stack a previous run left in `folder`, if its Label Studio still answers."""
        state = folder / "stack.json"
        if not state.exists():
            return None
        stack = cls(folder, **json.loads(state.read_text()))
        try:
            urllib.request.urlopen(stack.url + "/health", timeout=5).close()
        except OSError:
            return None
        return stack

    @property
    def secrets(self) -> Path:
        return self.folder / "secrets"

    @property
    def settings_file(self) -> Path:
        return self.folder / "compose.env"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SECRETS_DIR": str(self.secrets), "DATALABEL_COMPOSE_ENV": str(self.settings_file),
                "COMPOSE_PROJECT_NAME": self.name, "DATALABEL_NETWORK": f"{self.name}-net",
                "LABEL_STUDIO_PORT": str(self.ls_port), "GCS_EMULATOR_PORT": str(self.gcs_port), "NO_SHELL": "1"}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ls_port}"

    @property
    def emulator_url(self) -> str:
        return f"http://127.0.0.1:{self.gcs_port}"

    def secret(self, name: str) -> str:
        return (self.secrets / name).read_text().strip()

    def shell(self, *args: str, timeout: float = 3600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["./docker-shell.sh", *args], cwd=ROOT, env={**self.env, **(env or {})},
                              capture_output=True, text=True, timeout=timeout)

    def compose(self, *args: str, timeout: float = 600, check: bool = False,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Compose with this stack's settings; `env` overrides them (the shell's variables win over the file's)."""
        cmd = [*compose_command(), "--env-file", str(self.settings_file), *args]
        out = subprocess.run(cmd, cwd=ROOT, env={**self.env, **(env or {})}, capture_output=True, text=True,
                             timeout=timeout)
        if check and out.returncode != 0:
            raise AssertionError(f"$ {' '.join(cmd)}\n[exit {out.returncode}]\n{out.stdout}\n{out.stderr}")
        return out

    def cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """A command in a fresh labeling-CLI container, as `docker compose run --rm labeling-cli ...`."""
        return self.compose("run", "--rm", "-T", "labeling-cli", *args, timeout=timeout)

    def api(self, path: str, data: dict | None = None) -> tuple[int, str, bytes]:
        """Label Studio's API from the host (published port), with the generated token."""
        req = urllib.request.Request(self.url + path, data=json.dumps(data).encode() if data is not None else None,
                                     headers={"Authorization": f"Token {self.secret('ls_api_token')}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.headers.get("content-type", ""), resp.read()

    def download(self, bucket: str, name: str) -> bytes:
        """An object's bytes straight from the emulator container (published on loopback)."""
        from urllib.parse import quote

        url = f"{self.emulator_url}/download/storage/v1/b/{bucket}/o/{quote(name, safe='')}?alt=media"
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.read()

    def down(self) -> None:
        self.compose("--profile", "cli", "--profile", "postgres", "down", "-v", "--remove-orphans", timeout=300)
        subprocess.run(["docker", "network", "rm", f"{self.name}-net"], capture_output=True)
