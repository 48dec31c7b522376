"""Label quality against a real Label Studio: three annotators with their own tokens label demo digits through the
API; agreement equals the reference implementations on what they submitted; confident learning finds the flipped
labels; the review tab serves the rank-1 suspect first in a real browser."""
from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import numpy as np
import pytest

from browser_helpers import logged_in_page, needs_chromium
from cli_helpers import run_cli
from datalabel import active, embedded, ls, quality, samples
from datalabel.config import Settings
from datalabel.errors import ConfigError, LabError
from datalabel.labelconfig import parse_config
from datalabel.projects import set_overlap
from datalabel.quality.agreement import iou, region_shape
from datalabel.quality.mislabels import out_of_fold_probs, rank_label_issues
from datalabel.tasks import Task
from quality_helpers import label_through_api, plan_labels

ROOT = Path(__file__).resolve().parent.parent


# --- pure logic -------------------------------------------------------------------------------------------------


def _task(tid: int, votes: list[tuple[int, str]], kind: str = "choices") -> Task:
    return Task.from_json({"id": tid, "data": {"image": f"gs://b/{tid}.png"}, "annotations": [
        {"id": tid * 10 + n, "completed_by": who, "created_at": f"2026-01-0{n + 1}",
         "result": [{"type": kind, "from_name": "choice", "to_name": "image", "value": {kind: [label]}}]}
        for n, (who, label) in enumerate(votes)]})


def test_consensus_is_the_majority_and_ties_are_flagged():
    tasks = [_task(1, [(1, "a"), (2, "a"), (3, "b")]), _task(2, [(1, "a"), (2, "b")]), _task(3, [(1, "c")])]
    by_id = {c.task_id: c for c in quality.consensus(tasks)}
    assert by_id[1].label == "a" and not by_id[1].tie and by_id[1].share == pytest.approx(2 / 3)
    assert by_id[2].label is None and by_id[2].tie and by_id[2].tied == ["a", "b"]
    assert by_id[3].label == "c"
    assert [c.task_id for c in quality.consensus(tasks, min_annotators=2)] == [1, 2]
    # an annotator who labeled a task twice has one vote: their latest
    again = _task(4, [(1, "a"), (2, "b"), (1, "b")])
    assert quality.task_votes(again) == {"1": "b", "2": "b"}


def test_boxes_and_polygons_are_matched_by_iou():
    def region(kind, value, label):
        key = "rectanglelabels" if kind == "rect" else "polygonlabels"
        return {"type": key, "from_name": "label", "to_name": "image", "value": {**value, key: [label]}}

    def task(tid, per_annotator):
        return Task.from_json({"id": tid, "data": {"image": "x"}, "annotations": [
            {"id": tid * 10 + who, "completed_by": who, "result": regions} for who, regions in per_annotator.items()]})

    box = {"x": 10, "y": 10, "width": 20, "height": 20}
    shifted = {"x": 15, "y": 10, "width": 20, "height": 20}  # IoU 300/500 = 0.6: a match
    far = {"x": 60, "y": 60, "width": 10, "height": 10}
    square = {"points": [[10, 10], [30, 10], [30, 30], [10, 30]]}
    t1 = task(1, {1: [region("rect", box, "cat"), region("rect", far, "dog")],
                  2: [region("rect", shifted, "cat"), region("rect", far, "cat")]})  # far: other label, no match
    t2 = task(2, {1: [region("poly", square, "cat")], 2: [region("poly", square, "cat")]})
    result = quality.region_agreement([t1, t2])
    assert result["tasks"] == 2 and result["annotators"] == 2
    # 2 matches of 6 regions: F1 = 4/6; IoUs 0.6 and 1.0 (polygons on a raster)
    assert result["f1"] == pytest.approx(4 / 6)
    assert result["mean_iou"] == pytest.approx(0.8, abs=0.01)
    assert iou(region_shape(t1.annotations[0].result[0]), region_shape(t1.annotations[1].result[0])) \
        == pytest.approx(0.6)
    config = parse_config('<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">'
                          '<Label value="cat"/><Label value="dog"/></RectangleLabels></View>')
    assert quality.agreement([t1, t2], config)["f1"] == pytest.approx(4 / 6)
    with pytest.raises(ConfigError):
        quality.agreement([t1], parse_config('<View><Text name="t" value="$t"/><TextArea name="a" toName="t"/></View>'))


def test_out_of_fold_scores_never_come_from_a_model_that_saw_the_label():
    """Random labels on random pixels: a model that saw a label gives it a high probability (it memorises them);
    out of fold, the given label gets what chance gives."""
    rng = np.random.default_rng(0)
    x = rng.random((80, 64))
    y = rng.integers(0, 4, size=80)
    oof, _ = out_of_fold_probs(x, y, 4, folds=5, seed=0)
    in_sample = active.fit(x, [str(v) for v in y]).predict_proba(x)
    assert np.mean(in_sample[np.arange(80), y]) > 0.8
    assert np.mean(oof[np.arange(80), y]) < 0.35  # chance: 0.25
    assert np.allclose(oof.sum(axis=1), 1.0)


def test_confident_learning_ranks_the_flipped_labels_first():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, size=300)
    probs = np.full((300, 3), 0.05)
    probs[np.arange(300), y] = 0.9
    flipped = [5, 50, 150]
    given = y.copy()
    given[flipped] = (y[flipped] + 1) % 3
    order, quality_scores, flagged = rank_label_issues(given, probs)
    assert set(order[:3]) == set(flipped) == flagged
    assert all(quality_scores[i] < 0.1 for i in flipped)


# --- a real multi-annotator project -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def labeled(label_studio, ls_client, annotators, storage_client, tmp_path_factory):
    """120 demo digits with splits, overlap 3 for 40% of the tasks, labeled through the API by three annotators
    with their own tokens: 6 labels flipped, 10% noise on the extra labels."""
    bucket = storage_client.create_bucket(f"quality-{os.urandom(4).hex()}")
    folder = tmp_path_factory.mktemp("quality-samples")
    pid = embedded.seed_demo(ls_client, bucket.name, folder, limit=120, title=f"quality {bucket.name}")
    overlap = set_overlap(ls_client, pid, 3, 40)
    active.assign_splits(ls_client, pid)
    by_file = samples.read_truth(folder)
    truth = {t.id: by_file[active.media_url(t).rsplit("/", 1)[-1]] for t in active.load_tasks(ls_client, pid)}
    plan = plan_labels(truth, samples.DIGIT_LABELS, 3, overlap_share=0.4, flip_rate=0.05, noise=0.1, seed=3)
    label_through_api(label_studio.url, [a["token"] for a in annotators], plan.votes)
    return {"project": pid, "plan": plan, "overlap": overlap, "bucket": bucket.name}


def test_annotators_have_their_own_tokens(label_studio, annotators):
    assert len({a["token"] for a in annotators}) == 3
    for a in annotators:
        me = ls.whoami(ls.connect(Settings(url=label_studio.url, api_key=a["token"])))
        assert me["email"] == a["email"] and me["id"] == a["id"]


def test_agreement_equals_the_reference_implementations(labeled, label_studio, annotators):
    """What the CLI reports, read back from Label Studio, against krippendorff and scikit-learn run on the votes
    the annotators submitted (to 1e-9)."""
    import krippendorff
    from sklearn.metrics import cohen_kappa_score

    assert labeled["overlap"] == {"project": labeled["project"], "annotators": 3, "percent": 40}
    result = run_cli("quality", "agreement", "--project", labeled["project"], "--json", env=label_studio.env())
    assert result.ok, result
    got = result.json()
    votes: dict[int, dict[int, str]] = {}
    for tid, who, label in labeled["plan"].votes:
        votes.setdefault(tid, {})[who] = label
    shared = sorted(t for t, v in votes.items() if len(v) >= 2)
    classes = samples.DIGIT_LABELS
    matrix = np.array([[classes.index(votes[t][w]) if w in votes[t] else np.nan for t in shared] for w in range(3)])
    assert got["tasks"] == len(shared) and got["annotators"] == 3
    assert abs(got["alpha"] - krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal",
                                                 value_domain=range(10))) <= 1e-9
    emails = [a["email"] for a in annotators]
    pairs = {(p["a"], p["b"]): p for p in got["pairs"]}
    for i, j in itertools.combinations(range(3), 2):
        both = [t for t in shared if i in votes[t] and j in votes[t]]
        ref = cohen_kappa_score([votes[t][i] for t in both], [votes[t][j] for t in both])
        assert abs(pairs[(emails[i], emails[j])]["kappa"] - ref) <= 1e-9
    for name, alpha in got["alpha_per_class"].items():
        k = classes.index(name)
        binary = np.where(np.isnan(matrix), np.nan, (matrix == k).astype(float))
        assert abs(alpha - krippendorff.alpha(reliability_data=binary, level_of_measurement="nominal",
                                              value_domain=[0, 1])) <= 1e-9
    # consensus: the majority of the submitted votes, ties flagged
    for cons in got["consensus"]:
        counts = {}
        for label in votes[cons["task_id"]].values():
            counts[label] = counts.get(label, 0) + 1
        top = [k for k, n in counts.items() if n == max(counts.values())]
        assert cons["tie"] == (len(top) > 1) and (cons["tie"] or cons["label"] == top[0])
    assert {r["annotator"] for r in got["per_annotator"]} == set(emails)


@needs_chromium
def test_mislabels_are_ranked_and_the_review_tab_serves_rank_1_first(labeled, label_studio, ls_client):
    """`quality mislabels` ranks the flipped labels high; its tab lists the suspects in rank order; "Label All
    Tasks" in a real browser serves rank 1 first (a screenshot of the editor is the README's)."""
    pid, plan = labeled["project"], labeled["plan"]
    result = run_cli("quality", "mislabels", "--project", pid, "--json", env=label_studio.env())
    assert result.ok, result
    got = result.json()
    suspects = [s["task_id"] for s in got["suspects"]]
    assert got["labeled"] == len(plan.truth) and suspects and all(s["flagged"] for s in got["suspects"])
    found = set(suspects[:2 * len(plan.flipped)]) & plan.flipped
    assert len(found) >= len(plan.flipped) // 2, (suspects, plan.flipped)
    for s in got["suspects"]:
        assert s["suggested"] != s["given"] or s["score"] < 0.5
    review = got["review"]
    assert review["first"] == suspects[0] and review["held"] and review["served_first"] == suspects[0]
    # Label Studio keeps the suspects open for one more annotation, each with a review prediction
    tasks = {t.id: t for t in active.load_tasks(ls_client, pid)}
    preds = [p for tid in suspects for p in tasks[tid].predictions if p.model_version == quality.REVIEW_VERSION]
    assert len(preds) == len(suspects)

    shots = os.environ.get("QUALITY_SCREENSHOTS")  # a folder: the README's pictures (docs/)
    with logged_in_page(label_studio.url, label_studio.username, label_studio.password) as page:
        with page.expect_response(lambda r: "/api/tasks" in r.url and f"view={review['view']['id']}" in r.url,
                                  timeout=60_000) as listing:
            page.goto(review["view"]["url"])
        assert [t["id"] for t in listing.value.json()["tasks"]] == suspects
        button = page.get_by_role("button", name="Label All Tasks")
        button.wait_for(timeout=60_000)
        if shots:
            page.wait_for_timeout(2_000)  # the thumbnails
            page.screenshot(path=f"{shots}/quality_review_tab.png")
        with page.expect_response(lambda r: "id=next_task" in r.url, timeout=60_000) as first:
            button.click()
        assert first.value.json()["id"] == suspects[0]
        # the editor: the image (fetched into a blob) with the suggested class pre-filled
        page.wait_for_function("() => [...document.querySelectorAll(\"img[src^='blob:']\")]"
                               ".some(i => i.complete && i.naturalWidth > 0)", timeout=60_000)
        assert page.get_by_test_id("bottombar-submit-button").is_visible()
        if shots:
            page.screenshot(path=f"{shots}/quality_review_editor.png")

    # a second run keeps the tab and queue in step, and puts back the overlap of tasks it no longer lists
    again = run_cli("quality", "mislabels", "--project", pid, "--limit", "2", "--json", env=label_studio.env())
    assert again.ok, again
    assert again.json()["review"]["restored"] >= 0 and len(again.json()["suspects"]) <= 2


def test_snapshot_quality_summary_counts_flagged_tasks(labeled, label_studio, ls_client):
    pid = labeled["project"]
    # the count is of what the last `quality mislabels` flagged: made here, not left to an earlier test
    flagged = run_cli("quality", "mislabels", "--project", pid, "--limit", "3", "--json", env=label_studio.env())
    assert flagged.ok, flagged
    tasks = [t for t in active.load_tasks(ls_client, pid) if t.is_labeled]
    summary = quality.snapshot_quality(tasks, ls.project_config(ls_client, pid), ls_client, pid)
    assert summary["agreement"]["kind"] == "classification" and summary["agreement"]["alpha"] is not None
    assert summary["flagged"] is not None and summary["flagged"] >= 1
    assert quality.snapshot_quality(tasks, ls.project_config(ls_client, pid))["flagged"] is None


def test_quality_commands_refuse_bad_input(label_studio, ls_client, bucket, tmp_path):
    result = run_cli("quality", "agreement", "--project", "999999", env=label_studio.env())
    assert result.returncode == 4 and "does not exist" in result.stderr
    pid = embedded.seed_demo(ls_client, bucket.name, tmp_path / "s", limit=4, title=f"few {bucket.name}")
    result = run_cli("quality", "mislabels", "--project", pid, env=label_studio.env())
    assert result.returncode == 1 and "label" in result.stderr, result
    result = run_cli("projects", "overlap", pid, "--overlap-percent", "140", env=label_studio.env())
    assert result.returncode == 2, result
    with pytest.raises(LabError):
        set_overlap(ls_client, pid, 0)


def test_versions_carry_agreement_and_flagged_tasks(labeled, label_studio, ls_client, tmp_path, gcs_emulator):
    """A snapshot's manifest records the agreement and the flagged tasks; `dataversion versions` and `diff` show
    them."""
    from dataversion import repo
    from versioning_helpers import run_cli as dataversion, sync

    pid = labeled["project"]
    sync(ls_client, pid, "target")
    path = tmp_path / "datasets"
    repo.init(path, labeled["bucket"], endpoint=gcs_emulator.url, jobs=4)
    env = {**label_studio.env(labeled["bucket"]), "DATASET_REPO": str(path)}
    expected = quality.project_agreement(ls_client, pid)
    flagged = []
    for limit in ("3", "1"):
        review = run_cli("quality", "mislabels", "--project", pid, "--limit", limit, "--json", env=label_studio.env())
        assert review.ok, review
        flagged.append(len(review.json()["suspects"]))
        for args in (("snapshot", "--project", str(pid)), ("commit", "-m", f"review of {limit}")):
            out = dataversion(*args, env=env)
            assert out.returncode == 0, out.stderr
    manifest = repo.read_manifest(path, "dataset_v1")
    assert manifest["quality"]["flagged"] == flagged[0]
    assert abs(manifest["quality"]["agreement"]["alpha"] - expected["alpha"]) <= 1e-9
    assert manifest["quality"]["agreement"]["tasks"] == expected["tasks"]
    listed = json.loads(dataversion("versions", "--json", env=env).stdout)
    assert [(v["tag"], v["flagged"]) for v in listed] == [("dataset_v1", flagged[0]), ("dataset_v2", flagged[1])]
    table = dataversion("versions", env={**env, "COLUMNS": "250"}).stdout
    assert "alpha" in table and "flagged" in table
    diff = dataversion("diff", "dataset_v1", "dataset_v2", env=env).stdout
    assert f"flagged as likely mislabeled: {flagged[0]} -> {flagged[1]}" in diff
    assert f"alpha {expected['alpha']:.3f}" in diff


def test_demo_adds_annotators_with_their_own_tokens(label_studio, bucket, tmp_path, gcs_emulator):
    """`datalabel demo --annotators 2` in an embedded stack's folder: two users, each token in
    secrets/annotators.json (the owner's only), each accepted by Label Studio as that user."""
    root = tmp_path / "stack-root"
    (root / ".stack").mkdir(parents=True)
    (root / ".stack" / "label-studio").symlink_to(label_studio.data_dir)
    (root / ".stack" / "stack.json").write_text(json.dumps({"emulator_url": gcs_emulator.url, "database": "sqlite"}))
    if label_studio.database:
        pytest.skip("the demo's stack file names the embedded PostgreSQL; this server's is the session's")
    result = run_cli("demo", "--limit", "3", "--annotators", "2", "--bucket", bucket.name, "--json",
                     env=label_studio.env(bucket.name), cwd=root)
    assert result.ok, result
    made = result.json()["annotators"]
    path = Path(made["file"])
    assert path == root / "secrets" / "annotators.json" and (path.stat().st_mode & 0o777) == 0o600
    saved = json.loads(path.read_text())
    assert [a["email"] for a in saved] == ["annotator1@localhost", "annotator2@localhost"]
    for a in saved:
        assert ls.whoami(ls.connect(Settings(url=label_studio.url, api_key=a["token"])))["email"] == a["email"]
    outside = run_cli("demo", "--limit", "3", "--annotators", "1", "--bucket", bucket.name,
                      env=label_studio.env(bucket.name), cwd=tmp_path)
    assert outside.returncode == 2 and "no embedded stack" in outside.stderr
