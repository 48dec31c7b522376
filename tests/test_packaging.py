"""Each package installs alone from its own pyproject.toml into a clean virtualenv and works there: every module
imports and every command's --help runs. This is what the Docker images install, so a library the code imports
but the package does not declare fails here, not in a user's container.
"""
from __future__ import annotations

import subprocess
import venv
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent

# Run inside the clean venv: import every module, then --help on every command and group (in-process, click's runner).
CHECK = r"""
import importlib, pkgutil, sys
from typer.main import get_command
from typer.testing import CliRunner

package, cli_module = sys.argv[1], sys.argv[2]
pkg = importlib.import_module(package)
# __main__ runs the CLI on import: its content is the console script checked below
modules = [m.name for m in pkgutil.walk_packages(pkg.__path__, package + ".") if not m.name.endswith("__main__")]
for name in modules:
    importlib.import_module(name)

def walk(command, path):
    yield path
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from walk(sub, path + [name])

app = importlib.import_module(cli_module).app
runner = CliRunner()
paths = list(walk(get_command(app), []))
for path in paths:
    result = runner.invoke(app, path + ["--help"])
    if result.exit_code != 0 or "Usage" not in result.output:
        sys.exit(f"--help failed for {' '.join(path) or package}: {result.output}{result.exception!r}")
print(f"{len(modules)} modules, {len(paths)} commands")
"""


def _pip_install(python: Path, *packages: str) -> None:
    out = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-c", str(ROOT / "requirements.lock"),
                          *packages], capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]


def _check(python: Path, package: str, cli: str, cwd: Path) -> str:
    out = subprocess.run([str(python), "-c", CHECK, package, cli], capture_output=True, text=True, timeout=600,
                         cwd=cwd)
    assert out.returncode == 0, out.stdout + out.stderr
    assert " modules, " in out.stdout
    script = subprocess.run([str(python.parent / package), "--help"], capture_output=True, text=True, timeout=120)
    assert script.returncode == 0 and "Usage" in script.stdout, script.stderr
    return out.stdout.strip()


def test_each_package_installs_from_its_own_pyproject_and_every_module_and_help_works(tmp_path):
    venv.EnvBuilder(with_pip=True).create(tmp_path / "venv")
    python = tmp_path / "venv" / "bin" / "python"
    # the labeling package alone: what the labeling-CLI image installs
    _pip_install(python, str(ROOT / "data-labeling"))
    # nothing from the test environment leaks in: only what the package declared is installed
    assert subprocess.run([str(python), "-c", "import pytest"], capture_output=True).returncode != 0
    assert subprocess.run([str(python), "-c", "import dvc"], capture_output=True).returncode != 0
    print("datalabel:", _check(python, "datalabel", "datalabel.cli", tmp_path))
    # then the versioning package (it declares datalabel): what the versioning image adds
    _pip_install(python, str(ROOT / "data-versioning"))
    print("dataversion:", _check(python, "dataversion", "dataversion.cli", tmp_path))
    # what the modules import inside functions too, but for the extras' libraries (not installed here)
    out = subprocess.run([str(python), str(ROOT / "data-labeling" / "check_imports.py"), "datalabel", "dataversion",
                          "--not-here", *EXTRAS_ONLY], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stderr


# the libraries only the extras bring (datalabel[video], [plots], [team]): absent from a plain install
EXTRAS_ONLY = ("av", "matplotlib", "psycopg", "django")
