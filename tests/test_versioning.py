"""Dataset versions end to end: Label Studio labels -> target storage -> snapshot -> DVC push to the emulator
bucket -> git tag; then diff, checkout and the notebook read them back. Real servers, real git and DVC."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from datalabel import credentials, embedded, gcs, labelconfig, samples
from datalabel.errors import ConfigError, LabError, NotFound, ServerError
from dataversion import common, load, publish, repo, snapshot
from versioning_helpers import (annotate, choice, imagefolder_labels, run_cli, run_notebook, sync, tasks_by_image,
                                upload_images)



@pytest.fixture
def dataset_repo(tmp_path, bucket, gcs_emulator) -> Path:
    """A fresh dataset repository whose DVC remote is gs://<test bucket>/dvc_store in the emulator."""
    path = tmp_path / "datasets"
    repo.init(path, bucket.name, endpoint=gcs_emulator.url, jobs=4)
    return path


@pytest.fixture
def digits_config(tmp_path) -> Path:
    path = tmp_path / "config.xml"
    path.write_text(labelconfig.build_config("image-classification", samples.DIGIT_LABELS), encoding="utf-8")
    return path


def _url(bucket, name: str) -> str:
    return f"gs://{bucket.name}/{embedded.SOURCE_PREFIX}{name}"


def _git(path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=path, capture_output=True, text=True, env=repo.tool_env())


@pytest.mark.postgres
def test_two_versions_diff_checkout_and_notebook(label_studio, ls_client, bucket, dataset_repo, tmp_path,
                                                 gcs_emulator):
    samples_dir = tmp_path / "samples"
    project_id = embedded.seed_demo(ls_client, bucket.name, samples_dir, limit=6, title=f"versions {bucket.name}")
    truth = samples.read_truth(samples_dir)
    tasks = tasks_by_image(ls_client, project_id)
    assert len(tasks) == 6

    # v1: four of six images labeled (the other two are not part of the dataset)
    first = sorted(tasks)[:4]
    ann_ids = {name: annotate(ls_client, tasks[name].id, truth[name]) for name in first}
    sync(ls_client, project_id, "target")
    env = {**label_studio.env(bucket.name), "DATASET_REPO": str(dataset_repo)}
    out = run_cli("snapshot", "--project", str(project_id), "--json", env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["items"] == 4
    out = run_cli("commit", "-m", "first four digits", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("dataset_v1: 4 item(s)")
    v1 = {name: truth[name] for name in first}
    manifest = repo.read_manifest(dataset_repo, "dataset_v1")
    assert manifest["label_studio_project"] == project_id
    assert manifest["label_config_digest"] == labelconfig.parse_config(
        ls_client.projects.get(id=project_id).label_config).digest
    assert sorted(manifest["annotation_ids"]) == sorted(ann_ids.values())
    assert manifest["counts"]["per_annotator"] == {credentials.ADMIN_USER: 4} or \
        sum(manifest["counts"]["per_annotator"].values()) == 4
    assert sum(manifest["counts"]["per_class"].values()) == 4

    # between versions: two new images arrive and are labeled; one old image is relabeled
    more = samples.write_digits(tmp_path / "more", limit=8)
    new_names = ["digit_0006.png", "digit_0007.png"]
    upload_images(bucket, more, new_names)
    sync(ls_client, project_id, "source")
    tasks = tasks_by_image(ls_client, project_id)
    assert len(tasks) == 8
    for name in new_names:
        annotate(ls_client, tasks[name].id, samples.read_truth(more)[name])
    changed = first[0]
    new_label = str((int(truth[changed]) + 1) % 10)
    ls_client.annotations.update(id=ann_ids[changed], result=choice(new_label))
    sync(ls_client, project_id, "target")

    # the second snapshot reads only the changed annotation files (the label cache keeps the others)
    cache = snapshot.cache_path(dataset_repo, bucket.name, "labels/")
    assert cache.is_file()
    out = run_cli("snapshot", "--project", str(project_id), env=env)
    assert out.returncode == 0, out.stderr
    assert "6 labeled item(s) as imagefolder" in out.stdout
    info = repo.commit(dataset_repo, "two new digits, one relabeled")
    assert info["tag"] == "dataset_v2"
    assert _git(dataset_repo, "status", "--porcelain").stdout == ""  # the cache is not part of the history
    v2 = {**v1, changed: new_label, **{n: samples.read_truth(more)[n] for n in new_names}}
    assert imagefolder_labels(dataset_repo / repo.DATASET_DIR) == v2

    # the diff reports exactly those changes
    diff = repo.diff(dataset_repo, "dataset_v1", "dataset_v2")
    assert diff["added"] == sorted(_url(bucket, n) for n in new_names)
    assert diff["removed"] == []
    assert diff["relabeled"] == [{"source": _url(bucket, changed), "old": [truth[changed]], "new": [new_label]}]
    assert diff["label_config_changed"] is False
    out = run_cli("diff", "dataset_v1", "dataset_v2", env=env)
    assert out.returncode == 0, out.stderr
    assert "2 added, 0 removed, 1 relabeled" in out.stdout
    assert f"~ {_url(bucket, changed)}: {truth[changed]} -> {new_label}" in out.stdout

    # versions are listed with their counts
    listed = repo.list_versions(dataset_repo)
    assert [(v["tag"], v["items"]) for v in listed] == [("dataset_v1", 4), ("dataset_v2", 6)]
    assert all(v["date"] for v in listed)

    # checkout of v1 after v2: v1's labels, in a separate folder; the workspace stays at v2
    got = repo.checkout(dataset_repo, "dataset_v1", tmp_path / "v1")
    assert got["items"] == 4
    assert imagefolder_labels(tmp_path / "v1") == v1
    assert imagefolder_labels(dataset_repo / repo.DATASET_DIR) == v2
    with pytest.raises(ConfigError, match="not empty"):
        repo.checkout(dataset_repo, "dataset_v2", tmp_path / "v1")

    # a clone has no DVC cache: what it reads comes from the bucket remote
    clone = tmp_path / "clone"
    assert _git(tmp_path, "clone", "-q", str(dataset_repo), str(clone)).returncode == 0
    assert not (clone / ".dvc" / "cache").exists()
    assert load.versions(str(clone)) == ["dataset_v1", "dataset_v2"]
    assert load.labels(str(clone), "dataset_v1") == {_url(bucket, n): [v1[n]] for n in v1}
    image = load.read_bytes(str(clone), "dataset_v2", f"{new_label}/{changed}")
    assert image == (samples_dir / "images" / changed).read_bytes()

    # the notebook lists both versions and reads both from the remote
    summary = run_notebook(tmp_path, {"DATASET_REPO": str(clone), "DATASET_VERSIONS": "dataset_v1,dataset_v2"})
    assert summary["versions"] == ["dataset_v1", "dataset_v2"]
    assert summary["read"]["dataset_v1"]["labels"] == v1
    assert summary["read"]["dataset_v2"]["labels"] == v2
    assert summary["read"]["dataset_v2"]["images"] == 6
    sizes = sum((samples_dir / "images" / n).stat().st_size for n in first[1:]) + \
        (samples_dir / "images" / changed).stat().st_size + sum((more / "images" / n).stat().st_size for n in new_names)
    assert summary["read"]["dataset_v2"]["image_bytes"] == sizes


def test_push_failure_leaves_no_commit_or_tag_and_rerun_resumes(ls_client, bucket, tmp_path, gcs_emulator,
                                                                digits_config, storage_client):
    samples_dir = tmp_path / "samples"
    project_id = embedded.seed_demo(ls_client, bucket.name, samples_dir, limit=3, title=f"push {bucket.name}")
    truth = samples.read_truth(samples_dir)
    for name, task in tasks_by_image(ls_client, project_id).items():
        annotate(ls_client, task.id, truth[name])
    sync(ls_client, project_id, "target")

    path = tmp_path / "datasets"
    # init refuses a bucket that does not exist; the remote then points at one anyway (deleted since, say)
    with pytest.raises(NotFound, match="does not exist"):
        repo.init(path, f"missing-{bucket.name}", endpoint=gcs_emulator.url, jobs=4)
    assert not path.exists()
    repo.init(path, bucket.name, endpoint=gcs_emulator.url, jobs=4)
    repo.dvc(path, "remote", "modify", repo.REMOTE, "url", repo.remote_url(f"missing-{bucket.name}"))
    init_commit = _git(path, "rev-parse", "HEAD").stdout.strip()
    config = labelconfig.parse_config(digits_config.read_text())
    snapshot.snapshot(path / repo.DATASET_DIR, bucket.name, "imagefolder", config)
    with pytest.raises(ServerError, match="nothing was committed or tagged"):
        repo.commit(path, "first")
    assert repo.version_tags(path) == []
    assert _git(path, "rev-parse", "HEAD").stdout.strip() == init_commit
    assert _git(path, "cat-file", "-e", "HEAD:dataset.dvc").returncode != 0
    # the CLI says the same in one line
    out = run_cli("commit", "--repo", str(path), "-m", "first")
    assert out.returncode == ServerError.exit_code
    assert out.stderr.startswith("error: dvc push to gs://missing-") and "Traceback" not in out.stderr
    assert repo.version_tags(path) == []

    # point the remote at the real bucket and run the same command again: it resumes and tags
    repo.init(path, bucket.name, endpoint=gcs_emulator.url, jobs=4)
    info = repo.commit(path, "first")
    assert info["tag"] == "dataset_v1" and repo.version_tags(path) == ["dataset_v1"]
    assert list(gcs.list_blobs(bucket, "dvc_store"))  # the data is in the bucket
    again = repo.commit(path, "again")
    assert again["tag"] is None and again["unchanged_since"] == "dataset_v1"
    # a fresh snapshot of the same labels is no new version either (the manifest in the data has no timestamp)
    snapshot.snapshot(path / repo.DATASET_DIR, bucket.name, "imagefolder", config)
    out = run_cli("commit", "--repo", str(path), "-m", "again")
    assert out.returncode == 0 and "nothing changed since dataset_v1" in out.stdout, out.stderr
    assert repo.version_tags(path) == ["dataset_v1"]
    files = load.list_files(str(path), "dataset_v1")
    assert "labels.csv" in files and sum(f.endswith(".png") for f in files) == 3


def test_empty_or_failed_sources_are_refused(bucket, tmp_path, digits_config, storage_client, dataset_repo):
    config = labelconfig.parse_config(digits_config.read_text())
    out_dir = dataset_repo / repo.DATASET_DIR

    with pytest.raises(NotFound, match="no annotations under gs://"):
        snapshot.snapshot(out_dir, bucket.name, "imagefolder", config)
    with pytest.raises(NotFound, match="does not exist"):
        snapshot.snapshot(out_dir, f"nope-{bucket.name}", "imagefolder", config)
    # target storage wrote tasks, but none is labeled (a skipped annotation does not count)
    bucket.blob("labels/1").upload_from_string(json.dumps({
        "id": 1, "data": {"image": f"gs://{bucket.name}/images_unlabeled/a.png"},
        "annotations": [{"id": 5, "was_cancelled": True, "result": choice("3")}]}))
    with pytest.raises(LabError, match="none has an annotation that counts"):
        snapshot.snapshot(out_dir, bucket.name, "imagefolder", config)
    # a labeled task whose image is gone
    bucket.blob("labels/2").upload_from_string(json.dumps({
        "id": 2, "data": {"image": f"gs://{bucket.name}/images_unlabeled/gone.png"},
        "annotations": [{"id": 6, "result": choice("4")}]}))
    with pytest.raises(NotFound, match="gone.png is not in the bucket"):
        snapshot.snapshot(out_dir, bucket.name, "imagefolder", config)
    assert not out_dir.exists()
    with pytest.raises(NotFound, match="has no manifest.json"):
        repo.commit(dataset_repo)

    # the CLI: one line, non-zero, no traceback, nothing written
    empty = storage_client.create_bucket(f"{bucket.name}-e")
    out = run_cli("snapshot", "--repo", str(dataset_repo), "--bucket", empty.name, "--label-config",
                  str(digits_config))
    assert out.returncode == NotFound.exit_code
    assert out.stderr.startswith("error: no annotations under gs://") and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not out_dir.exists()

    # a mount that failed (missing) or shows nothing is refused too
    with pytest.raises(NotFound, match="does not exist"):
        snapshot.snapshot(out_dir, bucket.name, "imagefolder", config, mount=tmp_path / "no-mount")
    (tmp_path / "empty-mount").mkdir()
    with pytest.raises(NotFound, match="is empty"):
        snapshot.snapshot(out_dir, bucket.name, "imagefolder", config, mount=tmp_path / "empty-mount")
    with pytest.raises(ConfigError, match="no label config"):
        snapshot.load_label_config(None, None)


def test_mount_source_reads_a_mounted_bucket_layout(bucket, tmp_path, digits_config, digits_dir, dataset_repo):
    """The container reads through the gcsfuse mount: the same snapshot from a folder laid out like the bucket.
    A mount lags the bucket (gcsfuse keeps listings for its TTL): what it does not show yet, or shows older, is
    read through the API; what the bucket no longer holds is left out."""
    mount = tmp_path / "mnt"
    truth = samples.read_truth(digits_dir)
    names = sorted(truth)[:6]

    def label(i: int, name: str, value: str) -> bytes:
        return json.dumps({"id": i, "project": 9, "data": {"image": f"gs://{bucket.name}/images_unlabeled/{name}"},
                           "annotations": [{"id": 100 + i, "completed_by": 1, "result": choice(value)}]}).encode()

    def put(key: str, data: bytes, in_bucket: bool = True, in_mount: bool = True) -> None:
        if in_bucket:
            bucket.blob(key).upload_from_string(data)
        if in_mount:
            (mount / key).parent.mkdir(parents=True, exist_ok=True)
            (mount / key).write_bytes(data)

    for i, name in enumerate(names[:4], 1):
        put(f"images_unlabeled/{name}", (digits_dir / "images" / name).read_bytes())
        put(f"labels/{i}", label(i, name, truth[name]))
    # labeled since the mount listed: label and image in the bucket only
    put(f"images_unlabeled/{names[4]}", (digits_dir / "images" / names[4]).read_bytes(), in_mount=False)
    put("labels/5", label(5, names[4], truth[names[4]]), in_mount=False)
    # relabeled since: the mount shows the older file
    put("labels/4", label(4, names[3], "relabeled-on-the-mount-only-and-longer"), in_bucket=False)
    # deleted from the bucket since: the mount still shows it
    put(f"images_unlabeled/{names[5]}", (digits_dir / "images" / names[5]).read_bytes(), in_bucket=False)
    put("labels/6", label(6, names[5], truth[names[5]]), in_bucket=False)

    config = labelconfig.parse_config(digits_config.read_text())
    source = snapshot.open_source(bucket.name, mount)
    # a classification project: ImageFolder (COCO would refuse it: no regions to write)
    manifest = snapshot.snapshot(dataset_repo / "dataset", bucket.name, "imagefolder", config, source=source)
    assert manifest["counts"]["items"] == 5 and manifest["label_studio_project"] == 9
    assert manifest["annotation_ids"] == [101, 102, 103, 104, 105]
    for name in names[:5]:
        image = dataset_repo / "dataset" / truth[name] / name
        assert image.read_bytes() == (digits_dir / "images" / name).read_bytes()
    assert source.via_api == {"labels/4", "labels/5", f"images_unlabeled/{names[4]}"}
    assert "mounted" in manifest["source"]["labels"]


def test_checkout_refuses_the_bucket_mount(dataset_repo, tmp_path, monkeypatch):
    mount = tmp_path / "mnt"
    mount.mkdir()
    monkeypatch.setenv(common.MOUNT_ENV, str(mount))
    with pytest.raises(ConfigError, match="inside the bucket mount"):
        repo.checkout(dataset_repo, "dataset_v1", mount / "v1")
    with pytest.raises(ConfigError, match="inside the bucket mount"):
        snapshot.snapshot(mount / "out", "any", "imagefolder",
                          labelconfig.parse_config(labelconfig.build_config("image-classification", ["a"])))
    out = run_cli("checkout", "dataset_v1", str(mount / "v1"), "--repo", str(dataset_repo),
                  env={common.MOUNT_ENV: str(mount)})
    assert out.returncode == ConfigError.exit_code and out.stderr.startswith("error: refusing to write into")
    with pytest.raises(NotFound, match="no dataset version"):
        repo.checkout(dataset_repo, "dataset_v9", tmp_path / "v9")
    with pytest.raises(ConfigError, match="not a dataset repository"):
        repo.list_versions(tmp_path)


def test_diff_of_manifests():
    old = {"label_config_digest": "a", "items": [
        {"source": "gs://b/1.png", "labels": ["cat"]}, {"source": "gs://b/2.png", "labels": ["dog"]},
        {"source": "gs://b/3.png", "labels": ["cat", "dog"]}]}
    new = {"label_config_digest": "a", "items": [
        {"source": "gs://b/2.png", "labels": ["cat"]}, {"source": "gs://b/3.png", "labels": ["dog", "cat"]},
        {"source": "gs://b/4.png", "labels": ["dog"]}]}
    out = repo.diff_manifests(old, new)
    assert out["added"] == ["gs://b/4.png"]
    assert out["removed"] == ["gs://b/1.png"]
    assert out["relabeled"] == [{"source": "gs://b/2.png", "old": ["dog"], "new": ["cat"]}]
    assert out["label_config_changed"] is False
    assert repo.diff_manifests(old, {**new, "label_config_digest": "b"})["label_config_changed"] is True


def test_the_dvc_files_are_read_as_dvc_reads_them(tmp_path):
    """A repository made by DVC's own commands: its remote's endpoint (from the repository and the local level)
    and its .dvc file's hash; a file DVC cannot read or that tracks nothing gives None, never a wrong value."""
    tool = [sys.executable, "-m", "dvc"]
    for cmd in (["git", "init", "-q"], [*tool, "init", "-q"], [*tool, "remote", "add", "-d", "store", "gs://b/s"],
                [*tool, "remote", "modify", "--local", "store", "endpointurl", "http://127.0.0.1:9"]):
        subprocess.run(cmd, cwd=tmp_path, env=repo.tool_env(), check=True, capture_output=True)
    assert repo.remote_endpoint(tmp_path) == "http://127.0.0.1:9"  # config.local counts, as for dvc itself
    assert repo.remote_endpoint(tmp_path / "nowhere") is None
    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset" / "a.txt").write_text("a")
    subprocess.run([*tool, "add", "-q", "dataset"], cwd=tmp_path, env=repo.tool_env(), check=True, capture_output=True)
    text = (tmp_path / "dataset.dvc").read_text()
    assert repo.dvcfile_hash(text).endswith(".dir") and repo.dvcfile_hash(text) in text
    # `md5:` in a comment or a nested key is not the output's hash
    assert repo.dvcfile_hash("# md5: 0123\nouts:\n- path: dataset\n  meta:\n    md5: 99\n") is None
    assert repo.dvcfile_hash("outs: [") is None and repo.dvcfile_hash("") is None


def test_tags_and_help(dataset_repo):
    assert repo.next_tag(dataset_repo) == "dataset_v1"
    with pytest.raises(ConfigError, match="not a valid tag name"):
        publish.check_tag_name(dataset_repo, "bad tag")
    assert repo.list_versions(dataset_repo) == []
    config = (dataset_repo / ".dvc" / "config").read_text()
    assert "analytics = false" in config and "gs://" in config and "endpointurl" in config
    for command in ("init", "snapshot", "commit", "versions", "diff", "checkout"):
        out = run_cli(command, "--help")
        assert out.returncode == 0 and "Example: dataversion" in out.stdout


@pytest.mark.parametrize("evil", ["../../secret.json", "images_unlabeled/../../../secret.json", "/etc/passwd",
                                  "..\\..\\secret.json", "images_unlabeled/../../secret.json"])
def test_object_keys_never_lead_outside_the_mount_or_the_dataset(bucket, tmp_path, digits_config, dataset_repo,
                                                                 evil):
    """A task whose image URL climbs out of the bucket (`..`, an absolute path, backslashes) stops the snapshot
    with one line, from the mount and from the API alike: nothing outside the mount is read, nothing written."""
    (tmp_path / "secret.json").write_text('{"private_key": "do not copy me"}')
    mount = tmp_path / "mnt" / "bucket"
    (mount / "labels").mkdir(parents=True)
    (mount / "images_unlabeled").mkdir()
    good = {"id": 1, "data": {"image": f"gs://{bucket.name}/images_unlabeled/ok.png"},
            "annotations": [{"id": 11, "result": choice("3")}]}
    bad = {"id": 2, "data": {"image": f"gs://{bucket.name}/{evil}"}, "annotations": [{"id": 12, "result": choice("4")}]}
    (mount / "images_unlabeled" / "ok.png").write_bytes(b"\x89PNG fake")
    for task in (good, bad):
        (mount / "labels" / str(task["id"])).write_text(json.dumps(task))
        bucket.blob(f"labels/{task['id']}").upload_from_string(json.dumps(task))
    bucket.blob("images_unlabeled/ok.png").upload_from_string(b"\x89PNG fake")
    config = labelconfig.parse_config(digits_config.read_text())
    out_dir = dataset_repo / "dataset"
    for mount_arg in (mount, None):  # the gcsfuse mount, then the GCS API
        with pytest.raises(ConfigError, match="unsafe object key"):
            snapshot.snapshot(out_dir, bucket.name, "imagefolder", config, mount=mount_arg)
        assert not out_dir.exists()
        assert not [p for p in dataset_repo.rglob("secret.json")]
    # the CLI says it in one line, exit 2
    out = run_cli("snapshot", "--repo", str(dataset_repo), "--bucket", bucket.name, "--label-config",
                  str(digits_config), "--mount", str(mount))
    assert out.returncode == 2 and out.stderr.startswith("error: unsafe object key"), out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_a_prefix_that_climbs_out_of_the_mount_is_refused(bucket, tmp_path, digits_config, dataset_repo):
    mount = tmp_path / "mnt"
    (mount / "labels").mkdir(parents=True)
    (mount / "labels" / "1").write_text("{}")
    config = labelconfig.parse_config(digits_config.read_text())
    with pytest.raises(ConfigError, match="unsafe object key"):
        snapshot.snapshot(dataset_repo / "dataset", bucket.name, "imagefolder", config, mount=mount,
                          labels_prefix="../")
