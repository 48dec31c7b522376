"""The converter's hand-written pieces against the library that could replace each, side by side in one run.

Four pieces of `datalabel` do by hand what a library could do; each is kept only for the figure measured here:

  reader     tasks.iter_json_array (a JSON-array splitter: runs of whole tasks decoded by msgspec in C), against
             ijson (yajl2_c backend) streaming the items + Task.from_json, and against msgspec decoding the whole
             file at once (the quickest, but its memory grows with the file).
  scheduler  export/parallel.py (workers keep their decoded range while the main process decides names and ids
             in file order), against multiprocessing.Pool in two passes (plan every range, decide, then write
             every range: a pool's workers keep no state between jobs, so each range is decoded twice).
  labels     formats/yolo.py's forked helper that creates the label files while the one-process export formats
             the next tasks, against creating them inline and against a ThreadPoolExecutor (4 threads).
  names      export/naming.py's Namer (a fixed 2 MiB Bloom filter), against a set of the names seen.

Every case runs in a fresh subprocess, the median of --repeat runs; memory is the process tree's peak RSS
(ru_maxrss of the process and its largest child). Output goes to /dev/shm (RAM) as in bench_convert.py.

    .venv/bin/python benchmarks/bench_machinery.py            # 20k tasks; 1M names
    .venv/bin/python benchmarks/bench_machinery.py --quick    # 2k tasks; 100k names (a smoke run)

The last line printed is one JSON object: for each piece, the library's time (and memory) over ours:
reader_ijson_vs_ours, reader_whole_file_mb_vs_ours, scheduler_pool_vs_ours, labels_inline_vs_ours,
labels_threads_vs_ours, names_set_mb_vs_ours, names_set_time_vs_ours (above 1: ours is quicker or smaller).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "data-labeling"))
sys.path.insert(0, str(ROOT / "benchmarks"))


def peak_mb() -> float:
    usage = resource.getrusage
    return round(max(usage(resource.RUSAGE_SELF).ru_maxrss, usage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024, 1)


# --- reader -------------------------------------------------------------------------------------------------

def reader(variant: str, src: str) -> int:
    from datalabel.tasks import Task, decode_tasks, iter_tasks

    if variant == "ours":
        return sum(1 for _ in iter_tasks(src))
    if variant == "ijson":
        import ijson

        with open(src, "rb") as fp:
            return sum(1 for obj in ijson.items(fp, "item", use_float=True) if Task.from_json(obj))
    if variant == "whole_file":
        return len(decode_tasks(Path(src).read_bytes()))
    raise ValueError(variant)


# --- scheduler ----------------------------------------------------------------------------------------------

_POOL: dict = {}


def _pool_init(lock, path, writer_cls, root, config, policy) -> None:
    _POOL.update(lock=lock, fd=os.open(path, os.O_RDONLY), writer_cls=writer_cls, root=root, config=config,
                 policy=policy)


def _pool_items(start: int, end: int, key, counts: dict):
    from datalabel.export import parallel
    from datalabel.export.naming import make_items
    from datalabel.tasks import decode_tasks

    tasks = decode_tasks(parallel._read_range(_POOL["fd"], start, end))
    return make_items(tasks, _POOL["policy"], key, False, counts)


def _pool_plan(job):
    from datalabel.export.naming import Namer

    start, end = job
    writer = _POOL["writer_cls"](Path(_POOL["root"]), _POOL["config"], None, part=True, part_lock=_POOL["lock"])
    counts = {"tasks": 0, "unlabeled_skipped": 0}
    items = _pool_items(start, end, writer.media_key, counts)
    labels, extents = writer.plan(items)
    writer.abort()
    return [(item.name, item.task.id, Namer.slots(item.name)) for item in items], labels, extents, counts


def _pool_write(job):
    (start, end), renames, classes, starts = job
    writer = _POOL["writer_cls"](Path(_POOL["root"]), _POOL["config"], None, part=True, part_lock=_POOL["lock"])
    items = _pool_items(start, end, writer.media_key, {"tasks": 0, "unlabeled_skipped": 0})
    for k, name in renames.items():
        items[k].name = name
    writer.resume(classes, starts)
    for item in items:
        writer.write(item)
    output = writer.take()
    writer.finish_part()
    writer.abort()
    return output


def pool_convert(src: Path, out: Path, fmt: str, config) -> dict:
    """export.convert_file's parallel path with multiprocessing.Pool in two passes instead of parallel.py."""
    import multiprocessing

    from datalabel.export import conversion, parallel
    from datalabel.export.naming import Namer

    workers = parallel.usable_cores()
    ranges = parallel.split(src, workers)

    def body(writer, tmp, reuse) -> dict:
        ctx = multiprocessing.get_context("fork")
        stats = {"tasks": 0, "unlabeled_skipped": 0, "images_fetched": 0, "images_reused": 0,
                 "images_not_in_bucket": 0}
        with ctx.Pool(workers, _pool_init, (ctx.Lock(), str(src), type(writer), str(writer.root), config,
                                            "latest")) as pool:
            plans = pool.map(_pool_plan, ranges)
            namer, starts, decisions = Namer(), [getattr(writer, n) for n in writer.sequences], []
            for proposals, labels, extents, counts in plans:
                renames = {}
                for k, (base, task_id, slots) in enumerate(proposals):
                    if (name := namer.resolve(base, task_id, slots)) != base:
                        renames[k] = name
                for label in labels:
                    if label not in writer.class_ids:
                        writer.new_class(label)
                decisions.append((renames, starts))
                starts = [s + n for s, n in zip(starts, extents)]
                for key, n in counts.items():
                    stats[key] += n
            classes = list(writer.classes)
            jobs = [(r, renames, classes, first) for r, (renames, first) in zip(ranges, decisions)]
            for output in pool.imap(_pool_write, jobs):
                writer.add(output)
        for name, value in zip(writer.sequences, starts):
            setattr(writer, name, value)
        return stats

    return conversion._convert(body, out, fmt, config, "latest", None, None)


def scheduler(variant: str, src: str, out: str) -> int:
    from bench_convert import CONFIG
    from datalabel import export, labelconfig
    from datalabel.export import parallel

    config = labelconfig.parse_config(CONFIG)
    parallel.MIN_FILE_BYTES = 0  # a small export (a smoke run) is cut into ranges too, on both sides
    if variant == "ours":
        report = export.convert_file(src, Path(out), "yolo", config, None)
    elif variant == "pool":
        report = pool_convert(Path(src), Path(out), "yolo", config)
    else:
        raise ValueError(variant)
    return report["objects"]


# --- label files --------------------------------------------------------------------------------------------

def labels(variant: str, src: str, out: str) -> int:
    from bench_convert import CONFIG
    from datalabel import export, labelconfig
    from datalabel.formats import yolo

    if variant == "inline":
        yolo.YoloWriter._use_helper = property(lambda self: False, lambda self, value: None)
    elif variant == "threads":
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(4)
        futures = []
        create = yolo.YoloWriter._create
        yolo.YoloWriter._use_helper = property(lambda self: False, lambda self, value: None)
        yolo.YoloWriter._create = lambda self, name, data: futures.append(pool.submit(create, self, name, data))
        finish = yolo.YoloWriter.finish

        def finish_after_files(self):
            for future in futures:
                future.result()
            return finish(self)
        yolo.YoloWriter.finish = finish_after_files
    elif variant != "ours":
        raise ValueError(variant)
    report = export.convert_file(src, Path(out), "yolo", labelconfig.parse_config(CONFIG), None, workers=1)
    return report["objects"]


# --- names --------------------------------------------------------------------------------------------------

def names(variant: str, n: str) -> int:
    from datalabel.export.naming import Namer
    from datalabel.formats import file_stem

    count = int(n)
    base = [f"img_{i:08d}.jpg" for i in range(count)]
    base += base[: count // 100]  # 1% clashes
    import gc

    gc.collect()
    before = _rss_mb()
    t0 = time.perf_counter()
    if variant == "ours":
        namer = Namer()
        out = [namer.resolve(name, i) for i, name in enumerate(base)]
    elif variant == "set":
        seen: set[str] = set()
        out = []
        for i, name in enumerate(base):
            key = file_stem(name).casefold()
            if key in seen:
                stem = file_stem(name)
                name = f"{stem}_{i}{name[len(stem):]}"
                key = file_stem(name).casefold()
            seen.add(key)
            out.append(name)
    else:
        raise ValueError(variant)
    seconds = time.perf_counter() - t0
    grown = _rss_mb() - before
    print(json.dumps({"grown_mb": round(grown, 1), "inner_seconds": round(seconds, 3)}))
    return len(set(out))


def _rss_mb() -> float:
    with open("/proc/self/status") as fp:
        for line in fp:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


CASES = {"reader": reader, "scheduler": scheduler, "labels": labels, "names": names}


def worker(args: list[str]) -> None:
    case, variant, *rest = args
    t0 = time.perf_counter()
    result = CASES[case](variant, *rest)
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": round(seconds, 3), "peak_rss_mb": peak_mb(), "result": result}))


def run_case(case: str, variant: str, args: list[str], repeat: int, out: Path | None) -> dict:
    runs = []
    for _ in range(repeat):
        if out is not None:
            shutil.rmtree(out, ignore_errors=True)
        proc = subprocess.run([sys.executable, __file__, "--worker", case, variant, *args], capture_output=True,
                              text=True, timeout=600)
        if proc.returncode != 0:
            raise SystemExit(f"{case}/{variant} failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
        lines = [json.loads(line) for line in proc.stdout.strip().splitlines()]
        run = lines[-1]
        for extra in lines[:-1]:
            run.update(extra)
        runs.append(run)
    if out is not None:
        shutil.rmtree(out, ignore_errors=True)
    runs.sort(key=lambda r: r.get("inner_seconds", r["seconds"]))
    result = dict(runs[len(runs) // 2], runs_s=[r["seconds"] for r in runs])
    print(f"# {case:9} {variant:10} {json.dumps(result)}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2k tasks and 100k names (a smoke run)")
    parser.add_argument("--tasks", type=int, help="tasks in the export (default 20,000; --quick 2,000)")
    parser.add_argument("--names", type=int, help="names given out (default 1,000,000; --quick 100,000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (the median counts)")
    parser.add_argument("--worker", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker)
    from bench_convert import make_export

    n_tasks = args.tasks or (2_000 if args.quick else 20_000)
    n_names = args.names or (100_000 if args.quick else 1_000_000)
    base = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else None
    work = Path(tempfile.mkdtemp(prefix="bench-machinery-", dir=base))
    try:
        src = work / "export.json"
        make_export(src, n_tasks)
        out = work / "out"
        r = {f"{case}_{variant}": run_case(case, variant, extra, args.repeat, out if str(out) in extra else None)
             for case, variant, extra in [
                 ("reader", "ours", [str(src)]), ("reader", "ijson", [str(src)]),
                 ("reader", "whole_file", [str(src)]),
                 ("scheduler", "ours", [str(src), str(out)]), ("scheduler", "pool", [str(src), str(out)]),
                 ("labels", "ours", [str(src), str(out)]), ("labels", "inline", [str(src), str(out)]),
                 ("labels", "threads", [str(src), str(out)]),
                 ("names", "ours", [str(n_names)]), ("names", "set", [str(n_names)])]}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for case in ("reader", "scheduler", "labels"):
        results = {v: r[k]["result"] for k, v in ((k, k.split("_", 1)[1]) for k in r) if k.startswith(case)}
        if len(set(results.values())) != 1:
            raise SystemExit(f"{case}: the variants disagree: {results}")

    def ratio(a: str, b: str, key: str = "seconds") -> float:
        return round(r[a][key] / max(r[b][key], 1e-9), 2)

    print(json.dumps({
        "benchmark": "machinery", "tasks": n_tasks, "names": n_names, "cpu_count": os.cpu_count(),
        "reader_ijson_vs_ours": ratio("reader_ijson", "reader_ours"),
        "reader_whole_file_time_vs_ours": ratio("reader_whole_file", "reader_ours"),
        "reader_whole_file_mb_vs_ours": ratio("reader_whole_file", "reader_ours", "peak_rss_mb"),
        "scheduler_pool_vs_ours": ratio("scheduler_pool", "scheduler_ours"),
        "labels_inline_vs_ours": ratio("labels_inline", "labels_ours"),
        "labels_threads_vs_ours": ratio("labels_threads", "labels_ours"),
        "names_set_mb_vs_ours": round(max(r["names_set"]["grown_mb"], 0.1) / max(r["names_ours"]["grown_mb"], 0.1), 2),
        "names_set_time_vs_ours": ratio("names_set", "names_ours", "inner_seconds"),
        "seconds": {k: v["seconds"] for k, v in r.items()},
        "peak_rss_mb": {k: v["peak_rss_mb"] for k, v in r.items()},
        "names_grown_mb": {k: v["grown_mb"] for k, v in r.items() if k.startswith("names")},
    }))


if __name__ == "__main__":
    main()
