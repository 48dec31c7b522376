#!/usr/bin/env bash
# Makes sure every base image the project's files name is in the local Docker engine.
#
# Where a registry answers, the real image is pulled and nothing is built. Where none does (an offline machine, a
# network that reaches package indexes but no image registry), a STAND-IN is built locally under the same name:
#   python:3.11-slim-bookworm        Debian bookworm (debootstrap) with its python3 3.11, pip and venv
#   heartexlabs/label-studio:<tag>   the same label-studio release from PyPI on that base, same contract (below)
#   postgres:<tag>                   Debian bookworm's postgresql package, same contract as the official image
# Stand-ins carry the label datalabel.standin=<hash of their inputs>; they are rebuilt only when that changes,
# and a real image under the same name is never replaced.
#
#   scripts/local-images.sh            python base + Label Studio (+ PostgreSQL with --postgres)
#   scripts/local-images.sh --list     print the images and whether each is real, a stand-in, or missing
set -euo pipefail
cd "$(dirname "$0")/.."

STANDINS=scripts/standins
PY_IMAGE=python:3.11-slim-bookworm
image_in_compose() { sed -n "s/^ *image: *\($1:[^ \"]*\).*/\1/p" docker-compose*.yml | head -1; }
LS_IMAGE=$(image_in_compose 'heartexlabs\/label-studio')
PG_IMAGE=$(image_in_compose postgres)
[[ -n $LS_IMAGE && -n $PG_IMAGE ]] || { echo "error: docker-compose files name no Label Studio or PostgreSQL image" >&2; exit 2; }

want_postgres=0
list_only=0
for arg in "$@"; do
  case $arg in
    --postgres) want_postgres=1 ;;
    --list) list_only=1 ;;
    -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument '$arg' (see scripts/local-images.sh --help)" >&2; exit 2 ;;
  esac
done

docker info >/dev/null 2>&1 || { echo "error: no Docker engine answers; start dockerd (or Docker Desktop) first" >&2; exit 3; }

# The inputs of a stand-in: its folder under scripts/standins and the function that builds it; for the python base
# also the CA bundle baked into it, for the others the base's id (they are built FROM it).
inputs_hash() {  # $1: stand-in folder name
  {
    find "$STANDINS/$1" -type f -print0 | sort -z | xargs -0 cat
    if [[ $1 == python ]]; then
      declare -f build_python_base
      cat /etc/ssl/certs/ca-certificates.crt 2>/dev/null
    else
      declare -f build_from_dockerfile
      cat requirements.lock  # what the stand-ins install from
      docker image inspect -f '{{.Id}}' "$PY_IMAGE" 2>/dev/null
    fi
  } | sha256sum | cut -c1-16
}

# real | standin:<hash> | missing
state_of() {
  local label
  if ! label=$(docker image inspect -f '{{ index .Config.Labels "datalabel.standin" }}' "$1" 2>/dev/null); then
    echo missing
  elif [[ -z $label || $label == "<no value>" ]]; then
    echo real
  else
    echo "standin:$label"
  fi
}

# 0 when the image is there (real, or a stand-in built from the current inputs); pulls the real one if it can.
ready() {  # $1 image, $2 stand-in folder
  local state
  state=$(state_of "$1")
  [[ $state == real || $state == "standin:$(inputs_hash "$2")" ]] && return 0
  if [[ $state == missing ]] && docker pull -q "$1" >/dev/null 2>&1; then
    echo "pulled $1" >&2
    return 0
  fi
  return 1
}

if [[ $list_only == 1 ]]; then
  for image in "$PY_IMAGE" "$LS_IMAGE" "$PG_IMAGE"; do printf '%-40s %s\n' "$image" "$(state_of "$image")"; done
  exit 0
fi

build_python_base() {
  local hash root
  hash=$(inputs_hash python)
  [[ $(id -u) == 0 ]] || { echo "error: building the $PY_IMAGE stand-in needs root (debootstrap); run as root or pull the image" >&2; exit 3; }
  command -v debootstrap >/dev/null || { echo "error: debootstrap is missing (apt-get install debootstrap)" >&2; exit 3; }
  root=$(mktemp -d /var/tmp/datalabel-rootfs.XXXXXX)
  trap 'rm -rf "$root"' RETURN
  echo "STAND-IN: building $PY_IMAGE from Debian bookworm (debootstrap, about a minute)..." >&2
  debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates,bash \
    bookworm "$root" http://deb.debian.org/debian >"$root.log" 2>&1 \
    || { echo "error: debootstrap failed; see $root.log" >&2; exit 3; }
  rm -f "$root.log"
  "$STANDINS/python/prepare-rootfs.sh" "$root"
  tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change "LABEL datalabel.standin=$hash" \
    --change 'CMD ["python3"]' \
    - "$PY_IMAGE" >/dev/null
  echo "STAND-IN: $PY_IMAGE built (Debian's Python $(docker run --rm "$PY_IMAGE" python3 -c 'import platform; print(platform.python_version())'))" >&2
}

build_from_dockerfile() {  # $1 image, $2 stand-in folder, $3... build args
  local image=$1 folder=$2 hash
  shift 2
  hash=$(inputs_hash "$folder")
  echo "STAND-IN: building $image from $STANDINS/$folder (no registry answered)..." >&2
  local log context
  log=$(mktemp)
  # the build context: the stand-in's folder and the lock file, so Python packages install at the locked versions
  context=$(mktemp -d)
  cp -R "$STANDINS/$folder/." "$context/" && cp requirements.lock "$context/requirements.lock"
  # the classic builder: it needs no buildx plugin (Debian's docker.io has none); its output only on failure
  DOCKER_BUILDKIT=0 docker build --label "datalabel.standin=$hash" "$@" -t "$image" "$context" >"$log" 2>&1 \
    || { tail -30 "$log" >&2; rm -rf "$log" "$context"; echo "error: building the $image stand-in failed" >&2; exit 3; }
  rm -rf "$log" "$context"
  echo "STAND-IN: $image built" >&2
}

ready "$PY_IMAGE" python || build_python_base
ready "$LS_IMAGE" label-studio || build_from_dockerfile "$LS_IMAGE" label-studio \
  --build-arg "LABEL_STUDIO_VERSION=${LS_IMAGE##*:}"
if [[ $want_postgres == 1 ]]; then
  ready "$PG_IMAGE" postgres || build_from_dockerfile "$PG_IMAGE" postgres
fi
exit 0
