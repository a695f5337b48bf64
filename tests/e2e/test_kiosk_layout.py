"""The wall kiosk fits any screen: rows fitted to the room there is, a clock that runs, freshness on 204s.

One Chromium page per test: the viewport is resized and the board's data swapped
under the open page (a new composed board, then ``board:refresh`` on the poll
element so the page asks at once), as a wall lives. Screenshots of every layout
go to ``artifacts/test-screenshots/`` (git-ignored).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from dashboard.models import DisplayToken
from tests import board_data

pytestmark = pytest.mark.browser

SHOTS = Path("artifacts/test-screenshots")
SCREENS = ((1280, 720), (1920, 1080), (3840, 2160))
# (items, banners): every count of items with none and the most banners, every count of banners at 30.
LAYOUTS = ((3, 0), (3, 3), (30, 0), (30, 1), (30, 2), (30, 3), (120, 0), (120, 3))

# What a person would see wrong with the wall, as a list of sentences (empty when all is well).
LAYOUT_PROBLEMS = """
() => {
  const problems = [];
  const vw = innerWidth, vh = innerHeight, slack = 1;
  const inside = (r, box) => r.left >= box.left - slack && r.right <= box.right + slack &&
                             r.top >= box.top - slack && r.bottom <= box.bottom + slack;
  const shown = (el) => el.getClientRects().length > 0;
  const view = {left: 0, top: 0, right: vw, bottom: vh};
  const root = document.documentElement;
  if (root.scrollHeight > vh || root.scrollWidth > vw) problems.push(`the page scrolls (${root.scrollWidth}x${root.scrollHeight})`);

  const headline = document.querySelector('.wall-overall');
  const h = headline.getBoundingClientRect();
  if (!inside(h, view) || h.height === 0) problems.push('the headline is not on the screen');
  const top = document.elementFromPoint(h.left + h.width / 2, h.top + h.height / 2);
  if (!top || !headline.contains(top) && top !== headline) problems.push(`the headline is covered by ${top && top.className}`);

  for (const el of document.querySelectorAll('body *')) {
    if (!shown(el) || el.closest('[hidden]')) continue;
    const r = el.getBoundingClientRect();
    if (r.width && r.height && !inside(r, view)) problems.push(`${el.tagName}.${el.className} leaves the screen`);
  }
  for (const panel of document.querySelectorAll('.wall-grid .panel')) {
    const box = panel.getBoundingClientRect();
    for (const el of panel.querySelectorAll('*')) {
      if (!shown(el)) continue;
      const r = el.getBoundingClientRect();
      if (r.width && r.height && !inside(r, box)) problems.push(`${el.tagName}.${el.className} overflows #${panel.id}`);
    }
  }
  for (const list of document.querySelectorAll('ul[data-fit]')) {
    const panel = list.closest('.panel');
    const box = list.getBoundingClientRect();
    const rows = [...list.children].filter((li) => !li.hidden);
    const line = Math.min(...rows.map((row) => row.getBoundingClientRect().height));
    for (const row of rows) {
      if (!inside(row.getBoundingClientRect(), box)) problems.push(`a row of #${panel.id} is cut`);
      if (row.getBoundingClientRect().height > line * 1.5) problems.push(`a row of #${panel.id} takes two lines`);
    }
    // Columns line up: every row's age ends where the others' do (a STALE flag after it aside).
    const ends = rows.filter((row) => !row.querySelector('.row-stale')).map((row) => row.querySelector(':scope > .when'))
      .filter(Boolean).map((when) => Math.round(when.getBoundingClientRect().right));
    if (ends.length && Math.max(...ends) - Math.min(...ends) > 2) problems.push(`the rows of #${panel.id} do not line up`);
    const total = Number(list.dataset.total);
    const more = panel.querySelector('[data-fit-more]');
    const said = more && !more.hidden ? Number(more.querySelector('[data-fit-count]').textContent) : 0;
    if (said !== total - rows.length) problems.push(`#${panel.id} says +${said} more but hides ${total - rows.length}`);
    if (said > 0 && rows.length && list.children.length > rows.length) {
      // Rows were hidden for want of room: one more would really not have fitted.
      const last = rows[rows.length - 1].getBoundingClientRect();
      const gap = parseFloat(getComputedStyle(list).rowGap) || 0;
      if (box.bottom - last.bottom >= last.height + gap) problems.push(`#${panel.id} hides a row it has room for`);
    }
  }
  return problems;
}
"""

FITTED = """
() => ({
  fits: window.boardPage.fits,
  swaps: window.boardPage.swaps,
  rows: Object.fromEntries([...document.querySelectorAll('ul[data-fit]')].map((list) =>
    [list.closest('.panel').id, [...list.children].filter((li) => !li.hidden).length])),
})
"""


def _publish(items: int, banners: int) -> None:
    now = time.time()
    heartbeat = now - 3600 if banners >= 3 else now
    board_data.publish(board_data.wall_board(items, banners, now), heartbeat=heartbeat)


def _refresh(page: Page) -> None:
    """Have the open wall ask for the board now, and wait until the new one is shown and fitted."""
    swaps = page.evaluate("window.boardPage.swaps")
    page.evaluate("htmx.trigger('#board-poll', 'board:refresh')")
    page.wait_for_function("(n) => window.boardPage.swaps > n", arg=swaps, timeout=15000)


def _resize(page: Page, width: int, height: int) -> None:
    fits = page.evaluate("window.boardPage.fits")
    page.set_viewport_size({"width": width, "height": height})
    page.wait_for_function(
        "([n, width]) => window.boardPage.fits > n && innerWidth === width", arg=[fits, width], timeout=15000
    )


@pytest.fixture
def wall(page: Page, board_server: str, transactional_db: None) -> Page:
    """The page a wall is opened in, at a size none of the screens has (so each resize is one)."""
    page.set_viewport_size({"width": 1024, "height": 768})
    return page


def _open(page: Page, board_server: str, query: str = "") -> None:
    _, raw = DisplayToken.issue(f"wall-{time.monotonic_ns()}")
    page.goto(f"{board_server}/kiosk/{raw}/?refresh=300{query}")
    page.locator("#board").wait_for()


def test_the_wall_fits_every_screen_with_few_and_many_rows_and_banners(wall: Page, board_server: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    _publish(3, 0)
    _open(wall, board_server)
    failures = []
    rows_at: dict[tuple[int, int, int], dict[str, int]] = {}
    for items, banners in LAYOUTS:
        _publish(items, banners)
        _refresh(wall)
        assert wall.locator(".wall-head ~ .banner").count() == banners
        for width, height in SCREENS:
            _resize(wall, width, height)
            wall.screenshot(path=str(SHOTS / f"kiosk-{width}x{height}-{items}-items-{banners}-banners.png"))
            failures += [
                f"{width}x{height}, {items} items, {banners} banners: {problem}"
                for problem in wall.evaluate(LAYOUT_PROBLEMS)
            ]
            fitted = rows_at[items, banners, width] = wall.evaluate(FITTED)["rows"]
            if items == 3:
                assert wall.locator("[data-fit-more]:visible").count() == 0, "nothing left out"
                # The lane: the failed run, and each source that lost its token.
                assert fitted["wall-runs"] == 2 and fitted["wall-attention"] == 1 + min(banners, 2)
    assert failures == []
    # A 4K wall is a 1080p wall at twice the size: both filled, with the same rows.
    for items, banners in LAYOUTS:
        full_hd, uhd = rows_at[items, banners, 1920], rows_at[items, banners, 3840]
        assert all(abs(full_hd[panel] - uhd[panel]) <= 1 for panel in full_hd), (items, banners, full_hd, uhd)


def test_compact_density_shows_more_rows_on_a_big_screen(wall: Page, board_server: str) -> None:
    _publish(120, 0)
    wall.set_viewport_size({"width": 3840, "height": 2160})
    _open(wall, board_server)
    comfortable = wall.evaluate(FITTED)["rows"]
    _open(wall, board_server, "&density=compact")
    compact = wall.evaluate(FITTED)["rows"]
    SHOTS.mkdir(parents=True, exist_ok=True)
    wall.screenshot(path=str(SHOTS / "kiosk-3840x2160-120-items-compact.png"))
    assert wall.evaluate(LAYOUT_PROBLEMS) == []
    for panel in ("wall-attention", "wall-runs", "wall-sandboxes"):
        assert compact[panel] > comfortable[panel] * 1.2, (panel, comfortable, compact)
    # Still readable across a room: the rows' type is at least that of a comfortable 1080p wall.
    size = wall.evaluate(
        "parseFloat(getComputedStyle(document.querySelector('#wall-runs .wall-row')).fontSize)"
    )
    assert size >= 23


def test_clock_ages_and_freshness_keep_moving_through_unchanged_answers(
    wall: Page, board_server: str
) -> None:
    """For 10 s of 204s the clock, the ages and "running for" tick, and "updated" counts from the last fetch."""
    now = time.time()
    composed = board_data.wall_board(3, 0, now)
    version = board_data.publish(json.loads(json.dumps(composed)))
    _, raw = DisplayToken.issue("quiet-night")
    wall.goto(f"{board_server}/kiosk/{raw}/?refresh=2&tz=Asia/Kolkata")
    readings = []
    statuses = []
    ages = []  # how old the data truly was when each reading was taken
    started = time.monotonic()
    while time.monotonic() - started < 10:
        # The poller fetches again and finds nothing new: same version, later fetch times.
        fetched_at = time.time()
        again = json.loads(json.dumps(composed))
        for run in again["runs"]:
            run["fetched_at"] = fetched_at
        assert board_data.publish(again) == version
        with wall.expect_response(lambda r: "v=" in r.url, timeout=15000) as answer:
            pass
        statuses.append(answer.value.status)
        readings.append(
            wall.evaluate(
                """() => ({
                  clock: document.querySelector('.wall-clock time').textContent,
                  running: document.querySelector('#wall-runs .when time').textContent,
                  age: document.querySelector('#wall-attention .when time').textContent,
                  updated: document.querySelector('#wall-runs .fresh').textContent,
                })"""
            )
        )
        ages.append(time.time() - fetched_at)
    assert set(statuses) == {204}, "nothing changed, so every poll was answered 204"
    assert wall.evaluate("window.boardPage.swaps") == 0
    for key in ("clock", "running", "age"):
        seen = [r[key] for r in readings]
        assert all(a != b for a, b in zip(seen, seen[1:], strict=False)), f"the {key} stopped: {seen}"
    # The clock shows the wall's zone (India has no daylight saving time: UTC+5:30).
    india = time.gmtime(time.time() + 5.5 * 3600)
    shown_hour, shown_minute = (int(part) for part in readings[-1]["clock"].split(":")[:2])
    assert abs((shown_hour * 60 + shown_minute) - (india.tm_hour * 60 + india.tm_min)) % 1440 <= 1
    # "updated" follows the fetches the 204s reported, not the page's load 10 s ago.
    # Each reading says the true age of the data it was taken with: in whole seconds, ticked
    # once a second, so up to 2 s under it (and never over it beyond the clock offset's error).
    shown = [int(r["updated"].removeprefix("updated ").removesuffix("s ago")) for r in readings]
    pairs = list(zip(shown, ages, strict=True))[1:]
    assert all(age - 2 < said <= age + 0.5 for said, age in pairs), (shown, ages)


def test_the_connection_banner_takes_room_and_covers_nothing(
    page: Page, relay: Any, transactional_db: None
) -> None:
    _publish(120, 2)
    _, raw = DisplayToken.issue("flaky-wall")
    page.set_viewport_size({"width": 1920, "height": 1080})
    page.goto(f"{relay.url}/kiosk/{raw}/?refresh=2")
    before = page.evaluate(FITTED)
    relay.stop()
    page.locator("#connection-banner").wait_for(state="visible", timeout=15000)
    page.wait_for_function("(n) => window.boardPage.fits > n", arg=before["fits"], timeout=15000)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "kiosk-1920x1080-connection-lost.png"))
    assert page.evaluate(LAYOUT_PROBLEMS) == []
    relay.start()
    page.locator("#connection-banner").wait_for(state="hidden", timeout=15000)


def test_alert_pulses_a_new_problem_once_and_only_when_asked(wall: Page, board_server: str) -> None:
    now = time.time()
    board_data.publish(board_data.board(now))
    _open(wall, board_server, "&alert=1")
    assert wall.evaluate("window.boardPage.alerted") is None, "what was failing at load is not news"

    failed = board_data.run_row(
        "55555555-5555-4555-8555-555555555555", "failed", now=now, finished_at=now - 5, error="exit 2"
    )
    composed = board_data.board(now)
    composed["runs"].append(failed)
    board_data.publish(composed)
    _refresh(wall)
    new_row = f"wall-run-{failed['run_id']}"
    assert wall.evaluate("window.boardPage.alerted") == [new_row]
    pulse = "(id) => getComputedStyle(document.getElementById(id)).animationName"
    assert wall.evaluate(pulse, new_row) == "alert-pulse"
    assert wall.evaluate(pulse, f"wall-run-{board_data.RUN_FAILED}") == "none", "the old failure stays still"

    # Without motion the row does not pulse; the chime is the browser's to allow.
    wall.emulate_media(reduced_motion="reduce")
    assert wall.evaluate(pulse, new_row) == "none"

    # Not asked for: no pulse.
    _open(wall, board_server)
    board_data.publish(board_data.board(now))
    _refresh(wall)
    board_data.publish(composed)
    _refresh(wall)
    assert wall.evaluate("window.boardPage.alerted") is None
    assert wall.locator(".alert-new").count() == 0


def test_what_a_source_must_fix_is_read_first_and_whole_on_the_wall(wall: Page, board_server: str) -> None:
    now = time.time()
    composed = board_data.wall_board(3, 0, now)
    composed["sources"] = [
        board_data.source_row(
            "release-bot",
            now=now,
            lookups_waiting=3,
            account={
                "github_state": "app_install_pending",
                "github_label": "Install pending",
                "models": 0,
                "advice": ["No model is usable with this token.", "No repo appears."],
                "unknown": False,
            },
        )
    ]
    board_data.publish(composed)
    wall.set_viewport_size({"width": 1920, "height": 1080})
    _open(wall, board_server)
    line = wall.locator("#wall-sources .wall-row .detail").first
    assert (line.text_content() or "").startswith("2 to fix · Install pending · 0 models")
    clipped = line.evaluate(
        """(cell) => {
          const fix = cell.querySelector('.err').getBoundingClientRect();
          return fix.right > cell.getBoundingClientRect().right + 1;
        }"""
    )
    assert not clipped, "the source's '2 to fix' is cut off at the end of its line"
    assert wall.evaluate(LAYOUT_PROBLEMS) == []
