#!/usr/bin/env bash
# Creates (or updates) the project's virtualenv .venv from the pinned requirements.lock.
# Re-runs pip only when the lock, a requirements file or a package's pyproject.toml changed since the last install.
# The lock is all pip installs; the requirements files say what is in it and why (requirements.txt).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
stamp_of() { cat requirements.lock requirements.txt requirements-server.txt requirements-test.txt \
  data-labeling/pyproject.toml data-versioning/pyproject.toml | sha256sum | cut -c1-16; }
want=$(stamp_of)

# The project's own modules (installed editable) get their bytecode written here, even where the environment
# says not to write it at import (PYTHONDONTWRITEBYTECODE, usual in containers): otherwise every command compiles
# them again at start, ~0.1 s. Quick when up to date; a module edited since is compiled again on the next start.
compile_own() { .venv/bin/python -m compileall -q data-labeling/datalabel data-versioning/dataversion > /dev/null || true; }

if [[ -f .venv/.installed && $(cat .venv/.installed) == "$want" ]]; then
  compile_own
  exit 0
fi
# two starts at once (two terminals): one installs, the other waits for it and finds the venv ready
if command -v flock > /dev/null; then
  exec 9> .venv.lock
  flock 9
  [[ -f .venv/.installed && $(cat .venv/.installed) == "$want" ]] && exit 0
fi
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || {
  echo "error: Python 3.10+ is needed (found $("$PYTHON" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2; exit 2; }

echo "Installing pinned dependencies into .venv (first run takes a few minutes)..." >&2
[[ -x .venv/bin/python ]] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -r requirements.lock
.venv/bin/python -m pip install --quiet --no-deps -e data-labeling -e data-versioning
echo "$want" > .venv/.installed
compile_own
