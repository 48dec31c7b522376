#!/usr/bin/env bash
# Installs what the tests need from the project's pinned files, then runs the whole suite against real
# servers (Label Studio, GCS emulator, git + DVC) started by the fixtures on free loopback ports; then the tests
# marked `postgres` (setup, sync, annotate, export, snapshot) again with Label Studio on PostgreSQL (team mode).
#   ./run-tests.sh                 everything
#   ./run-tests.sh -k export -x    pytest arguments pass through
set -euo pipefail
cd "$(dirname "$0")"

scripts/ensure-venv.sh

# Debian packages some tests use: a Docker engine (docker.io; the tests start dockerd when none runs) with Compose
# v1 (docker-compose) for the stack tests, debootstrap for the stand-in base image where no registry answers,
# chromium to drive the labeling UI, postgresql and nginx for team mode (Label Studio under gunicorn behind nginx),
# openssh-server for the git-over-SSH remote.
# Installed when missing and we may (root with apt-get).
missing=()
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || command -v postgres >/dev/null 2>&1 || missing+=(postgresql)
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io iptables)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[[ -x /usr/sbin/sshd ]] || missing+=(openssh-server)
if [[ ${#missing[@]} -gt 0 && $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing ${missing[*]} (Debian) for the compose and browser tests..." >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >/dev/null 2>&1 \
    || echo "warning: could not install ${missing[*]}; the tests that need them will be skipped" >&2
fi

export DVC_NO_ANALYTICS=1 LATEST_VERSION_CHECK=false COLLECT_ANALYTICS=false SENTRY_DSN= FRONTEND_SENTRY_DSN=
status=0
.venv/bin/python -m pytest tests "$@" || status=$?
echo "== team mode: the tests marked 'postgres' with Label Studio on PostgreSQL ==" >&2
# exit 5: the arguments given (-k ...) select none of them
.venv/bin/python -m pytest tests "$@" -m postgres --ls-database postgresql || { rc=$?; [[ $rc == 5 ]] || status=$rc; }
exit $status
