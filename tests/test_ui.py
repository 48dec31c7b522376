"""The labeling UI in a real browser: log in, open a task, and see its image proxied from the bucket."""
from __future__ import annotations

import shutil

import pytest

from datalabel import embedded

CHROMIUM = shutil.which("chromium")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (run-tests.sh installs it as root)")
def test_task_image_displays_in_labeling_ui(label_studio, ls_client, bucket, tmp_path):
    from playwright.sync_api import sync_playwright

    project_id = embedded.seed_demo(ls_client, bucket.name, tmp_path / "samples", limit=3, title=f"ui {bucket.name}")
    task_id = next(iter(ls_client.tasks.list(project=project_id))).id
    flags = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--no-first-run"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=flags)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"{label_studio.url}/user/login/")
            page.fill("input[name=email]", label_studio.username)
            page.fill("input[name=password]", label_studio.password)
            page.click("button[type=submit]")
            page.wait_for_url(lambda url: "/login" not in url, timeout=30_000)
            page.goto(f"{label_studio.url}/projects/{project_id}/data?task={task_id}")
            # the labeling panel's image: served by Label Studio's proxy from the emulator bucket
            selector = f"img[src*='/tasks/{task_id}/resolve/']"
            page.wait_for_function(
                f"() => [...document.querySelectorAll(\"{selector}\")].some(i => i.complete && i.naturalWidth > 0)",
                timeout=60_000)
            sizes = page.eval_on_selector_all(selector, "els => els.map(e => [e.naturalWidth, e.naturalHeight])")
        finally:
            browser.close()
    assert [64, 64] in sizes  # the 8x8 digit written at 64x64 by datalabel.samples
