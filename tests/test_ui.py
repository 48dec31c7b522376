"""The labeling UI in a real browser: log in, open a task, and see its image proxied from the bucket."""
from __future__ import annotations

from browser_helpers import logged_in_page, needs_chromium
from datalabel import embedded


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
