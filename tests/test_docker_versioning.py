"""The versioning container for real, beside the Compose stack of test_docker_stack: the bucket mounted read-only
over FUSE (gcsfuse, or its stand-in where Google's repository cannot be reached), the dataset snapshot read from
the mount, DVC pushing to a remote in the emulator container, `dataset_vN` tags; then, from the host, plain
`dvc get` and the notebook read the versions.

The container runs as uid 1000 with /dev/fuse and CAP_SYS_ADMIN, not privileged (docker-compose.yml).
"""
from __future__ import annotations

import json
import os
import secrets as secrets_mod
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from datalabel import embedded, gcs, samples
from dataversion import repo as repo_mod
from docker_helpers import ROOT, Stack, compose_command
from git_servers import bare_repo, free_port, refs
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


@pytest.fixture(scope="module")
def git_server(docker_stack, versioning, tmp_path_factory):
    """The team's git remote: `git http-backend` with basic auth (tests/git_servers.py) in a container on the
    stack's network (the versioning image has git and Python), its port published on the host's loopback only.
    The versioning container gets the token the way a user's does: secrets/git_token + git_user, 0600, its uid."""
    root, auth = tmp_path_factory.mktemp("git-server"), tmp_path_factory.mktemp("git-auth")
    token = secrets_mod.token_hex(16)
    (auth / "password").write_text(token)
    bare_repo(root, "digits.git")
    port, name = free_port(), f"{docker_stack.name}-git"
    out = subprocess.run(["docker", "run", "-d", "--rm", "--name", name, "--network", f"{docker_stack.name}-net",
                          "--user", "0", "-p", f"127.0.0.1:{port}:8000", "-v", f"{root}:/git",
                          "-v", f"{auth}:/auth:ro", "-v", f"{Path(__file__).parent / 'git_servers.py'}:/srv/gs.py:ro",
                          "--entrypoint", "python3", "datalabel/versioning:local", "/srv/gs.py", "/git", "labeler",
                          "/auth/password", "8000"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    written = []
    try:
        deadline = time.monotonic() + 60
        while True:  # up once it answers (401: it wants the credentials)
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/digits.git/info/refs", timeout=2)
            except urllib.error.HTTPError as exc:
                if exc.code == 401:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the git server container did not answer"
            time.sleep(0.2)
        for file, text in (("git_token", token), ("git_user", "labeler")):
            path = docker_stack.secrets / file
            path.write_text(text + "\n")
            path.chmod(0o600)
            os.chown(path, UID, UID)
            written.append(path)
        yield SimpleNamespace(root=root, token=token, inside=f"http://{name}:8000/digits.git",
                              host=f"http://127.0.0.1:{port}/digits.git")
    finally:
        for path in written:
            path.unlink(missing_ok=True)
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def test_versions_committed_in_containers_reach_the_git_server_race_and_read_by_url(docker_stack, git_server,
                                                                                    tmp_path_factory, tmp_path,
                                                                                    git_safe):
    stack = docker_stack
    project_id, prefix, tasks = _project(stack)
    snapshot = ("dataversion", "snapshot", "--project", str(project_id), "--labels-prefix", prefix)
    names = sorted(tasks)
    clones = []
    for who in ("a", "b"):
        folder = tmp_path_factory.mktemp(f"dataset-repo-{who}")
        os.chown(folder, UID, UID)
        clones.append(Versioning(stack, folder))
    a, b = clones

    _label(stack, project_id, tasks, names[:10])
    a.ok("dataversion", "init", "--git-remote", git_server.inside)
    a.ok(*snapshot)
    out = a.ok("dataversion", "commit", "-m", "first ten")
    assert out.startswith("dataset_v1: 10 item(s)") and f"pushed with its tag to {git_server.inside}" in out
    bare = git_server.root / "digits.git"
    served = refs(bare)
    local = subprocess.run(["git", "rev-parse", "refs/tags/dataset_v1", "HEAD"], cwd=a.repo, capture_output=True,
                           text=True, env={**os.environ, **git_safe}).stdout.split()
    assert [served["refs/tags/dataset_v1"], served["refs/heads/main"]] == local
    assert git_server.token not in (a.repo / ".git" / "config").read_text()

    # B joins from the remote; A and B snapshot different label sets and commit at the same time
    b.ok("dataversion", "init", "--git-remote", git_server.inside)
    _label(stack, project_id, tasks, names[10:14])
    a.ok(*snapshot)
    _label(stack, project_id, tasks, names[14:17])
    b.ok(*snapshot)
    racers = [subprocess.Popen([*compose_command(), "--env-file", str(stack.settings_file), "run", "--rm", "-T",
                                "versioning", "dataversion", "commit", "--json"], cwd=ROOT,
                               env={**stack.env, **v.env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for v in (a, b)]
    results = [p.communicate(timeout=900) for p in racers]
    for proc, (stdout, stderr) in zip(racers, results):
        assert proc.returncode == 0, stderr
    made = {json.loads(stdout)["tag"]: json.loads(stdout)["items"] for stdout, _ in results}
    assert sorted(made) == ["dataset_v2", "dataset_v3"] and sorted(made.values()) == [14, 17]
    assert {r for r in refs(bare) if r.startswith("refs/tags/")} == {f"refs/tags/dataset_v{i}" for i in (1, 2, 3)}

    # the notebook reads both racing versions through the HTTP URL (token from its environment, data from the
    # emulator's published port)
    summary = run_notebook(tmp_path, {"DATASET_REPO": git_server.host, "DATASET_VERSIONS": "dataset_v2,dataset_v3",
                                      "DATASET_GIT_TOKEN": git_server.token, "DATASET_GIT_USER": "labeler",
                                      "STORAGE_EMULATOR_HOST": stack.emulator_url})
    assert summary["versions"] == ["dataset_v1", "dataset_v2", "dataset_v3"]
    assert {len(summary["read"][t]["labels"]) for t in ("dataset_v2", "dataset_v3")} == {14, 17}
