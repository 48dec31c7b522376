"""The labeling UI in a real browser: log in, open a task, and see its image proxied from the bucket."""
from __future__ import annotations

from browser_helpers import logged_in_page, needs_chromium
from datalabel import embedded, ls


@needs_chromium
def test_task_image_displays_in_labeling_ui(label_studio, ls_client, bucket, tmp_path):
    project_id = embedded.seed_demo(ls_client, bucket.name, tmp_path / "samples", limit=3, title=f"ui {bucket.name}")
    task_id = next(iter(ls_client.tasks.list(project=project_id))).id
    with logged_in_page(label_studio.url, label_studio.username, label_studio.password) as page:
        page.goto(f"{label_studio.url}/projects/{project_id}/data?task={task_id}")
        # the labeling panel's image: served by Label Studio's proxy from the emulator bucket
        selector = f"img[src*='/tasks/{task_id}/resolve/']"
        page.wait_for_function(
            f"() => [...document.querySelectorAll(\"{selector}\")].some(i => i.complete && i.naturalWidth > 0)",
            timeout=60_000)
        sizes = page.eval_on_selector_all(selector, "els => els.map(e => [e.naturalWidth, e.naturalHeight])")
    assert [64, 64] in sizes  # the 8x8 digit written at 64x64 by datalabel.samples


@needs_chromium
def test_label_all_tasks_serves_the_least_certain_task_first(label_studio, ls_client, bucket, tmp_path):
    """The loop as a person uses it: after split, train, preannotate and select, "Label All Tasks" serves the
    CLI's rank 1, and after a submit, rank 2; the "label next" tab lists rank 1 first."""
    from datalabel import active, samples

    samples_dir = tmp_path / "samples"
    pid = embedded.seed_demo(ls_client, bucket.name, samples_dir, limit=40, title=f"queue {bucket.name}")
    truth = samples.read_truth(samples_dir)
    active.assign_splits(ls_client, pid)
    tasks = sorted(active.load_tasks(ls_client, pid), key=lambda t: t.id)
    for task in tasks[:20]:
        label = truth[active.media_url(task).rsplit("/", 1)[-1]]
        ls_client.annotations.create(id=task.id, result=[{
            "type": "choices", "from_name": "choice", "to_name": "image", "value": {"choices": [label]}}])
    active.train_project(ls_client, pid, tmp_path / "models")
    active.preannotate(ls_client, pid, model_path="latest", models_dir=tmp_path / "models", strategy="margin")
    picked = active.select_tasks(ls_client, pid, "margin", k=5)
    ranks = [c["task_id"] for c in picked["selected"]]
    assert picked["queue_matches"] and len(ranks) == 5

    with logged_in_page(label_studio.url, label_studio.username, label_studio.password) as page:
        # the tab, as the Data Manager loads it: sorted by prediction score, rank 1 first
        with page.expect_response(lambda r: "/api/tasks" in r.url and f"view={picked['view']['id']}" in r.url,
                                  timeout=60_000) as listing:
            page.goto(picked["view"]["url"])
        listed = [t["id"] for t in listing.value.json()["tasks"]]
        assert listed == ranks
        served = []
        with page.expect_response(lambda r: "id=next_task" in r.url, timeout=60_000) as first:
            page.get_by_role("button", name="Label All Tasks").click()
        served.append(first.value.json()["id"])
        # the prediction is pre-filled in the editor; submitting it labels the task and asks for the next one
        submit = page.get_by_test_id("bottombar-submit-button")
        submit.wait_for(timeout=60_000)
        with page.expect_response(lambda r: "id=next_task" in r.url, timeout=60_000) as second:
            submit.click()
        served.append(second.value.json()["id"])
    assert served == ranks[:2]
    (done,) = active.load_tasks_by_id(ls_client, [ranks[0]])
    assert done.is_labeled


def _cli(label_studio, bucket, *args) -> dict:
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, **label_studio.env(bucket.name)}
    run = subprocess.run([sys.executable, "-m", "datalabel", "al", *map(str, args), "--json"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def _label_all_tasks(page, url: str) -> int:
    """Click "Label All Tasks" on the project's page; the id of the task Label Studio serves."""
    page.goto(url)
    with page.expect_response(lambda r: "id=next_task" in r.url, timeout=60_000) as served:
        page.get_by_role("button", name="Label All Tasks").click()
    return served.value.json()["id"]


@needs_chromium
def test_every_session_starts_at_the_cli_rank_1(label_studio, ls_client, bucket, tmp_path):
    """Two labeling sessions as a person has them: select, label, close the browser, select again (new
    predictions meanwhile), reopen. Each session's first task is the CLI's rank 1 of that moment, although the
    first session left a task open (Label Studio keeps it locked for 24 h and would serve it first); the "label
    next" tab's first row is the same task. A task without a choice cannot be submitted (`required="true"`)."""
    import json

    from datalabel import active, samples

    samples_dir = tmp_path / "samples"
    pid = embedded.seed_demo(ls_client, bucket.name, samples_dir, limit=40, title=f"sessions {bucket.name}")
    truth = samples.read_truth(samples_dir)
    active.assign_splits(ls_client, pid)
    tasks = sorted(active.load_tasks(ls_client, pid), key=lambda t: t.id)
    for task in tasks[:20]:
        label = truth[active.media_url(task).rsplit("/", 1)[-1]]
        ls_client.annotations.create(id=task.id, result=[{
            "type": "choices", "from_name": "choice", "to_name": "image", "value": {"choices": [label]}}])
    active.train_project(ls_client, pid, tmp_path / "models")
    active.preannotate(ls_client, pid, model_path="latest", models_dir=tmp_path / "models", strategy="margin")
    first = _cli(label_studio, bucket, "select", "--project", pid, "-s", "margin", "-k", 5)
    ranks = [c["task_id"] for c in first["selected"]]
    data_page = f"{label_studio.url}/projects/{pid}/data"

    # session 1: rank 1 first; submit it (the prediction fills the choice); the next one is left open, locked
    with logged_in_page(label_studio.url, label_studio.username, label_studio.password) as page:
        assert _label_all_tasks(page, data_page) == ranks[0]
        submit = page.get_by_test_id("bottombar-submit-button")
        submit.wait_for(timeout=60_000)
        with page.expect_response(lambda r: "id=next_task" in r.url, timeout=60_000) as second:
            submit.click()
        left_open = second.value.json()["id"]
        page.get_by_test_id("bottombar-submit-button").wait_for(timeout=60_000)
    assert left_open == ranks[1] and active.load_tasks_by_id(ls_client, [ranks[0]])[0].is_labeled
    served = ls.raw_http(ls_client).request("api/dm/actions", method="POST", params={"id": "next_task", "project": pid},
                                            json={"project": str(pid)}).json()
    assert served["id"] == left_open and served["queue"].startswith("Task lock")  # what session 2 would get

    # between the sessions: new predictions put another task first; `al select` again
    pool = [t for t in active.load_tasks(ls_client, pid) if not t.is_labeled and active.task_split(t) == "train"]
    target = next(t for t in pool if t.id not in ranks)
    lines = []
    for task in pool:
        name = active.media_url(task).rsplit("/", 1)[-1]
        top = 0.2 if task.id == target.id else 0.9
        scores = {label: (1 - top) / 9 for label in samples.DIGIT_LABELS}
        scores[truth[name]] = top
        lines.append(json.dumps({"path": name, "scores": scores}))
    (tmp_path / "v2.jsonl").write_text("\n".join(lines) + "\n")
    _cli(label_studio, bucket, "preannotate", "--project", pid, "--from", tmp_path / "v2.jsonl", "--model-version",
         "external-v2")
    again = _cli(label_studio, bucket, "select", "--project", pid, "-s", "least-confidence", "-k", 5)
    ranks = [c["task_id"] for c in again["selected"]]
    assert ranks[0] == target.id != left_open and again["queue_matches"]

    # session 2: the new rank 1 first, not the task left open; the tab lists it first
    with logged_in_page(label_studio.url, label_studio.username, label_studio.password) as page:
        assert _label_all_tasks(page, data_page) == ranks[0]
        with page.expect_response(lambda r: "/api/tasks" in r.url and f"view={again['view']['id']}" in r.url,
                                  timeout=60_000) as listing:
            page.goto(again["view"]["url"])
        assert [t["id"] for t in listing.value.json()["tasks"]][0] == ranks[0]

        # a valid/test task opened by hand: no prediction fills it, and submitting nothing is refused
        held = next(t for t in tasks[20:] if active.task_split(t) != "train")
        posted = []
        page.on("request", lambda r: posted.append(r.url) if r.method == "POST" and "/annotations" in r.url else None)
        page.goto(f"{data_page}?task={held.id}")
        submit = page.get_by_test_id("bottombar-submit-button")
        submit.wait_for(timeout=60_000)
        submit.click()
        page.wait_for_timeout(2_000)
    assert posted == []
    (opened,) = active.load_tasks_by_id(ls_client, [held.id])
    assert opened.annotations == [] and opened.predictions == []
