"""A project's prediction list, as Label Studio sends it, decoded two ways on the same bytes:

  sdk   what label-studio-sdk's `client.predictions.list` does with the body: json.loads, then one pydantic object
        per prediction (then our task model, as the read used to do)
  ours  `ls.decode_predictions`: msgspec straight into the task model (the body arrives streamed to a file)

Each runs in a fresh process (its peak RSS is its own; the baseline is the same process before decoding). The
body has Label Studio's list shape (every field its serializer writes), one choices prediction per task.

    .venv/bin/python benchmarks/bench_predictions.py            # 100,000 predictions
    .venv/bin/python benchmarks/bench_predictions.py --quick    # 10,000

The last line printed is one JSON object: predictions, speedup_vs_sdk (sdk time / ours), extra_rss_mb_sdk,
extra_rss_mb_ours (peak RSS above each process's baseline) and the runs.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "data-labeling"))


def body(n: int) -> bytes:
    item = {"id": 0, "result": [{"id": "r1", "type": "choices", "from_name": "choice", "to_name": "image",
                                 "origin": "prediction", "value": {"choices": ["3"]}}],
            "model_version": "bench-v1", "created_ago": "1 hour", "score": 0.1234, "cluster": None,
            "neighbors": None, "mislabeling": 0.0, "created_at": "2026-12-01T22:00:00.000000Z",
            "updated_at": "2026-12-01T22:00:00.000000Z", "model": None, "model_run": None, "task": 0, "project": 1}
    return json.dumps([dict(item, id=i + 1, task=i + 1, score=round((i % 997) / 997, 4)) for i in range(n)]).encode()


def decode(way: str, n: int) -> dict:
    data = body(n)
    from label_studio_sdk.core.pydantic_utilities import parse_obj_as  # both sides import the SDK
    from label_studio_sdk.types import Prediction as SdkPrediction

    from datalabel import ls
    from datalabel.tasks import Prediction

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    by_task: dict = {}
    if way == "sdk":
        for p in parse_obj_as(list[SdkPrediction], json.loads(data)):
            by_task.setdefault(p.task, []).append(Prediction.from_json(p.model_dump(mode="json")))
    else:
        for p in ls.decode_predictions(data):
            by_task.setdefault(p.task, []).append(Prediction(p.result, p.model_version, p.score, p.id))
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert len(by_task) == n
    return {"seconds": round(seconds, 3), "extra_rss_mb": round((peak - before) / 1024, 1),
            "peak_rss_mb": round(peak / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predictions", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="10,000 predictions")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    n = 10_000 if args.quick else args.predictions
    if args.child:
        print(json.dumps(decode(args.child, n)))
        return
    runs = {}
    for way in ("sdk", "ours"):
        out = subprocess.run([sys.executable, __file__, "--child", way, "--predictions", str(n)], check=True,
                             capture_output=True, text=True).stdout
        runs[way] = json.loads(out.strip().splitlines()[-1])
        print(f"# {way}: {runs[way]['seconds']} s, +{runs[way]['extra_rss_mb']} MB (peak {runs[way]['peak_rss_mb']} MB)",
              flush=True)
    print(json.dumps({"predictions": n, "speedup_vs_sdk": round(runs["sdk"]["seconds"] / runs["ours"]["seconds"], 1),
                      "extra_rss_mb_sdk": runs["sdk"]["extra_rss_mb"], "extra_rss_mb_ours": runs["ours"]["extra_rss_mb"],
                      "runs": runs}))


if __name__ == "__main__":
    main()
