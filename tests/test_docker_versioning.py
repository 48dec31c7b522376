"""The versioning container for real, beside the Compose stack of test_docker_stack: the bucket mounted read-only
over FUSE (gcsfuse, or its stand-in where Google's repository cannot be reached), the dataset snapshot read from
the mount, DVC pushing to a remote in the emulator container, `dataset_vN` tags; then, from the host, plain
`dvc get` and the notebook read the versions.

The container runs as uid 1000 with /dev/fuse and CAP_SYS_ADMIN, not privileged (docker-compose.yml).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from datalabel import embedded, gcs, samples
from dataversion import repo as repo_mod
from docker_helpers import Stack
from versioning_helpers import run_notebook

BUCKET = embedded.DEMO_BUCKET
UID = 1000


@pytest.fixture(scope="module")
def git_safe(tmp_path_factory) -> dict[str, str]:
    """git refuses a repository another user owns unless a global setting says it is safe (the repo is uid
    1000's; the tests run as whoever runs them): a global config file of the tests' own."""
    config = tmp_path_factory.mktemp("git") / "gitconfig"
    config.write_text("[safe]\n\tdirectory = *\n")
    return {"GIT_CONFIG_GLOBAL": str(config)}


class Versioning:
    def __init__(self, stack: Stack, repo: Path):
        self.stack = stack
        self.repo = repo
        self.env = {"DATASET_REPO_DIR": str(repo), "HOST_UID": str(UID), "HOST_GID": str(UID)}

    def run(self, *args: str, extra: tuple[str, ...] = (), timeout: float = 600) -> subprocess.CompletedProcess:
        """A command in a fresh versioning container (it mounts the bucket first, as a user's would)."""
        return self.stack.compose("run", "--rm", "-T", *extra, "versioning", *args, env=self.env, timeout=timeout)

    def ok(self, *args: str) -> str:
        out = self.run(*args)
        assert out.returncode == 0, f"{' '.join(args)} failed (exit {out.returncode}):\n{out.stdout}\n{out.stderr}"
        return out.stdout


@pytest.fixture(scope="module")
def versioning(docker_stack, tmp_path_factory) -> Versioning:
    repo = tmp_path_factory.mktemp("dataset-repo")
    os.chown(repo, UID, UID)
    v = Versioning(docker_stack, repo)
    # what a user runs: builds the image (gcsfuse or its stand-in) and starts the container on the mount
    out = docker_stack.shell("versioning", env=v.env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert f"gs://{BUCKET} mounted at /mnt/gcs_bucket (read-only)" in out.stderr
    v.build_output = out.stdout + out.stderr
    return v


def _project(stack: Stack) -> tuple[int, str, dict[str, int]]:
    """A new project over 100 of the bucket's digits with its own target prefix (made from inside the CLI
    container); its id, labels prefix and task ids by image file name."""
    run = uuid.uuid4().hex[:8]
    prefix = f"labels-versioning-{run}/"
    out = stack.cli("datalabel", "setup", "--title", f"Versioning {run}", "--template", "image-classification",
                    "--labels", ",".join(str(i) for i in range(10)), "--source-prefix", "images_unlabeled/",
                    "--target-prefix", prefix, "--regex", r".*digit_01\d\d\.png", "--json")
    assert out.returncode == 0, out.stderr
    project_id = json.loads(out.stdout)["project_id"]
    body = json.loads(stack.api(f"/api/tasks/?project={project_id}&page_size=200")[2])
    by_name = {gcs.gs_url_from_ref(t["data"]["image"]).rsplit("/", 1)[1]: t["id"] for t in body["tasks"]}
    assert len(by_name) == 100
    return project_id, prefix, by_name


def _label(stack: Stack, project_id: int, tasks: dict[str, int], names: list[str]) -> None:
    """Annotate with the true digit through the API (as the labeling UI does), then sync target storage."""
    truth = samples.digits_dataset().target
    for name in names:
        label = str(int(truth[int(name[6:10])]))
        status, _, _ = stack.api(f"/api/tasks/{tasks[name]}/annotations/", {"result": [{
            "type": "choices", "from_name": "choice", "to_name": "image", "value": {"choices": [label]}}]})
        assert status == 201
    out = stack.cli("datalabel", "storage", "sync", str(project_id), "--direction", "target")
    assert out.returncode == 0, out.stderr


def test_mount_is_read_only_fuse_and_the_user_is_not_root(versioning):
    out = versioning.ok("bash", "-c", "id -u; stat -f -c %T /mnt/gcs_bucket; ls /mnt/gcs_bucket; "
                        "touch /mnt/gcs_bucket/x 2>&1 && echo WROTE || echo refused")
    lines = out.split()
    assert lines[0] == str(UID)
    assert lines[1] in ("fuseblk", "fuse")  # FUSE, not a bind mount or tmpfs
    assert "images_unlabeled" in lines and lines[-1] == "refused"
    if "STAND-IN" in versioning.build_output:
        print("gcsfuse: the stand-in mounter (Google's repository cannot be reached)")


def test_snapshot_from_the_mount_commit_push_tag_diff_and_no_change(versioning, docker_stack, tmp_path, git_safe):
    stack = docker_stack
    project_id, prefix, tasks = _project(stack)
    snapshot = ("dataversion", "snapshot", "--project", str(project_id), "--labels-prefix", prefix)
    names = sorted(tasks)
    first, second = names[:12], names[12:18]

    _label(stack, project_id, tasks, first)
    versioning.ok("dataversion", "init")  # bucket and emulator endpoint from the container's environment
    snap = versioning.ok(*snapshot)
    assert "/mnt/gcs_bucket" in snap  # read from the mount, not the API
    out = versioning.ok("dataversion", "commit", "-m", "first 12 digits")
    assert out.startswith("dataset_v1: 12 item(s)")

    _label(stack, project_id, tasks, second)
    versioning.ok(*snapshot)
    assert versioning.ok("dataversion", "commit", "-m", "6 more").startswith("dataset_v2: 18 item(s)")
    diff = json.loads(versioning.ok("dataversion", "diff", "dataset_v1", "dataset_v2", "--json"))
    assert sorted(u.rsplit("/", 1)[1] for u in diff["added"]) == second
    assert diff["removed"] == [] and diff["relabeled"] == []

    # nothing changed: no dataset_v3
    versioning.ok(*snapshot)
    assert versioning.ok("dataversion", "commit").strip() == "nothing changed since dataset_v2: no new version"
    tags = subprocess.run(["git", "tag"], cwd=versioning.repo, capture_output=True, text=True,
                          env={**os.environ, **git_safe}).stdout.split()
    assert tags == ["dataset_v1", "dataset_v2"]
    # the repository on the host belongs to the container's (non-root) user
    assert (versioning.repo / "dataset.dvc").stat().st_uid == UID
    # DVC's data is in the emulator bucket
    digest = repo_mod._data_hash(versioning.repo, None)
    assert stack.download(BUCKET, f"dvc_store/files/md5/{digest[:2]}/{digest[2:]}")

    # from the host, a fresh folder, plain DVC, as a Colab user would: from a clone of the repository (as pushed
    # to a git host; a clone is ours, where the container's folder belongs to uid 1000), the endpoint being the
    # emulator's published port
    clone = tmp_path / "clone"
    cloned = subprocess.run(["git", "clone", "-q", str(versioning.repo), str(clone)], capture_output=True, text=True,
                            env={**os.environ, **git_safe})
    assert cloned.returncode == 0, cloned.stderr
    dest = tmp_path / "v1"
    got = subprocess.run([str(Path(sys.executable).parent / "dvc"), "get", "--rev", "dataset_v1", str(clone),
                          "dataset", "-o", str(dest), "--remote-config", f"endpointurl={stack.emulator_url}"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600,
                         env={**os.environ, **git_safe, "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
                              "DVC_NO_ANALYTICS": "1"})
    assert got.returncode == 0, got.stderr
    pngs = sorted(p.name for p in dest.rglob("*.png"))
    assert pngs == first
    for path in dest.rglob("*.png"):
        assert path.read_bytes() == stack.download(BUCKET, f"images_unlabeled/{path.name}")

    # the notebook reads both versions
    summary = run_notebook(tmp_path, {"DATASET_REPO": str(clone), "DATASET_VERSIONS": "dataset_v1,dataset_v2",
                                      "STORAGE_EMULATOR_HOST": stack.emulator_url})
    assert summary["versions"] == ["dataset_v1", "dataset_v2"]
    assert len(summary["read"]["dataset_v1"]["labels"]) == 12
    assert len(summary["read"]["dataset_v2"]["labels"]) == 18


def test_failed_or_empty_mount_refuses_to_start(versioning, docker_stack):
    out = versioning.run("true", extra=("-e", "GCS_BUCKET_NAME=no-such-bucket-here"))
    assert out.returncode == 3
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "could not mount gs://no-such-bucket-here" in errors[0], out.stderr
    assert "Traceback" not in out.stderr

    # an empty bucket: mounted, but nothing to version from
    status = subprocess.run(["curl", "-fsS", "-X", "POST", "-H", "Content-Type: application/json", "-d",
                             '{"name": "empty-bucket-here"}', f"{docker_stack.emulator_url}/storage/v1/b?project=test"],
                            capture_output=True, text=True)
    assert status.returncode == 0, status.stderr
    out = versioning.run("true", extra=("-e", "GCS_BUCKET_NAME=empty-bucket-here"))
    assert out.returncode == 4
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "shows no objects" in errors[0], out.stderr
