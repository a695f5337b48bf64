"""The board on a phone: nothing wider than the screen, the attention lane first, 44 px targets."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Browser

from tests import board_data
from tests.board_data import RUN_FAILED, SANDBOX_UP
from tests.e2e.conftest import PASSWORD

pytestmark = pytest.mark.browser

PHONES = {"360x740": (360, 740), "390x844": (390, 844)}
SHOTS = Path("/tmp/looks")


@pytest.mark.parametrize("phone", PHONES)
def test_the_board_fits_a_phone_with_the_lane_first(
    chromium: Browser, board_server: str, transactional_db: None, phone: str
) -> None:
    width, height = PHONES[phone]
    User.objects.create_user("ada", password=PASSWORD)
    board_data.publish(board_data.board())
    context = chromium.new_context(
        viewport={"width": width, "height": height}, is_mobile=True, has_touch=True
    )
    try:
        page = context.new_page()
        page.goto(board_server + "/accounts/login/")
        page.fill("#id_username", "ada")
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(board_server + "/")
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / f"dashboard-phone-{phone}.png"), full_page=True)
        for path in ("/", f"/runs/{RUN_FAILED}/", f"/sandboxes/{SANDBOX_UP}/", "/history/"):
            page.goto(board_server + path)
            scroll = page.evaluate("document.documentElement.scrollWidth")
            assert scroll <= width, f"{path} is {scroll} px wide on a {width} px screen"
        page.goto(board_server + "/")
        lane_top = page.locator("#panel-attention").bounding_box()
        controls_top = page.locator(".controls").bounding_box()
        active_top = page.locator("#panel-active").bounding_box()
        untracked_top = page.locator("#untracked-activity").bounding_box()
        assert lane_top and controls_top and active_top and untracked_top
        assert lane_top["y"] < min(controls_top["y"], active_top["y"], untracked_top["y"]), (
            "the lane comes first"
        )
        small = page.evaluate(
            """() => [...document.querySelectorAll('main a, main button, main select, main input:not([type=hidden])')]
              .filter((el) => el.offsetParent !== null && el.getBoundingClientRect().height < 44)
              .map((el) => el.outerHTML.slice(0, 80))"""
        )
        assert small == [], "touch targets are at least 44 px tall"
    finally:
        context.close()
