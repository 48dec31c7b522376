"""Imports every module of the packages named on the command line, and every library those modules import
inside a function (lazily); exit 1 naming those that fail.

The images run it after removing what their commands do not import (see the Dockerfiles): a module that still
needed a removed library fails the build, not a user's command. It also compiles the bytecode of exactly what
the commands import (the images install without bytecode and run it with bytecode writing on).

    python3 check_imports.py datalabel dataversion [--not-here psycopg ...]

--not-here names libraries a command imports only where the image is not used (e.g. psycopg: the host's team
mode); they are skipped.
"""
import ast
import importlib
import pkgutil
import sys
from pathlib import Path

args = sys.argv[1:]
not_here = set(args[args.index("--not-here") + 1:]) if "--not-here" in args else set()
packages = args[:args.index("--not-here")] if "--not-here" in args else args


def lazy_imports(path):
    """Absolute imports made inside functions of one source file."""
    found = set()
    for func in ast.walk(ast.parse(Path(path).read_text(encoding="utf-8"))):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(func):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module)
    return found


failed, lazy = [], set()
for name in packages:
    package = importlib.import_module(name)
    for module in pkgutil.walk_packages(package.__path__, f"{name}."):
        if module.name.endswith("__main__"):  # runs the CLI
            continue
        try:
            imported = importlib.import_module(module.name)
        except Exception as exc:  # noqa: BLE001 - any failure to import is what this reports
            failed.append(f"{module.name}: {type(exc).__name__}: {exc}")
            continue
        lazy |= lazy_imports(imported.__file__)
for module in sorted(m for m in lazy if m.split(".")[0] not in not_here):
    try:
        importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001
        failed.append(f"{module} (imported inside a function): {type(exc).__name__}: {exc}")
print("\n".join(failed) or f"every module of {', '.join(packages)} imports, with what they import lazily",
      file=sys.stderr)
sys.exit(1 if failed else 0)
