#!/usr/bin/env bash
# The one entry point. Starts the stack and leaves you in a shell ready to label.
#
#   ./docker-shell.sh               start: containers if a Docker engine answers, else the embedded default
#   ./docker-shell.sh --local       start the embedded default (Label Studio + GCS emulator as local processes)
#   ./docker-shell.sh --emulator    (Docker) a GCS emulator container instead of Google Cloud Storage; the
#                                   default when secrets/gcp-service.json is absent. --gcs forces Google's.
#   ./docker-shell.sh --postgres    team mode: Label Studio on PostgreSQL (Docker: the postgres container;
#                                   --local: Debian's postgresql package, data in .stack/postgres)
#   ./docker-shell.sh versioning    (Docker) a shell in the versioning container (bucket mount + DVC)
#   ./docker-shell.sh down          stop what was started (data is kept)
#   ./docker-shell.sh down --volumes   (Docker) stop and delete this checkout's volumes: Label Studio's projects
#                                   and labels, the emulator's bucket. Your own bucket is never touched.
#
# Environment: GCS_BUCKET_NAME (your bucket; datalabel-local on the emulator), LABEL_STUDIO_PORT (8080),
# GCS_EMULATOR_PORT (9023), LS_DATABASE=postgresql|sqlite (as --postgres; --local keeps the last start's choice),
# POSTGRES_PORT (--local: 5432, else a free one), NO_SHELL=1 (start only), DEMO_LIMIT=N (seed N of 1,797 images),
# DATALABEL_EXTRAS=video,plots (the labeling-CLI image's optional parts: video frames, the `al simulate` plot).
# The Docker path writes its choices to ./.env, so `docker compose up -d` starts the same stack afterwards. Each
# checkout is its own Compose project (datalabel-<hash of its folder>), so its volumes are its own.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
# Where credentials and Compose settings live; tests point these at temporary folders.
SECRETS_DIR=${SECRETS_DIR:-./secrets}
# Compose reads a volume source without ./ or / as a named volume, not a folder: keep it a path.
[[ $SECRETS_DIR == /* || $SECRETS_DIR == ./* || $SECRETS_DIR == ../* ]] || SECRETS_DIR=./$SECRETS_DIR
COMPOSE_ENV=${DATALABEL_COMPOSE_ENV:-.env}
export SECRETS_DIR

usage() { sed -n '2,/^set -e/{/^set -e/d;p}' "$0" | sed 's/^# \{0,1\}//'; }  # the header above

mode=auto
action=up
volumes=0
gcs=auto
die() { echo "error: $*" >&2; exit 2; }
for arg in "$@"; do
  case $arg in
    --local) [[ $mode == docker ]] && die "--local and --docker exclude each other"; mode=local ;;
    --docker) [[ $mode == local ]] && die "--local and --docker exclude each other"; mode=docker ;;
    --emulator) [[ $gcs == google ]] && die "--emulator and --gcs exclude each other"; gcs=emulator ;;
    --gcs) [[ $gcs == emulator ]] && die "--emulator and --gcs exclude each other"; gcs=google ;;
    --postgres) [[ ${LS_DATABASE:-postgresql} == postgresql ]] || die "--postgres and LS_DATABASE=$LS_DATABASE exclude each other"
                LS_DATABASE=postgresql ;;
    up | down | versioning) action=$arg ;;
    --volumes) volumes=1 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$arg' (see ./docker-shell.sh --help)" ;;
  esac
done
[[ $mode == local && $gcs == google ]] && die "--gcs needs the Docker stack; the embedded default runs the local emulator"
[[ $volumes == 0 || $action == down ]] || die "--volumes goes with down: ./docker-shell.sh down --volumes"
# settings from the environment, checked before anything starts
check_port() {  # $1: variable name
  local value=${!1:-}
  [[ -z $value ]] && return 0
  [[ $value =~ ^[1-9][0-9]{0,4}$ ]] && ((value <= 65535)) || die "$1 must be a port number (1-65535), not '$value'"
}
check_port LABEL_STUDIO_PORT
check_port GCS_EMULATOR_PORT
check_port POSTGRES_PORT
[[ -z ${DATALABEL_EXTRAS:-} || ${DATALABEL_EXTRAS} =~ ^(video|plots)(,(video|plots))?$ ]] \
  || die "DATALABEL_EXTRAS must be video, plots or video,plots, not '${DATALABEL_EXTRAS}'"
[[ -z ${DEMO_LIMIT:-} || ${DEMO_LIMIT} =~ ^[1-9][0-9]{0,5}$ ]] ||
  die "DEMO_LIMIT must be a number of images from 1 to 999999, not '${DEMO_LIMIT}'"
[[ -z ${LS_DATABASE:-} || ${LS_DATABASE} == postgresql || ${LS_DATABASE} == sqlite ]] ||
  die "LS_DATABASE must be postgresql or sqlite, not '${LS_DATABASE}'"
[[ -z ${GCS_BUCKET_NAME:-} || ${GCS_BUCKET_NAME} =~ ^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$ ]] ||
  die "GCS_BUCKET_NAME '${GCS_BUCKET_NAME}' is not a valid bucket name (3-63 of a-z 0-9 - _ .)"

docker_answers() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }
if [[ $mode == auto ]]; then
  if docker_answers; then mode=docker; else mode=local; fi
fi

# Compose v2 (`docker compose`) where installed, else v1 (`docker-compose`); both read the settings file.
compose() {
  if docker compose version >/dev/null 2>&1; then
    docker compose --env-file "$COMPOSE_ENV" "$@"
  else
    docker-compose --env-file "$COMPOSE_ENV" "$@"
  fi
}

# Credentials are generated once, readable only by you, and never committed (secrets/ is git-ignored), by the
# one generator both start paths use (standard library only, so any python3 runs it before anything is installed).
# For the containers it also writes Compose env files, read on this side as you: they arrive whatever user a
# container runs as.
make_secrets() {  # [--compose]
  local python=python3
  [[ -x $ROOT/.venv/bin/python ]] && python=$ROOT/.venv/bin/python
  command -v "$python" > /dev/null || { echo "error: python3 is needed to generate the credentials; install it" >&2; exit 2; }
  PYTHONPATH="$ROOT/data-labeling" "$python" -m datalabel.credentials "$SECRETS_DIR" "$@" || exit 2
}
secret() {
  local value
  value=$(<"$SECRETS_DIR/$1")
  [[ -n $value ]] || { echo "error: $SECRETS_DIR/$1 is empty; delete it and run ./docker-shell.sh again" >&2; exit 2; }
  printf '%s' "$value"
}

# KEY=VALUE in the Compose settings file; other lines (yours) are kept. A value with more than plain path
# characters goes in single quotes, which Compose and python-dotenv (the CLI's settings) both read as written
# (no "#" comment cut, spaces kept); a $ (Compose v1 expands it even there), quote, backslash or line break is
# refused.
set_compose_var() {
  local key=$1 value=$2 tmp
  if [[ ! $value =~ ^[A-Za-z0-9_./:,@+=-]*$ ]]; then
    [[ $value != *"'"* && $value != *\\* && $value != *$'\n'* && $value != *'$'* ]] \
      || die "$key holds a quote, a backslash, a \$ or a line break, which the settings file cannot keep: '$value'"
    value="'$value'"
  fi
  tmp=$(mktemp "$COMPOSE_ENV.XXXXXX")
  { [[ -f $COMPOSE_ENV ]] && grep -v "^$key=" "$COMPOSE_ENV" || true; printf '%s=%s\n' "$key" "$value"; } > "$tmp"
  mv "$tmp" "$COMPOSE_ENV"
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
  mkdir -p .stack
  SECRETS_DIR=$SECRETS_DIR .venv/bin/python -m datalabel.embedded up --root "$ROOT" --port "${LABEL_STUDIO_PORT:-8080}" \
    --env-file .stack/env ${LS_DATABASE:+--database "$LS_DATABASE"}
  open_shell .stack/env
}

wait_healthy() {  # $1: service
  local id status
  id=$(compose ps -q "$1")
  [[ -n $id ]] || { echo "error: $1 is not running; see: docker compose logs $1" >&2; exit 1; }
  for _ in $(seq 1 150); do
    status=$(docker inspect -f '{{.State.Health.Status}}' "$id" 2>/dev/null || echo unknown)
    [[ $status == healthy ]] && return 0
    if [[ $(docker inspect -f '{{.State.Status}}' "$id" 2>/dev/null) == exited ]]; then
      docker logs --tail 5 "$id" >&2 || true
      echo "error: $1 exited; see: docker compose logs $1" >&2
      exit 1
    fi
    sleep 2
  done
  echo "error: $1 did not become healthy in 5 minutes; see: docker compose logs $1" >&2
  exit 1
}

# The Compose project: yours if set, else the one this checkout recorded, else datalabel-<hash of this folder>.
# One per checkout: a second clone gets its own volumes, never the first one's Label Studio data and admin.
project_name() {
  local recorded=""
  [[ -f $COMPOSE_ENV ]] && recorded=$(sed -n 's/^COMPOSE_PROJECT_NAME=//p' "$COMPOSE_ENV" | tail -1)
  printf '%s' "${COMPOSE_PROJECT_NAME:-${recorded:-datalabel-$(printf '%s' "$ROOT" | sha256sum | cut -c1-8)}}"
}

# Label Studio keeps the admin and token it was first started with (they live in its data volume). If secrets/
# was made anew since, say so in one line instead of failing later with HTTP 401.
check_token() {
  local url="http://127.0.0.1:${LABEL_STUDIO_PORT:-8080}/api/current-user/whoami"
  local code
  code=$(python3 - "$url" "$(secret ls_api_token)" <<'PY' || true
import sys, urllib.error, urllib.request
req = urllib.request.Request(sys.argv[1], headers={"Authorization": f"Token {sys.argv[2]}"})
try:
    print(urllib.request.urlopen(req, timeout=30).status)
except urllib.error.HTTPError as exc:
    print(exc.code)
except OSError:
    print(0)
PY
)
  if [[ $code == 401 || $code == 403 ]]; then
    echo "error: Label Studio's data volume ($(project_name)_label-studio-data) was created with other credentials" \
      "than $SECRETS_DIR holds; put the old $SECRETS_DIR back, or start afresh (deletes its projects and labels):" \
      "./docker-shell.sh down --volumes && ./docker-shell.sh" >&2
    exit 2
  fi
}

# Settings for Compose: which files (emulator or Google), profiles, your uid, ports. Written to ./.env.
configure_compose() {
  if [[ $gcs == auto ]]; then
    if [[ -f $SECRETS_DIR/gcp-service.json ]]; then gcs=google; else gcs=emulator; fi
  fi
  local files=docker-compose.yml profiles=""
  if [[ $gcs == emulator ]]; then
    files+=":docker-compose.emulator.yml"
    echo "GCS: a local emulator container (no cloud account needed; --gcs and secrets/gcp-service.json for yours)" >&2
  else
    [[ -f $SECRETS_DIR/gcp-service.json ]] \
      || { echo "error: --gcs needs a service-account key at $SECRETS_DIR/gcp-service.json" >&2; exit 2; }
    [[ -n ${GCS_BUCKET_NAME:-} ]] || echo "note: GCS_BUCKET_NAME is not set; pass --bucket to the CLI or export it first" >&2
  fi
  set_compose_var COMPOSE_PROJECT_NAME "$(project_name)"
  set_compose_var COMPOSE_FILE "$files"
  set_compose_var SECRETS_DIR "$SECRETS_DIR"
  set_compose_var HOST_UID "$(id -u)"
  set_compose_var HOST_GID "$(id -g)"
  set_compose_var LABEL_STUDIO_PORT "${LABEL_STUDIO_PORT:-8080}"
  set_compose_var GCS_EMULATOR_PORT "${GCS_EMULATOR_PORT:-9023}"
  set_compose_var DATALABEL_NETWORK "${DATALABEL_NETWORK:-data-labeling-network}"
  set_compose_var DATASET_REPO_DIR "${DATASET_REPO_DIR:-./dataset-repo}"
  if [[ -n ${GCS_BUCKET_NAME:-} ]]; then set_compose_var GCS_BUCKET_NAME "$GCS_BUCKET_NAME"; fi
  # recorded once given (even empty), so later starts and plain Compose build the same image
  if [[ -n ${DATALABEL_EXTRAS+set} ]]; then set_compose_var DATALABEL_EXTRAS "$DATALABEL_EXTRAS"; fi
  if [[ ${LS_DATABASE:-sqlite} == postgresql ]]; then
    profiles=postgres
    set_compose_var DJANGO_DB postgresql
    set_compose_var POSTGRE_HOST postgres
    set_compose_var LS_COMMAND nginx  # label-studio serves through nginx; the app is label-studio-app
  else
    set_compose_var DJANGO_DB sqlite
    set_compose_var POSTGRE_HOST ""
    set_compose_var LS_COMMAND ""
  fi
  set_compose_var COMPOSE_PROFILES "$profiles"
}

docker_up() {
  make_secrets --compose
  configure_compose
  local network=${DATALABEL_NETWORK:-data-labeling-network}
  docker network inspect "$network" >/dev/null 2>&1 || docker network create "$network" >/dev/null
  # base images: pulled where a registry answers, else built locally as stand-ins (see the script)
  scripts/local-images.sh $([[ ${LS_DATABASE:-} == postgresql ]] && echo --postgres)
  echo "Building the labeling-CLI image (the first time takes a few minutes)..." >&2
  compose build --quiet labeling-cli
  compose up -d
  local services=(label-studio)
  [[ $gcs == emulator ]] && services=(gcs-emulator label-studio)
  for s in "${services[@]}"; do wait_healthy "$s"; done
  check_token
  if [[ $gcs == emulator ]]; then
    compose run --rm -T labeling-cli datalabel demo ${DEMO_LIMIT:+--limit "$DEMO_LIMIT"}
  fi
  echo "Label Studio: http://127.0.0.1:${LABEL_STUDIO_PORT:-8080}  login $(secret ls_admin_user) (password in $SECRETS_DIR/ls_admin_password)"
  if [[ -z ${NO_SHELL:-} && -t 0 && -t 1 ]]; then
    compose run --rm labeling-cli bash
  else
    echo "A shell in the CLI container: docker compose run --rm labeling-cli bash"
  fi
}

# The versioning image installs gcsfuse from Google's apt repository; where that cannot be reached, a stand-in
# mounter with gcsfuse's command line (see data-versioning/Dockerfile). Decided once, kept in the settings file.
choose_gcsfuse() {
  local choice=${GCSFUSE_INSTALL:-}
  if [[ -z $choice ]]; then
    if curl -fsS --max-time 10 -o /dev/null https://packages.cloud.google.com/apt/dists/gcsfuse-bookworm/Release 2>/dev/null; then
      choice=vendor
    else
      choice=standin
      echo "STAND-IN: Google's gcsfuse repository cannot be reached; the versioning image gets the gcsfs + FUSE stand-in" >&2
    fi
  fi
  set_compose_var GCSFUSE_INSTALL "$choice"
}

versioning_shell() {
  make_secrets --compose
  [[ -f $COMPOSE_ENV ]] || { echo "error: start the stack first: ./docker-shell.sh" >&2; exit 1; }
  choose_gcsfuse
  mkdir -p "${DATASET_REPO_DIR:-dataset-repo}"
  echo "Building the versioning image (the first time takes a few minutes)..." >&2
  compose build --quiet versioning
  if [[ -t 0 && -t 1 ]]; then compose run --rm versioning; else compose run --rm -T versioning "$@"; fi
}

case $mode/$action in
  local/up) local_up ;;
  docker/up) docker_up ;;
  docker/versioning) versioning_shell ;;
  local/versioning)
    scripts/ensure-venv.sh
    [[ -f .stack/env ]] || { echo "error: the stack is not started; run ./docker-shell.sh first" >&2; exit 1; }
    open_shell .stack/env ;;
  */down)
    if [[ -f .stack/stack.json ]]; then
      if [[ -x .venv/bin/python ]]; then .venv/bin/python -m datalabel.embedded down --root "$ROOT"; fi
    fi
    if docker_answers && [[ -f $COMPOSE_ENV ]]; then
      compose --profile cli --profile postgres down $([[ $volumes == 1 ]] && echo --volumes)
    elif [[ $volumes == 1 ]]; then
      die "--volumes: no Compose stack was started from this checkout (no $COMPOSE_ENV)"
    fi ;;
esac
