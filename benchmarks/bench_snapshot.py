"""Snapshot speed: `dataversion snapshot` vs a sequential per-file download loop, same bucket, same run.

A GCS emulator is started here (free loopback port, data in a temp dir, stopped at the end) holding N images
under images_unlabeled/ and N target-storage JSON files under labels/, as Label Studio writes them.

- baseline: what the old tutorial tooling did, one file after another with google-cloud-storage: list labels/,
  download each JSON, download its image into <label>/<file> (ImageFolder), nothing else.
- snapshot: `dataversion.snapshot.snapshot` (what the CLI runs): the same files through gcsfs with several requests
  in flight, then the export library writes ImageFolder + labels.csv + manifest.json.
- warm: the snapshot again over the previous one, nothing changed in the bucket: images already in the folder
  are linked and unchanged annotation files (same generation) come from the label cache, not the bucket.

    .venv/bin/python benchmarks/bench_snapshot.py            # 2,000 labeled images
    .venv/bin/python benchmarks/bench_snapshot.py --quick    # 200

The emulator is seeded through its own storage layer before it starts: it rewrites its whole metadata file on
every upload, so seeding 4,000 objects over HTTP would take minutes and measure nothing of interest.
The last line printed is one JSON object.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "data-labeling"), str(ROOT / "data-versioning")]

import dataversion  # noqa: E402,F401  (gcsfs/DVC environment first)
from datalabel import embedded, gcs, labelconfig, samples  # noqa: E402

BUCKET = "bench-snapshot"
IMAGES = "images_unlabeled/"
LABELS = "labels/"


def make_objects(n: int) -> dict[str, tuple[bytes, str]]:
    """N digit PNGs and N target-storage task JSONs (shaped like Label Studio's), name -> (bytes, content type)."""
    import numpy as np
    from PIL import Image

    data = samples.digits_dataset()
    out = {}
    for i in range(n):
        k = i % len(data.images)
        pixels = (data.images[k] * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels, mode="L").resize((64, 64), Image.NEAREST).save(buf, format="PNG")
        name = f"img_{i:05d}.png"
        out[IMAGES + name] = (buf.getvalue(), "image/png")
        label = str(int(data.target[k]))
        stamp = "2026-11-21T12:00:00.000000Z"
        task = {
            "id": i + 1, "data": {"image": f"gs://{BUCKET}/{IMAGES}{name}"}, "meta": {}, "project": 1,
            "created_at": stamp, "updated_at": stamp, "is_labeled": True, "overlap": 1, "inner_id": i + 1,
            "annotations": [{
                "id": 10_000 + i, "completed_by": 1 + i % 3, "was_cancelled": False, "ground_truth": False,
                "created_at": stamp, "updated_at": stamp, "lead_time": 2.5, "task": i + 1, "project": 1,
                "result": [{"id": f"r{i}", "type": "choices", "from_name": "choice", "to_name": "image",
                            "origin": "manual", "value": {"choices": [label]}}]}],
            "predictions": [],
        }
        out[f"{LABELS}{i + 1}"] = (json.dumps(task).encode(), "application/json")
    return out


def seed_emulator(data_dir: Path, objects: dict[str, tuple[bytes, str]], base_url: str) -> None:
    """Write bucket + objects into an emulator data dir offline (one metadata write instead of one per object)."""
    from gcp_storage_emulator.handlers.objects import _checksums, _make_object_resource
    from gcp_storage_emulator.storage import Storage

    port = embedded.free_port()
    server = embedded.start_emulator(port, data_dir, log=data_dir.parent / "gcs-seed.log")
    try:
        os.environ["STORAGE_EMULATOR_HOST"] = server.url
        gcs.ensure_bucket(gcs.client(), BUCKET)  # the bucket resource exactly as the emulator makes it
    finally:
        server.stop()
    store = Storage(data_dir=str(data_dir))
    write_meta = store._write_config_to_file
    store._write_config_to_file = lambda: None
    for name, (body, ctype) in objects.items():
        obj = _checksums(body, _make_object_resource(base_url, BUCKET, name, ctype, str(len(body))))
        store.create_file(BUCKET, name, body, obj)
    write_meta()


def baseline(out: Path) -> int:
    """One file after another with google-cloud-storage, as the old tutorial's loop did."""
    client = gcs.client()
    bucket = client.bucket(BUCKET)
    count = 0
    for blob in client.list_blobs(BUCKET, prefix=LABELS):
        task = json.loads(blob.download_as_bytes())
        ann = task["annotations"][-1]
        label = ann["result"][0]["value"]["choices"][0]
        key = task["data"]["image"].split("/", 3)[3]
        dest = out / label / key.rsplit("/", 1)[-1]
        dest.parent.mkdir(parents=True, exist_ok=True)
        bucket.blob(key).download_to_filename(str(dest))
        count += 1
    return count


def run_snapshot(out: Path, config) -> tuple[int, dict]:
    from dataversion import snapshot

    cache = out.parent / "label-cache.sqlite"  # the CLI keeps it in the dataset repo's .dvc/tmp/
    manifest = snapshot.snapshot(out, BUCKET, "imagefolder", config, project_id=1, cache=cache)
    return manifest["counts"]["items"], manifest["export"]


def timed(fn, *args):
    started = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 images instead of 2,000")
    parser.add_argument("--items", type=int, default=None, help="number of labeled images (default 2000)")
    args = parser.parse_args()
    n = args.items or (200 if args.quick else 2000)

    work = Path(tempfile.mkdtemp(prefix="bench-snapshot-"))
    server = None
    try:
        t0 = time.perf_counter()
        port = embedded.free_port()  # known before seeding: listings carry media links with the server's URL
        seed_emulator(work / "gcs", make_objects(n), f"http://127.0.0.1:{port}")
        server = embedded.start_emulator(port, work / "gcs", log=work / "gcs.log")
        os.environ["STORAGE_EMULATOR_HOST"] = server.url
        print(f"seeded {n} images + {n} label files in {time.perf_counter() - t0:.1f}s; emulator {server.url}",
              file=sys.stderr)
        config = labelconfig.parse_config(labelconfig.build_config("image-classification", samples.DIGIT_LABELS))

        base_s, base_n = timed(baseline, work / "baseline")
        print(f"sequential loop: {base_n} images in {base_s:.2f}s", file=sys.stderr)
        snap_s, (snap_n, report) = timed(run_snapshot, work / "dataset", config)
        print(f"snapshot:        {snap_n} images in {snap_s:.2f}s (fetched {report['images_fetched']})", file=sys.stderr)
        warm_s, (warm_n, warm_report) = timed(run_snapshot, work / "dataset", config)
        print(f"warm snapshot:   {warm_n} images in {warm_s:.2f}s (reused {warm_report['images_reused']})",
              file=sys.stderr)
        assert base_n == snap_n == warm_n == n, (base_n, snap_n, warm_n, n)
        same = all((work / "dataset" / p.relative_to(work / "baseline")).read_bytes() == p.read_bytes()
                   for p in (work / "baseline").rglob("*.png"))
        assert same, "the snapshot's images differ from the baseline's"
        result = {
            "benchmark": "snapshot", "items": n, "baseline_sequential_s": round(base_s, 3),
            "snapshot_s": round(snap_s, 3), "speedup_vs_sequential": round(base_s / snap_s, 2),
            "warm_snapshot_s": round(warm_s, 3), "warm_speedup_vs_sequential": round(base_s / warm_s, 2),
            "concurrency": __import__("dataversion.snapshot").snapshot.default_concurrency(),
        }
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
