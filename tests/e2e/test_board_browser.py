"""The dashboard in real headless Chromium: refresh without reload, 204s, STALE, login.

Hostile strings: test_hostile_browser.py.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from dashboard.models import DisplayToken
from tests import board_data
from tests.board_data import RUN_ACTIVE, RUN_FAILED, SANDBOX_UP

pytestmark = pytest.mark.browser

# Counts DOM changes inside #board, except the ages the page script advances each second.
OBSERVE = """
() => {
  window.__mutations = 0;
  new MutationObserver((records) => {
    for (const r of records) {
      const el = r.target.nodeType === 1 ? r.target : r.target.parentElement;
      if (el && el.closest('.tick')) continue;
      window.__mutations += 1;
    }
  }).observe(document.getElementById('board'), {subtree: true, childList: true, attributes: true, characterData: true});
}
"""


def _is_poll(response: Any) -> bool:
    request = response.request
    return bool(request.headers.get("hx-request")) and "v=" in request.url


def next_poll(page: Page, timeout: float = 15) -> int:
    """Wait for the page's next board poll to be answered; return its status."""
    with page.expect_response(_is_poll, timeout=timeout * 1000) as answer:
        pass
    return int(answer.value.status)


def test_signed_out_pages_redirect_to_login(page: Page, board_server: str, transactional_db: None) -> None:
    for path in ("/", f"/runs/{RUN_ACTIVE}/", f"/sandboxes/{SANDBOX_UP}/"):
        page.goto(board_server + path)
        assert "/accounts/login/" in page.url
        assert page.locator("#id_username").is_visible()


def test_snapshot_change_reaches_the_open_page_and_unchanged_board_leaves_dom_alone(
    signed_in: Page, board_server: str
) -> None:
    page = signed_in
    now = time.time()
    board_data.publish(board_data.board(now))
    page.goto(board_server + "/")
    page.evaluate("window.__marker = 'same page'")
    page.evaluate(OBSERVE)

    assert [next_poll(page) for _ in range(3)] == [204, 204, 204]
    assert page.evaluate("window.__mutations") == 0

    changed = board_data.board(now)
    changed["runs"][0]["latest_event"]["message"] = "deploying to staging"
    board_data.publish(changed)
    page.locator(f"#run-{RUN_ACTIVE}", has_text="deploying to staging").wait_for(timeout=15000)
    assert page.evaluate("window.__marker") == "same page", "updated without a reload"
    assert page.locator(f"#run-{RUN_ACTIVE}").get_attribute("data-flash") in ("a", "b"), (
        "changed row highlighted"
    )


def test_stopped_data_turns_panels_stale(signed_in: Page, board_server: str, settings: Any) -> None:
    page = signed_in
    settings.BOARD_STALE_SECONDS = 20
    now = time.time()
    board_data.publish(board_data.board(now))
    page.goto(board_server + "/")
    assert page.locator(".fresh.is-stale").count() == 0

    # The same content, last fetched long ago, and a poller that stopped ticking.
    board_data.publish(board_data.board(now - 900), heartbeat=now - 900)
    page.locator("#panel-active .fresh.is-stale").wait_for(timeout=15000)
    assert "STALE" in page.locator("#panel-active .fresh").inner_text()
    assert "the poller has not reported" in page.locator("#board").inner_text()
    # The board still holds a failed run: the title says both.
    assert page.title().startswith("✖ Attention · ⚠ STALE")


REVOKED = "This display link was revoked; ask an operator for a new one."


def test_kiosk_without_login_and_says_so_when_revoked(
    page: Page, board_server: str, transactional_db: None
) -> None:
    board_data.publish(board_data.board())
    token, raw = DisplayToken.issue("lobby")
    page.goto(f"{board_server}/kiosk/{raw}/?refresh=2")
    assert "/accounts/login/" not in page.url
    page.locator(f"#wall-run-{RUN_FAILED}").wait_for()
    assert next_poll(page) == 204

    token.revoked_at = token.created_at
    token.save()
    banner = page.locator("#connection-banner")
    banner.wait_for(state="visible", timeout=15000)
    assert banner.inner_text().strip() == REVOKED, "not 'Connection lost'"
    assert not page.locator(f"#wall-run-{RUN_FAILED}").is_visible(), "the board is no longer shown"
    assert page.title().startswith("⚠ Display link revoked")

    shown = page.goto(f"{board_server}/kiosk/{raw}/")
    assert shown is not None and shown.status == 410
    assert REVOKED in page.locator("body").inner_text()
    unknown = page.goto(f"{board_server}/kiosk/not-{raw}/")
    assert unknown is not None and unknown.status == 404
    assert "revoked" not in page.locator("body").inner_text().lower()


SCREENS = {"1080p": (1920, 1080), "4k": (3840, 2160)}


@pytest.mark.parametrize("screen", SCREENS)
def test_screenshots_and_the_kiosk_fits_the_screen(
    chromium: Any, board_server: str, transactional_db: None, screen: str
) -> None:
    from django.contrib.auth.models import User

    width, height = SCREENS[screen]
    out = Path("artifacts/screenshots")
    out.mkdir(parents=True, exist_ok=True)
    board_data.publish(board_data.wall_board(24, 0, time.time()))
    User.objects.create_user("shots", password="correct horse battery")
    _, raw = DisplayToken.issue(f"wall-{screen}")
    context = chromium.new_context(viewport={"width": width, "height": height})
    try:
        page = context.new_page()
        for theme in ("dark", "light"):
            page.goto(f"{board_server}/kiosk/{raw}/?theme={theme}")
            page.locator("#board").wait_for()
            fits = page.evaluate(
                "document.documentElement.scrollHeight <= innerHeight && document.documentElement.scrollWidth <= innerWidth"
            )
            page.screenshot(path=str(out / f"kiosk-{theme}-{screen}.png"))
            assert fits, f"the {theme} kiosk scrolls at {width}x{height}"
        page.goto(board_server + "/accounts/login/")
        page.fill("#id_username", "shots")
        page.fill("#id_password", "correct horse battery")
        page.click("button[type=submit]")
        page.wait_for_url(board_server + "/")
        page.screenshot(path=str(out / f"dashboard-{screen}.png"), full_page=True)
        # An all-clear wall, for the calm state.
        now = time.time()
        board_data.publish(board_data.board(now, runs=[board_data.run_row(RUN_ACTIVE, "success", now=now)]))
        page.goto(f"{board_server}/kiosk/{raw}/")
        page.screenshot(path=str(out / f"kiosk-clear-{screen}.png"))
    finally:
        context.close()


def test_connection_lost_banner_and_recovery(page: Page, relay: Any, transactional_db: None) -> None:
    board_data.publish(board_data.board())
    _, raw = DisplayToken.issue("flaky-wall")
    page.goto(f"{relay.url}/kiosk/{raw}/?refresh=2")
    page.evaluate("window.__marker = 'same page'")
    assert next_poll(page) == 204

    relay.stop()
    banner = page.locator("#connection-banner")
    banner.wait_for(state="visible", timeout=15000)
    assert re.search(r"Connection lost — showing data from \d\d:\d\d:\d\d", banner.inner_text())
    assert page.title().startswith("⚠ Connection lost")

    relay.start()
    banner.wait_for(state="hidden", timeout=15000)
    assert page.evaluate("window.__marker") == "same page"


def test_new_app_version_reloads_the_page(signed_in: Page, board_server: str, settings: Any) -> None:
    page = signed_in
    board_data.publish(board_data.board())
    page.goto(board_server + "/")
    page.evaluate("window.__marker = 'old page'")
    with page.expect_navigation(timeout=15000):
        settings.BOARD_APP_VERSION = "next-release"
    page.wait_for_load_state("load")
    assert page.locator("body").get_attribute("data-app-version") == "next-release"
    assert page.evaluate("window.__marker") is None, "the page reloaded itself"


# Here, not beside the day on the wall: that module's pollers would compose over the board published here.
def test_a_note_being_typed_survives_the_board_refreshing_under_it(
    signed_in: Page, board_server: str
) -> None:
    page = signed_in
    now = time.time()
    board_data.publish(board_data.board(now))
    page.goto(board_server + "/")
    note = page.locator(f"#attention-run-{RUN_FAILED} input[name=note]")
    note.click()
    note.press_sequentially("looking at it")

    changed = board_data.board(now)
    changed["runs"][0]["latest_event"]["message"] = "deploying to staging"
    board_data.publish(changed)
    page.locator(f"#run-{RUN_ACTIVE}", has_text="deploying to staging").wait_for(timeout=15000)
    assert note.input_value() == "looking at it"
    assert page.evaluate("document.activeElement && document.activeElement.name") == "note"
