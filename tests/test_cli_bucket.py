"""`datalabel bucket ...` end to end against the GCS emulator: upload, info, CORS."""
from __future__ import annotations

import shutil
import uuid

from cli_helpers import assert_user_error, run_cli
from datalabel import gcs


def test_upload_skips_unchanged_files_and_info_counts_them(label_studio, bucket, digits_dir, tmp_path):
    env = label_studio.env(bucket.name)
    folder = tmp_path / "images"
    shutil.copytree(digits_dir / "images", folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    first = run_cli("bucket", "upload", folder, "--prefix", "images_unlabeled", "--json", env=env)
    assert first.ok, first
    assert first.json() == {"bucket": bucket.name, "prefix": "images_unlabeled/", "uploaded": len(files),
                            "skipped": 0, "total": len(files)}
    names = sorted(b.name for b in gcs.list_blobs(bucket, "images_unlabeled/"))
    assert names == sorted("images_unlabeled/" + p.relative_to(folder).as_posix() for p in files)
    assert bucket.blob(names[0]).download_as_bytes() == files[0].read_bytes()

    # change one file: only that one goes up again
    files[0].write_bytes(files[0].read_bytes() + b"\0")
    second = run_cli("bucket", "upload", folder, "--prefix", "images_unlabeled/", "--json", env=env)
    assert second.ok and (second.json()["uploaded"], second.json()["skipped"]) == (1, len(files) - 1), second

    info = run_cli("bucket", "info", "--prefix", "images_unlabeled/", "--json", env=env)
    assert info.ok, info
    data = info.json()
    assert data["bucket"] == bucket.name and data["objects"] == len(files)
    assert data["bytes"] == sum(p.stat().st_size for p in files)
    text = run_cli("bucket", "info", env=env)
    assert text.ok and f"gs://{bucket.name}" in text.stdout and "CORS origins: none" in text.stdout


def test_cors_changes_only_the_stacks_own_origin(label_studio, bucket, storage_client):
    env = label_studio.env(bucket.name)
    assert run_cli("bucket", "cors", "show", "--json", env=env).json() == []
    # another application already lets its own site read the bucket: that rule is never touched
    foreign = {"origin": ["https://viewer.example.org"], "method": ["GET"], "maxAgeSeconds": 60}
    stored = storage_client.get_bucket(bucket.name)
    stored.cors = [foreign]
    stored.patch()

    made = run_cli("bucket", "cors", "set", env=env)
    assert made.ok and label_studio.url in made.stdout, made
    rules = run_cli("bucket", "cors", "show", "--json", env=env).json()
    assert [r["origin"] for r in rules] == [foreign["origin"], [label_studio.url]]
    assert rules[0] == foreign and "*" not in str(rules) and set(rules[1]["method"]) == {"GET", "HEAD"}
    assert storage_client.get_bucket(bucket.name).cors == rules  # really stored on the bucket
    assert run_cli("bucket", "cors", "set", env=env).ok  # again: still one rule for the origin
    assert run_cli("bucket", "cors", "show", "--json", env=env).json() == rules

    other = run_cli("bucket", "cors", "set", "--origin", "https://labels.example.com/", "--origin",
                    "http://localhost:8080", "--json", env=env)
    assert other.ok and [r["origin"] for r in other.json()] == [
        foreign["origin"], [label_studio.url], ["https://labels.example.com", "http://localhost:8080"]]
    assert "labels.example.com" in run_cli("bucket", "info", env=env).stdout

    for bad in ("not an origin", "https://labels.example.com/app", "ftp://x.example", "https://"):
        assert_user_error(run_cli("bucket", "cors", "set", "--origin", bad, env=env), "not a browser origin", code=2)
    assert storage_client.get_bucket(bucket.name).cors == other.json()  # refused: nothing changed

    gone = run_cli("bucket", "cors", "remove", env=env)  # the Label Studio origin only
    assert gone.ok, gone
    left = storage_client.get_bucket(bucket.name).cors
    assert [r["origin"] for r in left] == [foreign["origin"], ["https://labels.example.com", "http://localhost:8080"]]
    assert run_cli("bucket", "cors", "remove", "--origin", "http://localhost:8080", env=env).ok
    assert [r["origin"] for r in storage_client.get_bucket(bucket.name).cors] == [
        foreign["origin"], ["https://labels.example.com"]]
    assert run_cli("bucket", "cors", "remove", "--all", env=env).ok
    assert run_cli("bucket", "cors", "show", env=env).stdout.strip() == "no CORS rules"
    assert storage_client.get_bucket(bucket.name).cors == []


def test_bucket_bad_input(label_studio, bucket, digits_dir, tmp_path):
    env = label_studio.env(bucket.name)
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    for args in (["info"], ["cors", "show"], ["cors", "set"], ["upload", digits_dir / "images"]):
        assert_user_error(run_cli("bucket", *args, "--bucket", missing, env=env), f"bucket {missing!r} does not exist",
                          code=4)
    assert missing not in [b.name for b in gcs.client().list_buckets()]
    assert_user_error(run_cli("bucket", "upload", tmp_path / "nope", env=env), "not a folder", code=2)
    no_bucket = {k: v for k, v in env.items() if k != "GCS_BUCKET_NAME"}
    assert_user_error(run_cli("bucket", "info", env=no_bucket), "GCS_BUCKET_NAME", code=2)
    bad_key = tmp_path / "key.json"
    bad_key.write_text("nope")
    assert_user_error(run_cli("bucket", "upload", digits_dir / "images", "--credentials", bad_key, env=env),
                      "not JSON", code=2)
    assert list(gcs.list_blobs(bucket)) == []
