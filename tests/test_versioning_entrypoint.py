"""The versioning container's entrypoint: it must never hand out a shell (or run a command) over a failed or empty
bucket mount. gcsfuse is replaced by small scripts on PATH that fail, mount nothing, or mount a tmpfs."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from versioning_helpers import ROOT

ENTRYPOINT = ROOT / "data-versioning" / "entrypoint.sh"


def _fake_gcsfuse(bin_dir: Path, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "gcsfuse"
    # records its arguments, then does what the test asks; the mount point is the last argument
    script.write_text(f'#!/usr/bin/env bash\necho "$@" > "{bin_dir}/args"\nmnt="${{@: -1}}"\n{body}\n')
    script.chmod(0o755)


def _run(tmp_path: Path, bin_dir: Path, command: list[str], **env) -> subprocess.CompletedProcess:
    full = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path), "GCS_BUCKET_NAME": "my-labels",
            "GCS_MOUNT_DIR": str(tmp_path / "mnt"), "DATASET_REPO": str(tmp_path / "repo"), **env}
    return subprocess.run(["bash", str(ENTRYPOINT), *command], env=full, capture_output=True, text=True, timeout=60)


def _marker_command(tmp_path: Path) -> list[str]:
    return ["bash", "-c", f"touch {tmp_path}/ran; echo ran in $PWD"]


@pytest.fixture
def can_mount(tmp_path) -> bool:
    probe = tmp_path / "probe"
    probe.mkdir()
    ok = subprocess.run(["mount", "-t", "tmpfs", "none", str(probe)], capture_output=True).returncode == 0
    if ok:
        subprocess.run(["umount", str(probe)], check=True)
    return ok


def test_failed_mount_gives_no_shell(tmp_path):
    bin_dir = tmp_path / "bin"
    _fake_gcsfuse(bin_dir, 'echo "daemonize: bucket not found" >&2; exit 1')
    out = _run(tmp_path, bin_dir, _marker_command(tmp_path))
    assert out.returncode == 3
    assert "gcsfuse could not mount gs://my-labels" in out.stderr
    assert not (tmp_path / "ran").exists()
    args = (bin_dir / "args").read_text().split()
    assert args[:3] == ["--implicit-dirs", "-o", "ro"] and args[-2:] == ["my-labels", str(tmp_path / "mnt")]


def test_mount_that_mounts_nothing_gives_no_shell(tmp_path):
    bin_dir = tmp_path / "bin"
    _fake_gcsfuse(bin_dir, "exit 0")  # claims success, mounts nothing
    out = _run(tmp_path, bin_dir, _marker_command(tmp_path))
    assert out.returncode == 3
    assert "nothing is mounted" in out.stderr
    assert not (tmp_path / "ran").exists()


def test_missing_settings_are_refused(tmp_path):
    bin_dir = tmp_path / "bin"
    _fake_gcsfuse(bin_dir, "exit 0")
    out = _run(tmp_path, bin_dir, _marker_command(tmp_path), GCS_BUCKET_NAME="")
    assert out.returncode == 2 and "GCS_BUCKET_NAME is not set" in out.stderr
    out = _run(tmp_path, bin_dir, _marker_command(tmp_path), GOOGLE_APPLICATION_CREDENTIALS=str(tmp_path / "no.json"))
    assert out.returncode == 2 and "not readable" in out.stderr
    assert not (tmp_path / "bin" / "args").exists()  # gcsfuse was never called
    assert not (tmp_path / "ran").exists()


def test_empty_mount_is_refused_and_a_good_one_runs_the_command(tmp_path, can_mount):
    if not can_mount:
        pytest.skip("this machine does not allow mounting a tmpfs (needs root with CAP_SYS_ADMIN)")
    bin_dir = tmp_path / "bin"
    mnt = tmp_path / "mnt"
    try:
        # mounts, but the bucket shows no objects: refused, and unmounted again
        _fake_gcsfuse(bin_dir, 'mount -t tmpfs none "$mnt"')
        out = _run(tmp_path, bin_dir, _marker_command(tmp_path))
        assert out.returncode == 4 and "shows no objects" in out.stderr
        assert not (tmp_path / "ran").exists()
        assert subprocess.run(["mountpoint", "-q", str(mnt)]).returncode != 0

        # mounts with objects: the command runs, in the dataset repository, with the key passed to gcsfuse
        key = tmp_path / "key.json"
        key.write_text("{}")
        _fake_gcsfuse(bin_dir, 'mount -t tmpfs none "$mnt" && mkdir "$mnt/images_unlabeled" && touch "$mnt/images_unlabeled/a.png"')
        out = _run(tmp_path, bin_dir, _marker_command(tmp_path), GOOGLE_APPLICATION_CREDENTIALS=str(key))
        assert out.returncode == 0, out.stderr
        assert (tmp_path / "ran").exists() and f"ran in {tmp_path / 'repo'}" in out.stdout
        assert f"--key-file {key}" in (bin_dir / "args").read_text()
    finally:
        while subprocess.run(["mountpoint", "-q", str(mnt)]).returncode == 0:
            subprocess.run(["umount", str(mnt)], check=True)


def test_gcsfuse_standin_takes_gcsfuse_ttl_flags_and_defaults():
    """The stand-in trusts a listing as long as gcsfuse would: 60 s by default, the newer flag over the older
    ones, -1 for ever; a bad duration is refused as gcsfuse refuses it. (Its refresh against a real bucket is
    shown in tests/test_docker_newcomer.py: a new label appears in the mount within 90 s.)"""
    import importlib.machinery
    import importlib.util

    path = ROOT / "data-versioning" / "gcsfuse-standin" / "gcsfuse"
    loader = importlib.machinery.SourceFileLoader("gcsfuse_standin", str(path))
    standin = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(standin)

    def ttl(*flags: str):
        return standin.ttl_seconds(standin.parse([*flags, "bucket", "/mnt"]))

    assert ttl() == 60.0
    assert ttl("--metadata-cache-ttl-secs", "5") == 5.0
    assert ttl("--metadata-cache-ttl-secs=0") == 0.0
    assert ttl("--metadata-cache-ttl-secs", "-1") is None
    assert ttl("--metadata-cache-ttl-secs", "7", "--stat-cache-ttl", "1h") == 7.0
    assert ttl("--stat-cache-ttl", "1m30s") == 90.0
    assert ttl("--stat-cache-ttl", "2s", "--type-cache-ttl", "500ms") == 0.5
    with pytest.raises(SystemExit):
        ttl("--stat-cache-ttl", "soon")
