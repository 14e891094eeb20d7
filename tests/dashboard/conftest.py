"""The browser the dashboard tests drive: Debian's Chromium, headless, through Playwright (never a
browser of Playwright's own)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parents[1] / "artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture
def page():
    assert CHROMIUM.exists(), "make test installs Debian's chromium (scripts/install-system-packages.sh)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 2200})
        page.problems = []
        page.on("console", lambda m: page.problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: page.problems.append(str(e)))
        yield page
        browser.close()


def screenshots(page, name: str, ready) -> None:
    """The page in each theme, saved as ``<name>-light.png`` and ``<name>-dark.png``; ``ready(page)``
    waits until the reloaded page has drawn."""
    ARTIFACTS.mkdir(exist_ok=True)
    for theme in ("light", "dark"):
        page.evaluate(f"localStorage.setItem('logpipe-theme', '{theme}')")
        page.reload()
        ready(page)
        page.screenshot(path=str(ARTIFACTS / f"{name}-{theme}.png"), full_page=True)
