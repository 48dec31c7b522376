"""Convert synthetic Label Studio exports to COCO and YOLO: datalabel.export vs label_studio_sdk.converter.

Both sides convert the same export file, each in a fresh subprocess; conversion time is measured inside it (imports
excluded), median of --repeat runs per side (by default 3, and 7 for the sizes up to 50k tasks, whose short runs
vary most), the two sides' runs interleaved so that the machine's changing speed falls on both alike. Ours is
`export.convert_file`, what `datalabel export convert --from-file ... --no-images` runs: on every core
(parallel.py). Output goes to /dev/shm by default (RAM), because creating 200k small YOLO label files costs this
machine's disk anywhere from 2 to 20 s from one run to the next, the same for both sides, which drowns the
comparison; `--out-dir` puts it on a disk instead.
Memory: the SDK's peak is its ru_maxrss; ours is several processes, so one more untimed run samples the summed RSS
of all of them (`tree_rss_mb`, shared pages counted once per process: an upper bound) and the summed PSS
(`tree_pss_mb`, shared pages split: what the conversion occupies) every 5 ms.
The SDK side gets a time cap (--sdk-timeout); a capped run is reported as such, never as a number it did not reach.

    .venv/bin/python benchmarks/bench_convert.py            # 20k and 200k tasks (about 4 minutes)
    .venv/bin/python benchmarks/bench_convert.py --quick    # 2k and 20k tasks

The last line printed is one JSON object: speedup_vs_sdk (the smallest ours-vs-SDK time ratio over every size and
format), peak_rss_mb (ours, the largest of all runs), every measurement, and two timing goals the tests leave to
this script: brush_mask_fullhd_ms (goal: well under 2,000) and retry_timeout_2s_took_s (an unreachable bucket with
--retry-timeout 2; goal: under 15, start-up included).

What to expect on this 2-core machine (2 worker processes; 2026-12-04, quiet): COCO ~10.5-11.8x faster at 20k
tasks and ~12.7x at 200k, YOLO ~10-10.8x and ~10.7x; ours ~0.20 s / ~1.76 s (COCO) and ~0.29 s / ~2.7 s (YOLO)
against the SDK's ~2.3 s / ~22.4 s and ~2.95 s / ~29 s; our memory flat at ~97-99 MB RSS summed over the 3
processes (~42-48 MB PSS) where the SDK's peak is 228 MB (YOLO) and grows from ~300 MB to ~960 MB (COCO). Our side
is CPU-bound: at 20k tasks YOLO takes ~0.57 s of CPU (the workers ~0.5 s, of which ~0.16 s the kernel creating
the 20,000 label files, both sides pay it; the main process ~0.065 s) over the 2 cores. Where the time goes
(YOLO, 200k, py-spy): creating the label files ~28%, the per-line float formatting ~16%, decoding JSON into the
task model (msgspec) ~13%, the rest in Python per task. More cores go further: the work splits by ranges of 256 KiB.
Per stage, the CPU time of one worker on 100k tasks (a loaded machine, 2026-12-04): decoding (msgspec) 0.6-0.9 s,
the items and their names 0.7-0.8 s, objects 0.3-0.4 s, formatting 0.5-0.7 s, YOLO label files 1.1-1.2 s (kernel).
On a shared machine, note the load average (uptime) with the figures: under load every ratio moves by +-30%.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHORT_CASE, SHORT_REPEAT = 50_000, 7  # cases of up to this many tasks: at least this many runs per side
LABELS = ["car", "person", "bicycle", "dog", "cat"]
CONFIG = ("<View>\n  <Image name=\"image\" value=\"$image\"/>\n  <RectangleLabels name=\"label\" toName=\"image\">\n"
          + "".join(f"    <Label value=\"{label}\"/>\n" for label in LABELS) + "  </RectangleLabels>\n</View>\n")


def make_export(path: Path, n: int, seed: int = 7) -> None:
    """A Label Studio JSON export of n image tasks with 1-4 rectangles each (streamed to disk)."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fp:
        fp.write("[")
        for i in range(n):
            regions = []
            for k in range(rng.randint(1, 4)):
                w, h = rng.uniform(2, 40), rng.uniform(2, 40)
                regions.append({
                    "id": f"r{i}_{k}", "type": "rectanglelabels", "from_name": "label", "to_name": "image",
                    "original_width": 1280, "original_height": 720, "image_rotation": 0,
                    "value": {"x": rng.uniform(0, 100 - w), "y": rng.uniform(0, 100 - h), "width": w, "height": h,
                              "rotation": 0, "rectanglelabels": [rng.choice(LABELS)]}})
            task = {"id": i + 1, "data": {"image": f"gs://bench-bucket/images/img_{i:07d}.jpg"},
                    "annotations": [{"id": i + 1, "completed_by": 1, "result": regions, "was_cancelled": False,
                                     "ground_truth": False, "created_at": "2026-11-01T10:00:00Z",
                                     "updated_at": "2026-11-01T10:00:00Z", "lead_time": 3.2}],
                    "predictions": [], "meta": {}, "project": 1}
            fp.write(("" if i == 0 else ",\n") + json.dumps(task))
        fp.write("]\n")


# --- the two sides, each run in a fresh subprocess -------------------------------------------------------------


class TreeMemory:
    """Samples the memory of this process and its children (our conversion's worker processes) every 5 ms:
    the peak of the summed RSS (shared pages counted once per process: an upper bound) and of the summed PSS
    (shared pages split between the processes sharing them: what the conversion really occupies)."""

    def __init__(self):
        import threading

        self.rss = self.pss = 0.0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @staticmethod
    def _sample() -> tuple[float, float]:
        pids = [os.getpid()]
        try:
            pids += [int(p) for p in Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()]
        except OSError:
            pass
        rss = pss = 0.0
        for pid in pids:
            try:
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1]) / 1024
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1]) / 1024
            except OSError:  # the process ended between the listing and the read
                pass
        return rss, pss

    def _run(self) -> None:
        while not self.done.wait(0.005):
            rss, pss = self._sample()
            self.rss, self.pss = max(self.rss, rss), max(self.pss, pss)

    def stop(self) -> dict:
        self.done.set()
        self.thread.join()
        return {"tree_rss_mb": round(self.rss, 1), "tree_pss_mb": round(self.pss, 1)}


def worker(side: str, fmt: str, src: str, out: str, sample: str) -> None:
    # the sampler reads /proc and takes CPU from the conversion: it runs in separate, untimed runs
    memory = TreeMemory() if sample == "1" else None
    if side == "ours":
        sys.path.insert(0, str(ROOT / "data-labeling"))
        from datalabel import export, labelconfig

        config = labelconfig.parse_config(CONFIG)
        t0 = time.perf_counter()
        report = export.convert_file(src, Path(out), fmt, config, None)
        seconds = time.perf_counter() - t0
        objects, workers = report["objects"], report["workers"]
    else:
        import logging

        logging.disable(logging.WARNING)
        from label_studio_sdk.converter import Converter

        converter = Converter(CONFIG, project_dir=None, download_resources=False)
        t0 = time.perf_counter()
        converter.convert(src, out, fmt.upper(), is_dir=False)
        seconds = time.perf_counter() - t0
        objects, workers = None, 1
    # KiB on Linux; the largest child's peak is added (ours converts in worker processes), see TreeMemory
    usage = resource.getrusage
    rss = (usage(resource.RUSAGE_SELF).ru_maxrss + usage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    result = {"seconds": round(seconds, 3), "peak_rss_mb": round(rss, 1), "objects": objects, "workers": workers}
    if memory is not None:
        result.update(memory.stop())
        result["peak_rss_mb"] = max(result["peak_rss_mb"], result["tree_rss_mb"])
    print(json.dumps(result))


def run_once(side: str, fmt: str, src: Path, out: Path, timeout: float, sample: bool) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    os.sync()  # the previous run's dirty pages are flushed before this one starts, not charged to it
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, __file__, "--worker", side, fmt, str(src), str(out), str(int(sample))],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        shutil.rmtree(out, ignore_errors=True)
        return {"side": side, "format": fmt, "capped_at_s": timeout}
    wall = time.perf_counter() - t0
    shutil.rmtree(out, ignore_errors=True)
    if proc.returncode != 0:
        return {"side": side, "format": fmt, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update(side=side, format=fmt, wall_s=round(wall, 3))
    return result


def run_case(fmt: str, src: Path, out_base: Path, sdk_timeout: float, repeat: int) -> list[dict]:
    """Both sides of one case, their timed runs interleaved (ours, SDK, ours, SDK, ...) so that a change in the
    machine's speed during the case (a busy neighbour) falls on both alike; each side's median of `repeat` runs.
    For ours, one more run samples the memory of all its processes."""
    runs: dict[str, list[dict]] = {"ours": [], "sdk": []}
    stopped: dict[str, dict] = {}  # a side that failed or hit its cap: that run is its result
    for _ in range(repeat):
        for side in ("ours", "sdk"):
            if side not in stopped:
                r = run_once(side, fmt, src, out_base / f"out-{side}-{fmt}", sdk_timeout if side == "sdk" else 3600,
                             sample=False)
                if "seconds" in r:
                    runs[side].append(r)
                else:
                    stopped[side] = r
    results = []
    for side in ("ours", "sdk"):
        if side in stopped:
            results.append(stopped[side])
            continue
        timed = sorted(runs[side], key=lambda r: r["seconds"])
        result = dict(timed[len(timed) // 2], runs_s=[r["seconds"] for r in timed])
        if side == "ours" and Path("/proc/self/smaps_rollup").exists():
            memory = run_once(side, fmt, src, out_base / f"out-{side}-{fmt}", 3600, sample=True)
            for key in ("tree_rss_mb", "tree_pss_mb"):
                result[key] = memory.get(key)
            result["peak_rss_mb"] = max(result["peak_rss_mb"], memory.get("peak_rss_mb", 0),
                                        memory.get("tree_rss_mb", 0))
        results.append(result)
    return results


def side_figures(tmp: Path) -> dict:
    """Two timing goals of the export kept here rather than asserted in tests: decoding a full-HD brush mask
    (goal: well under 2 s) and how long `export convert` takes to give up on an unreachable bucket with
    --retry-timeout 2 (goal: under 15 s, start-up included)."""
    import numpy as np
    from label_studio_sdk.converter.brush import mask2rle

    from datalabel import embedded, geometry

    big = np.zeros((1080, 1920), dtype=np.uint8)
    big[100:900, 300:1500] = 255
    rle = mask2rle(big)
    t0 = time.perf_counter()
    assert geometry.brush_mask(rle, 1920, 1080).sum() == 800 * 1200
    brush_ms = round((time.perf_counter() - t0) * 1000, 1)
    src, config = tmp / "retry.json", tmp / "retry.xml"
    make_export(src, 20)
    config.write_text(CONFIG)
    env = {**os.environ, "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{embedded.free_port()}",  # nothing listens
           "GCS_BUCKET_NAME": "gone"}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "datalabel", "export", "convert", "--from-file", str(src),
                           "--config", str(config), "-f", "yolo", "-o", str(tmp / "retry-out"), "--retry-timeout",
                           "2"], env=env, capture_output=True, text=True, timeout=300)
    took = round(time.perf_counter() - t0, 2)
    assert done.returncode == 3 and "gave up after 2 s" in done.stderr, done.stderr
    print(f"# full-HD brush mask {brush_ms} ms; unreachable bucket, --retry-timeout 2: gave up in {took} s",
          flush=True)
    return {"brush_mask_fullhd_ms": brush_ms, "retry_timeout_2s_took_s": took}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2k and 20k tasks instead of 20k and 200k")
    parser.add_argument("--sizes", help="comma-separated task counts (overrides --quick)")
    parser.add_argument("--sdk-timeout", type=float, default=240.0, help="cap for one SDK conversion, seconds")
    parser.add_argument("--out-dir", default="/dev/shm" if os.access("/dev/shm", os.W_OK) else None,
                        help="where both sides write their output (default: /dev/shm, RAM-backed where it exists, so "
                             "the disk's varying cost of creating 200k files does not drown the comparison; give a "
                             "folder on disk to include it)")
    parser.add_argument("--repeat", type=int, help=f"timed runs per case, each side (the median counts; default 3, "
                        f"and {SHORT_REPEAT} for sizes up to {SHORT_CASE:,} tasks)")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else ([2000, 20000] if args.quick else [20000, 200000])
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-convert-") as tmp, \
            tempfile.TemporaryDirectory(prefix="bench-convert-out-", dir=args.out_dir) as out_base:
        tmp, out_base = Path(tmp), Path(out_base)
        print(f"# output written under {out_base}", flush=True)
        for n in sizes:
            src = tmp / f"export-{n}.json"
            t0 = time.perf_counter()
            make_export(src, n)
            print(f"# {n} tasks: {src.stat().st_size / 1e6:.0f} MB export written in {time.perf_counter() - t0:.1f}s",
                  flush=True)
            # short cases vary most from run to run (a 0.3 s conversion feels every hiccup): more runs there
            repeat = args.repeat or (3 if n > SHORT_CASE else SHORT_REPEAT)
            for fmt in ("coco", "yolo"):
                for r in run_case(fmt, src, out_base, args.sdk_timeout, repeat):
                    r["tasks"] = n
                    rows.append(r)
                    print("# " + json.dumps(r), flush=True)
            src.unlink()
        figures = side_figures(tmp)

    def get(n, side, fmt):
        return next((r for r in rows if r["tasks"] == n and r["side"] == side and r["format"] == fmt), {})

    ratios = {}
    for n in sizes:
        for fmt in ("coco", "yolo"):
            ours, sdk = get(n, "ours", fmt), get(n, "sdk", fmt)
            if "seconds" in ours and "seconds" in sdk:
                ratios[f"{fmt}_{n}"] = round(sdk["seconds"] / ours["seconds"], 2)
            elif "seconds" in ours and "capped_at_s" in sdk:
                ratios[f"{fmt}_{n}"] = f">{sdk['capped_at_s'] / ours['seconds']:.1f} (SDK capped)"
    measured = [v for v in ratios.values() if isinstance(v, float)]
    speedup = min(measured) if len(measured) == len(ratios) == 2 * len(sizes) else None
    ours_rss = {f"{f}_{n}": get(n, "ours", f).get("peak_rss_mb") for n in sizes for f in ("coco", "yolo")}
    sdk_rss = {f"{f}_{n}": get(n, "sdk", f).get("peak_rss_mb") for n in sizes for f in ("coco", "yolo")}
    print(json.dumps({
        "benchmark": "convert",
        "sizes": sizes,
        "speedup_vs_sdk": speedup,
        "speedup_by_case": ratios,
        "peak_rss_mb": max(v for v in ours_rss.values() if v is not None),
        "ours_peak_rss_mb": ours_rss,
        "sdk_peak_rss_mb": sdk_rss,
        "ours_seconds": {f"{f}_{n}": get(n, "ours", f).get("seconds") for n in sizes for f in ("coco", "yolo")},
        "sdk_seconds": {f"{f}_{n}": get(n, "sdk", f).get("seconds", get(n, "sdk", f).get("capped_at_s"))
                        for n in sizes for f in ("coco", "yolo")},
        "cpu_count": os.cpu_count(),
        "ours_workers": max((r.get("workers") or 1) for r in rows if r["side"] == "ours"),
        "ours_tree_pss_mb": {f"{f}_{n}": get(n, "ours", f).get("tree_pss_mb") for n in sizes for f in ("coco", "yolo")},
        "out_dir": args.out_dir or tempfile.gettempdir(),
        **figures,
    }))


if __name__ == "__main__":
    main()
