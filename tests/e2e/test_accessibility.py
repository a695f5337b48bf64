"""Every page through axe-core in real Chromium, in both themes; the live region's announcements.

axe-core is vendored under tests/e2e/vendor/ (MPL-2.0, its licence beside it), injected
into the page by Playwright; the page's CSP is bypassed for that one script only in
this context, since the board itself never runs inline or foreign script.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Browser, Page

from dashboard import snapshots
from dashboard.models import DisplayToken, RunSummary
from tests import board_data
from tests.board_data import RUN_ACTIVE, RUN_FAILED, SANDBOX_UP
from tests.e2e.conftest import PASSWORD

pytestmark = pytest.mark.browser

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
RUN_AXE = """
async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => v.id + ' (' + v.impact + '): ' + v.help + ' at ' + v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | '));
}
"""


def serious_violations(page: Page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    return list(page.evaluate(RUN_AXE))


# A finished run whose record has left Redis: its page comes from its history summary.
RUN_KEPT = "44444444-4444-4444-8444-444444444444"


def publish_everything() -> None:
    now = time.time()
    composed = board_data.board(now)
    for row in composed["runs"]:
        if row["run_id"] == RUN_ACTIVE:
            row["longer_than_usual"] = 840.0  # the badge's contrast, in both themes
    board_data.publish(composed)
    snapshots.run_write(board_data.run_record(RUN_FAILED, now=now))
    snapshots.sandboxes_write(
        "demo", [board_data.sandbox_row(SANDBOX_UP, "running", now=now)], fetched_at=now
    )
    finished = datetime.now(UTC) - timedelta(hours=1)
    for run_id, status in ((uuid.uuid4(), "success"), (RUN_KEPT, "failed")):
        RunSummary.objects.create(
            run_id=run_id,
            source="demo",
            repo_id="repo-web",
            repo_name="acme/web",
            branch_base="main",
            branch_working="agent/fix",
            harness="claude-code",
            status=status,
            created_at=finished - timedelta(minutes=5),
            finished_at=finished,
            duration_seconds=300.0,
            pr_url="https://github.com/acme/web/pull/1",
            delivery="pull_request",
        )


@pytest.fixture(params=["light", "dark"])
def themed(request: Any, chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context(
        viewport={"width": 1280, "height": 900}, color_scheme=request.param, bypass_csp=True
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert errors == [], "the page script raised errors"


def sign_in(page: Page, board_server: str) -> None:
    page.goto(board_server + "/accounts/login/")
    page.fill("#id_username", "ada")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(board_server + "/")


def test_every_page_has_no_serious_axe_violation_and_one_h1(
    themed: Page, board_server: str, transactional_db: None
) -> None:
    page = themed
    User.objects.create_user("ada", password=PASSWORD, is_staff=True)
    publish_everything()
    _, raw = DisplayToken.issue("lobby")
    found: dict[str, list[str]] = {}
    h1s: dict[str, int] = {}

    def check(name: str, path: str) -> None:
        page.goto(board_server + path)
        page.wait_for_load_state("load")
        h1s[name] = page.locator("h1").count()
        found[name] = serious_violations(page)

    check("sign-in", "/accounts/login/")
    check("kiosk", f"/kiosk/{raw}/")
    check("kiosk-light", f"/kiosk/{raw}/?theme=light")
    check("kiosk-unknown", "/kiosk/not-a-token/")
    sign_in(page, board_server)
    check("dashboard", "/")
    assert page.locator(f"#run-{RUN_ACTIVE} .flag-long").inner_text() == "running longer than usual (p90 14m)"
    check("run", f"/runs/{RUN_FAILED}/")
    check("run-not-found", f"/runs/{uuid.uuid4()}/")
    check("run-kept", f"/runs/{RUN_KEPT}/")
    check("sandbox", f"/sandboxes/{SANDBOX_UP}/")
    check("history", "/history/")
    check("trends", "/trends/")
    check("not-found", "/no/such/page/")
    page.goto(board_server + "/history/")
    page.click("button:has-text('Log out')")
    page.wait_for_load_state("load")
    h1s["logged-out"] = page.locator("h1").count()
    found["logged-out"] = serious_violations(page)

    # The checker itself sees a nameless button, so an empty list above means something.
    page.evaluate("document.querySelector('main').append(document.createElement('button'))")
    assert any(v.startswith("button-name") for v in serious_violations(page))
    assert {name: v for name, v in found.items() if v} == {}
    assert {name: n for name, n in h1s.items() if n != 1} == {}, "exactly one h1 per page"


def test_landmarks_skip_link_and_table_headers(signed_in: Page, board_server: str) -> None:
    page = signed_in
    board_data.publish(board_data.board())
    page.goto(board_server + "/")
    assert page.locator("header.topbar nav").count() == 1
    assert page.locator("main#main").count() == 1
    page.keyboard.press("Tab")
    skip = page.locator(":focus")
    assert skip.inner_text() == "Skip to the board"
    assert skip.is_visible(), "the skip link shows when focused"
    outline = skip.evaluate("el => getComputedStyle(el).outlineStyle")
    assert outline != "none", "focus is visible"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    tables = page.locator("#board table")
    assert tables.count() >= 3
    for i in range(tables.count()):
        table = tables.nth(i)
        assert table.locator("caption").count() == 1
        assert table.locator("thead th:not([scope=col])").count() == 0


def test_live_region_announces_a_new_failure_and_a_recovery_once(signed_in: Page, board_server: str) -> None:
    page = signed_in
    now = time.time()
    calm = board_data.board(now, runs=[board_data.run_row(RUN_ACTIVE, "running", now=now)])
    board_data.publish(calm)
    page.goto(board_server + "/")
    live = page.locator("#announcer")
    assert live.get_attribute("aria-live") == "polite"
    assert live.inner_text() == "", "nothing is announced on load"
    page.evaluate(
        """() => { window.__said = [];
        new MutationObserver(() => window.__said.push(document.getElementById('announcer').textContent))
          .observe(document.getElementById('announcer'), {childList: true, characterData: true, subtree: true}); }"""
    )

    failing = board_data.board(
        now,
        runs=[
            board_data.run_row(RUN_ACTIVE, "running", now=now),
            board_data.run_row(RUN_FAILED, "failed", now=now),
        ],
    )
    board_data.publish(failing)
    page.locator("#announcer", has_text="failed").wait_for(timeout=15000)
    said = live.inner_text()
    assert said.startswith("New problem:"), said

    board_data.publish(calm)
    page.locator("#announcer", has_text="Recovered").wait_for(timeout=15000)
    messages = [m for m in page.evaluate("window.__said") if m]
    assert len(messages) == 2, messages


def test_pages_follow_the_browser_theme_and_the_toggle_is_remembered(
    chromium: Browser, board_server: str, transactional_db: None
) -> None:
    User.objects.create_user("ada", password=PASSWORD)
    board_data.publish(board_data.board())
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, color_scheme="dark")
    try:
        page = context.new_page()
        sign_in(page, board_server)

        def background() -> str:
            return str(page.evaluate("getComputedStyle(document.body).backgroundColor"))

        assert background() == "rgb(13, 17, 23)", "dark, as the browser prefers"
        toggle = page.locator("#theme-toggle")
        assert toggle.inner_text() == "Theme: follows the browser"
        toggle.click()  # dark
        toggle.click()  # light
        assert toggle.inner_text() == "Theme: light"
        assert background() == "rgb(246, 247, 249)"
        page.goto(board_server + "/history/")
        assert background() == "rgb(246, 247, 249)", "the choice is remembered in this browser"
        _, raw = DisplayToken.issue("lobby")
        page.goto(f"{board_server}/kiosk/{raw}/?theme=auto")
        assert background() == "rgb(13, 17, 23)", "the kiosk's auto follows the screen"
    finally:
        context.close()
