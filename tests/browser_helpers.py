"""Label Studio in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright; no browser download)."""
from __future__ import annotations

import shutil
from contextlib import contextmanager

import pytest

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(CHROMIUM is None,
                                    reason="Debian's chromium is not installed (run-tests.sh installs it as root)")
# no background traffic: the machine's network is closed, and the tests reach loopback only
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]


@contextmanager
def logged_in_page(url: str, username: str, password: str):
    """A page logged in to Label Studio at `url` through its login form, as a person does."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"{url}/user/login/")
            page.fill("input[name=email]", username)
            page.fill("input[name=password]", password)
            page.click("button[type=submit]")
            page.wait_for_url(lambda current: "/login" not in current, timeout=30_000)
            yield page
        finally:
            browser.close()
