"""Start -> ready to label, of the whole stack: the embedded default, or the Docker path.

Embedded (default): empty data dirs -> Label Studio migrated, emulator up, 1,797 sample images uploaded, demo
project with source + target storage synced (what `./docker-shell.sh` does on a new machine, minus the venv
install). Warm: the same after `down` (data kept). Reuse: `up` while everything still runs.

Docker (--docker): `./docker-shell.sh --docker --emulator` in an isolated Compose project (own ports, secrets,
volumes), images cached -> Label Studio and emulator containers healthy, demo seeded; warm = again after
`compose stop`; reuse = again while running. --first-build also removes the project's images first (the
labeling-CLI image and, where they are stand-ins, the base images) and reports that build separately.

    .venv/bin/python benchmarks/bench_start.py            # embedded, full sample set
    .venv/bin/python benchmarks/bench_start.py --quick    # embedded, 200 images
    .venv/bin/python benchmarks/bench_start.py --limit 12  # embedded, 12 images (the CI smoke run)
    .venv/bin/python benchmarks/bench_start.py --docker [--first-build]

The last line printed is one JSON object: fresh_start_s, warm_start_s, reuse_start_s, warm_vs_fresh_speedup and
tasks (embedded); docker_fresh_start_s, docker_warm_start_s, docker_reuse_start_s (--docker).
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
    parser.add_argument("--limit", type=int, help="seed this many images (overrides --quick)")
    parser.add_argument("--docker", action="store_true", help="the Docker path (needs a running engine)")
    parser.add_argument("--first-build", action="store_true", help="with --docker: build every image first")
    args = parser.parse_args()
    if args.docker:
        return docker(args.first_build)
    limit = args.limit or (200 if args.quick else None)
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


def docker(first_build: bool) -> None:
    import subprocess

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from docker_helpers import ROOT, Stack, engine_answers

    if not engine_answers():
        sys.exit("error: no Docker engine answers; start dockerd first")
    build = None
    if first_build:
        # the base images, where they are stand-ins (the script's own list says which), and ours
        listing = subprocess.run(["scripts/local-images.sh", "--list"], cwd=ROOT, capture_output=True, text=True,
                                 check=True).stdout.split("\n")
        images = ["datalabel/labeling-cli:local"] + [line.split()[0] for line in listing
                                                     if "standin:" in line and "postgres" not in line]
        subprocess.run(["docker", "image", "rm", "-f", *images], capture_output=True)
        subprocess.run(["docker", "builder", "prune", "-f"], capture_output=True)
        _, build = timed(lambda: subprocess.run(["scripts/local-images.sh"], cwd=ROOT, check=True))
        _, cli = timed(lambda: subprocess.run(["docker", "build", "-q", "-f", "data-labeling/Dockerfile", "-t",
                                               "datalabel/labeling-cli:local", "."], cwd=ROOT, check=True,
                                              env={**os.environ, "DOCKER_BUILDKIT": "0"}))
        build += cli
    with tempfile.TemporaryDirectory(prefix="bench-start-docker-") as folder:
        stack, fresh = timed(lambda: Stack.start(Path(folder)))
        try:
            _, reuse = timed(lambda: stack.shell("--docker", "--emulator").check_returncode())
            stack.compose("stop", check=True)
            _, warm = timed(lambda: stack.shell("--docker", "--emulator").check_returncode())
        finally:
            stack.down()
    print(f"docker: fresh start, images cached (new volumes, seed, sync): {fresh:6.1f} s")
    print(f"docker: warm start (after stop, volumes kept):                {warm:6.1f} s")
    print(f"docker: reuse (already running):                             {reuse:6.1f} s")
    figures = {"docker_fresh_start_s": round(fresh, 1), "docker_warm_start_s": round(warm, 1),
               "docker_reuse_start_s": round(reuse, 1)}
    if build is not None:
        print(f"docker: first build of every image:                          {build:6.1f} s")
        figures["docker_first_build_s"] = round(build, 1)
    # what each image weighs (the versioning image only once it was built: ./docker-shell.sh versioning)
    for image, key in (("datalabel/labeling-cli:local", "cli_image_mb"), ("datalabel/versioning:local",
                       "versioning_image_mb"), ("heartexlabs/label-studio:1.23.2", "label_studio_image_mb")):
        size = subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", image], capture_output=True,
                              text=True)
        if size.returncode == 0:
            figures[key] = round(int(size.stdout) / 1e6)
            print(f"docker: image {image}: {figures[key]} MB")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
