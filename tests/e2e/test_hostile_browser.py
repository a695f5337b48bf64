"""Hostile strings in real headless Chromium: upstream fields and our own inputs never run as code,
never escape their row, and every bad input is answered with one sentence.

The pages are loaded with the Content-Security-Policy bypassed, so what is
proven here is the escaping itself; the CSP is the second line of defence
(tests/test_security.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Browser, Page

from dashboard.models import DisplayToken, TrackedRun
from tests import board_data
from tests.e2e.conftest import PASSWORD
from tests.hostile import (
    CORPUS,
    SHORT,
    TRIPWIRE,
    assert_one_sentence,
    entry_id,
    upstream_board,
    upstream_records_write,
)

pytestmark = pytest.mark.browser

# What the page must not hold after hostile data was rendered, and what must hold for layout.
INERT = r"""
() => {
  const found = [];
  if (window.__xss !== undefined) found.push('window.__xss was set');
  for (const el of document.querySelectorAll('*')) {
    for (const attr of el.attributes) {
      if (attr.name.startsWith('on') || attr.name === 'srcdoc' || attr.name === 'style' && el.closest('#board, main')) {
        found.push('<' + el.localName + ' ' + attr.name + '>');
      }
    }
  }
  // The board's own status icons: an aria-hidden svg.icon holding one <use> of the vendored sprite.
  const sprite = /^\/static\/board\/icons\.svg#i-[a-z_]+$/;
  const ownIcon = (el) => el.localName === 'svg' && el.classList.contains('icon')
    && el.getAttribute('aria-hidden') === 'true' && el.children.length === 1
    && el.firstElementChild.localName === 'use' && el.firstElementChild.attributes.length === 1
    && sprite.test(el.firstElementChild.getAttribute('href') || '');
  for (const el of document.body.querySelectorAll('script:not([src]), iframe, svg, math, img, style, base, b, meta[http-equiv]')) {
    if (ownIcon(el)) continue;
    found.push('<' + el.localName + '>');
  }
  // The board's own "Track on the board" bookmarklet is made by the view, not from data.
  const bookmarklet = /^javascript:void\(open\("https?:\/\/[A-Za-z0-9.:\[\]-]+\/\?run="\+encodeURIComponent\(location\.href\)\)\)$/;
  for (const a of document.querySelectorAll('a[href]')) {
    if (a.hasAttribute('data-bookmarklet') && bookmarklet.test(a.getAttribute('href'))) continue;
    if (!['http:', 'https:'].includes(new URL(a.href, location.href).protocol)) found.push('link to ' + a.href.slice(0, 40));
  }
  for (const el of document.querySelectorAll('[hx-get], [hx-post]')) {
    const url = el.getAttribute('hx-get') || el.getAttribute('hx-post');
    if (/logout|admin/.test(url.split('?')[0])) found.push('htmx call to ' + url);
  }
  return found;
}
"""

LAYOUT = """
() => {
  const broken = [];
  const doc = document.documentElement;
  if (doc.scrollWidth > innerWidth + 1) broken.push('the page scrolls sideways: ' + doc.scrollWidth + ' > ' + innerWidth);
  const inside = (el, outer, what) => {
    const a = el.getBoundingClientRect(), b = outer.getBoundingClientRect();
    if (a.right > b.right + 1 || a.left < b.left - 1) broken.push(what + ' wider than its ' + outer.localName + ' (' + (el.id || el.className) + ')');
  };
  for (const row of document.querySelectorAll('table tr')) inside(row, row.closest('table'), 'row');
  for (const table of document.querySelectorAll('table')) inside(table, table.closest('.panel'), 'table');
  for (const el of document.querySelectorAll('.wall-row > span')) inside(el, el.closest('.wall-row'), 'cell');
  for (const el of document.querySelectorAll('.panel, .banner, .form-error, .timeline li, dd, pre')) inside(el, document.body, el.localName);
  // A bidi override in a source's name must not turn the words after it around.
  for (const name of document.querySelectorAll('.banner-source strong')) {
    const after = name.nextSibling;
    const at = after && after.nodeType === 3 ? after.data.indexOf('is') : -1;
    if (at < 0) continue;
    const range = document.createRange();
    range.setStart(after, at); range.setEnd(after, at + 1);
    const first = range.getBoundingClientRect().left;
    range.setStart(after, at + 1); range.setEnd(after, at + 2);
    if (range.getBoundingClientRect().left < first) broken.push('the words after a source name run right to left');
  }
  let longest = 0;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const el = walker.currentNode.parentElement;
    if (!el.closest('pre.log, input, textarea')) longest = Math.max(longest, walker.currentNode.data.length);
  }
  if (longest > 4500) broken.push('a text of ' + longest + ' characters is shown unclipped');
  return broken;
}
"""


@pytest.fixture
def raw_page(chromium: Browser) -> Iterator[tuple[Page, list[str]]]:
    """A page with the CSP bypassed and a record of every dialog it tried to open."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    yield page, dialogs
    context.close()


@pytest.fixture
def hostile_page(
    raw_page: tuple[Page, list[str]], board_server: str, transactional_db: None
) -> Iterator[Page]:
    page, dialogs = raw_page
    User.objects.create_user("ada", password=PASSWORD)
    page.goto(board_server + "/accounts/login/")
    page.fill("#id_username", "ada")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(board_server + "/")
    yield page
    assert dialogs == [], "a hostile string opened a dialog"


def check(page: Page, where: str) -> None:
    page.wait_for_load_state("load")
    injected = page.evaluate(INERT)
    assert not injected, f"{where}: {injected}"
    broken = page.evaluate(LAYOUT)
    assert not broken, f"{where}: {broken}"


def _is_poll(response: Any) -> bool:
    return bool(response.request.headers.get("hx-request")) and "v=" in response.request.url


def test_hostile_upstream_strings_never_execute_link_or_break_layout(
    hostile_page: Page, board_server: str
) -> None:
    """The whole corpus in every upstream string field, on every page that shows one."""
    page = hostile_page
    now = time.time()
    board_data.publish(upstream_board(now))
    upstream_records_write(now)

    # The repos page: every entry as a repo's name, default branch and root directory.
    page.goto(board_server + "/repos/")
    check(page, "repos")
    assert f"<script>{TRIPWIRE}</script>" in page.locator("#repos-demo").inner_text()

    # The automations page: every entry as an automation's name, description and status, and as a
    # job run's repo and error.
    page.goto(board_server + "/automations/")
    check(page, "automations")
    assert f"<script>{TRIPWIRE}</script>" in page.locator("#automations-demo").inner_text()

    # One overview holds every entry: two runs, two sandboxes and a source per entry.
    page.goto(board_server + "/")
    check(page, "overview")
    shown = page.locator("#board").inner_text()
    assert f"<script>{TRIPWIRE}</script>" in shown, "markup is shown as text"
    assert "{{ 7*7 }}" in shown, "template syntax is shown as it is"
    with page.expect_response(_is_poll) as poll:
        pass
    assert poll.value.status in (200, 204)

    # A run page and a sandbox page show one run's, one sandbox's fields: one page per entry.
    for i in range(len(CORPUS)):
        page.goto(f"{board_server}/runs/{entry_id(i, 2)}/")
        check(page, f"the run page of entry {i}")
    for i in range(len(CORPUS)):
        page.goto(f"{board_server}/sandboxes/{entry_id(i, 3)}/")
        check(page, f"the sandbox page of entry {i}")
    page.click("text=Load logs")
    page.locator("#logs pre.log").first.wait_for()
    check(page, "sandbox logs")

    # The wall shows a few rows per panel: four entries at a time.
    _, raw = DisplayToken.issue("hostile-wall")
    for start in range(0, len(CORPUS), 4):
        board_data.publish(upstream_board(now, CORPUS[start : start + 4]))
        page.goto(f"{board_server}/kiosk/{raw}/")
        check(page, f"the wall with entries {start} to {start + 3}")


def alerts(page: Page, selector: str) -> list[str]:
    texts = page.locator(selector).all_inner_texts()
    for text in texts:
        assert_one_sentence(text)
    return texts


def test_hostile_input_is_refused_in_one_sentence_and_never_executes(
    hostile_page: Page, board_server: str
) -> None:
    """The corpus in the track form, the overview's filters and the kiosk's URL parameters."""
    page = hostile_page
    board_data.publish(board_data.board())

    # Five entries per overview: search, repo, status, sort and time zone.
    for start in range(0, len(SHORT), 5):
        names = ("q", "repo", "status", "sort", "tz")
        query = dict(zip(names, SHORT[start : start + 5], strict=False))
        page.goto(f"{board_server}/?{urlencode(query)}")
        check(page, f"the overview filtered by entries {start} to {start + 4}")
        assert alerts(page, ".filter-form .form-error"), "a refused filter says so"
    # The page polls for the filters it applied, and the poll is answered.
    with page.expect_response(_is_poll) as poll:
        pass
    assert poll.value.status in (200, 204)

    # Every entry pasted into the track form, one after another.
    page.goto(board_server + "/")
    for n, text in enumerate(SHORT):
        page.fill("#id_run", text)
        page.click(".track-form button[type=submit]")
        check(page, f"the track form after entry {n}")
        assert len(alerts(page, ".track-form .form-error")) == 1, f"entry {n} is refused in one sentence"
    assert TrackedRun.objects.count() == 0

    # Six entries per wall address: three panels, refresh, theme and time zone.
    _, raw = DisplayToken.issue("hostile-wall")
    for start in range(0, len(SHORT), 6):
        chunk = [t for t in SHORT[start : start + 6] if t.strip()]
        query = dict(zip(("refresh", "theme", "tz"), chunk[3:], strict=False))
        query["panels"] = ",".join(chunk[:3])
        page.goto(f"{board_server}/kiosk/{raw}/?{urlencode(query)}")
        check(page, f"the wall's problem page for entries {start} to {start + 5}")
        assert alerts(page, ".kiosk-problem li")
    # Repos are names to match: any text is taken, shown clipped, and polled for.
    repos = ",".join(t for t in SHORT if "," not in t)
    page.goto(f"{board_server}/kiosk/{raw}/?{urlencode({'repos': repos, 'refresh': 2})}")
    check(page, "the wall scoped to every entry")
    with page.expect_response(_is_poll, timeout=15000) as poll:
        pass
    assert poll.value.status in (200, 204)
    assert page.locator("#connection-banner").is_hidden()
