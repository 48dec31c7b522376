"""Every benchmark runs, in its smallest form, so none can rot unnoticed: each `benchmarks/bench_*.py` must exit 0
and print, as its last line, one JSON object holding the keys its docstring names. The figures are not checked
(they belong to the benchmark runs, on a quiet machine); only that the script still works end to end against the
real servers it starts itself.

The sizes are the smallest that still run every stage, to keep the suite's time small (together a few minutes,
most of it starting Label Studio). `bench_start.py --docker` is the Docker tests' business (they start the same
stack); its embedded form runs here.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"

# script -> (its smallest form, the keys of its last line that its docstring names)
SMOKE = {
    "bench_active_learning.py": (["--quick", "--skip-split-baseline", "--out", "{tmp}"],
                                 ["label_fraction_vs_random", "best_strategy", "bulk_speedup_vs_per_task",
                                  "split_select"]),
    "bench_annotators.py": (["--annotators", "1", "--seconds", "2", "--tasks", "10"],
                            ["annotators", "team_p95_ms", "team_errors", "single_p95_ms", "single_errors",
                             "throughput_vs_single"]),
    "bench_convert.py": (["--sizes", "200", "--repeat", "1", "--sdk-timeout", "120"], ["speedup_vs_sdk", "peak_rss_mb"]),
    "bench_machinery.py": (["--tasks", "300", "--names", "2000", "--repeat", "1"],
                           ["reader_ijson_vs_ours", "reader_whole_file_mb_vs_ours", "scheduler_pool_vs_ours",
                            "labels_inline_vs_ours", "labels_threads_vs_ours", "names_set_mb_vs_ours",
                            "names_set_time_vs_ours"]),
    "bench_predictions.py": (["--predictions", "500"],
                             ["predictions", "speedup_vs_sdk", "extra_rss_mb_sdk", "extra_rss_mb_ours"]),
    "bench_quality.py": (["--tasks", "120", "--flip", "0.1"],
                         ["mislabel_recall_at_2x", "mislabel_precision_at_k", "agreement_max_abs_err"]),
    "bench_scale.py": (["--tasks", "200", "--pool", "20"],
                       ["tasks", "anchor_s", "stats_vs_ls_export", "peak_rss_mb", "target_export_s_per_1k_annotations"]),
    "bench_snapshot.py": (["--items", "20", "--rtt-ms", "5"],
                          ["items", "snapshot_s", "speedup_vs_sequential", "warm_speedup_vs_sequential",
                           "rtt_speedup_vs_sequential", "rtt_warm_speedup_vs_sequential"]),
    "bench_start.py": (["--limit", "12"], ["fresh_start_s", "warm_start_s", "reuse_start_s", "warm_vs_fresh_speedup",
                                           "tasks"]),
}


def test_every_benchmark_has_a_smoke_run_and_its_docstring_names_the_keys_checked():
    scripts = sorted(p.name for p in BENCHMARKS.glob("bench_*.py"))
    assert scripts == sorted(SMOKE), "a benchmark without a smoke run here (or one that is gone)"
    for name, (_, keys) in SMOKE.items():
        doc = ast.get_docstring(ast.parse((BENCHMARKS / name).read_text(encoding="utf-8"))) or ""
        assert "one JSON object" in doc, name
        missing = [k for k in keys if k.split("_vs_ls_export")[0] not in doc]
        assert missing == [], f"{name}'s docstring does not name {missing}"


@pytest.mark.parametrize("name", sorted(SMOKE))
def test_benchmark_runs_in_its_smallest_form_and_prints_its_json_line(name, tmp_path):
    args, keys = SMOKE[name]
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    out = subprocess.run([sys.executable, str(BENCHMARKS / name), *args], cwd=tmp_path, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, f"{name} failed (exit {out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}"
    lines = out.stdout.strip().splitlines()
    assert lines, f"{name} printed nothing\n{out.stderr[-3000:]}"
    result = json.loads(lines[-1])
    assert isinstance(result, dict), lines[-1]
    missing = [k for k in keys if k not in result]
    assert missing == [], f"{name}'s JSON line lacks {missing}: {lines[-1][:2000]}"
