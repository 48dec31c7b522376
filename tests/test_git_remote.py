"""Versions leave the machine: `dataversion commit` pushes the commit and its tag together to a real git server on
loopback (smart HTTP with basic auth, SSH with a generated key), racing committers end with distinct versions,
bad credentials and unknown host keys stop with one line and push nothing, and versions are read back by URL
(the CLI and the notebook). Tag names from the user are validated before anything is pushed or committed."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from datalabel import labelconfig, samples
from datalabel.errors import ConfigError, LabError
from dataversion import gitauth, load, publish, repo, snapshot
from git_servers import SSHD, GitHTTP, SSHServer, bare_repo, refs
from versioning_helpers import choice, imagefolder_labels, run_cli, run_notebook

TOKEN = "tok-" + os.urandom(12).hex()
FILES = [f"{repo.DATASET_DIR}.dvc", ".gitignore", repo.MANIFEST]


@pytest.fixture(scope="module")
def git_http(tmp_path_factory):
    with GitHTTP(tmp_path_factory.mktemp("git-http"), "labeler", TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def git_ssh(tmp_path_factory):
    assert Path(SSHD).is_file(), "Debian's openssh-server is needed: apt-get install -y openssh-server"
    with SSHServer(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture
def secrets(tmp_path, monkeypatch) -> Path:
    """The secrets folder ($SECRETS_DIR) of this test, for the library and the CLI it starts alike."""
    folder = tmp_path / "secrets"
    folder.mkdir()
    monkeypatch.setenv(gitauth.SECRETS_ENV, str(folder))
    return folder


def put_secret(folder: Path, name: str, text: str, mode: int = 0o600) -> Path:
    path = folder / name
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.fixture
def config():
    return labelconfig.parse_config(labelconfig.build_config("image-classification", samples.DIGIT_LABELS))


def label_bucket(bucket, digits_dir: Path, labels: dict[str, str]) -> None:
    """The bucket as Label Studio's storages leave it: images in the source prefix, one task JSON per label."""
    for blob in bucket.list_blobs(prefix="labels/"):
        blob.delete()
    for i, (name, label) in enumerate(sorted(labels.items()), 1):
        bucket.blob(f"images_unlabeled/{name}").upload_from_filename(str(digits_dir / "images" / name))
        bucket.blob(f"labels/{i}").upload_from_string(json.dumps({
            "id": i, "project": 1, "data": {"image": f"gs://{bucket.name}/images_unlabeled/{name}"},
            "annotations": [{"id": 100 + i, "completed_by": 1, "result": choice(label)}]}))


def snap(path: Path, bucket, config) -> None:
    snapshot.snapshot(path / repo.DATASET_DIR, bucket.name, "imagefolder", config)


def git_out(path: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=path, capture_output=True, text=True, env=repo.tool_env()).stdout


def all_text(folder: Path) -> str:
    return "\n".join(p.read_bytes().decode("latin-1") for p in folder.rglob("*") if p.is_file())


def test_http_remote_push_race_and_read_by_url(git_http, secrets, bucket, gcs_emulator, digits_dir, config,
                                               tmp_path):
    put_secret(secrets, gitauth.TOKEN, TOKEN + "\n")
    put_secret(secrets, gitauth.TOKEN_USER, "labeler\n")
    bare = bare_repo(git_http.root, "digits.git")
    url = git_http.url("digits.git")
    truth = samples.read_truth(digits_dir)
    names = sorted(truth)[:8]

    # person A creates the dataset repository with the team's remote and commits the first version
    a, b = tmp_path / "a", tmp_path / "b"
    out = run_cli("init", "--repo", str(a), "--bucket", bucket.name, "--endpoint", gcs_emulator.url,
                  "--git-remote", url)
    assert out.returncode == 0, out.stderr
    assert f"git remote {url}" in out.stdout
    label_bucket(bucket, digits_dir, {n: truth[n] for n in names[:3]})
    snap(a, bucket, config)
    trace = tmp_path / "git-trace.log"
    out = run_cli("commit", "--repo", str(a), "-m", "three digits", env={"GIT_TRACE": str(trace)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("dataset_v1: 3 item(s)") and f"pushed with its tag to {url}" in out.stdout
    served = refs(bare)
    assert served["refs/heads/main"] == git_out(a, "rev-parse", "HEAD").strip()
    assert served["refs/tags/dataset_v1"] == git_out(a, "rev-parse", "refs/tags/dataset_v1").strip()
    assert any(user == "labeler" and "git-receive-pack" in path for _, path, user, _ in git_http.requests)
    # the token went to git through the credential helper only: in no command line (GIT_TRACE logs every
    # command git runs, with its arguments), no output, no file of the repository
    assert f"cat {secrets / gitauth.TOKEN}" in trace.read_text() and TOKEN not in trace.read_text()
    assert TOKEN not in out.stdout + out.stderr and TOKEN not in all_text(a / ".git")
    assert TOKEN not in (a / ".dvc" / "config").read_text()

    # person B joins: init on an empty folder starts from the remote's history
    out = run_cli("init", "--repo", str(b), "--bucket", bucket.name, "--endpoint", gcs_emulator.url,
                  "--git-remote", url)
    assert out.returncode == 0, out.stderr
    assert repo.version_tags(b) == ["dataset_v1"]

    # both commit at once from their clones: two versions with distinct numbers
    label_bucket(bucket, digits_dir, {n: truth[n] for n in names[:5]})
    snap(a, bucket, config)
    label_bucket(bucket, digits_dir, {n: truth[n] for n in names[2:8]})
    snap(b, bucket, config)
    racers = [subprocess.Popen([sys.executable, "-m", "dataversion", "commit", "--repo", str(p), "--json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for p in (a, b)]
    results = [p.communicate(timeout=300) for p in racers]
    for proc, (stdout, stderr) in zip(racers, results):
        assert proc.returncode == 0, stderr
    tags = sorted(json.loads(stdout)["tag"] for stdout, _ in results)
    assert tags == ["dataset_v2", "dataset_v3"]
    served = refs(bare)
    assert {r for r in served if r.startswith("refs/tags/")} == {f"refs/tags/dataset_v{i}" for i in (1, 2, 3)}
    for clone in (a, b):  # no local tag the remote does not have, and the same object where both have it
        for tag in repo.version_tags(clone):
            assert served[f"refs/tags/{tag}"] == git_out(clone, "rev-parse", f"refs/tags/{tag}").strip()

    # a race forced at its narrowest point: B has synced, A pushes before B does; B's push is rejected, B
    # rebuilds its one commit on A's, takes the next number and pushes again
    label_bucket(bucket, digits_dir, {n: truth[n] for n in names[:7]})
    snap(a, bucket, config)
    label_bucket(bucket, digits_dir, {n: str((int(truth[n]) + 1) % 10) for n in names[:4]})
    snap(b, bucket, config)
    real_sync, calls, done = publish.Remote.sync, [], []

    def sync_then_a_commits(self):
        state = real_sync(self)
        calls.append(self.repo)
        if calls.count(b.resolve()) == 2:  # B's check before its DVC push, then the sync right before its push
            done.append(run_cli("commit", "--repo", str(a), "--json"))
        return state

    publish.Remote.sync = sync_then_a_commits
    try:
        info = repo.commit(b, "relabeled four")
    finally:
        publish.Remote.sync = real_sync
    assert done[0].returncode == 0, done[0].stderr
    first = json.loads(done[0].stdout)["tag"]
    assert first == "dataset_v4" and info["tag"] == "dataset_v5" and info["taken"] == ["dataset_v4"]
    served = refs(bare)
    assert served["refs/heads/main"] == info["commit"]
    assert git_out(b, "rev-parse", f"{info['commit']}^").strip() == git_out(a, "rev-parse", "HEAD").strip()
    assert sorted(repo.version_tags(b)) == sorted(t.removeprefix("refs/tags/") for t in served if "tags/" in t)
    assert git_out(b, "status", "--porcelain") == ""
    assert json.loads(git_out(b, "show", f"dataset_v5:{repo.MANIFEST}"))["counts"]["items"] == 4

    # everyone reads the versions by URL, without a clone of their own
    out = run_cli("versions", "--repo", url, "--json")
    assert out.returncode == 0, out.stderr
    listed = {v["tag"]: v["items"] for v in json.loads(out.stdout)}
    assert listed["dataset_v1"] == 3 and listed["dataset_v4"] == 7 and listed["dataset_v5"] == 4
    assert sorted({listed["dataset_v2"], listed["dataset_v3"]}) == [5, 6]
    out = run_cli("diff", "--repo", url, "dataset_v4", "dataset_v5", "--json")
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)["removed"]) == 3 and len(json.loads(out.stdout)["relabeled"]) == 4
    out = run_cli("checkout", "--repo", url, "dataset_v1", str(tmp_path / "v1"))
    assert out.returncode == 0, out.stderr
    assert imagefolder_labels(tmp_path / "v1") == {n: truth[n] for n in names[:3]}
    assert load.versions(url) == [f"dataset_v{i}" for i in range(1, 6)]

    # the notebook reads two versions through the HTTP URL, with the token from its environment
    os.environ.pop(gitauth.SECRETS_ENV, None)
    summary = run_notebook(tmp_path, {"DATASET_REPO": url, "DATASET_VERSIONS": "dataset_v1,dataset_v5",
                                      "DATASET_GIT_TOKEN": TOKEN, "DATASET_GIT_USER": "labeler",
                                      "STORAGE_EMULATOR_HOST": gcs_emulator.url})
    assert summary["versions"] == [f"dataset_v{i}" for i in range(1, 6)]
    assert summary["read"]["dataset_v1"]["labels"] == {n: truth[n] for n in names[:3]}
    assert summary["read"]["dataset_v5"]["labels"] == {n: str((int(truth[n]) + 1) % 10) for n in names[:4]}
    assert summary["read"]["dataset_v5"]["image_bytes"] == sum(
        (digits_dir / "images" / n).stat().st_size for n in names[:4])


def one_line_error(out: subprocess.CompletedProcess) -> str:
    assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


def state(path: Path) -> tuple[str, str]:
    return git_out(path, "rev-parse", "HEAD"), git_out(path, "tag", "--list")


def test_wrong_token_stops_with_one_line_and_pushes_nothing(git_http, secrets, bucket, gcs_emulator, digits_dir,
                                                            config, tmp_path):
    bare = bare_repo(git_http.root, "wrong-token.git")
    url = git_http.url("wrong-token.git")
    truth = samples.read_truth(digits_dir)
    path = tmp_path / "datasets"
    put_secret(secrets, gitauth.TOKEN, TOKEN)
    put_secret(secrets, gitauth.TOKEN_USER, "labeler")
    repo.init(path, bucket.name, endpoint=gcs_emulator.url, jobs=4, git_remote=url)
    label_bucket(bucket, digits_dir, {n: truth[n] for n in sorted(truth)[:3]})
    snap(path, bucket, config)
    wrong = "wrong-" + os.urandom(8).hex()
    put_secret(secrets, gitauth.TOKEN, wrong)
    before = state(path)
    out = run_cli("commit", "--repo", str(path))
    line = one_line_error(out)
    assert "refused the credentials" in line and str(secrets / gitauth.TOKEN) in line
    assert wrong not in out.stderr + out.stdout and wrong not in all_text(path / ".git")
    assert refs(bare) == {} and state(path) == before  # nothing pushed, nothing committed or tagged
    assert not list(bucket.list_blobs(prefix="dvc_store"))  # the credentials are checked before the data upload
    assert any(status == 401 for *_, status in git_http.requests)

    # no token at all: the same one line (git may not prompt)
    (secrets / gitauth.TOKEN).unlink()
    assert "refused the credentials" in one_line_error(run_cli("commit", "--repo", str(path)))
    # a token readable by others is refused before git runs
    put_secret(secrets, gitauth.TOKEN, TOKEN, mode=0o644)
    line = one_line_error(run_cli("commit", "--repo", str(path)))
    assert "may be read by others" in line and "chmod 600" in line
    # a token inside the URL is refused: it would land in .git/config and in messages
    line = one_line_error(run_cli("init", "--repo", str(tmp_path / "other"), "--bucket", bucket.name,
                                  "--git-remote", url.replace("http://", f"http://labeler:{TOKEN}@")))
    assert "holds a user name or token" in line and TOKEN not in line
    assert not (tmp_path / "other").exists()
    # with the right token the same command goes through
    put_secret(secrets, gitauth.TOKEN, TOKEN)
    out = run_cli("commit", "--repo", str(path), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["tag"] == "dataset_v1" and "refs/tags/dataset_v1" in refs(bare)


def test_ssh_remote_with_deploy_key_and_checked_host_key(git_ssh, secrets, bucket, gcs_emulator, digits_dir, config,
                                                         tmp_path):
    bare = bare_repo(git_ssh.folder, "digits.git")
    url = git_ssh.url(bare)
    truth = samples.read_truth(digits_dir)
    names = sorted(truth)
    path = tmp_path / "datasets"

    # no known_hosts: one line that says how to add it, before anything is created
    line = one_line_error(run_cli("init", "--repo", str(path), "--bucket", bucket.name, "--endpoint",
                                  gcs_emulator.url, "--git-remote", url))
    assert f"ssh-keyscan -p {git_ssh.port} 127.0.0.1 >> {secrets / gitauth.KNOWN_HOSTS}" in line
    assert not path.exists()

    put_secret(secrets, gitauth.SSH_KEY, git_ssh.user_key.read_text())
    put_secret(secrets, gitauth.KNOWN_HOSTS, git_ssh.known_hosts_line(), mode=0o644)
    out = run_cli("init", "--repo", str(path), "--bucket", bucket.name, "--endpoint", gcs_emulator.url,
                  "--git-remote", url)
    assert out.returncode == 0, out.stderr
    label_bucket(bucket, digits_dir, {n: truth[n] for n in names[:3]})
    snap(path, bucket, config)
    out = run_cli("commit", "--repo", str(path))
    assert out.returncode == 0, out.stderr
    assert f"pushed with its tag to {url}" in out.stdout
    served = refs(bare)
    assert served["refs/tags/dataset_v1"] == git_out(path, "rev-parse", "refs/tags/dataset_v1").strip()
    assert served["refs/heads/main"] == git_out(path, "rev-parse", "HEAD").strip()
    assert str(secrets) not in (path / ".git" / "config").read_text()

    # the server presents a host key other than the one in known_hosts: refused, one line, nothing pushed
    other = tmp_path / "other_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    kind, key = Path(f"{other}.pub").read_text().split()[:2]
    put_secret(secrets, gitauth.KNOWN_HOSTS, f"[127.0.0.1]:{git_ssh.port} {kind} {key}\n", mode=0o644)
    label_bucket(bucket, digits_dir, {n: truth[n] for n in names[:5]})
    snap(path, bucket, config)
    before, served = state(path), refs(bare)
    line = one_line_error(run_cli("commit", "--repo", str(path)))
    assert "SSH host key of 127.0.0.1 is not the one in" in line and f"ssh-keyscan -p {git_ssh.port}" in line
    assert refs(bare) == served and state(path) == before
    # a deploy key readable by others is refused, as ssh itself would
    put_secret(secrets, gitauth.KNOWN_HOSTS, git_ssh.known_hosts_line())
    (secrets / gitauth.SSH_KEY).chmod(0o640)
    assert "may be read by others" in one_line_error(run_cli("commit", "--repo", str(path)))
    (secrets / gitauth.SSH_KEY).chmod(0o600)
    # and read back over SSH by URL
    out = run_cli("commit", "--repo", str(path), "--json")
    assert out.returncode == 0, out.stderr
    assert load.versions(url) == ["dataset_v1", "dataset_v2"]
    assert repo.read_manifest(url, "dataset_v2")["counts"]["items"] == 5


@pytest.mark.parametrize("tag, message", [
    ("--no-sign", "not a valid tag name"), ("-f", "not a valid tag name"), ("HEAD", "not a valid tag name"),
    ("FETCH_HEAD", "not a valid tag name"), ("bad tag", "not a valid tag name"), ("a..b", "not a valid tag name"),
    ("main", "already exists"), ("dataset_v1", "already exists")])
def test_bad_tag_names_are_refused_before_anything_is_pushed(git_http, secrets, bucket, gcs_emulator, digits_dir,
                                                            config, tmp_path, tag, message):
    """Issue 22, point 4: a tag from the user reaches git only as a valid name that is not an option, not HEAD and
    not an existing ref, and is checked before the DVC push and the commit."""
    put_secret(secrets, gitauth.TOKEN, TOKEN)
    put_secret(secrets, gitauth.TOKEN_USER, "labeler")
    name = f"tags-{os.urandom(4).hex()}.git"
    bare = bare_repo(git_http.root, name)
    path = tmp_path / "datasets"
    repo.init(path, bucket.name, endpoint=gcs_emulator.url, jobs=4, git_remote=git_http.url(name))
    truth = samples.read_truth(digits_dir)
    label_bucket(bucket, digits_dir, {n: truth[n] for n in sorted(truth)[:2]})
    snap(path, bucket, config)
    assert repo.commit(path)["tag"] == "dataset_v1"
    label_bucket(bucket, digits_dir, {n: truth[n] for n in sorted(truth)[:3]})
    snap(path, bucket, config)
    before, served = state(path), refs(bare)
    stored = sorted(b.name for b in bucket.list_blobs(prefix="dvc_store"))
    line = one_line_error(run_cli("commit", "--repo", str(path), f"--tag={tag}"))
    assert message in line
    assert state(path) == before and refs(bare) == served
    assert sorted(b.name for b in bucket.list_blobs(prefix="dvc_store")) == stored  # no DVC push either
    assert not (path / ".git" / "refs" / "tags" / "HEAD").exists()
    with pytest.raises(ConfigError, match=message):
        publish.check_tag_name(path, tag)


def test_a_tag_the_remote_already_has_is_refused(git_http, secrets, bucket, gcs_emulator, digits_dir, config,
                                                 tmp_path):
    put_secret(secrets, gitauth.TOKEN, TOKEN)
    put_secret(secrets, gitauth.TOKEN_USER, "labeler")
    bare = bare_repo(git_http.root, "taken.git")
    url = git_http.url("taken.git")
    truth = samples.read_truth(digits_dir)
    a, b = tmp_path / "a", tmp_path / "b"
    repo.init(a, bucket.name, endpoint=gcs_emulator.url, jobs=4, git_remote=url)
    label_bucket(bucket, digits_dir, {n: truth[n] for n in sorted(truth)[:2]})
    snap(a, bucket, config)
    repo.commit(a)
    repo.init(b, bucket.name, endpoint=gcs_emulator.url, jobs=4, git_remote=url)
    label_bucket(bucket, digits_dir, {n: truth[n] for n in sorted(truth)[:3]})
    snap(a, bucket, config)
    assert repo.commit(a, tag="release-1")["tag"] == "release-1"
    snap(b, bucket, config)
    served = refs(bare)
    # B has not fetched release-1 yet; the remote has it: refused, not renumbered, nothing pushed
    with pytest.raises(ConfigError, match="already exists on origin"):
        repo.commit(b, tag="release-1")
    assert refs(bare) == served


def test_option_like_repositories_never_reach_git_as_options(tmp_path):
    """load.py hands the repository to `git ls-remote` after --end-of-options; URLs are checked first."""
    marker = tmp_path / "ran"
    with pytest.raises(LabError):
        load.versions(f"--upload-pack=touch {marker}")
    assert not marker.exists()
    with pytest.raises(ConfigError, match="not a git remote URL"):
        gitauth.check_url("-oProxyCommand=touch /tmp/x")
    with pytest.raises(ConfigError, match="not a version name"):
        load.fetch_versions("http://127.0.0.1:9/x.git", ["--upload-pack=x"], tmp_path / "f")


def test_local_only_versions_then_a_remote_gets_the_whole_history(git_http, secrets, bucket, gcs_emulator,
                                                                  digits_dir, config, tmp_path):
    put_secret(secrets, gitauth.TOKEN, TOKEN)
    put_secret(secrets, gitauth.TOKEN_USER, "labeler")
    truth = samples.read_truth(digits_dir)
    path = tmp_path / "datasets"
    repo.init(path, bucket.name, endpoint=gcs_emulator.url, jobs=4)
    label_bucket(bucket, digits_dir, {n: truth[n] for n in sorted(truth)[:2]})
    snap(path, bucket, config)
    out = run_cli("commit", "--repo", str(path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("dataset_v1: 2 item(s)") and "local only: no git remote" in out.stdout

    bare = bare_repo(git_http.root, "later.git")
    out = run_cli("init", "--repo", str(path), "--bucket", bucket.name, "--endpoint", gcs_emulator.url,
                  "--git-remote", git_http.url("later.git"))
    assert out.returncode == 0, out.stderr
    label_bucket(bucket, digits_dir, {n: truth[n] for n in sorted(truth)[:3]})
    snap(path, bucket, config)
    out = run_cli("commit", "--repo", str(path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("dataset_v2: 3 item(s)") and "pushed with its tag" in out.stdout
    served = refs(bare)
    for tag in ("dataset_v1", "dataset_v2"):
        assert served[f"refs/tags/{tag}"] == git_out(path, "rev-parse", f"refs/tags/{tag}").strip()
