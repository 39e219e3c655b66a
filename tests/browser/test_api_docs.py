"""``/docs`` renders the API's operations in a real browser, with every request kept local."""

from __future__ import annotations

import pytest

from tests.browser.conftest import Browsing

expect = pytest.importorskip(
    "playwright.async_api", reason="NO PLAYWRIGHT: pip install -e '.[test]'"
).expect

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_swagger_ui_renders_the_operations_offline(browsing: Browsing) -> None:
    page = await browsing.new_page()
    await page.goto(browsing.server.base_url + "/docs")
    await expect(page.get_by_text("Quartet", exact=False).first).to_be_visible()
    operations = page.locator(".opblock-summary-path")
    await expect(operations.first).to_be_visible(timeout=15_000)
    paths = set(await operations.all_inner_texts())
    assert {"/api/v1/sessions", "/api/v1/skills", "/healthz"} <= {p.strip() for p in paths}
    await expect(page.get_by_role("link", name="WebSocket protocol page")).to_be_visible()
    await browsing.shot(page, "docs")
    assert browsing.watch.remote_requests == []
