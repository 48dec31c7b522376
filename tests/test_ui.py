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
