"""Embedded default: fresh start -> ready to label, and warm start, of the whole stack.

Fresh: empty data dirs -> Label Studio migrated, emulator up, 1,797 sample images uploaded, demo project with
source + target storage synced (what `./docker-shell.sh` does on a new machine, minus the venv install).
Warm: the same after `down` (data kept). Reuse: `up` while everything still runs.

    .venv/bin/python benchmarks/bench_start.py            # full sample set
    .venv/bin/python benchmarks/bench_start.py --quick    # 200 images
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "data-labeling"))

from datalabel import embedded, ls  # noqa: E402
from datalabel.config import Settings  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="seed 200 images instead of all 1,797")
    args = parser.parse_args()
    limit = 200 if args.quick else None
    os.environ.update(embedded.QUIET_ENV)
    with tempfile.TemporaryDirectory(prefix="bench-start-") as root:
        ports = (embedded.free_port(), embedded.free_port())
        try:
            info, fresh = timed(lambda: embedded.up(root, *ports, limit=limit))
            client = ls.connect(Settings(url=info.label_studio_url, api_key=info.token))
            tasks = ls.get_project(client, info.project_id).task_number
            _, reuse = timed(lambda: embedded.up(root, *ports, limit=limit))
            embedded.down(root)
            _, warm = timed(lambda: embedded.up(root, *ports, limit=limit))
        finally:
            embedded.down(root)
    print(f"tasks ready to label: {tasks}")
    print(f"fresh start (new data dirs, seed, sync): {fresh:6.1f} s")
    print(f"warm start (after down, data kept):      {warm:6.1f} s")
    print(f"reuse (already running):                 {reuse:6.1f} s")
    print(json.dumps({"fresh_start_s": round(fresh, 1), "warm_start_s": round(warm, 1),
                      "reuse_start_s": round(reuse, 1), "warm_vs_fresh_speedup": round(fresh / warm, 1),
                      "tasks": tasks}))


if __name__ == "__main__":
    main()
