"""Browser fixtures: a real hypercorn server, and Debian's Chromium driven by Playwright.

No browser is downloaded: Playwright launches the system ``chromium`` (installed by
``make services``). Where it or Playwright is missing, every browser test skips
with a reason that says so, and the summary repeats it in capitals.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import pytest_asyncio

from tests.e2e.server import QuartetServer

CHROMIUM = os.environ.get("QUARTET_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
LOOPBACK = {"127.0.0.1", "localhost"}

_missing: list[str] = []


def browser_unavailable() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[test]')"
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"no Chromium at {CHROMIUM}: run `make services` as root (apt-get install chromium)"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = browser_unavailable()
    for item in items:
        if "tests/browser" not in str(item.path):
            continue
        item.add_marker(pytest.mark.browser)
        if reason and "browsing" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.skip(reason=f"NO CHROMIUM: {reason}"))
    if reason and any("tests/browser" in str(item.path) for item in items):
        _missing.append(reason)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: the web page in headless Chromium")


def pytest_terminal_summary(terminalreporter) -> None:
    for reason in _missing:
        terminalreporter.write_sep("!", "BROWSER TESTS SKIPPED", red=True, bold=True)
        terminalreporter.write_line(f"THE WEB PAGE WAS NOT TESTED: {reason}", red=True, bold=True)


@pytest.fixture(scope="session")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QuartetServer]:
    """A real hypercorn serving Quartet with the offline demo model."""
    data_dir = tmp_path_factory.mktemp("quartet-ui")
    env = {
        "QUARTET_MODEL": "demo",
        "QUARTET_MESSAGES_PER_MINUTE": "0",
        "QUARTET_REQUESTS_PER_MINUTE": "0",
    }
    server = QuartetServer(data_dir, env=env).start()
    yield server
    server.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser():
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield browser
        await browser.close()


@dataclass
class Watch:
    """What a page did that it must not: remote requests, dialogs, script errors."""

    remote_requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)


@dataclass
class Browsing:
    """One browser context (one person's localStorage) on the test server."""

    context: object
    server: QuartetServer
    watch: Watch
    name: str

    async def new_page(self):
        page = await self.context.new_page()

        async def on_dialog(dialog) -> None:
            self.watch.dialogs.append(dialog.message)
            await dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("pageerror", lambda error: self.watch.page_errors.append(str(error)))
        return page

    async def shot(self, page, state: str) -> None:
        """Save a screenshot of *page* in this state, as a test artifact."""
        SCREENSHOTS.mkdir(exist_ok=True)
        await page.screenshot(path=SCREENSHOTS / f"{self.name}--{state}.png", full_page=True)


@pytest_asyncio.fixture(loop_scope="session")
async def browsing(
    browser, ui_server: QuartetServer, request: pytest.FixtureRequest
) -> AsyncIterator[Browsing]:
    """A fresh context whose every request off loopback is recorded and refused."""
    viewport = getattr(request, "param", None) or {"width": 1100, "height": 800}
    context = await browser.new_context(viewport=viewport)
    watch = Watch()

    async def guard(route) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK:
            await route.continue_()
        else:
            watch.remote_requests.append(route.request.url)
            await route.abort()

    await context.route("**/*", guard)
    name = re.sub(r"[^\w.-]+", "_", request.node.name)
    yield Browsing(context, ui_server, watch, name)
    await context.close()
    assert watch.page_errors == [], watch.page_errors


@pytest.fixture(scope="module")
def hasty_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QuartetServer]:
    """A server whose confirmations and questions time out after a second and a half."""
    server = QuartetServer(
        tmp_path_factory.mktemp("quartet-hasty"),
        env={"QUARTET_MODEL": "demo", "QUARTET_CONFIRMATION_TIMEOUT_S": "1.5"},
    ).start()
    yield server
    server.stop()
