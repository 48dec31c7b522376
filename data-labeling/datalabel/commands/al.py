"""`datalabel al`: the active-learning loop — splits, pre-annotations, uncertainty sampling, training, ML backend."""
from __future__ import annotations

from typing import List, Optional

import typer

from .options import API_KEY, COUNT_MAX, ID_MAX, JSON, SEED_MAX, URL, finite
from .options import client as connect

app = typer.Typer(
    help="Active learning: a model pre-annotates, annotators correct the least certain tasks first, the model "
         "retrains, repeat.",
    no_args_is_help=True,
)

PROJECT = typer.Option(..., "--project", "-p", min=1, max=ID_MAX, help="Project id (see `datalabel projects list`).")
MODELS = typer.Option("models", "--models-dir", envvar="DATALABEL_MODELS_DIR", show_envvar=True,
                      help="Folder of saved model versions (one sub-folder per project).")
KEEP = typer.Option(5, "--keep-models", envvar="DATALABEL_KEEP_MODELS", show_envvar=True, min=1, max=COUNT_MAX,
                    help="Model files kept per project; older versions are deleted after a training.")
MODEL_CLASS = typer.Option(None, "--model-class", envvar="DATALABEL_MODEL_CLASS", show_envvar=True,
                           help="Your model, package.module:Class (a datalabel.active.Classifier); default: "
                                "logistic regression on 8x8 pixels.")
SECRETS = typer.Option("secrets", "--secrets-dir", envvar="SECRETS_DIR", show_envvar=True,
                       help="Where the ML backend's basic-auth pair is kept (ml_backend_user, ml_backend_password; "
                            "generated on first use). DATALABEL_ML_BACKEND_USER/_PASSWORD take precedence.")
SCORE = typer.Option("least-confidence", "--strategy", "-s",
                     help="What a prediction's score is the certainty of (least-confidence, margin, entropy); "
                          "Label Studio serves the lowest score first. Use the strategy you select with.")


@app.command("split")
def split_cmd(project: int = PROJECT,
              seed: int = typer.Option(0, "--seed", min=0, max=SEED_MAX, help="Seed of the hash; the same seed gives the same splits."),
              valid: float = typer.Option(0.1, "--valid", min=0.0, max=1.0, callback=finite, help="Fraction for the valid split."),
              test: float = typer.Option(0.1, "--test", min=0.0, max=1.0, callback=finite, help="Fraction for the test split."),
              reassign: bool = typer.Option(False, "--reassign", help="Recompute splits already stored."),
              url: str = URL, api_key: str = API_KEY, json_out: bool = JSON):
    """Write a train/valid/test split into every task (a "split" column in the Data Manager); reruns keep old
    tasks where they are.

    Example: datalabel al split --project 3 --seed 0 --valid 0.1 --test 0.1
    """
    from .. import active
    from ..output import print_json, progress

    client = connect(url, api_key)
    with progress("read tasks without a split", unit=None) as advance:
        result = active.assign_splits(client, project, seed, valid, test, reassign, progress=advance)
    if json_out:
        return print_json(result)
    typer.echo(f"project {project}: {result['assigned']} task(s) assigned, {result['kept']} kept; "
               f"train {result['train']}, valid {result['valid']}, test {result['test']}")


@app.command("preannotate")
def preannotate_cmd(project: int = PROJECT,
                    model: Optional[str] = typer.Option(None, "--model", help="Model file, or 'latest' for the "
                                                        "project's newest version in --models-dir."),
                    source: Optional[str] = typer.Option(None, "--from", help="JSONL or CSV of path, label(s), score."),
                    model_version: Optional[str] = typer.Option(None, "--model-version",
                                                                help="Version tag (default: the model's, or the file name)."),
                    include_labeled: bool = typer.Option(False, "--include-labeled", help="Predict labeled tasks too."),
                    strategy: str = SCORE,
                    split: str = typer.Option("train", "--split", help="Tasks to predict: train (default; valid and "
                                              "test stay out of the labeling queue), valid, test or all."),
                    queue: bool = typer.Option(True, "--queue/--no-queue", help="Make \"Label All Tasks\" serve the "
                                               "least certain task first by these predictions."),
                    models_dir: str = MODELS, model_class: Optional[str] = MODEL_CLASS, url: str = URL,
                    api_key: str = API_KEY, json_out: bool = JSON):
    """Upload predictions (label, certainty score, model version) for a project's tasks in bulk, and let the
    labeling queue serve by them.

    Example: datalabel al preannotate --project 3 --model latest
    Example: datalabel al preannotate --project 3 --from predictions.jsonl --model-version resnet-7
    """
    from .. import active
    from ..output import print_json, progress

    client = connect(url, api_key)
    with progress(f"read project {project}", unit="bytes") as advance:
        result = active.preannotate(client, project, model_path=model, file=source, model_version=model_version,
                                    include_labeled=include_labeled, models_dir=models_dir, strategy=strategy,
                                    split=split, queue=queue, progress=advance, model_class=model_class)
        if result["sampling"]:
            result["locks_released"] = len(active.release_locks(client, project))
    if json_out:
        return print_json(result)
    extra = f", {result['unmatched']} line(s) matched no task" if result["unmatched"] else ""
    typer.echo(f"project {project}: {result['created']} prediction(s) of {result['model_version']} uploaded "
               f"in {result['seconds']}s, {result['skipped']} already there{extra}")
    if result["sampling"]:
        typer.echo(f"\"Label All Tasks\" now serves the least certain task first ({result['sampling']['sampling']} "
                   f"over {result['model_version']})")


@app.command("select")
def select_cmd(project: int = PROJECT,
               strategy: str = typer.Option("least-confidence", "--strategy", "-s",
                                            help="least-confidence, margin, entropy or random."),
               top_k: int = typer.Option(20, "--top-k", "-k", min=1, max=COUNT_MAX, help="How many tasks to select."),
               max_score: Optional[float] = typer.Option(None, "--max-score", min=0.0, max=1.0, callback=finite,
                                                         help="Only tasks whose top_prob (the top class's "
                                                              "probability) is at most this."),
               model_version: Optional[str] = typer.Option(None, "--model-version",
                                                           help="Use this version's predictions (default: the project's "
                                                                "model version, else each task's latest)."),
               split: str = typer.Option("train", "--split", help="Draw from this split: train (default), valid, "
                                         "test, or all."),
               view: str = typer.Option("Active learning: label next", "--view",
                                        help="Title of the Data Manager tab that shows the selection."),
               seed: int = typer.Option(0, "--seed", min=0, max=SEED_MAX, help="Seed for --strategy random."),
               url: str = URL, api_key: str = API_KEY, json_out: bool = JSON):
    """Pick the unlabeled train tasks the model is least sure about and show them in a Data Manager tab.

    Example: datalabel al select --project 3 --strategy margin --top-k 25 --max-score 0.9
    """
    from .. import active
    from ..output import print_json, print_table, progress

    client = connect(url, api_key)
    with progress(f"read project {project}", unit="bytes") as advance:
        # release: a task left open (locked) in the last session would come before this rank 1
        result = active.select_tasks(client, project, strategy, top_k, max_score, model_version, split, seed, view,
                                     progress=advance, release=True)
    if json_out:
        return print_json(result)
    print_table([{**c, "top_prob": f"{c['top_prob']:.3f}", "uncertainty": f"{c['uncertainty']:.3f}",
                  "prediction_score": "" if c["prediction_score"] is None else f"{c['prediction_score']:.3f}"}
                 for c in result["selected"]], ["task_id", "label", "top_prob", "prediction_score", "uncertainty",
                                                "split"],
                title=f"{len(result['selected'])} of {result['pool']} unlabeled task(s), {strategy}")
    typer.echo(f"view {result['view']['title']!r}: {result['view']['url']}")
    if result["queue_matches"]:
        typer.echo("\"Label All Tasks\" serves these first, in this order (then the rest of the train split)")
    else:
        typer.echo(f"note: Label Studio's queue does not follow {strategy} scores of this version; label the tab "
                   f"with \"Label Tasks As Displayed\", or run `datalabel al preannotate -s {strategy}` first")


@app.command("train")
def train_cmd(project: int = PROJECT, models_dir: str = MODELS,
              policy: str = typer.Option("latest", "--policy", help="Which annotation counts: latest, ground-truth, "
                                                                   "majority."),
              force: bool = typer.Option(False, "--force", help="Train even if the labels are those the newest "
                                                                 "version was trained on."),
              keep: int = KEEP, model_class: Optional[str] = MODEL_CLASS, url: str = URL, api_key: str = API_KEY,
              json_out: bool = JSON):
    """Train the model (default: logistic regression on pixels) on the labeled train split, evaluate on valid, save the next version.

    Example: datalabel al train --project 3 --models-dir models
    """
    from .. import active
    from ..output import print_json, progress

    client = connect(url, api_key)
    with progress(f"read project {project}", unit="bytes") as advance:
        model = active.train_project(client, project, models_dir, policy, only_if_changed=not force, keep=keep,
                                     progress=advance, model_class=model_class)
    if model is None:
        newest = active.load_model("latest", models_dir, project, model_class)
        if json_out:
            return print_json({**newest.info(), "trained": False})
        typer.echo(f"labels unchanged since {newest.version}: nothing trained (--force to train anyway)")
        return
    info = {**model.info(), "trained": True,
            "path": str(active.model_path(models_dir, project, model.version))}
    if json_out:
        return print_json(info)
    acc = "n/a (no labeled valid tasks)" if model.valid_accuracy is None else f"{model.valid_accuracy:.3f}"
    typer.echo(f"{model.version}: trained on {model.n_train} label(s), valid accuracy {acc} "
               f"({model.n_valid} task(s)); saved {info['path']}")


@app.command("serve")
def serve_cmd(host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (0.0.0.0 only where Label "
                                       "Studio is on another host or container; basic auth is required anyway)."),
              port: int = typer.Option(9090, "--port", min=1, max=65535, help="Port to listen on."),
              keep: int = KEEP, strategy: str = SCORE, model_class: Optional[str] = MODEL_CLASS,
              models_dir: str = MODELS, secrets_dir: str = SECRETS, url: str = URL, api_key: str = API_KEY):
    """Run the ML backend Label Studio calls for predictions and retraining (until Ctrl-C). It reads the Label
    Studio given here (never one a request names) and answers only with its basic-auth pair.

    Example: datalabel al serve --port 9090   (then: datalabel al connect --project 3 --backend http://127.0.0.1:9090)
    """
    import logging

    from .. import credentials, mlbackend
    from ..config import Settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = Settings.load(url=url, api_key=api_key)
    settings.require_url()
    settings.require_api_key()
    pair = mlbackend.Credentials(*credentials.ml_backend(secrets_dir))
    backend = mlbackend.Backend(models_dir, settings, keep=keep, strategy=strategy, model_class=model_class)
    typer.echo(f"ML backend on http://{host}:{port} for Label Studio {settings.url} (models in {models_dir}; "
               f"basic auth as {pair.user!r}; `al connect` hands the pair to Label Studio)")
    mlbackend.serve(backend, pair, host, port)


@app.command("connect")
def connect_cmd(project: int = PROJECT,
                backend: str = typer.Option("http://127.0.0.1:9090", "--backend", help="URL of `datalabel al serve`."),
                title: str = typer.Option("datalabel-logreg", "--title", help="Name shown in the project settings."),
                retrieve: bool = typer.Option(False, "--retrieve", help="Also fetch predictions for all tasks now."),
                split: str = typer.Option("train", "--split", help="Tasks predicted for the labeling queue "
                                          "(train, valid, test or all)."),
                wait: float = typer.Option(30.0, "--wait", min=0, max=86400, callback=finite, help="Seconds to wait for the backend to answer."),
                secrets_dir: str = SECRETS, url: str = URL, api_key: str = API_KEY, json_out: bool = JSON):
    """Connect a running ML backend to a project with its basic-auth pair: predictions when a task opens,
    retraining on new labels.

    Example: datalabel al connect --project 3 --backend http://127.0.0.1:9090 --retrieve
    """
    from .. import credentials, mlbackend
    from ..config import check_url
    from ..output import print_json

    check_url(backend, "--backend")  # before a pair is made for it
    client = connect(url, api_key)
    pair = mlbackend.Credentials(*credentials.ml_backend(secrets_dir))
    result = mlbackend.connect(client, project, backend, pair, title, split, wait)
    if retrieve:
        mlbackend.retrieve_predictions(client, project)
    if json_out:
        return print_json(result)
    typer.echo(f"project {project}: ML backend {result['url']} {'connected' if result['created'] else 'updated'} "
               f"(state {result['state']}, model {result['model_version']}, basic auth, "
               f"retrain webhook {'on' if result['webhook'] else 'missing'}, training on annotation submission on)")
    if result["sampling"]:
        typer.echo(f"\"Label All Tasks\" serves the least certain task first by {result['model_version']} "
                   f"({result['predicted']} task(s) predicted now)")


@app.command("simulate")
def simulate_cmd(out: str = typer.Option("benchmarks/out", "--out", help="Folder for the PNG and tables."),
                 strategies: List[str] = typer.Option(list(("least-confidence", "margin", "entropy", "random")),
                                                      "--strategy", "-s", help="Repeat for several."),
                 repeats: int = typer.Option(3, "--repeats", min=1, max=1000, help="Runs averaged per strategy."),
                 initial: int = typer.Option(20, "--initial", min=1, max=COUNT_MAX, help="Random labels to start from."),
                 step: int = typer.Option(10, "--step", min=1, max=COUNT_MAX, help="Labels added per round."),
                 budget: int = typer.Option(300, "--budget", min=1, max=COUNT_MAX, help="Labels at the last round."),
                 samples_dir: str = typer.Option(".stack/samples-all", "--samples", help="Where the digits PNGs go."),
                 json_out: bool = JSON):
    """Run the loop offline on the digits sample with a simulated annotator; write learning curves.

    Example: datalabel al simulate --repeats 3 --budget 300 --out benchmarks/out
    """
    from .. import active, samples
    from ..errors import require
    from ..output import print_json, print_table, progress

    require("matplotlib", "plots", "the learning-curve PNG")  # before the work, not after it
    folder = samples.write_digits(samples_dir)
    sizes = len(range(initial, budget + 1, step)) + 1
    with progress("simulate", repeats * len(strategies) * sizes, unit="models fit") as advance:
        sim = active.simulate(folder, strategies, repeats, initial, step, budget, progress=advance)
    paths = active.write_report(sim, out)
    result = {"fractions_vs_random": sim.fractions_vs_random(), "files": {k: str(v) for k, v in paths.items()},
              "table": sim.table_rows()}
    if json_out:
        return print_json(result)
    print_table(sim.table_rows(), title="test accuracy by number of labels")
    for strategy, fraction in result["fractions_vs_random"].items():
        typer.echo(f"{strategy}: reaches random's accuracy at {budget} labels with "
                   + ("more labels than the budget" if fraction is None else f"{fraction:.0%} of them"))
    typer.echo(f"wrote {paths['png']}, {paths['md']}, {paths['csv']}")
