"""A page rendered in a real browser: Debian's chromium driven by Playwright (its driver ships in the
wheel; never `playwright install`), with the flags ENGINEERING.md lists for this machine — the same as
the shared `ui_shot.py`, kept here so the tests do not depend on where the repository is cloned."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]  # fmt: skip


def browser_or_skip() -> None:
    if shutil.which("chromium") is None:
        pytest.skip("no chromium: Debian's package `chromium` (./run test installs it as root)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        pytest.skip("no playwright (a dev dependency: pip install -e '.[dev]')")


async def rendered_text(url: str, screenshot: Path, wait_ms: int = 300) -> str:
    """The page's visible text once rendered, and its screenshot at `screenshot`."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=shutil.which("chromium"), args=FLAGS)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            await page.goto(url)
            await page.wait_for_timeout(wait_ms)
            await page.screenshot(path=str(screenshot))
            return await page.inner_text("body")
        finally:
            await browser.close()
