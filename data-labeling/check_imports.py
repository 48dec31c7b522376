"""Imports every module of the packages named on the command line; exit 1 naming those that fail.

The images run it after removing what their commands do not import (see the Dockerfiles): a module that still
needed a removed library fails the build, not a user's command.
"""
import importlib
import pkgutil
import sys

failed = []
for name in sys.argv[1:]:
    package = importlib.import_module(name)
    for module in pkgutil.walk_packages(package.__path__, f"{name}."):
        if module.name.endswith("__main__"):  # runs the CLI
            continue
        try:
            importlib.import_module(module.name)
        except Exception as exc:  # noqa: BLE001 - any failure to import is what this reports
            failed.append(f"{module.name}: {type(exc).__name__}: {exc}")
print("\n".join(failed) or f"every module of {', '.join(sys.argv[1:])} imports", file=sys.stderr)
sys.exit(1 if failed else 0)
