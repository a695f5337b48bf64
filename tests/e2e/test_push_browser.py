"""A wall in Chromium on gunicorn as deployed: a change is pushed to it, and it still polls when the push cannot reach it.

The wall polls once a minute here, so a change that shows within seconds was
pushed. The pages of one browser share one stream (a SharedWorker). The fallback cases take the stream away in front of the browser (a
proxy that holds the answer back, a connection refused) with the wall polling
every 2 s: the change must still show, by the poll, with no banner.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from playwright.sync_api import Page

from dashboard.models import DisplayToken
from tests import board_data
from tests.relay import StreamBlockingRelay, TcpRelay
from tests.webserver import WebServer, gunicorn_board

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def web(tmp_path: Path, valkey_server: str, redis_db: redis.Redis, settings: Any) -> Iterator[WebServer]:
    settings.REDIS_URL = valkey_server
    with gunicorn_board(tmp_path, valkey_server) as server:
        yield server


@pytest.fixture
def wall(page: Page) -> Page:
    """The browser page of conftest (page script errors fail the test), at a wall's size."""
    page.set_viewport_size({"width": 1920, "height": 1080})
    return page


def run_status(wall: Page) -> str:
    return wall.locator(f"#wall-run-{board_data.RUN_ACTIVE} .status").inner_text()


def stream_state(wall: Page) -> str:
    return str(wall.evaluate("window.boardPage.streamState()"))


def change_the_run() -> None:
    changed = board_data.board()
    changed["runs"][0]["status"] = "pending"
    board_data.publish(changed)


@pytest.mark.parametrize("worker", ["shared", "dedicated"])
def test_a_change_is_pushed_to_an_open_wall_before_its_next_poll(
    wall: Page, web: WebServer, worker: str
) -> None:
    if worker == "dedicated":
        # A browser without SharedWorker (Android's Chrome): the page's own Worker follows the stream.
        wall.add_init_script("delete window.SharedWorker;")
    board_data.publish(board_data.board())
    _, raw = DisplayToken.issue("lobby")
    wall.goto(f"{web.base_url}/kiosk/{raw}/?refresh=60")
    assert "streaming" in run_status(wall)
    wall.wait_for_function("() => window.boardPage.streamState() === 'open'", timeout=15_000)

    change_the_run()

    # Well inside the minute to its next poll.
    wall.locator(f"#wall-run-{board_data.RUN_ACTIVE} .status", has_text="pending").wait_for(timeout=20_000)
    assert wall.evaluate("window.boardPage.pushedAt > window.boardPage.loadedAt")
    assert wall.locator("#connection-banner").is_hidden()


@pytest.mark.parametrize("how", ["hold", "refuse"], ids=["held back by a proxy", "refused by a proxy"])
def test_a_wall_whose_stream_cannot_get_through_keeps_polling_and_says_nothing(
    wall: Page, web: WebServer, how: str
) -> None:
    proxy = StreamBlockingRelay(int(web.base_url.rsplit(":", 1)[1]), how)
    proxy.start()
    try:
        board_data.publish(board_data.board())
        _, raw = DisplayToken.issue("lobby")
        wall.goto(f"{proxy.url}/kiosk/{raw}/?refresh=2")
        assert "streaming" in run_status(wall)

        change_the_run()

        wall.locator(f"#wall-run-{board_data.RUN_ACTIVE} .status", has_text="pending").wait_for(
            timeout=20_000
        )
        assert stream_state(wall) != "open"
        assert wall.locator("#connection-banner").is_hidden()
        assert not wall.evaluate("window.boardPage.pushedAt")
        if how == "hold":
            assert proxy.held, "the stream was asked for, and held"
    finally:
        proxy.stop()


def test_after_the_connection_is_cut_the_wall_reopens_its_stream_and_is_pushed_to_again(
    wall: Page, web: WebServer
) -> None:
    # A relay in front of gunicorn stands for the network (or a restarting server):
    # cutting it ends the stream and refuses every request until it is back.
    relay = TcpRelay(int(web.base_url.rsplit(":", 1)[1]))
    relay.start()
    try:
        board_data.publish(board_data.board())
        _, raw = DisplayToken.issue("lobby")
        wall.goto(f"{relay.url}/kiosk/{raw}/?refresh=60")
        wall.wait_for_function("() => window.boardPage.streamState() === 'open'", timeout=15_000)

        relay.stop()
        wall.wait_for_function("() => window.boardPage.streamState() !== 'open'", timeout=15_000)
        relay.start()
        wall.wait_for_function("() => window.boardPage.streamState() === 'open'", timeout=30_000)
        change_the_run()

        # Still well inside the minute to its next poll: pushed over the reopened stream.
        wall.locator(f"#wall-run-{board_data.RUN_ACTIVE} .status", has_text="pending").wait_for(
            timeout=20_000
        )
        assert wall.locator("#connection-banner").is_hidden()
    finally:
        relay.stop()


def test_eight_board_tabs_in_one_browser_share_one_stream_and_all_hear_the_change(
    wall: Page, web: WebServer
) -> None:
    # Six connections per server is all a browser opens over HTTP/1.1: with a stream per
    # tab, the seventh tab would not even load.
    board_data.publish(board_data.board())
    _, raw = DisplayToken.issue("lobby")
    streams: list[str] = []
    wall.context.on(
        "request", lambda request: streams.append(request.url) if "/stream/" in request.url else None
    )
    tabs = [wall] + [wall.context.new_page() for _ in range(7)]
    for tab in tabs:
        tab.goto(f"{web.base_url}/kiosk/{raw}/?refresh=60")
    for tab in tabs:
        tab.wait_for_function("() => window.boardPage.streamState() === 'open'", timeout=15_000)

    change_the_run()

    for tab in tabs:
        tab.locator(f"#wall-run-{board_data.RUN_ACTIVE} .status", has_text="pending").wait_for(timeout=20_000)
