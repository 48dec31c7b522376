"""`datalabel quality`: agreement between annotators, consensus, and the likely mislabels, reviewed in the UI."""
from __future__ import annotations

from typing import Optional

import typer

from .options import API_KEY, COUNT_MAX, ID_MAX, JSON, SEED_MAX, URL
from .options import client as connect

app = typer.Typer(help="Label quality: agreement between annotators, the consensus of each task, and the labels most "
                       "likely wrong, queued for review in Label Studio.", no_args_is_help=True)

PROJECT = typer.Option(..., "--project", "-p", min=1, max=ID_MAX, help="Project id (see `datalabel projects list`).")


def _num(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


@app.command("agreement")
def agreement_cmd(project: int = PROJECT, url: str = URL, api_key: str = API_KEY, json_out: bool = JSON,
                  show_tasks: bool = typer.Option(False, "--tasks", help="Also list the consensus of each task.")):
    """Agreement on the tasks two or more annotators labeled: Cohen's kappa per pair, Krippendorff's alpha
    (nominal) for the project and per class, each annotator's agreement with the consensus; for boxes and
    polygons, regions matched by IoU >= 0.5 with F1 and mean IoU. Ties of the majority are flagged.

    Example: datalabel quality agreement --project 3
    """
    from .. import quality
    from ..output import print_json, print_table, progress

    client = connect(url, api_key)
    with progress(f"read project {project}", unit="bytes") as advance:
        result = quality.project_agreement(client, project, progress=advance)
    if json_out:
        return print_json(result)
    if not result["tasks"]:
        typer.echo(f"project {project}: no task has two or more annotations yet; set an overlap "
                   f"(`datalabel projects overlap {project} --annotators 2`) and label")
        return
    if result["kind"] == "classification":
        typer.echo(f"project {project}: {result['tasks']} task(s) labeled by 2+ of {result['annotators']} "
                   f"annotator(s); "
                   f"Krippendorff's alpha {_num(result['alpha'])}, mean Cohen's kappa {_num(result['mean_kappa'])}, "
                   f"{len(result['ties'])} tie(s)")
        print_table([{**p, "agreement": _num(p["agreement"]), "kappa": _num(p["kappa"])} for p in result["pairs"]],
                    ["a", "b", "tasks", "agreement", "kappa"], title="Annotator pairs")
        print_table([{**r, "consensus_agreement": _num(r["consensus_agreement"]), "mean_kappa": _num(r["mean_kappa"])}
                     for r in result["per_annotator"]],
                    ["annotator", "tasks", "consensus_tasks", "consensus_agreement", "mean_kappa"], title="Annotators")
        print_table([{"class": k, "alpha": _num(v)} for k, v in result["alpha_per_class"].items()],
                    title="Krippendorff's alpha per class")
        if show_tasks:
            print_table([{**c, "label": c["label"] or "tie: " + ",".join(c["tied"]), "share": _num(c["share"], 2),
                          "votes": ", ".join(f"{k}={v}" for k, v in c["votes"].items())} for c in result["consensus"]],
                        ["task_id", "label", "share", "votes"], title="Consensus")
    else:
        typer.echo(f"project {project}: {result['tasks']} task(s) labeled by 2+ of {result['annotators']} "
                   f"annotator(s); "
                   f"regions matched at IoU >= {result['iou_threshold']}: F1 {_num(result['f1'])}, "
                   f"mean IoU {_num(result['mean_iou'])}")
        print_table([{**p, "f1": _num(p["f1"]), "mean_iou": _num(p["mean_iou"])} for p in result["pairs"]],
                    ["a", "b", "tasks", "matched", "regions", "f1", "mean_iou"], title="Annotator pairs")


@app.command("mislabels")
def mislabels_cmd(project: int = PROJECT,
                  folds: int = typer.Option(5, "--folds", "-k", min=2, max=100, help="Folds of the out-of-fold scoring."),
                  limit: Optional[int] = typer.Option(None, "--limit", "-n", min=1, max=COUNT_MAX,
                                                      help="Review at most this many (default: all flagged)."),
                  seed: int = typer.Option(0, "--seed", min=0, max=SEED_MAX, help="Seed of the folds and the model."),
                  review: bool = typer.Option(True, "--review/--no-review",
                                              help="Write the review tab and queue in Label Studio."),
                  url: str = URL, api_key: str = API_KEY, json_out: bool = JSON):
    """Rank the labeled tasks most likely mislabeled: out-of-fold probabilities of the project's model (k-fold
    over the labeled train split), confident learning (cleanlab). The suspects go to a Data Manager tab
    "Review: likely mislabeled" in rank order, and "Label All Tasks" serves rank 1 first to you (the token's user).

    Example: datalabel quality mislabels --project 3 --limit 30
    """
    from .. import quality
    from ..output import print_json, print_table, progress

    client = connect(url, api_key)
    with progress(f"read project {project}", unit="bytes") as advance:
        result = quality.project_mislabels(client, project, folds, seed, limit, review, progress=advance)
    if json_out:
        return print_json({k: v for k, v in result.items() if k != "ranking"})
    print_table([{**s, "score": _num(s["score"]), "suggested_probability": _num(s["suggested_probability"], 2)}
                 for s in result["suspects"]],
                ["rank", "task_id", "given", "suggested", "suggested_probability", "score", "split", "annotators"],
                title=f"{result['flagged']} of {result['labeled']} labeled task(s) flagged (cleanlab, "
                      f"{result['folds']}-fold out-of-fold probabilities); lowest score first")
    rev = result["review"]
    if rev is None:
        typer.echo("no label looks wrong: nothing to review" if not result["suspects"] else "review tab not written")
        return
    typer.echo(f"view {rev['view']['title']!r}: {rev['view']['url']} ({rev['reopened']} task(s) reopened for "
               f"one more annotation)")
    if rev["first"] is None:
        typer.echo(f"note: you ({rev['reviewer']}) labeled every suspect yourself; Label Studio serves them to "
                   "another reviewer, not to you")
    elif rev["served_first"] == rev["first"]:
        typer.echo(f"\"Label All Tasks\" serves {rev['reviewer']} task {rev['first']} (rank 1) first, then the other "
                   f"suspects; `datalabel al preannotate` gives the queue back to the model")
    else:
        typer.echo(f"note: \"Label All Tasks\" serves {rev['reviewer']} task {rev['served_first']} first "
                   f"({rev['queue']}); finish or skip it, or label the tab with \"Label Tasks As Displayed\"")
