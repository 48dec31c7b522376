"""Active learning: labels saved by uncertainty sampling, and bulk vs per-task prediction upload.

1. Simulation (offline, scikit-learn): the digits sample with a simulated annotator (its true labels). Every
   strategy starts from the same random labels and adds `step` labels per round, chosen by `active.select` — the
   function `datalabel al select` uses. Headline: the labels an uncertainty strategy needs to reach the test
   accuracy random sampling reaches with N labels, as a fraction of N (target <= 0.5).
2. Upload (a real Label Studio + GCS emulator, started here on free loopback ports in a temp dir, stopped at
   the end): predictions for the same tasks uploaded one `predictions.create` call per task vs one bulk
   `projects.import_predictions` call (`active.import_predictions`). Headline: per-task time / bulk time.
3. Split and select on a demo-size project (1,797 tasks with one prediction each, same server): `al split` as
   one PATCH per task (the earlier way, `active.write_splits_one_by_one`) vs the bulk Data Manager action
   (`active.assign_splits`), first run and rerun; then `al select -s margin -k 25` (`active.select_tasks`).
   `--skip-split-baseline` leaves out the per-task run (~3 minutes).

    .venv/bin/python benchmarks/bench_active_learning.py            # 5 runs, 300 labels; 300 tasks (~3 min)
    .venv/bin/python benchmarks/bench_active_learning.py --quick    # 2 runs, 200 labels; 100 tasks

Writes the learning curve (PNG), a markdown table and a CSV into benchmarks/out/; a full run also saves the plot
as docs/active_learning_curve.png. The last line printed is one JSON object: label_fraction_vs_random,
best_strategy, bulk_speedup_vs_per_task, split_select (null with --skip-upload) and the details.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "data-labeling"))

from datalabel import active, embedded, samples  # noqa: E402
from local_servers import label_studio_on_emulator  # noqa: E402


def run_simulation(args, out: Path) -> dict:
    folder = samples.write_digits(out / "digits")
    started = time.perf_counter()
    sim = active.simulate(folder, active.STRATEGIES, repeats=args.repeats, initial=args.initial, step=args.step,
                          budget=args.budget)
    seconds = time.perf_counter() - started
    paths = active.write_report(sim, out)
    fractions = sim.fractions_vs_random()
    reached = {s: f for s, f in fractions.items() if f is not None}
    best = min(reached, key=reached.get) if reached else None
    for row in sim.table_rows():
        print("  " + "  ".join(f"{k}={v}" for k, v in row.items()))
    print(f"simulation: {args.repeats} run(s) x {len(sim.strategies)} strategies, {len(sim.sizes)} rounds, "
          f"{sim.pool_size} pool / {sim.test_size} test images, {seconds:.1f}s")
    for strategy, fraction in fractions.items():
        print(f"  {strategy}: {'not reached' if fraction is None else f'{fraction:.0%}'} of random's "
              f"{sim.sizes[-1]} labels to reach {sim.mean('random')[-1]:.4f}")
    return {"sim": sim, "paths": paths, "fractions": fractions, "best": best, "seconds": seconds}


def run_upload(n_tasks: int, work: Path, split_tasks: int = 0, split_baseline: bool = True) -> dict:
    """Start LS + emulator, make a project of n digit tasks, time both ways of uploading n predictions; then
    (split_tasks > 0) the split and select figures on the same server."""
    with label_studio_on_emulator(work) as servers:
        client = servers.client
        pid = embedded.seed_demo(client, "bench-al", work / "samples", limit=n_tasks, title="bench active learning")
        tasks = active.load_tasks(client, pid)
        assert len(tasks) == n_tasks, f"expected {n_tasks} tasks, got {len(tasks)}"
        target = active.project_target(client, pid)

        def predictions(version):
            out = []
            for i, task in enumerate(tasks):
                top = target.labels[i % len(target.labels)]
                probs = {label: 0.05 for label in target.labels}
                probs[top] = 1 - 0.05 * (len(target.labels) - 1)
                out.append(active.prediction_json(task.id, probs, target, version))
            return out

        t0 = time.perf_counter()
        active.create_predictions_one_by_one(client, predictions("per-task"))
        per_task = time.perf_counter() - t0
        t0 = time.perf_counter()
        created = active.import_predictions(client, pid, predictions("bulk"))
        bulk = time.perf_counter() - t0
        assert created == n_tasks
        # both sides really landed: one prediction of each version per task
        counts = {}
        for task in active.load_tasks(client, pid):
            for pred in task.predictions:
                counts[pred.model_version] = counts.get(pred.model_version, 0) + 1
        assert counts == {"per-task": n_tasks, "bulk": n_tasks}, counts
        split = run_split_select(client, split_tasks, split_baseline) if split_tasks else None
    print(f"upload of {n_tasks} predictions: per-task {per_task:.2f}s ({per_task / n_tasks * 1000:.0f} ms/call), "
          f"bulk {bulk:.3f}s -> {per_task / bulk:.0f}x")
    return {"tasks": n_tasks, "per_task_s": round(per_task, 3), "bulk_s": round(bulk, 4),
            "speedup": round(per_task / bulk, 1), "split_select": split}


def run_split_select(client, n_tasks: int, baseline: bool) -> dict:
    """Two identical projects of n tasks with inline predictions; time the per-task and the bulk split, then
    select."""
    import numpy as np

    from datalabel import samples
    from datalabel.labelconfig import build_config

    config = build_config("image-classification", samples.DIGIT_LABELS)
    rng = np.random.default_rng(0)
    projects = []
    for name in ("per-task", "bulk"):
        project = client.projects.create(title=f"bench split {name}", label_config=config)
        target = active.project_target(client, project.id)
        tasks = []
        for i in range(n_tasks):
            probs = dict(zip(target.labels, rng.dirichlet(np.full(len(target.labels), 0.5))))
            pred = active.prediction_json(0, probs, target, "bench-v1", "margin")
            del pred["task"]
            tasks.append({"data": {"image": f"gs://bench-al/images_unlabeled/digit_{i:04d}.png"},
                          "predictions": [pred]})
        client.projects.import_tasks(id=project.id, request=tasks)
        projects.append(project.id)
    out = {"tasks": n_tasks}
    if baseline:
        t0 = time.perf_counter()
        written = active.write_splits_one_by_one(client, projects[0])
        out["split_per_task_s"] = round(time.perf_counter() - t0, 2)
        assert written == n_tasks, written
    t0 = time.perf_counter()
    first = active.assign_splits(client, projects[1])
    out["split_bulk_s"] = round(time.perf_counter() - t0, 2)
    assert first["assigned"] == n_tasks, first
    t0 = time.perf_counter()
    again = active.assign_splits(client, projects[1])
    out["split_rerun_s"] = round(time.perf_counter() - t0, 2)
    assert again["assigned"] == 0, again
    active.use_for_sampling(client, projects[1], "bench-v1")
    t0 = time.perf_counter()
    picked = active.select_tasks(client, projects[1], "margin", 25)
    out["select_s"] = round(time.perf_counter() - t0, 2)
    assert len(picked["selected"]) == 25 and {c["split"] for c in picked["selected"]} == {"train"}
    assert picked["queue_matches"], "the stored scores are margin certainties of the project's version"
    if baseline:
        out["split_speedup"] = round(out["split_per_task_s"] / out["split_bulk_s"], 1)
    print(f"split of {n_tasks} tasks: " + (f"per task {out['split_per_task_s']}s, " if baseline else "")
          + f"bulk {out['split_bulk_s']}s, rerun {out['split_rerun_s']}s; select -s margin -k 25 {out['select_s']}s")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 runs to 200 labels; 100 tasks uploaded")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "out"))
    parser.add_argument("--skip-upload", action="store_true", help="simulation only (no Label Studio)")
    parser.add_argument("--skip-split-baseline", action="store_true",
                        help="time only the bulk split (the per-task one takes ~3 minutes on 1,797 tasks)")
    args = parser.parse_args()
    args.repeats, args.budget, args.step, args.initial = (2, 200, 20, 20) if args.quick else (5, 300, 10, 20)
    n_tasks = 100 if args.quick else 300

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.update(embedded.QUIET_ENV)
    sim = run_simulation(args, out)
    if not args.quick:
        docs = ROOT / "docs"
        docs.mkdir(exist_ok=True)
        tmp = docs / ".active_learning_curve.png.tmp"
        shutil.copyfile(sim["paths"]["png"], tmp)
        os.replace(tmp, docs / "active_learning_curve.png")
    upload = None
    if not args.skip_upload:
        with tempfile.TemporaryDirectory(prefix="bench-al-") as work:
            upload = run_upload(n_tasks, Path(work), split_tasks=300 if args.quick else 1797,
                                split_baseline=not args.skip_split_baseline)

    s = sim["sim"]
    result = {
        "label_fraction_vs_random": sim["fractions"].get(sim["best"]) if sim["best"] else None,
        "best_strategy": sim["best"],
        "fractions_by_strategy": sim["fractions"],
        "random_labels": s.sizes[-1],
        "random_final_accuracy": round(s.mean("random")[-1], 4),
        "final_accuracy": {k: round(s.mean(k)[-1], 4) for k in s.strategies},
        "runs": args.repeats,
        "bulk_speedup_vs_per_task": upload["speedup"] if upload else None,
        "upload": upload,
        "split_select": upload["split_select"] if upload else None,
        "quick": args.quick,
        "files": {k: str(v) for k, v in sim["paths"].items()},
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
