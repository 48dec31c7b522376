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
                                         capture_output=True).stdout}


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


def fill(value: str, w: World) -> str:
    return value.format(bucket=w.bucket, project=w.project, repo=w.repo, files=w.root / "files", missing=MISSING)


def run(program: str, args: list[str], env: dict, cwd: Path) -> CliResult:
    if program == "shell":
        full = {**os.environ, "NO_SHELL": "1", **env}
        proc = subprocess.run(["bash", str(ROOT / "docker-shell.sh"), *args], env=full, cwd=cwd, text=True,
                              capture_output=True, timeout=60)
        return CliResult(["docker-shell.sh", *args], proc.returncode, proc.stdout, proc.stderr)
    return run_cli(*args, env=env, cwd=cwd, module=program, timeout=180)


def test_the_table_is_large_and_covers_every_program():
    assert len(CASES) >= 60 and len({c[0] for c in CASES}) == len(CASES)
    assert {c[1] for c in CASES} == {"datalabel", "dataversion", "shell"}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_the_right_code_and_changes_nothing(case, world, ls_client, storage_client):
    _, program, args, extra, message, code = case
    env = {**world.env, **{k: fill(v, world) for k, v in extra.items()}}
    before = state(world, ls_client, storage_client)
    result = run(program, [fill(a, world) for a in args], env, world.cwd)
    assert_user_error(result, message, code=code)
    assert state(world, ls_client, storage_client) == before
