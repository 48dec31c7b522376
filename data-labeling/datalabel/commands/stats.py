"""`datalabel stats PROJECT`: how far labeling got, per class, per annotator, per model version."""
from __future__ import annotations

from pathlib import Path

import typer

from .options import API_KEY, ID_MAX, JSON, POLICY, URL, client

def stats_cmd(
    project: int = typer.Argument(..., min=1, max=ID_MAX, help="Project id."),
    policy: str = POLICY,
    incremental: bool = typer.Option(
        False, "--incremental", "-i",
        help="Read annotations from the project's target storage through a local cache: only files new or changed "
             "since the last run are fetched (fast on big projects once warm). Reads the whole project instead, "
             "with a note, when target storage is missing or out of step with Label Studio."),
    cache: Path = typer.Option(None, "--cache", help="Cache file for --incremental (default: one per project in "
                                                     "~/.cache/datalabel/targets/)."),
    url: str = URL, api_key: str = API_KEY, json_out: bool = JSON,
):
    """Task, class, annotator and prediction counts of a project (a table, or --json for scripts).

    Labeled tasks have at least one submitted annotation; skipped tasks only skipped/cancelled ones.

    Examples:
      datalabel stats 3
      datalabel stats 3 --json | jq .tasks
      datalabel stats 3 --incremental      # big projects: the second run fetches only what changed
    """
    from ..output import print_json, progress
    from ..stats import incremental_stats, project_stats
    from ..errors import ConfigError
    from ..tasks import POLICIES

    if policy not in POLICIES:
        raise ConfigError(f"unknown --policy {policy!r}; choose one of: {', '.join(POLICIES)}")
    if cache is not None and not incremental:
        raise ConfigError("--cache goes with --incremental")
    if incremental:
        with progress(f"read target storage of project {project}", unit="files") as advance:
            result = incremental_stats(client(url, api_key), project, policy, cache, progress=advance)
    else:
        with progress(f"read project {project}", unit="bytes") as advance:
            result = project_stats(client(url, api_key), project, policy, progress=advance)
    if json_out:
        print_json(result)
    else:
        print_stats(result)


def print_stats(result: dict) -> None:
    from ..output import print_table

    p, t = result["project"], result["tasks"]
    print_table([t], ["total", "labeled", "unlabeled", "skipped"] + (["empty"] if t.get("empty") else []),
                f"Project {p['id']}: {p['title']}")
    if result["classes"]:
        print_table([{"class": k, **v} for k, v in result["classes"].items()], ["class", "count", "tasks"],
                    f"Classes ({result['policy']} annotation per task)")
    if result["annotators"]:
        print_table([{"annotator": k, **v} for k, v in result["annotators"].items()],
                    ["annotator", "annotations", "skipped"], "Annotators")
    if result["predictions"]:
        print_table([{"model_version": k, **v} for k, v in result["predictions"].items()],
                    ["model_version", "predictions", "tasks", "mean_score"], "Predictions")
