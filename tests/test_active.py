"""Active learning against the real Label Studio server: splits, bulk predictions, selection views, training."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from datalabel import active, embedded, ls, samples
from datalabel.errors import ConfigError, LabError, NotFound
from datalabel.tasks import Task


# --- pure logic -----------------------------------------------------------------------------------------------


def test_split_is_a_stable_hash_with_the_requested_fractions():
    keys = [f"gs://b/images/digit_{i:04d}.png" for i in range(4000)]
    first = [active.split_of(k, 0) for k in keys]
    assert first == [active.split_of(k, 0) for k in keys]
    counts = {s: first.count(s) / len(keys) for s in active.SPLITS}
    assert abs(counts["valid"] - 0.1) < 0.02 and abs(counts["test"] - 0.1) < 0.02
    assert [active.split_of(k, 1) for k in keys] != first  # the seed matters
    with pytest.raises(ConfigError):
        active.split_of("x", 0, valid=0.6, test=0.5)


def test_uncertainty_strategies_rank_as_defined():
    probs = np.array([
        [0.98, 0.01, 0.01],   # sure
        [0.50, 0.49, 0.01],   # two-way tie: smallest margin
        [0.40, 0.30, 0.30],   # lowest top score, highest entropy
        [0.70, 0.20, 0.10],
    ])
    assert active.select(probs, "least-confidence", 2) == [2, 1]
    assert active.select(probs, "margin", 2) == [1, 2]
    assert active.select(probs, "entropy", 1) == [2]
    assert active.select(probs, "least-confidence", 4, max_score=0.7) == [2, 1, 3]
    assert active.select(probs, "random", 4, seed=3) == active.select(probs, "random", 4, seed=3)
    assert sorted(active.select(probs, "random", 4, seed=3)) == [0, 1, 2, 3]
    with pytest.raises(ConfigError):
        active.select(probs, "most-fun", 2)


def test_certainty_is_the_reverse_order_of_uncertainty_in_0_1():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.full(10, 0.5), size=200)
    for strategy in active.SCORE_STRATEGIES:
        sure = active.certainty(probs, strategy)
        assert sure.min() >= 0 and sure.max() <= 1 + 1e-12
        # the lowest certainty first (Label Studio's queue) is the most uncertain first (al select)
        assert list(np.argsort(sure, kind="stable")[:20]) == active.select(probs, strategy, 20)
    assert active.certainty([[0.5, 0.3, 0.2]], "margin")[0] == pytest.approx(0.2)
    with pytest.raises(ConfigError):
        active.certainty(probs, "random")


def test_prediction_probs_from_scores_map_or_top_score():
    target = active.Target("choice", "image", "image", ["a", "b", "c"])
    full = active.prediction_json(1, {"a": 0.2, "b": 0.7, "c": 0.1}, target, "m1")
    assert full["score"] == pytest.approx(0.7) and full["result"][0]["value"] == {"choices": ["b"]}
    assert active.prediction_probs(full, target.labels) == pytest.approx({"a": 0.2, "b": 0.7, "c": 0.1})
    only_top = {"result": [{"type": "choices", "value": {"choices": ["a"]}}], "score": 0.6}
    assert active.prediction_probs(only_top, target.labels) == pytest.approx({"a": 0.6, "b": 0.2, "c": 0.2})
    assert active.prediction_probs({"result": [], "score": 0.5}, target.labels) is None
    # the scores map survives the shared task model, so margin / entropy see every class
    task = Task.from_json({"id": 1, "data": {"image": "gs://b/x.png"}, "predictions": [full]})
    assert active.prediction_probs(task.predictions[0], target.labels) == pytest.approx(full["result"][0]["scores"])


def test_prediction_files_are_checked_line_by_line(tmp_path):
    good = tmp_path / "p.csv"
    good.write_text("path,label,score\ndigit_0001.png,1,0.8\ngs://b/x/digit_0002.png,2;3,0.4\n")
    rows = active.read_prediction_file(good)
    assert [(r.path, r.labels, r.score) for r in rows] == [("digit_0001.png", ["1"], 0.8),
                                                          ("gs://b/x/digit_0002.png", ["2", "3"], 0.4)]
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"path": "a.png", "label": "1", "score": 0.5}\nnot json\n')
    with pytest.raises(LabError, match=r"p.jsonl:2"):
        active.read_prediction_file(bad)
    out_of_range = tmp_path / "q.jsonl"
    out_of_range.write_text('{"path": "a.png", "label": "1", "score": 7}\n')
    with pytest.raises(LabError, match="outside 0..1"):
        active.read_prediction_file(out_of_range)


def test_simulation_uses_the_same_selection_and_uncertainty_beats_random(tmp_path):
    folder = samples.write_digits(tmp_path / "digits", limit=600)
    sim = active.simulate(folder, ["margin", "random"], repeats=1, initial=20, step=20, budget=120)
    assert sim.sizes[0] == 20 and sim.sizes[-1] == 120
    assert len(sim.accuracy["margin"][0]) == len(sim.sizes)
    # same starting labels: the first point is identical, then margin pulls ahead on this data
    assert sim.accuracy["margin"][0][0] == sim.accuracy["random"][0][0]
    assert sim.mean("margin")[-1] > sim.mean("random")[-1]
    paths = active.write_report(sim, tmp_path / "out")
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| labels | margin | random |" in paths["md"].read_text()
    assert not list((tmp_path / "out").glob("*.tmp"))


# --- against Label Studio -------------------------------------------------------------------------------------


def _project(ls_client, bucket, tmp_path, limit, name):
    samples_dir = tmp_path / "samples"
    pid = embedded.seed_demo(ls_client, bucket.name, samples_dir, limit=limit, title=f"{name} {bucket.name}")
    return pid, samples.read_truth(samples_dir), samples_dir


def _annotate(ls_client, task, label):
    ls_client.annotations.create(id=task.id, result=[{
        "type": "choices", "from_name": "choice", "to_name": "image", "value": {"choices": [label]}}])


def _file_name(task):
    return active.media_url(task).rsplit("/", 1)[-1]


def _dm_task_ids(ls_client, pid, filters):
    """Task ids the Data Manager lists for these filters (a temporary tab, deleted after)."""
    view = ls_client.views.create(project=pid, data={"title": "probe", "filters": filters})
    try:
        return sorted(t.id for t in ls_client.tasks.list(project=pid, view=view.id, fields="task_only"))
    finally:
        ls_client.views.delete(id=str(view.id))


def test_splits_are_stored_stable_visible_and_new_tasks_do_not_move_old_ones(ls_client, bucket, tmp_path):
    title = f"splits {bucket.name}"
    pid = embedded.seed_demo(ls_client, bucket.name, tmp_path / "samples", limit=12, title=title)
    # a split stored in meta by an earlier version is kept, whatever the hash says
    old = sorted(active.load_tasks(ls_client, pid), key=lambda t: t.id)[0]
    ls_client.tasks.update(id=str(old.id), meta={"split": "test"})
    first = active.assign_splits(ls_client, pid, seed=5)
    assert first["assigned"] == 12 and first["train"] + first["valid"] + first["test"] == 12
    tasks = {t.id: t for t in active.load_tasks(ls_client, pid)}
    before = {tid: t.data["split"] for tid, t in tasks.items()}
    assert before[old.id] == "test"
    for t in tasks.values():
        if t.id != old.id:
            assert t.data["split"] == active.split_of(active.media_url(t), 5)
        assert active.task_split(t) == t.data["split"]

    # visible in the UI: a Data Manager column that its filters understand
    valid = sorted(tid for tid, s in before.items() if s == "valid")
    assert _dm_task_ids(ls_client, pid, {"conjunction": "and", "items": [
        {"filter": "filter:tasks:data.split", "operator": "equal", "type": "String", "value": "valid"}]}) == valid

    again = active.assign_splits(ls_client, pid, seed=5)
    assert again["assigned"] == 0 and again["kept"] == 12

    # eight more images arrive in the bucket; a different seed must not move the old tasks
    embedded.seed_demo(ls_client, bucket.name, tmp_path / "samples", limit=20, title=title)
    grown = active.assign_splits(ls_client, pid, seed=9)
    assert grown["tasks"] == 20 and grown["assigned"] == 8 and grown["kept"] == 12
    after = {t.id: t for t in active.load_tasks(ls_client, pid)}
    assert {tid: after[tid].data["split"] for tid in before} == before
    for tid in set(after) - set(before):
        assert after[tid].data["split"] == active.split_of(active.media_url(after[tid]), 9)


def test_split_of_a_demo_size_project_is_bulk(ls_client, bucket, monkeypatch):
    """One bulk write per split, none per task, and a rerun writes nothing. How long it takes is
    benchmarks/bench_active_learning.py's split_bulk_s and split_rerun_s (1,797 tasks)."""
    project = ls_client.projects.create(title=f"split size {bucket.name}", label_config=active_config())
    ls_client.projects.import_tasks(id=project.id, request=[
        {"image": f"gs://{bucket.name}/images_unlabeled/digit_{i:04d}.png"} for i in range(1797)])
    writes = []
    create = ls_client.actions.create
    monkeypatch.setattr(ls_client.actions, "create", lambda **kw: writes.append(kw) or create(**kw))
    result = active.assign_splits(ls_client, project.id)
    assert result["assigned"] == 1797 and len(writes) == 3  # one bulk write per split, none per task
    stored = {t.id: t.data.get("split") for t in active.load_tasks(ls_client, project.id)}
    assert all(s in active.SPLITS for s in stored.values())
    assert result == {**result, **{name: list(stored.values()).count(name) for name in active.SPLITS}}
    read = []  # every task the rerun reads (the real listing, counted)
    iter_task_json = ls.iter_task_json
    monkeypatch.setattr(ls, "iter_task_json", lambda *a, **kw: (read.append(t) or t for t in iter_task_json(*a, **kw)))
    assert active.assign_splits(ls_client, project.id)["assigned"] == 0 and len(writes) == 3  # nothing to write
    assert read == []  # a rerun reads only tasks without a split: none
    assert {t.id: t.data["split"] for t in active.load_tasks(ls_client, project.id)} == stored


def active_config():
    from datalabel.labelconfig import build_config

    return build_config("image-classification", samples.DIGIT_LABELS)


def test_bulk_predictions_from_a_file_keep_scores_and_version(label_studio, ls_client, bucket, tmp_path):
    pid, truth, _ = _project(ls_client, bucket, tmp_path, 10, "bulk")
    names = sorted(truth)
    lines = [json.dumps({"path": name, "label": truth[name], "score": round(0.5 + i / 40, 3)})
             for i, name in enumerate(names)]
    lines.append(json.dumps({"path": "not_in_project.png", "label": "1", "score": 0.9}))
    file = tmp_path / "preds.jsonl"
    file.write_text("\n".join(lines) + "\n")

    result = active.preannotate(ls_client, pid, file=file, model_version="external-v7", split="all")
    assert result["created"] == 10 and result["unmatched"] == 1
    tasks = active.load_tasks(ls_client, pid)
    for task in tasks:
        (pred,) = task.predictions
        i = names.index(_file_name(task))
        assert pred.model_version == "external-v7"
        assert pred.score == pytest.approx(0.5 + i / 40, abs=1e-3)
        assert pred.result[0].labels == [truth[names[i]]]

    # images come from the bucket directly, or through Label Studio's proxy when the bucket is out of reach
    proxy = active.ImageLoader(label_studio.url, label_studio.token, use_gcs=False)
    direct = active.ImageLoader(None, None, use_gcs=True)
    blob = bucket.blob(f"{embedded.SOURCE_PREFIX}{names[0]}").download_as_bytes()
    task0 = next(t for t in tasks if _file_name(t) == names[0])
    assert proxy.fetch(task0.data["image"], task0.id) == blob == direct.fetch(task0.data["image"], task0.id)

    rerun = active.preannotate(ls_client, pid, file=file, model_version="external-v7", split="all")
    assert rerun["created"] == 0 and rerun["skipped"] == 10

    wrong = tmp_path / "wrong.csv"
    wrong.write_text(f"path,label,score\n{names[0]},cat,0.5\n")
    with pytest.raises(LabError, match="not in the project's labels"):
        active.preannotate(ls_client, pid, file=wrong, split="all")


def test_selection_picks_the_least_confident_and_the_view_shows_exactly_them(ls_client, bucket, tmp_path):
    pid, truth, _ = _project(ls_client, bucket, tmp_path, 10, "select")
    tasks = sorted(active.load_tasks(ls_client, pid), key=lambda t: t.id)
    target = active.project_target(ls_client, pid)
    rng = np.random.default_rng(0)
    top = {t.id: float(s) for t, s in zip(tasks, rng.permutation(np.linspace(0.3, 0.95, len(tasks))))}
    preds = []
    for task in tasks:
        rest = (1 - top[task.id]) / 9
        probs = {label: rest for label in target.labels}
        probs[truth[_file_name(task)]] = top[task.id]
        preds.append(active.prediction_json(task.id, probs, target, "m1"))
    assert active.import_predictions(ls_client, pid, preds) == 10
    # a labeled task is never selected, however unsure the model was
    least = min(top, key=top.get)
    _annotate(ls_client, next(t for t in tasks if t.id == least), "0")
    unlabeled = {tid: s for tid, s in top.items() if tid != least}
    expected = sorted(unlabeled, key=unlabeled.get)[:3]

    result = active.select_tasks(ls_client, pid, "least-confidence", k=3, split="all")
    assert [c["task_id"] for c in result["selected"]] == expected
    assert sorted(active.view_task_ids(ls_client, pid, result["view"]["id"])) == sorted(expected)

    # re-running replaces the same tab; max-score keeps only tasks the model is unsure about
    capped = active.select_tasks(ls_client, pid, "entropy", k=9, max_score=0.6, split="all")
    chosen = {c["task_id"] for c in capped["selected"]}
    assert chosen == {tid for tid, s in unlabeled.items() if s <= 0.6}
    assert capped["view"]["id"] == result["view"]["id"]
    assert sorted(active.view_task_ids(ls_client, pid, capped["view"]["id"])) == sorted(chosen)
    titles = [v.data.get("title") for v in ls_client.views.list(project=pid)]
    assert titles.count(active.DEFAULT_VIEW) == 1

    # with the task locks released too (al select), Label Studio gets one write at a time: on SQLite it answers
    # two at once with "database is locked" and runs one of them again, a next-task request then counting its own lock
    released = _max_writes_in_flight(ls_client, lambda: active.select_tasks(ls_client, pid, "entropy", k=9,
                                                                            max_score=0.6, split="all", release=True))
    assert released["result"]["locks_released"] >= 1 and released["most_writes_at_once"] == 1
    assert {c["task_id"] for c in released["result"]["selected"]} == chosen

    with pytest.raises(NotFound):
        active.select_tasks(ls_client, pid, "margin", k=3, model_version="no-such-version")

    # by default only the train split is drawn from (valid and test are held out)
    train = {tid: s for tid, s in unlabeled.items() if active.task_split(next(t for t in tasks if t.id == tid)) == "train"}
    default = active.select_tasks(ls_client, pid, "least-confidence", k=9)
    assert [c["task_id"] for c in default["selected"]] == sorted(train, key=train.get)
    assert {c["split"] for c in default["selected"]} == {"train"}


def _max_writes_in_flight(client, call) -> dict:
    """call()'s result, and the most requests other than GET the client had in flight at once meanwhile."""
    import threading

    httpx_client = ls.raw_http(client).httpx_client
    guard, state = threading.Lock(), {"now": 0, "most": 0}

    def sent(request):
        if request.method != "GET":
            with guard:
                state["now"] += 1
                state["most"] = max(state["most"], state["now"])

    def answered(response):
        if response.request.method != "GET":
            with guard:
                state["now"] -= 1

    httpx_client.event_hooks["request"].append(sent)
    httpx_client.event_hooks["response"].append(answered)
    try:
        result = call()
    finally:
        httpx_client.event_hooks["request"].remove(sent)
        httpx_client.event_hooks["response"].remove(answered)
    return {"result": result, "most_writes_at_once": state["most"]}


def test_train_saves_versions_and_preannotates_unlabeled_tasks(ls_client, bucket, tmp_path):
    pid, truth, _ = _project(ls_client, bucket, tmp_path, 40, "train")
    tasks = active.load_tasks(ls_client, pid)
    labeled = tasks[:28]
    for task in labeled:
        _annotate(ls_client, task, truth[_file_name(task)])
    models = tmp_path / "models"
    first = active.train_project(ls_client, pid, models)
    n_train = sum(active.task_split(t) == "train" for t in labeled)
    assert first.version == "logreg-v1" and first.n_train == n_train
    assert (models / f"project-{pid}" / "logreg-v1.json").is_file()
    second = active.train_project(ls_client, pid, models)
    assert second.version == "logreg-v2"
    assert active.load_model("latest", models, pid).version == "logreg-v2"
    assert not list((models / f"project-{pid}").glob("*.tmp"))
    # the same labels: nothing to train; one more label: a new version, and only the newest `keep` files stay
    assert active.train_project(ls_client, pid, models, only_if_changed=True) is None
    extra = next(t for t in tasks[28:] if active.task_split(t) == "train")
    _annotate(ls_client, extra, truth[_file_name(extra)])
    third = active.train_project(ls_client, pid, models, only_if_changed=True, keep=2)
    assert third.version == "logreg-v3" and third.n_train == n_train + 1
    assert sorted(p.name for p in (models / f"project-{pid}").iterdir()) == ["logreg-v2.json", "logreg-v3.json"]

    result = active.preannotate(ls_client, pid, model_path="latest", models_dir=models)
    held = [t for t in tasks[28:] if t.id != extra.id]
    train_rest = [t for t in held if active.task_split(t) == "train"]
    assert result == {**result, "created": len(train_rest), "model_version": "logreg-v3",
                      "outside_split": sum(active.task_split(t) != "train" for t in tasks)}
    after = {t.id: t for t in active.load_tasks(ls_client, pid)}
    for task in held:
        if task not in train_rest:
            assert after[task.id].predictions == []  # held out: not in the labeling queue
            continue
        (pred,) = after[task.id].predictions
        assert pred.model_version == "logreg-v3" and 0 < pred.score <= 1
        assert set(pred.result[0].to_json()["scores"]) == set(third.classes)
    everything = active.preannotate(ls_client, pid, model_path="latest", models_dir=models, split="all")
    assert everything["created"] == len(held) - len(train_rest) and everything["skipped"] == len(train_rest)
    after = {t.id: t for t in active.load_tasks(ls_client, pid)}
    # the model learned something: most held-back images are predicted right
    right = sum(after[t.id].predictions[0].result[0].labels == [truth[_file_name(t)]] for t in held)
    assert right >= len(held) // 2


def test_cli_reports_bad_input_in_one_line(label_studio, ls_client, bucket, tmp_path):
    pid, _, _ = _project(ls_client, bucket, tmp_path, 4, "cli")
    env = {**os.environ, **label_studio.env(bucket.name)}
    run = subprocess.run([sys.executable, "-m", "datalabel", "al", "select", "--project", str(pid),
                          "--strategy", "vibes"], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip().startswith("error: unknown strategy 'vibes'") and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1

    for args, message in ((["preannotate", "--model", "latest", "-s", "random"], "cannot score predictions by 'random'"),
                          (["select", "--split", "holdout"], "unknown split 'holdout'")):
        run = subprocess.run([sys.executable, "-m", "datalabel", "al", *args, "--project", str(pid)], env=env,
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 2 and run.stderr.strip() == f"error: {message}; choose one of: " + (
            "least-confidence, margin, entropy" if "score" in message else "train, valid, test, all")

    run = subprocess.run([sys.executable, "-m", "datalabel", "al", "train", "--project", str(pid),
                          "--models-dir", str(tmp_path / "m")], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "need labels of at least 2 classes" in run.stderr
    assert not (tmp_path / "m" / f"project-{pid}").exists() or not any((tmp_path / "m" / f"project-{pid}").iterdir())

    run = subprocess.run([sys.executable, "-m", "datalabel", "al", "split", "--project", str(pid), "--json"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["assigned"] == 4


def _http(ls_client, method, path, **kwargs):
    """A raw call through the SDK's own HTTP client (same auth): for what the SDK's models leave out."""
    resp = ls.raw_http(ls_client).request(path, method=method, **kwargs)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_preannotate_lines_up_versions_scores_and_the_queue(ls_client, bucket, tmp_path):
    pid, truth, _ = _project(ls_client, bucket, tmp_path, 40, "queue")
    active.assign_splits(ls_client, pid)
    tasks = sorted(active.load_tasks(ls_client, pid), key=lambda t: t.id)
    for task in tasks[:20]:
        _annotate(ls_client, task, truth[_file_name(task)])
    models = tmp_path / "models"
    active.train_project(ls_client, pid, models)
    result = active.preannotate(ls_client, pid, model_path="latest", models_dir=models, strategy="margin")
    assert result["sampling"] == {"sampling": "Uncertainty sampling", "model_version": "logreg-v1"}
    project = ls_client.projects.get(id=pid)
    assert project.sampling == "Uncertainty sampling" and project.model_version == "logreg-v1"

    # the whole-project read (export + predictions) gives the task model exactly what the paged task list gives
    # (media URLs as stored in both)
    from datalabel import ls

    full = sorted((Task.from_json(obj) for obj in ls.iter_task_json(ls_client, pid, resolve_uri=False)),
                  key=lambda t: t.id)
    assert sorted(active.load_tasks(ls_client, pid), key=lambda t: t.id) == full
    assert sum(t.is_labeled for t in full) == 20 and sum(bool(t.predictions) for t in full) > 0

    # the score is a certainty by the strategy: the margin between the two likeliest classes
    pool = [t for t in active.load_tasks(ls_client, pid) if not t.is_labeled and active.task_split(t) == "train"]
    for task in pool:
        (pred,) = task.predictions
        top2 = sorted(pred.result[0].scores.values())[-2:]
        assert pred.score == pytest.approx(top2[1] - top2[0], abs=1e-5)

    picked = active.select_tasks(ls_client, pid, "margin", k=5)
    ranks = [c["task_id"] for c in picked["selected"]]
    assert picked["queue_matches"] and picked["model_version"] == "logreg-v1"
    assert ranks == [t.id for t in sorted(pool, key=lambda t: t.predictions[0].score)][:5]

    # the Data Manager's score column is filled for the tab's tasks and sorts them in rank order
    page = _http(ls_client, "GET", "api/tasks/", params={"project": pid, "view": picked["view"]["id"],
                                                         "fields": "all"})
    listed = page["tasks"]
    assert [t["id"] for t in listed] == ranks
    assert all(t["predictions_score"] is not None for t in listed)
    # and what "Label All Tasks" asks for (the Data Manager's next_task action) is rank 1
    served = _http(ls_client, "POST", "api/dm/actions", params={"id": "next_task", "project": pid,
                                                                "tabID": picked["view"]["id"]},
                   json={"project": str(pid)})
    assert served["id"] == ranks[0]

    # a strategy the stored scores are not the certainty of: said so, not hidden
    assert active.select_tasks(ls_client, pid, "entropy", k=5, view_title=None)["queue_matches"] is False


def test_a_model_file_is_data_never_code(tmp_path):
    """A saved model round-trips exactly; a file that is not one (a pickle that would run code, broken JSON, numbers
    that do not fit, a format no configured class reads) is refused with one line and nothing of it runs."""
    import pickle

    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.random((60, active.PIXELS ** 2))
    y = [str(i % 3) for i in range(60)]
    model = active.LogisticPixels()
    model.fit(x, y)
    path = active.save_model(active.ModelVersion("", model, 60), tmp_path, 7)
    assert path == active.model_path(tmp_path, 7, "logreg-v1") and path.suffix == ".json"
    loaded = active.load_model("latest", tmp_path, 7)
    assert np.array_equal(loaded.predict_proba(x), model.predict_proba(x)) and loaded.classes == ["0", "1", "2"]
    # a file of the first format (the size beside the numbers) still reads
    first = json.loads(path.read_text())
    first["size"] = first["estimator"].pop("size")
    path.write_text(json.dumps(first))
    assert np.array_equal(active.load_model(path).predict_proba(x), model.predict_proba(x))

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    hostile = tmp_path / "project-7" / "logreg-v2.json"
    hostile.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(LabError, match="not a model saved by"):
        active.load_model("latest", tmp_path, 7)
    assert not marker.exists()
    broken = json.loads(path.read_text())
    broken["estimator"]["coef"] = [[1.0, 2.0]]
    hostile.write_text(json.dumps(broken))
    with pytest.raises(LabError, match="do not fit together"):
        active.load_model(hostile)
    broken["format"] = "os:system"  # a format names a class only among those configured, never an import
    hostile.write_text(json.dumps(broken))
    with pytest.raises(LabError, match="no format of 'datalabel-logreg/1'"):
        active.load_model(hostile)
    with pytest.raises(ConfigError, match="not a datalabel.active.Classifier"):
        active.classifier_class("os:system")


def test_a_model_plugs_in_through_the_interface(label_studio, ls_client, bucket, tmp_path):
    """Another model (tests/nearest_centroid.py) trains on a project, is saved as data, serves predictions from
    the backend and Label Studio stores them: nothing in the loop or the server changed."""
    from datalabel import mlbackend

    pid, truth, _ = _project(ls_client, bucket, tmp_path, 30, "plugin")
    tasks = sorted(active.load_tasks(ls_client, pid), key=lambda t: t.id)
    for task in tasks[:20]:
        _annotate(ls_client, task, truth[_file_name(task)])
    models = tmp_path / "models"
    spec = "nearest_centroid:NearestCentroid"
    saved = active.train_project(ls_client, pid, models, model_class=spec)
    assert saved.model.kind == "test-nearest-centroid/1" and saved.version == "logreg-v1"
    stored = json.loads(active.model_path(models, pid, "logreg-v1").read_text())
    assert stored["format"] == "test-nearest-centroid/1" and len(stored["estimator"]["centroids"][0]) == 16
    with pytest.raises(LabError, match="no format of 'datalabel-logreg/1'"):
        active.load_model("latest", models, pid)  # not configured: not read
    assert active.load_model("latest", models, pid, spec).classes == saved.classes
    assert active.train_project(ls_client, pid, models, only_if_changed=True, model_class=spec) is None

    pair = mlbackend.Credentials("u", "p")
    backend = mlbackend.Backend(models, label_studio.settings(bucket.name), model_class=spec)
    server, url = mlbackend.start_in_thread(backend, pair)
    try:
        assert mlbackend.connect(ls_client, pid, url, pair)["model_version"] == "logreg-v1"
        pool = [t for t in active.load_tasks(ls_client, pid) if not t.is_labeled and active.task_split(t) == "train"]
        assert pool and all([p.model_version for p in t.predictions] == ["logreg-v1"] for t in pool)
        right = sum(t.predictions[0].result[0].labels == [truth[_file_name(t)]] for t in pool)
        assert right >= len(pool) // 3  # a crude model, but a model
    finally:
        server.shutdown()
        backend.stop()


def test_an_empty_submission_is_refused_by_the_config_and_counted_apart(ls_client, bucket, tmp_path):
    """The demo's classification requires a choice; an empty one that got in anyway (the API does not check) is
    neither a label for `stats` nor an item of `dataversion snapshot`, and both say so."""
    from dataversion import snapshot

    from datalabel import labelconfig, stats

    pid, truth, _ = _project(ls_client, bucket, tmp_path, 8, "empty")
    config = labelconfig.parse_config(ls_client.projects.get(id=pid).label_config)
    assert 'required="true"' in ls_client.projects.get(id=pid).label_config and config.kind == "classification"
    tasks = sorted(active.load_tasks(ls_client, pid), key=lambda t: t.id)
    for task in tasks[:5]:
        _annotate(ls_client, task, truth[_file_name(task)])
    ls_client.annotations.create(id=tasks[5].id, result=[])
    counted = stats.project_stats(ls_client, pid)
    assert counted["tasks"] == {"total": 8, "labeled": 5, "unlabeled": 2, "skipped": 0, "empty": 1}
    assert sum(c["tasks"] for c in counted["classes"].values()) == counted["tasks"]["labeled"]
    storage = ls.list_storages(ls_client, pid, "target")[0]
    ls.sync_storage(ls_client, storage.id, "target")
    ls.wait_storage(ls_client, storage.id, "target")
    manifest = snapshot.snapshot(tmp_path / "dataset", bucket.name, "imagefolder", config, pid)
    assert manifest["counts"]["items"] == len(manifest["items"]) == counted["tasks"]["labeled"]
    assert manifest["counts"]["empty_submissions"] == 1
