#!/usr/bin/env bash
# Entrypoint of the Label Studio stand-in image: what the official one does before the app starts that the stack
# depends on (wait for PostgreSQL when POSTGRE_HOST is set), then run the command.
set -euo pipefail

if [[ -n ${POSTGRE_HOST:-} ]]; then
  echo "=> Waiting for PostgreSQL at ${POSTGRE_HOST}:${POSTGRE_PORT:-5432}..." >&2
  until python3 - <<'PY'
import os, sys
import psycopg
try:
    psycopg.connect(dbname=os.getenv("POSTGRE_NAME", "root"), user=os.getenv("POSTGRE_USER"),
                    password=os.getenv("POSTGRE_PASSWORD"), host=os.getenv("POSTGRE_HOST"),
                    port=os.getenv("POSTGRE_PORT", "5432"), connect_timeout=3).close()
except psycopg.OperationalError:
    sys.exit(1)
PY
  do
    sleep 1
  done
  echo "=> PostgreSQL is up." >&2
fi

exec "$@"
