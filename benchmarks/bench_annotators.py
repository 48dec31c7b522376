"""Many annotators at once: team mode against the one-process server, side by side in one run.

Starts, on free loopback ports in a temp dir, two Label Studio servers with the same project of text tasks:

  team    team mode: PostgreSQL, the app under gunicorn workers behind nginx (datalabel.webserver)
  single  the one-person default: `label-studio start` (Django's one-process server) on SQLite

and N annotator users on each (default 50), each with their own user and API token. Every simulated annotator
loops through the real API for a fixed time: "next task" (GET /api/projects/ID/next/, what Label All Tasks calls:
it picks and locks a task for that user) -> submit an annotation (POST /api/tasks/ID/annotations/), then waits
--think seconds on average (0.5-1.5x, and a random start within one pause: people do not move in step).

The default pause, 2 s, is the load the goals are for: each annotator submits every ~2 s, several times faster
than people label (5-30 s per task), so 50 of them offer ~20 annotations/s (40 requests/s): on the quiet 2-core
machine of the README's figures team mode serves it with p95 under 0.5 s while the one-process server collapses
(timeouts, "database is locked"). At a 6 s pace (~7/s) both keep up (team p95 89 ms, single 434 ms); flat out
(--think 0) every server is saturated and p95 is the queue (50 annotators / throughput). The two
servers are loaded one after the other with the same load, so neither runs under the other's. Requests go through
one asyncio HTTP client (httpx) so the load generator itself stays light on the same 2 cores. Every request has a
timeout; an error is a failed request or a non-2xx answer.

    .venv/bin/python benchmarks/bench_annotators.py                      # 50 annotators, 60 s each, 2 s pauses
    .venv/bin/python benchmarks/bench_annotators.py --think 0            # flat out: latency is the queue
    .venv/bin/python benchmarks/bench_annotators.py --annotators 20 --seconds 20

The last line printed is one JSON object: annotators, team_p95_ms, team_errors, single_p95_ms, single_errors,
throughput_vs_single (annotations submitted per second, team / single), and the details under "runs".
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "data-labeling"))

from datalabel import credentials, embedded, ls, postgres, users  # noqa: E402
from datalabel.config import Settings  # noqa: E402

LABELS = ["positive", "negative", "neutral"]
CONFIG = ('<View><Text name="text" value="$text"/><Choices name="label" toName="text">'
          + "".join(f'<Choice value="{label}"/>' for label in LABELS) + "</Choices></View>")


def start(kind: str, work: Path, token: str, password: str) -> tuple[list, dict | None]:
    """The servers of one side, ([PostgreSQL, Label Studio] for team, [Label Studio] for single), and Label
    Studio's database environment."""
    servers, db_env = [], None
    try:
        if kind == "team":
            pg_password = secrets.token_urlsafe(18)
            pg = postgres.start(embedded.free_port(), work / "postgres", pg_password, log=work / "postgres.log")
            servers.append(pg)
            db_env = postgres.label_studio_env(pg.port, pg_password)
        servers.append(embedded.start_label_studio(
            embedded.free_port(), work / "ls-data", credentials.ADMIN_USER, password, token,
            log=work / "label-studio.log", timeout=600, database=db_env))
    except BaseException:
        for server in reversed(servers):
            server.stop()
        raise
    return servers, db_env


def prepare(server, data_dir: Path, db_env, token: str, annotators: int, tasks: int) -> tuple[int, list[dict]]:
    """A project of `tasks` text tasks (bulk import) and the annotators with their tokens."""
    client = ls.connect(Settings(url=server.url, api_key=token))
    project = client.projects.create(title="Annotators at once", label_config=CONFIG)
    batch = [{"text": f"Review number {i}: the product did what it said, more or less."} for i in range(tasks)]
    client.projects.import_tasks(id=project.id, request=batch)
    made = users.ensure_annotators(client, annotators, data_dir, embedded.label_studio_env(None, db_env))
    return project.id, made


async def annotate(http, url: str, project: int, token: str, stop_at: float, think: float, out: dict) -> None:
    """One annotator: next task -> submit, until stop_at. Latencies of every request, errors counted."""
    import httpx

    headers = {"Authorization": f"Token {token}"}
    rng = random.Random(token)
    if think:  # people do not start or finish in step: a random start within one pause, pauses of 0.5-1.5x
        await asyncio.sleep(rng.uniform(0, think))
    while time.monotonic() < stop_at:
        try:
            started = time.perf_counter()
            resp = await http.get(f"{url}/api/projects/{project}/next/", headers=headers)
            out["latencies"].append(time.perf_counter() - started)
            if resp.status_code == 404:  # nothing left for this annotator
                return
            if resp.status_code != 200:
                out["errors"] += 1
                out["codes"][str(resp.status_code)] = out["codes"].get(str(resp.status_code), 0) + 1
                continue
            task = resp.json()
            result = [{"from_name": "label", "to_name": "text", "type": "choices",
                       "value": {"choices": [LABELS[task["id"] % len(LABELS)]]}}]
            started = time.perf_counter()
            resp = await http.post(f"{url}/api/tasks/{int(task['id'])}/annotations/", headers=headers,
                                   json={"result": result, "lead_time": 1.0})
            out["latencies"].append(time.perf_counter() - started)
            if resp.status_code == 201:
                out["submitted"] += 1
            else:
                out["errors"] += 1
                out["codes"][str(resp.status_code)] = out["codes"].get(str(resp.status_code), 0) + 1
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            out["errors"] += 1
            out["codes"][type(exc).__name__] = out["codes"].get(type(exc).__name__, 0) + 1
        if think:
            await asyncio.sleep(think * rng.uniform(0.5, 1.5))


async def load(url: str, project: int, made: list[dict], seconds: float, think: float) -> dict:
    import httpx

    out = {"latencies": [], "errors": 0, "submitted": 0, "codes": {}}
    limits = httpx.Limits(max_connections=len(made), max_keepalive_connections=len(made))
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0), limits=limits) as http:
        started = time.monotonic()
        stop_at = started + seconds
        await asyncio.gather(*(annotate(http, url, project, a["token"], stop_at, think, out) for a in made))
        elapsed = time.monotonic() - started
    lat = sorted(out["latencies"])
    p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else float("nan")
    return {"requests": len(lat), "submitted": out["submitted"], "errors": out["errors"], "codes": out["codes"],
            "seconds": round(elapsed, 1), "per_s": round(out["submitted"] / elapsed, 2),
            "p50_ms": round(1000 * lat[len(lat) // 2], 1) if lat else None, "p95_ms": round(1000 * p95, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotators", type=int, default=50, help="simulated annotators (default 50, at most 200)")
    parser.add_argument("--seconds", type=float, default=60.0, help="load time per server (default 60, at most 900)")
    parser.add_argument("--think", type=float, default=2.0,
                        help="mean pause after each submit (default 2 s: 50 annotators offer ~20 annotations/s; "
                             "0: flat out)")
    parser.add_argument("--tasks", type=int, default=6000, help="tasks in each project (default 6,000)")
    args = parser.parse_args()
    if not (1 <= args.annotators <= 200 and 1 <= args.seconds <= 900 and 0 <= args.think <= 60
            and 1 <= args.tasks <= 100_000):
        parser.error("bounds: --annotators 1-200, --seconds 1-900, --think 0-60, --tasks 1-100000")

    work = Path(tempfile.mkdtemp(prefix="bench-annotators-"))
    runs = {}
    try:
        for kind in ("team", "single"):
            token, password = secrets.token_hex(20), secrets.token_urlsafe(12)
            started = time.perf_counter()
            servers, db_env = start(kind, work / kind, token, password)
            try:
                server = servers[-1]
                project, made = prepare(server, work / kind / "ls-data", db_env, token, args.annotators, args.tasks)
                print(f"# {kind}: ready in {time.perf_counter() - started:.0f} s ({server.url}); loading "
                      f"{args.annotators} annotators for {args.seconds:.0f} s", flush=True)
                runs[kind] = asyncio.run(load(server.url, project, made, args.seconds, args.think))
                print(f"# {kind}: {json.dumps(runs[kind])}", flush=True)
            finally:
                for srv in reversed(servers):
                    srv.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    team, single = runs["team"], runs["single"]
    print(json.dumps({"annotators": args.annotators, "team_p95_ms": team["p95_ms"], "team_errors": team["errors"],
                      "single_p95_ms": single["p95_ms"], "single_errors": single["errors"],
                      "throughput_vs_single": round(team["per_s"] / single["per_s"], 2) if single["per_s"] else None,
                      "think_s": args.think, "seconds": args.seconds, "runs": runs}))


if __name__ == "__main__":
    main()
