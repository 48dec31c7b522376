"""Whole-project reads at scale: each command against Label Studio's own JSON export of the same project.

Starts a Label Studio (SQLite) and the GCS emulator on free loopback ports in a temp dir, builds a project of N
tasks by bulk import (tasks share a pool of images; a third carry an annotation with a class and a box, every
task a prediction with a score), syncs its target storage, then times side by side, in one run:

  anchor     Label Studio's JSON export of the whole project (GET /api/projects/ID/export, download_all_tasks)
  stats      datalabel stats ID --json  (the whole-project read)
  stats_cold datalabel stats ID --json --incremental  (target storage read into an empty cache)
  stats_warm the same again: only target-storage files new since the last run are fetched
  convert    datalabel export convert --project ID -f coco --no-images  (no warm cache: the whole-project read)
  convert_warm  the same with the target-storage cache warm (after stats --incremental; datalabel/warm.py)
  select     datalabel al select --project ID --split all -k 20  (the whole-project read)
  select_warm   the same with the cache warm
  snapshot   dataversion snapshot --project ID --format coco  (target-storage JSON + images, from the bucket)

and, when the project is built, the target storage: `datalabel storage add-target` writes the existing
annotations from the CLI in parallel (datalabel/targetexport.py), reported as target_export_s_per_1k_annotations
(seconds per 1,000 annotations; the aim: <= 2); Label Studio's own in-request sync is not run.

Each command runs in its own process; its peak RSS is that process's high-water mark (VmHWM). Ratios are command time /
anchor time (the aim: <= 1.5 at 100k tasks; stats, convert and select with a warm cache <= 0.2).

    .venv/bin/python benchmarks/bench_scale.py            # 100,000 tasks
    .venv/bin/python benchmarks/bench_scale.py --quick    # 5,000 tasks
    .venv/bin/python benchmarks/bench_scale.py --database postgresql --keep /tmp/scale-pg   # team mode, kept

The last line printed is one JSON object: tasks, anchor_s, <command>_vs_ls_export for each command timed,
peak_rss_mb, target_export_s_per_1k_annotations and the runs.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "data-labeling"))

from datalabel import credentials, embedded, gcs, ls, postgres, projects, samples  # noqa: E402
from datalabel.config import Settings  # noqa: E402
from datalabel.files import write_text_atomic  # noqa: E402

LABELS = [str(d) for d in range(10)]
CONFIG = ("<View>\n  <Image name=\"image\" value=\"$image\"/>\n  <Choices name=\"choice\" toName=\"image\">\n"
          + "".join(f"    <Choice value=\"{label}\"/>\n" for label in LABELS) + "  </Choices>\n"
          "  <RectangleLabels name=\"box\" toName=\"image\">\n"
          + "".join(f"    <Label value=\"{label}\"/>\n" for label in LABELS) + "  </RectangleLabels>\n</View>\n")


def build_tasks(n: int, bucket: str, pool: int, labeled: float, seed: int = 1) -> list[dict]:
    rng = random.Random(seed)
    tasks = []
    for i in range(n):
        image = f"gs://{bucket}/images/digit_{i % pool:04d}.png"
        probs = [rng.random() for _ in LABELS]
        total = sum(probs)
        top = max(range(len(LABELS)), key=probs.__getitem__)
        task = {"data": {"image": image}, "predictions": [{
            "model_version": "bench-v1", "score": round(probs[top] / total, 4),
            "result": [{"type": "choices", "from_name": "choice", "to_name": "image",
                        "value": {"choices": [LABELS[top]]}}]}]}
        if rng.random() < labeled:
            label = rng.choice(LABELS)
            task["annotations"] = [{"result": [
                {"type": "choices", "from_name": "choice", "to_name": "image", "value": {"choices": [label]}},
                {"type": "rectanglelabels", "from_name": "box", "to_name": "image", "original_width": 32,
                 "original_height": 32, "value": {"x": 10.0, "y": 12.5, "width": 50.0, "height": 40.0,
                                                  "rotation": 0, "rectanglelabels": [label]}}]}]
        tasks.append(task)
    return tasks


def run(cmd: list[str], env: dict) -> dict:
    """Run a command in its own process: wall seconds, and its peak RSS (VmHWM, sampled every 20 ms: the kernel
    resets it at exec, so it is the command's own, not this process's at the fork)."""
    peak = 0
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err)
        while proc.poll() is None:
            try:
                status = Path(f"/proc/{proc.pid}/status").read_text()
                peak = max(peak, int(status.split("VmHWM:")[1].split()[0]))
            except (OSError, IndexError, ValueError):
                pass
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
            raise SystemExit(f"{' '.join(cmd[2:6])} failed ({proc.returncode}): {tail[0]}")
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(peak / 1024, 1)}


COMMANDS = ("stats", "stats_cold", "stats_warm", "convert", "convert_warm", "select", "select_warm", "snapshot")
WARM = ("stats_cold", "stats_warm", "convert_warm", "select_warm")  # read the cache the incremental stats makes


def start_servers(work: Path, database: str, creds: dict) -> tuple:
    """Emulator, PostgreSQL (if asked) and Label Studio with their data in `work` (so --keep can reuse them)."""
    emulator = embedded.start_emulator(embedded.free_port(), data_dir=work / "gcs", log=work / "logs" / "gcs.log")
    servers = [emulator]
    try:
        db_env = None
        if database == "postgresql":
            pg = postgres.start(embedded.free_port(), work / "postgres", creds["pg_password"],
                                         log=work / "logs" / "postgres.log")
            servers.append(pg)
            db_env = postgres.label_studio_env(pg.port, creds["pg_password"])
        os.environ["STORAGE_EMULATOR_HOST"] = emulator.url
        server = embedded.start_label_studio(embedded.free_port(), work / "ls-data", credentials.ADMIN_USER,
                                             creds["password"], creds["token"], emulator_url=emulator.url,
                                             log=work / "logs" / "label-studio.log", timeout=600, database=db_env)
        servers.append(server)
    except BaseException:
        for srv in reversed(servers):
            srv.stop()
        raise
    return servers


def build(client, work: Path, n: int, pool: int, labeled: float) -> dict:
    bucket = "bench-scale"
    bkt = gcs.ensure_bucket(gcs.client(), bucket)
    folder = samples.write_digits(work / "digits", limit=pool)
    gcs.upload_folder(bkt, folder / "images", "images/")
    started = time.perf_counter()
    project = ls.find_project(client, f"Scale {n}")
    if project is not None and ls.count_tasks(client, project.id) == n:
        print(f"# resuming: the {n} tasks were imported by an earlier run", flush=True)
    else:
        if project is not None:
            ls.delete_project(client, project.id)
        project = client.projects.create(title=f"Scale {n}", label_config=CONFIG)
        tasks = build_tasks(n, bucket, pool, labeled)
        for start in range(0, n, 5_000):
            client.projects.import_tasks(id=project.id, request=tasks[start:start + 5_000])
            print(f"# imported {min(start + 5_000, n)} tasks in {time.perf_counter() - started:.0f} s", flush=True)
    imported = time.perf_counter() - started
    annotations = ls.get_project(client, project.id).total_annotations_number or 0
    row = projects.add_target(client, project.id, bucket, "labels/")  # writes them from here, then connects
    seconds = time.perf_counter() - started
    per_1k = round((seconds - imported) / max(1, row["written"] or 0) * 1000, 2)
    print(f"# built a project of {n} tasks in {seconds:.0f} s (import {imported:.0f} s; target storage: "
          f"{row['written']} of {annotations} annotations written in {seconds - imported:.1f} s, {per_1k} s per "
          "1,000)", flush=True)
    return {"project": project.id, "bucket": bucket, "build_s": round(seconds, 1),
            "target_export_s_per_1k_annotations": per_1k, "target_export_annotations": row["written"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=100_000, help="project size (default 100,000)")
    parser.add_argument("--quick", action="store_true", help="5,000 tasks")
    parser.add_argument("--pool", type=int, default=500, help="distinct images the tasks share")
    parser.add_argument("--labeled", type=float, default=0.3, help="fraction of tasks with an annotation")
    parser.add_argument("--database", choices=embedded.DATABASES, default="sqlite", help="Label Studio's database")
    parser.add_argument("--keep", help="keep the servers' data in this folder; a project built there earlier (same "
                                       "size and database) is measured again without building it")
    parser.add_argument("--commands", default=",".join(COMMANDS),
                        help=f"which to time against the anchor (default all: {','.join(COMMANDS)})")
    args = parser.parse_args()
    n = 5_000 if args.quick else args.tasks
    args.commands = args.commands.split(",")
    if not set(args.commands) <= set(COMMANDS):
        parser.error(f"--commands takes some of {','.join(COMMANDS)}")

    work = Path(args.keep or tempfile.mkdtemp(prefix="bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o700)
    creds_file, built_file = work / "credentials.json", work / "built.json"
    if creds_file.exists():
        creds = json.loads(creds_file.read_text())
    else:
        creds = {"token": secrets.token_hex(20), "password": secrets.token_urlsafe(12),
                 "pg_password": secrets.token_urlsafe(18)}
        write_text_atomic(creds_file, json.dumps(creds))
    built = json.loads(built_file.read_text()) if built_file.exists() else None
    if built and (built["tasks"], built["database"]) != (n, args.database):
        raise SystemExit(f"{work} holds a project of {built['tasks']} tasks on {built['database']}; "
                         "use another --keep folder")
    servers = start_servers(work, args.database, creds)
    try:
        server = servers[-1]
        client = ls.connect(Settings(url=server.url, api_key=creds["token"]))
        if built is None:
            built = {**build(client, work, n, args.pool, args.labeled), "tasks": n, "database": args.database}
            write_text_atomic(built_file, json.dumps(built))
        else:
            print(f"# reusing the project of {n} tasks built in {work}", flush=True)
        count = ls.count_tasks(client, built["project"])

        # the anchor: Label Studio's own whole-project JSON export, streamed to a file
        started = time.perf_counter()
        with open(work / "anchor.json", "wb") as fp:
            for chunk in client.projects.exports.download_sync(id=built["project"], export_type="JSON",
                                                               download_all_tasks=True,
                                                               request_options={"timeout_in_seconds": 3600}):
                fp.write(chunk)
        anchor = round(time.perf_counter() - started, 2)
        size_mb = round((work / "anchor.json").stat().st_size / 2**20, 1)
        (work / "anchor.json").unlink()
        print(f"# anchor: Label Studio's JSON export, {size_mb} MB in {anchor} s", flush=True)

        env = {**os.environ, "LABEL_STUDIO_URL": server.url, "LABEL_STUDIO_API_KEY": creds["token"],
               "GCS_BUCKET_NAME": built["bucket"], "STORAGE_EMULATOR_HOST": servers[0].url, "COLUMNS": "200",
               "XDG_CACHE_HOME": str(work / "cache")}
        shutil.rmtree(work / "cache", ignore_errors=True)  # the first incremental stats starts cold
        py = sys.executable
        pid = str(built["project"])
        stats = [py, "-m", "datalabel", "stats", pid, "--json"]
        convert = [py, "-m", "datalabel", "export", "convert", "--project", pid, "-f", "coco", "--no-images", "-o"]
        select = [py, "-m", "datalabel", "al", "select", "--project", pid, "--split", "all", "-k", "20", "--json"]
        commands = {
            "stats": stats,
            "stats_cold": stats + ["--incremental"],
            "stats_warm": stats + ["--incremental"],
            "convert": convert + [str(work / "coco")],
            "convert_warm": convert + [str(work / "coco-warm")],
            "select": select,
            "select_warm": select,
            "snapshot": [py, "-m", "dataversion", "snapshot", "--project", pid, "--format", "coco", "--out",
                         str(work / "dataset")],
        }
        # the whole-project reads run with no cache at all (they fall back, as on a first run)
        cold_env = {**env, "XDG_CACHE_HOME": str(work / "no-cache")}
        results = {name: run(cmd, env if name in WARM else cold_env)
                   for name, cmd in commands.items() if name in args.commands}
        for name, r in results.items():
            r["vs_ls_export"] = round(r["seconds"] / anchor, 3)
            print(f"# {name}: {r['seconds']} s = {r['vs_ls_export']}x the anchor, peak RSS {r['peak_rss_mb']} MB",
                  flush=True)
        summary = {"tasks": count, "database": args.database, "anchor_s": anchor, "export_mb": size_mb,
                   **{f"{k}_vs_ls_export": r["vs_ls_export"] for k, r in results.items()},
                   "peak_rss_mb": max(r["peak_rss_mb"] for r in results.values()),
                   "target_export_s_per_1k_annotations": built.get("target_export_s_per_1k_annotations"),
                   "runs": results, "build_s": built["build_s"]}
        print(json.dumps(summary))
    finally:
        for srv in reversed(servers):
            srv.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
