#!/usr/bin/env bash
# The one entry point. Starts the stack and leaves you in a shell ready to label.
#
#   ./docker-shell.sh               start: containers if a Docker engine answers, else the embedded default
#   ./docker-shell.sh --local       start the embedded default (Label Studio + GCS emulator as local processes)
#   ./docker-shell.sh versioning    (Docker) a shell in the versioning container (gcsfuse mount + DVC)
#   ./docker-shell.sh down          stop what was started (data is kept)
#
# Environment: GCS_BUCKET_NAME (Docker path, your bucket), LABEL_STUDIO_PORT (default 8080),
# LS_DATABASE=postgresql (Docker path, PostgreSQL instead of SQLite), NO_SHELL=1 (start only, no shell).
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
NETWORK=data-labeling-network
export COMPOSE_PROJECT_NAME=datalabel

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; }

mode=auto
action=up
for arg in "$@"; do
  case $arg in
    --local) mode=local ;;
    --docker) mode=docker ;;
    up | down | versioning) action=$arg ;;
    -h | --help) usage; exit 0 ;;
    *) echo "error: unknown argument '$arg' (see ./docker-shell.sh --help)" >&2; exit 2 ;;
  esac
done

docker_answers() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }
compose() {
  if docker compose version >/dev/null 2>&1; then docker compose "$@"; else docker-compose "$@"; fi
}
if [[ $mode == auto ]]; then
  if docker_answers; then mode=docker; else mode=local; fi
fi

# Credentials are generated once, readable only by you, and never committed (secrets/ is git-ignored).
new_secret() {
  local name=$1 value=$2
  [[ -s secrets/$name ]] && return 0
  (umask 077 && printf '%s\n' "$value" > "secrets/$name")
}
make_secrets() {
  mkdir -p secrets
  new_secret ls_admin_user "admin@example.com"
  new_secret ls_admin_password "$(head -c 18 /dev/urandom | base64 | tr -d '/+=\n')"
  new_secret ls_api_token "$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  new_secret postgres_password "$(head -c 18 /dev/urandom | base64 | tr -d '/+=\n')"
}

open_shell() {  # $1: file of export lines
  if [[ -t 0 && -t 1 && -z ${NO_SHELL:-} ]]; then
    echo
    echo "A shell with 'datalabel' and 'dataversion' ready; 'exit' leaves it. The servers keep running:"
    echo "  ./docker-shell.sh down   stops them."
    exec bash --rcfile <(printf '[ -f ~/.bashrc ] && source ~/.bashrc\nsource %q\nsource %q\nPS1="(datalabel) $PS1"\n' \
      "$ROOT/.venv/bin/activate" "$1") -i
  fi
  echo "To use the CLIs here: source .venv/bin/activate && source $1"
}

local_up() {
  scripts/ensure-venv.sh
  make_secrets
  mkdir -p .stack
  .venv/bin/python -m datalabel.embedded up --root "$ROOT" --port "${LABEL_STUDIO_PORT:-8080}" --env-file .stack/env
  open_shell .stack/env
}

wait_healthy() {  # $1: service
  local id status
  id=$(compose ps -q "$1")
  for _ in $(seq 1 120); do
    status=$(docker inspect -f '{{.State.Health.Status}}' "$id" 2>/dev/null || echo unknown)
    [[ $status == healthy ]] && return 0
    sleep 2
  done
  echo "error: $1 did not become healthy; see: docker compose logs $1" >&2
  exit 1
}

docker_up() {
  make_secrets
  [[ -n ${GCS_BUCKET_NAME:-} ]] || echo "note: GCS_BUCKET_NAME is not set; pass --bucket to the CLI or export it first" >&2
  [[ -f secrets/gcp-service.json ]] || echo "note: secrets/gcp-service.json is missing; add a service-account key for GCS" >&2
  docker network inspect "$NETWORK" >/dev/null 2>&1 || docker network create "$NETWORK" >/dev/null
  local profiles=(--profile cli)
  local services=(label-studio)
  if [[ ${LS_DATABASE:-} == postgresql ]]; then profiles+=(--profile postgres); services=(postgres label-studio); fi
  compose "${profiles[@]}" build
  compose "${profiles[@]}" up -d "${services[@]}"
  for s in "${services[@]}"; do wait_healthy "$s"; done
  echo "Label Studio: http://127.0.0.1:${LABEL_STUDIO_PORT:-8080}  login $(cat secrets/ls_admin_user) (password in secrets/ls_admin_password)"
  if [[ -z ${NO_SHELL:-} ]]; then
    compose "${profiles[@]}" run --rm labeling-cli bash
  fi
}

case $mode/$action in
  local/up) local_up ;;
  docker/up) docker_up ;;
  docker/versioning) make_secrets; compose --profile cli run --rm versioning ;;
  local/versioning)
    scripts/ensure-venv.sh
    [[ -f .stack/env ]] || { echo "error: the stack is not started; run ./docker-shell.sh first" >&2; exit 1; }
    open_shell .stack/env ;;
  */down)
    if [[ -f .stack/stack.json ]]; then
      if [[ -x .venv/bin/python ]]; then .venv/bin/python -m datalabel.embedded down --root "$ROOT"; fi
    fi
    if docker_answers; then compose --profile cli --profile postgres down; fi ;;
esac
