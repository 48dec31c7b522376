"""Label quality on a real multi-annotator project: are the flipped labels ranked first, and do the agreement
figures equal the reference implementations?

A real Label Studio + GCS emulator (started here on free loopback ports in a temp dir, stopped at the end), the
demo digits (default 700 tasks, at least 600), train/valid/test splits, three annotator users each with their
own API token (`datalabel.users`: created through the API, tokens read with `label-studio user`). Every task
gets one label from an annotator in turn; 5% of those are flipped to another class at random (seeded); a quarter
of the other tasks are labeled by all three (10% noise on the extra labels), so agreement has something to
measure. All labels go through the API with the annotators' own tokens.

Headline figures (the last line printed is one JSON object):
- mislabel_recall_at_2x: share of the flipped tasks among the top 2 x (number of flips) of
  `datalabel quality mislabels`'s ranking (goal >= 0.8);
- mislabel_precision_at_k: share of flipped tasks among the top k, k = number of flips (goal >= 0.6);
- agreement_max_abs_err: largest difference between `datalabel quality agreement` (read back from Label Studio)
  and krippendorff / scikit-learn run on the votes this script submitted: alpha, alpha per class, every pair's
  kappa (goal <= 1e-9);
- timings: labeling through the API, agreement, mislabels (out-of-fold scoring, cleanlab, review tab and queue).

    .venv/bin/python benchmarks/bench_quality.py              # 700 tasks (~3 min)
    .venv/bin/python benchmarks/bench_quality.py --tasks 600 --seed 1
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "data-labeling"), str(ROOT / "tests")]

from datalabel import active, embedded, quality, samples, users  # noqa: E402
from datalabel.projects import set_overlap  # noqa: E402
from local_servers import label_studio_on_emulator  # noqa: E402
from quality_helpers import label_through_api, plan_labels  # noqa: E402


def reference_errors(got: dict, plan, classes: list[str], emails: list[str]) -> dict:
    """|ours - reference| for alpha, each class's alpha and each pair's kappa, the references run on the votes
    as submitted (not as read back)."""
    import krippendorff
    import numpy as np
    from sklearn.metrics import cohen_kappa_score

    votes: dict[int, dict[int, str]] = {}
    for tid, who, label in plan.votes:
        votes.setdefault(tid, {})[who] = label
    shared = sorted(t for t, v in votes.items() if len(v) >= 2)
    matrix = np.array([[classes.index(votes[t][w]) if w in votes[t] else np.nan for t in shared]
                       for w in range(len(emails))])
    errors = {"alpha": abs(got["alpha"] - krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal",
                                                             value_domain=range(len(classes))))}
    for name, alpha in got["alpha_per_class"].items():
        k = classes.index(name)
        binary = np.where(np.isnan(matrix), np.nan, (matrix == k).astype(float))
        errors[f"alpha[{name}]"] = abs(alpha - krippendorff.alpha(reliability_data=binary,
                                                                  level_of_measurement="nominal", value_domain=[0, 1]))
    pairs = {(p["a"], p["b"]): p for p in got["pairs"]}
    for i, j in itertools.combinations(range(len(emails)), 2):
        both = [t for t in shared if i in votes[t] and j in votes[t]]
        ref = cohen_kappa_score([votes[t][i] for t in both], [votes[t][j] for t in both])
        errors[f"kappa[{i + 1},{j + 1}]"] = abs(pairs[(emails[i], emails[j])]["kappa"] - ref)
    if got["tasks"] != len(shared):
        errors["tasks"] = float(abs(got["tasks"] - len(shared)))
    return errors


def run(args, work: Path) -> dict:
    with label_studio_on_emulator(work) as servers:
        client = servers.client
        pid = embedded.seed_demo(client, "bench-quality", work / "samples", limit=args.tasks, title="bench quality")
        t0 = time.perf_counter()
        team = users.ensure_annotators(client, 3, work / "ls-data",
                                       embedded.label_studio_env(servers.emulator.url))
        users_s = time.perf_counter() - t0
        set_overlap(client, pid, 3, round(100 * args.overlap))
        active.assign_splits(client, pid, seed=args.seed)
        by_file = samples.read_truth(work / "samples")
        truth = {t.id: by_file[active.media_url(t).rsplit("/", 1)[-1]] for t in active.load_tasks(client, pid)}
        assert len(truth) >= 600 or args.tasks < 600, f"only {len(truth)} tasks"
        plan = plan_labels(truth, samples.DIGIT_LABELS, 3, overlap_share=args.overlap, flip_rate=args.flip,
                           noise=args.noise, seed=args.seed)
        t0 = time.perf_counter()
        label_through_api(servers.label_studio.url, [a["token"] for a in team], plan.votes)
        label_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        got = quality.project_agreement(client, pid)
        agreement_s = time.perf_counter() - t0
        errors = reference_errors(got, plan, samples.DIGIT_LABELS, [a["email"] for a in team])

        t0 = time.perf_counter()
        found = quality.project_mislabels(client, pid, folds=args.folds, seed=args.seed)
        mislabels_s = time.perf_counter() - t0
        ranked = [s["task_id"] for s in found["ranking"]]
        k = len(plan.flipped)
        recall = len(set(ranked[:2 * k]) & plan.flipped) / k
        precision = len(set(ranked[:k]) & plan.flipped) / k
        flagged_hits = len({s["task_id"] for s in found["suspects"]} & plan.flipped)
        review = found["review"]
        return {
            "tasks": len(truth), "labeled": found["labeled"], "annotations": len(plan.votes), "flipped": k,
            "multi_annotated": got["tasks"], "alpha": got["alpha"], "mean_kappa": got["mean_kappa"],
            "ties": len(got["ties"]), "flagged": found["flagged"], "flagged_flips": flagged_hits,
            "recall": recall, "precision": precision, "errors": errors,
            "review_first_served": review["served_first"] == ranked[0] if review else None,
            "seconds": {"users": users_s, "label_through_api": label_s, "agreement": agreement_s,
                        "mislabels": mislabels_s},
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=700, help="demo tasks (at least 600 for the headline)")
    parser.add_argument("--flip", type=float, default=0.05, help="share of the labels flipped")
    parser.add_argument("--overlap", type=float, default=0.25, help="share of tasks labeled by all three")
    parser.add_argument("--noise", type=float, default=0.1, help="error rate of the extra labels")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.update(embedded.QUIET_ENV)
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as work:
        r = run(args, Path(work))
    worst = max(r["errors"], key=r["errors"].get)
    print(f"{r['tasks']} tasks, {r['labeled']} labeled through the API by 3 annotators ({r['annotations']} "
          f"annotations in {r['seconds']['label_through_api']:.1f}s), {r['flipped']} labels flipped")
    print(f"agreement on {r['multi_annotated']} multi-annotated tasks: alpha {r['alpha']:.4f}, mean kappa "
          f"{r['mean_kappa']:.4f}, {r['ties']} tie(s); largest difference from krippendorff / scikit-learn: "
          f"{r['errors'][worst]:.2e} ({worst}) over {len(r['errors'])} figures; {r['seconds']['agreement']:.2f}s")
    print(f"mislabels: {r['flagged']} flagged by cleanlab ({r['flagged_flips']} of them flipped); top 2k holds "
          f"{r['recall']:.0%} of the flips, top k {r['precision']:.0%}; {r['seconds']['mislabels']:.2f}s with the "
          f"review tab; \"Label All Tasks\" serves rank 1 first: {r['review_first_served']}")
    print(json.dumps({
        "mislabel_recall_at_2x": round(r["recall"], 4), "mislabel_precision_at_k": round(r["precision"], 4),
        "agreement_max_abs_err": r["errors"][worst], "tasks": r["tasks"], "labeled": r["labeled"],
        "flipped": r["flipped"], "flagged": r["flagged"], "multi_annotated_tasks": r["multi_annotated"],
        "alpha": round(r["alpha"], 6), "review_serves_rank_1_first": r["review_first_served"],
        "seconds": {k: round(v, 3) for k, v in r["seconds"].items()},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
