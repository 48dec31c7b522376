"""Every library a package's code imports is declared by that package, and the pins hold what was tested.

Read from the source (every import, at the top or inside a function), mapped to the distribution that provides
it in this venv, and looked up in the package's pyproject.toml (dependencies, or an extra). A library another
package happens to pull in does not count: it may go away with that package's next release. The clean install
of each package alone (tests/test_packaging.py) then proves the declared set is enough at import time.
"""
from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"datalabel": ROOT / "data-labeling", "dataversion": ROOT / "data-versioning"}
# libraries whose exact version the code was written and tested against (private modules, adapters)
EXACT = {"datalabel": ["label-studio-sdk", "gcsfs", "gcp-storage-emulator", "google-cloud-storage", "google-cloud-core",
                       "google-api-core"],
         "dataversion": ["gcsfs", "google-cloud-storage"]}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(spec: str) -> str:
    return norm(re.split(r"[\s\[<>=!~;]", spec.strip(), maxsplit=1)[0])


def declared(folder: Path) -> dict[str, str]:
    """name -> requirement, over the dependencies and every extra."""
    project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
    specs = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        specs += extra
    return {requirement_name(s): s for s in specs}


def imported_top_levels(package: str, folder: Path) -> dict[str, set[str]]:
    """top-level module -> the files that import it (absolute imports only)."""
    found: dict[str, set[str]] = {}
    for path in sorted((folder / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_imported_library_is_declared_by_the_package_that_imports_it():
    providers = md.packages_distributions()
    undeclared = []
    for package, folder in PACKAGES.items():
        deps = declared(folder)
        for module, files in sorted(imported_top_levels(package, folder).items()):
            if module in sys.stdlib_module_names or module == package or module == "__future__":
                continue
            dists = {norm(d) for d in providers.get(module, [])}
            assert dists, f"{module} (imported in {sorted(files)}) is not installed in this venv"
            if not dists & set(deps):
                undeclared.append(f"{package}: {module} ({', '.join(sorted(dists))}) in {sorted(files)[0]}")
    assert undeclared == [], "\n".join(undeclared)


def test_the_libraries_used_through_their_internals_are_pinned_to_the_locked_version():
    lock = {requirement_name(line): line.split("==", 1)[1].strip()
            for line in (ROOT / "requirements.lock").read_text().splitlines() if "==" in line}
    for package, names in EXACT.items():
        deps = declared(PACKAGES[package])
        for name in names:
            spec = deps.get(name)
            assert spec is not None, f"{package} does not declare {name}"
            assert re.search(r"==\s*" + re.escape(lock[name]) + r"$", spec), \
                f"{package} pins {spec!r}; the lock (what the tests ran with) has {name}=={lock[name]}"


def test_the_extras_hold_video_plots_and_team_mode():
    project = tomllib.loads((PACKAGES["datalabel"] / "pyproject.toml").read_text())["project"]
    extras = {k: {requirement_name(s) for s in v} for k, v in project["optional-dependencies"].items()}
    assert extras["video"] == {"av"} and extras["plots"] == {"matplotlib"} and "psycopg" in extras["team"]
    core = {requirement_name(s) for s in project["dependencies"]}
    assert not core & {"av", "matplotlib", "psycopg", "label-studio", "pytest", "gunicorn"}


def test_the_lock_pins_everything_the_requirement_files_name_and_the_venv_holds_it():
    lock = {requirement_name(line): line.split("==", 1)[1].strip()
            for line in (ROOT / "requirements.lock").read_text().splitlines() if "==" in line}
    for name in ("requirements-server.txt", "requirements-test.txt"):
        for line in (ROOT / name).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            dist, version = requirement_name(line), line.split("==", 1)[1].strip()
            assert lock.get(dist) == version, f"{name}: {line} but the lock has {lock.get(dist)}"
            assert md.version(dist) == version, f"{line}: the venv has {md.version(dist)}"
