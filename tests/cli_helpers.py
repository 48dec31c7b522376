"""Run the CLIs the way a user does: a separate `python -m <package>` process with its own environment.

    from cli_helpers import run_cli, assert_user_error
    result = run_cli("projects", "list", "--json", env=label_studio.env(bucket.name))
    assert result.ok, result.stderr
    rows = result.json()
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Settings the CLIs read from the environment; a test passes exactly the ones it wants.
CONFIG_VARS = ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "GCS_BUCKET_NAME", "GOOGLE_APPLICATION_CREDENTIALS",
               "STORAGE_EMULATOR_HOST")


@dataclass
class CliResult:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def json(self):
        try:
            return json.loads(self.stdout)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"not JSON on stdout of {self.args}: {exc}\n{self.stdout}\n{self.stderr}") from None

    def __str__(self) -> str:
        return f"$ {' '.join(self.args)}\n[exit {self.returncode}]\n{self.stdout}\n{self.stderr}"


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: str | os.PathLike | None = None,
            module: str = "datalabel", timeout: float = 300, input: str = "") -> CliResult:
    """`python -m module args...` with `env` on top of a clean environment (no inherited CLI settings).

    cwd defaults to a fresh empty folder, so no stray ./.env is read. Wide COLUMNS keep tables unwrapped.
    """
    full_env = {k: v for k, v in os.environ.items() if k not in CONFIG_VARS}
    full_env.update({"COLUMNS": "200", "PYTHONUNBUFFERED": "1"})
    full_env.update(env or {})
    cmd = [sys.executable, "-m", module, *map(str, args)]
    with tempfile.TemporaryDirectory(prefix="cli-") as scratch:
        proc = subprocess.run(cmd, env=full_env, cwd=cwd or scratch, capture_output=True, text=True,
                              timeout=timeout, input=input)
    return CliResult(cmd, proc.returncode, proc.stdout, proc.stderr)


def assert_user_error(result: CliResult, contains: str | None = None, code: int | None = None) -> str:
    """A bad-input failure as a user should see it: non-zero exit, one `error:` line on stderr, no traceback.

    Returns the error line.
    """
    assert result.returncode != 0, f"expected a failure\n{result}"
    if code is not None:
        assert result.returncode == code, f"expected exit {code}\n{result}"
    assert "Traceback" not in result.stderr + result.stdout, str(result)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr\n{result}"
    line = lines[0]
    assert line.startswith("error: "), str(result)
    if contains is not None:
        assert contains.lower() in line.lower(), f"expected {contains!r} in the error\n{result}"
    return line


def copy_images(digits_dir: Path, folder: Path, count: int) -> Path:
    """The first `count` sample PNGs copied into a new local folder (what a user uploads)."""
    folder.mkdir()
    for path in sorted((digits_dir / "images").rglob("*.png"))[:count]:
        shutil.copy(path, folder / path.name)
    return folder


def shell_checkout(folder: Path) -> tuple[Path, dict]:
    """A checkout of this tree for `docker-shell.sh` (which works on its own folder: .stack/, secrets/), the
    virtualenv shared; and an environment for it: start only, six demo images, free ports."""
    from datalabel import embedded

    root = Path(__file__).resolve().parent.parent
    folder.mkdir()
    shutil.copy(root / "docker-shell.sh", folder)
    for name in ("scripts", "data-labeling", "data-versioning", "requirements.lock", "requirements.txt",
                 "requirements-server.txt", "requirements-test.txt", ".venv"):
        (folder / name).symlink_to(root / name)
    env = {k: v for k, v in os.environ.items() if k not in ("STORAGE_EMULATOR_HOST", "SECRETS_DIR", "LS_DATABASE")}
    env.update(NO_SHELL="1", DEMO_LIMIT="6", LABEL_STUDIO_PORT=str(embedded.free_port()),
               GCS_EMULATOR_PORT=str(embedded.free_port()), POSTGRES_PORT=str(embedded.free_port()))
    return folder, env
