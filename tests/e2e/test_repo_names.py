"""Repo names wrap only between their parts (after "/" or "-"), never inside a word, on a narrow screen."""

from __future__ import annotations

import time

from django.contrib.auth.models import User
from playwright.sync_api import Page

from tests import board_data
from tests.board_data import RUN_DONE
from tests.e2e.conftest import PASSWORD

REPO = "acme-platform/flaky-integration-tests"

# Where the text of ``el`` goes onto a new line: the character before each break.
BREAKS = """el => {
  const text = el.firstChild, breaks = [];
  let top = null;
  for (let i = 0; i < text.length; i++) {
    const range = document.createRange();
    range.setStart(text, i); range.setEnd(text, i + 1);
    const rect = range.getClientRects()[0];
    if (!rect) continue;
    if (top !== null && rect.top > top + 2) breaks.push(text.data[i - 1]);
    top = rect.top;
  }
  return breaks;
}"""


def test_repo_names_break_only_between_words_on_a_phone(
    page: Page, board_server: str, transactional_db: None
) -> None:
    User.objects.create_user("ada", password=PASSWORD)
    page.goto(board_server + "/accounts/login/")
    page.fill("#id_username", "ada")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(board_server + "/")
    now = time.time()
    done = board_data.run_row(RUN_DONE, "success", now=now)
    done.update(repo_name=REPO, branch_working="mogplex/external/0123abcd-4567ef89")
    board_data.publish(board_data.board(now, runs=[done]))
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(board_server + "/")

    name = page.locator(f"#run-{RUN_DONE} a.repo")
    assert name.inner_text() == REPO
    breaks = name.evaluate(BREAKS)
    assert breaks, "the name wraps at this width (otherwise the test shows nothing)"
    assert set(breaks) <= {"/", "-"}, f"broke after {breaks}"
