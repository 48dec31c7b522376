"""The Docker path as a newcomer types it: a fresh `git clone` of this checkout, an environment holding nothing but
what a person has (PATH, a home, a terminal) and two free ports, `./docker-shell.sh` through a pseudo-terminal.

No SECRETS_DIR, no Compose settings file, no project name: the defaults every user gets. Then plain Compose in the
same folder, the versioning shell kept open while a label is added (the snapshot taken there includes it; the
mount shows it within 90 s), `./docker-shell.sh down`, and a second clone on the same machine.
Skipped only where no Docker engine answers and none can be started (the reason says which).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import pexpect
import pytest

from datalabel import embedded
from docker_helpers import ROOT, compose_command

PROMPT = r"[#$] $"  # bash's prompt in a container, as root or as your uid
LABELS = "labels/"  # the demo project's target storage


class Clone:
    """A fresh clone and the environment a person has in it."""

    def __init__(self, folder: Path, home: Path):
        out = subprocess.run(["git", "clone", "-q", str(ROOT), str(folder)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        self.folder = folder
        self.ls_port, self.gcs_port = embedded.free_port(), embedded.free_port()
        home.mkdir(parents=True, exist_ok=True)
        self.env = {"PATH": os.environ["PATH"], "HOME": str(home), "TERM": "xterm", "LANG": "C.UTF-8",
                    "LABEL_STUDIO_PORT": str(self.ls_port), "GCS_EMULATOR_PORT": str(self.gcs_port)}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ls_port}"

    def secret(self, name: str) -> str:
        return (self.folder / "secrets" / name).read_text().strip()

    def project(self) -> str:
        lines = (self.folder / ".env").read_text().splitlines()
        return [line.split("=", 1)[1] for line in lines if line.startswith("COMPOSE_PROJECT_NAME=")][-1]

    def run(self, *cmd: str, timeout: float = 1800, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(list(cmd), cwd=self.folder, env={**self.env, **env}, capture_output=True, text=True,
                              timeout=timeout)

    def compose(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        return self.run(*compose_command(), *args, timeout=timeout)

    def spawn(self, *args: str) -> pexpect.spawn:
        child = pexpect.spawn("./docker-shell.sh", list(args), cwd=str(self.folder), env=self.env,
                              encoding="utf-8", timeout=1800, dimensions=(50, 200))
        child.logfile_read = open(self.folder.parent / f"{self.folder.name}-pty.log", "a")
        return child

    def api(self, path: str, data: dict | None = None):
        req = urllib.request.Request(self.url + path, data=json.dumps(data).encode() if data is not None else None,
                                     headers={"Authorization": f"Token {self.secret('ls_api_token')}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read() or b"null")

    def running(self) -> list[str]:
        out = subprocess.run(["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={self.project()}"],
                             capture_output=True, text=True)
        return out.stdout.split()

    def cleanup(self) -> None:
        if (self.folder / ".env").exists():
            self.run("./docker-shell.sh", "down", "--volumes", timeout=600)


def _ok(result: subprocess.CompletedProcess, what: str) -> str:
    assert result.returncode == 0, f"{what} failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def clone(docker_engine, tmp_path_factory):
    c = Clone(tmp_path_factory.mktemp("newcomer") / "lab", tmp_path_factory.mktemp("home"))
    yield c
    c.cleanup()


def _label(clone: Clone, project: int, task: dict, label: str) -> None:
    """An annotation through the API (as the labeling UI saves it), then a target-storage sync from the CLI
    container, as a user would run it."""
    clone.api(f"/api/tasks/{task['id']}/annotations/", {"result": [{
        "type": "choices", "from_name": "choice", "to_name": "image", "value": {"choices": [label]}}]})
    _ok(clone.compose("run", "--rm", "-T", "labeling-cli", "datalabel", "storage", "sync", str(project),
                      "--direction", "target"), "storage sync")


def test_fresh_clone_starts_and_opens_the_cli_shell(clone):
    shell = clone.spawn()
    shell.expect(re.escape(f"Label Studio: http://127.0.0.1:{clone.ls_port}"))
    shell.expect(PROMPT, timeout=300)
    shell.sendline("datalabel status")
    shell.expect(re.escape(clone.secret("ls_admin_user")), timeout=120)
    shell.expect(PROMPT)
    shell.sendline("exit")
    shell.expect(pexpect.EOF, timeout=120)
    shell.close()
    assert shell.exitstatus == 0, shell.before
    # the default: credentials in the clone's own secrets/ folder (0600), its choices in ./.env
    for name in ("ls_admin_password", "ls_api_token", "label-studio.env", "cli.env"):
        assert (clone.folder / "secrets" / name).stat().st_mode & 0o777 == 0o600
    settings = (clone.folder / ".env").read_text()
    assert "SECRETS_DIR=./secrets" in settings
    assert clone.project().startswith("datalabel-")


def test_versioning_shell_snapshot_includes_a_label_added_while_it_is_open(clone):
    projects = clone.api("/api/projects/?page_size=100")["results"]
    project = [p["id"] for p in projects if p["title"] == embedded.DEMO_TITLE][0]
    tasks = sorted(clone.api(f"/api/tasks/?project={project}&page_size=5")["tasks"], key=lambda t: t["id"])
    for task in tasks[:3]:
        _label(clone, project, task, "1")

    shell = clone.spawn("versioning")
    shell.expect(re.escape(f"gs://{embedded.DEMO_BUCKET} mounted at /mnt/gcs_bucket (read-only)"))
    shell.expect(PROMPT, timeout=120)
    for command, answer in (("dataversion init", r"dataset repository"),
                            (f"dataversion snapshot --project {project}", r"3 labeled item\(s\)"),
                            ("dataversion commit -m first", r"dataset_v1: 3 item\(s\)"),
                            (f"ls /mnt/gcs_bucket/{LABELS} | wc -l", r"(?<!\d)3\r\n")):
        shell.sendline(command)
        shell.expect(answer, timeout=300)
        shell.expect(PROMPT, timeout=300)

    # a fourth label while the shell stays open: the mount still shows its listing from before
    _label(clone, project, tasks[3], "2")
    labeled_at = time.monotonic()
    shell.sendline(f"dataversion snapshot --project {project}")
    shell.expect(r"4 labeled item\(s\)", timeout=300)
    shell.expect(PROMPT)
    shell.sendline("dataversion commit -m second")
    shell.expect(r"dataset_v2: 4 item\(s\)", timeout=300)
    shell.expect(PROMPT)
    # and the mount itself shows it once its listing refreshes (gcsfuse's metadata TTL: 60 s by default)
    # (the marker is computed, so the echoed command line cannot match it)
    shell.sendline(f"until [ $(ls /mnt/gcs_bucket/{LABELS} | wc -l) -ge 4 ]; do sleep 1; done; echo SEEN-$((6*7))")
    shell.expect("SEEN-42", timeout=max(1, 90 - (time.monotonic() - labeled_at)))
    shell.expect(PROMPT)
    shell.sendline("exit")
    shell.expect(pexpect.EOF, timeout=120)
    shell.close()
    assert shell.exitstatus == 0


def test_plain_compose_in_the_clone(clone):
    _ok(clone.compose("up", "-d"), "compose up -d")
    info = json.loads(_ok(clone.compose("run", "--rm", "-T", "labeling-cli", "datalabel", "status", "--json"),
                          "compose run labeling-cli datalabel status"))
    assert info["user"] == clone.secret("ls_admin_user")
    versions = _ok(clone.compose("run", "--rm", "-T", "versioning", "dataversion", "versions", "--json"),
                   "compose run versioning dataversion versions")
    assert [v["tag"] for v in json.loads(versions)] == ["dataset_v1", "dataset_v2"]


def test_down_stops_the_stack(clone):
    assert clone.running()
    _ok(clone.run("./docker-shell.sh", "down", timeout=600), "./docker-shell.sh down")
    assert clone.running() == []


def test_a_second_clone_on_the_same_machine_gets_its_own_stack(clone, tmp_path_factory):
    """Clone A stopped, clone B started with its new secrets/: B's own Label Studio and admin, not A's volume."""
    other = Clone(tmp_path_factory.mktemp("newcomer-b") / "lab", tmp_path_factory.mktemp("home-b"))
    try:
        # NO_SHELL and DEMO_LIMIT are the README's own settings (start only; a smaller demo)
        _ok(other.run("./docker-shell.sh", NO_SHELL="1", DEMO_LIMIT="20"), "clone B: ./docker-shell.sh")
        assert other.project() != clone.project()
        info = json.loads(_ok(other.compose("run", "--rm", "-T", "labeling-cli", "datalabel", "status", "--json"),
                              "clone B: datalabel status"))
        assert info["user"] == other.secret("ls_admin_user")
        # B's Label Studio took B's token (the status above used it): generated anew, not A's
        assert other.secret("ls_api_token") != clone.secret("ls_api_token")
    finally:
        other.cleanup()
    assert other.running() == []

    # A's secrets/ made anew while its Label Studio volume keeps the old admin: one line says what to do
    for name in ("ls_admin_user", "ls_admin_password", "ls_api_token", "label-studio.env", "cli.env"):
        (clone.folder / "secrets" / name).unlink()
    out = clone.run("./docker-shell.sh", NO_SHELL="1")
    assert out.returncode == 2, out.stdout + out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "./docker-shell.sh down --volumes" in errors[0], out.stderr
    assert "Traceback" not in out.stderr
    # and that cleanup works: a start afterwards has the new admin
    _ok(clone.run("./docker-shell.sh", "down", "--volumes", timeout=600), "down --volumes")
    _ok(clone.run("./docker-shell.sh", NO_SHELL="1", DEMO_LIMIT="20"), "start after down --volumes")
    info = json.loads(_ok(clone.compose("run", "--rm", "-T", "labeling-cli", "datalabel", "status", "--json"),
                          "datalabel status after down --volumes"))
    assert info["user"] == clone.secret("ls_admin_user")
