"""Snapshot speed: `dataversion snapshot` vs a sequential per-file download loop, same bucket, same run.

A GCS emulator is started here (free loopback port, data in a temp dir, stopped at the end) holding N images
under images_unlabeled/ and N target-storage JSON files under labels/, as Label Studio writes them.

- baseline: what the old tutorial tooling did, one file after another with google-cloud-storage: list labels/,
  download each JSON, download its image into <label>/<file> (ImageFolder), nothing else.
- snapshot: `dataversion.snapshot.snapshot` (what the CLI runs): the same files through the export library's
  target-storage reader (gcsfs, several requests in flight), then the export library writes ImageFolder + labels.csv + manifest.json.
- warm: the snapshot again over the previous one, nothing changed in the bucket: images already in the folder
  are linked and unchanged annotation files (same MD5) come from the label cache, not the bucket.

    .venv/bin/python benchmarks/bench_snapshot.py            # 2,000 labeled images (~2.5 min)
    .venv/bin/python benchmarks/bench_snapshot.py --quick    # 200

Two scenarios, each with its own emulator:
- local: the emulator on loopback as it is. It answers one request at a time (~0.3-0.5 ms each on this machine),
  so any client is bound by it: 4,000 GETs cannot take less than ~1.5 s, which caps the cold speedup near 2.5x.
- simulated network (--rtt-ms, default 20): the same emulator behind a proxy that adds one round trip per
  request, as a real bucket does; the snapshot keeps 32 requests in flight (its default off the emulator).

The emulator is seeded through its own storage layer before it starts: it rewrites its whole metadata file on
every upload, so seeding 4,000 objects over HTTP would take minutes and measure nothing of interest.
The last line printed is one JSON object: items, snapshot_s, speedup_vs_sequential, warm_speedup_vs_sequential
and, with --rtt-ms, rtt_speedup_vs_sequential and rtt_warm_speedup_vs_sequential.
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


def run_snapshot(out: Path, config, concurrency: int | None = None) -> tuple[int, dict]:
    from dataversion import snapshot

    cache = out.parent / "label-cache.sqlite"  # the CLI keeps it in the dataset repo's .dvc/tmp/
    manifest = snapshot.snapshot(out, BUCKET, "imagefolder", config, project_id=1, cache=cache,
                                 concurrency=concurrency)
    return manifest["counts"]["items"], manifest["run"]


def timed(fn, *args):
    started = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - started, result


class LatencyProxy:
    """A loopback TCP proxy in front of the emulator that waits `rtt` seconds before passing each connection on
    (one simulated network round trip per request: the emulator speaks HTTP/1.0, one request per connection),
    with at most `upstream` connections to the emulator at a time (it drops connections beyond a short queue)."""

    def __init__(self, target_port: int, rtt: float, upstream: int = 4):
        import asyncio
        import threading

        self.target_port, self.rtt, self.upstream = target_port, rtt, upstream
        self.port = embedded.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    def _serve(self, ready) -> None:
        import asyncio

        async def pipe(reader, writer):
            try:
                while data := await reader.read(1 << 16):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

        async def handle(reader, writer):
            await asyncio.sleep(self.rtt)
            async with slots:
                try:
                    up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
                except OSError:
                    writer.close()
                    return
                await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

        async def main():
            nonlocal slots
            slots = asyncio.Semaphore(self.upstream)
            self.server = await asyncio.start_server(handle, "127.0.0.1", self.port, backlog=1024)
            ready.set()
            async with self.server:
                await self.server.serve_forever()

        slots = None
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(main())
        except Exception:
            pass

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def scenario(work: Path, n: int, config, rtt_ms: float = 0.0, concurrency: int | None = None) -> dict:
    """Seed an emulator with n labeled images, then time baseline, snapshot and warm snapshot against it."""
    work.mkdir(parents=True)
    port = embedded.free_port()
    proxy = None
    server = None
    try:
        if rtt_ms:
            proxy = LatencyProxy(port, rtt_ms / 1000.0)
        endpoint = proxy.url if proxy else f"http://127.0.0.1:{port}"
        t0 = time.perf_counter()
        seed_emulator(work / "gcs", make_objects(n), endpoint)  # listings carry media links with this URL
        server = embedded.start_emulator(port, work / "gcs", log=work / "gcs.log")
        os.environ["STORAGE_EMULATOR_HOST"] = endpoint
        where = f"emulator {server.url}" + (f" behind a {rtt_ms:g} ms round-trip proxy" if proxy else "")
        print(f"seeded {n} images + {n} label files in {time.perf_counter() - t0:.1f}s; {where}", file=sys.stderr)

        base_s, base_n = timed(baseline, work / "baseline")
        print(f"  sequential loop: {base_n} images in {base_s:.2f}s", file=sys.stderr)
        snap_s, (snap_n, report) = timed(run_snapshot, work / "dataset", config, concurrency)
        print(f"  snapshot:        {snap_n} images in {snap_s:.2f}s (fetched {report['images_fetched']})",
              file=sys.stderr)
        warm_s, (warm_n, warm_report) = timed(run_snapshot, work / "dataset", config, concurrency)
        print(f"  warm snapshot:   {warm_n} images in {warm_s:.2f}s (reused {warm_report['images_reused']})",
              file=sys.stderr)
        assert base_n == snap_n == warm_n == n, (base_n, snap_n, warm_n, n)
        same = all((work / "dataset" / p.relative_to(work / "baseline")).read_bytes() == p.read_bytes()
                   for p in (work / "baseline").rglob("*.png"))
        assert same, "the snapshot's images differ from the baseline's"
        from dataversion.snapshot import default_concurrency

        return {"baseline_sequential_s": round(base_s, 3), "snapshot_s": round(snap_s, 3),
                "speedup": round(base_s / snap_s, 2), "warm_snapshot_s": round(warm_s, 3),
                "warm_speedup": round(base_s / warm_s, 2), "concurrency": concurrency or default_concurrency()}
    finally:
        if server is not None:
            server.stop()
        if proxy is not None:
            proxy.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 images instead of 2,000")
    parser.add_argument("--items", type=int, default=None, help="number of labeled images (default 2000)")
    parser.add_argument("--rtt-ms", type=float, default=20.0,
                        help="round trip of the simulated-network scenario (0 skips it)")
    args = parser.parse_args()
    n = args.items or (200 if args.quick else 2000)
    config = labelconfig.parse_config(labelconfig.build_config("image-classification", samples.DIGIT_LABELS))

    work = Path(tempfile.mkdtemp(prefix="bench-snapshot-"))
    try:
        local = scenario(work / "local", n, config)
        result = {"benchmark": "snapshot", "items": n, "baseline_sequential_s": local["baseline_sequential_s"],
                  "snapshot_s": local["snapshot_s"], "speedup_vs_sequential": local["speedup"],
                  "warm_snapshot_s": local["warm_snapshot_s"], "warm_speedup_vs_sequential": local["warm_speedup"],
                  "concurrency": local["concurrency"]}
        if args.rtt_ms:
            # what a real bucket adds: a network round trip per request; 32 in flight, the default off the emulator
            wan = scenario(work / "wan", n, config, args.rtt_ms, concurrency=32)
            result.update({"simulated_rtt_ms": args.rtt_ms, "rtt_baseline_sequential_s": wan["baseline_sequential_s"],
                           "rtt_snapshot_s": wan["snapshot_s"], "rtt_speedup_vs_sequential": wan["speedup"],
                           "rtt_warm_speedup_vs_sequential": wan["warm_speedup"]})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
