"""Bad input across both CLIs and docker-shell.sh, as a hostile or careless user types it.

Each case must give one `error:` line naming what to fix, the documented exit code (datalabel.errors.EXIT_CODES)
and no traceback, and must change nothing: the state of the bucket, of Label Studio, of the dataset repository's
git refs and of the files around is recorded before and compared after (checked, not assumed).
"""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_helpers import CliResult, assert_user_error, run_cli
from versioning_helpers import annotate, sync, tasks_by_image

from datalabel import embedded, labelconfig, ls, samples
from dataversion import repo

ROOT = Path(__file__).resolve().parent.parent
MISSING = 987654  # an id no project or storage has


@dataclass
class World:
    root: Path
    bucket: str
    project: int
    repo: Path
    cwd: Path
    env: dict


@pytest.fixture(scope="module")
def world(label_studio, ls_client, storage_client, gcs_emulator, tmp_path_factory) -> World:
    """A bucket with images and labels, a project with both storages, a dataset repository with dataset_v1, and
    the files the cases point at."""
    root = tmp_path_factory.mktemp("bad-input")
    name = f"bad-{uuid.uuid4().hex[:10]}"
    storage_client.create_bucket(name)
    pid = embedded.seed_demo(ls_client, name, root / "samples", limit=4, title=f"bad input {name}")
    truth = samples.read_truth(root / "samples")
    for image, task in sorted(tasks_by_image(ls_client, pid).items())[:2]:
        annotate(ls_client, task.id, truth[image])
    sync(ls_client, pid, "target")
    path = root / "datasets"
    repo.init(path, name, endpoint=gcs_emulator.url, jobs=4)
    env = {**label_studio.env(name), "DATASET_REPO": str(path)}
    for args in (["snapshot", "--project", str(pid)], ["commit", "-m", "v1"]):
        done = run_cli(*args, env=env, module="dataversion")
        assert done.ok, done

    # labels whose media is not in a bucket (an http URL): a dataset of them would have no images
    odd = {"id": 99, "data": {"image": "http://example.com/x.png"}, "annotations": [{"id": 99, "result": [
        {"type": "choices", "from_name": "choice", "to_name": "image", "value": {"choices": ["3"]}}]}]}
    storage_client.bucket(name).blob("odd-labels/99").upload_from_string(json.dumps(odd))
    files = root / "files"
    files.mkdir()
    (files / "config.xml").write_text(labelconfig.build_config("image-classification", samples.DIGIT_LABELS))
    (files / "boxes.xml").write_text(labelconfig.build_config("object-detection", ["car", "cat"]))
    (files / "broken.xml").write_text("<View><Image name='i' value='$image'>")
    (files / "empty.json").write_text("  \n")
    (files / "broken.json").write_text('[{"id": 1, "data": {"image": "gs://b/x.png"}, "annotations": [')
    (files / "export.json").write_text(json.dumps([{"id": 1, "data": {"image": f"gs://{name}/images_unlabeled/x.png"},
                                                    "annotations": []}]))
    (files / "not-json-key.json").write_text("{not json")
    (files / "partial-key.json").write_text(json.dumps({"type": "service_account", "client_email": "a@b.c"}))
    (files / "model.json").write_bytes(pickle.dumps({"not": "a model"}))
    (files / "predictions.jsonl").write_text("{not json}\n")
    (files / "zero").mkdir()
    (files / "zero" / "a.png").write_bytes(b"")
    (files / "fake").mkdir()
    (files / "fake" / "b.png").write_text("<html>not an image</html>")
    (files / "upload").mkdir()
    (files / "upload" / "notes.txt").write_text("not an image")
    (files / "empty-dir").mkdir()
    (files / "full-dir").mkdir()
    (files / "full-dir" / "keep.txt").write_text("someone's file")
    # files a careless user or an attacker points at: other encodings, binary, deep, huge, wrong shapes
    binary = bytes(range(256)) * 8
    (files / "binary.dat").write_bytes(binary)
    (files / "utf16.json").write_bytes('[{"id": 1, "data": {"image": "gs://b/x.png"}}]'.encode("utf-16"))
    (files / "utf16.xml").write_bytes(labelconfig.build_config("image-classification", ["a", "b"]).encode("utf-16"))
    (files / "utf16.txt").write_bytes("a\nb\n".encode("utf-16"))
    (files / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (files / "deep.jsonl").write_text("[" * 100_000 + "]" * 100_000 + "\n")
    with open(files / "huge.txt", "wb") as fp:  # sparse: larger than any file a person gives, no disk used
        fp.truncate(17 << 20)
    task = {"id": 1, "data": {"image": f"gs://{name}/images_unlabeled/x.png"}, "annotations": []}
    (files / "garbage.json").write_text(json.dumps([task]) + " GARBAGE")
    (files / "garbage-inside.json").write_text(json.dumps([task]) + "] GARBAGE ]")
    (files / "lines-garbage.json").write_text(json.dumps(task) + "\nGARBAGE\n")
    (files / "wrong-types.json").write_text(json.dumps([{"id": "x", "data": 5, "annotations": "no"}]))
    (files / "data-list.json").write_text(json.dumps([{"id": 1, "data": [1]}]))
    (files / "result-number.json").write_text(json.dumps([{**task, "annotations": [{"id": 1, "result": 5}]}]))
    (files / "region-number.json").write_text(json.dumps([{**task, "annotations": [{"id": 1, "result": [1]}]}]))
    (files / "nan-id.json").write_text(json.dumps([task]).replace('"id": 1', '"id": NaN'))
    (files / "inf-score.json").write_text(json.dumps([{**task, "annotations": [{"id": 1, "result": [
        {"type": "choices", "from_name": "choice", "to_name": "image", "value": {"choices": ["3"]}}]}]}])
        .replace('"id": 1, "result"', '"id": 1, "lead_time": Infinity, "result"'))
    (files / "number.json").write_text("5")
    (files / "list-key.json").write_text("[1]")
    (files / "nan-predictions.jsonl").write_text('{"path": "x.png", "label": "3", "score": NaN}\n')
    (files / "dangling").symlink_to(root / "nowhere" / "x")
    (files / "linked-dir").symlink_to(files / "empty-dir")
    for folder, content in (("binary-env", binary), ("utf16-env", "GCS_BUCKET_NAME=x\n".encode("utf-16"))):
        (root / folder).mkdir()
        (root / folder / ".env").write_bytes(content)
    # dataset repositories whose dataset/manifest.json is not one `dataversion snapshot` writes
    for kind, content in (("list", b"[1]"), ("binary", binary), ("deep", b"[" * 100_000 + b"]" * 100_000),
                          ("nan", b'{"items": [], "counts": {"items": NaN}}')):
        other = root / f"manifest-{kind}"
        repo.init(other, name, endpoint=gcs_emulator.url, jobs=4)
        (other / "dataset").mkdir(exist_ok=True)
        (other / "dataset" / "manifest.json").write_bytes(content)
    cwd = root / "cwd"
    cwd.mkdir()
    return World(root, name, pid, path, cwd, env)


def state(w: World, ls_client, storage_client) -> dict:
    """Everything a failed command must leave as it was."""
    bkt = storage_client.get_bucket(w.bucket)
    projects = sorted((p.id, p.title, p.task_number) for p in ls_client.projects.list())
    storages = {kind: sorted(s.id for s in ls.list_storages(ls_client, w.project, kind)) for kind in ("source", "target")}
    git = subprocess.run(["git", "for-each-ref", "--format=%(refname) %(objectname)"], cwd=w.repo, text=True,
                         capture_output=True, env=repo.tool_env()).stdout
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=w.repo, text=True, capture_output=True).stdout
    tree = sorted((str(p.relative_to(w.root)), p.stat().st_size, p.stat().st_mtime_ns) for p in w.root.rglob("*")
                  if p.is_file() and ".git" not in p.parts and "tmp" not in p.relative_to(w.root).parts[:3])
    return {"blobs": sorted((b.name, b.generation) for b in storage_client.list_blobs(w.bucket)),
            "buckets": sorted(b.name for b in storage_client.list_buckets()), "cors": bkt.cors,
            "projects": projects, "storages": storages, "refs": git, "head": head, "files": tree,
            "repo_files": subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, text=True,
                                         capture_output=True).stdout,
            # what a start of the stack would leave in the checkout (both git-ignored)
            "stack": sorted(p.name for p in (ROOT / ".stack").glob("*")) + sorted(p.name for p in
                                                                               (ROOT / "secrets").glob("*"))}


# (id, program, arguments, extra environment, what the message must name, exit code). In arguments, {bucket},
# {project}, {repo}, {files} and {missing} are filled in from the world.
CASES = [
    # --- datalabel: where Label Studio is, and the token ---------------------------------------------------------
    ("url-not-a-url", "datalabel", ["status"], {"LABEL_STUDIO_URL": "not a url"}, "not an http(s) URL", 2),
    ("url-bad-port", "datalabel", ["status"], {"LABEL_STUDIO_URL": "http://127.0.0.1:99999"}, "invalid port", 2),
    ("url-unreachable", "datalabel", ["status"], {"LABEL_STUDIO_URL": "http://127.0.0.1:9"}, "cannot reach", 3),
    ("token-wrong", "datalabel", ["status"], {"LABEL_STUDIO_API_KEY": "0" * 40}, "refused the API token", 2),
    ("token-newline", "datalabel", ["status"], {"LABEL_STUDIO_API_KEY": "abc\ndef"}, "line break", 2),
    ("token-empty", "datalabel", ["status"], {"LABEL_STUDIO_API_KEY": ""}, "no Label Studio API token", 2),
    ("token-file-empty", "datalabel", ["status"], {"LABEL_STUDIO_API_KEY": "", "LABEL_STUDIO_API_KEY_FILE":
                                                   "{files}/empty.json"}, "no Label Studio API token", 2),
    # --- projects ----------------------------------------------------------------------------------------------
    ("project-show-unknown", "datalabel", ["projects", "show", "{missing}"], {}, "does not exist", 4),
    ("project-delete-unknown", "datalabel", ["projects", "delete", "{missing}", "--yes"], {}, "does not exist", 4),
    ("project-title-short", "datalabel", ["projects", "create", "--title", "ab", "--template",
                                          "image-classification", "--labels", "a,b"], {}, "title must be", 2),
    ("project-template-unknown", "datalabel", ["projects", "create", "--title", "Fine title", "--template", "nope",
                                               "--labels", "a"], {}, "unknown template", 2),
    ("project-config-broken", "datalabel", ["projects", "create", "--title", "Fine title", "--config",
                                            "{files}/broken.xml"], {}, "invalid label config", 2),
    ("project-config-missing", "datalabel", ["projects", "create", "--title", "Fine title", "--config",
                                             "{files}/nope.xml"], {}, "nope.xml", 4),
    ("project-labels-none", "datalabel", ["projects", "create", "--title", "Fine title", "--template",
                                          "image-classification"], {}, "labels", 2),
    # --- storage -----------------------------------------------------------------------------------------------
    ("storage-list-unknown", "datalabel", ["storage", "list", "{missing}"], {}, "does not exist", 4),
    ("storage-source-escape", "datalabel", ["storage", "add-source", "{project}", "--prefix", "../escape/"], {},
     "unsafe", 2),
    ("storage-target-escape", "datalabel", ["storage", "add-target", "{project}", "--prefix", "../escape/"], {},
     "unsafe", 2),
    ("storage-bucket-invalid", "datalabel", ["storage", "add-source", "{project}", "--bucket", "Bad Bucket!"], {},
     "not a valid bucket name", 2),
    ("storage-bucket-missing", "datalabel", ["storage", "add-source", "{project}", "--bucket", "missing-b-{missing}"],
     {}, "does not exist", 4),
    ("storage-regex-invalid", "datalabel", ["storage", "add-source", "{project}", "--regex", "("], {},
     "invalid --regex", 2),
    ("storage-sync-direction", "datalabel", ["storage", "sync", "{project}", "--direction", "sideways"], {},
     "unknown direction", 2),
    ("storage-remove-unknown", "datalabel", ["storage", "remove", "{project}", "--id", "{missing}"], {},
     "no matching storage", 4),
    ("storage-remove-unsaid", "datalabel", ["storage", "remove", "{project}"], {}, "say which storage", 2),
    ("storage-project-unknown", "datalabel", ["storage", "add-source", "{missing}"], {}, "does not exist", 4),
    # --- bucket ------------------------------------------------------------------------------------------------
    ("upload-prefix-escape", "datalabel", ["bucket", "upload", "{files}/upload", "--prefix", "../../up/"], {},
     "unsafe", 2),
    ("upload-prefix-absolute", "datalabel", ["bucket", "upload", "{files}/upload", "--prefix", "a/../../b/"], {},
     "unsafe", 2),
    ("upload-folder-missing", "datalabel", ["bucket", "upload", "{files}/nope"], {}, "not a folder", 2),
    ("upload-folder-empty", "datalabel", ["bucket", "upload", "{files}/empty-dir"], {}, "no files", 4),
    ("upload-zero-bytes", "datalabel", ["bucket", "upload", "{files}/zero"], {}, "0 bytes", 2),
    ("upload-not-an-image", "datalabel", ["bucket", "upload", "{files}/fake"], {}, "not a PNG image", 2),
    ("bucket-name-invalid", "datalabel", ["bucket", "info", "--bucket", "Bad Bucket!"], {},
     "not a valid bucket name", 2),
    ("bucket-name-short", "datalabel", ["bucket", "info", "--bucket", "ab"], {}, "not a valid bucket name", 2),
    ("bucket-missing", "datalabel", ["bucket", "info", "--bucket", "missing-b-{missing}"], {}, "does not exist", 4),
    ("cors-origin-word", "datalabel", ["bucket", "cors", "set", "--origin", "not an origin"], {},
     "not a browser origin", 2),
    ("cors-origin-path", "datalabel", ["bucket", "cors", "set", "--origin", "https://x.example/app"], {},
     "not a browser origin", 2),
    ("cors-remove-scheme", "datalabel", ["bucket", "cors", "remove", "--origin", "ftp://x.example"], {},
     "not a browser origin", 2),
    ("cors-remove-both", "datalabel", ["bucket", "cors", "remove", "--all", "--origin", "http://a.example"], {},
     "not both", 2),
    # --- setup -------------------------------------------------------------------------------------------------
    ("setup-key-not-json", "datalabel", ["setup", "--title", "Bad key setup", "--template", "image-classification",
                                         "--labels", "a,b", "--credentials", "{files}/not-json-key.json"], {},
     "not JSON", 2),
    ("setup-key-partial", "datalabel", ["setup", "--title", "Bad key setup", "--template", "image-classification",
                                        "--labels", "a,b", "--credentials", "{files}/partial-key.json"], {},
     "lacks", 2),
    ("setup-key-missing", "datalabel", ["setup", "--title", "Bad key setup", "--template", "image-classification",
                                        "--labels", "a,b", "--credentials", "{files}/nope.json"], {}, "not found", 4),
    ("setup-prefix-escape", "datalabel", ["setup", "--title", "Bad prefix setup", "--template",
                                          "image-classification", "--labels", "a,b", "--target-prefix", "../x/"], {},
     "unsafe", 2),
    ("setup-upload-missing", "datalabel", ["setup", "--title", "Bad upload setup", "--template",
                                           "image-classification", "--labels", "a,b", "--upload", "{files}/nope"], {},
     "not a folder", 2),
    ("setup-bucket-missing", "datalabel", ["setup", "--title", "Bad bucket setup", "--template",
                                           "image-classification", "--labels", "a,b", "--bucket", "missing-b-{missing}"],
     {}, "does not exist", 4),
    # --- stats -------------------------------------------------------------------------------------------------
    ("stats-unknown", "datalabel", ["stats", "{missing}"], {}, "does not exist", 4),
    ("stats-policy", "datalabel", ["stats", "{project}", "--policy", "loudest"], {}, "unknown --policy", 2),
    ("stats-not-a-number", "datalabel", ["stats", "three"], {}, "valid integer", 2),
    ("stats-cache-alone", "datalabel", ["stats", "{project}", "--cache", "{files}/c.sqlite"], {},
     "--cache goes with --incremental", 2),
    ("stats-cache-unwritable", "datalabel", ["stats", "{project}", "--incremental", "--cache",
                                             "{files}/model.json/c.sqlite"], {}, "model.json", 1),
    # --- export ------------------------------------------------------------------------------------------------
    ("convert-format", "datalabel", ["export", "convert", "-f", "nope", "-o", "{files}/out", "--from-file",
                                     "{files}/export.json", "--config", "{files}/config.xml"], {}, "unknown format", 2),
    ("convert-empty-file", "datalabel", ["export", "convert", "-f", "csv", "-o", "{files}/out", "--from-file",
                                         "{files}/empty.json", "--config", "{files}/config.xml", "--no-images"], {},
     "is empty", 1),
    ("convert-broken-json", "datalabel", ["export", "convert", "-f", "csv", "-o", "{files}/out", "--from-file",
                                          "{files}/broken.json", "--config", "{files}/config.xml", "--no-images"], {},
     "JSON", 1),
    ("convert-file-missing", "datalabel", ["export", "convert", "-f", "csv", "-o", "{files}/out", "--from-file",
                                           "{files}/nope.json", "--config", "{files}/config.xml"], {}, "does not exist",
     4),
    ("convert-out-unwritable", "datalabel", ["export", "convert", "-f", "csv", "-o", "/proc/nope/out", "--from-file",
                                             "{files}/export.json", "--config", "{files}/config.xml", "--no-images",
                                             "--allow-empty"], {}, "/proc/nope", 1),
    ("convert-out-not-ours", "datalabel", ["export", "convert", "-f", "csv", "-o", "{files}/full-dir", "--from-file",
                                           "{files}/export.json", "--config", "{files}/config.xml", "--no-images",
                                           "--allow-empty"], {}, "full-dir", 1),
    ("convert-prefix-escape", "datalabel", ["export", "convert", "-f", "csv", "-o", "{files}/out", "--prefix",
                                            "../../", "--config", "{files}/config.xml", "--no-images"], {}, "unsafe", 2),
    ("convert-prefix-nothing", "datalabel", ["export", "convert", "-f", "csv", "-o", "{files}/out", "--prefix",
                                             "nothing-here/", "--config", "{files}/config.xml", "--no-images"], {},
     "no annotation files", 4),
    ("convert-frame-size", "datalabel", ["export", "convert", "-f", "mot", "-o", "{files}/out", "--from-file",
                                         "{files}/export.json", "--config", "{files}/boxes.xml", "--frame-size", "0x10"],
     {}, "frame-size", 2),
    ("convert-policy", "datalabel", ["export", "convert", "-f", "csv", "-o", "{files}/out", "--from-file",
                                     "{files}/export.json", "--config", "{files}/config.xml", "--policy", "loudest"],
     {}, "policy", 2),
    ("convert-format-misfit", "datalabel", ["export", "convert", "-f", "yolo", "-o", "{files}/out", "--from-file",
                                            "{files}/export.json", "--config", "{files}/config.xml"], {}, "choose one of",
     2),
    ("convert-two-sources", "datalabel", ["export", "convert", "-f", "csv", "-o", "{files}/out", "--from-file",
                                          "{files}/export.json", "--prefix", "labels/", "--config",
                                          "{files}/config.xml"], {}, "give one source", 2),
    ("watch-interval", "datalabel", ["export", "watch", "-f", "csv", "-o", "{files}/out", "--prefix", "labels/",
                                     "--config", "{files}/config.xml", "--interval", "-1"], {}, "interval", 2),
    ("export-api-unknown", "datalabel", ["export", "api", "--project", "{missing}", "-o", "{files}/p.json"], {},
     "not found", 4),
    # --- active learning ---------------------------------------------------------------------------------------
    ("al-split-unknown", "datalabel", ["al", "split", "--project", "{missing}"], {}, "not found", 4),
    ("al-split-fractions", "datalabel", ["al", "split", "--project", "{project}", "--valid", "0.6", "--test", "0.6"],
     {}, "split fractions", 2),
    ("al-select-strategy", "datalabel", ["al", "select", "--project", "{project}", "-s", "loudest"], {}, "strategy", 2),
    ("al-serve-port", "datalabel", ["al", "serve", "--port", "99999"], {}, "port", 2),
    ("al-model-missing", "datalabel", ["al", "preannotate", "--project", "{project}", "--model",
                                       "{files}/nope.json"], {}, "model file not found", 4),
    ("al-model-pickle", "datalabel", ["al", "preannotate", "--project", "{project}", "--model",
                                      "{files}/model.json"], {}, "not a model saved by", 1),
    ("al-predictions-broken", "datalabel", ["al", "preannotate", "--project", "{project}", "--from",
                                            "{files}/predictions.jsonl"], {}, "not JSON", 1),
    # --- dataversion -------------------------------------------------------------------------------------------
    ("init-bucket-invalid", "dataversion", ["init", "--repo", "{files}/new-repo", "--bucket", "Bad Bucket!"], {},
     "not a valid bucket name", 2),
    ("init-endpoint", "dataversion", ["init", "--repo", "{files}/new-repo", "--endpoint", "not a url"], {},
     "not an http(s) URL", 2),
    ("init-repo-unwritable", "dataversion", ["init", "--repo", "/proc/nope"], {}, "/proc/nope", 1),
    # a bucket that does not exist: refused before the repository is written (else the first commit fails)
    ("init-bucket-missing", "dataversion", ["init", "--repo", "{files}/new-repo", "--bucket", "missing-{missing}"], {},
     "does not exist", 4),
    ("init-remote-prefix", "dataversion", ["init", "--repo", "{files}/new-repo", "--remote-prefix", "../x"], {},
     "unsafe", 2),
    ("diff-option-as-rev", "dataversion", ["diff", "--", "--output=pwned", "dataset_v1"], {}, "not a version name", 2),
    ("checkout-option-as-rev", "dataversion", ["checkout", "--", "--output=pwned", "{files}/co"], {},
     "not a version name", 2),
    ("diff-unknown-tag", "dataversion", ["diff", "dataset_v1", "dataset_v99"], {}, "no dataset version", 4),
    ("checkout-unknown-tag", "dataversion", ["checkout", "dataset_v99", "{files}/co"], {}, "no dataset version", 4),
    ("checkout-not-empty", "dataversion", ["checkout", "dataset_v1", "{files}/full-dir"], {}, "not empty", 2),
    ("checkout-unwritable", "dataversion", ["checkout", "dataset_v1", "/proc/nope/x"], {}, "/proc/nope", 1),
    ("versions-not-a-repo", "dataversion", ["versions", "--repo", "{files}/empty-dir"], {}, "dataversion init", 2),
    ("snapshot-project-unknown", "dataversion", ["snapshot", "--project", "{missing}"], {}, "does not exist", 4),
    ("snapshot-format", "dataversion", ["snapshot", "--label-config", "{files}/config.xml", "--format", "nope"], {},
     "unknown format", 2),
    ("snapshot-prefix-escape", "dataversion", ["snapshot", "--label-config", "{files}/config.xml",
                                               "--labels-prefix", "../x/"], {}, "unsafe", 2),
    ("snapshot-media-not-in-bucket", "dataversion", ["snapshot", "--label-config", "{files}/config.xml",
                                                     "--labels-prefix", "odd-labels/", "--out", "{files}/odd"], {},
     "not in a gs:// bucket", 1),
    ("snapshot-config-broken", "dataversion", ["snapshot", "--label-config", "{files}/broken.xml"], {},
     "invalid label config", 2),
    # --- docker-shell.sh: refused before anything starts -------------------------------------------------------
    ("shell-unknown-arg", "shell", ["--bogus"], {}, "unknown argument", 2),
    ("shell-two-modes", "shell", ["--local", "--docker"], {}, "exclude each other", 2),
    ("shell-two-storages", "shell", ["--emulator", "--gcs"], {}, "exclude each other", 2),
    ("shell-local-gcs", "shell", ["--local", "--gcs"], {}, "needs the Docker stack", 2),
    ("shell-port", "shell", ["--local"], {"LABEL_STUDIO_PORT": "http"}, "port number", 2),
    ("shell-port-range", "shell", ["--local"], {"GCS_EMULATOR_PORT": "70000"}, "port number", 2),
    ("shell-demo-limit", "shell", ["--local"], {"DEMO_LIMIT": "-3"}, "DEMO_LIMIT", 2),
    ("shell-database", "shell", ["--local"], {"LS_DATABASE": "mysql"}, "LS_DATABASE", 2),
    ("shell-bucket", "shell", ["--local"], {"GCS_BUCKET_NAME": "Bad Bucket!"}, "not a valid bucket name", 2),
]


# Round 2 (issue 22): every example of the issue, then what a careless user or an attacker tries beyond it.
def convert_from(source: str, *more: str) -> list[str]:
    return ["export", "convert", "-f", "csv", "-o", "{files}/out", "--from-file", source, "--config",
            "{files}/config.xml", "--no-images", "--allow-empty", *more]


SETUP = ["setup", "--title", "Careless setup", "--template", "image-classification", "--labels", "a,b"]
CREATE = ["projects", "create", "--title", "Fine title"]
JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCIsImV4cCI6MTAwMDAwMDAwMCwianRpIjoiYW"
       "JjIiwidXNlcl9pZCI6MX0.c2lnbmF0dXJl")  # a refresh token that expired in 2001
NO_KEY = {"LABEL_STUDIO_API_KEY": ""}

CASES += [
    # --- the files a person points at: one reader, UTF-8, size and nesting limits ------------------------------
    ("convert-from-binary", "datalabel", convert_from("{files}/binary.dat"), {}, "binary.dat", 1),
    ("convert-from-utf16", "datalabel", convert_from("{files}/utf16.json"), {}, "utf16.json", 1),
    ("convert-from-deep", "datalabel", convert_from("{files}/deep.json"), {}, "too deep", 1),
    ("convert-from-garbage-after", "datalabel", convert_from("{files}/garbage.json"), {}, "does not end", 1),
    ("convert-from-garbage-inside", "datalabel", convert_from("{files}/garbage-inside.json"), {}, "after the JSON", 1),
    ("convert-from-lines-garbage", "datalabel", convert_from("{files}/lines-garbage.json"), {}, "does not end", 1),
    ("convert-from-wrong-types", "datalabel", convert_from("{files}/wrong-types.json"), {}, "not a Label Studio task",
     1),
    ("convert-from-data-list", "datalabel", convert_from("{files}/data-list.json"), {}, "not a Label Studio task", 1),
    ("convert-from-result-number", "datalabel", convert_from("{files}/result-number.json"), {},
     "not a Label Studio task", 1),
    ("convert-from-region-number", "datalabel", convert_from("{files}/region-number.json"), {}, "region", 1),
    ("convert-from-nan-id", "datalabel", convert_from("{files}/nan-id.json"), {}, "NaN", 1),
    ("convert-from-infinity", "datalabel", convert_from("{files}/inf-score.json"), {}, "Infinity", 1),
    ("convert-from-number", "datalabel", convert_from("{files}/number.json"), {}, "neither [ nor {", 1),
    ("convert-from-folder", "datalabel", convert_from("{files}/empty-dir"), {}, "does not exist", 4),
    ("convert-from-devnull", "datalabel", convert_from("/dev/null"), {}, "/dev/null", 4),
    ("convert-config-utf16", "datalabel", ["export", "convert", "-f", "csv", "-o", "{files}/out", "--from-file",
                                           "{files}/export.json", "--config", "{files}/utf16.xml"], {}, "UTF-8", 2),
    ("convert-config-binary", "datalabel", ["export", "convert", "-f", "csv", "-o", "{files}/out", "--from-file",
                                            "{files}/export.json", "--config", "{files}/binary.dat"], {}, "UTF-8", 2),
    ("convert-config-huge", "datalabel", ["export", "convert", "-f", "csv", "-o", "{files}/out", "--from-file",
                                          "{files}/export.json", "--config", "{files}/huge.txt"], {}, "larger than", 2),
    ("convert-config-folder", "datalabel", ["export", "convert", "-f", "csv", "-o", "{files}/out", "--from-file",
                                            "{files}/export.json", "--config", "{files}/empty-dir"], {}, "not found", 4),
    ("convert-output-empty", "datalabel", convert_from("{files}/export.json", "-o", ""), {}, "--output", 2),
    ("convert-output-dot", "datalabel", convert_from("{files}/export.json", "-o", "."), {}, "--output", 2),
    ("convert-workers-zero", "datalabel", convert_from("{files}/export.json", "--workers", "0"), {}, "--workers", 2),
    ("convert-workers-huge", "datalabel", convert_from("{files}/export.json", "--workers", "1" + "0" * 20), {},
     "--workers", 2),
    ("convert-frame-negative", "datalabel", convert_from("{files}/export.json", "--frame-size", "-1x5"), {},
     "frame-size", 2),
    ("convert-frame-words", "datalabel", convert_from("{files}/export.json", "--frame-size", "bigxsmall"), {},
     "frame-size", 2),
    ("convert-prefix-dot", "datalabel", ["export", "convert", "-f", "csv", "-o", "{files}/out", "--prefix", "a/./b/",
                                         "--config", "{files}/config.xml", "--no-images"], {}, "'.'", 2),
    ("convert-project-zero", "datalabel", ["export", "convert", "-f", "csv", "-o", "{files}/out", "--project", "0"], {},
     "--project", 2),
    ("project-config-utf16", "datalabel", [*CREATE, "--config", "{files}/utf16.xml"], {}, "UTF-8", 2),
    ("project-config-binary", "datalabel", [*CREATE, "--config", "{files}/binary.dat"], {}, "UTF-8", 2),
    ("project-config-huge", "datalabel", [*CREATE, "--config", "{files}/huge.txt"], {}, "larger than", 2),
    ("project-config-folder", "datalabel", [*CREATE, "--config", "{files}/empty-dir"], {}, "not found", 4),
    ("project-labels-file-binary", "datalabel", [*CREATE, "--template", "image-classification", "--labels-file",
                                                 "{files}/binary.dat"], {}, "labels file", 2),
    ("project-labels-file-utf16", "datalabel", [*CREATE, "--template", "image-classification", "--labels-file",
                                                "{files}/utf16.txt"], {}, "UTF-8", 2),
    ("project-labels-file-huge", "datalabel", [*CREATE, "--template", "image-classification", "--labels-file",
                                               "{files}/huge.txt"], {}, "larger than", 2),
    ("project-labels-file-missing", "datalabel", [*CREATE, "--template", "image-classification", "--labels-file",
                                                  "{files}/nope.txt"], {}, "labels file not found", 4),
    ("snapshot-config-utf16", "dataversion", ["snapshot", "--label-config", "{files}/utf16.xml"], {}, "UTF-8", 2),
    ("snapshot-config-binary", "dataversion", ["snapshot", "--label-config", "{files}/binary.dat"], {}, "UTF-8", 2),
    ("snapshot-config-missing", "dataversion", ["snapshot", "--label-config", "{files}/nope.xml"], {}, "not found", 4),
    ("al-from-binary", "datalabel", ["al", "preannotate", "--project", "{project}", "--from", "{files}/binary.dat"],
     {}, "UTF-8", 1),
    ("al-from-utf16", "datalabel", ["al", "preannotate", "--project", "{project}", "--from", "{files}/utf16.json"],
     {}, "UTF-8", 1),
    ("al-from-deep", "datalabel", ["al", "preannotate", "--project", "{project}", "--from", "{files}/deep.jsonl"],
     {}, "deeper than", 1),
    ("al-from-nan", "datalabel", ["al", "preannotate", "--project", "{project}", "--from",
                                  "{files}/nan-predictions.jsonl"], {}, "NaN", 1),
    ("al-from-missing", "datalabel", ["al", "preannotate", "--project", "{project}", "--from", "{files}/nope.jsonl"],
     {}, "not found", 4),
    ("token-file-binary", "datalabel", ["status"], {**NO_KEY, "LABEL_STUDIO_API_KEY_FILE": "{files}/binary.dat"},
     "LABEL_STUDIO_API_KEY_FILE", 2),
    ("token-file-utf16", "datalabel", ["status"], {**NO_KEY, "LABEL_STUDIO_API_KEY_FILE": "{files}/utf16.txt"},
     "UTF-8", 2),
    ("token-file-huge", "datalabel", ["status"], {**NO_KEY, "LABEL_STUDIO_API_KEY_FILE": "{files}/huge.txt"},
     "larger than", 2),
    ("token-file-folder", "datalabel", ["status"], {**NO_KEY, "LABEL_STUDIO_API_KEY_FILE": "{files}/empty-dir"},
     "no Label Studio API token", 2),
    ("dotenv-binary", "datalabel", ["status"], {"_cwd": "binary-env"}, ".env", 2),
    ("dotenv-binary-projects", "datalabel", ["projects", "list"], {"_cwd": "binary-env"}, ".env", 2),
    ("dotenv-utf16", "datalabel", ["status"], {"_cwd": "utf16-env"}, ".env", 2),
    ("dotenv-binary-dataversion", "dataversion", ["snapshot", "--label-config", "{files}/config.xml"],
     {"_cwd": "binary-env"}, ".env", 2),
    ("key-binary", "datalabel", [*SETUP, "--credentials", "{files}/binary.dat"], {}, "credentials file", 2),
    ("key-deep", "datalabel", [*SETUP, "--credentials", "{files}/deep.json"], {}, "deeper than", 2),
    ("key-list", "datalabel", [*SETUP, "--credentials", "{files}/list-key.json"], {}, "not a service-account key", 2),
    ("key-huge", "datalabel", [*SETUP, "--credentials", "{files}/huge.txt"], {}, "larger than", 2),
    ("storage-key-binary", "datalabel", ["storage", "add-source", "{project}", "--credentials", "{files}/binary.dat"],
     {}, "credentials file", 2),
    ("init-key-binary", "dataversion", ["init", "--repo", "{files}/new-repo"],
     {"GOOGLE_APPLICATION_CREDENTIALS": "{files}/binary.dat"}, "credentials file", 2),
    ("commit-manifest-list", "dataversion", ["commit", "-m", "x"], {"DATASET_REPO": "{root}/manifest-list"},
     "not a manifest", 1),
    ("commit-manifest-binary", "dataversion", ["commit", "-m", "x"], {"DATASET_REPO": "{root}/manifest-binary"},
     "UTF-8", 1),
    ("commit-manifest-deep", "dataversion", ["commit", "-m", "x"], {"DATASET_REPO": "{root}/manifest-deep"},
     "deeper than", 1),
    ("commit-manifest-nan", "dataversion", ["commit", "-m", "x"], {"DATASET_REPO": "{root}/manifest-nan"}, "NaN", 1),
    ("stats-cache-xml", "datalabel", ["stats", "{project}", "--incremental", "--cache", "{files}/config.xml"], {},
     "not a cache", 2),
    ("stats-cache-devnull", "datalabel", ["stats", "{project}", "--incremental", "--cache", "/dev/null"], {},
     "not a regular file", 2),
    ("stats-cache-folder", "datalabel", ["stats", "{project}", "--incremental", "--cache", "{files}/empty-dir"], {},
     "not a regular file", 2),
    ("watch-state-xml", "datalabel", ["export", "watch", "-f", "csv", "-o", "{files}/out", "--prefix", "labels/",
                                      "--config", "{files}/config.xml", "--state", "{files}/config.xml"], {},
     "not a cache", 2),
    ("watch-state-devnull", "datalabel", ["export", "watch", "-f", "csv", "-o", "{files}/out", "--prefix", "labels/",
                                          "--config", "{files}/config.xml", "--state", "/dev/null"], {},
     "not a regular file", 2),
    # --- where Label Studio is, and the token --------------------------------------------------------------------
    ("url-ipv6-open", "datalabel", ["status"], {"LABEL_STUDIO_URL": "http://[::1"}, "not an http(s) URL", 2),
    ("url-ftp", "datalabel", ["status"], {"LABEL_STUDIO_URL": "ftp://127.0.0.1"}, "not an http(s) URL", 2),
    ("url-no-host", "datalabel", ["status"], {"LABEL_STUDIO_URL": "http://"}, "not an http(s) URL", 2),
    ("url-space", "datalabel", ["status"], {"LABEL_STUDIO_URL": "http://127.0.0.1 :8080"}, "not an http(s) URL", 2),
    ("url-port-word", "datalabel", ["status"], {"LABEL_STUDIO_URL": "http://127.0.0.1:http"}, "invalid port", 2),
    ("url-ipv6-open-projects", "datalabel", ["projects", "list"], {"LABEL_STUDIO_URL": "http://[::1"},
     "not an http(s) URL", 2),
    ("url-ipv6-open-snapshot", "dataversion", ["snapshot", "--project", "{project}"],
     {"LABEL_STUDIO_URL": "http://[::1"}, "not an http(s) URL", 2),
    ("token-non-ascii", "datalabel", ["status"], {"LABEL_STUDIO_API_KEY": "t\u00f6ken\u00df"}, "LABEL_STUDIO_API_KEY",
     2),
    ("token-non-ascii-projects", "datalabel", ["projects", "list"], {"LABEL_STUDIO_API_KEY": "\u2603" * 40},
     "LABEL_STUDIO_API_KEY", 2),
    ("token-expired", "datalabel", ["status"], {"LABEL_STUDIO_API_KEY": JWT}, "expired", 2),
    ("token-expired-snapshot", "dataversion", ["snapshot", "--project", "{project}"], {"LABEL_STUDIO_API_KEY": JWT},
     "expired", 2),
    ("token-tab", "datalabel", ["status"], {"LABEL_STUDIO_API_KEY": "abc\tdef"}, "line break", 2),
    ("token-space", "datalabel", ["status"], {"LABEL_STUDIO_API_KEY": "abc def"}, "space", 2),
    ("token-control", "datalabel", ["status"], {"LABEL_STUDIO_API_KEY": "abc\x07def"}, "line break", 2),
    # --- exit 0 on nonsense, no more ------------------------------------------------------------------------------
    ("al-split-valid-nan", "datalabel", ["al", "split", "--project", "{project}", "--valid", "nan"], {}, "--valid", 2),
    ("al-split-valid-negative", "datalabel", ["al", "split", "--project", "{project}", "--valid", "-0.5"], {},
     "--valid", 2),
    ("al-split-valid-two", "datalabel", ["al", "split", "--project", "{project}", "--valid", "2"], {}, "--valid", 2),
    ("al-split-test-inf", "datalabel", ["al", "split", "--project", "{project}", "--test", "inf"], {}, "--test", 2),
    ("al-split-seed-negative", "datalabel", ["al", "split", "--project", "{project}", "--seed", "-1"], {}, "--seed", 2),
    ("al-split-seed-huge", "datalabel", ["al", "split", "--project", "{project}", "--seed", "9" * 30], {}, "--seed", 2),
    ("cors-star", "datalabel", ["bucket", "cors", "set", "--origin", "*"], {}, "every web site", 2),
    ("cors-star-host", "datalabel", ["bucket", "cors", "set", "--origin", "https://*.example.com"], {},
     "every web site", 2),
    ("cors-remove-star", "datalabel", ["bucket", "cors", "remove", "--origin", "*"], {}, "every web site", 2),
    ("cors-max-age-negative", "datalabel", ["bucket", "cors", "set", "--max-age", "-1"], {}, "--max-age", 2),
    ("cors-max-age-huge", "datalabel", ["bucket", "cors", "set", "--max-age", "1" + "0" * 20], {}, "--max-age", 2),
    ("cors-max-age-word", "datalabel", ["bucket", "cors", "set", "--max-age", "soon"], {}, "--max-age", 2),
    ("project-title-newline", "datalabel", ["projects", "create", "--title", "Fine\ntitle", "--template",
                                            "image-classification", "--labels", "a,b"], {}, "line break", 2),
    ("project-title-tab", "datalabel", ["projects", "create", "--title", "Fine\ttitle", "--template",
                                        "image-classification", "--labels", "a,b"], {}, "line break", 2),
    ("project-title-long", "datalabel", ["projects", "create", "--title", "x" * 51, "--template",
                                         "image-classification", "--labels", "a,b"], {}, "3 to 50", 2),
    ("setup-title-newline", "datalabel", ["setup", "--title", "Careless\nsetup", "--template", "image-classification",
                                          "--labels", "a,b"], {}, "line break", 2),
    ("setup-same-prefix", "datalabel", [*SETUP, "--source-prefix", "x/", "--target-prefix", "x/"], {}, "overlap", 2),
    ("setup-nested-prefix", "datalabel", [*SETUP, "--source-prefix", "imgs/", "--target-prefix", "imgs/labels/"], {},
     "overlap", 2),
    ("setup-whole-bucket-source", "datalabel", [*SETUP, "--source-prefix", "", "--target-prefix", "labels/"], {},
     "overlap", 2),
    ("setup-source-prefix-dot", "datalabel", [*SETUP, "--source-prefix", "a/./b/"], {}, "'.'", 2),
    ("setup-target-prefix-slashes", "datalabel", [*SETUP, "--target-prefix", "a//b/"], {}, "'.'", 2),
    ("upload-prefix-dot", "datalabel", ["bucket", "upload", "{files}/upload", "--prefix", "a/./b/"], {}, "'a/b/'", 2),
    ("upload-prefix-slashes", "datalabel", ["bucket", "upload", "{files}/upload", "--prefix", "a//b/"], {}, "'a/b/'",
     2),
    ("upload-prefix-padded", "datalabel", ["bucket", "upload", "{files}/upload", "--prefix", "a/ b /"], {}, "space", 2),
    ("storage-source-prefix-dot", "datalabel", ["storage", "add-source", "{project}", "--prefix", "a/./"], {}, "'.'",
     2),
    ("storage-target-prefix-slashes", "datalabel", ["storage", "add-target", "{project}", "--prefix", "a//b/"], {},
     "'.'", 2),
    ("snapshot-prefix-dot", "dataversion", ["snapshot", "--label-config", "{files}/config.xml", "--labels-prefix",
                                            "./labels/"], {}, "'.'", 2),
    ("export-api-output-empty", "datalabel", ["export", "api", "--project", "{project}", "-o", ""], {}, "--output", 2),
    ("export-api-output-exists", "datalabel", ["export", "api", "--project", "{project}", "-o", "{files}/config.xml"],
     {}, "--force", 2),
    ("export-api-output-folder", "datalabel", ["export", "api", "--project", "{project}", "-o", "{files}/full-dir"],
     {}, "folder", 2),
    ("export-api-timeout-negative", "datalabel", ["export", "api", "--project", "{project}", "-o", "{files}/p.json",
                                                  "--timeout", "-1"], {}, "--timeout", 2),
    ("export-api-timeout-nan", "datalabel", ["export", "api", "--project", "{project}", "-o", "{files}/p.json",
                                             "--timeout", "nan"], {}, "--timeout", 2),
    ("export-api-timeout-inf", "datalabel", ["export", "api", "--project", "{project}", "-o", "{files}/p.json",
                                             "--timeout", "inf"], {}, "--timeout", 2),
    ("export-api-project-zero", "datalabel", ["export", "api", "--project", "0", "-o", "{files}/p.json"], {},
     "--project", 2),
    ("watch-interval-nan", "datalabel", ["export", "watch", "-f", "csv", "-o", "{files}/out", "--prefix", "labels/",
                                         "--config", "{files}/config.xml", "--interval", "nan"], {}, "--interval", 2),
    ("watch-interval-inf", "datalabel", ["export", "watch", "-f", "csv", "-o", "{files}/out", "--prefix", "labels/",
                                         "--config", "{files}/config.xml", "--interval", "inf"], {}, "--interval", 2),
    ("watch-cycles-zero", "datalabel", ["export", "watch", "-f", "csv", "-o", "{files}/out", "--prefix", "labels/",
                                        "--config", "{files}/config.xml", "--cycles", "0"], {}, "--cycles", 2),
    ("watch-output-empty", "datalabel", ["export", "watch", "-f", "csv", "-o", "", "--prefix", "labels/",
                                         "--config", "{files}/config.xml"], {}, "--output", 2),
    ("init-jobs-zero", "dataversion", ["init", "--repo", "{files}/new-repo", "--jobs", "0"], {}, "--jobs", 2),
    ("init-jobs-negative", "dataversion", ["init", "--repo", "{files}/new-repo", "--jobs", "-4"], {}, "--jobs", 2),
    ("init-remote-prefix-empty", "dataversion", ["init", "--repo", "{files}/new-repo", "--remote-prefix", ""], {},
     "--remote-prefix", 2),
    ("init-remote-prefix-slash", "dataversion", ["init", "--repo", "{files}/new-repo", "--remote-prefix", "/"], {},
     "--remote-prefix", 2),
    ("init-remote-prefix-dot", "dataversion", ["init", "--repo", "{files}/new-repo", "--remote-prefix", "a/./b"], {},
     "'.'", 2),
    ("init-endpoint-ipv6-open", "dataversion", ["init", "--repo", "{files}/new-repo", "--endpoint", "http://[::1"],
     {}, "not an http(s) URL", 2),
    ("snapshot-concurrency-zero", "dataversion", ["snapshot", "--label-config", "{files}/config.xml",
                                                  "--concurrency", "0"], {}, "--concurrency", 2),
    ("snapshot-concurrency-negative", "dataversion", ["snapshot", "--label-config", "{files}/config.xml",
                                                      "--concurrency", "-1"], {}, "--concurrency", 2),
    ("snapshot-project-zero", "dataversion", ["snapshot", "--project", "0"], {}, "--project", 2),
    ("checkout-dangling-symlink", "dataversion", ["checkout", "dataset_v1", "{files}/dangling"], {}, "symbolic link",
     2),
    ("checkout-symlink-to-folder", "dataversion", ["checkout", "dataset_v1", "{files}/linked-dir"], {},
     "symbolic link", 2),
    ("checkout-into-file", "dataversion", ["checkout", "dataset_v1", "{files}/config.xml"], {}, "is a file", 2),
    # --- misleading before -------------------------------------------------------------------------------------
    ("project-delete-no-terminal", "datalabel", ["projects", "delete", "{project}"], {}, "--yes", 2),
    ("al-connect-file-url", "datalabel", ["al", "connect", "--project", "{project}", "--backend", "file:///etc/passwd"],
     {}, "--backend", 2),
    ("al-connect-no-host", "datalabel", ["al", "connect", "--project", "{project}", "--backend", "http://"], {},
     "--backend", 2),
    ("al-simulate-budget-negative", "datalabel", ["al", "simulate", "--budget", "-1", "--out", "{files}/sim"], {},
     "--budget", 2),
    ("project-labels-duplicate", "datalabel", [*CREATE, "--template", "image-classification", "--labels", "a,a"], {},
     "duplicated", 2),
    ("project-labels-empty", "datalabel", [*CREATE, "--template", "image-classification", "--labels", " , "], {},
     "no labels", 2),
    ("project-template-and-config", "datalabel", [*CREATE, "--template", "image-classification", "--labels", "a",
                                                  "--config", "{files}/config.xml"], {}, "not both", 2),
    # --- every number option in range ---------------------------------------------------------------------------
    ("project-show-zero", "datalabel", ["projects", "show", "0"], {}, "Invalid value", 2),
    ("project-show-huge", "datalabel", ["projects", "show", "9" * 20], {}, "Invalid value", 2),
    ("project-delete-zero", "datalabel", ["projects", "delete", "0", "--yes"], {}, "Invalid value", 2),
    ("project-overlap-annotators-zero", "datalabel", ["projects", "overlap", "{project}", "--annotators", "0"], {},
     "--annotators", 2),
    ("project-overlap-percent-over", "datalabel", ["projects", "overlap", "{project}", "--overlap-percent", "101"], {},
     "--overlap-percent", 2),
    ("project-annotators-huge", "datalabel", [*CREATE, "--template", "image-classification", "--labels", "a,b",
                                              "--annotators", "1000"], {}, "--annotators", 2),
    ("storage-list-zero", "datalabel", ["storage", "list", "0"], {}, "Invalid value", 2),
    ("storage-sync-id-zero", "datalabel", ["storage", "sync", "{project}", "--id", "0"], {}, "--id", 2),
    ("storage-remove-id-negative", "datalabel", ["storage", "remove", "{project}", "--id", "-3"], {}, "--id", 2),
    ("stats-zero", "datalabel", ["stats", "0"], {}, "Invalid value", 2),
    ("stats-huge", "datalabel", ["stats", "9" * 20], {}, "Invalid value", 2),
    ("upload-workers-zero", "datalabel", ["bucket", "upload", "{files}/upload", "--workers", "0"], {}, "--workers", 2),
    ("upload-workers-huge", "datalabel", ["bucket", "upload", "{files}/upload", "--workers", "100000"], {},
     "--workers", 2),
    ("setup-annotators-zero", "datalabel", [*SETUP, "--annotators", "0"], {}, "--annotators", 2),
    ("setup-overlap-negative", "datalabel", [*SETUP, "--overlap-percent", "-1"], {}, "--overlap-percent", 2),
    ("formats-project-zero", "datalabel", ["export", "formats", "--project", "0"], {}, "--project", 2),
    ("al-select-top-k-zero", "datalabel", ["al", "select", "--project", "{project}", "--top-k", "0"], {}, "--top-k", 2),
    ("al-select-max-score-nan", "datalabel", ["al", "select", "--project", "{project}", "--max-score", "nan"], {},
     "--max-score", 2),
    ("al-select-max-score-two", "datalabel", ["al", "select", "--project", "{project}", "--max-score", "2"], {},
     "--max-score", 2),
    ("al-select-project-negative", "datalabel", ["al", "select", "--project", "-1"], {}, "--project", 2),
    ("al-connect-wait-negative", "datalabel", ["al", "connect", "--project", "{project}", "--wait", "-1"], {},
     "--wait", 2),
    ("al-connect-wait-nan", "datalabel", ["al", "connect", "--project", "{project}", "--wait", "nan"], {}, "--wait", 2),
    ("al-serve-port-zero", "datalabel", ["al", "serve", "--port", "0"], {}, "--port", 2),
    ("al-simulate-initial-zero", "datalabel", ["al", "simulate", "--initial", "0", "--out", "{files}/sim"], {},
     "--initial", 2),
    ("al-simulate-step-zero", "datalabel", ["al", "simulate", "--step", "0", "--out", "{files}/sim"], {}, "--step", 2),
    ("al-simulate-repeats-zero", "datalabel", ["al", "simulate", "--repeats", "0", "--out", "{files}/sim"], {},
     "--repeats", 2),
    ("al-train-keep-zero", "datalabel", ["al", "train", "--project", "{project}", "--keep-models", "0"], {},
     "--keep-models", 2),
    ("al-train-keep-env", "datalabel", ["al", "train", "--project", "{project}"], {"DATALABEL_KEEP_MODELS": "-2"},
     "--keep-models", 2),
    ("quality-folds-one", "datalabel", ["quality", "mislabels", "--project", "{project}", "--folds", "1"], {},
     "--folds", 2),
    ("quality-limit-zero", "datalabel", ["quality", "mislabels", "--project", "{project}", "--limit", "0"], {},
     "--limit", 2),
    ("quality-seed-negative", "datalabel", ["quality", "mislabels", "--project", "{project}", "--seed", "-1"], {},
     "--seed", 2),
    ("quality-agreement-zero", "datalabel", ["quality", "agreement", "--project", "0"], {}, "--project", 2),
    ("demo-limit-zero", "datalabel", ["demo", "--limit", "0"], {}, "--limit", 2),
    ("demo-annotators-negative", "datalabel", ["demo", "--annotators", "-1"], {}, "--annotators", 2),
    # --- docker-shell.sh: refused before anything starts ---------------------------------------------------------
    ("shell-port-zero", "shell", ["--local"], {"LABEL_STUDIO_PORT": "0"}, "port number", 2),
    ("shell-port-negative", "shell", ["--local"], {"LABEL_STUDIO_PORT": "-1"}, "port number", 2),
    ("shell-port-float", "shell", ["--local"], {"LABEL_STUDIO_PORT": "80.5"}, "port number", 2),
    ("shell-port-octal", "shell", ["--local"], {"LABEL_STUDIO_PORT": "08"}, "port number", 2),
    ("shell-port-huge", "shell", ["--local"], {"LABEL_STUDIO_PORT": "9" * 20}, "port number", 2),
    ("shell-port-space", "shell", ["--local"], {"GCS_EMULATOR_PORT": "80 80"}, "port number", 2),
    ("shell-postgres-port", "shell", ["--local"], {"POSTGRES_PORT": "db"}, "port number", 2),
    ("shell-demo-limit-word", "shell", ["--local"], {"DEMO_LIMIT": "all"}, "DEMO_LIMIT", 2),
    ("shell-demo-limit-zero", "shell", ["--local"], {"DEMO_LIMIT": "0"}, "DEMO_LIMIT", 2),
    ("shell-demo-limit-huge", "shell", ["--local"], {"DEMO_LIMIT": "9" * 20}, "DEMO_LIMIT", 2),
    ("shell-bucket-upper", "shell", ["--local"], {"GCS_BUCKET_NAME": "MyBucket"}, "not a valid bucket name", 2),
    ("shell-two-modes-reversed", "shell", ["--docker", "--local"], {}, "exclude each other", 2),
    ("shell-postgres-sqlite", "shell", ["--postgres"], {"LS_DATABASE": "sqlite"}, "exclude each other", 2),
    ("shell-volumes-without-down", "shell", ["--volumes"], {}, "goes with down", 2),
    ("shell-dash-flag", "shell", ["-x"], {}, "unknown argument", 2),
]


def fill(value: str, w: World) -> str:
    return value.format(bucket=w.bucket, project=w.project, repo=w.repo, files=w.root / "files", missing=MISSING,
                        root=w.root)


def run(program: str, args: list[str], env: dict, cwd: Path) -> CliResult:
    if program == "shell":
        full = {**os.environ, "NO_SHELL": "1", **env}
        proc = subprocess.run(["bash", str(ROOT / "docker-shell.sh"), *args], env=full, cwd=cwd, text=True,
                              capture_output=True, timeout=60)
        return CliResult(["docker-shell.sh", *args], proc.returncode, proc.stdout, proc.stderr)
    return run_cli(*args, env=env, cwd=cwd, module=program, timeout=180)


def test_the_table_is_large_and_covers_every_program():
    assert len(CASES) >= 200 and len({c[0] for c in CASES}) == len(CASES)
    assert {c[1] for c in CASES} == {"datalabel", "dataversion", "shell"}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_the_right_code_and_changes_nothing(case, world, ls_client, storage_client):
    _, program, args, extra, message, code = case
    extra = dict(extra)
    cwd = world.root / extra.pop("_cwd") if "_cwd" in extra else world.cwd  # a folder with a ./.env in it
    env = {**world.env, **{k: fill(v, world) for k, v in extra.items()}}
    before = state(world, ls_client, storage_client)
    result = run(program, [fill(a, world) for a in args], env, cwd)
    assert_user_error(result, message, code=code)
    assert state(world, ls_client, storage_client) == before
