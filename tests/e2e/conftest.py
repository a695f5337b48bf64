"""Real headless Chromium against pytest-django's live server, over a real Valkey."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.contrib.auth.models import User
from playwright.sync_api import Browser, Page, sync_playwright

from tests.relay import TcpRelay

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests
# make around it are synchronous and safe here.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
PASSWORD = "correct horse battery"


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.skip("Chromium is not installed at /usr/bin/chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def board_server(settings: Any, valkey_server: str, redis_db: redis.Redis, live_server: Any) -> str:
    """The live server's URL, reading snapshots from the test Valkey, polling every second."""
    settings.REDIS_URL = valkey_server
    settings.BOARD_PAGE_REFRESH_SECONDS = 1
    return str(live_server.url)


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert errors == [], "the page script raised errors"


@pytest.fixture
def signed_in(page: Page, board_server: str, transactional_db: None) -> Page:
    """A page logged in through the real login form."""
    User.objects.create_user("ada", password=PASSWORD)
    page.goto(board_server + "/accounts/login/")
    page.fill("#id_username", "ada")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(board_server + "/")
    return page


@pytest.fixture
def relay(board_server: str) -> Iterator[TcpRelay]:
    relay = TcpRelay(int(board_server.rsplit(":", 1)[1]))
    relay.start()
    yield relay
    relay.stop()
