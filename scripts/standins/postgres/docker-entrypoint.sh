#!/usr/bin/env bash
# Entrypoint of the PostgreSQL stand-in image: first start creates the cluster, role and database from
# POSTGRES_USER / POSTGRES_PASSWORD(_FILE) / POSTGRES_DB, then runs the server as the postgres user.
set -euo pipefail

if [[ $(id -u) == 0 ]]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown -R postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  exec gosu postgres "$0" "$@"
fi

if [[ -n ${POSTGRES_PASSWORD_FILE:-} ]]; then
  POSTGRES_PASSWORD=$(<"$POSTGRES_PASSWORD_FILE")
fi
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}

if [[ ${1:-} == postgres && ! -s $PGDATA/PG_VERSION ]]; then
  [[ -n ${POSTGRES_PASSWORD:-} ]] || { echo "error: POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE) is not set" >&2; exit 1; }
  initdb -D "$PGDATA" --username="$user" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  if [[ $db != postgres ]]; then
    psql -v ON_ERROR_STOP=1 --username "$user" --dbname postgres -c "CREATE DATABASE \"$db\"" >/dev/null
  fi
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "=> PostgreSQL cluster initialised (role $user, database $db)" >&2
fi

if [[ ${1:-} == postgres ]]; then
  shift
  exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
fi
exec "$@"
