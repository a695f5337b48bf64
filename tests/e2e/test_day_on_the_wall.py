"""A day on the wall: a failure turns it red, an acknowledgement or a later success makes it green.

Real headless Chromium on the wall and the dashboard, the board's web app as a real
gunicorn process (restarted in the middle), a real Celery worker and beat, a real
Valkey, and the simulator driven through its control API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis
from django.contrib.auth.models import User
from playwright.sync_api import Browser, Page

from dashboard import snapshots
from dashboard.models import Acknowledgement, DisplayToken
from dashboard.simulator.control import SimulatorControl
from tests.e2e.conftest import PASSWORD
from tests.pollers import PollerGroup, Pollers
from tests.waiting import wait_for
from tests.webserver import WebServer, gunicorn_board

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

WALL_REFRESH = 2
# One refresh of the wall, and room for a loaded machine to render and swap it.
ONE_REFRESH = WALL_REFRESH + 3.0
# From a status change in the simulator to the composed board: a run fetch (every second),
# the tick, the compose debounce, on a loaded machine.
ON_THE_BOARD_WITHIN = 20.0


def board_status(run_id: str) -> str | None:
    board = snapshots.board_read() or {}
    return next((str(r.get("status")) for r in board.get("runs", []) if r.get("run_id") == run_id), None)


def on_the_board(run_id: str, status: str, group: PollerGroup) -> None:
    wait_for(
        lambda: board_status(run_id) == status,
        timeout=ON_THE_BOARD_WITHIN,
        interval=0.1,
        what=f"run {run_id} {status} on the composed board\n{group.log_tail()}",
    )


def headline_reads(wall: Page, text: str, *, within: float) -> None:
    wall.locator("#headline", has_text=text).wait_for(timeout=within * 1000)


def sign_in(page: Page, web: WebServer) -> None:
    page.goto(web.base_url + "/")
    if "/accounts/login/" in page.url:
        page.fill("#id_username", "ada")
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(web.base_url + "/")


def track(dashboard: Page, web: WebServer, run_id: str) -> None:
    dashboard.goto(web.base_url + "/")
    dashboard.fill("#id_run", run_id)
    dashboard.click(".track-form button[type=submit]")
    dashboard.locator(".messages", has_text="Tracking run").wait_for()


def fail(sim: SimulatorControl, run_id: str) -> None:
    sim.set_run_status(run_id, "streaming")
    sim.set_run_status(run_id, "failed")


@pytest.fixture
def group(pollers: Pollers, redis_db: redis.Redis) -> PollerGroup:
    running = pollers.ensure({"BOARD_RUN_REFRESH_SECONDS": "1", "BOARD_SANDBOXES_REFRESH_SECONDS": "2"})
    running.wait_ticking(redis_db)
    return running


def test_a_day_on_the_wall(
    chromium: Browser,
    sim: SimulatorControl,
    group: PollerGroup,
    valkey_server: str,
    tmp_path: Path,
    settings: Any,
) -> None:
    settings.REDIS_URL = valkey_server
    User.objects.create_user("ada", password=PASSWORD)
    _, raw = DisplayToken.issue("lobby")
    repo = str(sim.repos("demo")[0]["id"])
    context = chromium.new_context(viewport={"width": 1920, "height": 1080})
    wall, dashboard = context.new_page(), context.new_page()
    errors: list[str] = []
    for page in (wall, dashboard):
        page.on("pageerror", lambda error: errors.append(str(error)))

    web_env = {"BOARD_PAGE_REFRESH_SECONDS": "1"}
    with gunicorn_board(tmp_path / "web-1", valkey_server, **web_env) as web:
        wall.goto(f"{web.base_url}/kiosk/{raw}/?refresh={WALL_REFRESH}")
        headline_reads(wall, "All clear", within=60)
        sign_in(dashboard, web)

        # A run fails: the wall turns red within one refresh of the board knowing it.
        failed = str(sim.create_run("demo", repo_id=repo, base_branch="main")["runId"])
        track(dashboard, web, failed)
        fail(sim, failed)
        on_the_board(failed, "failed", group)
        headline_reads(wall, "1 needs attention", within=ONE_REFRESH)
        assert wall.locator(f"#wall-run-{failed}").is_visible()

        # Someone acknowledges it on the dashboard; the wall reads "All clear" within one refresh.
        dashboard.goto(web.base_url + "/")
        row = dashboard.locator(f"#attention-run-{failed}")
        row.locator("input[name=note]").fill("flaky migration test, rerun queued")
        row.locator("button", has_text="Acknowledge").click()
        dashboard.locator(".messages", has_text="its failure is acknowledged").wait_for()
        headline_reads(wall, "All clear", within=ONE_REFRESH)
        resolved = wall.locator("#wall-attention [data-resolved]").first
        assert "acknowledged by ada" in resolved.inner_text()
        assert wall.locator("#wall-attention button, #wall-attention form").count() == 0, (
            "no buttons on the wall"
        )

    # The web process restarts: the acknowledgement is in the database, not in the process.
    with gunicorn_board(tmp_path / "web-2", valkey_server, **web_env) as web:
        wall.goto(f"{web.base_url}/kiosk/{raw}/?refresh={WALL_REFRESH}")
        headline_reads(wall, "All clear", within=ONE_REFRESH)
        sign_in(dashboard, web)
        dashboard.goto(f"{web.base_url}/runs/{failed}/")
        note = dashboard.locator("#run-attention").inner_text()
        assert "acknowledged by ada" in note and "flaky migration test, rerun queued" in note
        assert Acknowledgement.objects.filter(target_id=failed, username="ada").count() == 1

        # A second failure on the same repo and base branch, then a later run there succeeds:
        # the lane clears by itself, and the finished list says what fixed it.
        second = str(sim.create_run("demo", repo_id=repo, base_branch="main")["runId"])
        track(dashboard, web, second)
        fail(sim, second)
        on_the_board(second, "failed", group)
        headline_reads(wall, "1 needs attention", within=ONE_REFRESH)

        fix = str(sim.create_run("demo", repo_id=repo, base_branch="main")["runId"])
        track(dashboard, web, fix)
        sim.set_run_status(fix, "streaming")
        sim.set_run_status(fix, "success")
        on_the_board(fix, "success", group)
        headline_reads(wall, "All clear", within=ONE_REFRESH)
        assert "fixed by run" in wall.locator("#wall-attention").inner_text()

        dashboard.goto(web.base_url + "/")
        finished = dashboard.locator(f"#panel-finished #run-{second}")
        assert "fixed by run" in finished.inner_text() and fix[:8] in finished.inner_text()
        assert "resolved" in (finished.get_attribute("class") or "")
        assert dashboard.locator("#panel-attention tr.attn").count() == 0
        assert not Acknowledgement.objects.filter(target_id=second).exists(), "nobody had to click"

    context.close()
    assert errors == [], "the page script raised errors"
