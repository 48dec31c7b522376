#!/usr/bin/env bash
# Versioning container: mount the bucket read-only, then run the command (default: a shell) in the dataset repo.
# Refuses to go on if the mount fails or shows nothing: versioning an empty folder would record an empty dataset.
#
# Environment:
#   GCS_BUCKET_NAME                 bucket to mount (required)
#   GOOGLE_APPLICATION_CREDENTIALS  service-account key file (e.g. /secrets/gcp-service.json); optional with ADC
#   GCS_MOUNT_DIR                   where to mount it (default /mnt/gcs_bucket); dataversion reads from here
#   DATASET_REPO                    the dataset git repository (default /work, a volume)
#   STORAGE_EMULATOR_HOST           a GCS emulator (http://host:port): mounted through it, without authentication
#   GCSFUSE_ARGS                    extra gcsfuse flags, space-separated (e.g. --only-dir images_unlabeled)
set -euo pipefail

fail() { echo "error: $1" >&2; exit "${2:-1}"; }

bucket="${GCS_BUCKET_NAME:-}"
[[ -n "$bucket" ]] || fail "GCS_BUCKET_NAME is not set; it names the bucket to mount" 2
mount_dir="${GCS_MOUNT_DIR:-/mnt/gcs_bucket}"
export GCS_MOUNT_DIR="$mount_dir"
repo="${DATASET_REPO:-/work}"
export DATASET_REPO="$repo"
export DVC_NO_ANALYTICS=1 GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false

command -v gcsfuse >/dev/null || fail "gcsfuse is not installed in this image" 3
args=(--implicit-dirs -o ro)
creds="${GOOGLE_APPLICATION_CREDENTIALS:-}"
if [[ -n "${STORAGE_EMULATOR_HOST:-}" ]]; then
  args+=(--custom-endpoint "${STORAGE_EMULATOR_HOST%/}/storage/v1/" --anonymous-access)
elif [[ -n "$creds" ]]; then
  [[ -r "$creds" ]] || fail "credentials file $creds is not readable; put the service-account key in secrets/" 2
  args+=(--key-file "$creds")
fi
if [[ -n "${GCSFUSE_ARGS:-}" ]]; then
  read -r -a extra <<< "$GCSFUSE_ARGS"
  args+=("${extra[@]}")
fi

mkdir -p "$mount_dir"
if mountpoint -q "$mount_dir"; then
  fail "$mount_dir is already a mount point; refusing to mount over it" 3
fi
echo "Mounting gs://$bucket read-only at $mount_dir ..." >&2
gcsfuse "${args[@]}" "$bucket" "$mount_dir" \
  || fail "gcsfuse could not mount gs://$bucket at $mount_dir (check the bucket name, the key and that the container has /dev/fuse)" 3
mountpoint -q "$mount_dir" \
  || fail "gcsfuse returned but nothing is mounted at $mount_dir; refusing to continue" 3
if [[ -z "$(ls -A "$mount_dir" 2>/dev/null)" ]]; then
  fusermount3 -u "$mount_dir" 2>/dev/null || fusermount -u "$mount_dir" 2>/dev/null || umount "$mount_dir" 2>/dev/null || true
  fail "gs://$bucket is mounted at $mount_dir but shows no objects (wrong bucket, no access, or empty); refusing to continue" 4
fi
echo "gs://$bucket mounted at $mount_dir (read-only)." >&2

mkdir -p "$repo"
cd "$repo"
if [[ $# -eq 0 ]]; then
  set -- bash
fi
exec "$@"
